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

/// Support for the code `#[grad]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::batch_rules as b;
    pub use crate::tensor_rules as t;

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

    /// A zero Vec as long as `x`.
    #[inline]
    pub fn zeros<T: Real>(x: &[T]) -> Vec<T> {
        vec![T::default(); x.len()]
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

    /// `target[k] += value[k]` for every k.
    #[inline]
    pub fn add_assign_seq<T: Real>(target: &mut [T], value: &[T]) {
        for (t, v) in target.iter_mut().zip(value) {
            *t += *v;
        }
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
