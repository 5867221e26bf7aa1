//! N-dimensional convolution (1-D, 2-D and 3-D) and its two transposes, patches and
//! pooling, built from device-generic operations (reshape, `matmul`, `sum_to_shape`)
//! around an unfold of the input and its adjoint, the fold, so that one code path serves
//! the CPU and the GPU.
//!
//! The method is im2col: the input's spatial block is flattened to `S` elements and
//! unfolded into the columns `[.., C, K * P]` (`K` kernel positions, outer, by `P` output
//! positions); the kernel, `[.., G, O / G, (C / G) K]`, multiplies them group by group.
//! The transpose in the input folds the columns back (the adjoint, summing the entries
//! that read each element); the transpose in the kernel multiplies the cotangent by the
//! columns and sums over the batch axes the kernel does not have.
//!
//! On the CPU the window positions are compressed once into runs (column `dst + i` of a
//! row reads element `src + i * stride` of the block: a window's row), which the unfold
//! copies and the fold adds back, in parallel over rows; the padding reads a fill value
//! (zeros, or -inf for a max pool). On a GPU both are kernels of their own (`gpu::conv`)
//! that compute the positions in the shader. The same unfold gives the patches of
//! [`Tensor::unfold`], on which the pools reduce.

use crate::cpu::for_row_blocks;
use crate::differentiable::try_unbroadcast;
use crate::error::{Error, Result, unwrap};
use crate::pool;
use crate::shape::{broadcast_shapes, numel};
use crate::tensor::Tensor;
use crate::tensor::float_dispatch;

/// How a convolution slides its window: the number of spatial axes (`rank`, 1 to 3), the
/// stride, padding and dilation per spatial axis, and the number of channel groups.
///
/// Built from [`Conv::new`] (stride 1, no padding, i.e. "VALID", dilation 1, one group)
/// and its builder methods; passed to [`Tensor::conv`], [`Tensor::conv_transpose`] and
/// [`Tensor::conv_weight_grad`].
///
/// ```
/// # use ferrax_runtime::prelude::*;
/// let spec = Conv::new(2).stride(2).padding(1);
/// assert_eq!(spec.try_output_size(&[7, 8], &[3, 3]).unwrap(), vec![4, 4]);
/// // JAX's "SAME": ceil(input / stride), whatever the kernel
/// let same = Conv::new(1).stride(2).same();
/// assert_eq!(same.try_output_size(&[5], &[4]).unwrap(), vec![3]);
/// let x = Tensor::ones(&[1, 3, 7, 8], DType::F32); // [batch, C, H, W]
/// let w = Tensor::ones(&[4, 3, 3, 3], DType::F32); // [O, C, kH, kW]
/// assert_eq!(x.conv(&w, &spec).shape(), &[1, 4, 4, 4]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv {
    rank: usize,
    stride: [usize; 3],
    dilation: [usize; 3],
    padding: Padding,
    groups: usize,
}

/// The padding of a [`Conv`].
///
/// ```
/// # use ferrax_runtime::prelude::*;
/// assert_eq!(Conv::new(2).padding(1), Conv::new(2).paddings(&[(1, 1), (1, 1)]));
/// assert_ne!(Conv::new(1).same(), Conv::new(1));
/// let explicit = Padding::Explicit([(1, 2), (0, 0), (0, 0)]);
/// assert!(matches!(explicit, Padding::Explicit(p) if p[0] == (1, 2)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Explicit `(before, after)` zeros per spatial axis (the axes past the rank are
    /// `(0, 0)`).
    Explicit([(usize, usize); 3]),
    /// JAX's and TensorFlow's "SAME": the output has `ceil(input / stride)` positions on
    /// each axis, and the total padding,
    /// `max((out - 1) * stride + (k - 1) * dilation + 1 - input, 0)`, is split with the
    /// smaller half before.
    Same,
}

/// The plan of one spatial axis: the output's size and the zeros padded before.
#[derive(Clone, Copy, Debug)]
struct Axis {
    out: usize,
    before: usize,
}

impl Conv {
    /// A `rank`-D convolution with stride 1, no padding ("VALID"), dilation 1 and one
    /// group. Panics unless `1 <= rank <= 3`.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// assert_eq!(Conv::new(3).rank(), 3);
    /// ```
    #[track_caller]
    pub fn new(rank: usize) -> Conv {
        assert!(
            (1..=3).contains(&rank),
            "Conv::new: rank {rank} is not supported (1, 2 or 3 spatial axes)"
        );
        Conv {
            rank,
            stride: [1; 3],
            dilation: [1; 3],
            padding: Padding::Explicit([(0, 0); 3]),
            groups: 1,
        }
    }

    /// `values` (one per spatial axis) in an array of three, the axes past the rank set to
    /// `rest`. Panics unless there are `rank` of them.
    #[track_caller]
    fn per_axis<T: Copy>(&self, what: &str, values: &[T], rest: T) -> [T; 3] {
        assert!(
            values.len() == self.rank,
            "Conv::{what}: {} values for a {}-D convolution (one per spatial axis)",
            values.len(),
            self.rank
        );
        let mut out = [rest; 3];
        out[..self.rank].copy_from_slice(values);
        out
    }

