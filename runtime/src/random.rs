//! Counter-based random numbers in JAX's manner: an explicit, splittable [`Key`] instead
//! of hidden global state.
//!
//! The generator is Threefry-2x32 (20 rounds, as JAX), used the way JAX uses it with
//! `jax_threefry_partitionable` (its default): element `i` of a draw is the hash of
//! the counter `i` under the key, and `split` hashes the counters `0..n`. The same key
//! gives the same numbers on every run and machine (the transcendental functions come
//! from the pure-Rust `libm`, not the platform's), and a draw can be computed in
//! parallel without changing it.
//!
//! ```
//! use ferrax_runtime::prelude::*;
//!
//! let key = Key::new(42);
//! let (k1, k2) = key.split();
//! let w = Tensor::normal(k1, &[3, 2], DType::F32);
//! let b = Tensor::uniform(k2, &[2], -1.0, 1.0, DType::F32);
//! assert_eq!(w.to_vec::<f32>(), Tensor::normal(k1, &[3, 2], DType::F32).to_vec::<f32>());
//! assert!(b.to_vec::<f32>().iter().all(|&v| (-1.0..1.0).contains(&v)));
//! ```

use rayon::prelude::*;

use crate::cpu::kernels::PAR_THRESHOLD;
use crate::element::DType;
use crate::error::{Error, Result, unwrap};
use crate::pool;
use crate::shape::numel;
use crate::tensor::Tensor;

/// The Threefry-2x32 block function with 20 rounds: hashes the counter pair `x` under
/// the key pair `key`.
pub fn threefry2x32(key: [u32; 2], x: [u32; 2]) -> [u32; 2] {
    let (mut x0, mut x1) = ([x[0]], [x[1]]);
    threefry_lanes(key, &mut x0, &mut x1);
    [x0[0], x1[0]]
}

/// [`threefry2x32`] on `L` counter pairs at once, in place, written over arrays so that
/// the compiler turns each step into vector instructions.
fn threefry_lanes<const L: usize>(key: [u32; 2], x0: &mut [u32; L], x1: &mut [u32; L]) {
    const ROTATIONS: [[u32; 4]; 2] = [[13, 15, 26, 6], [17, 29, 16, 24]];
    let ks = [key[0], key[1], key[0] ^ key[1] ^ 0x1BD1_1BDA];
    for l in 0..L {
        x0[l] = x0[l].wrapping_add(ks[0]);
        x1[l] = x1[l].wrapping_add(ks[1]);
    }
    for i in 0..5 {
        for &r in &ROTATIONS[i % 2] {
            for l in 0..L {
                x0[l] = x0[l].wrapping_add(x1[l]);
                x1[l] = x1[l].rotate_left(r) ^ x0[l];
            }
        }
        let (k0, k1) = (ks[(i + 1) % 3], ks[(i + 2) % 3].wrapping_add(i as u32 + 1));
        for l in 0..L {
            x0[l] = x0[l].wrapping_add(k0);
            x1[l] = x1[l].wrapping_add(k1);
        }
    }
}

/// A pseudo-random number generator key, split to get independent streams.
///
/// A key is a value: using the same key twice gives the same numbers. Split it to get
/// fresh keys for each use, as in JAX.
///
/// ```
/// # use ferrax_runtime::prelude::*;
/// let key = Key::new(0);
/// let (a, b) = key.split();
/// assert_ne!(a, b);
/// assert_eq!(key.split_n(3)[..2], [a, b]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key([u32; 2]);

impl Key {
    /// The key for a seed (the same pair of words as `jax.random.key(seed)`).
    pub fn new(seed: u64) -> Key {
        Key([(seed >> 32) as u32, seed as u32])
    }

    /// The key's two 32-bit words.
    pub fn data(self) -> [u32; 2] {
        self.0
    }

    /// Two new keys, independent of each other and of `self`.
    pub fn split(self) -> (Key, Key) {
        (self.fold_in(0), self.fold_in(1))
    }

    /// `n` new independent keys; the first two are those of [`Key::split`].
    pub fn split_n(self, n: usize) -> Vec<Key> {
        (0..n).map(|i| self.counter_key(i as u64)).collect()
    }

    /// A new key derived from `self` and `data` (for example a step number).
    pub fn fold_in(self, data: u32) -> Key {
        self.counter_key(data as u64)
    }

    fn counter_key(self, i: u64) -> Key {
        Key(self.bits(i))
    }

    /// The two hashed words for counter `i`.
    fn bits(self, i: u64) -> [u32; 2] {
        threefry2x32(self.0, [(i >> 32) as u32, i as u32])
    }

