//! `#[vmap]`: each batched function against a loop of the unbatched one (every in_axes
//! combination, batches of one), per-example gradients against a loop of `_grad`, control
//! flow that differs per example (if / else, while loops of data-dependent trip counts,
//! early returns).

use ferrax::prelude::*;

mod common;
use common::tensors::{assert_close, normal, unstack};

// ---- tensor primitives ----

#[vmap(in_axes = (0, None))]
fn layer(x: &Tensor, w: &Tensor) -> Tensor {
    let h = x.matmul(w).tanh();
    let s = h.softmax(-1) + h.sigmoid() * 0.5;
    s.log_softmax(0) - s.sum_axis(0, true) + s.max() + h.relu().mean()
}

#[test]
fn layer_vmap_matches_a_loop_for_batches_of_one_and_more() {
    let w = normal(1, &[4, 3]);
    for b in [1usize, 5] {
        let xs = normal(2 + b as u64, &[b, 4]);
        let got = layer_vmap(&xs, &w);
        let want: Vec<Tensor> = unstack(&xs, 0).iter().map(|x| layer(x, &w)).collect();
        let want = Tensor::stack(&want.iter().collect::<Vec<_>>(), 0);
        assert_close(&got, &want, 1e-12, "layer_vmap");
    }
}

/// Every primitive family, with two tensor arguments to batch in every combination (the
/// three copies differ only in their `in_axes`).
macro_rules! mix {
    ($(#[$m:meta])* fn $name:ident) => {
        $(#[$m])*
        fn $name(x: &Tensor, y: &Tensor) -> Tensor {
            let a = (x * y + x.exp() / (y.abs() + 1.0)).sin() - x.maximum(y) + x.minimum(y).cos();
            let b = a.reshape(&[3, 2]).t().matmul(&y.reshape(&[2, 3]).t());
            let c = b.unsqueeze(0).squeeze(0).transpose(0, 1).permute(&[1, 0]);
            let d = c.slice(1, 0, 1).broadcast_to(&[2, 2]) + c.sum_axis(-1, true);
            let e = Tensor::concat(&[&d, &c], 0);
            let f = Tensor::stack(&[&d, &d.tanh()], -1);
            let g = x.ge(y).select(x, y);
            (e.mean_axis(0, false).logsumexp_axis(0, true).sum()
                + f.max_axis(2, false).min()
                + g.powi(2).sum()
                + x.flatten().sqrt().log1p().sum())
            .reshape(&[1])
        }
    };
}

mix!(#[vmap] fn mix_bb);
mix!(#[vmap(in_axes = (1, None))] fn mix_bn);
mix!(#[vmap(in_axes = (None, -1), out_axes = 1)] fn mix_nb);

#[test]
fn every_primitive_family_matches_a_loop_for_every_in_axes_combination() {
    for b in [1usize, 4] {
        let xs = normal(10 + b as u64, &[b, 6]).abs();
        let ys = normal(20 + b as u64, &[b, 6]);
        let (x0, y0) = (normal(30, &[6]).abs(), normal(31, &[6]));
        let stack =
            |v: Vec<Tensor>, axis: isize| Tensor::stack(&v.iter().collect::<Vec<_>>(), axis);

        let want = stack(
            unstack(&xs, 0)
                .iter()
                .zip(unstack(&ys, 0))
                .map(|(x, y)| mix_bb(x, &y))
                .collect(),
            0,
        );
        assert_close(&mix_bb_vmap(&xs, &ys), &want, 1e-10, "both batched");

        let xt = xs.t().contiguous(); // examples along axis 1
        let want = stack(unstack(&xs, 0).iter().map(|x| mix_bn(x, &y0)).collect(), 0);
        assert_close(&mix_bn_vmap(&xt, &y0), &want, 1e-10, "x batched on axis 1");

        let yt = ys.t().contiguous(); // examples along the last axis
        let want = stack(unstack(&ys, 0).iter().map(|y| mix_nb(&x0, y)).collect(), 1);
        assert_close(
            &mix_nb_vmap(&x0, &yt),
            &want,
            1e-10,
            "y batched, out_axes 1",
        );
    }
}

#[test]
fn batch_sizes_that_disagree_are_a_clear_panic() {
    let r = std::panic::catch_unwind(|| mix_bb_vmap(&normal(1, &[3, 6]), &normal(2, &[4, 6])));
    let msg = r
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        msg.contains("mix_bb_vmap") && msg.contains('3') && msg.contains('4'),
        "{msg}"
    );
}

// ---- scalar code: per-example control flow ----

#[vmap]
fn piecewise(x: f64, y: f64) -> f64 {
    let mut s = x * y;
    if x > 0.5 {
        s += x.exp();
    } else if y < 0.0 {
        s = s * 2.0 - y;
    } else {
        s -= 1.0;
    }
    s
}

#[vmap(in_axes = (0, None))]
fn newton_sqrt(a: f64, tol: f64) -> f64 {
    // data-dependent trip count: fewer iterations for a near 1
    let mut x = a;
    let mut n = 0.0;
    while (x * x - a).abs() > tol {
        x = 0.5 * (x + a / x);
        n += 1.0;
    }
    x + n * 1000.0
}

#[vmap]
fn early(x: f64) -> f64 {
    if x < 0.0 {
        return -x;
    }
    let mut s = 0.0;
    let mut k = 0.0;
    loop {
        s += x;
        k += 1.0;
        if s > 3.0 {
            return s * 10.0 + k;
        }
        if k > 5.0 {
            break;
        }
    }
    s
}

#[test]
fn per_example_branches_loops_and_returns_match_a_loop() {
    let xs = vec![0.9, 0.1, 0.3, -0.4, 0.7, 2.5, 0.0];
    let ys = vec![0.2, -0.5, 0.4, -1.0, 3.0, 0.1, 0.0];
    let (tx, ty) = (
        Tensor::from_vec(xs.clone(), &[7]),
        Tensor::from_vec(ys.clone(), &[7]),
    );
    let got = piecewise_vmap(&tx, &ty).to_vec::<f64>();
    for i in 0..7 {
        assert_eq!(got[i], piecewise(xs[i], ys[i]), "piecewise example {i}");
    }
    let a = vec![1.0, 2.0, 100.0, 1.0001, 1e-4];
    let got = newton_sqrt_vmap(&Tensor::from_vec(a.clone(), &[5]), 1e-12).to_vec::<f64>();
    for i in 0..5 {
        assert_eq!(got[i], newton_sqrt(a[i], 1e-12), "newton example {i}");
    }
    let x = vec![-1.0, 0.2, 0.5, 1.5, 4.0, 0.0];
    let got = early_vmap(&Tensor::from_vec(x.clone(), &[6])).to_vec::<f64>();
    for i in 0..6 {
        assert_eq!(got[i], early(x[i]), "early example {i}");
    }
}

// ---- per-example gradients ----

#[derive(Clone, Differentiable)]
struct Mlp {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(p))]
fn loss(p: &Mlp, x: &Tensor, y: &Tensor) -> Tensor {
    let h = (x.matmul(&p.w1) + &p.b1).tanh();
    let logits = h.matmul(&p.w2) + &p.b2;
    -(logits.log_softmax(-1) * y).sum()
}

fn mlp(seed: u64) -> Mlp {
    Mlp {
        w1: &normal(seed, &[5, 8]) * 0.5,
        b1: normal(seed + 1, &[8]),
        w2: normal(seed + 2, &[8, 3]),
        b2: normal(seed + 3, &[3]),
    }
}

#[test]
fn per_example_gradients_match_a_loop_of_grad() {
    let p = mlp(40);
    for b in [1usize, 6] {
        let xs = normal(50 + b as u64, &[b, 5]);
        let labels: Vec<i32> = (0..b as i32).map(|i| i % 3).collect();
        let ys = Tensor::from_vec(labels, &[b]).one_hot(3, DType::F64);
        let g = loss_grad_vmap(&p, &xs, &ys);
        let (vals, g2) = loss_value_and_grad_vmap(&p, &xs, &ys);
        assert_eq!(g.w1.shape(), &[b, 5, 8]);
        assert_eq!(g.b2.shape(), &[b, 3]);
        for (i, (x, y)) in unstack(&xs, 0).iter().zip(unstack(&ys, 0)).enumerate() {
            let gi = loss_grad(&p, x, &y);
            let pick = |t: &Tensor| t.slice(0, i, i + 1).squeeze(0);
            for (name, got, got2, want) in [
                ("w1", &g.w1, &g2.w1, &gi.w1),
                ("b1", &g.b1, &g2.b1, &gi.b1),
                ("w2", &g.w2, &g2.w2, &gi.w2),
                ("b2", &g.b2, &g2.b2, &gi.b2),
            ] {
                assert_close(&pick(got), want, 1e-12, name);
                assert_close(&pick(got2), want, 1e-12, name);
            }
            assert_close(&pick(&vals), &loss(&p, x, &y), 1e-12, "value");
        }
    }
}

#[vmap]
#[grad]
fn smooth_abs(x: f64, y: f64) -> f64 {
    let mut s = x * y;
    if x > y {
        s += (x - y).powi(2);
    } else {
        s += (y - x).sin();
    }
    s
}

#[test]
fn per_example_gradients_through_a_per_example_branch() {
    let xs = vec![0.3, -1.0, 2.0, 0.5];
    let ys = vec![0.1, 0.5, 2.5, 0.5];
    let (gx, gy) = smooth_abs_grad_vmap(
        &Tensor::from_vec(xs.clone(), &[4]),
        &Tensor::from_vec(ys.clone(), &[4]),
    );
    for i in 0..4 {
        let (wx, wy) = smooth_abs_grad(xs[i], ys[i]);
        let (v, _) = smooth_abs_value_and_grad(xs[i], ys[i]);
        assert_eq!(v, smooth_abs(xs[i], ys[i]));
        assert!((gx.to_vec::<f64>()[i] - wx).abs() < 1e-12, "dx {i}");
        assert!((gy.to_vec::<f64>()[i] - wy).abs() < 1e-12, "dy {i}");
    }
}

/// Shape queries inside a batched function answer for one example.
#[vmap]
fn normalised(x: &Tensor) -> Tensor {
    let n = x.numel() as f64;
    let rows = x.len() as f64;
    (x - x.sum() / n) * rows + x.ndim() as f64
}

#[test]
fn shape_queries_answer_for_one_example() {
    let xs = normal(60, &[3, 2, 5]);
    let got = normalised_vmap(&xs);
    let want: Vec<Tensor> = unstack(&xs, 0).iter().map(normalised).collect();
    assert_close(
        &got,
        &Tensor::stack(&want.iter().collect::<Vec<_>>(), 0),
        1e-12,
        "normalised",
    );
}

// ---- calls between batched functions ----

#[vmap]
fn scaled_tanh(x: &Tensor, s: f64) -> Tensor {
    (x * s).tanh()
}

#[vmap]
fn sq(a: f64, b: f64) -> f64 {
    a * a + b
}

#[vmap(in_axes = (0, None, 0))]
fn caller(x: &Tensor, w: &Tensor, s: f64) -> Tensor {
    // a batched and an unbatched (lifted) argument, and a scalar callee
    let h = scaled_tanh(&x.matmul(w), s) + scaled_tanh(w, 2.0).sum();
    let k = sq(s, 1.5);
    h * k
}

#[test]
fn calls_to_batched_functions_use_their_batched_counterparts() {
    let xs = normal(70, &[4, 3]);
    let w = normal(71, &[3, 2]);
    let s = vec![0.5, -1.0, 2.0, 0.1];
    let got = caller_vmap(&xs, &w, &Tensor::from_vec(s.clone(), &[4]));
    let want: Vec<Tensor> = unstack(&xs, 0)
        .iter()
        .zip(&s)
        .map(|(x, s)| caller(x, &w, *s))
        .collect();
    assert_close(
        &got,
        &Tensor::stack(&want.iter().collect::<Vec<_>>(), 0),
        1e-12,
        "caller",
    );
}

// ---- nested vmap ----

/// Pairwise: the outer level runs over rows of `x`, the inner one over rows of `w`.
#[vmap(in_axes = (0, None, 0))]
#[vmap(in_axes = (None, 0, None), out_axes = 1)]
fn pair(x: &Tensor, w: &Tensor, s: f64) -> Tensor {
    (x * w).tanh() * s + x.sum()
}

#[vmap(in_axes = (0, None))]
#[vmap(in_axes = (None, 0))]
fn dist(a: f64, b: f64) -> f64 {
    if a > b { a - b } else { (b - a) * 2.0 }
}

#[test]
fn nested_vmap_matches_a_double_loop() {
    let xs = normal(80, &[3, 4]);
    let ws = normal(81, &[5, 4]);
    let s = vec![0.5, -1.0, 2.0];
    let got = pair_vmap_vmap(&xs, &ws, &Tensor::from_vec(s.clone(), &[3]));
    // per outer example i: the inner results stacked on axis 1 ([4, 5]); outer on axis 0
    let want: Vec<Tensor> = unstack(&xs, 0)
        .iter()
        .zip(&s)
        .map(|(x, s)| {
            let inner: Vec<Tensor> = unstack(&ws, 0).iter().map(|w| pair(x, w, *s)).collect();
            Tensor::stack(&inner.iter().collect::<Vec<_>>(), 1)
        })
        .collect();
    let want = Tensor::stack(&want.iter().collect::<Vec<_>>(), 0);
    assert_eq!(got.shape(), &[3, 4, 5]);
    assert_close(&got, &want, 1e-12, "pair");

    let a = vec![0.1, 0.9, -0.3];
    let b = vec![0.5, -1.0];
    let d = dist_vmap_vmap(
        &Tensor::from_vec(a.clone(), &[3]),
        &Tensor::from_vec(b.clone(), &[2]),
    );
    assert_eq!(d.shape(), &[3, 2]);
    let d = d.to_vec::<f64>();
    for i in 0..3 {
        for j in 0..2 {
            assert_eq!(d[i * 2 + j], dist(a[i], b[j]), "dist[{i}][{j}]");
        }
    }
}

// ---- f32 ----

#[vmap]
#[grad]
fn soft32(x: f32, y: f32) -> f32 {
    let mut s = 0.0;
    let mut k = 0;
    while k < 3 {
        s += (x * y).tanh();
        k += 1;
    }
    if x > 0.0 { s * x } else { s - y }
}

#[test]
fn f32_functions_batch_in_f32() {
    let (xs, ys) = (vec![0.5f32, -1.0, 2.0], vec![1.5f32, 0.25, -0.5]);
    let (tx, ty) = (
        Tensor::from_vec(xs.clone(), &[3]),
        Tensor::from_vec(ys.clone(), &[3]),
    );
    let v = soft32_vmap(&tx, &ty);
    assert_eq!(v.dtype(), DType::F32);
    let (gx, gy) = soft32_grad_vmap(&tx, &ty);
    for i in 0..3 {
        assert!(
            (v.to_vec::<f32>()[i] - soft32(xs[i], ys[i])).abs() < 1e-6,
            "value {i}"
        );
        let (wx, wy) = soft32_grad(xs[i], ys[i]);
        assert!((gx.to_vec::<f32>()[i] - wx).abs() < 1e-5, "dx {i}");
        assert!((gy.to_vec::<f32>()[i] - wy).abs() < 1e-5, "dy {i}");
    }
}

// ---- grad over vmap ----

#[grad(wrt(w, b))]
#[vmap(in_axes = (None, 0, 0))]
fn batch_loss(w: &Tensor, b: f64, x: &Tensor) -> Tensor {
    (x.matmul(w).tanh() * b).powi(2).sum()
}

#[test]
fn grad_over_vmap_is_the_gradient_of_the_batch_total() {
    let w = normal(90, &[3, 2]);
    let xs = normal(91, &[5, 3]);
    let bs = vec![0.5, -1.0, 2.0, 0.1, 1.5];
    let tb = Tensor::from_vec(bs.clone(), &[5]);
    let (vals, (gw, gb)) = batch_loss_vmap_value_and_grad(&w, &tb, &xs);
    assert_eq!(gw.shape(), &[3, 2]);
    assert_eq!(gb.shape(), &[5]);
    let mut want_w = Tensor::zeros(&[3, 2], DType::F64);
    for (i, x) in unstack(&xs, 0).iter().enumerate() {
        let (gwi, gbi) = batch_loss_grad(&w, bs[i], x);
        want_w = &want_w + &gwi;
        assert!((gb.to_vec::<f64>()[i] - gbi).abs() < 1e-12, "db {i}");
        assert!((vals.to_vec::<f64>()[i] - batch_loss(&w, bs[i], x).item::<f64>()).abs() < 1e-12);
    }
    assert_close(&gw, &want_w, 1e-12, "dw summed over the batch");
    assert_close(
        &batch_loss_vmap_grad(&w, &tb, &xs).0,
        &want_w,
        1e-12,
        "vmap_grad",
    );
}

#[test]
fn empty_batches_give_empty_results() {
    let w = normal(1, &[4, 3]);
    assert_eq!(
        layer_vmap(&Tensor::zeros(&[0, 4], DType::F64), &w).shape(),
        &[0, 3]
    );
    let none = Tensor::zeros(&[0], DType::F64);
    assert_eq!(piecewise_vmap(&none, &none).shape(), &[0]);
    assert_eq!(newton_sqrt_vmap(&none, 1e-12).shape(), &[0]);
    assert_eq!(early_vmap(&none).shape(), &[0]);
}

// ---- per-example gradients through calls of other `#[vmap] #[grad]` functions ----

/// A layer with its weights as tensors: called by `modular_loss` with shared weights and a
/// per-example input.
#[vmap]
#[grad]
fn dense(w: &Tensor, b: &Tensor, x: &Tensor) -> Tensor {
    (x.matmul(w) + b).tanh()
}

#[vmap]
#[grad]
fn soft_clip(v: f64, k: f64) -> f64 {
    if v > k {
        k + (v - k) * 0.1
    } else {
        v * v / (2.0 * k) + k * 0.5
    }
}

#[vmap(in_axes = (None, None, None, None, 0, 0, 0))]
#[grad(wrt(w1, b1, w2, s))]
fn modular_loss(
    w1: &Tensor,
    b1: &Tensor,
    w2: &Tensor,
    s: f64,
    x: &Tensor,
    y: &Tensor,
    t: f64,
) -> Tensor {
    let h = dense(w1, b1, x);
    let logits = h.matmul(w2) * soft_clip(s * t, 1.5);
    -(logits.log_softmax(-1) * y).sum()
}

#[test]
fn per_example_gradients_through_calls_match_a_loop_of_grad() {
    let (w1, b1, w2) = (
        &normal(70, &[4, 6]) * 0.5,
        normal(71, &[6]),
        normal(72, &[6, 3]),
    );
    let s = 0.8;
    for b in [1usize, 5] {
        let xs = normal(73 + b as u64, &[b, 4]);
        let labels: Vec<i32> = (0..b as i32).map(|i| (i * 2) % 3).collect();
        let ys = Tensor::from_vec(labels, &[b]).one_hot(3, DType::F64);
        // per example t crosses soft_clip's kink at s * t = 1.5
        let ts: Vec<f64> = (0..b).map(|i| 0.5 + 1.1 * i as f64).collect();
        let tt = Tensor::from_vec(ts.clone(), &[b]);
        let (gw1, gb1, gw2, gs) = modular_loss_grad_vmap(&w1, &b1, &w2, s, &xs, &ys, &tt);
        assert_eq!(gw1.shape(), &[b, 4, 6]);
        assert_eq!(gs.shape(), &[b]);
        for (i, (x, y)) in unstack(&xs, 0).iter().zip(unstack(&ys, 0)).enumerate() {
            let (ww1, wb1, ww2, ws) = modular_loss_grad(&w1, &b1, &w2, s, x, &y, ts[i]);
            let pick = |t: &Tensor| t.slice(0, i, i + 1).squeeze(0);
            assert_close(&pick(&gw1), &ww1, 1e-12, "w1");
            assert_close(&pick(&gb1), &wb1, 1e-12, "b1");
            assert_close(&pick(&gw2), &ww2, 1e-12, "w2");
            assert!((gs.to_vec::<f64>()[i] - ws).abs() < 1e-12, "s, example {i}");
            // and the loop's gradient is right: finite differences in s
            let h = 1e-6;
            let f = |s: f64| modular_loss(&w1, &b1, &w2, s, x, &y, ts[i]).item::<f64>();
            let fd = (f(s + h) - f(s - h)) / (2.0 * h);
            assert!(
                (ws - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                "s fd, example {i}: {ws} vs {fd}"
            );
            // forward mode through the calls (an inactive tensor argument gets a zero tangent)
            let dw2 = normal(80, &[6, 3]);
            let (_, dir) = modular_loss_jvp(
                &w1,
                &b1,
                &w2,
                s,
                x,
                &y,
                ts[i],
                &w1.zeros_like(),
                &b1.zeros_like(),
                &dw2,
                1.0,
            );
            let want = ws + (&ww2 * &dw2).sum().item::<f64>();
            assert!(
                (dir.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()),
                "jvp {i}"
            );
        }
    }
}

#[vmap]
#[grad]
fn square_plus(x: f64) -> f64 {
    x * x + x.sin()
}

#[vmap]
#[grad]
fn calls_square_plus(x: f64, y: f64) -> f64 {
    square_plus(x * y) + square_plus(y) * x
}

/// Scalar per-example gradients through calls (each float a batched 1-D tensor).
#[test]
fn scalar_per_example_gradients_through_calls() {
    let xs = vec![0.3, -1.0, 2.0];
    let ys = vec![1.5, 0.25, -0.7];
    let (gx, gy) = calls_square_plus_grad_vmap(
        &Tensor::from_vec(xs.clone(), &[3]),
        &Tensor::from_vec(ys.clone(), &[3]),
    );
    for i in 0..3 {
        let (v, (wx, wy)) = calls_square_plus_value_and_grad(xs[i], ys[i]);
        assert_eq!(v, calls_square_plus(xs[i], ys[i]));
        assert!((gx.to_vec::<f64>()[i] - wx).abs() < 1e-12, "dx {i}");
        assert!((gy.to_vec::<f64>()[i] - wy).abs() < 1e-12, "dy {i}");
    }
}

// ---- per-example gradients through a helper taking a parameter struct ----

#[derive(Clone, Differentiable)]
struct Linear {
    w: Tensor,
    b: Tensor,
}

#[derive(Clone, Differentiable)]
struct TwoLayers {
    l1: Linear,
    l2: Linear,
}

#[vmap(in_axes = (None, 0))]
#[grad]
fn linear_tanh(l: &Linear, x: &Tensor) -> Tensor {
    (x.matmul(&l.w) + &l.b).tanh()
}

#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(p))]
fn two_layer_loss(p: &TwoLayers, x: &Tensor, y: &Tensor) -> Tensor {
    let h = linear_tanh(&p.l1, x);
    let o = linear_tanh(&p.l2, &h);
    let d = &o - y;
    (&d * &d).sum()
}

#[test]
fn per_example_gradients_through_a_struct_helper_match_a_loop_of_grad() {
    let lin = |s: u64, i: usize, o: usize| Linear {
        w: &normal(s, &[i, o]) * 0.5,
        b: normal(s + 1, &[o]),
    };
    let p = TwoLayers {
        l1: lin(100, 3, 5),
        l2: lin(102, 5, 2),
    };
    let b = 4;
    let xs = normal(104, &[b, 3]);
    let ys = normal(105, &[b, 2]);
    let g = two_layer_loss_grad_vmap(&p, &xs, &ys);
    let losses = two_layer_loss_vmap(&p, &xs, &ys);
    assert_eq!(g.l1.w.shape(), &[b, 3, 5]);
    for (i, (x, y)) in unstack(&xs, 0).iter().zip(unstack(&ys, 0)).enumerate() {
        let gi = two_layer_loss_grad(&p, x, &y);
        let pick = |t: &Tensor| t.slice(0, i, i + 1).squeeze(0);
        assert_close(&pick(&losses), &two_layer_loss(&p, x, &y), 1e-12, "loss");
        assert_close(&pick(&g.l1.w), &gi.l1.w, 1e-12, "l1.w");
        assert_close(&pick(&g.l1.b), &gi.l1.b, 1e-12, "l1.b");
        assert_close(&pick(&g.l2.w), &gi.l2.w, 1e-12, "l2.w");
        assert_close(&pick(&g.l2.b), &gi.l2.b, 1e-12, "l2.b");
    }
}

/// Views of a slice shared by every example.
#[vmap(in_axes = (0, None))]
fn weighted(x: f64, w: &[f64]) -> f64 {
    let head = &w[..2];
    x * head[0] + x * x * head[1] + w[2..].iter().sum::<f64>()
}

#[test]
fn views_of_a_shared_slice_match_a_loop() {
    let w = [0.5, -1.5, 2.0, 0.25];
    let xs = [0.1, -0.3, 0.7];
    let got = weighted_vmap(&Tensor::from_vec(xs.to_vec(), &[3]), &w).to_vec::<f64>();
    for (g, x) in got.iter().zip(xs) {
        assert!(
            (g - weighted(x, &w)).abs() < 1e-12,
            "{g} vs {}",
            weighted(x, &w)
        );
    }
}

/// Constants of a model, shared by every example and never differentiated.
struct Consts {
    k: f64,
    offsets: Vec<f64>,
}

#[vmap(in_axes = (0, None))]
#[grad(wrt(x))]
fn with_consts(x: f64, c: &Consts) -> f64 {
    (x * c.k).sin() + x * c.offsets[1]
}

#[test]
fn a_struct_of_constants_shared_by_every_example() {
    let c = Consts {
        k: 1.7,
        offsets: vec![0.0, 0.5],
    };
    let xs = [0.1, -0.3, 0.7];
    let t = Tensor::from_vec(xs.to_vec(), &[3]);
    let (v, g) = (with_consts_vmap(&t, &c), with_consts_grad_vmap(&t, &c));
    for (i, x) in xs.iter().enumerate() {
        assert!((v.to_vec::<f64>()[i] - with_consts(*x, &c)).abs() < 1e-12);
        assert!((g.to_vec::<f64>()[i] - with_consts_grad(*x, &c)).abs() < 1e-12);
    }
}

// ---- a callee whose loop overwrites a tensor (a tape in its reverse sweep) ----

#[vmap(in_axes = (0, None, None))]
#[grad]
fn damped_layer(x: &Tensor, w: &Tensor, reps: usize) -> Tensor {
    let mut h = x.matmul(w);
    for _ in 0..reps {
        h = (h * 0.8).tanh();
    }
    h
}

#[vmap(in_axes = (None, 0))]
#[grad(wrt(w))]
fn damped_loss(w: &Tensor, x: &Tensor) -> Tensor {
    damped_layer(x, w, 3).powi(2).sum()
}

#[test]
fn per_example_gradients_through_a_callee_with_a_tape_match_a_loop() {
    let (w, xs) = (normal(31, &[3, 2]), normal(32, &[4, 3]));
    let got = unstack(&damped_loss_grad_vmap(&w, &xs), 0);
    let values = unstack(&damped_loss_vmap(&w, &xs), 0);
    for (b, x) in unstack(&xs, 0).iter().enumerate() {
        assert_close(
            &got[b],
            &damped_loss_grad(&w, x),
            1e-12,
            "per-example gradient",
        );
        assert_close(&values[b], &damped_loss(&w, x), 1e-12, "per-example value");
    }
    let ys = damped_layer_vmap(&xs, &w, 2);
    for (b, x) in unstack(&xs, 0).iter().enumerate() {
        assert_close(
            &unstack(&ys, 0)[b],
            &damped_layer(x, &w, 2),
            1e-12,
            "batched layer",
        );
    }
}

/// The same with the trip count given: a tape of zero, one or several entries per example,
/// for batches of one example and of several.
#[vmap(in_axes = (None, 0, None))]
#[grad(wrt(w))]
fn damped_loss_reps(w: &Tensor, x: &Tensor, reps: usize) -> Tensor {
    let y = damped_layer(x, w, reps);
    let mut i = 0;
    let mut z = y.clone();
    while i < reps {
        z = (&z * &y).sin();
        i += 1;
    }
    z.sum()
}

#[test]
fn per_example_gradients_through_tapes_of_any_length_match_a_loop() {
    let w = normal(33, &[3, 2]);
    for reps in [0, 1, 3] {
        for batch in [1, 4] {
            let xs = normal(34 + batch as u64, &[batch, 3]);
            let got = unstack(&damped_loss_reps_grad_vmap(&w, &xs, reps), 0);
            let values = unstack(&damped_loss_reps_vmap(&w, &xs, reps), 0);
            assert_eq!(got.len(), batch);
            for (b, x) in unstack(&xs, 0).iter().enumerate() {
                let what = format!("reps {reps}, batch {batch}, example {b}");
                let want = damped_loss_reps_grad(&w, x, reps);
                assert_close(&got[b], &want, 1e-12, &what);
                assert_close(&values[b], &damped_loss_reps(&w, x, reps), 1e-12, &what);
            }
        }
    }
}

// ---- per-example gradients of a float field: a clear panic ----

#[derive(Clone, Differentiable)]
struct Scaled {
    w: Tensor,
    s: f64,
}

#[vmap(in_axes = (None, 0))]
#[grad]
fn scaled_sum(p: &Scaled, x: &Tensor) -> Tensor {
    (x * &p.w).sum() * p.s
}

#[vmap(in_axes = (None, 0))]
#[grad(wrt(p))]
fn scaled_loss(p: &Scaled, x: &Tensor) -> Tensor {
    scaled_sum(p, x).powi(2)
}

#[test]
fn per_example_gradients_of_a_float_field_are_a_clear_panic() {
    let p = Scaled {
        w: normal(41, &[3]),
        s: 0.5,
    };
    let x = normal(42, &[3]);
    // one example at a time works
    let g = scaled_loss_grad(&p, &x);
    let v = scaled_sum(&p, &x).item::<f64>();
    assert_eq!(scaled_loss(&p, &x).item::<f64>(), v * v);
    let want = 2.0 * v * v / p.s;
    assert!(
        (g.s - want).abs() <= 1e-12 * (1.0 + want.abs()),
        "{} vs {want}",
        g.s
    );
    let r = std::panic::catch_unwind(|| scaled_loss_grad_vmap(&p, &normal(43, &[4, 3])));
    let e = r.err().expect("a panic");
    let msg = e
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        msg.contains("float field") && msg.contains("Tensor"),
        "{msg}"
    );
}

// ---- a clipped probability, per example ----

#[vmap(in_axes = (0, None))]
#[grad(wrt(x, w))]
fn clipped_nll(x: &Tensor, w: &Tensor) -> Tensor {
    let p = x.matmul(w).sigmoid().clamp(0.05, 0.95);
    -p.ln().sum()
}

#[test]
fn per_example_gradients_through_clamp_match_a_loop() {
    let (xs, w) = (normal(51, &[6, 3]), normal(52, &[3, 2]) * 3.0);
    let (gx, gw) = clipped_nll_grad_vmap(&xs, &w);
    let (gx, gw) = (unstack(&gx, 0), unstack(&gw, 0));
    let values = unstack(&clipped_nll_vmap(&xs, &w), 0);
    for (b, x) in unstack(&xs, 0).iter().enumerate() {
        assert_close(&values[b], &clipped_nll(x, &w), 1e-12, "per-example value");
        let (wx, ww) = clipped_nll_grad(x, &w);
        assert_close(&gx[b], &wx, 1e-12, "per-example gradient wrt x");
        assert_close(&gw[b], &ww, 1e-12, "per-example gradient wrt w");
    }
}

// ---- a per-example counter: Newton's method with an iteration cap ----

/// `sqrt(a)` by Newton's method, stopping per example when converged or after `cap`
/// steps; the steps taken are a per-example integer, added to the result to check them.
#[vmap(in_axes = (0, None))]
fn newton_steps(a: f64, cap: usize) -> f64 {
    let mut x = a.max(1.0);
    let mut i = 0;
    while (x * x - a).abs() > 1e-10 * a && i < cap {
        x = 0.5 * (x + a / x);
        i += 1;
    }
    let mut flag = 0;
    if i == cap {
        flag = 1;
    }
    x + 1000.0 * i as f64 - 0.5 * flag as f64
}

#[test]
fn a_per_example_counter_matches_a_loop() {
    for dtype in [DType::F64, DType::F32] {
        let a = Tensor::from_vec(vec![2.0, 9.0, 0.25, 1e6, 1.0], &[5]).to_dtype(dtype);
        // (f32 does not converge to 1e-10: its examples all run to a cap of 50)
        let caps: &[usize] = if dtype == DType::F64 {
            &[0, 3, 50]
        } else {
            &[0, 3]
        };
        for &cap in caps {
            let got = newton_steps_vmap(&a, cap)
                .to_dtype(DType::F64)
                .to_vec::<f64>();
            for (k, v) in a
                .to_dtype(DType::F64)
                .to_vec::<f64>()
                .into_iter()
                .enumerate()
            {
                let want = newton_steps(v, cap);
                let tol = if dtype == DType::F64 { 1e-12 } else { 1e-3 };
                assert!(
                    (got[k] - want).abs() <= tol * (1.0 + want.abs()),
                    "{dtype:?}, cap {cap}, a = {v}: {} vs {want}",
                    got[k]
                );
            }
        }
    }
}

// ---- per-example gradients through loops of per-example trip counts ----

/// Newton's method for `sqrt(a)`, to convergence or a cap, then a nonlinear read-out:
/// each example makes its own number of trips, and its gradient goes back through them.
#[vmap(in_axes = (0))]
#[grad]
fn newton_readout(a: f64) -> f64 {
    let mut x = a.max(1.0);
    let mut i = 0;
    while (x * x - a).abs() > 1e-12 * a && i < 50 {
        x = 0.5 * (x + a / x);
        i += 1;
    }
    x * x.sin()
}

/// A damped fixed-point iteration `h = tanh(w h + x)` per example, until the step is
/// small: tensors carried through a loop whose trip count depends on the example.
#[vmap(in_axes = (0, None))]
#[grad]
fn fixed_point(x: &Tensor, w: &Tensor) -> Tensor {
    let mut h = x.zeros_like();
    let mut step = 1.0;
    let mut trips = 0;
    while step > 1e-6 && trips < 200 {
        let next = (w.matmul(&h) + x).tanh();
        step = (&next - &h).abs().max().item::<f64>();
        h = next;
        trips += 1;
    }
    h.powi(2).sum()
}

/// A `for` loop left early, per example.
#[vmap(in_axes = (0))]
#[grad]
fn grown_until(a: f64) -> f64 {
    let mut x = a;
    for k in 0..20 {
        if x > 10.0 {
            break;
        }
        x = x * 1.5 + (k as f64) * 0.01 * x.sin();
    }
    x.ln()
}

/// A `loop` with its exit at the end, per example.
#[vmap(in_axes = (0))]
#[grad]
fn grown_past(a: f64) -> f64 {
    let mut x = a;
    loop {
        x = x * 1.3 + 0.1;
        if x > 5.0 {
            break;
        }
    }
    x.sqrt()
}

#[test]
fn per_example_gradients_through_loops_left_early_match_a_loop() {
    let a = [0.5, 2.0, 9.0, 11.0, 0.01];
    let at = Tensor::from_vec(a.to_vec(), &[5]);
    let (g1, g2) = (
        grown_until_grad_vmap(&at).to_vec::<f64>(),
        grown_past_grad_vmap(&at).to_vec::<f64>(),
    );
    for (k, v) in a.iter().enumerate() {
        for (got, want) in [(g1[k], grown_until_grad(*v)), (g2[k], grown_past_grad(*v))] {
            assert!(
                (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                "{v}: {got} vs {want}"
            );
        }
        let h = 1e-6 * v;
        let fd = (grown_until(v + h) - grown_until(v - h)) / (2.0 * h);
        assert!(
            (g1[k] - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
            "{v}: {} vs {fd}",
            g1[k]
        );
        let fd = (grown_past(v + h) - grown_past(v - h)) / (2.0 * h);
        assert!(
            (g2[k] - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
            "{v}: {} vs {fd}",
            g2[k]
        );
    }
}

#[test]
fn per_example_gradients_through_while_loops_of_per_example_trips_match_a_loop() {
    let a = [2.0, 9.0, 0.25, 1e6, 1.0];
    let g = newton_readout_grad_vmap(&Tensor::from_vec(a.to_vec(), &[5])).to_vec::<f64>();
    for (k, v) in a.iter().enumerate() {
        let want = newton_readout_grad(*v);
        assert!(
            (g[k] - want).abs() <= 1e-12 * (1.0 + want.abs()),
            "{v}: {} vs {want}",
            g[k]
        );
        let h = 1e-6 * v;
        let fd = (newton_readout(v + h) - newton_readout(v - h)) / (2.0 * h);
        assert!(
            (want - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
            "{v}: {want} vs {fd}"
        );
    }
    let (xs, w) = (normal(61, &[4, 3]) * 2.0, normal(62, &[3, 3]) * 0.4);
    let (gx, gw) = fixed_point_grad_vmap(&xs, &w);
    let (gx, gw) = (unstack(&gx, 0), unstack(&gw, 0));
    let values = unstack(&fixed_point_vmap(&xs, &w), 0);
    for (b, x) in unstack(&xs, 0).iter().enumerate() {
        assert_close(&values[b], &fixed_point(x, &w), 1e-12, "per-example value");
        let (wx, ww) = fixed_point_grad(x, &w);
        assert_close(&gx[b], &wx, 1e-10, "per-example gradient wrt x");
        assert_close(&gw[b], &ww, 1e-10, "per-example gradient wrt w");
    }
}

/// A ball dropped from height `a`, bouncing with restitution `k`, simulated until a time
/// whose steps depend on the height: per-example trip counts with a per-example branch
/// inside, differentiated per example with respect to `a` and the shared `k`.
#[vmap(in_axes = (0, None))]
#[grad]
fn bounced(a: f64, k: f64) -> f64 {
    let mut x = a;
    let mut v = 0.0;
    let mut t = 0.0;
    while t < 3.0 {
        v -= 9.8 * 0.05;
        x += v * 0.05;
        if x < 0.0 {
            x = -x * k;
            v = -v * k;
        }
        t += 0.05 + 0.01 * x.abs();
    }
    x + v
}

#[test]
fn per_example_gradients_of_a_bouncing_ball_match_a_loop_and_finite_differences() {
    let a = [0.5, 2.0, 9.0, 1.3];
    let (ga, gk) = bounced_grad_vmap(&Tensor::from_vec(a.to_vec(), &[4]), 0.8);
    let (ga, gk) = (ga.to_vec::<f64>(), gk.to_vec::<f64>());
    for (i, v) in a.iter().enumerate() {
        let (wa, wk) = bounced_grad(*v, 0.8);
        assert!(
            (ga[i] - wa).abs() <= 1e-12 * (1.0 + wa.abs()),
            "{v}: {} vs {wa}",
            ga[i]
        );
        assert!(
            (gk[i] - wk).abs() <= 1e-12 * (1.0 + wk.abs()),
            "{v}: {} vs {wk}",
            gk[i]
        );
        let h = 1e-7;
        let fd = (bounced(v + h, 0.8) - bounced(v - h, 0.8)) / (2.0 * h);
        assert!(
            (wa - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
            "{v}: {wa} vs {fd}"
        );
        let fd = (bounced(*v, 0.8 + h) - bounced(*v, 0.8 - h)) / (2.0 * h);
        assert!(
            (wk - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
            "{v}: {wk} vs {fd}"
        );
    }
}
