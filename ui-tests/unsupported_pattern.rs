// Patterns beyond identifiers, tuples and `_` in `let`.
use ferrax::prelude::*;

#[grad]
fn f(a: [f64; 3]) -> f64 {
    let [x, y, z] = a;
    x * y * z
}

fn main() {}
