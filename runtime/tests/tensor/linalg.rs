//! `solve`, `solve_triangular`, `cholesky` checked by their defining equations (`a x = b`,
//! `l lᵀ = a`) on batched, broadcast and non-contiguous inputs in f32 and f64, and
//! `tril`, `triu`, `diagonal`, `diag_embed` against the reference element by element.

use ferrax_runtime::prelude::*;

/// Deterministic values in [-1, 1].
fn vals(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f64 / 1000.0 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    Tensor::from_vec(vals(shape.iter().product(), seed), shape).to_dtype(dtype)
}

/// Well-conditioned matrices `[.., n, n]`: random plus `n` on the diagonal.
fn matrices(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let n = shape[shape.len() - 1];
    tensor(shape, seed, dtype) + &(Tensor::eye(n, dtype) * n as f64)
}

fn max_abs(x: &Tensor) -> f64 {
    if x.numel() == 0 {
        return 0.0;
    }
    x.to_dtype(DType::F64).abs().max().item::<f64>()
}

fn tol(dtype: DType) -> f64 {
    if dtype == DType::F32 { 1e-4 } else { 1e-12 }
}

#[test]
fn solve_satisfies_its_equation_on_every_shape() {
    let cases: &[(&[usize], &[usize], &[usize])] = &[
        (&[3, 3], &[3], &[3]),
        (&[4, 4], &[4, 2], &[4, 2]),
        (&[5, 3, 3], &[5, 3, 2], &[5, 3, 2]),
        (&[3, 3], &[5, 3, 2], &[5, 3, 2]),
        (&[5, 3, 3], &[3, 1], &[5, 3, 1]),
        (&[2, 1, 4, 4], &[3, 4, 2], &[2, 3, 4, 2]),
        (&[1, 1], &[1], &[1]),
        (&[17, 17], &[17, 3], &[17, 3]),
        (&[0, 0], &[0], &[0]),
        (&[3, 3], &[3, 0], &[3, 0]),
        (&[0, 2, 2], &[2, 1], &[0, 2, 1]),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (k, (sa, sb, so)) in cases.iter().enumerate() {
            let a = matrices(sa, k as u64, dtype);
            let b = tensor(sb, 100 + k as u64, dtype);
            let x = a.solve(&b);
            assert_eq!(x.shape(), *so, "{sa:?} {sb:?}");
            assert_eq!(x.dtype(), dtype);
            let r = a.matmul(&x) - &b;
            assert!(
                max_abs(&r) < tol(dtype),
                "{sa:?} {sb:?} {dtype}: residual {}",
                max_abs(&r)
            );
        }
    }
}

#[test]
fn solve_pivots_and_reads_views() {
    // a zero in the top-left needs a row exchange
    let a = Tensor::from_vec(
        vec![0.0f64, 2.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0, 1.0],
        &[3, 3],
    );
    let b = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
    let x = a.solve(&b);
    assert!(max_abs(&(a.matmul(&x) - &b)) < 1e-14);
    // transposed and sliced operands
    let big = matrices(&[2, 6, 6], 7, DType::F64);
    let a = big.transpose(-1, -2).slice(1, 1, 5).slice(2, 1, 5);
    let b = tensor(&[4, 2, 3], 8, DType::F64).transpose(0, 1);
    let x = a.solve(&b);
    assert!(max_abs(&(a.matmul(&x) - &b)) < 1e-12);
    assert!(max_abs(&(x - a.contiguous().solve(&b.contiguous()))) < 1e-14);
}

