//! Gathers and joins: `index_select` and `take_along_axis` (one gather kernel),
//! `scatter_add` (a sum per output element), `concat` (strided copies into
//! slices of one output buffer) and `one_hot` (a comparison against the class range).

use crate::element::DType;
use crate::error::{Error, Result};
use crate::gpu::{self, GpuStorage, WG, elementwise, grid, storage_of, wgsl, wgsl_type};
use crate::shape::{Layout, numel};
use crate::tensor::Tensor;

/// Checks that every index lies in `0..size`. The indices are read back to the host for
/// this (one wait for the GPU): an out-of-range index is an error, never a wrong read.
pub(crate) fn check_indices(
    op: &'static str,
    indices: &Tensor,
    axis: usize,
    size: usize,
    shape: &[usize],
) -> Result<()> {
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
    gather("index_select", x, ax, indices, out_shape, false, 0.0)
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
    gather(
        op,
        x,
        ax,
        indices,
        indices.shape(),
        true,
        fill.unwrap_or(0.0),
    )
}

/// Output element `i` of `[outer, k, inner]` (`k` the indices' count, or their length
/// along `ax` where `per_element`) is `x[o, idx, r]`, `idx` the index of its `j` (or of
/// `i` itself where `per_element`), or `fill` where that index is outside `0..size`.
fn gather(
    op: &'static str,
    x: &Tensor,
    ax: usize,
    indices: &Tensor,
    out_shape: &[usize],
    per_element: bool,
    fill: f64,
) -> Result<Tensor> {
    let x = elementwise::row_major(op, x)?;
    let idx = elementwise::row_major(op, indices)?;
    let (sx, si) = (storage_of(&x), storage_of(&idx));
    let n = numel(out_shape);
    let out = GpuStorage::alloc(op, sx.ordinal, n, sx.dtype)?;
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
/// but along `ax`; checked by the caller), `scatter_add`. WGSL has no float atomics: each
/// output element sums the source elements of its lane whose index names it (a loop over
/// the lane's `k` indices).
pub(crate) fn scatter_add(
    target: &Tensor,
    ax: usize,
    indices: &Tensor,
    source: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "scatter_add";
    let t = elementwise::row_major(OP, target)?;
    let idx = elementwise::row_major(OP, indices)?;
    let src = elementwise::row_major(OP, source)?;
    let (st, si, ss) = (storage_of(&t), storage_of(&idx), storage_of(&src));
    let n = t.numel();
    let out = GpuStorage::alloc(OP, st.ordinal, n, st.dtype)?;
    if n == 0 {
        return Ok(gpu::tensor(out, t.shape()));
    }
    let inner = numel(&t.shape()[ax + 1..]);
    let words: [u32; 8] = [
        n as u32,
        idx.shape()[ax] as u32,
        inner as u32,
        t.shape()[ax] as u32,
        t.layout.offset as u32,
        idx.layout.offset as u32,
        src.layout.offset as u32,
        0,
    ];
    let ty = wgsl_type(st.dtype);
    let src_code = format!(
        r#"{meta}
@group(0) @binding(1) var<storage, read_write> out: array<{ty}>;
@group(0) @binding(2) var<storage, read> t: array<{ty}>;
@group(0) @binding(3) var<storage, read> idx: array<i32>;
@group(0) @binding(4) var<storage, read> src: array<{ty}>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= word(0u)) {{ return; }}
    let k = word(1u);
    let inner = word(2u);
    let r = i % inner;
    let q = i32((i / inner) % word(3u));
    let o = i / (inner * word(3u));
    var acc = t[word(4u) + i];
    for (var j = 0u; j < k; j = j + 1u) {{
        let at = (o * k + j) * inner + r;
        if (idx[word(5u) + at] == q) {{
            acc = acc + src[word(6u) + at];
        }}
    }}
    out[i] = acc;
}}
"#,
        meta = wgsl::PARAMS
    );
    let ctx = out.context();
    let pipeline = ctx.pipeline(&format!("scatter_add {ty}"), || src_code);
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[
            out.buffer(OP)?,
            st.buffer(OP)?,
            si.buffer(OP)?,
            ss.buffer(OP)?,
        ],
        grid((n as u32).div_ceil(WG)),
    );
    Ok(gpu::tensor(out, t.shape()))
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
