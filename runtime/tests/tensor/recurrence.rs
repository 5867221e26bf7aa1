//! `linear_recurrence` (and `_rev`) against a naive loop in the element type: every axis,
//! broadcast decays (a number, a column, a row), the parallel and vectorised paths,
//! transposed inputs, infinities in the unread first decay; `cumprod`, `prod`,
//! `prod_axis` against products; `shift` and `flip` against index maps; errors.

use ferrax_runtime::prelude::*;

/// Deterministic values in [lo, hi).
fn uniform(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(3);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

fn tensor(data: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape).to_dtype(dtype)
}

/// `h[k] = a[k] h[k-1] + x[k]` along `ax` of `shape` (both row-major, one shape), rounded
/// to `dtype` after every operation as the kernel rounds.
fn naive(x: &[f64], a: &[f64], shape: &[usize], ax: usize, rev: bool, dtype: DType) -> Vec<f64> {
    let round = |v: f64| {
        if dtype == DType::F32 {
            v as f32 as f64
        } else {
            v
        }
    };
    let outer: usize = shape[..ax].iter().product();
    let n = shape[ax];
    let inner: usize = shape[ax + 1..].iter().product();
    let mut out = vec![0.0; x.len()];
    for o in 0..outer {
        for r in 0..inner {
            let mut h = 0.0;
            for s in 0..n {
                let k = if rev { n - 1 - s } else { s };
                let i = (o * n + k) * inner + r;
                h = if s == 0 {
                    x[i]
                } else {
                    round(round(a[i] * h) + x[i])
                };
                out[i] = h;
            }
        }
    }
    out
}

#[track_caller]
fn same(got: &Tensor, want: &[f64], what: &str) {
    let g = got.to_dtype(DType::F64).to_vec::<f64>();
    assert_eq!(g.len(), want.len(), "{what}: length");
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{what}: element {i}: {a} against {b}"
        );
    }
}

#[test]
fn recurrences_match_a_loop_on_every_axis_and_path() {
    for dtype in [DType::F32, DType::F64] {
        for shape in [
            vec![7],
            vec![1],
            vec![3, 5, 4],
            vec![2, 1, 6],
            vec![40_000, 3],
            vec![3, 40_000],
            vec![64, 300, 9],
        ] {
            let n: usize = shape.iter().product();
            let xv: Vec<f64> = tensor(&uniform(n, 1, -1.0, 1.0), &shape, dtype)
                .to_dtype(DType::F64)
                .to_vec();
            let av: Vec<f64> = tensor(&uniform(n, 2, 0.5, 1.1), &shape, dtype)
                .to_dtype(DType::F64)
                .to_vec();
            let (x, a) = (tensor(&xv, &shape, dtype), tensor(&av, &shape, dtype));
            for ax in 0..shape.len() {
                for rev in [false, true] {
                    let got = if rev {
                        x.linear_recurrence_rev(&a, ax as isize)
                    } else {
                        x.linear_recurrence(&a, ax as isize - shape.len() as isize)
                    };
                    assert_eq!(got.dtype(), dtype);
                    let want = naive(&xv, &av, &shape, ax, rev, dtype);
                    same(
                        &got,
                        &want,
                        &format!("{shape:?} {dtype:?} axis {ax} rev {rev}"),
                    );
                }
            }
        }
    }
}

