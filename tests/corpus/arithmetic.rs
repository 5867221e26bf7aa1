//! Straight-line arithmetic: let / let mut / compound assignment / shadowing / blocks /
//! tuple patterns / casts, and every differentiable float method the issue lists.

use crate::common::*;
use ferrax::prelude::*;

#[grad]
fn poly(x: f64, y: f64) -> f64 {
    let a = 3.0 * x * x - 2.0 * x * y;
    let mut b = a + y;
    b += x;
    b -= 0.5 * y;
    b *= x;
    b /= 2.0;
    -b + (x - y) * (x + y) / 4.0
}

#[test]
fn poly_three_ways() {
    let pts: &[&[f64]] = &[&[1.0, 2.0], &[0.5, -1.5], &[-2.25, 0.75]];
    check(
        "poly",
        pts,
        |p| poly(p[0], p[1]),
        |p| poly_grad(p[0], p[1]),
        |p, d| poly_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = poly_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| poly_value_and_grad(p[0], p[1]),
    );
    // f = -((3x^2 - 2xy + 0.5y + x) x)/2 + (x^2 - y^2)/4
    closed_form(
        "poly",
        pts,
        |p| poly_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            let dx = -(9.0 * x * x - 4.0 * x * y + 0.5 * y + 2.0 * x) / 2.0 + x / 2.0;
            let dy = -(-2.0 * x * x + 0.5 * x) / 2.0 - y / 2.0;
            (dx, dy)
        },
    );
}

#[grad]
fn shadow_blocks_tuples(x: f64, y: f64) -> f64 {
    let (a, b) = (x * y, x + y);
    let x = x * 2.0; // shadows the argument
    let c = {
        let t = a * b;
        t - x
    };
    let (mut p, q) = (c, { b * b });
    p += q;
    let p = p * 0.5;
    p + x
}

#[test]
fn shadowing_blocks_and_tuple_patterns_three_ways() {
    let pts: &[&[f64]] = &[&[1.0, 2.0], &[-0.5, 0.25], &[3.0, -1.0]];
    check(
        "shadow_blocks_tuples",
        pts,
        |p| shadow_blocks_tuples(p[0], p[1]),
        |p| shadow_blocks_tuples_grad(p[0], p[1]),
        |p, d| shadow_blocks_tuples_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = shadow_blocks_tuples_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| shadow_blocks_tuples_value_and_grad(p[0], p[1]),
    );
    // f = 0.5 (xy(x+y) - 2x + (x+y)^2) + 2x
    closed_form(
        "shadow_blocks_tuples",
        pts,
        |p| shadow_blocks_tuples_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            let dx = 0.5 * (2.0 * x * y + y * y - 2.0 + 2.0 * (x + y)) + 2.0;
            let dy = 0.5 * (x * x + 2.0 * x * y + 2.0 * (x + y));
            (dx, dy)
        },
    );
}

#[grad]
fn int_casts(x: f64, n: usize, k: i32) -> f64 {
    let m = n * 2 + 1;
    let scale = m as f64 / (k as f64 + 0.5);
    let mut s = 0.0;
    let mut j: i64 = 0;
    while j < k as i64 {
        s += x * (j as f64);
        j += 1;
    }
    scale * x * x + s + (n as f64)
}

#[test]
fn int_casts_and_inactive_int_arithmetic_three_ways() {
    for (n, k) in [(0usize, 0i32), (3, 2), (5, 7)] {
        let pts: &[&[f64]] = &[&[1.5], &[-0.75]];
        check(
            "int_casts",
            pts,
            |p| int_casts(p[0], n, k),
            |p| int_casts_grad(p[0], n, k),
            |p, d| int_casts_jvp(p[0], n, k, d[0]),
            |p, c| {
                let (v, pb) = int_casts_vjp(p[0], n, k);
                (v, pb(c))
            },
            |p| int_casts_value_and_grad(p[0], n, k),
        );
        closed_form(
            "int_casts",
            pts,
            |p| int_casts_grad(p[0], n, k),
            |p| {
                let scale = (2 * n + 1) as f64 / (k as f64 + 0.5);
                2.0 * scale * p[0] + (0..k).map(f64::from).sum::<f64>()
            },
        );
    }
}

