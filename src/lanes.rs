//! Several examples of scalar code at once, one per SIMD lane: [`L`], a float of [`W`]
//! examples, with the arithmetic and the float methods of `f64` and `f32`, each lane
//! computing exactly what the scalar code computes for its example.
//!
//! `#[vmap]` of scalar code (see [`crate::per_example`]) also emits the function, or its
//! gradient, over `L` instead of `f64`: every float of the body a lane per example, every
//! integer, bool and branch the first lane's. Where the examples take the same path (a
//! fixed-step simulation, a fit over a fixed number of points), [`W`] examples run in the
//! time of about one: each step's chain of dependent operations is a chain of vector
//! operations, and the latency that bounds one example hides that of the others. Where they
//! do not (a comparison, a float cast to an integer, on which the lanes disagree), the
//! group is marked [`diverged`] and its examples run again one at a time: the results
//! are the same bit for bit either way (no lane's arithmetic is fused or reordered).
//!
//! ```
//! use ferrax::__private::lanes::{self, L};
//! let x = L([1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
//! let y = (x * x + L::splat(1.0)).sqrt();
//! assert_eq!(y.0[2], (3.0f64 * 3.0 + 1.0).sqrt());
//! // the lanes agree: a branch they all take
//! assert!(lanes::run(|| x > L::splat(0.0)) == Some(true));
//! // they do not: the group is run again one example at a time
//! assert!(lanes::run(|| x > L::splat(2.5)).is_none());
//! ```

use ferrax_runtime::Float;
use std::cell::Cell;
use std::ops::{
    Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Rem, RemAssign, Sub, SubAssign,
};

/// How many examples an [`L`] holds. A step's chain of dependent operations is as long
/// for many lanes as for one, so more lanes hide more of its latency, until a step's live
/// values spill out of the registers: on the oscillator row (benches/README.md, baseline
/// x86-64, four SSE2 registers an `L<f64>`), 4 lanes 1.94 ms, 8 lanes 1.25, 16 lanes 1.39.
pub const W: usize = 8;

/// A float of [`W`] examples, one per lane.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub struct L<T>(pub [T; W]);