    /// The same stride `s` on every spatial axis (`s >= 1`, checked by the operations).
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// assert_eq!(Conv::new(2).stride(2), Conv::new(2).strides(&[2, 2]));
    /// ```
    pub fn stride(self, s: usize) -> Conv {
        self.strides(&vec![s; self.rank])
    }

    /// One stride per spatial axis. Panics unless there are `rank` of them.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let spec = Conv::new(2).strides(&[1, 2]);
    /// assert_eq!(spec.try_output_size(&[5, 5], &[1, 1]).unwrap(), vec![5, 3]);
    /// ```
    #[track_caller]
    pub fn strides(mut self, s: &[usize]) -> Conv {
        self.stride = self.per_axis("strides", s, 1);
        self
    }

    /// `p` zeros before and after every spatial axis.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// assert_eq!(Conv::new(1).padding(1).try_output_size(&[4], &[3]).unwrap(), vec![4]);
    /// ```
    pub fn padding(self, p: usize) -> Conv {
        self.paddings(&vec![(p, p); self.rank])
    }

    /// `(before, after)` zeros per spatial axis. Panics unless there are `rank` of them.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let spec = Conv::new(2).paddings(&[(0, 0), (2, 1)]);
    /// assert_eq!(spec.try_output_size(&[4, 4], &[3, 3]).unwrap(), vec![2, 5]);
    /// ```
    #[track_caller]
    pub fn paddings(mut self, p: &[(usize, usize)]) -> Conv {
        self.padding = Padding::Explicit(self.per_axis("paddings", p, (0, 0)));
        self
    }

    /// JAX's "SAME" padding ([`Padding::Same`]): `ceil(input / stride)` output positions.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let spec = Conv::new(2).stride(2).same();
    /// assert_eq!(spec.try_output_size(&[7, 8], &[3, 3]).unwrap(), vec![4, 4]);
    /// ```
    pub fn same(mut self) -> Conv {
        self.padding = Padding::Same;
        self
    }

    /// The same dilation `d` on every spatial axis: the kernel's taps are `d` apart
    /// (`d >= 1`, checked by the operations).
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // a 3-tap kernel dilated by 2 spans 5 positions
    /// assert_eq!(Conv::new(1).dilation(2).try_output_size(&[9], &[3]).unwrap(), vec![5]);
    /// ```
    pub fn dilation(self, d: usize) -> Conv {
        self.dilations(&vec![d; self.rank])
    }

    /// One dilation per spatial axis. Panics unless there are `rank` of them.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let spec = Conv::new(2).dilations(&[1, 3]);
    /// assert_eq!(spec.try_output_size(&[9, 9], &[3, 3]).unwrap(), vec![7, 3]);
    /// ```
    #[track_caller]
    pub fn dilations(mut self, d: &[usize]) -> Conv {
        self.dilation = self.per_axis("dilations", d, 1);
        self
    }

    /// `g` channel groups: the input's `C` channels and the kernel's `O` output channels
    /// are split into `g` groups, group `i` of the output seeing only group `i` of the
    /// input; the kernel then has `C / g` input channels (`g == C` is a depthwise
    /// convolution). `g >= 1`, dividing `C` and `O`, checked by the operations.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::ones(&[4, 10], DType::F32); // 4 channels
    /// let w = Tensor::ones(&[8, 2, 3], DType::F32); // 8 outputs, 4 / 2 inputs each
    /// assert_eq!(x.conv(&w, &Conv::new(1).groups(2)).shape(), &[8, 8]);
    /// ```
    pub fn groups(mut self, g: usize) -> Conv {
        self.groups = g;
        self
    }

    /// The number of spatial axes.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// assert_eq!(Conv::new(2).stride(3).rank(), 2);
    /// ```
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The output's spatial sizes for an input of spatial sizes `input` and a kernel of
    /// sizes `kernel`. Panics where [`Conv::try_output_size`] errs.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// assert_eq!(Conv::new(1).output_size(&[10], &[3]), vec![8]);
    /// ```
    #[track_caller]
    pub fn output_size(&self, input: &[usize], kernel: &[usize]) -> Vec<usize> {
        unwrap(self.try_output_size(input, kernel))
    }

    /// The output's spatial sizes for an input of spatial sizes `input` and a kernel of
    /// sizes `kernel` (`rank` of each); an error if the lengths are wrong, a stride or
    /// dilation is 0, a kernel size is 0, or the (dilated) window does not fit in the
    /// padded input, naming the axis, the sizes and the padding.
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let spec = Conv::new(2).dilation(2);
    /// assert_eq!(spec.try_output_size(&[6, 5], &[2, 3]).unwrap(), vec![4, 1]);
    /// let err = spec.try_output_size(&[6, 4], &[2, 3]).unwrap_err();
    /// assert!(err.to_string().contains("does not fit"));
    /// ```
    pub fn try_output_size(&self, input: &[usize], kernel: &[usize]) -> Result<Vec<usize>> {
        Ok(self
            .plan("conv", input, kernel)?
            .iter()
            .map(|a| a.out)
            .collect())
    }

