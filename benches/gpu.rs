//! The GPU rows of the comparison with JAX: ferrax's wgpu backend on the workloads of
//! issue 6's targets, printed as one JSON object per line in the format of
//! `benches/compare.rs` (`{"name", "median_s", "runs", "flops" | "bytes"}`), so that
//! `benches/table.py` puts them beside JAX's.
//!
//! ```text
//! cargo bench --bench gpu                  # every workload (needs a GPU adapter)
//! cargo bench --bench gpu -- matmul        # those whose name contains "matmul"
//! target/.../gpu-<hash> --jax-script       # prints the JAX (CUDA) side as a Python script
//! cargo bench --bench gpu -- --hardware-only   # skips software adapters (lavapipe)
//! ```
//!
//! Each workload runs once to warm up (compiling its pipelines), then repeatedly for
//! about two seconds (`BENCH_SECONDS`; at least 10, at most 200 runs), each run ending with
//! `Tensor::eval` so that the GPU's work is inside the time; the median is
//! reported. Without an adapter it says why and exits successfully. The MLP step also
//! checks, before timing, that its GPU gradients match the CPU's.
//!
//! With `FERRAX_GPU_PROFILE=1` it also prints, per workload, the GPU time of its eight
//! longest kernels per run (timestamp queries; the timings then include their overhead).
//!
//! How to run it on the GPU machine: `benches/README.md`, section "GPU".

#[allow(dead_code)]
mod workloads;

use std::time::{Duration, Instant};

use ferrax::prelude::*;

/// What one run does, for throughput figures.
enum Work {
    Flops(f64),
    Bytes(f64),
}

/// One workload, built: `run` performs one repetition (and waits for the GPU).
struct Prepared {
    work: Work,
    run: Box<dyn FnMut()>,
}

struct Workload {
    name: &'static str,
    build: fn(&Device) -> Prepared,
}

const M: usize = 1 << 20;

fn normal(seed: u64, shape: &[usize], dev: &Device) -> Tensor {
    Tensor::normal(Key::new(seed), shape, DType::F32).to_device(dev)
}

fn matmul(n: usize, dev: &Device) -> Prepared {
    let (a, b) = (normal(1, &[n, n], dev), normal(2, &[n, n], dev));
    Prepared {
        work: Work::Flops(2.0 * (n * n * n) as f64),
        run: Box::new(move || {
            std::hint::black_box(a.matmul(&b)).eval();
        }),
    }
}

/// `tanh(x * w + b)` with x `[rows, 4096]` and w, b `[4096]` broadcast over rows: one
/// fused kernel, reading x once and writing once.
fn tanh_affine(rows: usize, dev: &Device) -> Prepared {
    let x = normal(3, &[rows, 4096], dev);
    let (w, b) = (normal(4, &[4096], dev), normal(5, &[4096], dev));
    Prepared {
        work: Work::Bytes(2.0 * 4.0 * (rows * 4096) as f64),
        run: Box::new(move || {
            std::hint::black_box((&x * &w + &b).tanh()).eval();
        }),
    }
}

/// The MLP of the tensor `#[grad]` issue: 784-512-512-10, tanh, softmax cross-entropy.
#[derive(Clone, Debug, Differentiable)]
struct Mlp {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
}

/// Mean cross-entropy of the MLP's predictions for inputs `x` against one-hot `y`.
#[allow(dead_code)] // only its generated gradient is used
#[grad(wrt(p))]
fn mlp_loss(p: &Mlp, x: &Tensor, y: &Tensor) -> Tensor {
    let h1 = (x.matmul(&p.w1) + &p.b1).tanh();
    let h2 = (h1.matmul(&p.w2) + &p.b2).tanh();
    let logits = h2.matmul(&p.w3) + &p.b3;
    let nll = -(logits.log_softmax(1) * y).sum();
    nll / 256.0
}

fn mlp(dev: &Device) -> Mlp {
    let layer = |seed: u64, fan_in: usize, fan_out: usize| {
        let w = Tensor::normal(Key::new(seed), &[fan_in, fan_out], DType::F32)
            * (1.0 / (fan_in as f64).sqrt());
        (
            w.to_device(dev),
            Tensor::zeros(&[fan_out], DType::F32).to_device(dev),
        )
    };
    let ((w1, b1), (w2, b2), (w3, b3)) =
        (layer(10, 784, 512), layer(11, 512, 512), layer(12, 512, 10));
    Mlp {
        w1,
        b1,
        w2,
        b2,
        w3,
        b3,
    }
}

