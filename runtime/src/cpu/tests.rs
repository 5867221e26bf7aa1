//! Tests of the CPU backend against scalar references: the elementary functions on
//! every instruction set this machine has (and pulp's portable ones), in ulps, over
//! random values of every magnitude and the special cases; and every kernel on
//! lengths around the vector width, empty inputs, NaN and infinities, both dtypes.

use pulp::{Simd, WithSimd};

use super::kernels::{self, BinaryOp, CmpOp, MatRef, ReduceOp, SoftmaxOp, UnaryOp};
use super::math::{self, MathFloat, Rounding};
use crate::element::Float;

// ---------------------------------------------------------------------------------------
// Helpers

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// A random sign, ±1.
    fn sign(&mut self) -> f64 {
        if self.next_u64() & 1 == 0 { 1.0 } else { -1.0 }
    }
    /// Random sign, magnitude log-uniform in [2^lo, 2^hi).
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let m = self.range(lo, hi).exp2();
        if self.next_u64() & 1 == 0 { m } else { -m }
    }
}

/// Distance in units in the last place; 0 when both are NaN, max when only one is.
fn ulps<T: Float>(a: T, b: T) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    if a == b {
        return 0;
    }
    // map to a monotonic integer line
    let key = |x: T| -> i128 {
        if T::DTYPE == crate::DType::F32 {
            let b = (x.to_f64() as f32).to_bits();
            let mag = (b & 0x7fff_ffff) as i128;
            if b >> 31 == 1 { -mag } else { mag }
        } else {
            let b = x.to_f64().to_bits();
            let mag = (b & 0x7fff_ffff_ffff_ffff) as i128;
            if b >> 63 == 1 { -mag } else { mag }
        }
    };
    (key(a) - key(b)).unsigned_abs().min(u64::MAX as u128) as u64
}

/// Lengths around every vector width (4, 8, 16 lanes), and a few long ones.
const LENGTHS: &[usize] = &[
    0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65, 100, 1000, 4099,
];

/// Test values: random magnitudes over the whole range, plus the special cases.
fn sample<T: Float>(rng: &mut Rng, len: usize) -> Vec<T> {
    let specials = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e-40,
        -1e-310,
        1e6,
        -3e9,
    ];
    (0..len)
        .map(|i| {
            let v = match i % 7 {
                0 => specials[(rng.next_u64() % specials.len() as u64) as usize],
                1 | 2 => rng.range(-4.0, 4.0),
                _ => rng.log_uniform(-30.0, 12.0),
            };
            T::from_f64(v)
        })
        .collect()
}

fn close<T: Float>(what: &str, got: &[T], want: &[T], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g64, w64) = (g.to_f64(), w.to_f64());
        let ok = (g.is_nan() && w.is_nan())
            || g64 == w64
            || (g64 - w64).abs() <= rel * w64.abs().max(1e-30);
        assert!(ok, "{what} [{}]: element {i}: got {g}, want {w}", T::DTYPE);
    }
}

// ---------------------------------------------------------------------------------------
// Elementary functions on every instruction set

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fun {
    Exp,
    Expm1,
    Ln,
    Log1p,
    Sin,
    Cos,
    Tan,
    Tanh,
    Sigmoid,
    Softplus,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Exp2,
    Log2,
    Log10,
    Cbrt,
    Erf,
    Floor,
    Ceil,
    Round,
    Trunc,
}

const FUNS: [Fun; 27] = [
    Fun::Exp,
    Fun::Expm1,
    Fun::Ln,
    Fun::Log1p,
    Fun::Sin,
    Fun::Cos,
    Fun::Tan,
    Fun::Tanh,
    Fun::Sigmoid,
    Fun::Softplus,
    Fun::Asin,
    Fun::Acos,
    Fun::Atan,
    Fun::Sinh,
    Fun::Cosh,
    Fun::Asinh,
    Fun::Acosh,
    Fun::Atanh,
    Fun::Exp2,
    Fun::Log2,
    Fun::Log10,
    Fun::Cbrt,
    Fun::Erf,
    Fun::Floor,
    Fun::Ceil,
    Fun::Round,
    Fun::Trunc,
];

impl Fun {
    /// The reference: std in f64 (then rounded) for f32, std for f64.
    fn reference<T: Float>(self, x: T) -> T {
        let x = x.to_f64();
        let y = match self {
            Fun::Exp => x.exp(),
            Fun::Expm1 => x.exp_m1(),
            Fun::Ln => x.ln(),
            Fun::Log1p => x.ln_1p(),
            Fun::Sin => x.sin(),
            Fun::Cos => x.cos(),
            Fun::Tan => x.tan(),
            Fun::Tanh => x.tanh(),
            Fun::Sigmoid => {
                if x >= 0.0 {
                    1.0 / (1.0 + (-x).exp())
                } else {
                    x.exp() / (1.0 + x.exp())
                }
            }
            // ln(1 + e^x) = x + ln(1 + e^-x): the form that neither overflows nor rounds 1 + tiny
            Fun::Softplus if x > 0.0 => x + (-x).exp().ln_1p(),
            Fun::Softplus => x.exp().ln_1p(),
            Fun::Asin => x.asin(),
            Fun::Acos => x.acos(),
            Fun::Atan => x.atan(),
            Fun::Sinh => x.sinh(),
            Fun::Cosh => x.cosh(),
            // std's are formulas that lose digits (acosh near 1 most); musl's are accurate
            Fun::Asinh => libm::asinh(x),
            // (musl's acosh of x <= -2 is not NaN)
            Fun::Acosh if x < 1.0 => f64::NAN,
            Fun::Acosh => libm::acosh(x),
            Fun::Atanh => libm::atanh(x),
            Fun::Exp2 => x.exp2(),
            Fun::Log2 => x.log2(),
            Fun::Log10 => x.log10(),
            Fun::Cbrt => x.cbrt(),
            Fun::Erf => libm::erf(x),
            Fun::Floor => x.floor(),
            Fun::Ceil => x.ceil(),
            Fun::Round => x.round(),
            Fun::Trunc => x.trunc(),
        };
        T::from_f64(y)
    }

    /// The largest error allowed, in ulps (beside the reference's own: std's f64 functions
    /// are within about an ulp, and for f32 the reference is rounded from f64).
    fn max_ulps(self) -> u64 {
        match self {
            Fun::Floor | Fun::Ceil | Fun::Round | Fun::Trunc => 0,
            Fun::Exp
            | Fun::Ln
            | Fun::Sin
            | Fun::Cos
            | Fun::Asin
            | Fun::Acos
            | Fun::Atan
            | Fun::Exp2
            | Fun::Log2
            | Fun::Log10
            | Fun::Cbrt
            | Fun::Erf => 2,
            Fun::Expm1
            | Fun::Log1p
            | Fun::Tan
            | Fun::Tanh
            | Fun::Sigmoid
            | Fun::Softplus
            | Fun::Sinh
            | Fun::Cosh
            | Fun::Asinh
            | Fun::Acosh
            | Fun::Atanh => 3,
        }
    }

