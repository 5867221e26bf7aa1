//! Constants passed to other `#[grad]` functions, arguments whose types the macro cannot
//! see: `spring(a, b, K, REST)` with float constants, `wiggle(x, STEPS, PI)` with an integer
//! one, `wiggle(x, 2, ..)`, `affine(cfg, x)` with a configuration that is not
//! `Differentiable`. A call passes a tangent and takes a gradient for every argument
//! (macros/src/slots.rs). Checked against central finite differences and the other mode, in
//! reverse, forward and forward-over-reverse mode, batched and in Jacobians.

#![allow(clippy::needless_range_loop)] // index loops are the code under test

mod common;

use common::tensors::normal;
use common::{AD_RTOL, FD_RTOL, assert_all_close, fd_grad};
use ferrax::prelude::*;

const K: f64 = 40.0;
const REST: f64 = 0.8;
const STEPS: usize = 3;

#[grad]
fn spring(a: f64, b: f64, k: f64, rest: f64) -> f64 {
    let d = b - a - rest;
    0.5 * k * d * d
}

#[grad]
fn wiggle(x: f64, n: usize, c: f64) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        s += (x * c + i as f64).sin();
    }
    s
}

/// A configuration, not `Differentiable`.
struct Cfg {
    scale: f64,
    bias: f64,
}

#[grad(wrt(x))]
fn affine(cfg: &Cfg, x: f64) -> f64 {
    cfg.scale * x * x + cfg.bias
}

/// Constants in every position: float and integer constants, an integer literal, a path
/// (`std::f64::consts::PI`), a constant's arithmetic (`K / 100.0`), a constant in the active
/// position of a callee (`wiggle(REST, ..)`), and a configuration passed on.
#[hessian(wrt(x))]
#[grad(wrt(x))]
fn chain(x: &[f64], cfg: &Cfg) -> f64 {
    let mut e = 0.0;
    for i in 0..x.len() - 1 {
        e += spring(x[i], x[i + 1], K, REST);
    }
    e + wiggle(x[0], STEPS, std::f64::consts::PI)
        + wiggle(x[1], 2, K / 100.0)
        + affine(cfg, x[2]) * wiggle(REST, STEPS, x[0])
}

const CFG: Cfg = Cfg {
    scale: 1.5,
    bias: -0.25,
};
const X: [f64; 4] = [0.3, 1.2, 1.7, 2.9];

#[test]
fn constants_passed_on_match_finite_differences() {
    let g = chain_grad(&X, &CFG);
    let want = fd_grad(&|x| chain(x, &CFG), &X);
    assert_all_close(&g, &want, FD_RTOL, "chain_grad");
}

#[test]
fn constants_passed_on_forward_matches_reverse() {
    let g = chain_grad(&X, &CFG);
    for k in 0..X.len() {
        let mut dx = [0.0; 4];
        dx[k] = 1.0;
        let (v, t) = chain_jvp(&X, &CFG, &dx);
        assert_eq!(v, chain(&X, &CFG));
        assert_all_close(&[t], &[g[k]], AD_RTOL, "chain_jvp");
    }
}

#[test]
fn constants_passed_on_hessian_matches_differences_of_the_gradient() {
    let h = chain_hessian(&X, &CFG);
    for i in 0..X.len() {
        let want = fd_grad(&|x| chain_grad(x, &CFG)[i], &X);
        assert_all_close(&h[i], &want, FD_RTOL, "chain_hessian row");
    }
}

/// A tensor function with an integer and a float parameter, called with constants.
#[vmap(in_axes = (0, None, None, None))]
#[grad]
fn layer(x: &Tensor, w: &Tensor, power: usize, scale: f64) -> Tensor {
    let h = (x.matmul(w) * scale).tanh();
    h.powi(power as i32) + h
}

const SCALE: f64 = 0.7;

#[grad(wrt(w))]
fn loss(w: &Tensor, x: &Tensor) -> Tensor {
    layer(x, w, STEPS, SCALE).powi(2).sum()
}

/// Batched: the callee's batched counterpart takes its float parameters batched, so a float
/// constant is lifted to the batch (the macro cannot see that `SCALE` is a float; rustc's
/// method resolution on its type decides, `b::OpaqueArg`), and an integer one passes as it is.
#[vmap(in_axes = (None, 0))]
#[grad(wrt(w))]
fn batched_loss(w: &Tensor, x: &Tensor) -> Tensor {
    layer(x, w, STEPS, SCALE).powi(2).sum()
}

#[test]
fn constants_passed_to_a_tensor_function_match_finite_differences() {
    let (w, x) = (normal(1, &[3, 2]), normal(2, &[3]));
    let g = loss_grad(&w, &x).to_vec::<f64>();
    let want = fd_grad(
        &|p| loss(&Tensor::from_vec(p.to_vec(), &[3, 2]), &x).item::<f64>(),
        &w.to_vec::<f64>(),
    );
    assert_all_close(&g, &want, FD_RTOL, "loss_grad");
}

