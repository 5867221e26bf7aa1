//! The tensor side of generated code: one helper per primitive of the macro's table
//! (`ferrax_macros::primitives`), named after it (`Prim::SumAxis` -> `sum_axis`). Generated
//! code calls these whenever a tensor is among a primitive's arguments, so that the rules of
//! the table, written once over `+ - * /`, comparisons and selects, serve scalars and tensors
//! alike. Operands are tensors (borrowed) or Rust floats ([`Operand`]); a float takes the
//! tensor's dtype.
//!
//! Comparisons return masks in the dtype of their tensor operand (1 where true, 0 where
//! false), so that a rule such as `select(x >= 0, 1, -1)` knows the dtype of its result.

use ferrax_runtime::{Conv, Differentiable, PadMode, Tensor, packed};

/// An argument of a helper: a tensor or a Rust float.
#[derive(Clone, Copy)]
pub enum Operand<'a> {
    Tensor(&'a Tensor),
    Scalar(f64),
}

impl<'a> From<&'a Tensor> for Operand<'a> {
    fn from(t: &'a Tensor) -> Self {
        Operand::Tensor(t)
    }
}

impl<'a, 'b> From<&'a &'b Tensor> for Operand<'a> {
    fn from(t: &'a &'b Tensor) -> Self {
        Operand::Tensor(t)
    }
}

impl<'a> From<&'a f64> for Operand<'a> {
    fn from(x: &'a f64) -> Self {
        Operand::Scalar(*x)
    }
}

impl<'a> From<&'a f32> for Operand<'a> {
    fn from(x: &'a f32) -> Self {
        Operand::Scalar(*x as f64)
    }
}

impl From<f64> for Operand<'_> {
    fn from(x: f64) -> Self {
        Operand::Scalar(x)
    }
}

impl From<f32> for Operand<'_> {
    fn from(x: f32) -> Self {
        Operand::Scalar(x as f64)
    }
}

impl<'a> Operand<'a> {
    /// The tensor; a float as a 0-d tensor shaped like nothing (only reached where every
    /// operand is a float, which the macro never emits).
    pub(crate) fn tensor(self) -> std::borrow::Cow<'a, Tensor> {
        match self {
            Operand::Tensor(t) => std::borrow::Cow::Borrowed(t),
            Operand::Scalar(x) => std::borrow::Cow::Owned(Tensor::scalar(x)),
        }
    }

    /// As a tensor in the dtype of `like` (a float becomes a 0-d tensor of that dtype).
    pub(crate) fn tensor_like(self, like: &Tensor) -> std::borrow::Cow<'a, Tensor> {
        match self {
            Operand::Tensor(t) => std::borrow::Cow::Borrowed(t),
            Operand::Scalar(x) => std::borrow::Cow::Owned(like.scalar_like(x)),
        }
    }
}

fn binary<'a>(
    a: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
    tt: impl Fn(&Tensor, &Tensor) -> Tensor,
    ts: impl Fn(&Tensor, f64) -> Tensor,
    st: impl Fn(f64, &Tensor) -> Tensor,
) -> Tensor {
    match (a.into(), b.into()) {
        (Operand::Tensor(a), Operand::Tensor(b)) => tt(a, b),
        (Operand::Tensor(a), Operand::Scalar(b)) => ts(a, b),
        (Operand::Scalar(a), Operand::Tensor(b)) => st(a, b),
        (a, b) => tt(&a.tensor(), &b.tensor()),
    }
}

/// `a + b`.
pub fn add<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Tensor {
    binary(a, b, |a, b| a + b, |a, b| a + b, |a, b| a + b)
}

/// `a - b`.
pub fn sub<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Tensor {
    binary(a, b, |a, b| a - b, |a, b| a - b, |a, b| a - b)
}

/// `a * b`.
pub fn mul<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Tensor {
    binary(a, b, |a, b| a * b, |a, b| a * b, |a, b| a * b)
}

/// `a / b`.
pub fn div<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Tensor {
    binary(a, b, |a, b| a / b, |a, b| a / b, |a, b| a / b)
}

/// `max(a, b)` elementwise.
pub fn max<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Tensor {
    binary(
        a,
        b,
        |a, b| a.maximum(b),
        |a, b| a.maximum(&a.scalar_like(b)),
        |a, b| b.scalar_like(a).maximum(b),
    )
}

/// `a.logaddexp(b)` elementwise (a number for either: broadcast).
pub fn log_add_exp<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Tensor {
    let (a, b) = (a.into(), b.into());
    let like = match (a, b) {
        (Operand::Tensor(t), _) | (_, Operand::Tensor(t)) => t.clone(),
        (Operand::Scalar(_), Operand::Scalar(_)) => Tensor::scalar(0.0f64),
    };
    a.tensor_like(&like).logaddexp(&b.tensor_like(&like))
}

/// `x.clamp(lo, hi)` elementwise, as `min(max(x, lo), hi)`.
pub fn clamp<'a>(
    x: impl Into<Operand<'a>>,
    lo: impl Into<Operand<'a>>,
    hi: impl Into<Operand<'a>>,
) -> Tensor {
    let hi: Operand<'_> = hi.into();
    let m = max(x, lo);
    min(&m, hi)
}

/// `min(a, b)` elementwise.
pub fn min<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Tensor {
    binary(
        a,
        b,
        |a, b| a.minimum(b),
        |a, b| a.minimum(&a.scalar_like(b)),
        |a, b| b.scalar_like(a).minimum(b),
    )
}

/// `x^e`, `e` a float or a tensor.
pub fn powf<'a>(x: impl Into<Operand<'a>>, e: impl Into<Operand<'a>>) -> Tensor {
    binary(
        x,
        e,
        |x, e| x.pow(e),
        |x, e| x.powf(e),
        |x, e| e.scalar_like(x).pow(e),
    )
}

/// `y.atan2(x)` elementwise: the angle of the point `(x, y)`.
pub fn atan2<'a>(y: impl Into<Operand<'a>>, x: impl Into<Operand<'a>>) -> Tensor {
    binary(
        y,
        x,
        |y, x| y.atan2(x),
        |y, x| y.atan2(&y.scalar_like(x)),
        |y, x| x.scalar_like(y).atan2(x),
    )
}

/// `x^n`.
pub fn powi<'a>(x: impl Into<Operand<'a>>, n: i32) -> Tensor {
    x.into().tensor().powi(n)
}

/// `n` as a float (the tensor's dtype is applied where it meets a tensor).
pub fn int_as_float<'a>(_like: impl Into<Operand<'a>>, n: i32) -> f64 {
    n as f64
}

macro_rules! compare {
    ($($name:ident),*) => {$(
        #[doc = concat!("`a ", stringify!($name), " b` as a mask in the operands' dtype (1 or 0).")]
        pub fn $name<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Tensor {
            let (a, b) = (a.into(), b.into());
            let like = match (a, b) {
                (Operand::Tensor(t), _) | (_, Operand::Tensor(t)) => t.clone(),
                _ => Tensor::scalar(0.0f64),
            };
            let (a, b) = (a.tensor_like(&like), b.tensor_like(&like));
            a.$name(&b).to_dtype(like.dtype())
        }
    )*};
}
compare!(lt, le, gt, ge, eq, ne);

/// The condition of a select: a mask (nonzero = true) or a Rust bool.
#[derive(Clone, Copy)]
pub enum Cond<'a> {
    Mask(&'a Tensor),
    Bool(bool),
}

impl<'a> From<&'a Tensor> for Cond<'a> {
    fn from(t: &'a Tensor) -> Self {
        Cond::Mask(t)
    }
}

impl<'a, 'b> From<&'a &'b Tensor> for Cond<'a> {
    fn from(t: &'a &'b Tensor) -> Self {
        Cond::Mask(t)
    }
}

impl From<bool> for Cond<'_> {
    fn from(b: bool) -> Self {
        Cond::Bool(b)
    }
}

