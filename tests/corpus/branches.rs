//! `if` / `else if` / `else` as statements and expressions, deep nesting, `match` on
//! integers, bools and enums, and conditions built from comparisons and `&&` / `||`.

use crate::common::*;
use ferrax::prelude::*;

#[grad]
fn if_statement(x: f64) -> f64 {
    let mut y = x * x;
    if x > 1.0 {
        y *= x;
    } else if x < -1.0 {
        y -= 3.0 * x;
    } else {
        y = y.sin() + x;
    }
    y * 2.0
}

#[test]
fn if_else_if_else_statement_three_ways() {
    let pts: &[&[f64]] = &[&[1.5], &[-2.0], &[0.3], &[-0.8]];
    check(
        "if_statement",
        pts,
        |p| if_statement(p[0]),
        |p| if_statement_grad(p[0]),
        |p, d| if_statement_jvp(p[0], d[0]),
        |p, c| {
            let (v, pb) = if_statement_vjp(p[0]);
            (v, pb(c))
        },
        |p| if_statement_value_and_grad(p[0]),
    );
    closed_form(
        "if_statement",
        pts,
        |p| if_statement_grad(p[0]),
        |p| {
            let x = p[0];
            2.0 * if x > 1.0 {
                3.0 * x * x
            } else if x < -1.0 {
                2.0 * x - 3.0
            } else {
                (x * x).cos() * 2.0 * x + 1.0
            }
        },
    );
}

#[grad]
fn if_expression(x: f64, y: f64) -> f64 {
    let z = if x > y { x * y } else { x / y };
    let w = if z < 0.0 {
        -z
    } else if z < 1.0 {
        z * z
    } else {
        z.sqrt()
    };
    w + if x * y > 0.5 { 1.0 } else { x }
}

#[test]
fn if_as_expression_three_ways() {
    let pts: &[&[f64]] = &[
        &[2.0, 1.5],
        &[0.5, 2.0],
        &[-1.0, -3.0],
        &[-0.5, 0.25],
        &[3.0, 2.0],
    ];
    check(
        "if_expression",
        pts,
        |p| if_expression(p[0], p[1]),
        |p| if_expression_grad(p[0], p[1]),
        |p, d| if_expression_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = if_expression_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| if_expression_value_and_grad(p[0], p[1]),
    );
}

#[grad]
fn deep_nesting(x: f64, y: f64, z: f64) -> f64 {
    let mut r = 0.0;
    if x > 0.0 {
        if y > 0.0 {
            if z > 0.0 {
                if x > y {
                    if y > z {
                        r = x * y * z;
                    } else {
                        r = x + y * z;
                    }
                } else {
                    r = (x * z).sin() + y;
                }
            } else {
                r = x * y - z * z;
            }
        } else if z > 0.0 {
            r = x.exp() * y + z;
        } else {
            r = -x * y * z;
        }
    } else {
        let t = if y > z { y - z } else { z - y };
        r += t * x;
        if t > 1.0 {
            r *= t;
        }
    }
    r + x
}

#[test]
fn five_levels_of_nested_ifs_three_ways() {
    let pts: &[&[f64]] = &[
        &[3.0, 2.0, 1.0],   // x > y > z > 0
        &[3.0, 1.0, 2.0],   // x > y, y < z
        &[1.0, 2.0, 0.5],   // x < y
        &[1.0, 2.0, -0.5],  // z < 0
        &[1.0, -2.0, 0.5],  // y < 0, z > 0
        &[1.0, -2.0, -0.5], // y < 0, z < 0
        &[-1.0, 2.0, -0.5], // x < 0, t > 1
        &[-1.0, 0.2, 0.5],  // x < 0, t < 1
    ];
    check(
        "deep_nesting",
        pts,
        |p| deep_nesting(p[0], p[1], p[2]),
        |p| deep_nesting_grad(p[0], p[1], p[2]),
        |p, d| deep_nesting_jvp(p[0], p[1], p[2], d[0], d[1], d[2]),
        |p, c| {
            let (v, pb) = deep_nesting_vjp(p[0], p[1], p[2]);
            (v, pb(c))
        },
        |p| deep_nesting_value_and_grad(p[0], p[1], p[2]),
    );
}

#[grad]
fn match_int(x: f64, k: i32) -> f64 {
    let m = match k {
        0 => x,
        1 | 2 => x * x,
        3..=5 => x.sin() * k as f64,
        _ => {
            let t = x * 0.5;
            t.exp()
        }
    };
    match k % 2 {
        0 => m + x,
        _ => m - x,
    }
}

