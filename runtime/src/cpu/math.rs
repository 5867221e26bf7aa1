//! Vectorised elementary functions: exp, expm1, ln, log1p, sin, cos, tan, tanh, sigmoid,
//! and asin, acos, atan, atan2, sinh, cosh, asinh, acosh, atanh, exp2, log2, log10, cbrt,
//! erf, floor, ceil, round and trunc.
//!
//! Each is written once, generic over the element type (`f32`/`f64`, whose constants
//! and polynomial degrees come from [`MathFloat`]) and the pulp instruction set `S`.
//! The method is the classic one: range reduction, a polynomial on the reduced
//! argument, reconstruction, with special values (0, ±inf, NaN, subnormals, overflow)
//! fixed up with selects. The polynomials are Taylor series taken far enough that the
//! truncation error is below a tenth of an ulp on the reduced range, so the error is
//! that of the arithmetic: about 1 ulp for exp/ln/sin/cos, 2–3 for the composites.
//! The inverse trigonometric functions and erf take fdlibm's minimax coefficients and
//! ranges; log2, log10, exp2, asin, acos and atan2 carry the leading term's rounding
//! error (taken exactly with fma) to the end, and all of the later functions are within
//! 2 ulps of the correctly rounded result (measured against 160-bit references).
//!
//! sin, cos and tan reduce by Cody–Waite with a three-part pi/2, exact up to
//! [`MathFloat::TRIG_LIMIT`]; larger arguments (and inf/NaN) are left to the caller,
//! which recomputes those lanes with `std` (see [`trig_outside`]).

// fdlibm's coefficients are written as it prints them (21 digits), to be found there
#![allow(clippy::excessive_precision)]

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
    /// The sign bit of the representation.
    const SIGN_BIT: u64;
    /// `2^mantissa_bits`: every float of at least this magnitude is an integer, and below
    /// it `(a + INT_LIMIT) - INT_LIMIT` rounds `a >= 0` to an integer.
    const INT_LIMIT: f64;
    /// `atan t = t - t z P(z)`, `z = t^2`, for |t| <= 7/16: the coefficients of `P`.
    const ATAN_POLY: &'static [f64];
    /// atan(1/2), atan(1), atan(3/2) and atan(inf), each as a head and a tail.
    const ATAN_HI: [f64; 4];
    const ATAN_LO: [f64; 4];
    /// `asin x = x + x R(x^2)` for |x| <= 1/2 with `R(z) = z P(z) / Q(z)`.
    const ASIN_P: &'static [f64];
    const ASIN_Q: &'static [f64];
    /// `sinh r = r + r^3 * P(r^2)` for |r| < 1.
    const SINH_POLY: &'static [f64];
    /// sinh and cosh take `e^|x| / 2` with the exponent lowered by one beyond this (where
    /// `expm1(|x|)` overflows).
    const HYP_BIG: f64;
    /// asinh and acosh take `ln|x| + ln 2` from this on (`1 + x*x` may overflow beyond,
    /// and `x + 1 == x` here).
    const AHYP_BIG: f64;
    /// exp2's argument is clamped to this range: below it 2^x is 0, above it inf.
    const EXP2_MIN: f64;
    const EXP2_MAX: f64;
    /// ln 2 rounded to this type, and the rest.
    const LN2_SPLIT: [f64; 2];
    /// 1/ln 2 and 1/ln 10 rounded to this type, and the rest.
    const INV_LN2: [f64; 2];
    const INV_LN10: [f64; 2];
    /// log10(2) as a head short enough that its products with exponents are exact, and
    /// the rest.
    const LOG10_2_SPLIT: [f64; 2];
    /// Newton steps after cbrt's initial polynomial (each doubles the correct bits).
    const CBRT_STEPS: usize;
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

