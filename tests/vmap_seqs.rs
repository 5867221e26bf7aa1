//! `#[vmap]` over sequences of floats (`&[f64]`, `Vec<f64>`, `[f64; N]`): a batched
//! sequence is a `[batch, n]` tensor (batch axis where `in_axes` says), and a sequence the
//! batched function returns, or a sequence parameter's per-example gradient, is one too.
//! Each batched function is checked against a loop of the unbatched one, per-example
//! gradients against a loop of `_grad` and against central differences; control flow that
//! differs per example (element writes under `if`, `while` loops of per-example trip
//! counts) included.

// index loops and `s = s + ..` are the code under test
#![allow(clippy::needless_range_loop, clippy::assign_op_pattern)]

use ferrax::prelude::*;

mod common;
use common::tensors::{assert_close, normal};

/// The rows of a `[batch, n]` f64 tensor.
fn rows(x: &Tensor) -> Vec<Vec<f64>> {
    let n = x.shape()[1];
    x.contiguous()
        .to_vec::<f64>()
        .chunks(n.max(1))
        .map(<[f64]>::to_vec)
        .take(x.shape()[0])
        .collect()
}

/// A `[batch, n]` tensor of rows.
fn of_rows(rows: &[Vec<f64>]) -> Tensor {
    let n = rows.first().map_or(0, Vec::len);
    Tensor::from_vec(rows.concat(), &[rows.len(), n])
}

/// A 1-D tensor's values.
fn values(x: &Tensor) -> Vec<f64> {
    x.to_vec::<f64>()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{k}]: {a} vs {b}"
        );
    }
}

// ---- batched sequences in, batched sequences out ----

/// One explicit step of a diffusing chain: neighbours read, a new Vec written.
#[vmap(in_axes = (0, None))]
fn diffuse(x: &[f64], dt: f64) -> Vec<f64> {
    let n = x.len();
    let mut out = vec![0.0; n];
    for i in 0..n {
        let left = if i > 0 { x[i - 1] } else { 0.0 };
        let right = if i + 1 < n { x[i + 1] } else { 0.0 };
        out[i] = x[i] + dt * (left - 2.0 * x[i] + right);
    }
    out
}

#[test]
fn a_step_over_slices_matches_a_loop_for_batches_of_one_and_more() {
    for b in [1usize, 6] {
        let xs = normal(1 + b as u64, &[b, 7]);
        let got = diffuse_vmap(&xs, 0.1);
        assert_eq!(got.shape(), &[b, 7]);
        let want: Vec<Vec<f64>> = rows(&xs).iter().map(|x| diffuse(x, 0.1)).collect();
        assert_close(&got, &of_rows(&want), 1e-14, "diffuse_vmap");
    }
}

/// A running sum pushed onto a Vec built empty.
#[vmap]
fn running_squares(x: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut s = 0.0;
    for i in 0..x.len() {
        s = s + x[i];
        out.push(s * s);
    }
    out
}

