//! [`Differentiable`]: the tangent/cotangent algebra of the values `#[grad]` differentiates,
//! and [`unbroadcast`], the adjoint of broadcasting that VJP rules use.
//!
//! A differentiable value is a tree whose leaves are `f32`, `f64` or float [`Tensor`]s:
//! floats and tensors themselves, `Vec<T>`, `[T; N]`, tuples, and structs with
//! `#[derive(Differentiable)]`. Its tangents and cotangents (gradients) have the same
//! type, so a gradient of a parameter struct is that struct. The algebra they need —
//! zeros of the same structure, sums, scaling — is written once here over the leaves: a
//! type only says how to list its leaves ([`Differentiable::leaves`] and
//! [`Differentiable::leaves_mut`], in the same order), and everything else, the
//! optimizers of [`crate::optim`] included, walks those lists.
//!
//! ```
//! use ferrax_runtime::prelude::*;
//!
//! let g = (Tensor::ones(&[2], DType::F32), vec![1.0f64, 2.0]);
//! let h = g.add(&g.scale(0.5));
//! assert_eq!(h.0.to_vec::<f32>(), vec![1.5, 1.5]);
//! assert_eq!(h.1, vec![1.5, 3.0]);
//! assert_eq!(g.zeros_like().1, vec![0.0, 0.0]);
//! ```

use crate::error::{Error, Result, unwrap};
use crate::tensor::Tensor;

/// A leaf of a differentiable value, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum Leaf<'a> {
    /// An `f32` scalar.
    F32(&'a f32),
    /// An `f64` scalar.
    F64(&'a f64),
    /// A tensor (f32 or f64).
    Tensor(&'a Tensor),
}

/// A leaf of a differentiable value, borrowed mutably.
#[derive(Debug)]
pub enum LeafMut<'a> {
    /// An `f32` scalar.
    F32(&'a mut f32),
    /// An `f64` scalar.
    F64(&'a mut f64),
    /// A tensor (f32 or f64).
    Tensor(&'a mut Tensor),
}

impl Leaf<'_> {
    /// What the leaf is, for error messages: `f32`, `f64` or `Tensor f32[2, 3]`.
    pub fn describe(&self) -> String {
        match self {
            Leaf::F32(_) => "f32".into(),
            Leaf::F64(_) => "f64".into(),
            Leaf::Tensor(t) => format!("Tensor {}{:?}", t.dtype(), t.shape()),
        }
    }
}

impl LeafMut<'_> {
    /// The same leaf, borrowed immutably.
    pub fn as_leaf(&self) -> Leaf<'_> {
        match self {
            LeafMut::F32(x) => Leaf::F32(x),
            LeafMut::F64(x) => Leaf::F64(x),
            LeafMut::Tensor(t) => Leaf::Tensor(t),
        }
    }
}

/// A value with a tangent space: tangents and cotangents of a `T` are `T`s, combined leaf
/// by leaf. See the [module docs](self).
///
/// Implement it with `#[derive(Differentiable)]` (from `ferrax`); by hand, list the leaves
/// of every differentiable field in the same order in both methods, and leave constant
/// fields out (they are then cloned from the first operand and never added or scaled).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `Differentiable`",
    label = "not a differentiable type",
    note = "differentiable values are f32, f64, Tensor, Vec, arrays and tuples of them, and structs with #[derive(Differentiable)]; mark a constant field #[differentiable(skip)], or leave a struct of constants out of `#[grad(wrt(..))]` to read its fields as plain values"
)]
pub trait Differentiable: Clone {
    /// Appends the leaves, in a fixed order.
    fn leaves<'a>(&'a self, out: &mut Vec<Leaf<'a>>);

    /// Appends the leaves mutably, in the same order as [`Differentiable::leaves`].
    fn leaves_mut<'a>(&'a mut self, out: &mut Vec<LeafMut<'a>>);

    /// Whether the field `name` is marked `#[differentiable(skip)]` (a constant that no
    /// derivative flows into). `#[derive(Differentiable)]` answers for its struct.
    #[doc(hidden)]
    fn is_skipped_field(&self, name: &str) -> bool {
        let _ = name;
        false
    }

