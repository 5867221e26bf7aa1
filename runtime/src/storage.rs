//! Tensor storage: a typed buffer on a device, and the strided copy that turns any view
//! into a contiguous buffer.

use std::any::Any;

use crate::device::Device;
use crate::element::{DType, Element};
use crate::shape::Layout;

/// A typed buffer in host memory.
#[derive(Clone, Debug)]
pub(crate) enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

/// The buffer behind one or more tensors. Shared (through an `Arc`) by every view of it.
#[derive(Clone, Debug)]
pub(crate) enum Storage {
    Cpu(CpuStorage),
}

impl Storage {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(CpuStorage::F32(_)) => DType::F32,
            Storage::Cpu(CpuStorage::F64(_)) => DType::F64,
            Storage::Cpu(CpuStorage::I32(_)) => DType::I32,
            Storage::Cpu(CpuStorage::Bool(_)) => DType::Bool,
        }
    }

    pub(crate) fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
        }
    }
}

impl Storage {
    /// Wraps a host buffer (moved, not copied).
    pub(crate) fn from_vec<T: Element>(v: Vec<T>) -> Storage {
        let any: Box<dyn Any> = Box::new(v);
        let any = match any.downcast::<Vec<f32>>() {
            Ok(v) => return Storage::Cpu(CpuStorage::F32(*v)),
            Err(a) => a,
        };
        let any = match any.downcast::<Vec<f64>>() {
            Ok(v) => return Storage::Cpu(CpuStorage::F64(*v)),
            Err(a) => a,
        };
        let any = match any.downcast::<Vec<i32>>() {
            Ok(v) => return Storage::Cpu(CpuStorage::I32(*v)),
            Err(a) => a,
        };
        match any.downcast::<Vec<bool>>() {
            Ok(v) => Storage::Cpu(CpuStorage::Bool(*v)),
            Err(_) => unreachable!("Element is sealed to f32, f64, i32 and bool"),
        }
    }

    /// The host buffer, if it holds elements of type `T`.
    pub(crate) fn typed<T: Element>(&self) -> Option<&[T]> {
        let any: &dyn Any = match self {
            Storage::Cpu(CpuStorage::F32(v)) => v,
            Storage::Cpu(CpuStorage::F64(v)) => v,
            Storage::Cpu(CpuStorage::I32(v)) => v,
            Storage::Cpu(CpuStorage::Bool(v)) => v,
        };
        any.downcast_ref::<Vec<T>>().map(Vec::as_slice)
    }
}

/// Copies the elements of the view `layout` of `data` into a new row-major buffer.
pub(crate) fn strided_copy<T: Copy>(data: &[T], layout: &Layout) -> Vec<T> {
    let n = layout.numel();
    if layout.is_contiguous() {
        return data[layout.offset..layout.offset + n].to_vec();
    }
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let (shape, strides) = layout.coalesced();
    let last = shape.len() - 1;
    let (inner, inner_stride) = (shape[last], strides[last]);
    let rows = n / inner;
    // odometer over the outer axes
    let mut idx = vec![0usize; last];
    let mut off = layout.offset as isize;
    for _ in 0..rows {
        if inner_stride == 1 {
            out.extend_from_slice(&data[off as usize..off as usize + inner]);
        } else {
            let mut o = off;
            for _ in 0..inner {
                out.push(data[o as usize]);
                o += inner_stride;
            }
        }
        for d in (0..last).rev() {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            off -= strides[d] * shape[d] as isize;
            idx[d] = 0;
        }
    }
    out
}