fn mlp_batch(dev: &Device) -> (Tensor, Tensor) {
    let x = Tensor::normal(Key::new(13), &[256, 784], DType::F32).to_device(dev);
    let labels: Vec<i32> = (0..256).map(|i| i * 7 % 10).collect();
    let y = Tensor::from_vec(labels, &[256])
        .one_hot(10, DType::F32)
        .to_device(dev);
    (x, y)
}

/// Checks the GPU value and gradient against the CPU's (panics if they differ).
fn check_mlp_against_cpu(dev: &Device) {
    let (pc, (xc, yc)) = (mlp(&Device::Cpu), mlp_batch(&Device::Cpu));
    let (pg, (xg, yg)) = (mlp(dev), mlp_batch(dev));
    let (lc, gc) = mlp_loss_value_and_grad(&pc, &xc, &yc);
    let (lg, gg) = mlp_loss_value_and_grad(&pg, &xg, &yg);
    let close = |a: &Tensor, b: &Tensor, what: &str| {
        let (a, b) = (a.to_vec::<f32>(), b.to_device(&Device::Cpu).to_vec::<f32>());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let err = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            err <= 1e-4 * scale,
            "mlp {what}: GPU and CPU differ by {err} (scale {scale})"
        );
    };
    close(&lc, &lg, "loss");
    for (c, g, what) in [
        (&gc.w1, &gg.w1, "dw1"),
        (&gc.b1, &gg.b1, "db1"),
        (&gc.w2, &gg.w2, "dw2"),
        (&gc.b2, &gg.b2, "db2"),
        (&gc.w3, &gg.w3, "dw3"),
        (&gc.b3, &gg.b3, "db3"),
    ] {
        assert_eq!(g.device(), *dev, "{what} computed on the GPU");
        close(c, g, what);
    }
}

fn mlp_step(dev: &Device) -> Prepared {
    check_mlp_against_cpu(dev);
    let p = mlp(dev);
    let (x, y) = mlp_batch(dev);
    let flops = 2.0 * 3.0 * 256.0 * (784.0 * 512.0 + 512.0 * 512.0 + 512.0 * 10.0);
    // what one step costs the GPU path, after the warm-up run compiled its pipelines
    let step = || mlp_loss_value_and_grad(&p, &x, &y).eval();
    step();
    step(); // the buffers of every later step, so its bind groups are made by now
    let before = dev.activity();
    step();
    let after = dev.activity();
    // the host's part: recording the step (submitted as it goes with FERRAX_GPU_BATCH)
    // before the wait that `eval` adds; the median of 21 steps
    let mut host: Vec<f64> = (0..21)
        .map(|_| {
            let t = std::time::Instant::now();
            let out = mlp_loss_value_and_grad(&p, &x, &y);
            let recorded = t.elapsed().as_secs_f64();
            out.eval();
            recorded
        })
        .collect();
    host.sort_by(f64::total_cmp);
    eprintln!(
        "mlp step: {:.3} ms of host time before the wait, {}",
        host[10] * 1e3,
        counts(before, after),
    );
    Prepared {
        work: Work::Flops(flops),
        run: Box::new(move || {
            // the loss and every gradient computed, then one wait for the GPU
            std::hint::black_box(mlp_loss_value_and_grad(&p, &x, &y))
                .try_eval()
                .expect("the GPU computes the step");
        }),
    }
}

/// The gradient of the Elman network of the CPU comparison (`workloads::rnn_loss`: 64
/// steps, batch 32, 64 inputs, 256 hidden; its states pushed onto a `Vec` and stacked).
fn rnn_grad(dev: &Device) -> Prepared {
    let (t, b, i, h) = (64, 32, 64, 256);
    let xs = normal(41, &[t, b, i], dev);
    let w = &normal(42, &[i, h], dev) * (1.0 / (i as f32).sqrt());
    let u = &normal(43, &[h, h], dev) * (1.0 / (h as f32).sqrt());
    Prepared {
        work: Work::Flops(3.0 * (t * 2 * b * (i * h + h * h)) as f64),
        run: Box::new(move || {
            std::hint::black_box(workloads::rnn_loss_grad(&xs, &w, &u))
                .try_eval()
                .expect("the GPU computes the gradient");
        }),
    }
}

