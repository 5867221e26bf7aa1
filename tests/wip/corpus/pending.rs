//! Corpus functions the macro does not handle yet (see ../GAPS.md). Not compiled:
//! each moves back to its theme's file once it compiles and passes.

use crate::common::*;
use ferrax::prelude::*;

// ---- from calls.rs ----

#[grad]
fn square(x: f64) -> f64 {
    x * x
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
    let pts: &[&[f64]] = &[&[0.5, -1.0, 2.0, 1.0, 2.0, 0.5, 1.5], &[1.0, 1.0, 1.0, 0.1, 0.2, 0.3, -0.5]];
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

// ---- from items.rs ----

#[grad]
fn mut_arguments(mut x: f64, mut n: usize) -> f64 {
    while n > 0 {
        x = x.sin() + 0.5 * x;
        n -= 1;
    }
    x
}

#[test]
fn mut_arguments_three_ways() {
    for n in [0usize, 1, 5] {
        let pts: &[&[f64]] = &[&[0.4], &[-1.7]];
        check(
            &format!("mut_arguments(n = {n})"),
            pts,
            |p| mut_arguments(p[0], n),
            |p| mut_arguments_grad(p[0], n),
            |p, d| mut_arguments_jvp(p[0], n, d[0]),
            |p, c| {
                let (v, pb) = mut_arguments_vjp(p[0], n);
                (v, pb(c))
            },
            |p| mut_arguments_value_and_grad(p[0], n),
        );
    }
}

