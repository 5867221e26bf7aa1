//! Linear algebra on the GPU: the LU factorization with partial pivoting and the solves
//! with its factors (`lu_factor`, `lu_solve`; `Tensor::solve` is the two, on either
//! device), `solve_triangular`, `cholesky`, `eigh_packed` (`Tensor::eigh`), `qr_packed`
//! (`Tensor::qr`) and `svd_packed` (`Tensor::svd`), over the last two axes of f32
//! tensors.
//!
//! Every kernel gives each matrix of the batch one workgroup of [`THREADS`] threads, which
//! walks the matrix's columns (or rows, or rounds of rotations) in order and spreads the
//! work of each step over its threads, with a barrier between steps (one step's results
//! are the next one's inputs).
//! Batches beyond one dispatch dimension go over two ([`grid`]); the kernels number their
//! matrices `workgroup_id.x + workgroup_id.y * num_workgroups.x`.
//!
//! - [`lu_factor`]: Gaussian elimination with partial pivoting (LAPACK's `getrf`), in
//!   place in the packed factors `[.., n, n + 1]` of [`Tensor::lu_factor`], the last
//!   column tracking the row permutation;
//! - [`lu_solve`]: the solve with those factors (LAPACK's `getrs`): the right-hand sides
//!   permuted, then the forward substitution with the unit lower factor and the back
//!   substitution with the upper one, or for the transpose the substitutions with `Uᵀ` and
//!   `Lᵀ` and the inverse permutation;
//! - [`solve_triangular`]: the forward or back substitution alone, reading only the
//!   matrix's lower or upper triangle;
//! - [`cholesky`]: the right-looking Cholesky factorization of the symmetrized matrix;
//! - [`eigh_packed`]: the eigendecomposition of the symmetrized matrix by the cyclic
//!   Jacobi method, each sweep's pairs of indices in rounds of disjoint pairs rotated
//!   together (the round-robin ordering of Brent and Luk), until the off-diagonal part is
//!   negligible; then the eigenvalues sorted with their vectors, whose signs are fixed as
//!   on the CPU's;
//! - [`qr_packed`]: the reduced QR decomposition by Householder reflections, column by
//!   column (LAPACK's `geqr2`), then the thin q from the reflectors, the last first
//!   (`org2r`), the signs fixed as on the CPU (r's diagonal non-negative);
//! - [`svd_packed`]: the reduced singular value decomposition by the one-sided Jacobi
//!   method (Hestenes) on the columns of the matrix, or of its transpose for a wide one,
//!   in [`eigh_packed`]'s rounds of disjoint pairs of columns, until every pair is
//!   orthogonal; then the singular values (the column norms) sorted with their vectors,
//!   whose signs are fixed as on the CPU's.
//!
//! Nothing is checked on the device: a singular matrix gives finite LU factors with a zero
//! pivot (stepped over as LAPACK does: `det` 0, `logabsdet` -inf) and non-finite
//! solutions, a matrix that is not positive definite a Cholesky factor of NaNs, a matrix
//! holding NaN or infinity an eigendecomposition or a singular value decomposition of NaNs
//! (as JAX does; the CPU path reports the singular solve, the indefinite matrix and the
//! non-convergence as errors); NaN in a matrix spreads through its QR decomposition.
//!
//! Mesa's software driver (lavapipe, what CI runs) ends every loop of an invocation after
//! 65,535 iterations in all, silently; the Jacobi and QR kernels do several items per
//! iteration beyond small sizes so that lavapipe decomposes matrices up to about 250 x 250
//! (`eigh`), 240 x 240 (`qr`) and 150 x 150 (`svd`); `cholesky` is right there up to 256 and
//! wrong from about 320. Hardware drivers have no such budget.

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

/// Items per thread in each iteration of the loops of a round of [`EIGH`] (the calls
/// written out) for matrices beyond n = 64 ([`unroll`]).
const UNROLL: u32 = 16;

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
/// matrix held in the binding `mat` (a triangle of it or of its transpose, with its
/// diagonal or a unit one), solving into the binding `out`.
const SUBSTITUTE: &str = r#"

// A triangular matrix t of `substitute`: the lower (`lower`) or upper triangle of the
// n x n matrix whose rows lie `stride` apart from `base` in `mat`, or of its transpose
// (`trans`: t[i][j] is read from [j][i]); its diagonal, or ones there (`unit`: not read).
// With `permuted`, row i of x lies at row p[i] of `out`, p the column after the matrix's
// last (the permutation of packed LU factors).
struct Triangle {
    base: u32,
    stride: u32,
    lower: bool,
    unit: bool,
    trans: bool,
    permuted: bool,
}

// t[i][j]
fn tri_at(t: Triangle, i: u32, j: u32) -> f32 {
    return mat[t.base + select(i * t.stride + j, j * t.stride + i, t.trans)];
}

// The row of `out` holding row i of x (kept within the block whatever the column holds).
fn x_row(t: Triangle, i: u32, n: u32) -> u32 {
    if (!t.permuted) { return i; }
    return min(u32(mat[t.base + i * t.stride + n]), n - 1u);
}

// Solves t x = y in place for the n x k block of `out` at `xb` (y on entry, x on return);
// t's other triangle is never read. Column by column, as LAPACK's trsm: row j of x is
// final once divided by t[j][j] (going down for a lower t, up for an upper one); its
// multiples are subtracted from the rows still to solve, those elements spread over the
// threads, each dividing the element of row j it reads. Row j itself is divided in the
// next step, when no thread reads it any more: one barrier per step. The last step has
// no rows left to update: only divisions, its row's and the one before.
fn substitute(l: u32, t: Triangle, xb: u32, n: u32, k: u32) {
    var prev = 0u; // the previous step's row in `out`, and its diagonal element
    var prev_d = 1.0;
    for (var s = 0u; s + 1u < n; s++) {
        let j = select(n - 1u - s, s, t.lower);
        let xj = xb + x_row(t, j, n) * k;
        let d = select(tri_at(t, j, j), 1.0, t.unit);
        if (s > 0u && !t.unit) {
            for (var c = l; c < k; c += THREADSu) { out[prev + c] = out[prev + c] / prev_d; }
        }
        // the rows still to solve: below j going down, above it going up
        var first = 0u;
        var rows = j;
        if (t.lower) {
            first = j + 1u;
            rows = n - j - 1u;
        }
        for (var e = l; e < rows * k; e += THREADSu) {
            let i = first + e / k;
            let c = e % k;
            out[xb + x_row(t, i, n) * k + c] -= tri_at(t, i, j) * (out[xj + c] / d);
        }
        prev = xj;
        prev_d = d;
        sync();
    }
    // with a unit diagonal x is final already
    if (!t.unit && n > 0u) {
        let j = select(0u, n - 1u, t.lower);
        let xj = xb + x_row(t, j, n) * k;
        let d = tri_at(t, j, j);
        for (var c = l; c < k; c += THREADSu) {
            out[xj + c] = out[xj + c] / d;
            if (n > 1u) { out[prev + c] = out[prev + c] / prev_d; }
        }
        sync();
    }
}
"#;

/// The LU factorization. Parameters: `n`, the number of matrices, the offset of `a`'s
/// first matrix and the distance between its matrices.
const FACTOR: &str = r#"
@group(0) @binding(1) var<storage, read_write> mat: array<f32>; // packed LU, [count, n, n + 1]
@group(0) @binding(2) var<storage, read> a: array<f32>;

// each thread's best pivot candidate so far: its magnitude and row
var<workgroup> best_v: array<f32, THREADS>;
var<workgroup> best_i: array<u32, THREADS>;