/// A condition as a 1/0 operand (a mask in its float dtype, or a number).
fn ones_where(c: Cond<'_>) -> Tensor {
    match c {
        Cond::Mask(m) if m.dtype().is_float() => m.ne(&m.scalar_like(0.0)).to_dtype(m.dtype()),
        Cond::Mask(m) => m.to_dtype(ferrax_runtime::DType::F32),
        Cond::Bool(b) => Tensor::scalar(if b { 1.0f32 } else { 0.0 }),
    }
}

/// `a && b` elementwise for masks (or a mask and a bool): 1 where both hold, else 0.
pub fn bit_and<'a>(a: impl Into<Cond<'a>>, b: impl Into<Cond<'a>>) -> Tensor {
    match (a.into(), b.into()) {
        (Cond::Mask(m), Cond::Bool(c)) | (Cond::Bool(c), Cond::Mask(m)) => {
            let m = ones_where(Cond::Mask(m));
            if c { m } else { m.zeros_like() }
        }
        (a, b) => {
            let (a, b) = (ones_where(a), ones_where(b));
            let b = b.to_dtype(a.dtype());
            a * b
        }
    }
}

/// `a || b` elementwise for masks (or a mask and a bool): 1 where either holds, else 0.
pub fn bit_or<'a>(a: impl Into<Cond<'a>>, b: impl Into<Cond<'a>>) -> Tensor {
    match (a.into(), b.into()) {
        (Cond::Mask(m), Cond::Bool(c)) | (Cond::Bool(c), Cond::Mask(m)) => {
            let m = ones_where(Cond::Mask(m));
            if c { m.ones_like() } else { m }
        }
        (a, b) => {
            let (a, b) = (ones_where(a), ones_where(b));
            let b = b.to_dtype(a.dtype());
            a.maximum(&b)
        }
    }
}

/// `where(c, a, b)`: `a` where the condition holds, else `b`.
pub fn select<'a>(
    c: impl Into<Cond<'a>>,
    a: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
) -> Tensor {
    let (a, b) = (a.into(), b.into());
    match c.into() {
        Cond::Mask(m) => {
            let like = match (a, b) {
                (Operand::Tensor(t), _) | (_, Operand::Tensor(t)) => t,
                _ => m,
            };
            let (a, b) = (a.tensor_like(like), b.tensor_like(like));
            let a = zero_as(a, &b);
            let b = zero_as(b, &a);
            // (a float mask is read as NumPy reads one: nonzero is true)
            Tensor::where_(m, &a, &b)
        }
        Cond::Bool(c) => {
            let like = match (a, b) {
                (Operand::Tensor(t), _) | (_, Operand::Tensor(t)) => t.clone(),
                _ => Tensor::scalar(0.0f64),
            };
            let chosen = if c { a } else { b };
            chosen.tensor_like(&like).into_owned()
        }
    }
}

/// The value itself: no derivative flows through it.
pub fn stop_gradient<'a>(x: impl Into<Operand<'a>>) -> Tensor {
    x.into().tensor().into_owned()
}

macro_rules! unary {
    ($($name:ident => $method:ident),* $(,)?) => {$(
        #[doc = concat!("`x.", stringify!($method), "()`.")]
        pub fn $name<'a>(x: impl Into<Operand<'a>>) -> Tensor {
            x.into().tensor().$method()
        }
    )*};
}
unary! {
    neg => neg, abs => abs, exp => exp, ln => ln, ln1p => log1p, exp_m1 => expm1,
    sin => sin, cos => cos, tan => tan, tanh => tanh, sqrt => sqrt, recip => recip,
    sigmoid => sigmoid, softplus => softplus, relu => relu, signum => sign, sum => sum, mean => mean,
    asin => asin, acos => acos, atan => atan, sinh => sinh, cosh => cosh, asinh => asinh,
    acosh => acosh, atanh => atanh, exp2 => exp2, log2 => log2, log10 => log10,
    cbrt => cbrt, floor => floor, ceil => ceil, round => round, trunc => trunc, erf => erf,
    max_all => max, min_all => min, t => t, ones_like => ones_like, flatten => flatten,
}

macro_rules! along_axis {
    ($($name:ident => $method:ident),* $(,)?) => {$(
        #[doc = concat!("`x.", stringify!($method), "(axis, keepdim)`.")]
        pub fn $name<'a>(x: impl Into<Operand<'a>>, axis: isize, keepdim: bool) -> Tensor {
            x.into().tensor().$method(axis, keepdim)
        }
    )*};
}
along_axis! {
    sum_axis => sum_axis, mean_axis => mean_axis, max_axis => max_axis,
    min_axis => min_axis, log_sum_exp_axis => logsumexp_axis,
}

/// `x.softmax(axis)`.
pub fn softmax<'a>(x: impl Into<Operand<'a>>, axis: isize) -> Tensor {
    x.into().tensor().softmax(axis)
}

/// `x.log_softmax(axis)`.
pub fn log_softmax<'a>(x: impl Into<Operand<'a>>, axis: isize) -> Tensor {
    x.into().tensor().log_softmax(axis)
}

/// `a.matmul(b)`.
pub fn matmul<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Tensor {
    a.into().tensor().matmul(&b.into().tensor())
}

/// `x.reshape(shape)`.
pub fn reshape<'a>(x: impl Into<Operand<'a>>, shape: &[usize]) -> Tensor {
    x.into().tensor().reshape(shape)
}

/// `x.unsqueeze(axis)`.
pub fn unsqueeze<'a>(x: impl Into<Operand<'a>>, axis: isize) -> Tensor {
    x.into().tensor().unsqueeze(axis)
}

/// `x.squeeze(axis)`.
pub fn squeeze<'a>(x: impl Into<Operand<'a>>, axis: isize) -> Tensor {
    x.into().tensor().squeeze(axis)
}

/// `x.broadcast_to(shape)`.
pub fn broadcast_to<'a>(x: impl Into<Operand<'a>>, shape: &[usize]) -> Tensor {
    x.into().tensor().broadcast_to(shape)
}

/// What a cotangent can be fitted to: a tensor (summed over the axes broadcasting added,
/// down to its shape) or a float field of a parameter struct (summed whole).
pub trait FitTarget: Sized {
    fn fit(ct: Operand<'_>, like: &Self) -> Self;
}

impl FitTarget for Tensor {
    fn fit(ct: Operand<'_>, like: &Self) -> Self {
        match ct {
            Operand::Tensor(t) => ferrax_runtime::unbroadcast(t, like.shape()),
            Operand::Scalar(x) => like.full_like(x),
        }
    }
}

impl FitTarget for f32 {
    fn fit(ct: Operand<'_>, _: &Self) -> Self {
        sum_to_scalar(ct)
    }
}

impl FitTarget for f64 {
    fn fit(ct: Operand<'_>, _: &Self) -> Self {
        sum_to_scalar(ct)
    }
}

/// A cotangent fitted to the shape of `like` (see [`FitTarget`]).
pub fn sum_to<'a, L: FitTarget>(ct: impl Into<Operand<'a>>, like: &L) -> L {
    L::fit(ct.into(), like)
}

/// Whether `name` is a `#[differentiable(skip)]` field of `parent`.
pub fn skipped<T: Differentiable>(parent: &T, name: &str) -> bool {
    parent.is_skipped_field(name)
}

/// The tangent of field `name` of a parameter struct: the field of the struct's tangent,
/// or a zero for a `#[differentiable(skip)]` field (a constant).
pub fn tangent_field<P: Differentiable, T: Differentiable>(parent: &P, name: &str, field: &T) -> T {
    if parent.is_skipped_field(name) {
        zero_like(field)
    } else {
        field.clone()
    }
}

/// A float that a cotangent can be summed into.
pub trait FromF64 {
    fn from_f64(x: f64) -> Self;
}
impl FromF64 for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}
impl FromF64 for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
}

/// A cotangent summed whole, for a float operand that was broadcast against a tensor.
pub fn sum_to_scalar<'a, T: FromF64>(ct: impl Into<Operand<'a>>) -> T {
    match ct.into() {
        Operand::Tensor(t) => T::from_f64(t.sum().to_dtype(ferrax_runtime::DType::F64).item()),
        Operand::Scalar(x) => T::from_f64(x),
    }
}

