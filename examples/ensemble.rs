//! Per-example sensitivities of an ensemble of simulations: a predator-prey model
//! (Lotka-Volterra, 400 explicit steps) started from 20,000 perturbed initial populations,
//! and for each the gradient of its squared miss of a target with respect to the four
//! shared rates and its own starting point. `#[vmap] #[grad]` of plain scalar code: the
//! batched gradient runs eight simulations at once in SIMD lanes (each lane exactly what
//! the unbatched `_grad` computes, checked here bit for bit against a loop of it).
//!
//! Run it with `cargo run --release --example ensemble`.

use ferrax::prelude::*;
use std::time::Instant;

const STEPS: usize = 400;
const DT: f64 = 0.01;
const MEMBERS: usize = 20_000;

/// The squared miss of the target populations after `STEPS` steps, with rates
/// `r = [prey growth, predation, predator growth, predator death]`, from `(prey0, pred0)`.
#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(r, prey0))]
fn miss(r: &[f64], prey0: f64, pred0: f64) -> f64 {
    let (mut prey, mut pred) = (prey0, pred0);
    for _ in 0..STEPS {
        let dprey = r[0] * prey - r[1] * prey * pred;
        let dpred = r[2] * prey * pred - r[3] * pred;
        prey += DT * dprey;
        pred += DT * dpred;
    }
    (prey - 1.0) * (prey - 1.0) + (pred - 0.5) * (pred - 0.5)
}

fn main() {
    let rates = vec![1.1, 0.4, 0.1, 0.4];
    let noise = |seed| Tensor::normal(Key::new(seed), &[MEMBERS], DType::F64) * 0.05;
    let prey0 = (noise(1) + 1.0).contiguous();
    let pred0 = (noise(2) + 0.5).contiguous();

    // one member at a time, as a loop over `miss_grad` would; then the whole ensemble in
    // one call (each timed at its best of three)
    let (prey, pred) = (prey0.to_vec::<f64>(), pred0.to_vec::<f64>());
    let (loop_time, looped) = best_of_three(|| {
        (0..MEMBERS)
            .map(|k| miss_grad(&rates, prey[k], pred[k]))
            .collect::<Vec<(Vec<f64>, f64)>>()
    });
    let (batched_time, (g_rates, g_prey0)) =
        best_of_three(|| miss_grad_vmap(&rates, &prey0, &pred0));

    assert_eq!(g_rates.shape(), &[MEMBERS, 4]);
    let (gr, gp) = (g_rates.to_vec::<f64>(), g_prey0.to_vec::<f64>());
    for (k, (r, p)) in looped.iter().enumerate() {
        assert_eq!(&gr[4 * k..4 * k + 4], &r[..], "member {k}: rates' gradient");
        assert_eq!(gp[k].to_bits(), p.to_bits(), "member {k}: prey0's gradient");
    }
    let mean = g_rates.mean_axis(0, false).to_vec::<f64>();
    println!(
        "{MEMBERS} simulations of {STEPS} steps, gradients with respect to 4 rates and the start:"
    );
    println!(
        "  a loop of miss_grad: {:7.1} ms; miss_grad_vmap: {:6.1} ms ({:.1}x), the same bits",
        loop_time.as_secs_f64() * 1e3,
        batched_time.as_secs_f64() * 1e3,
        loop_time.as_secs_f64() / batched_time.as_secs_f64()
    );
    println!("  mean gradient of the miss with respect to the rates: {mean:.4?}");
}

/// The shortest of three runs of `f`, and its last result.
fn best_of_three<R>(mut f: impl FnMut() -> R) -> (std::time::Duration, R) {
    let mut best = (std::time::Duration::MAX, None);
    for _ in 0..3 {
        let start = Instant::now();
        let r = f();
        best = (best.0.min(start.elapsed()), Some(r));
    }
    (best.0, best.1.expect("three runs"))
}
