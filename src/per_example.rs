//! Batched scalar code: `#[vmap]` of a function whose parameters and result are floats and
//! sequences of floats (`f64`, `&[f64]`, `Vec<f64>`, `[f64; N]`) runs the unbatched
//! function (or its `_grad`, `_value_and_grad`) once per example, on rayon's threads when
//! the batch is long, instead of batching every scalar operation into a `[B]` tensor: the
//! scalar code stays in registers, and long examples (a relaxation loop) are one native
//! loop each instead of thousands of `[B]` operations (see benches/README.md, session 27,
//! for the figures). The generated function reads
//! its batched arguments with [`floats`] and [`rows`] and runs [`each`], which gathers
//! each output into a [`Column`].

use crate::__private::lanes::{L, W};
use ferrax_runtime::{Error, Float, Tensor};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A batch whose examples together take at least this long (judged by the second) runs
/// them on rayon's threads. Waking the pool from outside costs 100 us and more on a VM:
/// per-example gradients of a cubic fit over 16 points (benches/README.md, session 28),
/// 2048 examples, took 135 us on the caller's thread against 300-370 split over two, 4096
/// took 270 against 490-640, and only at 16384 (1.1 ms) did two threads win (0.9 ms).
pub const SPLIT_FROM: Duration = Duration::from_micros(400);

/// Runs `f(0), .., f(bsz - 1)` and hands each result, in order, to `put`, which writes
/// what it returns into the columns `C` (one [`Column`] per output). Where `parallel` (`f`
/// reads nothing of the caller's thread: a body that calls nothing of the user's) and the
/// second example, times `bsz`, takes [`SPLIT_FROM`] or more, the others run on rayon's
/// threads, each share into columns of its own that `merge` appends in order. A result is written as soon as it is made (its
/// `Vec` freed at once, for the next to reuse): 4096 of a gradient's `Vec`s kept alive and
/// gathered afterwards cost 0.15-0.24 ms more.
pub fn each<R, C: Default + Send>(
    bsz: usize,
    parallel: bool,
    f: impl Fn(usize) -> R + Sync,
    put: impl Fn(R, &mut C) + Sync,
    merge: impl Fn(&mut C, C) + Sync,
) -> C {
    let mut cols = C::default();
    if bsz == 0 {
        return cols;
    }
    // (timed on the second example: the first pays for first touches)
    put(f(0), &mut cols);
    if bsz == 1 {
        return cols;
    }
    let start = Instant::now();
    put(f(1), &mut cols);
    let long = start.elapsed().saturating_mul(bsz as u32) >= SPLIT_FROM;
    if parallel && long && rayon::current_num_threads() > 1 {
        let rest = (2..bsz)
            .into_par_iter()
            .fold(C::default, |mut c, k| {
                put(f(k), &mut c);
                c
            })
            .reduce(C::default, |mut a, b| {
                merge(&mut a, b);
                a
            });
        merge(&mut cols, rest);
    } else {
        for k in 2..bsz {
            put(f(k), &mut cols);
        }
    }
    cols
}

/// [`each`] with the examples in groups of [`W`] run over lanes: `lanes(k)` runs examples
/// `k..k + W` at once (see [`crate::__private::lanes`]), `None` where their control flow
/// diverged, and those examples then run one at a time with `f`, as do the last `bsz % W`;
/// `put_lanes` writes a group's results (with [`put_lane`]). Where most groups diverge
/// (examples that branch on their own values), the rest are not tried. Every example's
/// result is the same, bit for bit, either way.
pub fn each_lanes<R, G, C: Default + Send>(
    bsz: usize,
    parallel: bool,
    f: impl Fn(usize) -> R + Sync,
    lanes: impl Fn(usize) -> Option<G> + Sync,
    put: impl Fn(R, &mut C) + Sync,
    put_lanes: impl Fn(G, &mut C) + Sync,
    merge: impl Fn(&mut C, C) + Sync,
) -> C {
    // (groups that diverged; the group's index stands for how many were tried, so that
    // threads share no counter they all write)
    let diverged = AtomicUsize::new(0);
    each(
        bsz.div_ceil(W),
        parallel,
        |g| {
            let k = g * W;
            let d = diverged.load(Relaxed);
            if k + W <= bsz && (d < 4 || 4 * d <= g) {
                match lanes(k) {
                    Some(r) => return Group::Lanes(r),
                    None => _ = diverged.fetch_add(1, Relaxed),
                }
            }
            Group::One((k..bsz.min(k + W)).map(&f).collect())
        },
        |g, c| match g {
            Group::Lanes(r) => put_lanes(r, c),
            Group::One(rs) => rs.into_iter().for_each(|r| put(r, c)),
        },
        merge,
    )
}

