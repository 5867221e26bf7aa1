//! Loops over tensor code in reverse mode: the forward sweep keeps each step's values on
//! tapes, in the branches of `if`s too, for `for` loops, `while` loops, `loop` and loops
//! left by `break` (the reverse walks back the trips each example made), and a weight
//! shared by the steps gets its gradient summed after the loop in one product. Each
//! derivative is checked against central finite differences in f64, against forward mode,
//! and batched ones against a loop of the unbatched function.

mod common;
use common::tensors::{assert_close, fd_element, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// A weight shared by a loop's steps whose operands have a leading axis of their own (its
/// gradient is summed over the steps and that axis: the reverse sweep keeps each step's
/// operands and adds them after the loop in one product), a loop that stops early
/// (`break`), and a `while` loop reading the same weight.
#[vmap(in_axes = (0, None, None))]
#[grad]
fn shared_weight_steps(xs: &Tensor, w: &Tensor, u: &Tensor) -> Tensor {
    let mut h = xs.slice(0, 0, 1).squeeze(0).matmul(w).tanh();
    for t in 1..xs.shape()[0] {
        if t == 4 {
            break;
        }
        h = (xs.slice(0, t, t + 1).squeeze(0).matmul(w) + h.matmul(u)).tanh();
    }
    let mut g = h.clone();
    let mut k = 0;
    while k < 2 {
        g = g.matmul(u).sin() + &g;
        k += 1;
    }
    (&g * &h).sum()
}

#[test]
fn a_weight_shared_by_steps_gets_every_steps_gradient() {
    // 6 steps of [2, 3] inputs (the loop stops after 4), 3 sequences
    let (xs, w, u) = (
        normal(90, &[3, 6, 2, 3]),
        normal(91, &[3, 4]),
        normal(92, &[4, 4]) * 0.5,
    );
    let (gx, gw, gu) = shared_weight_steps_grad_vmap(&xs, &w, &u);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (ex, ew, eu) = shared_weight_steps_grad(x, &w, &u);
        assert_close(&at(&gx), &ex, 1e-12, "per-example d/dxs");
        assert_close(&at(&gw), &ew, 1e-12, "per-example d/dw");
        assert_close(&at(&gu), &eu, 1e-12, "per-example d/du");
        let fd = |which: usize| {
            let f = |v: &Tensor| match which {
                0 => shared_weight_steps(v, &w, &u),
                1 => shared_weight_steps(x, v, &u),
                _ => shared_weight_steps(x, &w, v),
            };
            let at = [x, &w, &u][which];
            fd_jacobian(&f, at).reshape(at.shape())
        };
        assert_close(&ex, &fd(0), 1e-6, "d/dxs");
        assert_close(&ew, &fd(1), 1e-6, "d/dw");
        assert_close(&eu, &fd(2), 1e-6, "d/du");
        // the steps after the break get nothing
        assert_eq!(ex.slice(0, 4, 6).abs().sum().item::<f64>(), 0.0);
    }
}

/// A solver-like loop: a per-example trip count (`while` over an example's own
/// condition), a branch on the state with a nested branch inside (their values kept on
/// tapes too), and a `break` out of the middle of a step that depends on the example.
#[vmap(in_axes = (0, None))]
#[grad]
fn damped(x: &Tensor, w: &Tensor) -> Tensor {
    let mut h = x.clone();
    let mut k = 0;
    while k < 6 && h.abs().sum().item::<f64>() < 40.0 {
        let z = w.matmul(&h);
        if z.sum().item::<f64>() > 0.0 {
            h = z.tanh() + &h * 0.5;
            if h.max().item::<f64>() > 0.9 {
                h *= 0.8;
            }
        } else {
            h = (z * 0.7).sin() * 1.5;
        }
        if h.abs().sum().item::<f64>() > 2.5 * (k as f64 + 1.0) {
            break;
        }
        k += 1;
    }
    (h.powi(2) * x).sum()
}

#[test]
fn branches_and_exits_inside_loops_differentiate_and_batch() {
    let w = normal(101, &[4, 4]) * 0.9;
    // (the last example starts past the loop's bound, 40 in sum: it makes no trip while the
    // others do, and the loop of zero trips still has a derivative, the identity's)
    let xs = Tensor::concat(
        &[normal(102, &[6, 4]) * 1.5, normal(109, &[1, 4]) + 15.0],
        0,
    );
    assert!(xs.slice(0, 6, 7).abs().sum().item::<f64>() >= 40.0);
    let (gx, gw) = damped_grad_vmap(&xs, &w);
    let values = damped_vmap(&xs, &w);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        assert_close(&at(&values), &damped(x, &w), 1e-12, "per-example value");
        let (ex, ew) = damped_grad(x, &w);
        assert_close(&at(&gx), &ex, 1e-12, "per-example d/dx");
        assert_close(&at(&gw), &ew, 1e-12, "per-example d/dw");
        let fx = fd_jacobian(&|v: &Tensor| damped(v, &w), x).reshape(&[4]);
        let fw = fd_jacobian(&|v: &Tensor| damped(x, v), &w).reshape(&[4, 4]);
        assert_close(&ex, &fx, 1e-6, "d/dx vs finite differences");
        assert_close(&ew, &fw, 1e-6, "d/dw vs finite differences");
        let (dx, dw) = (
            normal(103 + e as u64, &[4]),
            normal(110 + e as u64, &[4, 4]),
        );
        let (v, t) = damped_jvp(x, &w, &dx, &dw);
        assert_eq!(v.item::<f64>(), damped(x, &w).item::<f64>());
        let want = (&ex * &dx).sum() + (&ew * &dw).sum();
        assert_close(&t, &want, 1e-10, "jvp vs <grad, tangent>");
    }
}

