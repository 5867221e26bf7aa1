//! Tensor helpers shared by the tensor test crates: seeded inputs, tolerant comparison,
//! and central finite differences of tensor functions.

use ferrax::prelude::*;

/// A standard normal tensor of `shape`, f64, from `seed`.
pub fn normal(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::normal(Key::new(seed), shape, DType::F64)
}

/// Asserts equal shapes and `|got - want| <= tol * (1 + |want|)` elementwise (NaN matches
/// NaN).
#[track_caller]
pub fn assert_close(got: &Tensor, want: &Tensor, tol: f64, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    for (k, (a, b)) in got
        .to_vec::<f64>()
        .iter()
        .zip(want.to_vec::<f64>())
        .enumerate()
    {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan()),
            "{what}: element {k}: got {a}, want {b}\ngot  {:?}\nwant {:?}",
            got.to_vec::<f64>(),
            want.to_vec::<f64>()
        );
    }
}

/// Central finite differences of `f` at `x`, shaped `[out.., in..]`.
pub fn fd_jacobian(f: &dyn Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let v = x.to_vec::<f64>();
    let y = f(x);
    let (n, m) = (v.len(), y.numel());
    let mut j = vec![0.0; m * n];
    for i in 0..n {
        let h = 1e-6 * (1.0 + v[i].abs());
        let mut p = v.clone();
        p[i] += h;
        let mut q = v.clone();
        q[i] -= h;
        let fp = f(&Tensor::from_vec(p, x.shape())).to_vec::<f64>();
        let fq = f(&Tensor::from_vec(q, x.shape())).to_vec::<f64>();
        for o in 0..m {
            j[o * n + i] = (fp[o] - fq[o]) / (2.0 * h);
        }
    }
    let mut shape = y.shape().to_vec();
    shape.extend(x.shape());
    Tensor::from_vec(j, &shape)
}

/// Central finite differences of `f` with respect to element `l` of the list `ws` (the
/// others held), shaped like that element.
pub fn fd_element(f: &dyn Fn(&[Tensor]) -> Tensor, ws: &[Tensor], l: usize) -> Tensor {
    let g = |v: &Tensor| {
        let mut vs = ws.to_vec();
        vs[l] = v.clone();
        f(&vs)
    };
    fd_jacobian(&g, &ws[l]).reshape(ws[l].shape())
}

/// Example `e` of a batch (along axis 0).
pub fn example(xs: &Tensor, e: usize) -> Tensor {
    xs.slice(0, e, e + 1).squeeze(0)
}

/// The examples of `xs` along `axis`.
pub fn unstack(xs: &Tensor, axis: isize) -> Vec<Tensor> {
    let n = xs.ndim() as isize;
    let a = if axis < 0 { axis + n } else { axis };
    (0..xs.shape()[a as usize])
        .map(|i| xs.slice(a, i, i + 1).squeeze(a))
        .collect()
}
