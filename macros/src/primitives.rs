//! The primitive table: the one place that knows a primitive.
//!
//! Each row ([`row`]) gives a primitive's surface syntax (how it is parsed and emitted),
//! the kind of its result, its JVP rule written as IR over other primitives, and, for
//! the linear primitives only, its transpose rule. Reverse mode is linearize-then-transpose
//! (JAX's design): the JVP rule is instantiated on symbolic tangents, the primal
//! coefficients it computes go into the reverse sweep, and its linear part is transposed.
//! So forward and reverse mode cannot disagree, and because rules are IR, derivatives can
//! be differentiated again. Derivatives at kinks follow JAX (`abs'(0) = 1`, `max` splits
//! ties evenly, `clamp` passes the gradient only strictly inside its bounds).
//!
//! Adding a primitive (say a Tensor `matmul`) means adding a variant and one row.

use crate::ir::{Atom, Func, Kind, Prec, Rhs, Stmt, Var};
use crate::shapes::{Shape, Shapes, derive};
use std::collections::{HashMap, HashSet};

/// A primitive operation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Prim {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Neg,
    Not,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    /// `if c { a } else { b }` on values.
    Select,
    ToF32,
    ToF64,
    /// `stop_gradient(x)`.
    StopGradient,
    /// An integer converted to the float type of its first argument (`n as F`).
    IntAsFloat,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Atan2,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    Exp,
    Exp2,
    ExpM1,
    Ln,
    Log,
    Log2,
    Log10,
    Ln1p,
    Sqrt,
    Cbrt,
    Powi,
    Powf,
    Abs,
    Signum,
    Hypot,
    Max,
    Min,
    MulAdd,
    Recip,
    Clamp,
    Floor,
    Ceil,
    Round,
    Trunc,
    // ---- tensor primitives (a tensor receiver; see `from_tensor_method`) ----
    Sigmoid,
    Softplus,
    /// `a.logaddexp(&b)`: `ln(e^a + e^b)` (its derivative `sigmoid(a - b)`, 1/2 at ties).
    LogAddExp,
    Relu,
    /// `x.erf()` on tensors: the error function.
    Erf,
    /// `x.sum()`: all axes, a 0-d tensor.
    Sum,
    Mean,
    /// `x.max()` / `x.min()` over all axes.
    MaxAll,
    MinAll,
    /// `x.sum_axis(axis, keepdim)` and the like.
    SumAxis,
    MeanAxis,
    MaxAxis,
    MinAxis,
    LogSumExpAxis,
    /// `x.softmax(axis)` / `x.log_softmax(axis)`.
    Softmax,
    LogSoftmax,
    /// `a.matmul(&b)` in all its forms.
    Matmul,
    /// `Tensor::einsum(spec, &[a, b, ..])`: arguments `spec, a, b, ..` (linear in each
    /// operand).
    Einsum,
    /// `x.conv(&w, &spec)`: N-d convolution (cross-correlation) `(x, w, spec)`, bilinear.
    Conv,
    /// Cotangent of `x` in `x.conv(&w, &spec)`, a transposed convolution: `(ct, w, like_x,
    /// spec)`.
    ConvTl,
    /// Cotangent of `w` in `x.conv(&w, &spec)`: `(x, ct, like_w, spec)`.
    ConvTr,
    /// `x.unfold(&window, &spec)`: the patches `[batch.., C, *out, K]` of `(x, window,
    /// spec, fill)`, `fill` read in the padding (`x.max_pool(..)` is lowered to a max over
    /// the last axis of patches filled with -inf, `x.avg_pool(..)` to a mean). Linear in
    /// `x` where `fill` is 0 (its tangent's and cotangent's).
    Unfold,
    /// The adjoint of [`Prim::Unfold`]: `(ct, like_x, window, spec)`, the patches summed
    /// back into `like_x`'s shape.
    Fold,
    /// `y.conv_transpose(&w, &spec, &input)`: the transposed convolution (the adjoint of
    /// `x.conv(&w, &spec)` in `x`, for inputs of spatial sizes `input`), bilinear.
    ConvTranspose,
    /// `x.reshape(&shape)`, `x.t()`, `x.unsqueeze(axis)`, `x.squeeze(axis)`, `x.broadcast_to(&shape)`.
    Reshape,
    /// `x.flatten()`.
    Flatten,
    T,
    Unsqueeze,
    Squeeze,
    BroadcastTo,
    /// `x.transpose(a, b)`, `x.permute(&axes)`.
    Transpose,
    Permute,
    /// `x.slice(axis, start, end)`.
    Slice,
    /// `x.index_select(axis, &indices)`.
    IndexSelect,
    /// `x.segment_sum(&ids, num_segments)`: `(x, ids, num_segments)`, slices summed by
    /// segment (linear; its transpose gathers by the ids).
    SegmentSum,
    /// The positions of each segment's extremum: `(x, ids, num_segments, largest)`, i32
    /// indices along axis 0 (no derivative; `segment_max` / `segment_min` gather at them).
    SegmentArg,
    /// `x.index_add(axis, &indices, &src)`: `(x, axis, indices, src)`, `src`'s slices added
    /// into a copy of `x` at `indices` (linear in `x` and `src` together).
    IndexAddTo,
    /// `x.scatter_add(axis, &indices, &src)`: `(x, axis, indices, src)`, `src`'s elements
    /// added into a copy of `x` along `axis` at `indices` (linear in `x` and `src`).
    ScatterAddTo,
    /// `x.cumsum(axis)` / `x.cumsum_rev(axis)`: `(x, axis, reverse)`, the cumulative sum
    /// along `axis` (from its end with `reverse`); linear, its transpose the other one.
    CumSum,
    /// `x.roll(shift, axis)`: the elements of `axis` rotated by `shift` (linear).
    Roll,
    /// `x.shift(steps, axis)`: the elements of `axis` moved by `steps`, zeros moved in
    /// (linear; its transpose the shift back).
    Shift,
    /// `x.flip(axis)`: the elements of `axis` reversed (linear, its own transpose).
    Flip,
    /// `x.repeat(n, axis)`: each element `n` times along `axis` (linear).
    Repeat,
    /// The transpose of [`Prim::Repeat`]: each run of `n` summed, `(ct, n, axis, like)`.
    RepeatT,
    /// `x.tile(n, axis)`: the whole axis `n` times (linear).
    Tile,
    /// The transpose of [`Prim::Tile`]: the `n` copies summed, `(ct, n, axis, like)`.
    TileT,
    /// `x.linear_recurrence(&decay, axis)`: `h[t] = decay[t] * h[t - 1] + x[t]`, linear in
    /// `x`; its transpose [`Prim::LinRecRev`] with the decay moved by one.
    LinRec,
    /// `x.linear_recurrence_rev(&decay, axis)`: the same from the end of `axis`.
    LinRecRev,
    /// `a.pinv()`: the Moore–Penrose pseudo-inverse (derivative at constant rank, Golub
    /// and Pereyra 1973).
    Pinv,
    /// `a.expm()`: the matrix exponential; its derivative [`Prim::ExpmFrechet`].
    Expm,
    /// `a.expm_frechet(&e)`: the derivative of `expm` at `a` in direction `e` (linear in
    /// `e`, its transpose at `aᵀ`; its derivative in `a` the same one size up).
    ExpmFrechet,
    /// `[[a, e], [0, a]]` of the matrices in the last two axes (linear; a number for
    /// either: zeros).
    BlockUpper,
    /// Quadrant `k` (0 upper left, 1 upper right, 2 lower left, 3 lower right) of the
    /// matrices in the last two axes, of even size (linear).
    Quadrant,
    /// The transpose of [`Prim::Quadrant`]: `x` as quadrant `k` of zeros twice its size.
    QuadrantT,
    /// `x.pad(&pads)`: zeros before and after on each axis (linear).
    Pad,
    /// `x.pad_with(&pads, mode)`: a border copied from the tensor ([`PadMode`]), linear.
    PadWith,
    /// `ct.pad_with_transpose(&pads, mode)`: the adjoint of [`Prim::PadWith`].
    PadWithTranspose,
    /// `x.unpad(&pads)`: the inverse and transpose of [`Prim::Pad`] (linear).
    Unpad,
    /// `a.solve(&b)`, lowered to `lu_solve(lu_factor(a), a, b, false)`: `(factors, a, b,
    /// transpose)`, `x` with `a @ x = b` (or `aᵀ @ x = b`) from `a`'s packed LU factors; `a`
    /// itself is read only by the derivative rules. One factorization serves the primal,
    /// its tangent and its transpose.
    LuSolve,
    /// `a.lu_factor()`: packed LU factors with partial pivoting (no derivative: `LuSolve`
    /// differentiates through `a`).
    LuFactor,
    /// The identity matrix of the size of the square matrices `x` holds (`a.inv()` is
    /// lowered to `lu_solve(lu_factor(a), a, eye_like(a), false)`).
    EyeLike,
    /// `a.logabsdet()`, lowered to `lu_log_abs_det(lu_factor(a), a)`: `log |det a|` from
    /// the factors, differentiated through `a` (tangent `tr(a⁻¹ da)`).
    LuLogAbsDet,
    /// The sign of `det a` (`±1`, 0 for a singular matrix) from its packed LU factors (no
    /// derivative). `a.det()` is lowered to `lu_sign(f) * exp(lu_log_abs_det(f, a))` with
    /// `f = lu_factor(a)`, differentiated through the log-determinant.
    LuSign,
    /// `a.solve_triangular(&b, lower)`: `x` with `a @ x = b`, reading one triangle of `a`.
    SolveTriangular,
    /// `a.cholesky()`: the lower Cholesky factor of the symmetric part of `a`.
    Cholesky,
    /// `a.eigh()` packed (`[.., n + 1, n]`: the eigenvectors as columns, then a row of
    /// eigenvalues), no derivative. `let (w, v) = a.eigh();` is lowered to `f =
    /// eigh_factor(a)`, `p = eigh(f, a)`, `w = eigh_values(p)`, `v = eigh_vectors(p)`: one
    /// decomposition, and one linearization (`Eigh`'s) for both and their cotangents.
    EighFactor,
    /// `(packed, a)`: the packed decomposition again, differentiated through `a`.
    Eigh,
    /// `(packed, a)`: the eigenvalues alone (`a.eigvalsh()`), differentiated through `a`.
    Eigvalsh,
    /// The eigenvalues / eigenvectors out of a packed decomposition (linear).
    EighValues,
    EighVectors,
    /// `(vectors, values)` packed as [`Prim::EighFactor`] packs them (linear).
    EighPack,
    /// `a.qr()` packed (`[.., m + k, n]`: `q` in the first `m` rows, then `r`), no
    /// derivative. `let (q, r) = a.qr();` is lowered to `f = qr_factor(a)`, `p = qr(f, a)`,
    /// `q = qr_q(p)`, `r = qr_r(p)`: one decomposition, one linearization (`Qr`'s).
    QrFactor,
    /// `(packed, a)`: the packed decomposition again, differentiated through `a`.
    Qr,
    /// `q` / `r` out of a packed QR decomposition (linear).
    QrQ,
    QrR,
    /// `r` for QR's derivative, which needs `m >= n` (square `r`): checked first, with an
    /// error that says so (linear, as `QrR`).
    QrRSquare,
    /// `(q, r)` packed as [`Prim::QrFactor`] packs them (linear).
    QrPack,
    /// `(x, r, transpose)`: `x r⁻¹` (`x r⁻ᵀ` with `transpose`) for square upper triangular
    /// `r`, reading its upper triangle: the right-hand solve of QR's derivative.
    RSolve,
    /// `a.svd()` packed (`[.., m + k + 1, n]`: `u`, then `vt`, then a row of singular
    /// values), no derivative. `let (u, s, vt) = a.svd();` is lowered to `f =
    /// svd_factor(a)`, `p = svd(f, a)` and the three read out of `p`: one decomposition, one
    /// linearization (`Svd`'s).
    SvdFactor,
    /// `(packed, a)`: the packed decomposition again, differentiated through `a`.
    Svd,
    /// `(packed, a)`: the singular values alone (`a.svdvals()`), differentiated through `a`.
    Svdvals,
    /// `u` / `s` / `vt` out of a packed decomposition (linear).
    SvdU,
    SvdS,
    SvdVt,
    /// `(u, s, vt)` packed as [`Prim::SvdFactor`] packs them (linear).
    SvdPack,
    /// `x.tril(k)` / `x.triu(k)`: one triangle of the matrices in the last two axes.
    Tril,
    Triu,
    /// `x.diagonal()`: the diagonals of the matrices in the last two axes.
    Diagonal,
    /// `x.mt()`: the matrices in the last two axes transposed.
    Mt,
    /// `Tensor::concat(&[a, b, ..], axis)` / `Tensor::stack(..)`: arguments `axis, a, b, ..`.
    Concat,
    Stack,
    /// `Tensor::concat(&outs, axis)` / `Tensor::stack(&outs, axis)` of a `Vec` of tensors
    /// built in the function: arguments `axis, outs`.
    ConcatSeq,
    StackSeq,
    // ---- helpers that only derivative rules use ----
    /// The cotangent of a slice: `(ct, like, axis, start, end)`, zeros elsewhere.
    Unslice,
    /// The cotangent of an index_select: `(ct, like, axis, indices)`, summed per index.
    IndexAdd,
    /// `x.take_along_axis(axis, &indices)` (also `x.sort(axis)` and `x.top_k(k)`, lowered to
    /// it at their sorting indices): a gather with one index per output element, linear in
    /// `x`; `(x, axis, indices)`.
    TakeAlong,
    /// The transpose of [`Prim::TakeAlong`]: `(ct, like_x, axis, indices)`, the cotangent
    /// scattered back (added) into zeros shaped like `x`.
    TakeAlongT,
    /// `x.take_along_axis_or(axis, &indices, fill)`: `(x, axis, indices, fill)`, the gather
    /// reading the constant `fill` where an index is out of range (an empty segment's
    /// extremum); affine in `x`.
    TakeAlongOr,
    /// The transpose of [`Prim::TakeAlongOr`]: `(ct, like_x, axis, indices)`, the cotangent
    /// added at the indices in range into zeros shaped like `x`.
    TakeAlongOrT,
    /// Part `k` of a concat's (or stack's) cotangent: `(ct, axis, k, parts..)`.
    ConcatPart,
    StackPart,
    /// The cotangent of a [`Prim::ConcatSeq`] / [`Prim::StackSeq`] split back into a `Vec`
    /// of the parts' cotangents: `(ct, axis, parts)`.
    UnconcatSeq,
    UnstackSeq,
    /// A zero shaped like `x` (for parts of a concat without a tangent).
    ZeroLike,
    /// The cotangent of a diagonal: `(ct, like)`, `ct` on the diagonals, zeros elsewhere.
    Undiagonal,
    /// `(x, lower)`: the lower triangle of `x` (diagonal included) if `lower`, else the upper.
    Triangle,
    /// The cotangent of a permute: `(ct, axes, like)`, permuted back.
    Unpermute,
    /// `ct` summed over broadcast axes down to the shape of `like` (a float `like`: all of it).
    SumTo,
    /// `x` broadcast to the shape of `like`.
    BroadcastLike,
    /// A reduction's cotangent `(ct, like, axis, keepdim)` broadcast back over `axis` to `like`'s shape.
    UnsumAxis,
    /// `x` reshaped to the shape of `like`.
    ReshapeLike,
    /// Cotangent of operand `k` of an einsum: `(spec, k, ct, parts..)` (`parts[k]` read for
    /// its shape only).
    EinsumT,
    /// Cotangent of `a` in `a.matmul(b)`: `(ct, b, like_a)`.
    MatmulTl,
    /// Cotangent of `b` in `a.matmul(b)`: `(a, ct, like_b)`.
    MatmulTr,
    /// The number of elements of a tensor, as f64.
    Numel,
    /// The length of one axis, as f64: `(x, axis)`.
    AxisLen,
}