    /// The number of leaves.
    fn num_leaves(&self) -> usize {
        let mut v = Vec::new();
        self.leaves(&mut v);
        v.len()
    }

    /// Computes every tensor leaf now and waits until all are done, with one wait per
    /// device: on a GPU, each tensor's [`Tensor::eval`] would wait for the GPU once per
    /// leaf. Panics on a GPU failure; see [`Differentiable::try_eval`].
    ///
    /// ```
    /// use ferrax_runtime::prelude::*;
    ///
    /// let dev = Device::gpu().unwrap_or(Device::Cpu);
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).to_device(&dev);
    /// let step = ((&x * 2.0).exp(), vec![x.tanh(), x.sin()]);
    /// step.eval(); // everything computed, one wait
    /// ```
    #[track_caller]
    fn eval(&self) {
        unwrap(self.try_eval())
    }

    /// [`Differentiable::eval`], returning an error for a GPU failure.
    fn try_eval(&self) -> Result<()> {
        let all = leaves(self);
        // pending GPU leaves computed together, several to a kernel
        #[cfg(feature = "gpu")]
        {
            let on_gpu: Vec<&crate::gpu::GpuStorage> = all
                .iter()
                .filter_map(|leaf| match leaf {
                    Leaf::Tensor(t) => match &*t.storage {
                        crate::storage::Storage::Gpu(g) => Some(g),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            crate::gpu::GpuStorage::compute_together("eval", &on_gpu)?;
        }
        let mut devices: Vec<crate::Device> = Vec::new();
        for leaf in all {
            if let Leaf::Tensor(t) = leaf {
                let d = t.record("eval")?;
                if d.is_gpu() && !devices.contains(&d) {
                    devices.push(d);
                }
            }
        }
        devices.iter().try_for_each(crate::Device::synchronize)
    }

    /// The zero of the same structure: every leaf zero, with its shape and dtype.
    fn zeros_like(&self) -> Self {
        let mut z = self.clone();
        for leaf in leaves_mut(&mut z) {
            match leaf {
                LeafMut::F32(x) => *x = 0.0,
                LeafMut::F64(x) => *x = 0.0,
                LeafMut::Tensor(t) => *t = t.zeros_like(),
            }
        }
        z
    }

    /// `self + other`, leaf by leaf. Panics if the structures, shapes or dtypes differ;
    /// see [`Differentiable::try_add`].
    #[track_caller]
    fn add(&self, other: &Self) -> Self {
        unwrap(self.try_add(other))
    }

    /// [`Differentiable::add`], returning an error instead of panicking.
    fn try_add(&self, other: &Self) -> Result<Self> {
        let mut sum = self.clone();
        sum.try_add_assign(other)?;
        Ok(sum)
    }

    /// `self += other`, leaf by leaf; a tensor that nobody else holds is updated in its
    /// own buffer. Panics if the structures, shapes or dtypes differ; see
    /// [`Differentiable::try_add_assign`].
    #[track_caller]
    fn add_assign(&mut self, other: &Self) {
        unwrap(self.try_add_assign(other))
    }

    /// [`Differentiable::add_assign`], returning an error instead of panicking. On an
    /// error, no leaf has been changed.
    fn try_add_assign(&mut self, other: &Self) -> Result<()> {
        const OP: &str = "Differentiable::add";
        let theirs = leaves(other);
        let mut ours = leaves_mut(self);
        check_same_structure(OP, &ours, &theirs)?;
        for (a, b) in ours.iter_mut().zip(&theirs) {
            match (a, b) {
                (LeafMut::F32(a), Leaf::F32(b)) => **a += **b,
                (LeafMut::F64(a), Leaf::F64(b)) => **a += **b,
                (LeafMut::Tensor(a), Leaf::Tensor(b)) => **a += *b,
                _ => unreachable!("checked by check_same_structure"),
            }
        }
        Ok(())
    }

    /// `s * self`, leaf by leaf (`s` rounds to f32 for f32 leaves).
    fn scale(&self, s: f64) -> Self {
        let mut out = self.clone();
        out.scale_assign(s);
        out
    }

    /// `self *= s`, leaf by leaf, in place where a tensor has no other owner.
    fn scale_assign(&mut self, s: f64) {
        for leaf in leaves_mut(self) {
            match leaf {
                LeafMut::F32(x) => *x *= s as f32,
                LeafMut::F64(x) => *x *= s,
                LeafMut::Tensor(t) => *t *= s,
            }
        }
    }

    /// The sum over leaves of `sum(a * b)`: the inner product of two values of the same
    /// structure, as f64 (used to check JVPs against VJPs: `<v, J u> = <J^T v, u>`).
    /// Panics if the structures differ.
    #[track_caller]
    fn inner(&self, other: &Self) -> f64 {
        let (a, b) = (leaves(self), leaves(other));
        unwrap(check_same_structure_ref("Differentiable::inner", &a, &b));
        a.iter()
            .zip(&b)
            .map(|(a, b)| match (a, b) {
                (Leaf::F32(a), Leaf::F32(b)) => (**a as f64) * (**b as f64),
                (Leaf::F64(a), Leaf::F64(b)) => **a * **b,
                (Leaf::Tensor(a), Leaf::Tensor(b)) => {
                    // in f64 on the host (a GPU has no f64)
                    let host = |t: &Tensor| t.to_device(&crate::Device::Cpu);
                    let a = host(a).to_dtype(crate::DType::F64);
                    let b = host(b).to_dtype(crate::DType::F64);
                    (&a * &b).sum().item::<f64>()
                }
                _ => unreachable!("checked by check_same_structure_ref"),
            })
            .sum()
    }
}

/// The leaves of `x`, in order (see [`Differentiable::leaves`]).
pub fn leaves<T: Differentiable>(x: &T) -> Vec<Leaf<'_>> {
    let mut v = Vec::new();
    x.leaves(&mut v);
    v
}

/// The leaves of `x`, mutably, in order (see [`Differentiable::leaves_mut`]).
pub fn leaves_mut<T: Differentiable>(x: &mut T) -> Vec<LeafMut<'_>> {
    let mut v = Vec::new();
    x.leaves_mut(&mut v);
    v
}

