//! Slices `&[f64]` in, `Vec<f64>` locals (`vec![0.0; n]`, `Vec::with_capacity` + `push`),
//! fixed arrays, element reads and writes (`v[i] = ..`, `v[i] += ..`), and iteration
//! with `.iter()`, `.enumerate()` and `.zip()`.

// Index loops are what this file tests, so clippy's iterator advice does not apply.
#![allow(clippy::needless_range_loop, clippy::manual_memcpy)]

use crate::common::*;
use ferrax::prelude::*;

#[grad]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..a.len() {
        s += a[i] * b[i];
    }
    s
}

#[test]
fn dot_product_of_two_slices_three_ways() {
    let pts: &[&[f64]] = &[
        &[1.0, 2.0, 3.0, 0.5, -1.0, 4.0],
        &[-0.3, 0.0, 2.5, 1.5, 1.0, -2.0],
    ];
    let (x, y) = (|p: &[f64]| p[..3].to_vec(), |p: &[f64]| p[3..].to_vec());
    check(
        "dot",
        pts,
        |p| dot(&x(p), &y(p)),
        |p| dot_grad(&x(p), &y(p)),
        |p, d| dot_jvp(&x(p), &y(p), &x(d), &y(d)),
        |p, c| {
            let (a, b) = (x(p), y(p));
            let (v, pb) = dot_vjp(&a, &b);
            (v, pb(c))
        },
        |p| dot_value_and_grad(&x(p), &y(p)),
    );
    closed_form("dot", pts, |p| dot_grad(&x(p), &y(p)), |p| (y(p), x(p)));
}

#[grad]
fn rosen(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() - 1 {
        let a = 1.0 - x[i];
        let b = x[i + 1] - x[i] * x[i];
        s += a * a + 100.0 * b * b;
    }
    s
}

#[test]
fn rosenbrock_over_a_slice_three_ways() {
    let pts: &[&[f64]] = &[&[-1.2, 1.0], &[0.5, 0.3, -0.2, 1.1, 0.9], &[1.0, 1.0, 1.0]];
    check(
        "rosen",
        pts,
        rosen,
        rosen_grad,
        rosen_jvp,
        |p, c| {
            let (v, pb) = rosen_vjp(p);
            (v, pb(c))
        },
        rosen_value_and_grad,
    );
    closed_form("rosen", pts, rosen_grad, |x| {
        let n = x.len();
        let mut g = vec![0.0; n];
        for i in 0..n - 1 {
            g[i] += -2.0 * (1.0 - x[i]) - 400.0 * x[i] * (x[i + 1] - x[i] * x[i]);
            g[i + 1] += 200.0 * (x[i + 1] - x[i] * x[i]);
        }
        g
    });
}

#[grad]
fn iter_forms(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for v in x.iter() {
        s += v * v;
    }
    for &v in x.iter() {
        s += v.sin();
    }
    for (i, v) in x.iter().enumerate() {
        s += (i as f64 + 1.0) * v.exp() * 0.1;
    }
    s
}

#[test]
fn iter_and_iter_enumerate_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, -1.0, 2.0], &[1.5], &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]];
    check(
        "iter_forms",
        pts,
        iter_forms,
        iter_forms_grad,
        iter_forms_jvp,
        |p, c| {
            let (v, pb) = iter_forms_vjp(p);
            (v, pb(c))
        },
        iter_forms_value_and_grad,
    );
    closed_form("iter_forms", pts, iter_forms_grad, |x| {
        x.iter()
            .enumerate()
            .map(|(i, v)| 2.0 * v + v.cos() + (i as f64 + 1.0) * v.exp() * 0.1)
            .collect::<Vec<f64>>()
    });
}

#[grad]
fn zip_forms(x: &[f64], w: &[f64]) -> f64 {
    let mut s = 0.0;
    for (a, b) in x.iter().zip(w.iter()) {
        s += a * b.tanh();
    }
    for (i, (a, b)) in x.iter().zip(w).enumerate() {
        if i % 2 == 0 {
            s -= (a - b) * (a - b);
        }
    }
    s
}

#[test]
fn zip_and_enumerate_of_zip_three_ways() {
    let pts: &[&[f64]] = &[
        &[0.5, -1.0, 2.0, 0.3, 0.7, -0.2],
        &[1.0, 2.0, 3.0, -1.0, -2.0, -3.0],
    ];
    let (x, w) = (|p: &[f64]| p[..3].to_vec(), |p: &[f64]| p[3..].to_vec());
    check(
        "zip_forms",
        pts,
        |p| zip_forms(&x(p), &w(p)),
        |p| zip_forms_grad(&x(p), &w(p)),
        |p, d| zip_forms_jvp(&x(p), &w(p), &x(d), &w(d)),
        |p, c| {
            let (a, b) = (x(p), w(p));
            let (v, pb) = zip_forms_vjp(&a, &b);
            (v, pb(c))
        },
        |p| zip_forms_value_and_grad(&x(p), &w(p)),
    );
}

