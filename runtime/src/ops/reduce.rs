//! Reductions: over all elements to a 0-d tensor, or along one axis (optionally keeping
//! it as size 1). The tensor is viewed as `[outer, n, inner]` around the reduced axis and
//! handed to the kernel in one call.

use crate::cpu::kernels::{self, ReduceOp, SoftmaxOp};
use crate::error::{Error, Result, unwrap};
use crate::pool;
use crate::shape::{normalize_axis, numel};
use crate::tensor::{Tensor, float_dispatch};

/// `(outer, n, inner)`: the sizes before, of, and after `axis`.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}

/// The shape after reducing `axis`.
fn reduced_shape(shape: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keepdim {
        s[axis] = 1;
    } else {
        s.remove(axis);
    }
    s
}

impl Tensor {
    fn try_reduce_all(&self, name: &'static str, op: ReduceOp) -> Result<Tensor> {
        let dt = self.expect_float(name)?;
        Ok(
            float_dispatch!(dt, T => Tensor::scalar(kernels::reduce_all::<T>(op, &self.contiguous_data::<T>()))),
        )
    }

    fn try_reduce_axis(
        &self,
        name: &'static str,
        op: ReduceOp,
        axis: isize,
        keepdim: bool,
    ) -> Result<Tensor> {
        let dt = self.expect_float(name)?;
        let ax = normalize_axis(name, axis, self.shape())?;
        let (outer, n, inner) = split_at_axis(self.shape(), ax);
        let shape = reduced_shape(self.shape(), ax, keepdim);
        Ok(float_dispatch!(dt, T => {
            let x = self.contiguous_data::<T>();
            let mut out = pool::buffer(outer * inner, 0.0 as T);
            kernels::reduce_axis(op, &x, outer, n, inner, &mut out);
            pool::recycle_copy(x);
            Tensor::from_data(out, &shape)
        }))
    }

    /// Sum of all elements as a 0-d tensor (0 for an empty tensor). Panics for a
    /// non-float tensor; see [`Tensor::try_sum`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
    /// assert_eq!(x.sum().item::<f32>(), 6.0);
    /// ```
    #[track_caller]
    pub fn sum(&self) -> Tensor {
        unwrap(self.try_sum())
    }

    /// [`Tensor::sum`], returning an error for a non-float tensor.
    pub fn try_sum(&self) -> Result<Tensor> {
        self.try_reduce_all("sum", ReduceOp::Sum)
    }

    /// Mean of all elements as a 0-d tensor (NaN for an empty tensor). Panics for a
    /// non-float tensor; see [`Tensor::try_mean`].
    #[track_caller]
    pub fn mean(&self) -> Tensor {
        unwrap(self.try_mean())
    }

    /// [`Tensor::mean`], returning an error for a non-float tensor.
    pub fn try_mean(&self) -> Result<Tensor> {
        let s = self.try_reduce_all("mean", ReduceOp::Sum)?;
        s.try_binary_scalar("mean", kernels::BinaryOp::Div, self.numel() as f64, false)
    }

    /// Largest element as a 0-d tensor (-inf for an empty tensor; NaN if any is NaN).
    /// Panics for a non-float tensor; see [`Tensor::try_max`].
    #[track_caller]
    pub fn max(&self) -> Tensor {
        unwrap(self.try_max())
    }

    /// [`Tensor::max`], returning an error for a non-float tensor.
    pub fn try_max(&self) -> Result<Tensor> {
        self.try_reduce_all("max", ReduceOp::Max)
    }

    /// Smallest element as a 0-d tensor (+inf for an empty tensor; NaN if any is NaN).
    /// Panics for a non-float tensor; see [`Tensor::try_min`].
    #[track_caller]
    pub fn min(&self) -> Tensor {
        unwrap(self.try_min())
    }

    /// [`Tensor::min`], returning an error for a non-float tensor.
    pub fn try_min(&self) -> Result<Tensor> {
        self.try_reduce_all("min", ReduceOp::Min)
    }

