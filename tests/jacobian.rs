//! `#[jacobian]` and `#[hessian]`: jacfwd equals jacrev equals central finite differences
//! (f64); `f_jacobian` equals both; Hessians are symmetric, match finite differences of the
//! gradient, and `hvp` equals `hessian * v`.

#![allow(clippy::needless_range_loop)] // index loops are the code under test

use ferrax::prelude::*;

mod common;
use common::tensors::{assert_close, fd_jacobian, normal};

/// The workload: `tanh(W x) * sum(x^2)`.
#[jacobian(wrt(x))]
fn tw(x: &Tensor, w: &Tensor) -> Tensor {
    w.matmul(x).tanh() * (x * x).sum()
}

#[test]
fn jacfwd_jacrev_and_jacobian_agree_with_finite_differences_tall_and_wide() {
    for (n_in, n_out) in [(4usize, 9usize), (9, 4), (1, 1), (5, 5)] {
        let x = normal(n_in as u64, &[n_in]);
        let w = normal(100 + n_out as u64, &[n_out, n_in]);
        let jf = tw_jacfwd(&x, &w);
        let jr = tw_jacrev(&x, &w);
        let j = tw_jacobian(&x, &w);
        assert_eq!(jf.shape(), &[n_out, n_in]);
        let fd = fd_jacobian(&|x| tw(x, &w), &x);
        assert_close(&jf, &fd, 1e-6, "jacfwd vs finite differences");
        assert_close(&jr, &jf, 1e-12, "jacrev vs jacfwd");
        assert_close(&j, &jf, 1e-12, "jacobian vs jacfwd");
    }
}

/// Scaled by full sums (whose cotangents need no fitting: the macro leaves those sums
/// out), next to real broadcasting (`[n, 1] * [m]`) and a loop whose mutable value
/// changes shape (`[n, m]`, then `[m]`) where the fits stay, over none, one or two trips.
#[jacobian(wrt(x))]
fn scaled(x: &Tensor, b: &Tensor, trips: usize) -> Tensor {
    let s = (x * x).sum();
    let y = x.tanh() * &s + &s;
    let mut h = (y.unsqueeze(1) * b).exp() * &s;
    for _ in 0..trips {
        h = h.sum_axis(0, false) * &s + b;
    }
    h * s.sin()
}

/// `scaled`'s sum times `|x|^2`, for the gradient in both arguments.
#[grad(wrt(x, b))]
fn scaled_sum(x: &Tensor, b: &Tensor) -> Tensor {
    let s = (x * x).sum();
    let y = x.tanh() * &s + &s;
    let mut h = (y.unsqueeze(1) * b).exp() * &s;
    for _ in 0..2 {
        h = h.sum_axis(0, false) * &s + b;
    }
    (h * s.sin()).sum() * s
}

#[test]
fn sums_left_out_beside_broadcasting_keep_derivatives_right() {
    let (x, b) = (normal(11, &[4]) * 0.5, normal(12, &[3]) * 0.5);
    for trips in [0, 1, 2] {
        let jf = scaled_jacfwd(&x, &b, trips);
        let jr = scaled_jacrev(&x, &b, trips);
        let want: &[usize] = if trips == 0 { &[4, 3, 4] } else { &[3, 4] };
        assert_eq!(jr.shape(), want);
        let fd = fd_jacobian(&|x| scaled(x, &b, trips), &x);
        assert_close(&jf, &fd, 1e-6, "jacfwd vs finite differences");
        assert_close(&jr, &jf, 1e-10, "jacrev vs jacfwd");
    }
    let (gx, gb) = scaled_sum_grad(&x, &b);
    let fx = fd_jacobian(&|x| scaled_sum(x, &b), &x);
    let fb = fd_jacobian(&|b| scaled_sum(&x, b), &b);
    assert_close(&gx, &fx, 1e-6, "gradient in x");
    assert_close(&gb, &fb, 1e-6, "gradient in b");
}

/// Matrix input and output, broadcasting and a reduction over one axis.
#[jacobian]
fn mat(x: &Tensor) -> Tensor {
    let s = x.softmax(-1) * x.sum_axis(0, true);
    s.matmul(&x.t()) + x.slice(1, 0, 2).sum()
}

#[test]
fn jacobian_of_matrix_functions_is_shaped_outputs_then_inputs() {
    let x = normal(7, &[2, 3]);
    let jf = mat_jacfwd(&x);
    let jr = mat_jacrev(&x);
    assert_eq!(jf.shape(), &[2, 2, 2, 3]);
    let fd = fd_jacobian(&mat, &x);
    assert_close(&jf, &fd, 1e-6, "jacfwd");
    assert_close(&jr, &fd, 1e-6, "jacrev");
}

/// The Hessian workload: `sum(sin(x) * x^2) + x^T A x`.
#[hessian(wrt(x))]
fn hfun(x: &Tensor, a: &Tensor) -> Tensor {
    (x.sin() * x * x).sum() + x.matmul(&a.matmul(x))
}

#[grad(wrt(x))]
fn hfun_g(x: &Tensor, a: &Tensor) -> Tensor {
    (x.sin() * x * x).sum() + x.matmul(&a.matmul(x))
}