/// How a primitive is written in Rust.
#[derive(Clone, Copy, Debug)]
pub enum Syntax {
    /// `a op b`.
    Binary(&'static str),
    /// `op a`.
    Unary(&'static str),
    /// `a.name(b, ..)`.
    Method(&'static str),
    /// `a as T`.
    Cast(&'static str),
    /// `if a { b } else { c }`.
    Choose,
    /// `a` (a function of the runtime facade when `path` is given).
    Call(&'static str),
}

/// What a primitive returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Out {
    /// A float of its float arguments' precision.
    Float,
    /// Same kind as its arguments (float, or integer for integer arithmetic).
    Like,
    Bool,
    F32,
    F64,
    /// The kind of argument `k` (a cotangent fitted to its operand).
    KindOf(usize),
}

/// A JVP rule: primal arguments, primal result, argument tangents (`None` = zero) ->
/// result tangent, emitted through the builder.
pub type JvpRule = fn(&mut Rules, &[Atom], Atom, &[Option<Atom>]) -> Option<Atom>;
/// A transpose rule: cotangent of the result, the arguments, which are linear ->
/// cotangent of each linear argument.
pub type TransposeRule = fn(&mut Rules, Atom, &[Atom], &[bool]) -> Vec<Option<Atom>>;

/// One row of the table.
pub struct Row {
    pub syntax: Syntax,
    pub arity: usize,
    pub out: Out,
    /// `None`: not differentiable (its result never carries a derivative).
    pub jvp: Option<JvpRule>,
    /// Only for linear primitives.
    pub transpose: Option<TransposeRule>,
}

const fn r(syntax: Syntax, arity: usize, out: Out, jvp: Option<JvpRule>) -> Row {
    Row {
        syntax,
        arity,
        out,
        jvp,
        transpose: None,
    }
}

const fn lin(syntax: Syntax, arity: usize, out: Out, jvp: JvpRule, t: TransposeRule) -> Row {
    Row {
        syntax,
        arity,
        out,
        jvp: Some(jvp),
        transpose: Some(t),
    }
}

const fn tl(arity: usize, jvp: JvpRule, t: TransposeRule) -> Row {
    lin(Syntax::Call(""), arity, Out::Float, jvp, t)
}

const fn tr(arity: usize, jvp: JvpRule) -> Row {
    r(Syntax::Call(""), arity, Out::Float, Some(jvp))
}

/// `vᵀ t v` for the eigenvectors `v` of `a` and a tangent `t` shaped like `a`, its
/// intermediates recorded as shaped like `a`.
fn sandwich(b: &mut Rules, v: Atom, t: Atom, a: Atom) -> Atom {
    let right = b.prim(Prim::Matmul, &[t, v]);
    b.shaped_like(right, a);
    let vt = b.prim(Prim::Mt, &[v]);
    let m = b.prim(Prim::Matmul, &[vt, right]);
    b.shaped_like(m, a);
    m
}

/// `(t + tᵀ) / 2` for a tangent `t` shaped like the primal `like`.
fn symmetric_part(b: &mut Rules, t: Atom, like: Atom) -> Atom {
    let tt = b.prim(Prim::Mt, &[t]);
    b.shaped_like(tt, like);
    let both = b.prim(Prim::Add, &[t, tt]);
    b.shaped_like(both, like);
    let half = b.prim(Prim::Mul, &[both, f(0.5)]);
    b.shaped_like(half, like);
    half
}

/// The vectors `v` `[.., n]` as a row `[.., 1, n]` and as a column `[.., n, 1]`, whose
/// difference (or sum) broadcasts to the matrix of pairs `(i, j)`.
fn row_and_column(b: &mut Rules, v: Atom) -> (Atom, Atom) {
    let (row, col) = (
        b.prim(Prim::Neg, &[Atom::Int(2)]),
        b.prim(Prim::Neg, &[Atom::Int(1)]),
    );
    (
        b.prim(Prim::Unsqueeze, &[v, row]),
        b.prim(Prim::Unsqueeze, &[v, col]),
    )
}

/// `1 / gaps` off the diagonal and 0 on it (`1 / (gaps + I) - I`: the diagonal's zero gaps
/// never divide), the `F` of the eigen- and singular vector rules.
fn inverse_gaps(b: &mut Rules, gaps: Atom) -> Atom {
    let eye = b.prim(Prim::EyeLike, &[gaps]);
    let shifted = b.prim(Prim::Add, &[gaps, eye]);
    let inv = b.prim(Prim::Recip, &[shifted]);
    b.prim(Prim::Sub, &[inv, eye])
}

/// A packed decomposition: the primitives that read its parts, in the order of the
/// primitive that packs them, and that one.
type Packed = (&'static [Prim], Prim);
const EIGH: Packed = (&[Prim::EighVectors, Prim::EighValues], Prim::EighPack);
const QR: Packed = (&[Prim::QrQ, Prim::QrR], Prim::QrPack);
const SVD: Packed = (&[Prim::SvdU, Prim::SvdS, Prim::SvdVt], Prim::SvdPack);

/// The cotangent `ct` of part `which` of the packed decomposition `packed` as a cotangent
/// of all of it: the other parts zero (the transpose of reading a part).
fn unpart(b: &mut Rules, ct: Atom, packed: Atom, (parts, pack): Packed, which: usize) -> Atom {
    let p = b.primal_of(packed);
    let all: Vec<Atom> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            if i == which {
                ct
            } else {
                let x = b.prim(*part, &[p]);
                b.prim(Prim::ZeroLike, &[x])
            }
        })
        .collect();
    b.prim(pack, &all)
}

/// Tangent of packing parts: their tangents packed (zeros for those without one).
fn pack_jvp(b: &mut Rules, x: &[Atom], d: &[Option<Atom>], (_, pack): Packed) -> Option<Atom> {
    if d.iter().all(Option::is_none) {
        return None;
    }
    let all: Vec<Atom> = d
        .iter()
        .zip(x)
        .map(|(t, x)| t.unwrap_or_else(|| b.prim(Prim::ZeroLike, &[*x])))
        .collect();
    Some(b.prim(pack, &all))
}

/// Transpose of packing parts: each linear part reads its cotangent out.
fn pack_transpose(b: &mut Rules, ct: Atom, l: &[bool], (parts, _): Packed) -> Vec<Option<Atom>> {
    parts
        .iter()
        .zip(l)
        .map(|(p, on)| on.then(|| b.prim(*p, &[ct])))
        .collect()
}

/// Transpose of a float cast: the cotangent cast back to the operand's precision.
fn cast_back(b: &mut Rules, ct: Atom, x: &[Atom], _: &[bool]) -> Vec<Option<Atom>> {
    let back = if b.func.kind(x[0]) == Kind::Float(Prec::F32) {
        Prim::ToF32
    } else {
        Prim::ToF64
    };
    vec![Some(b.prim(back, &[ct]))]
}

/// Tangent of `concat` / `stack` (`axis, parts..`): the parts' tangents joined the same way.
fn join_jvp(b: &mut Rules, x: &[Atom], d: &[Option<Atom>], p: Prim) -> Option<Atom> {
    if d[1..].iter().all(Option::is_none) {
        return None;
    }
    let mut args = vec![x[0]];
    for (k, t) in d.iter().enumerate().skip(1) {
        args.push(match t {
            Some(t) => *t,
            None => b.prim(Prim::ZeroLike, &[x[k]]),
        });
    }
    Some(b.prim(p, &args))
}

/// Transpose of `concat` / `stack`: each part takes its slice of the cotangent.
fn join_transpose(
    b: &mut Rules,
    ct: Atom,
    x: &[Atom],
    l: &[bool],
    part: Prim,
) -> Vec<Option<Atom>> {
    let parts: Vec<Atom> = x[1..].iter().map(|a| b.primal_of(*a)).collect();
    let mut out = vec![None];
    for (k, linear) in l.iter().enumerate().skip(1) {
        out.push(linear.then(|| {
            let mut args = vec![ct, x[0], Atom::Int(k as u128 - 1)];
            args.extend(parts.iter().copied());
            b.prim(part, &args)
        }));
    }
    out
}

/// Tangent of a primitive linear in each argument `linear` accepts (a product of several
/// factors): the sum over them of the primitive with that argument's tangent in its place.
fn multilinear_jvp(
    b: &mut Rules,
    p: Prim,
    x: &[Atom],
    d: &[Option<Atom>],
    linear: impl Fn(usize) -> bool,
) -> Option<Atom> {
    let mut total = None;
    for (k, t) in d.iter().enumerate() {
        if let (true, Some(t)) = (linear(k), t) {
            let mut args = x.to_vec();
            args[k] = *t;
            let term = b.prim(p, &args);
            total = b.add(total, Some(term));
        }
    }
    total
}

/// Tangent of an einsum (`spec, operands..`), linear in each operand.
fn einsum_jvp(b: &mut Rules, x: &[Atom], _: Atom, d: &[Option<Atom>]) -> Option<Atom> {
    multilinear_jvp(b, Prim::Einsum, x, d, |k| k >= 1)
}

/// Transpose of an einsum in its one linear operand: the cotangent contracted with the
/// others (`EinsumT`).
fn einsum_transpose(b: &mut Rules, ct: Atom, x: &[Atom], l: &[bool]) -> Vec<Option<Atom>> {
    let parts: Vec<Atom> = x[1..].iter().map(|a| b.primal_of(*a)).collect();
    let mut out = vec![None];
    for (k, linear) in l.iter().enumerate().skip(1) {
        out.push(linear.then(|| {
            let mut args = vec![x[0], Atom::Int(k as u128 - 1), ct];
            args.extend(parts.iter().copied());
            b.prim(Prim::EinsumT, &args)
        }));
    }
    out
}

/// Tangent of an einsum's transpose (`spec, k, ct, parts..`), linear in the cotangent and
/// in each part but part `k` (read for its shape).
fn einsum_t_jvp(b: &mut Rules, x: &[Atom], _: Atom, d: &[Option<Atom>]) -> Option<Atom> {
    let Atom::Int(k) = x[1] else {
        unreachable!("an einsum transpose's operand index is a literal")
    };
    multilinear_jvp(b, Prim::EinsumT, x, d, |j| j >= 2 && j != k as usize + 3)
}

/// Tangent of `x` with `src` added into it at indices (`x, axis, indices, src`): the same
/// of the tangents; with only `src`'s, it added into zeros (`into_zeros`, whose arguments
/// are `ct, like, axis, indices`); with only `x`'s, that tangent.
fn added_into_jvp(
    b: &mut Rules,
    p: Prim,
    into_zeros: Prim,
    x: &[Atom],
    d: &[Option<Atom>],
) -> Option<Atom> {
    match (d[0], d[3]) {
        (Some(dx), Some(ds)) => Some(b.prim(p, &[dx, x[1], x[2], ds])),
        (Some(dx), None) => Some(dx),
        (None, Some(ds)) => Some(b.prim(into_zeros, &[ds, x[0], x[1], x[2]])),
        (None, None) => None,
    }
}

/// Tangent of a part of a joined cotangent: the same part of the tangent.
fn part_jvp(b: &mut Rules, x: &[Atom], d: &[Option<Atom>], p: Prim) -> Option<Atom> {
    let mut args = x.to_vec();
    args[0] = d[0]?;
    Some(b.prim(p, &args))
}

/// Transpose of a view that keeps the elements in order: the cotangent reshaped back.
fn reshape_back(b: &mut Rules, ct: Atom, x: &[Atom], _: &[bool]) -> Vec<Option<Atom>> {
    let like = b.primal_of(x[0]);
    let mut out = vec![Some(b.prim(Prim::ReshapeLike, &[ct, like]))];
    out.resize(x.len(), None);
    out
}

/// The recurrence `h[t] = a[t] h[t -+ 1] + x[t]` (`x, a, axis`), differentiated:
/// `dh[t] = a[t] dh[t -+ 1] + (dx[t] + da[t] h[t -+ 1])`, the same recurrence of the
/// tangents with the decay's part as input (`h` moved by one step, zero at the start).
fn recurrence_jvp(
    b: &mut Rules,
    x: &[Atom],
    y: Atom,
    d: &[Option<Atom>],
    rev: bool,
) -> Option<Atom> {
    let p = if rev { Prim::LinRecRev } else { Prim::LinRec };
    let input = match d[1] {
        Some(da) => {
            let s = one_step(b, !rev);
            let before = b.prim(Prim::Shift, &[y, s, x[2]]);
            let c = b.prim(Prim::Mul, &[da, before]);
            b.add(d[0], Some(c))
        }
        None => d[0],
    }?;
    Some(b.prim(p, &[input, x[1], x[2]]))
}

/// One step towards the end of an axis (`1`), or towards its start (`-1`).
fn one_step(b: &mut Rules, forwards: bool) -> Atom {
    if forwards {
        Atom::Int(1)
    } else {
        b.prim(Prim::Neg, &[Atom::Int(1)])
    }
}

/// The transpose in `x` of the recurrence: `g[t] = ct[t] + a[t +- 1] g[t +- 1]`, the
/// recurrence the other way with the decay (broadcast to the result first) moved by one
/// step against it.
fn recurrence_transpose(b: &mut Rules, ct: Atom, x: &[Atom], rev: bool) -> Vec<Option<Atom>> {
    let back = if rev { Prim::LinRec } else { Prim::LinRecRev };
    let full = b.prim(Prim::BroadcastLike, &[x[1], ct]);
    let s = one_step(b, rev);
    let next = b.prim(Prim::Shift, &[full, s, x[2]]);
    let g = b.prim(back, &[ct, next, x[2]]);
    vec![Some(b.fit(g, x[0])), None, None]
}

fn f(v: f64) -> Atom {
    Atom::Float(v)
}

/// The table.
pub fn row(p: Prim) -> Row {
    use Out::*;
    use Prim::*;
    use Syntax::{Binary, Call, Cast, Choose, Method, Unary};
    match p {
        // ---- linear primitives: JVP and transpose ----
        Add => lin(
            Binary("+"),
            2,
            Like,
            |b, _, _, d| b.add(d[0], d[1]),
            |b, ct, x, l| {
                let a = l[0].then(|| b.fit(ct, x[0]));
                let c = l[1].then(|| b.fit(ct, x[1]));
                vec![a, c]
            },
        ),
        Sub => lin(
            Binary("-"),
            2,
            Like,
            |b, _, _, d| b.sub(d[0], d[1]),
            |b, ct, x, l| {
                let a = l[0].then(|| b.fit(ct, x[0]));
                let n = if l[1] {
                    let n = b.prim(Neg, &[ct]);
                    Some(b.fit(n, x[1]))
                } else {
                    None
                };
                vec![a, n]
            },
        ),
        Neg => lin(
            Unary("-"),
            1,
            Like,
            |b, _, _, d| b.neg(d[0]),
            |b, ct, _, _| vec![Some(b.prim(Neg, &[ct]))],
        ),
        Mul => lin(
            Binary("*"),
            2,
            Like,
            |b, x, _, d| {
                // a square, `x * x`: 2 (dx x), one product (and so one in its transpose)
                if x[0] == x[1] && d[0].is_some() && d[0] == d[1] {
                    let once = b.scale(d[0], x[0])?;
                    return Some(b.prim(Mul, &[once, f(2.0)]));
                }
                let l = b.scale(d[0], x[1]);
                let r = b.scale(d[1], x[0]);
                b.add(l, r)
            },
            |b, ct, x, l| {
                // Linear in exactly one argument; the other is a primal coefficient.
                if l[0] {
                    let c = b.prim(Mul, &[ct, x[1]]);
                    vec![Some(b.fit(c, x[0])), None]
                } else {
                    let c = b.prim(Mul, &[ct, x[0]]);
                    vec![None, Some(b.fit(c, x[1]))]
                }
            },
        ),
        Div => lin(
            Binary("/"),
            2,
            Like,
            |b, x, y, d| {
                let l = d[0].map(|t| b.prim(Div, &[t, x[1]]));
                let q = b.prim(Div, &[y, x[1]]);
                let c = b.prim(Neg, &[q]);
                let r = b.scale(d[1], c);
                b.add(l, r)
            },
            |b, ct, x, _| {
                let c = b.prim(Div, &[ct, x[1]]);
                vec![Some(b.fit(c, x[0])), None]
            },
        ),
        ToF32 => lin(
            Cast("f32"),
            1,
            F32,
            |b, _, _, d| d[0].map(|t| b.prim(ToF32, &[t])),
            cast_back,
        ),
        ToF64 => lin(
            Cast("f64"),
            1,
            F64,
            |b, _, _, d| d[0].map(|t| b.prim(ToF64, &[t])),
            cast_back,
        ),
        // ---- non-differentiable: integer/bool logic, comparisons, rounding ----
        Rem => r(
            Binary("%"),
            2,
            Like,
            Some(|b, x, _, d| {
                // d(x % y) = dx - dy * trunc(x / y)
                let q = b.prim(Div, &[x[0], x[1]]);
                let t = b.prim(Trunc, &[q]);
                let c = b.prim(Neg, &[t]);
                let r = b.scale(d[1], c);
                b.add(d[0], r)
            }),
        ),
        Not => r(Unary("!"), 1, Like, None),
        BitAnd => r(Binary("&"), 2, Like, None),
        BitOr => r(Binary("|"), 2, Like, None),
        BitXor => r(Binary("^"), 2, Like, None),
        Shl => r(Binary("<<"), 2, Like, None),
        Shr => r(Binary(">>"), 2, Like, None),
        Lt => r(Binary("<"), 2, Bool, None),
        Le => r(Binary("<="), 2, Bool, None),
        Gt => r(Binary(">"), 2, Bool, None),
        Ge => r(Binary(">="), 2, Bool, None),
        Eq => r(Binary("=="), 2, Bool, None),
        Ne => r(Binary("!="), 2, Bool, None),
        Select => lin(
            Choose,
            3,
            Float,
            |b, x, _, d| {
                // linear in the two branches
                if d[1].is_none() && d[2].is_none() {
                    return None;
                }
                let a = d[1].unwrap_or(f(0.0));
                let c = d[2].unwrap_or(f(0.0));
                Some(b.prim(Select, &[x[0], a, c]))
            },
            |b, ct, x, l| {
                let a = l[1].then(|| {
                    let v = b.prim(Select, &[x[0], ct, f(0.0)]);
                    b.fit(v, x[1])
                });
                let c = l[2].then(|| {
                    let v = b.prim(Select, &[x[0], f(0.0), ct]);
                    b.fit(v, x[2])
                });
                vec![None, a, c]
            },
        ),
        StopGradient => r(Call(""), 1, Like, None),
        IntAsFloat => r(Call("::ferrax::__private::int_as_float"), 2, Float, None),
        Floor => r(Method("floor"), 1, Float, None),
        Ceil => r(Method("ceil"), 1, Float, None),
        Round => r(Method("round"), 1, Float, None),
        Trunc => r(Method("trunc"), 1, Float, None),
        Signum => r(Method("signum"), 1, Float, None),
        // ---- smooth unary methods: d = dx * coefficient(x, y) ----
        Sin => r(
            Method("sin"),
            1,
            Float,
            Some(|b, x, _, d| {
                let c = b.prim(Cos, &[x[0]]);
                b.scale(d[0], c)
            }),
        ),
        Cos => r(
            Method("cos"),
            1,
            Float,
            Some(|b, x, _, d| {
                let s = b.prim(Sin, &[x[0]]);
                let c = b.prim(Neg, &[s]);
                b.scale(d[0], c)
            }),
        ),
        Tan => r(
            Method("tan"),
            1,
            Float,
            Some(|b, _, y, d| {
                let y2 = b.prim(Mul, &[y, y]);
                let c = b.prim(Add, &[f(1.0), y2]);
                b.scale(d[0], c)
            }),
        ),
        Asin => r(
            Method("asin"),
            1,
            Float,
            Some(|b, x, _, d| {
                let c = b.one_over_sqrt_one_minus_sq(x[0]);
                b.scale(d[0], c)
            }),
        ),
        Acos => r(
            Method("acos"),
            1,
            Float,
            Some(|b, x, _, d| {
                let c = b.one_over_sqrt_one_minus_sq(x[0]);
                let c = b.prim(Neg, &[c]);
                b.scale(d[0], c)
            }),
        ),
        Atan => r(
            Method("atan"),
            1,
            Float,
            Some(|b, x, _, d| {
                let x2 = b.prim(Mul, &[x[0], x[0]]);
                let den = b.prim(Add, &[f(1.0), x2]);
                let c = b.prim(Div, &[f(1.0), den]);
                b.scale(d[0], c)
            }),
        ),
        Sinh => r(
            Method("sinh"),
            1,
            Float,
            Some(|b, x, _, d| {
                let c = b.prim(Cosh, &[x[0]]);
                b.scale(d[0], c)
            }),
        ),
        Cosh => r(
            Method("cosh"),
            1,
            Float,
            Some(|b, x, _, d| {
                let c = b.prim(Sinh, &[x[0]]);
                b.scale(d[0], c)
            }),
        ),
        Tanh => r(
            Method("tanh"),
            1,
            Float,
            Some(|b, _, y, d| {
                let y2 = b.prim(Mul, &[y, y]);
                let c = b.prim(Sub, &[f(1.0), y2]);
                b.scale(d[0], c)
            }),
        ),
        Asinh => r(
            Method("asinh"),
            1,
            Float,
            Some(|b, x, _, d| {
                let x2 = b.prim(Mul, &[x[0], x[0]]);
                let s = b.prim(Add, &[x2, f(1.0)]);
                let q = b.prim(Sqrt, &[s]);
                let c = b.prim(Div, &[f(1.0), q]);
                b.scale(d[0], c)
            }),
        ),
        Acosh => r(
            Method("acosh"),
            1,
            Float,
            Some(|b, x, _, d| {
                // 1 / (sqrt(x - 1) sqrt(x + 1)), as JAX writes it
                let m = b.prim(Sub, &[x[0], f(1.0)]);
                let p = b.prim(Add, &[x[0], f(1.0)]);
                let sm = b.prim(Sqrt, &[m]);
                let sp = b.prim(Sqrt, &[p]);
                let den = b.prim(Mul, &[sm, sp]);
                let c = b.prim(Div, &[f(1.0), den]);
                b.scale(d[0], c)
            }),
        ),
        Atanh => r(
            Method("atanh"),
            1,
            Float,
            Some(|b, x, _, d| {
                let x2 = b.prim(Mul, &[x[0], x[0]]);
                let den = b.prim(Sub, &[f(1.0), x2]);
                let c = b.prim(Div, &[f(1.0), den]);
                b.scale(d[0], c)
            }),
        ),
        Erf => r(
            Method("erf"),
            1,
            Float,
            Some(|b, x, _, d| {
                // 2 / sqrt(pi) e^(-x²)
                let x2 = b.prim(Mul, &[x[0], x[0]]);
                let n = b.prim(Neg, &[x2]);
                let e = b.prim(Exp, &[n]);
                let c = b.prim(Mul, &[e, f(std::f64::consts::FRAC_2_SQRT_PI)]);
                b.scale(d[0], c)
            }),
        ),
        Exp => r(Method("exp"), 1, Float, Some(|b, _, y, d| b.scale(d[0], y))),
        Exp2 => r(
            Method("exp2"),
            1,
            Float,
            Some(|b, _, y, d| {
                let c = b.prim(Mul, &[y, f(std::f64::consts::LN_2)]);
                b.scale(d[0], c)
            }),
        ),
        ExpM1 => r(
            Method("exp_m1"),
            1,
            Float,
            Some(|b, _, y, d| {
                let c = b.prim(Add, &[y, f(1.0)]);
                b.scale(d[0], c)
            }),
        ),
        Ln => r(
            Method("ln"),
            1,
            Float,
            Some(|b, x, _, d| d[0].map(|t| b.prim(Div, &[t, x[0]]))),
        ),
        Log2 => r(
            Method("log2"),
            1,
            Float,
            Some(|b, x, _, d| {
                let den = b.prim(Mul, &[x[0], f(std::f64::consts::LN_2)]);
                d[0].map(|t| b.prim(Div, &[t, den]))
            }),
        ),
        Log10 => r(
            Method("log10"),
            1,
            Float,
            Some(|b, x, _, d| {
                let den = b.prim(Mul, &[x[0], f(std::f64::consts::LN_10)]);
                d[0].map(|t| b.prim(Div, &[t, den]))
            }),
        ),
        Ln1p => r(
            Method("ln_1p"),
            1,
            Float,
            Some(|b, x, _, d| {
                let den = b.prim(Add, &[x[0], f(1.0)]);
                d[0].map(|t| b.prim(Div, &[t, den]))
            }),
        ),
        Sqrt => r(
            Method("sqrt"),
            1,
            Float,
            Some(|b, _, y, d| {
                let c = b.prim(Div, &[f(0.5), y]);
                b.scale(d[0], c)
            }),
        ),
        Cbrt => r(
            Method("cbrt"),
            1,
            Float,
            Some(|b, _, y, d| {
                // 1 / (3 y^2)
                let y2 = b.prim(Mul, &[y, y]);
                let den = b.prim(Mul, &[f(3.0), y2]);
                let c = b.prim(Div, &[f(1.0), den]);
                b.scale(d[0], c)
            }),
        ),
        Recip => r(
            Method("recip"),
            1,
            Float,
            Some(|b, _, y, d| {
                let y2 = b.prim(Mul, &[y, y]);
                let c = b.prim(Neg, &[y2]);
                b.scale(d[0], c)
            }),
        ),
        Abs => r(
            Method("abs"),
            1,
            Float,
            Some(|b, x, _, d| {
                // select(x >= 0, 1, -1): abs'(0) = 1 as in JAX
                let ge = b.prim(Ge, &[x[0], f(0.0)]);
                let c = b.prim(Select, &[ge, f(1.0), f(-1.0)]);
                b.scale(d[0], c)
            }),
        ),
        // ---- binary and ternary methods ----
        Log => r(
            Method("log"),
            2,
            Float,
            Some(|b, x, y, d| {
                // log_b(x) = ln x / ln b
                let lb = b.prim(Ln, &[x[1]]);
                let dx = d[0].map(|t| {
                    let den = b.prim(Mul, &[x[0], lb]);
                    b.prim(Div, &[t, den])
                });
                let db = d[1].map(|t| {
                    let den = b.prim(Mul, &[x[1], lb]);
                    let q = b.prim(Div, &[y, den]);
                    let c = b.prim(Neg, &[q]);
                    b.prim(Mul, &[t, c])
                });
                b.add(dx, db)
            }),
        ),
        Powi => r(
            Method("powi"),
            2,
            Float,
            Some(|b, x, _, d| {
                // n x^(n-1), zero for n = 0 (as JAX's integer_pow)
                let nm1 = b.prim(Sub, &[x[1], Atom::Int(1)]);
                let p = b.prim(Powi, &[x[0], nm1]);
                let nf = b.prim(IntAsFloat, &[x[0], x[1]]);
                let c = b.prim(Mul, &[nf, p]);
                let z = b.prim(Eq, &[x[1], Atom::Int(0)]);
                let c = b.prim(Select, &[z, f(0.0), c]);
                b.scale(d[0], c)
            }),
        ),
        Powf => r(
            Method("powf"),
            2,
            Float,
            Some(|b, x, y, d| {
                // d/dx: e x^(e-1) (zero where e = 0); d/de: ln(x) x^e with ln(0) read as ln(1), as in JAX
                let dx = d[0].map(|t| {
                    let em1 = b.prim(Sub, &[x[1], f(1.0)]);
                    let p = b.prim(Powf, &[x[0], em1]);
                    let c = b.prim(Mul, &[x[1], p]);
                    let z = b.prim(Eq, &[x[1], f(0.0)]);
                    let c = b.prim(Select, &[z, f(0.0), c]);
                    b.prim(Mul, &[t, c])
                });
                let de = d[1].map(|t| {
                    let z = b.prim(Eq, &[x[0], f(0.0)]);
                    let safe = b.prim(Select, &[z, f(1.0), x[0]]);
                    let l = b.prim(Ln, &[safe]);
                    let c = b.prim(Mul, &[l, y]);
                    b.prim(Mul, &[t, c])
                });
                b.add(dx, de)
            }),
        ),
        Atan2 => r(
            Method("atan2"),
            2,
            Float,
            Some(|b, x, _, d| {
                // y.atan2(x): (x dy - y dx) / (x^2 + y^2)
                let yy = b.prim(Mul, &[x[0], x[0]]);
                let xx = b.prim(Mul, &[x[1], x[1]]);
                let den = b.prim(Add, &[yy, xx]);
                let cy = b.prim(Div, &[x[1], den]);
                let q = b.prim(Div, &[x[0], den]);
                let cx = b.prim(Neg, &[q]);
                let l = b.scale(d[0], cy);
                let r = b.scale(d[1], cx);
                b.add(l, r)
            }),
        ),
        Hypot => r(
            Method("hypot"),
            2,
            Float,
            Some(|b, x, y, d| {
                let ca = b.prim(Div, &[x[0], y]);
                let cb = b.prim(Div, &[x[1], y]);
                let l = b.scale(d[0], ca);
                let r = b.scale(d[1], cb);
                b.add(l, r)
            }),
        ),
        Max => r(
            Method("max"),
            2,
            Float,
            Some(|b, x, _, d| b.balanced(Gt, x, d)),
        ),
        Min => r(
            Method("min"),
            2,
            Float,
            Some(|b, x, _, d| b.balanced(Lt, x, d)),
        ),
        MulAdd => r(
            Method("mul_add"),
            3,
            Float,
            Some(|b, x, _, d| {
                let l = b.scale(d[0], x[1]);
                let m = b.scale(d[1], x[0]);
                let s = b.add(l, m);
                b.add(s, d[2])
            }),
        ),
        Clamp => r(
            Method("clamp"),
            3,
            Float,
            Some(|b, x, _, d| {
                // x.clamp(lo, hi), as JAX's clamp: each input passes the gradient only where it is chosen strictly
                let (v, lo, hi) = (x[0], x[1], x[2]);
                let gl = b.prim(Gt, &[v, lo]);
                let lh = b.prim(Lt, &[v, hi]);
                let inside = b.prim(BitAnd, &[gl, lh]);
                let cv = b.prim(Select, &[inside, f(1.0), f(0.0)]);
                let below = b.prim(Gt, &[lo, v]);
                let lohi = b.prim(Lt, &[lo, hi]);
                let at_lo = b.prim(BitAnd, &[below, lohi]);
                let cl = b.prim(Select, &[at_lo, f(1.0), f(0.0)]);
                let above = b.prim(Lt, &[hi, v]);
                let ch = b.prim(Select, &[above, f(1.0), f(0.0)]);
                let a = b.scale(d[0], cv);
                let l = b.scale(d[1], cl);
                let h = b.scale(d[2], ch);
                let s = b.add(a, l);
                b.add(s, h)
            }),
        ),
        // ---- tensor primitives ----
        // Rule discipline: a linear intermediate is only combined with values of its own
        // shape (broadcasts are explicit, through `UnsumAxis` / `BroadcastLike`), because the
        // transpose can fit a cotangent to the shape of a primal or of an argument's tangent,
        // not to that of an intermediate that only exists in forward mode.
        Sigmoid => r(
            Method("sigmoid"),
            1,
            Float,
            Some(|b, _, y, d| {
                let om = b.prim(Sub, &[f(1.0), y]);
                let c = b.prim(Mul, &[y, om]);
                b.scale(d[0], c)
            }),
        ),
        LogAddExp => r(
            Method("logaddexp"),
            2,
            Float,
            Some(|b, x, _, d| {
                // the weights e^a / (e^a + e^b) and e^b / (e^a + e^b), 1/2 each at ties
                let l = d[0].map(|t| {
                    let gap = b.prim(Sub, &[x[0], x[1]]);
                    let w = b.prim(Sigmoid, &[gap]);
                    b.prim(Mul, &[t, w])
                });
                let r = d[1].map(|t| {
                    let gap = b.prim(Sub, &[x[1], x[0]]);
                    let w = b.prim(Sigmoid, &[gap]);
                    b.prim(Mul, &[t, w])
                });
                b.add(l, r)
            }),
        ),
        Softplus => r(
            Method("softplus"),
            1,
            Float,
            Some(|b, x, _, d| {
                // (exactly 1/2 at 0, which no composition of max, abs and log1p gives)
                let c = b.prim(Sigmoid, &[x[0]]);
                b.scale(d[0], c)
            }),
        ),
        Relu => r(
            Method("relu"),
            1,
            Float,
            Some(|b, x, _, d| {
                // JAX's rule: the tangent where x > 0, else 0 (relu'(0) = 0); a select
                // rather than a product with a 0/1 mask, one pass fewer each way
                let t = d[0]?;
                let pos = b.prim(Gt, &[x[0], f(0.0)]);
                Some(b.prim(Select, &[pos, t, f(0.0)]))
            }),
        ),
        Sum => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(Sum, &[t])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![Some(b.prim(BroadcastLike, &[ct, like]))]
            },
        ),
        Mean => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(Mean, &[t])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                let bc = b.prim(BroadcastLike, &[ct, like]);
                let n = b.prim(Numel, &[like]);
                vec![Some(b.prim(Div, &[bc, n]))]
            },
        ),
        SumAxis => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(SumAxis, &[t, x[1], x[2]])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![Some(b.prim(UnsumAxis, &[ct, like, x[1], x[2]])), None, None]
            },
        ),
        MeanAxis => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(MeanAxis, &[t, x[1], x[2]])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                let u = b.prim(UnsumAxis, &[ct, like, x[1], x[2]]);
                let n = b.prim(AxisLen, &[like, x[1]]);
                vec![Some(b.prim(Div, &[u, n])), None, None]
            },
        ),
        MaxAll | MinAll => tr(1, |b, x, y, d| {
            // the gradient is shared evenly among the elements equal to the extremum (JAX)
            let yb = b.prim(BroadcastLike, &[y, x[0]]);
            let hit = b.prim(Eq, &[x[0], yb]);
            let m = b.prim(Select, &[hit, f(1.0), f(0.0)]);
            let cnt = b.prim(Sum, &[m]);
            let dm = b.scale(d[0], m)?;
            b.shaped_like(dm, x[0]);
            let s = b.prim(Sum, &[dm]);
            Some(b.prim(Div, &[s, cnt]))
        }),
        MaxAxis | MinAxis => tr(3, |b, x, y, d| {
            let yb = b.prim(UnsumAxis, &[y, x[0], x[1], x[2]]);
            let hit = b.prim(Eq, &[x[0], yb]);
            let m = b.prim(Select, &[hit, f(1.0), f(0.0)]);
            let cnt = b.prim(SumAxis, &[m, x[1], x[2]]);
            let dm = b.scale(d[0], m)?;
            b.shaped_like(dm, x[0]);
            let s = b.prim(SumAxis, &[dm, x[1], x[2]]);
            Some(b.prim(Div, &[s, cnt]))
        }),
        LogSumExpAxis => tr(3, |b, x, y, d| {
            // d(logsumexp) = sum(dx * softmax(x)), softmax computed stably from the result
            let yb = b.prim(UnsumAxis, &[y, x[0], x[1], x[2]]);
            let z = b.prim(Sub, &[x[0], yb]);
            let p = b.prim(Exp, &[z]);
            let dp = b.scale(d[0], p)?;
            b.shaped_like(dp, x[0]);
            Some(b.prim(SumAxis, &[dp, x[1], x[2]]))
        }),
        Softmax => tr(2, |b, x, y, d| {
            // y * (dx - sum(y * dx))
            let yd = b.scale(d[0], y)?;
            b.shaped_like(yd, x[0]);
            let s = b.prim(SumAxis, &[yd, x[1], Atom::Bool(false)]);
            let sb = b.prim(UnsumAxis, &[s, x[0], x[1], Atom::Bool(false)]);
            let diff = b.prim(Sub, &[d[0]?, sb]);
            Some(b.prim(Mul, &[diff, y]))
        }),
        LogSoftmax => tr(2, |b, x, y, d| {
            // dx - sum(dx * softmax(x)), softmax = exp(y)
            let e = b.prim(Exp, &[y]);
            let de = b.scale(d[0], e)?;
            b.shaped_like(de, x[0]);
            let s = b.prim(SumAxis, &[de, x[1], Atom::Bool(false)]);
            let sb = b.prim(UnsumAxis, &[s, x[0], x[1], Atom::Bool(false)]);
            Some(b.prim(Sub, &[d[0]?, sb]))
        }),
        Matmul => lin(
            Method("matmul"),
            2,
            Float,
            |b, x, _, d| {
                let l = d[0].map(|t| b.prim(Matmul, &[t, x[1]]));
                let r = d[1].map(|t| b.prim(Matmul, &[x[0], t]));
                b.add(l, r)
            },
            |b, ct, x, l| {
                // bilinear: linear in exactly one argument here
                if l[0] {
                    let like = b.primal_of(x[0]);
                    vec![Some(b.prim(MatmulTl, &[ct, x[1], like])), None]
                } else {
                    let like = b.primal_of(x[1]);
                    vec![None, Some(b.prim(MatmulTr, &[x[0], ct, like]))]
                }
            },
        ),
        Einsum => Row {
            arity: 0,
            ..tl(0, einsum_jvp, einsum_transpose)
        },
        EinsumT => Row {
            arity: 0,
            ..tr(0, einsum_t_jvp)
        },
        MatmulTl => tr(3, |b, x, _, d| {
            let l = d[0].map(|t| b.prim(MatmulTl, &[t, x[1], x[2]]));
            let r = d[1].map(|t| b.prim(MatmulTl, &[x[0], t, x[2]]));
            b.add(l, r)
        }),
        MatmulTr => tr(3, |b, x, _, d| {
            let l = d[0].map(|t| b.prim(MatmulTr, &[t, x[1], x[2]]));
            let r = d[1].map(|t| b.prim(MatmulTr, &[x[0], t, x[2]]));
            b.add(l, r)
        }),
        Conv => lin(
            Method("conv"),
            3,
            Float,
            |b, x, _, d| {
                let l = d[0].map(|t| b.prim(Conv, &[t, x[1], x[2]]));
                let r = d[1].map(|t| b.prim(Conv, &[x[0], t, x[2]]));
                b.add(l, r)
            },
            |b, ct, x, l| {
                // bilinear: linear in exactly one argument here
                if l[0] {
                    let like = b.primal_of(x[0]);
                    vec![Some(b.prim(ConvTl, &[ct, x[1], like, x[2]])), None, None]
                } else {
                    let like = b.primal_of(x[1]);
                    vec![None, Some(b.prim(ConvTr, &[x[0], ct, like, x[2]])), None]
                }
            },
        ),
        ConvTranspose => lin(
            Method("conv_transpose"),
            4,
            Float,
            |b, x, _, d| {
                let l = d[0].map(|t| b.prim(ConvTranspose, &[t, x[1], x[2], x[3]]));
                let r = d[1].map(|t| b.prim(ConvTranspose, &[x[0], t, x[2], x[3]]));
                b.add(l, r)
            },
            |b, ct, x, l| {
                // the adjoint of the adjoint: a convolution of the cotangent; in `w`, the
                // convolution's weight cotangent with the roles of input and cotangent swapped
                if l[0] {
                    let y = b.prim(Conv, &[ct, x[1], x[2]]);
                    vec![Some(b.fit(y, x[0])), None, None, None]
                } else {
                    let like = b.primal_of(x[1]);
                    let g = b.prim(ConvTr, &[ct, x[0], like, x[2]]);
                    vec![None, Some(g), None, None]
                }
            },
        ),
        Unfold => lin(
            Method("unfold_with"),
            4,
            Float,
            |b, x, _, d| d[0].map(|t| b.prim(Unfold, &[t, x[1], x[2], f(0.0)])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![
                    Some(b.prim(Fold, &[ct, like, x[1], x[2]])),
                    None,
                    None,
                    None,
                ]
            },
        ),
        Fold => tl(
            4,
            |b, x, _, d| d[0].map(|t| b.prim(Fold, &[t, x[1], x[2], x[3]])),
            |b, ct, x, _| {
                vec![
                    Some(b.prim(Unfold, &[ct, x[2], x[3], f(0.0)])),
                    None,
                    None,
                    None,
                ]
            },
        ),
        ConvTl => tr(4, |b, x, _, d| {
            let l = d[0].map(|t| b.prim(ConvTl, &[t, x[1], x[2], x[3]]));
            let r = d[1].map(|t| b.prim(ConvTl, &[x[0], t, x[2], x[3]]));
            b.add(l, r)
        }),
        ConvTr => tr(4, |b, x, _, d| {
            let l = d[0].map(|t| b.prim(ConvTr, &[t, x[1], x[2], x[3]]));
            let r = d[1].map(|t| b.prim(ConvTr, &[x[0], t, x[2], x[3]]));
            b.add(l, r)
        }),
        LuSolve => lin(
            Call(""),
            4,
            Float,
            |b, x, y, d| {
                // a (x + dx) = b + db  =>  a dx = db - da x (aᵀ: daᵀ)
                let da_x = d[1].map(|t| {
                    let t = if x[3] == Atom::Bool(true) {
                        let tt = b.prim(Mt, &[t]);
                        b.shaped_like(tt, x[1]);
                        tt
                    } else {
                        t
                    };
                    b.prim(Matmul, &[t, y])
                });
                let rhs = b.sub(d[2], da_x)?;
                Some(b.prim(LuSolve, &[x[0], x[1], rhs, x[3]]))
            },
            |b, ct, x, _| {
                // linear in the right-hand side only: the solve with the transposed matrix,
                // from the same factors
                let flip = Atom::Bool(x[3] != Atom::Bool(true));
                let g = b.prim(LuSolve, &[x[0], x[1], ct, flip]);
                vec![None, None, Some(b.fit(g, x[2])), None]
            },
        ),
        LuFactor => r(Call(""), 1, Float, None),
        LuSign => r(Call(""), 1, Float, None),
        EyeLike => r(Call(""), 1, Float, None),
        LuLogAbsDet => tr(2, |b, x, _, d| {
            // d log|det a| = tr(a⁻¹ da), the solve from the same factors
            let s = b.prim(LuSolve, &[x[0], x[1], d[1]?, Atom::Bool(false)]);
            b.shaped_like(s, x[1]);
            let diag = b.prim(Diagonal, &[s]);
            let like = b.prim(Diagonal, &[x[1]]);
            b.shaped_like(diag, like);
            let last = b.prim(Neg, &[Atom::Int(1)]);
            Some(b.prim(SumAxis, &[diag, last, Atom::Bool(false)]))
        }),
        SolveTriangular => lin(
            Method("solve_triangular"),
            3,
            Float,
            |b, x, y, d| {
                // as `solve`, with only the triangle of the matrix that is read
                let da_x = d[0].map(|t| {
                    let tri = b.prim(Triangle, &[t, x[2]]);
                    b.shaped_like(tri, x[0]);
                    b.prim(Matmul, &[tri, y])
                });
                let rhs = b.sub(d[1], da_x)?;
                Some(b.prim(SolveTriangular, &[x[0], rhs, x[2]]))
            },
            |b, ct, x, _| {
                let at = b.prim(Mt, &[x[0]]);
                let upper = b.prim(Not, &[x[2]]);
                let g = b.prim(SolveTriangular, &[at, ct, upper]);
                vec![None, Some(b.fit(g, x[1])), None]
            },
        ),
        Cholesky => tr(1, |b, x, l, d| {
            // l lᵀ = s (the symmetric part of a): dl = l Φ(l⁻¹ ds l⁻ᵀ), Φ taking the lower
            // triangle with the diagonal halved (Murray 2016; JAX's cholesky_jvp_rule)
            let t = d[0]?;
            let ds = symmetric_part(b, t, x[0]);
            let left = b.prim(SolveTriangular, &[l, ds, Atom::Bool(true)]);
            let left_t = b.prim(Mt, &[left]);
            let inner = b.prim(SolveTriangular, &[l, left_t, Atom::Bool(true)]);
            b.shaped_like(inner, x[0]);
            let low = b.prim(Tril, &[inner, Atom::Int(0)]);
            let diag = b.prim(Diagonal, &[inner]);
            let half = b.prim(Mul, &[diag, f(0.5)]);
            let on_diag = b.prim(Undiagonal, &[half, l]);
            let phi = b.prim(Sub, &[low, on_diag]);
            b.shaped_like(phi, x[0]);
            Some(b.prim(Matmul, &[l, phi]))
        }),
        EighFactor => r(Call(""), 1, Float, None),
        Eigh => tr(2, |b, x, p, d| {
            // dw = diag(m), dv = v (F ∘ m) with m = vᵀ ds v, ds the symmetric part of da,
            // F_ij = 1 / (w_j - w_i) off the diagonal and 0 on it (JAX's eigh_jvp_rule)
            let t = d[1]?;
            let ds = symmetric_part(b, t, x[1]);
            let v = b.prim(EighVectors, &[p]);
            let m = sandwich(b, v, ds, x[1]);
            let dw = b.prim(Diagonal, &[m]);
            let w = b.prim(EighValues, &[p]);
            let (wj, wi) = row_and_column(b, w);
            let gaps = b.prim(Sub, &[wj, wi]);
            let fm = inverse_gaps(b, gaps);
            let scaled = b.prim(Mul, &[fm, m]);
            b.shaped_like(scaled, x[1]);
            let dv = b.prim(Matmul, &[v, scaled]);
            b.shaped_like(dv, x[1]);
            Some(b.prim(EighPack, &[dv, dw]))
        }),
        Eigvalsh => tr(2, |b, x, _, d| {
            // dw = diag(vᵀ da v) (the same for da's symmetric part)
            let t = d[1]?;
            let v = b.prim(EighVectors, &[x[0]]);
            let m = sandwich(b, v, t, x[1]);
            Some(b.prim(Diagonal, &[m]))
        }),
        EighValues => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(EighValues, &[t])),
            |b, ct, x, _| vec![Some(unpart(b, ct, x[0], EIGH, 1))],
        ),
        EighVectors => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(EighVectors, &[t])),
            |b, ct, x, _| vec![Some(unpart(b, ct, x[0], EIGH, 0))],
        ),
        EighPack => tl(
            2,
            |b, x, _, d| pack_jvp(b, x, d, EIGH),
            |b, ct, _, l| pack_transpose(b, ct, l, EIGH),
        ),
        QrFactor => r(Call(""), 1, Float, None),
        Qr => tr(2, |b, x, p, d| {
            // for m >= n (JAX's qr_jvp_rule): with y = da r⁻¹ and s = qᵀ y, o = tril(s, -1)
            // - tril(s, -1)ᵀ (skew-symmetric), dq = q (o - s) + y, dr = (s - o) r
            let t = d[1]?;
            let r = b.prim(QrRSquare, &[p]);
            let q = b.prim(QrQ, &[p]);
            let y = b.prim(RSolve, &[t, r, Atom::Bool(false)]);
            b.shaped_like(y, x[1]);
            let qt = b.prim(Mt, &[q]);
            let s = b.prim(Matmul, &[qt, y]);
            b.shaped_like(s, r);
            let below = b.prim(Neg, &[Atom::Int(1)]);
            let low = b.prim(Tril, &[s, below]);
            b.shaped_like(low, r);
            let low_t = b.prim(Mt, &[low]);
            b.shaped_like(low_t, r);
            let o = b.prim(Sub, &[low, low_t]);
            b.shaped_like(o, r);
            let o_s = b.prim(Sub, &[o, s]);
            b.shaped_like(o_s, r);
            let q_os = b.prim(Matmul, &[q, o_s]);
            b.shaped_like(q_os, q);
            let dq = b.prim(Add, &[q_os, y]);
            b.shaped_like(dq, q);
            let s_o = b.prim(Sub, &[s, o]);
            b.shaped_like(s_o, r);
            let dr = b.prim(Matmul, &[s_o, r]);
            b.shaped_like(dr, r);
            Some(b.prim(QrPack, &[dq, dr]))
        }),
        QrQ => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(QrQ, &[t])),
            |b, ct, x, _| vec![Some(unpart(b, ct, x[0], QR, 0))],
        ),
        QrR => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(QrR, &[t])),
            |b, ct, x, _| vec![Some(unpart(b, ct, x[0], QR, 1))],
        ),
        QrRSquare => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(QrRSquare, &[t])),
            |b, ct, x, _| vec![Some(unpart(b, ct, x[0], QR, 1))],
        ),
        QrPack => tl(
            2,
            |b, x, _, d| pack_jvp(b, x, d, QR),
            |b, ct, _, l| pack_transpose(b, ct, l, QR),
        ),
        RSolve => lin(
            Call(""),
            3,
            Float,
            |b, x, y, d| {
                // y op(r) = x  =>  dy op(r) = dx - y op(dr), op(dr) read in r's triangle
                let y_dr = d[1].map(|t| {
                    let tri = b.prim(Triangle, &[t, Atom::Bool(false)]);
                    b.shaped_like(tri, x[1]);
                    let tri = if x[2] == Atom::Bool(true) {
                        let tt = b.prim(Mt, &[tri]);
                        b.shaped_like(tt, x[1]);
                        tt
                    } else {
                        tri
                    };
                    b.prim(Matmul, &[y, tri])
                });
                let rhs = b.sub(d[0], y_dr)?;
                Some(b.prim(RSolve, &[rhs, x[1], x[2]]))
            },
            |b, ct, x, _| {
                // x ↦ x r⁻¹ transposes to ct ↦ ct r⁻ᵀ
                let flip = Atom::Bool(x[2] != Atom::Bool(true));
                vec![Some(b.prim(RSolve, &[ct, x[1], flip])), None, None]
            },
        ),
        SvdFactor => r(Call(""), 1, Float, None),
        Svd => tr(2, |b, _, p, d| {
            // JAX's svd_jvp_rule (real): ds = diag(d), d = uᵀ da v; du = u (F ∘ (d S + (d
            // S)ᵀ)) + (da v - u uᵀ da v) S⁻¹, dv = v (F ∘ (S d + (S d)ᵀ)) + (daᵀ u - v vᵀ daᵀ
            // u) S⁻¹ (each correction zero unless that factor is not square), F_ij = 1 /
            // (s_j² - s_i²) off the diagonal, 0 on it
            let t = d[1]?;
            let u = b.prim(SvdU, &[p]);
            let s = b.prim(SvdS, &[p]);
            let vt = b.prim(SvdVt, &[p]);
            let v = b.prim(Mt, &[vt]);
            let ut = b.prim(Mt, &[u]);
            let t_v = b.prim(Matmul, &[t, v]);
            b.shaped_like(t_v, u);
            let dm = b.prim(Matmul, &[ut, t_v]);
            let (sj, si) = row_and_column(b, s);
            let plus = b.prim(Add, &[sj, si]);
            let minus = b.prim(Sub, &[sj, si]);
            let gaps = b.prim(Mul, &[plus, minus]);
            b.shaped_like(dm, gaps);
            let ds = b.prim(Diagonal, &[dm]);
            let fm = inverse_gaps(b, gaps);
            // 1 / s, 0 where s is
            let zero = b.prim(Eq, &[s, f(0.0)]);
            let rs = b.prim(Recip, &[s]);
            let s_inv = b.prim(Select, &[zero, f(0.0), rs]);
            let s_inv = row_and_column(b, s_inv).0;
            let sym = |b: &mut Rules, scaled: Atom| {
                b.shaped_like(scaled, gaps);
                let st = b.prim(Mt, &[scaled]);
                b.shaped_like(st, gaps);
                let both = b.prim(Add, &[scaled, st]);
                b.shaped_like(both, gaps);
                let out = b.prim(Mul, &[fm, both]);
                b.shaped_like(out, gaps);
                out
            };
            // the part of a tangent `y` (shaped like `w`) outside `w`'s span, over s
            let outside = |b: &mut Rules, y: Atom, w: Atom, wt: Atom| {
                b.shaped_like(y, w);
                let proj = b.prim(Matmul, &[wt, y]);
                b.shaped_like(proj, gaps);
                let back = b.prim(Matmul, &[w, proj]);
                b.shaped_like(back, w);
                let rest = b.prim(Sub, &[y, back]);
                b.shaped_like(rest, w);
                let out = b.prim(Mul, &[rest, s_inv]);
                b.shaped_like(out, w);
                out
            };
            let d_s = b.prim(Mul, &[sj, dm]);
            let inner_u = sym(b, d_s);
            let du_in = b.prim(Matmul, &[u, inner_u]);
            b.shaped_like(du_in, u);
            let du_out = outside(b, t_v, u, ut);
            let du = b.prim(Add, &[du_in, du_out]);
            b.shaped_like(du, u);
            let s_d = b.prim(Mul, &[si, dm]);
            let inner_v = sym(b, s_d);
            let dv_in = b.prim(Matmul, &[v, inner_v]);
            b.shaped_like(dv_in, v);
            let ut_t = b.prim(Matmul, &[ut, t]);
            b.shaped_like(ut_t, vt);
            let tt_u = b.prim(Mt, &[ut_t]);
            let dv_out = outside(b, tt_u, v, vt);
            let dv = b.prim(Add, &[dv_in, dv_out]);
            b.shaped_like(dv, v);
            let dvt = b.prim(Mt, &[dv]);
            b.shaped_like(dvt, vt);
            Some(b.prim(SvdPack, &[du, ds, dvt]))
        }),
        Svdvals => tr(2, |b, x, _, d| {
            // ds = diag(uᵀ da v)
            let t = d[1]?;
            let u = b.prim(SvdU, &[x[0]]);
            let vt = b.prim(SvdVt, &[x[0]]);
            let v = b.prim(Mt, &[vt]);
            let t_v = b.prim(Matmul, &[t, v]);
            b.shaped_like(t_v, u);
            let ut = b.prim(Mt, &[u]);
            let dm = b.prim(Matmul, &[ut, t_v]);
            let like = b.prim(Matmul, &[ut, u]);
            b.shaped_like(dm, like);
            Some(b.prim(Diagonal, &[dm]))
        }),
        SvdU => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(SvdU, &[t])),
            |b, ct, x, _| vec![Some(unpart(b, ct, x[0], SVD, 0))],
        ),
        SvdS => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(SvdS, &[t])),
            |b, ct, x, _| vec![Some(unpart(b, ct, x[0], SVD, 1))],
        ),
        SvdVt => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(SvdVt, &[t])),
            |b, ct, x, _| vec![Some(unpart(b, ct, x[0], SVD, 2))],
        ),
        SvdPack => tl(
            3,
            |b, x, _, d| pack_jvp(b, x, d, SVD),
            |b, ct, _, l| pack_transpose(b, ct, l, SVD),
        ),
        Tril => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Tril, &[t, x[1]])),
            |b, ct, x, _| vec![Some(b.prim(Tril, &[ct, x[1]])), None],
        ),
        Triu => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Triu, &[t, x[1]])),
            |b, ct, x, _| vec![Some(b.prim(Triu, &[ct, x[1]])), None],
        ),
        Triangle => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Triangle, &[t, x[1]])),
            |b, ct, x, _| vec![Some(b.prim(Triangle, &[ct, x[1]])), None],
        ),
        Diagonal => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(Diagonal, &[t])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![Some(b.prim(Undiagonal, &[ct, like]))]
            },
        ),
        Undiagonal => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Undiagonal, &[t, x[1]])),
            |b, ct, _, _| vec![Some(b.prim(Diagonal, &[ct])), None],
        ),
        Mt => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(Mt, &[t])),
            |b, ct, _, _| vec![Some(b.prim(Mt, &[ct]))],
        ),
        Reshape => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Reshape, &[t, x[1]])),
            reshape_back,
        ),
        Flatten => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(Flatten, &[t])),
            reshape_back,
        ),
        Unsqueeze => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Unsqueeze, &[t, x[1]])),
            reshape_back,
        ),
        Squeeze => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Squeeze, &[t, x[1]])),
            reshape_back,
        ),
        T => tl(
            1,
            |b, _, _, d| d[0].map(|t| b.prim(T, &[t])),
            |b, ct, _, _| vec![Some(b.prim(T, &[ct]))],
        ),
        BroadcastTo => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(BroadcastTo, &[t, x[1]])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![Some(b.prim(SumTo, &[ct, like])), None]
            },
        ),
        SumTo => Row {
            out: KindOf(1),
            ..tl(
                2,
                |b, x, _, d| d[0].map(|t| b.prim(SumTo, &[t, x[1]])),
                |b, ct, x, _| {
                    let like = b.primal_of(x[0]);
                    vec![Some(b.prim(BroadcastLike, &[ct, like])), None]
                },
            )
        },
        BroadcastLike => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(BroadcastLike, &[t, x[1]])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![Some(b.prim(SumTo, &[ct, like])), None]
            },
        ),
        UnsumAxis => tl(
            4,
            |b, x, _, d| d[0].map(|t| b.prim(UnsumAxis, &[t, x[1], x[2], x[3]])),
            |b, ct, x, _| vec![Some(b.prim(SumAxis, &[ct, x[2], x[3]])), None, None, None],
        ),
        ReshapeLike => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(ReshapeLike, &[t, x[1]])),
            reshape_back,
        ),
        Transpose => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(Transpose, &[t, x[1], x[2]])),
            |b, ct, x, _| vec![Some(b.prim(Transpose, &[ct, x[1], x[2]])), None, None],
        ),
        Permute => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Permute, &[t, x[1]])),
            |b, ct, x, _| {
                // the inverse permutation (the helper inverts it)
                let like = b.primal_of(x[0]);
                vec![Some(b.prim(Unpermute, &[ct, x[1], like])), None]
            },
        ),
        Unpermute => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(Unpermute, &[t, x[1], x[2]])),
            |b, ct, x, _| vec![Some(b.prim(Permute, &[ct, x[1]])), None, None],
        ),
        CumSum => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(CumSum, &[t, x[1], x[2]])),
            |b, ct, x, _| {
                let other = b.prim(Not, &[x[2]]);
                vec![Some(b.prim(CumSum, &[ct, x[1], other])), None, None]
            },
        ),
        Roll => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(Roll, &[t, x[1], x[2]])),
            |b, ct, x, _| {
                let back = b.prim(Neg, &[x[1]]);
                vec![Some(b.prim(Roll, &[ct, back, x[2]])), None, None]
            },
        ),
        Shift => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(Shift, &[t, x[1], x[2]])),
            |b, ct, x, _| {
                let back = b.prim(Neg, &[x[1]]);
                vec![Some(b.prim(Shift, &[ct, back, x[2]])), None, None]
            },
        ),
        // (the transposes read the operand's length from a primal of its shape: with no
        // copies the cotangent has none to give)
        Repeat => tl(
            3,
            |b, x, _, d| {
                d[0].map(|t| {
                    b.shaped_like(t, x[0]);
                    b.prim(Repeat, &[t, x[1], x[2]])
                })
            },
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![Some(b.prim(RepeatT, &[ct, x[1], x[2], like])), None, None]
            },
        ),
        RepeatT => tl(
            4,
            |b, x, _, d| d[0].map(|t| b.prim(RepeatT, &[t, x[1], x[2], x[3]])),
            |b, ct, x, _| vec![Some(b.prim(Repeat, &[ct, x[1], x[2]])), None, None, None],
        ),
        Tile => tl(
            3,
            |b, x, _, d| {
                d[0].map(|t| {
                    b.shaped_like(t, x[0]);
                    b.prim(Tile, &[t, x[1], x[2]])
                })
            },
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![Some(b.prim(TileT, &[ct, x[1], x[2], like])), None, None]
            },
        ),
        TileT => tl(
            4,
            |b, x, _, d| d[0].map(|t| b.prim(TileT, &[t, x[1], x[2], x[3]])),
            |b, ct, x, _| vec![Some(b.prim(Tile, &[ct, x[1], x[2]])), None, None, None],
        ),
        Flip => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Flip, &[t, x[1]])),
            |b, ct, x, _| vec![Some(b.prim(Flip, &[ct, x[1]])), None],
        ),
        LinRec => lin(
            Call(""),
            3,
            Float,
            |b, x, y, d| recurrence_jvp(b, x, y, d, false),
            |b, ct, x, _| recurrence_transpose(b, ct, x, false),
        ),
        LinRecRev => lin(
            Call(""),
            3,
            Float,
            |b, x, y, d| recurrence_jvp(b, x, y, d, true),
            |b, ct, x, _| recurrence_transpose(b, ct, x, true),
        ),
        Pinv => tr(1, |b, x, p, d| {
            // dP = -P T P + P Pᵀ Tᵀ (I - A P) + (I - P A) Tᵀ Pᵀ P, with A [m, n], P [n, m]
            let (t, a) = (d[0]?, x[0]);
            let pa = b.prim(Matmul, &[p, a]);
            let ap = b.prim(Matmul, &[a, p]);
            let pt = b.prim(Mt, &[p]);
            let pt_t = b.prim(Matmul, &[p, t]);
            b.shaped_like(pt_t, pa);
            let ptp = b.prim(Matmul, &[pt_t, p]);
            b.shaped_like(ptp, p);
            let first = b.prim(Neg, &[ptp]);
            b.shaped_like(first, p);
            let tt = b.prim(Mt, &[t]);
            b.shaped_like(tt, p);
            let ppt = b.prim(Matmul, &[p, pt]);
            let left = b.prim(Matmul, &[ppt, tt]);
            b.shaped_like(left, p);
            let eye_m = b.prim(EyeLike, &[ap]);
            let off_m = b.prim(Sub, &[eye_m, ap]);
            let second = b.prim(Matmul, &[left, off_m]);
            b.shaped_like(second, p);
            let eye_n = b.prim(EyeLike, &[pa]);
            let off_n = b.prim(Sub, &[eye_n, pa]);
            let right = b.prim(Matmul, &[off_n, tt]);
            b.shaped_like(right, p);
            let ptpp = b.prim(Matmul, &[pt, p]);
            let third = b.prim(Matmul, &[right, ptpp]);
            b.shaped_like(third, p);
            let two = b.add(Some(first), Some(second));
            b.add(two, Some(third))
        }),
        Expm => tr(1, |b, x, _, d| {
            d[0].map(|t| b.prim(ExpmFrechet, &[x[0], t]))
        }),
        ExpmFrechet => lin(
            Call(""),
            2,
            Float,
            |b, x, _, d| {
                // L(A, E) = upper right of expm([[A, E], [0, A]]): in A along F, the upper
                // right of L([[A, E], [0, A]], [[F, 0], [0, F]])
                let l = d[1].map(|t| b.prim(ExpmFrechet, &[x[0], t]));
                let r = d[0].map(|fa| {
                    let m = b.prim(BlockUpper, &[x[0], x[1]]);
                    let dm = b.prim(BlockUpper, &[fa, f(0.0)]);
                    let big = b.prim(ExpmFrechet, &[m, dm]);
                    b.prim(Quadrant, &[big, Atom::Int(1)])
                });
                b.add(l, r)
            },
            |b, ct, x, _| {
                // L(A, .) is its own kind of adjoint: <G, L(A, E)> = <L(Aᵀ, G), E>
                let at = b.prim(Mt, &[x[0]]);
                vec![None, Some(b.prim(ExpmFrechet, &[at, ct]))]
            },
        ),
        BlockUpper => lin(
            Call(""),
            2,
            Float,
            |b, _, _, d| {
                if d[0].is_none() && d[1].is_none() {
                    return None;
                }
                let (ta, te) = (d[0].unwrap_or(f(0.0)), d[1].unwrap_or(f(0.0)));
                Some(b.prim(BlockUpper, &[ta, te]))
            },
            |b, ct, _, l| {
                let a = l[0].then(|| {
                    let upper = b.prim(Quadrant, &[ct, Atom::Int(0)]);
                    let lower = b.prim(Quadrant, &[ct, Atom::Int(3)]);
                    b.prim(Add, &[upper, lower])
                });
                let e = l[1].then(|| b.prim(Quadrant, &[ct, Atom::Int(1)]));
                vec![a, e]
            },
        ),
        Quadrant => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Quadrant, &[t, x[1]])),
            |b, ct, x, _| vec![Some(b.prim(QuadrantT, &[ct, x[1]])), None],
        ),
        QuadrantT => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(QuadrantT, &[t, x[1]])),
            |b, ct, x, _| vec![Some(b.prim(Quadrant, &[ct, x[1]])), None],
        ),
        Pad => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Pad, &[t, x[1]])),
            |b, ct, x, _| vec![Some(b.prim(Unpad, &[ct, x[1]])), None],
        ),
        PadWith => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(PadWith, &[t, x[1], x[2]])),
            |b, ct, x, _| {
                vec![
                    Some(b.prim(PadWithTranspose, &[ct, x[1], x[2]])),
                    None,
                    None,
                ]
            },
        ),
        PadWithTranspose => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(PadWithTranspose, &[t, x[1], x[2]])),
            |b, ct, x, _| vec![Some(b.prim(PadWith, &[ct, x[1], x[2]])), None, None],
        ),
        Unpad => tl(
            2,
            |b, x, _, d| d[0].map(|t| b.prim(Unpad, &[t, x[1]])),
            |b, ct, x, _| vec![Some(b.prim(Pad, &[ct, x[1]])), None],
        ),
        Slice => tl(
            4,
            |b, x, _, d| d[0].map(|t| b.prim(Slice, &[t, x[1], x[2], x[3]])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![
                    Some(b.prim(Unslice, &[ct, like, x[1], x[2], x[3]])),
                    None,
                    None,
                    None,
                ]
            },
        ),
        Unslice => tl(
            5,
            |b, x, _, d| d[0].map(|t| b.prim(Unslice, &[t, x[1], x[2], x[3], x[4]])),
            |b, ct, x, _| {
                let mut out = vec![Some(b.prim(Slice, &[ct, x[2], x[3], x[4]]))];
                out.resize(5, None);
                out
            },
        ),
        IndexSelect => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(IndexSelect, &[t, x[1], x[2]])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![Some(b.prim(IndexAdd, &[ct, like, x[1], x[2]])), None, None]
            },
        ),
        IndexAdd => tl(
            4,
            |b, x, _, d| d[0].map(|t| b.prim(IndexAdd, &[t, x[1], x[2], x[3]])),
            |b, ct, x, _| {
                let mut out = vec![Some(b.prim(IndexSelect, &[ct, x[2], x[3]]))];
                out.resize(4, None);
                out
            },
        ),
        SegmentArg => r(Syntax::Call(""), 4, Float, None),
        IndexAddTo => tl(
            4,
            |b, x, _, d| added_into_jvp(b, IndexAddTo, IndexAdd, x, d),
            |b, ct, x, l| {
                let src = l[3].then(|| b.prim(IndexSelect, &[ct, x[1], x[2]]));
                vec![l[0].then_some(ct), None, None, src]
            },
        ),
        ScatterAddTo => tl(
            4,
            |b, x, _, d| added_into_jvp(b, ScatterAddTo, TakeAlongT, x, d),
            |b, ct, x, l| {
                let src = l[3].then(|| b.prim(TakeAlong, &[ct, x[1], x[2]]));
                vec![l[0].then_some(ct), None, None, src]
            },
        ),
        SegmentSum => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(SegmentSum, &[t, x[1], x[2]])),
            |b, ct, x, _| {
                let gathered = b.prim(IndexSelect, &[ct, Atom::Int(0), x[1]]);
                vec![Some(gathered), None, None]
            },
        ),
        TakeAlong => tl(
            3,
            |b, x, _, d| d[0].map(|t| b.prim(TakeAlong, &[t, x[1], x[2]])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                vec![
                    Some(b.prim(TakeAlongT, &[ct, like, x[1], x[2]])),
                    None,
                    None,
                ]
            },
        ),
        TakeAlongT => tl(
            4,
            |b, x, _, d| d[0].map(|t| b.prim(TakeAlongT, &[t, x[1], x[2], x[3]])),
            |b, ct, x, _| {
                let mut out = vec![Some(b.prim(TakeAlong, &[ct, x[2], x[3]]))];
                out.resize(4, None);
                out
            },
        ),
        // the fill is a constant: the tangent reads 0 there
        TakeAlongOr => tl(
            4,
            |b, x, _, d| d[0].map(|t| b.prim(TakeAlongOr, &[t, x[1], x[2], Atom::Float(0.0)])),
            |b, ct, x, _| {
                let like = b.primal_of(x[0]);
                let mut out = vec![Some(b.prim(TakeAlongOrT, &[ct, like, x[1], x[2]]))];
                out.resize(4, None);
                out
            },
        ),
        TakeAlongOrT => tl(
            4,
            |b, x, _, d| d[0].map(|t| b.prim(TakeAlongOrT, &[t, x[1], x[2], x[3]])),
            |b, ct, x, _| {
                let gathered = b.prim(TakeAlongOr, &[ct, x[2], x[3], Atom::Float(0.0)]);
                let mut out = vec![Some(gathered)];
                out.resize(4, None);
                out
            },
        ),
        Concat => Row {
            arity: 0,
            ..tl(
                0,
                |b, x, _, d| join_jvp(b, x, d, Concat),
                |b, ct, x, l| join_transpose(b, ct, x, l, ConcatPart),
            )
        },
        Stack => Row {
            arity: 0,
            ..tl(
                0,
                |b, x, _, d| join_jvp(b, x, d, Stack),
                |b, ct, x, l| join_transpose(b, ct, x, l, StackPart),
            )
        },
        ConcatSeq => tl(
            2,
            |b, x, _, d| d[1].map(|t| b.prim(ConcatSeq, &[x[0], t])),
            |b, ct, x, _| {
                let parts = b.primal_of(x[1]);
                vec![None, Some(b.prim(UnconcatSeq, &[ct, x[0], parts]))]
            },
        ),
        StackSeq => tl(
            2,
            |b, x, _, d| d[1].map(|t| b.prim(StackSeq, &[x[0], t])),
            |b, ct, x, _| {
                let parts = b.primal_of(x[1]);
                vec![None, Some(b.prim(UnstackSeq, &[ct, x[0], parts]))]
            },
        ),
        // linear in the cotangent; their transposes (a part put back in place) are not
        // needed by any transform yet
        UnconcatSeq => r(
            Call(""),
            3,
            KindOf(2),
            Some(|b, x, _, d| d[0].map(|t| b.prim(UnconcatSeq, &[t, x[1], x[2]]))),
        ),
        UnstackSeq => r(
            Call(""),
            3,
            KindOf(2),
            Some(|b, x, _, d| d[0].map(|t| b.prim(UnstackSeq, &[t, x[1], x[2]]))),
        ),
        ConcatPart => Row {
            arity: 0,
            ..tr(0, |b, x, _, d| part_jvp(b, x, d, ConcatPart))
        },
        StackPart => Row {
            arity: 0,
            ..tr(0, |b, x, _, d| part_jvp(b, x, d, StackPart))
        },
        ZeroLike => r(Call(""), 1, Float, None),
        Numel => r(Call(""), 1, F64, None),
        AxisLen => r(Call(""), 2, F64, None),
    }
}

