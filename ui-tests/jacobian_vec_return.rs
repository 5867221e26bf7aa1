// A function returning a Vec is differentiated when it ends with the Vec: no `return`.
use ferrax::prelude::*;

#[jacobian]
fn f(x: &[f64]) -> Vec<f64> {
    if x.len() == 0 {
        return Vec::new();
    }
    let mut y = vec![0.0; x.len()];
    for i in 0..x.len() {
        y[i] = x[i].sin();
    }
    y
}

fn main() {}