/// Element writes under a condition that differs per example, with a per-example bound:
/// `$v`, a copy of `$x`, clipped above `$lim` and halved below it, goes to `$out`. One
/// body for the scalar function and its tensor twin below.
macro_rules! clipping {
    ($(#[$m:meta])* fn $name:ident($x:ident: $xt:ty, $lim:ident: $lt:ty $(, $p:ident: $pt:ty)*) -> $r:ty {
        |$v:ident| $out:expr
    }) => {
        $(#[$m])*
        fn $name($x: $xt, $lim: $lt $(, $p: $pt)*) -> $r {
            let mut $v = $x.to_vec();
            for i in 0..$v.len() {
                if $v[i] > $lim {
                    $v[i] = $lim;
                } else {
                    $v[i] = $v[i] * 0.5;
                }
            }
            $out
        }
    };
}

clipping! {
    #[vmap]
    fn clip_above(x: Vec<f64>, lim: f64) -> Vec<f64> { |v| v }
}

#[test]
fn pushes_and_element_writes_under_per_example_conditions_match_a_loop() {
    let xs = normal(3, &[5, 6]);
    let want: Vec<Vec<f64>> = rows(&xs).iter().map(|x| running_squares(x)).collect();
    assert_close(
        &running_squares_vmap(&xs),
        &of_rows(&want),
        1e-14,
        "running",
    );

    let lims = normal(4, &[5]);
    let got = clip_above_vmap(&xs, &lims);
    let want: Vec<Vec<f64>> = rows(&xs)
        .into_iter()
        .zip(values(&lims))
        .map(|(x, l)| clip_above(x, l))
        .collect();
    assert_close(&got, &of_rows(&want), 0.0, "clip_above");
    // (the condition really differs: some elements were clipped, some halved)
    let (v, x) = (got.to_vec::<f64>(), xs.to_vec::<f64>());
    assert!(v.iter().zip(&x).any(|(a, b)| a * 2.0 == *b));
    assert!(v.iter().zip(&x).any(|(a, b)| a * 2.0 != *b));
}

/// Fixed-size arrays in and out, a float batched beside them.
#[vmap]
fn rotate_z(p: [f64; 3], angle: f64) -> [f64; 3] {
    let (c, s) = (angle.cos(), angle.sin());
    [c * p[0] - s * p[1], s * p[0] + c * p[1], p[2]]
}

#[test]
fn arrays_batch_as_rows_of_their_length() {
    let ps = normal(5, &[4, 3]);
    let angles = normal(6, &[4]);
    let got = rotate_z_vmap(&ps, &angles);
    let want: Vec<Vec<f64>> = rows(&ps)
        .iter()
        .zip(values(&angles))
        .map(|(p, a)| rotate_z([p[0], p[1], p[2]], a).to_vec())
        .collect();
    assert_close(&got, &of_rows(&want), 1e-14, "rotate_z");
    // an array parameter takes exactly its length
    let r = std::panic::catch_unwind(|| rotate_z_vmap(&normal(7, &[4, 2]), &angles));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(
        msg.contains("rotate_z_vmap") && msg.contains("`p`") && msg.contains("[batch, 3]"),
        "{msg}"
    );
}

/// f32 sequences, the batch along axis 1 (`[n, batch]`), the result moved to axis 1.
#[vmap(in_axes = (1, None), out_axes = 1)]
fn scaled(x: &[f32], k: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        out.push(x[i] * k + 1.0);
    }
    out
}

#[test]
fn f32_sequences_batch_along_any_axis() {
    let xs = normal(8, &[4, 3]).to_dtype(DType::F32); // 4 elements, 3 examples
    let got = scaled_vmap(&xs, 2.0);
    assert_eq!(got.shape(), &[4, 3]);
    assert_eq!(got.dtype(), DType::F32);
    let cols = xs.t().contiguous().to_vec::<f32>();
    let want: Vec<f32> = (0..3)
        .flat_map(|b| scaled(&cols[b * 4..b * 4 + 4], 2.0))
        .collect();
    let want = Tensor::from_vec(want, &[3, 4]).t().contiguous();
    assert_eq!(got.contiguous().to_vec::<f32>(), want.to_vec::<f32>());
    // a tensor of the other float type is converted (the function computes in f32)
    assert_eq!(
        scaled_vmap(&xs.to_dtype(DType::F64), 2.0).to_vec::<f32>(),
        got.to_vec::<f32>()
    );
    // one of more than two axes is an error naming the parameter
    let r =
        std::panic::catch_unwind(|| scaled_vmap(&normal(9, &[4, 3, 2]).to_dtype(DType::F32), 2.0));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("2-D"), "{msg}");
}

// ---- per-example gradients of sequence parameters ----

/// A polynomial's squared error at one point: the coefficients shared, the point per example.
#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(p))]
fn poly_loss(p: &[f64], x: f64, y: f64) -> f64 {
    let mut pred = 0.0;
    let mut xp = 1.0;
    for i in 0..p.len() {
        pred = pred + p[i] * xp;
        xp = xp * x;
    }
    (pred - y) * (pred - y)
}

