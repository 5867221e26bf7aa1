//! `fused::run` (an elementwise program in one blocked pass) against the same program run
//! op by op with the tensor operations, bit for bit: random programs over leaves shaped
//! like the result, single elements, rows broadcast along leading axes, leaves broadcast
//! along a middle axis (`[n, 1, d]` against `[n, m, d]`) and columns, in f32 and f64,
//! small (one thread) and large (split over threads), with periods that divide the block
//! and periods that do not; `fused::eval` on the same programs, by the pass and (with a
//! transposed leaf) instruction by instruction; and the same programs as compiled kernels
//! (`fused::run_kernel`, here a kernel that walks the program on each vector).

use ferrax_runtime::cpu::kernels::{BinaryOp, CmpOp, UnaryOp};
use ferrax_runtime::fused::{self, Instr, Kernel, Lanes, Leaf, Op};
use ferrax_runtime::prelude::*;
use proptest::prelude::*;

const UNARY: [UnaryOp; 11] = [
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Tanh,
    UnaryOp::Sqrt,
    UnaryOp::Sin,
    UnaryOp::Relu,
    UnaryOp::Sigmoid,
    UnaryOp::Softplus,
    UnaryOp::Powi(3),
    UnaryOp::Recip,
    UnaryOp::Powf(1.5),
];
const BINARY: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::Atan2,
];
const COMPARE: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];

/// One operation on whole tensors, as the tensor API computes it.
fn whole(op: Op, a: &[Tensor]) -> Tensor {
    match op {
        Op::Unary(u) => {
            let x = &a[0];
            match u {
                UnaryOp::Neg => -x,
                UnaryOp::Exp => x.exp(),
                UnaryOp::Tanh => x.tanh(),
                UnaryOp::Sqrt => x.sqrt(),
                UnaryOp::Sin => x.sin(),
                UnaryOp::Relu => x.relu(),
                UnaryOp::Sigmoid => x.sigmoid(),
                UnaryOp::Softplus => x.softplus(),
                UnaryOp::Powi(n) => x.powi(n),
                UnaryOp::Recip => x.recip(),
                UnaryOp::Powf(p) => x.powf(p),
                other => unreachable!("{other:?} is not drawn"),
            }
        }
        Op::Binary(b) => {
            let (x, y) = (&a[0], &a[1]);
            match b {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                BinaryOp::Div => x / y,
                BinaryOp::Maximum => x.maximum(y),
                BinaryOp::Minimum => x.minimum(y),
                BinaryOp::Atan2 => x.atan2(y),
                other => unreachable!("{other:?} is not drawn"),
            }
        }
        Op::Compare(c) => {
            let (x, y) = (&a[0], &a[1]);
            let m = match c {
                CmpOp::Eq => x.eq(y),
                CmpOp::Ne => x.ne(y),
                CmpOp::Lt => x.lt(y),
                CmpOp::Le => x.le(y),
                CmpOp::Gt => x.gt(y),
                CmpOp::Ge => x.ge(y),
            };
            m.to_dtype(x.dtype())
        }
        Op::Select => Tensor::where_(&a[0], &a[1], &a[2]),
    }
}

/// The program run op by op: each leaf a tensor (a scalar as a 0-d one), each
/// instruction through [`whole`].
fn op_by_op(leaves: &[Leaf<'_>], program: &[Instr], dtype: DType) -> Tensor {
    let mut regs: Vec<Tensor> = leaves
        .iter()
        .map(|l| match l {
            Leaf::Tensor(t) => (*t).clone(),
            Leaf::Scalar(v) => Tensor::full(&[], *v, dtype),
        })
        .collect();
    for Instr(op, args) in program {
        let a: Vec<Tensor> = args[..op.arity()]
            .iter()
            .map(|&r| regs[r as usize].clone())
            .collect();
        regs.push(whole(*op, &a));
    }
    regs.pop().expect("a program")
}

/// A program as a compiled kernel over `LEAVES` leaves (the program's `leaves`, then
/// padding): each instruction through [`Lanes`] on each vector, as the macro's kernels
/// call them.
#[derive(Clone, Copy)]
struct PerVector<'a> {
    program: &'a [Instr],
    leaves: usize,
}

const LEAVES: usize = 6;

