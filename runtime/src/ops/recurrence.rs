//! First-order linear recurrences along an axis, `h[t] = decay[t] * h[t - 1] + x[t]`
//! (discounted returns, exponential moving averages, IIR filters, the state of a linear
//! state-space layer), and the running and whole products built on them (`cumprod`,
//! `prod`, `prod_axis`).
//!
//! A product is the recurrence with the factors as decay and the first factor as input
//! (`h[0] = x[0]`, then `h[t] = x[t] * h[t - 1] + 0`), written here exactly as the macro
//! lowers it: so the transformed functions compute the plain one's values, and the
//! derivatives, being the recurrence's, need no division (a product with zeros in it has
//! the right gradient, as JAX's).
//!
//! On the CPU the tensor is viewed as `[outer, n, inner]` around the axis: with
//! `inner == 1` each row is a sequential loop, rows in parallel; with `inner > 1` the loop
//! runs over whole rows of `inner` (which the compiler vectorises), outer blocks in
//! parallel. On a GPU see `crate::gpu::scan`.

use rayon::prelude::*;

use crate::cpu::for_row_blocks;
use crate::cpu::kernels::{CmpOp, PAR_THRESHOLD};
use crate::element::Float;
use crate::error::{Result, unwrap};
use crate::pool;
use crate::shape::{broadcast_shapes, normalize_axis, numel};
use crate::tensor::{Tensor, float_dispatch};

impl Tensor {
    /// The linear recurrence `h[t] = decay[t] * h[t - 1] + self[t]` along `axis`, from
    /// `h[0] = self[0]` (`decay[0]` is not read). `decay` broadcasts against `self` (a
    /// constant factor is a one-element tensor); the result has their broadcast shape.
    /// Panics for bad shapes, dtypes or axis; see [`Tensor::try_linear_recurrence`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // discounted sums, an exponential moving average's numerator
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
    /// let h = x.linear_recurrence(&Tensor::scalar(0.5f64), 0);
    /// assert_eq!(h.to_vec::<f64>(), vec![1.0, 2.5, 4.25]);
    /// ```
    #[track_caller]
    pub fn linear_recurrence(&self, decay: &Tensor, axis: isize) -> Tensor {
        unwrap(self.try_linear_recurrence(decay, axis))
    }

    /// [`Tensor::linear_recurrence`], returning an error instead of panicking.
    pub fn try_linear_recurrence(&self, decay: &Tensor, axis: isize) -> Result<Tensor> {
        self.recurrence("linear_recurrence", decay, axis, false)
    }

