use ferrax::prelude::*;

#[derive(Clone, Differentiable)]
struct Coeffs {
    k: f64,
}

// `p.k as f32` would drop the field's derivative
#[grad]
fn energy(p: &Coeffs, x: f32) -> f32 {
    p.k as f32 * x * x
}

fn main() {}
