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
/// very large or small magnitudes in scientific notation. A precision (`{:.3}`) gives
/// every element that many decimals.
fn format_float(v: f64, precision: Option<usize>) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let p = precision.unwrap_or(4);
        return format!("{v:.p$e}");
    }
    if let Some(p) = precision {
        return format!("{v:.p$}");
    }
    if v.fract() == 0.0 {
        return format!("{v:.0}.");
    }
    let s = format!("{v:.8}");
    s.trim_end_matches('0').to_string()
}

impl Tensor {
    /// The elements as strings, row-major; floats with `precision` decimals if given.
    fn element_strings(&self, precision: Option<usize>) -> Vec<String> {
        if self.device() != crate::device::Device::Cpu {
            return self
                .to_device(&crate::device::Device::Cpu)
                .element_strings(precision);
        }
        match self.dtype() {
            DType::F32 => self
                .contiguous_data::<f32>()
                .iter()
                .map(|&v| format_float(v as f64, precision))
                .collect(),
            DType::F64 => self
                .contiguous_data::<f64>()
                .iter()
                .map(|&v| format_float(v, precision))
                .collect(),
            DType::I32 => self
                .contiguous_data::<i32>()
                .iter()
                .map(|v| v.to_string())
                .collect(),
            DType::Bool => self
                .contiguous_data::<bool>()
                .iter()
                .map(|v| v.to_string())
                .collect(),
        }
    }

    /// The elements that a summary shows: the first and last [`EDGE`] along every axis
    /// longer than `2 * EDGE` (a small copy; the full tensor is never formatted).
    fn summary(&self) -> Tensor {
        let mut t = self.clone();
        for (d, &size) in self.shape().iter().enumerate() {
            if size > 2 * EDGE {
                let axis = d as isize;
                t = Tensor::concat(
                    &[&t.slice(axis, 0, EDGE), &t.slice(axis, size - EDGE, size)],
                    axis,
                );
            }
        }
        t
    }

    fn write_nested(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ndim() == 0 {
            return f.write_str(&self.element_strings(f.precision())[0]);
        }
        let summarise = self.numel() > THRESHOLD;
        let shown = if summarise {
            self.summary()
        } else {
            self.clone()
        };
        let strings = shown.element_strings(f.precision());
        let width = strings.iter().map(String::len).max().unwrap_or(0);
        let layout = Nesting {
            strings: &strings,
            full: self.shape(),
            shown: shown.shape(),
            width,
        };
        layout.write_axis(f, 0, 0)
    }
}

/// What [`Nesting::write_axis`] prints: the shown elements, the full and shown shapes
/// (they differ on summarised axes) and the column width.
struct Nesting<'a> {
    strings: &'a [String],
    full: &'a [usize],
    shown: &'a [usize],
    width: usize,
}

impl Nesting<'_> {
    /// Writes the sub-array starting at flat (shown) index `base` over axes `depth..`.
    fn write_axis(&self, f: &mut fmt::Formatter<'_>, depth: usize, base: usize) -> fmt::Result {
        let ndim = self.full.len();
        let block: usize = self.shown[depth + 1..].iter().product();
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
        let summarised = self.full[depth] != self.shown[depth];
        for j in 0..self.shown[depth] {
            if j > 0 {
                f.write_str(&sep)?;
            }
            if summarised && j == EDGE {
                f.write_str("...")?;
                f.write_str(&sep)?;
            }
            if depth + 1 == ndim {
                write!(f, "{:>width$}", self.strings[base + j], width = self.width)?;
            } else {
                self.write_axis(f, depth + 1, base + j * block)?;
            }
        }
        f.write_str("]")
    }
}

/// NumPy-style: `[[1., 2.],\n [3., 4.]]`; a 0-d tensor prints its value. A precision
/// applies to every element: `format!("{t:.2}")` gives `[0.33, 1.00]`.
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
