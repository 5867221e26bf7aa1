//! Splitting kernel work across rayon's threads.
//!
//! Work is split when its size (elements times a per-op cost) reaches
//! [`PAR_THRESHOLD`]; each task then runs one dispatched SIMD loop over its part.

use std::ops::Range;

use rayon::prelude::*;

use super::kernels::PAR_THRESHOLD;

/// Whether `work` units (elements times cost) are worth splitting across threads.
pub(crate) fn parallel(work: usize) -> bool {
    work >= PAR_THRESHOLD && rayon::current_num_threads() > 1
}

/// A chunk length for splitting `len` items of `cost` each: about four chunks per
/// thread, none much below the parallel threshold, a multiple of 64.
pub(super) fn chunk_len(len: usize, cost: usize) -> usize {
    let per_thread = len.div_ceil(4 * rayon::current_num_threads());
    let min = (PAR_THRESHOLD / 2 / cost.max(1)).max(64);
    per_thread.max(min).next_multiple_of(64)
}

/// Calls `f(range, out_chunk)` over chunks of `out`, in parallel when `out.len() * cost`
/// is large enough; `range` is the chunk's position in `out`.
pub(crate) fn for_chunks<O: Send>(
    out: &mut [O],
    cost: usize,
    f: impl Fn(Range<usize>, &mut [O]) + Sync,
) {
    let len = out.len();
    if !parallel(len.saturating_mul(cost)) {
        f(0..len, out);
        return;
    }
    let chunk = chunk_len(len, cost);
    out.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| {
        let start = i * chunk;
        f(start..start + o.len(), o)
    });
}

/// About how many elements one task of [`for_row_blocks`] writes.
const ROW_BLOCK_ELEMENTS: usize = 1 << 14;

/// Calls `f(first_row, block)` over blocks of whole rows of `out` (rows of `inner`
/// elements), in parallel when `out` reaches [`PAR_THRESHOLD`]. For loops that find each
/// row's inputs by an odometer ([`crate::shape::Offsets`]) started once per block.
pub(crate) fn for_row_blocks<T: Send>(
    out: &mut [T],
    inner: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if !parallel(out.len()) || inner == 0 {
        f(0, out);
        return;
    }
    let per_block = ROW_BLOCK_ELEMENTS.div_ceil(inner);
    out.par_chunks_mut(inner * per_block)
        .enumerate()
        .for_each(|(b, block)| f(b * per_block, block));
}

/// A raw output pointer shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(super) struct SharedOut<T>(pub(super) *mut T);
// SAFETY: only used by tasks writing disjoint elements (see `for_segments`).
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// # Safety
    /// `start..start + len` is in bounds and no other live slice overlaps it.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Fewest columns a segment of [`for_segments`] has (fewer only at the end of a row).
const BLOCK: usize = 256;

/// The columns `cols` of block `o` of `x`, laid out `[outer, n, inner]`: the part of
/// the input one task of [`for_segments`] reduces along `n`.
pub(super) struct Segment<'a, T> {
    pub(super) x: &'a [T],
    pub(super) n: usize,
    pub(super) inner: usize,
    pub(super) o: usize,
    pub(super) cols: Range<usize>,
}

impl<'a, T> Segment<'a, T> {
    /// Row `k` of the segment.
    #[inline(always)]
    pub(super) fn row(&self, k: usize) -> &'a [T] {
        let at = (self.o * self.n + k) * self.inner;
        &self.x[at + self.cols.start..at + self.cols.end]
    }
}

/// Most columns a segment of [`for_segments`] has: axis kernels keep their per-column
/// state in stack buffers of this length.
pub(super) const PAGE_COLUMNS: usize = 1024;

/// The width of column segments: a whole 4 KiB page of each row (for elements of `T`)
/// where there are then enough segments for every thread, narrower (down to [`BLOCK`])
/// where not. The prefetchers stop at page boundaries, so a segment reading a quarter
/// page per row stalls on memory (sum of [4096, 4096] f32 along axis 0: 4.2 ms with 256
/// columns, 3.2 with 1024, two threads).
fn page_segments<T>(outer: usize, inner: usize) -> usize {
    let mut width = BLOCK.max(4096 / size_of::<T>()).min(PAGE_COLUMNS);
    while width > BLOCK && outer * inner.div_ceil(width) < rayon::current_num_threads() {
        width /= 2;
    }
    width
}

/// Calls `f` with every [`Segment`] of columns (as wide as [`page_segments`] says) of
/// every block of `x`, laid out `[outer, n, inner]`, in parallel when `outer * n * inner`
/// is large enough. Distinct segments touch distinct output elements.
pub(super) fn for_segments<T: Sync>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    cost: usize,
    f: impl Fn(Segment<'_, T>) + Sync,
) {
    let width = page_segments::<T>(outer, inner);
    let per_o = inner.div_ceil(width);
    let segments = outer * per_o;
    let run = |seg: usize| {
        let (o, b) = (seg / per_o, seg % per_o);
        f(Segment {
            x,
            n,
            inner,
            o,
            cols: b * width..((b + 1) * width).min(inner),
        })
    };
    let work = outer
        .saturating_mul(n)
        .saturating_mul(inner)
        .saturating_mul(cost);
    if !parallel(work) {
        (0..segments).for_each(run);
        return;
    }
    let seg_work = (n * inner.min(width) * cost).max(1);
    let min_len = (PAR_THRESHOLD / 2 / seg_work).max(1);
    (0..segments)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each(run);
}
