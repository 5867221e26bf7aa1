//! Matrix products: 2-D, matrix-vector, vector-vector and batched N-D with broadcast batch
//! axes, on contiguous and strided (transposed, sliced, broadcast) operands.

use ferrax_runtime::prelude::*;
use proptest::prelude::*;

use crate::reference::{self as r, Arr};
use crate::{Input, check, config, dtype, finite_value, input};

/// Operand shapes `(a, b)` that `matmul` accepts, covering 1-D operands and batch
/// broadcasting.
fn matmul_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    let batch = prop::collection::vec((1..=3usize, any::<bool>(), any::<bool>()), 0..=2);
    (
        0..=5usize,
        0..=5usize,
        0..=5usize,
        batch,
        0..4usize,
        0..=2usize,
    )
        .prop_map(|(m, k, n, batch, kind, drop)| {
            let ba: Vec<usize> = batch
                .iter()
                .map(|&(d, one_a, _)| if one_a { 1 } else { d })
                .collect();
            let bb: Vec<usize> = batch
                .iter()
                .map(|&(d, _, one_b)| if one_b { 1 } else { d })
                .collect();
            // drop leading batch axes from one side to mismatch ranks
            let bb = bb[bb.len().min(drop)..].to_vec();
            match kind {
                0 => ([ba, vec![m, k]].concat(), [bb, vec![k, n]].concat()),
                1 => (vec![k], [bb, vec![k, n]].concat()),
                2 => ([ba, vec![m, k]].concat(), vec![k]),
                _ => (vec![k], vec![k]),
            }
        })
}