/// `x` broadcast to the shape of `like`.
pub fn broadcast_like<'a>(x: impl Into<Operand<'a>>, like: &Tensor) -> Tensor {
    match x.into() {
        Operand::Tensor(t) => t.broadcast_to(like.shape()),
        Operand::Scalar(v) => like.full_like(v),
    }
}

/// A reduction's cotangent broadcast back over `axis` to the shape of `like`.
pub fn unsum_axis<'a>(
    ct: impl Into<Operand<'a>>,
    like: &Tensor,
    axis: isize,
    keepdim: bool,
) -> Tensor {
    let ct = ct.into().tensor_like(like);
    let ct = if keepdim {
        ct.into_owned()
    } else {
        ct.unsqueeze(axis)
    };
    ct.broadcast_to(like.shape())
}

/// `x` reshaped to the shape of `like`.
pub fn reshape_like<'a>(x: impl Into<Operand<'a>>, like: &Tensor) -> Tensor {
    x.into().tensor().reshape(like.shape())
}

/// The number of elements, as a float.
pub fn numel(x: &Tensor) -> f64 {
    x.numel() as f64
}

/// The length of `axis` (negative: from the end), as a float.
pub fn axis_len(x: &Tensor, axis: isize) -> f64 {
    x.shape()[norm_axis(axis, x.ndim())] as f64
}

/// `a` and `b` as 2-D-or-more operands of a product (NumPy's promotion of vectors), and
/// the cotangent `ct` of `a.matmul(b)` with the axes vectors dropped put back.
fn promoted(a: &Tensor, b: &Tensor, ct: &Tensor) -> (Tensor, Tensor, Tensor) {
    let ap = if a.ndim() == 1 {
        a.unsqueeze(0)
    } else {
        a.clone()
    };
    let bp = if b.ndim() == 1 {
        b.unsqueeze(1)
    } else {
        b.clone()
    };
    let mut cp = ct.clone();
    if b.ndim() == 1 {
        cp = cp.unsqueeze(cp.ndim() as isize);
    }
    if a.ndim() == 1 {
        cp = cp.unsqueeze(cp.ndim() as isize - 1);
    }
    (ap, bp, cp)
}

/// The cotangent of `a` in `a.matmul(b)`: `ct @ bᵀ`, summed over broadcast batch axes.
pub fn matmul_tl<'a>(
    ct: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
    like_a: &Tensor,
) -> Tensor {
    let (ct, b) = (ct.into().tensor(), b.into().tensor());
    let (ap, bp, cp) = promoted(like_a, &b, &ct);
    let n = bp.ndim() as isize;
    let g = cp.matmul(&bp.transpose(n - 2, n - 1));
    ferrax_runtime::unbroadcast(&g, ap.shape()).reshape(like_a.shape())
}

/// The cotangent of `b` in `a.matmul(b)`: `aᵀ @ ct`, summed over broadcast batch axes.
pub fn matmul_tr<'a>(
    a: impl Into<Operand<'a>>,
    ct: impl Into<Operand<'a>>,
    like_b: &Tensor,
) -> Tensor {
    let (a, ct) = (a.into().tensor(), ct.into().tensor());
    let (ap, bp, cp) = promoted(&a, like_b, &ct);
    let n = ap.ndim() as isize;
    let g = ap.transpose(n - 2, n - 1).matmul(&cp);
    ferrax_runtime::unbroadcast(&g, bp.shape()).reshape(like_b.shape())
}

/// `x.conv(&w, spec)`.
pub fn conv<'a>(x: impl Into<Operand<'a>>, w: impl Into<Operand<'a>>, spec: &Conv) -> Tensor {
    x.into().tensor().conv(&w.into().tensor(), spec)
}

/// `y.conv_transpose(&w, spec, input)`.
pub fn conv_transpose<'a>(
    y: impl Into<Operand<'a>>,
    w: impl Into<Operand<'a>>,
    spec: &Conv,
    input: &[usize],
) -> Tensor {
    y.into()
        .tensor()
        .conv_transpose(&w.into().tensor(), spec, input)
}

/// `x.unfold_with(window, spec, fill)`: the patches, `fill` in the padding.
pub fn unfold<'a>(x: impl Into<Operand<'a>>, window: &[usize], spec: &Conv, fill: f64) -> Tensor {
    x.into().tensor().unfold_with(window, spec, fill)
}

/// The cotangent of `x` in `x.unfold(window, spec)`: the patches summed back.
pub fn fold<'a>(
    ct: impl Into<Operand<'a>>,
    like: &Tensor,
    window: &[usize],
    spec: &Conv,
) -> Tensor {
    let input = spatial("unfold", like.shape(), spec);
    ct.into().tensor().fold(input, window, spec)
}

/// The spatial sizes of a convolution's input `like` (its last `spec.rank()` axes).
pub(crate) fn spatial<'s>(op: &str, like: &'s [usize], spec: &Conv) -> &'s [usize] {
    let d = spec.rank();
    assert!(
        like.len() > d,
        "{op}: an input of shape {like:?} has no channel axis before its {d} spatial axes"
    );
    &like[like.len() - d..]
}

/// The cotangent of `x` in `x.conv(&w, spec)`: the transposed convolution of `ct`, summed
/// over batch axes `x` was broadcast along.
pub fn conv_tl<'a>(
    ct: impl Into<Operand<'a>>,
    w: impl Into<Operand<'a>>,
    like_x: &Tensor,
    spec: &Conv,
) -> Tensor {
    let (ct, w) = (ct.into().tensor(), w.into().tensor());
    let g = ct.conv_transpose(&w, spec, spatial("conv", like_x.shape(), spec));
    ferrax_runtime::unbroadcast(&g, like_x.shape())
}

/// The cotangent of `w` in `x.conv(&w, spec)`, summed over batch axes `w` was broadcast
/// along.
pub fn conv_tr<'a>(
    x: impl Into<Operand<'a>>,
    ct: impl Into<Operand<'a>>,
    like_w: &Tensor,
    spec: &Conv,
) -> Tensor {
    let (x, ct) = (x.into().tensor(), ct.into().tensor());
    x.conv_weight_grad(&ct, spec, like_w.shape())
}

/// `acc(target, &matmul_tr(a, ct, like_b))`: the gradient of `b` in `a.matmul(b)` added to
/// an adjoint. An outer product (`a` and `ct` vectors) or a product of matrices is added in
/// the adjoint's own buffer (`Tensor::add_outer_assign`, `Tensor::add_matmul_assign`): a
/// loop's steps accumulate into it without a product each.
pub fn acc_matmul_tr<'a>(
    target: &mut Tensor,
    a: impl Into<Operand<'a>>,
    ct: impl Into<Operand<'a>>,
    like_b: &Tensor,
) {
    acc_product(target, a.into(), ct.into(), like_b, Product::Tr);
}

/// `acc(target, &matmul_tl(ct, b, like_a))`: the gradient of `a` in `a.matmul(b)` added to
/// an adjoint (a weight on the left, `w.matmul(&x)`), in its own buffer where it can be, as
/// [`acc_matmul_tr`] does.
pub fn acc_matmul_tl<'a>(
    target: &mut Tensor,
    ct: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
    like_a: &Tensor,
) {
    acc_product(target, ct.into(), b.into(), like_a, Product::Tl);
}

/// `target += xᵀ c` (`matmul_tr(x, c, like)`) or `x cᵀ` (`matmul_tl(x, c, like)`), in the
/// target's buffer where [`added_in_place`] can.
fn acc_product(target: &mut Tensor, x: Operand<'_>, c: Operand<'_>, like: &Tensor, p: Product) {
    if let (Operand::Tensor(xt), Operand::Tensor(ct)) = (x, c)
        && added_in_place(target, xt, ct, 1, p)
    {
        return;
    }
    let g = match p {
        Product::Tr => matmul_tr(x, c, like),
        Product::Tl => matmul_tl(x, c, like),
    };
    acc(target, &g);
}

