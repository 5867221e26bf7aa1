//! `cumsum` and `cumsum_rev` against a naive f64 loop: every axis of small shapes, empty
//! and length-1 axes, long rows (the blocked path), many short rows and wide columns (the
//! parallel paths), f32 and f64, transposed, sliced and stepped views, errors, and the
//! adjoint identity `<cumsum(x), c> == <x, cumsum_rev(c)>`.

use ferrax_runtime::prelude::*;

/// Deterministic multiples of 1/8 in [-3, 3]: every partial sum below 2^21 in magnitude
/// is exact in f32 whatever the order of the additions, so results compare exactly.
fn eighths(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 49) as f64 / 8.0 - 3.0
        })
        .collect()
}

/// Deterministic values in [-1, 1) that are not short binary fractions (rounding happens).
fn reals(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_add(12345);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(data: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    match dtype {
        DType::F32 => Tensor::from_vec(data.iter().map(|&v| v as f32).collect(), shape),
        _ => Tensor::from_vec(data.to_vec(), shape),
    }
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).to_vec::<f64>()
}

/// The running sums of `x` (row-major, `shape`) along `ax` in f64, from the end if `rev`.
fn naive(x: &[f64], shape: &[usize], ax: usize, rev: bool) -> Vec<f64> {
    let outer: usize = shape[..ax].iter().product();
    let n = shape[ax];
    let inner: usize = shape[ax + 1..].iter().product();
    let mut out = vec![0.0; x.len()];
    for o in 0..outer {
        for r in 0..inner {
            let mut acc = 0.0;
            for s in 0..n {
                let k = if rev { n - 1 - s } else { s };
                let i = (o * n + k) * inner + r;
                acc += x[i];
                out[i] = acc;
            }
        }
    }
    out
}

/// Checks `got` (a tensor of `dtype` and `shape`) against `want`, within `tol` relative to
/// the largest |partial sum| (NaNs match NaNs, infinities exactly).
#[track_caller]
fn assert_close(got: &Tensor, want: &[f64], shape: &[usize], dtype: DType, tol: f64, what: &str) {
    assert_eq!(got.shape(), shape, "{what}: shape");
    assert_eq!(got.dtype(), dtype, "{what}: dtype");
    let g = as_f64(got);
    let scale = want
        .iter()
        .filter(|v| v.is_finite())
        .fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (&a, &b)) in g.iter().zip(want).enumerate() {
        let ok = if b.is_nan() || a.is_nan() {
            a.is_nan() && b.is_nan()
        } else if b.is_infinite() || a.is_infinite() {
            a == b
        } else {
            (a - b).abs() <= tol * scale
        };
        assert!(ok, "{what}: element {i}: got {a}, want {b} (scale {scale})");
    }
}

/// Both ops, both dtypes, every axis (and its negative form) of `shape`.
fn check_shape(shape: &[usize], values: &[f64], tol32: f64) {
    for dtype in [DType::F32, DType::F64] {
        let x = tensor(values, shape, dtype);
        let seen = as_f64(&x);
        for ax in 0..shape.len() {
            for rev in [false, true] {
                let want = naive(&seen, shape, ax, rev);
                let tol = if dtype == DType::F32 { tol32 } else { 1e-12 };
                for axis in [ax as isize, ax as isize - shape.len() as isize] {
                    let got = if rev {
                        x.cumsum_rev(axis)
                    } else {
                        x.cumsum(axis)
                    };
                    let what = format!("{shape:?} {dtype} axis {axis} rev {rev}");
                    assert_close(&got, &want, shape, dtype, tol, &what);
                }
            }
        }
    }
}

#[test]
fn small_shapes_on_every_axis() {
    let shapes: &[&[usize]] = &[
        &[1],
        &[7],
        &[0],
        &[3, 5, 7],
        &[2, 0, 3],
        &[1, 1],
        &[4, 1, 3],
        &[2, 3, 4, 5],
        &[33, 17],
    ];
    for (s, shape) in shapes.iter().enumerate() {
        let n = shape.iter().product();
        check_shape(shape, &eighths(n, s as u64), 0.0);
        check_shape(shape, &reals(n, s as u64), 1e-6);
    }
}

