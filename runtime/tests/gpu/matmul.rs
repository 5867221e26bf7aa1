//! Matrix products: 2-D, vectors, batched with broadcast batch axes, strided operands.

use ferrax_runtime::prelude::*;

use crate::{assert_matches, check, gpu, tensor};

#[test]
fn matmul_matches_the_cpu_on_every_form() {
    let Some(dev) = gpu() else { return };
    let cases: &[(&[usize], &[usize])] = &[
        (&[2, 3], &[3, 4]),
        (&[1, 1], &[1, 1]),
        (&[3], &[3]),
        (&[3], &[3, 5]),
        (&[4, 3], &[3]),
        (&[5, 2, 3], &[3, 4]),
        (&[2, 1, 4, 3], &[3, 3, 2]),
        (&[65, 70], &[70, 129]),
        (&[0, 3], &[3, 4]),
        (&[2, 0], &[0, 3]),
        (&[3, 4], &[4, 0]),
        (&[2, 2, 17, 9], &[1, 9, 33]),
    ];
    for (i, (sa, sb)) in cases.iter().enumerate() {
        let a = tensor(sa, i as u64, false);
        let b = tensor(sb, 50 + i as u64, false);
        check(
            &dev,
            &format!("matmul {sa:?} {sb:?}"),
            &[&a, &b],
            1e-5,
            |t| t[0].matmul(&t[1]),
        );
    }
}

#[test]
fn matmul_reads_transposed_sliced_and_broadcast_operands() {
    let Some(dev) = gpu() else { return };
    let a = tensor(&[70, 40], 1, false);
    let b = tensor(&[70, 90], 2, false);
    check(&dev, "a.T @ b", &[&a, &b], 1e-5, |t| t[0].t().matmul(&t[1]));
    check(&dev, "b.T @ a", &[&a, &b], 1e-5, |t| t[1].t().matmul(&t[0]));
    check(&dev, "a.T @ a.T.T", &[&a], 1e-5, |t| t[0].t().matmul(&t[0]));
    check(&dev, "sliced", &[&a, &b], 1e-5, |t| {
        t[0].slice(1, 3, 33)
            .t()
            .matmul(&t[1].slice_step(1, 1, 90, 3))
    });
    let batch = tensor(&[3, 40, 5], 3, false);
    check(&dev, "broadcast batch", &[&a, &batch], 1e-5, |t| {
        t[0].broadcast_to(&[3, 70, 40]).matmul(&t[1])
    });
    check(&dev, "transposed batch", &[&batch], 1e-5, |t| {
        t[0].transpose(1, 2).matmul(&t[0])
    });
}

#[test]
fn large_matmul_uses_the_large_tiles() {
    let Some(dev) = gpu() else { return };
    let a = tensor(&[2050, 70], 7, false);
    let b = tensor(&[70, 2049], 8, false);
    check(&dev, "2050x70 @ 70x2049", &[&a, &b], 1e-5, |t| {
        t[0].matmul(&t[1])
    });
}

#[test]
fn matmul_checks_shapes_and_devices_before_dispatch() {
    let Some(dev) = gpu() else { return };
    let a = Tensor::ones(&[2, 3], DType::F32).to_device(&dev);
    let b = Tensor::ones(&[4, 2], DType::F32).to_device(&dev);
    let e = a.try_matmul(&b).unwrap_err().to_string();
    assert!(
        e.contains("matmul") && e.contains("[2, 3]") && e.contains("[4, 2]"),
        "{e}"
    );
    let cpu = Tensor::ones(&[3, 2], DType::F32);
    assert!(matches!(
        a.try_matmul(&cpu),
        Err(Error::DeviceMismatch { .. })
    ));
}

#[test]
fn row_major_operands_in_multiples_of_four_take_vec4_loads() {
    let Some(dev) = gpu() else { return };
    let cases: &[(&[usize], &[usize])] = &[
        (&[65, 72], &[72, 132]),
        (&[2, 3, 20, 8], &[8, 12]),
        (&[3, 4], &[4, 4]),
        (&[1028, 64], &[64, 1032]),
    ];
    for (i, (sa, sb)) in cases.iter().enumerate() {
        let a = tensor(sa, 70 + i as u64, false);
        let b = tensor(sb, 80 + i as u64, false);
        check(&dev, &format!("vec4 {sa:?} {sb:?}"), &[&a, &b], 1e-5, |t| {
            t[0].matmul(&t[1])
        });
    }
    // a slice starting off a multiple of four falls back to scalar loads
    let a = tensor(&[9, 8], 1, false);
    let b = tensor(&[8, 12], 2, false);
    check(&dev, "offset slice", &[&a, &b], 1e-5, |t| {
        t[0].slice(0, 1, 9).matmul(&t[1])
    });
    check(&dev, "column slice", &[&a, &b], 1e-5, |t| {
        t[0].matmul(&t[1].slice(1, 4, 12))
    });
}

