//! Linear algebra: `solve` (LU with partial pivoting), `solve_triangular` and `cholesky`
//! against the CPU, on one matrix, batches, broadcast batches and strided views, with
//! pivoting, unread triangles holding NaN, breakdowns (non-finite values on the GPU) and
//! empty shapes.

use ferrax_runtime::prelude::*;

use crate::{check, gpu, values};

/// Sizes of the matrices: 130 is more than one workgroup's threads.
const SIZES: [usize; 6] = [1, 2, 3, 17, 64, 130];

/// The tolerance of a result against the CPU's (relative, absolute below 1): the
/// matrices are well conditioned, and the two sides round differently.
const TOL: f32 = 1e-4;

/// `[batch.., n, n]` matrices of [`values`] with `shift` added to their diagonals.
fn shifted(batch: &[usize], n: usize, seed: u64, shift: f32) -> Tensor {
    let shape = [batch, &[n, n]].concat();
    let mut v = values(shape.iter().product(), seed, false);
    for (e, x) in v.iter_mut().enumerate() {
        if (e / n) % n == e % n {
            *x += shift;
        }
    }
    Tensor::from_vec(v, &shape)
}

/// Strictly diagonally dominant matrices (the off-diagonal values are at most 3 in
/// magnitude): well conditioned at every size.
fn dominant(batch: &[usize], n: usize, seed: u64) -> Tensor {
    shifted(batch, n, seed, 3.0 * n as f32 + 1.0)
}

/// A CPU f32 tensor of `shape` with [`values`].
fn rhs(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(values(shape.iter().product(), seed, false), shape)
}

#[test]
fn solve_matches_the_cpu_on_every_form() {
    let Some(dev) = gpu() else { return };
    for (i, n) in SIZES.into_iter().enumerate() {
        let s = i as u64 * 10;
        let a = dominant(&[], n, s);
        let ab = dominant(&[3], n, s + 1);
        let a4 = dominant(&[2, 1], n, s + 2);
        let cases: [(&str, &Tensor, Tensor); 7] = [
            ("[n, n] with [n]", &a, rhs(&[n], s + 3)),
            ("[n, n] with [n, 1]", &a, rhs(&[n, 1], s + 4)),
            ("[n, n] with [n, 3]", &a, rhs(&[n, 3], s + 5)),
            ("[3, n, n] with [3, n, 2]", &ab, rhs(&[3, n, 2], s + 6)),
            ("[n, n] with [4, n, 2]", &a, rhs(&[4, n, 2], s + 7)),
            ("[2, 1, n, n] with [3, n, 2]", &a4, rhs(&[3, n, 2], s + 8)),
            ("[3, n, n] with [n, 2]", &ab, rhs(&[n, 2], s + 9)),
        ];
        for (what, a, b) in cases {
            check(
                &dev,
                &format!("solve {what}, n = {n}"),
                &[a, &b],
                TOL,
                |t| t[0].solve(&t[1]),
            );
        }
    }
}

#[test]
fn solve_pivots_like_lapack() {
    let Some(dev) = gpu() else { return };
    // a zero in the top-left corner: the first step must swap rows
    let a = Tensor::from_vec(
        vec![0.0f32, 2.0, 1.0, 3.0, 1.0, 0.5, 1.0, 4.0, -2.0],
        &[3, 3],
    );
    let b = rhs(&[3, 2], 1);
    check(&dev, "zero top-left", &[&a, &b], TOL, |t| t[0].solve(&t[1]));
    let x = a.to_device(&dev).solve(&b.to_device(&dev));
    let residual = (a.matmul(&x.to_device(&Device::Cpu)) - &b).abs().max();
    assert!(residual.item::<f32>() < 1e-5, "residual {residual:?}");
    // dominant matrices with their rows reversed: a swap at every step, in a batch whose
    // second matrix needs none
    for n in [17, 130] {
        let mut v = dominant(&[2], n, 20 + n as u64).to_vec::<f32>();
        let first: Vec<f32> = v[..n * n].chunks(n).rev().flatten().copied().collect();
        v[..n * n].copy_from_slice(&first);
        let reversed = Tensor::from_vec(v, &[2, n, n]);
        let b = rhs(&[2, n, 3], 21);
        check(
            &dev,
            &format!("rows reversed, n = {n}"),
            &[&reversed, &b],
            TOL,
            |t| t[0].solve(&t[1]),
        );
    }
    // a general matrix (not dominant) that pivots at several steps
    let a = shifted(&[], 64, 22, 8.0);
    let b = rhs(&[64, 2], 23);
    check(&dev, "general 64 x 64", &[&a, &b], 1e-3, |t| {
        t[0].solve(&t[1])
    });
}

