//! Matrix products: a tiled, register-blocked WGSL kernel, batched over broadcast batch
//! axes, reading both operands through their strides (transposes are not copied).
//!
//! Each workgroup computes a `BM x BN` tile of the output with 256 threads, each thread a
//! `TM x TN` block held in registers. The `K` axis is walked in steps of `BK`: the
//! workgroup stages a `BM x BK` slice of A and a `BK x BN` slice of B in workgroup memory
//! (read along whichever axis is contiguous in global memory, so loads coalesce), then
//! every thread reads its rows and columns as vec4s and does `TM * TN` fused
//! multiply-adds per step. Loops have constant bounds and are fully unrolled by the
//! shader compiler. The tile shape is chosen per size: 128x128 (8x8 per thread) for
//! large products, 64x64 (4x4) otherwise.

use crate::error::{Error, Result};
use crate::gpu::{self, GpuStorage, MAX_GROUPS, storage_of, wgsl};
use crate::shape::{Layout, numel};
use crate::tensor::Tensor;

/// Most batch axes (after the matrix axes) the kernel walks.
const MAX_BATCH_DIMS: usize = 6;

/// A tile configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tile {
    bm: u32,
    bn: u32,
    bk: u32,
    tm: u32,
    tn: u32,
}

const LARGE: Tile = Tile {
    bm: 128,
    bn: 128,
    bk: 8,
    tm: 8,
    tn: 8,
};

const SMALL: Tile = Tile {
    bm: 64,
    bn: 64,
    bk: 16,
    tm: 4,
    tn: 4,
};

fn pick(m: usize, n: usize) -> Tile {
    if m >= 1024 && n >= 1024 { LARGE } else { SMALL }
}

/// `c[b] = a[b] @ b[b]` for every batch position: `la` and `lb` are the operands'
/// layouts broadcast to `[batch.., m, k]` and `[batch.., k, n]`; the result is a new
/// contiguous f32 tensor of `out_shape` (`batch * m * n` elements).
pub(crate) fn matmul(
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    [m, n, k]: [usize; 3],
    out_shape: &[usize],
) -> Result<Tensor> {
    const OP: &str = "matmul";
    let sa = storage_of(a);
    let sb = storage_of(b);
    let nb = la.shape.len() - 2;
    let batch_shape = &la.shape[..nb];
    let nbatch = numel(batch_shape);
    let out = GpuStorage::alloc(OP, sa.ordinal, nbatch * m * n, a.dtype())?;
    if out.len == 0 {
        return Ok(gpu::tensor(out, out_shape));
    }
    if k == 0 {
        drop(out);
        return gpu::elementwise::full(OP, sa.ordinal, out_shape, 0.0, a.dtype());
    }
    // batch axes of size 1 contribute nothing; merge nothing else (strides differ per operand)
    let dims: Vec<usize> = (0..nb).filter(|&d| batch_shape[d] != 1).collect();
    if dims.len() > MAX_BATCH_DIMS {
        return Err(Error::Gpu {
            op: OP,
            message: format!(
                "{} batch axes of size > 1; the GPU kernel takes at most {MAX_BATCH_DIMS}",
                dims.len()
            ),
        });
    }
    let tile = pick(m, n);
    let groups_x = (n as u32).div_ceil(tile.bn);
    let groups_y = (m as u32).div_ceil(tile.bm);
    if groups_x > MAX_GROUPS || groups_y > MAX_GROUPS {
        return Err(Error::Gpu {
            op: OP,
            message: format!("a {m} x {n} product needs more workgroups than one dispatch allows"),
        });
    }
    let (a_k, b_n) = (la.strides[nb + 1] == 1, lb.strides[nb + 1] == 1);
    let quad = |x: isize| x % 4 == 0;
    let vec4 = a_k
        && b_n
        && k.is_multiple_of(4)
        && n.is_multiple_of(4)
        && quad(la.strides[nb])
        && quad(lb.strides[nb])
        && la.offset.is_multiple_of(4)
        && lb.offset.is_multiple_of(4)
        && dims
            .iter()
            .all(|&d| quad(la.strides[d]) && quad(lb.strides[d]));
    let ctx = out.context();
    let key = format!("matmul {tile:?} {a_k} {b_n} {vec4}");
    // SAFETY: every global read is guarded by the bounds of the product (m, n, k) and
    // goes through the operands' layouts, which lie within their buffers; the output
    // writes are guarded the same way; the loops have constant or uniform bounds.
    let pipeline = unsafe { ctx.pipeline_trusted(&key, || source(tile, a_k, b_n, vec4)) };
    let buffers = [out.buffer(OP)?, sa.buffer(OP)?, sb.buffer(OP)?];
    let mut words = [0u32; 32];
    words[0] = m as u32;
    words[1] = n as u32;
    words[2] = k as u32;
    words[4] = la.offset as u32;
    words[5] = lb.offset as u32;
    words[6] = la.strides[nb] as i32 as u32;
    words[7] = la.strides[nb + 1] as i32 as u32;
    words[8] = lb.strides[nb] as i32 as u32;
    words[9] = lb.strides[nb + 1] as i32 as u32;
    words[10] = dims.len() as u32;
    for (i, &d) in dims.iter().enumerate() {
        words[12 + i] = batch_shape[d] as u32;
        words[18 + i] = la.strides[d] as i32 as u32;
        words[24 + i] = lb.strides[d] as i32 as u32;
    }
    let mut base = 0usize;
    while base < nbatch {
        let count = (nbatch - base).min(MAX_GROUPS as usize);
        words[3] = base as u32;
        ctx.dispatch(
            &pipeline,
            bytemuck::cast_slice(&words),
            &buffers,
            [groups_x, groups_y, count as u32],
        );
        base += count;
    }
    Ok(gpu::tensor(out, out_shape))
}

