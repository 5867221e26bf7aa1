//! `#[grad]` on methods (`&self`): the receiver as a configuration left out of `wrt`, as a
//! differentiable model, and `self.g(..)` calls of other `#[grad]` methods, checked against
//! central finite differences and forward against reverse mode.

mod common;

use common::{AD_RTOL, FD_RTOL, assert_all_close, fd_grad};
use ferrax::prelude::*;

/// A chain of springs: constants, read through `self`.
struct Chain {
    k: f64,
    rest: f64,
    weights: Vec<f64>,
}

impl Chain {
    /// The energy of one spring.
    #[grad(wrt(a, b))]
    fn spring(&self, a: f64, b: f64) -> f64 {
        let d = b - a - self.rest;
        0.5 * self.k * d * d
    }

    /// The chain's energy: springs between neighbours, weights pulling each point down.
    #[grad(wrt(x))]
    pub fn energy(&self, x: &[f64]) -> f64 {
        let mut e = 0.0;
        for i in 0..x.len() - 1 {
            e += self.spring(x[i], x[i + 1]);
        }
        for (xi, w) in x.iter().zip(self.weights.iter()) {
            e += w * xi;
        }
        e
    }
}

#[test]
fn a_method_of_constants_matches_finite_differences_and_forward_mode() {
    let chain = Chain {
        k: 3.0,
        rest: 0.5,
        weights: vec![0.1, -0.2, 0.3, 0.4, -0.5],
    };
    let x = [0.0, 0.7, 1.1, 1.9, 2.2];
    let g = chain.energy_grad(&x);
    let want = fd_grad(&|x| chain.energy(x), &x);
    assert_all_close(&g, &want, FD_RTOL, "energy_grad");
    // forward mode along each unit vector, and the pullback
    for k in 0..x.len() {
        let mut dx = [0.0; 5];
        dx[k] = 1.0;
        let (v, t) = chain.energy_jvp(&x, &dx);
        assert_eq!(v, chain.energy(&x));
        assert_all_close(&[t], &[g[k]], AD_RTOL, "energy_jvp");
    }
    let (v, pullback) = chain.energy_vjp(&x);
    assert_eq!(v, chain.energy(&x));
    assert_all_close(
        &pullback(2.0),
        &g.iter().map(|g| 2.0 * g).collect::<Vec<_>>(),
        AD_RTOL,
        "energy_vjp",
    );
    let (v, g2) = chain.energy_value_and_grad(&x);
    assert_eq!((v, g2), (chain.energy(&x), g));
    // the callee on its own
    let (ga, gb) = chain.spring_grad(0.2, 1.0);
    assert_all_close(&[ga, gb], &[-3.0 * 0.3, 3.0 * 0.3], AD_RTOL, "spring_grad");
}

/// A free function calling a `#[grad]` method of a struct parameter.
#[grad(wrt(x))]
fn doubled(chain: &Chain, x: &[f64]) -> f64 {
    2.0 * chain.energy(x)
}

#[test]
fn a_free_function_calls_a_method_of_its_struct_parameter() {
    let chain = Chain {
        k: 1.5,
        rest: 0.2,
        weights: vec![0.3, 0.1, -0.2],
    };
    let x = [0.1, 0.5, 0.4];
    let g = doubled_grad(&chain, &x);
    assert_all_close(
        &g,
        &fd_grad(&|x| doubled(&chain, x), &x),
        FD_RTOL,
        "doubled_grad",
    );
    let twice: Vec<f64> = chain.energy_grad(&x).iter().map(|g| 2.0 * g).collect();
    assert_all_close(&g, &twice, AD_RTOL, "doubled_grad against energy_grad");
}

/// A model differentiated with respect to its own parameters (a parameter struct holds
/// tensors), through calls of its own `#[grad]` methods.
#[derive(Clone, Debug, Differentiable)]
struct Line {
    w: Tensor,
    b: Tensor,
}

impl Line {
    #[grad]
    fn predict(&self, x: &Tensor) -> Tensor {
        (x.matmul(&self.w) + &self.b).tanh()
    }

    /// Squared error, through `self.predict`.
    #[grad(wrt(self))]
    fn loss(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let d = self.predict(x) - y;
        (&d * &d).sum()
    }
}

