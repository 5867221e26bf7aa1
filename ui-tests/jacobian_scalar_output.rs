// A Jacobian is of a Tensor-valued function of one tensor.
use ferrax::prelude::*;

#[jacobian]
fn f(x: f64, y: f64) -> f64 {
    x * y
}

fn main() {}
