//! Issue 6: the same `#[grad]` code, derivatives included, runs on GPU tensors. The MLP's
//! loss and gradient (`examples/data/mlp_model.rs`) and a tensor function with broadcasting,
//! reductions and softmax are computed on the GPU and checked against the CPU.
//!
//! Where wgpu finds no adapter this prints why and passes, unless `FERRAX_REQUIRE_GPU=1`
//! (set by `.ci/run`, which installs Mesa's software Vulkan driver).

#[path = "../examples/data/mlp_model.rs"]
#[allow(dead_code)]
mod mlp_model;

use ferrax::prelude::*;

fn gpu() -> Option<Device> {
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

fn assert_close(what: &str, gpu: &Tensor, cpu: &Tensor) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}");
    let (g, c) = (gpu.to_vec::<f32>(), cpu.to_vec::<f32>());
    let scale = c.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}[{i}]: GPU {a}, CPU {b}"
        );
    }
}

#[grad(wrt(w, b))]
fn attention_like(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let z = (x.matmul(w) + b).tanh();
    let p = z.softmax(-1);
    let centred = &z - &z.mean_axis(1, true);
    (p * centred).sum() + z.logsumexp_axis(0, false).mean() * 0.5
}

#[test]
fn gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let params = mlp_model::Mlp::new(Key::new(3), &[64, 32, 32, 10], DType::F32);
    let x = Tensor::normal(Key::new(4), &[16, 64], DType::F32);
    let labels: Vec<i32> = (0..16).map(|i| i * 3 % 10).collect();
    let y = Tensor::from_vec(labels, &[16]).one_hot(10, DType::F32);
    let (loss, grads) = mlp_model::loss_value_and_grad(&params, &x, &y);

    let on = |t: &Tensor| t.to_device(&dev);
    let gparams = params.to_device(&dev);
    let (gloss, ggrads) = mlp_model::loss_value_and_grad(&gparams, &on(&x), &on(&y));
    assert_eq!(gloss.device(), dev);
    assert_close("loss", &gloss.to_device(&Device::Cpu), &loss);
    for (k, (g, c)) in ggrads.layers.iter().zip(&grads.layers).enumerate() {
        assert_eq!(g.w.device(), dev, "the gradient stays on the GPU");
        assert_close(&format!("w{k}"), &g.w.to_device(&Device::Cpu), &c.w);
        assert_close(&format!("b{k}"), &g.b.to_device(&Device::Cpu), &c.b);
    }

    let w = Tensor::normal(Key::new(5), &[64, 8], DType::F32);
    let b = Tensor::normal(Key::new(6), &[8], DType::F32);
    assert_close(
        "value",
        &attention_like(&on(&x), &on(&w), &on(&b)).to_device(&Device::Cpu),
        &attention_like(&x, &w, &b),
    );
    let (cw, cb) = attention_like_grad(&x, &w, &b);
    let (gw, gb) = attention_like_grad(&on(&x), &on(&w), &on(&b));
    assert_close("dw", &gw.to_device(&Device::Cpu), &cw);
    assert_close("db", &gb.to_device(&Device::Cpu), &cb);
    let (dw, db) = (w.full_like(0.25), b.full_like(-0.5));
    let (_, ct) = attention_like_jvp(&x, &w, &b, &dw, &db);
    let (_, gt) = attention_like_jvp(&on(&x), &on(&w), &on(&b), &on(&dw), &on(&db));
    assert_close("jvp", &gt.to_device(&Device::Cpu), &ct);
}

