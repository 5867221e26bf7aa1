//! The tangent algebra of `Differentiable` values (vector-space laws on random values of
//! nested types) and `unbroadcast` against a direct summation.

use ferrax_runtime::differentiable::{leaves, try_unbroadcast, unbroadcast};
use ferrax_runtime::prelude::*;
use proptest::prelude::*;

/// A nested value of every kind of leaf container.
type Nested = (Tensor, Vec<[f64; 2]>, (f32, Tensor));

fn nested(v: &[f64], w: f32) -> Nested {
    (
        Tensor::from_vec(v[..6].to_vec(), &[2, 3]),
        vec![[v[6], v[7]], [v[8], v[9]]],
        (
            w,
            Tensor::from_vec(v[10..12].iter().map(|&x| x as f32).collect(), &[2]),
        ),
    )
}

/// Every leaf as f64, in order.
fn flat(x: &Nested) -> Vec<f64> {
    let mut out = Vec::new();
    for leaf in leaves(x) {
        match leaf {
            ferrax_runtime::differentiable::Leaf::F32(v) => out.push(*v as f64),
            ferrax_runtime::differentiable::Leaf::F64(v) => out.push(*v),
            ferrax_runtime::differentiable::Leaf::Tensor(t) => match t.dtype() {
                DType::F32 => out.extend(t.to_vec::<f32>().iter().map(|&v| v as f64)),
                _ => out.extend(t.to_vec::<f64>()),
            },
        }
    }
    out
}

fn values() -> impl Strategy<Value = (Vec<f64>, f32)> {
    (prop::collection::vec(-10.0f64..10.0, 12), -10.0f32..10.0)
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs()))
}

