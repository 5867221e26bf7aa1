// A slice cannot be batched: per-example data is a Tensor.
use ferrax::prelude::*;

#[vmap]
fn f(x: &[f64], y: f64) -> f64 {
    x[0] * y
}

fn main() {}
