//! Operators on owned tensors that write the result into the operand's own buffer.
//!
//! `(&x * &w) + &b`, `-t`, `loss / n` and `param -= &step` hand an operator a tensor
//! nobody else holds. When its buffer is exactly the result's shape, the result goes
//! there: no allocation, and the memory is read and written in one sweep. Each piece of
//! the buffer is copied to a small stack buffer first and the kernel writes back over
//! the original, so kernels keep their separate input and output slices.

use std::sync::Arc;

use rayon::prelude::*;

use crate::cpu::kernels::{self, BinaryOp, PAR_THRESHOLD, UnaryOp};
use crate::element::Float;
use crate::error::Result;
use crate::shape::broadcast_shapes;
use crate::tensor::{Tensor, float_dispatch};

/// Elements per kernel call (the stack copy is this long).
const CHUNK: usize = 1024;

/// The other operand of an in-place binary operation.
#[derive(Clone, Copy)]
enum Other<'a, T> {
    /// One value for every element.
    Scalar(T),
    /// Values repeating along the buffer: element `p` pairs with `values[p % len]` (a
    /// same-shape operand, or a row broadcast over leading axes).
    Repeating(&'a [T]),
}

impl Tensor {
    /// The buffer, mutable, if this tensor is its sole owner and covers all of it in
    /// row-major order.
    pub(crate) fn exclusive_buffer<T: Float>(&mut self) -> Option<&mut [T]> {
        let n = self.numel();
        if n == 0 || !self.is_contiguous() || self.layout.offset != 0 {
            return None;
        }
        Arc::get_mut(&mut self.storage)?
            .typed_mut::<T>()
            .filter(|b| b.len() == n)
    }

    /// `self = op(self, other)` (or `op(other, self)` when `!self_first`) with
    /// broadcasting, in `self`'s own buffer when possible (see the module docs). On an
    /// error `self` is unchanged.
    pub(crate) fn binary_assign(
        &mut self,
        name: &'static str,
        op: BinaryOp,
        other: &Tensor,
        self_first: bool,
    ) -> Result<()> {
        let (a, b) = if self_first {
            (&*self, other)
        } else {
            (other, &*self)
        };
        let dt = Tensor::expect_same_float(name, a, b)?;
        let shape = broadcast_shapes(name, a.shape(), b.shape())?;
        if shape == self.shape()
            && let Some(values) = repeating_view(other, &shape)
        {
            let done = float_dispatch!(dt, T => match self.exclusive_buffer::<T>() {
                Some(buf) => {
                    let data = &other.storage_slice::<T>()[other.layout.offset..];
                    let other = match values {
                        Values::Scalar => Other::Scalar(data[0]),
                        Values::Slice(len) => Other::Repeating(&data[..len]),
                    };
                    binary_in_place(op, buf, other, self_first);
                    true
                }
                None => false,
            });
            if done {
                return Ok(());
            }
        }
        *self = if self_first {
            self.try_binary(name, op, other)?
        } else {
            other.try_binary(name, op, self)?
        };
        Ok(())
    }

    /// [`Tensor::binary_assign`] with a Rust scalar (`op(s, self)` when `scalar_first`).
    pub(crate) fn binary_scalar_assign(
        &mut self,
        name: &'static str,
        op: BinaryOp,
        s: f64,
        scalar_first: bool,
    ) -> Result<()> {
        let dt = self.expect_float(name)?;
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            *self = crate::gpu::elementwise::binary_scalar(name, self, op, s, scalar_first)?;
            return Ok(());
        }
        self.binary_assign(name, op, &Tensor::full(&[], s, dt), !scalar_first)
    }

    /// `self = op(self, other)` for two owned tensors, in whichever buffer has the
    /// result's shape (`self`'s preferred).
    pub(crate) fn binary_both_owned(
        self,
        name: &'static str,
        op: BinaryOp,
        other: Tensor,
    ) -> Result<Tensor> {
        let (mut target, operand, target_first) =
            if broadcast_shapes(name, self.shape(), other.shape())? == self.shape() {
                (self, other, true)
            } else {
                (other, self, false)
            };
        target.binary_assign(name, op, &operand, target_first)?;
        Ok(target)
    }

    /// `self = op(self)`, in `self`'s own buffer when possible.
    pub(crate) fn unary_assign(&mut self, name: &'static str, op: UnaryOp) -> Result<()> {
        let dt = self.expect_float(name)?;
        let done = float_dispatch!(dt, T => match self.exclusive_buffer::<T>() {
            Some(buf) => {
                for_pieces(buf, CHUNK, |_, tmp, dst| kernels::unary(op, tmp, dst));
                true
            }
            None => false,
        });
        if !done {
            *self = self.try_unary(name, op)?;
        }
        Ok(())
    }
}

/// How `other` repeats over a buffer of `shape`.
enum Values {
    Scalar,
    /// A contiguous run of this many values, repeated.
    Slice(usize),
}

