//! Low-rank matrix completion: a 40 x 30 matrix of rank 3 is seen at half of its
//! entries, and the full matrix is recovered by minimizing the squared error on the seen
//! entries plus the nuclear norm (the sum of the singular values, a convex stand-in for the
//! rank), differentiated by `#[grad]` through a singular value decomposition
//! (`a.svdvals()`); Adam takes the steps. The nuclear norm shrinks every singular value,
//! so a second fit keeps the singular vectors of the result (`let (u, s, vt) = x.svd()`) for
//! the rank it found and refits the small core between them on the seen entries alone.
//!
//! Run it with `cargo run --release --example completion`.

use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

const ROWS: usize = 40;
const COLS: usize = 30;
const RANK: usize = 3;
/// The weight of the nuclear norm.
const LAMBDA: f64 = 0.1;

/// Half the squared error on the seen entries (`mask` 1 there, 0 elsewhere) plus `LAMBDA`
/// times the nuclear norm of `x`.
#[grad(wrt(x))]
fn objective(x: &Tensor, seen: &Tensor, mask: &Tensor) -> Tensor {
    let err = (x - seen) * mask;
    (&err * &err).sum() * 0.5 + x.svdvals().sum() * LAMBDA
}

/// Half the squared error on the seen entries of `u c vt`.
#[grad(wrt(c))]
fn refit(c: &Tensor, u: &Tensor, vt: &Tensor, seen: &Tensor, mask: &Tensor) -> Tensor {
    let err = (u.matmul(c).matmul(vt) - seen) * mask;
    (&err * &err).sum() * 0.5
}

/// The root mean square of `d` over the entries where `mask` is 1.
fn rmse(d: &Tensor, mask: &Tensor) -> f64 {
    ((d * d * mask).sum() / mask.sum()).sqrt().item::<f64>()
}

pub fn main() {
    let keys = Key::new(11).split_n(4);
    let a = Tensor::normal(keys[0], &[ROWS, RANK], DType::F64);
    let b = Tensor::normal(keys[1], &[RANK, COLS], DType::F64);
    let truth = a.matmul(&b);
    // half the entries, chosen at random
    let mask = Tensor::uniform(keys[2], &[ROWS, COLS], 0.0, 1.0, DType::F64)
        .lt(&Tensor::scalar(0.5))
        .to_dtype(DType::F64);
    let unseen = mask.ones_like() - &mask;
    let seen = &truth * &mask;
    let mut x = Tensor::normal(keys[3], &[ROWS, COLS], DType::F64) * 0.01;
    let mut adam = Adam::new(0.05);
    println!("step   objective  RMSE seen  RMSE unseen");
    for step in 0..=1000 {
        let (value, g) = objective_value_and_grad(&x, &seen, &mask);
        if step % 200 == 0 {
            let d = &x - &truth;
            println!(
                "{step:4} {:11.4} {:10.4} {:12.4}",
                value.item::<f64>(),
                rmse(&d, &mask),
                rmse(&d, &unseen)
            );
        }
        adam.step(&mut x, &g);
    }
    let (u, s, vt) = x.svd();
    let sv = s.to_vec::<f64>();
    let rank = sv.iter().filter(|v| **v > 0.1 * sv[0]).count();
    println!(
        "objective {:.4}; singular values {:.3?} ..: rank {rank} (true {RANK})",
        objective(&x, &seen, &mask).item::<f64>(),
        &sv[..RANK + 2]
    );
    // the core between the leading singular vectors, refitted
    let (u, vt) = (u.slice(1, 0, rank), vt.slice(0, 0, rank));
    let mut c = s.slice(0, 0, rank).diag_embed(rank, rank);
    let mut adam = Adam::new(0.05);
    for _ in 0..300 {
        let g = refit_grad(&c, &u, &vt, &seen, &mask);
        adam.step(&mut c, &g);
    }
    println!(
        "refit: half the seen entries' squared error {:.6}",
        refit(&c, &u, &vt, &seen, &mask).item::<f64>()
    );
    let fit = u.matmul(&c).matmul(&vt);
    let scale = rmse(&truth, &unseen);
    let before = rmse(&(&x - &truth), &unseen);
    let after = rmse(&(&fit - &truth), &unseen);
    println!(
        "unseen entries (RMS {scale:.4}): RMSE {before:.4} after the nuclear-norm fit, {after:.4} after the refit"
    );
    assert!(
        rank == RANK && after < 0.05 * scale,
        "the completion did not recover the matrix: rank {rank}, RMSE {after}"
    );
}
