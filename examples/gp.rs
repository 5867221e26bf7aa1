//! Gaussian process regression whose hyperparameters are fitted by gradient descent on the
//! negative log marginal likelihood: a kernel matrix built with broadcasting, its Cholesky
//! factor, triangular solves and the log-determinant from the factor's diagonal, all
//! differentiated by `#[grad]` with respect to a struct of floats; then the posterior mean
//! on a grid, through the same factor.
//!
//! Run it with `cargo run --release --example gp`.

use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

/// Observations of a noisy sine at `N` points in [0, 6].
const N: usize = 60;
const NOISE: f64 = 0.1;

/// The hyperparameters, as logarithms (so that any step keeps them positive).
#[derive(Clone, Debug, Differentiable)]
struct Hyper {
    log_length: f64,
    log_signal: f64,
    log_noise: f64,
}

/// The squared-exponential kernel between the points `a` `[n]` and `b` `[m]`: `[n, m]`.
#[grad(wrt(h))]
fn kernel(h: &Hyper, a: &Tensor, b: &Tensor) -> Tensor {
    let d = a.unsqueeze(1) - b.unsqueeze(0);
    let ell = h.log_length.exp();
    (d.powi(2) * (-0.5 / (ell * ell))).exp() * (2.0 * h.log_signal).exp()
}

/// The negative log marginal likelihood of `y` at `x` (without the constant `n log 2π / 2`).
#[grad(wrt(h))]
fn nll(h: &Hyper, x: &Tensor, y: &Tensor, eye: &Tensor) -> Tensor {
    let k = kernel(h, x, x) + eye * (2.0 * h.log_noise).exp();
    let l = k.cholesky();
    let alpha = l.solve_triangular(y, true);
    (&alpha * &alpha).sum() * 0.5 + l.diagonal().ln().sum()
}

/// The posterior mean at `at` given the observations.
fn predict(h: &Hyper, x: &Tensor, y: &Tensor, at: &Tensor) -> Tensor {
    let eye = Tensor::eye(x.shape()[0], DType::F64);
    let l = (kernel(h, x, x) + eye * (2.0 * h.log_noise).exp()).cholesky();
    let alpha = l.mt().solve_triangular(&l.solve_triangular(y, true), false);
    kernel(h, at, x).matmul(&alpha)
}

pub fn main() {
    let x = Tensor::linspace(0.0, 6.0, N, DType::F64);
    let noise = Tensor::normal(Key::new(7), &[N], DType::F64) * NOISE;
    let y = x.sin() + noise;
    let eye = Tensor::eye(N, DType::F64);
    let mut h = Hyper {
        log_length: (0.2f64).ln(),
        log_signal: 0.0,
        log_noise: (0.5f64).ln(),
    };
    let mut adam = Adam::new(0.05);
    println!("step        nll   length  signal   noise");
    for step in 0..=300 {
        let (loss, g) = nll_value_and_grad(&h, &x, &y, &eye);
        if step % 50 == 0 {
            println!(
                "{step:4} {:10.4} {:8.4} {:7.4} {:7.4}",
                loss.item::<f64>(),
                h.log_length.exp(),
                h.log_signal.exp(),
                h.log_noise.exp()
            );
        }
        adam.step(&mut h, &g);
    }
    let grid = Tensor::linspace(0.0, 6.0, 200, DType::F64);
    let mean = predict(&h, &x, &y, &grid);
    let rmse = (mean - grid.sin()).powi(2).mean().sqrt().item::<f64>();
    println!(
        "fitted: nll {:.4}, length {:.3}, signal {:.3}, noise {:.3} (true {NOISE}); posterior mean against sin: RMSE {rmse:.4}",
        nll(&h, &x, &y, &eye).item::<f64>(),
        h.log_length.exp(),
        h.log_signal.exp(),
        h.log_noise.exp()
    );
    assert!(
        rmse < 0.06 && (h.log_noise.exp() - NOISE).abs() < 0.05,
        "the fit did not converge: {h:?}, RMSE {rmse:.4}"
    );
}
