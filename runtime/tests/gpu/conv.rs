//! Convolution and its two transposes (`conv`, `conv_transpose`, `conv_weight_grad`) on
//! the GPU against the CPU: 1-, 2- and 3-D, strides, explicit and "SAME" padding,
//! dilation, groups, broadcast batch axes, empty batches, and transposed or sliced
//! operands.

use ferrax_runtime::prelude::*;

use crate::{LAYS, Lay, check, gpu, laid, tensor};

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

/// Cases for the GPU's unfold and fold kernels in particular: padding wider than the
/// kernel, strides longer than the kernel (inputs no window reads), 1 x 1 kernels that
/// are not the identity, and sizes of 1.
fn window_cases() -> Vec<(&'static [usize], &'static [usize], Conv)> {
    vec![
        (
            &[3, 2, 17],
            &[4, 2, 5],
            Conv::new(1).stride(3).dilation(2).paddings(&[(6, 2)]),
        ),
        (&[2, 3, 9], &[2, 3, 2], Conv::new(1).stride(5)),
        (&[2, 3, 9], &[2, 3, 1], Conv::new(1).stride(2).padding(3)),
        (&[2, 1], &[3, 2, 1], Conv::new(1).padding(2)),
        (&[2, 3, 0], &[2, 3, 2], Conv::new(1).paddings(&[(2, 1)])),
        (&[2, 3, 0], &[2, 3, 2], Conv::new(1).same()),
        (
            &[2, 3, 5, 6],
            &[2, 3, 2, 3],
            Conv::new(2).paddings(&[(4, 3), (5, 5)]).dilations(&[2, 1]),
        ),
        (
            &[1, 2, 11, 10],
            &[3, 2, 2, 3],
            Conv::new(2).strides(&[4, 5]),
        ),
        (&[2, 1, 1, 7], &[2, 1, 3, 2], Conv::new(2).padding(1)),
        (
            &[2, 2, 5, 6, 7],
            &[2, 2, 2, 3, 1],
            Conv::new(3)
                .strides(&[3, 1, 2])
                .dilations(&[2, 1, 1])
                .paddings(&[(3, 0), (1, 4), (0, 2)]),
        ),
        (
            &[1, 2, 3, 3, 3],
            &[1, 2, 2, 2, 2],
            Conv::new(3).stride(4).padding(3),
        ),
    ]
}

/// Checks the three operations of case `i` on the GPU against the CPU, the operands laid
/// out as `lays` says (each operand the next layout of the cycle).
fn check_case(dev: &Device, i: usize, xs: &[usize], ws: &[usize], spec: Conv, lays: &[Lay]) {
    let seed = 10 * i as u64;
    let input = &xs[xs.len() - spec.rank()..];
    let ys = Tensor::zeros(xs, DType::F32)
        .conv(&Tensor::zeros(ws, DType::F32), &spec)
        .shape()
        .to_vec();
    for (j, &lay) in lays.iter().enumerate() {
        let x = laid(xs, seed, false, lay);
        let w = laid(ws, seed + 1, false, lays[(j + 1) % lays.len()]);
        let ct = laid(&ys, seed + 2, false, lays[(j + 2) % lays.len()]);
        let what = format!("case {i}: x {xs:?}, w {ws:?}, {spec:?}, layouts from {lay:?}");
        check(dev, &format!("conv, {what}"), &[&x, &w], TOL, |t| {
            t[0].conv(&t[1], &spec)
        });
        check(
            dev,
            &format!("conv_transpose, {what}"),
            &[&ct, &w],
            TOL,
            |t| t[0].conv_transpose(&t[1], &spec, input),
        );
        check(
            dev,
            &format!("conv_weight_grad, {what}"),
            &[&x, &ct],
            TOL,
            |t| t[0].conv_weight_grad(&t[1], &spec, ws),
        );
    }
}

#[test]
fn conv_and_its_transposes_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (i, (xs, ws, spec)) in cases().into_iter().enumerate() {
        check_case(&dev, i, xs, ws, spec, &LAYS);
    }
}

#[test]
fn conv_windows_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (i, (xs, ws, spec)) in window_cases().into_iter().enumerate() {
        check_case(&dev, 100 + i, xs, ws, spec, &LAYS);
    }
}

/// Columns and blocks of over 65,535 workgroups of 256: the unfold's and the fold's
/// dispatches split over two dimensions.
#[test]
fn conv_of_a_long_signal_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    let (xs, ws, spec): (&[usize], &[usize], _) =
        (&[4, 4, 1_100_000], &[2, 4, 2], Conv::new(1).stride(2));
    // 4 x 4 rows of S = K * P = 1.1M: 17.6M elements each way, over 65,535 x 256
    check_case(&dev, 200, xs, ws, spec, &[Lay::Contiguous]);
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

#[test]
fn unfold_and_fold_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let cases: [(&[usize], &[usize], Conv); 4] = [
        (&[2, 3, 7, 6], &[2, 2], Conv::new(2).stride(2)),
        (&[3, 9], &[3], Conv::new(1).padding(2).dilation(2)),
        (&[2, 2, 5, 4, 3], &[2, 2, 2], Conv::new(3).same()),
        (&[4, 6, 6], &[3, 3], Conv::new(2).stride(2).same()),
    ];
    for (i, (xs, k, sp)) in cases.into_iter().enumerate() {
        let x = tensor(xs, 50 + i as u64, false);
        let what = format!("unfold, case {i}: {xs:?}, window {k:?}, {sp:?}");
        check(&dev, &what, &[&x], TOL, |t| t[0].unfold(k, &sp));
        let what = format!("pools, case {i}: {xs:?}, window {k:?}, {sp:?}");
        check(&dev, &what, &[&x], TOL, |t| {
            // (the max pool's padding reads -inf on both devices)
            t[0].max_pool(k, &sp) - t[0].avg_pool(k, &sp) * 0.5
        });
        let p = x.unfold(k, &sp);
        let c = tensor(p.shape(), 60 + i as u64, false);
        let input = &xs[xs.len() - k.len()..];
        let what = format!("fold, case {i}: {xs:?}, window {k:?}, {sp:?}");
        check(&dev, &what, &[&c], TOL, |t| t[0].fold(input, k, &sp));
    }
}