#[test]
fn decays_broadcast_and_inputs_may_be_views() {
    let x = Tensor::from_vec(uniform(24, 5, -1.0, 1.0), &[4, 6]);
    let full = |d: &Tensor| d.broadcast_to(&[4, 6]).contiguous();
    // a number, a column, a row
    for decay in [
        Tensor::scalar(0.9f64),
        Tensor::from_vec(uniform(4, 6, 0.0, 1.0), &[4, 1]),
        Tensor::from_vec(uniform(6, 7, 0.0, 1.0), &[6]),
    ] {
        for ax in [0isize, 1] {
            let want = x.linear_recurrence(&full(&decay), ax).to_vec::<f64>();
            assert_eq!(x.linear_recurrence(&decay, ax).to_vec::<f64>(), want);
        }
    }
    // a transposed input: the same as its contiguous copy
    let xt = Tensor::from_vec(uniform(24, 8, -1.0, 1.0), &[6, 4]).t();
    let a = Tensor::from_vec(uniform(24, 9, 0.0, 1.0), &[4, 6]);
    for ax in [0isize, 1] {
        assert_eq!(
            xt.linear_recurrence_rev(&a, ax).to_vec::<f64>(),
            xt.contiguous()
                .linear_recurrence_rev(&a, ax)
                .to_vec::<f64>()
        );
    }
    // the input broadcast too: the result has the broadcast shape
    let h = Tensor::from_vec(vec![1.0f32], &[1, 1])
        .linear_recurrence(&Tensor::full(&[3, 2], 2.0, DType::F32), 0);
    assert_eq!(h.shape(), &[3, 2]);
    assert_eq!(h.to_vec::<f32>(), vec![1.0, 1.0, 3.0, 3.0, 7.0, 7.0]);
    // the first decay is never read: an infinity there changes nothing
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
    let a = Tensor::from_vec(vec![f64::INFINITY, 0.5, 0.5], &[3]);
    assert_eq!(
        x.linear_recurrence(&a, 0).to_vec::<f64>(),
        vec![1.0, 2.5, 4.25]
    );
    let a = Tensor::from_vec(vec![0.5, 0.5, f64::NAN], &[3]);
    assert_eq!(
        x.linear_recurrence_rev(&a, 0).to_vec::<f64>(),
        vec![2.75, 3.5, 3.0]
    );
    // empty axes and tensors
    let e = Tensor::zeros(&[0, 3], DType::F32);
    assert_eq!(e.linear_recurrence(&e, 0).shape(), &[0, 3]);
    assert_eq!(e.cumprod(1).shape(), &[0, 3]);
}

#[test]
fn products_match_running_products() {
    for dtype in [DType::F32, DType::F64] {
        let shape = [3usize, 5, 4];
        let v = uniform(60, 11, -1.5, 1.5);
        let x = tensor(&v, &shape, dtype);
        let xv: Vec<f64> = x.to_dtype(DType::F64).to_vec();
        let round = |p: f64| {
            if dtype == DType::F32 {
                p as f32 as f64
            } else {
                p
            }
        };
        for ax in 0..3 {
            let ones = vec![1.0; 60];
            let mut want = vec![0.0; 60];
            let mut want_rev = vec![0.0; 60];
            let (outer, n, inner) = (
                shape[..ax].iter().product::<usize>(),
                shape[ax],
                shape[ax + 1..].iter().product::<usize>(),
            );
            for o in 0..outer {
                for r in 0..inner {
                    let at = |k: usize| (o * n + k) * inner + r;
                    let mut p = 1.0;
                    for k in 0..n {
                        p = if k == 0 {
                            xv[at(k)]
                        } else {
                            round(p * xv[at(k)])
                        };
                        want[at(k)] = p;
                    }
                    let mut p = 1.0;
                    for k in (0..n).rev() {
                        p = if k == n - 1 {
                            xv[at(k)]
                        } else {
                            round(p * xv[at(k)])
                        };
                        want_rev[at(k)] = p;
                    }
                }
            }
            same(&x.cumprod(ax as isize), &want, "cumprod");
            same(&x.cumprod_rev(ax as isize), &want_rev, "cumprod_rev");
            let _ = ones;
            let firsts = x.cumprod_rev(ax as isize).slice(ax as isize, 0, 1);
            let p = x.prod_axis(ax as isize, true);
            assert_eq!(p.shape(), firsts.shape());
            same(
                &p,
                &firsts.to_dtype(DType::F64).to_vec::<f64>(),
                "prod_axis",
            );
            assert_eq!(x.prod_axis(ax as isize, false).ndim(), 2);
        }
        let all = xv
            .iter()
            .rev()
            .fold(None, |acc: Option<f64>, &v| {
                Some(acc.map_or(v, |p| round(p * v)))
            })
            .unwrap();
        assert_eq!(x.prod().shape(), &[] as &[usize]);
        same(&x.prod(), &[all], "prod");
    }
    // a size-1 axis: the factors themselves
    let col = Tensor::from_vec(vec![2.0f64, -0.0, 3.5], &[3, 1]);
    assert_eq!(col.cumprod(1).to_vec::<f64>(), col.to_vec::<f64>());
    assert_eq!(col.cumprod_rev(-1).to_vec::<f64>(), col.to_vec::<f64>());
    assert_eq!(
        col.prod_axis(1, false).to_vec::<f64>(),
        vec![2.0, -0.0, 3.5]
    );
    assert_eq!(Tensor::scalar(4.0f32).prod().item::<f32>(), 4.0);
    // zeros, infinities and signs
    let x = Tensor::from_vec(vec![2.0f64, 0.0, f64::INFINITY, -1.0], &[4]);
    assert_eq!(x.cumprod(0).to_vec::<f64>()[..2], [2.0, 0.0]);
    assert!(x.cumprod(0).to_vec::<f64>()[2].is_nan());
    assert_eq!(
        x.cumprod_rev(0).to_vec::<f64>()[2..],
        [-f64::INFINITY, -1.0]
    );
}

