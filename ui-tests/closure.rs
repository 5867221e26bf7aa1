// Closures are not differentiable: the error points at the closure.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    let g = |a: f64| a * x;
    g(2.0)
}

fn main() {}
