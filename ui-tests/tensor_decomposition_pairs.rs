// `a.eigh()` and `a.qr()` return two factors: inside a transformed function they are
// destructured where they are called (`let (w, v) = a.eigh();`, `let (q, r) = a.qr();`),
// and the packed forms carry no derivative.
use ferrax::prelude::*;

#[grad]
fn f(a: &Tensor) -> Tensor {
    let _pair = a.eigh();
    let _factors = a.qr();
    let p = a.eigh_packed();
    let f = a.qr_packed();
    p.sum() + f.sum()
}

fn main() {}
