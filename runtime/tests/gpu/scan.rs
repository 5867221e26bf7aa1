//! `cumsum` and `cumsum_rev`: the per-column kernel (short axes), the blocked scan (long
//! rows, recursing over the block totals) and the transposed path (long axes that are
//! not innermost), against the CPU.

use ferrax_runtime::prelude::*;

use crate::{LAYS, SHAPES, check, gpu, laid};

/// Deterministic values in [-1, 1) (or [0, 1) when `positive`) that are not short binary
/// fractions, so that sums round and the order of the additions shows.
fn reals(n: usize, seed: u64, positive: bool) -> Vec<f32> {
    let mut s = seed.wrapping_add(777);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            if positive { u } else { 2.0 * u - 1.0 }
        })
        .collect()
}

/// Both ops along every axis of `x` on the GPU against the CPU, within `tol` relative to
/// the largest |partial sum| of each result (blocked and sequential f32 sums round
/// differently); NaNs match NaNs and infinities exactly.
#[track_caller]
fn check_scaled(dev: &Device, what: &str, x: &Tensor, tol: f32) {
    let g = x.to_device(dev);
    for ax in 0..x.ndim() as isize {
        for rev in [false, true] {
            let (want, got) = if rev {
                (x.cumsum_rev(ax), g.cumsum_rev(ax))
            } else {
                (x.cumsum(ax), g.cumsum(ax))
            };
            let what = format!("{what} axis {ax} rev {rev}");
            assert!(got.device().is_gpu(), "{what}: on {}", got.device());
            assert_eq!(got.shape(), want.shape(), "{what}: shape");
            assert_eq!(got.dtype(), DType::F32, "{what}: dtype");
            let (g, w) = (got.to_vec::<f32>(), want.to_vec::<f32>());
            let scale = w
                .iter()
                .filter(|v| v.is_finite())
                .fold(1.0f32, |m, v| m.max(v.abs()));
            for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
                let ok = if a.is_nan() || b.is_nan() {
                    a.is_nan() && b.is_nan()
                } else if a.is_infinite() || b.is_infinite() {
                    a == b
                } else {
                    (a - b).abs() <= tol * scale
                };
                assert!(ok, "{what}: element {i}: gpu {a}, cpu {b} (scale {scale})");
            }
        }
    }
}

#[test]
fn foundation_shapes_and_layouts_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (s, shape) in SHAPES.iter().enumerate() {
        for lay in LAYS {
            for special in [false, true] {
                // multiples of 1/8: short sums are exact in any order
                let x = laid(shape, 200 + s as u64, special, lay);
                for axis in 0..shape.len() as isize {
                    let what = format!("{shape:?} {lay:?} special={special} axis {axis}");
                    check(&dev, &format!("cumsum {what}"), &[&x], 0.0, |t| {
                        t[0].cumsum(axis)
                    });
                    check(&dev, &format!("cumsum_rev {what}"), &[&x], 0.0, |t| {
                        t[0].cumsum_rev(axis)
                    });
                }
            }
        }
    }
}

#[test]
fn three_by_five_by_seven_on_every_axis() {
    let Some(dev) = gpu() else { return };
    for lay in LAYS {
        let x = laid(&[3, 5, 7], 9, false, lay);
        check_scaled(&dev, &format!("[3, 5, 7] {lay:?}"), &x, 0.0);
    }
    let x = Tensor::from_vec(reals(105, 1, false), &[3, 5, 7]);
    check_scaled(&dev, "[3, 5, 7] reals", &x, 1e-6);
}

#[test]
fn long_rows_use_the_blocked_scan() {
    let Some(dev) = gpu() else { return };
    // one block, two, a partial third; past 64 blocks (the totals scanned by the blocked
    // kernel again); a million (two levels)
    for n in [65, 1000, 1024, 1025, 2500, 70_001, 1_000_003] {
        for positive in [false, true] {
            let x = Tensor::from_vec(reals(n, n as u64, positive), &[n]);
            check_scaled(&dev, &format!("[{n}] positive={positive}"), &x, 1e-4);
        }
    }
    // exact values: every partial sum representable, so the result is exact
    let x = crate::tensor(&[1_000_003], 5, false);
    check(&dev, "[1000003] eighths", &[&x], 0.0, |t| t[0].cumsum(0));
    check(&dev, "[1000003] eighths rev", &[&x], 0.0, |t| {
        t[0].cumsum_rev(0)
    });
    let ones = Tensor::ones(&[1 << 20], DType::F32).to_device(&dev);
    let c = ones.cumsum(0).to_vec::<f32>();
    assert!(c.iter().enumerate().all(|(i, &v)| v == (i + 1) as f32));
    let r = ones.cumsum_rev(0).to_vec::<f32>();
    assert!(
        r.iter()
            .enumerate()
            .all(|(i, &v)| v == ((1 << 20) - i) as f32)
    );
}