#[test]
fn solve_reads_transposed_sliced_and_stepped_operands() {
    let Some(dev) = gpu() else { return };
    let n = 17;
    let a = dominant(&[], n, 30);
    let wide = dominant(&[], n + 3, 31);
    let b = rhs(&[5, n], 32);
    let tall = rhs(&[2, 2 * n, 3], 33);
    check(&dev, "a.t() with b.t()", &[&a, &b], TOL, |t| {
        t[0].t().solve(&t[1].t())
    });
    check(&dev, "a slice", &[&wide, &b], TOL, |t| {
        t[0].slice(0, 1, n + 1)
            .slice(1, 2, n + 2)
            .solve(&t[1].slice(0, 0, 1).reshape(&[n]))
    });
    check(&dev, "stepped b", &[&a, &tall], TOL, |t| {
        t[0].solve(&t[1].slice_step(1, 1, 2 * n, 2))
    });
    let batch = dominant(&[3], n, 34);
    check(&dev, "batch transposed", &[&batch, &tall], TOL, |t| {
        t[0].transpose(1, 2)
            .slice(0, 1, 3)
            .solve(&t[1].slice_step(1, 0, 2 * n, 2))
    });
}

#[test]
fn singular_systems_give_non_finite_values() {
    let Some(dev) = gpu() else { return };
    let b = Tensor::from_vec(vec![1.0f32, 1.0], &[2]).to_device(&dev);
    let non_finite = |x: Tensor| x.to_vec::<f32>().iter().any(|v| !v.is_finite());
    // singular: rank one, and zero; the second with a batch
    for rows in [vec![1.0f32, 2.0, 2.0, 4.0], vec![0.0; 4]] {
        let a = Tensor::from_vec(rows.clone(), &[2, 2]).to_device(&dev);
        assert!(non_finite(a.solve(&b)), "{rows:?}");
    }
    let batch = Tensor::from_vec(vec![2.0f32, 1.0, 1.0, 3.0, 1.0, 2.0, 2.0, 4.0], &[2, 2, 2]);
    let x = batch
        .to_device(&dev)
        .solve(&b.reshape(&[1, 2, 1]))
        .to_vec::<f32>();
    assert!(x[..2].iter().all(|v| v.is_finite()), "{x:?}");
    assert!(x[2..].iter().any(|v| !v.is_finite()), "{x:?}");
    // a zero on the diagonal of the triangle read
    let a = Tensor::from_vec(vec![1.0f32, 5.0, 2.0, 0.0], &[2, 2]).to_device(&dev);
    assert!(non_finite(a.solve_triangular(&b, true)));
    let a = Tensor::from_vec(vec![0.0f32, 5.0, 2.0, 1.0], &[2, 2]).to_device(&dev);
    assert!(non_finite(a.solve_triangular(&b, false)));
}

/// `t` with NaN in the triangle that a solve with `lower` must not read.
fn planted(t: &Tensor, lower: bool) -> Tensor {
    let n = t.shape()[t.ndim() - 1];
    let mut v = t.to_vec::<f32>();
    for (e, x) in v.iter_mut().enumerate() {
        let (r, c) = ((e / n) % n, e % n);
        if (lower && c > r) || (!lower && c < r) {
            *x = f32::NAN;
        }
    }
    Tensor::from_vec(v, t.shape())
}

