//! Reductions (all elements and along an axis), argmax, logsumexp, softmax, log-softmax
//! and one-hot.

use ferrax_runtime::prelude::*;
use proptest::prelude::*;

use crate::reference::{self as r, Arr};
use crate::{Input, check, config, dtype, input, value};

fn sum(v: &[f64]) -> f64 {
    v.iter().sum()
}

fn mean(v: &[f64]) -> f64 {
    sum(v) / v.len() as f64
}

/// An input with at least one axis and an axis index into it (possibly negative).
fn input_and_axis() -> impl Strategy<Value = (Input, usize, isize)> {
    crate::varied_shape()
        .prop_filter("needs an axis", |s| !s.is_empty())
        .prop_flat_map(|s| {
            let n = s.len();
            (input(s, value().boxed()), 0..n, any::<bool>()).prop_map(move |(x, ax, neg)| {
                (
                    x,
                    ax,
                    if neg {
                        ax as isize - n as isize
                    } else {
                        ax as isize
                    },
                )
            })
        })
}

type AxisCase = (
    &'static str,
    fn(&Tensor, isize, bool) -> Tensor,
    fn(&[f64]) -> f64,
);

const AXIS_REDUCTIONS: &[AxisCase] = &[
    ("sum_axis", |t, a, k| t.sum_axis(a, k), sum),
    ("mean_axis", |t, a, k| t.mean_axis(a, k), mean),
    ("max_axis", |t, a, k| t.max_axis(a, k), r::nan_max),
    ("min_axis", |t, a, k| t.min_axis(a, k), r::nan_min),
    (
        "logsumexp_axis",
        |t, a, k| t.logsumexp_axis(a, k),
        r::logsumexp,
    ),
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn full_reductions_match_reference(x in crate::varied_input(), dt in dtype()) {
        let want = x.arr_in(dt);
        let t = x.tensor(dt);
        let tol = crate::tol(dt);
        let cases: [(&str, Tensor, f64); 4] = [
            ("sum", t.sum(), sum(&want.data)),
            ("mean", t.mean(), mean(&want.data)),
            ("max", t.max(), r::nan_max(&want.data)),
            ("min", t.min(), r::nan_min(&want.data)),
        ];
        for (name, got, w) in cases {
            prop_assert_eq!(got.shape(), &[] as &[usize]);
            check(&got, &Arr::new(&[], vec![w]), tol, &format!("{name} {dt} of {x:?}"));
        }
    }

    #[test]
    fn axis_reductions_match_reference((x, ax, axis) in input_and_axis(), dt in dtype(), keepdim in any::<bool>()) {
        let want = x.arr_in(dt);
        let t = x.tensor(dt);
        for (name, op, f) in AXIS_REDUCTIONS {
            check(&op(&t, axis, keepdim), &want.reduce(ax, keepdim, f), crate::tol(dt), &format!("{name}({axis}, {keepdim}) {dt} of {x:?}"));
        }
        if want.shape[ax] > 0 {
            let got = t.argmax_axis(axis, keepdim);
            prop_assert_eq!(got.dtype(), DType::I32);
            check(&got, &want.reduce(ax, keepdim, r::argmax), 0.0, &format!("argmax_axis {dt} of {x:?}"));
        }
    }

    #[test]
    fn softmax_family_matches_reference((x, ax, axis) in input_and_axis(), dt in dtype()) {
        let want = x.arr_in(dt);
        let t = x.tensor(dt);
        let n = want.shape[ax];
        check(&t.softmax(axis), &want.lanes(ax, n, r::softmax), crate::tol(dt), &format!("softmax {dt} of {x:?}"));
        check(&t.log_softmax(axis), &want.lanes(ax, n, r::log_softmax), crate::tol(dt), &format!("log_softmax {dt} of {x:?}"));
    }

    #[test]
    fn sum_to_shape_undoes_broadcasting((small, big) in crate::broadcast_pair(), dt in dtype(), seed in 0u32..100) {
        // `small` broadcasts to `out`, the broadcast of both: sum `out`-shaped values back
        let out = r::broadcast(&small, &big).unwrap();
        let x = Arr::from_fn(&out, |i| ((i.iter().sum::<usize>() as u32 * 7 + seed) % 9) as f64 - 4.0);
        let lead = out.len() - small.len();
        let want = Arr::from_fn(&small, |j| {
            crate::reference::indices(&out)
                .iter()
                .filter(|i| j.iter().enumerate().all(|(d, &jd)| small[d] == 1 || i[lead + d] == jd))
                .map(|i| x.get(i))
                .sum()
        });
        check(&crate::laid_out(&x, crate::Lay::Transposed, dt).sum_to_shape(&small), &want, 0.0, "sum_to_shape");
    }

    #[test]
    fn one_hot_matches_reference(labels in prop::collection::vec(0i32..5, 0..12), classes in 5usize..7, dt in prop_oneof![Just(DType::F32), Just(DType::F64), Just(DType::I32)]) {
        let n = labels.len();
        let shape = if n.is_multiple_of(3) && n > 0 { vec![3, n / 3] } else { vec![n] };
        let t = Tensor::from_vec(labels.clone(), &shape);
        let got = t.one_hot(classes, dt);
        prop_assert_eq!(got.dtype(), dt);
        let mut oshape = shape.clone();
        oshape.push(classes);
        let want = Arr::from_fn(&oshape, |i| {
            let flat = if shape.len() == 2 { i[0] * shape[1] + i[1] } else { i[0] };
            if labels[flat] as usize == i[i.len() - 1] { 1.0 } else { 0.0 }
        });
        check(&got, &want, 0.0, "one_hot");
    }
}

