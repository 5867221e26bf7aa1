//! The kernel bodies behind [`kernels`](super::kernels), generic over the concrete float
//! type (`T: MathFloat`) and, inside each `WithSimd` impl, over the instruction set.
//!
//! Work is split across rayon's threads when its size (elements times a per-op cost)
//! reaches [`PAR_THRESHOLD`]; each thread then runs one dispatched SIMD loop per chunk.

use std::ops::Range;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::kernels::{
    BinaryOp, CmpOp, PAR_THRESHOLD, ReduceOp, SoftmaxOp, UnaryOp, binary_scalar, unary_scalar,
};
use super::math::{self, MathFloat};
use super::simd::dispatch;
use crate::element::Float;

// ---------------------------------------------------------------------------------------
// Splitting work across threads

/// Whether `work` units (elements times cost) are worth splitting across threads.
fn parallel(work: usize) -> bool {
    work >= PAR_THRESHOLD && rayon::current_num_threads() > 1
}

/// A chunk length for splitting `len` items of `cost` each: about four chunks per
/// thread, none much below the parallel threshold, a multiple of 64.
fn chunk_len(len: usize, cost: usize) -> usize {
    let per_thread = len.div_ceil(4 * rayon::current_num_threads());
    let min = (PAR_THRESHOLD / 2 / cost.max(1)).max(64);
    per_thread.max(min).next_multiple_of(64)
}

/// Calls `f(range, out_chunk)` over chunks of `out`, in parallel when `out.len() * cost`
/// is large enough; `range` is the chunk's position in `out`.
fn for_chunks<O: Send>(out: &mut [O], cost: usize, f: impl Fn(Range<usize>, &mut [O]) + Sync) {
    let len = out.len();
    if !parallel(len.saturating_mul(cost)) {
        f(0..len, out);
        return;
    }
    let chunk = chunk_len(len, cost);
    out.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| {
        let start = i * chunk;
        f(start..start + o.len(), o)
    });
}

/// A raw output pointer shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct SharedOut<T>(*mut T);
// SAFETY: only used by tasks writing disjoint elements (see `for_segments`).
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// # Safety
    /// `start..start + len` is in bounds and no other live slice overlaps it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Width of the column blocks that axis kernels with `inner > 1` work on (their
/// per-column state lives in stack buffers of this length).
const BLOCK: usize = 256;

/// Calls `f(o, i0..i1)` for every segment of `BLOCK` columns of every `o` in an
/// `[outer, n, inner]` layout, in parallel when `outer * n * inner` is large enough.
/// Distinct segments touch distinct output elements.
fn for_segments(
    outer: usize,
    n: usize,
    inner: usize,
    cost: usize,
    f: impl Fn(usize, Range<usize>) + Sync,
) {
    let per_o = inner.div_ceil(BLOCK);
    let segments = outer * per_o;
    let run = |seg: usize| {
        let (o, b) = (seg / per_o, seg % per_o);
        f(o, b * BLOCK..((b + 1) * BLOCK).min(inner))
    };
    let work = outer
        .saturating_mul(n)
        .saturating_mul(inner)
        .saturating_mul(cost);
    if !parallel(work) {
        (0..segments).for_each(run);
        return;
    }
    let seg_work = (n * inner.min(BLOCK) * cost).max(1);
    let min_len = (PAR_THRESHOLD / 2 / seg_work).max(1);
    (0..segments)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each(run);
}

// ---------------------------------------------------------------------------------------
// Elementwise unary

/// A unary function with a vector body.
trait UnaryFn<T: MathFloat>: Copy + Send + Sync {
    /// Work per element relative to a copy (sets the parallel threshold).
    const COST: usize = 1;
    /// Whether some lanes (see `outside`) are recomputed with `scalar`.
    const FALLBACK: bool = false;
    fn vec<S: Simd>(self, s: S, x: T::V<S>) -> T::V<S>;
    #[inline(always)]
    fn outside<S: Simd>(self, s: S, x: T::V<S>) -> T::M<S> {
        T::vlt(s, x, x)
    }
    #[inline(always)]
    fn outside_scalar(self, _x: T) -> bool {
        false
    }
    #[inline(always)]
    fn scalar(self, x: T) -> T {
        x
    }
}

