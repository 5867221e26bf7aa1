//! Stencils and scans on grids: `x.roll(shift, axis)` (periodic boundaries), `x.pad(&pads)`
//! / `x.unpad(&pads)` (zero boundaries), `x.pad_with(&pads, mode)` (boundaries copied from
//! the grid: zero-flux, mirrored, periodic) and `x.cumsum(axis)` / `x.cumsum_rev(axis)`
//! (running integrals) under `#[grad]`, forward mode, `#[vmap]` and `#[hessian]`, against
//! central differences and closed forms.

mod common;
use common::tensors::{assert_close, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// The Dirichlet energy of a field on a periodic grid: the squared differences between
/// neighbours along both axes.
#[hessian]
#[grad]
fn ring_energy(x: &Tensor) -> Tensor {
    let dy = x.roll(-1, 0) - x;
    let dx = x.roll(1, -1) - x;
    (&dy * &dy).sum() + (&dx * &dx).sum()
}

#[test]
fn a_periodic_energy_has_the_graph_laplacian_as_its_hessian() {
    let (m, n) = (4, 5);
    let x = normal(1, &[m, n]);
    // the gradient is -2 times the discrete Laplacian of the torus, times 2
    let lap = x.roll(1, 0) + x.roll(-1, 0) + x.roll(1, 1) + x.roll(-1, 1) - &x * 4.0;
    let g = ring_energy_grad(&x);
    assert_close(&g, &(lap * -2.0), 1e-12, "gradient against the Laplacian");
    assert_close(
        &g,
        &fd_jacobian(&ring_energy, &x).reshape(x.shape()),
        1e-6,
        "differences",
    );
    // the Hessian: 2 (4 I - the four shifts), the same at every point
    let h = ring_energy_hessian(&x).reshape(&[m * n, m * n]);
    let mut want = vec![0.0; m * n * m * n];
    for i in 0..m {
        for j in 0..n {
            let at = |a: usize, b: usize| (i * n + j) * m * n + a * n + b;
            want[at(i, j)] += 8.0;
            for (a, b) in [
                ((i + 1) % m, j),
                ((i + m - 1) % m, j),
                (i, (j + 1) % n),
                (i, (j + n - 1) % n),
            ] {
                want[at(a, b)] -= 2.0;
            }
        }
    }
    assert_close(
        &h,
        &Tensor::from_vec(want, &[m * n, m * n]),
        1e-12,
        "hessian",
    );
    let t = normal(2, x.shape());
    let (_, dt) = ring_energy_jvp(&x, &t);
    let want = (&g * &t).sum().item::<f64>();
    assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
}

/// One explicit step of the heat equation with zero boundaries (padding, then a 5-point
/// stencil read through slices), its loss the distance to a target, per example.
#[vmap(in_axes = (0, None, 0))]
#[grad]
fn heat_step(u: &Tensor, k: &Tensor, target: &Tensor) -> Tensor {
    let (m, n) = (u.shape()[0], u.shape()[1]);
    let p = u.pad(&[(1, 1), (1, 1)]);
    let lap = p.slice(0, 0, m).slice(1, 1, n + 1)
        + p.slice(0, 2, m + 2).slice(1, 1, n + 1)
        + p.slice(0, 1, m + 1).slice(1, 0, n)
        + p.slice(0, 1, m + 1).slice(1, 2, n + 2)
        - u * 4.0;
    let next = u + lap * k;
    // the interior only, through unpad
    let e = (next - target).unpad(&[(1, 1), (0, 1)]);
    (e.tanh() * &e).sum()
}

#[test]
fn a_padded_stencil_matches_differences_and_a_loop() {
    let us = normal(10, &[3, 5, 4]);
    let k = Tensor::scalar(0.2f64);
    let targets = normal(11, &[3, 5, 4]);
    let (gu, gk, gt) = heat_step_grad_vmap(&us, &k, &targets);
    assert_eq!(gk.shape(), &[3]);
    for (e, (u, t)) in unstack(&us, 0).iter().zip(unstack(&targets, 0)).enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let (eu, ek, et) = heat_step_grad(u, &k, &t);
        assert_close(&at(&gu), &eu, 1e-12, "per-example du");
        assert_close(&at(&gk), &ek, 1e-12, "per-example dk");
        assert_close(&at(&gt), &et, 1e-12, "per-example dtarget");
        let fd = fd_jacobian(&|v: &Tensor| heat_step(v, &k, &t), u).reshape(u.shape());
        assert_close(&eu, &fd, 1e-6, "du against differences");
        let fd = fd_jacobian(&|v: &Tensor| heat_step(u, v, &t), &k).reshape(&[]);
        assert_close(&ek, &fd, 1e-6, "dk against differences");
        // the padded border and the unpadded rows carry no gradient into the target
        assert_eq!(et.slice(0, 0, 1).abs().sum().item::<f64>(), 0.0);
        assert_eq!(et.slice(1, 3, 4).abs().sum().item::<f64>(), 0.0);
    }
}

/// One explicit heat step whose boundary condition is an argument: zero-flux (`Edge`),
/// mirrored (`Reflect`, `Symmetric`), periodic (`Wrap`) or zero (`Zeros`), per example; a
/// second term reads the step's transposed padding.
#[vmap(in_axes = (0, None, None))]
#[grad]
fn bounded_step(u: &Tensor, k: &Tensor, mode: PadMode) -> Tensor {
    let p = u.pad_with(&[(1, 1), (1, 1)], mode);
    let lap = p.unpad(&[(0, 2), (1, 1)])
        + p.unpad(&[(2, 0), (1, 1)])
        + p.unpad(&[(1, 1), (0, 2)])
        + p.unpad(&[(1, 1), (2, 0)])
        - u * 4.0;
    let next = u + lap * k;
    (next.sin() * &next).sum()
        + next
            .pad_with_transpose(&[(1, 0), (0, 1)], mode)
            .powi(2)
            .sum()
}

