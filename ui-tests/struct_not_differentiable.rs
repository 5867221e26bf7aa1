// A struct parameter differentiated with respect to, without #[derive(Differentiable)]:
// one error, at its type, saying what is differentiable.
use ferrax::prelude::*;

struct Params {
    w: Tensor,
}

#[grad]
fn energy(p: &Params, x: &Tensor) -> Tensor {
    (x * &p.w).sum()
}

fn main() {}
