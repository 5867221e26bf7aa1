//! Variance, standard deviation and norms (`var`, `std`, `norm` and their `_axis` forms)
//! under the transforms: a layer normalisation per example against a loop, central
//! differences and forward mode, and the runtime's values against the formulas.

mod common;
use common::tensors::{assert_close, example, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// Each row centred and scaled by its standard deviation, then scaled by `g`; the loss
/// reads every statistic once.
#[vmap(in_axes = (0, None))]
#[grad]
fn normalised(x: &Tensor, g: &Tensor) -> Tensor {
    let mu = x.mean_axis(-1, true);
    let sd = (x.var_axis(-1, true) + 1e-5).sqrt();
    let y = (x - mu) / sd * g;
    y.tanh().norm()
        + x.std_axis(0, false).sum()
        + x.var() * 0.5
        + x.norm_axis(-1, false).mean()
        + x.std()
}

#[test]
fn statistics_match_differences_forward_mode_and_a_loop() {
    let xs = normal(1, &[3, 4, 6]);
    let g = normal(2, &[6]);
    let (gx, gg) = normalised_grad_vmap(&xs, &g);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let (ex, eg) = normalised_grad(x, &g);
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx");
        assert_close(&example(&gg, e), &eg, 1e-12, "per-example dg");
        let fd = fd_jacobian(&|v: &Tensor| normalised(v, &g), x).reshape(x.shape());
        assert_close(&ex, &fd, 1e-6, "dx against differences");
        let fd = fd_jacobian(&|v: &Tensor| normalised(x, v), &g).reshape(g.shape());
        assert_close(&eg, &fd, 1e-6, "dg against differences");
        let (tx, tg) = (
            normal(10 + e as u64, x.shape()),
            normal(20 + e as u64, g.shape()),
        );
        let (v, dt) = normalised_jvp(x, &g, &tx, &tg);
        assert_eq!(v.item::<f64>(), normalised(x, &g).item::<f64>());
        let want = (&ex * &tx).sum().item::<f64>() + (&eg * &tg).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
}

#[test]
fn the_runtime_computes_numpys_statistics() {
    let x = normal(3, &[4, 5]);
    let v = x.to_vec::<f64>();
    let mean = v.iter().sum::<f64>() / 20.0;
    let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 20.0;
    assert!((x.var().item::<f64>() - var).abs() < 1e-12);
    assert!((x.std().item::<f64>() - var.sqrt()).abs() < 1e-12);
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    assert!((x.norm().item::<f64>() - norm).abs() < 1e-12);
    // along each axis, kept or not
    for (axis, keep) in [(0isize, false), (1, true), (-1, false)] {
        let (lanes, n) = if axis == 0 { (5, 4) } else { (4, 5) };
        let get = |l: usize, i: usize| {
            if axis == 0 {
                v[i * 5 + l]
            } else {
                v[l * 5 + i]
            }
        };
        let vars = x.var_axis(axis, keep);
        let stds = x.std_axis(axis, keep).to_vec::<f64>();
        let norms = x.norm_axis(axis, keep).to_vec::<f64>();
        assert_eq!(vars.ndim(), if keep { 2 } else { 1 });
        let vars = vars.to_vec::<f64>();
        for l in 0..lanes {
            let m = (0..n).map(|i| get(l, i)).sum::<f64>() / n as f64;
            let want = (0..n).map(|i| (get(l, i) - m).powi(2)).sum::<f64>() / n as f64;
            assert!((vars[l] - want).abs() < 1e-12, "var along {axis}");
            assert!((stds[l] - want.sqrt()).abs() < 1e-12, "std along {axis}");
            let nw = (0..n).map(|i| get(l, i).powi(2)).sum::<f64>().sqrt();
            assert!((norms[l] - nw).abs() < 1e-12, "norm along {axis}");
        }
    }
    // f32 stays f32; a constant has zero variance
    let c = Tensor::full(&[3], 2.5, DType::F32);
    assert_eq!(c.var().dtype(), DType::F32);
    assert_eq!(c.var().item::<f32>(), 0.0);
}

/// The log-sum-exp of all elements, per example.
#[vmap]
#[grad]
fn log_partition(x: &Tensor) -> Tensor {
    (x * 3.0).logsumexp()
}

#[test]
fn the_gradient_of_logsumexp_is_the_softmax_of_all_elements() {
    let xs = normal(9, &[3, 2, 5]);
    let g = log_partition_grad_vmap(&xs);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let scaled = (x * 3.0).reshape(&[10]);
        let want = (scaled.softmax(0) * 3.0).reshape(&[2, 5]);
        assert_close(&example(&g, e), &want, 1e-12, "softmax");
        let (v, _) = log_partition_value_and_grad(x);
        assert_eq!(
            v.item::<f64>().to_bits(),
            log_partition(x).item::<f64>().to_bits()
        );
        let m = scaled.max().item::<f64>();
        let direct = m + scaled
            .to_vec::<f64>()
            .iter()
            .map(|s| (s - m).exp())
            .sum::<f64>()
            .ln();
        assert!((v.item::<f64>() - direct).abs() < 1e-13);
    }
    assert_eq!(
        Tensor::zeros(&[0, 3], DType::F32).logsumexp().item::<f32>(),
        f32::NEG_INFINITY
    );
}
