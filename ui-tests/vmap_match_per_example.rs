// `match` on a per-example value has no select form; `if` does.
use ferrax::prelude::*;

#[vmap]
fn f(x: f64) -> f64 {
    let k = x > 0.0;
    match k {
        true => x,
        false => -x,
    }
}

fn main() {}
