//! Layout operations: views (reshape, transpose, permute, t, broadcast_to, slice,
//! squeeze, unsqueeze) and gathers/joins (index_select, concat, stack).

use ferrax_runtime::prelude::*;
use proptest::prelude::*;

use crate::reference::Arr;
use crate::{Input, any_input, check, config, dtype, input, value};

/// A permutation of `0..n`.
fn permutation(n: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..n).collect::<Vec<_>>()).prop_shuffle()
}

/// An input with at least one axis.
fn nonscalar_input() -> impl Strategy<Value = Input> {
    prop::collection::vec(0..=4usize, 1..=4).prop_flat_map(|s| input(s, value().boxed()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reshape_reads_row_major(x in any_input(4, 4), dt in dtype(), split in 0usize..4) {
        let want = x.arr_in(dt);
        let t = x.tensor(dt);
        // flatten, then fold the flat axis into [numel / d, d] where d divides it
        let n = want.numel();
        let d = (1..=4).rev().find(|&d| n.is_multiple_of(d) && d <= split + 1).unwrap_or(1);
        let flat = t.reshape(&[n]);
        check(&flat, &Arr::new(&[n], want.data.clone()), 0.0, "flatten");
        if n > 0 {
            check(&t.reshape(&[n / d, d]), &Arr::new(&[n / d, d], want.data.clone()), 0.0, "reshape 2-d");
        }
        check(&flat.reshape(&want.shape), &want, 0.0, "reshape back");
        // adding and removing size-1 axes never copies
        let mut ones = want.shape.clone();
        ones.insert(0, 1);
        ones.push(1);
        let r = t.reshape(&ones);
        prop_assert_eq!(r.strides().len(), ones.len());
        check(&r, &Arr::new(&ones, want.data.clone()), 0.0, "reshape with unit axes");
    }

    #[test]
    fn permute_and_transpose_match_reference(
        (x, perm) in prop::collection::vec(0..=4usize, 0..=4)
            .prop_flat_map(|s| { let n = s.len(); (input(s, value().boxed()), permutation(n)) }),
        dt in dtype(),
    ) {
        let want = x.arr_in(dt);
        let t = x.tensor(dt);
        let axes: Vec<isize> = perm.iter().map(|&p| p as isize).collect();
        let p = t.permute(&axes);
        check(&p, &want.permute(&perm), 0.0, "permute");
        // negative axes mean the same
        let neg: Vec<isize> = perm.iter().map(|&p| p as isize - perm.len() as isize).collect();
        check(&t.permute(&neg), &want.permute(&perm), 0.0, "permute negative");
        // contiguous() of a view gives the same values, contiguously
        let c = p.contiguous();
        prop_assert!(c.is_contiguous());
        check(&c, &want.permute(&perm), 0.0, "contiguous");
        if want.shape.len() >= 2 {
            let n = want.shape.len();
            let mut sw: Vec<usize> = (0..n).collect();
            sw.swap(0, n - 1);
            check(&t.transpose(0, -1), &want.permute(&sw), 0.0, "transpose");
        }
        if want.shape.len() == 2 {
            check(&t.t(), &want.permute(&[1, 0]), 0.0, "t");
        }
    }

    #[test]
    fn slices_match_reference(x in nonscalar_input(), dt in dtype(), a in 0usize..5, b in 0usize..5, step in 1usize..4, ax in 0usize..4) {
        let want = x.arr_in(dt);
        let t = x.tensor(dt);
        let ax = ax % want.shape.len();
        let size = want.shape[ax];
        let (start, end) = (a.min(size).min(b.min(size)), a.min(size).max(b.min(size)));
        let kept: Vec<usize> = (start..end).step_by(step).collect();
        let mut shape = want.shape.clone();
        shape[ax] = kept.len();
        let expect = Arr::from_fn(&shape, |i| {
            let mut j = i.to_vec();
            j[ax] = kept[i[ax]];
            want.get(&j)
        });
        check(&t.slice_step(ax as isize, start, end, step), &expect, 0.0, "slice_step");
        if step == 1 {
            check(&t.slice(ax as isize - want.shape.len() as isize, start, end), &expect, 0.0, "slice");
        }
    }

    #[test]
    fn squeeze_unsqueeze_roundtrip(x in any_input(3, 3), dt in dtype(), at in 0usize..4) {
        let want = x.arr_in(dt);
        let t = x.tensor(dt);
        let at = at % (want.shape.len() + 1);
        let mut shape = want.shape.clone();
        shape.insert(at, 1);
        let u = t.unsqueeze(at as isize);
        check(&u, &Arr::new(&shape, want.data.clone()), 0.0, "unsqueeze");
        check(&u.squeeze(at as isize), &want, 0.0, "squeeze");
        let u2 = t.unsqueeze(at as isize - want.shape.len() as isize - 1);
        prop_assert_eq!(u2.shape(), shape.as_slice());
    }

    #[test]
    fn broadcast_to_repeats(x in any_input(3, 3), dt in dtype(), lead in 0usize..3) {
        let want = x.arr_in(dt);
        let mut target = vec![2; lead];
        target.extend(want.shape.iter().map(|&d| if d == 1 { 3 } else { d }));
        check(&x.tensor(dt).broadcast_to(&target), &want.broadcast_to(&target), 0.0, "broadcast_to");
    }

    #[test]
    fn index_select_gathers(x in nonscalar_input(), dt in dtype(), ax in 0usize..4, picks in prop::collection::vec(0usize..100, 0..5), idx_2d in any::<bool>()) {
        let want = x.arr_in(dt);
        let ax = ax % want.shape.len();
        let size = want.shape[ax];
        prop_assume!(size > 0 || picks.is_empty());
        let picks: Vec<usize> = picks.iter().map(|p| p % size.max(1)).collect();
        let idx_shape = if idx_2d && picks.len().is_multiple_of(2) { vec![2, picks.len() / 2] } else { vec![picks.len()] };
        let idx = Tensor::from_vec(picks.iter().map(|&p| p as i32).collect(), &idx_shape);
        let mut shape = want.shape[..ax].to_vec();
        shape.extend(&idx_shape);
        shape.extend(&want.shape[ax + 1..]);
        let k = idx_shape.len();
        let expect = Arr::from_fn(&shape, |i| {
            let flat_pick = if k == 2 { i[ax] * idx_shape[1] + i[ax + 1] } else { i[ax] };
            let src: Vec<usize> = [&i[..ax], &[picks[flat_pick]], &i[ax + k..]].concat();
            want.get(&src)
        });
        check(&x.tensor(dt).index_select(ax as isize, &idx), &expect, 0.0, "index_select");
    }

    #[test]
    fn concat_and_stack_join(
        (base, ax, sizes) in prop::collection::vec(0..=3usize, 1..=3)
            .prop_flat_map(|s| { let n = s.len(); (Just(s), 0..n, prop::collection::vec(0..=3usize, 1..=3)) }),
        dt in dtype(),
        seed in 0u64..1000,
    ) {
        // parts that agree on all axes but `ax`
        let parts: Vec<Arr> = sizes.iter().enumerate().map(|(p, &sz)| {
            let mut s = base.clone();
            s[ax] = sz;
            Arr::from_fn(&s, |i| (seed as usize + p * 31 + i.iter().sum::<usize>() * 7) as f64 % 13.0 - 6.0)
        }).collect();
        let tensors: Vec<Tensor> = parts.iter().enumerate().map(|(i, a)| crate::laid_out(a, [crate::Lay::Contiguous, crate::Lay::Transposed, crate::Lay::Sliced][i % 3], dt)).collect();
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let mut shape = base.clone();
        shape[ax] = sizes.iter().sum();
        let offsets: Vec<usize> = sizes.iter().scan(0, |acc, &s| { let o = *acc; *acc += s; Some(o) }).collect();
        let expect = Arr::from_fn(&shape, |i| {
            let p = (0..sizes.len()).rev().find(|&p| i[ax] >= offsets[p] && sizes[p] > 0).unwrap();
            let mut j = i.to_vec();
            j[ax] -= offsets[p];
            parts[p].get(&j)
        });
        check(&Tensor::concat(&refs, ax as isize), &expect, 0.0, "concat");
        // stack equal shapes along a new axis
        let same: Vec<Tensor> = (0..sizes.len()).map(|p| crate::laid_out(&parts[0].map(|v| v + p as f64), crate::Lay::Transposed, dt)).collect();
        let same_refs: Vec<&Tensor> = same.iter().collect();
        let mut sshape = parts[0].shape.clone();
        sshape.insert(ax, sizes.len());
        let sexpect = Arr::from_fn(&sshape, |i| {
            let mut j = i.to_vec();
            let p = j.remove(ax);
            parts[0].get(&j) + p as f64
        });
        check(&Tensor::stack(&same_refs, ax as isize), &sexpect, 0.0, "stack");
    }
}

#[test]
fn views_do_not_copy() {
    let x = Tensor::arange(0.0, 24.0, 1.0, DType::F32).reshape(&[2, 3, 4]);
    assert!(x.is_contiguous());
    let p = x.permute(&[2, 0, 1]);
    assert!(!p.is_contiguous());
    assert_eq!(p.strides(), &[1, 12, 4]);
    let s = x.slice(2, 1, 3);
    assert_eq!(s.strides(), &[12, 4, 1]);
    let b = Tensor::ones(&[4], DType::F32).broadcast_to(&[3, 4]);
    assert_eq!(b.strides(), &[0, 1]);
    // merging a transposed pair of axes back is a view; splitting across the gap is not
    let t = x.transpose(0, 1); // [3, 2, 4]
    assert_eq!(t.reshape(&[3, 2, 2, 2]).strides(), &[4, 12, 2, 1]);
    let r = t.reshape(&[6, 4]);
    assert!(r.is_contiguous());
    assert_eq!(r.to_vec::<f32>()[4..8], [12.0, 13.0, 14.0, 15.0]);
}

#[test]
fn layout_strategies_really_are_strided() {
    let a = Arr::from_fn(&[3, 4], |i| (i[0] * 4 + i[1]) as f64);
    for lay in [
        crate::Lay::Transposed,
        crate::Lay::Sliced,
        crate::Lay::Stepped,
    ] {
        let t = crate::laid_out(&a, lay, DType::F64);
        assert!(!t.is_contiguous(), "{lay:?}");
        check(&t, &a, 0.0, "laid out");
    }
}

#[test]
fn int_and_bool_tensors_have_views_too() {
    let i = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], &[2, 3]);
    assert_eq!(i.t().contiguous().to_vec::<i32>(), vec![1, 4, 2, 5, 3, 6]);
    let b = Tensor::from_vec(vec![true, false], &[2]);
    assert_eq!(
        Tensor::stack(&[&b, &b], 1).to_vec::<bool>(),
        vec![true, true, false, false]
    );
    let sel = i.index_select(1, &Tensor::from_vec(vec![2i32, 2], &[2]));
    assert_eq!(sel.to_vec::<i32>(), vec![3, 3, 6, 6]);
}

