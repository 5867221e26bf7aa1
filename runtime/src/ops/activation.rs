//! Activation functions built from elementwise operations (JAX's `jax.nn`, PyTorch's
//! `torch.nn.functional`). Each is one elementwise program ([`fused::eval`]): a single
//! pass over memory on the CPU, the whole-tensor operations one by one elsewhere. The macro
//! lowers each method to the same operations in the same order, so a transformed function
//! computes the values the plain one does, and the derivatives follow from the operations'
//! rules (at the kinks as in JAX: `elu'(0) = alpha`, `leaky_relu'(0) = 1`, `relu6` and
//! `hard_sigmoid` pass no gradient at their corners, `hard_tanh'(±1) = 1`).
//!
//! Only `softplus` (and `sigmoid`, `relu`) are primitives with kernels of their own:
//! `softplus`'s derivative at 0 must be `sigmoid(0) = 1/2`, which no composition of
//! `max`, `abs` and `log1p` gives.

use std::f64::consts::FRAC_1_SQRT_2;

use crate::cpu::kernels::{BinaryOp, CmpOp, UnaryOp};
use crate::error::{Result, unwrap};
use crate::fused::{self, Instr, Leaf, Op};
use crate::tensor::Tensor;

use BinaryOp::{Add, Div, Maximum, Minimum, Mul};
use Op::{Binary as B, Compare as C, Select, Unary as U};

/// `sqrt(2 / pi)`, of the tanh approximation of GELU.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// SELU's constants (Klambauer et al. 2017, as in JAX and PyTorch).
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

// Programs: register 0 is `x`, then the constants listed beside each, then one register
// per instruction.

/// `x * x`; leaves `[x]`.
const SQUARE: &[Instr] = &[Instr(B(Mul), [0, 0, 0])];
/// `-softplus(-x)`; leaves `[x]`.
const LOG_SIGMOID: &[Instr] = &[
    Instr(U(UnaryOp::Neg), [0, 0, 0]),
    Instr(U(UnaryOp::Softplus), [1, 0, 0]),
    Instr(U(UnaryOp::Neg), [2, 0, 0]),
];
/// `x * sigmoid(x)`; leaves `[x]`.
const SILU: &[Instr] = &[
    Instr(U(UnaryOp::Sigmoid), [0, 0, 0]),
    Instr(B(Mul), [0, 1, 0]),
];
/// `x * (0.5 * (1 + erf(x * FRAC_1_SQRT_2)))`; leaves `[x, FRAC_1_SQRT_2, 1, 0.5]`.
const GELU: &[Instr] = &[
    Instr(B(Mul), [0, 1, 0]),
    Instr(U(UnaryOp::Erf), [4, 0, 0]),
    Instr(B(Add), [2, 5, 0]),
    Instr(B(Mul), [3, 6, 0]),
    Instr(B(Mul), [0, 7, 0]),
];
/// `x * (0.5 * (1 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x³))))`; leaves
/// `[x, 0.044715, SQRT_2_OVER_PI, 1, 0.5]`.
const GELU_TANH: &[Instr] = &[
    Instr(U(UnaryOp::Powi(3)), [0, 0, 0]),
    Instr(B(Mul), [1, 5, 0]),
    Instr(B(Add), [0, 6, 0]),
    Instr(B(Mul), [2, 7, 0]),
    Instr(U(UnaryOp::Tanh), [8, 0, 0]),
    Instr(B(Add), [3, 9, 0]),
    Instr(B(Mul), [4, 10, 0]),
    Instr(B(Mul), [0, 11, 0]),
];
/// `select(x > 0, x, alpha * expm1(select(x > 0, 0, x)))` (the inner select keeps
/// `expm1` of a large `x` out of the gradient), then `* scale`; leaves
/// `[x, 0, alpha, scale]`.
const ELU_SCALED: &[Instr] = &[
    Instr(C(CmpOp::Gt), [0, 1, 0]),
    Instr(Select, [4, 1, 0]),
    Instr(U(UnaryOp::Expm1), [5, 0, 0]),
    Instr(B(Mul), [2, 6, 0]),
    Instr(Select, [4, 0, 7]),
    Instr(B(Mul), [3, 8, 0]),
];
/// `select(x >= 0, x, slope * x)`; leaves `[x, 0, slope]`.
const LEAKY_RELU: &[Instr] = &[
    Instr(C(CmpOp::Ge), [0, 1, 0]),
    Instr(B(Mul), [2, 0, 0]),
    Instr(Select, [3, 0, 4]),
];
/// `x / (1 + |x|)`; leaves `[x, 1]`.
const SOFTSIGN: &[Instr] = &[
    Instr(U(UnaryOp::Abs), [0, 0, 0]),
    Instr(B(Add), [1, 2, 0]),
    Instr(B(Div), [0, 3, 0]),
];
/// `x * tanh(softplus(x))`; leaves `[x]`.
const MISH: &[Instr] = &[
    Instr(U(UnaryOp::Softplus), [0, 0, 0]),
    Instr(U(UnaryOp::Tanh), [1, 0, 0]),
    Instr(B(Mul), [0, 2, 0]),
];
/// `min(max(x, 0), 6)`, as `x.clamp(0, 6)` computes it; leaves `[x, 0, 6]`.
const RELU6: &[Instr] = &[Instr(B(Maximum), [0, 1, 0]), Instr(B(Minimum), [3, 2, 0])];
/// `x * (min(max(x + 3, 0), 6) / 6)`; leaves `[x, 3, 0, 6]`. Without the last instruction:
/// `hard_sigmoid`.
const HARD_SILU: &[Instr] = &[
    Instr(B(Add), [0, 1, 0]),
    Instr(B(Maximum), [4, 2, 0]),
    Instr(B(Minimum), [5, 3, 0]),
    Instr(B(Div), [6, 3, 0]),
    Instr(B(Mul), [0, 7, 0]),
];
/// `select(x > 1, 1, select(x < -1, -1, x))`; leaves `[x, 1, -1]`.
const HARD_TANH: &[Instr] = &[
    Instr(C(CmpOp::Lt), [0, 2, 0]),
    Instr(Select, [3, 2, 0]),
    Instr(C(CmpOp::Gt), [0, 1, 0]),
    Instr(Select, [5, 1, 4]),
];

