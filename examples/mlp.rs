//! Trains a multilayer perceptron on handwritten digits (8x8 images, the UCI set that
//! scikit-learn ships; compiled into the `smartcore` crate, so nothing is downloaded) with
//! Adam, showing the running loss on a progress bar, then prints the test accuracy and
//! writes the loss curve as a PNG.
//!
//! ```text
//! cargo run --release --example mlp [-- loss.png]
//! ```
//!
//! The model and its loss are plain Rust (`data/mlp_model.rs`); `#[grad]` writes the
//! gradient (`loss_value_and_grad`) at compile time. It trains on `Device::default()`: a
//! hardware GPU where wgpu finds one, else the CPU (`FERRAX_DEVICE=cpu|gpu` chooses;
//! `gpu` takes a software rasteriser too). The same code runs on either: only the data
//! and the parameters are placed on the device.

#[path = "data/digits.rs"]
mod digits;
#[path = "data/mlp_model.rs"]
#[allow(dead_code)]
mod mlp_model;

use std::time::Instant;

use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

use mlp_model::{Mlp, accuracy, loss_and_grad};

const TEST: usize = 360;
const WIDTHS: [usize; 4] = [64, 256, 256, 10];
const BATCH: usize = 64;
const EPOCHS: usize = 40;
const LEARNING_RATE: f64 = 1e-3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let png = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/mlp_loss.png".into());
    let start = Instant::now();
    let (data_key, rest) = Key::new(0).split();
    let (init_key, mut shuffle_key) = rest.split();
    let device = Device::default();
    let (train, test) = digits::load(data_key, TEST);
    let (train, test) = (train.to_device(&device), test.to_device(&device));
    let n = train.labels.shape()[0];
    println!(
        "digits: {n} training and {TEST} test images of 8x8 pixels; MLP {WIDTHS:?}, relu, batch {BATCH}, Adam lr {LEARNING_RATE}; on {}",
        device.description()
    );

    let mut params = Mlp::new(init_key, &WIDTHS, DType::F32).to_device(&device);
    let mut opt = Adam::new(LEARNING_RATE);
    let batches = n / BATCH;
    let bar = ProgressBar::new((EPOCHS * batches) as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} steps, epoch {prefix}, loss {msg} [{elapsed}]",
    )?);
    let mut curve = Vec::with_capacity(EPOCHS * batches);
    let mut running = None::<f64>;
    for epoch in 1..=EPOCHS {
        bar.set_prefix(epoch.to_string());
        let (k, next) = shuffle_key.split();
        shuffle_key = next;
        let order = digits::shuffled(k, n).to_device(&device);
        for b in 0..batches {
            let idx = order.slice(0, b * BATCH, (b + 1) * BATCH);
            let x = train.images.index_select(0, &idx);
            let y = train.labels.index_select(0, &idx).one_hot(10, DType::F32);
            let (loss, grads) = loss_and_grad(&params, &x, &y);
            opt.step(&mut params, &grads);
            let r = running.map_or(loss, |r| 0.95 * r + 0.05 * loss);
            running = Some(r);
            curve.push(loss);
            bar.set_message(format!("{r:.4}"));
            bar.inc(1);
        }
    }
    bar.finish();
    let train_time = start.elapsed().as_secs_f64();

    let train_acc = accuracy(&params.logits(&train.images), &train.labels);
    let test_acc = accuracy(&params.logits(&test.images), &test.labels);
    println!(
        "train accuracy {:.2}%, test accuracy {:.2}% ({TEST} held-out images); {} steps in {train_time:.1} s ({:.2} ms a step)",
        100.0 * train_acc,
        100.0 * test_acc,
        curve.len(),
        1e3 * train_time / curve.len() as f64
    );
    plot(&curve, &png)?;
    println!("loss curve: {png}");
    Ok(())
}

/// Draws the loss per step (light) and its moving average (dark) on a grid of powers of
/// ten, x from 0 to the number of steps (no text: the plotting backend is built without
/// fonts).
fn plot(losses: &[f64], path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = (-4.0f64, 1.0f64); // log10 of the loss
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .build_cartesian_2d(0.0..losses.len() as f64, lo..hi)?;
    let grid = RGBColor(220, 220, 220);
    for decade in (lo as i32)..=(hi as i32) {
        let y = decade as f64;
        chart.draw_series(LineSeries::new(
            [(0.0, y), (losses.len() as f64, y)],
            grid.stroke_width(1),
        ))?;
    }
    let log = |v: f64| v.max(1e-12).log10().clamp(lo, hi);
    chart.draw_series(LineSeries::new(
        losses.iter().enumerate().map(|(i, &l)| (i as f64, log(l))),
        RGBColor(150, 180, 230).stroke_width(1),
    ))?;
    let mut avg = losses[0];
    chart.draw_series(LineSeries::new(
        losses.iter().enumerate().map(|(i, &l)| {
            avg = 0.95 * avg + 0.05 * l;
            (i as f64, log(avg))
        }),
        RGBColor(20, 60, 160).stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}
