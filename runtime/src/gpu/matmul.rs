//! Matrix products: a tiled, register-blocked WGSL kernel, batched over broadcast batch
//! axes, reading both operands through their strides (transposes are not copied).
//!
//! Each workgroup computes a `BM x BN` tile of the output, each thread a `TM x TN` block
//! held in vec4 registers. The `K` axis is walked in steps of `BK`: the workgroup stages a
//! `BM x BK` slice of A and a `BK x BN` slice of B in workgroup memory (read along
//! whichever axis is contiguous in global memory, so loads coalesce), then every thread
//! reads its rows and columns as vec4s and does `TM * TN` fused multiply-adds per step,
//! emitted unrolled. The tile shape is chosen per size: 128x128 (8x8 per thread) from
//! 2048x2048 outputs, 64x64 (4x4) below, 32x32 where 64x64 tiles would make fewer than 256
//! workgroups in all; `FERRAX_GPU_MATMUL_TILE` overrides it for tuning.
//!
//! A product too small to fill the GPU (a dense layer's `[256, 784] @ [784, 512]` makes
//! 128 workgroups of 64 threads, about one per multiprocessor of an H100) is split along
//! K: each slice of K is its own set of workgroups writing its own partial product, and
//! the result is the pending elementwise sum of the partials, so the kernel that next
//! reads it (the bias add and activation after a layer, the activation's derivative in
//! the backward pass) adds them as it goes, with no kernel of its own.

use crate::error::{Error, Result};
use crate::gpu::{self, GpuStorage, MAX_GROUPS, storage_of, wgsl};
use crate::shape::{Layout, numel};
use crate::tensor::Tensor;

/// Most batch axes (after the matrix axes) the kernel walks.
const MAX_BATCH_DIMS: usize = 6;

/// A tile configuration: a `bm x bn` output tile per workgroup, `tm x tn` outputs per
/// thread (each a multiple of 4, read as vec4s), `bk` steps of K staged at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tile {
    bm: u32,
    bn: u32,
    bk: u32,
    tm: u32,
    tn: u32,
    /// A thread's rows (and columns) are `tm / 4` (`tn / 4`) groups of four spread over
    /// the tile, rather than one block: neighbouring threads then read neighbouring
    /// vec4s of workgroup memory (no bank conflicts) and write neighbouring output quads.
    spread: bool,
    /// Two staging buffers in workgroup memory: the next K step is stored into one while
    /// the other is read, so each step takes one barrier instead of two (vec4 path only).
    double: bool,
}

impl Tile {
    const fn new(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Tile {
        Tile {
            bm,
            bn,
            bk,
            tm,
            tn,
            spread: true,
            double: true,
        }
    }

    fn threads(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// Bytes of workgroup memory the kernel declares.
    fn workgroup_bytes(&self) -> u32 {
        (self.bm + self.bn) * self.bk * 4 * if self.double { 2 } else { 1 }
    }

    /// Whether the generator supports the shape and the adapter can run it.
    fn fits(&self, limits: &wgpu::Limits) -> bool {
        let threads = self.threads();
        matches!(self.tm, 4 | 8)
            && matches!(self.tn, 4 | 8)
            && self.bm.is_multiple_of(self.tm)
            && self.bn.is_multiple_of(self.tn)
            && self.bk.is_multiple_of(4)
            && self.bk > 0
            && (32..=limits.max_compute_invocations_per_workgroup.min(1024)).contains(&threads)
            && threads <= limits.max_compute_workgroup_size_x
            && self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size
    }

    /// Parses `bm,bn,bk,tm,tn[,flags]`, flags being any of `s` (spread) and `d` (double).
    fn parse(s: &str) -> Option<Tile> {
        let mut parts = s.split(',');
        let mut num = || parts.next()?.trim().parse::<u32>().ok();
        let (bm, bn, bk, tm, tn) = (num()?, num()?, num()?, num()?, num()?);
        let flags = s.split(',').nth(5).unwrap_or("");
        Some(Tile {
            spread: flags.contains('s'),
            double: flags.contains('d'),
            ..Tile::new(bm, bn, bk, tm, tn)
        })
    }
}

/// `bm,bn,bk,tm,tn,flags`, the form [`Tile::parse`] reads (and the kernel's key).
impl std::fmt::Display for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (s, d) = (
            if self.spread { "s" } else { "" },
            if self.double { "d" } else { "" },
        );
        write!(
            f,
            "{},{},{},{},{},{s}{d}",
            self.bm, self.bn, self.bk, self.tm, self.tn
        )
    }
}

