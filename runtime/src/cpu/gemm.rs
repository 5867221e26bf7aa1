//! Matrix multiplication through the `gemm` crate: packed, cache-blocked, with
//! AVX-512/AVX2/NEON micro-kernels chosen at run time, on rayon's threads above its own
//! work threshold (48 x 48 x 256), or split into row bands per thread (see [`matmul`]).
//!
//! Measured here (AVX2, one thread): gemm is as fast as a direct loop from 2x2 up and
//! much faster from 8x8 (0.15 us against 2.3 us), so every size goes to it, except a
//! diagonal factor (a scaling, no multiply-add at all) and thin products (at most four
//! terms per element, or at most four columns), whose packing costs more than their
//! arithmetic: those are written directly.

use std::borrow::Cow;

use gemm::Parallelism;
use pulp::{Simd, WithSimd};

use super::kernels::MatRef;
use super::math::MathFloat;
use super::par::SharedOut;
use super::simd::dispatch;

/// Checks that every element of the `rows x cols` view is inside `data`.
fn check_view<T>(what: &str, v: &MatRef<'_, T>, rows: usize, cols: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    let reach = |len: usize, stride: isize| (len as isize - 1) * stride;
    let (r, c) = (reach(rows, v.rs), reach(cols, v.cs));
    let lo = v.offset as isize + r.min(0) + c.min(0);
    let hi = v.offset as isize + r.max(0) + c.max(0);
    assert!(
        lo >= 0 && (hi as usize) < v.data.len(),
        "matmul: the {rows}x{cols} view of {what} (offset {}, strides {}, {}) reaches outside its {} elements",
        v.offset,
        v.rs,
        v.cs,
        v.data.len()
    );
}

/// `c = a @ b` on at most `threads` threads (rayon's).
pub(crate) fn matmul<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    threads: usize,
) {
    check_view("a", &a, m, k);
    check_view("b", &b, k, n);
    if m == 0 || n == 0 {
        return;
    }
    if diagonal_product(m, n, k, &a, &b, c) {
        return;
    }
    let mnk = m as f64 * n as f64 * k as f64;
    // (from a thread outside rayon's pool, a split wakes the pool's threads and sleeps
    // until they finish: about 20 us on two cores, so only products of 16 MFLOP and more
    // split there; from inside the pool, where a split is a cheap `join`, from 4)
    let cold = rayon::current_thread_index().is_none();
    let mid = mnk >= (1 << if cold { 23 } else { 21 }) as f64;
    if (1..=FEW).contains(&k) {
        return few_terms(m, n, k, &a, &b, c, threads > 1 && mid);
    }
    if n <= FEW && k >= 32 && m >= 16 && a.cs == 1 {
        return few_columns(n, k, &a, &b, c, threads > 1 && mid);
    }
    // Mid-sized products: split the rows of c into one band per thread and run gemm
    // single-threaded on each. Measured on two cores at 1024: 160 GFLOP/s against 115 with
    // gemm's own rayon split (each band re-packs b: O(k n) against O(m k n / threads)).
    // Large products (2048 and up) keep gemm's split, which was as fast or faster there.
    let large = mnk >= 2.0 * 1024.0 * 1024.0 * 1024.0;
    if b.rs == 1 && b.cs != 1 && a.cs == 1 && m < 64 && n >= 64 && !large {
        return swapped(m, n, k, a, b, c, threads);
    }
    if threads > 1 && large {
        gemm_call(m, n, k, a, b, c, Parallelism::Rayon(0));
    } else if mid
        && !large
        && b.rs == 1
        && b.cs != 1
        && m >= 64
        && (1 << 18..=1 << 24).contains(&(k * n))
    {
        column_bands(m, n, k, a, b, c, threads.min(n));
    } else if threads > 1 && mid && m >= 2 * threads {
        use rayon::prelude::*;
        let band = m.div_ceil(threads);
        c.par_chunks_mut(band * n).enumerate().for_each(|(t, cb)| {
            let rows = cb.len() / n;
            let a_band = MatRef {
                offset: (a.offset as isize + (t * band) as isize * a.rs) as usize,
                ..a
            };
            gemm_call(rows, n, k, a_band, b, cb, Parallelism::None);
        });
    } else {
        gemm_call(m, n, k, a, b, c, Parallelism::None);
    }
}