impl Prim {
    /// The primitives written as methods of a float (`x.sin()`, `a.max(b)`): `f64`'s, and
    /// those of the lanes of `ferrax::__private::lanes::L`, which has each
    /// (`tests/vmap_lanes.rs` calls every one over lanes).
    const FLOAT_METHODS: &[Prim] = {
        use Prim::*;
        &[
            Sin, Cos, Tan, Asin, Acos, Atan, Atan2, Sinh, Cosh, Tanh, Asinh, Acosh, Atanh, Exp,
            Exp2, ExpM1, Ln, Log, Log2, Log10, Ln1p, Sqrt, Cbrt, Powi, Powf, Abs, Signum, Hypot,
            Max, Min, MulAdd, Recip, Clamp, Floor, Ceil, Round, Trunc,
        ]
    };

    /// Whether this is a float method (`x.sin()`): one `f64` has, and so the lanes of
    /// `ferrax::__private::lanes::L` (which has every one).
    pub fn is_float_method(self) -> bool {
        Self::FLOAT_METHODS.contains(&self)
    }

    /// The primitive a float method names, with its number of arguments after the receiver.
    pub fn from_method(name: &str) -> Option<Prim> {
        Self::FLOAT_METHODS
            .iter()
            .copied()
            .find(|p| matches!(row(*p).syntax, Syntax::Method(m) if m == name))
    }

