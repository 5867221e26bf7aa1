//! Vectorised elementary functions: exp, expm1, ln, log1p, sin, cos, tan, tanh, sigmoid.
//!
//! Each is written once, generic over the element type (`f32`/`f64`, whose constants
//! and polynomial degrees come from [`MathFloat`]) and the pulp instruction set `S`.
//! The method is the classic one: range reduction, a polynomial on the reduced
//! argument, reconstruction, with special values (0, ±inf, NaN, subnormals, overflow)
//! fixed up with selects. The polynomials are Taylor series taken far enough that the
//! truncation error is below a tenth of an ulp on the reduced range, so the error is
//! that of the arithmetic: about 1 ulp for exp/ln/sin/cos, 2–3 for the composites.
//!
//! sin, cos and tan reduce by Cody–Waite with a three-part pi/2, exact up to
//! [`MathFloat::TRIG_LIMIT`]; larger arguments (and inf/NaN) are left to the caller,
//! which recomputes those lanes with `std` (see [`trig_outside`]).

use pulp::Simd;

use super::simd::SimdFloat;
use crate::element::Float;

/// Per-type constants of the elementary functions.
pub(crate) trait MathFloat: SimdFloat {
    /// `1.5 * 2^mantissa_bits`: adding it rounds to an integer (for |x| < 2^(bits-1)).
    const ROUND_MAGIC: f64;
    /// exp's argument is clamped to this range: below it exp is 0, above it inf.
    const EXP_MIN: f64;
    const EXP_MAX: f64;
    /// Above this exponent `n` (`e^x = 2^n e^r`) expm1 needs the overflow-safe
    /// reconstruction; an even integer whose half is a normal exponent.
    const EXPM1_SPLIT: f64;
    /// ln 2 split so that `k * LN2_HI` is exact for every exponent `k`.
    const LN2_HI: f64;
    const LN2_LO: f64;
    /// `e^r = 1 + r + r^2 * P(r)`: the coefficients of `P`, constant term first.
    const EXP_POLY: &'static [f64];
    /// `ln((1+s)/(1-s)) = 2s + s * z * R(z)`, `z = s^2`: the coefficients of `R`.
    const LN_POLY: &'static [f64];
    /// `sin r = r + r^3 * P(r^2)`.
    const SIN_POLY: &'static [f64];
    /// `cos r = 1 - r^2/2 + r^4 * Q(r^2)`.
    const COS_POLY: &'static [f64];
    /// pi/2 in three parts.
    const PIO2: [f64; 3];
    /// sin/cos/tan are vectorised for |x| <= this.
    const TRIG_LIMIT: f64;
    /// tanh(x) rounds to ±1 beyond this.
    const TANH_SAT: f64;
    /// 2^(mantissa bits + 2): scales a subnormal to a normal.
    const SUBNORMAL_SCALE: f64;
    const SUBNORMAL_SCALE_LOG2: f64;
}

/// `1/k!` for k = 2..
const INV_FACT: [f64; 17] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
    1.0 / 6227020800.0,
    1.0 / 87178291200.0,
    1.0 / 1307674368000.0,
    1.0 / 20922789888000.0,
    1.0 / 355687428096000.0,
    1.0 / 6402373705728000.0,
];

/// `(-1)^(i+1) / (2i+3)!`: the sine series after `r`.
const SIN_SERIES: [f64; 9] = [
    -1.0 / 6.0,
    1.0 / 120.0,
    -1.0 / 5040.0,
    1.0 / 362880.0,
    -1.0 / 39916800.0,
    1.0 / 6227020800.0,
    -1.0 / 1307674368000.0,
    1.0 / 355687428096000.0,
    -1.0 / 121645100408832000.0,
];

/// `(-1)^i / (2i+4)!`: the cosine series after `1 - r^2/2`.
const COS_SERIES: [f64; 8] = [
    1.0 / 24.0,
    -1.0 / 720.0,
    1.0 / 40320.0,
    -1.0 / 3628800.0,
    1.0 / 479001600.0,
    -1.0 / 87178291200.0,
    1.0 / 20922789888000.0,
    -1.0 / 6402373705728000.0,
];

