//! f32 works as well as f64: each f32 function has an f64 twin (checked against finite
//! differences), and every f32 derivative must agree with the twin's to f32 precision.

use crate::common::*;
use ferrax::prelude::*;

#[grad]
fn mix32(x: f32, y: f32) -> f32 {
    let mut a = x.sin() * y.exp() + x.powi(3) / (1.0 + y * y);
    if a > 0.0 {
        a = a.sqrt() + x.tanh();
    } else {
        a = -a.abs().ln_1p() + y.atan2(x);
    }
    a.max(x * 0.5).hypot(y)
}

#[grad]
fn mix64(x: f64, y: f64) -> f64 {
    let mut a = x.sin() * y.exp() + x.powi(3) / (1.0 + y * y);
    if a > 0.0 {
        a = a.sqrt() + x.tanh();
    } else {
        a = -a.abs().ln_1p() + y.atan2(x);
    }
    a.max(x * 0.5).hypot(y)
}

#[test]
fn f32_scalar_methods_and_branches_match_the_f64_twin() {
    let pts: &[&[f64]] = &[&[0.5, 0.25], &[-1.5, 0.5], &[1.25, -0.75]];
    check(
        "mix64",
        pts,
        |p| mix64(p[0], p[1]),
        |p| mix64_grad(p[0], p[1]),
        |p, d| mix64_jvp(p[0], p[1], d[0], d[1]),
        |p, c| {
            let (v, pb) = mix64_vjp(p[0], p[1]);
            (v, pb(c))
        },
        |p| mix64_value_and_grad(p[0], p[1]),
    );
    let s = |p: &[f64]| (p[0] as f32, p[1] as f32);
    check_f32(
        "mix32",
        pts,
        |p| {
            let (x, y) = s(p);
            mix32(x, y)
        },
        |p| {
            let (x, y) = s(p);
            mix32_grad(x, y)
        },
        |p, d| {
            let ((x, y), (dx, dy)) = (s(p), s(d));
            mix32_jvp(x, y, dx, dy)
        },
        |p, c| {
            let (x, y) = s(p);
            let (v, pb) = mix32_vjp(x, y);
            (v, pb(c))
        },
        |p| {
            let (x, y) = s(p);
            mix32_value_and_grad(x, y)
        },
        |p| mix64_grad(p[0], p[1]).flat(),
    );
}

#[grad]
fn loop32(x: &[f32], a: f32) -> f32 {
    let mut v = vec![0.0f32; x.len()];
    let mut s = 0.0f32;
    for i in 0..x.len() {
        v[i] = (x[i] * a).cos();
        s = s * 0.5 + v[i] * x[i];
    }
    let mut k = 0;
    while k < x.len() {
        s += v[k] / (k + 1) as f32;
        k += 2;
    }
    s
}

#[grad]
fn loop64(x: &[f64], a: f64) -> f64 {
    let mut v = vec![0.0f64; x.len()];
    let mut s = 0.0f64;
    for i in 0..x.len() {
        v[i] = (x[i] * a).cos();
        s = s * 0.5 + v[i] * x[i];
    }
    let mut k = 0;
    while k < x.len() {
        s += v[k] / (k + 1) as f64;
        k += 2;
    }
    s
}

