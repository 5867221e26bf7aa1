//! Every tensor operation checked against the plain reference in `reference.rs` on random
//! shapes (size-1 axes, 0-d, empty axes, rank mismatch), in f32 and f64, with inputs
//! that are contiguous, transposed, sliced, strided or broadcast views.

mod construct;
mod conv;
mod einsum;
mod elementwise;
mod errors;
mod expm;
mod fused;
mod linalg;
mod matmul;
mod random;
mod recurrence;
mod reduce;
mod reference;
mod scan;
mod sort;
mod views;

use ferrax_runtime::prelude::*;
use proptest::prelude::*;
use reference::{Arr, indices};

/// Deterministic values in [-1, 1) (a linear congruential generator's top bits).
pub fn vals(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(7);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// The two float dtypes.
pub fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::F64)]
}

/// Mostly multiples of 1/8 in [-3, 3] (exact in f32, so f32 and f64 results can be
/// compared with the f64 reference tightly), sometimes ±0, ±inf or NaN.
pub fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        30 => (-24i32..=24).prop_map(|k| k as f64 / 8.0),
        1 => prop_oneof![Just(0.0), Just(-0.0), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(f64::NAN)],
    ]
}

/// Finite values only.
pub fn finite_value() -> impl Strategy<Value = f64> {
    (-24i32..=24).prop_map(|k| k as f64 / 8.0)
}

/// A shape of rank `0..=max_rank` with axes of size `0..=max_dim`.
pub fn shape(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=max_dim, 0..=max_rank)
}

/// How an input tensor's elements are laid out in its storage.
#[derive(Clone, Copy, Debug)]
pub enum Lay {
    /// Row-major, from `from_vec`.
    Contiguous,
    /// Stored with reversed axes and viewed through `permute`.
    Transposed,
    /// A `slice` of the last axis of a wider tensor.
    Sliced,
    /// Every other element of the first axis (`slice_step`).
    Stepped,
}

pub fn lay() -> impl Strategy<Value = Lay> {
    prop_oneof![
        Just(Lay::Contiguous),
        Just(Lay::Transposed),
        Just(Lay::Sliced),
        Just(Lay::Stepped)
    ]
}

/// A tensor input: `small` laid out by `lay`, then broadcast to `shape` (a stride-0
/// view along the axes where `small` has size 1 and `shape` does not).
#[derive(Clone, Debug)]
pub struct Input {
    pub small: Arr,
    pub shape: Vec<usize>,
    pub lay: Lay,
}

impl Input {
    /// The logical value.
    pub fn arr(&self) -> Arr {
        self.small.broadcast_to(&self.shape)
    }

    /// The logical value as seen in `dtype` (rounded to f32 for f32 tensors).
    pub fn arr_in(&self, dtype: DType) -> Arr {
        let a = self.arr();
        if dtype == DType::F32 {
            a.map(|x| x as f32 as f64)
        } else {
            a
        }
    }

    /// The tensor, with this input's layout.
    pub fn tensor(&self, dtype: DType) -> Tensor {
        let t = laid_out(&self.small, self.lay, dtype);
        let t = t.broadcast_to(&self.shape);
        check(&t, &self.arr_in(dtype), 0.0, "input construction");
        t
    }
}

/// A tensor of `a`'s values whose storage is arranged by `lay`.
pub fn laid_out(a: &Arr, lay: Lay, dtype: DType) -> Tensor {
    let n = a.shape.len();
    match lay {
        Lay::Transposed if n >= 2 => {
            let rev: Vec<usize> = (0..n).rev().collect();
            let stored = a.permute(&rev);
            let axes: Vec<isize> = (0..n as isize).rev().collect();
            tensor_of(&stored, dtype).permute(&axes)
        }
        Lay::Sliced if n >= 1 => {
            let last = a.shape[n - 1];
            let mut wide = a.shape.clone();
            wide[n - 1] = last + 2;
            let w = Arr::from_fn(&wide, |i| {
                if i[n - 1] == 0 || i[n - 1] == last + 1 {
                    1e6
                } else {
                    a.get(&[&i[..n - 1], &[i[n - 1] - 1]].concat())
                }
            });
            tensor_of(&w, dtype).slice(-1, 1, last + 1)
        }
        Lay::Stepped if n >= 1 => {
            let mut wide = a.shape.clone();
            wide[0] = 2 * a.shape[0];
            let w = Arr::from_fn(&wide, |i| {
                if i[0] % 2 == 1 {
                    -1e6
                } else {
                    a.get(&[&[i[0] / 2], &i[1..]].concat())
                }
            });
            tensor_of(&w, dtype).slice_step(0, 0, wide[0], 2)
        }
        _ => tensor_of(a, dtype),
    }
}