#[test]
fn hessian_is_symmetric_matches_differences_of_the_gradient_and_hvp() {
    for n in [1usize, 6] {
        let x = normal(n as u64 + 3, &[n]);
        let a = normal(n as u64 + 4, &[n, n]);
        assert_eq!(hfun(&x, &a).item::<f64>(), hfun_g(&x, &a).item::<f64>());
        let h = hfun_hessian(&x, &a);
        assert_eq!(h.shape(), &[n, n]);
        assert_close(&h, &h.t().contiguous(), 1e-12, "symmetry");
        let fd = fd_jacobian(&|x| hfun_g_grad(x, &a), &x);
        assert_close(&h, &fd, 1e-6, "hessian vs differences of the gradient");
        let v = normal(n as u64 + 5, &[n]);
        let hv = hfun_hvp(&x, &a, &v);
        assert_close(&hv, &h.matmul(&v), 1e-12, "hvp vs hessian * v");
    }
}

/// A matrix input: the Hessian is `[2, 3, 2, 3]`.
#[hessian]
fn hmat(x: &Tensor) -> Tensor {
    (x.tanh().matmul(&x.t()) * x.sum_axis(1, true)).sum()
}

#[grad]
fn hmat_g(x: &Tensor) -> Tensor {
    (x.tanh().matmul(&x.t()) * x.sum_axis(1, true)).sum()
}

#[test]
fn hessian_of_a_matrix_input() {
    let x = normal(9, &[2, 3]);
    assert_eq!(hmat(&x).item::<f64>(), hmat_g(&x).item::<f64>());
    let h = hmat_hessian(&x);
    assert_eq!(h.shape(), &[2, 3, 2, 3]);
    let fd = fd_jacobian(&hmat_g_grad, &x);
    assert_close(&h, &fd, 1e-6, "hessian");
    let flat = h.reshape(&[6, 6]);
    assert_close(&flat, &flat.t().contiguous(), 1e-12, "symmetry");
}

/// A plain `#[grad]` tensor function (no `#[vmap]`), called by a Jacobian's and a
/// Hessian's body.
#[grad]
fn swish(x: &Tensor) -> Tensor {
    x.sigmoid() * x
}

#[hessian]
fn through_swish(x: &Tensor) -> Tensor {
    (swish(x) * x.sin()).sum() + swish(&x.sum()).sum()
}

#[grad]
fn through_swish_g(x: &Tensor) -> Tensor {
    (swish(x) * x.sin()).sum() + swish(&x.sum()).sum()
}

#[jacobian]
fn swish_map(x: &Tensor) -> Tensor {
    swish(&(x * 2.0)) * x.sum()
}

#[test]
fn jacobians_and_hessians_through_a_call_of_a_grad_function() {
    let x = normal(11, &[4]);
    let h = through_swish_hessian(&x);
    assert_close(&h, &fd_jacobian(&through_swish_g_grad, &x), 1e-6, "hessian");
    assert_close(&h, &h.t().contiguous(), 1e-12, "symmetry");
    let v = normal(12, &[4]);
    assert_close(&through_swish_hvp(&x, &v), &h.matmul(&v), 1e-12, "hvp");
    assert_eq!(
        through_swish(&x).item::<f64>(),
        through_swish_g(&x).item::<f64>()
    );
    let fwd = swish_map_jacfwd(&x);
    assert_close(&fwd, &fd_jacobian(&swish_map, &x), 1e-6, "jacfwd");
    assert_close(&swish_map_jacrev(&x), &fwd, 1e-12, "jacrev");
}

// ---- scalar code over slices: `&[f64] -> Vec<f64>` ----

/// `tanh(w_j x_(j mod n)) * |x|^2` with a loop, a branch and a local Vec: as many outputs as
/// `w` has elements.
#[jacobian(wrt(x))]
fn slice_map(x: &[f64], w: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut y = vec![0.0; w.len()];
    let mut s = 0.0;
    for i in 0..n {
        s += x[i] * x[i];
    }
    for j in 0..w.len() {
        let t = (w[j] * x[j % n]).tanh();
        y[j] = if t > 0.0 { t * s } else { t + x[0] };
    }
    y
}

/// A stencil (differences of neighbours), with `push`: `n - 1` outputs.
#[jacobian]
fn diffs(x: &[f64]) -> Vec<f64> {
    let mut d = Vec::with_capacity(x.len());
    for i in 1..x.len() {
        d.push((x[i] - x[i - 1]).sin() * x[i]);
    }
    d
}

/// A list of values as the tail: `vec![a, b, ..]`, the same value twice among them.
#[jacobian]
fn listed(x: &[f64]) -> Vec<f64> {
    let p = x[0] * x[1];
    vec![p, x[1].sin(), p, 2.0]
}

#[jacobian]
fn squares32(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for i in 0..x.len() {
        y[i] = x[i] * x[i] * 0.5;
    }
    y
}

/// Central differences of a slice function, as rows.
fn fd_rows(f: &dyn Fn(&[f64]) -> Vec<f64>, x: &[f64]) -> Vec<Vec<f64>> {
    let m = f(x).len();
    let mut rows = vec![vec![0.0; x.len()]; m];
    for k in 0..x.len() {
        let h = 1e-6 * (1.0 + x[k].abs());
        let (mut p, mut q) = (x.to_vec(), x.to_vec());
        p[k] += h;
        q[k] -= h;
        let (fp, fq) = (f(&p), f(&q));
        for i in 0..m {
            rows[i][k] = (fp[i] - fq[i]) / (2.0 * h);
        }
    }
    rows
}

fn rows_close(got: &[Vec<f64>], want: &[Vec<f64>], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: row {i} length");
        for (k, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "{what}: element ({i}, {k}): got {a}, want {b}"
            );
        }
    }
}

