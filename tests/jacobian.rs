//! `#[jacobian]` and `#[hessian]`: jacfwd equals jacrev equals central finite differences
//! (f64); `f_jacobian` equals both; Hessians are symmetric, match finite differences of the
//! gradient, and `hvp` equals `hessian * v`.

use ferrax::prelude::*;

fn normal(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::normal(Key::new(seed), shape, DType::F64)
}

fn assert_close(got: &Tensor, want: &Tensor, tol: f64, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    for (k, (a, b)) in got
        .to_vec::<f64>()
        .iter()
        .zip(want.to_vec::<f64>())
        .enumerate()
    {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}: element {k}: got {a}, want {b}"
        );
    }
}

/// Central finite differences of `f` at `x`, shaped `[out.., in..]`.
fn fd_jacobian(f: &dyn Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let v = x.to_vec::<f64>();
    let y = f(x);
    let (n, m) = (v.len(), y.numel());
    let mut j = vec![0.0; m * n];
    for i in 0..n {
        let h = 1e-6 * (1.0 + v[i].abs());
        let mut p = v.clone();
        p[i] += h;
        let mut q = v.clone();
        q[i] -= h;
        let fp = f(&Tensor::from_vec(p, x.shape())).to_vec::<f64>();
        let fq = f(&Tensor::from_vec(q, x.shape())).to_vec::<f64>();
        for o in 0..m {
            j[o * n + i] = (fp[o] - fq[o]) / (2.0 * h);
        }
    }
    let mut shape = y.shape().to_vec();
    shape.extend(x.shape());
    Tensor::from_vec(j, &shape)
}

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
