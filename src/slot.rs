//! The tangent a `#[grad]` caller passes for an argument the macro cannot type: a call
//! passes one tangent per argument (a callee ignores those of parameters it does not
//! differentiate), and where an argument is a constant of a type only rustc knows
//! (`g(x, SCALE)`, `g(x, N)`, `g(x, &cfg)`), its tangent is a zero of that type if the type
//! is differentiable, else `()`.
//!
//! The choice is made by method resolution on the argument's concrete type ("autoref
//! specialization"): generated code writes `(&&&Probe(&arg)).slot()`, which finds
//! [`ZeroRef::slot`] for a reference to a differentiable type, then [`Zero::slot`] (one
//! reference further) for a differentiable type, then [`Unit::slot`] for any other.

use ferrax_runtime::Differentiable;

/// An argument whose tangent is wanted (see the module's documentation).
pub struct Probe<'a, T>(pub &'a T);

/// The zero tangent of a differentiable argument.
pub trait Zero {
    /// The argument's type.
    type Out;
    /// A zero of the argument's type.
    fn slot(&self) -> Self::Out;
}

impl<T: Differentiable> Zero for &Probe<'_, T> {
    type Out = T;
    #[inline(always)]
    fn slot(&self) -> T {
        crate::tensor_rules::zero_like(self.0)
    }
}

/// The zero tangent of a reference to a differentiable argument (`&cfg`).
pub trait ZeroRef {
    /// The type referred to.
    type Out;
    /// A zero of the type referred to.
    fn slot(&self) -> Self::Out;
}

impl<T: Differentiable> ZeroRef for &&Probe<'_, &T> {
    type Out = T;
    #[inline(always)]
    fn slot(&self) -> T {
        crate::tensor_rules::zero_like(*self.0)
    }
}

/// The zero tangent of a list of tensors taken as a slice (`ws: &[Tensor]`): a `Vec` of
/// zeros, which callers pass as `&[Tensor]`.
impl ZeroRef for &&Probe<'_, &[ferrax_runtime::Tensor]> {
    type Out = Vec<ferrax_runtime::Tensor>;
    #[inline(always)]
    fn slot(&self) -> Self::Out {
        crate::tensor_rules::zero_like(&self.0.to_vec())
    }
}

/// The tangent slot of any other argument: `()`.
pub trait Unit {
    /// `()`.
    fn slot(&self) {}
}

impl<T> Unit for Probe<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_borrow)] // the form generated code writes, whatever the type
    fn differentiable_arguments_get_a_zero_and_others_unit() {
        let (x, n, s): (f64, usize, &str) = (2.5, 3, "cfg");
        let v = vec![1.0f32, 2.0];
        assert_eq!((&&&Probe(&x)).slot(), 0.0);
        assert_eq!((&&&Probe(&&x)).slot(), 0.0);
        assert_eq!((&&&Probe(&v)).slot(), vec![0.0f32; 2]);
        let () = (&&&Probe(&n)).slot();
        let () = (&&&Probe(&s)).slot();
        let ws = [ferrax_runtime::Tensor::ones(
            &[2, 3],
            ferrax_runtime::DType::F64,
        )];
        let zeros = (&&&Probe(&&ws[..])).slot();
        assert_eq!(zeros.len(), 1);
        assert_eq!(zeros[0].shape(), &[2, 3]);
        assert_eq!(zeros[0].to_vec::<f64>(), vec![0.0; 6]);
    }
}
