// Iterator adapters and consumers (`map`, `sum`) are not in the language: write the loop.
use ferrax::prelude::*;

#[grad]
fn f(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    s * s
}

fn main() {}
