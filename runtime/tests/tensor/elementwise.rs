//! Unary and binary elementwise operations, comparisons, `where_` and the Rust operators.

use ferrax_runtime::prelude::*;
use proptest::prelude::*;

use crate::reference::{Arr, broadcast};
use crate::{
    broadcast_group, broadcast_pair, check, config, dtype, input, tol, value, varied_input,
};

/// Reference sign: keeps ±0 and NaN, as the kernel documents.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

fn relu(x: f64) -> f64 {
    if x > 0.0 || x.is_nan() { x } else { 0.0 }
}

type UnaryCase = (&'static str, fn(&Tensor) -> Tensor, fn(f64) -> f64);

const UNARY: &[UnaryCase] = &[
    ("neg", |t| t.neg(), |x| -x),
    ("abs", |t| t.abs(), f64::abs),
    ("exp", |t| t.exp(), f64::exp),
    ("ln", |t| t.ln(), f64::ln),
    ("log1p", |t| t.log1p(), f64::ln_1p),
    ("expm1", |t| t.expm1(), f64::exp_m1),
    ("sin", |t| t.sin(), f64::sin),
    ("cos", |t| t.cos(), f64::cos),
    ("tan", |t| t.tan(), f64::tan),
    ("tanh", |t| t.tanh(), f64::tanh),
    ("sqrt", |t| t.sqrt(), f64::sqrt),
    ("recip", |t| t.recip(), |x| 1.0 / x),
    ("sigmoid", |t| t.sigmoid(), |x| 1.0 / (1.0 + (-x).exp())),
    ("softplus", |t| t.softplus(), |x| (1.0 + x.exp()).ln()),
    ("relu", |t| t.relu(), relu),
    ("sign", |t| t.sign(), sign),
    ("powi(3)", |t| t.powi(3), |x| x.powi(3)),
    ("powi(-2)", |t| t.powi(-2), |x| x.powi(-2)),
    ("powf(1.5)", |t| t.powf(1.5), |x| x.powf(1.5)),
    ("powf(-0.5)", |t| t.powf(-0.5), |x| x.powf(-0.5)),
    ("asin", |t| t.asin(), f64::asin),
    ("acos", |t| t.acos(), f64::acos),
    ("atan", |t| t.atan(), f64::atan),
    ("sinh", |t| t.sinh(), f64::sinh),
    ("cosh", |t| t.cosh(), f64::cosh),
    ("asinh", |t| t.asinh(), libm::asinh),
    ("acosh", |t| t.acosh(), acosh),
    ("atanh", |t| t.atanh(), libm::atanh),
    ("exp2", |t| t.exp2(), f64::exp2),
    ("log2", |t| t.log2(), f64::log2),
    ("log10", |t| t.log10(), f64::log10),
    ("cbrt", |t| t.cbrt(), f64::cbrt),
    ("floor", |t| t.floor(), f64::floor),
    ("ceil", |t| t.ceil(), f64::ceil),
    ("round", |t| t.round(), f64::round),
    ("trunc", |t| t.trunc(), f64::trunc),
    ("erf", |t| t.erf(), libm::erf),
];

/// Reference acosh: musl's (std's loses digits near 1), NaN below 1 (musl's is not for
/// x <= -2).
fn acosh(x: f64) -> f64 {
    if x < 1.0 { f64::NAN } else { libm::acosh(x) }
}

type BinaryCase = (
    &'static str,
    fn(&Tensor, &Tensor) -> Tensor,
    fn(f64, f64) -> f64,
);

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

const BINARY: &[BinaryCase] = &[
    ("add", |a, b| a.add(b), |x, y| x + y),
    ("sub", |a, b| a.sub(b), |x, y| x - y),
    ("mul", |a, b| a.mul(b), |x, y| x * y),
    ("div", |a, b| a.div(b), |x, y| x / y),
    ("pow", |a, b| a.pow(b), f64::powf),
    ("maximum", |a, b| a.maximum(b), nan_max),
    ("minimum", |a, b| a.minimum(b), nan_min),
    ("atan2", |a, b| a.atan2(b), f64::atan2),
];

type CompareCase = (
    &'static str,
    fn(&Tensor, &Tensor) -> Tensor,
    fn(f64, f64) -> bool,
);

const COMPARE: &[CompareCase] = &[
    ("eq", |a, b| a.eq(b), |x, y| x == y),
    ("ne", |a, b| a.ne(b), |x, y| x != y),
    ("lt", |a, b| a.lt(b), |x, y| x < y),
    ("le", |a, b| a.le(b), |x, y| x <= y),
    ("gt", |a, b| a.gt(b), |x, y| x > y),
    ("ge", |a, b| a.ge(b), |x, y| x >= y),
];

fn binary_inputs() -> impl Strategy<Value = (crate::Input, crate::Input)> {
    broadcast_pair().prop_flat_map(|(a, b)| (input(a, value().boxed()), input(b, value().boxed())))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn unary_ops_match_reference(x in varied_input(), dt in dtype()) {
        let t = x.tensor(dt);
        let want = x.arr_in(dt);
        for (name, op, f) in UNARY {
            check(&op(&t), &want.map(f), tol(dt), &format!("{name} {dt} of {x:?}"));
        }
    }

    #[test]
    fn binary_ops_broadcast_like_numpy((a, b) in binary_inputs(), dt in dtype()) {
        let (ta, tb) = (a.tensor(dt), b.tensor(dt));
        let (ra, rb) = (a.arr_in(dt), b.arr_in(dt));
        for (name, op, f) in BINARY {
            let want = ra.zip(&rb, f);
            // f32 results are the f64 results rounded, except where rounding overflows
            let want = if dt == DType::F32 { want.map(|v| v as f32 as f64) } else { want };
            check(&op(&ta, &tb), &want, tol(dt), &format!("{name} {dt}: {a:?} and {b:?}"));
        }
    }

    #[test]
    fn comparisons_broadcast_to_masks((a, b) in binary_inputs(), dt in dtype()) {
        let (ta, tb) = (a.tensor(dt), b.tensor(dt));
        let (ra, rb) = (a.arr_in(dt), b.arr_in(dt));
        for (name, op, f) in COMPARE {
            let got = op(&ta, &tb);
            prop_assert_eq!(got.dtype(), DType::Bool);
            let want = ra.zip(&rb, |x, y| if f(x, y) { 1.0 } else { 0.0 });
            check(&got, &want, 0.0, &format!("{name} {dt}: {a:?} and {b:?}"));
        }
    }

    #[test]
    fn where_broadcasts_all_three(
        (m, a, b) in broadcast_group(3).prop_flat_map(|s| {
            (input(s[0].clone(), value().boxed()), input(s[1].clone(), value().boxed()), input(s[2].clone(), value().boxed()))
        }),
        dt in dtype(),
    ) {
        let (rm, ra, rb) = (m.arr_in(dt), a.arr_in(dt), b.arr_in(dt));
        let mask = m.tensor(dt).gt(&Tensor::zeros(&[], dt));
        let got = Tensor::where_(&mask, &a.tensor(dt), &b.tensor(dt));
        let shape = broadcast(&broadcast(&rm.shape, &ra.shape).unwrap(), &rb.shape).unwrap();
        let want = Arr::from_fn(&shape, |i| if rm.get_broadcast(i) > 0.0 { ra.get_broadcast(i) } else { rb.get_broadcast(i) });
        check(&got, &want, 0.0, &format!("where {dt}: mask {m:?}, a {a:?}, b {b:?}"));
        check(&mask.select(&a.tensor(dt), &b.tensor(dt)), &want, 0.0, "select");
    }

    #[test]
    fn operators_agree_with_methods((a, b) in binary_inputs(), s in -3.0f64..3.0, dt in dtype()) {
        let (ta, tb) = (a.tensor(dt), b.tensor(dt));
        let same = |x: Tensor, y: Tensor, what: &str| check(&x, &crate::reference::Arr::new(y.shape(), crate::values(&y)), 0.0, what);
        same(&ta + &tb, ta.add(&tb), "&a + &b");
        same(ta.clone() - tb.clone(), ta.sub(&tb), "a - b");
        same(ta.clone() * &tb, ta.mul(&tb), "a * &b");
        same(&ta / tb.clone(), ta.div(&tb), "&a / b");
        let st = Tensor::full(&[], s, dt);
        same(&ta * s, ta.mul(&st), "&a * f64");
        same(ta.clone() + s as f32, ta.add(&Tensor::full(&[], s as f32 as f64, dt)), "a + f32");
        same(s - &ta, st.sub(&ta), "f64 - &a");
        same((s as f32) / ta.clone(), Tensor::full(&[], s as f32 as f64, dt).div(&ta), "f32 / a");
        same(-&ta, ta.neg(), "-&a");
        same(-ta.clone(), ta.neg(), "-a");
        let mut acc = ta.clone();
        acc += &tb;
        acc *= 2.0;
        acc -= s;
        acc /= tb.clone();
        same(acc, ta.add(&tb).mul(&Tensor::full(&[], 2.0, dt)).sub(&st).div(&tb), "assigning operators");
    }
}

#[test]
fn scalars_take_the_tensor_dtype() {
    let x32 = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    assert_eq!((&x32 * 0.1f64).dtype(), DType::F32);
    assert_eq!((&x32 * 0.1f64).to_vec::<f32>(), vec![0.1f32, 0.2f32]);
    let x64 = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
    assert_eq!((2.0f32 * &x64).dtype(), DType::F64);
    assert_eq!((x64.clone() + 1.0).to_vec::<f64>(), vec![2.0, 3.0]);
    // a literal on the right needs no annotation even in method position
    assert_eq!((&x32 * 2.0).sum().item::<f32>(), 6.0);
}

#[test]
fn nan_propagates_through_arithmetic_and_maximum() {
    let x = Tensor::from_vec(vec![f64::NAN, 1.0, f64::INFINITY], &[3]);
    let y = Tensor::from_vec(vec![0.0, f64::NAN, f64::NEG_INFINITY], &[3]);
    let s = crate::values(&(&x + &y));
    assert!(s[0].is_nan() && s[1].is_nan() && s[2].is_nan());
    let m = crate::values(&x.maximum(&y));
    assert!(m[0].is_nan() && m[1].is_nan());
    assert_eq!(m[2], f64::INFINITY);
}

#[test]
fn integer_and_bool_tensors_compare() {
    let a = Tensor::from_vec(vec![1i32, 2, 3], &[3]);
    let b = Tensor::from_vec(vec![3i32, 2, 1], &[3]);
    assert_eq!(a.eq(&b).to_vec::<bool>(), vec![false, true, false]);
    assert_eq!(a.lt(&b).to_vec::<bool>(), vec![true, false, false]);
    let m = a.ge(&b);
    assert_eq!(
        m.eq(&Tensor::scalar(true)).to_vec::<bool>(),
        vec![false, true, true]
    );
}

#[test]
fn large_broadcasts_take_the_parallel_row_path() {
    // [300, 500] + [500] and [300, 500] * [300, 1]: rows of contiguous kernel calls
    let (m, n) = (300, 500);
    let a = Tensor::arange(0.0, (m * n) as f64, 1.0, DType::F64).reshape(&[m, n]);
    let row = Tensor::arange(0.0, n as f64, 1.0, DType::F64);
    let col = Tensor::arange(0.0, m as f64, 1.0, DType::F64).reshape(&[m, 1]);
    let s = (&a + &row).to_vec::<f64>();
    let p = (&a * &col).to_vec::<f64>();
    let t = (&a.t().contiguous().t() - &row).to_vec::<f64>();
    for i in 0..m {
        for j in 0..n {
            let v = (i * n + j) as f64;
            assert_eq!(s[i * n + j], v + j as f64);
            assert_eq!(p[i * n + j], v * i as f64);
            assert_eq!(t[i * n + j], v - j as f64);
        }
    }
    // three axes, so that the parallel blocks of rows start in the middle of the outer
    // axes: [d0, d1, d2] sliced from a larger tensor, times [d0, 1, d2], plus [d1, 1]
    let (d0, d1, d2) = (40, 70, 101);
    let big = Tensor::arange(0.0, (d0 * (d1 + 3) * d2) as f64, 1.0, DType::F64).reshape(&[
        d0,
        d1 + 3,
        d2,
    ]);
    let x = big.slice(1, 2, 2 + d1);
    let w = Tensor::arange(0.0, (d0 * d2) as f64, 1.0, DType::F64).reshape(&[d0, 1, d2]);
    let c = Tensor::arange(0.0, d1 as f64, 1.0, DType::F64).reshape(&[d1, 1]);
    let got = (&(&x * &w) + &c).to_vec::<f64>();
    let copied = x.contiguous().to_vec::<f64>();
    for i in 0..d0 {
        for j in 0..d1 {
            for k in 0..d2 {
                let xv = ((i * (d1 + 3) + j + 2) * d2 + k) as f64;
                let at = (i * d1 + j) * d2 + k;
                assert_eq!(copied[at], xv, "copy at [{i}, {j}, {k}]");
                assert_eq!(
                    got[at],
                    xv * (i * d2 + k) as f64 + j as f64,
                    "at [{i}, {j}, {k}]"
                );
            }
        }
    }
}

#[test]
fn unary_ops_on_transposes_keep_the_layout() {
    let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape(&[2, 3]);
    let e = x.t().exp();
    assert_eq!(e.strides(), x.t().strides());
    assert_eq!(e.to_vec::<f32>(), x.exp().t().to_vec::<f32>());
    // a sliced view has gaps: it is copied, and the result is contiguous
    assert!(x.slice(1, 0, 2).exp().is_contiguous());
}

#[test]
fn binary_ops_on_equally_permuted_operands_keep_the_layout() {
    let x = Tensor::arange(0.0, 6.0, 1.0, DType::F64).reshape(&[2, 3]);
    let y = Tensor::arange(10.0, 16.0, 1.0, DType::F64).reshape(&[2, 3]);
    let s = &x.t() + &y.t();
    assert_eq!(s.strides(), x.t().strides());
    assert_eq!(s.to_vec::<f64>(), (&x + &y).t().to_vec::<f64>());
    let scaled = &x.t() * 2.0;
    assert_eq!(scaled.strides(), x.t().strides());
    assert_eq!(scaled.to_vec::<f64>(), (&x * 2.0).t().to_vec::<f64>());
    // a single element of higher rank still broadcasts to its rank
    let high = x.t().add(&Tensor::ones(&[1, 1, 1], DType::F64));
    assert_eq!(high.shape(), &[1, 3, 2]);
    assert_eq!(high.to_vec::<f64>(), (&x + 1.0).t().to_vec::<f64>());
}

proptest! {
    #![proptest_config(config())]

    /// Owned operands may be overwritten in place: every form must still give the
    /// reference result, whichever operand is owned and whatever its layout.
    #[test]
    fn owned_operators_match_reference((a, b) in binary_inputs(), s in -3.0f64..3.0, dt in dtype()) {
        let (ra, rb) = (a.arr_in(dt), b.arr_in(dt));
        let round = |x: Arr| if dt == DType::F32 { x.map(|v| v as f32 as f64) } else { x };
        let s = if dt == DType::F32 { s as f32 as f64 } else { s };
        let t = tol(dt);
        check(&(a.tensor(dt) + &b.tensor(dt)), &round(ra.zip(&rb, |x, y| x + y)), t, "a + &b");
        check(&(&a.tensor(dt) - b.tensor(dt)), &round(ra.zip(&rb, |x, y| x - y)), t, "&a - b");
        check(&(a.tensor(dt) * b.tensor(dt)), &round(ra.zip(&rb, |x, y| x * y)), t, "a * b");
        check(&(a.tensor(dt) / s), &round(ra.map(|x| x / s)), t, "a / s");
        check(&(s - b.tensor(dt)), &round(rb.map(|y| s - y)), t, "s - b");
        check(&(-a.tensor(dt)), &ra.map(|x| -x), 0.0, "-a");
        let mut acc = a.tensor(dt);
        acc -= &b.tensor(dt);
        check(&acc, &round(ra.zip(&rb, |x, y| x - y)), t, "a -= &b");
    }
}

/// A select and a comparison with a repeated value past the parallel threshold, split
/// into chunks (the last one partial): a broadcast mask, one full side and one repeated
/// value, against a plain loop.
#[test]
fn large_selects_run_in_chunks() {
    let (rows, cols) = (301, 1001);
    let x = Tensor::arange(0.0, (rows * cols) as f64, 1.0, DType::F32).reshape(&[rows, cols]);
    let split = (rows * cols / 3) as f32 + 0.5;
    let above = x.gt(&Tensor::scalar(split)).to_vec::<bool>();
    for (i, &g) in above.iter().enumerate() {
        assert_eq!(g, i as f32 > split, "x > {split} at {i}");
    }
    let col_mask: Vec<bool> = (0..cols).map(|j| j % 3 == 0).collect();
    let mask = Tensor::from_vec(col_mask.clone(), &[cols]);
    let got = Tensor::where_(&mask, &x, &Tensor::scalar(-1.0f32)).to_vec::<f32>();
    for (i, &g) in got.iter().enumerate() {
        let want = if col_mask[i % cols] { i as f32 } else { -1.0 };
        assert_eq!(g, want, "element {i}");
    }
    let got = Tensor::where_(&mask, &Tensor::scalar(2.0f32), &x).to_vec::<f32>();
    for (i, &g) in got.iter().enumerate() {
        let want = if col_mask[i % cols] { 2.0 } else { i as f32 };
        assert_eq!(g, want, "element {i}");
    }
}

/// `f(x)` of each `x` in f32 and f64, as f64s.
fn apply(f: fn(&Tensor) -> Tensor, xs: &[f64], dt: DType) -> Vec<f64> {
    let t = match dt {
        DType::F32 => Tensor::from_vec(xs.iter().map(|&x| x as f32).collect(), &[xs.len()]),
        _ => Tensor::from_vec(xs.to_vec(), &[xs.len()]),
    };
    let y = f(&t);
    assert_eq!(y.dtype(), dt);
    crate::values(&y)
}

/// Asserts that `got` and `want` are the same values, NaN for NaN and zeros of one sign.
#[track_caller]
fn same_bits(what: &str, got: &[f64], want: &[f64]) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g.is_nan() && w.is_nan()) || (g == w && g.is_sign_negative() == w.is_sign_negative()),
            "{what}: element {i}: got {g:e}, want {w:e}"
        );
    }
}

