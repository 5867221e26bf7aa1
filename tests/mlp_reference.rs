//! The hand-written MLP gradient of `examples/mlp.rs` against JAX's (reference/gradients.py
//! and its output reference/gradients.txt), and the residual network's loss against JAX's
//! forward value (its gradients in that file wait for tensor `#[grad]`).

#[path = "../examples/data/mlp_model.rs"]
#[allow(dead_code)]
mod mlp_model;

use std::collections::HashMap;

use ferrax::prelude::*;
use mlp_model::{Dense, Mlp, loss_and_grad};

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
fn mlp_gradient_matches_jax() {
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

/// One residual block: layer normalisation, a tanh layer, a linear layer, added back.
#[derive(Clone, Debug, Differentiable)]
struct Block {
    gamma: Tensor,
    beta: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

/// The residual network of `reference/gradients.py`.
#[derive(Clone, Debug, Differentiable)]
struct ResNet {
    w_in: Tensor,
    b_in: Tensor,
    blocks: Vec<Block>,
    w_out: Tensor,
    b_out: Tensor,
}

#[grad(wrt(p))]
fn resnet_loss(p: &ResNet, x: &Tensor, one_hot: &Tensor) -> Tensor {
    let mut h = x.matmul(&p.w_in) + &p.b_in;
    for blk in &p.blocks {
        let centred = &h - &h.mean_axis(-1, true);
        let var = centred.powi(2).mean_axis(-1, true);
        let y = centred / (var + 1e-5).sqrt() * &blk.gamma + &blk.beta;
        let y = (y.matmul(&blk.w1) + &blk.b1).tanh();
        h = h + y.matmul(&blk.w2) + &blk.b2;
    }
    let logits = h.matmul(&p.w_out) + &p.b_out;
    -(logits.log_softmax(1) * one_hot).sum_axis(1, false).mean()
}

fn resnet_from(r: &HashMap<String, Tensor>, prefix: &str) -> ResNet {
    let g = |n: &str| r[&format!("{prefix}{n}")].clone();
    ResNet {
        w_in: g("w_in"),
        b_in: g("b_in"),
        blocks: (0..2)
            .map(|k| {
                let q = |n: &str| g(&format!("block{k}.{n}"));
                Block {
                    gamma: q("gamma"),
                    beta: q("beta"),
                    w1: q("w1"),
                    b1: q("b1"),
                    w2: q("w2"),
                    b2: q("b2"),
                }
            })
            .collect(),
        w_out: g("w_out"),
        b_out: g("b_out"),
    }
}

#[test]
fn residual_network_gradient_matches_jax() {
    let r = reference("resnet");
    let params = resnet_from(&r, "");
    let one_hot = r["labels"].one_hot(3, DType::F64);
    let (loss, grads) = resnet_loss_value_and_grad(&params, &r["x"], &one_hot);
    let plain = resnet_loss(&params, &r["x"], &one_hot).item::<f64>();
    let (loss, want) = (loss.item::<f64>(), r["loss"].item::<f64>());
    assert_eq!(loss, plain, "value_and_grad's value is the function's");
    assert!(
        (loss - want).abs() <= 1e-13 * want.abs(),
        "loss: ours {loss}, JAX {want}"
    );
    let want = resnet_from(&r, "grad.");
    assert_eq!(grads.num_leaves(), 16);
    let pairs = [
        ("w_in", &grads.w_in, &want.w_in),
        ("b_in", &grads.b_in, &want.b_in),
        ("w_out", &grads.w_out, &want.w_out),
        ("b_out", &grads.b_out, &want.b_out),
    ];
    for (name, g, w) in pairs {
        assert_close(name, g, w, 1e-11);
    }
    for (k, (g, w)) in grads.blocks.iter().zip(&want.blocks).enumerate() {
        for (name, a, b) in [
            ("gamma", &g.gamma, &w.gamma),
            ("beta", &g.beta, &w.beta),
            ("w1", &g.w1, &w.w1),
            ("b1", &g.b1, &w.b1),
            ("w2", &g.w2, &w.w2),
            ("b2", &g.b2, &w.b2),
        ] {
            assert_close(&format!("block{k}.{name}"), a, b, 1e-11);
        }
    }
}
