//! A fused elementwise program ([`crate::fused`]) evaluated over a range of its result,
//! with the same vector bodies as the whole-tensor operations (so the same results), the
//! instruction set chosen once for the range:
//!
//! - [`range`] interprets an [`Instr`] list block by block, each block small enough that
//!   every register of the program stays in L1, each instruction one SIMD loop over the
//!   block (a direct call, not a dispatch and a check for threads per instruction);
//! - [`range_kernel`] runs a program compiled to Rust ([`Kernel`]) vector by vector, every
//!   intermediate in vector registers; blocks only bound the buffers of the leaves
//!   broadcast along an axis, gathered per block (and of numbers, splat once), so that
//!   every leaf is read as a slice.

use pulp::{Simd, WithSimd};

use super::elementwise::{Operand, Splat, Vectors, binary_in, unary_in};
use super::kernels::CmpOp;
use super::math::MathFloat;
use super::simd::dispatch;
use crate::fused::{Instr, Kernel, Op};
use crate::pool;

/// Bytes of a block's registers (the instructions' results but the last, which is written
/// in place, and the gathered leaves): half of a 48 KiB L1, the rest for the leaves read.
const REGISTER_BYTES: usize = 24 << 10;

/// Elements per block for a program of `instructions` with `tiled` gathered leaves, so
/// that its registers fit [`REGISTER_BYTES`]: 768 f32 for a chain of six with three
/// gathered leaves. (2048 for every program, with each instruction its own dispatch, was
/// 1.1-1.6 times slower on that chain over `[e, 3, 64]` f32, in L2 or past it;
/// measurements in benches/README, session 29.)
pub(crate) fn block_len<T>(instructions: usize, tiled: usize) -> usize {
    let registers = (instructions + tiled).saturating_sub(1).max(1);
    (REGISTER_BYTES / (registers * size_of::<T>())).clamp(256, 4096) / 64 * 64
}

/// A leaf of a program as the blocks read it.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a, T> {
    Scalar(T),
    /// Shaped like the result.
    Full(&'a [T]),
    /// Broadcast along one run of axes: each `row` of `data` (its trailing axes, shaped
    /// like the result's) repeated `reps` times in a row (the broadcast axes), then the
    /// next (its leading axes). A bias over rows is one row repeated.
    Tiled {
        data: &'a [T],
        row: usize,
        reps: usize,
    },
}

/// Evaluates elements `start..start + out.len()` of `program`'s result into `out`, in
/// blocks of `blk` elements (about [`block_len`]).
pub(crate) fn range<T: MathFloat>(
    inputs: &[Input<'_, T>],
    program: &[Instr],
    blk: usize,
    start: usize,
    out: &mut [T],
) {
    assert!(blk > 0, "a block of no elements");
    dispatch(Range {
        inputs,
        program,
        blk,
        start,
        out,
    })
}

struct Range<'a, 'b, T> {
    inputs: &'a [Input<'b, T>],
    program: &'a [Instr],
    blk: usize,
    start: usize,
    out: &'a mut [T],
}

impl<T: MathFloat> WithSimd for Range<'_, '_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let Self {
            inputs,
            program,
            blk,
            start,
            out,
        } = self;
        // each tiled leaf's buffer among the scratch's, after the instructions' registers
        let mut tiled = 0;
        let slot: Vec<usize> = inputs
            .iter()
            .map(|i| {
                tiled += usize::from(matches!(i, Input::Tiled { .. }));
                tiled.wrapping_sub(1)
            })
            .collect();
        let mut scratch = pool::buffer((program.len() + tiled) * blk, T::zero());
        let bufs = &mut scratch[program.len() * blk..];
        gather_leaves(inputs, &slot, 0, blk, (bufs, blk), true);
        for (b, chunk) in out.chunks_mut(blk).enumerate() {
            block(
                s,
                inputs,
                &slot,
                program,
                start + b * blk,
                chunk,
                (&mut scratch, blk),
            );
        }
        pool::recycle(scratch);
    }
}

/// An operand within one block.
#[derive(Clone, Copy)]
enum Src<'a, T> {
    Slice(&'a [T]),
    Scalar(T),
}