/// `max(a, b) + softplus(-|a - b|)`, or `a + b` where `a - b` is NaN (both infinite of
/// one sign, as JAX's `logaddexp`); leaves `[a, b]`.
const LOG_ADD_EXP: &[Instr] = &[
    Instr(B(Maximum), [0, 1, 0]),
    Instr(B(BinaryOp::Sub), [0, 1, 0]),
    Instr(U(UnaryOp::Abs), [3, 0, 0]),
    Instr(U(UnaryOp::Neg), [4, 0, 0]),
    Instr(U(UnaryOp::Softplus), [5, 0, 0]),
    Instr(B(Add), [2, 6, 0]),
    Instr(C(CmpOp::Ne), [3, 3, 0]),
    Instr(B(Add), [0, 1, 0]),
    Instr(Select, [8, 9, 7]),
];

impl Tensor {
    /// Elementwise `ln(e^a + e^b)` without overflow (`jnp.logaddexp`), broadcasting.
    /// Panics for shapes that do not broadcast or mixed dtypes; see
    /// [`Tensor::try_logaddexp`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![1000.0f64, 0.0, f64::NEG_INFINITY], &[3]);
    /// let b = Tensor::from_vec(vec![1000.0f64, -800.0, f64::NEG_INFINITY], &[3]);
    /// let y = a.logaddexp(&b).to_vec::<f64>();
    /// assert_eq!(y, vec![1000.0 + std::f64::consts::LN_2, 0.0, f64::NEG_INFINITY]);
    /// ```
    #[track_caller]
    pub fn logaddexp(&self, other: &Tensor) -> Tensor {
        unwrap(self.try_logaddexp(other))
    }

    /// [`Tensor::logaddexp`], returning an error instead of panicking.
    pub fn try_logaddexp(&self, other: &Tensor) -> Result<Tensor> {
        Tensor::expect_same_float("logaddexp", self, other)?;
        fused::eval(
            "logaddexp",
            &[Leaf::Tensor(self), Leaf::Tensor(other)],
            LOG_ADD_EXP,
        )
    }

    fn activation(&self, name: &'static str, consts: &[f64], program: &[Instr]) -> Result<Tensor> {
        let mut leaves = vec![Leaf::Tensor(self)];
        leaves.extend(consts.iter().map(|&c| Leaf::Scalar(c)));
        fused::eval(name, &leaves, program)
    }
}

macro_rules! activations {
    ($(
        $(#[$doc:meta])*
        $name:ident, $try_name:ident ($($arg:ident),*) => $consts:expr, $program:expr;
    )*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(&self $(, $arg: f64)*) -> Tensor {
                    unwrap(self.$try_name($($arg),*))
                }

                #[doc = concat!("[`Tensor::", stringify!($name), "`], returning an error for a non-float tensor.")]
                pub fn $try_name(&self $(, $arg: f64)*) -> Result<Tensor> {
                    self.activation(stringify!($name), &$consts, $program)
                }
            )*
        }
    };
}

