//! Chains of elementwise primitives that generated code evaluates as one: the macro
//! gathers each chain whose intermediate values are read only within it (a derivative's
//! `ct * (1 - y * y)`) into one call of [`run`], with the chain twice: as a list of
//! [`Instr`]s and compiled to Rust, a [`Kernel`] written with the functions of [`k`].
//!
//! [`run`] means exactly what the chain of `t::` (or, with batched arguments, `b::`)
//! helpers would have computed: batched arguments are aligned per example as the batching
//! rules align them, and the kernel runs over the result in one pass
//! ([`ferrax_runtime::fused::run_kernel`]), every intermediate in vector registers. A part
//! of the chain smaller than its result (a function of an unbatched value inside a batched
//! chain) is computed per element there, as XLA's fusions do. Where the pass does not
//! apply (a GPU tensor, mixed dtypes, a transposed operand), the instructions run op by op
//! through the same helpers.

use ferrax_runtime::Tensor;
use ferrax_runtime::cpu::kernels::{BinaryOp, CmpOp, UnaryOp};
use ferrax_runtime::fused::{self, Leaf};
pub use ferrax_runtime::fused::{Kernel, Lanes};
use ferrax_runtime::shape::{broadcast_shapes, numel};

use crate::batch_rules::{BArg, align_all};
use crate::tensor_rules::{self as t, Operand};

/// One instruction: a primitive and the registers it reads (the arguments first, then
/// one register per instruction; the last is the result).
#[derive(Clone, Copy, Debug)]
pub struct Instr(pub Op, pub [u16; 3]);

macro_rules! ops {
    (
        unary: $($u:ident => $uf:ident $uk:ident),*;
        binary: $($b:ident => $bf:ident $bk:ident),*;
        compare: $($c:ident => $cf:ident $ck:ident),*;
    ) => {
        /// A fusable primitive, named as in the macro's table.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Op {
            $($u,)*
            $($b,)*
            $($c,)*
            /// `x.powi(n)` with a literal `n`.
            Powi(i32),
            /// `select(mask, a, b)`.
            Select,
            /// `broadcast_like(x, like)`: `x` read at the shape of `like`, whose values
            /// are not read (in the blocked pass, `x` itself as a broadcast leaf).
            BroadcastLike,
        }

        /// The operations a compiled chain ([`Kernel`]) is written with, one function per
        /// fusable primitive, named as its [`Op`]: the runtime's vector bodies ([`Lanes`]).
        #[allow(non_snake_case)]
        pub mod k {
            use super::Lanes;

            /// `x^n` of each lane.
            #[inline(always)]
            pub fn Powi<V: Lanes>(v: V, x: V::Vec, n: i32) -> V::Vec {
                v.powi(x, n)
            }

            /// `a` where `mask` is nonzero, else `b`.
            #[inline(always)]
            pub fn Select<V: Lanes>(v: V, mask: V::Vec, a: V::Vec, b: V::Vec) -> V::Vec {
                v.select(mask, a, b)
            }

            $(
                #[doc = concat!("`", stringify!($uf), "` of each lane.")]
                #[inline(always)]
                pub fn $u<V: Lanes>(v: V, x: V::Vec) -> V::Vec {
                    v.$uf(x)
                }
            )*
            $(
                #[doc = concat!("`", stringify!($bf), "` of each pair of lanes.")]
                #[inline(always)]
                pub fn $b<V: Lanes>(v: V, a: V::Vec, b: V::Vec) -> V::Vec {
                    v.$bf(a, b)
                }
            )*
            $(
                #[doc = concat!("`", stringify!($cf), "` of each pair of lanes, as 1 or 0.")]
                #[inline(always)]
                pub fn $c<V: Lanes>(v: V, a: V::Vec, b: V::Vec) -> V::Vec {
                    v.$cf(a, b)
                }
            )*
        }

        impl Op {
            /// The runtime's operation (none for a broadcast, which only reads).
            fn kernel(self) -> Option<fused::Op> {
                Some(match self {
                    $(Op::$u => fused::Op::Unary(UnaryOp::$uk),)*
                    $(Op::$b => fused::Op::Binary(BinaryOp::$bk),)*
                    $(Op::$c => fused::Op::Compare(CmpOp::$ck),)*
                    Op::Powi(n) => fused::Op::Unary(UnaryOp::Powi(n)),
                    Op::Select => fused::Op::Select,
                    Op::BroadcastLike => return None,
                })
            }

            /// The operation on whole values, by the `t::` helper of its primitive.
            #[track_caller]
            fn apply(self, a: &[Operand<'_>]) -> Tensor {
                match self {
                    $(Op::$u => t::$uf(a[0]),)*
                    $(Op::$b => t::$bf(a[0], a[1]),)*
                    $(Op::$c => t::$cf(a[0], a[1]),)*
                    Op::Powi(n) => t::powi(a[0], n),
                    Op::Select => match a[0] {
                        Operand::Tensor(m) => t::select(m, a[1], a[2]),
                        Operand::Scalar(c) => t::select(c != 0.0 || c.is_nan(), a[1], a[2]),
                    },
                    Op::BroadcastLike => match a[1] {
                        Operand::Tensor(like) => t::broadcast_like(a[0], like),
                        // a float `like` has no axes: `x` as it is
                        Operand::Scalar(_) => t::add(a[0], 0.0),
                    },
                }
            }
        }
    };
}

