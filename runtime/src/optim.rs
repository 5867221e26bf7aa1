//! Optimizers over any [`Differentiable`] parameter value: [`Sgd`], [`Momentum`] (heavy
//! ball or Nesterov) and [`Adam`], with optax's update arithmetic.
//!
//! An optimizer updates the parameters in place from their gradient (a value of the same
//! type). Each tensor leaf is updated in one fused pass over its buffer, together with the
//! optimizer's state: no temporaries. A parameter tensor that something else still holds
//! (a clone kept by the caller) is copied once, then written (copy on write); the caller's
//! clone keeps the old values.
//!
//! ```
//! use ferrax_runtime::prelude::*;
//! use ferrax_runtime::optim::{Adam, Optimizer};
//!
//! // minimise (x - 3)^2 over a tensor and a scalar at once
//! let mut params = (Tensor::zeros(&[2], DType::F64), 0.0f64);
//! let mut opt = Adam::new(0.1);
//! for _ in 0..500 {
//!     let grads = ((&params.0 - 3.0) * 2.0, 2.0 * (params.1 - 3.0));
//!     opt.step(&mut params, &grads);
//! }
//! assert!((params.0.to_vec::<f64>()[0] - 3.0).abs() < 1e-3);
//! assert!((params.1 - 3.0).abs() < 1e-3);
//! ```

use std::borrow::Cow;

use rayon::prelude::*;

use crate::cpu::kernels::PAR_THRESHOLD;
use crate::differentiable::{
    Differentiable, Leaf, LeafMut, check_same_structure, leaves, leaves_mut,
};
use crate::element::{DType, Float};
use crate::error::{Result, unwrap};
use crate::tensor::Tensor;

/// Updates parameters of type `P` from their gradients.
pub trait Optimizer<P: Differentiable> {
    /// One update: `params` moves against `grads`. Panics if `grads` (or the optimizer's
    /// state, from earlier steps) does not have `params`' structure, shapes and dtypes;
    /// see [`Optimizer::try_step`].
    #[track_caller]
    fn step(&mut self, params: &mut P, grads: &P) {
        unwrap(self.try_step(params, grads))
    }

    /// [`Optimizer::step`], returning an error instead of panicking. On an error the
    /// parameters and the state are unchanged.
    fn try_step(&mut self, params: &mut P, grads: &P) -> Result<()>;
}

/// Stochastic gradient descent, as `optax.sgd(lr)`: `p <- p + (-lr) * g`.
#[derive(Clone, Debug)]
pub struct Sgd {
    /// The learning rate.
    pub lr: f64,
}

impl Sgd {
    /// SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Sgd {
        Sgd { lr }
    }
}

impl<P: Differentiable> Optimizer<P> for Sgd {
    fn try_step(&mut self, params: &mut P, grads: &P) -> Result<()> {
        update("Sgd::step", params, grads, [], &SgdRule { lr: self.lr })
    }
}

/// SGD with momentum, as `optax.sgd(lr, momentum, nesterov)`: the trace
/// `t <- g + momentum * t`, then `p <- p + (-lr) * t`, or with Nesterov
/// `p <- p + (-lr) * (g + momentum * t)`.
#[derive(Clone, Debug)]
pub struct Momentum<P> {
    /// The learning rate.
    pub lr: f64,
    /// The decay of the trace.
    pub momentum: f64,
    /// Nesterov's look-ahead update instead of the heavy ball's.
    pub nesterov: bool,
    trace: Option<P>,
}

impl<P: Differentiable> Momentum<P> {
    /// Heavy-ball momentum (`nesterov: false`); the trace starts at zero on the first step.
    pub fn new(lr: f64, momentum: f64) -> Momentum<P> {
        Momentum {
            lr,
            momentum,
            nesterov: false,
            trace: None,
        }
    }

    /// Nesterov momentum.
    pub fn nesterov(lr: f64, momentum: f64) -> Momentum<P> {
        Momentum {
            nesterov: true,
            ..Momentum::new(lr, momentum)
        }
    }

    /// The trace (`None` before the first step).
    pub fn trace(&self) -> Option<&P> {
        self.trace.as_ref()
    }
}

impl<P: Differentiable> Optimizer<P> for Momentum<P> {
    fn try_step(&mut self, params: &mut P, grads: &P) -> Result<()> {
        let trace = self.trace.get_or_insert_with(|| params.zeros_like());
        let rule = MomentumRule {
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
        };
        update("Momentum::step", params, grads, [trace], &rule)
    }
}

