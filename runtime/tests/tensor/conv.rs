//! Convolution (`conv`) and its two transposes (`conv_transpose`, `conv_weight_grad`)
//! against a direct loop over batch, output channels, output positions, input channels and
//! kernel positions, in 1, 2 and 3 spatial dimensions, with strides, explicit and "SAME"
//! padding, dilation, groups (depthwise too), no, one and two batch axes broadcast between
//! the input and the kernel, empty batches, and transposed or sliced operands; the
//! adjoint identities; f32 against f64; a few answers worked by hand; and the errors.

use ferrax_runtime::prelude::*;
use ferrax_runtime::unbroadcast;

use crate::errors::{err_contains, f32s};
use crate::reference::{broadcast, indices};

/// A convolution spec as plain data, for the reference (`pad: None` is "SAME").
#[derive(Clone, Debug)]
struct Spec {
    stride: Vec<usize>,
    dilation: Vec<usize>,
    pad: Option<Vec<(usize, usize)>>,
    groups: usize,
}

impl Spec {
    fn valid(rank: usize) -> Spec {
        Spec {
            stride: vec![1; rank],
            dilation: vec![1; rank],
            pad: Some(vec![(0, 0); rank]),
            groups: 1,
        }
    }
    fn stride(mut self, s: &[usize]) -> Spec {
        self.stride = s.to_vec();
        self
    }
    fn dilation(mut self, d: &[usize]) -> Spec {
        self.dilation = d.to_vec();
        self
    }
    fn pad(mut self, p: &[(usize, usize)]) -> Spec {
        self.pad = Some(p.to_vec());
        self
    }
    fn same(mut self) -> Spec {
        self.pad = None;
        self
    }
    fn groups(mut self, g: usize) -> Spec {
        self.groups = g;
        self
    }
    fn rank(&self) -> usize {
        self.stride.len()
    }

    /// The runtime's spec.
    fn conv(&self) -> Conv {
        let c = Conv::new(self.rank())
            .strides(&self.stride)
            .dilations(&self.dilation)
            .groups(self.groups);
        match &self.pad {
            Some(p) => c.paddings(p),
            None => c.same(),
        }
    }

    /// Per spatial axis: the output size and the padding before (negative never; "SAME"
    /// as JAX: ceil(n / s) outputs, the smaller half of the total padding before).
    fn axes(&self, input: &[usize], kernel: &[usize]) -> Vec<(usize, usize)> {
        (0..self.rank())
            .map(|i| {
                let (n, k, s, d) = (input[i], kernel[i], self.stride[i], self.dilation[i]);
                let span = (k - 1) * d + 1;
                match &self.pad {
                    Some(p) => {
                        let padded = n + p[i].0 + p[i].1;
                        assert!(padded >= span, "reference: the window does not fit");
                        ((padded - span) / s + 1, p[i].0)
                    }
                    None => {
                        let out = n.div_ceil(s);
                        let total = ((out as isize - 1) * s as isize + span as isize - n as isize)
                            .max(0) as usize;
                        (out, total / 2)
                    }
                }
            })
            .collect()
    }
}

