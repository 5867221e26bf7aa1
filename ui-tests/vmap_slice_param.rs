// A slice of integers cannot be batched: per-example data is floats or a Tensor.
use ferrax::prelude::*;

#[vmap]
fn f(x: &[usize], y: f64) -> f64 {
    x[0] as f64 * y
}

fn main() {}
