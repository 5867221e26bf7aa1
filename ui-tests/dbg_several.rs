// `dbg!` of one value is kept (its value is used); of several, refused.
use ferrax::prelude::*;

#[grad]
fn f(x: f64, y: f64) -> f64 {
    let s = dbg!(x * y);
    let (a, b) = dbg!(x, y);
    s + a * b
}

fn main() {}
