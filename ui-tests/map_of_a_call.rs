// `.map(..)` and `.fold(..)` take a closure, a `let` closure, or a function by path
// (`f64::exp`, `sq`); a closure made by a call is none of these.
use ferrax::prelude::*;

fn scaler(k: f64) -> impl Fn(f64) -> f64 {
    move |v| k * v
}

#[grad]
fn f(x: &[f64]) -> f64 {
    let a: f64 = x.iter().copied().map(f64::exp).sum();
    let b: f64 = x.iter().copied().map(scaler(2.0)).sum();
    a + b
}

fn main() {}