/// `1 / (2i+3)!`: the sinh series after `r`.
const SINH_SERIES: [f64; 9] = [
    1.0 / 6.0,
    1.0 / 120.0,
    1.0 / 5040.0,
    1.0 / 362880.0,
    1.0 / 39916800.0,
    1.0 / 6227020800.0,
    1.0 / 1307674368000.0,
    1.0 / 355687428096000.0,
    1.0 / 121645100408832000.0,
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
    const SIGN_BIT: u64 = 0x8000_0000;
    const INT_LIMIT: f64 = 8_388_608.0; // 2^23
    // musl's atanf
    const ATAN_POLY: &'static [f64] = &[
        3.3333328366e-01,
        -1.9999158382e-01,
        1.4253635705e-01,
        -1.0648017377e-01,
        6.1687607318e-02,
    ];
    const ATAN_HI: [f64; 4] = [
        f32::from_bits(0x3eed_6338) as f64,
        f32::from_bits(0x3f49_0fda) as f64,
        f32::from_bits(0x3f7b_985e) as f64,
        f32::from_bits(0x3fc9_0fda) as f64,
    ];
    const ATAN_LO: [f64; 4] = [
        f32::from_bits(0x31ac_3769) as f64,
        f32::from_bits(0x3322_2168) as f64,
        f32::from_bits(0x3314_0fb4) as f64,
        f32::from_bits(0x33a2_2168) as f64,
    ];
    // musl's asinf
    const ASIN_P: &'static [f64] = &[1.6666586697e-01, -4.2743422091e-02, -8.6563630030e-03];
    const ASIN_Q: &'static [f64] = &[1.0, -7.0662963390e-01];
    const SINH_POLY: &'static [f64] = SINH_SERIES.split_at(6).0;
    const HYP_BIG: f64 = 80.0;
    const AHYP_BIG: f64 = 1_073_741_824.0; // 2^30
    const EXP2_MIN: f64 = -160.0;
    const EXP2_MAX: f64 = 160.0;
    const LN2_SPLIT: [f64; 2] = split_f32(std::f64::consts::LN_2, 0.0);
    const INV_LN2: [f64; 2] = split_f32(INV_LN2_HI, INV_LN2_LO);
    const INV_LN10: [f64; 2] = split_f32(INV_LN10_HI, INV_LN10_LO);
    const LOG10_2_SPLIT: [f64; 2] = {
        // 12 significant bits: exponents have at most 9
        let hi = f32::from_bits((LOG10_2_HI as f32).to_bits() & 0xffff_f000) as f64;
        [hi, ((LOG10_2_HI - hi) + LOG10_2_LO) as f32 as f64]
    };
    const CBRT_STEPS: usize = 1;
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
    const SIGN_BIT: u64 = 0x8000_0000_0000_0000;
    const INT_LIMIT: f64 = 4_503_599_627_370_496.0; // 2^52
    // fdlibm's atan
    const ATAN_POLY: &'static [f64] = &[
        3.33333333333329318027e-01,
        -1.99999999998764832476e-01,
        1.42857142725034663711e-01,
        -1.11111104054623557880e-01,
        9.09088713343650656196e-02,
        -7.69187620504482999495e-02,
        6.66107313738753120669e-02,
        -5.83357013379057348645e-02,
        4.97687799461593236017e-02,
        -3.65315727442169155270e-02,
        1.62858201153657823623e-02,
    ];
    const ATAN_HI: [f64; 4] = [
        4.63647609000806093515e-01,
        std::f64::consts::FRAC_PI_4,
        9.82793723247329054082e-01,
        std::f64::consts::FRAC_PI_2,
    ];
    const ATAN_LO: [f64; 4] = [
        2.26987774529616870924e-17,
        3.06161699786838301793e-17,
        1.39033110312309984516e-17,
        6.12323399573676603587e-17,
    ];
    // fdlibm's asin
    const ASIN_P: &'static [f64] = &[
        1.66666666666666657415e-01,
        -3.25565818622400915405e-01,
        2.01212532134862925881e-01,
        -4.00555345006794114027e-02,
        7.91534994289814532176e-04,
        3.47933107596021167570e-05,
    ];
    const ASIN_Q: &'static [f64] = &[
        1.0,
        -2.40339491173441421878e+00,
        2.02094576023350569471e+00,
        -6.88283971605453293030e-01,
        7.70381505559019352791e-02,
    ];
    const SINH_POLY: &'static [f64] = &SINH_SERIES;
    const HYP_BIG: f64 = 700.0;
    const AHYP_BIG: f64 = 1_152_921_504_606_846_976.0; // 2^60
    const EXP2_MIN: f64 = -1100.0;
    const EXP2_MAX: f64 = 1100.0;
    const LN2_SPLIT: [f64; 2] = [std::f64::consts::LN_2, 2.3190468138462996e-17];
    const INV_LN2: [f64; 2] = [INV_LN2_HI, INV_LN2_LO];
    const INV_LN10: [f64; 2] = [INV_LN10_HI, INV_LN10_LO];
    // 33 significant bits: exponents have at most 11
    const LOG10_2_SPLIT: [f64; 2] = [LOG10_2_HI, LOG10_2_LO];
    const CBRT_STEPS: usize = 2;
}

/// 1/ln 2, 1/ln 10 and log10(2) in two parts (head rounded to f64; log10(2)'s head has
/// its low 20 bits cleared).
const INV_LN2_HI: f64 = std::f64::consts::LOG2_E;
const INV_LN2_LO: f64 = 2.0355273740931033e-17;
const INV_LN10_HI: f64 = std::f64::consts::LOG10_E;
const INV_LN10_LO: f64 = 1.098319650216765e-17;
const LOG10_2_HI: f64 = f64::from_bits(0x3fd3_4413_5090_0000);
const LOG10_2_LO: f64 = 5.630334806675098e-11;

/// `hi + lo` as an f32 head and an f32 tail.
const fn split_f32(hi: f64, lo: f64) -> [f64; 2] {
    let h = hi as f32 as f64;
    [h, ((hi - h) + lo) as f32 as f64]
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

/// `x = 2^k (1 + f)` with `1 + f` in `[sqrt(1/2), sqrt(2))` (subnormals scaled first), and
/// `ln(1 + f) = f - hfsq + sv * hr` (fdlibm): `(k, f, hfsq, sv, hr)`. For positive finite
/// `x`.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn ln_parts<S: Simd, T: MathFloat>(
    s: S,
    x: T::V<S>,
) -> (T::V<S>, T::V<S>, T::V<S>, T::V<S>, T::V<S>) {
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
    (k, f, hfsq, sv, T::vadd(s, hfsq, rr))
}

/// A logarithm's special values: +inf at +inf, -inf at ±0, NaN below 0 and for NaN.
#[inline(always)]
fn log_specials<S: Simd, T: MathFloat>(s: S, x: T::V<S>, y: T::V<S>) -> T::V<S> {
    let zero = c::<S, T>(s, 0.0);
    let inf = c::<S, T>(s, f64::INFINITY);
    let y = T::select(s, T::veq(s, x, inf), inf, y);
    let y = T::select(s, T::veq(s, x, zero), T::vneg(s, inf), y);
    T::select(s, T::vge(s, x, zero), y, c::<S, T>(s, f64::NAN))
}

/// Natural logarithm.
#[inline(always)]
pub(crate) fn ln<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let (k, f, hfsq, sv, hr) = ln_parts::<S, T>(s, x);
    let inner = T::vfma(s, sv, hr, T::vmul(s, k, c::<S, T>(s, T::LN2_LO)));
    let y = T::vfma(
        s,
        k,
        c::<S, T>(s, T::LN2_HI),
        T::vsub(s, f, T::vsub(s, hfsq, inner)),
    );
    log_specials::<S, T>(s, x, y)
}

