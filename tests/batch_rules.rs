//! The batching rules of `#[vmap]` (`ferrax::__private::b`): for every helper, every choice of
//! which operands are batched, broadcasting pairs (size-1 axes, rank mismatch), negative axes
//! and batch sizes 0, 1 and 3, the batched result must equal stacking the tensor helper
//! (`t::`) over a loop of examples.

use ferrax::__private::b::{self, B, BArg, BCond};
use ferrax::__private::t::{self, Cond, Operand};
use ferrax::{DType, Key, Tensor};
use std::cell::Cell;

// ----- harness -----

/// How an operand is made: batched with an example shape, an unbatched tensor, a float, a bool.
#[derive(Clone, Debug)]
enum S {
    Bat(Vec<usize>),
    Ten(Vec<usize>),
    F,
    Bool(bool),
}

enum Val {
    Bat(Tensor),
    Ten(Tensor),
    F(f64),
    Bool(bool),
}

impl Val {
    /// As an argument of a batching rule.
    fn b(&self) -> BArg<'_> {
        match self {
            Val::Bat(t) => B(t).into(),
            Val::Ten(t) => t.into(),
            Val::F(x) => (*x).into(),
            Val::Bool(_) => panic!("a bool is not an operand"),
        }
    }

    /// As an argument of a tensor helper (an example).
    fn o(&self) -> Operand<'_> {
        match self {
            Val::Ten(t) => Operand::Tensor(t),
            Val::F(x) => Operand::Scalar(*x),
            _ => panic!("not an example operand"),
        }
    }

    /// The tensor.
    fn t(&self) -> &Tensor {
        match self {
            Val::Bat(t) | Val::Ten(t) => t,
            _ => panic!("not a tensor"),
        }
    }

    /// Example `i` (unbatched values are shared).
    fn example(&self, i: usize) -> Val {
        match self {
            Val::Bat(t) => Val::Ten(t.slice(0, i, i + 1).squeeze(0)),
            Val::Ten(t) => Val::Ten(t.clone()),
            Val::F(x) => Val::F(*x),
            Val::Bool(c) => Val::Bool(*c),
        }
    }
}

thread_local! {
    static SEED: Cell<u64> = const { Cell::new(1) };
}

fn next_key() -> Key {
    SEED.with(|s| {
        let k = s.get();
        s.set(k + 1);
        Key::new(k)
    })
}

fn rand(shape: &[usize], (lo, hi): (f64, f64)) -> Tensor {
    Tensor::uniform(next_key(), shape, lo, hi, DType::F64)
}

fn make(specs: &[S], bsz: usize, dom: (f64, f64)) -> Vec<Val> {
    specs
        .iter()
        .map(|s| match s {
            S::Bat(ex) => {
                let mut shape = vec![bsz];
                shape.extend_from_slice(ex);
                Val::Bat(rand(&shape, dom))
            }
            S::Ten(shape) => Val::Ten(rand(shape, dom)),
            S::F => Val::F(rand(&[], dom).item::<f64>()),
            S::Bool(c) => Val::Bool(*c),
        })
        .collect()
}

#[track_caller]
fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    let (g, w) = (
        got.to_dtype(DType::F64).to_vec::<f64>(),
        want.to_dtype(DType::F64).to_vec::<f64>(),
    );
    for (k, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan()) || a == b,
            "{what}: element {k}: got {a}, want {b}\ngot  {g:?}\nwant {w:?}"
        );
    }
}

/// `fb` on batched operands against stacking `ft` over the examples, for B = 0, 1, 3.
#[track_caller]
fn check_tol(
    name: &str,
    specs: &[S],
    dom: (f64, f64),
    tol: f64,
    fb: impl Fn(&[Val]) -> Tensor,
    ft: impl Fn(&[Val]) -> Tensor,
) {
    for bsz in [0usize, 1, 3] {
        let what = format!("{name} {specs:?} B={bsz}");
        let mut vals = make(specs, bsz, dom);
        let want = if bsz == 0 {
            // the expected example shape, from one example with the same floats
            let one = make(specs, 1, dom);
            for (v, o) in vals.iter_mut().zip(&one) {
                if let (Val::F(_), Val::F(x)) = (&*v, o) {
                    *v = Val::F(*x);
                }
            }
            let ex: Vec<Val> = one.iter().map(|v| v.example(0)).collect();
            let e = ft(&ex);
            let mut shape = vec![0];
            shape.extend_from_slice(e.shape());
            Tensor::zeros(&shape, e.dtype())
        } else {
            let parts: Vec<Tensor> = (0..bsz)
                .map(|i| {
                    let ex: Vec<Val> = vals.iter().map(|v| v.example(i)).collect();
                    ft(&ex)
                })
                .collect();
            Tensor::stack(&parts.iter().collect::<Vec<_>>(), 0)
        };
        let got = fb(&vals);
        assert_close(&what, &got, &want, tol);
    }
}

#[track_caller]
fn check(
    name: &str,
    specs: &[S],
    dom: (f64, f64),
    fb: impl Fn(&[Val]) -> Tensor,
    ft: impl Fn(&[Val]) -> Tensor,
) {
    check_tol(name, specs, dom, 1e-12, fb, ft)
}

/// Every assignment of batched / unbatched (/ float for 0-d shapes) to operands of these
/// example shapes, with at least one batched.
fn patterns(shapes: &[Vec<usize>], floats: bool) -> Vec<Vec<S>> {
    let mut out: Vec<Vec<S>> = vec![vec![]];
    for sh in shapes {
        let mut opts = vec![S::Bat(sh.clone()), S::Ten(sh.clone())];
        if floats && sh.is_empty() {
            opts.push(S::F);
        }
        out = out
            .into_iter()
            .flat_map(|p| {
                opts.iter().map(move |o| {
                    let mut q = p.clone();
                    q.push(o.clone());
                    q
                })
            })
            .collect();
    }
    out.retain(|p| p.iter().any(|s| matches!(s, S::Bat(_))));
    out
}

fn sh(s: &[usize]) -> Vec<usize> {
    s.to_vec()
}

/// Pairs of shapes that broadcast: equal, size-1 axes, rank mismatch, scalars.
fn broadcast_pairs() -> Vec<[Vec<usize>; 2]> {
    vec![
        [sh(&[2, 3]), sh(&[2, 3])],
        [sh(&[2, 3]), sh(&[3])],
        [sh(&[3]), sh(&[2, 3])],
        [sh(&[2, 1]), sh(&[1, 3])],
        [sh(&[4, 1, 3]), sh(&[2, 1])],
        [sh(&[]), sh(&[2, 3])],
        [sh(&[2, 3]), sh(&[])],
        [sh(&[]), sh(&[])],
    ]
}

/// An elementwise reference: `f` on the broadcast operands (floats as f64).
fn ref_map(ops: &[Operand<'_>], f: impl Fn(&[f64]) -> f64) -> Tensor {
    let ts: Vec<Tensor> = ops.iter().map(|o| o.tensor_f64()).collect();
    let mut shape: Vec<usize> = vec![];
    for t in &ts {
        shape = t::add(&Tensor::zeros(&shape, DType::F64), t)
            .shape()
            .to_vec();
    }
    let data: Vec<Vec<f64>> = ts
        .iter()
        .map(|t| t.broadcast_to(&shape).to_vec::<f64>())
        .collect();
    let n: usize = shape.iter().product();
    let out: Vec<f64> = (0..n)
        .map(|i| f(&data.iter().map(|d| d[i]).collect::<Vec<_>>()))
        .collect();
    Tensor::from_vec(out, &shape)
}

trait ToF64 {
    fn tensor_f64(&self) -> Tensor;
}
impl ToF64 for Operand<'_> {
    fn tensor_f64(&self) -> Tensor {
        match self {
            Operand::Tensor(t) => (*t).clone(),
            Operand::Scalar(x) => Tensor::scalar(*x),
        }
    }
}

