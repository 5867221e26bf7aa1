//! `#[derive(Differentiable)]`: nested structs, Vecs of layers, tuple structs, generics and
//! skipped fields, through the algebra and an optimizer.

use ferrax::optim::{Optimizer, Sgd};
use ferrax::prelude::*;

#[derive(Clone, Debug, Differentiable)]
struct Dense {
    w: Tensor,
    b: Tensor,
}

#[derive(Clone, Debug, Differentiable)]
struct Mlp {
    layers: Vec<Dense>,
    scale: f64,
    #[differentiable(skip)]
    name: String,
    #[differentiable(skip)]
    frozen: Tensor,
    gates: [f32; 2],
    pair: (f64, Dense),
}

#[derive(Clone, Debug, Differentiable)]
struct Pair(f64, #[differentiable(skip)] usize, Vec<f64>);

#[derive(Clone, Debug, Differentiable)]
struct Wrapper<T> {
    inner: T,
    #[differentiable(skip)]
    steps: u32,
}

#[derive(Clone, Debug, Differentiable)]
struct Constants {
    #[differentiable(skip)]
    label: &'static str,
}

fn dense(v: f32) -> Dense {
    Dense {
        w: Tensor::full(&[2, 3], v as f64, DType::F32),
        b: Tensor::full(&[3], v as f64 * 10.0, DType::F32),
    }
}

fn mlp(v: f32) -> Mlp {
    Mlp {
        layers: vec![dense(v), dense(2.0 * v)],
        scale: v as f64,
        name: format!("net {v}"),
        frozen: Tensor::full(&[2], v as f64, DType::F32),
        gates: [v, -v],
        pair: (3.0 * v as f64, dense(-v)),
    }
}

#[test]
fn leaves_are_the_fields_in_order_without_skipped_ones() {
    let m = mlp(1.0);
    // 2 layers x 2 tensors + scale + 2 gates + pair (1 + 2)
    assert_eq!(m.num_leaves(), 4 + 1 + 2 + 3);
    assert_eq!(Pair(1.0, 7, vec![2.0, 3.0]).num_leaves(), 3);
    let c = Constants { label: "x" };
    assert_eq!((c.num_leaves(), c.zeros_like().label), (0, "x"));
}

#[test]
fn add_and_scale_go_field_by_field_and_keep_constants_from_the_first_operand() {
    let (a, b) = (mlp(1.0), mlp(2.0));
    let s = a.add(&b.scale(0.5));
    assert_eq!(s.layers[0].w.to_vec::<f32>(), vec![2.0; 6]);
    assert_eq!(s.layers[1].b.to_vec::<f32>(), vec![40.0; 3]);
    assert_eq!(s.scale, 2.0);
    assert_eq!(s.gates, [2.0, -2.0]);
    assert_eq!(s.pair.0, 6.0);
    assert_eq!(s.pair.1.w.to_vec::<f32>(), vec![-2.0; 6]);
    // skipped fields: the first operand's, untouched by add and scale
    assert_eq!(s.name, "net 1");
    assert_eq!(s.frozen.to_vec::<f32>(), vec![1.0; 2]);
    assert_eq!(b.scale(3.0).frozen.to_vec::<f32>(), vec![2.0; 2]);

    let z = a.zeros_like();
    assert_eq!(z.layers[1].w.to_vec::<f32>(), vec![0.0; 6]);
    assert_eq!(z.layers[1].w.shape(), &[2, 3]);
    assert_eq!(z.frozen.to_vec::<f32>(), vec![1.0; 2]);
    assert_eq!(z.name, "net 1");

    let p = Pair(1.0, 7, vec![2.0, 3.0]).add(&Pair(0.5, 9, vec![1.0, 1.0]));
    assert_eq!((p.0, p.1, p.2), (1.5, 7, vec![3.0, 4.0]));

    let w = Wrapper {
        inner: vec![1.0f32],
        steps: 3,
    }
    .scale(2.0);
    assert_eq!((w.inner, w.steps), (vec![2.0], 3));
}

#[test]
fn structures_that_differ_are_errors() {
    let a = mlp(1.0);
    let mut b = mlp(1.0);
    b.layers.pop();
    let err = a.try_add(&b).unwrap_err().to_string();
    assert!(
        err.contains("different structures (10 leaves and 8 leaves)"),
        "{err}"
    );
}

#[test]
fn optimizers_update_derived_structs_in_place() {
    let mut params = mlp(1.0);
    let grads = mlp(1.0);
    Sgd::new(0.5).step(&mut params, &grads);
    assert_eq!(params.layers[0].w.to_vec::<f32>(), vec![0.5; 6]);
    assert_eq!(params.scale, 0.5);
    assert_eq!(params.gates, [0.5, -0.5]);
    assert_eq!(params.frozen.to_vec::<f32>(), vec![1.0; 2]);
}
