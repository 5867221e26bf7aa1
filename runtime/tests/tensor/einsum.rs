//! `einsum` against a loop over every assignment of the letters (matrix products, batched
//! ones, traces, diagonals, outer products, sums, permutations, chains of three and four
//! operands, scalars, empty axes), on contiguous operands and views, in f32 and f64;
//! `...` against the same spec written with letters, broadcasting included;
//! `einsum_transpose` by the adjoint identity `<ct, einsum(.., a, ..)> = <einsum_transpose(ct), a>`;
//! errors.

use std::collections::HashMap;

use ferrax_runtime::prelude::*;

use crate::vals;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(vals(shape.iter().product(), seed), shape)
}

/// `spec` (letters only, explicit output) by a loop over every assignment of its letters.
fn reference(spec: &str, ops: &[&Tensor]) -> (Vec<f64>, Vec<usize>) {
    let (lhs, out) = spec.split_once("->").unwrap();
    let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    let out: Vec<char> = out.chars().collect();
    let mut size = HashMap::new();
    for (t, op) in terms.iter().zip(ops) {
        for (c, &d) in t.iter().zip(op.shape()) {
            assert_eq!(*size.entry(*c).or_insert(d), d);
        }
    }
    let mut letters: Vec<char> = size.keys().copied().collect();
    letters.sort_unstable();
    let data: Vec<Vec<f64>> = ops
        .iter()
        .map(|t| t.to_dtype(DType::F64).to_vec::<f64>())
        .collect();
    let out_shape: Vec<usize> = out.iter().map(|c| size[c]).collect();
    let mut result = vec![0.0; out_shape.iter().product()];
    let total: usize = letters.iter().map(|c| size[c]).product();
    let flat = |t: &[char], at: &HashMap<char, usize>| t.iter().fold(0, |f, c| f * size[c] + at[c]);
    for mut n in 0..total {
        let mut at = HashMap::new();
        for c in letters.iter().rev() {
            at.insert(*c, n % size[c]);
            n /= size[c];
        }
        let p: f64 = terms
            .iter()
            .zip(&data)
            .map(|(t, d)| d[flat(t, &at)])
            .product();
        result[flat(&out, &at)] += p;
    }
    (result, out_shape)
}

fn close(got: &Tensor, want: &[f64], shape: &[usize], tol: f64, what: &str) {
    assert_eq!(got.shape(), shape, "{what}");
    let got = got.to_dtype(DType::F64).to_vec::<f64>();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// Specs with their operands' shapes.
const CASES: &[(&str, &[&[usize]])] = &[
    ("ij,jk->ik", &[&[3, 4], &[4, 5]]),
    ("ji,jk->ik", &[&[4, 3], &[4, 5]]),
    ("ij,kj->ki", &[&[3, 4], &[5, 4]]),
    ("bij,bjk->bik", &[&[2, 3, 4], &[2, 4, 5]]),
    ("bhqd,bhkd->bhqk", &[&[2, 3, 4, 5], &[2, 3, 6, 5]]),
    ("ijk,jkl->il", &[&[2, 3, 4], &[3, 4, 5]]),
    ("ii->", &[&[4, 4]]),
    ("ii->i", &[&[4, 4]]),
    ("iij->j", &[&[3, 3, 2]]),
    ("iji->j", &[&[3, 2, 3]]),
    ("ij->", &[&[3, 4]]),
    ("ij->j", &[&[3, 4]]),
    ("ijk->kij", &[&[2, 3, 4]]),
    ("i,j->ij", &[&[3], &[4]]),
    ("i,i->", &[&[5], &[5]]),
    ("bi,bi->b", &[&[4, 6], &[4, 6]]),
    ("ij,ij->ij", &[&[3, 4], &[3, 4]]),
    ("ij,k->i", &[&[3, 4], &[5]]),
    ("i,ij,j->", &[&[3], &[3, 4], &[4]]),
    ("ij,jk,kl->il", &[&[2, 30], &[30, 3], &[3, 40]]),
    ("ab,bc,cd,de->ae", &[&[2, 3], &[3, 4], &[4, 5], &[5, 2]]),
    ("ij,jk,ki->", &[&[3, 4], &[4, 5], &[5, 3]]),
    ("ij,ji->ij", &[&[3, 4], &[4, 3]]),
    ("i,i,i->", &[&[4], &[4], &[4]]),
    ("bi,bj,b->ij", &[&[5, 2], &[5, 3], &[5]]),
    ("ij,ij,ij->i", &[&[3, 4], &[3, 4], &[3, 4]]),
    (",ij->ij", &[&[], &[2, 3]]),
    ("->", &[&[]]),
    ("ij,jk->ik", &[&[0, 4], &[4, 5]]),
    ("ij,jk->ik", &[&[3, 0], &[0, 5]]),
    ("bij,bjk->bik", &[&[2, 1, 4], &[2, 4, 1]]),
];

#[test]
fn einsum_matches_a_loop_over_its_letters() {
    for (c, (spec, shapes)) in CASES.iter().enumerate() {
        let ops: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| rand(s, (c * 10 + i) as u64))
            .collect();
        let refs: Vec<&Tensor> = ops.iter().collect();
        let (want, shape) = reference(spec, &refs);
        close(&Tensor::einsum(spec, &refs), &want, &shape, 1e-12, spec);
        // f32
        let ops32: Vec<Tensor> = ops.iter().map(|t| t.to_dtype(DType::F32)).collect();
        let refs32: Vec<&Tensor> = ops32.iter().collect();
        let got = Tensor::einsum(spec, &refs32);
        assert_eq!(got.dtype(), DType::F32);
        close(&got, &want, &shape, 1e-5, spec);
        // views: each operand as the transpose of a transposed copy (a strided layout)
        let views: Vec<Tensor> = ops
            .iter()
            .map(|t| {
                if t.ndim() < 2 {
                    return t.clone();
                }
                let r = t.ndim() as isize;
                t.transpose(0, r - 1).contiguous().transpose(0, r - 1)
            })
            .collect();
        let refs: Vec<&Tensor> = views.iter().collect();
        close(&Tensor::einsum(spec, &refs), &want, &shape, 1e-12, spec);
    }
}