/// Per-graph gradients of the message-passing layer of the CPU comparison
/// (`workloads::gnn_loss`: 64 graphs of 64 nodes and 256 edges, 16 features, 64 hidden;
/// gathers at the edges' sources, segment sums and maxima at their destinations).
fn graph_network(dev: &Device) -> Prepared {
    let (b, n, e, f, h) = (64usize, 64usize, 256usize, 16usize, 64usize);
    let ends = |seed: u64| {
        let ids: Vec<i32> = (0..b * e)
            .map(|k| match k % e {
                j if j < n => j as i32,
                j => ((j as u64 * 7919 + seed * 104_729 + (k / e) as u64 * 31) % n as u64) as i32,
            })
            .collect();
        Tensor::from_vec(ids, &[b, e]).to_device(dev)
    };
    let (src, dst) = (ends(81), ends(82));
    let (x, y) = (normal(83, &[b, n, f], dev), normal(84, &[b, n, 1], dev));
    let (w_msg, w_sum, w_max, w_out) = (
        &normal(85, &[f, h], dev) * 0.25,
        &normal(86, &[h, h], dev) * 0.125,
        &normal(87, &[h, h], dev) * 0.125,
        &normal(88, &[h, 1], dev) * 0.125,
    );
    let grads =
        move || workloads::gnn_loss_grad_vmap(&w_msg, &w_sum, &w_max, &w_out, &x, &src, &dst, &y);
    grads().eval();
    let before = dev.activity();
    grads().eval();
    eprintln!("gnn grads: {}", counts(before, dev.activity()));
    Prepared {
        work: Work::Flops(0.0),
        run: Box::new(move || {
            std::hint::black_box(grads())
                .try_eval()
                .expect("the GPU computes the gradients");
        }),
    }
}

fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "matmul_1024_f32",
            build: |d| matmul(1024, d),
        },
        Workload {
            name: "matmul_2048_f32",
            build: |d| matmul(2048, d),
        },
        Workload {
            name: "matmul_4096_f32",
            build: |d| matmul(4096, d),
        },
        Workload {
            name: "matmul_8192_f32",
            build: |d| matmul(8192, d),
        },
        Workload {
            name: "tanh_affine_16M_f32",
            build: |d| tanh_affine(16 * M / 4096, d),
        },
        Workload {
            name: "tanh_affine_64M_f32",
            build: |d| tanh_affine(64 * M / 4096, d),
        },
        Workload {
            name: "tanh_affine_256M_f32",
            build: |d| tanh_affine(256 * M / 4096, d),
        },
        Workload {
            name: "softmax_4096x1024_f32",
            build: |d| {
                let x = normal(6, &[4096, 1024], d);
                Prepared {
                    work: Work::Bytes(2.0 * 4.0 * (4096 * 1024) as f64),
                    run: Box::new(move || {
                        std::hint::black_box(x.softmax(-1)).eval();
                    }),
                }
            },
        },
        Workload {
            name: "sum_16M_f32",
            build: |d| {
                let x = normal(7, &[16 * M], d);
                Prepared {
                    work: Work::Bytes(4.0 * (16 * M) as f64),
                    run: Box::new(move || {
                        std::hint::black_box(x.sum()).eval();
                    }),
                }
            },
        },
        Workload {
            name: "mlp_step_256_f32",
            build: mlp_step,
        },
        Workload {
            name: "rnn_grad_t64_b32_f32",
            build: rnn_grad,
        },
        Workload {
            name: "gnn_per_graph_grads_b64_f32",
            build: graph_network,
        },
        Workload {
            name: "scale_1K_f32",
            build: |d| {
                let x = normal(8, &[1024], d);
                Prepared {
                    work: Work::Bytes(2.0 * 4.0 * 1024.0),
                    run: Box::new(move || {
                        std::hint::black_box(&x * 2.0).eval();
                    }),
                }
            },
        },
    ]
}

