//! Statistics built from reductions: variance and standard deviation (NumPy's, dividing
//! by the count: `ddof = 0`) and the Euclidean norm. Each is written over other tensor
//! operations exactly as the macro lowers it, so a transformed function computes the same
//! values as the plain one.

use crate::error::{Result, unwrap};
use crate::tensor::Tensor;

impl Tensor {
    /// The variance of all elements, `mean((x - mean(x))²)`, as a 0-d tensor (NumPy's
    /// `var`, dividing by the count). Panics for a non-float tensor; see
    /// [`Tensor::try_var`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 6.0], &[4]);
    /// assert_eq!(x.var().item::<f64>(), 3.5);
    /// ```
    #[track_caller]
    pub fn var(&self) -> Tensor {
        unwrap(self.try_var())
    }

    /// [`Tensor::var`], returning an error for a non-float tensor.
    pub fn try_var(&self) -> Result<Tensor> {
        let d = self.try_sub(&self.try_mean()?)?;
        d.try_mul(&d)?.try_mean()
    }

    /// The variance along `axis`, `mean_axis((x - mean_axis(x))²)`. Panics for a bad axis
    /// or a non-float tensor; see [`Tensor::try_var_axis`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 3.0, 2.0, 2.0], &[2, 2]);
    /// assert_eq!(x.var_axis(-1, false).to_vec::<f32>(), vec![1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn var_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_var_axis(axis, keepdim))
    }

    /// [`Tensor::var_axis`], returning an error instead of panicking.
    pub fn try_var_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let d = self.try_sub(&self.try_mean_axis(axis, true)?)?;
        d.try_mul(&d)?.try_mean_axis(axis, keepdim)
    }

    /// The standard deviation of all elements, `sqrt(var)`. Panics for a non-float tensor;
    /// see [`Tensor::try_std`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![2.0f64, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], &[8]);
    /// assert_eq!(x.std().item::<f64>(), 2.0);
    /// ```
    #[track_caller]
    pub fn std(&self) -> Tensor {
        unwrap(self.try_std())
    }

    /// [`Tensor::std`], returning an error for a non-float tensor.
    pub fn try_std(&self) -> Result<Tensor> {
        self.try_var()?.try_sqrt()
    }

    /// The standard deviation along `axis`, `sqrt(var_axis)`. Panics for a bad axis or a
    /// non-float tensor; see [`Tensor::try_std_axis`].
    #[track_caller]
    pub fn std_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_std_axis(axis, keepdim))
    }

    /// [`Tensor::std_axis`], returning an error instead of panicking.
    pub fn try_std_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.try_var_axis(axis, keepdim)?.try_sqrt()
    }

    /// The Euclidean (Frobenius) norm of all elements, `sqrt(sum(x²))`, as a 0-d tensor
    /// (`jnp.linalg.norm` of a vector, or of a matrix by default). Panics for a non-float
    /// tensor; see [`Tensor::try_norm`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![3.0f32, 4.0], &[2]);
    /// assert_eq!(x.norm().item::<f32>(), 5.0);
    /// ```
    #[track_caller]
    pub fn norm(&self) -> Tensor {
        unwrap(self.try_norm())
    }

    /// [`Tensor::norm`], returning an error for a non-float tensor.
    pub fn try_norm(&self) -> Result<Tensor> {
        self.try_mul(self)?.try_sum()?.try_sqrt()
    }

    /// The Euclidean norm along `axis`, `sqrt(sum_axis(x²))`. Panics for a bad axis or a
    /// non-float tensor; see [`Tensor::try_norm_axis`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![3.0f64, 4.0, 0.0, 2.0], &[2, 2]);
    /// assert_eq!(x.norm_axis(-1, false).to_vec::<f64>(), vec![5.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn norm_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_norm_axis(axis, keepdim))
    }

    /// [`Tensor::norm_axis`], returning an error instead of panicking.
    pub fn try_norm_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.try_mul(self)?.try_sum_axis(axis, keepdim)?.try_sqrt()
    }
}
