// The Hessian of scalar code calls the function once per pass: other arguments are
// references or copies.
use ferrax::prelude::*;

#[hessian(wrt(x))]
fn f(x: &[f64], w: Vec<f64>) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() {
        s += x[i] * x[i] * w[i];
    }
    s
}

fn main() {}
