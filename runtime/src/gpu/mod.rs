//! The GPU backend: every primitive as a WGSL compute shader run through wgpu.
//!
//! Tensors on a GPU hold a [`GpuStorage`]: a storage buffer of 32-bit elements (f32, i32,
//! and bool as one u32 per element). f64 has no GPU form: moving an f64 tensor to a GPU,
//! or converting a GPU tensor to f64, is an error naming the operation.
//!
//! - [`context`]: adapter, device, pipeline cache, buffer pool, batched submission, readback;
//! - [`elementwise`]: one generated kernel for unary, binary, comparison, `where_`, casts
//!   and strided copies, with broadcasting and strides passed as uniforms;
//! - [`reduce`]: reductions, argmax and the softmax family along an axis (tree
//!   reductions in workgroup memory);
//! - [`matmul`]: tiled, register-blocked matrix products, batched;
//! - [`gather`]: `index_select`, `concat`, `one_hot`;
//! - [`conv`]: convolution's `unfold` (im2col) and `fold` (col2im), positions computed
//!   in the shader.
//!
//! The tensor operations check shapes, dtypes and devices first, exactly as on the CPU,
//! and only then call in here.

pub(crate) mod context;
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod gather;
pub(crate) mod linalg;
pub(crate) mod matmul;
pub(crate) mod profile;
pub(crate) mod reduce;
pub(crate) mod scan;
pub(crate) mod sort;
mod wgsl;

use std::sync::{Mutex, OnceLock};

use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::shape::{Layout, numel};
use crate::storage::Storage;
use crate::tensor::Tensor;
use context::Context;

/// Workgroup size of the one-thread-per-element kernels.
pub(crate) const WG: u32 = 256;

/// Most workgroups along one dispatch dimension.
pub(crate) const MAX_GROUPS: u32 = 65535;

/// A buffer of `len` elements of `dtype` on GPU `ordinal`. Dropping it returns the
/// buffer to the context's pool.
///
/// Elementwise results start out *pending*: the expression that computes them (see
/// [`elementwise::Fused`]) is kept instead of a buffer, so that a later elementwise
/// operation can compute it inline, in the same kernel. The buffer is made (one kernel
/// for the whole fused expression) the first time something needs it.
pub(crate) struct GpuStorage {
    buffer: OnceLock<wgpu::Buffer>,
    pending: Mutex<Option<elementwise::Fused>>,
    pub(crate) len: usize,
    pub(crate) dtype: DType,
    pub(crate) ordinal: usize,
    /// For i32 storage, the least and the greatest element where they are known without
    /// reading the buffer (uploaded indices, an argmax's or an argsort's positions), so
    /// that indexing ops check their indices without waiting for the GPU.
    pub(crate) bounds: Option<(i32, i32)>,
}

// A tensor stays unwind-safe as on the CPU: a panic cannot leave a GPU buffer half
// updated from Rust's point of view (its contents change only through recorded dispatches).
impl std::panic::UnwindSafe for GpuStorage {}
impl std::panic::RefUnwindSafe for GpuStorage {}

impl std::fmt::Debug for GpuStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuStorage({} x {} on gpu:{})",
            self.len, self.dtype, self.ordinal
        )
    }
}

impl Drop for GpuStorage {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            context::existing(self.ordinal).recycle(b);
        }
    }
}

