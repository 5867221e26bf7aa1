//! Views, copies, gathers and joins.

use ferrax_runtime::prelude::*;

use crate::{LAYS, Lay, check, gpu, laid, tensor};

#[test]
fn views_and_reshapes_read_back_like_the_cpu() {
    let Some(dev) = gpu() else { return };
    for lay in LAYS {
        let x = laid(&[4, 3, 5], 1, true, lay);
        check(&dev, "to_vec", &[&x], 0.0, |t| t[0].clone());
        check(&dev, "contiguous", &[&x], 0.0, |t| t[0].contiguous());
        check(&dev, "reshape", &[&x], 0.0, |t| t[0].reshape(&[5, 12]));
        check(&dev, "flatten", &[&x], 0.0, |t| t[0].flatten());
        check(&dev, "permute", &[&x], 2e-6, |t| {
            t[0].permute(&[2, 0, 1]).exp()
        });
        check(&dev, "slice", &[&x], 0.0, |t| t[0].slice(1, 1, 3));
        check(&dev, "broadcast_to", &[&x], 0.0, |t| {
            t[0].slice(0, 0, 1).broadcast_to(&[2, 4, 3, 5])
        });
        check(&dev, "squeeze", &[&x], 0.0, |t| {
            t[0].slice(1, 2, 3).squeeze(1).unsqueeze(0)
        });
    }
    let x = tensor(&[3, 4], 2, false).to_device(&dev);
    let s = x.slice(0, 2, 3).slice(1, 3, 4);
    assert_eq!(
        s.item::<f32>(),
        tensor(&[3, 4], 2, false).to_vec::<f32>()[11]
    );
}

