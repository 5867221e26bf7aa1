//! The batching rules of `#[vmap]`: one helper per primitive, named as its tensor helper in
//! [`crate::tensor_rules`] (`t::add` -> `b::add`), called by generated code when at least one
//! argument is *batched*.
//!
//! A batched value is a [`Tensor`] whose axis 0 is the batch axis (size `B`); the rest of its
//! shape is the *example shape*. A batched float (one `f64` per example) is a 1-D tensor `[B]`.
//! Generated code marks batched operands as [`B`]`(&x)`; unbatched tensors are passed as `&x`
//! and floats as they are, exactly as to `t::`.
//!
//! The one property every helper keeps: its result is batched (axis 0 of size `B`), and
//! example `i` of it equals what the `t::` helper returns on example `i` of each batched
//! operand and the unbatched operands as they are. The rules push the loop over examples into
//! single tensor operations (axes shifted past the batch axis, ranks aligned with size-1 axes,
//! unbatched operands broadcast as stride-0 views), so that a batched program runs as many
//! kernels as the unbatched one.

use std::borrow::Cow;

use ferrax_runtime::differentiable::{LeafMut, is_lazy_zero, lazy_zero, leaves_mut};
use ferrax_runtime::{Conv, DType, Device, Differentiable, Error, Float, PadMode, Tensor};

use crate::tensor_rules::{self as t, Cond, Operand, Product};

// ----- operands -----

/// A batched operand: axis 0 is the batch axis.
#[derive(Clone, Copy)]
pub struct B<'a>(pub &'a Tensor);

/// An argument of a batching rule: batched, or an ordinary operand shared by every example.
#[derive(Clone, Copy)]
pub enum BArg<'a> {
    /// A tensor whose axis 0 is the batch axis.
    Batched(&'a Tensor),
    /// A tensor or a float, the same for every example.
    Plain(Operand<'a>),
}

impl<'a> From<B<'a>> for BArg<'a> {
    fn from(b: B<'a>) -> Self {
        BArg::Batched(b.0)
    }
}

impl<'a> From<Operand<'a>> for BArg<'a> {
    fn from(o: Operand<'a>) -> Self {
        BArg::Plain(o)
    }
}

impl<'a> From<&'a Tensor> for BArg<'a> {
    fn from(t: &'a Tensor) -> Self {
        BArg::Plain(Operand::Tensor(t))
    }
}

impl<'a, 'b> From<&'a &'b Tensor> for BArg<'a> {
    fn from(t: &'a &'b Tensor) -> Self {
        BArg::Plain(Operand::Tensor(t))
    }
}

impl From<f64> for BArg<'_> {
    fn from(x: f64) -> Self {
        BArg::Plain(Operand::Scalar(x))
    }
}

impl From<f32> for BArg<'_> {
    fn from(x: f32) -> Self {
        BArg::Plain(Operand::Scalar(x as f64))
    }
}

impl<'a> From<&'a f64> for BArg<'a> {
    fn from(x: &'a f64) -> Self {
        BArg::Plain(Operand::Scalar(*x))
    }
}

impl<'a> From<&'a f32> for BArg<'a> {
    fn from(x: &'a f32) -> Self {
        BArg::Plain(Operand::Scalar(*x as f64))
    }
}

impl<'a> BArg<'a> {
    /// The batched tensor, if this argument is one (panics for a 0-d "batched" tensor).
    #[track_caller]
    fn batched(self) -> Option<&'a Tensor> {
        match self {
            BArg::Batched(x) => {
                assert!(
                    x.ndim() >= 1,
                    "ferrax vmap: a batched operand has no batch axis (it is a 0-d tensor)"
                );
                Some(x)
            }
            BArg::Plain(_) => None,
        }
    }

    /// The operand of an argument known to be unbatched; panics for a batched one.
    #[track_caller]
    fn plain(self) -> Operand<'a> {
        match self {
            BArg::Plain(o) => o,
            BArg::Batched(_) => panic!("ferrax vmap: a batched operand where none was expected"),
        }
    }

    /// The shape of one example (a float's is `[]`).
    #[track_caller]
    fn ex_shape(self) -> &'a [usize] {
        match self {
            BArg::Batched(x) => &self.batched().unwrap_or(x).shape()[1..],
            BArg::Plain(Operand::Tensor(x)) => x.shape(),
            BArg::Plain(Operand::Scalar(_)) => &[],
        }
    }

    /// The tensor as it is, batch axis included where it has one.
    fn as_tensor(self) -> Cow<'a, Tensor> {
        match self {
            BArg::Batched(x) => Cow::Borrowed(x),
            BArg::Plain(o) => o.tensor(),
        }
    }

    /// The rank of one example.
    #[track_caller]
    fn ex_rank(self) -> usize {
        self.ex_shape().len()
    }
}

/// The condition of a batched select or the operand of a logical op: a batched mask, an
/// unbatched mask, or a Rust bool.
#[derive(Clone, Copy)]
pub enum BCond<'a> {
    /// A mask whose axis 0 is the batch axis.
    Batched(&'a Tensor),
    /// A mask or a bool, the same for every example.
    Plain(Cond<'a>),
}

impl<'a> From<B<'a>> for BCond<'a> {
    fn from(b: B<'a>) -> Self {
        BCond::Batched(b.0)
    }
}

impl<'a> From<&'a Tensor> for BCond<'a> {
    fn from(t: &'a Tensor) -> Self {
        BCond::Plain(Cond::Mask(t))
    }
}

impl<'a, 'b> From<&'a &'b Tensor> for BCond<'a> {
    fn from(t: &'a &'b Tensor) -> Self {
        BCond::Plain(Cond::Mask(t))
    }
}

impl From<bool> for BCond<'_> {
    fn from(b: bool) -> Self {
        BCond::Plain(Cond::Bool(b))
    }
}

impl<'a> From<&'a bool> for BCond<'a> {
    fn from(b: &'a bool) -> Self {
        BCond::Plain(Cond::Bool(*b))
    }
}

// ----- internal helpers -----

/// The batched tensor among the operands of `op`; panics if there is none.
#[track_caller]
fn need<'a>(op: &str, x: BArg<'a>) -> &'a Tensor {
    match x.batched() {
        Some(x) => x,
        None => panic!(
            "ferrax vmap: b::{op} needs a batched operand (unbatched operands go to t::{op})"
        ),
    }
}

/// The batch size of the batched operands of `op` (which must agree); panics if none is.
#[track_caller]
fn bsz_of(op: &str, args: &[BArg<'_>]) -> usize {
    let sizes: Vec<usize> = args
        .iter()
        .filter_map(|a| a.batched())
        .map(|x| x.shape()[0])
        .collect();
    let Some(&first) = sizes.first() else {
        panic!("ferrax vmap: b::{op} needs a batched operand (unbatched operands go to t::{op})")
    };
    assert!(
        sizes.iter().all(|&s| s == first),
        "ferrax vmap: b::{op}: batched operands have different batch sizes {sizes:?}"
    );
    first
}

/// `axis` (negative: from the end) as an index into `n` example axes; panics naming `op`
/// and the example shape when it is out of range.
#[track_caller]
fn norm_axis(op: &str, axis: isize, n: usize, ex_shape: &[usize]) -> usize {
    let a = if axis < 0 { axis + n as isize } else { axis };
    assert!(
        a >= 0 && a < n as isize,
        "{op}: axis {axis} is out of range for an example of shape {ex_shape:?} ({n} axes valid)"
    );
    a as usize
}

/// The axis of the batched tensor for example axis `axis` of an example of rank `n`.
#[track_caller]
fn example_axis(op: &str, axis: isize, x: &Tensor) -> isize {
    let ex = &x.shape()[1..];
    norm_axis(op, axis, ex.len(), ex) as isize + 1
}

/// `x` with `k` size-1 axes inserted after the batch axis (a view).
fn pad_after_batch(x: &Tensor, k: usize) -> Tensor {
    let mut x = x.clone();
    for _ in 0..k {
        x = x.unsqueeze(1);
    }
    x
}

/// `x` as a batched tensor: itself if batched, else a stride-0 broadcast view `[bsz] + shape`
/// (a float becomes `[bsz]` in the dtype and on the device of `like`, or f64 on the CPU).
fn lifted<'a>(x: BArg<'a>, bsz: usize, like: Option<&Tensor>) -> Cow<'a, Tensor> {
    match x {
        BArg::Batched(x) => Cow::Borrowed(x),
        BArg::Plain(Operand::Tensor(x)) => Cow::Owned(lift_tensor(x, bsz)),
        BArg::Plain(Operand::Scalar(v)) => Cow::Owned(match like {
            Some(l) => Tensor::full_on(&[bsz], v, l.dtype(), &l.device()),
            None => Tensor::full(&[bsz], v, DType::F64),
        }),
    }
}

fn lift_tensor(x: &Tensor, bsz: usize) -> Tensor {
    let mut shape = vec![bsz];
    shape.extend_from_slice(x.shape());
    x.unsqueeze(0).broadcast_to(&shape)
}

/// A tensor holding no data with the example shape, dtype and device of `like` (for `t::`
/// helpers that read only a `like`'s shape).
fn example_like(like: BArg<'_>) -> Cow<'_, Tensor> {
    match like {
        BArg::Batched(x) => Cow::Owned(x.scalar_like(0.0).broadcast_to(&x.shape()[1..])),
        BArg::Plain(o) => o.tensor(),
    }
}

/// `[bsz] + shape`.
fn with_batch(bsz: usize, shape: &[usize]) -> Vec<usize> {
    let mut s = vec![bsz];
    s.extend_from_slice(shape);
    s
}

/// Per-example unbroadcast of a batched `ct` to `target`: sums the extra leading example axes
/// (never the batch axis), then the size-1 axes of `target` with keepdim.
#[track_caller]
fn sum_to_example(op: &str, ct: &Tensor, target: &[usize]) -> Tensor {
    let ex = &ct.shape()[1..];
    if ex == target {
        return ct.clone();
    }
    assert!(
        ex.len() >= target.len(),
        "{op}: an example of shape {ex:?} cannot be summed to shape {target:?}"
    );
    let mut g = ct.clone();
    for _ in 0..ex.len() - target.len() {
        g = g.sum_axis(1, false);
    }
    for (d, &size) in target.iter().enumerate() {
        let have = g.shape()[d + 1];
        if size == 1 && have != 1 {
            g = g.sum_axis(d as isize + 1, true);
        } else {
            assert!(
                size == have,
                "{op}: an example of shape {ex:?} cannot be summed to shape {target:?}"
            );
        }
    }
    g
}

/// An operand of an elementwise rule after rank alignment.
pub(crate) enum Al<'a> {
    View(Tensor),
    Plain(Operand<'a>),
}

impl Al<'_> {
    pub(crate) fn op(&self) -> Operand<'_> {
        match self {
            Al::View(t) => Operand::Tensor(t),
            Al::Plain(o) => *o,
        }
    }
}

/// Aligns elementwise operands: each batched one is viewed as `[B, 1 x (R - r), example]`
/// (R the largest example rank), so that NumPy broadcasting acts per example.
#[track_caller]
fn align<'a, const N: usize>(op: &str, args: [BArg<'a>; N]) -> [Al<'a>; N] {
    bsz_of(op, &args);
    let Ok(out) = align_all(op, &args).try_into() else {
        unreachable!("one aligned operand per operand")
    };
    out
}

/// [`align`] for any number of operands, any of them batched or none (then as they are).
#[track_caller]
pub(crate) fn align_all<'a>(op: &str, args: &[BArg<'a>]) -> Vec<Al<'a>> {
    if args.iter().all(|a| matches!(a, BArg::Plain(_))) {
        return args.iter().map(|a| Al::Plain(a.plain())).collect();
    }
    bsz_of(op, args);
    let r = args.iter().map(|a| a.ex_rank()).max().unwrap_or(0);
    args.iter()
        .map(|&a| match a {
            BArg::Batched(x) => Al::View(pad_after_batch(x, r - (x.ndim() - 1))),
            BArg::Plain(o) => Al::Plain(o),
        })
        .collect()
}

/// A value in a composed rule: a tensor or a Rust float.
enum V {
    T(Tensor),
    S(f64),
}

impl V {
    fn of(o: Operand<'_>) -> V {
        match o {
            Operand::Tensor(t) => V::T(t.clone()),
            Operand::Scalar(x) => V::S(x),
        }
    }

    fn op(&self) -> Operand<'_> {
        match self {
            V::T(t) => Operand::Tensor(t),
            V::S(x) => Operand::Scalar(*x),
        }
    }

    fn map(&self, ft: impl Fn(&Tensor) -> Tensor, fs: impl Fn(f64) -> f64) -> V {
        match self {
            V::T(t) => V::T(ft(t)),
            V::S(x) => V::S(fs(*x)),
        }
    }

    fn zip(
        &self,
        other: &V,
        ft: impl for<'x> Fn(Operand<'x>, Operand<'x>) -> Tensor,
        fs: impl Fn(f64, f64) -> f64,
    ) -> V {
        match (self, other) {
            (V::S(a), V::S(b)) => V::S(fs(*a, *b)),
            (a, b) => V::T(ft(a.op(), b.op())),
        }
    }

    #[track_caller]
    fn tensor(self, op: &str) -> Tensor {
        match self {
            V::T(t) => t,
            V::S(_) => unreachable!("b::{op}: a batched rule produced a float"),
        }
    }
}

// ----- elementwise -----

macro_rules! binary {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("Batched `t::", stringify!($name), "`, broadcasting per example.")]
        #[track_caller]
        pub fn $name<'a>(a: impl Into<BArg<'a>>, b: impl Into<BArg<'a>>) -> Tensor {
            let [a, b] = align(stringify!($name), [a.into(), b.into()]);
            t::$name(a.op(), b.op())
        }
    )*};
}
binary!(
    add, sub, mul, div, max, min, powf, atan2, lt, le, gt, ge, eq, ne
);

macro_rules! unary {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("Batched `t::", stringify!($name), "` (elementwise).")]
        #[track_caller]
        pub fn $name<'a>(x: impl Into<BArg<'a>>) -> Tensor {
            t::$name(need(stringify!($name), x.into()))
        }
    )*};
}
unary!(
    neg,
    abs,
    exp,
    ln,
    ln1p,
    exp_m1,
    sin,
    cos,
    tan,
    tanh,
    sqrt,
    recip,
    sigmoid,
    softplus,
    relu,
    signum,
    stop_gradient,
    ones_like,
    asin,
    acos,
    atan,
    sinh,
    cosh,
    asinh,
    acosh,
    atanh,
    exp2,
    log2,
    log10,
    cbrt,
    floor,
    ceil,
    round,
    trunc,
    erf,
);

/// Batched `t::powi`.
#[track_caller]
pub fn powi<'a>(x: impl Into<BArg<'a>>, n: i32) -> Tensor {
    t::powi(need("powi", x.into()), n)
}

/// Batched `t::select`: `a` where the condition holds, else `b`, per example.
#[track_caller]
pub fn select<'a>(
    c: impl Into<BCond<'a>>,
    a: impl Into<BArg<'a>>,
    b: impl Into<BArg<'a>>,
) -> Tensor {
    let (c, a, b) = (c.into(), a.into(), b.into());
    let m = match c {
        BCond::Plain(Cond::Bool(flag)) => {
            let bsz = bsz_of("select", &[a, b]);
            let like = a.batched().or(b.batched());
            return lifted(if flag { a } else { b }, bsz, like).into_owned();
        }
        BCond::Plain(Cond::Mask(m)) => BArg::Plain(Operand::Tensor(m)),
        BCond::Batched(m) => BArg::Batched(m),
    };
    let [m, a, b] = align("select", [m, a, b]);
    let Operand::Tensor(m) = m.op() else {
        unreachable!("a mask is a tensor")
    };
    t::select(m, a.op(), b.op())
}

/// `x.log(base)` elementwise (as Rust's: `ln(x) / ln(base)`), broadcasting per example.
#[track_caller]
pub fn log<'a>(x: impl Into<BArg<'a>>, base: impl Into<BArg<'a>>) -> Tensor {
    let [x, base] = align("log", [x.into(), base.into()]);
    let lx = V::of(x.op()).map(Tensor::ln, f64::ln);
    let lb = V::of(base.op()).map(Tensor::ln, f64::ln);
    lx.zip(&lb, |a, b| t::div(a, b), |a, b| a / b).tensor("log")
}

