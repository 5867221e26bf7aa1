// Iterator adapters and consumers other than `.sum()` are not in the language: write the
// loop (`.iter().sum()` and `.map(|v| ..).sum()` are).
use ferrax::prelude::*;

#[grad]
fn f(x: &[f64]) -> f64 {
    let s: f64 = x.iter().map(|v| v * v).product();
    s * s
}

fn main() {}
