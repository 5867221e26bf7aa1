//! `#[grad]` over tensor programs, primitive by primitive, in f64: reverse mode (`_grad`)
//! against central finite differences, forward mode (`_jvp`, random tangents) against
//! `<grad, tangent>`, on shapes that broadcast, size-1, empty and 0-d axes and
//! non-contiguous inputs; kinks and ties as JAX defines them; parameter structs and
//! control flow around tensor code.

// Some tests only call the generated derivatives, not the primal functions beside them.
#![allow(dead_code)]

use ferrax::prelude::*;

/// Finite-difference step.
const H: f64 = 1e-6;
/// Relative and absolute tolerance of a gradient against finite differences.
const TOL: f64 = 1e-6;

// ---------------------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------------------

fn randn(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::normal(Key::new(seed), shape, DType::F64)
}

/// Values in [0.5, ∞) (for ln, sqrt, division, powers).
fn positive(seed: u64, shape: &[usize]) -> Tensor {
    randn(seed, shape).abs() + 0.5
}

/// The scalar a `#[grad]` function returns: a 0-d tensor or a float.
trait Value {
    fn value(&self) -> f64;
}

impl Value for Tensor {
    fn value(&self) -> f64 {
        assert_eq!(self.shape(), &[] as &[usize], "a loss is a 0-d tensor");
        self.item::<f64>()
    }
}

impl Value for f64 {
    fn value(&self) -> f64 {
        *self
    }
}

impl Value for f32 {
    fn value(&self) -> f64 {
        *self as f64
    }
}

/// Gradients as a list of tensors (a float as a 0-d tensor).
trait Flat {
    fn flat(self) -> Vec<Tensor>;
}

impl Flat for Tensor {
    fn flat(self) -> Vec<Tensor> {
        vec![self]
    }
}

impl Flat for f64 {
    fn flat(self) -> Vec<Tensor> {
        vec![Tensor::scalar(self)]
    }
}

impl<A: Flat, B: Flat> Flat for (A, B) {
    fn flat(self) -> Vec<Tensor> {
        let mut v = self.0.flat();
        v.extend(self.1.flat());
        v
    }
}

impl<A: Flat, B: Flat, C: Flat> Flat for (A, B, C) {
    fn flat(self) -> Vec<Tensor> {
        let mut v = self.0.flat();
        v.extend(self.1.flat());
        v.extend(self.2.flat());
        v
    }
}

/// Central finite differences of `f` with respect to every element of every input.
fn fd_grad(f: &dyn Fn(&[Tensor]) -> f64, inputs: &[Tensor]) -> Vec<Vec<f64>> {
    (0..inputs.len())
        .map(|k| {
            let base = inputs[k].to_vec::<f64>();
            let shape = inputs[k].shape().to_vec();
            (0..base.len())
                .map(|i| {
                    let at = |d: f64| {
                        let mut v = base.clone();
                        v[i] += d;
                        let mut args = inputs.to_vec();
                        args[k] = Tensor::from_vec(v, &shape);
                        f(&args)
                    };
                    (at(H) - at(-H)) / (2.0 * H)
                })
                .collect()
        })
        .collect()
}

fn assert_close_vec(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite() && (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g:e}, want {w:e}\n got  {got:?}\n want {want:?}"
        );
    }
}

/// Checks a function of tensors three ways: its value, its reverse-mode gradient against
/// finite differences, and its forward-mode derivative along random tangents against the
/// inner product of that gradient with the tangent.
fn check(
    name: &str,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> f64,
    grad: impl Fn(&[Tensor]) -> Vec<Tensor>,
    jvp: impl Fn(&[Tensor], &[Tensor]) -> (f64, f64),
) {
    let value = f(inputs);
    assert!(value.is_finite(), "{name}: value {value}");
    let g = grad(inputs);
    assert_eq!(g.len(), inputs.len(), "{name}: number of gradients");
    let fd = fd_grad(&f, inputs);
    for (k, (g, x)) in g.iter().zip(inputs).enumerate() {
        assert_eq!(g.shape(), x.shape(), "{name}: shape of gradient {k}");
        assert_eq!(g.dtype(), DType::F64, "{name}: dtype of gradient {k}");
        assert_close_vec(
            &format!("{name}: gradient {k} (shape {:?})", x.shape()),
            &g.to_vec::<f64>(),
            &fd[k],
            TOL,
        );
    }
    for seed in [7u64, 8] {
        let t: Vec<Tensor> = inputs
            .iter()
            .enumerate()
            .map(|(k, x)| {
                let t = randn(1000 * seed + k as u64, x.shape());
                if seed == 8 && x.ndim() >= 2 {
                    // a non-contiguous tangent of the same shape
                    t.transpose(0, -1).contiguous().transpose(0, -1)
                } else {
                    t
                }
            })
            .collect();
        let (v, d) = jvp(inputs, &t);
        assert!(
            (v - value).abs() <= 1e-12 * (1.0 + value.abs()),
            "{name}: jvp value {v} vs {value}"
        );
        let want: f64 = g.iter().zip(&t).map(|(g, t)| g.inner(t)).sum();
        let scale: f64 = g.iter().zip(&t).map(|(g, t)| g.abs().inner(&t.abs())).sum();
        assert!(
            (d - want).abs() <= 1e-10 * (1.0 + scale),
            "{name}: jvp tangent {d:e} vs <grad, tangent> {want:e}"
        );
    }
}

/// `check` for a function whose arguments are all active tensors, followed by inactive
/// ones: `check!(name, f, f_grad, f_jvp; [active..] $(; [inactive..])?)`.
macro_rules! check {
    ($name:expr, $f:ident, $g:ident, $j:ident; [$($x:expr),+ $(,)?] $(; [$($c:expr),* $(,)?])?) => {{
        let inputs: Vec<Tensor> = vec![$($x.clone()),+];
        check(
            &$name,
            &inputs,
            |a: &[Tensor]| {
                let mut it = a.iter();
                $f($({ let _ = stringify!($x); it.next().unwrap() }),+ $($(, &$c)*)?).value()
            },
            |a: &[Tensor]| {
                let mut it = a.iter();
                $g($({ let _ = stringify!($x); it.next().unwrap() }),+ $($(, &$c)*)?).flat()
            },
            |a: &[Tensor], t: &[Tensor]| {
                let (mut it, mut dt) = (a.iter(), t.iter());
                let (v, d) = $j(
                    $({ let _ = stringify!($x); it.next().unwrap() }),+
                    $($(, &$c)*)?
                    $(, { let _ = stringify!($x); dt.next().unwrap() })+
                );
                (v.value(), d.value())
            },
        )
    }};
}

/// Shapes every unary primitive is checked on: plain, size-1 axes, 0-d, empty.
const UNARY_SHAPES: [&[usize]; 4] = [&[3, 4], &[1, 5, 1], &[], &[0, 3]];

#[derive(Clone, Copy)]
enum Domain {
    /// Standard normal.
    Any,
    /// In [0.5, ∞).
    Pos,
    /// Normal scaled by 0.3 (tan, log1p).
    Small,
}

fn sample(d: Domain, seed: u64, shape: &[usize]) -> Tensor {
    match d {
        Domain::Any => randn(seed, shape),
        Domain::Pos => positive(seed, shape),
        Domain::Small => randn(seed, shape) * 0.3,
    }
}

/// A unary primitive `u`, tested through `f(x, c) = sum(u(x) * c)` (`c` inactive), on
/// every shape of `UNARY_SHAPES`, a transposed input and a column slice.
fn unary_case(
    name: &str,
    d: Domain,
    f: impl Fn(&Tensor, &Tensor) -> Tensor,
    g: impl Fn(&Tensor, &Tensor) -> Tensor,
    j: impl Fn(&Tensor, &Tensor, &Tensor) -> (Tensor, Tensor),
) {
    let mut xs: Vec<Tensor> = UNARY_SHAPES
        .iter()
        .enumerate()
        .map(|(k, s)| sample(d, k as u64, s))
        .collect();
    let t = sample(d, 10, &[4, 3]).t();
    assert!(!t.is_contiguous());
    xs.push(t);
    let s = sample(d, 11, &[5, 6]).slice(1, 1, 4);
    assert!(!s.is_contiguous());
    xs.push(s);
    for (k, x) in xs.iter().enumerate() {
        let c = randn(100 + k as u64, x.shape());
        check!(format!("{name} on {:?}", x.shape()), f, g, j; [x]; [c]);
    }
}

