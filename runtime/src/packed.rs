//! The layouts of the packed decompositions ([`Tensor::eigh_packed`],
//! [`Tensor::qr_packed`], [`Tensor::svd_packed`]): their parts read out as views, and parts
//! packed back (what the transforms' derivative rules build their tangents and cotangents
//! with). The one place that knows where each part lies.
//!
//! ```
//! # use ferrax_runtime::prelude::*;
//! use ferrax_runtime::packed;
//! let a = Tensor::from_vec(vec![3.0f64, 1.0, 4.0, 2.0, 0.0, 5.0], &[3, 2]);
//! let (q, r) = packed::qr_parts(&a.qr_packed());
//! assert_eq!(packed::qr(&q, &r).to_vec::<f64>(), a.qr_packed().to_vec::<f64>());
//! ```

use crate::tensor::Tensor;

/// `(m, k)` of a packed QR decomposition with `rows` rows and `n` columns (`rows = m + k`,
/// `k = min(m, n)`).
fn qr_sizes(rows: usize, n: usize) -> (usize, usize) {
    // m >= n: rows = m + n; m < n: rows = 2m < 2n
    let m = if rows >= 2 * n { rows - n } else { rows / 2 };
    (m, m.min(n))
}

/// The last two sizes of `p`.
fn matrix(p: &Tensor) -> (usize, usize) {
    let s = p.shape();
    assert!(
        s.len() >= 2,
        "a packed decomposition has two axes or more, got {s:?}"
    );
    (s[s.len() - 2], s[s.len() - 1])
}

/// The eigenvalues `[.., n]` and eigenvectors `[.., n, n]` (as columns) of a packed
/// eigendecomposition `[.., n + 1, n]` ([`Tensor::eigh_packed`]).
pub fn eigh_parts(p: &Tensor) -> (Tensor, Tensor) {
    let (_, n) = matrix(p);
    (p.slice(-2, n, n + 1).squeeze(-2), p.slice(-2, 0, n))
}

/// `q` `[.., m, k]` and `r` `[.., k, n]` of a packed QR decomposition `[.., m + k, n]`
/// ([`Tensor::qr_packed`]).
pub fn qr_parts(p: &Tensor) -> (Tensor, Tensor) {
    let (rows, n) = matrix(p);
    let (m, k) = qr_sizes(rows, n);
    (p.slice(-2, 0, m).slice(-1, 0, k), p.slice(-2, m, m + k))
}

/// `u` `[.., m, k]`, `s` `[.., k]` and `vt` `[.., k, n]` of a packed singular value
/// decomposition `[.., m + k + 1, n]` ([`Tensor::svd_packed`]).
pub fn svd_parts(p: &Tensor) -> (Tensor, Tensor, Tensor) {
    let (rows, n) = matrix(p);
    let (m, k) = qr_sizes(rows - 1, n);
    let u = p.slice(-2, 0, m).slice(-1, 0, k);
    let s = p.slice(-2, m + k, m + k + 1).squeeze(-2).slice(-1, 0, k);
    (u, s, p.slice(-2, m, m + k))
}

/// `vectors` `[.., n, n]` and `values` `[.., n]` packed as [`Tensor::eigh_packed`] packs
/// them (batch axes broadcast: a part may be a zero without them).
pub fn eigh(vectors: &Tensor, values: &Tensor) -> Tensor {
    stack_rows(
        &[vectors.clone(), values.unsqueeze(-2)],
        vectors.shape()[vectors.ndim() - 1],
    )
}

/// `q` `[.., m, k]` and `r` `[.., k, n]` packed as [`Tensor::qr_packed`] packs them (batch
/// axes broadcast).
pub fn qr(q: &Tensor, r: &Tensor) -> Tensor {
    stack_rows(&[q.clone(), r.clone()], r.shape()[r.ndim() - 1])
}

/// `u` `[.., m, k]`, `s` `[.., k]` and `vt` `[.., k, n]` packed as [`Tensor::svd_packed`]
/// packs them (batch axes broadcast).
pub fn svd(u: &Tensor, s: &Tensor, vt: &Tensor) -> Tensor {
    let n = vt.shape()[vt.ndim() - 1];
    stack_rows(&[u.clone(), vt.clone(), s.unsqueeze(-2)], n)
}

/// The matrices of `parts` one above the other, each padded with zero columns to `n`,
/// their batch axes broadcast together.
fn stack_rows(parts: &[Tensor], n: usize) -> Tensor {
    let mut batch: Vec<usize> = Vec::new();
    for p in parts {
        let b = &p.shape()[..p.ndim() - 2];
        // right-aligned, as broadcasting aligns them
        if b.len() > batch.len() {
            let mut wider = b.to_vec();
            let off = b.len() - batch.len();
            for (i, d) in batch.iter().enumerate() {
                wider[off + i] = wider[off + i].max(*d);
            }
            batch = wider;
        } else {
            let off = batch.len() - b.len();
            for (i, d) in b.iter().enumerate() {
                batch[off + i] = batch[off + i].max(*d);
            }
        }
    }
    let full: Vec<Tensor> = parts
        .iter()
        .map(|p| {
            let (rows, cols) = matrix(p);
            let mut s = batch.clone();
            s.extend([rows, cols]);
            let p = p.broadcast_to(&s);
            if cols >= n {
                return p;
            }
            *s.last_mut().unwrap() = n - cols;
            let zeros = Tensor::zeros(&s, p.dtype()).to_device(&p.device());
            Tensor::concat(&[&p, &zeros], -1)
        })
        .collect();
    Tensor::concat(&full, -2)
}
