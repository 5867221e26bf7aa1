//! WGSL shared by the generated kernels: parameter access and the float functions WGSL
//! lacks or leaves undefined where the CPU kernels define them (NaN tests that survive
//! fast-math, `pow` of negative bases, `log1p`, `expm1`, a `tanh` that does not overflow).
//!
//! `exp`, `ln`, `sin`, `cos` and `tan` are ferrax's own (range reduction and polynomials
//! from IEEE arithmetic alone), within 2-3 ulps of the CPU's: Vulkan lets a driver's
//! builtins be far less accurate (NVIDIA's `sin(-100.0)` is off by 7e-6, its `exp` and
//! `log` are hardware approximations), and the results must not depend on the GPU. So are
//! asin, acos, atan, atan2, sinh, cosh, asinh, acosh, atanh, exp2, log2, log10, cbrt and
//! erf (within 2e-7 relative): on Mesa's lavapipe the builtins are off by up to 4e-4
//! (asin), 7e-4 (log2 near 1), 2e-5 (atan, atan2), all digits (atanh near 0) or overflow
//! early (sinh, cosh, asinh, acosh). Only floor, ceil and trunc are the builtins (exact);
//! WGSL's round takes halves to even, so `round_` is ours.

/// Every kernel's first binding: `params`, the dispatch's parameters as u32 words in a
/// uniform buffer (one 256-byte slot), read with `word(i)`.
pub(crate) const PARAMS: &str = r#"
@group(0) @binding(0) var<uniform> params: array<vec4<u32>, 16>;
fn word(i: u32) -> u32 { return params[i >> 2u][i & 3u]; }
"#;

