//! Linear algebra over the last two axes (leading axes are batch axes and broadcast):
//! `solve` (LU with partial pivoting), `solve_triangular`, `cholesky`, and the structural
//! views and masks their derivatives are written with (`tril`, `triu`, `diagonal`,
//! `diag_embed`). The CPU path factors with faer, one matrix per batch position in
//! parallel; the GPU path runs one workgroup per matrix ([`crate::gpu`]).

use rayon::prelude::*;

use num_traits::Zero;

use crate::element::{DType, Element, Float};
use crate::error::{Error, Result, unwrap};
use crate::shape::{Layout, broadcast_shapes, numel, unravel_offset};
use crate::tensor::{Tensor, float_dispatch};

/// The systems `a x = b` of one solve: `n` unknowns, `k` right-hand sides each, at every
/// position of `batch` (the broadcast of both operands' batch axes).
#[derive(Clone, Debug)]
pub(crate) struct Systems {
    pub n: usize,
    pub k: usize,
    pub batch: Vec<usize>,
    /// `b` was one vector (a 1-D `b` beside a 2-D `a`): the result is a vector too.
    pub vector: bool,
}

impl Systems {
    /// The shape of the solution.
    pub fn out_shape(&self) -> Vec<usize> {
        let mut s = self.batch.clone();
        s.push(self.n);
        if !self.vector {
            s.push(self.k);
        }
        s
    }

    /// `a` broadcast to `[batch.., n, n]` and `b` to `[batch.., n, k]` (views).
    pub fn operands(&self, a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
        let mut sa = self.batch.clone();
        sa.extend([self.n, self.n]);
        (a.broadcast_to(&sa), self.operands_rhs(b))
    }

    /// `b` broadcast to `[batch.., n, k]` (a view).
    pub fn operands_rhs(&self, b: &Tensor) -> Tensor {
        let mut sb = self.batch.clone();
        sb.extend([self.n, self.k]);
        let b = if self.vector {
            b.unsqueeze(1)
        } else {
            b.clone()
        };
        b.broadcast_to(&sb)
    }
}

/// The size of the square matrices in the last two axes of `a`.
fn square(op: &'static str, a: &Tensor) -> Result<usize> {
    a.expect_float(op)?;
    let s = a.shape();
    if s.len() < 2 || s[s.len() - 1] != s[s.len() - 2] {
        return Err(Error::InvalidArgument {
            op,
            message: format!(
                "needs square matrices in the last two axes, got a tensor of shape {s:?}"
            ),
        });
    }
    Ok(s[s.len() - 1])
}

/// The size `n` of the matrices whose packed LU factors `f` holds (`[.., n, n + 1]`).
fn packed_size(op: &'static str, f: &Tensor) -> Result<usize> {
    let s = f.shape();
    match s.len() {
        r if r >= 2 && s[r - 1] == s[r - 2] + 1 => Ok(s[r - 2]),
        _ => Err(Error::InvalidArgument {
            op,
            message: format!(
                "needs packed LU factors [.., n, n + 1] (from `lu_factor`), got a tensor of shape {s:?}"
            ),
        }),
    }
}

/// Checks `a x = b` and plans it: `a` `[.., n, n]`, `b` `[.., n, k]` (batch axes broadcast)
/// or, beside a 2-D `a`, a vector `[n]`.
fn systems(op: &'static str, a: &Tensor, b: &Tensor) -> Result<Systems> {
    Tensor::expect_same_float(op, a, b)?;
    square(op, a)?;
    plan_systems(op, a.shape(), b)
}

/// [`systems`] for matrices of shape `a` (`[.., n, n]`; given apart from the tensor that
/// holds them, which may be their packed LU factors).
fn plan_systems(op: &'static str, a: &[usize], b: &Tensor) -> Result<Systems> {
    let (ra, n) = (a.len(), a[a.len() - 1]);
    let mismatch = |reason: String| Error::ShapeMismatch {
        op,
        lhs: a.to_vec(),
        rhs: b.shape().to_vec(),
        reason,
    };
    let rb = b.ndim();
    if rb == 0 {
        return Err(mismatch(
            "do not fit: the right-hand side needs at least one axis".into(),
        ));
    }
    if rb == 1 && ra > 2 {
        return Err(mismatch(
            "do not fit: a 1-D right-hand side goes with one matrix; for one vector per \
             matrix of a batch, give it a trailing axis of size 1 (`b.unsqueeze(-1)`)"
                .into(),
        ));
    }
    let vector = rb == 1;
    let rows = if vector {
        b.shape()[0]
    } else {
        b.shape()[rb - 2]
    };
    if rows != n {
        return Err(mismatch(format!(
            "do not fit: the matrices are {n} x {n} and the right-hand side has {rows} rows"
        )));
    }
    let k = if vector { 1 } else { b.shape()[rb - 1] };
    let bb = if vector {
        &[][..]
    } else {
        &b.shape()[..rb - 2]
    };
    let batch = broadcast_shapes(op, &a[..ra - 2], bb).map_err(|_| {
        mismatch(format!(
            "do not fit: batch axes {:?} and {bb:?} do not broadcast",
            &a[..ra - 2]
        ))
    })?;
    Ok(Systems {
        n,
        k,
        batch,
        vector,
    })
}

/// Element `(r, c)` of the matrix at batch position `i` of `x` (a layout whose last two
/// axes are the matrix), read in place through the strides.
fn reader<T: Element>(x: &Tensor, i: usize) -> impl Fn(usize, usize) -> T + '_ {
    let l = &x.layout;
    let nb = l.shape.len() - 2;
    let base = unravel_offset(i, &l.shape[..nb], &l.strides[..nb], l.offset) as isize;
    let (rs, cs) = (l.strides[nb], l.strides[nb + 1]);
    let data = x.storage_slice::<T>();
    move |r, c| data[(base + r as isize * rs + c as isize * cs) as usize]
}

/// The `rows x cols` matrix at batch position `i` of `x`, copied row-major into `dst`.
fn gather<T: Element>(x: &Tensor, i: usize, dst: &mut [T]) {
    if let Some(src) = block(x, i, false) {
        dst.copy_from_slice(src);
        return;
    }
    let cols = x.shape()[x.ndim() - 1];
    let at = reader::<T>(x, i);
    for (e, d) in dst.iter_mut().enumerate() {
        *d = at(e / cols, e % cols);
    }
}

/// The storage of the matrix at batch position `i` of `x` where it is one dense block,
/// row-major (or column-major with `columns`).
fn block<T: Element>(x: &Tensor, i: usize, columns: bool) -> Option<&[T]> {
    let l = &x.layout;
    let nb = l.shape.len() - 2;
    let (rows, cols) = (l.shape[nb], l.shape[nb + 1]);
    let (rs, cs) = (l.strides[nb], l.strides[nb + 1]);
    let dense = if columns {
        (rs == 1 || cols <= 1) && (cs == rows as isize || rows <= 1)
    } else {
        (cs == 1 || rows <= 1) && (rs == cols as isize || cols <= 1)
    };
    if !dense || rows * cols == 0 {
        return None;
    }
    let base = unravel_offset(i, &l.shape[..nb], &l.strides[..nb], l.offset);
    Some(&x.storage_slice::<T>()[base..base + rows * cols])
}

/// The matrix at batch position `i` of `x` as a faer matrix (column-major).
fn owned<T: Float + faer::traits::ComplexField>(
    x: &Tensor,
    i: usize,
    rows: usize,
    cols: usize,
) -> faer::Mat<T> {
    faer::Mat::from_fn(rows, cols, reader::<T>(x, i))
}

/// Where the algorithm broke down on one matrix of a batch, as an error.
fn breakdown(op: &'static str, shape: &[usize], batch: &[usize], at: usize, what: &str) -> Error {
    let which = if batch.is_empty() {
        String::new()
    } else {
        format!("matrix {at} of the batch {batch:?}, ")
    };
    Error::InvalidArgument {
        op,
        message: format!("{which}{what} (a tensor of shape {shape:?})"),
    }
}

