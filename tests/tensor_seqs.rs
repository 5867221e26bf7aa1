//! Sequences of tensors: a `Vec<Tensor>` built by `push` in a loop (a recurrent network's
//! outputs), read by index and iterated, joined by `Tensor::stack` / `Tensor::concat`, and
//! `&[Tensor]` parameters (a list of layers). Each derivative is checked against central
//! finite differences in f64 and against the other mode; batched ones against a loop of the
//! unbatched function.

mod common;
use common::tensors::{assert_close, fd_element, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

/// An Elman network's hidden states, pushed step by step and stacked.
#[grad]
fn rnn(xs: &Tensor, w: &Tensor, u: &Tensor) -> Tensor {
    let mut h = Tensor::zeros(&[w.shape()[1]], w.dtype());
    let mut outs = Vec::new();
    for t in 0..xs.shape()[0] {
        h = (xs.slice(0, t, t + 1).squeeze(0).matmul(w) + h.matmul(u)).tanh();
        outs.push(h.clone());
    }
    Tensor::stack(&outs, 0).powi(2).sum()
}

/// The same network joining its outputs as it goes (what had to be written before).
#[grad]
fn rnn_joined(xs: &Tensor, w: &Tensor, u: &Tensor) -> Tensor {
    let mut h = Tensor::zeros(&[w.shape()[1]], w.dtype());
    let mut out = Tensor::zeros(&[0, w.shape()[1]], w.dtype());
    for t in 0..xs.shape()[0] {
        h = (xs.slice(0, t, t + 1).squeeze(0).matmul(w) + h.matmul(u)).tanh();
        out = Tensor::concat(&[&out, &h.unsqueeze(0)], 0);
    }
    out.powi(2).sum()
}

fn rnn_inputs() -> (Tensor, Tensor, Tensor) {
    (
        normal(1, &[5, 3]),
        normal(2, &[3, 4]),
        normal(3, &[4, 4]) * 0.5,
    )
}

#[test]
fn a_stacked_vec_of_hidden_states_differentiates_like_finite_differences() {
    let (xs, w, u) = rnn_inputs();
    let (gx, gw, gu) = rnn_grad(&xs, &w, &u);
    let fd = |which: usize| {
        let f = |v: &Tensor| match which {
            0 => rnn(v, &w, &u),
            1 => rnn(&xs, v, &u),
            _ => rnn(&xs, &w, v),
        };
        let at = [&xs, &w, &u][which];
        fd_jacobian(&f, at).reshape(at.shape())
    };
    assert_close(&gx, &fd(0), 1e-6, "d/dxs");
    assert_close(&gw, &fd(1), 1e-6, "d/dw");
    assert_close(&gu, &fd(2), 1e-6, "d/du");
    // the same gradients as joining as you go, and forward mode agrees
    assert_eq!(
        rnn(&xs, &w, &u).item::<f64>(),
        rnn_joined(&xs, &w, &u).item::<f64>()
    );
    let (jx, jw, ju) = rnn_joined_grad(&xs, &w, &u);
    assert_close(&gx, &jx, 1e-12, "joined d/dxs");
    assert_close(&gw, &jw, 1e-12, "joined d/dw");
    assert_close(&gu, &ju, 1e-12, "joined d/du");
    let (dx, dw, du) = (normal(4, &[5, 3]), normal(5, &[3, 4]), normal(6, &[4, 4]));
    let (value, tangent) = rnn_jvp(&xs, &w, &u, &dx, &dw, &du);
    assert_eq!(value.item::<f64>(), rnn(&xs, &w, &u).item::<f64>());
    let want = (&gx * &dx).sum() + (&gw * &dw).sum() + (&gu * &du).sum();
    assert_close(&tangent, &want, 1e-10, "jvp vs <grad, tangent>");
}

/// Reads earlier outputs inside the loop (the reverse sweep walks back a `Vec` as each
/// iteration found it), a typed `Vec<Tensor>`, `concat`, `for h in &outs`, `.len()` and an
/// iterator sum over it.
#[grad]
fn skip(xs: &Tensor, w: &Tensor) -> Tensor {
    let mut outs: Vec<Tensor> = Vec::with_capacity(xs.shape()[0]);
    outs.push(xs.slice(0, 0, 1).squeeze(0));
    for t in 1..xs.shape()[0] {
        let prev = &outs[t - 1];
        let h = (xs.slice(0, t, t + 1).squeeze(0) + prev.matmul(w)).tanh();
        if t >= 2 {
            let h = h + &outs[t - 2] * 0.5;
            outs.push(h);
        } else {
            outs.push(h);
        }
    }
    let mut s = Tensor::concat(&outs, 0).sum();
    for h in &outs {
        s += h.powi(2).sum();
    }
    let n = outs.len() as f64;
    s * n + outs.iter().map(|h| h.sin().sum()).sum::<Tensor>()
}

#[test]
fn reads_of_earlier_elements_and_iteration_differentiate_like_finite_differences() {
    let (xs, w) = (normal(7, &[4, 3]), normal(8, &[3, 3]) * 0.6);
    let (gx, gw) = skip_grad(&xs, &w);
    let fx = fd_jacobian(&|v: &Tensor| skip(v, &w), &xs).reshape(&[4, 3]);
    let fw = fd_jacobian(&|v: &Tensor| skip(&xs, v), &w).reshape(&[3, 3]);
    assert_close(&gx, &fx, 1e-6, "d/dxs");
    assert_close(&gw, &fw, 1e-6, "d/dw");
    let (dx, dw) = (normal(9, &[4, 3]), normal(10, &[3, 3]));
    let (_, tangent) = skip_jvp(&xs, &w, &dx, &dw);
    let want = (&gx * &dx).sum() + (&gw * &dw).sum();
    assert_close(&tangent, &want, 1e-10, "jvp vs <grad, tangent>");
}

/// Per-example gradients of a recurrent network; the first element pushed is the same for
/// every example (lifted to the batch), the rest differ.
#[vmap(in_axes = (0, None, None))]
#[grad]
fn rnn_mixed(xs: &Tensor, w: &Tensor, u: &Tensor) -> Tensor {
    let mut outs = Vec::new();
    outs.push(u.sum_axis(0, false) * 0.1);
    let mut h = outs[0].clone();
    for t in 0..xs.shape()[0] {
        h = (xs.slice(0, t, t + 1).squeeze(0).matmul(w) + h.matmul(u)).tanh();
        outs.push(h.clone());
    }
    let mut s = Tensor::stack(&outs, -1).powi(2).sum();
    for (k, h) in outs.iter().enumerate() {
        s += &outs[k] * h.sum();
    }
    s.sum()
}

#[test]
fn per_example_gradients_through_a_vec_of_tensors_match_a_loop() {
    let (xs, w, u) = (
        normal(11, &[3, 5, 3]),
        normal(12, &[3, 4]),
        normal(13, &[4, 4]) * 0.5,
    );
    let values = rnn_mixed_vmap(&xs, &w, &u);
    let (gx, gw, gu) = rnn_mixed_grad_vmap(&xs, &w, &u);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        assert_close(&at(&values), &rnn_mixed(x, &w, &u), 1e-12, "value");
        let (ex, ew, eu) = rnn_mixed_grad(x, &w, &u);
        assert_close(&at(&gx), &ex, 1e-10, "per-example d/dxs");
        assert_close(&at(&gw), &ew, 1e-10, "per-example d/dw");
        assert_close(&at(&gu), &eu, 1e-10, "per-example d/du");
        let fx = fd_jacobian(&|v: &Tensor| rnn_mixed(v, &w, &u), x).reshape(&[5, 3]);
        assert_close(&ex, &fx, 1e-6, "d/dxs vs finite differences");
    }
}