    /// `n` values of `f(bits of counter i)`: eight counters hashed at a time, blocks of
    /// them in parallel for large `n`.
    fn draw<T>(self, n: usize, f: impl Fn([u32; 2]) -> T + Sync) -> Vec<T>
    where
        T: Copy + Default + Send + Sync + 'static,
    {
        const LANES: usize = 8;
        const BLOCK: usize = 4096;
        let fill = |start: usize, dst: &mut [T]| {
            for (c, chunk) in dst.chunks_mut(LANES).enumerate() {
                let first = (start + c * LANES) as u64;
                let mut hi: [u32; LANES] =
                    std::array::from_fn(|l| ((first + l as u64) >> 32) as u32);
                let mut lo: [u32; LANES] = std::array::from_fn(|l| (first + l as u64) as u32);
                threefry_lanes(self.0, &mut hi, &mut lo);
                for (l, o) in chunk.iter_mut().enumerate() {
                    *o = f([hi[l], lo[l]]);
                }
            }
        };
        let mut out = pool::buffer(n, T::default());
        if n >= PAR_THRESHOLD {
            out.par_chunks_mut(BLOCK)
                .enumerate()
                .for_each(|(b, d)| fill(b * BLOCK, d));
        } else {
            fill(0, &mut out);
        }
        out
    }
}

/// A float in `[0, 1)` from 32 random bits: 23 of them become the mantissa of a float in
/// `[1, 2)`, from which 1 is subtracted (as JAX).
fn unit_f32(bits: [u32; 2]) -> f32 {
    f32::from_bits(((bits[0] ^ bits[1]) >> 9) | 1.0f32.to_bits()) - 1.0
}

/// A double in `[0, 1)` from 64 random bits (52 of them), as JAX.
fn unit_f64(bits: [u32; 2]) -> f64 {
    let b = ((bits[0] as u64) << 32) | bits[1] as u64;
    f64::from_bits((b >> 12) | 1.0f64.to_bits()) - 1.0
}

/// M. Giles' single-precision polynomial approximation of the inverse error function
/// ("Approximating the erfinv function", GPU Computing Gems, 2011), as XLA uses it for
/// f32, in terms of `w = -ln(1 - x^2)`.
const GILES_SMALL_W: [f64; 9] = [
    2.810_226_36e-8,
    3.432_739_39e-7,
    -3.523_387_7e-6,
    -4.391_506_54e-6,
    2.185_808_7e-4,
    -1.253_725_03e-3,
    -4.177_681_64e-3,
    2.466_407_27e-1,
    1.501_409_41,
];
const GILES_LARGE_W: [f64; 9] = [
    -2.002_142_57e-4,
    1.009_505_58e-4,
    1.349_343_22e-3,
    -3.673_428_44e-3,
    5.739_507_73e-3,
    -7.622_461_3e-3,
    9.438_870_47e-3,
    1.001_674_06,
    2.832_976_82,
];

/// The inverse error function in single precision, computed as XLA computes it for f32.
fn erfinv_f32(x: f32) -> f32 {
    if x.abs() == 1.0 {
        return x * f32::INFINITY;
    }
    let w = -libm::log1pf(-x * x);
    let (coef, w) = if w < 5.0 {
        (&GILES_SMALL_W, w - 2.5)
    } else {
        (&GILES_LARGE_W, libm::sqrtf(w) - 3.0)
    };
    let p = coef[1..]
        .iter()
        .fold(coef[0] as f32, |p, &c| c as f32 + p * w);
    p * x
}

/// The inverse error function in double precision: Giles' approximation as a first
/// guess, refined by Halley steps on `erf` near 0 and on `erfc` in the tails (where `erf`
/// is too close to 1 to resolve the error); one step usually suffices.
fn erfinv_f64(x: f64) -> f64 {
    let t = x.abs();
    if t >= 1.0 || x.is_nan() {
        return if t == 1.0 {
            x * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    let tail = 1.0 - t; // exact for t >= 0.5
    let w = -libm::log(tail * (1.0 + t));
    let (coef, w) = if w < 5.0 {
        (&GILES_SMALL_W, w - 2.5)
    } else {
        (&GILES_LARGE_W, w.sqrt() - 3.0)
    };
    let mut z = coef[1..].iter().fold(coef[0], |p, &c| c + p * w) * t;
    for _ in 0..6 {
        // F(z) = erf(z) - t, through erfc in the tail where erf(z) rounds to 1
        let f = if t < 0.5 {
            libm::erf(z) - t
        } else {
            tail - libm::erfc(z)
        };
        let u = f / (std::f64::consts::FRAC_2_SQRT_PI * libm::exp(-z * z));
        // Halley's step (F'' = -2z F'): the error left is of the order of step^3
        let step = u / (1.0 + z * u);
        z -= step;
        if step.abs() <= 1e-6 * z.abs() {
            break;
        }
    }
    z.copysign(x)
}

fn expect_float_dtype(op: &'static str, dtype: DType, shape: &[usize]) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType {
            op,
            expected: "a float dtype (f32 or f64)",
            got: dtype,
            shape: shape.to_vec(),
        })
    }
}

