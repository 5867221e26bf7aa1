//! Cumulative sums along an axis (`cumsum`, `cumsum_rev`) over the `[outer, n, inner]`
//! view of a row-major f32 tensor, and linear recurrences ([`linear_recurrence`]) the
//! same way.
//!
//! - Short axes (`n <= SHORT_ROW`, or `n <= SHORT_COLUMN` with `inner > 1`): one thread
//!   per `(outer, inner)` column runs along it (neighbouring threads read neighbouring
//!   columns, so the reads coalesce when `inner > 1`).
//! - Long rows (`inner == 1`): a blocked parallel scan. (1) each workgroup scans a block
//!   of [`BLOCK`] elements of a row (four per thread: a running sum of its own four, then
//!   a Hillis–Steele scan of the 256 threads' totals in workgroup memory) and writes the
//!   block's total; (2) the block totals of each row, `[rows, blocks]`, are scanned the same
//!   way (recursively: a row of a million elements has 977 blocks, one more level);
//!   (3) every element past a row's first block adds the total of the blocks before its
//!   own.
//! - Long axes with `inner > 1`: the axis is made innermost (a contiguous copy of the
//!   permuted view), scanned as rows, and permuted back.
//!
//! `reverse` (`cumsum_rev`) runs the same kernels reading each row from its end: logical
//! position `q` of a row is element `n - 1 - q`. Every per-thread loop is short (at most
//! [`SHORT_COLUMN`] steps): Mesa's lavapipe allows 65,535 loop iterations per invocation.

use crate::element::DType;
use crate::error::Result;
use crate::gpu::{self, GpuStorage, WG, elementwise, grid, storage_of, wgsl};
use crate::tensor::Tensor;

/// Rows (`inner == 1`) at most this long run one thread per row.
const SHORT_ROW: usize = 64;

/// Axes with `inner > 1` at most this long run one thread per column.
const SHORT_COLUMN: usize = 1024;

/// Elements one workgroup of the blocked scan covers: 256 threads of four each.
const BLOCK: usize = 1024;

/// The running sums along the middle axis of the `[outer, n, inner]` view of `x` (an f32
/// GPU tensor of any layout), from the end of the axis when `reverse`; a tensor of `x`'s
/// shape. Errors are named `op`.
pub(crate) fn cumsum(
    op: &'static str,
    x: &Tensor,
    [outer, n, inner]: [usize; 3],
    reverse: bool,
) -> Result<Tensor> {
    along_axis(
        op,
        &[x],
        [outer, n, inner],
        |x, [outer, n, inner]| columns(op, x[0], outer, n, inner, reverse),
        |x, rows, n| blocked(op, x[0], rows, n, reverse),
    )
}

/// A scan along the middle axis of the `[outer, n, inner]` view of `inputs` (f32 GPU
/// tensors of one shape, any layout), by `columns` (one thread per column, for short
/// axes) or `rows` (contiguous rows, for long ones; a long axis that is not innermost is
/// made so by a copy, and the result permuted back). A tensor of the inputs' shape.
fn along_axis(
    op: &'static str,
    inputs: &[&Tensor],
    [outer, n, inner]: [usize; 3],
    columns: impl Fn(&[&GpuStorage], [usize; 3]) -> Result<GpuStorage>,
    rows: impl Fn(&[&GpuStorage], usize, usize) -> Result<GpuStorage>,
) -> Result<Tensor> {
    let shape = inputs[0].shape().to_vec();
    gpu::check_dtype(op, inputs[0].dtype(), &shape)?;
    if outer * n * inner == 0 {
        let out = GpuStorage::alloc(op, storage_of(inputs[0]).ordinal, 0, DType::F32)?;
        return Ok(gpu::tensor(out, &shape));
    }
    let short = n <= SHORT_ROW || (inner > 1 && n <= SHORT_COLUMN);
    if short || inner == 1 {
        let xs = inputs
            .iter()
            .map(|x| elementwise::contiguous(op, x))
            .collect::<Result<Vec<_>>>()?;
        let stores: Vec<&GpuStorage> = xs.iter().map(storage_of).collect();
        let out = if short {
            columns(&stores, [outer, n, inner])?
        } else {
            rows(&stores, outer, n)?
        };
        return Ok(gpu::tensor(out, &shape));
    }
    // the axis innermost: [outer, inner, n]
    let ts = inputs
        .iter()
        .map(|x| {
            let t = x.try_reshape(&[outer, n, inner])?.try_permute(&[0, 2, 1])?;
            elementwise::contiguous(op, &t)
        })
        .collect::<Result<Vec<_>>>()?;
    let stores: Vec<&GpuStorage> = ts.iter().map(storage_of).collect();
    let scanned = rows(&stores, outer * inner, n)?;
    let back = gpu::tensor(scanned, &[outer, inner, n]).try_permute(&[0, 2, 1])?;
    elementwise::contiguous(op, &back)?.try_reshape(&shape)
}

