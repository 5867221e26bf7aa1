// Methods take `#[grad]`, `#[vmap] #[grad]` and `#[grad] #[vmap]`; `#[hessian]`,
// `#[jacobian]` and `#[vmap]` over `#[vmap]` take free functions only.
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

    #[hessian]
    fn energy(&self, x: &[f64]) -> f64 {
        x[0] * x[0] * self.k
    }

    #[jacobian]
    fn features(&self, x: &Tensor) -> Tensor {
        x * self.k
    }
}

fn main() {}
