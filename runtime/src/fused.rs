//! Elementwise programs run in one pass: a chain of elementwise operations whose
//! intermediate results are never stored whole.
//!
//! A derivative is full of short elementwise chains (`tanh`'s is `ct * (1 - y * y)`: three
//! passes over memory, two of them writing temporaries that are read once). The macro sees
//! such chains at compile time and writes each as Rust: a [`Kernel`], the chain's value on
//! one vector of its leaves through the operations of [`Lanes`] (the same vector bodies as
//! the whole-tensor operations, so results are those of the unfused chain), which
//! [`run_kernel`] runs over the result vector by vector, every intermediate in registers.
//! A program known only at run time (an [`Instr`] list: the activation functions') goes
//! to [`run`], which interprets it block by block (a few hundred elements at a time, as
//! many as keep every intermediate in L1). This module plans the pass (leaves, blocks,
//! threads); the CPU backend's `chain` runs it.
//!
//! Both handle the common case: CPU tensors of one float dtype, each either shaped like
//! the result, a single element, or contiguous and broadcast along one run of consecutive
//! axes (a bias over rows, `[n, 1, d]` against `[n, m, d]`). For anything else they return
//! `None`, and the caller runs the chain op by op.
//!
//! ```
//! use ferrax_runtime::Tensor;
//! use ferrax_runtime::cpu::kernels::{BinaryOp, UnaryOp};
//! use ferrax_runtime::fused::{self, Instr, Leaf, Op};
//!
//! // ct * (1 - y * y), registers: 0 = ct, 1 = y, 2 = 1.0, then one per instruction
//! let (ct, y) = (Tensor::from_vec(vec![1.0f32, 2.0], &[2]), Tensor::from_vec(vec![0.5f32, 0.0], &[2]));
//! let program = [
//!     Instr(Op::Binary(BinaryOp::Mul), [1, 1, 0]),
//!     Instr(Op::Binary(BinaryOp::Sub), [2, 3, 0]),
//!     Instr(Op::Binary(BinaryOp::Mul), [0, 4, 0]),
//! ];
//! let leaves = [Leaf::Tensor(&ct), Leaf::Tensor(&y), Leaf::Scalar(1.0)];
//! let out = fused::run(&leaves, &program, &[2]).unwrap();
//! assert_eq!(out.to_vec::<f32>(), vec![0.75, 2.0]);
//! # let _ = UnaryOp::Tanh;
//! ```

use rayon::prelude::*;

use crate::cpu::MathFloat;
use crate::cpu::chain::{self, Input};
pub use crate::cpu::elementwise::Lanes;
use crate::cpu::kernels::{BinaryOp, CmpOp, UnaryOp};
use crate::element::{DType, Float};
use crate::error::{Error, Result};
use crate::shape::{broadcast_shapes, numel};
use crate::tensor::{Tensor, float_dispatch};
use crate::{Device, pool};

/// One elementwise operation of a program.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `op(a, b)` (the operands' dtype).
    Binary(BinaryOp),
    /// `op(a)`.
    Unary(UnaryOp),
    /// `op(a, b)` as 1 where it holds and 0 where not, in the operands' dtype.
    Compare(CmpOp),
    /// `b` where the mask `a` is nonzero (NaN counts as nonzero, as in NumPy), else `c`.
    Select,
}

impl Op {
    /// How many operands it reads.
    pub fn arity(self) -> usize {
        match self {
            Op::Unary(_) => 1,
            Op::Binary(_) | Op::Compare(_) => 2,
            Op::Select => 3,
        }
    }
}

/// An instruction: an operation and the registers it reads. Registers are numbered with
/// the leaves first, then one per instruction, in order; the last instruction's register
/// is the result. Unused operand slots are ignored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Instr(pub Op, pub [u16; 3]);

/// An input of a program.
#[derive(Clone, Copy, Debug)]
pub enum Leaf<'a> {
    Tensor(&'a Tensor),
    /// A number, in the tensors' dtype.
    Scalar(f64),
}

/// Elements at most in one task where a pass is split over threads.
const TASK: usize = 32 << 10;