    /// The output size and the padding before, per spatial axis (see
    /// [`Conv::try_output_size`]); errors name `op`.
    fn plan(&self, op: &'static str, input: &[usize], kernel: &[usize]) -> Result<Vec<Axis>> {
        let d = self.rank;
        let bad = |message: String| Err(Error::InvalidArgument { op, message });
        if input.len() != d || kernel.len() != d {
            return bad(format!(
                "a {d}-D convolution needs {d} input and {d} kernel sizes, got input {input:?} and kernel {kernel:?}"
            ));
        }
        let mut axes = Vec::with_capacity(d);
        for i in 0..d {
            let (n, k, s, dil) = (input[i], kernel[i], self.stride[i], self.dilation[i]);
            if s == 0 || dil == 0 {
                return bad(format!(
                    "strides and dilations must be at least 1, got strides {:?} and dilations {:?}",
                    &self.stride[..d],
                    &self.dilation[..d]
                ));
            }
            if k == 0 {
                return bad(format!(
                    "kernel size 0 on spatial axis {i} (kernel {kernel:?})"
                ));
            }
            let span = (k - 1) * dil + 1;
            let axis = match self.padding {
                Padding::Explicit(p) => {
                    let (before, after) = p[i];
                    let padded = n + before + after;
                    if padded < span {
                        return bad(format!(
                            "the window does not fit on spatial axis {i}: input size {n} with padding ({before}, {after}) is {padded}, \
                             but the kernel of size {k} with dilation {dil} spans {span} (input {input:?}, kernel {kernel:?})"
                        ));
                    }
                    Axis {
                        out: (padded - span) / s + 1,
                        before,
                    }
                }
                Padding::Same => {
                    let out = n.div_ceil(s);
                    let total = (out as isize - 1) * s as isize + span as isize - n as isize;
                    Axis {
                        out,
                        before: total.max(0) as usize / 2,
                    }
                }
            };
            axes.push(axis);
        }
        Ok(axes)
    }
}

/// The shapes of one convolution `x.conv(w)`, checked, with its window.
struct Geometry {
    /// x's, w's and the result's batch axes.
    xb: Vec<usize>,
    wb: Vec<usize>,
    batch: Vec<usize>,
    /// Input channels, output channels, groups.
    c: usize,
    o: usize,
    g: usize,
    /// The input's, the output's and the kernel's spatial sizes; per spatial axis the
    /// stride, the dilation and the zeros padded before.
    input: Vec<usize>,
    out: Vec<usize>,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dilation: Vec<usize>,
    before: Vec<usize>,
    /// Elements of the input's spatial block, kernel positions.
    s: usize,
    k: usize,
    /// Whether any window reads padding.
    padded: bool,
}

/// The shapes of the operands, in an error.
fn mismatch(op: &'static str, a: &[usize], b: &[usize], reason: String) -> Error {
    Error::ShapeMismatch {
        op,
        lhs: a.to_vec(),
        rhs: b.to_vec(),
        reason,
    }
}

impl Geometry {
    /// Checks and plans a convolution of `x` (`[xb.., C, *input]`: `xs` its shape without
    /// the spatial axes, which `input` gives) with a kernel of shape `ws`; `shapes` are
    /// the operands as the caller named them, for the messages.
    fn new(
        op: &'static str,
        spec: &Conv,
        xs: &[usize],
        input: &[usize],
        ws: &[usize],
        shapes: (&[usize], &[usize]),
    ) -> Result<Geometry> {
        let d = spec.rank;
        let err = |reason: String| mismatch(op, shapes.0, shapes.1, reason);
        if ws.len() < d + 2 {
            return Err(err(format!(
                "do not fit a {d}-D convolution: the kernel needs the axes [batch.., O, C / groups, *kernel] \
                 (at least {} axes), got {ws:?}",
                d + 2
            )));
        }
        let (xb, c) = (&xs[..xs.len() - 1], xs[xs.len() - 1]);
        let nw = ws.len();
        let (wb, o, cg, kernel) = (
            &ws[..nw - d - 2],
            ws[nw - d - 2],
            ws[nw - d - 1],
            &ws[nw - d..],
        );
        let g = spec.groups;
        if g == 0 {
            return Err(Error::InvalidArgument {
                op,
                message: "groups must be at least 1, got 0".into(),
            });
        }
        if cg * g != c {
            return Err(err(format!(
                "do not fit: the input has {c} channels, but the kernel takes {cg} per group x {g} groups = {}",
                cg * g
            )));
        }
        if o % g != 0 {
            return Err(err(format!(
                "do not fit: the kernel's {o} output channels are not a multiple of groups {g}"
            )));
        }
        let batch = broadcast_shapes(op, xb, wb).map_err(|_| {
            err(format!(
                "do not fit: batch axes {xb:?} and {wb:?} do not broadcast"
            ))
        })?;
        let axes = spec.plan(op, input, kernel)?;
        let out: Vec<usize> = axes.iter().map(|a| a.out).collect();
        let s = numel(input);
        let (stride, dilation) = (&spec.stride[..d], &spec.dilation[..d]);
        let before: Vec<usize> = axes.iter().map(|a| a.before).collect();
        // the first window starts at -before, the last tap of the last may end past the
        // input (where there is a window at all)
        let padded = numel(&out) > 0
            && (0..d).any(|i| {
                before[i] > 0
                    || (out[i] - 1) * stride[i] + (kernel[i] - 1) * dilation[i]
                        >= input[i] + before[i]
            });
        Ok(Geometry {
            xb: xb.to_vec(),
            wb: wb.to_vec(),
            batch,
            c,
            o,
            g,
            input: input.to_vec(),
            out,
            kernel: kernel.to_vec(),
            stride: stride.to_vec(),
            dilation: dilation.to_vec(),
            before,
            s,
            k: numel(kernel),
            padded,
        })
    }

