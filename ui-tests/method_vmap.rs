// `#[vmap]` and `#[hessian]` on methods: only `#[grad]` takes methods.
use ferrax::prelude::*;

struct Model {
    k: f64,
}

impl Model {
    #[vmap]
    #[grad(wrt(x))]
    fn loss(&self, x: &Tensor) -> Tensor {
        (x * self.k).sum()
    }

    #[hessian]
    fn energy(&self, x: &[f64]) -> f64 {
        x[0] * x[0] * self.k
    }

    #[grad(wrt(x))]
    #[vmap]
    fn loss2(&self, x: &Tensor) -> Tensor {
        (x * self.k).sum()
    }
}

fn main() {}
