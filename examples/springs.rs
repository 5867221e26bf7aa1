//! A hanging chain, found by Newton's method on its energy: `#[hessian]` of plain Rust
//! that walks a slice of coordinates through views (`&x[2 * i..2 * i + 2]`,
//! `x.chunks_exact(2)`), calls another `#[grad]` function for each spring, and checks its
//! input with `assert_eq!`.
//!
//! Run it with `cargo run --release --example springs`.

use ferrax::prelude::*;

/// Links in the chain; its two ends are pinned, the `LINKS - 1` joints between them move.
const LINKS: usize = 24;
/// The pinned ends, `SPAN` apart: the chain (of length `LINKS * REST`) sags between them.
const SPAN: f64 = 16.0;
const REST: f64 = 1.0;
const STIFFNESS: f64 = 400.0;
const WEIGHT: f64 = 1.0;

/// The energy of one spring between two points.
#[grad]
fn spring(a: &[f64], b: &[f64]) -> f64 {
    let dx = b[0] - a[0];
    let dy = b[1] - a[1];
    let stretch = (dx * dx + dy * dy).sqrt() - REST;
    0.5 * STIFFNESS * stretch * stretch
}

/// Springs plus gravity, `x` the joints' coordinates `[x0, y0, x1, y1, ..]`.
#[hessian]
#[grad]
fn energy(x: &[f64]) -> f64 {
    assert_eq!(
        x.len(),
        2 * (LINKS - 1),
        "{} coordinates for {} joints",
        x.len(),
        LINKS - 1
    );
    let left = [0.0, 0.0];
    let right = [SPAN, 0.0];
    let n = x.len() / 2;
    let mut e = spring(&left, &x[..2]) + spring(&x[x.len() - 2..], &right);
    for i in 1..n {
        e += spring(&x[2 * (i - 1)..2 * i], &x[2 * i..2 * i + 2]);
    }
    for joint in x.chunks_exact(2) {
        e += WEIGHT * joint[1];
    }
    e
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting (`a` row-major, n x n).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .expect("a row");
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            let (pivot, below) = a.split_at_mut(r);
            for (x, p) in below[0][c..].iter_mut().zip(&pivot[c][c..]) {
                *x -= f * p;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    x
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|g| g * g).sum::<f64>().sqrt()
}

pub fn main() {
    // start: the joints on a parabola between the pins, about as long as the chain
    let mut x: Vec<f64> = (1..LINKS)
        .flat_map(|i| {
            let t = i as f64 / LINKS as f64;
            [t * SPAN, -28.0 * t * (1.0 - t)]
        })
        .collect();
    println!("a chain of {LINKS} links of rest length {REST}, pinned {SPAN} apart");
    println!("step       energy    |gradient|");
    for step in 0..50 {
        let (e, g) = energy_value_and_grad(&x);
        println!("{step:4} {e:12.6} {:13.3e}", norm(&g));
        if norm(&g) < 1e-9 {
            break;
        }
        // Newton: H dx = -g (or -g itself where H is not positive along dx), halved until
        // the energy goes down
        let h = energy_hessian(&x);
        let mut dx = solve(h, g.iter().map(|v| -v).collect());
        if dx.iter().zip(&g).map(|(d, g)| d * g).sum::<f64>() >= 0.0 {
            dx = g.iter().map(|v| -v / STIFFNESS).collect();
        }
        let mut t = 1.0;
        loop {
            let trial: Vec<f64> = x.iter().zip(&dx).map(|(a, d)| a + t * d).collect();
            if energy(&trial) < e || t < 1e-8 {
                x = trial;
                break;
            }
            t *= 0.5;
        }
    }
    let lowest = (0..LINKS - 1)
        .map(|i| x[2 * i + 1])
        .fold(f64::INFINITY, f64::min);
    let g = energy_grad(&x);
    println!(
        "sag at the middle: {lowest:.4}; |gradient| {:.1e}",
        norm(&g)
    );
    assert!(norm(&g) < 1e-8, "Newton's method did not converge");
}
