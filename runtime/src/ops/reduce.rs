//! Reductions: over all elements to a 0-d tensor, or along one axis (optionally keeping
//! it as size 1). The tensor is viewed as `[outer, n, inner]` around the reduced axis and
//! handed to the kernel in one call; softmax (in `nn`) shares that machinery.

use crate::cpu::kernels::{self, ReduceOp, SoftmaxOp};
use crate::error::{Error, Result, unwrap};
use crate::pool;
use crate::shape::{normalize_axis, numel};
use crate::tensor::{Tensor, float_dispatch};

/// `(outer, n, inner)`: the sizes before, of, and after `axis`.
fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}

/// A kernel that works along one axis of the `[outer, n, inner]` view of a tensor.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AxisKernel {
    /// A reduction to one value per lane.
    Reduce(ReduceOp),
    /// The index of the maximum of each lane, as i32.
    Argmax,
    /// Softmax or log-softmax (one value per element) or logsumexp (one per lane).
    Softmax(SoftmaxOp),
}

impl Tensor {
    /// Runs `kernel` along axis `ax` (in range, the tensor a float). The result keeps the
    /// axis: size 1 for reductions, unchanged for softmax and log-softmax.
    ///
    /// A permuted view of contiguous storage (a transpose) is not copied: the kernel runs
    /// on the storage in its own axis order and the result is permuted back (a view).
    pub(crate) fn along_axis(&self, kernel: AxisKernel, ax: usize) -> Result<Tensor> {
        if let Some(r) = self.in_storage_order(ax, |stored, at| stored.along_axis(kernel, at)) {
            return r;
        }
        let (outer, n, inner) = split_at_axis(self.shape(), ax);
        let mut shape = self.shape().to_vec();
        if !matches!(
            kernel,
            AxisKernel::Softmax(SoftmaxOp::Softmax | SoftmaxOp::LogSoftmax)
        ) {
            shape[ax] = 1;
        }
        let len = numel(&shape);
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            use crate::gpu::reduce::{LaneOp, along_axis};
            let op = match kernel {
                AxisKernel::Reduce(op) => LaneOp::Reduce(op),
                AxisKernel::Argmax => LaneOp::Argmax,
                AxisKernel::Softmax(op) => LaneOp::Softmax(op),
            };
            return along_axis(self, op, [outer, n, inner], &shape);
        }
        if let AxisKernel::Argmax = kernel {
            let mut out = pool::buffer(len, 0i32);
            float_dispatch!(self.dtype(), T => {
                kernels::argmax_axis(&self.contiguous_data::<T>(), outer, n, inner, &mut out)
            });
            return Ok(Tensor::from_data(out, &shape));
        }
        Ok(float_dispatch!(self.dtype(), T => {
            let x = self.contiguous_data::<T>();
            let mut out = pool::buffer(len, 0.0 as T);
            match kernel {
                AxisKernel::Reduce(op) => kernels::reduce_axis(op, &x, outer, n, inner, &mut out),
                AxisKernel::Softmax(op) => kernels::softmax_axis(op, &x, outer, n, inner, &mut out),
                AxisKernel::Argmax => unreachable!("handled above"),
            }
            pool::recycle_copy(x);
            Tensor::from_data(out, &shape)
        }))
    }

    /// Removes the (size-1) axis `ax` unless `keepdim`.
    fn drop_axis(self, ax: usize, keepdim: bool) -> Tensor {
        if keepdim {
            self
        } else {
            self.with_layout(self.layout.squeeze(ax))
        }
    }

    fn try_reduce_all(&self, name: &'static str, op: ReduceOp) -> Result<Tensor> {
        let dt = self.expect_float(name)?;
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::reduce::reduce_all(self, op);
        }
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
        self.expect_float(name)?;
        let ax = normalize_axis(name, axis, self.shape())?;
        Ok(self
            .along_axis(AxisKernel::Reduce(op), ax)?
            .drop_axis(ax, keepdim))
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
        let ax = self.extremum_axis("argmax_axis", axis, "maximum")?;
        Ok(self
            .along_axis(AxisKernel::Argmax, ax)?
            .drop_axis(ax, keepdim))
    }

    /// Index (i32) of the first minimum along `axis`; a NaN counts as the minimum, as in
    /// NumPy. Panics for a bad or zero-size axis or a non-float tensor; see
    /// [`Tensor::try_argmin_axis`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, -5.0, 2.0, 0.0, 7.0, 0.0], &[2, 3]);
    /// assert_eq!(x.argmin_axis(1, false).to_vec::<i32>(), vec![1, 0]);
    /// ```
    #[track_caller]
    pub fn argmin_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_argmin_axis(axis, keepdim))
    }

    /// [`Tensor::argmin_axis`], returning an error instead of panicking.
    pub fn try_argmin_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.extremum_axis("argmin_axis", axis, "minimum")?;
        // the first maximum of the negation (NaN stays NaN, so it still counts first)
        self.try_neg()?.try_argmax_axis(axis, keepdim)
    }

    /// `axis` of a float tensor, checked to be in range and not empty (`what` it would
    /// have no of).
    fn extremum_axis(&self, op: &'static str, axis: isize, what: &str) -> Result<usize> {
        self.expect_float(op)?;
        let ax = normalize_axis(op, axis, self.shape())?;
        if self.shape()[ax] == 0 {
            return Err(Error::InvalidArgument {
                op,
                message: format!(
                    "axis {ax} of shape {:?} is empty and has no {what}",
                    self.shape()
                ),
            });
        }
        Ok(ax)
    }

    /// `ln(sum(exp(x)))` over all elements as a 0-d tensor (`jax.nn.logsumexp`), computed
    /// stably (-inf for an empty tensor): [`Tensor::logsumexp_axis`] of the flattened
    /// tensor. Panics for a non-float tensor; see [`Tensor::try_logsumexp`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![-1000.0f64, 0.0, 0.0, -1000.0], &[2, 2]);
    /// assert_eq!(x.logsumexp().item::<f64>(), std::f64::consts::LN_2);
    /// ```
    #[track_caller]
    pub fn logsumexp(&self) -> Tensor {
        unwrap(self.try_logsumexp())
    }

    /// [`Tensor::logsumexp`], returning an error for a non-float tensor.
    pub fn try_logsumexp(&self) -> Result<Tensor> {
        self.try_reshape(&[self.numel()])?
            .try_logsumexp_axis(0, false)
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
        self.expect_float(OP)?;
        let ax = normalize_axis(OP, axis, self.shape())?;
        Ok(self
            .along_axis(AxisKernel::Softmax(SoftmaxOp::LogSumExp), ax)?
            .drop_axis(ax, keepdim))
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
