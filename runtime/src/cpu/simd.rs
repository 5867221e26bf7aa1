//! The bridge to `pulp`: one trait, [`SimdFloat`], that names the vector, mask and bit
//! types of `f32` or `f64` under any pulp instruction-set token, so that a kernel is
//! written once, generic over the element type `T` and the token `S`, and
//! [`dispatch`] picks AVX-512, AVX2+FMA, NEON or scalar code at run time.
//!
//! Everything here is `#[inline(always)]`: the operations must inline into the
//! `#[target_feature]` function that `pulp` generates for each instruction set.

use pulp::bytemuck::cast;
use pulp::{Simd, WithSimd};
use std::sync::OnceLock;

use crate::element::Float;

/// Runs `op` with the best instruction set of this machine (detected once).
#[inline(always)]
pub(crate) fn dispatch<Op: WithSimd>(op: Op) -> Op::Output {
    static ARCH: OnceLock<pulp::Arch> = OnceLock::new();
    ARCH.get_or_init(pulp::Arch::new).dispatch(op)
}

/// `f32` or `f64` as seen by a SIMD kernel: its vector (`V`), mask (`M`) and raw-bits
/// (`U`) types under the pulp token `S`, and the operations the kernels use.
///
/// Comparisons are IEEE (false when either side is NaN). `min_raw`/`max_raw` have the
/// instruction set's NaN behaviour and must only see non-NaN values where that matters.
pub(crate) trait SimdFloat: Float {
    /// A vector of `Self`.
    type V<S: Simd>: Copy;
    /// A lane mask.
    type M<S: Simd>: Copy;
    /// A vector of the unsigned integers of `Self`'s width (the raw bits).
    type U<S: Simd>: Copy;

    /// Lanes per vector.
    fn lanes<S: Simd>() -> usize;
    fn splat<S: Simd>(s: S, v: Self) -> Self::V<S>;
    fn splat_u<S: Simd>(s: S, v: u64) -> Self::U<S>;
    fn as_simd<S: Simd>(x: &[Self]) -> (&[Self::V<S>], &[Self]);
    fn as_mut_simd<S: Simd>(x: &mut [Self]) -> (&mut [Self::V<S>], &mut [Self]);
    /// Loads `x.len() < lanes` values; the other lanes are zero.
    fn partial_load<S: Simd>(s: S, x: &[Self]) -> Self::V<S>;
    /// Stores the first `x.len() < lanes` lanes.
    fn partial_store<S: Simd>(s: S, x: &mut [Self], v: Self::V<S>);

    fn vadd<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    fn vsub<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    fn vmul<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    fn vdiv<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// Fused `a * b + c` (one rounding).
    fn vfma<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    fn vsqrt<S: Simd>(s: S, a: Self::V<S>) -> Self::V<S>;
    fn vmin_raw<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    fn vmax_raw<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    fn vabs<S: Simd>(s: S, a: Self::V<S>) -> Self::V<S>;
    fn vneg<S: Simd>(s: S, a: Self::V<S>) -> Self::V<S>;
    /// Bitwise or of the representations (to apply a sign bit).
    fn or_bits<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// Bitwise xor of the representations.
    fn xor_bits<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;