/// `log_b(x) = k log_b(2) + ln(1 + f) / ln(b)` in extra precision: `ln(1 + f)` as a head
/// and a tail, times `1/ln b` in two parts, plus `k log_b(2) = kh + kl` (`kh` exact and
/// at least as large as the rest, or 0), rounded once at the end.
#[inline(always)]
fn log_base<S: Simd, T: MathFloat>(
    s: S,
    x: T::V<S>,
    inv_ln: [f64; 2],
    kh: impl Fn(T::V<S>) -> T::V<S>,
    kl: impl Fn(T::V<S>) -> T::V<S>,
) -> T::V<S> {
    let (k, f, hfsq, sv, hr) = ln_parts::<S, T>(s, x);
    let tail = T::vmul(s, sv, hr);
    // hfsq = (f*f)/2 rounded: its error, exactly
    let hfsq_err = T::vmul(
        s,
        c::<S, T>(s, 0.5),
        T::vfma(s, f, f, T::vneg(s, T::vmul(s, f, f))),
    );
    // ln(1 + f) = hi + lo: hi = f - hfsq, whose rounding error (f - hi) - hfsq is exact
    let hi = T::vsub(s, f, hfsq);
    let lo = T::vadd(
        s,
        T::vsub(s, T::vsub(s, T::vsub(s, f, hi), hfsq), hfsq_err),
        tail,
    );
    let ih = c::<S, T>(s, inv_ln[0]);
    let vh = T::vmul(s, hi, ih);
    let vl = T::vadd(
        s,
        T::vfma(s, hi, ih, T::vneg(s, vh)),
        T::vfma(s, hi, c::<S, T>(s, inv_ln[1]), T::vmul(s, lo, ih)),
    );
    // Fast2Sum: |kh| >= |vh| or kh = 0
    let kh = kh(k);
    let w = T::vadd(s, kh, vh);
    let err = T::vadd(s, T::vsub(s, kh, w), vh);
    let y = T::vadd(s, w, T::vadd(s, err, T::vadd(s, vl, kl(k))));
    log_specials::<S, T>(s, x, y)
}

/// Base-2 logarithm.
#[inline(always)]
pub(crate) fn log2<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    log_base::<S, T>(s, x, T::INV_LN2, |k| k, |_| c::<S, T>(s, 0.0))
}

/// Base-10 logarithm.
#[inline(always)]
pub(crate) fn log10<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    log_base::<S, T>(
        s,
        x,
        T::INV_LN10,
        |k| T::vmul(s, k, c::<S, T>(s, T::LOG10_2_SPLIT[0])),
        |k| T::vmul(s, k, c::<S, T>(s, T::LOG10_2_SPLIT[1])),
    )
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

/// Softplus `ln(1 + e^x)`, as `max(x, 0) + ln(1 + e^-|x|)`: `e^x` never overflows, and
/// for very negative `x` the result is `e^x` to the last digit (no `1 + tiny` rounding).
#[inline(always)]
pub(crate) fn softplus<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let z = exp::<S, T>(s, T::vneg(s, T::vabs(s, x)));
    let pos = T::vmax_raw(s, x, c::<S, T>(s, 0.0));
    keep_nan::<S, T>(s, x, T::vadd(s, pos, log1p::<S, T>(s, z)))
}

// ---------------------------------------------------------------------------------------
// Sign helpers, rounding, inverse trigonometric and hyperbolic functions, exp2, cbrt, erf

/// `x`'s sign as a float (`+0.0` or `-0.0`), to be put on a non-negative result with
/// `or_bits`.
#[inline(always)]
fn sign_of<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    T::xor_bits(s, x, T::vabs(s, x))
}

/// Whether `x`'s sign bit is set (so also for -0).
#[inline(always)]
fn sign_set<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::M<S> {
    quadrant_bit::<S, T>(s, x, T::SIGN_BIT)
}

/// 1 where `m`, else 0.
#[inline(always)]
fn one_if<S: Simd, T: MathFloat>(s: S, m: T::M<S>) -> T::V<S> {
    T::select(s, m, c::<S, T>(s, 1.0), c::<S, T>(s, 0.0))
}

/// Integer rounding: `(trunc |x|, ceil |x|, round |x|)` (round: half away from zero) for
/// |x| < INT_LIMIT, by `(a + 2^p) - 2^p` (ties to even) and a correction.
#[inline(always)]
fn round_parts<S: Simd, T: MathFloat>(s: S, a: T::V<S>) -> (T::V<S>, T::V<S>, T::V<S>) {
    let limit = c::<S, T>(s, T::INT_LIMIT);
    let even = T::vsub(s, T::vadd(s, a, limit), limit);
    let tr = T::vsub(s, even, one_if::<S, T>(s, T::vgt(s, even, a)));
    let ce = T::vadd(s, tr, one_if::<S, T>(s, T::vlt(s, tr, a)));
    // a - tr is exact
    let rd = T::vadd(
        s,
        tr,
        one_if::<S, T>(s, T::vge(s, T::vsub(s, a, tr), c::<S, T>(s, 0.5))),
    );
    (tr, ce, rd)
}

/// Which integer-valued function of [`rounded`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rounding {
    Floor,
    Ceil,
    Round,
    Trunc,
}

/// floor, ceil, round (half away from zero) or trunc, exact; zeros keep their sign, as do
/// results rounded to zero (`ceil(-0.5) = -0`); inf and NaN are returned as they are.
#[inline(always)]
pub(crate) fn rounded<S: Simd, T: MathFloat>(s: S, x: T::V<S>, mode: Rounding) -> T::V<S> {
    let a = T::vabs(s, x);
    let (tr, ce, rd) = round_parts::<S, T>(s, a);
    let neg = sign_set::<S, T>(s, x);
    let r = match mode {
        Rounding::Trunc => tr,
        Rounding::Round => rd,
        // floor(-a) = -ceil(a), ceil(-a) = -floor(a)
        Rounding::Floor => T::select(s, neg, ce, tr),
        Rounding::Ceil => T::select(s, neg, tr, ce),
    };
    let r = T::or_bits(s, r, sign_of::<S, T>(s, x));
    // from INT_LIMIT on (and inf, NaN) x is its own value
    T::select(s, T::vlt(s, a, c::<S, T>(s, T::INT_LIMIT)), r, x)
}