#[test]
fn index_select_gathers_like_the_cpu() {
    let Some(dev) = gpu() else { return };
    for lay in LAYS {
        let x = laid(&[4, 3, 5], 3, true, lay);
        let idx = Tensor::from_vec(vec![2i32, 0, 1, 1], &[2, 2]);
        let empty = Tensor::from_vec(Vec::<i32>::new(), &[0]);
        for axis in 0..3 {
            let i = idx.clone();
            check(
                &dev,
                &format!("index_select {axis} {lay:?}"),
                &[&x, &i],
                0.0,
                |t| t[0].index_select(axis, &t[1]),
            );
            check(&dev, "index_select empty", &[&x, &empty], 0.0, |t| {
                t[0].index_select(axis, &t[1])
            });
        }
        let xi = x.to_dtype(DType::I32);
        check(&dev, "index_select i32", &[&xi, &idx], 0.0, |t| {
            t[0].index_select(0, &t[1])
        });
    }
    let x = tensor(&[3, 2], 1, false).to_device(&dev);
    let bad = Tensor::from_vec(vec![0i32, 3], &[2]).to_device(&dev);
    let e = x.try_index_select(0, &bad).unwrap_err();
    assert!(
        matches!(
            e,
            Error::IndexOutOfRange {
                index: 3,
                size: 3,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn index_add_scatters_like_the_cpu() {
    let Some(dev) = gpu() else { return };
    for lay in LAYS {
        let x = laid(&[4, 3, 5], 5, false, lay);
        let idx = Tensor::from_vec(vec![2i32, 0, 2, 1], &[2, 2]);
        for axis in 0..3usize {
            let mut shape = vec![4, 3, 5];
            shape.splice(axis..=axis, [2, 2]);
            let src = laid(&shape, 6, false, lay);
            check(
                &dev,
                &format!("index_add {axis} {lay:?}"),
                &[&x, &idx, &src],
                1e-6,
                |t| t[0].index_add(axis as isize, &t[1], &t[2]),
            );
        }
    }
    let x = tensor(&[3, 2], 1, false).to_device(&dev);
    let bad = Tensor::from_vec(vec![0i32, 3], &[2]).to_device(&dev);
    let e = x.try_index_add(0, &bad, &x.slice(0, 0, 2)).unwrap_err();
    assert!(matches!(e, Error::IndexOutOfRange { index: 3, .. }), "{e}");
    // many rows into many segments (their one-hot matrix would be 2e10 elements): work in
    // proportion to the rows; sums of few values each, exact in f32
    let (rows, n) = (200_000usize, 100_000usize);
    let ids: Vec<i32> = (0..rows).map(|i| ((i * 7919) % n) as i32).collect();
    let idx = Tensor::from_vec(ids, &[rows]);
    let src = tensor(&[rows, 2], 7, false);
    check(&dev, "segment_sum of many rows", &[&src, &idx], 0.0, |t| {
        t[0].segment_sum(&t[1], n)
    });
}

#[test]
fn concat_and_stack_join_like_the_cpu() {
    let Some(dev) = gpu() else { return };
    let a = laid(&[2, 3], 1, true, crate::Lay::Transposed);
    let b = laid(&[2, 1], 2, true, crate::Lay::Contiguous);
    let c = laid(&[2, 0], 3, true, crate::Lay::Contiguous);
    let d = laid(&[2, 4], 4, true, crate::Lay::Sliced);
    check(&dev, "concat axis 1", &[&a, &b, &c, &d], 0.0, |t| {
        Tensor::concat(&[&t[0], &t[1], &t[2], &t[3]], 1)
    });
    check(&dev, "concat axis 0", &[&a], 2e-6, |t| {
        Tensor::concat(&[&t[0], &t[0].exp()], 0)
    });
    check(&dev, "stack", &[&a], 0.0, |t| {
        Tensor::stack(&[&t[0], &t[0].neg()], 1)
    });
    let m = a.gt(&Tensor::scalar(0.0f32));
    check(&dev, "concat bool", &[&m], 0.0, |t| {
        Tensor::concat(&[&t[0], &t[0]], -1)
    });
}

#[test]
fn one_hot_and_argmax_round_trip() {
    let Some(dev) = gpu() else { return };
    let labels = Tensor::from_vec(vec![2i32, 0, 1, 2, 4], &[5]);
    for dt in [DType::F32, DType::I32, DType::Bool] {
        check(&dev, &format!("one_hot {dt}"), &[&labels], 0.0, |t| {
            t[0].one_hot(5, dt)
        });
    }
    let g = labels.to_device(&dev);
    assert_eq!(
        g.one_hot(5, DType::F32)
            .argmax_axis(1, false)
            .to_vec::<i32>(),
        labels.to_vec::<i32>()
    );
    let e = g.try_one_hot(4, DType::F32).unwrap_err();
    assert!(matches!(e, Error::IndexOutOfRange { index: 4, .. }), "{e}");
}

#[test]
fn roll_and_pad_like_the_cpu() {
    let Some(dev) = gpu() else { return };
    for lay in LAYS {
        let x = laid(&[3, 4, 5], 7, false, lay);
        check(&dev, &format!("roll, {lay:?}"), &[&x], 0.0, |t| {
            t[0].roll(2, 1) + t[0].roll(-1, -1)
        });
        check(&dev, &format!("pad, {lay:?}"), &[&x], 0.0, |t| {
            t[0].pad(&[(1, 0), (0, 2), (1, 1)])
                .unpad(&[(0, 1), (1, 0), (0, 0)])
        });
        for mode in [
            PadMode::Edge,
            PadMode::Reflect,
            PadMode::Symmetric,
            PadMode::Wrap,
        ] {
            let pads = [(2, 1), (0, 3), (1, 4)];
            check(
                &dev,
                &format!("pad_with {mode:?}, {lay:?}"),
                &[&x],
                1e-5,
                |t| {
                    let p = t[0].pad_with(&pads, mode);
                    // and back: the transpose of the padded tensor's square
                    (&p * &p).pad_with_transpose(&pads, mode)
                },
            );
        }
    }
}

#[test]
fn sorting_gathers_and_scatters_like_the_cpu() {
    let Some(dev) = gpu() else { return };
    for lay in LAYS {
        // ties, zeros of both signs, infinities and NaN among the values
        let x = laid(&[3, 6, 4], 21, true, lay);
        for axis in [0isize, 1, -1] {
            check(&dev, &format!("sort {axis}, {lay:?}"), &[&x], 0.0, |t| {
                t[0].sort(axis)
            });
            check(&dev, &format!("argsort {axis}, {lay:?}"), &[&x], 0.0, |t| {
                t[0].argsort(axis)
            });
        }
        check(&dev, &format!("top_k, {lay:?}"), &[&x], 0.0, |t| {
            t[0].top_k(3)
        });
        check(&dev, &format!("top_k_indices, {lay:?}"), &[&x], 0.0, |t| {
            t[0].top_k_indices(4)
        });
        // a gather at another tensor's order, and its transpose, with repeated indices
        let picks: Vec<i32> = (0..108).map(|i| (i * 7 + i / 5) % 6).collect();
        let idx = Tensor::from_vec(picks, &[3, 9, 4]);
        let src = laid(&[3, 9, 4], 23, false, lay);
        // (of integers too: indices gathered from a table of indices)
        let xi = x.to_dtype(DType::I32);
        check(
            &dev,
            &format!("take_along_axis of i32, {lay:?}"),
            &[&xi, &idx],
            0.0,
            |t| t[0].take_along_axis(1, &t[1]),
        );
        check(
            &dev,
            &format!("take_along_axis, {lay:?}"),
            &[&x, &idx],
            0.0,
            |t| t[0].take_along_axis(1, &t[1]),
        );
        check(
            &dev,
            &format!("scatter_add, {lay:?}"),
            &[&x, &idx, &src],
            1e-6,
            |t| t[0].scatter_add(1, &t[1], &t[2]),
        );
        // indices out of range (6 and past, negative): the fill, and dropped values
        let far: Vec<i32> = (0..108).map(|i| (i * 5 + i / 3) % 9 - 1).collect();
        let far = Tensor::from_vec(far, &[3, 9, 4]);
        check(
            &dev,
            &format!("take_along_axis_or, {lay:?}"),
            &[&x, &far],
            0.0,
            |t| t[0].take_along_axis_or(1, &t[1], -2.5),
        );
        check(
            &dev,
            &format!("scatter_add_dropping, {lay:?}"),
            &[&x, &far, &src],
            1e-6,
            |t| t[0].scatter_add_dropping(1, &t[1], &t[2]),
        );
    }
    // a gather from no rows (a graph without edges: every segment empty) reads the fill
    let none = Tensor::zeros(&[0, 3], DType::F32);
    let past = Tensor::from_vec(vec![0i32; 6], &[2, 3]);
    check(
        &dev,
        "take_along_axis_or of no rows",
        &[&none, &past],
        0.0,
        |t| t[0].take_along_axis_or(0, &t[1], f64::NEG_INFINITY),
    );
    let ids = Tensor::from_vec(Vec::<i32>::new(), &[0]);
    check(&dev, "segment_max of no rows", &[&none, &ids], 0.0, |t| {
        t[0].segment_max(&t[1], 2)
    });
}

#[test]
fn segment_sums_and_extrema_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let ids: Vec<i32> = (0..300).map(|i| (i * 7 + i / 11) % 13).collect();
    for lay in LAYS {
        let x = laid(&[300, 5], 41, false, lay);
        let idx = Tensor::from_vec(ids.clone(), &[300]);
        check(
            &dev,
            &format!("segment_sum, {lay:?}"),
            &[&x, &idx],
            1e-5,
            |t| t[0].segment_sum(&t[1], 16),
        );
        let x = laid(&[4, 75, 3], 42, false, lay);
        let idx = Tensor::from_vec(ids.clone(), &[4, 75]);
        check(
            &dev,
            &format!("segment_sum over two axes, {lay:?}"),
            &[&x, &idx],
            1e-5,
            |t| t[0].segment_sum(&t[1], 13),
        );
        // extrema (segments 13 to 15 empty: -inf, +inf) and their positions
        let x = laid(&[300, 5], 43, true, lay);
        let idx = Tensor::from_vec(ids.clone(), &[300]);
        for (what, largest) in [("segment_max", true), ("segment_min", false)] {
            check(&dev, &format!("{what}, {lay:?}"), &[&x, &idx], 0.0, |t| {
                if largest {
                    t[0].segment_max(&t[1], 16)
                } else {
                    t[0].segment_min(&t[1], 16)
                }
            });
        }
        check(
            &dev,
            &format!("segment_argmax, {lay:?}"),
            &[&x, &idx],
            0.0,
            |t| t[0].segment_argmax(&t[1], 16),
        );
        check(
            &dev,
            &format!("segment_argmin, {lay:?}"),
            &[&x, &idx],
            0.0,
            |t| t[0].segment_argmin(&t[1], 16),
        );
    }
    // many rows a segment (threads of many workgroups meeting at each), the values few
    // (ties: the first row wins), NaN in some segments, ids not sorted; segment 51 holds
    // only -0 and 0 (equal: its first row wins), 52 nothing
    let rows = 70_000;
    let row_of = |i: usize| match i % 1009 {
        0 => (51, [-0.0, 0.0, -0.0]),
        1 => (51, [0.0, -0.0, 0.0]),
        r => {
            let v = if r == 2 && i.is_multiple_of(7) {
                f32::NAN
            } else {
                (r % 5) as f32 - 2.0
            };
            (((i * 7919) % 50) as i32, [v, (r % 3) as f32, -v])
        }
    };
    let (ids, vals): (Vec<i32>, Vec<[f32; 3]>) = (0..rows).map(row_of).unzip();
    let x = Tensor::from_vec(vals.concat(), &[rows, 3]);
    let idx = Tensor::from_vec(ids, &[rows]);
    for largest in [true, false] {
        check(
            &dev,
            &format!("segment_arg of many rows, largest {largest}"),
            &[&x, &idx],
            0.0,
            |t| {
                if largest {
                    t[0].segment_argmax(&t[1], 53)
                } else {
                    t[0].segment_argmin(&t[1], 53)
                }
            },
        );
    }
}

#[test]
fn long_lanes_and_many_lanes_sort_like_the_cpu() {
    let Some(dev) = gpu() else { return };
    // a full workgroup (1024), a padded one (1000), lanes sorted in global memory (1025,
    // 1500 padded to 2048, 4096 exactly, 70,000 with `inner` 1 and 3), and more lanes than
    // one dispatch dimension holds (66,000 of two)
    for (shape, axis) in [
        (vec![2, 1024], -1isize),
        (vec![1000, 3], 0),
        (vec![3, 1025], 1),
        (vec![2, 1500], 1),
        (vec![4096, 2], 0),
        (vec![70_000], 0),
        (vec![2, 70_000, 3], 1),
        (vec![66_000, 2], 1),
    ] {
        let x = laid(&shape, 31, true, Lay::Contiguous);
        check(&dev, &format!("argsort {shape:?}"), &[&x], 0.0, |t| {
            t[0].argsort(axis)
        });
    }
    let x = laid(&[3, 1000], 32, true, Lay::Transposed);
    check(&dev, "top_k of 1000", &[&x], 0.0, |t| {
        t[0].top_k_indices(17)
    });
    // descending and partial in global memory, ties among many equal values, a view
    let x = laid(&[3, 5000], 34, true, Lay::Transposed);
    check(&dev, "top_k of 5000", &[&x], 0.0, |t| {
        t[0].top_k_indices(300)
    });
    check(&dev, "sort of 5000", &[&x], 0.0, |t| t[0].sort(1));
    let ties = Tensor::from_vec(
        (0..6000).map(|i| (i % 7) as f32 - 3.0).collect(),
        &[2, 3000],
    );
    check(&dev, "argsort of ties", &[&ties], 0.0, |t| t[0].argsort(1));
    check(&dev, "top_k of ties", &[&ties], 0.0, |t| {
        t[0].top_k_indices(2000)
    });
    // no lanes, empty lanes, no indices asked for
    let empty = laid(&[0, 4], 33, false, Lay::Contiguous);
    check(&dev, "argsort of no lanes", &[&empty], 0.0, |t| {
        t[0].argsort(1)
    });
    let hollow = laid(&[3, 0], 34, false, Lay::Contiguous);
    check(&dev, "argsort of empty lanes", &[&hollow], 0.0, |t| {
        t[0].argsort(1)
    });
    check(&dev, "top_k of none", &[&x], 0.0, |t| t[0].top_k_indices(0));
}