#[grad]
fn vec_locals(x: &[f64]) -> f64 {
    let n = x.len();
    let mut v = vec![0.0; n];
    for i in 0..n {
        v[i] = x[i] * x[i];
    }
    for i in 1..n {
        v[i] += v[i - 1] * 0.5;
    }
    v[0] -= x[n - 1];
    v[n - 1] *= 2.0;
    let mut s = 0.0;
    for i in 0..n {
        s += v[i] * (i + 1) as f64;
    }
    s
}

#[test]
fn vec_macro_locals_with_writes_and_compound_writes_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, -1.0, 2.0], &[1.5, 0.25], &[0.3]];
    check(
        "vec_locals",
        pts,
        vec_locals,
        vec_locals_grad,
        vec_locals_jvp,
        |p, c| {
            let (v, pb) = vec_locals_vjp(p);
            (v, pb(c))
        },
        vec_locals_value_and_grad,
    );
}

#[grad]
fn with_capacity_push(x: &[f64]) -> f64 {
    let mut v = Vec::with_capacity(x.len() * 2);
    for i in 0..x.len() {
        v.push(x[i].exp());
        v.push(x[i] * 3.0);
    }
    let mut s = 0.0;
    for i in 0..v.len() {
        s += v[i] * v[v.len() - 1 - i];
    }
    s
}

#[test]
fn vec_with_capacity_and_push_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, -1.0, 0.2], &[1.5]];
    check(
        "with_capacity_push",
        pts,
        with_capacity_push,
        with_capacity_push_grad,
        with_capacity_push_jvp,
        |p, c| {
            let (v, pb) = with_capacity_push_vjp(p);
            (v, pb(c))
        },
        with_capacity_push_value_and_grad,
    );
}

#[grad]
fn overwritten_elements(x: &[f64], a: f64) -> f64 {
    // Each element is overwritten many times with a nonlinear function of its old value:
    // the reverse sweep needs every old value back.
    let n = x.len();
    let mut v = vec![0.0; n];
    for i in 0..n {
        v[i] = x[i];
    }
    for _ in 0..4 {
        for i in 0..n {
            v[i] = (v[i] * a).sin() + v[(i + 1) % n] * 0.3;
        }
    }
    let mut p = 1.0;
    for i in 0..n {
        p *= 1.0 + v[i];
    }
    p
}

#[test]
fn repeatedly_overwritten_vec_elements_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, -0.3, 0.8, 0.1], &[0.2, 0.4, 1.1]];
    let split = |p: &[f64]| (p[..p.len() - 1].to_vec(), p[p.len() - 1]);
    check(
        "overwritten_elements",
        pts,
        |p| {
            let (x, a) = split(p);
            overwritten_elements(&x, a)
        },
        |p| {
            let (x, a) = split(p);
            overwritten_elements_grad(&x, a)
        },
        |p, d| {
            let ((x, a), (dx, da)) = (split(p), split(d));
            overwritten_elements_jvp(&x, a, &dx, da)
        },
        |p, c| {
            let (x, a) = split(p);
            let (v, pb) = overwritten_elements_vjp(&x, a);
            (v, pb(c))
        },
        |p| {
            let (x, a) = split(p);
            overwritten_elements_value_and_grad(&x, a)
        },
    );
}

#[grad]
fn cumulative_product(x: &[f64]) -> f64 {
    let n = x.len();
    let mut c = vec![1.0; n + 1];
    for i in 0..n {
        c[i + 1] = c[i] * x[i];
    }
    let mut s = 0.0;
    for i in 1..=n {
        s += c[i];
    }
    s
}

#[test]
fn cumulative_product_through_a_vec_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, -1.5, 2.0, 0.75], &[1.1, 0.9]];
    check(
        "cumulative_product",
        pts,
        cumulative_product,
        cumulative_product_grad,
        cumulative_product_jvp,
        |p, c| {
            let (v, pb) = cumulative_product_vjp(p);
            (v, pb(c))
        },
        cumulative_product_value_and_grad,
    );
    closed_form("cumulative_product", pts, cumulative_product_grad, |x| {
        // d/dx_k sum_i prod_{j<i} x_j = sum_{i>k} prod_{j<i, j!=k} x_j
        let n = x.len();
        (0..n)
            .map(|k| {
                (k + 1..=n)
                    .map(|i| (0..i).filter(|&j| j != k).map(|j| x[j]).product::<f64>())
                    .sum::<f64>()
            })
            .collect::<Vec<f64>>()
    });
}

#[grad]
fn fixed_array(a: [f64; 3], s: f64) -> f64 {
    let mut t = [0.0; 3];
    for i in 0..3 {
        t[i] = a[i] * s + a[(i + 1) % 3];
    }
    t[1] += t[0] * t[2];
    let m = [t[0] - t[1], t[2] * 2.0];
    m[0] * m[1] + a[2].cos()
}

