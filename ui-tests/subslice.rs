// Range indexing (`&x[1..]`) is not supported: index elements in a loop.
use ferrax::prelude::*;

#[grad]
fn g(x: &[f64]) -> f64 {
    x[0] * x[0]
}

#[grad]
fn f(x: &[f64]) -> f64 {
    g(&x[1..]) + x[0]
}

fn main() {}