impl Kernel<LEAVES> for PerVector<'_> {
    fn apply<V: Lanes>(self, v: V, x: [V::Vec; LEAVES]) -> V::Vec {
        let mut regs = [x[0]; 16];
        regs[..self.leaves].copy_from_slice(&x[..self.leaves]);
        for (k, Instr(op, a)) in self.program.iter().enumerate() {
            let r = |i: usize| regs[a[i] as usize];
            regs[self.leaves + k] = match *op {
                Op::Unary(u) => match u {
                    UnaryOp::Neg => v.neg(r(0)),
                    UnaryOp::Exp => v.exp(r(0)),
                    UnaryOp::Tanh => v.tanh(r(0)),
                    UnaryOp::Sqrt => v.sqrt(r(0)),
                    UnaryOp::Sin => v.sin(r(0)),
                    UnaryOp::Relu => v.relu(r(0)),
                    UnaryOp::Sigmoid => v.sigmoid(r(0)),
                    UnaryOp::Softplus => v.softplus(r(0)),
                    UnaryOp::Powi(n) => v.powi(r(0), n),
                    UnaryOp::Recip => v.recip(r(0)),
                    other => unreachable!("{other:?} has no kernel here"),
                },
                Op::Binary(b) => match b {
                    BinaryOp::Add => v.add(r(0), r(1)),
                    BinaryOp::Sub => v.sub(r(0), r(1)),
                    BinaryOp::Mul => v.mul(r(0), r(1)),
                    BinaryOp::Div => v.div(r(0), r(1)),
                    BinaryOp::Maximum => v.max(r(0), r(1)),
                    BinaryOp::Minimum => v.min(r(0), r(1)),
                    BinaryOp::Atan2 => v.atan2(r(0), r(1)),
                    BinaryOp::Pow => v.powf(r(0), r(1)),
                },
                Op::Compare(c) => match c {
                    CmpOp::Eq => v.eq(r(0), r(1)),
                    CmpOp::Ne => v.ne(r(0), r(1)),
                    CmpOp::Lt => v.lt(r(0), r(1)),
                    CmpOp::Le => v.le(r(0), r(1)),
                    CmpOp::Gt => v.gt(r(0), r(1)),
                    CmpOp::Ge => v.ge(r(0), r(1)),
                },
                Op::Select => v.select(r(0), r(1), r(2)),
            };
        }
        regs[self.leaves + self.program.len() - 1]
    }
}

fn same_bits(got: &Tensor, want: &Tensor) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.shape(), want.shape());
    prop_assert_eq!(got.dtype(), want.dtype());
    let (g, w) = (
        got.to_dtype(DType::F64).to_vec::<f64>(),
        want.to_dtype(DType::F64).to_vec::<f64>(),
    );
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        prop_assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "element {i}: fused {a} against op by op {b}"
        );
    }
    Ok(())
}

/// A leaf of the result's `[rows, mid, cols]`: 0 shaped like it, 1 a single element, 2 a
/// row (the last axis), 3 a number, 4 broadcast along the middle axis (`[rows, 1, cols]`),
/// 5 a column (`[rows, mid, 1]`).
fn leaf_tensor(kind: u8, key: u64, shape: &[usize], dtype: DType) -> Option<Tensor> {
    let s: Vec<usize> = match kind {
        0 => shape.to_vec(),
        1 => vec![1; shape.len()],
        2 => shape[shape.len() - 1..].to_vec(),
        4 => vec![shape[0], 1, shape[2]],
        5 => vec![shape[0], shape[1], 1],
        _ => return None,
    };
    let t = Tensor::normal(Key::new(key), &s, dtype);
    // exact zeros among them, so that masks and selects see both values
    Some(t.maximum(&t.scalar_like(-1.0)) * (&t.gt(&t.scalar_like(-0.9)).to_dtype(dtype)))
}

