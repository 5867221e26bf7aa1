//! Issue 6's engineering, checked by what the GPU path does rather than by time: a
//! training step on the GPU records its kernels, submits them once and waits once, and
//! reads nothing back until asked; after the first steps its pipelines, buffers and bind
//! groups are reused. (Tests in their own binary, one at a time: the counters are the
//! device's, shared by threads.)
//!
//! Constants (fills, a gradient's seed) are inlined where they are used, never computed
//! into buffers of their own by kernels of their own.
//!
//! Where wgpu finds no adapter this prints why and passes, unless `FERRAX_REQUIRE_GPU=1`.

mod common;

#[path = "../examples/data/mlp_model.rs"]
#[allow(dead_code)]
mod mlp_model;

use std::sync::Mutex;

use common::tensors::assert_close;
use ferrax::prelude::*;

/// The tests of this binary run one at a time: they read the device's counters.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn gpu() -> Option<Device> {
    match Device::gpu() {
        Ok(d) => Some(d),
        Err(e) if std::env::var("FERRAX_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("FERRAX_REQUIRE_GPU=1 but there is no GPU: {e}")
        }
        Err(e) => {
            eprintln!("skipping a GPU test: {e}");
            None
        }
    }
}

#[test]
fn constants_cost_no_kernel_of_their_own() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = gpu() else { return };
    let x = Tensor::arange(0.0, 12.0, 1.0, DType::F32)
        .reshape(&[4, 3])
        .to_device(&dev);
    x.eval();
    let kernels = |f: &dyn Fn() -> Tensor| {
        let before = dev.activity().dispatches;
        let v = f().to_vec::<f32>();
        (dev.activity().dispatches - before, v)
    };
    // a 0-d constant, broadcast into an elementwise kernel
    let two = Tensor::full_on(&[], 2.0, DType::F32, &dev);
    let (n, v) = kernels(&|| &x * &two);
    assert_eq!(n, 1);
    assert_eq!(v, (0..12).map(|i| 2.0 * i as f32).collect::<Vec<_>>());
    // a constant row, through a transposed view and a broadcast, into a reduction
    let row = Tensor::full_on(&[3, 1], 1.5, DType::F32, &dev);
    let (n, v) = kernels(&|| (&x + &row.t()).sum_axis(0, false));
    assert_eq!(n, 1);
    assert_eq!(v, vec![18.0 + 6.0, 22.0 + 6.0, 26.0 + 6.0]);
    // an expression of constants alone, reshaped, as a matmul operand: computed once
    let ones = (Tensor::full_on(&[6], 0.5, DType::F32, &dev) * 2.0).reshape(&[3, 2]);
    let (n, v) = kernels(&|| x.matmul(&ones));
    assert_eq!(n, 2, "the constant's buffer and the product");
    assert_eq!(v, vec![3.0, 3.0, 12.0, 12.0, 21.0, 21.0, 30.0, 30.0]);
    // constants of other dtypes keep their meaning inlined: a bool mask broadcast into
    // where_, an i32 converted to f32
    let yes = Tensor::full_on(&[3], 1.0, DType::Bool, &dev);
    let no = Tensor::full_on(&[4, 1], 0.0, DType::Bool, &dev);
    let (n, v) = kernels(&|| Tensor::where_(&yes, &x, &(&x * -1.0)));
    assert_eq!(n, 1);
    assert_eq!(v, (0..12).map(|i| i as f32).collect::<Vec<_>>());
    let (n, v) = kernels(&|| Tensor::where_(&no, &x, &(&x * -1.0)));
    assert_eq!(n, 1);
    assert_eq!(v, (0..12).map(|i| -(i as f32)).collect::<Vec<_>>());
    let seven = Tensor::full_on(&[1, 3], 7.9, DType::I32, &dev);
    let (n, v) = kernels(&|| &x + &seven.to_dtype(DType::F32));
    assert_eq!(n, 1);
    assert_eq!(v, (0..12).map(|i| i as f32 + 7.0).collect::<Vec<_>>());
}

