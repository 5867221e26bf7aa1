// Methods take `#[grad]`, `#[vmap]` (with `#[grad]` under or over it), `#[jacobian]` and
// `#[hessian]`; `#[vmap]` over `#[vmap]` takes free functions only, and a method's
// `in_axes` counts its receiver.
use ferrax::prelude::*;

struct Model {
    k: f64,
}

impl Model {
    #[vmap]
    #[vmap]
    fn scaled(&self, x: &Tensor) -> Tensor {
        x * self.k
    }

    // the receiver has an in-axis too
    #[vmap(in_axes = (0))]
    fn shifted(&self, x: &Tensor) -> Tensor {
        x + self.k
    }

    // a struct is not batched
    #[vmap(in_axes = (0, 0))]
    fn offset(&self, x: &Tensor) -> Tensor {
        x - self.k
    }
}

fn main() {}
