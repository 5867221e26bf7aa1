//! `#[custom_vjp]` and `#[custom_jvp]`: the user's derivative is what every transform uses,
//! directly and through `#[grad]` callers. Checked against central finite differences.

mod common;

use common::{close, fd_grad};
use ferrax::prelude::*;

/// ln(1 + e^x), stable for large x; its derivative (the sigmoid) given by hand.
#[custom_vjp(log1pexp_bwd)]
fn log1pexp(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

fn log1pexp_bwd(x: f64, _out: &f64, ct: f64) -> f64 {
    ct / (1.0 + (-x).exp())
}

#[grad]
fn softplus_mix(x: f64, y: f64) -> f64 {
    log1pexp(x * y) + y.sin()
}

#[test]
fn custom_vjp_scalar_is_used_directly_and_by_callers() {
    // the stable rule: exact where differentiating the formula gives inf / inf
    assert_eq!(log1pexp_grad(1000.0), 1.0);
    assert!(log1pexp_grad(-1000.0).abs() < 1e-300);
    for x in [-3.0, -0.5, 0.0, 0.7, 4.0] {
        let fd = fd_grad(&|v: &[f64]| log1pexp(v[0]), &[x])[0];
        assert!(close(log1pexp_grad(x), fd, 1e-8, 1e-10), "x = {x}");
        let (v, t) = log1pexp_jvp(x, 2.0);
        assert_eq!(v, log1pexp(x));
        assert!(close(t, 2.0 * log1pexp_grad(x), 1e-14, 0.0));
    }
    for (x, y) in [(0.3, -1.2), (2.0, 0.5), (-1.0, 3.0)] {
        let (gx, gy) = softplus_mix_grad(x, y);
        let fd = fd_grad(&|v: &[f64]| softplus_mix(v[0], v[1]), &[x, y]);
        assert!(close(gx, fd[0], 1e-8, 1e-10) && close(gy, fd[1], 1e-8, 1e-10));
        let (_, t) = softplus_mix_jvp(x, y, 0.25, -0.5);
        assert!(close(t, 0.25 * gx - 0.5 * gy, 1e-12, 1e-14));
    }
}

/// The root y of y^3 + y = x, elementwise, by Newton's method on host values: opaque to
/// `#[grad]`. The implicit function theorem gives dy/dx = 1 / (3 y^2 + 1), as both rules.
#[custom_vjp(cubic_root_bwd)]
#[custom_jvp(cubic_root_fwd)]
fn cubic_root(x: &Tensor) -> Tensor {
    let ys: Vec<f64> = x
        .to_vec::<f64>()
        .into_iter()
        .map(|x| {
            let mut y = x.cbrt();
            for _ in 0..60 {
                y -= (y * y * y + y - x) / (3.0 * y * y + 1.0);
            }
            y
        })
        .collect();
    Tensor::from_vec(ys, x.shape())
}

fn slope(y: &Tensor) -> Tensor {
    (y * y * 3.0 + 1.0).recip()
}

fn cubic_root_bwd(_x: &Tensor, y: &Tensor, ct: Tensor) -> Tensor {
    ct * slope(y)
}

fn cubic_root_fwd(x: &Tensor, dx: &Tensor) -> (Tensor, Tensor) {
    let y = cubic_root(x);
    let t = dx * slope(&y);
    (y, t)
}

#[grad]
fn solver_loss(x: &Tensor, w: &Tensor) -> Tensor {
    let y = cubic_root(&(x * w));
    (y * w).sum()
}

/// The same rules with the attributes in the other order.
#[custom_jvp(cubic_root_fwd)]
#[custom_vjp(cubic_root_bwd)]
fn cubic_root_swapped(x: &Tensor) -> Tensor {
    cubic_root(x)
}

fn flat_fd(f: &dyn Fn(&Tensor) -> f64, x: &Tensor) -> Vec<f64> {
    let v = x.to_vec::<f64>();
    fd_grad(&|p: &[f64]| f(&Tensor::from_vec(p.to_vec(), x.shape())), &v)
}

#[test]
fn custom_rules_for_an_opaque_tensor_solver() {
    let x = Tensor::from_vec(vec![0.5, -2.0, 3.0, 10.0, 0.0, -0.1], &[2, 3]);
    let w = Tensor::from_vec(vec![1.5, 0.5, -1.0], &[3]);
    let y = cubic_root(&x).to_vec::<f64>();
    for (y, x) in y.iter().zip(x.to_vec::<f64>()) {
        assert!((y * y * y + y - x).abs() < 1e-12);
    }
    let (gx, gw) = solver_loss_grad(&x, &w);
    let fdx = flat_fd(&|x| solver_loss(x, &w).item::<f64>(), &x);
    let fdw = flat_fd(&|w| solver_loss(&x, w).item::<f64>(), &w);
    for (g, f) in gx.to_vec::<f64>().iter().zip(&fdx) {
        assert!(close(*g, *f, 1e-7, 1e-9), "dx: {g} vs {f}");
    }
    for (g, f) in gw.to_vec::<f64>().iter().zip(&fdw) {
        assert!(close(*g, *f, 1e-7, 1e-9), "dw: {g} vs {f}");
    }
    // forward mode through the custom JVP agrees with reverse mode
    let (dx, dw) = (x.full_like(0.3), w.full_like(-0.7));
    let (_, t) = solver_loss_jvp(&x, &w, &dx, &dw);
    let want = gx.inner(&dx) + gw.inner(&dw);
    assert!(close(t.item::<f64>(), want, 1e-12, 1e-12));
    // both attribute orders give the same functions
    let (ya, ta) = cubic_root_jvp(&x, &dx);
    let (yb, tb) = cubic_root_swapped_jvp(&x, &dx);
    assert_eq!(ya.to_vec::<f64>(), yb.to_vec::<f64>());
    assert_eq!(ta.to_vec::<f64>(), tb.to_vec::<f64>());
    let g = cubic_root_swapped_grad(&x);
    assert_eq!(g.to_vec::<f64>(), slope(&ya).to_vec::<f64>());
}

/// A custom VJP with a tensor output and no JVP: forward mode works for a one-element
/// output and says why it cannot otherwise.
#[custom_vjp(square_bwd)]
fn square(x: &Tensor) -> Tensor {
    x * x
}

fn square_bwd(x: &Tensor, _y: &Tensor, ct: Tensor) -> Tensor {
    ct * x * 2.0
}

#[test]
fn forward_mode_from_a_custom_vjp() {
    let one = Tensor::from_vec(vec![3.0], &[1]);
    let (v, t) = square_jvp(&one, &one.full_like(0.5));
    assert_eq!(
        (v.to_vec::<f64>(), t.to_vec::<f64>()),
        (vec![9.0], vec![3.0])
    );
    let many = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    let err = std::panic::catch_unwind(|| square_jvp(&many, &many)).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("custom VJP only") && msg.contains("2 elements"),
        "{msg}"
    );
}

