use ferrax::prelude::*;

// An index that differs per example (here a counter of a per-example loop) cannot read a
// batched sequence: every example reads the same element.
#[vmap]
fn first_above(x: &[f64], level: f64) -> f64 {
    let mut i = 0;
    while x[i] < level && i + 1 < x.len() {
        i += 1;
    }
    x[i]
}

fn main() {}
