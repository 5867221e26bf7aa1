//! Activation functions (`softplus`, `gelu`, `silu`, `elu`, ...) under the transforms:
//! the gradient of `act(x).sum()` is `act'(x)` elementwise, checked against the closed
//! forms (at the kinks, JAX's conventions), central differences and forward mode; the
//! transformed functions' values equal the plain ones' bit for bit (the macro lowers each
//! activation to the operations the runtime's method runs), in f32 and f64, on small
//! tensors and on ones large enough for the fused pass; a learnable ELU scale and leaky
//! slope per example against a loop; the second derivative of softplus.

mod common;
use common::tensors::{assert_close, example, fd_jacobian, normal, unstack};

use ferrax::prelude::*;

#[grad]
fn square(x: &Tensor) -> Tensor {
    x.square().sum()
}
#[grad]
fn clamped(x: &Tensor) -> Tensor {
    x.clamp(-1.5, 2.5).sum()
}
#[grad]
fn softplus(x: &Tensor) -> Tensor {
    x.softplus().sum()
}
#[grad]
fn log_sigmoid(x: &Tensor) -> Tensor {
    x.log_sigmoid().sum()
}
#[grad]
fn silu(x: &Tensor) -> Tensor {
    x.silu().sum()
}
#[grad]
fn gelu(x: &Tensor) -> Tensor {
    x.gelu().sum()
}
#[grad]
fn gelu_tanh(x: &Tensor) -> Tensor {
    x.gelu_tanh().sum()
}
#[grad]
fn elu(x: &Tensor) -> Tensor {
    x.elu(0.7).sum()
}
#[grad]
fn selu(x: &Tensor) -> Tensor {
    x.selu().sum()
}
#[grad]
fn leaky_relu(x: &Tensor) -> Tensor {
    x.leaky_relu(0.01).sum()
}
#[grad]
fn softsign(x: &Tensor) -> Tensor {
    x.softsign().sum()
}
#[grad]
fn mish(x: &Tensor) -> Tensor {
    x.mish().sum()
}
#[grad]
fn relu6(x: &Tensor) -> Tensor {
    x.relu6().sum()
}
#[grad]
fn hard_sigmoid(x: &Tensor) -> Tensor {
    x.hard_sigmoid().sum()
}
#[grad]
fn hard_silu(x: &Tensor) -> Tensor {
    x.hard_silu().sum()
}
#[grad]
fn hard_tanh(x: &Tensor) -> Tensor {
    x.hard_tanh().sum()
}