impl GpuStorage {
    /// The buffer, computing a pending expression into it first.
    pub(crate) fn buffer(&self, op: &'static str) -> Result<&wgpu::Buffer> {
        if let Some(b) = self.buffer.get() {
            return Ok(b);
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = self.buffer.get() {
            return Ok(b);
        }
        let Some(fused) = pending.as_ref() else {
            unreachable!("a GpuStorage has a buffer or a pending expression")
        };
        let buffer = self.context().alloc(op, (self.len as u64) * 4)?;
        elementwise::run_fused(
            op,
            self.context(),
            fused,
            &buffer,
            self.dtype,
            &Layout::contiguous(&fused.shape),
        )?;
        *pending = None;
        Ok(self.buffer.get_or_init(|| buffer))
    }

    /// Computes the pending ones of `storages` (all on one GPU), several in one kernel
    /// ([`elementwise::run_fused_together`]): what `eval` does with a pytree's leaves.
    pub(crate) fn compute_together(op: &'static str, storages: &[&GpuStorage]) -> Result<()> {
        let mut todo: Vec<(&GpuStorage, elementwise::Fused)> = Vec::new();
        for &s in storages {
            if todo.iter().any(|(t, _)| std::ptr::eq(*t, s)) {
                continue;
            }
            if let Some(f) = s.pending_where(|_| true) {
                todo.push((s, f));
            }
        }
        // one that another reads is computed when that one's kernel is prepared, by a
        // kernel of its own: leave it to that
        let read: Vec<*const GpuStorage> = todo
            .iter()
            .flat_map(|(_, f)| f.leaves().map(|t| storage_of(t) as *const GpuStorage))
            .collect();
        todo.retain(|(s, _)| !read.contains(&(*s as *const GpuStorage)));
        if let Some(&(first, _)) = todo.first().as_ref() {
            let ordinal = first.ordinal;
            todo.retain(|(s, _)| s.ordinal == ordinal); // one kernel, one GPU
        }
        if todo.len() < 2 {
            return storages.iter().try_for_each(|s| s.buffer(op).map(drop));
        }
        let ctx = todo[0].0.context();
        let buffers: Vec<wgpu::Buffer> = todo
            .iter()
            .map(|(s, _)| ctx.alloc(op, (s.len as u64) * 4))
            .collect::<Result<_>>()?;
        let items: Vec<(&elementwise::Fused, &wgpu::Buffer, DType)> = todo
            .iter()
            .zip(&buffers)
            .map(|((s, f), b)| (f, b, s.dtype))
            .collect();
        elementwise::run_fused_together(op, ctx, &items)?;
        for ((s, _), b) in todo.iter().zip(buffers) {
            // another thread may have computed it meanwhile: theirs stays, ours goes back
            match s.buffer.set(b) {
                Ok(()) => *s.pending.lock().unwrap_or_else(|p| p.into_inner()) = None,
                Err(b) => ctx.recycle(b),
            }
        }
        storages.iter().try_for_each(|s| s.buffer(op).map(drop))
    }

    /// The pending expression, if the buffer has not been computed yet and `keep`
    /// accepts it (cloned only then).
    pub(crate) fn pending_where(
        &self,
        keep: impl FnOnce(&elementwise::Fused) -> bool,
    ) -> Option<elementwise::Fused> {
        if self.buffer.get().is_some() {
            return None;
        }
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|f| keep(f))
            .cloned()
    }

    /// A storage whose elements are `fused`, computed when first needed.
    pub(crate) fn lazy(fused: elementwise::Fused, ordinal: usize, dtype: DType) -> GpuStorage {
        GpuStorage {
            buffer: OnceLock::new(),
            len: numel(&fused.shape),
            pending: Mutex::new(Some(fused)),
            dtype,
            ordinal,
            bounds: None,
        }
    }

    /// The storage, its i32 elements known to lie in `lo..=hi` (see [`GpuStorage::bounds`]).
    pub(crate) fn within(mut self, lo: i32, hi: i32) -> GpuStorage {
        debug_assert_eq!(self.dtype, DType::I32);
        self.bounds = Some((lo, hi));
        self
    }

    /// The context of the GPU holding it.
    pub(crate) fn context(&self) -> &'static Context {
        context::existing(self.ordinal)
    }

    /// A new, uninitialised buffer of `len` elements of `dtype`.
    pub(crate) fn alloc(
        op: &'static str,
        ctx_ordinal: usize,
        len: usize,
        dtype: DType,
    ) -> Result<GpuStorage> {
        let ctx = context::context(ctx_ordinal)?;
        check_dtype(op, dtype, &[len])?;
        let buffer = ctx.alloc(op, (len as u64) * 4)?;
        Ok(GpuStorage {
            buffer: OnceLock::from(buffer),
            pending: Mutex::new(None),
            len,
            dtype,
            ordinal: ctx_ordinal,
            bounds: None,
        })
    }
}

/// The WGSL element type of a GPU dtype.
pub(crate) fn wgsl_type(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::I32 => "i32",
        DType::Bool => "u32",
        DType::F64 => unreachable!("f64 tensors never reach the GPU"),
    }
}

/// An error for dtypes the GPU does not hold (f64).
pub(crate) fn check_dtype(op: &'static str, dtype: DType, shape: &[usize]) -> Result<()> {
    if dtype == DType::F64 {
        return Err(Error::UnsupportedDType {
            op,
            expected: "f32, i32 or bool on a GPU (f64 has no GPU form; use f32 there, or keep f64 work on the CPU)",
            got: dtype,
            shape: shape.to_vec(),
        });
    }
    Ok(())
}

