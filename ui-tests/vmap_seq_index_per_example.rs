use ferrax::prelude::*;

// In tensor code, batched operation by operation, an index that differs per example (here
// a counter of a per-example loop) cannot read a batched sequence: every example reads the
// same element. (Scalar code, run once per example, takes it.)
#[vmap(in_axes = (0, 0, None))]
fn first_above(x: &[f64], level: f64, s: &Tensor) -> Tensor {
    let mut i = 0;
    while x[i] < level && i + 1 < x.len() {
        i += 1;
    }
    s * x[i]
}

fn main() {}