/// One thread per column: `outer * inner` columns of `n` elements `inner` apart.
fn columns(
    op: &'static str,
    x: &GpuStorage,
    outer: usize,
    n: usize,
    inner: usize,
    reverse: bool,
) -> Result<GpuStorage> {
    let out = GpuStorage::alloc(op, x.ordinal, outer * n * inner, DType::F32)?;
    per_column(
        op,
        ("cumsum columns", "f32"),
        "@group(0) @binding(2) var<storage, read> x: array<f32>;\n",
        r#"    var acc = -0.0;
    for (var k = 0u; k < n; k++) {
        let i = base + select(k, n - 1u - k, rev) * inner;
        acc += x[i];
        out[i] = acc;
    }
"#,
        &out,
        &[x],
        [outer, n, inner],
        reverse as u32,
    )?;
    Ok(out)
}

/// Runs `body` in one thread per column of the `[outer, n, inner]` view: `base` is the
/// column's first element, its others `inner` apart up to `n`, `rev` bit 0 of `flags`
/// (the direction) and `flags` all of it. `out` (of the element type `label.1`) is bound
/// first, then `inputs` as `decls` declares them.
#[allow(clippy::too_many_arguments)]
fn per_column(
    op: &'static str,
    (label, out_type): (&'static str, &'static str),
    decls: &'static str,
    body: &'static str,
    out: &GpuStorage,
    inputs: &[&GpuStorage],
    [outer, n, inner]: [usize; 3],
    flags: u32,
) -> Result<()> {
    let cols = outer * inner;
    let words: [u32; 4] = [cols as u32, n as u32, inner as u32, flags];
    let ctx = out.context();
    let pipeline = ctx.pipeline(label, || {
        [
            wgsl::PARAMS,
            "@group(0) @binding(1) var<storage, read_write> out: array<",
            out_type,
            ">;\n",
            decls,
            r#"@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.x + gid.y * nwg.x * 256u;
    let n = word(1u); let inner = word(2u); let flags = word(3u); let rev = (flags & 1u) != 0u;
    if (c >= word(0u)) { return; }
    let base = (c / inner) * n * inner + c % inner;
"#,
            body,
            "}\n",
        ]
        .concat()
    });
    let mut buffers = vec![out.buffer(op)?];
    for i in inputs {
        buffers.push(i.buffer(op)?);
    }
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &buffers,
        grid((cols as u32).div_ceil(WG)),
    );
    Ok(())
}

