// `match` takes integers, bools and enums (with guards); a float is compared with `if`.
use ferrax::prelude::*;

#[grad]
fn f(x: f64, k: i32) -> f64 {
    let y = match k {
        j if j > 3 => x * x,
        _ => 2.0 * x,
    };
    match y {
        0.0 => 1.0,
        _ => y,
    }
}

fn main() {}