#[test]
fn shift_and_flip_move_elements_as_index_maps_do() {
    let v = uniform(60, 13, -1.0, 1.0);
    let x = Tensor::from_vec(v.clone(), &[3, 5, 4]);
    let shape = [3usize, 5, 4];
    let at = |i: usize, j: usize, k: usize| v[(i * 5 + j) * 4 + k];
    for ax in 0..3 {
        for steps in [-6isize, -2, -1, 0, 1, 3, 7] {
            let got = x.shift(steps, ax as isize).to_vec::<f64>();
            let flipped = x.flip(ax as isize).to_vec::<f64>();
            for i in 0..3 {
                for j in 0..5 {
                    for k in 0..4 {
                        let mut idx = [i, j, k];
                        let from = idx[ax] as isize - steps;
                        let want = if from < 0 || from >= shape[ax] as isize {
                            0.0
                        } else {
                            idx[ax] = from as usize;
                            at(idx[0], idx[1], idx[2])
                        };
                        assert_eq!(got[(i * 5 + j) * 4 + k], want, "shift {steps} axis {ax}");
                        let mut idx = [i, j, k];
                        idx[ax] = shape[ax] - 1 - idx[ax];
                        assert_eq!(flipped[(i * 5 + j) * 4 + k], at(idx[0], idx[1], idx[2]));
                    }
                }
            }
        }
    }
    // a transposed view, f32
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).t();
    assert_eq!(
        t.flip(0).to_vec::<f32>(),
        vec![3.0, 6.0, 2.0, 5.0, 1.0, 4.0]
    );
    assert_eq!(
        t.shift(1, 1).to_vec::<f32>(),
        vec![0.0, 1.0, 0.0, 2.0, 0.0, 3.0]
    );
}

#[test]
fn bad_inputs_are_errors_naming_the_operation() {
    let x = Tensor::ones(&[3, 4], DType::F32);
    let e = x
        .try_linear_recurrence(&Tensor::ones(&[3, 4], DType::F64), 0)
        .unwrap_err();
    assert!(e.to_string().contains("linear_recurrence"), "{e}");
    let e = x
        .try_linear_recurrence(&Tensor::ones(&[2], DType::F32), 0)
        .unwrap_err();
    assert!(e.to_string().contains("linear_recurrence"), "{e}");
    let e = x.try_linear_recurrence_rev(&x, 2).unwrap_err();
    assert!(e.to_string().contains("linear_recurrence_rev"), "{e}");
    let ints = Tensor::from_vec(vec![1i32, 2], &[2]);
    assert!(
        ints.try_cumprod(0)
            .unwrap_err()
            .to_string()
            .contains("cumprod")
    );
    assert!(x.try_cumprod_rev(-3).is_err());
    assert!(Tensor::zeros(&[0], DType::F64).try_prod().is_err());
    assert!(x.try_shift(1, 2).unwrap_err().to_string().contains("shift"));
    assert!(x.try_flip(-3).unwrap_err().to_string().contains("flip"));
    let e = Tensor::zeros(&[0, 2], DType::F32)
        .try_argmin_axis(0, false)
        .unwrap_err();
    assert!(
        e.to_string().contains("argmin_axis") && e.to_string().contains("minimum"),
        "{e}"
    );
    let v = Tensor::from_vec(vec![2.0f64, -1.0, f64::NAN, -1.0, 5.0, -3.0], &[2, 3]);
    assert_eq!(v.argmin_axis(1, false).to_vec::<i32>(), vec![2, 2]);
    assert_eq!(v.argmin_axis(0, true).to_vec::<i32>(), vec![1, 0, 0]);
}