    /// The names of the supported float methods, for error messages.
    pub fn method_names() -> String {
        Self::FLOAT_METHODS
            .iter()
            .filter_map(|p| match row(*p).syntax {
                Syntax::Method(m) => Some(m),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The tensor method `name` with `nargs` arguments after the receiver, as a primitive
    /// whose first argument is the receiver (`mask.select(a, b)`: the mask).
    pub fn from_tensor_method(name: &str, nargs: usize) -> Option<Prim> {
        use Prim::*;
        let p = match (name, nargs) {
            ("neg", 0) => Neg,
            ("abs", 0) => Abs,
            ("exp", 0) => Exp,
            ("ln", 0) => Ln,
            ("log1p", 0) => Ln1p,
            ("expm1", 0) => ExpM1,
            ("sin", 0) => Sin,
            ("cos", 0) => Cos,
            ("tan", 0) => Tan,
            ("tanh", 0) => Tanh,
            ("sqrt", 0) => Sqrt,
            ("recip", 0) => Recip,
            ("sigmoid", 0) => Sigmoid,
            ("softplus", 0) => Softplus,
            ("logaddexp", 1) => LogAddExp,
            ("relu", 0) => Relu,
            ("sign", 0) => Signum,
            ("asin", 0) => Asin,
            ("acos", 0) => Acos,
            ("atan", 0) => Atan,
            ("sinh", 0) => Sinh,
            ("cosh", 0) => Cosh,
            ("asinh", 0) => Asinh,
            ("acosh", 0) => Acosh,
            ("atanh", 0) => Atanh,
            ("exp2", 0) => Exp2,
            ("log2", 0) => Log2,
            ("log10", 0) => Log10,
            ("cbrt", 0) => Cbrt,
            ("floor", 0) => Floor,
            ("ceil", 0) => Ceil,
            ("round", 0) => Round,
            ("trunc", 0) => Trunc,
            ("erf", 0) => Erf,
            ("atan2", 1) => Atan2,
            ("powi", 1) => Powi,
            ("powf", 1) | ("pow", 1) => Powf,
            ("add", 1) => Add,
            ("sub", 1) => Sub,
            ("mul", 1) => Mul,
            ("div", 1) => Div,
            ("maximum", 1) => Max,
            ("minimum", 1) => Min,
            ("clamp", 2) => Clamp,
            ("eq", 1) => Eq,
            ("ne", 1) => Ne,
            ("lt", 1) => Lt,
            ("le", 1) => Le,
            ("gt", 1) => Gt,
            ("ge", 1) => Ge,
            ("select", 2) => Select,
            ("sum", 0) => Sum,
            ("mean", 0) => Mean,
            ("max", 0) => MaxAll,
            ("min", 0) => MinAll,
            ("sum_axis", 2) => SumAxis,
            // lowered to means, sums and a square root (see `lower_statistic` in the parser)
            ("var", 0) | ("std", 0) => Mean,
            ("var_axis", 2) | ("std_axis", 2) => MeanAxis,
            ("norm", 0) => Sum,
            ("norm_axis", 2) => SumAxis,
            ("mean_axis", 2) => MeanAxis,
            ("max_axis", 2) => MaxAxis,
            ("min_axis", 2) => MinAxis,
            ("logsumexp_axis", 2) => LogSumExpAxis,
            ("softmax", 1) => Softmax,
            ("log_softmax", 1) => LogSoftmax,
            ("matmul", 1) => Matmul,
            ("conv", 2) => Conv,
            ("conv_transpose", 3) => ConvTranspose,
            // the padding read as zeros (see `Unfold`)
            ("unfold", 2) => Unfold,
            ("reshape", 1) => Reshape,
            ("flatten", 0) => Flatten,
            ("t", 0) => T,
            ("unsqueeze", 1) => Unsqueeze,
            ("squeeze", 1) => Squeeze,
            ("broadcast_to", 1) => BroadcastTo,
            ("transpose", 2) => Transpose,
            ("permute", 1) => Permute,
            ("slice", 3) => Slice,
            ("index_select", 2) => IndexSelect,
            ("segment_sum", 2) => SegmentSum,
            ("index_add", 3) => IndexAddTo,
            ("scatter_add", 3) => ScatterAddTo,
            ("take_along_axis", 2) => TakeAlong,
            // lowered to a gather at their sorting indices (see `TakeAlong`)
            ("sort", 1) | ("top_k", 1) => TakeAlong,
            ("roll", 2) => Roll,
            ("shift", 2) => Shift,
            ("flip", 1) => Flip,
            ("repeat", 2) => Repeat,
            ("tile", 2) => Tile,
            ("expm", 0) => Expm,
            ("pinv", 0) => Pinv,
            ("expm_frechet", 1) => ExpmFrechet,
            ("linear_recurrence", 2) => LinRec,
            ("linear_recurrence_rev", 2) => LinRecRev,
            // lowered with its direction (see `CumSum`)
            ("cumsum", 1) | ("cumsum_rev", 1) => CumSum,
            ("pad", 1) => Pad,
            ("unpad", 1) => Unpad,
            ("pad_with", 2) => PadWith,
            ("pad_with_transpose", 2) => PadWithTranspose,
            // lowered to a factorization and a solve with it (see `LuSolve`)
            ("solve", 1) => LuSolve,
            // lowered to a solve with the identity
            ("inv", 0) => EyeLike,
            // lowered to the factors' diagonal
            ("logabsdet", 0) => LuLogAbsDet,
            // lowered to the sign times the exponential of the log-determinant
            ("det", 0) => LuSign,
            ("solve_triangular", 2) => SolveTriangular,
            ("cholesky", 0) => Cholesky,
            // lowered to the values of the packed decomposition
            ("eigvalsh", 0) => Eigvalsh,
            // `let (q, r) = a.qr();`, lowered where it is destructured
            ("qr", 0) => Qr,
            // `let (u, s, vt) = a.svd();`, lowered where it is destructured
            ("svd", 0) => Svd,
            ("svdvals", 0) => Svdvals,
            ("tril", 1) => Tril,
            ("triu", 1) => Triu,
            ("diagonal", 0) => Diagonal,
            ("mt", 0) => Mt,
            _ => return None,
        };
        Some(p)
    }

    /// The tensor methods `#[grad]` knows, for error messages.
    pub fn tensor_method_names() -> &'static str {
        "neg abs exp ln log1p expm1 sin cos tan tanh asin acos atan atan2 sinh cosh asinh acosh \
         atanh exp2 log2 log10 cbrt erf floor ceil round trunc sqrt recip sigmoid relu sign powi \
         powf pow square clamp softplus logaddexp log_sigmoid silu gelu gelu_tanh elu selu leaky_relu \
         softsign mish relu6 hard_sigmoid hard_silu hard_tanh \
         add sub mul div maximum minimum eq ne lt le gt ge select sum mean max min sum_axis \
         mean_axis max_axis min_axis logsumexp logsumexp_axis var var_axis std std_axis norm norm_axis softmax log_softmax matmul conv conv_transpose unfold max_pool avg_pool reshape t \
         unsqueeze squeeze broadcast_to flatten transpose permute mt slice index_select index_add segment_sum segment_max segment_min take_along_axis scatter_add sort top_k roll shift flip repeat tile pad unpad pad_with pad_with_transpose cumsum cumsum_rev cumprod cumprod_rev cummax cummin logcumsumexp logcumsumexp_rev prod prod_axis linear_recurrence linear_recurrence_rev solve inv det logabsdet slogdet (as `let (sign, log) = \
         a.slogdet();`) \
         solve_triangular cholesky eigh (as `let (w, v) = a.eigh();`) eigvalsh qr (as `let (q, \
         r) = a.qr();`) svd (as `let (u, s, vt) = a.svd();`) svdvals pinv lstsq expm expm_frechet tril triu \
         diagonal trace outer, Tensor::concat Tensor::einsum \
         Tensor::stack Tensor::where_ (and the inactive shape dims numel len ndim item to_vec dtype device \
         is_empty strides argmax_axis argmin_axis cumargmax cumargmin argsort top_k_indices one_hot zeros_like ones_like full_like scalar_like)"
    }

    /// The positions of the arguments read only for their shape, dtype and device (the
    /// `like` of a cotangent's shape), never for their values.
    pub fn shape_only_args(self) -> &'static [usize] {
        use Prim::*;
        match self {
            MatmulTl | MatmulTr => &[2],
            SumTo | BroadcastLike | ReshapeLike | UnsumAxis => &[1],
            _ => &[],
        }
    }

    /// Whether generated code may evaluate this primitive on tensors within a chain of
    /// elementwise ones, as one call (`::ferrax::__private::fuse::Op::NAME`, named as the
    /// variant here; `Powi` with a literal exponent only, `Select` with a tensor mask,
    /// `BroadcastLike` unbatched, to a tensor's shape).
    pub fn fusable(self) -> bool {
        use Prim::*;
        self.arithmetic()
            || matches!(
                self,
                Exp | Ln
                    | Ln1p
                    | ExpM1
                    | Sin
                    | Cos
                    | Tan
                    | Tanh
                    | Sqrt
                    | Recip
                    | Sigmoid
                    | Softplus
                    | Asin
                    | Acos
                    | Atan
                    | Sinh
                    | Cosh
                    | Asinh
                    | Acosh
                    | Atanh
                    | Exp2
                    | Log2
                    | Log10
                    | Cbrt
                    | Erf
                    | Div
                    | Powf
                    | Atan2
            )
    }

    /// Whether this fusable primitive costs a few instructions per element (no
    /// transcendental function, no division): a chain of such primitives may be computed
    /// again by each of its readers rather than written once and read back.
    pub fn arithmetic(self) -> bool {
        use Prim::*;
        matches!(
            self,
            Neg | Abs
                | Add
                | Sub
                | Mul
                | Max
                | Min
                | Relu
                | Signum
                | Floor
                | Ceil
                | Round
                | Trunc
                | Lt
                | Le
                | Gt
                | Ge
                | Eq
                | Ne
                | Powi
                | Select
                | BroadcastLike
        )
    }

    /// The name of the generic helper (`::ferrax::__private::t::NAME`) that computes this
    /// primitive when a tensor is among its arguments.
    pub fn tensor_fn(self) -> String {
        let mut out = String::new();
        for (i, c) in format!("{self:?}").chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The kind of this primitive's result on arguments of the given kinds.
    pub fn out_kind(self, args: &[Kind]) -> Kind {
        let prec = args.iter().fold(Prec::Infer, |p, k| match k {
            Kind::Float(q) => p.join(*q),
            _ => p,
        });
        let any_float = args.iter().any(|k| matches!(k, Kind::Float(_)));
        let out = row(self).out;
        if args.iter().any(Kind::is_tensor) {
            match (self, out) {
                (Prim::IntAsFloat, _) => return Kind::Float(Prec::F64),
                (_, Out::Float | Out::Like | Out::Bool) => return Kind::Tensor,
                _ => {}
            }
        }
        match out {
            Out::KindOf(k) => args.get(k).cloned().unwrap_or(Kind::Opaque),
            Out::Float => Kind::Float(prec),
            Out::F32 => Kind::Float(Prec::F32),
            Out::F64 => Kind::Float(Prec::F64),
            Out::Bool => Kind::Bool,
            Out::Like if any_float => Kind::Float(prec),
            Out::Like => match args.first() {
                Some(Kind::Bool) => Kind::Bool,
                Some(Kind::Int) => Kind::Int,
                _ => Kind::Opaque,
            },
        }
    }

    /// Whether a derivative flows through this primitive.
    pub fn is_differentiable(self) -> bool {
        row(self).jvp.is_some()
    }

    /// Whether the primitive applies elementwise to floats as to tensors (arithmetic, the
    /// float methods, `select`): its result is a float when its operands are.
    pub fn is_elementwise(self) -> bool {
        use Prim::*;
        matches!(self, Add | Sub | Mul | Div | Rem | Neg | Select)
            || Self::FLOAT_METHODS.contains(&self)
    }

    /// Whether argument `k` is an integer (an exponent, an axis, a bound): a value of a type
    /// the macro cannot see there (`x.powi(cfg.n)`, `x.sum_axis(AXIS, false)`) is one.
    pub fn is_int_arg(self, k: usize) -> bool {
        use Prim::*;
        match self {
            Powi | SumAxis | MeanAxis | MaxAxis | MinAxis | LogSumExpAxis | Softmax | CumSum
            | LogSoftmax | Unsqueeze | Squeeze | IndexSelect | TakeAlong | TakeAlongOr | Tril
            | Triu | Flip | IndexAddTo | ScatterAddTo => k == 1,
            TakeAlongT | TakeAlongOrT | LinRec | LinRecRev | SegmentSum | SegmentArg => k == 2,
            EinsumT => k == 1,
            Transpose | Roll | Shift | Repeat | RepeatT | Tile | TileT => k == 1 || k == 2,
            Quadrant | QuadrantT => k == 1,
            Slice => (1..=3).contains(&k),
            Concat | Stack | ConcatSeq | StackSeq => k == 0,
            UnconcatSeq | UnstackSeq => k == 1,
            _ => false,
        }
    }

    /// Where the parts of a primitive with any number of tensor arguments start (`concat`'s
    /// after its axis): generated code passes them as one slice.
    pub fn parts_from(self) -> Option<usize> {
        use Prim::*;
        match self {
            Concat | Stack | Einsum => Some(1),
            ConcatPart | StackPart | EinsumT => Some(3),
            _ => None,
        }
    }

    /// Whether argument `k` only gives a shape (the `like` of a cotangent fitted to its
    /// operand, the parts of a joined cotangent): its tangent never reaches the result, so
    /// a result is not varied through it (forward over reverse then skips the zero
    /// tangents of a Hessian's seed path).
    pub fn is_shape_arg(self, k: usize) -> bool {
        use Prim::*;
        match self {
            SumTo | BroadcastLike | UnsumAxis | ReshapeLike | Unslice | IndexAdd | TakeAlongT
            | TakeAlongOrT | Fold => k == 1,
            MatmulTl | MatmulTr | ConvTl | ConvTr | Unpermute => k == 2,
            Undiagonal => k == 1,
            ConcatPart | StackPart => k >= 3,
            UnconcatSeq | UnstackSeq => k == 2,
            _ => false,
        }
    }
}

/// Emits the statements of a rule. Variables computed from a tangent (a `linear` one)
/// are marked, so that reverse mode can tell the linear part from the primal coefficients.
pub struct Rules<'f> {
    pub func: &'f mut Func,
    pub stmts: Vec<Stmt>,
    pub linear: HashSet<Var>,
    /// When transposing: the primal each argument tangent stands for (its shape is the
    /// shape a cotangent must be fitted to), and the primal the cotangent is of.
    pub primal: HashMap<Var, Var>,
    /// When transposing: the shapes of the function's values, by which [`Rules::fit`]
    /// leaves out sums over no axes.
    pub shapes: Option<&'f Shapes>,
    /// When transposing: the linearization the transpose walks (taken out of `stmts`),
    /// whose definitions [`Rules::fit`] reads for shapes.
    pub linearized: Vec<Stmt>,
}

impl<'f> Rules<'f> {
    pub fn new(func: &'f mut Func) -> Self {
        Rules {
            func,
            stmts: Vec::new(),
            linear: HashSet::new(),
            primal: HashMap::new(),
            shapes: None,
            linearized: Vec::new(),
        }
    }

