use ferrax::prelude::*;

// The rule's name is one the attribute emits.
#[custom_jvp(cube_jvp)]
fn cube(x: f64) -> f64 {
    x * x * x
}

fn main() {}
