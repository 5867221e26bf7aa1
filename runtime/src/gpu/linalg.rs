//! Linear algebra on the GPU: `solve` (LU with partial pivoting), `solve_triangular` and
//! `cholesky`, over the last two axes of f32 tensors.
//!
//! Every kernel gives each matrix of the batch one workgroup of [`THREADS`] threads, which
//! walks the matrix's columns (or rows) in order and spreads the work of each step over its
//! threads, with a barrier between steps (one step's results are the next one's inputs).
//! Batches beyond one dispatch dimension go over two ([`grid`]); the kernels number their
//! matrices `workgroup_id.x + workgroup_id.y * num_workgroups.x`.
//!
//! - [`solve`]: Gaussian elimination with partial pivoting (LAPACK's `getrf` + `getrs`) on
//!   a copy of the matrix in a scratch buffer, the right-hand sides carried along (their
//!   rows swapped and eliminated with the matrix's: the forward substitution with the unit
//!   lower factor, pivots applied), then the back substitution with the upper factor;
//! - [`solve_triangular`]: the forward or back substitution alone, reading only the
//!   matrix's lower or upper triangle;
//! - [`cholesky`]: the right-looking Cholesky factorization of the symmetrized matrix.
//!
//! Nothing is checked on the device: a singular matrix gives non-finite values, a matrix
//! that is not positive definite a factor of NaNs (as JAX does; the CPU path reports both
//! as errors).

use crate::element::DType;
use crate::error::{Error, Result};
use crate::gpu::context::Context;
use crate::gpu::{self, GpuStorage, elementwise, grid, storage_of, wgsl};
use crate::ops::linalg::Systems;
use crate::shape::numel;
use crate::tensor::Tensor;

/// Threads per workgroup of every kernel here: one workgroup per matrix. A power of two
/// (the pivot search halves it), within WebGPU's guaranteed 256 invocations per workgroup.
const THREADS: u32 = 128;

const _: () = assert!(THREADS.is_power_of_two());

/// WGSL of every kernel here: `sync`, a barrier over both workgroup and storage memory
/// (a step's writes to the matrix and the right-hand sides, in storage buffers, become
/// visible to the whole workgroup).
const SYNC: &str = r#"
fn sync() {
    storageBarrier();
    workgroupBarrier();
}
"#;

/// WGSL of the solves: `substitute`, the forward or back substitution with a triangular
/// matrix held in the binding `mat`, solving into the binding `out`.
const SUBSTITUTE: &str = r#"

// Solves t x = y in place for the n x k block of `out` at `xb` (y on entry, x on return):
// t is the lower (`lower`) or upper triangle of the row-major n x n matrix at `tb` in
// `mat`, diagonal included; its other triangle is never read. Column by column, as
// LAPACK's trsm: row j of x is final once divided by t[j][j] (going down for a lower t,
// up for an upper one); its multiples are then subtracted from the rows still to solve,
// those elements spread over the threads.
fn substitute(l: u32, tb: u32, xb: u32, n: u32, k: u32, lower: bool) {
    for (var s = 0u; s < n; s++) {
        let j = select(n - 1u - s, s, lower);
        let d = mat[tb + j * n + j];
        for (var c = l; c < k; c += THREADSu) {
            out[xb + j * k + c] = out[xb + j * k + c] / d;
        }
        sync();
        // the rows still to solve: below j going down, above it going up
        var first = 0u;
        var rows = j;
        if (lower) {
            first = j + 1u;
            rows = n - j - 1u;
        }
        for (var e = l; e < rows * k; e += THREADSu) {
            let i = first + e / k;
            let c = e % k;
            out[xb + i * k + c] -= mat[tb + i * n + j] * out[xb + j * k + c];
        }
        sync();
    }
}
"#;

/// The LU solve. Parameters: `n`, `k`, the number of matrices, then the offset of `a`'s
/// first matrix and the distance between its matrices, the same for `b`.
const LU: &str = r#"
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // x, [count, n, k]
@group(0) @binding(2) var<storage, read_write> mat: array<f32>; // LU, [count, n, n]
@group(0) @binding(3) var<storage, read> a: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;

// each thread's best pivot candidate so far: its magnitude and row
var<workgroup> best_v: array<f32, THREADS>;
var<workgroup> best_i: array<u32, THREADS>;

