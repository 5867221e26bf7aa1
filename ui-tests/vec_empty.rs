// `vec![v; n]` and `vec![a, b, ..]` are supported; an empty `vec![]` is not.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    let a = vec![x, 2.0 * x];
    let mut b: Vec<f64> = vec![];
    b.push(a[1]);
    b[0] + a[0]
}

fn main() {}
