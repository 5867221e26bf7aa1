//! Linear algebra: `solve` (LU with partial pivoting), `lu_factor` and `lu_solve`,
//! `solve_triangular`, `cholesky`, `eigh` (the Jacobi kernel), `qr` (Householder) and
//! `svd` (one-sided Jacobi) against the CPU, on one matrix, batches, broadcast batches
//! and strided views, with pivoting, unread triangles holding NaN, breakdowns
//! (non-finite values on the GPU), matrices of lower rank and empty shapes; LU factors
//! made on one device solve on the other.

use ferrax_runtime::prelude::*;

use crate::{assert_matches, check, gpu, values};

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

/// [`dominant`] matrices with their rows shuffled, each matrix its own way: partial
/// pivoting swaps rows at almost every step, in cycles, and its pivots stand well apart
/// from the other candidates (rounding cannot change them).
fn shuffled(batch: &[usize], n: usize, seed: u64) -> Tensor {
    let d = dominant(batch, n, seed);
    let mut v = d.to_vec::<f32>();
    let mut state = seed;
    for m in v.chunks_mut((n * n).max(1)) {
        let mut rows: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rows.swap(i, (state >> 33) as usize % (i + 1));
        }
        let before = m.to_vec();
        for (r, &from) in rows.iter().enumerate() {
            m[r * n..(r + 1) * n].copy_from_slice(&before[from * n..(from + 1) * n]);
        }
    }
    Tensor::from_vec(v, d.shape())
}

/// Asserts that `lu` (`[.., n, n + 1]`, packed LU factors) factors `a` (`[.., n, n]`):
/// its last column a permutation `p`, and `a[p] = L U` (unit `L` below the diagonal, `U`
/// on and above it) to f32 rounding.
#[track_caller]
fn assert_factors(what: &str, a: &Tensor, lu: &Tensor) {
    let n = a.shape()[a.ndim() - 1];
    let (a, lu) = (a.to_vec::<f32>(), lu.to_vec::<f32>());
    for (m, (a, f)) in a.chunks(n * n).zip(lu.chunks(n * (n + 1))).enumerate() {
        let at = |r: usize, c: usize| f64::from(f[r * (n + 1) + c]);
        let p: Vec<usize> = (0..n).map(|i| at(i, n) as usize).collect();
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert!(
            sorted.iter().copied().eq(0..n),
            "{what}: matrix {m}: {p:?} is not a permutation"
        );
        let scale = a.iter().fold(1.0f64, |s, x| s.max(f64::from(x.abs())));
        for i in 0..n {
            for j in 0..n {
                let lu_ij: f64 = (0..=i.min(j))
                    .map(|t| if t == i { 1.0 } else { at(i, t) } * at(t, j))
                    .sum();
                let want = f64::from(a[p[i] * n + j]);
                assert!(
                    (lu_ij - want).abs() <= 1e-5 * scale,
                    "{what}: matrix {m}: (L U)[{i}][{j}] = {lu_ij}, a[p[{i}]][{j}] = {want}"
                );
            }
        }
    }
}

#[test]
fn lu_factor_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (i, n) in SIZES.into_iter().enumerate() {
        let s = 200 + i as u64 * 10;
        let one = shuffled(&[], n, s);
        let batch = shuffled(&[3], n, s + 1);
        let stored = shuffled(&[2], n, s + 2);
        // (what, the input as stored, whether it is read transposed)
        let cases: [(&str, &Tensor, bool); 3] = [
            ("[n, n]", &one, false),
            ("[3, n, n]", &batch, false),
            ("[2, n, n] transposed", &stored, true),
        ];
        for (what, a, transposed) in cases {
            let what = format!("lu_factor {what}, n = {n}");
            let f = |t: &[Tensor]| {
                if transposed {
                    t[0].mt().lu_factor()
                } else {
                    t[0].lu_factor()
                }
            };
            // the packed values and the permutation column (a different pivot would
            // differ by at least 1 there)
            check(&dev, &what, &[a], TOL, f);
            let lu = f(&[a.to_device(&dev)]).to_device(&Device::Cpu);
            let a = if transposed { a.mt() } else { a.clone() };
            assert_factors(&what, &a, &lu);
        }
    }
    // general matrices (the values are multiples of 1/8: magnitudes tie among the first
    // column's candidates, and the first row of the largest wins, on both devices)
    for n in [2, 3, 8, 17] {
        let a = shifted(&[4], n, 250 + n as u64, 0.5);
        let what = format!("lu_factor general, n = {n}");
        check(&dev, &what, &[&a], TOL, |t| t[0].lu_factor());
        assert_factors(
            &what,
            &a,
            &a.to_device(&dev).lu_factor().to_device(&Device::Cpu),
        );
    }
    // ties by construction: rows 1 and 2 tie at the first step (row 1 wins), then the
    // last row wins: p = [1, 2, 0], a cycle (its inverse is [2, 0, 1])
    let a = Tensor::from_vec(
        vec![0.5f32, 1.0, 2.0, 2.0, 1.0, 0.0, -2.0, 3.0, 1.0],
        &[3, 3],
    );
    check(&dev, "ties", &[&a], TOL, |t| t[0].lu_factor());
    let lu = a.to_device(&dev).lu_factor().to_vec::<f32>();
    assert_eq!([lu[3], lu[7], lu[11]], [1.0, 2.0, 0.0], "{lu:?}");
}

#[test]
fn lu_solve_matches_the_cpu_and_solve() {
    let Some(dev) = gpu() else { return };
    for (i, n) in SIZES.into_iter().enumerate() {
        let s = 300 + i as u64 * 10;
        let a = shuffled(&[], n, s);
        let ab = shuffled(&[3], n, s + 1);
        let cases: [(&str, &Tensor, Tensor); 5] = [
            ("[n, n] with [n]", &a, rhs(&[n], s + 2)),
            ("[n, n] with [n, 3]", &a, rhs(&[n, 3], s + 3)),
            ("[n, n] with [4, n, 2]", &a, rhs(&[4, n, 2], s + 4)),
            ("[3, n, n] with [n, 2]", &ab, rhs(&[n, 2], s + 5)),
            ("[3, n, n] with [3, n, 1]", &ab, rhs(&[3, n, 1], s + 6)),
        ];
        for (what, a, b) in cases {
            let (ga, gb) = (a.to_device(&dev), b.to_device(&dev));
            let (cpu_lu, gpu_lu) = (a.lu_factor(), ga.lu_factor());
            for transpose in [false, true] {
                let what = format!("lu_solve {what}, n = {n}, transpose {transpose}");
                let want = cpu_lu.lu_solve(&b, transpose);
                let x = gpu_lu.lu_solve(&gb, transpose);
                assert_matches(&what, &x, &want, TOL);
                let direct = if transpose {
                    a.mt().solve(&b)
                } else {
                    a.solve(&b)
                };
                assert_matches(&format!("{what}, against solve"), &x, &direct, TOL);
                // factors made on one device solve on the other
                let x = cpu_lu.to_device(&dev).lu_solve(&gb, transpose);
                assert_matches(&format!("{what}, the CPU's factors"), &x, &want, TOL);
                let x = gpu_lu.to_device(&Device::Cpu).lu_solve(&b, transpose);
                let what = format!("{what}, the GPU's factors on the CPU");
                assert_matches(&what, &x.to_device(&dev), &want, TOL);
            }
        }
    }
}