/// `a.hypot(b)` elementwise, as `sqrt(a² + b²)`, broadcasting per example.
#[track_caller]
pub fn hypot<'a>(a: impl Into<BArg<'a>>, b: impl Into<BArg<'a>>) -> Tensor {
    let [a, b] = align("hypot", [a.into(), b.into()]);
    let sq = |v: V| v.map(|t| t * t, |x| x * x);
    let s = sq(V::of(a.op())).zip(&sq(V::of(b.op())), |a, b| t::add(a, b), |a, b| a + b);
    s.map(Tensor::sqrt, f64::sqrt).tensor("hypot")
}

/// `a.mul_add(b, c)` elementwise, as `a * b + c` (two roundings), broadcasting per example.
#[track_caller]
pub fn mul_add<'a>(
    a: impl Into<BArg<'a>>,
    b: impl Into<BArg<'a>>,
    c: impl Into<BArg<'a>>,
) -> Tensor {
    let [a, b, c] = align("mul_add", [a.into(), b.into(), c.into()]);
    let p = V::of(a.op()).zip(&V::of(b.op()), |a, b| t::mul(a, b), |a, b| a * b);
    p.zip(&V::of(c.op()), |a, b| t::add(a, b), |a, b| a + b)
        .tensor("mul_add")
}

/// Batched `t::log_add_exp`, broadcasting per example.
#[track_caller]
pub fn log_add_exp<'a>(a: impl Into<BArg<'a>>, b: impl Into<BArg<'a>>) -> Tensor {
    let [a, b] = align("logaddexp", [a.into(), b.into()]);
    t::log_add_exp(a.op(), b.op())
}

/// `x.clamp(lo, hi)` elementwise, as `min(max(x, lo), hi)`, broadcasting per example.
#[track_caller]
pub fn clamp<'a>(
    x: impl Into<BArg<'a>>,
    lo: impl Into<BArg<'a>>,
    hi: impl Into<BArg<'a>>,
) -> Tensor {
    let [x, lo, hi] = align("clamp", [x.into(), lo.into(), hi.into()]);
    let m = V::of(x.op()).zip(&V::of(lo.op()), |a, b| t::max(a, b), f64::max);
    m.zip(&V::of(hi.op()), |a, b| t::min(a, b), f64::min)
        .tensor("clamp")
}

/// A condition as a 1/0 value: `(batched?, mask or float)`.
fn truth(c: BCond<'_>) -> (bool, V) {
    match c {
        BCond::Batched(m) => (true, V::T(t::ne(m, 0.0))),
        BCond::Plain(Cond::Mask(m)) => (false, V::T(t::ne(m, 0.0))),
        BCond::Plain(Cond::Bool(b)) => (false, V::S(if b { 1.0 } else { 0.0 })),
    }
}

fn as_barg(batched: bool, v: &V) -> BArg<'_> {
    match (batched, v) {
        (true, V::T(t)) => BArg::Batched(t),
        (_, v) => BArg::Plain(v.op()),
    }
}

/// `!m` for a batched mask: 1 where `m` is zero, else 0 (in `m`'s dtype).
#[track_caller]
pub fn not<'a>(m: impl Into<BCond<'a>>) -> Tensor {
    match m.into() {
        BCond::Batched(m) => t::eq(m, 0.0),
        BCond::Plain(_) => panic!("ferrax vmap: b::not needs a batched mask"),
    }
}

/// `a && b` for batched masks or bools: 1 where both are nonzero, else 0.
#[track_caller]
pub fn bit_and<'a>(a: impl Into<BCond<'a>>, b: impl Into<BCond<'a>>) -> Tensor {
    let ((ba, va), (bb, vb)) = (truth(a.into()), truth(b.into()));
    mul(as_barg(ba, &va), as_barg(bb, &vb))
}

/// `a || b` for batched masks or bools: 1 where either is nonzero, else 0.
#[track_caller]
pub fn bit_or<'a>(a: impl Into<BCond<'a>>, b: impl Into<BCond<'a>>) -> Tensor {
    let ((ba, va), (bb, vb)) = (truth(a.into()), truth(b.into()));
    max(as_barg(ba, &va), as_barg(bb, &vb))
}

/// The sum of a mask's elements, read back to the host (where f64 is available: a GPU
/// has none).
fn host_sum(m: &Tensor) -> f64 {
    m.sum()
        .to_device(&Device::Cpu)
        .to_dtype(DType::F64)
        .item::<f64>()
}

/// Whether every element of the mask is nonzero (true for an empty mask).
pub fn all<'a>(m: impl Into<BCond<'a>>) -> bool {
    match m.into() {
        BCond::Batched(m) | BCond::Plain(Cond::Mask(m)) => host_sum(&t::eq(m, 0.0)) == 0.0,
        BCond::Plain(Cond::Bool(b)) => b,
    }
}

/// Whether some element of the mask is nonzero (false for an empty mask).
pub fn any<'a>(m: impl Into<BCond<'a>>) -> bool {
    match m.into() {
        BCond::Batched(m) | BCond::Plain(Cond::Mask(m)) => host_sum(&t::ne(m, 0.0)) > 0.0,
        BCond::Plain(Cond::Bool(b)) => b,
    }
}

// ----- the user's effects, once per example -----

/// Every example of a batched float (`[B]`), as `f64`s: what a user's `println!` or
/// `assert!` under `#[vmap]` reads, one example at a time (read back from a GPU once).
pub fn examples_f64(x: &Tensor) -> Vec<f64> {
    x.to_device(&Device::Cpu)
        .to_dtype(DType::F64)
        .to_vec::<f64>()
}

/// Every example of a batched mask or bool (`[B]`): whether it is set.
pub fn examples_bool(m: &Tensor) -> Vec<bool> {
    examples_f64(m).into_iter().map(|v| v != 0.0).collect()
}

/// Example `i` of a batched tensor (a view).
pub fn example(x: &Tensor, i: usize) -> Tensor {
    x.slice(0, i, i + 1).squeeze(0)
}

// ----- reductions -----

macro_rules! reduce_all {
    ($($name:ident => $method:ident),* $(,)?) => {$(
        #[doc = concat!("Batched `t::", stringify!($name), "`: each example reduced whole, `[B]`.")]
        #[track_caller]
        pub fn $name<'a>(x: impl Into<BArg<'a>>) -> Tensor {
            let x = need(stringify!($name), x.into());
            let n: usize = x.shape()[1..].iter().product();
            x.reshape(&[x.shape()[0], n]).$method(1, false)
        }
    )*};
}
reduce_all!(sum => sum_axis, mean => mean_axis, max_all => max_axis, min_all => min_axis);

macro_rules! along_axis {
    ($($name:ident => $method:ident),* $(,)?) => {$(
        #[doc = concat!("Batched `t::", stringify!($name), "` (the example axis shifted past the batch axis).")]
        #[track_caller]
        pub fn $name<'a>(x: impl Into<BArg<'a>>, axis: isize, keepdim: bool) -> Tensor {
            let x = need(stringify!($name), x.into());
            x.$method(example_axis(stringify!($name), axis, x), keepdim)
        }
    )*};
}
along_axis! {
    sum_axis => sum_axis, mean_axis => mean_axis, max_axis => max_axis,
    min_axis => min_axis, log_sum_exp_axis => logsumexp_axis,
}

/// Batched `t::softmax`.
#[track_caller]
pub fn softmax<'a>(x: impl Into<BArg<'a>>, axis: isize) -> Tensor {
    let x = need("softmax", x.into());
    x.softmax(example_axis("softmax", axis, x))
}

/// Batched `t::log_softmax`.
#[track_caller]
pub fn log_softmax<'a>(x: impl Into<BArg<'a>>, axis: isize) -> Tensor {
    let x = need("log_softmax", x.into());
    x.log_softmax(example_axis("log_softmax", axis, x))
}

/// Batched `x.argmax_axis(axis, keepdim)` (i32 indices).
#[track_caller]
pub fn method_argmax_axis<'a>(x: impl Into<BArg<'a>>, axis: isize, keepdim: bool) -> Tensor {
    let x = need("argmax_axis", x.into());
    x.argmax_axis(example_axis("argmax_axis", axis, x), keepdim)
}

/// Batched `x.argmin_axis(axis, keepdim)` (i32 indices).
#[track_caller]
pub fn method_argmin_axis<'a>(x: impl Into<BArg<'a>>, axis: isize, keepdim: bool) -> Tensor {
    let x = need("argmin_axis", x.into());
    x.argmin_axis(example_axis("argmin_axis", axis, x), keepdim)
}

/// Batched `x.cumargmax(axis, reverse)` (i32 indices).
#[track_caller]
pub fn method_cumargmax<'a>(x: impl Into<BArg<'a>>, axis: isize, reverse: bool) -> Tensor {
    let x = need("cumargmax", x.into());
    x.cumargmax(example_axis("cumargmax", axis, x), reverse)
}

/// Batched `x.cumargmin(axis, reverse)` (i32 indices).
#[track_caller]
pub fn method_cumargmin<'a>(x: impl Into<BArg<'a>>, axis: isize, reverse: bool) -> Tensor {
    let x = need("cumargmin", x.into());
    x.cumargmin(example_axis("cumargmin", axis, x), reverse)
}

/// Batched `x.item()`: the one element of each example, `[B]`.
#[track_caller]
pub fn method_item<'a>(x: impl Into<BArg<'a>>) -> Tensor {
    let x = need("item", x.into());
    assert!(
        x.shape()[1..].iter().product::<usize>() == 1,
        "item: needs examples with exactly one element, got example shape {:?}",
        &x.shape()[1..]
    );
    x.reshape(&[x.shape()[0]])
}

/// Batched seed of `f_grad`: ones shaped like each one-element example result. Panics for
/// larger examples (a gradient is of a scalar).
#[track_caller]
pub fn grad_seed<'a>(out: impl Into<BArg<'a>>) -> Tensor {
    let out = need("grad_seed", out.into());
    assert!(
        out.shape()[1..].iter().product::<usize>() == 1,
        "a gradient needs a function with a one-element result, each example of this one has shape {:?}: \
         reduce it (`.sum()`, `.mean()`)",
        &out.shape()[1..]
    );
    out.ones_like()
}

// ----- matmul -----

fn ex_of(x: &Tensor) -> &[usize] {
    &x.shape()[1..]
}

/// Batched `t::matmul`: NumPy's `matmul` per example (vectors promoted, batch axes broadcast).
#[track_caller]
pub fn matmul<'a>(a: impl Into<BArg<'a>>, b: impl Into<BArg<'a>>) -> Tensor {
    let (a, b) = (a.into(), b.into());
    let bsz = bsz_of("matmul", &[a, b]);
    let (ra, rb) = (a.ex_rank(), b.ex_rank());
    // (checked per example, so that the message names the shapes the user's code sees)
    let (ea, eb) = (a.ex_shape(), b.ex_shape());
    let contracted = (
        ea.last(),
        if rb == 1 {
            eb.first()
        } else {
            eb.get(rb.wrapping_sub(2))
        },
    );
    if let (Some(ka), Some(kb)) = contracted {
        assert!(
            ka == kb,
            "matmul: shapes {ea:?} and {eb:?} cannot be multiplied: contracted axes have sizes {ka} and {kb} (per example, under #[vmap] with a batch of {bsz})"
        );
    }
    match (a, b) {
        // [B, .., k] @ [k, n] or [k]: the batch axis is a leading axis of `a`
        (BArg::Batched(x), BArg::Plain(Operand::Tensor(w)))
            if ra >= 1 && (1..=2).contains(&w.ndim()) =>
        {
            return x.matmul(w);
        }
        // [m, k] or [k] @ [B, k, n]: broadcast over the batch axis
        (BArg::Plain(Operand::Tensor(w)), BArg::Batched(x))
            if rb == 2 && (1..=2).contains(&w.ndim()) =>
        {
            return w.matmul(x);
        }
        // [m, k] @ [B, k] (per example a vector): [B, k] @ [k, m]
        (BArg::Plain(Operand::Tensor(w)), BArg::Batched(x)) if rb == 1 && w.ndim() == 2 => {
            return x.matmul(&w.t());
        }
        _ => {}
    }
    assert!(
        ra >= 1 && rb >= 1,
        "matmul: examples of shapes {:?} and {:?} cannot be multiplied: matmul needs operands with at least one axis",
        a.ex_shape(),
        b.ex_shape()
    );
    let mut x = lifted(a, bsz, None).into_owned();
    let mut y = lifted(b, bsz, None).into_owned();
    if ra == 1 {
        x = x.unsqueeze(1);
    }
    if rb == 1 {
        y = y.unsqueeze(-1);
    }
    let (ea, eb) = (x.ndim(), y.ndim());
    let x = pad_after_batch(&x, eb.saturating_sub(ea));
    let y = pad_after_batch(&y, ea.saturating_sub(eb));
    let mut r = x.matmul(&y);
    if rb == 1 {
        r = r.squeeze(-1);
    }
    if ra == 1 {
        r = r.squeeze(if rb == 1 { -1 } else { -2 });
    }
    r
}

/// `x @ y` of batched tensors whose example batch axes are aligned with size-1 axes.
fn batched_matmul(x: &Tensor, y: &Tensor) -> Tensor {
    let (ea, eb) = (x.ndim(), y.ndim());
    let x = pad_after_batch(x, eb.saturating_sub(ea));
    let y = pad_after_batch(y, ea.saturating_sub(eb));
    x.matmul(&y)
}

/// Batched `t::matmul_tl`: the cotangent of `a` in `a.matmul(b)`, per example.
#[track_caller]
pub fn matmul_tl<'a>(
    ct: impl Into<BArg<'a>>,
    b: impl Into<BArg<'a>>,
    like_a: impl Into<BArg<'a>>,
) -> Tensor {
    let (ct, b, like) = (ct.into(), b.into(), like_a.into());
    let bsz = bsz_of("matmul_tl", &[ct, b, like]);
    let like_ex = like.ex_shape();
    // ct [B, .., n] @ bᵀ [n, k]: the batch axis is a leading axis of `ct`
    if let (BArg::Batched(c), BArg::Plain(Operand::Tensor(w))) = (ct, b)
        && w.ndim() == 2
        && ct.ex_rank() >= 1
        && like_ex.len() == ct.ex_rank()
    {
        let g = c.matmul(&w.t());
        if ex_of(&g) == like_ex {
            return g;
        }
    }
    // a dot product's cotangent: the per-example scalar ct times the vector b
    if ct.ex_rank() == 0
        && b.ex_rank() == 1
        && like_ex.len() == 1
        && (ct.batched().is_some() || b.batched().is_some())
    {
        return mul(ct, b);
    }
    // per-example outer products ct ⊗ b (the cotangent of a matrix times a vector)
    if let (BArg::Batched(c), true) = (
        ct,
        like_ex.len() == 2 && ct.ex_rank() == 1 && b.ex_rank() == 1,
    ) {
        let g = match b {
            BArg::Batched(v) => c.unsqueeze(2).matmul(&v.unsqueeze(1)),
            BArg::Plain(o) => c.unsqueeze(2).matmul(&o.tensor().unsqueeze(0)),
        };
        if ex_of(&g) == like_ex {
            return g;
        }
    }
    let (ra, rb) = (like_ex.len(), b.ex_rank());
    let ap_ex: Vec<usize> = if ra == 1 {
        vec![1, like_ex[0]]
    } else {
        like_ex.to_vec()
    };
    let mut bp = lifted(b, bsz, None).into_owned();
    let mut cp = lifted(ct, bsz, None).into_owned();
    if rb == 1 {
        bp = bp.unsqueeze(-1);
        cp = cp.unsqueeze(-1);
    }
    if ra == 1 {
        cp = cp.unsqueeze(-2);
    }
    let g = batched_matmul(&cp, &bp.transpose(-2, -1));
    sum_to_example("matmul_tl", &g, &ap_ex).reshape(&with_batch(bsz, like_ex))
}

