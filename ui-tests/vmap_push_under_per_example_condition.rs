use ferrax::prelude::*;

// Under `#[vmap]` a Vec of tensors holds as many tensors for every example: a push that
// some examples make and others not is refused.
#[vmap]
fn kept(x: &Tensor) -> Tensor {
    let mut outs = Vec::new();
    outs.push(x.clone());
    if x.sum().item::<f64>() > 0.0 {
        outs.push(x * 2.0);
    }
    Tensor::stack(&outs, 0).sum()
}

fn main() {}
