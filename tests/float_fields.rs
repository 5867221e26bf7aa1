//! Parameter structs of floats read as they are written: `p.k`, `p.w[i]`, `&p.w`, `for w in
//! &p.w`, `self.k`, without typed `let`s, in functions that take, return and make no tensor
//! (where a field can only be a float, a float sequence or a struct of them). Checked against
//! central finite differences and forward against reverse mode. And, in tensor functions,
//! skipped fields of other types read as their use says: an enum matched on or compared
//! with a variant.

mod common;

use common::{AD_RTOL, FD_RTOL, assert_all_close, fd_grad};
use ferrax::prelude::*;

/// A damped oscillator's coefficients and a forcing pattern.
#[derive(Clone, Debug, Differentiable)]
struct Oscillator {
    k: f64,
    c: f64,
    force: Vec<f64>,
    pair: [f64; 2],
    #[differentiable(skip)]
    steps_per_sample: usize,
}

fn oscillator(p: &[f64]) -> Oscillator {
    Oscillator {
        k: p[0],
        c: p[1],
        force: p[2..5].to_vec(),
        pair: [p[5], p[6]],
        steps_per_sample: 2,
    }
}

fn flat(g: &Oscillator) -> Vec<f64> {
    let mut v = vec![g.k, g.c];
    v.extend(&g.force);
    v.extend(g.pair);
    v
}

#[grad]
fn drag(v: f64, c: f64) -> f64 {
    c * v * v.abs()
}

#[grad]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// A simulation whose state mixes with the fields in a loop (the float fields read as
/// floats, so `v` and `x` stay floats), a field passed on to another `#[grad]` function
/// (`drag(v, p.c)`, `dot(&p.force, ..)`), a Vec field indexed, iterated and zipped, an array
/// field, and an integer field as a bound and cast (`0..p.steps_per_sample`, `p.n as f64`).
#[grad(wrt(p))]
fn mismatch(p: &Oscillator, target: &[f64]) -> f64 {
    let dt = 0.1 / p.steps_per_sample as f64;
    let mut x = 1.0;
    let mut v = 0.0;
    let mut err = 0.0;
    for (t, &y) in target.iter().enumerate() {
        for _ in 0..p.steps_per_sample {
            let a = -p.k * x - drag(v, p.c) + p.force[t % p.force.len()];
            v += a * dt;
            x += v * dt;
        }
        err += (x - y).powi(2);
    }
    let mut reg = 0.0;
    for f in &p.force {
        reg += f * f;
    }
    for (f, y) in p.force.iter().zip(target) {
        reg += 0.1 * f * y;
    }
    err + 0.01 * reg + dot(&p.force, &p.force) * p.pair[0] + p.pair[0] * p.pair[1]
}

const P: [f64; 7] = [2.0, 0.3, 1.0, -0.5, 0.25, 0.4, 0.9];
const TARGET: [f64; 6] = [0.8, 0.5, 0.1, -0.2, -0.3, 0.0];

#[test]
fn float_fields_read_as_written_match_finite_differences() {
    let g = mismatch_grad(&oscillator(&P), &TARGET);
    let want = fd_grad(&|p| mismatch(&oscillator(p), &TARGET), &P);
    assert_all_close(&flat(&g), &want, FD_RTOL, "mismatch_grad");
    assert_eq!(g.steps_per_sample, 2, "a skipped field keeps its value");
}

#[test]
fn float_fields_read_as_written_forward_matches_reverse() {
    let p = oscillator(&P);
    let g = mismatch_grad(&p, &TARGET);
    let dp = oscillator(&[0.3, -1.0, 0.5, 0.2, -0.7, 1.1, 0.6]);
    let (v, t) = mismatch_jvp(&p, &TARGET, &dp);
    assert_eq!(v, mismatch(&p, &TARGET));
    assert_all_close(&[t], &[g.inner(&dp)], AD_RTOL, "mismatch_jvp");
    let (_, pullback) = mismatch_vjp(&p, &TARGET);
    assert_all_close(&flat(&pullback(2.0)), &flat(&g.scale(2.0)), AD_RTOL, "vjp");
}

impl Oscillator {
    /// One term, reading `self`'s fields as written.
    #[grad]
    fn term(&self, x: f64) -> f64 {
        self.k * (x - self.c).powi(2) + self.pair[1] * x
    }

    /// Through another method: its result bound with no type (`let e = self.term(xi);`).
    #[grad]
    fn total(&self, x: &[f64]) -> f64 {
        let mut s = 0.0;
        for (i, &xi) in x.iter().enumerate() {
            let e = self.term(xi);
            s += e * self.force[i];
        }
        s
    }
}

#[test]
fn methods_of_a_struct_of_floats_read_fields_as_written() {
    let x = [0.4, -0.3, 0.9];
    let (gp, gx) = oscillator(&P).total_grad(&x);
    let want = fd_grad(&|p| oscillator(p).total(&x), &P);
    assert_all_close(&flat(&gp), &want, FD_RTOL, "total_grad wrt self");
    let want = fd_grad(&|x| oscillator(&P).total(x), &x);
    assert_all_close(&gx, &want, FD_RTOL, "total_grad wrt x");
}

