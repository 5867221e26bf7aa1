//! Cumulative sums along an axis (`cumsum`, and `cumsum_rev` from the end of the axis).
//!
//! The tensor is viewed as `[outer, n, inner]` around the axis (a permuted view of
//! contiguous storage is scanned in its stored order and permuted back; other views are
//! copied once). On the CPU:
//!
//! - `inner == 1`: each row of `n` is a sequential running sum, rows in parallel. Rows of
//!   at least [`LONG_ROW`] elements are cut into blocks of [`ROW_BLOCK`]: the blocks'
//!   totals are summed in parallel (vectorised), their running totals give each block its
//!   starting value, and the blocks are then scanned in parallel. The blocks depend only on
//!   the shape, so the result does not depend on the number of threads.
//! - `inner > 1`: the running sum of whole rows of `inner` (`out[k] = out[k - 1] + x[k]`,
//!   a loop the compiler vectorises), in parallel over outer blocks and, when there are
//!   few of those, over column segments.
//!
//! Sums accumulate in the element type (f32 in f32), as in JAX, starting from -0.0 (the
//! exact identity of `+`), so that the first element is copied exactly.
//!
//! On a GPU see `crate::gpu::scan`.

use rayon::prelude::*;

use crate::cpu::for_row_blocks;
use crate::cpu::kernels::PAR_THRESHOLD;
use crate::element::Float;
use crate::error::{Result, unwrap};
use crate::pool;
use crate::shape::{normalize_axis, numel};
use crate::tensor::{Tensor, float_dispatch};

/// Rows (`inner == 1`) at least this long are scanned in blocks, in parallel.
const LONG_ROW: usize = 1 << 16;

/// The block length of long rows.
const ROW_BLOCK: usize = 1 << 14;

/// Fewest columns a task of the `inner > 1` kernel scans (fewer only at a row's end).
const MIN_COLUMNS: usize = 256;

impl Tensor {
    /// Inclusive cumulative sum along `axis` (negative counts from the end), as NumPy's and
    /// JAX's `cumsum`: `out[.., i, ..] = sum_{j <= i} x[.., j, ..]`. Same shape and dtype;
    /// sums accumulate in the element type. Panics for a bad axis or a non-float tensor;
    /// see [`Tensor::try_cumsum`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(x.cumsum(1).to_vec::<f32>(), vec![1.0, 3.0, 6.0, 4.0, 9.0, 15.0]);
    /// assert_eq!(x.cumsum(0).to_vec::<f32>(), vec![1.0, 2.0, 3.0, 5.0, 7.0, 9.0]);
    /// ```
    #[track_caller]
    pub fn cumsum(&self, axis: isize) -> Tensor {
        unwrap(self.try_cumsum(axis))
    }

    /// [`Tensor::cumsum`], returning an error for a bad axis or a non-float tensor.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1i32, 2], &[2]);
    /// assert!(x.try_cumsum(0).unwrap_err().to_string().contains("cumsum"));
    /// let y = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
    /// assert_eq!(y.try_cumsum(-1).unwrap().to_vec::<f64>(), vec![1.0, 3.0]);
    /// assert!(y.try_cumsum(1).is_err());
    /// ```
    pub fn try_cumsum(&self, axis: isize) -> Result<Tensor> {
        self.try_scan("cumsum", axis, false)
    }

    /// Cumulative sum from the end of `axis`: `out[.., i, ..] = sum_{j >= i} x[.., j, ..]`
    /// (JAX's `lax.cumsum(x, axis, reverse=True)`), the transpose of [`Tensor::cumsum`].
    /// Panics for a bad axis or a non-float tensor; see [`Tensor::try_cumsum_rev`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4]);
    /// assert_eq!(x.cumsum_rev(0).to_vec::<f32>(), vec![10.0, 9.0, 7.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn cumsum_rev(&self, axis: isize) -> Tensor {
        unwrap(self.try_cumsum_rev(axis))
    }

    /// [`Tensor::cumsum_rev`], returning an error for a bad axis or a non-float tensor.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.try_cumsum_rev(0).unwrap().to_vec::<f64>(), vec![4.0, 6.0, 3.0, 4.0]);
    /// assert!(x.try_cumsum_rev(-3).unwrap_err().to_string().contains("cumsum_rev"));
    /// ```
    pub fn try_cumsum_rev(&self, axis: isize) -> Result<Tensor> {
        self.try_scan("cumsum_rev", axis, true)
    }

    fn try_scan(&self, name: &'static str, axis: isize, reverse: bool) -> Result<Tensor> {
        self.expect_float(name)?;
        let ax = normalize_axis(name, axis, self.shape())?;
        self.scan_along(name, ax, reverse)
    }

    /// The running sums along axis `ax` (in range, the tensor a float).
    fn scan_along(&self, name: &'static str, ax: usize, reverse: bool) -> Result<Tensor> {
        // a permuted view of contiguous storage (a transpose) is scanned in place, in its
        // stored axis order, and the result permuted back (a view)
        if let Some(r) =
            self.in_storage_order(ax, |stored, at| stored.scan_along(name, at, reverse))
        {
            return r;
        }
        let shape = self.shape().to_vec();
        let (outer, n, inner) = (numel(&shape[..ax]), shape[ax], numel(&shape[ax + 1..]));
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::scan::cumsum(name, self, [outer, n, inner], reverse);
        }
        Ok(float_dispatch!(self.dtype(), T => {
            let x = self.contiguous_data::<T>();
            let mut out = pool::buffer(x.len(), 0.0 as T);
            if !out.is_empty() {
                cumsum_kernel(&x, &mut out, outer, n, inner, reverse);
            }
            pool::recycle_copy(x);
            Tensor::from_data(out, &shape)
        }))
    }
}