#[test]
fn f32_slices_vecs_and_loops_match_the_f64_twin() {
    let pts: &[&[f64]] = &[&[0.5, -0.25, 1.0, 0.75, 1.5], &[1.0, 2.0, -0.5]];
    let s64 = |p: &[f64]| (p[..p.len() - 1].to_vec(), p[p.len() - 1]);
    let s32 = |p: &[f64]| {
        let x: Vec<f32> = p[..p.len() - 1].iter().map(|&v| v as f32).collect();
        (x, p[p.len() - 1] as f32)
    };
    check(
        "loop64",
        pts,
        |p| {
            let (x, a) = s64(p);
            loop64(&x, a)
        },
        |p| {
            let (x, a) = s64(p);
            loop64_grad(&x, a)
        },
        |p, d| {
            let ((x, a), (dx, da)) = (s64(p), s64(d));
            loop64_jvp(&x, a, &dx, da)
        },
        |p, c| {
            let (x, a) = s64(p);
            let (v, pb) = loop64_vjp(&x, a);
            (v, pb(c))
        },
        |p| {
            let (x, a) = s64(p);
            loop64_value_and_grad(&x, a)
        },
    );
    check_f32(
        "loop32",
        pts,
        |p| {
            let (x, a) = s32(p);
            loop32(&x, a)
        },
        |p| {
            let (x, a) = s32(p);
            loop32_grad(&x, a)
        },
        |p, d| {
            let ((x, a), (dx, da)) = (s32(p), s32(d));
            loop32_jvp(&x, a, &dx, da)
        },
        |p, c| {
            let (x, a) = s32(p);
            let (v, pb) = loop32_vjp(&x, a);
            (v, pb(c))
        },
        |p| {
            let (x, a) = s32(p);
            loop32_value_and_grad(&x, a)
        },
        |p| {
            let (x, a) = s64(p);
            loop64_grad(&x, a).flat()
        },
    );
    // Gradient types: &[f32] -> Vec<f32>, f32 -> f32.
    let (gx, ga): (Vec<f32>, f32) = loop32_grad(&[0.5, 1.0], 2.0);
    assert_eq!(gx.len(), 2);
    assert!(ga.is_finite());
}

#[grad]
fn array32(a: [f32; 3]) -> f32 {
    let mut t = [0.0f32; 3];
    for i in 0..3 {
        t[i] = a[i].exp() - a[(i + 2) % 3];
    }
    t[0] * t[1] + t[2].powi(2)
}

#[grad]
fn array64(a: [f64; 3]) -> f64 {
    let mut t = [0.0f64; 3];
    for i in 0..3 {
        t[i] = a[i].exp() - a[(i + 2) % 3];
    }
    t[0] * t[1] + t[2].powi(2)
}

#[test]
fn f32_arrays_match_the_f64_twin() {
    let pts: &[&[f64]] = &[&[0.5, -0.25, 1.0], &[-1.0, 0.3, 0.2]];
    check(
        "array64",
        pts,
        |p| array64(arr(p, 0)),
        |p| array64_grad(arr(p, 0)),
        |p, d| array64_jvp(arr(p, 0), arr(d, 0)),
        |p, c| {
            let (v, pb) = array64_vjp(arr(p, 0));
            (v, pb(c))
        },
        |p| array64_value_and_grad(arr(p, 0)),
    );
    check_f32(
        "array32",
        pts,
        |p| array32(arr32(p, 0)),
        |p| array32_grad(arr32(p, 0)),
        |p, d| array32_jvp(arr32(p, 0), arr32(d, 0)),
        |p, c| {
            let (v, pb) = array32_vjp(arr32(p, 0));
            (v, pb(c))
        },
        |p| array32_value_and_grad(arr32(p, 0)),
        |p| array64_grad(arr(p, 0)).flat(),
    );
    let g: [f32; 3] = array32_grad([0.1, 0.2, 0.3]);
    assert!(g.iter().all(|v| v.is_finite()));
}

#[grad]
fn mixed_precision(x: f32, y: f32) -> f32 {
    // Computes in f64 internally: `as f64` / `as f32` casts between float types.
    let a = x as f64;
    let b = (a * a).sin() + y as f64;
    (b * 0.5) as f32 * y
}

#[test]
fn casts_between_f32_and_f64_inside_an_f32_function() {
    let (x, y) = (0.5f32, 1.5f32);
    let (gx, gy) = mixed_precision_grad(x, y);
    let (a, yd) = (f64::from(x), f64::from(y));
    let ex = (a * a).cos() * 2.0 * a * 0.5 * yd;
    let ey = 0.5 * ((a * a).sin() + yd) + 0.5 * yd;
    assert!(
        (f64::from(gx) - ex).abs() < 1e-6 && (f64::from(gy) - ey).abs() < 1e-6,
        "{gx} {gy} vs {ex} {ey}"
    );
    let (_, tx) = mixed_precision_jvp(x, y, 1.0, 0.0);
    let (_, ty) = mixed_precision_jvp(x, y, 0.0, 1.0);
    let (v, pb) = mixed_precision_vjp(x, y);
    assert_eq!(v, mixed_precision(x, y));
    assert_eq!(((tx, ty), pb(1.0)), ((gx, gy), (gx, gy)));
}