/// Which product of two matrices an accumulation adds: `xᵀ c` (the gradient of a matmul's
/// right operand, `matmul_tr`) or `x cᵀ` (its left one, `matmul_tl`). Of vectors, both are
/// the outer product `x ⊗ c`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Product {
    /// `xᵀ c`: the gradient of a matmul's right operand (`matmul_tr`).
    Tr,
    /// `x cᵀ`: the gradient of a matmul's left operand (`matmul_tl`).
    Tl,
}

/// The products that a loop adds to one adjoint (`target += matmul_tr(a, ct, like_b)` or
/// `target += matmul_tl(ct, b, like_a)` in a reverse sweep, `target` touched nowhere else in
/// the loop), kept as rows and summed after the loop in one product: `T` steps of
/// `[m, k]ᵀ [m, n]` (or of outer products, `m = 1`) become one `[T m, k]ᵀ [T m, n]`, which is
/// how the gradient of a weight shared by a recurrent network's steps is best computed.
/// Steps whose operands do not fit that form (a broadcast operand, a vector weight, mixed
/// dtypes or devices) are added at once, as [`acc_matmul_tr`] would.
///
/// ```
/// # use ferrax::{DType, Tensor, __private::t::{self, ProductSum}};
/// let (w, xs, cts) = (
///     Tensor::zeros(&[3, 2], DType::F64),
///     Tensor::from_vec((0..12).map(f64::from).collect(), &[4, 3]),
///     Tensor::from_vec((0..8).map(f64::from).collect(), &[4, 2]),
/// );
/// let (mut summed, mut stepwise) = (t::zero_like(&w), t::zero_like(&w));
/// let mut products = ProductSum::default();
/// for s in 0..4 {
///     let (x, ct) = (xs.slice(0, s, s + 1).squeeze(0), cts.slice(0, s, s + 1).squeeze(0));
///     products.add_tr(&mut summed, &x, &ct, &w);
///     t::acc_matmul_tr(&mut stepwise, &x, &ct, &w);
/// }
/// products.flush(&mut summed, &w);
/// assert_eq!(summed.to_vec::<f64>(), stepwise.to_vec::<f64>());
/// ```
#[derive(Default)]
pub struct ProductSum {
    a: Vec<Tensor>,
    ct: Vec<Tensor>,
}

impl ProductSum {
    /// Keeps `aᵀ ct` (`matmul_tr`) to add to `target` at [`ProductSum::flush`], or adds it now
    /// where it does not fit the rows kept.
    #[track_caller]
    pub fn add_tr<'a>(
        &mut self,
        target: &mut Tensor,
        a: impl Into<Operand<'a>>,
        ct: impl Into<Operand<'a>>,
        like_b: &Tensor,
    ) {
        let (a, ct) = (a.into(), ct.into());
        if let (Operand::Tensor(x), Operand::Tensor(c)) = (a, ct)
            && let Some((x, c)) = product_rows((x, 0), (c, 0), like_b.shape(), like_b)
        {
            self.a.push(x);
            self.ct.push(c);
            return;
        }
        acc_matmul_tr(target, a, ct, like_b);
    }

    /// Keeps `ct bᵀ` (`matmul_tl`, the gradient of a weight on the left) to add to `target` at
    /// [`ProductSum::flush`], as the rows of `(ct bᵀ)ᵀ`, or adds it now where it does not fit.
    #[track_caller]
    pub fn add_tl<'a>(
        &mut self,
        target: &mut Tensor,
        ct: impl Into<Operand<'a>>,
        b: impl Into<Operand<'a>>,
        like_a: &Tensor,
    ) {
        let (ct, b) = (ct.into(), b.into());
        if let (Operand::Tensor(c), Operand::Tensor(x)) = (ct, b)
            && let Some((c, x)) = product_rows(
                (&mt_past(c, 0), 0),
                (&mt_past(x, 0), 0),
                like_a.shape(),
                like_a,
            )
        {
            self.a.push(c);
            self.ct.push(x);
            return;
        }
        acc_matmul_tl(target, ct, b, like_a);
    }

    /// Adds the products kept to `target`, in one product.
    #[track_caller]
    pub fn flush(self, target: &mut Tensor, like: &Tensor) {
        if self.a.is_empty() {
            return;
        }
        let (a, ct) = (Tensor::concat(&self.a, 0), Tensor::concat(&self.ct, 0));
        acc_matmul_tr(target, &a, &ct, like);
    }
}

/// `x` and `c` of a product `xᵀ c` summed to a matrix of shape `like_ex` (`[k, n]`, the
/// dtype and device of `like`) as matrices of rows, `[r, k]` and `[r, n]`, each keeping its
/// first `lead` axes (a batch axis, 0 or 1 of them): where the rest of their shapes agree but
/// for the last axis, that is `k` for `x` and `n` for `c` (both nonzero), and their leading
/// axes, where both have them, agree too. `xᵀ c` of the results is the product summed over
/// all axes but the last.
pub(crate) fn product_rows(
    (x, lead_x): (&Tensor, usize),
    (c, lead_c): (&Tensor, usize),
    like_ex: &[usize],
    like: &Tensor,
) -> Option<(Tensor, Tensor)> {
    let [k, n] = *like_ex else { return None };
    let (xs, cs) = (x.shape(), c.shape());
    let fits = xs.len() > lead_x
        && cs.len() > lead_c
        && xs.len() - lead_x == cs.len() - lead_c
        && (lead_x != lead_c || xs[..lead_x] == cs[..lead_c])
        && xs[lead_x..xs.len() - 1] == cs[lead_c..cs.len() - 1]
        && xs[xs.len() - 1] == k
        && cs[cs.len() - 1] == n
        && k > 0
        && n > 0
        && x.dtype() == like.dtype()
        && c.dtype() == like.dtype()
        && x.device() == like.device()
        && c.device() == like.device();
    if !fits {
        return None;
    }
    let rows = |t: &Tensor, lead: usize| {
        let s = t.shape();
        let mut shape = s[..lead].to_vec();
        shape.push(s[lead..s.len() - 1].iter().product());
        shape.push(s[s.len() - 1]);
        t.reshape(&shape)
    };
    Some((rows(x, lead_x), rows(c, lead_c)))
}

/// `x` with its last two axes swapped (a vector, past `lead` leading axes, as it is): the
/// operands of `c xᵀ` as those of the `(c')ᵀ x'` that [`ProductSum`] sums.
pub(crate) fn mt_past(x: &Tensor, lead: usize) -> Tensor {
    if x.ndim() >= lead + 2 {
        x.transpose(-2, -1)
    } else {
        x.clone()
    }
}

/// `target += x ⊗ c` where `x` and `c` have `rank` axes (the leading ones shared), or, for
/// matrices, `target += xᵀ c` (`Product::Tr`) or `x cᵀ` (`Product::Tl`): whether it was
/// added, without a product where `target` holds its buffer alone. Nothing is added to a
/// lazy zero (the product is its value) or where the shapes or dtypes do not fit (a
/// broadcast operand: `matmul_tr` sums it).
pub(crate) fn added_in_place(
    target: &mut Tensor,
    x: &Tensor,
    c: &Tensor,
    rank: usize,
    product: Product,
) -> bool {
    if ferrax_runtime::differentiable::is_lazy_zero(target) || x.ndim() != c.ndim() {
        return false;
    }
    let added = match (x.ndim(), product) {
        (n, _) if n == rank => target.try_add_outer_assign(x, c),
        (2, Product::Tr) if rank == 1 => target.try_add_matmul_assign(&x.t(), c),
        (2, Product::Tl) if rank == 1 => target.try_add_matmul_assign(x, &c.t()),
        _ => return false,
    };
    added.is_ok()
}

/// A value an adjoint can start from zero for: a differentiable one, or a slice of
/// tensors (`&[Tensor]`, whose adjoint is a `Vec<Tensor>`).
pub trait ZeroLike {
    type Zero;
    fn zero_like(&self) -> Self::Zero;
}

impl<T: Differentiable> ZeroLike for T {
    type Zero = T;
    fn zero_like(&self) -> T {
        ferrax_runtime::differentiable::lazy_zeros_like(self)
    }
}

impl ZeroLike for [Tensor] {
    type Zero = Vec<Tensor>;
    fn zero_like(&self) -> Vec<Tensor> {
        self.iter().map(|t| t.zero_like()).collect()
    }
}