/// Batched `t::matmul_tr`: the cotangent of `b` in `a.matmul(b)`, per example.
#[track_caller]
pub fn matmul_tr<'a>(
    a: impl Into<BArg<'a>>,
    ct: impl Into<BArg<'a>>,
    like_b: impl Into<BArg<'a>>,
) -> Tensor {
    let (a, ct, like) = (a.into(), ct.into(), like_b.into());
    let bsz = bsz_of("matmul_tr", &[a, ct, like]);
    let like_ex = like.ex_shape();
    if let (BArg::Batched(x), BArg::Batched(c)) = (a, ct)
        && like_ex.len() == 2
    {
        // per-example outer products: [B, k, 1] @ [B, 1, n]
        if a.ex_rank() == 1 && ct.ex_rank() == 1 {
            let g = x.unsqueeze(2).matmul(&c.unsqueeze(1));
            if ex_of(&g) == like_ex {
                return g;
            }
        }
        // [B, k, m] @ [B, m, n]
        if a.ex_rank() == 2 && ct.ex_rank() == 2 {
            let g = x.transpose(1, 2).matmul(c);
            if ex_of(&g) == like_ex {
                return g;
            }
        }
    }
    // a dot product's cotangent: the vector a times the per-example scalar ct
    if ct.ex_rank() == 0
        && a.ex_rank() == 1
        && like_ex.len() == 1
        && (ct.batched().is_some() || a.batched().is_some())
    {
        return mul(a, ct);
    }
    // a shared matrix: aᵀ ct for every example at once ([B, m] @ [m, k], or [k, m] @ [B, m, n])
    if let (BArg::Plain(Operand::Tensor(w)), BArg::Batched(c)) = (a, ct)
        && w.ndim() == 2
    {
        let g = match (ct.ex_rank(), like_ex.len()) {
            (1, 1) => Some(c.matmul(w)),
            (2, 2) => Some(w.t().matmul(c)),
            _ => None,
        };
        if let Some(g) = g
            && ex_of(&g) == like_ex
        {
            return g;
        }
    }
    let (ra, rb) = (a.ex_rank(), like_ex.len());
    let bp_ex: Vec<usize> = if rb == 1 {
        vec![like_ex[0], 1]
    } else {
        like_ex.to_vec()
    };
    let mut ap = lifted(a, bsz, None).into_owned();
    let mut cp = lifted(ct, bsz, None).into_owned();
    if ra == 1 {
        ap = ap.unsqueeze(1);
    }
    if rb == 1 {
        cp = cp.unsqueeze(-1);
    }
    if ra == 1 {
        cp = cp.unsqueeze(-2);
    }
    let g = batched_matmul(&ap.transpose(-2, -1), &cp);
    sum_to_example("matmul_tr", &g, &bp_ex).reshape(&with_batch(bsz, like_ex))
}

// ----- convolution -----

/// The tensor operands of a batched convolution, each with its number of non-batch axes
/// (`x` and a cotangent: channels and spatial axes; `w`: two more), their batch axes lined
/// up: a batched operand gets size-1 axes after its batch axis until its example has as many
/// leading (batch) axes as the operand with the most; an unbatched one broadcasts as it is.
fn conv_aligned<'a>(args: &[(BArg<'a>, usize)]) -> Vec<Cow<'a, Tensor>> {
    let leading = |a: BArg<'_>, core: usize| a.ex_rank().saturating_sub(core);
    let most = args.iter().map(|&(a, c)| leading(a, c)).max().unwrap_or(0);
    args.iter()
        .map(|&(a, core)| match a {
            BArg::Batched(x) => Cow::Owned(pad_after_batch(x, most - leading(a, core))),
            BArg::Plain(o) => o.tensor(),
        })
        .collect()
}

/// Batched `t::conv`: one convolution over the batch, which the runtime treats as one more
/// batch axis (the weights per example too, when they are batched).
#[track_caller]
pub fn conv<'a>(x: impl Into<BArg<'a>>, w: impl Into<BArg<'a>>, spec: &Conv) -> Tensor {
    let (x, w) = (x.into(), w.into());
    bsz_of("conv", &[x, w]);
    let d = spec.rank();
    let a = conv_aligned(&[(x, d + 1), (w, d + 2)]);
    a[0].conv(&a[1], spec)
}

/// Batched `t::conv_transpose`: one transposed convolution over the batch (a batch axis
/// as for [`conv`]).
#[track_caller]
pub fn conv_transpose<'a>(
    y: impl Into<BArg<'a>>,
    w: impl Into<BArg<'a>>,
    spec: &Conv,
    input: &[usize],
) -> Tensor {
    let (y, w) = (y.into(), w.into());
    bsz_of("conv_transpose", &[y, w]);
    let d = spec.rank();
    let a = conv_aligned(&[(y, d + 1), (w, d + 2)]);
    a[0].conv_transpose(&a[1], spec, input)
}

/// Batched `t::unfold`: the batch axis is one more batch axis of the patches.
#[track_caller]
pub fn unfold<'a>(x: impl Into<BArg<'a>>, window: &[usize], spec: &Conv, fill: f64) -> Tensor {
    need("unfold", x.into()).unfold_with(window, spec, fill)
}

/// Batched `t::fold`.
#[track_caller]
pub fn fold<'a>(
    ct: impl Into<BArg<'a>>,
    like: impl Into<BArg<'a>>,
    window: &[usize],
    spec: &Conv,
) -> Tensor {
    let (ct, like) = (ct.into(), like.into());
    let bsz = bsz_of("unfold", &[ct, like]);
    let input = t::spatial("unfold", like.ex_shape(), spec);
    match ct {
        BArg::Batched(c) => c.fold(input, window, spec),
        BArg::Plain(o) => lift_tensor(&o.tensor().fold(input, window, spec), bsz),
    }
}

/// Batched `t::conv_tl`: the transposed convolution over the batch, each example summed over
/// the batch axes its input was broadcast along.
#[track_caller]
pub fn conv_tl<'a>(
    ct: impl Into<BArg<'a>>,
    w: impl Into<BArg<'a>>,
    like_x: impl Into<BArg<'a>>,
    spec: &Conv,
) -> Tensor {
    let (ct, w, like) = (ct.into(), w.into(), like_x.into());
    let bsz = bsz_of("conv", &[ct, w, like]);
    if ct.batched().is_none() && w.batched().is_none() {
        let (ct, w) = (ct.plain(), w.plain());
        return lift_tensor(&t::conv_tl(ct, w, &example_like(like), spec), bsz);
    }
    let d = spec.rank();
    let a = conv_aligned(&[(ct, d + 1), (w, d + 2)]);
    let like_ex = like.ex_shape();
    let g = a[0].conv_transpose(&a[1], spec, t::spatial("conv", like_ex, spec));
    sum_to_example("conv", &g, like_ex)
}

/// Batched `t::conv_tr`: the weights' cotangent per example (with per-example inputs, the
/// per-example gradients of shared weights), summed over the batch axes the weights were
/// broadcast along.
#[track_caller]
pub fn conv_tr<'a>(
    x: impl Into<BArg<'a>>,
    ct: impl Into<BArg<'a>>,
    like_w: impl Into<BArg<'a>>,
    spec: &Conv,
) -> Tensor {
    let (x, ct, like) = (x.into(), ct.into(), like_w.into());
    let bsz = bsz_of("conv", &[x, ct, like]);
    if x.batched().is_none() && ct.batched().is_none() {
        let (x, ct) = (x.plain(), ct.plain());
        return lift_tensor(&t::conv_tr(x, ct, &example_like(like), spec), bsz);
    }
    let d = spec.rank();
    let a = conv_aligned(&[(x, d + 1), (ct, d + 1)]);
    let like_ex = like.ex_shape();
    // [B, 1.., like_ex]: the runtime sums each example over the batch axes it has beyond
    // the weights', and never over the examples
    let leading = (a[0].ndim().max(a[1].ndim()) - 1).saturating_sub(d + 1);
    let mut target = vec![bsz];
    target.resize(
        1 + leading.saturating_sub(like_ex.len().saturating_sub(d + 2)),
        1,
    );
    target.extend_from_slice(like_ex);
    let g = a[0].conv_weight_grad(&a[1], spec, &target);
    g.reshape(&with_batch(bsz, like_ex))
}

// ----- views -----

/// Batched `t::reshape`: each example to `shape`.
#[track_caller]
pub fn reshape<'a>(x: impl Into<BArg<'a>>, shape: &[usize]) -> Tensor {
    let x = need("reshape", x.into());
    x.reshape(&with_batch(x.shape()[0], shape))
}

/// Batched `t::flatten`: each example to one axis.
#[track_caller]
pub fn flatten<'a>(x: impl Into<BArg<'a>>) -> Tensor {
    let x = need("flatten", x.into());
    x.reshape(&[x.shape()[0], ex_of(x).iter().product()])
}

/// Batched `t::t`: the transpose of each 2-D example.
#[track_caller]
pub fn t<'a>(x: impl Into<BArg<'a>>) -> Tensor {
    let x = need("t", x.into());
    assert!(
        x.ndim() == 3,
        "t: needs 2-D examples, got example shape {:?} (use transpose or permute)",
        ex_of(x)
    );
    x.transpose(1, 2)
}

/// Batched `t::unsqueeze`.
#[track_caller]
pub fn unsqueeze<'a>(x: impl Into<BArg<'a>>, axis: isize) -> Tensor {
    let x = need("unsqueeze", x.into());
    let ex = ex_of(x);
    x.unsqueeze(norm_axis("unsqueeze", axis, ex.len() + 1, ex) as isize + 1)
}

/// Batched `t::squeeze`.
#[track_caller]
pub fn squeeze<'a>(x: impl Into<BArg<'a>>, axis: isize) -> Tensor {
    let x = need("squeeze", x.into());
    x.squeeze(example_axis("squeeze", axis, x))
}

/// Batched `t::broadcast_to`: each example broadcast to `shape`.
#[track_caller]
pub fn broadcast_to<'a>(x: impl Into<BArg<'a>>, shape: &[usize]) -> Tensor {
    let x = need("broadcast_to", x.into());
    let r = x.ndim() - 1;
    assert!(
        r <= shape.len(),
        "broadcast_to: an example of shape {:?} cannot be broadcast to shape {shape:?}",
        ex_of(x)
    );
    pad_after_batch(x, shape.len() - r).broadcast_to(&with_batch(x.shape()[0], shape))
}

/// Batched `t::transpose`.
#[track_caller]
pub fn transpose<'a>(x: impl Into<BArg<'a>>, a: isize, b: isize) -> Tensor {
    let x = need("transpose", x.into());
    x.transpose(
        example_axis("transpose", a, x),
        example_axis("transpose", b, x),
    )
}

/// Batched `t::permute`: the batch axis stays first.
#[track_caller]
pub fn permute<'a>(x: impl Into<BArg<'a>>, axes: &[isize]) -> Tensor {
    let x = need("permute", x.into());
    let mut all = vec![0isize];
    all.extend(axes.iter().map(|&a| example_axis("permute", a, x)));
    x.permute(&all)
}

/// Batched `t::unpermute`.
#[track_caller]
pub fn unpermute<'a>(ct: impl Into<BArg<'a>>, axes: &[isize], like: impl Into<BArg<'a>>) -> Tensor {
    let (ct, like) = (ct.into(), like.into());
    let bsz = bsz_of("unpermute", &[ct, like]);
    match ct {
        BArg::Batched(c) => {
            let lex = like.ex_shape();
            let n = lex.len();
            let mut inverse = vec![0isize; axes.len() + 1];
            for (k, &a) in axes.iter().enumerate() {
                inverse[norm_axis("unpermute", a, n, lex) + 1] = k as isize + 1;
            }
            c.permute(&inverse)
        }
        BArg::Plain(o) => lift_tensor(&t::unpermute(o, axes, &example_like(like)), bsz),
    }
}

/// Batched `t::slice`.
#[track_caller]
pub fn slice<'a>(x: impl Into<BArg<'a>>, axis: isize, start: usize, end: usize) -> Tensor {
    let x = need("slice", x.into());
    x.slice(example_axis("slice", axis, x), start, end)
}

/// Batched `t::cum_sum`: the example's axis, past the batch axis.
#[track_caller]
pub fn cum_sum<'a>(x: impl Into<BArg<'a>>, axis: isize, reverse: bool) -> Tensor {
    let x = need("cumsum", x.into());
    t::cum_sum(x, example_axis("cumsum", axis, x), reverse)
}

/// Batched `t::roll`: the example's axis, past the batch axis.
#[track_caller]
pub fn roll<'a>(x: impl Into<BArg<'a>>, shift_by: isize, axis: isize) -> Tensor {
    let x = need("roll", x.into());
    x.roll(shift_by, example_axis("roll", axis, x))
}

/// Batched `t::shift`: the example's axis, past the batch axis.
#[track_caller]
pub fn shift<'a>(x: impl Into<BArg<'a>>, steps: isize, axis: isize) -> Tensor {
    let x = need("shift", x.into());
    x.shift(steps, example_axis("shift", axis, x))
}

/// Batched `t::repeat`.
#[track_caller]
pub fn repeat<'a>(x: impl Into<BArg<'a>>, n: usize, axis: isize) -> Tensor {
    let x = need("repeat", x.into());
    x.repeat(n, example_axis("repeat", axis, x))
}

/// Batched `t::repeat_t`.
#[track_caller]
pub fn repeat_t<'a>(
    ct: impl Into<BArg<'a>>,
    n: usize,
    axis: isize,
    like: impl Into<BArg<'a>>,
) -> Tensor {
    copies_summed("repeat", ct.into(), n, axis, like.into(), false)
}

/// Batched `t::tile`.
#[track_caller]
pub fn tile<'a>(x: impl Into<BArg<'a>>, n: usize, axis: isize) -> Tensor {
    let x = need("tile", x.into());
    x.tile(n, example_axis("tile", axis, x))
}

/// Batched `t::tile_t`.
#[track_caller]
pub fn tile_t<'a>(
    ct: impl Into<BArg<'a>>,
    n: usize,
    axis: isize,
    like: impl Into<BArg<'a>>,
) -> Tensor {
    copies_summed("tile", ct.into(), n, axis, like.into(), true)
}

/// `t::copies_summed` per example: the length from `like`'s example, the axis past the
/// batch axis.
#[track_caller]
fn copies_summed(
    op: &str,
    ct: BArg<'_>,
    n: usize,
    axis: isize,
    like: BArg<'_>,
    whole: bool,
) -> Tensor {
    let ct = need(op, ct);
    let ex = like.ex_shape();
    let ax = norm_axis(op, axis, ex.len(), ex);
    t::copies_summed(ct, n, ax + 1, ex[ax], whole)
}

/// Batched `t::flip`.
#[track_caller]
pub fn flip<'a>(x: impl Into<BArg<'a>>, axis: isize) -> Tensor {
    let x = need("flip", x.into());
    x.flip(example_axis("flip", axis, x))
}

/// Batched `t::lin_rec`: input and decay aligned per example as for arithmetic, the
/// axis counted in the example.
#[track_caller]
pub fn lin_rec<'a>(x: impl Into<BArg<'a>>, decay: impl Into<BArg<'a>>, axis: isize) -> Tensor {
    recurrence(x.into(), decay.into(), axis, false)
}

/// Batched `t::lin_rec_rev`.
#[track_caller]
pub fn lin_rec_rev<'a>(x: impl Into<BArg<'a>>, decay: impl Into<BArg<'a>>, axis: isize) -> Tensor {
    recurrence(x.into(), decay.into(), axis, true)
}

#[track_caller]
fn recurrence(x: BArg<'_>, decay: BArg<'_>, axis: isize, rev: bool) -> Tensor {
    const OP: &str = "linear_recurrence";
    let ex = if x.ex_rank() >= decay.ex_rank() {
        x.ex_shape()
    } else {
        decay.ex_shape()
    };
    let a = norm_axis(OP, axis, ex.len(), ex) as isize + 1;
    let [x, decay] = align(OP, [x, decay]);
    let (x, decay) = (x.op().tensor(), decay.op().tensor());
    if rev {
        x.linear_recurrence_rev(&decay, a)
    } else {
        x.linear_recurrence(&decay, a)
    }
}

/// `pads` for a batched example: none on the batch axis.
fn batch_pads(pads: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut all = vec![(0, 0)];
    all.extend_from_slice(pads);
    all
}

/// Batched `t::pad`.
#[track_caller]
pub fn pad<'a>(x: impl Into<BArg<'a>>, pads: &[(usize, usize)]) -> Tensor {
    need("pad", x.into()).pad(&batch_pads(pads))
}

/// Batched `t::unpad`.
#[track_caller]
pub fn unpad<'a>(x: impl Into<BArg<'a>>, pads: &[(usize, usize)]) -> Tensor {
    need("unpad", x.into()).unpad(&batch_pads(pads))
}

/// Batched `t::pad_with`.
#[track_caller]
pub fn pad_with<'a>(x: impl Into<BArg<'a>>, pads: &[(usize, usize)], mode: &PadMode) -> Tensor {
    need("pad_with", x.into()).pad_with(&batch_pads(pads), *mode)
}

/// Batched `t::pad_with_transpose`.
#[track_caller]
pub fn pad_with_transpose<'a>(
    x: impl Into<BArg<'a>>,
    pads: &[(usize, usize)],
    mode: &PadMode,
) -> Tensor {
    need("pad_with_transpose", x.into()).pad_with_transpose(&batch_pads(pads), *mode)
}

