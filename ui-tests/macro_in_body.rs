// Macros a #[grad] function does not know (here `format!`) are refused; printing, checks,
// `dbg!` and `vec!` are kept.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    println!("x = {x}");
    let label = format!("x = {x}");
    x * x + label.len() as f64
}

fn main() {}