    fn vlt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S>;
    fn vle<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S>;
    fn vgt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S>;
    fn vge<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S>;
    fn veq<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S>;
    /// `if m { a } else { b }` per lane.
    fn select<S: Simd>(s: S, m: Self::M<S>, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    fn mask_and<S: Simd>(s: S, a: Self::M<S>, b: Self::M<S>) -> Self::M<S>;
    fn mask_or<S: Simd>(s: S, a: Self::M<S>, b: Self::M<S>) -> Self::M<S>;
    fn mask_not<S: Simd>(s: S, a: Self::M<S>) -> Self::M<S>;
    /// Whether any lane is set.
    fn any<S: Simd>(s: S, m: Self::M<S>) -> bool;

    fn reduce_sum<S: Simd>(s: S, a: Self::V<S>) -> Self;
    fn reduce_max_raw<S: Simd>(s: S, a: Self::V<S>) -> Self;
    fn reduce_min_raw<S: Simd>(s: S, a: Self::V<S>) -> Self;

    fn vto_bits<S: Simd>(s: S, a: Self::V<S>) -> Self::U<S>;
    fn and_u<S: Simd>(s: S, a: Self::U<S>, b: Self::U<S>) -> Self::U<S>;
    fn eq_u<S: Simd>(s: S, a: Self::U<S>, b: Self::U<S>) -> Self::M<S>;

    /// `2^n` for integer-valued `n` in the normal exponent range
    /// (`-126..=127` for f32, `-1022..=1023` for f64); other lanes give garbage.
    fn pow2i<S: Simd>(s: S, n: Self::V<S>) -> Self::V<S>;
    /// For positive normal `x`: `(m, k)` with `x = m * 2^k`, `m` in `[sqrt(1/2), sqrt(2))`
    /// and `k` an integer-valued float.
    fn split_exponent<S: Simd>(s: S, x: Self::V<S>) -> (Self::V<S>, Self::V<S>);
}

// The two impls differ only in names; the bit tricks (pow2i, split_exponent) are
// written out per type below the macro.
macro_rules! simd_float_common {
    ($t:ty, $v:ident, $m:ident, $u:ident, $uint:ty, $lanes:ident,
     $splat:ident, $splat_u:ident, $as_simd:ident, $as_mut_simd:ident,
     $pload:ident, $pstore:ident, $add:ident, $sub:ident, $mul:ident, $div:ident,
     $fma:ident, $sqrt:ident, $min:ident, $max:ident, $abs:ident, $neg:ident,
     $or:ident, $xor:ident, $lt:ident, $le:ident, $gt:ident, $ge:ident, $eq:ident,
     $select:ident, $mand:ident, $mor:ident, $mnot:ident, $first:ident,
     $rsum:ident, $rmax:ident, $rmin:ident, $tobits:ident,
     $and_u:ident, $eq_u:ident) => {
        type V<S: Simd> = S::$v;
        type M<S: Simd> = S::$m;
        type U<S: Simd> = S::$u;

        #[inline(always)]
        fn lanes<S: Simd>() -> usize {
            S::$lanes
        }
        #[inline(always)]
        fn splat<S: Simd>(s: S, v: $t) -> S::$v {
            s.$splat(v)
        }
        #[inline(always)]
        fn splat_u<S: Simd>(s: S, v: u64) -> S::$u {
            s.$splat_u(v as $uint)
        }
        #[inline(always)]
        fn as_simd<S: Simd>(x: &[$t]) -> (&[S::$v], &[$t]) {
            S::$as_simd(x)
        }
        #[inline(always)]
        fn as_mut_simd<S: Simd>(x: &mut [$t]) -> (&mut [S::$v], &mut [$t]) {
            S::$as_mut_simd(x)
        }
        #[inline(always)]
        fn partial_load<S: Simd>(s: S, x: &[$t]) -> S::$v {
            s.$pload(x)
        }
        #[inline(always)]
        fn partial_store<S: Simd>(s: S, x: &mut [$t], v: S::$v) {
            s.$pstore(x, v)
        }
        #[inline(always)]
        fn vadd<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
            s.$add(a, b)
        }
        #[inline(always)]
        fn vsub<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
            s.$sub(a, b)
        }
        #[inline(always)]
        fn vmul<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
            s.$mul(a, b)
        }
        #[inline(always)]
        fn vdiv<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
            s.$div(a, b)
        }
        #[inline(always)]
        fn vfma<S: Simd>(s: S, a: S::$v, b: S::$v, c: S::$v) -> S::$v {
            s.$fma(a, b, c)
        }
        #[inline(always)]
        fn vsqrt<S: Simd>(s: S, a: S::$v) -> S::$v {
            s.$sqrt(a)
        }
        #[inline(always)]
        fn vmin_raw<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
            s.$min(a, b)
        }
        #[inline(always)]
        fn vmax_raw<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
            s.$max(a, b)
        }
        #[inline(always)]
        fn vabs<S: Simd>(s: S, a: S::$v) -> S::$v {
            s.$abs(a)
        }
        #[inline(always)]
        fn vneg<S: Simd>(s: S, a: S::$v) -> S::$v {
            s.$neg(a)
        }
        #[inline(always)]
        fn or_bits<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
            s.$or(a, b)
        }
        #[inline(always)]
        fn xor_bits<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
            s.$xor(a, b)
        }
        #[inline(always)]
        fn vlt<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$m {
            s.$lt(a, b)
        }
        #[inline(always)]
        fn vle<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$m {
            s.$le(a, b)
        }
        #[inline(always)]
        fn vgt<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$m {
            s.$gt(a, b)
        }
        #[inline(always)]
        fn vge<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$m {
            s.$ge(a, b)
        }
        #[inline(always)]
        fn veq<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$m {
            s.$eq(a, b)
        }
        #[inline(always)]
        fn select<S: Simd>(s: S, m: S::$m, a: S::$v, b: S::$v) -> S::$v {
            s.$select(m, a, b)
        }
        #[inline(always)]
        fn mask_and<S: Simd>(s: S, a: S::$m, b: S::$m) -> S::$m {
            s.$mand(a, b)
        }
        #[inline(always)]
        fn mask_or<S: Simd>(s: S, a: S::$m, b: S::$m) -> S::$m {
            s.$mor(a, b)
        }
        #[inline(always)]
        fn mask_not<S: Simd>(s: S, a: S::$m) -> S::$m {
            s.$mnot(a)
        }
        #[inline(always)]
        fn any<S: Simd>(s: S, m: S::$m) -> bool {
            s.$first(m) < S::$lanes
        }
        #[inline(always)]
        fn reduce_sum<S: Simd>(s: S, a: S::$v) -> $t {
            s.$rsum(a)
        }
        #[inline(always)]
        fn reduce_max_raw<S: Simd>(s: S, a: S::$v) -> $t {
            s.$rmax(a)
        }
        #[inline(always)]
        fn reduce_min_raw<S: Simd>(s: S, a: S::$v) -> $t {
            s.$rmin(a)
        }
        #[inline(always)]
        fn vto_bits<S: Simd>(s: S, a: S::$v) -> S::$u {
            s.$tobits(a)
        }
        #[inline(always)]
        fn and_u<S: Simd>(s: S, a: S::$u, b: S::$u) -> S::$u {
            s.$and_u(a, b)
        }
        #[inline(always)]
        fn eq_u<S: Simd>(s: S, a: S::$u, b: S::$u) -> S::$m {
            s.$eq_u(a, b)
        }
    };
}

