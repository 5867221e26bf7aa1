//! The softmax family (softmax, log-softmax, logsumexp) along the middle axis of
//! `[outer, n, inner]`, fused, with no temporaries beyond stack buffers: per row a max
//! pass, an exp-and-sum pass and a scaling pass (in cache); per column block (`inner >
//! 1`) one pass that keeps a running max and rescales the running sum of exponentials
//! when it moves, then one that writes (logsumexp needs only the first).

use std::ops::Range;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::elementwise::max_nan;
use super::kernels::{PAR_THRESHOLD, SoftmaxOp};
use super::math::{self, MathFloat};
use super::par::{PAGE_COLUMNS, Segment, SharedOut, for_segments, parallel};
use super::reduce::{MaxR, REDUCE_BLOCK, RowReduce};
use super::simd::dispatch;
use crate::element::Float;

/// The shift `softmax` subtracts: the maximum, or 0 where that is not finite (all -inf,
/// +inf or NaN rows), so that such rows give the IEEE result of the formula.
#[inline(always)]
fn softmax_shift(m: f64) -> f64 {
    if m.is_finite() { m } else { 0.0 }
}

/// The sum of `exp(v - shift)` over `xv`, in blocks combined in f64 so that long rows stay
/// accurate. A function, not a closure: a closure inside `with_simd` was not inlined,
/// and its exp then ran without the instruction set's features, 20x slower (log-softmax
/// of [256, 100]: 419 us against softmax's 18).
#[inline(always)]
fn exp_sum<S: Simd, T: MathFloat>(s: S, xv: &[T::V<S>], shift: T::V<S>) -> f64 {
    let mut total = 0.0;
    for block in xv.chunks(REDUCE_BLOCK) {
        let mut acc = T::splat(s, T::zero());
        for &v in block {
            acc = T::vadd(s, acc, math::exp::<S, T>(s, T::vsub(s, v, shift)));
        }
        total += Float::to_f64(T::reduce_sum(s, acc));
    }
    total
}

/// Softmax-family ops over contiguous rows of length `n`.
struct SoftmaxRows<'a, T> {
    op: SoftmaxOp,
    x: &'a [T],
    n: usize,
    out: &'a mut [T],
}

impl<T: MathFloat> WithSimd for SoftmaxRows<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let Self { op, x, n, out } = self;
        for (r, row) in x.chunks_exact(n).enumerate() {
            let shift = T::from_f64(softmax_shift(RowReduce { r: MaxR, x: row }.with_simd(s)));
            let shift_v = T::splat(s, shift);
            let (xv, xt) = T::as_simd::<S>(row);
            let mut tail = [T::zero(); 16];
            let tail = &mut tail[..xt.len()];
            if !xt.is_empty() {
                let e = math::exp::<S, T>(s, T::vsub(s, T::partial_load(s, xt), shift_v));
                T::partial_store(s, tail, e);
            }
            let tail_sum: f64 = tail.iter().map(|&v| Float::to_f64(v)).sum();
            match op {
                SoftmaxOp::Softmax => {
                    let o = &mut out[r * n..(r + 1) * n];
                    let (ov, ot) = T::as_mut_simd::<S>(o);
                    let mut total = tail_sum;
                    for (ob, xb) in ov.chunks_mut(REDUCE_BLOCK).zip(xv.chunks(REDUCE_BLOCK)) {
                        let mut acc = T::splat(s, T::zero());
                        for (o, &v) in ob.iter_mut().zip(xb) {
                            let e = math::exp::<S, T>(s, T::vsub(s, v, shift_v));
                            acc = T::vadd(s, acc, e);
                            *o = e;
                        }
                        total += Float::to_f64(T::reduce_sum(s, acc));
                    }
                    ot.copy_from_slice(tail);
                    let inv = T::from_f64(1.0 / total);
                    let inv_v = T::splat(s, inv);
                    for o in ov.iter_mut() {
                        *o = T::vmul(s, *o, inv_v);
                    }
                    for o in ot.iter_mut() {
                        *o = *o * inv;
                    }
                }
                SoftmaxOp::LogSoftmax => {
                    let l = T::splat(
                        s,
                        T::from_f64((exp_sum::<S, T>(s, xv, shift_v) + tail_sum).ln()),
                    );
                    let o = &mut out[r * n..(r + 1) * n];
                    let (ov, ot) = T::as_mut_simd::<S>(o);
                    for (o, &v) in ov.iter_mut().zip(xv) {
                        *o = T::vsub(s, T::vsub(s, v, shift_v), l);
                    }
                    if !ot.is_empty() {
                        let v = T::vsub(s, T::vsub(s, T::partial_load(s, xt), shift_v), l);
                        T::partial_store(s, ot, v);
                    }
                }
                SoftmaxOp::LogSumExp => {
                    out[r] = shift + T::from_f64((exp_sum::<S, T>(s, xv, shift_v) + tail_sum).ln());
                }
            }
        }
    }
}