type Special = (&'static str, fn(&Tensor) -> Tensor, &'static [(f64, f64)]);

const INF: f64 = f64::INFINITY;
const NAN: f64 = f64::NAN;

/// Exact results of the new functions at special points: NaN in gives NaN, the
/// infinities, signed zeros (kept where std keeps them), out-of-domain NaN, poles and
/// exact values.
const SPECIALS: &[Special] = &[
    (
        "asin",
        |t| t.asin(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (1.1, NAN),
            (-2.0, NAN),
            (INF, NAN),
            (NAN, NAN),
        ],
    ),
    (
        "acos",
        |t| t.acos(),
        &[(1.0, 0.0), (1.5, NAN), (-INF, NAN), (NAN, NAN)],
    ),
    (
        "atan",
        |t| t.atan(),
        &[(0.0, 0.0), (-0.0, -0.0), (NAN, NAN)],
    ),
    (
        "sinh",
        |t| t.sinh(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (INF, INF),
            (-INF, -INF),
            (1000.0, INF),
            (NAN, NAN),
        ],
    ),
    (
        "cosh",
        |t| t.cosh(),
        &[
            (0.0, 1.0),
            (-0.0, 1.0),
            (INF, INF),
            (-INF, INF),
            (-1000.0, INF),
            (NAN, NAN),
        ],
    ),
    (
        "asinh",
        |t| t.asinh(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (INF, INF),
            (-INF, -INF),
            (NAN, NAN),
        ],
    ),
    (
        "acosh",
        |t| t.acosh(),
        &[
            (1.0, 0.0),
            (0.5, NAN),
            (-1.0, NAN),
            (-5.0, NAN),
            (INF, INF),
            (-INF, NAN),
            (NAN, NAN),
        ],
    ),
    (
        "atanh",
        |t| t.atanh(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (1.0, INF),
            (-1.0, -INF),
            (1.5, NAN),
            (-INF, NAN),
            (NAN, NAN),
        ],
    ),
    (
        "exp2",
        |t| t.exp2(),
        &[
            (0.0, 1.0),
            (-0.0, 1.0),
            (10.0, 1024.0),
            (-3.0, 0.125),
            (INF, INF),
            (-INF, 0.0),
            (2000.0, INF),
            (-2000.0, 0.0),
            (NAN, NAN),
        ],
    ),
    (
        "log2",
        |t| t.log2(),
        &[
            (1.0, 0.0),
            (8.0, 3.0),
            (0.125, -3.0),
            (0.0, -INF),
            (-0.0, -INF),
            (-1.0, NAN),
            (INF, INF),
            (-INF, NAN),
            (NAN, NAN),
        ],
    ),
    (
        "log10",
        |t| t.log10(),
        &[
            (1.0, 0.0),
            (10.0, 1.0),
            (1000.0, 3.0),
            (0.0, -INF),
            (-0.0, -INF),
            (-1.0, NAN),
            (INF, INF),
            (NAN, NAN),
        ],
    ),
    (
        "cbrt",
        |t| t.cbrt(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (8.0, 2.0),
            (-27.0, -3.0),
            (0.125, 0.5),
            (INF, INF),
            (-INF, -INF),
            (NAN, NAN),
        ],
    ),
    (
        "floor",
        |t| t.floor(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (-0.5, -1.0),
            (0.5, 0.0),
            (2.5, 2.0),
            (-2.5, -3.0),
            (1.2676506002282294e30, 1.2676506002282294e30),
            (INF, INF),
            (-INF, -INF),
            (NAN, NAN),
        ],
    ),
    (
        "ceil",
        |t| t.ceil(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (-0.5, -0.0),
            (0.5, 1.0),
            (2.5, 3.0),
            (-2.5, -2.0),
            (-1.2676506002282294e30, -1.2676506002282294e30),
            (INF, INF),
            (NAN, NAN),
        ],
    ),
    (
        "round",
        |t| t.round(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (0.5, 1.0),
            (-0.5, -1.0),
            (1.5, 2.0),
            (2.5, 3.0),
            (-2.5, -3.0),
            (0.25, 0.0),
            (-0.25, -0.0),
            (INF, INF),
            (-INF, -INF),
            (NAN, NAN),
        ],
    ),
    (
        "trunc",
        |t| t.trunc(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (-0.5, -0.0),
            (1.75, 1.0),
            (-1.75, -1.0),
            (INF, INF),
            (NAN, NAN),
        ],
    ),
    (
        "erf",
        |t| t.erf(),
        &[
            (0.0, 0.0),
            (-0.0, -0.0),
            (INF, 1.0),
            (-INF, -1.0),
            (7.0, 1.0),
            (-30.0, -1.0),
            (NAN, NAN),
        ],
    ),
];

