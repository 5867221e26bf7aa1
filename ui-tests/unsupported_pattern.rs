// Patterns beyond names, tuples, arrays and `_` in `let`, and `..` before the end of an
// array pattern.
use ferrax::prelude::*;

#[grad]
fn f(a: [f64; 3]) -> f64 {
    let [x, .., z] = a;
    x * z
}

#[grad]
fn g(a: f64) -> f64 {
    let &b = &a;
    b * a
}

fn main() {}