#[test]
fn boundary_conditions_by_padding_match_differences_forward_mode_and_a_loop() {
    let us = normal(60, &[3, 5, 4]);
    let k = Tensor::scalar(0.15f64);
    for mode in PadMode::ALL {
        let (gu, gk) = bounded_step_grad_vmap(&us, &k, mode);
        for (e, u) in unstack(&us, 0).iter().enumerate() {
            let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
            let (eu, ek) = bounded_step_grad(u, &k, mode);
            assert_close(&at(&gu), &eu, 1e-12, "per-example du");
            assert_close(&at(&gk), &ek, 1e-12, "per-example dk");
            let fd = fd_jacobian(&|v: &Tensor| bounded_step(v, &k, mode), u).reshape(u.shape());
            assert_close(&eu, &fd, 1e-6, &format!("{mode:?}: du against differences"));
            let fd = fd_jacobian(&|v: &Tensor| bounded_step(u, v, mode), &k).reshape(&[]);
            assert_close(&ek, &fd, 1e-6, &format!("{mode:?}: dk against differences"));
            let tu = normal(70 + e as u64, u.shape());
            let (_, dt) = bounded_step_jvp(u, &k, mode, &tu, &Tensor::scalar(0.0f64));
            let want = (&eu * &tu).sum().item::<f64>();
            assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
        }
    }
    // periodic padding is the torus: the step's Laplacian from rolls
    let u = normal(61, &[5, 4]);
    let lap = u.roll(1, 0) + u.roll(-1, 0) + u.roll(1, 1) + u.roll(-1, 1) - &u * 4.0;
    let next = &u + &(lap * 0.15);
    let first = (next.sin() * &next).sum().item::<f64>();
    let second = next
        .pad_with_transpose(&[(1, 0), (0, 1)], PadMode::Wrap)
        .powi(2)
        .sum()
        .item::<f64>();
    let got = bounded_step(&u, &k, PadMode::Wrap).item::<f64>();
    assert!((got - first - second).abs() < 1e-12 * (1.0 + got.abs()));
}

/// A running integral (trapezoid weights, then a cumulative sum) and a reverse one, per
/// example.
#[vmap(in_axes = (0, None))]
#[grad]
fn running_integrals(f: &Tensor, w: &Tensor) -> Tensor {
    let c = (f * w).cumsum(-1);
    let r = f.exp().cumsum_rev(0);
    (c.sin() * c.cumsum_rev(-1)).sum() + (r.ln() * f).mean()
}

#[test]
fn cumulative_sums_match_differences_forward_mode_and_a_loop() {
    let fs = normal(20, &[3, 4, 6]) * 0.5;
    let w = normal(21, &[6]) * 0.5;
    let (gf, gw) = running_integrals_grad_vmap(&fs, &w);
    for (e, f) in unstack(&fs, 0).iter().enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let (ef, ew) = running_integrals_grad(f, &w);
        assert_close(&at(&gf), &ef, 1e-12, "per-example df");
        assert_close(&at(&gw), &ew, 1e-12, "per-example dw");
        let fd = fd_jacobian(&|v: &Tensor| running_integrals(v, &w), f).reshape(f.shape());
        assert_close(&ef, &fd, 1e-6, "df against differences");
        let fd = fd_jacobian(&|v: &Tensor| running_integrals(f, v), &w).reshape(w.shape());
        assert_close(&ew, &fd, 1e-6, "dw against differences");
        let (tf, tw) = (
            normal(30 + e as u64, f.shape()),
            normal(40 + e as u64, w.shape()),
        );
        let (v, dt) = running_integrals_jvp(f, &w, &tf, &tw);
        assert_eq!(v.item::<f64>(), running_integrals(f, &w).item::<f64>());
        let want = (&ef * &tf).sum().item::<f64>() + (&ew * &tw).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
    // the closed form of the simplest: d/dx_j sum_i cumsum(x)_i = n - j
    let x = normal(50, &[5]);
    let (v, g) = plain_cumsum_value_and_grad(&x);
    assert_eq!(v.item::<f64>(), plain_cumsum(&x).item::<f64>());
    assert_close(
        &g,
        &Tensor::from_vec(vec![5.0, 4.0, 3.0, 2.0, 1.0], &[5]),
        0.0,
        "n - j",
    );
}

#[grad]
fn plain_cumsum(x: &Tensor) -> Tensor {
    x.cumsum(0).sum()
}

/// Twice differentiated through cumulative sums.
#[hessian]
#[grad]
fn scan_energy(x: &Tensor) -> Tensor {
    (x.cumsum(0).powi(3) + x.cumsum_rev(1).sin()).sum()
}

#[test]
fn hessians_go_through_cumulative_sums() {
    let x = normal(60, &[3, 2]);
    let (v, _) = scan_energy_value_and_grad(&x);
    assert_eq!(v.item::<f64>(), scan_energy(&x).item::<f64>());
    let h = scan_energy_hessian(&x);
    let fd = fd_jacobian(&scan_energy_grad, &x);
    assert_close(&h, &fd, 1e-6, "hessian against differences of the gradient");
}
