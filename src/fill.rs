//! Gradients written once, never zeroed first.
//!
//! A reverse sweep that gathers (see `gather_adjoint_stores` in the macros crate) writes each
//! element of a gradient exactly once, in index order. Allocating that gradient zeroed and
//! then overwriting it costs a full extra pass over memory: on the Rosenbrock gradient of a
//! million f64, 0.34 ms against 0.26 ms without it. Here the gradient starts empty with room
//! for all its elements ([`filling`]); each gather loop hands [`fill_for`] (or [`fill_seq`]) a
//! closure giving the value of element `j`, which runs the loop itself and writes straight into
//! the spare capacity; [`fill_rest`] then zeroes whatever no loop wrote.
//!
//! The one `unsafe` step, growing the Vec over slots just written, sits in [`fill_for`]'s own
//! loop: it runs the closure for every index of the range before the length grows, so
//! nothing generated code does can expose an unwritten element. Loops that do not fit that
//! pattern (a range starting below what is already written, or ending past the end) take a
//! checked path with the semantics of `a[j] = v` on a zeroed Vec, panics included.

use crate::__private::{Chunk, Real, Split, split_for};
use std::mem::MaybeUninit;

/// An empty Vec with room for as many elements as `like`: a gradient the gather loops fill.
#[inline]
pub fn filling<T>(like: &[T]) -> Vec<T> {
    Vec::with_capacity(like.len())
}

/// Completes a Vec being filled to its length `n` with zeros (elements no loop wrote).
#[inline]
pub fn fill_rest<T: Real>(a: &mut Vec<T>, n: usize) {
    if a.len() > n {
        out_of_bounds(n, a.len() - 1);
    }
    a.resize(n, T::default());
}

#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(len: usize, index: usize) -> ! {
    panic!("index out of bounds: the len is {len} but the index is {index}")
}

/// Sequences being filled by one loop, one value each per index: [`Filling`], or nested pairs
/// of them (`(a, (b, c))`, with values nested the same way).
///
/// # Safety
///
/// [`Fill::grow`] may be called once every slot of `lo..hi` handed out by [`Fill::slots`] has
/// been written through [`Slots::write`]; an implementation must make that sound.
pub unsafe trait Fill: Send {
    type Value: Send;
    type Slots<'s>: Slots<Value = Self::Value>
    where
        Self: 's;
    /// Whether `lo..hi` can be written straight into spare capacity: every sequence holds
    /// at most `lo` elements and has room for `hi`.
    fn fits(&self, lo: usize, hi: usize) -> bool;
    /// Zeroes each sequence up to `lo`, then hands out its spare slots for `lo..hi`.
    fn slots(&mut self, lo: usize, hi: usize) -> Self::Slots<'_>;
    /// Makes `lo..hi` part of each sequence.
    ///
    /// # Safety
    ///
    /// Every slot of `lo..hi` from the last [`Fill::slots`] was written.
    unsafe fn grow(&mut self, hi: usize);
    /// `a[j] = v` with the semantics of a zeroed sequence of the final length: elements
    /// skipped so far become zero, and an index past the end panics as indexing does.
    fn store(&mut self, j: usize, v: Self::Value);
}

/// A Vec being filled towards length `n` (see [`filling`]).
pub struct Filling<'a, T> {
    vec: &'a mut Vec<T>,
    n: usize,
}

impl<'a, T> Filling<'a, T> {
    /// `vec`, to be filled to length `n`.
    #[inline(always)]
    pub fn of(vec: &'a mut Vec<T>, n: usize) -> Self {
        Filling { vec, n }
    }
}

// SAFETY: `grow` sets the length over slots `slots` handed out, which the caller wrote.
unsafe impl<T: Real + Send> Fill for Filling<'_, T> {
    type Value = T;
    type Slots<'s>
        = FillSlots<'s, T>
    where
        Self: 's;
    #[inline]
    fn fits(&self, lo: usize, hi: usize) -> bool {
        self.vec.len() <= lo && hi <= self.n
    }
    #[inline]
    fn slots(&mut self, lo: usize, hi: usize) -> FillSlots<'_, T> {
        self.vec.resize(lo, T::default());
        self.vec.reserve(hi.saturating_sub(lo));
        let data = &mut self.vec.spare_capacity_mut()[..hi.saturating_sub(lo)];
        FillSlots { data, base: lo }
    }
    #[inline]
    unsafe fn grow(&mut self, hi: usize) {
        debug_assert!(hi <= self.vec.capacity());
        // SAFETY: the caller wrote every slot from the length up to `hi`.
        unsafe { self.vec.set_len(hi) }
    }
    #[inline]
    fn store(&mut self, j: usize, v: T) {
        if j >= self.n {
            out_of_bounds(self.n, j);
        }
        if j >= self.vec.len() {
            self.vec.resize(j + 1, T::default());
        }
        self.vec[j] = v;
    }
}

