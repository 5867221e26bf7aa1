//! `einsum`: products and sums of tensors written in Einstein's index notation
//! (`"bij,bjk->bik"`), as NumPy's and JAX's `einsum`, `...` standing for axes that
//! broadcast.
//!
//! Each operand's axes are named by letters; a letter in several operands pairs their
//! axes, and a letter the output lacks is summed over. Without `->` the output is the
//! letters written once, in alphabetical order (after `...` where there is one).
//!
//! Evaluation: each operand first drops the axes it broadcasts (size 1 against a larger
//! size: constant along that letter), reads the diagonal of a letter it repeats (a view),
//! and sums the letters no other operand and not the output has. Then operands are
//! contracted two at a time, the pair costing the fewest multiplications first (the
//! greedy order of opt_einsum, which JAX uses, chosen from the shapes at run time). A pair
//! sharing a summed letter is one batched matrix product (each side permuted and reshaped
//! to `[batch.., rows, summed]`); a pair sharing none is a broadcast product. Everything is
//! built from other tensor operations, so it runs wherever they do (the GPU included).
//!
//! The transpose with respect to one operand ([`Tensor::einsum_transpose`], what reverse
//! mode needs) is another contraction: of the cotangent with the other operands, into
//! the operand's letters; a letter it alone had comes back broadcast, a repeated letter
//! as a diagonal (times an identity), a broadcast axis summed.

use std::collections::HashMap;

use crate::cpu::kernels::BinaryOp;
use crate::element::DType;
use crate::error::{Error, Result, unwrap};
use crate::shape::Layout;
use crate::tensor::Tensor;
use ferrax_einsum_spec::{Spec, Term};

const OP: &str = "einsum";

/// An axis's name: a letter's code point, or past every `char` for the axes `...` stands
/// for and for the helpers' own names.
type Label = u32;
/// The label of the first axis `...` stands for (the others follow).
const ELLIPSIS: Label = 0x11_0000;
/// The first label the transpose makes up for axes of its own.
const FRESH: Label = 0x20_0000;

fn bad(spec: &str, message: impl std::fmt::Display) -> Error {
    Error::InvalidArgument {
        op: OP,
        message: format!("spec {spec:?}: {message}"),
    }
}

fn parse(spec: &str, n: usize) -> Result<Spec> {
    Spec::parse(spec, n).map_err(|m| bad(spec, m))
}

/// The spec with letters resolved against shapes: each operand's and the output's axes as
/// labels (`...` expanded, right-aligned as broadcasting aligns), and each label's size.
struct Resolved {
    ops: Vec<Vec<Label>>,
    out: Vec<Label>,
    size: HashMap<Label, usize>,
}

/// A term's labels when `...` stands for the last `e` of `rank` broadcast axes.
fn labels(t: &Term, rank: usize, e: usize) -> Vec<Label> {
    let mut out: Vec<Label> = t.letters.iter().map(|&c| c as Label).collect();
    if let Some(p) = t.ellipsis {
        let dots = (rank - e..rank).map(|j| ELLIPSIS + j as Label);
        out.splice(p..p, dots);
    }
    out
}

