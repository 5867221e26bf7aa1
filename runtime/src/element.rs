//! Element types: the dtypes a [`Tensor`](crate::Tensor) can hold and the Rust types behind them.

use std::fmt;

/// The element type of a tensor.
///
/// Floating dtypes (`F32`, `F64`) take part in arithmetic and differentiation; `I32`
/// holds indices (`argmax_axis`, `index_select`, `one_hot`) and `Bool` holds masks
/// (comparisons, `where_`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 32-bit signed integer (indices).
    I32,
    /// Boolean mask.
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_of(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 8,
            DType::Bool => 1,
        }
    }

    /// Whether this is a floating dtype.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for i32 {}
    impl Sealed for bool {}
}

/// A Rust type that can be a tensor element: `f32`, `f64`, `i32` or `bool`.
pub trait Element: sealed::Sealed + Copy + Send + Sync + fmt::Debug + PartialEq + 'static {
    /// The dtype of tensors holding this type.
    const DTYPE: DType;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for f64 {
    const DTYPE: DType = DType::F64;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}
impl Element for bool {
    const DTYPE: DType = DType::Bool;
}

/// A floating element type: `f32` or `f64`. The CPU kernels are generic over it.
pub trait Float:
    Element + num_traits::Float + num_traits::FloatConst + Default + fmt::Display + std::iter::Sum
{
    /// Converts from `f64`, rounding for `f32`.
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64`, exactly.
    fn to_f64(self) -> f64;
}

impl Float for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}
