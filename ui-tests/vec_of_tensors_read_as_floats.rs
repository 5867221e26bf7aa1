use ferrax::prelude::*;

// A Vec read before anything is pushed onto it is taken for a Vec of floats; the tensor
// pushed later asks for its type (`let mut outs: Vec<Tensor> = Vec::new();`).
#[grad]
fn f(x: &Tensor) -> Tensor {
    let mut outs = Vec::new();
    for t in 0..3 {
        let h = if t > 0 { &outs[t - 1] * 2.0 } else { x.clone() };
        outs.push(h);
    }
    Tensor::stack(&outs, 0).sum()
}

fn main() {}
