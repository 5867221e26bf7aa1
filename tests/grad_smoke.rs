//! Quick end-to-end checks of `#[grad]`: each function's gradient against central finite
//! differences, and forward mode against reverse mode.

// Index loops, one-trip loops, empty ranges, `x = x * y` and `.copied().collect()` are the
// point: they are what the macro must differentiate.
#![allow(
    clippy::iter_cloned_collect,
    clippy::needless_range_loop,
    clippy::never_loop,
    clippy::reversed_empty_ranges,
    clippy::assign_op_pattern
)]

use ferrax::prelude::*;

fn fd<F: Fn(&[f64]) -> f64>(f: F, x: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    (0..x.len())
        .map(|i| {
            let mut p = x.to_vec();
            let mut m = x.to_vec();
            p[i] += h;
            m[i] -= h;
            (f(&p) - f(&m)) / (2.0 * h)
        })
        .collect()
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let tol = 1e-6 * (1.0 + x.abs().max(y.abs()));
        assert!(
            (x - y).abs() <= tol,
            "{what}: component {i}: {x} vs {y} (all: {a:?} vs {b:?})"
        );
    }
}

#[grad]
fn straight(x: f64, y: f64) -> f64 {
    let a = x * y + x.sin();
    let b = (a / (1.0 + y * y)).exp();
    b - x.powi(3) + y.sqrt()
}

#[test]
fn straight_line_matches_finite_differences() {
    let (x, y) = (0.7, 1.3);
    let (gx, gy) = straight_grad(x, y);
    close(
        &[gx, gy],
        &fd(|v| straight(v[0], v[1]), &[x, y]),
        "straight",
    );
    let (v, tx) = straight_jvp(x, y, 1.0, 0.0);
    assert_eq!(v, straight(x, y));
    close(&[tx], &[gx], "jvp x");
    let (_, ty) = straight_jvp(x, y, 0.0, 1.0);
    close(&[ty], &[gy], "jvp y");
    let (v2, pb) = straight_vjp(x, y);
    assert_eq!(v2, v);
    let (px, py) = pb(2.0);
    close(&[px, py], &[2.0 * gx, 2.0 * gy], "vjp scaled");
    let (v3, (g3x, g3y)) = straight_value_and_grad(x, y);
    assert_eq!(v3, v);
    close(&[g3x, g3y], &[gx, gy], "value_and_grad");
}

#[grad]
fn rosen(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    s
}

#[test]
fn rosen_matches_finite_differences() {
    let x = [0.3, -0.5, 1.2, 0.9, 2.0];
    close(&rosen_grad(&x), &fd(rosen, &x), "rosen");
}

#[grad]
fn branchy(x: f64, n: usize) -> f64 {
    let mut acc = x;
    let mut k = 0;
    while k < n {
        if acc > 2.0 {
            acc = acc.sqrt() * 1.5;
        } else if acc < -1.0 {
            acc = -acc;
        } else {
            acc = acc * acc + 0.5 * x;
        }
        k += 1;
    }
    acc
}

#[test]
fn while_with_branches_matches_finite_differences() {
    for x in [0.3, 1.1, -1.7, 2.5] {
        let g = branchy_grad(x, 5);
        close(&[g], &fd(|v| branchy(v[0], 5), &[x]), "branchy");
        let (_, t) = branchy_jvp(x, 5, 1.0);
        close(&[t], &[g], "branchy jvp");
    }
}

#[grad]
fn early(x: &[f64], limit: f64) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() {
        for j in 0..3 {
            s += x[i] * (j as f64 + 1.0);
            if s > limit {
                return s * s;
            }
        }
        if x[i] < 0.0 {
            continue;
        }
        s *= 1.1;
    }
    s
}

#[test]
fn early_return_from_nested_loops() {
    let x = [0.5, -0.2, 0.8, 1.5, 0.1];
    for limit in [1.0, 3.3, 100.0] {
        let (gx, gl) = early_grad(&x, limit);
        close(&gx, &fd(|v| early(v, limit), &x), "early x");
        assert_eq!(gl, 0.0);
    }
}

#[grad]
fn pushes(x: &[f64]) -> f64 {
    let mut v = Vec::with_capacity(x.len());
    for xi in x.iter() {
        v.push(xi.tanh());
    }
    let mut w = vec![0.0; x.len()];
    for (i, e) in v.iter().enumerate() {
        w[i] = e * x[i];
        w[i] += 1.0;
    }
    let mut s = 0.0;
    let mut k = 0;
    loop {
        if k == w.len() {
            break;
        }
        s += w[k] * w[k];
        k += 1;
    }
    s
}

#[test]
fn vec_push_and_writes() {
    let x = [0.5, -0.2, 0.8];
    close(&pushes_grad(&x), &fd(pushes, &x), "pushes");
}

#[grad]
fn helper(a: f64, b: f64) -> f64 {
    a * b.cos()
}

#[grad]
fn caller(x: f64, y: f64) -> f64 {
    let mut s = 0.0;
    for i in 0..3 {
        s += helper(x * i as f64, y);
    }
    s + helper(y, x) * stop_gradient(x)
}

#[test]
fn calls_and_stop_gradient() {
    let (gx, gy) = caller_grad(0.4, 0.9);
    let fx = fd(|v| caller(v[0], v[1]), &[0.4, 0.9]);
    // stop_gradient: the last factor's derivative is dropped.
    let expect_x = fx[0] - helper(0.9, 0.4);
    close(&[gx, gy], &[expect_x, fx[1]], "caller");
}

