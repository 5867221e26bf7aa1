//! Sorting and gathers along an axis: `argsort`, `sort`, `top_k`, `take_along_axis` and
//! its transpose `scatter_add`.
//!
//! Sorting orders values as NumPy does: NaN after every number, `-0.0` equal to `0.0`,
//! equal values in their original order (stable). A sort's derivative is a gather with
//! the sorting permutation ([`Tensor::take_along_axis`]), whose transpose scatters back
//! ([`Tensor::scatter_add`]).

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::cpu::kernels::PAR_THRESHOLD;
use crate::element::Float;
use crate::error::{Error, Result, unwrap};
use crate::pool;
use crate::shape::{normalize_axis, numel};
use crate::tensor::{Tensor, any_dispatch, float_dispatch};

/// NumPy's order: NaN last, `-0.0 == 0.0`.
fn order<T: Float>(a: T, b: T) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

impl Tensor {
    /// The indices (i32) that sort `self` along `axis` in ascending order: NaN last, equal
    /// values in their original order (`jnp.argsort` with `stable=True`). On a GPU, lanes of
    /// up to 1024 values are sorted by a bitonic network in one workgroup each, longer ones
    /// by the same network in global memory (a dispatch per step), and only lanes past 2^31
    /// padded pairs on the host (one round trip). Panics for a bad axis or a non-float
    /// tensor; see [`Tensor::try_argsort`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![3.0f32, f32::NAN, 1.0, 3.0], &[4]);
    /// assert_eq!(x.argsort(0).to_vec::<i32>(), vec![2, 0, 3, 1]);
    /// ```
    #[track_caller]
    pub fn argsort(&self, axis: isize) -> Tensor {
        unwrap(self.try_argsort(axis))
    }

    /// [`Tensor::argsort`], returning an error instead of panicking.
    pub fn try_argsort(&self, axis: isize) -> Result<Tensor> {
        let ax = normalize_axis("argsort", axis, self.shape())?;
        self.sorted_indices("argsort", ax, self.shape()[ax], false)
    }

    /// `self` sorted along `axis`, ascending (NaN last): [`Tensor::take_along_axis`] at
    /// [`Tensor::argsort`]. Panics for a bad axis or a non-float tensor; see
    /// [`Tensor::try_sort`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![3.0f64, -1.0, 2.0, 0.5, 0.0, 9.0], &[2, 3]);
    /// assert_eq!(x.sort(-1).to_vec::<f64>(), vec![-1.0, 2.0, 3.0, 0.0, 0.5, 9.0]);
    /// ```
    #[track_caller]
    pub fn sort(&self, axis: isize) -> Tensor {
        unwrap(self.try_sort(axis))
    }

    /// [`Tensor::sort`], returning an error instead of panicking.
    pub fn try_sort(&self, axis: isize) -> Result<Tensor> {
        self.try_take_along_axis(axis, &self.try_argsort(axis)?)
    }

    /// The indices (i32, `[.., k]`) of the `k` largest values along the last axis, largest
    /// first (NaN counts as the largest; ties: the lower index first), as
    /// `jax.lax.top_k`'s second result. Panics for `k` above the axis's size, a 0-d or a
    /// non-float tensor; see [`Tensor::try_top_k_indices`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![0.5f32, 4.0, -2.0, 4.0, 1.0], &[5]);
    /// assert_eq!(x.top_k_indices(3).to_vec::<i32>(), vec![1, 3, 4]);
    /// ```
    #[track_caller]
    pub fn top_k_indices(&self, k: usize) -> Tensor {
        unwrap(self.try_top_k_indices(k))
    }

    /// [`Tensor::top_k_indices`], returning an error instead of panicking.
    pub fn try_top_k_indices(&self, k: usize) -> Result<Tensor> {
        const OP: &str = "top_k";
        let ax = normalize_axis(OP, -1, self.shape())?;
        let n = self.shape()[ax];
        if k > n {
            return Err(Error::InvalidArgument {
                op: OP,
                message: format!(
                    "k = {k} is more than the {n} values along the last axis of shape {:?}",
                    self.shape()
                ),
            });
        }
        self.sorted_indices(OP, ax, k, true)
    }

