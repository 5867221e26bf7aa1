//! Unary and binary arithmetic, comparisons, `where_`, casts and operators.

use ferrax_runtime::prelude::*;

use crate::{LAYS, SHAPES, check, gpu, laid, tensor};

type Unary = (&'static str, fn(&Tensor) -> Tensor, f32);

const UNARY: &[Unary] = &[
    ("neg", |x| x.neg(), 0.0),
    ("abs", |x| x.abs(), 0.0),
    ("exp", |x| x.exp(), 2e-6),
    ("ln", |x| x.ln(), 2e-6),
    ("log1p", |x| x.log1p(), 2e-6),
    ("expm1", |x| x.expm1(), 2e-6),
    ("sin", |x| x.sin(), 2e-6),
    ("cos", |x| x.cos(), 2e-6),
    ("tan", |x| x.tan(), 1e-5),
    ("tanh", |x| x.tanh(), 2e-6),
    ("sqrt", |x| x.sqrt(), 2e-6),
    ("recip", |x| x.recip(), 1e-6),
    ("sigmoid", |x| x.sigmoid(), 2e-6),
    ("softplus", |x| x.softplus(), 2e-6),
    ("relu", |x| x.relu(), 0.0),
    ("clamp", |x| x.clamp(-0.5, 0.8), 0.0),
    ("sign", |x| x.sign(), 0.0),
    ("powi 3", |x| x.powi(3), 1e-6),
    ("powi -2", |x| x.powi(-2), 1e-6),
    ("powi 0", |x| x.powi(0), 0.0),
    ("powf 0.5", |x| x.powf(0.5), 2e-6),
    ("powf 2", |x| x.powf(2.0), 2e-6),
    ("powf -1.5", |x| x.powf(-1.5), 2e-6),
    ("asin", |x| x.asin(), 2e-6),
    ("acos", |x| x.acos(), 2e-6),
    ("atan", |x| x.atan(), 2e-6),
    ("sinh", |x| x.sinh(), 2e-6),
    ("cosh", |x| x.cosh(), 2e-6),
    ("asinh", |x| x.asinh(), 2e-6),
    ("acosh", |x| x.acosh(), 2e-6),
    ("atanh", |x| x.atanh(), 2e-6),
    ("exp2", |x| x.exp2(), 2e-6),
    ("log2", |x| x.log2(), 2e-6),
    ("log10", |x| x.log10(), 2e-6),
    ("cbrt", |x| x.cbrt(), 2e-6),
    ("floor", |x| x.floor(), 0.0),
    ("ceil", |x| x.ceil(), 0.0),
    ("round", |x| x.round(), 0.0),
    ("trunc", |x| x.trunc(), 0.0),
    ("erf", |x| x.erf(), 2e-6),
    // the activations built from the operations above (one program each)
    ("square", |x| x.square(), 1e-6),
    ("log_sigmoid", |x| x.log_sigmoid(), 2e-6),
    ("silu", |x| x.silu(), 2e-6),
    ("gelu", |x| x.gelu(), 2e-6),
    ("gelu_tanh", |x| x.gelu_tanh(), 4e-6),
    ("elu", |x| x.elu(0.7), 2e-6),
    ("selu", |x| x.selu(), 2e-6),
    ("leaky_relu", |x| x.leaky_relu(0.01), 1e-6),
    ("softsign", |x| x.softsign(), 1e-6),
    ("mish", |x| x.mish(), 4e-6),
    ("relu6", |x| x.relu6(), 0.0),
    ("hard_sigmoid", |x| x.hard_sigmoid(), 1e-6),
    ("hard_silu", |x| x.hard_silu(), 1e-6),
    ("hard_tanh", |x| x.hard_tanh(), 0.0),
];

#[test]
fn unary_ops_match_the_cpu_on_every_layout() {
    let Some(dev) = gpu() else { return };
    for (s, shape) in SHAPES.iter().enumerate() {
        for lay in LAYS {
            let x = laid(shape, s as u64, true, lay);
            for (name, f, tol) in UNARY {
                check(
                    &dev,
                    &format!("{name} {shape:?} {lay:?}"),
                    &[&x],
                    *tol,
                    |t| f(&t[0]),
                );
            }
        }
    }
}

#[test]
fn unary_ops_are_accurate_far_from_zero_and_near_it() {
    let Some(dev) = gpu() else { return };
    let v: Vec<f32> = vec![
        -100.0, -50.0, -20.0, -9.5, -1e-3, -1e-7, 1e-7, 1e-3, 0.3, 0.6, 0.7, 9.5, 20.0, 50.0, 88.0,
        89.0, 100.0,
    ];
    let x = Tensor::from_vec(v.clone(), &[v.len()]);
    for (name, f, tol) in UNARY {
        if *name == "tan" {
            continue; // tan of large arguments depends on the range reduction
        }
        check(&dev, name, &[&x], tol.max(4e-6), |t| f(&t[0]));
    }
}

type Binary = (&'static str, fn(&Tensor, &Tensor) -> Tensor, f32);

const BINARY: &[Binary] = &[
    ("add", |a, b| a.add(b), 0.0),
    ("sub", |a, b| a.sub(b), 0.0),
    ("mul", |a, b| a.mul(b), 0.0),
    ("div", |a, b| a.div(b), 1e-6),
    ("pow", |a, b| a.pow(b), 2e-6),
    ("maximum", |a, b| a.maximum(b), 0.0),
    ("minimum", |a, b| a.minimum(b), 0.0),
    ("atan2", |a, b| a.atan2(b), 2e-6),
];

/// Pairs of shapes that broadcast, including rank mismatch, 0-d and empty axes.
const PAIRS: &[(&[usize], &[usize])] = &[
    (&[4, 5], &[4, 5]),
    (&[4, 5], &[5]),
    (&[4, 5], &[4, 1]),
    (&[4, 5], &[]),
    (&[], &[3, 2]),
    (&[2, 1, 3], &[4, 1]),
    (&[1, 3, 1, 5], &[2, 1, 4, 1]),
    (&[0, 3], &[3]),
    (&[2, 0], &[1, 1]),
    (&[300, 70], &[70]),
    (&[300, 70], &[300, 1]),
];

#[test]
fn binary_ops_broadcast_like_the_cpu() {
    let Some(dev) = gpu() else { return };
    for (p, (sa, sb)) in PAIRS.iter().enumerate() {
        for (la, lb) in LAYS.iter().zip(LAYS.iter().rev()) {
            let a = laid(sa, 2 * p as u64, true, *la);
            let b = laid(sb, 2 * p as u64 + 1, true, *lb);
            for (name, f, tol) in BINARY {
                check(
                    &dev,
                    &format!("{name} {sa:?} {la:?} / {sb:?} {lb:?}"),
                    &[&a, &b],
                    *tol,
                    |t| f(&t[0], &t[1]),
                );
            }
        }
    }
}

#[test]
fn scalar_operands_and_operators_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = laid(&[3, 4], 5, true, crate::Lay::Transposed);
    let y = tensor(&[4], 6, false);
    check(&dev, "x * 2 + 1", &[&x], 0.0, |t| &t[0] * 2.0 + 1.0);
    check(&dev, "1 - x / 4", &[&x], 0.0, |t| 1.0f32 - &t[0] / 4.0);
    check(&dev, "-x", &[&x], 0.0, |t| -&t[0]);
    check(&dev, "owned chain", &[&x, &y], 1e-6, |t| {
        let mut z = (&t[0] * &t[1]) + &t[1];
        z += &t[1];
        z *= 0.5;
        z -= 1.0;
        (z / &t[1]).tanh()
    });
    check(&dev, "mean", &[&x], 1e-6, |t| t[0].mean());
    check(&dev, "mean_axis", &[&x], 1e-6, |t| t[0].mean_axis(0, true));
}

#[test]
fn comparisons_give_masks_on_every_dtype() {
    let Some(dev) = gpu() else { return };
    type Cmp = fn(&Tensor, &Tensor) -> Tensor;
    let cmps: [(&str, Cmp); 6] = [
        ("eq", |a, b| a.eq(b)),
        ("ne", |a, b| a.ne(b)),
        ("lt", |a, b| a.lt(b)),
        ("le", |a, b| a.le(b)),
        ("gt", |a, b| a.gt(b)),
        ("ge", |a, b| a.ge(b)),
    ];
    for (sa, sb) in PAIRS {
        let a = laid(sa, 11, true, crate::Lay::Transposed);
        let b = laid(sb, 12, true, crate::Lay::Contiguous);
        let (ai, bi) = (a.to_dtype(DType::I32), b.to_dtype(DType::I32));
        let (ab, bb) = (a.gt(&a.scalar_like(0.0)), b.gt(&b.scalar_like(0.0)));
        for (name, f) in cmps {
            check(
                &dev,
                &format!("{name} f32 {sa:?} {sb:?}"),
                &[&a, &b],
                0.0,
                |t| f(&t[0], &t[1]),
            );
            check(&dev, &format!("{name} i32"), &[&ai, &bi], 0.0, |t| {
                f(&t[0], &t[1])
            });
            check(&dev, &format!("{name} bool"), &[&ab, &bb], 0.0, |t| {
                f(&t[0], &t[1])
            });
        }
    }
}

#[test]
fn where_broadcasts_all_three_operands() {
    let Some(dev) = gpu() else { return };
    let cases: &[(&[usize], &[usize], &[usize])] = &[
        (&[4, 5], &[4, 5], &[4, 5]),
        (&[4, 1], &[5], &[]),
        (&[], &[2, 3], &[3]),
        (&[2, 1, 3], &[4, 1], &[1, 3]),
        (&[0, 2], &[2], &[1]),
    ];
    for (i, (sm, sa, sb)) in cases.iter().enumerate() {
        let m = laid(sm, i as u64, false, crate::Lay::Sliced).gt(&Tensor::scalar(0.0f32));
        let a = laid(sa, 10 + i as u64, true, crate::Lay::Transposed);
        let b = laid(sb, 20 + i as u64, true, crate::Lay::Stepped);
        check(
            &dev,
            &format!("where {sm:?} {sa:?} {sb:?}"),
            &[&m, &a, &b],
            0.0,
            |t| Tensor::where_(&t[0], &t[1], &t[2]),
        );
        let (ai, bi) = (a.to_dtype(DType::I32), b.to_dtype(DType::I32));
        check(&dev, "where i32", &[&m, &ai, &bi], 0.0, |t| {
            Tensor::where_(&t[0], &t[1], &t[2])
        });
        // a float mask: nonzero is true
        let fm = laid(sm, 30 + i as u64, false, crate::Lay::Sliced).relu();
        check(&dev, "where, float mask", &[&fm, &a, &b], 0.0, |t| {
            Tensor::where_(&t[0], &t[1], &t[2])
        });
    }
}

#[test]
fn casts_follow_the_cpu_rules() {
    let Some(dev) = gpu() else { return };
    let mut v = crate::values(40, 3, true);
    v.extend([1.5, -2.7, 0.0, -0.0, 3e9, -3e9, 2147483520.0]);
    let x = Tensor::from_vec(v, &[47]).slice_step(0, 1, 47, 3);
    for from in [DType::F32, DType::I32, DType::Bool] {
        let src = x.to_dtype(from);
        for to in [DType::F32, DType::I32, DType::Bool] {
            check(&dev, &format!("{from} -> {to}"), &[&src], 0.0, |t| {
                t[0].to_dtype(to)
            });
        }
    }
}

#[test]
fn constructors_like_stay_on_the_device() {
    let Some(dev) = gpu() else { return };
    let x = tensor(&[2, 3], 1, false).to_device(&dev);
    for t in [
        x.zeros_like(),
        x.ones_like(),
        x.full_like(2.5),
        x.scalar_like(-1.0),
    ] {
        assert_eq!(t.device(), dev);
    }
    assert_eq!(x.full_like(2.5).to_vec::<f32>(), vec![2.5; 6]);
    assert_eq!(x.scalar_like(-1.0).item::<f32>(), -1.0);
    let b = Tensor::full_on(&[3], 1.0, DType::Bool, &dev);
    assert_eq!(b.to_vec::<bool>(), vec![true; 3]);
    let i = Tensor::full_on(&[2], -7.9, DType::I32, &dev);
    assert_eq!(i.to_vec::<i32>(), vec![-7, -7]);
    assert_eq!(x.gt(&x.scalar_like(0.0)).device(), dev);
}

#[test]
fn fused_expressions_respect_their_limits_and_share_operands() {
    let Some(dev) = gpu() else { return };
    let xs: Vec<Tensor> = (0..9).map(|k| tensor(&[5, 7], 40 + k, false)).collect();
    let refs: Vec<&Tensor> = xs.iter().collect();
    // more leaves than one kernel binds, each a pending exp()
    check(&dev, "sum of nine", &refs, 1e-5, |t| {
        t.iter()
            .map(|x| (x * 0.1).exp())
            .fold(t[0].zeros_like(), |a, b| a + b)
    });
    // more scalars than one kernel carries
    check(&dev, "thirty scalars", &[&xs[0]], 1e-5, |t| {
        (0..30).fold(t[0].clone(), |a, k| a * 0.99 + k as f64 / 100.0)
    });
    // a pending value used twice, reshaped, broadcast and reduced
    check(&dev, "shared pending", &[&xs[1], &xs[2]], 1e-5, |t| {
        let p = (&t[0] * &t[1]).tanh();
        let q = &p * &p + p.reshape(&[7, 5]).t();
        q + p.slice(0, 1, 2).sum_axis(0, true) + p.sum()
    });
    check(
        &dev,
        "where over fused masks",
        &[&xs[3], &xs[4]],
        0.0,
        |t| {
            let m = t[0]
                .gt(&t[1])
                .to_dtype(DType::F32)
                .gt(&t[0].scalar_like(0.5));
            Tensor::where_(&m, &(&t[0] * 2.0), &t[1].neg())
        },
    );
}

/// The relative error allowed of the inverse trigonometric and hyperbolic functions,
/// exp2, log2, log10, cbrt and erf on the GPU (f32 ulps are 6e-8 to 1.2e-7 of the value).
const GPU_TOL: f64 = 2.5e-7;

/// The GPU's transcendental functions (computed by ferrax's own WGSL, not the driver's
/// builtins, which Vulkan lets be inaccurate) against f64 references, over dense sweeps
/// of their ranges (sin, cos and tan up to 3e38, through both range reductions): relative
/// error within a few f32 ulps.
#[test]
fn transcendental_functions_are_accurate_over_their_ranges() {
    let Some(dev) = gpu() else { return };
    let lin = |lo: f64, hi: f64, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (lo + (hi - lo) * i as f64 / (n - 1) as f64) as f32)
            .collect()
    };
    let log = |lo: f64, hi: f64, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp() as f32)
            .collect()
    };
    let both = |v: Vec<f32>| -> Vec<f32> { v.iter().flat_map(|&x| [x, -x]).collect() };
    // near multiples of pi/2, where the range reduction cancels
    let near_quadrants: Vec<f32> = (1..2000)
        .flat_map(|k| {
            let x = (k as f64 * std::f64::consts::FRAC_PI_2 * 37.0) as f32;
            [
                x,
                f32::from_bits(x.to_bits() + 1),
                f32::from_bits(x.to_bits() - 1),
            ]
        })
        .collect();
    type Case = (
        &'static str,
        fn(&Tensor) -> Tensor,
        fn(f64) -> f64,
        Vec<f32>,
        f64,
    );
    let cases: Vec<Case> = vec![
        (
            "exp",
            |t| t.exp(),
            f64::exp,
            lin(-87.0, 88.7, 40_001),
            2.5e-7,
        ),
        (
            "ln",
            |t| t.ln(),
            f64::ln,
            [log(1e-37, 1e38, 40_001), lin(0.5, 2.0, 20_001)].concat(),
            2.5e-7,
        ),
        (
            "log1p",
            |t| t.log1p(),
            f64::ln_1p,
            [both(log(1e-8, 0.99, 20_001)), log(1.0, 1e30, 10_001)].concat(),
            2.5e-7,
        ),
        (
            "expm1",
            |t| t.expm1(),
            f64::exp_m1,
            both(log(1e-8, 80.0, 20_001)),
            2.5e-7,
        ),
        (
            "sin",
            |t| t.sin(),
            f64::sin,
            [both(log(1e-6, 3e38, 60_001)), near_quadrants.clone()].concat(),
            2.5e-7,
        ),
        (
            "cos",
            |t| t.cos(),
            f64::cos,
            [both(log(1e-6, 3e38, 60_001)), near_quadrants.clone()].concat(),
            2.5e-7,
        ),
        (
            "tan",
            |t| t.tan(),
            f64::tan,
            [both(log(1e-6, 3e38, 60_001)), near_quadrants].concat(),
            4e-7,
        ),
        (
            "tanh",
            |t| t.tanh(),
            f64::tanh,
            both(log(1e-8, 20.0, 20_001)),
            2.5e-7,
        ),
        (
            "sigmoid",
            |t| t.sigmoid(),
            |x| 1.0 / (1.0 + (-x).exp()),
            lin(-80.0, 80.0, 20_001),
            2.5e-7,
        ),
        (
            "softplus",
            |t| t.softplus(),
            |x| x.max(0.0) + (-x.abs()).exp().ln_1p(),
            lin(-120.0, 120.0, 20_001),
            2.5e-7,
        ),
        (
            "powf 0.37",
            |t| t.powf(0.37),
            |x| x.powf(0.37),
            log(1e-30, 1e30, 20_001),
            2.5e-7,
        ),
        (
            "asin",
            |t| t.asin(),
            f64::asin,
            [both(log(1e-8, 1.0, 20_001)), lin(-1.0, 1.0, 20_001)].concat(),
            GPU_TOL,
        ),
        (
            "acos",
            |t| t.acos(),
            f64::acos,
            [both(log(1e-8, 1.0, 20_001)), lin(-1.0, 1.0, 20_001)].concat(),
            GPU_TOL,
        ),
        (
            "atan",
            |t| t.atan(),
            f64::atan,
            both(log(1e-8, 1e30, 40_001)),
            GPU_TOL,
        ),
        (
            "sinh",
            |t| t.sinh(),
            f64::sinh,
            both(log(1e-8, 89.0, 20_001)),
            GPU_TOL,
        ),
        (
            "cosh",
            |t| t.cosh(),
            f64::cosh,
            both(log(1e-8, 89.0, 20_001)),
            GPU_TOL,
        ),
        (
            "asinh",
            |t| t.asinh(),
            f64::asinh,
            both(log(1e-8, 1e30, 40_001)),
            GPU_TOL,
        ),
        (
            "acosh",
            |t| t.acosh(),
            |x| libm::acosh(x),
            [log(1.0 + 1e-7, 1e30, 40_001), lin(1.0, 3.0, 20_001)].concat(),
            GPU_TOL,
        ),
        (
            "atanh",
            |t| t.atanh(),
            f64::atanh,
            [
                both(log(1e-8, 1.0 - 1e-7, 20_001)),
                lin(-0.999, 0.999, 20_001),
            ]
            .concat(),
            GPU_TOL,
        ),
        (
            "exp2",
            |t| t.exp2(),
            f64::exp2,
            lin(-125.0, 127.9, 40_001),
            GPU_TOL,
        ),
        (
            "log2",
            |t| t.log2(),
            f64::log2,
            [log(1e-37, 1e38, 40_001), lin(0.5, 2.0, 20_001)].concat(),
            GPU_TOL,
        ),
        (
            "log10",
            |t| t.log10(),
            f64::log10,
            [log(1e-37, 1e38, 40_001), lin(0.5, 2.0, 20_001)].concat(),
            GPU_TOL,
        ),
        (
            "cbrt",
            |t| t.cbrt(),
            f64::cbrt,
            both(log(1e-37, 1e38, 40_001)),
            GPU_TOL,
        ),
        (
            "erf",
            |t| t.erf(),
            |x| libm::erf(x),
            [both(log(1e-8, 6.0, 20_001)), lin(-4.0, 4.0, 20_001)].concat(),
            GPU_TOL,
        ),
    ];
    // pow is exp(y ln x) in f32: ln's last-bit error grows with |y ln x| (up to 26 here)
    for (name, f, reference, xs, tol) in cases {
        let n = xs.len();
        let got = f(&Tensor::from_vec(xs.clone(), &[n]).to_device(&dev)).to_vec::<f32>();
        let mut worst = (0.0f64, 0.0f32);
        for (&x, &g) in xs.iter().zip(&got) {
            // the f64 reference rounded to f32 (only rounding overflows to inf then)
            let want = reference(x as f64);
            if want.is_infinite() || (want as f32).is_infinite() {
                assert_eq!(g as f64, want as f32 as f64, "{name}({x}): overflow");
                continue;
            }
            // relative to the result, also where it nears 0 by cancellation (sin, cos
            // and tan next to multiples of pi/2)
            let scale = want.abs().max(f64::from(f32::MIN_POSITIVE));
            let mut err = (g as f64 - want).abs() / scale;
            if name.starts_with("pow") {
                err /= (0.37 * (x as f64).ln()).abs().max(1.0);
            }
            if err > worst.0 {
                worst = (err, x);
            }
        }
        eprintln!(
            "{name}: worst relative error {:.2e} at {}",
            worst.0, worst.1
        );
        assert!(
            worst.0 <= tol,
            "{name}: relative error {:.3e} at x = {}",
            worst.0,
            worst.1
        );
    }
}

