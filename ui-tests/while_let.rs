// `while let` is outside the accepted language (`if let` is a `match`).
use ferrax::prelude::*;

#[grad]
fn f(x: &[f64]) -> f64 {
    let mut s = 0.0;
    let mut it = x.iter();
    while let Some(v) = it.next() {
        s += v * v;
    }
    s
}

fn main() {}