#[test]
fn large_index_selects_take_the_parallel_path() {
    // [6, 300, 200] (360K elements): outputs past the parallel threshold, gathered along
    // every axis, against the element formula
    let (a, b, c) = (6, 300, 200);
    let x = Tensor::arange(0.0, (a * b * c) as f64, 1.0, DType::F32).reshape(&[a, b, c]);
    let value = |i: usize, j: usize, k: usize| ((i * b + j) * c + k) as f32;
    for axis in 0..3 {
        let size = [a, b, c][axis];
        let picks: Vec<i32> = (0..size * 2).map(|p| ((p * 7 + 3) % size) as i32).collect();
        let idx = Tensor::from_vec(picks.clone(), &[picks.len()]);
        let got = x.index_select(axis as isize, &idx);
        let mut shape = [a, b, c];
        shape[axis] = picks.len();
        assert_eq!(got.shape(), &shape[..]);
        let got = got.to_vec::<f32>();
        let mut at = 0;
        for i in 0..shape[0] {
            for j in 0..shape[1] {
                for k in 0..shape[2] {
                    let mut src = [i, j, k];
                    src[axis] = picks[src[axis]] as usize;
                    assert_eq!(
                        got[at],
                        value(src[0], src[1], src[2]),
                        "axis {axis} at {i},{j},{k}"
                    );
                    at += 1;
                }
            }
        }
    }
}

