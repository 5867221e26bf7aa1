//! The checker itself can fail: wrong derivatives in any mode are caught, kinks are
//! detected, and the finite differences are accurate far below the 1e-6 tolerance.

use crate::common::*;

fn f(p: &[f64]) -> f64 {
    p[0].sin() * p[1]
}

fn g(p: &[f64]) -> (f64, f64) {
    (p[0].cos() * p[1], p[0].sin())
}

fn jvp(p: &[f64], d: &[f64]) -> (f64, f64) {
    let (a, b) = g(p);
    (f(p), a * d[0] + b * d[1])
}

fn vjp(p: &[f64], c: f64) -> (f64, (f64, f64)) {
    let (a, b) = g(p);
    (f(p), (c * a, c * b))
}

fn vg(p: &[f64]) -> (f64, (f64, f64)) {
    (f(p), g(p))
}

const PTS: &[&[f64]] = &[&[0.3, 1.5]];

#[test]
fn consistent_derivatives_pass() {
    check("sin(x) y", PTS, f, g, jvp, vjp, vg);
}

#[test]
#[should_panic(expected = "finite differences")]
fn a_wrong_gradient_is_caught() {
    // 1e-5 relative off in one component.
    let bad = |p: &[f64]| {
        let (a, b) = g(p);
        (a * (1.0 + 1e-5), b)
    };
    check("sin(x) y", PTS, f, bad, jvp, vjp, vg);
}

#[test]
#[should_panic(expected = "f_jvp along")]
fn a_wrong_jvp_is_caught() {
    let bad = |p: &[f64], d: &[f64]| {
        let (v, t) = jvp(p, d);
        (v, t + 1e-7 * d[1])
    };
    check("sin(x) y", PTS, f, g, bad, vjp, vg);
}

#[test]
#[should_panic(expected = "f_vjp pullback")]
fn a_pullback_that_ignores_its_cotangent_is_caught() {
    let bad = |p: &[f64], _c: f64| (f(p), g(p));
    check("sin(x) y", PTS, f, g, jvp, bad, vg);
}

#[test]
#[should_panic(expected = "f_value_and_grad value")]
fn a_wrong_value_is_caught() {
    let bad = |p: &[f64]| (f(p) + 1e-9, g(p));
    check("sin(x) y", PTS, f, g, jvp, vjp, bad);
}

#[test]
fn kinks_inside_the_stencil_are_detected() {
    let abs = |p: &[f64]| p[0].abs();
    assert!(fd_is_unreliable(&abs, &[1e-4]));
    assert!(fd_is_unreliable(&abs, &[-1e-3]));
    assert!(!fd_is_unreliable(&abs, &[0.5]));
    let step = |p: &[f64]| if p[0] > 1.0 { p[0] } else { 2.0 * p[0] };
    assert!(fd_is_unreliable(&step, &[1.0005]));
    assert!(!fd_is_unreliable(&step, &[1.5]));
}

#[test]
fn finite_differences_are_accurate_to_1e_10() {
    for x in [-3.0, -0.2, 0.0, 0.7, 4.0, 150.0] {
        let (d, err) = fd_partial(&|p: &[f64]| (0.5 * p[0]).sin() * p[0].exp2(), &[x], 0);
        let exact = (0.5 * (0.5 * x).cos() + (0.5 * x).sin() * std::f64::consts::LN_2) * x.exp2();
        assert!(
            rel_err(d, exact) < 1e-10 || (d - exact).abs() < 1e-12,
            "at {x}: {d} vs {exact} (error estimate {err:e})"
        );
    }
}