/// Batched `t::index_select` (the indices are shared by every example).
#[track_caller]
pub fn index_select<'a>(
    x: impl Into<BArg<'a>>,
    axis: isize,
    indices: impl Into<BArg<'a>>,
) -> Tensor {
    let (x, i) = (x.into(), indices.into());
    let BArg::Batched(idx) = i else {
        let x = need("index_select", x);
        return x.index_select(example_axis("index_select", axis, x), &i.plain().tensor());
    };
    // each example's own indices: a gather along the axis with them spread over the rest
    let bsz = bsz_of("index_select", &[x, i]);
    let ex = x.ex_shape();
    let a = norm_axis("index_select", axis, ex.len(), ex) + 1;
    let x = lifted(x, bsz, None);
    let mut shape = x.shape()[..a].to_vec();
    shape.extend_from_slice(&idx.shape()[1..]);
    shape.extend_from_slice(&x.shape()[a + 1..]);
    if let Some(f) = (a == 1)
        .then(|| folded_indices(idx, x.shape()[1]))
        .flatten()
    {
        return fold_batch(&x).index_select(0, &f).reshape(&shape);
    }
    let spread = spread_indices(idx, x.shape(), a);
    x.take_along_axis(a as isize, &spread).reshape(&shape)
}

/// Per-example indices `[batch, k..]` for axis `a` of a batched tensor of shape `target`,
/// as `take_along_axis` / `scatter_add` read them: flattened to one axis of `K = prod(k)`
/// there and repeated over every other axis (`target` with `K` along `a`).
fn spread_indices(idx: &Tensor, target: &[usize], a: usize) -> Tensor {
    let k: usize = idx.shape()[1..].iter().product();
    let mut one = vec![1; target.len()];
    one[0] = idx.shape()[0];
    one[a] = k;
    let mut full = target.to_vec();
    full[a] = k;
    idx.reshape(&one).broadcast_to(&full).contiguous()
}

/// Per-example indices `[batch, k..]` into axis 1 of tensors `[batch, n, ..]` as indices
/// into axis 0 of the same tensors with the batch folded into it (`[batch * n, ..]`):
/// example `b`'s offset by `b * n`, flattened. Only where the indices are all in `0..n`
/// (`None` otherwise: an index out of range is reported by the spread path, naming its own
/// value). On a GPU, a gather from the table of every `b * n + i` (uploaded, so its range
/// is known and nothing is read back where the indices' range is known too).
fn folded_indices(idx: &Tensor, n: usize) -> Option<Tensor> {
    let per: usize = idx.shape()[1..].iter().product();
    let bsz = idx.shape()[0];
    if idx.device().is_gpu() {
        let total = i32::try_from(bsz.checked_mul(n)?).ok()?;
        let table = Tensor::from_vec((0..total).collect(), &[bsz, n]).to_device(&idx.device());
        let folded = table
            .try_take_along_axis(1, &idx.reshape(&[bsz, per]))
            .ok()?;
        return Some(folded.reshape(&[bsz * per]));
    }
    let v = idx.to_vec::<i32>();
    if v.iter().any(|&i| i < 0 || i as usize >= n) {
        return None;
    }
    let len = v.len();
    let mut folded = v;
    for (b, ex) in folded.chunks_mut(per.max(1)).enumerate() {
        for i in ex {
            *i += (b * n) as i32;
        }
    }
    Some(Tensor::from_vec(folded, &[len]))
}

/// `t` `[batch, m, ..]` as `[batch * m, ..]`.
fn fold_batch(t: &Tensor) -> Tensor {
    let mut shape = vec![t.shape()[0] * t.shape()[1]];
    shape.extend_from_slice(&t.shape()[2..]);
    t.reshape(&shape)
}

/// A batched source `[batch, pre.., k.., post..]` with its index axes (`k..`, from axis `a`,
/// `nk` of them) flattened into one.
fn flat_source(src: &Tensor, a: usize, nk: usize) -> Tensor {
    let sh = src.shape();
    let mut shape = sh[..a].to_vec();
    shape.push(sh[a..a + nk].iter().product());
    shape.extend_from_slice(&sh[a + nk..]);
    src.reshape(&shape)
}

/// Batched `t::segment_sum`: each example's slices summed by the shared ids (an index
/// add along axis 1 of zeros `[batch, num_segments, ..]`), or by its own ids (a scatter add
/// with them spread over the other axes).
#[track_caller]
pub fn segment_sum<'a>(
    x: impl Into<BArg<'a>>,
    ids: impl Into<BArg<'a>>,
    num_segments: usize,
) -> Tensor {
    let (x, i) = (x.into(), ids.into());
    let bsz = bsz_of("segment_sum", &[x, i]);
    let x = lifted(x, bsz, None);
    let ids = match i {
        BArg::Batched(t) => Cow::Borrowed(&t.shape()[1..]),
        BArg::Plain(o) => Cow::Owned(o.tensor().shape().to_vec()),
    };
    let k = ids.len();
    let fits = k >= 1 && x.ndim() > k && x.shape()[1..=k] == *ids;
    assert!(
        fits,
        "ferrax vmap: segment_sum: the segment ids' shape {:?} is not that of the example's leading axes (example shape {:?})",
        &*ids,
        &x.shape()[1..]
    );
    let mut shape = vec![bsz, num_segments];
    shape.extend_from_slice(&x.shape()[k + 1..]);
    let zeros = Tensor::full_on(&[], 0.0, x.dtype(), &x.device()).broadcast_to(&shape);
    match i {
        BArg::Plain(o) => zeros.index_add(1, &o.tensor(), &x),
        BArg::Batched(idx) => {
            let src = flat_source(&x, 1, k);
            if let Some(f) = folded_indices(idx, num_segments) {
                return fold_batch(&zeros)
                    .index_add(0, &f, &fold_batch(&src))
                    .reshape(zeros.shape());
            }
            zeros.scatter_add(1, &spread_indices(idx, src.shape(), 1), &src)
        }
    }
}

/// Batched `t::segment_arg`: with shared ids, the batch moved behind the segments' axis
/// (one pass); with per-example ids, the batch folded into the segments (host ids) or
/// example by example (a GPU's).
#[track_caller]
pub fn segment_arg<'a>(
    x: impl Into<BArg<'a>>,
    ids: impl Into<BArg<'a>>,
    num_segments: usize,
    largest: bool,
) -> Tensor {
    let (x, i) = (x.into(), ids.into());
    let bsz = bsz_of("segment_arg", &[x, i]);
    let x = lifted(x, bsz, None);
    match i {
        BArg::Plain(o) => {
            let mut to_front: Vec<isize> = (0..x.ndim() as isize).collect();
            to_front.swap(0, 1);
            let at = t::segment_arg(&x.permute(&to_front), &o.tensor(), num_segments, largest);
            at.permute(&to_front).contiguous()
        }
        BArg::Batched(ids) => {
            if let Some(f) = folded_indices(ids, num_segments) {
                // the batch folded into the segments: positions into the folded axis, each
                // example's moved back by its offset (an empty segment's, past every row,
                // to past the example's rows): a gather from the table of each position's
                // own (on a GPU, uploaded: its range known, nothing read back)
                let (e, rows) = (x.shape()[1], bsz * x.shape()[1]);
                let at = t::segment_arg(&fold_batch(&x), &f, bsz * num_segments, largest);
                let own: Vec<i32> = (0..=rows)
                    .map(|p| if p == rows { e } else { p % e } as i32)
                    .collect();
                let own = Tensor::from_vec(own, &[rows + 1]).to_device(&at.device());
                let mut shape = vec![bsz, num_segments];
                shape.extend_from_slice(&x.shape()[2..]);
                return own.index_select(0, &at.flatten()).reshape(&shape);
            }
            let each: Vec<Tensor> = (0..bsz)
                .map(|e| {
                    let pick = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
                    t::segment_arg(&pick(&x), &pick(ids), num_segments, largest)
                })
                .collect();
            Tensor::stack(&each, 0)
        }
    }
}

/// The operands of a batched `index_add_to` / `scatter_add_to`: the batch size, the
/// batched axis, and the target and the values lifted to batched tensors.
#[track_caller]
fn added_into<'a>(
    op: &str,
    x: BArg<'a>,
    axis: isize,
    i: BArg<'a>,
    src: BArg<'a>,
) -> (usize, usize, Cow<'a, Tensor>, Cow<'a, Tensor>) {
    let bsz = bsz_of(op, &[x, i, src]);
    let ex = x.ex_shape();
    let a = norm_axis(op, axis, ex.len(), ex) + 1;
    let like = [x, src].into_iter().find_map(|p| p.batched());
    (bsz, a, lifted(x, bsz, like), lifted(src, bsz, like))
}

/// Batched `t::index_add_to`: each example's slices added into its copy, at shared
/// indices or at its own.
#[track_caller]
pub fn index_add_to<'a>(
    x: impl Into<BArg<'a>>,
    axis: isize,
    indices: impl Into<BArg<'a>>,
    src: impl Into<BArg<'a>>,
) -> Tensor {
    let i = indices.into();
    let (_, a, x, src) = added_into("index_add", x.into(), axis, i, src.into());
    match i {
        BArg::Plain(o) => x.index_add(a as isize, &o.tensor(), &src),
        BArg::Batched(idx) => {
            let src = flat_source(&src, a, idx.ndim() - 1);
            if let Some(f) = (a == 1)
                .then(|| folded_indices(idx, x.shape()[1]))
                .flatten()
            {
                return fold_batch(&x)
                    .index_add(0, &f, &fold_batch(&src))
                    .reshape(x.shape());
            }
            x.scatter_add(a as isize, &spread_indices(idx, x.shape(), a), &src)
        }
    }
}

/// Batched `t::scatter_add_to`: the tensor, the indices, the source or any of them per
/// example.
#[track_caller]
pub fn scatter_add_to<'a>(
    x: impl Into<BArg<'a>>,
    axis: isize,
    indices: impl Into<BArg<'a>>,
    src: impl Into<BArg<'a>>,
) -> Tensor {
    let i = indices.into();
    let (bsz, a, x, src) = added_into("scatter_add", x.into(), axis, i, src.into());
    x.scatter_add(a as isize, &lifted(i, bsz, None), &src)
}

/// Batched `t::take_along`: the tensor, the indices or both per example.
#[track_caller]
pub fn take_along<'a>(x: impl Into<BArg<'a>>, axis: isize, indices: impl Into<BArg<'a>>) -> Tensor {
    let (x, a, i) = gathered("take_along_axis", x.into(), axis, indices.into());
    x.take_along_axis(a, &i)
}

/// Batched `t::take_along_t`.
#[track_caller]
pub fn take_along_t<'a>(
    ct: impl Into<BArg<'a>>,
    like: impl Into<BArg<'a>>,
    axis: isize,
    indices: impl Into<BArg<'a>>,
) -> Tensor {
    let (ct, like, a, i) = scattered(
        "take_along_axis",
        ct.into(),
        like.into(),
        axis,
        indices.into(),
    );
    t::take_along_t(&ct, &like, a, &i)
}

/// Batched `t::take_along_or`: the tensor, the indices or both per example.
#[track_caller]
pub fn take_along_or<'a>(
    x: impl Into<BArg<'a>>,
    axis: isize,
    indices: impl Into<BArg<'a>>,
    fill: f64,
) -> Tensor {
    let (x, a, i) = gathered("take_along_axis_or", x.into(), axis, indices.into());
    x.take_along_axis_or(a, &i, fill)
}

/// Batched `t::take_along_or_t`.
#[track_caller]
pub fn take_along_or_t<'a>(
    ct: impl Into<BArg<'a>>,
    like: impl Into<BArg<'a>>,
    axis: isize,
    indices: impl Into<BArg<'a>>,
) -> Tensor {
    let op = "take_along_axis_or";
    let (ct, like, a, i) = scattered(op, ct.into(), like.into(), axis, indices.into());
    t::take_along_or_t(&ct, &like, a, &i)
}

/// The operands of a batched gather along `axis` with one index per element: the tensor
/// and the indices lifted to the batch, and the batched axis.
#[track_caller]
fn gathered<'a>(
    op: &str,
    x: BArg<'a>,
    axis: isize,
    i: BArg<'a>,
) -> (Cow<'a, Tensor>, isize, Cow<'a, Tensor>) {
    let bsz = bsz_of(op, &[x, i]);
    let ex = x.ex_shape();
    let a = norm_axis(op, axis, ex.len(), ex) as isize + 1;
    (lifted(x, bsz, None), a, lifted(i, bsz, None))
}

/// The operands of a batched gather's transpose: the cotangent (lifted like the gathered
/// tensor), the gathered tensor and the indices lifted to the batch, and the batched axis.
#[track_caller]
fn scattered<'a>(
    op: &str,
    ct: BArg<'a>,
    like: BArg<'a>,
    axis: isize,
    i: BArg<'a>,
) -> (Tensor, Cow<'a, Tensor>, isize, Cow<'a, Tensor>) {
    let bsz = bsz_of(op, &[ct, like, i]);
    let lex = like.ex_shape();
    let a = norm_axis(op, axis, lex.len(), lex) as isize + 1;
    let like_b = lifted(like, bsz, None);
    let ct_b = lifted(ct, bsz, Some(&like_b)).into_owned();
    (ct_b, like_b, a, lifted(i, bsz, None))
}

/// Batched `x.argsort(axis)` (i32 indices).
#[track_caller]
pub fn method_argsort<'a>(x: impl Into<BArg<'a>>, axis: isize) -> Tensor {
    let x = need("argsort", x.into());
    x.argsort(example_axis("argsort", axis, x))
}

/// Batched `x.top_k_indices(k)` (i32 indices, along the last axis).
#[track_caller]
pub fn method_top_k_indices<'a>(x: impl Into<BArg<'a>>, k: usize) -> Tensor {
    need("top_k_indices", x.into()).top_k_indices(k)
}

/// Batched `t::unslice`.
#[track_caller]
pub fn unslice<'a>(
    ct: impl Into<BArg<'a>>,
    like: impl Into<BArg<'a>>,
    axis: isize,
    start: usize,
    end: usize,
) -> Tensor {
    let (ct, like) = (ct.into(), like.into());
    let bsz = bsz_of("unslice", &[ct, like]);
    let lex = like.ex_shape();
    let a = norm_axis("unslice", axis, lex.len(), lex) as isize + 1;
    let like_b = lifted(like, bsz, None);
    let ct_b = lifted(ct, bsz, Some(&like_b));
    t::unslice(&*ct_b, &like_b, a, start, end)
}

/// Batched `t::index_add` (the indices are shared by every example).
#[track_caller]
pub fn index_add<'a>(
    ct: impl Into<BArg<'a>>,
    like: impl Into<BArg<'a>>,
    axis: isize,
    indices: impl Into<BArg<'a>>,
) -> Tensor {
    let (ct, like, i) = (ct.into(), like.into(), indices.into());
    let bsz = bsz_of("index_add", &[ct, like, i]);
    let lex = like.ex_shape();
    let a = norm_axis("index_add", axis, lex.len(), lex) + 1;
    let like_b = lifted(like, bsz, None);
    let ct_b = lifted(ct, bsz, Some(&like_b));
    match i {
        BArg::Plain(o) => t::index_add(&*ct_b, &like_b, a as isize, &o.tensor()),
        BArg::Batched(idx) => {
            let src = flat_source(&ct_b, a, idx.ndim() - 1);
            if let Some(f) = (a == 1)
                .then(|| folded_indices(idx, like_b.shape()[1]))
                .flatten()
            {
                let zeros = fold_batch(&like_b.zeros_like());
                return zeros
                    .index_add(0, &f, &fold_batch(&src))
                    .reshape(like_b.shape());
            }
            let spread = spread_indices(idx, like_b.shape(), a);
            like_b.zeros_like().scatter_add(a as isize, &spread, &src)
        }
    }
}

/// The parts lifted to batched tensors, and their example rank.
#[track_caller]
fn lifted_parts<'a>(op: &str, parts: &[BArg<'a>]) -> (usize, Vec<Cow<'a, Tensor>>) {
    let bsz = bsz_of(op, parts);
    let like = parts.iter().find_map(|p| p.batched());
    let lifted: Vec<_> = parts.iter().map(|p| lifted(*p, bsz, like)).collect();
    (bsz, lifted)
}

