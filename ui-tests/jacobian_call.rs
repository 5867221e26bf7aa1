// A call differentiated through its callee's forward mode cannot be batched over a basis yet.
use ferrax::prelude::*;

#[grad]
fn g(x: &Tensor) -> Tensor {
    x.sin()
}

#[jacobian]
fn f(x: &Tensor) -> Tensor {
    g(x) * 2.0
}

fn main() {}
