//! [`Tensor`]: an n-dimensional array with shared storage, its constructors and accessors.

use std::borrow::Cow;
use std::sync::Arc;

use crate::device::Device;
use crate::element::{DType, Element};
use crate::error::{Error, Result, unwrap};
use crate::pool;
use crate::shape::{Layout, numel};
use crate::storage::{Storage, strided_copy};

/// Runs `$body` with `$T` bound to the Rust type of a float dtype (`f32` or `f64`).
/// The caller has checked that the dtype is a float.
macro_rules! float_dispatch {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::element::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::element::DType::F64 => {
                type $T = f64;
                $body
            }
            other => unreachable!("float dtype expected, got {other}"),
        }
    };
}
pub(crate) use float_dispatch;

/// Runs `$body` with `$T` bound to the Rust type of any dtype.
macro_rules! any_dispatch {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::element::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::element::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::element::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::element::DType::Bool => {
                type $T = bool;
                $body
            }
        }
    };
}
pub(crate) use any_dispatch;

/// An n-dimensional array of `f32`, `f64`, `i32` or `bool` on a [`Device`].
///
/// A tensor is a view (shape, strides, offset) of a shared, reference-counted buffer:
/// cloning one, and the view operations (`reshape` where possible, `transpose`,
/// `permute`, `broadcast_to`, `slice`, `squeeze`, `unsqueeze`), copy no data. Operations
/// never modify their inputs; they return new tensors.
///
/// ```
/// use ferrax_runtime::prelude::*;
///
/// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
/// assert_eq!(a.shape(), &[2, 3]);
/// assert_eq!(a.dtype(), DType::F32);
/// let t = a.t(); // a view: no copy
/// assert_eq!(t.shape(), &[3, 2]);
/// assert_eq!(t.to_vec::<f32>(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// ```
#[derive(Clone)]
pub struct Tensor {
    pub(crate) storage: Arc<Storage>,
    pub(crate) layout: Layout,
}

/// Conversions between element types through f64 (exact for every value of every
/// dtype): floats round to f32, truncate toward zero to i32, and become bools by `!= 0`.
trait Cast: Element {
    fn cast_to_f64(self) -> f64;
    fn cast_from_f64(v: f64) -> Self;
}

macro_rules! cast {
    ($t:ty, $to:expr, $from:expr) => {
        impl Cast for $t {
            #[inline]
            fn cast_to_f64(self) -> f64 {
                let to: fn($t) -> f64 = $to;
                to(self)
            }
            #[inline]
            fn cast_from_f64(v: f64) -> Self {
                let from: fn(f64) -> $t = $from;
                from(v)
            }
        }
    };
}

cast!(f32, |x| x as f64, |v| v as f32);
cast!(f64, |x| x, |v| v);
cast!(i32, |x| x as f64, |v| v as i32);
cast!(bool, |x| if x { 1.0 } else { 0.0 }, |v| v != 0.0);

/// Checks that a value count matches a shape.
fn check_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    if len != numel(shape) {
        return Err(Error::InvalidArgument {
            op,
            message: format!(
                "{len} values do not fill shape {shape:?} ({} elements)",
                numel(shape)
            ),
        });
    }
    Ok(())
}

impl Tensor {
    // ----- internal plumbing used by the ops modules -----

    /// A contiguous tensor owning `storage`, of `shape`.
    pub(crate) fn from_storage(storage: Storage, shape: &[usize]) -> Tensor {
        Tensor {
            storage: Arc::new(storage),
            layout: Layout::contiguous(shape),
        }
    }

    /// A contiguous tensor owning `data`, of `shape` (the length is the caller's invariant).
    pub(crate) fn from_data<T: Element>(data: Vec<T>, shape: &[usize]) -> Tensor {
        debug_assert_eq!(data.len(), numel(shape));
        Tensor::from_storage(Storage::from_vec(data), shape)
    }

    /// Another view of the same storage. An empty view's offset is reset to 0, so that
    /// every layout's offset lies within its storage.
    pub(crate) fn with_layout(&self, mut layout: Layout) -> Tensor {
        if layout.numel() == 0 {
            layout.offset = 0;
        }
        Tensor {
            storage: Arc::clone(&self.storage),
            layout,
        }
    }

    /// The whole storage buffer as `T` (the caller has dispatched on the dtype and the
    /// device).
    #[track_caller]
    pub(crate) fn storage_slice<T: Element>(&self) -> &[T] {
        match self.storage.typed::<T>() {
            Some(s) => s,
            None if self.device() != Device::Cpu => panic!(
                "a tensor of shape {:?} on {} reached CPU-only code; move it with `to_device(&Device::Cpu)` first",
                self.shape(),
                self.device()
            ),
            None => unreachable!("storage of a {} tensor read as {}", self.dtype(), T::DTYPE),
        }
    }

