//! Bad input: every failing operation's error names the operation, the shapes and the
//! dtypes, the panicking form panics with that message, and the `try_` form returns it.

use ferrax_runtime::Result;
use ferrax_runtime::prelude::*;

/// Asserts that `r` is an error whose message contains every one of `parts`.
#[track_caller]
pub(crate) fn err_contains<T: std::fmt::Debug>(r: Result<T>, parts: &[&str]) {
    let msg = r.expect_err("expected an error").to_string();
    for p in parts {
        assert!(
            msg.contains(p),
            "error message {msg:?} should contain {p:?}"
        );
    }
}

pub(crate) fn f32s(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32)
}

#[test]
fn shape_mismatches_name_op_and_shapes() {
    let (a, b) = (f32s(&[2, 3]), f32s(&[4]));
    err_contains(a.try_add(&b), &["add", "[2, 3]", "[4]", "broadcast"]);
    err_contains(a.try_pow(&b), &["pow", "[2, 3]", "[4]"]);
    err_contains(a.try_lt(&b), &["lt", "[2, 3]", "[4]"]);
    err_contains(
        a.try_matmul(&f32s(&[4, 5])),
        &["matmul", "[2, 3]", "[4, 5]", "3 and 4"],
    );
    err_contains(
        f32s(&[2, 2, 3]).try_matmul(&f32s(&[3, 3, 1])),
        &["matmul", "batch"],
    );
    err_contains(f32s(&[]).try_matmul(&f32s(&[3])), &["matmul", "[]", "[3]"]);
    err_contains(a.try_reshape(&[4, 2]), &["reshape", "[2, 3]", "[4, 2]"]);
    err_contains(
        a.try_broadcast_to(&[3, 3]),
        &["broadcast_to", "[2, 3]", "[3, 3]"],
    );
    err_contains(
        Tensor::try_concat(&[&a, &b], 0),
        &["concat", "[2, 3]", "[4]"],
    );
    err_contains(
        Tensor::try_stack(&[&a, &f32s(&[3, 2])], 0),
        &["stack", "[2, 3]", "[3, 2]"],
    );
    err_contains(
        Tensor::try_where_(&f32s(&[2]).gt(&f32s(&[2])), &a, &a),
        &["where", "[2]", "[2, 3]"],
    );
    err_contains(
        Tensor::try_from_vec(vec![1.0f32; 5], &[2, 3]),
        &["from_vec", "5", "[2, 3]"],
    );
}

#[test]
fn dtype_mismatches_say_which_dtypes() {
    let a = f32s(&[2]);
    let b = Tensor::zeros(&[2], DType::F64);
    err_contains(a.try_mul(&b), &["mul", "f32", "f64", "[2]"]);
    err_contains(a.try_matmul(&b), &["matmul", "f32", "f64"]);
    err_contains(Tensor::try_concat(&[&a, &b], 0), &["concat", "f32", "f64"]);
    let i = Tensor::zeros(&[2], DType::I32);
    err_contains(i.try_exp(), &["exp", "i32", "float"]);
    err_contains(i.try_sum(), &["sum", "i32"]);
    err_contains(a.try_one_hot(3, DType::F32), &["one_hot", "f32", "i32"]);
    err_contains(a.try_index_select(0, &a), &["index_select", "i32", "f32"]);
    // (a float mask is read as NumPy reads one; an integer mask is refused)
    err_contains(
        Tensor::try_where_(&i, &a, &a),
        &["where", "bool or float", "i32"],
    );
    err_contains(
        Tensor::try_normal(Key::new(0), &[2], DType::I32),
        &["normal", "i32"],
    );
    let e = a.try_to_vec::<f64>().unwrap_err().to_string();
    assert!(
        e.contains("to_vec") && e.contains("f64") && e.contains("f32"),
        "{e}"
    );
    let e = a.try_item::<f32>().unwrap_err().to_string();
    assert!(e.contains("item") && e.contains("[2]"), "{e}");
}

#[test]
fn bad_axes_and_indices_are_reported() {
    let a = f32s(&[2, 3]);
    err_contains(a.try_sum_axis(2, false), &["sum_axis", "axis 2", "[2, 3]"]);
    err_contains(a.try_softmax(-3), &["softmax", "axis -3"]);
    err_contains(a.try_transpose(0, 5), &["transpose", "axis 5"]);
    err_contains(a.try_permute(&[0, 0]), &["permute", "[0, 0]"]);
    err_contains(a.try_squeeze(0), &["squeeze", "[2, 3]"]);
    err_contains(a.try_unsqueeze(4), &["unsqueeze", "axis 4"]);
    err_contains(a.try_slice(1, 2, 4), &["slice", "2..4", "size 3"]);
    err_contains(
        a.try_t().and_then(|t| t.try_t()).and(f32s(&[3]).try_t()),
        &["t", "[3]"],
    );
    let idx = Tensor::from_vec(vec![0i32, 3], &[2]);
    err_contains(
        a.try_index_select(1, &idx),
        &["index_select", "index 3", "size 3"],
    );
    // index_add: the source's shape is the gathered one; indices in range; one dtype
    err_contains(
        a.try_index_add(1, &Tensor::from_vec(vec![0i32, 2], &[2]), &a),
        &["index_add", "source must have shape", "[2, 2]"],
    );
    err_contains(
        a.try_index_add(1, &idx, &f32s(&[2, 2])),
        &["index_add", "index 3", "size 3"],
    );
    err_contains(
        a.try_index_add(
            0,
            &Tensor::from_vec(vec![0i32], &[1]),
            &a.to_dtype(DType::F64),
        ),
        &["index_add", "f32", "f64"],
    );
    err_contains(
        Tensor::from_vec(vec![-1i32], &[1]).try_one_hot(4, DType::F32),
        &["one_hot", "-1"],
    );
    err_contains(
        Tensor::try_arange(0.0, 1.0, 0.0, DType::F32),
        &["arange", "step"],
    );
}

#[test]
fn panics_carry_the_error_message() {
    let a = f32s(&[2, 3]);
    let b = f32s(&[3, 2]);
    let err = std::panic::catch_unwind(|| &a + &b).expect_err("should panic");
    let msg = err.downcast_ref::<String>().expect("a String panic");
    assert_eq!(msg, &a.try_add(&b).unwrap_err().to_string());
    assert_eq!(
        msg,
        "add: shapes [2, 3] and [3, 2] cannot be broadcast together"
    );
}

#[test]
fn clamp_bounds_out_of_order_are_reported() {
    let x = f32s(&[3]);
    err_contains(x.try_clamp(1.0, 0.0), &["clamp", "lo = 1", "hi = 0"]);
    err_contains(x.try_clamp(f64::NAN, 0.0), &["clamp", "NaN"]);
    assert_eq!(x.try_clamp(0.5, 0.5).unwrap().to_vec::<f32>(), vec![0.5; 3]);
}
