// A closure is lowered where it is called (`let f = |v| ..; f(x)`) or reduced
// (`.map(|v| ..).sum()`); passed to a function, it cannot be: the error points at it.
use ferrax::prelude::*;

fn apply(f: impl Fn(f64) -> f64, v: f64) -> f64 {
    f(v)
}

#[grad]
fn f(x: f64) -> f64 {
    apply(|a: f64| a * x, 2.0)
}

fn main() {}