// ---------------------------------------------------------------------------------------
// elementwise unary primitives
// ---------------------------------------------------------------------------------------

macro_rules! unary {
    ($($op:ident ($dom:ident): |$x:ident| { $($body:tt)* })*) => {$(
        mod $op {
            use super::*;

            #[grad(wrt($x))]
            fn f($x: &Tensor, c: &Tensor) -> Tensor {
                let y = $($body)*;
                (y * c).sum()
            }

            #[test]
            fn grad_and_jvp_match_finite_differences() {
                unary_case(stringify!($op), Domain::$dom, f, f_grad, f_jvp);
            }
        }
    )*};
}

unary! {
    neg (Any): |x| { x.neg() }
    neg_operator (Any): |x| { -x }
    abs (Any): |x| { x.abs() }
    exp (Any): |x| { x.exp() }
    ln (Pos): |x| { x.ln() }
    log1p (Small): |x| { x.log1p() }
    expm1 (Any): |x| { x.expm1() }
    sin (Any): |x| { x.sin() }
    cos (Any): |x| { x.cos() }
    tan (Small): |x| { x.tan() }
    tanh (Any): |x| { x.tanh() }
    sqrt (Pos): |x| { x.sqrt() }
    recip (Pos): |x| { x.recip() }
    sigmoid (Any): |x| { x.sigmoid() }
    relu (Any): |x| { x.relu() }
    sign (Any): |x| { x.sign() + x }
    sign_alone (Any): |x| { x.sign() }
    powi_3 (Any): |x| { x.powi(3) }
    powi_0 (Any): |x| { x.powi(0) }
    powi_neg (Pos): |x| { x.powi(-2) }
    powf (Pos): |x| { x.powf(2.5) }
    clamp (Any): |x| { x.clamp(-0.5, 0.8) }
    scalar_ops (Pos): |x| { (x * 2.0 + 1.5) / 3.0 - 0.25 }
}

// ---------------------------------------------------------------------------------------
// elementwise binary primitives, with broadcasting
// ---------------------------------------------------------------------------------------

/// Operand shape pairs: equal, bias [n] against [m, n], [m, 1] against [1, n], a 3-D
/// against a 2-D, a 0-d, an empty axis.
const BINARY_SHAPES: [(&[usize], &[usize]); 7] = [
    (&[3, 4], &[3, 4]),
    (&[3, 4], &[4]),
    (&[4], &[3, 4]),
    (&[3, 1], &[1, 4]),
    (&[2, 3, 4], &[3, 1]),
    (&[3, 4], &[]),
    (&[0, 3], &[3]),
];

/// The broadcast shape of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Vec<usize> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let pick = |s: &[usize]| {
                let k = i + s.len();
                if k >= n { s[k - n] } else { 1 }
            };
            let (p, q) = (pick(a), pick(b));
            if p == 1 { q } else { p }
        })
        .collect()
}

/// A binary primitive `op`, tested through `f(a, b, c) = sum(op(a, b) * c)` (`c`
/// inactive) on every pair of `BINARY_SHAPES`, then on a transposed left operand.
fn binary_case(
    name: &str,
    (da, db): (Domain, Domain),
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    g: impl Fn(&Tensor, &Tensor, &Tensor) -> (Tensor, Tensor),
    j: impl Fn(&Tensor, &Tensor, &Tensor, &Tensor, &Tensor) -> (Tensor, Tensor),
) {
    let mut pairs: Vec<(Tensor, Tensor)> = BINARY_SHAPES
        .iter()
        .enumerate()
        .map(|(k, (sa, sb))| {
            (
                sample(da, 2 * k as u64, sa),
                sample(db, 2 * k as u64 + 1, sb),
            )
        })
        .collect();
    pairs.push((sample(da, 50, &[4, 3]).t(), sample(db, 51, &[4])));
    pairs.push((
        sample(da, 52, &[5, 6]).slice(0, 1, 4),
        sample(db, 53, &[6, 6]).slice(0, 2, 3),
    ));
    for (k, (a, b)) in pairs.iter().enumerate() {
        let c = randn(200 + k as u64, &broadcast(a.shape(), b.shape()));
        check!(format!("{name} on {:?} and {:?}", a.shape(), b.shape()), f, g, j; [a, b]; [c]);
    }
}

macro_rules! binary {
    ($($op:ident ($da:ident, $db:ident): |$a:ident, $b:ident| { $($body:tt)* })*) => {$(
        mod $op {
            use super::*;

            #[grad(wrt($a, $b))]
            fn f($a: &Tensor, $b: &Tensor, c: &Tensor) -> Tensor {
                let y = $($body)*;
                (y * c).sum()
            }

            #[test]
            fn grad_and_jvp_match_finite_differences_with_broadcasting() {
                binary_case(stringify!($op), (Domain::$da, Domain::$db), f, f_grad, f_jvp);
            }
        }
    )*};
}

binary! {
    add (Any, Any): |a, b| { a.add(b) }
    add_operator (Any, Any): |a, b| { a + b }
    sub (Any, Any): |a, b| { a.sub(b) }
    sub_operator (Any, Any): |a, b| { a - b }
    mul (Any, Any): |a, b| { a.mul(b) }
    mul_operator (Any, Any): |a, b| { a * b }
    div (Any, Pos): |a, b| { a.div(b) }
    div_operator (Any, Pos): |a, b| { a / b }
    maximum (Any, Any): |a, b| { a.maximum(b) }
    minimum (Any, Any): |a, b| { a.minimum(b) }
    pow (Pos, Any): |a, b| { a.pow(b) }
    same_operand_twice (Any, Any): |a, b| { a * a + b * a }
}

// ---------------------------------------------------------------------------------------
// comparisons, where_ and select (masks carry no derivative; branches do)
// ---------------------------------------------------------------------------------------

macro_rules! masked {
    ($($op:ident: |$a:ident, $b:ident| { $($body:tt)* })*) => {$(
        mod $op {
            use super::*;

            #[grad(wrt($a, $b))]
            fn f($a: &Tensor, $b: &Tensor, c: &Tensor) -> Tensor {
                let y = $($body)*;
                (y * c).sum()
            }

            #[test]
            fn only_the_chosen_branch_is_differentiated() {
                binary_case(stringify!($op), (Domain::Any, Domain::Any), f, f_grad, f_jvp);
            }
        }
    )*};
}

masked! {
    where_gt: |a, b| { Tensor::where_(&a.gt(b), &(a * b), &a.sin()) }
    where_ge: |a, b| { Tensor::where_(&a.ge(b), &a.exp(), &(b * 3.0)) }
    where_lt: |a, b| { Tensor::where_(&a.lt(b), &b.tanh(), &(a * a)) }
    where_le: |a, b| { Tensor::where_(&a.le(b), &(a - b), &(a + b)) }
    where_eq: |a, b| { Tensor::where_(&a.eq(b), a, &(a * b)) }
    where_ne: |a, b| { Tensor::where_(&a.ne(b), &(a * b), a) }
    where_constants: |a, b| { Tensor::where_(&a.ge(&a.ones_like()), &(a * b), &a.full_like(2.0)) }
    select_method: |a, b| { a.gt(b).select(&a.cos(), &(b * 2.0)) }
    where_broadcast_branches: |a, b| { Tensor::where_(&b.gt(&b.zeros_like()), a, b) }
}

#[grad]
fn stopped(x: &Tensor) -> Tensor {
    (x * stop_gradient(x)).sum() + stop_gradient(x).exp().sum()
}

#[test]
fn stop_gradient_blocks_the_derivative() {
    let x = randn(7, &[2, 3]);
    assert_eq!(stopped_grad(&x).to_vec::<f64>(), x.to_vec::<f64>());
    let dx = randn(8, &[2, 3]);
    let (_, d) = stopped_jvp(&x, &dx);
    assert!((d.item::<f64>() - x.inner(&dx)).abs() < 1e-12);
}

// ---------------------------------------------------------------------------------------
// scalars mixed with tensors
// ---------------------------------------------------------------------------------------

#[grad]
fn scaled(x: &Tensor, s: f64) -> Tensor {
    ((x * s + s.sin()) / (s * s + 1.0)).tanh().sum() * s
}

#[test]
fn an_f64_parameter_mixed_with_tensors() {
    for (k, shape) in UNARY_SHAPES.iter().enumerate() {
        let x = randn(k as u64, shape);
        let s = Tensor::scalar(0.7f64);
        check(
            &format!("scaled on {shape:?}"),
            &[x, s],
            |a| scaled(&a[0], a[1].item()).value(),
            |a| scaled_grad(&a[0], a[1].item()).flat(),
            |a, t| {
                let (v, d) = scaled_jvp(&a[0], a[1].item(), &t[0], t[1].item());
                (v.value(), d.value())
            },
        );
    }
}

