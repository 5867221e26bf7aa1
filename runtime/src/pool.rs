//! A small free list of large host buffers.
//!
//! Fresh memory is expensive: the operating system maps it in page by page on first
//! write (on the 2-core development VM, filling a new 64 MiB buffer costs about as much
//! as three passes over a warm one). Operations allocate a new output for every call,
//! so in a loop the same few sizes come and go. Dropped float and i32 buffers (values and
//! indices) of at least [`MIN_BYTES`] are kept here, up to [`MAX_BYTES`] and
//! [`MAX_BUFFERS`] a type, and handed back to the next operation asking for the same
//! length.

use std::any::Any;
use std::sync::Mutex;

/// Buffers smaller than this go back to the allocator, which reuses them cheaply.
const MIN_BYTES: usize = 64 << 10;
/// The most buffers the free list holds (it is searched linearly).
const MAX_BUFFERS: usize = 64;
/// The most memory the free list holds; the oldest buffers leave first.
const MAX_BYTES: usize = 512 << 20;

struct FreeList<T> {
    buffers: Vec<Vec<T>>,
    bytes: usize,
}

impl<T> FreeList<T> {
    const fn new() -> Self {
        FreeList {
            buffers: Vec::new(),
            bytes: 0,
        }
    }
}

static F32: Mutex<FreeList<f32>> = Mutex::new(FreeList::new());
static F64: Mutex<FreeList<f64>> = Mutex::new(FreeList::new());
static I32: Mutex<FreeList<i32>> = Mutex::new(FreeList::new());

/// The free list for element type `T` (only f32, f64 and i32 buffers are kept).
fn free_list<T: 'static>() -> Option<&'static Mutex<FreeList<T>>> {
    let lists: [&'static dyn Any; 3] = [&F32, &F64, &I32];
    lists.into_iter().find_map(|l| l.downcast_ref())
}

/// A buffer of `len` elements whose contents are unspecified (but initialised): a
/// recycled one if available, otherwise `fill` repeated. Callers overwrite every element.
pub(crate) fn buffer<T: Copy + 'static>(len: usize, fill: T) -> Vec<T> {
    if len * size_of::<T>() >= MIN_BYTES
        && let Some(list) = free_list::<T>()
    {
        let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = list.buffers.iter().rposition(|b| b.len() == len) {
            list.bytes -= len * size_of::<T>();
            return list.buffers.swap_remove(i);
        }
    }
    fresh(len, fill)
}

/// A buffer of `len` copies of `value`: a recycled one (refilled) if available.
pub(crate) fn filled<T: Copy + 'static>(len: usize, value: T) -> Vec<T> {
    let mut v = buffer(len, value);
    v.fill(value);
    v
}

/// Fresh buffers from this size on ask Linux for transparent huge pages.
const HUGE_BYTES: usize = 4 << 20;

/// A new buffer of `fill`. From [`HUGE_BYTES`] on Linux, its memory is advised
/// `MADV_HUGEPAGE` before it is first written (as NumPy does from 4 MiB), so that it is
/// mapped in 2 MiB pages where the system allows (`/sys/kernel/mm/transparent_hugepage/
/// enabled` set to `madvise`, the common default, or `always`): 512 times fewer page
/// faults on first write, fewer TLB misses, and hardware prefetchers that do not stop at
/// every 4 KiB page boundary. On the 2-core development VM, summing 16M f32 went from
/// 1.68 to 0.82-1.45 ms and a first `exp` into a new 64 MiB buffer from 19 to 13 ms. Where
/// the kernel compacts memory to find huge pages (`defrag` set to `madvise`), the first
/// such allocation after fragmentation can stall (282 ms once there);
/// `FERRAX_HUGE_PAGES=0` turns the advice off.
fn fresh<T: Copy>(len: usize, fill: T) -> Vec<T> {
    let bytes = len * size_of::<T>();
    if bytes < HUGE_BYTES || !huge_pages_wanted() {
        return vec![fill; len];
    }
    let mut v = Vec::with_capacity(len);
    advise_huge_pages(v.as_mut_ptr() as *mut u8, bytes);
    v.resize(len, fill);
    v
}

/// Whether to advise huge pages: on Linux, unless `FERRAX_HUGE_PAGES=0`.
fn huge_pages_wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| {
        cfg!(target_os = "linux")
            && std::env::var("FERRAX_HUGE_PAGES")
                .ok()
                .is_none_or(|v| v != "0")
    })
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, bytes: usize) {
    const PAGE: usize = 4096;
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + bytes) / PAGE * PAGE;
    if end > start {
        // SAFETY: the range lies inside an allocation this process owns; the advice
        // changes how it is mapped, never its contents (a failure leaves 4 KiB pages)
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _bytes: usize) {}

/// Keeps a dropped buffer for reuse if it is large enough and there is room.
pub(crate) fn recycle<T: 'static>(buffer: Vec<T>) {
    let bytes = buffer.capacity() * size_of::<T>();
    if !(MIN_BYTES..=MAX_BYTES).contains(&bytes) || buffer.len() != buffer.capacity() {
        return;
    }
    if let Some(list) = free_list::<T>() {
        let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
        while list.bytes + bytes > MAX_BYTES || list.buffers.len() >= MAX_BUFFERS {
            let old = list.buffers.remove(0);
            list.bytes -= old.len() * size_of::<T>();
        }
        list.bytes += bytes;
        list.buffers.push(buffer);
    }
}

/// Recycles the copy made for a kernel's input (borrowed inputs are left alone).
pub(crate) fn recycle_copy<T: Clone + 'static>(data: std::borrow::Cow<'_, [T]>) {
    if let std::borrow::Cow::Owned(v) = data {
        recycle(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_float_and_index_buffers_are_reused_and_small_ones_are_not() {
        let n = (MIN_BYTES / 4) * 3 + 7; // a length no other test uses
        let v = buffer::<f32>(n, 0.0);
        let p = v.as_ptr();
        recycle(v);
        let w = buffer::<f32>(n, 0.0);
        assert_eq!(w.as_ptr(), p);
        assert_eq!(w.len(), n);
        let idx = buffer::<i32>(n, 0);
        let q = idx.as_ptr();
        recycle(idx);
        let again = buffer::<i32>(n, 0);
        assert_eq!(again.as_ptr(), q);
        recycle(vec![false; n]); // not kept: no bool list
        let small = buffer::<f64>(10, 1.5);
        assert_eq!(small, vec![1.5; 10]);
    }

    /// A fresh buffer past the huge-page size (advised on Linux) holds its fill, has no
    /// spare capacity (so that it can be recycled) and comes back from the free list.
    #[test]
    fn huge_page_buffers_are_filled_and_recycled() {
        let n = HUGE_BYTES / 8 + 3; // f64: just past the threshold, a length no other test uses
        let v = buffer::<f64>(n, 2.5);
        assert_eq!((v.len(), v.capacity()), (n, n));
        assert!(v.iter().all(|&x| x == 2.5));
        let p = v.as_ptr();
        recycle(v);
        let again = buffer::<f64>(n, 0.0);
        assert_eq!(again.as_ptr(), p);
    }
}