// Whether the candidate (v, i) beats (bv, bi): a larger magnitude, or the same one in an
// earlier row (LAPACK takes the first largest). A NaN never wins.
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return v > bv || (v == bv && i < bi);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(2u)) { return; }
    let n = word(0u);
    let k = word(1u);
    let mb = g * n * n;
    let xb = g * n * k;
    let ab = word(3u) + g * word(4u);
    let bb = word(5u) + g * word(6u);
    // the matrix into the scratch buffer, the right-hand sides into the result
    for (var e = l; e < n * n; e += THREADSu) { mat[mb + e] = a[ab + e]; }
    for (var e = l; e < n * k; e += THREADSu) { out[xb + e] = b[bb + e]; }
    sync();
    for (var j = 0u; j < n; j++) {
        // 1. the pivot: the row from j down with the largest |mat[i][j]|, each thread's
        //    best of its rows, then a tree in workgroup memory over the threads that
        //    had rows (the first `span`, rounded up to a power of two)
        var bv = -1.0;
        var bi = n;
        for (var i = j + l; i < n; i += THREADSu) {
            let v = abs(mat[mb + i * n + j]);
            if (better(v, i, bv, bi)) { bv = v; bi = i; }
        }
        best_v[l] = bv;
        best_i[l] = bi;
        workgroupBarrier();
        let span = min(n - j, THREADSu);
        for (var h = (1u << (32u - countLeadingZeros(span - 1u))) / 2u; h > 0u; h = h >> 1u) {
            if (l < h && better(best_v[l + h], best_i[l + h], best_v[l], best_i[l])) {
                best_v[l] = best_v[l + h];
                best_i[l] = best_i[l + h];
            }
            workgroupBarrier();
        }
        let found = best_i[0];
        let p = select(found, j, found >= n); // a column of NaNs: no swap
        // 2. rows j and p swap places, in the matrix (the columns not yet eliminated:
        //    those left of j hold multipliers already used) and in the right-hand sides
        if (p != j) {
            for (var c = j + l; c < n; c += THREADSu) {
                let t = mat[mb + j * n + c];
                mat[mb + j * n + c] = mat[mb + p * n + c];
                mat[mb + p * n + c] = t;
            }
            for (var c = l; c < k; c += THREADSu) {
                let t = out[xb + j * k + c];
                out[xb + j * k + c] = out[xb + p * k + c];
                out[xb + p * k + c] = t;
            }
        }
        sync();
        // 3. the multipliers: column j below the pivot becomes the lower factor's (a zero
        //    pivot, a singular matrix, makes them and so the solution non-finite)
        let d = mat[mb + j * n + j];
        for (var i = j + 1u + l; i < n; i += THREADSu) {
            mat[mb + i * n + j] = mat[mb + i * n + j] / d;
        }
        sync();
        // 4. the rows below j lose their multiple of row j: in the matrix's columns right
        //    of j (the trailing update) and in the right-hand sides (the forward
        //    substitution, carried along), one element per thread at a time
        let rows = n - j - 1u;
        let w = rows + k;
        for (var e = l; e < rows * w; e += THREADSu) {
            let i = j + 1u + e / w;
            let c = e % w;
            let m = mat[mb + i * n + j];
            if (c < rows) {
                let cc = j + 1u + c;
                mat[mb + i * n + cc] -= m * mat[mb + j * n + cc];
            } else {
                let cc = c - rows;
                out[xb + i * k + cc] -= m * out[xb + j * k + cc];
            }
        }
        sync();
    }
    // 5. the back substitution with the upper factor
    substitute(l, mb, xb, n, k, false);
}
"#;

/// The triangular solve. Parameters as [`LU`]'s, then 1 for a lower triangle.
const TRIANGULAR: &str = r#"
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // x, [count, n, k]
@group(0) @binding(2) var<storage, read> mat: array<f32>; // a
@group(0) @binding(3) var<storage, read> b: array<f32>;

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(2u)) { return; }
    let n = word(0u);
    let k = word(1u);
    let xb = g * n * k;
    let bb = word(5u) + g * word(6u);
    for (var e = l; e < n * k; e += THREADSu) { out[xb + e] = b[bb + e]; }
    sync();
    substitute(l, word(3u) + g * word(4u), xb, n, k, word(7u) == 1u);
}
"#;