/// atan(a) for a >= 0 (NaN stays NaN), fdlibm's method: `a` is mapped to |t| <= 7/16
/// around 0, 1/2, 1, 3/2 or inf (`atan a = atan(c) + atan t`), then an odd polynomial.
/// `extra`, a correction below the result's last bit, is added to the tail. Lanes in
/// `reflect` get `pi - atan(a)` instead, rounded once (for atan2).
#[inline(always)]
fn atan_abs<S: Simd, T: MathFloat>(s: S, a: T::V<S>, extra: T::V<S>, reflect: T::M<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    // from the top range down: t = num / den, atan a = hi + lo + atan t
    let mut num = c::<S, T>(s, -1.0);
    let mut den = a;
    let mut hi = c::<S, T>(s, T::ATAN_HI[3]);
    let mut lo = c::<S, T>(s, T::ATAN_LO[3]);
    let m = T::vlt(s, a, c::<S, T>(s, 39.0 / 16.0));
    num = T::select(s, m, T::vsub(s, a, c::<S, T>(s, 1.5)), num);
    den = T::select(s, m, T::vfma(s, a, c::<S, T>(s, 1.5), one), den);
    hi = T::select(s, m, c::<S, T>(s, T::ATAN_HI[2]), hi);
    lo = T::select(s, m, c::<S, T>(s, T::ATAN_LO[2]), lo);
    let m = T::vlt(s, a, c::<S, T>(s, 19.0 / 16.0));
    num = T::select(s, m, T::vsub(s, a, one), num);
    den = T::select(s, m, T::vadd(s, a, one), den);
    hi = T::select(s, m, c::<S, T>(s, T::ATAN_HI[1]), hi);
    lo = T::select(s, m, c::<S, T>(s, T::ATAN_LO[1]), lo);
    let m = T::vlt(s, a, c::<S, T>(s, 11.0 / 16.0));
    num = T::select(s, m, T::vfma(s, a, c::<S, T>(s, 2.0), T::vneg(s, one)), num);
    den = T::select(s, m, T::vadd(s, a, c::<S, T>(s, 2.0)), den);
    hi = T::select(s, m, c::<S, T>(s, T::ATAN_HI[0]), hi);
    lo = T::select(s, m, c::<S, T>(s, T::ATAN_LO[0]), lo);
    let m = T::vlt(s, a, c::<S, T>(s, 7.0 / 16.0));
    num = T::select(s, m, a, num);
    den = T::select(s, m, one, den);
    let zero = c::<S, T>(s, 0.0);
    hi = T::select(s, m, zero, hi);
    lo = T::select(s, m, zero, lo);
    let t = T::vdiv(s, num, den);
    let lo = T::vadd(s, lo, extra);
    let z = T::vmul(s, t, t);
    let tp = T::vmul(s, T::vmul(s, t, z), poly::<S, T>(s, z, T::ATAN_POLY));
    let y = T::vsub(s, hi, T::vsub(s, T::vsub(s, tp, lo), t));
    if !T::any(s, reflect) {
        return y;
    }
    // pi - (hi + lo + t - tp): pi - hi by Fast2Sum (pi > hi), the rest as a tail
    let pi_hi = c::<S, T>(s, 2.0 * T::ATAN_HI[3]);
    let d = T::vsub(s, pi_hi, hi);
    let err = T::vsub(s, T::vsub(s, pi_hi, d), hi);
    let tail = T::vadd(
        s,
        T::vsub(s, T::vadd(s, err, c::<S, T>(s, 2.0 * T::ATAN_LO[3])), lo),
        T::vsub(s, tp, t),
    );
    T::select(s, reflect, T::vadd(s, d, tail), y)
}

/// Arc tangent.
#[inline(always)]
pub(crate) fn atan<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let zero = c::<S, T>(s, 0.0);
    let y = atan_abs::<S, T>(s, T::vabs(s, x), zero, T::vlt(s, zero, zero));
    keep_nan::<S, T>(s, x, T::or_bits(s, y, sign_of::<S, T>(s, x)))
}

/// `atan2(y, x)`, the angle of the point `(x, y)`, as `f64::atan2` on signed zeros and
/// infinities: `atan(|y| / |x|)` (the quotient's rounding error corrected to first
/// order), reflected to `pi - atan` when `x`'s sign bit is set, with `y`'s sign.
#[inline(always)]
pub(crate) fn atan2<S: Simd, T: MathFloat>(s: S, y: T::V<S>, x: T::V<S>) -> T::V<S> {
    let zero = c::<S, T>(s, 0.0);
    let one = c::<S, T>(s, 1.0);
    let inf = c::<S, T>(s, f64::INFINITY);
    let (ax, ay) = (T::vabs(s, x), T::vabs(s, y));
    let q = T::vdiv(s, ay, ax);
    // q's rounding error: (ay - q ax) / ax, and atan(q + e) = atan q + e / (1 + q^2)
    let e = T::vdiv(s, T::vfma(s, T::vneg(s, q), ax, ay), ax);
    let e = T::vdiv(s, e, T::vfma(s, q, q, one));
    let finite = T::mask_and(s, T::vlt(s, ax, inf), T::vlt(s, ay, inf));
    let normal = T::mask_and(s, finite, T::vgt(s, q, zero));
    let e = T::select(s, T::mask_and(s, normal, T::vlt(s, q, inf)), e, zero);
    // 0/0 and inf/inf
    let q = T::select(
        s,
        T::mask_and(s, T::veq(s, ax, zero), T::veq(s, ay, zero)),
        zero,
        q,
    );
    let q = T::select(
        s,
        T::mask_and(s, T::veq(s, ax, inf), T::veq(s, ay, inf)),
        one,
        q,
    );
    // x < 0 or -0: pi - atan(q)
    let r = atan_abs::<S, T>(s, q, e, sign_set::<S, T>(s, x));
    let r = T::or_bits(s, r, sign_of::<S, T>(s, y));
    // NaN in either
    T::select(
        s,
        T::mask_and(s, T::veq(s, x, x), T::veq(s, y, y)),
        r,
        T::vadd(s, x, y),
    )
}