ops! {
    unary: Neg => neg Neg, Abs => abs Abs, Exp => exp Exp, Ln => ln Ln, Ln1p => ln1p Log1p,
        ExpM1 => exp_m1 Expm1, Sin => sin Sin, Cos => cos Cos, Tan => tan Tan,
        Tanh => tanh Tanh, Sqrt => sqrt Sqrt, Recip => recip Recip, Sigmoid => sigmoid Sigmoid,
        Softplus => softplus Softplus,
        Relu => relu Relu, Signum => signum Sign, Asin => asin Asin, Acos => acos Acos,
        Atan => atan Atan, Sinh => sinh Sinh, Cosh => cosh Cosh, Asinh => asinh Asinh,
        Acosh => acosh Acosh, Atanh => atanh Atanh, Exp2 => exp2 Exp2, Log2 => log2 Log2,
        Log10 => log10 Log10, Cbrt => cbrt Cbrt, Floor => floor Floor, Ceil => ceil Ceil,
        Round => round Round, Trunc => trunc Trunc, Erf => erf Erf;
    binary: Add => add Add, Sub => sub Sub, Mul => mul Mul, Div => div Div,
        Max => max Maximum, Min => min Minimum, Powf => powf Pow, Atan2 => atan2 Atan2;
    compare: Lt => lt Lt, Le => le Le, Gt => gt Gt, Ge => ge Ge, Eq => eq Eq, Ne => ne Ne;
}

impl Op {
    fn arity(self) -> usize {
        self.kernel().map_or(2, |k| k.arity())
    }
}

/// A register's value: an argument, or an instruction's result.
#[derive(Clone)]
enum Val<'a> {
    Arg(Operand<'a>),
    Tensor(Tensor),
}

impl Val<'_> {
    fn operand(&self) -> Operand<'_> {
        match self {
            Val::Arg(o) => *o,
            Val::Tensor(t) => Operand::Tensor(t),
        }
    }

    fn shape(&self) -> &[usize] {
        match self.operand() {
            Operand::Tensor(t) => t.shape(),
            Operand::Scalar(_) => &[],
        }
    }
}

/// The value of `program` on `args`: what its instructions, run one by one through the
/// `t::` helpers (`b::` where an argument is batched), would return. `kernel` is the same
/// program compiled to Rust (its `L` leaves: the arguments), which computes it vector by
/// vector in one pass where the runtime can ([`fused::run_kernel`]).
#[track_caller]
pub fn run<'a, const L: usize, K: Kernel<L>>(
    args: &[BArg<'a>],
    program: &[Instr],
    kernel: K,
) -> Tensor {
    run_with(args, program, 2, &compiled(kernel))
}

/// The pass of `kernel` over `L` leaves (`None` for another count, or where the runtime's
/// pass does not apply).
fn compiled<const L: usize, K: Kernel<L>>(
    kernel: K,
) -> impl Fn(&[Leaf<'_>], &[usize]) -> Option<Tensor> {
    move |leaves, shape| fused::run_kernel::<L, K>(leaves.try_into().ok()?, kernel, shape)
}

/// [`run`], with one pass from `min_pass` instructions (one alone costs as much as the
/// whole-tensor operation, unless an argument broadcasts along a middle axis, which the
/// whole-tensor operation walks element by element) through `pass` (the compiled
/// kernel over the arguments, into the result's shape).
#[track_caller]
fn run_with<'a>(args: &[BArg<'a>], program: &[Instr], min_pass: usize, pass: &Pass<'_>) -> Tensor {
    let aligned = align_all("fused", args);
    let mut regs: Vec<Val<'_>> = Vec::with_capacity(args.len() + program.len());
    regs.extend(aligned.iter().map(|a| Val::Arg(a.op())));
    // small values: op by op, where a pass costs less than planning one
    let largest = regs.iter().map(|v| numel(v.shape())).max().unwrap_or(0);
    if largest >= MIN_BLOCKED
        && program.len() >= min_pass
        && let Some(out) = result_shape(&regs, program)
    {
        let leaves: Vec<Leaf<'_>> = regs
            .iter()
            .map(|v| match v.operand() {
                Operand::Tensor(t) => Leaf::Tensor(t),
                Operand::Scalar(x) => Leaf::Scalar(x),
            })
            .collect();
        if let Some(t) = pass(&leaves, &out) {
            return t;
        }
    }
    for ins in program {
        let v = eval(&regs, ins);
        regs.push(Val::Tensor(v));
    }
    last(regs)
}

