// `wrt(..)` naming an argument that cannot be differentiated (an integer).
use ferrax::prelude::*;

#[grad(wrt(x, n))]
fn f(x: f64, n: usize) -> f64 {
    x * n as f64
}

fn main() {}
