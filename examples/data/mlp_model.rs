//! A multilayer perceptron (relu hidden layers, softmax cross-entropy) with its gradient
//! written by hand. Shared by `examples/mlp.rs` and the test that checks the gradient
//! against JAX (`tests/mlp_reference.rs`).
//!
//! The hand-written backward pass stands in until `#[grad]` handles tensors; then this
//! becomes `#[grad(wrt(params))] fn loss(..)` and `loss_value_and_grad`.

use ferrax::prelude::*;

/// One affine layer: `x @ w + b`.
#[derive(Clone, Debug, Differentiable)]
pub struct Dense {
    /// `[inputs, outputs]`.
    pub w: Tensor,
    /// `[outputs]`, broadcast over the batch.
    pub b: Tensor,
}

/// Affine layers with relu between them; the last layer's outputs are the logits.
#[derive(Clone, Debug, Differentiable)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Dense>,
}

impl Mlp {
    /// Layers of the given widths (`[64, 128, 10]`: one hidden layer of 128), weights
    /// drawn from a normal scaled by `sqrt(2 / fan_in)`, biases zero.
    pub fn new(key: Key, widths: &[usize], dtype: DType) -> Mlp {
        let keys = key.split_n(widths.len() - 1);
        let layers = widths
            .windows(2)
            .zip(keys)
            .map(|(io, k)| Dense {
                w: Tensor::normal(k, &[io[0], io[1]], dtype) * (2.0 / io[0] as f64).sqrt(),
                b: Tensor::zeros(&[io[1]], dtype),
            })
            .collect();
        Mlp { layers }
    }

    /// The logits `[batch, classes]` of a batch `x: [batch, inputs]`.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        self.forward(x).0
    }

    /// The logits and every layer's input (kept for the backward pass).
    fn forward(&self, x: &Tensor) -> (Tensor, Vec<Tensor>) {
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let z = h.matmul(&layer.w) + &layer.b;
            inputs.push(h);
            h = if i + 1 < self.layers.len() {
                z.relu()
            } else {
                z
            };
        }
        (h, inputs)
    }
}

/// The mean softmax cross-entropy of `logits: [batch, classes]` against `one_hot` labels.
pub fn cross_entropy(logits: &Tensor, one_hot: &Tensor) -> Tensor {
    let n = logits.shape()[0] as f64;
    -(logits.log_softmax(1) * one_hot).sum() / n
}

/// The loss of `params` on a batch and its gradient, by a hand-written backward pass.
///
/// Until `#[grad]` handles tensors; then this becomes `loss_value_and_grad`.
pub fn loss_and_grad(params: &Mlp, x: &Tensor, one_hot: &Tensor) -> (f64, Mlp) {
    let (logits, inputs) = params.forward(x);
    let n = logits.shape()[0] as f64;
    let loss = cross_entropy(&logits, one_hot);
    // d loss / d logits = (softmax - one_hot) / n
    let mut d = (logits.softmax(1) - one_hot) / n;
    let mut grads = Vec::with_capacity(params.layers.len());
    for (i, (layer, h)) in params.layers.iter().zip(&inputs).enumerate().rev() {
        grads.push(Dense {
            w: h.t().matmul(&d),
            b: ferrax::unbroadcast(&d, layer.b.shape()),
        });
        if i > 0 {
            // h = relu(z): the gradient passes where h > 0
            let dh = d.matmul(&layer.w.t());
            d = Tensor::where_(&h.gt(&h.scalar_like(0.0)), &dh, &dh.scalar_like(0.0));
        }
    }
    grads.reverse();
    let loss = match loss.dtype() {
        DType::F32 => loss.item::<f32>() as f64,
        _ => loss.item::<f64>(),
    };
    (loss, Mlp { layers: grads })
}

/// The fraction of rows of `logits` whose largest entry is at `labels`.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> f64 {
    let predicted = logits.argmax_axis(1, false).to_vec::<i32>();
    let labels = labels.to_vec::<i32>();
    let right = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    right as f64 / labels.len().max(1) as f64
}
