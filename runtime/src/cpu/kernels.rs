//! CPU kernels over contiguous slices, generic over [`Float`].
//!
//! This is the interface between the tensor layer and the CPU backend. Every function
//! takes contiguous inputs and writes a contiguous output of the stated length; callers
//! check shapes. Bodies are SIMD (pulp, run-time dispatch to AVX-512, AVX2+FMA, NEON or
//! scalar) with rayon above [`PAR_THRESHOLD`] elements; `matmul` goes to the `gemm`
//! crate.
//!
//! ```
//! use ferrax_runtime::cpu::kernels::{self, UnaryOp, ReduceOp};
//!
//! let x = [0.0f32, 1.0, 2.0];
//! let mut y = [0.0f32; 3];
//! kernels::unary(UnaryOp::Exp, &x, &mut y);
//! assert!((y[1] - std::f32::consts::E).abs() < 1e-6);
//! assert_eq!(kernels::reduce_all(ReduceOp::Sum, &x), 3.0);
//! ```

use std::any::TypeId;

use crate::element::Float;

use super::{elementwise, reduce, softmax};

/// Element count above which kernels split work across rayon's threads.
///
/// Waking a second thread costs 5 to 20 microseconds (the most on virtual machines), so
/// a cheap op (negation, add: a few elements per nanosecond) is split from about 250K
/// elements. Expensive functions (exp, sin, ...) count as several elements each and
/// split at a fraction of this length; reductions (read-only) at twice it.
pub const PAR_THRESHOLD: usize = 1 << 18;

/// Elementwise unary operations on floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Ln,
    /// `ln(1 + x)`.
    Log1p,
    /// `e^x - 1`.
    Expm1,
    /// Sine.
    Sin,
    /// Cosine.
    Cos,
    /// Tangent.
    Tan,
    /// Hyperbolic tangent.
    Tanh,
    /// Square root.
    Sqrt,
    /// `1 / x`.
    Recip,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `max(x, 0)` (NaN stays NaN).
    Relu,
    /// -1, 0 or 1 (NaN stays NaN).
    Sign,
    /// `x^n` by repeated multiplication.
    Powi(i32),
    /// `x^p`.
    Powf(f64),
    /// Arc sine (NaN outside [-1, 1]).
    Asin,
    /// Arc cosine (NaN outside [-1, 1]).
    Acos,
    /// Arc tangent.
    Atan,
    /// Hyperbolic sine.
    Sinh,
    /// Hyperbolic cosine.
    Cosh,
    /// Inverse hyperbolic sine.
    Asinh,
    /// Inverse hyperbolic cosine (NaN below 1).
    Acosh,
    /// Inverse hyperbolic tangent (±inf at ±1, NaN beyond).
    Atanh,
    /// `2^x`.
    Exp2,
    /// Base-2 logarithm.
    Log2,
    /// Base-10 logarithm.
    Log10,
    /// Cube root.
    Cbrt,
    /// Largest integer not above `x`.
    Floor,
    /// Smallest integer not below `x`.
    Ceil,
    /// Nearest integer, halves away from zero (as `f64::round`).
    Round,
    /// Integer part (rounded toward zero).
    Trunc,
    /// The error function `2/sqrt(pi) * integral of e^(-t^2) from 0 to x`.
    Erf,
}

/// Elementwise binary operations on floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a^b`.
    Pow,
    /// NaN-propagating maximum.
    Maximum,
    /// NaN-propagating minimum.
    Minimum,
    /// `atan2(a, b)`: the angle of the point `(b, a)` in `[-pi, pi]`, as `f64::atan2`.
    Atan2,
}

/// Comparisons returning masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `a == b`.
    Eq,
    /// `a != b`.
    Ne,
    /// `a < b`.
    Lt,
    /// `a <= b`.
    Le,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    Ge,
}

/// Reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum (0 for empty).
    Sum,
    /// NaN-propagating maximum (-inf for empty).
    Max,
    /// NaN-propagating minimum (+inf for empty).
    Min,
}

/// Softmax-family kernels along the middle axis of `[outer, n, inner]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxOp {
    /// `exp(x - max) / sum(exp(x - max))`; output has the input's length.
    Softmax,
    /// `x - max - ln(sum(exp(x - max)))`; output has the input's length.
    LogSoftmax,
    /// `max + ln(sum(exp(x - max)))`; output has length `outer * inner`.
    LogSumExp,
}

