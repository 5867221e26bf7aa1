// A whole Vec reassigned (its length may change): assign its elements instead. (A whole
// array can be reassigned.)
use ferrax::prelude::*;

#[grad]
fn f(x: &[f64]) -> f64 {
    let mut v = x.to_vec();
    let a = v[0];
    v = vec![x[0], 2.0];
    v[0] * a
}

fn main() {}
