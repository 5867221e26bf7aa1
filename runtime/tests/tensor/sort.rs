//! `argsort`, `sort`, `top_k`, `take_along_axis` and `scatter_add` against loops over
//! lanes: ties kept in order, NaN last, `-0.0` equal to `0.0`, every axis, f32 and f64,
//! contiguous and transposed inputs; the gather and the scatter adjoint to each other.

use ferrax_runtime::prelude::*;

/// Values with ties, zeros of both signs and NaNs.
fn awkward(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let r = Tensor::normal(Key::new(seed), &[n], DType::F64).to_vec::<f64>();
    let v: Vec<f64> = r
        .iter()
        .enumerate()
        .map(|(i, &x)| match i % 11 {
            3 => f64::NAN,
            5 => -0.0,
            7 => 0.0,
            _ => (x * 2.0).round() / 2.0, // many ties
        })
        .collect();
    Tensor::from_vec(v, shape).to_dtype(dtype)
}

/// The lanes of `x` along `ax`: (their flat positions, in order).
fn lanes(shape: &[usize], ax: usize) -> Vec<Vec<usize>> {
    let n = shape[ax];
    let inner: usize = shape[ax + 1..].iter().product();
    let outer: usize = shape[..ax].iter().product();
    (0..outer * inner)
        .map(|l| {
            let (o, r) = (l / inner, l % inner);
            (0..n).map(|i| (o * n + i) * inner + r).collect()
        })
        .collect()
}

/// NumPy's stable order: NaN last, -0.0 == 0.0.
fn rank(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap(),
    }
}

#[test]
fn argsort_sort_and_top_k_order_every_lane_as_numpy_does() {
    for dtype in [DType::F32, DType::F64] {
        for (shape, transposed) in [(vec![7], false), (vec![3, 5, 4], false), (vec![4, 6], true)] {
            let x = awkward(1, &shape, dtype);
            let x = if transposed {
                x.t().contiguous().t()
            } else {
                x
            };
            let v = x.to_dtype(DType::F64).to_vec::<f64>();
            for ax in 0..shape.len() {
                let idx = x.argsort(ax as isize).to_vec::<i32>();
                let sorted = x.sort(ax as isize).to_dtype(DType::F64).to_vec::<f64>();
                for lane in lanes(&shape, ax) {
                    let mut want: Vec<usize> = (0..lane.len()).collect();
                    want.sort_by(|&i, &j| rank(v[lane[i]], v[lane[j]]));
                    let got: Vec<usize> = lane.iter().map(|&p| idx[p] as usize).collect();
                    assert_eq!(got, want, "{dtype} {shape:?} axis {ax}");
                    for (&p, &i) in lane.iter().zip(&want) {
                        let (s, w) = (sorted[p], v[lane[i]]);
                        assert!(s.to_bits() == w.to_bits() || (s.is_nan() && w.is_nan()));
                    }
                }
            }
        }
        // top_k: the largest first, NaN the largest, ties the lower index first
        let x = Tensor::from_vec(vec![1.0, f64::NAN, 3.0, 3.0, 3.0, 2.0], &[2, 3]).to_dtype(dtype);
        assert_eq!(x.top_k_indices(2).to_vec::<i32>(), vec![1, 2, 0, 1]);
        let top = x.top_k(2).to_dtype(DType::F64).to_vec::<f64>();
        assert!(top[0].is_nan());
        assert_eq!(&top[1..], &[3.0, 3.0, 3.0]);
        assert_eq!(x.top_k(0).shape(), &[2, 0]);
    }
    // a large lane count (the parallel path) against the small path's rule
    let big = awkward(2, &[300, 200], DType::F32);
    let idx = big.argsort(0).to_vec::<i32>();
    let v = big.to_dtype(DType::F64).to_vec::<f64>();
    for (l, lane) in lanes(&[300, 200], 0).iter().enumerate().step_by(37) {
        let mut want: Vec<usize> = (0..300).collect();
        want.sort_by(|&i, &j| rank(v[lane[i]], v[lane[j]]));
        let got: Vec<usize> = lane.iter().map(|&p| idx[p] as usize).collect();
        assert_eq!(got, want, "lane {l}");
    }
}