/// The shape of the program's result, where every instruction's operands broadcast (else
/// it runs op by op, which reports the error) and the program does not end in a
/// broadcast (which has no operation of its own to end with).
fn result_shape(regs: &[Val<'_>], program: &[Instr]) -> Option<Vec<usize>> {
    if program.last()?.0 == Op::BroadcastLike {
        return None;
    }
    let mut shapes: Vec<Option<Vec<usize>>> =
        regs.iter().map(|v| Some(v.shape().to_vec())).collect();
    for Instr(op, r) in program {
        let s = r[..op.arity()].iter().try_fold(Vec::new(), |acc, &i| {
            let s = shapes[i as usize].as_ref()?;
            broadcast_shapes("fused", &acc, s).ok()
        });
        // a broadcast to a smaller shape than its operand's is an error op by op
        let s = s.filter(|s| *op != Op::BroadcastLike || Some(s) == shapes[r[1] as usize].as_ref());
        shapes.push(s);
    }
    shapes.pop().flatten()
}

/// The compiled kernel's pass over the leaves into the result's shape.
type Pass<'k> = dyn Fn(&[Leaf<'_>], &[usize]) -> Option<Tensor> + 'k;

/// [`run`] in a per-example Jacobian's pass, where the arguments at the indices `outer`
/// are batched over its examples, those at `inner` over its basis elements (the same for
/// every example), and the other batched ones over its flat batch (examples times basis
/// elements, example-major): the value the chain would have with each outer argument's
/// rows repeated along each example's basis elements and the inner argument repeated for
/// every example, without the repeats in memory.
///
/// ```
/// use ferrax::batch_rules::{B, BArg};
/// use ferrax::fuse::{self, Instr, Op};
/// use ferrax::Tensor;
/// # #[derive(Clone, Copy)]
/// # struct Add;
/// # impl fuse::Kernel<2> for Add {
/// #     fn apply<V: fuse::Lanes>(self, v: V, [a, b]: [V::Vec; 2]) -> V::Vec {
/// #         fuse::k::Add(v, a, b)
/// #     }
/// # }
/// let per_example = Tensor::from_vec(vec![10.0f32, 20.0], &[2, 1]);
/// let per_basis = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3, 1]);
/// // `per_example[e] + per_basis[i]` at flat row `3 e + i`
/// let y = fuse::run_nested(
///     &[BArg::from(B(&per_example)), BArg::from(B(&per_basis))],
///     &[0],
///     &[1],
///     &[Instr(Op::Add, [0, 1, 0])],
///     Add,
/// );
/// assert_eq!(y.to_vec::<f32>(), [11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
/// ```
#[track_caller]
pub fn run_nested<'a, const L: usize, K: Kernel<L>>(
    args: &[BArg<'a>],
    outer: &[usize],
    inner: &[usize],
    program: &[Instr],
    kernel: K,
) -> Tensor {
    if outer.is_empty() && inner.is_empty() {
        return run(args, program, kernel);
    }
    let (views, bsz) = crate::batch_rules::nested_views(args, outer, inner);
    let mut views = views.iter();
    let wide: Vec<BArg<'_>> = args
        .iter()
        .map(|a| match a {
            BArg::Batched(_) => BArg::Plain(Operand::Tensor(views.next().expect("a view each"))),
            plain => *plain,
        })
        .collect();
    let y = run_with(&wide, program, 1, &compiled(kernel));
    let mut flat = vec![bsz];
    flat.extend_from_slice(&y.shape()[2..]);
    y.reshape(&flat)
}

/// Elements below which a chain runs op by op: planning a blocked pass (shapes, leaves,
/// scratch) costs about what it saves there (tanh's cotangent, three operations on f32,
/// two threads: 4096 elements 2.36 us blocked, 2.08 op by op; 8192: 3.81 and 4.39; 16384:
/// 5.58 and 7.31; 262144: 56 and 107).
const MIN_BLOCKED: usize = 8192;

/// The program's value: its last register.
fn last(mut regs: Vec<Val<'_>>) -> Tensor {
    match regs.pop() {
        Some(Val::Tensor(t)) => t,
        _ => unreachable!("a program ends with an instruction"),
    }
}

/// One instruction on whole values.
#[track_caller]
fn eval(regs: &[Val<'_>], Instr(op, r): &Instr) -> Tensor {
    let mut a = [Operand::Scalar(0.0); 3];
    for (slot, &i) in a.iter_mut().zip(&r[..op.arity()]) {
        *slot = regs[i as usize].operand();
    }
    op.apply(&a)
}