/// Adam, as `optax.adam(lr, b1, b2, eps)` (with `eps_root = 0`): at step `t` (from 1),
///
/// ```text
/// mu <- (1 - b1) * g + b1 * mu          nu <- (1 - b2) * g^2 + b2 * nu
/// mu_hat = mu / (1 - b1^t)              nu_hat = nu / (1 - b2^t)
/// p <- p + (-lr) * (mu_hat / (sqrt(nu_hat) + eps))
/// ```
///
/// computed in each leaf's own precision.
#[derive(Clone, Debug)]
pub struct Adam<P> {
    /// The learning rate.
    pub lr: f64,
    /// The decay of the first moment (default 0.9).
    pub b1: f64,
    /// The decay of the second moment (default 0.999).
    pub b2: f64,
    /// Added to the root of the second moment (default 1e-8).
    pub eps: f64,
    count: u32,
    moments: Option<(P, P)>,
}

impl<P: Differentiable> Adam<P> {
    /// Adam with optax's defaults: `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-8`.
    pub fn new(lr: f64) -> Adam<P> {
        Adam {
            lr,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            count: 0,
            moments: None,
        }
    }

    /// The same optimizer with decays `b1` and `b2`.
    pub fn with_betas(self, b1: f64, b2: f64) -> Adam<P> {
        Adam { b1, b2, ..self }
    }

    /// The same optimizer with `eps`.
    pub fn with_eps(self, eps: f64) -> Adam<P> {
        Adam { eps, ..self }
    }

    /// The number of steps taken.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The first and second moments (`None` before the first step).
    pub fn moments(&self) -> Option<(&P, &P)> {
        self.moments.as_ref().map(|(m, v)| (m, v))
    }
}

impl<P: Differentiable> Optimizer<P> for Adam<P> {
    fn try_step(&mut self, params: &mut P, grads: &P) -> Result<()> {
        let (mu, nu) = self
            .moments
            .get_or_insert_with(|| (params.zeros_like(), params.zeros_like()));
        let t = self.count.saturating_add(1);
        let rule = AdamRule::new(self.lr, self.b1, self.b2, self.eps, t);
        update("Adam::step", params, grads, [mu, nu], &rule)?;
        self.count = t;
        Ok(())
    }
}

/// The update of one parameter element `p` with gradient `g` and `S` state elements.
trait Rule<const S: usize>: Sync {
    fn apply<T: Float>(&self, p: &mut T, state: [&mut T; S], g: T);
    /// The same update as tensor operations, for tensors off the host (a GPU's).
    fn apply_tensors(&self, p: &Tensor, state: [&Tensor; S], g: &Tensor) -> (Tensor, [Tensor; S]);
}

struct SgdRule {
    lr: f64,
}

impl Rule<0> for SgdRule {
    #[inline]
    fn apply<T: Float>(&self, p: &mut T, _: [&mut T; 0], g: T) {
        *p = *p + T::from_f64(-self.lr) * g;
    }
    fn apply_tensors(&self, p: &Tensor, _: [&Tensor; 0], g: &Tensor) -> (Tensor, [Tensor; 0]) {
        (p + g * -self.lr, [])
    }
}

struct MomentumRule {
    lr: f64,
    momentum: f64,
    nesterov: bool,
}

impl Rule<1> for MomentumRule {
    #[inline]
    fn apply<T: Float>(&self, p: &mut T, [trace]: [&mut T; 1], g: T) {
        let decay = T::from_f64(self.momentum);
        *trace = g + decay * *trace;
        let u = if self.nesterov {
            g + decay * *trace
        } else {
            *trace
        };
        *p = *p + T::from_f64(-self.lr) * u;
    }
    fn apply_tensors(
        &self,
        p: &Tensor,
        [trace]: [&Tensor; 1],
        g: &Tensor,
    ) -> (Tensor, [Tensor; 1]) {
        let trace = g + trace * self.momentum;
        let u = if self.nesterov {
            g + &trace * self.momentum
        } else {
            trace.clone()
        };
        (p + u * -self.lr, [trace])
    }
}

struct AdamRule {
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    /// `b1^t` and `b2^t` in f32 and in f64 (each exact in f64).
    powers_f32: (f64, f64),
    powers_f64: (f64, f64),
}

