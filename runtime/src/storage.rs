//! Tensor storage: a typed buffer on a device, and the strided copy that turns any view
//! into a contiguous buffer.

use std::any::Any;

use rayon::prelude::*;

use crate::cpu::for_row_blocks;
use crate::cpu::kernels::PAR_THRESHOLD;
use crate::device::Device;
use crate::element::{DType, Element};
use crate::pool;
use crate::shape::{Layout, Offsets, unravel_offset};

/// A typed buffer in host memory.
#[derive(Clone, Debug)]
pub(crate) enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

/// Dropped float and index buffers go back to the [`pool`] for reuse.
impl Drop for CpuStorage {
    fn drop(&mut self) {
        match self {
            CpuStorage::F32(v) => pool::recycle(std::mem::take(v)),
            CpuStorage::F64(v) => pool::recycle(std::mem::take(v)),
            CpuStorage::I32(v) => pool::recycle(std::mem::take(v)),
            CpuStorage::Bool(_) => {}
        }
    }
}

/// The buffer behind one or more tensors. Shared (through an `Arc`) by every view of it.
#[derive(Debug)]
pub(crate) enum Storage {
    Cpu(CpuStorage),
    /// A buffer on a GPU.
    #[cfg(feature = "gpu")]
    Gpu(crate::gpu::GpuStorage),
}

impl Storage {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(CpuStorage::F32(_)) => DType::F32,
            Storage::Cpu(CpuStorage::F64(_)) => DType::F64,
            Storage::Cpu(CpuStorage::I32(_)) => DType::I32,
            Storage::Cpu(CpuStorage::Bool(_)) => DType::Bool,
            #[cfg(feature = "gpu")]
            Storage::Gpu(g) => g.dtype,
        }
    }

    pub(crate) fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "gpu")]
            Storage::Gpu(g) => Device::Gpu(g.ordinal),
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

    /// The host buffer, mutable, if it holds elements of type `T` (never for a GPU buffer).
    pub(crate) fn typed_mut<T: Element>(&mut self) -> Option<&mut [T]> {
        let any: &mut dyn Any = match self {
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => return None,
            Storage::Cpu(CpuStorage::F32(v)) => v,
            Storage::Cpu(CpuStorage::F64(v)) => v,
            Storage::Cpu(CpuStorage::I32(v)) => v,
            Storage::Cpu(CpuStorage::Bool(v)) => v,
        };
        any.downcast_mut::<Vec<T>>().map(Vec::as_mut_slice)
    }

    /// The host buffer, if it holds elements of type `T` (never for a GPU buffer).
    pub(crate) fn typed<T: Element>(&self) -> Option<&[T]> {
        let any: &dyn Any = match self {
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => return None,
            Storage::Cpu(CpuStorage::F32(v)) => v,
            Storage::Cpu(CpuStorage::F64(v)) => v,
            Storage::Cpu(CpuStorage::I32(v)) => v,
            Storage::Cpu(CpuStorage::Bool(v)) => v,
        };
        any.downcast_ref::<Vec<T>>().map(Vec::as_slice)
    }
}

/// Copies the elements of the view `layout` of `data` into a new row-major buffer:
/// row by row over the innermost (merged) axis, in parallel for large copies.
pub(crate) fn strided_copy<T: Copy + Send + Sync + 'static>(data: &[T], layout: &Layout) -> Vec<T> {
    let n = layout.numel();
    if n == 0 {
        return Vec::new();
    }
    let mut out = pool::buffer(n, data[layout.offset]);
    if layout.is_contiguous() {
        out.copy_from_slice(&data[layout.offset..layout.offset + n]);
        return out;
    }
    let (shape, strides) = layout.coalesced();
    let last = shape.len() - 1;
    let (inner, inner_stride) = (shape[last], strides[last]);
    let copy_row = |off: isize, row: &mut [T]| {
        if inner_stride == 1 {
            row.copy_from_slice(&data[off as usize..off as usize + inner]);
        } else {
            for (k, v) in row.iter_mut().enumerate() {
                *v = data[(off + k as isize * inner_stride) as usize];
            }
        }
    };
    // (a broadcast axis, stride 0, is not a transpose: its rows copy whole)
    if last >= 1 && strides[last - 1] != 0 && strides[last - 1].abs() < inner_stride.abs() {
        transpose_planes(data, layout.offset, &shape, &strides, &mut out);
        return out;
    }
    // rows from `first` on, found by an odometer over the outer axes
    let rows = |first: usize, dst: &mut [T]| {
        let offsets = Offsets::new(first, &shape[..last], &strides[..last], layout.offset);
        for (row, off) in dst.chunks_mut(inner).zip(offsets) {
            copy_row(off as isize, row);
        }
    };
    for_row_blocks(&mut out, inner, rows);
    out
}

