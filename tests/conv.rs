//! Convolutions under every transform: `x.conv(&w, &spec)` in user code, differentiated in
//! reverse and forward mode (against central finite differences in f64 and against each
//! other), twice (Hessians), as Jacobians, and batched (against a loop of the unbatched
//! function), with shared and per-example kernels, on 1-, 2- and 3-D inputs with strides,
//! padding, dilation and groups.

mod common;
use common::tensors::{assert_close, fd_element, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// A two-layer convolutional network's loss on a batch `[N, C, H, W]`: a "same" 3 x 3
/// convolution, `tanh`, then a strided, padded, dilated one; the specs built in the body.
#[grad]
fn cnn(x: &Tensor, w1: &Tensor, b1: &Tensor, w2: &Tensor) -> Tensor {
    let h = (x.conv(w1, &Conv::new(2).same()) + b1).tanh();
    let spec = Conv::new(2).stride(2).padding(1).dilation(2);
    let y = h.conv(w2, &spec);
    (&y * &y).mean() + y.sin().sum()
}

#[test]
fn a_small_cnn_matches_differences_and_forward_mode() {
    let x = normal(1, &[2, 3, 7, 6]);
    let w1 = normal(2, &[4, 3, 3, 3]) * 0.3;
    let b1 = normal(3, &[4, 1, 1]);
    let w2 = normal(4, &[2, 4, 2, 3]) * 0.3;
    let args = [x.clone(), w1.clone(), b1.clone(), w2.clone()];
    let (gx, gw1, gb1, gw2) = cnn_grad(&x, &w1, &b1, &w2);
    let grads = [gx, gw1, gb1, gw2];
    let f = |v: &[Tensor]| cnn(&v[0], &v[1], &v[2], &v[3]);
    for (l, g) in grads.iter().enumerate() {
        assert_close(g, &fd_element(&f, &args, l), 1e-6, &format!("argument {l}"));
    }
    let ts: Vec<Tensor> = args
        .iter()
        .enumerate()
        .map(|(i, a)| normal(10 + i as u64, a.shape()))
        .collect();
    let (v, t) = cnn_jvp(&x, &w1, &b1, &w2, &ts[0], &ts[1], &ts[2], &ts[3]);
    assert_eq!(v.item::<f64>(), cnn(&x, &w1, &b1, &w2).item::<f64>());
    let want: f64 = grads
        .iter()
        .zip(&ts)
        .map(|(g, t)| (g * t).sum().item::<f64>())
        .sum();
    assert!((t.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
}

/// One example `[C, L]` (no batch axis) through a 1-D convolution with its spec passed in:
/// per-example gradients of shared kernels.
#[vmap(in_axes = (0, None, None, 0))]
#[grad(wrt(w))]
fn example_loss(x: &Tensor, w: &Tensor, spec: &Conv, target: &Tensor) -> Tensor {
    let y = x.conv(w, spec).tanh();
    let e = y - target;
    (&e * &e).sum()
}

#[test]
fn per_example_gradients_of_shared_kernels_match_a_loop() {
    let spec = Conv::new(1).stride(2).padding(2).dilation(2);
    let xs = normal(20, &[5, 3, 11]);
    let w = normal(21, &[4, 3, 3]) * 0.4;
    let out = spec.try_output_size(&[11], &[3]).unwrap();
    let targets = normal(22, &[5, 4, out[0]]);
    let g = example_loss_grad_vmap(&xs, &w, &spec, &targets);
    assert_eq!(g.shape(), &[5, 4, 3, 3]);
    let v = example_loss_vmap(&xs, &w, &spec, &targets);
    for (e, (x, t)) in unstack(&xs, 0).iter().zip(unstack(&targets, 0)).enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let ge = example_loss_grad(x, &w, &spec, &t);
        assert_close(&at(&g), &ge, 1e-12, "per-example dw against one example");
        let vw = |w: &Tensor| example_loss(x, w, &spec, &t);
        let fd = fd_jacobian(&vw, &w).reshape(w.shape());
        assert_close(&ge, &fd, 1e-6, "dw against differences");
        assert_eq!(
            at(&v).item::<f64>(),
            example_loss(x, &w, &spec, &t).item::<f64>()
        );
    }
}

/// Per-example kernels too (both operands batched), grouped: depthwise over 3-D volumes.
#[vmap]
#[grad]
fn depthwise(x: &Tensor, w: &Tensor) -> Tensor {
    let spec = Conv::new(3).groups(2).paddings(&[(1, 0), (0, 1), (1, 1)]);
    x.conv(w, &spec).powi(2).sum()
}

#[test]
fn per_example_kernels_and_groups_match_a_loop_and_differences() {
    let xs = normal(30, &[3, 2, 3, 4, 3]);
    let ws = normal(31, &[3, 4, 1, 2, 2, 2]);
    let (gx, gw) = depthwise_grad_vmap(&xs, &ws);
    for (e, (x, w)) in unstack(&xs, 0).iter().zip(unstack(&ws, 0)).enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let (ex, ew) = depthwise_grad(x, &w);
        assert_close(&at(&gx), &ex, 1e-12, "per-example dx");
        assert_close(&at(&gw), &ew, 1e-12, "per-example dw");
        let f = |v: &[Tensor]| depthwise(&v[0], &v[1]);
        let args = [x.clone(), w.clone()];
        assert_close(
            &ex,
            &fd_element(&f, &args, 0),
            1e-6,
            "dx against differences",
        );
        assert_close(
            &ew,
            &fd_element(&f, &args, 1),
            1e-6,
            "dw against differences",
        );
    }
}

/// A batch of inputs against one kernel inside a per-example function: the example has
/// its own leading axis (`[N, C, L]`), which the kernel's gradient sums over.
#[vmap(in_axes = (0, None))]
#[grad]
fn inner_batch(x: &Tensor, w: &Tensor) -> Tensor {
    x.conv(w, &Conv::new(1).same()).cos().sum()
}

#[test]
fn batch_axes_inside_an_example_are_summed_per_example() {
    let xs = normal(40, &[2, 3, 2, 5]);
    let w = normal(41, &[1, 2, 3]);
    let (gx, gw) = inner_batch_grad_vmap(&xs, &w);
    assert_eq!(gw.shape(), &[2, 1, 2, 3]);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let (ex, ew) = inner_batch_grad(x, &w);
        assert_close(&at(&gx), &ex, 1e-12, "dx");
        assert_close(&at(&gw), &ew, 1e-12, "dw");
        let fd = fd_jacobian(&|v: &Tensor| inner_batch(x, v), &w).reshape(w.shape());
        assert_close(&ew, &fd, 1e-6, "dw against differences");
    }
}

