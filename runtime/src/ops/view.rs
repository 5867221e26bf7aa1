//! Layout operations: views that share storage (reshape, transpose, permute, broadcast,
//! slice, squeeze, unsqueeze) and the copying ones that gather or join (index_select,
//! concat, stack).

use std::borrow::Borrow;

use rayon::prelude::*;

use crate::cpu::kernels::PAR_THRESHOLD;
use crate::element::{DType, Element};
use crate::error::{Error, Result, unwrap};
use crate::pool;
use crate::shape::{Layout, normalize_axis, normalize_axis_in, numel};
use crate::tensor::{Tensor, any_dispatch, float_dispatch};

impl Tensor {
    /// The same elements, read row-major, in a new shape with as many elements. A view
    /// when the layout allows (always for contiguous tensors), otherwise a copy. Panics if
    /// the element counts differ; see [`Tensor::try_reshape`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape(&[2, 3]);
    /// assert_eq!(x.shape(), &[2, 3]);
    /// ```
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        unwrap(self.try_reshape(shape))
    }

    /// [`Tensor::reshape`], returning an error when the element counts differ.
    pub fn try_reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::BadReshape {
                from: self.shape().to_vec(),
                to: shape.to_vec(),
                from_numel: self.numel(),
                to_numel: numel(shape),
            });
        }
        match self.layout.reshape(shape) {
            Some(layout) => Ok(self.with_layout(layout)),
            None => Ok(self.contiguous().with_layout(Layout::contiguous(shape))),
        }
    }

    /// The tensor flattened to one axis (a view when contiguous).
    pub fn flatten(&self) -> Tensor {
        self.reshape(&[self.numel()])
    }

    /// A view with axes `a` and `b` swapped. Panics on a bad axis; see [`Tensor::try_transpose`].
    #[track_caller]
    pub fn transpose(&self, a: isize, b: isize) -> Tensor {
        unwrap(self.try_transpose(a, b))
    }

    /// [`Tensor::transpose`], returning an error for an axis out of range.
    pub fn try_transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let a = normalize_axis("transpose", a, self.shape())?;
        let b = normalize_axis("transpose", b, self.shape())?;
        let mut perm: Vec<usize> = (0..self.ndim()).collect();
        perm.swap(a, b);
        Ok(self.with_layout(self.layout.permute(&perm)))
    }

    /// A view with axes reordered: axis `i` of the result is axis `axes[i]` of `self`.
    /// Panics unless `axes` is a permutation of the axes; see [`Tensor::try_permute`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::zeros(&[2, 3, 4], DType::F32);
    /// assert_eq!(x.permute(&[2, 0, 1]).shape(), &[4, 2, 3]);
    /// assert_eq!(x.permute(&[-1, 0, 1]).shape(), &[4, 2, 3]);
    /// ```
    #[track_caller]
    pub fn permute(&self, axes: &[isize]) -> Tensor {
        unwrap(self.try_permute(axes))
    }

    /// [`Tensor::permute`], returning an error unless `axes` is a permutation.
    pub fn try_permute(&self, axes: &[isize]) -> Result<Tensor> {
        let perm = axes
            .iter()
            .map(|&a| normalize_axis("permute", a, self.shape()))
            .collect::<Result<Vec<_>>>()?;
        let mut seen = vec![false; self.ndim()];
        for &p in &perm {
            seen[p] = true;
        }
        if perm.len() != self.ndim() || seen.contains(&false) {
            return Err(Error::InvalidArgument {
                op: "permute",
                message: format!(
                    "axes {axes:?} are not a permutation of the axes of shape {:?}",
                    self.shape()
                ),
            });
        }
        Ok(self.with_layout(self.layout.permute(&perm)))
    }

    /// The transpose of a 2-D tensor (a view). Panics for other ranks; see [`Tensor::try_t`].
    #[track_caller]
    pub fn t(&self) -> Tensor {
        unwrap(self.try_t())
    }

    /// [`Tensor::t`], returning an error unless the tensor is 2-D.
    pub fn try_t(&self) -> Result<Tensor> {
        if self.ndim() != 2 {
            return Err(Error::InvalidArgument {
                op: "t",
                message: format!(
                    "needs a 2-D tensor, got shape {:?} (use transpose or permute)",
                    self.shape()
                ),
            });
        }
        self.try_transpose(0, 1)
    }

    /// A view repeating the tensor to `shape` by NumPy's broadcasting rules (no copy).
    /// Panics if it does not broadcast; see [`Tensor::try_broadcast_to`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let row = Tensor::from_vec(vec![1i32, 2], &[2]);
    /// assert_eq!(row.broadcast_to(&[2, 2]).to_vec::<i32>(), vec![1, 2, 1, 2]);
    /// ```
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        unwrap(self.try_broadcast_to(shape))
    }

    /// [`Tensor::broadcast_to`], returning an error if the shapes do not broadcast.
    pub fn try_broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.broadcast_to("broadcast_to", shape)?))
    }

    /// A view of `start..end` along `axis`. Panics if the range is not within the axis;
    /// see [`Tensor::try_slice`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::arange(0.0, 6.0, 1.0, DType::F64).reshape(&[2, 3]);
    /// assert_eq!(x.slice(1, 1, 3).to_vec::<f64>(), vec![1.0, 2.0, 4.0, 5.0]);
    /// assert_eq!(x.slice(-1, 0, 1).shape(), &[2, 1]);
    /// ```
    #[track_caller]
    pub fn slice(&self, axis: isize, start: usize, end: usize) -> Tensor {
        unwrap(self.try_slice_step(axis, start, end, 1))
    }

    /// [`Tensor::slice`], returning an error for a bad axis or range.
    pub fn try_slice(&self, axis: isize, start: usize, end: usize) -> Result<Tensor> {
        self.try_slice_step(axis, start, end, 1)
    }

    /// A view of every `step`-th element of `start..end` along `axis`. Panics if the range
    /// is not within the axis or `step` is 0; see [`Tensor::try_slice_step`].
    #[track_caller]
    pub fn slice_step(&self, axis: isize, start: usize, end: usize, step: usize) -> Tensor {
        unwrap(self.try_slice_step(axis, start, end, step))
    }

    /// [`Tensor::slice_step`], returning an error for a bad axis, range or step.
    pub fn try_slice_step(
        &self,
        axis: isize,
        start: usize,
        end: usize,
        step: usize,
    ) -> Result<Tensor> {
        let ax = normalize_axis("slice", axis, self.shape())?;
        let size = self.shape()[ax];
        if start > end || end > size || step == 0 {
            return Err(Error::InvalidArgument {
                op: "slice",
                message: format!(
                    "range {start}..{end} with step {step} is not within axis {ax} of size {size} (shape {:?})",
                    self.shape()
                ),
            });
        }
        Ok(self.with_layout(self.layout.slice(ax, start, end, step)))
    }

    /// A view without the size-1 axis `axis`. Panics if that axis is not of size 1; see
    /// [`Tensor::try_squeeze`].
    #[track_caller]
    pub fn squeeze(&self, axis: isize) -> Tensor {
        unwrap(self.try_squeeze(axis))
    }

    /// [`Tensor::squeeze`], returning an error for a bad axis.
    pub fn try_squeeze(&self, axis: isize) -> Result<Tensor> {
        let ax = normalize_axis("squeeze", axis, self.shape())?;
        if self.shape()[ax] != 1 {
            return Err(Error::InvalidArgument {
                op: "squeeze",
                message: format!(
                    "axis {axis} of shape {:?} has size {}, not 1",
                    self.shape(),
                    self.shape()[ax]
                ),
            });
        }
        Ok(self.with_layout(self.layout.squeeze(ax)))
    }

    /// A view with a new size-1 axis at `axis` (`-1` appends). Panics for an axis outside
    /// `-(ndim + 1)..=ndim`; see [`Tensor::try_unsqueeze`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::zeros(&[3], DType::F32);
    /// assert_eq!(x.unsqueeze(0).shape(), &[1, 3]);
    /// assert_eq!(x.unsqueeze(-1).shape(), &[3, 1]);
    /// ```
    #[track_caller]
    pub fn unsqueeze(&self, axis: isize) -> Tensor {
        unwrap(self.try_unsqueeze(axis))
    }

    /// [`Tensor::unsqueeze`], returning an error for a bad axis.
    pub fn try_unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let ax = normalize_axis_in("unsqueeze", axis, self.ndim() + 1, self.shape())?;
        Ok(self.with_layout(self.layout.unsqueeze(ax)))
    }

    /// Gathers along `axis` at `indices` (an i32 tensor of any shape): the result's shape
    /// is `self.shape[..axis] ++ indices.shape ++ self.shape[axis + 1..]` (NumPy's `take`).
    /// Panics for an index outside `0..size`; see [`Tensor::try_index_select`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let table = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape(&[3, 2]);
    /// let rows = table.index_select(0, &Tensor::from_vec(vec![2i32, 0], &[2]));
    /// assert_eq!(rows.to_vec::<f32>(), vec![4.0, 5.0, 0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn index_select(&self, axis: isize, indices: &Tensor) -> Tensor {
        unwrap(self.try_index_select(axis, indices))
    }

    /// [`Tensor::index_select`], returning an error instead of panicking.
    pub fn try_index_select(&self, axis: isize, indices: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        let ax = normalize_axis(OP, axis, self.shape())?;
        self.check_indices(OP, ax, indices)?;
        let size = self.shape()[ax];
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            let mut shape = self.shape()[..ax].to_vec();
            shape.extend_from_slice(indices.shape());
            shape.extend_from_slice(&self.shape()[ax + 1..]);
            return crate::gpu::gather::index_select(self, ax, indices, &shape);
        }
        let idx = indices.contiguous_data::<i32>();
        let outer = numel(&self.shape()[..ax]);
        let inner = numel(&self.shape()[ax + 1..]);
        let mut shape = self.shape()[..ax].to_vec();
        shape.extend_from_slice(indices.shape());
        shape.extend_from_slice(&self.shape()[ax + 1..]);
        Ok(any_dispatch!(self.dtype(), T => {
            let x = self.contiguous_data::<T>();
            let n = numel(&shape);
            let mut out: Vec<T> = if n > 0 { pool::buffer(n, x[0]) } else { Vec::new() };
            if n > 0 {
                // one block of the output per outer position: the selected rows (of
                // `inner` elements) of its [size, inner] block of x; along the last axis
                // (inner = 1) single elements, read directly rather than copied one by one
                let block = |o: usize, dst: &mut [T]| {
                    let src = &x[o * size * inner..(o + 1) * size * inner];
                    if inner == 1 {
                        for (d, &i) in dst.iter_mut().zip(idx.iter()) {
                            *d = src[i as usize];
                        }
                    } else {
                        for (d, &i) in dst.chunks_exact_mut(inner).zip(idx.iter()) {
                            let at = i as usize * inner;
                            d.copy_from_slice(&src[at..at + inner]);
                        }
                    }
                };
                let per_block = idx.len() * inner;
                if n >= PAR_THRESHOLD && outer > 1 {
                    out.par_chunks_mut(per_block)
                        .enumerate()
                        .for_each(|(o, dst)| block(o, dst));
                } else {
                    out.chunks_mut(per_block)
                        .enumerate()
                        .for_each(|(o, dst)| block(o, dst));
                }
            }
            Tensor::from_data(out, &shape)
        }))
    }

    /// Checks `indices` for an indexing op along axis `ax` of `self`: i32, on `self`'s
    /// device, every one in `0..size`.
    pub(crate) fn check_indices(
        &self,
        op: &'static str,
        ax: usize,
        indices: &Tensor,
    ) -> Result<()> {
        self.expect_index_tensor(op, indices)?;
        let size = self.shape()[ax];
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::gather::check_indices(op, indices, ax, size, self.shape());
        }
        let idx = indices.contiguous_data::<i32>();
        if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= size) {
            return Err(Error::IndexOutOfRange {
                op,
                index: bad as i64,
                axis: ax,
                size,
                shape: self.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// Checks that `indices` can index `self`: i32, on `self`'s device.
    pub(crate) fn expect_index_tensor(&self, op: &'static str, indices: &Tensor) -> Result<()> {
        if indices.dtype() != DType::I32 {
            return Err(Error::UnsupportedDType {
                op,
                expected: "i32 indices",
                got: indices.dtype(),
                shape: indices.shape().to_vec(),
            });
        }
        if indices.device() != self.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: self.device(),
                rhs: indices.device(),
            });
        }
        Ok(())
    }

    /// The sums of `self`'s slices by segment (`jax.ops.segment_sum`): `out[s] = sum of
    /// self[i..] over the positions i whose id is s`, for `segment_ids` an i32 tensor shaped
    /// like `self`'s leading axes (one id per edge of a graph, per particle of a cell, per
    /// token of a sequence) and ids in `0..num_segments`. The result has shape
    /// `[num_segments] ++ self.shape[segment_ids.ndim..]`; a segment no id names sums to
    /// zero. The transpose of gathering by the ids (`out.index_select(0, ids)`). On a GPU
    /// the values meeting at one element are added in the order their threads reach it,
    /// so sums may differ in their last bits from run to run. Panics for mismatched
    /// shapes, an id outside `0..num_segments` or a non-float tensor; see
    /// [`Tensor::try_segment_sum`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // messages on four edges summed at their destination nodes
    /// let messages = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4, 1]);
    /// let dst = Tensor::from_vec(vec![2i32, 0, 2, 2], &[4]);
    /// assert_eq!(messages.segment_sum(&dst, 3).to_vec::<f32>(), vec![2.0, 0.0, 8.0]);
    /// ```
    #[track_caller]
    pub fn segment_sum(&self, segment_ids: &Tensor, num_segments: usize) -> Tensor {
        unwrap(self.try_segment_sum(segment_ids, num_segments))
    }

    /// [`Tensor::segment_sum`], returning an error instead of panicking.
    pub fn try_segment_sum(&self, segment_ids: &Tensor, num_segments: usize) -> Result<Tensor> {
        const OP: &str = "segment_sum";
        let dt = self.expect_float(OP)?;
        let k = segment_ids.ndim();
        if k == 0 || self.shape().get(..k) != Some(segment_ids.shape()) {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().to_vec(),
                rhs: segment_ids.shape().to_vec(),
                reason: "do not fit: the segment ids must have the shape of the data's leading axes (at least one)".into(),
            });
        }
        let mut shape = vec![num_segments];
        shape.extend_from_slice(&self.shape()[k..]);
        // (zeros broadcast from one: index_add fills its output instead of copying them)
        Tensor::try_full_on(&[], 0.0, dt, &self.device())?
            .try_broadcast_to(&shape)?
            .try_index_add(0, segment_ids, self)
            .map_err(|e| e.for_op(OP))
    }

    /// The largest of `self`'s slices by segment (`jax.ops.segment_max`), for `segment_ids`
    /// a 1-D i32 tensor with one id in `0..num_segments` per slice along axis 0: shape
    /// `[num_segments] ++ self.shape[1..]`, `-inf` for a segment no id names, NaN where one
    /// of its values is. Its derivative reaches the first position holding the maximum (a
    /// gather at [`Tensor::segment_argmax`]). Panics for mismatched shapes, an id out of
    /// range or a non-float tensor; see [`Tensor::try_segment_max`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, -2.0, 3.0], &[4]);
    /// let ids = Tensor::from_vec(vec![0i32, 0, 2, 2], &[4]);
    /// assert_eq!(x.segment_max(&ids, 3).to_vec::<f32>(), vec![5.0, f32::NEG_INFINITY, 3.0]);
    /// ```
    #[track_caller]
    pub fn segment_max(&self, segment_ids: &Tensor, num_segments: usize) -> Tensor {
        unwrap(self.try_segment_max(segment_ids, num_segments))
    }

    /// [`Tensor::segment_max`], returning an error instead of panicking.
    pub fn try_segment_max(&self, segment_ids: &Tensor, num_segments: usize) -> Result<Tensor> {
        self.segment_extremum("segment_max", segment_ids, num_segments, true)
    }

    /// The smallest of `self`'s slices by segment (`jax.ops.segment_min`): as
    /// [`Tensor::segment_max`], `+inf` for an empty segment. Panics where it would; see
    /// [`Tensor::try_segment_min`].
    #[track_caller]
    pub fn segment_min(&self, segment_ids: &Tensor, num_segments: usize) -> Tensor {
        unwrap(self.try_segment_min(segment_ids, num_segments))
    }

    /// [`Tensor::segment_min`], returning an error instead of panicking.
    pub fn try_segment_min(&self, segment_ids: &Tensor, num_segments: usize) -> Result<Tensor> {
        self.segment_extremum("segment_min", segment_ids, num_segments, false)
    }

    /// For each segment and trailing element, the first position along axis 0 holding the
    /// segment's largest value (a NaN before any number), as i32 `[num_segments] ++
    /// self.shape[1..]`; for an empty segment the number of rows, `self.shape[0]` (one past
    /// the last, as torch_scatter's `scatter_max`: [`Tensor::take_along_axis_or`] reads a
    /// fill value there). Carries no derivative. Panics as [`Tensor::segment_max`] does;
    /// see [`Tensor::try_segment_argmax`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, -2.0, 3.0], &[4]);
    /// let ids = Tensor::from_vec(vec![0i32, 0, 2, 2], &[4]);
    /// assert_eq!(x.segment_argmax(&ids, 3).to_vec::<i32>(), vec![1, 4, 3]);
    /// ```
    #[track_caller]
    pub fn segment_argmax(&self, segment_ids: &Tensor, num_segments: usize) -> Tensor {
        unwrap(self.try_segment_argmax(segment_ids, num_segments))
    }

    /// [`Tensor::segment_argmax`], returning an error instead of panicking.
    pub fn try_segment_argmax(&self, segment_ids: &Tensor, num_segments: usize) -> Result<Tensor> {
        self.segment_index("segment_argmax", segment_ids, num_segments, true)
    }

    /// As [`Tensor::segment_argmax`], for the smallest values. Panics as it does; see
    /// [`Tensor::try_segment_argmin`].
    #[track_caller]
    pub fn segment_argmin(&self, segment_ids: &Tensor, num_segments: usize) -> Tensor {
        unwrap(self.try_segment_argmin(segment_ids, num_segments))
    }

    /// [`Tensor::segment_argmin`], returning an error instead of panicking.
    pub fn try_segment_argmin(&self, segment_ids: &Tensor, num_segments: usize) -> Result<Tensor> {
        self.segment_index("segment_argmin", segment_ids, num_segments, false)
    }

    /// `x` gathered at the extremum's position, `-inf` (`+inf`) where that names no row (an
    /// empty segment), as the macro lowers `segment_max` / `segment_min`.
    fn segment_extremum(
        &self,
        op: &'static str,
        ids: &Tensor,
        n: usize,
        largest: bool,
    ) -> Result<Tensor> {
        let at = self.segment_index(op, ids, n, largest)?;
        let empty = if largest {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        self.try_take_along_axis_or(0, &at, empty)
    }

    /// The positions of each segment's extremum (see [`Tensor::segment_argmax`]).
    fn segment_index(
        &self,
        op: &'static str,
        ids: &Tensor,
        n: usize,
        largest: bool,
    ) -> Result<Tensor> {
        self.expect_float(op)?;
        if ids.ndim() != 1 || self.ndim() == 0 || self.shape()[0] != ids.shape()[0] {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape().to_vec(),
                rhs: ids.shape().to_vec(),
                reason: "do not fit: the segment ids must be 1-D, one per slice along axis 0"
                    .into(),
            });
        }
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape()[1..]);
        // (the ids checked against the segments as index_add checks them)
        Tensor::full_on(&[n], 0.0, self.dtype(), &self.device()).check_indices(op, 0, ids)?;
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::gather::segment_arg(self, ids, n, largest);
        }
        let inner = numel(&self.shape()[1..]);
        let idx = ids.contiguous_data::<i32>();
        // (every element written by the kernel)
        let mut out = crate::pool::buffer(n * inner, 0i32);
        if n == 0 || inner == 0 {
            return Ok(Tensor::from_data(out, &shape));
        }
        // segments split into one contiguous range per thread, each reading every id and
        // keeping the rows of its own segments
        let threads = if idx.len() * inner >= PAR_THRESHOLD {
            rayon::current_num_threads()
        } else {
            1
        };
        let per = n.div_ceil(threads);
        float_dispatch!(self.dtype(), T => {
            let x = self.contiguous_data::<T>();
            out.par_chunks_mut(per * inner).enumerate().for_each(|(t, o)| {
                crate::cpu::kernels::segment_arg(&x, &idx, t * per, inner, largest, o)
            });
        });
        Ok(Tensor::from_data(out, &shape))
    }

    /// A copy of `self` with the slices of `source` along `axis` added at `indices` (an i32
    /// tensor of any shape; a repeated index adds every slice that names it): the
    /// transpose of [`Tensor::index_select`], as PyTorch's `index_add`. `source` has the
    /// shape `index_select` gives, `self.shape[..axis] ++ indices.shape ++
    /// self.shape[axis + 1..]`. Its cost is that of reading `source` and copying `self`
    /// (an embedding table's gradient touches only the rows used). On a GPU the values
    /// meeting at one element are added in the order their threads reach it, so sums may
    /// differ in their last bits from run to run. Panics on a mismatch or an index outside
    /// `0..size`; see [`Tensor::try_index_add`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let table = Tensor::zeros(&[3, 2], DType::F32);
    /// let rows = Tensor::from_vec(vec![1.0f32, 2.0, 10.0, 20.0, 100.0, 200.0], &[3, 2]);
    /// let idx = Tensor::from_vec(vec![2i32, 0, 2], &[3]);
    /// assert_eq!(
    ///     table.index_add(0, &idx, &rows).to_vec::<f32>(),
    ///     vec![10.0, 20.0, 0.0, 0.0, 101.0, 202.0]
    /// );
    /// ```
    #[track_caller]
    pub fn index_add(&self, axis: isize, indices: &Tensor, source: &Tensor) -> Tensor {
        unwrap(self.try_index_add(axis, indices, source))
    }

    /// [`Tensor::index_add`], returning an error instead of panicking.
    pub fn try_index_add(&self, axis: isize, indices: &Tensor, source: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_add";
        let ax = normalize_axis(OP, axis, self.shape())?;
        Tensor::expect_same_float(OP, self, source)?;
        let (pre, post) = (&self.shape()[..ax], &self.shape()[ax + 1..]);
        let mut want = pre.to_vec();
        want.extend_from_slice(indices.shape());
        want.extend_from_slice(post);
        if source.shape() != want {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().to_vec(),
                rhs: source.shape().to_vec(),
                reason: format!(
                    "do not fit: the source must have shape {want:?} (the target's with axis {ax} replaced by the indices' shape {:?})",
                    indices.shape()
                ),
            });
        }
        self.check_indices(OP, ax, indices)?;
        let (size, k) = (self.shape()[ax], indices.numel());
        let (outer, inner) = (numel(pre), numel(post));
        #[cfg(feature = "gpu")]
        if self.on_gpu() {
            return crate::gpu::gather::index_add(self, ax, indices, source);
        }
        let idx = indices.contiguous_data::<i32>();
        Ok(float_dispatch!(self.dtype(), T => {
            let n = self.numel();
            let mut out: Vec<T> = self.owned_data();
            let src = source.contiguous_data::<T>();
            if n > 0 && k > 0 {
                // one block of the output per outer position, each adding its k slices
                let block = |o: usize, dst: &mut [T]| {
                    let src = &src[o * k * inner..(o + 1) * k * inner];
                    for (row, &i) in src.chunks_exact(inner).zip(idx.iter()) {
                        let at = i as usize * inner;
                        for (d, &v) in dst[at..at + inner].iter_mut().zip(row) {
                            *d += v;
                        }
                    }
                };
                if n + source.numel() >= PAR_THRESHOLD && outer > 1 {
                    out.par_chunks_mut(size * inner)
                        .enumerate()
                        .for_each(|(o, dst)| block(o, dst));
                } else {
                    out.chunks_mut(size * inner)
                        .enumerate()
                        .for_each(|(o, dst)| block(o, dst));
                }
            }
            Tensor::from_data(out, self.shape())
        }))
    }

    /// Joins tensors along an existing `axis`; all other axes must agree. Takes borrowed
    /// tensors (`&[&a, &b]`) or owned ones (`&outs` of a `Vec<Tensor>`). Panics on
    /// mismatched shapes or dtypes or an empty list; see [`Tensor::try_concat`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::ones(&[2, 1], DType::F32);
    /// let b = Tensor::zeros(&[2, 2], DType::F32);
    /// let c = Tensor::concat(&[&a, &b], 1);
    /// assert_eq!(c.to_vec::<f32>(), vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn concat<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Tensor {
        unwrap(Tensor::try_concat(tensors, axis))
    }

    /// [`Tensor::concat`], returning an error instead of panicking.
    pub fn try_concat<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Result<Tensor> {
        let tensors: Vec<&Tensor> = tensors.iter().map(Borrow::borrow).collect();
        concat_impl("concat", &tensors, axis)
    }

    /// Joins tensors of one shape along a new `axis`. Takes borrowed tensors (`&[&a, &b]`)
    /// or owned ones (`&outs` of a `Vec<Tensor>`). Panics on mismatched shapes or dtypes or
    /// an empty list; see [`Tensor::try_stack`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::zeros(&[3], DType::F64);
    /// assert_eq!(Tensor::stack(&[&a, &a], 0).shape(), &[2, 3]);
    /// assert_eq!(Tensor::stack(&[&a, &a], -1).shape(), &[3, 2]);
    /// let outs = vec![a.clone(), a.clone(), a];
    /// assert_eq!(Tensor::stack(&outs, 0).shape(), &[3, 3]);
    /// ```
    #[track_caller]
    pub fn stack<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Tensor {
        unwrap(Tensor::try_stack(tensors, axis))
    }

    /// [`Tensor::stack`], returning an error instead of panicking.
    pub fn try_stack<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Result<Tensor> {
        const OP: &str = "stack";
        let tensors: Vec<&Tensor> = tensors.iter().map(Borrow::borrow).collect();
        let first = tensors.first().ok_or_else(|| Error::InvalidArgument {
            op: OP,
            message: "needs at least one tensor".into(),
        })?;
        for t in &tensors {
            if t.shape() != first.shape() {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                    reason: "differ (stack needs equal shapes)".into(),
                });
            }
        }
        let ax = normalize_axis_in(OP, axis, first.ndim() + 1, first.shape())?;
        let expanded: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.with_layout(t.layout.unsqueeze(ax)))
            .collect();
        concat_impl(OP, &expanded.iter().collect::<Vec<_>>(), ax as isize)
    }
}