macro_rules! unary_fns {
    ($($name:ident, $cost:expr, |$s:ident, $x:ident| $body:expr;)*) => {$(
        #[derive(Clone, Copy)]
        struct $name;
        impl<T: MathFloat> UnaryFn<T> for $name {
            const COST: usize = $cost;
            #[inline(always)]
            fn vec<S: Simd>(self, $s: S, $x: T::V<S>) -> T::V<S> {
                $body
            }
        }
    )*};
}

unary_fns! {
    Neg, 1, |s, x| T::vneg(s, x);
    Abs, 1, |s, x| T::vabs(s, x);
    Sqrt, 1, |s, x| T::vsqrt(s, x);
    Recip, 1, |s, x| T::vdiv(s, T::splat(s, T::one()), x);
    Relu, 1, |s, x| {
        let keep = T::mask_or(s, T::vgt(s, x, T::splat(s, T::zero())), T::mask_not(s, T::veq(s, x, x)));
        T::select(s, keep, x, T::splat(s, T::zero()))
    };
    Sign, 1, |s, x| {
        let zero = T::splat(s, T::zero());
        let neg = T::select(s, T::vlt(s, x, zero), T::splat(s, -T::one()), x);
        T::select(s, T::vgt(s, x, zero), T::splat(s, T::one()), neg)
    };
    Exp, 4, |s, x| math::exp::<S, T>(s, x);
    Expm1, 4, |s, x| math::expm1::<S, T>(s, x);
    Ln, 4, |s, x| math::ln::<S, T>(s, x);
    Log1p, 5, |s, x| math::log1p::<S, T>(s, x);
    Tanh, 4, |s, x| math::tanh::<S, T>(s, x);
    Sigmoid, 4, |s, x| math::sigmoid::<S, T>(s, x);
}

macro_rules! trig_fns {
    ($($name:ident, $op:ident, $f:path;)*) => {$(
        #[derive(Clone, Copy)]
        struct $name;
        impl<T: MathFloat> UnaryFn<T> for $name {
            const COST: usize = 4;
            const FALLBACK: bool = true;
            #[inline(always)]
            fn vec<S: Simd>(self, s: S, x: T::V<S>) -> T::V<S> {
                $f(s, x)
            }
            #[inline(always)]
            fn outside<S: Simd>(self, s: S, x: T::V<S>) -> T::M<S> {
                math::trig_outside::<S, T>(s, x)
            }
            #[inline(always)]
            fn outside_scalar(self, x: T) -> bool {
                x.is_nan() || Float::to_f64(x.abs()) > T::TRIG_LIMIT
            }
            #[inline(always)]
            fn scalar(self, x: T) -> T {
                unary_scalar(UnaryOp::$op, x)
            }
        }
    )*};
}

trig_fns! {
    Sin, Sin, math::sin::<S, T>;
    Cos, Cos, math::cos::<S, T>;
    Tan, Tan, math::tan::<S, T>;
}

/// `x^n` by binary powering, the same sequence of roundings as `powi`'s runtime routine.
#[derive(Clone, Copy)]
struct Powi(i32);

impl<T: MathFloat> UnaryFn<T> for Powi {
    const COST: usize = 2;
    #[inline(always)]
    fn vec<S: Simd>(self, s: S, x: T::V<S>) -> T::V<S> {
        let mut b = self.0.unsigned_abs();
        let mut a = x;
        let mut r = T::splat(s, T::one());
        loop {
            if b & 1 == 1 {
                r = T::vmul(s, r, a);
            }
            b /= 2;
            if b == 0 {
                break;
            }
            a = T::vmul(s, a, a);
        }
        if self.0 < 0 {
            T::vdiv(s, T::splat(s, T::one()), r)
        } else {
            r
        }
    }
}

struct MapKernel<'a, T, F> {
    f: F,
    x: &'a [T],
    out: &'a mut [T],
}