/// Twice differentiated: forward over reverse through the transposed convolutions.
#[hessian(wrt(w))]
#[grad(wrt(w))]
fn energy(w: &Tensor, x: &Tensor) -> Tensor {
    let y = x.conv(w, &Conv::new(2).padding(1).stride(2));
    (y.tanh() * &y).sum()
}

#[test]
fn hessians_go_through_convolutions() {
    let w = normal(50, &[2, 2, 2, 2]) * 0.5;
    let x = normal(51, &[1, 2, 4, 5]);
    let (v, _) = energy_value_and_grad(&w, &x);
    assert_eq!(v.item::<f64>(), energy(&w, &x).item::<f64>());
    let h = energy_hessian(&w, &x);
    assert_eq!(h.shape(), &[2, 2, 2, 2, 2, 2, 2, 2]);
    let fd = fd_jacobian(&|v: &Tensor| energy_grad(v, &x), &w);
    assert_close(&h, &fd, 1e-6, "hessian against differences of the gradient");
    let flat = h.reshape(&[16, 16]);
    assert_close(&flat, &flat.t().contiguous(), 1e-10, "symmetry");
}

/// A convolution's Jacobian in both modes.
#[jacobian(wrt(x))]
fn smooth(x: &Tensor, w: &Tensor) -> Tensor {
    x.conv(w, &Conv::new(1).padding(1)).sigmoid()
}