#[test]
fn transposed_copies_of_whole_and_partial_tiles() {
    // planes with whole 8x8 tiles and ragged edges, one of them past the parallel
    // threshold, copied out of transposed and permuted views
    for &(a, b, c) in &[(1, 37, 50), (3, 64, 40), (2, 520, 300)] {
        let x = Tensor::arange(0.0, (a * b * c) as f64, 1.0, DType::F32).reshape(&[a, b, c]);
        let value = |i: usize, j: usize, k: usize| ((i * b + j) * c + k) as f32;
        let t = x.transpose(1, 2).contiguous().to_vec::<f32>();
        let mut at = 0;
        for i in 0..a {
            for k in 0..c {
                for j in 0..b {
                    assert_eq!(
                        t[at],
                        value(i, j, k),
                        "[{a},{b},{c}] transposed at {i},{k},{j}"
                    );
                    at += 1;
                }
            }
        }
        let p = x.permute(&[2, 0, 1]).contiguous().to_vec::<f32>();
        let mut at = 0;
        for k in 0..c {
            for i in 0..a {
                for j in 0..b {
                    assert_eq!(
                        p[at],
                        value(i, j, k),
                        "[{a},{b},{c}] permuted at {k},{i},{j}"
                    );
                    at += 1;
                }
            }
        }
    }
}