#[test]
fn long_rows() {
    // past the blocked threshold, with a partial last block; several rows of it
    for shape in [vec![100_003], vec![3, 70_001], vec![1 << 16]] {
        let n = shape.iter().product();
        check_shape(&shape, &eighths(n, 7), 0.0);
        check_shape(&shape, &reals(n, 8), 1e-5);
    }
}

#[test]
fn parallel_paths() {
    for shape in [
        vec![5000, 60],      // many short rows (axis 1), many columns (axis 0)
        vec![2, 3000, 300],  // wide columns, few outer blocks: column segments
        vec![1, 1000, 1000], // one outer block
        vec![70_000, 5],     // narrow columns
    ] {
        let n = shape.iter().product();
        check_shape(&shape, &eighths(n, 3), 0.0);
    }
}

#[test]
fn length_one_axis_and_empty_results() {
    let x = Tensor::from_vec(vec![1.5f32, -2.0, 3.25], &[3, 1]);
    assert_eq!(x.cumsum(1).to_vec::<f32>(), vec![1.5, -2.0, 3.25]);
    assert_eq!(x.cumsum_rev(-1).to_vec::<f32>(), vec![1.5, -2.0, 3.25]);
    assert_eq!(x.cumsum(0).to_vec::<f32>(), vec![1.5, -0.5, 2.75]);
    let e = Tensor::zeros(&[0, 4], DType::F64);
    assert_eq!(e.cumsum(1).shape(), &[0, 4]);
    assert_eq!(e.cumsum_rev(0).shape(), &[0, 4]);
    assert_eq!(e.cumsum(0).dtype(), DType::F64);
    // -0.0 stays -0.0 at the start, as NumPy's copy of the first element
    let z = Tensor::from_vec(vec![-0.0f32, -0.0], &[2]);
    assert!(
        z.cumsum(0)
            .to_vec::<f32>()
            .iter()
            .all(|v| v.is_sign_negative())
    );
}

#[test]
fn nan_and_infinity_propagate() {
    let x = Tensor::from_vec(vec![1.0f32, f32::NAN, 2.0, f32::INFINITY], &[4]);
    let f = x.cumsum(0).to_vec::<f32>();
    assert_eq!(f[0], 1.0);
    assert!(f[1..].iter().all(|v| v.is_nan()));
    let r = x.cumsum_rev(0).to_vec::<f32>();
    assert_eq!(r[3], f32::INFINITY);
    assert_eq!(r[2], f32::INFINITY);
    assert!(r[..2].iter().all(|v| v.is_nan()));
}

#[test]
fn f32_accumulates_in_f32() {
    // 2^24 + 1 is not an f32: the f32 sum stops growing by 1, the f64 one does not
    let n = (1 << 24) + 8;
    let ones32 = Tensor::ones(&[n], DType::F32).cumsum(0).to_vec::<f32>();
    let ones64 = Tensor::ones(&[n], DType::F64).cumsum(0).to_vec::<f64>();
    assert_eq!(ones64[n - 1], n as f64);
    assert!(ones32[n - 1] < n as f32 || ones32[n - 1] == (1 << 24) as f32);
    assert_eq!(ones32[(1 << 20) - 1], (1 << 20) as f32);
}