#[test]
fn training_steps_on_the_gpu_match_the_cpu() {
    use ferrax::optim::{Adam, Momentum, Optimizer, Sgd};
    let Some(dev) = gpu() else { return };
    let params = mlp_model::Mlp::new(Key::new(7), &[16, 8, 4], DType::F32);
    let x = Tensor::normal(Key::new(8), &[12, 16], DType::F32);
    let y = Tensor::from_vec((0..12).map(|i| i % 4).collect::<Vec<i32>>(), &[12])
        .one_hot(4, DType::F32);
    let on = |p: &mlp_model::Mlp| mlp_model::Mlp {
        layers: p
            .layers
            .iter()
            .map(|l| mlp_model::Dense {
                w: l.w.to_device(&dev),
                b: l.b.to_device(&dev),
            })
            .collect(),
    };
    fn train(
        opt: &mut dyn Optimizer<mlp_model::Mlp>,
        mut p: mlp_model::Mlp,
        x: &Tensor,
        y: &Tensor,
    ) -> mlp_model::Mlp {
        for _ in 0..5 {
            let (_, g) = mlp_model::loss_value_and_grad(&p, x, y);
            opt.step(&mut p, &g);
        }
        p
    }
    // the example's helper reads the loss back as f64 on either device (a GPU has no f64)
    let (cpu_loss, _) = mlp_model::loss_and_grad(&params, &x, &y);
    let (gpu_loss, _) =
        mlp_model::loss_and_grad(&on(&params), &x.to_device(&dev), &y.to_device(&dev));
    assert!(
        (cpu_loss - gpu_loss).abs() <= 1e-5 * cpu_loss.abs().max(1.0),
        "{cpu_loss} {gpu_loss}"
    );
    type Make = fn() -> Box<dyn Optimizer<mlp_model::Mlp>>;
    let optimizers: [(&str, Make); 3] = [
        ("sgd", || Box::new(Sgd::new(0.1))),
        ("momentum", || Box::new(Momentum::nesterov(0.1, 0.9))),
        ("adam", || Box::new(Adam::new(0.01))),
    ];
    for (name, make) in optimizers {
        let cpu = train(&mut *make(), params.clone(), &x, &y);
        let gpu = train(
            &mut *make(),
            on(&params),
            &x.to_device(&dev),
            &y.to_device(&dev),
        );
        for (k, (g, c)) in gpu.layers.iter().zip(&cpu.layers).enumerate() {
            assert_eq!(g.w.device(), dev);
            assert_close(&format!("{name} w{k}"), &g.w.to_device(&Device::Cpu), &c.w);
            assert_close(&format!("{name} b{k}"), &g.b.to_device(&Device::Cpu), &c.b);
        }
    }
}

// ---- issue 5: batched code on the GPU ----

#[derive(Clone, Differentiable)]
struct Small {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
}

#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(p))]
fn example_loss(p: &Small, x: &Tensor, y: &Tensor) -> Tensor {
    let h = (x.matmul(&p.w1) + &p.b1).tanh();
    -(h.matmul(&p.w2).log_softmax(-1) * y).sum()
}

#[jacobian]
fn squash(x: &Tensor) -> Tensor {
    x.sigmoid() * x.sum() + x.softmax(-1)
}

/// Per-example Jacobians and Hessians (`#[vmap]` over `#[jacobian]` / `#[hessian]`).
#[vmap(in_axes = (0, None))]
#[jacobian(wrt(x))]
fn squash_by(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).sigmoid() * x.sum()
}

#[vmap(in_axes = (0, None))]
#[hessian(wrt(x))]
fn bowl(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).tanh().powi(2).sum() + (x * x * x).sum()
}

#[test]
fn per_example_gradients_and_jacobians_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let normal = |seed, shape: &[usize]| Tensor::normal(Key::new(seed), shape, DType::F32);
    let p = Small {
        w1: normal(1, &[6, 8]),
        b1: normal(2, &[8]),
        w2: normal(3, &[8, 4]),
    };
    let x = normal(4, &[5, 6]);
    let y = Tensor::from_vec(vec![0i32, 3, 1, 2, 0], &[5]).one_hot(4, DType::F32);
    let cpu = example_loss_value_and_grad_vmap(&p, &x, &y);
    let pg = Small {
        w1: p.w1.to_device(&dev),
        b1: p.b1.to_device(&dev),
        w2: p.w2.to_device(&dev),
    };
    let g = example_loss_value_and_grad_vmap(&pg, &x.to_device(&dev), &y.to_device(&dev));
    assert_close("per-example losses", &g.0, &cpu.0);
    let first = |t: &Tensor| t.slice(0, 0, 1).squeeze(0);
    assert_close(
        "the first example's loss",
        &example_loss(&pg, &first(&x).to_device(&dev), &first(&y).to_device(&dev)),
        &first(&cpu.0),
    );
    assert_close("per-example dw1", &g.1.w1, &cpu.1.w1);
    assert_close("per-example db1", &g.1.b1, &cpu.1.b1);
    assert_close("per-example dw2", &g.1.w2, &cpu.1.w2);

    let v = normal(5, &[7]);
    let (jf, jr) = (squash_jacfwd(&v), squash_jacrev(&v));
    let vg = v.to_device(&dev);
    assert_close("jacfwd", &squash_jacfwd(&vg), &jf);
    assert_close("jacrev", &squash_jacrev(&vg), &jr);
    assert_close("value", &squash(&vg), &squash(&v));

    let (xs, w) = (normal(6, &[3, 5]), normal(7, &[5, 4]));
    let (xg, wg) = (xs.to_device(&dev), w.to_device(&dev));
    type Pass = fn(&Tensor, &Tensor) -> Tensor;
    let batched: [(&str, Pass); 6] = [
        ("per-example jacfwd", squash_by_jacfwd_vmap),
        ("per-example jacrev", squash_by_jacrev_vmap),
        ("per-example jacobian", squash_by_jacobian_vmap),
        ("per-example hessians", bowl_hessian_vmap),
        ("per-example values", bowl_vmap),
        ("values", squash_by_vmap),
    ];
    for (what, f) in batched {
        let g = f(&xg, &wg);
        assert_eq!(g.device(), dev, "{what}");
        assert_close(what, &g.to_device(&Device::Cpu), &f(&xs, &w));
    }
    let one: [(&str, Pass); 2] = [("one value", squash_by), ("one bowl", bowl)];
    for (what, f) in one {
        let g = f(&first(&xs).to_device(&dev), &wg);
        assert_close(what, &g.to_device(&Device::Cpu), &f(&first(&xs), &w));
    }
}

