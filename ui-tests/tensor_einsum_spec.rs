// Malformed einsum specs are errors at the literal, naming what is wrong; operands held in
// a Vec (rather than written as an array) are named as unsupported.
use ferrax::prelude::*;

#[grad]
fn f(a: &Tensor, b: &Tensor) -> Tensor {
    let c = Tensor::einsum("ij,jk->il", &[a, b]);
    let d = Tensor::einsum("ij,jk->ik", &[a]);
    let e = Tensor::einsum("i.j", &[a]);
    let ops = vec![a.clone(), b.clone()];
    let g = Tensor::einsum("ij,jk", &ops);
    c.sum() + d.sum() + e.sum() + g.sum()
}

fn main() {}
