//! Issue 6's engineering, checked by what the GPU path does rather than by time: a
//! training step on the GPU records its kernels, submits them once and waits once, and
//! reads nothing back until asked; after the first steps its pipelines, buffers and bind
//! groups are reused. (One test in its own binary: the counters are the device's, shared by threads.)
//!
//! Where wgpu finds no adapter this prints why and passes, unless `FERRAX_REQUIRE_GPU=1`.

#[path = "../examples/data/mlp_model.rs"]
#[allow(dead_code)]
mod mlp_model;

use ferrax::prelude::*;

#[test]
fn a_training_step_submits_once_waits_once_and_reads_nothing_back() {
    let dev = match Device::gpu() {
        Ok(d) => d,
        Err(e) if std::env::var("FERRAX_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("FERRAX_REQUIRE_GPU=1 but there is no GPU: {e}")
        }
        Err(e) => return eprintln!("skipping a GPU test: {e}"),
    };
    let on = |t: &Tensor| t.to_device(&dev);
    let params = mlp_model::Mlp::new(Key::new(3), &[64, 32, 32, 10], DType::F32).to_device(&dev);
    let x = on(&Tensor::normal(Key::new(4), &[16, 64], DType::F32));
    let labels: Vec<i32> = (0..16).map(|i| i * 3 % 10).collect();
    let y = on(&Tensor::from_vec(labels, &[16]).one_hot(10, DType::F32));
    let step = || mlp_model::loss_value_and_grad(&params, &x, &y);

    step().eval(); // compiles the pipelines, fills the pool
    step().eval(); // takes its buffers from the full pool, as every later step will
    let before = dev.activity();
    let out = step();
    let recorded = dev.activity();
    out.eval();
    let after = dev.activity();

    assert_eq!(
        recorded.waits, before.waits,
        "computing the step waits for nothing"
    );
    assert_eq!(
        recorded.readbacks, before.readbacks,
        "nor reads anything back"
    );
    assert_eq!(
        after.waits - before.waits,
        1,
        "eval of the whole step waits once"
    );
    assert_eq!(
        after.submissions - before.submissions,
        1,
        "in one submission"
    );
    assert_eq!(after.readbacks, before.readbacks);
    assert_eq!(after.uploads, before.uploads);
    assert_eq!(after.pipelines_compiled, before.pipelines_compiled);
    assert_eq!(
        after.buffers_created, before.buffers_created,
        "buffers come from the pool"
    );
    assert_eq!(
        after.bind_groups_created, before.bind_groups_created,
        "the same buffers as the step before, so its bind groups are reused"
    );
    let dispatches = after.dispatches - before.dispatches;
    eprintln!("one step: {dispatches} dispatches");
    // forward, backward and the softmax cross-entropy of three layers, with elementwise
    // chains fused into their consumers, and no kernel for a gradient leaf that receives
    // one contribution (a lazy zero takes it as it is): 33 kernels when this was written,
    // 39 before lazy zeros worked on the GPU
    assert!((10..=36).contains(&dispatches), "{dispatches} dispatches");

    // reading the loss back is the step's one readback
    let value = out.0.item::<f32>();
    assert!(value.is_finite());
    assert_eq!(dev.activity().readbacks, after.readbacks + 1);
}
