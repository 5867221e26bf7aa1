// `a.eigh()` returns the eigenvalues and the eigenvectors: inside a transformed function
// they are destructured where it is called (`let (w, v) = a.eigh();`), and the packed form
// carries no derivative.
use ferrax::prelude::*;

#[grad]
fn f(a: &Tensor) -> Tensor {
    let _pair = a.eigh();
    let p = a.eigh_packed();
    p.sum()
}

fn main() {}
