// A `let` closure is lowered where it is called, so a printing macro cannot call it.
use ferrax::prelude::*;

#[grad]
fn f(x: f64) -> f64 {
    let sq = |v: f64| v * v;
    println!("{}", sq(x));
    sq(x) + x
}

fn main() {}