/// The Cholesky factorization. Parameters: `n`, the number of matrices, the offset of
/// `a`'s first matrix and the distance between its matrices.
const CHOLESKY: &str = r#"
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // l, [count, n, n]
@group(0) @binding(2) var<storage, read> a: array<f32>;

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(1u)) { return; }
    let n = word(0u);
    let ob = g * n * n;
    let ab = word(2u) + g * word(3u);
    // the lower triangle of (a + a^T) / 2, zeros above it: the factor is made in place
    for (var e = l; e < n * n; e += THREADSu) {
        let r = e / n;
        let c = e % n;
        out[ob + e] = select(0.0, (a[ab + e] + a[ab + c * n + r]) * 0.5, c <= r);
    }
    sync();
    // whether every pivot so far was positive (the same for every thread: all read the
    // same diagonal element)
    var ok = true;
    for (var j = 0u; j < n; j++) {
        // 1. l[j][j] = sqrt of what the earlier columns left of the diagonal element, and
        //    column j below it divided by that
        let d = out[ob + j * n + j];
        ok = ok && d > 0.0;
        let ljj = select(nan(), sqrt(d), d > 0.0);
        for (var i = j + 1u + l; i < n; i += THREADSu) {
            out[ob + i * n + j] = out[ob + i * n + j] / ljj;
        }
        sync();
        // 2. the trailing lower triangle loses the outer product of that column with
        //    itself, one element per thread at a time (over the square, the half above
        //    the diagonal skipped); the diagonal element is written now that every
        //    thread has read it
        let rows = n - j - 1u;
        for (var e = l; e < rows * rows; e += THREADSu) {
            let r = j + 1u + e / rows;
            let c = j + 1u + e % rows;
            if (c <= r) {
                out[ob + r * n + c] -= out[ob + r * n + j] * out[ob + c * n + j];
            }
        }
        if (l == 0u) { out[ob + j * n + j] = ljj; }
        sync();
    }
    // not positive definite: NaN throughout, as JAX
    if (!ok) {
        for (var e = l; e < n * n; e += THREADSu) { out[ob + e] = nan(); }
    }
}
"#;

/// A kernel's WGSL: the parameters, the float helpers, [`SYNC`] and `parts`, with the
/// workgroup size filled in.
fn source(parts: &[&str]) -> String {
    [&[wgsl::PARAMS, wgsl::MATH, SYNC], parts]
        .concat()
        .concat()
        .replace("THREADS", &THREADS.to_string())
}

/// An error unless the adapter runs workgroups of [`THREADS`] threads (every WebGPU
/// adapter does; a reduced limit would make the pipeline invalid).
fn check_workgroup(op: &'static str, ctx: &Context) -> Result<()> {
    let l = &ctx.limits;
    if THREADS > l.max_compute_invocations_per_workgroup || THREADS > l.max_compute_workgroup_size_x
    {
        return Err(Error::Gpu {
            op,
            message: format!(
                "the kernel runs {THREADS} threads per workgroup; the adapter allows {} ({} along x)",
                l.max_compute_invocations_per_workgroup, l.max_compute_workgroup_size_x
            ),
        });
    }
    Ok(())
}

/// `x` (`[batch.., rows, cols]`, on a GPU) as matrices the kernels read row-major: the
/// tensor to bind, the storage offset of its first matrix and the distance between
/// consecutive ones. A batch that views one row-major matrix throughout (an operand
/// broadcast along the batch) is read in place, distance 0; anything else is made
/// row-major first.
fn matrices(op: &'static str, x: &Tensor) -> Result<(Tensor, u32, u32)> {
    let l = &x.layout;
    let nb = l.shape.len() - 2;
    let (rows, cols) = (l.shape[nb], l.shape[nb + 1]);
    let one_matrix = (0..nb).all(|d| l.shape[d] == 1 || l.strides[d] == 0);
    let row_major =
        (rows == 1 || l.strides[nb] == cols as isize) && (cols == 1 || l.strides[nb + 1] == 1);
    if one_matrix && row_major {
        return Ok((x.clone(), l.offset as u32, 0));
    }
    let x = elementwise::row_major(op, x)?;
    let offset = x.layout.offset as u32;
    Ok((x, offset, (rows * cols) as u32))
}