fn resolve(spec_text: &str, spec: &Spec, shapes: &[&[usize]]) -> Result<Resolved> {
    let mut rank = 0;
    for (i, (t, shape)) in spec.inputs.iter().zip(shapes).enumerate() {
        let named = t.letters.len();
        let ok = match t.ellipsis {
            None => shape.len() == named,
            Some(_) => shape.len() >= named,
        };
        if !ok {
            return Err(bad(
                spec_text,
                format!(
                    "operand {i} has shape {shape:?} ({} axes) but its term `{t}` names {named}{}",
                    shape.len(),
                    if t.ellipsis.is_some() {
                        " besides `...`"
                    } else {
                        ""
                    }
                ),
            ));
        }
        rank = rank.max(shape.len() - named);
    }
    let mut size: HashMap<Label, usize> = HashMap::new();
    let mut first: HashMap<Label, usize> = HashMap::new();
    let mut ops = Vec::with_capacity(shapes.len());
    for (i, (t, shape)) in spec.inputs.iter().zip(shapes).enumerate() {
        let ls = labels(t, rank, shape.len() - t.letters.len());
        for (&l, &d) in ls.iter().zip(shape.iter()) {
            match size.get(&l).copied() {
                None => {
                    size.insert(l, d);
                    first.insert(l, i);
                }
                Some(s) if s == d => {}
                Some(s) if l >= ELLIPSIS && (s == 1 || d == 1) => {
                    size.insert(l, s.max(d));
                }
                Some(s) => {
                    let j = first[&l];
                    let what = if l >= ELLIPSIS {
                        "axes of `...`".to_string()
                    } else {
                        format!("`{}`", char::from_u32(l).unwrap_or('?'))
                    };
                    return Err(bad(
                        spec_text,
                        format!(
                            "{what} has size {s} in operand {j} (shape {:?}) but {d} in operand {i} (shape {shape:?})",
                            shapes[j]
                        ),
                    ));
                }
            }
        }
        ops.push(ls);
    }
    let out = labels(&spec.output, rank, rank);
    Ok(Resolved { ops, out, size })
}

/// `t` (axes named by `ls`) without the axes it broadcasts (size 1 against a larger size)
/// and with one axis for each repeated label, its diagonal (a view).
fn canonical(t: &Tensor, ls: &[Label], size: &HashMap<Label, usize>) -> (Tensor, Vec<Label>) {
    let l = &t.layout;
    let (mut shape, mut strides, mut out) = (Vec::new(), Vec::new(), Vec::<Label>::new());
    for (a, &lab) in ls.iter().enumerate() {
        if l.shape[a] == 1 && size[&lab] != 1 {
            continue;
        }
        if let Some(p) = out.iter().position(|&x| x == lab) {
            strides[p] += l.strides[a];
            continue;
        }
        shape.push(l.shape[a]);
        strides.push(l.strides[a]);
        out.push(lab);
    }
    let layout = Layout {
        shape: shape.into_iter().collect(),
        strides: strides.into_iter().collect(),
        offset: l.offset,
    };
    (t.with_layout(layout), out)
}

/// `t` summed over the axes whose label `keep` refuses.
fn sum_out(
    t: Tensor,
    ls: Vec<Label>,
    keep: impl Fn(Label) -> bool,
) -> Result<(Tensor, Vec<Label>)> {
    let mut t = t;
    let mut kept = Vec::with_capacity(ls.len());
    for (a, &l) in ls.iter().enumerate().rev() {
        if keep(l) {
            kept.push(l);
        } else {
            t = t.try_sum_axis(a as isize, false)?;
        }
    }
    kept.reverse();
    Ok((t, kept))
}

/// `t` with its axes in the order of `order` (which lists each of them), and a size-1 axis
/// for each label of `order` it lacks.
fn align(t: &Tensor, ls: &[Label], order: &[Label]) -> Result<Tensor> {
    let perm: Vec<isize> = order
        .iter()
        .filter_map(|l| ls.iter().position(|x| x == l).map(|p| p as isize))
        .collect();
    let mut t = t.try_permute(&perm)?;
    for (a, l) in order.iter().enumerate() {
        if !ls.contains(l) {
            t = t.try_unsqueeze(a as isize)?;
        }
    }
    Ok(t)
}

fn sizes(ls: &[Label], size: &HashMap<Label, usize>) -> Vec<usize> {
    ls.iter().map(|l| size[l]).collect()
}