/// The blocked scan of `rows` contiguous rows of `n` elements of `x`.
fn blocked(
    op: &'static str,
    x: &GpuStorage,
    rows: usize,
    n: usize,
    reverse: bool,
) -> Result<GpuStorage> {
    let total = rows * n;
    let out = GpuStorage::alloc(op, x.ordinal, total, DType::F32)?;
    let blocks = n.div_ceil(BLOCK);
    let sums = GpuStorage::alloc(op, x.ordinal, rows * blocks, DType::F32)?;
    let ctx = out.context();
    let words: [u32; 4] = [rows as u32, n as u32, blocks as u32, reverse as u32];
    // (1) every block scanned on its own, its total to `sums`
    let scan = ctx.pipeline("cumsum blocks", || {
        format!(
            r#"{params}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> sums: array<f32>;
var<workgroup> part: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let n = word(1u); let blocks = word(2u); let rev = word(3u) != 0u;
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(0u) * blocks) {{ return; }}
    let base = (g / blocks) * n;
    let q0 = (g % blocks) * {BLOCK}u + l * 4u;
    // this thread's four elements, a running sum
    var v: array<f32, 4>;
    var run = -0.0;
    for (var k = 0u; k < 4u; k++) {{
        let q = q0 + k;
        if (q < n) {{ run += x[base + select(q, n - 1u - q, rev)]; }}
        v[k] = run;
    }}
    // inclusive scan of the threads' totals (Hillis–Steele)
    part[l] = run;
    workgroupBarrier();
    for (var d = 1u; d < 256u; d = d << 1u) {{
        var t = part[l];
        if (l >= d) {{ t = part[l - d] + t; }}
        workgroupBarrier();
        part[l] = t;
        workgroupBarrier();
    }}
    var before = -0.0;
    if (l > 0u) {{ before = part[l - 1u]; }}
    for (var k = 0u; k < 4u; k++) {{
        let q = q0 + k;
        if (q < n) {{ out[base + select(q, n - 1u - q, rev)] = before + v[k]; }}
    }}
    if (l == 255u) {{ sums[g] = part[255]; }}
}}
"#,
            params = wgsl::PARAMS
        )
    });
    ctx.dispatch(
        &scan,
        bytemuck::cast_slice(&words),
        &[out.buffer(op)?, x.buffer(op)?, sums.buffer(op)?],
        grid((rows * blocks) as u32),
    );
    if blocks == 1 {
        return Ok(out);
    }
    // (2) the running totals of each row's blocks (in logical order: forwards)
    let offsets = if blocks <= SHORT_ROW {
        columns(op, &sums, rows, blocks, 1, false)?
    } else {
        blocked(op, &sums, rows, blocks, false)?
    };
    // (3) each element past its row's first block adds the blocks before its own
    let add = ctx.pipeline("cumsum offsets", || {
        format!(
            r#"{params}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> offsets: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = gid.x + gid.y * nwg.x * 256u;
    let n = word(1u); let blocks = word(2u); let rev = word(3u) != 0u;
    if (i >= word(0u) * n) {{ return; }}
    let p = i % n;
    let b = select(p, n - 1u - p, rev) / {BLOCK}u;
    if (b > 0u) {{ out[i] = offsets[(i / n) * blocks + b - 1u] + out[i]; }}
}}
"#,
            params = wgsl::PARAMS
        )
    });
    ctx.dispatch(
        &add,
        bytemuck::cast_slice(&words),
        &[out.buffer(op)?, offsets.buffer(op)?],
        grid((total as u32).div_ceil(WG)),
    );
    Ok(out)
}

/// The linear recurrence `h[k] = a[k] * h[k - 1] + x[k]`, `h[0] = x[0]`, along the middle
/// axis of the `[outer, n, inner]` view of `x` and `a` (f32 GPU tensors of one shape, any
/// layout), from the end of the axis when `reverse`. The same plan as [`cumsum`], with
/// affine maps `h -> A h + B` in place of sums: a block's elements compose their maps
/// (each thread its four, then the threads' in workgroup memory), the blocks' maps form a
/// recurrence of their own (solved the same way), and every element past a row's first
/// block applies its map to the state its block starts from.
pub(crate) fn linear_recurrence(
    op: &'static str,
    x: &Tensor,
    a: &Tensor,
    [outer, n, inner]: [usize; 3],
    reverse: bool,
) -> Result<Tensor> {
    along_axis(
        op,
        &[x, a],
        [outer, n, inner],
        |xa, dims| recurrence_columns(op, xa[0], xa[1], dims, reverse),
        |xa, rows, n| recurrence_blocked(op, xa[0], xa[1], rows, n, reverse),
    )
}