#[test]
fn a_training_step_submits_once_waits_once_and_reads_nothing_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = gpu() else { return };
    let on = |t: &Tensor| t.to_device(&dev);
    let params = mlp_model::Mlp::new(Key::new(3), &[64, 32, 32, 10], DType::F32).to_device(&dev);
    let x = on(&Tensor::normal(Key::new(4), &[16, 64], DType::F32));
    let labels: Vec<i32> = (0..16).map(|i| i * 3 % 10).collect();
    let y = on(&Tensor::from_vec(labels, &[16]).one_hot(10, DType::F32));
    let step = || mlp_model::loss_value_and_grad(&params, &x, &y);

    step().eval(); // compiles the pipelines, fills the pool
    step().eval(); // takes its buffers from the full pool, as every later step will
    let before = dev.activity();
    let out = step();
    let recorded = dev.activity();
    out.eval();
    let after = dev.activity();

    assert_eq!(
        recorded.waits, before.waits,
        "computing the step waits for nothing"
    );
    assert_eq!(
        recorded.readbacks, before.readbacks,
        "nor reads anything back"
    );
    assert_eq!(
        after.waits - before.waits,
        1,
        "eval of the whole step waits once"
    );
    assert_eq!(
        after.submissions - before.submissions,
        1,
        "in one submission"
    );
    assert_eq!(after.readbacks, before.readbacks);
    assert_eq!(after.uploads, before.uploads);
    assert_eq!(after.pipelines_compiled, before.pipelines_compiled);
    assert_eq!(
        after.buffers_created, before.buffers_created,
        "buffers come from the pool"
    );
    assert_eq!(
        after.bind_groups_created, before.bind_groups_created,
        "the same buffers as the step before, so its bind groups are reused"
    );
    let dispatches = after.dispatches - before.dispatches;
    eprintln!("one step: {dispatches} dispatches");
    // forward, backward and the softmax cross-entropy of three layers, with elementwise
    // chains fused into their consumers, no kernel for a gradient leaf that receives one
    // contribution (a lazy zero takes it as it is) and none for a constant (the seed, a
    // mean's 1/n): 21 kernels when this was written, 33 before constants were inlined,
    // 39 before lazy zeros worked on the GPU
    assert!((10..=24).contains(&dispatches), "{dispatches} dispatches");

    // reading the loss back is the step's one readback
    let value = out.0.item::<f32>();
    assert!(value.is_finite());
    assert_eq!(dev.activity().readbacks, after.readbacks + 1);
}

/// A product too small to fill the GPU is split along K, and the sum of its partial
/// products is computed by the kernel that reads it: a dense layer `tanh(x @ w + b)` is
/// two kernels, split or not.
#[test]
fn a_product_split_along_k_is_summed_by_its_consumer() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = gpu() else { return };
    if std::env::var("FERRAX_GPU_SPLIT_K").is_ok() {
        return eprintln!("FERRAX_GPU_SPLIT_K is set: the split is not the default one");
    }
    let x = Tensor::normal(Key::new(5), &[16, 512], DType::F32);
    let w = Tensor::normal(Key::new(6), &[512, 24], DType::F32) * (1.0 / 512f64.sqrt());
    let b = Tensor::normal(Key::new(7), &[24], DType::F32);
    let (gx, gw, gb) = (x.to_device(&dev), w.to_device(&dev), b.to_device(&dev));
    for t in [&gx, &gw, &gb] {
        t.eval();
    }
    let layer = |x: &Tensor, w: &Tensor, b: &Tensor| (x.matmul(w) + b).tanh();
    let want = layer(&x, &w, &b).to_vec::<f32>();
    let before = dev.activity().dispatches;
    let got = layer(&gx, &gw, &gb).to_vec::<f32>();
    assert_eq!(
        dev.activity().dispatches - before,
        2,
        "the product (its 4 slices of K in one dispatch) and the bias, tanh and sum"
    );
    for (i, (a, g)) in want.iter().zip(&got).enumerate() {
        assert!((a - g).abs() <= 1e-5, "element {i}: cpu {a}, gpu {g}");
    }
    // read on its own, the product's sum is one more kernel
    let before = dev.activity().dispatches;
    let got = gx.matmul(&gw).to_vec::<f32>();
    assert_eq!(dev.activity().dispatches - before, 2);
    let want = x.matmul(&w).to_vec::<f32>();
    for (i, (a, g)) in want.iter().zip(&got).enumerate() {
        assert!((a - g).abs() <= 1e-4, "element {i}: cpu {a}, gpu {g}");
    }
}

