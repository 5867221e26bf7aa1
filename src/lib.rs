//! ferrax: JAX's composable function transformations for Rust.
//!
//! `#[grad]` differentiates ordinary Rust functions at compile time (see
//! [`grad`](macro@grad) and the `ferrax-macros` crate docs for the accepted language);
//! the runtime crate holds the array primitives.
//!
//! ```
//! use ferrax::prelude::*;
//!
//! #[grad]
//! fn rosen(x: &[f64]) -> f64 {
//!     let mut s = 0.0;
//!     for i in 0..x.len() - 1 {
//!         let a = x[i + 1] - x[i] * x[i];
//!         let b = 1.0 - x[i];
//!         s += 100.0 * a * a + b * b;
//!     }
//!     s
//! }
//!
//! let g = rosen_grad(&[1.0, 1.0, 1.0]);
//! assert_eq!(g, vec![0.0, 0.0, 0.0]);
//! ```
//!
//! The transforms compose: [`vmap`](macro@vmap) over `#[grad]` gives per-example gradients,
//! [`jacobian`](macro@jacobian) picks forward or reverse mode, [`hessian`](macro@hessian)
//! is forward over reverse.
//!
//! ```
//! use ferrax::prelude::*;
//!
//! #[vmap(in_axes = (None, 0, 0))] // w shared, one example per row of x and y
//! #[grad(wrt(w))]
//! fn loss(w: &Tensor, x: &Tensor, y: &Tensor) -> Tensor {
//!     (x.matmul(w).tanh() - y).powi(2).sum()
//! }
//!
//! let w = Tensor::ones(&[3, 2], DType::F64);
//! let (xs, ys) = (Tensor::ones(&[8, 3], DType::F64), Tensor::zeros(&[8, 2], DType::F64));
//! assert_eq!(loss_vmap(&w, &xs, &ys).shape(), &[8]);
//! assert_eq!(loss_grad_vmap(&w, &xs, &ys).shape(), &[8, 3, 2]); // one gradient per example
//!
//! #[jacobian]
//! fn g(x: &Tensor) -> Tensor {
//!     x.sin() * x.sum()
//! }
//! assert_eq!(g_jacobian(&Tensor::ones(&[4], DType::F64)).shape(), &[4, 4]);
//!
//! #[hessian]
//! fn h(x: &Tensor) -> Tensor {
//!     (x * x * x).sum()
//! }
//! let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
//! assert_eq!(h_hessian(&x).to_vec::<f64>(), vec![6.0, 0.0, 0.0, 12.0]);
//! ```
//!
//! Linear algebra differentiates too: `a.solve(&b)`, `a.inv()`, `a.det()`,
//! `a.logabsdet()`, `let (sign, log) = a.slogdet()`, `a.cholesky()`, `l.solve_triangular(&b, lower)`, `let (w, v) =
//! a.eigh()`, `let (q, r) = a.qr()`, `let (u, s, vt) = a.svd()`, batched over leading axes,
//! each decomposed once for its value and its derivatives.
//!
//! ```
//! use ferrax::prelude::*;
//!
//! /// The gap between the two eigenvalues of a symmetric 2 x 2 matrix.
//! #[grad]
//! fn gap(a: &Tensor) -> Tensor {
//!     let (w, _) = a.eigh();
//!     w.slice(0, 1, 2).sum() - w.slice(0, 0, 1).sum()
//! }
//!
//! let a = Tensor::from_vec(vec![2.0, 1.0, 1.0, 3.0], &[2, 2]);
//! let (_, v) = a.eigh();
//! let (v0, v1) = (v.slice(1, 0, 1), v.slice(1, 1, 2));
//! let want = v1.matmul(&v1.mt()) - v0.matmul(&v0.mt()); // d w_k / da = v_k v_kᵀ
//! assert!((gap_grad(&a) - want).abs().max().item::<f64>() < 1e-12);
//! ```
pub use ferrax_macros::*;
pub use ferrax_runtime::*;

/// Everything a user needs: `use ferrax::prelude::*;`.
pub mod prelude {
    pub use crate::stop_gradient;
    pub use ferrax_macros::{
        Differentiable, custom_jvp, custom_vjp, grad, hessian, jacobian, vmap,
    };
    pub use ferrax_runtime::prelude::*;
}

