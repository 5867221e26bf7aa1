//! Derivatives at kinks and ties follow JAX's definitions (jax/_src/lax/lax.py,
//! jax/_src/numpy/ufuncs.py), in every mode (grad, jvp, vjp, value_and_grad):
//!
//! - `abs`: JAX's JVP is `select(x >= 0, g, -g)`, so d|x|/dx = +1 at 0 (and at -0.0);
//! - `signum`: derivative 0 everywhere (JAX's `sign` has a zero JVP);
//! - `max` / `min` at a tie: JAX's `_balanced_eq` gives each argument half (0.5);
//!   so `x.max(0.0)` (ReLU written with `max`) has derivative 0.5 at 0;
//! - `clamp(lo, hi)`: as JAX's `lax.clamp` primitive: x passes the gradient only where
//!   lo < x < hi strictly, lo only where x < lo, hi only where x > hi, so at a bound
//!   nothing passes. (`jnp.clip`, written as `min(max(x, lo), hi)`, would split ties
//!   0.5 / 0.5 instead; `clamp` is one primitive, so it takes the primitive's rule.)
//! - `powf`: at x == 0 JAX's rules give d/dx (x^y) = y x^(y-1) (0 for y > 1) and
//!   d/dy = ln(x) x^y with ln(0) replaced by 0, i.e. 0, not NaN;
//! - `powi(0)` has derivative 0 (also at x = 0);
//! - a branch on `x > 0` at x == 0 takes the else-branch, as the primal does.

use crate::common::*;
use ferrax::prelude::*;

/// Asserts every mode's derivative of `name` equals `want` exactly.
fn all_modes_equal(name: &str, want: &[f64], got: &[(&str, Vec<f64>)]) {
    for (mode, g) in got {
        assert_eq!(
            g.len(),
            want.len(),
            "{name}: {mode} has {} entries",
            g.len()
        );
        for i in 0..want.len() {
            exact(name, &format!("{mode}[{i}]"), g[i], want[i]);
        }
    }
}

#[grad]
fn abs_fn(x: f64) -> f64 {
    x.abs()
}

#[test]
fn abs_has_derivative_plus_one_at_zero_like_jax() {
    for (x, want) in [(0.0, 1.0), (-0.0, 1.0), (2.0, 1.0), (-3.0, -1.0)] {
        let (v, pb) = abs_fn_vjp(x);
        assert_eq!(v, abs_fn(x), "abs_fn at {x:?}: f_vjp value");
        all_modes_equal(
            &format!("abs at {x:?}"),
            &[want],
            &[
                ("grad", vec![abs_fn_grad(x)]),
                ("jvp", vec![abs_fn_jvp(x, 1.0).1]),
                ("vjp", vec![pb(1.0)]),
                ("value_and_grad", vec![abs_fn_value_and_grad(x).1]),
            ],
        );
    }
}

#[grad]
fn signum_fn(x: f64) -> f64 {
    x.signum() * 3.0 + x
}

#[test]
fn signum_has_zero_derivative_everywhere() {
    for x in [0.0, -0.0, 1.5, -2.0] {
        let (v, pb) = signum_fn_vjp(x);
        assert_eq!(v, signum_fn(x), "signum_fn at {x:?}: f_vjp value");
        all_modes_equal(
            &format!("signum at {x:?}"),
            &[1.0],
            &[
                ("grad", vec![signum_fn_grad(x)]),
                ("jvp", vec![signum_fn_jvp(x, 1.0).1]),
                ("vjp", vec![pb(1.0)]),
                ("value_and_grad", vec![signum_fn_value_and_grad(x).1]),
            ],
        );
    }
}

#[grad]
fn max_fn(x: f64, y: f64) -> f64 {
    x.max(y)
}

#[grad]
fn min_fn(x: f64, y: f64) -> f64 {
    x.min(y)
}

fn two_arg_modes(
    grad: fn(f64, f64) -> (f64, f64),
    jvp: fn(f64, f64, f64, f64) -> (f64, f64),
    vg: fn(f64, f64) -> (f64, (f64, f64)),
    x: f64,
    y: f64,
) -> Vec<(&'static str, Vec<f64>)> {
    let g = grad(x, y);
    let v = vg(x, y).1;
    vec![
        ("grad", vec![g.0, g.1]),
        ("jvp", vec![jvp(x, y, 1.0, 0.0).1, jvp(x, y, 0.0, 1.0).1]),
        ("value_and_grad", vec![v.0, v.1]),
    ]
}

#[test]
fn max_and_min_split_the_derivative_at_ties_like_jax() {
    for (x, y, want_max, want_min) in [
        (1.5, 1.5, [0.5, 0.5], [0.5, 0.5]),
        (0.0, 0.0, [0.5, 0.5], [0.5, 0.5]),
        (2.0, 1.0, [1.0, 0.0], [0.0, 1.0]),
        (-1.0, 1.0, [0.0, 1.0], [1.0, 0.0]),
    ] {
        let mut got = two_arg_modes(max_fn_grad, max_fn_jvp, max_fn_value_and_grad, x, y);
        let (v, pb) = max_fn_vjp(x, y);
        assert_eq!(v, max_fn(x, y), "max({x}, {y}): f_vjp value");
        let g = pb(1.0);
        got.push(("vjp", vec![g.0, g.1]));
        all_modes_equal(&format!("max({x}, {y})"), &want_max, &got);

        let mut got = two_arg_modes(min_fn_grad, min_fn_jvp, min_fn_value_and_grad, x, y);
        let (v, pb) = min_fn_vjp(x, y);
        assert_eq!(v, min_fn(x, y), "min({x}, {y}): f_vjp value");
        let g = pb(1.0);
        got.push(("vjp", vec![g.0, g.1]));
        all_modes_equal(&format!("min({x}, {y})"), &want_min, &got);
    }
}

