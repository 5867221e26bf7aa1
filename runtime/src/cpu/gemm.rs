//! Matrix multiplication through the `gemm` crate: packed, cache-blocked, with
//! AVX-512/AVX2/NEON micro-kernels chosen at run time, on rayon's threads above its own
//! work threshold (48 x 48 x 256), or split into row bands per thread (see [`matmul`]).
//!
//! Measured here (AVX2, one thread): gemm is as fast as a direct loop from 2x2 up and
//! much faster from 8x8 (0.15 us against 2.3 us), so every size goes to it.

use gemm::Parallelism;

use super::kernels::MatRef;
use super::math::MathFloat;

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
    // Mid-sized products: split the rows of c into one band per thread and run gemm
    // single-threaded on each. Measured on two cores at 1024: 160 GFLOP/s against 115 with
    // gemm's own rayon split (each band re-packs b: O(k n) against O(m k n / threads)).
    // Large products (2048 and up) keep gemm's split, which was as fast or faster there.
    let threads = rayon::current_num_threads();
    let mnk = m as f64 * n as f64 * k as f64;
    if threads > 1 && mnk >= 2.0 * 1024.0 * 1024.0 * 1024.0 {
        gemm_call(m, n, k, a, b, c, Parallelism::Rayon(0));
    } else if threads > 1 && mnk >= (1 << 21) as f64 && m >= 2 * threads {
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

/// One gemm call; views already checked.
fn gemm_call<T: MathFloat>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    parallelism: Parallelism,
) {
    if m == 0 {
        return;
    }
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