    /// Output positions.
    fn p(&self) -> usize {
        numel(&self.out)
    }

    /// The unfold as maximal runs: column `dst + i` of a row reads input element `src + i *
    /// step` (kernel positions outer, output positions inner; `step` the last axis's
    /// stride), for `i < len`; columns in no run read padding (zeros). A run is a row of
    /// a window.
    fn runs(&self) -> Vec<Run> {
        let step = self.stride.last().copied().unwrap_or(1);
        let (d, p) = (self.input.len(), self.p());
        let mut runs: Vec<Run> = Vec::new();
        // row-major walks of the kernel (outer) and output positions
        let mut kpos = vec![0usize; d];
        for k in 0..self.k {
            let mut ppos = vec![0usize; d];
            for j in 0..p {
                let mut flat = Some(0usize);
                for i in 0..d {
                    let at = (ppos[i] * self.stride[i] + kpos[i] * self.dilation[i]) as isize
                        - self.before[i] as isize;
                    flat = match flat {
                        Some(f) if at >= 0 && (at as usize) < self.input[i] => {
                            Some(f * self.input[i] + at as usize)
                        }
                        _ => None,
                    };
                }
                if let Some(src) = flat {
                    let dst = k * p + j;
                    match runs.last_mut() {
                        Some(r) if r.dst + r.len == dst && r.src + r.len * step == src => {
                            r.len += 1
                        }
                        _ => runs.push(Run {
                            dst,
                            src,
                            len: 1,
                            step,
                        }),
                    }
                }
                advance(&mut ppos, &self.out);
            }
            advance(&mut kpos, &self.kernel);
        }
        runs
    }

    /// The window, for the GPU kernels.
    #[cfg(feature = "gpu")]
    fn window(&self) -> crate::gpu::conv::Window<'_> {
        crate::gpu::conv::Window {
            input: &self.input,
            out: &self.out,
            kernel: &self.kernel,
            stride: &self.stride,
            dilation: &self.dilation,
            before: &self.before,
        }
    }

    /// Whether the unfold is the identity (a 1 x 1 kernel with stride 1, no padding): one
    /// tap, every position read, none in the padding, as many outputs as inputs.
    fn identity(&self) -> bool {
        self.k == 1 && !self.padded && self.p() == self.s
    }

    /// The columns `[.., K * P]` of the spatial blocks `flat: [.., S]`, `fill` where a
    /// window reads padding.
    fn unfold(&self, flat: &Tensor, fill: f64) -> Result<Tensor> {
        #[cfg(feature = "gpu")]
        if flat.on_gpu() {
            return crate::gpu::conv::unfold(flat, &self.window(), fill as f32);
        }
        let (rows, kp) = (numel(&flat.shape()[..flat.ndim() - 1]), self.k * self.p());
        let runs = self.runs();
        let mut shape = flat.shape().to_vec();
        *shape.last_mut().expect("a spatial axis") = kp;
        Ok(float_dispatch!(flat.dtype(), T => {
            let x = flat.contiguous_data::<T>();
            let mut out = pool::buffer(rows * kp, 0.0 as T);
            for_row_blocks(&mut out, kp, |first, block| {
                for (i, row) in block.chunks_mut(kp.max(1)).enumerate() {
                    let x = &x[(first + i) * self.s..][..self.s];
                    // (runs are in column order; the columns between them are padding)
                    let mut end = 0;
                    for r in &runs {
                        row[end..r.dst].fill(fill as T);
                        let to = &mut row[r.dst..r.dst + r.len];
                        if r.step == 1 {
                            to.copy_from_slice(&x[r.src..r.src + r.len]);
                        } else {
                            let from = x[r.src..].iter().step_by(r.step);
                            to.iter_mut().zip(from).for_each(|(o, v)| *o = *v);
                        }
                        end = r.dst + r.len;
                    }
                    row[end..].fill(fill as T);
                }
            });
            pool::recycle_copy(x);
            Tensor::from_data(out, &shape)
        }))
    }

    /// The adjoint of [`Geometry::unfold`]: the spatial blocks `[.., S]` of the columns
    /// `cols: [.., K * P]`, each element the sum of the entries that read it.
    fn fold(&self, cols: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "gpu")]
        if cols.on_gpu() {
            return crate::gpu::conv::fold(cols, &self.window());
        }
        let (rows, kp) = (numel(&cols.shape()[..cols.ndim() - 1]), self.k * self.p());
        let runs = self.runs();
        let mut shape = cols.shape().to_vec();
        *shape.last_mut().expect("a spatial axis") = self.s;
        Ok(float_dispatch!(cols.dtype(), T => {
            let c = cols.contiguous_data::<T>();
            let mut out = pool::buffer(rows * self.s, 0.0 as T);
            for_row_blocks(&mut out, self.s, |first, block| {
                for (i, row) in block.chunks_mut(self.s.max(1)).enumerate() {
                    let c = &c[(first + i) * kp..][..kp];
                    row.fill(0.0);
                    for r in &runs {
                        let to = row[r.src..].iter_mut().step_by(r.step);
                        for (o, v) in to.zip(&c[r.dst..r.dst + r.len]) {
                            *o += *v;
                        }
                    }
                }
            });
            pool::recycle_copy(c);
            Tensor::from_data(out, &shape)
        }))
    }

    /// `[shape.., rest..]`.
    fn with(shape: &[usize], rest: &[usize]) -> Vec<usize> {
        [shape, rest].concat()
    }

    /// The columns of `x` (`[xb.., C, *input]`): `[xb.., G, (C / G) K, P]`.
    fn columns(&self, x: &Tensor) -> Result<Tensor> {
        let flat = x.try_reshape(&Geometry::with(&self.xb, &[self.c, self.s]))?;
        let cols = if self.identity() {
            flat
        } else {
            self.unfold(&flat, 0.0)?
        };
        cols.try_reshape(&Geometry::with(
            &self.xb,
            &[self.g, self.c / self.g * self.k, self.p()],
        ))
    }

    /// The kernel `w` as matrices `[wb.., G, O / G, (C / G) K]`.
    fn kernel_matrices(&self, w: &Tensor) -> Result<Tensor> {
        w.try_reshape(&Geometry::with(
            &self.wb,
            &[self.g, self.o / self.g, self.c / self.g * self.k],
        ))
    }

    /// A cotangent `[cb.., O, *out]` (batch axes `cb`) as `[cb.., G, O / G, P]`.
    fn cotangent_matrices(&self, ct: &Tensor, cb: &[usize]) -> Result<Tensor> {
        ct.try_reshape(&Geometry::with(cb, &[self.g, self.o / self.g, self.p()]))
    }
}

