// `unsafe` blocks are outside the accepted language.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    let y = unsafe { std::ptr::read(&x) };
    y * x
}

fn main() {}