/// Batched `t::concat`: examples joined along `axis` (unbatched parts shared).
#[track_caller]
pub fn concat(axis: isize, parts: &[BArg<'_>]) -> Tensor {
    let (_, lifted) = lifted_parts("concat", parts);
    let ex = parts[0].ex_shape();
    let a = norm_axis("concat", axis, ex.len(), ex) as isize + 1;
    Tensor::concat(&lifted.iter().map(|p| &**p).collect::<Vec<_>>(), a)
}

/// Batched `t::stack`: examples stacked along a new `axis` (unbatched parts shared).
#[track_caller]
pub fn stack(axis: isize, parts: &[BArg<'_>]) -> Tensor {
    let (_, lifted) = lifted_parts("stack", parts);
    let ex = parts[0].ex_shape();
    let a = norm_axis("stack", axis, ex.len() + 1, ex) as isize + 1;
    Tensor::stack(&lifted.iter().map(|p| &**p).collect::<Vec<_>>(), a)
}

/// Batched `t::einsum`: the spec with a letter for the batch axis of the batched parts
/// and of the result (unbatched parts shared, not copied).
#[track_caller]
pub fn einsum(spec: &str, parts: &[BArg<'_>]) -> Tensor {
    let flags: Vec<bool> = parts.iter().map(|p| p.batched().is_some()).collect();
    let spec =
        crate::tensor_rules::as_op(ferrax_runtime::einsum_batched_spec(spec, &flags), "einsum");
    let parts: Vec<Cow<'_, Tensor>> = parts.iter().map(|p| p.as_tensor()).collect();
    Tensor::einsum(&spec, &parts.iter().map(|p| &**p).collect::<Vec<_>>())
}

/// Batched `t::einsum_t`: every example's cotangent of operand `k`, batched even where
/// that operand is shared (each example has its own).
#[track_caller]
pub fn einsum_t<'a>(spec: &str, k: usize, ct: impl Into<BArg<'a>>, parts: &[BArg<'_>]) -> Tensor {
    let ct = ct.into();
    let mut all = vec![ct];
    all.extend_from_slice(parts);
    let bsz = bsz_of("einsum_t", &all);
    let like = all.iter().find_map(|p| p.batched());
    let mut flags: Vec<bool> = parts.iter().map(|p| p.batched().is_some()).collect();
    flags[k] = true;
    let spec =
        crate::tensor_rules::as_op(ferrax_runtime::einsum_batched_spec(spec, &flags), "einsum");
    let mut ops: Vec<Cow<'_, Tensor>> = parts.iter().map(|p| p.as_tensor()).collect();
    ops[k] = lifted(parts[k], bsz, like);
    let ct = lifted(ct, bsz, like);
    Tensor::einsum_transpose(&spec, k, &ct, &ops.iter().map(|p| &**p).collect::<Vec<_>>())
}

/// Batched `t::concat_part`.
#[track_caller]
pub fn concat_part<'a>(
    ct: impl Into<BArg<'a>>,
    axis: isize,
    k: usize,
    parts: &[BArg<'_>],
) -> Tensor {
    let ct = ct.into();
    let mut all = vec![ct];
    all.extend_from_slice(parts);
    let bsz = bsz_of("concat_part", &all);
    let ex = parts[k].ex_shape();
    let a = norm_axis("concat_part", axis, ex.len(), ex);
    let start: usize = parts[..k].iter().map(|p| p.ex_shape()[a]).sum();
    let end = start + ex[a];
    match ct {
        BArg::Batched(c) => c.slice(a as isize + 1, start, end),
        BArg::Plain(o) => lift_tensor(&o.tensor().slice(a as isize, start, end), bsz),
    }
}

/// Batched `t::stack_part`.
#[track_caller]
pub fn stack_part<'a>(
    ct: impl Into<BArg<'a>>,
    axis: isize,
    k: usize,
    parts: &[BArg<'_>],
) -> Tensor {
    let ct = ct.into();
    let mut all = vec![ct];
    all.extend_from_slice(parts);
    let bsz = bsz_of("stack_part", &all);
    let ex = parts[k].ex_shape();
    let a = norm_axis("stack_part", axis, ex.len() + 1, ex) as isize;
    match ct {
        BArg::Batched(c) => c.slice(a + 1, k, k + 1).squeeze(a + 1),
        BArg::Plain(o) => lift_tensor(&o.tensor().slice(a, k, k + 1).squeeze(a), bsz),
    }
}

/// A `Vec` of batched tensors (each with the batch axis first) as an argument of a
/// batching rule: the per-example sequences of a `Vec` of tensors built under `vmap`.
#[derive(Clone, Copy)]
pub struct BSeq<'a>(pub &'a [Tensor]);

/// A sequence of tensors as an argument of a batching rule: batched, or shared by every
/// example.
#[derive(Clone, Copy)]
pub enum BSeqArg<'a> {
    Batched(&'a [Tensor]),
    Plain(&'a [Tensor]),
}

impl<'a> From<BSeq<'a>> for BSeqArg<'a> {
    fn from(b: BSeq<'a>) -> Self {
        BSeqArg::Batched(b.0)
    }
}

impl<'a> From<&'a Vec<Tensor>> for BSeqArg<'a> {
    fn from(v: &'a Vec<Tensor>) -> Self {
        BSeqArg::Plain(v)
    }
}

impl<'a> From<&'a [Tensor]> for BSeqArg<'a> {
    fn from(v: &'a [Tensor]) -> Self {
        BSeqArg::Plain(v)
    }
}

impl<'a> BSeqArg<'a> {
    /// Each element as a batching rule's argument.
    fn args(self) -> Vec<BArg<'a>> {
        match self {
            BSeqArg::Batched(v) => v.iter().map(BArg::Batched).collect(),
            BSeqArg::Plain(v) => v.iter().map(BArg::from).collect(),
        }
    }
}

/// Batched `t::concat_seq`: each example's sequence joined along `axis`.
#[track_caller]
pub fn concat_seq(axis: isize, parts: BSeq<'_>) -> Tensor {
    concat(axis, &BSeqArg::from(parts).args())
}

/// Batched `t::stack_seq`: each example's sequence stacked along a new `axis`.
#[track_caller]
pub fn stack_seq(axis: isize, parts: BSeq<'_>) -> Tensor {
    stack(axis, &BSeqArg::from(parts).args())
}

/// Batched `t::unconcat_seq`: a batched part of the cotangent per element.
#[track_caller]
pub fn unconcat_seq<'a, 'b>(
    ct: impl Into<BArg<'a>>,
    axis: isize,
    parts: impl Into<BSeqArg<'b>>,
) -> Vec<Tensor> {
    split_seq(ct.into(), axis, parts.into(), concat_part)
}

/// Batched `t::unstack_seq`: a batched part of the cotangent per element.
#[track_caller]
pub fn unstack_seq<'a, 'b>(
    ct: impl Into<BArg<'a>>,
    axis: isize,
    parts: impl Into<BSeqArg<'b>>,
) -> Vec<Tensor> {
    split_seq(ct.into(), axis, parts.into(), stack_part)
}

/// `part(ct, axis, k, parts)` for every element `k` of `parts`.
#[track_caller]
fn split_seq<'a>(
    ct: BArg<'a>,
    axis: isize,
    parts: BSeqArg<'_>,
    part: fn(BArg<'a>, isize, usize, &[BArg<'_>]) -> Tensor,
) -> Vec<Tensor> {
    let parts = parts.args();
    (0..parts.len())
        .map(|k| part(ct, axis, k, &parts))
        .collect()
}

/// Batched `t::acc_matmul_tr`: per-example outer products added in the adjoint's own
/// buffer (per-example gradients of a weight over a loop's steps).
#[track_caller]
pub fn acc_matmul_tr<'a>(
    target: &mut Tensor,
    a: impl Into<BArg<'a>>,
    ct: impl Into<BArg<'a>>,
    like_b: impl Into<BArg<'a>>,
) {
    acc_product(target, a.into(), ct.into(), like_b.into(), Product::Tr);
}

/// Batched `t::acc_matmul_tl`: per-example outer products added in the adjoint's own
/// buffer (a weight on the left, `w.matmul(&x)`).
#[track_caller]
pub fn acc_matmul_tl<'a>(
    target: &mut Tensor,
    ct: impl Into<BArg<'a>>,
    b: impl Into<BArg<'a>>,
    like_a: impl Into<BArg<'a>>,
) {
    acc_product(target, ct.into(), b.into(), like_a.into(), Product::Tl);
}

/// Batched `t::acc_product`: each example's `xᵀ c` or `x cᵀ` added to the target, per-example
/// outer products in its own buffer.
#[track_caller]
fn acc_product(target: &mut Tensor, x: BArg<'_>, c: BArg<'_>, like: BArg<'_>, p: Product) {
    if let (BArg::Batched(xt), BArg::Batched(ct)) = (x, c)
        && t::added_in_place(target, xt, ct, 2, p)
    {
        return;
    }
    let g = match p {
        Product::Tr => matmul_tr(x, c, like),
        Product::Tl => matmul_tl(x, c, like),
    };
    t::acc(target, &g);
}

/// Batched [`t::ProductSum`]: a loop's per-example products kept as rows (each example's
/// `[r, k]` and `[r, n]`; an operand shared by the examples as plain rows) and added after
/// the loop as one batched product, `[B, k, T r] @ [B, T r, n]`, instead of an outer product
/// per step into the `[B, k, n]` adjoint (per-example gradients of a recurrent network's
/// weights).
#[derive(Default)]
pub struct ProductSum {
    a: Vec<Tensor>,
    ct: Vec<Tensor>,
    /// Whether the rows kept of each side are batched (the same for every step).
    batched: (bool, bool),
}

impl ProductSum {
    /// Keeps `aᵀ ct` (`matmul_tr`) to add to `target` at [`ProductSum::flush`], or adds it now
    /// where it does not fit the rows kept.
    #[track_caller]
    pub fn add_tr<'a>(
        &mut self,
        target: &mut Tensor,
        a: impl Into<BArg<'a>>,
        ct: impl Into<BArg<'a>>,
        like_b: impl Into<BArg<'a>>,
    ) {
        let (a, ct, like) = (a.into(), ct.into(), like_b.into());
        if !self.kept(a, ct, like, false) {
            acc_matmul_tr(target, a, ct, like);
        }
    }

    /// Keeps `ct bᵀ` (`matmul_tl`) to add to `target` at [`ProductSum::flush`], as the rows of
    /// `(ct bᵀ)ᵀ`, or adds it now where it does not fit.
    #[track_caller]
    pub fn add_tl<'a>(
        &mut self,
        target: &mut Tensor,
        ct: impl Into<BArg<'a>>,
        b: impl Into<BArg<'a>>,
        like_a: impl Into<BArg<'a>>,
    ) {
        let (ct, b, like) = (ct.into(), b.into(), like_a.into());
        if !self.kept(ct, b, like, true) {
            acc_matmul_tl(target, ct, b, like);
        }
    }

    /// Whether `xᵀ c` (of `x'` and `c'`, their last two axes swapped, where `swapped`) was kept.
    fn kept<'a>(&mut self, x: BArg<'a>, c: BArg<'a>, like: BArg<'a>, swapped: bool) -> bool {
        fn side(v: BArg<'_>) -> Option<(&Tensor, usize)> {
            match v {
                BArg::Batched(t) => Some((t, 1)),
                BArg::Plain(Operand::Tensor(t)) => Some((t, 0)),
                BArg::Plain(Operand::Scalar(_)) => None,
            }
        }
        let (Some(x), Some(c), Some((l, _))) = (side(x), side(c), side(like)) else {
            return false;
        };
        let batched = (x.1 == 1, c.1 == 1);
        if !(batched.0 || batched.1) || (!self.a.is_empty() && self.batched != batched) {
            return false;
        }
        let prep = |(t, lead): (&'a Tensor, usize)| -> (Cow<'a, Tensor>, usize) {
            if swapped {
                (Cow::Owned(t::mt_past(t, lead)), lead)
            } else {
                (Cow::Borrowed(t), lead)
            }
        };
        let ((xs, lx), (cs, lc)) = (prep(x), prep(c));
        let Some((x, c)) = t::product_rows((&xs, lx), (&cs, lc), like.ex_shape(), l) else {
            return false;
        };
        self.batched = batched;
        self.a.push(x);
        self.ct.push(c);
        true
    }

    /// Adds the products kept to `target`, in one batched product.
    #[track_caller]
    pub fn flush<'a>(self, target: &mut Tensor, like: impl Into<BArg<'a>>) {
        let like = like.into();
        if self.a.is_empty() {
            return;
        }
        let join =
            |rows: &[Tensor], batched: bool| Tensor::concat(rows, usize::from(batched) as isize);
        let (a, ct) = (
            join(&self.a, self.batched.0),
            join(&self.ct, self.batched.1),
        );
        let arg = |t, batched| {
            if batched {
                BArg::Batched(t)
            } else {
                BArg::Plain(Operand::Tensor(t))
            }
        };
        acc_matmul_tr(
            target,
            arg(&a, self.batched.0),
            arg(&ct, self.batched.1),
            like,
        );
    }
}

// ----- shape donors -----

/// Batched `t::sum_to`: each example's cotangent summed to the example shape of `like`.
#[track_caller]
pub fn sum_to<'a>(ct: impl Into<BArg<'a>>, like: impl Into<BArg<'a>>) -> Tensor {
    let (ct, like) = (ct.into(), like.into());
    let bsz = bsz_of("sum_to", &[ct, like]);
    let lex = like.ex_shape();
    match ct {
        BArg::Batched(c) => sum_to_example("sum_to", c, lex),
        BArg::Plain(Operand::Tensor(c)) => lift_tensor(&ferrax_runtime::unbroadcast(c, lex), bsz),
        BArg::Plain(Operand::Scalar(v)) => {
            let l = need("sum_to", like);
            Tensor::full_on(l.shape(), v, l.dtype(), &l.device())
        }
    }
}

/// `sum_to(mul(a, b), like)`, without the products in memory where each example sums
/// whole (`like` has no axes) and one factor is a batch of the other's shape: a
/// matrix-vector product `[B, N] @ [N]`, one read of the batch. The per-example sums of
/// `ct * y` in a reverse-mode Jacobian (`y * s`, `s` a full sum, transposed in `s`) are
/// these. Otherwise the two rules one after the other.
#[track_caller]
pub fn mul_sum_to<'a>(
    a: impl Into<BArg<'a>>,
    b: impl Into<BArg<'a>>,
    like: impl Into<BArg<'a>>,
) -> Tensor {
    let (a, b, like) = (a.into(), b.into(), like.into());
    bsz_of("mul_sum_to", &[a, b, like]);
    if like.ex_shape().is_empty()
        && let (BArg::Batched(x), BArg::Plain(Operand::Tensor(y)))
        | (BArg::Plain(Operand::Tensor(y)), BArg::Batched(x)) = (a, b)
        && x.shape()[1..] == *y.shape()
        && x.dtype() == y.dtype()
        && x.device() == y.device()
    {
        let n = y.numel();
        return x.reshape(&[x.shape()[0], n]).matmul(&y.reshape(&[n]));
    }
    if a.batched().is_none() && b.batched().is_none() {
        return sum_to(&t::mul(a.plain(), b.plain()), like);
    }
    sum_to(B(&mul(a, b)), like)
}

/// Batched `t::sum_to_scalar`: each example summed whole, `[B]` (the per-example gradient of
/// an unbatched float).
#[track_caller]
pub fn sum_to_scalar<'a>(ct: impl Into<BArg<'a>>) -> Tensor {
    let ct = need("sum_to_scalar", ct.into());
    if ct.ndim() == 1 {
        return ct.clone();
    }
    sum(B(ct))
}

/// Batched `t::broadcast_like`: each example broadcast to the example shape of `like`.
#[track_caller]
pub fn broadcast_like<'a>(x: impl Into<BArg<'a>>, like: impl Into<BArg<'a>>) -> Tensor {
    let (x, like) = (x.into(), like.into());
    let bsz = bsz_of("broadcast_like", &[x, like]);
    let lex = like.ex_shape();
    match x {
        BArg::Batched(x) => broadcast_to(B(x), lex),
        BArg::Plain(Operand::Tensor(x)) => lift_tensor(&x.broadcast_to(lex), bsz),
        BArg::Plain(Operand::Scalar(v)) => {
            let l = need("broadcast_like", like);
            Tensor::full_on(l.shape(), v, l.dtype(), &l.device())
        }
    }
}