#[test]
fn constants_passed_on_per_example_gradients_match_a_loop() {
    let (w, xs) = (normal(3, &[3, 2]), normal(4, &[5, 3]));
    let g = batched_loss_grad_vmap(&w, &xs);
    assert_eq!(g.shape(), &[5, 3, 2]);
    let g = g.to_vec::<f64>();
    for b in 0..5 {
        let x = Tensor::from_vec(xs.to_vec::<f64>()[3 * b..3 * b + 3].to_vec(), &[3]);
        assert_eq!(
            batched_loss(&w, &x).item::<f64>(),
            loss(&w, &x).item::<f64>()
        );
        let want = loss_grad(&w, &x).to_vec::<f64>();
        assert_all_close(&g[6 * b..6 * b + 6], &want, AD_RTOL, "per-example gradient");
    }
}

/// A Jacobian through the call (the callee's batched forward mode).
#[jacobian]
fn features(x: &Tensor) -> Tensor {
    layer(x, x, STEPS, SCALE)
}

#[test]
fn constants_passed_on_jacobians_agree() {
    let x = normal(5, &[2, 2]);
    let (jf, jr) = (features_jacfwd(&x), features_jacrev(&x));
    assert_eq!(jf.shape(), &[2, 2, 2, 2]);
    assert_all_close(
        &jf.to_vec::<f64>(),
        &jr.to_vec::<f64>(),
        AD_RTOL,
        "jacfwd vs jacrev",
    );
    let (v, n) = (x.to_vec::<f64>(), 4);
    for o in 0..n {
        let want = fd_grad(
            &|p| features(&Tensor::from_vec(p.to_vec(), &[2, 2])).to_vec::<f64>()[o],
            &v,
        );
        assert_all_close(
            &jf.to_vec::<f64>()[o * n..o * n + n],
            &want,
            FD_RTOL,
            "jacfwd row",
        );
    }
}

/// `x^n / n`, with its derivative given by hand; `n` is an integer parameter.
#[custom_vjp(scaled_power_bwd)]
fn scaled_power(x: f64, n: u32) -> f64 {
    x.powi(n as i32) / n as f64
}

fn scaled_power_bwd(x: f64, n: u32, _out: &f64, ct: f64) -> f64 {
    ct * x.powi(n as i32 - 1)
}

const POWER: u32 = 3;

#[grad]
fn powers(x: f64) -> f64 {
    scaled_power(x, POWER) + scaled_power(x * K / 40.0, 2)
}

#[test]
fn constants_passed_to_a_custom_rule_with_an_integer_parameter() {
    for x in [-1.3, 0.4, 2.0] {
        let g = powers_grad(x);
        let want = fd_grad(&|v| powers(v[0]), &[x]);
        assert_all_close(&[g], &want, FD_RTOL, "powers_grad");
        let (v, t) = powers_jvp(x, 1.0);
        assert_eq!(v, powers(x));
        assert_all_close(&[t], &[g], AD_RTOL, "powers_jvp");
    }
}

/// A configuration of a tensor function: not `Differentiable`, passed by reference.
struct Gate {
    scale: f64,
    power: i32,
}

const GATE: Gate = Gate {
    scale: 1.5,
    power: 3,
};
const BIAS: f64 = 0.25;
const BIAS32: f32 = 0.25;

/// An integer field as an exponent (`powi(cfg.power)`), a float field as a factor.
#[vmap(in_axes = (0, None, None))]
#[grad(wrt(x))]
fn gate(x: &Tensor, cfg: &Gate, bias: f64) -> Tensor {
    (x * cfg.scale + bias).powi(cfg.power).sum()
}

/// Calls `gate` with `&GATE`: `gate`'s pullback borrows its configuration, which here is
/// a local of the caller, so the caller's reverse sweep calls `gate`'s vjp again rather
/// than keep that pullback; batched, `&GATE` passes as it is and `BIAS` is lifted.
#[vmap(in_axes = (0))]
#[grad]
fn gated(x: &Tensor) -> Tensor {
    gate(x, &GATE, BIAS) * x.sum()
}

#[jacobian]
fn gated_features(x: &Tensor) -> Tensor {
    gate(x, &GATE, BIAS) * x
}

#[test]
fn a_configuration_passed_by_reference_matches_finite_differences() {
    let x = normal(6, &[3]);
    let g = gated_grad(&x).to_vec::<f64>();
    let want = fd_grad(
        &|p| gated(&Tensor::from_vec(p.to_vec(), &[3])).item::<f64>(),
        &x.to_vec::<f64>(),
    );
    assert_all_close(&g, &want, FD_RTOL, "gated_grad");
    let jr = gated_features_jacrev(&x).to_vec::<f64>();
    let jf = gated_features_jacfwd(&x).to_vec::<f64>();
    assert_all_close(&jf, &jr, AD_RTOL, "jacfwd vs jacrev");
    for o in 0..3 {
        let want = fd_grad(
            &|p| gated_features(&Tensor::from_vec(p.to_vec(), &[3])).to_vec::<f64>()[o],
            &x.to_vec::<f64>(),
        );
        assert_all_close(&jf[3 * o..3 * o + 3], &want, FD_RTOL, "jacfwd row");
    }
}

