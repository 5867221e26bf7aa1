//! Tensor operations, one module per family. Each module adds methods to
//! [`Tensor`](crate::Tensor); the shape, dtype and device checks live here and the
//! arithmetic in the backend kernels.

mod activation;
mod binary;
mod conv;
mod einsum;
mod expm;
mod inplace;
pub(crate) mod linalg;
mod matmul;
mod nn;
mod operators;
mod recurrence;
mod reduce;
mod running;
mod scan;
mod sort;
mod stats;
mod unary;
mod view;

pub use conv::{Conv, Padding};
pub use einsum::einsum_batched_spec;
pub use operators::Scalar;
pub use view::PadMode;