#[grad]
fn trig(x: f64, y: f64) -> f64 {
    x.sin() * y.cos() + (x * y).tan()
}

#[test]
fn sin_cos_tan_three_ways() {
    let pts: &[&[f64]] = &[&[0.3, 0.7], &[-1.1, 0.4], &[2.0, -0.2]];
    check(
        "trig",
        pts,
        |p| trig(p[0], p[1]),
        |p| trig_grad(p[0], p[1]),
        |p, d| trig_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = trig_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| trig_value_and_grad(p[0], p[1]),
    );
    closed_form(
        "trig",
        pts,
        |p| trig_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            let sec2 = 1.0 / (x * y).cos().powi(2);
            (x.cos() * y.cos() + y * sec2, -x.sin() * y.sin() + x * sec2)
        },
    );
}

#[grad]
fn inverse_trig(x: f64, y: f64) -> f64 {
    x.asin() + 2.0 * x.acos() + (x * y).atan() + y.atan2(x) + 0.5 * x.atan2(y)
}

#[test]
fn asin_acos_atan_atan2_three_ways() {
    let pts: &[&[f64]] = &[&[0.3, 0.7], &[-0.6, 1.4], &[0.9, -0.25], &[-0.2, -2.0]];
    check(
        "inverse_trig",
        pts,
        |p| inverse_trig(p[0], p[1]),
        |p| inverse_trig_grad(p[0], p[1]),
        |p, d| inverse_trig_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = inverse_trig_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| inverse_trig_value_and_grad(p[0], p[1]),
    );
    closed_form(
        "inverse_trig",
        pts,
        |p| inverse_trig_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            let r2 = x * x + y * y;
            let s = (1.0 - x * x).sqrt();
            let dat = 1.0 / (1.0 + x * x * y * y);
            // d atan2(y, x) = (x dy - y dx) / r2; d atan2(x, y) = (y dx - x dy) / r2
            let dx = 1.0 / s - 2.0 / s + y * dat - y / r2 + 0.5 * y / r2;
            let dy = x * dat + x / r2 - 0.5 * x / r2;
            (dx, dy)
        },
    );
}

#[grad]
fn hyperbolic(a: f64, b: f64, c: f64) -> f64 {
    a.sinh() * b.cosh() + c.tanh() + a.asinh() + b.acosh() + c.atanh()
}

#[test]
fn sinh_cosh_tanh_and_inverses_three_ways() {
    // acosh needs b > 1, atanh needs |c| < 1.
    let pts: &[&[f64]] = &[&[0.3, 1.7, 0.2], &[-1.2, 2.5, -0.6], &[2.0, 1.1, 0.9]];
    check(
        "hyperbolic",
        pts,
        |p| hyperbolic(p[0], p[1], p[2]),
        |p| hyperbolic_grad(p[0], p[1], p[2]),
        |p, d| hyperbolic_jvp(p[0], p[1], p[2], d[0], d[1], d[2]),
        |p, c| {
            let (v, pb) = hyperbolic_vjp(p[0], p[1], p[2]);
            (v, pb(c))
        },
        |p| hyperbolic_value_and_grad(p[0], p[1], p[2]),
    );
    closed_form(
        "hyperbolic",
        pts,
        |p| hyperbolic_grad(p[0], p[1], p[2]),
        |p| {
            let (a, b, c) = (p[0], p[1], p[2]);
            (
                a.cosh() * b.cosh() + 1.0 / (a * a + 1.0).sqrt(),
                a.sinh() * b.sinh() + 1.0 / (b * b - 1.0).sqrt(),
                1.0 - c.tanh().powi(2) + 1.0 / (1.0 - c * c),
            )
        },
    );
}

