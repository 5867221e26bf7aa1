//! `expm` against a Taylor series (scaled and squared in f64), against `V diag(e^w) Vᵀ`
//! for symmetric matrices, at norms that select every Padé degree and scaling; batches,
//! the group property, exact nilpotent cases, f32; `expm_frechet` against central
//! differences of `expm` and the commuting closed form; errors.

use ferrax_runtime::prelude::*;

use crate::vals;

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            for j in 0..n {
                c[i * n + j] += a[i * n + k] * b[k * n + j];
            }
        }
    }
    c
}

/// `e^A` by 30 Taylor terms of `A / 2^s` (norm below 1/2), squared `s` times.
fn reference(a: &[f64], n: usize) -> Vec<f64> {
    let norm = (0..n)
        .map(|j| (0..n).map(|i| a[i * n + j].abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let s = (norm * 2.0).log2().ceil().max(0.0) as i32;
    let x: Vec<f64> = a.iter().map(|v| v / 2f64.powi(s)).collect();
    let mut term: Vec<f64> = (0..n * n)
        .map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    let mut sum = term.clone();
    for k in 1..30 {
        term = matmul(&term, &x, n).iter().map(|v| v / k as f64).collect();
        for (s, t) in sum.iter_mut().zip(&term) {
            *s += t;
        }
    }
    for _ in 0..s {
        sum = matmul(&sum, &sum, n);
    }
    sum
}

#[track_caller]
fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * scale,
            "{what}: element {i}: {g} against {w}"
        );
    }
}

#[test]
fn expm_matches_the_series_at_every_degree_and_scaling() {
    // 1-norms from 0.01 (degree 3) past 5.4 (scaled and squared), to 60
    for (k, norm) in [0.01, 0.2, 0.9, 2.0, 5.0, 12.0, 60.0]
        .into_iter()
        .enumerate()
    {
        for n in [1usize, 3, 6] {
            let raw = vals(n * n, 10 * k as u64 + n as u64);
            let col = (0..n)
                .map(|j| (0..n).map(|i| raw[i * n + j].abs()).sum::<f64>())
                .fold(0.0, f64::max);
            let a: Vec<f64> = raw.iter().map(|v| v * norm / col).collect();
            let got = Tensor::from_vec(a.clone(), &[n, n]).expm().to_vec::<f64>();
            close(
                &got,
                &reference(&a, n),
                1e-13 * (1.0 + norm),
                &format!("norm {norm} n {n}"),
            );
            let got32 = Tensor::from_vec(a.clone(), &[n, n])
                .to_dtype(DType::F32)
                .expm();
            assert_eq!(got32.dtype(), DType::F32);
            let got32: Vec<f64> = got32.to_dtype(DType::F64).to_vec();
            close(
                &got32,
                &reference(&a, n),
                2e-5 * (1.0 + norm),
                &format!("f32 norm {norm} n {n}"),
            );
        }
    }
}

#[test]
fn expm_of_symmetric_nilpotent_and_batched_matrices() {
    // symmetric: V diag(e^w) Vᵀ
    let b = Tensor::from_vec(vals(25, 3), &[5, 5]);
    let s = (&b + &b.mt()) * 1.5;
    let (w, v) = s.eigh();
    let want = (&v * &w.exp().unsqueeze(0)).matmul(&v.mt()).to_vec::<f64>();
    close(&s.expm().to_vec::<f64>(), &want, 1e-13, "symmetric");
    // nilpotent: the series ends, I + N + N²/2
    let n = Tensor::from_vec(
        vec![0.0f64, 1.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0],
        &[3, 3],
    );
    let want = [1.0, 1.0, 3.5, 0.0, 1.0, 3.0, 0.0, 0.0, 1.0];
    close(&n.expm().to_vec::<f64>(), &want, 4e-16, "nilpotent");
    // a batch with very different norms: each as it would be alone
    let mats: Vec<Tensor> = [0.05, 1.0, 30.0]
        .iter()
        .enumerate()
        .map(|(k, &c)| Tensor::from_vec(vals(16, 40 + k as u64), &[4, 4]) * c)
        .collect();
    let batch = Tensor::stack(&mats, 0).reshape(&[3, 1, 4, 4]);
    let e = batch.expm();
    assert_eq!(e.shape(), &[3, 1, 4, 4]);
    for (k, m) in mats.iter().enumerate() {
        let one = e.slice(0, k, k + 1).reshape(&[4, 4]).to_vec::<f64>();
        close(
            &one,
            &reference(&m.to_vec::<f64>(), 4),
            1e-13 * 31.0,
            &format!("batch {k}"),
        );
        // e^A e^-A = I, to rounding of the size of |e^A| |e^-A|
        let (p, q) = (m.expm(), m.neg().expm());
        let size = p.abs().max().item::<f64>() * q.abs().max().item::<f64>();
        let id = p.matmul(&q).to_vec::<f64>();
        close(
            &id,
            &Tensor::eye(4, DType::F64).to_vec::<f64>(),
            1e-13 * size,
            "group",
        );
    }
    // a transposed view; empty batches
    let t = Tensor::from_vec(vals(9, 5), &[3, 3]);
    let want = t.expm().mt().contiguous().to_vec::<f64>();
    close(&t.mt().expm().to_vec::<f64>(), &want, 1e-15, "transposed");
    assert_eq!(
        Tensor::zeros(&[0, 2, 2], DType::F32).expm().shape(),
        &[0, 2, 2]
    );
}