#[test]
fn empty_reductions_follow_the_kernel_conventions() {
    let e = Tensor::zeros(&[0, 3], DType::F32);
    assert_eq!(e.sum().item::<f32>(), 0.0);
    assert_eq!(e.max().item::<f32>(), f32::NEG_INFINITY);
    assert_eq!(e.min().item::<f32>(), f32::INFINITY);
    assert!(e.mean().item::<f32>().is_nan());
    assert_eq!(e.sum_axis(0, false).to_vec::<f32>(), vec![0.0; 3]);
    assert_eq!(e.sum_axis(1, true).shape(), &[0, 1]);
    assert_eq!(
        e.logsumexp_axis(0, false).to_vec::<f32>(),
        vec![f32::NEG_INFINITY; 3]
    );
    assert!(
        e.try_argmax_axis(0, false)
            .unwrap_err()
            .to_string()
            .contains("argmax_axis")
    );
    assert_eq!(e.argmax_axis(1, false).shape(), &[0]);
    assert_eq!(e.softmax(0).shape(), &[0, 3]);
}

#[test]
fn large_reductions_are_accurate() {
    // 1M ones in f32: a naive running sum would stall at 2^24; the kernel must not lose them
    let x = Tensor::ones(&[1 << 20], DType::F32);
    assert_eq!(x.sum().item::<f32>(), (1 << 20) as f32);
    let y = Tensor::arange(0.0, 1000.0, 1.0, DType::F64).reshape(&[10, 100]);
    assert_eq!(
        y.t().sum_axis(0, false).to_vec::<f64>()[0],
        (0..100).sum::<i32>() as f64
    );
    assert_eq!(y.argmax_axis(0, false).to_vec::<i32>(), vec![9; 100]);
}

#[test]
fn axis_ops_on_transposes_read_storage_in_place() {
    let x = Tensor::arange(0.0, 12.0, 1.0, DType::F64).reshape(&[3, 4]);
    let t = x.t();
    // run on the storage order and permuted back: the result is a view, not contiguous
    let s = t.softmax(0);
    assert!(!s.is_contiguous());
    assert_eq!(s.to_vec::<f64>(), x.softmax(1).t().to_vec::<f64>());
    assert_eq!(t.sum_axis(0, false).to_vec::<f64>(), vec![6.0, 22.0, 38.0]);
    assert_eq!(t.argmax_axis(1, true).shape(), &[4, 1]);
    let p = Tensor::arange(0.0, 24.0, 1.0, DType::F32)
        .reshape(&[2, 3, 4])
        .permute(&[2, 0, 1]);
    assert_eq!(
        p.max_axis(1, false).to_vec::<f32>(),
        p.contiguous().max_axis(1, false).to_vec::<f32>()
    );
}
