// Every unsupported construct is reported in one compile, each at its own span.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    let g = |a: f64| a + 1.0;
    let y = x.to_radians();
    let z = unsafe { x };
    g(y) * z
}

fn main() {}