#[test]
fn per_example_gradients_of_shared_coefficients_match_a_loop_and_differences() {
    let p = vec![0.5, -1.0, 0.25, 2.0];
    let (xs, ys) = (normal(10, &[6]), normal(11, &[6]));
    let got = poly_loss_grad_vmap(&p, &xs, &ys);
    assert_eq!(got.shape(), &[6, 4]);
    let (xv, yv) = (values(&xs), values(&ys));
    let want: Vec<Vec<f64>> = xv
        .iter()
        .zip(&yv)
        .map(|(x, y)| poly_loss_grad(&p, *x, *y))
        .collect();
    assert_close(&got, &of_rows(&want), 1e-13, "poly_loss_grad_vmap");
    // against central differences, example by example
    let h = 1e-6;
    for (b, g) in rows(&got).iter().enumerate() {
        for k in 0..p.len() {
            let (mut hi, mut lo) = (p.clone(), p.clone());
            hi[k] += h;
            lo[k] -= h;
            let fd = (poly_loss(&hi, xv[b], yv[b]) - poly_loss(&lo, xv[b], yv[b])) / (2.0 * h);
            close(&[g[k]], &[fd], 1e-6, "poly_loss finite differences");
        }
    }
    let (v, g) = poly_loss_value_and_grad_vmap(&p, &xs, &ys);
    assert_close(&g, &got, 0.0, "value_and_grad's gradient");
    let want: Vec<f64> = xv
        .iter()
        .zip(&yv)
        .map(|(x, y)| poly_loss(&p, *x, *y))
        .collect();
    close(&values(&v), &want, 1e-14, "value_and_grad's value");
}

/// A batched slice read through a view, a gradient with respect to it and a float.
#[vmap]
#[grad]
fn weighted_tail(x: &[f64], w: f64) -> f64 {
    let tail = &x[1..];
    let mut s = 0.0;
    for i in 0..tail.len() {
        s = s + (tail[i] * w).sin() * x[0];
    }
    s
}

#[test]
fn per_example_gradients_of_batched_slices_and_views_match_a_loop() {
    let (xs, ws) = (normal(12, &[5, 4]), normal(13, &[5]));
    let (gx, gw) = weighted_tail_grad_vmap(&xs, &ws);
    assert_eq!(gx.shape(), &[5, 4]);
    assert_eq!(gw.shape(), &[5]);
    let mut want_x = Vec::new();
    let mut want_w = Vec::new();
    for (x, w) in rows(&xs).iter().zip(values(&ws)) {
        let (g, gw) = weighted_tail_grad(x, w);
        want_x.push(g);
        want_w.push(gw);
    }
    assert_close(&gx, &of_rows(&want_x), 1e-13, "gradient of x");
    close(&values(&gw), &want_w, 1e-13, "gradient of w");
    let want: Vec<f64> = rows(&xs)
        .iter()
        .zip(values(&ws))
        .map(|(x, w)| weighted_tail(x, w))
        .collect();
    close(
        &values(&weighted_tail_vmap(&xs, &ws)),
        &want,
        1e-14,
        "values",
    );
}

