// `a.eigh()`, `a.qr()`, `a.svd()` and `a.slogdet()` return several factors: inside a
// transformed function they are destructured where they are called (`let (w, v) =
// a.eigh();`, `let (q, r) = a.qr();`, `let (u, s, vt) = a.svd();`, `let (sign, log) =
// a.slogdet();`), and the packed forms carry no derivative.
use ferrax::prelude::*;

#[grad]
fn f(a: &Tensor) -> Tensor {
    let _pair = a.eigh();
    let _factors = a.qr();
    let (_u, _s) = a.svd();
    let _signed = a.slogdet();
    let p = a.eigh_packed();
    let f = a.qr_packed();
    p.sum() + f.sum()
}

fn main() {}