/// Side of the square tiles in which [`transpose_planes`] copies: small enough that the
/// strided side of a tile fits the ways of an L1 cache set even when the stride is a
/// power of two (64 MiB transposes took 3x longer with 32).
const TILE: usize = 8;

/// Output rows per band of [`transpose_planes`] (a multiple of [`TILE`]): one task's
/// share, copied tile by tile along the source's rows. [2048, 2048] f32 `.t().contiguous()`
/// on two threads: 4.1-4.3 ms with bands of one tile, 2.1-2.3 ms with 64 rows (128 and
/// 256: 1.6-2.7, with fewer tasks for smaller planes).
const BAND: usize = 64;

/// Strided copy for layouts whose last axis is not the one closest together in memory
/// (a transpose): each plane of the last two axes is copied in square tiles, so that
/// reads and writes both stay within a few cache lines.
fn transpose_planes<T: Copy + Send + Sync>(
    data: &[T],
    offset: usize,
    shape: &[usize],
    strides: &[isize],
    out: &mut [T],
) {
    let nd = shape.len();
    let (rows, cols) = (shape[nd - 2], shape[nd - 1]);
    let (rs, cs) = (strides[nd - 2], strides[nd - 1]);
    let plane = rows * cols;
    // a band of output rows from r0 (whole tiles but the last), tile by tile along the
    // source's rows: each tile reads TILE source columns' next TILE elements, so each
    // source column is read in order, which the hardware prefetchers follow
    let copy_block = |base: isize, r0: usize, dst: &mut [T]| {
        let band = dst.len() / cols;
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for t0 in (r0..r0 + band).step_by(TILE) {
                let t1 = (t0 + TILE).min(r0 + band);
                let dst = &mut dst[(t0 - r0) * cols..(t1 - r0) * cols];
                if rs == 1 && t1 - t0 == TILE && c1 - c0 == TILE {
                    // a whole tile of a transpose: each source column is TILE adjacent
                    // elements, read as one array; the tile is turned in registers
                    let mut tile = [[data[0]; TILE]; TILE];
                    for (j, col) in tile.iter_mut().enumerate() {
                        let start = (base + t0 as isize + (c0 + j) as isize * cs) as usize;
                        col.copy_from_slice(&data[start..start + TILE]);
                    }
                    for (i, row) in dst.chunks_exact_mut(cols).enumerate() {
                        for (j, v) in row[c0..c1].iter_mut().enumerate() {
                            *v = tile[j][i];
                        }
                    }
                    continue;
                }
                for r in t0..t1 {
                    let row = &mut dst[(r - t0) * cols + c0..(r - t0) * cols + c1];
                    let start = base + r as isize * rs + c0 as isize * cs;
                    for (k, v) in row.iter_mut().enumerate() {
                        *v = data[(start + k as isize * cs) as usize];
                    }
                }
            }
        }
    };
    let copy_plane = |p: usize, dst: &mut [T]| {
        let base = unravel_offset(p, &shape[..nd - 2], &strides[..nd - 2], offset) as isize;
        if plane >= PAR_THRESHOLD {
            dst.par_chunks_mut(BAND * cols)
                .enumerate()
                .for_each(|(b, d)| copy_block(base, b * BAND, d));
        } else {
            dst.chunks_mut(BAND * cols)
                .enumerate()
                .for_each(|(b, d)| copy_block(base, b * BAND, d));
        }
    };
    if out.len() >= PAR_THRESHOLD && plane < PAR_THRESHOLD {
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(p, d)| copy_plane(p, d));
    } else {
        out.chunks_mut(plane)
            .enumerate()
            .for_each(|(p, d)| copy_plane(p, d));
    }
}
