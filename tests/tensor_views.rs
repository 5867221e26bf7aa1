//! The view primitives' derivatives (slice, index_select with repeated indices, concat,
//! stack, transpose, permute): reverse mode against central finite differences in f64,
//! forward mode against `<grad, tangent>`.

use ferrax::prelude::*;
/// Every view primitive at once, on an index with a repeat.
#[grad(wrt(x, y))]
fn f(x: &Tensor, y: &Tensor, idx: &Tensor) -> Tensor {
    let a = x.slice(1, 1, 3).transpose(0, 1);
    let b = x.index_select(0, idx);
    let c = Tensor::concat(&[&b, y], 0);
    let d = Tensor::stack(&[&a.t(), &a.t()], 0);
    c.powi(2).sum() + d.sum() * 3.0 + x.permute(&[1, 0]).matmul(x).sum()
}
fn fd(f: &dyn Fn(&Tensor) -> f64, x: &Tensor) -> Vec<f64> {
    let v = x.to_vec::<f64>();
    (0..v.len())
        .map(|i| {
            let h = 1e-6;
            let mut p = v.clone();
            p[i] += h;
            let mut m = v.clone();
            m[i] -= h;
            (f(&Tensor::from_vec(p, x.shape())) - f(&Tensor::from_vec(m, x.shape()))) / (2.0 * h)
        })
        .collect()
}
#[test]
fn view_primitives_match_finite_differences_and_forward_mode() {
    let x = Tensor::normal(Key::new(1), &[3, 4], DType::F64);
    let y = Tensor::normal(Key::new(2), &[2, 4], DType::F64);
    let idx = Tensor::from_vec(vec![2i32, 0, 2], &[3]);
    let (gx, gy) = f_grad(&x, &y, &idx);
    let fx = fd(&|x| f(x, &y, &idx).item::<f64>(), &x);
    let fy = fd(&|y| f(&x, y, &idx).item::<f64>(), &y);
    for (a, b) in gx.to_vec::<f64>().iter().zip(&fx) {
        assert!((a - b).abs() < 1e-6, "{a} {b}");
    }
    for (a, b) in gy.to_vec::<f64>().iter().zip(&fy) {
        assert!((a - b).abs() < 1e-6, "{a} {b}");
    }
    let (dx, dy) = (x.full_like(0.3), y.full_like(-0.2));
    let (_, t) = f_jvp(&x, &y, &idx, &dx, &dy);
    let want = gx.inner(&dx) + gy.inner(&dy);
    assert!(
        (t.item::<f64>() - want).abs() < 1e-9,
        "{} {want}",
        t.item::<f64>()
    );
}

/// Negative axes, a 3-D permute and a stack along the last axis.
#[grad]
fn g(x: &Tensor) -> Tensor {
    let p = x.permute(&[2, 0, 1]);
    let s = p.slice(-1, 0, 2);
    let j = Tensor::stack(&[&s, &s.tanh()], -1);
    (&j * &j).mean() + Tensor::concat(&[x, &x.sin()], -2).sum_axis(-1, false).max()
}

#[test]
fn views_with_negative_axes() {
    let x = Tensor::normal(Key::new(3), &[2, 3, 4], DType::F64);
    let gx = g_grad(&x);
    let fx = fd(&|x| g(x).item::<f64>(), &x);
    for (a, b) in gx.to_vec::<f64>().iter().zip(&fx) {
        assert!((a - b).abs() < 1e-6, "{a} {b}");
    }
    let dx = Tensor::normal(Key::new(4), &[2, 3, 4], DType::F64);
    let (_, t) = g_jvp(&x, &dx);
    assert!((t.item::<f64>() - gx.inner(&dx)).abs() < 1e-9);
}
/// Integer labels turned one-hot inside the loss (an inactive constant).
#[grad(wrt(logits))]
fn xent(logits: &Tensor, labels: &Tensor) -> Tensor {
    let y = labels.one_hot(3, DType::F64);
    -(logits.log_softmax(1) * y).sum_axis(1, false).mean()
}
#[test]
fn one_hot_labels_inside_a_loss() {
    let l = Tensor::from_vec(vec![0.1f64, 0.2, 0.3, 1.0, 0.0, -1.0], &[2, 3]);
    let lab = Tensor::from_vec(vec![2i32, 0], &[2]);
    let g = xent_grad(&l, &lab);
    let p = l.softmax(1).to_vec::<f64>();
    let want = [
        p[0] / 2.0,
        p[1] / 2.0,
        (p[2] - 1.0) / 2.0,
        (p[3] - 1.0) / 2.0,
        p[4] / 2.0,
        p[5] / 2.0,
    ];
    for (a, b) in g.to_vec::<f64>().iter().zip(want) {
        assert!((a - b).abs() < 1e-12);
    }
    assert!(xent(&l, &lab).item::<f64>() > 0.0);
}