#[test]
fn slice_jacobians_match_finite_differences_in_both_modes() {
    let x = [0.3, -0.7, 1.1, 0.2];
    for w in [vec![0.5, -1.2], vec![0.9; 11]] {
        let fd = fd_rows(&|x| slice_map(x, &w), &x);
        let fwd = slice_map_jacfwd(&x, &w);
        let rev = slice_map_jacrev(&x, &w);
        rows_close(&fwd, &fd, 1e-6, "slice_map jacfwd");
        rows_close(&rev, &fwd, 1e-12, "slice_map jacrev vs jacfwd");
        rows_close(
            &slice_map_jacobian(&x, &w),
            &fwd,
            1e-12,
            "slice_map jacobian",
        );
    }
    for n in [0usize, 1, 2, 7] {
        let x: Vec<f64> = (0..n).map(|i| 0.4 + 0.3 * (i as f64).cos()).collect();
        let fwd = diffs_jacfwd(&x);
        assert_eq!(fwd.len(), n.saturating_sub(1), "diffs n = {n}: rows");
        rows_close(&fwd, &fd_rows(&diffs, &x), 1e-6, "diffs jacfwd");
        rows_close(&diffs_jacrev(&x), &fwd, 1e-12, "diffs jacrev vs jacfwd");
        rows_close(&diffs_jacobian(&x), &fwd, 1e-12, "diffs jacobian");
    }
    let x = [0.7, -1.2];
    let fwd = listed_jacfwd(&x);
    rows_close(&fwd, &fd_rows(&listed, &x), 1e-6, "listed jacfwd");
    rows_close(&listed_jacrev(&x), &fwd, 1e-12, "listed jacrev vs jacfwd");
    let x = [1.5f32, -2.0, 0.25];
    let j = squares32_jacobian(&x);
    for (i, row) in j.iter().enumerate() {
        for (k, v) in row.iter().enumerate() {
            assert_eq!(*v, if i == k { x[i] } else { 0.0 }, "squares32 ({i}, {k})");
        }
    }
    assert_eq!(squares32_jacrev(&x), j);
}

// ---- Hessians of scalar code over slices ----

/// The same body under `#[hessian]` and under `#[grad]` (the reference gradient).
macro_rules! hessian_and_grad {
    (#[$ha:meta] #[$ga:meta] fn $h:ident / $g:ident ($($args:tt)*) $body:block) => {
        #[allow(dead_code)]
        #[$ha]
        fn $h($($args)*) -> f64 $body
        #[allow(dead_code)]
        #[$ga]
        fn $g($($args)*) -> f64 $body
    };
}

hessian_and_grad! {
    #[hessian] #[grad]
    fn rosen_h / rosen_g (x: &[f64]) {
        let mut s = 0.0;
        for i in 0..x.len() - 1 {
            let a = x[i + 1] - x[i] * x[i];
            let b = 1.0 - x[i];
            s += 100.0 * a * a + b * b;
        }
        s
    }
}

// A branch, a local Vec and a parameter that is not differentiated.
hessian_and_grad! {
    #[hessian(wrt(x))] #[grad(wrt(x))]
    fn mixed_h / mixed_g (x: &[f64], k: f64) {
        let mut y = vec![0.0; x.len()];
        let mut s = 0.0;
        for i in 0..x.len() {
            y[i] = (k * x[i]).sin() * x[i];
            s += if y[i] > 0.0 { y[i] * y[i] } else { -y[i] * x[0] };
        }
        s * x[x.len() - 1]
    }
}

#[grad]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b.iter()).map(|(u, v)| u * v).sum()
}

// Points of two coordinates as views into one slice, passed to a `#[grad]` callee (whose
// forward-over-reverse counterpart the Hessian calls).
hessian_and_grad! {
    #[hessian] #[grad]
    fn springs_h / springs_g (x: &[f64]) {
        let mut s = 0.0;
        for i in 1..x.len() / 2 {
            let a = &x[2 * (i - 1)..2 * i];
            let b = &x[2 * i..2 * i + 2];
            let d = (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
            s += (d.sqrt() - 1.0).powi(2) + dot(a, &b[1..]) * b[1] + dot(a, a).sin();
        }
        s
    }
}

/// Sums over sliding windows: a view per output.
#[jacobian]
fn window_sums(x: &[f64]) -> Vec<f64> {
    (0..x.len() - 2)
        .map(|i| x[i..i + 3].iter().map(|v| v * v).sum::<f64>() * x[i])
        .collect()
}

/// A pair potential of a squared distance: a scalar `#[grad]` leaf.
#[grad]
fn lj(r2: f64) -> f64 {
    let s = 1.0 / (r2 * r2 * r2);
    s * s - s
}

// Points on a line, every pair through the scalar callee.
hessian_and_grad! {
    #[hessian] #[grad]
    fn cluster_h / cluster_g (x: &[f64]) {
        let mut e = 0.0;
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                e += lj((x[i] - x[j]) * (x[i] - x[j]) + 1.0);
            }
        }
        e
    }
}

#[test]
fn hessians_through_calls_and_views_and_jacobians_of_views() {
    let x = [0.3, -0.7, 1.1, 0.2];
    let h = cluster_h_hessian(&x);
    rows_close(
        &h,
        &fd_rows(&|x| cluster_g_grad(x), &x),
        1e-6,
        "cluster hessian",
    );

    let x = [0.3, -0.7, 1.1, 0.2, 0.9, -0.4];
    let h = springs_h_hessian(&x);
    rows_close(
        &h,
        &fd_rows(&|x| springs_g_grad(x), &x),
        1e-6,
        "springs hessian",
    );
    let fwd = window_sums_jacfwd(&x);
    rows_close(&fwd, &fd_rows(&window_sums, &x), 1e-6, "window_sums jacfwd");
    rows_close(&window_sums_jacrev(&x), &fwd, 1e-12, "window_sums jacrev");
}