#[test]
fn the_frechet_derivative_matches_differences_and_the_commuting_case() {
    for (seed, scale) in [(1u64, 0.3), (2, 2.0), (3, 9.0)] {
        let a = Tensor::from_vec(vals(16, seed), &[4, 4]) * scale;
        let e = Tensor::from_vec(vals(16, seed + 100), &[4, 4]);
        let l = a.expm_frechet(&e).to_vec::<f64>();
        let h = 1e-6;
        let fd = ((&a + &(&e * h)).expm() - (&a - &(&e * h)).expm()) * (0.5 / h);
        close(
            &l,
            &fd.to_vec::<f64>(),
            1e-7,
            &format!("differences at scale {scale}"),
        );
    }
    // the upper right block of expm([[A, E], [0, A]]), at norms of every degree and
    // scaling, in f64 and f32
    for (k, scale) in [0.002, 0.05, 0.3, 0.8, 1.5, 4.0, 20.0]
        .into_iter()
        .enumerate()
    {
        for dtype in [DType::F64, DType::F32] {
            let a = (Tensor::from_vec(vals(25, 50 + k as u64), &[5, 5]) * scale).to_dtype(dtype);
            let e = Tensor::from_vec(vals(25, 60 + k as u64), &[5, 5]).to_dtype(dtype);
            let top = Tensor::concat(&[&a, &e], -1);
            let bottom = Tensor::concat(&[&a.zeros_like(), &a], -1);
            let block = Tensor::concat(&[top, bottom], -2).expm();
            let want = block
                .slice(0, 0, 5)
                .slice(1, 5, 10)
                .to_dtype(DType::F64)
                .to_vec::<f64>();
            let got = a.expm_frechet(&e).to_dtype(DType::F64).to_vec::<f64>();
            let tol = if dtype == DType::F64 { 1e-13 } else { 2e-5 };
            close(
                &got,
                &want,
                tol * (1.0 + scale),
                &format!("block at {scale} {dtype:?}"),
            );
        }
    }
    // A and E = p(A) commute: L(A, E) = E e^A
    let a = Tensor::from_vec(vals(9, 8), &[3, 3]);
    let e = a.matmul(&a) * 0.5 + &a;
    let want = e.matmul(&a.expm()).to_vec::<f64>();
    close(
        &a.expm_frechet(&e).to_vec::<f64>(),
        &want,
        1e-13,
        "commuting",
    );
    // batched
    let ab = Tensor::from_vec(vals(32, 9), &[2, 4, 4]);
    let eb = Tensor::from_vec(vals(32, 10), &[2, 4, 4]);
    let lb = ab.expm_frechet(&eb);
    for k in 0..2 {
        let at = |t: &Tensor| t.slice(0, k, k + 1).squeeze(0);
        close(
            &at(&lb).to_vec::<f64>(),
            &at(&ab).expm_frechet(&at(&eb)).to_vec::<f64>(),
            1e-12,
            "batched",
        );
    }
}

#[test]
fn bad_matrices_are_errors_naming_the_operation() {
    let e = Tensor::zeros(&[2, 3], DType::F64)
        .try_expm()
        .unwrap_err()
        .to_string();
    assert!(e.contains("expm") && e.contains("square"), "{e}");
    let e = Tensor::zeros(&[3], DType::F64)
        .try_expm()
        .unwrap_err()
        .to_string();
    assert!(e.contains("expm"), "{e}");
    let ints = Tensor::from_vec(vec![1i32, 0, 0, 1], &[2, 2]);
    assert!(ints.try_expm().unwrap_err().to_string().contains("expm"));
    let nan = Tensor::from_vec(vec![f64::NAN, 0.0, 0.0, 1.0], &[2, 2]);
    assert!(
        nan.try_expm()
            .unwrap_err()
            .to_string()
            .contains("not finite")
    );
    let a = Tensor::eye(2, DType::F64);
    let e = a
        .try_expm_frechet(&Tensor::eye(3, DType::F64))
        .unwrap_err()
        .to_string();
    assert!(e.contains("expm_frechet"), "{e}");
    let e = a
        .try_expm_frechet(&Tensor::eye(2, DType::F32))
        .unwrap_err()
        .to_string();
    assert!(e.contains("expm_frechet"), "{e}");
}
