//! Sorting under the transforms: `x.sort(axis)`, `x.top_k(k)` (a gather at indices that
//! carry no derivative, as in JAX) and `x.take_along_axis(axis, &indices)` (per-example
//! labels picking log-probabilities), against central differences, forward mode, a loop
//! of the unbatched function, and closed forms.

mod common;
use common::tensors::{assert_close, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// Rank-weighted sorted values (an L-estimator), the largest three squashed, and each
/// column's smallest value squared, per example.
#[vmap(in_axes = (0, None))]
#[grad]
fn ranked(x: &Tensor, w: &Tensor) -> Tensor {
    let s = x.sort(-1);
    let top = x.top_k(3);
    (s * w).sum() + top.tanh().sum() + x.sort(0).slice(0, 0, 1).powi(2).sum()
}

#[test]
fn sorted_values_match_differences_forward_mode_and_a_loop() {
    let xs = normal(1, &[3, 4, 5]);
    let w = normal(2, &[5]);
    let (gx, gw) = ranked_grad_vmap(&xs, &w);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |a: &Tensor| a.slice(0, e, e + 1).squeeze(0);
        let (ex, ew) = ranked_grad(x, &w);
        assert_close(&at(&gx), &ex, 1e-12, "per-example dx");
        assert_close(&at(&gw), &ew, 1e-12, "per-example dw");
        let fd = fd_jacobian(&|v: &Tensor| ranked(v, &w), x).reshape(x.shape());
        assert_close(&ex, &fd, 1e-6, "dx against differences");
        let fd = fd_jacobian(&|v: &Tensor| ranked(x, v), &w).reshape(w.shape());
        assert_close(&ew, &fd, 1e-6, "dw against differences");
        let (tx, tw) = (
            normal(10 + e as u64, x.shape()),
            normal(20 + e as u64, w.shape()),
        );
        let (v, dt) = ranked_jvp(x, &w, &tx, &tw);
        assert_eq!(v.item::<f64>(), ranked(x, &w).item::<f64>());
        let want = (&ex * &tx).sum().item::<f64>() + (&ew * &tw).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
        // the closed form of dw: the sorted rows, summed
        assert_close(
            &ew,
            &x.sort(-1).sum_axis(0, false),
            1e-12,
            "dw is the sorted rows",
        );
    }
}

/// A quadratic through a sort: its Hessian is the permutation's `Pᵀ diag(2 w²) P`.
#[hessian(wrt(x))]
fn sorted_quadratic(x: &Tensor, w: &Tensor) -> Tensor {
    (x.sort(0) * w).powi(2).sum()
}

#[test]
fn a_sort_is_a_permutation_to_second_order() {
    let (x, w) = (normal(3, &[6]), normal(4, &[6]));
    let h = sorted_quadratic_hessian(&x, &w);
    let perm = x.argsort(0).to_vec::<i32>();
    let wv = w.to_vec::<f64>();
    let mut want = vec![0.0; 36];
    for (rank, &i) in perm.iter().enumerate() {
        want[i as usize * 6 + i as usize] = 2.0 * wv[rank] * wv[rank];
    }
    assert_close(&h, &Tensor::from_vec(want, &[6, 6]), 1e-12, "hessian");
    let direct: f64 = perm
        .iter()
        .zip(&wv)
        .map(|(&i, w)| (x.to_vec::<f64>()[i as usize] * w).powi(2))
        .sum();
    assert!((sorted_quadratic(&x, &w).item::<f64>() - direct).abs() < 1e-12);
}

/// The mean negative log-likelihood of labels: each row's log-probability at its label.
#[grad(wrt(logits))]
fn nll(logits: &Tensor, labels: &Tensor) -> Tensor {
    -logits.log_softmax(-1).take_along_axis(-1, labels).mean()
}

/// One example's loss for a label shared by every example.
#[vmap(in_axes = (0, None))]
#[grad(wrt(logits))]
fn shared_label_nll(logits: &Tensor, label: &Tensor) -> Tensor {
    -logits.log_softmax(-1).take_along_axis(0, label).sum()
}

/// One example's: the label a `[1]` tensor, batched with the logits.
#[vmap(in_axes = (0, 0))]
#[grad(wrt(logits))]
fn example_nll(logits: &Tensor, label: &Tensor) -> Tensor {
    -logits.log_softmax(-1).take_along_axis(0, label).sum()
}

#[test]
fn labels_pick_log_probabilities_with_the_softmax_gradient() {
    let (b, c) = (4, 5);
    let logits = normal(5, &[b, c]);
    let picks = vec![3i32, 0, 4, 3];
    let labels = Tensor::from_vec(picks.clone(), &[b, 1]);
    let g = nll_grad(&logits, &labels);
    // (softmax - onehot) / b
    let onehot = Tensor::from_vec(picks.clone(), &[b]).one_hot(c, DType::F64);
    let want = (logits.softmax(-1) - onehot) * (1.0 / b as f64);
    assert_close(&g, &want, 1e-12, "the softmax gradient");
    let fd = fd_jacobian(&|v: &Tensor| nll(v, &labels), &logits).reshape(logits.shape());
    assert_close(&g, &fd, 1e-6, "differences");
    // per example, the labels batched too
    let per = example_nll_grad_vmap(&logits, &Tensor::from_vec(picks.clone(), &[b, 1]));
    for (e, row) in unstack(&logits, 0).iter().enumerate() {
        let label = Tensor::from_vec(vec![picks[e]], &[1]);
        let one = example_nll_grad(row, &label);
        let loss = example_nll(row, &label).item::<f64>();
        let want_loss = -row.log_softmax(-1).to_vec::<f64>()[picks[e] as usize];
        assert!((loss - want_loss).abs() < 1e-12);
        assert_close(
            &per.slice(0, e, e + 1).squeeze(0),
            &one,
            1e-12,
            "per example",
        );
        assert_close(
            &one,
            &(&want.slice(0, e, e + 1).squeeze(0) * b as f64),
            1e-12,
            "row",
        );
        // the same label for every example: indices unbatched beside batched logits
        let shared = shared_label_nll_grad_vmap(&logits, &label);
        assert_close(
            &shared.slice(0, e, e + 1).squeeze(0),
            &shared_label_nll_grad(row, &label),
            1e-12,
            "shared label",
        );
        assert_eq!(
            shared_label_nll(row, &label).item::<f64>(),
            example_nll(row, &label).item::<f64>()
        );
    }
}