    /// Whether the kernel gives zeros the reference's sign.
    fn keeps_zero_signs(self) -> bool {
        (self as usize) >= (Fun::Asin as usize)
    }

    fn is_trig(self) -> bool {
        matches!(self, Fun::Sin | Fun::Cos | Fun::Tan)
    }
}

/// Evaluates a vector function over a slice (tail zero-padded) with one token.
struct Eval<'a, T> {
    f: Fun,
    x: &'a [T],
    out: &'a mut [T],
}

impl<T: MathFloat> WithSimd for Eval<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let apply = |v: T::V<S>| match self.f {
            Fun::Exp => math::exp::<S, T>(s, v),
            Fun::Expm1 => math::expm1::<S, T>(s, v),
            Fun::Ln => math::ln::<S, T>(s, v),
            Fun::Log1p => math::log1p::<S, T>(s, v),
            Fun::Sin => math::sin::<S, T>(s, v),
            Fun::Cos => math::cos::<S, T>(s, v),
            Fun::Tan => math::tan::<S, T>(s, v),
            Fun::Tanh => math::tanh::<S, T>(s, v),
            Fun::Sigmoid => math::sigmoid::<S, T>(s, v),
            Fun::Softplus => math::softplus::<S, T>(s, v),
            Fun::Asin => math::asin::<S, T>(s, v),
            Fun::Acos => math::acos::<S, T>(s, v),
            Fun::Atan => math::atan::<S, T>(s, v),
            Fun::Sinh => math::sinh::<S, T>(s, v),
            Fun::Cosh => math::cosh::<S, T>(s, v),
            Fun::Asinh => math::asinh::<S, T>(s, v),
            Fun::Acosh => math::acosh::<S, T>(s, v),
            Fun::Atanh => math::atanh::<S, T>(s, v),
            Fun::Exp2 => math::exp2::<S, T>(s, v),
            Fun::Log2 => math::log2::<S, T>(s, v),
            Fun::Log10 => math::log10::<S, T>(s, v),
            Fun::Cbrt => math::cbrt::<S, T>(s, v),
            Fun::Erf => math::erf::<S, T>(s, v),
            Fun::Floor => math::rounded::<S, T>(s, v, Rounding::Floor),
            Fun::Ceil => math::rounded::<S, T>(s, v, Rounding::Ceil),
            Fun::Round => math::rounded::<S, T>(s, v, Rounding::Round),
            Fun::Trunc => math::rounded::<S, T>(s, v, Rounding::Trunc),
        };
        let (xv, xt) = T::as_simd::<S>(self.x);
        let (ov, ot) = T::as_mut_simd::<S>(self.out);
        for (o, &v) in ov.iter_mut().zip(xv) {
            *o = apply(v);
        }
        if !xt.is_empty() {
            T::partial_store(s, ot, apply(T::partial_load(s, xt)));
        }
    }
}

/// Evaluates `atan2(y, x)` over slices (tails zero-padded) with one token.
struct EvalAtan2<'a, T> {
    y: &'a [T],
    x: &'a [T],
    out: &'a mut [T],
}

impl<T: MathFloat> WithSimd for EvalAtan2<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let (yv, yt) = T::as_simd::<S>(self.y);
        let (xv, xt) = T::as_simd::<S>(self.x);
        let (ov, ot) = T::as_mut_simd::<S>(self.out);
        for ((o, &y), &x) in ov.iter_mut().zip(yv).zip(xv) {
            *o = math::atan2::<S, T>(s, y, x);
        }
        if !yt.is_empty() {
            let (y, x) = (T::partial_load(s, yt), T::partial_load(s, xt));
            T::partial_store(s, ot, math::atan2::<S, T>(s, y, x));
        }
    }
}

/// An instruction set under test.
trait Isa {
    fn eval_f32(&self, f: Fun, x: &[f32], out: &mut [f32]);
    fn eval_f64(&self, f: Fun, x: &[f64], out: &mut [f64]);
    fn atan2_f32(&self, y: &[f32], x: &[f32], out: &mut [f32]);
    fn atan2_f64(&self, y: &[f64], x: &[f64], out: &mut [f64]);
}

impl<S: Simd> Isa for S {
    fn eval_f32(&self, f: Fun, x: &[f32], out: &mut [f32]) {
        self.vectorize(Eval { f, x, out })
    }
    fn eval_f64(&self, f: Fun, x: &[f64], out: &mut [f64]) {
        self.vectorize(Eval { f, x, out })
    }
    fn atan2_f32(&self, y: &[f32], x: &[f32], out: &mut [f32]) {
        self.vectorize(EvalAtan2 { y, x, out })
    }
    fn atan2_f64(&self, y: &[f64], x: &[f64], out: &mut [f64]) {
        self.vectorize(EvalAtan2 { y, x, out })
    }
}

/// Every instruction set available here (and pulp's portable ones), named.
fn isas() -> Vec<(&'static str, Box<dyn Isa>)> {
    let mut isas: Vec<(&'static str, Box<dyn Isa>)> = vec![
        ("scalar", Box::new(pulp::Scalar::new())),
        ("portable-128", Box::new(pulp::Scalar128b)),
        ("portable-256", Box::new(pulp::Scalar256b)),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(v3) = pulp::x86::V3::try_new() {
            isas.push(("avx2", Box::new(v3)));
            isas.push(("avx2-128", Box::new(pulp::x86::V3_128b(v3))));
        }
        if let Some(v4) = pulp::x86::V4::try_new() {
            isas.push(("avx512", Box::new(v4)));
        }
    }
    #[cfg(target_arch = "aarch64")]
    if let Some(neon) = pulp::aarch64::Neon::try_new() {
        isas.push(("neon", Box::new(neon)));
    }
    isas
}

