//! Constructors, accessors, dtype conversion and printing.

use ferrax_runtime::prelude::*;

#[test]
fn constructors_fill_as_documented() {
    assert_eq!(
        Tensor::zeros(&[2, 2], DType::F32).to_vec::<f32>(),
        vec![0.0; 4]
    );
    assert_eq!(Tensor::ones(&[3], DType::I32).to_vec::<i32>(), vec![1; 3]);
    assert_eq!(
        Tensor::full(&[2], 2.5, DType::F64).to_vec::<f64>(),
        vec![2.5; 2]
    );
    assert_eq!(
        Tensor::full(&[1], 3.0, DType::Bool).to_vec::<bool>(),
        vec![true]
    );
    assert_eq!(
        Tensor::eye(3, DType::F32).to_vec::<f32>(),
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        Tensor::arange(1.0, 2.0, 0.25, DType::F64).to_vec::<f64>(),
        vec![1.0, 1.25, 1.5, 1.75]
    );
    assert_eq!(
        Tensor::arange(3.0, 0.0, -1.0, DType::I32).to_vec::<i32>(),
        vec![3, 2, 1]
    );
    assert_eq!(Tensor::arange(0.0, -1.0, 1.0, DType::F32).shape(), &[0]);
    assert_eq!(
        Tensor::linspace(-1.0, 1.0, 3, DType::F32).to_vec::<f32>(),
        vec![-1.0, 0.0, 1.0]
    );
    assert_eq!(
        Tensor::linspace(2.0, 5.0, 1, DType::F64).to_vec::<f64>(),
        vec![2.0]
    );
    assert_eq!(Tensor::linspace(0.0, 1.0, 0, DType::F64).shape(), &[0]);
    let s = Tensor::scalar(7i32);
    assert_eq!((s.ndim(), s.numel(), s.item::<i32>()), (0, 1, 7));
    let x = Tensor::from_vec(vec![1.0f32; 6], &[2, 3]);
    assert_eq!(
        (x.len(), x.numel(), x.ndim(), x.device()),
        (2, 6, 2, Device::Cpu)
    );
    assert_eq!(x.zeros_like().to_vec::<f32>(), vec![0.0; 6]);
    assert_eq!(x.full_like(4.0).dtype(), DType::F32);
    assert_eq!(Device::default(), Device::Cpu);
    assert_eq!(x.ones_like().to_vec::<f32>(), vec![1.0; 6]);
    assert_eq!(x.flatten().shape(), &[6]);
    assert_eq!(Tensor::from(vec![1.0f64, 2.0]).shape(), &[2]);
    assert_eq!(
        Tensor::from(&[true, false][..]).to_vec::<bool>(),
        vec![true, false]
    );
    assert_eq!(Tensor::from(2.5f32).item::<f32>(), 2.5);
    assert_eq!(Tensor::from(3i32).shape(), &[] as &[usize]);
}

#[test]
fn empty_tensors_work_everywhere() {
    let e = Tensor::zeros(&[3, 0, 2], DType::F64);
    assert!(e.is_empty());
    assert_eq!(e.to_vec::<f64>(), Vec::<f64>::new());
    assert_eq!(e.exp().shape(), &[3, 0, 2]);
    assert_eq!((&e + &Tensor::ones(&[2], DType::F64)).shape(), &[3, 0, 2]);
    assert_eq!(e.permute(&[2, 0, 1]).contiguous().shape(), &[2, 3, 0]);
    assert_eq!(e.reshape(&[0, 5]).shape(), &[0, 5]);
    assert_eq!(e.sum_axis(1, false).to_vec::<f64>(), vec![0.0; 6]);
    assert_eq!(Tensor::concat(&[&e, &e], 1).shape(), &[3, 0, 2]);
    assert_eq!(
        e.matmul(&Tensor::zeros(&[2, 4], DType::F64)).shape(),
        &[3, 0, 4]
    );
    assert_eq!(format!("{}", Tensor::zeros(&[0], DType::F32)), "[]");
}