/// A tuning setting (`FERRAX_GPU_*`) from the environment variable `name`, if it is set
/// and `parse` accepts it; a value `parse` refuses is ignored, with a line on stderr saying
/// that it is not `expected`.
pub(crate) fn tuning<T>(
    name: &str,
    expected: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Option<T> {
    tuning_from(name, std::env::var(name).ok().as_deref(), expected, parse)
}

/// [`tuning`] of the value `value` (that of `name`, or `None` where it is unset).
pub(crate) fn tuning_from<T>(
    name: &str,
    value: Option<&str>,
    expected: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Option<T> {
    let v = value?;
    let t = parse(v);
    if t.is_none() {
        eprintln!("ferrax: {name}={v:?} is not {expected}; ignored");
    }
    t
}

/// Splits `groups` workgroups over x and y so neither exceeds [`MAX_GROUPS`]; kernels
/// recover the linear index as `x + y * num_workgroups.x`.
pub(crate) fn grid(groups: u32) -> [u32; 3] {
    let x = groups.clamp(1, MAX_GROUPS);
    [x, groups.div_ceil(x), 1]
}

/// A contiguous GPU tensor over `storage`.
pub(crate) fn tensor(storage: GpuStorage, shape: &[usize]) -> Tensor {
    debug_assert_eq!(storage.len, numel(shape));
    Tensor::from_storage(Storage::Gpu(storage), shape)
}

/// Copies a contiguous host buffer to GPU `ordinal`.
pub(crate) fn upload<T: Element>(
    op: &'static str,
    data: &[T],
    shape: &[usize],
    ordinal: usize,
) -> Result<Tensor> {
    let mut storage = GpuStorage::alloc(op, ordinal, data.len(), T::DTYPE)?;
    if T::DTYPE == DType::I32 && !data.is_empty() {
        // SAFETY: T is i32 (its DTYPE says so; Element is sealed)
        let ids = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<i32>(), data.len()) };
        let (lo, hi) = ids
            .iter()
            .fold((i32::MAX, i32::MIN), |(lo, hi), &i| (lo.min(i), hi.max(i)));
        storage = storage.within(lo, hi);
    }
    let ctx = storage.context();
    match T::DTYPE {
        DType::F32 | DType::I32 => {
            // SAFETY: T is f32 or i32: four bytes each, no padding, any bit pattern valid as bytes.
            let bytes =
                unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), data.len() * 4) };
            ctx.upload(storage.buffer(op)?, bytes);
        }
        DType::Bool => {
            // SAFETY: T is bool (its DTYPE says so; Element is sealed).
            let flags =
                unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<bool>(), data.len()) };
            let words: Vec<u32> = flags.iter().map(|&b| b as u32).collect();
            ctx.upload(storage.buffer(op)?, bytemuck::cast_slice(&words));
        }
        DType::F64 => unreachable!("check_dtype refused f64"),
    }
    Ok(tensor(storage, shape))
}

/// The GPU storage of a tensor the caller knows is on a GPU.
pub(crate) fn storage_of(t: &Tensor) -> &GpuStorage {
    match &*t.storage {
        Storage::Gpu(g) => g,
        _ => unreachable!("storage_of a tensor on {}", t.device()),
    }
}

/// The elements of a GPU tensor in row-major order, read back to the host.
pub(crate) fn download<T: Element>(op: &'static str, t: &Tensor) -> Result<Vec<T>> {
    let t = elementwise::contiguous(op, t)?;
    let s = storage_of(&t);
    let n = t.numel();
    let bytes = s
        .context()
        .read(op, s.buffer(op)?, t.layout.offset as u64 * 4, n as u64 * 4)?;
    let any: Box<dyn std::any::Any> = match T::DTYPE {
        DType::F32 => Box::new(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)),
        DType::I32 => Box::new(bytemuck::pod_collect_to_vec::<u8, i32>(&bytes)),
        DType::Bool => Box::new(
            bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)
                .into_iter()
                .map(|w| w != 0)
                .collect::<Vec<bool>>(),
        ),
        DType::F64 => unreachable!("f64 tensors never reach the GPU"),
    };
    match any.downcast::<Vec<T>>() {
        Ok(v) => Ok(*v),
        Err(_) => unreachable!("the caller checked the element type"),
    }
}