#[test]
fn solve_errors_name_the_shapes_and_the_matrix() {
    let a = matrices(&[3, 3], 1, DType::F64);
    let msg = |r: Result<Tensor, Error>| r.unwrap_err().to_string();
    let e = msg(tensor(&[3, 2], 1, DType::F64).try_solve(&tensor(&[3], 2, DType::F64)));
    assert!(
        e.contains("solve") && e.contains("square") && e.contains("[3, 2]"),
        "{e}"
    );
    let e = msg(a.try_solve(&tensor(&[4], 2, DType::F64)));
    assert!(
        e.contains("[3, 3]") && e.contains("[4]") && e.contains("4 rows"),
        "{e}"
    );
    let e = msg(matrices(&[2, 3, 3], 1, DType::F64).try_solve(&tensor(&[3], 2, DType::F64)));
    assert!(e.contains("unsqueeze(-1)"), "{e}");
    let e = msg(a.try_solve(&tensor(&[3], 2, DType::F32)));
    assert!(e.contains("f64") && e.contains("f32"), "{e}");
    let e = msg(a.try_solve(&Tensor::scalar(1.0f64)));
    assert!(e.contains("at least one axis"), "{e}");
    let mut batch = matrices(&[3, 2, 2], 1, DType::F64).to_vec::<f64>();
    batch[4..8].copy_from_slice(&[1.0, 2.0, 2.0, 4.0]);
    let singular = Tensor::from_vec(batch, &[3, 2, 2]);
    let e = msg(singular.try_solve(&tensor(&[2, 1], 2, DType::F64)));
    assert!(
        e.contains("matrix 1 of the batch [3]") && e.contains("singular"),
        "{e}"
    );
    let e =
        msg(Tensor::from_vec(vec![1i32, 0, 0, 1], &[2, 2]).try_solve(&tensor(&[2], 2, DType::F64)));
    assert!(e.contains("solve"), "{e}");
}

#[test]
fn triangular_solves_read_one_triangle() {
    for dtype in [DType::F32, DType::F64] {
        for lower in [true, false] {
            let full = matrices(&[3, 5, 5], 3, dtype);
            let tri = if lower { full.tril(0) } else { full.triu(0) };
            // the other triangle full of NaN: never read
            let nan = Tensor::full(&[5, 5], f64::NAN, dtype);
            let poisoned = if lower {
                &tri + &nan.triu(1)
            } else {
                &tri + &nan.tril(-1)
            };
            let b = tensor(&[3, 5, 2], 4, dtype);
            let x = poisoned.solve_triangular(&b, lower);
            assert!(
                max_abs(&(tri.matmul(&x) - &b)) < tol(dtype),
                "lower {lower} {dtype}"
            );
            assert!(max_abs(&(x - tri.solve(&b))) < tol(dtype));
        }
    }
    let e = Tensor::zeros(&[2, 2], DType::F64)
        .try_solve_triangular(&Tensor::ones(&[2], DType::F64), true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("solve_triangular") && e.contains("diagonal element 0 is zero"),
        "{e}"
    );
}

#[test]
fn cholesky_factors_the_symmetric_part() {
    for dtype in [DType::F32, DType::F64] {
        let m = tensor(&[4, 6, 6], 5, dtype);
        let spd = m.matmul(&m.transpose(-1, -2)) + &(Tensor::eye(6, dtype) * 6.0);
        // an asymmetric input: its symmetric part is factored
        let skew = tensor(&[4, 6, 6], 6, dtype);
        let skew = &skew - &skew.transpose(-1, -2);
        let a = &spd + &skew;
        let l = a.transpose(-1, -2).cholesky();
        assert_eq!(l.shape(), &[4, 6, 6]);
        assert_eq!(max_abs(&l.triu(1)), 0.0);
        assert!(
            max_abs(&(l.matmul(&l.transpose(-1, -2)) - &spd)) < tol(dtype) * 10.0,
            "{dtype}"
        );
        assert!(l.diagonal().to_dtype(DType::F64).min().item::<f64>() > 0.0);
    }
    assert_eq!(
        Tensor::zeros(&[2, 0, 0], DType::F32).cholesky().shape(),
        &[2, 0, 0]
    );
    let not_pd = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 1.0], &[2, 2, 2]);
    let e = not_pd.try_cholesky().unwrap_err().to_string();
    assert!(
        e.contains("cholesky: matrix 1 of the batch [2]") && e.contains("not positive definite"),
        "{e}"
    );
    let e = Tensor::ones(&[3], DType::F32)
        .try_cholesky()
        .unwrap_err()
        .to_string();
    assert!(e.contains("square") && e.contains("[3]"), "{e}");
}