#[test]
fn views() {
    let shape = [3usize, 5, 7];
    let data = eighths(105, 11);
    for dtype in [DType::F32, DType::F64] {
        // stored as [7, 5, 3], viewed as [3, 5, 7]
        let stored_vals = {
            let mut v = vec![0.0; 105];
            for a in 0..3 {
                for b in 0..5 {
                    for c in 0..7 {
                        v[(c * 5 + b) * 3 + a] = data[(a * 5 + b) * 7 + c];
                    }
                }
            }
            v
        };
        let transposed = tensor(&stored_vals, &[7, 5, 3], dtype).permute(&[2, 1, 0]);
        assert!(!transposed.is_contiguous());
        // a slice of a wider last axis, and every other element of a taller first axis
        let wide: Vec<f64> = (0..3 * 5 * 9)
            .map(|i| {
                let (r, c) = (i / 9, i % 9);
                if c == 0 || c == 8 {
                    1e6
                } else {
                    data[r * 7 + c - 1]
                }
            })
            .collect();
        let sliced = tensor(&wide, &[3, 5, 9], dtype).slice(-1, 1, 8);
        let tall: Vec<f64> = (0..6 * 35)
            .map(|i| {
                if (i / 35) % 2 == 1 {
                    -1e6
                } else {
                    data[(i / 70) * 35 + i % 35]
                }
            })
            .collect();
        let stepped = tensor(&tall, &[6, 5, 7], dtype).slice_step(0, 0, 6, 2);
        // a 2-d transpose through `t`
        let mat = tensor(&data[..35], &[5, 7], dtype);
        for (name, v) in [
            ("transposed", &transposed),
            ("sliced", &sliced),
            ("stepped", &stepped),
        ] {
            assert_eq!(as_f64(v), data, "{name} construction");
            for ax in 0..3 {
                for rev in [false, true] {
                    let got = if rev {
                        v.cumsum_rev(ax as isize)
                    } else {
                        v.cumsum(ax as isize)
                    };
                    let want = naive(&data, &shape, ax, rev);
                    let what = format!("{name} {dtype} axis {ax} rev {rev}");
                    assert_close(&got, &want, &shape, dtype, 0.0, &what);
                }
            }
        }
        let mt = mat.t();
        let mt_vals = as_f64(&mt);
        for ax in 0..2 {
            let want = naive(&mt_vals, &[7, 5], ax, false);
            assert_close(&mt.cumsum(ax as isize), &want, &[7, 5], dtype, 0.0, "t()");
            let want = naive(&mt_vals, &[7, 5], ax, true);
            assert_close(
                &mt.cumsum_rev(ax as isize),
                &want,
                &[7, 5],
                dtype,
                0.0,
                "t() rev",
            );
        }
    }
}

#[test]
fn errors_name_the_operation_shape_and_dtype() {
    let i = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], &[2, 3]);
    for (op, e) in [
        ("cumsum", i.try_cumsum(0).unwrap_err()),
        ("cumsum_rev", i.try_cumsum_rev(1).unwrap_err()),
    ] {
        let m = e.to_string();
        assert!(
            m.contains(op) && m.contains("i32") && m.contains("[2, 3]"),
            "{m}"
        );
    }
    let b = Tensor::from_vec(vec![true, false], &[2]);
    let m = b.try_cumsum(0).unwrap_err().to_string();
    assert!(
        m.contains("cumsum") && m.contains("bool") && m.contains("[2]"),
        "{m}"
    );
    let x = Tensor::zeros(&[2, 3, 4], DType::F32);
    for axis in [3isize, -4] {
        let m = x.try_cumsum(axis).unwrap_err().to_string();
        assert!(
            m.contains("cumsum") && m.contains("axis") && m.contains("[2, 3, 4]"),
            "{m}"
        );
        let m = x.try_cumsum_rev(axis).unwrap_err().to_string();
        assert!(m.contains("cumsum_rev") && m.contains("[2, 3, 4]"), "{m}");
    }
    let s = Tensor::scalar(1.0f64);
    assert!(s.try_cumsum(0).unwrap_err().to_string().contains("cumsum"));
    let r = std::panic::catch_unwind(|| x.cumsum(5));
    assert!(r.is_err());
}

#[test]
fn cumsum_rev_is_the_adjoint_of_cumsum() {
    let dot = |a: &Tensor, b: &Tensor| -> f64 {
        as_f64(a).iter().zip(as_f64(b)).map(|(x, y)| x * y).sum()
    };
    for (s, shape) in [vec![4usize, 37, 5], vec![100_003], vec![3, 2000, 2]]
        .into_iter()
        .enumerate()
    {
        let n: usize = shape.iter().product();
        let x = tensor(&reals(n, s as u64), &shape, DType::F64);
        let c = tensor(&reals(n, 100 + s as u64), &shape, DType::F64);
        for ax in 0..shape.len() as isize {
            let lhs = dot(&x.cumsum(ax), &c);
            let rhs = dot(&x, &c.cumsum_rev(ax));
            assert!(
                (lhs - rhs).abs() <= 1e-9 * lhs.abs().max(1.0),
                "{shape:?} axis {ax}: {lhs} vs {rhs}"
            );
        }
    }
}
