//! Elementwise kernels: one generated WGSL shader per (expression, operand dtypes, access
//! pattern), covering unary and binary arithmetic, comparisons, `where_`, dtype casts,
//! fills and strided copies.
//!
//! The output shape and every operand's strides (broadcast axes have stride 0) and
//! offset travel in the dispatch's uniform parameters, so one compiled pipeline serves
//! every shape. Operands that are contiguous at the output's shape are indexed directly
//! and single elements are read once; only the others pay for the index arithmetic.
//! Adjacent axes that are contiguous in every operand are merged first, so a
//! transposed or sliced operand costs a short loop of at most a few axes.

use crate::cpu::kernels::{BinaryOp, CmpOp, UnaryOp};
use crate::element::DType;
use crate::error::{Error, Result};
use crate::gpu::{self, GpuStorage, WG, grid, storage_of, wgsl, wgsl_type};
use crate::shape::{Layout, numel};
use crate::tensor::Tensor;

/// Most axes an elementwise kernel handles after merging.
const MAX_DIMS: usize = 8;

/// How a kernel reads one operand.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Access {
    /// Element `i` of the output is element `offset + i` of the buffer.
    Contiguous,
    /// One element, at `offset`, for every output element.
    Single,
    /// Through the strides in the parameters.
    Strided,
}

/// A scalar operand carried in the parameters instead of a buffer (`x * 2.0`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param {
    /// An f32 value.
    F32(f32),
    /// An i32 value (also a bool as 0 or 1).
    I32(i32),
}

impl Param {
    fn bits(self) -> u32 {
        match self {
            Param::F32(v) => v.to_bits(),
            Param::I32(v) => v as u32,
        }
    }
}

/// One input of [`map`]: a GPU tensor, or a scalar in the parameters.
pub(crate) enum Input<'a> {
    /// A tensor on the GPU (of a shape that broadcasts to the output's).
    Tensor(&'a Tensor),
    /// A scalar of `DType` (f32, i32 or bool).
    Scalar(Param, DType),
}

