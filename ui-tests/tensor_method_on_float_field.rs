use ferrax::prelude::*;

#[derive(Clone, Differentiable)]
struct Model {
    w: Tensor,
}

#[grad]
fn norm(t: &Tensor) -> f64 {
    let v: f64 = (t * t).sum().item();
    v
}

// takes, returns and makes no tensor: `m.w` is read as a float
#[grad]
fn reg(m: &Model) -> f64 {
    norm(&m.w.relu())
}

fn main() {}