impl SimdFloat for f32 {
    simd_float_common!(
        f32,
        f32s,
        m32s,
        u32s,
        u32,
        F32_LANES,
        splat_f32s,
        splat_u32s,
        as_simd_f32s,
        as_mut_simd_f32s,
        partial_load_f32s,
        partial_store_f32s,
        add_f32s,
        sub_f32s,
        mul_f32s,
        div_f32s,
        mul_add_f32s,
        sqrt_f32s,
        min_f32s,
        max_f32s,
        abs_f32s,
        neg_f32s,
        or_f32s,
        xor_f32s,
        less_than_f32s,
        less_than_or_equal_f32s,
        greater_than_f32s,
        greater_than_or_equal_f32s,
        equal_f32s,
        select_f32s,
        and_m32s,
        or_m32s,
        not_m32s,
        first_true_m32s,
        reduce_sum_f32s,
        reduce_max_f32s,
        reduce_min_f32s,
        transmute_u32s_f32s,
        and_u32s,
        equal_u32s
    );

    #[inline(always)]
    fn pow2i<S: Simd>(s: S, n: S::f32s) -> S::f32s {
        // n + 2^23 + 127 holds n + 127 in its low mantissa bits; shifting them into the
        // exponent field drops everything above.
        let t = s.add_f32s(n, s.splat_f32s(8_388_608.0 + 127.0));
        let bits = s.wrapping_dyn_shl_u32s(s.transmute_u32s_f32s(t), s.splat_u32s(23));
        s.transmute_f32s_u32s(bits)
    }

    #[inline(always)]
    fn split_exponent<S: Simd>(s: S, x: S::f32s) -> (S::f32s, S::f32s) {
        // musl's logf: bias the bits so that the mantissa lands in [sqrt(1/2), sqrt(2)).
        const SQRT_HALF_BITS: u32 = 0x3f35_04f3;
        let ix = s.add_u32s(
            s.transmute_u32s_f32s(x),
            s.splat_u32s(0x3f80_0000 - SQRT_HALF_BITS),
        );
        let e = s.wrapping_dyn_shr_u32s(ix, s.splat_u32s(23));
        // e (0..=255) into the mantissa of 2^23 gives 2^23 + e exactly.
        let e = s.transmute_f32s_u32s(s.or_u32s(e, s.splat_u32s(0x4b00_0000)));
        let k = s.sub_f32s(e, s.splat_f32s(8_388_608.0 + 127.0));
        let m = s.add_u32s(
            s.and_u32s(ix, s.splat_u32s(0x007f_ffff)),
            s.splat_u32s(SQRT_HALF_BITS),
        );
        (s.transmute_f32s_u32s(m), k)
    }
}