#[grad]
fn single_f32(x: f32) -> f32 {
    let y = x * x;
    y.sin() + 2.0 * x
}

#[test]
fn f32_works() {
    assert_eq!(single_f32_value_and_grad(0.5).0, single_f32(0.5));
    let g = single_f32_grad(0.5);
    let e = (0.25f32).cos() * 1.0 + 2.0;
    assert!((g - e).abs() < 1e-5, "{g} vs {e}");
}

#[grad]
fn arrays(p: [f64; 3], k: i32) -> f64 {
    let mut q = [0.0; 3];
    for i in 0..3 {
        q[i] = p[i].powi(k) + p[(i + 1) % 3];
    }
    match k {
        1 => q[0],
        2 | 3 => q[0] * q[1] + q[2],
        _ => q[0].max(q[1]).min(q[2]),
    }
}

#[test]
fn arrays_and_match() {
    let p = [0.3, 0.6, 1.1];
    for k in [1, 2, 4] {
        let g = arrays_grad(p, k);
        close(&g, &fd(|v| arrays([v[0], v[1], v[2]], k), &p), "arrays");
    }
}

#[grad]
fn mut_arguments(mut x: f64, mut n: usize) -> f64 {
    while n > 0 {
        x = x.sin() + 0.5 * x;
        n -= 1;
    }
    x
}

#[grad]
fn weighted_norm(x: &[f64], w: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() {
        s += w[i] * x[i] * x[i];
    }
    s.sqrt()
}

#[grad]
fn calls_with_slices(x: &[f64], w: &[f64], a: f64) -> f64 {
    let n = weighted_norm(x, w);
    let mut v = vec![0.0; x.len()];
    for i in 0..x.len() {
        v[i] = x[i] * a;
    }
    let m = weighted_norm(&v, w);
    v[0] = 7.0;
    n * m + a * a
}

#[test]
fn mut_arguments_and_slice_calls() {
    let g = mut_arguments_grad(0.8, 4);
    close(&[g], &fd(|v| mut_arguments(v[0], 4), &[0.8]), "mut args");
    let (_, t) = mut_arguments_jvp(0.8, 4, 1.0);
    close(&[t], &[g], "mut args jvp");
    let (x, w, a) = ([0.3, 0.5, -0.2], [1.0, 2.0, 0.5], 1.5);
    let (gx, gw, ga) = calls_with_slices_grad(&x, &w, a);
    close(&gx, &fd(|v| calls_with_slices(v, &w, a), &x), "calls x");
    close(&gw, &fd(|v| calls_with_slices(&x, v, a), &w), "calls w");
    close(
        &[ga],
        &fd(|v| calls_with_slices(&x, &w, v[0]), &[a]),
        "calls a",
    );
    let (_, pb) = calls_with_slices_vjp(&x, &w, a);
    let (px, _, _) = pb(1.0);
    close(&px, &gx, "calls vjp");
}

/// `.iter().sum()` of a sequence: of a slice parameter, through `.copied()` and
/// `.cloned()`, with a turbofish, inside an expression, of a local Vec, in f32.
#[grad]
fn sums(x: &[f64], a: f64) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let mut sq = Vec::with_capacity(x.len());
    for v in x.iter() {
        sq.push((v - mean) * (v - mean) * a);
    }
    let var: f64 = sq.iter().copied().sum();
    let total: f64 = x.iter().cloned().sum();
    var / n + total * mean + sq.iter().sum::<f64>().sqrt()
}

#[grad]
fn sum_f32(x: &[f32]) -> f32 {
    let s: f32 = x.iter().sum();
    s * s
}

/// `.map(|..| ..).sum()` over what a `for` takes: a zip, an enumeration, a range, with
/// `&v` and typed patterns and a block body.
#[grad]
fn mapped_sums(x: &[f64], y: &[f64]) -> f64 {
    let dot: f64 = x.iter().zip(y.iter()).map(|(a, b)| a * b).sum();
    let sq = x.iter().map(|&v| v * v).sum::<f64>();
    let w: f64 = x
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64 + 1.0) * v.sin())
        .sum();
    let r: f64 = (0..x.len()).map(|i| x[i] * y[i] * y[i]).sum();
    let t: f64 = x
        .iter()
        .map(|v: &f64| {
            let u = v * 2.0;
            u.tanh()
        })
        .sum();
    dot * sq + w + r + t
}

/// `.product()` and `.fold(..)`, also after `.map(..)` and `.enumerate()`; the fold with
/// `max` is the usual way to take a slice's maximum.
#[grad]
fn folds(x: &[f64]) -> f64 {
    let p: f64 = x.iter().product();
    let q: f64 = x.iter().map(|v| v + 2.0).product();
    let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    let f = x.iter().map(|v| v * v).fold(0.5, |acc, v| acc * 0.9 + v);
    let g = x
        .iter()
        .enumerate()
        .fold(0.0, |acc, (i, v)| acc + (i as f64) * v);
    p + q + m + f + g
}

/// `.collect()` into a Vec, of a `.map(..)` and of `.copied()`.
#[grad]
fn collected(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().map(|a| a * a).collect();
    let w = x.iter().copied().collect::<Vec<f64>>();
    let mut s = 0.0;
    for i in 0..v.len() {
        s += v[i] * w[i].sin();
    }
    s + v.iter().sum::<f64>()
}

