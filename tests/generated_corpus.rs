//! The generated `#[grad]` corpus: a few hundred random programs written by `build.rs`
//! (fixed seed), each checked the same three ways as the hand-written corpus, so the
//! transforms meet shapes of code nobody wrote by hand.
//!
//! Every program has the signature `fn gen_N(x: f64, y: f64, v: &[f64], n: usize) -> f64`
//! (`n` is inactive), so the generated entry points fit one table of function pointers.
//! Points are drawn from a fixed-seed generator; a point whose finite differences
//! straddle a kink (a branch, `max`, `min`, a `break` on an active condition) is skipped
//! and another drawn, and the test fails if too many programs run out of good points.

mod common;

use common::{Flat, check_at, fd_is_unreliable};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The gradient of a program: (d/dx, d/dy, d/dv).
type Grads = (f64, f64, Vec<f64>);
/// `gen_N_jvp(x, y, v, n, dx, dy, dv)`.
type Jvp = fn(f64, f64, &[f64], usize, f64, f64, &[f64]) -> (f64, f64);
/// `gen_N_vjp` with its pullback applied to a cotangent: `(x, y, v, n, c)`.
type VjpApply = fn(f64, f64, &[f64], usize, f64) -> (f64, Grads);

/// One generated program's entry points.
struct Program {
    name: &'static str,
    f: fn(f64, f64, &[f64], usize) -> f64,
    grad: fn(f64, f64, &[f64], usize) -> Grads,
    jvp: Jvp,
    vjp: VjpApply,
    value_and_grad: fn(f64, f64, &[f64], usize) -> (f64, Grads),
}

#[allow(
    unused_mut,
    unused_variables,
    unused_assignments,
    unused_parens,
    clippy::all
)]
mod generated {
    use super::Program;
    use ferrax::prelude::*;
    include!(concat!(env!("OUT_DIR"), "/generated_corpus.rs"));
    pub(super) const ALL: &[Program] = PROGRAMS;
}

/// Length of the slice argument `v`.
const V_LEN: usize = 3;
/// Good points checked per program, and the most points drawn to find them.
const POINTS: usize = 3;
const TRIES: usize = 12;

/// xorshift64*, for reproducible points.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }
}

/// Checks one program at up to [`POINTS`] good points; returns how many were good.
fn check_program(p: &Program, rng: &mut Rng) -> usize {
    let mut good = 0;
    for t in 0..TRIES {
        if good == POINTS {
            break;
        }
        let n = t % 4;
        let mut x = vec![rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5)];
        x.extend((0..V_LEN).map(|_| rng.uniform(-1.0, 1.0)));
        let f = |q: &[f64]| (p.f)(q[0], q[1], &q[2..], n);
        if fd_is_unreliable(&f, &x) {
            continue;
        }
        good += 1;
        let name = format!("{} (n = {n})", p.name);
        check_at(
            &name,
            &x,
            &f,
            &|q| (p.grad)(q[0], q[1], &q[2..], n).flat(),
            &|q, d| (p.jvp)(q[0], q[1], &q[2..], n, d[0], d[1], &d[2..]),
            &|q, c| {
                let (v, g) = (p.vjp)(q[0], q[1], &q[2..], n, c);
                (v, g.flat())
            },
            &|q| {
                let (v, g) = (p.value_and_grad)(q[0], q[1], &q[2..], n);
                (v, g.flat())
            },
        );
    }
    good
}

#[test]
fn every_generated_program_passes_the_three_way_check() {
    let programs = generated::ALL;
    assert!(
        programs.len() >= 200,
        "only {} generated programs",
        programs.len()
    );
    let mut rng = Rng(0x0BAD_5EED_1234_5678);
    let mut failures = Vec::new();
    let mut starved = Vec::new();
    let mut points = 0;
    for p in programs {
        match catch_unwind(AssertUnwindSafe(|| check_program(p, &mut rng))) {
            Ok(good) => {
                points += good;
                if good < 2 {
                    starved.push(p.name);
                }
            }
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                failures.push(format!("{}: {msg}", p.name));
            }
        }
    }
    eprintln!(
        "generated corpus: {} programs, {points} points checked three ways, {} failed, \
         {} with fewer than 2 points away from kinks",
        programs.len(),
        failures.len(),
        starved.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} generated programs failed (source: $OUT_DIR/generated_corpus.rs):\n{}",
        failures.len(),
        programs.len(),
        failures.join("\n")
    );
    // Kinks are rare at random points: a program that keeps landing on one is suspect.
    assert!(
        starved.len() * 50 <= programs.len(),
        "{} programs had fewer than 2 points away from kinks: {starved:?}",
        starved.len()
    );
}
