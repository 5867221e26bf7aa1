//! Rosenbrock over `&[f64]` with a plain `for` loop, n = 1,000,000: the primal against the
//! gradient `#[grad]` generates (issue 3's cheap-gradient target: `rosen_grad` at most 3x
//! `rosen`, and no slower than JAX's `jit(grad)` of the vectorised Rosenbrock).
//!
//! Run: `cargo bench --bench rosen`.

use criterion::{Criterion, criterion_group, criterion_main};
use ferrax::prelude::*;
use std::hint::black_box;

#[grad]
fn rosen(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    s
}

fn bench(c: &mut Criterion) {
    let n = 1_000_000;
    let x: Vec<f64> = (0..n)
        .map(|i| 0.5 + 0.4 * ((i as f64) * 0.37).sin())
        .collect();
    let mut g = c.benchmark_group("rosen_1e6");
    g.bench_function("rosen", |b| b.iter(|| rosen(black_box(&x))));
    g.bench_function("rosen_grad", |b| b.iter(|| rosen_grad(black_box(&x))));
    g.bench_function("rosen_value_and_grad", |b| {
        b.iter(|| rosen_value_and_grad(black_box(&x)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
