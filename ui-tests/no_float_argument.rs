// Nothing to differentiate: no float argument.
use ferrax::prelude::*;

#[grad]
fn f(n: usize) -> f64 {
    n as f64
}

fn main() {}