/// A function under two attributes: `#[hessian]` on `$h`, `#[grad]` on `$g`.
macro_rules! twice {
    (fn $h:ident / $g:ident ($($args:tt)*) -> Tensor $body:block) => {
        #[hessian]
        fn $h($($args)*) -> Tensor $body
        #[grad]
        fn $g($($args)*) -> Tensor $body
    };
}

// A Hessian (forward over reverse) and a Jacobian through a `Vec` of tensors.
twice! {
    fn settle_energy / settle_energy_g (x: &Tensor) -> Tensor {
        let mut h = x.sum_axis(0, false);
        let mut outs = Vec::new();
        for _ in 0..3 {
            h = (x.matmul(&h) * 0.3).tanh() + x.sum_axis(0, false) * 0.1;
            outs.push(h.clone());
        }
        Tensor::concat(&outs, 0).powi(2).sum()
    }
}

#[jacobian]
fn trajectory(x: &Tensor) -> Tensor {
    let mut h = x.clone();
    let mut outs = Vec::new();
    for _ in 0..3 {
        h = (&h * x).sin();
        outs.push(h.clone());
    }
    Tensor::stack(&outs, 0)
}

#[test]
fn hessians_and_jacobians_through_a_vec_of_tensors_match_finite_differences() {
    let x = normal(14, &[2, 2]);
    assert_eq!(
        settle_energy(&x).item::<f64>(),
        settle_energy_g(&x).item::<f64>()
    );
    let h = settle_energy_hessian(&x);
    assert_eq!(h.shape(), &[2, 2, 2, 2]);
    let fd = fd_jacobian(&settle_energy_g_grad, &x);
    assert_close(&h, &fd, 1e-6, "hessian vs differences of the gradient");
    let flat = h.reshape(&[4, 4]);
    assert_close(&flat, &flat.t().contiguous(), 1e-12, "symmetry");
    let (jf, jr) = (trajectory_jacfwd(&x), trajectory_jacrev(&x));
    assert_eq!(jf.shape(), &[3, 2, 2, 2, 2]);
    let fd = fd_jacobian(&trajectory, &x);
    assert_close(&jf, &fd, 1e-6, "jacfwd vs finite differences");
    assert_close(&jr, &jf, 1e-12, "jacrev vs jacfwd");
}

/// A list of layers taken as `&[Tensor]`: its gradient is a `Vec<Tensor>`.
#[grad]
fn deep(ws: &[Tensor], x: &Tensor) -> Tensor {
    let mut h = x.clone();
    for w in ws {
        h = h.matmul(w).tanh();
    }
    h.powi(2).sum() + ws[0].sum() * 0.1
}

#[test]
fn a_slice_of_tensors_parameter_has_a_vec_of_gradients() {
    let ws = vec![
        normal(15, &[3, 4]),
        normal(16, &[4, 4]),
        normal(17, &[4, 2]),
    ];
    let x = normal(18, &[2, 3]);
    let (gws, gx) = deep_grad(&ws, &x);
    assert_eq!(gws.len(), ws.len());
    for k in 0..ws.len() {
        let f = |v: &Tensor| {
            let mut ws = ws.clone();
            ws[k] = v.clone();
            deep(&ws, &x)
        };
        let fd = fd_jacobian(&f, &ws[k]).reshape(ws[k].shape());
        assert_close(&gws[k], &fd, 1e-6, &format!("d/dws[{k}]"));
    }
    let fx = fd_jacobian(&|v: &Tensor| deep(&ws, v), &x).reshape(&[2, 3]);
    assert_close(&gx, &fx, 1e-6, "d/dx");
    let dws: Vec<Tensor> = ws
        .iter()
        .enumerate()
        .map(|(k, w)| normal(20 + k as u64, w.shape()))
        .collect();
    let dx = normal(19, &[2, 3]);
    let (_, tangent) = deep_jvp(&ws, &x, &dws, &dx);
    let mut want = (&gx * &dx).sum();
    for (g, d) in gws.iter().zip(&dws) {
        want += (g * d).sum();
    }
    assert_close(&tangent, &want, 1e-10, "jvp vs <grad, tangent>");
}

