// A call of another batched function takes floats, tensors and lists of tensors that
// differ per example; a per-example bool does not batch (the callee's counterpart takes it
// unbatched).
use ferrax::prelude::*;

#[vmap(in_axes = (0, None))]
fn gated(x: &Tensor, on: bool) -> Tensor {
    if on { x * 2.0 } else { x.clone() }
}

#[vmap]
fn caller(x: &Tensor) -> Tensor {
    let on = x.sum().item() > 0.0;
    gated(x, on)
}

fn main() {}
