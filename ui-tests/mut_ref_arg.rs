// An active `&mut` argument: the function writes through it, which `#[grad]` cannot
// differentiate.
use ferrax::prelude::*;

#[grad]
fn f(x: &mut f64, y: f64) -> f64 {
    *x += y;
    *x * y
}

fn main() {}
