//! ferrax-runtime: the array runtime behind ferrax.

pub mod cpu;
pub mod element;

pub use element::{DType, Element, Float};

/// The items a user needs, re-exported by `ferrax::prelude`.
pub mod prelude {
    pub use crate::element::{DType, Element, Float};
}