activations! {
    /// Elementwise `x * x`. Panics for a non-float tensor; see [`Tensor::try_square`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![-3.0f32, 0.5], &[2]);
    /// assert_eq!(x.square().to_vec::<f32>(), vec![9.0, 0.25]);
    /// ```
    square, try_square() => [], SQUARE;
    /// Elementwise `ln(sigmoid(x)) = -softplus(-x)`, without overflow or cancellation
    /// (`jax.nn.log_sigmoid`). Panics for a non-float tensor; see
    /// [`Tensor::try_log_sigmoid`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![0.0f64, -800.0], &[2]);
    /// assert_eq!(x.log_sigmoid().to_vec::<f64>(), vec![-std::f64::consts::LN_2, -800.0]);
    /// ```
    log_sigmoid, try_log_sigmoid() => [], LOG_SIGMOID;
    /// Elementwise SiLU (swish) `x * sigmoid(x)` (`jax.nn.silu`). Panics for a non-float
    /// tensor; see [`Tensor::try_silu`].
    silu, try_silu() => [], SILU;
    /// Elementwise GELU, exact: `x * Φ(x) = x * (0.5 * (1 + erf(x / √2)))` (PyTorch's
    /// default, `jax.nn.gelu(x, approximate=False)`). Panics for a non-float tensor; see
    /// [`Tensor::try_gelu`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![0.0f64, 1.0], &[2]);
    /// let y = x.gelu().to_vec::<f64>();
    /// assert_eq!(y[0], 0.0);
    /// assert!((y[1] - 0.8413447460685429).abs() < 1e-15);
    /// ```
    gelu, try_gelu() => [FRAC_1_SQRT_2, 1.0, 0.5], GELU;
    /// Elementwise GELU by its tanh approximation,
    /// `x * 0.5 * (1 + tanh(√(2/π) * (x + 0.044715 x³)))` (`jax.nn.gelu`'s default,
    /// PyTorch's `approximate="tanh"`). Panics for a non-float tensor; see
    /// [`Tensor::try_gelu_tanh`].
    gelu_tanh, try_gelu_tanh() => [0.044715, SQRT_2_OVER_PI, 1.0, 0.5], GELU_TANH;
    /// Elementwise ELU: `x` above 0, `alpha * (e^x - 1)` elsewhere (`jax.nn.elu`). Panics
    /// for a non-float tensor; see [`Tensor::try_elu`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![2.0f64, 0.0, -1000.0], &[3]);
    /// assert_eq!(x.elu(0.5).to_vec::<f64>(), vec![2.0, 0.0, -0.5]);
    /// ```
    elu, try_elu(alpha) => [0.0, alpha, 1.0], &ELU_SCALED[..5];
    /// Elementwise SELU, `scale * elu(x, alpha)` with the self-normalising constants
    /// `alpha ≈ 1.6733`, `scale ≈ 1.0507` (`jax.nn.selu`). Panics for a non-float tensor;
    /// see [`Tensor::try_selu`].
    selu, try_selu() => [0.0, SELU_ALPHA, SELU_SCALE], ELU_SCALED;
    /// Elementwise leaky ReLU: `x` from 0 up, `slope * x` below (`jax.nn.leaky_relu`;
    /// JAX's and PyTorch's default slope is 0.01). Panics for a non-float tensor; see
    /// [`Tensor::try_leaky_relu`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![3.0f32, -2.0], &[2]);
    /// assert_eq!(x.leaky_relu(0.25).to_vec::<f32>(), vec![3.0, -0.5]);
    /// ```
    leaky_relu, try_leaky_relu(slope) => [0.0, slope], LEAKY_RELU;
    /// Elementwise softsign `x / (1 + |x|)` (`jax.nn.soft_sign`). Panics for a non-float
    /// tensor; see [`Tensor::try_softsign`].
    softsign, try_softsign() => [1.0], SOFTSIGN;
    /// Elementwise Mish `x * tanh(softplus(x))` (`jax.nn.mish`). Panics for a non-float
    /// tensor; see [`Tensor::try_mish`].
    mish, try_mish() => [], MISH;
    /// Elementwise `min(max(x, 0), 6)` (`jax.nn.relu6`; no gradient at 0 and 6). Panics for
    /// a non-float tensor; see [`Tensor::try_relu6`].
    relu6, try_relu6() => [0.0, 6.0], RELU6;
    /// Elementwise `relu6(x + 3) / 6` (`jax.nn.hard_sigmoid`). Panics for a non-float
    /// tensor; see [`Tensor::try_hard_sigmoid`].
    hard_sigmoid, try_hard_sigmoid() => [3.0, 0.0, 6.0], &HARD_SILU[..4];
    /// Elementwise `x * hard_sigmoid(x)` (`jax.nn.hard_silu`, hard swish). Panics for a
    /// non-float tensor; see [`Tensor::try_hard_silu`].
    hard_silu, try_hard_silu() => [3.0, 0.0, 6.0], HARD_SILU;
    /// Elementwise `x` clamped to `[-1, 1]` (`jax.nn.hard_tanh`: the gradient is 1 at ±1).
    /// Panics for a non-float tensor; see [`Tensor::try_hard_tanh`].
    hard_tanh, try_hard_tanh() => [1.0, -1.0], HARD_TANH;
}