#[test]
fn jacobians_of_a_convolution_agree_in_both_modes() {
    let x = normal(60, &[2, 6]);
    let w = normal(61, &[3, 2, 3]);
    let fwd = smooth_jacfwd(&x, &w);
    let rev = smooth_jacrev(&x, &w);
    assert_eq!(fwd.shape(), &[3, 6, 2, 6]);
    assert_close(&fwd, &rev, 1e-12, "jacfwd against jacrev");
    let fd = fd_jacobian(&|v: &Tensor| smooth(v, &w), &x);
    assert_close(&fwd, &fd, 1e-6, "against differences");
}

/// A convolutional autoencoder: a strided convolution down, a transposed convolution back
/// up to the input's size (`conv_transpose`, the decoder's upsampling), per example.
#[vmap(in_axes = (0, None, None))]
#[grad]
fn autoencoder(x: &Tensor, down: &Tensor, up: &Tensor) -> Tensor {
    let spec = Conv::new(2).stride(2).padding(1);
    let code = x.conv(down, &spec).tanh();
    let size = [x.shape()[1], x.shape()[2]];
    let back = code.conv_transpose(up, &spec, &size);
    let e = back - x;
    (&e * &e).mean()
}

#[test]
fn transposed_convolutions_differentiate_and_batch() {
    let xs = normal(70, &[3, 2, 5, 6]);
    let down = normal(71, &[4, 2, 3, 3]) * 0.4;
    // conv_transpose's kernel is the convolution's it undoes: [O, C, ..] with O the code's
    let up = normal(72, &[4, 2, 3, 3]) * 0.4;
    let (gx, gd, gu) = autoencoder_grad_vmap(&xs, &down, &up);
    assert_eq!(gd.shape(), &[3, 4, 2, 3, 3]);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let (ex, ed, eu) = autoencoder_grad(x, &down, &up);
        assert_close(&at(&gx), &ex, 1e-12, "per-example dx");
        assert_close(&at(&gd), &ed, 1e-12, "per-example d down");
        assert_close(&at(&gu), &eu, 1e-12, "per-example d up");
        let f = |v: &[Tensor]| autoencoder(&v[0], &v[1], &v[2]);
        let args = [x.clone(), down.clone(), up.clone()];
        for (l, g) in [ex, ed, eu].iter().enumerate() {
            assert_close(g, &fd_element(&f, &args, l), 1e-6, &format!("argument {l}"));
        }
    }
}

/// Twice differentiated through a transposed convolution.
#[hessian(wrt(up))]
#[grad(wrt(up))]
fn decoder_energy(up: &Tensor, code: &Tensor) -> Tensor {
    let y = code.conv_transpose(up, &Conv::new(1).stride(2), &[7]);
    (y.sin() * &y).sum()
}

#[test]
fn hessians_go_through_transposed_convolutions() {
    let up = normal(80, &[3, 2, 3]) * 0.5;
    let code = normal(81, &[2, 3, 3]);
    let (v, _) = decoder_energy_value_and_grad(&up, &code);
    assert_eq!(v.item::<f64>(), decoder_energy(&up, &code).item::<f64>());
    let h = decoder_energy_hessian(&up, &code);
    let fd = fd_jacobian(&|v: &Tensor| decoder_energy_grad(v, &code), &up);
    assert_close(&h, &fd, 1e-6, "hessian against differences of the gradient");
    // forward mode against reverse
    let g = decoder_energy_grad(&up, &code);
    let t = normal(82, up.shape());
    let (_, dt) = decoder_energy_jvp(&up, &code, &t);
    let want = (&g * &t).sum().item::<f64>();
    assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
}

/// Pooling: a convolution, a padded max pool (whose padding is never the maximum), an
/// average pool, and patches reduced by hand, per example.
#[vmap(in_axes = (0, None))]
#[grad]
fn pooled(x: &Tensor, w: &Tensor) -> Tensor {
    let h = x.conv(w, &Conv::new(2).same()).tanh();
    let m = h.max_pool(&[3, 3], &Conv::new(2).stride(2).padding(1));
    let a = h.avg_pool(&[2, 2], &Conv::new(2).stride(2));
    let p = x.unfold(&[2, 1], &Conv::new(2).dilation(2));
    (&m * &m).sum() + a.sin().sum() + (p.max_axis(-1, false) * p.min_axis(-1, false)).mean()
}