/// Forward over reverse through a taped `while` loop with a branch on its counter.
#[hessian(wrt(x))]
#[grad(wrt(x))]
fn alternating_steps(x: &Tensor, w: &Tensor) -> Tensor {
    let mut h = x.clone();
    let mut k = 0;
    while k < 4 {
        let z = w.matmul(&h);
        if k % 2 == 0 {
            h = z.tanh();
        } else {
            h = z.sin() + &h;
        }
        k += 1;
    }
    h.powi(2).sum()
}

#[test]
fn the_hessian_through_a_taped_while_loop_matches_differences_of_the_gradient() {
    let (x, w) = (normal(120, &[3]), normal(121, &[3, 3]) * 0.8);
    let h = alternating_steps_hessian(&x, &w);
    let fd = fd_jacobian(&|v: &Tensor| alternating_steps_grad(v, &w), &x);
    assert_close(&h, &fd, 1e-6, "hessian vs differences of the gradient");
    let g = alternating_steps_grad(&x, &w);
    let fg = fd_jacobian(&|v: &Tensor| alternating_steps(v, &w), &x).reshape(&[3]);
    assert_close(&g, &fg, 1e-6, "gradient vs finite differences");
}

/// Loops inside a taped loop: an inner `for` over a list of layers that each example may
/// leave early (`break`), and an inner scalar loop, inside a `while`. The inner loops'
/// stacks are made afresh each trip of the outer one and kept on its tapes.
#[vmap(in_axes = (0, None, None))]
#[grad(wrt(x, ws))]
fn nested(x: &Tensor, ws: &[Tensor], rates: &[f64]) -> Tensor {
    let mut h = x.clone();
    let mut k = 0;
    while k < 3 {
        for w in ws {
            h = h.matmul(w).tanh() + &h * 0.5;
            if h.abs().sum().item::<f64>() > 4.0 {
                break;
            }
        }
        let mut scale = 1.0;
        for r in rates {
            scale = scale * r + 0.1;
        }
        h = &h * scale;
        k += 1;
    }
    h.powi(2).sum()
}

#[test]
fn loops_inside_taped_loops_differentiate_and_batch() {
    let ws = vec![normal(140, &[3, 3]) * 0.8, normal(141, &[3, 3]) * 0.8];
    let rates = [0.9, 1.05];
    let xs = normal(142, &[5, 3]) * 1.2;
    let (gx, gws) = nested_grad_vmap(&xs, &ws, &rates);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (ex, ews) = nested_grad(x, &ws, &rates);
        assert_close(&at(&gx), &ex, 1e-12, "per-example d/dx");
        let fx = fd_jacobian(&|v: &Tensor| nested(v, &ws, &rates), x).reshape(&[3]);
        assert_close(&ex, &fx, 1e-6, "d/dx vs finite differences");
        for l in 0..ws.len() {
            assert_close(&at(&gws[l]), &ews[l], 1e-12, "per-example d/dw");
            let fw = fd_element(&|vs: &[Tensor]| nested(x, vs, &rates), &ws, l);
            assert_close(&ews[l], &fw, 1e-6, "d/dw vs finite differences");
        }
    }
}

/// A gated recurrent cell (gates through a closure) that returns early, per example, once
/// its state saturates: the examples that have not returned yet hold a placeholder beside
/// those that have (a lazy zero, taken in the other side's dtype), in f64.
#[vmap(in_axes = (1, None, None))]
#[grad(wrt(wz, wh))]
fn gated(xs: &Tensor, wz: &Tensor, wh: &Tensor) -> Tensor {
    let sig = |v: &Tensor| v.sigmoid();
    let mut h = Tensor::zeros(&[wz.shape()[1]], xs.dtype());
    for t in 0..xs.shape()[0] {
        let xh = Tensor::concat(&[&xs.slice(0, t, t + 1).squeeze(0), &h], 0);
        let z = sig(&xh.matmul(wz));
        h = &z * &h + (1.0 - &z) * xh.matmul(wh).tanh();
        if h.abs().max().item::<f64>() > 0.6 {
            return h.powi(2).sum() * (t as f64 + 1.0);
        }
    }
    h.powi(2).sum()
}

#[test]
fn an_early_return_per_example_differentiates_and_batches() {
    let xs = normal(190, &[5, 4, 2]) * 1.5;
    let (wz, wh) = (normal(191, &[5, 3]) * 0.6, normal(192, &[5, 3]) * 0.6);
    let (gz, gh) = gated_grad_vmap(&xs, &wz, &wh);
    let values = gated_vmap(&xs, &wz, &wh);
    for (e, x) in unstack(&xs, 1).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        assert_close(
            &at(&values),
            &gated(x, &wz, &wh),
            1e-12,
            "per-example value",
        );
        let (ez, eh) = gated_grad(x, &wz, &wh);
        assert_close(&at(&gz), &ez, 1e-12, "per-example d/dwz");
        assert_close(&at(&gh), &eh, 1e-12, "per-example d/dwh");
        let fz = fd_jacobian(&|v: &Tensor| gated(x, v, &wh), &wz).reshape(&[5, 3]);
        assert_close(&ez, &fz, 1e-6, "d/dwz vs finite differences");
    }
}