/// A relaxation until the change is small, `$x` a slice and `$tol` a float: a `while`
/// whose trip count differs per example, overwriting the elements of a copy of the slice
/// (the reverse sweep undoes the writes); the energy at the end goes to `$out`. One body
/// for the scalar function and its tensor twin below (and a check that functions a
/// `macro_rules!` writes, their types and expressions fragments, expand as written out).
macro_rules! relaxation {
    ($(#[$m:meta])* fn $name:ident($x:ident: $xt:ty, $tol:ident: $tt:ty $(, $p:ident: $pt:ty)*) -> $r:ty {
        |$e:ident| $out:expr
    }) => {
        $(#[$m])*
        fn $name($x: $xt, $tol: $tt $(, $p: $pt)*) -> $r {
            let mut v = $x.to_vec();
            let mut change = 1.0;
            let mut sweeps = 0;
            while change > $tol && sweeps < 200 {
                change = 0.0;
                for i in 1..v.len() - 1 {
                    let new = 0.5 * (v[i - 1] + v[i + 1]) + 0.1 * v[i];
                    change = change + (new - v[i]) * (new - v[i]);
                    v[i] = new;
                }
                sweeps += 1;
            }
            let mut $e = 0.0;
            for i in 0..v.len() {
                $e = $e + v[i] * v[i] * (i as f64 + 1.0);
            }
            $out
        }
    };
}

relaxation! {
    #[vmap(in_axes = (0, None))]
    #[grad(wrt(x))]
    fn relax(x: &[f64], tol: f64) -> f64 { |e| e }
}

#[test]
fn per_example_trip_counts_with_element_writes_match_a_loop() {
    let mut xs = rows(&normal(14, &[4, 6]));
    // (an example that is already relaxed: it stops after one sweep, the others later)
    xs[1] = vec![0.0; 6];
    let xs = of_rows(&xs);
    let tol = 1e-6;
    let got = relax_vmap(&xs, tol);
    let want: Vec<f64> = rows(&xs).iter().map(|x| relax(x, tol)).collect();
    close(&values(&got), &want, 1e-13, "relax_vmap");
    let g = relax_grad_vmap(&xs, tol);
    let want: Vec<Vec<f64>> = rows(&xs).iter().map(|x| relax_grad(x, tol)).collect();
    assert_close(&g, &of_rows(&want), 1e-12, "relax_grad_vmap");
}

/// Pushes in a gradient: the list of batched floats a reverse sweep reads back.
#[vmap]
#[grad]
fn chain_energy(x: &[f64]) -> f64 {
    let mut d = Vec::with_capacity(x.len());
    for i in 1..x.len() {
        d.push(x[i] - x[i - 1]);
    }
    let mut e = 0.0;
    for i in 0..d.len() {
        e = e + d[i] * d[i] * d[i].cos();
    }
    e
}

#[test]
fn per_example_gradients_through_pushed_vecs_match_a_loop() {
    let xs = normal(15, &[3, 5]);
    let got = chain_energy_grad_vmap(&xs);
    let want: Vec<Vec<f64>> = rows(&xs).iter().map(|x| chain_energy_grad(x)).collect();
    assert_close(&got, &of_rows(&want), 1e-13, "chain_energy_grad_vmap");
    let want: Vec<f64> = rows(&xs).iter().map(|x| chain_energy(x)).collect();
    close(&values(&chain_energy_vmap(&xs)), &want, 1e-14, "values");
}

// ---- tensor twins: batched operation by operation ----
//
// A tensor parameter makes a function tensor code, which `#[vmap]` batches operation by
// operation (each float of a batched sequence a `[batch]` tensor, element writes under
// per-example conditions masked), where the scalar functions above run once per example.
// Each twin is its scalar function's body times a one-element tensor `s`.

clipping! {
    #[vmap(in_axes = (0, 0, None))]
    #[allow(dead_code)] // (its batched forms are under test)
    fn clip_above_t(x: Vec<f64>, lim: f64, s: &Tensor) -> Tensor {
        |v| {
            let mut e = 0.0;
            for i in 0..v.len() {
                e = e + v[i] * (i as f64 + 1.0);
            }
            s * e
        }
    }
}

relaxation! {
    #[vmap(in_axes = (0, None, None))]
    #[grad(wrt(x))]
    #[allow(dead_code)] // (its batched forms are under test)
    fn relax_t(x: &[f64], tol: f64, s: &Tensor) -> Tensor { |e| (s * e).sum() }
}

#[vmap(in_axes = (None, 0, 0, None))]
#[grad(wrt(p))]
#[allow(dead_code)] // (its batched forms are under test)
fn poly_loss_t(p: &[f64], x: f64, y: f64, s: &Tensor) -> Tensor {
    let mut pred = 0.0;
    let mut xp = 1.0;
    for i in 0..p.len() {
        pred = pred + p[i] * xp;
        xp = xp * x;
    }
    (s * ((pred - y) * (pred - y))).sum()
}

#[vmap(in_axes = (0, None))]
#[grad(wrt(x))]
fn chain_energy_t(x: [f64; 5], s: &Tensor) -> Tensor {
    let mut d = Vec::with_capacity(x.len());
    for i in 1..x.len() {
        d.push(x[i] - x[i - 1]);
    }
    let tail = &d[1..];
    let mut e = d[0] * d[0];
    for i in 0..tail.len() {
        e = e + tail[i] * tail[i] * tail[i].cos();
    }
    (s * e).sum()
}

#[test]
fn tensor_code_over_batched_sequences_matches_the_scalar_code() {
    let s = Tensor::from_vec(vec![1.0f64], &[1]);
    let xs = normal(16, &[5, 6]);
    let lims = normal(17, &[5]);
    let want: Vec<f64> = rows(&xs)
        .into_iter()
        .zip(values(&lims))
        .map(|(x, l)| {
            let v = clip_above(x, l);
            v.iter()
                .enumerate()
                .map(|(i, v)| v * (i as f64 + 1.0))
                .sum()
        })
        .collect();
    let got = clip_above_t_vmap(&xs, &lims, &s);
    assert_eq!(got.shape(), &[5, 1]);
    close(&values(&got.reshape(&[5])), &want, 1e-13, "clip_above_t");

    let mut rs = rows(&normal(18, &[4, 6]));
    rs[2] = vec![0.0; 6];
    let xs = of_rows(&rs);
    let g = relax_t_grad_vmap(&xs, 1e-6, &s);
    let want: Vec<Vec<f64>> = rs.iter().map(|x| relax_grad(x, 1e-6)).collect();
    assert_close(&g, &of_rows(&want), 1e-12, "relax_t_grad_vmap");

    let p = vec![0.5, -1.0, 0.25, 2.0];
    let (xv, yv) = (normal(19, &[6]), normal(20, &[6]));
    let g = poly_loss_t_grad_vmap(&p, &xv, &yv, &s);
    let want = poly_loss_grad_vmap(&p, &xv, &yv);
    assert_close(&g, &want, 1e-13, "poly_loss_t_grad_vmap");

    let xs = normal(21, &[3, 5]);
    let g = chain_energy_t_grad_vmap(&xs, &s);
    assert_eq!(g.shape(), &[3, 5]);
    // against central differences, example by example
    let h = 1e-6;
    for (b, x) in rows(&xs).iter().enumerate() {
        let x: [f64; 5] = x.clone().try_into().unwrap();
        let f = |x: [f64; 5]| chain_energy_t(x, &s).item::<f64>();
        for k in 0..5 {
            let (mut hi, mut lo) = (x, x);
            hi[k] += h;
            lo[k] -= h;
            let fd = (f(hi) - f(lo)) / (2.0 * h);
            close(&[rows(&g)[b][k]], &[fd], 1e-6, "chain_energy_t");
        }
    }
}

// ---- per-example Jacobians and Hessians of scalar code ----

#[vmap]
#[jacobian]
fn neighbours(x: &[f64]) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len());
    for i in 1..x.len() {
        y.push(x[i] * x[i - 1].sin());
    }
    y
}