/// Row-major offset of `idx` in `shape`.
fn offset(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

/// The index into batch axes `sub` (broadcast to `full`) of the full batch index `idx`.
fn sub_batch(idx: &[usize], sub: &[usize]) -> Vec<usize> {
    let lead = idx.len() - sub.len();
    sub.iter()
        .enumerate()
        .map(|(j, &n)| if n == 1 { 0 } else { idx[lead + j] })
        .collect()
}

/// The shapes of the three results: `y` `[batch.., O, *out]`, `dx` `[batch.., C, *input]`.
struct Shapes {
    y: Vec<usize>,
    dx: Vec<usize>,
}

/// The direct loop: for every batch position, output channel, output position, input
/// channel of the output channel's group and kernel position whose input position is not
/// padding, calls `f(x index, dx index, w index, y index)` (flat, row-major).
fn walk(
    xs: &[usize],
    ws: &[usize],
    sp: &Spec,
    mut f: impl FnMut(usize, usize, usize, usize),
) -> Shapes {
    let d = sp.rank();
    let (nx, nw) = (xs.len(), ws.len());
    let (xb, c, input) = (&xs[..nx - d - 1], xs[nx - d - 1], &xs[nx - d..]);
    let (wb, o, cg, kernel) = (
        &ws[..nw - d - 2],
        ws[nw - d - 2],
        ws[nw - d - 1],
        &ws[nw - d..],
    );
    assert_eq!(cg * sp.groups, c, "reference: channels");
    let batch = broadcast(xb, wb).expect("reference: batch axes");
    let axes = sp.axes(input, kernel);
    let out: Vec<usize> = axes.iter().map(|a| a.0).collect();
    let og = o / sp.groups;
    let ys = [&batch[..], &[o], &out].concat();
    let dxs = [&batch[..], &[c], input].concat();
    for bi in indices(&batch) {
        let (bx, bw) = (sub_batch(&bi, xb), sub_batch(&bi, wb));
        for oc in 0..o {
            let group = oc / og;
            for p in indices(&out) {
                let yi = offset(&[&bi[..], &[oc], &p].concat(), &ys);
                for ci in 0..cg {
                    let ch = group * cg + ci;
                    for k in indices(kernel) {
                        let pos: Vec<isize> = (0..d)
                            .map(|i| {
                                (p[i] * sp.stride[i] + k[i] * sp.dilation[i]) as isize
                                    - axes[i].1 as isize
                            })
                            .collect();
                        if pos
                            .iter()
                            .zip(input)
                            .any(|(&q, &n)| q < 0 || q as usize >= n)
                        {
                            continue;
                        }
                        let pos: Vec<usize> = pos.iter().map(|&q| q as usize).collect();
                        let xi = offset(&[&bx[..], &[ch], &pos].concat(), xs);
                        let dxi = offset(&[&bi[..], &[ch], &pos].concat(), &dxs);
                        let wi = offset(&[&bw[..], &[oc, ci], &k].concat(), ws);
                        f(xi, dxi, wi, yi);
                    }
                }
            }
        }
    }
    Shapes { y: ys, dx: dxs }
}

/// The reference results: the convolution `y`, and for a cotangent of it, the transposes
/// `dx` (over the broadcast batch) and `dw`.
struct Expected {
    y: Vec<f64>,
    ys: Vec<usize>,
    dx: Vec<f64>,
    dxs: Vec<usize>,
    dw: Vec<f64>,
}

/// The reference convolution and, for the cotangent `ct` of its result, the reference
/// transposes.
fn reference(
    x: &[f64],
    xs: &[usize],
    w: &[f64],
    ws: &[usize],
    sp: &Spec,
    ct: Option<&[f64]>,
) -> Expected {
    let shapes = walk(xs, ws, sp, |_, _, _, _| {});
    let mut y = vec![0.0; shapes.y.iter().product()];
    let mut dx = vec![0.0; shapes.dx.iter().product()];
    let mut dw = vec![0.0; w.len()];
    walk(xs, ws, sp, |xi, dxi, wi, yi| {
        y[yi] += x[xi] * w[wi];
        if let Some(c) = ct {
            dx[dxi] += w[wi] * c[yi];
            dw[wi] += x[xi] * c[yi];
        }
    });
    Expected {
        y,
        ys: shapes.y,
        dx,
        dxs: shapes.dx,
        dw,
    }
}

/// Deterministic multiples of 1/8 in [-3, 3] (exact in f32: the sums of products below are
/// exact in both dtypes).
fn eighths(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x2545_F491);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s % 49) as f64 - 24.0) / 8.0
        })
        .collect()
}

/// Deterministic values in (-1, 1) that are not dyadic (rounding happens everywhere).
fn rough(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0xD1B5_4A32_D192_ED03).wrapping_add(7);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2_000_001) as f64 / 1_000_003.0 - 1.0
        })
        .collect()
}

/// How an operand is stored.
#[derive(Clone, Copy, Debug)]
enum Lay {
    Contiguous,
    /// Stored with reversed axes, viewed through `permute`.
    Transposed,
    /// The middle of a wider last axis.
    Sliced,
}

const LAYS: [Lay; 3] = [Lay::Contiguous, Lay::Transposed, Lay::Sliced];

/// A tensor of `shape` holding `data` (row-major), stored as `lay`, in `dtype`.
fn laid(data: &[f64], shape: &[usize], lay: Lay, dtype: DType) -> Tensor {
    let n = shape.len();
    let t = match lay {
        Lay::Contiguous => Tensor::from_vec(data.to_vec(), shape),
        Lay::Transposed => {
            let rev: Vec<usize> = shape.iter().rev().copied().collect();
            let mut stored = vec![0.0; data.len()];
            for (e, idx) in indices(shape).iter().enumerate() {
                let r: Vec<usize> = idx.iter().rev().copied().collect();
                stored[offset(&r, &rev)] = data[e];
            }
            let axes: Vec<isize> = (0..n as isize).rev().collect();
            Tensor::from_vec(stored, &rev).permute(&axes)
        }
        Lay::Sliced => {
            let last = shape[n - 1];
            let mut wide = shape.to_vec();
            wide[n - 1] = last + 2;
            let mut stored = vec![1e6; wide.iter().product()];
            for (e, idx) in indices(shape).iter().enumerate() {
                let mut i = idx.clone();
                i[n - 1] += 1;
                stored[offset(&i, &wide)] = data[e];
            }
            Tensor::from_vec(stored, &wide).slice(-1, 1, last + 1)
        }
    };
    assert_eq!(t.shape(), shape);
    t.to_dtype(dtype)
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).to_vec::<f64>()
}

