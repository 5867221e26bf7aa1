//! The pseudo-inverse and least squares under the transforms: gradients through `pinv`
//! (tall, wide and square matrices of full rank) against central differences and forward
//! mode, second derivatives against differences of the gradient, and a regression fitted
//! per example by `lstsq` against a loop and the normal equations.

mod common;
use common::tensors::{assert_close, example, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

#[grad]
fn through_pinv(a: &Tensor, w: &Tensor) -> Tensor {
    (a.pinv().tanh() * w).sum()
}

#[test]
fn pinv_gradients_match_differences_and_forward_mode() {
    for (k, shape) in [[5usize, 3], [3, 5], [4, 4]].iter().enumerate() {
        let a = normal(1 + k as u64, shape);
        let w = normal(10 + k as u64, &[shape[1], shape[0]]);
        let (ga, gw) = through_pinv_grad(&a, &w);
        let fd = fd_jacobian(&|m: &Tensor| through_pinv(m, &w), &a).reshape(a.shape());
        assert_close(&ga, &fd, 1e-6, &format!("da {shape:?}"));
        let fd = fd_jacobian(&|m: &Tensor| through_pinv(&a, m), &w).reshape(w.shape());
        assert_close(&gw, &fd, 1e-6, &format!("dw {shape:?}"));
        let ta = normal(20 + k as u64, shape);
        let (v, dt) = through_pinv_jvp(&a, &w, &ta, &w.zeros_like());
        assert_eq!(v.item::<f64>(), through_pinv(&a, &w).item::<f64>());
        let want = (&ga * &ta).sum().item::<f64>();
        assert!(
            (dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()),
            "{shape:?}"
        );
    }
}

#[hessian(wrt(a))]
fn pinv_curvature(a: &Tensor, w: &Tensor) -> Tensor {
    (a.pinv() * w).sum() + a.pinv().square().sum()
}

/// The same function, for its gradient.
#[grad(wrt(a))]
fn pinv_curvature_again(a: &Tensor, w: &Tensor) -> Tensor {
    (a.pinv() * w).sum() + a.pinv().square().sum()
}

#[test]
fn second_derivatives_through_pinv_match_differences_of_the_gradient() {
    let a = normal(31, &[4, 3]);
    let w = normal(32, &[3, 4]);
    let h = pinv_curvature_hessian(&a, &w).reshape(&[12, 12]);
    let fd = fd_jacobian(&|m: &Tensor| pinv_curvature_again_grad(m, &w), &a).reshape(&[12, 12]);
    assert_close(&h, &fd, 1e-6, "hessian");
    assert_close(&h, &h.t().contiguous(), 1e-10, "symmetric");
    let g = pinv_curvature_again_grad(&a, &w);
    let fd = fd_jacobian(&|m: &Tensor| pinv_curvature_again(m, &w), &a).reshape(a.shape());
    assert_close(&g, &fd, 1e-6, "gradient");
    let _ = pinv_curvature;
}

/// A ridge-free regression per example: the least-squares coefficients of `y` on the
/// columns of `a`, their residual and size.
#[vmap(in_axes = (None, 0))]
#[grad]
fn regression(a: &Tensor, y: &Tensor) -> Tensor {
    let x = a.lstsq(y);
    (a.matmul(&x) - y).square().sum() + (x.tanh() * 0.5).sum()
}

#[test]
fn least_squares_per_example_match_a_loop_differences_and_the_normal_equations() {
    let a = normal(41, &[6, 3]);
    let ys = normal(42, &[4, 6]);
    let (ga, gy) = regression_grad_vmap(&a, &ys);
    let mut total = a.zeros_like();
    for (e, y) in unstack(&ys, 0).iter().enumerate() {
        let (ea, ey) = regression_grad(&a, y);
        total = &total + &ea;
        assert_close(&example(&gy, e), &ey, 1e-12, "per-example dy");
        let fd = fd_jacobian(&|m: &Tensor| regression(m, y), &a).reshape(a.shape());
        assert_close(&ea, &fd, 1e-6, "da against differences");
        let fd = fd_jacobian(&|v: &Tensor| regression(&a, v), y).reshape(y.shape());
        assert_close(&ey, &fd, 1e-6, "dy against differences");
        // the normal equations' solution
        let normal_eq = a.mt().matmul(&a).solve(&a.mt().matmul(y));
        assert_close(&a.lstsq(y), &normal_eq, 1e-12, "lstsq");
    }
    assert_close(
        &ga.sum_axis(0, false),
        &total,
        1e-12,
        "summed per-example da",
    );
}