    /// The shape of `a` as far as known: a linear value's by the primal it stands for or
    /// by its definition in this rule, a primal value's by the function's facts.
    fn shape(&self, a: Atom) -> Shape {
        let Atom::Var(v) = a else {
            return Shape::Scalar;
        };
        if let Some(p) = self.primal.get(&v) {
            return self.shape(Atom::Var(*p));
        }
        let defined = self
            .stmts
            .iter()
            .chain(&self.linearized)
            .find_map(|s| match s {
                Stmt::Let {
                    var,
                    rhs: Rhs::Prim(p, args),
                } if *var == v => Some((*p, args)),
                _ => None,
            });
        match (defined, self.shapes) {
            (Some((p, args)), _) => derive(p, args, v, |a| self.shape(a)),
            (None, Some(shapes)) => shapes.get(self.func, a),
            (None, None) => Shapes::default().get(self.func, a),
        }
    }

    /// The primal an argument tangent stands for; any other atom as it is.
    pub fn primal_of(&self, a: Atom) -> Atom {
        match a {
            Atom::Var(v) => Atom::Var(self.primal.get(&v).copied().unwrap_or(v)),
            a => a,
        }
    }

    /// Records that the linear intermediate `v` has the shape of the primal `like`, so that
    /// transposes needing its shape (a reduction's) can find it in the reverse sweep.
    pub fn shaped_like(&mut self, v: Atom, like: Atom) {
        if let (Atom::Var(v), Atom::Var(l)) = (v, self.primal_of(like)) {
            self.primal.insert(v, l);
        }
    }

