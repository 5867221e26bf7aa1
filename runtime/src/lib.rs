//! ferrax-runtime: the array runtime behind ferrax.
//!
//! The code that `#[grad]` and `#[vmap]` generate is ordinary Rust calling this crate.
//! Its centre is [`Tensor`], an n-dimensional array of `f32`, `f64`, `i32` (indices) or
//! `bool` (masks), cheap to clone and to view, with NumPy's broadcasting rules.
//!
//! # A tour
//!
//! ```
//! use ferrax_runtime::prelude::*;
//!
//! // Constructors: from data, filled, ranges, random (from an explicit, splittable key).
//! let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
//! let ones = Tensor::ones(&[3], DType::F32);
//! let (k1, _k2) = Key::new(0).split();
//! let w = Tensor::normal(k1, &[3, 4], DType::F32);
//!
//! // Elementwise arithmetic broadcasts ([2, 3] + [3]); Rust floats take the tensor's dtype.
//! let y = (&x + &ones) * 0.5;
//! assert_eq!(y.to_vec::<f32>(), vec![1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
//! let z = (y.matmul(&w).tanh() - 1.0).exp();
//! assert_eq!(z.shape(), &[2, 4]);
//!
//! // Views share storage: transposes and slices copy nothing.
//! let col = x.t().slice(0, 1, 2); // [1, 2]
//! assert_eq!(col.to_vec::<f32>(), vec![2.0, 5.0]);
//!
//! // Reductions, to 0-d tensors or along an axis (negative axes count from the end).
//! assert_eq!(x.sum().item::<f32>(), 21.0);
//! assert_eq!(x.max_axis(-1, false).to_vec::<f32>(), vec![3.0, 6.0]);
//! let p = x.softmax(1);
//! assert!((p.sum_axis(1, false).to_vec::<f32>()[0] - 1.0).abs() < 1e-6);
//!
//! // Masks and indices.
//! let big = x.gt(&Tensor::scalar(2.5f32));
//! let clipped = Tensor::where_(&big, &x, &Tensor::scalar(0.0f32));
//! assert_eq!(clipped.to_vec::<f32>(), vec![0.0, 0.0, 3.0, 4.0, 5.0, 6.0]);
//! assert_eq!(x.argmax_axis(1, false).to_vec::<i32>(), vec![2, 2]);
//!
//! // Bad input is an error naming the operation, the shapes and the dtypes.
//! let err = x.try_add(&Tensor::ones(&[2], DType::F32)).unwrap_err();
//! assert_eq!(err.to_string(), "add: shapes [2, 3] and [2] cannot be broadcast together");
//! assert!(x.try_add(&Tensor::ones(&[3], DType::F64)).is_err()); // f32 + f64
//! ```
//!
//! Every operation that can fail on bad input panics with the error's message and has a
//! `try_` twin returning [`Result`]. Empty tensors and zero-size axes work throughout
//! (the sum of nothing is 0, its maximum -inf), and NaN propagates.
//!
//! # Cost model
//!
//! - Views (`t`, `transpose`, `permute`, `slice`, `broadcast_to`, `squeeze`,
//!   `unsqueeze`, and `reshape` where strides allow) copy nothing.
//! - Kernels read contiguous buffers in place. Elementwise ops and axis reductions on a
//!   permuted view (a transpose) work on the storage in its own order, and `matmul`
//!   hands strides to GEMM, so transposes are not copied either; other views (slices
//!   with gaps, broadcasts) are copied once into a contiguous buffer.
//! - Broadcasting a row (`[m, n] + [n]`) or a column (`[m, n] * [m, 1]`) runs the
//!   contiguous kernel row by row, in parallel for large outputs.
//! - Large float buffers are recycled: a loop that allocates the same sizes each
//!   iteration stops paying the operating system for fresh pages after the first.
//! - Operators that own a tensor nobody else holds (`a += &b`, `x * 2.0` on a
//!   temporary, `-t`) write the result into its buffer instead of a new one.
//!
//! # GPU
//!
//! With the `gpu` feature (on by default), [`Device::gpu`] opens the first wgpu adapter
//! (Vulkan, Metal or DX12) and [`Tensor::to_device`] moves f32, i32 and bool tensors
//! there; every operation above then runs as a WGSL compute shader, with the same
//! results (f64 has no GPU form: moving it there is an error). Operations on tensors of
//! different devices are an [`Error::DeviceMismatch`].
//!
//! ```
//! use ferrax_runtime::prelude::*;
//!
//! let dev = Device::gpu().unwrap_or(Device::Cpu); // or Device::default(): FERRAX_DEVICE
//! let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0, 4.0], &[2, 2]).to_device(&dev);
//! let y = (x.matmul(&x) * 0.5).tanh().sum_axis(0, false);
//! assert_eq!(y.device(), dev);
//! let host = y.to_vec::<f32>(); // waits for the GPU and reads back
//! assert!((host[0] - ((-2.5f32).tanh() + 7.5f32.tanh())).abs() < 1e-6);
//! assert!(host[1].abs() < 1e-6); // tanh(-5) + tanh(5)
//! ```
//!
//! GPU work is recorded and submitted in batches; nothing comes back to the host until
//! `to_vec`, `item`, printing or [`Tensor::eval`] asks. Elementwise results are computed
//! lazily, so a chain such as `(x * w + b).tanh()`, and the reduction or softmax that
//! consumes it, runs as one kernel.
//!
//! # Layout
//!
//! - [`tensor`]: the [`Tensor`] type, constructors and accessors;
//! - [`shape`]: strides, broadcasting and axis rules;
//! - `ops`: the operations (unary, binary, reductions, matmul, views, nn, operators,
//!   convolution with [`Conv`]);
//! - [`random`]: [`Key`] and the Threefry generator;
//! - [`differentiable`]: the tangent algebra of parameter values and `unbroadcast`;
//! - [`optim`]: SGD, momentum and Adam over any [`Differentiable`] value;
//! - [`cpu`]: the CPU kernels the operations call on contiguous buffers;
//! - `gpu` (feature `gpu`, on by default): the same primitives as WGSL compute shaders
//!   through wgpu, for tensors moved with [`Tensor::to_device`] to [`Device::gpu`].

pub mod cpu;
pub mod device;
pub mod differentiable;
pub mod element;
pub mod error;
mod fmt;
pub mod fused;
#[cfg(feature = "gpu")]
mod gpu;
mod ops;
pub mod optim;
pub mod packed;
mod pool;
pub mod random;
pub mod shape;
mod storage;
pub mod tensor;

pub use device::{Activity, Device, KernelTime};
pub use differentiable::{Differentiable, unbroadcast};
pub use element::{DType, Element, Float};
pub use error::{Error, Result};
pub use ops::{Conv, PadMode, Padding, Scalar, einsum_batched_spec};
pub use random::Key;
pub use tensor::Tensor;

/// The items a user needs, re-exported by `ferrax::prelude`. (Not [`Result`], which would
/// shadow the standard one in the user's code.)
pub mod prelude {
    pub use crate::device::Device;
    pub use crate::differentiable::Differentiable;
    pub use crate::element::{DType, Element, Float};
    pub use crate::error::Error;
    pub use crate::ops::{Conv, PadMode, Padding};
    pub use crate::random::Key;
    pub use crate::tensor::Tensor;
}
