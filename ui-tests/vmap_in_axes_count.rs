// `in_axes` must give one axis (or `None`) per parameter.
use ferrax::prelude::*;

#[vmap(in_axes = (0, None, 0))]
fn f(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w)
}

fn main() {}
