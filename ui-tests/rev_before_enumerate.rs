use ferrax::prelude::*;

// `.rev()` is peeled off the end of a loop's iterator only: before `.enumerate()` the count
// would run against the index, and the error says how to write it.
#[grad]
fn f(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for (k, v) in x.iter().rev().enumerate() {
        s += v * k as f64;
    }
    s
}

fn main() {}