    /// The `k` largest values along the last axis, largest first (`jax.lax.top_k`'s first
    /// result): [`Tensor::take_along_axis`] at [`Tensor::top_k_indices`]. Panics as
    /// [`Tensor::top_k_indices`] does; see [`Tensor::try_top_k`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![0.5f32, 4.0, -2.0, 3.0, 1.0], &[5]);
    /// assert_eq!(x.top_k(2).to_vec::<f32>(), vec![4.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn top_k(&self, k: usize) -> Tensor {
        unwrap(self.try_top_k(k))
    }

    /// [`Tensor::top_k`], returning an error instead of panicking.
    pub fn try_top_k(&self, k: usize) -> Result<Tensor> {
        self.try_take_along_axis(-1, &self.try_top_k_indices(k)?)
    }

    /// The first `k` of the indices sorting each lane of axis `ax` (descending where
    /// `descending`), as an i32 tensor shaped like `self` with `k` along `ax`.
    fn sorted_indices(
        &self,
        op: &'static str,
        ax: usize,
        k: usize,
        descending: bool,
    ) -> Result<Tensor> {
        let dt = self.expect_float(op)?;
        let mut shape = self.shape().to_vec();
        shape[ax] = k;
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            if let Some(idx) = crate::gpu::sort::sorted_indices(op, self, ax, k, descending)? {
                return Ok(idx);
            }
            // lanes whose padded pairs pass 2^31: sorted on the host
            let host = self.try_to_device(&crate::Device::Cpu)?;
            let idx = host.sorted_indices(op, ax, k, descending)?;
            return idx.try_to_device(&self.device());
        }
        let n = self.shape()[ax];
        let (outer, inner) = (numel(&self.shape()[..ax]), numel(&self.shape()[ax + 1..]));
        let mut out = crate::pool::buffer(numel(&shape), 0i32);
        if out.is_empty() {
            return Ok(Tensor::from_data(out, &shape));
        }
        float_dispatch!(dt, T => {
            let x = self.contiguous_data::<T>();
            // one lane per (outer, inner) position; its k indices land `inner` apart
            let lane = |l: usize, perm: &mut Vec<usize>| -> Vec<i32> {
                let (o, r) = (l / inner, l % inner);
                let at = |i: usize| x[(o * n + i) * inner + r];
                perm.clear();
                perm.extend(0..n);
                if descending {
                    perm.sort_by(|&i, &j| order(at(j), at(i)));
                } else {
                    perm.sort_by(|&i, &j| order(at(i), at(j)));
                }
                perm[..k].iter().map(|&i| i as i32).collect()
            };
            let lanes: Vec<Vec<i32>> = if self.numel() >= PAR_THRESHOLD / 8 && outer * inner > 1 {
                (0..outer * inner)
                    .into_par_iter()
                    .map_init(Vec::new, |perm, l| lane(l, perm))
                    .collect()
            } else {
                let mut perm = Vec::new();
                (0..outer * inner).map(|l| lane(l, &mut perm)).collect()
            };
            for (l, idx) in lanes.iter().enumerate() {
                let (o, r) = (l / inner, l % inner);
                for (j, &i) in idx.iter().enumerate() {
                    out[(o * k + j) * inner + r] = i;
                }
            }
        });
        Ok(Tensor::from_data(out, &shape))
    }

    /// `self` (of any dtype) gathered along `axis` at `indices`, an i32 tensor shaped like
    /// `self` but for its length `k` along `axis`: `out[.., j, ..] = self[.., indices[..,
    /// j, ..], ..]` (NumPy's `take_along_axis`, PyTorch's `gather`). Panics on a shape
    /// mismatch or an index outside `0..size`; see [`Tensor::try_take_along_axis`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // each row's entry at its label
    /// let logp = Tensor::from_vec(vec![-0.1f32, -2.0, -3.0, -1.5, -0.3, -2.5], &[2, 3]);
    /// let labels = Tensor::from_vec(vec![0i32, 1], &[2, 1]);
    /// assert_eq!(logp.take_along_axis(1, &labels).to_vec::<f32>(), vec![-0.1, -0.3]);
    /// ```
    #[track_caller]
    pub fn take_along_axis(&self, axis: isize, indices: &Tensor) -> Tensor {
        unwrap(self.try_take_along_axis(axis, indices))
    }

    /// [`Tensor::take_along_axis`], returning an error instead of panicking.
    pub fn try_take_along_axis(&self, axis: isize, indices: &Tensor) -> Result<Tensor> {
        self.gather_along("take_along_axis", axis, indices, None)
    }

    /// [`Tensor::take_along_axis`] where an index outside `0..size` reads `fill` instead
    /// (JAX's `take_along_axis(.., mode="fill")`): the gather at a position that may name
    /// nothing, such as an empty segment's [`Tensor::segment_argmax`]. Panics on a shape
    /// mismatch; see [`Tensor::try_take_along_axis_or`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
    /// let at = Tensor::from_vec(vec![2i32, 3, -1, 0], &[4]);
    /// assert_eq!(x.take_along_axis_or(0, &at, 9.0).to_vec::<f32>(), vec![3.0, 9.0, 9.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn take_along_axis_or(&self, axis: isize, indices: &Tensor, fill: f64) -> Tensor {
        unwrap(self.try_take_along_axis_or(axis, indices, fill))
    }

    /// [`Tensor::take_along_axis_or`], returning an error instead of panicking.
    pub fn try_take_along_axis_or(
        &self,
        axis: isize,
        indices: &Tensor,
        fill: f64,
    ) -> Result<Tensor> {
        self.gather_along("take_along_axis_or", axis, indices, Some(fill))
    }

    /// `take_along_axis`, with indices checked to be in range (`fill` `None`) or reading
    /// `fill` where they are not.
    fn gather_along(
        &self,
        op: &'static str,
        axis: isize,
        indices: &Tensor,
        fill: Option<f64>,
    ) -> Result<Tensor> {
        let ax = normalize_axis(op, axis, self.shape())?;
        if fill.is_some() {
            self.expect_float(op)?;
        }
        self.expect_lanes(op, ax, indices, "indices")?;
        match fill {
            None => self.check_indices(op, ax, indices)?,
            Some(_) => self.expect_index_tensor(op, indices)?,
        }
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::gather::take_along(self, ax, indices, fill);
        }
        let lanes = [
            self.shape()[ax],
            indices.shape()[ax],
            numel(&self.shape()[ax + 1..]),
        ];
        let idx = indices.contiguous_data::<i32>();
        Ok(match fill {
            Some(f) => float_dispatch!(self.dtype(), T => {
                let out = gathered(&self.contiguous_data::<T>(), &idx, lanes, f as T);
                Tensor::from_data(out, indices.shape())
            }),
            // (every index checked: nothing reads the fill)
            None => any_dispatch!(self.dtype(), T => {
                let x = self.contiguous_data::<T>();
                let out = match x.first() {
                    Some(&any) => gathered(&x, &idx, lanes, any),
                    None => Vec::new(),
                };
                Tensor::from_data(out, indices.shape())
            }),
        })
    }

    /// A copy of `self` with `source` added along `axis` at `indices` (`out[.., indices[..,
    /// j, ..], ..] += source[.., j, ..]`; repeated indices add up), `indices` and `source`
    /// shaped like `self` but for their length along `axis`: the transpose of
    /// [`Tensor::take_along_axis`] (PyTorch's `scatter_add`). On a GPU the values meeting
    /// at one element are added in the order their threads reach it, so sums may differ in
    /// their last bits from run to run. Panics on a mismatch or an index outside
    /// `0..size`; see [`Tensor::try_scatter_add`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let zeros = Tensor::zeros(&[3], DType::F64);
    /// let idx = Tensor::from_vec(vec![2i32, 0, 2], &[3]);
    /// let src = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
    /// assert_eq!(zeros.scatter_add(0, &idx, &src).to_vec::<f64>(), vec![2.0, 0.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn scatter_add(&self, axis: isize, indices: &Tensor, source: &Tensor) -> Tensor {
        unwrap(self.try_scatter_add(axis, indices, source))
    }

    /// [`Tensor::scatter_add`], returning an error instead of panicking.
    pub fn try_scatter_add(
        &self,
        axis: isize,
        indices: &Tensor,
        source: &Tensor,
    ) -> Result<Tensor> {
        self.scatter_along("scatter_add", axis, indices, source, true)
    }

    /// [`Tensor::scatter_add`] where the values at an index outside `0..size` are dropped
    /// (JAX's `x.at[..].add(.., mode="drop")`): the transpose of
    /// [`Tensor::take_along_axis_or`]. Panics on a shape mismatch; see
    /// [`Tensor::try_scatter_add_dropping`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let zeros = Tensor::zeros(&[3], DType::F64);
    /// let idx = Tensor::from_vec(vec![2i32, 3, 2, -1], &[4]);
    /// let src = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[4]);
    /// assert_eq!(zeros.scatter_add_dropping(0, &idx, &src).to_vec::<f64>(), vec![0.0, 0.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn scatter_add_dropping(&self, axis: isize, indices: &Tensor, source: &Tensor) -> Tensor {
        unwrap(self.try_scatter_add_dropping(axis, indices, source))
    }

    /// [`Tensor::scatter_add_dropping`], returning an error instead of panicking.
    pub fn try_scatter_add_dropping(
        &self,
        axis: isize,
        indices: &Tensor,
        source: &Tensor,
    ) -> Result<Tensor> {
        self.scatter_along("scatter_add_dropping", axis, indices, source, false)
    }

    /// `scatter_add`, with indices checked to be in range or (unless `checked`) the values
    /// at the others dropped.
    fn scatter_along(
        &self,
        op: &'static str,
        axis: isize,
        indices: &Tensor,
        source: &Tensor,
        checked: bool,
    ) -> Result<Tensor> {
        let ax = normalize_axis(op, axis, self.shape())?;
        Tensor::expect_same_float(op, self, source)?;
        self.expect_lanes(op, ax, indices, "indices")?;
        if source.shape() != indices.shape() {
            return Err(Error::ShapeMismatch {
                op,
                lhs: indices.shape().to_vec(),
                rhs: source.shape().to_vec(),
                reason: "do not fit: the indices and the source must have one shape".into(),
            });
        }
        if checked {
            self.check_indices(op, ax, indices)?;
        } else {
            self.expect_index_tensor(op, indices)?;
        }
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            // (each output element sums the values naming it: others are dropped anyway)
            return crate::gpu::gather::scatter_add(self, ax, indices, source);
        }
        let (n, k) = (self.shape()[ax], indices.shape()[ax]);
        let (outer, inner) = (numel(&self.shape()[..ax]), numel(&self.shape()[ax + 1..]));
        let idx = indices.contiguous_data::<i32>();
        Ok(float_dispatch!(self.dtype(), T => {
            let mut out: Vec<T> = self.owned_data();
            let src = source.contiguous_data::<T>();
            if !out.is_empty() {
                // one [n, inner] block of the output per outer position
                let block = |o: usize, dst: &mut [T]| {
                    let span = o * k * inner..(o + 1) * k * inner;
                    let rows = src[span.clone()].chunks_exact(inner).zip(idx[span].chunks_exact(inner));
                    for (row, at) in rows {
                        for (r, (&v, &i)) in row.iter().zip(at).enumerate() {
                            if (i as usize) < n {
                                dst[i as usize * inner + r] += v;
                            }
                        }
                    }
                };
                if out.len() + src.len() >= PAR_THRESHOLD && outer > 1 {
                    out.par_chunks_mut(n * inner).enumerate().for_each(|(o, d)| block(o, d));
                } else {
                    out.chunks_mut(n * inner).enumerate().for_each(|(o, d)| block(o, d));
                }
            }
            Tensor::from_data(out, self.shape())
        }))
    }

    /// Checks that `other` has `self`'s shape but along axis `ax`.
    fn expect_lanes(&self, op: &'static str, ax: usize, other: &Tensor, what: &str) -> Result<()> {
        let fits = other.ndim() == self.ndim()
            && (0..self.ndim()).all(|d| d == ax || other.shape()[d] == self.shape()[d]);
        if fits {
            return Ok(());
        }
        Err(Error::ShapeMismatch {
            op,
            lhs: self.shape().to_vec(),
            rhs: other.shape().to_vec(),
            reason: format!(
                "do not fit: the {what} must have the tensor's shape but along axis {ax}"
            ),
        })
    }
}