fn instr() -> impl Strategy<Value = (u8, usize, [u16; 3])> {
    (0u8..4, 0usize..9, prop::array::uniform3(0u16..64))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_program_in_one_pass_equals_its_operations_one_by_one(
        f64_ in any::<bool>(),
        rows in prop_oneof![1usize..4, Just(300usize)],
        mid in prop_oneof![Just(1usize), 2usize..4, Just(17usize)],
        cols in prop_oneof![2usize..9, Just(64usize), Just(200usize), Just(2048usize), Just(2049usize), Just(3000usize)],
        kinds in prop::collection::vec(0u8..6, 1..5),
        numbers in prop::collection::vec(-2.0f64..2.0, 4),
        code in prop::collection::vec(instr(), 1..7),
        key in 0u64..1000,
    ) {
        let dtype = if f64_ { DType::F64 } else { DType::F32 };
        let shape = [rows, mid, cols];
        let tensors: Vec<Option<Tensor>> = kinds
            .iter()
            .enumerate()
            .map(|(i, &k)| leaf_tensor(k, key * 16 + i as u64, &shape, dtype))
            .collect();
        // one full leaf, so that the result has the full shape
        let full = leaf_tensor(0, key * 16 + 15, &shape, dtype).unwrap();
        let mut leaves = vec![Leaf::Tensor(&full)];
        for (t, x) in tensors.iter().zip(&numbers) {
            leaves.push(match t {
                Some(t) => Leaf::Tensor(t),
                None => Leaf::Scalar(*x),
            });
        }
        let mut program = Vec::new();
        for (k, (class, pick, regs)) in code.iter().enumerate() {
            let op = match class {
                0 => Op::Unary(UNARY[pick % UNARY.len()]),
                1 => Op::Binary(BINARY[pick % BINARY.len()]),
                2 => Op::Compare(COMPARE[pick % COMPARE.len()]),
                _ => Op::Select,
            };
            let n = (leaves.len() + k) as u16;
            // the first operand of the first instruction is the full leaf
            let mut args = regs.map(|r| r % n);
            if k == 0 {
                args[0] = 0;
            }
            program.push(Instr(op, args));
        }
        // a last instruction that reads the full leaf, so that the result is full-shaped
        let last = (leaves.len() + program.len() - 1) as u16;
        program.push(Instr(Op::Binary(BinaryOp::Add), [last, 0, 0]));
        let want = op_by_op(&leaves, &program, dtype);
        let got = fused::run(&leaves, &program, want.shape()).expect("the fast path applies");
        same_bits(&got, &want)?;
        // the program compiled (but for `powf` by a number, which kernels write as a
        // binary `powf`): the same values, leaves padded with numbers (results of up to
        // 50,000 elements: walking the program on each vector is slow unoptimised; the
        // test below runs a large kernel over threads)
        if want.numel() <= 50_000
            && !program.iter().any(|i| matches!(i.0, Op::Unary(UnaryOp::Powf(_))))
        {
            let mut padded = [Leaf::Scalar(0.0); LEAVES];
            padded[..leaves.len()].copy_from_slice(&leaves);
            let kernel = PerVector { program: &program, leaves: leaves.len() };
            let got = fused::run_kernel(&padded, kernel, want.shape()).expect("the fast path applies");
            same_bits(&got, &want)?;
        }
        // `eval`: the same pass, and with the full leaf a transposed view (which the pass
        // refuses) the instructions one by one through the tensor operations
        same_bits(&fused::eval("program", &leaves, &program).unwrap(), &want)?;
        let transposed = full.permute(&[0, 2, 1]).contiguous().permute(&[0, 2, 1]);
        leaves[0] = Leaf::Tensor(&transposed);
        if mid > 1 {
            prop_assert!(fused::run(&leaves, &program, want.shape()).is_none());
        }
        same_bits(&fused::eval("program", &leaves, &program).unwrap(), &want)?;
    }
}

#[test]
fn the_derivative_of_tanh_in_one_pass() {
    // ct * (1 - y * y), the rows of `ct` sharing one `y` (a bias-like broadcast)
    let ct = Tensor::normal(Key::new(1), &[64, 3000], DType::F32);
    let y = Tensor::normal(Key::new(2), &[3000], DType::F32).tanh();
    let program = [
        Instr(Op::Binary(BinaryOp::Mul), [1, 1, 0]),
        Instr(Op::Binary(BinaryOp::Sub), [2, 3, 0]),
        Instr(Op::Binary(BinaryOp::Mul), [0, 4, 0]),
    ];
    let leaves = [Leaf::Tensor(&ct), Leaf::Tensor(&y), Leaf::Scalar(1.0)];
    let got = fused::run(&leaves, &program, &[64, 3000]).unwrap();
    let want = &ct * &(1.0 - &(&y * &y));
    assert_eq!(got.to_vec::<f32>(), want.to_vec::<f32>());
    // compiled, over threads where there are several
    #[derive(Clone, Copy)]
    struct TanhGrad;
    impl Kernel<3> for TanhGrad {
        fn apply<V: Lanes>(self, v: V, [ct, y, one]: [V::Vec; 3]) -> V::Vec {
            v.mul(ct, v.sub(one, v.mul(y, y)))
        }
    }
    let got = fused::run_kernel(&leaves, TanhGrad, &[64, 3000]).unwrap();
    assert_eq!(got.to_vec::<f32>(), want.to_vec::<f32>());
    // the rows along a middle axis, in f64
    let ct = Tensor::normal(Key::new(3), &[40, 3, 2000], DType::F64);
    let y = Tensor::normal(Key::new(4), &[40, 1, 2000], DType::F64).tanh();
    let leaves = [Leaf::Tensor(&ct), Leaf::Tensor(&y), Leaf::Scalar(1.0)];
    let got = fused::run_kernel(&leaves, TanhGrad, &[40, 3, 2000]).unwrap();
    let want = &ct * &(1.0 - &(&y * &y));
    assert_eq!(got.to_vec::<f64>(), want.to_vec::<f64>());
    // a leaf of one value broadcast to the whole result (a stride-0 view, as a lazy zero
    // adjoint is) taken as a number
    let y = Tensor::full(&[1], 0.25, DType::F64).broadcast_to(&[40, 3, 2000]);
    let leaves = [Leaf::Tensor(&ct), Leaf::Tensor(&y), Leaf::Scalar(1.0)];
    let got = fused::run_kernel(&leaves, TanhGrad, &[40, 3, 2000]).unwrap();
    let want = &ct * &(1.0 - &(&y * &y));
    assert_eq!(got.to_vec::<f64>(), want.to_vec::<f64>());
    assert!(fused::run(&leaves, &program, &[40, 3, 2000]).is_some());
}