/// The WGSL of one tile configuration. `a_k_contiguous` / `b_n_contiguous` pick the
/// staging order that makes global reads coalesce; `vec4` reads both operands four
/// floats at a time (both row-major, every row and batch start a multiple of 4 floats).
fn source(t: Tile, a_k_contiguous: bool, b_n_contiguous: bool, vec4: bool) -> String {
    let threads = (t.bm / t.tm) * (t.bn / t.tn);
    debug_assert_eq!(threads, 256);
    let mut s = String::new();
    s.push_str(wgsl::PARAMS);
    let (bm, bn, bk, tm, tn) = (t.bm, t.bn, t.bk, t.tm, t.tn);
    // staging: element e of the A tile is (r, kk); which index runs fastest follows memory
    let a_rk = if a_k_contiguous {
        format!("let r = e / {bk}u; let kk = e % {bk}u;")
    } else {
        format!("let kk = e / {bm}u; let r = e % {bm}u;")
    };
    let b_kc = if b_n_contiguous {
        format!("let kk = e / {bn}u; let c = e % {bn}u;")
    } else {
        format!("let c = e / {bk}u; let kk = e % {bk}u;")
    };
    let (tm4, tn4) = (tm / 4, tn / 4);
    // vec4: each thread stages exactly one vec4 of A (four consecutive k of a row) and
    // one of B (four consecutive columns of a row) per step, and fetches the next step's
    // pair from global memory before computing the current one (register double
    // buffering), so the loads are in flight during the multiply-adds
    debug_assert_eq!(bm * bk / 4, 256);
    debug_assert_eq!(bk * bn / 4, 256);
    let fetch = r#"pa = vec4<f32>(0.0);
            pb = vec4<f32>(0.0);
            if (row0 + ar < m && kn + 4u * aq < k) {
                pa = a[u32(a_base + i32(row0 + ar) * ars) / 4u + (kn / 4u) + aq];
            }
            if (kn + bkk < k && col0 + 4u * bq < n) {
                pb = b[u32(b_base + i32(kn + bkk) * brs) / 4u + (col0 / 4u) + bq];
            }"#;
    let prologue = if vec4 {
        format!(
            r#"    let ar = li / {bk4}u; let aq = li % {bk4}u;
    let bkk = li / {bn4}u; let bq = li % {bn4}u;
    var pa = vec4<f32>(0.0);
    var pb = vec4<f32>(0.0);
    {{
        let kn = 0u;
        {fetch}
    }}
"#,
            bk4 = bk / 4,
            bn4 = bn / 4,
        )
    } else {
        String::new()
    };
    let prefetch = if vec4 {
        format!(
            r#"        let kn = k0 + {bk}u;
        if (kn < k) {{
            {fetch}
        }}
"#
        )
    } else {
        String::new()
    };
    let staging = if vec4 {
        format!(
            r#"        {{
            let at = 4u * aq * {bm}u + ar;
            As[at / 4u][at % 4u] = pa.x;
            As[(at + {bm}u) / 4u][(at + {bm}u) % 4u] = pa.y;
            As[(at + {bm2}u) / 4u][(at + {bm2}u) % 4u] = pa.z;
            As[(at + {bm3}u) / 4u][(at + {bm3}u) % 4u] = pa.w;
            Bs[bkk * {bn4}u + bq] = pb;
        }}"#,
            bn4 = bn / 4,
            bm2 = 2 * bm,
            bm3 = 3 * bm,
        )
    } else {
        format!(
            r#"        for (var e = li; e < {bm}u * {bk}u; e += 256u) {{
            {a_rk}
            var v = 0.0;
            if (row0 + r < m && k0 + kk < k) {{
                v = a[u32(a_base + i32(row0 + r) * ars + i32(k0 + kk) * acs)];
            }}
            let at = kk * {bm}u + r;
            As[at / 4u][at % 4u] = v;
        }}
        for (var e = li; e < {bk}u * {bn}u; e += 256u) {{
            {b_kc}
            var v = 0.0;
            if (k0 + kk < k && col0 + c < n) {{
                v = b[u32(b_base + i32(k0 + kk) * brs + i32(col0 + c) * bcs)];
            }}
            let at = kk * {bn}u + c;
            Bs[at / 4u][at % 4u] = v;
        }}"#
        )
    };
    let elem = if vec4 { "vec4<f32>" } else { "f32" };
    s.push_str(&format!(
        r#"
@group(0) @binding(1) var<storage, read_write> c_out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<{elem}>;
@group(0) @binding(3) var<storage, read> b: array<{elem}>;
var<workgroup> As: array<vec4<f32>, {as4}>;
var<workgroup> Bs: array<vec4<f32>, {bs4}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let m = word(0u); let n = word(1u); let k = word(2u);
    let ars = bitcast<i32>(word(6u)); let acs = bitcast<i32>(word(7u));
    let brs = bitcast<i32>(word(8u)); let bcs = bitcast<i32>(word(9u));
    // batch offsets
    var rem = wid.z + word(3u);
    var a_base = i32(word(4u));
    var b_base = i32(word(5u));
    for (var d = i32(word(10u)) - 1; d >= 0; d--) {{
        let size = word(12u + u32(d));
        let idx = i32(rem % size);
        rem = rem / size;
        a_base += idx * bitcast<i32>(word(18u + u32(d)));
        b_base += idx * bitcast<i32>(word(24u + u32(d)));
    }}
    let row0 = wid.y * {bm}u;
    let col0 = wid.x * {bn}u;
    let tx = li % {ntx}u;
    let ty = li / {ntx}u;
    var acc: array<f32, {tmn}>;
    for (var i = 0u; i < {tmn}u; i++) {{ acc[i] = 0.0; }}
{prologue}    for (var k0 = 0u; k0 < k; k0 += {bk}u) {{
{staging}
        workgroupBarrier();
{prefetch}        for (var kk = 0u; kk < {bk}u; kk++) {{
            var ar: array<vec4<f32>, {tm4}>;
            var br: array<vec4<f32>, {tn4}>;
            for (var i = 0u; i < {tm4}u; i++) {{ ar[i] = As[(kk * {bm}u + ty * {tm}u) / 4u + i]; }}
            for (var j = 0u; j < {tn4}u; j++) {{ br[j] = Bs[(kk * {bn}u + tx * {tn}u) / 4u + j]; }}
            for (var i = 0u; i < {tm}u; i++) {{
                let av = ar[i / 4u][i % 4u];
                for (var j = 0u; j < {tn4}u; j++) {{
                    let o = i * {tn}u + j * 4u;
                    let bv = br[j];
                    acc[o] = fma(av, bv.x, acc[o]);
                    acc[o + 1u] = fma(av, bv.y, acc[o + 1u]);
                    acc[o + 2u] = fma(av, bv.z, acc[o + 2u]);
                    acc[o + 3u] = fma(av, bv.w, acc[o + 3u]);
                }}
            }}
        }}
        workgroupBarrier();
    }}
    let c_base = (wid.z + word(3u)) * m * n;
    for (var i = 0u; i < {tm}u; i++) {{
        let r = row0 + ty * {tm}u + i;
        if (r >= m) {{ break; }}
        for (var j = 0u; j < {tn}u; j++) {{
            let c = col0 + tx * {tn}u + j;
            if (c < n) {{ c_out[c_base + r * n + c] = acc[i * {tn}u + j]; }}
        }}
    }}
}}
"#,
        as4 = bm * bk / 4,
        bs4 = bk * bn / 4,
        ntx = bn / tn,
        tmn = tm * tn,
    ));
    s
}