// ----- elementwise -----

type BinB = fn(BArg<'_>, BArg<'_>) -> Tensor;
type BinT = fn(Operand<'_>, Operand<'_>) -> Tensor;

#[test]
fn binary_ops_match_loop_for_every_batching_and_rank_mismatch() {
    let ops: Vec<(&str, BinB, BinT, (f64, f64))> = vec![
        ("add", |a, b| b::add(a, b), |a, b| t::add(a, b), (-2.0, 2.0)),
        ("sub", |a, b| b::sub(a, b), |a, b| t::sub(a, b), (-2.0, 2.0)),
        ("mul", |a, b| b::mul(a, b), |a, b| t::mul(a, b), (-2.0, 2.0)),
        ("div", |a, b| b::div(a, b), |a, b| t::div(a, b), (0.5, 2.0)),
        ("max", |a, b| b::max(a, b), |a, b| t::max(a, b), (-2.0, 2.0)),
        ("min", |a, b| b::min(a, b), |a, b| t::min(a, b), (-2.0, 2.0)),
        (
            "powf",
            |a, b| b::powf(a, b),
            |a, b| t::powf(a, b),
            (0.5, 2.0),
        ),
        ("lt", |a, b| b::lt(a, b), |a, b| t::lt(a, b), (-1.0, 1.0)),
        ("le", |a, b| b::le(a, b), |a, b| t::le(a, b), (-1.0, 1.0)),
        ("gt", |a, b| b::gt(a, b), |a, b| t::gt(a, b), (-1.0, 1.0)),
        ("ge", |a, b| b::ge(a, b), |a, b| t::ge(a, b), (-1.0, 1.0)),
        ("eq", |a, b| b::eq(a, b), |a, b| t::eq(a, b), (-1.0, 1.0)),
        ("ne", |a, b| b::ne(a, b), |a, b| t::ne(a, b), (-1.0, 1.0)),
    ];
    for (name, fb, ft, dom) in ops {
        for [x, y] in broadcast_pairs() {
            for p in patterns(&[x, y], true) {
                check(
                    name,
                    &p,
                    dom,
                    |v| fb(v[0].b(), v[1].b()),
                    |v| ft(v[0].o(), v[1].o()),
                );
            }
        }
    }
}

#[test]
fn comparisons_match_loop_on_equal_elements() {
    // equal values exercise le/ge/eq against lt/gt/ne
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 2.0, 2.0, 1.0], &[2, 3]);
    let y = Tensor::from_vec(vec![2.0f64, 2.0, 1.0], &[3]);
    for (name, fb, ft) in [
        (
            "le",
            (|a, b| b::le(a, b)) as BinB,
            (|a, b| t::le(a, b)) as BinT,
        ),
        ("eq", |a, b| b::eq(a, b), |a, b| t::eq(a, b)),
        ("ge", |a, b| b::ge(a, b), |a, b| t::ge(a, b)),
    ] {
        let got = fb(B(&x).into(), (&y).into());
        let want = Tensor::stack(
            &[
                &ft(
                    Operand::Tensor(&x.slice(0, 0, 1).squeeze(0)),
                    Operand::Tensor(&y),
                ),
                &ft(
                    Operand::Tensor(&x.slice(0, 1, 2).squeeze(0)),
                    Operand::Tensor(&y),
                ),
            ],
            0,
        );
        assert_close(name, &got, &want, 0.0);
    }
}