#[test]
fn what_the_fast_path_does_not_take_is_left_to_the_caller() {
    let x = Tensor::normal(Key::new(3), &[4, 5], DType::F32);
    let add = [Instr(Op::Binary(BinaryOp::Add), [0, 1, 0])];
    let run = |a: &Tensor, b: &Tensor, shape: &[usize]| {
        fused::run(&[Leaf::Tensor(a), Leaf::Tensor(b)], &add, shape)
    };
    assert!(run(&x, &x, &[4, 5]).is_some());
    // mixed dtypes, integers, a transpose, a broadcast along two separate runs of axes
    assert!(run(&x, &x.to_dtype(DType::F64), &[4, 5]).is_none());
    let ints = Tensor::from_vec(vec![1i32; 20], &[4, 5]);
    assert!(run(&x, &ints, &[4, 5]).is_none());
    let xt = Tensor::normal(Key::new(4), &[5, 4], DType::F32).t();
    assert!(run(&x, &xt, &[4, 5]).is_none());
    let column = Tensor::normal(Key::new(5), &[4, 1], DType::F32);
    assert!(run(&x, &column, &[4, 5]).is_some());
    let cube = Tensor::normal(Key::new(6), &[3, 4, 5], DType::F32);
    let middle = Tensor::normal(Key::new(7), &[1, 4, 1], DType::F32);
    assert!(run(&cube, &middle, &[3, 4, 5]).is_none());
    // one element, a register read before it is written
    let one = Tensor::scalar(2.0f32);
    assert!(run(&one, &one, &[]).is_none());
    let ahead = [Instr(Op::Binary(BinaryOp::Add), [0, 2, 0])];
    assert!(fused::run(&[Leaf::Tensor(&x), Leaf::Tensor(&x)], &ahead, &[4, 5]).is_none());
    // `eval` makes these errors naming the operation
    let e = fused::eval("ahead", &[Leaf::Tensor(&x), Leaf::Tensor(&x)], &ahead).unwrap_err();
    assert!(
        e.to_string().contains("ahead") && e.to_string().contains("register 2"),
        "{e}"
    );
    let e = fused::eval("sum", &[Leaf::Tensor(&ints), Leaf::Scalar(1.0)], &add).unwrap_err();
    assert!(
        e.to_string().contains("sum") && e.to_string().contains("i32"),
        "{e}"
    );
    let e = fused::eval("first", &[Leaf::Scalar(1.0), Leaf::Tensor(&x)], &add).unwrap_err();
    assert!(e.to_string().contains("first leaf"), "{e}");
    let e = fused::eval(
        "shapes",
        &[Leaf::Tensor(&x), Leaf::Tensor(&column.t())],
        &add,
    );
    assert!(e.unwrap_err().to_string().contains("shapes"));
    // a broadcast along two runs (refused by the pass) is computed op by op
    let y = fused::eval("add", &[Leaf::Tensor(&cube), Leaf::Tensor(&middle)], &add).unwrap();
    assert_eq!(y.to_vec::<f32>(), (&cube + &middle).to_vec::<f32>());
}
