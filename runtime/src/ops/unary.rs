//! Elementwise unary operations on float tensors.

use crate::cpu::kernels::{self, UnaryOp};
use crate::error::{Result, unwrap};
use crate::pool;
use crate::tensor::{Tensor, float_dispatch};

impl Tensor {
    /// Applies a unary kernel to every element. A permuted view of contiguous storage (a
    /// transpose) is not copied: the kernel runs over the storage and the result has the
    /// input's strides.
    pub(crate) fn try_unary(&self, name: &'static str, op: UnaryOp) -> Result<Tensor> {
        let dt = self.expect_float(name)?;
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::elementwise::unary(name, self, op);
        }
        if !self.is_contiguous()
            && let Some(order) = self.layout.storage_order()
        {
            let stored = self.with_layout(self.layout.permute(&order));
            let r = stored.try_unary(name, op)?;
            return Ok(r.with_layout(r.layout.permute(&inverse(&order))));
        }
        Ok(float_dispatch!(dt, T => {
            let x = self.contiguous_data::<T>();
            let mut out = pool::buffer(x.len(), 0.0 as T);
            kernels::unary(op, &x, &mut out);
            pool::recycle_copy(x);
            Tensor::from_data(out, self.shape())
        }))
    }
}

/// The inverse of a permutation.
pub(crate) fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

macro_rules! unary_methods {
    ($($name:ident, $try_name:ident, $op:ident, $doc:literal;)*) => {
        impl Tensor {
            $(
                #[doc = concat!("Elementwise ", $doc, ". Panics for a non-float tensor; see [`Tensor::", stringify!($try_name), "`].")]
                #[track_caller]
                pub fn $name(&self) -> Tensor {
                    unwrap(self.$try_name())
                }

                #[doc = concat!("[`Tensor::", stringify!($name), "`], returning an error for a non-float tensor.")]
                pub fn $try_name(&self) -> Result<Tensor> {
                    self.try_unary(stringify!($name), UnaryOp::$op)
                }
            )*
        }
    };
}

unary_methods! {
    neg, try_neg, Neg, "negation `-x`";
    abs, try_abs, Abs, "absolute value";
    exp, try_exp, Exp, "`e^x`";
    ln, try_ln, Ln, "natural logarithm (NaN below 0, -inf at 0)";
    log1p, try_log1p, Log1p, "`ln(1 + x)`, accurate near 0";
    expm1, try_expm1, Expm1, "`e^x - 1`, accurate near 0";
    sin, try_sin, Sin, "sine";
    cos, try_cos, Cos, "cosine";
    tan, try_tan, Tan, "tangent";
    tanh, try_tanh, Tanh, "hyperbolic tangent";
    sqrt, try_sqrt, Sqrt, "square root (NaN below 0)";
    recip, try_recip, Recip, "reciprocal `1 / x`";
    sigmoid, try_sigmoid, Sigmoid, "logistic sigmoid `1 / (1 + e^-x)`";
    relu, try_relu, Relu, "`max(x, 0)` (NaN stays NaN)";
    sign, try_sign, Sign, "sign: -1, 0 or 1 (zeros keep their sign, NaN stays NaN)";
}

impl Tensor {
    /// Elementwise integer power `x^n`. Panics for a non-float tensor; see [`Tensor::try_powi`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
    /// assert_eq!(x.powi(2).to_vec::<f32>(), vec![1.0, 4.0, 9.0]);
    /// ```
    #[track_caller]
    pub fn powi(&self, n: i32) -> Tensor {
        unwrap(self.try_powi(n))
    }

    /// [`Tensor::powi`], returning an error for a non-float tensor.
    pub fn try_powi(&self, n: i32) -> Result<Tensor> {
        self.try_unary("powi", UnaryOp::Powi(n))
    }

    /// Elementwise float power `x^p` (`p` is converted to the tensor's dtype). Panics for a
    /// non-float tensor; see [`Tensor::try_powf`].
    #[track_caller]
    pub fn powf(&self, p: f64) -> Tensor {
        unwrap(self.try_powf(p))
    }

    /// [`Tensor::powf`], returning an error for a non-float tensor.
    pub fn try_powf(&self, p: f64) -> Result<Tensor> {
        self.try_unary("powf", UnaryOp::Powf(p))
    }
}