/// One thread per column of the recurrence: `outer * inner` columns of `n` elements
/// `inner` apart.
fn recurrence_columns(
    op: &'static str,
    x: &GpuStorage,
    a: &GpuStorage,
    [outer, n, inner]: [usize; 3],
    reverse: bool,
) -> Result<GpuStorage> {
    let out = GpuStorage::alloc(op, x.ordinal, outer * n * inner, DType::F32)?;
    per_column(
        op,
        ("recurrence columns", "f32"),
        "@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> a: array<f32>;\n",
        r#"    let first = base + select(0u, n - 1u, rev) * inner;
    var h = x[first];
    out[first] = h;
    for (var k = 1u; k < n; k++) {
        let i = base + select(k, n - 1u - k, rev) * inner;
        h = a[i] * h + x[i];
        out[i] = h;
    }
"#,
        &out,
        &[x, a],
        [outer, n, inner],
        reverse as u32,
    )?;
    Ok(out)
}

/// The blocked recurrence over `rows` contiguous rows of `n` elements.
fn recurrence_blocked(
    op: &'static str,
    x: &GpuStorage,
    a: &GpuStorage,
    rows: usize,
    n: usize,
    reverse: bool,
) -> Result<GpuStorage> {
    let total = rows * n;
    let blocks = n.div_ceil(BLOCK);
    // each element's map from its block's starting state, (A, B) interleaved
    let maps = GpuStorage::alloc(op, x.ordinal, 2 * total, DType::F32)?;
    let (block_a, block_b) = (
        GpuStorage::alloc(op, x.ordinal, rows * blocks, DType::F32)?,
        GpuStorage::alloc(op, x.ordinal, rows * blocks, DType::F32)?,
    );
    let ctx = maps.context();
    let words: [u32; 4] = [rows as u32, n as u32, blocks as u32, reverse as u32];
    // (1) every block's maps composed, each block's whole map to `block_a`, `block_b`
    let compose = ctx.pipeline("recurrence blocks", || {
        format!(
            r#"{params}
@group(0) @binding(1) var<storage, read_write> maps: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> a: array<f32>;
@group(0) @binding(4) var<storage, read_write> block_a: array<f32>;
@group(0) @binding(5) var<storage, read_write> block_b: array<f32>;
var<workgroup> pa: array<f32, 256>;
var<workgroup> pb: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let n = word(1u); let blocks = word(2u); let rev = word(3u) != 0u;
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(0u) * blocks) {{ return; }}
    let base = (g / blocks) * n;
    let q0 = (g % blocks) * {BLOCK}u + l * 4u;
    // this thread's four maps, composed in order (the row's first ignores its decay)
    var va: array<f32, 4>;
    var vb: array<f32, 4>;
    var ra = 1.0;
    var rb = 0.0;
    for (var k = 0u; k < 4u; k++) {{
        let q = q0 + k;
        if (q < n) {{
            let i = base + select(q, n - 1u - q, rev);
            let ak = select(a[i], 0.0, q == 0u);
            ra = ak * ra;
            rb = ak * rb + x[i];
        }}
        va[k] = ra;
        vb[k] = rb;
    }}
    // inclusive scan of the threads' maps (Hillis–Steele): later after earlier
    pa[l] = ra;
    pb[l] = rb;
    workgroupBarrier();
    for (var d = 1u; d < 256u; d = d << 1u) {{
        var ta = pa[l];
        var tb = pb[l];
        if (l >= d) {{
            tb = ta * pb[l - d] + tb;
            ta = ta * pa[l - d];
        }}
        workgroupBarrier();
        pa[l] = ta;
        pb[l] = tb;
        workgroupBarrier();
    }}
    var ea = 1.0;
    var eb = 0.0;
    if (l > 0u) {{ ea = pa[l - 1u]; eb = pb[l - 1u]; }}
    for (var k = 0u; k < 4u; k++) {{
        let q = q0 + k;
        if (q < n) {{
            let i = base + select(q, n - 1u - q, rev);
            maps[2u * i] = va[k] * ea;
            maps[2u * i + 1u] = va[k] * eb + vb[k];
        }}
    }}
    if (l == 255u) {{ block_a[g] = pa[255]; block_b[g] = pb[255]; }}
}}
"#,
            params = wgsl::PARAMS
        )
    });
    ctx.dispatch(
        &compose,
        bytemuck::cast_slice(&words),
        &[
            maps.buffer(op)?,
            x.buffer(op)?,
            a.buffer(op)?,
            block_a.buffer(op)?,
            block_b.buffer(op)?,
        ],
        grid((rows * blocks) as u32),
    );
    // (2) the state at the end of each block: the blocks' own recurrence (forwards, in
    // logical order; the first block's map is constant)
    let ends = if blocks <= SHORT_ROW {
        recurrence_columns(op, &block_b, &block_a, [rows, blocks, 1], false)?
    } else {
        recurrence_blocked(op, &block_b, &block_a, rows, blocks, false)?
    };
    // (3) every element's map applied to its block's starting state
    let out = GpuStorage::alloc(op, x.ordinal, total, DType::F32)?;
    let apply = ctx.pipeline("recurrence states", || {
        format!(
            r#"{params}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> maps: array<f32>;
@group(0) @binding(3) var<storage, read> ends: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = gid.x + gid.y * nwg.x * 256u;
    let n = word(1u); let blocks = word(2u); let rev = word(3u) != 0u;
    if (i >= word(0u) * n) {{ return; }}
    let p = i % n;
    let b = select(p, n - 1u - p, rev) / {BLOCK}u;
    var h = maps[2u * i + 1u];
    if (b > 0u) {{ h = maps[2u * i] * ends[(i / n) * blocks + b - 1u] + h; }}
    out[i] = h;
}}
"#,
            params = wgsl::PARAMS
        )
    });
    ctx.dispatch(
        &apply,
        bytemuck::cast_slice(&words),
        &[out.buffer(op)?, maps.buffer(op)?, ends.buffer(op)?],
        grid((total as u32).div_ceil(WG)),
    );
    Ok(out)
}