/// The largest fused kernel: five tensors read through 6-axis strided views (no axes
/// merge) and a dozen scalars, all in one dispatch's parameter slot, and a reduction
/// consuming such an expression.
#[test]
fn the_widest_fused_expression_fits_its_parameters() {
    let Some(dev) = gpu() else { return };
    let shape = [2, 3, 2, 3, 2, 3];
    let views: Vec<Tensor> = (0..5)
        .map(|k| {
            let t = tensor(&[3, 2, 3, 2, 3, 2], 40 + k, false).permute(&[5, 4, 3, 2, 1, 0]);
            assert_eq!(t.shape(), shape);
            t
        })
        .collect();
    let f = |v: &[Tensor]| {
        let mut acc = &v[0] * 1.5 + 0.25;
        for (k, t) in v[1..].iter().enumerate() {
            acc = acc + t * (k as f64 + 2.5) - 0.125 * k as f64;
        }
        (acc * 0.5 + 3.0).tanh()
    };
    let refs: Vec<&Tensor> = views.iter().collect();
    check(
        &dev,
        "five strided views, a dozen scalars",
        &refs,
        1e-5,
        |t| f(t),
    );
    check(&dev, "their sum along an axis", &refs, 1e-5, |t| {
        f(t).sum_axis(2, false)
    });
}

