// Raw pointers are outside the accepted language.
use ferrax::prelude::*;

#[grad]
fn f(x: f64, p: *const f64) -> f64 {
    x * 2.0 + p as usize as f64
}

fn main() {}
