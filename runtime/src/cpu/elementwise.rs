//! Elementwise kernels: unary functions, binary operations (slice or broadcast scalar
//! on either side) and comparisons. One SIMD loop per op, generic over the instruction
//! set; the functions themselves are in [`math`].

use std::ops::Range;

use pulp::{Simd, WithSimd};

use super::kernels::{BinaryOp, CmpOp, UnaryOp, binary_scalar, unary_scalar};
use super::math::{self, MathFloat, Rounding};
use super::par::for_chunks;
use super::simd::dispatch;
use crate::element::Float;

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
    Softplus, 4, |s, x| math::softplus::<S, T>(s, x);
    Asin, 4, |s, x| math::asin::<S, T>(s, x);
    Acos, 4, |s, x| math::acos::<S, T>(s, x);
    Atan, 4, |s, x| math::atan::<S, T>(s, x);
    Sinh, 5, |s, x| math::sinh::<S, T>(s, x);
    Cosh, 6, |s, x| math::cosh::<S, T>(s, x);
    Asinh, 6, |s, x| math::asinh::<S, T>(s, x);
    Acosh, 6, |s, x| math::acosh::<S, T>(s, x);
    Atanh, 5, |s, x| math::atanh::<S, T>(s, x);
    Exp2, 4, |s, x| math::exp2::<S, T>(s, x);
    Log2, 4, |s, x| math::log2::<S, T>(s, x);
    Log10, 4, |s, x| math::log10::<S, T>(s, x);
    Cbrt, 5, |s, x| math::cbrt::<S, T>(s, x);
    Floor, 1, |s, x| math::rounded::<S, T>(s, x, Rounding::Floor);
    Ceil, 1, |s, x| math::rounded::<S, T>(s, x, Rounding::Ceil);
    Round, 1, |s, x| math::rounded::<S, T>(s, x, Rounding::Round);
    Trunc, 1, |s, x| math::rounded::<S, T>(s, x, Rounding::Trunc);
    Erf, 8, |s, x| math::erf::<S, T>(s, x);
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

/// `x^p` lane by lane with the scalar `powf` (no vector body).
#[derive(Clone, Copy)]
struct Powf(f64);

impl<T: MathFloat> UnaryFn<T> for Powf {
    const COST: usize = 16;
    #[inline(always)]
    fn vec<S: Simd>(self, _s: S, x: T::V<S>) -> T::V<S> {
        per_lane::<S, T>([x, x], |[a, _]| unary_scalar(UnaryOp::Powf(self.0), a))
    }
}

