//! Shapes and strided layouts: row-major strides, broadcasting, axis normalisation and
//! the view transformations (permute, broadcast, slice, reshape without copying).

use crate::error::{Error, Result};

/// Number of elements of a shape (1 for the 0-d shape `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major (C-order) strides of a shape, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Steps {
    let mut strides = Steps::from_elem(0, shape.len());
    let mut acc = 1isize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= d.max(1) as isize;
    }
    strides
}

/// Turns a possibly negative axis into an index in `0..ndim`.
pub fn normalize_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    normalize_axis_in(op, axis, shape.len(), shape)
}

/// Like [`normalize_axis`] with an explicit count of valid axes (`ndim + 1` for `unsqueeze`).
pub(crate) fn normalize_axis_in(
    op: &'static str,
    axis: isize,
    ndim: usize,
    shape: &[usize],
) -> Result<usize> {
    let n = ndim as isize;
    let a = if axis < 0 { axis + n } else { axis };
    if a < 0 || a >= n {
        return Err(Error::BadAxis {
            op,
            axis,
            ndim,
            shape: shape.to_vec(),
        });
    }
    Ok(a as usize)
}

/// The NumPy broadcast of two shapes: align trailing axes; each pair must be equal or contain a 1.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: a.to_vec(),
                    rhs: b.to_vec(),
                    reason: "cannot be broadcast together".into(),
                });
            }
        };
    }
    Ok(out)
}

/// The sizes of a layout's axes, inline up to four (no allocation for the tensors of most
/// programs).
pub type Dims = smallvec::SmallVec<[usize; 4]>;

/// The strides of a layout's axes, inline up to four.
pub type Steps = smallvec::SmallVec<[isize; 4]>;

/// Where a tensor's elements sit in its storage: element `idx` is at
/// `offset + sum(idx[d] * strides[d])`.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// Size of each axis.
    pub shape: Dims,
    /// Step in storage elements along each axis (0 for a broadcast axis).
    pub strides: Steps,
    /// Storage index of the first element.
    pub offset: usize,
}

/// A copy of each axis list at once (a derived clone copies element by element: a GPU
/// step clones some 300 layouts).
impl Clone for Layout {
    fn clone(&self) -> Layout {
        Layout {
            shape: Dims::from_slice(&self.shape),
            strides: Steps::from_slice(&self.strides),
            offset: self.offset,
        }
    }
}

impl Layout {
    /// The row-major layout of `shape` at offset 0.
    pub fn contiguous(shape: &[usize]) -> Layout {
        Layout {
            shape: Dims::from_slice(shape),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// The same layout starting at storage index `offset`.
    pub fn with_offset(mut self, offset: usize) -> Layout {
        self.offset = offset;
        self
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Whether the elements are stored row-major without gaps from `offset` on
    /// (axes of size 1 may have any stride).
    pub fn is_contiguous(&self) -> bool {
        if self.numel() == 0 {
            return true;
        }
        let mut expected = 1isize;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d as isize;
        }
        true
    }

    /// For a permuted view of contiguous storage (a transpose, say): the axes in the order
    /// they are stored, outermost first, so that `self.permute(&order)` is contiguous.
    /// `None` for layouts with gaps or repeats.
    pub fn storage_order(&self) -> Option<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.shape.len()).collect();
        order.sort_by_key(|&d| std::cmp::Reverse(self.strides[d]));
        self.permute(&order).is_contiguous().then_some(order)
    }

