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

#[path = "../../examples/data/cnn_model.rs"]
#[allow(dead_code)]
mod cnn_model;

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
        // issue 5's targets: per-example gradients (vmap of grad) of an MLP 64-128-10, and
        // the same gradients from a loop over `_grad` (ferrax only: at least 10x slower)
        Workload {
            name: "per_example_grads_mlp_b256_f32",
            build: || per_example(true),
        },
        Workload {
            name: "per_example_grads_loop_b256_f32",
            build: || per_example(false),
        },
        // the gradient of an Elman network unrolled over 64 steps (batch 32, 64 inputs, 256
        // hidden, f32), its states pushed onto a `Vec` and stacked; JAX runs `lax.scan`
        Workload {
            name: "rnn_grad_t64_b32_f32",
            build: || rnn(false),
        },
        // the same network's per-sequence gradients (`#[vmap] #[grad]`; JAX: vmap of grad)
        Workload {
            name: "rnn_per_example_grads_t64_b32_f32",
            build: || rnn(true),
        },
        // the CNN of examples/data/cnn_model.rs on 64 images of 28 x 28 (conv 1 -> 32 "same",
        // relu, conv 32 -> 64 stride 2, relu, dense 12544 -> 10, f32): the batch's value and
        // gradient, and every image's gradient (`#[vmap] #[grad]`; JAX: vmap of grad)
        Workload {
            name: "cnn_step_b64_f32",
            build: || cnn(false),
        },
        Workload {
            name: "cnn_per_example_grads_b64_f32",
            build: || cnn(true),
        },
        // the gradient of a fixed-point iteration written as a `while` loop (JAX: fori_loop)
        Workload {
            name: "fixed_point_grad_b256_f32",
            build: fixed_point,
        },
        // per-example gradients of a Gaussian process likelihood (a Cholesky factor, a
        // triangular solve, a log-determinant) over 64 covariances of 64 x 64, f32
        Workload {
            name: "gp_per_example_grads_b64_n64_f32",
            build: gp,
        },
        // per-example gradients of a loss through a symmetric eigendecomposition (values
        // and vectors), 64 matrices of 32 x 32, and the gradient of the same loss for one
        // matrix of 256 x 256
        Workload {
            name: "eigh_per_example_grads_b64_n32_f32",
            build: || eigh(64, 32),
        },
        Workload {
            name: "eigh_grad_n256_f32",
            build: || eigh(1, 256),
        },
        // the gradient of sum(tanh(A⁻¹ B)) with respect to A [512, 512] and B [512, 64]
        Workload {
            name: "solve_grad_n512_f32",
            build: solve,
        },
        // Jacobians of tanh(W x) * sum(x^2) in f64: tall (10 inputs, 1000 outputs) and wide
        // (1000 inputs, 10 outputs); `jacobian` picks the mode, jacfwd/jacrev are forced
        Workload {
            name: "jacobian_tall_10to1000_f64",
            build: || jac(10, 1000, 0),
        },
        Workload {
            name: "jacfwd_tall_10to1000_f64",
            build: || jac(10, 1000, 1),
        },
        Workload {
            name: "jacrev_tall_10to1000_f64",
            build: || jac(10, 1000, 2),
        },
        Workload {
            name: "jacobian_wide_1000to10_f64",
            build: || jac(1000, 10, 0),
        },
        Workload {
            name: "jacfwd_wide_1000to10_f64",
            build: || jac(1000, 10, 1),
        },
        Workload {
            name: "jacrev_wide_1000to10_f64",
            build: || jac(1000, 10, 2),
        },
        // the value and gradient of sum(gelu(x) + softplus(x) silu(x)), x [4096, 1024] f32
        Workload {
            name: "activations_grad_4M_f32",
            build: activations,
        },
        // discounted returns-to-go of 64 episodes of 1024 steps with a learned discount per
        // step, G[t] = r[t] + sigmoid(l[t]) G[t + 1]: the gradient of sum(tanh(G)) in r and l
        Workload {
            name: "returns_grad_b64_t1024_f32",
            build: returns,
        },
        // the gradient of sum(expm(A) W), A [64, 64] f32 of 1-norm about 5
        Workload {
            name: "expm_grad_n64_f32",
            build: expm,
        },
        // the gradient of attention written in einsum over [batch, time, head, dim] (the
        // head axis in the middle: each product needs its operands permuted), 8x128x8x64 f32
        Workload {
            name: "einsum_attention_grad_f32",
            build: attention,
        },
        // per-graph gradients of a message-passing layer over 64 graphs with their own
        // edges (64 nodes, 256 edges, 16 features, 64 hidden), f32
        Workload {
            name: "gnn_per_graph_grads_b64_f32",
            build: graph_network,
        },
        // the Hessian of sum(sin(x) x^2) + x^T A x, n = 200, f64
        Workload {
            name: "hessian_200_f64",
            build: || {
                let x = Tensor::normal(Key::new(31), &[200], DType::F64);
                let a = Tensor::normal(Key::new(32), &[200, 200], DType::F64);
                Prepared {
                    work: Work::Flops(0.0),
                    run: Box::new(move || {
                        std::hint::black_box(hess_hessian(&x, &a));
                    }),
                }
            },
        },
        // per-point Hessians of a physics-informed network u: R^3 -> R (tanh, 64 wide, two
        // hidden layers) at 1024 points, f32: `#[vmap]` over `#[hessian]`
        Workload {
            name: "pinn_hessians_b1024_f32",
            build: pinn,
        },
        // the same with four layers, the hidden ones a loop over lists of weights
        Workload {
            name: "deep_pinn_hessians_b1024_f32",
            build: deep_pinn,
        },
        // per-example gradients of scalar code: `#[vmap] #[grad]` of a loop over f64s (each
        // example one call of the gradient, where JAX batches every operation)
        Workload {
            name: "oscillator_per_example_grads_b4096_f64",
            build: oscillator,
        },
        Workload {
            name: "fit_per_example_grads_b4096_f64",
            build: fit,
        },
    ]
}

