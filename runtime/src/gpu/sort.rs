//! The indices that sort each lane of an axis (`argsort`, `top_k_indices`): one workgroup
//! per lane sorts `(value, index)` pairs in workgroup memory with a bitonic network. The
//! pairs are ordered as the CPU orders them (NaN after every number, `-0.0` equal to
//! `0.0`, equal values by index), so the order is total and the result the CPU's stable
//! sort. Longer lanes are sorted by the same network in global memory, one dispatch per
//! step of it (`(log2 p)(log2 p + 1)/2` of them for lanes padded to `p` pairs).

use crate::element::DType;
use crate::error::Result;
use crate::gpu::{self, GpuStorage, elementwise, grid, storage_of, wgsl};
use crate::shape::numel;
use crate::tensor::Tensor;

/// The longest lane one workgroup sorts: 1024 pairs, 8 KiB of workgroup memory.
pub(crate) const MAX_LANE: usize = 1024;

/// Whether pair `a` goes before pair `b` (indices from `n`, word 1, up are padding, after
/// everything; word 5 is 1 for a descending order).
const BEFORE: &str = r#"
fn before(ka: f32, ia: u32, kb: f32, ib: u32) -> bool {
    let n = word(1u);
    let pa = ia >= n;
    let pb = ib >= n;
    if (pa || pb) { return pb && (!pa || ia < ib); }
    let na = is_nan(ka);
    let nb = is_nan(kb);
    let desc = word(5u) == 1u;
    if (na != nb) { return select(nb, na, desc); }
    if (!na && ka != kb) { return select((ka < kb), (ka > kb), desc); }
    return ia < ib;
}
"#;

/// The first `k` indices sorting each lane of axis `ax` of `x` (an f32 GPU tensor),
/// descending where `descending`, as an i32 tensor shaped like `x` with `k` along `ax`;
/// `None` where the padded lanes hold more pairs than 32-bit indices count (the caller
/// sorts those on the host).
pub(crate) fn sorted_indices(
    op: &'static str,
    x: &Tensor,
    ax: usize,
    k: usize,
    descending: bool,
) -> Result<Option<Tensor>> {
    let n = x.shape()[ax];
    let mut shape = x.shape().to_vec();
    shape[ax] = k;
    let x = elementwise::contiguous(op, x)?;
    let sx = storage_of(&x);
    let out = GpuStorage::alloc(op, sx.ordinal, numel(&shape), DType::I32)?
        .within(0, n.saturating_sub(1) as i32);
    let lanes = numel(&x.shape()[..ax]) * numel(&x.shape()[ax + 1..]);
    if lanes == 0 || k == 0 {
        return Ok(Some(gpu::tensor(out, &shape)));
    }
    let p = n.next_power_of_two().max(2);
    let inner = numel(&x.shape()[ax + 1..]);
    if n > MAX_LANE {
        if lanes
            .checked_mul(p)
            .is_none_or(|t| t > u32::MAX as usize / 2)
        {
            return Ok(None);
        }
        global(op, &x, &out, [lanes, n, inner, k, p], descending)?;
        return Ok(Some(gpu::tensor(out, &shape)));
    }
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
{before}
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
            before = BEFORE,
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

/// Lanes longer than one workgroup holds: the pairs in two scratch buffers, each lane
/// padded to `p`, one dispatch per step `(size, stride)` of the bitonic network (a thread
/// per compared pair), then each lane's first `k` indices written out.
fn global(
    op: &'static str,
    x: &Tensor,
    out: &GpuStorage,
    [lanes, n, inner, k, p]: [usize; 5],
    descending: bool,
) -> Result<()> {
    let sx = storage_of(x);
    let total = lanes * p;
    let keys = GpuStorage::alloc(op, sx.ordinal, total, DType::F32)?;
    let ids = GpuStorage::alloc(op, sx.ordinal, total, DType::I32)?;
    let words = |size: usize, stride: usize| -> [u32; 12] {
        let d = usize::from(descending);
        [
            lanes,
            n,
            inner,
            k,
            x.layout.offset,
            d,
            size,
            stride,
            p,
            0,
            0,
            0,
        ]
        .map(|v| v as u32)
    };
    let ctx = out.context();
    let kernel = |name: &str, body: &str| {
        ctx.pipeline(&format!("sort global {name}"), || {
            format!(
                r#"{params}{math}{before}{body}"#,
                params = wgsl::PARAMS,
                math = wgsl::MATH,
                before = BEFORE,
            )
        })
    };
    // words: 0 lanes, 1 n, 2 inner, 3 k, 4 offset, 5 descending, 6 size, 7 stride, 8 p
    let load = kernel(
        "load",
        r#"@group(0) @binding(1) var<storage, read_write> keys: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let p = word(8u);
    if (t >= word(0u) * p) { return; }
    let lane = t / p;
    let i = t % p;
    let inner = word(2u);
    var v = 0.0;
    if (i < word(1u)) { v = x[word(4u) + ((lane / inner) * word(1u) + i) * inner + lane % inner]; }
    keys[t] = v;
    ids[t] = i;
}"#,
    );
    let step = kernel(
        "step",
        r#"@group(0) @binding(1) var<storage, read_write> keys: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let half = word(8u) / 2u;
    if (t >= word(0u) * half) { return; }
    let size = word(6u);
    let stride = word(7u);
    let j = t % half;
    let base = (t / half) * word(8u);
    let a = base + 2u * stride * (j / stride) + j % stride;
    let b = a + stride;
    let up = ((a - base) & size) == 0u;
    let ka = keys[a];
    let kb = keys[b];
    let ia = ids[a];
    let ib = ids[b];
    if (select(before(ka, ia, kb, ib), before(kb, ib, ka, ia), up)) {
        keys[a] = kb;
        keys[b] = ka;
        ids[a] = ib;
        ids[b] = ia;
    }
}"#,
    );
    let store = kernel(
        "store",
        r#"@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let k = word(3u);
    if (t >= word(0u) * k) { return; }
    let lane = t / k;
    let j = t % k;
    let inner = word(2u);
    out[((lane / inner) * k + j) * inner + lane % inner] = i32(ids[lane * word(8u) + j]);
}"#,
    );
    let groups = |threads: usize| grid(threads.div_ceil(256) as u32);
    let (kb, ib) = (keys.buffer(op)?, ids.buffer(op)?);
    ctx.dispatch(
        &load,
        bytemuck::cast_slice(&words(p, 0)),
        &[kb, ib, sx.buffer(op)?],
        groups(total),
    );
    let mut size = 2;
    while size <= p {
        let mut stride = size / 2;
        while stride > 0 {
            ctx.dispatch(
                &step,
                bytemuck::cast_slice(&words(size, stride)),
                &[kb, ib],
                groups(total / 2),
            );
            stride /= 2;
        }
        size *= 2;
    }
    if lanes * k > 0 {
        ctx.dispatch(
            &store,
            bytemuck::cast_slice(&words(p, 0)),
            &[ib, out.buffer(op)?],
            groups(lanes * k),
        );
    }
    Ok(())
}
