//! `FERRAX_GPU_PROFILE=1`: per-kernel GPU times from timestamp queries
//! (`Device::take_kernel_times`). One test in its own binary, since the variable is read
//! when the GPU context is created.

#![cfg(feature = "gpu")]

use ferrax_runtime::prelude::*;

#[test]
fn profiling_reports_each_kernel_with_its_count_and_time() {
    // SAFETY: the only test of this binary sets it before any thread reads it
    unsafe { std::env::set_var("FERRAX_GPU_PROFILE", "1") };
    let dev = match Device::gpu() {
        Ok(d) => d,
        Err(e) if std::env::var("FERRAX_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("FERRAX_REQUIRE_GPU=1 but there is no GPU: {e}")
        }
        Err(e) => return eprintln!("skipping a GPU test: {e}"),
    };
    let a = Tensor::normal(Key::new(1), &[96, 64], DType::F32).to_device(&dev);
    let b = Tensor::normal(Key::new(2), &[64, 80], DType::F32).to_device(&dev);
    for _ in 0..3 {
        (a.matmul(&b).tanh() * 2.0).sum_axis(0, false).eval();
    }
    let times = dev.take_kernel_times();
    if times.is_empty() {
        // an adapter without timestamp queries: profiling says so and stays off
        return eprintln!("the adapter has no timestamp queries");
    }
    eprintln!("{times:#?}");
    let matmul = times
        .iter()
        .find(|k| k.kernel.starts_with("matmul"))
        .expect("the matmul kernel is listed");
    assert_eq!(matmul.count, 3, "three products");
    assert!(times.iter().all(|k| k.count > 0 && k.kernel.len() <= 83));
    assert!(
        times.windows(2).all(|w| w[0].total >= w[1].total),
        "longest first"
    );
    // the elementwise chain is fused into the reduction: two kernels per round
    assert_eq!(times.iter().map(|k| k.count).sum::<u64>(), 6);
    assert!(
        dev.take_kernel_times().is_empty(),
        "taking the times starts afresh"
    );
    // the results are unchanged by profiling
    let want = (a
        .to_device(&Device::Cpu)
        .matmul(&b.to_device(&Device::Cpu))
        .tanh()
        * 2.0)
        .sum_axis(0, false)
        .to_vec::<f32>();
    let got = (a.matmul(&b).tanh() * 2.0)
        .sum_axis(0, false)
        .to_vec::<f32>();
    for (x, y) in want.iter().zip(&got) {
        assert!((x - y).abs() <= 1e-3 * x.abs().max(1.0), "{x} vs {y}");
    }
}