#[test]
fn joining_an_empty_vec_is_an_error_naming_the_operation() {
    let none: Vec<Tensor> = Vec::new();
    let e = Tensor::try_stack(&none, 0).unwrap_err().to_string();
    assert!(e.contains("stack") && e.contains("at least one"), "{e}");
    let e = Tensor::try_concat(&none, 0).unwrap_err().to_string();
    assert!(e.contains("concat") && e.contains("at least one"), "{e}");
}

/// A `#[grad]` function of `&[Tensor]` called with a `Vec` of tensors started by `vec![..]`.
#[grad]
fn total(hs: &[Tensor]) -> Tensor {
    let mut s = hs[0].sum();
    for h in hs {
        s += h.powi(2).sum();
    }
    s
}

#[grad]
fn unrolled(x: &Tensor) -> Tensor {
    let mut outs = vec![x.clone(), x * 0.5];
    for k in 0..3 {
        let next = (&outs[k + 1] * x).sin() + &outs[k];
        outs.push(next);
    }
    total(&outs) + outs[outs.len() - 1].sum()
}

#[test]
fn vec_literals_of_tensors_and_calls_taking_slices_of_tensors_differentiate() {
    let x = normal(30, &[3]);
    let g = unrolled_grad(&x);
    assert_close(&g, &fd_jacobian(&unrolled, &x).reshape(&[3]), 1e-6, "d/dx");
    let v = normal(31, &[3]);
    let (_, tangent) = unrolled_jvp(&x, &v);
    assert_close(&tangent, &(&g * &v).sum(), 1e-10, "jvp vs <grad, tangent>");
}

/// A typed `Vec<Tensor>` read before anything is pushed onto it (untyped, as in
/// `alternating` below, the function is lowered a second time knowing what it holds).
#[grad]
fn doubling(x: &Tensor) -> Tensor {
    let mut outs: Vec<Tensor> = Vec::new();
    for t in 0..3 {
        let h = if t > 0 {
            (&outs[t - 1] * 2.0).sin()
        } else {
            x.clone()
        };
        outs.push(h);
    }
    Tensor::stack(&outs, 0).sum()
}

#[test]
fn a_typed_vec_of_tensors_read_before_its_first_push_differentiates() {
    let x = normal(32, &[4]);
    let g = doubling_grad(&x);
    assert_close(&g, &fd_jacobian(&doubling, &x).reshape(&[4]), 1e-6, "d/dx");
}

/// Attention over the states so far (a `Vec` stacked inside the loop that grows it), with
/// `is_empty()`, `.last().unwrap()`, `.first().expect(..)` and a reversed iteration.
#[vmap(in_axes = (0, None))]
#[grad]
fn attend(xs: &Tensor, w: &Tensor) -> Tensor {
    let mut outs: Vec<Tensor> = Vec::new();
    for t in 0..xs.shape()[0] {
        let x = xs.slice(0, t, t + 1).squeeze(0);
        let h = if outs.is_empty() {
            x.matmul(w).tanh()
        } else {
            let mem = Tensor::stack(&outs, 0);
            let scores = mem.matmul(&x).softmax(0);
            (x.matmul(w) + scores.matmul(&mem)).tanh()
        };
        outs.push(h);
    }
    let mut loss = outs.last().unwrap().sum() * 2.0 + outs.first().expect("a state").sum();
    for (k, h) in outs.iter().enumerate().rev() {
        loss += h.sum() * (k as f64 + 1.0);
    }
    loss
}

#[test]
fn attention_over_earlier_states_differentiates_and_batches() {
    let (xs, w) = (normal(33, &[2, 4, 3]), normal(34, &[3, 3]));
    let (gx, gw) = attend_grad_vmap(&xs, &w);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (ex, ew) = attend_grad(x, &w);
        assert_close(&at(&gx), &ex, 1e-10, "per-example d/dxs");
        assert_close(&at(&gw), &ew, 1e-10, "per-example d/dw");
        let fx = fd_jacobian(&|v: &Tensor| attend(v, &w), x).reshape(&[4, 3]);
        let fw = fd_jacobian(&|v: &Tensor| attend(x, v), &w).reshape(&[3, 3]);
        assert_close(&ex, &fx, 1e-6, "d/dxs vs finite differences");
        assert_close(&ew, &fw, 1e-6, "d/dw vs finite differences");
    }
}

/// An LSTM's parameters.
#[derive(Clone, Differentiable)]
struct Lstm {
    wx: Tensor,
    wh: Tensor,
    b: Tensor,
    out: Tensor,
}

/// A sequence classifier: an LSTM keeping its hidden and cell states in two Vecs, a
/// read-out of the stacked states, and a penalty on the cell states.
#[vmap(in_axes = (None, 0, 0))]
#[grad(wrt(p))]
fn lstm_loss(p: &Lstm, xs: &Tensor, ys: &Tensor) -> Tensor {
    let hid = p.wh.shape()[0];
    let mut h = Tensor::zeros(&[hid], xs.dtype());
    let mut c = Tensor::zeros(&[hid], xs.dtype());
    let mut hs = Vec::new();
    let mut cs = Vec::new();
    for t in 0..xs.shape()[0] {
        let x = xs.slice(0, t, t + 1).squeeze(0);
        let z = x.matmul(&p.wx) + h.matmul(&p.wh) + &p.b;
        let i = z.slice(0, 0, hid).sigmoid();
        let f = z.slice(0, hid, 2 * hid).sigmoid();
        let o = z.slice(0, 2 * hid, 3 * hid).sigmoid();
        let g = z.slice(0, 3 * hid, 4 * hid).tanh();
        c = &f * &c + &i * &g;
        h = &o * c.tanh();
        hs.push(h.clone());
        cs.push(c.clone());
    }
    let logits = Tensor::stack(&hs, 0).matmul(&p.out);
    let ce = -(logits.log_softmax(-1) * ys).sum();
    ce + cs.iter().map(|c| c.powi(2).mean()).sum::<Tensor>() * 0.01
}