/// `f` applied to the lanes of `v` one at a time, through memory: for functions with no
/// vector body (the same scalar results as a loop over the elements).
#[inline(always)]
fn per_lane<S: Simd, T: MathFloat>(v: [T::V<S>; 2], f: impl Fn([T; 2]) -> T) -> T::V<S> {
    let n = T::lanes::<S>();
    let mut a = [T::zero(); 16];
    let mut b = [T::zero(); 16];
    T::as_mut_simd::<S>(&mut a[..n]).0[0] = v[0];
    T::as_mut_simd::<S>(&mut b[..n]).0[0] = v[1];
    for (x, &y) in a[..n].iter_mut().zip(&b[..n]) {
        *x = f([*x, y]);
    }
    T::as_simd::<S>(&a[..n]).0[0]
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

/// The one table from ops to vector bodies: each op's body handed to a visitor
/// ([`with_unary`], [`with_binary`]: the whole-tensor kernels and the interpreted chains)
/// or called on one vector ([`Lanes`], named as the primitives' tensor methods: the
/// chains the macro compiles).
macro_rules! op_table {
    (
        unary: $($um:ident => $u:ident),*;
        binary: $($bm:ident => $b:ident),*;
    ) => {
        /// The vector body of a unary op, handed to `v`.
        #[inline(always)]
        fn with_unary<T: MathFloat, V: UnaryVisit<T>>(op: UnaryOp, v: V) {
            match op {
                $(UnaryOp::$u => v.visit($u),)*
                UnaryOp::Powi(n) => v.visit(Powi(n)),
                UnaryOp::Powf(p) => v.visit(Powf(p)),
            }
        }

        /// The vector body of a binary op, handed to `v`.
        #[inline(always)]
        fn with_binary<T: MathFloat, V: BinaryVisit<T>>(op: BinaryOp, v: V) {
            match op {
                $(BinaryOp::$b => v.visit($b),)*
            }
        }

        /// The elementwise operations on one vector of lanes, for the chains the macro
        /// compiles to Rust ([`crate::fused::Kernel`]): the same vector bodies as the
        /// whole-tensor operations, so the same values. Each is named as the primitive's
        /// tensor method; comparisons give 1 where they hold and 0 where not.
        pub trait Lanes: Copy {
            /// A vector of lanes of the tensors' dtype.
            type Vec: Copy;
            $(
                #[doc = concat!("`", stringify!($um), "` of each lane.")]
                fn $um(self, x: Self::Vec) -> Self::Vec;
            )*
            $(
                #[doc = concat!("`", stringify!($bm), "` of each pair of lanes.")]
                fn $bm(self, a: Self::Vec, b: Self::Vec) -> Self::Vec;
            )*
            /// `x^n` (the same roundings as `powi`).
            fn powi(self, x: Self::Vec, n: i32) -> Self::Vec;
            /// `a < b` as 1 or 0.
            fn lt(self, a: Self::Vec, b: Self::Vec) -> Self::Vec;
            /// `a <= b` as 1 or 0.
            fn le(self, a: Self::Vec, b: Self::Vec) -> Self::Vec;
            /// `a > b` as 1 or 0.
            fn gt(self, a: Self::Vec, b: Self::Vec) -> Self::Vec;
            /// `a >= b` as 1 or 0.
            fn ge(self, a: Self::Vec, b: Self::Vec) -> Self::Vec;
            /// `a == b` as 1 or 0.
            fn eq(self, a: Self::Vec, b: Self::Vec) -> Self::Vec;
            /// `a != b` as 1 or 0.
            fn ne(self, a: Self::Vec, b: Self::Vec) -> Self::Vec;
            /// `a` where `mask` is nonzero (NaN counts as nonzero), else `b`.
            fn select(self, mask: Self::Vec, a: Self::Vec, b: Self::Vec) -> Self::Vec;
        }

        impl<S: Simd, T: MathFloat> Lanes for Vectors<S, T> {
            type Vec = T::V<S>;
            $(
                #[inline(always)]
                fn $um(self, x: Self::Vec) -> Self::Vec {
                    unary_vector::<S, T, _>(self.0, $u, x)
                }
            )*
            $(
                #[inline(always)]
                fn $bm(self, a: Self::Vec, b: Self::Vec) -> Self::Vec {
                    BinaryFn::<T>::vec($b, self.0, a, b)
                }
            )*
            #[inline(always)]
            fn powi(self, x: Self::Vec, n: i32) -> Self::Vec {
                unary_vector::<S, T, _>(self.0, Powi(n), x)
            }
            #[inline(always)]
            fn lt(self, a: Self::Vec, b: Self::Vec) -> Self::Vec {
                self.mask(T::vlt(self.0, a, b))
            }
            #[inline(always)]
            fn le(self, a: Self::Vec, b: Self::Vec) -> Self::Vec {
                self.mask(T::vle(self.0, a, b))
            }
            #[inline(always)]
            fn gt(self, a: Self::Vec, b: Self::Vec) -> Self::Vec {
                self.mask(T::vgt(self.0, a, b))
            }
            #[inline(always)]
            fn ge(self, a: Self::Vec, b: Self::Vec) -> Self::Vec {
                self.mask(T::vge(self.0, a, b))
            }
            #[inline(always)]
            fn eq(self, a: Self::Vec, b: Self::Vec) -> Self::Vec {
                self.mask(T::veq(self.0, a, b))
            }
            #[inline(always)]
            fn ne(self, a: Self::Vec, b: Self::Vec) -> Self::Vec {
                self.mask(T::mask_not(self.0, T::veq(self.0, a, b)))
            }
            #[inline(always)]
            fn select(self, mask: Self::Vec, a: Self::Vec, b: Self::Vec) -> Self::Vec {
                let s = self.0;
                T::select(s, T::mask_not(s, T::veq(s, mask, T::splat(s, T::zero()))), a, b)
            }
        }
    };
}

op_table! {
    unary: neg => Neg, abs => Abs, exp => Exp, ln => Ln, ln1p => Log1p, exp_m1 => Expm1,
        sin => Sin, cos => Cos, tan => Tan, tanh => Tanh, sqrt => Sqrt, recip => Recip,
        sigmoid => Sigmoid, softplus => Softplus, relu => Relu, signum => Sign, asin => Asin,
        acos => Acos, atan => Atan, sinh => Sinh, cosh => Cosh, asinh => Asinh,
        acosh => Acosh, atanh => Atanh, exp2 => Exp2, log2 => Log2, log10 => Log10,
        cbrt => Cbrt, floor => Floor, ceil => Ceil, round => Round, trunc => Trunc, erf => Erf;
    binary: add => Add, sub => Sub, mul => Mul, div => Div, max => Maximum, min => Minimum,
        atan2 => Atan2, powf => Pow;
}

/// The [`Lanes`] of `T` under the instruction set `S`.
#[derive(Clone, Copy)]
pub(crate) struct Vectors<S, T>(S, std::marker::PhantomData<T>);

impl<S: Simd, T: MathFloat> Vectors<S, T> {
    pub(crate) fn new(s: S) -> Self {
        Vectors(s, std::marker::PhantomData)
    }

    /// 1 where `m` is set, else 0.
    #[inline(always)]
    fn mask(self, m: T::M<S>) -> T::V<S> {
        let s = self.0;
        T::select(s, m, T::splat(s, T::one()), T::splat(s, T::zero()))
    }
}

/// `f` of one vector, with the lanes outside its vector body's range (see
/// [`UnaryFn::outside`]) from the scalar function, as [`MapKernel`] computes them.
#[inline(always)]
fn unary_vector<S: Simd, T: MathFloat, F: UnaryFn<T>>(s: S, f: F, x: T::V<S>) -> T::V<S> {
    let y = f.vec(s, x);
    if F::FALLBACK && T::any(s, f.outside(s, x)) {
        per_lane::<S, T>(
            [x, y],
            |[x, y]| if f.outside_scalar(x) { f.scalar(x) } else { y },
        )
    } else {
        y
    }
}

/// What to do with a unary op's vector body (see [`with_unary`]).
trait UnaryVisit<T: MathFloat> {
    fn visit<F: UnaryFn<T>>(self, f: F);
}

/// `out[i] = op(x[i])`, split over threads when large.
struct Map<'a, T> {
    x: &'a [T],
    out: &'a mut [T],
}

