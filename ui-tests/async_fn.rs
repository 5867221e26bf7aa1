// `async fn` cannot be transformed.
use ferrax::prelude::*;

#[grad]
async fn f(x: f64) -> f64 {
    x * x
}

fn main() {}
