// The result must be one float (f32 or f64).
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> (f64, f64) {
    (x, x * x)
}

fn main() {}
