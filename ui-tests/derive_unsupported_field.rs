use ferrax::prelude::*;

#[derive(Clone, Differentiable)]
struct Params {
    w: Tensor,
    name: String,
}

fn main() {}
