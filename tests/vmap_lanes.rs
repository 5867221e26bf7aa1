//! `#[vmap]` of scalar code runs groups of examples over SIMD lanes
//! (`ferrax::__private::lanes`), falling back to one example at a time where a group's
//! control flow diverges. Either way every example's result must be the one the unbatched
//! function gives, bit for bit: each batched function here is checked for exact equality
//! against a loop of the unbatched one (or its `_grad`), on batches whose sizes are and are
//! not multiples of the lane count, with examples that take the same path (lanes) and ones
//! that do not (the fallback), the gradients also against central differences.

// index loops are the code under test
#![allow(clippy::needless_range_loop, clippy::len_zero)]

use ferrax::prelude::*;
use std::f64::consts::PI;

mod common;
use common::tensors::normal;

/// How many examples run over lanes at once.
const W: usize = ferrax::__private::lanes::W;

/// Batch sizes around the lane count: none, a partial group, whole groups, a tail.
const SIZES: [usize; 6] = [0, 1, W - 1, W, 2 * W + 3, 4 * W];

fn values(x: &Tensor) -> Vec<f64> {
    x.contiguous().to_vec::<f64>()
}

/// Exact equality, bit for bit (a NaN equals a NaN of the same bits).
fn same(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "{what}[{k}]: {a} vs {b}");
    }
}

// ---- examples that take the same path: a fixed-step simulation ----

/// A damped pendulum's miss after a fixed number of steps, with float methods of every
/// kind the lanes implement on the way.
#[vmap(in_axes = (None, 0, 0, None))]
#[grad(wrt(p, th0))]
fn pendulum(p: &[f64], th0: f64, w0: f64, steps: usize) -> f64 {
    let (g, c) = (p[0], p[1]);
    let mut th = th0;
    let mut w = w0;
    for i in 0..steps {
        let drive = 0.1 * (0.3 * i as f64).cos();
        let a = -g * th.sin() - c * w * w.abs().sqrt().max(0.1) + drive;
        w += 0.01 * a;
        th += 0.01 * w.clamp(-10.0, 10.0);
    }
    let miss = th.atan2(w).hypot(th.tanh()) + w.mul_add(0.5, th).exp().ln_1p();
    miss * miss + p[2].powi(3) / (1.0 + p[2] * p[2]).powf(0.5)
}