#[test]
fn iterator_sums() {
    let x = [0.3, -0.7, 1.1];
    close(&collected_grad(&x), &fd(collected, &x), "collected");

    let x = [0.3, -0.7, 1.1];
    let g = folds_grad(&x);
    close(&g, &fd(folds, &x), "folds");
    let (_, t) = folds_jvp(&x, &[0.0, 0.0, 1.0]);
    close(&[t], &[g[2]], "folds jvp");
    // zero trips: a product of nothing is 1, a fold its initial value, a collect empty
    assert_eq!(folds(&[]), 1.0 + 1.0 + f64::NEG_INFINITY + 0.5 + 0.0);
    assert_eq!(folds_grad(&[]), Vec::<f64>::new());
    assert_eq!(collected(&[]), 0.0);
    assert_eq!(collected_grad(&[]), Vec::<f64>::new());
    // one trip
    close(
        &folds_grad(&[0.4]),
        &fd(folds, &[0.4]),
        "folds, one element",
    );

    let (x, y) = ([0.3, -0.7, 1.1], [1.5, 0.2, -0.4]);
    let (gx, gy) = mapped_sums_grad(&x, &y);
    close(&gx, &fd(|v| mapped_sums(v, &y), &x), "mapped x");
    close(&gy, &fd(|v| mapped_sums(&x, v), &y), "mapped y");
    let (_, pb) = mapped_sums_vjp(&x, &y);
    let (px, py) = pb(1.0);
    close(&px, &gx, "mapped vjp x");
    close(&py, &gy, "mapped vjp y");
    let (_, t) = mapped_sums_jvp(&x, &y, &[1.0, 0.0, 0.0], &[0.0; 3]);
    close(&[t], &[gx[0]], "mapped jvp");

    let (x, a) = ([0.3, -1.2, 2.5, 0.7], 1.3);
    let (gx, ga) = sums_grad(&x, a);
    close(&gx, &fd(|v| sums(v, a), &x), "sums x");
    close(&[ga], &fd(|v| sums(&x, v[0]), &[a]), "sums a");
    // forward mode along each unit vector gives the gradient's components
    for k in 0..x.len() {
        let mut dx = [0.0; 4];
        dx[k] = 1.0;
        let (_, t) = sums_jvp(&x, a, &dx, 0.0);
        close(&[t], &[gx[k]], "sums jvp");
    }
    // an empty slice sums to 0, as Rust's does
    assert_eq!(sum_f32_grad(&[]), Vec::<f32>::new());
    assert_eq!(sum_f32(&[1.0, 2.0, 3.5]), 42.25);
    let g = sum_f32_grad(&[1.0, 2.0, 3.5]);
    assert_eq!(g, vec![13.0; 3]); // d(s^2)/dx_i = 2s
}

/// Closures bound by `let` and called by name: one calling another, one capturing a
/// value later shadowed (it keeps the first), one mutating what it captures.
#[grad]
fn closures(x: f64, y: f64) -> f64 {
    let a = 2.0 * y;
    let sq = |v: f64| v * v * a;
    let a = 100.0;
    let twice = |v| sq(v) + sq(v + 1.0);
    let mut total = 0.0;
    let mut add = |v: f64| {
        total += v.sin();
    };
    add(x);
    add(y);
    twice(x) + sq(y) * a + total
}

/// A `let` closure named as the argument of `.map(..)` and `.fold(..)`.
#[grad]
fn named_in_reductions(x: &[f64], y: f64) -> f64 {
    let sq = |v: &f64| v * v * y;
    let big = |m: f64, v: &f64| m.max(*v);
    let y = 100.0; // not seen by the closures
    let s: f64 = x.iter().map(sq).sum();
    s + x.iter().fold(f64::NEG_INFINITY, big) + y
}

#[test]
fn let_closures() {
    let (xs, w) = ([0.3, -0.7, 1.1], 1.7);
    let (gx, gw) = named_in_reductions_grad(&xs, w);
    close(&gx, &fd(|v| named_in_reductions(v, w), &xs), "named x");
    close(
        &[gw],
        &fd(|v| named_in_reductions(&xs, v[0]), &[w]),
        "named y",
    );

    let (x, y) = (0.7, -0.4);
    let by_hand = |x: f64, y: f64| {
        let sq = |v: f64| v * v * 2.0 * y;
        sq(x) + sq(x + 1.0) + sq(y) * 100.0 + x.sin() + y.sin()
    };
    assert!((closures(x, y) - by_hand(x, y)).abs() < 1e-12);
    let (gx, gy) = closures_grad(x, y);
    close(&[gx], &fd(|v| closures(v[0], y), &[x]), "closures x");
    close(&[gy], &fd(|v| closures(x, v[0]), &[y]), "closures y");
    let (_, t) = closures_jvp(x, y, 0.0, 1.0);
    close(&[t], &[gy], "closures jvp");
}