#[test]
fn solve_triangular_reads_only_its_triangle() {
    let Some(dev) = gpu() else { return };
    for (i, n) in SIZES.into_iter().enumerate() {
        let s = 40 + i as u64 * 10;
        for lower in [true, false] {
            let a = planted(&dominant(&[], n, s), lower);
            let ab = planted(&dominant(&[3], n, s + 1), lower);
            let cases: [(&str, &Tensor, Tensor); 4] = [
                ("[n, n] with [n]", &a, rhs(&[n], s + 2)),
                ("[n, n] with [n, 3]", &a, rhs(&[n, 3], s + 3)),
                ("[3, n, n] with [3, n, 2]", &ab, rhs(&[3, n, 2], s + 4)),
                ("[n, n] with [2, n, 2]", &a, rhs(&[2, n, 2], s + 5)),
            ];
            for (what, a, b) in cases {
                let what = format!("solve_triangular {what}, n = {n}, lower {lower}");
                check(&dev, &what, &[a, &b], TOL, |t| {
                    t[0].solve_triangular(&t[1], lower)
                });
                let x = a
                    .to_device(&dev)
                    .solve_triangular(&b.to_device(&dev), lower);
                assert!(
                    x.to_vec::<f32>().iter().all(|v| v.is_finite()),
                    "{what}: a NaN leaked from the unread triangle"
                );
            }
        }
    }
    // a transposed lower triangle is an upper one
    let a = planted(&dominant(&[], 17, 90), true);
    let b = rhs(&[17, 2], 91);
    check(&dev, "transposed", &[&a, &b], TOL, |t| {
        t[0].t().solve_triangular(&t[1], false)
    });
}

/// `[batch.., n, n]` symmetric positive definite matrices `m mᵀ + n I`.
fn spd(batch: &[usize], n: usize, seed: u64) -> Tensor {
    let m = rhs(&[batch, &[n, n]].concat(), seed);
    let nd = m.ndim() as isize;
    m.matmul(&m.transpose(nd - 2, nd - 1)) + Tensor::eye(n, DType::F32) * n as f32
}

#[test]
fn cholesky_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (i, n) in SIZES.into_iter().enumerate() {
        let s = 100 + i as u64;
        let a = spd(&[], n, s);
        check(&dev, &format!("cholesky n = {n}"), &[&a], TOL, |t| {
            t[0].cholesky()
        });
        let ab = spd(&[2, 2], n, s + 10);
        check(
            &dev,
            &format!("cholesky [2, 2, n, n], n = {n}"),
            &[&ab],
            TOL,
            |t| t[0].cholesky(),
        );
    }
    // strided input; an unsymmetric one is symmetrized first
    let a = spd(&[4], 17, 120);
    check(&dev, "transposed and stepped", &[&a], TOL, |t| {
        t[0].transpose(1, 2).slice_step(0, 1, 4, 2).cholesky()
    });
    let skew = &a + rhs(&[4, 17, 17], 121) * 0.25;
    check(&dev, "unsymmetric", &[&skew], TOL, |t| t[0].cholesky());
    let shared = spd(&[], 9, 122);
    check(&dev, "broadcast batch", &[&shared], TOL, |t| {
        t[0].broadcast_to(&[3, 9, 9]).cholesky()
    });
    // the result is contiguous with exact zeros above the diagonal
    let l = a.to_device(&dev).cholesky().to_vec::<f32>();
    for (e, v) in l.iter().enumerate() {
        if e % 17 > (e / 17) % 17 {
            assert_eq!(*v, 0.0, "element {e} above the diagonal");
        }
    }
}

