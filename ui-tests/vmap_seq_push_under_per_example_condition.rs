use ferrax::prelude::*;

// Under `#[vmap]` a batched sequence of floats is as long for every example: its elements
// can be written under a condition that differs per example, but a push that some examples
// make and others not is refused.
#[vmap]
fn positives(x: &[f64]) -> f64 {
    let mut kept = Vec::new();
    for i in 0..x.len() {
        if x[i] > 0.0 {
            kept.push(x[i]);
        }
    }
    kept.len() as f64
}

fn main() {}
