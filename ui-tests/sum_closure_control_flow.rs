// A `.map(..)` closure summed by `.sum()` becomes the body of a loop: a `return` in it
// would return from the function, not the closure, so it is refused.
use ferrax::prelude::*;

#[grad]
fn f(x: &[f64]) -> f64 {
    let s: f64 = x
        .iter()
        .map(|&v| {
            if v < 0.0 {
                return 0.0;
            }
            v * v
        })
        .sum();
    s
}

fn main() {}