/// A per-example `while` loop (its exit read back once per trip) and a per-example check
/// (read back once, checked example by example) under `#[vmap]`.
#[vmap]
fn newton_sqrt32(a: f32) -> f32 {
    assert!(a >= 0.0, "sqrt of {a}");
    let mut x = a.max(1.0);
    while (x * x - a).abs() > 1e-4 * a.max(1.0) {
        x = 0.5 * (x + a / x);
    }
    x
}

#[test]
fn per_example_control_flow_and_checks_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let a = Tensor::from_vec(vec![0.0f32, 0.25, 2.0, 9.0, 1e4], &[5]);
    let cpu = newton_sqrt32_vmap(&a);
    let looped: Vec<f32> = a.to_vec::<f32>().into_iter().map(newton_sqrt32).collect();
    assert_close("vmap against a loop", &cpu, &Tensor::from_vec(looped, &[5]));
    let g = newton_sqrt32_vmap(&a.to_device(&dev));
    assert_eq!(g.device(), dev);
    assert_close("per-example square roots", &g.to_device(&Device::Cpu), &cpu);
    let bad = Tensor::from_vec(vec![4.0f32, -1.0], &[2]).to_device(&dev);
    let e = std::panic::catch_unwind(|| newton_sqrt32_vmap(&bad)).expect_err("a negative");
    assert_eq!(
        e.downcast_ref::<String>().map(String::as_str),
        Some("sqrt of -1")
    );
}

/// A clipped fixed-point iteration per example, until its step is small: per-example trip
/// counts (the loop runs until every example has converged, masked), a reverse sweep that
/// walks back each example's own trips, and `clamp`, all on the GPU.
#[vmap(in_axes = (0, None))]
#[grad]
fn settled(x: &Tensor, w: &Tensor) -> Tensor {
    let mut h = x.zeros_like();
    let mut step = 1.0;
    let mut trips = 0;
    while step > 1e-4 && trips < 100 {
        let next = (w.matmul(&h) + x).tanh().clamp(-0.9, 0.9);
        step = (&next - &h).abs().max().item::<f32>();
        h = next;
        trips += 1;
    }
    h.powi(2).sum()
}

#[test]
fn per_example_gradients_through_per_example_loops_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let xs = Tensor::normal(Key::new(21), &[6, 4], DType::F32) * 2.0;
    let w = Tensor::normal(Key::new(22), &[4, 4], DType::F32) * 0.3;
    let (gx, gw) = settled_grad_vmap(&xs, &w);
    let (ggx, ggw) = settled_grad_vmap(&xs.to_device(&dev), &w.to_device(&dev));
    assert_close("per-example gradient wrt x", &ggx, &gx);
    assert_close("per-example gradient wrt w", &ggw, &gw);
    let values = settled_vmap(&xs.to_device(&dev), &w.to_device(&dev));
    assert_close("per-example values", &values, &settled_vmap(&xs, &w));
    let first = settled(&xs.slice(0, 0, 1).squeeze(0), &w);
    assert_close(
        "the first example alone",
        &values.slice(0, 0, 1).squeeze(0),
        &first,
    );
}

/// A recurrent network's hidden states pushed onto a `Vec` and stacked (the reverse sweep
/// sums the weights' products over the steps after the loop, `ProductSum`).
#[vmap(in_axes = (1, None, None))]
#[grad(wrt(w, u))]
fn rnn_states(xs: &Tensor, w: &Tensor, u: &Tensor) -> Tensor {
    let mut h = (xs.slice(0, 0, 1).squeeze(0).matmul(w)).tanh();
    let mut outs = vec![h.clone()];
    for t in 1..xs.shape()[0] {
        h = (xs.slice(0, t, t + 1).squeeze(0).matmul(w) + h.matmul(u)).tanh();
        outs.push(h.clone());
    }
    Tensor::stack(&outs, 0).powi(2).mean()
}