/// The network of the PINN workload (its value summed: a one-element result).
#[allow(dead_code)]
#[vmap(in_axes = (0, None, None, None, None, None))]
#[hessian(wrt(x))]
pub fn pinn_u(
    x: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
    w2: &Tensor,
    b2: &Tensor,
    w3: &Tensor,
) -> Tensor {
    let h = (x.matmul(w1) + b1).tanh();
    let h = (h.matmul(w2) + b2).tanh();
    h.matmul(w3).sum()
}

fn pinn() -> Prepared {
    let xs = normal(81, &[1024, 3]);
    let (w1, b1) = (normal(82, &[3, 64]), normal(83, &[64]) * 0.1);
    let (w2, b2) = (normal(84, &[64, 64]) * 0.125, normal(85, &[64]) * 0.1);
    let w3 = normal(86, &[64]) * 0.125;
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(pinn_u_hessian_vmap(&xs, &w1, &b1, &w2, &b2, &w3));
        }),
    }
}

/// A deeper PINN network, its hidden layers a loop over lists of weights (its value
/// summed: a one-element result).
#[allow(dead_code)]
#[vmap(in_axes = (0, None, None, None, None, None))]
#[hessian(wrt(x))]
pub fn deep_pinn_u(
    x: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
    ws: &[Tensor],
    bs: &[Tensor],
    w_out: &Tensor,
) -> Tensor {
    let mut h = (x.matmul(w1) + b1).tanh();
    for i in 0..ws.len() {
        h = (h.matmul(&ws[i]) + &bs[i]).tanh();
    }
    h.matmul(w_out).sum()
}

fn deep_pinn() -> Prepared {
    let xs = normal(81, &[1024, 3]);
    let (w1, b1) = (normal(82, &[3, 64]), normal(83, &[64]) * 0.1);
    let ws: Vec<Tensor> = (0..3).map(|i| normal(90 + i, &[64, 64]) * 0.125).collect();
    let bs: Vec<Tensor> = (0..3).map(|i| normal(95 + i, &[64]) * 0.1).collect();
    let w_out = normal(86, &[64]) * 0.125;
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(deep_pinn_u_hessian_vmap(&xs, &w1, &b1, &ws, &bs, &w_out));
        }),
    }
}

