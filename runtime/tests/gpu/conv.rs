//! Convolution and its two transposes (`conv`, `conv_transpose`, `conv_weight_grad`) on
//! the GPU against the CPU: 1-, 2- and 3-D, strides, explicit and "SAME" padding,
//! dilation, groups, broadcast batch axes, empty batches, and transposed or sliced
//! operands.

use ferrax_runtime::prelude::*;

use crate::{LAYS, check, gpu, laid, tensor};

/// The tolerance against the CPU: the values are multiples of 1/8, so every sum here is
/// exact in f32 on both sides.
const TOL: f32 = 1e-5;

/// Input shape, kernel shape, spec.
fn cases() -> Vec<(&'static [usize], &'static [usize], Conv)> {
    vec![
        (&[2, 3, 9], &[4, 3, 3], Conv::new(1).stride(2).padding(1)),
        (
            &[3, 10],
            &[2, 3, 4],
            Conv::new(1).dilation(2).paddings(&[(3, 1)]),
        ),
        (&[2, 4, 7], &[4, 1, 3], Conv::new(1).groups(4).same()),
        (&[1, 2, 7], &[3, 2, 4], Conv::new(1).stride(2).same()),
        (&[2, 2, 5], &[2, 2, 2], Conv::new(1).stride(3).padding(4)),
        (&[2, 3, 5], &[4, 3, 1], Conv::new(1)),
        (&[2, 3, 6, 5], &[4, 3, 3, 3], Conv::new(2)),
        (
            &[1, 4, 7, 8],
            &[6, 2, 3, 2],
            Conv::new(2)
                .groups(2)
                .strides(&[2, 1])
                .paddings(&[(1, 0), (2, 2)])
                .dilations(&[1, 2]),
        ),
        (
            &[2, 3, 5, 5],
            &[3, 1, 3, 3],
            Conv::new(2).groups(3).stride(2).same(),
        ),
        (
            &[2, 1, 2, 5, 4],
            &[3, 4, 2, 2, 2],
            Conv::new(2).strides(&[2, 1]),
        ),
        (&[2, 5, 4], &[3, 4, 2, 2, 2], Conv::new(2).same()),
        (&[0, 2, 4, 4], &[3, 2, 2, 2], Conv::new(2).padding(1)),
        (&[2, 8, 16, 16], &[4, 8, 3, 3], Conv::new(2).padding(1)),
        (
            &[2, 2, 4, 5, 3],
            &[3, 2, 2, 3, 2],
            Conv::new(3).strides(&[1, 2, 1]).padding(1),
        ),
        (
            &[1, 4, 5, 4, 4],
            &[4, 2, 3, 1, 2],
            Conv::new(3)
                .groups(2)
                .same()
                .dilations(&[2, 1, 1])
                .stride(2),
        ),
    ]
}

#[test]
fn conv_and_its_transposes_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (i, (xs, ws, spec)) in cases().into_iter().enumerate() {
        let seed = 10 * i as u64;
        let input = &xs[xs.len() - spec.rank()..];
        let ys = Tensor::zeros(xs, DType::F32)
            .conv(&Tensor::zeros(ws, DType::F32), &spec)
            .shape()
            .to_vec();
        for (j, lay) in LAYS.into_iter().enumerate() {
            let x = laid(xs, seed, false, lay);
            let w = laid(ws, seed + 1, false, LAYS[(j + 1) % LAYS.len()]);
            let ct = laid(&ys, seed + 2, false, LAYS[(j + 2) % LAYS.len()]);
            let what = format!("case {i}: x {xs:?}, w {ws:?}, {spec:?}, layouts from {lay:?}");
            check(&dev, &format!("conv, {what}"), &[&x, &w], TOL, |t| {
                t[0].conv(&t[1], &spec)
            });
            check(
                &dev,
                &format!("conv_transpose, {what}"),
                &[&ct, &w],
                TOL,
                |t| t[0].conv_transpose(&t[1], &spec, input),
            );
            check(
                &dev,
                &format!("conv_weight_grad, {what}"),
                &[&x, &ct],
                TOL,
                |t| t[0].conv_weight_grad(&t[1], &spec, ws),
            );
        }
    }
}

#[test]
fn conv_refuses_operands_on_different_devices() {
    let Some(dev) = gpu() else { return };
    let x = tensor(&[1, 2, 5], 1, false).to_device(&dev);
    let w = tensor(&[3, 2, 2], 2, false);
    let err = x.try_conv(&w, &Conv::new(1)).unwrap_err().to_string();
    assert!(
        err.contains("conv:") && err.contains("different devices"),
        "{err}"
    );
    let (x_cpu, ct) = (
        tensor(&[1, 2, 5], 1, false),
        tensor(&[1, 3, 4], 3, false).to_device(&dev),
    );
    let err = x_cpu
        .try_conv_weight_grad(&ct, &Conv::new(1), &[3, 2, 2])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv_weight_grad:") && err.contains("different devices"),
        "{err}"
    );
}