#[test]
fn gradients_through_a_vec_of_tensors_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let on = |t: &Tensor| t.to_device(&dev);
    let xs = Tensor::normal(Key::new(40), &[6, 5], DType::F32);
    let w = Tensor::normal(Key::new(41), &[5, 8], DType::F32) * 0.5;
    let u = Tensor::normal(Key::new(42), &[8, 8], DType::F32) * 0.3;
    assert_close(
        "value",
        &rnn_states(&on(&xs), &on(&w), &on(&u)).to_device(&Device::Cpu),
        &rnn_states(&xs, &w, &u),
    );
    let (cw, cu) = rnn_states_grad(&xs, &w, &u);
    let (gw, gu) = rnn_states_grad(&on(&xs), &on(&w), &on(&u));
    assert_eq!(gw.device(), dev, "the gradient stays on the GPU");
    assert_close("dw", &gw.to_device(&Device::Cpu), &cw);
    assert_close("du", &gu.to_device(&Device::Cpu), &cu);
    // per-sequence gradients, 3 sequences along axis 1
    let xs = Tensor::normal(Key::new(43), &[6, 3, 5], DType::F32);
    let (cw, cu) = rnn_states_grad_vmap(&xs, &w, &u);
    let (gw, gu) = rnn_states_grad_vmap(&on(&xs), &on(&w), &on(&u));
    assert_eq!(gu.device(), dev, "per-sequence gradients stay on the GPU");
    assert_close("per-sequence dw", &gw.to_device(&Device::Cpu), &cw);
    assert_close("per-sequence du", &gu.to_device(&Device::Cpu), &cu);
}

/// A solver loop with a per-example trip count and a branch per example (its values kept on
/// tapes, the weight's products summed after the loop).
#[vmap(in_axes = (0, None))]
#[grad(wrt(w))]
fn damped_solve(x: &Tensor, w: &Tensor) -> Tensor {
    let mut h = x.zeros_like();
    let mut k = 0;
    let mut step = 1.0f32;
    while k < 30 && step > 1e-5 {
        let next = (h.matmul(w) + x).tanh();
        step = (&next - &h).abs().max().item::<f32>();
        if step < 0.5 {
            h = &next * 0.9 + &h * 0.1;
        } else {
            h = next;
        }
        k += 1;
    }
    h.powi(2).mean()
}

#[test]
fn per_example_gradients_of_a_taped_while_loop_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::normal(Key::new(50), &[4, 8], DType::F32);
    let w = Tensor::normal(Key::new(51), &[8, 8], DType::F32) * 0.3;
    let cpu = damped_solve_grad_vmap(&x, &w);
    let on_gpu = damped_solve_grad_vmap(&x.to_device(&dev), &w.to_device(&dev));
    assert_eq!(on_gpu.device(), dev, "the gradients stay on the GPU");
    assert_close("per-example d/dw", &on_gpu.to_device(&Device::Cpu), &cpu);
    let first = damped_solve(&x.slice(0, 0, 1).squeeze(0), &w);
    let values = damped_solve_vmap(&x.to_device(&dev), &w.to_device(&dev));
    assert_close(
        "the first example's value",
        &values.to_device(&Device::Cpu).slice(0, 0, 1).squeeze(0),
        &first,
    );
}

/// A Gaussian process likelihood per example (Cholesky, triangular solve, log-determinant)
/// beside a general solve, an inverse and a log-determinant: the factorizations run on the
/// GPU in every sweep.
#[allow(dead_code)] // only its batched gradient is compared
#[vmap]
#[grad]
fn gp_like(k: &Tensor, y: &Tensor) -> Tensor {
    let l = k.cholesky();
    let alpha = l.solve_triangular(y, true);
    let x = k.solve(&alpha.unsqueeze(1));
    (&alpha * &alpha).sum()
        + l.diagonal().ln().sum()
        + x.tanh().sum()
        + k.inv().diagonal().sum()
        + k.logabsdet()
}

#[test]
fn per_example_gradients_through_factorizations_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let m = Tensor::normal(Key::new(70), &[6, 5, 5], DType::F32);
    let k = m.matmul(&m.mt()) + Tensor::eye(5, DType::F32) * 5.0;
    let y = Tensor::normal(Key::new(71), &[6, 5], DType::F32);
    let (ck, cy) = gp_like_grad_vmap(&k, &y);
    let (gk, gy) = gp_like_grad_vmap(&k.to_device(&dev), &y.to_device(&dev));
    assert_eq!(gk.device(), dev);
    assert_close("dK", &gk.to_device(&Device::Cpu), &ck);
    assert_close("dy", &gy.to_device(&Device::Cpu), &cy);
}

