//! Issue 4's memory target: a gradient step needs at most twice the memory the forward
//! pass needs. What a pass needs: the parameters and the batch it reads, plus the
//! high-water mark of live heap bytes while it runs (a counting allocator; the buffer
//! pool's retained buffers count as live: they are memory the process holds). The step's
//! figure includes its output, a gradient as large as the parameters.

#[path = "../examples/data/mlp_model.rs"]
#[allow(dead_code)]
mod mlp_model;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use ferrax::prelude::*;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The high-water mark of live bytes while `f` runs, above the live bytes before it.
fn high_water(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    f();
    PEAK.load(Relaxed) - base
}

#[test]
fn a_gradient_step_needs_at_most_twice_the_forward_memory() {
    let start = LIVE.load(Relaxed);
    let params = mlp_model::Mlp::new(Key::new(1), &[784, 512, 512, 10], DType::F32);
    let x = Tensor::normal(Key::new(2), &[256, 784], DType::F32);
    let labels: Vec<i32> = (0..256).map(|i| i % 10).collect();
    let y = Tensor::from_vec(labels, &[256]).one_hot(10, DType::F32);
    let inputs = LIVE.load(Relaxed) - start;
    // the forward pass first, in a fresh process: its needs, unflattered by reuse
    let forward = high_water(|| {
        std::hint::black_box(mlp_model::loss(&params, &x, &y));
    });
    let step = high_water(|| {
        std::hint::black_box(mlp_model::loss_value_and_grad(&params, &x, &y));
    });
    println!(
        "parameters and batch {:.2} MB; forward pass {:.2} MB more, step {:.2} MB more; step / forward = {:.2}",
        inputs as f64 / 1e6,
        forward as f64 / 1e6,
        step as f64 / 1e6,
        (inputs + step) as f64 / (inputs + forward) as f64
    );
    assert!(
        inputs + step <= 2 * (inputs + forward),
        "a step needs {} bytes, the forward pass {}",
        inputs + step,
        inputs + forward
    );
}