/// The first batch position whose matrix fails `check`, with its reason.
fn first_failure(
    count: usize,
    check: impl Fn(usize) -> Option<String> + Sync + Send,
) -> Option<(usize, String)> {
    (0..count)
        .into_par_iter()
        .filter_map(|i| check(i).map(|why| (i, why)))
        .min_by_key(|(i, _)| *i)
}

/// `f` of each matrix's block of `out` (`per` elements each, in parallel), `x` the input
/// the blocks are computed from; the first matrix where `f` failed, with its reason, is an
/// error of `op`.
fn each_matrix<T: Send>(
    op: &'static str,
    x: &Tensor,
    out: &mut [T],
    per: usize,
    f: impl Fn(usize, &mut [T]) -> std::result::Result<(), String> + Sync + Send,
) -> Result<()> {
    let done: Vec<std::result::Result<(), String>> = out
        .par_chunks_mut(per)
        .enumerate()
        .map(|(i, d)| f(i, d))
        .collect();
    match done
        .into_iter()
        .enumerate()
        .find_map(|(i, r)| r.err().map(|w| (i, w)))
    {
        Some((at, why)) => Err(breakdown(
            op,
            x.shape(),
            &x.shape()[..x.ndim() - 2],
            at,
            &why,
        )),
        None => Ok(()),
    }
}

/// Whether the vector `v` is to be negated so that its component of largest magnitude (the
/// first of equals) is positive: the sign of a singular or eigenvector, fixed.
fn flipped<T: Float>(v: &[T]) -> bool {
    let mut big = 0;
    for (r, x) in v.iter().enumerate() {
        if x.abs() > v[big].abs() {
            big = r;
        }
    }
    v.get(big).is_some_and(|x| *x < T::zero())
}

/// The right-hand sides of `plan`, laid out `[batch, n, k]`, each block ready to be solved
/// in place.
fn rhs_blocks<T: Float>(plan: &Systems, b: &Tensor) -> Vec<T> {
    let per = plan.n * plan.k;
    let count = numel(&plan.batch);
    let mut out = crate::pool::buffer(count * per, T::zero());
    if per > 0 {
        out.par_chunks_mut(per)
            .enumerate()
            .for_each(|(i, dst)| gather(b, i, dst));
    }
    out
}

/// A faer mutable view of a row-major block.
fn view_mut<T>(block: &mut [T], rows: usize, cols: usize) -> faer::MatMut<'_, T> {
    faer::MatMut::from_row_major_slice_mut(block, rows, cols)
}

/// How faer spreads one factorization or solve over threads: one matrix of a batch runs on
/// one thread (the batch is spread instead), and a lone matrix too below `PAR_N` (faer's
/// threads cost more than they save there: its LU of 1024 x 1024 f32 took 15 ms alone and
/// 23 ms on two threads, 97 and 76 ms at 2048).
fn parallelism(n: usize, count: usize) -> faer::Par {
    const PAR_N: usize = 1536;
    if count == 1 && n >= PAR_N {
        faer::Par::rayon(0)
    } else {
        faer::Par::Seq
    }
}

/// The LU factorization with partial pivoting of `lu` in place, unblocked (LAPACK's
/// `getf2`), `perm[i]` the row that became row `i`: for singular matrices, whose zero
/// pivots it steps over as LAPACK does (the column below one is zero already), where
/// faer's divides by them. The same pivots as faer's (the first row of largest magnitude).
fn lu_unblocked<T: Float + faer::traits::ComplexField>(lu: &mut faer::Mat<T>, perm: &mut [usize]) {
    let n = lu.nrows();
    for (i, p) in perm.iter_mut().enumerate() {
        *p = i;
    }
    for j in 0..n {
        let mut top = j;
        for i in j + 1..n {
            if lu[(i, j)].abs() > lu[(top, j)].abs() {
                top = i;
            }
        }
        if top != j {
            for c in 0..n {
                let t = lu[(j, c)];
                lu[(j, c)] = lu[(top, c)];
                lu[(top, c)] = t;
            }
            perm.swap(j, top);
        }
        let pivot = lu[(j, j)];
        if pivot == T::zero() {
            continue;
        }
        for i in j + 1..n {
            lu[(i, j)] /= pivot;
        }
        for c in j + 1..n {
            let u = lu[(j, c)];
            for i in j + 1..n {
                lu[(i, c)] = lu[(i, c)] - lu[(i, j)] * u;
            }
        }
    }
}

impl Tensor {
    /// The solution `x` of `self @ x = b`, by LU factorization with partial pivoting
    /// (NumPy's `linalg.solve`). `self` holds square matrices `[.., n, n]`; `b` is
    /// `[.., n, k]` (batch axes broadcast against `self`'s) or, for one 2-D matrix, a vector
    /// `[n]`. Panics on mismatched shapes or dtypes, and on the CPU for a singular matrix
    /// (an exactly zero pivot); see [`Tensor::try_solve`]. On the GPU a singular matrix
    /// gives non-finite values, as in JAX.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![2.0f64, 1.0, 1.0, 3.0], &[2, 2]);
    /// let b = Tensor::from_vec(vec![3.0f64, 5.0], &[2]);
    /// let x = a.solve(&b);
    /// assert!((a.matmul(&x) - &b).abs().max().item::<f64>() < 1e-12);
    /// ```
    #[track_caller]
    pub fn solve(&self, b: &Tensor) -> Tensor {
        unwrap(self.try_solve(b))
    }

    /// [`Tensor::solve`], returning an error instead of panicking.
    pub fn try_solve(&self, b: &Tensor) -> Result<Tensor> {
        const OP: &str = "solve";
        systems(OP, self, b)?;
        // `self` unbroadcast: a matrix shared by a batch of right-hand sides is factored once
        self.factor(OP)?
            .try_lu_solve(b, false)
            .map_err(|e| e.for_op(OP))
    }

    /// The inverses of square matrices `[.., n, n]` (a solve with the identity; to apply an
    /// inverse, [`Tensor::solve`] is cheaper and more accurate). Panics for non-square input,
    /// and on the CPU for a singular matrix; see [`Tensor::try_inv`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![2.0f64, 0.0, 0.0, 4.0], &[2, 2]);
    /// assert_eq!(a.inv().to_vec::<f64>(), vec![0.5, 0.0, 0.0, 0.25]);
    /// ```
    #[track_caller]
    pub fn inv(&self) -> Tensor {
        unwrap(self.try_inv())
    }

    /// [`Tensor::inv`], returning an error instead of panicking.
    pub fn try_inv(&self) -> Result<Tensor> {
        const OP: &str = "inv";
        let n = square(OP, self)?;
        let eye = Tensor::eye(n, self.dtype()).try_to_device(&self.device())?;
        self.factor(OP)?
            .try_lu_solve(&eye, false)
            .map_err(|e| e.for_op(OP))
    }