#[test]
fn match_on_integers_three_ways() {
    for k in [0, 1, 2, 4, 9, -3] {
        let pts: &[&[f64]] = &[&[0.7], &[-1.3]];
        check(
            &format!("match_int(k = {k})"),
            pts,
            |p| match_int(p[0], k),
            |p| match_int_grad(p[0], k),
            |p, d| match_int_jvp(p[0], k, d[0]),
            |p, c| {
                let (v, pb) = match_int_vjp(p[0], k);
                (v, pb(c))
            },
            |p| match_int_value_and_grad(p[0], k),
        );
    }
    closed_form(
        "match_int(k = 4)",
        &[&[0.7]],
        |p| match_int_grad(p[0], 4),
        |p| p[0].cos() * 4.0 + 1.0,
    );
}

#[grad]
fn match_bool(x: f64, y: f64, flag: bool) -> f64 {
    let big = x > 1.0 && y < 2.0;
    let a = match flag {
        true => x * y,
        false => x + y,
    };
    let b = match big || !flag {
        true => a * a,
        false => a,
    };
    if flag { b } else { -b }
}

#[test]
fn match_on_bools_and_boolean_conditions_three_ways() {
    for flag in [true, false] {
        let pts: &[&[f64]] = &[&[1.5, 1.0], &[0.5, 1.0], &[1.5, 3.0], &[-0.5, -1.0]];
        check(
            &format!("match_bool(flag = {flag})"),
            pts,
            |p| match_bool(p[0], p[1], flag),
            |p| match_bool_grad(p[0], p[1], flag),
            |p, d| match_bool_jvp(p[0], p[1], flag, d[0], d[1]),
            |p, c| {
                let (v, pb) = match_bool_vjp(p[0], p[1], flag);
                (v, pb(c))
            },
            |p| match_bool_value_and_grad(p[0], p[1], flag),
        );
    }
}

/// Inactive enum argument: selects the formula.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Tanh,
    Softplus,
    Scaled(i32),
}

#[grad]
fn match_enum(x: f64, act: Activation) -> f64 {
    match act {
        Activation::Tanh => x.tanh(),
        Activation::Softplus => (1.0 + x.exp()).ln(),
        Activation::Scaled(k) => x * k as f64,
    }
}

#[test]
fn match_on_enums_three_ways() {
    for act in [
        Activation::Tanh,
        Activation::Softplus,
        Activation::Scaled(3),
    ] {
        let pts: &[&[f64]] = &[&[0.4], &[-2.0]];
        check(
            &format!("match_enum({act:?})"),
            pts,
            |p| match_enum(p[0], act),
            |p| match_enum_grad(p[0], act),
            |p, d| match_enum_jvp(p[0], act, d[0]),
            |p, c| {
                let (v, pb) = match_enum_vjp(p[0], act);
                (v, pb(c))
            },
            |p| match_enum_value_and_grad(p[0], act),
        );
        closed_form(
            &format!("match_enum({act:?})"),
            pts,
            |p| match_enum_grad(p[0], act),
            |p| {
                let x = p[0];
                match act {
                    Activation::Tanh => 1.0 - x.tanh().powi(2),
                    Activation::Softplus => 1.0 / (1.0 + (-x).exp()),
                    Activation::Scaled(k) => k as f64,
                }
            },
        );
    }
}

#[grad]
fn branch_on_intermediate(x: f64, y: f64) -> f64 {
    let s = x * y;
    let mut acc = s;
    if s.sin() > 0.0 {
        acc = acc * acc;
    }
    if acc < 4.0 || x < 0.0 {
        acc += x;
    } else {
        acc -= y;
    }
    acc
}

#[test]
fn branches_on_active_intermediates_three_ways() {
    let pts: &[&[f64]] = &[&[1.0, 1.0], &[2.0, 2.2], &[-1.0, 4.0], &[1.5, -1.0]];
    check(
        "branch_on_intermediate",
        pts,
        |p| branch_on_intermediate(p[0], p[1]),
        |p| branch_on_intermediate_grad(p[0], p[1]),
        |p, d| branch_on_intermediate_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = branch_on_intermediate_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| branch_on_intermediate_value_and_grad(p[0], p[1]),
    );
}

#[grad]
#[allow(clippy::needless_late_init)] // deferred initialisation is what this tests
fn deferred_init(x: f64, y: f64) -> f64 {
    let z: f64;
    if x > y {
        z = x * y;
    } else {
        z = y - x * x;
    }
    z * z + x
}

#[test]
fn deferred_initialisation_in_branches_three_ways() {
    let pts: &[&[f64]] = &[&[2.0, 0.5], &[-1.0, 0.5]];
    check(
        "deferred_init",
        pts,
        |p| deferred_init(p[0], p[1]),
        |p| deferred_init_grad(p[0], p[1]),
        |p, d| deferred_init_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = deferred_init_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| deferred_init_value_and_grad(p[0], p[1]),
    );
    closed_form(
        "deferred_init",
        pts,
        |p| deferred_init_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            if x > y {
                (2.0 * x * y * y + 1.0, 2.0 * x * x * y)
            } else {
                let z = y - x * x;
                (2.0 * z * (-2.0 * x) + 1.0, 2.0 * z)
            }
        },
    );
}