/// Large products: 128x128 tiles, 8x8 outputs per thread, spread and double-buffered
/// (30 TFLOP/s at 8192 on an H200, the best of the shapes tried).
const LARGE: Tile = Tile::new(128, 128, 8, 8, 8);

/// Products with fewer than 2048 rows or columns: 64x64 tiles, 4x4 per thread, one
/// staging buffer (on an H200 at 1024, 12.9 TFLOP/s against 11.7 double-buffered and 7.5
/// with the large tiles: `benches/README.md`, GPU).
const SMALL: Tile = Tile {
    double: false,
    ..Tile::new(64, 64, 16, 4, 4)
};

/// Products too small to give [`SMALL`] tiles enough workgroups to fill a large GPU
/// (the MLP step's 256x512 outputs are 32 of them): 32x32 tiles, 64 threads (the MLP
/// step on an H200 took 1.38 ms against 1.48-1.57 with 64x64 tiles).
const TINY: Tile = Tile::new(32, 32, 8, 4, 4);

/// Threads a product should keep busy: about 512 for each multiprocessor of a large GPU
/// (132 on an H100). A product with fewer is split along K, up to [`MAX_SPLIT`] slices.
const FILL_THREADS: usize = 1 << 16;

/// Most slices of K by default (each adds a read of the product to whatever reads it).
const MAX_SPLIT: usize = 4;

/// Most slices `FERRAX_GPU_SPLIT_K` may ask for.
const MAX_SPLIT_FORCED: usize = 16;

/// Shortest slice of K worth a workgroup of its own.
const MIN_SLICE: usize = 64;

/// Into how many slices to cut K for `workgroups` workgroups of `threads` threads:
/// `FERRAX_GPU_SPLIT_K` (the most slices, 1 never splits; for tuning on a new GPU) or
/// [`MAX_SPLIT`] caps what filling [`FILL_THREADS`] takes, and no slice is shorter than
/// [`MIN_SLICE`].
fn split_k(workgroups: usize, threads: usize, k: usize) -> usize {
    static MOST: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let most = *MOST.get_or_init(|| {
        gpu::tuning(
            "FERRAX_GPU_SPLIT_K",
            &format!("a number from 1 to {MAX_SPLIT_FORCED}"),
            |v| {
                v.parse()
                    .ok()
                    .filter(|s| (1..=MAX_SPLIT_FORCED).contains(s))
            },
        )
        .unwrap_or(MAX_SPLIT)
    });
    FILL_THREADS
        .div_ceil(workgroups * threads)
        .min(most)
        .min(k / MIN_SLICE)
        .max(1)
}

/// The tile for `batch` products of `m x n` outputs: `FERRAX_GPU_MATMUL_TILE` (`bm,bn,bk,tm,tn[,flags]`,
/// for tuning on a new GPU; ignored with a warning when the adapter cannot run it), else
/// by size.
fn pick(m: usize, n: usize, batch: usize, limits: &wgpu::Limits) -> Tile {
    static FORCED: std::sync::OnceLock<Option<Tile>> = std::sync::OnceLock::new();
    let forced = FORCED.get_or_init(|| {
        gpu::tuning("FERRAX_GPU_MATMUL_TILE", "a tile this GPU runs", |v| {
            Tile::parse(v).filter(|t| t.fits(limits))
        })
    });
    match forced {
        Some(t) => *t,
        None if m >= 2048 && n >= 2048 => LARGE,
        None if batch * m.div_ceil(64) * n.div_ceil(64) >= 256 => SMALL,
        None => TINY,
    }
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
    matmul_tiled(None, None, a, la, b, lb, [m, n, k], out_shape)
}