/// Counts the bytes the current thread has allocated and not freed, and their peak.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static NOW: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    pub struct Counting;

    fn add(d: isize) {
        let _ = NOW.try_with(|n| {
            n.set(n.get() + d);
            let _ = PEAK.try_with(|p| p.set(p.get().max(n.get())));
        });
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            add(l.size() as isize);
            unsafe { System.alloc(l) }
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            add(l.size() as isize);
            unsafe { System.alloc_zeroed(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            add(-(l.size() as isize));
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            add(new as isize - l.size() as isize);
            unsafe { System.realloc(p, l, new) }
        }
    }

    /// Peak bytes allocated by `f` on this thread beyond what was live when it started.
    pub fn peak_extra<R>(f: impl FnOnce() -> R) -> (R, isize) {
        let start = NOW.with(|n| n.get());
        PEAK.with(|p| p.set(start));
        let r = f();
        (r, PEAK.with(|p| p.get()) - start)
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

#[test]
fn rosen_grad_extra_memory_is_at_most_twice_the_input() {
    let n = 100_000;
    let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.1).sin()).collect();
    let input = (n * 8) as isize;
    let (g, extra) = counting::peak_extra(|| rosen_grad(&x));
    assert_eq!(g.len(), n);
    assert!(
        extra <= 2 * input,
        "rosen_grad allocated {extra} bytes at peak for a {input}-byte input"
    );
    let (_, extra_vg) = counting::peak_extra(|| rosen_value_and_grad(&x));
    assert!(
        extra_vg <= 2 * input,
        "rosen_value_and_grad allocated {extra_vg} bytes at peak for a {input}-byte input"
    );
    let (_, extra_vjp) = counting::peak_extra(|| {
        let (_, pb) = rosen_vjp(&x);
        pb(1.0)
    });
    assert!(
        extra_vjp <= 2 * input,
        "rosen_vjp + pullback allocated {extra_vjp} bytes at peak for a {input}-byte input"
    );
    println!(
        "extra bytes for a {input}-byte input: grad {extra}, value_and_grad {extra_vg}, vjp {extra_vjp}"
    );
}

#[derive(Clone, Copy)]
enum Mode {
    Plain,
    Scaled(f64),
    Power { k: i32 },
}

#[grad(wrt(x))]
fn control_zoo(x: &[f64], mode: Mode, m: usize) -> f64 {
    let n = x.len();
    let mut buf = vec![0.0; n];
    for (i, &xi) in x.iter().enumerate() {
        buf[i] = match mode {
            Mode::Plain => xi,
            Mode::Scaled(c) => c * xi,
            Mode::Power { k } => xi.powi(k),
        };
    }
    // Overwrite in a second loop, reading the previous values.
    for i in (1..n).rev().step_by(2) {
        buf[i] = buf[i] * buf[i - 1] + 0.1;
    }
    let mut s = 0.0;
    'outer: for i in 0..=m {
        let mut j = 0;
        while j < n {
            j += 1;
            if j % 3 == 0 {
                continue;
            }
            let t = if buf[j - 1] > 0.0 {
                buf[j - 1].exp()
            } else {
                (-buf[j - 1]).ln_1p()
            };
            s += t * (i as f64 + 1.0);
            if s > 40.0 {
                break 'outer;
            }
        }
    }
    let (a, b) = (s, buf[0]);
    let s = a * 0.5 + b;
    let found = loop {
        if s > 0.0 {
            break s.sqrt();
        }
        break -s;
    };
    let mut total = found;
    for (p, q) in x.iter().zip(buf.iter()) {
        total += p * q;
    }
    for _ in 0..0 {
        total = total * 1e9;
    }
    total
}

#[test]
fn control_flow_zoo_matches_finite_differences() {
    let x = [0.3, -0.4, 0.8, 0.1, -0.9, 0.6, 0.25];
    for mode in [Mode::Plain, Mode::Scaled(1.5), Mode::Power { k: 3 }] {
        for m in [0, 1, 4] {
            let g = control_zoo_grad(&x, mode, m);
            close(&g, &fd(|v| control_zoo(v, mode, m), &x), "zoo");
            for k in 0..x.len() {
                let mut e = vec![0.0; x.len()];
                e[k] = 1.0;
                let (_, t) = control_zoo_jvp(&x, mode, m, &e);
                close(&[t], &[g[k]], "zoo jvp");
            }
        }
    }
}

#[grad]
fn calls_in_loops(x: &[f64], a: f64) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() {
        let h = helper(x[i], a);
        if h > 0.0 {
            s += h * weighted_norm(x, x);
        } else {
            s -= square(h);
        }
    }
    s
}

#[grad]
fn square(x: f64) -> f64 {
    x * x
}

#[test]
fn calls_inside_loops_and_branches() {
    let x = [0.3, -0.4, 0.8];
    let (gx, ga) = calls_in_loops_grad(&x, 0.7);
    close(&gx, &fd(|v| calls_in_loops(v, 0.7), &x), "calls in loops x");
    close(
        &[ga],
        &fd(|v| calls_in_loops(&x, v[0]), &[0.7]),
        "calls in loops a",
    );
}

#[grad]
fn copies(x: &[f64]) -> f64 {
    let mut v = x.to_vec();
    for i in 0..v.len() {
        v[i] = v[i] * v[i] + x[i];
    }
    let mut s = 0.0;
    for e in v.iter() {
        s += e.cos();
    }
    s
}

#[test]
fn to_vec_copies() {
    let x = [0.3, -0.4, 0.8];
    close(&copies_grad(&x), &fd(copies, &x), "copies");
}

#[grad(wrt(x))]
fn deep(x: &[f64], n: usize) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        for j in 0..n {
            if x[j] > 0.0 {
                for k in 0..n {
                    let mut t = x[k];
                    while t < 3.0 {
                        if t > 1.0 {
                            t = t * 1.5 + s * 0.01;
                        } else {
                            t = t + 1.0;
                        }
                        for m in 0..2 {
                            s += t * x[m] * (i + j) as f64;
                        }
                    }
                }
            } else {
                s = s * 0.9 + x[i];
            }
        }
    }
    s
}

#[test]
fn deep_nesting() {
    let x = [0.3, -0.4, 0.8, 0.1];
    for n in [0, 1, 3] {
        let g = deep_grad(&x, n);
        close(&g, &fd(|v| deep(v, n), &x), "deep");
    }
}