#[grad]
fn scalar_on_the_left(x: &Tensor, s: f64) -> Tensor {
    (s - x).sum() + (s / (x * x + 1.0)).sum() + (s * x).powi(2).sum()
}

#[test]
fn an_f64_on_the_left_of_a_tensor_is_fitted_back_to_a_float() {
    let x = randn(3, &[2, 3]);
    check(
        "scalar_on_the_left",
        &[x, Tensor::scalar(-1.3f64)],
        |a| scalar_on_the_left(&a[0], a[1].item()).value(),
        |a| scalar_on_the_left_grad(&a[0], a[1].item()).flat(),
        |a, t| {
            let (v, d) = scalar_on_the_left_jvp(&a[0], a[1].item(), &t[0], t[1].item());
            (v.value(), d.value())
        },
    );
}

#[grad]
fn f32_scale(x: &Tensor, s: f32) -> Tensor {
    (x * s).sin().sum()
}

#[test]
fn an_f32_parameter_scales_an_f64_tensor() {
    let x = randn(4, &[3, 2]);
    let s = 0.5f32;
    let (gx, gs) = f32_scale_grad(&x, s);
    let (v, _) = f32_scale_value_and_grad(&x, s);
    assert_eq!(v.item::<f64>(), f32_scale(&x, s).item::<f64>());
    let want_x = (&x * 0.5).cos() * 0.5;
    assert_close_vec("d/dx", &gx.to_vec::<f64>(), &want_x.to_vec::<f64>(), 1e-7);
    let want_s = ((&x * 0.5).cos() * &x).sum().item::<f64>();
    assert!(
        (gs as f64 - want_s).abs() <= 1e-5 * (1.0 + want_s.abs()),
        "d/ds {gs} vs {want_s}"
    );
}

#[grad]
fn through_item(x: &Tensor, s: f64) -> f64 {
    let total: f64 = x.sum().item();
    s * total + s * s
}

#[test]
fn item_is_inactive_and_f64_losses_work() {
    let x = randn(5, &[2, 2]);
    let (gx, gs) = through_item_grad(&x, 1.5);
    let (v, _) = through_item_value_and_grad(&x, 1.5);
    assert_eq!(v, through_item(&x, 1.5));
    assert_eq!(
        gx.to_vec::<f64>(),
        vec![0.0; 4],
        "item() carries no derivative"
    );
    assert_eq!(gx.shape(), &[2, 2]);
    let want = x.sum().item::<f64>() + 3.0;
    assert!(
        (gs - want).abs() <= 1e-12 * (1.0 + want.abs()),
        "{gs} vs {want}"
    );
}

#[grad(wrt(x))]
fn shape_queries(x: &Tensor) -> Tensor {
    let n = x.numel() as f64;
    let rows = x.len() as f64;
    x.powi(2).sum() / n + x.sum() * rows
}

#[test]
fn shape_and_numel_are_inactive() {
    let x = randn(6, &[3, 4]);
    check!("shape_queries", shape_queries, shape_queries_grad, shape_queries_jvp; [x]);
}

// ---------------------------------------------------------------------------------------
// reductions
// ---------------------------------------------------------------------------------------

macro_rules! reduce {
    ($($op:ident ($shape:expr): |$x:ident| { $($body:tt)* })*) => {$(
        mod $op {
            use super::*;

            #[grad(wrt($x))]
            fn f($x: &Tensor, c: &Tensor) -> Tensor {
                let y = $($body)*;
                (y * c).sum()
            }

            #[test]
            fn grad_and_jvp_match_finite_differences() {
                let shape: &[usize] = &$shape;
                let x = randn(shape.len() as u64 + 30, shape);
                let probe = { let $x = &x; $($body)* };
                let c = randn(31, probe.shape());
                check!(stringify!($op), f, f_grad, f_jvp; [x]; [c]);
                // the same on a non-contiguous view of the same values
                let xt = x.transpose(0, -1).contiguous().transpose(0, -1);
                if shape[0] > 1 && shape[shape.len() - 1] > 1 {
                    assert!(!xt.is_contiguous());
                    check!(concat!(stringify!($op), " (transposed view)"), f, f_grad, f_jvp; [xt]; [c]);
                }
            }
        }
    )*};
}

reduce! {
    sum_all ([3, 4]): |x| { x.sum() }
    sum_all_3d ([2, 3, 4]): |x| { x.sum() }
    mean_all ([3, 4]): |x| { x.mean() }
    max_all ([3, 4]): |x| { x.max() }
    min_all ([3, 4]): |x| { x.min() }
    sum_axis0 ([3, 4]): |x| { x.sum_axis(0, false) }
    sum_axis1_keep ([3, 4]): |x| { x.sum_axis(1, true) }
    sum_axis_neg ([2, 3, 4]): |x| { x.sum_axis(-2, false) }
    sum_axis_neg_keep ([2, 3, 4]): |x| { x.sum_axis(-1, true) }
    sum_axis_size1 ([3, 1, 4]): |x| { x.sum_axis(1, false) }
    mean_axis0 ([3, 4]): |x| { x.mean_axis(0, false) }
    mean_axis_neg_keep ([2, 3, 4]): |x| { x.mean_axis(-1, true) }
    max_axis1 ([3, 4]): |x| { x.max_axis(1, false) }
    max_axis0_keep ([3, 4]): |x| { x.max_axis(0, true) }
    max_axis_neg ([2, 3, 4]): |x| { x.max_axis(-2, false) }
    min_axis1 ([3, 4]): |x| { x.min_axis(1, false) }
    min_axis_neg_keep ([2, 3, 4]): |x| { x.min_axis(-1, true) }
    logsumexp_axis1 ([3, 4]): |x| { x.logsumexp_axis(1, false) }
    logsumexp_axis0_keep ([3, 4]): |x| { x.logsumexp_axis(0, true) }
    logsumexp_axis_neg ([2, 3, 4]): |x| { x.logsumexp_axis(-1, false) }
    softmax_axis1 ([3, 4]): |x| { x.softmax(1) }
    softmax_axis0 ([3, 4]): |x| { x.softmax(0) }
    softmax_axis_neg ([2, 3, 4]): |x| { x.softmax(-1) }
    log_softmax_axis1 ([3, 4]): |x| { x.log_softmax(1) }
    log_softmax_axis0 ([3, 4]): |x| { x.log_softmax(0) }
    log_softmax_axis_neg ([2, 3, 4]): |x| { x.log_softmax(-2) }
    softmax_size1_axis ([3, 1]): |x| { x.softmax(1) }
    log_softmax_size1_axis ([1, 4]): |x| { x.log_softmax(0) }
    max_axis_size1_keep ([3, 1]): |x| { x.max_axis(-1, true) }
    mean_axis_size1 ([1, 4]): |x| { x.mean_axis(0, false) }
    variance ([3, 5]): |x| { (x - x.mean_axis(-1, true)).powi(2).mean_axis(-1, true) }
}

// ---------------------------------------------------------------------------------------
// kinks and ties, as JAX defines them
// ---------------------------------------------------------------------------------------

#[grad]
fn max_all(x: &Tensor) -> Tensor {
    x.max()
}

#[grad]
fn min_all(x: &Tensor) -> Tensor {
    x.min()
}

#[grad(wrt(x))]
fn max_rows(x: &Tensor, c: &Tensor) -> Tensor {
    (x.max_axis(1, false) * c).sum()
}

#[grad(wrt(x))]
fn min_cols_keep(x: &Tensor, c: &Tensor) -> Tensor {
    (x.min_axis(0, true) * c).sum()
}

#[grad]
fn maximum_sum(a: &Tensor, b: &Tensor) -> Tensor {
    a.maximum(b).sum()
}

#[grad]
fn minimum_sum(a: &Tensor, b: &Tensor) -> Tensor {
    a.minimum(b).sum()
}

#[grad]
fn relu_sum(x: &Tensor) -> Tensor {
    x.relu().sum()
}

#[grad]
fn abs_sum(x: &Tensor) -> Tensor {
    x.abs().sum()
}

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