#[test]
fn per_example_gradients_of_an_lstm_with_two_vecs_match_a_loop_and_differences() {
    let (i, hd, k, t, b) = (3, 4, 5, 6, 3);
    let p = Lstm {
        wx: normal(40, &[i, 4 * hd]) * 0.5,
        wh: normal(41, &[hd, 4 * hd]) * 0.5,
        b: normal(42, &[4 * hd]) * 0.1,
        out: normal(43, &[hd, k]),
    };
    let xs = normal(44, &[b, t, i]);
    let labels: Vec<i32> = (0..b * t).map(|j| (j * 3 % k) as i32).collect();
    let ys = Tensor::from_vec(labels, &[b, t]).one_hot(k, DType::F64);
    let g = lstm_loss_grad_vmap(&p, &xs, &ys);
    for (e, (x, y)) in unstack(&xs, 0).iter().zip(unstack(&ys, 0)).enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let ge = lstm_loss_grad(&p, x, &y);
        assert_close(&at(&g.wx), &ge.wx, 1e-10, "per-example d/dwx");
        assert_close(&at(&g.wh), &ge.wh, 1e-10, "per-example d/dwh");
        assert_close(&at(&g.b), &ge.b, 1e-10, "per-example d/db");
        assert_close(&at(&g.out), &ge.out, 1e-10, "per-example d/dout");
        let with = |wh: &Tensor| {
            let mut q = p.clone();
            q.wh = wh.clone();
            lstm_loss(&q, x, &y)
        };
        let fd = fd_jacobian(&with, &p.wh).reshape(p.wh.shape());
        assert_close(&ge.wh, &fd, 1e-6, "d/dwh vs finite differences");
    }
}

/// Vecs of tensors made by `.collect()` of a range's and of a Vec's `.map(..)`.
#[vmap(in_axes = (0, None))]
#[grad]
fn collected(xs: &Tensor, w: &Tensor) -> Tensor {
    let steps: Vec<Tensor> = (0..xs.shape()[0])
        .map(|t| xs.slice(0, t, t + 1).squeeze(0).matmul(w).tanh())
        .collect();
    let doubled: Vec<Tensor> = steps.iter().map(|h| h * 2.0).collect();
    Tensor::stack(&doubled, 0).sum() + steps.iter().map(|s| s.powi(2).sum()).sum::<Tensor>()
}

#[test]
fn collected_vecs_of_tensors_differentiate_and_batch() {
    let (xs, w) = (normal(50, &[2, 4, 3]), normal(51, &[3, 2]));
    let (gx, gw) = collected_grad_vmap(&xs, &w);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (ex, ew) = collected_grad(x, &w);
        assert_close(&at(&gx), &ex, 1e-10, "per-example d/dxs");
        assert_close(&at(&gw), &ew, 1e-10, "per-example d/dw");
        let fw = fd_jacobian(&|v: &Tensor| collected(x, v), &w).reshape(&[3, 2]);
        assert_close(&ew, &fw, 1e-6, "d/dw vs finite differences");
    }
}

/// Multi-head attention's parameters; the number of heads an integer field.
#[derive(Clone, Differentiable)]
struct Attention {
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    #[differentiable(skip)]
    heads: usize,
}

#[vmap]
#[grad]
fn one_head(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let d = q.shape()[1] as f64;
    (q.matmul(&k.t()) / d.sqrt()).softmax(-1).matmul(v)
}

/// A self-attention block: the heads collected into a Vec and concatenated, a residual and
/// a layer norm. `q.shape()[1] / p.heads` divides two integers.
#[vmap(in_axes = (None, 0))]
#[grad(wrt(p))]
fn attention_loss(p: &Attention, x: &Tensor) -> Tensor {
    let (q, k, v) = (x.matmul(&p.wq), x.matmul(&p.wk), x.matmul(&p.wv));
    let dh = q.shape()[1] / p.heads;
    let outs: Vec<Tensor> = (0..p.heads)
        .map(|h| {
            let part = |m: &Tensor| m.slice(1, h * dh, (h + 1) * dh);
            one_head(&part(&q), &part(&k), &part(&v))
        })
        .collect();
    let y = Tensor::concat(&outs, -1).matmul(&p.wo) + x;
    let mu = y.mean_axis(-1, true);
    let var = (&y - &mu).powi(2).mean_axis(-1, true);
    ((&y - &mu) / (var + 1e-5).sqrt()).powi(3).sum()
}

#[test]
fn per_example_gradients_of_multi_head_attention_match_a_loop_and_differences() {
    let (t, d) = (5, 8);
    let p = Attention {
        wq: normal(60, &[d, d]) * 0.3,
        wk: normal(61, &[d, d]) * 0.3,
        wv: normal(62, &[d, d]) * 0.3,
        wo: normal(63, &[d, d]) * 0.3,
        heads: 2,
    };
    let xs = normal(64, &[3, t, d]);
    let g = attention_loss_grad_vmap(&p, &xs);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let ge = attention_loss_grad(&p, x);
        assert_close(&at(&g.wq), &ge.wq, 1e-10, "per-example d/dwq");
        assert_close(&at(&g.wo), &ge.wo, 1e-10, "per-example d/dwo");
        let with = |wq: &Tensor| {
            let mut q = p.clone();
            q.wq = wq.clone();
            attention_loss(&q, x)
        };
        let fd = fd_jacobian(&with, &p.wq).reshape(&[d, d]);
        assert_close(&ge.wq, &fd, 1e-6, "d/dwq vs finite differences");
    }
}