#[test]
fn implicit_outputs_are_the_letters_written_once_sorted() {
    let a = rand(&[3, 4], 1);
    let b = rand(&[4, 5], 2);
    let explicit = Tensor::einsum("ij,jk->ik", &[&a, &b]);
    assert_eq!(
        Tensor::einsum("ij,jk", &[&a, &b]).to_vec::<f64>(),
        explicit.to_vec::<f64>()
    );
    // `ba,cb` is `ac` (sorted), i.e. the transpose of `ab,bc->ca`
    let t = Tensor::einsum("ba,cb", &[&b, &a]);
    let want = Tensor::einsum("ba,cb->ac", &[&b, &a]);
    assert_eq!(t.to_vec::<f64>(), want.to_vec::<f64>());
    assert_eq!(t.shape(), &[5, 3]);
    // spaces are ignored
    assert_eq!(
        Tensor::einsum(" i j , j k -> i k ", &[&a, &b]).to_vec::<f64>(),
        explicit.to_vec::<f64>()
    );
}

#[test]
fn ellipsis_axes_broadcast_as_letters_would() {
    // `...ij,...jk->...ik` with batch shapes [1, 2] and [3, 1]: as letters on broadcast copies
    let a = rand(&[1, 2, 3, 4], 5);
    let b = rand(&[3, 1, 4, 5], 6);
    let got = Tensor::einsum("...ij,...jk->...ik", &[&a, &b]);
    let (ab, bb) = (a.broadcast_to(&[3, 2, 3, 4]), b.broadcast_to(&[3, 2, 4, 5]));
    let (want, shape) = reference("xyij,xyjk->xyik", &[&ab, &bb]);
    close(&got, &want, &shape, 1e-12, "batched matmul");
    close(&a.matmul(&b), &want, &shape, 1e-12, "matmul itself");
    // fewer axes under `...` on one side (right-aligned), and `...` in the middle and at the end
    let v = rand(&[4], 7);
    let got = Tensor::einsum("...j,j->...", &[&a, &v]);
    let (want, shape) = reference("xyij,j->xyi", &[&a, &v]);
    close(&got, &want, &shape, 1e-12, "matvec");
    let x = rand(&[2, 3, 4, 5], 8);
    let got = Tensor::einsum("i...j->j...i", &[&x]);
    let (want, shape) = reference("ixyj->jxyi", &[&x]);
    close(&got, &want, &shape, 1e-12, "middle");
    let got = Tensor::einsum("i...->i", &[&x]);
    let (want, shape) = reference("ixyz->i", &[&x]);
    close(&got, &want, &shape, 1e-12, "summed");
    // implicit output: `...` first
    let got = Tensor::einsum("...ij,...jk", &[&a, &b]);
    assert_eq!(got.shape(), &[3, 2, 3, 5]);
    // `...` standing for nothing
    let m = rand(&[3, 4], 9);
    assert_eq!(
        Tensor::einsum("...ij->...ji", &[&m]).to_vec::<f64>(),
        m.t().contiguous().to_vec::<f64>()
    );
}