#[test]
fn slice_hessians_are_symmetric_and_match_finite_differences_of_the_gradient() {
    let x = [0.3, -0.7, 1.1, 0.2, 0.9];
    let h = rosen_h_hessian(&x);
    let fd = fd_rows(&|x| rosen_g_grad(x), &x);
    rows_close(&h, &fd, 1e-6, "rosen hessian");
    let k = 1.3;
    let hm = mixed_h_hessian(&x, k);
    rows_close(
        &hm,
        &fd_rows(&|x| mixed_g_grad(x, k), &x),
        1e-6,
        "mixed hessian",
    );
    for (h, what) in [(&h, "rosen"), (&hm, "mixed")] {
        for i in 0..x.len() {
            for j in 0..x.len() {
                assert!(
                    (h[i][j] - h[j][i]).abs() < 1e-9,
                    "{what} not symmetric at ({i}, {j})"
                );
            }
        }
    }
    // hvp along a direction equals H v
    let v = [0.5, -1.0, 0.25, 2.0, -0.3];
    let hv = mixed_h_hvp(&x, k, &v);
    for i in 0..x.len() {
        let want: f64 = (0..x.len()).map(|j| hm[i][j] * v[j]).sum();
        assert!((hv[i] - want).abs() < 1e-9 * (1.0 + want.abs()), "hvp {i}");
    }
}

/// A long Rosenbrock: the gradient's gather loop runs split over threads inside the hvp too.
#[test]
fn long_slice_hvp_matches_finite_differences_of_the_gradient() {
    let n = 200_000;
    let x: Vec<f64> = (0..n)
        .map(|i| 0.5 + 0.4 * (i as f64 * 0.37).sin())
        .collect();
    let v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
    let hv = rosen_h_hvp(&x, &v);
    let h = 1e-6;
    let plus: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
    let minus: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
    let (gp, gm) = (rosen_g_grad(&plus), rosen_g_grad(&minus));
    for i in [0, 1, n / 3, n / 2 + 1, n - 2, n - 1] {
        let want = (gp[i] - gm[i]) / (2.0 * h);
        assert!(
            (hv[i] - want).abs() < 1e-5 * (1.0 + want.abs()),
            "element {i}: {} vs {want}",
            hv[i]
        );
    }
}

// ---- Jacobians through calls of `#[vmap] #[grad]` functions ----

#[vmap]
#[grad]
fn squash(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).tanh()
}

#[jacobian(wrt(x))]
fn through_call(x: &Tensor, w: &Tensor) -> Tensor {
    squash(x, w) * (x * x).sum() + squash(&x.sin(), w)
}

#[test]
fn jacobians_through_calls_match_finite_differences() {
    let w = normal(90, &[4, 6]);
    let x = normal(91, &[4]);
    let fd = fd_jacobian(&|x| through_call(x, &w), &x);
    let fwd = through_call_jacfwd(&x, &w);
    assert_close(&fwd, &fd, 1e-6, "jacfwd through calls");
    assert_close(
        &through_call_jacrev(&x, &w),
        &fwd,
        1e-12,
        "jacrev through calls",
    );
    assert_close(
        &through_call_jacobian(&x, &w),
        &fwd,
        1e-12,
        "jacobian through calls",
    );
}

// ---- Hessians through calls of `#[vmap] #[grad]` functions ----

#[vmap]
#[grad]
fn sin_times(x: &Tensor, w: &Tensor) -> Tensor {
    x.sin() * w
}

#[hessian(wrt(x))]
fn hess_through_call(x: &Tensor, w: &Tensor) -> Tensor {
    (sin_times(x, w) * x).sum() + (sin_times(&(x * x), w)).sum()
}

#[vmap]
#[grad]
fn cube_ish(v: f64, k: f64) -> f64 {
    v * v * v * k + v.sin()
}

hessian_and_grad! {
    #[hessian(wrt(x))] #[grad(wrt(x))]
    fn slice_through_call / slice_through_call_g (x: &[f64], k: f64) {
        let mut s = 0.0;
        for i in 0..x.len() {
            s += cube_ish(x[i], k) * x[(i + 1) % x.len()];
        }
        s
    }
}

#[test]
fn hessians_through_calls_match_closed_forms_and_finite_differences() {
    let x = normal(95, &[3]);
    let w = normal(96, &[3]);
    let h = hess_through_call_hessian(&x, &w);
    // f = sum(w sin(x) x) + sum(w sin(x^2)): diagonal
    // d2/dx2 = w (2 cos x - x sin x) + w (2 cos(x^2) - 4 x^2 sin(x^2))
    let (xv, wv) = (x.to_vec::<f64>(), w.to_vec::<f64>());
    let mut want = vec![0.0; 9];
    for i in 0..3 {
        let (a, b) = (xv[i], wv[i]);
        want[i * 4] = b * (2.0 * a.cos() - a * a.sin())
            + b * (2.0 * (a * a).cos() - 4.0 * a * a * (a * a).sin());
    }
    assert_close(
        &h,
        &Tensor::from_vec(want, &[3, 3]),
        1e-10,
        "hessian through a call",
    );
    let v = normal(97, &[3]);
    assert_close(
        &hess_through_call_hvp(&x, &w, &v),
        &h.matmul(&v),
        1e-10,
        "hvp through a call",
    );
    // v^T H v against second differences of the function itself
    let f = |t: f64| hess_through_call(&(&x + &(&v * t)), &w).item::<f64>();
    let e = 1e-4;
    let second = (f(e) - 2.0 * f(0.0) + f(-e)) / (e * e);
    let vhv = (&v * &h.matmul(&v)).sum().item::<f64>();
    assert!(
        (second - vhv).abs() < 1e-5 * (1.0 + vhv.abs()),
        "v H v: {vhv} vs {second}"
    );
    // scalar code over a slice, calling a scalar function
    let xs = [0.3, -0.7, 1.1, 0.2];
    let k = 0.8;
    let hs = slice_through_call_hessian(&xs, k);
    rows_close(
        &hs,
        &fd_rows(&|x| slice_through_call_g_grad(x, k), &xs),
        1e-6,
        "slice hessian through a call",
    );
}

