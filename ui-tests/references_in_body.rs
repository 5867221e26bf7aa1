// Writing through references in the body.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    let mut y = x;
    let r = &mut y;
    *r *= 2.0;
    y
}

fn main() {}