/// `2 / (2i+3)`: the atanh series of ln.
const LN_SERIES: [f64; 10] = [
    2.0 / 3.0,
    2.0 / 5.0,
    2.0 / 7.0,
    2.0 / 9.0,
    2.0 / 11.0,
    2.0 / 13.0,
    2.0 / 15.0,
    2.0 / 17.0,
    2.0 / 19.0,
    2.0 / 21.0,
];

/// pi/2 = PIO2_A + PIO2_B + PIO2_C to about 160 bits (the usual triple-double split).
const PIO2_A: f64 = f64::from_bits(0x3ff9_21fb_5444_2d18);
const PIO2_B: f64 = f64::from_bits(0x3c91_a626_3314_5c07);
const PIO2_C: f64 = f64::from_bits(0xb91f_1976_b7ed_8fbc);

impl MathFloat for f32 {
    const ROUND_MAGIC: f64 = 12_582_912.0; // 1.5 * 2^23
    const EXP_MIN: f64 = -104.0;
    const EXP_MAX: f64 = 89.0;
    const EXPM1_SPLIT: f64 = 100.0;
    // ln 2 with its low 12 bits cleared, and the rest
    const LN2_HI: f64 = f32::from_bits(0x3f31_7000) as f64;
    const LN2_LO: f64 = std::f64::consts::LN_2 - f32::from_bits(0x3f31_7000) as f64;
    const EXP_POLY: &'static [f64] = INV_FACT.split_at(6).0;
    const LN_POLY: &'static [f64] = LN_SERIES.split_at(4).0;
    const SIN_POLY: &'static [f64] = SIN_SERIES.split_at(4).0;
    const COS_POLY: &'static [f64] = COS_SERIES.split_at(4).0;
    const PIO2: [f64; 3] = {
        let a = PIO2_A as f32 as f64;
        let b = (PIO2_A - a) as f32 as f64;
        let c = ((PIO2_A - a - b) + PIO2_B) as f32 as f64;
        [a, b, c]
    };
    const TRIG_LIMIT: f64 = 65536.0;
    const TANH_SAT: f64 = 10.0;
    const SUBNORMAL_SCALE: f64 = 33_554_432.0; // 2^25
    const SUBNORMAL_SCALE_LOG2: f64 = 25.0;
}

impl MathFloat for f64 {
    const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    const EXP_MIN: f64 = -746.0;
    const EXP_MAX: f64 = 710.0;
    const EXPM1_SPLIT: f64 = 1000.0;
    // fdlibm's split: LN2_HI has 21 trailing zero bits
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const EXP_POLY: &'static [f64] = INV_FACT.split_at(12).0;
    const LN_POLY: &'static [f64] = &LN_SERIES;
    const SIN_POLY: &'static [f64] = &SIN_SERIES;
    const COS_POLY: &'static [f64] = &COS_SERIES;
    const PIO2: [f64; 3] = [PIO2_A, PIO2_B, PIO2_C];
    const TRIG_LIMIT: f64 = 67_108_864.0; // 2^26
    const TANH_SAT: f64 = 20.0;
    const SUBNORMAL_SCALE: f64 = 18_014_398_509_481_984.0; // 2^54
    const SUBNORMAL_SCALE_LOG2: f64 = 54.0;
}

#[inline(always)]
fn c<S: Simd, T: MathFloat>(s: S, v: f64) -> T::V<S> {
    T::splat(s, T::from_f64(v))
}

/// Horner evaluation of `coeffs[0] + x * (coeffs[1] + x * (...))`.
#[inline(always)]
fn poly<S: Simd, T: MathFloat>(s: S, x: T::V<S>, coeffs: &[f64]) -> T::V<S> {
    let (last, rest) = coeffs.split_last().expect("non-empty polynomial");
    let mut acc = c::<S, T>(s, *last);
    for &k in rest.iter().rev() {
        acc = T::vfma(s, acc, x, c::<S, T>(s, k));
    }
    acc
}

