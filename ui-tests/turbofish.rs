// A turbofish: `.item::<f32>()` / `.item::<f64>()` only.
use ferrax::prelude::*;

#[grad]
fn f(x: &Tensor) -> Tensor {
    let n = x.sum().item::<i32>();
    x * n as f64
}

fn main() {}