    /// `log |det a|` of square matrices `[.., n, n]`, `[..]`, from their LU factorization
    /// (the sum of the logarithms of `|U|`'s diagonal; the sign, `±1`, has no derivative and
    /// is left out, as in JAX's `slogdet`; [`Tensor::lu_sign`] gives it); `-inf` for a
    /// singular matrix. For a positive definite matrix, `2 *
    /// a.cholesky().diagonal().ln().sum()` is cheaper. Panics for non-square input; see
    /// [`Tensor::try_logabsdet`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![0.0f64, 2.0, -3.0, 1.0], &[2, 2]); // det 6
    /// assert!((a.logabsdet().item::<f64>() - 6f64.ln()).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn logabsdet(&self) -> Tensor {
        unwrap(self.try_logabsdet())
    }

    /// [`Tensor::logabsdet`], returning an error instead of panicking.
    pub fn try_logabsdet(&self) -> Result<Tensor> {
        self.factor("logabsdet")?.try_lu_logabsdet()
    }

    /// The determinants of square matrices `[.., n, n]`, `[..]`, from their LU
    /// factorization: the sign of the permutation and of `U`'s diagonal times `exp(log |det
    /// a|)` (as JAX computes it, so that no partial product overflows where the determinant
    /// does not); 0 for a singular matrix. Panics for non-square input; see
    /// [`Tensor::try_det`]. Its derivative in the transforms is `det(a) a⁻ᵀ`, by a solve
    /// with the same factors: at a singular matrix the CPU reports that solve's error (JAX
    /// gives NaN there).
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![0.0f64, 2.0, 3.0, 1.0], &[2, 2]); // 0 - 6
    /// assert!((a.det().item::<f64>() + 6.0).abs() < 1e-12);
    /// assert_eq!(Tensor::ones(&[2, 2], DType::F64).det().item::<f64>(), 0.0);
    /// ```
    #[track_caller]
    pub fn det(&self) -> Tensor {
        unwrap(self.try_det())
    }

    /// [`Tensor::det`], returning an error instead of panicking.
    pub fn try_det(&self) -> Result<Tensor> {
        let f = self.factor("det")?;
        f.try_lu_sign()?.try_mul(&f.try_lu_logabsdet()?.exp())
    }

    /// The sign (`1`, `-1`, or `0` for a singular matrix) and the logarithm of the absolute
    /// value of the determinants of square matrices `[.., n, n]`, each `[..]`, from one LU
    /// factorization (NumPy's and JAX's `slogdet`): `det = sign * exp(logabsdet)` without
    /// overflow. Panics for non-square input; see [`Tensor::try_slogdet`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![0.0f64, 2.0, 3.0, 1.0], &[2, 2]); // det -6
    /// let (sign, log) = a.slogdet();
    /// assert_eq!(sign.item::<f64>(), -1.0);
    /// assert!((log.item::<f64>() - 6f64.ln()).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn slogdet(&self) -> (Tensor, Tensor) {
        unwrap(self.try_slogdet())
    }

    /// [`Tensor::slogdet`], returning an error instead of panicking.
    pub fn try_slogdet(&self) -> Result<(Tensor, Tensor)> {
        let f = self.factor("slogdet")?;
        Ok((f.try_lu_sign()?, f.try_lu_logabsdet()?))
    }

    /// The sign of `det a` (`1`, `-1`, or `0` for a singular matrix) from the packed LU
    /// factors of `a` ([`Tensor::lu_factor`]): the parity of the row permutation and the
    /// signs of `U`'s diagonal.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]); // det -2
    /// assert_eq!(a.lu_factor().lu_sign().item::<f64>(), -1.0);
    /// ```
    #[track_caller]
    pub fn lu_sign(&self) -> Tensor {
        unwrap(self.try_lu_sign())
    }

    /// [`Tensor::lu_sign`], returning an error instead of panicking.
    pub fn try_lu_sign(&self) -> Result<Tensor> {
        let n = packed_size("lu_sign", self)?;
        #[cfg(feature = "gpu")]
        if !self.on_cpu() {
            return crate::gpu::linalg::lu_sign(self, n);
        }
        let batch = &self.shape()[..self.ndim() - 2];
        Ok(float_dispatch!(self.dtype(), T => {
            let signs: Vec<T> = (0..numel(batch))
                .into_par_iter()
                .map(|i| {
                    let at = reader::<T>(self, i);
                    let mut negative = false;
                    for r in 0..n {
                        let d = at(r, r);
                        if d == T::zero() {
                            return T::zero();
                        }
                        negative ^= d < T::zero();
                    }
                    // the permutation's parity: a cycle of length m is m - 1 swaps
                    let mut seen = vec![false; n];
                    for start in 0..n {
                        let mut r = start;
                        while !seen[r] {
                            seen[r] = true;
                            r = at(r, n).to_f64() as usize;
                            negative ^= !seen[r];
                        }
                    }
                    T::from_f64(if negative { -1.0 } else { 1.0 })
                })
                .collect();
            Tensor::from_data(signs, batch)
        }))
    }

    /// `log |det a|` from the packed LU factors of `a` ([`Tensor::lu_factor`]).
    pub fn try_lu_logabsdet(&self) -> Result<Tensor> {
        let n = packed_size("lu_logabsdet", self)?;
        let u = self.try_slice(-1, 0, n)?;
        u.try_diagonal()?.abs().ln().try_sum_axis(-1, false)
    }

    /// The LU factorization with partial pivoting of square matrices `[.., n, n]`, packed
    /// as `[.., n, n + 1]`: in the first `n` columns the unit lower factor `L` below the
    /// diagonal and the upper factor `U` on and above it, in the last column the row
    /// permutation, `p[i]` being the row of `self` that became row `i` (`self[p] = L U`).
    /// For [`Tensor::lu_solve`], which solves with these factors as often as needed (with
    /// the matrix or its transpose). A singular matrix gives factors with a zero on `U`'s
    /// diagonal, which [`Tensor::lu_solve`] reports (on the CPU). Panics for non-square
    /// input; see [`Tensor::try_lu_factor`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]);
    /// let lu = a.lu_factor(); // row 1 is the pivot: p = [1, 0]
    /// assert_eq!(lu.to_vec::<f64>(), vec![3.0, 4.0, 1.0, 1.0 / 3.0, 2.0 - 4.0 / 3.0, 0.0]);
    /// let b = Tensor::from_vec(vec![5.0f64, 6.0], &[2]);
    /// let x = lu.lu_solve(&b, false);
    /// assert!((a.matmul(&x) - &b).abs().max().item::<f64>() < 1e-12);
    /// ```
    #[track_caller]
    pub fn lu_factor(&self) -> Tensor {
        unwrap(self.try_lu_factor())
    }

    /// [`Tensor::lu_factor`], returning an error instead of panicking.
    pub fn try_lu_factor(&self) -> Result<Tensor> {
        self.factor("lu_factor")
    }

    /// [`Tensor::lu_factor`], errors naming `op`.
    fn factor(&self, op: &'static str) -> Result<Tensor> {
        let n = square(op, self)?;
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::linalg::lu_factor(self, n);
        }
        let batch = &self.shape()[..self.ndim() - 2];
        let count = numel(batch);
        let mut shape = batch.to_vec();
        shape.extend([n, n + 1]);
        let par = parallelism(n, count);
        Ok(float_dispatch!(self.dtype(), T => {
            // every element is written below
            let mut out = crate::pool::buffer(count * n * (n + 1), T::zero());
            if n > 0 {
                out.par_chunks_mut(n * (n + 1))
                    .enumerate()
                    .for_each(|(i, packed)| {
                        let mut lu = owned::<T>(self, i, n, n);
                        let (mut perm, mut perm_inv) = (vec![0usize; n], vec![0usize; n]);
                        use faer::linalg::lu::partial_pivoting::factor as lu;
                        let mut mem = faer::dyn_stack::MemBuffer::new(
                            lu::lu_in_place_scratch::<usize, T>(n, n, par, Default::default()),
                        );
                        lu::lu_in_place(
                            lu.as_mut(),
                            &mut perm,
                            &mut perm_inv,
                            par,
                            faer::dyn_stack::MemStack::new(&mut mem),
                            Default::default(),
                        );
                        if (0..n).any(|r| lu[(r, r)] == T::zero()) {
                            // singular: faer divides by the zero pivot (NaN below it)
                            lu = owned::<T>(self, i, n, n);
                            lu_unblocked(&mut lu, &mut perm);
                        }
                        for c in 0..n {
                            for (r, &v) in lu.col_as_slice(c).iter().enumerate() {
                                packed[r * (n + 1) + c] = v;
                            }
                        }
                        for (r, &p) in perm.iter().enumerate() {
                            packed[r * (n + 1) + n] = T::from_f64(p as f64);
                        }
                    });
            }
            Tensor::from_data(out, &shape)
        }))
    }

    /// The solution `x` of `a @ x = b` (or `aᵀ @ x = b` with `transpose`) from the packed LU
    /// factors `self` of `a` made by [`Tensor::lu_factor`], `[.., n, n + 1]`; `b` as in
    /// [`Tensor::solve`] (batch axes broadcast against the factors'). Panics on mismatched
    /// shapes or dtypes; see [`Tensor::try_lu_solve`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![2.0f64, 1.0, 1.0, 3.0], &[2, 2]);
    /// let b = Tensor::from_vec(vec![3.0f64, 5.0], &[2]);
    /// let x = a.lu_factor().lu_solve(&b, true);
    /// assert!((a.t().matmul(&x) - &b).abs().max().item::<f64>() < 1e-12);
    /// ```
    #[track_caller]
    pub fn lu_solve(&self, b: &Tensor, transpose: bool) -> Tensor {
        unwrap(self.try_lu_solve(b, transpose))
    }

    /// [`Tensor::lu_solve`], returning an error instead of panicking.
    pub fn try_lu_solve(&self, b: &Tensor, transpose: bool) -> Result<Tensor> {
        const OP: &str = "lu_solve";
        Tensor::expect_same_float(OP, self, b)?;
        let s = self.shape();
        let n = packed_size(OP, self)?;
        // checked and reported as the matrices' shape, `[.., n, n]`
        let mut matrices = s[..s.len() - 1].to_vec();
        matrices.push(n);
        let plan = plan_systems(OP, &matrices, b)?;
        let mut sf = plan.batch.clone();
        sf.extend([n, n + 1]);
        let factors = self.contiguous().broadcast_to(&sf);
        let b = plan.operands_rhs(b);
        #[cfg(feature = "gpu")]
        if factors.on_gpu() {
            return crate::gpu::linalg::lu_solve(&factors, &b, &plan, transpose);
        }
        let (k, count) = (plan.k, numel(&plan.batch));
        let par = parallelism(n, count);
        Ok(float_dispatch!(self.dtype(), T => {
            // a singular matrix (a zero pivot) is reported here, not by `lu_factor`, so
            // that its log-determinant is -inf and its determinant 0
            let singular = (k > 0).then(|| first_failure(count, |i| {
                let at = reader::<T>(&factors, i);
                (0..n).find(|&r| at(r, r) == T::zero()).map(|p| {
                    format!("is singular: pivot {p} of its LU factorization is zero")
                })
            })).flatten();
            if let Some((at, why)) = singular {
                return Err(breakdown(OP, &matrices, &plan.batch, at, &why));
            }
            let mut out = rhs_blocks::<T>(&plan, &b);
            if n > 0 && k > 0 {
                let data = factors.storage_slice::<T>();
                let l = &factors.layout;
                let nb = plan.batch.len();
                out.par_chunks_mut(n * k).enumerate().for_each(|(i, x)| {
                    let base = unravel_offset(i, &l.shape[..nb], &l.strides[..nb], l.offset);
                    let packed = &data[base..base + n * (n + 1)];
                    let lu = faer::MatRef::from_row_major_slice_with_stride(packed, n, n, n + 1);
                    let perm: Vec<usize> =
                        (0..n).map(|r| packed[r * (n + 1) + n].to_f64() as usize).collect();
                    let mut perm_inv = vec![0usize; n];
                    for (r, &p) in perm.iter().enumerate() {
                        perm_inv[p] = r;
                    }
                    let perm = faer::perm::PermRef::new_checked(&perm, &perm_inv, n);
                    use faer::linalg::lu::partial_pivoting::solve as lu;
                    let mut mem = faer::dyn_stack::MemBuffer::new(
                        lu::solve_in_place_scratch::<usize, T>(n, k, par),
                    );
                    let stack = faer::dyn_stack::MemStack::new(&mut mem);
                    let rhs = view_mut(x, n, k);
                    if transpose {
                        lu::solve_transpose_in_place(lu, lu, perm, rhs, par, stack);
                    } else {
                        lu::solve_in_place(lu, lu, perm, rhs, par, stack);
                    }
                });
            }
            Tensor::from_data(out, &plan.out_shape())
        }))
    }

    /// The solution `x` of `self @ x = b` for triangular matrices `self`: only the lower
    /// triangle (with `lower`) or the upper one is read, diagonal included. Shapes as in
    /// [`Tensor::solve`]. Panics on mismatched shapes or dtypes, and on the CPU for a zero on
    /// the diagonal; see [`Tensor::try_solve_triangular`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let l = Tensor::from_vec(vec![2.0f64, 99.0, 1.0, 4.0], &[2, 2]); // 99 is not read
    /// let x = l.solve_triangular(&Tensor::from_vec(vec![2.0f64, 9.0], &[2]), true);
    /// assert_eq!(x.to_vec::<f64>(), vec![1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn solve_triangular(&self, b: &Tensor, lower: bool) -> Tensor {
        unwrap(self.try_solve_triangular(b, lower))
    }

    /// [`Tensor::solve_triangular`], returning an error instead of panicking.
    pub fn try_solve_triangular(&self, b: &Tensor, lower: bool) -> Result<Tensor> {
        const OP: &str = "solve_triangular";
        let plan = systems(OP, self, b)?;
        let (a, b) = plan.operands(self, b);
        #[cfg(feature = "gpu")]
        if a.on_gpu() {
            return crate::gpu::linalg::solve_triangular(&a, &b, &plan, lower);
        }
        let (n, k) = (plan.n, plan.k);
        let count = numel(&plan.batch);
        Ok(float_dispatch!(a.dtype(), T => {
            let mut out = rhs_blocks::<T>(&plan, &b);
            if n > 0 && count > 0 {
                let zero = first_failure(count, |i| {
                    let at = reader::<T>(&a, i);
                    (0..n).find(|&j| at(j, j) == T::zero())
                        .map(|p| format!("is singular: its diagonal element {p} is zero"))
                });
                if let Some((at, why)) = zero {
                    return Err(breakdown(OP, self.shape(), &plan.batch, at, &why));
                }
                out.par_chunks_mut(n * k.max(1)).enumerate().for_each(|(i, x)| {
                    if k == 0 {
                        return;
                    }
                    let x = view_mut(x, n, k);
                    let par = parallelism(n, count);
                    with_block::<T, _>(&a, i, n, n, |m| {
                        if lower {
                            faer::linalg::triangular_solve::solve_lower_triangular_in_place(m, x, par);
                        } else {
                            faer::linalg::triangular_solve::solve_upper_triangular_in_place(m, x, par);
                        }
                    });
                });
            }
            Tensor::from_data(out, &plan.out_shape())
        }))
    }

    /// The lower Cholesky factor `l` of symmetric positive definite matrices `[.., n, n]`:
    /// `l @ l.t() = (self + self.t()) / 2` (the input is symmetrized, as JAX's `cholesky`
    /// does, so that its derivative is defined for every element), zeros above the
    /// diagonal. Panics for non-square input, and on the CPU for a matrix that is not
    /// positive definite; see [`Tensor::try_cholesky`]. On the GPU such a matrix gives
    /// non-finite values, as in JAX.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![4.0f64, 2.0, 2.0, 5.0], &[2, 2]);
    /// assert_eq!(a.cholesky().to_vec::<f64>(), vec![2.0, 0.0, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn cholesky(&self) -> Tensor {
        unwrap(self.try_cholesky())
    }

    /// [`Tensor::cholesky`], returning an error instead of panicking.
    pub fn try_cholesky(&self) -> Result<Tensor> {
        const OP: &str = "cholesky";
        let n = square(OP, self)?;
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::linalg::cholesky(self, n);
        }
        let batch = &self.shape()[..self.ndim() - 2];
        let count = numel(batch);
        let par = parallelism(n, count);
        Ok(float_dispatch!(self.dtype(), T => {
            // every element is written below
            let mut out = crate::pool::buffer(count * n * n, T::zero());
            if n > 0 {
                let half = T::from_f64(0.5);
                each_matrix(OP, self, &mut out, n * n, |i, l| {
                        // the lower triangle of the symmetric part (all the factorization reads)
                        let at = reader::<T>(self, i);
                        let mut a = faer::Mat::<T>::zeros(n, n);
                        for c in 0..n {
                            let col = a.col_as_slice_mut(c);
                            for (r, v) in col.iter_mut().enumerate().skip(c) {
                                *v = (at(r, c) + at(c, r)) * half;
                            }
                        }
                        use faer::linalg::cholesky::llt::factor as llt;
                        let mut mem = faer::dyn_stack::MemBuffer::new(
                            llt::cholesky_in_place_scratch::<T>(n, par, Default::default()),
                        );
                        let done = llt::cholesky_in_place(
                            a.as_mut(),
                            Default::default(),
                            par,
                            faer::dyn_stack::MemStack::new(&mut mem),
                            Default::default(),
                        );
                        match done {
                            Ok(_) => {
                                for c in 0..n {
                                    for (r, &v) in a.col_as_slice(c).iter().enumerate().skip(c) {
                                        l[r * n + c] = v;
                                    }
                                }
                                for r in 0..n {
                                    l[r * n + r + 1..(r + 1) * n].fill(T::zero());
                                }
                                Ok(())
                            }
                            Err(llt::LltError::NonPositivePivot { index }) => Err(format!(
                                "is not positive definite: pivot {index} of its Cholesky factorization is not positive"
                            )),
                        }
                })?;
            }
            Tensor::from_data(out, self.shape())
        }))
    }

    /// The eigenvalues `w` `[.., n]` (ascending) and eigenvectors `v` `[.., n, n]` (the
    /// columns, orthonormal: `self ≈ v @ diag(w) @ v.mt()`) of symmetric matrices
    /// `[.., n, n]` (NumPy's and JAX's `eigh`). The input is symmetrized, `(self +
    /// self.mt()) / 2`, as JAX's `eigh` does, so that its derivative is defined for every
    /// element. Each eigenvector's sign is fixed: its component of largest magnitude (the
    /// first of equals) is positive, so that the CPU and the GPU agree. Panics for
    /// non-square input and, on the CPU, where the iteration does not converge (a matrix
    /// holding NaN); see [`Tensor::try_eigh`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![2.0f64, 1.0, 1.0, 2.0], &[2, 2]);
    /// let (w, v) = a.eigh();
    /// assert!((w.to_vec::<f64>()[0] - 1.0).abs() < 1e-12);
    /// assert!((w.to_vec::<f64>()[1] - 3.0).abs() < 1e-12);
    /// let back = v.matmul(&w.diag_embed(2, 2)).matmul(&v.mt());
    /// assert!((back - &a).abs().max().item::<f64>() < 1e-12);
    /// ```
    #[track_caller]
    pub fn eigh(&self) -> (Tensor, Tensor) {
        unwrap(self.try_eigh())
    }

    /// [`Tensor::eigh`], returning an error instead of panicking.
    pub fn try_eigh(&self) -> Result<(Tensor, Tensor)> {
        Ok(crate::packed::eigh_parts(&self.try_eigh_packed()?))
    }

    /// The eigenvalues of [`Tensor::eigh`] alone, `[.., n]`, ascending (cheaper on the CPU:
    /// no eigenvectors are formed).
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![3.0f64, 0.0, 0.0, -1.0], &[2, 2]);
    /// assert_eq!(a.eigvalsh().to_vec::<f64>(), vec![-1.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn eigvalsh(&self) -> Tensor {
        unwrap(self.try_eigvalsh())
    }

    /// [`Tensor::eigvalsh`], returning an error instead of panicking.
    pub fn try_eigvalsh(&self) -> Result<Tensor> {
        if self.on_cpu() {
            return symmetric_evd(self, "eigvalsh", false);
        }
        Ok(self.try_eigh()?.0.contiguous())
    }

    /// [`Tensor::eigh`] packed into one tensor `[.., n + 1, n]`: rows `0..n` of each matrix
    /// are the eigenvectors (as columns), row `n` the eigenvalues. The transforms compute
    /// one decomposition for the values, the vectors and their derivatives.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 2.0], &[2, 2]);
    /// assert_eq!(a.eigh_packed().to_vec::<f64>(), vec![1.0, 0.0, 0.0, 1.0, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn eigh_packed(&self) -> Tensor {
        unwrap(self.try_eigh_packed())
    }

    /// [`Tensor::eigh_packed`], returning an error instead of panicking.
    pub fn try_eigh_packed(&self) -> Result<Tensor> {
        const OP: &str = "eigh";
        let n = square(OP, self)?;
        #[cfg(feature = "gpu")]
        if !self.on_cpu() {
            return crate::gpu::linalg::eigh_packed(self, n);
        }
        let _ = n;
        symmetric_evd(self, OP, true)
    }

    /// The reduced QR decomposition of matrices `[.., m, n]` (NumPy's and JAX's `qr`, mode
    /// `"reduced"`): `q` `[.., m, k]` with orthonormal columns and `r` `[.., k, n]` upper
    /// triangular, `k = min(m, n)`, `self = q @ r`. The signs are fixed: `r`'s diagonal is
    /// non-negative (so the decomposition of a matrix of full column rank is unique, and
    /// the CPU and the GPU agree). Panics for fewer than two axes; see [`Tensor::try_qr`].
    /// Differentiable for `m >= n` (as in JAX).
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![3.0f64, 1.0, 4.0, 2.0, 0.0, 5.0], &[3, 2]);
    /// let (q, r) = a.qr();
    /// assert_eq!((q.shape(), r.shape()), (&[3, 2][..], &[2, 2][..]));
    /// assert!((q.matmul(&r) - &a).abs().max().item::<f64>() < 1e-12);
    /// assert!((q.mt().matmul(&q) - Tensor::eye(2, DType::F64)).abs().max().item::<f64>() < 1e-12);
    /// ```
    #[track_caller]
    pub fn qr(&self) -> (Tensor, Tensor) {
        unwrap(self.try_qr())
    }

    /// [`Tensor::qr`], returning an error instead of panicking.
    pub fn try_qr(&self) -> Result<(Tensor, Tensor)> {
        Ok(crate::packed::qr_parts(&self.try_qr_packed()?))
    }

    /// [`Tensor::qr`] packed into one tensor `[.., m + k, n]`: rows `0..m` hold `q` (in
    /// its first `k` columns, zeros after), rows `m..m + k` hold `r`. The transforms
    /// compute one decomposition for both factors and their derivatives.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![0.0f64, 2.0], &[2, 1]);
    /// assert_eq!(a.qr_packed().to_vec::<f64>(), vec![0.0, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn qr_packed(&self) -> Tensor {
        unwrap(self.try_qr_packed())
    }

    /// [`Tensor::qr_packed`], returning an error instead of panicking.
    pub fn try_qr_packed(&self) -> Result<Tensor> {
        const OP: &str = "qr";
        self.expect_float(OP)?;
        let (m, n) = self.matrix_dims(OP)?;
        #[cfg(feature = "gpu")]
        if !self.on_cpu() {
            return crate::gpu::linalg::qr_packed(self, m, n);
        }
        let k = m.min(n);
        let batch = &self.shape()[..self.ndim() - 2];
        let count = numel(batch);
        let mut shape = batch.to_vec();
        shape.extend([m + k, n]);
        let par = parallelism(m.max(n), count);
        Ok(float_dispatch!(self.dtype(), T => {
            let mut out = crate::pool::buffer(count * (m + k) * n, T::zero());
            if k > 0 {
                out.par_chunks_mut((m + k) * n).enumerate().for_each(|(i, dst)| {
                    use faer::linalg::{householder, qr::no_pivoting::factor as qr};
                    let mut a = owned::<T>(self, i, m, n);
                    let bs = qr::recommended_block_size::<T>(m, n);
                    let mut coeff = faer::Mat::<T>::zeros(bs, k);
                    let mut mem = faer::dyn_stack::MemBuffer::new(
                        qr::qr_in_place_scratch::<T>(m, n, bs, par, Default::default()).or(
                            householder::apply_block_householder_sequence_on_the_left_in_place_scratch::<T>(m, bs, k),
                        ),
                    );
                    let stack = faer::dyn_stack::MemStack::new(&mut mem);
                    qr::qr_in_place(a.as_mut(), coeff.as_mut(), par, stack, Default::default());
                    // the Householder vectors (unit diagonal), applied to the identity's
                    // first k columns: the thin q
                    let basis = faer::Mat::<T>::from_fn(m, k, |r, c| match r.cmp(&c) {
                        std::cmp::Ordering::Greater => a[(r, c)],
                        std::cmp::Ordering::Equal => T::from_f64(1.0),
                        std::cmp::Ordering::Less => T::zero(),
                    });
                    let mut q = faer::Mat::<T>::from_fn(m, k, |r, c| {
                        if r == c { T::from_f64(1.0) } else { T::zero() }
                    });
                    let stack = faer::dyn_stack::MemStack::new(&mut mem);
                    householder::apply_block_householder_sequence_on_the_left_in_place_with_conj(
                        basis.as_ref(),
                        coeff.as_ref(),
                        faer::Conj::No,
                        q.as_mut(),
                        par,
                        stack,
                    );
                    let (qs, rs) = dst.split_at_mut(m * n);
                    for j in 0..k {
                        // r's diagonal non-negative: column j of q and row j of r flipped
                        let flip = a[(j, j)] < T::zero();
                        let sign = |v: T| if flip { -v } else { v };
                        for r in 0..m {
                            qs[r * n + j] = sign(q[(r, j)]);
                        }
                        for c in j..n {
                            rs[j * n + c] = sign(a[(j, c)]);
                        }
                    }
                });
            }
            Tensor::from_data(out, &shape)
        }))
    }

    /// The reduced singular value decomposition of matrices `[.., m, n]` (NumPy's and
    /// JAX's `svd` with `full_matrices=False`): `u` `[.., m, k]` and `vt` `[.., k, n]` with
    /// orthonormal columns and rows, the singular values `s` `[.., k]` descending, `k =
    /// min(m, n)`, `self = u @ diag(s) @ vt`. Each pair of singular vectors has its sign
    /// fixed: the component of largest magnitude of `u`'s column positive (the first of
    /// equals), so that the CPU and the GPU agree. Panics for fewer than two axes, and on
    /// the CPU where the iteration does not converge (a matrix holding NaN); see
    /// [`Tensor::try_svd`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![3.0f64, 0.0, 0.0, 0.0, -2.0, 0.0], &[2, 3]);
    /// let (u, s, vt) = a.svd();
    /// assert_eq!(s.to_vec::<f64>(), vec![3.0, 2.0]);
    /// let back = u.matmul(&s.diag_embed(2, 2)).matmul(&vt);
    /// assert!((back - &a).abs().max().item::<f64>() < 1e-12);
    /// ```
    #[track_caller]
    pub fn svd(&self) -> (Tensor, Tensor, Tensor) {
        unwrap(self.try_svd())
    }

    /// [`Tensor::svd`], returning an error instead of panicking.
    pub fn try_svd(&self) -> Result<(Tensor, Tensor, Tensor)> {
        Ok(crate::packed::svd_parts(&self.try_svd_packed()?))
    }

    /// The singular values of [`Tensor::svd`] alone, `[.., k]`, descending (cheaper on the
    /// CPU: no singular vectors are formed).
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![0.0f64, 2.0, -5.0, 0.0], &[2, 2]);
    /// assert_eq!(a.svdvals().to_vec::<f64>(), vec![5.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn svdvals(&self) -> Tensor {
        unwrap(self.try_svdvals())
    }

    /// [`Tensor::svdvals`], returning an error instead of panicking.
    pub fn try_svdvals(&self) -> Result<Tensor> {
        if self.on_cpu() {
            return svd_cpu(self, "svdvals", false);
        }
        Ok(self.try_svd()?.1.contiguous())
    }

    /// [`Tensor::svd`] packed into one tensor `[.., m + k + 1, n]`: rows `0..m` hold `u`
    /// (in their first `k` columns, zeros after), rows `m..m + k` hold `vt`, the last row
    /// the singular values (then zeros). The transforms compute one decomposition for the
    /// three factors and their derivatives.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![0.0f64, 2.0], &[2, 1]);
    /// assert_eq!(a.svd_packed().to_vec::<f64>(), vec![0.0, 1.0, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn svd_packed(&self) -> Tensor {
        unwrap(self.try_svd_packed())
    }

    /// [`Tensor::svd_packed`], returning an error instead of panicking.
    pub fn try_svd_packed(&self) -> Result<Tensor> {
        const OP: &str = "svd";
        self.expect_float(OP)?;
        let (m, n) = self.matrix_dims(OP)?;
        #[cfg(feature = "gpu")]
        if !self.on_cpu() {
            return crate::gpu::linalg::svd_packed(self, m, n);
        }
        let _ = (m, n);
        svd_cpu(self, OP, true)
    }

    /// The lower triangle of the matrices in the last two axes, from diagonal `k` down
    /// (`k = 0` the main diagonal, `k < 0` below it, `k > 0` above it); zeros elsewhere
    /// (NumPy's `tril`). Panics for fewer than two axes; see [`Tensor::try_tril`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::ones(&[2, 3], DType::F32);
    /// assert_eq!(x.tril(0).to_vec::<f32>(), vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn tril(&self, k: isize) -> Tensor {
        unwrap(self.try_tril(k))
    }

    /// [`Tensor::tril`], returning an error instead of panicking.
    pub fn try_tril(&self, k: isize) -> Result<Tensor> {
        self.triangle("tril", |r, c| c - r <= k)
    }

    /// The upper triangle of the matrices in the last two axes, from diagonal `k` up; zeros
    /// elsewhere (NumPy's `triu`). Panics for fewer than two axes; see [`Tensor::try_triu`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::ones(&[2, 2], DType::F32);
    /// assert_eq!(x.triu(1).to_vec::<f32>(), vec![0.0, 1.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn triu(&self, k: isize) -> Tensor {
        unwrap(self.try_triu(k))
    }

    /// [`Tensor::triu`], returning an error instead of panicking.
    pub fn try_triu(&self, k: isize) -> Result<Tensor> {
        self.triangle("triu", |r, c| c - r >= k)
    }

    /// `self` where `keep(row, col)` holds in the last two axes, zero elsewhere (a NaN
    /// outside the kept part does not leak into the result).
    fn triangle(
        &self,
        op: &'static str,
        keep: impl Fn(isize, isize) -> bool + Sync,
    ) -> Result<Tensor> {
        let (rows, cols) = self.matrix_dims(op)?;
        if self.on_cpu() && self.dtype().is_float() && rows * cols > 0 {
            // one pass, each row its kept part and zeros (no mask to read)
            return Ok(float_dispatch!(self.dtype(), T => {
                let mut out = crate::pool::buffer(self.numel(), T::zero());
                out.par_chunks_mut(cols).enumerate().for_each(|(g, dst)| {
                    let (i, r) = (g / rows, g % rows);
                    let at = reader::<T>(self, i);
                    for (c, d) in dst.iter_mut().enumerate() {
                        *d = if keep(r as isize, c as isize) { at(r, c) } else { T::zero() };
                    }
                });
                Tensor::from_data(out, self.shape())
            }));
        }
        let mask: Vec<bool> = (0..rows * cols)
            .map(|e| keep((e / cols) as isize, (e % cols) as isize))
            .collect();
        self.keep_where(op, mask, rows, cols, self)
    }

    /// `values` (broadcast to `self`'s shape) where `mask` (`rows x cols`, row-major) is
    /// true, zero elsewhere, on `self`'s device.
    fn keep_where(
        &self,
        op: &'static str,
        mask: Vec<bool>,
        rows: usize,
        cols: usize,
        values: &Tensor,
    ) -> Result<Tensor> {
        let mask = Tensor::try_from_vec(mask, &[rows, cols])?.try_to_device(&self.device())?;
        let zero = values.scalar_like(0.0);
        Tensor::try_where_(&mask, values, &zero).map_err(|e| match e {
            Error::Gpu { message, .. } => Error::Gpu { op, message },
            other => other,
        })
    }

    /// The sizes of the last two axes, for an op on matrices.
    pub(crate) fn matrix_dims(&self, op: &'static str) -> Result<(usize, usize)> {
        let s = self.shape();
        if s.len() < 2 {
            return Err(Error::InvalidArgument {
                op,
                message: format!(
                    "needs matrices in the last two axes, got a tensor of shape {s:?}"
                ),
            });
        }
        Ok((s[s.len() - 2], s[s.len() - 1]))
    }

    /// The matrices in the last two axes transposed (a view; JAX's `.mT`). Panics for
    /// fewer than two axes; see [`Tensor::try_mt`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::zeros(&[5, 2, 3], DType::F32);
    /// assert_eq!(x.mt().shape(), &[5, 3, 2]);
    /// ```
    #[track_caller]
    pub fn mt(&self) -> Tensor {
        unwrap(self.try_mt())
    }

    /// [`Tensor::mt`], returning an error instead of panicking.
    pub fn try_mt(&self) -> Result<Tensor> {
        self.matrix_dims("mt")?;
        self.try_transpose(-2, -1)
    }

    /// The Moore–Penrose pseudo-inverse of the matrices in the last two axes, `[.., n, m]`
    /// for `[.., m, n]` (`jnp.linalg.pinv`), from the singular value decomposition:
    /// singular values at most `max(m, n) * eps * s_max` count as zero (NumPy's and JAX's
    /// default cutoff). Panics for fewer than two axes or a non-float tensor; see
    /// [`Tensor::try_pinv`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // a rank-one matrix: its pseudo-inverse is (u vᵀ)⁺ = v uᵀ / (|u|² |v|²)
    /// let a = Tensor::from_vec(vec![1.0f64, 2.0, 2.0, 4.0], &[2, 2]);
    /// let p = a.pinv().to_vec::<f64>();
    /// assert!((p[0] - 0.04).abs() < 1e-15 && (p[1] - 0.08).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn pinv(&self) -> Tensor {
        unwrap(self.try_pinv())
    }

    /// [`Tensor::pinv`], returning an error instead of panicking.
    pub fn try_pinv(&self) -> Result<Tensor> {
        const OP: &str = "pinv";
        self.expect_float(OP)?;
        let (m, n) = self.matrix_dims(OP)?;
        if m == 0 || n == 0 {
            let mut shape = self.shape().to_vec();
            let k = shape.len();
            shape.swap(k - 2, k - 1);
            return Tensor::zeros(&shape, self.dtype()).try_to_device(&self.device());
        }
        let (u, s, vt) = self.try_svd()?;
        let eps = if self.dtype() == DType::F32 {
            f32::EPSILON as f64
        } else {
            f64::EPSILON
        };
        let cutoff = &s.try_max_axis(-1, true)? * (m.max(n) as f64 * eps);
        let kept = s.try_gt(&cutoff)?;
        let inv = Tensor::try_where_(&kept, &s.try_recip()?, &s.scalar_like(0.0))?;
        vt.try_mt()?
            .try_matmul(&(&inv.try_unsqueeze(-1)? * &u.try_mt()?))
    }

    /// The least-squares solution `x` minimising `|a x - b|` (of least norm where that is
    /// not unique), `pinv(a) b` (`jnp.linalg.lstsq`'s solution, the same cutoff); `b` is a
    /// vector `[m]` or matrices `[.., m, k]`. Panics for bad shapes or dtypes; see
    /// [`Tensor::try_lstsq`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // a line through three points: intercept and slope
    /// let a = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 1.0, 1.0, 2.0], &[3, 2]);
    /// let y = Tensor::from_vec(vec![1.0f64, 3.0, 5.0], &[3]);
    /// let x = a.lstsq(&y).to_vec::<f64>();
    /// assert!((x[0] - 1.0).abs() < 1e-14 && (x[1] - 2.0).abs() < 1e-14);
    /// ```
    #[track_caller]
    pub fn lstsq(&self, b: &Tensor) -> Tensor {
        unwrap(self.try_lstsq(b))
    }

    /// [`Tensor::lstsq`], returning an error instead of panicking.
    pub fn try_lstsq(&self, b: &Tensor) -> Result<Tensor> {
        self.try_pinv()?.try_matmul(b)
    }

    /// The traces of the matrices in the last two axes, `[..]`: the sums of their
    /// diagonals (`jnp.trace`). Panics for fewer than two axes or a non-float tensor; see
    /// [`Tensor::try_trace`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::arange(0.0, 8.0, 1.0, DType::F64).reshape(&[2, 2, 2]);
    /// assert_eq!(x.trace().to_vec::<f64>(), vec![3.0, 11.0]);
    /// ```
    #[track_caller]
    pub fn trace(&self) -> Tensor {
        unwrap(self.try_trace())
    }

    /// [`Tensor::trace`], returning an error instead of panicking.
    pub fn try_trace(&self) -> Result<Tensor> {
        self.try_diagonal()?.try_sum_axis(-1, false)
    }

    /// The outer products of the vectors in the last axes of `self` and `other`,
    /// `[.., m, n]` with `out[.., i, j] = self[.., i] * other[.., j]` (the leading axes
    /// broadcast). Panics for 0-d operands, leading axes that do not broadcast or mixed
    /// dtypes; see [`Tensor::try_outer`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    /// let b = Tensor::from_vec(vec![3.0f32, 4.0, 5.0], &[3]);
    /// assert_eq!(a.outer(&b).to_vec::<f32>(), vec![3.0, 4.0, 5.0, 6.0, 8.0, 10.0]);
    /// ```
    #[track_caller]
    pub fn outer(&self, other: &Tensor) -> Tensor {
        unwrap(self.try_outer(other))
    }

    /// [`Tensor::outer`], returning an error instead of panicking.
    pub fn try_outer(&self, other: &Tensor) -> Result<Tensor> {
        let column = self.try_unsqueeze(-1)?;
        let row = other.try_unsqueeze(-2)?;
        column.try_binary("outer", crate::cpu::kernels::BinaryOp::Mul, &row)
    }

    /// The diagonals of the matrices in the last two axes, `[.., min(rows, cols)]` (a view).
    /// Panics for fewer than two axes; see [`Tensor::try_diagonal`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape(&[2, 3]);
    /// assert_eq!(x.diagonal().to_vec::<f32>(), vec![0.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn diagonal(&self) -> Tensor {
        unwrap(self.try_diagonal())
    }

    /// [`Tensor::diagonal`], returning an error instead of panicking.
    pub fn try_diagonal(&self) -> Result<Tensor> {
        let (rows, cols) = self.matrix_dims("diagonal")?;
        let l = &self.layout;
        let nb = l.shape.len() - 2;
        let mut shape = l.shape[..nb].to_vec();
        shape.push(rows.min(cols));
        let mut strides = l.strides[..nb].to_vec();
        strides.push(l.strides[nb] + l.strides[nb + 1]);
        Ok(self.with_layout(Layout {
            shape: shape.into_iter().collect(),
            strides: strides.into_iter().collect(),
            offset: l.offset,
        }))
    }

    /// Matrices `[.., rows, cols]` with `self`'s last axis on their diagonals and zeros
    /// elsewhere (PyTorch's `diag_embed`, the transpose of [`Tensor::diagonal`]); the last
    /// axis must have `min(rows, cols)` elements. Panics otherwise; see
    /// [`Tensor::try_diag_embed`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let v = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    /// assert_eq!(v.diag_embed(2, 2).to_vec::<f32>(), vec![1.0, 0.0, 0.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn diag_embed(&self, rows: usize, cols: usize) -> Tensor {
        unwrap(self.try_diag_embed(rows, cols))
    }

    /// [`Tensor::diag_embed`], returning an error instead of panicking.
    pub fn try_diag_embed(&self, rows: usize, cols: usize) -> Result<Tensor> {
        const OP: &str = "diag_embed";
        let len = self.shape().last().copied();
        if len != Some(rows.min(cols)) {
            return Err(Error::InvalidArgument {
                op: OP,
                message: format!(
                    "a tensor of shape {:?} cannot fill the diagonals of {rows} x {cols} matrices \
                     (its last axis needs {} elements)",
                    self.shape(),
                    rows.min(cols)
                ),
            });
        }
        let mut shape = self.shape()[..self.ndim() - 1].to_vec();
        shape.extend([rows, cols]);
        let k = rows.min(cols);
        if self.on_cpu() && self.dtype().is_float() && k > 0 {
            // zeros, and each matrix's diagonal
            return Ok(float_dispatch!(self.dtype(), T => {
                let diag = self.contiguous_data::<T>();
                let mut out = crate::pool::buffer(numel(&shape), T::zero());
                out.par_chunks_mut(rows * cols).enumerate().for_each(|(i, m)| {
                    m.fill(T::zero());
                    for (j, &v) in diag[i * k..(i + 1) * k].iter().enumerate() {
                        m[j * cols + j] = v;
                    }
                });
                Tensor::from_data(out, &shape)
            }));
        }
        // row i of the result takes element i (rows <= cols) or column j takes element j
        let values = if rows <= cols {
            self.try_unsqueeze(-1)?
        } else {
            self.try_unsqueeze(-2)?
        };
        let values = values.try_broadcast_to(&shape)?;
        let mask = (0..rows * cols).map(|e| e / cols == e % cols).collect();
        values.keep_where(OP, mask, rows, cols, &values)
    }
}