/// The zero of the same structure (an adjoint's start), holding no memory until a
/// contribution arrives.
pub fn zero_like<T: ZeroLike + ?Sized>(x: &T) -> T::Zero {
    x.zero_like()
}

/// `a += v` for adjoints of any differentiable type: a still-zero leaf takes `v` itself,
/// others add in place where unshared.
#[track_caller]
pub fn acc<T: Differentiable>(a: &mut T, v: &T) {
    ferrax_runtime::differentiable::accumulate(a, v);
}

/// The adder of a struct's gradient `G` into its adjoint `T`, chosen by method resolution
/// on the concrete types (autoref specialization):
/// `(&&acc_probe(&adjoint, &g)).adder()` finds [`AccSame::adder`] (`t::acc`) where `G` is
/// `T`, and [`AccUnit::adder`] (nothing to add) where `G` is `()`: the gradient a callee
/// gives for a parameter it does not differentiate (a struct left out of its `wrt`; see
/// macros/src/slots.rs). Any other pair is a compile error.
pub struct AccProbe<T, G>(std::marker::PhantomData<(*const T, *const G)>);

/// The probe of an adjoint and a gradient (see [`AccProbe`]).
pub fn acc_probe<T, G>(_adjoint: &T, _gradient: &G) -> AccProbe<T, G> {
    AccProbe(std::marker::PhantomData)
}

/// Adds a gradient of the adjoint's own type (see [`AccProbe`]).
pub trait AccSame<T> {
    /// [`acc`].
    fn adder(&self) -> fn(&mut T, &T);
}

impl<T: Differentiable> AccSame<T> for &AccProbe<T, T> {
    fn adder(&self) -> fn(&mut T, &T) {
        acc
    }
}

/// Adds nothing for a gradient `()` (see [`AccProbe`]).
pub trait AccUnit<T> {
    /// A function that does nothing.
    fn adder(&self) -> fn(&mut T, &()) {
        |_, _| {}
    }
}

impl<T> AccUnit<T> for AccProbe<T, ()> {}

/// The value a tensor-returning function holds before it `return`s: a lazy zero, which a
/// select takes in the other side's dtype and device (under `vmap`, the examples that have
/// not returned yet hold it beside those that have).
pub fn placeholder() -> Tensor {
    ferrax_runtime::differentiable::lazy_zero(&Tensor::scalar(0.0f32))
}

/// `z` in the dtype and device of `other` where `z` is a lazy zero of another dtype or
/// device (its value is the same zero), else `z` as it is.
fn zero_as<'a>(z: std::borrow::Cow<'a, Tensor>, other: &Tensor) -> std::borrow::Cow<'a, Tensor> {
    let differs = z.dtype() != other.dtype() || z.device() != other.device();
    if differs && ferrax_runtime::differentiable::is_lazy_zero(&z) {
        let zero = Tensor::full_on(z.shape(), 0.0, other.dtype(), &other.device());
        return std::borrow::Cow::Owned(zero);
    }
    z
}

/// The number of elements of a value: 1 for a float, the element count for a tensor.
pub fn numel_of<T: Differentiable>(x: &T) -> usize {
    ferrax_runtime::differentiable::leaves(x)
        .iter()
        .map(|l| match l {
            ferrax_runtime::differentiable::Leaf::Tensor(t) => t.numel(),
            _ => 1,
        })
        .sum()
}

/// `<a, b>`, the sum over leaves of the elementwise products (forward mode from a VJP).
pub fn inner<T: Differentiable>(a: &T, b: &T) -> f64 {
    a.inner(b)
}

/// A value shaped like `like` with every element `v` (the tangent of a one-element output).
pub fn tangent_like<T: Differentiable>(like: &T, v: f64) -> T {
    let mut out = like.clone();
    for leaf in ferrax_runtime::differentiable::leaves_mut(&mut out) {
        match leaf {
            ferrax_runtime::differentiable::LeafMut::F32(x) => *x = v as f32,
            ferrax_runtime::differentiable::LeafMut::F64(x) => *x = v,
            ferrax_runtime::differentiable::LeafMut::Tensor(t) => *t = t.full_like(v),
        }
    }
    out
}

/// `x.transpose(a, b)`.
pub fn transpose<'a>(x: impl Into<Operand<'a>>, a: isize, b: isize) -> Tensor {
    x.into().tensor().transpose(a, b)
}

/// `x.permute(axes)`.
pub fn permute<'a>(x: impl Into<Operand<'a>>, axes: &[isize]) -> Tensor {
    x.into().tensor().permute(axes)
}

/// The cotangent of `like.permute(axes)` permuted back.
pub fn unpermute<'a>(ct: impl Into<Operand<'a>>, axes: &[isize], like: &Tensor) -> Tensor {
    let mut inverse = vec![0isize; axes.len()];
    for (k, &a) in axes.iter().enumerate() {
        inverse[norm_axis(a, like.ndim())] = k as isize;
    }
    ct.into().tensor().permute(&inverse)
}

/// `x.slice(axis, start, end)`.
pub fn slice<'a>(x: impl Into<Operand<'a>>, axis: isize, start: usize, end: usize) -> Tensor {
    x.into().tensor().slice(axis, start, end)
}

/// The cotangent of `like.slice(axis, start, end)`: `ct` in place, zeros elsewhere.
pub fn unslice<'a>(
    ct: impl Into<Operand<'a>>,
    like: &Tensor,
    axis: isize,
    start: usize,
    end: usize,
) -> Tensor {
    let ct = ct.into().tensor_like(like).into_owned();
    let len = like.shape()[norm_axis(axis, like.ndim())];
    let zero = ferrax_runtime::differentiable::lazy_zero(like);
    let zeros = |k: usize| zero.slice(axis, 0, k);
    let (before, after) = (zeros(start), zeros(len - end.min(len)));
    Tensor::concat(&[&before, &ct, &after], axis)
}

/// `x.index_select(axis, indices)`.
pub fn index_select<'a>(x: impl Into<Operand<'a>>, axis: isize, indices: &Tensor) -> Tensor {
    x.into().tensor().index_select(axis, indices)
}

/// `x.segment_sum(ids, num_segments)`.
#[track_caller]
pub fn segment_sum<'a>(x: impl Into<Operand<'a>>, ids: &Tensor, num_segments: usize) -> Tensor {
    x.into().tensor().segment_sum(ids, num_segments)
}

/// `x.cumsum(axis)`, or `x.cumsum_rev(axis)` with `reverse`.
pub fn cum_sum<'a>(x: impl Into<Operand<'a>>, axis: isize, reverse: bool) -> Tensor {
    let x = x.into().tensor();
    if reverse {
        x.cumsum_rev(axis)
    } else {
        x.cumsum(axis)
    }
}

/// `x.roll(shift, axis)`.
pub fn roll<'a>(x: impl Into<Operand<'a>>, shift: isize, axis: isize) -> Tensor {
    x.into().tensor().roll(shift, axis)
}

/// `x.shift(steps, axis)`.
pub fn shift<'a>(x: impl Into<Operand<'a>>, steps: isize, axis: isize) -> Tensor {
    x.into().tensor().shift(steps, axis)
}

/// `x.repeat(n, axis)`.
pub fn repeat<'a>(x: impl Into<Operand<'a>>, n: usize, axis: isize) -> Tensor {
    x.into().tensor().repeat(n, axis)
}

/// The transpose of [`repeat`]: each run of `n` along `axis` summed, back to the length
/// of `like`'s axis.
pub fn repeat_t<'a>(
    ct: impl Into<Operand<'a>>,
    n: usize,
    axis: isize,
    like: impl Into<Operand<'a>>,
) -> Tensor {
    let like = like.into().tensor();
    let ax = norm_axis(axis, like.ndim());
    copies_summed(&ct.into().tensor(), n, ax, like.shape()[ax], false)
}

/// `x.tile(n, axis)`.
pub fn tile<'a>(x: impl Into<Operand<'a>>, n: usize, axis: isize) -> Tensor {
    x.into().tensor().tile(n, axis)
}

