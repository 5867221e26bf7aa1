// An integer that differs per example (a counter) is a batch of floats in tensor code,
// which `#[vmap]` batches operation by operation: `+ - *`, comparisons and casts work on
// it; Rust's integer division and remainders, and loop bounds or indices, do not. (Scalar
// code, run once per example, takes them all.)
use ferrax::prelude::*;

#[vmap(in_axes = (0, None))]
fn parity(x: f64, s: &Tensor) -> Tensor {
    let mut n = 0;
    if x > 0.0 {
        n = 3;
    }
    if n % 2 == 0 { s * x } else { s * -x }
}

#[vmap(in_axes = (0, None))]
fn repeat(x: f64, t: &Tensor) -> Tensor {
    let mut n = 1;
    if x > 0.0 {
        n = 3;
    }
    let mut s = x;
    for _ in 0..n {
        s = s * 0.5;
    }
    t * s
}

fn main() {}