impl Tensor {
    /// The elements of `axis` rotated by `shift` places toward its end, as NumPy's and
    /// JAX's `roll`: `out[i] = x[(i - shift) mod n]` (a negative `shift` rotates toward
    /// the start). Periodic boundaries: `x.roll(1, -1) + x.roll(-1, -1) - &x * 2.0` is the
    /// discrete Laplacian of a ring. Panics for a bad axis; see [`Tensor::try_roll`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::arange(0.0, 5.0, 1.0, DType::F32);
    /// assert_eq!(x.roll(2, 0).to_vec::<f32>(), vec![3.0, 4.0, 0.0, 1.0, 2.0]);
    /// assert_eq!(x.roll(-1, 0).to_vec::<f32>(), vec![1.0, 2.0, 3.0, 4.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn roll(&self, shift: isize, axis: isize) -> Tensor {
        unwrap(self.try_roll(shift, axis))
    }

    /// [`Tensor::roll`], returning an error for a bad axis.
    pub fn try_roll(&self, shift: isize, axis: isize) -> Result<Tensor> {
        const OP: &str = "roll";
        let ax = normalize_axis(OP, axis, self.shape())?;
        let n = self.shape()[ax];
        let s = if n == 0 {
            0
        } else {
            shift.rem_euclid(n as isize) as usize
        };
        if s == 0 {
            return Ok(self.clone());
        }
        let (tail, head) = (
            self.try_slice(axis, n - s, n)?,
            self.try_slice(axis, 0, n - s)?,
        );
        concat_impl(OP, &[&tail, &head], ax as isize)
    }

    /// Elements moved `steps` positions along `axis` (towards the end when positive), zeros
    /// moved in: [`Tensor::roll`] without the wrap-around (a lag, or a stencil's neighbour
    /// with zero boundaries). Same shape. Panics for a bad axis; see [`Tensor::try_shift`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4]);
    /// assert_eq!(x.shift(1, 0).to_vec::<f32>(), vec![0.0, 1.0, 2.0, 3.0]);
    /// assert_eq!(x.shift(-2, 0).to_vec::<f32>(), vec![3.0, 4.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn shift(&self, steps: isize, axis: isize) -> Tensor {
        unwrap(self.try_shift(steps, axis))
    }

    /// [`Tensor::shift`], returning an error for a bad axis.
    pub fn try_shift(&self, steps: isize, axis: isize) -> Result<Tensor> {
        const OP: &str = "shift";
        let ax = normalize_axis(OP, axis, self.shape())?;
        let n = self.shape()[ax];
        let s = steps.unsigned_abs().min(n);
        if s == 0 {
            return Ok(self.clone());
        }
        let mut pads = vec![(0, 0); self.ndim()];
        let kept = if steps > 0 {
            pads[ax] = (s, 0);
            self.try_slice(axis, 0, n - s)?
        } else {
            pads[ax] = (0, s);
            self.try_slice(axis, s, n)?
        };
        kept.try_pad(&pads)
    }

    /// Each element repeated `n` times along `axis` in place (`jnp.repeat(x, n, axis)`:
    /// `[a, b]` -> `[a, a, b, b]`); that axis `n` times longer. Panics for a bad axis; see
    /// [`Tensor::try_repeat`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.repeat(2, 1).to_vec::<f32>(), vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]);
    /// assert_eq!(x.repeat(2, 0).shape(), &[4, 2]);
    /// ```
    #[track_caller]
    pub fn repeat(&self, n: usize, axis: isize) -> Tensor {
        unwrap(self.try_repeat(n, axis))
    }

    /// [`Tensor::repeat`], returning an error for a bad axis.
    pub fn try_repeat(&self, n: usize, axis: isize) -> Result<Tensor> {
        self.copies("repeat", n, axis, false)
    }

    /// The whole of `axis` repeated `n` times (`jnp.tile` along one axis: `[a, b]` ->
    /// `[a, b, a, b]`); that axis `n` times longer. Panics for a bad axis; see
    /// [`Tensor::try_tile`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
    /// assert_eq!(x.tile(3, 0).to_vec::<f64>(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn tile(&self, n: usize, axis: isize) -> Tensor {
        unwrap(self.try_tile(n, axis))
    }

    /// [`Tensor::tile`], returning an error for a bad axis.
    pub fn try_tile(&self, n: usize, axis: isize) -> Result<Tensor> {
        self.copies("tile", n, axis, true)
    }

    /// `n` copies along `axis`: of each element (`repeat`) or of the whole axis (`tile`),
    /// a broadcast of a new axis beside it, made contiguous.
    fn copies(&self, op: &'static str, n: usize, axis: isize, whole: bool) -> Result<Tensor> {
        let ax = normalize_axis(op, axis, self.shape())?;
        let new = if whole { ax } else { ax + 1 };
        let mut spread = self.shape().to_vec();
        spread.insert(new, n);
        let mut shape = self.shape().to_vec();
        shape[ax] *= n;
        self.try_unsqueeze(new as isize)?
            .try_broadcast_to(&spread)?
            .try_reshape(&shape)
    }

    /// The elements in reverse order along `axis` (`jnp.flip`). Same shape; a copy.
    /// Panics for a bad axis; see [`Tensor::try_flip`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(x.flip(1).to_vec::<f64>(), vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
    /// assert_eq!(x.flip(0).to_vec::<f64>(), vec![4.0, 5.0, 6.0, 1.0, 2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn flip(&self, axis: isize) -> Tensor {
        unwrap(self.try_flip(axis))
    }

    /// [`Tensor::flip`], returning an error for a bad axis.
    pub fn try_flip(&self, axis: isize) -> Result<Tensor> {
        let ax = normalize_axis("flip", axis, self.shape())?;
        let n = self.shape()[ax];
        let back: Vec<i32> = (0..n as i32).rev().collect();
        let idx = Tensor::from_vec(back, &[n]).try_to_device(&self.device())?;
        self.try_index_select(axis, &idx)
    }

    /// `self` padded with `before` and `after` zeros on each axis (`pads`: one pair per
    /// axis), as `jnp.pad` with zeros. Panics on a wrong number of pairs; see
    /// [`Tensor::try_pad`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::ones(&[2, 2], DType::F64);
    /// let p = x.pad(&[(1, 0), (0, 2)]);
    /// assert_eq!(p.shape(), &[3, 4]);
    /// assert_eq!(p.sum().item::<f64>(), 4.0);
    /// assert_eq!(p.slice(0, 0, 1).sum().item::<f64>(), 0.0);
    /// ```
    #[track_caller]
    pub fn pad(&self, pads: &[(usize, usize)]) -> Tensor {
        unwrap(self.try_pad(pads))
    }

    /// [`Tensor::pad`], returning an error on a wrong number of pairs.
    pub fn try_pad(&self, pads: &[(usize, usize)]) -> Result<Tensor> {
        const OP: &str = "pad";
        self.expect_pairs(OP, pads)?;
        let mut out = self.clone();
        for (ax, &(before, after)) in pads.iter().enumerate() {
            if before + after == 0 {
                continue;
            }
            let zeros = |n: usize| {
                let mut shape = out.shape().to_vec();
                shape[ax] = n;
                Tensor::try_full_on(&shape, 0.0, out.dtype(), &out.device())
            };
            let (lo, hi) = (zeros(before)?, zeros(after)?);
            out = concat_impl(OP, &[&lo, &out, &hi], ax as isize)?;
        }
        Ok(out)
    }

    /// The inverse of [`Tensor::pad`] (and its adjoint): `self` without `before` and
    /// `after` elements on each axis. Panics on a wrong number of pairs or pads larger
    /// than the tensor; see [`Tensor::try_unpad`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32);
    /// assert_eq!(x.unpad(&[(1, 2)]).to_vec::<f32>(), vec![1.0, 2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn unpad(&self, pads: &[(usize, usize)]) -> Tensor {
        unwrap(self.try_unpad(pads))
    }

    /// [`Tensor::unpad`], returning an error on bad pads.
    pub fn try_unpad(&self, pads: &[(usize, usize)]) -> Result<Tensor> {
        const OP: &str = "unpad";
        self.expect_pairs(OP, pads)?;
        let mut out = self.clone();
        for (ax, &(before, after)) in pads.iter().enumerate() {
            let n = out.shape()[ax];
            if before + after > n {
                return Err(Error::InvalidArgument {
                    op: OP,
                    message: format!(
                        "pads ({before}, {after}) exceed axis {ax} of size {n} (shape {:?})",
                        self.shape()
                    ),
                });
            }
            out = out.try_slice(ax as isize, before, n - after)?;
        }
        Ok(out)
    }
}