/// Whether `other` is a single element, or contiguous and equal to the trailing axes of
/// `shape` (after dropping its own leading size-1 axes).
fn repeating_view(other: &Tensor, shape: &[usize]) -> Option<Values> {
    if other.numel() == 1 {
        return Some(Values::Scalar);
    }
    let own: &[usize] = {
        let s = other.shape();
        &s[s.iter().position(|&d| d != 1).unwrap_or(s.len())..]
    };
    let trailing = shape
        .len()
        .checked_sub(own.len())
        .map(|lead| &shape[lead..]);
    (other.is_contiguous() && trailing == Some(own)).then(|| Values::Slice(other.numel()))
}

/// Runs `f(start, input_copy, output)` over pieces of `buf` of at most `CHUNK` elements
/// that do not cross a multiple of `row` (`row` elements form one repetition), in
/// parallel for large buffers.
fn for_pieces<T: Float>(buf: &mut [T], row: usize, f: impl Fn(usize, &[T], &mut [T]) + Sync) {
    let piece = |start: usize, dst: &mut [T]| {
        let mut tmp = [T::zero(); CHUNK];
        let tmp = &mut tmp[..dst.len()];
        tmp.copy_from_slice(dst);
        f(start, tmp, dst);
    };
    let rows = |r: usize, chunk: &mut [T]| {
        for (c, dst) in chunk.chunks_mut(CHUNK).enumerate() {
            piece(r * row + c * CHUNK, dst);
        }
    };
    if buf.len() >= PAR_THRESHOLD {
        buf.par_chunks_mut(row)
            .enumerate()
            .for_each(|(r, c)| rows(r, c));
    } else {
        buf.chunks_mut(row)
            .enumerate()
            .for_each(|(r, c)| rows(r, c));
    }
}

/// `buf = op(buf, other)` (or `op(other, buf)` when `!buf_first`), piece by piece.
fn binary_in_place<T: Float>(op: BinaryOp, buf: &mut [T], other: Other<'_, T>, buf_first: bool) {
    let row = match other {
        // a same-shape operand is one long row: split it evenly
        Other::Repeating(v) if v.len() < buf.len() => v.len(),
        _ => CHUNK,
    };
    for_pieces(buf, row, |start, tmp, dst| match other {
        Other::Scalar(s) if buf_first => kernels::binary_scalar_rhs(op, tmp, s, dst),
        Other::Scalar(s) => kernels::binary_scalar_lhs(op, s, tmp, dst),
        Other::Repeating(v) => {
            let at = start % v.len();
            let v = &v[at..at + dst.len()];
            if buf_first {
                kernels::binary(op, tmp, v, dst)
            } else {
                kernels::binary(op, v, tmp, dst)
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::DType;

    fn buffer_of(t: &Tensor) -> *const crate::storage::Storage {
        Arc::as_ptr(&t.storage)
    }

    #[test]
    fn sole_owners_are_written_in_place() {
        let n = 3 * CHUNK + 5; // pieces with a remainder
        let x = Tensor::arange(0.0, n as f64, 1.0, DType::F32);
        let at = buffer_of(&x);
        let y = x * 2.0;
        assert_eq!(buffer_of(&y), at);
        let y = 1.0f32 - y;
        assert_eq!(buffer_of(&y), at);
        let y = -y;
        assert_eq!(buffer_of(&y), at);
        let v = y.to_vec::<f32>();
        assert!(
            v.iter()
                .enumerate()
                .all(|(i, &e)| e == 2.0 * i as f32 - 1.0)
        );

        // a row broadcast over a [rows, n] buffer, rows longer than a chunk
        let m = Tensor::ones(&[3, n], DType::F64);
        let at = buffer_of(&m);
        let row = Tensor::arange(0.0, n as f64, 1.0, DType::F64);
        let mut m = m + &row;
        m /= &Tensor::full(&[1, n], 2.0, DType::F64);
        assert_eq!(buffer_of(&m), at);
        let v = m.to_vec::<f64>();
        assert!(
            v.iter()
                .enumerate()
                .all(|(i, &e)| e == (1.0 + (i % n) as f64) / 2.0)
        );
    }

    #[test]
    fn shared_or_strided_tensors_are_not_overwritten() {
        let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape(&[2, 3]);
        let keep = x.clone();
        let y = x + 1.0;
        assert_ne!(buffer_of(&y), buffer_of(&keep));
        assert_eq!(keep.to_vec::<f32>(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        // a transposed view is not row-major: a new buffer
        let t = keep.t();
        let at = buffer_of(&t);
        drop(keep);
        let u = t * 2.0;
        assert_ne!(buffer_of(&u), at);
        assert_eq!(u.to_vec::<f32>(), vec![0.0, 6.0, 2.0, 8.0, 4.0, 10.0]);
        // a result larger than the owned operand needs a new buffer
        let small = Tensor::ones(&[3], DType::F32);
        let big = small + &Tensor::ones(&[2, 3], DType::F32);
        assert_eq!(big.shape(), &[2, 3]);
    }

    #[test]
    fn failed_assignments_leave_the_target_alone() {
        let mut x = Tensor::ones(&[2], DType::F32);
        let r = x.binary_assign("add", BinaryOp::Add, &Tensor::ones(&[3], DType::F32), true);
        assert!(r.unwrap_err().to_string().contains("add"));
        assert_eq!(x.to_vec::<f32>(), vec![1.0, 1.0]);
    }
}
