//! Gathers and joins: `index_select` and `take_along_axis` (one gather kernel),
//! `index_add` and `scatter_add` (one scatter kernel, atomic adds), `concat` (strided copies into
//! slices of one output buffer) and `one_hot` (a comparison against the class range).

use crate::element::DType;
use crate::error::{Error, Result};
use crate::gpu::{self, GpuStorage, WG, elementwise, grid, storage_of, wgsl, wgsl_type};
use crate::shape::{Layout, numel};
use crate::tensor::Tensor;

/// Checks that every index lies in `0..size`: an out-of-range index is an error, never a
/// wrong read. Where the indices' storage has known bounds ([`GpuStorage::bounds`]:
/// uploaded indices, positions an op computed, copies and gathers of those) that lie in
/// range, nothing more is needed; otherwise the indices are read back to the host (one
/// wait for the GPU).
pub(crate) fn check_indices(
    op: &'static str,
    indices: &Tensor,
    axis: usize,
    size: usize,
    shape: &[usize],
) -> Result<()> {
    if indices.numel() == 0 {
        return Ok(());
    }
    // (bounds hold for the whole storage, so for every view of it)
    if let Some((lo, hi)) = storage_of(indices).bounds
        && lo >= 0
        && (hi as usize) < size
    {
        return Ok(());
    }
    let idx = gpu::download::<i32>(op, indices)?;
    if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= size) {
        return Err(Error::IndexOutOfRange {
            op,
            index: bad as i64,
            axis,
            size,
            shape: shape.to_vec(),
        });
    }
    Ok(())
}

/// `x` gathered along axis `ax` at `indices` (checked by the caller), into `out_shape`.
pub(crate) fn index_select(
    x: &Tensor,
    ax: usize,
    indices: &Tensor,
    out_shape: &[usize],
) -> Result<Tensor> {
    gather("index_select", x, ax, indices, out_shape, false, None)
}

/// `x` gathered along axis `ax` at `indices` shaped like `x` but along `ax` (checked by
/// the caller, or reading `fill` where out of range), `take_along_axis`: the same kernel
/// as [`index_select`], each output element reading its own index.
pub(crate) fn take_along(
    x: &Tensor,
    ax: usize,
    indices: &Tensor,
    fill: Option<f64>,
) -> Result<Tensor> {
    let op = if fill.is_some() {
        "take_along_axis_or"
    } else {
        "take_along_axis"
    };
    gather(op, x, ax, indices, indices.shape(), true, fill)
}

/// Output element `i` of `[outer, k, inner]` (`k` the indices' count, or their length
/// along `ax` where `per_element`) is `x[o, idx, r]`, `idx` the index of its `j` (or of
/// `i` itself where `per_element`), or `fill` where that index is outside `0..size` (none
/// is where there is no `fill`: the caller checked them). Indices gathered keep the known
/// bounds of those they are gathered from.
fn gather(
    op: &'static str,
    x: &Tensor,
    ax: usize,
    indices: &Tensor,
    out_shape: &[usize],
    per_element: bool,
    fill: Option<f64>,
) -> Result<Tensor> {
    let x = elementwise::row_major(op, x)?;
    let idx = elementwise::row_major(op, indices)?;
    let (sx, si) = (storage_of(&x), storage_of(&idx));
    let n = numel(out_shape);
    let mut out = GpuStorage::alloc(op, sx.ordinal, n, sx.dtype)?;
    if let (Some((lo, hi)), None) = (sx.bounds, fill) {
        out = out.within(lo, hi);
    }
    let fill = fill.unwrap_or(0.0);
    if n == 0 {
        return Ok(gpu::tensor(out, out_shape));
    }
    let inner = numel(&x.shape()[ax + 1..]);
    let count = if per_element {
        idx.shape()[ax]
    } else {
        idx.numel()
    };
    let words: [u32; 8] = [
        n as u32,
        count as u32,
        inner as u32,
        x.shape()[ax] as u32,
        x.layout.offset as u32,
        idx.layout.offset as u32,
        u32::from(per_element),
        (fill as f32).to_bits(),
    ];
    let ty = wgsl_type(sx.dtype);
    let src = format!(
        r#"{meta}
@group(0) @binding(1) var<storage, read_write> out: array<{ty}>;
@group(0) @binding(2) var<storage, read> x: array<{ty}>;
@group(0) @binding(3) var<storage, read> idx: array<i32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= word(0u)) {{ return; }}
    let inner = word(2u);
    let r = i % inner;
    let t = i / inner;
    let j = t % word(1u);
    let o = t / word(1u);
    let at = select(j, i, word(6u) == 1u);
    let ix = u32(idx[word(5u) + at]);
    if (ix >= word(3u)) {{
        out[i] = {ty}(bitcast<f32>(word(7u)));
    }} else {{
        out[i] = x[word(4u) + (o * word(3u) + ix) * inner + r];
    }}
}}
"#,
        meta = wgsl::PARAMS
    );
    let ctx = out.context();
    let pipeline = ctx.pipeline(&format!("gather {ty}"), || src);
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[out.buffer(op)?, sx.buffer(op)?, si.buffer(op)?],
        grid((n as u32).div_ceil(WG)),
    );
    Ok(gpu::tensor(out, out_shape))
}

