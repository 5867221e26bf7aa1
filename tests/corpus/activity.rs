//! Which arguments are active: `#[grad(wrt(..))]` selects them; integer, bool and enum
//! arguments are never active and pass through; gradient types mirror argument types.

use crate::common::*;
use ferrax::prelude::*;

#[grad(wrt(x))]
fn wrt_first(x: f64, y: f64) -> f64 {
    x * x * y + y.sin()
}

#[test]
fn wrt_one_of_two_scalars_three_ways() {
    for y in [0.5, -2.0] {
        let pts: &[&[f64]] = &[&[1.5], &[-0.3]];
        check(
            &format!("wrt_first(y = {y})"),
            pts,
            |p| wrt_first(p[0], y),
            |p| wrt_first_grad(p[0], y),
            |p, d| wrt_first_jvp(p[0], y, d[0]),
            |p, c| {
                let (v, pb) = wrt_first_vjp(p[0], y);
                (v, pb(c))
            },
            |p| wrt_first_value_and_grad(p[0], y),
        );
        closed_form(
            "wrt_first",
            pts,
            |p| wrt_first_grad(p[0], y),
            |p| 2.0 * p[0] * y,
        );
    }
    // One active argument: the gradient is the value itself, not a 1-tuple.
    let g: f64 = wrt_first_grad(1.0, 2.0);
    assert_eq!(g, 4.0);
}

#[grad(wrt(y, z))]
fn wrt_two_of_three(x: f64, y: f64, z: f64) -> f64 {
    (x * y).sin() + y * z * z + x * z
}

#[test]
fn wrt_two_of_three_scalars_three_ways() {
    let x = 0.7;
    let pts: &[&[f64]] = &[&[1.5, -0.5], &[-0.3, 2.0]];
    check(
        "wrt_two_of_three",
        pts,
        |p| wrt_two_of_three(x, p[0], p[1]),
        |p| wrt_two_of_three_grad(x, p[0], p[1]),
        |p, d| wrt_two_of_three_jvp(x, p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = wrt_two_of_three_vjp(x, p[0], p[1]);
            (v, pb(c))
        },
        |p| wrt_two_of_three_value_and_grad(x, p[0], p[1]),
    );
    closed_form(
        "wrt_two_of_three",
        pts,
        |p| wrt_two_of_three_grad(x, p[0], p[1]),
        |p| {
            let (y, z) = (p[0], p[1]);
            (x * (x * y).cos() + z * z, 2.0 * y * z + x)
        },
    );
}

#[grad(wrt(z, x))]
fn wrt_order_is_parameter_order(x: f64, y: f64, z: f64) -> f64 {
    x * 10.0 + y + z * 100.0
}

#[test]
fn wrt_gradients_come_in_parameter_order() {
    // wrt(z, x) lists z first, but gradients follow the parameters: (d/dx, d/dz).
    let g: (f64, f64) = wrt_order_is_parameter_order_grad(1.0, 2.0, 3.0);
    assert_eq!(g, (10.0, 100.0));
    let (v, t) = wrt_order_is_parameter_order_jvp(1.0, 2.0, 3.0, 1.0, 0.0);
    assert_eq!(v, wrt_order_is_parameter_order(1.0, 2.0, 3.0));
    assert_eq!(t, 10.0, "the first tangent belongs to x");
}

#[grad(wrt(w))]
fn wrt_slice(w: &[f64], x: &[f64], b: f64) -> f64 {
    let mut s = b;
    for i in 0..w.len() {
        s += w[i] * x[i];
    }
    (s * s).ln_1p()
}

#[test]
fn wrt_a_slice_only_three_ways() {
    let x = [0.5, -1.0, 2.0];
    let b = 0.25;
    let pts: &[&[f64]] = &[&[1.0, 2.0, 3.0], &[-0.4, 0.1, 0.2]];
    check(
        "wrt_slice",
        pts,
        |p| wrt_slice(p, &x, b),
        |p| wrt_slice_grad(p, &x, b),
        |p, d| wrt_slice_jvp(p, &x, b, d),
        |p, c| {
            let (v, pb) = wrt_slice_vjp(p, &x, b);
            (v, pb(c))
        },
        |p| wrt_slice_value_and_grad(p, &x, b),
    );
    closed_form(
        "wrt_slice",
        pts,
        |p| wrt_slice_grad(p, &x, b),
        |w| {
            let s = b + w.iter().zip(&x).map(|(a, c)| a * c).sum::<f64>();
            x.iter()
                .map(|xi| 2.0 * s / (1.0 + s * s) * xi)
                .collect::<Vec<f64>>()
        },
    );
}