#[test]
fn max_and_min_share_the_gradient_evenly_among_ties() {
    let x = t(&[1.0, 3.0, 3.0, -2.0, 3.0, 0.5], &[6]);
    assert_eq!(
        max_all_grad(&x).to_vec::<f64>(),
        vec![0.0, 1.0 / 3.0, 1.0 / 3.0, 0.0, 1.0 / 3.0, 0.0]
    );
    let y = t(&[-2.0, 1.0, -2.0, 4.0], &[2, 2]);
    assert_eq!(min_all_grad(&y).to_vec::<f64>(), vec![0.5, 0.0, 0.5, 0.0]);
    // forward mode: the mean of the tangents at the tied positions
    let (_, d) = max_all_jvp(&x, &t(&[10.0, 1.0, 2.0, 20.0, 6.0, 30.0], &[6]));
    assert!((d.item::<f64>() - 3.0).abs() < 1e-12, "{d:?}");
}

#[test]
fn max_axis_and_min_axis_share_ties_per_slice() {
    let x = t(&[5.0, 5.0, 1.0, 2.0, 0.0, 7.0, 7.0, 7.0, -1.0], &[3, 3]);
    let c = t(&[2.0, 3.0, 6.0], &[3]);
    let g = max_rows_grad(&x, &c);
    assert_eq!(
        g.to_vec::<f64>(),
        vec![1.0, 1.0, 0.0, 0.0, 0.0, 3.0, 3.0, 3.0, 0.0]
    );
    let c = t(&[1.0, 4.0, 9.0], &[1, 3]);
    let y = t(&[0.0, 2.0, 1.0, 0.0, 2.0, 3.0, 5.0, 2.0, 1.0], &[3, 3]);
    let g = min_cols_keep_grad(&y, &c);
    assert_eq!(
        g.to_vec::<f64>(),
        vec![
            0.5,
            4.0 / 3.0,
            4.5,
            0.5,
            4.0 / 3.0,
            0.0,
            0.0,
            4.0 / 3.0,
            4.5
        ]
    );
}

#[test]
fn maximum_and_minimum_split_ties_half_and_half() {
    let a = t(&[1.0, 2.0, 3.0], &[3]);
    let b = t(&[1.0, 5.0, -1.0], &[3]);
    let (ga, gb) = maximum_sum_grad(&a, &b);
    assert_eq!(
        (ga.to_vec::<f64>(), gb.to_vec::<f64>()),
        (vec![0.5, 0.0, 1.0], vec![0.5, 1.0, 0.0])
    );
    let (ga, gb) = minimum_sum_grad(&a, &b);
    assert_eq!(
        (ga.to_vec::<f64>(), gb.to_vec::<f64>()),
        (vec![0.5, 1.0, 0.0], vec![0.5, 0.0, 1.0])
    );
    // broadcast: a 0-d operand against a vector, tied at one element
    let s = Tensor::scalar(2.0f64);
    let (ga, gs) = maximum_sum_grad(&a, &s);
    assert_eq!(
        (ga.to_vec::<f64>(), gs.shape().to_vec()),
        (vec![0.0, 0.5, 1.0], vec![])
    );
    assert_eq!(gs.item::<f64>(), 1.5);
    // forward mode at the tie: the mean of the two tangents
    let (da, db) = (t(&[4.0, 1.0, 1.0], &[3]), t(&[2.0, 10.0, 100.0], &[3]));
    let (_, d) = maximum_sum_jvp(&a, &b, &da, &db);
    assert_eq!(d.item::<f64>(), 3.0 + 10.0 + 1.0);
    let (_, d) = minimum_sum_jvp(&a, &b, &da, &db);
    assert_eq!(d.item::<f64>(), 3.0 + 1.0 + 100.0);
}

#[test]
fn relu_and_abs_at_zero() {
    let x = t(&[-1.0, 0.0, 2.0, -0.0], &[4]);
    assert_eq!(
        relu_sum_grad(&x).to_vec::<f64>(),
        vec![0.0, 0.0, 1.0, 0.0],
        "relu'(0) = 0"
    );
    assert_eq!(
        abs_sum_grad(&x).to_vec::<f64>(),
        vec![-1.0, 1.0, 1.0, 1.0],
        "abs'(0) = 1"
    );
    let dx = t(&[1.0, 10.0, 100.0, 1000.0], &[4]);
    assert_eq!(relu_sum_jvp(&x, &dx).1.item::<f64>(), 100.0);
    // JAX's rule selects the tangent: an infinite one where x <= 0 gives 0, not inf * 0
    let inf = t(
        &[f64::INFINITY, f64::NEG_INFINITY, 1.0, f64::INFINITY],
        &[4],
    );
    assert_eq!(relu_sum_jvp(&x, &inf).1.item::<f64>(), 1.0);
    assert_eq!(
        abs_sum_jvp(&x, &dx).1.item::<f64>(),
        -1.0 + 10.0 + 100.0 + 1000.0
    );
}

// ---------------------------------------------------------------------------------------
// softmax, log_softmax and logsumexp on large inputs
// ---------------------------------------------------------------------------------------

#[grad(wrt(x))]
fn softmax_w(x: &Tensor, c: &Tensor) -> Tensor {
    (x.softmax(-1) * c).sum()
}

#[grad(wrt(x))]
fn log_softmax_w(x: &Tensor, c: &Tensor) -> Tensor {
    (x.log_softmax(1) * c).sum()
}

#[grad(wrt(x))]
fn logsumexp_w(x: &Tensor, c: &Tensor) -> Tensor {
    (x.logsumexp_axis(1, false) * c).sum()
}

#[test]
fn softmax_family_is_stable_for_large_inputs() {
    // gradients are invariant under a shift of each row; at 1000 they must equal those at 0
    let x = randn(40, &[3, 5]);
    let big = &x + 1000.0;
    let huge = &x * 300.0 - 800.0; // spread over hundreds: exp overflows without shifting
    let c = randn(41, &[3, 5]);
    let c_rows = randn(42, &[3]);
    let tol = 1e-9;
    let pairs: [(&str, Tensor, Tensor); 3] = [
        ("softmax", softmax_w_grad(&x, &c), softmax_w_grad(&big, &c)),
        (
            "log_softmax",
            log_softmax_w_grad(&x, &c),
            log_softmax_w_grad(&big, &c),
        ),
        (
            "logsumexp",
            logsumexp_w_grad(&x, &c_rows),
            logsumexp_w_grad(&big, &c_rows),
        ),
    ];
    for (name, small, large) in pairs {
        assert_close_vec(name, &large.to_vec::<f64>(), &small.to_vec::<f64>(), tol);
    }
    for g in [
        softmax_w_grad(&huge, &c),
        log_softmax_w_grad(&huge, &c),
        logsumexp_w_grad(&huge, &c_rows),
    ] {
        assert!(
            g.to_vec::<f64>().iter().all(|v| v.is_finite()),
            "{:?}",
            g.to_vec::<f64>()
        );
    }
    // forward mode at large inputs is finite and agrees with reverse mode
    let dx = randn(43, &[3, 5]);
    let (v, d) = log_softmax_w_jvp(&huge, &c, &dx);
    assert!(v.item::<f64>().is_finite());
    let want = log_softmax_w_grad(&huge, &c).inner(&dx);
    assert!((d.item::<f64>() - want).abs() <= 1e-9 * (1.0 + want.abs()));
    check!("logsumexp at 1000", logsumexp_w, logsumexp_w_grad, logsumexp_w_jvp; [big]; [c_rows]);
}

// ---------------------------------------------------------------------------------------
// matmul in all its forms
// ---------------------------------------------------------------------------------------

#[grad(wrt(a, b))]
fn matmul_w(a: &Tensor, b: &Tensor, c: &Tensor) -> Tensor {
    (a.matmul(b) * c).sum()
}