impl<T: MathFloat, F: UnaryFn<T>> WithSimd for MapKernel<'_, T, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let Self { f, x, out } = self;
        let zero = T::splat(s, T::zero());
        let mut outside = T::vlt(s, zero, zero);
        {
            let (xv, xt) = T::as_simd::<S>(x);
            let (ov, ot) = T::as_mut_simd::<S>(out);
            for (o, &v) in ov.iter_mut().zip(xv) {
                *o = f.vec(s, v);
                if F::FALLBACK {
                    outside = T::mask_or(s, outside, f.outside(s, v));
                }
            }
            if !xt.is_empty() {
                let v = T::partial_load(s, xt);
                T::partial_store(s, ot, f.vec(s, v));
                if F::FALLBACK {
                    outside = T::mask_or(s, outside, f.outside(s, v));
                }
            }
        }
        if F::FALLBACK && T::any(s, outside) {
            for (o, &v) in out.iter_mut().zip(x) {
                if f.outside_scalar(v) {
                    *o = f.scalar(v);
                }
            }
        }
    }
}

fn map<T: MathFloat, F: UnaryFn<T>>(x: &[T], out: &mut [T], f: F) {
    for_chunks(out, F::COST, |r, out| {
        dispatch(MapKernel { f, x: &x[r], out })
    });
}

fn map_scalar<T: MathFloat>(x: &[T], out: &mut [T], cost: usize, f: impl Fn(T) -> T + Sync) {
    for_chunks(out, cost, |r, out| {
        for (o, &v) in out.iter_mut().zip(&x[r]) {
            *o = f(v);
        }
    });
}