/// Steps that branch on the step (the reverse sweep keeps each step's values on tapes and
/// recomputes only the branch), with a Vec of the states.
#[vmap(in_axes = (0, None))]
#[grad]
fn alternating(x: &Tensor, w: &Tensor) -> Tensor {
    let mut h = x.clone();
    let mut states = Vec::new();
    for t in 0..5 {
        h = h.matmul(w);
        if t % 2 == 0 {
            h = h.tanh();
        } else {
            h = h.sin() * 0.5 + &states[t - 1];
        }
        states.push(h.clone());
    }
    Tensor::stack(&states, 0).powi(2).sum()
}

#[test]
fn loops_over_steps_with_branches_differentiate_and_batch() {
    let (xs, w) = (normal(70, &[3, 4]), normal(71, &[4, 4]) * 0.7);
    let (gx, gw) = alternating_grad_vmap(&xs, &w);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (ex, ew) = alternating_grad(x, &w);
        assert_close(&at(&gx), &ex, 1e-10, "per-example d/dx");
        assert_close(&at(&gw), &ew, 1e-10, "per-example d/dw");
        let fx = fd_jacobian(&|v: &Tensor| alternating(v, &w), x).reshape(&[4]);
        let fw = fd_jacobian(&|v: &Tensor| alternating(x, v), &w).reshape(&[4, 4]);
        assert_close(&ex, &fx, 1e-6, "d/dx vs finite differences");
        assert_close(&ew, &fw, 1e-6, "d/dw vs finite differences");
        let (dx, dw) = (normal(72, &[4]), normal(73, &[4, 4]));
        let (_, tangent) = alternating_jvp(x, &w, &dx, &dw);
        let want = (&ex * &dx).sum() + (&ew * &dw).sum();
        assert_close(&tangent, &want, 1e-10, "jvp vs <grad, tangent>");
    }
}

#[test]
fn a_loop_of_zero_steps_leaves_one_state_and_its_gradients() {
    // no steps: the Vec holds the first state alone (from `u`), `w` gets no gradient
    let (xs, w, u) = (
        normal(80, &[2, 0, 3]),
        normal(81, &[3, 4]),
        normal(82, &[4, 4]),
    );
    let (gx, gw, gu) = rnn_mixed_grad_vmap(&xs, &w, &u);
    assert_eq!(gx.shape(), &[2, 0, 3]);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (_, ew, eu) = rnn_mixed_grad(x, &w, &u);
        assert_close(&ew, &w.zeros_like(), 0.0, "d/dw with no steps");
        assert_close(&at(&gw), &ew, 1e-12, "per-example d/dw");
        assert_close(&at(&gu), &eu, 1e-12, "per-example d/du");
        let fu = fd_jacobian(&|v: &Tensor| rnn_mixed(x, &w, v), &u).reshape(&[4, 4]);
        assert_close(&eu, &fu, 1e-6, "d/du vs finite differences");
    }
}

/// The same network written with weights on the left (`W x`, the convention of much
/// scientific code): the gradients of `w` and `u` are products `ct xᵀ` (`matmul_tl`) summed
/// over the steps.
#[vmap(in_axes = (1, None, None))]
#[grad]
fn rnn_columns(xs: &Tensor, w: &Tensor, u: &Tensor) -> Tensor {
    let mut h = Tensor::zeros(&[w.shape()[0]], w.dtype());
    let mut outs = Vec::new();
    for t in 0..xs.shape()[0] {
        h = (w.matmul(&xs.slice(0, t, t + 1).squeeze(0)) + u.matmul(&h)).tanh();
        outs.push(h.clone());
    }
    Tensor::stack(&outs, 0).powi(2).sum()
}

#[test]
fn weights_on_the_left_get_every_steps_gradient() {
    // 5 steps, 3 sequences (axis 1), 3 inputs, 4 hidden
    let (xs, w, u) = (
        normal(93, &[5, 3, 3]),
        normal(94, &[4, 3]),
        normal(95, &[4, 4]) * 0.5,
    );
    let (gx, gw, gu) = rnn_columns_grad_vmap(&xs, &w, &u);
    for (e, x) in unstack(&xs, 1).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (ex, ew, eu) = rnn_columns_grad(x, &w, &u);
        assert_close(&at(&gx), &ex, 1e-12, "per-example d/dxs");
        assert_close(&at(&gw), &ew, 1e-12, "per-example d/dw");
        assert_close(&at(&gu), &eu, 1e-12, "per-example d/du");
        let fw = fd_jacobian(&|v: &Tensor| rnn_columns(x, v, &u), &w).reshape(&[4, 3]);
        let fu = fd_jacobian(&|v: &Tensor| rnn_columns(x, &w, v), &u).reshape(&[4, 4]);
        assert_close(&ew, &fw, 1e-6, "d/dw");
        assert_close(&eu, &fu, 1e-6, "d/du");
    }
}

/// A two-layer recurrent network keeping each layer's state in a `Vec`, updated in place
/// (`hs[l] = h`) in a loop over layers inside the loop over steps.
#[vmap(in_axes = (1, None))]
#[grad(wrt(ws))]
fn stacked(xs: &Tensor, ws: &[Tensor]) -> Tensor {
    let mut hs: Vec<Tensor> = ws
        .iter()
        .map(|w| Tensor::zeros(&[w.shape()[1]], w.dtype()))
        .collect();
    let mut total = xs.sum() * 0.0;
    for t in 0..xs.shape()[0] {
        let mut inp = xs.slice(0, t, t + 1).squeeze(0);
        for l in 0..ws.len() {
            let h = Tensor::concat(&[&inp, &hs[l]], 0).matmul(&ws[l]).tanh();
            inp = h.clone();
            hs[l] = h;
        }
        total += inp.powi(2).sum();
    }
    total + Tensor::stack(&hs, 0).sum()
}