#[test]
fn powi_and_unary_ops_match_loop() {
    type Un = fn(BArg<'_>) -> Tensor;
    type UnT = fn(Operand<'_>) -> Tensor;
    let ops: Vec<(&str, Un, UnT, (f64, f64))> = vec![
        ("neg", |x| b::neg(x), |x| t::neg(x), (-2.0, 2.0)),
        ("abs", |x| b::abs(x), |x| t::abs(x), (-2.0, 2.0)),
        ("exp", |x| b::exp(x), |x| t::exp(x), (-2.0, 2.0)),
        ("ln", |x| b::ln(x), |x| t::ln(x), (0.1, 3.0)),
        ("ln1p", |x| b::ln1p(x), |x| t::ln1p(x), (-0.5, 2.0)),
        ("exp_m1", |x| b::exp_m1(x), |x| t::exp_m1(x), (-2.0, 2.0)),
        ("sin", |x| b::sin(x), |x| t::sin(x), (-3.0, 3.0)),
        ("cos", |x| b::cos(x), |x| t::cos(x), (-3.0, 3.0)),
        ("tan", |x| b::tan(x), |x| t::tan(x), (-1.0, 1.0)),
        ("tanh", |x| b::tanh(x), |x| t::tanh(x), (-2.0, 2.0)),
        ("sqrt", |x| b::sqrt(x), |x| t::sqrt(x), (0.0, 3.0)),
        ("recip", |x| b::recip(x), |x| t::recip(x), (0.5, 3.0)),
        ("sigmoid", |x| b::sigmoid(x), |x| t::sigmoid(x), (-3.0, 3.0)),
        ("relu", |x| b::relu(x), |x| t::relu(x), (-1.0, 1.0)),
        ("signum", |x| b::signum(x), |x| t::signum(x), (-1.0, 1.0)),
        (
            "stop_gradient",
            |x| b::stop_gradient(x),
            |x| t::stop_gradient(x),
            (-1.0, 1.0),
        ),
        (
            "ones_like",
            |x| b::ones_like(x),
            |x| t::ones_like(x),
            (-1.0, 1.0),
        ),
        ("powi3", |x| b::powi(x, 3), |x| t::powi(x, 3), (-2.0, 2.0)),
        ("powi-2", |x| b::powi(x, -2), |x| t::powi(x, -2), (0.5, 2.0)),
    ];
    for (name, fb, ft, dom) in ops {
        for s in [sh(&[]), sh(&[3]), sh(&[2, 3]), sh(&[2, 1, 3])] {
            check(name, &[S::Bat(s)], dom, |v| fb(v[0].b()), |v| ft(v[0].o()));
        }
    }
}

#[test]
fn scalar_method_twins_match_f64_methods_elementwise() {
    type Un = fn(BArg<'_>) -> Tensor;
    type F1 = fn(f64) -> f64;
    let ops: Vec<(&str, Un, F1, (f64, f64))> = vec![
        ("asin", |x| b::asin(x), f64::asin, (-0.9, 0.9)),
        ("acos", |x| b::acos(x), f64::acos, (-0.9, 0.9)),
        ("atan", |x| b::atan(x), f64::atan, (-3.0, 3.0)),
        ("sinh", |x| b::sinh(x), f64::sinh, (-3.0, 3.0)),
        ("cosh", |x| b::cosh(x), f64::cosh, (-3.0, 3.0)),
        ("asinh", |x| b::asinh(x), f64::asinh, (-3.0, 3.0)),
        ("acosh", |x| b::acosh(x), f64::acosh, (1.1, 3.0)),
        ("atanh", |x| b::atanh(x), f64::atanh, (-0.9, 0.9)),
        ("exp2", |x| b::exp2(x), f64::exp2, (-4.0, 4.0)),
        ("log2", |x| b::log2(x), f64::log2, (0.1, 8.0)),
        ("log10", |x| b::log10(x), f64::log10, (0.1, 8.0)),
        ("cbrt", |x| b::cbrt(x), f64::cbrt, (-8.0, 8.0)),
        ("floor", |x| b::floor(x), f64::floor, (-3.0, 3.0)),
        ("ceil", |x| b::ceil(x), f64::ceil, (-3.0, 3.0)),
        ("round", |x| b::round(x), f64::round, (-3.0, 3.0)),
        ("trunc", |x| b::trunc(x), f64::trunc, (-3.0, 3.0)),
    ];
    for (name, fb, f, dom) in ops {
        for s in [sh(&[]), sh(&[3]), sh(&[2, 3])] {
            check(
                name,
                &[S::Bat(s)],
                dom,
                |v| fb(v[0].b()),
                |v| ref_map(&[v[0].o()], |x| f(x[0])),
            );
        }
    }
    // tiny arguments: sinh stays accurate
    let x = Tensor::from_vec(vec![1e-9f64, -1e-12, 0.0], &[3, 1]);
    let want = Tensor::from_vec(vec![1e-9f64.sinh(), (-1e-12f64).sinh(), 0.0], &[3, 1]);
    assert_close("sinh tiny", &b::sinh(B(&x)), &want, 1e-15);
}

#[test]
fn binary_and_ternary_twins_match_f64_methods_for_every_batching() {
    type Bin = fn(BArg<'_>, BArg<'_>) -> Tensor;
    type F2 = fn(f64, f64) -> f64;
    let ops: Vec<(&str, Bin, F2, (f64, f64))> = vec![
        ("atan2", |a, b| b::atan2(a, b), f64::atan2, (-2.0, 2.0)),
        ("hypot", |a, b| b::hypot(a, b), f64::hypot, (-2.0, 2.0)),
        ("log", |a, b| b::log(a, b), f64::log, (1.5, 4.0)),
    ];
    for (name, fb, f, dom) in ops {
        for [x, y] in broadcast_pairs() {
            for p in patterns(&[x, y], true) {
                check(
                    name,
                    &p,
                    dom,
                    |v| fb(v[0].b(), v[1].b()),
                    |v| ref_map(&[v[0].o(), v[1].o()], |x| f(x[0], x[1])),
                );
            }
        }
    }
    let shapes = [sh(&[2, 3]), sh(&[3]), sh(&[])];
    for p in patterns(&shapes, true) {
        check(
            "mul_add",
            &p,
            (-2.0, 2.0),
            |v| b::mul_add(v[0].b(), v[1].b(), v[2].b()),
            |v| {
                ref_map(&[v[0].o(), v[1].o(), v[2].o()], |x| {
                    x[0].mul_add(x[1], x[2])
                })
            },
        );
    }
    // clamp: lo in [-2, 0), hi in [0, 2) so that lo <= hi
    for p in patterns(&[sh(&[2, 3]), sh(&[3]), sh(&[])], true) {
        let fb = |v: &[Val]| {
            let (lo, hi) = lohi(v);
            b::clamp(v[0].b(), lo.b(), hi.b())
        };
        let ft = |v: &[Val]| {
            let (lo, hi) = lohi(v);
            ref_map(&[v[0].o(), lo.o(), hi.o()], |x| x[0].clamp(x[1], x[2]))
        };
        check("clamp", &p, (-1.0, 1.0), fb, ft);
    }
}

/// `v[1] - 1` and `v[2] + 1` (so that lo < hi), keeping batched-ness.
fn lohi(v: &[Val]) -> (Val, Val) {
    let shift = |x: &Val, d: f64| match x {
        Val::Bat(t) => Val::Bat(t + d),
        Val::Ten(t) => Val::Ten(t + d),
        Val::F(f) => Val::F(f + d),
        Val::Bool(_) => unreachable!(),
    };
    (shift(&v[1], -1.0), shift(&v[2], 1.0))
}

// ----- select and logic -----

/// A mask from uniform [-1, 1) data (1 where positive), keeping batched-ness.
fn masked(v: &Val) -> Val {
    match v {
        Val::Bat(t) => Val::Bat(t::gt(t, 0.0)),
        Val::Ten(t) => Val::Ten(t::gt(t, 0.0)),
        Val::Bool(c) => Val::Bool(*c),
        Val::F(f) => Val::Bool(*f > 0.0),
    }
}

fn bcond(v: &Val) -> BCond<'_> {
    match v {
        Val::Bat(t) => B(t).into(),
        Val::Ten(t) => t.into(),
        Val::Bool(c) => (*c).into(),
        Val::F(_) => unreachable!(),
    }
}

fn cond(v: &Val) -> Cond<'_> {
    match v {
        Val::Ten(t) => Cond::Mask(t),
        Val::Bool(c) => Cond::Bool(*c),
        _ => unreachable!(),
    }
}

#[test]
fn select_matches_loop_for_every_condition_kind_and_batching() {
    let triples = [
        [sh(&[2, 3]), sh(&[2, 3]), sh(&[2, 3])],
        [sh(&[3]), sh(&[2, 3]), sh(&[])],
        [sh(&[2, 1]), sh(&[]), sh(&[1, 3])],
        [sh(&[]), sh(&[3]), sh(&[2, 1])],
    ];
    for [c, x, y] in triples {
        // masks: every batching of (mask, a, b)
        for p in patterns(&[c.clone(), x.clone(), y.clone()], true) {
            check(
                "select",
                &p,
                (-1.0, 1.0),
                |v| {
                    let m = masked(&v[0]);
                    b::select(bcond(&m), v[1].b(), v[2].b())
                },
                |v| {
                    let m = masked(&v[0]);
                    t::select(cond(&m), v[1].o(), v[2].o())
                },
            );
        }
        // bools: the result still carries the batch axis
        for flag in [true, false] {
            for p in patterns(&[x.clone(), y.clone()], true) {
                let specs = [vec![S::Bool(flag)], p].concat();
                check(
                    "select bool",
                    &specs,
                    (-1.0, 1.0),
                    |v| b::select(bcond(&v[0]), v[1].b(), v[2].b()),
                    |v| t::select(cond(&v[0]), v[1].o(), v[2].o()),
                );
            }
        }
    }
}

#[test]
fn logical_ops_match_loop_and_all_any_see_every_element() {
    for [x, y] in broadcast_pairs() {
        for p in patterns(&[x.clone(), y.clone()], false) {
            for (name, fb, f) in [
                (
                    "bit_and",
                    (|a, b| b::bit_and(a, b)) as fn(BCond<'_>, BCond<'_>) -> Tensor,
                    (|a, b| a && b) as fn(bool, bool) -> bool,
                ),
                ("bit_or", |a, b| b::bit_or(a, b), |a, b| a || b),
            ] {
                check(
                    name,
                    &p,
                    (-1.0, 1.0),
                    |v| {
                        let (m, n) = (masked(&v[0]), masked(&v[1]));
                        fb(bcond(&m), bcond(&n))
                    },
                    |v| {
                        let (m, n) = (masked(&v[0]), masked(&v[1]));
                        ref_map(&[m.o(), n.o()], |x| {
                            f(x[0] != 0.0, x[1] != 0.0) as i32 as f64
                        })
                    },
                );
            }
        }
        // with a bool on either side
        for flag in [true, false] {
            let specs = [S::Bat(x.clone()), S::Bool(flag)];
            check(
                "bit_and bool",
                &specs,
                (-1.0, 1.0),
                |v| b::bit_and(bcond(&masked(&v[0])), flag),
                |v| {
                    ref_map(&[masked(&v[0]).o()], |x| {
                        (x[0] != 0.0 && flag) as i32 as f64
                    })
                },
            );
            check(
                "bit_or bool",
                &specs,
                (-1.0, 1.0),
                |v| b::bit_or(flag, bcond(&masked(&v[0]))),
                |v| {
                    ref_map(&[masked(&v[0]).o()], |x| {
                        (x[0] != 0.0 || flag) as i32 as f64
                    })
                },
            );
        }
        check(
            "not",
            &[S::Bat(x)],
            (-1.0, 1.0),
            |v| b::not(bcond(&masked(&v[0]))),
            |v| t::eq(masked(&v[0]).o(), 0.0),
        );
    }
    let m = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 1.0], &[2, 2]);
    let ones = Tensor::ones(&[2, 2], DType::F64);
    let zeros = Tensor::zeros(&[2, 2], DType::F64);
    assert!(!b::all(B(&m)) && b::any(B(&m)));
    assert!(b::all(B(&ones)) && b::any(B(&ones)));
    assert!(!b::all(B(&zeros)) && !b::any(B(&zeros)));
    let empty = Tensor::zeros(&[0, 3], DType::F64);
    assert!(b::all(B(&empty)) && !b::any(B(&empty)));
    assert!(b::all(true) && !b::any(false) && b::all(&ones));
}

