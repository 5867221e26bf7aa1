// `.sum()` in a #[grad] function sums floats.
use ferrax::prelude::*;

#[grad]
fn f(x: &[f64]) -> f64 {
    let n: i32 = x.iter().map(|v| *v as i32).sum();
    x[0] * n as f64
}

fn main() {}
