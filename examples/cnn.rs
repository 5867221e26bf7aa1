//! Trains a small convolutional network on handwritten digits (8x8 images, the set
//! `examples/mlp.rs` uses) with Adam, then ranks the test images by the norm of their own
//! gradient: per-example gradients through the convolutions, `#[vmap]` over `#[grad]`.
//!
//! ```text
//! cargo run --release --example cnn
//! ```
//!
//! The network and its loss are plain Rust (`data/cnn_model.rs`): `x.conv(&w,
//! &Conv::new(2).stride(2).same())` is a 2-D convolution with stride 2 and "same" padding.
//! `#[grad]` writes `loss_value_and_grad`, and `#[vmap]` over it `loss_grad_vmap`, which
//! gives every image its own gradient in one batched pass. It runs on `Device::default()`
//! (`FERRAX_DEVICE=cpu|gpu` chooses).

#[path = "data/cnn_model.rs"]
#[allow(dead_code)]
mod cnn_model;
#[path = "data/digits.rs"]
#[allow(dead_code)]
mod digits;

use std::time::Instant;

use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

use cnn_model::{Cnn, logits, loss_grad_vmap, loss_value_and_grad};

const TEST: usize = 360;
const CHANNELS: (usize, usize) = (16, 32);
const BATCH: usize = 64;
const EPOCHS: usize = 15;
const LEARNING_RATE: f64 = 2e-3;

fn main() {
    let start = Instant::now();
    let (data_key, rest) = Key::new(0).split();
    let (init_key, mut shuffle_key) = rest.split();
    let device = Device::default();
    let (train, test) = digits::load(data_key, TEST);
    let images = |s: &digits::Split| s.images.reshape(&[s.images.shape()[0], 1, 8, 8]);
    let (train_x, test_x) = (
        images(&train).to_device(&device),
        images(&test).to_device(&device),
    );
    let n = train_x.shape()[0];
    println!(
        "digits: {n} training and {TEST} test images of 8x8 pixels; CNN conv 1->{} (3x3, same), relu, conv {}->{} (3x3, stride 2), relu, dense {}->10; batch {BATCH}, Adam lr {LEARNING_RATE}; on {}",
        CHANNELS.0,
        CHANNELS.0,
        CHANNELS.1,
        CHANNELS.1 * 16,
        device.description()
    );

    let mut params = Cnn::new(init_key, 8, CHANNELS.0, CHANNELS.1, DType::F32).to_device(&device);
    let mut opt = Adam::new(LEARNING_RATE);
    let labels = train.labels.to_device(&device);
    for epoch in 1..=EPOCHS {
        let (k, next) = shuffle_key.split();
        shuffle_key = next;
        let order = digits::shuffled(k, n).to_device(&device);
        let mut total = 0.0;
        for b in 0..n / BATCH {
            let idx = order.slice(0, b * BATCH, (b + 1) * BATCH);
            let x = train_x.index_select(0, &idx);
            let y = labels.index_select(0, &idx).one_hot(10, DType::F32);
            let (loss, grads) = loss_value_and_grad(&params, &x, &y);
            opt.step(&mut params, &grads);
            total += loss
                .to_device(&Device::Cpu)
                .to_dtype(DType::F64)
                .item::<f64>();
        }
        if epoch % 5 == 0 || epoch == 1 {
            println!(
                "epoch {epoch:2}: mean training loss {:.4}",
                total / (n / BATCH) as f64
            );
        }
    }
    let accuracy = |x: &Tensor, labels: &Tensor| {
        let predicted = logits(&params, x).argmax_axis(1, false).to_vec::<i32>();
        let right = predicted
            .iter()
            .zip(labels.to_vec::<i32>())
            .filter(|(p, l)| **p == *l);
        right.count() as f64 / predicted.len() as f64
    };
    println!(
        "train accuracy {:.2}%, test accuracy {:.2}% after {:.1} s",
        100.0 * accuracy(&train_x, &train.labels),
        100.0 * accuracy(&test_x, &test.labels),
        start.elapsed().as_secs_f64()
    );

    // every test image's own gradient, in one batched pass: [TEST, ..each parameter's shape]
    let t = Instant::now();
    let xs = test_x.unsqueeze(1); // each example a batch of one image
    let ys = test
        .labels
        .to_device(&device)
        .one_hot(10, DType::F32)
        .unsqueeze(1);
    let per = loss_grad_vmap(&params, &xs, &ys);
    let squares = |g: &Tensor| {
        g.powi(2)
            .reshape(&[TEST, g.numel() / TEST])
            .sum_axis(1, false)
    };
    let norms = (squares(&per.conv1.w)
        + squares(&per.conv1.b)
        + squares(&per.conv2.w)
        + squares(&per.conv2.b)
        + squares(&per.w)
        + squares(&per.b))
    .sqrt()
    .to_device(&Device::Cpu)
    .to_vec::<f32>();
    println!(
        "per-example gradients of {TEST} test images in {:.0} ms (conv2.w's: {:?})",
        1e3 * t.elapsed().as_secs_f64(),
        per.conv2.w.shape()
    );
    let predicted = logits(&params, &test_x)
        .argmax_axis(1, false)
        .to_vec::<i32>();
    let truth = test.labels.to_vec::<i32>();
    let mut order: Vec<usize> = (0..TEST).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]));
    println!("the test images the network finds hardest (largest gradient norm):");
    for &i in &order[..5] {
        println!(
            "  image {i:3}: label {}, predicted {}, gradient norm {:.3}",
            truth[i], predicted[i], norms[i]
        );
    }
    let median = norms[order[TEST / 2]];
    println!("  (median gradient norm {median:.4})");
}