#[grad]
fn f32_slices(x: &[f32], flag: bool, p: [f32; 2]) -> f32 {
    let mut s = 0.0f32;
    for (i, xi) in x.iter().enumerate() {
        s += match flag {
            true => xi * xi * p[i % 2],
            false => xi.sin() + p[0],
        };
    }
    (s as f64).sqrt() as f32
}

#[test]
fn f32_slices_arrays_and_bool_match() {
    let x = [0.5f32, 0.25, 1.5];
    let p = [2.0f32, 3.0];
    assert_eq!(
        f32_slices_value_and_grad(&x, true, p).0,
        f32_slices(&x, true, p)
    );
    let (gx, gp) = f32_slices_grad(&x, true, p);
    let s: f32 = 0.25 * 2.0 + 0.0625 * 3.0 + 2.25 * 2.0;
    let r = s.sqrt();
    let expect = [
        0.5 * 2.0 * 2.0 / (2.0 * r),
        0.25 * 2.0 * 3.0 / (2.0 * r),
        1.5 * 2.0 * 2.0 / (2.0 * r),
    ];
    for (a, b) in gx.iter().zip(expect) {
        assert!((a - b).abs() < 1e-5, "{gx:?} vs {expect:?}");
    }
    assert!(
        (gp[0] - (0.25 + 2.25) / (2.0 * r)).abs() < 1e-5
            && (gp[1] - 0.0625 / (2.0 * r)).abs() < 1e-5,
        "{gp:?}"
    );
    let (_, t) = f32_slices_jvp(&x, false, p, &[1.0, 0.0, 0.0], [0.0, 0.0]);
    let (g2, _) = f32_slices_grad(&x, false, p);
    assert!((t - g2[0]).abs() < 1e-5);
}

#[grad]
fn odds_and_ends(x: f64, y: f64, v: &[f64]) -> f64 {
    let (a, b) = (x * 2.0, y);
    let z = {
        let t = a * b;
        t + 1.0
    };
    let x = x * if z > 0.0 { 1.5 } else { -0.5 };
    let lo = x * 2.0;
    let mut q = [x, y, z];
    for i in 0..q.len() {
        q[i] *= v[i % v.len()];
        q[i] -= 0.25 * std::f64::consts::PI * x;
    }
    let m = q[0].max(q[1]).min(q[2].abs()) - (-x).abs();
    let w = v.len() as f64 * lo + m;
    let r = match v.len() {
        0 => return 0.0,
        1 | 2 => w.tanh(),
        _ => w.atan2(1.0 + y * y) + x.hypot(y) + y.mul_add(x, 0.5).cbrt(),
    };
    r + a.clamp(-1.0, 1.0) + x.exp2() + y.exp_m1() + (1.0 + x * x).log(3.0) + x.recip()
}

#[test]
fn odds_and_ends_match_finite_differences() {
    let v = [0.3, -0.7, 1.2];
    for (x, y) in [(0.3, 0.8), (-0.9, 0.4), (1.7, -0.6)] {
        let (gx, gy, gv) = odds_and_ends_grad(x, y, &v);
        let fx = fd(|p| odds_and_ends(p[0], p[1], &v), &[x, y]);
        for (g, f) in [gx, gy].iter().zip(&fx) {
            assert!(
                (g - f).abs() < 1e-6 * (1.0 + f.abs()),
                "({x}, {y}): {gx} {gy} vs {fx:?}"
            );
        }
        let fv = fd(|p| odds_and_ends(x, y, p), &v);
        for (g, f) in gv.iter().zip(&fv) {
            assert!(
                (g - f).abs() < 1e-6 * (1.0 + f.abs()),
                "({x}, {y}): {gv:?} vs {fv:?}"
            );
        }
        let (_, t) = odds_and_ends_jvp(x, y, &v, 1.0, 0.0, &[0.0; 3]);
        assert!(
            (t - gx).abs() < 1e-9 * (1.0 + gx.abs()),
            "jvp {t} vs grad {gx}"
        );
    }
}

#[grad]
fn precision_round_trip(x: f64) -> f64 {
    let h = (x as f32).sin() * 2.0f32;
    (h as f64) * x
}

#[test]
fn casts_between_f32_and_f64() {
    let x = 0.7;
    let g = precision_round_trip_grad(x);
    assert_eq!(
        precision_round_trip_value_and_grad(x).0,
        precision_round_trip(x)
    );
    let expect = (x as f32).cos() as f64 * 2.0 * x + (x as f32).sin() as f64 * 2.0;
    assert!((g - expect).abs() < 1e-6, "{g} vs {expect}");
    let (_, t) = precision_round_trip_jvp(x, 1.0);
    assert!((t - g).abs() < 1e-6, "{t} vs {g}");
}

// ---- subslices: `&x[a..b]` and its forms, read through their base ----

#[grad]
fn pair_dist(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (u, v) in a.iter().zip(b.iter()) {
        s += (u - v) * (u - v);
    }
    s.sqrt()
}