#[test]
fn matmul_in_all_forms() {
    let cases: [(&str, &[usize], &[usize]); 10] = [
        ("2-D", &[3, 4], &[4, 5]),
        ("matrix-vector", &[3, 4], &[4]),
        ("vector-matrix", &[4], &[4, 5]),
        ("vector-vector", &[4], &[4]),
        ("batched", &[2, 3, 4], &[2, 4, 5]),
        ("batched against 2-D", &[2, 3, 4], &[4, 5]),
        ("2-D against batched", &[3, 4], &[2, 4, 5]),
        ("broadcast batch axes", &[2, 1, 3, 4], &[5, 4, 2]),
        ("batched matrix-vector", &[2, 3, 4], &[4]),
        ("vector against batched", &[4], &[2, 4, 3]),
    ];
    for (k, (name, sa, sb)) in cases.iter().enumerate() {
        let a = randn(60 + 2 * k as u64, sa);
        let b = randn(61 + 2 * k as u64, sb);
        let c = randn(90 + k as u64, a.matmul(&b).shape());
        check!(format!("matmul {name}: {sa:?} @ {sb:?}"), matmul_w, matmul_w_grad, matmul_w_jvp; [a, b]; [c]);
    }
    // non-contiguous operands: transposed views and a slice
    let a = randn(80, &[4, 3]).t();
    let b = randn(81, &[6, 4]).t().slice(1, 1, 4);
    assert!(!a.is_contiguous() && !b.is_contiguous());
    let c = randn(82, &[3, 3]);
    check!("matmul of views", matmul_w, matmul_w_grad, matmul_w_jvp; [a, b]; [c]);
    // an empty contraction axis: the product is zeros, the gradients empty
    let (a, b) = (randn(83, &[3, 0]), randn(84, &[0, 2]));
    let c = randn(85, &[3, 2]);
    let (ga, gb) = matmul_w_grad(&a, &b, &c);
    assert_eq!(
        (ga.shape(), gb.shape()),
        (&[3usize, 0][..], &[0usize, 2][..])
    );
}

#[grad]
fn linear_tanh(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    (x.matmul(w) + b).tanh().sum()
}

#[test]
fn a_dense_layer_with_a_broadcast_bias() {
    let (x, w, b) = (randn(1, &[5, 3]), randn(2, &[3, 4]), randn(3, &[4]));
    check!("linear_tanh", linear_tanh, linear_tanh_grad, linear_tanh_jvp; [x, w, b]);
    // value_and_grad and the pullback agree with grad
    let (v, (gx, gw, gb)) = linear_tanh_value_and_grad(&x, &w, &b);
    assert_eq!(v.item::<f64>(), linear_tanh(&x, &w, &b).item::<f64>());
    let (v2, pullback) = linear_tanh_vjp(&x, &w, &b);
    assert_eq!(v2.item::<f64>(), v.item::<f64>());
    let (px, pw, pb) = pullback(Tensor::scalar(2.0f64));
    for (p, g) in [(px, gx), (pw, gw), (pb, gb)] {
        assert_close_vec(
            "pullback(2) = 2 grad",
            &p.to_vec::<f64>(),
            &(g * 2.0).to_vec::<f64>(),
            1e-14,
        );
    }
}

// ---------------------------------------------------------------------------------------
// views
// ---------------------------------------------------------------------------------------

macro_rules! view {
    ($($op:ident ($shape:expr): |$x:ident| { $($body:tt)* })*) => {$(
        mod $op {
            use super::*;

            #[grad(wrt($x))]
            fn f($x: &Tensor, c: &Tensor) -> Tensor {
                let y = $($body)*;
                (y.sin() * c).sum()
            }

            #[test]
            fn grad_and_jvp_match_finite_differences() {
                let shape: &[usize] = &$shape;
                let x = randn(shape.iter().sum::<usize>() as u64, shape);
                let probe = { let $x = &x; $($body)* };
                let c = randn(77, probe.shape());
                check!(stringify!($op), f, f_grad, f_jvp; [x]; [c]);
            }
        }
    )*};
}

view! {
    reshape ([3, 4]): |x| { x.reshape(&[2, 6]) }
    reshape_to_3d ([2, 6]): |x| { x.reshape(&[3, 2, 2]) }
    transpose ([3, 4]): |x| { x.t() }
    transpose_then_reshape ([3, 4]): |x| { x.t().reshape(&[12]) }
    unsqueeze ([3, 4]): |x| { x.unsqueeze(1) }
    unsqueeze_neg ([3, 4]): |x| { x.unsqueeze(-1) }
    squeeze ([3, 1, 4]): |x| { x.squeeze(1) }
    squeeze_neg ([3, 4, 1]): |x| { x.squeeze(-1) }
    broadcast_to ([4]): |x| { x.broadcast_to(&[3, 4]) }
    broadcast_to_size1 ([3, 1]): |x| { x.broadcast_to(&[2, 3, 5]) }
    slice_axis1 ([3, 5]): |x| { x.slice(1, 1, 4) }
    slice_neg_axis ([2, 3, 4]): |x| { x.slice(-1, 0, 2) }
    slice_empty ([3, 4]): |x| { x.slice(0, 2, 2) }
    transpose_axes ([2, 3, 4]): |x| { x.transpose(0, 2) }
    transpose_neg ([2, 3, 4]): |x| { x.transpose(-1, -2) }
    permute ([2, 3, 4]): |x| { x.permute(&[2, 0, 1]) }
    matrix_through_views ([2, 3]): |x| { x.t().matmul(x).reshape(&[9]).unsqueeze(0) }
}

// ---------------------------------------------------------------------------------------
// empty axes: gradients are empty, nothing panics
// ---------------------------------------------------------------------------------------

#[grad]
fn empty_total(x: &Tensor, b: &Tensor) -> Tensor {
    (x.exp() * b).sum() + x.sum_axis(0, false).sum() + x.tanh().sum_axis(1, true).sum()
}

#[test]
fn an_empty_axis_gives_empty_gradients() {
    let x = Tensor::zeros(&[0, 3], DType::F64);
    let b = randn(5, &[3]);
    let (gx, gb) = empty_total_grad(&x, &b);
    assert_eq!(gx.shape(), &[0, 3]);
    assert_eq!(gb.to_vec::<f64>(), vec![0.0; 3]);
    let (v, d) = empty_total_jvp(&x, &b, &x, &randn(6, &[3]));
    assert_eq!((v.item::<f64>(), d.item::<f64>()), (0.0, 0.0));
}

// ---------------------------------------------------------------------------------------
// parameter structs
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, Differentiable)]
struct Dense {
    w: Tensor,
    b: Tensor,
}

#[derive(Clone, Debug, Differentiable)]
struct Norm {
    gamma: Tensor,
    beta: Tensor,
}

#[derive(Clone, Debug, Differentiable)]
struct Net {
    layers: Vec<Dense>,
    norm: Norm,
    head: Dense,
    temperature: f64,
    #[differentiable(skip)]
    mask: Tensor,
    #[differentiable(skip)]
    name: String,
}

fn net(seed: u64) -> Net {
    let k = |i: u64| seed * 100 + i;
    Net {
        layers: vec![
            Dense {
                w: randn(k(1), &[3, 4]) * 0.5,
                b: randn(k(2), &[4]),
            },
            Dense {
                w: randn(k(3), &[4, 4]) * 0.5,
                b: randn(k(4), &[1, 4]),
            },
        ],
        norm: Norm {
            gamma: randn(k(5), &[4]),
            beta: randn(k(6), &[4]),
        },
        head: Dense {
            w: randn(k(7), &[4, 3]),
            b: randn(k(8), &[3]),
        },
        temperature: 1.3,
        mask: t(&[1.0, 0.0, 1.0, 1.0], &[4]),
        name: "net".into(),
    }
}

/// Layers looped over with `for layer in &p.layers`, a layer norm from a nested struct, a
/// skipped constant, a float field, log_softmax cross-entropy.
#[grad(wrt(p))]
fn net_loss(p: &Net, x: &Tensor, y: &Tensor) -> Tensor {
    let mut h = x.clone();
    for layer in &p.layers {
        h = (h.matmul(&layer.w) + &layer.b).tanh() * &p.mask;
    }
    let centred = &h - h.mean_axis(-1, true);
    let var = centred.powi(2).mean_axis(-1, true);
    let h = centred / (var + 1e-5).sqrt() * &p.norm.gamma + &p.norm.beta;
    let logits = (h.matmul(&p.head.w) + &p.head.b) / p.temperature;
    -(logits.log_softmax(-1) * y).sum_axis(1, false).mean()
}

/// The same layers, read by index (`p.layers[i].w`).
#[grad(wrt(p))]
fn net_indexed(p: &Net, x: &Tensor) -> Tensor {
    let mut h = x.clone();
    for i in 0..p.layers.len() {
        h = h.matmul(&p.layers[i].w).relu() + &p.layers[i].b;
    }
    (h * p.temperature).sigmoid().sum()
}

