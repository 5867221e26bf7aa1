//! The matrix exponential under the transforms: gradients against central differences and
//! forward mode, per example against a loop (a linear ODE's propagator `e^(tA) x0`), the
//! Hessian against differences of the gradient, and `expm_frechet` differentiated itself.

mod common;
use common::tensors::{assert_close, example, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// A linear ODE `x' = A x` integrated exactly to time `t` from `x0`, and a penalty on the
/// propagator.
#[vmap(in_axes = (None, 0, 0))]
#[grad]
fn propagate(a: &Tensor, x0: &Tensor, t: f64) -> Tensor {
    let p = (a * t).expm();
    let x = p.matmul(x0);
    (x.tanh() * x0).sum() + p.trace() * 0.1
}

#[test]
fn gradients_through_expm_match_differences_forward_mode_and_a_loop() {
    let a = normal(1, &[4, 4]) * 0.8;
    let x0s = normal(2, &[3, 4, 1]);
    let ts = Tensor::from_vec(vec![0.3, 1.0, 3.0], &[3]);
    let (ga, gx, gt) = propagate_grad_vmap(&a, &x0s, &ts);
    let tv = ts.to_vec::<f64>();
    let mut total = a.zeros_like();
    for (e, x0) in unstack(&x0s, 0).iter().enumerate() {
        let (ea, ex, et) = propagate_grad(&a, x0, tv[e]);
        total = &total + &ea;
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx0");
        assert!((gt.to_vec::<f64>()[e] - et).abs() < 1e-12 * (1.0 + et.abs()));
        let fd = fd_jacobian(&|m: &Tensor| propagate(m, x0, tv[e]), &a).reshape(a.shape());
        assert_close(&ea, &fd, 1e-6, "da against differences");
        let fd = fd_jacobian(&|v: &Tensor| propagate(&a, v, tv[e]), x0).reshape(x0.shape());
        assert_close(&ex, &fd, 1e-6, "dx0 against differences");
        let h = 1e-6;
        let ft = (propagate(&a, x0, tv[e] + h).item::<f64>()
            - propagate(&a, x0, tv[e] - h).item::<f64>())
            / (2.0 * h);
        assert!(
            (et - ft).abs() < 1e-6 * (1.0 + ft.abs()),
            "dt {et} against {ft}"
        );
        let (ta, tx) = (
            normal(10 + e as u64, a.shape()),
            normal(20 + e as u64, x0.shape()),
        );
        let (v, dt) = propagate_jvp(&a, x0, tv[e], &ta, &tx, 0.5);
        assert_eq!(v.item::<f64>(), propagate(&a, x0, tv[e]).item::<f64>());
        let want = (&ea * &ta).sum().item::<f64>() + (&ex * &tx).sum().item::<f64>() + et * 0.5;
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
    // the shared matrix: per-example gradients stacked
    assert_close(
        &ga.sum_axis(0, false),
        &total,
        1e-12,
        "summed per-example da",
    );
}

#[grad]
fn energy(a: &Tensor, w: &Tensor) -> Tensor {
    (a.expm() * w).sum()
}

#[hessian(wrt(a))]
fn curvature(a: &Tensor, w: &Tensor) -> Tensor {
    (a.expm() * w).sum() + a.expm_frechet(w).square().sum() * 0.1
}

/// The same function, for its gradient.
#[grad(wrt(a))]
fn curvature_again(a: &Tensor, w: &Tensor) -> Tensor {
    (a.expm() * w).sum() + a.expm_frechet(w).square().sum() * 0.1
}

#[test]
fn second_derivatives_through_expm_match_differences_of_the_gradient() {
    for scale in [0.7, 4.0] {
        let a = normal(3, &[3, 3]) * scale;
        let w = normal(4, &[3, 3]);
        let h = curvature_hessian(&a, &w);
        assert_eq!(h.shape(), &[3, 3, 3, 3]);
        // forward over reverse against differences of the reverse-mode gradient (itself
        // checked against differences of the function)
        let g = curvature_again_grad(&a, &w);
        let fd = fd_jacobian(&|m: &Tensor| curvature_again(m, &w), &a).reshape(a.shape());
        assert_close(&g, &fd, 1e-6, "gradient against differences");
        let fd = fd_jacobian(&|m: &Tensor| curvature_again_grad(m, &w), &a);
        let hm = h.reshape(&[9, 9]);
        assert_close(
            &hm,
            &fd.reshape(&[9, 9]),
            1e-6,
            "hessian against differences",
        );
        assert_close(&hm, &hm.t().contiguous(), 1e-10, "symmetric");
    }
    // the first-order gradient of <expm(A), W> is L(Aᵀ, W)
    let a = normal(7, &[3, 3]);
    let w = normal(8, &[3, 3]);
    let (ga, _) = energy_grad(&a, &w);
    assert_close(
        &ga,
        &a.mt().expm_frechet(&w),
        1e-14,
        "gradient of <expm(A), W>",
    );
    assert_eq!(
        energy(&a, &w).item::<f64>(),
        (a.expm() * &w).sum().item::<f64>()
    );
    let _ = curvature;
}

#[grad]
fn both(a: &Tensor, e: &Tensor) -> Tensor {
    a.expm_frechet(e).tanh().sum() + a.expm().sum()
}

#[test]
fn expm_frechet_is_differentiable_in_both_arguments() {
    for scale in [0.2, 3.0] {
        let a = normal(5, &[3, 3]) * scale;
        let e = normal(6, &[3, 3]);
        let (ga, ge) = both_grad(&a, &e);
        let fd = fd_jacobian(&|m: &Tensor| both(m, &e), &a).reshape(a.shape());
        assert_close(&ga, &fd, 1e-6, "da");
        let fd = fd_jacobian(&|m: &Tensor| both(&a, m), &e).reshape(e.shape());
        assert_close(&ge, &fd, 1e-6, "de");
        let (v, _) = both_value_and_grad(&a, &e);
        assert_eq!(
            v.item::<f64>().to_bits(),
            both(&a, &e).item::<f64>().to_bits()
        );
    }
}