// Whether the candidate (v, i) beats (bv, bi): a larger magnitude, or the same one in an
// earlier row (LAPACK and faer take the first largest). A NaN never wins.
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return v > bv || (v == bv && i < bi);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(1u)) { return; }
    let n = word(0u);
    let s = n + 1u; // the row stride: the matrix, then the permutation
    let mb = g * n * s;
    let ab = word(2u) + g * word(3u);
    // the matrix, and the identity permutation beside it
    for (var e = l; e < n * s; e += THREADSu) {
        let r = e / s;
        let c = e % s;
        if (c < n) {
            mat[mb + e] = a[ab + r * n + c];
        } else {
            mat[mb + e] = f32(r);
        }
    }
    sync();
    // (the last column has nothing to do: one candidate pivot, nothing below it)
    for (var j = 0u; j + 1u < n; j++) {
        // 1. the pivot: the row from j down with the largest |mat[i][j]|, each thread's
        //    best of its rows, then a tree in workgroup memory over the threads that
        //    had rows (the first `span`, rounded up to a power of two)
        var bv = -1.0;
        var bi = n;
        for (var i = j + l; i < n; i += THREADSu) {
            let v = abs(mat[mb + i * s + j]);
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
        // 2. rows j and p swap places whole: the multipliers left of j (L's rows follow
        //    the permutation, as LAPACK's), the columns not yet eliminated and the
        //    permutation's two entries
        if (p != j) {
            for (var c = l; c < s; c += THREADSu) {
                let t = mat[mb + j * s + c];
                mat[mb + j * s + c] = mat[mb + p * s + c];
                mat[mb + p * s + c] = t;
            }
        }
        sync();
        // 3. the multipliers: column j below the pivot becomes the lower factor's; a zero
        //    pivot (a singular matrix: the column below is zero too) is stepped over as
        //    LAPACK does, so that the factors stay finite (log |det| = -inf, det = 0) and
        //    only a solution with them is non-finite
        let d = mat[mb + j * s + j];
        if (d != 0.0) {
            for (var i = j + 1u + l; i < n; i += THREADSu) {
                mat[mb + i * s + j] = mat[mb + i * s + j] / d;
            }
        }
        sync();
        // 4. the trailing update: the rows below j lose their multiple of row j in the
        //    columns right of j, one element per thread at a time
        let rows = n - j - 1u;
        for (var e = l; e < rows * rows; e += THREADSu) {
            let i = j + 1u + e / rows;
            let c = j + 1u + e % rows;
            mat[mb + i * s + c] -= mat[mb + i * s + j] * mat[mb + j * s + c];
        }
        sync();
    }
}
"#;

/// The solve with packed LU factors. Parameters: `n`, `k`, the number of systems, then
/// the offset of the first factors and the distance between them, the same for `b`, then
/// 1 to solve with the transpose.
const LU_SOLVE: &str = r#"
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // x, [count, n, k]
@group(0) @binding(2) var<storage, read> mat: array<f32>; // packed LU, [.., n, n + 1]
@group(0) @binding(3) var<storage, read> b: array<f32>;

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(2u)) { return; }
    let n = word(0u);
    let k = word(1u);
    let s = n + 1u;
    let fb = word(3u) + g * word(4u);
    let xb = g * n * k;
    let bb = word(5u) + g * word(6u);
    let trans = word(7u) == 1u;
    // a[p] = L U. a x = b: L U x = b[p], so row i of the right-hand sides is row p[i] of
    // b. aᵀ x = b: Uᵀ Lᵀ (x[p]) = b, so x[p] comes out of the substitutions, which keep
    // their row i at row p[i] of `out` (where x's row p[i] is due), b's row i included.
    for (var e = l; e < n * k; e += THREADSu) {
        let r = e / k;
        let c = e % k;
        let pr = min(u32(mat[fb + r * s + n]), n - 1u);
        if (trans) {
            out[xb + pr * k + c] = b[bb + e];
        } else {
            out[xb + e] = b[bb + pr * k + c];
        }
    }
    sync();
    if (trans) {
        substitute(l, Triangle(fb, s, true, false, true, true), xb, n, k); // Uᵀ
        substitute(l, Triangle(fb, s, false, true, true, true), xb, n, k); // Lᵀ
    } else {
        substitute(l, Triangle(fb, s, true, true, false, false), xb, n, k); // L
        substitute(l, Triangle(fb, s, false, false, false, false), xb, n, k); // U
    }
}
"#;

/// The triangular solve. Parameters as [`LU_SOLVE`]'s, the last 1 for a lower triangle.
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
    let t = Triangle(word(3u) + g * word(4u), n, word(7u) == 1u, false, false, false);
    substitute(l, t, xb, n, k);
}
"#;
/// The Cholesky factorization. Parameters: `n`, the number of matrices, the offset of
/// `a`'s first matrix and the distance between its matrices.
/// The sign of the determinant from packed LU factors: `-1` for an odd count of row
/// swaps (the permutation's inversions) and negative pivots, `1` for an even one, `0` if a
/// pivot is zero. Parameters: `n`, the number of matrices, the offset of the first
/// factors and the distance between them.
const LU_SIGN: &str = r#"
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // [count]
@group(0) @binding(2) var<storage, read> mat: array<f32>; // packed LU, [.., n, n + 1]

var<workgroup> odd: array<u32, THREADS>;
var<workgroup> zero: array<u32, THREADS>;

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(1u)) { return; }
    let n = word(0u);
    let s = n + 1u;
    let mb = word(2u) + g * word(3u);
    // each thread: its rows' pivots, and the inversions that start at them
    var o = 0u;
    var z = 0u;
    for (var i = l; i < n; i += THREADSu) {
        let d = mat[mb + i * s + i];
        z |= u32(d == 0.0);
        o ^= u32(d < 0.0);
        let p = mat[mb + i * s + n];
        for (var j = i + 1u; j < n; j++) {
            o ^= u32(p > mat[mb + j * s + n]);
        }
    }
    odd[l] = o;
    zero[l] = z;
    workgroupBarrier();
    for (var h = THREADSu / 2u; h > 0u; h >>= 1u) {
        if (l < h) {
            odd[l] ^= odd[l + h];
            zero[l] |= zero[l + h];
        }
        workgroupBarrier();
    }
    if (l == 0u) {
        out[g] = select(select(1.0, -1.0, odd[0] == 1u), 0.0, zero[0] == 1u);
    }
}
"#;

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

/// The symmetric eigendecomposition by the cyclic Jacobi method. Parameters: `n`, the
/// number of matrices, the offset of `a`'s first matrix and the distance between its
/// matrices.
///
/// Lavapipe (Mesa's software Vulkan, which the tests run on) ends every loop of an
/// invocation once its loops have run 65,535 iterations in all (llvmpipe's guard against
/// hangs), which leaves the threads out of step at their barriers and the result garbage
/// (GPUs proper have no such limit). So beyond n = 64 the loops of a round do [`UNROLL`]
/// items per iteration ([`unroll`]): a round of n = 130 takes 9 loop iterations, a sweep
/// about 1,300; n = 250 has the budget for ten sweeps (random matrices take 5 to 8).
/// WGSL of the kernels that scale a matrix first ([`EIGH`], [`QR`], [`SVD`]): `exponent`.
const EXPONENT: &str = r#"
// The binary exponent of x (a largest magnitude): x scaled by 2^-exponent lies in [1, 2),
// so that sums of squares neither overflow nor underflow; 0 for zero, subnormal, infinite
// or NaN x (left unscaled).
fn exponent(x: f32) -> i32 {
    let field = i32((bitcast<u32>(x) >> 23u) & 0xffu);
    return select(0, field - 127, field != 0 && field != 255);
}
"#;

/// WGSL of the Jacobi kernels ([`EIGH`], [`SVD`]): `pair`, the round-robin ordering of
/// the rotations.
const ROUND_ROBIN: &str = r#"
// Pair k of round r (of m - 1) of the indices 0..m (m even), as (p, q) with p < q: the
// circle method, index m - 1 fixed and the others turning, so that every pair of indices
// meets exactly once in m - 1 rounds and a round's pairs are disjoint. With an odd count
// of indices, m is one more and the last index a dummy (only ever in pair 0, which is then
// not rotated).
fn pair(k: u32, r: u32, m: u32) -> vec2<u32> {
    if (k == 0u) { return vec2<u32>(r, m - 1u); }
    let x = (r + k) % (m - 1u);
    let y = (r + m - 1u - k) % (m - 1u);
    return vec2<u32>(min(x, y), max(x, y));
}
"#;

