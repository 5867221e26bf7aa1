//! Where a generated function's body runs: on the caller's thread, or inside rayon's pool.
//!
//! An operation large enough to split over threads, called from a thread outside rayon's
//! pool, hands its parts to the pool and sleeps until they are done: on a two-core VM that
//! costs 15 us back to back and about 50 us after a pause (waking the pool's threads, then
//! the caller), per operation. A derivative pass of a few dozen such operations paid it
//! each time (per-point Hessians of a small network, 1024 points: 1.42 ms, of which the
//! body run once inside the pool took 0.86). Inside the pool an operation's split is a
//! cheap `join` that a spinning thread picks up, and the caller's thread, asleep, no
//! longer competes with the pool's for the cores.
//!
//! Moving a body into the pool costs one such hand-over, which is too much for short calls
//! (a 200 x 200 Hessian, 0.32 ms: 0.35 ms in the pool). So each generated entry point
//! remembers how long its last call took ([`Site`]) and runs in the pool from
//! [`POOL_FROM`]. Bodies that cannot move to another thread (their parameters or their
//! result are not `Send`) always run in place: the macros call `Body::new(..).run(..)`,
//! which resolves to [`Pooled::run`] only where those types are `Send` (autoref
//! specialization, decided by the concrete types at the call; in a generic function, by
//! the bounds it states) and to [`InPlace::run`] otherwise.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A call at least this long (its last run) runs its next call inside rayon's pool.
pub const POOL_FROM: Duration = Duration::from_micros(400);

/// One generated entry point's memory of its last call: its length, in nanoseconds.
pub struct Site(AtomicU64);

impl Site {
    /// A site that has not been called yet (its first call runs in place).
    pub const fn new() -> Self {
        Site(AtomicU64::new(0))
    }

    /// Runs `f` inside rayon's pool where the last call was long and the pool has threads
    /// to spare, else in place; already on one of a pool's threads, in place and untimed
    /// (nothing to decide there).
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        if rayon::current_thread_index().is_some() {
            return f();
        }
        let long = self.0.load(Ordering::Relaxed) >= POOL_FROM.as_nanos() as u64;
        let start = Instant::now();
        let r = if long && rayon::current_num_threads() > 1 {
            rayon::scope(|_| f())
        } else {
            f()
        };
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.store(ns, Ordering::Relaxed);
        r
    }
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

/// A generated function's body `F`, run by [`Pooled::run`] where `P` is `Send` or by
/// [`InPlace::run`] otherwise. `P` is `PhantomData` of the function's parameter types and
/// its return type: what moving the body to another thread moves (the body is the whole
/// function, so its closure captures the parameters and nothing else).
pub struct Body<F, P>(Cell<Option<F>>, PhantomData<P>);

impl<F, P> Body<F, P> {
    /// The body `f` of a function whose parameter and return types are `P`'s.
    pub fn new(f: F, _types: PhantomData<P>) -> Self {
        Body(Cell::new(Some(f)), PhantomData)
    }

    fn take(&self) -> F {
        self.0.take().expect("a body runs once")
    }
}

/// `F`, sent to rayon's pool and back.
struct Sent<F>(F);

// SAFETY: only built by `Pooled::run`, whose `P: Send` says that the parameters the body
// captures and the value it returns may move between threads; the caller's thread waits,
// blocked, until the body has returned.
unsafe impl<F> Send for Sent<F> {}

/// Runs a body that can move to another thread: in rayon's pool where its [`Site`] says
/// the call is long, else in place. (The method call resolves here where the types `P`
/// are `Send`, else to [`InPlace`]: autoref specialization, decided by the concrete types
/// at the call; in a generic function, by the bounds it states.)
pub trait Pooled {
    /// The closure.
    type F;
    /// The body's value.
    fn run<R>(self, site: &Site) -> R
    where
        Self::F: FnOnce() -> R;
}

impl<F, P: Send> Pooled for Body<F, P> {
    type F = F;
    #[inline]
    fn run<R>(self, site: &Site) -> R
    where
        F: FnOnce() -> R,
    {
        let f = Sent(self.take());
        site.run(move || {
            let f = f;
            Sent((f.0)())
        })
        .0
    }
}

/// Runs a body in place (one whose parameters or value cannot move between threads).
pub trait InPlace {
    /// The closure.
    type F;
    /// The body's value.
    fn run<R>(self, site: &Site) -> R
    where
        Self::F: FnOnce() -> R;
}

impl<F, P> InPlace for &Body<F, P> {
    type F = F;
    #[inline]
    fn run<R>(self, _site: &Site) -> R
    where
        F: FnOnce() -> R,
    {
        (self.take())()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use std::rc::Rc;
    // (as the generated code does)
    #[allow(unused_imports)]
    use super::{InPlace as _, Pooled as _};

    #[test]
    fn a_long_call_moves_into_the_pool_and_a_short_one_back() {
        let site = Site::new();
        let on_pool = || rayon::current_thread_index().is_some();
        // (the pool started first: its threads' start is no call's time)
        rayon::join(|| (), || ());
        // first call: in place, and long
        let types = PhantomData::<(&Tensor, bool)>;
        let first = Body::new(
            || {
                std::thread::sleep(POOL_FROM * 2);
                on_pool()
            },
            types,
        )
        .run(&site);
        assert!(!first);
        // the next, short, runs in the pool (where rayon has two threads or more)
        let second = Body::new(on_pool, types).run(&site);
        assert_eq!(second, rayon::current_num_threads() > 1);
        // and the one after it in place again (on a machine busy with other tests, the
        // short call in the pool may itself take long: then a later one)
        assert!((0..20).any(|_| !Body::new(on_pool, types).run(&site)));
    }

    #[test]
    fn a_body_that_cannot_move_runs_in_place() {
        let site = Site::new();
        site.0.store(u64::MAX, Ordering::Relaxed);
        let here = std::thread::current().id();
        let rc = Rc::new(3);
        // (an `Rc` parameter is not `Send`: `run` resolves to the in-place version)
        let types = PhantomData::<(&Tensor, Rc<i32>, (i32, std::thread::ThreadId))>;
        let (v, id) = Body::new(|| (*rc + 1, std::thread::current().id()), types).run(&site);
        assert_eq!((v, id), (4, here));
    }
}