/// Runs `out[i] = expr(x0, x1, ...)` over `shape`, with the inputs broadcast to it, into
/// a new contiguous tensor of `out_dtype`. `expr` is WGSL over `x0`, `x1`, ... (bound to
/// the inputs' elements) and `p` (the f32 `extra` parameter).
pub(crate) fn map(
    op: &'static str,
    ordinal: usize,
    expr: &str,
    inputs: &[Input<'_>],
    extra: f32,
    out_dtype: DType,
    shape: &[usize],
) -> Result<Tensor> {
    let n = numel(shape);
    let out = GpuStorage::alloc(op, ordinal, n, out_dtype)?;
    let out_layout = Layout::contiguous(shape);
    run_map(op, expr, inputs, extra, &out, &out_layout)?;
    Ok(gpu::tensor(out, shape))
}

/// [`map`] writing into the view `out_layout` of an existing buffer (used by `concat`).
pub(crate) fn run_map(
    op: &'static str,
    expr: &str,
    inputs: &[Input<'_>],
    extra: f32,
    out: &GpuStorage,
    out_layout: &Layout,
) -> Result<()> {
    let shape = &out_layout.shape;
    let n = numel(shape);
    if n == 0 {
        return Ok(());
    }
    if n > u32::MAX as usize / 2 {
        return Err(Error::Gpu {
            op,
            message: format!("{n} elements are more than a GPU kernel indexes"),
        });
    }
    // broadcast layouts of the tensor inputs, at the output shape
    let mut layouts: Vec<Layout> = vec![out_layout.clone()];
    for input in inputs {
        if let Input::Tensor(t) = input {
            layouts.push(t.layout.broadcast_to(op, shape)?);
        }
    }
    let strides: Vec<&[isize]> = layouts.iter().map(|l| l.strides.as_slice()).collect();
    let (cshape, cstrides) = coalesce(shape, &strides);
    if cshape.len() > MAX_DIMS {
        return Err(Error::Gpu {
            op,
            message: format!(
                "a view of shape {shape:?} needs {} axes after merging; GPU kernels take at most {MAX_DIMS}",
                cshape.len()
            ),
        });
    }
    let contiguous_at = |s: &[isize]| {
        let mut expected = 1isize;
        for (&d, &st) in cshape.iter().zip(s).rev() {
            if d != 1 && st != expected {
                return false;
            }
            expected *= d as isize;
        }
        true
    };
    let access_of = |k: usize, t: Option<&Tensor>| {
        if t.is_some_and(|t| t.numel() == 1) {
            Access::Single
        } else if contiguous_at(&cstrides[k]) {
            Access::Contiguous
        } else {
            Access::Strided
        }
    };

    // parameters: n, ndim, extra, scalar param, offsets[4], shape[8], strides[4][8]
    let mut words = [0u32; 48];
    words[0] = n as u32;
    words[1] = cshape.len() as u32;
    words[2] = extra.to_bits();
    for (d, &s) in cshape.iter().enumerate() {
        words[8 + d] = s as u32;
    }
    let mut src = String::new();
    src.push_str(wgsl::META);
    src.push_str(wgsl::MATH);
    let out_access = access_of(0, None);
    src.push_str(&format!(
        "@group(0) @binding(1) var<storage, read_write> out: array<{}>;\n",
        wgsl_type(out_layout_dtype(out))
    ));
    words[4] = out_layout.offset as u32;
    for (d, &s) in cstrides[0].iter().enumerate() {
        words[16 + d] = s as i32 as u32;
    }
    let mut buffers: Vec<&wgpu::Buffer> = vec![out.buffer()];
    let mut loads = String::new();
    let mut slot = 1usize; // tensor slot (offsets/strides index), 0 is the output
    for (i, input) in inputs.iter().enumerate() {
        match input {
            Input::Tensor(t) => {
                let access = access_of(slot, Some(t));
                let s = storage_of(t);
                buffers.push(s.buffer());
                let ty = wgsl_type(s.dtype);
                src.push_str(&format!(
                    "@group(0) @binding({}) var<storage, read> in{i}: array<{ty}>;\n",
                    buffers.len()
                ));
                words[4 + slot] = t.layout.offset as u32;
                for (d, &st) in cstrides[slot].iter().enumerate() {
                    words[16 + 8 * slot + d] = st as i32 as u32;
                }
                let index = match access {
                    Access::Contiguous => format!("word({}u) + i", 4 + slot),
                    Access::Single => format!("word({}u)", 4 + slot),
                    Access::Strided => format!("at({slot}u, i)"),
                };
                loads.push_str(&format!("    let x{i} = in{i}[{index}];\n"));
                slot += 1;
            }
            Input::Scalar(p, dtype) => {
                words[3] = p.bits();
                let value = match dtype {
                    DType::F32 => "bitcast<f32>(word(3u))",
                    DType::I32 => "bitcast<i32>(word(3u))",
                    _ => "word(3u)",
                };
                loads.push_str(&format!("    let x{i} = {value};\n"));
            }
        }
    }
    let out_index = match out_access {
        Access::Strided => "at(0u, i)".to_string(),
        _ => "word(4u) + i".to_string(),
    };
    src.push_str(
        r#"
fn at(t: u32, i: u32) -> u32 {
    var rem = i;
    var idx = i32(word(4u + t));
    for (var d = i32(word(1u)) - 1; d >= 0; d--) {
        let size = word(8u + u32(d));
        idx += i32(rem % size) * bitcast<i32>(word(16u + 8u * t + u32(d)));
        rem = rem / size;
    }
    return u32(idx);
}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= word(0u)) { return; }
    let p = bitcast<f32>(word(2u));
"#,
    );
    src.push_str(&loads);
    src.push_str(&format!("    out[{out_index}] = {expr};\n}}\n"));
    let ctx = out.context();
    let pipeline = ctx.pipeline(&src);
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &buffers,
        grid((n as u32).div_ceil(WG)),
    );
    Ok(())
}

fn out_layout_dtype(out: &GpuStorage) -> DType {
    out.dtype
}