#[test]
fn lu_solve_reads_sliced_stepped_and_broadcast_operands() {
    let Some(dev) = gpu() else { return };
    let n = 17;
    let a = shuffled(&[4], n, 400);
    let b = rhs(&[2, 2 * n, 3], 401);
    let a2 = shuffled(&[2, 1], n, 402);
    let b3 = rhs(&[3, n, 2], 403);
    for transpose in [false, true] {
        check(&dev, "sliced factors, stepped b", &[&a, &b], TOL, |t| {
            t[0].lu_factor()
                .slice(0, 1, 3)
                .lu_solve(&t[1].slice_step(1, 0, 2 * n, 2), transpose)
        });
        check(&dev, "[2, 1] factors with [3] b", &[&a2, &b3], TOL, |t| {
            t[0].lu_factor().lu_solve(&t[1], transpose)
        });
        check(
            &dev,
            "broadcast factors with b.mt()",
            &[&a, &b3],
            TOL,
            |t| {
                t[0].slice(0, 2, 3)
                    .lu_factor()
                    .broadcast_to(&[3, n, n + 1])
                    .lu_solve(&t[1].mt().mt(), transpose)
            },
        );
    }
}

#[test]
fn singular_lu_factors_give_non_finite_solutions() {
    let Some(dev) = gpu() else { return };
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 2.0, 4.0], &[2, 2]);
    let b = Tensor::from_vec(vec![1.0f32, 1.0], &[2]);
    let e = a
        .lu_factor()
        .try_lu_solve(&b, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("singular"), "the CPU reports it: {e}");
    let lu = a.to_device(&dev).try_lu_factor().expect("the GPU does not");
    let b = b.to_device(&dev);
    for transpose in [false, true] {
        let x = lu.lu_solve(&b, transpose).to_vec::<f32>();
        assert!(x.iter().any(|v| !v.is_finite()), "{x:?}");
    }
}

#[test]
fn lu_factor_and_lu_solve_of_empty_shapes() {
    let Some(dev) = gpu() else { return };
    let factors: [(&[usize], &[usize]); 3] = [
        (&[0, 0], &[0, 1]),
        (&[3, 0, 0], &[3, 0, 1]),
        (&[0, 4, 4], &[0, 4, 5]),
    ];
    for (shape, want) in factors {
        let lu = Tensor::zeros(shape, DType::F32).to_device(&dev).lu_factor();
        assert_eq!(lu.shape(), want, "{shape:?}");
        assert!(lu.device().is_gpu());
        assert!(lu.to_vec::<f32>().is_empty());
    }
    let solves: &[(&[usize], &[usize], &[usize])] = &[
        (&[0, 1], &[0], &[0]),
        (&[0, 1], &[0, 3], &[0, 3]),
        (&[2, 0, 1], &[2, 0, 3], &[2, 0, 3]),
        (&[3, 4], &[3, 0], &[3, 0]),
        (&[2, 3, 4], &[2, 3, 0], &[2, 3, 0]),
        (&[0, 3, 4], &[0, 3, 2], &[0, 3, 2]),
        (&[3, 4], &[0, 3, 2], &[0, 3, 2]),
    ];
    for transpose in [false, true] {
        for &(sf, sb, want) in solves {
            let lu = Tensor::zeros(sf, DType::F32);
            let b = Tensor::zeros(sb, DType::F32);
            let x = lu.to_device(&dev).lu_solve(&b.to_device(&dev), transpose);
            assert_eq!(x.shape(), want, "{sf:?} with {sb:?}");
            assert_eq!(lu.lu_solve(&b, transpose).shape(), want, "the CPU");
            assert!(x.device().is_gpu());
            assert!(x.to_vec::<f32>().is_empty());
        }
    }
}

/// A permutation of `0..n`, shuffled by `seed`.
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        p.swap(i, (state >> 33) as usize % (i + 1));
    }
    p
}

/// The spacing of the diagonal added by [`separated`].
const GAP: f32 = 2.0;

/// `[batch.., n, n]` matrices of [`values`] (made symmetric with `symmetric`) plus a
/// diagonal of the multiples of [`GAP`] in shuffled order: the random part mixes the
/// neighbouring indices, and the eigenvalues stay well apart (about `GAP`), so that the
/// eigenvectors are well defined and both devices find the same ones.
fn separated(batch: &[usize], n: usize, seed: u64, symmetric: bool) -> Tensor {
    let shape = [batch, &[n, n]].concat();
    let mut v = values(shape.iter().product(), seed, false);
    for (k, m) in v.chunks_mut((n * n).max(1)).enumerate() {
        if symmetric {
            for r in 0..n {
                for c in 0..r {
                    let s = (m[r * n + c] + m[c * n + r]) / 2.0;
                    m[r * n + c] = s;
                    m[c * n + r] = s;
                }
            }
        }
        for (i, p) in permutation(n, seed + k as u64).into_iter().enumerate() {
            m[i * n + i] += GAP * p as f32;
        }
    }
    Tensor::from_vec(v, &shape)
}

/// The largest error found so far and where, `(error, description)`.
type Worst = (f64, String);

/// Keeps `(x, at)` in `worst` if `x` is larger (or NaN).
fn track(worst: &mut Worst, x: f64, at: impl FnOnce() -> String) {
    if x > worst.0 || x.is_nan() {
        *worst = (x, at());
    }
}

/// `x`'s elements (on either device, f32 or f64) as f64.
fn to_f64(x: &Tensor) -> Vec<f64> {
    match x.dtype() {
        DType::F64 => x.to_vec::<f64>(),
        _ => x.to_vec::<f32>().into_iter().map(f64::from).collect(),
    }
}

/// Asserts that `packed` (`[.., n + 1, n]`, on the GPU) decomposes the symmetric parts of
/// `a` (a CPU tensor): `v diag(w) vᵀ ≈ (a + aᵀ) / 2` (within `1e-4` of the largest
/// eigenvalue's magnitude), `vᵀ v ≈ I` (within `1e-4`), `w` ascending and each vector's
/// largest component positive.
#[track_caller]
fn assert_decomposes(what: &str, a: &Tensor, packed: &Tensor) {
    assert!(packed.device().is_gpu(), "{what}: on {}", packed.device());
    let n = a.shape()[a.ndim() - 1];
    let mut shape = a.shape().to_vec();
    shape[a.ndim() - 2] = n + 1;
    assert_eq!(packed.shape(), shape, "{what}: shape");
    let (a, got) = (to_f64(a), to_f64(packed));
    let (mut back, mut gram): (Worst, Worst) = Default::default();
    for (m, (a, g)) in a.chunks(n * n).zip(got.chunks((n + 1) * n)).enumerate() {
        let w = &g[n * n..];
        assert!(
            w.windows(2).all(|p| p[0] <= p[1]),
            "{what}: matrix {m}: {w:?} not ascending"
        );
        for c in 0..n {
            let big = (0..n)
                .map(|r| g[r * n + c])
                .fold(0.0f64, |b, x| if x.abs() > b.abs() { x } else { b });
            assert!(big > 0.0, "{what}: matrix {m}: eigenvector {c}'s sign");
        }
        let scale = w.iter().fold(1.0f64, |b, x| b.max(x.abs()));
        for r in 0..n {
            for c in 0..n {
                let s = (a[r * n + c] + a[c * n + r]) / 2.0;
                let b: f64 = (0..n).map(|k| g[r * n + k] * w[k] * g[c * n + k]).sum();
                track(&mut back, (b - s).abs() / scale, || {
                    format!("matrix {m}: (v diag(w) vᵀ)[{r}][{c}] = {b}, want {s}")
                });
                let dot: f64 = (0..n).map(|k| g[k * n + r] * g[k * n + c]).sum();
                let eye = if r == c { 1.0 } else { 0.0 };
                track(&mut gram, (dot - eye).abs(), || {
                    format!("matrix {m}: (vᵀ v)[{r}][{c}] = {dot}")
                });
            }
        }
    }
    assert!(back.0 <= 1e-4, "{what}: {}", back.1);
    assert!(gram.0 <= 1e-4, "{what}: {}", gram.1);
}

