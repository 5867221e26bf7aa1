use ferrax::prelude::*;

#[derive(Clone, Differentiable)]
struct Params {
    w: Tensor,
    #[differentiable(constant)]
    n: f64,
    #[differentiable(skip, frozen)]
    m: f64,
}

fn main() {}
