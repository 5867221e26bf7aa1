// A `move` closure copies what it captures when it is made, but a closure is lowered
// where it is called: `move` is refused.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    let mut a = x;
    let g = move |v: f64| v * a;
    a *= 3.0;
    g(2.0) + a
}

fn main() {}
