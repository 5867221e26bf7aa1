// A call with active arguments to a function that is not `#[grad]`: there is no
// `helper_jvp` / `helper_vjp` to call.
use ferrax::prelude::*;

fn helper(a: f64) -> f64 {
    a * a
}

#[grad]
fn f(x: f64) -> f64 {
    helper(x) + 1.0
}

fn main() {}