#[test]
fn many_rows_and_columns() {
    let Some(dev) = gpu() else { return };
    for shape in [
        vec![20_000, 3],    // many short rows, long columns (transposed path on axis 0)
        vec![5000, 7],      // many short rows
        vec![300, 2000],    // many long rows (two blocks each)
        vec![7, 100_000],   // rows of 98 blocks
        vec![2, 1000, 3],   // columns short enough for a thread each
        vec![2, 3000, 5],   // long columns: transposed, scanned as rows
        vec![3, 1],         // a size-1 axis
        vec![0, 3],         // empty
        vec![1, 70_000, 2], // one long column pair
    ] {
        let n = shape.iter().product();
        let x = Tensor::from_vec(reals(n, n as u64, false), &shape);
        check_scaled(&dev, &format!("{shape:?}"), &x, 1e-4);
    }
}

#[test]
fn views_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for shape in [vec![40, 3000], vec![3, 5, 7], vec![1100, 4]] {
        for lay in LAYS {
            let x = laid(&shape, 3, false, lay);
            check_scaled(&dev, &format!("{shape:?} {lay:?}"), &x, 0.0);
        }
    }
}

#[test]
fn errors_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let i = Tensor::from_vec(vec![1i32, 2, 3], &[3]).to_device(&dev);
    let m = i.try_cumsum(0).unwrap_err().to_string();
    assert!(
        m.contains("cumsum") && m.contains("i32") && m.contains("[3]"),
        "{m}"
    );
    let x = Tensor::zeros(&[2, 3], DType::F32).to_device(&dev);
    let m = x.try_cumsum_rev(2).unwrap_err().to_string();
    assert!(m.contains("cumsum_rev") && m.contains("[2, 3]"), "{m}");
    let e = Tensor::zeros(&[0, 3], DType::F32).to_device(&dev);
    assert_eq!(e.cumsum(1).shape(), &[0, 3]);
    assert!(e.cumsum(1).device().is_gpu());
}

/// `linear_recurrence` and `_rev` along every axis of `x` with decay `a` on the GPU
/// against the CPU, within `tol` of the largest |state| (the blocked kernel associates the
/// products differently).
#[track_caller]
fn check_recurrence(dev: &Device, what: &str, x: &Tensor, a: &Tensor, tol: f32) {
    let (gx, ga) = (x.to_device(dev), a.to_device(dev));
    for ax in 0..x.ndim() as isize {
        for rev in [false, true] {
            let (want, got) = if rev {
                (
                    x.linear_recurrence_rev(a, ax),
                    gx.linear_recurrence_rev(&ga, ax),
                )
            } else {
                (x.linear_recurrence(a, ax), gx.linear_recurrence(&ga, ax))
            };
            let what = format!("{what} axis {ax} rev {rev}");
            assert!(got.device().is_gpu(), "{what}: on {}", got.device());
            assert_eq!(got.shape(), want.shape(), "{what}: shape");
            let (g, w) = (got.to_vec::<f32>(), want.to_vec::<f32>());
            let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (i, (&p, &q)) in g.iter().zip(&w).enumerate() {
                assert!(
                    (p - q).abs() <= tol * scale,
                    "{what}: element {i}: gpu {p}, cpu {q}"
                );
            }
        }
    }
}

