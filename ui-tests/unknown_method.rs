// A method with no derivative rule, called on an active value.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    x.to_degrees() * 2.0
}

fn main() {}