/// What [`Tensor::pad_with`] puts in the border: NumPy's and `jnp.pad`'s modes. Every
/// mode is linear in the tensor, so its derivatives are [`Tensor::pad_with`] again and
/// [`Tensor::pad_with_transpose`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PadMode {
    /// Zeros (as [`Tensor::pad`]): `[1, 2, 3]` by `(2, 3)` is `[0, 0, 1, 2, 3, 0, 0, 0]`.
    Zeros,
    /// The edge value repeated (zero-flux, Neumann boundaries):
    /// `[1, 1, 1, 2, 3, 3, 3, 3]`.
    Edge,
    /// Mirrored about the edge, the edge not repeated: `[3, 2, 1, 2, 3, 2, 1, 2]`.
    Reflect,
    /// Mirrored with the edge repeated: `[2, 1, 1, 2, 3, 3, 2, 1]`.
    Symmetric,
    /// The other end's values (periodic boundaries): `[2, 3, 1, 2, 3, 1, 2, 3]`.
    Wrap,
}

impl PadMode {
    /// Every mode.
    pub const ALL: [PadMode; 5] = [
        PadMode::Zeros,
        PadMode::Edge,
        PadMode::Reflect,
        PadMode::Symmetric,
        PadMode::Wrap,
    ];

    /// For each of the `before + n + after` positions of an axis of `n > 0` padded by a
    /// mode that copies (not [`PadMode::Zeros`]), the position of the axis it copies.
    fn sources(self, n: usize, before: usize, after: usize) -> Vec<usize> {
        let n_i = n as isize;
        (0..before + n + after)
            .map(|i| {
                let j = i as isize - before as isize;
                if (0..n_i).contains(&j) {
                    return j as usize;
                }
                let k = match self {
                    PadMode::Zeros => unreachable!("zero padding copies nothing"),
                    PadMode::Edge => j.clamp(0, n_i - 1),
                    PadMode::Wrap => j.rem_euclid(n_i),
                    PadMode::Reflect if n == 1 => 0,
                    PadMode::Reflect => {
                        let k = j.rem_euclid(2 * (n_i - 1));
                        if k < n_i { k } else { 2 * (n_i - 1) - k }
                    }
                    PadMode::Symmetric => {
                        let k = j.rem_euclid(2 * n_i);
                        if k < n_i { k } else { 2 * n_i - 1 - k }
                    }
                };
                k as usize
            })
            .collect()
    }
}