#[allow(dead_code)] // only its batched gradient is compared
#[vmap]
#[grad]
fn decompositions(a: &Tensor, u: &Tensor) -> Tensor {
    let s = (a + a.mt()) * 0.5;
    let (w, v) = s.eigh();
    let (q, r) = a.qr();
    let (su, ss, svt) = a.svd();
    (w.tanh() * v.mt().matmul(u).powi(2)).sum()
        + (su.sin().sum() + ss.sum() + svt.cos().sum()) * 0.1
        + (q.matmul(u) * u).sum()
        + r.diagonal().sum()
        + a.det() * 0.1
        + s.eigvalsh().max()
}

#[test]
fn per_example_gradients_through_decompositions_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    // symmetric parts with separated eigenvalues (well defined eigenvectors)
    let spread = Tensor::from_vec((0..5).map(|i| i as f32 * 2.0).collect(), &[5]);
    let a = Tensor::normal(Key::new(72), &[6, 5, 5], DType::F32) * 0.3 + spread.diag_embed(5, 5);
    let u = Tensor::normal(Key::new(73), &[6, 5], DType::F32);
    let (ca, cu) = decompositions_grad_vmap(&a, &u);
    let (ga, gu) = decompositions_grad_vmap(&a.to_device(&dev), &u.to_device(&dev));
    assert_eq!(ga.device(), dev);
    assert_close("da", &ga.to_device(&Device::Cpu), &ca);
    assert_close("du", &gu.to_device(&Device::Cpu), &cu);
}

#[path = "../examples/data/cnn_model.rs"]
#[allow(dead_code)]
mod cnn_model;

#[test]
fn cnn_gradients_and_per_example_gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let params = cnn_model::Cnn::new(Key::new(90), 8, 4, 6, DType::F32);
    let x = Tensor::uniform(Key::new(91), &[6, 1, 8, 8], 0.0, 1.0, DType::F32);
    let labels: Vec<i32> = (0..6).map(|i| i * 7 % 10).collect();
    let y = Tensor::from_vec(labels, &[6]).one_hot(10, DType::F32);
    let on = |t: &Tensor| t.to_device(&dev);
    let gparams = params.to_device(&dev);
    let (loss, grads) = cnn_model::loss_value_and_grad(&params, &x, &y);
    let (gloss, ggrads) = cnn_model::loss_value_and_grad(&gparams, &on(&x), &on(&y));
    assert_eq!(gloss.device(), dev);
    assert_close("loss", &gloss.to_device(&Device::Cpu), &loss);
    let cpu = |t: &Tensor| t.to_device(&Device::Cpu);
    assert_close("conv1.w", &cpu(&ggrads.conv1.w), &grads.conv1.w);
    assert_close("conv2.w", &cpu(&ggrads.conv2.w), &grads.conv2.w);
    assert_close("conv2.b", &cpu(&ggrads.conv2.b), &grads.conv2.b);
    assert_close("w", &cpu(&ggrads.w), &grads.w);
    // one example per batch of one: [6, 1, 1, 8, 8]
    let (xs, ys) = (x.unsqueeze(1), y.unsqueeze(1));
    let per = cnn_model::loss_grad_vmap(&params, &xs, &ys);
    let gper = cnn_model::loss_grad_vmap(&gparams, &on(&xs), &on(&ys));
    assert_eq!(per.conv1.w.shape(), &[6, 4, 1, 3, 3]);
    assert_close("per-example conv1.w", &cpu(&gper.conv1.w), &per.conv1.w);
    assert_close("per-example conv2.w", &cpu(&gper.conv2.w), &per.conv2.w);
    assert_close("per-example w", &cpu(&gper.w), &per.w);
    // and their mean is the batch gradient
    assert_close(
        "mean of per-example",
        &per.conv2.w.mean_axis(0, false),
        &grads.conv2.w,
    );
}

/// The elementwise functions beyond arithmetic, with their derivatives.
#[grad]
fn special_functions(x: &Tensor) -> Tensor {
    let u = x.tanh() * 0.9;
    let p = x * x + 1.5;
    (u.asin()
        + u.acos()
        + x.atan()
        + x.sinh() * 0.5
        + x.cosh() * 0.5
        + x.asinh()
        + p.acosh()
        + u.atanh()
        + x.exp2()
        + p.log2()
        + p.log10()
        + p.cbrt()
        + x.erf()
        + x.atan2(&p)
        + x.floor()
        + x.ceil()
        + x.round()
        + x.trunc())
    .sum()
}