/// Float helpers.
pub(crate) const MATH: &str = r#"
fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn nan() -> f32 { return bitcast<f32>(0x7fc00000u); }
fn inf() -> f32 { return bitcast<f32>(0x7f800000u); }
fn is_finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }
fn max_nan(a: f32, b: f32) -> f32 { if (is_nan(a) || is_nan(b)) { return nan(); } return max(a, b); }
fn min_nan(a: f32, b: f32) -> f32 { if (is_nan(a) || is_nan(b)) { return nan(); } return min(a, b); }
fn relu_(x: f32) -> f32 { if (x > 0.0 || is_nan(x)) { return x; } return 0.0; }
fn sign_(x: f32) -> f32 { if (x > 0.0) { return 1.0; } if (x < 0.0) { return -1.0; } return x; }
// The transcendental functions below use only IEEE arithmetic, fma and bit operations:
// Vulkan lets a driver's builtin exp, log, sin and cos be far less accurate than the
// CPU's (NVIDIA's sin(-100) is off by 7e-6), so every kernel computes them itself.
// ln of a positive finite x: x = 2^e m with m in [sqrt(1/2), sqrt(2)), then musl's logf
// (ln(1 + f) = 2 atanh(f / (2 + f)) through a minimax polynomial), below 1 ulp.
fn ln_core(x0: f32) -> f32 {
    var x = x0;
    var e = 0;
    if (x < 1.17549435e-38) { x = x * 33554432.0; e = -25; } // subnormal: scale by 2^25
    var bits = bitcast<u32>(x) + (0x3f800000u - 0x3f3504f3u);
    e = e + i32(bits >> 23u) - 127;
    bits = (bits & 0x007fffffu) + 0x3f3504f3u;
    return ln_poly(bitcast<f32>(bits) - 1.0, e);
}
// ln(2^e (1 + f)) for f in [sqrt(1/2) - 1, sqrt(2) - 1]
fn ln_poly(f: f32, e: i32) -> f32 {
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let r = z * (0.66666662693 + w * 0.28498786688) + w * (0.40000972152 + w * 0.24279078841);
    let hfsq = 0.5 * f * f;
    let dk = f32(e);
    return s * (hfsq + r) + dk * 9.0580006145e-06 - hfsq + f + dk * 0.69313812256;
}
fn ln_(x: f32) -> f32 {
    if (x == 0.0) { return -inf(); }
    if (x < 0.0 || is_nan(x)) { return nan(); }
    if (x == inf()) { return x; }
    return ln_core(x);
}
// e^x for x in [-104, 88.8]: x = k ln2 + r with |r| <= ln2 / 2 (ln2 in two parts), e^r
// by its Taylor polynomial to r^7 (truncation below 1e-8), times 2^k in two steps.
fn exp_core(x: f32) -> f32 {
    let k = round(x * 1.44269504);
    var r = fma(-k, 0.693145751953125, x);
    r = fma(-k, 1.428606765330187e-06, r);
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.16666667 + r * (0.041666668 + r * (0.008333334 + r * (0.0013888889 + r * 0.0001984127))))));
    let ki = i32(k);
    let h = ki / 2;
    return ldexp(ldexp(p, h), ki - h);
}
fn exp_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    if (x > 88.8) { return inf(); }
    if (x < -104.0) { return 0.0; }
    return exp_core(x);
}
// x = k pi/2 + r with |r| <= pi/4 (about), for finite x. Returns (r, k); only k mod 4
// matters. Below 2^24: Cody-Waite with pi/2 in five parts of at most 12 significant bits
// and k split into its high and low 12 bits, so that every product is exact and each
// difference is exact or rounds once near r: r comes out within 2 ulps whether or not the
// driver fuses multiply-adds (lavapipe does not). k is rounded from x * 2/pi computed in
// two parts (x's top 12 bits times 2/pi's top 12 bits is exact), so |r| stays within pi/4.
// From 2^24: Payne-Hanek, below.
fn reduce_(x: f32) -> vec2<f32> {
    if (abs(x) >= 16777216.0) {
        let rk = reduce_big(abs(x));
        if (x < 0.0) { return -rk; }
        return rk;
    }
    let xh = bitcast<f32>(bitcast<u32>(x) & 0xfffff000u);
    let yh = xh * 0.636474609375;
    let yl = (x - xh) * 0.636474609375 + x * 0.00014516299;
    let kf = round(yh);
    let k = kf + round((yh - kf) + yl);
    let kh = trunc(k * 0.000244140625) * 4096.0;
    let kl = k - kh;
    var r = x - kh * 1.5703125;
    r = r - kl * 1.5703125;
    r = r - kh * 0.0004837512969970703;
    r = r - kl * 0.0004837512969970703;
    r = r - kh * 7.549533620476723e-08;
    r = r - kl * 7.549533620476723e-08;
    r = r - kh * 2.5632829192545614e-12;
    r = r - kl * 2.5632829192545614e-12;
    r = r - k * 6.123233995736766e-17;
    return vec2<f32>(r, k);
}
// The 64-bit product of two u32s, as (low, high) words.
fn mul64_(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    return vec2<u32>((p00 & 0xffffu) | (mid << 16u), a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u));
}
// Payne-Hanek for 2^24 <= ax (finite): ax = m 2^e with a 24-bit integer m and e >= 1, so
// ax * 2/pi mod 4 needs only the bits of 2/pi from 2^(1-e) on: a 96-bit window of them
// times m, in 32-bit words, gives the quadrant (2 bits) and 62 bits of fraction.
fn reduce_big(ax: f32) -> vec2<f32> {
    // 2/pi in binary, from its 2^0 bit (0): 0.A2F9836E 4E441529 FC2757D1 ...
    var t = array<u32, 8>(0x517cc1b7u, 0x27220a94u, 0xfe13abe8u, 0xfa9a6ee0u, 0x6db14accu, 0x9e21c820u, 0xff28b1d5u, 0xef5de2b0u);
    let bits = bitcast<u32>(ax);
    let e = (bits >> 23u) - 150u;
    let m = (bits & 0x7fffffu) | 0x800000u;
    let q = (e - 1u) / 32u;
    let s = (e - 1u) % 32u;
    var w = array<u32, 3>();
    for (var j = 0u; j < 3u; j++) {
        let a = t[q + j];
        w[j] = select((a << s) | (t[q + j + 1u] >> (32u - s)), a, s == 0u);
    }
    let p0 = mul64_(m, w[2]);
    let p1 = mul64_(m, w[1]);
    let p2 = mul64_(m, w[0]);
    let word1 = p0.y + p1.x;
    let word2 = p1.y + p2.x + select(0u, 1u, word1 < p0.y);
    var k = word2 >> 30u;
    var hi = word2 & 0x3fffffffu;
    var lo = word1;
    var sign = 1.0;
    if (hi >= 0x20000000u) {
        // round to the nearest k: the fraction becomes f - 1, kept as -(2^62 - f)
        k = (k + 1u) & 3u;
        hi = 0x40000000u - hi - select(0u, 1u, lo != 0u);
        lo = ~lo + 1u;
        sign = -1.0;
    }
    let f = f32(hi) * 9.313225746154785e-10 + f32(lo) * 2.168404344971009e-19;
    return vec2<f32>(sign * f * 1.5707963267948966, f32(k));
}
// Cephes' sinf and cosf polynomials on [-pi/4, pi/4]
fn sin_poly(r: f32) -> f32 {
    let z = r * r;
    return fma(r * z, -0.16666654611 + z * (0.0083321608736 + z * -0.00019515295891), r);
}
fn cos_poly(r: f32) -> f32 {
    let z = r * r;
    return 1.0 - 0.5 * z + z * z * (0.04166664568298827 + z * (-0.001388731625493765 + z * 2.443315711809948e-05));
}
// (sin x, cos x) for finite x: the polynomials at r, rotated by k quarter turns
fn sincos_(x: f32) -> vec2<f32> {
    let rk = reduce_(x);
    let s = sin_poly(rk.x);
    let c = cos_poly(rk.x);
    let q = i32(rk.y) & 3;
    if (q == 0) { return vec2<f32>(s, c); }
    if (q == 1) { return vec2<f32>(c, -s); }
    if (q == 2) { return vec2<f32>(-s, -c); }
    return vec2<f32>(-c, s);
}
fn sin_(x: f32) -> f32 {
    if (abs(x) < 1e-4) { return x; } // keeps -0 and tiny values exact
    if (!is_finite(x)) { return nan(); }
    return sincos_(x).x;
}
fn cos_(x: f32) -> f32 {
    if (!is_finite(x)) { return nan(); }
    return sincos_(x).y;
}
fn tan_(x: f32) -> f32 {
    if (abs(x) < 1e-4) { return x; }
    if (!is_finite(x)) { return nan(); }
    let sc = sincos_(x);
    return sc.x / sc.y;
}
// log1p never forms 1 + x where that rounding would matter: near 0 it is ln_poly of x
// itself (the usual (1 + x) - 1 correction is undone by compilers that reassociate)
fn log1p_(x: f32) -> f32 {
    if (x == 0.0) { return x; }
    if (x >= -0.29289322 && x <= 0.41421356) { return ln_poly(x, 0); }
    if (x == inf()) { return x; }
    let u = 1.0 + x;
    if (u <= 0.0 || is_nan(x)) { return ln_(u); }
    return ln_core(u);
}
fn expm1_(x: f32) -> f32 {
    if (abs(x) < 1e-5) { return x + 0.5 * x * x; }
    if (is_nan(x) || x > 88.8) { return exp_(x); }
    let u = exp_(x);
    if (u == 1.0) { return x; }
    let um1 = u - 1.0;
    if (um1 == -1.0) { return -1.0; }
    return um1 * (x / ln_core(u));
}
// tanh|x| = e / (e + 2) with e = expm1(2|x|), saturated from |x| = 10, with no branch
// (the CPU's algorithm): 2|x| = n ln2 + r, e = 2^n (expm1(r) + 1) - 1.
fn tanh_(x: f32) -> f32 {
    let a2 = 2.0 * min(abs(x), 10.0);
    let n = round(a2 * 1.44269504);
    var r = fma(-n, 0.693145751953125, a2);
    r = fma(-n, 1.428606765330187e-06, r);
    let p = fma(r * r, 0.5 + r * (0.16666667 + r * (0.041666668 + r * (0.008333334 + r * (0.0013888889 + r * 0.0001984127)))), r);
    let scale = bitcast<f32>(u32(i32(n) + 127) << 23u);
    let e = fma(scale, p, scale - 1.0);
    let y = bitcast<f32>(bitcast<u32>(e / (e + 2.0)) | (bitcast<u32>(x) & 0x80000000u));
    return select(y, x, is_nan(x));
}
// z = e^-|x| in (0, 1]: 1 / (1 + z) for x >= 0, z / (1 + z) below (the CPU's algorithm)
fn sigmoid_(x: f32) -> f32 {
    let z = exp_core(-min(abs(x), 104.0));
    let y = select(z, 1.0, x >= 0.0) / (1.0 + z);
    return select(y, x, is_nan(x));
}
// max(x, 0) + ln(1 + e^-|x|) (the CPU's algorithm)
fn softplus_(x: f32) -> f32 {
    let y = max(x, 0.0) + log1p_(exp_core(-min(abs(x), 104.0)));
    return select(y, x, is_nan(x));
}
fn is_int(y: f32) -> bool { return is_finite(y) && floor(y) == y; }
fn is_odd_int(y: f32) -> bool { return is_int(y) && abs(y) < 16777216.0 && (i32(y) & 1) == 1; }
// C's pow: exact cases first, negative bases for integral exponents.
fn pow_(x: f32, y: f32) -> f32 {
    if (y == 0.0 || x == 1.0) { return 1.0; }
    if (is_nan(x) || is_nan(y)) { return nan(); }
    let ax = abs(x);
    if (abs(y) == inf()) {
        if (ax == 1.0) { return 1.0; }
        if ((ax > 1.0) == (y > 0.0)) { return inf(); }
        return 0.0;
    }
    if (x == 0.0) {
        let odd = is_odd_int(y);
        if (y < 0.0) {
            if (odd) { return select(inf(), -inf(), bitcast<u32>(x) != 0u); }
            return inf();
        }
        if (odd) { return x; }
        return 0.0;
    }
    if (ax == inf()) {
        let odd = is_odd_int(y);
        var r = 0.0;
        if (y > 0.0) { r = inf(); }
        if (x < 0.0 && odd) { return -r; }
        return r;
    }
    if (x < 0.0 && !is_int(y)) { return nan(); }
    var r = exp_(y * ln_core(ax));
    if (abs(y) <= 64.0 && is_int(y)) { r = powi_(ax, i32(y)); }
    if (x < 0.0 && is_odd_int(y)) { return -r; }
    return r;
}
// ---- Inverse trigonometric and hyperbolic functions, exp2, log2, log10, cbrt, erf: the
// CPU's methods in f32, none relying on a fused multiply-add (Vulkan lets fma round
// twice): where the CPU takes a rounding error exactly with fma, these split a value with
// a bit mask so that products are exact (fdlibm's way).
// y with x's sign (y >= 0)
fn with_sign(y: f32, x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(y) | (bitcast<u32>(x) & 0x80000000u)); }
// atan(a) for a >= 0 or NaN (musl's atanf): a mapped to |t| <= 7/16 around 0, 1/2, 1, 3/2 or inf
fn atan_abs(a: f32) -> f32 {
    var num = -1.0;
    var den = a;
    var hi = bitcast<f32>(0x3fc90fdau);
    var lo = bitcast<f32>(0x33a22168u);
    if (a < 2.4375) { num = a - 1.5; den = 1.0 + 1.5 * a; hi = bitcast<f32>(0x3f7b985eu); lo = bitcast<f32>(0x33140fb4u); }
    if (a < 1.1875) { num = a - 1.0; den = a + 1.0; hi = bitcast<f32>(0x3f490fdau); lo = bitcast<f32>(0x33222168u); }
    if (a < 0.6875) { num = 2.0 * a - 1.0; den = 2.0 + a; hi = bitcast<f32>(0x3eed6338u); lo = bitcast<f32>(0x31ac3769u); }
    if (a < 0.4375) { num = a; den = 1.0; hi = 0.0; lo = 0.0; }
    let t = num / den;
    let z = t * t;
    let w = z * z;
    let s1 = z * (3.3333328366e-01 + w * (1.4253635705e-01 + w * 6.1687607318e-02));
    let s2 = w * (-1.9999158382e-01 + w * -1.0648017377e-01);
    return hi - ((t * (s1 + s2) - lo) - t);
}
fn atan_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    return with_sign(atan_abs(abs(x)), x);
}
// f64::atan2's rules: signed zeros and infinities give the limits' angles
fn atan2_(y: f32, x: f32) -> f32 {
    if (is_nan(x) || is_nan(y)) { return nan(); }
    let ax = abs(x);
    let ay = abs(y);
    var q = ay / ax;
    if (ax == 0.0 && ay == 0.0) { q = 0.0; }
    if (ax == inf() && ay == inf()) { q = 1.0; }
    var z = atan_abs(q);
    // x < 0 or -0: pi - z, pi in two parts
    if ((bitcast<u32>(x) & 0x80000000u) != 0u) { z = bitcast<f32>(0x40490fdau) - (z - bitcast<f32>(0x34222168u)); }
    return with_sign(z, y);
}
// (asin(x) - x) / x = z P(z) / Q(z), z = x^2 <= 1/4 (musl's asinf)
fn asin_r(z: f32) -> f32 {
    let p = z * (1.6666586697e-01 + z * (-4.2743422091e-02 + z * -8.6563630030e-03));
    return p / (1.0 + z * -7.0662963390e-01);
}
// fdlibm's asin: above 1/2, pi/2 - 2 asin(s), s = sqrt((1 - |x|) / 2) = f + c with f the
// high 12 bits of s (so f * f is exact)
fn asin_(x: f32) -> f32 {
    let a = abs(x);
    if (!(a <= 1.0)) { return nan(); }
    if (a < 0.5) { return x + x * asin_r(x * x); }
    if (a == 1.0) { return with_sign(bitcast<f32>(0x3fc90fdbu), x); }
    let z = (1.0 - a) * 0.5;
    let s = sqrt(z);
    let f = bitcast<f32>(bitcast<u32>(s) & 0xfffff000u);
    let c = (z - f * f) / (s + f);
    let pio4_hi = bitcast<f32>(0x3f490fdau);
    let y = pio4_hi - ((2.0 * s * asin_r(z) - (bitcast<f32>(0x33a22168u) - 2.0 * c)) - (pio4_hi - 2.0 * f));
    return with_sign(y, x);
}
// musl's acosf
fn acos_(x: f32) -> f32 {
    let a = abs(x);
    if (!(a <= 1.0)) { return nan(); }
    let pio2_hi = bitcast<f32>(0x3fc90fdau);
    let pio2_lo = bitcast<f32>(0x33a22168u);
    if (a < 0.5) { return pio2_hi - (x - (pio2_lo - x * asin_r(x * x))); }
    if (x < 0.0) {
        let z = (1.0 + x) * 0.5;
        let s = sqrt(z);
        return 2.0 * (pio2_hi - (s + (asin_r(z) * s - pio2_lo)));
    }
    if (x == 1.0) { return 0.0; }
    let z = (1.0 - x) * 0.5;
    let s = sqrt(z);
    let f = bitcast<f32>(bitcast<u32>(s) & 0xfffff000u);
    let c = (z - f * f) / (s + f);
    return 2.0 * (f + (asin_r(z) * s + c));
}
// sinh|x|: its Taylor series below 1 (to x^13), (t + t / (t + 1)) / 2 with t = expm1|x|
// above, and e^|x| / 2 as (exp(|x|/2) / 2) exp(|x|/2) where expm1 would overflow
fn sinh_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    let a = abs(x);
    var y: f32;
    if (a < 1.0) {
        let z = a * a;
        y = a + a * z * (0.16666667 + z * (0.008333334 + z * (0.0001984127 + z * (2.7557319e-06 + z * (2.5052108e-08 + z * 1.6059044e-10)))));
    } else if (a > 80.0) {
        let h = exp_(0.5 * a);
        y = (0.5 * h) * h;
    } else {
        let t = expm1_(a);
        y = 0.5 * (t + t / (t + 1.0));
    }
    return with_sign(y, x);
}
fn cosh_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    let a = abs(x);
    if (a < 1.0) {
        let t = expm1_(a);
        return 1.0 + t * t / (2.0 * (1.0 + t));
    }
    if (a > 80.0) {
        let h = exp_(0.5 * a);
        return (0.5 * h) * h;
    }
    let e = exp_core(a);
    return 0.5 * e + 0.5 / e;
}
// log1p(a + a^2 / (sqrt(a^2 + 1) + 1)) below 2, ln(2a + 1 / (sqrt(a^2 + 1) + a)) above,
// ln a + ln 2 from 2^30
fn asinh_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    let a = abs(x);
    var y: f32;
    if (a >= 1073741824.0) {
        y = ln_(a) + 0.693147182;
    } else {
        let a2 = a * a;
        let r = sqrt(a2 + 1.0);
        if (a < 2.0) {
            y = log1p_(a + a2 / (r + 1.0));
        } else {
            y = ln_core(2.0 * a + 1.0 / (r + a));
        }
    }
    return with_sign(y, x);
}
// log1p(t + sqrt(t (t + 2))), t = x - 1, below 2, ln(2x - 1 / (x + sqrt(x^2 - 1))) above,
// ln x + ln 2 from 2^30
fn acosh_(x: f32) -> f32 {
    if (!(x >= 1.0)) { return nan(); }
    if (x >= 1073741824.0) { return ln_(x) + 0.693147182; }
    if (x < 2.0) {
        let t = x - 1.0;
        return log1p_(t + sqrt(t * (t + 2.0)));
    }
    return ln_core(2.0 * x - 1.0 / (x + sqrt(x * x - 1.0)));
}
// log1p(2a + 2a^2 / (1 - a)) / 2 below 1/2, log1p(2a / (1 - a)) / 2 above
fn atanh_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    let a = abs(x);
    let a2 = a + a;
    var v = a2 / (1.0 - a);
    if (a < 0.5) { v = a2 + a2 * a / (1.0 - a); }
    return with_sign(0.5 * log1p_(v), x);
}
// 2^x = 2^n 2^f, |f| <= 1/2 exact, 2^f by the Taylor series of e^(f ln 2) to f^8
fn exp2_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    if (x >= 128.0) { return inf(); }
    if (x < -150.0) { return 0.0; }
    let n = round(x);
    let f = x - n;
    let p = 1.0 + f * (0.693147182 + f * (0.240226507 + f * (0.0555041087 + f * (0.00961812911 + f * (0.00133335581 + f * (0.000154035304 + f * (1.52527338e-05 + f * 1.32154868e-06)))))));
    let ni = i32(n);
    let h = ni / 2;
    return ldexp(ldexp(p, h), ni - h);
}
// ln(x) = k ln2 + hi + lo for positive finite x (musl's log2f and log10f): hi is
// f - f^2/2 to 12 bits, so that its products with the constants' heads are exact
fn log_split(x0: f32) -> vec3<f32> {
    var x = x0;
    var e = 0;
    if (x < 1.17549435e-38) { x = x * 33554432.0; e = -25; }
    var bits = bitcast<u32>(x) + (0x3f800000u - 0x3f3504f3u);
    e = e + i32(bits >> 23u) - 127;
    bits = (bits & 0x007fffffu) + 0x3f3504f3u;
    let f = bitcast<f32>(bits) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let r = z * (0.66666662693 + w * 0.28498786688) + w * (0.40000972152 + w * 0.24279078841);
    let hfsq = 0.5 * f * f;
    let hi = bitcast<f32>(bitcast<u32>(f - hfsq) & 0xfffff000u);
    let lo = f - hi - hfsq + s * (hfsq + r);
    return vec3<f32>(hi, lo, f32(e));
}
fn log_special(x: f32) -> bool { return !(x > 0.0) || x == inf(); }
fn log2_(x: f32) -> f32 {
    if (log_special(x)) { return ln_(x); }
    let p = log_split(x);
    let ih = bitcast<f32>(0x3fb8b000u);
    return (p.y + p.x) * bitcast<f32>(0xb9389ad4u) + p.y * ih + p.x * ih + p.z;
}
fn log10_(x: f32) -> f32 {
    if (log_special(x)) { return ln_(x); }
    let p = log_split(x);
    let ih = bitcast<f32>(0x3ede6000u);
    return p.z * bitcast<f32>(0x355427dbu) + (p.y + p.x) * bitcast<f32>(0xb804ead9u) + p.y * ih + p.x * ih + p.z * bitcast<f32>(0x3e9a2080u);
}
// cube root: musl's cbrtf first guess (the exponent divided by 3 in the bits), then
// Newton's method; ±0, ±inf and NaN are their own cube roots
fn cbrt_(x: f32) -> f32 {
    let a = abs(x);
    if (a == 0.0 || !is_finite(a)) { return x; }
    var v = a;
    var scale = 1.0;
    if (a < 1.17549435e-38) { v = a * 16777216.0; scale = 0.00390625; } // 2^24, 2^-8
    var y = bitcast<f32>(bitcast<u32>(v) / 3u + 709958130u);
    for (var i = 0; i < 4; i++) {
        y = y - (y * y * y - v) / (3.0 * y * y);
    }
    return with_sign(y * scale, x);
}
// fdlibm's erff: a rational function of x^2 below 0.84375, of |x| - 1 to 1.25, and
// 1 - erfc with erfc = exp(-x^2 - 0.5625 + R(1/x^2) / S(1/x^2)) / x to 6
fn erf_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    let a = abs(x);
    var y = 1.0;
    if (a < 0.84375) {
        let z = a * a;
        let r = 1.2837916613e-01 + z * (-3.2504209876e-01 + z * (-2.8481749818e-02 + z * (-5.7702702470e-03 + z * -2.3763017452e-05)));
        let s = 1.0 + z * (3.9791721106e-01 + z * (6.5022252500e-02 + z * (5.0813062117e-03 + z * (1.3249473704e-04 + z * -3.9602282413e-06))));
        y = a + a * (r / s);
    } else if (a < 1.25) {
        let s = a - 1.0;
        let p = -2.3621185683e-03 + s * (4.1485610604e-01 + s * (-3.7220788002e-01 + s * (3.1834661961e-01 + s * (-1.1089469492e-01 + s * (3.5478305072e-02 + s * -2.1663755178e-03)))));
        let q = 1.0 + s * (1.0642088205e-01 + s * (5.4039794207e-01 + s * (7.1828655899e-02 + s * (1.2617121637e-01 + s * (1.3637083583e-02 + s * 1.1984500103e-02)))));
        y = bitcast<f32>(0x3f58560bu) + p / q;
    } else if (a < 6.0) {
        let s = 1.0 / (a * a);
        var r: f32;
        var t: f32;
        if (a < 2.857142857) {
            r = -9.8649440333e-03 + s * (-6.9385856390e-01 + s * (-1.0558626175e+01 + s * (-6.2375331879e+01 + s * (-1.6239666748e+02 + s * (-1.8460508728e+02 + s * (-8.1287437439e+01 + s * -9.8143291473e+00))))));
            t = 1.0 + s * (1.9651271820e+01 + s * (1.3765776062e+02 + s * (4.3456588745e+02 + s * (6.4538726807e+02 + s * (4.2900814819e+02 + s * (1.0863500214e+02 + s * (6.5702495575e+00 + s * -6.0424413532e-02)))))));
        } else {
            r = -9.8649431020e-03 + s * (-7.9928326607e-01 + s * (-1.7757955551e+01 + s * (-1.6063638306e+02 + s * (-6.3756646729e+02 + s * (-1.0250950928e+03 + s * -4.8351919556e+02)))));
            t = 1.0 + s * (3.0338060379e+01 + s * (3.2579251099e+02 + s * (1.5367296143e+03 + s * (3.1998581543e+03 + s * (2.5530502930e+03 + s * (4.7452853394e+02 + s * -2.2440952301e+01))))));
        }
        y = 1.0 - exp_core(-a * a - 0.5625 + r / t) / a;
    }
    return with_sign(y, x);
}
// f64::round: halves away from zero (WGSL's round takes them to even); x - trunc(x) is exact
fn round_(x: f32) -> f32 {
    let t = trunc(x);
    return select(t, t + sign(x), abs(x - t) >= 0.5);
}
fn powi_(x: f32, n: i32) -> f32 {
    var e = u32(abs(n));
    if (n == -2147483648) { e = 2147483648u; }
    var b = x;
    var r = 1.0;
    loop {
        if ((e & 1u) == 1u) { r = r * b; }
        e = e >> 1u;
        if (e == 0u) { break; }
        b = b * b;
    }
    if (n < 0) { return 1.0 / r; }
    return r;
}
"#;