fn line(p: &[f64]) -> Line {
    Line {
        w: Tensor::from_vec(p[..3].to_vec(), &[3, 1]),
        b: Tensor::from_vec(p[3..].to_vec(), &[1]),
    }
}

fn flat(l: &Line) -> Vec<f64> {
    let mut v = l.w.to_vec::<f64>();
    v.extend(l.b.to_vec::<f64>());
    v
}

#[test]
fn a_model_differentiated_with_respect_to_self_matches_finite_differences() {
    let p = [0.3, -0.4, 0.2, 0.1];
    let x = Tensor::from_vec(vec![0.5, 1.0, -1.5, 0.2, 0.3, 0.7, -0.9, 1.4, 0.8], &[3, 3]);
    let y = Tensor::from_vec(vec![0.2, -0.1, 0.4], &[3, 1]);
    let m = line(&p);
    let g: Line = m.loss_grad(&x, &y);
    let want = fd_grad(&|p| line(p).loss(&x, &y).item::<f64>(), &p);
    assert_all_close(&flat(&g), &want, FD_RTOL, "loss_grad");
    // forward mode along a direction of the model: the directional derivative
    let d = [1.0, -2.0, 0.5, 3.0];
    let (v, t) = m.loss_jvp(&x, &y, &line(&d));
    assert_eq!(v.item::<f64>(), m.loss(&x, &y).item::<f64>());
    let along: f64 = flat(&g).iter().zip(d).map(|(g, d)| g * d).sum();
    assert_all_close(&[t.item::<f64>()], &[along], AD_RTOL, "loss_jvp");
    // with respect to both the model and the input
    let sum = |m: &Line, x: &Tensor| m.predict(x).sum().item::<f64>();
    let (gm, gx): (Line, Tensor) = {
        let (v, pullback) = m.predict_vjp(&x);
        pullback(Tensor::ones(v.shape(), DType::F64))
    };
    let xv = x.to_vec::<f64>();
    let want_x = fd_grad(&|xv| sum(&m, &Tensor::from_vec(xv.to_vec(), &[3, 3])), &xv);
    assert_all_close(&gx.to_vec::<f64>(), &want_x, FD_RTOL, "predict_vjp wrt x");
    let want_m = fd_grad(&|p| sum(&line(p), &x), &p);
    assert_all_close(&flat(&gm), &want_m, FD_RTOL, "predict_vjp wrt self");
}

/// A tensor model, against the same loss written as a free function.
#[derive(Clone, Debug, Differentiable)]
struct Dense {
    w: Tensor,
    b: Tensor,
}

impl Dense {
    #[grad(wrt(self))]
    fn loss(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let h = (x.matmul(&self.w) + &self.b).tanh();
        (h - y).powi(2).mean()
    }
}

#[allow(dead_code)] // only its gradient is called
#[grad(wrt(d))]
fn dense_loss(d: &Dense, x: &Tensor, y: &Tensor) -> Tensor {
    let h = (x.matmul(&d.w) + &d.b).tanh();
    (h - y).powi(2).mean()
}

#[test]
fn a_tensor_model_method_matches_the_free_function() {
    let d = Dense {
        w: Tensor::from_vec(vec![0.1, -0.2, 0.3, 0.4, 0.5, -0.6], &[3, 2]),
        b: Tensor::from_vec(vec![0.05, -0.05], &[2]),
    };
    let x = Tensor::from_vec(
        vec![
            1.0, 0.5, -0.5, 0.2, 0.1, 0.9, -1.0, 0.3, 0.4, 0.8, 0.6, -0.2,
        ],
        &[4, 3],
    );
    let y = Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], &[4, 2]);
    let a = d.loss_grad(&x, &y);
    let b = dense_loss_grad(&d, &x, &y);
    assert_eq!(a.w.to_vec::<f64>(), b.w.to_vec::<f64>());
    assert_eq!(a.b.to_vec::<f64>(), b.b.to_vec::<f64>());
    let w = a.w.to_vec::<f64>();
    let want = fd_grad(
        &|p| {
            let mut e = d.clone();
            e.w = Tensor::from_vec(p.to_vec(), &[3, 2]);
            e.loss(&x, &y).item::<f64>()
        },
        &d.w.to_vec::<f64>(),
    );
    assert_all_close(&w, &want, FD_RTOL, "Dense::loss_grad wrt w");
}