    /// A cotangent contribution fitted to the operand it flows to: summed over the axes
    /// that broadcasting added (a float operand: summed whole). Scalar code, and a tensor
    /// contribution known to have the tensor operand's shape, are untouched.
    pub fn fit(&mut self, ct: Atom, operand: Atom) -> Atom {
        let like = self.primal_of(operand);
        let kinds = [self.func.kind(ct), self.func.kind(like)];
        let tensors = kinds.iter().any(Kind::is_tensor);
        let available = match like {
            Atom::Var(v) => !self.linear.contains(&v),
            _ => false,
        };
        let fitted = kinds == [Kind::Tensor, Kind::Tensor] && self.shape(ct).same(self.shape(like));
        if tensors && available && !fitted {
            self.prim(Prim::SumTo, &[ct, like])
        } else {
            ct
        }
    }

    /// `let v = p(args);`, returning `v`.
    pub fn prim(&mut self, p: Prim, args: &[Atom]) -> Atom {
        let kinds: Vec<Kind> = args.iter().map(|a| self.func.kind(*a)).collect();
        let var = self.func.new_var("d", p.out_kind(&kinds), false);
        if args
            .iter()
            .any(|a| matches!(a, Atom::Var(v) if self.linear.contains(v)))
        {
            self.linear.insert(var);
        }
        self.stmts.push(Stmt::Let {
            var,
            rhs: Rhs::Prim(p, args.to_vec()),
        });
        Atom::Var(var)
    }