/// The CNN workloads: a batch's value and gradient, or per-example gradients.
fn cnn(per_example: bool) -> Prepared {
    let (n, side) = (64, 28);
    let params = cnn_model::Cnn::new(Key::new(71), side, 32, 64, DType::F32);
    let x = normal(72, &[n, 1, side, side]);
    let labels: Vec<i32> = (0..n as i32).map(|i| i * 7 % 10).collect();
    let y = Tensor::from_vec(labels, &[n]).one_hot(10, DType::F32);
    let (xs, ys) = (x.unsqueeze(1), y.unsqueeze(1));
    let h = side / 2;
    let fwd = 2.0
        * n as f64
        * (32.0 * 9.0 * (side * side) as f64
            + 64.0 * 32.0 * 9.0 * (h * h) as f64
            + 64.0 * (h * h) as f64 * 10.0);
    Prepared {
        work: Work::Flops(3.0 * fwd),
        run: Box::new(move || {
            if per_example {
                std::hint::black_box(cnn_model::loss_grad_vmap(&params, &xs, &ys));
            } else {
                std::hint::black_box(cnn_model::loss_value_and_grad(&params, &x, &y));
            }
        }),
    }
}

/// One example's loss: an MLP 64-128-10 with tanh and log-softmax cross-entropy.
#[derive(Clone, Differentiable)]
pub struct Small {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

#[allow(dead_code)]
#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(p))]
fn example_loss(p: &Small, x: &Tensor, y: &Tensor) -> Tensor {
    let h = (x.matmul(&p.w1) + &p.b1).tanh();
    let logits = h.matmul(&p.w2) + &p.b2;
    -(logits.log_softmax(-1) * y).sum()
}

fn per_example(vmapped: bool) -> Prepared {
    let p = Small {
        w1: &normal(21, &[64, 128]) * 0.125,
        b1: Tensor::zeros(&[128], DType::F32),
        w2: &normal(22, &[128, 10]) * 0.088,
        b2: Tensor::zeros(&[10], DType::F32),
    };
    let x = normal(23, &[256, 64]);
    let labels: Vec<i32> = (0..256).map(|i| i * 7 % 10).collect();
    let y = Tensor::from_vec(labels, &[256]).one_hot(10, DType::F32);
    let (xs, ys): (Vec<Tensor>, Vec<Tensor>) = (0..256)
        .map(|i| {
            (
                x.slice(0, i, i + 1).squeeze(0),
                y.slice(0, i, i + 1).squeeze(0),
            )
        })
        .unzip();
    // forward: 2 (64*128 + 128*10) per example; a gradient about 3 of that
    let flops = 3.0 * 256.0 * 2.0 * (64.0 * 128.0 + 128.0 * 10.0);
    Prepared {
        work: Work::Flops(flops),
        run: Box::new(move || {
            if vmapped {
                std::hint::black_box(example_loss_grad_vmap(&p, &x, &y));
            } else {
                for (x, y) in xs.iter().zip(&ys) {
                    std::hint::black_box(example_loss_grad(&p, x, y));
                }
            }
        }),
    }
}

#[allow(dead_code)]
#[jacobian(wrt(x))]
fn tw(x: &Tensor, w: &Tensor) -> Tensor {
    w.matmul(x).tanh() * (x * x).sum()
}

/// `mode`: 0 `jacobian` (picks), 1 `jacfwd`, 2 `jacrev`.
fn jac(n_in: usize, n_out: usize, mode: u8) -> Prepared {
    let x = Tensor::normal(Key::new(33), &[n_in], DType::F64);
    let w = Tensor::normal(Key::new(34), &[n_out, n_in], DType::F64);
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(match mode {
                0 => tw_jacobian(&x, &w),
                1 => tw_jacfwd(&x, &w),
                _ => tw_jacrev(&x, &w),
            });
        }),
    }
}