pub(crate) fn unary<T: MathFloat>(op: UnaryOp, x: &[T], out: &mut [T]) {
    match op {
        UnaryOp::Neg => map(x, out, Neg),
        UnaryOp::Abs => map(x, out, Abs),
        UnaryOp::Exp => map(x, out, Exp),
        UnaryOp::Ln => map(x, out, Ln),
        UnaryOp::Log1p => map(x, out, Log1p),
        UnaryOp::Expm1 => map(x, out, Expm1),
        UnaryOp::Sin => map(x, out, Sin),
        UnaryOp::Cos => map(x, out, Cos),
        UnaryOp::Tan => map(x, out, Tan),
        UnaryOp::Tanh => map(x, out, Tanh),
        UnaryOp::Sqrt => map(x, out, Sqrt),
        UnaryOp::Recip => map(x, out, Recip),
        UnaryOp::Sigmoid => map(x, out, Sigmoid),
        UnaryOp::Relu => map(x, out, Relu),
        UnaryOp::Sign => map(x, out, Sign),
        UnaryOp::Powi(n) => map(x, out, Powi(n)),
        UnaryOp::Powf(p) => {
            let p = T::from_f64(p);
            map_scalar(x, out, 16, |v| v.powf(p))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Elementwise binary

/// One side of a binary op: a slice or a broadcast scalar.
pub(crate) trait Operand<T: MathFloat>: Copy + Send + Sync {
    fn range(self, r: Range<usize>) -> Self;
    /// The `i`-th whole vector.
    fn vector<S: Simd>(self, s: S, i: usize) -> T::V<S>;
    /// The elements from `from` on (fewer than a vector), zero-padded.
    fn rest<S: Simd>(self, s: S, from: usize) -> T::V<S>;
    fn at(self, i: usize) -> T;
}

impl<T: MathFloat> Operand<T> for &[T] {
    #[inline(always)]
    fn range(self, r: Range<usize>) -> Self {
        &self[r]
    }
    #[inline(always)]
    fn vector<S: Simd>(self, _s: S, i: usize) -> T::V<S> {
        T::as_simd::<S>(self).0[i]
    }
    #[inline(always)]
    fn rest<S: Simd>(self, s: S, from: usize) -> T::V<S> {
        T::partial_load(s, &self[from..])
    }
    #[inline(always)]
    fn at(self, i: usize) -> T {
        self[i]
    }
}

/// A scalar operand broadcast to every element.
#[derive(Clone, Copy)]
pub(crate) struct Splat<T>(pub T);

impl<T: MathFloat> Operand<T> for Splat<T> {
    #[inline(always)]
    fn range(self, _r: Range<usize>) -> Self {
        self
    }
    #[inline(always)]
    fn vector<S: Simd>(self, s: S, _i: usize) -> T::V<S> {
        T::splat(s, self.0)
    }
    #[inline(always)]
    fn rest<S: Simd>(self, s: S, _from: usize) -> T::V<S> {
        T::splat(s, self.0)
    }
    #[inline(always)]
    fn at(self, _i: usize) -> T {
        self.0
    }
}

trait BinaryFn<T: MathFloat>: Copy + Send + Sync {
    fn vec<S: Simd>(self, s: S, a: T::V<S>, b: T::V<S>) -> T::V<S>;
}

macro_rules! binary_fns {
    ($($name:ident, |$s:ident, $a:ident, $b:ident| $body:expr;)*) => {$(
        #[derive(Clone, Copy)]
        struct $name;
        impl<T: MathFloat> BinaryFn<T> for $name {
            #[inline(always)]
            fn vec<S: Simd>(self, $s: S, $a: T::V<S>, $b: T::V<S>) -> T::V<S> {
                $body
            }
        }
    )*};
}

binary_fns! {
    Add, |s, a, b| T::vadd(s, a, b);
    Sub, |s, a, b| T::vsub(s, a, b);
    Mul, |s, a, b| T::vmul(s, a, b);
    Div, |s, a, b| T::vdiv(s, a, b);
    Maximum, |s, a, b| max_nan::<S, T>(s, a, b);
    Minimum, |s, a, b| min_nan::<S, T>(s, a, b);
}

/// NaN-propagating maximum (`a > b ? a : b` otherwise).
#[inline(always)]
fn max_nan<S: Simd, T: MathFloat>(s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
    let ordered = T::mask_and(s, T::veq(s, a, a), T::veq(s, b, b));
    let m = T::select(s, T::vgt(s, a, b), a, b);
    T::select(s, ordered, m, T::vadd(s, a, b))
}

/// NaN-propagating minimum (`a < b ? a : b` otherwise).
#[inline(always)]
fn min_nan<S: Simd, T: MathFloat>(s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
    let ordered = T::mask_and(s, T::veq(s, a, a), T::veq(s, b, b));
    let m = T::select(s, T::vlt(s, a, b), a, b);
    T::select(s, ordered, m, T::vadd(s, a, b))
}

struct ZipKernel<'a, T, F, A, B> {
    f: F,
    a: A,
    b: B,
    out: &'a mut [T],
}

impl<T: MathFloat, F: BinaryFn<T>, A: Operand<T>, B: Operand<T>> WithSimd
    for ZipKernel<'_, T, F, A, B>
{
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let Self { f, a, b, out } = self;
        let (ov, ot) = T::as_mut_simd::<S>(out);
        let full = ov.len();
        for (i, o) in ov.iter_mut().enumerate() {
            *o = f.vec(s, a.vector(s, i), b.vector(s, i));
        }
        if !ot.is_empty() {
            let from = full * T::lanes::<S>();
            T::partial_store(s, ot, f.vec(s, a.rest(s, from), b.rest(s, from)));
        }
    }
}

fn zip<T: MathFloat, F: BinaryFn<T>>(f: F, a: impl Operand<T>, b: impl Operand<T>, out: &mut [T]) {
    for_chunks(out, 1, |r, out| {
        dispatch(ZipKernel {
            f,
            a: a.range(r.clone()),
            b: b.range(r),
            out,
        })
    });
}

pub(crate) fn binary<T: MathFloat, A: Operand<T>, B: Operand<T>>(
    op: BinaryOp,
    a: A,
    b: B,
    out: &mut [T],
) {
    match op {
        BinaryOp::Add => zip(Add, a, b, out),
        BinaryOp::Sub => zip(Sub, a, b, out),
        BinaryOp::Mul => zip(Mul, a, b, out),
        BinaryOp::Div => zip(Div, a, b, out),
        BinaryOp::Maximum => zip(Maximum, a, b, out),
        BinaryOp::Minimum => zip(Minimum, a, b, out),
        BinaryOp::Pow => for_chunks(out, 16, |r, out| {
            let (a, b) = (a.range(r.clone()), b.range(r));
            for (i, o) in out.iter_mut().enumerate() {
                *o = binary_scalar(BinaryOp::Pow, a.at(i), b.at(i));
            }
        }),
    }
}

pub(crate) fn compare<T: Float>(op: CmpOp, a: &[T], b: &[T], out: &mut [bool]) {
    fn run<T: Float>(a: &[T], b: &[T], out: &mut [bool], f: impl Fn(T, T) -> bool + Sync) {
        for_chunks(out, 1, |r, out| {
            for ((o, &x), &y) in out.iter_mut().zip(&a[r.clone()]).zip(&b[r]) {
                *o = f(x, y);
            }
        });
    }
    match op {
        CmpOp::Eq => run(a, b, out, |x, y| x == y),
        CmpOp::Ne => run(a, b, out, |x, y| x != y),
        CmpOp::Lt => run(a, b, out, |x, y| x < y),
        CmpOp::Le => run(a, b, out, |x, y| x <= y),
        CmpOp::Gt => run(a, b, out, |x, y| x > y),
        CmpOp::Ge => run(a, b, out, |x, y| x >= y),
    }
}

// ---------------------------------------------------------------------------------------
// Reductions

/// A reduction: its identity and how it combines vectors and scalars.
trait ReduceFn<T: MathFloat>: Copy + Send + Sync {
    const INIT: f64;
    /// Whether NaN must be tracked separately (the vector combine may drop it).
    const TRACK_NAN: bool;
    /// Combines two vectors (NaN handling may be the instruction set's).
    fn combine<S: Simd>(self, s: S, a: T::V<S>, b: T::V<S>) -> T::V<S>;
    /// Combines two vectors, propagating NaN.
    fn combine_nan<S: Simd>(self, s: S, a: T::V<S>, b: T::V<S>) -> T::V<S>;
    fn reduce_lanes<S: Simd>(self, s: S, a: T::V<S>) -> T;
    /// Combines partial results (in f64), propagating NaN.
    fn combine_scalar(self, a: f64, b: f64) -> f64;
}

#[derive(Clone, Copy)]
struct SumR;
#[derive(Clone, Copy)]
struct MaxR;
#[derive(Clone, Copy)]
struct MinR;

impl<T: MathFloat> ReduceFn<T> for SumR {
    const INIT: f64 = 0.0;
    const TRACK_NAN: bool = false;
    #[inline(always)]
    fn combine<S: Simd>(self, s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
        T::vadd(s, a, b)
    }
    #[inline(always)]
    fn combine_nan<S: Simd>(self, s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
        T::vadd(s, a, b)
    }
    #[inline(always)]
    fn reduce_lanes<S: Simd>(self, s: S, a: T::V<S>) -> T {
        T::reduce_sum(s, a)
    }
    #[inline(always)]
    fn combine_scalar(self, a: f64, b: f64) -> f64 {
        a + b
    }
}

impl<T: MathFloat> ReduceFn<T> for MaxR {
    const INIT: f64 = f64::NEG_INFINITY;
    const TRACK_NAN: bool = true;
    #[inline(always)]
    fn combine<S: Simd>(self, s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
        T::vmax_raw(s, a, b)
    }
    #[inline(always)]
    fn combine_nan<S: Simd>(self, s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
        max_nan::<S, T>(s, a, b)
    }
    #[inline(always)]
    fn reduce_lanes<S: Simd>(self, s: S, a: T::V<S>) -> T {
        T::reduce_max_raw(s, a)
    }
    #[inline(always)]
    fn combine_scalar(self, a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.max(b)
        }
    }
}