/// A run of the unfold (see [`Geometry::runs`]).
struct Run {
    dst: usize,
    src: usize,
    len: usize,
    step: usize,
}

/// Steps the row-major multi-index `pos` within `shape` (wrapping to zeros at the end).
fn advance(pos: &mut [usize], shape: &[usize]) {
    for i in (0..pos.len()).rev() {
        pos[i] += 1;
        if pos[i] < shape[i] {
            return;
        }
        pos[i] = 0;
    }
}

/// Checks that `x` and `w` are float tensors of one dtype on one device, and that `x` has
/// at least `min` axes (`what` describing them).
fn operands(
    op: &'static str,
    spec: &Conv,
    x: &Tensor,
    w: &Tensor,
    what: &str,
    min: usize,
) -> Result<()> {
    Tensor::expect_same_float(op, x, w)?;
    if x.ndim() < min {
        return Err(mismatch(
            op,
            x.shape(),
            w.shape(),
            format!(
                "do not fit a {}-D convolution: {what} needs the axes [batch.., C, *spatial] \
                 (at least {min} axes), got {:?}",
                spec.rank,
                x.shape()
            ),
        ));
    }
    Ok(())
}

impl Tensor {
    /// The `spec.rank()`-D convolution of `self` (`x: [batch.., C, *spatial]`) with the
    /// kernel `w: [wbatch.., O, C / groups, *kernel]`: `[batch.., O, *out]`, the batch
    /// axes of `x` and `w` broadcast as in [`Tensor::matmul`] (either may have none), the
    /// output's spatial sizes those of [`Conv::try_output_size`].
    ///
    /// It is a cross-correlation (the kernel is not flipped), as PyTorch's `conv` and
    /// JAX's `lax.conv_general_dilated`: `out[.., o, p] = sum over c in o's group and
    /// kernel positions k of x[.., c, p * stride + k * dilation - pad] * w[.., o, c, k]`,
    /// where reads in the padding are zeros. Works on any device (im2col by gathering,
    /// then a matrix product). Panics on mismatched shapes, dtypes or devices; see
    /// [`Tensor::try_conv`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // a moving sum of width 3 over a 1-D signal with one channel
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0], &[1, 5]); // [C, L]
    /// let w = Tensor::ones(&[1, 1, 3], DType::F32); // [O, C, k]
    /// let y = x.conv(&w, &Conv::new(1));
    /// assert_eq!(y.to_vec::<f32>(), vec![6.0, 9.0, 12.0]);
    /// // padded by one zero on each side: as long as the input
    /// let y = x.conv(&w, &Conv::new(1).padding(1));
    /// assert_eq!(y.to_vec::<f32>(), vec![3.0, 6.0, 9.0, 12.0, 9.0]);
    /// ```
    #[track_caller]
    pub fn conv(&self, w: &Tensor, spec: &Conv) -> Tensor {
        unwrap(self.try_conv(w, spec))
    }

    /// [`Tensor::conv`], returning an error instead of panicking.
    pub fn try_conv(&self, w: &Tensor, spec: &Conv) -> Result<Tensor> {
        const OP: &str = "conv";
        let d = spec.rank;
        operands(OP, spec, self, w, "the input", d + 1)?;
        let n = self.ndim();
        let (xs, input) = self.shape().split_at(n - d);
        let geo = Geometry::new(OP, spec, xs, input, w.shape(), (self.shape(), w.shape()))?;
        (|| {
            let cols = geo.columns(self)?;
            let out = geo.kernel_matrices(w)?.try_matmul(&cols)?;
            out.try_reshape(&Geometry::with(
                &Geometry::with(&geo.batch, &[geo.o]),
                &geo.out,
            ))
        })()
        .map_err(|e| e.for_op(OP))
    }

    /// The transpose of `x.conv(w, spec)` in `x` (a "transposed convolution"): `self` is
    /// a cotangent shaped like that convolution's result, `[batch.., O, *out]`, and
    /// `input` the spatial sizes of `x` (which a stride leaves ambiguous); the result is
    /// `[batch.., C, *input]`, its batch axes the broadcast of `self`'s and `w`'s (sum it
    /// to `x`'s with [`unbroadcast`](crate::unbroadcast) where `x` had fewer). Panics on
    /// mismatched shapes, dtypes or devices; see [`Tensor::try_conv_transpose`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // each output position of a width-2 moving sum came from two inputs
    /// let ct = Tensor::from_vec(vec![1.0f64, 10.0, 100.0], &[1, 3]); // [O, out]
    /// let w = Tensor::ones(&[1, 1, 2], DType::F64);
    /// let dx = ct.conv_transpose(&w, &Conv::new(1), &[4]);
    /// assert_eq!(dx.to_vec::<f64>(), vec![1.0, 11.0, 110.0, 100.0]);
    /// ```
    #[track_caller]
    pub fn conv_transpose(&self, w: &Tensor, spec: &Conv, input: &[usize]) -> Tensor {
        unwrap(self.try_conv_transpose(w, spec, input))
    }

    /// [`Tensor::conv_transpose`], returning an error instead of panicking.
    pub fn try_conv_transpose(&self, w: &Tensor, spec: &Conv, input: &[usize]) -> Result<Tensor> {
        const OP: &str = "conv_transpose";
        let d = spec.rank;
        operands(OP, spec, self, w, "the cotangent", d + 1)?;
        let err = |reason: String| mismatch(OP, self.shape(), w.shape(), reason);
        let nc = self.ndim();
        let (cb, o) = (&self.shape()[..nc - d - 1], self.shape()[nc - d - 1]);
        // x's channels, as the kernel takes them (a kernel with too few axes is refused by
        // the geometry)
        let nw = w.ndim();
        let channels = if nw >= d + 2 {
            w.shape()[nw - d - 1] * spec.groups
        } else {
            0
        };
        let xs = Geometry::with(cb, &[channels]);
        let geo = Geometry::new(OP, spec, &xs, input, w.shape(), (self.shape(), w.shape()))?;
        if o != geo.o || self.shape()[nc - d..] != geo.out[..] {
            return Err(err(format!(
                "do not fit: the cotangent must end in {:?} (the kernel's output channels, then the \
                 output's spatial sizes for an input of {input:?})",
                Geometry::with(&[geo.o], &geo.out)
            )));
        }
        (|| {
            let wm = geo.kernel_matrices(w)?;
            let ctm = geo.cotangent_matrices(self, cb)?;
            let dcols = wm.try_transpose(-1, -2)?.try_matmul(&ctm)?;
            let dcols =
                dcols.try_reshape(&Geometry::with(&geo.batch, &[geo.c, geo.k * geo.p()]))?;
            let mut full = Geometry::with(&geo.batch, &[geo.c]);
            let flat = if geo.identity() {
                dcols
            } else {
                geo.fold(&dcols)?
            };
            full.extend_from_slice(&geo.input);
            flat.try_reshape(&full)
        })()
        .map_err(|e| e.for_op(OP))
    }

    /// The transpose of `x.conv(w, spec)` in `w`: `self` is `x`, `ct` the cotangent of
    /// the convolution's result and `w_shape` the full shape of `w` (with its batch axes);
    /// the result, of shape `w_shape`, holds the weight gradients of every batch position
    /// summed over the batch axes `w` does not have. Panics on mismatched shapes, dtypes
    /// or devices; see [`Tensor::try_conv_weight_grad`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // d/dw of <x.conv(w), ct> for a width-2 kernel: the correlation of x with ct
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[1, 4]);
    /// let ct = Tensor::from_vec(vec![1.0f64, 0.0, 10.0], &[1, 3]);
    /// let dw = x.conv_weight_grad(&ct, &Conv::new(1), &[1, 1, 2]);
    /// assert_eq!(dw.to_vec::<f64>(), vec![1.0 + 30.0, 2.0 + 40.0]);
    /// ```
    #[track_caller]
    pub fn conv_weight_grad(&self, ct: &Tensor, spec: &Conv, w_shape: &[usize]) -> Tensor {
        unwrap(self.try_conv_weight_grad(ct, spec, w_shape))
    }

    /// [`Tensor::conv_weight_grad`], returning an error instead of panicking.
    pub fn try_conv_weight_grad(
        &self,
        ct: &Tensor,
        spec: &Conv,
        w_shape: &[usize],
    ) -> Result<Tensor> {
        const OP: &str = "conv_weight_grad";
        let d = spec.rank;
        operands(OP, spec, self, ct, "the input", d + 1)?;
        let n = self.ndim();
        let (xs, input) = self.shape().split_at(n - d);
        let geo = Geometry::new(OP, spec, xs, input, w_shape, (self.shape(), w_shape))?;
        let nc = ct.ndim();
        let fits = nc > d && ct.shape()[nc - d - 1] == geo.o && ct.shape()[nc - d..] == geo.out[..];
        let cb = &ct.shape()[..nc.saturating_sub(d + 1)];
        let full = broadcast_shapes(OP, &geo.batch, cb);
        let (true, Ok(full)) = (fits, full) else {
            return Err(mismatch(
                OP,
                self.shape(),
                ct.shape(),
                format!(
                    "do not fit: the cotangent must end in {:?} (the kernel {w_shape:?}'s output channels, \
                     then the output's spatial sizes), its batch axes broadcasting with {:?}",
                    Geometry::with(&[geo.o], &geo.out),
                    geo.batch
                ),
            ));
        };
        (|| {
            let cols = geo.columns(self)?;
            let ctm = geo.cotangent_matrices(ct, cb)?;
            let dw = ctm.try_matmul(&cols.try_transpose(-1, -2)?)?;
            let mats = [geo.g, geo.o / geo.g, geo.c / geo.g * geo.k];
            let dw = dw.try_broadcast_to(&Geometry::with(&full, &mats))?;
            try_unbroadcast(&dw, &Geometry::with(&geo.wb, &mats))?.try_reshape(w_shape)
        })()
        .map_err(|e| e.for_op(OP))
    }
}

