// A tuple holding values with a derivative, as an `if`'s value or bound whole: its parts
// would lose their derivatives, so it is refused (destructuring as it is made is fine).
use ferrax::prelude::*;

#[grad]
fn branch(x: f64) -> f64 {
    let (s, c) = (x.sin(), x.cos());
    let (a, b) = if x > 0.0 { (s, c) } else { (c, s) };
    a * b
}

#[grad]
fn whole(x: f64) -> f64 {
    let t = (x.sin(), x.cos());
    t.0 * t.1
}

fn main() {}
