//! Convolution's column transforms, with the window's positions computed in the shader
//! from its geometry (no index tensor, no wait for the GPU): `unfold` (im2col) lays out
//! the windows of spatial blocks as columns, `fold` (col2im), its adjoint, sums the
//! column entries back into the blocks, each element gathering the entries that read it
//! (no atomics).

use crate::error::{Error, Result};
use crate::gpu::{self, GpuStorage, WG, elementwise, grid, storage_of, wgsl};
use crate::shape::numel;
use crate::tensor::Tensor;

/// The window of a convolution over up to three spatial axes: one entry per axis in each
/// field (`before`: the zeros padded before the input).
pub(crate) struct Window<'a> {
    pub(crate) input: &'a [usize],
    pub(crate) out: &'a [usize],
    pub(crate) kernel: &'a [usize],
    pub(crate) stride: &'a [usize],
    pub(crate) dilation: &'a [usize],
    pub(crate) before: &'a [usize],
}

/// The kernels' parameters and their per-axis arithmetic. Words 0-5: elements to write,
/// the spatial block's size `S`, output positions `P`, kernel positions `K`, the source's
/// offset, the value read in the padding (f32 bits); from word 8, eight per axis (three axes, the missing leading ones of size 1):
/// input, out, kernel, stride, dilation, before.
const COMMON: &str = r#"
fn ax(a: u32, f: u32) -> u32 { return word(8u + 8u * a + f); }
// the row-major coordinates of i over the sizes in field f of the three axes, and back
fn coords(i: u32, f: u32) -> vec3<u32> {
    let n1 = ax(1u, f);
    let n2 = ax(2u, f);
    return vec3<u32>(i / (n1 * n2), (i / n2) % n1, i % n2);
}
fn flat(c: vec3<u32>, f: u32) -> u32 { return (c.x * ax(1u, f) + c.y) * ax(2u, f) + c.z; }
"#;

/// Unfold: thread `i` writes `cols[r, k * P + p]`, the input position that output
/// position `p` reads through kernel tap `k` (the fill value in the padding).
const UNFOLD: &str = r#"
@group(0) @binding(1) var<storage, read_write> cols: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
// the input position that output position p reads through tap k on axis a, -1 in padding
fn reads(a: u32, p: u32, k: u32) -> i32 {
    let at = i32(p * ax(a, 3u) + k * ax(a, 4u)) - i32(ax(a, 5u));
    return select(-1, at, at >= 0 && at < i32(ax(a, 0u)));
}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= word(0u)) { return; }
    let np = word(2u);
    let j = i % (word(3u) * np);
    let k = coords(j / np, 2u);
    let p = coords(j % np, 1u);
    let q = vec3<i32>(reads(0u, p.x, k.x), reads(1u, p.y, k.y), reads(2u, p.z, k.z));
    var v = bitcast<f32>(word(5u));
    if (min(q.x, min(q.y, q.z)) >= 0) {
        v = x[word(4u) + i / (word(3u) * np) * word(1u) + flat(vec3<u32>(q), 0u)];
    }
    cols[i] = v;
}
"#;

/// Fold: thread `i` sums, for input element `x[r, q]`, the entries `cols[r, k * P + p]`
/// of every tap `k` whose output position `p` reads `q`.
const FOLD: &str = r#"
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> cols: array<f32>;
// the output position whose tap k reads input position q on axis a, or -1 if none does
fn read_by(a: u32, q: u32, k: u32) -> i32 {
    let t = i32(q + ax(a, 5u)) - i32(k * ax(a, 4u));
    let s = i32(ax(a, 3u));
    return select(-1, t / s, t >= 0 && t % s == 0 && t / s < i32(ax(a, 1u)));
}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= word(0u)) { return; }
    let np = word(2u);
    let nk = word(3u);
    let q = coords(i % word(1u), 0u);
    let row = word(4u) + i / word(1u) * nk * np;
    var sum = 0.0;
    for (var j = 0u; j < nk; j++) {
        let k = coords(j, 2u);
        let p = vec3<i32>(read_by(0u, q.x, k.x), read_by(1u, q.y, k.y), read_by(2u, q.z, k.z));
        if (min(p.x, min(p.y, p.z)) >= 0) {
            sum += cols[row + j * np + flat(vec3<u32>(p), 1u)];
        }
    }
    x[i] = sum;
}
"#;

/// The columns `[.., K * P]` of the spatial blocks `x: [.., S]` (f32): entry `k * P + p`
/// of a row is the element that output position `p` reads through kernel tap `k`, or
/// `fill` where that is padding.
pub(crate) fn unfold(x: &Tensor, window: &Window, fill: f32) -> Result<Tensor> {
    let cols = numel(window.kernel) * numel(window.out);
    run("conv unfold", UNFOLD, x, window, cols, fill)
}

/// The adjoint of [`unfold`]: the spatial blocks `[.., S]` of the columns `cols:
/// [.., K * P]` (f32), each element the sum of the entries that read it.
pub(crate) fn fold(cols: &Tensor, window: &Window) -> Result<Tensor> {
    run("conv fold", FOLD, cols, window, numel(window.input), 0.0)
}

/// Runs the kernel `main` (named `op`) on the rows of `src` (`[.., n]`), writing `len`
/// elements per row (`fill` where a window reads padding).
fn run(
    op: &'static str,
    main: &str,
    src: &Tensor,
    window: &Window,
    len: usize,
    fill: f32,
) -> Result<Tensor> {
    let src = elementwise::row_major(op, src)?;
    let s = storage_of(&src);
    let mut shape = src.shape().to_vec();
    *shape.last_mut().expect("rows of columns or of blocks") = len;
    let n = numel(&shape);
    let reach = n.max(src.layout.offset + src.numel());
    if reach > u32::MAX as usize {
        return Err(Error::Gpu {
            op,
            message: format!("{reach} elements exceed the kernel's 32-bit indices"),
        });
    }
    let out = GpuStorage::alloc(op, s.ordinal, n, s.dtype)?;
    if n == 0 {
        return Ok(gpu::tensor(out, &shape));
    }
    let mut words = [0u32; 32];
    words[..6].copy_from_slice(&[
        n as u32,
        numel(window.input) as u32,
        numel(window.out) as u32,
        numel(window.kernel) as u32,
        src.layout.offset as u32,
        fill.to_bits(),
    ]);
    let (w, d) = (window, window.input.len());
    for a in 0..3 {
        let axis = match (a + d).checked_sub(3) {
            Some(i) => [
                w.input[i],
                w.out[i],
                w.kernel[i],
                w.stride[i],
                w.dilation[i],
                w.before[i],
            ],
            None => [1, 1, 1, 1, 1, 0], // a missing leading axis: size 1, no padding
        };
        for (f, v) in axis.into_iter().enumerate() {
            words[8 + 8 * a + f] = v as u32;
        }
    }
    let ctx = out.context();
    let pipeline = ctx.pipeline(op, || format!("{}{COMMON}{main}", wgsl::PARAMS));
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[out.buffer(op)?, s.buffer(op)?],
        grid((n as u32).div_ceil(WG)),
    );
    Ok(gpu::tensor(out, &shape))
}
