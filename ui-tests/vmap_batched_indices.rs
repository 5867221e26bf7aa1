// Indices that would differ per example (every parameter batched along axis 0 by default)
// where the primitive needs one set shared by every example: an error at the function
// naming the operation and what to write instead.
use ferrax::prelude::*;

#[vmap]
fn pooled(x: &Tensor, ids: &Tensor) -> Tensor {
    x.segment_sum(ids, 4).sum()
}

#[vmap(in_axes = (0, None))]
fn shared(x: &Tensor, ids: &Tensor) -> Tensor {
    x.segment_sum(ids, 4).sum()
}

fn main() {
    let _ = shared;
}