/// The JAX side of the same workloads (names, shapes, dtypes), for `python3` with JAX
/// on the GPU machine; true f32 matmuls (`highest` precision), as ours are.
const JAX_SCRIPT: &str = r#"
import json, sys, time
import jax, jax.numpy as jnp
jax.config.update("jax_default_matmul_precision", "highest")
M = 1 << 20
def normal(seed, shape):
    return jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float32)
def matmul(n):
    a, b = normal(1, (n, n)), normal(2, (n, n))
    f = jax.jit(jnp.matmul)
    return {"flops": 2.0 * n**3}, lambda: f(a, b)
def tanh_affine(rows):
    x, w, b = normal(3, (rows, 4096)), normal(4, (4096,)), normal(5, (4096,))
    f = jax.jit(lambda x, w, b: jnp.tanh(x * w + b))
    return {"bytes": 2.0 * 4 * rows * 4096}, lambda: f(x, w, b)
def softmax():
    x = normal(6, (4096, 1024))
    f = jax.jit(lambda x: jax.nn.softmax(x, axis=-1))
    return {"bytes": 2.0 * 4 * 4096 * 1024}, lambda: f(x)
def total():
    x = normal(7, (16 * M,))
    f = jax.jit(jnp.sum)
    return {"bytes": 4.0 * 16 * M}, lambda: f(x)
def mlp_step():
    def layer(seed, i, o):
        return normal(seed, (i, o)) / jnp.sqrt(i), jnp.zeros((o,), jnp.float32)
    p = [layer(10, 784, 512), layer(11, 512, 512), layer(12, 512, 10)]
    x = normal(13, (256, 784))
    y = jax.nn.one_hot(jnp.arange(256) * 7 % 10, 10, dtype=jnp.float32)
    def loss(p, x, y):
        (w1, b1), (w2, b2), (w3, b3) = p
        h1 = jnp.tanh(x @ w1 + b1)
        h2 = jnp.tanh(h1 @ w2 + b2)
        logits = h2 @ w3 + b3
        return -(jax.nn.log_softmax(logits, axis=1) * y).sum() / 256.0
    f = jax.jit(jax.value_and_grad(loss))
    flops = 2.0 * 3.0 * 256 * (784 * 512 + 512 * 512 + 512 * 10)
    return {"flops": flops}, lambda: f(p, x, y)
def rnn_grad():
    t, b, i, h = 64, 32, 64, 256
    xs = normal(41, (t, b, i))
    w = normal(42, (i, h)) / jnp.sqrt(float(i))
    u = normal(43, (h, h)) / jnp.sqrt(float(h))
    def loss(w, u, xs):
        def step(hid, x):
            hid = jnp.tanh(x @ w + hid @ u)
            return hid, hid
        _, hs = jax.lax.scan(step, jnp.zeros((b, h), jnp.float32), xs)
        return jnp.mean(hs**2)
    f = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return {"flops": 3.0 * t * 2 * b * (i * h + h * h)}, lambda: f(w, u, xs)
def graph_network():
    # the CPU comparison's own (benches/jax_workloads.py; this runs from the repository root)
    sys.path.insert(0, "benches")
    from jax_workloads import graph_network as build
    return build()
def scale():
    x = normal(8, (1024,))
    f = jax.jit(lambda x: x * 2.0)
    return {"bytes": 2.0 * 4 * 1024}, lambda: f(x)