#[allow(dead_code)]
#[hessian(wrt(x))]
fn hess(x: &Tensor, a: &Tensor) -> Tensor {
    (x.sin() * x * x).sum() + x.matmul(&a.matmul(x))
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

/// The loss of an Elman network over a batch of sequences `xs: [T, B, I]` (or one
/// sequence, `[T, I]`): the mean square of its stacked hidden states, made on the device of
/// `xs` (the GPU bench runs it too). Batched over sequences along axis 1 of `[T, B, I]` for
/// per-sequence gradients.
#[allow(dead_code)]
#[vmap(in_axes = (1, None, None))]
#[grad(wrt(w, u))]
pub fn rnn_loss(xs: &Tensor, w: &Tensor, u: &Tensor) -> Tensor {
    let mut h = xs.slice(0, 0, 1).squeeze(0).matmul(w).zeros_like();
    let mut outs = Vec::with_capacity(xs.shape()[0]);
    for t in 0..xs.shape()[0] {
        h = (xs.slice(0, t, t + 1).squeeze(0).matmul(w) + h.matmul(u)).tanh();
        outs.push(h.clone());
    }
    Tensor::stack(&outs, 0).powi(2).mean()
}

/// The RNN workloads: the batch's gradient, or every sequence's (`per_example`).
fn rnn(per_example: bool) -> Prepared {
    let (t, b, i, h) = (64, 32, 64, 256);
    let xs = normal(41, &[t, b, i]);
    let w = &normal(42, &[i, h]) * (1.0 / (i as f32).sqrt());
    let u = &normal(43, &[h, h]) * (1.0 / (h as f32).sqrt());
    // forward: 2 B (I H + H H) per step; a gradient about 3 of that
    let flops = 3.0 * (t * 2 * b * (i * h + h * h)) as f64;
    Prepared {
        work: Work::Flops(flops),
        run: Box::new(move || {
            if per_example {
                std::hint::black_box(rnn_loss_grad_vmap(&xs, &w, &u));
            } else {
                std::hint::black_box(rnn_loss_grad(&xs, &w, &u));
            }
        }),
    }
}

/// 16 trips of the fixed-point iteration `h = tanh(h W + x)` from zero, written as a
/// `while` loop (its reverse sweep keeps each trip's values on tapes), loss the mean square
/// of the last state.
#[allow(dead_code)]
#[grad(wrt(w))]
pub fn fixed_point_loss(x: &Tensor, w: &Tensor) -> Tensor {
    let mut h = x.zeros_like();
    let mut k = 0;
    while k < 16 {
        h = (h.matmul(w) + x).tanh();
        k += 1;
    }
    h.powi(2).mean()
}

/// The gradient of [`fixed_point_loss`] with respect to `w`, batch 256, width 512, f32.
fn fixed_point() -> Prepared {
    let (b, n, trips) = (256, 512, 16);
    let x = normal(51, &[b, n]);
    let w = &normal(52, &[n, n]) * (0.5 / (n as f32).sqrt());
    // a forward pass: one [b, n] @ [n, n] product a trip; a gradient about 3 of that
    let flops = 3.0 * (trips * 2 * b * n * n) as f64;
    Prepared {
        work: Work::Flops(flops),
        run: Box::new(move || {
            std::hint::black_box(fixed_point_loss_grad(&x, &w));
        }),
    }
}

/// Steps of [`oscillator_loss`] and examples of its per-example gradients.
const OSC_STEPS: usize = 200;
const OSC_BATCH: usize = 4096;

/// A Duffing oscillator's squared miss of `target` after [`OSC_STEPS`] explicit steps from
/// `(x0, v0)`, with stiffness, damping and cubic stiffness `p` (one example).
#[allow(dead_code)]
#[vmap(in_axes = (None, 0, 0, 0))]
#[grad(wrt(p))]
pub fn oscillator_loss(p: &[f64], x0: f64, v0: f64, target: f64) -> f64 {
    let k = p[0];
    let c = p[1];
    let f = p[2];
    let mut x = x0;
    let mut v = v0;
    for _ in 0..OSC_STEPS {
        let a = -k * x - c * v - f * x * x * x;
        v += 0.01 * a;
        x += 0.01 * v;
    }
    (x - target) * (x - target)
}

/// Per-example gradients of [`oscillator_loss`] with respect to its coefficients, 4096
/// examples, f64.
fn oscillator() -> Prepared {
    let p = vec![1.0, 0.1, 0.5];
    let f64s = |seed| Tensor::normal(Key::new(seed), &[OSC_BATCH], DType::F64).contiguous();
    let (x0, v0, target) = (f64s(72), f64s(73), f64s(74));
    Prepared {
        // (as benches/jax_workloads.py counts it)
        work: Work::Flops(3.5 * 9.0 * (OSC_STEPS * OSC_BATCH) as f64),
        run: Box::new(move || {
            std::hint::black_box(oscillator_loss_grad_vmap(&p, &x0, &v0, &target));
        }),
    }
}

/// The negative log marginal likelihood of a Gaussian process/// The negative log marginal likelihood of a Gaussian process with covariance `k` at
/// observations `y` (one example).
#[allow(dead_code)]
#[vmap]
#[grad]
pub fn gp_nll(k: &Tensor, y: &Tensor) -> Tensor {
    let l = k.cholesky();
    let alpha = l.solve_triangular(y, true);
    ((&alpha * &alpha).sum() + l.diagonal().ln().sum() * 2.0) * 0.5
}

/// Per-example gradients of [`gp_nll`]: 64 covariances `m mᵀ / n + I` of 64 x 64, f32.
fn gp() -> Prepared {
    let (b, n) = (64, 64);
    let m = normal(61, &[b, n, n]);
    let k = m.matmul(&m.mt()) * (1.0 / n as f32) + Tensor::eye(n, DType::F32);
    let y = normal(62, &[b, n]);
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(gp_nll_grad_vmap(&k, &y));
        }),
    }
}

