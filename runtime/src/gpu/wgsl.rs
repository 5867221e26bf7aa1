//! WGSL shared by the generated kernels: parameter access and the float functions WGSL
//! lacks or leaves undefined where the CPU kernels define them (NaN tests that survive
//! fast-math, `pow` of negative bases, `log1p`, `expm1`, a `tanh` that does not overflow).

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
fn ln_(x: f32) -> f32 {
    if (x == 0.0) { return -inf(); }
    if (x < 0.0 || is_nan(x)) { return nan(); }
    if (x == inf()) { return x; }
    return log(x);
}
fn exp_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    if (x > 88.8) { return inf(); }
    if (x < -104.0) { return 0.0; }
    return exp(x);
}
fn log1p_(x: f32) -> f32 {
    let u = 1.0 + x;
    if (u == 1.0) { return x; }
    if (x == inf()) { return x; }
    if (u <= 0.0 || is_nan(x)) { return ln_(u); }
    return log(u) * (x / (u - 1.0));
}
fn expm1_(x: f32) -> f32 {
    if (abs(x) < 1e-5) { return x + 0.5 * x * x; }
    if (is_nan(x) || x > 88.8) { return exp_(x); }
    let u = exp_(x);
    if (u == 1.0) { return x; }
    let um1 = u - 1.0;
    if (um1 == -1.0) { return -1.0; }
    return um1 * (x / log(u));
}
fn tanh_(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    let a = abs(x);
    if (a < 0.4) {
        // odd series to x^11: relative error below 1e-7 here
        let z = x * x;
        return x + x * z * (-0.33333333 + z * (0.13333333 + z * (-0.053968254 + z * (0.021869488 + z * (-0.0088632355)))));
    }
    let e = exp_(-2.0 * a);
    return sign(x) * (1.0 - e) / (1.0 + e);
}
fn sigmoid_(x: f32) -> f32 { return 1.0 / (1.0 + exp_(-x)); }
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
    var r = exp2(y * log2(ax));
    if (abs(y) <= 64.0 && is_int(y)) { r = powi_(ax, i32(y)); }
    if (x < 0.0 && is_odd_int(y)) { return -r; }
    return r;
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
