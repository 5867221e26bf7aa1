// The Jacobian of a function returning a Vec is taken with respect to one slice.
use ferrax::prelude::*;

#[jacobian]
fn f(x: f64, n: usize) -> Vec<f64> {
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = x * i as f64;
    }
    y
}

fn main() {}