/// `R(z) = z P(z) / Q(z)`: `asin x = x + x R(x^2)` for |x| <= 1/2.
#[inline(always)]
fn asin_r<S: Simd, T: MathFloat>(s: S, z: T::V<S>) -> T::V<S> {
    T::vdiv(
        s,
        T::vmul(s, z, poly::<S, T>(s, z, T::ASIN_P)),
        poly::<S, T>(s, z, T::ASIN_Q),
    )
}

/// `sqrt(z)` and its rounding error (`sqrt(z) = s + lo` to about twice the precision).
#[inline(always)]
fn sqrt2<S: Simd, T: MathFloat>(s: S, z: T::V<S>) -> (T::V<S>, T::V<S>) {
    let r = T::vsqrt(s, z);
    let res = T::vfma(s, T::vneg(s, r), r, z);
    let lo = T::vdiv(s, res, T::vadd(s, r, r));
    (
        r,
        T::select(s, T::vgt(s, r, c::<S, T>(s, 0.0)), lo, c::<S, T>(s, 0.0)),
    )
}

/// Arc sine (NaN beyond ±1): fdlibm's method, `x + x R(x^2)` below 1/2, and
/// `pi/2 - 2 asin(sqrt((1 - |x|) / 2))` above, with the square root in two parts.
#[inline(always)]
pub(crate) fn asin<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let a = T::vabs(s, x);
    let half = c::<S, T>(s, 0.5);
    let small = T::vlt(s, a, half);
    let zb = T::vmul(s, T::vsub(s, c::<S, T>(s, 1.0), a), half);
    let z = T::select(s, small, T::vmul(s, a, a), zb);
    let r = asin_r::<S, T>(s, z);
    let y_small = T::vfma(s, a, r, a);
    // pi/2 - 2 (sq + sq_lo + sq r): pi/2 - 2 sq by Fast2Sum (2 sq <= 1)
    let (sq, sq_lo) = sqrt2::<S, T>(s, zb);
    let pio2 = c::<S, T>(s, T::PIO2[0]);
    let two_sq = T::vadd(s, sq, sq);
    let t = T::vsub(s, pio2, two_sq);
    let err = T::vsub(s, T::vsub(s, pio2, t), two_sq);
    let w = T::vfma(s, sq, r, sq_lo);
    let tail = T::vsub(
        s,
        T::vadd(s, err, c::<S, T>(s, T::PIO2[1])),
        T::vadd(s, w, w),
    );
    let y_big = T::vadd(s, t, tail);
    let y = T::select(s, small, y_small, y_big);
    keep_nan::<S, T>(s, x, T::or_bits(s, y, sign_of::<S, T>(s, x)))
}

/// Arc cosine (NaN beyond ±1): fdlibm's method, `pi/2 - asin x` below 1/2 in magnitude,
/// `2 asin(sqrt((1 - x) / 2))` above 1/2 and `pi - 2 asin(sqrt((1 + x) / 2))` below -1/2.
#[inline(always)]
pub(crate) fn acos<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let a = T::vabs(s, x);
    let half = c::<S, T>(s, 0.5);
    let small = T::vlt(s, a, half);
    let zb = T::vmul(s, T::vsub(s, c::<S, T>(s, 1.0), a), half);
    let z = T::select(s, small, T::vmul(s, x, x), zb);
    let r = asin_r::<S, T>(s, z);
    let (pio2_hi, pio2_lo) = (c::<S, T>(s, T::PIO2[0]), c::<S, T>(s, T::PIO2[1]));
    // pi/2 - (x + x r)
    let y_small = T::vsub(
        s,
        pio2_hi,
        T::vsub(s, x, T::vfma(s, T::vneg(s, x), r, pio2_lo)),
    );
    // asin(sq) = sq + w
    let (sq, sq_lo) = sqrt2::<S, T>(s, zb);
    let w = T::vfma(s, sq, r, sq_lo);
    let y_pos = T::vmul(s, c::<S, T>(s, 2.0), T::vadd(s, sq, w));
    // pi - 2 (sq + w): pi - 2 sq by Fast2Sum (2 sq <= 1)
    let pi_hi = c::<S, T>(s, 2.0 * T::PIO2[0]);
    let two_sq = T::vadd(s, sq, sq);
    let t = T::vsub(s, pi_hi, two_sq);
    let err = T::vsub(s, T::vsub(s, pi_hi, t), two_sq);
    let tail = T::vsub(
        s,
        T::vadd(s, err, c::<S, T>(s, 2.0 * T::PIO2[1])),
        T::vadd(s, w, w),
    );
    let y_neg = T::vadd(s, t, tail);
    let y_big = T::select(s, T::vlt(s, x, c::<S, T>(s, 0.0)), y_neg, y_pos);
    keep_nan::<S, T>(s, x, T::select(s, small, y_small, y_big))
}

/// `e^a / 2` for `a >= HYP_BIG` (sinh and cosh there): exp's method with the exponent
/// lowered by one, so that it overflows only where the result does.
#[inline(always)]
fn half_exp_big<S: Simd, T: MathFloat>(s: S, a: T::V<S>) -> T::V<S> {
    let xc = T::vmin_raw(s, a, c::<S, T>(s, T::EXP_MAX + 1.0));
    let (n, r) = exp_reduce::<S, T>(s, xc);
    let er = T::vadd(s, expm1_poly::<S, T>(s, r), c::<S, T>(s, 1.0));
    let n = T::vsub(s, n, c::<S, T>(s, 1.0));
    let (n1, _) = round_magic::<S, T>(s, T::vmul(s, n, c::<S, T>(s, 0.5)));
    let n2 = T::vsub(s, n, n1);
    T::vmul(s, T::vmul(s, er, T::pow2i(s, n1)), T::pow2i(s, n2))
}