/// Asserts `got` has shape `shape` and values `want` within `tol` (relative, absolute
/// below 1).
#[track_caller]
fn assert_close(got: &Tensor, shape: &[usize], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.shape(), shape, "{what}: shape");
    let g = values(got);
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}: element {i}: got {a}, want {b}\n got {g:?}\nwant {want:?}"
        );
    }
}

/// The cases: input shape, kernel shape, spec.
fn cases() -> Vec<(Vec<usize>, Vec<usize>, Spec)> {
    let v = |s: &[usize]| s.to_vec();
    vec![
        // ----- 1-D -----
        (v(&[1, 5]), v(&[1, 1, 3]), Spec::valid(1)),
        (
            v(&[2, 3, 9]),
            v(&[4, 3, 3]),
            Spec::valid(1).stride(&[2]).pad(&[(1, 1)]),
        ),
        (
            v(&[3, 10]),
            v(&[2, 3, 4]),
            Spec::valid(1).dilation(&[2]).pad(&[(3, 1)]),
        ),
        // depthwise, SAME
        (
            v(&[2, 4, 7]),
            v(&[4, 1, 3]),
            Spec::valid(1).groups(4).same(),
        ),
        // SAME with stride 2 on odd and even sizes, even kernels
        (
            v(&[1, 2, 7]),
            v(&[3, 2, 4]),
            Spec::valid(1).stride(&[2]).same(),
        ),
        (
            v(&[1, 2, 8]),
            v(&[3, 2, 3]),
            Spec::valid(1).stride(&[2]).same(),
        ),
        (
            v(&[2, 9]),
            v(&[3, 2, 3]),
            Spec::valid(1).dilation(&[2]).same(),
        ),
        (
            v(&[2, 5]),
            v(&[1, 2, 2]),
            Spec::valid(1).stride(&[3]).same(),
        ),
        // stride larger than the kernel, padding larger than the kernel
        (
            v(&[2, 2, 5]),
            v(&[2, 2, 2]),
            Spec::valid(1).stride(&[3]).pad(&[(4, 4)]),
        ),
        // 1 x 1 kernels: the identity gather, and strided
        (v(&[2, 3, 5]), v(&[4, 3, 1]), Spec::valid(1)),
        (v(&[2, 3, 5]), v(&[4, 3, 1]), Spec::valid(1).stride(&[2])),
        // an input shorter than the kernel, and an empty one, padded
        (v(&[1, 1, 2]), v(&[1, 1, 3]), Spec::valid(1).pad(&[(1, 1)])),
        (v(&[2, 0]), v(&[1, 2, 2]), Spec::valid(1).pad(&[(1, 1)])),
        // ----- 2-D -----
        (v(&[2, 3, 6, 5]), v(&[4, 3, 3, 3]), Spec::valid(2)),
        (
            v(&[1, 4, 7, 8]),
            v(&[6, 2, 3, 2]),
            Spec::valid(2)
                .groups(2)
                .stride(&[2, 1])
                .pad(&[(1, 0), (2, 2)])
                .dilation(&[1, 2]),
        ),
        (
            v(&[2, 3, 5, 5]),
            v(&[3, 1, 3, 3]),
            Spec::valid(2).groups(3).stride(&[2, 2]).same(),
        ),
        (
            v(&[2, 3, 5, 6]),
            v(&[6, 1, 2, 3]),
            Spec::valid(2).groups(3).same(),
        ),
        (v(&[3, 4, 4]), v(&[2, 3, 1, 1]), Spec::valid(2)),
        // two batch axes; batch axes broadcast between input and kernel
        (
            v(&[2, 3, 2, 5, 4]),
            v(&[4, 2, 2, 2]),
            Spec::valid(2).pad(&[(1, 1), (0, 1)]),
        ),
        (
            v(&[2, 1, 2, 5, 4]),
            v(&[3, 4, 2, 2, 2]),
            Spec::valid(2).stride(&[2, 1]),
        ),
        (v(&[2, 5, 4]), v(&[3, 4, 2, 2, 2]), Spec::valid(2).same()),
        (v(&[3, 2, 2, 4, 4]), v(&[3, 1, 4, 2, 2, 2]), Spec::valid(2)),
        // a batch of no examples
        (
            v(&[0, 2, 4, 4]),
            v(&[3, 2, 2, 2]),
            Spec::valid(2).pad(&[(1, 1), (1, 1)]),
        ),
        // ----- 3-D -----
        (
            v(&[2, 2, 4, 5, 3]),
            v(&[3, 2, 2, 3, 2]),
            Spec::valid(3)
                .stride(&[1, 2, 1])
                .pad(&[(1, 1), (1, 1), (1, 1)]),
        ),
        (
            v(&[1, 4, 5, 4, 4]),
            v(&[4, 2, 3, 1, 2]),
            Spec::valid(3)
                .groups(2)
                .same()
                .dilation(&[2, 1, 1])
                .stride(&[2, 2, 2]),
        ),
        (v(&[3, 3, 3, 3]), v(&[2, 3, 3, 3, 3]), Spec::valid(3)),
        // large enough for the runtime's recycled buffers (whose contents are stale) and
        // for more than one thread: the padding must be written, not assumed zero
        (
            v(&[3, 8, 20, 20]),
            v(&[4, 8, 3, 3]),
            Spec::valid(2).pad(&[(1, 1), (2, 0)]),
        ),
    ]
}