/// A parameter struct of floats (not tensors): its fields are read through typed `let`s.
#[derive(Clone, Debug, Differentiable)]
struct Coeffs {
    k: f64,
    c: f64,
    w: Vec<f64>,
}

impl Coeffs {
    #[grad]
    fn energy(&self, x: &[f64]) -> f64 {
        let k: f64 = self.k;
        let c: f64 = self.c;
        let w: &[f64] = &self.w;
        let mut e = 0.0;
        for (xi, wi) in x.iter().zip(w.iter()) {
            e += k * (xi - c).powi(2) * wi;
        }
        e
    }
}

fn coeffs(p: &[f64]) -> Coeffs {
    Coeffs {
        k: p[0],
        c: p[1],
        w: p[2..].to_vec(),
    }
}

#[test]
fn float_fields_of_a_differentiated_struct_read_through_typed_lets() {
    let p = [1.5, 0.2, 0.3, -0.7, 1.1];
    let x = [0.4, -0.3, 0.9];
    let (gc, gx): (Coeffs, Vec<f64>) = coeffs(&p).energy_grad(&x);
    let mut got = vec![gc.k, gc.c];
    got.extend(&gc.w);
    assert_all_close(
        &got,
        &fd_grad(&|p| coeffs(p).energy(&x), &p),
        FD_RTOL,
        "wrt self",
    );
    assert_all_close(
        &gx,
        &fd_grad(&|x| coeffs(&p).energy(x), &x),
        FD_RTOL,
        "wrt x",
    );
    // forward mode along a direction of both
    let (dp, dx) = ([0.5, -1.0, 0.2, 0.3, -0.4], [1.0, 0.5, -2.0]);
    let (_, t) = coeffs(&p).energy_jvp(&x, &coeffs(&dp), &dx);
    let along: f64 = got.iter().zip(dp).map(|(g, d)| g * d).sum::<f64>()
        + gx.iter().zip(dx).map(|(g, d)| g * d).sum::<f64>();
    assert_all_close(&[t], &[along], AD_RTOL, "energy_jvp");
}

/// A tensor model with a float field, read through a typed `let` in tensor code.
#[derive(Clone, Debug, Differentiable)]
struct Scaled {
    w: Tensor,
    scale: f64,
}

#[grad]
fn scaled_loss(m: &Scaled, x: &Tensor) -> Tensor {
    let s: f64 = m.scale;
    (x.matmul(&m.w).tanh() * s).powi(2).sum()
}

#[test]
fn a_float_field_in_tensor_code_matches_finite_differences() {
    let x = Tensor::from_vec(vec![0.5, -1.0, 0.25, 2.0], &[2, 2]);
    let model = |p: &[f64]| Scaled {
        w: Tensor::from_vec(p[..4].to_vec(), &[2, 2]),
        scale: p[4],
    };
    let p = [0.3, -0.2, 0.1, 0.4, 1.5];
    let (g, _) = scaled_loss_grad(&model(&p), &x);
    let mut got = g.w.to_vec::<f64>();
    got.push(g.scale);
    let want = fd_grad(&|p| scaled_loss(&model(p), &x).item::<f64>(), &p);
    assert_all_close(&got, &want, FD_RTOL, "scaled_loss_grad");
}

/// Layers (`Dense`, above) with a `forward` method, called on each layer of a model's Vec.
#[derive(Clone, Debug, Differentiable)]
struct Net {
    layers: Vec<Dense>,
}

impl Dense {
    #[grad]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.w) + &self.b
    }
}

impl Net {
    #[grad(wrt(self))]
    fn loss(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h);
            if i + 1 < self.layers.len() {
                h = h.tanh();
            }
        }
        (h - y).powi(2).mean()
    }
}

/// The same loss with the layers written out.
#[allow(dead_code)] // only its gradient is called
#[grad(wrt(net))]
fn net_loss(net: &Net, x: &Tensor, y: &Tensor) -> Tensor {
    let h = (x.matmul(&net.layers[0].w) + &net.layers[0].b).tanh();
    let h = h.matmul(&net.layers[1].w) + &net.layers[1].b;
    (h - y).powi(2).mean()
}