/// Round to the nearest integer (ties to even), valid for |x| < 2^(mantissa bits - 1).
/// Returns the rounded value and `x + ROUND_MAGIC` (whose low bits hold the integer).
#[inline(always)]
fn round_magic<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> (T::V<S>, T::V<S>) {
    let magic = c::<S, T>(s, T::ROUND_MAGIC);
    let t = T::vadd(s, x, magic);
    (T::vsub(s, t, magic), t)
}

/// NaN lanes of `x` are returned as they are.
#[inline(always)]
fn keep_nan<S: Simd, T: MathFloat>(s: S, x: T::V<S>, r: T::V<S>) -> T::V<S> {
    T::select(s, T::veq(s, x, x), r, x)
}

/// `x = n ln2 + r`, |r| <= ln2/2 (slightly more for the largest n): `(n, r)`.
#[inline(always)]
fn exp_reduce<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> (T::V<S>, T::V<S>) {
    let (n, _) = round_magic::<S, T>(s, T::vmul(s, x, c::<S, T>(s, std::f64::consts::LOG2_E)));
    let r = T::vfma(s, n, c::<S, T>(s, -T::LN2_HI), x);
    let r = T::vfma(s, n, c::<S, T>(s, -T::LN2_LO), r);
    (n, r)
}

/// `e^r - 1` on the reduced range.
#[inline(always)]
fn expm1_poly<S: Simd, T: MathFloat>(s: S, r: T::V<S>) -> T::V<S> {
    let p = poly::<S, T>(s, r, T::EXP_POLY);
    T::vfma(s, T::vmul(s, r, r), p, r)
}

/// `e^x`.
#[inline(always)]
pub(crate) fn exp<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let xc = T::vmin_raw(
        s,
        T::vmax_raw(s, x, c::<S, T>(s, T::EXP_MIN)),
        c::<S, T>(s, T::EXP_MAX),
    );
    let (n, r) = exp_reduce::<S, T>(s, xc);
    let er = T::vadd(s, expm1_poly::<S, T>(s, r), c::<S, T>(s, 1.0));
    // 2^n in two factors so that subnormal results and overflow come out right
    let (n1, _) = round_magic::<S, T>(s, T::vmul(s, n, c::<S, T>(s, 0.5)));
    let n2 = T::vsub(s, n, n1);
    let y = T::vmul(s, T::vmul(s, er, T::pow2i(s, n1)), T::pow2i(s, n2));
    keep_nan::<S, T>(s, x, y)
}

/// `e^x - 1`, accurate near 0.
#[inline(always)]
pub(crate) fn expm1<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    // below EXP_MIN / 1.2 the result is -1 to working precision
    let lo = c::<S, T>(s, T::EXP_MIN / 1.2);
    let xc = T::vmin_raw(s, T::vmax_raw(s, x, lo), c::<S, T>(s, T::EXP_MAX));
    let (n, r) = exp_reduce::<S, T>(s, xc);
    let p = expm1_poly::<S, T>(s, r);
    let split = c::<S, T>(s, T::EXPM1_SPLIT);
    // normal case: 2^n (p + 1) - 1 = 2^n p + (2^n - 1), 2^n - 1 exact where it matters
    let scale = T::pow2i(s, T::vmin_raw(s, n, split));
    let small = T::vfma(s, scale, p, T::vsub(s, scale, c::<S, T>(s, 1.0)));
    // near overflow: 2^n in two factors, the -1 is negligible
    let half = c::<S, T>(s, T::EXPM1_SPLIT * 0.5);
    let big = T::vmul(
        s,
        T::vmul(s, T::vadd(s, p, c::<S, T>(s, 1.0)), T::pow2i(s, half)),
        T::pow2i(s, T::vsub(s, n, half)),
    );
    let y = T::select(s, T::vgt(s, n, split), big, small);
    keep_nan::<S, T>(s, x, y)
}

