use ferrax::prelude::*;

// A Vec of tensors is built by pushing and read by index or whole: an element assignment
// and a sub-slice are refused, each at its span.
#[grad]
fn f(x: &Tensor) -> Tensor {
    let mut outs = vec![x.clone(), x * 2.0];
    outs[1] = x.sin();
    Tensor::stack(&outs[1..], 0).sum()
}

fn main() {}