thread_local! {
    static DIVERGED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the group being run as diverged: its lanes disagreed on a decision (the first
/// lane's was taken), so its results are dropped and its examples run one at a time.
#[inline(never)]
#[cold]
pub fn diverged() {
    DIVERGED.with(|d| d.set(true));
}

/// Runs `f` (a group of examples over lanes) and returns its result, or `None` where its
/// lanes disagreed on a decision (see [`diverged`]).
#[inline]
pub fn run<R>(f: impl FnOnce() -> R) -> Option<R> {
    let before = DIVERGED.with(|d| d.replace(false));
    let r = f();
    let diverged = DIVERGED.with(|d| d.replace(before));
    (!diverged).then_some(r)
}

/// The first lane's answer, marking the group [`diverged`] where the others differ.
#[inline(always)]
fn agreed<U: PartialEq + Copy>(v: [U; W]) -> U {
    if v.iter().any(|x| *x != v[0]) {
        diverged();
    }
    v[0]
}

impl<T: Copy> L<T> {
    /// `x` in every lane (a value shared by the examples).
    #[inline(always)]
    pub fn splat(x: T) -> Self {
        L([x; W])
    }

    /// Lane `i` from `f(i)`.
    #[inline(always)]
    pub fn gather(f: impl FnMut(usize) -> T) -> Self {
        L(std::array::from_fn(f))
    }

    #[inline(always)]
    fn map(self, f: impl Fn(T) -> T) -> Self {
        L(self.0.map(f))
    }

    #[inline(always)]
    fn zip(self, o: Self, f: impl Fn(T, T) -> T) -> Self {
        L(std::array::from_fn(|i| f(self.0[i], o.0[i])))
    }
}

impl<T: Float> L<T> {
    /// A constant written as an `f64` (a NaN or an infinity) in every lane.
    #[inline(always)]
    pub fn splat_f64(x: f64) -> Self {
        L::splat(<T as Float>::from_f64(x))
    }

    /// `to(x)` of every lane, where the lanes agree on it (an integer cast: `x as usize`
    /// is `self.to(|v| v as usize)`): the first lane's, marking the group [`diverged`]
    /// where another's differs (2.3 and 2.7 agree on `as usize`).
    #[inline(always)]
    pub fn to<U: PartialEq + Copy>(self, to: impl Fn(T) -> U) -> U {
        agreed(self.0.map(to))
    }

    /// `powi` in every lane.
    #[inline(always)]
    pub fn powi(self, n: i32) -> Self {
        self.map(|x| x.powi(n))
    }

    /// `clamp` in every lane, as `f64::clamp`: panics where `min > max` or either is NaN
    /// in the first lane; in another, marks the group [`diverged`] (that example may not
    /// have come here: run on its own, it panics where it does).
    #[inline(always)]
    pub fn clamp(self, min: Self, max: Self) -> Self {
        L(std::array::from_fn(|i| {
            let (x, lo, hi) = (self.0[i], min.0[i], max.0[i]);
            // (`min > max` or either NaN)
            if lo.partial_cmp(&hi).is_none_or(|o| o.is_gt()) {
                assert!(
                    i > 0,
                    "min > max, or either was NaN. min = {lo:?}, max = {hi:?}"
                );
                diverged();
                return x;
            }
            if x < lo {
                lo
            } else if x > hi {
                hi
            } else {
                x
            }
        }))
    }

    /// `mul_add` in every lane.
    #[inline(always)]
    pub fn mul_add(self, a: Self, b: Self) -> Self {
        L(std::array::from_fn(|i| self.0[i].mul_add(a.0[i], b.0[i])))
    }

    /// `as` another float type in every lane (`f64` to `f32` rounds, as `as` does).
    #[inline(always)]
    pub fn cast<U: Float>(self) -> L<U> {
        L(self.0.map(|x| U::from_f64(Float::to_f64(x))))
    }
}

/// The float methods of the primitive table, lane by lane.
macro_rules! unary {
    ($($m:ident)*) => {
        impl<T: Float> L<T> {$(
            #[doc = concat!("`", stringify!($m), "` in every lane.")]
            #[inline(always)]
            pub fn $m(self) -> Self {
                self.map(T::$m)
            }
        )*}
    };
}
unary!(abs acos acosh asin asinh atan atanh cbrt ceil cos cosh exp exp2 exp_m1 floor ln ln_1p
    log10 log2 recip round signum sin sinh sqrt tan tanh trunc);

macro_rules! binary_methods {
    ($($m:ident)*) => {
        impl<T: Float> L<T> {$(
            #[doc = concat!("`", stringify!($m), "` in every lane.")]
            #[inline(always)]
            pub fn $m(self, o: Self) -> Self {
                self.zip(o, T::$m)
            }
        )*}
    };
}
binary_methods!(atan2 hypot log max min powf);

macro_rules! operators {
    ($($tr:ident $m:ident $atr:ident $am:ident)*) => {$(
        impl<T: Float> $tr for L<T> {
            type Output = Self;
            #[inline(always)]
            fn $m(self, o: Self) -> Self {
                self.zip(o, T::$m)
            }
        }
        impl<T: Float> $atr for L<T> {
            #[inline(always)]
            fn $am(&mut self, o: Self) {
                *self = self.zip(o, T::$m);
            }
        }
    )*};
}
operators!(
    Add add AddAssign add_assign
    Sub sub SubAssign sub_assign
    Mul mul MulAssign mul_assign
    Div div DivAssign div_assign
    Rem rem RemAssign rem_assign
);

impl<T: Float> Neg for L<T> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        self.map(T::neg)
    }
}

impl<T: Float> Default for L<T> {
    #[inline(always)]
    fn default() -> Self {
        L::splat(T::zero())
    }
}

