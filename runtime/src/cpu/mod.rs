//! The CPU backend: kernels over contiguous slices.
//!
//! The tensor layer (`crate::tensor`, `crate::ops`) resolves shapes, broadcasting and
//! strides, and hands this module contiguous buffers; this module makes them fast
//! (SIMD with run-time feature detection, rayon above a size threshold, GEMM).
//!
//! - [`kernels`]: the public interface, generic over [`Float`](crate::Float).
//! - `elementwise`, `reduce`, `softmax`: the kernel bodies, each one SIMD source
//!   dispatched per instruction set; `par` splits them across threads, and the tensor
//!   layer's row loops too (`for_row_blocks`).
//! - `math`: vectorised exp, ln, log1p, expm1, sin, cos, tan, tanh, sigmoid, the inverse
//!   trigonometric and hyperbolic functions, atan2, sinh, cosh, exp2, log2, log10, cbrt,
//!   erf and the integer roundings.
//! - `chain`: a fused elementwise program ([`crate::fused`]) over a range of its result
//!   under one dispatch: interpreted block by block, or compiled by the macro and run
//!   vector by vector.
//! - `simd`: the bridge to `pulp` (vector types of f32/f64 under each instruction set).
//! - `gemm`: matmul through the `gemm` crate, and products too thin for its packing (at
//!   most four terms per element, or at most four columns) written directly.

pub(crate) mod chain;
pub(crate) mod elementwise;
mod gemm;
pub mod kernels;
mod math;
mod par;
mod reduce;
mod simd;
mod softmax;

pub(crate) use math::MathFloat;
pub(crate) use par::{for_chunks, for_row_blocks, parallel};

#[cfg(test)]
mod tests;
