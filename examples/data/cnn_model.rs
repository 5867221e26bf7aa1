//! A small convolutional network for square one-channel images (two 3 x 3 convolutions
//! with relu, the second with stride 2, then an affine layer to the logits) and its loss,
//! whose gradient and per-example gradients `#[vmap]` over `#[grad]` derive. Shared by
//! `examples/cnn.rs`, the benchmarks and the GPU tests.

use ferrax::prelude::*;

/// A convolution's kernels and one bias per output channel.
#[derive(Clone, Debug, Differentiable)]
pub struct ConvLayer {
    /// `[out_channels, in_channels, 3, 3]`.
    pub w: Tensor,
    /// `[out_channels, 1, 1]`, broadcast over the pixels.
    pub b: Tensor,
}

/// conv 1 -> `c1` (3 x 3, "same"), relu, conv `c1` -> `c2` (3 x 3, stride 2, "same"),
/// relu, affine `c2 * (side / 2)²` -> 10 for images of `side x side` pixels.
#[derive(Clone, Debug, Differentiable)]
pub struct Cnn {
    pub conv1: ConvLayer,
    pub conv2: ConvLayer,
    /// `[c2 * (side / 2)², 10]` (`side / 2` rounded up).
    pub w: Tensor,
    /// `[10]`.
    pub b: Tensor,
}

impl Cnn {
    /// Weights for images of `side x side` pixels drawn from a normal scaled by
    /// `sqrt(2 / fan_in)`, biases zero.
    pub fn new(key: Key, side: usize, c1: usize, c2: usize, dtype: DType) -> Cnn {
        let dense = c2 * side.div_ceil(2).pow(2);
        let [k1, k2, k3] = key.split_n(3)[..] else {
            unreachable!()
        };
        let he = |k: Key, shape: &[usize], fan_in: usize| {
            Tensor::normal(k, shape, dtype) * (2.0 / fan_in as f64).sqrt()
        };
        Cnn {
            conv1: ConvLayer {
                w: he(k1, &[c1, 1, 3, 3], 9),
                b: Tensor::zeros(&[c1, 1, 1], dtype),
            },
            conv2: ConvLayer {
                w: he(k2, &[c2, c1, 3, 3], 9 * c1),
                b: Tensor::zeros(&[c2, 1, 1], dtype),
            },
            w: he(k3, &[dense, 10], dense),
            b: Tensor::zeros(&[10], dtype),
        }
    }

    /// The same parameters on `device`.
    pub fn to_device(&self, device: &Device) -> Cnn {
        let layer = |l: &ConvLayer| ConvLayer {
            w: l.w.to_device(device),
            b: l.b.to_device(device),
        };
        Cnn {
            conv1: layer(&self.conv1),
            conv2: layer(&self.conv2),
            w: self.w.to_device(device),
            b: self.b.to_device(device),
        }
    }
}

/// The logits `[n, 10]` of images `x: [n, 1, side, side]`. Transformed as [`loss`] is, so
/// that `loss` can call it and differentiate and batch through the call.
#[vmap(in_axes = (None, 0))]
#[grad(wrt(p))]
pub fn logits(p: &Cnn, x: &Tensor) -> Tensor {
    let h = (x.conv(&p.conv1.w, &Conv::new(2).same()) + &p.conv1.b).relu();
    let h = (h.conv(&p.conv2.w, &Conv::new(2).stride(2).same()) + &p.conv2.b).relu();
    let n = x.shape()[0];
    h.reshape(&[n, p.w.shape()[0]]).matmul(&p.w) + &p.b
}

/// The mean softmax cross-entropy on images `x: [n, 1, side, side]` with `one_hot` labels
/// `[n, 10]`. `#[grad]` emits `loss_value_and_grad(p, x, one_hot)`; `#[vmap]` over it
/// `loss_grad_vmap(p, xs, ys)`, per-example gradients for `xs: [b, 1, 1, side, side]`
/// (each example a batch of one).
#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(p))]
pub fn loss(p: &Cnn, x: &Tensor, one_hot: &Tensor) -> Tensor {
    let z = logits(p, x);
    -(z.log_softmax(1) * one_hot).sum_axis(1, false).mean()
}
