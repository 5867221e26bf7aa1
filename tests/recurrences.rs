//! Linear recurrences (`linear_recurrence`, `_rev`), running and whole products
//! (`cumprod`, `prod`, `prod_axis`), `shift`, `flip`, `trace`, `outer` and `argmin_axis`
//! under the transforms: gradients against central differences and forward mode, per
//! example against a loop, products with zeros against their closed forms (no division),
//! the Hessian of a product, and transformed values equal to the plain ones bit for bit.

mod common;
use common::tensors::{assert_close, example, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// A two-pass filter: a causal recurrence with a learned per-step decay (shared by every
/// feature), then an anti-causal one with a constant decay, a shift and a flip.
#[vmap(in_axes = (0, None))]
#[grad]
fn filtered(x: &Tensor, logit: &Tensor) -> Tensor {
    let decay = logit.sigmoid();
    let h = x.linear_recurrence(&decay, 0);
    let g = (h.tanh() + x.shift(1, 0)).linear_recurrence_rev(&(decay.zeros_like() + 0.7), -2);
    (g.flip(0) * &h).sum() + h.shift(-2, 1).square().mean()
}

#[test]
fn recurrences_match_differences_forward_mode_and_a_loop() {
    let xs = normal(1, &[3, 6, 4]);
    let logit = normal(2, &[6, 1]);
    let (gx, gl) = filtered_grad_vmap(&xs, &logit);
    let mut total = logit.zeros_like();
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let (ex, el) = filtered_grad(x, &logit);
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx");
        total = &total + &el;
        let fd = fd_jacobian(&|v: &Tensor| filtered(v, &logit), x).reshape(x.shape());
        assert_close(&ex, &fd, 1e-6, "dx against differences");
        let fd = fd_jacobian(&|v: &Tensor| filtered(x, v), &logit).reshape(logit.shape());
        assert_close(&el, &fd, 1e-6, "ddecay against differences");
        let (tx, tl) = (
            normal(10 + e as u64, x.shape()),
            normal(20 + e as u64, logit.shape()),
        );
        let (v, dt) = filtered_jvp(x, &logit, &tx, &tl);
        assert_eq!(v.item::<f64>(), filtered(x, &logit).item::<f64>());
        let want = (&ex * &tx).sum().item::<f64>() + (&el * &tl).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
    // the decay is shared: its per-example gradients sum to the batch's
    let (_, gsum) = filtered_batch_grad(&xs, &logit);
    assert_close(
        &gl.sum_axis(0, false),
        &total,
        1e-12,
        "summed per-example ddecay",
    );
    assert_close(&gsum, &total, 1e-12, "batch ddecay");
    let values: f64 = unstack(&xs, 0)
        .iter()
        .map(|x| filtered(x, &logit).item::<f64>())
        .sum();
    assert!((filtered_batch(&xs, &logit).item::<f64>() - values).abs() < 1e-12);
}

#[grad]
fn filtered_batch(xs: &Tensor, logit: &Tensor) -> Tensor {
    let decay = logit.sigmoid();
    let mut total = xs.sum() * 0.0;
    for e in 0..xs.shape()[0] {
        let x = xs.slice(0, e, e + 1).squeeze(0);
        let h = x.linear_recurrence(&decay, 0);
        let g = (h.tanh() + x.shift(1, 0)).linear_recurrence_rev(&(decay.zeros_like() + 0.7), -2);
        total = total + (g.flip(0) * &h).sum() + h.shift(-2, 1).square().mean();
    }
    total
}

#[grad]
fn product(x: &Tensor) -> Tensor {
    x.prod()
}

#[grad]
fn products(x: &Tensor, w: &Tensor) -> Tensor {
    (x.cumprod(1) * w).sum()
        + (x.cumprod_rev(0) * w).sum() * 0.5
        + x.prod_axis(0, false).sum()
        + x.prod_axis(-1, true).mean()
}

#[test]
fn products_with_zeros_have_the_products_of_the_others_as_gradient() {
    // no zero, one zero, two zeros, a negative zero
    for v in [
        vec![2.0, -0.5, 3.0, 1.5],
        vec![2.0, 0.0, 3.0, 1.5],
        vec![0.0, -0.5, 3.0, 0.0],
        vec![2.0, -0.0, 3.0, 1.5],
    ] {
        let x = Tensor::from_vec(v.clone(), &[2, 2]);
        let g = product_grad(&x).to_vec::<f64>();
        for (i, gi) in g.iter().enumerate() {
            let others: f64 = (0..4).filter(|&j| j != i).map(|j| v[j]).product();
            assert_eq!(*gi, others, "d prod / dx[{i}] at {v:?}");
        }
        let (pv, jv) = product_jvp(&x, &x.ones_like());
        assert_eq!(
            pv.item::<f64>().to_bits(),
            product(&x).item::<f64>().to_bits()
        );
        let want: f64 = (0..4)
            .map(|i| (0..4).filter(|&j| j != i).map(|j| v[j]).product::<f64>())
            .sum();
        assert_eq!(jv.item::<f64>(), want);
    }
    // running products along both axes and both directions, against differences
    let x = normal(3, &[3, 4]);
    let w = normal(4, &[3, 4]);
    let (gx, gw) = products_grad(&x, &w);
    let fd = fd_jacobian(&|v: &Tensor| products(v, &w), &x).reshape(x.shape());
    assert_close(&gx, &fd, 1e-6, "products dx");
    let fd = fd_jacobian(&|v: &Tensor| products(&x, v), &w).reshape(w.shape());
    assert_close(&gw, &fd, 1e-6, "products dw");
    // with a zero: the gradient of cumprod's later entries through it is exact
    let z = Tensor::from_vec(
        vec![
            1.5, 0.0, 2.0, -1.0, 0.5, 3.0, 0.0, 2.0, 1.0, 1.0, -2.0, 0.25,
        ],
        &[3, 4],
    );
    let (gz, _) = products_grad(&z, &w);
    let fd = fd_jacobian(&|v: &Tensor| products(v, &w), &z).reshape(z.shape());
    assert_close(&gz, &fd, 1e-6, "products dx through zeros");
}

#[hessian]
fn product_h(x: &Tensor) -> Tensor {
    x.prod()
}

#[test]
fn the_hessian_of_a_product_is_the_products_of_all_but_two() {
    let v = vec![2.0, -0.5, 3.0, 0.0, 1.5];
    let h = product_h_hessian(&Tensor::from_vec(v.clone(), &[5])).to_vec::<f64>();
    for i in 0..5 {
        for j in 0..5 {
            let want = if i == j {
                0.0
            } else {
                (0..5).filter(|&k| k != i && k != j).map(|k| v[k]).product()
            };
            assert_eq!(h[i * 5 + j], want, "H[{i}][{j}]");
        }
    }
    let _ = product_h;
}

/// A quadratic form through traces, outer products and a flip, and the entry at each
/// row's smallest element (an inactive index).
#[vmap(in_axes = (0, None))]
#[grad]
fn forms(v: &Tensor, m: &Tensor) -> Tensor {
    let o = v.outer(&v.flip(0));
    let picked = (m * m.argmin_axis(1, false).one_hot(m.shape()[1], DType::F64)).sum();
    (o.matmul(m)).trace() + o.trace() * picked + m.outer(v).sum()
}

#[test]
fn traces_outer_products_and_flips_match_differences_and_a_loop() {
    let vs = normal(5, &[3, 4]);
    let m = normal(6, &[4, 4]);
    let (gv, gm) = forms_grad_vmap(&vs, &m);
    for (e, v) in unstack(&vs, 0).iter().enumerate() {
        let (ev, em) = forms_grad(v, &m);
        assert_close(&example(&gv, e), &ev, 1e-12, "per-example dv");
        assert_close(&example(&gm, e), &em, 1e-12, "per-example dm");
        let fd = fd_jacobian(&|x: &Tensor| forms(x, &m), v).reshape(v.shape());
        assert_close(&ev, &fd, 1e-6, "dv against differences");
        let fd = fd_jacobian(&|x: &Tensor| forms(v, x), &m).reshape(m.shape());
        assert_close(&em, &fd, 1e-6, "dm against differences");
    }
}

#[grad]
fn all_of_them(x: &Tensor) -> Tensor {
    let d = x.linear_recurrence(&(x * 0.1), 1) + x.cumprod(0) + x.cumprod_rev(1).flip(0);
    d.sum()
        + x.prod()
        + x.prod_axis(1, false).sum()
        + x.trace()
        + x.outer(x).mean()
        + x.shift(2, -1).sum()
}

#[test]
fn transformed_values_equal_the_plain_ones_bit_for_bit() {
    for dtype in [DType::F64, DType::F32] {
        for shape in [[3usize, 3], [90, 90]] {
            let x = (normal(8, &shape) * 0.1 + 1.0).to_dtype(dtype);
            let want = all_of_them(&x).to_dtype(DType::F64).item::<f64>();
            let (v, _) = all_of_them_value_and_grad(&x);
            assert_eq!(
                v.to_dtype(DType::F64).item::<f64>().to_bits(),
                want.to_bits(),
                "{dtype:?} {shape:?}"
            );
            let (jv, _) = all_of_them_jvp(&x, &x.ones_like());
            assert_eq!(
                jv.to_dtype(DType::F64).item::<f64>().to_bits(),
                want.to_bits()
            );
        }
    }
}

/// The smallest element of each example, through an inactive per-example index.
#[vmap]
#[grad]
fn smallest(x: &Tensor) -> Tensor {
    (x * x.argmin_axis(0, false).one_hot(x.shape()[0], DType::F64)).sum()
}

#[test]
fn argmin_per_example_picks_each_examples_first_minimum() {
    let xs = Tensor::from_vec(vec![3.0, -1.0, 2.0, -1.0, 0.5, 0.25, 4.0, 0.25], &[2, 4]);
    assert_eq!(smallest_vmap(&xs).to_vec::<f64>(), vec![-1.0, 0.25]);
    let g = smallest_grad_vmap(&xs).to_vec::<f64>();
    assert_eq!(g, vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    assert_eq!(smallest(&xs.slice(0, 1, 2).squeeze(0)).item::<f64>(), 0.25);
}

/// A Cox partial likelihood over subjects sorted by time (risk sets are the subjects from
/// each one on: a running log-sum-exp from the end), and a running drawdown.
#[vmap(in_axes = (None, 0))]
#[grad]
fn survival(w: &Tensor, x: &Tensor) -> Tensor {
    let risk = x.matmul(w);
    let partial = (&risk - risk.logcumsumexp_rev(0)).sum();
    let path = risk.cumsum(0);
    let drawdown = (path.cummax(0) - &path).square().mean() + (path.cummin(0) * 0.1).sum();
    drawdown - partial + risk.logcumsumexp(0).sum() * 0.01
}

#[test]
fn running_extrema_and_log_sum_exps_match_differences_forward_mode_and_a_loop() {
    let w = normal(51, &[3]);
    let xs = normal(52, &[4, 9, 3]);
    let (gw, gx) = survival_grad_vmap(&w, &xs);
    let mut total = w.zeros_like();
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let (ew, ex) = survival_grad(&w, x);
        total = &total + &ew;
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx");
        let fd = fd_jacobian(&|v: &Tensor| survival(v, x), &w).reshape(w.shape());
        assert_close(&ew, &fd, 1e-6, "dw against differences");
        let fd = fd_jacobian(&|v: &Tensor| survival(&w, v), x).reshape(x.shape());
        assert_close(&ex, &fd, 1e-6, "dx against differences");
        let (tw, tx) = (
            normal(60 + e as u64, w.shape()),
            normal(70 + e as u64, x.shape()),
        );
        let (v, dt) = survival_jvp(&w, x, &tw, &tx);
        assert_eq!(
            v.item::<f64>().to_bits(),
            survival(&w, x).item::<f64>().to_bits()
        );
        let want = (&ew * &tw).sum().item::<f64>() + (&ex * &tx).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
    assert_close(
        &gw.sum_axis(0, false),
        &total,
        1e-12,
        "summed per-example dw",
    );
}

/// One signal smoothed at a rate per example: the decay batched, the input shared.
#[vmap(in_axes = (None, 0))]
#[grad]
fn smoothed(x: &Tensor, rate: &Tensor) -> Tensor {
    let decay = rate.sigmoid();
    let weight = 1.0 - &decay;
    let ema = (x * &weight).linear_recurrence(&decay, 0);
    (ema.tanh() * x).sum() + ema.linear_recurrence_rev(&decay, -2).mean()
}

#[test]
fn a_decay_per_example_over_a_shared_input_matches_a_loop() {
    let x = normal(81, &[12, 2]);
    let rates = normal(82, &[3, 1, 2]);
    let (gx, gr) = smoothed_grad_vmap(&x, &rates);
    for (e, r) in unstack(&rates, 0).iter().enumerate() {
        let (ex, er) = smoothed_grad(&x, r);
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx");
        assert_close(&example(&gr, e), &er, 1e-12, "per-example drate");
        let fd = fd_jacobian(&|v: &Tensor| smoothed(&x, v), r).reshape(r.shape());
        assert_close(&er, &fd, 1e-6, "drate against differences");
        let fd = fd_jacobian(&|v: &Tensor| smoothed(v, r), &x).reshape(x.shape());
        assert_close(&ex, &fd, 1e-6, "dx against differences");
    }
    let v = smoothed_vmap(&x, &rates).to_vec::<f64>();
    for (e, r) in unstack(&rates, 0).iter().enumerate() {
        assert!((v[e] - smoothed(&x, r).item::<f64>()).abs() < 1e-12);
    }
}

/// Nearest-neighbour upsampling (`repeat`) and periodic tiling (`tile`) of a signal.
#[vmap(in_axes = (0, None))]
#[grad]
fn upsampled(x: &Tensor, w: &Tensor) -> Tensor {
    let up = x.repeat(3, 0).tile(2, -1);
    (up.tanh() * w).sum() + x.tile(2, 0).repeat(2, 1).square().mean()
}

#[test]
fn repeat_and_tile_match_index_maps_differences_forward_mode_and_a_loop() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]);
    assert_eq!(
        x.repeat(3, 0).tile(2, -1).to_vec::<f64>(),
        vec![
            1., 2., 1., 2., 1., 2., 1., 2., 1., 2., 1., 2., 3., 4., 3., 4., 3., 4., 3., 4., 3., 4.,
            3., 4.
        ]
    );
    let xs = normal(91, &[3, 4, 2]);
    let w = normal(92, &[12, 4]);
    let (gx, gw) = upsampled_grad_vmap(&xs, &w);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let (ex, ew) = upsampled_grad(x, &w);
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx");
        assert_close(&example(&gw, e), &ew, 1e-12, "per-example dw");
        let fd = fd_jacobian(&|v: &Tensor| upsampled(v, &w), x).reshape(x.shape());
        assert_close(&ex, &fd, 1e-6, "dx against differences");
        let t = normal(93 + e as u64, x.shape());
        let (v, dt) = upsampled_jvp(x, &w, &t, &w.zeros_like());
        assert_eq!(
            v.item::<f64>().to_bits(),
            upsampled(x, &w).item::<f64>().to_bits()
        );
        let want = (&ex * &t).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
}