/// [`matmul`] with the tile `forced`, or the one [`pick`] chooses, and K cut into
/// `split` slices, or as many as [`split_k`] chooses.
#[allow(clippy::too_many_arguments)]
fn matmul_tiled(
    forced: Option<Tile>,
    split: Option<usize>,
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
    let per = nbatch * m * n; // elements of the product
    if per == 0 {
        let out = GpuStorage::alloc(OP, sa.ordinal, 0, a.dtype())?;
        return Ok(gpu::tensor(out, out_shape));
    }
    if k == 0 {
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
    let ctx = gpu::context::context(sa.ordinal)?;
    let tile = forced.unwrap_or_else(|| pick(m, n, nbatch, &ctx.limits));
    let groups_x = (n as u32).div_ceil(tile.bn);
    let groups_y = (m as u32).div_ceil(tile.bm);
    if groups_x > MAX_GROUPS || groups_y > MAX_GROUPS {
        return Err(Error::Gpu {
            op: OP,
            message: format!("a {m} x {n} product needs more workgroups than one dispatch allows"),
        });
    }
    // K in `split` slices of `slice` (a multiple of the K step, so every slice starts on
    // a quad of either operand)
    let workgroups = groups_x as usize * groups_y as usize * nbatch;
    let split = split.unwrap_or_else(|| split_k(workgroups, tile.threads() as usize, k));
    let slice = k.div_ceil(split).next_multiple_of(tile.bk as usize);
    let split = k.div_ceil(slice);
    let out = GpuStorage::alloc(OP, sa.ordinal, split * per, a.dtype())?;
    let quad = |x: isize| x % 4 == 0;
    // how each operand is read in quads, if it can be: along its rows (row-major, `Some(true)`)
    // or along its columns (column-major, a transposed view as in a dense layer's backward
    // pass, `Some(false)`)
    let quads = |l: &Layout, rows: usize, cols: usize| {
        let (rs, cs) = (l.strides[nb], l.strides[nb + 1]);
        if cs == 1 && cols.is_multiple_of(4) && quad(rs) {
            Some(true)
        } else if rs == 1 && rows.is_multiple_of(4) && quad(cs) {
            Some(false)
        } else {
            None
        }
    };
    let (qa, qb) = (quads(la, m, k), quads(lb, k, n));
    let vec4 = qa.is_some()
        && qb.is_some()
        && n.is_multiple_of(4)
        && la.offset.is_multiple_of(4)
        && lb.offset.is_multiple_of(4)
        && dims
            .iter()
            .all(|&d| quad(la.strides[d]) && quad(lb.strides[d]));
    // the axis read along: the quads' on the vec4 path, else the contiguous one
    let (a_k, b_n) = match (qa, qb) {
        (Some(a_k), Some(b_n)) if vec4 => (a_k, b_n),
        _ => (la.strides[nb + 1] == 1, lb.strides[nb + 1] == 1),
    };
    let key = format!("matmul {tile} {a_k} {b_n} {vec4}");
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
    words[11] = nbatch as u32;
    for (i, &d) in dims.iter().enumerate() {
        words[12 + i] = batch_shape[d] as u32;
        words[18 + i] = la.strides[d] as i32 as u32;
        words[24 + i] = lb.strides[d] as i32 as u32;
    }
    words[30] = slice as u32;
    // workgroups along z: every batch position of every slice
    let mut base = 0usize;
    while base < split * nbatch {
        let count = (split * nbatch - base).min(MAX_GROUPS as usize);
        words[3] = base as u32;
        ctx.dispatch(
            &pipeline,
            bytemuck::cast_slice(&words),
            &buffers,
            [groups_x, groups_y, count as u32],
        );
        base += count;
    }
    if split == 1 {
        return Ok(gpu::tensor(out, out_shape));
    }
    // the product is the sum of the slices' partial products: pending, so that the next
    // elementwise kernel, reduction or softmax reading it adds them as it reads
    let partials = gpu::tensor(out, &[split * per])
        .with_layout(Layout::contiguous(&[&[split], out_shape].concat()));
    gpu::elementwise::lazy(
        OP,
        sa.ordinal,
        "$0",
        &[gpu::elementwise::Input::Summed(&partials)],
        None,
        a.dtype(),
        out_shape,
    )
}

/// The WGSL of one tile configuration. `a_k_contiguous` / `b_n_contiguous` pick the
/// staging order that makes global reads coalesce; `vec4` reads both operands four
/// floats at a time, along k for a row-major A and a column-major B, along m or n
/// otherwise (every row or column and batch start a multiple of 4 floats), and writes the
/// output as vec4s.
///
/// On the vec4 path each thread fetches its share of the next K step into registers
/// before computing the current one, so the global loads are in flight during the
/// multiply-adds; with `double`, it then stores them into the other staging buffer.
/// The inner product is emitted unrolled, with one vec4 accumulator per four outputs.
fn source(t: Tile, a_k_contiguous: bool, b_n_contiguous: bool, vec4: bool) -> String {
    use std::fmt::Write;
    let threads = t.threads();
    let (bm, bn, bk, tm, tn) = (t.bm, t.bn, t.bk, t.tm, t.tn);
    let (tm4, tn4, bk4, bm4, bn4) = (tm / 4, tn / 4, bk / 4, bm / 4, bn / 4);
    let double = t.double && vec4;
    let (a_quads, b_quads) = (bm * bk / 4, bk * bn / 4);
    let (na, nb) = (a_quads.div_ceil(threads), b_quads.div_ceil(threads));
    // `e`, this thread's q-th quad of a staged tile of `quads` quads, with a guard when
    // the threads do not divide the quads evenly
    let quad = |q: u32, quads: u32, body: &str| {
        let guard = !quads.is_multiple_of(threads);
        format!(
            "{{ let e = li + {}u; {}{body}{} }}\n",
            q * threads,
            if guard {
                format!("if (e < {quads}u) {{ ")
            } else {
                String::new()
            },
            if guard { " }" } else { "" },
        )
    };
    // global -> registers (vec4 path): the K step starting at `kn`, `count` quads of one
    // operand into registers `reg0..`, zero outside the product
    let load = |reg: &str, count: u32, quads: u32, split: &str, inside: &str, at: &str| {
        (0..count)
            .map(|q| {
                let body = format!(
                    "{split} {reg}{q} = vec4<f32>(0.0); if ({inside}) {{ {reg}{q} = {at}; }}"
                );
                quad(q, quads, &body)
            })
            .collect::<String>()
    };
    // A row-major: quads along k, stored transposed lane by lane; A column-major (a
    // transposed view): quads along m, stored whole (the staging is k-major)
    let fetch_a = if a_k_contiguous {
        load(
            "pa",
            na,
            a_quads,
            &format!("let r = e / {bk4}u; let kq = e % {bk4}u;"),
            "row0 + r < m && kn + 4u * kq < k",
            "a[u32(a_base + i32(row0 + r) * ars) / 4u + kn / 4u + kq]",
        )
    } else {
        load(
            "pa",
            na,
            a_quads,
            &format!("let kr = e / {bm4}u; let rq = e % {bm4}u;"),
            "kn + kr < k && row0 + 4u * rq < m",
            "a[u32(a_base + i32(kn + kr) * acs) / 4u + row0 / 4u + rq]",
        )
    };
    // B row-major: quads along n, stored whole; B column-major: quads along k, stored
    // lane by lane
    let fetch_b = if b_n_contiguous {
        load(
            "pb",
            nb,
            b_quads,
            &format!("let kr = e / {bn4}u; let cq = e % {bn4}u;"),
            "kn + kr < k && col0 + 4u * cq < n",
            "b[u32(b_base + i32(kn + kr) * brs) / 4u + col0 / 4u + cq]",
        )
    } else {
        load(
            "pb",
            nb,
            b_quads,
            &format!("let c = e / {bk4}u; let kq = e % {bk4}u;"),
            "col0 + c < n && kn + 4u * kq < k",
            "b[u32(b_base + i32(col0 + c) * bcs) / 4u + kn / 4u + kq]",
        )
    };
    let fetch = fetch_a + &fetch_b;
    // registers -> workgroup memory at buffer `buf` (an expression), k-major: a quad
    // along k goes in lane by lane, one along m or n whole
    let store = |buf: &str| {
        let lanes = |staged: &str, reg: &str, at: &str, stride: u32, base: &str| {
            let mut body = format!("{at} let o = {base};");
            for (c, lane) in ["x", "y", "z", "w"].iter().enumerate() {
                let off = c as u32 * stride;
                let _ = write!(
                    body,
                    " {staged}[o + (at + {off}u) / 4u][(at + {off}u) % 4u] = {reg}.{lane};"
                );
            }
            body
        };
        let mut s = String::new();
        for q in 0..na {
            let body = if a_k_contiguous {
                lanes(
                    "As",
                    &format!("pa{q}"),
                    &format!(
                        "let r = e / {bk4}u; let kq = e % {bk4}u; let at = 4u * kq * {bm}u + r;"
                    ),
                    bm,
                    &format!("({buf}) * {a_quads}u"),
                )
            } else {
                format!("As[({buf}) * {a_quads}u + e] = pa{q};")
            };
            s += &quad(q, a_quads, &body);
        }
        for q in 0..nb {
            let body = if b_n_contiguous {
                format!("Bs[({buf}) * {b_quads}u + e] = pb{q};")
            } else {
                lanes(
                    "Bs",
                    &format!("pb{q}"),
                    &format!(
                        "let c = e / {bk4}u; let kq = e % {bk4}u; let at = 4u * kq * {bn}u + c;"
                    ),
                    bn,
                    &format!("({buf}) * {b_quads}u"),
                )
            };
            s += &quad(q, b_quads, &body);
        }
        s
    };
    // global -> workgroup memory directly (scalar path), element by element
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
    let scalar_stage = format!(
        r#"        for (var e = li; e < {bm}u * {bk}u; e += {threads}u) {{
            {a_rk}
            var v = 0.0;
            if (row0 + r < m && k0 + kk < k) {{
                v = a[u32(a_base + i32(row0 + r) * ars + i32(k0 + kk) * acs)];
            }}
            let at = kk * {bm}u + r;
            As[at / 4u][at % 4u] = v;
        }}
        for (var e = li; e < {bk}u * {bn}u; e += {threads}u) {{
            {b_kc}
            var v = 0.0;
            if (k0 + kk < k && col0 + c < n) {{
                v = b[u32(b_base + i32(k0 + kk) * brs + i32(col0 + c) * bcs)];
            }}
            let at = kk * {bn}u + c;
            Bs[at / 4u][at % 4u] = v;
        }}
"#
    );
    // where a thread's g-th group of four rows (columns) starts, in quads
    let row_quad = |g: u32| {
        if t.spread {
            format!("{}u + ty", g * bm4 / tm4)
        } else {
            format!("ty * {tm4}u + {g}u")
        }
    };
    let col_quad = |j: u32| {
        if t.spread {
            format!("{}u + tx", j * bn4 / tn4)
        } else {
            format!("tx * {tn4}u + {j}u")
        }
    };
    // one K step of the inner product from buffer `buf`
    let compute = |buf: &str| {
        let mut s = format!(
            "        for (var kk = 0u; kk < {bk}u; kk++) {{\n            \
             let ab = ({buf}) * {a_quads}u + kk * {bm4}u;\n            \
             let bb = ({buf}) * {b_quads}u + kk * {bn4}u;\n"
        );
        for g in 0..tm4 {
            let _ = writeln!(s, "            let a{g} = As[ab + {}];", row_quad(g));
        }
        for j in 0..tn4 {
            let _ = writeln!(s, "            let b{j} = Bs[bb + {}];", col_quad(j));
        }
        for i in 0..tm {
            let lane = ["x", "y", "z", "w"][(i % 4) as usize];
            for j in 0..tn4 {
                let _ = writeln!(
                    s,
                    "            acc{i}_{j} = fma(vec4<f32>(a{}.{lane}), b{j}, acc{i}_{j});",
                    i / 4
                );
            }
        }
        s + "        }\n"
    };
    let mut acc = String::new();
    for i in 0..tm {
        for j in 0..tn4 {
            let _ = writeln!(acc, "    var acc{i}_{j} = vec4<f32>(0.0);");
        }
    }
    let main_loop = if vec4 {
        let mut regs = String::new();
        for q in 0..na {
            let _ = writeln!(regs, "    var pa{q} = vec4<f32>(0.0);");
        }
        for q in 0..nb {
            let _ = writeln!(regs, "    var pb{q} = vec4<f32>(0.0);");
        }
        if double {
            format!(
                r#"{regs}    {{
        let kn = 0u;
{fetch}    }}
{store0}    workgroupBarrier();
    var cur = 0u;
    for (var k0 = 0u; k0 < k; k0 += {bk}u) {{
        let kn = k0 + {bk}u;
        let more = kn < k;
        if (more) {{
{fetch}        }}
{compute}        if (more) {{
{store1}        }}
        workgroupBarrier();
        cur = cur ^ 1u;
    }}
"#,
                store0 = store("0u"),
                compute = compute("cur"),
                store1 = store("cur ^ 1u"),
            )
        } else {
            format!(
                r#"{regs}    {{
        let kn = 0u;
{fetch}    }}
    for (var k0 = 0u; k0 < k; k0 += {bk}u) {{
{store0}        workgroupBarrier();
        let kn = k0 + {bk}u;
        if (kn < k) {{
{fetch}        }}
{compute}        workgroupBarrier();
    }}
