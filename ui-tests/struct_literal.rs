// A struct literal is a configuration: fields with a derivative would lose it.
use ferrax::prelude::*;

struct Point {
    a: f64,
    b: f64,
}

#[grad]
fn f(x: f64, y: f64) -> f64 {
    let p = Point { a: x, b: y };
    p.a * p.b
}

fn main() {}