/// The results of a group of examples: over lanes, or one by one.
enum Group<G, R> {
    Lanes(G),
    One(Vec<R>),
}

/// A batched float parameter, `[B]` (batch axis first), as its values.
#[track_caller]
pub fn floats<T: Float>(fn_name: &str, param: &str, x: &Tensor) -> Vec<T> {
    match try_floats(fn_name, param, x) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// [`floats`], returning the error (a tensor that is not 1-D, or not of floats) instead of
/// panicking. Floats of the other width are converted: the function computes in its own.
pub fn try_floats<T: Float>(fn_name: &str, param: &str, x: &Tensor) -> Result<Vec<T>, Error> {
    check::<T>(fn_name, param, x, 1, "[batch]")?;
    Ok(x.to_dtype(T::DTYPE).to_vec::<T>())
}

/// A batched sequence parameter's examples: `[B, n]`, each row one example's sequence.
pub struct Rows<T> {
    data: Vec<T>,
    n: usize,
}

impl<T: Float> Rows<T> {
    /// Every example's sequence length.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the sequences are empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Example `k`'s sequence.
    #[inline]
    pub fn row(&self, k: usize) -> &[T] {
        self.rows(k, 1)
    }

    /// The sequences of examples `k..k + count`, one after another.
    #[inline]
    pub fn rows(&self, k: usize, count: usize) -> &[T] {
        &self.data[k * self.n..(k + count) * self.n]
    }

    /// Example `k`'s sequence as an array (its length checked by [`rows`]).
    #[inline]
    pub fn array<const N: usize>(&self, k: usize) -> [T; N] {
        let mut a = [T::zero(); N];
        a.copy_from_slice(self.row(k));
        a
    }
}

/// A batched sequence parameter, `[B, n]` (batch axis first), as its rows; `len` is an
/// array parameter's length (`[f64; N]`), which `n` must be.
#[track_caller]
pub fn rows<T: Float>(fn_name: &str, param: &str, x: &Tensor, len: Option<usize>) -> Rows<T> {
    match try_rows(fn_name, param, x, len) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

/// [`rows`], returning the error (a tensor that is not 2-D, of another length than the
/// array's, or not of floats) instead of panicking. Floats of the other width are
/// converted: the function computes in its own.
pub fn try_rows<T: Float>(
    fn_name: &str,
    param: &str,
    x: &Tensor,
    len: Option<usize>,
) -> Result<Rows<T>, Error> {
    let shape = match len {
        Some(n) => format!("[batch, {n}]"),
        None => "[batch, n]".to_string(),
    };
    check::<T>(fn_name, param, x, 2, &shape)?;
    if len.is_some_and(|n| x.shape()[1] != n) {
        return Err(invalid(
            fn_name,
            param,
            std::any::type_name::<T>(),
            2,
            &shape,
            x,
        ));
    }
    Ok(Rows {
        data: x.to_dtype(T::DTYPE).contiguous().to_vec::<T>(),
        n: x.shape()[1],
    })
}

fn check<T: Float>(
    fn_name: &str,
    param: &str,
    x: &Tensor,
    ndim: usize,
    shape: &str,
) -> Result<(), Error> {
    let ty = std::any::type_name::<T>();
    if x.ndim() != ndim {
        return Err(invalid(fn_name, param, ty, ndim, shape, x));
    }
    if !x.dtype().is_float() {
        return Err(Error::InvalidArgument {
            op: "vmap",
            message: format!(
                "`{fn_name}`: batched argument `{param}` ({ty}) takes a float tensor, got dtype {} (shape {:?})",
                x.dtype(),
                x.shape()
            ),
        });
    }
    Ok(())
}

fn invalid(fn_name: &str, param: &str, ty: &str, ndim: usize, shape: &str, x: &Tensor) -> Error {
    Error::InvalidArgument {
        op: "vmap",
        message: format!(
            "`{fn_name}`: batched argument `{param}` ({ty} per example) takes a {ndim}-D tensor of shape {shape} (with the batch axis where in_axes puts it), got shape {:?}",
            x.shape()
        ),
    }
}

/// One output of every example, gathered as they are made (see [`each`]): of `E`, a
/// float, a sequence of floats or rows of them (a Jacobian's), every example's of one shape.
pub struct Column<E: Example> {
    data: Vec<E::Elem>,
    /// One example's shape (`[]` for a float), once the first is written.
    shape: Option<Vec<usize>>,
}

impl<E: Example> Default for Column<E> {
    fn default() -> Self {
        Column {
            data: Vec::new(),
            shape: None,
        }
    }
}

impl<E: Example> Column<E> {
    /// Checks that an example of `shape` matches the others.
    #[inline]
    #[track_caller]
    fn shaped(&mut self, shape: &[usize], fn_name: &str) {
        match &self.shape {
            None => self.shape = Some(shape.to_vec()),
            // (compared element by element: one example's shape has an axis or two, and a
            // call of `memcmp` per example showed in profiles of short examples)
            Some(s) if !(s.len() == shape.len() && s.iter().zip(shape).all(|(a, b)| a == b)) => {
                panic!(
                    "`{fn_name}`: the examples returned results of different shapes ({s:?} and {shape:?}); a batched result needs one shape"
                )
            }
            _ => {}
        }
    }

    /// Writes lane `i` of `xs`, one example of `shape` over lanes, at the end.
    #[inline]
    #[track_caller]
    fn put_lanes<'a>(
        &mut self,
        shape: &[usize],
        xs: impl IntoIterator<Item = &'a L<E::Elem>>,
        i: usize,
        fn_name: &str,
    ) where
        E::Elem: 'a,
    {
        self.shaped(shape, fn_name);
        self.data.extend(xs.into_iter().map(|x| x.0[i]));
    }

    /// Appends the column of the examples after these (a share run on another thread).
    #[track_caller]
    pub fn append(&mut self, other: Column<E>, fn_name: &str) {
        if let Some(s) = &other.shape {
            self.shaped(s, fn_name);
        }
        self.data.extend(other.data);
    }

    /// The column as a batched tensor: `[bsz]` + one example's shape (of no example,
    /// `unread`, where the caller knows it: a sequence parameter's gradient is as long as
    /// the parameter; else as [`Example::unread_shape`] says).
    pub fn finish(self, bsz: usize, unread: Option<Vec<usize>>) -> Tensor {
        let mut shape = vec![bsz];
        shape.extend(self.shape.or(unread).unwrap_or_else(E::unread_shape));
        Tensor::from_vec(self.data, &shape)
    }
}

/// A result of one example that a [`Column`] gathers: a float, a `Vec` of them, an array,
/// or rows (`Vec<Vec<f64>>`, as long as each other).
pub trait Example: Sized {
    /// The float.
    type Elem: Float;
    /// Writes this example's value at the end of `col`.
    fn put(&self, col: &mut Column<Self>, fn_name: &str);
    /// One example's shape where no example gives it (an empty batch): as many axes as
    /// every example has, those of unknown length 0.
    fn unread_shape() -> Vec<usize>;
}

macro_rules! examples {
    ($($f:ty),*) => {$(
        impl Example for $f {
            type Elem = $f;
            #[inline]
            fn put(&self, col: &mut Column<$f>, fn_name: &str) {
                if col.shape.is_none() {
                    col.shaped(&[], fn_name);
                }
                col.data.push(*self);
            }
            fn unread_shape() -> Vec<usize> {
                vec![]
            }
        }
        impl Example for Vec<$f> {
            type Elem = $f;
            #[track_caller]
            fn put(&self, col: &mut Column<Self>, fn_name: &str) {
                col.shaped(&[self.len()], fn_name);
                col.data.extend_from_slice(self);
            }
            fn unread_shape() -> Vec<usize> {
                vec![0]
            }
        }
        impl<const N: usize> Example for [$f; N] {
            type Elem = $f;
            fn put(&self, col: &mut Column<Self>, fn_name: &str) {
                col.shaped(&[N], fn_name);
                col.data.extend_from_slice(&self[..]);
            }
            fn unread_shape() -> Vec<usize> {
                vec![N]
            }
        }
        impl Example for Vec<Vec<$f>> {
            type Elem = $f;
            #[track_caller]
            fn put(&self, col: &mut Column<Self>, fn_name: &str) {
                let n = self.first().map_or(0, Vec::len);
                if let Some(r) = self.iter().find(|r| r.len() != n) {
                    panic!(
                        "`{fn_name}`: an example's rows differ in length ({n} and {})",
                        r.len()
                    );
                }
                col.shaped(&[self.len(), n], fn_name);
                for r in self {
                    col.data.extend_from_slice(r);
                }
            }
            fn unread_shape() -> Vec<usize> {
                vec![0, 0]
            }
        }
    )*};
}
examples!(f32, f64);

/// A result of [`W`] examples over lanes (an `L`, a `Vec` or an array of them), whose
/// lane `i` a [`Column`] of one example's results gathers.
pub trait LaneExample {
    /// One example's result.
    type One: Example;
    /// Writes lane `i`'s result at the end of `col`.
    fn put_lane(&self, i: usize, col: &mut Column<Self::One>, fn_name: &str);
}

impl<T: Float + Example<Elem = T>> LaneExample for L<T> {
    type One = T;
    #[inline]
    fn put_lane(&self, i: usize, col: &mut Column<T>, fn_name: &str) {
        col.put_lanes(&[], [self], i, fn_name);
    }
}

impl<T: Float> LaneExample for Vec<L<T>>
where
    Vec<T>: Example<Elem = T>,
{
    type One = Vec<T>;
    #[inline]
    #[track_caller]
    fn put_lane(&self, i: usize, col: &mut Column<Vec<T>>, fn_name: &str) {
        col.put_lanes(&[self.len()], self, i, fn_name);
    }
}

impl<T: Float, const N: usize> LaneExample for [L<T>; N]
where
    [T; N]: Example<Elem = T>,
{
    type One = [T; N];
    #[inline]
    fn put_lane(&self, i: usize, col: &mut Column<[T; N]>, fn_name: &str) {
        col.put_lanes(&[N], self, i, fn_name);
    }
}

impl<T: Float> LaneExample for Vec<Vec<L<T>>>
where
    Vec<Vec<T>>: Example<Elem = T>,
{
    type One = Vec<Vec<T>>;
    #[track_caller]
    fn put_lane(&self, i: usize, col: &mut Column<Vec<Vec<T>>>, fn_name: &str) {
        // (rows of one length: a Jacobian's, made so)
        let n = self.first().map_or(0, Vec::len);
        col.put_lanes(&[self.len(), n], self.iter().flatten(), i, fn_name);
    }
}

/// Writes lane `i` of `x` at the end of `col` (see [`LaneExample`]).
#[inline]
#[track_caller]
pub fn put_lane<X: LaneExample>(x: &X, i: usize, col: &mut Column<X::One>, fn_name: &str) {
    x.put_lane(i, col, fn_name);
}

/// Writes `x` at the end of `col` (see [`Example`]).
#[inline]
#[track_caller]
pub fn put<E: Example>(x: &E, col: &mut Column<E>, fn_name: &str) {
    x.put(col, fn_name);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `each` gathering `k` and `[k, k]` for every example.
    fn squares(bsz: usize, slow: bool) -> (Tensor, Tensor) {
        let (a, b): (Column<f64>, Column<Vec<f64>>) = each(
            bsz,
            true,
            |k| {
                if slow {
                    std::thread::sleep(Duration::from_micros(10));
                }
                (k as f64, vec![k as f64; 2])
            },
            |o, c: &mut (Column<f64>, Column<Vec<f64>>)| {
                put(&o.0, &mut c.0, "f");
                put(&o.1, &mut c.1, "f");
            },
            |a, b| {
                a.0.append(b.0, "f");
                a.1.append(b.1, "f");
            },
        );
        (a.finish(bsz, None), b.finish(bsz, None))
    }

    #[test]
    fn each_keeps_the_order_of_the_examples_in_place_and_split() {
        // (a pool of its own: the global one is the entry tests' to time)
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for slow in [false, true] {
            // (long examples: split over threads where there are several)
            let (a, b) = pool.install(|| squares(64, slow));
            assert_eq!(
                a.to_vec::<f64>(),
                (0..64).map(|k| k as f64).collect::<Vec<_>>()
            );
            assert_eq!(b.shape(), &[64, 2]);
            assert_eq!(b.to_vec::<f64>()[126..], [63.0, 63.0]);
        }
        let (a, b) = squares(0, false);
        assert_eq!(a.shape(), &[0]);
        // (an empty batch of Vecs keeps their axis)
        assert_eq!(b.shape(), &[0, 0]);
    }

    #[test]
    fn rows_and_floats_check_shapes_and_dtypes() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        let r = rows::<f64>("f_vmap", "x", &x, Some(3));
        assert_eq!(r.row(1), &[4.0, 5.0, 6.0]);
        assert_eq!(r.array::<3>(0), [1.0, 2.0, 3.0]);
        let e = try_rows::<f64>("f_vmap", "x", &x, Some(2)).err().unwrap();
        assert!(e.to_string().contains("[batch, 2]"), "{e}");
        assert_eq!(
            rows::<f32>("f_vmap", "x", &x, None).row(0),
            &[1.0, 2.0, 3.0]
        );
        let e = try_rows::<f32>("f_vmap", "x", &x.argmax_axis(1, true), None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("float tensor"), "{e}");
        let e = try_floats::<f64>("f_vmap", "y", &x).err().unwrap();
        assert!(
            e.to_string().contains("`y`") && e.to_string().contains("[batch]"),
            "{e}"
        );
        let t = x.t();
        assert_eq!(rows::<f64>("f", "x", &t, None).row(0), &[1.0, 4.0]);
    }

    #[test]
    fn columns_gather_floats_vecs_and_arrays_and_check_lengths() {
        let mut c = Column::default();
        put(&[1.0f32, 2.0], &mut c, "f");
        put(&[3.0f32, 4.0], &mut c, "f");
        let t = c.finish(2, None);
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.to_vec::<f32>(), vec![1.0, 2.0, 3.0, 4.0]);
        let r = std::panic::catch_unwind(|| {
            let mut c = Column::default();
            put(&vec![1.0f64], &mut c, "g_vmap");
            put(&Vec::<f64>::new(), &mut c, "g_vmap");
        });
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(
            msg.contains("g_vmap") && msg.contains("([1] and [0])"),
            "{msg}"
        );
        let mut c = Column::default();
        put(&vec![vec![1.0f64, 2.0], vec![3.0, 4.0]], &mut c, "f");
        put(&vec![vec![5.0f64, 6.0], vec![7.0, 8.0]], &mut c, "f");
        assert_eq!(c.finish(2, None).shape(), &[2, 2, 2]);
    }
}
