//! Rosenbrock over `&[f64]` with a plain `for` loop, n = 1,000,000: the primal against the
//! gradient `#[grad]` generates (issue 3's cheap-gradient target: `rosen_grad` at most 3x
//! `rosen`, and no slower than JAX's `jit(grad)` of the vectorised Rosenbrock).
//!
//! Run: `cargo bench --bench rosen`.
//!
//! Latest figures (2-core shared AMD EPYC, load ~3.5, x86-64 baseline target so SSE2: two
//! f64 lanes), best of 100 runs: rosen 0.99-1.29 ms, rosen_grad 1.20-1.30 ms (1.0-1.2x),
//! rosen_value_and_grad 2.46-2.58 ms (2.0-2.5x); criterion estimates 1.17-1.48 /
//! 1.81-2.16 / 3.33 ms. Before the gather rewrite: rosen_grad 2.06 ms best (2.0x),
//! criterion 3.08 ms.
//!
//! The reverse sweep is a gather: each element `g[j]` sums the contributions of the
//! iterations `j` and `j - 1` that read `x[j]`, recomputing their intermediates (nothing is
//! stored per iteration), and is written once; the loop has no loop-carried dependence and
//! LLVM vectorises it. Its extra memory is the gradient itself (checked in
//! `tests/grad_smoke.rs`). JAX 0.10.2's `jit(grad)` of the vectorised form, in f64, on the
//! same machine at the same time: best 0.58-0.83 ms, median 1.30-1.55 ms, against our
//! median 1.47-1.92 ms in the comparison table (`rosen_grad_1M_f64`): not yet at parity.
//! What is left is arithmetic (the generated adjoint does more floating-point work than a
//! hand-simplified one, ~1.0 ms in the same form: `x * x` and `100 * a * a` transpose to two
//! products each) and XLA compiling for the host's AVX2 where this builds for baseline x86-64.

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