#[test]
fn pooling_differentiates_and_batches() {
    let xs = normal(90, &[3, 2, 6, 5]);
    let w = normal(91, &[3, 2, 3, 3]) * 0.4;
    let (gx, gw) = pooled_grad_vmap(&xs, &w);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let (ex, ew) = pooled_grad(x, &w);
        assert_close(&at(&gx), &ex, 1e-12, "per-example dx");
        assert_close(&at(&gw), &ew, 1e-12, "per-example dw");
        let f = |v: &[Tensor]| pooled(&v[0], &v[1]);
        let args = [x.clone(), w.clone()];
        assert_close(
            &ex,
            &fd_element(&f, &args, 0),
            1e-6,
            "dx against differences",
        );
        assert_close(
            &ew,
            &fd_element(&f, &args, 1),
            1e-6,
            "dw against differences",
        );
        // forward mode
        let (tx, tw) = (
            normal(92 + e as u64, x.shape()),
            normal(95 + e as u64, w.shape()),
        );
        let (v, t) = pooled_jvp(x, &w, &tx, &tw);
        // (the transforms' max pool reads its padding as -inf, as the runtime's does)
        assert_eq!(v.item::<f64>(), pooled(x, &w).item::<f64>());
        let want = (&ex * &tx).sum().item::<f64>() + (&ew * &tw).sum().item::<f64>();
        assert!((t.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
}

/// Twice differentiated through patches (forward over reverse: the fold's tangent).
#[hessian]
#[grad]
fn patch_energy(x: &Tensor) -> Tensor {
    let p = x.unfold(&[2, 2], &Conv::new(2).padding(1));
    (p.sin() * p.sum_axis(-1, true)).sum() + x.avg_pool(&[2, 2], &Conv::new(2)).powi(3).sum()
}

#[test]
fn hessians_go_through_patches() {
    let x = normal(100, &[1, 3, 3]);
    let (v, _) = patch_energy_value_and_grad(&x);
    assert_eq!(v.item::<f64>(), patch_energy(&x).item::<f64>());
    let h = patch_energy_hessian(&x);
    let fd = fd_jacobian(&patch_energy_grad, &x);
    assert_close(&h, &fd, 1e-6, "hessian against differences of the gradient");
}

/// One input against a batch of kernels (`in_axes = (None, 0)`): the input's gradient per
/// kernel, the kernels' own; and a batch of no kernels.
#[vmap(in_axes = (None, 0))]
#[grad]
fn per_kernel(x: &Tensor, w: &Tensor) -> Tensor {
    let y = x.conv(w, &Conv::new(2).stride(2).padding(1));
    (y.tanh() * &y).sum()
}

#[test]
fn a_shared_input_against_batched_kernels_matches_a_loop() {
    let x = normal(110, &[2, 3, 5, 4]);
    let ws = normal(111, &[4, 2, 3, 3, 2]) * 0.5;
    let (gx, gw) = per_kernel_grad_vmap(&x, &ws);
    assert_eq!(gx.shape(), &[4, 2, 3, 5, 4]);
    for (e, w) in unstack(&ws, 0).iter().enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let (ex, ew) = per_kernel_grad(&x, w);
        assert_close(&at(&gx), &ex, 1e-12, "per-kernel dx");
        assert_close(&at(&gw), &ew, 1e-12, "per-kernel dw");
        let fd = fd_jacobian(&|v: &Tensor| per_kernel(&x, v), w).reshape(w.shape());
        assert_close(&ew, &fd, 1e-6, "dw against differences");
    }
    let none = Tensor::zeros(&[0, 2, 3, 3, 2], DType::F64);
    let (gx, gw) = per_kernel_grad_vmap(&x, &none);
    assert_eq!(
        (gx.shape(), gw.shape()),
        (&[0, 2, 3, 5, 4][..], &[0, 2, 3, 3, 2][..])
    );
}
