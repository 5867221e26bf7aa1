//! Chains of elementwise primitives that generated code evaluates as one: the macro
//! gathers each chain whose intermediate values are read only within it (a derivative's
//! `ct * (1 - y * y)`) into one call of [`run`], with the chain as a list of [`Instr`]s.
//!
//! [`run`] means exactly what the chain of `t::` (or, with batched arguments, `b::`)
//! helpers would have computed: batched arguments are aligned per example as the batching
//! rules align them, parts of the chain smaller than its result (a function of an
//! unbatched value inside a batched chain) are computed once, op by op, and the rest goes
//! to the runtime's blocked evaluator ([`ferrax_runtime::fused`]), which keeps every
//! intermediate in L1. Where that does not apply (a GPU tensor, mixed dtypes, a transposed
//! operand), the chain runs op by op through the same helpers.

use ferrax_runtime::Tensor;
use ferrax_runtime::cpu::kernels::{BinaryOp, CmpOp, UnaryOp};
use ferrax_runtime::fused::{self, Leaf};
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
/// `t::` helpers (`b::` where an argument is batched), would return.
#[track_caller]
pub fn run<'a>(args: &[BArg<'a>], program: &[Instr]) -> Tensor {
    run_with(args, program, 2)
}

/// [`run`], with a blocked pass from `min_pass` instructions shaped like the result (one
/// alone costs as much as the whole-tensor operation, unless an argument broadcasts
/// along a middle axis, which the whole-tensor operation walks element by element).
#[track_caller]
fn run_with<'a>(args: &[BArg<'a>], program: &[Instr], min_pass: usize) -> Tensor {
    let aligned = align_all("fused", args);
    let mut regs: Vec<Val<'_>> = Vec::with_capacity(args.len() + program.len());
    regs.extend(aligned.iter().map(|a| Val::Arg(a.op())));
    let n_args = regs.len();
    // small values: op by op, where a pass costs less than planning one
    let largest = regs.iter().map(|v| numel(v.shape())).max().unwrap_or(0);
    if largest < MIN_BLOCKED {
        for ins in program {
            let v = eval(&regs, ins);
            regs.push(Val::Tensor(v));
        }
        return last(regs);
    }
    // shapes, where they broadcast (else everything runs op by op, which reports the error)
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
    let out = shapes.last().cloned().flatten();
    // the instructions smaller than the result (a function of an unbatched value inside a
    // batched chain): once, op by op; the others in one blocked pass where possible
    let full: Vec<bool> = shapes[n_args..]
        .iter()
        .map(|s| out.is_some() && *s == out)
        .collect();
    let mut pending = Vec::new();
    for (k, ins) in program.iter().enumerate() {
        if full[k] {
            regs.push(Val::Arg(Operand::Scalar(f64::NAN))); // filled below
            pending.push(k);
        } else {
            let v = eval(&regs, ins);
            regs.push(Val::Tensor(v));
        }
    }
    if pending.len() >= min_pass
        && let Some(out) = &out
        && let Some(t) = blocked(&regs, program, &pending, n_args, out)
    {
        return t;
    }
    for &k in &pending {
        regs[n_args + k] = Val::Tensor(eval(&regs, &program[k]));
    }
    last(regs)
}

/// [`run`] where the arguments at the indices `outer` are batched over the outer examples
/// of a per-example Jacobian's pass and the other batched ones over its flat batch
/// (examples times basis elements, example-major): the value the chain would have with
/// each outer argument's rows repeated along the flat batch, without the repeats in
/// memory (each outer row is read for all its basis elements).
#[track_caller]
pub fn run_outer<'a>(args: &[BArg<'a>], outer: &[usize], program: &[Instr]) -> Tensor {
    if outer.is_empty() {
        return run(args, program);
    }
    let (views, bsz) = crate::batch_rules::outer_views(args, outer);
    let mut views = views.iter();
    let wide: Vec<BArg<'_>> = args
        .iter()
        .map(|a| match a {
            BArg::Batched(_) => BArg::Plain(Operand::Tensor(views.next().expect("a view each"))),
            plain => *plain,
        })
        .collect();
    let y = run_with(&wide, program, 1);
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

/// The `pending` instructions (those shaped like the result) in one pass of the runtime's
/// blocked evaluator, reading the arguments and the values computed before.
fn blocked(
    regs: &[Val<'_>],
    program: &[Instr],
    pending: &[usize],
    n_args: usize,
    out: &[usize],
) -> Option<Tensor> {
    // leaves: the registers the pending instructions read that are not pending; then the
    // pending instructions
    // (a broadcast reads its first operand only: the other gives the shape)
    let read: Vec<usize> = pending
        .iter()
        .flat_map(|&k| {
            let Instr(op, r) = program[k];
            let n = if op == Op::BroadcastLike {
                1
            } else {
                op.arity()
            };
            r.into_iter().take(n).map(usize::from)
        })
        .collect();
    let mut index = vec![u16::MAX; regs.len()];
    let mut leaves = Vec::new();
    for (i, v) in regs.iter().enumerate() {
        let is_pending = i >= n_args && pending.contains(&(i - n_args));
        if !is_pending && read.contains(&i) {
            index[i] = leaves.len() as u16;
            leaves.push(match v.operand() {
                Operand::Tensor(t) => Leaf::Tensor(t),
                Operand::Scalar(x) => Leaf::Scalar(x),
            });
        }
    }
    let mut code = Vec::with_capacity(pending.len());
    for &k in pending {
        let Instr(op, r) = program[k];
        let Some(kernel) = op.kernel() else {
            // a broadcast: its operand, which the pass reads at the result's shape
            index[n_args + k] = index[r[0] as usize];
            continue;
        };
        index[n_args + k] = (leaves.len() + code.len()) as u16;
        let mut args = [0; 3];
        for (a, &i) in args.iter_mut().zip(&r[..op.arity()]) {
            *a = index[i as usize];
        }
        code.push(fused::Instr(kernel, args));
    }
    // (a program that ends in a broadcast has no instruction of its own to end with)
    if *pending.last()? != program.len() - 1 || program[program.len() - 1].0 == Op::BroadcastLike {
        return None;
    }
    fused::run(&leaves, &code, out)
}