impl<T: Float> std::iter::Sum for L<T> {
    fn sum<I: Iterator<Item = Self>>(it: I) -> Self {
        it.fold(L::default(), |a, b| a + b)
    }
}

impl<T: Float> crate::__private::Real for L<T> {
    #[inline(always)]
    fn from_i32(n: i32) -> Self {
        L::splat(<T as Float>::from_f64(n as f64))
    }
}

/// Comparisons of lanes: the first lane's answer, marking the group [`diverged`] where the
/// others' differ (the bool a branch takes is the same for every lane, or the group's
/// results are dropped).
impl<T: Float> PartialEq for L<T> {
    #[inline(always)]
    fn eq(&self, o: &Self) -> bool {
        agreed(std::array::from_fn(|i| self.0[i] == o.0[i]))
    }
}

impl<T: Float> PartialOrd for L<T> {
    #[inline(always)]
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        agreed(std::array::from_fn(|i| self.0[i].partial_cmp(&o.0[i])))
    }
    #[inline(always)]
    fn lt(&self, o: &Self) -> bool {
        agreed(std::array::from_fn(|i| self.0[i] < o.0[i]))
    }
    #[inline(always)]
    fn le(&self, o: &Self) -> bool {
        agreed(std::array::from_fn(|i| self.0[i] <= o.0[i]))
    }
    #[inline(always)]
    fn gt(&self, o: &Self) -> bool {
        agreed(std::array::from_fn(|i| self.0[i] > o.0[i]))
    }
    #[inline(always)]
    fn ge(&self, o: &Self) -> bool {
        agreed(std::array::from_fn(|i| self.0[i] >= o.0[i]))
    }
}

/// A constant the scalar code names (`DT`, `STEPS`, `WEIGHTS`), whose type only rustc
/// knows, read over lanes: `(&Const(DT)).lift()` is a float (or an array or slice of them)
/// in every lane ([`Lift`]), anything else as it is ([`Keep`]).
pub struct Const<T>(pub T);

/// A float constant in every lane: chosen over [`Keep`] where it applies.
pub trait Lift {
    /// The constant over lanes.
    type Out;
    /// The constant over lanes.
    fn lift(&self) -> Self::Out;
}

/// A constant other than floats, as it is (`(&Const(STEPS)).lift()` is `STEPS`).
pub trait Keep<T> {
    /// The constant.
    fn lift(&self) -> T;
}

impl<T: Copy> Keep<T> for &Const<T> {
    #[inline(always)]
    fn lift(&self) -> T {
        self.0
    }
}

macro_rules! lift_floats {
    ($($f:ty),*) => {$(
        impl Lift for Const<$f> {
            type Out = L<$f>;
            #[inline(always)]
            fn lift(&self) -> L<$f> {
                L::splat(self.0)
            }
        }
        impl<const N: usize> Lift for Const<[$f; N]> {
            type Out = [L<$f>; N];
            #[inline(always)]
            fn lift(&self) -> [L<$f>; N] {
                splat_array(&self.0)
            }
        }
        impl Lift for Const<&[$f]> {
            type Out = Vec<L<$f>>;
            #[inline]
            fn lift(&self) -> Vec<L<$f>> {
                splat_seq(self.0)
            }
        }
    )*};
}
lift_floats!(f32, f64);

/// The examples `k..k + W` of a batched float.
#[inline(always)]
pub fn floats<T: Float>(x: &[T], k: usize) -> L<T> {
    let mut l = L::splat(T::zero());
    l.0.copy_from_slice(&x[k..k + W]);
    l
}

/// The examples `k..k + W` of a batched sequence, element by element.
#[inline]
pub fn rows<T: Float>(x: &crate::per_example::Rows<T>, k: usize) -> Vec<L<T>> {
    let mut out = vec![L::splat(T::zero()); x.len()];
    transpose(x, k, &mut out);
    out
}

/// [`rows`] of an array parameter (`[f64; N]`).
#[inline]
pub fn array<T: Float, const N: usize>(x: &crate::per_example::Rows<T>, k: usize) -> [L<T>; N] {
    let mut out = [L::splat(T::zero()); N];
    transpose(x, k, &mut out);
    out
}