#[test]
fn a_method_called_on_each_layer_matches_the_written_out_loss_and_finite_differences() {
    let layer = |w: Vec<f64>, i: usize, o: usize| Dense {
        w: Tensor::from_vec(w, &[i, o]),
        b: Tensor::from_vec(vec![0.1; o], &[o]),
    };
    let w0 = vec![0.2, -0.1, 0.4, 0.3, -0.5, 0.1];
    let net = |w0: &[f64]| Net {
        layers: vec![layer(w0.to_vec(), 3, 2), layer(vec![0.7, -0.3], 2, 1)],
    };
    let x = Tensor::from_vec(vec![1.0, 0.5, -0.5, 0.2, 0.1, 0.9], &[2, 3]);
    let y = Tensor::from_vec(vec![0.3, -0.2], &[2, 1]);
    let g = net(&w0).loss_grad(&x, &y);
    let h = net_loss_grad(&net(&w0), &x, &y);
    for (a, b) in g.layers.iter().zip(&h.layers) {
        assert_all_close(&a.w.to_vec::<f64>(), &b.w.to_vec::<f64>(), AD_RTOL, "w");
        assert_all_close(&a.b.to_vec::<f64>(), &b.b.to_vec::<f64>(), AD_RTOL, "b");
    }
    let want = fd_grad(&|w| net(w).loss(&x, &y).item::<f64>(), &w0);
    assert_all_close(
        &g.layers[0].w.to_vec::<f64>(),
        &want,
        FD_RTOL,
        "first layer's w",
    );
}

impl Coeffs {
    #[grad]
    fn part(&self, x: f64) -> f64 {
        let k: f64 = self.k;
        let c: f64 = self.c;
        k * (x - c).powi(2)
    }

    /// Through another method of a struct of floats: its result typed by a `let`.
    #[grad]
    fn total(&self, x: &[f64]) -> f64 {
        let mut s = 0.0;
        for &xi in x {
            let e: f64 = self.part(xi);
            s += e;
        }
        s
    }
}

#[test]
fn a_float_method_of_a_struct_of_floats_through_a_typed_let() {
    let p = [1.5, 0.2, 0.3, -0.7, 1.1];
    let x = [0.4, -0.3, 0.9];
    let (gc, gx) = coeffs(&p).total_grad(&x);
    let got = vec![gc.k, gc.c];
    let want = fd_grad(&|p| coeffs(p).total(&x), &p);
    assert_all_close(&got, &want[..2], FD_RTOL, "total_grad wrt self");
    assert_eq!((gc.w.clone(), gc.w.len()), (vec![0.0; 3], 3));
    assert_all_close(
        &gx,
        &fd_grad(&|x| coeffs(&p).total(x), &x),
        FD_RTOL,
        "total_grad wrt x",
    );
}

/// Layer norm and one attention head, as methods (`self.layer_norm(x)`), with the scale
/// read from a shape (`q.shape()[1]`, a value with no derivative).
#[derive(Clone, Debug, Differentiable)]
struct Attention {
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    gamma: Tensor,
    beta: Tensor,
}

impl Attention {
    #[grad]
    fn layer_norm(&self, x: &Tensor) -> Tensor {
        let mu = x.mean_axis(-1, true);
        let xc = x - &mu;
        let var = (&xc * &xc).mean_axis(-1, true);
        xc / (var + 1e-5).sqrt() * &self.gamma + &self.beta
    }

    #[grad(wrt(self))]
    fn loss(&self, x: &Tensor, target: &Tensor) -> Tensor {
        let h = self.layer_norm(x);
        let (q, k, v) = (h.matmul(&self.wq), h.matmul(&self.wk), h.matmul(&self.wv));
        let d = q.shape()[1] as f64;
        let att = (q.matmul(&k.t()) / d.sqrt()).softmax(-1);
        let logp = att.matmul(&v).log_softmax(-1);
        -(logp * target).sum_axis(-1, false).mean()
    }
}

