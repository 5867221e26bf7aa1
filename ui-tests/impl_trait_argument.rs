// `impl Trait` arguments are not transformed.
use ferrax::prelude::*;

#[grad]
fn f(x: impl Into<f64>) -> f64 {
    let x: f64 = x.into();
    x * x
}

fn main() {}
