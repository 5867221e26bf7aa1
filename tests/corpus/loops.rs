//! Loops: `for` over ranges (also `.rev()`, `.step_by()`, inclusive), `while`, `loop`
//! with `break` / `break value` / `continue`, loops of zero trips, nested loops, and
//! loop-carried values that are overwritten (the reverse sweep must restore them).

use crate::common::*;
use ferrax::prelude::*;

#[grad]
fn horner(x: f64, n: usize) -> f64 {
    let mut acc = 0.0;
    for i in 0..n {
        acc = acc * x + (i + 1) as f64;
    }
    acc
}

#[test]
fn for_over_range_horner_three_ways() {
    for n in [0usize, 1, 2, 7] {
        let pts: &[&[f64]] = &[&[0.5], &[-1.25], &[2.0]];
        check(
            &format!("horner(n = {n})"),
            pts,
            |p| horner(p[0], n),
            |p| horner_grad(p[0], n),
            |p, d| horner_jvp(p[0], n, d[0]),
            |p, c| {
                let (v, pb) = horner_vjp(p[0], n);
                (v, pb(c))
            },
            |p| horner_value_and_grad(p[0], n),
        );
        // acc = sum_{i<n} (i+1) x^(n-1-i)
        closed_form(
            &format!("horner(n = {n})"),
            pts,
            |p| horner_grad(p[0], n),
            |p| {
                (0..n)
                    .filter(|&i| n - 1 - i >= 1)
                    .map(|i| (i + 1) as f64 * (n - 1 - i) as f64 * p[0].powi((n - 2 - i) as i32))
                    .sum::<f64>()
            },
        );
    }
}

#[grad]
fn rev_and_step_by(x: f64) -> f64 {
    let mut acc = x;
    for i in (0..5).rev() {
        acc = (acc * 0.5 + i as f64).sin() * x;
    }
    for k in (1..10).step_by(3) {
        acc += x.powi(k) / k as f64;
    }
    for j in (0..=6).rev().step_by(2) {
        acc = acc * (1.0 + 0.1 * j as f64) - x;
    }
    acc
}

#[test]
fn for_rev_and_step_by_three_ways() {
    let pts: &[&[f64]] = &[&[0.3], &[-0.7], &[1.1]];
    check(
        "rev_and_step_by",
        pts,
        |p| rev_and_step_by(p[0]),
        |p| rev_and_step_by_grad(p[0]),
        |p, d| rev_and_step_by_jvp(p[0], d[0]),
        |p, c| {
            let (v, pb) = rev_and_step_by_vjp(p[0]);
            (v, pb(c))
        },
        |p| rev_and_step_by_value_and_grad(p[0]),
    );
}

#[grad]
fn inclusive_and_offset_ranges(x: f64, lo: usize, hi: usize) -> f64 {
    let mut s = 0.0;
    for i in lo..=hi {
        s += x.powi(i as i32);
    }
    for i in (lo + 1)..(hi * 2) {
        s -= 0.01 * x * i as f64;
    }
    s
}

#[test]
fn inclusive_ranges_with_inactive_bounds_three_ways() {
    for (lo, hi) in [(0usize, 0usize), (1, 4), (3, 2)] {
        let pts: &[&[f64]] = &[&[0.9], &[-1.2]];
        check(
            &format!("inclusive_and_offset_ranges({lo}, {hi})"),
            pts,
            |p| inclusive_and_offset_ranges(p[0], lo, hi),
            |p| inclusive_and_offset_ranges_grad(p[0], lo, hi),
            |p, d| inclusive_and_offset_ranges_jvp(p[0], lo, hi, d[0]),
            |p, c| {
                let (v, pb) = inclusive_and_offset_ranges_vjp(p[0], lo, hi);
                (v, pb(c))
            },
            |p| inclusive_and_offset_ranges_value_and_grad(p[0], lo, hi),
        );
    }
}

#[grad]
fn while_active_condition(x: f64) -> f64 {
    // The trip count depends on x (piecewise-smooth): the reverse sweep must count trips.
    let mut t = 1.0;
    let mut k = 0;
    while t < 50.0 {
        t = t * 1.7 + x;
        k += 1;
    }
    t / k as f64
}