const SELU_ALPHA: f64 = 1.6732632423543772;
const SELU_SCALE: f64 = 1.0507009873554805;
const GELU_K: f64 = 0.7978845608028654;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn softplus_f(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The standard normal distribution function, from the runtime's `erf` (itself checked
/// against a series and tables in the runtime's tests).
fn phi_cdf(x: f64) -> f64 {
    let e = Tensor::from_vec(vec![x / std::f64::consts::SQRT_2], &[1]).erf();
    0.5 * (1.0 + e.to_vec::<f64>()[0])
}

/// `(name, plain, value_and_grad, jvp, value, derivative)`.
type Case = (
    &'static str,
    fn(&Tensor) -> Tensor,
    fn(&Tensor) -> (Tensor, Tensor),
    fn(&Tensor, &Tensor) -> (Tensor, Tensor),
    fn(f64) -> f64,
    fn(f64) -> f64,
);

const CASES: &[Case] = &[
    (
        "square",
        square,
        square_value_and_grad,
        square_jvp,
        |x| x * x,
        |x| 2.0 * x,
    ),
    (
        "clamp",
        clamped,
        clamped_value_and_grad,
        clamped_jvp,
        |x| x.clamp(-1.5, 2.5),
        |x| {
            if x > -1.5 && x < 2.5 { 1.0 } else { 0.0 }
        },
    ),
    (
        "softplus",
        softplus,
        softplus_value_and_grad,
        softplus_jvp,
        |x| (1.0 + x.exp()).ln(),
        sigmoid,
    ),
    (
        "log_sigmoid",
        log_sigmoid,
        log_sigmoid_value_and_grad,
        log_sigmoid_jvp,
        |x| -softplus_f(-x),
        |x| sigmoid(-x),
    ),
    (
        "silu",
        silu,
        silu_value_and_grad,
        silu_jvp,
        |x| x * sigmoid(x),
        |x| {
            let s = sigmoid(x);
            s + x * s * (1.0 - s)
        },
    ),
    (
        "gelu",
        gelu,
        gelu_value_and_grad,
        gelu_jvp,
        |x| x * phi_cdf(x),
        |x| {
            let density = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            phi_cdf(x) + x * density
        },
    ),
    (
        "gelu_tanh",
        gelu_tanh,
        gelu_tanh_value_and_grad,
        gelu_tanh_jvp,
        |x| 0.5 * x * (1.0 + (GELU_K * (x + 0.044715 * x * x * x)).tanh()),
        |x| {
            let t = (GELU_K * (x + 0.044715 * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * 0.044715 * x * x)
        },
    ),
    (
        "elu",
        elu,
        elu_value_and_grad,
        elu_jvp,
        |x| {
            if x > 0.0 { x } else { 0.7 * x.exp_m1() }
        },
        |x| if x > 0.0 { 1.0 } else { 0.7 * x.exp() },
    ),
    (
        "selu",
        selu,
        selu_value_and_grad,
        selu_jvp,
        |x| SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() },
        |x| SELU_SCALE * if x > 0.0 { 1.0 } else { SELU_ALPHA * x.exp() },
    ),
    (
        "leaky_relu",
        leaky_relu,
        leaky_relu_value_and_grad,
        leaky_relu_jvp,
        |x| {
            if x >= 0.0 { x } else { 0.01 * x }
        },
        |x| if x >= 0.0 { 1.0 } else { 0.01 },
    ),
    (
        "softsign",
        softsign,
        softsign_value_and_grad,
        softsign_jvp,
        |x| x / (1.0 + x.abs()),
        |x| 1.0 / (1.0 + x.abs()).powi(2),
    ),
    (
        "mish",
        mish,
        mish_value_and_grad,
        mish_jvp,
        |x| x * softplus_f(x).tanh(),
        |x| {
            let t = softplus_f(x).tanh();
            t + x * (1.0 - t * t) * sigmoid(x)
        },
    ),
    (
        "relu6",
        relu6,
        relu6_value_and_grad,
        relu6_jvp,
        |x| x.clamp(0.0, 6.0),
        |x| {
            if x > 0.0 && x < 6.0 { 1.0 } else { 0.0 }
        },
    ),
    (
        "hard_sigmoid",
        hard_sigmoid,
        hard_sigmoid_value_and_grad,
        hard_sigmoid_jvp,
        |x| (x + 3.0).clamp(0.0, 6.0) / 6.0,
        |x| if x > -3.0 && x < 3.0 { 1.0 / 6.0 } else { 0.0 },
    ),
    (
        "hard_silu",
        hard_silu,
        hard_silu_value_and_grad,
        hard_silu_jvp,
        |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        |x| {
            let slope = if x > -3.0 && x < 3.0 { 1.0 / 6.0 } else { 0.0 };
            (x + 3.0).clamp(0.0, 6.0) / 6.0 + x * slope
        },
    ),
    (
        "hard_tanh",
        hard_tanh,
        hard_tanh_value_and_grad,
        hard_tanh_jvp,
        |x| x.clamp(-1.0, 1.0),
        |x| {
            if (-1.0..=1.0).contains(&x) { 1.0 } else { 0.0 }
        },
    ),
];

/// Every kink of the cases above, points on either side, the saturated tails, and zero.
const POINTS: &[f64] = &[
    -800.0, -40.0, -7.0, -6.0, -3.5, -3.0, -2.0, -1.5, -1.2, -1.0, -0.5, -1e-3, -0.0, 0.0, 1e-3,
    0.5, 1.0, 1.2, 2.0, 2.5, 3.0, 3.5, 6.0, 7.0, 40.0, 800.0,
];

#[test]
fn gradients_are_the_derivatives_at_every_point_and_kink() {
    let x = Tensor::from_vec(POINTS.to_vec(), &[POINTS.len()]);
    for &(name, plain, vag, jvp, value, derivative) in CASES {
        let (v, g) = vag(&x);
        assert_eq!(
            v.item::<f64>().to_bits(),
            plain(&x).item::<f64>().to_bits(),
            "{name}"
        );
        let g = g.to_vec::<f64>();
        for (i, &p) in POINTS.iter().enumerate() {
            let want = derivative(p);
            assert!(
                (g[i] - want).abs() <= 1e-14 * (1.0 + want.abs()),
                "{name}'({p}) = {}, want {want}",
                g[i]
            );
        }
        // forward mode: a one-hot tangent per point gives the same derivative (to rounding:
        // the two modes associate the chain rule's products differently)
        for (i, &p) in POINTS.iter().enumerate() {
            let mut t = vec![0.0; POINTS.len()];
            t[i] = 1.0;
            let (jv, dt) = jvp(&x, &Tensor::from_vec(t, &[POINTS.len()]));
            assert_eq!(
                jv.item::<f64>().to_bits(),
                v.item::<f64>().to_bits(),
                "{name}"
            );
            let d = dt.item::<f64>();
            assert!(
                (d - g[i]).abs() <= 1e-15 * (1.0 + d.abs()),
                "{name}: forward mode at {p}"
            );
        }
        // the runtime's values, each point alone
        for &p in POINTS {
            let got = plain(&Tensor::from_vec(vec![p], &[1])).item::<f64>();
            let want = value(p);
            assert!(
                (got - want).abs() <= 4e-16 * want.abs().max(1.0) || got == want,
                "{name}({p}) = {got}, want {want}"
            );
        }
    }
}

#[test]
fn gradients_match_central_differences_away_from_the_kinks() {
    let x = normal(5, &[4, 6]).mul(&Tensor::from_vec(vec![2.5], &[]));
    for &(name, plain, vag, _, _, _) in CASES {
        let (_, g) = vag(&x);
        let fd = fd_jacobian(&|v: &Tensor| plain(v), &x).reshape(x.shape());
        assert_close(&g, &fd, 1e-7, name);
    }
}

#[test]
fn transformed_values_equal_the_plain_ones_bit_for_bit() {
    // [3, 5] runs op by op, [120, 100] through the fused pass, in the generated code and
    // in the runtime's methods alike
    for shape in [[3usize, 5], [120, 100]] {
        for dtype in [DType::F64, DType::F32] {
            let x = (normal(7, &shape) * 4.0).to_dtype(dtype);
            for &(name, plain, vag, jvp, _, _) in CASES {
                let want = plain(&x);
                let (v, _) = vag(&x);
                let (jv, _) = jvp(&x, &x.ones_like());
                assert_eq!(v.dtype(), dtype, "{name}");
                let bits = |t: &Tensor| t.to_dtype(DType::F64).item::<f64>().to_bits();
                assert_eq!(bits(&v), bits(&want), "{name} {dtype:?} {shape:?}");
                assert_eq!(
                    bits(&jv),
                    bits(&want),
                    "{name} {dtype:?} {shape:?} (forward)"
                );
            }
        }
    }
}

/// A layer with activations whose parameters are learned per example: an ELU's `alpha`
/// and a leaky ReLU's slope, beside GELU and SiLU.
#[vmap(in_axes = (0, None, 0, 0))]
#[grad]
fn layer(x: &Tensor, w: &Tensor, alpha: f64, slope: f64) -> Tensor {
    let h = x.matmul(w);
    let a = h.elu(alpha) + h.leaky_relu(slope) * 0.5;
    (a.gelu() + h.silu().mish()).sum() + h.softplus().log_sigmoid().mean()
}

#[test]
fn learnable_activation_parameters_per_example_match_a_loop_and_differences() {
    let xs = normal(11, &[3, 4, 5]);
    let w = normal(12, &[5, 6]);
    let alphas = Tensor::from_vec(vec![0.5, 1.0, 1.7], &[3]);
    let slopes = Tensor::from_vec(vec![0.01, 0.2, -0.1], &[3]);
    let (gx, gw, ga, gs) = layer_grad_vmap(&xs, &w, &alphas, &slopes);
    let (av, sv) = (alphas.to_vec::<f64>(), slopes.to_vec::<f64>());
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let (ex, ew, ea, es) = layer_grad(x, &w, av[e], sv[e]);
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example dx");
        assert_close(&example(&gw, e), &ew, 1e-12, "per-example dw");
        assert!(
            (ga.to_vec::<f64>()[e] - ea).abs() < 1e-12,
            "per-example dalpha"
        );
        assert!(
            (gs.to_vec::<f64>()[e] - es).abs() < 1e-12,
            "per-example dslope"
        );
        let fd = fd_jacobian(&|v: &Tensor| layer(v, &w, av[e], sv[e]), x).reshape(x.shape());
        assert_close(&ex, &fd, 1e-6, "dx against differences");
        let fd = fd_jacobian(&|v: &Tensor| layer(x, v, av[e], sv[e]), &w).reshape(w.shape());
        assert_close(&ew, &fd, 1e-6, "dw against differences");
        let h = 1e-6;
        let fa = (layer(x, &w, av[e] + h, sv[e]).item::<f64>()
            - layer(x, &w, av[e] - h, sv[e]).item::<f64>())
            / (2.0 * h);
        assert!(
            (ea - fa).abs() < 1e-6 * (1.0 + fa.abs()),
            "dalpha {ea} vs {fa}"
        );
        let fs = (layer(x, &w, av[e], sv[e] + h).item::<f64>()
            - layer(x, &w, av[e], sv[e] - h).item::<f64>())
            / (2.0 * h);
        assert!(
            (es - fs).abs() < 1e-6 * (1.0 + fs.abs()),
            "dslope {es} vs {fs}"
        );
    }
}