/// A ring buffer of the last two states, written in place (`mem[t % 2] = h`, and `+=`),
/// each step reading the older one: a loop without inner loops (its values kept on tapes).
#[vmap(in_axes = (0, None))]
#[grad]
fn ring(xs: &Tensor, u: &Tensor) -> Tensor {
    let mut mem = [xs.slice(0, 0, 1).squeeze(0), xs.slice(0, 1, 2).squeeze(0)];
    for t in 2..xs.shape()[0] {
        let older = mem[t % 2].clone();
        let h = (older.matmul(u) + xs.slice(0, t, t + 1).squeeze(0)).tanh();
        mem[t % 2] = h;
        let half = &mem[t % 2] * 0.5;
        mem[(t + 1) % 2] += half;
    }
    (&mem[0] * &mem[1]).sum()
}

#[test]
fn elements_of_a_vec_of_tensors_are_assigned_in_place() {
    // stacked: 4 steps, 3 sequences (axis 1), 2 inputs, layers 2 -> 3 -> 3
    let xs = normal(130, &[4, 3, 2]);
    let ws = vec![
        normal(131, &[2 + 3, 3]) * 0.7,
        normal(132, &[3 + 3, 3]) * 0.7,
    ];
    let per = stacked_grad_vmap(&xs, &ws);
    for (e, x) in unstack(&xs, 1).iter().enumerate() {
        let g = stacked_grad(x, &ws);
        for l in 0..ws.len() {
            assert_close(
                &per[l].slice(0, e, e + 1).squeeze(0),
                &g[l],
                1e-12,
                "per-example",
            );
            let fd = fd_element(&|vs: &[Tensor]| stacked(x, vs), &ws, l);
            assert_close(&g[l], &fd, 1e-6, "stacked d/dw vs finite differences");
        }
    }
    // ring: 6 steps of 3 values, 2 examples
    let (xs, u) = (normal(133, &[2, 6, 3]), normal(134, &[3, 3]) * 0.6);
    let (gx, gu) = ring_grad_vmap(&xs, &u);
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        let (ex, eu) = ring_grad(x, &u);
        assert_close(&at(&gx), &ex, 1e-12, "per-example d/dxs");
        assert_close(&at(&gu), &eu, 1e-12, "per-example d/du");
        let fx = fd_jacobian(&|v: &Tensor| ring(v, &u), x).reshape(&[6, 3]);
        let fu = fd_jacobian(&|v: &Tensor| ring(x, v), &u).reshape(&[3, 3]);
        assert_close(&ex, &fx, 1e-6, "ring d/dxs vs finite differences");
        assert_close(&eu, &fu, 1e-6, "ring d/du vs finite differences");
        let (dx, du) = (normal(135, &[6, 3]), normal(136, &[3, 3]));
        let (v, t) = ring_jvp(x, &u, &dx, &du);
        assert_eq!(v.item::<f64>(), ring(x, &u).item::<f64>());
        let want = (&ex * &dx).sum() + (&eu * &du).sum();
        assert_close(&t, &want, 1e-10, "ring jvp vs <grad, tangent>");
    }
}

/// The stacked network written functionally: each step builds the layers' new states in a
/// fresh Vec and replaces the old one whole (`hs = next;`).
#[vmap(in_axes = (1, None))]
#[grad(wrt(ws))]
fn stacked_replaced(xs: &Tensor, ws: &[Tensor]) -> Tensor {
    let mut hs: Vec<Tensor> = ws
        .iter()
        .map(|w| Tensor::zeros(&[w.shape()[1]], w.dtype()))
        .collect();
    let mut total = xs.sum() * 0.0;
    for t in 0..xs.shape()[0] {
        let mut inp = xs.slice(0, t, t + 1).squeeze(0);
        let mut next = Vec::new();
        for l in 0..ws.len() {
            let h = Tensor::concat(&[&inp, &hs[l]], 0).matmul(&ws[l]).tanh();
            inp = h.clone();
            next.push(h);
        }
        hs = next;
        total += inp.powi(2).sum();
    }
    total + Tensor::stack(&hs, 0).sum()
}

/// The same with a write into a Vec of floats in the loop, which keeps it on the strategy
/// that recomputes each step (the replaced Vec of tensors saved and restored by value).
#[grad(wrt(ws))]
fn stacked_replaced_recomputed(xs: &Tensor, ws: &[Tensor]) -> Tensor {
    let mut hs: Vec<Tensor> = ws
        .iter()
        .map(|w| Tensor::zeros(&[w.shape()[1]], w.dtype()))
        .collect();
    let mut scales = vec![1.0; xs.shape()[0] + 1];
    let mut total = xs.sum() * 0.0;
    for t in 0..xs.shape()[0] {
        let mut inp = xs.slice(0, t, t + 1).squeeze(0);
        let mut next = Vec::new();
        for l in 0..ws.len() {
            let h = Tensor::concat(&[&inp, &hs[l]], 0).matmul(&ws[l]).tanh();
            inp = h.clone();
            next.push(h);
        }
        scales[t + 1] = scales[t] * 1.0;
        hs = next;
        total += inp.powi(2).sum() * scales[t + 1];
    }
    total + Tensor::stack(&hs, 0).sum()
}

#[test]
fn a_vec_of_tensors_replaced_whole_differentiates_like_one_written_in_place() {
    let xs = normal(150, &[4, 3, 2]);
    let ws = vec![
        normal(151, &[2 + 3, 3]) * 0.7,
        normal(152, &[3 + 3, 3]) * 0.7,
    ];
    let per = stacked_replaced_grad_vmap(&xs, &ws);
    let in_place = stacked_grad_vmap(&xs, &ws);
    for l in 0..2 {
        assert_close(&per[l], &in_place[l], 1e-12, "replaced vs written in place");
    }
    for (e, x) in unstack(&xs, 1).iter().enumerate() {
        let g = stacked_replaced_grad(x, &ws);
        assert_eq!(
            stacked_replaced(x, &ws).item::<f64>(),
            stacked(x, &ws).item::<f64>()
        );
        for l in 0..ws.len() {
            assert_close(
                &per[l].slice(0, e, e + 1).squeeze(0),
                &g[l],
                1e-12,
                "per-example",
            );
            let fd = fd_element(&|vs: &[Tensor]| stacked_replaced(x, vs), &ws, l);
            assert_close(&g[l], &fd, 1e-6, "d/dw vs finite differences");
        }
        assert_eq!(
            stacked_replaced_recomputed(x, &ws).item::<f64>(),
            stacked_replaced(x, &ws).item::<f64>()
        );
        let r = stacked_replaced_recomputed_grad(x, &ws);
        assert_close(&r[0], &g[0], 1e-12, "recomputed d/dw0");
        assert_close(&r[1], &g[1], 1e-12, "recomputed d/dw1");
        let dws = vec![normal(153, &[5, 3]), normal(154, &[6, 3])];
        let (v, t) = stacked_replaced_jvp(x, &ws, &dws);
        assert_eq!(v.item::<f64>(), stacked_replaced(x, &ws).item::<f64>());
        let want = (&g[0] * &dws[0]).sum() + (&g[1] * &dws[1]).sum();
        assert_close(&t, &want, 1e-10, "jvp vs <grad, tangent>");
    }
}