#[test]
fn cholesky_of_a_matrix_that_is_not_positive_definite_is_nan() {
    let Some(dev) = gpu() else { return };
    let good = spd(&[], 5, 130);
    let mut bad = spd(&[], 5, 131).to_vec::<f32>();
    bad[2 * 5 + 2] = -100.0; // a negative diagonal element
    let bad = Tensor::from_vec(bad, &[5, 5]);
    let both = Tensor::stack(&[&good, &bad], 0).to_device(&dev);
    let l = both.cholesky().to_vec::<f32>();
    let want = good.cholesky().to_vec::<f32>();
    for (g, w) in l[..25].iter().zip(&want) {
        assert!((g - w).abs() < 1e-4, "the good matrix: {g} vs {w}");
    }
    assert!(
        l[25..].iter().all(|v| v.is_nan()),
        "the bad one: {:?}",
        &l[25..]
    );
    let zero = Tensor::zeros(&[3, 3], DType::F32).to_device(&dev);
    assert!(zero.cholesky().to_vec::<f32>().iter().all(|v| v.is_nan()));
}

#[test]
fn empty_systems_and_matrices() {
    let Some(dev) = gpu() else { return };
    let solves: &[(&[usize], &[usize], &[usize])] = &[
        (&[0, 0], &[0], &[0]),
        (&[0, 0], &[0, 3], &[0, 3]),
        (&[2, 0, 0], &[2, 0, 3], &[2, 0, 3]),
        (&[3, 3], &[3, 0], &[3, 0]),
        (&[2, 3, 3], &[2, 3, 0], &[2, 3, 0]),
        (&[0, 3, 3], &[0, 3, 2], &[0, 3, 2]),
        (&[3, 3], &[0, 3, 2], &[0, 3, 2]),
    ];
    for &(sa, sb, want) in solves {
        let a = Tensor::zeros(sa, DType::F32).to_device(&dev);
        let b = Tensor::zeros(sb, DType::F32).to_device(&dev);
        for x in [a.solve(&b), a.solve_triangular(&b, true)] {
            assert_eq!(x.shape(), want, "{sa:?} with {sb:?}");
            assert!(x.device().is_gpu());
            assert!(x.to_vec::<f32>().is_empty());
        }
    }
    for shape in [&[0, 0][..], &[3, 0, 0], &[0, 4, 4]] {
        let l = Tensor::zeros(shape, DType::F32).to_device(&dev).cholesky();
        assert_eq!(l.shape(), shape);
        assert!(l.to_vec::<f32>().is_empty());
    }
}

#[test]
fn solve_checks_shapes_before_dispatch() {
    let Some(dev) = gpu() else { return };
    let a = Tensor::ones(&[3, 3], DType::F32).to_device(&dev);
    let b = Tensor::ones(&[4, 2], DType::F32).to_device(&dev);
    let e = a.try_solve(&b).unwrap_err().to_string();
    assert!(e.contains("solve") && e.contains("[4, 2]"), "{e}");
    let e = Tensor::ones(&[2, 3], DType::F32)
        .to_device(&dev)
        .try_cholesky()
        .unwrap_err()
        .to_string();
    assert!(e.contains("cholesky"), "{e}");
}

/// More matrices than one dispatch dimension holds (65,535 workgroups): the batch goes
/// over two, and every matrix is still solved (1 x 1 matrices, whose solutions and factors
/// are known: this costs about a second and a half on lavapipe).
#[test]
fn batches_beyond_one_dispatch_dimension() {
    let Some(dev) = gpu() else { return };
    let count = 70_000;
    let a: Vec<f32> = (0..count).map(|i| 1.0 + (i % 7) as f32).collect();
    let b: Vec<f32> = (0..count).map(|i| (i % 13) as f32).collect();
    let ga = Tensor::from_vec(a.clone(), &[count, 1, 1]).to_device(&dev);
    let gb = Tensor::from_vec(b.clone(), &[count, 1, 1]).to_device(&dev);
    let x = ga.solve(&gb).to_vec::<f32>();
    for i in 0..count {
        assert_eq!(x[i], b[i] / a[i], "solve, matrix {i}");
    }
    let l = ga.cholesky().to_vec::<f32>();
    for i in 0..count {
        let want = a[i].sqrt();
        assert!(
            (l[i] - want).abs() <= 1e-6 * want,
            "cholesky, matrix {i}: {} vs {want}",
            l[i]
        );
    }
}