#[grad]
fn relu(x: f64) -> f64 {
    x.max(0.0)
}

#[test]
fn relu_written_with_max_has_derivative_one_half_at_zero() {
    for (x, want) in [(0.0, 0.5), (1.0, 1.0), (-1.0, 0.0)] {
        let (v, pb) = relu_vjp(x);
        assert_eq!(v, relu(x), "relu at {x:?}: f_vjp value");
        all_modes_equal(
            &format!("relu at {x}"),
            &[want],
            &[
                ("grad", vec![relu_grad(x)]),
                ("jvp", vec![relu_jvp(x, 1.0).1]),
                ("vjp", vec![pb(1.0)]),
                ("value_and_grad", vec![relu_value_and_grad(x).1]),
            ],
        );
    }
}

#[grad]
fn clamp_fn(x: f64, lo: f64, hi: f64) -> f64 {
    x.clamp(lo, hi)
}

#[test]
fn clamp_follows_lax_clamp_at_the_bounds() {
    // (x, lo, hi) -> (d/dx, d/dlo, d/dhi)
    for (p, want) in [
        ([0.5, 0.0, 1.0], [1.0, 0.0, 0.0]),
        ([-0.5, 0.0, 1.0], [0.0, 1.0, 0.0]),
        ([1.5, 0.0, 1.0], [0.0, 0.0, 1.0]),
        ([0.0, 0.0, 1.0], [0.0, 0.0, 0.0]),
        ([1.0, 0.0, 1.0], [0.0, 0.0, 0.0]),
    ] {
        let [x, lo, hi] = p;
        let g = clamp_fn_grad(x, lo, hi);
        let v = clamp_fn_value_and_grad(x, lo, hi).1;
        let (value, pb) = clamp_fn_vjp(x, lo, hi);
        assert_eq!(
            value,
            clamp_fn(x, lo, hi),
            "clamp({x}, {lo}, {hi}): f_vjp value"
        );
        let b = pb(1.0);
        let t = |d: [f64; 3]| clamp_fn_jvp(x, lo, hi, d[0], d[1], d[2]).1;
        all_modes_equal(
            &format!("clamp({x}, {lo}, {hi})"),
            &want,
            &[
                ("grad", vec![g.0, g.1, g.2]),
                (
                    "jvp",
                    vec![t([1.0, 0.0, 0.0]), t([0.0, 1.0, 0.0]), t([0.0, 0.0, 1.0])],
                ),
                ("vjp", vec![b.0, b.1, b.2]),
                ("value_and_grad", vec![v.0, v.1, v.2]),
            ],
        );
    }
}

#[grad]
fn pow_at_zero(x: f64, y: f64) -> f64 {
    x.powf(y) + x.powi(2) + x.powi(0) + 2.0 * x.powi(1)
}

#[test]
fn powers_at_zero_have_finite_jax_derivatives() {
    // d/dx: y 0^(y-1) = 0 (y = 3) + 0 + 0 + 2; d/dy: ln(0) 0^y with ln(0) -> 0, so 0.
    let (x, y) = (0.0, 3.0);
    let g = pow_at_zero_grad(x, y);
    let v = pow_at_zero_value_and_grad(x, y).1;
    let (value, pb) = pow_at_zero_vjp(x, y);
    assert_eq!(value, pow_at_zero(x, y), "pow_at_zero: f_vjp value");
    let b = pb(1.0);
    all_modes_equal(
        "pow_at_zero",
        &[2.0, 0.0],
        &[
            ("grad", vec![g.0, g.1]),
            (
                "jvp",
                vec![
                    pow_at_zero_jvp(x, y, 1.0, 0.0).1,
                    pow_at_zero_jvp(x, y, 0.0, 1.0).1,
                ],
            ),
            ("vjp", vec![b.0, b.1]),
            ("value_and_grad", vec![v.0, v.1]),
        ],
    );
}

#[grad]
fn branch_at_zero(x: f64) -> f64 {
    if x > 0.0 { x } else { 2.0 * x }
}

#[test]
fn a_branch_at_its_boundary_differentiates_the_branch_taken() {
    for (x, want) in [(0.0, 2.0), (1e-300, 1.0), (-1.0, 2.0)] {
        let (v, pb) = branch_at_zero_vjp(x);
        assert_eq!(v, branch_at_zero(x), "branch_at_zero at {x:?}: f_vjp value");
        all_modes_equal(
            &format!("branch_at_zero at {x:?}"),
            &[want],
            &[
                ("grad", vec![branch_at_zero_grad(x)]),
                ("jvp", vec![branch_at_zero_jvp(x, 1.0).1]),
                ("vjp", vec![pb(1.0)]),
                ("value_and_grad", vec![branch_at_zero_value_and_grad(x).1]),
            ],
        );
    }
}