/// `take_along_axis` of row-major `x` (`[outer, n, inner]` about the axis) at row-major
/// `idx` (`[outer, k, inner]`): each output element reads its block of `x` at its index,
/// or `fill` where that is outside `0..n`.
fn gathered<T: Copy + Send + Sync + 'static>(
    x: &[T],
    idx: &[i32],
    [n, k, inner]: [usize; 3],
    fill: T,
) -> Vec<T> {
    let mut out = pool::buffer(idx.len(), fill);
    if out.is_empty() {
        return out;
    }
    // row `q` of `inner` outputs (position `q % k` of outer block `q / k`) reads its block
    // of `x` at its row of indices
    let rows = |q: usize, d: &mut [T]| {
        let block = &x[q / k * n * inner..];
        let at = &idx[q * inner..(q + 1) * inner];
        for (r, (d, &i)) in d.iter_mut().zip(at).enumerate() {
            // (a negative index is past `n` as usize)
            *d = if (i as usize) < n {
                block[i as usize * inner + r]
            } else {
                fill
            };
        }
    };
    let per = PAR_THRESHOLD.div_ceil(8 * inner).max(1) * inner;
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(per).enumerate().for_each(|(c, d)| {
            let q0 = c * per / inner;
            d.chunks_mut(inner)
                .enumerate()
                .for_each(|(q, d)| rows(q0 + q, d));
        });
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(q, d)| rows(q, d));
    }
    out
}