/// From 2^20 elements each thread computes four, `WG` apart (clamped loads, guarded
/// stores): a partial last block, strided and broadcast operands, a strided output
/// (`concat` writes into a slice of its result) and a non-float result.
#[test]
fn large_kernels_compute_several_elements_per_thread() {
    let Some(dev) = gpu() else { return };
    // 1030 x 1031 = 1,061,930 elements: past 2^20, and not a multiple of 4 x 256
    let x = tensor(&[1030, 1031], 80, true);
    let y = tensor(&[1031, 1030], 81, false);
    let b = tensor(&[1031], 82, false);
    check(&dev, "tanh(x * 2 + y^T + b)", &[&x, &y, &b], 2e-6, |t| {
        (&t[0] * 2.0 + t[1].t() + &t[2]).tanh()
    });
    check(&dev, "x > y^T", &[&x, &y], 0.0, |t| {
        t[0].gt(&t[1].t()).to_dtype(DType::F32)
    });
    check(&dev, "concat along columns", &[&x, &y], 2e-6, |t| {
        Tensor::concat(&[&t[0], &t[1].t(), &t[0].exp()], 1)
    });
    check(&dev, "one element past 2^20", &[&x], 0.0, |t| {
        t[0].reshape(&[1030 * 1031])
            .slice(0, 0, (1 << 20) + 1)
            .neg()
    });
}