/// Checks that two leaf lists pair up: same length, same kinds, same tensor shapes and
/// dtypes. `op` names the operation in the error.
pub fn check_same_structure(
    op: &'static str,
    ours: &[LeafMut<'_>],
    theirs: &[Leaf<'_>],
) -> Result<()> {
    let ours: Vec<Leaf<'_>> = ours.iter().map(LeafMut::as_leaf).collect();
    check_same_structure_ref(op, &ours, theirs)
}

/// [`check_same_structure`] for two immutable leaf lists.
pub fn check_same_structure_ref(op: &'static str, a: &[Leaf<'_>], b: &[Leaf<'_>]) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::InvalidArgument {
            op,
            message: format!(
                "the operands have different structures ({} leaves and {} leaves)",
                a.len(),
                b.len()
            ),
        });
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let same = match (x, y) {
            (Leaf::F32(_), Leaf::F32(_)) | (Leaf::F64(_), Leaf::F64(_)) => true,
            (Leaf::Tensor(x), Leaf::Tensor(y)) => {
                if x.dtype() == y.dtype() && x.shape() != y.shape() {
                    return Err(Error::ShapeMismatch {
                        op,
                        lhs: x.shape().to_vec(),
                        rhs: y.shape().to_vec(),
                        reason: format!(
                            "differ (leaf {i}; tangents must have their primal's shape)"
                        ),
                    });
                }
                x.dtype() == y.dtype() && x.dtype().is_float()
            }
            _ => false,
        };
        if !same {
            return Err(Error::InvalidArgument {
                op,
                message: format!(
                    "leaf {i} is {} in one operand and {} in the other (float leaves of the same dtype expected)",
                    x.describe(),
                    y.describe()
                ),
            });
        }
    }
    Ok(())
}

