//! Early `return` anywhere: at top level, from inside nested loops, from `while` and
//! `loop`, from a `match` arm, and `return` as the tail.

use crate::common::*;
use ferrax::prelude::*;

#[grad]
fn early_return_top(x: f64, y: f64) -> f64 {
    if x < 0.0 {
        return x * y * y;
    }
    let z = x.sqrt() * y;
    if z > 2.0 {
        return z.ln();
    }
    z * z + x
}

#[test]
fn early_return_at_top_level_three_ways() {
    let pts: &[&[f64]] = &[&[-1.0, 2.0], &[4.0, 3.0], &[0.25, 1.0]];
    check(
        "early_return_top",
        pts,
        |p| early_return_top(p[0], p[1]),
        |p| early_return_top_grad(p[0], p[1]),
        |p, d| early_return_top_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = early_return_top_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| early_return_top_value_and_grad(p[0], p[1]),
    );
    closed_form(
        "early_return_top",
        pts,
        |p| early_return_top_grad(p[0], p[1]),
        |p| {
            let (x, y) = (p[0], p[1]);
            if x < 0.0 {
                (y * y, 2.0 * x * y)
            } else if x.sqrt() * y > 2.0 {
                (0.5 / x, 1.0 / y)
            } else {
                (y * y + 1.0, 2.0 * x * y)
            }
        },
    );
}

#[grad]
fn return_from_nested_loops(x: f64, n: usize) -> f64 {
    let mut acc = 0.0;
    for i in 0..n {
        for j in 0..n {
            acc += x * (i + j + 1) as f64 * 0.1;
            if acc > 3.0 {
                return acc * x;
            }
        }
        acc = acc.sin() + x;
    }
    acc - x
}

#[test]
fn early_return_from_inside_nested_loops_three_ways() {
    for n in [0usize, 2, 5, 12] {
        // Both outcomes: x small (loops finish) and x large (returns mid-loop).
        let pts: &[&[f64]] = &[&[0.1], &[0.45], &[1.6], &[2.3]];
        check(
            &format!("return_from_nested_loops(n = {n})"),
            pts,
            |p| return_from_nested_loops(p[0], n),
            |p| return_from_nested_loops_grad(p[0], n),
            |p, d| return_from_nested_loops_jvp(p[0], n, d[0]),
            |p, c| {
                let (v, pb) = return_from_nested_loops_vjp(p[0], n);
                (v, pb(c))
            },
            |p| return_from_nested_loops_value_and_grad(p[0], n),
        );
    }
}

#[grad]
fn return_from_while_and_loop(x: f64) -> f64 {
    let mut a = x;
    let mut k = 0;
    while k < 10 {
        a = a * 1.3 - 0.2;
        if a > 5.0 {
            return a / (k + 1) as f64;
        }
        k += 1;
    }
    let mut b = a;
    loop {
        b = b * b;
        if b > 0.5 {
            return b + a;
        }
        if b < 1e-6 {
            break;
        }
    }
    a - b
}

#[test]
fn early_return_from_while_and_loop_three_ways() {
    // 3.0: returns from the while; 0.1 and -2.0: a runs negative and the `loop`
    // returns; 0.66: a stays near 0.58 and the `loop` breaks (b underflows 1e-6).
    let pts: &[&[f64]] = &[&[3.0], &[0.1], &[0.66], &[-2.0]];
    check(
        "return_from_while_and_loop",
        pts,
        |p| return_from_while_and_loop(p[0]),
        |p| return_from_while_and_loop_grad(p[0]),
        |p, d| return_from_while_and_loop_jvp(p[0], d[0]),
        |p, c| {
            let (v, pb) = return_from_while_and_loop_vjp(p[0]);
            (v, pb(c))
        },
        |p| return_from_while_and_loop_value_and_grad(p[0]),
    );
}

#[grad]
fn return_from_match_arm(x: f64, k: u8) -> f64 {
    let y = x * x;
    let z = match k {
        0 => return y.sin(),
        1 => {
            if x > 0.0 {
                return y * x;
            }
            y + 1.0
        }
        _ => y * 2.0,
    };
    z.exp()
}

#[test]
fn early_return_from_match_arms_three_ways() {
    for k in [0u8, 1, 2] {
        let pts: &[&[f64]] = &[&[0.6], &[-0.4]];
        check(
            &format!("return_from_match_arm(k = {k})"),
            pts,
            |p| return_from_match_arm(p[0], k),
            |p| return_from_match_arm_grad(p[0], k),
            |p, d| return_from_match_arm_jvp(p[0], k, d[0]),
            |p, c| {
                let (v, pb) = return_from_match_arm_vjp(p[0], k);
                (v, pb(c))
            },
            |p| return_from_match_arm_value_and_grad(p[0], k),
        );
    }
}

#[grad]
fn search_then_return(x: &[f64], t: f64) -> f64 {
    // Returns at the first element above the threshold, weighted by its position.
    for i in 0..x.len() {
        for j in 0..=i {
            if x[i] * x[j] > t {
                return x[i] * x[j] * (i + 1) as f64 - t;
            }
        }
    }
    t * x[0]
}

#[test]
fn early_return_from_nested_loops_over_a_slice_three_ways() {
    let pts: &[&[f64]] = &[
        &[0.5, 0.9, 1.8, 0.2, 1.0],  // returns at i = 2, j = 1
        &[0.1, 0.2, 0.3, 0.4, 0.15], // never returns
        &[2.0, 0.0, 0.0, 0.0, 1.0],  // returns at i = 0
    ];
    let split = |p: &[f64]| (p[..4].to_vec(), p[4]);
    check(
        "search_then_return",
        pts,
        |p| {
            let (x, t) = split(p);
            search_then_return(&x, t)
        },
        |p| {
            let (x, t) = split(p);
            search_then_return_grad(&x, t)
        },
        |p, d| {
            let ((x, t), (dx, dt)) = (split(p), split(d));
            search_then_return_jvp(&x, t, &dx, dt)
        },
        |p, c| {
            let (x, t) = split(p);
            let (v, pb) = search_then_return_vjp(&x, t);
            (v, pb(c))
        },
        |p| {
            let (x, t) = split(p);
            search_then_return_value_and_grad(&x, t)
        },
    );
}
