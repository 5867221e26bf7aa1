//! Matrix multiplication with NumPy's `matmul` semantics: 2-D, matrix-vector,
//! vector-vector and batched N-D with broadcast batch axes. Operands are passed to the
//! GEMM kernel with their strides, so transposed or broadcast views are not copied.

use rayon::prelude::*;

use crate::cpu::kernels::{self, MatRef};
use crate::element::Float;
use crate::error::{Error, Result, unwrap};
use crate::pool;
use crate::shape::{Layout, broadcast_shapes, numel, unravel_offset};
use crate::tensor::{Tensor, float_dispatch};

/// Below this many multiply-adds per matrix, batches run their matrices in parallel
/// whatever their number; above it they do where there are at least as many matrices as
/// threads, each product on one thread. Products split over threads by row bands (from
/// [`OWN_SPLIT`] multiply-adds) ran at half the speed: 64 products of `[64, 288] @ [288,
/// 196]` (a convolution's batch) took 6-7 ms one after the other, each split in two bands
/// of 32 rows (half of gemm's 64-row micro-kernel), and about 4 ms side by side, on two
/// cores.
const SMALL_GEMM: usize = 1 << 16;
/// From this many multiply-adds the kernel splits one product over threads itself (see
/// `cpu::gemm::matmul`, from inside rayon's pool): a batch of such products that would
/// leave threads idle in its last round (fewer than four rounds) is split product by
/// product instead.
const OWN_SPLIT: usize = 1 << 21;

/// The strided matrix at batch position `b` of a layout whose last two axes are the matrix.
fn mat_at<'a, T>(data: &'a [T], l: &Layout, b: usize) -> MatRef<'a, T> {
    let nb = l.shape.len() - 2;
    MatRef {
        data,
        offset: unravel_offset(b, &l.shape[..nb], &l.strides[..nb], l.offset),
        rs: l.strides[nb],
        cs: l.strides[nb + 1],
    }
}

/// `c[b] = a[b] @ b[b]` for every batch position; `a`, `b` already broadcast to the batch.
fn batched<T: Float>(
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    batch: usize,
    mnk: [usize; 3],
) -> Vec<T> {
    let [m, n, k] = mnk;
    if k == 0 {
        return vec![T::zero(); batch * m * n];
    }
    let mut out = pool::buffer(batch * m * n, T::zero());
    if out.is_empty() {
        return out;
    }
    let (da, db) = (a.storage_slice::<T>(), b.storage_slice::<T>());
    let (mnk, threads) = (m * n * k, rayon::current_num_threads());
    // large products in a batch that does not share out evenly over few rounds are each
    // split by the kernel instead
    let even = batch.is_multiple_of(threads) || batch >= 4 * threads || mnk < OWN_SPLIT;
    if batch > 1 && (mnk < SMALL_GEMM || (batch >= threads && even)) {
        out.par_chunks_mut(m * n).enumerate().for_each(|(i, c)| {
            kernels::matmul_on(1, [m, n, k], mat_at(da, la, i), mat_at(db, lb, i), c)
        });
    } else {
        out.chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| kernels::matmul(m, n, k, mat_at(da, la, i), mat_at(db, lb, i), c));
    }
    out
}