/// Values that stress each function: the whole range, the edges of every branch.
fn math_inputs<T: MathFloat>(f: Fun, rng: &mut Rng) -> Vec<T> {
    let mut v: Vec<f64> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        Float::to_f64(T::min_positive_value()),
        Float::to_f64(T::min_positive_value()) / 3.0,
        Float::to_f64(T::max_value()),
        -Float::to_f64(T::max_value()),
        T::TRIG_LIMIT,
        -T::TRIG_LIMIT,
        T::TRIG_LIMIT * 1.5,
    ];
    // every magnitude
    for _ in 0..20_000 {
        v.push(rng.log_uniform(-160.0, 140.0));
    }
    // the interesting region, densely
    for _ in 0..20_000 {
        v.push(rng.range(-10.0, 10.0));
    }
    match f {
        Fun::Exp | Fun::Expm1 | Fun::Sigmoid | Fun::Softplus | Fun::Tanh => {
            // near overflow, underflow into subnormals, and the expm1 split
            for _ in 0..20_000 {
                v.push(rng.range(-T::EXP_MIN.abs() - 2.0, T::EXP_MAX + 1.0));
            }
            for _ in 0..2_000 {
                v.push(rng.log_uniform(-60.0, -1.0));
            }
        }
        Fun::Ln | Fun::Log1p => {
            for _ in 0..20_000 {
                v.push(rng.range(0.0, 3.0));
                v.push(rng.range(-1.0, 1.0));
            }
            for _ in 0..2_000 {
                v.push(rng.log_uniform(-1100.0, -1020.0).abs()); // subnormals (f64)
                v.push(rng.log_uniform(-150.0, -125.0).abs()); // subnormals (f32)
                v.push(-1.0 + rng.log_uniform(-50.0, -1.0).abs());
            }
        }
        Fun::Asin | Fun::Acos | Fun::Atanh => {
            // the whole domain, the branch points ±1/2, and next to ±1
            for _ in 0..40_000 {
                v.push(rng.range(-1.0, 1.0));
            }
            for _ in 0..4_000 {
                v.push(rng.range(0.45, 0.55) * rng.sign());
                v.push((1.0 - rng.log_uniform(-60.0, -1.0).abs()) * rng.sign());
                v.push(rng.log_uniform(-80.0, -1.0));
            }
            v.extend([0.5, -0.5, 1.0 + 1e-7, -1.0 - 1e-7, 2.0]);
        }
        Fun::Atan => {
            // every branch point of the reduction
            for edge in [7.0 / 16.0, 11.0 / 16.0, 19.0 / 16.0, 39.0 / 16.0] {
                for _ in 0..2_000 {
                    v.push(rng.range(edge * 0.9, edge * 1.1) * rng.sign());
                }
            }
            for _ in 0..2_000 {
                v.push(rng.log_uniform(60.0, 1000.0));
            }
        }
        Fun::Sinh | Fun::Cosh => {
            // near 0, the branch at 1, and near overflow (HYP_BIG and beyond)
            for _ in 0..20_000 {
                v.push(rng.range(-T::EXP_MAX - 2.0, T::EXP_MAX + 2.0));
                v.push(rng.range(T::HYP_BIG - 5.0, T::HYP_BIG + 12.0) * rng.sign());
            }
            for _ in 0..4_000 {
                v.push(rng.log_uniform(-60.0, 1.0));
                v.push(rng.range(0.9, 1.1) * rng.sign());
            }
        }
        Fun::Asinh | Fun::Acosh => {
            for _ in 0..20_000 {
                v.push(rng.range(0.0, 4.0) * rng.sign());
                v.push(1.0 + rng.log_uniform(-60.0, 1.0).abs());
            }
            for _ in 0..4_000 {
                v.push(rng.range(1.9, 2.1) * rng.sign());
                v.push(rng.log_uniform(-80.0, 1.0));
                v.push(rng.log_uniform(20.0, 70.0)); // around AHYP_BIG
            }
        }
        Fun::Exp2 => {
            // underflow into subnormals, overflow, and halves
            for _ in 0..20_000 {
                v.push(rng.range(T::EXP2_MIN * 1.1, T::EXP2_MAX * 1.1));
                v.push(rng.range(-1.0, 1.0));
            }
            for k in -200..200 {
                v.push(k as f64 * 0.5);
            }
        }
        Fun::Log2 | Fun::Log10 => {
            for _ in 0..20_000 {
                v.push(rng.range(0.0, 3.0));
                v.push(rng.log_uniform(-1100.0, 1100.0).abs());
            }
            for _ in 0..2_000 {
                v.push(rng.log_uniform(-1100.0, -1020.0).abs()); // subnormals (f64)
                v.push(rng.log_uniform(-150.0, -125.0).abs()); // subnormals (f32)
                v.push(1.0 + rng.log_uniform(-50.0, -1.0));
            }
            for k in -100..100 {
                v.push(2f64.powi(k));
                v.push(10f64.powi(k / 4));
            }
        }
        Fun::Cbrt => {
            for _ in 0..20_000 {
                v.push(rng.log_uniform(-1100.0, 1100.0));
                v.push(rng.range(-10.0, 10.0));
            }
            for _ in 0..2_000 {
                v.push(rng.log_uniform(-1100.0, -1020.0)); // subnormals (f64)
                v.push(rng.log_uniform(-150.0, -125.0)); // subnormals (f32)
            }
            for k in -30..30 {
                v.push((k * k * k) as f64);
            }
        }
        Fun::Erf => {
            // every range: 0.84375, 1.25, 1/0.35, 6
            for _ in 0..40_000 {
                v.push(rng.range(-7.0, 7.0));
            }
            for _ in 0..4_000 {
                v.push(rng.log_uniform(-80.0, 0.0));
                v.push(rng.log_uniform(-1074.0, -1000.0));
            }
        }
        Fun::Floor | Fun::Ceil | Fun::Round | Fun::Trunc => {
            // halves and their neighbours, and around INT_LIMIT
            for k in -300..300 {
                let h = k as f64 * 0.5;
                let t = T::from_f64(h);
                v.extend([h, Float::to_f64(next_up(t)), Float::to_f64(next_down(t))]);
            }
            for _ in 0..4_000 {
                v.push(rng.range(0.5, 2.0) * T::INT_LIMIT * rng.sign());
                v.push(rng.range(-1.0, 1.0));
            }
        }
        Fun::Sin | Fun::Cos | Fun::Tan => {
            for _ in 0..20_000 {
                v.push(rng.range(-T::TRIG_LIMIT, T::TRIG_LIMIT));
            }
            // near multiples of pi/2, where the reduction cancels
            for j in 1..3000 {
                let base = j as f64 * std::f64::consts::FRAC_PI_2 * (1.0 + (j % 17) as f64 * 7.0);
                if base < T::TRIG_LIMIT {
                    let b = T::from_f64(base).to_f64();
                    v.push(b);
                    v.push(-b);
                }
            }
        }
    }
    v.into_iter().map(T::from_f64).collect()
}

/// The next float above / below `x` (finite `x`).
fn next_up<T: Float>(x: T) -> T {
    if T::DTYPE == crate::DType::F32 {
        T::from_f64(f32::from_bits(
            (x.to_f64() as f32)
                .to_bits()
                .wrapping_add(if x >= T::zero() { 1 } else { u32::MAX }),
        ) as f64)
    } else {
        let b = x.to_f64().to_bits();
        T::from_f64(f64::from_bits(if x >= T::zero() { b + 1 } else { b - 1 }))
    }
}

fn next_down<T: Float>(x: T) -> T {
    -next_up(-x)
}