/// All three operations on every case, every layout of each operand, in f64 and f32,
/// against the reference.
#[test]
fn conv_and_its_transposes_match_the_direct_loop() {
    for (i, (xs, ws, sp)) in cases().into_iter().enumerate() {
        let seed = 10 * i as u64;
        let (x, w) = (
            eighths(xs.iter().product(), seed),
            eighths(ws.iter().product(), seed + 1),
        );
        let ys = reference(&x, &xs, &w, &ws, &sp, None).ys;
        let ct = eighths(ys.iter().product(), seed + 2);
        let Expected { y, ys, dx, dxs, dw } = reference(&x, &xs, &w, &ws, &sp, Some(&ct));
        let spec = sp.conv();
        let input = &xs[xs.len() - sp.rank()..];
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F32 { 1e-6 } else { 1e-12 };
            for j in 0..LAYS.len() {
                // every layout for every operand, in three rotations
                let (lx, lw, lc) = (LAYS[j], LAYS[(j + 1) % 3], LAYS[(j + 2) % 3]);
                let what = format!(
                    "case {i}: x {xs:?} ({lx:?}), w {ws:?} ({lw:?}), ct ({lc:?}), {sp:?}, {dtype}"
                );
                let xt = laid(&x, &xs, lx, dtype);
                let wt = laid(&w, &ws, lw, dtype);
                let ctt = laid(&ct, &ys, lc, dtype);
                assert_close(&xt.conv(&wt, &spec), &ys, &y, tol, &format!("conv, {what}"));
                assert_close(
                    &ctt.conv_transpose(&wt, &spec, input),
                    &dxs,
                    &dx,
                    tol,
                    &format!("conv_transpose, {what}"),
                );
                assert_close(
                    &xt.conv_weight_grad(&ctt, &spec, &ws),
                    &ws,
                    &dw,
                    tol,
                    &format!("conv_weight_grad, {what}"),
                );
            }
        }
    }
}

/// The inner product of two tensors of one shape, in f64.
fn dot(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    values(a).iter().zip(values(b)).map(|(p, q)| p * q).sum()
}

/// `<conv(x, w), c> == <x, conv_transpose(c, w)> == <w, conv_weight_grad(x, c)>` in f64 on
/// values that round, with `conv_transpose`'s broadcast batch summed to `x`'s.
#[test]
fn the_transposes_are_adjoint() {
    for (i, (xs, ws, sp)) in cases().into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let x = Tensor::from_vec(rough(xs.iter().product(), seed), &xs);
        let w = Tensor::from_vec(rough(ws.iter().product(), seed + 1), &ws);
        let spec = sp.conv();
        let y = x.conv(&w, &spec);
        for trial in 0..2 {
            let c = Tensor::from_vec(rough(y.numel(), seed + 2 + trial), y.shape());
            let input = &xs[xs.len() - sp.rank()..];
            let dx = unbroadcast(&c.conv_transpose(&w, &spec, input), &xs);
            let dw = x.conv_weight_grad(&c, &spec, &ws);
            let (a, b, e) = (dot(&y, &c), dot(&x, &dx), dot(&w, &dw));
            let scale = a.abs().max(1.0);
            assert!(
                (a - b).abs() <= 1e-10 * scale && (a - e).abs() <= 1e-10 * scale,
                "case {i} ({xs:?}, {ws:?}, {sp:?}): <conv(x, w), c> = {a}, <x, conv_transpose(c, w)> = {b}, \
                 <w, conv_weight_grad(x, c)> = {e}"
            );
        }
    }
}

/// f32 results against f64 on values that round (to a tolerance relative to the largest
/// result: the long sums of the large case cancel).
#[test]
fn f32_agrees_with_f64() {
    for (i, (xs, ws, sp)) in cases().into_iter().enumerate() {
        let seed = 1000 + 10 * i as u64;
        let x = Tensor::from_vec(rough(xs.iter().product(), seed), &xs);
        let w = Tensor::from_vec(rough(ws.iter().product(), seed + 1), &ws);
        let spec = sp.conv();
        let y = x.conv(&w, &spec);
        let c = Tensor::from_vec(rough(y.numel(), seed + 2), y.shape());
        let input = &xs[xs.len() - sp.rank()..];
        let f = |t: &Tensor| t.to_dtype(DType::F32);
        let what = format!("case {i} ({xs:?}, {ws:?}, {sp:?})");
        let scaled = |want: &Tensor| 2e-6 * values(want).iter().fold(5.0f64, |m, v| m.max(v.abs()));
        let y32 = f(&x).conv(&f(&w), &spec);
        assert_eq!(y32.dtype(), DType::F32);
        assert_close(
            &y32,
            y.shape(),
            &values(&y),
            scaled(&y),
            &format!("conv, {what}"),
        );
        let dx = c.conv_transpose(&w, &spec, input);
        let dx32 = f(&c).conv_transpose(&f(&w), &spec, input);
        assert_close(
            &dx32,
            dx.shape(),
            &values(&dx),
            scaled(&dx),
            &format!("conv_transpose, {what}"),
        );
        let dw = x.conv_weight_grad(&c, &spec, &ws);
        let dw32 = f(&x).conv_weight_grad(&f(&c), &spec, &ws);
        assert_close(
            &dw32,
            dw.shape(),
            &values(&dw),
            scaled(&dw),
            &format!("conv_weight_grad, {what}"),
        );
    }
}