"#,
                store0 = store("0u"),
                compute = compute("0u"),
            )
        }
    } else {
        format!(
            r#"    for (var k0 = 0u; k0 < k; k0 += {bk}u) {{
{scalar_stage}        workgroupBarrier();
{compute}        workgroupBarrier();
    }}
"#,
            compute = compute("0u"),
        )
    };
    // the output: thread rows and column quads, written as vec4s when rows are whole quads
    let mut write_out = String::new();
    for i in 0..tm {
        let _ = writeln!(
            write_out,
            "    {{ let r = row0 + 4u * ({}) + {}u;\n      if (r < m) {{",
            row_quad(i / 4),
            i % 4
        );
        for j in 0..tn4 {
            let c = format!("col0 + 4u * ({})", col_quad(j));
            if vec4 {
                let _ = writeln!(
                    write_out,
                    "        {{ let c = {c}; if (c < n) {{ c_out[(c_base + r * n + c) / 4u] = acc{i}_{j}; }} }}"
                );
            } else {
                for (l, lane) in ["x", "y", "z", "w"].iter().enumerate() {
                    let _ = writeln!(
                        write_out,
                        "        {{ let c = {c} + {l}u; if (c < n) {{ c_out[c_base + r * n + c] = acc{i}_{j}.{lane}; }} }}"
                    );
                }
            }
        }
        write_out += "      }\n    }\n";
    }
    let elem = if vec4 { "vec4<f32>" } else { "f32" };
    let copies = if double { 2 } else { 1 };
    format!(
        r#"{params}
@group(0) @binding(1) var<storage, read_write> c_out: array<{elem}>;
@group(0) @binding(2) var<storage, read> a: array<{elem}>;
@group(0) @binding(3) var<storage, read> b: array<{elem}>;
var<workgroup> As: array<vec4<f32>, {as4}>;
var<workgroup> Bs: array<vec4<f32>, {bs4}>;

@compute @workgroup_size({threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let m = word(0u); let n = word(1u);
    let ars = bitcast<i32>(word(6u)); let acs = bitcast<i32>(word(7u));
    let brs = bitcast<i32>(word(8u)); let bcs = bitcast<i32>(word(9u));
    // this workgroup's slice of K and batch position: z = slice * batch + position
    let z = wid.z + word(3u);
    let k_lo = (z / word(11u)) * word(30u);
    let k = min(word(2u) - k_lo, word(30u));
    var rem = z % word(11u);
    var a_base = i32(word(4u)) + i32(k_lo) * acs;
    var b_base = i32(word(5u)) + i32(k_lo) * brs;
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
{acc}{main_loop}    let c_base = z * m * n;
{write_out}}}
"#,
        params = wgsl::PARAMS,
        as4 = a_quads * copies,
        bs4 = b_quads * copies,
        ntx = bn / tn,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile shape the sweep in `benches/README.md` tries.
    const SWEEP: [&str; 6] = [
        "128,128,8,8,8,sd",
        "128,128,16,8,8,sd",
        "128,64,8,8,4,sd",
        "64,64,16,4,4,sd",
        "64,64,8,8,8",
        "32,32,8,4,4,sd",
    ];

    #[test]
    fn tiles_parse_and_the_defaults_fit_webgpu_limits() {
        let limits = wgpu::Limits::default();
        assert!(LARGE.fits(&limits) && SMALL.fits(&limits) && TINY.fits(&limits));
        let t = Tile::parse("128,64,8,8,4,s").expect("parses");
        assert_eq!(
            (t.bm, t.bn, t.bk, t.tm, t.tn, t.spread, t.double),
            (128, 64, 8, 8, 4, true, false)
        );
        assert!(Tile::parse("128,64").is_none());
        assert!(!Tile::parse("128,128,8,2,8").expect("parses").fits(&limits));
        for s in SWEEP {
            let t = Tile::parse(s).expect(s);
            assert_eq!(Tile::parse(&t.to_string()), Some(t), "{s} -> {t}");
        }
        assert_eq!(SMALL.to_string(), "64,64,16,4,4,s");
    }

    #[test]
    fn tiles_are_chosen_by_size_and_workgroup_count() {
        if std::env::var("FERRAX_GPU_MATMUL_TILE").is_ok() {
            return; // a forced tile overrides the choice
        }
        let limits = wgpu::Limits::default();
        assert_eq!(pick(8192, 8192, 1, &limits), LARGE);
        assert_eq!(pick(2048, 2048, 1, &limits), LARGE);
        assert_eq!(pick(2048, 1024, 1, &limits), SMALL);
        assert_eq!(pick(1024, 1024, 1, &limits), SMALL);
        // the MLP step's products: 32 workgroups of 64x64, unless batched
        assert_eq!(pick(256, 512, 1, &limits), TINY);
        assert_eq!(pick(256, 512, 8, &limits), SMALL);
        assert_eq!(pick(1, 1, 1, &limits), TINY);
    }

    #[test]
    fn small_products_are_split_along_k() {
        if std::env::var("FERRAX_GPU_SPLIT_K").is_ok() {
            return; // a forced most changes the choice
        }
        // the MLP step's first layer: 128 workgroups of 64 threads
        assert_eq!(split_k(128, 64, 784), MAX_SPLIT);
        // enough threads already (1024x1024 in 64x64 tiles)
        assert_eq!(split_k(256, 256, 1024), 1);
        // two slices fill it
        assert_eq!(split_k(512, 64, 1024), 2);
        // no slice shorter than MIN_SLICE
        assert_eq!(split_k(1, 64, 3 * MIN_SLICE - 1), 2);
        assert_eq!(split_k(1, 64, MIN_SLICE + 1), 1);
        assert_eq!(split_k(1, 64, 3), 1);
    }

    /// Every tile shape, on the vec4 path (row-major operands) and the scalar one
    /// (transposed and odd-sized operands), against the CPU, on shapes that leave
    /// partial tiles on every side and a K that is not a multiple of the K step, one by
    /// one, empty, and batched with one operand broadcast over the batch; each with K
    /// whole and split into slices.
    #[test]
    fn every_tile_matches_the_cpu() {
        let dev = match crate::Device::gpu() {
            Ok(d) => d,
            Err(e) if std::env::var("FERRAX_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
                panic!("FERRAX_REQUIRE_GPU=1 but there is no GPU: {e}")
            }
            Err(e) => return eprintln!("skipping a GPU test: {e}"),
        };
        let limits = &crate::gpu::context::existing(0).limits;
        let value = |i: usize| ((i * 7919 % 61) as f32 - 30.0) / 8.0;
        let cpu = |shape: &[usize]| {
            Tensor::from_vec((0..numel(shape)).map(value).collect::<Vec<f32>>(), shape)
        };
        for s in SWEEP
            .iter()
            .copied()
            .chain(["128,128,8,8,8", "64,64,16,4,4,d"])
        {
            let t = Tile::parse(s).expect("parses");
            if !t.fits(limits) {
                eprintln!("tile {s}: not run, the adapter's limits do not allow it");
                continue;
            }
            // (batch, m, n, k, a transposed): a batch of 3 is a [3, m, k] tensor times a
            // [k, n] one broadcast over the batch (stride 0)
            for &(batch, m, n, k, transposed) in &[
                (1, 1, 1, 1, false),
                (1, 0, 4, 3, false),
                (1, 5, 9, 3, true),
                (1, 70, 36, 44, false),
                (1, 130, 132, 20, false),
                (1, 130, 131, 21, true),
                (1, 3, 260, 36, false),
                (3, 33, 36, 12, false),
                (3, 33, 35, 13, true),
            ] {
                let (lead, out_shape) = match batch {
                    1 => (vec![], vec![m, n]),
                    b => (vec![b], vec![b, m, n]),
                };
                let a = if transposed {
                    let at = cpu(&[lead.clone(), vec![k, m]].concat());
                    at.transpose(-1, -2)
                } else {
                    cpu(&[lead.clone(), vec![m, k]].concat())
                };
                let b = cpu(&[k, n]);
                let want = a.matmul(&b).to_vec::<f32>();
                let (ga, gb) = (a.to_device(&dev), b.to_device(&dev));
                let lb = gb
                    .layout
                    .broadcast_to("test", &[lead.clone(), vec![k, n]].concat())
                    .expect("broadcasts");
                // K whole, and in three slices (two where the K step makes the slices
                // longer, one where K is a single step)
                for split in [1, 3] {
                    let got = matmul_tiled(
                        Some(t),
                        Some(split),
                        &ga,
                        &ga.layout,
                        &gb,
                        &lb,
                        [m, n, k],
                        &out_shape,
                    )
                    .expect("runs")
                    .to_vec::<f32>();
                    assert_eq!(got.len(), want.len());
                    for (i, (x, y)) in want.iter().zip(&got).enumerate() {
                        assert!(
                            (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                            "tile {s}, {batch} x {m}x{n}x{k} (transposed {transposed}) in {split} slices, element {i}: cpu {x}, gpu {y}"
                        );
                    }
                }
            }
        }
    }
}