/// The transpose of [`tile`]: the `n` copies of the axis summed, back to the length of
/// `like`'s axis.
pub fn tile_t<'a>(
    ct: impl Into<Operand<'a>>,
    n: usize,
    axis: isize,
    like: impl Into<Operand<'a>>,
) -> Tensor {
    let like = like.into().tensor();
    let ax = norm_axis(axis, like.ndim());
    copies_summed(&ct.into().tensor(), n, ax, like.shape()[ax], true)
}

/// `axis` (negative: from the end) among `rank` axes.
fn norm_axis(axis: isize, rank: usize) -> usize {
    (if axis < 0 { axis + rank as isize } else { axis }) as usize
}

/// `ct` of `n` copies along axis `ax` (of each element, or of the `whole` axis) of length
/// `m` summed back: the axis split in two and the copies' part summed (zeros for no copies).
pub(crate) fn copies_summed(ct: &Tensor, n: usize, ax: usize, m: usize, whole: bool) -> Tensor {
    let mut split = ct.shape().to_vec();
    split[ax] = m;
    let copies = if whole { ax } else { ax + 1 };
    split.insert(copies, n);
    ct.reshape(&split).sum_axis(copies as isize, false)
}

/// `x.flip(axis)`.
pub fn flip<'a>(x: impl Into<Operand<'a>>, axis: isize) -> Tensor {
    x.into().tensor().flip(axis)
}

/// `x.linear_recurrence(decay, axis)`.
pub fn lin_rec<'a>(
    x: impl Into<Operand<'a>>,
    decay: impl Into<Operand<'a>>,
    axis: isize,
) -> Tensor {
    let decay = decay.into();
    x.into().tensor().linear_recurrence(&decay.tensor(), axis)
}

/// `x.linear_recurrence_rev(decay, axis)`.
pub fn lin_rec_rev<'a>(
    x: impl Into<Operand<'a>>,
    decay: impl Into<Operand<'a>>,
    axis: isize,
) -> Tensor {
    let decay = decay.into();
    x.into()
        .tensor()
        .linear_recurrence_rev(&decay.tensor(), axis)
}

/// `a.pinv()`.
pub fn pinv<'a>(a: impl Into<Operand<'a>>) -> Tensor {
    a.into().tensor().pinv()
}

/// `a.expm()`.
pub fn expm<'a>(a: impl Into<Operand<'a>>) -> Tensor {
    a.into().tensor().expm()
}

/// `a.expm_frechet(e)`.
pub fn expm_frechet<'a>(a: impl Into<Operand<'a>>, e: impl Into<Operand<'a>>) -> Tensor {
    let e = e.into();
    a.into().tensor().expm_frechet(&e.tensor())
}

/// `[[a, e], [0, a]]` of the matrices in the last two axes; a number for either stands
/// for zeros (a derivative's missing part).
pub fn block_upper<'a>(a: impl Into<Operand<'a>>, e: impl Into<Operand<'a>>) -> Tensor {
    let (a, e) = match (a.into(), e.into()) {
        (Operand::Scalar(_), Operand::Tensor(e)) => (e.zeros_like(), e.clone()),
        (Operand::Tensor(a), Operand::Scalar(_)) => (a.clone(), a.zeros_like()),
        (a, e) => (a.tensor().into_owned(), e.tensor().into_owned()),
    };
    let top = Tensor::concat(&[&a, &e], -1);
    let bottom = Tensor::concat(&[&a.zeros_like(), &a], -1);
    Tensor::concat(&[top, bottom], -2)
}

/// Quadrant `k` (0 upper left, 1 upper right, 2 lower left, 3 lower right) of the
/// matrices in the last two axes.
pub fn quadrant<'a>(x: impl Into<Operand<'a>>, k: usize) -> Tensor {
    let x = x.into().tensor();
    let n = x.shape()[x.ndim() - 1] / 2;
    let (r, c) = (k / 2, k % 2);
    x.slice(-2, r * n, (r + 1) * n)
        .slice(-1, c * n, (c + 1) * n)
}

/// `x` as quadrant `k` of matrices of zeros twice its size (the transpose of
/// [`quadrant`]).
pub fn quadrant_t<'a>(x: impl Into<Operand<'a>>, k: usize) -> Tensor {
    let x = x.into().tensor();
    let n = x.shape()[x.ndim() - 1];
    let (r, c) = (k / 2, k % 2);
    let mut pads = vec![(0, 0); x.ndim()];
    pads[x.ndim() - 2] = (r * n, (1 - r) * n);
    pads[x.ndim() - 1] = (c * n, (1 - c) * n);
    x.pad(&pads)
}

/// `x.pad(pads)`.
pub fn pad<'a>(x: impl Into<Operand<'a>>, pads: &[(usize, usize)]) -> Tensor {
    x.into().tensor().pad(pads)
}

/// `x.unpad(pads)`.
pub fn unpad<'a>(x: impl Into<Operand<'a>>, pads: &[(usize, usize)]) -> Tensor {
    x.into().tensor().unpad(pads)
}

/// `x.pad_with(pads, *mode)`.
pub fn pad_with<'a>(x: impl Into<Operand<'a>>, pads: &[(usize, usize)], mode: &PadMode) -> Tensor {
    x.into().tensor().pad_with(pads, *mode)
}

/// `x.pad_with_transpose(pads, *mode)`.
pub fn pad_with_transpose<'a>(
    x: impl Into<Operand<'a>>,
    pads: &[(usize, usize)],
    mode: &PadMode,
) -> Tensor {
    x.into().tensor().pad_with_transpose(pads, *mode)
}

/// The cotangent of `like.index_select(axis, indices)`: each slice of `ct` added at its
/// index (repeated indices sum), into zeros of `like`'s shape.
pub fn index_add<'a>(
    ct: impl Into<Operand<'a>>,
    like: &Tensor,
    axis: isize,
    indices: &Tensor,
) -> Tensor {
    into_zeros(ct, like, |z, ct| z.index_add(axis, indices, ct))
}

/// `ct` (a tensor like `like`) added by `add` into zeros of `like`'s shape, dtype and
/// device: one zero broadcast, which the scatter fills its output with rather than copying.
fn into_zeros<'a>(
    ct: impl Into<Operand<'a>>,
    like: &Tensor,
    add: impl FnOnce(&Tensor, &Tensor) -> Tensor,
) -> Tensor {
    let ct = ct.into().tensor_like(like).into_owned();
    add(&like.scalar_like(0.0).broadcast_to(like.shape()), &ct)
}

/// `x.take_along_axis(axis, indices)`.
pub fn take_along<'a>(x: impl Into<Operand<'a>>, axis: isize, indices: &Tensor) -> Tensor {
    x.into().tensor().take_along_axis(axis, indices)
}

/// The cotangent of `like.take_along_axis(axis, indices)`: `ct` added at its indices into
/// zeros of `like`'s shape.
pub fn take_along_t<'a>(
    ct: impl Into<Operand<'a>>,
    like: &Tensor,
    axis: isize,
    indices: &Tensor,
) -> Tensor {
    into_zeros(ct, like, |z, ct| z.scatter_add(axis, indices, ct))
}

/// `x.take_along_axis_or(axis, indices, fill)`.
pub fn take_along_or<'a>(
    x: impl Into<Operand<'a>>,
    axis: isize,
    indices: &Tensor,
    fill: f64,
) -> Tensor {
    x.into().tensor().take_along_axis_or(axis, indices, fill)
}

/// The cotangent of `like.take_along_axis_or(axis, indices, _)`: `ct` added at its indices
/// in range into zeros of `like`'s shape (the others read the fill, a constant).
pub fn take_along_or_t<'a>(
    ct: impl Into<Operand<'a>>,
    like: &Tensor,
    axis: isize,
    indices: &Tensor,
) -> Tensor {
    into_zeros(ct, like, |z, ct| z.scatter_add_dropping(axis, indices, ct))
}

/// `x.segment_argmax(ids, num_segments)`, or `segment_argmin` unless `largest`.
#[track_caller]
pub fn segment_arg<'a>(
    x: impl Into<Operand<'a>>,
    ids: &Tensor,
    num_segments: usize,
    largest: bool,
) -> Tensor {
    let x = x.into().tensor();
    if largest {
        x.segment_argmax(ids, num_segments)
    } else {
        x.segment_argmin(ids, num_segments)
    }
}