/// `ln(2^j (1 + v))` (`j` an integer-valued vector) to about an ulp: `1 + v` rounded, and
/// its rounding error `c` put back as `ln(u + c) = ln u + c / u` (fdlibm's log1p). For the
/// inverse hyperbolic functions (the plain [`log1p`] is 2 ulps).
#[inline(always)]
fn log1p_scaled<S: Simd, T: MathFloat>(s: S, v: T::V<S>, j: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    let u = T::vadd(s, one, v);
    let cu = T::vdiv(s, T::vsub(s, v, T::vsub(s, u, one)), u);
    let (k, f, hfsq, sv, hr) = ln_parts::<S, T>(s, u);
    let k = T::vadd(s, k, j);
    let low = T::vfma(s, k, c::<S, T>(s, T::LN2_LO), cu);
    let y = T::vfma(
        s,
        k,
        c::<S, T>(s, T::LN2_HI),
        T::vsub(s, f, T::vsub(s, hfsq, T::vfma(s, sv, hr, low))),
    );
    // near 0, where the correction is as large as the rest: two terms of the series
    let tiny = c::<S, T>(s, Float::to_f64(T::epsilon()).sqrt() * 0.25);
    let series = T::vfma(s, T::vmul(s, c::<S, T>(s, -0.5), v), v, v);
    let y = T::select(s, T::vlt(s, T::vabs(s, v), tiny), series, y);
    keep_nan::<S, T>(s, v, log_specials::<S, T>(s, u, y))
}

/// Hyperbolic sine: its Taylor series below 1, `(t + t / (t + 1)) / 2` with
/// `t = expm1|x|` above (no cancellation), `e^|x| / 2` beyond HYP_BIG; odd.
#[inline(always)]
pub(crate) fn sinh<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    let a = T::vabs(s, x);
    let big_at = c::<S, T>(s, T::HYP_BIG);
    let t = expm1::<S, T>(s, T::vmin_raw(s, a, big_at));
    let y = T::vmul(
        s,
        c::<S, T>(s, 0.5),
        T::vadd(s, t, T::vdiv(s, t, T::vadd(s, t, one))),
    );
    let z = T::vmul(s, a, a);
    let series = T::vfma(s, T::vmul(s, a, z), poly::<S, T>(s, z, T::SINH_POLY), a);
    let y = T::select(s, T::vlt(s, a, one), series, y);
    let big = T::vgt(s, a, big_at);
    let y = if T::any(s, big) {
        T::select(s, big, half_exp_big::<S, T>(s, a), y)
    } else {
        y
    };
    keep_nan::<S, T>(s, x, T::or_bits(s, y, sign_of::<S, T>(s, x)))
}

/// Hyperbolic cosine: `1 + t^2 / (2 (1 + t))` with `t = expm1|x|` below 1, else
/// `(e + 1/e) / 2` with `e = exp|x|`.
#[inline(always)]
pub(crate) fn cosh<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    let half = c::<S, T>(s, 0.5);
    let a = T::vabs(s, x);
    let big_at = c::<S, T>(s, T::HYP_BIG);
    let small = T::vlt(s, a, one);
    let t = expm1::<S, T>(s, T::vmin_raw(s, a, one));
    let y_small = T::vadd(
        s,
        one,
        T::vdiv(
            s,
            T::vmul(s, t, t),
            T::vmul(s, c::<S, T>(s, 2.0), T::vadd(s, t, one)),
        ),
    );
    let e = exp::<S, T>(s, T::vmin_raw(s, a, big_at));
    let y_mid = T::vfma(s, half, e, T::vdiv(s, half, e));
    let y = T::select(s, small, y_small, y_mid);
    let big = T::vgt(s, a, big_at);
    let y = if T::any(s, big) {
        T::select(s, big, half_exp_big::<S, T>(s, a), y)
    } else {
        y
    };
    keep_nan::<S, T>(s, x, y)
}

/// Inverse hyperbolic sine (musl's method): `log1p(a + a^2 / (sqrt(a^2 + 1) + 1))`,
/// `a = |x|`, below 2, `ln(2a + 1 / (sqrt(a^2 + 1) + a))` up to AHYP_BIG, and `ln(2a)`
/// beyond; odd.
#[inline(always)]
pub(crate) fn asinh<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    let a = T::vabs(s, x);
    let big = T::vge(s, a, c::<S, T>(s, T::AHYP_BIG));
    let a2 = T::vmul(s, a, a);
    let r = T::vsqrt(s, T::vadd(s, a2, one));
    let v_small = T::vadd(s, a, T::vdiv(s, a2, T::vadd(s, r, one)));
    // (2a + ...) - 1 is exact below 2^mantissa_bits, so log1p_scaled gives ln(2a + ...)
    let v_mid = T::vsub(
        s,
        T::vadd(s, T::vadd(s, a, a), T::vdiv(s, one, T::vadd(s, r, a))),
        one,
    );
    let v = T::select(s, T::vlt(s, a, c::<S, T>(s, 2.0)), v_small, v_mid);
    // big: ln(2a) = ln(2 (1 + a)) as 1 + a rounds to a
    let v = T::select(s, big, a, v);
    let y = log1p_scaled::<S, T>(s, v, one_if::<S, T>(s, big));
    keep_nan::<S, T>(s, x, T::or_bits(s, y, sign_of::<S, T>(s, x)))
}

/// Inverse hyperbolic cosine (NaN below 1; musl's method): `log1p(t + sqrt(2t + t^2))`,
/// `t = x - 1` (exact), below 2, `ln(2x - 1 / (x + sqrt(x^2 - 1)))` up to AHYP_BIG, and
/// `ln(2x)` beyond.
#[inline(always)]
pub(crate) fn acosh<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    let t = T::vsub(s, x, one);
    let big = T::vge(s, x, c::<S, T>(s, T::AHYP_BIG));
    let v_small = T::vadd(s, t, T::vsqrt(s, T::vfma(s, t, t, T::vadd(s, t, t))));
    let r = T::vsqrt(s, T::vfma(s, x, x, T::vneg(s, one)));
    let v_mid = T::vsub(
        s,
        T::vsub(s, T::vadd(s, x, x), T::vdiv(s, one, T::vadd(s, x, r))),
        one,
    );
    let v = T::select(s, T::vlt(s, x, c::<S, T>(s, 2.0)), v_small, v_mid);
    let v = T::select(s, big, x, v);
    let y = log1p_scaled::<S, T>(s, v, one_if::<S, T>(s, big));
    T::select(s, T::vge(s, x, one), y, c::<S, T>(s, f64::NAN))
}

