//! Loops whose reverse sweep `#[grad]` turns from scatter into gather (each gradient element
//! sums the contributions of the iterations that read it): stencils of several offsets,
//! ranges shorter than the stencil, empty ranges, ranges not starting at zero, two slices.
//! Each gradient is checked against central finite differences at every length from 0 to 9.

#![allow(clippy::needless_range_loop)]

use ferrax::prelude::*;

fn fd<F: Fn(&[f64]) -> f64>(f: F, x: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    (0..x.len())
        .map(|i| {
            let (mut p, mut m) = (x.to_vec(), x.to_vec());
            p[i] += h;
            m[i] -= h;
            (f(&p) - f(&m)) / (2.0 * h)
        })
        .collect()
}

fn check<F: Fn(&[f64]) -> f64, G: Fn(&[f64]) -> Vec<f64>>(f: F, g: G, what: &str) {
    for n in 0..10 {
        let x: Vec<f64> = (0..n).map(|i| 0.3 + 0.2 * (i as f64 * 1.7).sin()).collect();
        let (got, want) = (g(&x), fd(&f, &x));
        assert_eq!(got.len(), n, "{what}, n = {n}: length");
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "{what}, n = {n}, element {i}: {a} vs finite differences {b}"
            );
        }
    }
}

#[grad]
fn offsets_0_and_2(x: &[f64]) -> f64 {
    let mut s = 0.0;
    if x.len() >= 2 {
        for i in 0..x.len() - 2 {
            s += (x[i] * x[i + 2]).sin() + x[i + 2] * 0.5;
        }
    }
    s
}

#[grad]
fn three_point(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 1..x.len().saturating_sub(1) {
        let d = x[i - 1] - 2.0 * x[i] + x[i + 1];
        s += d * d * x[i];
    }
    s
}

#[grad]
fn from_three(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 3..x.len() {
        s += x[i].exp() * 0.1 + x[i] * x[i];
    }
    s
}

#[grad]
fn two_slices(x: &[f64], y: &[f64]) -> f64 {
    let mut s = 0.0;
    let n = x.len().min(y.len());
    if n >= 1 {
        for i in 0..n - 1 {
            s += x[i + 1] * y[i] - (y[i + 1] - x[i]).powi(2);
        }
    }
    s
}

#[test]
fn stencils_match_finite_differences() {
    check(offsets_0_and_2, offsets_0_and_2_grad, "offsets_0_and_2");
    check(three_point, three_point_grad, "three_point");
    check(from_three, from_three_grad, "from_three");
    check(
        |x| two_slices(x, x),
        |x| {
            let (a, b) = two_slices_grad(x, x);
            a.iter().zip(&b).map(|(a, b)| a + b).collect()
        },
        "two_slices on (x, x)",
    );
    let y = [0.4, -0.2, 0.9, 0.1, 0.7];
    check(
        |x| two_slices(x, &y[..x.len().min(5)]),
        |x| two_slices_grad(x, &y[..x.len().min(5)]).0,
        "two_slices wrt x",
    );
}