/// `eval` computes a pytree's pending leaves several to a kernel (a step's gradients, an
/// optimizer's new parameters), whatever their shapes, dtypes and reads: strided,
/// broadcast, a product's slices, constants, one leaf read by another, the same leaf
/// twice, an empty one; and as many kernels as the parameters and bindings need when
/// there are many.
#[test]
fn eval_computes_pending_leaves_together() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = gpu() else { return };
    let x = Tensor::normal(Key::new(8), &[6, 40], DType::F32);
    let w = Tensor::normal(Key::new(9), &[40, 3], DType::F32);
    let (gx, gw) = (x.to_device(&dev), w.to_device(&dev));
    gx.eval();
    gw.eval();
    let leaves = |x: &Tensor, w: &Tensor| {
        let shared = x.exp();
        let read = x.exp() * 2.0;
        vec![
            x.t().tanh(),                // strided
            x + &x.sum_axis(0, true),    // broadcast
            x.matmul(w) * 2.0,           // a product, maybe split
            Tensor::zeros_like(w) + 1.0, // a constant
            &shared * 3.0,               // takes `shared` inline
            shared.clone(),              // the same leaf twice
            shared,
            read.t() + 1.0, // reads `read` as a leaf
            read,
            x.gt(&(x * 0.5)).to_dtype(DType::F32), // via bool
            x.slice(0, 2, 2) * 4.0,                // empty
            (x * 7.0).to_dtype(DType::I32).to_dtype(DType::F32), // via i32
        ]
    };
    let want: Vec<Vec<f32>> = leaves(&x, &w).iter().map(|t| t.to_vec()).collect();
    let got = leaves(&gx, &gw);
    let before = dev.activity();
    got.eval();
    let kernels = dev.activity().dispatches - before.dispatches;
    // `read`, which another leaf reads through a transposed view, is computed first, by a
    // kernel of its own; the nine other pending leaves (18 buffers) by one kernel, or by
    // two where a kernel binds at most 16 buffers
    assert!((2..=3).contains(&kernels), "{kernels} kernels");
    let before = dev.activity().dispatches;
    for (k, (t, v)) in got.iter().zip(&want).enumerate() {
        let g = t.to_vec::<f32>();
        assert_eq!(g.len(), v.len(), "leaf {k}");
        for (i, (a, b)) in v.iter().zip(&g).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "leaf {k} element {i}: cpu {a}, gpu {b}"
            );
        }
    }
    assert_eq!(
        dev.activity().dispatches,
        before,
        "every leaf was computed by eval"
    );
    // forty pending leaves: more than one kernel's parameters hold, all computed
    let many: Vec<Tensor> = (0..40).map(|k| &gx * (k as f64)).collect();
    let before = dev.activity().dispatches;
    many.eval();
    let kernels = dev.activity().dispatches - before;
    assert!(
        (2..=20).contains(&kernels),
        "{kernels} kernels for 40 leaves"
    );
    for (k, t) in many.iter().enumerate() {
        let want: Vec<f32> = x.to_vec::<f32>().iter().map(|v| v * k as f32).collect();
        assert_eq!(t.to_vec::<f32>(), want, "leaf {k}");
    }
}

