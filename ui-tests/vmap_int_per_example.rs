// An integer that differs per example (a counter) is a batch of floats: `+ - *`,
// comparisons and casts work on it; Rust's integer division and remainders, and loop
// bounds or indices, do not.
use ferrax::prelude::*;

#[vmap]
fn parity(x: f64) -> f64 {
    let mut n = 0;
    if x > 0.0 {
        n = 3;
    }
    if n % 2 == 0 { x } else { -x }
}

#[vmap]
fn repeat(x: f64) -> f64 {
    let mut n = 1;
    if x > 0.0 {
        n = 3;
    }
    let mut s = x;
    for _ in 0..n {
        s = s * 0.5;
    }
    s
}

fn main() {}