/// A loss through the eigenvalues `w` and eigenvectors `v` of `a`: `Σ tanh(w) (vᵀ u)²`.
#[allow(dead_code)]
#[vmap]
#[grad]
pub fn spectral_loss(a: &Tensor, u: &Tensor) -> Tensor {
    let (w, v) = a.eigh();
    (w.tanh() * v.mt().matmul(u).powi(2)).sum()
}

/// Gradients of [`spectral_loss`] for `b` symmetric matrices of `n x n` (per example for
/// `b > 1`), f32.
fn eigh(b: usize, n: usize) -> Prepared {
    let m = normal(65, &[b, n, n]);
    let a = (&m + &m.mt()) * 0.5;
    let u = normal(66, &[b, n]);
    let (a1, u1) = (a.slice(0, 0, 1).squeeze(0), u.slice(0, 0, 1).squeeze(0));
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            if b == 1 {
                std::hint::black_box(spectral_loss_grad(&a1, &u1));
            } else {
                std::hint::black_box(spectral_loss_grad_vmap(&a, &u));
            }
        }),
    }
}

/// `sum(tanh(A⁻¹ B))`.
#[allow(dead_code)]
#[grad]
pub fn solve_loss(a: &Tensor, b: &Tensor) -> Tensor {
    a.solve(b).tanh().sum()
}

/// The gradient of [`solve_loss`], `A` `[512, 512]` (well conditioned), `B` `[512, 64]`.
fn solve() -> Prepared {
    let (n, k) = (512, 64);
    let a = normal(63, &[n, n]) * (1.0 / (n as f32).sqrt()) + Tensor::eye(n, DType::F32) * 2.0;
    let b = normal(64, &[n, k]);
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(solve_loss_grad(&a, &b));
        }),
    }
}

/// Smooth activations, summed.
#[allow(dead_code)]
#[grad]
pub fn activations_loss(x: &Tensor) -> Tensor {
    (x.gelu() + x.softplus() * x.silu()).sum()
}

/// The value and gradient of [`activations_loss`] at `[4096, 1024]` f32 (bytes: the input
/// read and the gradient written).
fn activations() -> Prepared {
    let x = normal(71, &[4096, 1024]);
    Prepared {
        work: Work::Bytes(2.0 * 4.0 * (4096 * 1024) as f64),
        run: Box::new(move || {
            std::hint::black_box(activations_loss_value_and_grad(&x));
        }),
    }
}

/// Discounted returns-to-go with a learned discount per step, through `tanh`.
#[allow(dead_code)]
#[grad]
pub fn returns_loss(r: &Tensor, logit: &Tensor) -> Tensor {
    r.linear_recurrence_rev(&logit.sigmoid(), -1).tanh().sum()
}

/// The gradient of [`returns_loss`]: rewards `[64, 1024]`, discount logits `[1024]`.
fn returns() -> Prepared {
    let r = normal(72, &[64, 1024]);
    let logit = normal(73, &[1024]);
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(returns_loss_grad(&r, &logit));
        }),
    }
}

/// `sum(expm(A) W)`.
#[allow(dead_code)]
#[grad(wrt(a))]
pub fn expm_loss(a: &Tensor, w: &Tensor) -> Tensor {
    (a.expm() * w).sum()
}

/// The gradient of [`expm_loss`], `A` `[64, 64]` with entries of deviation 0.1.
fn expm() -> Prepared {
    let a = normal(74, &[64, 64]) * 0.1;
    let w = normal(75, &[64, 64]);
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(expm_loss_grad(&a, &w));
        }),
    }
}