#[test]
fn while_with_active_condition_counts_trips_three_ways() {
    let pts: &[&[f64]] = &[&[0.5], &[2.0], &[7.0], &[60.0]];
    check(
        "while_active_condition",
        pts,
        |p| while_active_condition(p[0]),
        |p| while_active_condition_grad(p[0]),
        |p, d| while_active_condition_jvp(p[0], d[0]),
        |p, c| {
            let (v, pb) = while_active_condition_vjp(p[0]);
            (v, pb(c))
        },
        |p| while_active_condition_value_and_grad(p[0]),
    );
}

#[grad]
fn loop_break_value(x: f64, y: f64) -> f64 {
    let mut a = x;
    let mut i = 0;
    let r = loop {
        i += 1;
        a = a * y + 0.25;
        if i >= 6 {
            break a * x;
        }
        if a > 100.0 {
            break a.ln();
        }
    };
    r + a
}

#[test]
fn loop_with_break_value_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, 1.2], &[1.5, -0.8], &[3.0, 5.0], &[0.2, 0.3]];
    check(
        "loop_break_value",
        pts,
        |p| loop_break_value(p[0], p[1]),
        |p| loop_break_value_grad(p[0], p[1]),
        |p, d| loop_break_value_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = loop_break_value_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| loop_break_value_value_and_grad(p[0], p[1]),
    );
}

#[grad]
fn continue_and_break(x: f64) -> f64 {
    let mut s = 0.0;
    for i in 0..20 {
        if i % 3 == 0 {
            continue;
        }
        if i > 13 {
            break;
        }
        s = s * 0.9 + (x * i as f64).cos();
    }
    let mut j = 0;
    loop {
        j += 1;
        if j % 2 == 0 {
            continue;
        }
        s += x / j as f64;
        if j > 6 {
            break;
        }
    }
    s
}

#[test]
fn continue_and_plain_break_three_ways() {
    let pts: &[&[f64]] = &[&[0.1], &[-0.45], &[1.3]];
    check(
        "continue_and_break",
        pts,
        |p| continue_and_break(p[0]),
        |p| continue_and_break_grad(p[0]),
        |p, d| continue_and_break_jvp(p[0], d[0]),
        |p, c| {
            let (v, pb) = continue_and_break_vjp(p[0]);
            (v, pb(c))
        },
        |p| continue_and_break_value_and_grad(p[0]),
    );
}

#[grad]
fn zero_trip_loops(x: f64, n: usize) -> f64 {
    let mut y = x * x;
    for _ in 0..n {
        y = y.sin();
    }
    for _ in (0..n).rev() {
        y *= x;
    }
    let mut k = n;
    while k > 0 {
        y += x;
        k -= 1;
    }
    while y > 1e9 {
        y *= 0.5;
    }
    for i in 5..n {
        y = y * x + i as f64;
    }
    y + x
}

#[test]
fn loops_of_zero_trips_three_ways() {
    let pts: &[&[f64]] = &[&[0.5], &[-1.5]];
    check(
        "zero_trip_loops(n = 0)",
        pts,
        |p| zero_trip_loops(p[0], 0),
        |p| zero_trip_loops_grad(p[0], 0),
        |p, d| zero_trip_loops_jvp(p[0], 0, d[0]),
        |p, c| {
            let (v, pb) = zero_trip_loops_vjp(p[0], 0);
            (v, pb(c))
        },
        |p| zero_trip_loops_value_and_grad(p[0], 0),
    );
    // With no trips f = x^2 + x.
    closed_form(
        "zero_trip_loops(n = 0)",
        pts,
        |p| zero_trip_loops_grad(p[0], 0),
        |p| 2.0 * p[0] + 1.0,
    );
    // And the same function with trips, so the loops are really differentiated.
    check(
        "zero_trip_loops(n = 3)",
        pts,
        |p| zero_trip_loops(p[0], 3),
        |p| zero_trip_loops_grad(p[0], 3),
        |p, d| zero_trip_loops_jvp(p[0], 3, d[0]),
        |p, c| {
            let (v, pb) = zero_trip_loops_vjp(p[0], 3);
            (v, pb(c))
        },
        |p| zero_trip_loops_value_and_grad(p[0], 3),
    );
}

#[grad]
fn nested_loops_overwrite(x: f64, y: f64) -> f64 {
    let mut a = x;
    let mut b = y;
    for i in 0..4 {
        for j in 0..3 {
            let t = a;
            a = (a * b).sin() + 0.1 * (i * j) as f64;
            b = b * 0.5 + t.cos();
        }
        a *= 1.1;
    }
    a * b
}