    /// Whether the data lives on a GPU.
    /// Whether the data is in host memory.
    #[inline]
    pub(crate) fn on_cpu(&self) -> bool {
        self.device() == Device::Cpu
    }

    #[cfg(feature = "gpu")]
    #[inline]
    pub(crate) fn on_gpu(&self) -> bool {
        matches!(*self.storage, Storage::Gpu(_))
    }

    /// The elements in row-major order: borrowed when the tensor is contiguous, copied
    /// once otherwise.
    pub(crate) fn contiguous_data<T: Element>(&self) -> Cow<'_, [T]> {
        let data = self.storage_slice::<T>();
        if self.layout.is_contiguous() {
            Cow::Borrowed(&data[self.layout.offset..self.layout.offset + self.numel()])
        } else {
            Cow::Owned(strided_copy(data, &self.layout))
        }
    }

    /// The tensor's elements in a new row-major buffer (recycled where one is free), to be
    /// written into: filled rather than copied where the tensor is one value broadcast (the
    /// zeros that a transpose's scatter adds into, `t.scalar_like(0.0).broadcast_to(..)`).
    pub(crate) fn owned_data<T: Element>(&self) -> Vec<T> {
        let n = self.numel();
        if n == 0 {
            return Vec::new();
        }
        if self.layout.strides.iter().all(|&s| s == 0) {
            let v = self.storage_slice::<T>()[self.layout.offset];
            return crate::pool::filled(n, v);
        }
        let src = self.contiguous_data::<T>();
        let mut out = crate::pool::buffer(n, src[0]);
        out.copy_from_slice(&src);
        out
    }

    /// Checks that the tensor holds floats.
    pub(crate) fn expect_float(&self, op: &'static str) -> Result<DType> {
        if self.dtype().is_float() {
            Ok(self.dtype())
        } else {
            Err(Error::UnsupportedDType {
                op,
                expected: "a float tensor (f32 or f64)",
                got: self.dtype(),
                shape: self.shape().to_vec(),
            })
        }
    }

    /// Checks that two tensors are on one device and have one dtype; returns it.
    pub(crate) fn expect_same(op: &'static str, a: &Tensor, b: &Tensor) -> Result<DType> {
        if a.device() != b.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: a.device(),
                rhs: b.device(),
            });
        }
        if a.dtype() != b.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                lhs: a.dtype(),
                rhs: b.dtype(),
                lhs_shape: a.shape().to_vec(),
                rhs_shape: b.shape().to_vec(),
            });
        }
        Ok(a.dtype())
    }

    /// Checks that two tensors are floats of one dtype on one device; returns the dtype.
    pub(crate) fn expect_same_float(op: &'static str, a: &Tensor, b: &Tensor) -> Result<DType> {
        let dt = Tensor::expect_same(op, a, b)?;
        a.expect_float(op)?;
        Ok(dt)
    }

    /// A tensor of `dtype` whose `i`-th element (row-major) is `f(i)` converted from f64.
    fn from_fn_f64(shape: &[usize], dtype: DType, f: impl Fn(usize) -> f64) -> Tensor {
        let n = numel(shape);
        any_dispatch!(dtype, D => {
            let data: Vec<D> = (0..n).map(|i| D::cast_from_f64(f(i))).collect();
            Tensor::from_data(data, shape)
        })
    }

    // ----- constructors -----

    /// A tensor of `shape` holding `data` in row-major order.
    ///
    /// Panics if `data.len()` is not the product of `shape`; see [`Tensor::try_from_vec`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
    /// assert_eq!(x.to_vec::<f64>(), vec![1.0, 2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Tensor {
        unwrap(Tensor::try_from_vec(data, shape))
    }

    /// [`Tensor::from_vec`], returning an error when the length does not match the shape.
    pub fn try_from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        check_len("from_vec", data.len(), shape)?;
        Ok(Tensor::from_data(data, shape))
    }

    /// A 0-d tensor holding `value`.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let s = Tensor::scalar(2.5f32);
    /// assert_eq!(s.shape(), &[] as &[usize]);
    /// assert_eq!(s.item::<f32>(), 2.5);
    /// ```
    pub fn scalar<T: Element>(value: T) -> Tensor {
        Tensor::from_data(vec![value], &[])
    }

    /// A tensor of `shape` filled with zeros (`false` for bool).
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    /// A tensor of `shape` filled with ones (`true` for bool).
    pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// A tensor of `shape` filled with `value`, converted to `dtype` (truncated toward
    /// zero for i32; `value != 0` for bool).
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        any_dispatch!(dtype, D => {
            // a recycled buffer where one is free (filled: it holds a previous tensor's data)
            let v = D::cast_from_f64(value);
            Tensor::from_data(crate::pool::filled(numel(shape), v), shape)
        })
    }

    /// A tensor of `shape` filled with `value` in `dtype`, on `device`. Panics for f64
    /// on a GPU or a GPU failure; see [`Tensor::try_full_on`].
    #[track_caller]
    pub fn full_on(shape: &[usize], value: f64, dtype: DType, device: &Device) -> Tensor {
        unwrap(Tensor::try_full_on(shape, value, dtype, device))
    }

    /// [`Tensor::full_on`], returning an error instead of panicking.
    pub fn try_full_on(
        shape: &[usize],
        value: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        match device {
            Device::Cpu => Ok(Tensor::full(shape, value, dtype)),
            #[cfg(feature = "gpu")]
            Device::Gpu(i) => crate::gpu::elementwise::full("full_on", *i, shape, value, dtype),
            #[cfg(not(feature = "gpu"))]
            Device::Gpu(_) => Err(Device::gpu().unwrap_err()),
        }
    }

    /// Zeros of this tensor's shape, dtype and device.
    #[track_caller]
    pub fn zeros_like(&self) -> Tensor {
        self.full_like(0.0)
    }

    /// Ones of this tensor's shape, dtype and device.
    #[track_caller]
    pub fn ones_like(&self) -> Tensor {
        self.full_like(1.0)
    }

    /// `value` in this tensor's shape, dtype and device.
    #[track_caller]
    pub fn full_like(&self, value: f64) -> Tensor {
        Tensor::full_on(self.shape(), value, self.dtype(), &self.device())
    }

    /// A 0-d tensor of `value` in this tensor's dtype: the constant side of a comparison
    /// or `where_`, broadcast without being expanded.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![-1.0f32, 2.0], &[2]);
    /// let positive = x.gt(&x.scalar_like(0.0));
    /// assert_eq!(positive.to_vec::<bool>(), vec![false, true]);
    /// ```
    #[track_caller]
    pub fn scalar_like(&self, value: f64) -> Tensor {
        Tensor::full_on(&[], value, self.dtype(), &self.device())
    }

    /// The 1-D tensor `start, start + step, ...` up to but excluding `end`, as NumPy's
    /// `arange`. Panics if `step` is zero or not finite; see [`Tensor::try_arange`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let r = Tensor::arange(0.0, 5.0, 2.0, DType::I32);
    /// assert_eq!(r.to_vec::<i32>(), vec![0, 2, 4]);
    /// ```
    #[track_caller]
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Tensor {
        unwrap(Tensor::try_arange(start, end, step, dtype))
    }

    /// [`Tensor::arange`], returning an error for a zero or non-finite step.
    pub fn try_arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::InvalidArgument {
                op: "arange",
                message: format!(
                    "start {start}, end {end} and step {step} must be finite and step non-zero"
                ),
            });
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        Ok(Tensor::from_fn_f64(&[n], dtype, |i| {
            start + i as f64 * step
        }))
    }

    /// `n` evenly spaced values from `start` to `end`, both included (as NumPy's `linspace`).
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::linspace(0.0, 1.0, 5, DType::F64);
    /// assert_eq!(x.to_vec::<f64>(), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    /// ```
    pub fn linspace(start: f64, end: f64, n: usize, dtype: DType) -> Tensor {
        let step = if n > 1 {
            (end - start) / (n - 1) as f64
        } else {
            0.0
        };
        Tensor::from_fn_f64(&[n], dtype, |i| {
            if n > 1 && i == n - 1 {
                end
            } else {
                start + i as f64 * step
            }
        })
    }

    /// The `n x n` identity matrix.
    pub fn eye(n: usize, dtype: DType) -> Tensor {
        any_dispatch!(dtype, D => {
            // zeros, then the diagonal (Jacobians and Hessians build their bases from this)
            // a recycled buffer where one is free: fresh pages cost a fault each on first touch
            let mut data: Vec<D> = crate::pool::filled(n * n, D::cast_from_f64(0.0));
            for i in 0..n {
                data[i * n + i] = D::cast_from_f64(1.0);
            }
            Tensor::from_data(data, &[n, n])
        })
    }

    // ----- accessors -----

    /// The size of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    /// The storage step of each axis, in elements (0 on broadcast axes).
    pub fn strides(&self) -> &[isize] {
        &self.layout.strides
    }

    /// The number of axes.
    pub fn ndim(&self) -> usize {
        self.layout.shape.len()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    /// Where the data lives.
    pub fn device(&self) -> Device {
        self.storage.device()
    }

    /// The number of elements (1 for a 0-d tensor).
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    /// The size of the first axis. Panics for a 0-d tensor, which has none.
    #[track_caller]
    pub fn len(&self) -> usize {
        match self.shape().first() {
            Some(&n) => n,
            None => panic!("len: a 0-d tensor has no first axis (use numel)"),
        }
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.numel() == 0
    }

    /// Whether the elements are stored row-major without gaps (so kernels can read them
    /// in place).
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// The elements in row-major order. Panics if `T` is not the tensor's element type;
    /// see [`Tensor::try_to_vec`].
    #[track_caller]
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        unwrap(self.try_to_vec())
    }

    /// [`Tensor::to_vec`], returning an error when `T` is not the element type.
    pub fn try_to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.check_element::<T>("to_vec")?;
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::download("to_vec", self);
        }
        // (a pooled buffer where the data is borrowed: vectors that come back as tensors,
        // `Tensor::from_vec(t.to_vec())`, go around the pool instead of the allocator)
        Ok(match self.contiguous_data::<T>() {
            Cow::Borrowed(d) if !d.is_empty() => {
                let mut v = crate::pool::buffer(d.len(), d[0]);
                v.copy_from_slice(d);
                v
            }
            d => d.into_owned(),
        })
    }

    /// The single element of a tensor with one element (any shape). Panics if the tensor
    /// has more or fewer elements, or `T` is not its element type; see [`Tensor::try_item`].
    #[track_caller]
    pub fn item<T: Element>(&self) -> T {
        unwrap(self.try_item())
    }

    /// [`Tensor::item`], returning an error instead of panicking.
    pub fn try_item<T: Element>(&self) -> Result<T> {
        self.check_element::<T>("item")?;
        if self.numel() != 1 {
            return Err(Error::InvalidArgument {
                op: "item",
                message: format!(
                    "needs a tensor with exactly one element, got shape {:?} ({} elements)",
                    self.shape(),
                    self.numel()
                ),
            });
        }
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return Ok(crate::gpu::download::<T>("item", self)?[0]);
        }
        Ok(self.storage_slice::<T>()[self.layout.offset])
    }

    fn check_element<T: Element>(&self, op: &'static str) -> Result<()> {
        if T::DTYPE != self.dtype() {
            return Err(Error::ElementType {
                op,
                requested: T::DTYPE,
                actual: self.dtype(),
                shape: self.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// A contiguous tensor with the same elements that owns its whole buffer: `self`
    /// (shared) if it already is one, otherwise one copy.
    #[track_caller]
    pub fn contiguous(&self) -> Tensor {
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return unwrap(crate::gpu::elementwise::contiguous("contiguous", self));
        }
        if self.is_contiguous() && self.layout.offset == 0 && self.storage_len() == self.numel() {
            return self.clone();
        }
        any_dispatch!(self.dtype(), T => Tensor::from_data(self.contiguous_data::<T>().into_owned(), self.shape()))
    }

    fn storage_len(&self) -> usize {
        #[cfg(feature = "gpu")]
        if let Storage::Gpu(g) = &*self.storage {
            return g.len;
        }
        any_dispatch!(self.dtype(), T => self.storage_slice::<T>().len())
    }

    /// The elements converted to `dtype`: floats round (f64 to f32) or truncate toward zero
    /// (to i32), bools become 0 or 1, and anything becomes a bool by `!= 0`.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let m = Tensor::from_vec(vec![1.5f32, -2.7, 0.0], &[3]);
    /// assert_eq!(m.to_dtype(DType::I32).to_vec::<i32>(), vec![1, -2, 0]);
    /// assert_eq!(m.to_dtype(DType::Bool).to_vec::<bool>(), vec![true, true, false]);
    /// ```
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        unwrap(self.try_to_dtype(dtype))
    }

    /// [`Tensor::to_dtype`], returning an error for f64 on a GPU (or a GPU failure).
    pub fn try_to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        #[cfg(feature = "gpu")]
        if let Storage::Gpu(g) = &*self.storage {
            crate::gpu::check_dtype("to_dtype", dtype, self.shape())?;
            let _ = g;
            return crate::gpu::elementwise::cast(self, dtype);
        }
        Ok(any_dispatch!(self.dtype(), S => {
            let src = self.contiguous_data::<S>();
            any_dispatch!(dtype, D => {
                let mut out = pool::buffer(src.len(), D::cast_from_f64(0.0));
                for (o, &v) in out.iter_mut().zip(src.iter()) {
                    *o = D::cast_from_f64(v.cast_to_f64());
                }
                Tensor::from_data(out, self.shape())
            })
        }))
    }

    /// Computes the tensor's elements now and waits until they are done. On the CPU they
    /// already are. On a GPU, operations are recorded and submitted in batches, and an
    /// elementwise result is computed only when something needs it (often inside the
    /// kernel of the next elementwise operation); this forces both, for timing or to
    /// release the inputs a pending result holds. Panics on a GPU failure; see
    /// [`Tensor::try_eval`].
    #[track_caller]
    pub fn eval(&self) {
        unwrap(self.try_eval())
    }

    /// [`Tensor::eval`], returning an error for a GPU failure (out of memory, a lost device).
    pub fn try_eval(&self) -> Result<()> {
        match self.record("eval")? {
            Device::Cpu => Ok(()),
            d => d.synchronize(),
        }
    }

    /// Records the computation of a pending GPU result (without waiting for it); returns
    /// the tensor's device.
    pub(crate) fn record(&self, op: &'static str) -> Result<Device> {
        #[cfg(feature = "gpu")]
        if let Storage::Gpu(g) = &*self.storage {
            g.buffer(op)?;
        }
        let _ = op;
        Ok(self.device())
    }

    /// The tensor on `device`: itself if it is already there, otherwise a copy. Panics
    /// if the copy fails (f64 to a GPU, out of GPU memory); see [`Tensor::try_to_device`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    /// if let Ok(gpu) = Device::gpu() {
    ///     let y = x.to_device(&gpu).exp();
    ///     assert_eq!(y.device(), gpu);
    ///     assert!((y.to_vec::<f32>()[1] - 2f32.exp()).abs() < 1e-6);
    /// }
    /// ```
    #[track_caller]
    pub fn to_device(&self, device: &Device) -> Tensor {
        unwrap(self.try_to_device(device))
    }

    /// [`Tensor::to_device`], returning an error instead of panicking: f64 has no GPU
    /// form, and a GPU can run out of memory.
    pub fn try_to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device() == *device {
            return Ok(self.clone());
        }
        match device {
            Device::Cpu => {
                #[cfg(feature = "gpu")]
                {
                    let t = any_dispatch!(self.dtype(), T => Tensor::from_data(crate::gpu::download::<T>("to_device", self)?, self.shape()));
                    Ok(t)
                }
                #[cfg(not(feature = "gpu"))]
                unreachable!("without the gpu feature every tensor is on the CPU")
            }
            #[cfg(feature = "gpu")]
            Device::Gpu(i) => {
                crate::gpu::check_dtype("to_device", self.dtype(), self.shape())?;
                if self.on_gpu() {
                    // another GPU: through the host
                    return self.try_to_device(&Device::Cpu)?.try_to_device(device);
                }
                any_dispatch!(self.dtype(), T => crate::gpu::upload("to_device", &self.contiguous_data::<T>(), self.shape(), *i))
            }
            #[cfg(not(feature = "gpu"))]
            Device::Gpu(_) => Err(Device::gpu().unwrap_err()),
        }
    }
}

/// A 1-D tensor of the vector's elements.
///
/// ```
/// # use ferrax_runtime::prelude::*;
/// let t = Tensor::from(vec![1i32, 2, 3]);
/// assert_eq!(t.shape(), &[3]);
/// ```
impl<T: Element> From<Vec<T>> for Tensor {
    fn from(data: Vec<T>) -> Tensor {
        let n = data.len();
        Tensor::from_data(data, &[n])
    }
}

/// A 1-D tensor of the slice's elements (copied).
impl<T: Element> From<&[T]> for Tensor {
    fn from(data: &[T]) -> Tensor {
        Tensor::from(data.to_vec())
    }
}

macro_rules! from_scalar {
    ($($t:ty),*) => {$(
        #[doc = concat!("A 0-d `", stringify!($t), "` tensor.")]
        impl From<$t> for Tensor {
            fn from(value: $t) -> Tensor {
                Tensor::scalar(value)
            }
        }
    )*};
}

from_scalar!(f32, f64, i32, bool);