#[test]
fn triangles_diagonals_and_their_embedding() {
    let x = tensor(&[2, 3, 4], 9, DType::F64);
    let v = x.to_vec::<f64>();
    for k in -3isize..=4 {
        let (lo, up) = (x.tril(k).to_vec::<f64>(), x.triu(k).to_vec::<f64>());
        for (e, &xv) in v.iter().enumerate() {
            let (r, c) = (((e / 4) % 3) as isize, (e % 4) as isize);
            assert_eq!(lo[e], if c - r <= k { xv } else { 0.0 });
            assert_eq!(up[e], if c - r >= k { xv } else { 0.0 });
        }
    }
    // views: a transposed batch and a sliced one, against their contiguous copies
    for view in [x.mt(), x.slice(2, 1, 4).slice(0, 1, 2)] {
        let dense = view.contiguous();
        for k in [-1isize, 0, 2] {
            assert_eq!(view.tril(k).to_vec::<f64>(), dense.tril(k).to_vec::<f64>());
            assert_eq!(view.triu(k).to_vec::<f64>(), dense.triu(k).to_vec::<f64>());
        }
    }
    let strided = tensor(&[3, 4], 12, DType::F32).slice(1, 1, 4).mt();
    assert_eq!(
        strided.diag_embed(3, 5).diagonal().to_vec::<f32>(),
        strided.to_vec::<f32>()
    );
    // a NaN outside the kept triangle does not leak
    let nan = Tensor::full(&[2, 2], f64::NAN, DType::F64);
    assert_eq!(nan.tril(-1).to_vec::<f64>()[1], 0.0);
    let d = x.diagonal();
    assert_eq!(d.shape(), &[2, 3]);
    assert_eq!(
        d.to_vec::<f64>(),
        vec![v[0], v[5], v[10], v[12], v[17], v[22]]
    );
    let dt = x.transpose(-1, -2).diagonal();
    assert_eq!(dt.to_vec::<f64>(), d.to_vec::<f64>());
    // diag_embed is diagonal's transpose: <diag(x), y> = <x, embed(y)>
    let y = tensor(&[2, 3], 10, DType::F64);
    for (rows, cols) in [(3, 4), (4, 3), (3, 3)] {
        let x = tensor(&[2, rows, cols], 11, DType::F64);
        let e = y.diag_embed(rows, cols);
        assert_eq!(e.shape(), &[2, rows, cols]);
        let lhs = (x.diagonal() * &y).sum().item::<f64>();
        let rhs = (x * &e).sum().item::<f64>();
        assert!((lhs - rhs).abs() < 1e-12);
        assert_eq!(e.diagonal().to_vec::<f64>(), y.to_vec::<f64>());
    }
    let e = Tensor::ones(&[3], DType::F32)
        .try_tril(0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tril") && e.contains("[3]"), "{e}");
    let e = y.try_diag_embed(4, 4).unwrap_err().to_string();
    assert!(e.contains("diag_embed") && e.contains("[2, 3]"), "{e}");
}

#[test]
fn lu_factors_reconstruct_the_matrix_and_solve_with_it_or_its_transpose() {
    for dtype in [DType::F32, DType::F64] {
        let a = matrices(&[3, 5, 5], 20, dtype).transpose(-1, -2);
        let f = a.lu_factor();
        assert_eq!(f.shape(), &[3, 5, 6]);
        let v = f.to_dtype(DType::F64).to_vec::<f64>();
        let av = a.to_dtype(DType::F64).contiguous().to_vec::<f64>();
        for m in 0..3 {
            let at = |r: usize, c: usize| v[m * 30 + r * 6 + c];
            let perm: Vec<usize> = (0..5).map(|r| at(r, 5) as usize).collect();
            let mut seen = perm.clone();
            seen.sort();
            assert_eq!(seen, vec![0, 1, 2, 3, 4], "a permutation");
            for r in 0..5 {
                for c in 0..5 {
                    // (L U)[r][c] with L unit lower
                    let lu: f64 = (0..=r.min(c))
                        .map(|j| if j == r { 1.0 } else { at(r, j) } * at(j, c))
                        .sum();
                    let want = av[m * 25 + perm[r] * 5 + c];
                    assert!((lu - want).abs() < tol(dtype) * 10.0, "{dtype} a[p] = L U");
                }
            }
        }
        // one factorization, both systems; factors broadcast against right-hand sides
        let b = tensor(&[2, 3, 5, 2], 21, dtype);
        let x = f.lu_solve(&b, false);
        assert_eq!(x.shape(), &[2, 3, 5, 2]);
        assert!(max_abs(&(a.matmul(&x) - &b)) < tol(dtype));
        let xt = f.lu_solve(&b, true);
        assert!(max_abs(&(a.mt().matmul(&xt) - &b)) < tol(dtype));
        let one = matrices(&[4, 4], 22, dtype);
        let v = tensor(&[4], 23, dtype);
        assert!(max_abs(&(one.mt().matmul(&one.lu_factor().lu_solve(&v, true)) - &v)) < tol(dtype));
    }
    let e = Tensor::ones(&[3, 3], DType::F64)
        .try_lu_solve(&Tensor::ones(&[3], DType::F64), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lu_solve") && e.contains("[3, 3]") && e.contains("n + 1"),
        "{e}"
    );
    let e = matrices(&[3, 3], 1, DType::F64)
        .lu_factor()
        .try_lu_solve(&Tensor::ones(&[4], DType::F64), false)
        .unwrap_err();
    // reported with the matrices' shape, and renamed for the operation a caller composed
    assert!(e.to_string().contains("shapes [3, 3] and [4]"), "{e}");
    assert!(e.for_op("solve").to_string().starts_with("solve: "));
    // a singular matrix factors (with a zero pivot); solving with its factors is the error
    let f = Tensor::zeros(&[2, 2], DType::F32).lu_factor();
    let e = f
        .try_lu_solve(&Tensor::ones(&[2], DType::F32), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lu_solve") && e.contains("singular"), "{e}");
}

#[test]
fn log_determinants_and_inverses() {
    for dtype in [DType::F32, DType::F64] {
        let m = tensor(&[3, 5, 5], 30, dtype);
        let spd = m.matmul(&m.mt()) + &(Tensor::eye(5, dtype) * 5.0);
        // positive definite: 2 Σ log diag(L)
        let want = spd.cholesky().diagonal().ln().sum_axis(-1, false) * 2.0;
        let got = spd.logabsdet();
        assert_eq!(got.shape(), &[3]);
        assert!(max_abs(&(got - want)) < tol(dtype) * 10.0, "{dtype}");
        // a sign flip (two rows swapped) leaves log|det| as it is
        let swapped = Tensor::concat(
            &[
                &spd.slice(1, 1, 2),
                &spd.slice(1, 0, 1),
                &spd.slice(1, 2, 5),
            ],
            1,
        );
        assert!(max_abs(&(swapped.logabsdet() - spd.logabsdet())) < tol(dtype) * 10.0);
        let inv = spd.inv();
        assert!(max_abs(&(inv.matmul(&spd) - Tensor::eye(5, dtype))) < tol(dtype) * 10.0);
    }
    // a singular matrix: log |det| = -inf (as in JAX), batched beside a regular one
    let mut two = vals(8, 5);
    two[4..].fill(1.0);
    let ld = Tensor::from_vec(two, &[2, 2, 2])
        .logabsdet()
        .to_vec::<f64>();
    assert!(ld[0].is_finite() && ld[1] == f64::NEG_INFINITY, "{ld:?}");
    let e = Tensor::ones(&[2, 2], DType::F64)
        .try_lu_logabsdet()
        .unwrap_err()
        .to_string();
    assert!(e.contains("lu_logabsdet") && e.contains("n + 1"), "{e}");
}

#[test]
fn eigh_decomposes_the_symmetric_part() {
    // v diag(w) vᵀ = (a + aᵀ)/2, vᵀ v = I, w ascending, each vector's largest component
    // positive; batched, transposed and sliced inputs, f32 and f64, orders solved whole
    // and split
    let cases: &[&[usize]] = &[
        &[1, 1],
        &[2, 2],
        &[3, 3],
        &[4, 5, 5],
        &[2, 3, 17, 17],
        &[40, 40],
        // from 64 on, split in two (divide and conquer) down to below 64
        &[64, 64],
        &[130, 130],
    ];
    for dtype in [DType::F32, DType::F64] {
        for (k, shape) in cases.iter().enumerate() {
            let n = shape[shape.len() - 1];
            let a = tensor(shape, 300 + k as u64, dtype);
            let s = (&a + &a.mt()) * 0.5;
            for input in [a.clone(), a.mt(), s.clone()] {
                let (w, v) = input.eigh();
                assert_eq!(w.shape(), &shape[..shape.len() - 1]);
                assert_eq!(v.shape(), *shape);
                let back = v.matmul(&w.diag_embed(n, n)).matmul(&v.mt());
                let scale = tol(dtype) * n as f64 * 10.0;
                assert!(max_abs(&(back - &s)) < scale, "{shape:?} {dtype:?}");
                let gram = v.mt().matmul(&v) - &Tensor::eye(n, dtype);
                assert!(
                    max_abs(&gram) < scale,
                    "{shape:?} {dtype:?}: not orthonormal"
                );
                let wv = w.to_dtype(DType::F64).to_vec::<f64>();
                for (i, pair) in wv.chunks(n).enumerate() {
                    assert!(
                        pair.windows(2).all(|p| p[0] <= p[1]),
                        "{i}: {pair:?} not ascending"
                    );
                }
                // the largest component of each column is positive
                let vv = v.to_dtype(DType::F64).contiguous().to_vec::<f64>();
                for m in vv.chunks(n * n) {
                    for c in 0..n {
                        let col: Vec<f64> = (0..n).map(|r| m[r * n + c]).collect();
                        let big = col
                            .iter()
                            .cloned()
                            .fold(0.0f64, |b, x| if x.abs() > b.abs() { x } else { b });
                        assert!(big > 0.0, "column {c} of {shape:?}: {col:?}");
                    }
                }
                let only = input.eigvalsh();
                assert!(max_abs(&(only - &w)) < scale, "{shape:?}: eigvalsh");
            }
        }
    }
    // a slice of a bigger tensor, and an empty batch and matrix
    let big = tensor(&[6, 7], 9, DType::F64);
    let part = big.slice(0, 1, 5).slice(1, 2, 6);
    let (w, _) = part.eigh();
    let (w2, _) = part.contiguous().eigh();
    assert!(max_abs(&(w - &w2)) < 1e-14);
    assert_eq!(
        Tensor::zeros(&[0, 3, 3], DType::F32).eigh().0.shape(),
        &[0, 3]
    );
    assert_eq!(
        Tensor::zeros(&[2, 0, 0], DType::F64).eigh().1.shape(),
        &[2, 0, 0]
    );
    // a diagonal matrix: its sorted entries, unit vectors
    let d = Tensor::from_vec(vec![3.0f64, -1.0, 2.0], &[3]).diag_embed(3, 3);
    let (w, v) = d.eigh();
    assert_eq!(w.to_vec::<f64>(), vec![-1.0, 2.0, 3.0]);
    assert_eq!(
        v.contiguous().to_vec::<f64>(),
        vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    );
}

#[test]
fn eigh_errors_name_the_shape_and_the_matrix() {
    let e = Tensor::zeros(&[2, 3], DType::F64)
        .try_eigh()
        .unwrap_err()
        .to_string();
    assert!(e.contains("eigh") && e.contains("[2, 3]"), "{e}");
    let mut v = vals(2 * 9, 4);
    v[9 + 4] = f64::NAN;
    let e = Tensor::from_vec(v, &[2, 3, 3])
        .try_eigh()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("eigh") && e.contains("matrix 1 of the batch [2]"),
        "{e}"
    );
}

/// The parity of a permutation by counting inversions: -1 for an odd one.
fn parity(p: &[usize]) -> f64 {
    let mut odd = false;
    for i in 0..p.len() {
        for j in i + 1..p.len() {
            odd ^= p[i] > p[j];
        }
    }
    if odd { -1.0 } else { 1.0 }
}

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = vec![];
    for p in permutations(n - 1) {
        for at in 0..n {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

#[test]
fn determinants_and_their_signs() {
    // permutation matrices (every cycle structure of 5): det = the parity; scaled rows
    // flip signs
    for p in permutations(5) {
        let mut m = vec![0.0f64; 25];
        for (r, &c) in p.iter().enumerate() {
            m[r * 5 + c] = if r == 2 { -2.0 } else { 1.0 };
        }
        let d = Tensor::from_vec(m, &[5, 5]).det().item::<f64>();
        assert!((d + 2.0 * parity(&p)).abs() < 1e-12, "{p:?}: {d}");
    }
    for dtype in [DType::F32, DType::F64] {
        let (a, b) = (tensor(&[4, 3, 3], 40, dtype), tensor(&[4, 3, 3], 41, dtype));
        // det(ab) = det(a) det(b), det(aᵀ) = det(a), sign · exp(log|det|)
        let (da, db) = (a.det(), b.det());
        assert_eq!(da.shape(), &[4]);
        assert!(max_abs(&(a.matmul(&b).det() - &da * &db)) < tol(dtype) * 10.0);
        assert!(max_abs(&(a.mt().det() - &da)) < tol(dtype) * 10.0);
        let f = a.lu_factor();
        let back = f.lu_sign() * a.logabsdet().exp();
        assert!(max_abs(&(back - &da)) < tol(dtype) * 10.0);
        let (sign, log) = a.slogdet();
        assert_eq!(max_abs(&(&sign - f.lu_sign())), 0.0);
        assert!(max_abs(&(sign * log.exp() - &da)) < tol(dtype) * 10.0);
        // against the rule of Sarrus
        let v = a.to_dtype(DType::F64).to_vec::<f64>();
        for (i, m) in v.chunks(9).enumerate() {
            let s = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
                + m[2] * (m[3] * m[7] - m[4] * m[6]);
            let got = da.to_dtype(DType::F64).to_vec::<f64>()[i];
            assert!((got - s).abs() < tol(dtype) * 10.0, "{i}: {got} vs {s}");
        }
        // singular matrices: 0, with sign 0; empty matrices: 1
        let z = Tensor::zeros(&[2, 3, 3], dtype);
        assert_eq!(z.det().to_dtype(DType::F64).to_vec::<f64>(), vec![0.0, 0.0]);
        assert_eq!(
            z.lu_factor().lu_sign().to_dtype(DType::F64).to_vec::<f64>(),
            vec![0.0, 0.0]
        );
        let e = Tensor::zeros(&[2, 0, 0], dtype).det();
        assert_eq!(e.to_dtype(DType::F64).to_vec::<f64>(), vec![1.0, 1.0]);
    }
    let e = Tensor::zeros(&[2, 3], DType::F64)
        .try_det()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("det: ") && e.contains("[2, 3]"), "{e}");
}

#[test]
fn qr_reconstructs_with_orthonormal_q_and_upper_r() {
    let cases: &[&[usize]] = &[
        &[3, 2],
        &[2, 3],
        &[4, 4],
        &[1, 1],
        &[5, 6, 3],
        &[2, 3, 4, 7],
        &[40, 17],
        &[0, 2, 2],
        &[3, 0],
        &[0, 3],
    ];
    for dtype in [DType::F32, DType::F64] {
        for (c, shape) in cases.iter().enumerate() {
            let nd = shape.len();
            let (m, n) = (shape[nd - 2], shape[nd - 1]);
            let k = m.min(n);
            let a = tensor(shape, 500 + c as u64, dtype);
            for input in [a.clone(), a.mt().contiguous().mt()] {
                let (q, r) = input.qr();
                let mut qs = shape.to_vec();
                qs[nd - 1] = k;
                let mut rs = shape.to_vec();
                rs[nd - 2] = k;
                assert_eq!((q.shape(), r.shape()), (&qs[..], &rs[..]), "{shape:?}");
                let scale = tol(dtype) * 10.0 * (m + n) as f64;
                assert!(
                    max_abs(&(q.matmul(&r) - &input)) < scale,
                    "{shape:?} {dtype:?}"
                );
                let gram = q.mt().matmul(&q) - &Tensor::eye(k, dtype);
                assert!(
                    max_abs(&gram) < scale,
                    "{shape:?} {dtype:?}: q not orthonormal"
                );
                // upper triangular, non-negative diagonal
                assert_eq!(max_abs(&(r.tril(-1))), 0.0, "{shape:?}");
                if r.numel() > 0 {
                    let d = r.slice(-1, 0, k).diagonal().to_dtype(DType::F64);
                    assert!(d.to_vec::<f64>().iter().all(|x| *x >= 0.0), "{shape:?}");
                }
            }
        }
    }
    // rank-deficient: still a = q r
    let a = Tensor::from_vec(vec![1.0f64, 2.0, 2.0, 4.0, 3.0, 6.0], &[3, 2]);
    let (q, r) = a.qr();
    assert!(max_abs(&(q.matmul(&r) - &a)) < 1e-12);
    let e = Tensor::zeros(&[3], DType::F64)
        .try_qr()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("qr: ") && e.contains("[3]"), "{e}");
}

#[test]
fn svd_reconstructs_with_orthonormal_factors_and_descending_values() {
    let cases: &[&[usize]] = &[
        &[3, 2],
        &[2, 3],
        &[4, 4],
        &[1, 1],
        &[5, 6, 3],
        &[2, 3, 4, 7],
        &[30, 17],
        &[0, 2, 2],
        &[3, 0],
    ];
    for dtype in [DType::F32, DType::F64] {
        for (c, shape) in cases.iter().enumerate() {
            let nd = shape.len();
            let (m, n) = (shape[nd - 2], shape[nd - 1]);
            let k = m.min(n);
            let a = tensor(shape, 700 + c as u64, dtype);
            for input in [a.clone(), a.mt().contiguous().mt()] {
                let (u, s, vt) = input.svd();
                let mut us = shape.to_vec();
                us[nd - 1] = k;
                let mut vs = shape.to_vec();
                vs[nd - 2] = k;
                assert_eq!(u.shape(), &us[..], "{shape:?}");
                assert_eq!(vt.shape(), &vs[..], "{shape:?}");
                let mut ss = shape[..nd - 2].to_vec();
                ss.push(k);
                assert_eq!(s.shape(), &ss[..], "{shape:?}");
                let scale = tol(dtype) * 10.0 * (m + n) as f64;
                let back = u.matmul(&s.diag_embed(k, k)).matmul(&vt);
                assert!(max_abs(&(back - &input)) < scale, "{shape:?} {dtype:?}");
                let eye = Tensor::eye(k, dtype);
                assert!(max_abs(&(u.mt().matmul(&u) - &eye)) < scale, "{shape:?}: u");
                assert!(
                    max_abs(&(vt.matmul(&vt.mt()) - &eye)) < scale,
                    "{shape:?}: vt"
                );
                let sv = s.to_dtype(DType::F64).contiguous().to_vec::<f64>();
                for part in sv.chunks(k.max(1)) {
                    assert!(
                        part.windows(2).all(|p| p[0] >= p[1]),
                        "{part:?} not descending"
                    );
                    assert!(part.iter().all(|x| *x >= 0.0), "{part:?}");
                }
                assert!(
                    max_abs(&(input.svdvals() - &s)) < scale,
                    "{shape:?}: svdvals"
                );
                // the sign rule: each column of u has its largest component positive
                let uv = u.to_dtype(DType::F64).contiguous().to_vec::<f64>();
                for mat in uv.chunks((m * k).max(1)) {
                    for j in 0..k {
                        let big = (0..m)
                            .map(|r| mat[r * k + j])
                            .fold(0.0f64, |b, x| if x.abs() > b.abs() { x } else { b });
                        assert!(big > 0.0, "{shape:?}: column {j}");
                    }
                }
            }
        }
    }
    let e = Tensor::zeros(&[3], DType::F64)
        .try_svd()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("svd: ") && e.contains("[3]"), "{e}");
}