// ---- Jacobians through a helper taking a parameter struct ----

#[derive(Clone, Differentiable)]
struct Affine {
    w: Tensor,
    b: Tensor,
}

#[derive(Clone, Differentiable)]
struct Net {
    a1: Affine,
}

#[vmap(in_axes = (None, 0))]
#[grad]
fn affine_tanh(l: &Affine, x: &Tensor) -> Tensor {
    (x.matmul(&l.w) + &l.b).tanh()
}

#[jacobian(wrt(x))]
fn net_out(p: &Net, x: &Tensor) -> Tensor {
    affine_tanh(&p.a1, x) * x.sum()
}

#[test]
fn jacobians_through_a_struct_helper_match_finite_differences() {
    let p = Net {
        a1: Affine {
            w: normal(110, &[4, 3]),
            b: normal(111, &[3]),
        },
    };
    let x = normal(112, &[4]);
    let fd = fd_jacobian(&|x| net_out(&p, x), &x);
    let fwd = net_out_jacfwd(&p, &x);
    assert_close(&fwd, &fd, 1e-6, "jacfwd through a struct helper");
    assert_close(
        &net_out_jacrev(&p, &x),
        &fwd,
        1e-12,
        "jacrev through a struct helper",
    );
}

#[hessian(wrt(x))]
fn net_energy(p: &Net, x: &Tensor) -> Tensor {
    (affine_tanh(&p.a1, x) * affine_tanh(&p.a1, x)).sum() + (x * x * x).sum()
}

/// The same energy under `#[grad]`: the reference gradient.
#[grad(wrt(x))]
fn net_energy_g(p: &Net, x: &Tensor) -> Tensor {
    (affine_tanh(&p.a1, x) * affine_tanh(&p.a1, x)).sum() + (x * x * x).sum()
}

#[test]
fn hessians_through_a_struct_helper_match_finite_differences_of_the_gradient() {
    let p = Net {
        a1: Affine {
            w: normal(113, &[4, 3]),
            b: normal(114, &[3]),
        },
    };
    let x = normal(115, &[4]);
    let h = net_energy_hessian(&p, &x);
    let fd = fd_jacobian(&|x| net_energy_g_grad(&p, x), &x);
    assert_close(&h, &fd, 1e-6, "hessian through a struct helper");
    let v = normal(116, &[4]);
    assert_close(&net_energy_hvp(&p, &x, &v), &h.matmul(&v), 1e-10, "hvp");
    // the two copies of the energy are the same function
    assert_close(&net_energy(&p, &x), &net_energy_g(&p, &x), 0.0, "energy");
}

// A neighbour coupling whose loop has zero trips for lengths 0 and 1.
hessian_and_grad! {
    #[hessian] #[grad]
    fn chain_h / chain_g (x: &[f64]) {
        let mut e = 0.0;
        for i in 1..x.len() {
            e += (x[i] - x[i - 1]).powi(2) * x[i] + x[i - 1].sin();
        }
        e
    }
}

#[test]
fn slice_hessians_of_lengths_zero_one_and_more() {
    for n in [0usize, 1, 2, 6] {
        let x: Vec<f64> = (0..n).map(|i| 0.2 + 0.35 * i as f64).collect();
        let h = chain_h_hessian(&x);
        assert_eq!(h.len(), n, "n = {n}: rows");
        rows_close(
            &h,
            &fd_rows(&|x| chain_g_grad(x), &x),
            1e-6,
            "chain hessian",
        );
        let v: Vec<f64> = (0..n).map(|i| 1.0 - 0.5 * i as f64).collect();
        let hv = chain_h_hvp(&x, &v);
        for i in 0..n {
            let want: f64 = (0..n).map(|j| h[i][j] * v[j]).sum();
            assert!(
                (hv[i] - want).abs() < 1e-10 * (1.0 + want.abs()),
                "n = {n}: hvp {i}"
            );
        }
        assert_eq!(chain_h(&x), chain_g(&x));
    }
}

// ---- the springs example: Newton's method with `energy_hessian` ----

#[path = "../examples/springs.rs"]
mod springs_example;

/// The example asserts that Newton's method converges (|gradient| < 1e-8): with a wrong
/// Hessian it would not in 50 steps.
#[test]
fn the_springs_example_converges() {
    springs_example::main();
}

/// A callee whose loop overwrites a tensor (its reverse sweep keeps a tape of them): the
/// Jacobian and Hessian of a caller go through its batched counterparts.
#[grad]
fn damped(x: &Tensor, w: &Tensor, reps: usize) -> Tensor {
    let mut h = x.matmul(w);
    for _ in 0..reps {
        h = (h * 0.9).tanh();
    }
    h
}

#[jacobian]
fn through_loop(x: &Tensor) -> Tensor {
    damped(x, x, 3)
}

#[hessian]
fn through_loop_energy(x: &Tensor) -> Tensor {
    damped(x, x, 2).powi(2).sum()
}

#[grad]
fn through_loop_energy_g(x: &Tensor) -> Tensor {
    damped(x, x, 2).powi(2).sum()
}