#[test]
fn special_functions_and_their_gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::normal(Key::new(95), &[64, 33], DType::F32) * 1.5;
    let (v, g) = special_functions_value_and_grad(&x);
    let (gv, gg) = special_functions_value_and_grad(&x.to_device(&dev));
    assert_eq!(gg.device(), dev);
    assert_close("value", &gv.to_device(&Device::Cpu), &v);
    assert_close("gradient", &gg.to_device(&Device::Cpu), &g);
    assert_close(
        "the function itself",
        &special_functions(&x.to_device(&dev)).to_device(&Device::Cpu),
        &v,
    );
}

/// A stencil with periodic (`roll`), zero (`pad`) and copied (`pad_with`) boundaries.
#[grad]
fn stencil_energy(x: &Tensor) -> Tensor {
    let lap = x.roll(1, 0) + x.roll(-1, 0) + x.roll(1, 1) + x.roll(-1, 1) - x * 4.0;
    let p = x.pad(&[(1, 1), (0, 2)]).unpad(&[(0, 2), (1, 0)]);
    let e = x.pad_with(&[(2, 1), (1, 3)], PadMode::Reflect);
    let s = e.pad_with(&[(0, 1), (2, 0)], PadMode::Edge);
    (&lap * &lap).sum() + (p.sin() * 0.5).sum() + (s.tanh() * &s).mean()
}

#[test]
fn stencil_gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::normal(Key::new(97), &[16, 12], DType::F32);
    let (v, g) = stencil_energy_value_and_grad(&x);
    let (gv, gg) = stencil_energy_value_and_grad(&x.to_device(&dev));
    assert_eq!(gg.device(), dev);
    assert_close("value", &gv.to_device(&Device::Cpu), &v);
    assert_close("gradient", &gg.to_device(&Device::Cpu), &g);
    assert_close("the function", &stencil_energy(&x).reshape(&[]), &v);
}

/// Sorted rows weighted by rank, and the largest two squashed.
#[grad]
fn sorted_energy(x: &Tensor, w: &Tensor) -> Tensor {
    (x.sort(-1) * w).sum() + x.top_k(2).tanh().sum()
}

#[test]
fn sorting_gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::normal(Key::new(98), &[8, 7], DType::F32);
    let w = Tensor::normal(Key::new(99), &[7], DType::F32);
    let (v, (gx, gw)) = sorted_energy_value_and_grad(&x, &w);
    let (gv, (ggx, ggw)) = sorted_energy_value_and_grad(&x.to_device(&dev), &w.to_device(&dev));
    assert_eq!(ggx.device(), dev);
    assert_close("value", &gv.to_device(&Device::Cpu), &v);
    assert_close("x gradient", &ggx.to_device(&Device::Cpu), &gx);
    assert_close("w gradient", &ggw.to_device(&Device::Cpu), &gw);
    assert_close("the function", &sorted_energy(&x, &w).reshape(&[]), &v);
}

/// Every activation function, differentiated on the GPU (chains of elementwise kernels,
/// which the GPU backend joins at run time).
#[grad(wrt(w))]
fn activated(x: &Tensor, w: &Tensor) -> Tensor {
    let h = x.matmul(w) * 3.0;
    let smooth = h.gelu() + h.gelu_tanh() + h.silu() * h.softplus() + h.mish() + h.log_sigmoid();
    let kinked = h.elu(0.7) + h.selu() + h.leaky_relu(0.1) + h.relu6() + h.hard_silu();
    let bounded = h.hard_tanh() + h.hard_sigmoid() + h.softsign() + h.square() * 0.1;
    (smooth + kinked + bounded).sum()
}

#[test]
fn activation_gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::normal(Key::new(31), &[8, 16], DType::F32);
    let w = Tensor::normal(Key::new(32), &[16, 12], DType::F32) * 0.5;
    let cpu = activated_grad(&x, &w);
    let on_gpu = activated_grad(&x.to_device(&dev), &w.to_device(&dev));
    assert_close(
        "activation gradients",
        &on_gpu.to_device(&Device::Cpu),
        &cpu,
    );
    let value = activated(&x.to_device(&dev), &w.to_device(&dev));
    assert_close(
        "activation value",
        &value.to_device(&Device::Cpu),
        &activated(&x, &w),
    );
}

