// `#[vmap]` over `#[jacobian]` / `#[hessian]` gives per-example Jacobians and Hessians of
// tensor functions and of self-contained scalar code over slices: not of scalar code with
// effects, not with `#[grad]` on the same function, not with a list of tensors batched.
use ferrax::prelude::*;

#[vmap]
#[jacobian]
fn rows(x: &[f64]) -> Vec<f64> {
    println!("rows");
    x.iter().map(|v| v * v).collect()
}

#[vmap]
#[hessian]
#[grad]
fn energy(x: &Tensor) -> Tensor {
    (x * x).sum()
}

#[vmap(in_axes = (0, 0))]
#[jacobian(wrt(x))]
fn listed(x: &Tensor, ws: &[Tensor]) -> Tensor {
    x.matmul(&ws[0])
}

fn main() {}