/// Asserts that `packed` (on the GPU) is close to `want` (the CPU's, in f32 or f64): the
/// eigenvalues within `1e-4` of the largest magnitude, each eigenvector (sign-normalized
/// on both devices) within `vec_tol` component by component.
#[track_caller]
fn assert_near(what: &str, packed: &Tensor, want: &Tensor, vec_tol: f64) {
    assert_packed_near(what, packed, want, "eigenvalue", 1e-4, vec_tol);
}

/// Asserts that the packed decomposition `packed` (on the GPU) is close to `want` (the
/// CPU's, packed alike, in f32 or f64): its last row, the `values`, within `value_tol` of
/// the largest magnitude (at least 1); the rows above, vectors sign-normalized on both
/// devices, within `vec_tol` component by component.
#[track_caller]
fn assert_packed_near(
    what: &str,
    packed: &Tensor,
    want: &Tensor,
    values_are: &str,
    value_tol: f64,
    vec_tol: f64,
) {
    assert_eq!(packed.shape(), want.shape(), "{what}: shape");
    let (rows, n) = (want.shape()[want.ndim() - 2], want.shape()[want.ndim() - 1]);
    let (got, want) = (to_f64(packed), to_f64(want));
    let (mut values, mut vectors): (Worst, Worst) = Default::default();
    for (b, (g, c)) in got.chunks(rows * n).zip(want.chunks(rows * n)).enumerate() {
        let last = (rows - 1) * n;
        let scale = c[last..].iter().fold(1.0f64, |s, x| s.max(x.abs()));
        for (e, (x, y)) in g.iter().zip(c).enumerate() {
            let (r, col) = (e / n, e % n);
            if e >= last {
                track(&mut values, (x - y).abs() / scale, || {
                    format!("matrix {b}: {values_are} {col}: gpu {x}, cpu {y}")
                });
            } else {
                track(&mut vectors, (x - y).abs(), || {
                    format!("matrix {b}: packed [{r}][{col}]: gpu {x}, cpu {y}")
                });
            }
        }
    }
    assert!(values.0 <= value_tol, "{what}: {}", values.1);
    assert!(vectors.0 <= vec_tol, "{what}: {}", vectors.1);
}

/// `f(base)` decomposed on the GPU (`f` applied to `base`'s GPU copy), checked by
/// [`assert_decomposes`] and [`assert_near`] the CPU's decomposition in f32 (within 1e-3:
/// its vectors are off by up to 5e-4 at n = 130) and in f64 (within 5e-4: the GPU's own
/// error reaches 3e-4 there).
#[track_caller]
fn check_eigh(dev: &Device, what: &str, base: &Tensor, f: impl Fn(&Tensor) -> Tensor) {
    let a = f(base);
    let packed = f(&base.to_device(dev)).eigh_packed();
    assert_decomposes(what, &a, &packed);
    assert_near(what, &packed, &a.eigh_packed(), 1e-3);
    let exact = a.to_dtype(DType::F64).eigh_packed();
    assert_near(&format!("{what}, against f64"), &packed, &exact, 5e-4);
}

#[test]
fn eigh_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (i, n) in SIZES.into_iter().enumerate() {
        let s = 500 + i as u64 * 10;
        let one = separated(&[], n, s, true);
        check_eigh(&dev, &format!("eigh [n, n], n = {n}"), &one, |t| t.clone());
        // the symmetric part of unsymmetric matrices
        let batch = separated(&[3], n, s + 1, false);
        check_eigh(&dev, &format!("eigh [3, n, n], n = {n}"), &batch, |t| {
            t.clone()
        });
        // read transposed, one matrix of two skipped
        let stored = separated(&[4], n, s + 2, false);
        check_eigh(
            &dev,
            &format!("eigh transposed, stepped, n = {n}"),
            &stored,
            |t| t.mt().slice_step(0, 0, 4, 2),
        );
    }
    // a slice of wider matrices, a broadcast batch
    let n = 17;
    let wide = separated(&[2], n + 3, 560, true);
    check_eigh(&dev, "eigh sliced", &wide, |t| {
        t.slice(1, 1, n + 1).slice(2, 2, n + 2)
    });
    let shared = separated(&[], 9, 561, false);
    check_eigh(&dev, "eigh broadcast batch", &shared, |t| {
        t.broadcast_to(&[2, 3, 9, 9])
    });
}

#[test]
fn eigh_and_eigvalsh_of_gpu_tensors() {
    let Some(dev) = gpu() else { return };
    let n = 17;
    let a = separated(&[2], n, 600, false);
    let g = a.to_device(&dev);
    let (w, v) = g.eigh();
    let (cw, cv) = a.eigh();
    assert_eq!(w.shape(), &[2, n]);
    assert_eq!(v.shape(), &[2, n, n]);
    assert_matches("eigh: the eigenvalues", &w, &cw, TOL);
    assert_matches("eigh: the eigenvectors", &v, &cv, 1e-3);
    assert_matches("eigvalsh", &g.eigvalsh(), &a.eigvalsh(), TOL);
    let packed = g.try_eigh_packed().expect("no error on the GPU");
    assert_eq!(packed.shape(), &[2, n + 1, n]);
    // a diagonal matrix: its entries sorted, unit vectors, exactly (no rotation)
    let d = Tensor::from_vec(vec![3.0f32, -1.0, 2.0], &[3]).diag_embed(3, 3);
    let packed = d.to_device(&dev).eigh_packed().to_vec::<f32>();
    let want = [
        0.0f32, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 2.0, 3.0,
    ];
    assert_eq!(packed, want);
    // the identity and zero: ties kept in order, the identity's vectors
    for (x, value) in [(1.0f32, 1.0f32), (0.0, 0.0)] {
        let m = (Tensor::eye(4, DType::F32) * x).to_device(&dev);
        let (w, v) = m.eigh();
        assert_eq!(w.to_vec::<f32>(), vec![value; 4]);
        assert_eq!(
            v.to_vec::<f32>(),
            Tensor::eye(4, DType::F32).to_vec::<f32>()
        );
    }
}

