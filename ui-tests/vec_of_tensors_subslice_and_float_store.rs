use ferrax::prelude::*;

// A Vec of tensors is read by index or whole and its elements are assigned tensors: a float
// stored into it and a sub-slice of it are refused, each at its span.
#[grad]
fn f(x: &Tensor) -> Tensor {
    let mut outs = vec![x.clone(), x * 2.0];
    outs[0] = x.sin();
    outs[1] = 2.0;
    Tensor::stack(&outs[1..], 0).sum()
}

fn main() {}
