//! Running maxima and minima along an axis (`cummax`, `cummin`, and the indices where they
//! were taken, `cumargmax`, `cumargmin`), and the running log-sum-exp (`logcumsumexp`,
//! JAX's `lax.cumlogsumexp`).
//!
//! A running maximum is a gather at the running argmax (as `sort` is a gather at the
//! argsort), so its derivative flows to the element it picked. The running log-sum-exp
//! is `m + ln(s)` with `m` the running maximum (a constant for the derivative) and `s` the
//! linear recurrence `s[t] = e^(m[t-1] - m[t]) s[t-1] + e^(x[t] - m[t])`, whose decays and
//! inputs are at most 1: no overflow, and no underflow of a prefix much smaller than a
//! later element. The macro lowers both to the same operations.
//!
//! The indices are one sequential loop per lane, lanes in parallel (on a GPU a thread per
//! lane; lanes beyond 65,535 elements are read back and their indices uploaded).

use crate::cpu::for_row_blocks;
use crate::error::{Result, unwrap};
use crate::shape::{normalize_axis, numel};
use crate::tensor::{Tensor, float_dispatch};
use crate::{Device, Float};

impl Tensor {
    /// The index (i32) of the running maximum along `axis`: for each position, where the
    /// largest element up to it is (from the end of the axis with `reverse`); the first
    /// of equal maxima, and the first NaN once one is met (NumPy's order). Same shape.
    /// Panics for a bad axis or a non-float tensor; see [`Tensor::try_cumargmax`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 3.0, 2.0, 3.0, 5.0], &[5]);
    /// assert_eq!(x.cumargmax(0, false).to_vec::<i32>(), vec![0, 1, 1, 1, 4]);
    /// assert_eq!(x.cumargmax(0, true).to_vec::<i32>(), vec![4, 4, 4, 4, 4]);
    /// ```
    #[track_caller]
    pub fn cumargmax(&self, axis: isize, reverse: bool) -> Tensor {
        unwrap(self.try_cumargmax(axis, reverse))
    }

    /// [`Tensor::cumargmax`], returning an error instead of panicking.
    pub fn try_cumargmax(&self, axis: isize, reverse: bool) -> Result<Tensor> {
        self.running_index("cumargmax", axis, reverse, true)
    }

    /// The index (i32) of the running minimum along `axis`, as [`Tensor::cumargmax`].
    /// Panics for a bad axis or a non-float tensor; see [`Tensor::try_cumargmin`].
    #[track_caller]
    pub fn cumargmin(&self, axis: isize, reverse: bool) -> Tensor {
        unwrap(self.try_cumargmin(axis, reverse))
    }

    /// [`Tensor::cumargmin`], returning an error instead of panicking.
    pub fn try_cumargmin(&self, axis: isize, reverse: bool) -> Result<Tensor> {
        self.running_index("cumargmin", axis, reverse, false)
    }

    /// The running maximum along `axis` (`jax.lax.cummax`): [`Tensor::take_along_axis`]
    /// at [`Tensor::cumargmax`]. Panics for a bad axis or a non-float tensor; see
    /// [`Tensor::try_cummax`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f64, 3.0, 2.0, 5.0], &[4]);
    /// assert_eq!(x.cummax(0).to_vec::<f64>(), vec![1.0, 3.0, 3.0, 5.0]);
    /// ```
    #[track_caller]
    pub fn cummax(&self, axis: isize) -> Tensor {
        unwrap(self.try_cummax(axis))
    }

    /// [`Tensor::cummax`], returning an error instead of panicking.
    pub fn try_cummax(&self, axis: isize) -> Result<Tensor> {
        self.try_take_along_axis(axis, &self.try_cumargmax(axis, false)?)
    }

    /// The running minimum along `axis` (`jax.lax.cummin`). Panics for a bad axis or a
    /// non-float tensor; see [`Tensor::try_cummin`].
    #[track_caller]
    pub fn cummin(&self, axis: isize) -> Tensor {
        unwrap(self.try_cummin(axis))
    }

    /// [`Tensor::cummin`], returning an error instead of panicking.
    pub fn try_cummin(&self, axis: isize) -> Result<Tensor> {
        self.try_take_along_axis(axis, &self.try_cumargmin(axis, false)?)
    }

    /// The running log-sum-exp along `axis`, `ln(sum_{j <= i} e^x[j])` (`jax.lax.cumlogsumexp`),
    /// computed stably (see the module's notes). Panics for a bad axis or a non-float
    /// tensor; see [`Tensor::try_logcumsumexp`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![0.0f64, 0.0, 1000.0, -1000.0], &[4]);
    /// let y = x.logcumsumexp(0).to_vec::<f64>();
    /// assert_eq!(y[0], 0.0);
    /// assert!((y[1] - std::f64::consts::LN_2).abs() < 1e-15);
    /// assert_eq!(y[2], 1000.0);
    /// assert_eq!(y[3], 1000.0);
    /// ```
    #[track_caller]
    pub fn logcumsumexp(&self, axis: isize) -> Tensor {
        unwrap(self.try_logcumsumexp(axis))
    }