#[test]
fn take_along_axis_and_scatter_add_are_each_others_transpose() {
    for dtype in [DType::F32, DType::F64] {
        let x = Tensor::normal(Key::new(3), &[4, 5, 3], dtype);
        for ax in 0..3 {
            let mut ishape = vec![4, 5, 3];
            ishape[ax] = 7; // more indices than values: repeats
            let n = x.shape()[ax] as u64;
            let k: usize = ishape.iter().product();
            let raw = Tensor::uniform(Key::new(4 + ax as u64), &[k], 0.0, 1.0, DType::F64)
                .to_vec::<f64>();
            let iv: Vec<i32> = raw
                .iter()
                .map(|u| (u * n as f64) as i32 % n as i32)
                .collect();
            let idx = Tensor::from_vec(iv.clone(), &ishape);
            let got = x
                .take_along_axis(ax as isize, &idx)
                .to_dtype(DType::F64)
                .to_vec::<f64>();
            let xv = x.to_dtype(DType::F64).to_vec::<f64>();
            let at = |s: &[usize], i: [usize; 3]| (i[0] * s[1] + i[1]) * s[2] + i[2];
            for a in 0..ishape[0] {
                for b in 0..ishape[1] {
                    for c in 0..ishape[2] {
                        let mut src = [a, b, c];
                        src[ax] = iv[at(&ishape, [a, b, c])] as usize;
                        assert_eq!(got[at(&ishape, [a, b, c])], xv[at(&[4, 5, 3], src)]);
                    }
                }
            }
            // <take(x), y> = <x, scatter(0, y)>, and scatter adds onto its target
            let y = Tensor::normal(Key::new(9), &ishape, dtype);
            let dot = |a: &Tensor, b: &Tensor| (a * b).sum().to_dtype(DType::F64).item::<f64>();
            let lhs = dot(&x.take_along_axis(ax as isize, &idx), &y);
            let back = x.zeros_like().scatter_add(ax as isize, &idx, &y);
            let rhs = dot(&x, &back);
            assert!(
                (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
                "{lhs} against {rhs}"
            );
            let onto = x.scatter_add(ax as isize, &idx, &y);
            let diff = (&onto - &(&x + &back))
                .abs()
                .max()
                .to_dtype(DType::F64)
                .item::<f64>();
            assert!(diff < 1e-5, "scatter onto a target: {diff}");
        }
    }
    // out of range: the fill where gathered, dropped where scattered
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let idx = Tensor::from_vec(vec![2i32, 3, -1, 0, 7, 1, 1, 1], &[2, 4]);
    assert_eq!(
        x.take_along_axis_or(1, &idx, f64::NEG_INFINITY)
            .to_vec::<f64>(),
        vec![
            3.0,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
            1.0,
            f64::NEG_INFINITY,
            5.0,
            5.0,
            5.0
        ]
    );
    let src = Tensor::from_vec(
        vec![1.0f64, 10.0, 100.0, 1000.0, 1.0, 2.0, 3.0, 4.0],
        &[2, 4],
    );
    assert_eq!(
        x.scatter_add_dropping(1, &idx, &src).to_vec::<f64>(),
        vec![1001.0, 2.0, 4.0, 4.0, 14.0, 6.0]
    );
    // the pair is each other's transpose: <take_or(x, 0), y> = <x, scatter_dropping(0, y)>
    let (xs, ys) = (
        Tensor::normal(Key::new(11), &[5, 4], DType::F64),
        Tensor::normal(Key::new(12), &[6, 4], DType::F64),
    );
    let far = Tensor::from_vec(
        (0..24).map(|i| (i * 7) % 8 - 1).collect::<Vec<i32>>(),
        &[6, 4],
    );
    let lhs = (&xs.take_along_axis_or(0, &far, 0.0) * &ys)
        .sum()
        .item::<f64>();
    let rhs = (&xs * &xs.zeros_like().scatter_add_dropping(0, &far, &ys))
        .sum()
        .item::<f64>();
    assert!(
        (lhs - rhs).abs() < 1e-12 * (1.0 + lhs.abs()),
        "{lhs} against {rhs}"
    );
    // onto one value broadcast (filled, not copied) as onto the same values in memory
    let flat = Tensor::full(&[2, 3], 2.5, DType::F64);
    let wide = flat.slice(0, 0, 1).slice(1, 0, 1).broadcast_to(&[2, 3]);
    let (near, two) = (
        Tensor::from_vec(vec![2i32, 0, 1, 1], &[2, 2]),
        Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]),
    );
    let (rows, ones) = (
        Tensor::from_vec(vec![2i32, 2, 0], &[3]),
        Tensor::ones(&[2, 3], DType::F64),
    );
    for (a, b) in [
        (
            flat.scatter_add(1, &near, &two),
            wide.scatter_add(1, &near, &two),
        ),
        (
            flat.scatter_add_dropping(1, &idx, &src),
            wide.scatter_add_dropping(1, &idx, &src),
        ),
        (
            flat.index_add(1, &rows, &ones),
            wide.index_add(1, &rows, &ones),
        ),
    ] {
        assert_eq!(a.to_vec::<f64>(), b.to_vec::<f64>());
    }
    // errors name the operation and what does not fit
    let x = Tensor::zeros(&[2, 3], DType::F32);
    let err = |r: Result<Tensor, Error>| r.unwrap_err().to_string();
    let f32_idx = Tensor::zeros(&[2, 1], DType::F32);
    assert!(err(x.try_take_along_axis_or(1, &f32_idx, 0.0)).contains("take_along_axis_or"));
    assert!(err(x.try_take_along_axis_or(1, &wrong_shape(), 0.0)).contains("take_along_axis_or"));
    assert!(err(x.try_scatter_add_dropping(1, &f32_idx, &x)).contains("scatter_add_dropping"));
    let wrong = wrong_shape();
    assert!(err(x.try_take_along_axis(1, &wrong)).contains("take_along_axis"));
    let far = Tensor::from_vec(vec![3i32, 0], &[2, 1]);
    assert!(err(x.try_take_along_axis(1, &far)).contains("take_along_axis"));
    let ok = Tensor::from_vec(vec![1i32, 0], &[2, 1]);
    let src = Tensor::zeros(&[2, 2], DType::F32);
    assert!(err(x.try_scatter_add(1, &ok, &src)).contains("scatter_add"));
    assert!(err(x.try_top_k(4)).contains("top_k: k = 4 is more than the 3 values"));
    assert!(err(x.try_argsort(2)).contains("argsort"));
}