    /// `t * c` (`None` stays `None`: a zero tangent).
    pub fn scale(&mut self, t: Option<Atom>, c: Atom) -> Option<Atom> {
        t.map(|t| self.prim(Prim::Mul, &[t, c]))
    }

    pub fn add(&mut self, a: Option<Atom>, b: Option<Atom>) -> Option<Atom> {
        match (a, b) {
            (Some(a), Some(b)) => Some(self.prim(Prim::Add, &[a, b])),
            (a, None) => a,
            (None, b) => b,
        }
    }

    pub fn sub(&mut self, a: Option<Atom>, b: Option<Atom>) -> Option<Atom> {
        match (a, b) {
            (Some(a), Some(b)) => Some(self.prim(Prim::Sub, &[a, b])),
            (a, None) => a,
            (None, b) => self.neg(b),
        }
    }

    pub fn neg(&mut self, a: Option<Atom>) -> Option<Atom> {
        a.map(|a| self.prim(Prim::Neg, &[a]))
    }

    /// `1 / sqrt(1 - x^2)`.
    fn one_over_sqrt_one_minus_sq(&mut self, x: Atom) -> Atom {
        let x2 = self.prim(Prim::Mul, &[x, x]);
        let s = self.prim(Prim::Sub, &[f(1.0), x2]);
        let q = self.prim(Prim::Sqrt, &[s]);
        self.prim(Prim::Div, &[f(1.0), q])
    }

    /// Tangent of `max` (`wins` = `Gt`) or `min` (`Lt`), ties split evenly as in JAX.
    fn balanced(&mut self, wins: Prim, x: &[Atom], d: &[Option<Atom>]) -> Option<Atom> {
        let tie = self.prim(Prim::Eq, &[x[0], x[1]]);
        let a_wins = self.prim(wins, &[x[0], x[1]]);
        let b_wins = self.prim(wins, &[x[1], x[0]]);
        let mut coeff = |me: Atom| {
            let half = self.prim(Prim::Select, &[tie, f(0.5), f(0.0)]);
            self.prim(Prim::Select, &[me, f(1.0), half])
        };
        let ca = coeff(a_wins);
        let cb = coeff(b_wins);
        let l = self.scale(d[0], ca);
        let r = self.scale(d[1], cb);
        self.add(l, r)
    }
}