#[test]
fn jacobians_and_hessians_through_a_callee_with_a_tape() {
    let x = normal(21, &[2, 2]);
    let (jf, jr) = (through_loop_jacfwd(&x), through_loop_jacrev(&x));
    let fd = fd_jacobian(&through_loop, &x);
    assert_close(&jf, &fd, 1e-6, "jacfwd vs finite differences");
    assert_close(&jr, &fd, 1e-6, "jacrev vs finite differences");
    let h = through_loop_energy_hessian(&x);
    assert_eq!(h.shape(), &[2, 2, 2, 2]);
    assert_eq!(
        through_loop_energy(&x).item::<f64>(),
        through_loop_energy_g(&x).item::<f64>()
    );
    let fd = fd_jacobian(&through_loop_energy_g_grad, &x);
    assert_close(&h, &fd, 1e-6, "hessian vs differences of the gradient");
}

// ---- Per-example Jacobians and Hessians: `#[vmap]` over `#[jacobian]` / `#[hessian]` ----

/// A map with a shared weight and a per-example scale (a batched float).
#[vmap(in_axes = (0, None, 0))]
#[jacobian(wrt(x))]
fn squashed(x: &Tensor, w: &Tensor, s: f64) -> Tensor {
    (x.matmul(w) * s).tanh() * x.sin().sum()
}

/// A matrix input batched along its last axis, the result's batch axis last.
#[vmap(in_axes = (-1, 0), out_axes = -1)]
#[jacobian(wrt(x))]
fn mixed(x: &Tensor, b: &Tensor) -> Tensor {
    (x.matmul(&x.t()) + b).exp().sum_axis(0, false)
}

/// The value of `t` at example `e` along `axis`.
fn at(t: &Tensor, axis: isize, e: usize) -> Tensor {
    let a = if axis < 0 {
        axis + t.ndim() as isize
    } else {
        axis
    };
    t.slice(a, e, e + 1).squeeze(a)
}

#[test]
fn per_example_jacobians_match_a_loop_of_jacobians_and_finite_differences() {
    // tall (forward mode picked) and wide (reverse mode picked) per-example Jacobians
    for (n_in, n_out) in [(3usize, 7usize), (8, 2)] {
        let xs = normal(300 + n_in as u64, &[4, n_in]);
        let w = normal(301, &[n_in, n_out]) * 0.5;
        let ss = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.1], &[4]);
        let fwd = squashed_jacfwd_vmap(&xs, &w, &ss);
        assert_eq!(fwd.shape(), &[4, n_out, n_in]);
        assert_close(
            &squashed_jacrev_vmap(&xs, &w, &ss),
            &fwd,
            1e-12,
            "jacrev vs jacfwd",
        );
        assert_close(
            &squashed_jacobian_vmap(&xs, &w, &ss),
            &fwd,
            1e-12,
            "jacobian",
        );
        for e in 0..4 {
            let (x, s) = (at(&xs, 0, e), at(&ss, 0, e).item::<f64>());
            let one = squashed_jacfwd(&x, &w, s);
            assert_close(&at(&fwd, 0, e), &one, 1e-12, "per example vs one");
            let fd = fd_jacobian(&|v: &Tensor| squashed(v, &w, s), &x);
            assert_close(&one, &fd, 1e-6, "vs finite differences");
        }
        let one = squashed_jacrev_vmap(&xs.slice(0, 0, 1), &w, &ss.slice(0, 0, 1));
        assert_eq!(one.shape(), &[1, n_out, n_in]);
        assert_close(&at(&one, 0, 0), &at(&fwd, 0, 0), 1e-12, "a batch of one");
        let values = squashed_vmap(&xs, &w, &ss);
        assert_eq!(values.shape(), &[4, n_out]);
    }
    // axes: examples along x's last axis, the result's batch axis last
    let xs = normal(310, &[2, 3, 5]);
    let bs = normal(311, &[5, 2, 2]);
    let fwd = mixed_jacfwd_vmap(&xs, &bs);
    assert_eq!(fwd.shape(), &[2, 2, 3, 5]);
    assert_close(
        &mixed_jacrev_vmap(&xs, &bs),
        &fwd,
        1e-10,
        "jacrev vs jacfwd",
    );
    assert_close(&mixed_jacobian_vmap(&xs, &bs), &fwd, 1e-10, "jacobian");
    for e in 0..5 {
        let (x, b) = (at(&xs, -1, e), at(&bs, 0, e));
        let fd = fd_jacobian(&|v: &Tensor| mixed(v, &b), &x);
        assert_close(&at(&fwd, -1, e), &fd, 1e-6, "per example vs differences");
        assert_close(&at(&fwd, -1, e), &mixed_jacrev(&x, &b), 1e-10, "vs one");
    }
}

/// A potential's per-example Hessians (the Laplacian of a physics-informed loss is their
/// trace).
#[vmap(in_axes = (0, None))]
#[hessian(wrt(x))]
fn potential(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).tanh().powi(2).sum() + x.powi(3).sum() * 0.1
}

/// The same potential under `#[grad]`: the reference gradient.
#[grad(wrt(x))]
fn potential_g(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).tanh().powi(2).sum() + x.powi(3).sum() * 0.1
}

