// `wrt(..)` must name arguments of the function.
use ferrax::prelude::*;

#[grad(wrt(z))]
fn f(x: f64, y: f64) -> f64 {
    x * y
}

fn main() {}
