// Iterator adapters (`map`) are not in the language: write the loop (`.iter().sum()` of a
// sequence itself is).
use ferrax::prelude::*;

#[grad]
fn f(x: &[f64]) -> f64 {
    let s: f64 = x.iter().map(|v| v * v).sum();
    s * s
}

fn main() {}
