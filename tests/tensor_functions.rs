//! The elementwise functions of tensors beyond arithmetic (inverse trigonometric and
//! hyperbolic functions, `exp2`, `log2`, `log10`, `cbrt`, `erf`, `atan2`, and the
//! rounding functions, whose derivative is zero) under `#[grad]` (against central
//! differences in f64), forward mode, `#[vmap]` (against a loop) and twice (a Hessian),
//! and their values against Rust's `f64` functions.

mod common;
use common::tensors::{assert_close, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// Every function, each on arguments inside its domain.
#[vmap]
#[grad]
fn every_function(x: &Tensor) -> Tensor {
    let u = x.tanh() * 0.9;
    let p = x * x + 1.5;
    let smooth = u.asin()
        + u.acos() * 0.5
        + x.atan()
        + (x * 0.5).sinh()
        + (x * 0.3).cosh()
        + x.asinh()
        + p.acosh()
        + u.atanh()
        + (x * 0.5).exp2()
        + p.log2()
        + p.log10()
        + p.cbrt()
        + x.erf()
        + x.atan2(&p)
        + p.atan2(&(x * 0.5));
    let steps = x.floor() + x.ceil() * 2.0 + x.round() * 3.0 + x.trunc() * 4.0;
    (smooth * (x * 0.1).cos()).sum() + (steps * x).sum()
}

/// The same in plain `f64` arithmetic, for the values.
fn every_function_f64(x: &[f64]) -> f64 {
    x.iter()
        .map(|&x| {
            let u = x.tanh() * 0.9;
            let p = x * x + 1.5;
            let smooth = u.asin()
                + u.acos() * 0.5
                + x.atan()
                + (x * 0.5).sinh()
                + (x * 0.3).cosh()
                + x.asinh()
                + p.acosh()
                + u.atanh()
                + (x * 0.5).exp2()
                + p.log2()
                + p.log10()
                + p.cbrt()
                + erf(x)
                + x.atan2(p)
                + p.atan2(x * 0.5);
            let steps = x.floor() + x.ceil() * 2.0 + x.round() * 3.0 + x.trunc() * 4.0;
            smooth * (x * 0.1).cos() + steps * x
        })
        .sum()
}

/// `erf` by its Maclaurin series (enough terms for |x| < 4 in f64).
fn erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

#[test]
fn every_function_matches_f64_differences_forward_mode_and_a_loop() {
    let xs = normal(1, &[3, 7]) * 1.7;
    let g = every_function_grad_vmap(&xs);
    let v = every_function_vmap(&xs);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let value = every_function(x).item::<f64>();
        let want = every_function_f64(&x.to_vec::<f64>());
        assert!(
            (value - want).abs() < 1e-12 * want.abs().max(1.0),
            "{value} vs {want}"
        );
        assert!((at(&v).item::<f64>() - value).abs() < 1e-12 * value.abs().max(1.0));
        let ge = every_function_grad(x);
        assert_close(
            &at(&g),
            &ge,
            1e-12,
            "per-example gradient against one example",
        );
        let fd = fd_jacobian(&every_function, x).reshape(x.shape());
        assert_close(&ge, &fd, 1e-6, "gradient against differences");
        let t = normal(10 + e as u64, x.shape());
        let (v, dt) = every_function_jvp(x, &t);
        assert_eq!(v.item::<f64>(), value);
        let want = (&ge * &t).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
}

/// Twice differentiated: the second derivatives of the new functions.
#[hessian]
#[grad]
fn curvature(x: &Tensor) -> Tensor {
    let u = x.tanh() * 0.8;
    (u.asin() * x.erf()
        + u.atanh().powi(2)
        + x.asinh() * x.atan2(&(x * x + 1.0))
        + (x * x + 2.0).log10() * (x * 0.5).sinh()
        + (x * x + 1.2).acosh().cbrt())
    .sum()
}

#[test]
fn hessians_of_the_new_functions_match_differences_of_the_gradient() {
    let x = normal(20, &[5]);
    let (v, _) = curvature_value_and_grad(&x);
    assert_eq!(v.item::<f64>(), curvature(&x).item::<f64>());
    let h = curvature_hessian(&x);
    let fd = fd_jacobian(&curvature_grad, &x);
    assert_close(&h, &fd, 1e-6, "hessian against differences of the gradient");
}