/// Two operands contracted: the labels both have and `keep` refuses are summed.
fn pair(
    (x, lx): (Tensor, Vec<Label>),
    (y, ly): (Tensor, Vec<Label>),
    keep: &dyn Fn(Label) -> bool,
    size: &HashMap<Label, usize>,
) -> Result<(Tensor, Vec<Label>)> {
    let (batch, summed): (Vec<Label>, Vec<Label>) = lx
        .iter()
        .filter(|l| ly.contains(l))
        .partition(|&&l| keep(l));
    let xf: Vec<Label> = lx.iter().copied().filter(|l| !ly.contains(l)).collect();
    let yf: Vec<Label> = ly.iter().copied().filter(|l| !lx.contains(l)).collect();
    let out: Vec<Label> = [&batch[..], &xf, &yf].concat();
    if summed.is_empty() || (xf.is_empty() && yf.is_empty()) {
        // a broadcast product, then the shared letters summed (a batched dot product)
        let all: Vec<Label> = [&out[..], &summed].concat();
        let p = align(&x, &lx, &all)?.try_binary(OP, BinaryOp::Mul, &align(&y, &ly, &all)?)?;
        return sum_out(p, all, |l| !summed.contains(&l));
    }
    let prod = |ls: &[Label]| ls.iter().map(|l| size[l]).product::<usize>();
    let (m, k, n) = (prod(&xf), prod(&summed), prod(&yf));
    let lead = sizes(&batch, size);
    let xm = align(&x, &lx, &[&batch[..], &xf, &summed].concat())?
        .try_reshape(&[&lead[..], &[m, k]].concat())?;
    let ym = align(&y, &ly, &[&batch[..], &summed, &yf].concat())?
        .try_reshape(&[&lead[..], &[k, n]].concat())?;
    let p = xm.try_matmul(&ym)?.try_reshape(&sizes(&out, size))?;
    Ok((p, out))
}

/// The contraction of `ops` (each with its axes' labels) into the labels `out`: a label of
/// `out` no operand has is a new axis broadcast to its size, a label `out` repeats a
/// diagonal (the rest zero).
fn contract(
    ops: Vec<(Tensor, Vec<Label>)>,
    out: &[Label],
    size: &HashMap<Label, usize>,
) -> Result<Tensor> {
    let count = |ops: &[(Tensor, Vec<Label>)], l: Label, skip: usize| {
        out.contains(&l)
            || ops
                .iter()
                .enumerate()
                .any(|(j, (_, ls))| j != skip && ls.contains(&l))
    };
    let canon: Vec<(Tensor, Vec<Label>)> =
        ops.iter().map(|(t, ls)| canonical(t, ls, size)).collect();
    let mut ops = Vec::with_capacity(canon.len());
    for i in 0..canon.len() {
        let (t, ls) = canon[i].clone();
        ops.push(sum_out(t, ls, |l| count(&canon, l, i))?);
    }
    while ops.len() > 1 {
        // the pair costing the fewest multiplications (the product of its letters' sizes)
        let mut best = (usize::MAX, 0, 1);
        for i in 0..ops.len() {
            for j in i + 1..ops.len() {
                let mut union = ops[i].1.clone();
                union.extend(ops[j].1.iter().filter(|l| !ops[i].1.contains(l)));
                let cost = union.iter().fold(1usize, |c, l| c.saturating_mul(size[l]));
                if cost < best.0 {
                    best = (cost, i, j);
                }
            }
        }
        let (_, i, j) = best;
        let y = ops.remove(j);
        let x = ops.remove(i);
        let rest: Vec<Label> = ops.iter().flat_map(|(_, ls)| ls.iter().copied()).collect();
        let keep = |l: Label| out.contains(&l) || rest.contains(&l);
        ops.push(pair(x, y, &keep, size)?);
    }
    let (t, ls) = ops.pop().expect("einsum has at least one operand");
    let (t, ls) = sum_out(t, ls, |l| out.contains(&l))?;
    // a repeated output label's later places get labels of their own, made a diagonal below
    let mut distinct: Vec<Label> = Vec::with_capacity(out.len());
    let mut diagonals = Vec::new();
    let mut sz = size.clone();
    for (a, &l) in out.iter().enumerate() {
        match distinct.iter().position(|&x| x == l) {
            Some(p) => {
                let fresh = FRESH + 0x1000 + a as Label;
                sz.insert(fresh, size[&l]);
                distinct.push(fresh);
                diagonals.push((p, a));
            }
            None => distinct.push(l),
        }
    }
    let mut t = align(&t, &ls, &distinct)?;
    let full = sizes(&distinct, &sz);
    if t.shape() != full {
        t = t.try_broadcast_to(&full)?;
    }
    for (p, a) in diagonals {
        let n = full[a];
        let mut shape = vec![1; full.len()];
        shape[p] = n;
        shape[a] = n;
        let eye = Tensor::eye(n, t.dtype())
            .try_to_device(&t.device())?
            .try_reshape(&shape)?;
        t = t.try_binary(OP, BinaryOp::Mul, &eye)?;
    }
    Ok(t)
}