/// Answers worked by hand, independent of the reference's formulas.
#[test]
fn conv_matches_hand_computed_answers() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], &[1, 7]);
    let w = Tensor::from_vec(vec![1.0f64, 10.0, 100.0], &[1, 1, 3]);
    // a moving sum
    let ones = Tensor::ones(&[1, 1, 3], DType::F64);
    assert_eq!(
        x.conv(&ones, &Conv::new(1)).to_vec::<f64>(),
        vec![6.0, 9.0, 12.0, 15.0, 18.0]
    );
    // no kernel flip (cross-correlation)
    assert_eq!(
        x.conv(&w, &Conv::new(1)).to_vec::<f64>(),
        vec![321.0, 432.0, 543.0, 654.0, 765.0]
    );
    // dilation 2: taps at p, p + 2, p + 4
    assert_eq!(
        x.conv(&w, &Conv::new(1).dilation(2)).to_vec::<f64>(),
        vec![531.0, 642.0, 753.0]
    );
    // SAME, stride 2, 6 inputs: 3 outputs, one zero of padding, after
    let x6 = x.slice(1, 0, 6);
    assert_eq!(
        x6.conv(&w, &Conv::new(1).stride(2).same()).to_vec::<f64>(),
        vec![321.0, 543.0, 65.0]
    );
    // SAME, stride 2, 7 inputs: 4 outputs, one zero before and one after
    assert_eq!(
        x.conv(&w, &Conv::new(1).stride(2).same()).to_vec::<f64>(),
        vec![210.0, 432.0, 654.0, 76.0]
    );
    // SAME with an even kernel: 3 zeros, 1 before and 2 after
    let x5 = x.slice(1, 0, 5);
    let four = Tensor::ones(&[1, 1, 4], DType::F64);
    assert_eq!(
        x5.conv(&four, &Conv::new(1).same()).to_vec::<f64>(),
        vec![6.0, 10.0, 14.0, 12.0, 9.0]
    );
    // explicit padding, uneven; stride larger than the kernel
    assert_eq!(
        x5.conv(&w, &Conv::new(1).paddings(&[(2, 0)]))
            .to_vec::<f64>(),
        vec![100.0, 210.0, 321.0, 432.0, 543.0]
    );
    assert_eq!(
        x.conv(&w.slice(-1, 0, 2), &Conv::new(1).stride(3))
            .to_vec::<f64>(),
        vec![21.0, 54.0]
    );
    // 2-D: a 2 x 2 box sum with one group per channel (depthwise), channel 1 scaled by 2
    let img = Tensor::arange(0.0, 18.0, 1.0, DType::F64).reshape(&[2, 3, 3]);
    let box2 = Tensor::from_vec(
        vec![1.0f64, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0],
        &[2, 1, 2, 2],
    );
    assert_eq!(
        img.conv(&box2, &Conv::new(2).groups(2)).to_vec::<f64>(),
        vec![
            8.0,
            12.0,
            20.0,
            24.0,
            2.0 * 44.0,
            2.0 * 48.0,
            2.0 * 56.0,
            2.0 * 60.0
        ]
    );
    // 2-D, all channels: the sum over both channels' windows
    let both = Tensor::ones(&[1, 2, 2, 2], DType::F64);
    assert_eq!(
        img.conv(&both, &Conv::new(2)).to_vec::<f64>(),
        vec![52.0, 60.0, 76.0, 84.0]
    );
    // 2-D, padding 1 and stride 2: the corners' windows see one to four elements
    let one = Tensor::ones(&[1, 1, 2, 2], DType::F64);
    assert_eq!(
        img.slice(0, 0, 1)
            .conv(&one, &Conv::new(2).padding(1).stride(2))
            .to_vec::<f64>(),
        vec![0.0, 3.0, 9.0, 24.0]
    );
}