fn operands() -> impl Strategy<Value = (Input, Input)> {
    matmul_shapes().prop_flat_map(|(a, b)| {
        (
            input(a, finite_value().boxed()),
            input(b, finite_value().boxed()),
        )
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matmul_matches_numpy_semantics((a, b) in operands(), dt in dtype()) {
        let want = r::matmul(&a.arr_in(dt), &b.arr_in(dt));
        let got = a.tensor(dt).matmul(&b.tensor(dt));
        check(&got, &want, 1e-12, &format!("matmul {dt}: {a:?} @ {b:?}"));
    }
}

#[test]
fn matmul_of_larger_strided_operands() {
    // sizes past the GEMM kernel's blocking, with transposed and sliced views
    let (m, k, n) = (67, 130, 45);
    let a = Arr::from_fn(&[m, k], |i| ((i[0] * 7 + i[1] * 3) % 11) as f64 / 4.0 - 1.0);
    let b = Arr::from_fn(&[k, n], |i| ((i[0] * 5 + i[1] * 2) % 13) as f64 / 4.0 - 1.5);
    let want = r::matmul(&a, &b);
    for dt in [DType::F32, DType::F64] {
        for (la, lb) in [
            (crate::Lay::Contiguous, crate::Lay::Transposed),
            (crate::Lay::Transposed, crate::Lay::Sliced),
            (crate::Lay::Stepped, crate::Lay::Contiguous),
        ] {
            let got = crate::laid_out(&a, la, dt).matmul(&crate::laid_out(&b, lb, dt));
            check(&got, &want, 1e-6, &format!("matmul {dt} {la:?} @ {lb:?}"));
        }
    }
}

#[test]
fn batched_matmul_broadcasts_a_shared_matrix() {
    let w = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    let x = Tensor::arange(0.0, 24.0, 1.0, DType::F64).reshape(&[4, 2, 3]);
    let y = x.matmul(&w);
    assert_eq!(y.shape(), &[4, 2, 2]);
    for b in 0..4 {
        let xb = x.slice(0, b, b + 1).squeeze(0);
        assert_eq!(
            y.slice(0, b, b + 1).squeeze(0).to_vec::<f64>(),
            xb.matmul(&w).to_vec::<f64>()
        );
    }
    // a broadcast (stride-0) operand is not copied but still correct
    let wb = w.broadcast_to(&[4, 3, 2]);
    assert_eq!(x.matmul(&wb).to_vec::<f64>(), y.to_vec::<f64>());
}

#[test]
fn batches_of_rows_times_a_shared_matrix_match_a_loop() {
    // batch and row axes that run on as one matrix (computed as one product) and views
    // where they do not: permuted batches, sliced rows, transposed matrices, a broadcast
    // batch, size-1 axes; small and past the kernel's own threading
    let per_batch = |x: &Tensor, w: &Tensor| {
        let (b, m, k) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let rows: Vec<Tensor> = (0..b)
            .map(|i| x.slice(0, i, i + 1).reshape(&[m, k]).matmul(w))
            .collect();
        Tensor::stack(&rows, 0)
    };
    for (b, m, k, n) in [(4usize, 3usize, 5usize, 2usize), (8, 128, 64, 64)] {
        for dt in [DType::F32, DType::F64] {
            let w = Tensor::normal(Key::new(5), &[k, n], dt);
            let x = Tensor::normal(Key::new(6), &[b, m, k], dt);
            let wide = Tensor::normal(Key::new(7), &[b, m + 2, k], dt);
            let views = [
                ("contiguous", x.clone()),
                (
                    "permuted batches",
                    x.reshape(&[b / 2, 2, m, k])
                        .permute(&[1, 0, 2, 3])
                        .reshape(&[b, m, k]),
                ),
                ("sliced rows", wide.slice(1, 1, m + 1)),
                ("transposed matrices", x.reshape(&[b, k, m]).transpose(1, 2)),
                (
                    "a broadcast batch",
                    x.slice(0, 0, 1).broadcast_to(&[b, m, k]),
                ),
                (
                    "every other batch",
                    Tensor::concat(&[&x, &x], 0).slice_step(0, 0, 2 * b, 2),
                ),
            ];
            let tol = if dt == DType::F32 { 1e-4 } else { 1e-12 };
            for (what, v) in views {
                let (got, want) = (v.matmul(&w), per_batch(&v, &w));
                let diff = (&got - &want)
                    .abs()
                    .max()
                    .to_dtype(DType::F64)
                    .item::<f64>();
                assert!(
                    diff < tol,
                    "{what} {dt:?} [{b}, {m}, {k}] @ [{k}, {n}]: {diff}"
                );
            }
            // two batch axes, one of them of size 1
            let x4 = x.reshape(&[b, 1, m, k]);
            let got = x4.matmul(&w).reshape(&[b, m, n]);
            let diff = (&got - &per_batch(&x, &w))
                .abs()
                .max()
                .to_dtype(DType::F64)
                .item::<f64>();
            assert!(diff < tol, "[{b}, 1, {m}, {k}]: {diff}");
        }
    }
}

#[test]
fn batches_of_large_products_match_a_loop_on_any_number_of_threads() {
    // products past the kernel's own split (2^21 multiply-adds): run side by side, one
    // per thread, or each split over the threads where the batch does not share out
    // evenly (3 products on 2 threads); row-major and transposed right operands (the
    // latter copied to rows band by band)
    let (m, k, n) = (96, 160, 144);
    let in_pool = |threads: usize, f: &(dyn Fn() -> Tensor + Sync)| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool")
            .install(f)
    };
    for b in [2usize, 3, 8] {
        let x = Tensor::normal(Key::new(8), &[b, m, k], DType::F32);
        let w = Tensor::normal(Key::new(9), &[b, k, n], DType::F32);
        let wt = Tensor::normal(Key::new(9), &[b, n, k], DType::F32).transpose(1, 2);
        for (what, w) in [("row-major", &w), ("transposed", &wt)] {
            let want: Vec<Tensor> = (0..b)
                .map(|i| {
                    let wi = w.slice(0, i, i + 1).reshape(&[k, n]);
                    x.slice(0, i, i + 1).reshape(&[m, k]).matmul(&wi)
                })
                .collect();
            let want = Tensor::stack(&want, 0);
            for threads in [1, 2, 3] {
                let got = in_pool(threads, &|| x.matmul(w));
                let diff = (&got - &want).abs().max().item::<f32>();
                assert!(diff < 1e-3, "{what} batch {b} on {threads} threads: {diff}");
            }
        }
    }
}

#[test]
fn matmul_with_empty_contraction_is_zero() {
    let a = Tensor::zeros(&[2, 0], DType::F32);
    let b = Tensor::zeros(&[0, 3], DType::F32);
    assert_eq!(a.matmul(&b).to_vec::<f32>(), vec![0.0; 6]);
    assert_eq!(
        Tensor::zeros(&[0], DType::F64)
            .matmul(&Tensor::zeros(&[0], DType::F64))
            .item::<f64>(),
        0.0
    );
}

/// `add_outer_assign` equals adding `a[.., :, None] @ b[.., None, :]`, in place when the
/// target holds its buffer alone and through a new buffer when it shares it (the other
/// holder unchanged); a misfit is an error naming the operation and leaves the target.
#[test]
fn add_outer_assign_adds_outer_products_in_place_or_not() {
    let key = Key::new(9);
    for (lead, m, n) in [
        (vec![], 3, 4),
        (vec![5], 2, 3),
        (vec![2, 3], 4, 1),
        (vec![], 1, 1),
        (vec![], 0, 3),
        (vec![0], 2, 3),
        (vec![4], 3, 0),
    ] {
        let shape = |tail: &[usize]| [lead.as_slice(), tail].concat();
        let a = Tensor::normal(key.fold_in(1), &shape(&[m]), DType::F64);
        let b = Tensor::normal(key.fold_in(2), &shape(&[n]), DType::F64);
        let start = Tensor::normal(key.fold_in(3), &shape(&[m, n]), DType::F64);
        let want = &start + &a.unsqueeze(-1).matmul(&b.unsqueeze(-2));
        let mut alone = &start * 1.0;
        alone.add_outer_assign(&a, &b);
        let mut shared = start.clone();
        shared.add_outer_assign(&a, &b);
        for (got, what) in [(&alone, "in place"), (&shared, "shared")] {
            for (g, w) in got.to_vec::<f64>().iter().zip(want.to_vec::<f64>()) {
                assert!(
                    (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                    "{what}: {g} vs {w}"
                );
            }
        }
        assert_eq!(
            start.to_vec::<f64>(),
            (&start * 1.0).to_vec::<f64>(),
            "the other holder of a shared buffer is unchanged"
        );
    }
    let mut g = Tensor::zeros(&[2, 3], DType::F64);
    let e = g
        .try_add_outer_assign(
            &Tensor::ones(&[3], DType::F64),
            &Tensor::ones(&[3], DType::F64),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("add_outer_assign") && e.contains("[2, 3]"),
        "{e}"
    );
    assert_eq!(g.to_vec::<f64>(), vec![0.0; 6]);
}

/// `add_matmul_assign` equals adding `a @ b` (with `a` a transposed view, as in a weight's
/// gradient `hᵀ ct`), in place or through a new buffer when the target shares its own; a
/// misfit is an error naming the operation and leaves the target.
#[test]
fn add_matmul_assign_adds_a_product_in_place_or_not() {
    let key = Key::new(11);
    for (m, k, n) in [
        (3, 4, 5),
        (64, 32, 64),
        (1, 7, 1),
        (3, 0, 2),
        (0, 4, 3),
        (2, 5, 0),
    ] {
        let h = Tensor::normal(key.fold_in(1), &[k, m], DType::F64);
        let ct = Tensor::normal(key.fold_in(2), &[k, n], DType::F64);
        let start = Tensor::normal(key.fold_in(3), &[m, n], DType::F64);
        let want = &start + &h.t().matmul(&ct);
        let mut alone = &start * 1.0;
        alone.add_matmul_assign(&h.t(), &ct);
        let mut shared = start.clone();
        shared.add_matmul_assign(&h.t(), &ct);
        for (got, what) in [(&alone, "in place"), (&shared, "shared")] {
            for (g, w) in got.to_vec::<f64>().iter().zip(want.to_vec::<f64>()) {
                assert!(
                    (g - w).abs() <= 1e-12 * (1.0 + w.abs()) * k as f64,
                    "{what}: {g} vs {w}"
                );
            }
        }
        assert_eq!(start.to_vec::<f64>(), (&start * 1.0).to_vec::<f64>());
    }
    let mut g = Tensor::zeros(&[2, 3], DType::F64);
    let e = g
        .try_add_matmul_assign(
            &Tensor::ones(&[2, 4], DType::F64),
            &Tensor::ones(&[4, 2], DType::F64),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("add_matmul_assign") && e.contains("[2, 3]"),
        "{e}"
    );
    assert_eq!(g.to_vec::<f64>(), vec![0.0; 6]);
}