impl Tensor {
    /// `self` padded with `before` and `after` elements on each axis (`pads`: one pair per
    /// axis), filled as `mode` says ([`PadMode`]; `jnp.pad(x, pads, mode)`). Panics on a
    /// wrong number of pairs or a non-zero border around an empty axis; see
    /// [`Tensor::try_pad_with`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
    /// let p = x.pad_with(&[(2, 3)], PadMode::Reflect);
    /// assert_eq!(p.to_vec::<f32>(), vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn pad_with(&self, pads: &[(usize, usize)], mode: PadMode) -> Tensor {
        unwrap(self.try_pad_with(pads, mode))
    }

    /// [`Tensor::pad_with`], returning an error instead of panicking.
    pub fn try_pad_with(&self, pads: &[(usize, usize)], mode: PadMode) -> Result<Tensor> {
        const OP: &str = "pad_with";
        if mode == PadMode::Zeros {
            return self.try_pad(pads);
        }
        self.expect_pairs(OP, pads)?;
        let mut out = self.clone();
        for (ax, &(before, after)) in pads.iter().enumerate() {
            if before + after > 0 {
                let index = pad_index(OP, self, ax, before, after, mode)?;
                out = out.try_index_select(ax as isize, &index)?;
            }
        }
        Ok(out)
    }

    /// The transpose (adjoint) of [`Tensor::pad_with`]: `self`, shaped like a padded
    /// tensor, summed back into the unpadded shape (each border element added to the
    /// element it copies; [`Tensor::unpad`] for [`PadMode::Zeros`]). Panics on a wrong number
    /// of pairs or pads larger than the tensor; see [`Tensor::try_pad_with_transpose`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let ct = Tensor::ones(&[8], DType::F64);
    /// let g = ct.pad_with_transpose(&[(2, 3)], PadMode::Edge);
    /// assert_eq!(g.to_vec::<f64>(), vec![3.0, 1.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn pad_with_transpose(&self, pads: &[(usize, usize)], mode: PadMode) -> Tensor {
        unwrap(self.try_pad_with_transpose(pads, mode))
    }

    /// [`Tensor::pad_with_transpose`], returning an error instead of panicking.
    pub fn try_pad_with_transpose(&self, pads: &[(usize, usize)], mode: PadMode) -> Result<Tensor> {
        const OP: &str = "pad_with_transpose";
        if mode == PadMode::Zeros {
            return self.try_unpad(pads);
        }
        self.expect_pairs(OP, pads)?;
        let mut out = self.clone();
        for (ax, &(before, after)) in pads.iter().enumerate().rev() {
            if before + after == 0 {
                continue;
            }
            let padded = out.shape()[ax];
            let Some(n) = padded.checked_sub(before + after) else {
                return Err(Error::InvalidArgument {
                    op: OP,
                    message: format!(
                        "pads ({before}, {after}) exceed axis {ax} of size {padded} (shape {:?})",
                        self.shape()
                    ),
                });
            };
            let mut shape = out.shape().to_vec();
            shape[ax] = n;
            let zeros = Tensor::try_full_on(&shape, 0.0, out.dtype(), &out.device())?;
            let index = pad_index(OP, &zeros, ax, before, after, mode)?;
            out = zeros.try_index_add(ax as isize, &index, &out)?;
        }
        Ok(out)
    }
}