#[vmap]
#[grad]
fn no_copies(x: &Tensor) -> Tensor {
    x.repeat(0, 0).sum() + x.tile(0, 1).sum() + x.sum()
}

#[test]
fn zero_copies_have_a_zero_cotangent_of_the_operands_shape() {
    let x = normal(95, &[3, 2]);
    assert_eq!(no_copies(&x).item::<f64>(), x.sum().item::<f64>());
    assert_eq!(no_copies_grad(&x).to_vec::<f64>(), vec![1.0; 6]);
    // per example: the transposes read each example's length
    let xs = normal(96, &[4, 3, 2]);
    assert_eq!(no_copies_grad_vmap(&xs).to_vec::<f64>(), vec![1.0; 24]);
}

/// Running log-sum-exps of scores masked by -inf (padding before a sequence starts):
/// -inf until the first unmasked score, as JAX's `cumlogsumexp`.
#[vmap]
#[grad]
fn masked_running(s: &Tensor) -> Tensor {
    let m = s.logcumsumexp(0);
    m.slice(0, 2, 5).sum() + m.slice(0, 0, 2).exp().sum()
}

#[test]
fn masked_prefixes_are_minus_infinity_with_zero_gradient() {
    let inf = f64::INFINITY;
    let s = Tensor::from_vec(vec![-inf, -inf, 0.5, -1.0, 2.0], &[5]);
    let m = s.logcumsumexp(0).to_vec::<f64>();
    assert_eq!(&m[..2], &[-inf, -inf]);
    assert_eq!(m[2], 0.5);
    let (v, g) = masked_running_value_and_grad(&s);
    assert_eq!(
        v.item::<f64>().to_bits(),
        masked_running(&s).item::<f64>().to_bits()
    );
    assert!(v.item::<f64>().is_finite());
    let g = g.to_vec::<f64>();
    assert_eq!(&g[..2], &[0.0, 0.0], "{g:?}");
    // the unmasked part against differences
    let tail = s.slice(0, 2, 5);
    let f = |t: &Tensor| masked_running(&Tensor::concat(&[&s.slice(0, 0, 2), t], 0));
    let fd = fd_jacobian(&f, &tail).reshape(&[3]);
    assert_close(
        &Tensor::from_vec(g[2..].to_vec(), &[3]),
        &fd,
        1e-6,
        "unmasked",
    );
    // per example: a lane masked throughout gives -inf values
    let xs = Tensor::stack(&[&s, &Tensor::full(&[5], -inf, DType::F64)], 0);
    let gs = masked_running_grad_vmap(&xs);
    assert_close(
        &example(&gs, 0),
        &Tensor::from_vec(g, &[5]),
        0.0,
        "example 0",
    );
    assert_eq!(masked_running_vmap(&xs).to_vec::<f64>()[1], -inf);
}