/// Lanes longer than this have their running extremum found on the host (one thread runs
/// along a lane, and Mesa's lavapipe allows 65,535 loop iterations per invocation).
const RUNNING_LANE: usize = 65_535;

/// The index (i32) of the running maximum (`largest`) or minimum along the middle axis of
/// the `[outer, n, inner]` view of `x` (an f32 GPU tensor of any layout), from the end
/// with `reverse`: the first of equal extrema, the first NaN once one is met (the CPU's
/// order). One thread per `(outer, inner)` column; `None` for lanes longer than
/// [`RUNNING_LANE`] (the caller reads them back).
pub(crate) fn running_index(
    op: &'static str,
    x: &Tensor,
    [outer, n, inner]: [usize; 3],
    reverse: bool,
    largest: bool,
) -> Result<Option<Tensor>> {
    let shape = x.shape().to_vec();
    gpu::check_dtype(op, x.dtype(), &shape)?;
    if n > RUNNING_LANE {
        return Ok(None);
    }
    let x = elementwise::contiguous(op, x)?;
    let xs = storage_of(&x);
    let out = GpuStorage::alloc(op, xs.ordinal, outer * n * inner, DType::I32)?
        .within(0, n.saturating_sub(1) as i32);
    let cols = outer * inner;
    if cols * n == 0 {
        return Ok(Some(gpu::tensor(out, &shape)));
    }
    per_column(
        op,
        ("running extremum", "i32"),
        "@group(0) @binding(2) var<storage, read> x: array<f32>;
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }\n",
        r#"    let largest = (flags & 2u) != 0u;
    var best = select(0u, n - 1u, rev);
    var b = x[base + best * inner];
    for (var s = 0u; s < n; s++) {
        let k = select(s, n - 1u - s, rev);
        let v = x[base + k * inner];
        // strictly better, or the first NaN
        let better = select((v < b), (v > b), largest) || (is_nan(v) && !is_nan(b));
        if (better) { best = k; b = v; }
        out[base + k * inner] = i32(best);
    }
"#,
        &out,
        &[xs],
        [outer, n, inner],
        reverse as u32 | (largest as u32) << 1,
    )?;
    Ok(Some(gpu::tensor(out, &shape)))
}