/// A contiguous tensor of `a`'s values in `dtype`.
pub fn tensor_of(a: &Arr, dtype: DType) -> Tensor {
    match dtype {
        DType::F32 => Tensor::from_vec(a.data.iter().map(|&x| x as f32).collect(), &a.shape),
        DType::F64 => Tensor::from_vec(a.data.clone(), &a.shape),
        other => panic!("tensor_of: float dtype expected, got {other}"),
    }
}

/// An input of exactly `shape` with a random layout and random broadcast axes.
pub fn input(shape: Vec<usize>, values: BoxedStrategy<f64>) -> impl Strategy<Value = Input> {
    let n = shape.len();
    (prop::collection::vec(prop::bool::weighted(0.25), n), lay()).prop_flat_map(
        move |(bcast, lay)| {
            let small_shape: Vec<usize> = shape
                .iter()
                .zip(&bcast)
                .map(|(&d, &b)| if b { 1 } else { d })
                .collect();
            let count = small_shape.iter().product::<usize>();
            let shape = shape.clone();
            prop::collection::vec(values.clone(), count).prop_map(move |data| Input {
                small: Arr::new(&small_shape, data),
                shape: shape.clone(),
                lay,
            })
        },
    )
}

/// An input of a random shape.
pub fn any_input(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Input> {
    shape(max_rank, max_dim).prop_flat_map(|s| input(s, value().boxed()))
}

/// Mostly small shapes of rank up to 4, sometimes rows of 16 to 40 elements or long
/// vectors: past the SIMD width, with remainders, and long enough for the row-by-row
/// broadcast path.
pub fn varied_shape() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        3 => shape(4, 4),
        1 => (0..4usize, 16..40usize).prop_map(|(a, b)| vec![a, b]),
        1 => (0..3usize, 0..3usize, 16..24usize).prop_map(|(a, b, c)| vec![a, b, c]),
        1 => (0..100usize).prop_map(|n| vec![n]),
    ]
}

/// An input of a [`varied_shape`].
pub fn varied_input() -> impl Strategy<Value = Input> {
    varied_shape().prop_flat_map(|s| input(s, value().boxed()))
}

/// `k` shapes that broadcast together: suffixes of one output shape with some axes set
/// to 1 (so ranks differ, size-1 axes stretch, and empty axes appear).
pub fn broadcast_group(k: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    varied_shape().prop_flat_map(move |out| {
        let n = out.len();
        let side = (0..=n, prop::collection::vec(prop::bool::weighted(0.3), n)).prop_map(
            move |(rank, ones)| {
                (n - rank..n)
                    .map(|d| if ones[d] { 1 } else { out[d] })
                    .collect::<Vec<usize>>()
            },
        );
        prop::collection::vec(side, k)
    })
}

/// Two shapes that broadcast together.
pub fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    broadcast_group(2).prop_map(|v| (v[0].clone(), v[1].clone()))
}

/// Whether `got` matches `want` within `tol` (relative to max(1, |want|)); NaNs match
/// NaNs and infinities match exactly.
pub fn close(got: f64, want: f64, tol: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= tol * want.abs().max(1.0)
}

/// The tolerance for transcendental results in `dtype`.
pub fn tol(dtype: DType) -> f64 {
    if dtype == DType::F32 { 1e-5 } else { 1e-12 }
}

/// The tensor's values as f64 (from any dtype).
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).to_vec::<f64>()
}

/// Asserts that `got` has `want`'s shape and values, printing both on failure.
#[track_caller]
pub fn check(got: &Tensor, want: &Arr, tol: f64, what: &str) {
    assert_eq!(got.shape(), want.shape.as_slice(), "{what}: shape");
    let g = values(got);
    for (i, idx) in indices(&want.shape).iter().enumerate() {
        assert!(
            close(g[i], want.data[i], tol),
            "{what}: at {idx:?} got {} want {} (tol {tol})\n got: {g:?}\nwant: {:?}",
            g[i],
            want.data[i],
            want.data
        );
    }
}

/// The proptest configuration for this suite: enough cases to hit the edge cases, few
/// enough to keep the debug build fast.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}