/// Natural logarithm.
#[inline(always)]
pub(crate) fn ln<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    let zero = c::<S, T>(s, 0.0);
    let sub = T::vlt(s, x, c::<S, T>(s, Float::to_f64(T::min_positive_value())));
    let xs = T::select(s, sub, T::vmul(s, x, c::<S, T>(s, T::SUBNORMAL_SCALE)), x);
    let (m, k) = T::split_exponent(s, xs);
    let k = T::vsub(
        s,
        k,
        T::select(s, sub, c::<S, T>(s, T::SUBNORMAL_SCALE_LOG2), zero),
    );
    // ln(1+f) = f - hfsq + s (hfsq + R),  s = f/(2+f)  (fdlibm)
    let f = T::vsub(s, m, one);
    let sv = T::vdiv(s, f, T::vadd(s, f, c::<S, T>(s, 2.0)));
    let z = T::vmul(s, sv, sv);
    let rr = T::vmul(s, z, poly::<S, T>(s, z, T::LN_POLY));
    let hfsq = T::vmul(s, c::<S, T>(s, 0.5), T::vmul(s, f, f));
    let inner = T::vfma(
        s,
        sv,
        T::vadd(s, hfsq, rr),
        T::vmul(s, k, c::<S, T>(s, T::LN2_LO)),
    );
    let y = T::vfma(
        s,
        k,
        c::<S, T>(s, T::LN2_HI),
        T::vsub(s, f, T::vsub(s, hfsq, inner)),
    );
    // specials: +inf -> +inf, ±0 -> -inf, negative or NaN -> NaN
    let inf = c::<S, T>(s, f64::INFINITY);
    let y = T::select(s, T::veq(s, x, inf), inf, y);
    let y = T::select(s, T::veq(s, x, zero), T::vneg(s, inf), y);
    T::select(s, T::vge(s, x, zero), y, c::<S, T>(s, f64::NAN))
}

/// `ln(1 + x)`, accurate near 0.
#[inline(always)]
pub(crate) fn log1p<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    let u = T::vadd(s, x, one);
    let d = T::vsub(s, u, one);
    // Goldberg: ln(u) * x / (u - 1) corrects the rounding of 1 + x
    let y = T::vmul(s, ln::<S, T>(s, u), T::vdiv(s, x, d));
    let y = T::select(s, T::veq(s, d, c::<S, T>(s, 0.0)), x, y);
    let inf = c::<S, T>(s, f64::INFINITY);
    let y = T::select(s, T::veq(s, x, inf), inf, y);
    // x = -1: ln(0) = -inf and x/d = 1
    keep_nan::<S, T>(s, x, y)
}

/// Lanes that [`sin`], [`cos`] and [`tan`] do not handle: |x| > TRIG_LIMIT, inf, NaN.
#[inline(always)]
pub(crate) fn trig_outside<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::M<S> {
    T::mask_not(s, T::vle(s, T::vabs(s, x), c::<S, T>(s, T::TRIG_LIMIT)))
}

/// Reduces `x = j pi/2 + r`, |r| <= pi/4: `(r, magic)` where `magic`'s low bits hold `j`.
#[inline(always)]
fn trig_reduce<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> (T::V<S>, T::V<S>) {
    let (j, t) = round_magic::<S, T>(s, T::vmul(s, x, c::<S, T>(s, std::f64::consts::FRAC_2_PI)));
    let [a, b, cc] = T::PIO2;
    let r = T::vfma(s, j, c::<S, T>(s, -a), x);
    let r = T::vfma(s, j, c::<S, T>(s, -b), r);
    let r = T::vfma(s, j, c::<S, T>(s, -cc), r);
    (r, t)
}

#[inline(always)]
fn sin_poly<S: Simd, T: MathFloat>(s: S, r: T::V<S>) -> T::V<S> {
    let z = T::vmul(s, r, r);
    T::vfma(s, T::vmul(s, r, z), poly::<S, T>(s, z, T::SIN_POLY), r)
}