#[test]
fn per_example_hessians_match_a_loop_of_hessians_and_differences_of_the_gradient() {
    let (b, n) = (5, 3);
    let xs = normal(320, &[b, n]);
    let w = normal(321, &[n, 4]) * 0.7;
    let hs = potential_hessian_vmap(&xs, &w);
    assert_eq!(hs.shape(), &[b, n, n]);
    let x0 = at(&xs, 0, 0);
    assert_close(
        &potential(&x0, &w),
        &potential_g(&x0, &w),
        0.0,
        "the two copies",
    );
    for e in 0..b {
        let x = at(&xs, 0, e);
        let h = at(&hs, 0, e);
        assert_close(&h, &potential_hessian(&x, &w), 1e-12, "per example vs one");
        let fd = fd_jacobian(&|v: &Tensor| potential_g_grad(v, &w), &x);
        assert_close(&h, &fd, 1e-6, "vs differences of the gradient");
        assert_close(&h, &h.t().contiguous(), 1e-12, "symmetry");
    }
    assert_close(
        &potential_vmap(&xs, &w),
        &Tensor::stack(
            &(0..b)
                .map(|e| potential(&at(&xs, 0, e), &w))
                .collect::<Vec<_>>(),
            0,
        ),
        1e-12,
        "values",
    );
    // one example: its Hessian, with a batch axis of one
    let one = potential_hessian_vmap(&xs.slice(0, 0, 1), &w);
    assert_eq!(one.shape(), &[1, n, n]);
    assert_close(
        &at(&one, 0, 0),
        &potential_hessian(&x0, &w),
        1e-12,
        "a batch of one",
    );
    // no examples: no Hessians
    let none = potential_hessian_vmap(&Tensor::zeros(&[0, n], DType::F64), &w);
    assert_eq!(none.shape(), &[0, n, n]);
}

/// Per-example values meeting the basis in products (`a.matmul(&b)`, both depending on
/// `x`): the pass computes `a` and `b` once per example and repeats them along every
/// example's basis where a product takes them with a tangent.
#[vmap(in_axes = (0, None))]
#[hessian(wrt(x))]
fn crossed(x: &Tensor, w: &Tensor) -> Tensor {
    let a = x.matmul(w).tanh();
    let b = x.sin().matmul(w);
    a.matmul(&b) * (x * 0.5).exp().sum() + x.powi(2).sum()
}

/// The same function under `#[grad]`: the reference gradient.
#[grad(wrt(x))]
fn crossed_g(x: &Tensor, w: &Tensor) -> Tensor {
    let a = x.matmul(w).tanh();
    let b = x.sin().matmul(w);
    a.matmul(&b) * (x * 0.5).exp().sum() + x.powi(2).sum()
}

#[test]
fn per_example_hessians_where_per_example_values_meet_the_basis_in_products() {
    let (b, n) = (4, 3);
    let xs = normal(340, &[b, n]);
    let w = normal(341, &[n, 5]) * 0.6;
    let hs = crossed_hessian_vmap(&xs, &w);
    assert_eq!(hs.shape(), &[b, n, n]);
    for e in 0..b {
        let x = at(&xs, 0, e);
        let h = at(&hs, 0, e);
        assert_close(&crossed(&x, &w), &crossed_g(&x, &w), 0.0, "the two copies");
        assert_close(&h, &crossed_hessian(&x, &w), 1e-12, "per example vs one");
        let fd = fd_jacobian(&|v: &Tensor| crossed_g_grad(v, &w), &x);
        assert_close(&h, &fd, 1e-6, "vs differences of the gradient");
    }
}

/// A map whose tangents depend on the basis alone (`v w`: the same for every example),
/// the result's included: the pass computes them once per basis element.
#[vmap(in_axes = (0, None))]
#[jacobian(wrt(x))]
fn affine(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w) * 2.0 + 1.0
}

/// A per-basis-element tangent (`v w`) meeting a per-example value (`sin x`) in a product,
/// and in an elementwise chain (`tanh`'s).
#[vmap(in_axes = (0, None))]
#[hessian(wrt(x))]
fn dotted(x: &Tensor, w: &Tensor) -> Tensor {
    let a = x.matmul(w);
    a.matmul(&x.sin()) + a.tanh().sum()
}

/// The same function under `#[grad]`: the reference gradient.
#[grad(wrt(x))]
fn dotted_g(x: &Tensor, w: &Tensor) -> Tensor {
    let a = x.matmul(w);
    a.matmul(&x.sin()) + a.tanh().sum()
}

#[test]
fn per_example_jacobians_of_values_that_depend_on_the_basis_alone() {
    let (b, n, m) = (4, 3, 5);
    let xs = normal(350, &[b, n]);
    let w = normal(351, &[n, m]);
    let fwd = affine_jacfwd_vmap(&xs, &w);
    assert_eq!(fwd.shape(), &[b, m, n]);
    assert_close(&affine_jacrev_vmap(&xs, &w), &fwd, 0.0, "jacrev vs jacfwd");
    for e in 0..b {
        assert_close(&at(&fwd, 0, e), &(w.t() * 2.0), 0.0, "2 w^T");
    }
    let w = normal(352, &[n, n]);
    let hs = dotted_hessian_vmap(&xs, &w);
    assert_eq!(hs.shape(), &[b, n, n]);
    for e in 0..b {
        let x = at(&xs, 0, e);
        let h = at(&hs, 0, e);
        assert_close(&dotted(&x, &w), &dotted_g(&x, &w), 0.0, "the two copies");
        assert_close(&h, &dotted_hessian(&x, &w), 1e-12, "per example vs one");
        let fd = fd_jacobian(&|v: &Tensor| dotted_g_grad(v, &w), &x);
        assert_close(&h, &fd, 1e-6, "vs differences of the gradient");
    }
}