impl<T: MathFloat> ReduceFn<T> for MinR {
    const INIT: f64 = f64::INFINITY;
    const TRACK_NAN: bool = true;
    #[inline(always)]
    fn combine<S: Simd>(self, s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
        T::vmin_raw(s, a, b)
    }
    #[inline(always)]
    fn combine_nan<S: Simd>(self, s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
        min_nan::<S, T>(s, a, b)
    }
    #[inline(always)]
    fn reduce_lanes<S: Simd>(self, s: S, a: T::V<S>) -> T {
        T::reduce_min_raw(s, a)
    }
    #[inline(always)]
    fn combine_scalar(self, a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.min(b)
        }
    }
}

/// Vectors per block of a contiguous reduction; block results are combined in f64, so
/// a long f32 sum keeps its accuracy.
const REDUCE_BLOCK: usize = 128;

/// Reduces a contiguous run to an f64 partial result.
struct RowReduce<'a, T, R> {
    r: R,
    x: &'a [T],
}

impl<T: MathFloat, R: ReduceFn<T>> WithSimd for RowReduce<'_, T, R> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> f64 {
        let Self { r, x } = self;
        let (xv, xt) = T::as_simd::<S>(x);
        let init = T::splat(s, T::from_f64(R::INIT));
        let zero = T::splat(s, T::zero());
        let mut nan = T::vlt(s, zero, zero);
        let mut total = R::INIT;
        for block in xv.chunks(REDUCE_BLOCK) {
            let (mut a0, mut a1, mut a2, mut a3) = (init, init, init, init);
            let (quads, rest) = block.as_chunks::<4>();
            for q in quads {
                a0 = r.combine(s, a0, q[0]);
                a1 = r.combine(s, a1, q[1]);
                a2 = r.combine(s, a2, q[2]);
                a3 = r.combine(s, a3, q[3]);
                if R::TRACK_NAN {
                    let n01 = T::mask_or(
                        s,
                        T::mask_not(s, T::veq(s, q[0], q[0])),
                        T::mask_not(s, T::veq(s, q[1], q[1])),
                    );
                    let n23 = T::mask_or(
                        s,
                        T::mask_not(s, T::veq(s, q[2], q[2])),
                        T::mask_not(s, T::veq(s, q[3], q[3])),
                    );
                    nan = T::mask_or(s, nan, T::mask_or(s, n01, n23));
                }
            }
            for &v in rest {
                a0 = r.combine(s, a0, v);
                if R::TRACK_NAN {
                    nan = T::mask_or(s, nan, T::mask_not(s, T::veq(s, v, v)));
                }
            }
            let acc = r.combine(s, r.combine(s, a0, a1), r.combine(s, a2, a3));
            total = r.combine_scalar(total, Float::to_f64(r.reduce_lanes(s, acc)));
        }
        for &v in xt {
            total = r.combine_scalar(total, Float::to_f64(v));
        }
        if R::TRACK_NAN && T::any(s, nan) {
            f64::NAN
        } else {
            total
        }
    }
}