    /// The linear recurrence from the end of `axis`: `h[t] = decay[t] * h[t + 1] +
    /// self[t]`, from `h[n - 1] = self[n - 1]` (returns-to-go with a discount, the
    /// transpose of [`Tensor::linear_recurrence`] with the decay moved by one). Panics for
    /// bad shapes, dtypes or axis; see [`Tensor::try_linear_recurrence_rev`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let rewards = Tensor::from_vec(vec![1.0f32, 0.0, 2.0], &[3]);
    /// let returns = rewards.linear_recurrence_rev(&Tensor::scalar(0.5f32), 0);
    /// assert_eq!(returns.to_vec::<f32>(), vec![1.5, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn linear_recurrence_rev(&self, decay: &Tensor, axis: isize) -> Tensor {
        unwrap(self.try_linear_recurrence_rev(decay, axis))
    }

    /// [`Tensor::linear_recurrence_rev`], returning an error instead of panicking.
    pub fn try_linear_recurrence_rev(&self, decay: &Tensor, axis: isize) -> Result<Tensor> {
        self.recurrence("linear_recurrence_rev", decay, axis, true)
    }

    /// The running product along `axis`, `out[.., i, ..] = prod_{j <= i} x[.., j, ..]`
    /// (`jnp.cumprod`). Panics for a bad axis or a non-float tensor; see
    /// [`Tensor::try_cumprod`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![2.0f32, 3.0, 0.5, 4.0], &[4]);
    /// assert_eq!(x.cumprod(0).to_vec::<f32>(), vec![2.0, 6.0, 3.0, 12.0]);
    /// ```
    #[track_caller]
    pub fn cumprod(&self, axis: isize) -> Tensor {
        unwrap(self.try_cumprod(axis))
    }

    /// [`Tensor::cumprod`], returning an error for a bad axis or a non-float tensor.
    pub fn try_cumprod(&self, axis: isize) -> Result<Tensor> {
        self.products("cumprod", axis, false)
    }

    /// The running product from the end of `axis`, `out[.., i, ..] = prod_{j >= i} x[..,
    /// j, ..]`. Panics for a bad axis or a non-float tensor; see
    /// [`Tensor::try_cumprod_rev`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![2.0f64, 3.0, 0.5, 4.0], &[4]);
    /// assert_eq!(x.cumprod_rev(0).to_vec::<f64>(), vec![12.0, 6.0, 2.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn cumprod_rev(&self, axis: isize) -> Tensor {
        unwrap(self.try_cumprod_rev(axis))
    }

    /// [`Tensor::cumprod_rev`], returning an error for a bad axis or a non-float tensor.
    pub fn try_cumprod_rev(&self, axis: isize) -> Result<Tensor> {
        self.products("cumprod_rev", axis, true)
    }

    /// The product along `axis` (`jnp.prod`), that axis kept with size 1 when `keepdim`:
    /// the first element of [`Tensor::cumprod_rev`]. Panics for a bad or empty axis or a
    /// non-float tensor; see [`Tensor::try_prod_axis`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(x.prod_axis(1, false).to_vec::<f32>(), vec![6.0, 120.0]);
    /// assert_eq!(x.prod_axis(0, true).shape(), &[1, 3]);
    /// ```
    #[track_caller]
    pub fn prod_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        unwrap(self.try_prod_axis(axis, keepdim))
    }

    /// [`Tensor::prod_axis`], returning an error instead of panicking.
    pub fn try_prod_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let first = self.try_cumprod_rev(axis)?.try_slice(axis, 0, 1)?;
        first.try_sum_axis(axis, keepdim)
    }

    /// The product of all elements as a 0-d tensor (`jnp.prod`). Panics for an empty or a
    /// non-float tensor; see [`Tensor::try_prod`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0, 0.5], &[2, 2]);
    /// assert_eq!(x.prod().item::<f64>(), -3.0);
    /// ```
    #[track_caller]
    pub fn prod(&self) -> Tensor {
        unwrap(self.try_prod())
    }

    /// [`Tensor::prod`], returning an error instead of panicking.
    pub fn try_prod(&self) -> Result<Tensor> {
        self.try_reshape(&[self.numel()])?.try_prod_axis(0, false)
    }

    /// `cumprod`: the recurrence with `self` as decay and its first element along the axis
    /// as input, `where(shift(ones) == 0, self, 0)` (a select, not a product with a mask:
    /// an infinite factor stays infinite), as the macro lowers it.
    fn products(&self, name: &'static str, axis: isize, reverse: bool) -> Result<Tensor> {
        self.expect_float(name)?;
        let step = if reverse { -1 } else { 1 };
        let later = self.ones_like().try_shift(step, axis)?;
        let first = later.try_compare(name, CmpOp::Eq, &self.scalar_like(0.0))?;
        let input = Tensor::try_where_(&first, self, &self.scalar_like(0.0))?;
        input.recurrence(name, self, axis, reverse)
    }

    fn recurrence(
        &self,
        name: &'static str,
        decay: &Tensor,
        axis: isize,
        reverse: bool,
    ) -> Result<Tensor> {
        let dt = Tensor::expect_same_float(name, self, decay)?;
        let shape = broadcast_shapes(name, self.shape(), decay.shape())?;
        let ax = normalize_axis(name, axis, &shape)?;
        let (x, a) = (
            self.try_broadcast_to(&shape)?,
            decay.try_broadcast_to(&shape)?,
        );
        let (outer, n, inner) = (numel(&shape[..ax]), shape[ax], numel(&shape[ax + 1..]));
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::scan::linear_recurrence(name, &x, &a, [outer, n, inner], reverse);
        }
        Ok(float_dispatch!(dt, T => {
            let (xs, as_) = (x.contiguous_data::<T>(), a.contiguous_data::<T>());
            let mut out = pool::buffer(xs.len(), 0.0 as T);
            if !out.is_empty() {
                recurrence_kernel(&xs, &as_, &mut out, [outer, n, inner], reverse);
            }
            Tensor::from_data(out, &shape)
        }))
    }
}

/// `out = h` along the middle axis of the `[outer, n, inner]` view (none of them 0):
/// `h[0] = x[0]`, `h[k] = a[k] * h[k - 1] + x[k]` (from the end when `reverse`).
fn recurrence_kernel<T: Float>(
    x: &[T],
    a: &[T],
    out: &mut [T],
    [outer, n, inner]: [usize; 3],
    reverse: bool,
) {
    let order = |step: usize| if reverse { n - 1 - step } else { step };
    if inner == 1 {
        for_row_blocks(out, n, |first, block| {
            for (r, o) in block.chunks_exact_mut(n).enumerate() {
                let at = (first + r) * n;
                let (x, a) = (&x[at..at + n], &a[at..at + n]);
                let mut h = x[order(0)];
                o[order(0)] = h;
                for step in 1..n {
                    let k = order(step);
                    h = a[k] * h + x[k];
                    o[k] = h;
                }
            }
        });
        return;
    }
    // whole rows of `inner`, one outer block per task
    let slab = |o: usize, out: &mut [T]| {
        let row = |k: usize| o * n * inner + k * inner;
        let k0 = order(0);
        out[k0 * inner..(k0 + 1) * inner].copy_from_slice(&x[row(k0)..row(k0) + inner]);
        for step in 1..n {
            let (k, p) = (order(step), order(step - 1));
            let (xr, ar) = (&x[row(k)..row(k) + inner], &a[row(k)..row(k) + inner]);
            // rows `k` and `p` of this slab, split so that one is read while the other is
            // written
            let (cur, prev) = if k > p {
                let (lo, hi) = out.split_at_mut(k * inner);
                (&mut hi[..inner], &lo[p * inner..(p + 1) * inner])
            } else {
                let (lo, hi) = out.split_at_mut(p * inner);
                (&mut lo[k * inner..(k + 1) * inner], &hi[..inner])
            };
            for (((c, &h), &av), &xv) in cur.iter_mut().zip(prev).zip(ar).zip(xr) {
                *c = av * h + xv;
            }
        }
    };
    if x.len() >= PAR_THRESHOLD && outer > 1 {
        out.par_chunks_mut(n * inner)
            .enumerate()
            .for_each(|(o, s)| slab(o, s));
    } else {
        for (o, s) in out.chunks_mut(n * inner).enumerate() {
            slab(o, s);
        }
    }
}