#[test]
fn eigh_is_exact_under_power_of_two_scaling() {
    let Some(dev) = gpu() else { return };
    // the kernel scales each matrix by a power of two: matrices that differ by one
    // decompose alike, to the bit, however large or small their elements (their squares
    // would overflow or underflow f32)
    let n = 17;
    let a = separated(&[], n, 610, true);
    let base = a.to_device(&dev).eigh_packed().to_vec::<f32>();
    for p in [-100i32, 100] {
        let f = 2.0f32.powi(p);
        let scaled = (&a * f).to_device(&dev).eigh_packed().to_vec::<f32>();
        assert_eq!(&scaled[..n * n], &base[..n * n], "2^{p}: the eigenvectors");
        for (i, (s, b)) in scaled[n * n..].iter().zip(&base[n * n..]).enumerate() {
            assert_eq!(*s, b * f, "2^{p}: eigenvalue {i}");
        }
    }
}

#[test]
fn eigh_of_empty_shapes() {
    let Some(dev) = gpu() else { return };
    let cases: [(&[usize], &[usize], &[usize]); 3] = [
        (&[0, 0], &[1, 0], &[0]),
        (&[3, 0, 0], &[3, 1, 0], &[3, 0]),
        (&[0, 4, 4], &[0, 5, 4], &[0, 4]),
    ];
    for (shape, packed_shape, values_shape) in cases {
        let a = Tensor::zeros(shape, DType::F32).to_device(&dev);
        let packed = a.eigh_packed();
        assert_eq!(packed.shape(), packed_shape, "{shape:?}");
        assert!(packed.device().is_gpu());
        assert!(packed.to_vec::<f32>().is_empty());
        let (w, v) = a.eigh();
        assert_eq!(w.shape(), values_shape, "{shape:?}");
        assert_eq!(v.shape(), shape, "{shape:?}");
        assert_eq!(a.eigvalsh().shape(), values_shape, "{shape:?}");
    }
}

/// More matrices than one dispatch dimension holds: every one of 70,000 2 x 2 matrices
/// decomposed as on the CPU. The matrices repeat every 385 (their diagonals well apart, so
/// that no vector's components tie in magnitude): the CPU decomposes the first 385 (all
/// 70,000 would take it seconds in a debug build; the GPU takes about 5 on lavapipe).
#[test]
fn eigh_of_a_batch_beyond_one_dispatch_dimension() {
    let Some(dev) = gpu() else { return };
    let (count, period) = (70_000, 385);
    let mut v = Vec::with_capacity(count * 4);
    for i in 0..count {
        let off = ((i % 11) as f32 - 5.0) * 0.25;
        v.extend([1.0 + (i % 7) as f32, off, off, -0.5 - (i % 5) as f32]);
    }
    let a = Tensor::from_vec(v, &[count, 2, 2]);
    let got = a.to_device(&dev).eigh_packed().to_vec::<f32>();
    let want = a.slice(0, 0, period).eigh_packed().to_vec::<f32>();
    for (i, g) in got.chunks(6).enumerate() {
        let w = &want[(i % period) * 6..][..6];
        for (e, (x, y)) in g.iter().zip(w).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                "matrix {i}, element {e}: gpu {g:?}, cpu {w:?}"
            );
        }
    }
}

/// A matrix holding NaN (off the diagonal, where its mirror is finite, or on it) or
/// infinity decomposes to NaN throughout, with no error and without disturbing the other
/// matrices of its batch.
#[test]
fn eigh_of_nan_or_infinity_is_nan_without_an_error() {
    let Some(dev) = gpu() else { return };
    let good = separated(&[], 3, 620, true);
    let planted = |at: usize, x: f32| {
        let mut v = good.to_vec::<f32>();
        v[at] = x;
        Tensor::from_vec(v, &[3, 3])
    };
    let bad = [
        planted(1, f32::NAN),
        planted(4, f32::NAN),
        planted(5, f32::INFINITY),
    ];
    assert!(bad[0].try_eigh_packed().is_err(), "the CPU reports it");
    let all = Tensor::stack(&[&good, &bad[0], &good, &bad[1], &good, &bad[2]], 0);
    let packed = all
        .to_device(&dev)
        .try_eigh_packed()
        .expect("the GPU does not")
        .to_vec::<f32>();
    let want = good.eigh_packed().to_vec::<f32>();
    for (m, out) in packed.chunks(12).enumerate() {
        if m % 2 == 0 {
            for (g, w) in out.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "matrix {m}: {out:?}, want {want:?}");
            }
        } else {
            assert!(out.iter().all(|v| v.is_nan()), "matrix {m}: {out:?}");
        }
    }
}

/// Random symmetric matrices, their eigenvalues not kept apart (the vectors are not
/// compared): Jacobi takes more sweeps (8 at n = 130 and 200), which must fit lavapipe's
/// budget of loop iterations (see the kernel's doc).
#[test]
fn eigh_of_random_matrices_converges() {
    let Some(dev) = gpu() else { return };
    for (n, seed) in [(130, 630), (200, 631)] {
        let r = rhs(&[n, n], seed);
        let a = (&r + &r.t()) * 0.5;
        let what = format!("random n = {n}");
        let packed = a.to_device(&dev).eigh_packed();
        assert_decomposes(&what, &a, &packed);
        let got = to_f64(&packed.slice(0, n, n + 1));
        let want = to_f64(&a.to_dtype(DType::F64).eigvalsh());
        let scale = want.iter().fold(1.0f64, |b, x| b.max(x.abs()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * scale,
                "{what}: eigenvalue {i}: gpu {g}, cpu {w}"
            );
        }
    }
}

#[test]
fn determinants_and_qr_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for n in [1usize, 2, 5, 17, 64] {
        // scaled so that the determinants stay within f32's range
        let a = Tensor::normal(Key::new(80 + n as u64), &[3, n, n], DType::F32)
            * (1.0 / (n as f64).sqrt());
        let (cd, gd) = (a.det(), a.to_device(&dev).det());
        assert!(gd.device().is_gpu());
        let scale = cd.abs().max().item::<f32>().max(1.0);
        let diff = (gd.to_device(&Device::Cpu) - &cd).abs().max().item::<f32>();
        assert!(diff <= 1e-4 * scale, "det n = {n}: {diff} against {scale}");
        let cs = a.lu_factor().lu_sign().to_vec::<f32>();
        assert_eq!(
            a.to_device(&dev).lu_factor().lu_sign().to_vec::<f32>(),
            cs,
            "sign n = {n}"
        );
        // QR of tall and wide matrices: the signs are fixed, so the factors agree
        for (m, k) in [(n + 3, n), (n, n + 2)] {
            let b = Tensor::normal(Key::new(90 + n as u64), &[2, m, k], DType::F32);
            let (cq, cr) = b.qr();
            let (gq, gr) = b.to_device(&dev).qr();
            assert!(gq.device().is_gpu() && gr.device().is_gpu());
            let dq = (gq.to_device(&Device::Cpu) - &cq).abs().max().item::<f32>();
            let dr = (gr.to_device(&Device::Cpu) - &cr).abs().max().item::<f32>();
            assert!(dq < 1e-3 && dr < 1e-3 * m as f32, "qr {m} x {k}: {dq} {dr}");
        }
    }
    // singular matrices: determinant 0, log |det| -inf, sign 0 (factors stay finite)
    let mut v = vec![0.0f32; 9];
    v.extend([1.0f32, 2.0, 3.0, 2.0, 4.0, 6.0, 0.0, 1.0, 5.0]);
    let s = Tensor::from_vec(v, &[2, 3, 3]).to_device(&dev);
    assert_eq!(s.det().to_vec::<f32>(), vec![0.0, 0.0]);
    assert_eq!(s.logabsdet().to_vec::<f32>(), vec![f32::NEG_INFINITY; 2]);
    assert_eq!(s.lu_factor().lu_sign().to_vec::<f32>(), vec![0.0, 0.0]);
    assert!(s.lu_factor().to_vec::<f32>().iter().all(|x| x.is_finite()));
}

