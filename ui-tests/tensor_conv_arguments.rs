// A convolution and a pool without their spec: the transforms name the method and list
// the supported ones (`x.conv(&w, &spec)`, `x.max_pool(&window, &spec)`).
use ferrax::prelude::*;

#[grad]
fn f(x: &Tensor, w: &Tensor) -> Tensor {
    let y = x.conv(w);
    let p = y.max_pool(&[2, 2]);
    p.sum()
}

fn main() {}
