//! A small free list of large host buffers.
//!
//! Fresh memory is expensive: the operating system maps it in page by page on first
//! write (on the 2-core development VM, filling a new 64 MiB buffer costs about as much
//! as three passes over a warm one). Operations allocate a new output for every call,
//! so in a loop the same few sizes come and go. Dropped float buffers of at least
//! [`MIN_BYTES`] are kept here, up to [`MAX_BYTES`] and [`MAX_BUFFERS`] in all, and
//! handed back to the next operation asking for the same length.

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

/// The free list for element type `T` (only f32 and f64 buffers are kept).
fn free_list<T: 'static>() -> Option<&'static Mutex<FreeList<T>>> {
    let (a, b): (&'static dyn Any, &'static dyn Any) = (&F32, &F64);
    a.downcast_ref().or_else(|| b.downcast_ref())
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
    vec![fill; len]
}

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
    fn large_float_buffers_are_reused_and_small_ones_are_not() {
        let n = (MIN_BYTES / 4) * 3 + 7; // a length no other test uses
        let v = buffer::<f32>(n, 0.0);
        let p = v.as_ptr();
        recycle(v);
        let w = buffer::<f32>(n, 0.0);
        assert_eq!(w.as_ptr(), p);
        assert_eq!(w.len(), n);
        recycle(vec![0i32; n]); // not kept: no i32 list
        let small = buffer::<f64>(10, 1.5);
        assert_eq!(small, vec![1.5; 10]);
    }
}