/// Asserts that `packed` (`[.., m + k, n]`, on the GPU) is a reduced QR decomposition of
/// `a` (a CPU tensor `[.., m, n]`): zeros right of q and below r's diagonal, r's diagonal
/// non-negative, `q r ≈ a` (within `tol` of `a`'s largest magnitude) and `qᵀ q ≈ I`
/// (within `tol`), every value finite.
#[track_caller]
fn assert_qr(what: &str, a: &Tensor, packed: &Tensor, tol: f64) {
    assert!(packed.device().is_gpu(), "{what}: on {}", packed.device());
    let nd = a.ndim();
    let (m, n) = (a.shape()[nd - 2], a.shape()[nd - 1]);
    let k = m.min(n);
    let mut shape = a.shape().to_vec();
    shape[nd - 2] = m + k;
    assert_eq!(packed.shape(), shape, "{what}: shape");
    let (a, got) = (to_f64(a), to_f64(packed));
    let (mut back, mut gram): (Worst, Worst) = Default::default();
    for (b, (a, g)) in a.chunks(m * n).zip(got.chunks((m + k) * n)).enumerate() {
        assert!(g.iter().all(|x| x.is_finite()), "{what}: matrix {b}: {g:?}");
        let (q, r) = g.split_at(m * n);
        for (e, x) in q.iter().enumerate() {
            assert!(
                e % n < k || *x == 0.0,
                "{what}: matrix {b}: q[{}][{}] = {x}",
                e / n,
                e % n
            );
        }
        for (e, x) in r.iter().enumerate() {
            let (i, c) = (e / n, e % n);
            assert!(c >= i || *x == 0.0, "{what}: matrix {b}: r[{i}][{c}] = {x}");
            assert!(c != i || *x >= 0.0, "{what}: matrix {b}: r[{i}][{i}] = {x}");
        }
        let scale = a.iter().fold(1.0f64, |s, x| s.max(x.abs()));
        for i in 0..m {
            for c in 0..n {
                let qr: f64 = (0..k).map(|j| q[i * n + j] * r[j * n + c]).sum();
                track(&mut back, (qr - a[i * n + c]).abs() / scale, || {
                    format!("matrix {b}: (q r)[{i}][{c}] = {qr}, want {}", a[i * n + c])
                });
            }
        }
        for i in 0..k {
            for j in 0..k {
                let dot: f64 = (0..m).map(|t| q[t * n + i] * q[t * n + j]).sum();
                let eye = if i == j { 1.0 } else { 0.0 };
                track(&mut gram, (dot - eye).abs(), || {
                    format!("matrix {b}: (qᵀ q)[{i}][{j}] = {dot}")
                });
            }
        }
    }
    assert!(back.0 <= tol, "{what}: {}", back.1);
    assert!(gram.0 <= tol, "{what}: {}", gram.1);
}

/// `f(base)` decomposed on the GPU (`f` applied to `base`'s GPU copy), checked by
/// [`assert_qr`] (within `5e-7 (m + n)`) and against the CPU's decomposition in f32, q and
/// r element by element within `2e-6 (m + n)` (relative above 1: [`close`]; both about ten
/// times the largest error found on lavapipe).
#[track_caller]
fn check_qr(dev: &Device, what: &str, base: &Tensor, f: impl Fn(&Tensor) -> Tensor) {
    let a = f(base);
    let packed = f(&base.to_device(dev)).qr_packed();
    let size = (a.shape()[a.ndim() - 2] + a.shape()[a.ndim() - 1]) as f32;
    assert_qr(what, &a, &packed, 5e-7 * size as f64);
    assert_matches(what, &packed, &a.qr_packed(), 2e-6 * size);
}

#[test]
fn qr_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    let shapes = [
        (1, 1),
        (3, 2),
        (2, 3),
        (17, 17),
        (64, 30),
        (30, 64),
        (130, 20),
        (20, 130),
    ];
    for (i, (m, n)) in shapes.into_iter().enumerate() {
        let s = 700 + i as u64 * 10;
        check_qr(&dev, &format!("qr {m} x {n}"), &rhs(&[m, n], s), |t| {
            t.clone()
        });
    }
    // a batch; read transposed, one matrix of two skipped; a slice of larger matrices
    check_qr(&dev, "qr [3, 17, 9]", &rhs(&[3, 17, 9], 790), |t| t.clone());
    check_qr(
        &dev,
        "qr transposed, stepped",
        &rhs(&[4, 30, 17], 791),
        |t| t.mt().slice_step(0, 0, 4, 2),
    );
    check_qr(&dev, "qr sliced", &rhs(&[2, 40, 40], 792), |t| {
        t.slice(1, 3, 33).slice(2, 1, 13)
    });
    // q and r of a GPU tensor, on the GPU
    let a = rhs(&[2, 9, 5], 793);
    let (q, r) = a.to_device(&dev).qr();
    let (cq, cr) = a.qr();
    assert_matches("qr: q", &q, &cq, 1e-4);
    assert_matches("qr: r", &r, &cr, 1e-4);
}

/// Matrices of lower rank (a zero column, two equal columns, zero throughout): the
/// reflectors of the columns with nothing below the diagonal are skipped, and the
/// decomposition stays exact and finite (no comparison with the CPU: the columns there
/// are arbitrary).
#[test]
fn qr_of_rank_deficient_matrices() {
    let Some(dev) = gpu() else { return };
    let mut v = rhs(&[6, 4], 800).to_vec::<f32>();
    for row in v.chunks_mut(4) {
        row[1] = 0.0;
        row[3] = row[0];
    }
    let tall = Tensor::from_vec(v, &[6, 4]);
    let mut v = rhs(&[3, 5], 801).to_vec::<f32>();
    for row in v.chunks_mut(5) {
        row[0] = 0.0;
        row[2] = row[4];
    }
    let wide = Tensor::from_vec(v, &[3, 5]);
    let zero = Tensor::zeros(&[2, 3, 3], DType::F32);
    for (what, a) in [("tall", &tall), ("wide", &wide), ("zero", &zero)] {
        assert_qr(what, a, &a.to_device(&dev).qr_packed(), 4e-6);
    }
    // zero: q the identity, r zero, exactly
    let (q, r) = zero.to_device(&dev).qr();
    assert_eq!(
        q.to_vec::<f32>(),
        Tensor::eye(3, DType::F32)
            .broadcast_to(&[2, 3, 3])
            .to_vec::<f32>()
    );
    assert!(r.to_vec::<f32>().iter().all(|x| *x == 0.0));
}

