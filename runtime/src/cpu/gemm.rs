//! Matrix multiplication: the `gemm` crate (packed, cache-blocked, AVX-512/AVX2/NEON
//! micro-kernels chosen at run time, rayon-parallel) for all but tiny products, which
//! a direct loop does faster than gemm can set up.

use gemm::Parallelism;

use super::kernels::{MatRef, PAR_THRESHOLD};
use super::math::MathFloat;

/// `m * n * k` at or below which the direct loop is used.
const DIRECT_MAX: usize = 4096;
/// `m * n * k` from which gemm runs on rayon's threads.
const GEMM_PAR_MIN: usize = 32 * PAR_THRESHOLD;

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

pub(crate) fn matmul<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
) {
    check_view("a", &a, m, k);
    check_view("b", &b, k, n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(T::zero());
        return;
    }
    let work = m * n * k;
    if work <= DIRECT_MAX {
        return direct(n, k, a, b, c);
    }
    let parallelism = if work >= GEMM_PAR_MIN && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the views were checked to lie inside their slices and c has m * n
    // elements; c is row-major (row stride n, column stride 1).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr().add(a.offset),
            a.cs,
            a.rs,
            b.data.as_ptr().add(b.offset),
            b.cs,
            b.rs,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `c = a @ b` by a plain loop, rows of `b` streamed into rows of `c`.
fn direct<T: MathFloat>(n: usize, k: usize, a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T]) {
    let at = |v: &MatRef<'_, T>, r: usize, col: usize| {
        v.data[(v.offset as isize + r as isize * v.rs + col as isize * v.cs) as usize]
    };
    for (i, row) in c.chunks_exact_mut(n).enumerate() {
        row.fill(T::zero());
        for p in 0..k {
            let aip = at(&a, i, p);
            for (j, cij) in row.iter_mut().enumerate() {
                *cij = aip.mul_add(at(&b, p, j), *cij);
            }
        }
    }
}
