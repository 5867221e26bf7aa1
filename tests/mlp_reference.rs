//! The hand-written MLP gradient of `examples/mlp.rs` against JAX's (reference/gradients.py
//! and its output reference/gradients.txt), and the residual network's loss against JAX's
//! forward value (its gradients in that file wait for tensor `#[grad]`).

#[path = "../examples/data/mlp_model.rs"]
#[allow(dead_code)]
mod mlp_model;

use std::collections::HashMap;

use ferrax::prelude::*;
use mlp_model::{Dense, Mlp, cross_entropy, loss_and_grad};

const REFERENCE: &str = include_str!("../reference/gradients.txt");

/// The tensors of one model in the reference file, by name.
fn reference(model: &str) -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    let mut lines = REFERENCE.lines().filter(|l| !l.starts_with('#'));
    while let Some(header) = lines.next() {
        let values = lines.next().expect("a header is followed by its values");
        let mut words = header.split_whitespace();
        let (m, name) = (words.next().unwrap(), words.next().unwrap());
        if m != model {
            continue;
        }
        let shape: Vec<usize> = words.map(|d| d.parse().unwrap()).collect();
        let t = if name == "labels" {
            Tensor::from_vec(
                values
                    .split_whitespace()
                    .map(|v| v.parse::<i32>().unwrap())
                    .collect(),
                &shape,
            )
        } else {
            Tensor::from_vec(
                values
                    .split_whitespace()
                    .map(|v| v.parse::<f64>().unwrap())
                    .collect(),
                &shape,
            )
        };
        out.insert(name.to_string(), t);
    }
    assert!(
        !out.is_empty(),
        "no {model} entries in reference/gradients.txt"
    );
    out
}

/// Asserts that `got` equals JAX's `want` within `tol` (relative to the largest entry).
fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    let (g, w) = (got.to_vec::<f64>(), want.to_vec::<f64>());
    let scale = w.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{what}[{i}] (shape {:?}): ours {a:e}, JAX {b:e}\nours {g:?}\nJAX  {w:?}",
            got.shape()
        );
    }
}

fn mlp_from(r: &HashMap<String, Tensor>, prefix: &str) -> Mlp {
    let layers = (0..)
        .map_while(|k| {
            Some(Dense {
                w: r.get(&format!("{prefix}w{k}"))?.clone(),
                b: r.get(&format!("{prefix}b{k}"))?.clone(),
            })
        })
        .collect();
    Mlp { layers }
}

#[test]
fn hand_written_mlp_gradient_matches_jax() {
    let r = reference("mlp");
    let params = mlp_from(&r, "");
    assert_eq!(params.layers.len(), 3);
    let one_hot = r["labels"].one_hot(3, DType::F64);
    let (loss, grads) = loss_and_grad(&params, &r["x"], &one_hot);
    let want = r["loss"].item::<f64>();
    assert!(
        (loss - want).abs() <= 1e-13 * want.abs(),
        "loss: ours {loss}, JAX {want}"
    );
    let want = mlp_from(&r, "grad.");
    assert_eq!(grads.num_leaves(), want.num_leaves());
    for (k, (g, w)) in grads.layers.iter().zip(&want.layers).enumerate() {
        assert_close(&format!("grad.w{k}"), &g.w, &w.w, 1e-12);
        assert_close(&format!("grad.b{k}"), &g.b, &w.b, 1e-12);
    }
}

fn layer_norm(h: &Tensor, gamma: &Tensor, beta: &Tensor) -> Tensor {
    let centred = h - &h.mean_axis(-1, true);
    let var = centred.powi(2).mean_axis(-1, true);
    centred / (var + 1e-5).sqrt() * gamma + beta
}

#[test]
fn residual_network_loss_matches_jax() {
    let r = reference("resnet");
    let p = |name: &str| &r[name];
    let mut h = r["x"].matmul(p("w_in")) + p("b_in");
    for k in 0..2 {
        let q = |n: &str| &r[&format!("block{k}.{n}")];
        let y = layer_norm(&h, q("gamma"), q("beta"));
        let y = (y.matmul(q("w1")) + q("b1")).tanh();
        h = h + y.matmul(q("w2")) + q("b2");
    }
    let logits = h.matmul(p("w_out")) + p("b_out");
    let loss = cross_entropy(&logits, &r["labels"].one_hot(3, DType::F64)).item::<f64>();
    let want = r["loss"].item::<f64>();
    assert!(
        (loss - want).abs() <= 1e-13 * want.abs(),
        "loss: ours {loss}, JAX {want}"
    );
    // every parameter has a gradient of its shape, for the tensor #[grad] tests to come
    for (name, t) in &r {
        if let Some(param) = name.strip_prefix("grad.") {
            assert_eq!(t.shape(), r[param].shape(), "{name}");
        }
    }
    assert_eq!(r.keys().filter(|n| n.starts_with("grad.")).count(), 16);
}