impl SimdFloat for f64 {
    simd_float_common!(
        f64,
        f64s,
        m64s,
        u64s,
        u64,
        F64_LANES,
        splat_f64s,
        splat_u64s,
        as_simd_f64s,
        as_mut_simd_f64s,
        partial_load_f64s,
        partial_store_f64s,
        add_f64s,
        sub_f64s,
        mul_f64s,
        div_f64s,
        mul_add_f64s,
        sqrt_f64s,
        min_f64s,
        max_f64s,
        abs_f64s,
        neg_f64s,
        or_f64s,
        xor_f64s,
        less_than_f64s,
        less_than_or_equal_f64s,
        greater_than_f64s,
        greater_than_or_equal_f64s,
        equal_f64s,
        select_f64s,
        and_m64s,
        or_m64s,
        not_m64s,
        first_true_m64s,
        reduce_sum_f64s,
        reduce_max_f64s,
        reduce_min_f64s,
        transmute_u64s_f64s,
        and_u64s,
        equal_u64s
    );

    #[inline(always)]
    fn pow2i<S: Simd>(s: S, n: S::f64s) -> S::f64s {
        if size_of::<S::f64s>() == size_of::<f64>() {
            // one lane: plain integer code
            let n: f64 = cast(n);
            return cast(f64::from_bits(((n as i64 + 1023) as u64) << 52));
        }
        // pulp has no 64-bit shifts, so work on the 32-bit halves: in 2^84 + (n + 1023) 2^64
        // (exact) the mantissa's bit 32 is worth 2^64, so n + 1023 sits in the low bits of
        // the high word and the low word is 0; shifting each half left by 20 moves it into
        // the exponent field and drops the rest.
        let t = s.mul_add_f64s(
            s.add_f64s(n, s.splat_f64s(1023.0)),
            s.splat_f64s(18_446_744_073_709_551_616.0), // 2^64
            s.splat_f64s(19_342_813_113_834_067_795_298_304.0), // 2^84
        );
        let halves: S::u32s = cast(t);
        let shifted = s.wrapping_dyn_shl_u32s(halves, s.splat_u32s(20));
        cast(shifted)
    }

    #[inline(always)]
    fn split_exponent<S: Simd>(s: S, x: S::f64s) -> (S::f64s, S::f64s) {
        const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_667f_3bcd;
        let ix = s.add_u64s(
            s.transmute_u64s_f64s(x),
            s.splat_u64s(0x3ff0_0000_0000_0000 - SQRT_HALF_BITS),
        );
        let m = s.add_u64s(
            s.and_u64s(ix, s.splat_u64s(0x000f_ffff_ffff_ffff)),
            s.splat_u64s(SQRT_HALF_BITS),
        );
        let m = s.transmute_f64s_u64s(m);
        if size_of::<S::f64s>() == size_of::<f64>() {
            let ix: u64 = cast(ix);
            let k = (ix >> 52) as f64 - 1023.0;
            return (m, cast(k));
        }
        // the biased exponent e is the high word >> 20; keep it in the high word, clear the
        // low one, and read it as the mantissa of 2^84: 2^84 + e 2^64.
        let halves: S::u32s = cast(ix);
        let e: S::u64s = cast(s.wrapping_dyn_shr_u32s(halves, s.splat_u32s(20)));
        let e = s.and_u64s(e, s.splat_u64s(0xffff_ffff_0000_0000));
        let e = s.or_u64s(e, s.splat_u64s(0x4530_0000_0000_0000));
        let e = s.transmute_f64s_u64s(e);
        let k = s.mul_add_f64s(
            e,
            s.splat_f64s(1.0 / 18_446_744_073_709_551_616.0), // 2^-64
            s.splat_f64s(-(1_048_576.0 + 1023.0)),            // -(2^20 + 1023)
        );
        (m, k)
    }
}
