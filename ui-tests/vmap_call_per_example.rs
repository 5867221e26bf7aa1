// A call differentiated through its callee's pullback cannot be batched yet.
use ferrax::prelude::*;

#[vmap]
#[grad]
fn g(x: f64) -> f64 {
    x * x
}

#[vmap]
#[grad]
fn f(x: f64) -> f64 {
    g(x) + 1.0
}

fn main() {}
