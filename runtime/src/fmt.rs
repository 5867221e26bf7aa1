//! Printing tensors the way NumPy prints arrays: nested brackets, aligned columns, and
//! `...` in place of the middle of long axes.

use std::fmt;

use crate::element::DType;
use crate::tensor::Tensor;

/// Tensors with more elements than this are summarised.
const THRESHOLD: usize = 1000;
/// Elements kept at each end of a summarised axis.
const EDGE: usize = 3;

/// Formats one float: integers as `3.`, others with up to 8 significant decimals,
/// very large or small magnitudes in scientific notation.
fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        return format!("{v:.4e}");
    }
    if v.fract() == 0.0 {
        return format!("{v:.0}.");
    }
    let s = format!("{v:.8}");
    s.trim_end_matches('0').to_string()
}

/// The row-major indices to show along an axis of `size`, with `None` for the `...`.
fn shown(size: usize, summarise: bool) -> Vec<Option<usize>> {
    if summarise && size > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((size - EDGE..size).map(Some))
            .collect()
    } else {
        (0..size).map(Some).collect()
    }
}

impl Tensor {
    /// The elements as strings, row-major (all of them; the caller summarises).
    fn element_strings(&self) -> Vec<String> {
        let t = self.contiguous();
        match self.dtype() {
            DType::F32 => t
                .contiguous_data::<f32>()
                .iter()
                .map(|&v| format_float(v as f64))
                .collect(),
            DType::F64 => t
                .contiguous_data::<f64>()
                .iter()
                .map(|&v| format_float(v))
                .collect(),
            DType::I32 => t
                .contiguous_data::<i32>()
                .iter()
                .map(|v| v.to_string())
                .collect(),
            DType::Bool => t
                .contiguous_data::<bool>()
                .iter()
                .map(|v| v.to_string())
                .collect(),
        }
    }

    fn write_nested(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let strings = self.element_strings();
        let shape = self.shape();
        if shape.is_empty() {
            return f.write_str(&strings[0]);
        }
        let summarise = self.numel() > THRESHOLD;
        let width = strings.iter().map(String::len).max().unwrap_or(0);
        write_axis(f, &strings, shape, 0, 0, width, summarise)
    }
}

/// Writes the sub-array starting at flat index `base` over axes `depth..`.
fn write_axis(
    f: &mut fmt::Formatter<'_>,
    strings: &[String],
    shape: &[usize],
    depth: usize,
    base: usize,
    width: usize,
    summarise: bool,
) -> fmt::Result {
    let ndim = shape.len();
    let block: usize = shape[depth + 1..].iter().product();
    f.write_str("[")?;
    let sep = if depth + 1 == ndim {
        ", ".to_string()
    } else {
        format!(
            ",{}{}",
            "\n".repeat(ndim - depth - 1),
            " ".repeat(depth + 1)
        )
    };
    for (i, idx) in shown(shape[depth], summarise).into_iter().enumerate() {
        if i > 0 {
            f.write_str(&sep)?;
        }
        match idx {
            None => f.write_str("...")?,
            Some(j) if depth + 1 == ndim => write!(f, "{:>width$}", strings[base + j])?,
            Some(j) => write_axis(
                f,
                strings,
                shape,
                depth + 1,
                base + j * block,
                width,
                summarise,
            )?,
        }
    }
    f.write_str("]")
}

/// NumPy-style: `[[1., 2.],\n [3., 4.]]`; a 0-d tensor prints its value.
impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_nested(f)
    }
}

/// The values with shape, dtype and device: `Tensor([1., 2.], shape=[2], dtype=f32, device=cpu)`.
impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tensor(")?;
        self.write_nested(f)?;
        write!(
            f,
            ", shape={:?}, dtype={}, device={})",
            self.shape(),
            self.dtype(),
            self.device()
        )
    }
}
