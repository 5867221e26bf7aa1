//! Linear algebra over the last two axes (leading axes are batch axes and broadcast):
//! `solve` (LU with partial pivoting), `solve_triangular`, `cholesky`, and the structural
//! views and masks their derivatives are written with (`tril`, `triu`, `diagonal`,
//! `diag_embed`). The CPU path factors with faer, one matrix per batch position in
//! parallel; the GPU path runs one workgroup per matrix ([`crate::gpu`]).

use rayon::prelude::*;

use num_traits::Zero;

use crate::element::{Element, Float};
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
        let mut sb = self.batch.clone();
        sb.extend([self.n, self.k]);
        let b = if self.vector {
            b.unsqueeze(1)
        } else {
            b.clone()
        };
        (a.broadcast_to(&sa), b.broadcast_to(&sb))
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

/// Checks `a x = b` and plans it: `a` `[.., n, n]`, `b` `[.., n, k]` (batch axes broadcast)
/// or, beside a 2-D `a`, a vector `[n]`.
fn systems(op: &'static str, a: &Tensor, b: &Tensor) -> Result<Systems> {
    Tensor::expect_same_float(op, a, b)?;
    let n = square(op, a)?;
    let mismatch = |reason: String| Error::ShapeMismatch {
        op,
        lhs: a.shape().to_vec(),
        rhs: b.shape().to_vec(),
        reason,
    };
    let (ra, rb) = (a.ndim(), b.ndim());
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
    let batch = broadcast_shapes(op, &a.shape()[..ra - 2], bb).map_err(|_| {
        mismatch(format!(
            "do not fit: batch axes {:?} and {bb:?} do not broadcast",
            &a.shape()[..ra - 2]
        ))
    })?;
    Ok(Systems {
        n,
        k,
        batch,
        vector,
    })
}

/// The `rows x cols` matrix at batch position `i` of `x` (a layout whose last two axes are
/// the matrix), copied row-major into `dst`.
fn gather<T: Element>(x: &Tensor, i: usize, dst: &mut [T]) {
    let l = &x.layout;
    let nb = l.shape.len() - 2;
    let (rows, cols) = (l.shape[nb], l.shape[nb + 1]);
    let base = unravel_offset(i, &l.shape[..nb], &l.strides[..nb], l.offset) as isize;
    let (rs, cs) = (l.strides[nb], l.strides[nb + 1]);
    let data = x.storage_slice::<T>();
    for r in 0..rows {
        for c in 0..cols {
            dst[r * cols + c] = data[(base + r as isize * rs + c as isize * cs) as usize];
        }
    }
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

/// The right-hand sides of `plan`, laid out `[batch, n, k]`, each block ready to be solved
/// in place.
fn rhs_blocks<T: Float>(plan: &Systems, b: &Tensor) -> Vec<T> {
    let per = plan.n * plan.k;
    let count = numel(&plan.batch);
    let mut out = vec![T::zero(); count * per];
    if per > 0 {
        out.par_chunks_mut(per)
            .enumerate()
            .for_each(|(i, dst)| gather(b, i, dst));
    }
    out
}

/// A faer view of a row-major block.
fn view<T>(block: &[T], rows: usize, cols: usize) -> faer::MatRef<'_, T> {
    faer::MatRef::from_row_major_slice(block, rows, cols)
}

/// A faer mutable view of a row-major block.
fn view_mut<T>(block: &mut [T], rows: usize, cols: usize) -> faer::MatMut<'_, T> {
    faer::MatMut::from_row_major_slice_mut(block, rows, cols)
}