/// sqrt with its derivative taken as 0 at 0 (not infinity).
#[custom_jvp(safe_sqrt_fwd)]
fn safe_sqrt(x: f64) -> f64 {
    x.sqrt()
}

fn safe_sqrt_fwd(x: f64, dx: f64) -> (f64, f64) {
    let y = x.sqrt();
    (y, if y > 0.0 { dx / (2.0 * y) } else { 0.0 })
}

#[grad]
fn norm2(a: f64, b: f64) -> f64 {
    safe_sqrt(a * a + b * b)
}

#[test]
fn custom_jvp_gives_reverse_mode_too() {
    assert_eq!(norm2(3.0, 4.0), 5.0);
    assert_eq!(safe_sqrt_grad(0.0), 0.0);
    assert_eq!(norm2_grad(0.0, 0.0), (0.0, 0.0));
    let (ga, gb) = norm2_grad(3.0, 4.0);
    assert!(close(ga, 0.6, 1e-15, 0.0) && close(gb, 0.8, 1e-15, 0.0));
    let (v, pb) = safe_sqrt_vjp(9.0);
    assert_eq!((v, pb(2.0)), (3.0, 2.0 / 6.0));
}

/// Parameters named like the tangents the rule's forward mode takes (`dx` for `x`).
#[custom_vjp(shifted_bwd)]
fn shifted(x: f64, dx: f64) -> f64 {
    (x + dx).sin()
}

fn shifted_bwd(x: f64, dx: f64, _out: &f64, ct: f64) -> (f64, f64) {
    let c = ct * (x + dx).cos();
    (c, c)
}

#[test]
fn a_custom_rule_with_a_parameter_named_like_a_tangent() {
    let (x, dx) = (0.3, 0.9);
    let (gx, gdx) = shifted_grad(x, dx);
    let fd = fd_grad(&|v: &[f64]| shifted(v[0], v[1]), &[x, dx]);
    assert!(close(gx, fd[0], 1e-8, 1e-10) && close(gdx, fd[1], 1e-8, 1e-10));
    let (v, t) = shifted_jvp(x, dx, 1.0, 2.0);
    assert_eq!(v, shifted(x, dx));
    assert!(close(t, gx + 2.0 * gdx, 1e-14, 0.0));
}