/// The positions axis `ax` of `like` (unpadded) is read at to pad it by `mode` (one that
/// copies), as an index tensor on `like`'s device.
fn pad_index(
    op: &'static str,
    like: &Tensor,
    ax: usize,
    before: usize,
    after: usize,
    mode: PadMode,
) -> Result<Tensor> {
    let n = like.shape()[ax];
    if n == 0 {
        return Err(Error::InvalidArgument {
            op,
            message: format!(
                "axis {ax} of shape {:?} is empty: {mode:?} padding has no values to copy into its border of ({before}, {after})",
                like.shape()
            ),
        });
    }
    let index: Vec<i32> = mode
        .sources(n, before, after)
        .into_iter()
        .map(|k| k as i32)
        .collect();
    let len = index.len();
    Ok(Tensor::from_vec(index, &[len]).to_device(&like.device()))
}

impl Tensor {
    /// Checks that `pads` has one `(before, after)` pair per axis.
    fn expect_pairs(&self, op: &'static str, pads: &[(usize, usize)]) -> Result<()> {
        if pads.len() == self.ndim() {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            op,
            message: format!(
                "one (before, after) pair per axis of a tensor of shape {:?} needed, got {pads:?}",
                self.shape()
            ),
        })
    }
}

fn concat_impl(op: &'static str, tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
    let first = tensors.first().ok_or_else(|| Error::InvalidArgument {
        op,
        message: "needs at least one tensor".into(),
    })?;
    let ax = normalize_axis(op, axis, first.shape())?;
    for t in &tensors[1..] {
        Tensor::expect_same(op, first, t)?;
        let agree = t.ndim() == first.ndim()
            && t.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .all(|(d, (a, b))| d == ax || a == b);
        if !agree {
            return Err(Error::ShapeMismatch {
                op,
                lhs: first.shape().to_vec(),
                rhs: t.shape().to_vec(),
                reason: format!("must agree on every axis but {ax}"),
            });
        }
    }
    let mut shape = first.shape().to_vec();
    shape[ax] = tensors.iter().map(|t| t.shape()[ax]).sum();
    #[cfg(feature = "gpu")]
    if first.on_gpu() {
        return crate::gpu::gather::concat(tensors, ax, &shape);
    }
    let outer = numel(&shape[..ax]);
    Ok(any_dispatch!(first.dtype(), T => {
        let parts: Vec<_> = tensors.iter().map(|t| (t.contiguous_data::<T>(), numel(&t.shape()[ax..]))).collect();
        Tensor::from_data(join_blocks::<T>(&parts, outer, numel(&shape)), &shape)
    }))
}

/// For each of `outer` blocks, appends each part's block (of `block` elements) in turn.
fn join_blocks<T: Element>(
    parts: &[(std::borrow::Cow<'_, [T]>, usize)],
    outer: usize,
    total: usize,
) -> Vec<T> {
    let Some(fill) = parts.iter().find_map(|(data, _)| data.first().copied()) else {
        return Vec::new();
    };
    let mut out = pool::buffer(total, fill);
    let mut at = 0;
    for o in 0..outer {
        for (data, block) in parts {
            out[at..at + block].copy_from_slice(&data[o * block..(o + 1) * block]);
            at += block;
        }
    }
    out
}
