//! `segment_sum` (`jax.ops.segment_sum`) under the transforms: a message-passing layer on
//! a graph (messages along edges summed at their destination nodes) differentiated against
//! central differences and forward mode; per-example node features over one shared graph
//! against a loop; ids over several leading axes; segments no id names; errors.

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
