// An axis is an integer or `None`.
use ferrax::prelude::*;

#[vmap(in_axes = (0, Some))]
fn f(x: &Tensor, w: &Tensor) -> Tensor {
    x * w
}

fn main() {}