// SAFETY: both halves keep the contract.
unsafe impl<A: Fill, B: Fill> Fill for (A, B) {
    type Value = (A::Value, B::Value);
    type Slots<'s>
        = (A::Slots<'s>, B::Slots<'s>)
    where
        Self: 's;
    #[inline]
    fn fits(&self, lo: usize, hi: usize) -> bool {
        self.0.fits(lo, hi) && self.1.fits(lo, hi)
    }
    #[inline]
    fn slots(&mut self, lo: usize, hi: usize) -> Self::Slots<'_> {
        (self.0.slots(lo, hi), self.1.slots(lo, hi))
    }
    #[inline]
    unsafe fn grow(&mut self, hi: usize) {
        // SAFETY: the caller wrote both halves' slots.
        unsafe {
            self.0.grow(hi);
            self.1.grow(hi);
        }
    }
    #[inline]
    fn store(&mut self, j: usize, v: Self::Value) {
        self.0.store(j, v.0);
        self.1.store(j, v.1);
    }
}

/// The unwritten elements `base..base + data.len()` of sequences being filled, cut like a
/// [`Chunk`] for the threads of [`fill_for`].
pub trait Slots: Split {
    type Value;
    /// Writes element `j`.
    fn write(&mut self, j: usize, v: Self::Value);
    /// Writes every element, `value(j)` at `j`.
    #[inline(always)]
    fn write_all(&mut self, value: &impl Fn(usize) -> Self::Value) {
        let (from, to) = self.range();
        for j in from..to {
            self.write(j, value(j));
        }
    }
    /// The elements held: `base..base + len`.
    fn range(&self) -> (usize, usize);
}

/// The spare slots of one [`Filling`]: a [`Chunk`] of them, split for threads as one.
pub type FillSlots<'a, T> = Chunk<'a, MaybeUninit<T>>;

impl<T: Send> Slots for Chunk<'_, MaybeUninit<T>> {
    type Value = T;
    #[inline(always)]
    fn write(&mut self, j: usize, v: T) {
        self.data[j - self.base].write(v);
    }
    #[inline(always)]
    fn write_all(&mut self, value: &impl Fn(usize) -> T) {
        write_from(self.data, self.base, value)
    }
    #[inline(always)]
    fn range(&self) -> (usize, usize) {
        (self.base, self.base + self.data.len())
    }
}

/// `data[k] = value(base + k)` for every k. A function of its own so that LLVM knows `data`
/// aliases nothing `value` reads (`&mut` arguments are `noalias`), and can keep what
/// `value` loads through its captures out of the loop and vectorise it.
#[inline(always)]
fn write_from<T>(data: &mut [MaybeUninit<T>], base: usize, value: &impl Fn(usize) -> T) {
    for (k, d) in data.iter_mut().enumerate() {
        d.write(value(base + k));
    }
}

impl<A: Slots, B: Slots> Slots for (A, B) {
    type Value = (A::Value, B::Value);
    #[inline(always)]
    fn write(&mut self, j: usize, v: Self::Value) {
        self.0.write(j, v.0);
        self.1.write(j, v.1);
    }
    #[inline(always)]
    fn range(&self) -> (usize, usize) {
        self.0.range()
    }
}

