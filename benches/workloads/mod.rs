//! The workloads of the side-by-side comparison with JAX, shared by the criterion bench
//! (`benches/runtime.rs`) and the comparison binary (`benches/compare.rs`).
//!
//! Each has a name that `benches/jax_workloads.py` uses for the same computation on
//! the same shapes and dtypes; to add a row to the table, add a workload here and one
//! with the same name there.

use ferrax::prelude::*;

#[path = "../../examples/data/mlp_model.rs"]
#[allow(dead_code)]
mod mlp_model;

/// What one run of a workload does, for throughput figures.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// Floating-point operations.
    Flops(f64),
    /// Bytes necessarily read plus written.
    Bytes(f64),
}

/// A workload with its inputs built: `run` performs one repetition.
pub struct Prepared {
    pub work: Work,
    pub run: Box<dyn FnMut()>,
}

/// A named workload; `build` makes its inputs (not timed).
pub struct Workload {
    pub name: &'static str,
    pub build: fn() -> Prepared,
}

const M16: usize = 1 << 24;

fn normal(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::normal(Key::new(seed), shape, DType::F32)
}

fn matmul(n: usize) -> Prepared {
    let (a, b) = (normal(1, &[n, n]), normal(2, &[n, n]));
    Prepared {
        work: Work::Flops(2.0 * (n * n * n) as f64),
        run: Box::new(move || {
            std::hint::black_box(a.matmul(&b));
        }),
    }
}

/// Every workload, in table order.
pub fn all() -> Vec<Workload> {
    vec![
        Workload {
            name: "matmul_1024_f32",
            build: || matmul(1024),
        },
        Workload {
            name: "matmul_2048_f32",
            build: || matmul(2048),
        },
        // an affine map and activation: x [4096, 4096], w and b [4096] broadcast over rows
        Workload {
            name: "tanh_affine_16M_f32",
            build: || {
                let x = normal(3, &[4096, 4096]);
                let (w, b) = (normal(4, &[4096]), normal(5, &[4096]));
                Prepared {
                    work: Work::Bytes(2.0 * 4.0 * M16 as f64),
                    run: Box::new(move || {
                        std::hint::black_box((&x * &w + &b).tanh());
                    }),
                }
            },
        },
        Workload {
            name: "softmax_4096x1024_f32",
            build: || {
                let x = normal(6, &[4096, 1024]);
                Prepared {
                    work: Work::Bytes(2.0 * 4.0 * (4096 * 1024) as f64),
                    run: Box::new(move || {
                        std::hint::black_box(x.softmax(-1));
                    }),
                }
            },
        },
        Workload {
            name: "sum_16M_f32",
            build: || {
                let x = normal(7, &[M16]);
                Prepared {
                    work: Work::Bytes(4.0 * M16 as f64),
                    run: Box::new(move || {
                        std::hint::black_box(x.sum());
                    }),
                }
            },
        },
        // the bandwidth reference: a plain copy of 16M f32 (read + write) into a buffer
        // allocated once, split over as many threads as the kernels use
        Workload {
            name: "copy_16M_f32",
            build: || {
                let x = normal(8, &[M16]).to_vec::<f32>();
                let mut out = vec![0.0f32; M16];
                Prepared {
                    work: Work::Bytes(2.0 * 4.0 * M16 as f64),
                    run: Box::new(move || parallel_copy(std::hint::black_box(&x), &mut out)),
                }
            },
        },
        // the gradient `#[grad]` generates for Rosenbrock written as a plain loop over a slice
        // of 1M f64 (issue 3's target: no slower than JAX's `jit(grad)` of the vectorised form)
        Workload {
            name: "rosen_grad_1M_f64",
            build: || {
                let x: Vec<f64> = (0..1_000_000)
                    .map(|i| 0.5 + 0.4 * ((i as f64) * 0.37).sin())
                    .collect();
                Prepared {
                    work: Work::Bytes(2.0 * 8.0 * x.len() as f64),
                    run: Box::new(move || {
                        std::hint::black_box(rosen_grad(std::hint::black_box(&x)));
                    }),
                }
            },
        },
        // issue 4's target: the value-and-grad step of an MLP 784-512-512-10 (relu, softmax
        // cross-entropy, batch 256, f32) that `#[grad]` derives from the plain loss, and the
        // forward pass alone (the step should cost at most 3 of them)
        Workload {
            name: "mlp_step_b256_f32",
            build: || mlp(true),
        },
        Workload {
            name: "mlp_forward_b256_f32",
            build: || mlp(false),
        },
    ]
}

/// The MLP of the comparison (FLOPs: 2 m n k per matmul forward, three times that for a step).
const MLP_WIDTHS: [usize; 4] = [784, 512, 512, 10];

fn mlp(step: bool) -> Prepared {
    let params = mlp_model::Mlp::new(Key::new(11), &MLP_WIDTHS, DType::F32);
    let x = normal(12, &[256, 784]);
    let labels: Vec<i32> = (0..256).map(|i| i * 7 % 10).collect();
    let y = Tensor::from_vec(labels, &[256]).one_hot(10, DType::F32);
    let fwd: f64 = MLP_WIDTHS
        .windows(2)
        .map(|io| 2.0 * 256.0 * (io[0] * io[1]) as f64)
        .sum();
    Prepared {
        work: Work::Flops(if step { 3.0 * fwd } else { fwd }),
        run: Box::new(move || {
            if step {
                std::hint::black_box(mlp_model::loss_value_and_grad(&params, &x, &y));
            } else {
                std::hint::black_box(mlp_model::loss(&params, &x, &y));
            }
        }),
    }
}

/// Rosenbrock's function, as in `benches/rosen.rs` (only its gradient is timed).
#[allow(dead_code)]
#[grad]
fn rosen(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    s
}

/// Copies `src` into `dst` (of equal length), one `memcpy` per thread.
pub fn parallel_copy(src: &[f32], dst: &mut [f32]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(threads);
    let chunk = src.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (src, dst) in src.chunks(chunk).zip(dst.chunks_mut(chunk)) {
            s.spawn(move || dst.copy_from_slice(src));
        }
    });
}