impl AdamRule {
    fn new(lr: f64, b1: f64, b2: f64, eps: f64, t: u32) -> AdamRule {
        let f32_pow = |b: f64| pow(b as f32, t) as f64;
        AdamRule {
            lr,
            b1,
            b2,
            eps,
            powers_f32: (f32_pow(b1), f32_pow(b2)),
            powers_f64: (pow(b1, t), pow(b2, t)),
        }
    }
}

impl Rule<2> for AdamRule {
    #[inline]
    fn apply<T: Float>(&self, p: &mut T, [mu, nu]: [&mut T; 2], g: T) {
        let (b1, b2) = (T::from_f64(self.b1), T::from_f64(self.b2));
        let (b1_t, b2_t) = if T::DTYPE == DType::F32 {
            self.powers_f32
        } else {
            self.powers_f64
        };
        *mu = T::from_f64(1.0 - self.b1) * g + b1 * *mu;
        *nu = T::from_f64(1.0 - self.b2) * (g * g) + b2 * *nu;
        let mu_hat = *mu / (T::one() - T::from_f64(b1_t));
        let nu_hat = *nu / (T::one() - T::from_f64(b2_t));
        let u = mu_hat / (nu_hat.sqrt() + T::from_f64(self.eps));
        *p = *p + T::from_f64(-self.lr) * u;
    }
    fn apply_tensors(
        &self,
        p: &Tensor,
        [mu, nu]: [&Tensor; 2],
        g: &Tensor,
    ) -> (Tensor, [Tensor; 2]) {
        let (b1_t, b2_t) = if p.dtype() == DType::F32 {
            self.powers_f32
        } else {
            self.powers_f64
        };
        let mu = g * (1.0 - self.b1) + mu * self.b1;
        let nu = g * g * (1.0 - self.b2) + nu * self.b2;
        let mu_hat = &mu / (1.0 - b1_t);
        let nu_hat = &nu / (1.0 - b2_t);
        let u = mu_hat / (nu_hat.sqrt() + self.eps);
        (p + u * -self.lr, [mu, nu])
    }
}

/// `x^n` as optax computes it (XLA's float `power`, under `jit`): correctly rounded for
/// f32 (computed in f64), and libm's `pow` for f64. Not `powi`, whose rounding is
/// unspecified and differs between optimisation levels; a bias correction `1 - b2^t`
/// cancels so many digits that one ulp of `b2^t` shows in the parameters.
fn pow<T: Float>(x: T, n: u32) -> T {
    T::from_f64(libm::pow(Float::to_f64(x), n as f64))
}

/// Applies `rule` to every element of every leaf of `params`, with the matching elements
/// of `grads` and of the `S` state values.
fn update<P: Differentiable, R: Rule<S>, const S: usize>(
    op: &'static str,
    params: &mut P,
    grads: &P,
    states: [&mut P; S],
    rule: &R,
) -> Result<()> {
    let gs = leaves(grads);
    let mut ps = leaves_mut(params);
    check_same_structure(op, &ps, &gs)?;
    let mut states = states.map(|s| leaves_mut(s));
    for s in &states {
        check_same_structure(op, s, &gs)?;
    }
    let mut states = states.each_mut().map(|s| s.drain(..));
    for (p, g) in ps.drain(..).zip(gs) {
        let state: [LeafMut<'_>; S] = std::array::from_fn(|k| match states[k].next() {
            Some(leaf) => leaf,
            None => unreachable!("checked by check_same_structure"),
        });
        if let Leaf::Tensor(t) = &g
            && t.device() != crate::Device::Cpu
        {
            update_leaf_tensors(p, state, t, rule);
            continue;
        }
        match element_dtype(&g) {
            DType::F32 => update_leaf::<f32, R, S>(p, state, g, rule),
            _ => update_leaf::<f64, R, S>(p, state, g, rule),
        }
    }
    Ok(())
}

/// The element type of a (float) leaf.
fn element_dtype(leaf: &Leaf<'_>) -> DType {
    match leaf {
        Leaf::F32(_) => DType::F32,
        Leaf::F64(_) => DType::F64,
        Leaf::Tensor(t) => t.dtype(),
    }
}