#[test]
fn packed_decompositions_unpack_and_pack_back() {
    use ferrax_runtime::packed;
    for shape in [&[3usize, 4, 2][..], &[2, 3], &[2, 1, 5, 5], &[0, 2, 2]] {
        let a = tensor(shape, 900, DType::F64);
        let q = a.qr_packed();
        let (qq, rr) = packed::qr_parts(&q);
        assert_eq!(
            packed::qr(&qq, &rr).to_vec::<f64>(),
            q.to_vec::<f64>(),
            "{shape:?}"
        );
        let s = a.svd_packed();
        let (u, sv, vt) = packed::svd_parts(&s);
        assert_eq!(
            packed::svd(&u, &sv, &vt).to_vec::<f64>(),
            s.to_vec::<f64>(),
            "{shape:?}"
        );
    }
    let a = tensor(&[2, 4, 4], 901, DType::F64);
    let e = a.eigh_packed();
    let (w, v) = packed::eigh_parts(&e);
    assert_eq!(packed::eigh(&v, &w).to_vec::<f64>(), e.to_vec::<f64>());
    // a part without the batch axes (a zero, in the transforms) is broadcast over them
    let zero = Tensor::zeros(&[4, 4], DType::F64);
    let p = packed::eigh(&zero, &w);
    assert_eq!(p.shape(), &[2, 5, 4]);
    assert_eq!(max_abs(&(packed::eigh_parts(&p).0 - &w)), 0.0);
    assert_eq!(max_abs(&packed::eigh_parts(&p).1), 0.0);
}