/// Merges adjacent axes contiguous with each other in every one of `strides` and drops
/// size-1 axes; at least one axis remains.
fn coalesce(shape: &[usize], strides: &[&[isize]]) -> (Vec<usize>, Vec<Vec<isize>>) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<isize>> = vec![Vec::new(); strides.len()];
    for (d, &size) in shape.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides
                .iter()
                .zip(&out_strides)
                .all(|(s, o)| o.last().copied() == Some(s[d] * size as isize));
        if mergeable {
            *out_shape.last_mut().expect("not empty") *= size;
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                *o.last_mut().expect("not empty") = s[d];
            }
        } else {
            out_shape.push(size);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    if out_shape.is_empty() {
        out_shape.push(1);
        for o in out_strides.iter_mut() {
            o.push(1);
        }
    }
    (out_shape, out_strides)
}

/// The WGSL of a unary float operation on `x0` (`p` holds `powf`'s exponent or `powi`'s
/// as a float).
pub(crate) fn unary_expr(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "-x0",
        UnaryOp::Abs => "abs(x0)",
        UnaryOp::Exp => "exp_(x0)",
        UnaryOp::Ln => "ln_(x0)",
        UnaryOp::Log1p => "log1p_(x0)",
        UnaryOp::Expm1 => "expm1_(x0)",
        UnaryOp::Sin => "sin(x0)",
        UnaryOp::Cos => "cos(x0)",
        UnaryOp::Tan => "tan(x0)",
        UnaryOp::Tanh => "tanh_(x0)",
        UnaryOp::Sqrt => "select(sqrt(x0), nan(), x0 < 0.0)",
        UnaryOp::Recip => "1.0 / x0",
        UnaryOp::Sigmoid => "sigmoid_(x0)",
        UnaryOp::Relu => "relu_(x0)",
        UnaryOp::Sign => "sign_(x0)",
        UnaryOp::Powi(_) => "powi_(x0, i32(p))",
        UnaryOp::Powf(_) => "pow_(x0, p)",
    }
}

/// The extra parameter a unary operation needs.
pub(crate) fn unary_param(op: UnaryOp) -> f32 {
    match op {
        UnaryOp::Powi(n) => n as f32,
        UnaryOp::Powf(p) => p as f32,
        _ => 0.0,
    }
}

/// The WGSL of a binary float operation on `x0`, `x1`.
pub(crate) fn binary_expr(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "x0 + x1",
        BinaryOp::Sub => "x0 - x1",
        BinaryOp::Mul => "x0 * x1",
        BinaryOp::Div => "x0 / x1",
        BinaryOp::Pow => "pow_(x0, x1)",
        BinaryOp::Maximum => "max_nan(x0, x1)",
        BinaryOp::Minimum => "min_nan(x0, x1)",
    }
}

/// The WGSL of a comparison of `x0`, `x1` as a u32 mask. (`!=` is written `!(==)`:
/// some drivers compile `!=` as an ordered comparison, false for NaN.)
pub(crate) fn compare_expr(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "u32(x0 == x1)",
        CmpOp::Ne => "u32(!(x0 == x1))",
        CmpOp::Lt => "u32(x0 < x1)",
        CmpOp::Le => "u32(x0 <= x1)",
        CmpOp::Gt => "u32(x0 > x1)",
        CmpOp::Ge => "u32(x0 >= x1)",
    }
}

/// The WGSL converting `x0` of dtype `from` to `to` with the CPU's rules: floats
/// truncate toward zero to i32 (saturating, NaN to 0), anything is a bool by `!= 0`,
/// bools are 0 or 1.
pub(crate) fn cast_expr(from: DType, to: DType) -> &'static str {
    match (from, to) {
        (DType::F32, DType::I32) => {
            "select(i32(clamp(x0, -2147483648.0, 2147483520.0)), select(2147483647, -2147483648, x0 < 0.0), abs(x0) >= 2147483648.0) * i32(!is_nan(x0))"
        }
        (DType::F32, DType::Bool) => "u32(!(x0 == 0.0))",
        (DType::I32, DType::F32) => "f32(x0)",
        (DType::I32, DType::Bool) => "u32(x0 != 0)",
        (DType::Bool, DType::F32) => "f32(x0)",
        (DType::Bool, DType::I32) => "i32(x0)",
        _ => "x0",
    }
}

