//! A damped pendulum's parameters, fitted to observed angles through a fourth-order
//! Runge-Kutta solver: `#[grad]` of the whole simulation with respect to a struct of floats
//! read as written (`p.g_over_l`), constants passed straight to another `#[grad]` function,
//! and Adam over the struct.
//!
//! Run it with `cargo run --release --example pendulum`.

use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

const DT: f64 = 0.01;
const STEPS: usize = 200;
/// An observation every `EVERY` steps.
const EVERY: usize = 20;
const THETA0: f64 = 1.0;

/// Angles observed every 0.2 s, released at rest from 1 rad (from g/l = 9, damping 0.3).
const OBSERVED: [f64; 10] = [
    0.854009, 0.460000, -0.059350, -0.528727, -0.801043, -0.812329, -0.574924, -0.167777, 0.271426,
    0.595156,
];

#[derive(Clone, Debug, Differentiable)]
struct Pendulum {
    /// Gravity over length, 1/s^2.
    g_over_l: f64,
    /// Damping, 1/s.
    damping: f64,
}

/// Angular acceleration.
#[grad]
fn accel(p: &Pendulum, theta: f64, omega: f64) -> f64 {
    -p.g_over_l * theta.sin() - p.damping * omega
}

/// The squared misfit of an RK4 simulation to the observations.
#[grad(wrt(p))]
fn misfit(p: &Pendulum, theta0: f64, observed: &[f64]) -> f64 {
    let (mut th, mut om) = (theta0, 0.0);
    let mut loss = 0.0;
    for step in 0..STEPS {
        let (k1t, k1o) = (om, accel(p, th, om));
        let (k2t, k2o) = (
            om + 0.5 * DT * k1o,
            accel(p, th + 0.5 * DT * k1t, om + 0.5 * DT * k1o),
        );
        let (k3t, k3o) = (
            om + 0.5 * DT * k2o,
            accel(p, th + 0.5 * DT * k2t, om + 0.5 * DT * k2o),
        );
        let (k4t, k4o) = (om + DT * k3o, accel(p, th + DT * k3t, om + DT * k3o));
        th += DT / 6.0 * (k1t + 2.0 * k2t + 2.0 * k3t + k4t);
        om += DT / 6.0 * (k1o + 2.0 * k2o + 2.0 * k3o + k4o);
        if step % EVERY == EVERY - 1 {
            loss += (th - observed[step / EVERY]).powi(2);
        }
    }
    loss
}

pub fn main() {
    let mut p = Pendulum {
        g_over_l: 7.0,
        damping: 0.1,
    };
    let mut adam = Adam::new(0.05);
    println!("step      misfit     g/l   damping");
    for step in 0..=300 {
        let (loss, g) = misfit_value_and_grad(&p, THETA0, &OBSERVED);
        if step % 50 == 0 {
            println!("{step:4} {loss:11.3e} {:7.4} {:9.4}", p.g_over_l, p.damping);
        }
        adam.step(&mut p, &g);
    }
    let loss = misfit(&p, THETA0, &OBSERVED);
    println!(
        "fitted: g/l = {:.4}, damping = {:.4}",
        p.g_over_l, p.damping
    );
    assert!(
        loss < 1e-9 && (p.g_over_l - 9.0).abs() < 1e-2 && (p.damping - 0.3).abs() < 1e-2,
        "the fit did not converge: {p:?}, misfit {loss:.3e}"
    );
}