/// Shapes of results at the edges: empty batches, empty channels, output channels.
#[test]
fn conv_handles_empty_axes() {
    let spec = Conv::new(2).padding(1);
    let x = Tensor::ones(&[0, 2, 4, 4], DType::F32);
    let w = Tensor::ones(&[3, 2, 3, 3], DType::F32);
    let y = x.conv(&w, &spec);
    assert_eq!(y.shape(), &[0, 3, 4, 4]);
    assert_eq!(y.conv_transpose(&w, &spec, &[4, 4]).shape(), &[0, 2, 4, 4]);
    let dw = x.conv_weight_grad(&y, &spec, &[3, 2, 3, 3]);
    assert_eq!(dw.to_vec::<f32>(), vec![0.0; 54]);
    // no output channels, no input channels
    let w0 = Tensor::ones(&[0, 2, 3, 3], DType::F32);
    assert_eq!(
        Tensor::ones(&[1, 2, 4, 4], DType::F32)
            .conv(&w0, &spec)
            .shape(),
        &[1, 0, 4, 4]
    );
    let none = Tensor::ones(&[1, 0, 4, 4], DType::F32);
    let wc = Tensor::ones(&[2, 0, 3, 3], DType::F32);
    assert_eq!(none.conv(&wc, &spec).to_vec::<f32>(), vec![0.0; 32]);
}

/// The builder and `try_output_size`.
#[test]
fn conv_spec_builds_and_sizes() {
    assert_eq!(Conv::new(2).stride(2), Conv::new(2).strides(&[2, 2]));
    assert_eq!(Conv::new(3).padding(1), Conv::new(3).paddings(&[(1, 1); 3]));
    assert_eq!(Conv::new(1).dilation(3), Conv::new(1).dilations(&[3]));
    assert_ne!(Conv::new(1).same(), Conv::new(1));
    assert_ne!(Conv::new(1).groups(2), Conv::new(1));
    assert_eq!(Conv::new(2).rank(), 2);
    let s = Conv::new(2)
        .strides(&[1, 2])
        .paddings(&[(1, 0), (0, 3)])
        .dilations(&[2, 1]);
    // (5 + 1 - 3) / 1 + 1 = 4 and (6 + 3 - 2) / 2 + 1 = 4
    assert_eq!(s.try_output_size(&[5, 6], &[2, 2]).unwrap(), vec![4, 4]);
    assert_eq!(s.output_size(&[5, 6], &[2, 2]), vec![4, 4]);
    let same = Conv::new(3).stride(2).same();
    assert_eq!(
        same.try_output_size(&[7, 8, 1], &[3, 4, 5]).unwrap(),
        vec![4, 4, 1]
    );
    assert_eq!(
        same.try_output_size(&[0, 1, 2], &[3, 3, 3]).unwrap(),
        vec![0, 1, 1]
    );
}