/// Batched `t::unsum_axis`: a reduction's cotangent broadcast back over `axis`.
#[track_caller]
pub fn unsum_axis<'a>(
    ct: impl Into<BArg<'a>>,
    like: impl Into<BArg<'a>>,
    axis: isize,
    keepdim: bool,
) -> Tensor {
    let (ct, like) = (ct.into(), like.into());
    let bsz = bsz_of("unsum_axis", &[ct, like]);
    let lex = like.ex_shape();
    match ct {
        BArg::Batched(c) => {
            let c = if keepdim {
                c.clone()
            } else {
                let ex = ex_of(c);
                c.unsqueeze(norm_axis("unsum_axis", axis, ex.len() + 1, ex) as isize + 1)
            };
            broadcast_to(B(&c), lex)
        }
        BArg::Plain(Operand::Scalar(v)) => {
            let l = need("unsum_axis", like);
            Tensor::full_on(l.shape(), v, l.dtype(), &l.device())
        }
        BArg::Plain(o) => lift_tensor(&t::unsum_axis(o, &example_like(like), axis, keepdim), bsz),
    }
}

/// Batched `t::reshape_like`: each example reshaped to the example shape of `like`.
#[track_caller]
pub fn reshape_like<'a>(x: impl Into<BArg<'a>>, like: impl Into<BArg<'a>>) -> Tensor {
    let (x, like) = (x.into(), like.into());
    let bsz = bsz_of("reshape_like", &[x, like]);
    let lex = like.ex_shape();
    match x {
        BArg::Batched(x) => x.reshape(&with_batch(bsz, lex)),
        BArg::Plain(o) => lift_tensor(&o.tensor().reshape(lex), bsz),
    }
}

/// A batched zero shaped like `x`, holding no memory (a `lazy_zero`).
#[track_caller]
pub fn zero_like<'a>(x: impl Into<BArg<'a>>) -> Tensor {
    lazy_zero(need("zero_like", x.into()))
}

// ----- per-example queries -----

/// The number of elements of one example, as a float.
#[track_caller]
pub fn numel<'a>(x: impl Into<BArg<'a>>) -> f64 {
    x.into().ex_shape().iter().product::<usize>() as f64
}

/// The length of example axis `axis` (negative: from the end), as a float.
#[track_caller]
pub fn axis_len<'a>(x: impl Into<BArg<'a>>, axis: isize) -> f64 {
    let ex = x.into().ex_shape();
    ex[norm_axis("axis_len", axis, ex.len(), ex)] as f64
}

/// `n` as a float (the same for every example).
pub fn int_as_float<'a>(_like: impl Into<BArg<'a>>, n: i32) -> f64 {
    n as f64
}

/// The shape of one example of a batched tensor.
#[track_caller]
pub fn example_shape(x: &Tensor) -> Vec<usize> {
    need("example_shape", BArg::Batched(x)).shape()[1..].to_vec()
}

/// Batched `x.shape()` / `x.dims()`: the shape of one example.
pub fn method_shape<'a>(x: impl Into<BArg<'a>>) -> Vec<usize> {
    need("shape", x.into()).shape()[1..].to_vec()
}

/// Batched `x.dims()`: the shape of one example.
pub fn method_dims<'a>(x: impl Into<BArg<'a>>) -> Vec<usize> {
    method_shape(x)
}

/// Batched `x.numel()`: the elements of one example.
pub fn method_numel<'a>(x: impl Into<BArg<'a>>) -> usize {
    need("numel", x.into()).shape()[1..].iter().product()
}

/// Batched `x.len()`: the length of each example's first axis.
#[track_caller]
pub fn method_len<'a>(x: impl Into<BArg<'a>>) -> usize {
    let x = need("len", x.into());
    assert!(x.ndim() > 1, "len: each example is a 0-d tensor");
    x.shape()[1]
}

/// Batched `x.ndim()`: the axes of one example.
pub fn method_ndim<'a>(x: impl Into<BArg<'a>>) -> usize {
    need("ndim", x.into()).ndim() - 1
}

/// Batched `x.is_empty()`: whether each example has no elements.
pub fn method_is_empty<'a>(x: impl Into<BArg<'a>>) -> bool {
    method_numel(x) == 0
}

// ----- support for the transform -----

/// The batch size of a `#[vmap]` function's batched arguments (batch axes already moved to
/// the front), or an error naming the function, the argument and the shapes.
pub fn try_batch_size(fn_name: &str, args: &[(&str, &Tensor)]) -> Result<usize, Error> {
    let describe = || {
        args.iter()
            .map(|(n, x)| format!("`{n}`: {:?}", x.shape()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut size = None;
    for (name, x) in args {
        let Some(&n) = x.shape().first() else {
            return Err(Error::InvalidArgument {
                op: "vmap",
                message: format!(
                    "`{fn_name}`: batched argument `{name}` is a 0-d tensor, which has no batch axis (shapes: {})",
                    describe()
                ),
            });
        };
        match size {
            None => size = Some(n),
            Some(s) if s != n => {
                return Err(Error::InvalidArgument {
                    op: "vmap",
                    message: format!(
                        "`{fn_name}`: batched arguments disagree on the batch size: argument `{name}` has {n}, an earlier one {s} (batch axes first; shapes: {})",
                        describe()
                    ),
                });
            }
            _ => {}
        }
    }
    size.ok_or_else(|| Error::InvalidArgument {
        op: "vmap",
        message: format!("`{fn_name}`: no batched argument"),
    })
}

/// [`try_batch_size`], panicking with the error's message.
#[track_caller]
pub fn batch_size(fn_name: &str, args: &[(&str, &Tensor)]) -> usize {
    match try_batch_size(fn_name, args) {
        Ok(n) => n,
        Err(e) => panic!("{e}"),
    }
}

/// `x` with its batch axis `axis` (an `in_axes` entry, negative from the end) moved first.
#[track_caller]
pub fn move_to_front(x: &Tensor, axis: isize) -> Tensor {
    let n = x.ndim();
    let a = norm_axis("vmap in_axes", axis, n, x.shape());
    let mut perm = vec![a as isize];
    perm.extend((0..n).filter(|&k| k != a).map(|k| k as isize));
    x.permute(&perm)
}

/// A batched `x` with its batch axis moved from the front to `axis` (an `out_axes` entry,
/// negative from the end).
#[track_caller]
pub fn move_from_front(x: &Tensor, axis: isize) -> Tensor {
    let n = x.ndim();
    let a = norm_axis("vmap out_axes", axis, n, x.shape());
    let mut perm: Vec<isize> = (1..=a).map(|k| k as isize).collect();
    perm.push(0);
    perm.extend((a + 1..n).map(|k| k as isize));
    x.permute(&perm)
}

/// `x` as a batched value of `bsz` examples: a stride-0 broadcast view `[bsz] + shape` of an
/// unbatched tensor; a float becomes a `[bsz]` f64 tensor; a batched one stays as it is.
#[track_caller]
pub fn lift<'a>(x: impl Into<BArg<'a>>, bsz: usize) -> Tensor {
    lifted(x.into(), bsz, None).into_owned()
}

/// An unbatched argument of a call of another batched function: a tensor is lifted to the
/// batch (a broadcast view); any other value, a parameter struct read out of a field (the
/// macro types every field as a tensor), is passed as it is, which the callee's counterpart
/// takes unbatched.
pub fn lift_arg<T: Clone + 'static>(x: &T, bsz: usize) -> T {
    let any: &dyn std::any::Any = x;
    match any.downcast_ref::<Tensor>() {
        Some(t) => {
            let lifted: Box<dyn std::any::Any> = Box::new(lift(t, bsz));
            match lifted.downcast::<T>() {
                Ok(l) => *l,
                Err(_) => x.clone(),
            }
        }
        None => x.clone(),
    }
}

/// An unbatched list of tensors passed, beside a list that differs per example, to another
/// batched function (whose counterpart then takes every list batched): each element lifted
/// to the batch (a broadcast view).
pub fn lift_list(xs: &[Tensor], bsz: usize) -> Vec<Tensor> {
    xs.iter().map(|x| lift_tensor(x, bsz)).collect()
}

/// A batched sequence-of-floats parameter (`x: &[f64]` under `#[vmap]`, passed as a
/// `[B, n]` tensor whose batch axis is already first) as the list the batched body reads:
/// `n` tensors of shape `[B]`, element `i`'s holding every example's `x[i]`. `len` is an
/// array parameter's length (`[f64; N]`), which the tensor must match.
#[track_caller]
pub fn seq_columns<T: Float>(
    fn_name: &str,
    param: &str,
    x: &Tensor,
    len: Option<usize>,
) -> Vec<Tensor> {
    match try_seq_columns::<T>(fn_name, param, x, len) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// [`seq_columns`], returning the error (a tensor that is not 2-D, of another length than
/// the array's, or of another dtype than the sequence's floats) instead of panicking.
pub fn try_seq_columns<T: Float>(
    fn_name: &str,
    param: &str,
    x: &Tensor,
    len: Option<usize>,
) -> Result<Vec<Tensor>, Error> {
    let ty = std::any::type_name::<T>();
    let n = len.map_or("n".to_string(), |n| n.to_string());
    if x.ndim() != 2 || len.is_some_and(|n| x.shape()[1] != n) {
        return Err(Error::InvalidArgument {
            op: "vmap",
            message: format!(
                "`{fn_name}`: batched argument `{param}`, a sequence of {ty}, takes a 2-D tensor of shape [batch, {n}] (with the batch axis where in_axes puts it), got shape {:?}",
                x.shape()
            ),
        });
    }
    if x.dtype() != T::DTYPE {
        return Err(Error::InvalidArgument {
            op: "vmap",
            message: format!(
                "`{fn_name}`: batched argument `{param}`, a sequence of {ty}, takes a tensor of dtype {}, got {} (shape {:?}); convert it with `to_dtype`",
                T::DTYPE,
                x.dtype(),
                x.shape()
            ),
        });
    }
    // (one copy, so that each element's batch is contiguous)
    let rows = x.permute(&[1, 0]).contiguous();
    Ok((0..rows.shape()[0])
        .map(|i| rows.slice(0, i, i + 1).squeeze(0))
        .collect())
}

/// An unbatched sequence of floats lifted to a list of batched floats: each element a
/// `[B]` broadcast of it (batch size and device of `like`, dtype of the floats).
#[track_caller]
pub fn lift_seq<'a, T: Float, S: AsRef<[T]> + ?Sized>(
    xs: &S,
    like: impl Into<BArg<'a>>,
) -> Vec<Tensor> {
    let like = batched_like("lift_seq", like.into());
    let (b, device) = (like.shape()[0], like.device());
    xs.as_ref()
        .iter()
        .map(|x| Tensor::full_on(&[1], Float::to_f64(*x), T::DTYPE, &device).broadcast_to(&[b]))
        .collect()
}

/// A list of batched floats (a batched function's sequence-of-floats result, or the
/// per-example gradient of a sequence parameter) as one `[B, n]` tensor, batch axis first.
/// `like` gives the batch size, dtype and device of an empty list's `[B, 0]`.
#[track_caller]
pub fn stack_floats<'a>(xs: &[Tensor], like: impl Into<BArg<'a>>) -> Tensor {
    if xs.is_empty() {
        let like = batched_like("stack_floats", like.into());
        return Tensor::full_on(&[like.shape()[0], 0], 0.0, like.dtype(), &like.device());
    }
    Tensor::stack(xs, 1)
}

/// An unbatched sequence of floats as a batched result: `[B, n]`, every example's row the
/// sequence (a broadcast; batch size and device of `like`).
#[track_caller]
pub fn seq_lifted<'a, T: Float, S: AsRef<[T]> + ?Sized>(
    xs: &S,
    like: impl Into<BArg<'a>>,
) -> Tensor {
    let like = batched_like("seq_lifted", like.into());
    let xs = xs.as_ref();
    Tensor::from_vec(xs.to_vec(), &[1, xs.len()])
        .to_device(&like.device())
        .broadcast_to(&[like.shape()[0], xs.len()])
}

/// The sum of a list of batched floats (`[B]` each; an empty list's is zero).
#[track_caller]
pub fn sum_seq<'a>(xs: &[Tensor], like: impl Into<BArg<'a>>) -> Tensor {
    let like = batched_like("sum_seq", like.into());
    let mut it = xs.iter();
    let Some(first) = it.next() else {
        return Tensor::full_on(&[like.shape()[0]], 0.0, like.dtype(), &like.device());
    };
    let mut sum = first.clone();
    for x in it {
        t::acc(&mut sum, x);
    }
    sum
}

/// An argument of a type the macro cannot see (a constant such as `SCALE`, `STEPS` or
/// `CFG`) passed to another function's batched counterpart, which takes floats and tensors
/// batched and any other value as it is. Generated code writes
/// `opaque_arg(value, like).lift_opaque().pass()`: method resolution on the value's concrete
/// type finds the inherent `lift_opaque` of `OpaqueArg<f64>`, `OpaqueArg<f32>` or
/// `OpaqueArg<Tensor>`, which lifts the value to the batch of `like` (its size, dtype and
/// device; a broadcast view), and for any other type, through `Deref`, that of [`Keep`],
/// which passes the value on unchanged.
pub struct OpaqueArg<'a, T> {
    keep: Keep<T>,
    like: BArg<'a>,
}

/// The value of an [`OpaqueArg`] of a type that is not batched.
pub struct Keep<T>(std::cell::Cell<Option<T>>);

/// See [`OpaqueArg`].
pub fn opaque_arg<'a, T>(value: T, like: impl Into<BArg<'a>>) -> OpaqueArg<'a, T> {
    OpaqueArg {
        keep: Keep(std::cell::Cell::new(Some(value))),
        like: like.into(),
    }
}

impl<T> std::ops::Deref for OpaqueArg<'_, T> {
    type Target = Keep<T>;
    fn deref(&self) -> &Keep<T> {
        &self.keep
    }
}

impl<T> Keep<T> {
    /// The value, passed on as it is.
    pub fn lift_opaque(&self) -> Kept<T> {
        Kept(
            self.0
                .take()
                .expect("ferrax vmap: an argument is passed on once"),
        )
    }
}

impl<T> OpaqueArg<'_, T> {
    fn value(self) -> T {
        self.keep
            .0
            .into_inner()
            .expect("ferrax vmap: an argument is passed on once")
    }
}

impl OpaqueArg<'_, f64> {
    /// The float as a batch of it.
    #[track_caller]
    pub fn lift_opaque(self) -> Lifted {
        let like = self.like;
        Lifted(lift_like(self.value(), like))
    }
}

impl OpaqueArg<'_, f32> {
    /// The float as a batch of it.
    #[track_caller]
    pub fn lift_opaque(self) -> Lifted {
        let like = self.like;
        Lifted(lift_like(self.value(), like))
    }
}

impl OpaqueArg<'_, Tensor> {
    /// The tensor as a batch of it (a broadcast view).
    #[track_caller]
    pub fn lift_opaque(self) -> Lifted {
        let bsz = batched_like("lift_opaque", self.like).shape()[0];
        Lifted(lift(&self.value(), bsz))
    }
}

/// A float or tensor argument lifted to a batch: passed as `&Tensor`.
pub struct Lifted(Tensor);

impl Lifted {
    /// The batched tensor.
    pub fn pass(&self) -> &Tensor {
        &self.0
    }
}

/// An argument passed on as it is.
pub struct Kept<T>(T);

impl<T> Kept<T> {
    /// The value.
    pub fn pass(self) -> T {
        self.0
    }
}

/// A float as a batched `[bsz]` f32 tensor.
pub fn lift_f32(x: f32, bsz: usize) -> Tensor {
    Tensor::full(&[bsz], x as f64, DType::F32)
}

/// A float as a batched `[bsz]` f64 tensor.
pub fn lift_f64(x: f64, bsz: usize) -> Tensor {
    Tensor::full(&[bsz], x, DType::F64)
}

/// A float as a batched `[B]` tensor in the dtype, batch size and device of the batched `like`.
#[track_caller]
pub fn lift_like<'a>(x: impl Into<f64>, like: impl Into<BArg<'a>>) -> Tensor {
    let like = batched_like("lift_like", like.into());
    Tensor::full_on(&[like.shape()[0]], x.into(), like.dtype(), &like.device())
}

/// The batched tensor a lift takes its batch size, dtype and device from (generated code
/// passes it as a batched or a plain operand).
#[track_caller]
fn batched_like<'a>(op: &str, like: BArg<'a>) -> &'a Tensor {
    match like {
        BArg::Plain(Operand::Tensor(t)) => t,
        l => need(op, l),
    }
}

