// Views of float slices (`&x[a..b]`) are supported; views of anything else, and mutable
// views, are not.
use ferrax::prelude::*;

#[grad]
fn g(x: &[f64]) -> f64 {
    x[0] * x[1]
}

#[grad]
fn f(x: &[f64], idx: &[usize]) -> f64 {
    let first = &idx[..1];
    let mut y = x.to_vec();
    let head = &mut y[..2];
    g(&x[1..]) + x[first[0]] + head[0]
}

fn main() {}
