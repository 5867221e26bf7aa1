//! Linear algebra under every transform: `solve`, `solve_triangular`, `cholesky`, `tril`,
//! `triu`, `diagonal` and `mt` in user code, differentiated in reverse and forward mode
//! (against central finite differences in f64 and against each other), twice (Hessians
//! through a Cholesky factorization), and batched (against a loop of the unbatched
//! function), with shared and per-example matrices and right-hand sides.

mod common;
use common::tensors::{assert_close, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// A symmetric positive definite matrix from `m` (`m mᵀ + n I`), so that finite
/// differences stay well inside the domain of `cholesky`.
fn spd(m: &Tensor) -> Tensor {
    let n = m.shape()[m.ndim() - 1];
    m.matmul(&m.mt()) + Tensor::eye(n, DType::F64) * n as f64
}

/// The negative log marginal likelihood of a Gaussian process with covariance `k` at
/// observations `y`: a Cholesky factor, a triangular solve and a log-determinant from the
/// factor's diagonal.
#[vmap]
#[grad]
fn gp_nll(k: &Tensor, y: &Tensor) -> Tensor {
    let l = k.cholesky();
    let alpha = l.solve_triangular(y, true);
    let fit = (&alpha * &alpha).sum();
    let log_det = l.diagonal().ln().sum() * 2.0;
    (fit + log_det) * 0.5
}

#[test]
fn a_gaussian_process_likelihood_differentiates_through_cholesky() {
    let (ks, ys) = (spd(&normal(1, &[3, 5, 5])), normal(2, &[3, 5]));
    let (gk, gy) = gp_nll_grad_vmap(&ks, &ys);
    for (e, (k, y)) in unstack(&ks, 0).iter().zip(unstack(&ys, 0)).enumerate() {
        // the value against the closed form: yᵀ K⁻¹ y / 2 + log det K / 2
        let quad = (y.matmul(&k.solve(&y))).item::<f64>();
        let ld: f64 = k.cholesky().diagonal().ln().sum().item::<f64>() * 2.0;
        assert!((gp_nll(k, &y).item::<f64>() - 0.5 * (quad + ld)).abs() < 1e-12);
        let (ek, ey) = gp_nll_grad(k, &y);
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        assert_close(&at(&gk), &ek, 1e-12, "per-example dK");
        assert_close(&at(&gy), &ey, 1e-12, "per-example dy");
        // the whole matrix is an input (cholesky reads its symmetric part)
        let fk = fd_jacobian(&|v: &Tensor| gp_nll(v, &y), k).reshape(k.shape());
        assert_close(&ek, &fk, 1e-6, "dK against differences");
        // the closed form: dK = (K⁻¹ - α αᵀ) / 2, symmetric
        let kinv = k.solve(&Tensor::eye(5, DType::F64));
        let a = k.solve(&y);
        let want = (kinv - a.unsqueeze(1).matmul(&a.unsqueeze(0))) * 0.5;
        assert_close(&ek, &want, 1e-10, "dK closed form");
        assert_close(&ey, &a, 1e-10, "dy = K⁻¹ y");
        // forward mode: <grad, tangent>
        let (dk, dy) = (normal(3 + e as u64, &[5, 5]), normal(7 + e as u64, &[5]));
        let (v, t) = gp_nll_jvp(k, &y, &dk, &dy);
        assert_eq!(v.item::<f64>(), gp_nll(k, &y).item::<f64>());
        let want = (&ek * &dk).sum().item::<f64>() + (&ey * &dy).sum().item::<f64>();
        assert!((t.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
}

/// A solve with every shape of right-hand side: a vector, a matrix, and matrices broadcast
/// against a batch of systems.
#[grad]
fn through_solves(a: &Tensor, b: &Tensor, batch: &Tensor, rhs: &Tensor) -> Tensor {
    let x = a.solve(b);
    let xs = a.solve(&b.unsqueeze(1).matmul(&x.unsqueeze(0)));
    let many = batch.solve(rhs);
    x.sin().sum() + (&xs * &xs).mean() + many.tanh().sum()
}

#[test]
fn solves_of_every_shape_match_differences_and_forward_mode() {
    let a = normal(10, &[4, 4]) + Tensor::eye(4, DType::F64) * 4.0;
    let b = normal(11, &[4]);
    let batch = normal(12, &[2, 3, 3]) + Tensor::eye(3, DType::F64) * 3.0;
    // one right-hand side shared by the batch of systems: its gradient sums over it
    let rhs = normal(13, &[3, 2]);
    let args = [&a, &b, &batch, &rhs];
    let grads = through_solves_grad(&a, &b, &batch, &rhs);
    let grads = [grads.0, grads.1, grads.2, grads.3];
    let f = |which: usize, v: &Tensor| {
        let mut xs: Vec<Tensor> = args.iter().map(|t| (*t).clone()).collect();
        xs[which] = v.clone();
        through_solves(&xs[0], &xs[1], &xs[2], &xs[3])
    };
    for (i, g) in grads.iter().enumerate() {
        assert_eq!(g.shape(), args[i].shape());
        let fd = fd_jacobian(&|v: &Tensor| f(i, v), args[i]).reshape(args[i].shape());
        assert_close(g, &fd, 1e-6, &format!("argument {i}"));
    }
    let ts: Vec<Tensor> = args
        .iter()
        .enumerate()
        .map(|(i, t)| normal(20 + i as u64, t.shape()))
        .collect();
    let (_, t) = through_solves_jvp(&a, &b, &batch, &rhs, &ts[0], &ts[1], &ts[2], &ts[3]);
    let want: f64 = grads
        .iter()
        .zip(&ts)
        .map(|(g, t)| (g * t).sum().item::<f64>())
        .sum();
    assert!((t.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
}

/// Triangular solves read one triangle: the gradient of the other is zero, and `lower`
/// may be a value the function computes.
#[grad(wrt(l, b))]
fn triangular(l: &Tensor, b: &Tensor, lower: bool) -> Tensor {
    let x = l.solve_triangular(b, lower);
    let y = l.mt().solve_triangular(&x, !lower);
    (y.cos() * x.sum_axis(0, true)).sum() + l.tril(-1).sum() * 0.5 + l.triu(1).powi(2).sum()
}

#[test]
fn triangular_solves_differentiate_in_their_triangle() {
    let l = normal(30, &[4, 4]) + Tensor::eye(4, DType::F64) * 3.0;
    let b = normal(31, &[4, 3]);
    for lower in [true, false] {
        let (gl, gb) = triangular_grad(&l, &b, lower);
        let fl = fd_jacobian(&|v: &Tensor| triangular(v, &b, lower), &l).reshape(&[4, 4]);
        let fb = fd_jacobian(&|v: &Tensor| triangular(&l, v, lower), &b).reshape(&[4, 3]);
        assert_close(&gl, &fl, 1e-6, "dl");
        assert_close(&gb, &fb, 1e-6, "db");
        let (dl, db) = (normal(32, &[4, 4]), normal(33, &[4, 3]));
        let (_, t) = triangular_jvp(&l, &b, lower, &dl, &db);
        let want = (&gl * &dl).sum().item::<f64>() + (&gb * &db).sum().item::<f64>();
        assert!((t.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
}

/// A log-determinant through `cholesky`, twice differentiated.
#[hessian]
fn log_det(m: &Tensor) -> Tensor {
    let a = m.matmul(&m.mt()) + m.diagonal().exp().sum();
    a.cholesky().diagonal().ln().sum() * 2.0
}

#[grad]
fn log_det_g(m: &Tensor) -> Tensor {
    let a = m.matmul(&m.mt()) + m.diagonal().exp().sum();
    a.cholesky().diagonal().ln().sum() * 2.0
}

#[test]
fn hessians_go_through_a_cholesky_factorization() {
    let m = normal(40, &[3, 3]);
    assert_eq!(log_det(&m).item::<f64>(), log_det_g(&m).item::<f64>());
    let h = log_det_hessian(&m);
    assert_eq!(h.shape(), &[3, 3, 3, 3]);
    let fd = fd_jacobian(&log_det_g_grad, &m);
    assert_close(&h, &fd, 1e-6, "hessian against differences of the gradient");
    let flat = h.reshape(&[9, 9]);
    assert_close(&flat, &flat.t().contiguous(), 1e-10, "symmetry");
}

/// A solve twice differentiated: the reverse sweep solves with the transposed matrix
/// from the same factors, and forward mode differentiates that solve in turn.
#[hessian]
fn solve_energy(m: &Tensor) -> Tensor {
    let a = m.matmul(&m.mt()) + m.sum().exp();
    a.solve(&m.sum_axis(1, false).sin()).powi(2).sum()
}

#[grad]
fn solve_energy_g(m: &Tensor) -> Tensor {
    let a = m.matmul(&m.mt()) + m.sum().exp();
    a.solve(&m.sum_axis(1, false).sin()).powi(2).sum()
}

#[test]
fn hessians_go_through_a_solve() {
    let m = normal(45, &[3, 3]);
    assert_eq!(
        solve_energy(&m).item::<f64>(),
        solve_energy_g(&m).item::<f64>()
    );
    let h = solve_energy_hessian(&m);
    let fd = fd_jacobian(&solve_energy_g_grad, &m);
    assert_close(&h, &fd, 1e-6, "hessian against differences of the gradient");
}

/// An inverse (a solve with the identity), per example.
#[vmap]
#[grad]
fn through_inverse(a: &Tensor) -> Tensor {
    let inv = a.inv();
    (inv.matmul(&a.sin()) * &inv).sum()
}

#[test]
fn inverses_differentiate_and_batch() {
    let a = normal(70, &[3, 4, 4]) + Tensor::eye(4, DType::F64) * 4.0;
    let g = through_inverse_grad_vmap(&a);
    let v = through_inverse_vmap(&a);
    for (e, ae) in unstack(&a, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        assert_close(
            &ae.inv().matmul(ae),
            &Tensor::eye(4, DType::F64),
            1e-12,
            "inverse",
        );
        assert_close(&at(&v), &through_inverse(ae), 1e-12, "value");
        let ge = through_inverse_grad(ae);
        assert_close(&at(&g), &ge, 1e-12, "per-example gradient");
        let fd = fd_jacobian(&through_inverse, ae).reshape(&[4, 4]);
        assert_close(&ge, &fd, 1e-6, "against differences");
        let t = normal(71 + e as u64, &[4, 4]);
        let (_, dt) = through_inverse_jvp(ae, &t);
        let want = (&ge * &t).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
    let e = Tensor::zeros(&[2, 2], DType::F64)
        .try_inv()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("inv: ") && e.contains("singular"), "{e}");
}

/// `log |det a|` of a general matrix, per example and twice differentiated.
#[vmap]
#[grad]
fn log_abs_det(a: &Tensor) -> Tensor {
    a.logabsdet() + (a + a.mt() * 0.5).logabsdet() * 0.5
}

#[hessian]
fn log_abs_det_h(a: &Tensor) -> Tensor {
    a.logabsdet() + (a + a.mt() * 0.5).logabsdet() * 0.5
}

#[test]
fn log_determinants_differentiate_batch_and_twice() {
    let a = normal(80, &[3, 4, 4]) + Tensor::eye(4, DType::F64) * 2.0;
    let g = log_abs_det_grad_vmap(&a);
    for (e, ae) in unstack(&a, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        // the value against the product of the LU factors' diagonal
        let u = ae.lu_factor().slice(1, 0, 4).diagonal();
        let want = u.abs().ln().sum().item::<f64>();
        assert!((ae.logabsdet().item::<f64>() - want).abs() < 1e-12);
        let ge = log_abs_det_grad(ae);
        assert_close(&at(&g), &ge, 1e-12, "per-example gradient");
        let fd = fd_jacobian(&log_abs_det, ae).reshape(&[4, 4]);
        assert_close(&ge, &fd, 1e-6, "against differences");
        assert_eq!(
            log_abs_det_h(ae).item::<f64>(),
            log_abs_det(ae).item::<f64>()
        );
        let h = log_abs_det_h_hessian(ae);
        let fh = fd_jacobian(&log_abs_det_grad, ae);
        assert_close(&h, &fh, 1e-6, "hessian against differences of the gradient");
    }
    // d log|det a| / da = a⁻ᵀ
    let one = unstack(&a, 0).remove(0);
    let plain = |m: &Tensor| m.logabsdet();
    let fd = fd_jacobian(&plain, &one).reshape(&[4, 4]);
    assert_close(&one.inv().mt().contiguous(), &fd, 1e-6, "a⁻ᵀ");
}

/// Per-example solves: each example's own matrix, or one matrix for all.
#[vmap]
#[grad]
fn residual(a: &Tensor, b: &Tensor) -> Tensor {
    let x = a.solve(b);
    (a.matmul(&x.sin()) - b).powi(2).sum() + x.sum()
}

#[vmap(in_axes = (None, 0))]
#[grad]
fn shared_matrix(a: &Tensor, b: &Tensor) -> Tensor {
    let x = a.solve(b);
    let lo = a.tril(0).solve_triangular(&x, true);
    (x.tanh() * &lo).sum() + a.triu(1).diagonal().sum()
}

#[test]
fn batched_solves_match_a_loop() {
    let a = normal(50, &[4, 3, 3]) + Tensor::eye(3, DType::F64) * 3.0;
    for b in [normal(51, &[4, 3]), normal(52, &[4, 3, 2])] {
        let v = residual_vmap(&a, &b);
        let (ga, gb) = residual_grad_vmap(&a, &b);
        for (e, (ae, be)) in unstack(&a, 0).iter().zip(unstack(&b, 0)).enumerate() {
            let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
            assert_close(&at(&v), &residual(ae, &be), 1e-12, "value");
            let (ea, eb) = residual_grad(ae, &be);
            assert_close(&at(&ga), &ea, 1e-12, "per-example da");
            assert_close(&at(&gb), &eb, 1e-12, "per-example db");
            let fa = fd_jacobian(&|v: &Tensor| residual(v, &be), ae).reshape(ae.shape());
            assert_close(&ea, &fa, 1e-6, "da against differences");
        }
        let shared = unstack(&a, 0).remove(0);
        let (sa, sb) = shared_matrix_grad_vmap(&shared, &b);
        for (e, be) in unstack(&b, 0).iter().enumerate() {
            let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
            let (ea, eb) = shared_matrix_grad(&shared, be);
            assert_close(&at(&sa), &ea, 1e-12, "shared matrix: per-example da");
            assert_close(&at(&sb), &eb, 1e-12, "shared matrix: per-example db");
            let fb = fd_jacobian(&|v: &Tensor| shared_matrix(&shared, v), be).reshape(be.shape());
            assert_close(&eb, &fb, 1e-6, "db against differences");
        }
    }
}

#[test]
fn solves_of_one_by_one_matrices_and_empty_batches() {
    // 1 x 1 systems (x = b / a), against a loop and differences
    let a = normal(90, &[2, 1, 1]) + 3.0;
    let b = normal(91, &[2, 1]);
    let (ga, gb) = residual_grad_vmap(&a, &b);
    for (e, (ae, be)) in unstack(&a, 0).iter().zip(unstack(&b, 0)).enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (ea, eb) = residual_grad(ae, &be);
        assert_close(&at(&ga), &ea, 1e-12, "1 x 1: per-example da");
        assert_close(&at(&gb), &eb, 1e-12, "1 x 1: per-example db");
        let fa = fd_jacobian(&|v: &Tensor| residual(v, &be), ae).reshape(&[1, 1]);
        assert_close(&ea, &fa, 1e-6, "1 x 1: da against differences");
    }
    // a batch of no examples: gradients of no examples, shaped like the inputs
    let (ga, gb) = residual_grad_vmap(
        &Tensor::zeros(&[0, 3, 3], DType::F64),
        &Tensor::zeros(&[0, 3], DType::F64),
    );
    assert_eq!((ga.shape(), gb.shape()), (&[0, 3, 3][..], &[0, 3][..]));
    let g = gp_nll_grad_vmap(
        &Tensor::zeros(&[0, 2, 2], DType::F64),
        &Tensor::zeros(&[0, 2], DType::F64),
    );
    assert_eq!((g.0.shape(), g.1.shape()), (&[0, 2, 2][..], &[0, 2][..]));
}

#[vmap]
fn factor_each(x: &Tensor) -> Tensor {
    x.cholesky().diagonal().sum()
}

#[test]
fn batched_linear_algebra_names_the_examples_shapes() {
    // vectors per example are not matrices (the batched [4, 3] would be one matrix)
    let err = std::panic::catch_unwind(|| factor_each_vmap(&normal(62, &[4, 3]))).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("cholesky") && msg.contains("examples of shape [3]"),
        "{msg}"
    );
    let spd = spd(&normal(63, &[4, 3, 3]));
    let sums = factor_each_vmap(&spd);
    for (e, m) in unstack(&spd, 0).iter().enumerate() {
        assert_close(
            &sums.slice(0, e, e + 1).squeeze(0),
            &factor_each(m),
            1e-12,
            "per example",
        );
    }
    let a = normal(60, &[2, 3, 3]);
    let b = normal(61, &[2, 4]);
    let err = std::panic::catch_unwind(|| residual_vmap(&a, &b)).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("solve") && msg.contains("[3, 3]") && msg.contains("[4]"),
        "{msg}"
    );
}

/// A loss through the eigenvalues and the eigenvectors of a symmetric matrix: the spectrum
/// weighted by each vector's projection on `u`, and a term that depends on the vectors'
/// signs (fixed by `eigh`: each one's largest component positive).
#[vmap]
#[grad]
fn spectral(a: &Tensor, u: &Tensor) -> Tensor {
    let (w, v) = a.eigh();
    let proj = v.mt().matmul(u);
    (w.sin() * proj.powi(2)).sum() + (v.sum_axis(0, false) * &w).sum() + a.eigvalsh().max()
}

#[vmap(in_axes = (None, 0))]
#[grad]
fn spectral_shared(a: &Tensor, u: &Tensor) -> Tensor {
    let (w, v) = a.eigh();
    (v.mt().matmul(u).tanh() * w).sum()
}

#[hessian]
fn spectral_h(a: &Tensor) -> Tensor {
    let (w, v) = a.eigh();
    (w.cos() * v.diagonal()).sum()
}

#[grad]
fn spectral_g(a: &Tensor) -> Tensor {
    let (w, v) = a.eigh();
    (w.cos() * v.diagonal()).sum()
}

/// Symmetric matrices with well separated eigenvalues (so that the eigenvectors, and the
/// finite differences through them, are well defined).
fn separated(seed: u64, shape: &[usize]) -> Tensor {
    let n = shape[shape.len() - 1];
    let m = normal(seed, shape) * 0.3;
    let spread = Tensor::from_vec((0..n).map(|i| i as f64 * 1.5).collect(), &[n]);
    &m + &m.mt() + spread.diag_embed(n, n)
}

#[test]
fn eigendecompositions_differentiate_batch_and_twice() {
    let a = separated(100, &[3, 4, 4]);
    let u = normal(101, &[3, 4]);
    let v = spectral_vmap(&a, &u);
    let (ga, gu) = spectral_grad_vmap(&a, &u);
    for (e, (ae, ue)) in unstack(&a, 0).iter().zip(unstack(&u, 0)).enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        assert_close(&at(&v), &spectral(ae, &ue), 1e-12, "value");
        let (ea, eu) = spectral_grad(ae, &ue);
        assert_close(&at(&ga), &ea, 1e-12, "per-example da");
        assert_close(&at(&gu), &eu, 1e-12, "per-example du");
        // every element of `a` is an input (eigh reads its symmetric part)
        let fa = fd_jacobian(&|m: &Tensor| spectral(m, &ue), ae).reshape(&[4, 4]);
        assert_close(&ea, &fa, 1e-6, "da against differences");
        let fu = fd_jacobian(&|x: &Tensor| spectral(ae, x), &ue).reshape(&[4]);
        assert_close(&eu, &fu, 1e-6, "du against differences");
        // forward mode: <grad, tangent>
        let (da, du) = (
            normal(110 + e as u64, &[4, 4]),
            normal(120 + e as u64, &[4]),
        );
        let (val, t) = spectral_jvp(ae, &ue, &da, &du);
        assert_eq!(val.item::<f64>(), spectral(ae, &ue).item::<f64>());
        let want = (&ea * &da).sum().item::<f64>() + (&eu * &du).sum().item::<f64>();
        assert!((t.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
        // a Hessian (forward over reverse through both rules) against differences of the
        // gradient, and symmetric
        assert_eq!(spectral_h(ae).item::<f64>(), spectral_g(ae).item::<f64>());
        let h = spectral_h_hessian(ae);
        let fh = fd_jacobian(&spectral_g_grad, ae);
        assert_close(&h, &fh, 1e-6, "hessian against differences of the gradient");
        let flat = h.reshape(&[16, 16]);
        assert_close(&flat, &flat.mt().contiguous(), 1e-9, "symmetric");
    }
    // one matrix shared by the batch: decomposed once, its gradient per example
    let shared = unstack(&a, 0).remove(0);
    let (sa, su) = spectral_shared_grad_vmap(&shared, &u);
    for (e, ue) in unstack(&u, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (ea, eu) = spectral_shared_grad(&shared, ue);
        assert_close(&at(&sa), &ea, 1e-12, "shared: per-example da");
        assert_close(&at(&su), &eu, 1e-12, "shared: per-example du");
        let fa = fd_jacobian(&|m: &Tensor| spectral_shared(m, ue), &shared).reshape(&[4, 4]);
        assert_close(&ea, &fa, 1e-6, "shared: da against differences");
    }
}

#[grad]
fn eigenvalue(a: &Tensor, k: usize) -> Tensor {
    a.eigvalsh().slice(0, k, k + 1).sum()
}

#[test]
fn an_eigenvalues_gradient_is_its_vectors_outer_product() {
    // d w_k / d a = v_k v_kᵀ; the trace's gradient is the identity
    let a = separated(130, &[5, 5]) + normal(131, &[5, 5]) * 0.1;
    let (_, v) = a.eigh();
    let w = a.eigvalsh().to_vec::<f64>();
    for (k, wk) in w.iter().enumerate() {
        assert_eq!(eigenvalue(&a, k).item::<f64>(), *wk);
        let vk = v.slice(1, k, k + 1);
        assert_close(
            &eigenvalue_grad(&a, k),
            &vk.matmul(&vk.mt()),
            1e-12,
            "v_k v_kᵀ",
        );
    }
    let trace: Tensor = (0..5)
        .map(|k| eigenvalue_grad(&a, k))
        .reduce(|x, y| x + y)
        .unwrap();
    assert_close(
        &trace,
        &Tensor::eye(5, DType::F64),
        1e-12,
        "the trace's gradient",
    );
}

/// Determinants (of either sign) per example and twice differentiated.
#[vmap]
#[grad]
fn through_det(a: &Tensor) -> Tensor {
    a.det() * a.sum().sin() + (a * 0.5).det().powi(2)
}

#[hessian]
fn det_h(a: &Tensor) -> Tensor {
    a.det() * a.sum().sin()
}

#[grad]
fn det_g(a: &Tensor) -> Tensor {
    a.det() * a.sum().sin()
}

#[test]
fn determinants_differentiate_batch_and_twice() {
    let a = normal(140, &[4, 3, 3]);
    let dets = a.det().to_vec::<f64>();
    assert!(
        dets.iter().any(|d| *d < 0.0) && dets.iter().any(|d| *d > 0.0),
        "{dets:?}"
    );
    let v = through_det_vmap(&a);
    let g = through_det_grad_vmap(&a);
    for (e, ae) in unstack(&a, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        assert_close(&at(&v), &through_det(ae), 1e-12, "value");
        let ge = through_det_grad(ae);
        assert_close(&at(&g), &ge, 1e-12, "per-example gradient");
        let fd = fd_jacobian(&through_det, ae).reshape(&[3, 3]);
        assert_close(&ge, &fd, 1e-6, "against differences");
        let t = normal(150 + e as u64, &[3, 3]);
        let (_, dt) = through_det_jvp(ae, &t);
        let want = (&ge * &t).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
        assert_eq!(det_h(ae).item::<f64>(), det_g(ae).item::<f64>());
        let h = det_h_hessian(ae);
        let fh = fd_jacobian(&det_g_grad, ae);
        assert_close(&h, &fh, 1e-6, "hessian against differences of the gradient");
    }
    // d det a / da = det(a) a⁻ᵀ
    let one = unstack(&a, 0).remove(0);
    let plain = |m: &Tensor| m.det();
    let fd = fd_jacobian(&plain, &one).reshape(&[3, 3]);
    assert_close(&(one.inv().mt() * one.det()), &fd, 1e-6, "det · a⁻ᵀ");
}

/// A loss through both QR factors of a tall (or square) matrix.
#[vmap]
#[grad]
fn through_qr(a: &Tensor, u: &Tensor) -> Tensor {
    let (q, r) = a.qr();
    (q.sin() * u).sum() + r.tanh().sum() + (r.diagonal() * 0.5).exp().sum()
}

/// Least squares by QR: `x = r⁻¹ qᵀ b`, its residual's square.
#[grad]
fn qr_least_squares(a: &Tensor, b: &Tensor) -> Tensor {
    let (q, r) = a.qr();
    let x = r.solve_triangular(&q.mt().matmul(b), false);
    (a.matmul(&x) - b).powi(2).sum() + x.powi(2).sum()
}

#[hessian]
fn qr_h(a: &Tensor) -> Tensor {
    let (q, r) = a.qr();
    q.cos().sum() + (&r * &r).sum() * 0.1
}

#[grad]
fn qr_g(a: &Tensor) -> Tensor {
    let (q, r) = a.qr();
    q.cos().sum() + (&r * &r).sum() * 0.1
}

#[test]
fn qr_decompositions_differentiate_batch_and_twice() {
    for (m, n) in [(5, 3), (4, 4), (3, 1)] {
        let a = normal(160, &[3, m, n]);
        let u = normal(161, &[3, m, n]);
        let v = through_qr_vmap(&a, &u);
        let (ga, gu) = through_qr_grad_vmap(&a, &u);
        for (e, (ae, ue)) in unstack(&a, 0).iter().zip(unstack(&u, 0)).enumerate() {
            let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
            assert_close(&at(&v), &through_qr(ae, &ue), 1e-12, "value");
            let (ea, eu) = through_qr_grad(ae, &ue);
            assert_close(&at(&ga), &ea, 1e-12, "per-example da");
            assert_close(&at(&gu), &eu, 1e-12, "per-example du");
            let fa = fd_jacobian(&|x: &Tensor| through_qr(x, &ue), ae).reshape(&[m, n]);
            assert_close(&ea, &fa, 1e-6, "da against differences");
            let t = normal(170 + e as u64, &[m, n]);
            let (_, dt) = through_qr_jvp(ae, &ue, &t, &Tensor::zeros(&[m, n], DType::F64));
            let want = (&ea * &t).sum().item::<f64>();
            assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
            assert_eq!(qr_h(ae).item::<f64>(), qr_g(ae).item::<f64>());
            let h = qr_h_hessian(ae);
            let fh = fd_jacobian(&qr_g_grad, ae);
            assert_close(&h, &fh, 1e-6, "hessian against differences of the gradient");
        }
    }
    // least squares: the gradient with respect to b against differences and the normal
    // equations' closed form, 2 (a x - b) ... through x = (aᵀa)⁻¹ aᵀ b
    let (a, b) = (normal(180, &[6, 3]), normal(181, &[6]));
    let (ga, gb) = qr_least_squares_grad(&a, &b);
    let fa = fd_jacobian(&|x: &Tensor| qr_least_squares(x, &b), &a).reshape(&[6, 3]);
    let fb = fd_jacobian(&|x: &Tensor| qr_least_squares(&a, x), &b).reshape(&[6]);
    assert_close(&ga, &fa, 1e-6, "least squares: da");
    assert_close(&gb, &fb, 1e-6, "least squares: db");
    let x = a.mt().matmul(&a).solve(&a.mt().matmul(&b));
    let (q, r) = a.qr();
    assert_close(
        &r.solve_triangular(&q.mt().matmul(&b), false),
        &x,
        1e-12,
        "the solution",
    );
}

#[test]
fn a_wide_qr_is_decomposed_but_not_differentiated() {
    let a = normal(190, &[2, 4]);
    // the value works for m < n
    let (q, r) = a.qr();
    assert_close(&q.matmul(&r), &a, 1e-12, "a = q r");
    // the gradient says what it needs (JAX raises NotImplementedError there)
    assert_eq!(
        qr_g(&a).item::<f64>(),
        q.cos().sum().item::<f64>() + (&r * &r).sum().item::<f64>() * 0.1
    );
    let e = std::panic::catch_unwind(|| qr_g_grad(&a)).unwrap_err();
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.starts_with("qr: ") && msg.contains("m >= n"), "{msg}");
}

/// A loss through the three factors of a singular value decomposition, of any shape.
#[vmap]
#[grad]
fn through_svd(a: &Tensor, c: &Tensor) -> Tensor {
    let (u, s, vt) = a.svd();
    let k = s.shape()[0];
    (u.sin() * &c.slice(1, 0, k)).sum()
        + s.powi(2).tanh().sum()
        + (vt.cos() * s.unsqueeze(1)).sum()
        + a.svdvals().max()
}

#[hessian]
fn svd_h(a: &Tensor) -> Tensor {
    let (u, s, vt) = a.svd();
    (u.cos() * 0.5).sum() + s.sin().sum() + vt.sum()
}

#[grad]
fn svd_g(a: &Tensor) -> Tensor {
    let (u, s, vt) = a.svd();
    (u.cos() * 0.5).sum() + s.sin().sum() + vt.sum()
}

/// Matrices with well separated singular values (so that the singular vectors, and the
/// finite differences through them, are well defined).
fn spread_out(seed: u64, b: usize, m: usize, n: usize) -> Tensor {
    let k = m.min(n);
    let d = Tensor::from_vec((0..k).map(|i| 1.0 + 1.5 * i as f64).collect(), &[k]);
    let core = d.diag_embed(m, n);
    core + normal(seed, &[b, m, n]) * 0.2
}

#[test]
fn singular_value_decompositions_differentiate_batch_and_twice() {
    for (m, n) in [(4, 3), (3, 3), (2, 4), (1, 3)] {
        let a = spread_out(200, 3, m, n);
        let c = normal(201, &[3, m, n]);
        let v = through_svd_vmap(&a, &c);
        let (ga, gc) = through_svd_grad_vmap(&a, &c);
        for (e, (ae, ce)) in unstack(&a, 0).iter().zip(unstack(&c, 0)).enumerate() {
            let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
            assert_close(&at(&v), &through_svd(ae, &ce), 1e-12, "value");
            let (ea, ec) = through_svd_grad(ae, &ce);
            assert_close(&at(&ga), &ea, 1e-12, "per-example da");
            assert_close(&at(&gc), &ec, 1e-12, "per-example dc");
            let fa = fd_jacobian(&|x: &Tensor| through_svd(x, &ce), ae).reshape(&[m, n]);
            assert_close(
                &ea,
                &fa,
                1e-6,
                &format!("{m} x {n}: da against differences"),
            );
            let t = normal(210 + e as u64, &[m, n]);
            let (_, dt) = through_svd_jvp(ae, &ce, &t, &Tensor::zeros(&[m, n], DType::F64));
            let want = (&ea * &t).sum().item::<f64>();
            assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
            assert_eq!(svd_h(ae).item::<f64>(), svd_g(ae).item::<f64>());
            let h = svd_h_hessian(ae);
            let fh = fd_jacobian(&svd_g_grad, ae);
            assert_close(
                &h,
                &fh,
                1e-6,
                &format!("{m} x {n}: hessian against differences"),
            );
        }
    }
    // the nuclear norm's gradient is u vᵀ
    let a = spread_out(220, 1, 4, 3).squeeze(0);
    let (u, _, vt) = a.svd();
    let nuclear = |x: &Tensor| x.svdvals().sum();
    let fd = fd_jacobian(&nuclear, &a).reshape(&[4, 3]);
    assert_close(&u.matmul(&vt), &fd, 1e-6, "d ||a||_* = u vᵀ");
}

/// Factors left unnamed (`_`) and the pattern's names written with `mut`.
#[grad]
fn some_factors(a: &Tensor) -> Tensor {
    let (w, _) = a.eigh();
    let (_, mut r) = a.qr();
    r = r.tanh();
    let (_, s, _) = a.svd();
    w.sum() + r.sum() + s.sum()
}

#[test]
fn factors_can_be_left_unnamed() {
    let a = spread_out(230, 1, 3, 3).squeeze(0);
    let g = some_factors_grad(&a);
    let fd = fd_jacobian(&some_factors, &a).reshape(&[3, 3]);
    assert_close(&g, &fd, 1e-6, "against differences");
}

/// `slogdet`: the sign carries no derivative, log |det a| does.
#[vmap]
#[grad]
fn through_slogdet(a: &Tensor) -> Tensor {
    let (sign, log) = a.slogdet();
    &sign * log.exp() + log * 0.5 + sign
}

#[test]
fn slogdet_differentiates_as_det_and_logabsdet() {
    let a = normal(240, &[4, 3, 3]);
    let g = through_slogdet_grad_vmap(&a);
    for (e, ae) in unstack(&a, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let want = ae.det().item::<f64>()
            + ae.logabsdet().item::<f64>() * 0.5
            + ae.det().sign().item::<f64>();
        assert!((through_slogdet(ae).item::<f64>() - want).abs() < 1e-12);
        let ge = through_slogdet_grad(ae);
        assert_close(&at(&g), &ge, 1e-12, "per-example gradient");
        let fd = fd_jacobian(&through_slogdet, ae).reshape(&[3, 3]);
        assert_close(&ge, &fd, 1e-6, "against differences");
        // det(a) a⁻ᵀ + a⁻ᵀ / 2
        let inv_t = ae.inv().mt();
        let closed = &inv_t * ae.det() + &inv_t * 0.5;
        assert_close(&ge, &closed, 1e-10, "closed form");
    }
}

/// Every decomposition on a batch with two leading axes, in one plain `#[grad]` call.
#[grad]
fn batched_decompositions(a: &Tensor) -> Tensor {
    let s = (a + a.mt()) * 0.5;
    let (w, v) = s.eigh();
    let (q, r) = a.qr();
    let (u, sv, vt) = a.svd();
    let (sign, log) = a.slogdet();
    (w.sin() * v.sum_axis(-2, false)).sum()
        + q.cos().sum()
        + r.tanh().sum()
        + (u.sin().sum() + sv.sum() + vt.cos().sum())
        + a.det().sum() * 0.1
        + (sign * log).sum()
        + s.eigvalsh().sum()
        + a.svdvals().powi(2).sum()
}

#[test]
fn decompositions_of_batches_with_several_axes_one_by_one_and_empty() {
    // [2, 3, 4, 4]: against the same loss of each matrix alone
    let spread = Tensor::from_vec((0..4).map(|i| 1.0 + 1.5 * i as f64).collect(), &[4]);
    let a = normal(250, &[2, 3, 4, 4]) * 0.2 + spread.diag_embed(4, 4);
    let g = batched_decompositions_grad(&a);
    assert_eq!(g.shape(), &[2, 3, 4, 4]);
    for i in 0..2 {
        for j in 0..3 {
            let one = a
                .slice(0, i, i + 1)
                .slice(1, j, j + 1)
                .squeeze(0)
                .squeeze(0);
            let want = batched_decompositions_grad(&one);
            let got = g
                .slice(0, i, i + 1)
                .slice(1, j, j + 1)
                .squeeze(0)
                .squeeze(0);
            assert_close(&got, &want, 1e-12, &format!("matrix [{i}, {j}]"));
        }
    }
    let one = a.slice(0, 0, 1).slice(1, 0, 1).squeeze(0).squeeze(0);
    let fd = fd_jacobian(&batched_decompositions, &one).reshape(&[4, 4]);
    assert_close(
        &batched_decompositions_grad(&one),
        &fd,
        1e-6,
        "against differences",
    );
    // 1 x 1 matrices: w = a, v = 1, q = 1, r = a (a > 0), u s vt = a
    let a1 = Tensor::from_vec(vec![0.7, 1.3, 2.1], &[3, 1, 1]);
    let g1 = batched_decompositions_grad(&a1);
    let fd = fd_jacobian(&batched_decompositions, &a1).reshape(&[3, 1, 1]);
    assert_close(&g1, &fd, 1e-6, "1 x 1 against differences");
    // a batch of no matrices: a gradient of no elements
    let empty = Tensor::zeros(&[0, 3, 3], DType::F64);
    assert_eq!(batched_decompositions_grad(&empty).shape(), &[0, 3, 3]);
}

#[test]
fn per_example_decompositions_of_no_examples() {
    let (a, u) = (
        Tensor::zeros(&[0, 4, 4], DType::F64),
        Tensor::zeros(&[0, 4], DType::F64),
    );
    let (ga, gu) = spectral_grad_vmap(&a, &u);
    assert_eq!((ga.shape(), gu.shape()), (&[0, 4, 4][..], &[0, 4][..]));
    let (a, c) = (
        Tensor::zeros(&[0, 4, 3], DType::F64),
        Tensor::zeros(&[0, 4, 3], DType::F64),
    );
    assert_eq!(through_qr_grad_vmap(&a, &c).0.shape(), &[0, 4, 3]);
    assert_eq!(through_svd_grad_vmap(&a, &c).0.shape(), &[0, 4, 3]);
    let a = Tensor::zeros(&[0, 3, 3], DType::F64);
    assert_eq!(through_det_grad_vmap(&a).shape(), &[0, 3, 3]);
}
