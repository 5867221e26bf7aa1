//! A graph network learns a function of each node's neighbourhood on random graphs: every
//! node's target is the largest first feature among the nodes sending it an edge plus half
//! the sum of their second features. One round of message passing computes it: messages
//! gathered at the edges' sources (`index_select`), summed and maxed at their destinations
//! (`segment_sum`, `segment_max`). Each training step takes 32 graphs, each with its own
//! edges; `#[vmap] #[grad]` gives every graph's gradient in one batched pass (the edge
//! indices batched like the features), and Adam follows their mean.
//!
//! Run it with `cargo run --release --example gnn`.

use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

const NODES: usize = 16;
const EDGES: usize = 40;
const FEATURES: usize = 3;
const HIDDEN: usize = 32;
const BATCH: usize = 32;

#[derive(Clone, Differentiable)]
struct Gnn {
    w_msg: Tensor,
    b_msg: Tensor,
    w_sum: Tensor,
    w_max: Tensor,
    b: Tensor,
    w_out: Tensor,
}

impl Gnn {
    fn new(key: Key) -> Gnn {
        let (k1, k2) = key.split();
        let (k2, k3) = k2.split();
        let (k3, k4) = k3.split();
        let scale = 1.0 / (HIDDEN as f32).sqrt();
        Gnn {
            w_msg: Tensor::normal(k1, &[FEATURES, HIDDEN], DType::F32),
            b_msg: Tensor::zeros(&[HIDDEN], DType::F32),
            w_sum: Tensor::normal(k2, &[HIDDEN, HIDDEN], DType::F32) * scale,
            w_max: Tensor::normal(k3, &[HIDDEN, HIDDEN], DType::F32) * scale,
            b: Tensor::zeros(&[HIDDEN], DType::F32),
            w_out: Tensor::normal(k4, &[HIDDEN, 1], DType::F32) * scale,
        }
    }

    /// The mean of per-graph gradients (each field batched along axis 0).
    fn mean(g: &Gnn) -> Gnn {
        let m = |t: &Tensor| t.mean_axis(0, false);
        Gnn {
            w_msg: m(&g.w_msg),
            b_msg: m(&g.b_msg),
            w_sum: m(&g.w_sum),
            w_max: m(&g.w_max),
            b: m(&g.b),
            w_out: m(&g.w_out),
        }
    }
}

/// One graph's mean squared error: node features `x: [NODES, FEATURES]`, edges `src ->
/// dst` (`[EDGES]` each), targets `y: [NODES, 1]`.
#[vmap(in_axes = (None, 0, 0, 0, 0))]
#[grad(wrt(p))]
fn loss(p: &Gnn, x: &Tensor, src: &Tensor, dst: &Tensor, y: &Tensor) -> Tensor {
    let messages = (x.index_select(0, src).matmul(&p.w_msg) + &p.b_msg).tanh();
    let n = x.shape()[0];
    let summed = messages.segment_sum(dst, n).matmul(&p.w_sum);
    let largest = messages.segment_max(dst, n).matmul(&p.w_max);
    let h = (summed + largest + &p.b).tanh();
    (h.matmul(&p.w_out) - y).square().mean()
}

/// `BATCH` random graphs: features, sources, destinations (every node sends itself an
/// edge, so no node is left without one) and targets.
fn graphs(key: Key) -> (Tensor, Tensor, Tensor, Tensor) {
    let (k1, k2) = key.split();
    let (k2, k3) = k2.split();
    let x = Tensor::uniform(k1, &[BATCH, NODES, FEATURES], -1.0, 1.0, DType::F32);
    let node = |u: f32| ((u * NODES as f32) as i32).min(NODES as i32 - 1);
    let random = EDGES - NODES;
    let ends = |k: Key| {
        let u = Tensor::uniform(k, &[BATCH, random], 0.0, 1.0, DType::F32).to_vec::<f32>();
        (0..BATCH)
            .flat_map(|g| {
                let own: Vec<i32> = u[g * random..(g + 1) * random]
                    .iter()
                    .map(|v| node(*v))
                    .collect();
                (0..NODES as i32).chain(own)
            })
            .collect::<Vec<i32>>()
    };
    let (src, dst) = (ends(k2), ends(k3));
    // targets: max of the senders' first feature plus half the sum of their second
    let xv = x.to_vec::<f32>();
    let mut y = vec![0.0f32; BATCH * NODES];
    for g in 0..BATCH {
        let mut top = [f32::NEG_INFINITY; NODES];
        let mut sum = [0.0f32; NODES];
        for e in 0..EDGES {
            let (s, d) = (src[g * EDGES + e] as usize, dst[g * EDGES + e] as usize);
            let f = &xv[(g * NODES + s) * FEATURES..];
            top[d] = top[d].max(f[0]);
            sum[d] += f[1];
        }
        for v in 0..NODES {
            y[g * NODES + v] = top[v] + 0.5 * sum[v];
        }
    }
    (
        x,
        Tensor::from_vec(src, &[BATCH, EDGES]),
        Tensor::from_vec(dst, &[BATCH, EDGES]),
        Tensor::from_vec(y, &[BATCH, NODES, 1]),
    )
}

fn main() {
    let mut p = Gnn::new(Key::new(0));
    let mut adam = Adam::new(0.005);
    let (tx, tsrc, tdst, ty) = graphs(Key::new(1_000_000));
    let test = |p: &Gnn| loss_vmap(p, &tx, &tsrc, &tdst, &ty).mean().item::<f32>();
    // the error of predicting every target's mean
    let baseline = (&ty - ty.mean()).square().mean().item::<f32>();
    let first = test(&p);
    println!("step   train loss   test loss   (predicting the mean: {baseline:.4})");
    for step in 0..=600 {
        let (x, src, dst, y) = graphs(Key::new(step));
        // every graph's own gradient, in one batched pass
        let (l, g) = loss_value_and_grad_vmap(&p, &x, &src, &dst, &y);
        if step % 100 == 0 {
            println!("{step:4} {:12.5} {:11.5}", l.mean().item::<f32>(), test(&p));
        }
        adam.step(&mut p, &Gnn::mean(&g));
    }
    let last = test(&p);
    println!("test loss {first:.4} -> {last:.5} (predicting the mean: {baseline:.4})");
    assert!(
        last < 0.1 * baseline,
        "the network did not learn: {first} -> {last}, baseline {baseline}"
    );
    // the batched gradient is each graph's own: graph 0's, alone, agrees
    let (_, g) = loss_value_and_grad_vmap(&p, &tx, &tsrc, &tdst, &ty);
    let pick = |t: &Tensor| t.slice(0, 0, 1).squeeze(0);
    let alone = loss_grad(&p, &pick(&tx), &pick(&tsrc), &pick(&tdst), &pick(&ty));
    let gap = (pick(&g.w_sum) - &alone.w_sum).abs().max().item::<f32>();
    assert!(
        gap < 1e-5,
        "graph 0's batched gradient differs from its own: {gap}"
    );
    let own = loss(&p, &pick(&tx), &pick(&tsrc), &pick(&tdst), &pick(&ty)).item::<f32>();
    let batched = loss_vmap(&p, &tx, &tsrc, &tdst, &ty).to_vec::<f32>()[0];
    assert!(
        (own - batched).abs() <= 1e-6 * (1.0 + own),
        "{own} vs {batched}"
    );
    println!("graph 0 alone: loss {own:.5}, its gradient as in the batch (gap {gap:.1e})");
}