#[test]
fn running_extrema_and_log_sum_exps_match_loops() {
    let shape = [3usize, 7, 4];
    let mut v = uniform(84, 21, -3.0, 3.0);
    // ties and a NaN
    v[5] = v[9];
    v[40] = f64::NAN;
    let x = Tensor::from_vec(v.clone(), &shape);
    for ax in 0..3 {
        let (outer, n, inner) = (
            shape[..ax].iter().product::<usize>(),
            shape[ax],
            shape[ax + 1..].iter().product::<usize>(),
        );
        for rev in [false, true] {
            let imax = x.cumargmax(ax as isize, rev).to_vec::<i32>();
            let imin = x.cumargmin(ax as isize, rev).to_vec::<i32>();
            let lse = if rev {
                x.logcumsumexp_rev(ax as isize)
            } else {
                x.logcumsumexp(ax as isize)
            };
            let lse = lse.to_vec::<f64>();
            for o in 0..outer {
                for c in 0..inner {
                    let at = |k: usize| (o * n + k) * inner + c;
                    let (mut bmax, mut bmin, mut sum) = (None::<usize>, None::<usize>, 0.0);
                    for step in 0..n {
                        let k = if rev { n - 1 - step } else { step };
                        let val = v[at(k)];
                        let better = |b: Option<usize>, gt: bool| match b {
                            None => true,
                            Some(b) => {
                                let w = v[at(b)];
                                (if gt { val > w } else { val < w })
                                    || (val.is_nan() && !w.is_nan())
                            }
                        };
                        if better(bmax, true) {
                            bmax = Some(k);
                        }
                        if better(bmin, false) {
                            bmin = Some(k);
                        }
                        sum += val.exp();
                        assert_eq!(
                            imax[at(k)],
                            bmax.unwrap() as i32,
                            "cumargmax axis {ax} rev {rev}"
                        );
                        assert_eq!(
                            imin[at(k)],
                            bmin.unwrap() as i32,
                            "cumargmin axis {ax} rev {rev}"
                        );
                        let want = sum.ln();
                        let got = lse[at(k)];
                        assert!(
                            (got - want).abs() < 1e-14 * (1.0 + want.abs())
                                || (got.is_nan() && want.is_nan()),
                            "logcumsumexp axis {ax} rev {rev}: {got} against {want}"
                        );
                    }
                }
            }
        }
    }
    // the values: the running maximum and minimum of the first lane along axis 1
    let (m, l) = (x.cummax(1).to_vec::<f64>(), x.cummin(1).to_vec::<f64>());
    let (mut hi, mut lo) = (f64::NEG_INFINITY, f64::INFINITY);
    for k in 0..7 {
        let val = v[k * 4];
        hi = hi.max(val);
        lo = lo.min(val);
        assert_eq!((m[k * 4], l[k * 4]), (hi, lo));
    }
    // wide ranges: no overflow, and small prefixes kept beside large later values
    for dtype in [DType::F64, DType::F32] {
        let x = Tensor::from_vec(vec![-2000.0, -2000.0, 0.0, 3000.0, 3000.0], &[5]).to_dtype(dtype);
        let y = x.logcumsumexp(0).to_dtype(DType::F64).to_vec::<f64>();
        let ln2 = std::f64::consts::LN_2;
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-3 };
        for (g, w) in y
            .iter()
            .zip([-2000.0, -2000.0 + ln2, 0.0, 3000.0, 3000.0 + ln2])
        {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{dtype:?}: {g} against {w}"
            );
        }
        let r = x.logcumsumexp_rev(0).to_dtype(DType::F64).to_vec::<f64>();
        assert!(
            (r[4] - 3000.0).abs() < 1e-3 && (r[0] - (3000.0 + ln2)).abs() < 1e-2,
            "{r:?}"
        );
    }
    // infinite prefixes, as JAX's cumlogsumexp: -inf while every value so far is -inf, then
    // the finite sums; +inf from the first +inf on
    let inf = f64::INFINITY;
    for dtype in [DType::F64, DType::F32] {
        let x = Tensor::from_vec(vec![-inf, -inf, 0.0, -inf, inf, 1.0], &[6]).to_dtype(dtype);
        let y = x.logcumsumexp(0).to_dtype(DType::F64).to_vec::<f64>();
        assert_eq!(y, vec![-inf, -inf, 0.0, 0.0, inf, inf], "{dtype:?}");
        let r = x
            .slice(0, 0, 4)
            .logcumsumexp_rev(0)
            .to_dtype(DType::F64)
            .to_vec::<f64>();
        assert_eq!(r, vec![0.0, 0.0, 0.0, -inf], "{dtype:?}");
        let all = Tensor::full(&[2, 3], -inf, dtype).logcumsumexp(1);
        assert!(
            all.to_dtype(DType::F64)
                .to_vec::<f64>()
                .iter()
                .all(|v| *v == -inf)
        );
    }
    assert!(
        Tensor::from_vec(vec![1i32], &[1])
            .try_cummax(0)
            .unwrap_err()
            .to_string()
            .contains("cumargmax")
    );
    assert!(x.try_logcumsumexp(3).is_err());
    assert_eq!(
        Tensor::zeros(&[0, 2], DType::F32).cummin(0).shape(),
        &[0, 2]
    );
}