/// Indices that fit no `[2, 3]` tensor along axis 1 (4 rows).
fn wrong_shape() -> Tensor {
    Tensor::from_vec(vec![0i32; 4], &[4, 1])
}

#[test]
fn gathers_and_scatters_past_the_threading_threshold_match_a_loop() {
    // enough elements for the threaded row paths (and rows split across chunks), with
    // indices in range and, for the fill/drop variants, past both ends
    let (outer, n, k, inner) = (5usize, 37usize, 181usize, 300usize);
    let x = Tensor::normal(Key::new(21), &[outer, n, inner], DType::F64);
    let src = Tensor::normal(Key::new(22), &[outer, k, inner], DType::F64);
    let (xv, sv) = (x.to_vec::<f64>(), src.to_vec::<f64>());
    let at = |o: usize, j: usize, r: usize, len: usize| (o * len + j) * inner + r;
    for wide in [false, true] {
        let iv: Vec<i32> = (0..outer * k * inner)
            .map(|t| {
                let i = ((t * 7919 + t / 13) % (n + 6)) as i32;
                if wide { i - 3 } else { i % n as i32 }
            })
            .collect();
        let idx = Tensor::from_vec(iv.clone(), &[outer, k, inner]);
        let (got, added) = if wide {
            (
                x.take_along_axis_or(1, &idx, -7.0),
                x.scatter_add_dropping(1, &idx, &src),
            )
        } else {
            (x.take_along_axis(1, &idx), x.scatter_add(1, &idx, &src))
        };
        let (got, added) = (got.to_vec::<f64>(), added.to_vec::<f64>());
        let mut want_added = xv.clone();
        for o in 0..outer {
            for j in 0..k {
                for r in 0..inner {
                    let i = iv[at(o, j, r, k)];
                    let inside = (0..n as i32).contains(&i);
                    let want = if inside {
                        xv[at(o, i as usize, r, n)]
                    } else {
                        -7.0
                    };
                    assert_eq!(got[at(o, j, r, k)], want, "gather at {o} {j} {r}");
                    if inside {
                        want_added[at(o, i as usize, r, n)] += sv[at(o, j, r, k)];
                    }
                }
            }
        }
        for (t, (g, w)) in added.iter().zip(&want_added).enumerate() {
            assert!((g - w).abs() < 1e-12, "scatter at {t}: {g} against {w}");
        }
    }
}

#[test]
fn take_along_axis_gathers_integers_and_flags_like_floats() {
    let x = Tensor::from_vec((0..24).map(|v| (v * 5 % 7) as f64).collect(), &[2, 4, 3]);
    let picks: Vec<i32> = (0..18).map(|i| (i * 3 + i / 4) % 4).collect();
    let idx = Tensor::from_vec(picks, &[2, 3, 3]);
    let want = x.take_along_axis(1, &idx);
    for dt in [DType::I32, DType::Bool] {
        let got = x.to_dtype(dt).take_along_axis(1, &idx);
        assert_eq!(got.dtype(), dt);
        assert_eq!(
            got.to_dtype(DType::F64).to_vec::<f64>(),
            want.to_dtype(dt).to_dtype(DType::F64).to_vec::<f64>(),
            "{dt:?}"
        );
    }
    // the fill variant stays for floats: an integer tensor is refused by name
    let e = x
        .to_dtype(DType::I32)
        .try_take_along_axis_or(1, &idx, 0.0)
        .unwrap_err();
    assert!(e.to_string().contains("take_along_axis_or"), "{e}");
}