fn check_math<T: MathFloat + std::fmt::LowerExp>(isa: &str, eval: impl Fn(Fun, &[T], &mut [T])) {
    let mut failures = Vec::new();
    for f in FUNS {
        let mut rng = Rng::new(f as u64 + 1);
        let x = math_inputs::<T>(f, &mut rng);
        let mut out = vec![T::zero(); x.len()];
        eval(f, &x, &mut out);
        let mut worst = (0u64, T::zero(), T::zero(), T::zero());
        for (&xi, &yi) in x.iter().zip(&out) {
            if f.is_trig() && (xi.is_nan() || xi.abs().to_f64() > T::TRIG_LIMIT) {
                continue; // recomputed with std by the kernel
            }
            let want = f.reference(xi);
            let mut d = ulps(yi, want);
            // a zero's sign counts (erf(-0) = -0, ceil(-0.5) = -0)
            if f.keeps_zero_signs()
                && want == T::zero()
                && yi == T::zero()
                && want.is_sign_negative() != yi.is_sign_negative()
            {
                d = u64::MAX;
            }
            if d > worst.0 {
                worst = (d, xi, yi, want);
            }
        }
        let (d, xi, yi, want) = worst;
        if std::env::var_os("FERRAX_PRINT_ULPS").is_some() {
            eprintln!("{f:?} [{} on {isa}]: {d} ulps at x = {xi:e}", T::DTYPE);
        }
        if d > f.max_ulps() {
            failures.push(format!(
                "{f:?} [{} on {isa}]: {d} ulps at x = {xi:e}: got {yi:e}, want {want:e}",
                T::DTYPE
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn elementary_functions_are_within_a_few_ulps_on_every_instruction_set() {
    for (name, isa) in isas() {
        check_math::<f32>(name, |f, x, out| isa.eval_f32(f, x, out));
        check_math::<f64>(name, |f, x, out| isa.eval_f64(f, x, out));
    }
}

/// atan2 against `f64::atan2` (rounded for f32) on random points of every magnitude and
/// quadrant, near the axes and the diagonals, and every pair of special values (signed
/// zeros, infinities, NaN), where the result must match exactly, zero signs included.
fn check_atan2<T: MathFloat + std::fmt::LowerExp>(isa: &str, eval: impl Fn(&[T], &[T], &mut [T])) {
    let mut rng = Rng::new(41);
    let mut y = Vec::new();
    let mut x = Vec::new();
    for _ in 0..20_000 {
        y.push(rng.log_uniform(-160.0, 140.0));
        x.push(rng.log_uniform(-160.0, 140.0));
        y.push(rng.range(-4.0, 4.0));
        x.push(rng.range(-4.0, 4.0));
        // near the axes and the diagonals
        let a = rng.log_uniform(-20.0, 20.0);
        y.push(a * rng.log_uniform(-70.0, -1.0));
        x.push(a);
        y.push(a * (1.0 + rng.log_uniform(-50.0, -1.0)));
        x.push(a * rng.sign());
    }
    let specials = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        Float::to_f64(T::min_positive_value()) / 3.0,
        -Float::to_f64(T::max_value()),
    ];
    let first_special = y.len();
    for &a in &specials {
        for &b in &specials {
            y.push(a);
            x.push(b);
        }
    }
    let y: Vec<T> = y.into_iter().map(T::from_f64).collect();
    let x: Vec<T> = x.into_iter().map(T::from_f64).collect();
    let mut out = vec![T::zero(); y.len()];
    eval(&y, &x, &mut out);
    let mut worst = (0u64, 0);
    for i in 0..y.len() {
        let want = T::from_f64(y[i].to_f64().atan2(x[i].to_f64()));
        let g = out[i];
        if i >= first_special {
            assert!(
                (g.is_nan() && want.is_nan())
                    || (g == want && g.is_sign_negative() == want.is_sign_negative()),
                "atan2({:e}, {:e}) [{} on {isa}]: got {g:e}, want {want:e}",
                y[i],
                x[i],
                T::DTYPE
            );
        }
        let d = ulps(g, want);
        if d > worst.0 {
            worst = (d, i);
        }
    }
    let (d, i) = worst;
    if std::env::var_os("FERRAX_PRINT_ULPS").is_some() {
        eprintln!(
            "Atan2 [{} on {isa}]: {d} ulps at ({:e}, {:e})",
            T::DTYPE,
            y[i],
            x[i]
        );
    }
    assert!(
        d <= 2,
        "atan2 [{} on {isa}]: {d} ulps at ({:e}, {:e}): got {:e}",
        T::DTYPE,
        y[i],
        x[i],
        out[i]
    );
}

#[test]
fn atan2_is_within_two_ulps_and_exact_on_special_values_on_every_instruction_set() {
    for (name, isa) in isas() {
        check_atan2::<f32>(name, |y, x, out| isa.atan2_f32(y, x, out));
        check_atan2::<f64>(name, |y, x, out| isa.atan2_f64(y, x, out));
    }
}

/// fdlibm's erf against values of erf computed here in f64 by series: for |x| <= 2.5 the
/// Maclaurin series `2/sqrt(pi) e^(-x^2) sum 2^n x^(2n+1) / (1 3 5 ... (2n+1))` (positive
/// terms: no cancellation), beyond it `1 - erfc` with erfc's continued fraction (Lentz),
/// to about 1e-15 (its roundings add up: enough to check f32 to an ulp, f64 loosely); and
/// f64 erf to an ulp against tabulated values (rounded from 50-digit ones).
#[test]
fn erf_matches_series_and_tabulated_values() {
    fn erf_series(x: f64) -> f64 {
        let a = x.abs();
        let y = if a <= 2.5 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term > sum * 1e-18 {
                n += 1.0;
                term *= 2.0 * a * a / (2.0 * n + 1.0);
                sum += term;
            }
            // e^(-a^2) with a^2 in two parts
            let (h, l) = (a * a, a.mul_add(a, -(a * a)));
            sum * ((-h).exp() * (1.0 - l)) * std::f64::consts::FRAC_2_SQRT_PI
        } else {
            // erfc a = e^(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / (a + ...))))
            let tiny = 1e-300;
            let (mut f, mut c, mut d) = (a, a, 0.0);
            for k in 1..200 {
                let coef = k as f64 / 2.0;
                d = a + coef * d;
                d = if d == 0.0 { tiny } else { d };
                c = a + coef / c;
                c = if c == 0.0 { tiny } else { c };
                d = 1.0 / d;
                let delta = c * d;
                f *= delta;
                if (delta - 1.0).abs() < 1e-17 {
                    break;
                }
            }
            let (h, l) = (a * a, a.mul_add(a, -(a * a)));
            1.0 - (-h).exp() * (1.0 - l) / f / std::f64::consts::PI.sqrt()
        };
        y.copysign(x)
    }
    // f32 against the series (whose error is far below an f32 ulp), on every ISA's kernel
    let xs: Vec<f32> = (-6000..=6000).map(|i| i as f32 * 1e-3).collect();
    let mut out = vec![0.0f32; xs.len()];
    kernels::unary(UnaryOp::Erf, &xs, &mut out);
    for (&x, &g) in xs.iter().zip(&out) {
        let want = erf_series(x as f64) as f32;
        assert!(
            ulps(g, want) <= 1,
            "erf({x}) [f32]: got {g:e}, want {want:e}"
        );
    }
    let xs: Vec<f64> = (-6000..=6000).map(|i| i as f64 * 1e-3 + 1e-5).collect();
    let mut out = vec![0.0f64; xs.len()];
    kernels::unary(UnaryOp::Erf, &xs, &mut out);
    for (&x, &g) in xs.iter().zip(&out) {
        let want = erf_series(x);
        assert!(
            (g - want).abs() <= 1.5e-15 * want.abs(),
            "erf({x}) [f64]: got {g:e}, want {want:e}"
        );
    }
    // erf(x) to 17 significant digits (from 50-digit values)
    let table: [(f64, f64); 12] = [
        (1e-10, 1.1283791670955126e-10),
        (0.01, 0.011283415555849618),
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (0.84375, 0.7672256612323416),
        (1.0, 0.8427007929497149),
        (1.25, 0.9229001282564583),
        (2.0, 0.9953222650189527),
        (2.857142857142857, 0.9999466876886117),
        (3.5, 0.9999992569016276),
        (5.0, 0.9999999999984626),
        (5.9, 0.9999999999999999),
    ];
    let xs: Vec<f64> = table.iter().flat_map(|&(x, _)| [x, -x]).collect();
    let mut out = vec![0.0f64; xs.len()];
    kernels::unary(UnaryOp::Erf, &xs, &mut out);
    for (k, &(x, want)) in table.iter().enumerate() {
        for (g, want) in [(out[2 * k], want), (out[2 * k + 1], -want)] {
            assert!(ulps(g, want) <= 1, "erf({x}): got {g:e}, want {want:e}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Kernels through the public interface

const UNARY_OPS: &[UnaryOp] = &[
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Exp,
    UnaryOp::Ln,
    UnaryOp::Log1p,
    UnaryOp::Expm1,
    UnaryOp::Sin,
    UnaryOp::Cos,
    UnaryOp::Tan,
    UnaryOp::Tanh,
    UnaryOp::Sqrt,
    UnaryOp::Recip,
    UnaryOp::Sigmoid,
    UnaryOp::Softplus,
    UnaryOp::Relu,
    UnaryOp::Sign,
    UnaryOp::Powi(0),
    UnaryOp::Powi(3),
    UnaryOp::Powi(-2),
    UnaryOp::Powf(0.5),
    UnaryOp::Powf(-1.5),
    UnaryOp::Asin,
    UnaryOp::Acos,
    UnaryOp::Atan,
    UnaryOp::Sinh,
    UnaryOp::Cosh,
    UnaryOp::Asinh,
    UnaryOp::Acosh,
    UnaryOp::Atanh,
    UnaryOp::Exp2,
    UnaryOp::Log2,
    UnaryOp::Log10,
    UnaryOp::Cbrt,
    UnaryOp::Floor,
    UnaryOp::Ceil,
    UnaryOp::Round,
    UnaryOp::Trunc,
    UnaryOp::Erf,
];

/// Allowed error of a unary kernel against `unary_scalar`, in ulps (`std` itself may be
/// 1 ulp off, and sigmoid's reference rounds differently).
fn unary_tolerance(op: UnaryOp) -> u64 {
    match op {
        UnaryOp::Exp | UnaryOp::Ln | UnaryOp::Sin | UnaryOp::Cos => 3,
        UnaryOp::Log1p | UnaryOp::Expm1 | UnaryOp::Tan | UnaryOp::Tanh | UnaryOp::Sigmoid => 4,
        UnaryOp::Softplus => 4,
        UnaryOp::Asin
        | UnaryOp::Acos
        | UnaryOp::Atan
        | UnaryOp::Exp2
        | UnaryOp::Log2
        | UnaryOp::Log10
        | UnaryOp::Cbrt
        | UnaryOp::Erf => 3,
        UnaryOp::Sinh | UnaryOp::Cosh | UnaryOp::Asinh | UnaryOp::Acosh | UnaryOp::Atanh => 4,
        _ => 0,
    }
}

fn check_unary<T: Float + std::fmt::LowerExp>() {
    let mut rng = Rng::new(7);
    let mut lengths = LENGTHS.to_vec();
    lengths.push(kernels::PAR_THRESHOLD + 5); // parallel path
    for &len in &lengths {
        let x: Vec<T> = sample(&mut rng, len);
        for &op in UNARY_OPS {
            let mut out = vec![T::zero(); len];
            kernels::unary(op, &x, &mut out);
            for (i, (&xi, &yi)) in x.iter().zip(&out).enumerate() {
                let want = kernels::unary_scalar(op, xi);
                let d = ulps(yi, want);
                assert!(
                    d <= unary_tolerance(op),
                    "unary {op:?} [{}], len {len}, element {i}: x = {xi:e}: got {yi:e}, want {want:e} ({d} ulps)",
                    T::DTYPE
                );
            }
        }
    }
}

#[test]
fn unary_kernels_match_the_scalar_definitions() {
    check_unary::<f32>();
    check_unary::<f64>();
}

const BINARY_OPS: &[BinaryOp] = &[
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::Atan2,
];

/// Allowed error of a binary kernel against `binary_scalar`, in ulps.
fn binary_tolerance(op: BinaryOp) -> u64 {
    match op {
        BinaryOp::Atan2 => 3,
        _ => 0,
    }
}

/// `got` within `tol` ulps of `want`, elementwise (NaN only with NaN).
fn within_ulps<T: Float>(what: &str, got: &[T], want: &[T], tol: u64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = ulps(g, w);
        assert!(
            d <= tol,
            "{what} [{}]: element {i}: got {g}, want {w} ({d} ulps)",
            T::DTYPE
        );
    }
}

fn check_binary<T: Float>() {
    let mut rng = Rng::new(11);
    let mut lengths = LENGTHS.to_vec();
    lengths.push(kernels::PAR_THRESHOLD + 5);
    for &len in &lengths {
        let a: Vec<T> = sample(&mut rng, len);
        let b: Vec<T> = sample(&mut rng, len);
        let scalar = T::from_f64(-0.75);
        for &op in BINARY_OPS {
            let what = format!("binary {op:?}, len {len}");
            let mut out = vec![T::zero(); len];
            kernels::binary(op, &a, &b, &mut out);
            let want: Vec<T> = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| kernels::binary_scalar(op, x, y))
                .collect();
            within_ulps(&what, &out, &want, binary_tolerance(op));

            kernels::binary_scalar_rhs(op, &a, scalar, &mut out);
            let want: Vec<T> = a
                .iter()
                .map(|&x| kernels::binary_scalar(op, x, scalar))
                .collect();
            within_ulps(
                &format!("{what} (scalar rhs)"),
                &out,
                &want,
                binary_tolerance(op),
            );

            kernels::binary_scalar_lhs(op, scalar, &b, &mut out);
            let want: Vec<T> = b
                .iter()
                .map(|&y| kernels::binary_scalar(op, scalar, y))
                .collect();
            within_ulps(
                &format!("{what} (scalar lhs)"),
                &out,
                &want,
                binary_tolerance(op),
            );
        }
        for op in [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ] {
            let mut out = vec![false; len];
            // compare a with itself too, so that equality is exercised
            for rhs in [&b, &a] {
                kernels::compare(op, &a, rhs, &mut out);
                for (i, ((&x, &y), &o)) in a.iter().zip(rhs.iter()).zip(&out).enumerate() {
                    let want = match op {
                        CmpOp::Eq => x == y,
                        CmpOp::Ne => x != y,
                        CmpOp::Lt => x < y,
                        CmpOp::Le => x <= y,
                        CmpOp::Gt => x > y,
                        CmpOp::Ge => x >= y,
                    };
                    assert_eq!(
                        o,
                        want,
                        "compare {op:?} [{}], len {len}, element {i}: {x} vs {y}",
                        T::DTYPE
                    );
                }
            }
        }
    }
}

#[test]
fn binary_kernels_match_the_scalar_definitions() {
    check_binary::<f32>();
    check_binary::<f64>();
}

/// The plain reference of `reduce_axis`, accumulating in f64.
fn reduce_reference<T: Float>(
    op: ReduceOp,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
) -> Vec<T> {
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = match op {
                ReduceOp::Sum => 0.0,
                ReduceOp::Max => f64::NEG_INFINITY,
                ReduceOp::Min => f64::INFINITY,
            };
            for k in 0..n {
                let v = x[(o * n + k) * inner + i].to_f64();
                acc = match op {
                    ReduceOp::Sum => acc + v,
                    _ if v.is_nan() || acc.is_nan() => f64::NAN,
                    ReduceOp::Max => acc.max(v),
                    ReduceOp::Min => acc.min(v),
                };
            }
            out.push(T::from_f64(acc));
        }
    }
    out
}

/// Shapes `[outer, n, inner]` covering empty axes, rows shorter and longer than a
/// vector, column blocks with tails, and sizes that go parallel.
const AXIS_SHAPES: &[(usize, usize, usize)] = &[
    (1, 0, 1),
    (0, 5, 1),
    (3, 0, 4),
    (2, 5, 0),
    (1, 1, 1),
    (1, 17, 1),
    (5, 33, 1),
    (3, 7, 5),
    (2, 9, 17),
    (4, 3, 300),
    (1, 1000, 1),
    (64, 1025, 1),
    (2, 300, 259),
    // column segments a page wide, the last one ragged
    (1, 5, 2500),
    (1, 200_003, 1),
    (3, 70_001, 1),
    (1, 40, 1030),
];

fn check_reduce<T: Float>() {
    let mut rng = Rng::new(13);
    for &(outer, n, inner) in AXIS_SHAPES {
        let finite: Vec<T> = (0..outer * n * inner)
            .map(|_| T::from_f64(rng.range(-2.0, 2.0)))
            .collect();
        let mut with_specials = finite.clone();
        for (i, v) in with_specials.iter_mut().enumerate() {
            match i % 97 {
                3 => *v = T::nan(),
                50 => *v = T::infinity(),
                70 => *v = T::neg_infinity(),
                _ => {}
            }
        }
        for x in [&finite, &with_specials] {
            for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
                let mut out = vec![T::zero(); outer * inner];
                kernels::reduce_axis(op, x, outer, n, inner, &mut out);
                let want = reduce_reference(op, x, outer, n, inner);
                let what = format!("reduce {op:?} over [{outer}, {n}, {inner}]");
                let rel = if op == ReduceOp::Sum {
                    1e3 * T::epsilon().to_f64()
                } else {
                    0.0
                };
                // a sum's error is relative to the sum of magnitudes, not to the sum
                let scale = (n as f64).sqrt().max(1.0);
                close(&what, &out, &want, rel * scale);
                if outer * inner == 1 {
                    let all = kernels::reduce_all(op, x);
                    close(&format!("{what} (reduce_all)"), &[all], &want, rel * scale);
                }
            }
        }
    }
}

#[test]
fn reductions_match_the_reference_for_every_layout() {
    check_reduce::<f32>();
    check_reduce::<f64>();
}

#[test]
fn long_f32_sums_stay_accurate() {
    // 2^24 + 1 ones: a naive f32 running sum stops at 2^24
    let x = vec![1.0f32; (1 << 24) + 1];
    assert_eq!(kernels::reduce_all(ReduceOp::Sum, &x), (1u32 << 24) as f32);
    let x = vec![0.1f32; 10_000_000];
    let s = kernels::reduce_all(ReduceOp::Sum, &x) as f64;
    let want = 0.1f32 as f64 * 1e7;
    assert!(
        (s - want).abs() / want < 1e-6,
        "sum of 1e7 x 0.1: got {s}, want {want}"
    );
}

fn argmax_reference<T: Float>(x: &[T], outer: usize, n: usize, inner: usize) -> Vec<i32> {
    let mut out = Vec::new();
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| x[(o * n + k) * inner + i];
            let mut best = 0;
            for k in 1..n {
                if at(best).is_nan() {
                    break;
                }
                if at(k) > at(best) || at(k).is_nan() {
                    best = k;
                }
            }
            out.push(best as i32);
        }
    }
    out
}

