//! Criterion benchmarks of the tensor-level workloads of the JAX comparison
//! (`benches/workloads`): matmul, `tanh(x * w + b)`, softmax, sum, and the plain-copy
//! bandwidth reference. `benches/compare.sh` times the same workloads beside JAX.
//!
//! `cargo bench --bench runtime [-- FILTER]`

mod workloads;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use workloads::Work;

fn tensor_workloads(c: &mut Criterion) {
    for w in workloads::all() {
        let mut p = (w.build)();
        let mut g = c.benchmark_group(w.name);
        match p.work {
            Work::Flops(f) => g.throughput(Throughput::Elements(f as u64)),
            Work::Bytes(b) => g.throughput(Throughput::Bytes(b as u64)),
        };
        g.bench_function("ferrax", |b| b.iter(&mut p.run));
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    targets = tensor_workloads
}
criterion_main!(benches);