/// The operands' common float dtype.
fn dtype_of(operands: &[&Tensor]) -> Result<DType> {
    let Some(first) = operands.first() else {
        return Err(Error::InvalidArgument {
            op: OP,
            message: "needs at least one operand".into(),
        });
    };
    first.expect_float(OP)?;
    for o in &operands[1..] {
        Tensor::expect_same_float(OP, first, o)?;
    }
    Ok(first.dtype())
}

impl Tensor {
    /// Sums of products of `operands`' elements written in Einstein's index notation, as
    /// `numpy.einsum` / `jnp.einsum`: `"ij,jk->ik"` is a matrix product, `"bij,bjk->bik"`
    /// a batched one, `"ii->"` a trace, `"i,j->ij"` an outer product, `"...ij->...ji"` a
    /// transpose of the last two axes whatever comes before. Each operand's axes are named
    /// by letters (`...` for any number of leading, trailing or middle axes, which
    /// broadcast); letters shared by operands pair their axes, letters missing from the
    /// output are summed. Without `->`, the output is the letters written once, sorted.
    ///
    /// Operands are contracted two at a time, the cheapest pair first, each as a batched
    /// matrix product. Panics for a malformed spec, shapes that disagree with it or each
    /// other, or operands of different or integer dtypes; see [`Tensor::try_einsum`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    /// let b = Tensor::from_vec(vec![1.0f32, 0.0, 1.0, 1.0], &[2, 2]);
    /// assert_eq!(Tensor::einsum("ij,jk->ik", &[&a, &b]).to_vec::<f32>(), a.matmul(&b).to_vec::<f32>());
    /// assert_eq!(Tensor::einsum("ii", &[&a]).item::<f32>(), 5.0); // the trace
    /// assert_eq!(Tensor::einsum("ij->j", &[&a]).to_vec::<f32>(), vec![4.0, 6.0]);
    /// ```
    #[track_caller]
    pub fn einsum(spec: &str, operands: &[&Tensor]) -> Tensor {
        unwrap(Tensor::try_einsum(spec, operands))
    }

    /// [`Tensor::einsum`], returning an error instead of panicking.
    pub fn try_einsum(spec: &str, operands: &[&Tensor]) -> Result<Tensor> {
        dtype_of(operands)?;
        let parsed = parse(spec, operands.len())?;
        let shapes: Vec<&[usize]> = operands.iter().map(|t| t.shape()).collect();
        let r = resolve(spec, &parsed, &shapes)?;
        let ops = operands
            .iter()
            .zip(r.ops)
            .map(|(t, ls)| ((*t).clone(), ls))
            .collect();
        contract(ops, &r.out, &r.size).map_err(|e| e.for_op(OP))
    }