/// Recurrences, products, running extrema and log-sum-exps, shifts and flips
/// differentiated on the GPU: a long axis (the
/// blocked recurrence kernel) and a short one (a thread per column).
#[grad(wrt(x, logit))]
fn recurrent(x: &Tensor, logit: &Tensor) -> Tensor {
    let decay = logit.sigmoid();
    let h = x.linear_recurrence(&decay, 0);
    let back = h
        .tanh()
        .linear_recurrence_rev(&(decay.zeros_like() + 0.9), 1);
    let p = (x * 0.01 + 1.0).cumprod(0).prod_axis(1, false);
    let running = (x.logcumsumexp_rev(0) - x.cummax(0)).mean() + x.cummin(1).sum() * 0.01;
    (back.flip(0) * h.shift(1, 0)).mean() + p.sum() + x.slice(0, 0, 3).trace() + running
}

#[test]
fn recurrence_gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for rows in [20, 3000] {
        let x = Tensor::normal(Key::new(41), &[rows, 3], DType::F32);
        let logit = Tensor::normal(Key::new(42), &[rows, 1], DType::F32);
        let (cx, cl) = recurrent_grad(&x, &logit);
        let (gx, gl) = recurrent_grad(&x.to_device(&dev), &logit.to_device(&dev));
        assert_close("recurrence dx", &gx.to_device(&Device::Cpu), &cx);
        assert_close("recurrence dlogit", &gl.to_device(&Device::Cpu), &cl);
        let v = recurrent(&x.to_device(&dev), &logit.to_device(&dev));
        assert_close(
            "recurrence value",
            &v.to_device(&Device::Cpu),
            &recurrent(&x, &logit),
        );
    }
}

/// The matrix exponential and its derivative (the exponential of a block matrix twice the
/// size) on the GPU: products and an LU solve there.
#[grad]
fn propagated(a: &Tensor, x0: &Tensor) -> Tensor {
    (a.expm().matmul(x0)).tanh().sum() + (a * 3.0).expm().trace().sum() * 0.01
}

#[test]
fn expm_gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let a = Tensor::normal(Key::new(51), &[2, 5, 5], DType::F32) * 0.5;
    let x0 = Tensor::normal(Key::new(52), &[2, 5, 3], DType::F32);
    let (ca, cx) = propagated_grad(&a, &x0);
    let (ga, gx) = propagated_grad(&a.to_device(&dev), &x0.to_device(&dev));
    assert_close("expm da", &ga.to_device(&Device::Cpu), &ca);
    assert_close("expm dx0", &gx.to_device(&Device::Cpu), &cx);
    let e = a.to_device(&dev).expm();
    assert!(e.device().is_gpu());
    assert_close("expm", &e.to_device(&Device::Cpu), &a.expm());
    let v = propagated(&a.to_device(&dev), &x0.to_device(&dev));
    assert_close("value", &v.to_device(&Device::Cpu), &propagated(&a, &x0));
}

/// Einsum contractions (batched products, a trace, a letter one operand alone has, `...`,
/// three operands), per example too: products, sums and copies on the GPU.
#[vmap(in_axes = (0, None))]
#[grad]
fn contracted(x: &Tensor, w: &Tensor) -> Tensor {
    let h = Tensor::einsum("...i,oij->...oj", &[x, w]).tanh();
    let t = Tensor::einsum("oii->o", &[w]);
    let s = Tensor::einsum("bi,oij,bj->o", &[x, w, &h.sum_axis(1, false)]);
    h.sum() + (&t * &s).sum() * 0.01 + Tensor::einsum("boj,k->b", &[&h, &t]).mean()
}

#[test]
fn einsum_gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let xs = Tensor::normal(Key::new(61), &[3, 4, 5], DType::F32);
    let w = Tensor::normal(Key::new(62), &[2, 5, 5], DType::F32);
    let (cx, cw) = contracted_grad(&example(&xs), &w);
    let (gx, gw) = contracted_grad(&example(&xs).to_device(&dev), &w.to_device(&dev));
    assert_close("einsum dx", &gx.to_device(&Device::Cpu), &cx);
    assert_close("einsum dw", &gw.to_device(&Device::Cpu), &cw);
    let (cx, cw) = contracted_grad_vmap(&xs, &w);
    let (gx, gw) = contracted_grad_vmap(&xs.to_device(&dev), &w.to_device(&dev));
    assert!(gw.device().is_gpu());
    assert_close("per-example einsum dx", &gx.to_device(&Device::Cpu), &cx);
    assert_close("per-example einsum dw", &gw.to_device(&Device::Cpu), &cw);
    let v = contracted(&example(&xs).to_device(&dev), &w.to_device(&dev));
    assert_close(
        "einsum value",
        &v.to_device(&Device::Cpu),
        &contracted(&example(&xs), &w),
    );
}