/// Reduces a contiguous run, splitting it across threads when long.
fn reduce_run<T: MathFloat, R: ReduceFn<T>>(r: R, x: &[T]) -> f64 {
    // reading is cheaper than reading and writing: count half an element each
    if !parallel(x.len() / 2) {
        return dispatch(RowReduce { r, x });
    }
    x.par_chunks(chunk_len(x.len(), 1))
        .map(|x| dispatch(RowReduce { r, x }))
        .reduce(|| R::INIT, |a, b| r.combine_scalar(a, b))
}

/// `out[o, i] = reduce_k x[o, k, i]` for a segment of columns, SIMD across columns.
struct ColumnReduce<'a, T, R> {
    r: R,
    x: &'a [T],
    n: usize,
    inner: usize,
    o: usize,
    cols: Range<usize>,
    out: &'a mut [T],
}

impl<T: MathFloat, R: ReduceFn<T>> WithSimd for ColumnReduce<'_, T, R> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let Self {
            r,
            x,
            n,
            inner,
            o,
            cols,
            out,
        } = self;
        let row = |k: usize| &x[(o * n + k) * inner + cols.start..(o * n + k) * inner + cols.end];
        out.copy_from_slice(row(0));
        for k in 1..n {
            let xk = row(k);
            let (ov, ot) = T::as_mut_simd::<S>(out);
            let (xv, xt) = T::as_simd::<S>(xk);
            for (a, &v) in ov.iter_mut().zip(xv) {
                *a = r.combine_nan(s, *a, v);
            }
            if !ot.is_empty() {
                let v = r.combine_nan(s, T::partial_load(s, ot), T::partial_load(s, xt));
                T::partial_store(s, ot, v);
            }
        }
    }
}

fn reduce_with<T: MathFloat, R: ReduceFn<T>>(
    r: R,
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
        out.fill(T::from_f64(R::INIT));
    } else if inner == 1 && outer < 4 {
        for (o, v) in out.iter_mut().enumerate() {
            *v = T::from_f64(reduce_run(r, &x[o * n..(o + 1) * n]));
        }
    } else if inner == 1 {
        for_chunks(out, n, |rows, out| {
            for (v, row) in out.iter_mut().zip(rows) {
                *v = T::from_f64(dispatch(RowReduce {
                    r,
                    x: &x[row * n..(row + 1) * n],
                }));
            }
        });
    } else {
        let dst = SharedOut(out.as_mut_ptr());
        for_segments(outer, n, inner, 1, |o, cols| {
            // SAFETY: segments cover disjoint columns of out[o, ..].
            let out = unsafe { dst.slice(o * inner + cols.start, cols.len()) };
            dispatch(ColumnReduce {
                r,
                x,
                n,
                inner,
                o,
                cols,
                out,
            })
        });
    }
}