W = {
    "matmul_1024_f32": lambda: matmul(1024),
    "matmul_2048_f32": lambda: matmul(2048),
    "matmul_4096_f32": lambda: matmul(4096),
    "matmul_8192_f32": lambda: matmul(8192),
    "tanh_affine_16M_f32": lambda: tanh_affine(16 * M // 4096),
    "tanh_affine_64M_f32": lambda: tanh_affine(64 * M // 4096),
    "tanh_affine_256M_f32": lambda: tanh_affine(256 * M // 4096),
    "softmax_4096x1024_f32": softmax,
    "sum_16M_f32": total,
    "mlp_step_256_f32": mlp_step,
    "rnn_grad_t64_b32_f32": rnn_grad,
    "gnn_per_graph_grads_b64_f32": graph_network,
    "scale_1K_f32": scale,
}
filters = [a for a in sys.argv[1:] if not a.startswith("--")]
for name, build in W.items():
    if filters and not any(f in name for f in filters):
        continue
    work, run = build()
    jax.block_until_ready(run())
    times = []
    start = time.perf_counter()
    while len(times) < 10 or (len(times) < 200 and time.perf_counter() - start < 2.0):
        t = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({"name": name, "median_s": times[len(times) // 2], "runs": len(times), **work}), flush=True)
"#;

/// `--host`: the host's part of an MLP step, median of 2000 steps (`HOST_STEPS`, for a
/// profile): recording its kernels, and recording plus `eval` (which submits and waits).
/// On the noop adapter (`WGPU_BACKEND=noop WGPU_NOOP_BACKEND=1`) nothing runs, so both are
/// host time alone, without any driver's; its results are not checked, being garbage.
fn host_time(dev: &Device) {
    let p = mlp(dev);
    let (x, y) = mlp_batch(dev);
    for _ in 0..3 {
        mlp_loss_value_and_grad(&p, &x, &y).eval();
    }
    let steps: usize = std::env::var("HOST_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let before = dev.activity();
    let (mut record, mut whole) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for _ in 0..steps {
        let t = Instant::now();
        let out = mlp_loss_value_and_grad(&p, &x, &y);
        record.push(t.elapsed().as_secs_f64());
        out.eval();
        whole.push(t.elapsed().as_secs_f64());
    }
    let after = dev.activity();
    let per_step = |n: u64| n as f64 / steps as f64;
    let dispatches = (after.dispatches - before.dispatches) / steps as u64;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e6
    };
    eprintln!(
        "mlp step, host: {:.1} us recording, {:.1} us with eval, {dispatches} dispatches (median of {steps} steps); per step: {:.2} new buffers, {:.2} new bind groups, {:.2} submissions",
        median(&mut record),
        median(&mut whole),
        per_step(after.buffers_created - before.buffers_created),
        per_step(after.bind_groups_created - before.bind_groups_created),
        per_step(after.submissions - before.submissions),
    );
}

/// What a device did between two readings of its activity, in words.
fn counts(before: ferrax::Activity, after: ferrax::Activity) -> String {
    format!(
        "{} dispatches, {} submissions, {} waits, {} readbacks, {} uploads, {} new buffers, {} new pipelines, {} new bind groups",
        after.dispatches - before.dispatches,
        after.submissions - before.submissions,
        after.waits - before.waits,
        after.readbacks - before.readbacks,
        after.uploads - before.uploads,
        after.buffers_created - before.buffers_created,
        after.pipelines_compiled - before.pipelines_compiled,
        after.bind_groups_created - before.bind_groups_created,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--jax-script") {
        print!("{JAX_SCRIPT}");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let dev = match Device::gpu() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("gpu bench: skipped, {e}");
            return;
        }
    };
    eprintln!("gpu bench on {}", dev.description());
    if args.iter().any(|a| a == "--host") {
        return host_time(&dev);
    }
    if args.iter().any(|a| a == "--hardware-only") && dev.description().contains(", Cpu,") {
        eprintln!("gpu bench: skipped, the adapter is a software rasteriser (--hardware-only)");
        return;
    }
    // seconds of timed runs per workload (a quick tile sweep takes less)
    let budget = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(2), Duration::from_secs_f64);
    for w in workloads() {
        if !filters.is_empty() && !filters.iter().any(|f| w.name.contains(f.as_str())) {
            continue;
        }
        let mut p = (w.build)(&dev);
        (p.run)();
        dev.take_kernel_times(); // (profiling) the timed runs only
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 10 || (times.len() < 200 && start.elapsed() < budget) {
            let t = Instant::now();
            (p.run)();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        // with FERRAX_GPU_PROFILE=1: where the GPU's time went, per run
        for k in dev.take_kernel_times().iter().take(8) {
            eprintln!(
                "  {}: {:9.1} us/run {:5.1}x/run  {}",
                w.name,
                k.total.as_secs_f64() * 1e6 / times.len() as f64,
                k.count as f64 / times.len() as f64,
                k.kernel
            );
        }
        let median = times[times.len() / 2];
        let work = match p.work {
            Work::Flops(f) => format!("\"flops\": {f}"),
            Work::Bytes(b) => format!("\"bytes\": {b}"),
        };
        println!(
            "{{\"name\": \"{}\", \"median_s\": {median:e}, \"runs\": {}, {work}}}",
            w.name,
            times.len()
        );
    }
}