impl Tensor {
    /// Matrix product with NumPy's `matmul` rules: `[m, k] @ [k, n] -> [m, n]`; a 1-D left
    /// operand is a row vector and a 1-D right operand a column vector (their axis is
    /// removed from the result); leading axes are batch axes and broadcast. Panics on
    /// mismatched shapes or dtypes; see [`Tensor::try_matmul`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    /// let v = Tensor::from_vec(vec![1.0f32, 1.0], &[2]);
    /// assert_eq!(a.matmul(&v).to_vec::<f32>(), vec![3.0, 7.0]);
    /// assert_eq!(a.t().matmul(&a).to_vec::<f32>(), vec![10.0, 14.0, 14.0, 20.0]);
    /// let batch = Tensor::ones(&[5, 3, 2], DType::F32);
    /// assert_eq!(batch.matmul(&a).shape(), &[5, 3, 2]);
    /// ```
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        unwrap(self.try_matmul(other))
    }

    /// [`Tensor::matmul`], returning an error instead of panicking.
    pub fn try_matmul(&self, other: &Tensor) -> Result<Tensor> {
        const OP: &str = "matmul";
        let dt = Tensor::expect_same_float(OP, self, other)?;
        let mismatch = |reason: String| Error::ShapeMismatch {
            op: OP,
            lhs: self.shape().to_vec(),
            rhs: other.shape().to_vec(),
            reason,
        };
        if self.ndim() == 0 || other.ndim() == 0 {
            return Err(mismatch(
                "cannot be multiplied: matmul needs operands with at least one axis".into(),
            ));
        }
        let la = if self.ndim() == 1 {
            self.layout.unsqueeze(0)
        } else {
            self.layout.clone()
        };
        let lb = if other.ndim() == 1 {
            other.layout.unsqueeze(1)
        } else {
            other.layout.clone()
        };
        let (ra, rb) = (la.shape.len(), lb.shape.len());
        let (m, k) = (la.shape[ra - 2], la.shape[ra - 1]);
        let (k2, n) = (lb.shape[rb - 2], lb.shape[rb - 1]);
        if k != k2 {
            return Err(mismatch(format!(
                "cannot be multiplied: contracted axes have sizes {k} and {k2}"
            )));
        }
        let batch =
            broadcast_shapes(OP, &la.shape[..ra - 2], &lb.shape[..rb - 2]).map_err(|_| {
                mismatch(format!(
                    "cannot be multiplied: batch axes {:?} and {:?} do not broadcast",
                    &la.shape[..ra - 2],
                    &lb.shape[..rb - 2]
                ))
            })?;
        let full = |extra: [usize; 2]| [batch.as_slice(), &extra].concat();
        let la = la.broadcast_to(OP, &full([m, k]))?;
        let lb = lb.broadcast_to(OP, &full([k, n]))?;
        let nbatch = numel(&batch);
        let mut shape = full([m, n]);
        if other.ndim() == 1 {
            shape.pop();
        }
        if self.ndim() == 1 {
            shape.remove(shape.len() - if other.ndim() == 1 { 1 } else { 2 });
        }
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::matmul::matmul(self, &la, other, &lb, [m, n, k], &shape);
        }
        Ok(float_dispatch!(dt, T => {
            Tensor::from_data(batched::<T>(self, &la, other, &lb, nbatch, [m, n, k]), &shape)
        }))
    }
}

impl Tensor {
    /// `self[.., i, j] += a[.., i] * b[.., j]`: adds the outer product of `a: [.., m]` and
    /// `b: [.., n]` (batched over equal leading axes) to `self: [.., m, n]`, in `self`'s own
    /// buffer when it holds it alone (a gradient accumulated over a loop's steps: no
    /// product is allocated and added). Panics on mismatched shapes, dtypes or devices; see
    /// [`Tensor::try_add_outer_assign`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let mut g = Tensor::zeros(&[2, 3], DType::F64);
    /// let (a, b) = (Tensor::from_vec(vec![1.0, 2.0], &[2]), Tensor::from_vec(vec![1.0, 0.0, -1.0], &[3]));
    /// g.add_outer_assign(&a, &b);
    /// g.add_outer_assign(&a, &b);
    /// assert_eq!(g.to_vec::<f64>(), vec![2.0, 0.0, -2.0, 4.0, 0.0, -4.0]);
    /// ```
    #[track_caller]
    pub fn add_outer_assign(&mut self, a: &Tensor, b: &Tensor) {
        unwrap(self.try_add_outer_assign(a, b))
    }

    /// [`Tensor::add_outer_assign`], returning an error (and leaving `self` unchanged)
    /// instead of panicking.
    pub fn try_add_outer_assign(&mut self, a: &Tensor, b: &Tensor) -> Result<()> {
        const OP: &str = "add_outer_assign";
        let dt = Tensor::expect_same_float(OP, a, b)?;
        Tensor::expect_same(OP, self, a)?;
        let (ra, rb) = (a.ndim(), b.ndim());
        let fits = ra >= 1
            && ra == rb
            && a.shape()[..ra - 1] == b.shape()[..rb - 1]
            && self.ndim() == ra + 1
            && self.shape()[..ra - 1] == a.shape()[..ra - 1]
            && self.shape()[ra - 1..] == [a.shape()[ra - 1], b.shape()[rb - 1]];
        if !fits {
            return Err(misfit(OP, "an outer product", a, b, self));
        }
        let (m, n) = (a.shape()[ra - 1], b.shape()[rb - 1]);
        let done = self.on_cpu()
            && float_dispatch!(dt, T => {
                let (da, db) = (a.contiguous_data::<T>(), b.contiguous_data::<T>());
                match self.exclusive_buffer::<T>() {
                    Some(buf) => {
                        add_outer::<T>(buf, &da, &db, m, n);
                        true
                    }
                    None => false,
                }
            });
        if !done {
            let product = a
                .unsqueeze(ra as isize)
                .try_matmul(&b.unsqueeze(rb as isize - 1))?;
            *self = self.try_add(&product)?;
        }
        Ok(())
    }