/// `x.index_add(axis, indices, src)`.
#[track_caller]
pub fn index_add_to<'a>(
    x: impl Into<Operand<'a>>,
    axis: isize,
    indices: &Tensor,
    src: impl Into<Operand<'a>>,
) -> Tensor {
    let x = x.into().tensor();
    x.index_add(axis, indices, &src.into().tensor_like(&x))
}

/// `x.scatter_add(axis, indices, src)`.
#[track_caller]
pub fn scatter_add_to<'a>(
    x: impl Into<Operand<'a>>,
    axis: isize,
    indices: &Tensor,
    src: impl Into<Operand<'a>>,
) -> Tensor {
    let x = x.into().tensor();
    x.scatter_add(axis, indices, &src.into().tensor_like(&x))
}

/// `Tensor::concat(parts, axis)`.
pub fn concat(axis: isize, parts: &[&Tensor]) -> Tensor {
    Tensor::concat(parts, axis)
}

/// `Tensor::stack(parts, axis)`.
pub fn stack(axis: isize, parts: &[&Tensor]) -> Tensor {
    Tensor::stack(parts, axis)
}

/// `Tensor::einsum(spec, parts)`.
#[track_caller]
pub fn einsum(spec: &str, parts: &[&Tensor]) -> Tensor {
    Tensor::einsum(spec, parts)
}

/// The cotangent of operand `k` of `Tensor::einsum(spec, parts)` (`parts[k]` read for its
/// shape only).
#[track_caller]
pub fn einsum_t<'a>(spec: &str, k: usize, ct: impl Into<Operand<'a>>, parts: &[&Tensor]) -> Tensor {
    let ct = ct.into().tensor_like(parts[k]);
    Tensor::einsum_transpose(spec, k, &ct, parts)
}

/// Part `k` of the cotangent of `Tensor::concat(parts, axis)`.
pub fn concat_part<'a>(
    ct: impl Into<Operand<'a>>,
    axis: isize,
    k: usize,
    parts: &[&Tensor],
) -> Tensor {
    let a = norm_axis(axis, parts[k].ndim());
    let start: usize = parts[..k].iter().map(|p| p.shape()[a]).sum();
    ct.into()
        .tensor()
        .slice(axis, start, start + parts[k].shape()[a])
}

/// Part `k` of the cotangent of `Tensor::stack(parts, axis)`.
pub fn stack_part<'a>(
    ct: impl Into<Operand<'a>>,
    axis: isize,
    k: usize,
    parts: &[&Tensor],
) -> Tensor {
    let a = norm_axis(axis, parts[k].ndim() + 1) as isize;
    ct.into().tensor().slice(a, k, k + 1).squeeze(a)
}

/// `Tensor::concat(&parts, axis)` of a `Vec` of tensors.
#[track_caller]
pub fn concat_seq(axis: isize, parts: &[Tensor]) -> Tensor {
    Tensor::concat(parts, axis)
}

/// `Tensor::stack(&parts, axis)` of a `Vec` of tensors.
#[track_caller]
pub fn stack_seq(axis: isize, parts: &[Tensor]) -> Tensor {
    Tensor::stack(parts, axis)
}

/// The cotangent of [`concat_seq`] split back into one cotangent per part.
pub fn unconcat_seq<'a>(ct: impl Into<Operand<'a>>, axis: isize, parts: &[Tensor]) -> Vec<Tensor> {
    split_seq(&ct.into().tensor(), axis, parts, concat_part)
}

/// The cotangent of [`stack_seq`] split back into one cotangent per part.
pub fn unstack_seq<'a>(ct: impl Into<Operand<'a>>, axis: isize, parts: &[Tensor]) -> Vec<Tensor> {
    split_seq(&ct.into().tensor(), axis, parts, stack_part)
}

/// `part(ct, axis, k, parts)` for every element `k` of `parts`.
fn split_seq<'c>(
    ct: &'c Tensor,
    axis: isize,
    parts: &[Tensor],
    part: fn(&'c Tensor, isize, usize, &[&Tensor]) -> Tensor,
) -> Vec<Tensor> {
    let refs: Vec<&Tensor> = parts.iter().collect();
    (0..parts.len()).map(|k| part(ct, axis, k, &refs)).collect()
}

/// An undo log of a `Vec` of tensors (the reverse sweep's way back to the `Vec` an
/// iteration started from): an overwritten element with its index, or `None` for a push.
type TensorLog = Vec<(usize, Option<Tensor>)>;

/// Logs the element `arr[i]` is about to lose.
pub fn log_write(log: &mut TensorLog, arr: &[Tensor], i: usize) {
    log.push((i, Some(arr[i].clone())));
}

/// Logs a push onto `arr`.
pub fn log_push(log: &mut TensorLog, _arr: &[Tensor]) {
    log.push((usize::MAX, None));
}

/// Undoes the last logged write.
pub fn undo_one(log: &mut TensorLog, arr: &mut Vec<Tensor>) {
    match log.pop() {
        Some((_, None)) => {
            arr.pop();
        }
        Some((i, Some(v))) => arr[i] = v,
        None => {}
    }
}

/// Undoes logged writes until `log.len() == mark`.
pub fn undo_to(log: &mut TensorLog, arr: &mut Vec<Tensor>, mark: usize) {
    while log.len() > mark {
        undo_one(log, arr);
    }
}

/// The seed of `f_grad` / `f_value_and_grad`: a one, shaped like the one-element result.
/// Panics for a larger result: a gradient is of a scalar (use `f_vjp` with a cotangent).
#[track_caller]
pub fn grad_seed(out: &Tensor) -> Tensor {
    assert!(
        out.numel() == 1,
        "a gradient needs a function with a one-element result, this one has shape {:?}: \
         reduce it (`.sum()`, `.mean()`) or call `_vjp` with a cotangent",
        out.shape()
    );
    out.ones_like()
}

// ----- linear algebra -----

/// The value, or a panic with the error named after `op` (the user's call that the
/// helper is part of).
#[track_caller]
pub(crate) fn as_op<T>(r: ferrax_runtime::Result<T>, op: &'static str) -> T {
    r.unwrap_or_else(|e| panic!("{}", e.for_op(op)))
}

/// `a.lu_factor()` (for `a.solve(b)`: errors name `solve`).
#[track_caller]
pub fn lu_factor<'a>(a: impl Into<Operand<'a>>) -> Tensor {
    as_op(a.into().tensor().try_lu_factor(), "solve")
}

/// `log |det a|` from `a`'s packed LU `factors` (`a` is read by the derivative rule only).
#[track_caller]
pub fn lu_log_abs_det<'a>(factors: impl Into<Operand<'a>>, _a: impl Into<Operand<'a>>) -> Tensor {
    as_op(factors.into().tensor().try_lu_logabsdet(), "logabsdet")
}

/// The sign of `det a` from `a`'s packed LU `factors` (for `a.det()`).
#[track_caller]
pub fn lu_sign<'a>(factors: impl Into<Operand<'a>>) -> Tensor {
    as_op(factors.into().tensor().try_lu_sign(), "det")
}

/// The identity matrix of the size of `a`'s square matrices, on its device (for
/// `a.inv()`).
pub fn eye_like<'a>(a: impl Into<Operand<'a>>) -> Tensor {
    let a = a.into().tensor();
    let n = a.shape().last().copied().unwrap_or(0);
    as_op(Tensor::eye(n, a.dtype()).try_to_device(&a.device()), "inv")
}

/// `x` with `a x = b` (`aᵀ x = b` with `transpose`) from `a`'s packed LU `factors` (`a` is
/// read by the derivative rules only).
#[track_caller]
pub fn lu_solve<'a>(
    factors: impl Into<Operand<'a>>,
    _a: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
    transpose: bool,
) -> Tensor {
    let factors = factors.into().tensor();
    as_op(factors.try_lu_solve(&b.into().tensor(), transpose), "solve")
}