/// The adjoint of broadcasting a value of shape `shape` to `cotangent`'s shape: sums the
/// cotangent over the axes broadcasting added or stretched, giving a tensor of `shape`.
/// VJP rules of broadcasting operations apply it to each operand's cotangent. Panics if
/// `shape` does not broadcast to the cotangent's shape; see [`try_unbroadcast`].
///
/// ```
/// # use ferrax_runtime::prelude::*;
/// use ferrax_runtime::differentiable::unbroadcast;
/// // x: [3] was broadcast against [2, 3]; its cotangent sums over the new axis.
/// let ct = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
/// assert_eq!(unbroadcast(&ct, &[3]).to_vec::<f32>(), vec![5.0, 7.0, 9.0]);
/// assert_eq!(unbroadcast(&ct, &[2, 1]).to_vec::<f32>(), vec![6.0, 15.0]);
/// assert_eq!(unbroadcast(&ct, &[2, 3]).shape(), &[2, 3]); // no broadcast: unchanged
/// ```
#[track_caller]
pub fn unbroadcast(cotangent: &Tensor, shape: &[usize]) -> Tensor {
    unwrap(try_unbroadcast(cotangent, shape))
}

/// [`unbroadcast`], returning an error instead of panicking.
pub fn try_unbroadcast(cotangent: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if cotangent.shape() == shape {
        return Ok(cotangent.clone());
    }
    cotangent.try_sum_to_shape(shape)
}

impl Differentiable for f32 {
    fn leaves<'a>(&'a self, out: &mut Vec<Leaf<'a>>) {
        out.push(Leaf::F32(self));
    }
    fn leaves_mut<'a>(&'a mut self, out: &mut Vec<LeafMut<'a>>) {
        out.push(LeafMut::F32(self));
    }
}

impl Differentiable for f64 {
    fn leaves<'a>(&'a self, out: &mut Vec<Leaf<'a>>) {
        out.push(Leaf::F64(self));
    }
    fn leaves_mut<'a>(&'a mut self, out: &mut Vec<LeafMut<'a>>) {
        out.push(LeafMut::F64(self));
    }
}

impl Differentiable for Tensor {
    fn leaves<'a>(&'a self, out: &mut Vec<Leaf<'a>>) {
        out.push(Leaf::Tensor(self));
    }
    fn leaves_mut<'a>(&'a mut self, out: &mut Vec<LeafMut<'a>>) {
        out.push(LeafMut::Tensor(self));
    }
}

impl<T: Differentiable> Differentiable for Vec<T> {
    fn leaves<'a>(&'a self, out: &mut Vec<Leaf<'a>>) {
        self.iter().for_each(|x| x.leaves(out));
    }
    fn leaves_mut<'a>(&'a mut self, out: &mut Vec<LeafMut<'a>>) {
        self.iter_mut().for_each(|x| x.leaves_mut(out));
    }
}

impl<T: Differentiable, const N: usize> Differentiable for [T; N] {
    fn leaves<'a>(&'a self, out: &mut Vec<Leaf<'a>>) {
        self.iter().for_each(|x| x.leaves(out));
    }
    fn leaves_mut<'a>(&'a mut self, out: &mut Vec<LeafMut<'a>>) {
        self.iter_mut().for_each(|x| x.leaves_mut(out));
    }
}

impl<T: Differentiable> Differentiable for Box<T> {
    fn leaves<'a>(&'a self, out: &mut Vec<Leaf<'a>>) {
        (**self).leaves(out);
    }
    fn leaves_mut<'a>(&'a mut self, out: &mut Vec<LeafMut<'a>>) {
        (**self).leaves_mut(out);
    }
}

/// The unit value: no leaves (the gradient of nothing).
impl Differentiable for () {
    fn leaves<'a>(&'a self, _: &mut Vec<Leaf<'a>>) {}
    fn leaves_mut<'a>(&'a mut self, _: &mut Vec<LeafMut<'a>>) {}
}

macro_rules! tuple {
    ($($T:ident $i:tt),+) => {
        impl<$($T: Differentiable),+> Differentiable for ($($T,)+) {
            fn leaves<'a>(&'a self, out: &mut Vec<Leaf<'a>>) {
                $(self.$i.leaves(out);)+
            }
            fn leaves_mut<'a>(&'a mut self, out: &mut Vec<LeafMut<'a>>) {
                $(self.$i.leaves_mut(out);)+
            }
        }
    };
}