/// Evaluates elements `start..start + out.len()` of the result into `out`. `scratch` holds
/// one block of `blk` elements per instruction, then one per tiled leaf (already gathered
/// where [`fixed_row`]); `slot[i]` is leaf `i`'s among the tiled ones.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<S: Simd, T: MathFloat>(
    s: S,
    inputs: &[Input<'_, T>],
    slot: &[usize],
    program: &[Instr],
    start: usize,
    out: &mut [T],
    (scratch, blk): (&mut [T], usize),
) {
    let len = out.len();
    let (regs, bufs) = scratch.split_at_mut(program.len() * blk);
    gather_leaves(inputs, slot, start, len, (bufs, blk), false);
    let bufs = &*bufs;
    let leaf = |i: usize| match &inputs[i] {
        Input::Scalar(v) => Src::Scalar(*v),
        Input::Full(d) => Src::Slice(&d[start..start + len]),
        Input::Tiled { .. } => Src::Slice(&bufs[slot[i] * blk..slot[i] * blk + len]),
    };
    let last = program.len() - 1;
    for (k, Instr(op, args)) in program.iter().enumerate() {
        let (done, here) = regs.split_at_mut(k * blk);
        let src = |r: u16| -> Src<'_, T> {
            let r = r as usize;
            if r < inputs.len() {
                leaf(r)
            } else {
                let j = r - inputs.len();
                Src::Slice(&done[j * blk..j * blk + len])
            }
        };
        let dst: &mut [T] = if k == last {
            &mut *out
        } else {
            &mut here[..len]
        };
        match *op {
            Op::Unary(u) => match src(args[0]) {
                Src::Slice(x) => unary_in(s, u, x, dst),
                // (through the vector body, as the whole-tensor op on one element)
                Src::Scalar(x) => {
                    let mut y = [x];
                    unary_in(s, u, &[x], &mut y);
                    dst.fill(y[0]);
                }
            },
            Op::Binary(b) => match (src(args[0]), src(args[1])) {
                (Src::Slice(x), Src::Slice(y)) => binary_in(s, b, x, y, dst),
                (Src::Slice(x), Src::Scalar(y)) => binary_in(s, b, x, Splat(y), dst),
                (Src::Scalar(x), Src::Slice(y)) => binary_in(s, b, Splat(x), y, dst),
                (Src::Scalar(x), Src::Scalar(y)) => {
                    let mut z = [x];
                    binary_in(s, b, &[x][..], &[y][..], &mut z);
                    dst.fill(z[0]);
                }
            },
            Op::Compare(c) => {
                let (one, zero) = (T::splat(s, T::one()), T::splat(s, T::zero()));
                let m = |a, b| match c {
                    CmpOp::Eq => T::veq(s, a, b),
                    CmpOp::Ne => T::mask_not(s, T::veq(s, a, b)),
                    CmpOp::Lt => T::vlt(s, a, b),
                    CmpOp::Le => T::vle(s, a, b),
                    CmpOp::Gt => T::vgt(s, a, b),
                    CmpOp::Ge => T::vge(s, a, b),
                };
                each(
                    s,
                    [src(args[0]), src(args[1]), Src::Scalar(T::zero())],
                    dst,
                    |[a, b, _]| T::select(s, m(a, b), one, zero),
                );
            }
            Op::Select => {
                let zero = T::splat(s, T::zero());
                // (a NaN mask is not equal to zero: it selects `a`, as in NumPy)
                each(
                    s,
                    [src(args[0]), src(args[1]), src(args[2])],
                    dst,
                    |[m, a, b]| T::select(s, T::mask_not(s, T::veq(s, m, zero)), a, b),
                );
            }
        }
    }
}

