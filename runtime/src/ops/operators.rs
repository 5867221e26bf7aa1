//! Rust operators on tensors: `+ - * /` for every owned/borrowed combination of two
//! tensors, a tensor and a Rust float on either side, unary `-`, and the assigning forms.
//! Operators that own a tensor no one else holds write the result into its buffer
//! (`ops::inplace`).
//!
//! A Rust float takes the tensor's dtype (`x_f32 * 2.0_f64` is an f32 tensor). Mixing an
//! f32 and an f64 tensor panics; the `try_` methods return that error instead.
//!
//! With a float literal on the left, Rust cannot tell `f32` from `f64` until the end of
//! the function, so `(2.0 * &x).sum()` needs a suffix (`2.0_f32 * &x`) or `&x * 2.0`.

use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::cpu::kernels::{BinaryOp, UnaryOp};
use crate::error::unwrap;
use crate::tensor::Tensor;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A Rust float usable on either side of a tensor operator: `f32` or `f64`.
pub trait Scalar: sealed::Sealed + Copy {
    /// The value as `f64` (exact).
    fn to_f64(self) -> f64;
}

impl Scalar for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Scalar for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

macro_rules! binary_operator {
    ($Trait:ident, $method:ident, $op:ident, $Assign:ident, $assign:ident) => {
        impl $Trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                unwrap(self.try_binary(stringify!($method), BinaryOp::$op, rhs))
            }
        }
        impl $Trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                let mut out = rhs;
                unwrap(out.binary_assign(stringify!($method), BinaryOp::$op, self, false));
                out
            }
        }
        impl $Trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                let mut out = self;
                unwrap(out.binary_assign(stringify!($method), BinaryOp::$op, rhs, true));
                out
            }
        }
        impl $Trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                unwrap(self.binary_both_owned(stringify!($method), BinaryOp::$op, rhs))
            }
        }
        impl<S: Scalar> $Trait<S> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: S) -> Tensor {
                unwrap(self.try_binary_scalar(stringify!($method), BinaryOp::$op, rhs.to_f64(), false))
            }
        }
        impl<S: Scalar> $Trait<S> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: S) -> Tensor {
                let mut out = self;
                unwrap(out.binary_scalar_assign(stringify!($method), BinaryOp::$op, rhs.to_f64(), false));
                out
            }
        }
        binary_operator!(@scalar_lhs $Trait, $method, $op, f32);
        binary_operator!(@scalar_lhs $Trait, $method, $op, f64);
        impl $Assign<&Tensor> for Tensor {
            #[track_caller]
            fn $assign(&mut self, rhs: &Tensor) {
                unwrap(self.binary_assign(stringify!($method), BinaryOp::$op, rhs, true));
            }
        }
        impl $Assign<Tensor> for Tensor {
            #[track_caller]
            fn $assign(&mut self, rhs: Tensor) {
                unwrap(self.binary_assign(stringify!($method), BinaryOp::$op, &rhs, true));
            }
        }
        impl<S: Scalar> $Assign<S> for Tensor {
            #[track_caller]
            fn $assign(&mut self, rhs: S) {
                unwrap(self.binary_scalar_assign(stringify!($method), BinaryOp::$op, rhs.to_f64(), false));
            }
        }
    };
    (@scalar_lhs $Trait:ident, $method:ident, $op:ident, $s:ty) => {
        impl $Trait<&Tensor> for $s {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                unwrap(rhs.try_binary_scalar(stringify!($method), BinaryOp::$op, self as f64, true))
            }
        }
        impl $Trait<Tensor> for $s {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                let mut out = rhs;
                unwrap(out.binary_scalar_assign(stringify!($method), BinaryOp::$op, self as f64, true));
                out
            }
        }
    };
}

binary_operator!(Add, add, Add, AddAssign, add_assign);
binary_operator!(Sub, sub, Sub, SubAssign, sub_assign);
binary_operator!(Mul, mul, Mul, MulAssign, mul_assign);
binary_operator!(Div, div, Div, DivAssign, div_assign);

impl Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        unwrap(self.try_unary("neg", UnaryOp::Neg))
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        let mut out = self;
        unwrap(out.unary_assign("neg", UnaryOp::Neg));
        out
    }
}

/// `iter.sum()` of tensors: their sum, with broadcasting, as `a + b + ..`. Panics for no
/// tensors (a sum of none has no shape, dtype or device: fold from a zero instead,
/// `.fold(x.scalar_like(0.0), |a, b| a + b)`).
///
/// ```
/// use ferrax_runtime::prelude::*;
///
/// let ws = [Tensor::from_vec(vec![1.0, 2.0], &[2]), Tensor::from_vec(vec![3.0, 4.0], &[2])];
/// let total: Tensor = ws.iter().map(|w| w.powi(2).sum()).sum();
/// assert_eq!(total.item::<f64>(), 30.0);
/// ```
impl std::iter::Sum for Tensor {
    #[track_caller]
    fn sum<I: Iterator<Item = Tensor>>(iter: I) -> Tensor {
        reduce_all(iter, "sum", |a, b| a + b)
    }
}

/// `iter.sum()` of borrowed tensors (see the owned form).
impl<'a> std::iter::Sum<&'a Tensor> for Tensor {
    #[track_caller]
    fn sum<I: Iterator<Item = &'a Tensor>>(iter: I) -> Tensor {
        reduce_all(iter.cloned(), "sum", |a, b| a + b)
    }
}

/// `iter.product()` of tensors: their elementwise product, with broadcasting. Panics for no
/// tensors, as the sum does.
impl std::iter::Product for Tensor {
    #[track_caller]
    fn product<I: Iterator<Item = Tensor>>(iter: I) -> Tensor {
        reduce_all(iter, "product", |a, b| a * b)
    }
}

/// `iter.product()` of borrowed tensors (see the owned form).
impl<'a> std::iter::Product<&'a Tensor> for Tensor {
    #[track_caller]
    fn product<I: Iterator<Item = &'a Tensor>>(iter: I) -> Tensor {
        reduce_all(iter.cloned(), "product", |a, b| a * b)
    }
}

#[track_caller]
fn reduce_all(
    mut iter: impl Iterator<Item = Tensor>,
    what: &str,
    op: impl Fn(Tensor, Tensor) -> Tensor,
) -> Tensor {
    match iter.next() {
        Some(first) => iter.fold(first, op),
        None => panic!(
            "`.{what}()` of no tensors: it has no shape, dtype or device; fold from a zero instead (`.fold(x.scalar_like(0.0), |a, b| a + b)`)"
        ),
    }
}