/// Points of 3 coordinates in one slice: views passed to another `#[grad]` function, read
/// by index, iterated, summed, copied, viewed again, and of a local Vec.
#[grad]
fn chain_energy(x: &[f64], k: usize) -> f64 {
    let n = x.len() / 3;
    let mut e = 0.0;
    for i in 1..n {
        let p = &x[3 * (i - 1)..3 * i];
        let q = &x[3 * i..3 * i + 3];
        let d = pair_dist(p, q) - 1.0;
        e += d * d + p[0] * q[2];
    }
    let first = &x[..3];
    let rest = &x[3..];
    let inner = &rest[1..=2];
    let mut sq: Vec<f64> = x.iter().map(|v| v * v).collect();
    sq[0] = sq[1] * x[2];
    let tail = sq[k..].iter().sum::<f64>();
    let copy = x[..k].to_vec();
    e + first.iter().map(|v| v.sin()).sum::<f64>() * inner[1]
        + tail * copy[k - 1]
        + rest.len() as f64
        + pair_dist(&sq[..3], &x[x.len() - 3..])
}

#[test]
fn subslices_match_finite_differences_and_forward_mode() {
    let x = [0.3, -0.7, 1.1, 0.5, 0.2, -0.4, 1.3, 0.9, -1.2];
    for k in [1usize, 4, 9] {
        let g = chain_energy_grad(&x, k);
        close(&g, &fd(|x| chain_energy(x, k), &x), &format!("k = {k}"));
        for i in 0..x.len() {
            let mut e = [0.0; 9];
            e[i] = 1.0;
            let (v, t) = chain_energy_jvp(&x, k, &e);
            assert_eq!(v, chain_energy(&x, k));
            close(&[t], &[g[i]], &format!("jvp {i}, k = {k}"));
        }
    }
}

#[test]
fn a_subslice_out_of_range_panics_where_it_is_made() {
    let x = [0.3, -0.7, 1.1, 0.5, 0.2, -0.4];
    // `sq[k..]` with k = 7 > 6: the panic of the user's own code, in every counterpart
    for r in [
        std::panic::catch_unwind(|| chain_energy(&x, 7)).err(),
        std::panic::catch_unwind(|| chain_energy_grad(&x, 7)).err(),
        std::panic::catch_unwind(|| chain_energy_jvp(&x, 7, &[0.0; 6])).err(),
    ] {
        let e = r.expect("a panic");
        let m = e.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(m, "range start index 7 out of range for slice of length 6");
    }
}

// ---- structs left out of `wrt`: plain values, read field by field ----

/// Physical constants of a model: not `Differentiable`, never differentiated.
struct Config {
    k: f64,
    n: usize,
    weights: Vec<f64>,
    span: (f64, f64),
    inner: Inner,
}

struct Inner {
    limit: f64,
}

/// A callee that leaves the configuration out too.
#[grad(wrt(x))]
fn weighted_sq(x: f64, cfg: &Config, i: usize) -> f64 {
    cfg.weights[i] * x * x
}

#[grad(wrt(x))]
fn configured(x: &[f64], cfg: &Config) -> f64 {
    let w = &cfg.weights;
    let mut s = 0.0;
    for i in 0..cfg.n {
        s += weighted_sq(x[i], cfg, i) + cfg.k.powi(2) * x[i] * w[i];
        if x[i] > cfg.inner.limit {
            s += (x[i] - cfg.inner.limit) * cfg.span.1;
        }
    }
    for (v, wi) in x.iter().zip(cfg.weights.iter()) {
        s += v.sin() * wi;
    }
    for (i, &wi) in w.iter().enumerate() {
        s += wi * x[i] * x[i];
    }
    let total: f64 = x.iter().zip(&cfg.weights).map(|(v, wi)| v * wi).sum();
    s * cfg.span.0 + w.len() as f64 + total * total
}

#[test]
fn a_struct_left_out_of_wrt_is_read_as_plain_values() {
    let cfg = Config {
        k: 1.5,
        n: 3,
        weights: vec![0.5, -2.0, 1.25],
        span: (0.75, 3.0),
        inner: Inner { limit: 0.4 },
    };
    let x = [0.3, -0.7, 1.1];
    let g = configured_grad(&x, &cfg);
    close(&g, &fd(|x| configured(x, &cfg), &x), "configured");
    for i in 0..3 {
        let mut e = [0.0; 3];
        e[i] = 1.0;
        let (v, t) = configured_jvp(&x, &cfg, &e);
        assert_eq!(v, configured(&x, &cfg));
        close(&[t], &[g[i]], "jvp");
    }
}

#[derive(Clone, Differentiable)]
struct Frozen {
    w: Tensor,
    b: Tensor,
}

/// The gradient with respect to the input of a model whose weights stay fixed (a saliency
/// map), beside the same function differentiated with respect to both.
#[grad(wrt(x))]
fn saliency(x: &Tensor, net: &Frozen) -> Tensor {
    ((x.matmul(&net.w) + &net.b).tanh() * &net.b).sum()
}

#[grad]
fn saliency_both(x: &Tensor, net: &Frozen) -> Tensor {
    ((x.matmul(&net.w) + &net.b).tanh() * &net.b).sum()
}

#[test]
fn a_frozen_model_left_out_of_wrt_gives_the_input_gradient() {
    let net = Frozen {
        w: Tensor::normal(Key::new(1), &[4, 3], DType::F64),
        b: Tensor::normal(Key::new(2), &[3], DType::F64),
    };
    let x = Tensor::normal(Key::new(3), &[2, 4], DType::F64);
    assert_eq!(
        saliency(&x, &net).item::<f64>(),
        saliency_both(&x, &net).item::<f64>()
    );
    let g = saliency_grad(&x, &net);
    let (gx, _) = saliency_both_grad(&x, &net);
    close(&g.to_vec::<f64>(), &gx.to_vec::<f64>(), "saliency");
}

// ---- match guards ----

#[derive(Clone, Copy)]
enum Shape {
    Ball(u32),
    Box { sides: u32 },
    Point,
}