/// Returns `x` unchanged; inside a `#[grad]` function its derivative is zero.
///
/// ```
/// use ferrax::prelude::*;
///
/// #[grad]
/// fn f(x: f64) -> f64 {
///     x * stop_gradient(x)
/// }
///
/// assert_eq!(f_grad(3.0), 3.0);
/// ```
#[inline(always)]
pub fn stop_gradient<T>(x: T) -> T {
    x
}

#[doc(hidden)]
pub mod tensor_rules;

#[doc(hidden)]
pub mod batch_rules;

#[doc(hidden)]
pub mod entry;

mod fill;

#[doc(hidden)]
pub mod fuse;

#[doc(hidden)]
pub mod per_example;

#[doc(hidden)]
pub mod lanes;

#[doc(hidden)]
pub mod slot;

/// Support for the code `#[grad]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::batch_rules as b;
    pub use crate::entry;
    pub use crate::fill::{
        Fill, FillSlots, Filling, Slots, fill_for, fill_rest, fill_seq, filling,
    };
    pub use crate::fuse;
    pub use crate::lanes;
    pub use crate::per_example as ex;
    pub use crate::slot;
    pub use crate::tensor_rules as t;

    /// An integer or bool field of a parameter struct, cast with `as` (`p.n as f64`) in a
    /// function whose fields are read as floats; a float field there would lose its
    /// derivative to the cast, and is an error instead.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` field cast with `as` in a #[grad] function: the cast would drop its derivative",
        label = "a float field, cast",
        note = "read it with a typed `let` first (`let k: f64 = p.k;`), then cast `k`"
    )]
    pub trait IntField: Copy {}
    macro_rules! int_fields {
        ($($t:ty),*) => { $(impl IntField for $t {})* };
    }
    int_fields!(
        u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char
    );

    /// `n`, an integer field of a parameter struct cast with `as` (see [`IntField`]).
    #[inline(always)]
    pub fn int_field<T: IntField>(n: T) -> T {
        n
    }

    /// The float types generated code works over.
    pub trait Real: Copy + Default + std::ops::AddAssign + std::iter::Sum {
        fn from_i32(n: i32) -> Self;
    }
    impl Real for f32 {
        #[inline(always)]
        fn from_i32(n: i32) -> Self {
            n as f32
        }
    }
    impl Real for f64 {
        #[inline(always)]
        fn from_i32(n: i32) -> Self {
            n as f64
        }
    }

    /// `n` as the float type of `like`.
    #[inline(always)]
    pub fn int_as_float<T: Real>(_like: T, n: i32) -> T {
        T::from_i32(n)
    }

    /// A zero Vec as long as `x`. Long ones are zeroed on rayon's threads: a gradient's
    /// loops that fill it run there too (see [`split_for`]), and one thread writing
    /// megabytes of zeros would cost a large part of their time.
    #[inline]
    pub fn zeros<T: Real + Send>(x: &[T]) -> Vec<T> {
        let n = x.len();
        if n < 4 * SPLIT_MIN || rayon::current_num_threads() < 2 {
            return vec![T::default(); n];
        }
        use rayon::prelude::*;
        let mut v: Vec<T> = Vec::with_capacity(n);
        v.spare_capacity_mut()
            .par_chunks_mut(SPLIT_MIN)
            .for_each(|c| c.iter_mut().for_each(|e| _ = e.write(T::default())));
        // SAFETY: the first n elements were all written just above.
        unsafe { v.set_len(n) };
        v
    }

    /// A zero array shaped like `x`.
    #[inline(always)]
    pub fn zeros_array<T: Real, const N: usize>(_x: &[T; N]) -> [T; N] {
        [T::default(); N]
    }

    /// The sum of the elements.
    #[inline]
    pub fn sum<T: Real>(x: &[T]) -> T {
        x.iter().copied().sum()
    }

    /// The rows of a matrix given by its columns (each `m` long).
    pub fn rows_of_columns<T: Copy>(cols: &[Vec<T>], m: usize) -> Vec<Vec<T>> {
        (0..m)
            .map(|i| cols.iter().map(|c| c[i]).collect())
            .collect()
    }

    /// `pass(e_k)` for every unit vector `e_k` of length `n`, in order: the passes of a
    /// Jacobian or Hessian of scalar code, one per input or output element.
    pub fn unit_passes<T: Real, R>(n: usize, mut pass: impl FnMut(&[T]) -> R) -> Vec<R> {
        let mut e = vec![T::default(); n];
        (0..n)
            .map(|k| {
                e[k] = T::from_i32(1);
                let r = pass(&e);
                e[k] = T::default();
                r
            })
            .collect()
    }

    /// An element of a sequence adjoint: a float, or a batched float (a `[B]` tensor, in a
    /// list of them under `#[vmap]`).
    pub trait SeqElem {
        /// `self += v`.
        fn add(&mut self, v: &Self);
    }
    impl<T: Real> SeqElem for T {
        #[inline(always)]
        fn add(&mut self, v: &T) {
            *self += *v;
        }
    }
    impl SeqElem for crate::Tensor {
        #[track_caller]
        fn add(&mut self, v: &crate::Tensor) {
            t::acc(self, v);
        }
    }

    /// How many times `for _ in lo..hi` (`lo..=hi` where `inclusive`) runs: the capacity of
    /// a reverse sweep's tapes for the loop (at most 2^20; 0 where it does not fit).
    #[inline]
    pub fn trips<T: TryInto<i128>>(lo: T, hi: T, inclusive: bool) -> usize {
        match (lo.try_into(), hi.try_into()) {
            (Ok(lo), Ok(hi)) => usize::try_from(hi - lo + inclusive as i128)
                .unwrap_or(0)
                .min(1 << 20),
            _ => 0,
        }
    }

    /// `target[k] += value[k]` for every k.
    #[inline]
    pub fn add_assign_seq<T: SeqElem>(target: &mut [T], value: &[T]) {
        for (t, v) in target.iter_mut().zip(value) {
            t.add(v);
        }
    }

    /// `target[offset + k] += value[k]`: a view's adjoint (`&x[offset..]`) into its base's.
    #[inline]
    pub fn add_assign_seq_at<T: SeqElem>(target: &mut [T], offset: usize, value: &[T]) {
        add_assign_seq(&mut target[offset..offset + value.len()], value);
    }

    /// Something whose element writes can be undone: a Vec (pushes too) or an array.
    pub trait Undo<T> {
        fn set(&mut self, i: usize, v: T);
        fn unpush(&mut self);
    }
    impl<T> Undo<T> for Vec<T> {
        #[inline(always)]
        fn set(&mut self, i: usize, v: T) {
            self[i] = v;
        }
        #[inline(always)]
        fn unpush(&mut self) {
            self.pop();
        }
    }
    impl<T, const N: usize> Undo<T> for [T; N] {
        #[inline(always)]
        fn set(&mut self, i: usize, v: T) {
            self[i] = v;
        }
        #[inline(always)]
        fn unpush(&mut self) {}
    }

    /// The elements `base..base + data.len()` of a sequence, indexed by their index in the
    /// whole sequence: one thread's share of the output of a loop [`split_for`] runs.
    pub struct Chunk<'a, T> {
        pub(crate) data: &'a mut [T],
        pub(crate) base: usize,
    }

    impl<'a, T> Chunk<'a, T> {
        /// The whole of `data`.
        #[inline(always)]
        pub fn of(data: &'a mut [T]) -> Self {
            Chunk { data, base: 0 }
        }
    }

    impl<T> std::ops::Index<usize> for Chunk<'_, T> {
        type Output = T;
        #[inline(always)]
        fn index(&self, i: usize) -> &T {
            &self.data[i - self.base]
        }
    }

    impl<T> std::ops::IndexMut<usize> for Chunk<'_, T> {
        #[inline(always)]
        fn index_mut(&mut self, i: usize) -> &mut T {
            &mut self.data[i - self.base]
        }
    }

    /// Outputs of a split loop that can be cut at an element index: a [`Chunk`], or a pair
    /// of them (nested for more).
    pub trait Split: Send + Sized {
        /// The elements before `at` and those from `at` on (`at` is clamped to the end).
        fn split(self, at: usize) -> (Self, Self);
    }

    impl<T: Send> Split for Chunk<'_, T> {
        #[inline]
        fn split(self, at: usize) -> (Self, Self) {
            let base = self.base;
            let at = at.clamp(base, base + self.data.len());
            let (a, b) = self.data.split_at_mut(at - base);
            (Chunk { data: a, base }, Chunk { data: b, base: at })
        }
    }

    impl<A: Split, B: Split> Split for (A, B) {
        #[inline]
        fn split(self, at: usize) -> (Self, Self) {
            let (a0, a1) = self.0.split(at);
            let (b0, b1) = self.1.split(at);
            ((a0, b0), (a1, b1))
        }
    }

    /// Loops shorter than this run on the calling thread: waking another costs 5-20 us, and
    /// an iteration of a gradient's loop costs about a nanosecond.
    pub const SPLIT_MIN: usize = 1 << 15;

    /// Runs `body(outputs, from, to)` over pieces of `lo..hi` on rayon's threads, each with
    /// the outputs cut to its piece: a loop whose iterations are independent and each write
    /// only their own element. Short loops, and a pool of one thread, run in one piece.
    pub fn split_for<P: Split>(
        lo: usize,
        hi: usize,
        outputs: P,
        body: &(impl Fn(P, usize, usize) + Sync),
    ) {
        let n = hi.saturating_sub(lo);
        let threads = rayon::current_num_threads();
        if n < SPLIT_MIN || threads < 2 {
            return piece(outputs, lo, hi, body);
        }
        // A few pieces per thread, so a thread slowed by the machine's other work is helped.
        let grain = n.div_ceil(4 * threads).max(SPLIT_MIN / 4);
        fn run<P: Split>(
            lo: usize,
            hi: usize,
            grain: usize,
            outputs: P,
            body: &(impl Fn(P, usize, usize) + Sync),
        ) {
            if hi - lo <= grain {
                return piece(outputs, lo, hi, body);
            }
            let mid = lo + (hi - lo) / 2;
            let (a, b) = outputs.split(mid);
            rayon::join(
                || run(lo, mid, grain, a, body),
                || run(mid, hi, grain, b, body),
            );
        }
        run(lo, hi, grain, outputs, body)
    }

    /// One piece of a split loop, compiled for AVX-512 or AVX2 where the CPU has them (the
    /// loop is inlined into a function built with those features, so LLVM vectorises it
    /// eight or four f64 lanes wide instead of baseline x86-64's two; the arithmetic is the
    /// same, LLVM contracts no `a * b + c` into an FMA). On the Rosenbrock gradient, two
    /// threads: 0.45 ms with AVX2 only, 0.34 with AVX-512.
    #[inline(always)]
    fn piece<P>(outputs: P, lo: usize, hi: usize, body: &impl Fn(P, usize, usize)) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            fn avx2<P>(outputs: P, lo: usize, hi: usize, body: &impl Fn(P, usize, usize)) {
                body(outputs, lo, hi)
            }
            #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
            fn avx512<P>(outputs: P, lo: usize, hi: usize, body: &impl Fn(P, usize, usize)) {
                body(outputs, lo, hi)
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: the CPU has the features `avx512` is compiled for.
                return unsafe { avx512(outputs, lo, hi, body) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has the features `avx2` is compiled for.
                return unsafe { avx2(outputs, lo, hi, body) };
            }
        }
        body(outputs, lo, hi)
    }

    const PUSHED: usize = usize::MAX;

    /// Logs the element `arr[i]` is about to lose.
    #[inline(always)]
    pub fn log_write<T: Copy>(log: &mut Vec<(usize, T)>, arr: &[T], i: usize) {
        log.push((i, arr[i]));
    }

    /// Logs a push onto `arr`.
    #[inline(always)]
    pub fn log_push<T: Copy + Default>(log: &mut Vec<(usize, T)>, _arr: &[T]) {
        log.push((PUSHED, T::default()));
    }

    /// Undoes the last logged write.
    #[inline(always)]
    pub fn undo_one<T: Copy, A: Undo<T> + ?Sized>(log: &mut Vec<(usize, T)>, arr: &mut A) {
        if let Some((i, v)) = log.pop() {
            if i == PUSHED {
                arr.unpush()
            } else {
                arr.set(i, v)
            }
        }
    }

    /// Undoes logged writes until `log.len() == mark`.
    #[inline]
    pub fn undo_to<T: Copy, A: Undo<T> + ?Sized>(
        log: &mut Vec<(usize, T)>,
        arr: &mut A,
        mark: usize,
    ) {
        while log.len() > mark {
            undo_one(log, arr);
        }
    }
}