#[test]
fn attention_through_methods_matches_finite_differences() {
    let ks = Key::new(1).split_n(5);
    let n = 4;
    let a = Attention {
        wq: Tensor::normal(ks[0], &[n, n], DType::F64) * 0.3,
        wk: Tensor::normal(ks[1], &[n, n], DType::F64) * 0.3,
        wv: Tensor::normal(ks[2], &[n, n], DType::F64) * 0.3,
        gamma: Tensor::normal(ks[3], &[n], DType::F64) * 0.2 + 1.0,
        beta: Tensor::zeros(&[n], DType::F64),
    };
    let x = Tensor::normal(ks[4], &[5, n], DType::F64);
    let t = Tensor::from_vec([1.0, 0.0, 0.0, 0.0].repeat(5), &[5, n]);
    let g = a.loss_grad(&x, &t);
    let with = |gamma: &[f64], wq: &[f64]| {
        let mut b = a.clone();
        b.gamma = Tensor::from_vec(gamma.to_vec(), &[n]);
        b.wq = Tensor::from_vec(wq.to_vec(), &[n, n]);
        b.loss(&x, &t).item::<f64>()
    };
    let (gamma, wq) = (a.gamma.to_vec::<f64>(), a.wq.to_vec::<f64>());
    let want = fd_grad(&|p| with(p, &wq), &gamma);
    assert_all_close(&g.gamma.to_vec::<f64>(), &want, FD_RTOL, "gamma");
    let want = fd_grad(&|p| with(&gamma, p), &wq);
    assert_all_close(&g.wq.to_vec::<f64>(), &want, FD_RTOL, "wq");
}

/// A recurrent cell as a method, called over time steps from batched functions: per-example
/// gradients and a Jacobian go through its batched counterparts.
#[derive(Clone, Debug, Differentiable)]
struct Rnn {
    wx: Tensor,
    wh: Tensor,
    b: Tensor,
}

impl Rnn {
    #[grad]
    fn cell(&self, x: &Tensor, h: &Tensor) -> Tensor {
        (x.matmul(&self.wx) + h.matmul(&self.wh) + &self.b).tanh()
    }
}

/// One sequence `[steps, 3]` against a target `[4]`.
#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(p))]
fn sequence_loss(p: &Rnn, xs: &Tensor, y: &Tensor) -> Tensor {
    let mut h = p.b.zeros_like();
    for i in 0..xs.shape()[0] {
        h = p.cell(&xs.slice(0, i, i + 1).squeeze(0), &h);
    }
    (h - y).powi(2).sum()
}

#[jacobian(wrt(x))]
fn cell_of(p: &Rnn, x: &Tensor) -> Tensor {
    p.cell(x, x)
}

fn rnn() -> Rnn {
    let ks = Key::new(7).split_n(3);
    Rnn {
        wx: Tensor::normal(ks[0], &[3, 4], DType::F64) * 0.5,
        wh: Tensor::normal(ks[1], &[4, 4], DType::F64) * 0.5,
        b: Tensor::normal(ks[2], &[4], DType::F64) * 0.5,
    }
}

#[test]
fn per_example_gradients_through_a_method_match_a_loop_and_finite_differences() {
    let p = rnn();
    let xs = Tensor::normal(Key::new(8), &[5, 6, 3], DType::F64);
    let ys = Tensor::normal(Key::new(9), &[5, 4], DType::F64);
    let g = sequence_loss_grad_vmap(&p, &xs, &ys);
    assert_eq!(g.wh.shape(), &[5, 4, 4]);
    for e in 0..5 {
        let (x, y) = (
            xs.slice(0, e, e + 1).squeeze(0),
            ys.slice(0, e, e + 1).squeeze(0),
        );
        let one = sequence_loss_grad(&p, &x, &y);
        let got = g.wh.slice(0, e, e + 1).squeeze(0).to_vec::<f64>();
        assert_all_close(&got, &one.wh.to_vec::<f64>(), AD_RTOL, "per-example wh");
        if e == 0 {
            let with = |w: &[f64]| {
                let mut q = p.clone();
                q.wh = Tensor::from_vec(w.to_vec(), &[4, 4]);
                sequence_loss(&q, &x, &y).item::<f64>()
            };
            let want = fd_grad(&with, &p.wh.to_vec::<f64>());
            assert_all_close(&got, &want, FD_RTOL, "wh vs finite differences");
        }
    }
}

