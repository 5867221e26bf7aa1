// Macros other than `vec!` are not expanded by `#[grad]`.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    println!("x = {x}");
    x * x
}

fn main() {}