/// The float types the optimizers update: how to see a leaf as a slice of them.
trait Elem: Float {
    fn scalar_mut<'a>(leaf: LeafMut<'a>) -> Option<&'a mut Self>;
    fn scalar(leaf: &Leaf<'_>) -> Option<Self>;
}

impl Elem for f32 {
    fn scalar_mut<'a>(leaf: LeafMut<'a>) -> Option<&'a mut f32> {
        match leaf {
            LeafMut::F32(x) => Some(x),
            _ => None,
        }
    }
    fn scalar(leaf: &Leaf<'_>) -> Option<f32> {
        match leaf {
            Leaf::F32(x) => Some(**x),
            _ => None,
        }
    }
}

impl Elem for f64 {
    fn scalar_mut<'a>(leaf: LeafMut<'a>) -> Option<&'a mut f64> {
        match leaf {
            LeafMut::F64(x) => Some(x),
            _ => None,
        }
    }
    fn scalar(leaf: &Leaf<'_>) -> Option<f64> {
        match leaf {
            Leaf::F64(x) => Some(**x),
            _ => None,
        }
    }
}

/// The leaf's elements, mutable: a scalar as a one-element slice, a tensor's own buffer
/// (copied first if it is shared or strided).
fn elements_mut<T: Elem>(leaf: LeafMut<'_>) -> &mut [T] {
    match leaf {
        LeafMut::Tensor(t) => {
            if t.exclusive_buffer::<T>().is_none() {
                *t = Tensor::from_data(t.contiguous_data::<T>().into_owned(), t.shape());
            }
            t.exclusive_buffer::<T>()
                .expect("a fresh contiguous tensor owns its buffer")
        }
        scalar => match T::scalar_mut(scalar) {
            Some(x) => std::slice::from_mut(x),
            None => unreachable!("checked by check_same_structure"),
        },
    }
}

/// The leaf's elements in row-major order.
fn elements<'a, T: Elem>(leaf: &Leaf<'a>) -> Cow<'a, [T]> {
    match leaf {
        Leaf::Tensor(t) => t.contiguous_data::<T>(),
        scalar => match T::scalar(scalar) {
            Some(x) => Cow::Owned(vec![x]),
            None => unreachable!("checked by check_same_structure"),
        },
    }
}

/// The update of a tensor leaf that is not in host memory, by tensor operations (which
/// run where the tensor lives).
fn update_leaf_tensors<'a, R: Rule<S>, const S: usize>(
    p: LeafMut<'a>,
    state: [LeafMut<'a>; S],
    g: &Tensor,
    rule: &R,
) {
    fn as_tensor(leaf: LeafMut<'_>) -> &mut Tensor {
        match leaf {
            LeafMut::Tensor(t) => t,
            _ => unreachable!(
                "checked by check_same_structure: a tensor gradient has a tensor parameter"
            ),
        }
    }
    let p = as_tensor(p);
    let mut state = state.map(as_tensor);
    let (new_p, new_state) = rule.apply_tensors(p, state.each_ref().map(|s| &**s), g);
    *p = new_p;
    for (s, n) in state.iter_mut().zip(new_state) {
        **s = n;
    }
}

fn update_leaf<T: Elem, R: Rule<S>, const S: usize>(
    p: LeafMut<'_>,
    state: [LeafMut<'_>; S],
    g: Leaf<'_>,
    rule: &R,
) {
    if let Leaf::Tensor(t) = g
        && t.numel() == 0
    {
        return;
    }
    let g = elements::<T>(&g);
    let p = elements_mut::<T>(p);
    let state = state.map(elements_mut::<T>);
    let run = |p: &mut [T], mut state: [&mut [T]; S], g: &[T]| {
        for (j, (p, &g)) in p.iter_mut().zip(g).enumerate() {
            rule.apply(p, state.each_mut().map(|s| &mut s[j]), g);
        }
    };
    if p.len() < PAR_THRESHOLD {
        run(p, state, &g);
        return;
    }
    const CHUNK: usize = 1 << 14;
    let mut state = state.map(|s| s.chunks_mut(CHUNK));
    let pieces: Vec<_> = p
        .chunks_mut(CHUNK)
        .zip(g.chunks(CHUNK))
        .map(|(p, g)| {
            let s: [&mut [T]; S] = std::array::from_fn(|k| state[k].next().unwrap_or_default());
            (p, s, g)
        })
        .collect();
    pieces.into_par_iter().for_each(|(p, s, g)| run(p, s, g));
}