pub(crate) fn reduce_axis<T: MathFloat>(
    op: ReduceOp,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [T],
) {
    match op {
        ReduceOp::Sum => reduce_with(SumR, x, outer, n, inner, out),
        ReduceOp::Max => reduce_with(MaxR, x, outer, n, inner, out),
        ReduceOp::Min => reduce_with(MinR, x, outer, n, inner, out),
    }
}

// ---------------------------------------------------------------------------------------
// Argmax

/// Index of the first maximum of a row (the first NaN if any).
fn argmax_row<T: MathFloat>(x: &[T]) -> i32 {
    let m = dispatch(RowReduce { r: MaxR, x });
    let at = if m.is_nan() {
        x.iter().position(|v| v.is_nan())
    } else {
        x.iter().position(|&v| Float::to_f64(v) == m)
    };
    at.unwrap_or(0) as i32
}

pub(crate) fn argmax_axis<T: MathFloat>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [i32],
) {
    if n == 0 || outer * inner == 0 {
        return;
    }
    if inner == 1 {
        for_chunks(out, n, |rows, out| {
            for (v, row) in out.iter_mut().zip(rows) {
                *v = argmax_row(&x[row * n..(row + 1) * n]);
            }
        });
        return;
    }
    let dst = SharedOut(out.as_mut_ptr());
    for_segments(outer, n, inner, 1, |o, cols| {
        // SAFETY: segments cover disjoint columns of out[o, ..].
        let out = unsafe { dst.slice(o * inner + cols.start, cols.len()) };
        let mut best = [T::zero(); BLOCK];
        let best = &mut best[..cols.len()];
        let row = |k: usize| &x[(o * n + k) * inner + cols.start..(o * n + k) * inner + cols.end];
        best.copy_from_slice(row(0));
        out.fill(0);
        for k in 1..n {
            for ((b, i), &v) in best.iter_mut().zip(out.iter_mut()).zip(row(k)) {
                if !b.is_nan() && (v > *b || v.is_nan()) {
                    *b = v;
                    *i = k as i32;
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// Softmax family

/// The shift `softmax` subtracts: the maximum, or 0 where that is not finite (all -inf,
/// +inf or NaN rows), so that such rows give the IEEE result of the formula.
#[inline(always)]
fn softmax_shift(m: f64) -> f64 {
    if m.is_finite() { m } else { 0.0 }
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
        // sums of exps run in blocks combined in f64, so long rows stay accurate
        let exp_sum = |xv: &[T::V<S>], shift: T::V<S>| -> f64 {
            let mut total = 0.0;
            for block in xv.chunks(REDUCE_BLOCK) {
                let mut acc = T::splat(s, T::zero());
                for &v in block {
                    acc = T::vadd(s, acc, math::exp::<S, T>(s, T::vsub(s, v, shift)));
                }
                total += Float::to_f64(T::reduce_sum(s, acc));
            }
            total
        };
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
                    let l = T::splat(s, T::from_f64((exp_sum(xv, shift_v) + tail_sum).ln()));
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
                    out[r] = shift + T::from_f64((exp_sum(xv, shift_v) + tail_sum).ln());
                }
            }
        }
    }
}

/// Softmax-family ops over a segment of columns (`inner > 1`), SIMD across columns;
/// `out` points at the whole output.
struct SoftmaxColumns<'a, T> {
    op: SoftmaxOp,
    x: &'a [T],
    n: usize,
    inner: usize,
    o: usize,
    cols: Range<usize>,
    out: SharedOut<T>,
}

impl<T: MathFloat> SoftmaxColumns<'_, T> {
    fn x_row(&self, k: usize) -> &[T] {
        let at = (self.o * self.n + k) * self.inner;
        &self.x[at + self.cols.start..at + self.cols.end]
    }

    /// # Safety
    /// Only this segment writes these columns, and one row is borrowed at a time.
    #[allow(clippy::mut_from_ref)]
    unsafe fn out_row(&self, k: usize) -> &mut [T] {
        let at = match self.op {
            SoftmaxOp::LogSumExp => self.o * self.inner,
            SoftmaxOp::Softmax | SoftmaxOp::LogSoftmax => (self.o * self.n + k) * self.inner,
        };
        // SAFETY: the caller's contract; the kernel checked the output length.
        unsafe { self.out.slice(at + self.cols.start, self.cols.len()) }
    }
}