#[hessian]
fn softplus_total(x: &Tensor) -> Tensor {
    x.softplus().sum() + x.gelu().sum()
}

#[test]
fn second_derivatives_of_softplus_and_gelu_are_diagonal_and_exact() {
    let x = Tensor::from_vec(vec![-2.0, 0.0, 0.3, 4.0], &[4]);
    let h = softplus_total_hessian(&x).to_vec::<f64>();
    for (i, &p) in [-2.0f64, 0.0, 0.3, 4.0].iter().enumerate() {
        let s = sigmoid(p);
        let density = (-p * p / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        // softplus'' = s (1 - s); gelu'' = (2 - x²) φ(x)
        let want = s * (1.0 - s) + (2.0 - p * p) * density;
        for j in 0..4 {
            let got = h[i * 4 + j];
            let w = if i == j { want } else { 0.0 };
            assert!((got - w).abs() < 1e-14, "H[{i}][{j}] = {got}, want {w}");
        }
    }
    let _ = softplus_total;
}

#[test]
fn activations_of_integer_tensors_are_errors_naming_the_operation() {
    let x = Tensor::from_vec(vec![1i32, 2], &[2]);
    let e = x.try_gelu().unwrap_err().to_string();
    assert!(e.contains("gelu") && e.contains("i32"), "{e}");
    let e = x.try_elu(1.0).unwrap_err().to_string();
    assert!(e.contains("elu"), "{e}");
    let e = x.try_softplus().unwrap_err().to_string();
    assert!(e.contains("softplus"), "{e}");
}

/// Log-space mixing of two tensors, per example, with a shared second operand.
#[vmap(in_axes = (0, None))]
#[grad]
fn mixed(a: &Tensor, b: &Tensor) -> Tensor {
    a.logaddexp(b).sum() + (a * 2.0).logaddexp(&(b - 1.0)).tanh().mean()
}

#[test]
fn logaddexp_weights_each_side_by_its_share_half_at_ties() {
    let a = Tensor::from_vec(vec![0.0, 1.0, -700.0, 3.0, 800.0], &[5]);
    let b = Tensor::from_vec(vec![0.0, -2.0, -699.0, 3.0, -800.0], &[5]);
    let (ga, gb) = mixed_grad(&a, &b);
    let (va, vb) = (a.to_vec::<f64>(), b.to_vec::<f64>());
    let fd = fd_jacobian(&|v: &Tensor| mixed(v, &b), &a).reshape(&[5]);
    assert_close(&ga, &fd, 1e-6, "da against differences");
    let fd = fd_jacobian(&|v: &Tensor| mixed(&a, v), &b).reshape(&[5]);
    assert_close(&gb, &fd, 1e-6, "db against differences");
    // the plain value, and the first term's weights alone
    let (v, _) = mixed_value_and_grad(&a, &b);
    assert_eq!(
        v.item::<f64>().to_bits(),
        mixed(&a, &b).item::<f64>().to_bits()
    );
    let (wa, wb) = first_term_grad(&a, &b);
    for i in 0..5 {
        let s = 1.0 / (1.0 + (vb[i] - va[i]).exp());
        assert!(
            (wa.to_vec::<f64>()[i] - s).abs() < 1e-15,
            "weight of a at {i}"
        );
        assert!(
            (wb.to_vec::<f64>()[i] - (1.0 - s)).abs() < 1e-15,
            "weight of b at {i}"
        );
    }
    assert_eq!(wa.to_vec::<f64>()[0], 0.5);
    let plain = first_term(&a, &b).item::<f64>();
    assert_eq!(plain, a.logaddexp(&b).sum().item::<f64>());
    // per example against a loop
    let xs = normal(61, &[3, 5]);
    let (gx, gbs) = mixed_grad_vmap(&xs, &b);
    let mut total = b.zeros_like();
    for (e, x) in unstack(&xs, 0).iter().enumerate() {
        let (ex, eb) = mixed_grad(x, &b);
        total = &total + &eb;
        assert_close(&example(&gx, e), &ex, 1e-12, "per-example da");
    }
    assert_close(
        &gbs.sum_axis(0, false),
        &total,
        1e-12,
        "summed per-example db",
    );
    // infinities: -inf with -inf is -inf, as JAX's
    let n = Tensor::from_vec(vec![f64::NEG_INFINITY, f64::INFINITY], &[2]);
    assert_eq!(
        n.logaddexp(&n).to_vec::<f64>(),
        vec![f64::NEG_INFINITY, f64::INFINITY]
    );
}

#[grad]
fn first_term(a: &Tensor, b: &Tensor) -> Tensor {
    a.logaddexp(b).sum()
}