/// Writes the running sums of `x` along the middle axis of its `[outer, n, inner]` view
/// (none of them 0) into `out`, from the end of the axis when `reverse`.
fn cumsum_kernel<T: Float>(
    x: &[T],
    out: &mut [T],
    outer: usize,
    n: usize,
    inner: usize,
    reverse: bool,
) {
    debug_assert_eq!(x.len(), outer * n * inner);
    debug_assert_eq!(out.len(), x.len());
    if inner > 1 {
        columns(x, out, outer, n, inner, reverse);
    } else if n >= LONG_ROW {
        long_rows(x, out, n, reverse);
    } else {
        for_row_blocks(out, n, |first, block| {
            for (r, o) in block.chunks_exact_mut(n).enumerate() {
                let at = (first + r) * n;
                scan_into(&x[at..at + n], o, T::neg_zero(), reverse);
            }
        });
    }
}

/// The running sums of `x` into `out` starting from `carry` (forwards, or backwards when
/// `reverse`); returns the last.
#[inline]
fn scan_into<T: Float>(x: &[T], out: &mut [T], carry: T, reverse: bool) -> T {
    let mut acc = carry;
    if reverse {
        for (o, &v) in out.iter_mut().zip(x).rev() {
            acc = acc + v;
            *o = acc;
        }
    } else {
        for (o, &v) in out.iter_mut().zip(x) {
            acc = acc + v;
            *o = acc;
        }
    }
    acc
}

/// The sum of `x` in sixteen interleaved lanes (a loop the compiler vectorises).
fn block_sum<T: Float>(x: &[T]) -> T {
    const LANES: usize = 16;
    let mut acc = [T::neg_zero(); LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = *a + v;
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a = *a + v;
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] = acc[i] + acc[i + width];
        }
    }
    acc[0]
}

/// Rows of `n >= LONG_ROW` elements (`inner == 1`): block totals in parallel, their
/// running totals in order, then every block scanned from its starting value in parallel.
fn long_rows<T: Float>(x: &[T], out: &mut [T], n: usize, reverse: bool) {
    let per_row = n.div_ceil(ROW_BLOCK);
    let rows = x.len() / n;
    let block = |i: usize| {
        let (r, b) = (i / per_row, i % per_row);
        let start = r * n + b * ROW_BLOCK;
        start..start + ROW_BLOCK.min(n - b * ROW_BLOCK)
    };
    let mut carries: Vec<T> = (0..rows * per_row)
        .into_par_iter()
        .map(|i| block_sum(&x[block(i)]))
        .collect();
    // each block's starting value: the total of the blocks before it (after it, reversed)
    for row in carries.chunks_exact_mut(per_row) {
        let mut acc = T::neg_zero();
        let mut step = |c: &mut T| {
            let total = *c;
            *c = acc;
            acc = acc + total;
        };
        if reverse {
            row.iter_mut().rev().for_each(&mut step);
        } else {
            row.iter_mut().for_each(&mut step);
        }
    }
    // the blocks of `out`, cut row by row as `block` cuts `x`
    let mut parts: Vec<(usize, &mut [T])> = Vec::with_capacity(rows * per_row);
    let mut rest = out;
    for i in 0..rows * per_row {
        let len = block(i).len();
        let (head, tail) = rest.split_at_mut(len);
        parts.push((i, head));
        rest = tail;
    }
    parts.into_par_iter().for_each(|(i, o)| {
        scan_into(&x[block(i)], o, carries[i], reverse);
    });
}

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut<T>(*mut T);
// SAFETY: only used by tasks writing disjoint column segments (see `columns`).
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    fn get(self) -> *mut T {
        self.0
    }
}

/// `inner > 1`: running sums of whole rows of `inner` along `n`, in tasks of one outer
/// block and a segment of its columns (whole rows when there are enough outer blocks).
fn columns<T: Float>(x: &[T], out: &mut [T], outer: usize, n: usize, inner: usize, reverse: bool) {
    let threads = rayon::current_num_threads();
    let parallel = x.len() >= PAR_THRESHOLD && threads > 1;
    // about four tasks per thread
    let splits = if parallel {
        (4 * threads).div_ceil(outer)
    } else {
        1
    };
    let width = inner
        .div_ceil(splits)
        .max(MIN_COLUMNS)
        .next_multiple_of(64)
        .min(inner);
    let per_o = inner.div_ceil(width);
    let ptr = SharedOut(out.as_mut_ptr());
    let run = |task: usize| {
        let (o, c0) = (task / per_o, (task % per_o) * width);
        let w = width.min(inner - c0);
        let mut prev: Option<usize> = None;
        for step in 0..n {
            let k = if reverse { n - 1 - step } else { step };
            let at = (o * n + k) * inner + c0;
            let xr = &x[at..at + w];
            // SAFETY: `at..at + w` lies in `out` (as in `x`, of the same length); the
            // task's column segment of row `k` is written by this task alone, and `prev`
            // (another row of the segment) does not overlap it.
            let cur = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(at), w) };
            match prev {
                None => cur.copy_from_slice(xr),
                Some(p) => {
                    // SAFETY: as above; row `p` was written in the previous step.
                    let before = unsafe { std::slice::from_raw_parts(ptr.get().add(p), w) };
                    for ((c, &b), &v) in cur.iter_mut().zip(before).zip(xr) {
                        *c = b + v;
                    }
                }
            }
            prev = Some(at);
        }
    };
    let tasks = outer * per_o;
    if parallel {
        (0..tasks).into_par_iter().for_each(run);
    } else {
        (0..tasks).for_each(run);
    }
}