// ----- reductions -----

#[test]
fn whole_reductions_give_one_value_per_example() {
    type Un = fn(BArg<'_>) -> Tensor;
    type UnT = fn(Operand<'_>) -> Tensor;
    let ops: Vec<(&str, Un, UnT)> = vec![
        ("sum", |x| b::sum(x), |x| t::sum(x)),
        ("mean", |x| b::mean(x), |x| t::mean(x)),
        ("max_all", |x| b::max_all(x), |x| t::max_all(x)),
        ("min_all", |x| b::min_all(x), |x| t::min_all(x)),
        (
            "sum_to_scalar",
            |x| b::sum_to_scalar(x),
            |x| Tensor::scalar(t::sum_to_scalar::<f64>(x)),
        ),
    ];
    for (name, fb, ft) in ops {
        for s in [sh(&[]), sh(&[4]), sh(&[2, 3]), sh(&[2, 1, 3])] {
            check(
                name,
                &[S::Bat(s)],
                (-2.0, 2.0),
                |v| fb(v[0].b()),
                |v| ft(v[0].o()),
            );
        }
    }
}

#[test]
fn axis_reductions_and_softmax_shift_axes_past_the_batch_axis() {
    type Ax = fn(BArg<'_>, isize, bool) -> Tensor;
    type AxT = fn(Operand<'_>, isize, bool) -> Tensor;
    let ops: Vec<(&str, Ax, AxT)> = vec![
        (
            "sum_axis",
            |x, a, k| b::sum_axis(x, a, k),
            |x, a, k| t::sum_axis(x, a, k),
        ),
        (
            "mean_axis",
            |x, a, k| b::mean_axis(x, a, k),
            |x, a, k| t::mean_axis(x, a, k),
        ),
        (
            "max_axis",
            |x, a, k| b::max_axis(x, a, k),
            |x, a, k| t::max_axis(x, a, k),
        ),
        (
            "min_axis",
            |x, a, k| b::min_axis(x, a, k),
            |x, a, k| t::min_axis(x, a, k),
        ),
        (
            "log_sum_exp_axis",
            |x, a, k| b::log_sum_exp_axis(x, a, k),
            |x, a, k| t::log_sum_exp_axis(x, a, k),
        ),
        (
            "softmax",
            |x, a, _| b::softmax(x, a),
            |x, a, _| t::softmax(x, a),
        ),
        (
            "log_softmax",
            |x, a, _| b::log_softmax(x, a),
            |x, a, _| t::log_softmax(x, a),
        ),
        (
            "argmax_axis",
            |x, a, k| b::method_argmax_axis(x, a, k),
            |x, a, k| x.tensor_f64().argmax_axis(a, k),
        ),
    ];
    for (name, fb, ft) in ops {
        for s in [sh(&[4]), sh(&[2, 3]), sh(&[2, 1, 3])] {
            let n = s.len() as isize;
            for axis in -n..n {
                for keep in [false, true] {
                    check(
                        name,
                        &[S::Bat(s.clone())],
                        (-2.0, 2.0),
                        |v| fb(v[0].b(), axis, keep),
                        |v| ft(v[0].o(), axis, keep),
                    );
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "out of range")]
fn an_axis_reaching_the_batch_axis_is_out_of_range() {
    let x = Tensor::zeros(&[3, 2], DType::F64);
    b::sum_axis(B(&x), -2, false);
}

// ----- matmul -----

/// `a` and `b` shapes (contracting 3) of every rank 1..=3 on either side, with broadcast
/// batch axes.
fn matmul_pairs() -> Vec<[Vec<usize>; 2]> {
    let lhs = [sh(&[3]), sh(&[2, 3]), sh(&[4, 2, 3]), sh(&[1, 2, 3])];
    let rhs = [sh(&[3]), sh(&[3, 5]), sh(&[4, 3, 5]), sh(&[1, 3, 5])];
    let mut out = vec![];
    for a in &lhs {
        for b in &rhs {
            out.push([a.clone(), b.clone()]);
        }
    }
    out
}

#[test]
fn matmul_matches_loop_for_every_rank_and_batching() {
    for [x, y] in matmul_pairs() {
        for p in patterns(&[x, y], false) {
            check(
                "matmul",
                &p,
                (-1.0, 1.0),
                |v| b::matmul(v[0].b(), v[1].b()),
                |v| t::matmul(v[0].o(), v[1].o()),
            );
        }
    }
}

/// The shape of `a.matmul(&b)` for operands of shapes `a` and `b`.
fn product_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    t::matmul(&Tensor::zeros(a, DType::F64), &Tensor::zeros(b, DType::F64))
        .shape()
        .to_vec()
}

#[test]
fn matmul_transposes_match_loop_for_every_rank_and_batching() {
    for [x, y] in matmul_pairs() {
        // ct is shaped like a @ b (per example)
        let ct = product_shape(&x, &y);
        // matmul_tl(ct, b, like_a)
        for p in patterns(&[ct.clone(), y.clone(), x.clone()], false) {
            check(
                "matmul_tl",
                &p,
                (-1.0, 1.0),
                |v| b::matmul_tl(v[0].b(), v[1].b(), v[2].b()),
                |v| t::matmul_tl(v[0].o(), v[1].o(), v[2].t()),
            );
        }
        // matmul_tr(a, ct, like_b)
        for p in patterns(&[x.clone(), ct.clone(), y.clone()], false) {
            check(
                "matmul_tr",
                &p,
                (-1.0, 1.0),
                |v| b::matmul_tr(v[0].b(), v[1].b(), v[2].b()),
                |v| t::matmul_tr(v[0].o(), v[1].o(), v[2].t()),
            );
        }
    }
}

/// `ProductSum`, a loop's products kept and summed after it in one product: for every rank
/// and batching of `matmul_tr` and of `matmul_tl` (those it cannot join are added at once),
/// 0, 1 or 3 steps flushed into a target (a lazy zero or a tensor of values) equal adding
/// each step as it comes (`acc_matmul_tr`, `acc_matmul_tl`), batched or not.
#[test]
fn product_sums_match_adding_each_step() {
    // (and empty axes: no rows, nothing contracted, no columns)
    let empty = [
        [sh(&[0, 3]), sh(&[3, 5])],
        [sh(&[2, 0]), sh(&[0, 5])],
        [sh(&[2, 3]), sh(&[3, 0])],
        [sh(&[0]), sh(&[0, 5])],
    ];
    for [x, y] in matmul_pairs().into_iter().chain(empty) {
        let ct = product_shape(&x, &y);
        // (operand shapes, the shape donor's, whether it is `matmul_tl`)
        for (ops, like, tl) in [([&x, &ct], &y, false), ([&ct, &y], &x, true)] {
            for steps in [0, 1, 3] {
                for lazy in [true, false] {
                    product_sum_case(ops, like, tl, steps, lazy);
                }
            }
        }
    }
}

fn product_sum_case(ops: [&Vec<usize>; 2], like: &[usize], tl: bool, steps: usize, lazy: bool) {
    let start = |shape: &[usize]| {
        let t = rand(shape, (-1.0, 1.0));
        if lazy { t::zero_like(&t) } else { t }
    };
    // unbatched
    let l = rand(like, (-1.0, 1.0));
    let steps_ops: Vec<[Tensor; 2]> = (0..steps)
        .map(|_| [rand(ops[0], (-1.0, 1.0)), rand(ops[1], (-1.0, 1.0))])
        .collect();
    let mut want = start(like);
    let (mut got, mut stepwise) = (want.clone(), want.clone());
    let mut sum = t::ProductSum::default();
    for [p, q] in &steps_ops {
        if tl {
            t::acc(&mut want, &t::matmul_tl(p, q, &l));
            t::acc_matmul_tl(&mut stepwise, p, q, &l);
            sum.add_tl(&mut got, p, q, &l);
        } else {
            t::acc(&mut want, &t::matmul_tr(p, q, &l));
            t::acc_matmul_tr(&mut stepwise, p, q, &l);
            sum.add_tr(&mut got, p, q, &l);
        }
    }
    sum.flush(&mut got, &l);
    let what = format!("t::ProductSum (tl: {tl}) {ops:?} {like:?}, {steps} steps");
    assert_close(&what, &got, &want, 1e-12);
    assert_close(&format!("stepwise {what}"), &stepwise, &want, 1e-12);
    // every batching
    for p in patterns(&[ops[0].clone(), ops[1].clone(), like.to_vec()], false) {
        for bsz in [0, 1, 3] {
            let l = make(&p[2..], bsz, (-1.0, 1.0)).remove(0);
            let steps_ops: Vec<Vec<Val>> = (0..steps)
                .map(|_| make(&p[..2], bsz, (-1.0, 1.0)))
                .collect();
            let mut want = start(&[&[bsz][..], like].concat());
            let (mut got, mut stepwise) = (want.clone(), want.clone());
            let mut sum = b::ProductSum::default();
            for v in &steps_ops {
                let (p, q) = (v[0].b(), v[1].b());
                if tl {
                    t::acc(&mut want, &b::matmul_tl(p, q, l.b()));
                    b::acc_matmul_tl(&mut stepwise, p, q, l.b());
                    sum.add_tl(&mut got, p, q, l.b());
                } else {
                    t::acc(&mut want, &b::matmul_tr(p, q, l.b()));
                    b::acc_matmul_tr(&mut stepwise, p, q, l.b());
                    sum.add_tr(&mut got, p, q, l.b());
                }
            }
            sum.flush(&mut got, l.b());
            let what = format!("b::ProductSum (tl: {tl}) {p:?}, B = {bsz}, {steps} steps");
            assert_close(&what, &got, &want, 1e-12);
            assert_close(&format!("stepwise {what}"), &stepwise, &want, 1e-12);
        }
    }
}

#[test]
fn mlp_fast_paths_match_loop() {
    let x = rand(&[3, 4], (-1.0, 1.0)); // batched inputs
    let w = rand(&[4, 5], (-1.0, 1.0));
    let ct = rand(&[3, 5], (-1.0, 1.0));
    let xs = rand(&[3, 5, 2], (-1.0, 1.0));
    let ex = |t: &Tensor, i: usize| t.slice(0, i, i + 1).squeeze(0);
    let stack = |f: &dyn Fn(usize) -> Tensor| {
        let parts: Vec<Tensor> = (0..3).map(f).collect();
        Tensor::stack(&parts.iter().collect::<Vec<_>>(), 0)
    };
    assert_close(
        "x @ w",
        &b::matmul(B(&x), &w),
        &stack(&|i| t::matmul(&ex(&x, i), &w)),
        1e-12,
    );
    assert_close(
        "w @ X",
        &b::matmul(&w, B(&xs)),
        &stack(&|i| t::matmul(&w, &ex(&xs, i))),
        1e-12,
    );
    assert_close(
        "w @ x",
        &b::matmul(&w, B(&ct)),
        &stack(&|i| t::matmul(&w, &ex(&ct, i))),
        1e-12,
    );
    assert_close(
        "outer products",
        &b::matmul_tr(B(&x), B(&ct), &w),
        &stack(&|i| t::matmul_tr(&ex(&x, i), &ex(&ct, i), &w)),
        1e-12,
    );
    assert_close(
        "ct @ wᵀ",
        &b::matmul_tl(B(&ct), &w, B(&x)),
        &stack(&|i| t::matmul_tl(&ex(&ct, i), &w, &ex(&x, i))),
        1e-12,
    );
}

// ----- views -----

#[test]
fn views_match_loop_with_negative_axes() {
    let bat = |s: &[usize]| [S::Bat(s.to_vec())];
    check(
        "reshape",
        &bat(&[2, 3]),
        (-1.0, 1.0),
        |v| b::reshape(v[0].b(), &[3, 1, 2]),
        |v| t::reshape(v[0].o(), &[3, 1, 2]),
    );
    check(
        "flatten",
        &bat(&[2, 3]),
        (-1.0, 1.0),
        |v| b::flatten(v[0].b()),
        |v| t::flatten(v[0].o()),
    );
    check(
        "flatten 0-d",
        &bat(&[]),
        (-1.0, 1.0),
        |v| b::flatten(v[0].b()),
        |v| t::flatten(v[0].o()),
    );
    check(
        "t",
        &bat(&[2, 3]),
        (-1.0, 1.0),
        |v| b::t(v[0].b()),
        |v| t::t(v[0].o()),
    );
    for axis in -3..3 {
        check(
            "unsqueeze",
            &bat(&[2, 3]),
            (-1.0, 1.0),
            |v| b::unsqueeze(v[0].b(), axis),
            |v| t::unsqueeze(v[0].o(), axis),
        );
    }
    for axis in [1isize, -2] {
        check(
            "squeeze",
            &bat(&[2, 1, 3]),
            (-1.0, 1.0),
            |v| b::squeeze(v[0].b(), axis),
            |v| t::squeeze(v[0].o(), axis),
        );
    }
    for (from, to) in [
        (sh(&[3]), sh(&[2, 3])),
        (sh(&[2, 1]), sh(&[4, 2, 3])),
        (sh(&[]), sh(&[2, 2])),
        (sh(&[2, 3]), sh(&[2, 3])),
    ] {
        check(
            "broadcast_to",
            &bat(&from),
            (-1.0, 1.0),
            |v| b::broadcast_to(v[0].b(), &to),
            |v| t::broadcast_to(v[0].o(), &to),
        );
    }
    for (a, c) in [(0isize, 2isize), (-1, 0), (1, -2), (-3, -1)] {
        check(
            "transpose",
            &bat(&[2, 3, 4]),
            (-1.0, 1.0),
            |v| b::transpose(v[0].b(), a, c),
            |v| t::transpose(v[0].o(), a, c),
        );
    }
    for axes in [[2isize, 0, 1], [-1, 1, 0], [0, 1, 2], [1, -1, -3]] {
        check(
            "permute",
            &bat(&[2, 3, 4]),
            (-1.0, 1.0),
            |v| b::permute(v[0].b(), &axes),
            |v| t::permute(v[0].o(), &axes),
        );
        // unpermute(ct, axes, like): ct shaped like like.permute(axes)
        let like = sh(&[2, 3, 4]);
        let ct = t::permute(&Tensor::zeros(&like, DType::F64), &axes)
            .shape()
            .to_vec();
        for p in patterns(&[ct, like], false) {
            check(
                "unpermute",
                &p,
                (-1.0, 1.0),
                |v| b::unpermute(v[0].b(), &axes, v[1].b()),
                |v| t::unpermute(v[0].o(), &axes, v[1].t()),
            );
        }
    }
    for (axis, s, e) in [
        (0isize, 1usize, 3usize),
        (-1, 0, 2),
        (1, 2, 3),
        (-2, 0, 4),
        (1, 1, 1),
    ] {
        check(
            "slice",
            &bat(&[4, 3]),
            (-1.0, 1.0),
            |v| b::slice(v[0].b(), axis, s, e),
            |v| t::slice(v[0].o(), axis, s, e),
        );
    }
    let idx = Tensor::from_vec(vec![2i32, 0, 2, 1], &[4]);
    for axis in [0isize, 1, -1, -2] {
        check(
            "index_select",
            &bat(&[3, 3]),
            (-1.0, 1.0),
            |v| b::index_select(v[0].b(), axis, &idx),
            |v| t::index_select(v[0].o(), axis, &idx),
        );
        // index_add(ct, like, axis, indices): ct has 4 along `axis`
        let like = sh(&[3, 3]);
        let mut ct = like.clone();
        ct[if axis < 0 {
            (axis + 2) as usize
        } else {
            axis as usize
        }] = 4;
        for p in patterns(&[ct, like], false) {
            check(
                "index_add",
                &p,
                (-1.0, 1.0),
                |v| b::index_add(v[0].b(), v[1].b(), axis, &idx),
                |v| t::index_add(v[0].o(), v[1].t(), axis, &idx),
            );
        }
    }
    for (axis, start, end) in [(0isize, 1usize, 3usize), (-1, 0, 2), (1, 3, 4), (-2, 0, 0)] {
        let like = sh(&[4, 4]);
        let a = if axis < 0 {
            (axis + 2) as usize
        } else {
            axis as usize
        };
        let mut ct = like.clone();
        ct[a] = end - start;
        for p in patterns(&[ct, like], false) {
            check(
                "unslice",
                &p,
                (-1.0, 1.0),
                |v| b::unslice(v[0].b(), v[1].b(), axis, start, end),
                |v| t::unslice(v[0].o(), v[1].t(), axis, start, end),
            );
        }
    }
}

#[test]
fn concat_and_stack_lift_unbatched_parts() {
    let shapes = [sh(&[2, 3]), sh(&[2, 1]), sh(&[2, 2])];
    for p in patterns(&shapes, false) {
        for axis in [1isize, -1] {
            check(
                "concat",
                &p,
                (-1.0, 1.0),
                |v| b::concat(axis, &v.iter().map(|x| x.b()).collect::<Vec<_>>()),
                |v| t::concat(axis, &v.iter().map(|x| x.t()).collect::<Vec<_>>()),
            );
            // concat_part(ct, axis, k, parts)
            for k in 0..3 {
                for ct_batched in [true, false] {
                    let mut specs = vec![if ct_batched {
                        S::Bat(sh(&[2, 6]))
                    } else {
                        S::Ten(sh(&[2, 6]))
                    }];
                    specs.extend(p.iter().cloned());
                    check(
                        "concat_part",
                        &specs,
                        (-1.0, 1.0),
                        |v| {
                            b::concat_part(
                                v[0].b(),
                                axis,
                                k,
                                &v[1..].iter().map(|x| x.b()).collect::<Vec<_>>(),
                            )
                        },
                        |v| {
                            t::concat_part(
                                v[0].o(),
                                axis,
                                k,
                                &v[1..].iter().map(|x| x.t()).collect::<Vec<_>>(),
                            )
                        },
                    );
                }
            }
        }
    }
    let same = [sh(&[2, 3]), sh(&[2, 3])];
    for p in patterns(&same, false) {
        for axis in [0isize, 1, 2, -1, -3] {
            check(
                "stack",
                &p,
                (-1.0, 1.0),
                |v| b::stack(axis, &v.iter().map(|x| x.b()).collect::<Vec<_>>()),
                |v| t::stack(axis, &v.iter().map(|x| x.t()).collect::<Vec<_>>()),
            );
            let n = 3isize;
            let a = if axis < 0 { axis + n } else { axis } as usize;
            let mut ct = sh(&[2, 3]);
            ct.insert(a, 2);
            for k in 0..2 {
                for ct_batched in [true, false] {
                    let mut specs = vec![if ct_batched {
                        S::Bat(ct.clone())
                    } else {
                        S::Ten(ct.clone())
                    }];
                    specs.extend(p.iter().cloned());
                    check(
                        "stack_part",
                        &specs,
                        (-1.0, 1.0),
                        |v| {
                            b::stack_part(
                                v[0].b(),
                                axis,
                                k,
                                &v[1..].iter().map(|x| x.b()).collect::<Vec<_>>(),
                            )
                        },
                        |v| {
                            t::stack_part(
                                v[0].o(),
                                axis,
                                k,
                                &v[1..].iter().map(|x| x.t()).collect::<Vec<_>>(),
                            )
                        },
                    );
                }
            }
        }
    }
}

// ----- shape donors -----

#[test]
fn sum_to_unbroadcasts_each_example_never_the_batch_axis() {
    let pairs = [
        (sh(&[2, 3]), sh(&[3])),
        (sh(&[2, 3]), sh(&[2, 1])),
        (sh(&[4, 2, 3]), sh(&[1, 3])),
        (sh(&[2, 3]), sh(&[])),
        (sh(&[2, 3]), sh(&[2, 3])),
        (sh(&[]), sh(&[])),
    ];
    for (ct, like) in pairs {
        for p in patterns(&[ct.clone(), like.clone()], true) {
            check(
                "sum_to",
                &p,
                (-1.0, 1.0),
                |v| b::sum_to(v[0].b(), v[1].b()),
                |v| match &v[1] {
                    Val::Ten(l) => t::sum_to(v[0].o(), l),
                    _ => Tensor::scalar(t::sum_to_scalar::<f64>(v[0].o())),
                },
            );
        }
    }
}

#[test]
fn mul_sum_to_is_sum_to_of_the_product_for_every_batching() {
    // the matrix-vector path (a batch times an unbatched factor of its example shape,
    // summed whole) and the others (both batched, broadcasting, sums to an axis)
    let triples = [
        (sh(&[2, 3]), sh(&[2, 3]), sh(&[])),
        (sh(&[5]), sh(&[5]), sh(&[])),
        (sh(&[2, 3]), sh(&[3]), sh(&[])),
        (sh(&[2, 3]), sh(&[2, 3]), sh(&[3])),
        (sh(&[2, 3]), sh(&[]), sh(&[2, 3])),
        (sh(&[]), sh(&[]), sh(&[])),
        // size-1 and empty axes (an empty sum is zero)
        (sh(&[1, 3]), sh(&[1, 3]), sh(&[])),
        (sh(&[2, 0]), sh(&[2, 0]), sh(&[])),
        (sh(&[0]), sh(&[0]), sh(&[])),
    ];
    for (x, y, like) in triples {
        for p in patterns(&[x.clone(), y.clone(), like.clone()], true) {
            check(
                "mul_sum_to",
                &p,
                (-1.0, 1.0),
                |v| b::mul_sum_to(v[0].b(), v[1].b(), v[2].b()),
                |v| {
                    let product = t::mul(v[0].o(), v[1].o());
                    match &v[2] {
                        Val::Ten(l) => t::sum_to(&product, l),
                        _ => Tensor::scalar(t::sum_to_scalar::<f64>(&product)),
                    }
                },
            );
        }
    }
}

#[test]
fn broadcast_like_unsum_axis_and_reshape_like_follow_the_example_shape_of_like() {
    for (x, like) in [
        (sh(&[3]), sh(&[2, 3])),
        (sh(&[2, 1]), sh(&[2, 3])),
        (sh(&[]), sh(&[2, 3])),
        (sh(&[2, 3]), sh(&[2, 3])),
    ] {
        for p in patterns(&[x, like], true) {
            check(
                "broadcast_like",
                &p,
                (-1.0, 1.0),
                |v| b::broadcast_like(v[0].b(), v[1].b()),
                |v| t::broadcast_like(v[0].o(), v[1].t()),
            );
        }
    }
    let like = sh(&[2, 3, 4]);
    for axis in -3isize..3 {
        let a = if axis < 0 { axis + 3 } else { axis } as usize;
        for keep in [false, true] {
            let mut ct = like.clone();
            if keep {
                ct[a] = 1;
            } else {
                ct.remove(a);
            }
            for p in patterns(&[ct, like.clone()], false) {
                check(
                    "unsum_axis",
                    &p,
                    (-1.0, 1.0),
                    |v| b::unsum_axis(v[0].b(), v[1].b(), axis, keep),
                    |v| t::unsum_axis(v[0].o(), v[1].t(), axis, keep),
                );
            }
        }
    }
    for p in patterns(&[sh(&[]), like.clone()], true) {
        if matches!(p[0], S::Ten(_)) {
            continue; // a 0-d tensor cotangent is unsqueezed per example; covered by the float case
        }
        check(
            "unsum_axis float",
            &p,
            (-1.0, 1.0),
            |v| b::unsum_axis(v[0].b(), v[1].b(), 0, false),
            |v| t::broadcast_like(v[0].o(), v[1].t()),
        );
    }
    for p in patterns(&[sh(&[6, 4]), like.clone()], false) {
        check(
            "reshape_like",
            &p,
            (-1.0, 1.0),
            |v| b::reshape_like(v[0].b(), v[1].b()),
            |v| t::reshape_like(v[0].o(), v[1].t()),
        );
    }
}

#[test]
fn zero_like_is_a_lazy_batched_zero() {
    let x = rand(&[3, 2, 4], (-1.0, 1.0));
    let z = b::zero_like(B(&x));
    assert_eq!(z.shape(), &[3, 2, 4]);
    assert!(ferrax::differentiable::is_lazy_zero(&z));
    assert_eq!(z.sum().item::<f64>(), 0.0);
}

// ----- queries and support -----

#[test]
fn per_example_queries_read_the_example_shape() {
    let x = Tensor::zeros(&[5, 2, 3], DType::F64);
    assert_eq!(b::numel(B(&x)), 6.0);
    assert_eq!(b::numel(&x), 30.0);
    assert_eq!(b::numel(2.0), 1.0);
    assert_eq!(b::axis_len(B(&x), 0), 2.0);
    assert_eq!(b::axis_len(B(&x), -1), 3.0);
    assert_eq!(b::int_as_float(B(&x), 7), 7.0);
    assert_eq!(b::example_shape(&x), vec![2, 3]);
    let y = Tensor::zeros(&[5], DType::F32);
    assert_eq!(b::example_shape(&y), Vec::<usize>::new());
    assert_eq!(
        b::method_item(B(&Tensor::ones(&[5, 1, 1], DType::F64))).shape(),
        &[5]
    );
}

#[test]
fn batch_size_agrees_or_names_the_function_argument_and_shapes() {
    let x = Tensor::zeros(&[4, 2], DType::F64);
    let y = Tensor::zeros(&[4], DType::F64);
    let z = Tensor::zeros(&[3, 2], DType::F64);
    let s = Tensor::scalar(1.0f64);
    assert_eq!(b::batch_size("f", &[("x", &x), ("y", &y)]), 4);
    let e = b::try_batch_size("loss", &[("x", &x), ("z", &z)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("loss") && e.contains("`z`") && e.contains("[3, 2]") && e.contains("[4, 2]"),
        "{e}"
    );
    let e = b::try_batch_size("loss", &[("s", &s)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("loss") && e.contains("`s`") && e.contains("0-d"),
        "{e}"
    );
    let r = std::panic::catch_unwind(|| b::batch_size("g", &[("x", &x), ("z", &z)]));
    assert!(r.is_err());
}

#[test]
fn move_to_front_and_back_are_inverse_permutations() {
    let x = rand(&[2, 3, 4], (-1.0, 1.0));
    for axis in -3isize..3 {
        let a = if axis < 0 { axis + 3 } else { axis } as usize;
        let f = b::move_to_front(&x, axis);
        assert_eq!(f.shape()[0], x.shape()[a]);
        for i in 0..x.shape()[a] {
            assert_close(
                "move_to_front",
                &f.slice(0, i, i + 1).squeeze(0),
                &x.slice(axis, i, i + 1).squeeze(axis),
                0.0,
            );
        }
        assert_close("move_from_front", &b::move_from_front(&f, axis), &x, 0.0);
    }
}

#[test]
fn lifts_broadcast_without_copying_and_take_the_like_dtype() {
    let w = rand(&[2, 3], (-1.0, 1.0));
    let l = b::lift(&w, 4);
    assert_eq!(l.shape(), &[4, 2, 3]);
    assert_eq!(l.strides()[0], 0);
    for i in 0..4 {
        assert_close("lift", &l.slice(0, i, i + 1).squeeze(0), &w, 0.0);
    }
    assert_eq!(b::lift(2.5, 3).to_vec::<f64>(), vec![2.5; 3]);
    assert_eq!(b::lift(B(&l), 4).shape(), &[4, 2, 3]);
    assert_eq!(b::lift_f32(1.5, 2).to_vec::<f32>(), vec![1.5; 2]);
    assert_eq!(b::lift_f64(1.5, 2).to_vec::<f64>(), vec![1.5; 2]);
    let like = Tensor::zeros(&[3, 7], DType::F32);
    assert_eq!(b::lift_like(2.0, &like).to_vec::<f32>(), vec![2.0; 3]);
    assert_eq!(b::lift_like(2.0f32, &like).dtype(), DType::F32);
    assert_eq!(b::lift_bool(true, &like).to_vec::<f32>(), vec![1.0; 3]);
    assert_eq!(b::lift(&w, 0).shape(), &[0, 2, 3]);
}

#[test]
fn lift_struct_broadcasts_every_tensor_leaf_and_keeps_lazy_zeros() {
    let p = (rand(&[2, 3], (-1.0, 1.0)), vec![rand(&[4], (-1.0, 1.0))]);
    let l = b::lift_struct(&p, 5);
    assert_eq!(l.0.shape(), &[5, 2, 3]);
    assert_eq!(l.1[0].shape(), &[5, 4]);
    assert_close(
        "lift_struct",
        &l.1[0].slice(0, 3, 4).squeeze(0),
        &p.1[0],
        0.0,
    );
    let z = ferrax::differentiable::lazy_zero(&p.0);
    let lz = b::lift_struct(&z, 5);
    assert!(ferrax::differentiable::is_lazy_zero(&lz));
    assert_eq!(lz.shape(), &[5, 2, 3]);
}

#[test]
#[should_panic(expected = "per-example gradients of float fields are not supported")]
fn lift_struct_rejects_float_leaves() {
    b::lift_struct(&(Tensor::zeros(&[2], DType::F64), 1.0f64), 3);
}

#[test]
fn basis_is_the_identity_shaped_like_its_input() {
    let x = Tensor::zeros(&[2, 3], DType::F32);
    let e = b::basis(&x);
    assert_eq!(e.shape(), &[6, 2, 3]);
    assert_eq!(e.dtype(), DType::F32);
    assert_close(
        "basis",
        &e.reshape(&[6, 6]),
        &Tensor::eye(6, DType::F32),
        0.0,
    );
    // a Jacobian from the front: [n_in, out..] -> [out.., in..]
    let t = Tensor::arange(0.0, 24.0, 1.0, DType::F64).reshape(&[6, 4]);
    let j = b::jacobian_from_front(&t, &[2, 3]);
    assert_eq!(j.shape(), &[4, 2, 3]);
    assert_close("jacobian_from_front", &j.reshape(&[4, 6]), &t.t(), 0.0);
    let g = Tensor::arange(0.0, 24.0, 1.0, DType::F64).reshape(&[4, 6]);
    assert_eq!(b::jacobian_from_rows(&g, &[2, 2]).shape(), &[2, 2, 6]);
    assert!(b::prefer_forward(1, 10) && !b::prefer_forward(100, 1));
}

#[test]
#[should_panic(expected = "different batch sizes")]
fn mismatched_batch_sizes_are_an_error() {
    let x = Tensor::zeros(&[3, 2], DType::F64);
    let y = Tensor::zeros(&[4, 2], DType::F64);
    b::add(B(&x), B(&y));
}

/// The scalar methods' twins run the runtime's kernels, on a GPU too.
#[test]
fn scalar_method_twins_run_on_a_gpu() {
    let Ok(gpu) = ferrax::Device::gpu() else {
        return; // no GPU adapter here (tests/gpu_grad.rs requires one in CI)
    };
    let x = Tensor::from_vec(vec![0.5f32, -0.25, 0.75, 0.1], &[2, 2]);
    let on = x.to_device(&gpu);
    type Un = fn(BArg<'_>) -> Tensor;
    let ops: [(&str, Un); 4] = [
        ("asin", |x| b::asin(x)),
        ("atanh", |x| b::atanh(x)),
        ("erf", |x| b::erf(x)),
        ("round", |x| b::round(x)),
    ];
    for (name, f) in ops {
        let (want, got) = (f(B(&x).into()), f(B(&on).into()));
        assert_eq!(got.device(), gpu, "{name}");
        let got = got.to_device(&ferrax::Device::Cpu);
        for (g, w) in got.to_vec::<f32>().iter().zip(want.to_vec::<f32>()) {
            assert!((g - w).abs() <= 1e-6, "{name}: GPU {g}, CPU {w}");
        }
    }
}

/// `lift_arg`: a tensor argument is lifted to the batch (every example the same values), any
/// other value (a parameter struct read out of a field) is passed as it is.
#[test]
fn lift_arg_lifts_tensors_and_passes_other_values() {
    for shape in [vec![2, 3], vec![], vec![0, 2], vec![1]] {
        let x = rand(&shape, (-1.0, 1.0));
        for bsz in [0, 1, 4] {
            let l = b::lift_arg(&x, bsz);
            assert_eq!(l.shape(), &[&[bsz][..], &shape[..]].concat()[..]);
            for i in 0..bsz {
                let example = l.slice(0, i, i + 1).squeeze(0);
                assert_close("lift_arg example", &example, &x, 0.0);
            }
        }
    }
    let x = rand(&[2, 3], (-1.0, 1.0));
    let pair = (x.clone(), 2.5f64);
    let same = b::lift_arg(&pair, 4);
    assert_eq!(same.0.shape(), &[2, 3]);
    assert_eq!(same.1, 2.5);
}

/// A batched matmul whose examples do not fit names the examples' shapes, not the batched
/// tensors' (what the user's code sees), and the batch.
#[test]
#[should_panic(
    expected = "matmul: shapes [2] and [6, 4] cannot be multiplied: contracted axes have sizes 2 and 6 (per example, under #[vmap] with a batch of 3)"
)]
fn a_batched_matmul_that_does_not_fit_names_the_examples_shapes() {
    let (x, w) = (rand(&[3, 2], (-1.0, 1.0)), rand(&[6, 4], (-1.0, 1.0)));
    b::matmul(B(&x), &w);
}

/// Gathers and scatters with each example's own indices, of rank 2 per example, against a
/// loop of the unbatched helpers: `index_select`, its transpose `index_add`,
/// `segment_sum` and `index_add_to`.
#[test]
fn per_example_indices_of_any_rank_match_a_loop() {
    let ex = |x: &Tensor, e: usize| x.slice(0, e, e + 1).squeeze(0);
    let close = |got: &Tensor, want: &Tensor, what: &str| {
        assert_eq!(got.shape(), want.shape(), "{what}");
        assert_eq!(got.to_vec::<f64>(), want.to_vec::<f64>(), "{what}");
    };
    let x = Tensor::normal(Key::new(1), &[2, 4, 5, 3], DType::F64);
    let idx = Tensor::from_vec((0..12).map(|i: i32| i * 7 % 5).collect(), &[2, 2, 3]);
    let got = b::index_select(B(&x), 1, B(&idx));
    assert_eq!(got.shape(), &[2, 4, 2, 3, 3]);
    let ct = Tensor::normal(Key::new(2), &[2, 4, 2, 3, 3], DType::F64);
    let back = b::index_add(B(&ct), B(&x), 1, B(&idx));
    let src = Tensor::normal(Key::new(3), &[2, 4, 2, 3, 3], DType::F64);
    let added = b::index_add_to(B(&x), 1, B(&idx), B(&src));
    let data = Tensor::normal(Key::new(4), &[2, 2, 3, 4], DType::F64);
    let summed = b::segment_sum(B(&data), B(&idx), 6);
    let shared = ex(&idx, 1);
    let summed_shared = b::segment_sum(B(&data), &shared, 6);
    for e in 0..2 {
        let (xe, ie) = (ex(&x, e), ex(&idx, e));
        close(&ex(&got, e), &t::index_select(&xe, 1, &ie), "index_select");
        close(
            &ex(&back, e),
            &t::index_add(&ex(&ct, e), &xe, 1, &ie),
            "index_add",
        );
        close(
            &ex(&added, e),
            &xe.index_add(1, &ie, &ex(&src, e)),
            "index_add_to",
        );
        close(
            &ex(&summed, e),
            &ex(&data, e).segment_sum(&ie, 6),
            "segment_sum",
        );
        close(
            &ex(&summed_shared, e),
            &ex(&data, e).segment_sum(&shared, 6),
            "segment_sum, shared ids",
        );
    }
}