impl<T: MathFloat> UnaryVisit<T> for Map<'_, T> {
    #[inline(always)]
    fn visit<F: UnaryFn<T>>(self, f: F) {
        let x = self.x;
        for_chunks(self.out, F::COST, |r, out| {
            dispatch(MapKernel { f, x: &x[r], out })
        });
    }
}

/// `out[i] = op(x[i])` on this thread, inside a kernel already dispatched to `S`.
struct MapIn<'a, S, T> {
    s: S,
    x: &'a [T],
    out: &'a mut [T],
}

impl<S: Simd, T: MathFloat> UnaryVisit<T> for MapIn<'_, S, T> {
    #[inline(always)]
    fn visit<F: UnaryFn<T>>(self, f: F) {
        let kernel = MapKernel {
            f,
            x: self.x,
            out: self.out,
        };
        // (its own target-feature function, called directly: inlining every op's body
        // into the caller made a frame that overflowed a thread's stack unoptimised)
        self.s.vectorize(kernel)
    }
}

pub(crate) fn unary<T: MathFloat>(op: UnaryOp, x: &[T], out: &mut [T]) {
    with_unary(op, Map { x, out })
}

/// [`unary`] on this thread under the instruction set `s`, for kernels that evaluate
/// several operations inside one dispatch (a fused chain's block).
#[inline(always)]
pub(crate) fn unary_in<S: Simd, T: MathFloat>(s: S, op: UnaryOp, x: &[T], out: &mut [T]) {
    with_unary(op, MapIn { s, x, out })
}

/// One side of a binary op: a slice or a broadcast scalar.
pub(crate) trait Operand<T: MathFloat>: Copy + Send + Sync {
    fn range(self, r: Range<usize>) -> Self;
    /// The `i`-th whole vector.
    fn vector<S: Simd>(self, s: S, i: usize) -> T::V<S>;
    /// The elements from `from` on (fewer than a vector), zero-padded.
    fn rest<S: Simd>(self, s: S, from: usize) -> T::V<S>;
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
}