/// Guards reading the pattern's bindings, an outer float and an enum's fields; a guarded
/// arm falling through to arms after it (also after another guard); arms without a value.
#[grad]
fn guarded(x: f64, k: i32, s: Shape) -> f64 {
    let scale = match k {
        j if j > 3 && x > 0.0 => x * j as f64,
        j if j > 3 => -x,
        0 => x.exp(),
        _ => 2.0 * x,
    };
    let size = match s {
        Shape::Ball(r) if r > 2 => scale * r as f64,
        Shape::Box { sides } if sides % 2 == 0 => scale.sin(),
        Shape::Ball(_) | Shape::Box { .. } => scale * scale,
        Shape::Point => 1.0,
    };
    let mut extra = 0.0;
    match k {
        j if j < 0 => extra += x * x,
        _ => {}
    }
    size + extra
}

#[test]
fn match_guards_fall_through_as_in_rust() {
    let shapes = [
        Shape::Ball(3),
        Shape::Ball(1),
        Shape::Box { sides: 4 },
        Shape::Box { sides: 3 },
        Shape::Point,
    ];
    for x in [0.7, -0.4] {
        for k in [-2, 0, 1, 5] {
            for s in shapes {
                let (v, g) = guarded_value_and_grad(x, k, s);
                assert_eq!(v, guarded(x, k, s));
                close(&[g], &fd(|v| guarded(v[0], k, s), &[x]), "guarded");
                let (_, t) = guarded_jvp(x, k, s, 1.0);
                close(&[t], &[g], "guarded jvp");
            }
        }
    }
}

// ---- functions named by path where a closure goes ----

#[grad]
fn half_sq(v: f64) -> f64 {
    0.5 * v * v
}

/// The usual log-sum-exp, written with `fold(f64::NEG_INFINITY, f64::max)` for the
/// maximum, `.map(f64::exp)` and `.map(half_sq)` (another `#[grad]` function).
#[grad]
fn logsumexp_paths(x: &[f64]) -> f64 {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let shifted: Vec<f64> = x.iter().map(|v| v - m).collect();
    let e: f64 = shifted.iter().copied().map(f64::exp).sum();
    let r: f64 = x.iter().copied().map(half_sq).sum();
    m + e.ln() + r
}

#[test]
fn paths_in_place_of_closures_match_finite_differences() {
    let x = [0.3, -0.7, 1.1, 0.5];
    let want = {
        let m = 1.1f64;
        m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
            + x.iter().map(|v| 0.5 * v * v).sum::<f64>()
    };
    assert!((logsumexp_paths(&x) - want).abs() < 1e-12);
    let g = logsumexp_paths_grad(&x);
    close(&g, &fd(logsumexp_paths, &x), "logsumexp_paths");
    let (_, t) = logsumexp_paths_jvp(&x, &[1.0, 0.0, 0.0, 0.0]);
    close(&[t], &[g[0]], "jvp");
}

// ---- windows and chunks: a view per iteration ----

/// Differences of neighbours (`windows(2)`), points of 3 coordinates (`chunks_exact(3)`),
/// a ragged last chunk (`chunks(2)`), in for loops, zipped and mapped.
#[grad]
fn parts(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for w in x.windows(2) {
        s += (w[1] - w[0]).powi(2);
    }
    for p in x.chunks_exact(3) {
        s += p.iter().map(|v| v * v).sum::<f64>().sqrt();
    }
    for (c, v) in x.chunks(2).zip(x.iter()) {
        s += c[c.len() - 1] * v;
    }
    let tv: f64 = x.windows(3).map(|w| w[0] * w[2] - w[1]).sum();
    s + tv
}

#[test]
fn windows_and_chunks_match_finite_differences() {
    for n in [0usize, 1, 2, 3, 5, 7] {
        let x: Vec<f64> = (0..n).map(|i| 0.4 + 0.3 * (i as f64 * 1.3).sin()).collect();
        let g = parts_grad(&x);
        close(&g, &fd(parts, &x), &format!("n = {n}"));
        let (v, _) = parts_value_and_grad(&x);
        assert_eq!(v, parts(&x), "n = {n}");
        for i in 0..n {
            let mut e = vec![0.0; n];
            e[i] = 1.0;
            let (_, t) = parts_jvp(&x, &e);
            close(&[t], &[g[i]], &format!("jvp {i}, n = {n}"));
        }
    }
}

#[grad]
fn window_of(x: &[f64], k: usize) -> f64 {
    x.windows(k).map(|w| w[0]).sum()
}

#[test]
fn a_window_of_zero_panics_as_in_rust() {
    assert_eq!(window_of(&[1.0, 2.0, 3.0], 2), 3.0);
    assert_eq!(window_of_grad(&[1.0, 2.0, 3.0], 2), vec![1.0, 1.0, 0.0]);
    let e = std::panic::catch_unwind(|| window_of_grad(&[1.0, 2.0], 0)).expect_err("a panic");
    let m = e.downcast_ref::<&str>().copied().unwrap_or_default();
    assert_eq!(m, "window size must be non-zero");
}

// ---- `if let`, and the kind of a branch's value ----

/// `if let` on an inactive `Option`, with and without `else`.
#[grad(wrt(x))]
fn if_let(x: f64, v: Option<f64>) -> f64 {
    let mut s = x;
    if let Some(w) = v {
        s *= w;
    }
    if let Some(w) = v { s * w + x } else { s * x }
}

