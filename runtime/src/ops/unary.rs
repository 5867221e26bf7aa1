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
        if let Some(r) = self.in_storage_order(0, |stored, _| stored.try_unary(name, op)) {
            return r;
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

impl Tensor {
    /// For a permuted view of contiguous storage (a transpose): `f` of the storage viewed
    /// in its own axis order (contiguous), with axis `ax` as it is numbered there, and
    /// the result permuted back (a view), so that kernels need not copy a transpose;
    /// `None` for other tensors.
    pub(crate) fn in_storage_order(
        &self,
        ax: usize,
        f: impl FnOnce(&Tensor, usize) -> Result<Tensor>,
    ) -> Option<Result<Tensor>> {
        if self.is_contiguous() {
            return None;
        }
        let order = self.layout.storage_order()?;
        let stored = self.with_layout(self.layout.permute(&order));
        let at = order
            .iter()
            .position(|&a| a == ax)
            .expect("ax is an axis of the tensor");
        Some(f(&stored, at).map(|r| r.with_layout(r.layout.permute(&inverse(&order)))))
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
    softplus, try_softplus, Softplus, "softplus `ln(1 + e^x)`, computed as `max(x, 0) + ln(1 + e^-|x|)` (no overflow; the derivative is `sigmoid`)";
    relu, try_relu, Relu, "`max(x, 0)` (NaN stays NaN)";
    sign, try_sign, Sign, "sign: -1, 0 or 1 (zeros keep their sign, NaN stays NaN)";
    asin, try_asin, Asin, "arc sine, in `[-pi/2, pi/2]` (NaN outside `[-1, 1]`)";
    acos, try_acos, Acos, "arc cosine, in `[0, pi]` (NaN outside `[-1, 1]`)";
    atan, try_atan, Atan, "arc tangent, in `[-pi/2, pi/2]`";
    sinh, try_sinh, Sinh, "hyperbolic sine";
    cosh, try_cosh, Cosh, "hyperbolic cosine";
    asinh, try_asinh, Asinh, "inverse hyperbolic sine";
    acosh, try_acosh, Acosh, "inverse hyperbolic cosine (NaN below 1)";
    atanh, try_atanh, Atanh, "inverse hyperbolic tangent (±inf at ±1, NaN beyond)";
    exp2, try_exp2, Exp2, "`2^x`";
    log2, try_log2, Log2, "base-2 logarithm (NaN below 0, -inf at 0)";
    log10, try_log10, Log10, "base-10 logarithm (NaN below 0, -inf at 0)";
    cbrt, try_cbrt, Cbrt, "cube root (odd: `cbrt(-8) = -2`)";
    floor, try_floor, Floor, "floor: the largest integer not above `x` (±0, ±inf and NaN stay)";
    ceil, try_ceil, Ceil, "ceiling: the smallest integer not below `x` (`ceil(-0.5) = -0`; ±inf and NaN stay)";
    round, try_round, Round, "rounding to the nearest integer, halves away from zero as `f64::round` (`round(2.5) = 3`, `round(-0.5) = -1`)";
    trunc, try_trunc, Trunc, "integer part, rounded toward zero (`trunc(-1.7) = -1`)";
}

impl Tensor {
    /// Elementwise error function `erf(x) = 2/sqrt(pi) * integral of e^(-t^2) from 0 to x`
    /// (odd, ±1 at ±inf, within about an ulp). Panics for a non-float tensor; see
    /// [`Tensor::try_erf`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![0.0f64, 0.5, -1.0, f64::INFINITY], &[4]);
    /// let y = x.erf().to_vec::<f64>();
    /// assert_eq!(y[0], 0.0);
    /// assert!((y[1] - 0.5204998778130465).abs() < 1e-16);
    /// assert!((y[2] + 0.8427007929497149).abs() < 1e-16);
    /// assert_eq!(y[3], 1.0);
    /// ```
    #[track_caller]
    pub fn erf(&self) -> Tensor {
        unwrap(self.try_erf())
    }

    /// [`Tensor::erf`], returning an error for a non-float tensor.
    pub fn try_erf(&self) -> Result<Tensor> {
        self.try_unary("erf", UnaryOp::Erf)
    }

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