/// Finite differences of `f` over every leaf of a differentiable value.
fn fd_leaves<T: Differentiable>(p: &T, f: impl Fn(&T) -> f64) -> Vec<Vec<f64>> {
    let n = p.num_leaves();
    (0..n)
        .map(|k| {
            let len = match ferrax::differentiable::leaves(p)[k] {
                ferrax::differentiable::Leaf::Tensor(t) => t.numel(),
                _ => 1,
            };
            (0..len)
                .map(|i| {
                    let at = |d: f64| {
                        let mut q = p.clone();
                        match ferrax::differentiable::leaves_mut(&mut q).remove(k) {
                            ferrax::differentiable::LeafMut::Tensor(t) => {
                                let mut v = t.to_vec::<f64>();
                                v[i] += d;
                                *t = Tensor::from_vec(v, t.shape());
                            }
                            ferrax::differentiable::LeafMut::F64(x) => *x += d,
                            ferrax::differentiable::LeafMut::F32(x) => *x += d as f32,
                        }
                        f(&q)
                    };
                    (at(H) - at(-H)) / (2.0 * H)
                })
                .collect()
        })
        .collect()
}

fn leaf_values<T: Differentiable>(p: &T) -> Vec<Vec<f64>> {
    ferrax::differentiable::leaves(p)
        .into_iter()
        .map(|l| match l {
            ferrax::differentiable::Leaf::Tensor(t) => t.to_vec::<f64>(),
            ferrax::differentiable::Leaf::F64(x) => vec![*x],
            ferrax::differentiable::Leaf::F32(x) => vec![*x as f64],
        })
        .collect()
}

fn assert_struct_grad<T: Differentiable>(what: &str, g: &T, p: &T, f: impl Fn(&T) -> f64) {
    assert_eq!(g.num_leaves(), p.num_leaves(), "{what}: leaves");
    let fd = fd_leaves(p, f);
    for (k, (got, want)) in leaf_values(g).iter().zip(&fd).enumerate() {
        assert_close_vec(&format!("{what}: leaf {k}"), got, want, TOL);
    }
}

/// A random direction in the parameter space of `p`: random tensors, float leaves 0.3,
/// skipped fields as they are (`zeros_like` keeps them).
fn direction<T: Differentiable>(p: &T, seed: u64) -> T {
    let mut dp = p.zeros_like();
    for (k, leaf) in ferrax::differentiable::leaves_mut(&mut dp)
        .into_iter()
        .enumerate()
    {
        match leaf {
            ferrax::differentiable::LeafMut::Tensor(t) => *t = randn(seed + k as u64, t.shape()),
            ferrax::differentiable::LeafMut::F64(x) => *x = 0.3,
            ferrax::differentiable::LeafMut::F32(x) => *x = 0.3,
        }
    }
    dp
}

#[test]
fn a_parameter_struct_with_nested_structs_a_vec_of_layers_and_skipped_fields() {
    let p = net(1);
    let x = randn(2, &[5, 3]);
    let y = t(&[0.0, 1.0, 0.0], &[3]).broadcast_to(&[5, 3]).contiguous();
    let g = net_loss_grad(&p, &x, &y);
    assert_struct_grad("net_loss", &g, &p, |q| net_loss(q, &x, &y).item());
    assert_eq!(g.layers.len(), 2);
    assert_eq!(
        g.layers[1].b.shape(),
        &[1, 4],
        "a bias broadcast from [1, 4] keeps its shape"
    );
    // skipped fields take no cotangent: the gradient carries the constants unchanged
    assert_eq!(g.mask.to_vec::<f64>(), p.mask.to_vec::<f64>());
    assert_eq!(g.name, "net");
    assert!(g.temperature != 0.0);
    // the masked column of the first layer gets no gradient
    let gw = g.layers[0].w.to_vec::<f64>();
    assert!((0..3).all(|r| gw[r * 4 + 1] == 0.0), "{gw:?}");
    // forward mode along a random direction in parameter space
    let dp = direction(&p, 500);
    // dp.mask is p.mask (zeros_like keeps skipped fields): forward mode must ignore it
    assert_eq!(dp.mask.to_vec::<f64>(), p.mask.to_vec::<f64>());
    let (v, d) = net_loss_jvp(&p, &x, &y, &dp);
    assert_eq!(v.item::<f64>(), net_loss(&p, &x, &y).item::<f64>());
    let want = g.inner(&dp);
    assert!(
        (d.item::<f64>() - want).abs() <= 1e-10 * (1.0 + want.abs()),
        "{d:?} vs {want}"
    );
}

/// Tensors reduced over an iterator: `.sum()` and `.product()` of `.map(..)` over the
/// layers (a weight penalty), and `.fold(..)` from a tensor.
#[grad(wrt(p))]
fn penalized(p: &Net, x: &Tensor) -> Tensor {
    let l2: Tensor = p.layers.iter().map(|l| l.w.powi(2).sum()).sum();
    let gain: Tensor = p.layers.iter().map(|l| l.b.mean().tanh()).product();
    let h = p
        .layers
        .iter()
        .fold(x.clone(), |h, l| (h.matmul(&l.w) + &l.b).tanh());
    h.sum() * gain + l2 * 0.01
}

#[test]
fn tensors_reduced_over_iterators() {
    let p = net(5);
    let x = randn(6, &[2, 3]);
    let g = penalized_grad(&p, &x);
    assert_struct_grad("penalized", &g, &p, |q| penalized(q, &x).item());
    let dp = direction(&p, 600);
    let (v, d) = penalized_jvp(&p, &x, &dp);
    assert_eq!(v.item::<f64>(), penalized(&p, &x).item::<f64>());
    let want = g.inner(&dp);
    assert!(
        (d.item::<f64>() - want).abs() <= 1e-10 * (1.0 + want.abs()),
        "{d:?} vs {want}"
    );
    // a sum of no tensors is a panic, in the function as in its gradient
    let mut empty = p.clone();
    empty.layers.clear();
    for r in [
        std::panic::catch_unwind(|| penalized(&empty, &x)).err(),
        std::panic::catch_unwind(|| penalized_grad(&empty, &x)).err(),
    ] {
        let r = r.expect("a panic");
        let msg = r
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| r.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains("of no tensors"), "{msg}");
    }
}

#[test]
fn layers_read_by_index() {
    let p = net(3);
    let x = randn(4, &[2, 3]);
    let g = net_indexed_grad(&p, &x);
    assert_struct_grad("net_indexed", &g, &p, |q| net_indexed(q, &x).item());
    // the head, the norm and the skipped mask play no part: zero gradients
    assert_eq!(g.head.w.to_vec::<f64>(), vec![0.0; 12]);
    assert_eq!(g.norm.gamma.to_vec::<f64>(), vec![0.0; 4]);
}

// ---------------------------------------------------------------------------------------
// control flow around tensor code
// ---------------------------------------------------------------------------------------

#[grad(wrt(x, w))]
fn controlled(x: &Tensor, w: &Tensor, squash: bool, depth: usize) -> Tensor {
    let mut h = x.clone();
    for _ in 0..depth {
        h = h.matmul(w);
        if squash {
            h = h.tanh();
        } else {
            h = h.sin() + &h * 0.5;
        }
    }
    h.powi(2).mean()
}