/// `c += a @ b` into the row-major `c` (`m x n`): gemm reading `c` as it writes it, on
/// rayon's threads from 16 MFLOP (an adjoint accumulating a matmul's gradient over a loop's
/// steps, without a product each).
pub(crate) fn matmul_acc<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
) {
    check_view("a", &a, m, k);
    check_view("b", &b, k, n);
    assert_eq!(c.len(), m * n);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let large = m as f64 * n as f64 * k as f64 >= (1 << 23) as f64;
    let parallelism = if large && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: c has m * n elements, rows n apart
    unsafe { gemm_raw(m, n, k, a, b, c.as_mut_ptr(), n, true, parallelism) }
}

/// A product of few rows whose `b` is column-major (a transposed view: `g @ w^T` in the
/// backward pass of a dense layer or a recurrent step at a small batch) and whose `a` is
/// row-major: gemm would pack all of `b` element by element, so this computes
/// `c^T = b^T a^T` (a row-major `b^T`, the small `a^T` the one gathered) and transposes
/// it into `c`. Measured on one core: [32, 256] @ [256, 256]^T 90 -> 44 us (the same
/// product with a row-major `b`: 38 us).
fn swapped<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    threads: usize,
) {
    let mut ct = crate::pool::buffer(n * m, T::zero());
    matmul(n, m, k, b.t(), a.t(), &mut ct, threads);
    for (i, row) in c.chunks_exact_mut(n).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = ct[j * m + i];
        }
    }
    crate::pool::recycle(ct);
}

/// A mid-sized product whose `b` is column-major (a transposed view, as in the `g @ w^T`
/// of every dense layer's backward pass), in `parts` bands of columns of `c`, one per
/// thread: each copies its band of `b` into a row-major buffer (a tiled transpose) and
/// multiplies by it. gemm's own packing of a column-major `b` gathers element by element,
/// and a row band per thread packs all of `b` in each band. Measured on two cores (three
/// interleaved runs each): [256, 512] @ [512, 512]^T 1.10-1.13 -> 0.71 ms (with a
/// row-major `b`: 0.65), 512^3 1.72-1.74 -> 1.31-1.35 ms, 1024^3 12.7-13.1 -> 10.7-10.9
/// ms. Below 2^18 elements of `b` the copy costs about what it saves (384^3: 0.55 ms
/// either way; 0.70 when it was taken), hence the threshold; above 2^24 (64 MiB of f32)
/// the copy would be a large temporary for a product with few rows, so gemm packs.
fn column_bands<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    parts: usize,
) {
    use rayon::prelude::*;
    // the bands write disjoint columns of `c`
    let out = SharedOut(c.as_mut_ptr());
    let band = n.div_ceil(parts);
    (0..n.div_ceil(band)).into_par_iter().for_each(|t| {
        let j0 = t * band;
        let cols = band.min(n - j0);
        let layout = crate::shape::Layout {
            shape: crate::shape::Dims::from_slice(&[k, cols]),
            strides: crate::shape::Steps::from_slice(&[b.rs, b.cs]),
            offset: (b.offset as isize + j0 as isize * b.cs) as usize,
        };
        let rows = crate::storage::strided_copy(b.data, &layout);
        let b_band = MatRef {
            data: &rows,
            offset: 0,
            rs: cols as isize,
            cs: 1,
        };
        let out = &out; // the whole wrapper, not its pointer field
        // SAFETY: c has m * n elements (checked by the caller); this band writes columns
        // j0..j0 + cols of its rows, which no other band touches
        unsafe {
            gemm_raw(
                m,
                cols,
                k,
                a,
                b_band,
                out.0.add(j0),
                n,
                false,
                Parallelism::None,
            )
        };
        crate::pool::recycle(rows);
    });
}

/// Element (i, j) of a checked view.
#[inline(always)]
fn at<T: Copy>(v: &MatRef<'_, T>, i: usize, j: usize) -> T {
    v.data[(v.offset as isize + i as isize * v.rs + j as isize * v.cs) as usize]
}

/// Row `i` of a checked view as a slice, when its elements are adjacent.
#[inline(always)]
fn row<'a, T>(v: &MatRef<'a, T>, i: usize, cols: usize) -> Option<&'a [T]> {
    let start = (v.offset as isize + i as isize * v.rs) as usize;
    (v.cs == 1).then(|| &v.data[start..start + cols])
}