/// Applies `f` to the vectors of `a` and the matching vectors of `b` (tail zero-padded).
#[inline(always)]
fn zip_update<S: Simd, T: MathFloat>(
    s: S,
    a: &mut [T],
    b: &[T],
    f: impl Fn(T::V<S>, T::V<S>) -> T::V<S>,
) {
    let (av, at) = T::as_mut_simd::<S>(a);
    let (bv, bt) = T::as_simd::<S>(b);
    for (a, &b) in av.iter_mut().zip(bv) {
        *a = f(*a, b);
    }
    if !at.is_empty() {
        let v = f(T::partial_load(s, at), T::partial_load(s, bt));
        T::partial_store(s, at, v);
    }
}

impl<T: MathFloat> WithSimd for SoftmaxColumns<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let w = self.cols.len();
        let inf = T::splat(s, T::infinity());
        let zero = T::splat(s, T::zero());
        // shift = max over k (NaN-propagating), replaced by 0 where not finite
        let mut shift_buf = [T::zero(); BLOCK];
        let shift = &mut shift_buf[..w];
        shift.copy_from_slice(self.x_row(0));
        for k in 1..self.n {
            zip_update(s, shift, self.x_row(k), |a, b| max_nan::<S, T>(s, a, b));
        }
        zip_update(s, shift, &[T::zero(); BLOCK][..w], |m, _| {
            T::select(s, T::vlt(s, T::vabs(s, m), inf), m, zero)
        });
        // sum of exp(x - shift), stored as we go for softmax
        let mut sum_buf = [T::zero(); BLOCK];
        let sum = &mut sum_buf[..w];
        let mut e_buf = [T::zero(); BLOCK];
        let e = &mut e_buf[..w];
        for k in 0..self.n {
            e.copy_from_slice(self.x_row(k));
            zip_update(s, e, shift, |x, m| math::exp::<S, T>(s, T::vsub(s, x, m)));
            zip_update(s, sum, e, |a, b| T::vadd(s, a, b));
            if self.op == SoftmaxOp::Softmax {
                // SAFETY: this segment's columns, one row at a time.
                unsafe { self.out_row(k) }.copy_from_slice(e);
            }
        }
        match self.op {
            SoftmaxOp::Softmax => {
                zip_update(s, sum, &[T::zero(); BLOCK][..w], |a, _| {
                    T::vdiv(s, T::splat(s, T::one()), a)
                });
                for k in 0..self.n {
                    // SAFETY: as above.
                    zip_update(s, unsafe { self.out_row(k) }, sum, |e, inv| {
                        T::vmul(s, e, inv)
                    });
                }
            }
            SoftmaxOp::LogSoftmax => {
                zip_update(s, sum, shift, |a, m| T::vadd(s, m, math::ln::<S, T>(s, a)));
                for k in 0..self.n {
                    // SAFETY: as above.
                    let o = unsafe { self.out_row(k) };
                    o.copy_from_slice(self.x_row(k));
                    zip_update(s, o, sum, |x, l| T::vsub(s, x, l));
                }
            }
            SoftmaxOp::LogSumExp => {
                // SAFETY: as above.
                let o = unsafe { self.out_row(0) };
                o.copy_from_slice(sum);
                zip_update(s, o, shift, |a, m| T::vadd(s, m, math::ln::<S, T>(s, a)));
            }
        }
    }
}

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
    for_segments(outer, n, inner, 4, |o, cols| {
        dispatch(SoftmaxColumns {
            op,
            x,
            n,
            inner,
            o,
            cols,
            out: dst,
        })
    });
}