#[test]
fn new_functions_give_exact_special_values_in_both_dtypes() {
    for (name, f, cases) in SPECIALS {
        let (xs, want): (Vec<f64>, Vec<f64>) = cases.iter().copied().unzip();
        for dt in [DType::F32, DType::F64] {
            same_bits(&format!("{name} {dt}"), &apply(*f, &xs, dt), &want);
        }
    }
}

/// `round` takes halves away from zero (as `f64::round`, unlike WGSL's and NumPy's
/// half-to-even), also next to the halves, and every rounding is exact up to the largest
/// floats that still have a fraction.
#[test]
fn rounding_functions_match_std_exactly() {
    let mut xs = vec![
        0.49999997,
        0.5000001,
        4503599627370495.5,
        4503599627370497.0,
        8388607.5,
        8388609.0,
        -8388607.5,
    ];
    for k in -40..40 {
        let h = k as f64 * 0.5;
        xs.extend([h, h + 1e-9, h - 1e-9, h * 1e6 + 0.5]);
    }
    type Round = (
        &'static str,
        fn(&Tensor) -> Tensor,
        fn(f64) -> f64,
        fn(f32) -> f32,
    );
    let fns: [Round; 4] = [
        ("floor", |t| t.floor(), f64::floor, f32::floor),
        ("ceil", |t| t.ceil(), f64::ceil, f32::ceil),
        ("round", |t| t.round(), f64::round, f32::round),
        ("trunc", |t| t.trunc(), f64::trunc, f32::trunc),
    ];
    for (name, f, r64, r32) in fns {
        let want: Vec<f64> = xs.iter().map(|&x| r64(x)).collect();
        same_bits(&format!("{name} f64"), &apply(f, &xs, DType::F64), &want);
        let want: Vec<f64> = xs.iter().map(|&x| r32(x as f32) as f64).collect();
        same_bits(&format!("{name} f32"), &apply(f, &xs, DType::F32), &want);
    }
}