/// Inverse hyperbolic tangent (±inf at ±1, NaN beyond): `log1p(2a + 2a^2 / (1 - a)) / 2`
/// below 1/2, `log1p(2a / (1 - a)) / 2` above; odd.
#[inline(always)]
pub(crate) fn atanh<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let a = T::vabs(s, x);
    let one_m = T::vsub(s, c::<S, T>(s, 1.0), a);
    let a2 = T::vadd(s, a, a);
    let v_small = T::vadd(s, a2, T::vdiv(s, T::vmul(s, a2, a), one_m));
    let v_big = T::vdiv(s, a2, one_m);
    let v = T::select(s, T::vlt(s, a, c::<S, T>(s, 0.5)), v_small, v_big);
    let y = T::vmul(
        s,
        c::<S, T>(s, 0.5),
        log1p_scaled::<S, T>(s, v, c::<S, T>(s, 0.0)),
    );
    keep_nan::<S, T>(s, x, T::or_bits(s, y, sign_of::<S, T>(s, x)))
}

/// `2^x`: `x = n + f`, |f| <= 1/2 (exact), `2^f = e^(f ln 2)` with `f ln 2` in two parts.
#[inline(always)]
pub(crate) fn exp2<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let xc = T::vmin_raw(
        s,
        T::vmax_raw(s, x, c::<S, T>(s, T::EXP2_MIN)),
        c::<S, T>(s, T::EXP2_MAX),
    );
    let (n, _) = round_magic::<S, T>(s, xc);
    let f = T::vsub(s, xc, n);
    let ln2 = c::<S, T>(s, T::LN2_SPLIT[0]);
    let r = T::vmul(s, f, ln2);
    let r_lo = T::vfma(
        s,
        f,
        c::<S, T>(s, T::LN2_SPLIT[1]),
        T::vfma(s, f, ln2, T::vneg(s, r)),
    );
    // e^(r + r_lo) = (1 + p) (1 + r_lo) to working precision
    let p = expm1_poly::<S, T>(s, r);
    let er = T::vadd(s, c::<S, T>(s, 1.0), T::vadd(s, p, r_lo));
    let (n1, _) = round_magic::<S, T>(s, T::vmul(s, n, c::<S, T>(s, 0.5)));
    let n2 = T::vsub(s, n, n1);
    let y = T::vmul(s, T::vmul(s, er, T::pow2i(s, n1)), T::pow2i(s, n2));
    keep_nan::<S, T>(s, x, y)
}

/// `cbrt(1 + u)` for `1 + u` in `[sqrt(1/2), sqrt(2))` to 1.7e-6 (a Chebyshev fit), for
/// Newton's method to refine.
const CBRT_POLY: [f64; 6] = [
    0.9999993678990572,
    0.3333156983820573,
    -0.1109991299000806,
    0.06245642574018044,
    -0.044382788167373656,
    0.02558249249888905,
];

/// 2^(1/3) and 2^(-1/3).
const CBRT_2: f64 = 1.2599210498948732;
const CBRT_HALF: f64 = 0.7937005259840998;

/// Cube root: `|x| = m 2^(3q + r)`, `r` in {-1, 0, 1}, `cbrt(m 2^r)` from a polynomial in
/// `m` and Newton steps (the last with the residual `y^3 - m 2^r` computed almost
/// exactly), times `2^q`; odd, ±0, ±inf and NaN are their own cube roots.
#[inline(always)]
pub(crate) fn cbrt<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let zero = c::<S, T>(s, 0.0);
    let one = c::<S, T>(s, 1.0);
    let a = T::vabs(s, x);
    let sub = T::vlt(s, a, c::<S, T>(s, Float::to_f64(T::min_positive_value())));
    let scaled = T::select(s, sub, T::vmul(s, a, c::<S, T>(s, T::SUBNORMAL_SCALE)), a);
    let (m, k) = T::split_exponent(s, scaled);
    let k = T::vsub(
        s,
        k,
        T::select(s, sub, c::<S, T>(s, T::SUBNORMAL_SCALE_LOG2), zero),
    );
    let (q, _) = round_magic::<S, T>(s, T::vmul(s, k, c::<S, T>(s, 1.0 / 3.0)));
    let r = T::vfma(s, q, c::<S, T>(s, -3.0), k);
    let up = T::vgt(s, r, zero);
    let down = T::vlt(s, r, zero);
    let mm = T::select(
        s,
        up,
        T::vadd(s, m, m),
        T::select(s, down, T::vmul(s, m, c::<S, T>(s, 0.5)), m),
    );
    let scale = T::select(
        s,
        up,
        c::<S, T>(s, CBRT_2),
        T::select(s, down, c::<S, T>(s, CBRT_HALF), one),
    );
    let mut y = T::vmul(s, poly::<S, T>(s, T::vsub(s, m, one), &CBRT_POLY), scale);
    for _ in 0..T::CBRT_STEPS {
        // y -= (y^3 - mm) / (3 y^2), y^3 - mm from y^2 in two parts
        let y2 = T::vmul(s, y, y);
        let y2_lo = T::vfma(s, y, y, T::vneg(s, y2));
        let res = T::vfma(s, y2_lo, y, T::vfma(s, y2, y, T::vneg(s, mm)));
        y = T::vsub(s, y, T::vdiv(s, res, T::vmul(s, y2, c::<S, T>(s, 3.0))));
    }
    let y = T::vmul(s, y, T::pow2i(s, q));
    let y = T::or_bits(s, y, sign_of::<S, T>(s, x));
    // 0, inf and NaN
    let special = T::mask_not(
        s,
        T::mask_and(
            s,
            T::vgt(s, a, zero),
            T::vlt(s, a, c::<S, T>(s, f64::INFINITY)),
        ),
    );
    T::select(s, special, x, y)
}