/// Whether the `r x r` view is diagonal. A dense matrix fails at its first off-diagonal
/// element, so asking costs nothing there.
fn is_diagonal<T: MathFloat>(v: &MatRef<'_, T>, r: usize) -> bool {
    // branch-free within a chunk, so the scan of a diagonal matrix is vectorised
    let zeros = |xs: &[T]| {
        xs.chunks(64)
            .all(|c| !c.iter().fold(false, |nz, x| nz | (*x != T::zero())))
    };
    (0..r).all(|i| match row(v, i, r) {
        Some(row) => zeros(&row[..i]) && zeros(&row[i + 1..]),
        None => (0..r).all(|j| i == j || at(v, i, j) == T::zero()),
    })
}

fn all_finite<T: MathFloat>(v: &MatRef<'_, T>, rows: usize, cols: usize) -> bool {
    (0..rows).all(|i| match row(v, i, cols) {
        Some(r) => r.iter().all(|x| x.is_finite()),
        None => (0..cols).all(|j| at(v, i, j).is_finite()),
    })
}

/// Products with a square diagonal factor scale the other factor's rows (`a` diagonal) or
/// columns (`b` diagonal) instead of multiplying: O(n^2) instead of O(n^3). Forward-mode
/// Jacobians and Hessians start from the identity basis, and elementwise functions keep it
/// diagonal, so the first product of a linear map with it is one of these. Taken only when
/// the other factor is finite, where the result is the same as gemm's (every other term of
/// each sum is a zero); an inf or NaN there goes to gemm, whose `0 * inf` gives NaN. Small
/// products, and products whose other factor is narrow, skip the check.
fn diagonal_product<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut [T],
) -> bool {
    // Scanning a diagonal factor reads k^2 elements, about as long as gemm takes for a
    // product whose other side is under a few dozen wide: only wider ones are checked.
    const MIN_SIDE: usize = 16;
    const MIN_OTHER: usize = 32;
    if m == k && k >= MIN_SIDE && n >= MIN_OTHER && is_diagonal(a, k) && all_finite(b, k, n) {
        for (i, out) in c.chunks_exact_mut(n).enumerate() {
            let d = at(a, i, i);
            match row(b, i, n) {
                Some(r) => out.iter_mut().zip(r).for_each(|(x, &y)| *x = d * y),
                None => (0..n).for_each(|j| out[j] = d * at(b, i, j)),
            }
        }
        return true;
    }
    if n == k && k >= MIN_SIDE && m >= MIN_OTHER && is_diagonal(b, k) && all_finite(a, m, k) {
        let d: Vec<T> = (0..k).map(|j| at(b, j, j)).collect();
        for (i, out) in c.chunks_exact_mut(n).enumerate() {
            match row(a, i, k) {
                Some(r) => out
                    .iter_mut()
                    .zip(r.iter().zip(&d))
                    .for_each(|(x, (&y, &e))| *x = y * e),
                None => (0..n).for_each(|j| out[j] = at(a, i, j) * d[j]),
            }
        }
        return true;
    }
    false
}

/// Terms at most per element of a product computed by [`few_terms`], columns at most of one
/// computed by [`few_columns`].
const FEW: usize = 4;

/// `dispatch` of `$kernel` wrapped in `$wrap` with the width `$w` (1 to [`FEW`]) as the
/// wrapper's constant, so that its loops over the width unroll.
macro_rules! dispatch_width {
    ($w:expr, $wrap:ident, $kernel:expr) => {
        match $w {
            1 => dispatch($wrap::<_, 1>($kernel)),
            2 => dispatch($wrap::<_, 2>($kernel)),
            3 => dispatch($wrap::<_, 3>($kernel)),
            _ => dispatch($wrap::<_, FEW>($kernel)),
        }
    };
}

/// Rows of `c` per task where a thin product splits over threads.
const THIN_ROWS: usize = 256;