const EIGH: &str = r#"
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // packed, [count, n + 1, n]
@group(0) @binding(2) var<storage, read> a: array<f32>;
// per matrix: the matrix being diagonalized (n x n), then m words: the rotations of a
// round (c and s of pair k at 2k, 2k + 1), at the end the eigenvalues (m >= n)
@group(0) @binding(3) var<storage, read_write> work: array<f32>;

// each thread's partial results of a reduction: two sums (or a largest magnitude in
// red_a) and whether it rotated
var<workgroup> red_a: array<f32, THREADS>;
var<workgroup> red_b: array<f32, THREADS>;
var<workgroup> red_m: array<u32, THREADS>;
// whether the iteration stops: thread 0 decides, every thread loads it uniformly
var<workgroup> stop_flag: u32;

// The most sweeps (each rotates every pair of indices once): Jacobi converges
// quadratically, in 5 to 10 sweeps for the sizes tested.
const MAX_SWEEPS: u32 = 30u;
// Converged: the off-diagonal part's Frobenius norm is at most this much of the matrix's.
const OFF_TOL: f32 = 1e-7;
// A pair is not rotated when |a_pq| <= SKIP sqrt(|a_pp| |a_qq|) (below f32 rounding of
// what the rotation would change) or |a_pq| <= TINY (nothing beside the scaled matrix's
// largest magnitude, at least 1; and far from the subnormals, which a driver may flush to
// zero: theta stays finite); its a_pq is set to zero.
const SKIP: f32 = 6e-8;
const TINY: f32 = 1e-30;

// Reduces the partials of the first `span` threads into element 0 (every thread writes
// its partials before the call, the identity where it had none): with `sums`, red_a and
// red_b summed and red_m or-ed; without, the largest red_a.
fn tree(l: u32, span: u32, sums: bool) {
    workgroupBarrier();
    for (var h = (1u << (32u - countLeadingZeros(max(span, 1u) - 1u))) / 2u; h > 0u; h = h >> 1u) {
        if (l < h) {
            if (sums) {
                red_a[l] += red_a[l + h];
                red_b[l] += red_b[l + h];
                red_m[l] |= red_m[l + h];
            } else {
                red_a[l] = max(red_a[l], red_a[l + h]);
            }
        }
        workgroupBarrier();
    }
}


// The matrix being diagonalized (at `work[wb]`, n x n) and the round's rotations.
struct Sweep {
    wb: u32, // A
    rb: u32, // the rotations
    ob: u32, // V, in `out`
    n: u32,
    m: u32,
    h: u32, // pairs per round, m / 2
    r: u32, // the round
}

// A[i][j] (zero at the dummy index)
fn at(s: Sweep, i: u32, j: u32) -> f32 {
    if (i >= s.n || j >= s.n) { return 0.0; }
    return work[s.wb + i * s.n + j];
}

// A[i][j] = A[j][i] = v (not at the dummy index)
fn put2(s: Sweep, i: u32, j: u32, v: f32) {
    if (i < s.n && j < s.n) {
        work[s.wb + i * s.n + j] = v;
        work[s.wb + j * s.n + i] = v;
    }
}

// Computes the rotation J of pair k (J[p][p] = J[q][q] = c, J[p][q] = s, J[q][p] = -s)
// that makes the (p, q) element of J^T A J zero (Golub and Van Loan's symmetric Schur
// decomposition), into the round's rotations; whether it rotates.
fn rotation(s: Sweep, k: u32) -> bool {
    let pq = pair(k, s.r, s.m);
    var c = 1.0;
    var sn = 0.0;
    if (pq.y < s.n) {
        let app = work[s.wb + pq.x * s.n + pq.x];
        let aqq = work[s.wb + pq.y * s.n + pq.y];
        let apq = work[s.wb + pq.x * s.n + pq.y];
        if (abs(apq) > max(SKIP * sqrt(abs(app)) * sqrt(abs(aqq)), TINY)) {
            let theta = (aqq - app) / (2.0 * apq);
            let sg = select(-1.0, 1.0, theta >= 0.0);
            // (for a huge theta, t = 1 / (2 theta) without squaring it)
            let t = select(sg / (abs(theta) + sqrt(theta * theta + 1.0)), 0.5 / theta, abs(theta) > 1e18);
            c = 1.0 / sqrt(t * t + 1.0);
            sn = t * c;
        }
    }
    work[s.rb + 2u * k] = c;
    work[s.rb + 2u * k + 1u] = sn;
    return sn != 0.0 || c != 1.0;
}

// Item e of A = J^T A J: the pairs cut A into 2 x 2 blocks, each of which depends on its
// rows' and its columns' rotations alone. The items are the blocks on and above the
// diagonal, each made with its transpose (A stays exactly symmetric), as a rectangle of
// ceil(h / 2) x (h + 1): block row i beside row h - 1 - i.
fn rotate_block(s: Sweep, e: u32) {
    let rr = e / (s.h + 1u);
    let cc = e % (s.h + 1u);
    if (rr >= (s.h + 1u) / 2u) { return; }
    var k1 = rr;
    var k2 = rr + cc;
    if (cc >= s.h - rr) {
        k1 = s.h - 1u - rr;
        k2 = k1 + cc - (s.h - rr);
        if (k1 == rr) { return; } // the middle row of an odd h, already done
    }
    let i = pair(k1, s.r, s.m);
    let c1 = work[s.rb + 2u * k1];
    let s1 = work[s.rb + 2u * k1 + 1u];
    if (k1 == k2) {
        // the pair's own block: a_pp - t a_pq, a_qq + t a_pq and zero
        if (i.y < s.n) {
            let t = s1 / c1;
            let apq = work[s.wb + i.x * s.n + i.y];
            work[s.wb + i.x * s.n + i.x] -= t * apq;
            work[s.wb + i.y * s.n + i.y] += t * apq;
            put2(s, i.x, i.y, 0.0);
        }
        return;
    }
    let j = pair(k2, s.r, s.m);
    let c2 = work[s.rb + 2u * k2];
    let s2 = work[s.rb + 2u * k2 + 1u];
    let x00 = at(s, i.x, j.x);
    let x01 = at(s, i.x, j.y);
    let x10 = at(s, i.y, j.x);
    let x11 = at(s, i.y, j.y);
    // rows by J^T (rotation k1), then columns by J (rotation k2)
    let y00 = c1 * x00 - s1 * x10;
    let y01 = c1 * x01 - s1 * x11;
    let y10 = s1 * x00 + c1 * x10;
    let y11 = s1 * x01 + c1 * x11;
    put2(s, i.x, j.x, c2 * y00 - s2 * y01);
    put2(s, i.x, j.y, s2 * y00 + c2 * y01);
    put2(s, i.y, j.x, c2 * y10 - s2 * y11);
    put2(s, i.y, j.y, s2 * y10 + c2 * y11);
}

// Item e of V = V J: the two elements of a row in a pair's columns.
fn rotate_v(s: Sweep, e: u32) {
    if (e >= s.n * s.h) { return; }
    let row = s.ob + (e / s.h) * s.n;
    let k = e % s.h;
    let pq = pair(k, s.r, s.m);
    if (pq.y >= s.n) { return; }
    let c = work[s.rb + 2u * k];
    let sn = work[s.rb + 2u * k + 1u];
    let vp = out[row + pq.x];
    let vq = out[row + pq.y];
    out[row + pq.x] = c * vp - sn * vq;
    out[row + pq.y] = sn * vp + c * vq;
}