proptest! {
    #[test]
    fn add_is_commutative_and_associative(a in values(), b in values(), c in values()) {
        let (a, b, c) = (nested(&a.0, a.1), nested(&b.0, b.1), nested(&c.0, c.1));
        prop_assert!(close(&flat(&a.add(&b)), &flat(&b.add(&a)), 0.0));
        let left = flat(&a.add(&b).add(&c));
        let right = flat(&a.add(&b.add(&c)));
        prop_assert!(close(&left, &right, 1e-6), "{left:?} vs {right:?}");
    }

    #[test]
    fn zero_is_the_identity_and_keeps_shapes(a in values()) {
        let a = nested(&a.0, a.1);
        let z = a.zeros_like();
        prop_assert!(flat(&z).iter().all(|&v| v == 0.0));
        prop_assert_eq!(z.0.shape(), &[2, 3]);
        prop_assert_eq!(z.2.1.dtype(), DType::F32);
        prop_assert_eq!(flat(&a.add(&z)), flat(&a));
    }

    #[test]
    fn scale_distributes_over_add(a in values(), b in values(), s in -4.0f64..4.0, t in -4.0f64..4.0) {
        let (a, b) = (nested(&a.0, a.1), nested(&b.0, b.1));
        let lhs = flat(&a.add(&b).scale(s));
        let rhs = flat(&a.scale(s).add(&b.scale(s)));
        prop_assert!(close(&lhs, &rhs, 1e-5), "{lhs:?} vs {rhs:?}");
        let lhs = flat(&a.scale(s + t));
        let rhs = flat(&a.scale(s).add(&a.scale(t)));
        prop_assert!(close(&lhs, &rhs, 1e-5), "{lhs:?} vs {rhs:?}");
        // scale by 1 is the identity, by -1 the additive inverse
        prop_assert_eq!(flat(&a.scale(1.0)), flat(&a));
        prop_assert!(flat(&a.add(&a.scale(-1.0))).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn add_assign_equals_add_and_inner_is_the_sum_of_products(a in values(), b in values()) {
        let (a, b) = (nested(&a.0, a.1), nested(&b.0, b.1));
        let mut acc = a.clone();
        acc.add_assign(&b);
        prop_assert_eq!(flat(&acc), flat(&a.add(&b)));
        let want: f64 = flat(&a).iter().zip(flat(&b)).map(|(x, y)| x * y).sum();
        prop_assert!((a.inner(&b) - want).abs() <= 1e-9 * (1.0 + want.abs()));
    }
}

#[test]
fn add_assign_leaves_other_holders_alone() {
    let t = Tensor::ones(&[3], DType::F64);
    let keep = t.clone();
    let mut g = (t, 1.0f64);
    g.add_assign(&(Tensor::full(&[3], 2.0, DType::F64), 0.5));
    assert_eq!(g.0.to_vec::<f64>(), vec![3.0; 3]);
    assert_eq!(g.1, 1.5);
    assert_eq!(keep.to_vec::<f64>(), vec![1.0; 3]);
}

#[test]
fn mismatched_structures_are_errors_that_change_nothing() {
    let mut a = vec![
        Tensor::ones(&[2], DType::F32),
        Tensor::ones(&[2], DType::F32),
    ];
    let shorter = vec![Tensor::ones(&[2], DType::F32)];
    let err = a.try_add_assign(&shorter).unwrap_err().to_string();
    assert_eq!(
        err,
        "Differentiable::add: the operands have different structures (2 leaves and 1 leaves)"
    );

    let other_shape = vec![
        Tensor::ones(&[2], DType::F32),
        Tensor::ones(&[1], DType::F32),
    ];
    let err = a.try_add_assign(&other_shape).unwrap_err().to_string();
    assert!(
        err.contains("Differentiable::add: shapes [2] and [1]"),
        "{err}"
    );
    assert!(err.contains("leaf 1"), "{err}");

    let other_dtype = vec![
        Tensor::ones(&[2], DType::F32),
        Tensor::ones(&[2], DType::F64),
    ];
    let err = a.try_add(&other_dtype).unwrap_err().to_string();
    assert!(
        err.contains("leaf 1 is Tensor f32[2]") && err.contains("Tensor f64[2]"),
        "{err}"
    );

    assert!(a.iter().all(|t| t.to_vec::<f32>() == vec![1.0, 1.0]));
}

#[test]
#[should_panic(expected = "Differentiable::add")]
fn add_panics_with_the_error() {
    let _ = vec![1.0f64].add(&vec![1.0, 2.0]);
}

/// Sums `ct` over the broadcast axes by walking every element of `ct` and adding it
/// into the element of `shape` it came from.
fn unbroadcast_reference(ct: &[f64], ct_shape: &[usize], shape: &[usize]) -> Vec<f64> {
    let n: usize = shape.iter().product();
    let mut out = vec![0.0; n];
    let lead = ct_shape.len() - shape.len();
    for (flat_idx, &v) in ct.iter().enumerate() {
        let mut rem = flat_idx;
        let mut idx = vec![0; ct_shape.len()];
        for d in (0..ct_shape.len()).rev() {
            idx[d] = rem % ct_shape[d];
            rem /= ct_shape[d];
        }
        let mut o = 0;
        for (d, &size) in shape.iter().enumerate() {
            let i = if size == 1 { 0 } else { idx[lead + d] };
            o = o * size + i;
        }
        out[o] += v;
    }
    out
}

#[test]
fn unbroadcast_sums_exactly_the_broadcast_axes() {
    let ct_shape = [2, 3, 4];
    let data: Vec<f64> = (0..24).map(|i| (i as f64 * 0.37).sin()).collect();
    let ct = Tensor::from_vec(data.clone(), &ct_shape);
    let shapes: [&[usize]; 9] = [
        &[2, 3, 4],
        &[3, 4],
        &[4],
        &[1, 4],
        &[3, 1],
        &[2, 1, 4],
        &[1, 1, 1],
        &[1],
        &[],
    ];
    for shape in shapes {
        let got = unbroadcast(&ct, shape);
        assert_eq!(got.shape(), shape, "unbroadcast to {shape:?}");
        let want = unbroadcast_reference(&data, &ct_shape, shape);
        assert!(
            close(&got.to_vec::<f64>(), &want, 1e-12),
            "to {shape:?}: {:?} vs {want:?}",
            got.to_vec::<f64>()
        );
    }
    // a transposed (non-contiguous) cotangent
    let t = ct.reshape(&[6, 4]).t(); // [4, 6]
    let got = unbroadcast(&t, &[4, 1]);
    let want = unbroadcast_reference(&t.contiguous().to_vec::<f64>(), &[4, 6], &[4, 1]);
    assert!(close(&got.to_vec::<f64>(), &want, 1e-12));
    // empty axes sum to zero
    let e = Tensor::zeros(&[0, 3], DType::F32);
    assert_eq!(unbroadcast(&e, &[3]).to_vec::<f32>(), vec![0.0; 3]);
}

#[test]
fn unbroadcast_to_a_shape_that_does_not_broadcast_is_an_error() {
    let ct = Tensor::ones(&[2, 3], DType::F32);
    let err = try_unbroadcast(&ct, &[2]).unwrap_err().to_string();
    assert!(err.starts_with("sum_to_shape"), "{err}");
    assert!(err.contains("[2]") && err.contains("[2, 3]"), "{err}");
}
