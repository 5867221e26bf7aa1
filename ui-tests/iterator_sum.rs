// Iterator adapters other than `.map(..)` before a reduction, and consumers other than
// `.sum()`, `.product()` and `.fold(..)`, are not in the language: write the loop.
use ferrax::prelude::*;

#[grad]
fn f(x: &[f64]) -> f64 {
    let s: f64 = x.iter().filter(|v| **v > 0.0).sum();
    s * s
}

fn main() {}
