//! An Elman network learns to continue waves: at each step it reads the current value of a
//! sum of two sines (random phases and amplitudes) and predicts the next. The loss is written
//! as a plain loop that pushes each step's hidden state onto a `Vec<Tensor>` and stacks
//! them; `#[grad]` gives its gradient (the reverse sweep walks back through the steps), Adam
//! trains it, and `#[vmap] #[grad]` gives every sequence's own gradient in one batched pass,
//! whose norms say which sequences the network finds hardest.
//!
//! Run it with `cargo run --release --example rnn`.

use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

const STEPS: usize = 40;
const BATCH: usize = 64;
const HIDDEN: usize = 32;

#[derive(Clone, Differentiable)]
struct Rnn {
    wx: Tensor,
    wh: Tensor,
    b: Tensor,
    wo: Tensor,
}

impl Rnn {
    fn new(key: Key) -> Rnn {
        let (k1, k2) = key.split();
        let (k2, k3) = k2.split();
        Rnn {
            wx: Tensor::normal(k1, &[1, HIDDEN], DType::F32),
            wh: Tensor::normal(k2, &[HIDDEN, HIDDEN], DType::F32) * (1.0 / (HIDDEN as f32).sqrt()),
            b: Tensor::zeros(&[HIDDEN], DType::F32),
            wo: Tensor::normal(k3, &[HIDDEN, 1], DType::F32) * 0.1,
        }
    }
}

/// The mean squared error of the next-value predictions over sequences `xs: [T, B, 1]`
/// (targets `ys` alike); also takes one sequence, `[T, 1]`, under `vmap`.
#[vmap(in_axes = (None, 1, 1))]
#[grad(wrt(p))]
fn loss(p: &Rnn, xs: &Tensor, ys: &Tensor) -> Tensor {
    let mut h = (xs.slice(0, 0, 1).squeeze(0).matmul(&p.wx) + &p.b).tanh();
    let mut states = vec![h.clone()];
    for t in 1..xs.shape()[0] {
        let x = xs.slice(0, t, t + 1).squeeze(0);
        h = (x.matmul(&p.wx) + h.matmul(&p.wh) + &p.b).tanh();
        states.push(h.clone());
    }
    let predictions = Tensor::stack(&states, 0).matmul(&p.wo);
    (predictions - ys).powi(2).mean()
}

/// `BATCH` waves of `STEPS + 1` samples: inputs `[STEPS, BATCH, 1]` and the next values.
fn waves(key: Key) -> (Tensor, Tensor) {
    let (k1, k2) = key.split();
    let phase =
        Tensor::uniform(k1, &[BATCH], 0.0, std::f64::consts::TAU, DType::F32).to_vec::<f32>();
    let amp = Tensor::uniform(k2, &[BATCH], 0.5, 1.5, DType::F32).to_vec::<f32>();
    let value = |t: usize, b: usize| {
        let s = t as f32 * 0.3 + phase[b];
        amp[b] * s.sin() * 0.7 + 0.3 * (2.1 * s).sin()
    };
    let at = |shift: usize| {
        let v: Vec<f32> = (0..STEPS)
            .flat_map(|t| (0..BATCH).map(move |b| (t, b)))
            .map(|(t, b)| value(t + shift, b))
            .collect();
        Tensor::from_vec(v, &[STEPS, BATCH, 1])
    };
    (at(0), at(1))
}

fn main() {
    let mut p = Rnn::new(Key::new(0));
    let mut adam = Adam::new(0.01);
    let (test_x, test_y) = waves(Key::new(1_000_000));
    let first = loss(&p, &test_x, &test_y).item::<f32>();
    println!("step   train loss   test loss");
    for step in 0..=400 {
        let (xs, ys) = waves(Key::new(step));
        let (l, g) = loss_value_and_grad(&p, &xs, &ys);
        if step % 50 == 0 {
            let test = loss(&p, &test_x, &test_y).item::<f32>();
            println!("{step:4} {:12.5} {test:11.5}", l.item::<f32>());
        }
        adam.step(&mut p, &g);
    }
    let last = loss(&p, &test_x, &test_y).item::<f32>();
    println!("test loss {first:.4} -> {last:.5}");
    assert!(
        last < 0.05 * first,
        "the network did not learn: {first} -> {last}"
    );

    // every test sequence's own gradient in one batched pass: the norm of its `wh` part
    let per_seq = loss_grad_vmap(&p, &test_x, &test_y);
    // (the batch's loss is the mean of the sequences' losses, so its gradient is theirs too)
    let whole = loss_grad(&p, &test_x, &test_y);
    let gap = (per_seq.wh.mean_axis(0, false) - &whole.wh)
        .abs()
        .max()
        .item::<f32>();
    assert!(
        gap < 1e-6,
        "per-sequence gradients disagree with the batch's: {gap}"
    );
    let norms = per_seq
        .wh
        .powi(2)
        .sum_axis(-1, false)
        .sum_axis(-1, false)
        .sqrt();
    let norms = norms.to_vec::<f32>();
    let hardest = (0..BATCH).max_by(|a, b| norms[*a].total_cmp(&norms[*b]));
    let hardest = hardest.expect("a batch");
    println!(
        "per-sequence gradient norms: median {:.2e}, largest {:.2e} (sequence {hardest})",
        {
            let mut s = norms.clone();
            s.sort_by(f32::total_cmp);
            s[BATCH / 2]
        },
        norms[hardest]
    );
}