/// Softmax-family ops over a segment of columns (`inner > 1`), SIMD across columns;
/// `out` points at the whole output.
struct SoftmaxColumns<'a, T> {
    op: SoftmaxOp,
    seg: Segment<'a, T>,
    out: SharedOut<T>,
}

impl<T: MathFloat> SoftmaxColumns<'_, T> {
    fn x_row(&self, k: usize) -> &[T] {
        self.seg.row(k)
    }

    /// # Safety
    /// Only this segment writes these columns, and one row is borrowed at a time.
    #[allow(clippy::mut_from_ref)]
    unsafe fn out_row(&self, k: usize) -> &mut [T] {
        let Segment { n, inner, o, .. } = self.seg;
        let at = match self.op {
            SoftmaxOp::LogSumExp => o * inner,
            SoftmaxOp::Softmax | SoftmaxOp::LogSoftmax => (o * n + k) * inner,
        };
        let cols = &self.seg.cols;
        // SAFETY: the caller's contract; the kernel checked the output length.
        unsafe { self.out.slice(at + cols.start, cols.len()) }
    }
}

/// `a = f(a, b)` vector by vector over `a` and the matching vectors of `b` (tails
/// zero-padded), written `zip_update!(s, T, a, b, |x, y| expr)`. A macro, not a function
/// taking a closure: such a closure was compiled outside the instruction set's features
/// and called per vector, with every intrinsic in it an out-of-line call (softmax along
/// the middle axis of [64, 100, 64]: 3.5 ms, against 42 us for a sum).
macro_rules! zip_update {
    ($s:expr, $t:ty, $a:expr, $b:expr, |$x:pat_param, $y:pat_param| $body:expr) => {
        // a match keeps the operands' temporaries alive to its end
        match (&mut *$a, &*$b) {
            (a, b) => {
                let (av, at) = <$t>::as_mut_simd::<S>(a);
                let (bv, bt) = <$t>::as_simd::<S>(b);
                for (a, &b) in av.iter_mut().zip(bv) {
                    let ($x, $y) = (*a, b);
                    *a = $body;
                }
                if !at.is_empty() {
                    let ($x, $y) = (<$t>::partial_load($s, at), <$t>::partial_load($s, bt));
                    <$t>::partial_store($s, at, $body);
                }
            }
        }
    };
}