#[test]
fn qr_of_empty_shapes() {
    let Some(dev) = gpu() else { return };
    for shape in [&[0, 3, 2][..], &[3, 0], &[0, 3]] {
        let a = Tensor::zeros(shape, DType::F32);
        let packed = a.to_device(&dev).qr_packed();
        assert_eq!(packed.shape(), a.qr_packed().shape(), "{shape:?}");
        assert!(packed.device().is_gpu());
        assert!(packed.to_vec::<f32>().is_empty());
        let ((q, r), (cq, cr)) = (a.to_device(&dev).qr(), a.qr());
        assert_eq!(
            (q.shape(), r.shape()),
            (cq.shape(), cr.shape()),
            "{shape:?}"
        );
    }
}

/// More matrices than one dispatch dimension holds: every one of 70,000 2 x 2 matrices
/// (nonsingular: their diagonals outweigh the rest) decomposed as on the CPU, which
/// decomposes the first 1,155 (the matrices repeat with that period).
#[test]
fn qr_of_a_batch_beyond_one_dispatch_dimension() {
    let Some(dev) = gpu() else { return };
    let (count, period) = (70_000, 1155);
    let mut v = Vec::with_capacity(count * 4);
    for i in 0..count {
        let off = ((i % 11) as f32 - 5.0) * 0.25;
        let low = ((i % 5) as f32 - 2.0) * 0.5;
        v.extend([1.5 + (i % 7) as f32, off, low, -1.5 - (i % 3) as f32]);
    }
    let a = Tensor::from_vec(v, &[count, 2, 2]);
    let got = a.to_device(&dev).qr_packed().to_vec::<f32>();
    let want = a.slice(0, 0, period).qr_packed().to_vec::<f32>();
    for (i, g) in got.chunks(8).enumerate() {
        let w = &want[(i % period) * 8..][..8];
        for (e, (x, y)) in g.iter().zip(w).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                "matrix {i}, element {e}: gpu {g:?}, cpu {w:?}"
            );
        }
    }
}

/// The spacing of the singular values planted by [`spread`].
const SPACING: f32 = 1.5;

/// `[batch.., m, n]` matrices of [`values`] scaled to `±0.06` plus, on the diagonal, the
/// values `1 + SPACING p` in shuffled order `p` with alternating signs: the singular
/// values stay well apart (about [`SPACING`]), so that the singular vectors are well
/// defined and both devices find the same ones.
fn spread(batch: &[usize], m: usize, n: usize, seed: u64) -> Tensor {
    let shape = [batch, &[m, n]].concat();
    let mut v: Vec<f32> = values(shape.iter().product(), seed, false)
        .into_iter()
        .map(|x| x * 0.02)
        .collect();
    let k = m.min(n);
    for (b, mat) in v.chunks_mut((m * n).max(1)).enumerate() {
        for (i, p) in permutation(k, seed + b as u64).into_iter().enumerate() {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            mat[i * n + i] += sign * (1.0 + SPACING * p as f32);
        }
    }
    Tensor::from_vec(v, &shape)
}

/// `(m, n, k)` of matrices `a` (`[.., m, n]`).
fn svd_dims(a: &Tensor) -> (usize, usize, usize) {
    let nd = a.ndim();
    let (m, n) = (a.shape()[nd - 2], a.shape()[nd - 1]);
    (m, n, m.min(n))
}

/// Asserts that `packed` (`[.., m + k + 1, n]`, on the GPU) is a reduced singular value
/// decomposition of `a` (a CPU tensor `[.., m, n]`): every value finite, zeros right of
/// u and after the singular values, the values descending and non-negative, each u
/// column's largest component non-negative, `u diag(s) vt ≈ a` (within `tol` of the
/// largest singular value, at least 1) and, with `orthonormal`, `uᵀ u ≈ I` and
/// `vt vtᵀ ≈ I` (within `tol`).
#[track_caller]
fn assert_svd(what: &str, a: &Tensor, packed: &Tensor, tol: f64, orthonormal: bool) {
    assert!(packed.device().is_gpu(), "{what}: on {}", packed.device());
    let (m, n, k) = svd_dims(a);
    let mut shape = a.shape().to_vec();
    shape[a.ndim() - 2] = m + k + 1;
    assert_eq!(packed.shape(), shape, "{what}: shape");
    let (a, got) = (to_f64(a), to_f64(packed));
    let (mut back, mut gram): (Worst, Worst) = Default::default();
    for (b, (a, g)) in a.chunks(m * n).zip(got.chunks((m + k + 1) * n)).enumerate() {
        assert!(g.iter().all(|x| x.is_finite()), "{what}: matrix {b}: {g:?}");
        let (u, rest) = g.split_at(m * n);
        let (vt, s) = rest.split_at(k * n);
        assert!(
            u.iter().enumerate().all(|(e, x)| e % n < k || *x == 0.0),
            "{what}: matrix {b}: u {u:?}"
        );
        assert!(
            s[k..].iter().all(|x| *x == 0.0),
            "{what}: matrix {b}: {s:?}"
        );
        let s = &s[..k];
        assert!(
            s.windows(2).all(|p| p[0] >= p[1]) && s.iter().all(|x| *x >= 0.0),
            "{what}: matrix {b}: {s:?} not descending"
        );
        for j in 0..k {
            let big = (0..m)
                .map(|r| u[r * n + j])
                .fold(0.0f64, |b, x| if x.abs() > b.abs() { x } else { b });
            assert!(big >= 0.0, "{what}: matrix {b}: u's column {j}'s sign");
        }
        let scale = s.first().map_or(1.0, |x| x.max(1.0));
        for r in 0..m {
            for c in 0..n {
                let x: f64 = (0..k).map(|j| u[r * n + j] * s[j] * vt[j * n + c]).sum();
                track(&mut back, (x - a[r * n + c]).abs() / scale, || {
                    format!(
                        "matrix {b}: (u s vt)[{r}][{c}] = {x}, want {}",
                        a[r * n + c]
                    )
                });
            }
        }
        if !orthonormal {
            continue;
        }
        for i in 0..k {
            for j in 0..k {
                let eye = if i == j { 1.0 } else { 0.0 };
                let uu: f64 = (0..m).map(|t| u[t * n + i] * u[t * n + j]).sum();
                track(&mut gram, (uu - eye).abs(), || {
                    format!("matrix {b}: (uᵀ u)[{i}][{j}] = {uu}")
                });
                let vv: f64 = (0..n).map(|t| vt[i * n + t] * vt[j * n + t]).sum();
                track(&mut gram, (vv - eye).abs(), || {
                    format!("matrix {b}: (vt vtᵀ)[{i}][{j}] = {vv}")
                });
            }
        }
    }
    assert!(back.0 <= tol, "{what}: {}", back.1);
    assert!(gram.0 <= tol, "{what}: {}", gram.1);
}

/// Asserts that `packed` (on the GPU) is close to `want` (the CPU's, packed alike, in f32
/// or f64): the singular values within `2e-5` of the largest (at least 1), the vectors
/// (sign-normalized on both devices) within `vec_tol` component by component.
#[track_caller]
fn assert_svd_near(what: &str, packed: &Tensor, want: &Tensor, vec_tol: f64) {
    assert_packed_near(what, packed, want, "singular value", 2e-5, vec_tol);
}