/// `out = f(a, b, c)` vector by vector, each operand a slice or a number.
#[inline(always)]
fn each<S: Simd, T: MathFloat>(
    s: S,
    srcs: [Src<'_, T>; 3],
    out: &mut [T],
    f: impl Fn([T::V<S>; 3]) -> T::V<S>,
) {
    let (ov, ot) = T::as_mut_simd::<S>(out);
    let full = ov.len();
    let at = |i: usize| {
        srcs.map(|x| match x {
            Src::Slice(x) => x.vector(s, i),
            Src::Scalar(v) => Splat(v).vector(s, i),
        })
    };
    for (i, o) in ov.iter_mut().enumerate() {
        *o = f(at(i));
    }
    if !ot.is_empty() {
        let from = full * T::lanes::<S>();
        let rest = srcs.map(|x| match x {
            Src::Slice(x) => x.rest(s, from),
            Src::Scalar(v) => Splat(v).rest(s, from),
        });
        T::partial_store(s, ot, f(rest));
    }
}

/// Whether a leaf is one row repeated and blocks of `blk` hold whole rows (blocks start
/// at multiples of `blk`): its buffer is then the same in every block, gathered once.
fn fixed_row<T>(input: &Input<'_, T>, blk: usize) -> bool {
    matches!(input, Input::Tiled { data, row, .. } if data.len() == *row && blk.is_multiple_of(*row))
}

/// Elements `start..start + len` of every tiled leaf that is [`fixed_row`] (`fixed`) or
/// not into its buffer: `slot[i]`'s of the buffers `blk` apart in `bufs`.
#[inline(always)]
fn gather_leaves<T: Copy>(
    inputs: &[Input<'_, T>],
    slot: &[usize],
    start: usize,
    len: usize,
    (bufs, blk): (&mut [T], usize),
    fixed: bool,
) {
    for (i, &k) in inputs.iter().zip(slot) {
        if matches!(i, Input::Tiled { .. }) && fixed_row(i, blk) == fixed {
            gather(i, start, &mut bufs[k * blk..k * blk + len]);
        }
    }
}

/// `buf` filled with the elements `start..start + buf.len()` of a tiled leaf as the
/// result sees it (past the result's end, as if the leaf repeated: a block of one row
/// repeated is gathered whole even where the result is shorter).
#[inline(always)]
fn gather<T: Copy>(input: &Input<'_, T>, start: usize, buf: &mut [T]) {
    let &Input::Tiled { data, row, reps } = input else {
        unreachable!("only tiled leaves are gathered")
    };
    let (len, span, rows) = (buf.len(), row * reps, data.len() / row);
    // where element `start` is: in row `q` of `data`, its repeat `rep`, at `r` in the row
    let (mut q, mut rep, mut r) = (start / span % rows, start % span / row, start % row);
    let mut i = 0;
    if row == 1 {
        // a column: each value filled over its run of repeats
        while i < len {
            let m = (reps - rep).min(len - i);
            buf[i..i + m].fill(data[q]);
            (i, rep, q) = (i + m, 0, if q + 1 == rows { 0 } else { q + 1 });
        }
        return;
    }
    while i < len {
        let m = (row - r).min(len - i);
        let j = q * row + r;
        copy(&mut buf[i..i + m], &data[j..j + m]);
        (i, r) = (i + m, r + m);
        if r == row {
            (r, rep) = (0, rep + 1);
            if rep == reps {
                (rep, q) = (0, if q + 1 == rows { 0 } else { q + 1 });
            }
        }
    }
}

/// `dst` = `src`, of equal lengths, in moves of 16 elements: rows are short (a few dozen
/// elements) and `memmove`'s call cost most of their gathering.
#[inline(always)]
fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
    let (d, dr) = dst.as_chunks_mut::<16>();
    let (s, sr) = src.as_chunks::<16>();
    for (d, s) in d.iter_mut().zip(s) {
        *d = *s;
    }
    for (d, s) in dr.iter_mut().zip(sr) {
        *d = *s;
    }
}

/// Evaluates elements `start..start + out.len()` of a compiled program's result into
/// `out`, vector by vector from its leaves. Blocks of `blk` elements bound the broadcast
/// leaves' gathered buffers; every intermediate stays in vector registers.
pub(crate) fn range_kernel<T: MathFloat, const L: usize, K: Kernel<L>>(
    inputs: &[Input<'_, T>; L],
    kernel: K,
    blk: usize,
    start: usize,
    out: &mut [T],
) {
    assert!(blk > 0, "a block of no elements");
    dispatch(KernelRange {
        inputs,
        kernel,
        blk,
        start,
        out,
    })
}

struct KernelRange<'a, 'b, T, K, const L: usize> {
    inputs: &'a [Input<'b, T>; L],
    kernel: K,
    blk: usize,
    start: usize,
    out: &'a mut [T],
}

impl<T: MathFloat, K: Kernel<L>, const L: usize> WithSimd for KernelRange<'_, '_, T, K, L> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let Self {
            inputs,
            kernel,
            blk,
            start,
            out,
        } = self;
        let lanes = Vectors::<S, T>::new(s);
        // a buffer of one block for each broadcast leaf (gathered) and each number
        // (filled once), so that every leaf is read as a slice of the block's length
        let mut buffers = 0;
        let slot: [usize; L] = std::array::from_fn(|k| {
            buffers += usize::from(!matches!(inputs[k], Input::Full(_)));
            buffers.wrapping_sub(1)
        });
        let mut scratch = pool::buffer(buffers * blk, T::zero());
        for (input, &k) in inputs.iter().zip(&slot) {
            if let Input::Scalar(c) = input {
                scratch[k * blk..(k + 1) * blk].fill(*c);
            }
        }
        gather_leaves(inputs, &slot, 0, blk, (&mut scratch, blk), true);
        for (b, chunk) in out.chunks_mut(blk).enumerate() {
            let (at, len) = (start + b * blk, chunk.len());
            gather_leaves(inputs, &slot, at, len, (&mut scratch, blk), false);
            // each leaf's block: its whole vectors, then the rest
            let (ov, ot) = T::as_mut_simd::<S>(chunk);
            let whole = ov.len();
            let data: [&[T]; L] = std::array::from_fn(|k| match &inputs[k] {
                Input::Full(d) => &d[at..at + len],
                _ => &scratch[slot[k] * blk..slot[k] * blk + len],
            });
            let vecs: [&[T::V<S>]; L] =
                std::array::from_fn(|k| &T::as_simd::<S>(data[k]).0[..whole]);
            // (the loop over the leaves unrolls: each vector straight into the kernel's
            // operands)
            for (i, o) in ov.iter_mut().enumerate() {
                *o = kernel.apply(lanes, std::array::from_fn(|k| vecs[k][i]));
            }
            if !ot.is_empty() {
                let x = std::array::from_fn(|k| T::partial_load(s, T::as_simd::<S>(data[k]).1));
                T::partial_store(s, ot, kernel.apply(lanes, x));
            }
        }
        pool::recycle(scratch);
    }
}