/// `a.solve_triangular(b, lower)`.
pub fn solve_triangular<'a>(
    a: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
    lower: bool,
) -> Tensor {
    a.into()
        .tensor()
        .solve_triangular(&b.into().tensor(), lower)
}

/// `a.cholesky()`.
pub fn cholesky<'a>(a: impl Into<Operand<'a>>) -> Tensor {
    a.into().tensor().cholesky()
}

/// `a.eigh_packed()` (for `let (w, v) = a.eigh();` and `a.eigvalsh()`).
#[track_caller]
pub fn eigh_factor<'a>(a: impl Into<Operand<'a>>) -> Tensor {
    as_op(a.into().tensor().try_eigh_packed(), "eigh")
}

/// The packed eigendecomposition again (`a` is read by the derivative rule only).
pub fn eigh<'a>(packed: impl Into<Operand<'a>>, _a: impl Into<Operand<'a>>) -> Tensor {
    packed.into().tensor().into_owned()
}

/// The eigenvalues out of a packed eigendecomposition (`a` is read by the derivative rule
/// only).
pub fn eigvalsh<'a>(packed: impl Into<Operand<'a>>, _a: impl Into<Operand<'a>>) -> Tensor {
    eigh_values(packed)
}

/// The eigenvalues `[.., n]` out of a packed eigendecomposition `[.., n + 1, n]`.
pub fn eigh_values<'a>(packed: impl Into<Operand<'a>>) -> Tensor {
    packed::eigh_parts(&packed.into().tensor()).0
}

/// The eigenvectors `[.., n, n]` (as columns) out of a packed eigendecomposition.
pub fn eigh_vectors<'a>(packed: impl Into<Operand<'a>>) -> Tensor {
    packed::eigh_parts(&packed.into().tensor()).1
}

/// `vectors` and `values` packed as `Tensor::eigh_packed` packs them.
pub fn eigh_pack<'a>(vectors: impl Into<Operand<'a>>, values: impl Into<Operand<'a>>) -> Tensor {
    packed::eigh(&vectors.into().tensor(), &values.into().tensor())
}

/// `a.qr_packed()` (for `let (q, r) = a.qr();`).
#[track_caller]
pub fn qr_factor<'a>(a: impl Into<Operand<'a>>) -> Tensor {
    as_op(a.into().tensor().try_qr_packed(), "qr")
}

/// The packed QR decomposition again (`a` is read by the derivative rule only).
pub fn qr<'a>(packed: impl Into<Operand<'a>>, _a: impl Into<Operand<'a>>) -> Tensor {
    packed.into().tensor().into_owned()
}

/// `q` `[.., m, k]` out of a packed QR decomposition.
pub fn qr_q<'a>(packed: impl Into<Operand<'a>>) -> Tensor {
    packed::qr_parts(&packed.into().tensor()).0
}

/// `r` `[.., k, n]` out of a packed QR decomposition.
pub fn qr_r<'a>(packed: impl Into<Operand<'a>>) -> Tensor {
    packed::qr_parts(&packed.into().tensor()).1
}

/// `r` out of a packed QR decomposition, for QR's derivative: `m >= n` is checked.
#[track_caller]
pub fn qr_r_square<'a>(packed: impl Into<Operand<'a>>) -> Tensor {
    let (q, r) = packed::qr_parts(&packed.into().tensor());
    let (m, n) = (q.shape()[q.ndim() - 2], r.shape()[r.ndim() - 1]);
    assert!(
        m >= n,
        "qr: its derivative is defined for matrices [.., m, n] with m >= n (as in JAX), got m = {m}, n = {n}"
    );
    r
}

/// `q` and `r` packed as `Tensor::qr_packed` packs them.
pub fn qr_pack<'a>(q: impl Into<Operand<'a>>, r: impl Into<Operand<'a>>) -> Tensor {
    packed::qr(&q.into().tensor(), &r.into().tensor())
}

/// `x r⁻¹` (`x r⁻ᵀ` with `transpose`) for square upper triangular `r` (its upper triangle
/// read): the right-hand solve of QR's derivative.
pub fn r_solve<'a>(
    x: impl Into<Operand<'a>>,
    r: impl Into<Operand<'a>>,
    transpose: bool,
) -> Tensor {
    let (x, r) = (x.into().tensor(), r.into().tensor());
    // y r = x  <=>  rᵀ yᵀ = xᵀ;  y rᵀ = x  <=>  r yᵀ = xᵀ
    let (m, lower) = if transpose {
        (r.clone().into_owned(), false)
    } else {
        (r.mt(), true)
    };
    m.solve_triangular(&x.mt(), lower).mt()
}

/// `a.svd_packed()` (for `let (u, s, vt) = a.svd();` and `a.svdvals()`).
#[track_caller]
pub fn svd_factor<'a>(a: impl Into<Operand<'a>>) -> Tensor {
    as_op(a.into().tensor().try_svd_packed(), "svd")
}

/// The packed singular value decomposition again (`a` is read by the derivative rule
/// only).
pub fn svd<'a>(packed: impl Into<Operand<'a>>, _a: impl Into<Operand<'a>>) -> Tensor {
    packed.into().tensor().into_owned()
}

/// The singular values out of a packed decomposition (`a` is read by the derivative rule
/// only).
pub fn svdvals<'a>(packed: impl Into<Operand<'a>>, _a: impl Into<Operand<'a>>) -> Tensor {
    svd_s(packed)
}

/// `u` `[.., m, k]` out of a packed singular value decomposition.
pub fn svd_u<'a>(packed: impl Into<Operand<'a>>) -> Tensor {
    packed::svd_parts(&packed.into().tensor()).0
}

/// The singular values `[.., k]` out of a packed singular value decomposition.
pub fn svd_s<'a>(packed: impl Into<Operand<'a>>) -> Tensor {
    packed::svd_parts(&packed.into().tensor()).1
}

/// `vt` `[.., k, n]` out of a packed singular value decomposition.
pub fn svd_vt<'a>(packed: impl Into<Operand<'a>>) -> Tensor {
    packed::svd_parts(&packed.into().tensor()).2
}

/// `u`, `s` and `vt` packed as `Tensor::svd_packed` packs them.
pub fn svd_pack<'a>(
    u: impl Into<Operand<'a>>,
    s: impl Into<Operand<'a>>,
    vt: impl Into<Operand<'a>>,
) -> Tensor {
    let (u, s, vt) = (u.into().tensor(), s.into().tensor(), vt.into().tensor());
    packed::svd(&u, &s, &vt)
}

/// `x.tril(k)`.
pub fn tril<'a>(x: impl Into<Operand<'a>>, k: isize) -> Tensor {
    x.into().tensor().tril(k)
}

/// `x.triu(k)`.
pub fn triu<'a>(x: impl Into<Operand<'a>>, k: isize) -> Tensor {
    x.into().tensor().triu(k)
}

/// The lower triangle of `x` (diagonal included) if `lower`, else the upper one: the part
/// of a matrix a triangular solve reads.
pub fn triangle<'a>(x: impl Into<Operand<'a>>, lower: bool) -> Tensor {
    let x = x.into().tensor();
    if lower { x.tril(0) } else { x.triu(0) }
}

/// `x.diagonal()`.
pub fn diagonal<'a>(x: impl Into<Operand<'a>>) -> Tensor {
    x.into().tensor().diagonal()
}

/// The cotangent of `like.diagonal()`: `ct` on the diagonals of matrices shaped like `like`.
pub fn undiagonal<'a>(ct: impl Into<Operand<'a>>, like: &Tensor) -> Tensor {
    let s = like.shape();
    let (rows, cols) = (s[s.len() - 2], s[s.len() - 1]);
    let ct = ct.into().tensor_like(like).into_owned();
    // a cotangent without batch axes (a shared `ct` beside a batched `like`) broadcasts
    let mut lead = s[..s.len() - 2].to_vec();
    lead.push(rows.min(cols));
    ct.broadcast_to(&lead).diag_embed(rows, cols)
}

/// `x.mt()`.
pub fn mt<'a>(x: impl Into<Operand<'a>>) -> Tensor {
    x.into().tensor().mt()
}
