//! Elementwise chains that generated code runs as one call (`fuse::run`, with the chain as
//! a program and as a compiled kernel): the same values, bit for bit, as the chain's `t::`
//! / `b::` helpers one by one, whichever path the call takes (one pass of the kernel from
//! 8192 elements, or op by op), and chains in user code whose values are reassigned
//! between their links.

mod common;
use common::tensors::{assert_close, fd_jacobian, normal};

use ferrax::__private::b::{self, B, BArg};
use ferrax::__private::fuse::{self, Instr, Op};
use ferrax::__private::t;
use ferrax::prelude::*;

/// `struct $name`, a kernel over `[$x..]` computing `$body` (as the macro writes them).
macro_rules! kernel {
    ($name:ident, $n:literal, |$v:ident, [$($x:ident),*]| $body:expr) => {
        #[derive(Clone, Copy)]
        struct $name;
        impl fuse::Kernel<$n> for $name {
            fn apply<V: fuse::Lanes>(self, $v: V, [$($x),*]: [V::Vec; $n]) -> V::Vec {
                use fuse::k;
                $body
            }
        }
    };
}

kernel!(TanhGrad, 3, |v, [ct, y, one]| k::Mul(
    v,
    ct,
    k::Sub(v, one, k::Mul(v, y, y))
));
kernel!(ReluTangent, 4, |v, [x, zero, dx, half]| {
    let m = k::Gt(v, x, zero);
    k::Select(v, m, k::Mul(v, k::Powi(v, dx, 3), half), zero)
});
kernel!(Batched, 3, |v, [dx, x, w]| k::Add(
    v,
    k::Mul(v, dx, x),
    k::Mul(v, w, k::Sin(v, x))
));
kernel!(ExpTimes, 2, |v, [a, c]| k::Mul(v, k::Exp(v, a), c));

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
        TanhGrad,
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
        ReluTangent,
    );
    let want = t::select(&t::gt(&x, 0f64), &t::mul(&t::powi(&dx, 3), 0.5f32), 0f64);
    same_bits(&got, &want);
}

#[test]
fn a_batched_chain_aligns_its_examples_as_the_batching_rules_do() {
    // B(dx) [5, 40, 50] * x [50] + B(v) [5, 40, 50] * sin(x): x read as a row
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
        Batched,
    );
    let want = b::add(B(&b::mul(B(&dx), &x)), B(&b::mul(B(&v), &t::sin(&x))));
    same_bits(&got, &want);
}

#[test]
fn a_chain_over_two_batch_levels_equals_the_chain_over_their_repeats() {
    // a per-example Jacobian's pass: `d` per example [b1, ..], `t` per basis element
    // [n, ..] (the same for every example), `f` over the flat batch [b1 * n, ..]; as one
    // chain, each read as it is, against the chain over their copies along the flat batch.
    // Blocked (f32, 64 x 3 x 64 and 256 x 3 x 64 elements, a row broadcast beside them)
    // and op by op (small), with and without a flat operand
    for (b1, n, width) in [(64usize, 3usize, 64usize), (256, 3, 64), (5, 2, 7)] {
        let d = normal(11, &[b1, width]).to_dtype(DType::F32);
        let t = normal(12, &[n, width]).to_dtype(DType::F32);
        let f = normal(13, &[b1 * n, width]).to_dtype(DType::F32);
        let row = normal(14, &[width]).to_dtype(DType::F32);
        let (d_flat, t_flat) = (b::repeat_outer(B(&d), n), b::repeat_inner(B(&t), b1));
        let program = [
            Instr(Op::Sub, [0, 1, 0]),
            Instr(Op::Mul, [2, 5, 0]),
            Instr(Op::Mul, [6, 3, 0]),
            Instr(Op::Add, [7, 4, 0]),
        ];
        fn args<'a>(d: &'a Tensor, t: &'a Tensor, f: &'a Tensor, row: &'a Tensor) -> [BArg<'a>; 5] {
            [
                BArg::from(1f64),
                BArg::from(B(d)),
                BArg::from(B(t)),
                BArg::from(B(f)),
                BArg::from(row),
            ]
        }
        kernel!(Levels, 5, |v, [one, d, t, f, row]| k::Add(
            v,
            k::Mul(v, k::Mul(v, t, k::Sub(v, one, d)), f),
            row
        ));
        let got = fuse::run_nested(&args(&d, &t, &f, &row), &[1], &[2], &program, Levels);
        let want = fuse::run(&args(&d_flat, &t_flat, &f, &row), &program, Levels);
        same_bits(&got, &want);
        // no flat operand: both levels give the flat batch's size
        let program = [Instr(Op::Sub, [0, 1, 0]), Instr(Op::Mul, [2, 3, 0])];
        kernel!(Two, 3, |v, [one, d, t]| k::Mul(v, t, k::Sub(v, one, d)));
        let got = fuse::run_nested(&args(&d, &t, &f, &row)[..3], &[1], &[2], &program, Two);
        assert_eq!(got.shape(), &[b1 * n, width]);
        let want = fuse::run(&args(&d_flat, &t_flat, &f, &row)[..3], &program, Two);
        same_bits(&got, &want);
    }
}