/// The index of the first zero on the diagonal of `m`, if any.
fn zero_pivot<T: Float>(m: faer::MatRef<'_, T>) -> Option<usize> {
    (0..m.nrows().min(m.ncols())).find(|&i| m[(i, i)] == T::zero())
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
        let plan = systems(OP, self, b)?;
        let (a, b) = plan.operands(self, b);
        #[cfg(feature = "gpu")]
        if a.on_gpu() {
            return crate::gpu::linalg::solve(&a, &b, &plan);
        }
        let (n, k) = (plan.n, plan.k);
        let count = numel(&plan.batch);
        Ok(float_dispatch!(a.dtype(), T => {
            let mut out = rhs_blocks::<T>(&plan, &b);
            if n > 0 && count > 0 {
                // a matrix shared by the whole batch is factored once
                let shared = self.ndim() == 2;
                let lus: Vec<_> = (0..if shared { 1 } else { count })
                    .into_par_iter()
                    .map(|i| {
                        let mut m = vec![T::zero(); n * n];
                        gather(&a, i, &mut m);
                        view(&m, n, n).partial_piv_lu()
                    })
                    .collect();
                let singular = first_failure(lus.len(), |i| {
                    zero_pivot(lus[i].U()).map(|p| {
                        format!("is singular: pivot {p} of its LU factorization is zero")
                    })
                });
                if let Some((at, why)) = singular {
                    let batch = if shared { &[][..] } else { &plan.batch[..] };
                    return Err(breakdown(OP, self.shape(), batch, at, &why));
                }
                if k > 0 {
                    use faer::linalg::solvers::Solve;
                    out.par_chunks_mut(n * k).enumerate().for_each(|(i, x)| {
                        lus[if shared { 0 } else { i }].solve_in_place(view_mut(x, n, k));
                    });
                }
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
                let tri = |i: usize| {
                    let mut m = vec![T::zero(); n * n];
                    gather(&a, i, &mut m);
                    m
                };
                let zero = first_failure(count, |i| {
                    zero_pivot(view(&tri(i), n, n)).map(|p| format!("is singular: its diagonal element {p} is zero"))
                });
                if let Some((at, why)) = zero {
                    return Err(breakdown(OP, self.shape(), &plan.batch, at, &why));
                }
                out.par_chunks_mut(n * k.max(1)).enumerate().for_each(|(i, x)| {
                    if k == 0 {
                        return;
                    }
                    let m = tri(i);
                    let (m, x) = (view(&m, n, n), view_mut(x, n, k));
                    let par = faer::Par::Seq;
                    if lower {
                        faer::linalg::triangular_solve::solve_lower_triangular_in_place(m, x, par);
                    } else {
                        faer::linalg::triangular_solve::solve_upper_triangular_in_place(m, x, par);
                    }
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
        Ok(float_dispatch!(self.dtype(), T => {
            let mut out = vec![T::zero(); count * n * n];
            if n > 0 {
                let half = T::from_f64(0.5);
                let factors: Vec<std::result::Result<(), String>> = out
                    .par_chunks_mut(n * n)
                    .enumerate()
                    .map(|(i, l)| {
                        let mut m = vec![T::zero(); n * n];
                        gather(self, i, &mut m);
                        let sym: Vec<T> = (0..n * n)
                            .map(|e| (m[e] + m[(e % n) * n + e / n]) * half)
                            .collect();
                        match view(&sym, n, n).llt(faer::Side::Lower) {
                            Ok(f) => {
                                let f = f.L();
                                for r in 0..n {
                                    for c in 0..=r {
                                        l[r * n + c] = f[(r, c)];
                                    }
                                }
                                Ok(())
                            }
                            Err(e) => Err(match e {
                                faer::linalg::cholesky::llt::factor::LltError::NonPositivePivot { index } => format!(
                                    "is not positive definite: pivot {index} of its Cholesky factorization is not positive"
                                ),
                            }),
                        }
                    })
                    .collect();
                if let Some((at, why)) = factors
                    .into_iter()
                    .enumerate()
                    .find_map(|(i, r)| r.err().map(|w| (i, w)))
                {
                    return Err(breakdown(OP, self.shape(), batch, at, &why));
                }
            }
            Tensor::from_data(out, self.shape())
        }))
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
    fn triangle(&self, op: &'static str, keep: impl Fn(isize, isize) -> bool) -> Result<Tensor> {
        let (rows, cols) = self.matrix_dims(op)?;
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
    fn matrix_dims(&self, op: &'static str) -> Result<(usize, usize)> {
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
        // row i of the result takes element i (rows <= cols) or column j takes element j
        let values = if rows <= cols {
            self.try_unsqueeze(-1)?
        } else {
            self.try_unsqueeze(-2)?
        };
        let mut shape = self.shape()[..self.ndim() - 1].to_vec();
        shape.extend([rows, cols]);
        let values = values.try_broadcast_to(&shape)?;
        let mask = (0..rows * cols).map(|e| e / cols == e % cols).collect();
        values.keep_where(OP, mask, rows, cols, &values)
    }
}