#[test]
fn indexing_with_indices_of_known_range_waits_for_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = gpu() else { return };
    let x = Tensor::arange(0.0, 24.0, 1.0, DType::F32)
        .reshape(&[6, 4])
        .to_device(&dev);
    // indices uploaded from the host (their range read as they go), and an argmax's
    let ids = Tensor::from_vec(vec![2i32, 0, 2, 1, 0, 2], &[6]).to_device(&dev);
    let picks = Tensor::from_vec(vec![5i32, 0, 3], &[3]).to_device(&dev);
    x.eval();
    ids.eval();
    picks.eval();
    let before = dev.activity();
    let best = x.argmax_axis(0, true);
    // (copies of indices keep their range: spread over a broadcast and made contiguous)
    let spread = picks.unsqueeze(1).broadcast_to(&[3, 4]).contiguous();
    let outs = [
        x.index_select(0, &picks),
        x.take_along_axis(0, &best),
        x.segment_sum(&ids, 3),
        x.segment_max(&ids, 3),
        x.segment_min(&ids, 3),
        x.zeros_like()
            .index_add(0, &picks, &x.index_select(0, &picks)),
        x.zeros_like()
            .scatter_add(0, &best, &x.take_along_axis(0, &best)),
        x.take_along_axis(0, &spread),
    ];
    let during = dev.activity();
    assert_eq!(
        (during.waits, during.readbacks),
        (before.waits, before.readbacks),
        "gathers, scatters and segment reductions at indices of known range wait for nothing"
    );
    let host = x.to_device(&Device::Cpu);
    let (ids_h, picks_h) = (ids.to_device(&Device::Cpu), picks.to_device(&Device::Cpu));
    let best_h = host.argmax_axis(0, true);
    let want = [
        host.index_select(0, &picks_h),
        host.take_along_axis(0, &best_h),
        host.segment_sum(&ids_h, 3),
        host.segment_max(&ids_h, 3),
        host.segment_min(&ids_h, 3),
        host.zeros_like()
            .index_add(0, &picks_h, &host.index_select(0, &picks_h)),
        host.zeros_like()
            .scatter_add(0, &best_h, &host.take_along_axis(0, &best_h)),
        host.take_along_axis(0, &picks_h.unsqueeze(1).broadcast_to(&[3, 4])),
    ];
    for (k, (o, w)) in outs.iter().zip(&want).enumerate() {
        assert_eq!(o.to_vec::<f32>(), w.to_vec::<f32>(), "output {k}");
    }
    // indices computed on the GPU by a cast: their range unknown, so read back to check
    let cast = (&x.slice(1, 0, 1).squeeze(1) / 8.0).to_dtype(DType::I32);
    let before = dev.activity().readbacks;
    let _ = x.index_select(0, &cast);
    assert_eq!(dev.activity().readbacks, before + 1);
    // an uploaded index out of range is still an error
    let far = Tensor::from_vec(vec![0i32, 6], &[2]).to_device(&dev);
    assert!(x.try_index_select(0, &far).is_err());
}

/// A round of message passing over one graph's own edges (every node sends itself one).
#[allow(dead_code)] // only its generated gradient is used
#[vmap(in_axes = (None, None, 0, 0, 0))]
#[grad(wrt(w, u))]
fn graph_loss(w: &Tensor, u: &Tensor, x: &Tensor, src: &Tensor, dst: &Tensor) -> Tensor {
    let m = x.index_select(0, src).matmul(w).tanh();
    let n = x.shape()[0];
    let h = (m.segment_sum(dst, n) + m.segment_max(dst, n)).matmul(u);
    h.square().mean()
}

#[test]
fn per_graph_gradients_on_the_gpu_match_the_cpu_and_read_nothing_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = gpu() else { return };
    // six graphs, one, and none (an empty batch)
    for b in [6usize, 1, 0] {
        let (n, e, f, h) = (10, 24, 5, 7);
        let ends = |seed: usize| {
            let ids: Vec<i32> = (0..b * e)
                .map(|k| match k % e {
                    j if j < n => j as i32,
                    j => ((j * 7 + seed * 13 + k / e * 3) % n) as i32,
                })
                .collect();
            Tensor::from_vec(ids, &[b, e])
        };
        let (src, dst) = (ends(1), ends(2));
        let x = Tensor::normal(Key::new(5), &[b, n, f], DType::F32);
        let w = Tensor::normal(Key::new(6), &[f, h], DType::F32) * 0.5;
        let u = Tensor::normal(Key::new(7), &[h, 3], DType::F32) * 0.5;
        let (gw, gu) = graph_loss_grad_vmap(&w, &u, &x, &src, &dst);
        let on = |t: &Tensor| t.to_device(&dev);
        let (dw, du, dx, dsrc, ddst) = (on(&w), on(&u), on(&x), on(&src), on(&dst));
        for t in [&dw, &du, &dx, &dsrc, &ddst] {
            t.eval();
        }
        let before = dev.activity().readbacks;
        let (gw_d, gu_d) = graph_loss_grad_vmap(&dw, &du, &dx, &dsrc, &ddst);
        assert_eq!(
            dev.activity().readbacks,
            before,
            "per-graph gathers and segment reductions at uploaded ids read nothing back ({b} graphs)"
        );
        for (what, g, c) in [("dw", &gw_d, &gw), ("du", &gu_d, &gu)] {
            let f64_on_cpu = |t: &Tensor| t.to_device(&Device::Cpu).to_dtype(DType::F64);
            assert_close(
                &f64_on_cpu(g),
                &f64_on_cpu(c),
                1e-4,
                &format!("{what}, {b} graphs"),
            );
        }
    }
}