/// An integer as a batched `[B]` tensor of floats (a per-example counter: exact below
/// 2^24 in f32, 2^53 in f64), in the dtype, batch size and device of the batched `like`.
#[track_caller]
pub fn lift_int<'a>(x: impl IntValue, like: impl Into<BArg<'a>>) -> Tensor {
    lift_like(x.as_f64(), like)
}

/// A Rust integer, read as a float (see [`lift_int`]).
pub trait IntValue: Copy {
    /// The value as `f64`.
    fn as_f64(self) -> f64;
}

macro_rules! int_value {
    ($($t:ty)*) => {$(
        impl IntValue for $t {
            #[inline(always)]
            fn as_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
int_value!(i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize);

/// A bool as a batched `[B]` mask (1 or 0) in the dtype, batch size and device of the
/// batched `like`.
#[track_caller]
pub fn lift_bool<'a>(x: bool, like: impl Into<BArg<'a>>) -> Tensor {
    lift_like(if x { 1.0 } else { 0.0 }, like)
}

/// A parameter struct as a batched one: every tensor leaf a broadcast view `[bsz] + shape`
/// (a lazy zero stays one). Panics for float leaves, which cannot hold a batch.
#[track_caller]
pub fn lift_struct<S: Differentiable>(s: &S, bsz: usize) -> S {
    let mut out = s.clone();
    for leaf in leaves_mut(&mut out) {
        match leaf {
            LeafMut::Tensor(x) => {
                let zero = is_lazy_zero(x);
                let l = lift_tensor(x, bsz);
                *x = if zero { lazy_zero(&l) } else { l };
            }
            LeafMut::F32(_) | LeafMut::F64(_) => panic!(
                "ferrax vmap: per-example gradients of float fields are not supported; make the field a Tensor (0-d) or mark it #[differentiable(skip)]"
            ),
        }
    }
    out
}

/// A field of a batched parameter struct's adjoint, taking a per-example gradient `V` (see
/// [`acc_field`]).
pub trait BatchedField<V> {
    /// Adds the per-example gradient `v` of the field `name`.
    fn acc_batched(&mut self, v: &V, name: &str);
}

impl<T: Differentiable> BatchedField<T> for T {
    #[track_caller]
    fn acc_batched(&mut self, v: &T, _name: &str) {
        t::acc(self, v);
    }
}

macro_rules! float_fields {
    ($($f:ty),*) => {$(
        impl BatchedField<Tensor> for $f {
            #[track_caller]
            fn acc_batched(&mut self, _v: &Tensor, name: &str) {
                panic!(
                    "ferrax vmap: per-example gradients of the float field `{name}` cannot be held in it; make the field a Tensor (0-d) or mark it #[differentiable(skip)]"
                )
            }
        }
    )*};
}
float_fields!(f32, f64);

/// `place += v` for a field of a batched parameter struct's adjoint: a tensor (or struct)
/// field takes the per-example gradient `v`; a float field cannot hold one, and panics
/// saying so (as [`lift_struct`] does).
#[track_caller]
pub fn acc_field<F: BatchedField<V>, V>(place: &mut F, v: &V, name: &str) {
    place.acc_batched(v, name);
}

/// The identity basis `[n] + like.shape` (`n = like.numel()`) in `like`'s dtype and on its
/// device: example `i` is one at element `i`, zero elsewhere (Jacobians batch over it).
#[track_caller]
pub fn basis(like: &Tensor) -> Tensor {
    let n = like.numel();
    Tensor::eye(n, like.dtype())
        .reshape(&with_batch(n, like.shape()))
        .to_device(&like.device())
}

/// A Jacobian from forward mode: `t` is `[n_in] + out_shape` (one tangent per basis input);
/// the result is `out_shape + in_shape`.
#[track_caller]
pub fn jacobian_from_front(t: &Tensor, in_shape: &[usize]) -> Tensor {
    let n = t.ndim() as isize;
    let mut perm: Vec<isize> = (1..n).collect();
    perm.push(0);
    let mut shape = t.shape()[1..].to_vec();
    shape.extend_from_slice(in_shape);
    t.permute(&perm).reshape(&shape)
}

/// A Jacobian from reverse mode: `g` is `[n_out] + in_shape` (one gradient per basis output);
/// the result is `out_shape + in_shape`.
#[track_caller]
pub fn jacobian_from_rows(g: &Tensor, out_shape: &[usize]) -> Tensor {
    let mut shape = out_shape.to_vec();
    shape.extend_from_slice(&g.shape()[1..]);
    g.reshape(&shape)
}

/// One example of `x`, batched along `axis` (`None`: `x`, shared by every example): a view
/// holding no data, with the example's shape, dtype and device (what a per-example
/// Jacobian's basis is built like; an empty batch has one too).
#[track_caller]
pub fn example_of(x: &Tensor, axis: Option<isize>) -> Tensor {
    match axis {
        Some(a) => {
            let front = move_to_front(x, a);
            front.scalar_like(0.0).broadcast_to(&front.shape()[1..])
        }
        None => x.clone(),
    }
}

/// Per-example Jacobians from forward mode over a flat batch: `t` is `[b * n_in] +
/// out_shape`, example by example, one tangent per element of an example's input (of shape
/// `in_shape`); the result is `[b] + out_shape + in_shape`, the batch axis then moved to
/// `out_axes`.
#[track_caller]
pub fn per_example_from_front(t: &Tensor, b: usize, in_shape: &[usize], out_axes: isize) -> Tensor {
    let n: usize = in_shape.iter().product();
    let mut split = vec![b, n];
    split.extend_from_slice(&t.shape()[1..]);
    let t = t.reshape(&split);
    let mut perm: Vec<isize> = vec![0];
    perm.extend(2..t.ndim() as isize);
    perm.push(1);
    let mut shape = vec![b];
    shape.extend_from_slice(&split[2..]);
    shape.extend_from_slice(in_shape);
    move_from_front(&t.permute(&perm).reshape(&shape), out_axes)
}

/// Per-example Jacobians from reverse mode over a flat batch: `g` is `[b * n_out] +
/// in_shape`, example by example, one gradient per element of an example's output (of shape
/// `out_shape`); the result is `[b] + out_shape + in_shape`, the batch axis then moved to
/// `out_axes`.
#[track_caller]
pub fn per_example_from_rows(g: &Tensor, b: usize, out_shape: &[usize], out_axes: isize) -> Tensor {
    let mut shape = vec![b];
    shape.extend_from_slice(out_shape);
    shape.extend_from_slice(&g.shape()[1..]);
    move_from_front(&g.reshape(&shape), out_axes)
}

/// The cost of a reverse pass relative to a forward pass, as `f_jacobian` weighs them.
/// Measured per batched pass on the Jacobian benchmarks (`benches/compare.sh jac`, 2-core
/// VM): 1.0 on the tall problem (jacfwd 27 us / 10 passes, jacrev 2.7 ms / 1000) and 1.4 on
/// the wide one (jacfwd 1.45 ms / 1000, jacrev 20 us / 10), plus one primal call for the
/// output's basis; 1.5 sits above both.
pub const REVERSE_COST: f64 = 1.5;

/// Whether forward mode (one pass per input) is cheaper than reverse mode (one pass per
/// output, each [`REVERSE_COST`] forward passes).
pub fn prefer_forward(n_in: usize, n_out: usize) -> bool {
    n_in as f64 <= n_out as f64 * REVERSE_COST
}

/// The output size a function had for the last argument shapes it saw: lets `f_jacobian`
/// choose forward mode without running `f` once more to learn its output's size. Only the
/// choice of mode reads it, never the Jacobian itself.
#[derive(Default)]
pub struct OutSizes(std::cell::RefCell<Option<(Vec<Vec<usize>>, usize)>>);

impl OutSizes {
    /// An empty memo (for a `thread_local!`).
    pub const fn new() -> Self {
        OutSizes(std::cell::RefCell::new(None))
    }
    /// The output size recorded for these argument shapes.
    pub fn get(&self, shapes: &[&[usize]]) -> Option<usize> {
        match &*self.0.borrow() {
            Some((k, n))
                if k.len() == shapes.len() && k.iter().zip(shapes).all(|(a, b)| a == b) =>
            {
                Some(*n)
            }
            _ => None,
        }
    }
    /// Records the output size for these argument shapes.
    pub fn set(&self, shapes: &[&[usize]], n: usize) {
        *self.0.borrow_mut() = Some((shapes.iter().map(|s| s.to_vec()).collect(), n));
    }
}

// ----- per-example Jacobians: values batched over the examples only -----

/// `x`, batched over the outer examples of a per-example Jacobian's pass (`[b1] + example`),
/// as a value of the pass's flat batch (`[b1 * n] + example`): each example's row repeated
/// for its `n` basis elements (a copy).
///
/// ```
/// # use ferrax::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
/// let r = ferrax::__private::b::repeat_outer(ferrax::__private::b::B(&x), 3);
/// assert_eq!(r.shape(), &[6, 2]);
/// assert_eq!(r.to_vec::<f32>(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0]);
/// ```
pub fn repeat_outer(x: B<'_>, n: usize) -> Tensor {
    repeat_at(x.0, 1, n)
}

/// `x`, batched over the basis elements of a per-example Jacobian's pass (`[n] + example`:
/// the same for every example), as a value of the pass's flat batch (`[b1 * n] +
/// example`): repeated for each of the `b1` examples (a copy).
///
/// ```
/// # use ferrax::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
/// let r = ferrax::__private::b::repeat_inner(ferrax::__private::b::B(&x), 3);
/// assert_eq!(r.shape(), &[6, 2]);
/// assert_eq!(r.to_vec::<f32>(), vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
/// ```
pub fn repeat_inner(x: B<'_>, b1: usize) -> Tensor {
    repeat_at(x.0, 0, b1)
}

/// `x` (`[m] + rest`) repeated `count` times along a new axis `axis` (0 or 1) and flattened
/// back into its first (`[m * count] + rest`), a copy.
fn repeat_at(x: &Tensor, axis: usize, count: usize) -> Tensor {
    let mut wide = x.shape().to_vec();
    wide.insert(axis, count);
    let mut flat = vec![x.shape()[0] * count];
    flat.extend_from_slice(&x.shape()[1..]);
    x.unsqueeze(axis as isize)
        .broadcast_to(&wide)
        .contiguous()
        .reshape(&flat)
}

/// A value of the flat batch's shape, dtype and device standing in for `x` (batched over
/// one level of a per-example Jacobian's pass, `n` the other level's size) as an argument
/// read only for its shape (the `like` of `sum_to`, `matmul_tl`, ..): a stride-0 view of
/// `x`'s first row, no copy. Its values are not `x`'s: never an operand.
pub fn stand_in(x: B<'_>, n: usize) -> Tensor {
    let x = x.0;
    let mut flat = vec![x.shape()[0] * n];
    flat.extend_from_slice(&x.shape()[1..]);
    x.slice(0, 0, x.shape()[0].min(1)).broadcast_to(&flat)
}

/// The arguments of an elementwise chain in a per-example Jacobian's pass (see
/// `fuse::run_nested`), whose batched ones are batched over one of three levels: the
/// `outer` ones over the examples, the `inner` ones over the basis elements (the same for
/// every example), the others over the flat batch (examples times basis elements,
/// example-major). Every batched one is aligned per example and viewed `[b1, n, ..]` (a
/// flat one), `[b1, 1, ..]` (an outer one) or `[1, n, ..]` (an inner one), so that they
/// broadcast as the flat batch would repeat them; returned with the flat batch size.
/// Unbatched arguments are as they are (they broadcast from the right).
#[track_caller]
pub(crate) fn nested_views(
    args: &[BArg<'_>],
    outer: &[usize],
    inner: &[usize],
) -> (Vec<Tensor>, usize) {
    // one size per level: the first batched argument of the level gives it
    let level_size = |level: &dyn Fn(usize) -> bool, what: &str| -> Option<usize> {
        let sizes: Vec<usize> = args
            .iter()
            .enumerate()
            .filter(|(k, _)| level(*k))
            .filter_map(|(_, a)| a.batched())
            .map(|x| x.shape()[0])
            .collect();
        let first = *sizes.first()?;
        assert!(
            sizes.iter().all(|&s| s == first),
            "ferrax vmap: a chain's operands batched over {what} have different batch sizes {sizes:?}"
        );
        Some(first)
    };
    let flat = level_size(
        &|k| !outer.contains(&k) && !inner.contains(&k),
        "the flat batch",
    );
    let b1 = level_size(&|k| outer.contains(&k), "the examples");
    let n = level_size(&|k| inner.contains(&k), "the basis elements");
    let (b1, n) = match (flat, b1, n) {
        (_, Some(b1), Some(n)) => (b1, n),
        (Some(f), Some(b1), None) => (b1, f.checked_div(b1).unwrap_or(0)),
        (Some(f), None, Some(n)) => (f.checked_div(n).unwrap_or(0), n),
        (Some(f), None, None) => (f, 1),
        _ => panic!(
            "ferrax vmap: a chain with per-example values needs a value of the flat batch or values of both levels"
        ),
    };
    let bsz = b1 * n;
    if let Some(f) = flat {
        assert!(
            f == bsz,
            "ferrax vmap: values of the flat batch ({f}) in a chain over {b1} examples of {n} basis elements"
        );
    }
    let r = args.iter().map(|a| a.ex_rank()).max().unwrap_or(0);
    let views = args
        .iter()
        .enumerate()
        .filter_map(|(k, a)| {
            let x = a.batched()?;
            let x = pad_after_batch(x, r - (x.ndim() - 1));
            let mut shape = if outer.contains(&k) {
                vec![b1, 1]
            } else if inner.contains(&k) {
                vec![1, n]
            } else {
                vec![b1, n]
            };
            shape.extend_from_slice(&x.shape()[1..]);
            Some(x.reshape(&shape))
        })
        .collect();
    (views, bsz)
}

// ----- nested vmap: two batch levels flattened into one -----

/// An argument of a doubly batched function: the tensor (or float) and its batch axis at the
/// outer and at the inner level (`None`: shared at that level).
pub struct Nested<'a> {
    pub name: &'static str,
    pub x: BArg<'a>,
    pub outer: Option<isize>,
    pub inner: Option<isize>,
}

/// `x` with its outer batch axis first and its inner one second, where it has them.
fn nested_front(n: &Nested<'_>) -> Option<Tensor> {
    let BArg::Plain(Operand::Tensor(x)) = n.x else {
        return None;
    };
    let mut t = x.clone();
    if let Some(o) = n.outer {
        t = move_to_front(&t, o);
    }
    if let Some(i) = n.inner {
        // the inner axis counts within an example of the outer level
        let rest: isize = if n.outer.is_some() { 1 } else { 0 };
        let inner_axis = t.ndim() as isize - rest;
        let a = if i < 0 { i + inner_axis } else { i } + rest;
        let mut perm: Vec<isize> = (0..rest).collect();
        perm.push(a);
        perm.extend((rest..t.ndim() as isize).filter(|&k| k != a));
        t = t.permute(&perm);
    }
    Some(t)
}

/// The outer and inner batch sizes of a doubly batched call (panics naming the function
/// and the argument where they disagree).
#[track_caller]
pub fn nested_sizes(fn_name: &str, args: &[Nested<'_>]) -> (usize, usize) {
    let (mut b1, mut b2) = (None::<(usize, &str)>, None::<(usize, &str)>);
    for n in args {
        let Some(t) = nested_front(n) else { continue };
        let mut k = 0;
        for (level, size) in [(n.outer, &mut b1), (n.inner, &mut b2)] {
            if level.is_none() {
                continue;
            }
            let got = t.shape()[k];
            k += 1;
            match size {
                Some((want, first)) if *want != got => panic!(
                    "{fn_name}: `{}` has batch size {got} but `{first}` has {want} at the same level",
                    n.name
                ),
                Some(_) => {}
                None => *size = Some((got, n.name)),
            }
        }
    }
    (b1.map_or(1, |b| b.0), b2.map_or(1, |b| b.0))
}

/// An argument of the doubly batched function batched at the outer level only, with its
/// outer batch axis first: what a per-example Jacobian's pass takes unrepeated (see
/// [`repeat_outer`]).
pub fn nested_outer(n: &Nested<'_>) -> Tensor {
    match nested_front(n) {
        Some(t) if n.outer.is_some() && n.inner.is_none() => t,
        _ => panic!(
            "ferrax vmap: `{}` is not batched at the outer level only",
            n.name
        ),
    }
}

/// An argument of the doubly batched function as one of the flat function: `[b1 * b2] +
/// example shape`, repeated (a broadcast) along a level it is shared at.
pub fn nested_in(n: &Nested<'_>, b1: usize, b2: usize) -> Tensor {
    let t = match nested_front(n) {
        Some(t) => t,
        None => match n.x {
            BArg::Plain(o) => o.tensor().into_owned(),
            BArg::Batched(t) => t.clone(),
        },
    };
    let t = match (n.outer.is_some(), n.inner.is_some()) {
        (true, true) => t,
        (true, false) => t.unsqueeze(1),
        (false, true) => t.unsqueeze(0),
        (false, false) => t.unsqueeze(0).unsqueeze(0),
    };
    let mut shape = vec![b1, b2];
    shape.extend_from_slice(&t.shape()[2..]);
    let mut flat = vec![b1 * b2];
    flat.extend_from_slice(&t.shape()[2..]);
    t.broadcast_to(&shape).contiguous().reshape(&flat)
}

/// The flat function's result `[b1 * b2] + out` as the doubly batched result: the inner
/// batch axis at `inner` within each outer example, the outer one at `outer`.
pub fn nested_out(y: &Tensor, b1: usize, b2: usize, outer: isize, inner: isize) -> Tensor {
    let mut shape = vec![b1, b2];
    shape.extend_from_slice(&y.shape()[1..]);
    let y = y.reshape(&shape);
    // inner level: within each outer example, move its axis (1) to `inner`
    let per = y.ndim() - 1;
    let a = if inner < 0 {
        inner + per as isize
    } else {
        inner
    } as usize;
    let mut perm: Vec<isize> = vec![0];
    let rest: Vec<isize> = (2..y.ndim() as isize).collect();
    perm.extend(rest[..a].iter().copied());
    perm.push(1);
    perm.extend(rest[a..].iter().copied());
    let y = y.permute(&perm);
    move_from_front(&y, outer)
}

/// Per-example gradients of a shared value summed over the batch (axis 0 of every tensor
/// leaf): the gradient of the batch's total with respect to it.
pub fn sum_batch<T: Differentiable>(g: &T) -> T {
    let mut out = g.clone();
    for leaf in ferrax_runtime::differentiable::leaves_mut(&mut out) {
        if let ferrax_runtime::differentiable::LeafMut::Tensor(t) = leaf {
            *t = t.sum_axis(0, false);
        }
    }
    out
}

// ----- linear algebra -----

/// Batched `t::lu_factor`: each example's matrices factored.
#[track_caller]
pub fn lu_factor<'a>(a: impl Into<BArg<'a>>) -> Tensor {
    t::as_op(matrices("solve", a.into()).try_lu_factor(), "solve")
}

/// Batched `t::lu_log_abs_det`: each example's `log |det a|`.
#[track_caller]
pub fn lu_log_abs_det<'a>(factors: impl Into<BArg<'a>>, a: impl Into<BArg<'a>>) -> Tensor {
    let (f, a) = (factors.into(), a.into());
    let bsz = bsz_of("logabsdet", &[f, a]);
    let f = lifted(f, bsz, None);
    t::lu_log_abs_det(&*f, &*f)
}

/// Batched `t::lu_sign`: each example's sign of its determinant.
#[track_caller]
pub fn lu_sign<'a>(factors: impl Into<BArg<'a>>) -> Tensor {
    t::lu_sign(need("det", factors.into()))
}

/// Batched `t::eye_like`: the identity for every example (a broadcast view).
#[track_caller]
pub fn eye_like<'a>(a: impl Into<BArg<'a>>) -> Tensor {
    let a = matrices("inv", a.into());
    let n = a.shape()[a.ndim() - 1];
    let eye = Tensor::eye(n, a.dtype()).to_device(&a.device());
    lift_tensor(&eye, a.shape()[0])
}

