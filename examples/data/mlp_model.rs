//! A multilayer perceptron (relu hidden layers, softmax cross-entropy) and its loss, whose
//! gradient `#[grad]` derives. Shared by `examples/mlp.rs`, the benchmarks and the test that
//! checks the gradient against JAX (`tests/mlp_reference.rs`).

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

    /// The same parameters on `device`.
    pub fn to_device(&self, device: &Device) -> Mlp {
        let layers = self
            .layers
            .iter()
            .map(|l| Dense {
                w: l.w.to_device(device),
                b: l.b.to_device(device),
            })
            .collect();
        Mlp { layers }
    }

    /// The logits `[batch, classes]` of a batch `x: [batch, inputs]`.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let z = h.matmul(&layer.w) + &layer.b;
            h = if i + 1 < self.layers.len() {
                z.relu()
            } else {
                z
            };
        }
        h
    }
}

/// The mean softmax cross-entropy of `logits: [batch, classes]` against `one_hot` labels.
pub fn cross_entropy(logits: &Tensor, one_hot: &Tensor) -> Tensor {
    -(logits.log_softmax(1) * one_hot).sum_axis(1, false).mean()
}

/// The training loss: the mean softmax cross-entropy of the network on a batch. Plain
/// Rust; `#[grad]` also emits `loss_value_and_grad(params, x, one_hot) -> (loss, Mlp)`.
#[grad(wrt(params))]
pub fn loss(params: &Mlp, x: &Tensor, one_hot: &Tensor) -> Tensor {
    let last = params.layers.len() - 1;
    let mut h = x.clone();
    for i in 0..last {
        h = (h.matmul(&params.layers[i].w) + &params.layers[i].b).relu();
    }
    let logits = h.matmul(&params.layers[last].w) + &params.layers[last].b;
    -(logits.log_softmax(1) * one_hot).sum_axis(1, false).mean()
}

/// The loss as an `f64` and its gradient, from `loss_value_and_grad`.
pub fn loss_and_grad(params: &Mlp, x: &Tensor, one_hot: &Tensor) -> (f64, Mlp) {
    let (loss, grads) = loss_value_and_grad(params, x, one_hot);
    // read back to the host first: a GPU has no f64
    let loss = loss
        .to_device(&Device::Cpu)
        .to_dtype(DType::F64)
        .item::<f64>();
    (loss, grads)
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