#[test]
fn a_fixed_step_simulation_matches_a_loop_bit_for_bit() {
    let p = [9.81, 0.3, 0.7];
    // (50 steps, and none: loops of zero trips over lanes)
    for (b, n) in SIZES.into_iter().flat_map(|b| [(b, 50), (b, 0)]) {
        let (th0, w0) = (normal(1, &[b]), normal(2, &[b]));
        let (t, w) = (values(&th0), values(&w0));
        let value = pendulum_vmap(&p, &th0, &w0, n);
        let (gp, gth) = pendulum_grad_vmap(&p, &th0, &w0, n);
        let (v2, gp2, gth2) = pendulum_value_and_grad_vmap(&p, &th0, &w0, n);
        assert_eq!(gp.shape(), &[b, 3]);
        let mut want = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..b {
            want.0.push(pendulum(&p, t[k], w[k], n));
            let (g, h) = pendulum_grad(&p, t[k], w[k], n);
            want.1.extend(g);
            want.2.push(h);
        }
        for (got, want, what) in [
            (&value, &want.0, "value"),
            (&v2, &want.0, "value_and_grad's value"),
            (&gp, &want.1, "gradient of p"),
            (&gp2, &want.1, "value_and_grad's gradient of p"),
            (&gth, &want.2, "gradient of th0"),
            (&gth2, &want.2, "value_and_grad's gradient of th0"),
        ] {
            same(&values(got), want, &format!("{what}, batch {b}, {n} steps"));
        }
    }
    // (and the gradient is a gradient: central differences of the first example's p)
    let (th0, w0) = (normal(1, &[4]), normal(2, &[4]));
    let (t, w) = (values(&th0)[0], values(&w0)[0]);
    let g = values(&pendulum_grad_vmap(&p, &th0, &w0, 50).0);
    for j in 0..3 {
        let h = 1e-6;
        let (mut up, mut down) = (p, p);
        up[j] += h;
        down[j] -= h;
        let fd = (pendulum(&up, t, w, 50) - pendulum(&down, t, w, 50)) / (2.0 * h);
        assert!(
            (g[j] - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
            "p[{j}]: {} vs {fd}",
            g[j]
        );
    }
}

// ---- examples that do not: branches, per-example trip counts, casts ----

/// Newton's method for the cube root of `a` to a tolerance: a `while` loop whose trip
/// count differs per example, a branch on the example's sign, and an integer made of it.
#[vmap]
#[grad]
fn cube_root(a: f64) -> f64 {
    let mut x = if a > 1.0 { a } else { 1.0 };
    let mut iters = 0;
    while (x * x * x - a).abs() > 1e-12 * a.abs().max(1.0) && iters < 100 {
        x -= (x * x * x - a) / (3.0 * x * x);
        iters += 1;
    }
    let extra = (a.abs().floor() as usize).min(3);
    let mut y = x;
    for _ in 0..extra {
        y *= 1.0001;
    }
    y
}

#[test]
fn diverging_examples_fall_back_to_one_at_a_time_and_match_a_loop() {
    for b in SIZES {
        // (uniform groups, diverging ones, and groups mixing both)
        let xs: Vec<f64> = (0..b)
            .map(|k| match (k / W % 2, k % 4) {
                (0, _) => 8.0,
                (_, 0) => 0.5,
                (_, 1) => 27.0,
                (_, 2) => 1e-3,
                _ => 2.5,
            })
            .collect();
        let what = format!("cube_root, batch {b}");
        floats_match_a_loop(
            &xs,
            [cube_root, cube_root_grad],
            [cube_root_vmap, cube_root_grad_vmap],
            &what,
        );
    }
}

/// `batched[i]` of `xs` (a function of one float and its gradient, batched), bit for bit
/// `one[i]` of each.
fn floats_match_a_loop(
    xs: &[f64],
    one: [fn(f64) -> f64; 2],
    batched: [fn(&Tensor) -> Tensor; 2],
    what: &str,
) {
    let x = Tensor::from_vec(xs.to_vec(), &[xs.len()]);
    for (f, (g, form)) in one.iter().zip(batched.iter().zip(["value", "gradient"])) {
        let want: Vec<f64> = xs.iter().map(|a| f(*a)).collect();
        same(&values(&g(&x)), &want, &format!("{what}: {form}"));
    }
}

/// Clipping under `if` per step: every group diverges on some step (most groups are not
/// tried after the first few), NaN inputs included.
#[vmap]
#[grad]
fn clipped_walk(x0: f64) -> f64 {
    let mut x = x0;
    for i in 0..20 {
        x = x * 1.3 + 0.1 * i as f64;
        if x > 2.0 {
            x = 2.0 - 0.5 * (x - 2.0);
        }
    }
    x * x
}

#[test]
fn examples_that_branch_on_their_own_values_match_a_loop() {
    let mut xs = values(&normal(7, &[37]));
    xs[5] = f64::NAN;
    let (one, batched) = (
        [clipped_walk, clipped_walk_grad],
        [clipped_walk_vmap, clipped_walk_grad_vmap],
    );
    floats_match_a_loop(&xs, one, batched, "clipped_walk");
}

// ---- sequences and the other float width over lanes ----

/// A polynomial fit's squared miss over batched points (`&[f64]` per example) with shared
/// coefficients in an array: sequences over lanes in and, as gradients, out.
#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(c, xs))]
fn fit(c: [f64; 3], xs: &[f64], ys: Vec<f64>) -> f64 {
    let mut loss = 0.0;
    for i in 0..xs.len() {
        let y = c[0] + c[1] * xs[i] + c[2] * xs[i] * xs[i];
        loss += (y - ys[i]) * (y - ys[i]);
    }
    loss / xs.len() as f64
}

#[test]
fn sequences_over_lanes_match_a_loop() {
    let c = [0.5, -1.0, 0.25];
    // (five points, one, and none: empty sequences over lanes)
    for (b, n) in SIZES.into_iter().flat_map(|b| [(b, 5), (b, 1), (b, 0)]) {
        let (xs, ys) = (normal(3, &[b, n]), normal(4, &[b, n]));
        let (gc, gx) = fit_grad_vmap(c, &xs, &ys);
        assert_eq!((gc.shape(), gx.shape()), (&[b, 3][..], &[b, n][..]));
        let (xv, yv) = (values(&xs), values(&ys));
        let (mut wc, mut wx) = (Vec::new(), Vec::new());
        for k in 0..b {
            let (x, y) = (&xv[n * k..n * k + n], &yv[n * k..n * k + n]);
            let (g, h) = fit_grad(c, x, y.to_vec());
            wc.extend(g);
            wx.extend(h);
        }
        let what = format!("batch {b}, {n} points");
        same(&values(&gc), &wc, &format!("gradient of c, {what}"));
        same(&values(&gx), &wx, &format!("gradient of xs, {what}"));
    }
}

/// An f32 relaxation returning its state, a sequence made over lanes.
#[vmap(in_axes = (0, None))]
fn relax(x: [f32; 4], rate: f32) -> Vec<f32> {
    let mut v = x.to_vec();
    for _ in 0..10 {
        for i in 1..3 {
            v[i] += rate * (v[i - 1] - 2.0 * v[i] + v[i + 1]);
        }
    }
    v
}

#[test]
fn f32_sequences_over_lanes_match_a_loop() {
    let x = normal(5, &[9, 4]).to_dtype(DType::F32);
    let got = relax_vmap(&x, 0.2);
    assert_eq!(got.dtype(), DType::F32);
    let xv = x.contiguous().to_vec::<f32>();
    let want: Vec<f32> = xv
        .chunks(4)
        .flat_map(|r| relax([r[0], r[1], r[2], r[3]], 0.2))
        .collect();
    let got = got.contiguous().to_vec::<f32>();
    assert_eq!(
        got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}

// ---- the scalar language over lanes ----

/// Much of what scalar code may say, over lanes: early returns, `while` with `break` and
/// `continue`, a `match` on an integer made of a float, local arrays and `Vec`s (pushes,
/// pops, element writes), views, iterator sums, integer arithmetic, constants, literal
/// receivers, `f32` inside an `f64` function; each example's result bit for bit a loop's.
#[vmap(in_axes = (0, 0, None))]
#[grad(wrt(x, w))]
fn language(x: f64, w: &[f64], n: usize) -> f64 {
    if x > 50.0 {
        return x;
    }
    let mut acc = [0.0f64; 3];
    let mut hist: Vec<f64> = Vec::new();
    let mut k = 0usize;
    let mut y = x;
    while k < n {
        k += 1;
        if k.is_multiple_of(3) {
            continue;
        }
        y = y * 0.9 + w[k % w.len()] * std::f64::consts::FRAC_1_SQRT_2;
        if y.abs() > 1e6 {
            break;
        }
        acc[k % 3] += y * y;
        hist.push(y);
    }
    let tail = &w[1..];
    let s: f64 = tail.iter().sum();
    let bucket = (x.abs().min(5.0).floor() as i64) % 3;
    let scale = match bucket {
        0 => 1.0,
        1 => 2.0f64.powf(0.5),
        _ => 10.0f64.ln(),
    };
    let last = if hist.len() == 0 {
        0.0
    } else {
        hist[hist.len() - 1]
    };
    let small = (y as f32 * 0.5f32) as f64;
    (acc[1] + acc[2]) * scale + s * last + small + (n as f64).sqrt() * y.sin().max(-0.5)
}

#[test]
fn the_scalar_language_over_lanes_matches_a_loop() {
    for b in SIZES {
        let (x, w) = (normal(8, &[b]), normal(9, &[b, 4]));
        let (xv, wv) = (values(&x), values(&w));
        let v = values(&language_vmap(&x, &w, 11));
        let (gx, gw) = language_grad_vmap(&x, &w, 11);
        let (mut want, mut wgx, mut wgw) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..b {
            let wk = &wv[4 * k..4 * k + 4];
            want.push(language(xv[k], wk, 11));
            let (a, c) = language_grad(xv[k], wk, 11);
            wgx.push(a);
            wgw.extend(c);
        }
        same(&v, &want, &format!("language_vmap, batch {b}"));
        same(&values(&gx), &wgx, &format!("gradient of x, batch {b}"));
        same(&values(&gw), &wgw, &format!("gradient of w, batch {b}"));
    }
}

// ---- per-example Jacobians and Hessians over lanes ----

/// A damped chain's positions after a few steps, from each example's start: per-example
/// Jacobians with respect to the start (forward, reverse, and the cheaper of the two).
#[vmap(in_axes = (0, None))]
#[jacobian(wrt(x))]
fn chain(x: &[f64], damping: f64) -> Vec<f64> {
    let mut v = x.to_vec();
    for _ in 0..3 {
        for i in 1..v.len() {
            v[i] = v[i] * (1.0 - damping) + 0.5 * v[i - 1].tanh();
        }
    }
    v.push(v[0] * v[v.len() - 1]);
    v
}

/// A chain's energy: per-example Hessians.
#[vmap(in_axes = (0, None))]
#[hessian(wrt(x))]
fn energy(x: &[f64], k: f64) -> f64 {
    let mut e = 0.0;
    for i in 1..x.len() {
        let d = x[i] - x[i - 1];
        e += k * d * d * d * d + (d * x[i]).sin();
    }
    e
}

#[test]
fn per_example_jacobians_and_hessians_over_lanes_match_a_loop() {
    for b in SIZES {
        let x = normal(10, &[b, 4]);
        let xv = values(&x);
        let examples: Vec<&[f64]> = xv.chunks(4).collect();
        for (got, one, what) in [
            (
                chain_jacfwd_vmap(&x, 0.1),
                chain_jacfwd as fn(&[f64], f64) -> Vec<Vec<f64>>,
                "jacfwd",
            ),
            (chain_jacrev_vmap(&x, 0.1), chain_jacrev, "jacrev"),
            (chain_jacobian_vmap(&x, 0.1), chain_jacobian, "jacobian"),
        ] {
            // (an empty batch's rows are of unknown length: `[0, 0, 0]`)
            assert_eq!(got.shape(), [b, if b == 0 { 0 } else { 5 }, 4 * b.min(1)]);
            let want: Vec<f64> = examples.iter().flat_map(|e| one(e, 0.1).concat()).collect();
            same(&values(&got), &want, &format!("{what}, batch {b}"));
        }
        let got = energy_hessian_vmap(&x, 0.5);
        assert_eq!(got.shape(), [b, 4 * b.min(1), 4 * b.min(1)]);
        let want: Vec<f64> = examples
            .iter()
            .flat_map(|e| energy_hessian(e, 0.5).concat())
            .collect();
        same(&values(&got), &want, &format!("hessian, batch {b}"));
    }
}

/// A clamp only the examples of one branch reach, with bounds that would be invalid on
/// the other: a group whose first lane takes it must not panic for the others.
#[vmap]
fn guarded(x: f64) -> f64 {
    if x > 0.0 {
        x.clamp(0.0, x) * 3.0
    } else {
        x * 2.0
    }
}

#[test]
fn a_panic_only_another_branch_would_reach_is_not_raised_over_lanes() {
    let xs: Vec<f64> = (0..4 * W)
        .map(|k| if k % 3 == 0 { 1.5 } else { -0.5 })
        .collect();
    let want: Vec<f64> = xs.iter().map(|x| guarded(*x)).collect();
    let got = guarded_vmap(&Tensor::from_vec(xs, &[4 * W]));
    same(&values(&got), &want, "guarded_vmap");
}

const K: f64 = 2.0;
const RATE: f64 = 0.3;
const TAPS: [f64; 3] = [0.25, 0.5, 0.25];
const GAINS: &[f64] = &[1.0, 0.5];
const REPEATS: usize = 4;

/// Constants the body names, of types only rustc knows: a float, an integer, an array and
/// a slice of floats, over lanes.
#[vmap]
#[grad]
fn filtered(x: f64) -> f64 {
    let (taps, gains): ([f64; 3], &[f64]) = (TAPS, GAINS);
    let mut y = x;
    for _ in 0..REPEATS {
        y = taps[0] * y + taps[1] * y.sin() + taps[2] * RATE * gains[1];
    }
    y * gains[0]
}

#[test]
fn named_constants_over_lanes_match_a_loop() {
    let xs = values(&normal(11, &[2 * W + 1]));
    let (one, batched) = (
        [filtered, filtered_grad],
        [filtered_vmap, filtered_grad_vmap],
    );
    floats_match_a_loop(&xs, one, batched, "filtered");
}

// (the iterator forms scalar code may use, std's constants, a closure called by name)
#[vmap(in_axes = (0, 0))]
#[grad]
fn iterators(x: f64, xs: &[f64]) -> f64 {
    let e = f64::EPSILON + std::f64::consts::E.powf(x * 0.1) + PI * x;
    let mut acc = 0.0;
    for w in xs.windows(2) {
        acc += w[0] * w[1];
    }
    for c in xs.chunks(2) {
        acc += c[0];
    }
    let total: f64 = xs.iter().map(|a| a * K).sum();
    let prod: f64 = xs.iter().product();
    let folded = xs.iter().fold(0.0, |s, a| s + a.abs());
    let doubled: Vec<f64> = xs.iter().map(|a| a * 2.0).collect();
    let sq = |v: f64| v * v;
    let ok = x > 0.0 && acc < 10.0 || total > 100.0;
    let n = xs.len() as f64;
    let mut y = if ok { sq(x) } else { -x % 3.0 };
    let mut i = 0;
    loop {
        i += 1;
        if i > 3 {
            break;
        }
        y += doubled[i % doubled.len()] / n;
    }
    y + e
        + prod
        + folded
        + {
            let h = [0.5; 3];
            h[1]
        }
        + x.sqrt().ln_1p()
}

#[test]
fn iterators_closures_and_std_constants_over_lanes_match_a_loop() {
    for b in SIZES {
        let (x, xs) = (normal(12, &[b]).abs(), normal(13, &[b, 5]));
        let (xv, rows) = (values(&x), values(&xs));
        let (mut want, mut wgx, mut wgxs) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..b {
            let r = &rows[5 * k..5 * k + 5];
            want.push(iterators(xv[k], r));
            let (gx, gxs) = iterators_grad(xv[k], r);
            wgx.push(gx);
            wgxs.extend(gxs);
        }
        same(
            &values(&iterators_vmap(&x, &xs)),
            &want,
            &format!("iterators_vmap, batch {b}"),
        );
        let (gx, gxs) = iterators_grad_vmap(&x, &xs);
        same(&values(&gx), &wgx, &format!("gradient of x, batch {b}"));
        same(&values(&gxs), &wgxs, &format!("gradient of xs, batch {b}"));
    }
}

/// Every float method of the primitive table (`Prim::FLOAT_METHODS`), over lanes: `L` has
/// each, and each lane computes what `f64`'s does.
#[vmap]
#[grad]
fn every_float_method(x: f64) -> f64 {
    let (a, b) = (x.abs() * 0.25 + 0.1, 1.0 + x * x);
    let trig = a.sin() + a.cos() + a.tan() + a.asin() + a.acos() + a.atan() + a.atan2(b);
    let hyp = a.sinh() + a.cosh() + a.tanh() + a.asinh() + b.acosh() + a.atanh();
    let exps = a.exp() + a.exp2() + a.exp_m1() + b.ln() + b.log(3.0) + b.log2() + b.log10();
    let roots = a.ln_1p() + b.sqrt() + x.cbrt() + b.powi(3) + b.powf(a) + x.abs();
    let rest = x.signum() + a.hypot(b) + x.max(a) + x.min(a) + a.mul_add(b, x) + b.recip();
    let rounding = (3.0 * x).clamp(-1.0, 1.0) + x.floor() + x.ceil() + x.round() + x.trunc();
    trig + hyp + exps + roots + rest + rounding
}

#[test]
fn every_float_method_over_lanes_matches_a_loop() {
    let xs = values(&normal(14, &[2 * W + 3]));
    let (one, batched) = (
        [every_float_method, every_float_method_grad],
        [every_float_method_vmap, every_float_method_grad_vmap],
    );
    floats_match_a_loop(&xs, one, batched, "every_float_method");
}
