// In tensor code, batched operation by operation, `match` on a per-example value has no
// select form; `if` does. (Scalar code, run once per example, takes it.)
use ferrax::prelude::*;

#[vmap(in_axes = (0, None))]
fn f(x: f64, s: &Tensor) -> Tensor {
    let k = x > 0.0;
    match k {
        true => s * x,
        false => s * -x,
    }
}

fn main() {}