/// The eigendecomposition of the symmetric parts of the matrices of `a` on the CPU: with
/// `vectors`, packed as [`Tensor::eigh_packed`]; without, the eigenvalues `[.., n]`.
/// Order from which faer's symmetric eigensolver splits a tridiagonal matrix in two
/// (divide and conquer) instead of running the QR algorithm on it whole: 64, not faer's
/// 128. The gradient of a 256 x 256 `eigh` (two threads, alternated): 5.93-5.97 ms with
/// 128, 5.22-5.33 with 64, 5.34-5.38 with 32; per-example gradients of 32 x 32 ones, below
/// either, unchanged (3.0 ms); 16 made those slower (3.3-3.4 ms).
const EVD_SPLIT_FROM: usize = 64;

fn symmetric_evd(a: &Tensor, op: &'static str, vectors: bool) -> Result<Tensor> {
    use faer::linalg::evd;
    let n = square(op, a)?;
    let batch = &a.shape()[..a.ndim() - 2];
    let count = numel(batch);
    let rows = if vectors { n + 1 } else { 1 };
    let mut shape = a.shape().to_vec();
    if vectors {
        shape[a.ndim() - 2] = n + 1;
    } else {
        shape.pop();
    }
    let par = parallelism(n, count);
    Ok(float_dispatch!(a.dtype(), T => {
        // every element is written below
        let mut out = crate::pool::buffer(count * rows * n, T::zero());
        if n > 0 {
            let half = T::from_f64(0.5);
            let want = if vectors {
                evd::ComputeEigenvectors::Yes
            } else {
                evd::ComputeEigenvectors::No
            };
            each_matrix(op, a, &mut out, rows * n, |i, dst| {
                    // the lower triangle of the symmetric part (all the decomposition reads)
                    let at = reader::<T>(a, i);
                    let mut s = faer::Mat::<T>::zeros(n, n);
                    for c in 0..n {
                        let col = s.col_as_slice_mut(c);
                        for (r, v) in col.iter_mut().enumerate().skip(c) {
                            *v = (at(r, c) + at(c, r)) * half;
                        }
                    }
                    let mut w = faer::Col::<T>::zeros(n);
                    let mut u = faer::Mat::<T>::zeros(if vectors { n } else { 0 }, if vectors { n } else { 0 });
                    let params = evd::SelfAdjointEvdParams {
                        recursion_threshold: EVD_SPLIT_FROM,
                        ..<evd::SelfAdjointEvdParams as faer::Auto<T>>::auto()
                    };
                    let mut mem = faer::dyn_stack::MemBuffer::new(evd::self_adjoint_evd_scratch::<T>(
                        n,
                        want,
                        par,
                        params.into(),
                    ));
                    evd::self_adjoint_evd(
                        s.as_ref(),
                        w.as_diagonal_mut(),
                        vectors.then(|| u.as_mut()),
                        par,
                        faer::dyn_stack::MemStack::new(&mut mem),
                        params.into(),
                    )
                    .map_err(|_| {
                        "did not converge (does it hold NaN or infinity?)".to_string()
                    })?;
                    // ascending (NaN last), ties in the order found
                    let mut order: Vec<usize> = (0..n).collect();
                    order.sort_by(|&i, &j| {
                        w[i].partial_cmp(&w[j]).unwrap_or_else(|| w[i].is_nan().cmp(&w[j].is_nan()))
                    });
                    let (vecs, vals) = dst.split_at_mut(rows * n - n);
                    for (c, &k) in order.iter().enumerate() {
                        vals[c] = w[k];
                        if !vectors {
                            continue;
                        }
                        let col = u.col_as_slice(k);
                        let flip = flipped(col);
                        for (r, &v) in col.iter().enumerate() {
                            vecs[r * n + c] = if flip { -v } else { v };
                        }
                    }
                    Ok(())
            })?;
        }
        Tensor::from_data(out, &shape)
    }))
}