/// A `match` whose first arm's value is not a float the macro knows (`unwrap_or` of an
/// `Option`) and whose other arm depends on `x`: the value carries the derivative.
#[grad(wrt(x))]
fn opaque_first_arm(x: f64, v: Option<f64>, k: i32) -> f64 {
    let y = match k {
        0 => v.unwrap_or(1.0),
        _ => x * x,
    };
    let z = if k > 5 { v.unwrap_or(2.0) } else { x.sin() };
    y * x + z
}

#[test]
fn if_let_and_branch_values_of_unknown_type_match_finite_differences() {
    for v in [Some(1.5), None] {
        let x = 0.7;
        let g = if_let_grad(x, v);
        close(&[g], &fd(|p| if_let(p[0], v), &[x]), "if_let");
        for k in [0, 1, 7] {
            let g = opaque_first_arm_grad(x, v, k);
            close(
                &[g],
                &fd(|p| opaque_first_arm(p[0], v, k), &[x]),
                "opaque_first_arm",
            );
        }
    }
}

/// A loop's value from `break`s whose first is of a type the macro cannot see.
#[grad(wrt(x))]
fn opaque_first_break(x: f64, v: Option<f64>, k: i32) -> f64 {
    let y = loop {
        if k == 0 {
            break v.unwrap_or(1.0);
        }
        break x * x;
    };
    y * x
}

#[test]
fn a_loop_value_of_unknown_type_first_matches_finite_differences() {
    for k in [0, 1] {
        let g = opaque_first_break_grad(0.7, Some(1.5), k);
        let want = fd(|p| opaque_first_break(p[0], Some(1.5), k), &[0.7]);
        close(&[g], &want, &format!("k = {k}"));
    }
}

/// Array patterns: `let [a, b] = p;`, with `_` and a trailing `..`.
#[grad]
fn pendulum_energy(p: [f64; 3], l: f64) -> f64 {
    let [th, om, _] = p;
    let [first, ..] = p;
    0.5 * l * l * om * om + 9.81 * l * (1.0 - th.cos()) + first * p[2]
}

#[test]
fn array_patterns_match_finite_differences() {
    let (p, l) = ([0.5, 0.1, -0.3], 1.3);
    let (gp, gl) = pendulum_energy_grad(p, l);
    let want = fd(
        |v| pendulum_energy([v[0], v[1], v[2]], v[3]),
        &[0.5, 0.1, -0.3, 1.3],
    );
    let mut got = gp.to_vec();
    got.push(gl);
    close(&got, &want, "pendulum_energy_grad");
    let (_, t) = pendulum_energy_jvp(p, l, [1.0, 0.0, 0.0], 0.0);
    close(&[t], &[gp[0]], "pendulum_energy_jvp");
}

/// A whole array reassigned each step (`y = [..]`, `y = z`): element by element, from the new
/// value evaluated first.
#[grad(wrt(p))]
fn lotka_volterra(y0: [f64; 2], p: &[f64], dt: f64, steps: usize) -> f64 {
    let mut y = y0;
    let mut total = 0.0;
    for _ in 0..steps {
        let dy0 = p[0] * y[0] - p[1] * y[0] * y[1];
        let dy1 = p[2] * y[0] * y[1] - p[3] * y[1];
        y = [y[0] + dt * dy0, y[1] + dt * dy1];
        let swapped = [y[1], y[0]];
        let mut z = [1.0; 2];
        total += z[0];
        z = swapped;
        total += z[1].ln() + 2.0 * z[0].ln();
    }
    total / steps as f64
}

#[test]
fn arrays_reassigned_whole_match_finite_differences() {
    let p = [1.1, 0.4, 0.1, 0.4];
    let f = |p: &[f64]| lotka_volterra([1.0, 0.5], p, 0.05, 40);
    let g = lotka_volterra_grad([1.0, 0.5], &p, 0.05, 40);
    close(&g, &fd(f, &p), "lotka_volterra_grad");
    let (v, t) = lotka_volterra_jvp([1.0, 0.5], &p, 0.05, 40, &[0.0, 1.0, 0.0, 0.0]);
    assert_eq!(v, f(&p));
    close(&[t], &[g[1]], "lotka_volterra_jvp");
}

/// `.skip(k)` and `.take(k)` after `.enumerate()` / `.zip(..)` in a loop header: the
/// elements walked and their indices are those of the sequence.
#[grad]
fn windowed(x: &[f64], y: &[f64]) -> f64 {
    let mut s = 0.0;
    for (i, v) in x.iter().enumerate().skip(1).take(3) {
        s += v * v * i as f64;
    }
    for (a, b) in x.iter().zip(y).skip(2) {
        s += a * b.sin();
    }
    for v in y.iter().take(10) {
        s += v.exp();
    }
    s
}

#[test]
fn skip_and_take_in_loop_headers() {
    let (x, y): ([f64; 6], [f64; 4]) = ([0.3, -0.5, 1.2, 0.9, 2.0, -1.1], [0.4, 0.1, -0.7, 1.3]);
    // by hand: indices 1..4 of x, pairs from index 2, all of y
    let want: f64 = (1..4).map(|i| x[i] * x[i] * i as f64).sum::<f64>()
        + (2..4).map(|i| x[i] * y[i].sin()).sum::<f64>()
        + y.iter().map(|v| v.exp()).sum::<f64>();
    assert!((windowed(&x, &y) - want).abs() < 1e-12);
    let (gx, gy) = windowed_grad(&x, &y);
    close(&gx, &fd(|v| windowed(v, &y), &x), "d/dx");
    close(&gy, &fd(|v| windowed(&x, v), &y), "d/dy");
}