#[grad]
fn dense_tanh(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).tanh()
}

/// A call that passes the caller's `&Tensor` parameters on as they are.
#[grad]
fn calls_dense(x: &Tensor, w: &Tensor) -> Tensor {
    dense_tanh(x, w).sum()
}

/// An early `return` in a function returning a tensor; `flatten` and `contiguous`.
#[grad]
fn early(x: &Tensor, flag: bool) -> Tensor {
    if flag {
        return x.sum();
    }
    (x * x).flatten().contiguous().sum()
}

#[grad]
fn not_scalar(x: &Tensor) -> Tensor {
    x * 2.0
}

#[test]
fn calls_early_returns_and_non_scalar_results() {
    let x = Tensor::normal(Key::new(9), &[2, 3], DType::F64);
    let w = Tensor::normal(Key::new(10), &[3, 2], DType::F64);
    let (gx, gw) = calls_dense_grad(&x, &w);
    for (g, f) in [
        (gx, fd(&|x| calls_dense(x, &w).item::<f64>(), &x)),
        (gw, fd(&|w| calls_dense(&x, w).item::<f64>(), &w)),
    ] {
        for (a, b) in g.to_vec::<f64>().iter().zip(&f) {
            assert!((a - b).abs() < 1e-6, "{a} {b}");
        }
    }
    assert_eq!(early(&x, true).item::<f64>(), x.sum().item::<f64>());
    assert_eq!(early_grad(&x, true).to_vec::<f64>(), vec![1.0; 6]);
    assert_eq!(
        early_grad(&x, false).to_vec::<f64>(),
        (&x * 2.0).to_vec::<f64>()
    );
    // a gradient of a result with several elements is an error, as in JAX
    let err = std::panic::catch_unwind(|| not_scalar_grad(&x)).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("one-element result") && msg.contains("[2, 3]"),
        "{msg}"
    );
    // its pullback takes any cotangent
    assert_eq!(not_scalar(&x).shape(), &[2, 3]);
    let (_, pb) = not_scalar_vjp(&x);
    assert_eq!(pb(x.ones_like()).to_vec::<f64>(), vec![2.0; 6]);
}

#[derive(Clone, Debug, Differentiable)]
struct Layer {
    w: Tensor,
    b: Tensor,
}

#[derive(Clone, Debug, Differentiable)]
struct Net {
    layers: Vec<Layer>,
}

/// A taped loop over hidden layers (its first iteration reversed on its own), then the
/// last layer: zero, one and two trips.
#[grad(wrt(p))]
fn net_loss(p: &Net, x: &Tensor) -> Tensor {
    let last = p.layers.len() - 1;
    let mut h = x.clone();
    for i in 0..last {
        h = (h.matmul(&p.layers[i].w) + &p.layers[i].b).tanh();
    }
    (h.matmul(&p.layers[last].w) + &p.layers[last].b)
        .powi(2)
        .mean()
}

#[test]
fn taped_layer_loops_of_zero_one_and_two_trips() {
    let x = Tensor::normal(Key::new(11), &[4, 3], DType::F64);
    for depth in 1..=3 {
        let layers = (0..depth)
            .map(|k| Layer {
                w: Tensor::normal(Key::new(20 + k), &[3, 3], DType::F64),
                b: Tensor::normal(Key::new(30 + k), &[3], DType::F64),
            })
            .collect();
        let p = Net { layers };
        let g = net_loss_grad(&p, &x);
        for (k, layer) in p.layers.iter().enumerate() {
            let with = |w: &Tensor, b: &Tensor| {
                let mut q = p.clone();
                q.layers[k] = Layer {
                    w: w.clone(),
                    b: b.clone(),
                };
                net_loss(&q, &x).item::<f64>()
            };
            let fw = fd(&|w| with(w, &layer.b), &layer.w);
            let fb = fd(&|b| with(&layer.w, b), &layer.b);
            for (a, f) in g.layers[k].w.to_vec::<f64>().iter().zip(&fw) {
                assert!((a - f).abs() < 1e-6, "depth {depth} w{k}: {a} vs {f}");
            }
            for (a, f) in g.layers[k].b.to_vec::<f64>().iter().zip(&fb) {
                assert!((a - f).abs() < 1e-6, "depth {depth} b{k}: {a} vs {f}");
            }
        }
        let dp = p.scale(0.5);
        let (_, t) = net_loss_jvp(&p, &x, &dp);
        assert!(
            (t.item::<f64>() - g.inner(&dp)).abs() < 1e-9,
            "depth {depth}"
        );
    }
}