trait BinaryFn<T: MathFloat>: Copy + Send + Sync {
    /// Work per element relative to an add (sets the parallel threshold).
    const COST: usize = 1;
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

#[derive(Clone, Copy)]
struct Atan2;

impl<T: MathFloat> BinaryFn<T> for Atan2 {
    const COST: usize = 6;
    #[inline(always)]
    fn vec<S: Simd>(self, s: S, y: T::V<S>, x: T::V<S>) -> T::V<S> {
        math::atan2::<S, T>(s, y, x)
    }
}

/// `a^b` lane by lane with the scalar `powf` (no vector body).
#[derive(Clone, Copy)]
struct Pow;

impl<T: MathFloat> BinaryFn<T> for Pow {
    const COST: usize = 16;
    #[inline(always)]
    fn vec<S: Simd>(self, _s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
        per_lane::<S, T>([a, b], |[a, b]| binary_scalar(BinaryOp::Pow, a, b))
    }
}

/// NaN-propagating maximum (`a > b ? a : b` otherwise).
#[inline(always)]
pub(super) fn max_nan<S: Simd, T: MathFloat>(s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
    let ordered = T::mask_and(s, T::veq(s, a, a), T::veq(s, b, b));
    let m = T::select(s, T::vgt(s, a, b), a, b);
    T::select(s, ordered, m, T::vadd(s, a, b))
}

/// NaN-propagating minimum (`a < b ? a : b` otherwise).
#[inline(always)]
pub(super) fn min_nan<S: Simd, T: MathFloat>(s: S, a: T::V<S>, b: T::V<S>) -> T::V<S> {
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

/// What to do with a binary op's vector body (see [`with_binary`]).
trait BinaryVisit<T: MathFloat> {
    fn visit<F: BinaryFn<T>>(self, f: F);
}

/// `out[i] = op(a[i], b[i])`, split over threads when large.
struct Zip<'a, T, A, B> {
    a: A,
    b: B,
    out: &'a mut [T],
}

impl<T: MathFloat, A: Operand<T>, B: Operand<T>> BinaryVisit<T> for Zip<'_, T, A, B> {
    #[inline(always)]
    fn visit<F: BinaryFn<T>>(self, f: F) {
        let Self { a, b, out } = self;
        for_chunks(out, F::COST, |r, out| {
            dispatch(ZipKernel {
                f,
                a: a.range(r.clone()),
                b: b.range(r),
                out,
            })
        });
    }
}

/// `out[i] = op(a[i], b[i])` on this thread, inside a kernel already dispatched to `S`.
struct ZipIn<'a, S, T, A, B> {
    s: S,
    a: A,
    b: B,
    out: &'a mut [T],
}

impl<S: Simd, T: MathFloat, A: Operand<T>, B: Operand<T>> BinaryVisit<T> for ZipIn<'_, S, T, A, B> {
    #[inline(always)]
    fn visit<F: BinaryFn<T>>(self, f: F) {
        let Self { s, a, b, out } = self;
        s.vectorize(ZipKernel { f, a, b, out })
    }
}

pub(crate) fn binary<T: MathFloat, A: Operand<T>, B: Operand<T>>(
    op: BinaryOp,
    a: A,
    b: B,
    out: &mut [T],
) {
    with_binary(op, Zip { a, b, out })
}

/// [`binary`] on this thread under the instruction set `s`, for kernels that evaluate
/// several operations inside one dispatch (a fused chain's block).
#[inline(always)]
pub(crate) fn binary_in<S: Simd, T: MathFloat, A: Operand<T>, B: Operand<T>>(
    s: S,
    op: BinaryOp,
    a: A,
    b: B,
    out: &mut [T],
) {
    with_binary(op, ZipIn { s, a, b, out })
}

/// `out[i] = yes` where `op(a[i], b[i])` holds, else `no` (a bool mask, or a float one).
pub(crate) fn compare<T: Float, O: Copy + Send + Sync>(
    op: CmpOp,
    a: &[T],
    b: &[T],
    out: &mut [O],
    [yes, no]: [O; 2],
) {
    fn run<T: Float, O: Copy + Send + Sync>(
        a: &[T],
        b: &[T],
        out: &mut [O],
        [yes, no]: [O; 2],
        f: impl Fn(T, T) -> bool + Sync,
    ) {
        for_chunks(out, 1, |r, out| {
            for ((o, &x), &y) in out.iter_mut().zip(&a[r.clone()]).zip(&b[r]) {
                *o = if f(x, y) { yes } else { no };
            }
        });
    }
    let v = [yes, no];
    match op {
        CmpOp::Eq => run(a, b, out, v, |x, y| x == y),
        CmpOp::Ne => run(a, b, out, v, |x, y| x != y),
        CmpOp::Lt => run(a, b, out, v, |x, y| x < y),
        CmpOp::Le => run(a, b, out, v, |x, y| x <= y),
        CmpOp::Gt => run(a, b, out, v, |x, y| x > y),
        CmpOp::Ge => run(a, b, out, v, |x, y| x >= y),
    }
}