/// The tensor as a contiguous GPU tensor that owns its whole buffer (itself when it
/// already is one, otherwise a copy).
pub(crate) fn contiguous(op: &'static str, t: &Tensor) -> Result<Tensor> {
    let s = storage_of(t);
    if t.is_contiguous() && t.layout.offset == 0 && s.len == t.numel() {
        return Ok(t.clone());
    }
    map(
        op,
        s.ordinal,
        "x0",
        &[Input::Tensor(t)],
        0.0,
        s.dtype,
        t.shape(),
    )
}

/// The tensor as a contiguous view, copied only if its elements are not in row-major
/// order (an offset into a larger buffer is kept).
pub(crate) fn row_major(op: &'static str, t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() {
        return Ok(t.clone());
    }
    let s = storage_of(t);
    map(
        op,
        s.ordinal,
        "x0",
        &[Input::Tensor(t)],
        0.0,
        s.dtype,
        t.shape(),
    )
}

/// A GPU tensor of `shape` filled with `value` converted to `dtype` (f32, i32 or bool).
pub(crate) fn full(
    op: &'static str,
    ordinal: usize,
    shape: &[usize],
    value: f64,
    dtype: DType,
) -> Result<Tensor> {
    gpu::check_dtype(op, dtype, shape)?;
    let (param, expr) = match dtype {
        DType::F32 => (Param::F32(value as f32), "x0"),
        DType::I32 => (Param::I32(value as i32), "x0"),
        _ => (Param::I32((value != 0.0) as i32), "u32(x0 != 0)"),
    };
    let in_dtype = if dtype == DType::F32 {
        DType::F32
    } else {
        DType::I32
    };
    map(
        op,
        ordinal,
        expr,
        &[Input::Scalar(param, in_dtype)],
        0.0,
        dtype,
        shape,
    )
}

/// A unary float operation on a GPU tensor.
pub(crate) fn unary(op_name: &'static str, x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let s = storage_of(x);
    map(
        op_name,
        s.ordinal,
        unary_expr(op),
        &[Input::Tensor(x)],
        unary_param(op),
        DType::F32,
        x.shape(),
    )
}

/// A binary float operation on GPU tensors, broadcast to `shape`.
pub(crate) fn binary(
    op_name: &'static str,
    a: &Tensor,
    b: &Tensor,
    op: BinaryOp,
    shape: &[usize],
) -> Result<Tensor> {
    let s = storage_of(a);
    map(
        op_name,
        s.ordinal,
        binary_expr(op),
        &[Input::Tensor(a), Input::Tensor(b)],
        0.0,
        DType::F32,
        shape,
    )
}

/// A binary float operation of a GPU tensor and a scalar (`op(s, x)` when `scalar_first`).
pub(crate) fn binary_scalar(
    op_name: &'static str,
    x: &Tensor,
    op: BinaryOp,
    s: f64,
    scalar_first: bool,
) -> Result<Tensor> {
    let ordinal = storage_of(x).ordinal;
    let scalar = Input::Scalar(Param::F32(s as f32), DType::F32);
    let inputs = if scalar_first {
        [scalar, Input::Tensor(x)]
    } else {
        [Input::Tensor(x), scalar]
    };
    map(
        op_name,
        ordinal,
        binary_expr(op),
        &inputs,
        0.0,
        DType::F32,
        x.shape(),
    )
}

/// A comparison of GPU tensors of one dtype, broadcast to `shape`, as a bool mask.
pub(crate) fn compare(
    op_name: &'static str,
    a: &Tensor,
    b: &Tensor,
    op: CmpOp,
    shape: &[usize],
) -> Result<Tensor> {
    let s = storage_of(a);
    map(
        op_name,
        s.ordinal,
        compare_expr(op),
        &[Input::Tensor(a), Input::Tensor(b)],
        0.0,
        DType::Bool,
        shape,
    )
}

/// `a` where `mask`, `b` elsewhere, broadcast to `shape` (GPU tensors, checked).
pub(crate) fn where_(mask: &Tensor, a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let s = storage_of(a);
    map(
        "where",
        s.ordinal,
        "select(x2, x1, x0 != 0u)",
        &[Input::Tensor(mask), Input::Tensor(a), Input::Tensor(b)],
        0.0,
        s.dtype,
        shape,
    )
}
