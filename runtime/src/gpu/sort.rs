//! The indices that sort each lane of an axis (`argsort`, `top_k_indices`): one workgroup
//! per lane sorts `(value, index)` pairs in workgroup memory with a bitonic network. The
//! pairs are ordered as the CPU orders them (NaN after every number, `-0.0` equal to
//! `0.0`, equal values by index), so the order is total and the result the CPU's stable
//! sort. Lanes longer than [`MAX_LANE`] are sorted on the host by the caller.

use crate::element::DType;
use crate::error::Result;
use crate::gpu::{self, GpuStorage, elementwise, grid, storage_of, wgsl};
use crate::shape::numel;
use crate::tensor::Tensor;

/// The longest lane one workgroup sorts: 1024 pairs, 8 KiB of workgroup memory.
pub(crate) const MAX_LANE: usize = 1024;

/// The first `k` indices sorting each lane of axis `ax` of `x` (an f32 GPU tensor),
/// descending where `descending`, as an i32 tensor shaped like `x` with `k` along `ax`;
/// `None` for lanes longer than [`MAX_LANE`].
pub(crate) fn sorted_indices(
    op: &'static str,
    x: &Tensor,
    ax: usize,
    k: usize,
    descending: bool,
) -> Result<Option<Tensor>> {
    let n = x.shape()[ax];
    if n > MAX_LANE {
        return Ok(None);
    }
    let mut shape = x.shape().to_vec();
    shape[ax] = k;
    let x = elementwise::contiguous(op, x)?;
    let sx = storage_of(&x);
    let out = GpuStorage::alloc(op, sx.ordinal, numel(&shape), DType::I32)?;
    let lanes = numel(&x.shape()[..ax]) * numel(&x.shape()[ax + 1..]);
    if lanes == 0 || k == 0 {
        return Ok(Some(gpu::tensor(out, &shape)));
    }
    let p = n.next_power_of_two().max(2);
    let inner = numel(&x.shape()[ax + 1..]);
    let words: [u32; 8] = [
        lanes as u32,
        n as u32,
        inner as u32,
        k as u32,
        x.layout.offset as u32,
        u32::from(descending),
        0,
        0,
    ];
    let ctx = out.context();
    let pipeline = ctx.pipeline(&format!("sort {p}"), || {
        format!(
            r#"{params}{math}
@group(0) @binding(1) var<storage, read_write> out: array<i32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
const P: u32 = {p}u;
var<workgroup> keys: array<f32, {p}>;
var<workgroup> ids: array<u32, {p}>;
// whether pair a goes before pair b (indices from n up are padding, after everything)
fn before(ka: f32, ia: u32, kb: f32, ib: u32) -> bool {{
    let n = word(1u);
    let pa = ia >= n;
    let pb = ib >= n;
    if (pa || pb) {{ return pb && (!pa || ia < ib); }}
    let na = is_nan(ka);
    let nb = is_nan(kb);
    let desc = word(5u) == 1u;
    if (na != nb) {{ return select(nb, na, desc); }}
    if (!na && ka != kb) {{ return select((ka < kb), (ka > kb), desc); }}
    return ia < ib;
}}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let g = wid.x + wid.y * nwg.x;
    // every invocation reaches every barrier: a workgroup past the last lane sorts zeros
    let live = g < word(0u);
    let n = word(1u);
    let inner = word(2u);
    let o = g / inner;
    let r = g % inner;
    for (var t = l; t < P; t += 256u) {{
        var v = 0.0;
        if (live && t < n) {{ v = x[word(4u) + (o * n + t) * inner + r]; }}
        keys[t] = v;
        ids[t] = t;
    }}
    workgroupBarrier();
    for (var size = 2u; size <= P; size = size * 2u) {{
        for (var stride = size / 2u; stride > 0u; stride = stride / 2u) {{
            for (var t = l; t < P / 2u; t += 256u) {{
                let a = 2u * stride * (t / stride) + t % stride;
                let b = a + stride;
                let up = (a & size) == 0u;
                let ka = keys[a];
                let kb = keys[b];
                let ia = ids[a];
                let ib = ids[b];
                if (select(before(ka, ia, kb, ib), before(kb, ib, ka, ia), up)) {{
                    keys[a] = kb;
                    keys[b] = ka;
                    ids[a] = ib;
                    ids[b] = ia;
                }}
            }}
            workgroupBarrier();
        }}
    }}
    if (live) {{
        let k = word(3u);
        for (var j = l; j < k; j += 256u) {{
            out[(o * k + j) * inner + r] = i32(ids[j]);
        }}
    }}
}}
"#,
            params = wgsl::PARAMS,
            math = wgsl::MATH,
        )
    });
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[out.buffer(op)?, sx.buffer(op)?],
        grid(lanes as u32),
    );
    Ok(Some(gpu::tensor(out, &shape)))
}