/// Attention over `[batch, time, head, dim]` inputs, in einsum.
#[allow(dead_code)]
#[grad]
pub fn einsum_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let s = Tensor::einsum("bqhd,bkhd->bhqk", &[q, k]) * 0.125;
    let p = s.softmax(-1);
    let o = Tensor::einsum("bhqk,bkhd->bqhd", &[&p, v]);
    o.square().mean()
}

/// The gradient of [`einsum_attention`] in all three inputs, `[8, 128, 8, 64]` each.
fn attention() -> Prepared {
    let shape = [8, 128, 8, 64];
    let (q, k, v) = (normal(76, &shape), normal(77, &shape), normal(78, &shape));
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(einsum_attention_grad(&q, &k, &v));
        }),
    }
}

/// One graph's loss through a round of message passing: messages at the edges' sources,
/// summed and maxed at their destinations.
#[allow(dead_code, clippy::too_many_arguments)]
#[vmap(in_axes = (None, None, None, None, 0, 0, 0, 0))]
#[grad(wrt(w_msg, w_sum, w_max, w_out))]
pub fn gnn_loss(
    w_msg: &Tensor,
    w_sum: &Tensor,
    w_max: &Tensor,
    w_out: &Tensor,
    x: &Tensor,
    src: &Tensor,
    dst: &Tensor,
    y: &Tensor,
) -> Tensor {
    let m = x.index_select(0, src).matmul(w_msg).tanh();
    let n = x.shape()[0];
    let h = (m.segment_sum(dst, n).matmul(w_sum) + m.segment_max(dst, n).matmul(w_max)).tanh();
    (h.matmul(w_out) - y).square().mean()
}

/// Per-graph gradients of [`gnn_loss`]: 64 graphs of 64 nodes and 256 edges (every node
/// sends itself one), 16 features, 64 hidden.
fn graph_network() -> Prepared {
    let (b, n, e, f, h) = (64, 64, 256, 16, 64);
    let ends = |seed: u64| {
        let u = Tensor::uniform(Key::new(seed), &[b, e - n], 0.0, n as f64, DType::F32);
        let u = u.to_vec::<f32>();
        let v: Vec<i32> = (0..b)
            .flat_map(|g| {
                (0..n as i32).chain(
                    u[g * (e - n)..(g + 1) * (e - n)]
                        .iter()
                        .map(|v| (*v as i32).min(n as i32 - 1)),
                )
            })
            .collect();
        Tensor::from_vec(v, &[b, e])
    };
    let (src, dst) = (ends(81), ends(82));
    let (x, y) = (normal(83, &[b, n, f]), normal(84, &[b, n, 1]));
    let (w_msg, w_sum, w_max, w_out) = (
        normal(85, &[f, h]) * 0.25,
        normal(86, &[h, h]) * 0.125,
        normal(87, &[h, h]) * 0.125,
        normal(88, &[h, 1]) * 0.125,
    );
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(gnn_loss_grad_vmap(
                &w_msg, &w_sum, &w_max, &w_out, &x, &src, &dst, &y,
            ));
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

/// Points of each example of [`fit_loss`], and examples of its per-example gradients.
const FIT_POINTS: usize = 16;
const FIT_BATCH: usize = 4096;

/// A cubic's mean squared miss over one example's points `(xs[i], ys[i])`, its
/// coefficients `c`.
#[allow(dead_code)]
#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(c))]
pub fn fit_loss(c: &[f64], xs: &[f64], ys: &[f64]) -> f64 {
    let mut loss = 0.0;
    for i in 0..xs.len() {
        let x = xs[i];
        let y = c[0] + x * (c[1] + x * (c[2] + x * c[3]));
        loss += (y - ys[i]) * (y - ys[i]);
    }
    loss / xs.len() as f64
}

/// Per-example gradients of [`fit_loss`] with respect to its coefficients, 4096 examples of
/// 16 points each, f64.
fn fit() -> Prepared {
    let c = vec![0.5, -1.0, 0.25, 0.1];
    let f64s = |seed| Tensor::normal(Key::new(seed), &[FIT_BATCH, FIT_POINTS], DType::F64);
    let (xs, ys) = (f64s(75).contiguous(), f64s(76).contiguous());
    Prepared {
        // (as benches/jax_workloads.py counts it)
        work: Work::Flops(3.5 * 8.0 * (FIT_POINTS * FIT_BATCH) as f64),
        run: Box::new(move || {
            std::hint::black_box(fit_loss_grad_vmap(&c, &xs, &ys));
        }),
    }
}
