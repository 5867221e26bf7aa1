//! Where generated bodies run: a call whose last run took long enough moves its body into
//! rayon's pool (`src/entry.rs`), which must not change what it returns; a call from
//! inside a pool of the user's runs where it is called.

mod common;

use ferrax::prelude::*;

/// A per-point Hessian of a small network: long enough (a few hundred microseconds and
/// more, in a debug build many milliseconds) to run inside the pool from its second call.
#[allow(dead_code)] // (the tests call its Hessians only)
#[vmap(in_axes = (0, None, None))]
#[hessian(wrt(x))]
fn u(x: &Tensor, w1: &Tensor, w2: &Tensor) -> Tensor {
    let h = x.matmul(w1).tanh();
    h.matmul(w2).tanh().sum()
}

fn inputs() -> (Tensor, Tensor, Tensor) {
    let (k1, k) = Key::new(7).split();
    let (k2, k3) = k.split();
    (
        Tensor::normal(k1, &[256, 3], DType::F64),
        Tensor::normal(k2, &[3, 64], DType::F64),
        Tensor::normal(k3, &[64, 8], DType::F64) * 0.2,
    )
}

#[test]
fn repeated_calls_in_place_and_in_the_pool_agree_with_one_example_at_a_time() {
    let (xs, w1, w2) = inputs();
    let first = u_hessian_vmap(&xs, &w1, &w2).to_vec::<f64>();
    // the later calls run inside the pool (where rayon has two threads or more)
    for _ in 0..4 {
        let again = u_hessian_vmap(&xs, &w1, &w2).to_vec::<f64>();
        common::assert_all_close(&again, &first, 1e-12, "a later call");
    }
    // and each example's Hessian is the unbatched one's
    for i in [0, 100, 255] {
        let one = u_hessian(&xs.slice(0, i, i + 1).squeeze(0), &w1, &w2).to_vec::<f64>();
        common::assert_all_close(&first[i * 9..(i + 1) * 9], &one, 1e-12, "example");
    }
}

#[test]
fn calls_from_inside_a_pool_of_the_users_run_there() {
    let (xs, w1, w2) = inputs();
    let want = u_hessian_vmap(&xs, &w1, &w2).to_vec::<f64>();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .expect("a pool");
    // several calls side by side, each on one of the user's threads
    let got: Vec<(Vec<f64>, Option<usize>)> = pool.install(|| {
        use rayon::prelude::*;
        (0..6)
            .into_par_iter()
            .map(|_| {
                let h = u_hessian_vmap(&xs, &w1, &w2).to_vec::<f64>();
                (h, rayon::current_thread_index())
            })
            .collect()
    });
    for (h, thread) in got {
        assert!(thread.is_some(), "ran on the user's pool");
        common::assert_all_close(&h, &want, 1e-12, "inside the user's pool");
    }
}
