//! CPU kernels over contiguous slices, generic over [`Float`].
//!
//! This is the interface between the tensor layer and the CPU backend. Every function
//! takes contiguous inputs and writes a contiguous output of the stated length; callers
//! check shapes. Bodies are SIMD (pulp, run-time dispatch) with rayon above
//! [`PAR_THRESHOLD`] elements.

use crate::element::Float;

/// Element count above which kernels split work across rayon's threads.
pub const PAR_THRESHOLD: usize = 1 << 16;

/// Elementwise unary operations on floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Ln,
    Log1p,
    Expm1,
    Sin,
    Cos,
    Tan,
    Tanh,
    Sqrt,
    Recip,
    Sigmoid,
    Relu,
    /// -1, 0 or 1 (NaN stays NaN).
    Sign,
    Powi(i32),
    Powf(f64),
}

/// Elementwise binary operations on floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// NaN-propagating maximum.
    Maximum,
    /// NaN-propagating minimum.
    Minimum,
}

/// Comparisons returning masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// NaN-propagating.
    Max,
    /// NaN-propagating.
    Min,
}

#[inline]
fn unary_scalar<T: Float>(op: UnaryOp, x: T) -> T {
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
        UnaryOp::Sigmoid => one / (one + (-x).exp()),
        UnaryOp::Relu => {
            if x > zero {
                x
            } else if x.is_nan() {
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
    }
}

#[inline]
fn binary_scalar<T: Float>(op: BinaryOp, a: T, b: T) -> T {
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
    }
}

/// `out[i] = op(x[i])`. Lengths are equal.
pub fn unary<T: Float>(op: UnaryOp, x: &[T], out: &mut [T]) {
    debug_assert_eq!(x.len(), out.len());
    for (o, &v) in out.iter_mut().zip(x) {
        *o = unary_scalar(op, v);
    }
}

/// `out[i] = op(a[i], b[i])`. Lengths are equal.
pub fn binary<T: Float>(op: BinaryOp, a: &[T], b: &[T], out: &mut [T]) {
    debug_assert_eq!(a.len(), out.len());
    debug_assert_eq!(b.len(), out.len());
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = binary_scalar(op, x, y);
    }
}

/// `out[i] = op(a[i], b)`.
pub fn binary_scalar_rhs<T: Float>(op: BinaryOp, a: &[T], b: T, out: &mut [T]) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = binary_scalar(op, x, b);
    }
}

/// `out[i] = op(a, b[i])`.
pub fn binary_scalar_lhs<T: Float>(op: BinaryOp, a: T, b: &[T], out: &mut [T]) {
    for (o, &y) in out.iter_mut().zip(b) {
        *o = binary_scalar(op, a, y);
    }
}

/// `out[i] = op(a[i], b[i])` as a mask.
pub fn compare<T: Float>(op: CmpOp, a: &[T], b: &[T], out: &mut [bool]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = match op {
            CmpOp::Eq => x == y,
            CmpOp::Ne => x != y,
            CmpOp::Lt => x < y,
            CmpOp::Le => x <= y,
            CmpOp::Gt => x > y,
            CmpOp::Ge => x >= y,
        };
    }
}

/// Reduces all of `x`. Sum of empty is 0; max of empty is -inf, min of empty is +inf.
pub fn reduce_all<T: Float>(op: ReduceOp, x: &[T]) -> T {
    let mut out = [T::zero()];
    reduce_axis(op, x, 1, x.len(), 1, &mut out);
    out[0]
}

/// Reduces the middle axis of `x` viewed as `[outer, n, inner]` (row-major) into
/// `out` of length `outer * inner`.
pub fn reduce_axis<T: Float>(op: ReduceOp, x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) {
    debug_assert_eq!(x.len(), outer * n * inner);
    debug_assert_eq!(out.len(), outer * inner);
    let init = match op {
        ReduceOp::Sum => T::zero(),
        ReduceOp::Max => T::neg_infinity(),
        ReduceOp::Min => T::infinity(),
    };
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = init;
            for k in 0..n {
                let v = x[(o * n + k) * inner + i];
                acc = match op {
                    ReduceOp::Sum => acc + v,
                    ReduceOp::Max => binary_scalar(BinaryOp::Maximum, acc, v),
                    ReduceOp::Min => binary_scalar(BinaryOp::Minimum, acc, v),
                };
            }
            out[o * inner + i] = acc;
        }
    }
}

/// Index of the first maximum along the middle axis of `[outer, n, inner]` (a NaN counts
/// as the maximum, as in NumPy). `n` must be at least 1.
pub fn argmax_axis<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [i32]) {
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0usize;
            let mut bv = x[o * n * inner + i];
            for k in 1..n {
                let v = x[(o * n + k) * inner + i];
                if bv.is_nan() {
                    break;
                }
                if v > bv || v.is_nan() {
                    best = k;
                    bv = v;
                }
            }
            out[o * inner + i] = best as i32;
        }
    }
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

/// Numerically stable softmax, log-softmax or logsumexp along the middle axis.
pub fn softmax_axis<T: Float>(op: SoftmaxOp, x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) {
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * n + k) * inner + i;
            let mut m = T::neg_infinity();
            for k in 0..n {
                m = binary_scalar(BinaryOp::Maximum, m, x[at(k)]);
            }
            // all -inf row: use 0 as the shift so the result is well defined (as JAX)
            let shift = if m.is_finite() { m } else { T::zero() };
            let mut s = T::zero();
            for k in 0..n {
                s = s + (x[at(k)] - shift).exp();
            }
            match op {
                SoftmaxOp::Softmax => {
                    for k in 0..n {
                        out[at(k)] = (x[at(k)] - shift).exp() / s;
                    }
                }
                SoftmaxOp::LogSoftmax => {
                    let l = s.ln();
                    for k in 0..n {
                        out[at(k)] = x[at(k)] - shift - l;
                    }
                }
                SoftmaxOp::LogSumExp => out[o * inner + i] = shift + s.ln(),
            }
        }
    }
}

/// A strided matrix view for [`matmul`]: element `(r, c)` is at `ptr[r * rs + c * cs]`.
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

/// `c = a @ b` with `a: [m, k]`, `b: [k, n]` (any strides), `c` row-major `[m, n]`
/// (overwritten).
pub fn matmul<T: Float>(m: usize, n: usize, k: usize, a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T]) {
    debug_assert_eq!(c.len(), m * n);
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::zero();
            for p in 0..k {
                let ai = (a.offset as isize + i as isize * a.rs + p as isize * a.cs) as usize;
                let bi = (b.offset as isize + p as isize * b.rs + j as isize * b.cs) as usize;
                acc = acc + a.data[ai] * b.data[bi];
            }
            c[i * n + j] = acc;
        }
    }
}