// The error function, fdlibm's coefficients (f32 uses them rounded, as its erff does).

/// `erf x = x + x PP(z) / QQ(z)`, `z = x^2`, for |x| < 0.84375.
const ERF_PP: [f64; 5] = [
    1.28379167095512558561e-01,
    -3.25042107247001499370e-01,
    -2.84817495755985104766e-02,
    -5.77027029648944159157e-03,
    -2.37630166566501626084e-05,
];
const ERF_QQ: [f64; 6] = [
    1.0,
    3.97917223959155352819e-01,
    6.50222499887672944485e-02,
    5.08130628187576562776e-03,
    1.32494738004321644526e-04,
    -3.96022827877536812320e-06,
];
/// `erf x = ERX + PA(s) / QA(s)`, `s = |x| - 1`, for 0.84375 <= |x| < 1.25.
const ERF_ERX: f64 = 8.45062911510467529297e-01;
const ERF_PA: [f64; 7] = [
    -2.36211856075265944077e-03,
    4.14856118683748331666e-01,
    -3.72207876035701323847e-01,
    3.18346619901161753674e-01,
    -1.10894694282396677476e-01,
    3.54783043256182359371e-02,
    -2.16637559486879084300e-03,
];
const ERF_QA: [f64; 7] = [
    1.0,
    1.06420880400844228286e-01,
    5.40397917702171048937e-01,
    7.18286544141962662868e-02,
    1.26171219808761642112e-01,
    1.36370839120290507362e-02,
    1.19844998467991074170e-02,
];
/// `erfc x = exp(-x^2 - 0.5625 + R(s) / S(s)) / x`, `s = 1/x^2`: RA/SA for
/// 1.25 <= x < 1/0.35, RB/SB from there to 6.
const ERF_RA: [f64; 8] = [
    -9.86494403484714822705e-03,
    -6.93858572707181764372e-01,
    -1.05586262253232909814e+01,
    -6.23753324503260060396e+01,
    -1.62396669462573470355e+02,
    -1.84605092906711035994e+02,
    -8.12874355063065934246e+01,
    -9.81432934416914548592e+00,
];
const ERF_SA: [f64; 9] = [
    1.0,
    1.96512716674392571292e+01,
    1.37657754143519042600e+02,
    4.34565877475229228821e+02,
    6.45387271733267880336e+02,
    4.29008140027567833386e+02,
    1.08635005541779435134e+02,
    6.57024977031928170135e+00,
    -6.04244152148580987438e-02,
];
const ERF_RB: [f64; 7] = [
    -9.86494292470009928597e-03,
    -7.99283237680523006574e-01,
    -1.77579549177547519889e+01,
    -1.60636384855821916062e+02,
    -6.37566443368389627722e+02,
    -1.02509513161107724954e+03,
    -4.83519191608651397019e+02,
];
const ERF_SB: [f64; 8] = [
    1.0,
    3.03380607434824582924e+01,
    3.25792512996573918826e+02,
    1.53672958608443695994e+03,
    3.19985821950859553908e+03,
    2.55305040643316442583e+03,
    4.74528541206955367215e+02,
    -2.24409524465858183362e+01,
];

/// The error function `erf x = 2/sqrt(pi) * integral of e^(-t^2) from 0 to x`: fdlibm's
/// three ranges (a rational function of x^2 below 0.84375, of |x| - 1 to 1.25, and
/// `1 - erfc` with erfc from exp and a rational function of 1/x^2 beyond), about 1 ulp;
/// odd, ±1 at ±inf. Ranges no lane needs are skipped.
#[inline(always)]
pub(crate) fn erf<S: Simd, T: MathFloat>(s: S, x: T::V<S>) -> T::V<S> {
    let one = c::<S, T>(s, 1.0);
    let a = T::vabs(s, x);
    let small = T::vlt(s, a, c::<S, T>(s, 0.84375));
    let mid = T::vlt(s, a, c::<S, T>(s, 1.25));
    let z = T::vmul(s, a, a);
    let pq = T::vdiv(s, poly::<S, T>(s, z, &ERF_PP), poly::<S, T>(s, z, &ERF_QQ));
    let mut y = T::vfma(s, a, pq, a);
    if T::any(s, T::mask_not(s, small)) {
        let sm = T::vsub(s, a, one);
        let y_mid = T::vadd(
            s,
            c::<S, T>(s, ERF_ERX),
            T::vdiv(
                s,
                poly::<S, T>(s, sm, &ERF_PA),
                poly::<S, T>(s, sm, &ERF_QA),
            ),
        );
        let mut y_big = one;
        if T::any(s, T::mask_not(s, mid)) {
            // beyond 6, erf rounds to 1: clamp there (inf and NaN too; NaN is put back)
            let ac = T::vmin_raw(s, a, c::<S, T>(s, 6.0));
            let w = T::vdiv(s, one, T::vmul(s, ac, ac));
            let near = T::vlt(s, ac, c::<S, T>(s, 1.0 / 0.35));
            let rs_a = T::vdiv(s, poly::<S, T>(s, w, &ERF_RA), poly::<S, T>(s, w, &ERF_SA));
            let rs_b = T::vdiv(s, poly::<S, T>(s, w, &ERF_RB), poly::<S, T>(s, w, &ERF_SB));
            let rs = T::select(s, near, rs_a, rs_b);
            let arg = T::vadd(
                s,
                T::vsub(s, T::vneg(s, T::vmul(s, ac, ac)), c::<S, T>(s, 0.5625)),
                rs,
            );
            let erfc = T::vdiv(s, exp::<S, T>(s, arg), ac);
            y_big = T::vsub(s, one, erfc);
        }
        y = T::select(s, small, y, T::select(s, mid, y_mid, y_big));
    }
    keep_nan::<S, T>(s, x, T::or_bits(s, y, sign_of::<S, T>(s, x)))
}