// Whether eigenvalue x (index j) sorts before y (index i): ascending, NaN last, ties (and
// NaNs) by index, as the CPU's stable sort. A total order: the ranks are a permutation.
fn before(x: f32, j: u32, y: f32, i: u32) -> bool {
    let xn = is_nan(x);
    let yn = is_nan(y);
    if (xn || yn) { return !xn || (yn && j < i); }
    return x < y || (x == y && j < i);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(1u)) { return; }
    let n = word(0u);
    let m = n + (n & 1u); // the indices, padded to an even number
    let h = m / 2u;
    let nn = n * n;
    let ob = g * (n + 1u) * n; // V (the eigenvectors as columns), then the eigenvalues
    let wb = g * (nn + m); // A
    let rb = wb + nn; // the rotations, at the end the eigenvalues
    let ab = word(2u) + g * word(3u);
    let span = min(nn, THREADSu); // the threads with elements of A
    // 1. A = (a + a^T) / 2, V = I, and A's largest magnitude
    var big = 0.0;
    for (var e = l; e < nn; e += THREADSu) {
        let r = e / n;
        let c = e % n;
        let v = (a[ab + e] + a[ab + c * n + r]) * 0.5;
        work[wb + e] = v;
        big = max(big, abs(v));
        out[ob + e] = select(0.0, 1.0, r == c);
    }
    red_a[l] = big;
    tree(l, span, false);
    // A scaled by a power of two (exactly) to its largest magnitude in [1, 2)
    let ex = exponent(red_a[0]);
    for (var e = l; e < nn; e += THREADSu) { work[wb + e] = ldexp(work[wb + e], -ex); }
    sync();
    // 2. sweeps until the off-diagonal part is negligible, no pair was rotated in the
    //    last sweep or MAX_SWEEPS are done; none for a matrix holding NaN or infinity
    //    (its norm is not finite), whose result is NaN throughout
    let blocks = ((h + 1u) / 2u) * (h + 1u);
    var sweep = 0u;
    var moved = true; // whether this thread rotated a pair in the last sweep
    var poisoned = false;
    loop {
        var off = 0.0;
        var total = 0.0;
        for (var e = l; e < nn; e += THREADSu) {
            let v = work[wb + e];
            total += v * v;
            off += select(v * v, 0.0, e / n == e % n);
        }
        red_a[l] = off;
        red_b[l] = total;
        red_m[l] = select(0u, 1u, moved);
        tree(l, span, true);
        if (l == 0u) {
            let done = red_a[0] <= OFF_TOL * OFF_TOL * red_b[0] || red_m[0] == 0u || sweep >= MAX_SWEEPS;
            stop_flag = select(select(0u, 1u, done), 2u, !is_finite(red_b[0]));
        }
        let stop = workgroupUniformLoad(&stop_flag);
        if (stop != 0u) {
            poisoned = stop == 2u;
            break;
        }
        sweep++;
        moved = false;
        for (var r = 0u; r + 1u < m; r++) {
            let s = Sweep(wb, rb, ob, n, m, h, r);
            for (var k = l; k < h; k += THREADSu) {
                moved = rotation(s, k) || moved;
            }
            sync();
            // UNROLL items per iteration (see the kernel's doc)
            for (var e = l; e < blocks; e += UNROLLu * THREADSu) {
                ROTATE_BLOCKS
            }
            for (var e = l; e < n * h; e += UNROLLu * THREADSu) {
                ROTATE_V
            }
            sync();
        }
    }
    // 3. the eigenvalues (A's diagonal, unscaled) where the rotations were, then V where
    //    A was, so that its columns can go to their places in `out`
    for (var i = l; i < n; i += THREADSu) { work[rb + i] = ldexp(work[wb + i * n + i], ex); }
    sync();
    for (var e = l; e < nn; e += THREADSu) { work[wb + e] = out[ob + e]; }
    sync();
    // 4. each eigenvalue and its vector to its rank among the eigenvalues, the vector's
    //    sign fixed: its component of largest magnitude (the first of equals) positive
    //    (every element of the result written once: the ranks are a permutation)
    for (var i = l; i < n; i += THREADSu) {
        let w = work[rb + i];
        var rank = 0u;
        var top = 0.0;
        for (var j = 0u; j < n; j++) {
            if (before(work[rb + j], j, w, i)) { rank++; }
            let v = work[wb + j * n + i];
            if (abs(v) > abs(top)) { top = v; }
        }
        let flip = select(1.0, -1.0, top < 0.0);
        for (var r = 0u; r < n; r++) {
            out[ob + r * n + rank] = select(flip * work[wb + r * n + i], nan(), poisoned);
        }
        out[ob + nn + rank] = select(w, nan(), poisoned);
    }
}
"#;

/// The reduced QR decomposition by Householder reflections (LAPACK's `geqr2`, then
/// `org2r` for the thin q). Parameters: `m`, `n`, the number of matrices, the offset of
/// `a`'s first matrix and the distance between its matrices.
///
/// Each thread takes whole columns (of the matrix being reduced, then of q), walking down
/// them four rows per iteration, for lavapipe's budget of loop iterations (see [`EIGH`]):
/// a thread's loops run about `(m - j) / 2` iterations per column it holds at step `j`,
/// which lets lavapipe decompose square matrices up to 240 x 240 (250 x 250 runs out;
/// the tests stay far below).
const QR: &str = r#"
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // packed, [count, m + k, n]
@group(0) @binding(2) var<storage, read> a: array<f32>;
// per matrix: the matrix being reduced (m x n, scaled: at the end r above its diagonal,
// each reflector's x below it), q (m x k), then three words per reflector j < k: tau, the
// factor s of its vector v = (1, s x) and r's diagonal element beta (scaled)
@group(0) @binding(3) var<storage, read_write> work: array<f32>;

// each thread's partial sum of squares, or largest magnitude
var<workgroup> red: array<f32, THREADS>;

// Reduces the partials of the first `span` threads into red[0] (every thread writes its
// partial before the call, zero where it had none): their sum, or with `biggest` their
// largest.
fn tree(l: u32, span: u32, biggest: bool) {
    workgroupBarrier();
    for (var h = (1u << (32u - countLeadingZeros(max(span, 1u) - 1u))) / 2u; h > 0u; h = h >> 1u) {
        if (l < h) {
            if (biggest) {
                red[l] = max(red[l], red[l + h]);
            } else {
                red[l] += red[l + h];
            }
        }
        workgroupBarrier();
    }
}

// The sum of x[t] y[t] over t < rows, x[t] at work[xb + t xs] and y[t] at
// work[yb + t ys]: four terms per iteration (see the kernel's doc), then the rest.
fn dot(xb: u32, xs: u32, yb: u32, ys: u32, rows: u32) -> f32 {
    var sum = 0.0;
    var t = 0u;
    for (; t + 4u <= rows; t += 4u) {
        let x = xb + t * xs;
        let y = yb + t * ys;
        sum += work[x] * work[y] + work[x + xs] * work[y + ys]
            + work[x + 2u * xs] * work[y + 2u * ys] + work[x + 3u * xs] * work[y + 3u * ys];
    }
    for (; t < rows; t++) {
        sum += work[xb + t * xs] * work[yb + t * ys];
    }
    return sum;
}

// y[t] -= f x[t] over t < rows, laid out as in `dot`.
fn axpy(f: f32, xb: u32, xs: u32, yb: u32, ys: u32, rows: u32) {
    var t = 0u;
    for (; t + 4u <= rows; t += 4u) {
        let x = xb + t * xs;
        let y = yb + t * ys;
        work[y] -= f * work[x];
        work[y + ys] -= f * work[x + xs];
        work[y + 2u * ys] -= f * work[x + 2u * xs];
        work[y + 3u * ys] -= f * work[x + 3u * xs];
    }
    for (; t < rows; t++) {
        work[yb + t * ys] -= f * work[xb + t * xs];
    }
}

