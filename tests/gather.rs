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

/// A stencil reaching below the index from a range whose start is only known at run time
/// (the gather is for constant starts; this stays a scatter loop).
#[grad]
fn behind_from(x: &[f64], k: usize) -> f64 {
    let mut s = 0.0;
    for i in k..x.len() {
        s += x[i - 1] * x[i] * x[i];
    }
    s
}

#[test]
fn stencils_match_finite_differences() {
    check(
        |x| behind_from(x, 1),
        |x| behind_from_grad(x, 1),
        "behind_from",
    );
    check(
        |x| behind_from(x, 3.min(x.len().max(1))),
        |x| behind_from_grad(x, 3.min(x.len().max(1))),
        "behind_from 3",
    );
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

/// `f` run in a rayon pool of `threads` threads.
fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f)
}

fn long_input(n: usize, phase: f64) -> Vec<f64> {
    (0..n)
        .map(|i| 0.3 + 0.2 * (i as f64 * 1.7 + phase).sin())
        .collect()
}

/// Loops long enough that the gather loop is split over threads
/// (`__private::SPLIT_MIN` iterations): the same bits as on one thread, and right.
#[test]
fn long_loops_split_over_threads_give_the_one_thread_gradient() {
    let n = 5 * ferrax::__private::SPLIT_MIN + 3;
    let x = long_input(n, 0.0);
    let y = long_input(n, 1.0);
    let one = in_pool(1, || three_point_grad(&x));
    let four = in_pool(4, || three_point_grad(&x));
    assert_eq!(one, four, "three_point: 4 threads differ from 1");
    // two outputs, cut at the same places
    let one2 = in_pool(1, || two_slices_grad(&x, &y));
    let four2 = in_pool(4, || two_slices_grad(&x, &y));
    assert_eq!(one2, four2, "two_slices: 4 threads differ from 1");
    // and right: against forward mode along a direction, and finite differences at a few
    // elements (at the ends of the pieces and of the range)
    let v = long_input(n, 2.0);
    let (_, dir) = three_point_jvp(&x, &v);
    let dot: f64 = four.iter().zip(&v).map(|(g, v)| g * v).sum();
    assert!(
        (dot - dir).abs() <= 1e-9 * dir.abs().max(1.0),
        "three_point: grad . v = {dot}, jvp = {dir}"
    );
    let (_, dir2) = two_slices_jvp(&x, &y, &v, &x);
    let dot2: f64 = four2.0.iter().zip(&v).map(|(g, v)| g * v).sum::<f64>()
        + four2.1.iter().zip(&x).map(|(g, v)| g * v).sum::<f64>();
    assert!(
        (dot2 - dir2).abs() <= 1e-9 * dir2.abs().max(1.0),
        "two_slices: grad . v = {dot2}, jvp = {dir2}"
    );
    let h = 1e-6;
    for i in [0, 1, n / 8, n / 8 + 1, n / 2, n - 2, n - 1] {
        let (mut p, mut m) = (x.clone(), x.clone());
        p[i] += h;
        m[i] -= h;
        let want = (three_point(&p) - three_point(&m)) / (2.0 * h);
        assert!(
            (four[i] - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "three_point element {i}: {} vs finite differences {want}",
            four[i]
        );
    }
}

#[grad]
fn rosen32(x: &[f32]) -> f32 {
    let mut s = 0.0;
    for i in 0..x.len() - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    s
}

/// The same in f32, through the pullback of `_vjp` (the split loop inside its closure).
#[test]
fn long_f32_pullback_splits_too() {
    let n = 3 * ferrax::__private::SPLIT_MIN;
    let x: Vec<f32> = long_input(n, 0.5).iter().map(|&v| v as f32).collect();
    let one = in_pool(1, || (rosen32_vjp(&x).1)(2.0));
    let four = in_pool(4, || (rosen32_vjp(&x).1)(2.0));
    assert_eq!(one, four);
    assert_eq!(rosen32_vjp(&x).0, rosen32(&x));
    for i in [0, n / 3, n - 1] {
        let l = if i > 0 {
            200.0 * (x[i] - x[i - 1] * x[i - 1])
        } else {
            0.0
        };
        let r = if i + 1 < n {
            -400.0 * x[i] * (x[i + 1] - x[i] * x[i]) - 2.0 * (1.0 - x[i])
        } else {
            0.0
        };
        let want = 2.0 * (l + r);
        assert!(
            (four[i] - want).abs() <= 1e-3 * (1.0 + want.abs()),
            "element {i}: {} vs closed form {want}",
            four[i]
        );
    }
}

/// `split_for` itself: every element written once, by its own index, for empty, short and
/// long ranges, ranges not starting at zero, one output or a pair, on 1 to 3 threads.
#[test]
fn split_for_writes_each_element_once_for_any_range() {
    use ferrax::__private::{Chunk, SPLIT_MIN, split_for};
    for threads in [1, 2, 3] {
        for (lo, hi) in [
            (0, 0),
            (5, 5),
            (0, 1),
            (3, 17),
            (0, SPLIT_MIN),
            (7, 3 * SPLIT_MIN + 11),
        ] {
            let len = hi + 4;
            let (mut a, mut b) = (vec![-1.0f64; len], vec![-1.0f32; len]);
            in_pool(threads, || {
                split_for(lo, hi, Chunk::of(&mut a[..]), &|mut a, from, to| {
                    for j in from..to {
                        a[j] = j as f64;
                    }
                });
                split_for(
                    lo,
                    hi,
                    (Chunk::of(&mut a[..]), Chunk::of(&mut b[..])),
                    &|(mut a, mut b), from, to| {
                        for j in from..to {
                            a[j] += 1.0;
                            b[j] = 2.0 * j as f32;
                        }
                    },
                );
            });
            for j in 0..len {
                let inside = (lo..hi).contains(&j);
                let (wa, wb) = if inside {
                    (j as f64 + 1.0, 2.0 * j as f32)
                } else {
                    (-1.0, -1.0)
                };
                assert_eq!(
                    (a[j], b[j]),
                    (wa, wb),
                    "{threads} threads, {lo}..{hi}, element {j}"
                );
            }
        }
    }
}

/// A loop reading one element past the end.
#[grad]
fn reads_past_the_end(x: &[f64], n: usize) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        s += x[i] * x[i + 1];
    }
    s
}

/// The gradient is written straight into an unzeroed Vec (`__private::fill_for`); a loop
/// whose last element lies past the end must still panic, with the function's own message,
/// on short inputs and on long ones split over threads, and a loop that stops early leaves
/// the rest of the gradient zero.
#[test]
fn the_gradient_of_a_loop_past_the_end_panics_as_the_function_does() {
    let message = |f: &dyn Fn()| -> String {
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    for n in [3, 2 * ferrax::__private::SPLIT_MIN + 5] {
        let x = long_input(n, 0.3);
        for threads in [1, 2] {
            let want = message(&|| _ = reads_past_the_end(&x, n));
            assert_eq!(
                want,
                format!("index out of bounds: the len is {n} but the index is {n}")
            );
            let got = in_pool(threads, || message(&|| _ = reads_past_the_end_grad(&x, n)));
            assert_eq!(got, want, "{n} elements, {threads} threads");
            // stopping short: elements past the loop's reach are zero
            let g = in_pool(threads, || reads_past_the_end_grad(&x, n - 2));
            assert_eq!(g.len(), n);
            assert_eq!(g[n - 1], 0.0);
            assert_eq!(g[n - 2], x[n - 3]);
            assert_eq!(g[0], x[1]);
        }
    }
}