#[vmap(in_axes = (0, None))]
#[hessian(wrt(x))]
fn quartic_chain(x: &[f64], k: f64) -> f64 {
    let mut e = 0.0;
    for i in 1..x.len() {
        let d = x[i] - x[i - 1];
        e = e + k * d * d * d * d + d.cos();
    }
    e
}

#[test]
fn per_example_jacobians_and_hessians_of_scalar_code_match_a_loop() {
    let xs = normal(22, &[4, 5]);
    let want: Vec<f64> = rows(&xs)
        .iter()
        .flat_map(|x| neighbours_jacobian(x).concat())
        .collect();
    for (got, mode) in [
        (neighbours_jacobian_vmap(&xs), "jacobian"),
        (neighbours_jacfwd_vmap(&xs), "jacfwd"),
        (neighbours_jacrev_vmap(&xs), "jacrev"),
    ] {
        assert_eq!(got.shape(), &[4, 4, 5], "{mode}");
        close(&got.to_vec::<f64>(), &want, 1e-14, mode);
    }
    // (the rows themselves against central differences, for one example)
    let x = rows(&xs)[1].clone();
    let h = 1e-6;
    let j = neighbours_jacobian(&x);
    for k in 0..5 {
        let (mut hi, mut lo) = (x.clone(), x.clone());
        hi[k] += h;
        lo[k] -= h;
        let (yh, yl) = (neighbours(&hi), neighbours(&lo));
        for r in 0..4 {
            close(
                &[j[r][k]],
                &[(yh[r] - yl[r]) / (2.0 * h)],
                1e-6,
                "jacobian rows",
            );
        }
    }
    let got = quartic_chain_hessian_vmap(&xs, 0.5);
    assert_eq!(got.shape(), &[4, 5, 5]);
    let want: Vec<f64> = rows(&xs)
        .iter()
        .flat_map(|x| quartic_chain_hessian(x, 0.5).concat())
        .collect();
    close(&got.to_vec::<f64>(), &want, 1e-13, "hessian");
    // and the values batched once per example too
    let want: Vec<f64> = rows(&xs).iter().map(|x| quartic_chain(x, 0.5)).collect();
    close(
        &values(&quartic_chain_vmap(&xs, 0.5)),
        &want,
        1e-14,
        "values",
    );
}

// ---- scalar code calling the user's functions ----