// Applies the reflector H = I - tau v vᵀ, v = (1, s x), to a column y (y[0] at
// work[yb], its elements ys apart; x's `rows` elements from work[xb], xs apart, one fewer
// than y's): w = vᵀ y, y -= tau w v.
fn reflect(tau: f32, s: f32, xb: u32, xs: u32, yb: u32, ys: u32, rows: u32) {
    let t = tau * (work[yb] + s * dot(xb, xs, yb + ys, ys, rows));
    work[yb] -= t;
    axpy(t * s, xb, xs, yb + ys, ys, rows);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(2u)) { return; }
    let m = word(0u);
    let n = word(1u);
    let k = min(m, n);
    let mn = m * n;
    let wb = g * (mn + m * k + 3u * k); // the matrix being reduced
    let qb = wb + mn; // q
    let tb = qb + m * k; // the reflectors' words
    let ab = word(3u) + g * word(4u);
    let ob = g * (m + k) * n;
    // 1. the matrix and its largest magnitude; q = the identity's first k columns
    var big = 0.0;
    for (var e = l; e < mn; e += THREADSu) {
        let v = a[ab + e];
        work[wb + e] = v;
        big = max(big, abs(v));
    }
    for (var e = l; e < m * k; e += THREADSu) {
        work[qb + e] = select(0.0, 1.0, e / k == e % k);
    }
    red[l] = big;
    tree(l, min(mn, THREADSu), true);
    // the matrix scaled by a power of two (exactly) to its largest magnitude in [1, 2); r
    // is scaled back at the end, q is the same
    let ex = exponent(red[0]);
    for (var e = l; e < mn; e += THREADSu) { work[wb + e] = ldexp(work[wb + e], -ex); }
    sync();
    // 2. column by column, LAPACK's larfg: the reflector that takes column j from the
    //    diagonal down (alpha, then x) to (beta, 0, ..): beta = -sign(alpha) |(alpha, x)|,
    //    tau = (beta - alpha) / beta, v = (1, x / (alpha - beta)); none (tau = 0,
    //    beta = alpha) where x is zero, a zero column among others. It is applied to the
    //    columns on the right (x stays where it is, the factor s beside tau)
    for (var j = 0u; j < k; j++) {
        let xb = wb + (j + 1u) * n + j;
        let rows = m - j - 1u;
        var sq = 0.0;
        for (var t = l; t < rows; t += THREADSu) {
            let x = work[xb + t * n];
            sq += x * x;
        }
        red[l] = sq;
        tree(l, min(rows, THREADSu), false);
        let alpha = work[wb + j * n + j];
        let xx = red[0];
        var tau = 0.0;
        var s = 0.0;
        var beta = alpha;
        // (NaN reflects: it spreads)
        if (xx != 0.0) {
            let norm = sqrt(alpha * alpha + xx);
            beta = select(norm, -norm, alpha >= 0.0);
            tau = (beta - alpha) / beta;
            s = 1.0 / (alpha - beta);
            for (var c = j + 1u + l; c < n; c += THREADSu) {
                reflect(tau, s, xb, n, wb + j * n + c, n, rows);
            }
        }
        if (l == 0u) {
            work[tb + 3u * j] = tau;
            work[tb + 3u * j + 1u] = s;
            work[tb + 3u * j + 2u] = beta;
        }
        sync();
    }
    // 3. q = H_0 H_1 .. H_(k-1) applied to the identity's first k columns, the last
    //    reflector first: reflector j changes rows j.. of columns j..k alone (the earlier
    //    columns are still the identity's there)
    for (var i = k; i > 0u; i--) {
        let j = i - 1u;
        let tau = work[tb + 3u * j];
        let s = work[tb + 3u * j + 1u];
        if (tau != 0.0) {
            for (var c = j + l; c < k; c += THREADSu) {
                reflect(tau, s, wb + (j + 1u) * n + j, n, qb + j * k + c, k, m - j - 1u);
            }
        }
        sync();
    }
    // 4. the packed result, signs fixed as on the CPU: where beta_j < 0, column j of q
    //    and row j of r flipped; zeros right of q and below r's diagonal
    for (var e = l; e < (m + k) * n; e += THREADSu) {
        let r = e / n;
        let c = e % n;
        var v = 0.0;
        if (r < m) {
            if (c < k) {
                v = select(1.0, -1.0, work[tb + 3u * c + 2u] < 0.0) * work[qb + r * k + c];
            }
        } else {
            let i = r - m;
            let beta = work[tb + 3u * i + 2u];
            if (c == i) {
                v = ldexp(abs(beta), ex);
            } else if (c > i) {
                v = ldexp(select(1.0, -1.0, beta < 0.0) * work[wb + i * n + c], ex);
            }
        }
        out[ob + e] = v;
    }
}
"#;

/// The reduced singular value decomposition by the one-sided Jacobi method (Hestenes),
/// on the columns of `a` (tall or square) or of `aᵀ` (wide). Parameters: `m`, `n`, the
/// number of matrices, the offset of `a`'s first matrix and the distance between its
/// matrices.
///
/// With `rows = max(m, n)` and `k = min(m, n)`, W (`rows x k`, column by column) starts
/// as those columns and V (`k x k`) as the identity; each sweep rotates every pair of
/// W's columns (and V's the same) to make the two orthogonal, in rounds of disjoint pairs
/// ([`EIGH`]'s round-robin ordering), until no pair needs a rotation. Then `W = U Σ`
/// and `W Vᵀ` is the matrix (or its transpose): the singular values are W's column
/// norms, `u` and `v` W's normalized columns and V's (tall), or V's and W's (wide). The
/// three sums of a pair's rotation (`|w_p|²`, `|w_q|²`, `w_p · w_q`) are spread over
/// `lanes` threads per pair and summed by a tree in workgroup memory.
///
/// Lavapipe's budget of loop iterations (see [`EIGH`]): beyond about 50 x 50
/// ([`svd_unroll`]) the rotations of a round do [`UNROLL`] items per iteration and the
/// sums 16 rows, so that a sweep of 64 x 64 takes about 450 loop iterations and one of
/// 128 x 128 about 1,900. Random matrices take 9 to 11 sweeps there (well separated
/// singular values 4), which lets lavapipe decompose random square matrices up to
/// 150 x 150 (170 x 170 runs out; the tests stay at 64 x 64).
const SVD: &str = r#"
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // packed, [count, m + k + 1, n]
@group(0) @binding(2) var<storage, read> a: array<f32>;
// per matrix: W (its k columns of `rows` elements one after the other, scaled), V (k
// columns of k), then mk words: the rotations of a round (c and s of pair i at 2i,
// 2i + 1), at the end the singular values (scaled; mk >= k)
@group(0) @binding(3) var<storage, read_write> work: array<f32>;

// each thread's partial results of a reduction: three sums (or a largest magnitude in
// red_a), and whether it rotated (or saw a value that is not finite)
var<workgroup> red_a: array<f32, THREADS>;
var<workgroup> red_b: array<f32, THREADS>;
var<workgroup> red_g: array<f32, THREADS>;
var<workgroup> red_m: array<u32, THREADS>;
// a decision of thread 0's, which every thread loads uniformly
var<workgroup> stop_flag: u32;

// The most sweeps (each rotates every pair of columns once): one-sided Jacobi converges
// quadratically, in 3 to 11 sweeps for the sizes tried.
const MAX_SWEEPS: u32 = 30u;
// A pair is rotated while |w_p · w_q| > TOL sqrt(rows) |w_p| |w_q| (about f32 rounding of
// the sum: LAPACK's sgesvj takes sqrt(m) eps too), and |w_p · w_q| > TINY (nothing beside
// the scaled matrix's largest magnitude, at least 1; and far from the subnormals, which a
// driver may flush to zero: zeta stays finite).
const TOL: f32 = 1.2e-7;
const TINY: f32 = 1e-30;

// Reduces the partials of each segment of `lanes` threads (a power of two) into the
// segment's first element (every thread writes its partials before the call, the
// identity where it had none): with `sums`, red_a, red_b and red_g summed; without, the
// largest red_a, and red_m or-ed.
fn tree(l: u32, lanes: u32, sums: bool) {
    workgroupBarrier();
    for (var h = lanes / 2u; h > 0u; h = h >> 1u) {
        if (l % lanes < h) {
            if (sums) {
                red_a[l] += red_a[l + h];
                red_b[l] += red_b[l + h];
                red_g[l] += red_g[l + h];
            } else {
                red_a[l] = max(red_a[l], red_a[l + h]);
                red_m[l] |= red_m[l + h];
            }
        }
        workgroupBarrier();
    }
}


