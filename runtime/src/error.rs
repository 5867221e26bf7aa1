//! The runtime's error type: every failing operation names itself, the shapes and the dtypes involved.

use crate::device::Device;
use crate::element::DType;

/// A runtime error. Its `Display` is the message a panicking operation panics with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two shapes that had to agree (or broadcast together) do not.
    #[error("{op}: shapes {lhs:?} and {rhs:?} {reason}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// The first operand's shape.
        lhs: Vec<usize>,
        /// The second operand's shape.
        rhs: Vec<usize>,
        /// What went wrong, e.g. "cannot be broadcast together".
        reason: String,
    },
    /// Two operands have different dtypes (f32 and f64 are never mixed implicitly).
    #[error(
        "{op}: dtype mismatch, {lhs} vs {rhs} (shapes {lhs_shape:?} and {rhs_shape:?}); convert one side with `to_dtype`"
    )]
    DTypeMismatch {
        /// The operation.
        op: &'static str,
        /// The first operand's dtype.
        lhs: DType,
        /// The second operand's dtype.
        rhs: DType,
        /// The first operand's shape.
        lhs_shape: Vec<usize>,
        /// The second operand's shape.
        rhs_shape: Vec<usize>,
    },
    /// An operation got a tensor of a dtype it does not accept.
    #[error("{op}: expected {expected}, got a tensor of dtype {got} and shape {shape:?}")]
    UnsupportedDType {
        /// The operation.
        op: &'static str,
        /// What the operation accepts, e.g. "a float tensor (f32 or f64)".
        expected: &'static str,
        /// The dtype it got.
        got: DType,
        /// The shape of the offending tensor.
        shape: Vec<usize>,
    },
    /// `to_vec::<T>()` / `item::<T>()` with a `T` that is not the tensor's element type.
    #[error("{op}: requested {requested} elements from a {actual} tensor of shape {shape:?}")]
    ElementType {
        /// The operation.
        op: &'static str,
        /// The requested element type.
        requested: DType,
        /// The tensor's dtype.
        actual: DType,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// An axis outside `-ndim..ndim`.
    #[error("{op}: axis {axis} is out of range for a tensor of shape {shape:?} ({ndim} axes)")]
    BadAxis {
        /// The operation.
        op: &'static str,
        /// The axis as given.
        axis: isize,
        /// The number of axes it had to index.
        ndim: usize,
        /// The shape of the tensor.
        shape: Vec<usize>,
    },
    /// A reshape to a shape with a different number of elements.
    #[error(
        "reshape: cannot reshape a tensor of shape {from:?} ({from_numel} elements) into shape {to:?} ({to_numel} elements)"
    )]
    BadReshape {
        /// The tensor's shape.
        from: Vec<usize>,
        /// The requested shape.
        to: Vec<usize>,
        /// Elements in `from`.
        from_numel: usize,
        /// Elements in `to`.
        to_numel: usize,
    },
    /// An index (or a range bound) outside an axis.
    #[error("{op}: index {index} is out of range for axis {axis} of size {size} (shape {shape:?})")]
    IndexOutOfRange {
        /// The operation.
        op: &'static str,
        /// The offending index.
        index: i64,
        /// The axis it indexes.
        axis: usize,
        /// The size of that axis.
        size: usize,
        /// The shape of the indexed tensor.
        shape: Vec<usize>,
    },
    /// Operands live on different devices.
    #[error(
        "{op}: operands are on different devices, {lhs} and {rhs} (move one with `.to_device(..)`; \
         make new tensors where the others are: `x.zeros_like()`, `Tensor::full_on(.., &x.device())`)"
    )]
    DeviceMismatch {
        /// The operation.
        op: &'static str,
        /// The first operand's device.
        lhs: Device,
        /// The second operand's device.
        rhs: Device,
    },
    /// A GPU failed: no adapter, out of GPU memory, a lost device, or a size beyond the
    /// adapter's limits.
    #[error("{op}: {message}")]
    Gpu {
        /// The operation.
        op: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Any other invalid argument; the message names the operation and the values involved.
    #[error("{op}: {message}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// The same error named after `op`: for an operation made of others (`solve`, a
    /// factorization and a solve with its factors), so that the message names what the
    /// user called.
    pub fn for_op(mut self, name: &'static str) -> Error {
        match &mut self {
            Error::ShapeMismatch { op, .. }
            | Error::DTypeMismatch { op, .. }
            | Error::UnsupportedDType { op, .. }
            | Error::ElementType { op, .. }
            | Error::BadAxis { op, .. }
            | Error::IndexOutOfRange { op, .. }
            | Error::DeviceMismatch { op, .. }
            | Error::Gpu { op, .. }
            | Error::InvalidArgument { op, .. } => *op = name,
            // always named `reshape`: a view of the operation's own, not the caller's
            Error::BadReshape { .. } => {}
        }
        self
    }
}

/// The runtime's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Unwraps a `try_` result, panicking with the error's message at the caller's location.
#[track_caller]
pub(crate) fn unwrap<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}