#[test]
fn repeat_and_tile_copy_as_index_maps_do() {
    let v = uniform(24, 31, -1.0, 1.0);
    let x = Tensor::from_vec(v.clone(), &[2, 3, 4]);
    let shape = [2usize, 3, 4];
    for ax in 0..3 {
        for n in [0usize, 1, 3] {
            let (r, t) = (x.repeat(n, ax as isize), x.tile(n, -3 + ax as isize));
            let mut want_shape = shape.to_vec();
            want_shape[ax] *= n;
            assert_eq!(r.shape(), &want_shape[..]);
            assert_eq!(t.shape(), &want_shape[..]);
            let (rv, tv) = (r.to_vec::<f64>(), t.to_vec::<f64>());
            let out_len: usize = want_shape.iter().product();
            for flat in 0..out_len {
                // the output index, then its source along `ax`
                let mut rem = flat;
                let mut idx = [0usize; 3];
                for d in (0..3).rev() {
                    idx[d] = rem % want_shape[d];
                    rem /= want_shape[d];
                }
                let at = |i: [usize; 3]| v[(i[0] * 3 + i[1]) * 4 + i[2]];
                let mut from = idx;
                from[ax] = idx[ax] / n;
                assert_eq!(rv[flat], at(from), "repeat {n} axis {ax}");
                from[ax] = idx[ax] % shape[ax];
                assert_eq!(tv[flat], at(from), "tile {n} axis {ax}");
            }
        }
    }
    // a transposed view; errors name the operation
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).t();
    assert_eq!(
        t.repeat(2, 1).to_vec::<f32>(),
        vec![1.0, 1.0, 4.0, 4.0, 2.0, 2.0, 5.0, 5.0, 3.0, 3.0, 6.0, 6.0]
    );
    assert!(
        x.try_repeat(2, 3)
            .unwrap_err()
            .to_string()
            .contains("repeat")
    );
    assert!(x.try_tile(2, -4).unwrap_err().to_string().contains("tile"));
}