#[grad]
fn exps_and_logs(x: f64, b: f64) -> f64 {
    x.exp() + x.exp2() + x.exp_m1() + x.ln() * 2.0 + x.log(b) + x.log2() + x.log10() + x.ln_1p()
}

#[test]
fn exp_exp2_expm1_ln_log_log2_log10_ln1p_three_ways() {
    // x > 0; the base b > 0 and away from 1 (log(b) is active in the base too).
    let pts: &[&[f64]] = &[&[0.5, 3.0], &[2.0, 0.25], &[1.3, 10.0], &[0.05, 2.0]];
    check(
        "exps_and_logs",
        pts,
        |p| exps_and_logs(p[0], p[1]),
        |p| exps_and_logs_grad(p[0], p[1]),
        |p, d| exps_and_logs_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = exps_and_logs_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| exps_and_logs_value_and_grad(p[0], p[1]),
    );
    closed_form(
        "exps_and_logs",
        pts,
        |p| exps_and_logs_grad(p[0], p[1]),
        |p| {
            let (x, b) = (p[0], p[1]);
            let ln2 = std::f64::consts::LN_2;
            let ln10 = std::f64::consts::LN_10;
            let dx = x.exp()
                + ln2 * x.exp2()
                + x.exp()
                + 2.0 / x
                + 1.0 / (x * b.ln())
                + 1.0 / (x * ln2)
                + 1.0 / (x * ln10)
                + 1.0 / (1.0 + x);
            let db = -x.ln() / (b * b.ln().powi(2));
            (dx, db)
        },
    );
}

#[grad]
fn roots_and_powers(x: f64, y: f64) -> f64 {
    x.sqrt() + y.cbrt() + x.powi(3) - 2.0 * y.powi(-2) + x.powf(y) + x.powi(0) + y.powf(2.5)
}

#[test]
fn sqrt_cbrt_powi_powf_three_ways() {
    // powf with an active exponent needs x > 0; y.powf(2.5) needs y > 0.
    let pts: &[&[f64]] = &[&[0.5, 1.5], &[2.0, 0.3], &[1.25, 3.0]];
    check(
        "roots_and_powers",
        pts,
        |p| roots_and_powers(p[0], p[1]),
        |p| roots_and_powers_grad(p[0], p[1]),
        |p, d| roots_and_powers_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = roots_and_powers_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| roots_and_powers_value_and_grad(p[0], p[1]),
    );
    closed_form(
        "roots_and_powers",
        pts,
        |p| roots_and_powers_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            let dx = 0.5 / x.sqrt() + 3.0 * x * x + y * x.powf(y - 1.0);
            let dy = 1.0 / (3.0 * y.cbrt().powi(2))
                + 4.0 * y.powi(-3)
                + x.powf(y) * x.ln()
                + 2.5 * y.powf(1.5);
            (dx, dy)
        },
    );
}

#[grad]
fn cbrt_of_negative(x: f64) -> f64 {
    (x * x - 4.0).cbrt() * x.powi(2)
}

#[test]
fn cbrt_and_powi_of_negative_values_three_ways() {
    // x*x - 4 < 0 here: cbrt is defined (and differentiable) for negative values.
    let pts: &[&[f64]] = &[&[0.5], &[-1.0], &[1.5]];
    check(
        "cbrt_of_negative",
        pts,
        |p| cbrt_of_negative(p[0]),
        |p| cbrt_of_negative_grad(p[0]),
        |p, d| cbrt_of_negative_jvp(p[0], d[0]),
        |p, c| {
            let (v, pb) = cbrt_of_negative_vjp(p[0]);
            (v, pb(c))
        },
        |p| cbrt_of_negative_value_and_grad(p[0]),
    );
}

#[grad]
fn misc_methods(x: f64, y: f64, z: f64) -> f64 {
    let a = x.abs() * y.signum();
    let b = x.hypot(y);
    let c = x.max(y) + x.min(z);
    let d = x.mul_add(y, z);
    let e = z.recip();
    let f = (x * 3.0).clamp(-1.0, 2.0);
    let g = y.clamp(x, z); // active bounds
    a + b * c + d * e + f + g
}