/// `for j in lo..hi { out[j] = value(j) }` over rayon's threads (as [`split_for`]), written
/// straight into the spare capacity of the sequences being filled.
#[inline]
pub fn fill_for<F: Fill>(
    lo: usize,
    hi: usize,
    mut out: F,
    value: impl Fn(usize) -> F::Value + Sync,
) {
    if lo >= hi {
        return;
    }
    if !out.fits(lo, hi) {
        return (lo..hi).for_each(|j| out.store(j, value(j)));
    }
    let slots = out.slots(lo, hi);
    // `value` moves into the closure, so what it captures sits in the closure `split_for`
    // passes by reference (a `noalias` argument): LLVM keeps those loads out of the loop.
    split_for(lo, hi, slots, &move |mut s: F::Slots<'_>, _, _| {
        s.write_all(&value)
    });
    // SAFETY: `split_for` returned, so its pieces, which cover `lo..hi`, all ran their loop
    // to the end (a panic in `value` propagates before this line).
    unsafe { out.grow(hi) }
}

/// [`fill_for`] on the calling thread, for a loop whose closure cannot be shared with others.
#[inline]
pub fn fill_seq<F: Fill>(
    lo: usize,
    hi: usize,
    mut out: F,
    mut value: impl FnMut(usize) -> F::Value,
) {
    if lo >= hi {
        return;
    }
    if !out.fits(lo, hi) {
        return (lo..hi).for_each(|j| out.store(j, value(j)));
    }
    let mut slots = out.slots(lo, hi);
    let (_, end) = slots.range();
    for j in lo..end {
        slots.write(j, value(j));
    }
    drop(slots);
    // SAFETY: the loop above wrote every slot of `lo..hi`.
    unsafe { out.grow(hi) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: stores into a zeroed Vec.
    fn zeroed(n: usize, loops: &[(usize, usize)], f: impl Fn(usize) -> f64) -> Vec<f64> {
        let mut v = vec![0.0; n];
        for &(lo, hi) in loops {
            (lo..hi).for_each(|j| v[j] = f(j));
        }
        v
    }

    fn filled(
        n: usize,
        loops: &[(usize, usize)],
        f: impl Fn(usize) -> f64 + Sync,
        par: bool,
    ) -> Vec<f64> {
        let like = vec![0.0; n];
        let mut v = filling(&like);
        for &(lo, hi) in loops {
            if par {
                fill_for(lo, hi, Filling::of(&mut v, n), &f);
            } else {
                fill_seq(lo, hi, Filling::of(&mut v, n), &f);
            }
        }
        fill_rest(&mut v, n);
        v
    }

    #[test]
    fn filling_matches_stores_into_zeros_in_any_order() {
        let f = |j: usize| j as f64 * 0.5 + 1.0;
        let n = 3 * crate::__private::SPLIT_MIN + 7;
        let cases: &[&[(usize, usize)]] = &[
            &[(0, 1), (1, n - 1), (n - 1, n)],
            &[(3, 10), (10, n - 2)],
            &[],
            &[(5, 5)],
            &[(100, 200), (50, 150), (0, 10)],
            &[(0, n), (n / 2, n / 2 + 3)],
            &[(n, n)],
        ];
        for loops in cases {
            for par in [false, true] {
                assert_eq!(
                    filled(n, loops, f, par),
                    zeroed(n, loops, f),
                    "{loops:?} {par}"
                );
            }
        }
    }

    #[test]
    fn pairs_fill_both() {
        let n = 2 * crate::__private::SPLIT_MIN + 1;
        let like = vec![0.0f32; n];
        let (mut a, mut b) = (filling(&like), filling(&like));
        fill_for(
            1,
            n - 1,
            (Filling::of(&mut a, n), Filling::of(&mut b, n)),
            |j| (j as f32, -(j as f32)),
        );
        fill_rest(&mut a, n);
        fill_rest(&mut b, n);
        assert_eq!(a[0], 0.0);
        assert_eq!(a[n - 1], 0.0);
        assert!((1..n - 1).all(|j| a[j] == j as f32 && b[j] == -(j as f32)));
    }

    #[test]
    #[should_panic(expected = "index out of bounds: the len is 4 but the index is 4")]
    fn past_the_end_panics_as_indexing_does() {
        filled(4, &[(2, 6)], |j| j as f64, true);
    }

    #[test]
    fn a_panicking_value_leaves_no_unwritten_element_visible() {
        let n = 3 * crate::__private::SPLIT_MIN;
        let like = vec![0.0; n];
        let mut v = filling(&like);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fill_for(0, n, Filling::of(&mut v, n), |j| {
                assert!(j != n - 5, "boom");
                1.0
            })
        }));
        assert!(r.is_err());
        assert_eq!(v.len(), 0);
    }
}
