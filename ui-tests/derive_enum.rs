use ferrax::prelude::*;

#[derive(Clone, Differentiable)]
enum Params {
    One(f64),
    Two(f64, f64),
}

fn main() {}