impl Tensor {
    /// Samples from the uniform distribution on `[low, high)`. Panics for a non-float
    /// dtype; see [`Tensor::try_uniform`].
    #[track_caller]
    pub fn uniform(key: Key, shape: &[usize], low: f64, high: f64, dtype: DType) -> Tensor {
        unwrap(Tensor::try_uniform(key, shape, low, high, dtype))
    }

    /// [`Tensor::uniform`], returning an error for a non-float dtype.
    pub fn try_uniform(
        key: Key,
        shape: &[usize],
        low: f64,
        high: f64,
        dtype: DType,
    ) -> Result<Tensor> {
        expect_float_dtype("uniform", dtype, shape)?;
        let n = numel(shape);
        Ok(if dtype == DType::F32 {
            let (lo, hi) = (low as f32, high as f32);
            Tensor::from_data(
                key.draw(n, |b| (unit_f32(b) * (hi - lo) + lo).max(lo)),
                shape,
            )
        } else {
            Tensor::from_data(
                key.draw(n, |b| (unit_f64(b) * (high - low) + low).max(low)),
                shape,
            )
        })
    }

    /// Samples from the standard normal distribution (by the inverse error function of a
    /// uniform sample, as JAX). Panics for a non-float dtype; see [`Tensor::try_normal`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let x = Tensor::normal(Key::new(7), &[10_000], DType::F64);
    /// assert!(x.mean().item::<f64>().abs() < 0.05);
    /// ```
    #[track_caller]
    pub fn normal(key: Key, shape: &[usize], dtype: DType) -> Tensor {
        unwrap(Tensor::try_normal(key, shape, dtype))
    }

    /// [`Tensor::normal`], returning an error for a non-float dtype.
    pub fn try_normal(key: Key, shape: &[usize], dtype: DType) -> Result<Tensor> {
        expect_float_dtype("normal", dtype, shape)?;
        let n = numel(shape);
        Ok(if dtype == DType::F32 {
            // the open interval (-1, 1): the float after -1, and 1 excluded by the draw
            let lo = -1.0f32 + f32::EPSILON / 2.0;
            let sqrt2 = std::f32::consts::SQRT_2;
            Tensor::from_data(
                key.draw(n, |b| {
                    sqrt2 * erfinv_f32((unit_f32(b) * (1.0 - lo) + lo).max(lo))
                }),
                shape,
            )
        } else {
            let lo = -1.0f64 + f64::EPSILON / 2.0;
            let sqrt2 = std::f64::consts::SQRT_2;
            Tensor::from_data(
                key.draw(n, |b| {
                    sqrt2 * erfinv_f64((unit_f64(b) * (1.0 - lo) + lo).max(lo))
                }),
                shape,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threefry_matches_random123_known_answers() {
        assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b20_0159, 0x99ba_4efe]);
        assert_eq!(
            threefry2x32([u32::MAX, u32::MAX], [u32::MAX, u32::MAX]),
            [0x1cb9_96fc, 0xbb00_2be7]
        );
        assert_eq!(
            threefry2x32([0x1319_8a2e, 0x0370_7344], [0x243f_6a88, 0x85a3_08d3]),
            [0xc492_3a9c, 0x483d_f7a0]
        );
    }

    #[test]
    fn erfinv_inverts_erf() {
        for i in -99..100 {
            let y = i as f64 / 100.0;
            let z = erfinv_f64(y);
            assert!((libm::erf(z) - y).abs() < 1e-15, "erfinv({y}) = {z}");
            let z32 = erfinv_f32(y as f32) as f64;
            assert!(
                (z32 - z).abs() < 1e-5 * (1.0 + z.abs()),
                "erfinv_f32({y}) = {z32}, f64 gives {z}"
            );
        }
        let tail = 1.0 - 2f64.powi(-50);
        assert!((libm::erfc(erfinv_f64(tail)) / 2f64.powi(-50) - 1.0).abs() < 1e-10);
    }
}