#[test]
fn pinv_satisfies_the_penrose_conditions_at_every_rank() {
    for dtype in [DType::F64, DType::F32] {
        let tol = if dtype == DType::F64 { 1e-12 } else { 2e-5 };
        // full rank tall and wide, and rank 2 in [2, 5, 4] (a product of thin factors)
        let thin = tensor(&[2, 5, 2], 71, dtype).matmul(&tensor(&[2, 2, 4], 72, dtype));
        for a in [tensor(&[6, 3], 73, dtype), tensor(&[3, 6], 74, dtype), thin] {
            let p = a.pinv();
            let n = a.ndim();
            let mut want = a.shape().to_vec();
            want.swap(n - 2, n - 1);
            assert_eq!(p.shape(), &want[..]);
            let close = |x: &Tensor, y: &Tensor, what: &str| {
                let d = max_abs(&(x - y));
                assert!(
                    d <= tol * (1.0 + max_abs(y)),
                    "{what} {dtype:?} {:?}: {d}",
                    a.shape()
                );
            };
            close(&a.matmul(&p).matmul(&a), &a, "A P A = A");
            close(&p.matmul(&a).matmul(&p), &p, "P A P = P");
            let ap = a.matmul(&p);
            close(&ap, &ap.mt(), "A P symmetric");
            let pa = p.matmul(&a);
            close(&pa, &pa.mt(), "P A symmetric");
        }
    }
    // full column rank: (AᵀA)⁻¹Aᵀ; least squares agree with the normal equations
    let a = tensor(&[7, 3], 75, DType::F64);
    let want = a.mt().matmul(&a).inv().matmul(&a.mt());
    assert!(max_abs(&(a.pinv() - &want)) < 1e-12);
    let y = tensor(&[7], 76, DType::F64);
    let x = a.lstsq(&y);
    assert_eq!(x.shape(), &[3]);
    assert!(max_abs(&(x - want.matmul(&y))) < 1e-12);
    // singular values below the cutoff count as zero: the pseudo-inverse of zeros is zeros
    assert_eq!(max_abs(&Tensor::zeros(&[3, 2], DType::F64).pinv()), 0.0);
    assert_eq!(Tensor::zeros(&[4, 0], DType::F32).pinv().shape(), &[0, 4]);
    assert!(
        Tensor::zeros(&[3], DType::F64)
            .try_pinv()
            .unwrap_err()
            .to_string()
            .contains("pinv")
    );
    let ints = Tensor::from_vec(vec![1i32, 0, 0, 1], &[2, 2]);
    assert!(ints.try_lstsq(&ints).is_err());
}