/// Batched `t::lu_solve`: each example's system solved with its factors (`a`, the
/// matrices, gives the examples' shapes).
#[track_caller]
pub fn lu_solve<'a>(
    factors: impl Into<BArg<'a>>,
    a: impl Into<BArg<'a>>,
    b: impl Into<BArg<'a>>,
    transpose: bool,
) -> Tensor {
    let (f, a, b) = (factors.into(), a.into(), b.into());
    bsz_of("solve", &[f, a, b]);
    systems("solve", a, f, b, |f, b| {
        t::as_op(f.try_lu_solve(b, transpose), "solve")
    })
}

/// Batched `t::solve_triangular`.
#[track_caller]
pub fn solve_triangular<'a>(a: impl Into<BArg<'a>>, b: impl Into<BArg<'a>>, lower: bool) -> Tensor {
    let a = a.into();
    systems("solve_triangular", a, a, b.into(), |a, b| {
        a.solve_triangular(b, lower)
    })
}

/// Every example's `a x = b` solved by `solve` in one call, on `m` (the matrices `a`, or
/// their factors): a per-example vector gets a trailing axis, and batched operands size-1
/// axes after the batch axis so that the other operand's batch axes broadcast under the
/// example's, never against the batch. Matrices shared by every example stay unbatched
/// (factored once).
#[track_caller]
fn systems(
    op: &str,
    a: BArg<'_>,
    m: BArg<'_>,
    b: BArg<'_>,
    solve: impl Fn(&Tensor, &Tensor) -> Tensor,
) -> Tensor {
    let bsz = bsz_of(op, &[m, b]);
    let (ea, eb) = (a.ex_shape(), b.ex_shape());
    let vector = eb.len() == 1;
    let fits = ea.len() >= 2 && !eb.is_empty() && (!vector || ea.len() == 2) && {
        let n = ea[ea.len() - 1];
        let rows = if vector { eb[0] } else { eb[eb.len() - 2] };
        ea[ea.len() - 2] == n && rows == n
    };
    assert!(
        fits,
        "{op}: examples of shapes {ea:?} and {eb:?} do not fit: per example it takes square \
         matrices [.., n, n] and a right-hand side [.., n, k], or [n] beside one matrix \
         (under #[vmap] with a batch of {bsz})"
    );
    let tensor = |x: BArg<'_>| match x {
        BArg::Batched(t) | BArg::Plain(Operand::Tensor(t)) => t.clone(),
        BArg::Plain(Operand::Scalar(_)) => unreachable!("checked: both have axes"),
    };
    let (mut x, mut y) = (tensor(m), tensor(b));
    if vector {
        y = y.unsqueeze(-1);
    }
    let (ra, rb) = (ea.len(), eb.len() + usize::from(vector));
    if m.batched().is_some() {
        x = pad_after_batch(&x, rb.saturating_sub(ra));
    }
    if b.batched().is_some() {
        y = pad_after_batch(&y, ra.saturating_sub(rb));
    }
    let out = solve(&x, &y);
    if vector { out.squeeze(-1) } else { out }
}

/// `x`, batched, after checking that its examples are matrices.
#[track_caller]
fn matrices<'a>(op: &str, x: BArg<'a>) -> &'a Tensor {
    let x = need(op, x);
    assert!(
        x.ndim() >= 3,
        "{op}: needs matrices in the last two axes, got examples of shape {:?} (under #[vmap])",
        ex_of(x)
    );
    x
}

/// Batched `t::pinv`.
#[track_caller]
pub fn pinv<'a>(a: impl Into<BArg<'a>>) -> Tensor {
    matrices("pinv", a.into()).pinv()
}

/// Batched `t::expm`.
#[track_caller]
pub fn expm<'a>(a: impl Into<BArg<'a>>) -> Tensor {
    matrices("expm", a.into()).expm()
}

/// Batched `t::expm_frechet`: both lifted to the batch.
#[track_caller]
pub fn expm_frechet<'a>(a: impl Into<BArg<'a>>, e: impl Into<BArg<'a>>) -> Tensor {
    let (a, e) = (a.into(), e.into());
    let bsz = bsz_of("expm_frechet", &[a, e]);
    lifted(a, bsz, None).expm_frechet(&lifted(e, bsz, None))
}

/// Batched `t::block_upper` (a number stays a number: zeros).
#[track_caller]
pub fn block_upper<'a>(a: impl Into<BArg<'a>>, e: impl Into<BArg<'a>>) -> Tensor {
    let (a, e) = (a.into(), e.into());
    let bsz = bsz_of("expm", &[a, e]);
    let lift = |x: BArg<'a>| match x {
        BArg::Plain(Operand::Scalar(v)) => V::S(v),
        x => V::T(lifted(x, bsz, None).into_owned()),
    };
    let (a, e) = (lift(a), lift(e));
    t::block_upper(a.op(), e.op())
}

/// Batched `t::quadrant`.
#[track_caller]
pub fn quadrant<'a>(x: impl Into<BArg<'a>>, k: usize) -> Tensor {
    t::quadrant(matrices("expm", x.into()), k)
}

/// Batched `t::quadrant_t`.
#[track_caller]
pub fn quadrant_t<'a>(x: impl Into<BArg<'a>>, k: usize) -> Tensor {
    t::quadrant_t(matrices("expm", x.into()), k)
}

/// Batched `t::cholesky`.
#[track_caller]
pub fn cholesky<'a>(x: impl Into<BArg<'a>>) -> Tensor {
    matrices("cholesky", x.into()).cholesky()
}

/// Batched `t::eigh_factor`: each example's matrices decomposed.
#[track_caller]
pub fn eigh_factor<'a>(a: impl Into<BArg<'a>>) -> Tensor {
    t::eigh_factor(matrices("eigh", a.into()))
}

/// A packed decomposition of `a` again, batched as `a` is (the batched `t::eigh`, `t::qr`,
/// `t::svd`: the decomposition, read where the derivative rules differentiate through `a`).
#[track_caller]
fn packed_again(op: &str, packed: BArg<'_>, a: BArg<'_>) -> Tensor {
    let bsz = bsz_of(op, &[packed, a]);
    lifted(packed, bsz, None).into_owned()
}

/// Batched `t::eigh`.
#[track_caller]
pub fn eigh<'a>(packed: impl Into<BArg<'a>>, a: impl Into<BArg<'a>>) -> Tensor {
    packed_again("eigh", packed.into(), a.into())
}

/// Batched `t::eigvalsh`.
#[track_caller]
pub fn eigvalsh<'a>(packed: impl Into<BArg<'a>>, a: impl Into<BArg<'a>>) -> Tensor {
    t::eigh_values(&packed_again("eigvalsh", packed.into(), a.into()))
}

/// Batched `t::eigh_values`.
#[track_caller]
pub fn eigh_values<'a>(packed: impl Into<BArg<'a>>) -> Tensor {
    t::eigh_values(need("eigh", packed.into()))
}

/// Batched `t::eigh_vectors`.
#[track_caller]
pub fn eigh_vectors<'a>(packed: impl Into<BArg<'a>>) -> Tensor {
    t::eigh_vectors(need("eigh", packed.into()))
}

/// Batched `t::eigh_pack`: an unbatched part (a zero) is broadcast over the batch.
#[track_caller]
pub fn eigh_pack<'a>(vectors: impl Into<BArg<'a>>, values: impl Into<BArg<'a>>) -> Tensor {
    let (v, w) = (vectors.into(), values.into());
    let bsz = bsz_of("eigh", &[v, w]);
    t::eigh_pack(&*lifted(v, bsz, None), &*lifted(w, bsz, None))
}

/// Batched `t::qr_factor`: each example's matrices decomposed.
#[track_caller]
pub fn qr_factor<'a>(a: impl Into<BArg<'a>>) -> Tensor {
    t::qr_factor(matrices("qr", a.into()))
}

/// Batched `t::qr`.
#[track_caller]
pub fn qr<'a>(packed: impl Into<BArg<'a>>, a: impl Into<BArg<'a>>) -> Tensor {
    packed_again("qr", packed.into(), a.into())
}

/// Batched `t::qr_q`.
#[track_caller]
pub fn qr_q<'a>(packed: impl Into<BArg<'a>>) -> Tensor {
    t::qr_q(need("qr", packed.into()))
}

/// Batched `t::qr_r`.
#[track_caller]
pub fn qr_r<'a>(packed: impl Into<BArg<'a>>) -> Tensor {
    t::qr_r(need("qr", packed.into()))
}

/// Batched `t::qr_r_square`.
#[track_caller]
pub fn qr_r_square<'a>(packed: impl Into<BArg<'a>>) -> Tensor {
    t::qr_r_square(need("qr", packed.into()))
}

/// Batched `t::qr_pack`: an unbatched part (a zero) is broadcast over the batch.
#[track_caller]
pub fn qr_pack<'a>(q: impl Into<BArg<'a>>, r: impl Into<BArg<'a>>) -> Tensor {
    let (q, r) = (q.into(), r.into());
    let bsz = bsz_of("qr", &[q, r]);
    t::qr_pack(&*lifted(q, bsz, None), &*lifted(r, bsz, None))
}

/// Batched `t::r_solve`: each example's `x r⁻¹` (a shared `r` broadcast).
#[track_caller]
pub fn r_solve<'a>(x: impl Into<BArg<'a>>, r: impl Into<BArg<'a>>, transpose: bool) -> Tensor {
    let (x, r) = (x.into(), r.into());
    let bsz = bsz_of("qr", &[x, r]);
    t::r_solve(&*lifted(x, bsz, None), &*lifted(r, bsz, None), transpose)
}

/// Batched `t::svd_factor`: each example's matrices decomposed.
#[track_caller]
pub fn svd_factor<'a>(a: impl Into<BArg<'a>>) -> Tensor {
    t::svd_factor(matrices("svd", a.into()))
}

/// Batched `t::svd`.
#[track_caller]
pub fn svd<'a>(packed: impl Into<BArg<'a>>, a: impl Into<BArg<'a>>) -> Tensor {
    packed_again("svd", packed.into(), a.into())
}

/// Batched `t::svdvals`.
#[track_caller]
pub fn svdvals<'a>(packed: impl Into<BArg<'a>>, a: impl Into<BArg<'a>>) -> Tensor {
    t::svd_s(&packed_again("svdvals", packed.into(), a.into()))
}

/// Batched `t::svd_u`.
#[track_caller]
pub fn svd_u<'a>(packed: impl Into<BArg<'a>>) -> Tensor {
    t::svd_u(need("svd", packed.into()))
}

/// Batched `t::svd_s`.
#[track_caller]
pub fn svd_s<'a>(packed: impl Into<BArg<'a>>) -> Tensor {
    t::svd_s(need("svd", packed.into()))
}

/// Batched `t::svd_vt`.
#[track_caller]
pub fn svd_vt<'a>(packed: impl Into<BArg<'a>>) -> Tensor {
    t::svd_vt(need("svd", packed.into()))
}

/// Batched `t::svd_pack`: unbatched parts (zeros) are broadcast over the batch.
#[track_caller]
pub fn svd_pack<'a>(
    u: impl Into<BArg<'a>>,
    s: impl Into<BArg<'a>>,
    vt: impl Into<BArg<'a>>,
) -> Tensor {
    let (u, s, vt) = (u.into(), s.into(), vt.into());
    let bsz = bsz_of("svd", &[u, s, vt]);
    t::svd_pack(
        &*lifted(u, bsz, None),
        &*lifted(s, bsz, None),
        &*lifted(vt, bsz, None),
    )
}

/// Batched `t::tril`.
#[track_caller]
pub fn tril<'a>(x: impl Into<BArg<'a>>, k: isize) -> Tensor {
    matrices("tril", x.into()).tril(k)
}

/// Batched `t::triu`.
#[track_caller]
pub fn triu<'a>(x: impl Into<BArg<'a>>, k: isize) -> Tensor {
    matrices("triu", x.into()).triu(k)
}

/// Batched `t::triangle`.
#[track_caller]
pub fn triangle<'a>(x: impl Into<BArg<'a>>, lower: bool) -> Tensor {
    t::triangle(matrices("triangle", x.into()), lower)
}

/// Batched `t::diagonal`.
#[track_caller]
pub fn diagonal<'a>(x: impl Into<BArg<'a>>) -> Tensor {
    matrices("diagonal", x.into()).diagonal()
}

/// Batched `t::mt`.
#[track_caller]
pub fn mt<'a>(x: impl Into<BArg<'a>>) -> Tensor {
    matrices("mt", x.into()).mt()
}

/// Batched `t::undiagonal`: each example's cotangent on the diagonals of its matrices.
#[track_caller]
pub fn undiagonal<'a>(ct: impl Into<BArg<'a>>, like: impl Into<BArg<'a>>) -> Tensor {
    let (ct, like) = (ct.into(), like.into());
    let bsz = bsz_of("undiagonal", &[ct, like]);
    let like_b = lifted(like, bsz, None);
    let ct_b = lifted(ct, bsz, Some(&like_b));
    t::undiagonal(&*ct_b, &like_b)
}