// W and V (in `work`) and a round's rotations.
struct Round {
    wb: u32, // W
    vb: u32, // V
    rb: u32, // the rotations
    rows: u32, // W's rows
    k: u32, // the columns
    mk: u32, // the indices, padded to even
    h: u32, // pairs per round, mk / 2
    r: u32, // the round
}

// The terms of pair i's three sums at W's rows x (column p) and y (column q).
fn term(x: u32, y: u32) -> vec3<f32> {
    let p = work[x];
    let q = work[y];
    return vec3<f32>(p * p, q * q, p * q);
}

// The sums |x|², |y|², x · y over rows j, j + lanes, .. (of `rows`) of the columns x and
// y at work[xb] and work[yb]: DOT_STEP rows per iteration (see the kernel's doc).
fn sums(xb: u32, yb: u32, j: u32, lanes: u32, rows: u32) -> vec3<f32> {
    var acc = vec3<f32>(0.0);
    var t = j;
    for (; t + (DOT_STEPu - 1u) * lanes < rows; t += DOT_STEPu * lanes) {
        DOT_TERMS
    }
    for (; t < rows; t += lanes) { acc += term(xb + t, yb + t); }
    return acc;
}

// Lane j's part (of `lanes`) of pair i's sums |w_p|², |w_q|², w_p · w_q; zero for no
// pair.
fn partials(s: Round, i: u32, j: u32, lanes: u32) -> vec3<f32> {
    if (i >= s.h) { return vec3<f32>(0.0); }
    let pq = pair(i, s.r, s.mk);
    if (pq.y >= s.k) { return vec3<f32>(0.0); }
    return sums(s.wb + pq.x * s.rows, s.wb + pq.y * s.rows, j, lanes, s.rows);
}

// The rotation J of pair i (J[p][p] = J[q][q] = c, J[p][q] = s, J[q][p] = -s) that makes
// W J's columns p and q orthogonal, from alpha = |w_p|², beta = |w_q|², gamma =
// w_p · w_q (the symmetric Schur decomposition of their 2 x 2 Gram matrix), into the
// round's rotations; whether it rotates.
fn rotation(s: Round, i: u32, alpha: f32, beta: f32, gamma: f32) -> bool {
    var c = 1.0;
    var sn = 0.0;
    let tol = TOL * sqrt(f32(s.rows));
    if (abs(gamma) > max(tol * sqrt(alpha) * sqrt(beta), TINY)) {
        let zeta = (beta - alpha) / (2.0 * gamma);
        let sg = select(-1.0, 1.0, zeta >= 0.0);
        // (for a huge zeta, t = 1 / (2 zeta) without squaring it)
        let t = select(sg / (abs(zeta) + sqrt(zeta * zeta + 1.0)), 0.5 / zeta, abs(zeta) > 1e18);
        c = 1.0 / sqrt(t * t + 1.0);
        sn = t * c;
    }
    work[s.rb + 2u * i] = c;
    work[s.rb + 2u * i + 1u] = sn;
    return sn != 0.0;
}

// Item e of W = W J, V = V J: the two elements of a row (of W, then of V) in a pair's
// columns, pair by pair.
fn rotate(s: Round, e: u32) {
    let len = s.rows + s.k;
    if (e >= s.h * len) { return; }
    let i = e / len;
    let pq = pair(i, s.r, s.mk);
    if (pq.y >= s.k) { return; }
    let sn = work[s.rb + 2u * i + 1u];
    if (sn == 0.0) { return; }
    let c = work[s.rb + 2u * i];
    var row = e % len;
    var base = s.wb;
    var stride = s.rows;
    if (row >= s.rows) {
        row -= s.rows;
        base = s.vb;
        stride = s.k;
    }
    let x = base + pq.x * stride + row;
    let y = base + pq.y * stride + row;
    let wp = work[x];
    let wq = work[y];
    work[x] = c * wp - sn * wq;
    work[y] = sn * wp + c * wq;
}

// Whether singular value x (index j) sorts before y (index i): descending, NaN last, ties
// (and NaNs) by index, as the CPU's stable sort. A total order: the ranks are a
// permutation.
fn before(x: f32, j: u32, y: f32, i: u32) -> bool {
    let xn = is_nan(x);
    let yn = is_nan(y);
    if (xn || yn) { return !xn || (yn && j < i); }
    return x > y || (x == y && j < i);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= word(2u)) { return; }
    let m = word(0u);
    let n = word(1u);
    let wide = m < n; // W holds aᵀ's columns (a's rows)
    let rows = max(m, n);
    let k = min(m, n);
    let mk = k + (k & 1u);
    let h = mk / 2u;
    let rk = rows * k;
    let wb = g * (rk + k * k + mk); // W
    let vb = wb + rk; // V
    let rb = vb + k * k; // the rotations, at the end the singular values
    let ab = word(3u) + g * word(4u);
    let ob = g * (m + k + 1u) * n;
    // 1. W and V = I, the largest magnitude and whether any value is not finite
    var big = 0.0;
    var bad = 0u;
    for (var e = l; e < rk; e += THREADSu) {
        let j = e / rows;
        let r = e % rows;
        let v = a[ab + select(r * n + j, j * n + r, wide)];
        work[wb + e] = v;
        big = max(big, abs(v));
        bad |= u32(!is_finite(v));
    }
    for (var e = l; e < k * k; e += THREADSu) {
        work[vb + e] = select(0.0, 1.0, e / k == e % k);
    }
    red_a[l] = big;
    red_m[l] = bad;
    tree(l, THREADSu, false);
    if (l == 0u) { stop_flag = red_m[0]; }
    // a matrix holding NaN or infinity: no sweeps, NaN throughout
    let poisoned = workgroupUniformLoad(&stop_flag) != 0u;
    // W scaled by a power of two (exactly) to its largest magnitude in [1, 2); the
    // singular values are scaled back at the end
    let ex = exponent(red_a[0]);
    for (var e = l; e < rk; e += THREADSu) { work[wb + e] = ldexp(work[wb + e], -ex); }
    sync();
    // 2. sweeps until no pair was rotated in the last one or MAX_SWEEPS are done. Each
    //    pair's sums go to `lanes` threads (a power of two, at most the rows rounded up
    //    to one), `per` pairs at a time
    let lanes = min(1u << (31u - countLeadingZeros(max(THREADSu / h, 1u))),
                     1u << (32u - countLeadingZeros(rows - 1u)));
    let per = THREADSu / lanes;
    let items = h * (rows + k);
    var sweep = 0u;
    var moved = true; // whether this thread rotated a pair in the last sweep
    loop {
        red_a[l] = 0.0;
        red_m[l] = select(0u, 1u, moved);
        tree(l, THREADSu, false);
        if (l == 0u) {
            stop_flag = select(0u, 1u, red_m[0] == 0u || sweep >= MAX_SWEEPS || poisoned);
        }
        if (workgroupUniformLoad(&stop_flag) != 0u) { break; }
        sweep++;
        moved = false;
        for (var r = 0u; r + 1u < mk; r++) {
            let s = Round(wb, vb, rb, rows, k, mk, h, r);
            for (var i0 = 0u; i0 < h; i0 += per) {
                let i = i0 + l / lanes;
                let p = partials(s, i, l % lanes, lanes);
                red_a[l] = p.x;
                red_b[l] = p.y;
                red_g[l] = p.z;
                tree(l, lanes, true);
                if (l % lanes == 0u && i < h) {
                    moved = rotation(s, i, red_a[l], red_b[l], red_g[l]) || moved;
                }
            }
            sync();
            // ROT_STEP items per iteration (see the kernel's doc)
            for (var e = l; e < items; e += ROT_STEPu * THREADSu) {
                ROTATE_ITEMS
            }
            sync();
        }
    }
    // 3. the singular values: W's column norms (scaled), where the rotations were
    for (var j = l; j < k; j += THREADSu) {
        let wj = wb + j * rows;
        work[rb + j] = sqrt(sums(wj, wj, 0u, 1u, rows).x);
    }
    sync();
    // 4. each singular value and its vectors to its rank among the values, the vectors'
    //    sign fixed: u's component of largest magnitude (the first of equals) positive.
    //    u's column is W's normalized (tall) or V's (wide), v's the other; a zero
    //    singular value keeps W's column zero (every element of the result written once:
    //    the ranks are a permutation)
    for (var j = l; j < k; j += THREADSu) {
        let sj = work[rb + j];
        var rank = 0u;
        for (var i = 0u; i < k; i++) {
            if (before(work[rb + i], i, sj, j)) { rank++; }
        }
        let wj = wb + j * rows;
        let vj = vb + j * k;
        let ub = select(wj, vj, wide);
        let us = select(sj, 1.0, wide); // divides u's column
        let tb = select(vj, wj, wide);
        let ts = select(1.0, sj, wide); // divides vt's row
        var top = 0.0;
        for (var r = 0u; r < m; r++) {
            let v = work[ub + r];
            if (abs(v) > abs(top)) { top = v; }
        }
        let flip = select(1.0, -1.0, top < 0.0);
        for (var r = 0u; r < m; r++) {
            let v = select(flip * work[ub + r] / us, 0.0, us == 0.0);
            out[ob + r * n + rank] = select(v, nan(), poisoned);
        }
        for (var c = 0u; c < n; c++) {
            let v = select(flip * work[tb + c] / ts, 0.0, ts == 0.0);
            out[ob + (m + rank) * n + c] = select(v, nan(), poisoned);
        }
        out[ob + (m + k) * n + rank] = select(ldexp(sj, ex), nan(), poisoned);
    }
    // the zeros right of u (wide) and after the singular values
    let pad = n - k;
    for (var e = l; e < (m + 1u) * pad; e += THREADSu) {
        let r = e / pad;
        out[ob + select(r, m + k, r == m) * n + k + e % pad] = 0.0;
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

/// The signs of the determinants (`[..]`) from packed LU factors `[.., n, n + 1]`.
pub(crate) fn lu_sign(factors: &Tensor, n: usize) -> Result<Tensor> {
    const OP: &str = "lu_sign";
    let batch = &factors.shape()[..factors.ndim() - 2];
    let count = numel(batch);
    let out = GpuStorage::alloc(OP, storage_of(factors).ordinal, count, DType::F32)?;
    if out.len == 0 {
        return Ok(gpu::tensor(out, batch));
    }
    let ctx = out.context();
    check_workgroup(OP, ctx)?;
    let (f_rm, f_offset, f_step) = matrices(OP, factors)?;
    let words: [u32; 4] = [n as u32, count as u32, f_offset, f_step];
    let pipeline = ctx.pipeline("linalg lu_sign", || source(&[LU_SIGN]));
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[out.buffer(OP)?, storage_of(&f_rm).buffer(OP)?],
        grid(count as u32),
    );
    Ok(gpu::tensor(out, batch))
}