#[test]
fn index_add_is_the_transpose_of_index_select() {
    // <index_select(x, i), s> == <x, index_add(0, i, s)> for every x and s, along every
    // axis, with repeated indices and a 2-d index tensor; and a base is added to
    for dt in [DType::F32, DType::F64] {
        let shape = [4, 5, 3];
        for axis in 0..3 {
            let size = shape[axis];
            let picks: Vec<i32> = (0..6).map(|p| ((p * 5 + 1) % size) as i32).collect();
            let idx = Tensor::from_vec(picks.clone(), &[2, 3]);
            let x = Tensor::normal(Key::new(7 + axis as u64), &shape, dt);
            let gathered = x.index_select(axis as isize, &idx);
            let s = Tensor::normal(Key::new(17 + axis as u64), gathered.shape(), dt);
            let base = Tensor::normal(Key::new(27 + axis as u64), &shape, dt);
            let added = base.index_add(axis as isize, &idx, &s);
            assert_eq!(added.shape(), &shape);
            let lhs = (&gathered * &s).sum().to_dtype(DType::F64).item::<f64>();
            let rhs = (&x * &(&added - &base))
                .sum()
                .to_dtype(DType::F64)
                .item::<f64>();
            assert!(
                (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
                "axis {axis} {dt:?}: {lhs} vs {rhs}"
            );
        }
    }
    // repeated indices add up; untouched rows keep the base
    let base = Tensor::full(&[3, 2], 1.0, DType::F32);
    let rows = Tensor::from_vec(vec![1.0f32, 2.0, 10.0, 20.0, 100.0, 200.0], &[3, 2]);
    let idx = Tensor::from_vec(vec![2i32, 0, 2], &[3]);
    assert_eq!(
        base.index_add(0, &idx, &rows).to_vec::<f32>(),
        vec![11.0, 21.0, 1.0, 1.0, 102.0, 203.0]
    );
    // a large one, on the parallel path
    let big = Tensor::zeros(&[64, 100, 50], DType::F64);
    let idx = Tensor::from_vec((0..150i32).map(|p| p % 100).collect::<Vec<_>>(), &[150]);
    let src = Tensor::ones(&[64, 150, 50], DType::F64);
    let out = big.index_add(1, &idx, &src).to_vec::<f64>();
    for (at, &v) in out.iter().enumerate() {
        let row = at / 50 % 100;
        assert_eq!(v, if row < 50 { 2.0 } else { 1.0 }, "element {at}");
    }
}

#[test]
fn roll_pad_and_unpad_match_index_arithmetic() {
    let x = Tensor::arange(0.0, 24.0, 1.0, DType::F64).reshape(&[2, 3, 4]);
    let v = x.to_vec::<f64>();
    for axis in [0isize, 1, 2, -1] {
        let ax = axis.rem_euclid(3) as usize;
        let n = x.shape()[ax] as isize;
        for shift in [-5isize, -1, 0, 1, 2, 7] {
            let r = x.roll(shift, axis).to_vec::<f64>();
            for (i, got) in r.iter().enumerate() {
                let mut idx = [i / 12, (i / 4) % 3, i % 4];
                idx[ax] = ((idx[ax] as isize - shift).rem_euclid(n)) as usize;
                assert_eq!(
                    *got,
                    v[idx[0] * 12 + idx[1] * 4 + idx[2]],
                    "roll {shift} on {axis}"
                );
            }
        }
    }
    // a transposed view rolls as its values
    let t = x.transpose(0, 2);
    assert_eq!(
        t.roll(1, 0).to_vec::<f64>(),
        t.contiguous().roll(1, 0).to_vec::<f64>()
    );
    let pads = [(1, 0), (0, 2), (2, 1)];
    let p = x.pad(&pads);
    assert_eq!(p.shape(), &[3, 5, 7]);
    assert_eq!(p.sum().item::<f64>(), x.sum().item::<f64>());
    assert_eq!(
        p.slice(0, 1, 3)
            .slice(1, 0, 3)
            .slice(2, 2, 6)
            .to_vec::<f64>(),
        v
    );
    assert_eq!(p.unpad(&pads).to_vec::<f64>(), v);
    // an empty axis rolls to itself; f32 pads in f32
    let e = Tensor::zeros(&[0, 3], DType::F32);
    assert_eq!(e.roll(3, 0).shape(), &[0, 3]);
    assert_eq!(e.pad(&[(1, 1), (0, 0)]).dtype(), DType::F32);
    // errors name the operation
    let err = |r: Result<Tensor, Error>| r.unwrap_err().to_string();
    assert!(err(x.try_roll(1, 3)).contains("roll"));
    assert!(err(x.try_pad(&[(1, 1)])).contains("pad: one (before, after) pair per axis"));
    assert!(
        err(x.try_unpad(&[(0, 0), (2, 2), (0, 0)])).contains("unpad: pads (2, 2) exceed axis 1")
    );
}

#[test]
fn pad_modes_copy_the_values_numpy_copies_and_their_transposes_are_adjoint() {
    // np.pad([1, 2, 3], (2, 3), mode) for each mode
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
    let cases = [
        (PadMode::Zeros, [0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0]),
        (PadMode::Edge, [1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]),
        (PadMode::Reflect, [3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0]),
        (PadMode::Symmetric, [2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 2.0, 1.0]),
        (PadMode::Wrap, [2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0]),
    ];
    for (mode, want) in cases {
        assert_eq!(
            x.pad_with(&[(2, 3)], mode).to_vec::<f64>(),
            want,
            "{mode:?}"
        );
    }
    // pads longer than the axis: np.pad([1, 2], (5, 4), 'reflect') and a single element
    let two = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
    assert_eq!(
        two.pad_with(&[(5, 4)], PadMode::Reflect).to_vec::<f64>(),
        [2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
    );
    assert_eq!(
        two.pad_with(&[(3, 3)], PadMode::Symmetric).to_vec::<f64>(),
        [2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0]
    );
    let one = Tensor::from_vec(vec![5.0f32], &[1]);
    assert_eq!(
        one.pad_with(&[(2, 1)], PadMode::Reflect).to_vec::<f32>(),
        [5.0; 4]
    );
    // each mode on three axes of a transposed f32 view: every element is the element its
    // index maps back to, and <pad(x), y> = <x, pad_transpose(y)>
    let base = Tensor::normal(Key::new(7), &[4, 2, 3], DType::F32);
    let x = base.permute(&[2, 0, 1]); // [3, 4, 2]
    let pads = [(2, 1), (0, 3), (1, 1)];
    for mode in PadMode::ALL {
        let p = x.pad_with(&pads, mode);
        assert_eq!(p.shape(), &[6, 7, 4]);
        let xv = x.contiguous().to_vec::<f32>();
        let pv = p.to_vec::<f32>();
        let back = |i: usize, n: usize, before: usize| -> Option<usize> {
            let j = i as isize - before as isize;
            let n = n as isize;
            if (0..n).contains(&j) {
                return Some(j as usize);
            }
            let k = match mode {
                PadMode::Zeros => return None,
                PadMode::Edge => j.clamp(0, n - 1),
                PadMode::Wrap => j.rem_euclid(n),
                // walk the mirror one step at a time
                PadMode::Reflect | PadMode::Symmetric => {
                    let mut k = j;
                    while !(0..n).contains(&k) {
                        k = match (mode, k < 0) {
                            (PadMode::Reflect, true) => -k,
                            (PadMode::Reflect, false) => 2 * (n - 1) - k,
                            (_, true) => -k - 1,
                            (_, false) => 2 * n - 1 - k,
                        };
                    }
                    k
                }
            };
            Some(k as usize)
        };
        for a in 0..6 {
            for b in 0..7 {
                for c in 0..4 {
                    let src = (back(a, 3, 2), back(b, 4, 0), back(c, 2, 1));
                    let want = match src {
                        (Some(i), Some(j), Some(k)) => xv[i * 8 + j * 2 + k],
                        _ => 0.0,
                    };
                    assert_eq!(pv[a * 28 + b * 4 + c], want, "{mode:?} at ({a}, {b}, {c})");
                }
            }
        }
        let y = Tensor::normal(Key::new(8), &[6, 7, 4], DType::F32);
        let lhs = (&p * &y).sum().item::<f32>();
        let pt = y.pad_with_transpose(&pads, mode);
        assert_eq!(pt.shape(), &[3, 4, 2]);
        let rhs = (&x * &pt).sum().item::<f32>();
        assert!(
            (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
            "{mode:?}: {lhs} against {rhs}"
        );
    }
    // errors name the operation and what does not fit
    let err = |r: Result<Tensor, Error>| r.unwrap_err().to_string();
    let e = Tensor::zeros(&[0, 3], DType::F32);
    assert_eq!(
        e.pad_with(&[(1, 1), (0, 0)], PadMode::Zeros).shape(),
        &[2, 3]
    );
    assert!(
        err(e.try_pad_with(&[(1, 1), (0, 0)], PadMode::Edge))
            .contains("pad_with: axis 0 of shape [0, 3] is empty")
    );
    assert!(
        err(x.try_pad_with(&[(1, 1)], PadMode::Wrap))
            .contains("pad_with: one (before, after) pair per axis")
    );
    assert!(
        err(x.try_pad_with_transpose(&[(0, 0), (3, 2), (0, 0)], PadMode::Edge))
            .contains("pad_with_transpose: pads (3, 2) exceed axis 1 of size 4")
    );
}