/// A list of tensors batched element by element (`in_axes` on a `&[Tensor]`): each example
/// is one list of sequences' steps.
#[vmap(in_axes = (1, None))]
#[grad]
fn list_rnn(steps: &[Tensor], u: &Tensor) -> Tensor {
    let mut h = steps[0].tanh();
    for x in steps.iter().skip(1) {
        h = (h.matmul(u) + x).tanh();
    }
    h.powi(2).sum() + Tensor::stack(steps, 0).mean()
}

/// Only the list is batched (the values made inside are lifted like its first element).
#[vmap]
fn list_norms(xs: &[Tensor]) -> Tensor {
    let mut s = xs[0].zeros_like().sum();
    for x in xs {
        s += (x * x).sum();
    }
    s.sqrt() + 1.0
}

#[test]
fn lists_of_tensors_are_batched_element_by_element() {
    // 4 steps of [3 examples (axis 1), 2] and a shared [2, 2]
    let steps: Vec<Tensor> = (0..4).map(|k| normal(160 + k, &[2, 3])).collect();
    let u = normal(170, &[2, 2]) * 0.7;
    let (gs, gu) = list_rnn_grad_vmap(&steps, &u);
    assert_eq!(gs.len(), 4);
    for e in 0..3 {
        let ex: Vec<Tensor> = steps
            .iter()
            .map(|s| s.slice(1, e, e + 1).squeeze(1))
            .collect();
        let (es, eu) = list_rnn_grad(&ex, &u);
        assert_close(
            &gu.slice(0, e, e + 1).squeeze(0),
            &eu,
            1e-12,
            "per-example d/du",
        );
        for k in 0..4 {
            assert_close(
                &gs[k].slice(0, e, e + 1).squeeze(0),
                &es[k],
                1e-12,
                "per-example d/dstep",
            );
            let fd = fd_element(&|vs: &[Tensor]| list_rnn(vs, &u), &ex, k);
            assert_close(&es[k], &fd, 1e-6, "d/dstep vs finite differences");
        }
    }
    let xs: Vec<Tensor> = (0..3).map(|k| normal(180 + k, &[5, 2])).collect();
    let norms = list_norms_vmap(&xs);
    for e in 0..5 {
        let ex: Vec<Tensor> = xs.iter().map(|s| s.slice(0, e, e + 1).squeeze(0)).collect();
        assert_close(
            &norms.slice(0, e, e + 1).squeeze(0),
            &list_norms(&ex),
            1e-12,
            "per-example norm",
        );
    }
}

/// Batching only lists that are all empty has no batch size to take.
#[test]
#[should_panic(expected = "`list_norms_vmap`: no batched argument")]
fn batching_only_empty_lists_is_an_error_naming_the_function() {
    list_norms_vmap(&[]);
}

/// A list of tensors through a stack of layers, called by other batched functions with lists
/// that differ per example.
#[vmap]
#[grad]
fn layered(xs: &[Tensor], ws: &[Tensor]) -> Tensor {
    let mut s = Tensor::stack(xs, 0).tanh().sum_axis(0, false);
    for w in ws {
        s = s.matmul(w).tanh();
    }
    s.powi(2).sum()
}

/// Every element squared and summed, the list taken by value.
#[vmap]
#[grad]
fn owned_norm(xs: Vec<Tensor>) -> Tensor {
    let mut s = xs[0].zeros_like().sum();
    for x in &xs {
        s += (x * x).sum();
    }
    s
}

/// Lists built from the example (`v`, `m`) beside shared ones (`ws`, `cs`): each call goes
/// to the callee's counterpart batching lists, with the shared lists lifted to the batch.
#[vmap(in_axes = (0, None, None))]
#[grad]
fn built_lists(x: &Tensor, ws: &[Tensor], cs: &[Tensor]) -> Tensor {
    let v = vec![x.clone(), x.sin(), x * 2.0];
    let m = vec![x.unsqueeze(1).matmul(&x.unsqueeze(0)) * 0.3];
    let mut parts = vec![x.cos()];
    for c in cs {
        parts.push(c * x);
    }
    layered(&v, ws) + layered(cs, &m) + owned_norm(parts) * 0.1
}

/// The list of the gap's reproducer: a `#[vmap]` function only.
#[vmap]
fn doubled_sum(x: &Tensor) -> Tensor {
    let v = vec![x.clone(), x * 2.0];
    summed(&v)
}

#[vmap]
fn summed(xs: &[Tensor]) -> Tensor {
    Tensor::stack(xs, 0).sum()
}

