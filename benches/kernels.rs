//! Criterion benchmarks of the CPU kernels themselves (`ferrax::cpu::kernels`), on
//! preallocated buffers: what the tensor layer's overheads (allocation, broadcasting,
//! dispatch) are measured against. Includes the plain-copy bandwidth reference.
//!
//! `cargo bench --bench kernels [-- FILTER]`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrax::cpu::kernels::{self, BinaryOp, MatRef, ReduceOp, SoftmaxOp, UnaryOp};

const M16: usize = 1 << 24;

/// Deterministic values in [-4, 4).
fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
        })
        .collect()
}

fn elementwise(c: &mut Criterion) {
    let x = data(M16, 1);
    let y = data(M16, 2);
    let mut out = vec![0.0f32; M16];
    let mut g = c.benchmark_group("elementwise_16M_f32");
    g.throughput(Throughput::Bytes((2 * 4 * M16) as u64));
    g.bench_function("copy", |b| b.iter(|| out.copy_from_slice(black_box(&x))));
    for op in [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Ln,
        UnaryOp::Tanh,
        UnaryOp::Sin,
        UnaryOp::Sigmoid,
    ] {
        g.bench_function(BenchmarkId::new("unary", format!("{op:?}")), |b| {
            b.iter(|| kernels::unary(op, black_box(&x), &mut out))
        });
    }
    g.bench_function("binary_mul", |b| {
        b.iter(|| kernels::binary(BinaryOp::Mul, black_box(&x), &y, &mut out))
    });
    g.bench_function("binary_mul_scalar", |b| {
        b.iter(|| kernels::binary_scalar_rhs(BinaryOp::Mul, black_box(&x), 1.5, &mut out))
    });
    g.finish();
}

/// Unary functions on a buffer that stays in L1: their arithmetic cost per element.
fn unary_in_cache(c: &mut Criterion) {
    let n = 4096;
    let x = data(n, 7);
    let mut out = vec![0.0f32; n];
    let mut g = c.benchmark_group("unary_in_cache_4096_f32");
    g.throughput(Throughput::Elements(n as u64));
    for op in [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Expm1,
        UnaryOp::Ln,
        UnaryOp::Log1p,
        UnaryOp::Sin,
        UnaryOp::Tan,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Softplus,
        UnaryOp::Erf,
    ] {
        g.bench_function(format!("{op:?}"), |b| {
            b.iter(|| kernels::unary(op, black_box(&x), &mut out))
        });
    }
    g.finish();
}

/// Cheap and expensive kernels at sizes around the parallel threshold: run with
/// `RAYON_NUM_THREADS=1` and without to see where splitting pays.
fn sizes(c: &mut Criterion) {
    let x = data(1 << 20, 8);
    let mut out = vec![0.0f32; 1 << 20];
    let mut g = c.benchmark_group("sizes_f32");
    for n in [1 << 13, 1 << 15, 1 << 17, 1 << 19] {
        g.throughput(Throughput::Elements(n as u64));
        for op in [UnaryOp::Neg, UnaryOp::Exp] {
            g.bench_function(BenchmarkId::new(format!("{op:?}"), n), |b| {
                b.iter(|| kernels::unary(op, black_box(&x[..n]), &mut out[..n]))
            });
        }
        g.bench_function(BenchmarkId::new("Sum", n), |b| {
            b.iter(|| kernels::reduce_all(ReduceOp::Sum, black_box(&x[..n])))
        });
    }
    g.finish();
}

fn reductions(c: &mut Criterion) {
    let x = data(M16, 3);
    let mut g = c.benchmark_group("reduce_16M_f32");
    g.throughput(Throughput::Bytes((4 * M16) as u64));
    for op in [ReduceOp::Sum, ReduceOp::Max] {
        g.bench_function(format!("{op:?}"), |b| {
            b.iter(|| kernels::reduce_all(op, black_box(&x)))
        });
    }
    let mut out = vec![0.0f32; 4096];
    g.bench_function("sum_rows_4096x4096", |b| {
        b.iter(|| kernels::reduce_axis(ReduceOp::Sum, black_box(&x), 4096, 4096, 1, &mut out))
    });
    g.bench_function("sum_columns_4096x4096", |b| {
        b.iter(|| kernels::reduce_axis(ReduceOp::Sum, black_box(&x), 1, 4096, 4096, &mut out))
    });
    g.finish();
}

fn softmax(c: &mut Criterion) {
    let (rows, n) = (4096, 1024);
    let x = data(rows * n, 4);
    let mut g = c.benchmark_group("softmax_4096x1024_f32");
    g.throughput(Throughput::Bytes((2 * 4 * rows * n) as u64));
    // every op along both axes: the row kernel and the column kernel (where log-softmax
    // and softmax over columns once ran 16-20x slow, their closures compiled without SIMD)
    for (name, op) in [
        ("softmax", SoftmaxOp::Softmax),
        ("log_softmax", SoftmaxOp::LogSoftmax),
        ("logsumexp", SoftmaxOp::LogSumExp),
    ] {
        let per_lane = |lanes: usize| {
            if op == SoftmaxOp::LogSumExp {
                lanes
            } else {
                rows * n
            }
        };
        let mut out = vec![0.0f32; per_lane(rows)];
        g.bench_function(format!("{name}/last_axis"), |b| {
            b.iter(|| kernels::softmax_axis(op, black_box(&x), rows, n, 1, &mut out))
        });
        let mut out = vec![0.0f32; per_lane(n)];
        g.bench_function(format!("{name}/first_axis"), |b| {
            b.iter(|| kernels::softmax_axis(op, black_box(&x), 1, rows, n, &mut out))
        });
    }
    g.finish();
}

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_f32");
    for n in [16, 64, 256, 1024, 2048] {
        let a = data(n * n, 5);
        let b = data(n * n, 6);
        let mut out = vec![0.0f32; n * n];
        fn view(d: &[f32], n: usize) -> MatRef<'_, f32> {
            MatRef {
                data: d,
                offset: 0,
                rs: n as isize,
                cs: 1,
            }
        }
        g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |bch| {
            bch.iter(|| kernels::matmul(n, n, n, view(black_box(&a), n), view(&b, n), &mut out))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = elementwise, unary_in_cache, sizes, reductions, softmax, matmul
}
criterion_main!(benches);
