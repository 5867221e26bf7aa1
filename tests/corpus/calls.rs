//! Calls: to other `#[grad]` functions (through their `_jvp` / `_vjp`), chains and
//! calls inside loops and branches, calls with slice arguments, calls to plain
//! functions whose inputs are inactive, and `stop_gradient`.

use crate::common::*;
use ferrax::prelude::*;

#[grad]
fn square(x: f64) -> f64 {
    x * x
}

#[grad]
fn smooth_step(x: f64, k: f64) -> f64 {
    let e = (-k * x).exp();
    1.0 / (1.0 + e)
}

#[grad]
fn uses_helpers(x: f64, y: f64) -> f64 {
    square(x) + square(x * y) * smooth_step(y, 2.0) + smooth_step(x, y)
}

#[test]
fn calls_to_other_grad_functions_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, 1.5], &[-1.0, 0.25], &[2.0, -0.75]];
    check(
        "uses_helpers",
        pts,
        |p| uses_helpers(p[0], p[1]),
        |p| uses_helpers_grad(p[0], p[1]),
        |p, d| uses_helpers_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = uses_helpers_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| uses_helpers_value_and_grad(p[0], p[1]),
    );
    closed_form(
        "uses_helpers",
        pts,
        |p| uses_helpers_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            let s = |z: f64| 1.0 / (1.0 + (-z).exp());
            let ds = |z: f64| s(z) * (1.0 - s(z));
            let (sy, dsy) = (s(2.0 * y), 2.0 * ds(2.0 * y));
            let dsxy = ds(x * y);
            (
                2.0 * x + 2.0 * x * y * y * sy + y * dsxy,
                2.0 * x * x * y * sy + x * x * y * y * dsy + x * dsxy,
            )
        },
    );
}

#[grad]
fn chain_c(x: f64) -> f64 {
    x.sin() * 2.0
}

#[grad]
fn chain_b(x: f64, y: f64) -> f64 {
    chain_c(x * y) + y
}

#[grad]
fn chain_a(x: f64, y: f64) -> f64 {
    let t = chain_b(x, y);
    chain_b(t, x) * chain_c(y)
}

#[test]
fn chains_of_grad_calls_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, 1.5], &[-1.2, 0.4]];
    check(
        "chain_a",
        pts,
        |p| chain_a(p[0], p[1]),
        |p| chain_a_grad(p[0], p[1]),
        |p, d| chain_a_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = chain_a_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| chain_a_value_and_grad(p[0], p[1]),
    );
}

#[grad]
fn step(state: f64, x: f64) -> f64 {
    (state * x).tanh() + 0.5 * state
}

#[grad]
fn calls_in_loops_and_branches(x: f64, n: usize) -> f64 {
    let mut s = x;
    for i in 0..n {
        if i % 2 == 0 {
            s = step(s, x);
        } else {
            s = step(x, s) * square(s);
        }
    }
    s
}

#[test]
fn grad_calls_inside_loops_and_branches_three_ways() {
    for n in [0usize, 1, 4, 9] {
        let pts: &[&[f64]] = &[&[0.7], &[-0.4]];
        check(
            &format!("calls_in_loops_and_branches(n = {n})"),
            pts,
            |p| calls_in_loops_and_branches(p[0], n),
            |p| calls_in_loops_and_branches_grad(p[0], n),
            |p, d| calls_in_loops_and_branches_jvp(p[0], n, d[0]),
            |p, c| {
                let (v, pb) = calls_in_loops_and_branches_vjp(p[0], n);
                (v, pb(c))
            },
            |p| calls_in_loops_and_branches_value_and_grad(p[0], n),
        );
    }
}

#[grad]
fn weighted_norm(x: &[f64], w: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() {
        s += w[i] * x[i] * x[i];
    }
    s.sqrt()
}

#[grad]
fn calls_with_slices(x: &[f64], w: &[f64], a: f64) -> f64 {
    let n = weighted_norm(x, w);
    let mut v = vec![0.0; x.len()];
    for i in 0..x.len() {
        v[i] = x[i] * a;
    }
    n * weighted_norm(&v, w) + square(a)
}

#[test]
fn grad_calls_with_slice_and_vec_arguments_three_ways() {
    let pts: &[&[f64]] = &[
        &[0.5, -1.0, 2.0, 1.0, 2.0, 0.5, 1.5],
        &[1.0, 1.0, 1.0, 0.1, 0.2, 0.3, -0.5],
    ];
    let parts = |p: &[f64]| (p[..3].to_vec(), p[3..6].to_vec(), p[6]);
    check(
        "calls_with_slices",
        pts,
        |p| {
            let (x, w, a) = parts(p);
            calls_with_slices(&x, &w, a)
        },
        |p| {
            let (x, w, a) = parts(p);
            calls_with_slices_grad(&x, &w, a)
        },
        |p, d| {
            let ((x, w, a), (dx, dw, da)) = (parts(p), parts(d));
            calls_with_slices_jvp(&x, &w, a, &dx, &dw, da)
        },
        |p, c| {
            let (x, w, a) = parts(p);
            let (v, pb) = calls_with_slices_vjp(&x, &w, a);
            (v, pb(c))
        },
        |p| {
            let (x, w, a) = parts(p);
            calls_with_slices_value_and_grad(&x, &w, a)
        },
    );
}