#[test]
fn to_dtype_converts() {
    let x = Tensor::from_vec(vec![1.7f64, -0.5, 0.0], &[3]);
    assert_eq!(
        x.to_dtype(DType::F32).to_vec::<f32>(),
        vec![1.7f32, -0.5, 0.0]
    );
    assert_eq!(x.to_dtype(DType::I32).to_vec::<i32>(), vec![1, 0, 0]);
    assert_eq!(
        x.to_dtype(DType::Bool).to_vec::<bool>(),
        vec![true, true, false]
    );
    let m = Tensor::from_vec(vec![true, false], &[2]);
    assert_eq!(m.to_dtype(DType::F32).to_vec::<f32>(), vec![1.0, 0.0]);
    assert_eq!(m.to_dtype(DType::F64).mean().item::<f64>(), 0.5);
}

#[test]
fn display_prints_like_numpy() {
    let x = Tensor::from_vec(vec![1.0f32, 2.5, -3.0, 4.0], &[2, 2]);
    assert_eq!(format!("{x}"), "[[ 1., 2.5],\n [-3.,  4.]]");
    let y = Tensor::arange(0.0, 8.0, 1.0, DType::I32).reshape(&[2, 2, 2]);
    assert_eq!(
        format!("{y}"),
        "[[[0, 1],\n  [2, 3]],\n\n [[4, 5],\n  [6, 7]]]"
    );
    assert_eq!(format!("{}", Tensor::scalar(0.1f64)), "0.1");
    assert_eq!(
        format!("{}", Tensor::from_vec(vec![true, false], &[2])),
        "[ true, false]"
    );
    assert_eq!(
        format!(
            "{}",
            Tensor::from_vec(vec![f64::NAN, f64::NEG_INFINITY, 1e-7], &[3])
        ),
        "[      nan,      -inf, 1.0000e-7]"
    );
    let big = Tensor::arange(0.0, 2000.0, 1.0, DType::F64);
    assert_eq!(
        format!("{big}"),
        "[   0.,    1.,    2., ..., 1997., 1998., 1999.]"
    );
    let grid = Tensor::arange(0.0, 1600.0, 1.0, DType::I32).reshape(&[40, 40]);
    let text = format!("{grid}");
    assert!(
        text.starts_with("[[   0,    1,    2, ...,   37,   38,   39],\n [  40,"),
        "{text}"
    );
    assert!(text.contains("],\n ...,\n [1480,"), "{text}");
    assert!(text.ends_with("1597, 1598, 1599]]"), "{text}");
    // a precision applies to every float element, scientific ones included
    let t = Tensor::from_vec(vec![1.0f64 / 3.0, 1.0, -2.5, 1e-7], &[2, 2]);
    assert_eq!(
        format!("{t:.2}"),
        "[[   0.33,    1.00],\n [  -2.50, 1.00e-7]]"
    );
    assert_eq!(format!("{:.1}", Tensor::scalar(2.26f32)), "2.3");
    assert_eq!(
        format!("{:.1?}", Tensor::from_vec(vec![0.26f32], &[1])),
        "Tensor([0.3], shape=[1], dtype=f32, device=cpu)"
    );
    assert_eq!(
        format!("{:.3}", Tensor::from_vec(vec![1i32, 2], &[2])),
        "[1, 2]"
    );
    assert_eq!(
        format!("{:?}", Tensor::ones(&[2], DType::F32)),
        "Tensor([1., 1.], shape=[2], dtype=f32, device=cpu)"
    );
}

#[test]
fn tensors_are_shareable_and_cheap_to_clone() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Tensor>();
    send_sync::<Key>();
    let x = Tensor::arange(0.0, 1e6, 1.0, DType::F32);
    let y = x.clone();
    // a clone and views share storage: no element moves
    assert_eq!(y.strides(), x.strides());
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let t = x.slice(0, i * 10, i * 10 + 3);
            std::thread::spawn(move || t.sum().item::<f32>())
        })
        .collect();
    let sums: Vec<f32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(sums, vec![3.0, 33.0]);
}
