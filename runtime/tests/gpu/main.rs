//! Every GPU primitive checked against the CPU one, on the shapes of the foundation's
//! tests: broadcasting, 0-d, size-1 and empty axes, and inputs that are transposed,
//! sliced, stepped or broadcast views.
//!
//! Where wgpu finds no adapter the tests print why and pass, unless `FERRAX_REQUIRE_GPU=1`
//! (set by `.ci/run`, which installs Mesa's software Vulkan driver), where that is a failure.

#![cfg(feature = "gpu")]

mod conv;
mod device;
mod elementwise;
mod linalg;
mod matmul;
mod reduce;
mod scan;
mod views;

use ferrax_runtime::prelude::*;

/// The GPU, or `None` (with the reason on stderr) where there is none and none is required.
pub fn gpu() -> Option<Device> {
    match Device::gpu() {
        Ok(d) => Some(d),
        Err(e) => {
            if std::env::var("FERRAX_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("FERRAX_REQUIRE_GPU=1 but there is no GPU: {e}");
            }
            eprintln!("skipping a GPU test: {e}");
            None
        }
    }
}

/// Deterministic values in [-3, 3] (multiples of 1/8, exact in f32), with ±0, ±inf and
/// NaN mixed in when `special`.
pub fn values(n: usize, seed: u64, special: bool) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (state >> 33) as u32;
            if special && r.is_multiple_of(23) {
                [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN][(r / 23 % 5) as usize]
            } else {
                ((r % 49) as i32 - 24) as f32 / 8.0
            }
        })
        .collect()
}

/// A CPU f32 tensor of `shape` with [`values`].
pub fn tensor(shape: &[usize], seed: u64, special: bool) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(values(n, seed, special), shape)
}

/// How an input is laid out in its storage.
#[derive(Clone, Copy, Debug)]
pub enum Lay {
    /// Row-major.
    Contiguous,
    /// Stored with reversed axes, viewed through `permute`.
    Transposed,
    /// A slice of the last axis of a wider tensor.
    Sliced,
    /// Every other element of the first axis.
    Stepped,
}

/// All layouts.
pub const LAYS: [Lay; 4] = [Lay::Contiguous, Lay::Transposed, Lay::Sliced, Lay::Stepped];

/// A CPU tensor of `shape` holding `tensor(shape, seed)`'s kind of values, stored as `lay`.
pub fn laid(shape: &[usize], seed: u64, special: bool, lay: Lay) -> Tensor {
    let nd = shape.len();
    match lay {
        Lay::Contiguous => tensor(shape, seed, special),
        Lay::Transposed => {
            let rev: Vec<usize> = shape.iter().rev().copied().collect();
            let axes: Vec<isize> = (0..nd as isize).rev().collect();
            tensor(&rev, seed, special).permute(&axes)
        }
        Lay::Sliced if nd > 0 => {
            let mut wide = shape.to_vec();
            wide[nd - 1] += 2;
            tensor(&wide, seed, special).slice(-1, 1, shape[nd - 1] + 1)
        }
        Lay::Stepped if nd > 0 => {
            let mut tall = shape.to_vec();
            tall[0] = 2 * shape[0];
            tensor(&tall, seed, special).slice_step(0, 0, tall[0], 2)
        }
        _ => tensor(shape, seed, special),
    }
}

/// Whether two f32 values agree: equal (NaN with NaN, infinities by sign), or within
/// `tol` relative to the larger magnitude (absolute below 1).
pub fn close(a: f32, b: f32, tol: f32) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// Asserts that a GPU result equals the CPU one: same shape, dtype and device as
/// expected, and elements within `tol` (exact for i32 and bool).
#[track_caller]
pub fn assert_matches(what: &str, gpu_result: &Tensor, cpu_result: &Tensor, tol: f32) {
    assert!(
        gpu_result.device().is_gpu(),
        "{what}: result on {}",
        gpu_result.device()
    );
    assert_eq!(gpu_result.shape(), cpu_result.shape(), "{what}: shape");
    assert_eq!(gpu_result.dtype(), cpu_result.dtype(), "{what}: dtype");
    match cpu_result.dtype() {
        DType::F32 => {
            let (g, c) = (gpu_result.to_vec::<f32>(), cpu_result.to_vec::<f32>());
            for (i, (x, y)) in g.iter().zip(&c).enumerate() {
                assert!(
                    close(*x, *y, tol),
                    "{what}: element {i}: gpu {x}, cpu {y}\ngpu {g:?}\ncpu {c:?}"
                );
            }
        }
        DType::I32 => assert_eq!(
            gpu_result.to_vec::<i32>(),
            cpu_result.to_vec::<i32>(),
            "{what}"
        ),
        DType::Bool => assert_eq!(
            gpu_result.to_vec::<bool>(),
            cpu_result.to_vec::<bool>(),
            "{what}"
        ),
        DType::F64 => unreachable!("no f64 on the GPU"),
    }
}

/// Runs `f` on CPU tensors and on their GPU copies and compares the results.
#[track_caller]
pub fn check(
    dev: &Device,
    what: &str,
    inputs: &[&Tensor],
    tol: f32,
    f: impl Fn(&[Tensor]) -> Tensor,
) {
    let cpu: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    let on_gpu: Vec<Tensor> = inputs.iter().map(|t| t.to_device(dev)).collect();
    for (g, c) in on_gpu.iter().zip(&cpu) {
        assert_eq!(g.shape(), c.shape());
    }
    let expected = f(&cpu);
    let got = f(&on_gpu);
    assert_matches(what, &got, &expected, tol);
}

/// Shapes of the foundation tests: 0-d, size-1 and empty axes, up to rank 4.
pub const SHAPES: &[&[usize]] = &[
    &[],
    &[1],
    &[7],
    &[0],
    &[3, 1],
    &[4, 5],
    &[2, 0, 3],
    &[2, 3, 4],
    &[1, 3, 1, 5],
    &[3, 2, 2, 3],
    &[300, 70],
];