/// `f(base)` decomposed on the GPU (`f` applied to `base`'s GPU copy), checked by
/// [`assert_svd`] (within `2e-5`) and [`assert_svd_near`] the CPU's decomposition in f32
/// (vectors within `5e-4`: the CPU's own are off by up to 8e-5 at 64 x 64) and in f64
/// (within `1e-4`: the GPU's are off by up to 2e-5 there).
#[track_caller]
fn check_svd(dev: &Device, what: &str, base: &Tensor, f: impl Fn(&Tensor) -> Tensor) {
    let a = f(base);
    let packed = f(&base.to_device(dev)).svd_packed();
    assert_svd(what, &a, &packed, 2e-5, true);
    assert_svd_near(what, &packed, &a.svd_packed(), 5e-4);
    let exact = a.to_dtype(DType::F64).svd_packed();
    assert_svd_near(&format!("{what}, against f64"), &packed, &exact, 1e-4);
}

#[test]
fn svd_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    let shapes = [
        (1, 1),
        (3, 2),
        (2, 3),
        (17, 17),
        (40, 12),
        (12, 40),
        (64, 64),
    ];
    for (i, (m, n)) in shapes.into_iter().enumerate() {
        let s = 900 + i as u64 * 10;
        check_svd(
            &dev,
            &format!("svd {m} x {n}"),
            &spread(&[], m, n, s),
            |t| t.clone(),
        );
    }
    // batches, tall and wide; read transposed, one matrix of two skipped; a slice of
    // larger matrices; a broadcast batch
    check_svd(&dev, "svd [3, 17, 9]", &spread(&[3], 17, 9, 980), |t| {
        t.clone()
    });
    check_svd(&dev, "svd [3, 9, 17]", &spread(&[3], 9, 17, 981), |t| {
        t.clone()
    });
    check_svd(
        &dev,
        "svd transposed, stepped",
        &spread(&[4], 30, 17, 982),
        |t| t.mt().slice_step(0, 0, 4, 2),
    );
    check_svd(&dev, "svd sliced", &spread(&[2], 40, 40, 983), |t| {
        t.slice(1, 0, 30).slice(2, 0, 12)
    });
    check_svd(&dev, "svd broadcast batch", &spread(&[], 5, 7, 984), |t| {
        t.broadcast_to(&[2, 3, 5, 7])
    });
}

#[test]
fn svd_and_svdvals_of_gpu_tensors() {
    let Some(dev) = gpu() else { return };
    for (m, n, seed) in [(9, 5, 1000), (4, 7, 1001)] {
        let k = m.min(n);
        let a = spread(&[2], m, n, seed);
        let g = a.to_device(&dev);
        let (u, s, vt) = g.svd();
        let (cu, cs, cvt) = a.svd();
        assert_eq!(u.shape(), &[2, m, k]);
        assert_eq!(s.shape(), &[2, k]);
        assert_eq!(vt.shape(), &[2, k, n]);
        assert_matches("svd: u", &u, &cu, 1e-4);
        assert_matches("svd: s", &s, &cs, 1e-5);
        assert_matches("svd: vt", &vt, &cvt, 1e-4);
        let values = g.svdvals();
        assert_matches("svdvals", &values, &a.svdvals(), 1e-5);
        assert!(values.is_contiguous());
        let packed = g.try_svd_packed().expect("no error on the GPU");
        assert_eq!(packed.shape(), &[2, m + k + 1, n]);
    }
    // fewer than two axes: the CPU's error, before any dispatch
    let v = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).to_device(&dev);
    let err = v.try_svd_packed().expect_err("a vector").to_string();
    assert!(err.contains("needs matrices in the last two axes"), "{err}");
    // a diagonal matrix: its magnitudes sorted, signed unit vectors, exactly (no rotation)
    let d = Tensor::from_vec(vec![3.0f32, -1.0, 2.0], &[3]).diag_embed(3, 3);
    let packed = d.to_device(&dev).svd_packed().to_vec::<f32>();
    let want = [
        1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, // u
        1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, // vt
        3.0, 2.0, 1.0,
    ];
    assert_eq!(packed, want);
    assert_eq!(d.svd_packed().to_vec::<f32>(), want, "the CPU's");
    // the identity: ties kept in order, its own vectors
    let eye = Tensor::eye(4, DType::F32);
    let (u, s, vt) = eye.to_device(&dev).svd();
    assert_eq!(s.to_vec::<f32>(), vec![1.0; 4]);
    assert_eq!(u.to_vec::<f32>(), eye.to_vec::<f32>());
    assert_eq!(vt.to_vec::<f32>(), eye.to_vec::<f32>());
}

#[test]
fn svd_is_exact_under_power_of_two_scaling() {
    let Some(dev) = gpu() else { return };
    // the kernel scales each matrix by a power of two: matrices that differ by one
    // decompose alike, to the bit, however large or small their elements (their squares
    // would overflow or underflow f32)
    let (m, n) = (12, 7);
    let a = spread(&[], m, n, 1010);
    let base = a.to_device(&dev).svd_packed().to_vec::<f32>();
    let values = (m + n) * n;
    for p in [-100i32, 100] {
        let f = 2.0f32.powi(p);
        let scaled = (&a * f).to_device(&dev).svd_packed().to_vec::<f32>();
        assert_eq!(&scaled[..values], &base[..values], "2^{p}: the vectors");
        for (i, (s, b)) in scaled[values..].iter().zip(&base[values..]).enumerate() {
            assert_eq!(*s, b * f, "2^{p}: singular value {i}");
        }
    }
}

/// Matrices of lower rank (a zero column, two equal columns, zero throughout), tall and
/// wide: the decomposition still reconstructs them with finite values (the vectors of the
/// zero singular values are not compared: the GPU leaves them zero), and the singular
/// values are the CPU's.
#[test]
fn svd_of_rank_deficient_matrices() {
    let Some(dev) = gpu() else { return };
    let mut v = rhs(&[6, 4], 1020).to_vec::<f32>();
    for row in v.chunks_mut(4) {
        row[1] = 0.0;
        row[3] = row[0];
    }
    let tall = Tensor::from_vec(v, &[6, 4]);
    let mut v = rhs(&[3, 5], 1021).to_vec::<f32>();
    for row in v.chunks_mut(5) {
        row[0] = 0.0;
        row[2] = row[4];
    }
    let wide = Tensor::from_vec(v, &[3, 5]);
    let zero = Tensor::zeros(&[2, 3, 3], DType::F32);
    for (what, a) in [("tall", &tall), ("wide", &wide), ("zero", &zero)] {
        let g = a.to_device(&dev);
        assert_svd(what, a, &g.svd_packed(), 2e-5, false);
        let (got, want) = (g.svdvals().to_vec::<f32>(), a.svdvals().to_vec::<f32>());
        let scale = want[0].max(1.0);
        for (i, (x, y)) in got.iter().zip(&want).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale,
                "{what}: value {i}: {got:?}, {want:?}"
            );
        }
    }
    // zero: vt the identity, the rest zero, exactly
    let (u, s, vt) = zero.to_device(&dev).svd();
    assert!(
        u.to_vec::<f32>()
            .iter()
            .chain(&s.to_vec::<f32>())
            .all(|x| *x == 0.0)
    );
    assert_eq!(
        vt.to_vec::<f32>(),
        Tensor::eye(3, DType::F32)
            .broadcast_to(&[2, 3, 3])
            .to_vec::<f32>()
    );
}

