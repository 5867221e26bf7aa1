//! The splittable PRNG: golden values, determinism, independence of split keys, and the
//! distributions' moments.

use ferrax_runtime::prelude::*;

#[test]
fn same_key_same_numbers_and_splits_differ() {
    let k = Key::new(1234);
    let a = Tensor::normal(k, &[100], DType::F32).to_vec::<f32>();
    assert_eq!(a, Tensor::normal(k, &[100], DType::F32).to_vec::<f32>());
    let (k1, k2) = k.split();
    assert_ne!(k1, k2);
    assert_ne!(Tensor::normal(k1, &[100], DType::F32).to_vec::<f32>(), a);
    let many = k.split_n(100);
    let distinct: std::collections::HashSet<_> = many.iter().collect();
    assert_eq!(distinct.len(), 100);
    // a draw is a prefix-stable function of the counter: the first 10 of 100 are the 10
    assert_eq!(
        Tensor::uniform(k, &[10], 0.0, 1.0, DType::F64).to_vec::<f64>(),
        Tensor::uniform(k, &[100], 0.0, 1.0, DType::F64).to_vec::<f64>()[..10]
    );
}

#[test]
fn moments_match_the_distributions() {
    let n = 200_000;
    for dt in [DType::F32, DType::F64] {
        let x = Tensor::normal(Key::new(3), &[n], dt);
        let mean = x.mean().to_dtype(DType::F64).item::<f64>();
        let var = (&x * &x).mean().to_dtype(DType::F64).item::<f64>() - mean * mean;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "normal {dt}: mean {mean}, var {var}"
        );
        let u = Tensor::uniform(Key::new(4), &[n], -2.0, 6.0, dt);
        let umean = u.mean().to_dtype(DType::F64).item::<f64>();
        let (lo, hi) = (
            u.min().to_dtype(DType::F64).item::<f64>(),
            u.max().to_dtype(DType::F64).item::<f64>(),
        );
        assert!(
            (umean - 2.0).abs() < 0.03 && lo >= -2.0 && hi < 6.0 && lo < -1.99 && hi > 5.99,
            "uniform {dt}: {umean} {lo} {hi}"
        );
        // tails: about 0.27% beyond 3 sigma
        let beyond = x
            .abs()
            .gt(&Tensor::full(&[], 3.0, dt))
            .to_dtype(DType::F64)
            .mean()
            .item::<f64>();
        assert!(
            (beyond - 0.0027).abs() < 0.0006,
            "normal {dt}: {beyond} beyond 3 sigma"
        );
    }
}

/// Values printed by JAX 0.10.2 (CPU, `jax_threefry_partitionable` on, its default) for
/// `jax.random.PRNGKey(42)`: ferrax draws the same numbers from the same key.
#[test]
fn keys_and_draws_match_jax() {
    let k = Key::new(42);
    assert_eq!(k.data(), [0, 42]);
    assert_eq!(Key::new((1 << 40) + 5).data(), [256, 5]);
    let (a, b) = k.split();
    assert_eq!(
        (a.data(), b.data()),
        ([1832780943, 270669613], [64467757, 2916123636])
    );
    assert_eq!(k.split_n(3)[2].data(), [2465931498, 255383827]);
    assert_eq!(k.fold_in(7).data(), [2547012911, 1371500959]);

    // uniform is bit manipulation and one multiply-add: exact
    let u32s = Tensor::uniform(k, &[5], -1.0, 2.0, DType::F32).to_vec::<f32>();
    assert_eq!(
        u32s,
        vec![0.4661287f32, 1.0393915, 0.8488145, 0.68304825, 0.35193384]
    );
    let u64s = Tensor::uniform(k, &[5], -1.0, 2.0, DType::F64).to_vec::<f64>();
    let jax_u64 = [
        0.2801826999497272,
        -0.9549697914540562,
        0.7224332536986056,
        1.1894566907138926,
        1.063401023691698,
    ];
    for (g, w) in u64s.iter().zip(jax_u64) {
        assert!((g - w).abs() < 1e-15, "uniform f64: {g} vs JAX {w}");
    }

    // normal goes through erfinv: equal to a few ulps
    let n32 = Tensor::normal(k, &[5], DType::F32).to_vec::<f32>();
    let jax_n32 = [
        -0.028304616f32,
        0.46713185,
        0.29570296,
        0.15354592,
        -0.12403282,
    ];
    for (g, w) in n32.iter().zip(jax_n32) {
        assert!(
            (g - w).abs() <= 4.0 * f32::EPSILON * w.abs().max(0.1),
            "normal f32: {g} vs JAX {w}"
        );
    }
    let n64 = Tensor::normal(k, &[5], DType::F64).to_vec::<f64>();
    let jax_n64 = [
        -0.18471174528191162,
        -2.169824560397754,
        0.18693555179382582,
        0.6122653570510959,
        0.4896249504757018,
    ];
    for (g, w) in n64.iter().zip(jax_n64) {
        assert!((g - w).abs() < 1e-13, "normal f64: {g} vs JAX {w}");
    }
}