/// A helper with its own derivative (`#[grad]`), called by the batched function below.
#[grad]
fn bond(d: f64, k: f64) -> f64 {
    k * d * d * (1.0 + 0.1 * d.sin())
}

/// Scalar code that calls a helper of the user's: run once per example (on the caller's
/// thread, as the helper may read its state), the helper needs no batched form.
#[vmap(in_axes = (0, None))]
#[grad(wrt(x))]
fn bonded(x: &[f64], k: f64) -> f64 {
    let mut e = 0.0;
    for i in 1..x.len() {
        e = e + bond(x[i] - x[i - 1], k);
    }
    e
}

#[test]
fn scalar_code_calling_the_users_functions_runs_once_per_example() {
    let xs = normal(23, &[6, 5]);
    let want: Vec<f64> = rows(&xs).iter().map(|x| bonded(x, 0.7)).collect();
    close(&values(&bonded_vmap(&xs, 0.7)), &want, 1e-14, "values");
    let want: Vec<Vec<f64>> = rows(&xs).iter().map(|x| bonded_grad(x, 0.7)).collect();
    assert_close(
        &bonded_grad_vmap(&xs, 0.7),
        &of_rows(&want),
        1e-14,
        "gradients",
    );
    // (the gradient through the call against central differences, for one example)
    let (x, h) = (rows(&xs)[2].clone(), 1e-6);
    for k in 0..5 {
        let (mut hi, mut lo) = (x.clone(), x.clone());
        hi[k] += h;
        lo[k] -= h;
        let fd = (bonded(&hi, 0.7) - bonded(&lo, 0.7)) / (2.0 * h);
        close(&[want[2][k]], &[fd], 1e-6, "finite differences");
    }
}

// ---- edges: empty batches, empty sequences, loops of zero trips, batches of one ----

#[test]
fn empty_batches_empty_sequences_and_loops_of_zero_trips_match_a_loop() {
    let s = Tensor::from_vec(vec![1.0f64], &[1]);
    // an empty batch: results keep their axes; a gradient is as long as its sequence, a
    // sequence scalar code returns of unknown length (no example ran to say it): 0
    let none = Tensor::zeros(&[0, 4], DType::F64);
    assert_eq!(diffuse_vmap(&none, 0.1).shape(), &[0, 0]);
    assert_eq!(relax_grad_vmap(&none, 1e-6).shape(), &[0, 4]);
    assert_eq!(relax_t_grad_vmap(&none, 1e-6, &s).shape(), &[0, 4]);
    let p = vec![0.5, -1.0];
    let empty = Tensor::zeros(&[0], DType::F64);
    assert_eq!(poly_loss_grad_vmap(&p, &empty, &empty).shape(), &[0, 2]);
    assert_eq!(
        poly_loss_t_grad_vmap(&p, &empty, &empty, &s).shape(),
        &[0, 2]
    );
    // empty sequences: no coefficient, no element
    let (xs, ys) = (normal(24, &[3]), normal(25, &[3]));
    assert_eq!(poly_loss_grad_vmap(&[], &xs, &ys).shape(), &[3, 0]);
    assert_eq!(poly_loss_t_grad_vmap(&[], &xs, &ys, &s).shape(), &[3, 0]);
    let want: Vec<f64> = values(&ys).iter().map(|y| y * y).collect();
    close(
        &values(&poly_loss_vmap(&[], &xs, &ys)),
        &want,
        0.0,
        "no coefficient",
    );
    assert_eq!(
        running_squares_vmap(&Tensor::zeros(&[3, 0], DType::F64)).shape(),
        &[3, 0]
    );
    // loops of zero trips: two elements (no inner element to relax), and a tolerance
    // every example meets at once (no sweep); batches of one and more
    for b in [1usize, 3] {
        for (n, tol) in [(2usize, 1e-6), (5, 1e9)] {
            let rs = rows(&normal(26 + n as u64, &[b, n]));
            let xs = of_rows(&rs);
            let want: Vec<Vec<f64>> = rs.iter().map(|x| relax_grad(x, tol)).collect();
            let what = format!("relax, batch {b}, {n} elements, tol {tol}");
            assert_close(&relax_grad_vmap(&xs, tol), &of_rows(&want), 1e-13, &what);
            assert_close(
                &relax_t_grad_vmap(&xs, tol, &s),
                &of_rows(&want),
                1e-13,
                &what,
            );
        }
    }
}
