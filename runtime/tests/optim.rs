//! The optimizers against optax: ten steps on a fixed quadratic, in f32 and f64, compared
//! with the trajectories `reference/optim.py` recorded (reference/optim.txt).

use ferrax_runtime::optim::{Adam, Momentum, Optimizer, Sgd};
use ferrax_runtime::prelude::*;

const REFERENCE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../reference/optim.txt"
));

// the problem of reference/optim.py
const P0: [f64; 5] = [0.5, -1.0, 2.0, 0.0, 3.0];
const A: [f64; 5] = [1.0, 2.0, 0.5, 4.0, 0.1];
const C: [f64; 5] = [1.0, 1.0, -1.0, 0.5, 2.0];
const Q0: f64 = 1.5;
const AQ: f64 = 3.0;
const CQ: f64 = -0.5;
const STEPS: usize = 10;

/// The parameters: a vector tensor and a scalar of the same precision.
trait Precision: Differentiable + Copy + std::fmt::Debug {
    const DTYPE: DType;
    fn from(v: f64) -> Self;
    fn to(self) -> f64;
    /// `a * (q - c)` in this precision.
    fn grad(q: Self) -> Self;
}

impl Precision for f32 {
    const DTYPE: DType = DType::F32;
    fn from(v: f64) -> f32 {
        v as f32
    }
    fn to(self) -> f64 {
        self as f64
    }
    fn grad(q: f32) -> f32 {
        AQ as f32 * (q - CQ as f32)
    }
}

impl Precision for f64 {
    const DTYPE: DType = DType::F64;
    fn from(v: f64) -> f64 {
        v
    }
    fn to(self) -> f64 {
        self
    }
    fn grad(q: f64) -> f64 {
        AQ * (q - CQ)
    }
}

fn tensor(v: &[f64], dtype: DType) -> Tensor {
    Tensor::from_vec(v.to_vec(), &[v.len()]).to_dtype(dtype)
}

/// Runs `opt` for [`STEPS`] steps, returning the parameters (as f64) after each.
fn trajectory<S: Precision>(mut opt: impl Optimizer<(Tensor, S)>) -> Vec<Vec<f64>> {
    let (a, c) = (tensor(&A, S::DTYPE), tensor(&C, S::DTYPE));
    let mut params = (tensor(&P0, S::DTYPE), S::from(Q0));
    let mut out = Vec::new();
    for _ in 0..STEPS {
        let grads = ((&params.0 - &c) * &a, S::grad(params.1));
        opt.step(&mut params, &grads);
        let mut row = params.0.to_dtype(DType::F64).to_vec::<f64>();
        row.push(params.1.to());
        out.push(row);
    }
    out
}

fn reference(name: &str, dtype: &str) -> Vec<Vec<f64>> {
    let rows: Vec<Vec<f64>> = REFERENCE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w[0] == name && w[1] == dtype)
        .map(|w| w[3..].iter().map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        rows.len(),
        STEPS,
        "{name} {dtype}: reference/optim.txt incomplete"
    );
    rows
}

/// Compares every step within `ulps` units in the last place of the precision.
fn check(name: &str, dtype: &str, got: &[Vec<f64>], ulps: f64) {
    let want = reference(name, dtype);
    let eps = if dtype == "float32" {
        f32::EPSILON as f64
    } else {
        f64::EPSILON
    };
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        for (i, (x, y)) in g.iter().zip(w).enumerate() {
            let tol = ulps * eps * y.abs().max(1e-3);
            assert!(
                (x - y).abs() <= tol,
                "{name} {dtype}, step {}, leaf element {i}: ours {x:e}, optax {y:e} (difference {:e}, tolerance {tol:e})",
                step + 1,
                (x - y).abs()
            );
        }
    }
}

#[test]
fn sgd_matches_optax() {
    check("sgd", "float32", &trajectory::<f32>(Sgd::new(0.1)), 0.0);
    check("sgd", "float64", &trajectory::<f64>(Sgd::new(0.1)), 0.0);
}

#[test]
fn momentum_matches_optax() {
    check(
        "momentum",
        "float32",
        &trajectory::<f32>(Momentum::new(0.1, 0.9)),
        0.0,
    );
    check(
        "momentum",
        "float64",
        &trajectory::<f64>(Momentum::new(0.1, 0.9)),
        0.0,
    );
    check(
        "nesterov",
        "float32",
        &trajectory::<f32>(Momentum::nesterov(0.1, 0.9)),
        0.0,
    );
    check(
        "nesterov",
        "float64",
        &trajectory::<f64>(Momentum::nesterov(0.1, 0.9)),
        0.0,
    );
}

#[test]
fn adam_matches_optax() {
    fn adam<P: Differentiable>() -> Adam<P> {
        Adam::new(0.05).with_betas(0.9, 0.999).with_eps(1e-8)
    }
    // f32: bit for bit. f64: XLA's f64 `power` (in the bias corrections) and libm's
    // differ in the last place for some steps.
    check("adam", "float32", &trajectory::<f32>(adam()), 0.0);
    check("adam", "float64", &trajectory::<f64>(adam()), 4.0);
}

#[test]
fn shared_parameters_are_copied_not_overwritten() {
    let p = Tensor::ones(&[3], DType::F32);
    let keep = p.clone();
    let mut params = vec![p];
    let mut opt = Adam::new(0.1);
    opt.step(&mut params, &vec![Tensor::ones(&[3], DType::F32)]);
    assert_eq!(keep.to_vec::<f32>(), vec![1.0; 3]);
    let moved = params[0].to_vec::<f32>();
    assert!(moved.iter().all(|&v| (v - 0.9).abs() < 1e-6), "{moved:?}");
    assert_eq!(opt.count(), 1);
}

#[test]
fn large_tensors_update_in_parallel_like_small_ones() {
    // above the parallel threshold: same values as element-by-element on small pieces
    let n = 300_000;
    let p = Tensor::arange(0.0, n as f64, 1.0, DType::F32) * 1e-5;
    let g = p.sin();
    let mut big = p.clone();
    let mut opt = Momentum::nesterov(0.01, 0.9);
    for _ in 0..3 {
        opt.step(&mut big, &g);
    }
    let mut small: Vec<Tensor> = (0..n / 1000)
        .map(|i| p.slice(0, i * 1000, (i + 1) * 1000))
        .collect();
    let gs: Vec<Tensor> = (0..n / 1000)
        .map(|i| g.slice(0, i * 1000, (i + 1) * 1000))
        .collect();
    let mut opt = Momentum::nesterov(0.01, 0.9);
    for _ in 0..3 {
        opt.step(&mut small, &gs);
    }
    let small: Vec<&Tensor> = small.iter().collect();
    assert_eq!(
        big.to_vec::<f32>(),
        Tensor::concat(&small, 0).to_vec::<f32>()
    );
}

#[test]
fn mismatched_gradients_are_errors_that_change_nothing() {
    let mut params = (Tensor::ones(&[2], DType::F32), 1.0f32);
    let mut opt = Adam::new(0.1);
    let err = opt
        .try_step(&mut params, &(Tensor::ones(&[3], DType::F32), 1.0))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("Adam::step: shapes [2] and [3]"), "{err}");
    assert_eq!(params.0.to_vec::<f32>(), vec![1.0, 1.0]);
    assert_eq!(params.1, 1.0);
    assert_eq!(opt.count(), 0);
}