    /// `self += a @ b` for matrices `a: [m, k]`, `b: [k, n]` and `self: [m, n]`, in
    /// `self`'s own buffer when it holds it alone (gemm reads and writes it: no product is
    /// allocated and added). Panics on mismatched shapes, dtypes or devices; see
    /// [`Tensor::try_add_matmul_assign`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let mut g = Tensor::ones(&[2, 2], DType::F64);
    /// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// g.add_matmul_assign(&a, &a.t());
    /// assert_eq!(g.to_vec::<f64>(), vec![6.0, 12.0, 12.0, 26.0]);
    /// ```
    #[track_caller]
    pub fn add_matmul_assign(&mut self, a: &Tensor, b: &Tensor) {
        unwrap(self.try_add_matmul_assign(a, b))
    }

    /// [`Tensor::add_matmul_assign`], returning an error (and leaving `self` unchanged)
    /// instead of panicking.
    pub fn try_add_matmul_assign(&mut self, a: &Tensor, b: &Tensor) -> Result<()> {
        const OP: &str = "add_matmul_assign";
        let dt = Tensor::expect_same_float(OP, a, b)?;
        Tensor::expect_same(OP, self, a)?;
        let fits = a.ndim() == 2
            && b.ndim() == 2
            && a.shape()[1] == b.shape()[0]
            && self.shape() == [a.shape()[0], b.shape()[1]];
        if !fits {
            return Err(misfit(OP, "a product", a, b, self));
        }
        let [m, k, n] = [a.shape()[0], a.shape()[1], b.shape()[1]];
        let done = self.on_cpu()
            && float_dispatch!(dt, T => {
                let (da, db) = (a.storage_slice::<T>(), b.storage_slice::<T>());
                match self.exclusive_buffer::<T>() {
                    Some(buf) => {
                        kernels::matmul_acc(m, n, k, mat_of(a, da), mat_of(b, db), buf);
                        true
                    }
                    None => false,
                }
            });
        if !done {
            *self = self.try_add(&a.try_matmul(b)?)?;
        }
        Ok(())
    }
}

/// The error of an `add_*_assign` whose operands give `what`, which does not fit `target`.
fn misfit(op: &'static str, what: &str, a: &Tensor, b: &Tensor, target: &Tensor) -> Error {
    Error::ShapeMismatch {
        op,
        lhs: a.shape().to_vec(),
        rhs: b.shape().to_vec(),
        reason: format!(
            "give {what} that does not fit a target of shape {:?}",
            target.shape()
        ),
    }
}

/// The view of a 2-D tensor's data.
fn mat_of<'a, T>(t: &Tensor, data: &'a [T]) -> MatRef<'a, T> {
    MatRef {
        data,
        offset: t.layout.offset,
        rs: t.layout.strides[0],
        cs: t.layout.strides[1],
    }
}

/// `c[p, i, j] += a[p, i] * b[p, j]` over row-major buffers, in parallel over `p` for large
/// ones.
fn add_outer<T: Float>(c: &mut [T], a: &[T], b: &[T], m: usize, n: usize) {
    if m == 0 || n == 0 {
        return;
    }
    let one = |p: usize, block: &mut [T]| {
        let (a, b) = (&a[p * m..(p + 1) * m], &b[p * n..(p + 1) * n]);
        for (row, &s) in block.chunks_exact_mut(n).zip(a) {
            for (r, &v) in row.iter_mut().zip(b) {
                *r = *r + s * v;
            }
        }
    };
    if c.len() >= kernels::PAR_THRESHOLD && c.len() > m * n {
        c.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(p, block)| one(p, block));
    } else {
        c.chunks_mut(m * n)
            .enumerate()
            .for_each(|(p, block)| one(p, block));
    }
}
