//! Macros a `#[grad]` / `#[vmap]` function runs for their effect: `println!` and the other
//! printing macros, `dbg!`, `assert!` and the other checks, `panic!` and `unreachable!`.
//! Each runs where the primal computation runs, once per time the user's code would run
//! it (never again when the reverse sweep recomputes a branch or a loop body), sees the
//! values its names have at that point, and leaves every derivative as it was.
//!
//! A run is counted through a check whose condition calls `tick`, which counts per thread.

// the index loops are what the macro must differentiate
#![allow(clippy::needless_range_loop)]

mod common;

use ferrax::prelude::*;
use std::cell::Cell;

thread_local! {
    static TICKS: Cell<usize> = const { Cell::new(0) };
}

/// Counts one run of the check that calls it; always true.
fn tick() -> bool {
    TICKS.with(|t| t.set(t.get() + 1));
    true
}

/// How many times `f` runs a check that calls `tick`.
fn ticks<R>(f: impl FnOnce() -> R) -> (R, usize) {
    TICKS.with(|t| t.set(0));
    let r = f();
    (r, TICKS.with(|t| t.get()))
}

/// The message of the panic `f` raises.
fn panic_message<R>(f: impl FnOnce() -> R + std::panic::UnwindSafe) -> String {
    let e = std::panic::catch_unwind(f).err().expect("expected a panic");
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn fd(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    common::fd_grad(&f, x)
}

fn close(a: &[f64], b: &[f64], what: &str) {
    common::assert_all_close(a, b, 1e-6, what);
}

/// Checks before, prints inside a loop and a branch in it, a `dbg!` whose value is used, a
/// `vec![a, b]`, and a `match` whose last arm is `unreachable!`.
#[hessian]
#[grad]
fn energy(x: &[f64], k: usize) -> f64 {
    assert!(!x.is_empty(), "energy of no points");
    assert_eq!(x.len() % 2, 0, "{} coordinates are not pairs", x.len());
    let mut s = 0.0;
    for i in 0..x.len() {
        s += x[i] * x[i] * x[i];
        assert!(tick());
        if i == k {
            println!("step {i}: s = {s:.3}, x = {:?}", x[i]);
            if s > 0.0 {
                eprint!("");
                assert!(tick(), "counted in a branch inside the loop");
            }
        }
    }
    let t = dbg!(s * 2.0).sin();
    let mut v = vec![t, s];
    v.push(x[0]);
    match k % 3 {
        0 => v[0] * v[2],
        1 => v[1] * v[2],
        2 => v[0] + v[1],
        _ => unreachable!("k % 3 = {}", k % 3),
    }
}

#[test]
fn effects_leave_derivatives_as_they_were() {
    let x = [0.3, -0.7, 1.1, 0.5];
    for k in 0..4 {
        let g = energy_grad(&x, k);
        close(&g, &fd(|x| energy(x, k), &x), &format!("grad, k = {k}"));
        let mut e = vec![0.0; x.len()];
        e[1] = 1.0;
        let (v, t) = energy_jvp(&x, k, &e);
        assert_eq!(v, energy(&x, k));
        close(&[t], &[g[1]], "jvp");
        let h = energy_hessian(&x, k);
        for i in 0..x.len() {
            let row = fd(|y| energy_grad(y, k)[i], &x);
            for j in 0..x.len() {
                assert!(
                    (h[i][j] - row[j]).abs() <= 1e-5 * (1.0 + row[j].abs()),
                    "hessian, k = {k}"
                );
            }
        }
    }
}

#[test]
fn effects_run_once_per_run_of_the_primal() {
    let x = [0.3, -0.7, 1.1, 0.5];
    // k = 2: s > 0 there, so the branch's check runs too
    let (_, primal) = ticks(|| energy(&x, 2));
    assert_eq!(primal, x.len() + 1);
    for (what, n) in [
        ("jvp", ticks(|| energy_jvp(&x, 2, &[1.0; 4])).1),
        ("vjp", ticks(|| (energy_vjp(&x, 2).1)(1.0)).1),
        ("grad", ticks(|| energy_grad(&x, 2)).1),
        ("value_and_grad", ticks(|| energy_value_and_grad(&x, 2)).1),
        ("hvp", ticks(|| energy_hvp(&x, 2, &[1.0; 4])).1),
    ] {
        assert_eq!(n, primal, "{what}");
    }
}

#[test]
fn checks_see_the_values_at_their_point_in_every_counterpart() {
    let odd = [0.3, -0.7, 1.1];
    let want = "3 coordinates are not pairs";
    assert!(panic_message(|| energy(&odd, 0)).contains(want));
    assert!(panic_message(|| energy_grad(&odd, 0)).contains(want));
    assert!(panic_message(|| energy_jvp(&odd, 0, &[0.0; 3])).contains(want));
    assert!(panic_message(|| energy_hessian(&odd, 0)).contains(want));
    assert!(panic_message(|| energy_grad(&[], 0)).contains("energy of no points"));
}

/// A check on a value in the middle of a loop, and a `while` loop whose body the reverse
/// sweep re-runs.
#[grad]
fn settle(x: f64, steps: usize) -> f64 {
    let mut y = x;
    let mut n = 0;
    while n < steps {
        y = y * 0.5 + 1.0;
        if y > 0.0 {
            assert!(tick() && y < 1e6, "diverged at step {n}: y = {y:e}");
        }
        n += 1;
    }
    y * y
}

#[test]
fn a_check_in_a_while_loop_runs_once_per_trip_and_reads_that_trip_s_values() {
    let (g, n) = ticks(|| settle_grad(0.8, 5));
    assert_eq!(n, 5);
    close(&[g], &fd(|v| settle(v[0], 5), &[0.8]), "settle");
    let m = panic_message(|| settle_grad(4e6, 3));
    assert!(m.contains("diverged at step 0: y = 2.000001e6"), "{m}");
}

/// `panic!` in one branch of an `if` whose value is used, and `todo!`-free tails.
#[grad]
fn guarded_sqrt(x: f64) -> f64 {
    let r = if x >= 0.0 {
        x.sqrt()
    } else {
        panic!("guarded_sqrt of {x}")
    };
    r * x
}

#[test]
fn a_panicking_branch_leaves_the_other_one_differentiable() {
    close(
        &[guarded_sqrt_grad(2.0)],
        &fd(|v| guarded_sqrt(v[0]), &[2.0]),
        "guarded_sqrt",
    );
    assert_eq!(
        panic_message(|| guarded_sqrt_grad(-1.0)),
        "guarded_sqrt of -1"
    );
}

/// Under `#[vmap]`: a check on an argument shared by every example, and prints of
/// per-example values (printed as tensors, batch axis first).
#[vmap(in_axes = (0, None))]
#[grad(wrt(x))]
fn scaled(x: f64, scale: f64) -> f64 {
    assert!(tick() && scale > 0.0, "scale {scale} is not positive");
    let y = dbg!(x * scale);
    println!("y = {y:.2}");
    y.tanh() * x
}

#[test]
fn vmap_runs_effects_once_per_batch_and_keeps_the_values() {
    let xs = Tensor::from_vec(vec![0.1f64, -0.4, 0.9], &[3]);
    let (ys, n) = ticks(|| scaled_vmap(&xs, 1.5));
    assert_eq!(n, 1);
    let (gs, n) = ticks(|| scaled_grad_vmap(&xs, 1.5));
    assert_eq!(n, 1);
    for (i, x) in xs.to_vec::<f64>().into_iter().enumerate() {
        close(&[ys.to_vec::<f64>()[i]], &[scaled(x, 1.5)], "per example");
        close(
            &[gs.to_vec::<f64>()[i]],
            &[scaled_grad(x, 1.5)],
            "per example",
        );
    }
    let m = panic_message(|| scaled_vmap(&xs, -1.0));
    assert_eq!(m, "scale -1 is not positive");
}

/// Per-example effects: a check on a per-example value, one under a per-example branch,
/// and one in a loop whose trip count differs per example, with a branch inside it.
#[vmap]
fn halvings(x: f64) -> f64 {
    assert!(tick() && x.is_finite(), "x = {x} is not finite");
    let mut y = x;
    if x > 0.0 {
        assert!(tick(), "positive");
    } else {
        assert!(tick() && tick(), "not positive");
    }
    while y.abs() > 1.0 {
        y *= 0.5;
        if y > 0.0 {
            assert!(tick() && y < x, "{y} after halving {x}");
        }
    }
    y * x
}

/// The same checks before and in a per-example branch, differentiated.
#[vmap]
#[grad]
fn branchy(x: f64) -> f64 {
    assert!(tick() && x.is_finite(), "x = {x} is not finite");
    if x > 0.0 {
        assert!(tick(), "positive");
        x.sin() * x
    } else {
        assert!(tick() && tick(), "not positive");
        x * x * x
    }
}

#[test]
fn vmap_runs_per_example_effects_once_for_each_example_they_hold_for() {
    let xs = [3.0, -5.0, 0.5, 9.0];
    let t = Tensor::from_vec(xs.to_vec(), &[4]);
    // as many runs as a loop of the unbatched function makes
    let (want_ys, want) = ticks(|| xs.map(halvings));
    // 4 checks first, 3 + 2 in the branches, halvings: 2 of 3.0, none of 0.5, 4 of 9.0
    assert_eq!(want, 15);
    let (ys, n) = ticks(|| halvings_vmap(&t));
    assert_eq!(n, want);
    close(&ys.to_vec::<f64>(), &want_ys, "halvings");

    let (want_gs, want) = ticks(|| xs.map(branchy_grad));
    assert_eq!(want, 9);
    let (_, n) = ticks(|| xs.map(branchy));
    assert_eq!(n, 9);
    let (gs, n) = ticks(|| branchy_grad_vmap(&t));
    assert_eq!(n, want);
    close(&gs.to_vec::<f64>(), &want_gs, "branchy gradients");

    // a batch of one example, and of none
    for n in [1, 0] {
        let (want_ys, want) = ticks(|| xs[..n].iter().map(|x| halvings(*x)).collect::<Vec<_>>());
        let few = Tensor::from_vec(xs[..n].to_vec(), &[n]);
        let (ys, got) = ticks(|| halvings_vmap(&few));
        assert_eq!(got, want, "batch of {n}");
        close(&ys.to_vec::<f64>(), &want_ys, "halvings, small batch");
    }

    let bad = Tensor::from_vec(vec![1.0, f64::NAN, 2.0], &[3]);
    assert_eq!(
        panic_message(|| halvings_vmap(&bad)),
        "x = NaN is not finite"
    );
    assert_eq!(
        panic_message(|| branchy_grad_vmap(&bad)),
        "x = NaN is not finite"
    );
}

/// The new forms together: effects inside closures (a `let` closure and a `.map` closure),
/// over views, in a match arm with a guard.
#[grad]
fn combined(x: &[f64], k: usize) -> f64 {
    let sq = |v: f64| {
        assert!(tick() && v.is_finite(), "{v} is not finite");
        v * v
    };
    let tail = &x[1..];
    let s: f64 = tail
        .iter()
        .map(|v| {
            debug_assert!(tick());
            sq(*v) * x[0]
        })
        .sum();
    match k {
        j if j < tail.len() => {
            println!("tail[{j}] = {:.3}", tail[j]);
            s + dbg!(tail[j]).sin()
        }
        _ => s,
    }
}

#[test]
fn effects_in_closures_over_views_in_guarded_arms() {
    let x = [0.3, -0.7, 1.1, 0.5];
    for k in [0, 2, 5] {
        let (g, n) = ticks(|| combined_grad(&x, k));
        // two checks per element of the tail (`debug_assert!` only in debug builds)
        let per = if cfg!(debug_assertions) { 2 } else { 1 };
        assert_eq!(n, per * 3, "k = {k}");
        close(&g, &fd(|x| combined(x, k), &x), &format!("k = {k}"));
    }
    let bad = [0.3, f64::NAN, 1.0];
    let m = panic_message(|| combined_grad(&bad, 0));
    assert_eq!(m, "NaN is not finite");
}