/// Runs `program` over `leaves` into a new contiguous tensor of `shape` (the broadcast
/// shape of the program's result), in one blocked pass. `None` where the fast path does
/// not apply: a GPU tensor, mixed or non-float dtypes, a leaf not contiguous or broadcast
/// along more than one run of consecutive axes, a result of at most one element, or a
/// register out of range.
pub fn run(leaves: &[Leaf<'_>], program: &[Instr], shape: &[usize]) -> Option<Tensor> {
    let in_range = program.iter().enumerate().all(|(k, Instr(op, args))| {
        args[..op.arity()]
            .iter()
            .all(|&r| (r as usize) < leaves.len() + k)
    });
    if program.is_empty() || !in_range || leaves.len() + program.len() > u16::MAX as usize {
        return None;
    }
    pass(leaves, program.len(), shape, Interpreted(program))
}

/// An elementwise program compiled to Rust (the macro writes one for each chain it
/// fuses): its value on one vector of lanes of each of its `L` leaves, every intermediate
/// in vector registers.
///
/// ```
/// use ferrax_runtime::Tensor;
/// use ferrax_runtime::fused::{self, Kernel, Lanes, Leaf};
///
/// // ct * (1 - y * y)
/// #[derive(Clone, Copy)]
/// struct TanhGrad;
/// impl Kernel<3> for TanhGrad {
///     fn apply<V: Lanes>(self, v: V, [ct, y, one]: [V::Vec; 3]) -> V::Vec {
///         v.mul(ct, v.sub(one, v.mul(y, y)))
///     }
/// }
/// let (ct, y) = (Tensor::from_vec(vec![1.0f32, 2.0], &[2]), Tensor::from_vec(vec![0.5f32, 0.0], &[2]));
/// let leaves = [Leaf::Tensor(&ct), Leaf::Tensor(&y), Leaf::Scalar(1.0)];
/// let out = fused::run_kernel(&leaves, TanhGrad, &[2]).unwrap();
/// assert_eq!(out.to_vec::<f32>(), vec![0.75, 2.0]);
/// ```
pub trait Kernel<const L: usize>: Copy + Send + Sync {
    /// The program's value on one vector of each leaf.
    fn apply<V: Lanes>(self, v: V, x: [V::Vec; L]) -> V::Vec;
}

/// Runs `kernel` over `leaves` into a new contiguous tensor of `shape` (the broadcast
/// shape of its result) in one pass. `None` where [`run`]'s fast path does not apply to
/// the leaves.
pub fn run_kernel<const L: usize, K: Kernel<L>>(
    leaves: &[Leaf<'_>; L],
    kernel: K,
    shape: &[usize],
) -> Option<Tensor> {
    pass(leaves, 1, shape, Compiled::<K, L>(kernel))
}

/// A pass over a new tensor of `shape` computing `instructions` per element (each held in
/// a block-sized buffer) from `leaves`: `range(inputs, blk, start, out)` evaluates
/// elements `start..` into `out` in blocks of `blk`, split over threads when large.
fn pass(
    leaves: &[Leaf<'_>],
    instructions: usize,
    shape: &[usize],
    range: impl RangeFn,
) -> Option<Tensor> {
    let n = numel(shape);
    if n <= 1 {
        return None;
    }
    let mut dtype = None;
    for l in leaves {
        if let Leaf::Tensor(t) = l {
            if t.device() != Device::Cpu || !t.dtype().is_float() {
                return None;
            }
            if dtype.replace(t.dtype()).is_some_and(|d| d != t.dtype()) {
                return None;
            }
        }
    }
    let dtype: DType = dtype?;
    Some(float_dispatch!(dtype, T => {
        let inputs = leaves
            .iter()
            .map(|l| input::<T>(l, shape))
            .collect::<Option<Vec<_>>>()?;
        let mut out = pool::buffer(n, 0.0 as T);
        // blocks of whole periods where every broadcast leaf repeats within one: its
        // buffer is then unrolled once per task, not per block
        let period = inputs
            .iter()
            .filter_map(|i| match i {
                Input::Tiled { data, row, .. } if data.len() == *row => Some(*row),
                _ => None,
            })
            .max();
        let tiled = inputs
            .iter()
            .filter(|i| matches!(i, Input::Tiled { .. }))
            .count();
        let block = chain::block_len::<T>(instructions, tiled);
        let blk = match period {
            Some(p) if p <= block => block / p * p,
            _ => block,
        };
        // the work: about one unit an element to write it, a quarter of one per tensor
        // read and per instruction computed on it in registers (weighing every
        // instruction as a whole pass split a 9-instruction chain over 40,000 f64 into
        // threads, which cost more than it saved: the 200 x 200 Hessian took 0.36-0.53 ms
        // against 0.33-0.42; not counting the reads left one product over 196,608 f32 with
        // a leaf broadcast along a middle axis on one thread, 2.3 times slower)
        let reads = inputs
            .iter()
            .filter(|i| !matches!(i, Input::Scalar(_)))
            .count();
        if crate::cpu::parallel(n.saturating_mul(4 + instructions + reads) / 4) {
            // about four tasks a thread, of whole blocks (a thread with most of the work
            // waited for: 40,000 elements were one task of 32,768 and one of 7,232)
            let per = n.div_ceil(4 * rayon::current_num_threads());
            let task = per.next_multiple_of(blk).min(TASK.max(blk) / blk * blk);
            out.par_chunks_mut(task)
                .enumerate()
                .for_each(|(t, chunk)| range.call(&inputs, blk, t * task, chunk));
        } else {
            range.call(&inputs, blk, 0, &mut out);
        }
        Tensor::from_data(out, shape)
    }))
}

/// What [`pass`] runs over each range: generic over the element type, which a closure
/// cannot be.
trait RangeFn: Sync {
    fn call<T: MathFloat>(&self, inputs: &[Input<'_, T>], blk: usize, start: usize, out: &mut [T]);
}

/// A program run instruction by instruction over each block.
struct Interpreted<'a>(&'a [Instr]);

impl RangeFn for Interpreted<'_> {
    fn call<T: MathFloat>(&self, inputs: &[Input<'_, T>], blk: usize, start: usize, out: &mut [T]) {
        chain::range(inputs, self.0, blk, start, out)
    }
}

/// A compiled program, run vector by vector.
struct Compiled<K, const N: usize>(K);

impl<const N: usize, K: Kernel<N>> RangeFn for Compiled<K, N> {
    fn call<T: MathFloat>(&self, inputs: &[Input<'_, T>], blk: usize, start: usize, out: &mut [T]) {
        let inputs: &[_; N] = inputs.try_into().expect("one input per leaf");
        chain::range_kernel(inputs, self.0, blk, start, out)
    }
}

/// The value of `program` on `leaves`: one blocked pass where [`run`] applies, else each
/// instruction in turn through the whole-tensor operations (on any device), which compute
/// the same values. Leaf 0 is a float tensor whose dtype, device and shape the result
/// takes; the other leaves broadcast to it. `name` names the operation in errors.
///
/// ```
/// use ferrax_runtime::Tensor;
/// use ferrax_runtime::cpu::kernels::{BinaryOp, UnaryOp};
/// use ferrax_runtime::fused::{self, Instr, Leaf, Op};
///
/// // x * sigmoid(x)
/// let x = Tensor::from_vec(vec![0.0f64, 1.0], &[2]);
/// let program = [Instr(Op::Unary(UnaryOp::Sigmoid), [0, 0, 0]), Instr(Op::Binary(BinaryOp::Mul), [0, 1, 0])];
/// let y = fused::eval("silu", &[Leaf::Tensor(&x)], &program).unwrap();
/// assert_eq!(y.to_vec::<f64>(), vec![0.0, 1.0 / (1.0 + (-1.0f64).exp())]);
/// ```
pub fn eval(name: &'static str, leaves: &[Leaf<'_>], program: &[Instr]) -> Result<Tensor> {
    let Some(Leaf::Tensor(x)) = leaves.first() else {
        return Err(Error::InvalidArgument {
            op: name,
            message: "a program's first leaf must be a tensor".into(),
        });
    };
    x.expect_float(name)?;
    let mut shape = x.shape().to_vec();
    for l in &leaves[1..] {
        if let Leaf::Tensor(t) = l {
            shape = broadcast_shapes(name, &shape, t.shape())?;
        }
    }
    if let Some(out) = run(leaves, program, &shape) {
        return Ok(out);
    }
    let tensor = |v: &Reg| match v {
        Reg::Tensor(t) => t.clone(),
        Reg::Scalar(c) => x.scalar_like(*c),
    };
    let mut regs: Vec<Reg> = leaves
        .iter()
        .map(|l| match l {
            Leaf::Tensor(t) => Reg::Tensor((*t).clone()),
            Leaf::Scalar(c) => Reg::Scalar(*c),
        })
        .collect();
    for (k, Instr(op, args)) in program.iter().enumerate() {
        let arg = |i: usize| {
            regs.get(args[i] as usize)
                .filter(|_| (args[i] as usize) < leaves.len() + k)
                .ok_or_else(|| Error::InvalidArgument {
                    op: name,
                    message: format!(
                        "instruction {k} reads register {}, not yet written",
                        args[i]
                    ),
                })
        };
        let v = match *op {
            Op::Unary(u) => tensor(arg(0)?).try_unary(name, u)?,
            Op::Binary(b) => match (arg(0)?, arg(1)?) {
                (a, Reg::Scalar(c)) => tensor(a).try_binary_scalar(name, b, *c, false)?,
                (Reg::Scalar(c), a) => tensor(a).try_binary_scalar(name, b, *c, true)?,
                (a, c) => tensor(a).try_binary(name, b, &tensor(c))?,
            },
            // (a mask in the operands' dtype, as the pass computes it)
            Op::Compare(c) => {
                let a = tensor(arg(0)?);
                a.try_compare(name, c, &tensor(arg(1)?))?
                    .try_to_dtype(a.dtype())?
            }
            Op::Select => Tensor::try_where_(&tensor(arg(0)?), &tensor(arg(1)?), &tensor(arg(2)?))?,
        };
        regs.push(Reg::Tensor(v));
    }
    match regs.pop() {
        Some(Reg::Tensor(t)) if !program.is_empty() => Ok(t),
        _ => Ok((*x).clone()),
    }
}

/// A register of [`eval`]'s instruction-by-instruction evaluation.
enum Reg {
    Tensor(Tensor),
    Scalar(f64),
}

fn input<'a, T: Float>(leaf: &Leaf<'a>, shape: &[usize]) -> Option<Input<'a, T>> {
    let t = match leaf {
        Leaf::Scalar(v) => return Some(Input::Scalar(T::from_f64(*v))),
        Leaf::Tensor(t) => *t,
    };
    let data = t.storage_slice::<T>();
    let at = t.layout.offset;
    // (one element, or one broadcast everywhere: a lazy zero, a filled value)
    if t.numel() == 1 || t.numel() > 1 && t.layout.strides.iter().all(|&s| s == 0) {
        return Some(Input::Scalar(data[at]));
    }
    let own: Vec<usize> = t.shape().iter().copied().skip_while(|&d| d == 1).collect();
    if !t.is_contiguous() || own.len() > shape.len() {
        return None;
    }
    let data = &data[at..at + t.numel()];
    if t.numel() == numel(shape) {
        return Some(Input::Full(data));
    }
    // the leaf's axes against the result's, right-aligned: equal on the trailing ones
    // (the row), 1 on one run before them (the repeats), equal on the leading ones
    let lead = shape.len() - own.len();
    let dim = |k: usize| if k < lead { 1 } else { own[k - lead] };
    let mut k = shape.len();
    while k > 0 && dim(k - 1) == shape[k - 1] {
        k -= 1;
    }
    let row = numel(&shape[k..]);
    let mut j = k;
    while j > 0 && dim(j - 1) == 1 {
        j -= 1;
    }
    let reps = numel(&shape[j..k]);
    (0..j)
        .all(|a| dim(a) == shape[a])
        .then_some(Input::Tiled { data, row, reps })
}