/// `target` plus `source` added along axis `ax` at `indices` (both shaped like `target`
/// but along `ax`; checked by the caller, or an index out of range dropping its value),
/// `scatter_add`.
pub(crate) fn scatter_add(
    target: &Tensor,
    ax: usize,
    indices: &Tensor,
    source: &Tensor,
) -> Result<Tensor> {
    scatter("scatter_add", target, ax, indices, source, true)
}

/// `target` plus the slices of `source` (`target`'s shape with axis `ax` replaced by the
/// indices' count) added along `ax` at `indices` (checked by the caller), `index_add`.
pub(crate) fn index_add(
    target: &Tensor,
    ax: usize,
    indices: &Tensor,
    source: &Tensor,
) -> Result<Tensor> {
    scatter("index_add", target, ax, indices, source, false)
}

/// A copy of `target` (`[outer, size, inner]` about axis `ax`) into which every element of
/// `source` (`[outer, k, inner]`) is added at row `idx` of its outer block, `idx` the index
/// of its `j` (`per_element`: of the element itself); an index outside `0..size` drops
/// the value. One thread per source element, its sum made atomic by a compare-and-swap
/// loop on the output's bits (WGSL has no float atomics): the work is the source's size,
/// where a loop per output element over its lane's indices, or a product with their
/// one-hot matrix, costs the output's size times the indices'. Values meeting at one
/// element add in the order their threads reach it, so sums may differ in the last bits
/// from run to run (as scatter-adds on GPUs do elsewhere).
fn scatter(
    op: &'static str,
    target: &Tensor,
    ax: usize,
    indices: &Tensor,
    source: &Tensor,
    per_element: bool,
) -> Result<Tensor> {
    let idx = elementwise::row_major(op, indices)?;
    let src = elementwise::row_major(op, source)?;
    let (st, si, ss) = (storage_of(target), storage_of(&idx), storage_of(&src));
    let shape = target.shape();
    let out = GpuStorage::alloc(op, st.ordinal, numel(shape), st.dtype)?;
    let ctx = out.context();
    elementwise::run_fused(
        op,
        ctx,
        &elementwise::source_of(target),
        out.buffer(op)?,
        st.dtype,
        &Layout::contiguous(shape),
    )?;
    let n = src.numel();
    if n == 0 {
        return Ok(gpu::tensor(out, shape));
    }
    let words: [u32; 8] = [
        n as u32,
        src.shape()[ax..src.ndim() - (target.ndim() - ax - 1)]
            .iter()
            .product::<usize>() as u32,
        numel(&shape[ax + 1..]) as u32,
        shape[ax] as u32,
        idx.layout.offset as u32,
        src.layout.offset as u32,
        u32::from(per_element),
        0,
    ];
    let src_code = format!(
        r#"{meta}
@group(0) @binding(1) var<storage, read_write> out: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= word(0u)) {{ return; }}
    let k = word(1u);
    let inner = word(2u);
    let size = word(3u);
    let r = i % inner;
    let j = (i / inner) % k;
    let o = i / (inner * k);
    let ix = u32(idx[word(4u) + select(j, i, word(6u) == 1u)]);
    if (ix >= size) {{ return; }}
    let at = (o * size + ix) * inner + r;
    let v = src[word(5u) + i];
    var old = atomicLoad(&out[at]);
    loop {{
        let swapped = atomicCompareExchangeWeak(&out[at], old, bitcast<u32>(bitcast<f32>(old) + v));
        if (swapped.exchanged) {{ break; }}
        old = swapped.old_value;
    }}
}}
"#,
        meta = wgsl::PARAMS
    );
    let pipeline = ctx.pipeline("scatter f32", || src_code);
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[out.buffer(op)?, si.buffer(op)?, ss.buffer(op)?],
        grid((n as u32).div_ceil(WG)),
    );
    Ok(gpu::tensor(out, shape))
}