#[test]
fn if_on_an_inactive_flag_and_a_loop_over_a_range() {
    let x = randn(20, &[2, 3]);
    let w = randn(21, &[3, 3]) * 0.6;
    for squash in [true, false] {
        for depth in [0usize, 1, 3] {
            check(
                &format!("controlled squash={squash} depth={depth}"),
                &[x.clone(), w.clone()],
                |a| controlled(&a[0], &a[1], squash, depth).value(),
                |a| controlled_grad(&a[0], &a[1], squash, depth).flat(),
                |a, t| {
                    let (v, d) = controlled_jvp(&a[0], &a[1], squash, depth, &t[0], &t[1]);
                    (v.value(), d.value())
                },
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// the harness itself
// ---------------------------------------------------------------------------------------

#[test]
#[should_panic(expected = "gradient 0")]
fn the_checker_catches_a_wrong_gradient() {
    let x = randn(1, &[3]);
    check(
        "x^3 with 2x for its gradient",
        &[x],
        |a| a[0].powi(3).sum().item(),
        |a| vec![&a[0] * 2.0],
        |a, t| {
            (
                a[0].powi(3).sum().item(),
                (&a[0].powi(2) * 3.0).inner(&t[0]),
            )
        },
    );
}

#[test]
#[should_panic(expected = "jvp tangent")]
fn the_checker_catches_a_wrong_tangent() {
    let x = randn(1, &[3]);
    check(
        "x^3 with a forward mode off by 1%",
        &[x],
        |a| a[0].powi(3).sum().item(),
        |a| vec![a[0].powi(2) * 3.0],
        |a, t| {
            (
                a[0].powi(3).sum().item(),
                (&a[0].powi(2) * 3.03).inner(&t[0]),
            )
        },
    );
}

#[test]
fn finite_differences_are_accurate_to_the_tolerance() {
    let x = randn(9, &[4]);
    let fd = fd_grad(
        &|a: &[Tensor]| a[0].sin().sum().item(),
        std::slice::from_ref(&x),
    );
    let want = x.cos().to_vec::<f64>();
    for (a, b) in fd[0].iter().zip(&want) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
}

#[derive(Clone, Debug, Differentiable)]
struct Masked {
    w: Tensor,
    #[differentiable(skip)]
    m: Tensor,
    s: f64,
}

#[grad(wrt(p))]
fn masked(p: &Masked) -> Tensor {
    (&p.w * &p.m * p.s).sum()
}

#[test]
fn a_skipped_tensor_is_a_constant_in_both_modes() {
    let p = Masked {
        w: t(&[1.0, 2.0], &[2]),
        m: t(&[3.0, 5.0], &[2]),
        s: 2.0,
    };
    let mut dp = p.zeros_like();
    dp.w = Tensor::ones(&[2], DType::F64);
    let (v, d) = masked_jvp(&p, &dp);
    assert_eq!((v.item::<f64>(), d.item::<f64>()), (26.0, 16.0));
    dp.s = 1.0;
    assert_eq!(masked_jvp(&p, &dp).1.item::<f64>(), 16.0 + 13.0);
    let g = masked_grad(&p);
    assert_eq!(g.w.to_vec::<f64>(), vec![6.0, 10.0]);
    assert_eq!(
        g.m.to_vec::<f64>(),
        vec![3.0, 5.0],
        "the constant, untouched"
    );
    assert_eq!(g.s, 13.0);
}

// ---------------------------------------------------------------------------------------
// more control flow, f32 tensors, calls between #[grad] functions
// ---------------------------------------------------------------------------------------

#[grad(wrt(x))]
fn while_sin(x: &Tensor, n: usize) -> Tensor {
    let mut h = x.clone();
    let mut i = 0;
    while i < n {
        h = h.sin() * 1.5;
        i += 1;
    }
    h.sum()
}

#[test]
fn a_while_loop_around_tensor_code() {
    let x = randn(3, &[4]);
    for n in [0usize, 1, 4] {
        check(
            &format!("while_sin n={n}"),
            std::slice::from_ref(&x),
            |a| while_sin(&a[0], n).value(),
            |a| vec![while_sin_grad(&a[0], n)],
            |a, t| {
                let (v, d) = while_sin_jvp(&a[0], n, &t[0]);
                (v.value(), d.value())
            },
        );
    }
}

#[grad]
fn dense_tanh(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).tanh()
}

// `dense_tanh(x, w)` does not compile yet (tests/wip/TENSOR_GAPS.md 2): the macro passes a
// reference only where the call writes `&`.
#[allow(clippy::needless_borrow)]
#[grad]
fn two_dense(x: &Tensor, w: &Tensor, v: &Tensor) -> Tensor {
    let h = dense_tanh(&x, &w);
    dense_tanh(&h, &v).sum()
}

#[test]
fn a_grad_function_calls_another_that_returns_a_tensor() {
    let (x, w, v) = (randn(1, &[2, 3]), randn(2, &[3, 4]), randn(3, &[4, 2]));
    check!("two_dense", two_dense, two_dense_grad, two_dense_jvp; [x, w, v]);
}

#[grad]
fn f32_loss(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).tanh().powi(2).mean()
}

#[test]
fn f32_tensors_get_f32_gradients_equal_to_the_f64_ones() {
    let (x, w) = (randn(1, &[4, 3]), randn(2, &[3, 2]));
    let (gx, gw) = f32_loss_grad(&x.to_dtype(DType::F32), &w.to_dtype(DType::F32));
    let (hx, hw) = f32_loss_grad(&x, &w);
    assert_eq!((gx.dtype(), gw.dtype()), (DType::F32, DType::F32));
    for (g, h) in [(gx, hx), (gw, hw)] {
        let g = g.to_dtype(DType::F64).to_vec::<f64>();
        assert_close_vec("f32 gradient", &g, &h.to_vec::<f64>(), 1e-5);
    }
}

#[grad]
fn plus_assign(x: &Tensor, w: &Tensor) -> Tensor {
    let mut total = x.sum() * 0.0;
    for i in 0..3 {
        total += x.powi(i + 1).sum();
        total -= (x * w).sum();
    }
    let mut h = x.clone();
    h *= w;
    h /= 2.0;
    total + h.sum()
}

#[grad]
fn ctor_inside(x: &Tensor) -> Tensor {
    let z = Tensor::zeros(&[3], DType::F64);
    let o = Tensor::ones(&[3], DType::F64);
    (x + z).maximum(&o).sum()
}

#[grad(wrt(x))]
fn matched(x: &Tensor, mode: u32) -> Tensor {
    let y = match mode {
        0 => x.tanh(),
        1 => x.sigmoid(),
        _ => x.relu(),
    };
    y.sum()
}

#[grad(wrt(x))]
fn break_loop(x: &Tensor, n: usize) -> Tensor {
    let mut h = x.clone();
    let mut k = 0;
    loop {
        h = h.sin() + &h;
        k += 1;
        if k >= n {
            break;
        }
    }
    h.sum()
}

#[test]
fn assignment_operators_constructors_match_and_loop_break_around_tensor_code() {
    let x = randn(1, &[3]);
    let w = randn(2, &[3]);
    check!("plus_assign", plus_assign, plus_assign_grad, plus_assign_jvp; [x, w]);
    check!("ctor_inside", ctor_inside, ctor_inside_grad, ctor_inside_jvp; [x]);
    for mode in 0..3u32 {
        check(
            &format!("matched {mode}"),
            std::slice::from_ref(&x),
            |a| matched(&a[0], mode).value(),
            |a| vec![matched_grad(&a[0], mode)],
            |a, t| {
                let (v, d) = matched_jvp(&a[0], mode, &t[0]);
                (v.value(), d.value())
            },
        );
    }
    check(
        "break",
        std::slice::from_ref(&x),
        |a| break_loop(&a[0], 3).value(),
        |a| vec![break_loop_grad(&a[0], 3)],
        |a, t| {
            let (v, d) = break_loop_jvp(&a[0], 3, &t[0]);
            (v.value(), d.value())
        },
    );
}

// ---------------------------------------------------------------------------------------
// active subsets, unused and repeated arguments, a pullback of a tensor-valued function
// ---------------------------------------------------------------------------------------

#[grad(wrt(w))]
fn only_w(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).tanh().sum()
}

#[test]
fn a_matmul_with_one_active_operand() {
    let (x, w) = (randn(1, &[2, 3]), randn(2, &[3, 4]));
    check(
        "only_w",
        std::slice::from_ref(&w),
        |a| only_w(&x, &a[0]).value(),
        |a| vec![only_w_grad(&x, &a[0])],
        |a, t| {
            let (v, d) = only_w_jvp(&x, &a[0], &t[0]);
            (v.value(), d.value())
        },
    );
}

#[grad]
fn ignores_w(x: &Tensor, w: &Tensor) -> Tensor {
    let _ = w;
    x.exp().sum()
}

#[test]
fn an_unused_argument_gets_a_zero_gradient_of_its_shape() {
    let (x, w) = (randn(1, &[2, 3]), randn(2, &[3, 4]));
    let (gx, gw) = ignores_w_grad(&x, &w);
    assert_close_vec("d/dx", &gx.to_vec::<f64>(), &x.exp().to_vec::<f64>(), 1e-15);
    assert_eq!(
        (gw.shape(), gw.to_vec::<f64>()),
        (&[3usize, 4][..], vec![0.0; 12])
    );
}

#[grad]
fn product(x: &Tensor, y: &Tensor) -> Tensor {
    (x * y.sin()).sum()
}

#[test]
fn the_same_tensor_passed_twice() {
    let x = randn(3, &[4]);
    let (gx, gy) = product_grad(&x, &x);
    assert_close_vec("d/dx", &gx.to_vec::<f64>(), &x.sin().to_vec::<f64>(), 1e-15);
    assert_close_vec(
        "d/dy",
        &gy.to_vec::<f64>(),
        &(&x * x.cos()).to_vec::<f64>(),
        1e-15,
    );
}

#[grad]
fn doubled_tanh(x: &Tensor, b: &Tensor) -> Tensor {
    (x * 2.0 + b).tanh()
}

#[test]
fn the_pullback_of_a_tensor_valued_function_takes_a_cotangent_of_its_shape() {
    let (x, b) = (randn(4, &[2, 3]), randn(5, &[3]));
    let ct = randn(6, &[2, 3]);
    let (y, pullback) = doubled_tanh_vjp(&x, &b);
    assert_eq!(y.to_vec::<f64>(), doubled_tanh(&x, &b).to_vec::<f64>());
    let (gx, gb) = pullback(ct.clone());
    let local = (1.0f64 - &y * &y) * &ct;
    assert_close_vec(
        "d/dx",
        &gx.to_vec::<f64>(),
        &(&local * 2.0).to_vec::<f64>(),
        1e-14,
    );
    assert_close_vec(
        "d/db",
        &gb.to_vec::<f64>(),
        &local.sum_axis(0, false).to_vec::<f64>(),
        1e-14,
    );
    // forward mode: the tangent has the output's shape
    let (dx, db) = (randn(7, &[2, 3]), randn(8, &[3]));
    let (_, dy) = doubled_tanh_jvp(&x, &b, &dx, &db);
    let want = (1.0f64 - &y * &y) * (&dx * 2.0 + &db);
    assert_close_vec("jvp", &dy.to_vec::<f64>(), &want.to_vec::<f64>(), 1e-14);
}

// ---------------------------------------------------------------------------------------
// more parameter-struct shapes
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, Differentiable)]
struct Extra {
    gates: [f64; 2],
    pair: (f64, Dense),
    blocks: Vec<Vec<Dense>>,
}