tuple!(A 0);
tuple!(A 0, B 1);
tuple!(A 0, B 1, C 2);
tuple!(A 0, B 1, C 2, D 3);
tuple!(A 0, B 1, C 2, D 3, E 4);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// The zero every lazy zero of a dtype on a device is a broadcast view of (one element
/// each), made on first use when `create`; `None` where the device cannot hold the dtype.
fn lazy_zero_source(dtype: crate::DType, device: crate::Device, create: bool) -> Option<Tensor> {
    static SOURCES: std::sync::Mutex<Vec<Tensor>> = std::sync::Mutex::new(Vec::new());
    let mut sources = SOURCES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = sources
        .iter()
        .find(|t| t.dtype() == dtype && t.device() == device)
    {
        return Some(t.clone());
    }
    if !create {
        return None;
    }
    let zero = match dtype {
        crate::DType::F64 => Tensor::scalar(0.0f64),
        _ => Tensor::scalar(0.0f32),
    };
    let zero = zero.try_to_device(&device).ok()?;
    zero.try_eval().ok()?;
    sources.push(zero.clone());
    Some(zero)
}

/// A zero shaped like `like` that holds no memory of its own: a broadcast view of a single
/// zero element on `like`'s device. Adjoints start from it, so that a gradient allocates
/// only what its contributions bring, and a leaf that receives one contribution is that
/// contribution, with no addition (on a GPU, no kernel); see [`accumulate`].
///
/// ```
/// use ferrax_runtime::prelude::*;
/// use ferrax_runtime::differentiable::lazy_zero;
///
/// let z = lazy_zero(&Tensor::ones(&[1000, 1000], DType::F32));
/// assert_eq!(z.shape(), &[1000, 1000]);
/// assert_eq!(z.sum().item::<f32>(), 0.0);
/// ```
pub fn lazy_zero(like: &Tensor) -> Tensor {
    let dtype = like.dtype();
    match lazy_zero_source(dtype, like.device(), true) {
        Some(zero) if matches!(dtype, crate::DType::F32 | crate::DType::F64) => {
            zero.broadcast_to(like.shape())
        }
        _ => like.zeros_like(),
    }
}

/// Whether `t` is a view made by [`lazy_zero`].
pub fn is_lazy_zero(t: &Tensor) -> bool {
    lazy_zero_source(t.dtype(), t.device(), false)
        .is_some_and(|zero| std::sync::Arc::ptr_eq(&t.storage, &zero.storage))
}

/// `target += value` for adjoints, leaf by leaf: a leaf that is still a [`lazy_zero`] takes
/// the value itself (shared, not copied); others add in place where unshared. Panics if the
/// structures, shapes or dtypes differ.
#[track_caller]
pub fn accumulate<T: Differentiable>(target: &mut T, value: &T) {
    const OP: &str = "accumulate";
    let theirs = leaves(value);
    let mut ours = leaves_mut(target);
    unwrap(check_same_structure(OP, &ours, &theirs));
    for (a, b) in ours.iter_mut().zip(&theirs) {
        match (a, b) {
            (LeafMut::F32(a), Leaf::F32(b)) => **a += **b,
            (LeafMut::F64(a), Leaf::F64(b)) => **a += **b,
            (LeafMut::Tensor(a), Leaf::Tensor(b)) if is_lazy_zero(a) && a.shape() == b.shape() => {
                **a = (*b).clone()
            }
            (LeafMut::Tensor(a), Leaf::Tensor(b)) => **a += *b,
            _ => unreachable!("checked by check_same_structure"),
        }
    }
}

/// The zero of `x`'s structure with every tensor leaf a [`lazy_zero`].
pub fn lazy_zeros_like<T: Differentiable>(x: &T) -> T {
    let mut z = x.clone();
    for leaf in leaves_mut(&mut z) {
        match leaf {
            LeafMut::F32(v) => *v = 0.0,
            LeafMut::F64(v) => *v = 0.0,
            LeafMut::Tensor(t) => *t = lazy_zero(t),
        }
    }
    z
}
