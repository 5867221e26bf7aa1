use ferrax::prelude::*;

#[derive(Clone, Copy, Differentiable)]
union Bits {
    f: f32,
    u: u32,
}

fn main() {}