    /// The transpose of [`Tensor::einsum`] in operand `k` (which is read for its shape
    /// only): the cotangent of that operand given the cotangent `ct` of the result, the
    /// other operands fixed (reverse mode's rule: einsum is linear in each operand). It is
    /// the contraction of `ct` with the other operands into operand `k`'s letters; a
    /// letter only that operand had comes back broadcast, a letter it repeats as a
    /// diagonal, an axis it broadcast summed. Panics where [`Tensor::einsum`] would, for a
    /// `k` out of range, or a `ct` not shaped as the result; see
    /// [`Tensor::try_einsum_transpose`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // d(sum(a b))/da = ones bᵀ
    /// let a = Tensor::zeros(&[2, 3], DType::F64);
    /// let b = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    /// let ct = Tensor::ones(&[2, 2], DType::F64);
    /// let da = Tensor::einsum_transpose("ij,jk->ik", 0, &ct, &[&a, &b]);
    /// assert_eq!(da.to_vec::<f64>(), vec![3.0, 7.0, 11.0, 3.0, 7.0, 11.0]);
    /// ```
    #[track_caller]
    pub fn einsum_transpose(spec: &str, k: usize, ct: &Tensor, operands: &[&Tensor]) -> Tensor {
        unwrap(Tensor::try_einsum_transpose(spec, k, ct, operands))
    }

    /// [`Tensor::einsum_transpose`], returning an error instead of panicking.
    pub fn try_einsum_transpose(
        spec: &str,
        k: usize,
        ct: &Tensor,
        operands: &[&Tensor],
    ) -> Result<Tensor> {
        const T: &str = "einsum_transpose";
        dtype_of(operands).map_err(|e| e.for_op(T))?;
        Tensor::expect_same_float(T, operands[0], ct)?;
        if k >= operands.len() {
            return Err(Error::InvalidArgument {
                op: T,
                message: format!("operand {k} of {}", operands.len()),
            });
        }
        let parsed = parse(spec, operands.len()).map_err(|e| e.for_op(T))?;
        let shapes: Vec<&[usize]> = operands.iter().map(|t| t.shape()).collect();
        let r = resolve(spec, &parsed, &shapes).map_err(|e| e.for_op(T))?;
        let out_shape = sizes(&r.out, &r.size);
        if ct.shape() != out_shape {
            return Err(Error::ShapeMismatch {
                op: T,
                lhs: ct.shape().to_vec(),
                rhs: out_shape,
                reason: format!("differ: the cotangent must have the shape of {spec:?}'s result"),
            });
        }
        let mut size = r.size.clone();
        // an axis operand k broadcast: its own size-1 label, so the rest is summed into it
        let target: Vec<Label> = r.ops[k]
            .iter()
            .zip(shapes[k])
            .enumerate()
            .map(|(a, (&l, &d))| {
                if d == 1 && size[&l] != 1 {
                    let fresh = FRESH + a as Label;
                    size.insert(fresh, 1);
                    fresh
                } else {
                    l
                }
            })
            .collect();
        let mut ops = vec![(ct.clone(), r.out.clone())];
        for (j, (t, ls)) in operands.iter().zip(&r.ops).enumerate() {
            if j != k {
                ops.push(((*t).clone(), ls.clone()));
            }
        }
        contract(ops, &target, &size).map_err(|e| e.for_op(T))
    }
}

/// `spec` for operands of which those marked in `batched` carry a batch axis in front (and
/// so does the result, where any does), as `vmap`'s batching rule for `einsum` needs: a
/// letter the spec does not use names the new axis, and the output is made explicit.
///
/// ```
/// # use ferrax_runtime::einsum_batched_spec;
/// assert_eq!(einsum_batched_spec("ij,jk", &[true, false]).unwrap(), "aij,jk->aik");
/// ```
pub fn einsum_batched_spec(spec: &str, batched: &[bool]) -> Result<String> {
    let parsed = parse(spec, batched.len())?;
    Ok(parsed
        .batched(batched)
        .map_err(|m| bad(spec, m))?
        .to_string())
}