/// The new functions over their domains, against f64 references (rounded for f32): at
/// most 2 ulps of f64 (the kernels are within about an ulp of correctly rounded, the
/// references too) and 1e-6 relative in f32.
#[test]
fn new_functions_are_accurate_over_their_domains() {
    type Case = (
        &'static str,
        fn(&Tensor) -> Tensor,
        fn(f64) -> f64,
        f64,
        f64,
    );
    let cases: [Case; 13] = [
        ("asin", |t| t.asin(), f64::asin, -1.0, 1.0),
        ("acos", |t| t.acos(), f64::acos, -1.0, 1.0),
        ("atan", |t| t.atan(), f64::atan, -50.0, 50.0),
        ("sinh", |t| t.sinh(), f64::sinh, -80.0, 80.0),
        ("cosh", |t| t.cosh(), f64::cosh, -80.0, 80.0),
        ("asinh", |t| t.asinh(), libm::asinh, -1e6, 1e6),
        ("acosh", |t| t.acosh(), acosh, 1.0, 1e4),
        ("atanh", |t| t.atanh(), libm::atanh, -1.0, 1.0),
        ("exp2", |t| t.exp2(), f64::exp2, -120.0, 120.0),
        ("log2", |t| t.log2(), f64::log2, 0.0, 1e5),
        ("log10", |t| t.log10(), f64::log10, 0.0, 1e5),
        ("cbrt", |t| t.cbrt(), f64::cbrt, -1e5, 1e5),
        ("erf", |t| t.erf(), libm::erf, -6.0, 6.0),
    ];
    let n = 20_001;
    for (name, f, reference, lo, hi) in cases {
        // a linear sweep, and values near the low end (near 0 or 1) by powers
        let mut xs: Vec<f64> = (0..n)
            .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
            .collect();
        xs.extend((1..400).map(|i| lo + (hi - lo) * 0.5f64.powf(i as f64 * 0.1)));
        for dt in [DType::F32, DType::F64] {
            let xs: Vec<f64> = if dt == DType::F32 {
                xs.iter().map(|&x| x as f32 as f64).collect()
            } else {
                xs.clone()
            };
            let got = apply(f, &xs, dt);
            for (&x, &g) in xs.iter().zip(&got) {
                let want = reference(x);
                let ok = if dt == DType::F64 {
                    (g.is_nan() && want.is_nan())
                        || g == want
                        || (g - want).abs() <= 2.0 * f64::EPSILON * want.abs()
                } else {
                    let w = want as f32 as f64;
                    (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 1e-6 * w.abs()
                };
                assert!(ok, "{name} {dt}({x:e}): got {g:e}, want {want:e}");
            }
        }
    }
}

/// atan2 broadcasts as the other binary operations and takes each quadrant's angle, also
/// for signed zeros and infinities (as `f64::atan2`).
#[test]
fn atan2_broadcasts_and_finds_every_quadrant() {
    let pi = std::f64::consts::PI;
    for dt in [DType::F32, DType::F64] {
        // [2, 1] against [4]: rows y = ±1, columns x = 1, 0, -1, -0
        let y = Tensor::from_vec(vec![1.0, -1.0], &[2, 1]).to_dtype(dt);
        let x = Tensor::from_vec(vec![1.0, 0.0, -1.0, -0.0], &[4]).to_dtype(dt);
        let a = y.atan2(&x);
        assert_eq!(a.shape(), &[2, 4]);
        assert_eq!(a.dtype(), dt);
        let want = [pi / 4.0, pi / 2.0, 3.0 * pi / 4.0, pi / 2.0];
        let want: Vec<f64> = want
            .iter()
            .copied()
            .chain(want.iter().map(|w| -w))
            .collect();
        let got = crate::values(&a);
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let w = if dt == DType::F32 { w as f32 as f64 } else { w };
            assert!(
                (g - w).abs() <= 1e-15 * w.abs().max(1.0) || g == w,
                "{dt} [{i}]: got {g}, want {w}"
            );
        }
        // signed zeros and infinities, exactly as std
        let pairs = [
            (0.0, 0.0),
            (-0.0, 0.0),
            (0.0, -0.0),
            (-0.0, -0.0),
            (0.0, -3.0),
            (-0.0, -3.0),
            (2.0, INF),
            (-2.0, INF),
            (2.0, -INF),
            (-2.0, -INF),
            (INF, 1.0),
            (-INF, -1.0),
            (INF, INF),
            (-INF, INF),
            (INF, -INF),
            (-INF, -INF),
            (NAN, 1.0),
            (1.0, NAN),
        ];
        let ys: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let xs: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let (ty, tx) = (
            Tensor::from_vec(ys.clone(), &[ys.len()]).to_dtype(dt),
            Tensor::from_vec(xs.clone(), &[xs.len()]).to_dtype(dt),
        );
        let want: Vec<f64> = pairs
            .iter()
            .map(|&(y, x)| {
                if dt == DType::F32 {
                    (y as f32).atan2(x as f32) as f64
                } else {
                    f64::atan2(y, x)
                }
            })
            .collect();
        same_bits(
            &format!("atan2 specials {dt}"),
            &crate::values(&ty.atan2(&tx)),
            &want,
        );
        // a scalar against a transposed matrix
        let m = Tensor::arange(-3.0, 3.0, 1.0, dt).reshape(&[2, 3]).t();
        let s = Tensor::full(&[], 2.0, dt);
        let got = crate::values(&s.atan2(&m));
        let mv = crate::values(&m);
        for (g, x) in got.iter().zip(&mv) {
            let w = 2f64.atan2(*x);
            assert!(
                (g - w).abs() <= 1e-6 * w.abs(),
                "atan2(2, {x}) {dt}: got {g}, want {w}"
            );
        }
    }
}

