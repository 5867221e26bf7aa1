// Calls with per-example arguments are not batched yet.
use ferrax::prelude::*;

#[grad]
fn g(x: f64) -> f64 {
    x * x
}

#[vmap]
fn f(x: f64) -> f64 {
    g(x) + 1.0
}

fn main() {}