fn check_argmax<T: Float>() {
    let mut rng = Rng::new(17);
    for &(outer, n, inner) in AXIS_SHAPES {
        if n == 0 {
            continue;
        }
        // few distinct values, so ties are common
        let plain: Vec<T> = (0..outer * n * inner)
            .map(|_| T::from_f64((rng.next_u64() % 9) as f64))
            .collect();
        let mut special = plain.clone();
        for (i, v) in special.iter_mut().enumerate() {
            match i % 89 {
                5 => *v = T::nan(),
                40 => *v = T::infinity(),
                _ => {}
            }
        }
        let all_neg_inf = vec![T::neg_infinity(); outer * n * inner];
        for x in [&plain, &special, &all_neg_inf] {
            let mut out = vec![-1; outer * inner];
            kernels::argmax_axis(x, outer, n, inner, &mut out);
            assert_eq!(
                out,
                argmax_reference(x, outer, n, inner),
                "argmax over [{outer}, {n}, {inner}] [{}]",
                T::DTYPE
            );
        }
    }
}

#[test]
fn argmax_finds_the_first_maximum_and_the_first_nan() {
    check_argmax::<f32>();
    check_argmax::<f64>();
}

/// The plain reference of `softmax_axis`, in f64.
fn softmax_reference<T: Float>(
    op: SoftmaxOp,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
) -> Vec<T> {
    let len = if op == SoftmaxOp::LogSumExp {
        outer * inner
    } else {
        x.len()
    };
    let mut out = vec![T::zero(); len];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * n + k) * inner + i;
            let m = (0..n)
                .map(|k| x[at(k)].to_f64())
                .fold(f64::NEG_INFINITY, |a, b| {
                    if a.is_nan() || b.is_nan() {
                        f64::NAN
                    } else {
                        a.max(b)
                    }
                });
            let shift = if m.is_finite() { m } else { 0.0 };
            // x - shift rounds in T, as in any implementation; the rest is exact here
            let d = |k: usize| (x[at(k)] - T::from_f64(shift)).to_f64();
            let s: f64 = (0..n).map(|k| d(k).exp()).sum();
            match op {
                SoftmaxOp::Softmax => {
                    for k in 0..n {
                        out[at(k)] = T::from_f64(d(k).exp() / s);
                    }
                }
                SoftmaxOp::LogSoftmax => {
                    for k in 0..n {
                        out[at(k)] = T::from_f64(d(k) - s.ln());
                    }
                }
                SoftmaxOp::LogSumExp => out[o * inner + i] = T::from_f64(shift + s.ln()),
            }
        }
    }
    out
}