#[test]
fn a_jacobian_through_a_method_matches_finite_differences() {
    let p = rnn();
    let x = Tensor::normal(Key::new(10), &[4], DType::F64).reshape(&[1, 4]);
    let q = Rnn {
        wx: Tensor::normal(Key::new(11), &[4, 4], DType::F64) * 0.5,
        ..p
    };
    let (jf, jr) = (cell_of_jacfwd(&q, &x), cell_of_jacrev(&q, &x));
    assert_eq!(jf.shape(), &[1, 4, 1, 4]);
    assert_all_close(
        &jf.to_vec::<f64>(),
        &jr.to_vec::<f64>(),
        AD_RTOL,
        "jacfwd vs jacrev",
    );
    let xv = x.to_vec::<f64>();
    for o in 0..4 {
        let want = fd_grad(
            &|v| cell_of(&q, &Tensor::from_vec(v.to_vec(), &[1, 4])).to_vec::<f64>()[o],
            &xv,
        );
        assert_all_close(
            &jf.to_vec::<f64>()[4 * o..4 * o + 4],
            &want,
            FD_RTOL,
            "jacfwd row",
        );
    }
}

/// A model whose `forward` calls its layers' `forward`: a method that calls other functions
/// takes `#[vmap] #[grad]` (as a free function does) for batched callers, and a loss method
/// takes `#[grad] #[vmap]` (the gradient of the batch's total).
#[derive(Clone, Debug, Differentiable)]
struct Stack {
    layers: Vec<Dense>,
}

impl Stack {
    #[vmap(in_axes = (None, 0))]
    #[grad]
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h).tanh();
        }
        h
    }

    #[grad(wrt(self))]
    #[vmap(in_axes = (None, 0, 0))]
    fn batch_loss(&self, x: &Tensor, y: &Tensor) -> Tensor {
        (self.forward(x) - y).powi(2).sum()
    }
}

impl Dense {
    /// `#[vmap]` alone on a method (by default the receiver is shared by the batch).
    #[vmap]
    fn logits(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.w) + &self.b
    }
}

#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(model))]
fn stack_loss(model: &Stack, x: &Tensor, y: &Tensor) -> Tensor {
    (model.forward(x) - y).powi(2).sum()
}

#[jacobian(wrt(x))]
fn stack_features(model: &Stack, x: &Tensor) -> Tensor {
    model.forward(x)
}

fn stack() -> Stack {
    let ks = Key::new(12).split_n(4);
    let dense = |k: usize, i: usize, o: usize| Dense {
        w: Tensor::normal(ks[k], &[i, o], DType::F64) * 0.7,
        b: Tensor::normal(ks[k + 1], &[o], DType::F64) * 0.3,
    };
    Stack {
        layers: vec![dense(0, 3, 4), dense(2, 4, 2)],
    }
}

fn flat_stack(s: &Stack) -> Vec<f64> {
    s.layers
        .iter()
        .flat_map(|l| [l.w.to_vec::<f64>(), l.b.to_vec::<f64>()].concat())
        .collect()
}