/// Transposed operands (as in a dense layer's backward pass: `x^T @ g`, `g @ w^T`) in
/// multiples of four are read in quads along their contiguous axis: column-major A along
/// m, column-major B along k; with partial tiles, batches, and the large tiles.
#[test]
fn transposed_operands_in_multiples_of_four_take_vec4_loads() {
    let Some(dev) = gpu() else { return };
    let a = tensor(&[72, 68], 90, false);
    let a2 = tensor(&[68, 72], 91, false);
    let b = tensor(&[72, 132], 92, false);
    let bt = tensor(&[132, 72], 93, false);
    check(&dev, "a.T @ b", &[&a, &b], 1e-5, |t| t[0].t().matmul(&t[1]));
    check(&dev, "a @ b.T", &[&a2, &bt], 1e-5, |t| {
        t[0].matmul(&t[1].t())
    });
    check(&dev, "a.T @ b.T", &[&a, &bt], 1e-5, |t| {
        t[0].t().matmul(&t[1].t())
    });
    let batch = tensor(&[3, 40, 8], 94, false);
    check(&dev, "transposed batch", &[&batch], 1e-5, |t| {
        t[0].transpose(1, 2).matmul(&t[0])
    });
    check(&dev, "batch @ transposed batch", &[&batch], 1e-5, |t| {
        t[0].matmul(&t[0].transpose(1, 2))
    });
    // a transposed operand broadcast over the batch (batch stride 0)
    let rhs = tensor(&[3, 72, 8], 97, false);
    check(
        &dev,
        "broadcast transposed @ batch",
        &[&a, &rhs],
        1e-5,
        |t| t[0].t().broadcast_to(&[3, 68, 72]).matmul(&t[1]),
    );
    check(
        &dev,
        "batch @ broadcast transposed",
        &[&rhs, &a2],
        1e-5,
        |t| {
            t[0].transpose(1, 2)
                .matmul(&t[1].t().broadcast_to(&[3, 72, 68]))
        },
    );
    let big_a = tensor(&[64, 2052], 95, false);
    let big_b = tensor(&[2056, 64], 96, false);
    check(
        &dev,
        "large, both transposed",
        &[&big_a, &big_b],
        1e-5,
        |t| t[0].t().matmul(&t[1].t()),
    );
}

/// A product too small to fill the GPU is split along K and left as the pending sum of
/// its partial products: every kind of kernel that reads it adds them, through any view.
#[test]
fn products_split_along_k_are_summed_by_every_reader() {
    let Some(dev) = gpu() else { return };
    // 16 x 24 outputs in one workgroup, K = 512: four slices unless FERRAX_GPU_SPLIT_K
    // says otherwise; batched, and with a column-major right operand
    let x = tensor(&[16, 512], 70, false);
    let w = tensor(&[512, 24], 71, false);
    let bias = tensor(&[24], 72, false);
    let batch = tensor(&[3, 16, 512], 73, false);
    let wt = tensor(&[24, 512], 74, false);
    let row = tensor(&[1, 512], 75, false); // one output row: a size-1 axis to read along
    type Reader = fn(&Tensor, &Tensor) -> Tensor;
    let readers: &[(&str, Reader)] = &[
        ("itself", |p, _| p.clone()),
        ("bias and tanh", |p, b| (p + b).tanh()),
        ("its transpose", |p, _| p.transpose(-1, -2).contiguous()),
        ("a column of it", |p, _| p.slice(-1, 3, 4) * 2.0),
        ("sum", |p, _| p.sum()),
        ("sum along rows", |p, _| p.sum_axis(-2, false)),
        ("sum along columns", |p, _| p.sum_axis(-1, true)),
        ("max", |p, _| p.max_axis(-2, false)),
        ("argmax", |p, _| {
            p.argmax_axis(-1, false).to_dtype(DType::F32)
        }),
        ("softmax along rows", |p, _| p.softmax(-2)),
        ("log_softmax along columns", |p, _| p.log_softmax(-1)),
        ("another product", |p, _| p.transpose(-1, -2).matmul(p)),
    ];
    // the forms of the product, over the inputs x, batch or row, w or wt
    type Product = fn(&[Tensor]) -> Tensor;
    let forms: &[(&str, &Tensor, &Tensor, Product)] = &[
        ("x @ w", &x, &w, |t| t[0].matmul(&t[1])),
        ("batch @ w", &batch, &w, |t| t[0].matmul(&t[1])),
        ("x @ wt^T", &x, &wt, |t| t[0].matmul(&t[1].t())),
        ("row @ w", &row, &w, |t| t[0].matmul(&t[1])),
    ];
    for (name, read) in readers {
        for &(form, a, b, product) in forms {
            check(
                &dev,
                &format!("{form}, {name}"),
                &[a, b, &bias],
                1e-4,
                |t| read(&product(t), &t[2]),
            );
        }
    }
}

/// `add_outer_assign` and `add_matmul_assign` on GPU tensors (through a product and an add
/// there) equal the CPU's in-place accumulation, and stay on the GPU.
#[test]
fn accumulating_products_on_the_gpu_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let (a, b) = (tensor(&[4, 3], 1, false), tensor(&[4, 5], 2, false));
    let start = tensor(&[4, 3, 5], 3, false);
    let mut cpu = &start * 1.0;
    cpu.add_outer_assign(&a, &b);
    let mut on = start.to_device(&dev);
    on.add_outer_assign(&a.to_device(&dev), &b.to_device(&dev));
    assert_eq!(on.device(), dev);
    assert_matches("add_outer_assign", &on, &cpu, 1e-5);

    let (h, ct) = (tensor(&[6, 3], 4, false), tensor(&[6, 5], 5, false));
    let start = tensor(&[3, 5], 6, false);
    let mut cpu = &start * 1.0;
    cpu.add_matmul_assign(&h.t(), &ct);
    let mut on = start.to_device(&dev);
    on.add_matmul_assign(&h.to_device(&dev).t(), &ct.to_device(&dev));
    assert_eq!(on.device(), dev);
    assert_matches("add_matmul_assign", &on, &cpu, 1e-5);
}