#[test]
fn new_functions_reject_integer_and_bool_tensors() {
    type Try = (&'static str, fn(&Tensor) -> ferrax_runtime::Result<Tensor>);
    let fns: [Try; 17] = [
        ("asin", |t| t.try_asin()),
        ("acos", |t| t.try_acos()),
        ("atan", |t| t.try_atan()),
        ("sinh", |t| t.try_sinh()),
        ("cosh", |t| t.try_cosh()),
        ("asinh", |t| t.try_asinh()),
        ("acosh", |t| t.try_acosh()),
        ("atanh", |t| t.try_atanh()),
        ("exp2", |t| t.try_exp2()),
        ("log2", |t| t.try_log2()),
        ("log10", |t| t.try_log10()),
        ("cbrt", |t| t.try_cbrt()),
        ("floor", |t| t.try_floor()),
        ("ceil", |t| t.try_ceil()),
        ("round", |t| t.try_round()),
        ("trunc", |t| t.try_trunc()),
        ("erf", |t| t.try_erf()),
    ];
    let i = Tensor::from_vec(vec![1i32, 2], &[2]);
    let b = Tensor::from_vec(vec![true, false], &[2]);
    for (name, f) in fns {
        for (t, dt) in [(&i, "i32"), (&b, "bool")] {
            let e = f(t).expect_err(name).to_string();
            assert!(e.contains(name) && e.contains(dt), "{name} of {dt}: {e}");
        }
    }
    let e = i.try_atan2(&i).expect_err("atan2 i32").to_string();
    assert!(e.contains("atan2") && e.contains("i32"), "{e}");
    let f = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    let e = f
        .try_atan2(&Tensor::from_vec(vec![1.0f64, 2.0], &[2]))
        .expect_err("atan2 dtypes")
        .to_string();
    assert!(
        e.contains("atan2") && e.contains("f32") && e.contains("f64"),
        "{e}"
    );
    let e = f
        .try_atan2(&Tensor::zeros(&[3], DType::F32))
        .expect_err("atan2 shapes")
        .to_string();
    assert!(
        e.contains("atan2") && e.contains("[2]") && e.contains("[3]"),
        "{e}"
    );
    let r = std::panic::catch_unwind(|| i.erf());
    assert!(r.is_err(), "erf of an i32 tensor panics");
}

/// A float mask selects where it is nonzero (NaN too, -0.0 not), as NumPy reads one, in
/// its own dtype or another; a bool-only dtype error names the alternatives.
#[test]
fn where_reads_float_masks_as_numpy_does() {
    let m = [1.0f64, 0.0, -0.0, f64::NAN, -2.5, f64::INFINITY];
    let (a, b) = (
        Tensor::scalar(7.0f64),
        Tensor::arange(0.0, 6.0, 1.0, DType::F64),
    );
    let want = vec![7.0, 1.0, 2.0, 7.0, 7.0, 7.0];
    for dt in [DType::F64, DType::F32] {
        let mask = Tensor::from_vec(m.to_vec(), &[6]).to_dtype(dt);
        let got = Tensor::where_(&mask, &a.to_dtype(dt), &b.to_dtype(dt));
        assert_eq!(got.to_dtype(DType::F64).to_vec::<f64>(), want, "{dt}");
        // a mask in another float dtype than the operands
        let got = Tensor::where_(&mask, &a.to_dtype(DType::F32), &b.to_dtype(DType::F32));
        assert_eq!(
            got.to_dtype(DType::F64).to_vec::<f64>(),
            want,
            "{dt} mask, f32 operands"
        );
    }
    // broadcast: a row of mask over a matrix
    let mask = Tensor::from_vec(vec![0.0f32, 3.0], &[1, 2]);
    let x = Tensor::arange(0.0, 4.0, 1.0, DType::F32).reshape(&[2, 2]);
    let got = Tensor::where_(&mask, &x, &Tensor::scalar(-1.0f32));
    assert_eq!(got.to_vec::<f32>(), vec![-1.0, 1.0, -1.0, 3.0]);
    let err = Tensor::try_where_(&x.to_dtype(DType::I32), &x, &x).unwrap_err();
    assert!(err.to_string().contains("a bool or float mask"), "{err}");
}
