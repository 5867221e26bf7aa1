// A Hessian through a call of another function cannot be batched over the basis yet.
use ferrax::prelude::*;

#[vmap]
#[grad]
fn g(x: &Tensor) -> Tensor {
    x.sin()
}

#[hessian]
fn f(x: &Tensor) -> Tensor {
    (g(x) * x).sum()
}

fn main() {}