#[test]
fn operands_the_one_pass_does_not_take_run_op_by_op() {
    // a transpose, and a column broadcast along rows
    let (a, col) = (normal(8, &[96, 100]).t(), normal(9, &[100, 1]));
    let got = fuse::run(
        &[BArg::from(&a), BArg::from(&col)],
        &[Instr(Op::Exp, [0, 0, 0]), Instr(Op::Mul, [2, 1, 0])],
        ExpTimes,
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
            ExpTimes,
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

/// A value read by several links (`s`), each of which recomputes it in its own chain, and
/// several contributions to one adjoint (`x`'s), summed in one chain.
#[grad]
fn shared(x: &Tensor) -> Tensor {
    let s = x.sigmoid();
    let a = &s * x;
    let b: Tensor = (1.0 - &s) * x.exp();
    (a + &b * &s).sum()
}

/// The gradient of [`shared`] in closed form: with `s' = s (1 - s)`,
/// `d/dx [s x + (1 - s) s e^x] = s' x + s + e^x [(1 - 2 s) s' + (1 - s) s]`.
fn shared_grad_closed(x: &Tensor) -> Tensor {
    let s = x.sigmoid();
    let ds = &s * (1.0 - &s);
    let e = x.exp();
    &ds * x + &s + e * ((1.0 - &s * 2.0) * &ds + (1.0 - &s) * &s)
}

#[test]
fn a_value_read_by_several_links_is_recomputed_by_each() {
    // op by op (35 elements) and in one blocked pass (10240)
    for shape in [[5, 7], [64, 160]] {
        let x = normal(12, &shape);
        assert_close(
            &shared_grad(&x),
            &shared_grad_closed(&x),
            1e-12,
            "closed form",
        );
    }
    let x = normal(13, &[5, 7]);
    assert_close(
        &shared_grad(&x),
        &fd_jacobian(&shared, &x).reshape(x.shape()),
        1e-6,
        "differences",
    );
}

/// A value read by two links with one of its operands reassigned between them: the
/// second link cannot recompute `s` (its `h` is no longer the one `s` read), so `s` is
/// kept for it.
#[grad]
fn shared_across_reassignment(x: &Tensor) -> Tensor {
    let mut h = x.exp();
    let s = h.tanh();
    let a = &s * 2.0;
    h = x.sin();
    let b = &s + &h;
    (a * b).sum()
}

#[test]
fn a_shared_value_whose_operand_is_reassigned_is_read_where_it_was_computed() {
    for shape in [[5, 7], [64, 160]] {
        let x = normal(14, &shape);
        let (e, sin) = (x.exp(), x.sin());
        let s = e.tanh();
        let want_value = ((&s * 2.0) * (&s + &sin)).sum();
        assert_close(&shared_across_reassignment(&x), &want_value, 1e-12, "value");
        // d/dx sum(2 s^2 + 2 s sin x) = (4 s + 2 sin x) (1 - s^2) e^x + 2 s cos x
        let want = (&s * 4.0 + &sin * 2.0) * (1.0 - &s * &s) * &e + &s * 2.0 * x.cos();
        assert_close(
            &shared_across_reassignment_grad(&x),
            &want,
            1e-12,
            "gradient",
        );
    }
}

/// An adjoint accumulated from several contributions, with a product's added in place
/// between them: the contributions before it are summed in one chain that declares `x`'s
/// adjoint, those after it in one chain that adds to it.
#[grad]
fn accumulated(x: &Tensor, w: &Tensor) -> Tensor {
    let a = x.sin() * x.exp();
    let m = x.matmul(w);
    (a.tanh() + x.cos()).sum() + (m.tanh() * x.sigmoid()).sum()
}

#[test]
fn contributions_to_an_adjoint_summed_in_one_chain_match_differences_and_forward_mode() {
    let (x, w) = (normal(15, &[5, 5]), normal(16, &[5, 5]));
    let (gx, gw) = accumulated_grad(&x, &w);
    let fx = fd_jacobian(&|x: &Tensor| accumulated(x, &w), &x);
    let fw = fd_jacobian(&|w: &Tensor| accumulated(&x, w), &w);
    assert_close(
        &gx,
        &fx.reshape(x.shape()),
        1e-6,
        "d/dx against differences",
    );
    assert_close(
        &gw,
        &fw.reshape(w.shape()),
        1e-6,
        "d/dw against differences",
    );
    // in one blocked pass: the gradient along a direction against forward mode
    let (x, w) = (normal(17, &[96, 96]), normal(18, &[96, 96]));
    let (dx, dw) = (normal(19, &[96, 96]), normal(20, &[96, 96]));
    let (gx, gw) = accumulated_grad(&x, &w);
    let (_, tangent) = accumulated_jvp(&x, &w, &dx, &dw);
    let along = (gx * &dx).sum() + (gw * &dw).sum();
    assert_close(&along, &tangent, 1e-10, "reverse against forward mode");
}