/// The geometry of `x`'s patches: one "kernel" of `kernel`'s sizes reading every channel
/// alone (`groups` plays no part).
fn patch_geometry(
    op: &'static str,
    x: &[usize],
    kernel: &[usize],
    spec: &Conv,
) -> Result<Geometry> {
    let d = spec.rank;
    if kernel.len() != d {
        return Err(Error::InvalidArgument {
            op,
            message: format!(
                "{} window sizes for a {d}-D window, got {kernel:?}",
                kernel.len()
            ),
        });
    }
    if x.len() < d + 1 {
        return Err(Error::InvalidArgument {
            op,
            message: format!(
                "the input needs the axes [batch.., C, *spatial] (at least {} axes), got {x:?}",
                d + 1
            ),
        });
    }
    let (xs, input) = x.split_at(x.len() - d);
    let ws = Geometry::with(&[1, xs[xs.len() - 1]], kernel);
    let one = Conv { groups: 1, ..*spec };
    Geometry::new(op, &one, xs, input, &ws, (x, kernel))
}

impl Tensor {
    /// The patches of `self` (`x: [batch.., C, *spatial]`) under windows of sizes `kernel`
    /// placed as `spec` places a convolution's (its stride, padding and dilation; its
    /// groups play no part): `[batch.., C, *out, K]`, each output position's window
    /// (`K = kernel.iter().product()` values, row-major, zeros where it reads padding) in
    /// the last axis. Reducing that axis pools: see [`Tensor::max_pool`] and
    /// [`Tensor::avg_pool`]. Panics on bad shapes; see [`Tensor::try_unfold`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, 2.0, 4.0, 3.0, 0.0], &[1, 6]); // [C, L]
    /// let p = x.unfold(&[2], &Conv::new(1).stride(2));
    /// assert_eq!(p.shape(), &[1, 3, 2]);
    /// assert_eq!(p.to_vec::<f32>(), vec![1.0, 5.0, 2.0, 4.0, 3.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn unfold(&self, kernel: &[usize], spec: &Conv) -> Tensor {
        unwrap(self.try_unfold_with(kernel, spec, 0.0))
    }

    /// [`Tensor::unfold`], returning an error instead of panicking.
    pub fn try_unfold(&self, kernel: &[usize], spec: &Conv) -> Result<Tensor> {
        self.try_unfold_with(kernel, spec, 0.0)
    }

    /// [`Tensor::unfold`] with `fill` read where a window reads padding (`-inf` for a max
    /// pool). Panics on bad shapes; see [`Tensor::try_unfold_with`].
    #[track_caller]
    pub fn unfold_with(&self, kernel: &[usize], spec: &Conv, fill: f64) -> Tensor {
        unwrap(self.try_unfold_with(kernel, spec, fill))
    }

    /// [`Tensor::unfold_with`], returning an error instead of panicking.
    pub fn try_unfold_with(&self, kernel: &[usize], spec: &Conv, fill: f64) -> Result<Tensor> {
        const OP: &str = "unfold";
        self.expect_float(OP)?;
        let geo = patch_geometry(OP, self.shape(), kernel, spec)?;
        (|| {
            let n = self.ndim() - spec.rank;
            let flat = self.try_reshape(&Geometry::with(&self.shape()[..n], &[geo.s]))?;
            let cols = if geo.identity() {
                flat
            } else {
                geo.unfold(&flat, fill)?
            };
            // [.., C, K, *out], then K moved last (a view)
            let mut shape = Geometry::with(&self.shape()[..n], &[geo.k]);
            shape.extend_from_slice(&geo.out);
            let mut axes: Vec<isize> = (0..shape.len() as isize).collect();
            axes.remove(n);
            axes.push(n as isize);
            cols.try_reshape(&shape)?.try_permute(&axes)
        })()
        .map_err(|e| e.for_op(OP))
    }

    /// Max pooling: the largest element of each window of sizes `window`, placed by
    /// `spec` (stride, padding, dilation) on `self` (`[batch.., C, *spatial]`), giving
    /// `[batch.., C, *out]`. Padding is never the largest (it reads `-inf`, as in PyTorch
    /// and Flax). Panics on bad shapes; see [`Tensor::try_max_pool`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec((0..16).map(|v| -(v as f32)).collect(), &[1, 4, 4]);
    /// let y = x.max_pool(&[2, 2], &Conv::new(2).stride(2));
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, -2.0, -8.0, -10.0]);
    /// // padded: the windows at the edges are smaller, never zero
    /// let y = x.max_pool(&[3, 3], &Conv::new(2).stride(2).padding(1));
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, -1.0, -4.0, -5.0]);
    /// ```
    #[track_caller]
    pub fn max_pool(&self, window: &[usize], spec: &Conv) -> Tensor {
        unwrap(self.try_max_pool(window, spec))
    }

    /// [`Tensor::max_pool`], returning an error instead of panicking.
    pub fn try_max_pool(&self, window: &[usize], spec: &Conv) -> Result<Tensor> {
        self.try_unfold_with(window, spec, f64::NEG_INFINITY)?
            .try_max_axis(-1, false)
            .map_err(|e| e.for_op("max_pool"))
    }

    /// Average pooling: the mean of each window of sizes `window`, placed by `spec` on
    /// `self` (`[batch.., C, *spatial]`), giving `[batch.., C, *out]`; padding counts as
    /// zeros (PyTorch's and Flax's default, `count_include_pad`). Panics on bad shapes; see
    /// [`Tensor::try_avg_pool`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::from_vec((0..16).map(|v| v as f64).collect(), &[1, 4, 4]);
    /// let y = x.avg_pool(&[2, 2], &Conv::new(2).stride(2));
    /// assert_eq!(y.to_vec::<f64>(), vec![2.5, 4.5, 10.5, 12.5]);
    /// ```
    #[track_caller]
    pub fn avg_pool(&self, window: &[usize], spec: &Conv) -> Tensor {
        unwrap(self.try_avg_pool(window, spec))
    }

    /// [`Tensor::avg_pool`], returning an error instead of panicking.
    pub fn try_avg_pool(&self, window: &[usize], spec: &Conv) -> Result<Tensor> {
        self.try_unfold(window, spec)?
            .try_mean_axis(-1, false)
            .map_err(|e| e.for_op("avg_pool"))
    }

    /// The adjoint of [`Tensor::unfold`]: `self` shaped like the patches, `[batch.., C,
    /// *out, K]`, summed back into `[batch.., C, *input]` (each input element the sum of
    /// the patch entries that read it). Panics on bad shapes; see [`Tensor::try_fold`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // windows of 2 with stride 1 read the inner elements twice
    /// let ones = Tensor::ones(&[1, 3, 2], DType::F64); // [C, out, K]
    /// let x = ones.fold(&[4], &[2], &Conv::new(1));
    /// assert_eq!(x.to_vec::<f64>(), vec![1.0, 2.0, 2.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn fold(&self, input: &[usize], kernel: &[usize], spec: &Conv) -> Tensor {
        unwrap(self.try_fold(input, kernel, spec))
    }

    /// [`Tensor::fold`], returning an error instead of panicking.
    pub fn try_fold(&self, input: &[usize], kernel: &[usize], spec: &Conv) -> Result<Tensor> {
        const OP: &str = "fold";
        self.expect_float(OP)?;
        let d = spec.rank;
        if self.ndim() < d + 2 || input.len() != d {
            return Err(Error::InvalidArgument {
                op: OP,
                message: format!(
                    "patches [batch.., C, *out, K] of a {d}-D input of sizes {input:?} needed, got {:?}",
                    self.shape()
                ),
            });
        }
        let n = self.ndim() - d - 1;
        let x = Geometry::with(&self.shape()[..n], input);
        let geo = patch_geometry(OP, &x, kernel, spec)?;
        let want = Geometry::with(&Geometry::with(&self.shape()[..n], &geo.out), &[geo.k]);
        if self.shape() != want {
            return Err(Error::InvalidArgument {
                op: OP,
                message: format!(
                    "patches of shape {want:?} needed for inputs of sizes {input:?}, got {:?}",
                    self.shape()
                ),
            });
        }
        (|| {
            // K back before the output positions, then [.., C, K * P]
            let mut axes: Vec<isize> = (0..self.ndim() as isize).collect();
            let k = axes.pop().expect("a window axis");
            axes.insert(n, k);
            let cols = self
                .try_permute(&axes)?
                .try_reshape(&Geometry::with(&self.shape()[..n], &[geo.k * geo.p()]))?;
            let flat = if geo.identity() {
                cols
            } else {
                geo.fold(&cols)?
            };
            flat.try_reshape(&x)
        })()
        .map_err(|e| e.for_op(OP))
    }
}