fn example(xs: &Tensor) -> Tensor {
    xs.slice(0, 1, 2).squeeze(0)
}

/// Message passing on a graph: messages gathered at their sources, summed at their
/// destinations (`segment_sum`, `segment_max`, `segment_min`) and added back at their
/// sources (`index_add`), per example over one shared graph.
#[vmap(in_axes = (0, None, None, None))]
#[grad(wrt(h, w))]
fn passed(h: &Tensor, w: &Tensor, src: &Tensor, dst: &Tensor) -> Tensor {
    let m = h.index_select(0, src).matmul(w).tanh();
    let s = m.segment_sum(dst, h.shape()[0]);
    let top = m.segment_max(dst, h.shape()[0]) - m.segment_min(dst, h.shape()[0]);
    (&s + h).sin().sum() + h.index_add(0, src, &m).square().mean() + top.tanh().sum()
}

#[test]
fn segment_sum_gradients_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let src = Tensor::from_vec((0..40).map(|i| (i * 3) % 17).collect::<Vec<i32>>(), &[40]);
    let dst = Tensor::from_vec(
        (0..40).map(|i| (i * 5 + 1) % 17).collect::<Vec<i32>>(),
        &[40],
    );
    let hs = Tensor::normal(Key::new(71), &[3, 17, 6], DType::F32);
    let w = Tensor::normal(Key::new(72), &[6, 6], DType::F32) * 0.5;
    let on = |t: &Tensor| t.to_device(&dev);
    let (ch, cw) = passed_grad_vmap(&hs, &w, &src, &dst);
    let (gh, gw) = passed_grad_vmap(&on(&hs), &on(&w), &on(&src), &on(&dst));
    assert!(gw.device().is_gpu());
    assert_close("segment_sum dh", &gh.to_device(&Device::Cpu), &ch);
    assert_close("segment_sum dw", &gw.to_device(&Device::Cpu), &cw);
    let h = hs.slice(0, 0, 1).squeeze(0);
    let (ch, _) = passed_grad(&h, &w, &src, &dst);
    let (gh, _) = passed_grad(&on(&h), &on(&w), &on(&src), &on(&dst));
    assert_close(
        "segment_sum dh, one example",
        &gh.to_device(&Device::Cpu),
        &ch,
    );
    let v = passed(&on(&h), &on(&w), &on(&src), &on(&dst));
    assert_close(
        "segment_sum value",
        &v.to_device(&Device::Cpu),
        &passed(&h, &w, &src, &dst),
    );
}

/// A batch of graphs with their own edges on the GPU (the per-example indices spread over
/// the other axes there, folded into one axis on the CPU).
#[vmap]
#[grad(wrt(h, w))]
fn per_graph(h: &Tensor, w: &Tensor, src: &Tensor, dst: &Tensor) -> Tensor {
    let m = h.index_select(0, src).matmul(w).tanh();
    let n = h.shape()[0];
    let s = m.segment_sum(dst, n) + m.segment_max(dst, n).maximum(&h.zeros_like());
    (&s + h).sin().sum() + h.index_add(0, src, &m).square().mean()
}

#[test]
fn per_graph_indices_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let srcs: Vec<i32> = (0..60).map(|i| (i * 7 + i / 5) % 9).collect();
    let dsts: Vec<i32> = (0..60).map(|i| (i * 4 + 1) % 9).collect();
    let (src, dst) = (
        Tensor::from_vec(srcs, &[3, 20]),
        Tensor::from_vec(dsts, &[3, 20]),
    );
    let hs = Tensor::normal(Key::new(73), &[3, 9, 4], DType::F32);
    let ws = Tensor::normal(Key::new(74), &[3, 4, 4], DType::F32) * 0.5;
    let on = |t: &Tensor| t.to_device(&dev);
    let (ch, cw) = per_graph_grad_vmap(&hs, &ws, &src, &dst);
    let (gh, gw) = per_graph_grad_vmap(&on(&hs), &on(&ws), &on(&src), &on(&dst));
    assert!(gh.device().is_gpu());
    assert_close("per-graph dh", &gh.to_device(&Device::Cpu), &ch);
    assert_close("per-graph dw", &gw.to_device(&Device::Cpu), &cw);
    let v = per_graph_vmap(&on(&hs), &on(&ws), &on(&src), &on(&dst));
    assert_close(
        "per-graph value",
        &v.to_device(&Device::Cpu),
        &per_graph_vmap(&hs, &ws, &src, &dst),
    );
    let _ = per_graph;
}