/// Which systems a dispatch solves.
#[derive(Clone, Copy)]
enum Solver {
    /// General matrices, by LU with partial pivoting.
    Lu,
    /// Triangular matrices: the lower triangle (`true`) or the upper one.
    Triangular(bool),
}

/// `x` with `a @ x = b` (`a` `[batch.., n, n]`, `b` `[batch.., n, k]`, both broadcast to
/// the full batch): LU with partial pivoting, a singular matrix giving non-finite values.
pub(crate) fn solve(a: &Tensor, b: &Tensor, plan: &Systems) -> Result<Tensor> {
    systems("solve", Solver::Lu, a, b, plan)
}

/// `x` with `a @ x = b` for triangular `a` (shapes as in [`solve`]): only the lower
/// triangle (with `lower`) or the upper one is read, diagonal included.
pub(crate) fn solve_triangular(
    a: &Tensor,
    b: &Tensor,
    plan: &Systems,
    lower: bool,
) -> Result<Tensor> {
    systems("solve_triangular", Solver::Triangular(lower), a, b, plan)
}

/// The solutions of `plan`'s systems by `solver`, one workgroup per system.
fn systems(
    op: &'static str,
    solver: Solver,
    a: &Tensor,
    b: &Tensor,
    plan: &Systems,
) -> Result<Tensor> {
    let (n, k) = (plan.n, plan.k);
    let count = numel(&plan.batch);
    let out = GpuStorage::alloc(op, storage_of(a).ordinal, count * n * k, DType::F32)?;
    if out.len == 0 {
        return Ok(gpu::tensor(out, &plan.out_shape()));
    }
    let ctx = out.context();
    check_workgroup(op, ctx)?;
    let (a, a_offset, a_step) = matrices(op, a)?;
    let (b, b_offset, b_step) = matrices(op, b)?;
    let lower = matches!(solver, Solver::Triangular(true));
    let words: [u32; 8] = [
        n as u32,
        k as u32,
        count as u32,
        a_offset,
        a_step,
        b_offset,
        b_step,
        lower as u32,
    ];
    let (sa, sb) = (storage_of(&a), storage_of(&b));
    match solver {
        Solver::Lu => {
            // the factorization overwrites its matrix: a copy of each
            let lu = GpuStorage::alloc(op, sa.ordinal, count * n * n, DType::F32)?;
            let pipeline = ctx.pipeline("linalg lu solve", || source(&[SUBSTITUTE, LU]));
            ctx.dispatch(
                &pipeline,
                bytemuck::cast_slice(&words),
                &[
                    out.buffer(op)?,
                    lu.buffer(op)?,
                    sa.buffer(op)?,
                    sb.buffer(op)?,
                ],
                grid(count as u32),
            );
        }
        Solver::Triangular(_) => {
            let pipeline = ctx.pipeline("linalg triangular solve", || {
                source(&[SUBSTITUTE, TRIANGULAR])
            });
            ctx.dispatch(
                &pipeline,
                bytemuck::cast_slice(&words),
                &[out.buffer(op)?, sa.buffer(op)?, sb.buffer(op)?],
                grid(count as u32),
            );
        }
    }
    Ok(gpu::tensor(out, &plan.out_shape()))
}

/// The lower Cholesky factors of the symmetrized matrices `(a + aᵀ) / 2` of `a`
/// (`[.., n, n]`, any layout), contiguous, zeros above the diagonal; NaN throughout for a
/// matrix that is not positive definite.
pub(crate) fn cholesky(a: &Tensor, n: usize) -> Result<Tensor> {
    const OP: &str = "cholesky";
    let count = numel(&a.shape()[..a.ndim() - 2]);
    let out = GpuStorage::alloc(OP, storage_of(a).ordinal, count * n * n, DType::F32)?;
    if out.len == 0 {
        return Ok(gpu::tensor(out, a.shape()));
    }
    let ctx = out.context();
    check_workgroup(OP, ctx)?;
    let (a_rm, a_offset, a_step) = matrices(OP, a)?;
    let words: [u32; 4] = [n as u32, count as u32, a_offset, a_step];
    let pipeline = ctx.pipeline("linalg cholesky", || source(&[CHOLESKY]));
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[out.buffer(OP)?, storage_of(&a_rm).buffer(OP)?],
        grid(count as u32),
    );
    Ok(gpu::tensor(out, a.shape()))
}
