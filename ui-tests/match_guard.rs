// Match guards are not in the language: put an `if` in the arm.
use ferrax::prelude::*;

#[grad]
fn f(x: f64, k: i32) -> f64 {
    match k {
        j if j > 3 => x * x,
        _ => 2.0 * x,
    }
}

fn main() {}