fn check_softmax<T: Float>() {
    let mut rng = Rng::new(19);
    for &(outer, n, inner) in AXIS_SHAPES {
        let len = outer * n * inner;
        let plain: Vec<T> = (0..len)
            .map(|_| T::from_f64(rng.range(-30.0, 30.0)))
            .collect();
        // a masked row (all -inf), a NaN, +inf
        let mut special = plain.clone();
        if n > 0 && inner > 0 && outer > 0 {
            for k in 0..n {
                special[k * inner] = T::neg_infinity();
            }
            special[len - 1] = T::nan();
            special[len / 2] = T::infinity();
        }
        // far below 0 (exp underflows without the shift), and a column masked (-inf) in
        // its first half: the running shift starts high and moves a long way down
        let mut low: Vec<T> = plain.iter().map(|&v| v - T::from_f64(200.0)).collect();
        if outer > 0 && inner > 1 {
            for k in 0..n / 2 {
                low[k * inner + 1] = T::neg_infinity();
            }
        }
        for x in [&plain, &special, &low] {
            for op in [
                SoftmaxOp::Softmax,
                SoftmaxOp::LogSoftmax,
                SoftmaxOp::LogSumExp,
            ] {
                let want = softmax_reference(op, x, outer, n, inner);
                let mut out = vec![T::zero(); want.len()];
                kernels::softmax_axis(op, x, outer, n, inner, &mut out);
                let what = format!("{op:?} over [{outer}, {n}, {inner}]");
                for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
                    let (g64, w64) = (g.to_f64(), w.to_f64());
                    // log-softmax values are differences: their error scales with the inputs
                    // (sums of n terms: the error grows like sqrt(n))
                    let tol = 16.0
                        * T::epsilon().to_f64()
                        * (n as f64).sqrt().max(1.0)
                        * (w64.abs() + 32.0 * (op != SoftmaxOp::Softmax) as u8 as f64);
                    let ok = (g.is_nan() && w.is_nan()) || g64 == w64 || (g64 - w64).abs() <= tol;
                    assert!(ok, "{what} [{}]: element {i}: got {g}, want {w}", T::DTYPE);
                }
            }
        }
    }
}

