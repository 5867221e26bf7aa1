//! Elementwise chains that generated code runs as one call (`fuse::run`): the same values,
//! bit for bit, as the chain's `t::` / `b::` helpers one by one, whichever path the call
//! takes (one blocked pass from 8192 elements, parts computed once, or op by op), and
//! chains in user code whose values are reassigned between their links.

mod common;
use common::tensors::{assert_close, fd_jacobian, normal};

use ferrax::__private::b::{self, B, BArg};
use ferrax::__private::fuse::{self, Instr, Op};
use ferrax::__private::t;
use ferrax::prelude::*;

#[track_caller]
fn same_bits(got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape());
    assert_eq!(got.dtype(), want.dtype());
    let (g, w) = (
        got.to_dtype(DType::F64).to_vec::<f64>(),
        want.to_dtype(DType::F64).to_vec::<f64>(),
    );
    assert!(
        g.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()),
        "fused {g:?}\nagainst {w:?}"
    );
}

#[test]
fn a_chain_in_one_call_equals_its_helpers_one_by_one() {
    // tanh's derivative, ct * (1 - y * y), `y` shared by the rows, in f32
    let ct = normal(1, &[70, 300]).to_dtype(DType::F32);
    let y = normal(2, &[300]).to_dtype(DType::F32).tanh();
    let got = fuse::run(
        &[BArg::from(&ct), BArg::from(&y), BArg::from(1f64)],
        &[
            Instr(Op::Mul, [1, 1, 0]),
            Instr(Op::Sub, [2, 3, 0]),
            Instr(Op::Mul, [0, 4, 0]),
        ],
    );
    same_bits(&got, &t::mul(&ct, &t::sub(1f64, &t::mul(&y, &y))));

    // a relu's tangent: select(x > 0, dx, 0), with powi and a float operand
    let (x, dx) = (normal(3, &[90, 100]), normal(4, &[90, 100]));
    let got = fuse::run(
        &[
            BArg::from(&x),
            BArg::from(0f64),
            BArg::from(&dx),
            BArg::from(0.5f32),
        ],
        &[
            Instr(Op::Gt, [0, 1, 0]),
            Instr(Op::Powi(3), [2, 0, 0]),
            Instr(Op::Mul, [5, 3, 0]),
            Instr(Op::Select, [4, 6, 1]),
        ],
    );
    let want = t::select(&t::gt(&x, 0f64), &t::mul(&t::powi(&dx, 3), 0.5f32), 0f64);
    same_bits(&got, &want);
}

#[test]
fn a_batched_chain_aligns_its_examples_as_the_batching_rules_do() {
    // B(dx) [5, 40, 50] * x [50] + B(v) [5, 40, 50] * sin(x): sin(x), smaller than the
    // result, computed once and read as a row
    let (dx, x, v) = (
        normal(5, &[5, 40, 50]),
        normal(6, &[50]),
        normal(7, &[5, 40, 50]),
    );
    let got = fuse::run(
        &[BArg::from(B(&dx)), BArg::from(&x), BArg::from(B(&v))],
        &[
            Instr(Op::Mul, [0, 1, 0]),
            Instr(Op::Sin, [1, 0, 0]),
            Instr(Op::Mul, [2, 4, 0]),
            Instr(Op::Add, [3, 5, 0]),
        ],
    );
    let want = b::add(B(&b::mul(B(&dx), &x)), B(&b::mul(B(&v), &t::sin(&x))));
    same_bits(&got, &want);
}

#[test]
fn operands_the_blocked_pass_does_not_take_run_op_by_op() {
    // a transpose, and a column broadcast along rows
    let (a, col) = (normal(8, &[96, 100]).t(), normal(9, &[100, 1]));
    let got = fuse::run(
        &[BArg::from(&a), BArg::from(&col)],
        &[Instr(Op::Exp, [0, 0, 0]), Instr(Op::Mul, [2, 1, 0])],
    );
    same_bits(&got, &t::mul(&t::exp(&a), &col));
    // mixed dtypes: as the helpers, an error naming the operation
    let (f32s, f64s) = (
        normal(10, &[100, 96]).to_dtype(DType::F32),
        normal(12, &[96]),
    );
    let mixed = std::panic::catch_unwind(|| {
        fuse::run(
            &[BArg::from(&f32s), BArg::from(&f64s)],
            &[Instr(Op::Exp, [0, 0, 0]), Instr(Op::Mul, [2, 1, 0])],
        )
    });
    assert!(mixed.is_err());
}

/// A chain whose operand is reassigned between its links: `a` reads the first `h`.
#[grad]
fn reassigned(x: &Tensor) -> Tensor {
    let mut h = x.exp();
    let a = &h * 2.0;
    h = x.sin();
    let b = (a + &h).tanh();
    b.sum()
}

#[test]
fn a_value_reassigned_between_the_links_of_a_chain_is_read_where_it_was() {
    let x = normal(11, &[3, 4]);
    let u = &x.exp() * 2.0 + x.sin();
    let b = u.tanh();
    assert_close(&reassigned(&x), &b.sum(), 1e-12, "value");
    let g = reassigned_grad(&x);
    let want = (1.0 - &b * &b) * (&x.exp() * 2.0 + x.cos());
    assert_close(&g, &want, 1e-12, "gradient against the closed form");
    assert_close(
        &g,
        &fd_jacobian(&reassigned, &x).reshape(x.shape()),
        1e-6,
        "differences",
    );
}
