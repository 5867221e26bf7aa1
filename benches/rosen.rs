//! Rosenbrock over `&[f64]` with a plain `for` loop, n = 1,000,000: the primal against the
//! gradient `#[grad]` generates (issue 3's cheap-gradient target: `rosen_grad` at most 3x
//! `rosen`, and no slower than JAX's `jit(grad)` of the vectorised Rosenbrock).
//!
//! Run: `cargo bench --bench rosen`.
//!
//! The reverse sweep is a gather: each element `g[j]` sums the contributions of the
//! iterations `j` and `j - 1` that read `x[j]`, recomputing their intermediates (nothing is
//! stored per iteration), and is written once. Its iterations are independent, so the
//! generated code hands the main gather loop to `__private::split_for`, which cuts it into
//! pieces on rayon's threads (from 32K iterations) and runs each piece compiled for AVX-512
//! or AVX2 where the CPU has them (baseline x86-64 would give two f64 lanes). Its extra
//! memory is the gradient itself (checked in `tests/grad_smoke.rs`).
//!
//! Latest figures (2-core AMD EPYC VM with AVX-512, 2026-12-04, best of 100 runs, two rayon
//! threads): rosen 0.90 ms (a serial sum: one dependent addition per element), rosen_grad
//! 0.33 ms (0.36x the primal), rosen_value_and_grad 1.40 ms. Side by side with JAX 0.10.2's
//! `jit(grad)` of the vectorised form (`benches/compare.sh rosen`): see `benches/README.md`.

use criterion::{Criterion, criterion_group};
use ferrax::prelude::*;
use std::hint::black_box;
use std::time::Instant;

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

fn input() -> Vec<f64> {
    (0..1_000_000)
        .map(|i| 0.5 + 0.4 * ((i as f64) * 0.37).sin())
        .collect()
}

fn bench(c: &mut Criterion) {
    let x = input();
    let mut g = c.benchmark_group("rosen_1e6");
    g.bench_function("rosen", |b| b.iter(|| rosen(black_box(&x))));
    g.bench_function("rosen_grad", |b| b.iter(|| rosen_grad(black_box(&x))));
    g.bench_function("rosen_value_and_grad", |b| {
        b.iter(|| rosen_value_and_grad(black_box(&x)))
    });
    g.finish();
}

/// Best of 100 runs of each: on a shared machine the minimum is the steadiest figure.
fn best_of(x: &[f64]) {
    let time = |f: &dyn Fn()| {
        (0..100)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let p = time(&|| {
        black_box(rosen(black_box(x)));
    });
    let g = time(&|| {
        black_box(rosen_grad(black_box(x)));
    });
    let vg = time(&|| {
        black_box(rosen_value_and_grad(black_box(x)));
    });
    println!(
        "best of 100, n = {}: rosen {:.3} ms, rosen_grad {:.3} ms ({:.2}x), rosen_value_and_grad {:.3} ms ({:.2}x)",
        x.len(),
        p * 1e3,
        g * 1e3,
        g / p,
        vg * 1e3,
        vg / p
    );
}

criterion_group!(benches, bench);

fn main() {
    best_of(&input());
    benches();
    Criterion::default().configure_from_args().final_summary();
}
