// Indexing an expression that carries a derivative (only named slices, Vecs and arrays
// are indexed; `t.shape()[0]`, which carries none, is kept as written).
use ferrax::prelude::*;

#[grad]
fn f(x: &[f64]) -> f64 {
    x.to_vec()[0] * 2.0
}

fn main() {}