/// A plain function: not transformed, called only with inactive inputs.
fn plain_weight(i: usize, t: f64) -> f64 {
    (i as f64 + t).sqrt()
}

/// Another plain function of an integer.
fn plain_count(n: usize) -> usize {
    n * n + 1
}

#[grad]
fn calls_to_plain_functions(x: f64, n: usize) -> f64 {
    let mut s = 0.0;
    let m = plain_count(n);
    for i in 0..m {
        let c = i as f64 * 0.5; // float, but inactive
        s += plain_weight(i, c) * x.powi((i % 3) as i32);
    }
    s + plain_weight(n, 1.0)
}

#[test]
fn calls_to_plain_functions_of_inactive_inputs_three_ways() {
    for n in [0usize, 2] {
        let pts: &[&[f64]] = &[&[0.8], &[-1.3]];
        check(
            &format!("calls_to_plain_functions(n = {n})"),
            pts,
            |p| calls_to_plain_functions(p[0], n),
            |p| calls_to_plain_functions_grad(p[0], n),
            |p, d| calls_to_plain_functions_jvp(p[0], n, d[0]),
            |p, c| {
                let (v, pb) = calls_to_plain_functions_vjp(p[0], n);
                (v, pb(c))
            },
            |p| calls_to_plain_functions_value_and_grad(p[0], n),
        );
    }
}

#[grad]
fn with_stop_gradient(x: f64, y: f64) -> f64 {
    let c = stop_gradient(x * x);
    let d = stop_gradient(y).sin();
    c * x + d * y + stop_gradient(x * y) * y
}

#[test]
fn stop_gradient_blocks_derivatives_three_ways() {
    // Finite differences see through stop_gradient, so compare with the closed form only,
    // and check forward and reverse mode agree.
    let pts: &[&[f64]] = &[&[0.5, 1.5], &[-2.0, 0.3]];
    closed_form(
        "with_stop_gradient",
        pts,
        |p| with_stop_gradient_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            // c, d and x*y are constants: f = c x + d y + k y
            (x * x, y.sin() + x * y)
        },
    );
    for p in pts {
        let g = with_stop_gradient_grad(p[0], p[1]);
        let (v, pb) = with_stop_gradient_vjp(p[0], p[1]);
        assert_eq!(v, with_stop_gradient(p[0], p[1]));
        let gv = pb(1.0);
        let (_, tx) = with_stop_gradient_jvp(p[0], p[1], 1.0, 0.0);
        let (_, ty) = with_stop_gradient_jvp(p[0], p[1], 0.0, 1.0);
        let (_, gvg) = with_stop_gradient_value_and_grad(p[0], p[1]);
        for (what, got) in [("vjp", gv), ("jvp", (tx, ty)), ("value_and_grad", gvg)] {
            assert!(
                close(got.0, g.0, AD_RTOL, 1e-14) && close(got.1, g.1, AD_RTOL, 1e-14),
                "with_stop_gradient at {p:?}: {what} = {got:?}, grad = {g:?}"
            );
        }
    }
}

#[grad]
fn power_rec(x: f64, n: u32) -> f64 {
    if n == 0 { 1.0 } else { x * power_rec(x, n - 1) }
}

#[grad]
fn uses_recursion(x: f64, y: f64) -> f64 {
    power_rec(x, 3) * y + power_rec(y, 0)
}

#[test]
fn recursive_grad_functions_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, 1.5], &[-1.2, 0.3]];
    check(
        "uses_recursion",
        pts,
        |p| uses_recursion(p[0], p[1]),
        |p| uses_recursion_grad(p[0], p[1]),
        |p, d| uses_recursion_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = uses_recursion_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| uses_recursion_value_and_grad(p[0], p[1]),
    );
    closed_form(
        "uses_recursion",
        pts,
        |p| uses_recursion_grad(p[0], p[1]),
        |p| (3.0 * p[0] * p[0] * p[1], p[0].powi(3)),
    );
}

/// A callee differentiated only with respect to `x`, called with `b` active: the caller
/// uses the callee's derivatives with respect to every argument.
#[grad(wrt(x))]
fn callee_wrt_x(x: f64, y: f64) -> f64 {
    x * y * y
}

#[grad]
fn caller_of_wrt(a: f64, b: f64) -> f64 {
    callee_wrt_x(a, b) + a
}

#[test]
fn a_callee_restricted_by_wrt_still_gives_every_derivative_to_callers() {
    let pts: &[&[f64]] = &[&[0.5, 1.5], &[-1.0, 0.25]];
    check(
        "caller_of_wrt",
        pts,
        |p| caller_of_wrt(p[0], p[1]),
        |p| caller_of_wrt_grad(p[0], p[1]),
        |p, d| caller_of_wrt_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = caller_of_wrt_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| caller_of_wrt_value_and_grad(p[0], p[1]),
    );
    closed_form(
        "caller_of_wrt",
        pts,
        |p| caller_of_wrt_grad(p[0], p[1]),
        |p| (p[1] * p[1] + 1.0, 2.0 * p[0] * p[1]),
    );
    // the callee's own API keeps its `wrt`
    assert_eq!(callee_wrt_x_grad(2.0, 3.0), 9.0);
}