/// For `x` `[rows, inner..]` (f32) and `ids` `[rows]` (checked by the caller), per segment
/// of `0..n` and column: the first row whose id names the segment and that holds the
/// segment's largest value (smallest unless `largest`; a NaN before any number), `rows`
/// where no id names it; i32 `[n, inner..]`, as the CPU's `segment_argmax` /
/// `segment_argmin`. Three kernels: one sets every segment's best key to 0 and its
/// position to `rows`; one thread per element of `x` raises its segment's best key to its
/// own (an atomic max over the values' bits mapped to an order-preserving u32, NaN above
/// every number, -0 as 0 so that equal values tie); one thread per element holding its
/// segment's best key lowers the position to its row (an atomic min: the first row).
pub(crate) fn segment_arg(x: &Tensor, ids: &Tensor, n: usize, largest: bool) -> Result<Tensor> {
    const OP: &str = "segment_arg";
    let x = elementwise::row_major(OP, x)?;
    let idx = elementwise::row_major(OP, ids)?;
    let (sx, si) = (storage_of(&x), storage_of(&idx));
    let rows = x.shape()[0];
    let inner = numel(&x.shape()[1..]);
    let mut shape = vec![n];
    shape.extend_from_slice(&x.shape()[1..]);
    let out = GpuStorage::alloc(OP, sx.ordinal, n * inner, DType::I32)?.within(0, rows as i32);
    if n * inner == 0 {
        return Ok(gpu::tensor(out, &shape));
    }
    let best = GpuStorage::alloc(OP, sx.ordinal, n * inner, DType::I32)?;
    let words: [u32; 8] = [
        (n * inner) as u32,
        (rows * inner) as u32,
        inner as u32,
        n as u32,
        rows as u32,
        x.layout.offset as u32,
        idx.layout.offset as u32,
        u32::from(largest),
    ];
    let src = |pass: &str| {
        format!(
            r#"{meta}
@group(0) @binding(1) var<storage, read_write> pos: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read_write> best: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> idx: array<i32>;
// the value's bits as a u32 ordered as the values are (reversed unless largest), -0 as 0,
// every NaN above every number; 0 is below every key
fn key(v: f32) -> u32 {{
    var b = bitcast<u32>(v);
    if ((b & 0x7fffffffu) > 0x7f800000u) {{ return 0xffffffffu; }}
    if (b == 0x80000000u) {{ b = 0u; }}
    let k = select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
    return select(~k, k, word(7u) == 1u);
}}
fn at(i: u32) -> i32 {{
    let ix = u32(idx[word(6u) + i / word(2u)]);
    if (ix >= word(3u)) {{ return -1; }}
    return i32(ix * word(2u) + i % word(2u));
}}
// (every binding used by every pass, so that each pipeline's layout binds them all)
fn bound() -> u32 {{ return atomicLoad(&pos[0]) + atomicLoad(&best[0]) + bitcast<u32>(x[0]) + u32(idx[0]); }}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i == 0xffffffffu) {{ _ = bound(); }}
    {pass}
}}
"#,
            meta = wgsl::PARAMS
        )
    };
    let ctx = out.context();
    let buffers = [
        out.buffer(OP)?,
        best.buffer(OP)?,
        sx.buffer(OP)?,
        si.buffer(OP)?,
    ];
    // reset; raise the best keys; lower the positions
    let passes = [
        (
            "reset",
            n * inner,
            "if (i >= word(0u)) { return; }\n    atomicStore(&best[i], 0u);\n    atomicStore(&pos[i], word(4u));",
        ),
        (
            "raise",
            rows * inner,
            "if (i >= word(1u)) { return; }\n    let a = at(i);\n    if (a >= 0) { atomicMax(&best[a], key(x[word(5u) + i])); }",
        ),
        (
            "lower",
            rows * inner,
            "if (i >= word(1u)) { return; }\n    let a = at(i);\n    if (a >= 0 && key(x[word(5u) + i]) == atomicLoad(&best[a])) { atomicMin(&pos[a], i / word(2u)); }",
        ),
    ];
    for (name, threads, pass) in passes {
        if threads == 0 {
            continue;
        }
        let pipeline = ctx.pipeline(&format!("segment_arg {name}"), || src(pass));
        ctx.dispatch(
            &pipeline,
            bytemuck::cast_slice(&words),
            &buffers,
            grid((threads as u32).div_ceil(WG)),
        );
    }
    Ok(gpu::tensor(out, &shape))
}

/// `tensors` (checked by the caller: one dtype, one device, agreeing shapes) joined
/// along `ax` into `shape`.
pub(crate) fn concat(tensors: &[&Tensor], ax: usize, shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "concat";
    let first = storage_of(tensors[0]);
    let out = GpuStorage::alloc(OP, first.ordinal, numel(shape), first.dtype)?;
    let full = Layout::contiguous(shape);
    let mut start = 0;
    for t in tensors {
        let len = t.shape()[ax];
        let view = full.slice(ax, start, start + len, 1);
        elementwise::copy_into(OP, t, &out, &view)?;
        start += len;
    }
    Ok(gpu::tensor(out, shape))
}

/// One-hot rows of `indices` (checked by the caller) with `num_classes` columns, in `dtype`.
pub(crate) fn one_hot(indices: &Tensor, num_classes: usize, dtype: DType) -> Result<Tensor> {
    const OP: &str = "one_hot";
    let ordinal = storage_of(indices).ordinal;
    gpu::check_dtype(OP, dtype, indices.shape())?;
    let classes: Vec<i32> = (0..num_classes as i32).collect();
    let range = gpu::upload(OP, &classes, &[num_classes], ordinal)?;
    let column = indices.with_layout(indices.layout.unsqueeze(indices.ndim()));
    let shape = [indices.shape(), &[num_classes]].concat();
    let template = match dtype {
        DType::F32 => "f32($0 == $1)",
        DType::I32 => "i32($0 == $1)",
        _ => "u32($0 == $1)",
    };
    elementwise::lazy(
        OP,
        ordinal,
        template,
        &[
            elementwise::Input::Tensor(&column),
            elementwise::Input::Tensor(&range),
        ],
        None,
        dtype,
        &shape,
    )
}
