// Unknown attribute arguments are reported, with what is accepted.
use ferrax::prelude::*;

#[grad(with_respect_to(x))]
fn f(x: f64) -> f64 {
    x * x
}

fn main() {}