/// The packed LU factors of `a` (`[.., n, n]`, any layout), `[.., n, n + 1]` contiguous:
/// the unit lower factor below the diagonal, the upper one on and above it, the row
/// permutation in the last column (`a[p] = L U`, as [`Tensor::lu_factor`] on the CPU).
/// A singular matrix gives factors that make any solution non-finite.
pub(crate) fn lu_factor(a: &Tensor, n: usize) -> Result<Tensor> {
    factor("lu_factor", a, n)
}

/// [`lu_factor`], errors naming `op`.
fn factor(op: &'static str, a: &Tensor, n: usize) -> Result<Tensor> {
    let batch = &a.shape()[..a.ndim() - 2];
    let count = numel(batch);
    let mut shape = batch.to_vec();
    shape.extend([n, n + 1]);
    let out = GpuStorage::alloc(op, storage_of(a).ordinal, count * n * (n + 1), DType::F32)?;
    if out.len == 0 {
        return Ok(gpu::tensor(out, &shape));
    }
    let ctx = out.context();
    check_workgroup(op, ctx)?;
    let (a_rm, a_offset, a_step) = matrices(op, a)?;
    let words: [u32; 4] = [n as u32, count as u32, a_offset, a_step];
    let pipeline = ctx.pipeline("linalg lu factor", || source(&[FACTOR]));
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[out.buffer(op)?, storage_of(&a_rm).buffer(op)?],
        grid(count as u32),
    );
    Ok(gpu::tensor(out, &shape))
}

/// `x` with `a x = b` (or `aᵀ x = b` with `transpose`) from the packed LU factors of `a`
/// (`[batch.., n, n + 1]`, `b` `[batch.., n, k]`, both broadcast to the full batch; factors
/// shared by the whole batch are read in place).
pub(crate) fn lu_solve(
    factors: &Tensor,
    b: &Tensor,
    plan: &Systems,
    transpose: bool,
) -> Result<Tensor> {
    solve_with("lu_solve", factors, b, plan, transpose)
}

/// [`lu_solve`], errors naming `op`.
fn solve_with(
    op: &'static str,
    factors: &Tensor,
    b: &Tensor,
    plan: &Systems,
    transpose: bool,
) -> Result<Tensor> {
    substitutions(op, Solver::Lu, factors, b, plan, transpose)
}

/// `x` with `a @ x = b` for triangular `a` (`[batch.., n, n]`, `b` `[batch.., n, k]`, both
/// broadcast to `plan`'s batch): only the lower triangle (with `lower`) or the upper one is
/// read, diagonal included.
pub(crate) fn solve_triangular(
    a: &Tensor,
    b: &Tensor,
    plan: &Systems,
    lower: bool,
) -> Result<Tensor> {
    substitutions("solve_triangular", Solver::Triangular, a, b, plan, lower)
}

/// The kernels of [`substitutions`].
#[derive(Clone, Copy)]
enum Solver {
    /// [`LU_SOLVE`]: `mat` holds packed LU factors; `flag`: the transpose.
    Lu,
    /// [`TRIANGULAR`]: `mat` holds triangular matrices; `flag`: the lower triangle.
    Triangular,
}

/// The solutions of `plan`'s systems with the matrices (or factors) in `mat`, by `solver`,
/// one workgroup per system.
fn substitutions(
    op: &'static str,
    solver: Solver,
    mat: &Tensor,
    b: &Tensor,
    plan: &Systems,
    flag: bool,
) -> Result<Tensor> {
    let (n, k) = (plan.n, plan.k);
    let count = numel(&plan.batch);
    let out = GpuStorage::alloc(op, storage_of(mat).ordinal, count * n * k, DType::F32)?;
    if out.len == 0 {
        return Ok(gpu::tensor(out, &plan.out_shape()));
    }
    let ctx = out.context();
    check_workgroup(op, ctx)?;
    let (mat, m_offset, m_step) = matrices(op, mat)?;
    let (b, b_offset, b_step) = matrices(op, b)?;
    let words: [u32; 8] = [
        n as u32,
        k as u32,
        count as u32,
        m_offset,
        m_step,
        b_offset,
        b_step,
        flag as u32,
    ];
    let pipeline = match solver {
        Solver::Lu => ctx.pipeline("linalg lu solve", || source(&[SUBSTITUTE, LU_SOLVE])),
        Solver::Triangular => ctx.pipeline("linalg triangular solve", || {
            source(&[SUBSTITUTE, TRIANGULAR])
        }),
    };
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[
            out.buffer(op)?,
            storage_of(&mat).buffer(op)?,
            storage_of(&b).buffer(op)?,
        ],
        grid(count as u32),
    );
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