/// `f(first_row, rows_of_c)` over bands of whole rows of `c` (`n` wide), on rayon's threads
/// with `split` (the product large enough, by the rule [`matmul`] splits gemm's by).
fn thin_bands<T: Send>(c: &mut [T], n: usize, split: bool, f: impl Fn(usize, &mut [T]) + Sync) {
    use rayon::prelude::*;
    if split && c.len() > THIN_ROWS * n {
        c.par_chunks_mut(THIN_ROWS * n)
            .enumerate()
            .for_each(|(t, band)| f(t * THIN_ROWS, band));
    } else {
        f(0, c);
    }
}

/// `c = a b` with at most [`FEW`] terms per element (`k`): row `i` of `c` is the rows of
/// `b` scaled by `a[i, t]` and summed, in one SIMD pass (a product, then a fused
/// multiply-add per further term: gemm's roundings, which start each sum from zero and
/// fuse each step). gemm pays about a microsecond to set up each such product and packs
/// both sides: a batch of 256 products of 128 x 10 with k = 1 (per-example gradients of a
/// dense layer) took 131 us through gemm and 69 us here, one of 64 x 128 170 us and 113 us
/// (two threads); [3072, 3] @ [3, 64] (a Jacobian's basis through a first layer) 24 us
/// and 20 us (one thread, 2026-12-07).
fn few_terms<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut [T],
    split: bool,
) {
    let (a_rows, b_rows) = (row_major(a, m, k), row_major(b, k, n));
    thin_bands(c, n, split, |first, band| {
        let rows = band.len() / n;
        let kernel = FewTerms {
            a: &a_rows[first * k..(first + rows) * k],
            b: &b_rows,
            c: band,
        };
        dispatch_width!(k, Terms, kernel)
    });
}

/// The `rows x cols` view as a dense row-major slice: in place where it is one (a single
/// row or column is, whatever its other stride), else gathered.
fn row_major<'a, T: Copy>(v: &MatRef<'a, T>, rows: usize, cols: usize) -> Cow<'a, [T]> {
    let along = cols == 1 || v.cs == 1;
    let across = rows == 1 || v.rs == cols as isize || (cols == 1 && v.rs == 1);
    if along && across {
        v.data[v.offset..v.offset + rows * cols].into()
    } else {
        (0..rows)
            .flat_map(|i| (0..cols).map(move |j| (i, j)))
            .map(|(i, j)| at(v, i, j))
            .collect::<Vec<_>>()
            .into()
    }
}

struct FewTerms<'a, T> {
    /// `m x k`, row-major.
    a: &'a [T],
    /// `k x n`, row-major.
    b: &'a [T],
    c: &'a mut [T],
}

/// [`FewTerms`] with its `K` terms known to the compiler (the loop over them unrolled).
struct Terms<'a, T, const K: usize>(FewTerms<'a, T>);

impl<T: MathFloat, const K: usize> WithSimd for Terms<'_, T, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let FewTerms { a, b, c } = self.0;
        let n = b.len() / K;
        let lanes = T::lanes::<S>();
        let full = n / lanes;
        let zero = T::splat(s, T::zero());
        // each row of `b` as whole vectors and its zero-padded tail
        let mut bv: [&[T::V<S>]; K] = [&[]; K];
        let mut bt = [zero; K];
        for t in 0..K {
            let (v, tail) = T::as_simd::<S>(&b[t * n..(t + 1) * n]);
            (bv[t], bt[t]) = (&v[..full], T::partial_load(s, tail));
        }
        let rows = a.as_chunks::<K>().0;
        for (i, ai) in rows.iter().enumerate() {
            let w = ai.map(|x| T::splat(s, x));
            let row = i * n;
            let (ov, _) = T::as_mut_simd::<S>(&mut c[row..row + full * lanes]);
            for (q, o) in ov.iter_mut().enumerate() {
                *o = terms::<S, T, K>(s, &w, |t| bv[t][q]);
            }
            if full * lanes == n {
                continue;
            }
            // a row's partial last vector: stored whole where it runs into the next row
            // (which is written after it: the extra lanes are overwritten), masked on the
            // last row. Masked stores cost a call each; short rows have nothing else.
            let v = terms::<S, T, K>(s, &w, |t| bt[t]);
            let at = row + full * lanes;
            if at + lanes <= c.len() && i + 1 < rows.len() {
                T::as_mut_simd::<S>(&mut c[at..at + lanes]).0[0] = v;
            } else {
                T::partial_store(s, &mut c[at..row + n], v);
            }
        }
    }
}