#[test]
fn conv_errors_name_the_operation_and_the_shapes() {
    let c1 = Conv::new(1);
    // channels
    err_contains(
        f32s(&[1, 3, 5]).try_conv(&f32s(&[2, 2, 3]), &c1),
        &[
            "conv:",
            "[1, 3, 5]",
            "[2, 2, 3]",
            "3 channels",
            "2 per group x 1 groups",
        ],
    );
    // groups dividing neither the input's channels nor the output's
    err_contains(
        f32s(&[1, 3, 5]).try_conv(&f32s(&[2, 1, 3]), &c1.groups(2)),
        &["conv:", "3 channels", "1 per group x 2 groups = 2"],
    );
    err_contains(
        f32s(&[1, 4, 5]).try_conv(&f32s(&[3, 2, 3]), &c1.groups(2)),
        &[
            "conv:",
            "[1, 4, 5]",
            "[3, 2, 3]",
            "3 output channels",
            "groups 2",
        ],
    );
    err_contains(
        f32s(&[1, 4, 5]).try_conv(&f32s(&[3, 2, 3]), &c1.groups(0)),
        &["conv:", "groups must be at least 1"],
    );
    // the window
    err_contains(
        f32s(&[1, 1, 2]).try_conv(&f32s(&[1, 1, 3]), &c1),
        &[
            "conv:",
            "does not fit on spatial axis 0",
            "input size 2",
            "padding (0, 0)",
            "spans 3",
        ],
    );
    err_contains(
        f32s(&[1, 4, 4]).try_conv(&f32s(&[1, 1, 2, 3]), &Conv::new(2).dilation(2)),
        &[
            "conv:",
            "spatial axis 1",
            "input size 4",
            "dilation 2 spans 5",
        ],
    );
    err_contains(
        f32s(&[1, 4]).try_conv(&f32s(&[1, 1, 0]), &c1),
        &["conv:", "kernel size 0"],
    );
    err_contains(
        f32s(&[1, 4]).try_conv(&f32s(&[1, 1, 2]), &c1.stride(0)),
        &["conv:", "strides and dilations must be at least 1"],
    );
    err_contains(
        f32s(&[1, 4]).try_conv(&f32s(&[1, 1, 2]), &c1.dilation(0)),
        &["conv:", "strides and dilations must be at least 1"],
    );
    // dtypes and devices
    let ints = Tensor::zeros(&[1, 4], DType::I32);
    err_contains(
        ints.try_conv(&Tensor::zeros(&[1, 1, 2], DType::I32), &c1),
        &["conv:", "float", "i32", "[1, 4]"],
    );
    err_contains(
        f32s(&[1, 4]).try_conv(&Tensor::zeros(&[1, 1, 2], DType::F64), &c1),
        &["conv:", "dtype mismatch", "f32", "f64"],
    );
    // ranks
    err_contains(
        f32s(&[5]).try_conv(&f32s(&[1, 1, 3]), &c1),
        &["conv:", "[5]", "1-D convolution", "at least 2 axes"],
    );
    err_contains(
        f32s(&[1, 5]).try_conv(&f32s(&[1, 3]), &c1),
        &["conv:", "[1, 3]", "at least 3 axes"],
    );
    err_contains(
        f32s(&[1, 3, 5, 5]).try_conv(&f32s(&[2, 3, 3]), &Conv::new(2)),
        &["conv:", "2-D convolution", "at least 4 axes"],
    );
    // batch axes
    err_contains(
        f32s(&[2, 1, 5]).try_conv(&f32s(&[3, 1, 1, 3]), &c1),
        &["conv:", "batch axes [2] and [3] do not broadcast"],
    );
    // the transposes name themselves
    err_contains(
        f32s(&[1, 2, 3]).try_conv_transpose(&f32s(&[2, 1, 3]), &c1, &[6]),
        &[
            "conv_transpose:",
            "[1, 2, 3]",
            "[2, 1, 3]",
            "must end in [2, 4]",
            "input of [6]",
        ],
    );
    err_contains(
        f32s(&[1, 3, 4]).try_conv_transpose(&f32s(&[2, 1, 3]), &c1, &[6]),
        &[
            "conv_transpose:",
            "[1, 3, 4]",
            "cotangent must end in [2, 4]",
        ],
    );
    err_contains(
        f32s(&[1, 2, 4]).try_conv_transpose(&f32s(&[2, 1, 3]), &c1, &[6, 6]),
        &["conv_transpose:", "needs 1 input and 1 kernel sizes"],
    );
    err_contains(
        f32s(&[1, 2, 4]).try_conv_transpose(&f32s(&[1, 3]), &c1, &[6]),
        &["conv_transpose:", "at least 3 axes"],
    );
    err_contains(
        f32s(&[1, 6]).try_conv_weight_grad(&f32s(&[2, 4]), &c1, &[2, 2, 3]),
        &["conv_weight_grad:", "[1, 6]", "[2, 2, 3]", "1 channels"],
    );
    err_contains(
        f32s(&[1, 6]).try_conv_weight_grad(&f32s(&[2, 3]), &c1, &[2, 1, 3]),
        &[
            "conv_weight_grad:",
            "[1, 6]",
            "[2, 3]",
            "cotangent must end in [2, 4]",
        ],
    );
    err_contains(
        f32s(&[1, 6]).try_conv_weight_grad(&Tensor::zeros(&[2, 4], DType::F64), &c1, &[2, 1, 3]),
        &["conv_weight_grad:", "dtype mismatch"],
    );
    err_contains(c1.try_output_size(&[3, 3], &[1]), &["conv:", "1-D"]);
}

#[test]
#[should_panic(expected = "conv: shapes [1, 3, 5] and [2, 2, 3] do not fit")]
fn conv_panics_with_the_message() {
    f32s(&[1, 3, 5]).conv(&f32s(&[2, 2, 3]), &Conv::new(1));
}

#[test]
#[should_panic(expected = "Conv::strides: 2 values for a 1-D convolution")]
fn conv_strides_of_the_wrong_length_panic() {
    let _ = Conv::new(1).strides(&[1, 2]);
}

#[test]
#[should_panic(expected = "Conv::paddings: 1 values for a 2-D convolution")]
fn conv_paddings_of_the_wrong_length_panic() {
    let _ = Conv::new(2).paddings(&[(1, 1)]);
}

#[test]
#[should_panic(expected = "Conv::new: rank 4 is not supported")]
fn conv_of_rank_4_panics() {
    let _ = Conv::new(4);
}

#[test]
#[should_panic(expected = "Conv::new: rank 0 is not supported")]
fn conv_of_rank_0_panics() {
    let _ = Conv::new(0);
}

/// Where a case of the patch tests places its windows: strides, dilation, padding before.
struct Place {
    stride: [usize; 2],
    dilation: usize,
    before: [usize; 2],
}

