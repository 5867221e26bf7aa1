//! Reductions, argmax and the softmax family.

use ferrax_runtime::prelude::*;

use crate::{LAYS, SHAPES, check, gpu, laid};

#[test]
fn full_reductions_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (s, shape) in SHAPES.iter().enumerate() {
        for lay in LAYS {
            for special in [false, true] {
                let x = laid(shape, s as u64, special, lay);
                let what = format!("{shape:?} {lay:?} special={special}");
                check(&dev, &format!("sum {what}"), &[&x], 1e-5, |t| t[0].sum());
                check(&dev, &format!("max {what}"), &[&x], 0.0, |t| t[0].max());
                check(&dev, &format!("min {what}"), &[&x], 0.0, |t| t[0].min());
            }
        }
    }
}

#[test]
fn long_full_reductions_take_several_passes() {
    let Some(dev) = gpu() else { return };
    for n in [4096, 4097, 100_000, 1 << 20] {
        let x = crate::tensor(&[n], n as u64, false);
        check(&dev, &format!("sum {n}"), &[&x], 1e-5, |t| t[0].sum());
        check(&dev, &format!("max {n}"), &[&x], 0.0, |t| t[0].max());
    }
    let ones = Tensor::ones(&[1 << 20], DType::F32).to_device(&dev);
    assert_eq!(ones.sum().item::<f32>(), (1 << 20) as f32);
}

#[test]
fn axis_reductions_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (s, shape) in SHAPES.iter().enumerate() {
        for lay in LAYS {
            let x = laid(shape, 100 + s as u64, true, lay);
            for axis in 0..shape.len() as isize {
                for keep in [false, true] {
                    let what = format!("{shape:?} {lay:?} axis {axis} keep {keep}");
                    check(&dev, &format!("sum_axis {what}"), &[&x], 1e-5, |t| {
                        t[0].sum_axis(axis, keep)
                    });
                    check(&dev, &format!("max_axis {what}"), &[&x], 0.0, |t| {
                        t[0].max_axis(axis, keep)
                    });
                    check(&dev, &format!("min_axis {what}"), &[&x], 0.0, |t| {
                        t[0].min_axis(axis, keep)
                    });
                    check(&dev, &format!("mean_axis {what}"), &[&x], 1e-5, |t| {
                        t[0].mean_axis(axis, keep)
                    });
                    check(&dev, &format!("logsumexp {what}"), &[&x], 1e-5, |t| {
                        t[0].logsumexp_axis(axis, keep)
                    });
                    if shape[axis as usize] > 0 {
                        check(&dev, &format!("argmax {what}"), &[&x], 0.0, |t| {
                            t[0].argmax_axis(axis, keep)
                        });
                    }
                }
                let what = format!("{shape:?} {lay:?} axis {axis}");
                check(&dev, &format!("softmax {what}"), &[&x], 1e-5, |t| {
                    t[0].softmax(axis)
                });
                check(&dev, &format!("log_softmax {what}"), &[&x], 1e-5, |t| {
                    t[0].log_softmax(axis)
                });
            }
        }
    }
}

#[test]
fn long_lanes_use_the_workgroup_tree() {
    let Some(dev) = gpu() else { return };
    for shape in [[3usize, 1000, 2], [2, 70, 5], [1, 5000, 1]] {
        let x = crate::tensor(&shape, 9, false);
        for axis in 0..3 {
            check(&dev, &format!("sum {shape:?} {axis}"), &[&x], 1e-5, |t| {
                t[0].sum_axis(axis, false)
            });
            check(&dev, &format!("max {shape:?} {axis}"), &[&x], 0.0, |t| {
                t[0].max_axis(axis, false)
            });
            check(&dev, &format!("argmax {shape:?} {axis}"), &[&x], 0.0, |t| {
                t[0].argmax_axis(axis, false)
            });
            check(
                &dev,
                &format!("softmax {shape:?} {axis}"),
                &[&x],
                1e-5,
                |t| t[0].softmax(axis),
            );
            check(
                &dev,
                &format!("log_softmax {shape:?} {axis}"),
                &[&x],
                1e-5,
                |t| t[0].log_softmax(axis),
            );
            check(&dev, &format!("lse {shape:?} {axis}"), &[&x], 1e-5, |t| {
                t[0].logsumexp_axis(axis, true)
            });
        }
    }
}

#[test]
fn sum_to_shape_undoes_broadcasting() {
    let Some(dev) = gpu() else { return };
    let g = crate::tensor(&[2, 3, 4], 4, false);
    for shape in [&[4][..], &[3, 1], &[2, 1, 4], &[], &[1, 1, 1]] {
        check(&dev, &format!("sum_to_shape {shape:?}"), &[&g], 1e-6, |t| {
            t[0].sum_to_shape(shape)
        });
    }
}

#[test]
fn reductions_compute_pending_operands_inline() {
    let Some(dev) = gpu() else { return };
    let x = crate::tensor(&[37, 300], 21, false);
    let w = crate::tensor(&[300], 22, false);
    let b = crate::tensor(&[37, 1], 23, false);
    let inputs = [&x, &w, &b];
    check(&dev, "sum of tanh(x*w+b)", &inputs, 1e-5, |t| {
        (&t[0] * &t[1] + &t[2]).tanh().sum()
    });
    check(&dev, "sum_axis 0", &inputs, 1e-5, |t| {
        (&t[0] * &t[1] + &t[2]).sum_axis(0, false)
    });
    check(&dev, "max_axis 1", &inputs, 0.0, |t| {
        (&t[0] * &t[1]).max_axis(1, true)
    });
    check(&dev, "argmax", &inputs, 0.0, |t| {
        (&t[0] - &t[2]).argmax_axis(1, false)
    });
    check(&dev, "softmax", &inputs, 1e-5, |t| {
        (&t[0] * 3.0 + &t[1]).softmax(1)
    });
    check(&dev, "log_softmax axis 0", &inputs, 1e-5, |t| {
        (&t[0] + &t[2]).log_softmax(0)
    });
    check(&dev, "logsumexp", &inputs, 1e-5, |t| {
        (&t[0] - &t[1]).logsumexp_axis(-1, false)
    });
    check(&dev, "transposed pending", &inputs, 1e-5, |t| {
        (t[0].t() * 2.0).sum_axis(0, false)
    });
    check(&dev, "cross-entropy", &inputs, 1e-5, |t| {
        let logp = (&t[0] * &t[1]).log_softmax(1);
        -(logp * (&t[2] * 0.0 + 1.0)).sum() / 37.0
    });
    let long = crate::tensor(&[3, 5000], 24, false);
    check(&dev, "long pending", &[&long], 1e-5, |t| {
        (&t[0] * &t[0]).sum()
    });
}

/// Softmax over long lanes shifts by the lane's true maximum wherever it lies (each of a
/// thread's four accumulators, the tail): a spike of 200 among values below 4 overflows
/// `exp` unless the shift is the spike.
#[test]
fn long_softmax_lanes_shift_by_their_true_maximum() {
    let Some(dev) = gpu() else { return };
    for at in [0usize, 300, 513, 770, 1023, 1024, 4100, 4999] {
        let mut v = crate::values(2 * 5000, 11, false);
        v[at] = 200.0;
        v[5000 + at] = -200.0; // the second lane: its maximum is elsewhere
        let x = Tensor::from_vec(v, &[2, 5000]);
        for f in [Tensor::softmax, Tensor::log_softmax] {
            check(&dev, &format!("spike at {at}"), &[&x], 1e-5, |t| {
                f(&t[0], -1)
            });
        }
    }
}