#[grad]
fn both_active(p: &Dense, x: &Tensor) -> Tensor {
    (x.matmul(&p.w) + &p.b).tanh().sum()
}

#[grad(wrt(p))]
fn iter_layers(p: &Net, x: &Tensor) -> Tensor {
    let mut h = x.clone();
    for layer in p.layers.iter() {
        h = h.matmul(&layer.w) + &layer.b;
    }
    h.sum()
}

#[grad(wrt(p))]
fn extra(p: &Extra, x: &Tensor) -> Tensor {
    let h = (x.matmul(&p.pair.1.w) + &p.pair.1.b) * p.gates[0] + p.pair.0;
    let mut out = h.sum() * p.gates[1];
    for block in &p.blocks {
        for d in block {
            out += (x.matmul(&d.w) + &d.b).sum();
        }
    }
    out
}

#[test]
fn a_struct_and_a_tensor_both_active() {
    let p = net(1).layers[0].clone();
    let x = randn(2, &[5, 3]);
    let g = both_active_grad(&p, &x);
    assert_struct_grad("both_active", &g, &(p, x), |q| {
        both_active(&q.0, &q.1).item()
    });
}

#[test]
fn layers_through_iter() {
    let p = net(2);
    let x = randn(3, &[5, 3]);
    let g = iter_layers_grad(&p, &x);
    assert_struct_grad("iter_layers", &g, &p, |q| iter_layers(q, &x).item());
}

#[test]
fn array_tuple_and_nested_vec_fields() {
    let d = net(4).layers[0].clone();
    let e = Extra {
        gates: [0.5, 2.0],
        pair: (1.5, d.clone()),
        blocks: vec![vec![d.clone(), d], vec![]],
    };
    let x = randn(5, &[2, 3]);
    let g = extra_grad(&e, &x);
    assert_struct_grad("extra", &g, &e, |q| extra(q, &x).item());
}

#[grad]
fn taped(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let mut h = x.clone();
    let mut acc = h.sum() * 0.0;
    for i in 0..4 {
        let a = h.matmul(w);
        if i % 2 == 0 {
            h = a.tanh() * h.sum_axis(1, true) + b;
        } else {
            h = (a - &h).sin() / (h.powi(2).mean() + 1.0);
        }
        acc += h.max() * 0.1;
    }
    h.logsumexp_axis(-1, false).sum() + acc
}

#[test]
fn values_overwritten_in_a_loop_and_needed_in_reverse() {
    let (x, w, b) = (randn(1, &[2, 3]), randn(2, &[3, 3]) * 0.5, randn(3, &[3]));
    check!("taped", taped, taped_grad, taped_jvp; [x, w, b]);
}

#[grad]
fn mixed_binary(a: &Tensor, b: &Tensor) -> Tensor {
    let q = a * b + a / (b * b + 1.0) - b;
    (q.maximum(&(a - 0.3)) * (a + b).sin()).sum()
}

/// Pseudo-random broadcast-compatible shape pairs (0-3 axes, sizes 1-3, size-1 axes on
/// either side), from a fixed linear congruential sequence.
fn broadcast_pairs(n: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |m: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % m as u64) as usize
    };
    (0..n)
        .map(|_| {
            let out: Vec<usize> = (0..next(4)).map(|_| 1 + next(3)).collect();
            let mut side = |keep: usize| -> Vec<usize> {
                let skip = next(out.len() + 1).min(out.len() - keep.min(out.len()));
                out[skip..]
                    .iter()
                    .map(|&d| if next(3) == 0 { 1 } else { d })
                    .collect()
            };
            let a = side(out.len());
            let b = side(0);
            (a, b)
        })
        .collect()
}

#[test]
fn random_broadcast_shape_pairs() {
    let pairs = broadcast_pairs(30);
    assert!(pairs.iter().any(|(a, b)| a.len() != b.len()));
    assert!(pairs.iter().any(|(a, b)| a.contains(&1) || b.contains(&1)));
    for (k, (sa, sb)) in pairs.iter().enumerate() {
        let a = randn(300 + k as u64, sa);
        let b = randn(400 + k as u64, sb);
        check!(format!("mixed_binary {sa:?} {sb:?}"), mixed_binary, mixed_binary_grad, mixed_binary_jvp; [a, b]);
    }
}

#[grad(wrt(x))]
fn gathered(x: &Tensor, idx: &Tensor, c: &Tensor) -> Tensor {
    (x.index_select(0, idx).sin() * c).sum()
}

#[test]
fn index_select_with_repeated_indices_sums_their_cotangents() {
    let x = randn(1, &[4, 3]);
    let idx = Tensor::from_vec(vec![2i32, 0, 2, 3, 2], &[5]);
    let c = randn(2, &[5, 3]);
    check(
        "index_select",
        std::slice::from_ref(&x),
        |a| gathered(&a[0], &idx, &c).value(),
        |a| vec![gathered_grad(&a[0], &idx, &c)],
        |a, t| {
            let (v, d) = gathered_jvp(&a[0], &idx, &c, &t[0]);
            (v.value(), d.value())
        },
    );
    // row 1 is never selected: no gradient
    let g = gathered_grad(&x, &idx, &c).to_vec::<f64>();
    assert_eq!(&g[3..6], &[0.0, 0.0, 0.0]);
}

#[grad]
fn joined(a: &Tensor, b: &Tensor) -> Tensor {
    let c = Tensor::concat(&[a, b], 0);
    let s = Tensor::stack(&[a, &a.sin()], -1);
    (c.exp() * 0.5).sum() + s.powi(3).sum() + Tensor::concat(&[b, a], 1).tanh().sum()
}

#[test]
fn concat_and_stack_split_their_cotangents() {
    let (a, b) = (randn(1, &[2, 3]), randn(2, &[2, 3]));
    check!("joined", joined, joined_grad, joined_jvp; [a, b]);
}

#[grad(wrt(w, b))]
fn cross_entropy(w: &Tensor, b: &Tensor, x: &Tensor, labels: &Tensor) -> Tensor {
    let y = labels.one_hot(3, DType::F64);
    -((x.matmul(w) + b).log_softmax(-1) * y)
        .sum_axis(1, false)
        .mean()
}

#[test]
fn cross_entropy_with_integer_labels_made_one_hot_inside() {
    let (w, b, x) = (randn(1, &[4, 3]), randn(2, &[3]), randn(3, &[5, 4]));
    let labels = Tensor::from_vec(vec![0i32, 2, 1, 2, 0], &[5]);
    check(
        "cross_entropy",
        &[w, b],
        |a| cross_entropy(&a[0], &a[1], &x, &labels).value(),
        |a| cross_entropy_grad(&a[0], &a[1], &x, &labels).flat(),
        |a, t| {
            let (v, d) = cross_entropy_jvp(&a[0], &a[1], &x, &labels, &t[0], &t[1]);
            (v.value(), d.value())
        },
    );
}