#[test]
fn a_configuration_passed_by_reference_batches_like_a_loop() {
    let xs = normal(7, &[4, 3]);
    let (v, g) = (gated_vmap(&xs).to_vec::<f64>(), gated_grad_vmap(&xs));
    assert_eq!(g.shape(), &[4, 3]);
    let g = g.to_vec::<f64>();
    for b in 0..4 {
        let x = Tensor::from_vec(xs.to_vec::<f64>()[3 * b..3 * b + 3].to_vec(), &[3]);
        assert_all_close(&[v[b]], &[gated(&x).item::<f64>()], AD_RTOL, "gated_vmap");
        let want = gated_grad(&x).to_vec::<f64>();
        assert_all_close(&g[3 * b..3 * b + 3], &want, AD_RTOL, "per-example gradient");
    }
}

/// An `f32` constant lifted into an `f32` batch.
#[vmap]
fn shifted(x: &Tensor, b: f32) -> Tensor {
    (x + b).tanh()
}

#[vmap]
fn shifted_by_constant(x: &Tensor) -> Tensor {
    shifted(x, BIAS32) * 2.0
}

#[test]
fn an_f32_constant_passed_to_a_batched_call_is_lifted_in_f32() {
    let xs = Tensor::normal(Key::new(8), &[4, 3], DType::F32);
    let ys = shifted_by_constant_vmap(&xs);
    assert_eq!((ys.shape(), ys.dtype()), (&[4usize, 3][..], DType::F32));
    let (xv, yv) = (xs.to_vec::<f32>(), ys.to_vec::<f32>());
    for b in 0..4 {
        let x = Tensor::from_vec(xv[3 * b..3 * b + 3].to_vec(), &[3]);
        let (one, two) = (shifted_by_constant(&x), shifted(&x, BIAS32) * 2.0);
        let (one, two) = (one.to_vec::<f32>(), two.to_vec::<f32>());
        for k in 0..3 {
            let (x, y) = (xv[3 * b + k], yv[3 * b + k]);
            assert!((one[k] - y).abs() < 1e-6, "{x}: {y} vs {}", one[k]);
            assert!((two[k] - y).abs() < 1e-6, "{x}: {y} vs {}", two[k]);
        }
    }
}

/// A configuration built in the function (a struct literal of constants and inactive
/// locals) and passed on by reference, in reverse, forward-over-reverse and batched mode.
#[hessian(wrt(x))]
#[grad(wrt(x))]
fn built_config(x: &[f64], power: i32) -> f64 {
    let n = x.len() as f64;
    let cfg = Cfg {
        scale: n / 2.0,
        bias: BIAS,
    };
    let mut e = 0.0;
    for i in 0..x.len() {
        e += affine(&cfg, x[i]).powi(power);
    }
    e * cfg.scale
}

#[vmap(in_axes = (0))]
#[grad]
fn gated_built(x: &Tensor) -> Tensor {
    let power = 2;
    gate(x, &Gate { scale: 0.5, power }, BIAS) * x.sum()
}

#[test]
fn a_configuration_built_in_the_function_matches_finite_differences() {
    let x = [0.3, -0.4, 0.9];
    let g = built_config_grad(&x, 3);
    let want = fd_grad(&|v| built_config(v, 3), &x);
    assert_all_close(&g, &want, FD_RTOL, "built_config_grad");
    let h = built_config_hessian(&x, 3);
    for (i, row) in h.iter().enumerate() {
        let want = fd_grad(&|v| built_config_grad(v, 3)[i], &x);
        assert_all_close(row, &want, FD_RTOL, "built_config_hessian row");
    }
    let xs = normal(9, &[4, 3]);
    let gs = gated_built_grad_vmap(&xs).to_vec::<f64>();
    for b in 0..4 {
        let x = Tensor::from_vec(xs.to_vec::<f64>()[3 * b..3 * b + 3].to_vec(), &[3]);
        let g = gated_built_grad(&x).to_vec::<f64>();
        assert_all_close(&gs[3 * b..3 * b + 3], &g, AD_RTOL, "per-example gradient");
        let want = fd_grad(
            &|p| gated_built(&Tensor::from_vec(p.to_vec(), &[3])).item::<f64>(),
            &x.to_vec::<f64>(),
        );
        assert_all_close(&g, &want, FD_RTOL, "gated_built_grad");
    }
}