#[test]
fn softmax_family_matches_the_reference_for_every_layout() {
    check_softmax::<f32>();
    check_softmax::<f64>();
}

fn matmul_reference<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
) -> Vec<T> {
    let at = |v: &MatRef<'_, T>, r: usize, c: usize| {
        v.data[(v.offset as isize + r as isize * v.rs + c as isize * v.cs) as usize].to_f64()
    };
    let mut c = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            c.push(T::from_f64((0..k).map(|p| at(a, i, p) * at(b, p, j)).sum()));
        }
    }
    c
}

fn check_matmul<T: Float>() {
    let mut rng = Rng::new(23);
    let sizes = [
        (0, 3, 4),
        (3, 0, 4),
        (3, 4, 0),
        (1, 1, 1),
        // outer products (k = 1), with and without a partial vector per row, and rows
        // shorter than a vector (each row's store runs over the next ones)
        (64, 128, 1),
        (9, 3, 1),
        (37, 21, 1),
        (128, 10, 1),
        // few terms (k <= 4): rows of whole vectors, partial ones, rows shorter than one
        (33, 64, 4),
        (37, 21, 2),
        (40, 17, 3),
        (5, 3, 4),
        // few columns (n <= 4, k >= 32): rows of whole vectors and with a partial one
        (70, 3, 64),
        (50, 2, 33),
        (20, 4, 47),
        (16, 1, 32),
        (2, 3, 4),
        (7, 5, 3),
        (16, 16, 16),
        (17, 33, 9),
        (1, 300, 200),
        (300, 1, 200),
        (128, 96, 257),
        // above the row-band threshold, with unequal bands
        (131, 70, 250),
        (256, 256, 256),
    ];
    for (m, n, k) in sizes {
        let a_data: Vec<T> = (0..m * k + 3)
            .map(|_| T::from_f64(rng.range(-1.0, 1.0)))
            .collect();
        let b_data: Vec<T> = (0..k * n + 5)
            .map(|_| T::from_f64(rng.range(-1.0, 1.0)))
            .collect();
        // a row-major with an offset, or column-major (a transposed view); b likewise
        let a_views = [
            MatRef {
                data: &a_data[..],
                offset: 3,
                rs: k as isize,
                cs: 1,
            },
            MatRef {
                data: &a_data[..],
                offset: 0,
                rs: 1,
                cs: m as isize,
            },
        ];
        let b_views = [
            MatRef {
                data: &b_data[..],
                offset: 0,
                rs: n as isize,
                cs: 1,
            },
            MatRef {
                data: &b_data[..],
                offset: 5,
                rs: 1,
                cs: k as isize,
            },
            // a row repeated (stride 0), as a broadcast view gives
            MatRef {
                data: &b_data[..],
                offset: 0,
                rs: 0,
                cs: 1,
            },
        ];
        for a in &a_views {
            for b in &b_views {
                if b.rs == 0 && n > b_data.len() {
                    continue;
                }
                let want = matmul_reference(m, n, k, a, b);
                let mut c = vec![T::nan(); m * n];
                kernels::matmul(m, n, k, *a, *b, &mut c);
                let what = format!(
                    "matmul {m}x{k} @ {k}x{n}, strides a ({}, {}), b ({}, {})",
                    a.rs, a.cs, b.rs, b.cs
                );
                let tol = 4.0 * T::epsilon().to_f64() * (k as f64).sqrt().max(1.0);
                for (i, (&g, &w)) in c.iter().zip(&want).enumerate() {
                    let err = (g.to_f64() - w.to_f64()).abs();
                    assert!(
                        err <= tol * (k as f64).max(1.0),
                        "{what} [{}]: element {i}: got {g}, want {w}",
                        T::DTYPE
                    );
                }
            }
        }
    }
}

#[test]
fn outer_products_read_strided_columns_and_rows() {
    let data: Vec<f64> = (0..40).map(|i| i as f64 - 7.5).collect();
    // a: a column of 5 with stride 3 from offset 1; b: a row of 19 with stride 2
    let a = MatRef {
        data: &data,
        offset: 1,
        rs: 3,
        cs: 1,
    };
    let b = MatRef {
        data: &data,
        offset: 0,
        rs: 1,
        cs: 2,
    };
    let mut c = vec![f64::NAN; 5 * 19];
    kernels::matmul(5, 19, 1, a, b, &mut c);
    for i in 0..5 {
        for j in 0..19 {
            assert_eq!(c[i * 19 + j], data[1 + 3 * i] * data[2 * j], "[{i}, {j}]");
        }
    }
}

#[test]
fn matmul_matches_the_reference_for_any_strides() {
    check_matmul::<f32>();
    check_matmul::<f64>();
}