/// Element `j` of example `k + i`'s sequence into lane `i` of `out[j]`.
#[inline(always)]
fn transpose<T: Float>(x: &crate::per_example::Rows<T>, k: usize, out: &mut [L<T>]) {
    if out.is_empty() {
        return;
    }
    for (i, row) in x.rows(k, W).chunks_exact(out.len()).enumerate() {
        for (o, v) in out.iter_mut().zip(row) {
            o.0[i] = *v;
        }
    }
}

/// A sequence shared by every example, in every lane.
pub fn splat_seq<T: Float>(x: &[T]) -> Vec<L<T>> {
    x.iter().map(|v| L::splat(*v)).collect()
}

/// [`splat_seq`] of an array.
pub fn splat_array<T: Float, const N: usize>(x: &[T; N]) -> [L<T>; N] {
    x.map(L::splat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lane_computes_what_the_scalar_code_does() {
        let xs = [0.3f64, -1.7, 2.5, 1e-3, 7.0, -0.0, 1e300, 0.5];
        let x = L(xs);
        let y = L([1.1f64, 0.2, -0.4, 3.0, 2.0, 1.0, 1e10, -0.5]);
        let r = ((x * y - x / y + x % y).sin() * x.exp().ln_1p()).max(y.powi(3).hypot(x));
        for (i, a) in xs.into_iter().enumerate() {
            let b = y.0[i];
            let s = ((a * b - a / b + a % b).sin() * a.exp().ln_1p()).max(b.powi(3).hypot(a));
            assert_eq!(r.0[i].to_bits(), s.to_bits());
        }
        assert_eq!(
            L([1.0f32; W]).clamp(L::splat(2.0), L::splat(3.0)),
            L::splat(2.0)
        );
    }

    #[test]
    // (`&Const(..)` as the generated code writes it: the borrow picks `Keep` where `Lift`
    // does not apply)
    #[allow(clippy::needless_borrow)]
    fn constants_are_floats_in_every_lane_or_kept() {
        const DT: f64 = 0.5;
        const STEPS: usize = 3;
        const WS: [f32; 2] = [1.0, 2.0];
        const TABLE: &[f64] = &[4.0];
        let (dt, steps) = ((&Const(DT)).lift(), (&Const(STEPS)).lift());
        let (ws, table) = ((&Const(WS)).lift(), (&Const(TABLE)).lift());
        // (each of the type it should be)
        let _: (L<f64>, usize, [L<f32>; 2]) = (dt, steps, ws);
        let _: &Vec<L<f64>> = &table;
        assert_eq!(
            (dt.0[3], steps, ws[1].0[5], table[0].0[7]),
            (0.5, 3, 2.0, 4.0)
        );
    }

    #[test]
    fn disagreeing_lanes_mark_the_group_and_agreeing_ones_do_not() {
        let x = L([1.0f64, 2.0, 3.0, f64::NAN, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(run(|| x < L::splat(10.0)), None);
        assert_eq!(run(|| x.max(L::splat(0.0)) >= L::splat(0.0)), Some(true));
        assert_eq!(run(|| (x * L::splat(0.1)).to(|v| v as usize)), Some(0));
        // (a clamp another lane's example would panic at: run on its own, it may not get
        // there)
        let lo = L::gather(|i| if i == 3 { 9.0 } else { 0.0 });
        assert_eq!(run(|| x.clamp(lo, L::splat(1.0)).0[0]), None);
        let r = std::panic::catch_unwind(|| L::splat(1.0f64).clamp(L::splat(2.0), L::splat(0.0)));
        assert!(r.is_err());
        assert_eq!(run(|| x.to(|v| v as usize)), None);
        // (nested runs keep the outer group's mark)
        let outer = run(|| {
            let _ = x < L::splat(2.0);
            run(|| 1).unwrap()
        });
        assert_eq!(outer, None);
    }
}