/// A strided matrix view for [`matmul`]: element `(r, c)` is at `data[offset + r * rs + c * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    /// The backing slice.
    pub data: &'a [T],
    /// Offset of element (0, 0) in `data`.
    pub offset: usize,
    /// Row stride, in elements.
    pub rs: isize,
    /// Column stride, in elements.
    pub cs: isize,
}

impl<T> MatRef<'_, T> {
    /// The transpose: the same elements with the strides swapped.
    pub fn t(self) -> Self {
        MatRef {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// Runs `$body` with `$F` the concrete float type (`f32` or `f64`) behind `$T`.
macro_rules! with_float {
    ($T:ty, $F:ident => $body:expr) => {
        if TypeId::of::<$T>() == TypeId::of::<f32>() {
            type $F = f32;
            $body
        } else {
            type $F = f64;
            $body
        }
    };
}

/// `x` as a slice of `U`, which is `T` (checked).
#[inline(always)]
fn same<T: 'static, U: 'static>(x: &[T]) -> &[U] {
    assert_eq!(TypeId::of::<T>(), TypeId::of::<U>());
    // SAFETY: T and U are the same type.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
}

/// `x` as a mutable slice of `U`, which is `T` (checked).
#[inline(always)]
fn same_mut<T: 'static, U: 'static>(x: &mut [T]) -> &mut [U] {
    assert_eq!(TypeId::of::<T>(), TypeId::of::<U>());
    // SAFETY: T and U are the same type.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) }
}

/// A value of `T` as `U`, which is `T` (checked).
#[inline(always)]
fn same_val<T: Copy + 'static, U: Copy + 'static>(x: T) -> U {
    same::<T, U>(std::slice::from_ref(&x))[0]
}

/// The scalar definition of a unary op: the reference the kernels are tested against,
/// and the path for lanes the vector code does not handle.
#[inline]
pub(crate) fn unary_scalar<T: Float>(op: UnaryOp, x: T) -> T {
    let zero = T::zero();
    let one = T::one();
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Ln => x.ln(),
        UnaryOp::Log1p => x.ln_1p(),
        UnaryOp::Expm1 => x.exp_m1(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tan => x.tan(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Recip => one / x,
        // the stable form: no overflow of e^-x for very negative x
        UnaryOp::Sigmoid => {
            if x >= zero {
                one / (one + (-x).exp())
            } else {
                x.exp() / (one + x.exp())
            }
        }
        UnaryOp::Softplus => x.max(zero) + (-x.abs()).exp().ln_1p(),
        UnaryOp::Relu => {
            if x > zero || x.is_nan() {
                x
            } else {
                zero
            }
        }
        UnaryOp::Sign => {
            if x > zero {
                one
            } else if x < zero {
                -one
            } else {
                x // keeps 0, -0 and NaN
            }
        }
        UnaryOp::Powi(n) => x.powi(n),
        UnaryOp::Powf(p) => x.powf(T::from_f64(p)),
        UnaryOp::Asin => x.asin(),
        UnaryOp::Acos => x.acos(),
        UnaryOp::Atan => x.atan(),
        UnaryOp::Sinh => x.sinh(),
        UnaryOp::Cosh => x.cosh(),
        // std's inverse hyperbolic functions are formulas that lose digits (acosh near 1
        // most); libm's (musl's) are accurate, and for f32 exact in f64 before rounding
        UnaryOp::Asinh => T::from_f64(libm::asinh(x.to_f64())),
        // (libm's acosh of x <= -2 is not NaN)
        UnaryOp::Acosh if x < one => T::nan(),
        UnaryOp::Acosh => T::from_f64(libm::acosh(x.to_f64())),
        UnaryOp::Atanh => T::from_f64(libm::atanh(x.to_f64())),
        UnaryOp::Exp2 => x.exp2(),
        UnaryOp::Log2 => x.log2(),
        UnaryOp::Log10 => x.log10(),
        UnaryOp::Cbrt => x.cbrt(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round(),
        UnaryOp::Trunc => x.trunc(),
        // std has no erf: fdlibm's (through libm), in f64 for both types
        UnaryOp::Erf => T::from_f64(libm::erf(x.to_f64())),
    }
}

/// The scalar definition of a binary op.
#[inline]
pub(crate) fn binary_scalar<T: Float>(op: BinaryOp, a: T, b: T) -> T {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Maximum => {
            if a.is_nan() || b.is_nan() {
                T::nan()
            } else if a > b {
                a
            } else {
                b
            }
        }
        BinaryOp::Minimum => {
            if a.is_nan() || b.is_nan() {
                T::nan()
            } else if a < b {
                a
            } else {
                b
            }
        }
        BinaryOp::Atan2 => a.atan2(b),
    }
}

/// `out[i] = op(x[i])`. Lengths are equal.
pub fn unary<T: Float>(op: UnaryOp, x: &[T], out: &mut [T]) {
    assert_eq!(
        x.len(),
        out.len(),
        "unary {op:?}: input and output lengths differ"
    );
    with_float!(T, F => elementwise::unary::<F>(op, same(x), same_mut(out)))
}

/// `out[i] = op(a[i], b[i])`. Lengths are equal.
pub fn binary<T: Float>(op: BinaryOp, a: &[T], b: &[T], out: &mut [T]) {
    same_lengths("binary", op, a.len(), b.len(), out.len());
    with_float!(T, F => elementwise::binary::<F, _, _>(op, same::<T, F>(a), same::<T, F>(b), same_mut(out)))
}

/// `out[i] = op(a[i], b)`.
pub fn binary_scalar_rhs<T: Float>(op: BinaryOp, a: &[T], b: T, out: &mut [T]) {
    assert_eq!(
        a.len(),
        out.len(),
        "binary {op:?}: input and output lengths differ"
    );
    with_float!(T, F => elementwise::binary::<F, _, _>(op, same::<T, F>(a), elementwise::Splat(same_val::<T, F>(b)), same_mut(out)))
}

/// `out[i] = op(a, b[i])`.
pub fn binary_scalar_lhs<T: Float>(op: BinaryOp, a: T, b: &[T], out: &mut [T]) {
    assert_eq!(
        b.len(),
        out.len(),
        "binary {op:?}: input and output lengths differ"
    );
    with_float!(T, F => elementwise::binary::<F, _, _>(op, elementwise::Splat(same_val::<T, F>(a)), same::<T, F>(b), same_mut(out)))
}

/// `out[i] = op(a[i], b[i])` as a mask.
pub fn compare<T: Float>(op: CmpOp, a: &[T], b: &[T], out: &mut [bool]) {
    same_lengths("compare", op, a.len(), b.len(), out.len());
    elementwise::compare(op, a, b, out, [true, false])
}

/// `out[i] = 1` where `op(a[i], b[i])` holds, else `0`: a mask in the operands' dtype.
/// Lengths are equal.
pub fn compare_mask<T: Float>(op: CmpOp, a: &[T], b: &[T], out: &mut [T]) {
    same_lengths("compare", op, a.len(), b.len(), out.len());
    elementwise::compare(op, a, b, out, [T::one(), T::zero()])
}

/// Panics unless both operands of a binary kernel have the output's length.
#[track_caller]
fn same_lengths(kind: &str, op: impl std::fmt::Debug, a: usize, b: usize, out: usize) {
    assert!(
        a == out && b == out,
        "{kind} {op:?}: lengths {a}, {b} and output {out} differ"
    );
}

/// Reduces all of `x`. Sum of empty is 0; max of empty is -inf, min of empty is +inf.
pub fn reduce_all<T: Float>(op: ReduceOp, x: &[T]) -> T {
    let mut out = [T::zero()];
    reduce_axis(op, x, 1, x.len(), 1, &mut out);
    out[0]
}

/// Checks the buffers of a kernel over the middle axis of `[outer, n, inner]`.
fn check_axis_layout(
    what: std::fmt::Arguments<'_>,
    x_len: usize,
    out_len: usize,
    [outer, n, inner]: [usize; 3],
    want_out: usize,
) {
    assert_eq!(
        x_len,
        outer * n * inner,
        "{what}: input length is not outer * n * inner"
    );
    assert_eq!(out_len, want_out, "{what}: wrong output length");
}

/// Reduces the middle axis of `x` viewed as `[outer, n, inner]` (row-major) into
/// `out` of length `outer * inner`.
pub fn reduce_axis<T: Float>(
    op: ReduceOp,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [T],
) {
    check_axis_layout(
        format_args!("reduce {op:?}"),
        x.len(),
        out.len(),
        [outer, n, inner],
        outer * inner,
    );
    with_float!(T, F => reduce::reduce_axis::<F>(op, same(x), outer, n, inner, same_mut(out)))
}

/// Index of the first maximum along the middle axis of `[outer, n, inner]` (a NaN counts
/// as the maximum, as in NumPy). `n` must be at least 1.
pub fn argmax_axis<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [i32]) {
    assert!(n >= 1 || outer * inner == 0, "argmax of an empty axis");
    check_axis_layout(
        format_args!("argmax"),
        x.len(),
        out.len(),
        [outer, n, inner],
        outer * inner,
    );
    with_float!(T, F => reduce::argmax_axis::<F>(same(x), outer, n, inner, out))
}

/// For the segments `lo..lo + out.len() / inner`: per column, the first row of `x` (rows
/// of `inner` values, one per id) whose id names the segment and holds its largest value
/// (smallest unless `largest`; a NaN before any number), `ids.len()` (one past the last
/// row) for a segment no id names.
/// Ids outside the range are skipped (threads share the ids, each with its segments).
pub(crate) fn segment_arg<T: Float>(
    x: &[T],
    ids: &[i32],
    lo: usize,
    inner: usize,
    largest: bool,
    out: &mut [i32],
) {
    assert_eq!(
        x.len(),
        ids.len() * inner,
        "segment_arg: one row of x per id"
    );
    with_float!(T, F => reduce::segment_arg::<F>(same(x), ids, lo, inner, largest, out))
}

/// Numerically stable softmax, log-softmax or logsumexp along the middle axis.
pub fn softmax_axis<T: Float>(
    op: SoftmaxOp,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [T],
) {
    let out_len = match op {
        SoftmaxOp::LogSumExp => outer * inner,
        SoftmaxOp::Softmax | SoftmaxOp::LogSoftmax => outer * n * inner,
    };
    check_axis_layout(
        format_args!("{op:?}"),
        x.len(),
        out.len(),
        [outer, n, inner],
        out_len,
    );
    with_float!(T, F => softmax::softmax_axis::<F>(op, same(x), outer, n, inner, same_mut(out)))
}

/// `c += a @ b` with `a: [m, k]`, `b: [k, n]` (any strides), `c` row-major `[m, n]`.
///
/// # Panics
///
/// If `c.len() != m * n` or a view reaches outside its `data`.
pub fn matmul_acc<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
) {
    assert_eq!(c.len(), m * n, "matmul_acc: output length is not m * n");
    with_float!(T, F => super::gemm::matmul_acc::<F>(m, n, k, mat_same(a), mat_same(b), same_mut(c)))
}

/// `c = a @ b` with `a: [m, k]`, `b: [k, n]` (any strides), `c` row-major `[m, n]`
/// (overwritten), on rayon's threads where the product is large enough.
///
/// # Panics
///
/// If `c.len() != m * n` or a view reaches outside its `data`.
pub fn matmul<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
) {
    matmul_on(rayon::current_num_threads(), [m, n, k], a, b, c)
}

/// [`matmul`] of `[m, n, k]` on at most `threads` threads: 1 for callers that run several
/// products in parallel, one a task.
///
/// # Panics
///
/// As [`matmul`].
pub fn matmul_on<T: Float>(
    threads: usize,
    [m, n, k]: [usize; 3],
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
) {
    assert_eq!(c.len(), m * n, "matmul: output length is not m * n");
    with_float!(T, F => super::gemm::matmul::<F>(m, n, k, mat_same(a), mat_same(b), same_mut(c), threads))
}

#[inline(always)]
fn mat_same<'a, T: 'static, U: 'static>(a: MatRef<'a, T>) -> MatRef<'a, U> {
    MatRef {
        data: same(a.data),
        offset: a.offset,
        rs: a.rs,
        cs: a.cs,
    }
}