#[test]
fn per_example_gradients_through_a_method_calling_methods_match_a_loop() {
    let model = stack();
    let xs = Tensor::normal(Key::new(13), &[5, 3], DType::F64);
    let ys = Tensor::normal(Key::new(14), &[5, 2], DType::F64);
    let per = stack_loss_grad_vmap(&model, &xs, &ys);
    assert_eq!(per.layers[0].w.shape(), &[5, 3, 4]);
    let ym = model.forward_vmap(&xs);
    let mut total = vec![0.0; flat_stack(&model).len()];
    for e in 0..5 {
        let (x, y) = (
            xs.slice(0, e, e + 1).squeeze(0),
            ys.slice(0, e, e + 1).squeeze(0),
        );
        assert_all_close(
            &ym.slice(0, e, e + 1).squeeze(0).to_vec::<f64>(),
            &model.forward(&x).to_vec::<f64>(),
            AD_RTOL,
            "forward_vmap",
        );
        assert_eq!(
            model.batch_loss(&x, &y).item::<f64>(),
            stack_loss(&model, &x, &y).item::<f64>()
        );
        let one = stack_loss_grad(&model, &x, &y);
        let got: Vec<Tensor> = per
            .layers
            .iter()
            .flat_map(|l| [l.w.slice(0, e, e + 1), l.b.slice(0, e, e + 1)])
            .collect();
        let got: Vec<f64> = got.iter().flat_map(|t| t.to_vec::<f64>()).collect();
        assert_all_close(&got, &flat_stack(&one), AD_RTOL, "per-example gradient");
        for (t, g) in total.iter_mut().zip(&got) {
            *t += g;
        }
        if e == 0 {
            let with = |v: &[f64]| {
                let mut m = model.clone();
                let mut at = 0;
                for l in &mut m.layers {
                    let (nw, nb) = (l.w.numel(), l.b.numel());
                    l.w = Tensor::from_vec(v[at..at + nw].to_vec(), l.w.shape());
                    l.b = Tensor::from_vec(v[at + nw..at + nw + nb].to_vec(), l.b.shape());
                    at += nw + nb;
                }
                stack_loss(&m, &x, &y).item::<f64>()
            };
            let want = fd_grad(&with, &flat_stack(&model));
            assert_all_close(&got, &want, FD_RTOL, "per-example vs finite differences");
        }
    }
    let logits = model.layers[0].logits_vmap(&xs);
    for e in 0..5 {
        let x = xs.slice(0, e, e + 1).squeeze(0);
        assert_eq!(
            logits.slice(0, e, e + 1).squeeze(0).to_vec::<f64>(),
            model.layers[0].logits(&x).to_vec::<f64>()
        );
    }
    // the method's gradient of the batch's total is the sum of the per-example ones
    let g = model.batch_loss_vmap_grad(&xs, &ys);
    assert_all_close(&flat_stack(&g), &total, AD_RTOL, "batch_loss_vmap_grad");
}

#[test]
fn a_jacobian_through_a_method_calling_methods_matches_finite_differences() {
    let model = stack();
    let x = Tensor::normal(Key::new(15), &[3], DType::F64);
    let (jf, jr) = (
        stack_features_jacfwd(&model, &x),
        stack_features_jacrev(&model, &x),
    );
    assert_eq!(jf.shape(), &[2, 3]);
    let (jf, jr) = (jf.to_vec::<f64>(), jr.to_vec::<f64>());
    assert_all_close(&jf, &jr, AD_RTOL, "jacfwd vs jacrev");
    for o in 0..2 {
        let want = fd_grad(
            &|v| stack_features(&model, &Tensor::from_vec(v.to_vec(), &[3])).to_vec::<f64>()[o],
            &x.to_vec::<f64>(),
        );
        assert_all_close(&jf[3 * o..3 * o + 3], &want, FD_RTOL, "jacfwd row");
    }
}

/// `#[hessian]` and `#[jacobian]` on methods: a chain's energy over coordinates, with its
/// stiffness in `self`; a layer's features and potential over a tensor.
struct Chain1d {
    k: f64,
    rest: f64,
}

impl Chain1d {
    #[hessian(wrt(x))]
    #[grad(wrt(x))]
    fn energy(&self, x: &[f64]) -> f64 {
        let mut e = 0.0;
        for i in 1..x.len() {
            let d = x[i] - x[i - 1] - self.rest;
            e += 0.5 * self.k * d * d * (1.0 + d * d);
        }
        e
    }
}

impl Dense {
    #[jacobian(wrt(x))]
    fn features(&self, x: &Tensor) -> Tensor {
        (x.matmul(&self.w) + &self.b).tanh()
    }

    #[hessian(wrt(x))]
    fn potential(&self, x: &Tensor) -> Tensor {
        (x.matmul(&self.w) + &self.b).tanh().powi(2).sum()
    }
}