/// The eigendecompositions of the symmetrized matrices `(a + aᵀ) / 2` of `a` (`[.., n, n]`,
/// any layout), packed as [`Tensor::eigh_packed`], `[.., n + 1, n]` contiguous: the
/// eigenvectors as the columns of rows `0..n`, each with its component of largest magnitude
/// positive, the eigenvalues ascending in row `n`. A matrix holding NaN or infinity gives
/// NaN throughout.
pub(crate) fn eigh_packed(a: &Tensor, n: usize) -> Result<Tensor> {
    const OP: &str = "eigh";
    let batch = &a.shape()[..a.ndim() - 2];
    let count = numel(batch);
    let mut shape = batch.to_vec();
    shape.extend([n + 1, n]);
    let ordinal = storage_of(a).ordinal;
    let out = GpuStorage::alloc(OP, ordinal, count * (n + 1) * n, DType::F32)?;
    if out.len == 0 {
        return Ok(gpu::tensor(out, &shape));
    }
    let ctx = out.context();
    check_workgroup(OP, ctx)?;
    let (a_rm, a_offset, a_step) = matrices(OP, a)?;
    // per matrix the matrix being diagonalized and a word per index (padded to even)
    let work = GpuStorage::alloc(OP, ordinal, count * (n * n + n + n % 2), DType::F32)?;
    let words: [u32; 4] = [n as u32, count as u32, a_offset, a_step];
    let unroll = unroll(n);
    let key = if unroll == 1 {
        "linalg eigh"
    } else {
        "linalg eigh unrolled"
    };
    let pipeline = ctx.pipeline(key, || {
        // the calls of a loop's iteration, written out
        let unrolled = |f: &str| -> String {
            (0..unroll)
                .map(|u| format!("{f}(s, e + {u}u * THREADSu);"))
                .collect::<Vec<_>>()
                .join("\n                ")
        };
        source(&[EXPONENT, ROUND_ROBIN, EIGH])
            .replace("ROTATE_BLOCKS", &unrolled("rotate_block"))
            .replace("ROTATE_V", &unrolled("rotate_v"))
            .replace("UNROLL", &unroll.to_string())
            .replace("THREADS", &THREADS.to_string())
    });
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[
            out.buffer(OP)?,
            storage_of(&a_rm).buffer(OP)?,
            work.buffer(OP)?,
        ],
        grid(count as u32),
    );
    Ok(gpu::tensor(out, &shape))
}

/// The items each thread does per iteration of the loops of a round of [`EIGH`]: one up to
/// n = 64 (a sweep takes at most 1,500 loop iterations there: 30 fit lavapipe's budget),
/// [`UNROLL`] beyond. Not always [`UNROLL`]: lavapipe runs every call of an iteration,
/// masked, where a thread has fewer items left (70,000 2 x 2 matrices took it 36 s with
/// 16 calls, 5 s with one).
fn unroll(n: usize) -> u32 {
    if n <= 64 { 1 } else { UNROLL }
}

/// The reduced QR decompositions of `a` (`[.., m, n]`, any layout), packed as
/// [`Tensor::qr_packed`], `[.., m + k, n]` contiguous (`k = min(m, n)`): q in the first `k`
/// columns of rows `0..m` (zeros after), r in rows `m..m + k` (zeros below its diagonal),
/// r's diagonal non-negative as on the CPU.
pub(crate) fn qr_packed(a: &Tensor, m: usize, n: usize) -> Result<Tensor> {
    const OP: &str = "qr";
    let batch = &a.shape()[..a.ndim() - 2];
    let count = numel(batch);
    let k = m.min(n);
    let mut shape = batch.to_vec();
    shape.extend([m + k, n]);
    let ordinal = storage_of(a).ordinal;
    let out = GpuStorage::alloc(OP, ordinal, count * (m + k) * n, DType::F32)?;
    if out.len == 0 {
        return Ok(gpu::tensor(out, &shape));
    }
    let ctx = out.context();
    check_workgroup(OP, ctx)?;
    let (a_rm, a_offset, a_step) = matrices(OP, a)?;
    // per matrix the matrix being reduced, q and three words per reflector
    let work = GpuStorage::alloc(OP, ordinal, count * (m * n + m * k + 3 * k), DType::F32)?;
    let words: [u32; 5] = [m as u32, n as u32, count as u32, a_offset, a_step];
    let pipeline = ctx.pipeline("linalg qr", || source(&[EXPONENT, QR]));
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[
            out.buffer(OP)?,
            storage_of(&a_rm).buffer(OP)?,
            work.buffer(OP)?,
        ],
        grid(count as u32),
    );
    Ok(gpu::tensor(out, &shape))
}

/// The reduced singular value decompositions of `a` (`[.., m, n]`, any layout), packed as
/// [`Tensor::svd_packed`], `[.., m + k + 1, n]` contiguous (`k = min(m, n)`): u in the
/// first `k` columns of rows `0..m` (zeros after), vt in rows `m..m + k`, the singular
/// values descending in row `m + k` (then zeros), each pair of vectors' sign fixed as on
/// the CPU (u's component of largest magnitude positive). A matrix holding NaN or
/// infinity gives NaN throughout (the zeros stay); a zero singular value a zero vector
/// (u's for a tall matrix, vt's for a wide one) rather than an arbitrary unit one.
pub(crate) fn svd_packed(a: &Tensor, m: usize, n: usize) -> Result<Tensor> {
    const OP: &str = "svd";
    let batch = &a.shape()[..a.ndim() - 2];
    let count = numel(batch);
    let (rows, k) = (m.max(n), m.min(n));
    let mut shape = batch.to_vec();
    shape.extend([m + k + 1, n]);
    let ordinal = storage_of(a).ordinal;
    if k == 0 {
        // nothing to decompose: the packed zeros (a row of them for [0, n])
        return elementwise::full(OP, ordinal, &shape, 0.0, DType::F32);
    }
    let out = GpuStorage::alloc(OP, ordinal, count * (m + k + 1) * n, DType::F32)?;
    if out.len == 0 {
        return Ok(gpu::tensor(out, &shape));
    }
    let ctx = out.context();
    check_workgroup(OP, ctx)?;
    let (a_rm, a_offset, a_step) = matrices(OP, a)?;
    // per matrix W, V and a word per index (padded to even)
    let work = GpuStorage::alloc(
        OP,
        ordinal,
        count * (rows * k + k * k + k + k % 2),
        DType::F32,
    )?;
    let words: [u32; 5] = [m as u32, n as u32, count as u32, a_offset, a_step];
    let unroll = svd_unroll(rows, k);
    let (key, dot) = if unroll == 1 {
        ("linalg svd", 4)
    } else {
        ("linalg svd unrolled", 16)
    };
    let pipeline = ctx.pipeline(key, || {
        let terms = (0..dot)
            .map(|u| format!("acc += term(xb + t + {u}u * lanes, yb + t + {u}u * lanes);"))
            .collect::<Vec<_>>()
            .join("\n        ");
        let items = (0..unroll)
            .map(|u| format!("rotate(s, e + {u}u * THREADSu);"))
            .collect::<Vec<_>>()
            .join("\n                ");
        source(&[EXPONENT, ROUND_ROBIN, SVD])
            .replace("DOT_TERMS", &terms)
            .replace("ROTATE_ITEMS", &items)
            .replace("DOT_STEP", &dot.to_string())
            .replace("ROT_STEP", &unroll.to_string())
            .replace("THREADS", &THREADS.to_string())
    });
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &[
            out.buffer(OP)?,
            storage_of(&a_rm).buffer(OP)?,
            work.buffer(OP)?,
        ],
        grid(count as u32),
    );
    Ok(gpu::tensor(out, &shape))
}

/// The items each thread does per iteration of the rotations' loop of a round of [`SVD`]:
/// one where a sweep takes at most 1,000 iterations of it (up to about 45 x 45), else
/// [`UNROLL`] (as [`unroll`] for [`EIGH`]).
fn svd_unroll(rows: usize, k: usize) -> u32 {
    let h = k.div_ceil(2);
    let per_sweep = (2 * h).saturating_sub(1) * (h * (rows + k)).div_ceil(THREADS as usize);
    if per_sweep <= 1000 { 1 } else { UNROLL }
}
