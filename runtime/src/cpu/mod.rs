//! The CPU backend: kernels over contiguous slices.
//!
//! The tensor layer (`crate::tensor`, `crate::ops`) resolves shapes, broadcasting and
//! strides, and hands this module contiguous buffers; this module makes them fast
//! (SIMD with run-time feature detection, rayon above a size threshold, GEMM).

pub mod kernels;