/// The patches of a 2-D input `[b, c, h, w]` by a direct loop: `[b, c, oh, ow, kh * kw]`.
fn patches_2d(
    x: &[f64],
    xs: [usize; 4],
    k: [usize; 2],
    sp: &Conv,
    at: &Place,
) -> (Vec<f64>, Vec<usize>) {
    let [b, c, h, w] = xs;
    let out = sp.output_size(&[h, w], &k);
    let (oh, ow) = (out[0], out[1]);
    let mut p = Vec::with_capacity(b * c * oh * ow * k[0] * k[1]);
    for bc in 0..b * c {
        for y in 0..oh {
            for xo in 0..ow {
                for ky in 0..k[0] {
                    for kx in 0..k[1] {
                        let iy =
                            (y * at.stride[0] + ky * at.dilation) as isize - at.before[0] as isize;
                        let ix =
                            (xo * at.stride[1] + kx * at.dilation) as isize - at.before[1] as isize;
                        let inside = iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w;
                        p.push(if inside {
                            x[bc * h * w + iy as usize * w + ix as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
        }
    }
    (p, vec![b, c, oh, ow, k[0] * k[1]])
}

#[test]
fn unfold_and_fold_match_a_direct_loop_and_are_adjoint() {
    let place = |stride, dilation, before| Place {
        stride,
        dilation,
        before,
    };
    // input 7 x 6; SAME with strides (1, 2) and window (3, 2): outputs 7 x 3, padding
    // totals (2, 0), so one row before
    let specs = [
        (Conv::new(2).stride(2), [2, 2], place([2, 2], 1, [0, 0])),
        (Conv::new(2).padding(1), [3, 3], place([1, 1], 1, [1, 1])),
        (
            Conv::new(2).strides(&[1, 2]).same(),
            [3, 2],
            place([1, 2], 1, [1, 0]),
        ),
        (
            Conv::new(2).stride(2).dilation(2).padding(1),
            [2, 3],
            place([2, 2], 2, [1, 1]),
        ),
        (Conv::new(2).groups(3), [1, 1], place([1, 1], 1, [0, 0])),
    ];
    let xs = [2, 3, 7, 6];
    let x = eighths(xs.iter().product(), 3);
    for (sp, k, at) in specs {
        let (want, shape) = patches_2d(&x, xs, k, &sp, &at);
        for dtype in [DType::F64, DType::F32] {
            for lay in LAYS {
                let xt = laid(&x, &xs, lay, dtype);
                let what = format!("{sp:?}, window {k:?}, {dtype}, {lay:?}");
                let p = xt.unfold(&k, &sp);
                assert_close(&p, &shape, &want, 1e-12, &format!("unfold, {what}"));
                // the adjoint: <unfold(x), c> = <x, fold(c)>
                let c = laid(&eighths(want.len(), 4), &shape, lay, dtype);
                let back = c.fold(&xs[2..], &k, &sp);
                assert_eq!(back.shape(), &xs);
                let (l, r) = (dot(&p, &c), dot(&xt, &back));
                assert!(
                    (l - r).abs() <= 1e-9 * l.abs().max(1.0),
                    "adjoint, {what}: {l} vs {r}"
                );
            }
        }
    }
    // a max pool and an average pool
    let x = Tensor::from_vec((0..16).map(f64::from).collect(), &[1, 4, 4]);
    let sp = Conv::new(2).stride(2);
    assert_eq!(
        x.max_pool(&[2, 2], &sp).to_vec::<f64>(),
        vec![5.0, 7.0, 13.0, 15.0]
    );
    assert_eq!(
        x.avg_pool(&[2, 2], &sp).to_vec::<f64>(),
        vec![2.5, 4.5, 10.5, 12.5]
    );
    // a padded max pool never picks the padding; the average counts it as zeros
    let neg = -&x - 1.0;
    let sp = Conv::new(2).stride(2).padding(1);
    assert_eq!(
        neg.max_pool(&[2, 2], &sp).to_vec::<f64>(),
        vec![-1.0, -2.0, -4.0, -5.0, -6.0, -8.0, -13.0, -14.0, -16.0]
    );
    let filled = neg
        .unfold_with(&[2, 2], &sp, f64::NEG_INFINITY)
        .to_vec::<f64>();
    assert_eq!(
        filled[..4],
        [
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
            -1.0
        ]
    );
    assert_eq!(neg.avg_pool(&[2, 2], &sp).to_vec::<f64>()[0], -0.25);
}

#[test]
fn unfold_and_fold_errors_name_the_operation() {
    let x = Tensor::zeros(&[2, 3, 5], DType::F32);
    err_contains(
        x.try_unfold(&[2, 2], &Conv::new(1)),
        &["unfold", "2 window sizes"],
    );
    err_contains(
        x.try_unfold(&[7], &Conv::new(1)),
        &["unfold", "does not fit"],
    );
    err_contains(
        Tensor::zeros(&[5], DType::F32).try_unfold(&[2], &Conv::new(1)),
        &["unfold", "[batch.., C, *spatial]"],
    );
    err_contains(
        Tensor::zeros(&[2, 3, 5], DType::I32).try_unfold(&[2], &Conv::new(1)),
        &["unfold"],
    );
    let p = x.unfold(&[2], &Conv::new(1));
    err_contains(
        p.try_fold(&[6], &[2], &Conv::new(1)),
        &["fold", "[2, 3, 5, 2]"],
    );
    err_contains(p.try_fold(&[5, 5], &[2], &Conv::new(1)), &["fold"]);
}