#[test]
fn linear_recurrences_match_the_cpu_on_every_path() {
    let Some(dev) = gpu() else { return };
    for shape in [
        vec![7],
        vec![3, 5, 7],
        vec![65],         // one block
        vec![2500],       // three blocks
        vec![70_001],     // 69 blocks: their states by the blocked kernel again
        vec![300, 2000],  // many long rows
        vec![2, 1000, 3], // columns short enough for a thread each
        vec![2, 3000, 5], // long columns: transposed, run as rows
    ] {
        let n: usize = shape.iter().product();
        let x = Tensor::from_vec(reals(n, n as u64, false), &shape);
        let decay: Vec<f32> = reals(n, n as u64 + 1, true)
            .iter()
            .map(|u| 0.5 + 0.5 * u)
            .collect();
        let a = Tensor::from_vec(decay, &shape);
        check_recurrence(&dev, &format!("{shape:?}"), &x, &a, 1e-5);
    }
    // a decay of 1 is a running sum; a number broadcast; views
    let x = Tensor::from_vec(reals(3000, 4, false), &[3000]);
    check_recurrence(
        &dev,
        "decay 1",
        &x,
        &Tensor::ones(&[3000], DType::F32),
        1e-5,
    );
    check_recurrence(&dev, "decay 0.9", &x, &Tensor::scalar(0.9f32), 1e-5);
    for lay in LAYS {
        let x = laid(&[4, 6, 5], 31, false, lay);
        let a = laid(&[4, 6, 5], 32, false, lay) * 0.1;
        check_recurrence(&dev, &format!("{lay:?}"), &x, &a, 1e-6);
    }
    // products, shifts and flips (built from the recurrence, pads and gathers)
    let x = Tensor::from_vec(
        reals(2400, 9, true).iter().map(|u| 0.9 + 0.2 * u).collect(),
        &[3, 800],
    );
    for ax in [0isize, 1] {
        check(&dev, &format!("cumprod {ax}"), &[&x], 1e-5, |t| {
            t[0].cumprod(ax)
        });
        check(&dev, &format!("cumprod_rev {ax}"), &[&x], 1e-5, |t| {
            t[0].cumprod_rev(ax)
        });
        check(&dev, &format!("prod_axis {ax}"), &[&x], 1e-5, |t| {
            t[0].prod_axis(ax, false)
        });
    }
    for (s, shape) in SHAPES.iter().enumerate() {
        for lay in LAYS {
            let x = laid(shape, 300 + s as u64, true, lay);
            for axis in 0..shape.len() as isize {
                check(
                    &dev,
                    &format!("flip {shape:?} {lay:?} {axis}"),
                    &[&x],
                    0.0,
                    |t| t[0].flip(axis),
                );
                check(
                    &dev,
                    &format!("shift {shape:?} {lay:?} {axis}"),
                    &[&x],
                    0.0,
                    |t| t[0].shift(-2, axis),
                );
                check(
                    &dev,
                    &format!("repeat {shape:?} {lay:?} {axis}"),
                    &[&x],
                    0.0,
                    |t| t[0].repeat(2, axis),
                );
                check(
                    &dev,
                    &format!("tile {shape:?} {lay:?} {axis}"),
                    &[&x],
                    0.0,
                    |t| t[0].tile(3, axis),
                );
            }
        }
    }
}

#[test]
fn running_extrema_and_log_sum_exps_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for lay in LAYS {
        let x = laid(&[4, 6, 5], 41, true, lay);
        for axis in 0..3isize {
            let what = format!("{lay:?} axis {axis}");
            check(&dev, &format!("cummax {what}"), &[&x], 0.0, |t| {
                t[0].cummax(axis)
            });
            check(&dev, &format!("cummin {what}"), &[&x], 0.0, |t| {
                t[0].cummin(axis)
            });
            let idx = x.to_device(&dev).cumargmax(axis, true);
            assert!(idx.device().is_gpu(), "{what}");
            assert_eq!(
                idx.to_vec::<i32>(),
                x.cumargmax(axis, true).to_vec::<i32>(),
                "{what}"
            );
        }
    }
    // a lane longer than one thread may run (the host), and one just within
    for n in [65_535usize, 70_000] {
        let x = Tensor::from_vec(reals(n, n as u64, false), &[n]);
        let got = x.to_device(&dev).cumargmin(0, false);
        assert!(got.device().is_gpu());
        assert_eq!(
            got.to_vec::<i32>(),
            x.cumargmin(0, false).to_vec::<i32>(),
            "[{n}]"
        );
    }
    let x = Tensor::from_vec(
        reals(3000, 5, false).iter().map(|v| v * 30.0).collect(),
        &[3, 1000],
    );
    check(&dev, "logcumsumexp", &[&x], 1e-5, |t| t[0].logcumsumexp(1));
    check(&dev, "logcumsumexp_rev", &[&x], 1e-5, |t| {
        t[0].logcumsumexp_rev(1)
    });
    // masked (-inf) prefixes, a lane masked throughout, +inf
    let inf = f32::INFINITY;
    let x = Tensor::from_vec(
        vec![
            -inf, -inf, 0.5, -1.0, -inf, -inf, -inf, -inf, 1.0, inf, 2.0, -inf,
        ],
        &[3, 4],
    );
    for rev in [false, true] {
        let want = if rev {
            x.logcumsumexp_rev(1)
        } else {
            x.logcumsumexp(1)
        };
        let got = x.to_device(&dev);
        let got = if rev {
            got.logcumsumexp_rev(1)
        } else {
            got.logcumsumexp(1)
        };
        let (g, w) = (got.to_vec::<f32>(), want.to_vec::<f32>());
        for (a, b) in g.iter().zip(&w) {
            assert!(
                a == b || (a - b).abs() < 1e-6,
                "rev {rev}: {g:?} against {w:?}"
            );
        }
    }
}