/// A network whose hidden layers are a loop, with a branch on a shared flag and a
/// per-example scale: the per-example pass keeps its two levels through both (the reverse
/// sweep's stacks included).
#[vmap(in_axes = (0, None, None, None, 0))]
#[hessian(wrt(x))]
fn layered(x: &Tensor, w1: &Tensor, w2: &Tensor, odd: bool, s: f64) -> Tensor {
    let mut h = x.matmul(w1).tanh();
    for _ in 0..2 {
        h = (h.matmul(w2) * s).tanh();
        if odd {
            h = h.sin();
        }
    }
    h.powi(2).sum() + x.powi(3).sum() * 0.2
}

/// The same function under `#[grad]`: the reference gradient.
#[grad(wrt(x))]
fn layered_g(x: &Tensor, w1: &Tensor, w2: &Tensor, odd: bool, s: f64) -> Tensor {
    let mut h = x.matmul(w1).tanh();
    for _ in 0..2 {
        h = (h.matmul(w2) * s).tanh();
        if odd {
            h = h.sin();
        }
    }
    h.powi(2).sum() + x.powi(3).sum() * 0.2
}

#[test]
fn per_example_hessians_through_loops_and_shared_branches() {
    // small (op by op) and large enough for the blocked chains (64 examples of 3 basis
    // elements over 64 hidden units)
    for (b, n, width) in [(3usize, 3usize, 5usize), (64, 3, 64)] {
        let xs = normal(360, &[b, n]);
        let w1 = normal(361, &[n, width]) * 0.5;
        let w2 = normal(362, &[width, width]) * (1.0 / width as f64).sqrt();
        let ss = Tensor::linspace(0.5, 1.5, b, DType::F64);
        for odd in [false, true] {
            let hs = layered_hessian_vmap(&xs, &w1, &w2, odd, &ss);
            assert_eq!(hs.shape(), &[b, n, n]);
            for e in [0, b / 2, b - 1] {
                let (x, s) = (at(&xs, 0, e), at(&ss, 0, e).item::<f64>());
                let h = at(&hs, 0, e);
                assert_close(
                    &layered(&x, &w1, &w2, odd, s),
                    &layered_g(&x, &w1, &w2, odd, s),
                    0.0,
                    "the two copies",
                );
                assert_close(
                    &h,
                    &layered_hessian(&x, &w1, &w2, odd, s),
                    1e-12,
                    "per example vs one",
                );
                let fd = fd_jacobian(&|v: &Tensor| layered_g_grad(v, &w1, &w2, odd, s), &x);
                assert_close(&h, &fd, 1e-6, "vs differences of the gradient");
            }
        }
    }
}

/// Hidden layers as a loop over a list of weights, a shared bias broadcast into each: the
/// loop may run no trip at all (its reverse sweep's first iteration then never runs).
#[vmap(in_axes = (0, None, None, None))]
#[hessian(wrt(x))]
fn stacked(x: &Tensor, w1: &Tensor, ws: &[Tensor], b: &Tensor) -> Tensor {
    let mut h = x.matmul(w1).tanh();
    for i in 0..ws.len() {
        h = (h.matmul(&ws[i]) + b).tanh();
    }
    h.powi(2).sum() + x.powi(3).sum() * 0.2
}

/// The same function under `#[grad]`: the reference gradient.
#[grad(wrt(x))]
fn stacked_g(x: &Tensor, w1: &Tensor, ws: &[Tensor], b: &Tensor) -> Tensor {
    let mut h = x.matmul(w1).tanh();
    for i in 0..ws.len() {
        h = (h.matmul(&ws[i]) + b).tanh();
    }
    h.powi(2).sum() + x.powi(3).sum() * 0.2
}

#[test]
fn per_example_hessians_through_loops_of_zero_one_and_several_trips() {
    let (n, width) = (3usize, 6usize);
    let w1 = normal(370, &[n, width]) * 0.5;
    let b = normal(371, &[width]) * 0.1;
    for layers in [0usize, 1, 3] {
        let ws: Vec<Tensor> = (0..layers)
            .map(|i| normal(372 + i as u64, &[width, width]) * 0.4)
            .collect();
        for examples in [0usize, 1, 4] {
            let xs = normal(380, &[examples, n]);
            let hs = stacked_hessian_vmap(&xs, &w1, &ws, &b);
            assert_eq!(hs.shape(), &[examples, n, n]);
            for e in 0..examples {
                let x = at(&xs, 0, e);
                let h = at(&hs, 0, e);
                assert_close(
                    &stacked(&x, &w1, &ws, &b),
                    &stacked_g(&x, &w1, &ws, &b),
                    0.0,
                    "the two copies",
                );
                assert_close(
                    &h,
                    &stacked_hessian(&x, &w1, &ws, &b),
                    1e-12,
                    "per example vs one",
                );
                let fd = fd_jacobian(&|v: &Tensor| stacked_g_grad(v, &w1, &ws, &b), &x);
                assert_close(&h, &fd, 1e-6, "vs differences of the gradient");
            }
        }
    }
}

/// A tensor function with a constant slice of floats beside the batched input.
#[vmap(in_axes = (0, None))]
#[jacobian(wrt(x))]
fn weighted(x: &Tensor, c: &[f64]) -> Tensor {
    x.sin() * c[0] + x.sum() * c[1]
}

#[test]
fn per_example_jacobians_take_constant_slices() {
    let xs = normal(330, &[3, 4]);
    let c = [0.5, -2.0];
    let j = weighted_jacobian_vmap(&xs, &c);
    assert_eq!(j.shape(), &[3, 4, 4]);
    for e in 0..3 {
        let x = at(&xs, 0, e);
        let fd = fd_jacobian(&|v: &Tensor| weighted(v, &c), &x);
        assert_close(&at(&j, 0, e), &fd, 1e-6, "per example vs differences");
    }
    assert_eq!(weighted_vmap(&xs, &c).shape(), &[3, 4]);
}
