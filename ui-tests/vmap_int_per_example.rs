// An integer cannot differ per example: it would have to be batched.
use ferrax::prelude::*;

#[vmap]
fn f(x: f64) -> f64 {
    let mut n = 0;
    if x > 0.0 {
        n = 2;
    }
    let mut s = x;
    for _ in 0..3 {
        s = s * 0.5;
    }
    s + n as f64
}

fn main() {}
