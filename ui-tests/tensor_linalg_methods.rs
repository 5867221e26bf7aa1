// Linear algebra with the wrong number of arguments, and a factorization called directly:
// its packed factors carry no derivative (`a.solve(&b)` factors and solves differentiably).
use ferrax::prelude::*;

#[grad]
fn f(a: &Tensor, b: &Tensor) -> Tensor {
    let x = a.solve(b, true);
    let lu = a.lu_factor();
    let l = a.cholesky(0);
    x.sum() + lu.sum() + l.sum()
}

fn main() {}