#[test]
fn lists_that_differ_per_example_are_passed_to_other_batched_functions() {
    let d = 3;
    let xs = normal(190, &[4, d]);
    let ws: Vec<Tensor> = (0..2).map(|k| normal(191 + k, &[d, d]) * 0.6).collect();
    let cs: Vec<Tensor> = (0..2).map(|k| normal(195 + k, &[d])).collect();
    let values = built_lists_vmap(&xs, &ws, &cs);
    let doubled = doubled_sum_vmap(&xs);
    let (gx, gws, gcs) = built_lists_grad_vmap(&xs, &ws, &cs);
    assert_eq!((gws.len(), gcs.len()), (2, 2));
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let at = |t: &Tensor| t.slice(0, e, e + 1).squeeze(0);
        assert_close(&at(&values), &built_lists(x, &ws, &cs), 1e-12, "value");
        assert_close(&at(&doubled), &doubled_sum(x), 1e-12, "summed list");
        let (ex, ews, ecs) = built_lists_grad(x, &ws, &cs);
        assert_close(&at(&gx), &ex, 1e-10, "per-example d/dx");
        let fx = fd_jacobian(&|v: &Tensor| built_lists(v, &ws, &cs), x).reshape(&[d]);
        assert_close(&ex, &fx, 1e-6, "d/dx vs finite differences");
        for l in 0..2 {
            assert_close(&at(&gws[l]), &ews[l], 1e-10, "per-example d/dws");
            assert_close(&at(&gcs[l]), &ecs[l], 1e-10, "per-example d/dcs");
            let fw = fd_element(&|v: &[Tensor]| built_lists(x, v, &cs), &ws, l);
            assert_close(&ews[l], &fw, 1e-6, "d/dws vs finite differences");
            let fc = fd_element(&|v: &[Tensor]| built_lists(x, &ws, v), &cs, l);
            assert_close(&ecs[l], &fc, 1e-6, "d/dcs vs finite differences");
        }
    }
}

/// Parameters of an affine map, for a helper taking them beside a list.
#[derive(Clone, Differentiable)]
struct Affine {
    w: Tensor,
    b: Tensor,
}

#[vmap(in_axes = (None, 0))]
#[grad]
fn listed_affine(l: &Affine, xs: &[Tensor]) -> Tensor {
    (Tensor::stack(xs, 0).matmul(&l.w) + &l.b)
        .tanh()
        .sum_axis(0, false)
}

/// A Jacobian through calls taking a list built from the input, beside a parameter struct
/// and a shared list.
#[jacobian(wrt(x))]
fn listed_out(p: &Affine, x: &Tensor, ws: &[Tensor]) -> Tensor {
    let v = vec![x.clone(), x.sin()];
    listed_affine(p, &v) * x.sum() + layered(&v, ws)
}

/// A Hessian through calls taking a list built from the input, beside a shared list.
#[hessian(wrt(x))]
fn listed_energy(x: &Tensor, ws: &[Tensor]) -> Tensor {
    let v = vec![x.cos(), x * x];
    layered(&v, ws) + layered(ws, &v) * 0.5
}

/// The same energy under `#[grad]`: the reference gradient.
#[grad(wrt(x))]
fn listed_energy_g(x: &Tensor, ws: &[Tensor]) -> Tensor {
    let v = vec![x.cos(), x * x];
    layered(&v, ws) + layered(ws, &v) * 0.5
}

#[test]
fn jacobians_and_hessians_go_through_calls_taking_lists_of_the_input() {
    let d = 3;
    let p = Affine {
        w: normal(200, &[d, d]) * 0.7,
        b: normal(201, &[d]),
    };
    let x = normal(202, &[d]);
    let ws: Vec<Tensor> = (0..2).map(|k| normal(203 + k, &[d, d]) * 0.6).collect();
    let fd = fd_jacobian(&|v: &Tensor| listed_out(&p, v, &ws), &x);
    let fwd = listed_out_jacfwd(&p, &x, &ws);
    assert_eq!(fwd.shape(), &[d, d]);
    assert_close(&fwd, &fd, 1e-6, "jacfwd vs finite differences");
    assert_close(
        &listed_out_jacrev(&p, &x, &ws),
        &fwd,
        1e-12,
        "jacrev vs jacfwd",
    );
    // (a square matrix as the list's other role: `ws` as data needs [d] rows)
    let rows: Vec<Tensor> = (0..2).map(|k| normal(206 + k, &[d, d]) * 0.5).collect();
    assert_close(
        &listed_energy(&x, &rows),
        &listed_energy_g(&x, &rows),
        0.0,
        "the two copies of the energy",
    );
    let h = listed_energy_hessian(&x, &rows);
    let fd = fd_jacobian(&|v: &Tensor| listed_energy_g_grad(v, &rows), &x);
    assert_close(&h, &fd, 1e-6, "hessian vs differences of the gradient");
    assert_close(&h, &h.t().contiguous(), 1e-10, "symmetry");
}

// A Hessian through a list built from the input and iterated: the reverse sweep adds each
// element's adjoint into the list's (forward over reverse once dropped their tangents: a
// wrong, asymmetric Hessian).
twice! {
    fn outer_layers / outer_layers_g (x: &Tensor) -> Tensor {
        let ws = vec![
            x.unsqueeze(1).matmul(&x.unsqueeze(0)) * 0.3,
            x.unsqueeze(1).matmul(&x.sin().unsqueeze(0)),
        ];
        let mut s = x.cos();
        for w in &ws {
            s = s.matmul(w).tanh();
        }
        s.powi(2).sum()
    }
}

#[test]
fn hessians_through_a_list_iterated_in_the_body_match_differences_of_the_gradient() {
    let x = normal(210, &[3]);
    assert_close(
        &outer_layers(&x),
        &outer_layers_g(&x),
        0.0,
        "the two copies",
    );
    let h = outer_layers_hessian(&x);
    let fd = fd_jacobian(&outer_layers_g_grad, &x);
    assert_close(&h, &fd, 1e-6, "hessian vs differences of the gradient");
    assert_close(&h, &h.t().contiguous(), 1e-12, "symmetry");
    let v = normal(211, &[3]);
    assert_close(&outer_layers_hvp(&x, &v), &h.matmul(&v), 1e-12, "hvp");
}