/// `w[0] x(0) + w[1] x(1) + ...`: a product, then fused multiply-adds.
#[inline(always)]
fn terms<S: Simd, T: MathFloat, const K: usize>(
    s: S,
    w: &[T::V<S>; K],
    x: impl Fn(usize) -> T::V<S>,
) -> T::V<S> {
    let mut acc = T::vmul(s, w[0], x(0));
    for (t, &wt) in w.iter().enumerate().skip(1) {
        acc = T::vfma(s, wt, x(t), acc);
    }
    acc
}

/// `c = a b` with at most [`FEW`] columns (`n`) and rows of `a` adjacent in memory: each
/// element one dot product of a row of `a` with a column of `b` (read as a row),
/// summed lane-wise in vectors, then across the lanes. gemm packs `a` whole for such a
/// product and fills its kernels' 6-column tiles with zeros: [3072, 64] @ [64, 3] (a
/// Jacobian's pass back through a first layer) 72-75 us through gemm, 30-33 here (one
/// thread, 2026-12-07).
fn few_columns<T: MathFloat>(
    n: usize,
    k: usize,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut [T],
    split: bool,
) {
    // `b`'s columns as rows: in place where `b` is a transposed view (`g @ w^T`)
    let cols = row_major(&b.t(), n, k);
    thin_bands(c, n, split, |first, band| {
        let kernel = FewColumns {
            a,
            first,
            cols: &cols,
            k,
            c: band,
        };
        dispatch_width!(n, Dots, kernel)
    });
}

struct FewColumns<'a, 'b, T> {
    a: &'b MatRef<'a, T>,
    /// The first row of `a` of this band.
    first: usize,
    /// `b`'s columns, each `k` long, one after another.
    cols: &'b [T],
    k: usize,
    c: &'b mut [T],
}

/// [`FewColumns`] with its width `N` known to the compiler (its sums in registers).
struct Dots<'a, 'b, T, const N: usize>(FewColumns<'a, 'b, T>);

impl<T: MathFloat, const N: usize> WithSimd for Dots<'_, '_, T, N> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let FewColumns {
            a,
            first,
            cols,
            k,
            c,
        } = self.0;
        let zero = T::splat(s, T::zero());
        let mut bv: [&[T::V<S>]; N] = [&[]; N];
        let mut bt = [zero; N];
        for j in 0..N {
            let (v, tail) = T::as_simd::<S>(&cols[j * k..(j + 1) * k]);
            (bv[j], bt[j]) = (v, T::partial_load(s, tail));
        }
        for (r, out) in c.chunks_exact_mut(N).enumerate() {
            let ar = row(a, first + r, k).expect("rows of `a` adjacent");
            let (av, tail) = T::as_simd::<S>(ar);
            let mut acc = [zero; N];
            for (q, &x) in av.iter().enumerate() {
                for j in 0..N {
                    acc[j] = T::vfma(s, x, bv[j][q], acc[j]);
                }
            }
            if !tail.is_empty() {
                let x = T::partial_load(s, tail);
                for j in 0..N {
                    acc[j] = T::vfma(s, x, bt[j], acc[j]);
                }
            }
            for j in 0..N {
                out[j] = T::reduce_sum(s, acc[j]);
            }
        }
    }
}

/// One gemm call into the row-major `c` (`m x n`); views already checked.
fn gemm_call<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    parallelism: Parallelism,
) {
    assert_eq!(c.len(), m * n);
    // SAFETY: c has m * n elements, rows n apart
    unsafe { gemm_raw(m, n, k, a, b, c.as_mut_ptr(), n, false, parallelism) }
}

/// One gemm call into `m x n` elements at `c`, rows `ldc` apart (added to them with
/// `accumulate`); views already checked.
///
/// # Safety
///
/// `c.add(i * ldc + j)` must be valid for writes for every `i < m`, `j < n`, and not
/// read or written by anyone else during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: *mut T,
    ldc: usize,
    accumulate: bool,
    parallelism: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the views were checked to lie inside their slices; c is the caller's
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr().add(a.offset),
            a.cs,
            a.rs,
            b.data.as_ptr().add(b.offset),
            b.cs,
            b.rs,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}
