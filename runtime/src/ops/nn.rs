//! Neural-network helpers: softmax, log-softmax and one-hot encoding.

use crate::cpu::kernels::SoftmaxOp;
use crate::element::DType;
use crate::error::{Error, Result, unwrap};
use crate::ops::reduce::AxisKernel;
use crate::shape::normalize_axis;
use crate::tensor::Tensor;

impl Tensor {
    fn try_softmax_family(&self, name: &'static str, op: SoftmaxOp, axis: isize) -> Result<Tensor> {
        self.expect_float(name)?;
        let ax = normalize_axis(name, axis, self.shape())?;
        self.along_axis(AxisKernel::Softmax(op), ax)
    }

    /// `exp(x) / sum(exp(x))` along `axis`, computed stably. Panics for a bad axis or a
    /// non-float tensor; see [`Tensor::try_softmax`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let p = Tensor::from_vec(vec![0.0f64, 0.0, 0.0, 0.0], &[2, 2]).softmax(-1);
    /// assert_eq!(p.to_vec::<f64>(), vec![0.5; 4]);
    /// ```
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Tensor {
        unwrap(self.try_softmax(axis))
    }

    /// [`Tensor::softmax`], returning an error instead of panicking.
    pub fn try_softmax(&self, axis: isize) -> Result<Tensor> {
        self.try_softmax_family("softmax", SoftmaxOp::Softmax, axis)
    }

    /// `x - logsumexp(x)` along `axis`, computed stably. Panics for a bad axis or a
    /// non-float tensor; see [`Tensor::try_log_softmax`].
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Tensor {
        unwrap(self.try_log_softmax(axis))
    }

    /// [`Tensor::log_softmax`], returning an error instead of panicking.
    pub fn try_log_softmax(&self, axis: isize) -> Result<Tensor> {
        self.try_softmax_family("log_softmax", SoftmaxOp::LogSoftmax, axis)
    }

    /// One-hot encoding of i32 class indices: the result has a new last axis of
    /// `num_classes`, 1 at each index and 0 elsewhere, in `dtype`. Panics for an index
    /// outside `0..num_classes` or non-i32 input; see [`Tensor::try_one_hot`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let labels = Tensor::from_vec(vec![2i32, 0], &[2]);
    /// let y = labels.one_hot(3, DType::F32);
    /// assert_eq!(y.shape(), &[2, 3]);
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn one_hot(&self, num_classes: usize, dtype: DType) -> Tensor {
        unwrap(self.try_one_hot(num_classes, dtype))
    }

    /// [`Tensor::one_hot`], returning an error instead of panicking.
    pub fn try_one_hot(&self, num_classes: usize, dtype: DType) -> Result<Tensor> {
        const OP: &str = "one_hot";
        if self.dtype() != DType::I32 {
            return Err(Error::UnsupportedDType {
                op: OP,
                expected: "i32 class indices",
                got: self.dtype(),
                shape: self.shape().to_vec(),
            });
        }
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            let shape = [self.shape(), &[num_classes]].concat();
            crate::gpu::gather::check_indices(OP, self, self.ndim(), num_classes, &shape)?;
            return crate::gpu::gather::one_hot(self, num_classes, dtype);
        }
        let idx = self.contiguous_data::<i32>();
        if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= num_classes) {
            return Err(Error::IndexOutOfRange {
                op: OP,
                index: bad as i64,
                axis: self.ndim(),
                size: num_classes,
                shape: [self.shape(), &[num_classes]].concat(),
            });
        }
        let mut hot = vec![0i32; idx.len() * num_classes];
        for (r, &i) in idx.iter().enumerate() {
            hot[r * num_classes + i as usize] = 1;
        }
        let shape = [self.shape(), &[num_classes]].concat();
        Ok(Tensor::from_data(hot, &shape).to_dtype(dtype))
    }
}
