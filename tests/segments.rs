//! `segment_sum` (`jax.ops.segment_sum`) under the transforms: a message-passing layer on
//! a graph (messages along edges summed at their destination nodes) differentiated against
//! central differences and forward mode; per-example node features over one shared graph
//! against a loop; ids over several leading axes; segments no id names; errors; values
//! added into a tensor at indices (`index_add`, `scatter_add`: JAX's `x.at[i].add(v)`),
//! bit for bit the runtime's, against differences, forward mode and a loop.

mod common;
use common::tensors::{assert_close, example, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// One round of message passing: each edge carries `tanh(h[src] W)` to its destination,
/// which sums them; the loss reads the new node states.
#[vmap(in_axes = (0, None, None, None))]
#[grad(wrt(h, w))]
fn message_passing(h: &Tensor, w: &Tensor, src: &Tensor, dst: &Tensor) -> Tensor {
    let messages = h.index_select(0, src).matmul(w).tanh();
    let n = h.shape()[0];
    let summed = messages.segment_sum(dst, n);
    (&summed + h).sin().sum() + summed.square().mean()
}

fn graph() -> (Tensor, Tensor) {
    // 5 nodes, 7 edges; node 4 receives nothing, node 2 receives three messages
    let src = Tensor::from_vec(vec![0i32, 1, 3, 4, 2, 0, 1], &[7]);
    let dst = Tensor::from_vec(vec![2i32, 2, 2, 0, 1, 3, 0], &[7]);
    (src, dst)
}

#[test]
fn message_passing_matches_differences_forward_mode_and_a_loop() {
    let (src, dst) = graph();
    let hs = normal(1, &[3, 5, 4]);
    let w = normal(2, &[4, 4]) * 0.5;
    let (gh, gw) = message_passing_grad_vmap(&hs, &w, &src, &dst);
    for (e, h) in unstack(&hs, 0).iter().enumerate() {
        let (eh, ew) = message_passing_grad(h, &w, &src, &dst);
        assert_close(&example(&gh, e), &eh, 1e-12, "per-example dh");
        assert_close(&example(&gw, e), &ew, 1e-12, "per-example dw");
        let fd = fd_jacobian(&|v: &Tensor| message_passing(v, &w, &src, &dst), h);
        assert_close(&eh, &fd.reshape(h.shape()), 1e-6, "dh against differences");
        let fd = fd_jacobian(&|v: &Tensor| message_passing(h, v, &src, &dst), &w);
        assert_close(&ew, &fd.reshape(w.shape()), 1e-6, "dw against differences");
        let (th, tw) = (
            normal(10 + e as u64, h.shape()),
            normal(20 + e as u64, w.shape()),
        );
        let (v, dt) = message_passing_jvp(h, &w, &src, &dst, &th, &tw);
        assert_eq!(
            v.item::<f64>().to_bits(),
            message_passing(h, &w, &src, &dst).item::<f64>().to_bits()
        );
        let want = (&eh * &th).sum().item::<f64>() + (&ew * &tw).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
    let values = message_passing_vmap(&hs, &w, &src, &dst);
    for (e, h) in unstack(&hs, 0).iter().enumerate() {
        assert_close(
            &example(&values, e),
            &message_passing(h, &w, &src, &dst),
            1e-12,
            "value",
        );
    }
}

#[test]
fn segment_sums_add_by_id_over_any_leading_axes() {
    let x = normal(3, &[2, 3, 4]);
    let ids = Tensor::from_vec(vec![1i32, 0, 1, 3, 3, 1], &[2, 3]);
    let s = x.segment_sum(&ids, 5);
    assert_eq!(s.shape(), &[5, 4]);
    let (xv, sv) = (x.to_vec::<f64>(), s.to_vec::<f64>());
    let idv = ids.to_vec::<i32>();
    for seg in 0..5 {
        for f in 0..4 {
            let want: f64 = (0..6)
                .filter(|&p| idv[p] == seg as i32)
                .map(|p| xv[p * 4 + f])
                .sum();
            assert_eq!(sv[seg * 4 + f], want, "segment {seg}, feature {f}");
        }
    }
    // segments 2 and 4 are named by no id: zero
    assert!(sv[8..12].iter().chain(&sv[16..20]).all(|v| *v == 0.0));
    // errors name the operation and the shapes
    let e = x
        .try_segment_sum(&Tensor::from_vec(vec![0i32; 3], &[3]), 2)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("segment_sum: shapes [2, 3, 4] and [3]"),
        "{e}"
    );
    let e = x.try_segment_sum(&ids, 3).unwrap_err();
    assert!(e.to_string().contains("segment_sum"), "{e}");
    let e = Tensor::from_vec(vec![1i32, 2], &[2])
        .try_segment_sum(&Tensor::from_vec(vec![0i32, 0], &[2]), 1)
        .unwrap_err();
    assert!(e.to_string().contains("segment_sum"), "{e}");
}

/// Updates added into a state at indices (JAX's `x.at[idx].add(v)`): rows by
/// `index_add`, elements by `scatter_add`, repeated indices included.
#[vmap(in_axes = (0, 0, None, None, 0))]
#[grad(wrt(x, v, u))]
fn accumulated(x: &Tensor, v: &Tensor, rows: &Tensor, cols: &Tensor, u: &Tensor) -> Tensor {
    let y = x.index_add(0, rows, &v.tanh());
    let z = y.scatter_add(1, cols, &(u * &y.slice(1, 0, 3)));
    (z.sin() * &y).sum()
}

#[test]
fn index_add_and_scatter_add_match_differences_forward_mode_and_a_loop() {
    let rows = Tensor::from_vec(vec![1i32, 0, 1], &[3]);
    let cols = Tensor::from_vec(vec![2i32, 0, 2, 1, 1, 1], &[2, 3]);
    let (xs, vs, us) = (
        normal(31, &[3, 2, 4]),
        normal(32, &[3, 3, 4]),
        normal(33, &[3, 2, 3]),
    );
    let (gx, gv, gu) = accumulated_grad_vmap(&xs, &vs, &rows, &cols, &us);
    let values = accumulated_vmap(&xs, &vs, &rows, &cols, &us);
    for e in 0..3 {
        let (x, v, u) = (example(&xs, e), example(&vs, e), example(&us, e));
        let value = accumulated(&x, &v, &rows, &cols, &u);
        // the transformed function computes the runtime's values, bit for bit
        let y = x.index_add(0, &rows, &v.tanh());
        let z = y.scatter_add(1, &cols, &(&u * &y.slice(1, 0, 3)));
        let direct = (z.sin() * &y).sum();
        assert_eq!(
            value.item::<f64>().to_bits(),
            direct.item::<f64>().to_bits()
        );
        assert_close(&example(&values, e), &value, 1e-12, "value per example");
        let (ex, ev, eu) = accumulated_grad(&x, &v, &rows, &cols, &u);
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx");
        assert_close(&example(&gv, e), &ev, 1e-12, "per-example dv");
        assert_close(&example(&gu, e), &eu, 1e-12, "per-example du");
        for (g, which) in [(&ex, 0), (&ev, 1), (&eu, 2)] {
            let f = |t: &Tensor| match which {
                0 => accumulated(t, &v, &rows, &cols, &u),
                1 => accumulated(&x, t, &rows, &cols, &u),
                _ => accumulated(&x, &v, &rows, &cols, t),
            };
            let at = [&x, &v, &u][which];
            let fd = fd_jacobian(&f, at).reshape(at.shape());
            assert_close(
                g,
                &fd,
                1e-6,
                &format!("argument {which} against differences"),
            );
        }
        let (tx, tv, tu) = (
            normal(40, x.shape()),
            normal(41, v.shape()),
            normal(42, u.shape()),
        );
        let (_, dt) = accumulated_jvp(&x, &v, &rows, &cols, &u, &tx, &tv, &tu);
        let want = (&ex * &tx).sum().item::<f64>()
            + (&ev * &tv).sum().item::<f64>()
            + (&eu * &tu).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
}

/// Only the added values carry a derivative (the target is a constant).
#[grad(wrt(v))]
fn added_only(x: &Tensor, v: &Tensor, rows: &Tensor, at: &Tensor) -> Tensor {
    x.index_add(0, rows, v).sin().sum() + x.scatter_add(0, at, v).cos().sum()
}

#[test]
fn values_added_into_a_constant_differentiate() {
    let rows = Tensor::from_vec(vec![1i32, 0, 1], &[3]);
    let at = Tensor::from_vec(vec![1i32, 0, 0, 0, 1, 1], &[3, 2]);
    let (x, v) = (normal(51, &[2, 2]), normal(52, &[3, 2]));
    let g = added_only_grad(&x, &v, &rows, &at);
    let fd = fd_jacobian(&|t: &Tensor| added_only(&x, t, &rows, &at), &v).reshape(v.shape());
    assert_close(&g, &fd, 1e-6, "dv against differences");
    let t = normal(53, v.shape());
    let (_, dt) = added_only_jvp(&x, &v, &rows, &at, &t);
    let want = (&g * &t).sum().item::<f64>();
    assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
}

/// A batch of graphs, each with its own edges: every argument per example, the indices too.
#[vmap]
#[grad(wrt(h, w))]
fn per_graph(h: &Tensor, w: &Tensor, src: &Tensor, dst: &Tensor) -> Tensor {
    let m = h.index_select(0, src).matmul(w).tanh();
    let s = m.segment_sum(dst, h.shape()[0]);
    let back = h.index_add(0, src, &m);
    (&s + h).sin().sum() + back.square().mean()
}

#[test]
fn per_example_indices_match_a_loop() {
    let srcs = Tensor::from_vec(vec![0i32, 1, 3, 4, 2, 0, 1, 4, 4, 2, 3, 0, 1, 1], &[2, 7]);
    let dsts = Tensor::from_vec(vec![2i32, 2, 2, 0, 1, 3, 0, 0, 1, 1, 4, 4, 3, 0], &[2, 7]);
    let hs = normal(61, &[2, 5, 3]);
    let ws = normal(62, &[2, 3, 3]) * 0.5;
    let (gh, gw) = per_graph_grad_vmap(&hs, &ws, &srcs, &dsts);
    let values = per_graph_vmap(&hs, &ws, &srcs, &dsts);
    for e in 0..2 {
        let (h, w) = (example(&hs, e), example(&ws, e));
        let (src, dst) = (example(&srcs, e), example(&dsts, e));
        assert_close(
            &example(&values, e),
            &per_graph(&h, &w, &src, &dst),
            1e-12,
            "value",
        );
        let (eh, ew) = per_graph_grad(&h, &w, &src, &dst);
        assert_close(&example(&gh, e), &eh, 1e-12, "per-example dh");
        assert_close(&example(&gw, e), &ew, 1e-12, "per-example dw");
        let fd = fd_jacobian(&|t: &Tensor| per_graph(t, &w, &src, &dst), &h);
        assert_close(&eh, &fd.reshape(h.shape()), 1e-6, "dh against differences");
    }
}

/// Max and min aggregation over a graph's incoming edges (segments 4 and 5 receive nothing).
#[vmap(in_axes = (0, None))]
#[grad(wrt(m))]
fn pooled(m: &Tensor, dst: &Tensor) -> Tensor {
    let hi = m.segment_max(dst, 6);
    let lo = m.segment_min(dst, 6);
    let both = hi.slice(0, 0, 4) - lo.slice(0, 0, 4);
    both.tanh().sum() + (hi.slice(0, 0, 4) * m.slice(0, 0, 4)).sum()
}

#[test]
fn segment_extrema_gather_at_their_first_position() {
    let dst = Tensor::from_vec(vec![2i32, 0, 2, 1, 3, 0, 2], &[7]);
    let ms = normal(71, &[3, 7, 2]);
    let g = pooled_grad_vmap(&ms, &dst);
    for e in 0..3 {
        let m = example(&ms, e);
        // the transformed values are the runtime's
        let (hi, lo) = (m.segment_max(&dst, 6), m.segment_min(&dst, 6));
        let direct = (hi.slice(0, 0, 4) - lo.slice(0, 0, 4)).tanh().sum()
            + (hi.slice(0, 0, 4) * m.slice(0, 0, 4)).sum();
        assert_eq!(
            pooled(&m, &dst).item::<f64>().to_bits(),
            direct.item::<f64>().to_bits()
        );
        // empty segments: -inf and +inf
        let h = hi.to_vec::<f64>();
        assert!(h[8..].iter().all(|v| *v == f64::NEG_INFINITY));
        assert!(lo.to_vec::<f64>()[8..].iter().all(|v| *v == f64::INFINITY));
        let ge = pooled_grad(&m, &dst);
        assert_close(&example(&g, e), &ge, 1e-12, "per-example gradient");
        let fd = fd_jacobian(&|t: &Tensor| pooled(t, &dst), &m).reshape(m.shape());
        assert_close(&ge, &fd, 1e-6, "against differences");
        let t = normal(80 + e as u64, m.shape());
        let (_, dt) = pooled_jvp(&m, &dst, &t);
        let want = (&ge * &t).sum().item::<f64>();
        assert!((dt.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    }
    // an empty segment's position is the number of rows (7), where the gather reads -inf
    let m0 = example(&ms, 0);
    for at in [m0.segment_argmax(&dst, 6), m0.segment_argmin(&dst, 6)] {
        assert_eq!(at.shape(), &[6, 2]);
        assert_eq!(&at.to_vec::<i32>()[8..], &[7, 7, 7, 7]);
    }
    // ties go to the first position; a NaN wins
    let x = Tensor::from_vec(vec![1.0, 3.0, 3.0, f64::NAN, 0.5], &[5]);
    let ids = Tensor::from_vec(vec![0i32, 0, 0, 1, 1], &[5]);
    assert_eq!(x.segment_argmax(&ids, 2).to_vec::<i32>(), vec![1, 3]);
    assert_eq!(x.segment_argmin(&ids, 2).to_vec::<i32>(), vec![0, 3]);
    assert!(x.segment_max(&ids, 2).to_vec::<f64>()[1].is_nan());
    let e = x.try_segment_max(&ids, 1).unwrap_err().to_string();
    assert!(e.contains("segment_max"), "{e}");
    let e = x
        .try_segment_max(&ids.reshape(&[5, 1]), 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("segment_max: shapes [5] and [5, 1]"), "{e}");
}

/// Per-example ids for the extrema too.
#[vmap]
#[grad(wrt(m))]
fn pooled_each(m: &Tensor, dst: &Tensor) -> Tensor {
    m.segment_max(dst, 3).sin().sum() + m.segment_min(dst, 3).sum()
}

#[test]
fn segment_extrema_with_per_example_ids_match_a_loop() {
    let dsts = Tensor::from_vec(vec![0i32, 1, 2, 0, 2, 2, 1, 0], &[2, 4]);
    let ms = normal(91, &[2, 4, 3]);
    let g = pooled_each_grad_vmap(&ms, &dsts);
    let v = pooled_each_vmap(&ms, &dsts);
    for e in 0..2 {
        let (m, d) = (example(&ms, e), example(&dsts, e));
        assert_close(&example(&v, e), &pooled_each(&m, &d), 1e-12, "value");
        assert_close(
            &example(&g, e),
            &pooled_each_grad(&m, &d),
            1e-12,
            "gradient",
        );
    }
}

/// The first row holding each segment's largest (smallest unless `largest`) value per
/// column, a NaN before any number, the number of rows for a segment with none: a loop.
fn segment_arg_by_loop(
    vals: &[f64],
    ids: &[i32],
    inner: usize,
    n: usize,
    largest: bool,
) -> Vec<i32> {
    let rows = ids.len();
    let mut want = vec![rows as i32; n * inner];
    let mut seen = vec![false; n];
    for (e, &s) in ids.iter().enumerate() {
        let s = s as usize;
        for c in 0..inner {
            let v = vals[e * inner + c];
            let b = vals[(want[s * inner + c] as usize * inner + c).min(vals.len() - 1)];
            let better = (largest && v > b) || (!largest && v < b);
            if !seen[s] || (!b.is_nan() && (better || v.is_nan())) {
                want[s * inner + c] = e as i32;
            }
        }
        seen[s] = true;
    }
    want
}

/// `segment_argmax` or `segment_argmin` of `vals` `[ids.len(), inner]` in `dt`.
fn segment_arg_of(
    vals: &[f64],
    ids: &[i32],
    inner: usize,
    n: usize,
    largest: bool,
    dt: DType,
) -> Vec<i32> {
    let x = Tensor::from_vec(vals.to_vec(), &[ids.len(), inner]).to_dtype(dt);
    let idx = Tensor::from_vec(ids.to_vec(), &[ids.len()]);
    let at = if largest {
        x.segment_argmax(&idx, n)
    } else {
        x.segment_argmin(&idx, n)
    };
    at.to_vec::<i32>()
}

/// Asserts that `segment_argmax` and `segment_argmin` in f32 and f64 give the loop's.
fn segment_args_match_a_loop(vals: &[f64], ids: &[i32], inner: usize, n: usize, what: &str) {
    for dt in [DType::F32, DType::F64] {
        for largest in [true, false] {
            assert_eq!(
                segment_arg_of(vals, ids, inner, n, largest, dt),
                segment_arg_by_loop(vals, ids, inner, n, largest),
                "{what}, {dt:?}, largest {largest}"
            );
        }
    }
}

#[test]
fn segment_extrema_of_many_rows_split_over_threads_match_a_loop() {
    // enough rows to split the segments over threads; ties among the values, a few NaN;
    // rows of 4 (shorter than a vector) and of 19 (vectors and a tail), in f32 and f64
    let (rows, n) = (70_000usize, 53usize);
    let ids: Vec<i32> = (0..rows).map(|i| ((i * 7919) % 50) as i32).collect();
    for inner in [4usize, 19] {
        let vals: Vec<f64> = (0..rows * inner)
            .map(|i| match i % 9973 {
                17 => f64::NAN,
                _ => ((i * 37) % 101) as f64,
            })
            .collect();
        segment_args_match_a_loop(&vals, &ids, inner, n, &format!("rows of {inner}"));
    }
}

#[test]
fn segment_extrema_written_into_recycled_buffers_match_a_loop() {
    // outputs and scratch past the pool's least size (64 KiB), computed twice over other
    // values, so that the second call's buffers are the first's: every position, an empty
    // segment's (the number of rows) included, must be written again
    let (rows, n, inner) = (24_000usize, 1_500usize, 16usize);
    for (round, seed) in [(0, 37usize), (1, 53)] {
        // 1,400 segments hold rows: the first round's last 100 are empty, the second's first
        let ids: Vec<i32> = (0..rows)
            .map(|i| ((i * 7919) % 1400 + 100 * round) as i32)
            .collect();
        let vals: Vec<f64> = (0..rows * inner)
            .map(|i| ((i * seed) % 211) as f64 - 100.0)
            .collect();
        segment_args_match_a_loop(&vals, &ids, inner, n, &format!("round {round}"));
    }
}

/// Extrema over data with no rows (a graph without edges): every segment empty.
#[vmap(in_axes = (0, None))]
#[grad(wrt(m))]
fn pooled_none(m: &Tensor, dst: &Tensor) -> Tensor {
    let hi = m.segment_max(dst, 2).maximum(&m.sum_axis(0, true));
    let lo = m.segment_min(dst, 2).minimum(&m.sum_axis(0, true));
    (hi - lo).sum() + m.segment_sum(dst, 2).sum()
}

#[test]
fn segment_extrema_of_no_rows_are_the_identities() {
    let m = Tensor::zeros(&[0, 3], DType::F64);
    let none = Tensor::from_vec(Vec::<i32>::new(), &[0]);
    let hi = m.segment_max(&none, 2);
    assert_eq!(hi.shape(), &[2, 3]);
    assert!(hi.to_vec::<f64>().iter().all(|v| *v == f64::NEG_INFINITY));
    assert!(
        m.segment_min(&none, 2)
            .to_vec::<f64>()
            .iter()
            .all(|v| *v == f64::INFINITY)
    );
    assert_eq!(m.segment_argmax(&none, 2).to_vec::<i32>(), vec![0; 6]);
    let (v, g) = pooled_none_value_and_grad(&m, &none);
    assert_eq!(v.item::<f64>(), 0.0);
    assert_eq!(g.shape(), &[0, 3]);
    let ms = Tensor::zeros(&[4, 0, 3], DType::F64);
    assert_eq!(pooled_none_grad_vmap(&ms, &none).shape(), &[4, 0, 3]);
    assert_eq!(pooled_none_vmap(&ms, &none).to_vec::<f64>(), vec![0.0; 4]);
    let _ = pooled_none;
}
