//! The generated items themselves: they keep the visibility of `f`, work on `mut`
//! arguments, and accept every form of float literal.

use crate::common::*;

mod inner {
    use ferrax::prelude::*;

    /// Public in a private module: the generated items must be `pub` too.
    #[grad]
    pub fn public_fn(x: f64) -> f64 {
        x * x * x
    }

    #[grad]
    pub(crate) fn crate_fn(x: f64, y: f64) -> f64 {
        x * y
    }
}

#[test]
fn generated_items_keep_the_visibility_of_the_function() {
    // Called from outside their module: this compiles only if they are visible here.
    assert_eq!(inner::public_fn_grad(2.0), 12.0);
    assert_eq!(inner::public_fn_jvp(2.0, 1.0), (8.0, 12.0));
    let (v, pb) = inner::public_fn_vjp(2.0);
    assert_eq!((v, pb(1.0)), (8.0, 12.0));
    assert_eq!(inner::public_fn_value_and_grad(2.0), (8.0, 12.0));
    assert_eq!(inner::crate_fn_grad(2.0, 3.0), (3.0, 2.0));
    assert_eq!(inner::public_fn(2.0) + inner::crate_fn(2.0, 3.0), 14.0);
}

use ferrax::prelude::*;

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

#[grad]
#[inline(never)] // other attributes stay on `f`
fn literal_forms(x: f64) -> f64 {
    let a = 2. * x + 1e-3 * x * x + 1_000.0 * 1.5e-4 * x;
    let b = 3f64 * x - 0.5_f64 * x + 2.5E+0 * x;
    a * b - 7.0
}

#[test]
fn float_literal_forms_three_ways() {
    let pts: &[&[f64]] = &[&[0.4], &[-1.7]];
    check(
        "literal_forms",
        pts,
        |p| literal_forms(p[0]),
        |p| literal_forms_grad(p[0]),
        |p, d| literal_forms_jvp(p[0], d[0]),
        |p, c| {
            let (v, pb) = literal_forms_vjp(p[0]);
            (v, pb(c))
        },
        |p| literal_forms_value_and_grad(p[0]),
    );
    // a = 2.15 x + 1e-3 x^2, b = 5 x: f = 10.75 x^2 + 5e-3 x^3 - 7
    closed_form(
        "literal_forms",
        pts,
        |p| literal_forms_grad(p[0]),
        |p| 21.5 * p[0] + 0.015 * p[0] * p[0],
    );
}