#[inline(always)]
fn cos_poly<S: Simd, T: MathFloat>(s: S, r: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    let z = T::vmul(s, r, r);
    let hz = T::vmul(s, z, c::<S, T>(s, 0.5));
    let w = T::vsub(s, one, hz);
    // fdlibm: w + ((1 - w) - hz + z^2 Q) recovers the rounding of 1 - hz
    let tail = T::vfma(
        s,
        T::vmul(s, z, z),
        poly::<S, T>(s, z, T::COS_POLY),
        T::vsub(s, T::vsub(s, one, w), hz),
    );
    T::vadd(s, w, tail)
}

/// Whether bit `bit` of the integer held in `magic`'s low bits is set.
#[inline(always)]
fn quadrant_bit<S: Simd, T: MathFloat>(s: S, magic: T::V<S>, bit: u64) -> T::M<S> {
    let b = T::splat_u(s, bit);
    T::eq_u(s, T::and_u(s, T::vto_bits(s, magic), b), b)
}

/// Sine (lanes in [`trig_outside`] are garbage).
#[inline(always)]
pub(crate) fn sin<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let (r, t) = trig_reduce::<S, T>(s, x);
    let v = T::select(
        s,
        quadrant_bit::<S, T>(s, t, 1),
        cos_poly::<S, T>(s, r),
        sin_poly::<S, T>(s, r),
    );
    T::select(s, quadrant_bit::<S, T>(s, t, 2), T::vneg(s, v), v)
}

/// Cosine (lanes in [`trig_outside`] are garbage).
#[inline(always)]
pub(crate) fn cos<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let (r, t) = trig_reduce::<S, T>(s, x);
    let odd = quadrant_bit::<S, T>(s, t, 1);
    let v = T::select(s, odd, sin_poly::<S, T>(s, r), cos_poly::<S, T>(s, r));
    // cos(r + j pi/2) = cos r, -sin r, -cos r, sin r
    let flip = T::mask_or(
        s,
        T::mask_and(s, odd, T::mask_not(s, quadrant_bit::<S, T>(s, t, 2))),
        T::mask_and(s, T::mask_not(s, odd), quadrant_bit::<S, T>(s, t, 2)),
    );
    T::select(s, flip, T::vneg(s, v), v)
}

/// Tangent (lanes in [`trig_outside`] are garbage).
#[inline(always)]
pub(crate) fn tan<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let (r, t) = trig_reduce::<S, T>(s, x);
    let sr = sin_poly::<S, T>(s, r);
    let cr = cos_poly::<S, T>(s, r);
    // tan(r + j pi/2) = tan r for even j, -cot r for odd j
    let odd = quadrant_bit::<S, T>(s, t, 1);
    let num = T::select(s, odd, T::vneg(s, cr), sr);
    let den = T::select(s, odd, sr, cr);
    T::vdiv(s, num, den)
}

/// Hyperbolic tangent.
#[inline(always)]
pub(crate) fn tanh<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let ax = T::vabs(s, x);
    let sign = T::xor_bits(s, x, ax);
    // tanh|x| = e / (e + 2), e = expm1(2|x|); saturated beyond TANH_SAT
    let a2 = T::vmul(
        s,
        T::vmin_raw(s, ax, c::<S, T>(s, T::TANH_SAT)),
        c::<S, T>(s, 2.0),
    );
    let (n, r) = exp_reduce::<S, T>(s, a2);
    let p = expm1_poly::<S, T>(s, r);
    let scale = T::pow2i(s, n);
    let e = T::vfma(s, scale, p, T::vsub(s, scale, c::<S, T>(s, 1.0)));
    let y = T::vdiv(s, e, T::vadd(s, e, c::<S, T>(s, 2.0)));
    keep_nan::<S, T>(s, x, T::or_bits(s, y, sign))
}

/// Logistic sigmoid `1 / (1 + e^-x)`.
#[inline(always)]
pub(crate) fn sigmoid<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    // z = e^-|x| in (0, 1]: sigmoid = 1/(1+z) for x >= 0, z/(1+z) below
    let z = exp::<S, T>(s, T::vneg(s, T::vabs(s, x)));
    let num = T::select(s, T::vge(s, x, c::<S, T>(s, 0.0)), one, z);
    keep_nan::<S, T>(s, x, T::vdiv(s, num, T::vadd(s, one, z)))
}