/// atan2 on the GPU against `f64::atan2` over every quadrant, near the axes and the
/// diagonals, and its special values (signed zeros, infinities, NaN) exactly.
#[test]
fn atan2_is_accurate_in_every_quadrant() {
    let Some(dev) = gpu() else { return };
    let mut ys = Vec::new();
    let mut xs = Vec::new();
    for i in 0..20_000 {
        let angle = (i as f64 / 20_000.0 - 0.5) * 2.0 * std::f64::consts::PI;
        let r = (i % 97) as f64 * 1e3 + 1e-3;
        ys.push((r * angle.sin()) as f32);
        xs.push((r * angle.cos()) as f32);
    }
    for i in 1..2000 {
        let t = (i as f32 * 1e-3).powi(3);
        for (y, x) in [
            (t, 1.0),
            (-t, -1.0),
            (1.0, t),
            (1.0, -t),
            (1.0 + t, 1.0),
            (-1.0, -1.0 - t),
        ] {
            ys.push(y);
            xs.push(x);
        }
    }
    let special = [
        0.0,
        -0.0,
        2.0,
        -2.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    let first_special = ys.len();
    for &y in &special {
        for &x in &special {
            ys.push(y);
            xs.push(x);
        }
    }
    let n = ys.len();
    let ty = Tensor::from_vec(ys.clone(), &[n]).to_device(&dev);
    let tx = Tensor::from_vec(xs.clone(), &[n]).to_device(&dev);
    let got = ty.atan2(&tx).to_vec::<f32>();
    let mut worst = (0.0f64, 0);
    for i in 0..n {
        let want = (ys[i] as f64).atan2(xs[i] as f64);
        let g = got[i];
        if i >= first_special {
            let w = ys[i].atan2(xs[i]);
            assert!(
                (g.is_nan() && w.is_nan()) || (g - w).abs() <= 2.5e-7 * w.abs(),
                "atan2({}, {}): got {g}, want {w}",
                ys[i],
                xs[i]
            );
            continue;
        }
        let err = (g as f64 - want).abs() / want.abs().max(f64::from(f32::MIN_POSITIVE));
        if err > worst.0 {
            worst = (err, i);
        }
    }
    let (err, i) = worst;
    eprintln!(
        "atan2: worst relative error {err:.2e} at ({}, {})",
        ys[i], xs[i]
    );
    assert!(
        err <= GPU_TOL,
        "atan2: relative error {err:.3e} at ({}, {})",
        ys[i],
        xs[i]
    );
}

#[test]
fn logaddexp_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    let a = Tensor::from_vec(
        vec![0.0f32, 50.0, -80.0, f32::NEG_INFINITY, 3.0, 1e-3],
        &[2, 3],
    );
    let b = Tensor::from_vec(
        vec![0.0f32, -50.0, -81.0, f32::NEG_INFINITY, 3.0, -1e-3],
        &[2, 3],
    );
    check(&dev, "logaddexp", &[&a, &b], 2e-6, |t| {
        t[0].logaddexp(&t[1])
    });
    let row = Tensor::from_vec(vec![1.0f32, -2.0, 0.5], &[3]);
    check(&dev, "logaddexp broadcast", &[&a, &row], 2e-6, |t| {
        t[0].logaddexp(&t[1])
    });
}