/// `<ct, einsum(ops)>` against `<einsum_transpose(ct), ops[k]>` for every operand `k`.
fn adjoint(spec: &str, shapes: &[&[usize]], seed: u64) {
    let ops: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| rand(s, seed + i as u64))
        .collect();
    let refs: Vec<&Tensor> = ops.iter().collect();
    let y = Tensor::einsum(spec, &refs);
    let ct = rand(y.shape(), seed + 100);
    let lhs = (&ct * &y).sum().item::<f64>();
    for k in 0..ops.len() {
        let g = Tensor::einsum_transpose(spec, k, &ct, &refs);
        assert_eq!(g.shape(), ops[k].shape(), "{spec}, operand {k}");
        let rhs = (&g * &ops[k]).sum().item::<f64>();
        assert!(
            (lhs - rhs).abs() <= 1e-12 * (1.0 + lhs.abs()),
            "{spec}, operand {k}: {lhs} vs {rhs}"
        );
        // and against the derivative it is: the gradient of <ct, einsum> in ops[k], by
        // changing one element at a time (einsum is linear in each operand)
        let flat = ops[k].to_vec::<f64>();
        let gv = g.to_vec::<f64>();
        for i in 0..flat.len().min(7) {
            let mut e = vec![0.0; flat.len()];
            e[i] = 1.0;
            let mut bumped = refs.clone();
            let unit = Tensor::from_vec(e, ops[k].shape());
            bumped[k] = &unit;
            let d = (&ct * &Tensor::einsum(spec, &bumped)).sum().item::<f64>();
            assert!(
                (d - gv[i]).abs() <= 1e-12 * (1.0 + d.abs()),
                "{spec}, operand {k}[{i}]"
            );
        }
    }
}

#[test]
fn transposes_are_the_adjoints() {
    for (c, (spec, shapes)) in CASES.iter().enumerate() {
        adjoint(spec, shapes, c as u64 * 7);
    }
    // letters only one operand has (broadcast back), repeated letters (a diagonal back),
    // broadcast `...` axes (summed back), implicit outputs
    adjoint("ij,k->i", &[&[3, 4], &[5]], 1);
    adjoint("iij,jk->ik", &[&[3, 3, 2], &[2, 4]], 2);
    adjoint("iii->i", &[&[3, 3, 3]], 3);
    adjoint("...ij,...jk->...ik", &[&[1, 2, 3, 4], &[3, 1, 4, 5]], 4);
    adjoint("...j,j", &[&[2, 3, 4], &[4]], 5);
    adjoint("i...,...->i", &[&[2, 3, 1], &[4]], 6);
}

#[test]
fn bad_specs_shapes_and_dtypes_are_errors_naming_them() {
    let a = rand(&[3, 4], 1);
    let b = rand(&[5, 6], 2);
    let err = |spec: &str, ops: &[&Tensor]| Tensor::try_einsum(spec, ops).unwrap_err().to_string();
    let e = err("ij,jk->ik", &[&a, &b]);
    assert!(
        e.contains("`j` has size 4 in operand 0 (shape [3, 4]) but 5 in operand 1 (shape [5, 6])"),
        "{e}"
    );
    let e = err("ijk->i", &[&a]);
    assert!(
        e.contains("operand 0 has shape [3, 4] (2 axes) but its term `ijk` names 3"),
        "{e}"
    );
    let e = err("ij->ik", &[&a]);
    assert!(
        e.contains("the output's `k` is in no operand's term"),
        "{e}"
    );
    let e = err("ij,jk->ik", &[&a]);
    assert!(e.contains("2 operand term(s) for 1 operand(s)"), "{e}");
    let e = err("...ij,...jk", &[&rand(&[2, 3, 4], 3), &rand(&[3, 4, 5], 4)]);
    assert!(e.contains("axes of `...` has size 2 in operand 0"), "{e}");
    let e = err("ij,jk", &[&a, &rand(&[4, 2], 5).to_dtype(DType::F32)]);
    assert!(e.contains("einsum: dtype mismatch"), "{e}");
    let e = err("i", &[&Tensor::from_vec(vec![1i32, 2], &[2])]);
    assert!(e.contains("einsum") && e.contains("i32"), "{e}");
    assert!(err("i", &[]).contains("needs at least one operand"));
    let e =
        Tensor::try_einsum_transpose("ij,jk->ik", 0, &rand(&[3, 3], 6), &[&a, &rand(&[4, 2], 7)])
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("einsum_transpose: shapes [3, 3] and [3, 2]"),
        "{e}"
    );
    let e = Tensor::try_einsum_transpose("ij", 1, &a, &[&a])
        .unwrap_err()
        .to_string();
    assert!(e.contains("einsum_transpose: operand 1 of 1"), "{e}");
}