#[grad]
fn inactive_int_bool_args(x: f64, n: u32, neg: bool, scale: i64, y: f64) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        s += (x * y).powi(i as i32 + 1) / (i + 1) as f64;
    }
    let s = if neg { -s } else { s };
    s * scale as f64 + y
}

#[test]
fn int_and_bool_arguments_are_inactive_three_ways() {
    for (n, neg, scale) in [(0u32, false, 1i64), (3, true, 2), (5, false, -3)] {
        let pts: &[&[f64]] = &[&[0.5, 0.8], &[-0.6, 1.1]];
        check(
            &format!("inactive_int_bool_args({n}, {neg}, {scale})"),
            pts,
            |p| inactive_int_bool_args(p[0], n, neg, scale, p[1]),
            |p| inactive_int_bool_args_grad(p[0], n, neg, scale, p[1]),
            |p, d| inactive_int_bool_args_jvp(p[0], n, neg, scale, p[1], d[0], d[1]),
            |p, c| {
                let (v, pb) = inactive_int_bool_args_vjp(p[0], n, neg, scale, p[1]);
                (v, pb(c))
            },
            |p| inactive_int_bool_args_value_and_grad(p[0], n, neg, scale, p[1]),
        );
    }
    // Two active arguments (x, y) around three inactive ones: a 2-tuple.
    let g: (f64, f64) = inactive_int_bool_args_grad(1.0, 0, false, 1, 1.0);
    assert_eq!(g, (0.0, 1.0));
}

#[grad]
fn mixed_gradient_types(a: [f64; 2], v: &[f64], s: f64) -> f64 {
    let mut t = s * a[0];
    for x in v.iter() {
        t += x * a[1];
    }
    t * t
}

#[test]
fn gradient_types_mirror_argument_types() {
    let v = [1.0, 2.0, 3.0];
    let (ga, gv, gs): ([f64; 2], Vec<f64>, f64) = mixed_gradient_types_grad([0.5, 2.0], &v, 3.0);
    // t = 1.5 + 12 = 13.5; dt/da = (s, sum v) = (3, 6); dt/dv = a1; dt/ds = a0.
    let t = 13.5;
    assert_eq!(ga, [2.0 * t * 3.0, 2.0 * t * 6.0]);
    assert_eq!(gv, vec![2.0 * t * 2.0; 3]);
    assert_eq!(gs, 2.0 * t * 0.5);
    let pts: &[&[f64]] = &[
        &[0.5, 2.0, 1.0, 2.0, 3.0, 3.0],
        &[-0.2, 0.7, 0.3, -1.0, 0.0, 0.4],
    ];
    let parts = |p: &[f64]| (arr::<2>(p, 0), p[2..5].to_vec(), p[5]);
    check(
        "mixed_gradient_types",
        pts,
        |p| {
            let (a, v, s) = parts(p);
            mixed_gradient_types(a, &v, s)
        },
        |p| {
            let (a, v, s) = parts(p);
            mixed_gradient_types_grad(a, &v, s)
        },
        |p, d| {
            let ((a, v, s), (da, dv, ds)) = (parts(p), parts(d));
            mixed_gradient_types_jvp(a, &v, s, da, &dv, ds)
        },
        |p, c| {
            let (a, v, s) = parts(p);
            let (val, pb) = mixed_gradient_types_vjp(a, &v, s);
            (val, pb(c))
        },
        |p| {
            let (a, v, s) = parts(p);
            mixed_gradient_types_value_and_grad(a, &v, s)
        },
    );
}

#[grad]
fn activity_through_locals(x: f64, y: f64) -> f64 {
    // Values that never depend on x or y are inactive even though they are floats.
    let k = 2.0;
    let mut c = 1.0;
    for i in 0..4 {
        c = c * k + i as f64;
    }
    let u = c * x;
    let _dead = y.exp(); // active but unused: contributes nothing
    u + c
}

#[test]
fn inactive_float_locals_and_dead_values_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, 1.5], &[-2.0, 3.0]];
    check(
        "activity_through_locals",
        pts,
        |p| activity_through_locals(p[0], p[1]),
        |p| activity_through_locals_grad(p[0], p[1]),
        |p, d| activity_through_locals_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = activity_through_locals_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| activity_through_locals_value_and_grad(p[0], p[1]),
    );
    // c = (((1*2 + 0)*2 + 1)*2 + 2)*2 + 3 = 27
    closed_form(
        "activity_through_locals",
        pts,
        |p| activity_through_locals_grad(p[0], p[1]),
        |_| (27.0, 0.0),
    );
}