#[test]
fn hessians_and_jacobians_of_methods_match_finite_differences() {
    let c = Chain1d { k: 2.0, rest: 0.5 };
    let x = [0.0, 0.7, 1.1, 1.9];
    let h = c.energy_hessian(&x);
    for (i, row) in h.iter().enumerate() {
        let want = fd_grad(&|v| c.energy_grad(v)[i], &x);
        assert_all_close(row, &want, FD_RTOL, "energy_hessian row");
    }
    let g = c.energy_grad(&x);
    let want = fd_grad(&|v| c.energy(v), &x);
    assert_all_close(&g, &want, FD_RTOL, "energy_grad");
    let d = &stack().layers[0];
    let xt = Tensor::normal(Key::new(16), &[3], DType::F64);
    let xv = xt.to_vec::<f64>();
    let at = |v: &[f64]| Tensor::from_vec(v.to_vec(), &[3]);
    let (jf, jr) = (d.features_jacfwd(&xt), d.features_jacrev(&xt));
    assert_eq!(jf.shape(), &[4, 3]);
    let (jf, jr) = (jf.to_vec::<f64>(), jr.to_vec::<f64>());
    assert_all_close(&jf, &jr, AD_RTOL, "jacfwd vs jacrev");
    assert_all_close(
        &d.features_jacobian(&xt).to_vec::<f64>(),
        &jf,
        AD_RTOL,
        "jacobian",
    );
    for o in 0..4 {
        let want = fd_grad(&|v| d.features(&at(v)).to_vec::<f64>()[o], &xv);
        assert_all_close(&jf[3 * o..3 * o + 3], &want, FD_RTOL, "features row");
    }
    let h = d.potential_hessian(&xt);
    assert_eq!(h.shape(), &[3, 3]);
    let h = h.to_vec::<f64>();
    let grad = |v: &[f64]| fd_grad(&|u| d.potential(&at(u)).item::<f64>(), v);
    for i in 0..3 {
        let want = fd_grad(&|v| grad(v)[i], &xv);
        assert_all_close(&h[3 * i..3 * i + 3], &want, 1e-4, "potential_hessian row");
        let mut e = vec![0.0; 3];
        e[i] = 1.0;
        let hv = d.potential_hvp(&xt, &at(&e)).to_vec::<f64>();
        assert_all_close(&hv, &h[3 * i..3 * i + 3], AD_RTOL, "potential_hvp");
    }
}

/// An activation chosen by an enum, a leaf method under `#[vmap] #[grad]`, and a loss that
/// reads its value with `.item::<f64>()`.
#[derive(Clone, Copy)]
enum Act {
    Tanh,
    Gelu,
}

impl Dense {
    #[vmap(in_axes = (None, 0, None))]
    #[grad]
    fn activated(&self, x: &Tensor, act: Act) -> Tensor {
        let h = x.matmul(&self.w) + &self.b;
        match act {
            Act::Tanh => h.tanh(),
            Act::Gelu => &h * (&h * 1.702).sigmoid(),
        }
    }

    #[grad(wrt(self))]
    fn fit(&self, x: &Tensor, y: &Tensor, act: Act) -> Tensor {
        let e = (self.activated(x, act) - y).powi(2).mean();
        if e.item::<f64>() > 100.0 {
            return e.sqrt();
        }
        e
    }
}

#[test]
fn a_leaf_method_under_vmap_and_grad_with_an_enum_argument() {
    let d = stack().layers[0].clone();
    let xs = Tensor::normal(Key::new(17), &[5, 3], DType::F64);
    let ys = Tensor::normal(Key::new(18), &[5, 4], DType::F64);
    for act in [Act::Tanh, Act::Gelu] {
        let batched = d.activated_vmap(&xs, act);
        for e in 0..5 {
            let x = xs.slice(0, e, e + 1).squeeze(0);
            assert_eq!(
                batched.slice(0, e, e + 1).squeeze(0).to_vec::<f64>(),
                d.activated(&x, act).to_vec::<f64>()
            );
        }
        let g = d.fit_grad(&xs, &ys, act);
        let with = |v: &[f64]| {
            let mut q = d.clone();
            q.w = Tensor::from_vec(v.to_vec(), &[3, 4]);
            q.fit(&xs, &ys, act).item::<f64>()
        };
        let want = fd_grad(&with, &d.w.to_vec::<f64>());
        assert_all_close(&g.w.to_vec::<f64>(), &want, FD_RTOL, "fit_grad w");
    }
}