#[test]
fn svd_of_empty_shapes() {
    let Some(dev) = gpu() else { return };
    for shape in [&[0, 3, 2][..], &[3, 0], &[0, 3], &[2, 0, 4]] {
        let a = Tensor::zeros(shape, DType::F32);
        let g = a.to_device(&dev);
        let (packed, want) = (g.svd_packed(), a.svd_packed());
        assert_eq!(packed.shape(), want.shape(), "{shape:?}");
        assert!(packed.device().is_gpu());
        // [0, n]: a row of zeros where the singular values would be
        assert_eq!(packed.to_vec::<f32>(), want.to_vec::<f32>(), "{shape:?}");
        let ((u, s, vt), (cu, cs, cvt)) = (g.svd(), a.svd());
        assert_eq!(
            (u.shape(), s.shape(), vt.shape()),
            (cu.shape(), cs.shape(), cvt.shape()),
            "{shape:?}"
        );
        assert_eq!(g.svdvals().shape(), a.svdvals().shape(), "{shape:?}");
    }
}

/// More matrices than one dispatch dimension holds: every one of 70,000 2 x 2 matrices
/// (their diagonals well apart and outweighing the rest, so that no vector's components
/// tie in magnitude) decomposed as on the CPU, which decomposes the first 385 (the
/// matrices repeat with that period).
#[test]
fn svd_of_a_batch_beyond_one_dispatch_dimension() {
    let Some(dev) = gpu() else { return };
    let (count, period) = (70_000, 385);
    let mut v = Vec::with_capacity(count * 4);
    for i in 0..count {
        let off = ((i % 11) as f32 - 5.0) * 0.05;
        let low = ((i % 5) as f32 - 2.0) * 0.1;
        v.extend([2.0 + (i % 7) as f32, off, low, -0.5 - 0.3 * (i % 5) as f32]);
    }
    let a = Tensor::from_vec(v, &[count, 2, 2]);
    let got = a.to_device(&dev).svd_packed().to_vec::<f32>();
    let want = a.slice(0, 0, period).svd_packed().to_vec::<f32>();
    for (i, g) in got.chunks(10).enumerate() {
        let w = &want[(i % period) * 10..][..10];
        for (e, (x, y)) in g.iter().zip(w).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                "matrix {i}, element {e}: gpu {g:?}, cpu {w:?}"
            );
        }
    }
}

/// A matrix holding NaN or infinity decomposes to NaN throughout (the zeros of the packing
/// stay), with no error and without disturbing the other matrices of its batch.
#[test]
fn svd_of_nan_or_infinity_is_nan_without_an_error() {
    let Some(dev) = gpu() else { return };
    let good = spread(&[], 2, 3, 1030);
    let planted = |at: usize, x: f32| {
        let mut v = good.to_vec::<f32>();
        v[at] = x;
        Tensor::from_vec(v, &[2, 3])
    };
    let bad = [
        planted(1, f32::NAN),
        planted(3, f32::NAN),
        planted(5, f32::NEG_INFINITY),
    ];
    assert!(bad[0].try_svd_packed().is_err(), "the CPU reports it");
    let all = Tensor::stack(&[&good, &bad[0], &good, &bad[1], &good, &bad[2]], 0);
    let packed = all
        .to_device(&dev)
        .try_svd_packed()
        .expect("the GPU does not")
        .to_vec::<f32>();
    let want = good.svd_packed().to_vec::<f32>();
    // [5, 3]: u (2 x 2, a zero beside each row), vt (2 x 3), the values (2, a zero)
    let zeros = [2, 5, 14];
    for (m, out) in packed.chunks(15).enumerate() {
        if m % 2 == 0 {
            for (g, w) in out.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "matrix {m}: {out:?}, want {want:?}");
            }
        } else {
            for (e, x) in out.iter().enumerate() {
                let ok = if zeros.contains(&e) {
                    *x == 0.0
                } else {
                    x.is_nan()
                };
                assert!(ok, "matrix {m}: element {e}: {out:?}");
            }
        }
    }
}

#[test]
fn pinv_expm_and_lstsq_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for shape in [[6usize, 3], [3, 6], [4, 4]] {
        let a = Tensor::normal(Key::new(81), &shape, DType::F32);
        let what = format!("pinv {shape:?}");
        let (cpu, on) = (a.pinv(), a.to_device(&dev).pinv());
        assert!(on.device().is_gpu(), "{what}");
        let d = (on.to_device(&Device::Cpu) - &cpu)
            .abs()
            .max()
            .item::<f32>();
        assert!(d < 1e-4, "{what}: {d}");
    }
    let a = Tensor::normal(Key::new(82), &[2, 5, 5], DType::F32) * 0.8;
    let d = (a.to_device(&dev).expm().to_device(&Device::Cpu) - a.expm())
        .abs()
        .max()
        .item::<f32>();
    assert!(d < 1e-4, "expm: {d}");
    let e = Tensor::normal(Key::new(83), &[2, 5, 5], DType::F32);
    let l = a.to_device(&dev).expm_frechet(&e.to_device(&dev));
    let d = (l.to_device(&Device::Cpu) - a.expm_frechet(&e))
        .abs()
        .max()
        .item::<f32>();
    assert!(d < 1e-4, "expm_frechet: {d}");
    let y = Tensor::normal(Key::new(84), &[6], DType::F32);
    let tall = Tensor::normal(Key::new(85), &[6, 3], DType::F32);
    let x = tall
        .to_device(&dev)
        .lstsq(&y.to_device(&dev))
        .to_device(&Device::Cpu);
    assert!(
        (x - tall.lstsq(&y)).abs().max().item::<f32>() < 1e-4,
        "lstsq"
    );
}

#[test]
fn einsum_and_its_transpose_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let cases: [(&str, &[&[usize]]); 9] = [
        ("ij,jk->ik", &[&[33, 17], &[17, 65]]),
        ("bhqd,bhkd->bhqk", &[&[2, 3, 9, 8], &[2, 3, 7, 8]]),
        ("ii->i", &[&[9, 9]]),
        ("iij,jk->ik", &[&[5, 5, 3], &[3, 4]]),
        ("bi,bi->b", &[&[70, 33], &[70, 33]]),
        ("i,j->ij", &[&[5], &[7]]),
        ("ij,jk,kl->il", &[&[4, 30], &[30, 3], &[3, 40]]),
        ("...ij,...jk->...ik", &[&[1, 2, 3, 4], &[3, 1, 4, 5]]),
        ("ij,k->i", &[&[6, 4], &[5]]),
    ];
    for (c, (spec, shapes)) in cases.iter().enumerate() {
        let ops: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| rhs(s, (c * 10 + i) as u64))
            .collect();
        let refs: Vec<&Tensor> = ops.iter().collect();
        check(&dev, spec, &refs, TOL, |x| {
            Tensor::einsum(spec, &x.iter().collect::<Vec<_>>())
        });
        let ct = rhs(Tensor::einsum(spec, &refs).shape(), c as u64 + 500);
        for k in 0..ops.len() {
            let mut with_ct = vec![&ct];
            with_ct.extend(refs.iter().copied());
            check(
                &dev,
                &format!("{spec}, transpose {k}"),
                &with_ct,
                TOL,
                |x| {
                    let ops: Vec<&Tensor> = x[1..].iter().collect();
                    Tensor::einsum_transpose(spec, k, &x[0], &ops)
                },
            );
        }
    }
}