#[test]
fn abs_signum_hypot_max_min_mul_add_recip_clamp_three_ways() {
    // Away from every kink: |x| != 0, x != y, x != z, 3x inside or outside (-1, 2)
    // clearly, y not at x or z.
    let pts: &[&[f64]] = &[
        &[0.5, 1.5, 2.0],   // y inside [x, z], 3x inside (-1, 2)
        &[-0.7, 0.3, -0.2], // 3x < -1, y above z
        &[1.2, -0.5, 3.0],  // 3x > 2, y below x
        &[-0.1, -0.4, 0.8], // y below x, x < 0
    ];
    check(
        "misc_methods",
        pts,
        |p| misc_methods(p[0], p[1], p[2]),
        |p| misc_methods_grad(p[0], p[1], p[2]),
        |p, d| misc_methods_jvp(p[0], p[1], p[2], d[0], d[1], d[2]),
        |p, c| {
            let (v, pb) = misc_methods_vjp(p[0], p[1], p[2]);
            (v, pb(c))
        },
        |p| misc_methods_value_and_grad(p[0], p[1], p[2]),
    );
}

#[grad]
fn neg_and_parens(x: f64, y: f64) -> f64 {
    -(-x * (y - -x)) / -(2.0 - (-y))
}

#[test]
fn unary_minus_and_parentheses_three_ways() {
    let pts: &[&[f64]] = &[&[1.0, 0.5], &[-2.0, 3.0]];
    check(
        "neg_and_parens",
        pts,
        |p| neg_and_parens(p[0], p[1]),
        |p| neg_and_parens_grad(p[0], p[1]),
        |p, d| neg_and_parens_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = neg_and_parens_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| neg_and_parens_value_and_grad(p[0], p[1]),
    );
    // f = x (y + x) / (-(2 + y)) = -(xy + x^2) / (2 + y)
    closed_form(
        "neg_and_parens",
        pts,
        |p| neg_and_parens_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            let dx = -(y + 2.0 * x) / (2.0 + y);
            let dy = -(x * (2.0 + y) - (x * y + x * x)) / (2.0 + y).powi(2);
            (dx, dy)
        },
    );
}

#[grad]
fn constant_function(x: f64) -> f64 {
    let _unused = x * 2.0;
    3.5
}

#[test]
fn output_independent_of_input_has_zero_gradient() {
    let pts: &[&[f64]] = &[&[1.0], &[-4.0]];
    check(
        "constant_function",
        pts,
        |p| constant_function(p[0]),
        |p| constant_function_grad(p[0]),
        |p, d| constant_function_jvp(p[0], d[0]),
        |p, c| {
            let (v, pb) = constant_function_vjp(p[0]);
            (v, pb(c))
        },
        |p| constant_function_value_and_grad(p[0]),
    );
    exact(
        "constant_function",
        "gradient",
        constant_function_grad(1.0),
        0.0,
    );
}

#[grad]
fn std_constants(x: f64) -> f64 {
    std::f64::consts::PI * x + core::f64::consts::E * x * x - f64::EPSILON
}

#[test]
fn std_float_constants_three_ways() {
    let pts: &[&[f64]] = &[&[0.5], &[-2.0]];
    check(
        "std_constants",
        pts,
        |p| std_constants(p[0]),
        |p| std_constants_grad(p[0]),
        |p, d| std_constants_jvp(p[0], d[0]),
        |p, c| {
            let (v, pb) = std_constants_vjp(p[0]);
            (v, pb(c))
        },
        |p| std_constants_value_and_grad(p[0]),
    );
    closed_form(
        "std_constants",
        pts,
        |p| std_constants_grad(p[0]),
        |p| std::f64::consts::PI + 2.0 * std::f64::consts::E * p[0],
    );
}
