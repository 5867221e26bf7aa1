use ferrax::prelude::*;

// Reverse mode from a custom JVP takes one forward pass per parameter: tensors need a
// custom VJP as well.
#[custom_jvp(double_fwd)]
fn double(x: &Tensor) -> Tensor {
    x * 2.0
}

fn double_fwd(x: &Tensor, dx: &Tensor) -> (Tensor, Tensor) {
    (x * 2.0, dx * 2.0)
}

fn main() {}