impl<T: MathFloat> WithSimd for SoftmaxColumns<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let w = self.seg.cols.len();
        let inf = T::splat(s, T::infinity());
        let zero = T::splat(s, T::zero());
        let zeros = [T::zero(); PAGE_COLUMNS];
        let zeros = &zeros[..w];
        // One pass over x, in blocks of ROWS rows (re-read from L1): the running max
        // (NaN-propagating) and shift (the max, 0 where not finite), and the sum of
        // exp(x - shift), rescaled when the shift moves.
        let mut max_buf = [T::neg_infinity(); PAGE_COLUMNS];
        let max = &mut max_buf[..w];
        let mut shift_buf = [T::zero(); PAGE_COLUMNS];
        let shift = &mut shift_buf[..w];
        let mut sum_buf = [T::zero(); PAGE_COLUMNS];
        let sum = &mut sum_buf[..w];
        let mut next_buf = [T::zero(); PAGE_COLUMNS];
        let next = &mut next_buf[..w];
        let mut e_buf = [T::zero(); PAGE_COLUMNS];
        let e = &mut e_buf[..w];
        for k0 in (0..self.seg.n).step_by(ROWS) {
            let rows = k0..(k0 + ROWS).min(self.seg.n);
            for k in rows.clone() {
                zip_update!(s, T, max, self.x_row(k), |a, b| max_nan::<S, T>(s, a, b));
            }
            next.copy_from_slice(max);
            zip_update!(s, T, next, zeros, |m, _| {
                T::select(s, T::vlt(s, T::vabs(s, m), inf), m, zero)
            });
            // sum *= exp(shift - next), kept 0 while nothing has been added (the shift
            // may then fall a long way, past exp's range)
            zip_update!(s, T, shift, next, |old, new| math::exp::<S, T>(
                s,
                T::vsub(s, old, new)
            ));
            zip_update!(s, T, sum, shift, |a, r| T::select(
                s,
                T::veq(s, a, zero),
                zero,
                T::vmul(s, a, r)
            ));
            shift.copy_from_slice(next);
            for k in rows {
                e.copy_from_slice(self.x_row(k));
                zip_update!(s, T, e, shift, |x, m| math::exp::<S, T>(
                    s,
                    T::vsub(s, x, m)
                ));
                zip_update!(s, T, sum, e, |a, b| T::vadd(s, a, b));
            }
        }
        match self.op {
            SoftmaxOp::Softmax => {
                zip_update!(s, T, sum, zeros, |a, _| {
                    T::vdiv(s, T::splat(s, T::one()), a)
                });
                for k in 0..self.seg.n {
                    // SAFETY: this segment's columns, one row at a time.
                    let o = unsafe { self.out_row(k) };
                    o.copy_from_slice(self.x_row(k));
                    zip_update!(s, T, o, shift, |x, m| math::exp::<S, T>(
                        s,
                        T::vsub(s, x, m)
                    ));
                    zip_update!(s, T, o, sum, |x, inv| T::vmul(s, x, inv));
                }
            }
            SoftmaxOp::LogSoftmax => {
                zip_update!(s, T, sum, shift, |a, m| T::vadd(
                    s,
                    m,
                    math::ln::<S, T>(s, a)
                ));
                for k in 0..self.seg.n {
                    // SAFETY: as above.
                    let o = unsafe { self.out_row(k) };
                    o.copy_from_slice(self.x_row(k));
                    zip_update!(s, T, o, sum, |x, l| T::vsub(s, x, l));
                }
            }
            SoftmaxOp::LogSumExp => {
                // SAFETY: as above.
                let o = unsafe { self.out_row(0) };
                o.copy_from_slice(sum);
                zip_update!(s, T, o, shift, |a, m| T::vadd(s, m, math::ln::<S, T>(s, a)));
            }
        }
    }
}

/// Rows per block of [`SoftmaxColumns`]' pass over its input: read from memory for the
/// block's max, then again from L1 for the sum. On [4096, 1024] f32 along axis 0 (two
/// threads), against the three passes before: softmax 6.5 -> 5.6 ms, log_softmax 5.7 ->
/// 3.6, logsumexp 3.5 -> 2.0 (8 rows: 6.8, 3.8, 2.0).
const ROWS: usize = 16;

pub(crate) fn softmax_axis<T: MathFloat>(
    op: SoftmaxOp,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [T],
) {
    if outer * inner == 0 {
        return;
    }
    if n == 0 {
        // softmax of an empty axis is empty; logsumexp of one is ln(0) = -inf
        if op == SoftmaxOp::LogSumExp {
            out.fill(T::neg_infinity());
        }
        return;
    }
    if inner == 1 {
        let row_out = if op == SoftmaxOp::LogSumExp { 1 } else { n };
        let run = |rows: Range<usize>, out: &mut [T]| {
            dispatch(SoftmaxRows {
                op,
                x: &x[rows.start * n..rows.end * n],
                n,
                out,
            })
        };
        if !parallel(x.len() * 4) {
            return run(0..outer, out);
        }
        let per_task = outer
            .div_ceil(4 * rayon::current_num_threads())
            .max(PAR_THRESHOLD / 8 / n)
            .max(1);
        out.par_chunks_mut(per_task * row_out)
            .enumerate()
            .for_each(|(i, out)| run(i * per_task..i * per_task + out.len() / row_out, out));
        return;
    }
    let dst = SharedOut(out.as_mut_ptr());
    for_segments(x, outer, n, inner, 4, |seg| {
        dispatch(SoftmaxColumns { op, seg, out: dst })
    });
}