#[test]
fn fixed_array_argument_and_local_arrays_three_ways() {
    let pts: &[&[f64]] = &[&[0.5, -1.0, 2.0, 1.5], &[1.0, 0.2, -0.3, -0.7]];
    check(
        "fixed_array",
        pts,
        |p| fixed_array(arr(p, 0), p[3]),
        |p| fixed_array_grad(arr(p, 0), p[3]),
        |p, d| fixed_array_jvp(arr(p, 0), p[3], arr(d, 0), d[3]),
        |p, c| {
            let (v, pb) = fixed_array_vjp(arr(p, 0), p[3]);
            (v, pb(c))
        },
        |p| fixed_array_value_and_grad(arr(p, 0), p[3]),
    );
}

#[test]
fn fixed_array_gradient_is_an_array() {
    // The gradient types mirror the arguments: [f64; 3] -> [f64; 3], f64 -> f64.
    let (ga, gs): ([f64; 3], f64) = fixed_array_grad([0.5, -1.0, 2.0], 1.5);
    assert!(ga.iter().all(|v| v.is_finite()) && gs.is_finite());
    let gv: Vec<f64> = rosen_grad(&[0.5, 1.0, 2.0]);
    assert_eq!(gv.len(), 3);
}

#[grad]
fn slice_len_and_indices(x: &[f64], k: usize) -> f64 {
    let n = x.len() as f64;
    let mut s = 0.0;
    let mut i = k;
    while i < x.len() {
        s += x[i] / n;
        i += 2;
    }
    s * s + x[x.len() - 1 - k]
}

#[test]
fn slice_len_and_computed_indices_three_ways() {
    for k in [0usize, 1, 2] {
        let pts: &[&[f64]] = &[&[0.5, -1.0, 2.0, 0.3, 0.9], &[1.0, 2.0, 3.0]];
        check(
            &format!("slice_len_and_indices(k = {k})"),
            pts,
            |p| slice_len_and_indices(p, k),
            |p| slice_len_and_indices_grad(p, k),
            |p, d| slice_len_and_indices_jvp(p, k, d),
            |p, c| {
                let (v, pb) = slice_len_and_indices_vjp(p, k);
                (v, pb(c))
            },
            |p| slice_len_and_indices_value_and_grad(p, k),
        );
    }
}

#[grad]
fn active_fill(x: f64, n: usize) -> f64 {
    let mut v = vec![x; n];
    for i in 1..n {
        v[i] *= v[i - 1];
    }
    v[n - 1]
}

#[test]
fn vec_macro_with_an_active_fill_value_three_ways() {
    for n in [1usize, 3, 5] {
        let pts: &[&[f64]] = &[&[0.7], &[-1.2]];
        check(
            &format!("active_fill(n = {n})"),
            pts,
            |p| active_fill(p[0], n),
            |p| active_fill_grad(p[0], n),
            |p, d| active_fill_jvp(p[0], n, d[0]),
            |p, c| {
                let (v, pb) = active_fill_vjp(p[0], n);
                (v, pb(c))
            },
            |p| active_fill_value_and_grad(p[0], n),
        );
        // v[n-1] = x^n
        closed_form(
            &format!("active_fill(n = {n})"),
            pts,
            |p| active_fill_grad(p[0], n),
            |p| n as f64 * p[0].powi(n as i32 - 1),
        );
    }
}

#[grad]
fn float_to_index(x: f64, v: &[f64]) -> f64 {
    // An index computed from an active value: piecewise constant, derivative zero.
    let k = (x.abs() * 2.0) as usize % v.len();
    v[k] * x + v[(k + 1) % v.len()]
}

#[test]
fn indices_computed_from_active_values_three_ways() {
    let pts: &[&[f64]] = &[&[0.75, 1.0, 2.0, 3.0], &[-1.3, 0.5, -0.5, 2.5]];
    let split = |p: &[f64]| (p[0], p[1..].to_vec());
    check(
        "float_to_index",
        pts,
        |p| {
            let (x, v) = split(p);
            float_to_index(x, &v)
        },
        |p| {
            let (x, v) = split(p);
            float_to_index_grad(x, &v)
        },
        |p, d| {
            let ((x, v), (dx, dv)) = (split(p), split(d));
            float_to_index_jvp(x, &v, dx, &dv)
        },
        |p, c| {
            let (x, v) = split(p);
            let (val, pb) = float_to_index_vjp(x, &v);
            (val, pb(c))
        },
        |p| {
            let (x, v) = split(p);
            float_to_index_value_and_grad(x, &v)
        },
    );
    let (gx, gv) = float_to_index_grad(0.75, &[1.0, 2.0, 3.0]);
    assert_eq!((gx, gv), (2.0, vec![0.0, 0.75, 1.0]));
}
