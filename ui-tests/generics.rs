// Generic functions are not transformed (write them for f32 or f64).
use ferrax::prelude::*;

#[grad]
fn f<T: Copy + std::ops::Mul<Output = T>>(x: T) -> T {
    x * x
}

fn main() {}