    /// The layout with axes reordered: new axis `i` is old axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Layout {
        Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        }
    }

    /// The layout viewed at a broadcast `shape` (stride 0 on the axes it repeats).
    pub fn broadcast_to(&self, op: &'static str, shape: &[usize]) -> Result<Layout> {
        let err = || {
            Error::ShapeMismatch {
            op,
            lhs: self.shape.to_vec(),
            rhs: shape.to_vec(),
            reason: "cannot be broadcast: the first must be 1 or equal to the second on each trailing axis".into(),
        }
        };
        if shape.len() < self.shape.len() {
            return Err(err());
        }
        let lead = shape.len() - self.shape.len();
        let mut strides = Steps::from_elem(0, shape.len());
        for (i, &d) in shape.iter().enumerate().skip(lead) {
            let (sd, ss) = (self.shape[i - lead], self.strides[i - lead]);
            strides[i] = if sd == d {
                ss
            } else if sd == 1 {
                0
            } else {
                return Err(err());
            };
        }
        Ok(Layout {
            shape: Dims::from_slice(shape),
            strides,
            offset: self.offset,
        })
    }

    /// The layout restricted to `start..end` with `step` along `axis` (bounds already checked).
    pub fn slice(&self, axis: usize, start: usize, end: usize, step: usize) -> Layout {
        let mut l = self.clone();
        let len = if end > start {
            (end - start).div_ceil(step)
        } else {
            0
        };
        if len > 0 {
            l.offset = (self.offset as isize + start as isize * self.strides[axis]) as usize;
        }
        l.shape[axis] = len;
        l.strides[axis] = self.strides[axis] * step as isize;
        l
    }

    /// The layout with a size-1 axis inserted at `axis`.
    pub fn unsqueeze(&self, axis: usize) -> Layout {
        let mut l = self.clone();
        let stride = if axis < self.shape.len() {
            self.strides[axis] * self.shape[axis] as isize
        } else {
            1
        };
        l.shape.insert(axis, 1);
        l.strides.insert(axis, stride);
        l
    }

    /// The layout with the size-1 axis `axis` removed.
    pub fn squeeze(&self, axis: usize) -> Layout {
        let mut l = self.clone();
        l.shape.remove(axis);
        l.strides.remove(axis);
        l
    }

    /// The layout of the same elements read in row-major order as `shape`, if that needs
    /// no copy (the caller has checked that the element counts agree).
    pub fn reshape(&self, shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout {
                shape: Dims::from_slice(shape),
                strides: contiguous_strides(shape),
                offset: self.offset,
            });
        }
        // Split the old axes into chunks that are contiguous among themselves, and check
        // that the new axes tile each chunk exactly (the algorithm of NumPy and PyTorch).
        let mut strides = Steps::from_elem(0, shape.len());
        let mut view_d = shape.len() as isize - 1;
        let mut chunk_base = *self.strides.last()?;
        let mut tensor_numel = 1usize;
        let mut view_numel = 1usize;
        for d in (0..self.shape.len()).rev() {
            tensor_numel *= self.shape[d];
            let chunk_ends = d == 0
                || (self.shape[d - 1] != 1
                    && self.strides[d - 1] != tensor_numel as isize * chunk_base);
            if chunk_ends {
                while view_d >= 0 && (view_numel < tensor_numel || shape[view_d as usize] == 1) {
                    strides[view_d as usize] = view_numel as isize * chunk_base;
                    view_numel *= shape[view_d as usize];
                    view_d -= 1;
                }
                if view_numel != tensor_numel {
                    return None;
                }
                if d > 0 {
                    chunk_base = self.strides[d - 1];
                    tensor_numel = 1;
                    view_numel = 1;
                }
            }
        }
        (view_d == -1).then(|| Layout {
            shape: Dims::from_slice(shape),
            strides,
            offset: self.offset,
        })
    }

    /// The same elements with adjacent axes merged where the strides allow, and size-1
    /// axes dropped: fewer, longer loops for strided copies. Always at least one axis.
    pub fn coalesced(&self) -> (Vec<usize>, Vec<isize>) {
        let mut shape: Vec<usize> = Vec::with_capacity(self.shape.len());
        let mut strides: Vec<isize> = Vec::with_capacity(self.shape.len());
        for (&d, &s) in self.shape.iter().zip(&self.strides) {
            if d == 1 {
                continue;
            }
            match (shape.last_mut(), strides.last_mut()) {
                (Some(pd), Some(ps)) if *ps == s * d as isize => {
                    *pd *= d;
                    *ps = s;
                }
                _ => {
                    shape.push(d);
                    strides.push(s);
                }
            }
        }
        if shape.is_empty() {
            shape.push(if self.numel() == 0 { 0 } else { 1 });
            strides.push(1);
        }
        (shape, strides)
    }
}

/// The storage offsets of consecutive positions (row-major) of `shape`, from position
/// `start`, in a layout with `strides` whose first element is at `base`: an odometer, so
/// a step costs an addition where [`unravel_offset`] divides once per axis. Endless: after
/// the last position it starts again from the first.
pub(crate) struct Offsets<'a> {
    shape: &'a [usize],
    strides: &'a [isize],
    idx: Vec<usize>,
    off: isize,
}

impl<'a> Offsets<'a> {
    pub(crate) fn new(start: usize, shape: &'a [usize], strides: &'a [isize], base: usize) -> Self {
        let mut idx = vec![0; shape.len()];
        let mut k = start;
        for (i, &d) in idx.iter_mut().zip(shape).rev() {
            *i = k % d;
            k /= d;
        }
        let off = unravel_offset(start, shape, strides, base) as isize;
        Offsets {
            shape,
            strides,
            idx,
            off,
        }
    }
}

impl Iterator for Offsets<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        let current = self.off as usize;
        for d in (0..self.shape.len()).rev() {
            self.idx[d] += 1;
            self.off += self.strides[d];
            if self.idx[d] < self.shape[d] {
                break;
            }
            self.off -= self.strides[d] * self.shape[d] as isize;
            self.idx[d] = 0;
        }
        Some(current)
    }
}

/// The storage offset of the `k`-th position (row-major) of `shape` in a layout with
/// `strides` whose first element is at `base`.
pub(crate) fn unravel_offset(
    mut k: usize,
    shape: &[usize],
    strides: &[isize],
    base: usize,
) -> usize {
    let mut off = base as isize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        off += (k % d) as isize * s;
        k /= d;
    }
    off as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_step_like_unravel_offset_from_any_start() {
        let cases: [(&[usize], &[isize], usize); 4] = [
            (&[], &[], 5),
            (&[7], &[3], 0),
            (&[2, 3, 4], &[-12, 0, 1], 30),
            (&[3, 1, 5], &[1, 99, -3], 14),
        ];
        for (shape, strides, base) in cases {
            let n = numel(shape);
            for start in 0..n.max(1) {
                let got: Vec<usize> = Offsets::new(start, shape, strides, base)
                    .take(2 * n + 1)
                    .collect();
                let want: Vec<usize> = (start..start + 2 * n + 1)
                    .map(|k| unravel_offset(k % n.max(1), shape, strides, base))
                    .collect();
                assert_eq!(
                    got, want,
                    "shape {shape:?}, strides {strides:?}, from {start}"
                );
            }
        }
    }
}