/// `kernels::matmul` of `a` and `b` on a pool of each of `threads` sizes, against `want`
/// to 1e-12 relative to the square root of `k`.
fn assert_matmul_on_threads(
    (m, n, k): (usize, usize, usize),
    a: MatRef<'_, f64>,
    b: MatRef<'_, f64>,
    want: &[f64],
    threads: &[usize],
    what: &str,
) {
    for &threads in threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut c = vec![f64::NAN; m * n];
        pool.install(|| kernels::matmul(m, n, k, a, b, &mut c));
        for (i, (&g, &w)) in c.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * (k as f64).sqrt(),
                "{what}, {threads} threads: element {i}: got {g}, want {w}"
            );
        }
    }
}

/// A column-major `b` large enough to be copied row-major in bands of columns, one per
/// thread: the same as the reference with one, two and three threads (bands of unequal
/// widths), `b` at an offset in its data.
#[test]
fn matmul_with_a_transposed_b_in_column_bands() {
    let (m, n, k) = (70, 515, 520);
    let mut rng = Rng::new(31);
    let a: Vec<f64> = (0..m * k).map(|_| rng.range(-1.0, 1.0)).collect();
    let b: Vec<f64> = (0..k * n + 7).map(|_| rng.range(-1.0, 1.0)).collect();
    let a = view(&a, m, k, false);
    let b = MatRef {
        offset: 7,
        ..view(&b, k, n, true)
    };
    let want = matmul_reference(m, n, k, &a, &b);
    assert_matmul_on_threads((m, n, k), a, b, &want, &[1, 2, 3], "column bands");
}

/// Few rows and a column-major `b` (a small batch's `g @ w^T`): computed as `(b^T a^T)^T`,
/// the same as the reference with one and two threads, `b` at an offset in its data.
#[test]
fn matmul_of_few_rows_with_a_transposed_b_is_computed_swapped() {
    for (m, n, k) in [(1, 64, 3), (32, 256, 256), (63, 100, 70), (5, 2000, 33)] {
        let mut rng = Rng::new(37);
        let a: Vec<f64> = (0..m * k).map(|_| rng.range(-1.0, 1.0)).collect();
        let b: Vec<f64> = (0..k * n + 5).map(|_| rng.range(-1.0, 1.0)).collect();
        let a = view(&a, m, k, false);
        let b = MatRef {
            offset: 5,
            ..view(&b, k, n, true)
        };
        let want = matmul_reference(m, n, k, &a, &b);
        let what = format!("{m}x{n}x{k}");
        assert_matmul_on_threads((m, n, k), a, b, &want, &[1, 2], &what);
    }
}

/// Thin products large enough to split over threads (bands of rows): the same as the
/// reference on one, two and three threads, with a row-major and a transposed `b`.
#[test]
fn thin_matmuls_split_over_threads() {
    for (m, n, k) in [(8200, 64, 4), (4100, 4, 130), (4100, 3, 200)] {
        let mut rng = Rng::new(41);
        let a: Vec<f64> = (0..m * k).map(|_| rng.range(-1.0, 1.0)).collect();
        let b: Vec<f64> = (0..k * n).map(|_| rng.range(-1.0, 1.0)).collect();
        let a = view(&a, m, k, false);
        for transposed in [false, true] {
            let b = view(&b, k, n, transposed);
            let want = matmul_reference(m, n, k, &a, &b);
            let what = format!("{m}x{n}x{k}, b transposed {transposed}");
            assert_matmul_on_threads((m, n, k), a, b, &want, &[1, 2, 3], &what);
        }
    }
}

#[test]
#[should_panic(expected = "reaches outside")]
fn matmul_rejects_a_view_outside_its_data() {
    let a = [1.0f32; 4];
    let b = [1.0f32; 4];
    let mut c = [0.0f32; 4];
    fn view(d: &[f32]) -> MatRef<'_, f32> {
        MatRef {
            data: d,
            offset: 1,
            rs: 2,
            cs: 1,
        }
    }
    kernels::matmul(2, 2, 2, view(&a), view(&b), &mut c);
}

/// A `rows x cols` matrix over `d`, row-major or column-major (a transposed view).
fn view<T>(d: &[T], rows: usize, cols: usize, column_major: bool) -> MatRef<'_, T> {
    let (rs, cs) = if column_major {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    };
    MatRef {
        data: d,
        offset: 0,
        rs,
        cs,
    }
}

/// A diagonal factor (the shortcut that scales rows or columns) gives the product exactly,
/// in any layout, on either side; one almost diagonal (a single off-diagonal element, the
/// check's worst case) and an inf in the other factor go through gemm, as IEEE asks.
fn check_diagonal_matmul<T: Float>() {
    let mut rng = Rng::new(29);
    for (k, other) in [(16, 40), (40, 7), (40, 33), (200, 200)] {
        let diag: Vec<T> = (0..k * k)
            .map(|p| {
                if p / k == p % k {
                    T::from_f64(rng.range(-2.0, 2.0))
                } else {
                    T::zero()
                }
            })
            .collect();
        let mut near = diag.clone();
        near[k * k - 2] = T::from_f64(0.5); // row k-1, column k-2
        let dense: Vec<T> = (0..k * other)
            .map(|_| T::from_f64(rng.range(-1.0, 1.0)))
            .collect();
        for (d, what) in [(&diag, "diagonal"), (&near, "almost diagonal")] {
            for transposed in [false, true] {
                for dense_t in [false, true] {
                    let dv = view(d, k, k, transposed);
                    // diag (k x k) @ dense (k x other), and dense (other x k) @ diag
                    let right = view(&dense, k, other, dense_t);
                    let left = view(&dense, other, k, dense_t);
                    for (m, n, a, b) in [(k, other, dv, right), (other, k, left, dv)] {
                        let want = matmul_reference(m, n, k, &a, &b);
                        let mut c = vec![T::nan(); m * n];
                        kernels::matmul(m, n, k, a, b, &mut c);
                        for (i, (&g, &w)) in c.iter().zip(&want).enumerate() {
                            let tol = 8.0 * T::epsilon().to_f64() * (1.0 + w.to_f64().abs());
                            assert!(
                                (g.to_f64() - w.to_f64()).abs() <= tol,
                                "{what} {m}x{k} @ {k}x{n} [{}]: element {i}: got {g}, want {w}",
                                T::DTYPE
                            );
                        }
                    }
                }
            }
        }
        // an inf in the dense factor: 0 * inf is NaN in every row of the product
        let mut with_inf = dense.clone();
        with_inf[0] = T::infinity();
        let b = view(&with_inf, k, other, false);
        let mut c = vec![T::zero(); k * other];
        kernels::matmul(k, other, k, view(&diag, k, k, false), b, &mut c);
        for i in 0..k {
            assert!(
                c[i * other].is_nan() || (i == 0 && c[0].is_infinite()),
                "row {i}: {}",
                c[i * other]
            );
        }
    }
}

#[test]
fn matmul_with_a_diagonal_factor_is_exact() {
    check_diagonal_matmul::<f32>();
    check_diagonal_matmul::<f64>();
}