    /// [`Tensor::logcumsumexp`], returning an error instead of panicking.
    pub fn try_logcumsumexp(&self, axis: isize) -> Result<Tensor> {
        self.running_logsumexp(axis, false)
    }

    /// The running log-sum-exp from the end of `axis`, `ln(sum_{j >= i} e^x[j])` (a risk
    /// set's, in a Cox partial likelihood). Panics for a bad axis or a non-float tensor;
    /// see [`Tensor::try_logcumsumexp_rev`].
    #[track_caller]
    pub fn logcumsumexp_rev(&self, axis: isize) -> Tensor {
        unwrap(self.try_logcumsumexp_rev(axis))
    }

    /// [`Tensor::logcumsumexp_rev`], returning an error instead of panicking.
    pub fn try_logcumsumexp_rev(&self, axis: isize) -> Result<Tensor> {
        self.running_logsumexp(axis, true)
    }

    /// `m + ln(s)`, as the macro lowers `logcumsumexp`: `m` the running maximum where
    /// finite (else 0), `s` the recurrence of `e^(x - m)`; `-inf` where `s` is 0.
    fn running_logsumexp(&self, axis: isize, reverse: bool) -> Result<Tensor> {
        let top = self.try_take_along_axis(axis, &self.try_cumargmax(axis, reverse)?)?;
        // centred on the running maximum where it is finite, else on 0 (a lane of -inf so
        // far sums to 0, whose log is -inf; +inf stays +inf)
        // (`|m| < inf`, not `m - m == 0`, which a GPU compiler may fold to true)
        let finite = top.try_abs()?.try_lt(&top.scalar_like(f64::INFINITY))?;
        let m = Tensor::try_where_(&finite, &top, &top.scalar_like(0.0))?;
        let before = m.try_shift(if reverse { -1 } else { 1 }, axis)?;
        let decay = (&before - &m).try_exp()?;
        let input = (self - &m).try_exp()?;
        let s = if reverse {
            input.try_linear_recurrence_rev(&decay, axis)?
        } else {
            input.try_linear_recurrence(&decay, axis)?
        };
        // a sum of nothing (every value so far -inf) is -inf (its cotangent 0, not 0/0)
        let zero = s.scalar_like(0.0);
        let empty = s.try_eq(&zero)?;
        let safe = Tensor::try_where_(&empty, &s.scalar_like(1.0), &s)?;
        let sum = &m + &safe.try_ln()?;
        Tensor::try_where_(&empty, &s.scalar_like(f64::NEG_INFINITY), &sum)
    }

    fn running_index(
        &self,
        name: &'static str,
        axis: isize,
        reverse: bool,
        largest: bool,
    ) -> Result<Tensor> {
        self.expect_float(name)?;
        let ax = normalize_axis(name, axis, self.shape())?;
        let shape = self.shape().to_vec();
        let (outer, n, inner) = (numel(&shape[..ax]), shape[ax], numel(&shape[ax + 1..]));
        if self.device() != Device::Cpu {
            #[cfg(feature = "gpu")]
            if let Some(idx) =
                crate::gpu::scan::running_index(name, self, [outer, n, inner], reverse, largest)?
            {
                return Ok(idx);
            }
            // (lanes too long for one thread: on the host, one round trip)
            let idx = self
                .try_to_device(&Device::Cpu)?
                .running_index(name, axis, reverse, largest)?;
            return idx.try_to_device(&self.device());
        }
        let mut out = crate::pool::buffer(outer * n * inner, 0i32);
        if !out.is_empty() {
            float_dispatch!(self.dtype(), T => {
                let x = self.contiguous_data::<T>();
                running_kernel::<T>(&x, &mut out, [outer, n, inner], reverse, largest);
            });
        }
        Ok(Tensor::from_data(out, &shape))
    }
}

/// The running extremum's index along the middle axis of `[outer, n, inner]`.
fn running_kernel<T: Float>(
    x: &[T],
    out: &mut [i32],
    [_, n, inner]: [usize; 3],
    reverse: bool,
    largest: bool,
) {
    // `v` replaces the best so far `b`: strictly better, or the first NaN
    let better = |v: T, b: T| {
        if largest {
            v > b || (v.is_nan() && !b.is_nan())
        } else {
            v < b || (v.is_nan() && !b.is_nan())
        }
    };
    for_row_blocks(out, n * inner, |first, block| {
        for (r, o) in block.chunks_exact_mut(n * inner).enumerate() {
            let base = (first + r) * n * inner;
            for c in 0..inner {
                let mut best = 0;
                for step in 0..n {
                    let k = if reverse { n - 1 - step } else { step };
                    let v = x[base + k * inner + c];
                    if step == 0 || better(v, x[base + best * inner + c]) {
                        best = k;
                    }
                    o[k * inner + c] = best as i32;
                }
            }
        }
    });
}
