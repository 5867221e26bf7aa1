//! `Tensor::einsum` under the transforms: gradients against central differences, forward
//! mode and the same model written with `matmul`; repeated letters, letters one operand
//! alone has, `...` and three operands; the Hessian; per-example values and gradients
//! (shared weights, batched and unbatched operands mixed) against a loop.

mod common;
use common::tensors::{assert_close, example, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// Attention scores and a bilinear readout, in einsum.
#[grad]
fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let s = Tensor::einsum("hqd,hkd->hqk", &[q, k]) * 0.5;
    let p = s.softmax(-1);
    let o = Tensor::einsum("hqk,hkd->qhd", &[&p, v]);
    o.tanh().sum()
}

/// The same, in matmul.
#[grad]
fn attention_matmul(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let s = q.matmul(&k.mt()) * 0.5;
    let p = s.softmax(-1);
    let o = p.matmul(v).permute(&[1, 0, 2]);
    o.tanh().sum()
}

#[test]
fn gradients_match_differences_forward_mode_and_matmul() {
    let (q, k, v) = (
        normal(1, &[2, 3, 4]),
        normal(2, &[2, 5, 4]),
        normal(3, &[2, 5, 6]),
    );
    let (gq, gk, gv) = attention_grad(&q, &k, &v);
    let (mq, mk, mv) = attention_matmul_grad(&q, &k, &v);
    assert_close(&gq, &mq, 1e-12, "dq against matmul");
    assert_close(&gk, &mk, 1e-12, "dk against matmul");
    assert_close(&gv, &mv, 1e-12, "dv against matmul");
    let fd = fd_jacobian(&|x: &Tensor| attention(x, &k, &v), &q).reshape(q.shape());
    assert_close(&gq, &fd, 1e-6, "dq against differences");
    let fd = fd_jacobian(&|x: &Tensor| attention(&q, x, &v), &k).reshape(k.shape());
    assert_close(&gk, &fd, 1e-6, "dk against differences");
    let fd = fd_jacobian(&|x: &Tensor| attention(&q, &k, x), &v).reshape(v.shape());
    assert_close(&gv, &fd, 1e-6, "dv against differences");
    let (tq, tk, tv) = (
        normal(4, q.shape()),
        normal(5, k.shape()),
        normal(6, v.shape()),
    );
    let (y, dy) = attention_jvp(&q, &k, &v, &tq, &tk, &tv);
    assert_eq!(y.item::<f64>(), attention(&q, &k, &v).item::<f64>());
    let want = [(&gq, &tq), (&gk, &tk), (&gv, &tv)]
        .iter()
        .map(|(g, t)| (*g * *t).sum().item::<f64>())
        .sum::<f64>();
    assert!((dy.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
    let _ = attention_matmul;
}

/// Traces, diagonals, a letter one operand alone has (summed), `...`, three operands, an
/// implicit output.
#[grad]
fn contractions(a: &Tensor, b: &Tensor, c: &Tensor) -> Tensor {
    let trace = Tensor::einsum("ii->", &[a]);
    let diag = Tensor::einsum("ii->i", &[a]);
    let summed = Tensor::einsum("ij,k->i", &[a, c]);
    let batched = Tensor::einsum("...ij,...jk->...ik", &[b, a]);
    let chain = Tensor::einsum("ij,jk,k", &[a, a, &c.slice(0, 0, 3)]);
    trace * 0.3 + (diag * &summed).sum() + batched.sin().sum() + chain.square().sum()
}

#[test]
fn every_form_of_spec_differentiates() {
    let (a, b, c) = (normal(7, &[3, 3]), normal(8, &[2, 4, 3]), normal(9, &[5]));
    let (ga, gb, gc) = contractions_grad(&a, &b, &c);
    for (g, x, which) in [(&ga, &a, 0), (&gb, &b, 1), (&gc, &c, 2)] {
        let f = |v: &Tensor| match which {
            0 => contractions(v, &b, &c),
            1 => contractions(&a, v, &c),
            _ => contractions(&a, &b, v),
        };
        let fd = fd_jacobian(&f, x).reshape(x.shape());
        assert_close(
            g,
            &fd,
            1e-6,
            &format!("operand {which} against differences"),
        );
    }
    let (ta, tb, tc) = (
        normal(10, a.shape()),
        normal(11, b.shape()),
        normal(12, c.shape()),
    );
    let (_, dy) = contractions_jvp(&a, &b, &c, &ta, &tb, &tc);
    let want = (&ga * &ta).sum().item::<f64>()
        + (&gb * &tb).sum().item::<f64>()
        + (&gc * &tc).sum().item::<f64>();
    assert!((dy.item::<f64>() - want).abs() < 1e-10 * (1.0 + want.abs()));
}

#[hessian(wrt(x))]
fn quartic(x: &Tensor, m: &Tensor) -> Tensor {
    let y = Tensor::einsum("ij,j->i", &[m, x]);
    Tensor::einsum("i,i,i->", &[&y, &y, x]) + Tensor::einsum("i,ij,j", &[x, m, x]).tanh()
}

/// The same function, for its gradient.
#[grad(wrt(x))]
fn quartic_again(x: &Tensor, m: &Tensor) -> Tensor {
    let y = Tensor::einsum("ij,j->i", &[m, x]);
    Tensor::einsum("i,i,i->", &[&y, &y, x]) + Tensor::einsum("i,ij,j", &[x, m, x]).tanh()
}

#[test]
fn the_hessian_matches_differences_of_the_gradient() {
    let (x, m) = (normal(13, &[4]), normal(14, &[4, 4]));
    let h = quartic_hessian(&x, &m);
    assert_eq!(h.shape(), &[4, 4]);
    let g = quartic_again_grad(&x, &m);
    let fd = fd_jacobian(&|v: &Tensor| quartic_again(v, &m), &x).reshape(x.shape());
    assert_close(&g, &fd, 1e-6, "gradient against differences");
    let fd = fd_jacobian(&|v: &Tensor| quartic_again_grad(v, &m), &x);
    assert_close(&h, &fd, 1e-6, "hessian against differences");
    assert_close(&h, &h.t().contiguous(), 1e-10, "symmetric");
    let _ = quartic;
}

/// A per-example bilinear model: the weights shared, the two inputs per example.
#[vmap(in_axes = (0, 0, None))]
#[grad]
fn bilinear(x: &Tensor, y: &Tensor, w: &Tensor) -> Tensor {
    let z = Tensor::einsum("i,oij,j->o", &[x, w, y]);
    let g = Tensor::einsum("oij,i->oj", &[w, x]);
    z.tanh().sum() + Tensor::einsum("oj,oj", &[&g, &g]) * 0.1
}

#[test]
fn per_example_values_and_gradients_match_a_loop() {
    let (xs, ys, w) = (
        normal(15, &[5, 3]),
        normal(16, &[5, 4]),
        normal(17, &[2, 3, 4]),
    );
    let (gx, gy, gw) = bilinear_grad_vmap(&xs, &ys, &w);
    let values = bilinear_vmap(&xs, &ys, &w);
    assert_eq!(gw.shape(), &[5, 2, 3, 4]);
    for (e, (x, y)) in unstack(&xs, 0).iter().zip(unstack(&ys, 0)).enumerate() {
        assert_close(&example(&values, e), &bilinear(x, &y, &w), 1e-12, "value");
        let (ex, ey, ew) = bilinear_grad(x, &y, &w);
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx");
        assert_close(&example(&gy, e), &ey, 1e-12, "per-example dy");
        assert_close(&example(&gw, e), &ew, 1e-12, "per-example dw");
        let fd = fd_jacobian(&|v: &Tensor| bilinear(x, &y, v), &w).reshape(w.shape());
        assert_close(&ew, &fd, 1e-6, "dw against differences");
    }
}

/// Per-example weights over a shared input: the batched operand on the other side.
#[vmap(in_axes = (None, 0))]
#[grad]
fn projected(x: &Tensor, w: &Tensor) -> Tensor {
    Tensor::einsum("bi,ij->bj", &[x, w]).relu().sum() + Tensor::einsum("ij,ij", &[w, w])
}

#[test]
fn batched_and_shared_operands_mix_either_way() {
    let (x, ws) = (normal(18, &[6, 3]), normal(19, &[4, 3, 2]));
    let (gx, gw) = projected_grad_vmap(&x, &ws);
    assert_eq!(gx.shape(), &[4, 6, 3]);
    for (e, w) in unstack(&ws, 0).iter().enumerate() {
        let (ex, ew) = projected_grad(&x, w);
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx");
        assert_close(&example(&gw, e), &ew, 1e-12, "per-example dw");
        let plain = projected(&x, w);
        assert_close(
            &example(&projected_vmap(&x, &ws), e),
            &plain,
            1e-12,
            "value",
        );
    }
}