/// Tensor fields in a function that returns a float and takes no tensor: `.item()` makes a
/// float of a tensor, so the fields are read as tensors (and `.item()` carries no derivative);
/// a float field there is one where Rust says so (a typed `let`, the float returned).
#[derive(Clone, Debug, Differentiable)]
struct Dense {
    w: Tensor,
    scale: f64,
}

#[grad]
fn penalty(d: &Dense) -> f64 {
    let s: f64 = (&d.w * &d.w).sum().item();
    if s > 100.0 {
        return d.scale * 100.0;
    }
    d.scale * s * 0.5
}

#[test]
fn tensor_fields_where_the_function_calls_item_are_tensors() {
    let d = Dense {
        w: Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3]),
        scale: 3.0,
    };
    let g = penalty_grad(&d);
    assert_eq!(penalty(&d), 3.0 * 5.25 * 0.5);
    assert_eq!(
        g.w.to_vec::<f64>(),
        vec![0.0; 3],
        "item() carries no derivative"
    );
    assert_all_close(&[g.scale], &[0.5 * 5.25], AD_RTOL, "penalty wrt scale");
    // the early return
    let big = Dense {
        w: Tensor::from_vec(vec![10.0, -20.0, 5.0], &[3]),
        scale: 3.0,
    };
    assert_eq!(penalty(&big), 300.0);
    assert_eq!(penalty_grad(&big).scale, 100.0);
}

/// A float field of a tensor function, where the macro cannot tell a float field from a
/// tensor one, meeting floats: carried through a loop (`s = s + p.scale`, `s += ..`) and
/// in a typed `let` of an expression (`let k: f64 = 2.0 * p.scale;`). Rust says these are
/// floats, and so does the macro.
#[allow(clippy::assign_op_pattern)] // `s = s + ..` is the form under test (`+=` below)
#[grad]
fn scaled_response(p: &Dense, x: &Tensor) -> Tensor {
    let mut s = 0.0;
    for _ in 0..3 {
        s = s + p.scale;
    }
    let k: f64 = 2.0 * p.scale;
    s += p.scale.sin() * k;
    (x * &p.w * s).tanh().sum()
}

#[test]
fn float_fields_meeting_floats_in_a_tensor_function_match_finite_differences() {
    let (d, x) = (
        Dense {
            w: Tensor::from_vec(vec![0.3, -0.2, 0.5], &[3]),
            scale: 0.7,
        },
        Tensor::from_vec(vec![0.4, 1.1, -0.6], &[3]),
    );
    let dense = |v: &[f64]| Dense {
        w: Tensor::from_vec(v[..3].to_vec(), &[3]),
        scale: v[3],
    };
    let flat = |g: &Dense| {
        let mut v = g.w.to_vec::<f64>();
        v.push(g.scale);
        v
    };
    let at = flat(&d);
    let (g, gx) = scaled_response_grad(&d, &x);
    let want = fd_grad(&|v| scaled_response(&dense(v), &x).item::<f64>(), &at);
    assert_all_close(&flat(&g), &want, FD_RTOL, "scaled_response wrt p");
    let want = fd_grad(
        &|v| scaled_response(&d, &Tensor::from_vec(v.to_vec(), &[3])).item::<f64>(),
        &x.to_vec::<f64>(),
    );
    assert_all_close(&gx.to_vec::<f64>(), &want, FD_RTOL, "scaled_response wrt x");
    for k in 0..4 {
        let mut dv = vec![0.0; 4];
        dv[k] = 1.0;
        let (v, t) = scaled_response_jvp(&d, &x, &dense(&dv), &x.zeros_like());
        assert_eq!(v.item::<f64>(), scaled_response(&d, &x).item::<f64>());
        assert_all_close(&[t.item::<f64>()], &[flat(&g)[k]], AD_RTOL, "jvp vs grad");
    }
}

/// An activation chosen by a skipped enum field.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Relu,
    Tanh,
}

#[derive(Clone, Differentiable)]
struct Net {
    w: Tensor,
    #[differentiable(skip)]
    act: Act,
}

#[grad(wrt(p))]
fn net_loss(p: &Net, x: &Tensor) -> Tensor {
    let h = x.matmul(&p.w);
    let a = match p.act {
        Act::Relu => h.relu(),
        Act::Tanh => h.tanh(),
    };
    let b = if p.act == Act::Tanh {
        a.sin()
    } else {
        a.clone()
    };
    (b * h).sum()
}

#[test]
fn enum_fields_of_a_tensor_struct_are_matched_and_compared() {
    let x = Tensor::normal(Key::new(2), &[4, 3], DType::F64);
    for act in [Act::Relu, Act::Tanh] {
        let p = Net {
            w: Tensor::normal(Key::new(1), &[3, 2], DType::F64),
            act,
        };
        let g = net_loss_grad(&p, &x).w.to_vec::<f64>();
        let f = |w: &[f64]| {
            let q = Net {
                w: Tensor::from_vec(w.to_vec(), &[3, 2]),
                act,
            };
            net_loss(&q, &x).item::<f64>()
        };
        assert_all_close(&g, &fd_grad(&f, &p.w.to_vec::<f64>()), FD_RTOL, "d/dw");
    }
}