/// The singular value decompositions of the matrices of `a` on the CPU: with `vectors`,
/// packed as [`Tensor::svd_packed`]; without, the singular values `[.., k]`.
fn svd_cpu(a: &Tensor, op: &'static str, vectors: bool) -> Result<Tensor> {
    use faer::linalg::svd;
    a.expect_float(op)?;
    let (m, n) = a.matrix_dims(op)?;
    let nd = a.ndim();
    let k = m.min(n);
    let batch = &a.shape()[..nd - 2];
    let count = numel(batch);
    let mut shape = batch.to_vec();
    let per = if vectors {
        shape.extend([m + k + 1, n]);
        (m + k + 1) * n
    } else {
        shape.push(k);
        k
    };
    let par = parallelism(m.max(n), count);
    Ok(float_dispatch!(a.dtype(), T => {
        let mut out = crate::pool::buffer(count * per, T::zero());
        if k > 0 {
            let want = if vectors { svd::ComputeSvdVectors::Thin } else { svd::ComputeSvdVectors::No };
            each_matrix(op, a, &mut out, per, |i, dst| {
                    let mut s = faer::Col::<T>::zeros(k);
                    let (ur, vr) = if vectors { (m, n) } else { (0, 0) };
                    let mut u = faer::Mat::<T>::zeros(ur, if vectors { k } else { 0 });
                    let mut v = faer::Mat::<T>::zeros(vr, if vectors { k } else { 0 });
                    let mut mem = faer::dyn_stack::MemBuffer::new(svd::svd_scratch::<T>(
                        m,
                        n,
                        want,
                        want,
                        par,
                        Default::default(),
                    ));
                    with_block(a, i, m, n, |x| {
                        svd::svd(
                            x,
                            s.as_diagonal_mut(),
                            vectors.then(|| u.as_mut()),
                            vectors.then(|| v.as_mut()),
                            par,
                            faer::dyn_stack::MemStack::new(&mut mem),
                            Default::default(),
                        )
                    })
                    .map_err(|_| "did not converge (does it hold NaN or infinity?)".to_string())?;
                    // descending (NaN last), ties in the order found
                    let mut order: Vec<usize> = (0..k).collect();
                    order.sort_by(|&x, &y| {
                        s[y].partial_cmp(&s[x]).unwrap_or_else(|| s[x].is_nan().cmp(&s[y].is_nan()))
                    });
                    if !vectors {
                        for (c, &j) in order.iter().enumerate() {
                            dst[c] = s[j];
                        }
                        return Ok(());
                    }
                    let (us, rest) = dst.split_at_mut(m * n);
                    let (vts, ss) = rest.split_at_mut(k * n);
                    for (c, &j) in order.iter().enumerate() {
                        ss[c] = s[j];
                        let col = u.col_as_slice(j);
                        let flip = flipped(col);
                        let sign = |x: T| if flip { -x } else { x };
                        for (r, &x) in col.iter().enumerate() {
                            us[r * n + c] = sign(x);
                        }
                        for (r, &x) in v.col_as_slice(j).iter().enumerate() {
                            vts[c * n + r] = sign(x);
                        }
                    }
                    Ok(())
            })?;
        }
        Tensor::from_data(out, &shape)
    }))
}

/// `f` of the `rows x cols` matrix at batch position `i` of `x` as a faer view: in place
/// where it is a dense row- or column-major block, else a copy.
fn with_block<T: Float + faer::traits::ComplexField, R>(
    x: &Tensor,
    i: usize,
    rows: usize,
    cols: usize,
    f: impl FnOnce(faer::MatRef<'_, T>) -> R,
) -> R {
    if let Some(b) = block::<T>(x, i, false) {
        f(faer::MatRef::from_row_major_slice(b, rows, cols))
    } else if let Some(b) = block::<T>(x, i, true) {
        f(faer::MatRef::from_column_major_slice(b, rows, cols))
    } else {
        f(owned::<T>(x, i, rows, cols).as_ref())
    }
}
