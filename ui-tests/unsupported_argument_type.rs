// A float-like argument of a type with no gradient type (`&f64`, `Option<f64>`).
use ferrax::prelude::*;

#[grad]
fn f(x: &f64, y: Option<f64>) -> f64 {
    *x * y.unwrap_or(1.0)
}

fn main() {}