    /// Sum along `axis`, which is removed, or kept with size 1 when `keepdim`. Panics for
    /// a bad axis or a non-float tensor; see [`Tensor::try_sum_axis`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.sum_axis(0, false).to_vec::<f64>(), vec![4.0, 6.0]);
    /// assert_eq!(x.sum_axis(-1, true).shape(), &[2, 1]);
    /// ```
    #[track_caller]
    pub fn sum_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_sum_axis(axis, keepdim))
    }

    /// [`Tensor::sum_axis`], returning an error instead of panicking.
    pub fn try_sum_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.try_reduce_axis("sum_axis", ReduceOp::Sum, axis, keepdim)
    }

    /// Mean along `axis` (NaN over a zero-size axis). Panics for a bad axis or a non-float
    /// tensor; see [`Tensor::try_mean_axis`].
    #[track_caller]
    pub fn mean_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_mean_axis(axis, keepdim))
    }

    /// [`Tensor::mean_axis`], returning an error instead of panicking.
    pub fn try_mean_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let s = self.try_reduce_axis("mean_axis", ReduceOp::Sum, axis, keepdim)?;
        let n = self.shape()[normalize_axis("mean_axis", axis, self.shape())?];
        s.try_binary_scalar("mean_axis", kernels::BinaryOp::Div, n as f64, false)
    }

    /// Maximum along `axis` (-inf over a zero-size axis, NaN if any is NaN). Panics for a
    /// bad axis or a non-float tensor; see [`Tensor::try_max_axis`].
    #[track_caller]
    pub fn max_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_max_axis(axis, keepdim))
    }

    /// [`Tensor::max_axis`], returning an error instead of panicking.
    pub fn try_max_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.try_reduce_axis("max_axis", ReduceOp::Max, axis, keepdim)
    }

    /// Minimum along `axis` (+inf over a zero-size axis, NaN if any is NaN). Panics for a
    /// bad axis or a non-float tensor; see [`Tensor::try_min_axis`].
    #[track_caller]
    pub fn min_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_min_axis(axis, keepdim))
    }

    /// [`Tensor::min_axis`], returning an error instead of panicking.
    pub fn try_min_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.try_reduce_axis("min_axis", ReduceOp::Min, axis, keepdim)
    }

    /// Index (i32) of the first maximum along `axis`; a NaN counts as the maximum, as in
    /// NumPy. Panics for a bad or zero-size axis or a non-float tensor; see
    /// [`Tensor::try_argmax_axis`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, 2.0, 7.0, 0.0, 7.0], &[2, 3]);
    /// assert_eq!(x.argmax_axis(1, false).to_vec::<i32>(), vec![1, 0]);
    /// ```
    #[track_caller]
    pub fn argmax_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_argmax_axis(axis, keepdim))
    }

    /// [`Tensor::argmax_axis`], returning an error instead of panicking.
    pub fn try_argmax_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        const OP: &str = "argmax_axis";
        let dt = self.expect_float(OP)?;
        let ax = normalize_axis(OP, axis, self.shape())?;
        let (outer, n, inner) = split_at_axis(self.shape(), ax);
        if n == 0 {
            return Err(Error::InvalidArgument {
                op: OP,
                message: format!(
                    "axis {ax} of shape {:?} is empty and has no maximum",
                    self.shape()
                ),
            });
        }
        let mut out = vec![0i32; outer * inner];
        float_dispatch!(dt, T => kernels::argmax_axis(&self.contiguous_data::<T>(), outer, n, inner, &mut out));
        Ok(Tensor::from_data(
            out,
            &reduced_shape(self.shape(), ax, keepdim),
        ))
    }

    /// `ln(sum(exp(x)))` along `axis`, computed stably (-inf over a zero-size axis).
    /// Panics for a bad axis or a non-float tensor; see [`Tensor::try_logsumexp_axis`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1000.0f64, 1000.0], &[2]);
    /// let l = x.logsumexp_axis(0, false).item::<f64>();
    /// assert!((l - (1000.0 + 2f64.ln())).abs() < 1e-9);
    /// ```
    #[track_caller]
    pub fn logsumexp_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_logsumexp_axis(axis, keepdim))
    }

    /// [`Tensor::logsumexp_axis`], returning an error instead of panicking.
    pub fn try_logsumexp_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        const OP: &str = "logsumexp_axis";
        let dt = self.expect_float(OP)?;
        let ax = normalize_axis(OP, axis, self.shape())?;
        let (outer, n, inner) = split_at_axis(self.shape(), ax);
        let shape = reduced_shape(self.shape(), ax, keepdim);
        Ok(float_dispatch!(dt, T => {
            let mut out = vec![0.0 as T; outer * inner];
            kernels::softmax_axis(SoftmaxOp::LogSumExp, &self.contiguous_data::<T>(), outer, n, inner, &mut out);
            Tensor::from_data(out, &shape)
        }))
    }

    /// Sums a broadcast result back to `shape`, a shape that broadcasts to this tensor's
    /// (the reverse of [`Tensor::broadcast_to`]: the gradient of a broadcast operand).
    /// Panics if `shape` does not broadcast to the tensor's shape; see
    /// [`Tensor::try_sum_to_shape`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let g = Tensor::ones(&[2, 3], DType::F32);
    /// assert_eq!(g.sum_to_shape(&[3]).to_vec::<f32>(), vec![2.0; 3]);
    /// assert_eq!(g.sum_to_shape(&[2, 1]).to_vec::<f32>(), vec![3.0; 2]);
    /// assert_eq!(g.sum_to_shape(&[]).item::<f32>(), 6.0);
    /// ```
    #[track_caller]
    pub fn sum_to_shape(&self, shape: &[usize]) -> Tensor {
        unwrap(self.try_sum_to_shape(shape))
    }

    /// [`Tensor::sum_to_shape`], returning an error instead of panicking.
    pub fn try_sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        const OP: &str = "sum_to_shape";
        self.expect_float(OP)?;
        // `shape` must broadcast to ours
        crate::shape::Layout::contiguous(shape).broadcast_to(OP, self.shape())?;
        let lead = self.ndim() - shape.len();
        let mut t = self.clone();
        for _ in 0..lead {
            t = t.try_reduce_axis(OP, ReduceOp::Sum, 0, false)?;
        }
        for (d, &size) in shape.iter().enumerate() {
            if size == 1 && t.shape()[d] != 1 {
                t = t.try_reduce_axis(OP, ReduceOp::Sum, d as isize, true)?;
            }
        }
        Ok(t)
    }
}
