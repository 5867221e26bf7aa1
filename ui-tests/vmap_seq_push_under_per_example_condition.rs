use ferrax::prelude::*;

// In tensor code, batched operation by operation, a batched sequence of floats is as long
// for every example: its elements can be written under a condition that differs per
// example, but a push that some examples make and others not is refused. (Scalar code,
// run once per example, takes it.)
#[vmap(in_axes = (0, None))]
fn positives(x: &[f64], s: &Tensor) -> Tensor {
    let mut kept = Vec::new();
    for i in 0..x.len() {
        if x[i] > 0.0 {
            kept.push(x[i]);
        }
    }
    s * kept.len() as f64
}

fn main() {}