#[test]
fn nested_loops_with_overwritten_carried_values_three_ways() {
    let pts: &[&[f64]] = &[&[0.3, 0.8], &[-1.0, 0.5], &[1.7, -0.4]];
    check(
        "nested_loops_overwrite",
        pts,
        |p| nested_loops_overwrite(p[0], p[1]),
        |p| nested_loops_overwrite_grad(p[0], p[1]),
        |p, d| nested_loops_overwrite_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = nested_loops_overwrite_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| nested_loops_overwrite_value_and_grad(p[0], p[1]),
    );
}

#[grad]
fn logistic_map(r: f64, x0: f64) -> f64 {
    let mut x = x0;
    for _ in 0..30 {
        x = r * x * (1.0 - x);
    }
    x
}

#[test]
fn long_loop_of_nonlinear_overwrites_three_ways() {
    // r < 3: the map converges, so the derivative stays tame over 30 trips.
    let pts: &[&[f64]] = &[&[2.5, 0.3], &[1.8, 0.6], &[2.9, 0.1]];
    check(
        "logistic_map",
        pts,
        |p| logistic_map(p[0], p[1]),
        |p| logistic_map_grad(p[0], p[1]),
        |p, d| logistic_map_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = logistic_map_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| logistic_map_value_and_grad(p[0], p[1]),
    );
}

#[grad]
fn triple_nested_with_branches(x: f64, n: usize) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        for j in 0..i {
            let mut k = 0;
            while k < j {
                if (i + j + k) % 2 == 0 {
                    s += x * (k + 1) as f64;
                } else {
                    s = s * 0.95 + (x * j as f64).sin();
                }
                k += 1;
            }
        }
    }
    s
}

#[test]
fn triple_nested_loops_with_branches_three_ways() {
    for n in [0usize, 1, 3, 6] {
        let pts: &[&[f64]] = &[&[0.4], &[-0.9]];
        check(
            &format!("triple_nested_with_branches(n = {n})"),
            pts,
            |p| triple_nested_with_branches(p[0], n),
            |p| triple_nested_with_branches_grad(p[0], n),
            |p, d| triple_nested_with_branches_jvp(p[0], n, d[0]),
            |p, c| {
                let (v, pb) = triple_nested_with_branches_vjp(p[0], n);
                (v, pb(c))
            },
            |p| triple_nested_with_branches_value_and_grad(p[0], n),
        );
    }
}

#[grad]
fn labeled_break(x: f64, limit: usize) -> f64 {
    let mut s = 0.0;
    'outer: for i in 0..5 {
        for j in 0..5 {
            s = s * 0.9 + (x * (i * j) as f64).sin();
            if i * j > limit {
                break 'outer;
            }
            if j > i {
                continue 'outer;
            }
        }
    }
    s
}

#[test]
fn labeled_break_and_continue_across_nested_loops_three_ways() {
    for limit in [0usize, 3, 6, 100] {
        let pts: &[&[f64]] = &[&[0.3], &[-0.8]];
        check(
            &format!("labeled_break(limit = {limit})"),
            pts,
            |p| labeled_break(p[0], limit),
            |p| labeled_break_grad(p[0], limit),
            |p, d| labeled_break_jvp(p[0], limit, d[0]),
            |p, c| {
                let (v, pb) = labeled_break_vjp(p[0], limit);
                (v, pb(c))
            },
            |p| labeled_break_value_and_grad(p[0], limit),
        );
    }
}

#[grad]
fn long_product(a: f64, n: usize) -> f64 {
    let mut x = 1.0;
    for _ in 0..n {
        x *= a;
    }
    x
}

#[test]
fn a_hundred_thousand_trips_match_the_closed_form() {
    // Every trip overwrites x, so the reverse sweep pops 1e5 values in order.
    let (a, n) = (1.00001, 100_000usize);
    let pts: &[&[f64]] = &[&[a], &[0.99999]];
    closed_form(
        "long_product",
        pts,
        |p| long_product_grad(p[0], n),
        |p| n as f64 * p[0].powi(n as i32 - 1),
    );
    let (v, pb) = long_product_vjp(a, n);
    assert_eq!(v, long_product(a, n));
    let (_, t) = long_product_jvp(a, n, 1.0);
    assert!(close(pb(1.0), t, AD_RTOL, 0.0), "long_product: vjp vs jvp");
}
