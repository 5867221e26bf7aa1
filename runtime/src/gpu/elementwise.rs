//! Elementwise kernels, fused: unary and binary arithmetic, comparisons, `where_`, dtype
//! casts, fills and strided copies all build a [`Fused`] expression, and one generated
//! WGSL kernel computes a whole expression.
//!
//! An elementwise result is *pending* (see [`GpuStorage`]) until something needs its
//! buffer. An elementwise operation whose operand is pending and has the output's shape
//! takes the operand's expression inline instead of reading it, so `(x * w + b).tanh()`
//! reads `x`, `w` and `b` once and writes once, in one kernel. Expressions stop growing
//! at [`MAX_TENSORS`] tensor leaves or [`MAX_SCALARS`] scalars, where the operand is
//! computed into its buffer instead.
//!
//! The output shape and every operand's offset and strides (broadcast axes have stride
//! 0) travel in the dispatch's uniform parameters. Operands contiguous at the output's
//! shape are indexed directly and single elements read once; only the others pay for
//! index arithmetic, over the axes left after merging those contiguous in every operand.
//! Kernels are cached by a key naming the expression, the dtypes and the access
//! patterns, so a cache hit generates no WGSL. Reductions and softmax read their input
//! through the same expressions (see [`Loader`]), so a pending result feeding them is
//! computed inside their kernel too.

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::Arc;

use crate::cpu::kernels::{BinaryOp, CmpOp, UnaryOp};
use crate::element::DType;
use crate::error::{Error, Result};
use crate::gpu::context::Context;
use crate::gpu::{self, GpuStorage, WG, grid, storage_of, wgsl, wgsl_type};
use crate::shape::{Layout, numel};
use crate::tensor::Tensor;

/// Most axes a kernel walks after merging (each strided read takes one parameter word per
/// axis, and a dispatch has 64).
const MAX_DIMS: usize = 6;

/// Most tensors one fused expression reads (bindings: these, the output, the parameters).
pub(crate) const MAX_TENSORS: usize = 5;

/// Most scalars one fused expression carries in its parameters.
pub(crate) const MAX_SCALARS: usize = 12;

/// Longest expression text; longer ones are computed into a buffer first.
const MAX_CODE: usize = 3000;

/// How a kernel reads one tensor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Access {
    /// Element `i` of the output is element `offset + i` of the buffer.
    Contiguous,
    /// One element, at `offset`, for every output element.
    Single,
    /// Through the strides in the parameters.
    Strided,
}

impl Access {
    /// Its part of a kernel's key.
    fn key(self) -> &'static str {
        match self {
            Access::Contiguous => "Contiguous|",
            Access::Single => "Single|",
            Access::Strided => "Strided|",
        }
    }
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

    fn load(self) -> &'static str {
        match self {
            Param::F32(_) => "bitcast<f32>",
            Param::I32(_) => "bitcast<i32>",
        }
    }
}

/// One input of an elementwise operation: a GPU tensor, or a scalar in the parameters.
pub(crate) enum Input<'a> {
    /// A tensor on the GPU (of a shape that broadcasts to the output's).
    Tensor(&'a Tensor),
    /// A GPU tensor of one axis more than the output, summed over its first axis (the
    /// rest broadcasts to the output's shape): the partial products of a matmul split
    /// along K.
    Summed(&'a Tensor),
    /// A scalar.
    Scalar(Param),
}

/// An elementwise expression over tensors (each read at its layout broadcast to
/// `shape`) and scalars: WGSL text in which `v0`, `v1`, ... are the tensors' elements
/// and `s0`, `s1`, ... the scalars. A tensor of one axis more than `shape` is summed
/// over its first axis ([`Input::Summed`]).
#[derive(Clone)]
pub(crate) struct Fused {
    code: String,
    tensors: Vec<Tensor>,
    scalars: Vec<Param>,
    /// The shape of the result.
    pub(crate) shape: Vec<usize>,
}

impl Fused {
    /// `template` (WGSL over `$0`, `$1`, `$2` for the inputs and `$p` for `param`)
    /// applied to `inputs` at `shape`, inlining pending operands of that shape where the
    /// limits allow.
    fn build(template: &str, inputs: &[Input<'_>], param: Option<Param>, shape: &[usize]) -> Fused {
        let mut f = Fused {
            code: String::new(),
            tensors: Vec::new(),
            scalars: Vec::new(),
            shape: shape.to_vec(),
        };
        let mut args = Vec::with_capacity(inputs.len());
        for (k, input) in inputs.iter().enumerate() {
            // room kept for the inputs after this one
            let later = inputs.len() - k - 1 + param.is_some() as usize;
            let arg = match input {
                Input::Scalar(p) => f.scalar(*p),
                Input::Summed(t) => {
                    debug_assert_eq!(t.ndim(), shape.len() + 1, "a summed leaf's rank");
                    f.tensor(t)
                }
                Input::Tensor(t) => match inlinable(t, shape) {
                    Some(inner) if f.fits(&inner, later) => f.absorb(inner),
                    _ => {
                        // (a leaf of higher rank would read as summed)
                        debug_assert!(t.ndim() <= shape.len(), "a leaf broadcasts");
                        f.tensor(t)
                    }
                },
            };
            args.push(arg);
        }
        let p_name = param.map(|p| f.scalar(p));
        // one pass over the template: `$k` becomes `(args[k])`, `$p` the parameter
        let mut code =
            String::with_capacity(template.len() + args.iter().map(|a| a.len() + 2).sum::<usize>());
        let mut rest = template;
        while let Some(at) = rest.find('$') {
            code.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                let k: usize = after[..digits].parse().expect("digits");
                code.push('(');
                code.push_str(&args[k]);
                code.push(')');
                rest = &after[digits..];
            } else if let (Some(name), Some(tail)) = (&p_name, after.strip_prefix('p')) {
                code.push_str(name);
                rest = tail;
            } else {
                code.push('$');
                rest = after;
            }
        }
        code.push_str(rest);
        f.code = code;
        f
    }

    /// The tensors it reads.
    pub(crate) fn leaves(&self) -> impl Iterator<Item = &Tensor> {
        self.tensors.iter()
    }

    /// The variable of a scalar leaf.
    fn scalar(&mut self, p: Param) -> Cow<'static, str> {
        self.scalars.push(p);
        var_name('s', self.scalars.len() - 1)
    }

    /// The variable of a tensor leaf (the same variable for the same view).
    fn tensor(&mut self, t: &Tensor) -> Cow<'static, str> {
        let same = |u: &Tensor| Arc::ptr_eq(&u.storage, &t.storage) && u.layout == t.layout;
        let k = match self.tensors.iter().position(same) {
            Some(k) => k,
            None => {
                self.tensors.push(t.clone());
                self.tensors.len() - 1
            }
        };
        var_name('v', k)
    }

    /// Whether `inner`'s leaves and text fit beside this expression's, keeping room for
    /// `later` more leaves.
    fn fits(&self, inner: &Fused, later: usize) -> bool {
        self.tensors.len() + inner.tensors.len() + later <= MAX_TENSORS
            && self.scalars.len() + inner.scalars.len() + later <= MAX_SCALARS
            && self.code.len() + inner.code.len() <= MAX_CODE
    }

    /// Takes `inner`'s leaves and returns its text with its variables renamed to ours.
    fn absorb(&mut self, inner: Fused) -> Cow<'static, str> {
        let tmap: Vec<Cow<'static, str>> = inner.tensors.iter().map(|t| self.tensor(t)).collect();
        let smap: Vec<Cow<'static, str>> = inner.scalars.iter().map(|&p| self.scalar(p)).collect();
        Cow::Owned(rename(&inner.code, &tmap, &smap))
    }
}

/// The variable `{prefix}{k}` (`v0`, `s3`): static text for the first sixteen, as a kernel's
/// text is built for every operation recorded (no allocation for each name).
fn var_name(prefix: char, k: usize) -> Cow<'static, str> {
    const V: [&str; 16] = [
        "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13",
        "v14", "v15",
    ];
    const S: [&str; 16] = [
        "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13",
        "s14", "s15",
    ];
    match (prefix, k < 16) {
        ('v', true) => Cow::Borrowed(V[k]),
        ('s', true) => Cow::Borrowed(S[k]),
        _ => Cow::Owned(format!("{prefix}{k}")),
    }
}

/// The pending expression of `t` if it can be inlined into an operation of output
/// `shape`: its element `i` is the output's element `i`, or it is a constant (an
/// expression of scalars alone, as `full`, a gradient's seed or a lazy zero make), which
/// has one value however it is viewed or broadcast. A constant is never computed into a
/// buffer of its own: a training step had eight one-element kernels for them.
fn inlinable(t: &Tensor, shape: &[usize]) -> Option<Fused> {
    let same_view = t.shape() == shape && t.is_contiguous() && t.layout.offset == 0;
    // a reshaped view of a pending result shares its storage but not its shape
    let pending =
        storage_of(t).pending_where(|f| f.tensors.is_empty() || (same_view && f.shape == shape))?;
    Some(Fused {
        shape: shape.to_vec(),
        ..pending
    })
}

/// `code` with each variable `vK` replaced by `tmap[K]` and `sK` by `smap[K]`.
fn rename(code: &str, tmap: &[Cow<'static, str>], smap: &[Cow<'static, str>]) -> String {
    let mut out = String::with_capacity(code.len());
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &code[start..i];
            let mapped = match word.split_at(1) {
                ("v", n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse::<usize>().ok().map(|k| &*tmap[k])
                }
                ("s", n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse::<usize>().ok().map(|k| &*smap[k])
                }
                _ => None,
            };
            out.push_str(mapped.unwrap_or(word));
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

/// `template` over `inputs` (and `param`) as a new pending tensor of `out_dtype` and
/// `shape` on GPU `ordinal`; nothing runs until its buffer is needed.
pub(crate) fn lazy(
    op: &'static str,
    ordinal: usize,
    template: &str,
    inputs: &[Input<'_>],
    param: Option<Param>,
    out_dtype: DType,
    shape: &[usize],
) -> Result<Tensor> {
    gpu::check_dtype(op, out_dtype, shape)?;
    let n = numel(shape);
    if n > u32::MAX as usize / 2 {
        return Err(Error::Gpu {
            op,
            message: format!("{n} elements are more than a GPU kernel indexes"),
        });
    }
    if n == 0 {
        let out = GpuStorage::alloc(op, ordinal, 0, out_dtype)?;
        return Ok(gpu::tensor(out, shape));
    }
    let fused = Fused::build(template, inputs, param, shape);
    let mut out = GpuStorage::lazy(fused, ordinal, out_dtype);
    // a copy of indices (a view made contiguous, spread by a broadcast) keeps their bounds
    if let ("$0", [Input::Tensor(t)], DType::I32) = (template, inputs, out_dtype)
        && let Some((lo, hi)) = storage_of(t).bounds
    {
        out = out.within(lo, hi);
    }
    Ok(gpu::tensor(out, shape))
}

/// A fused expression made ready for a kernel: its key, parameter words and buffers, and
/// on demand (only when the kernel is first compiled) its WGSL: the leaves' bindings, the
/// statements that load them at element `i`, and the expression. A kernel that is already
/// compiled costs no code generation: on a GPU training step the text was 40% of the host's
/// recording time.
pub(crate) struct Loader<'a> {
    /// What determines the generated WGSL (beside the caller's own part of the kernel).
    pub(crate) key: String,
    /// Parameter words, to be placed at the `base` given to [`Loader::new`].
    pub(crate) words: Vec<u32>,
    /// The leaves' buffers, for consecutive bindings from `first_binding`.
    pub(crate) buffers: Vec<&'a wgpu::Buffer>,
    fused: &'a Fused,
    /// How each layout is read and the word of its offset: the extra layout first, if
    /// one was given, then the leaves.
    reads: Vec<(Access, usize)>,
    /// Per leaf summed over its first axis: that axis's size and the word of its stride.
    sums: Vec<Option<(usize, usize)>>,
    extra: bool,
    /// The merged shape, when some read is strided.
    strided_dims: Option<Vec<usize>>,
    base: usize,
    first_binding: usize,
}

impl<'a> Loader<'a> {
    /// Prepares `fused`, its parameter words placed from word `base` and its leaves
    /// bound from binding `first_binding`. `extra` (a layout of `fused.shape`, e.g. a
    /// strided output) takes part in the index arithmetic; its index is
    /// [`Loader::extra_index`].
    pub(crate) fn new(
        op: &'static str,
        fused: &'a Fused,
        extra: Option<&Layout>,
        base: usize,
        first_binding: usize,
    ) -> Result<Loader<'a>> {
        let shape = &fused.shape;
        // a summed leaf is read through the layout of one term, its first axis dropped
        let summed = |t: &Tensor| t.ndim() == shape.len() + 1;
        let layouts: Vec<Layout> = extra
            .into_iter()
            .map(|l| Ok(l.clone()))
            .chain(fused.tensors.iter().map(|t| {
                if summed(t) {
                    let l = &t.layout;
                    Layout {
                        shape: l.shape[1..].into(),
                        strides: l.strides[1..].into(),
                        offset: l.offset,
                    }
                    .broadcast_to(op, shape)
                } else {
                    t.layout.broadcast_to(op, shape)
                }
            }))
            .collect::<Result<_>>()?;
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
        // words: per layout its offset and, if strided, its strides (the merged sizes are
        // constants of the kernel); then the scalars
        let mut l = Loader {
            key: String::with_capacity(64 + fused.code.len()),
            words: Vec::new(),
            buffers: Vec::with_capacity(fused.tensors.len()),
            fused,
            reads: Vec::with_capacity(layouts.len()),
            sums: Vec::new(),
            extra: extra.is_some(),
            strided_dims: None,
            base,
            first_binding,
        };
        let lead = extra.is_some() as usize;
        for (slot, layout) in layouts.iter().enumerate() {
            let leaf = slot.checked_sub(lead);
            let access = if leaf.is_some() && layout.numel() == 1 {
                Access::Single
            } else if contiguous_at(&cstrides[slot]) {
                Access::Contiguous
            } else {
                Access::Strided
            };
            l.reads.push((access, base + l.words.len()));
            l.words.push(layout.offset as u32);
            if access == Access::Strided {
                l.words
                    .extend(cstrides[slot].iter().map(|&s| s as i32 as u32));
            }
            match leaf {
                None => l.key.push_str(access.key()),
                Some(k) => {
                    let t = &fused.tensors[k];
                    l.key.push_str(wgsl_type(t.dtype()));
                    l.key.push(':');
                    l.key.push_str(access.key());
                    l.buffers.push(storage_of(t).buffer(op)?);
                    let sum = summed(t).then(|| {
                        let _ = write!(l.key, "sum{}|", t.shape()[0]);
                        l.words.push(t.strides()[0] as i32 as u32);
                        (t.shape()[0], base + l.words.len() - 1)
                    });
                    l.sums.push(sum);
                }
            }
        }
        for p in &fused.scalars {
            l.key.push_str(p.load());
            l.key.push('|');
            l.words.push(p.bits());
        }
        if l.reads.iter().any(|&(a, _)| a == Access::Strided) {
            // strided reads: the merged sizes are constants of the kernel, so the index
            // arithmetic divides by constants (shifts and masks for powers of two) rather
            // than by uniforms; kernels are keyed by those sizes
            let _ = write!(l.key, "dims{cshape:?}|");
            l.strided_dims = Some(cshape);
        }
        let _ = write!(l.key, "@{base}/{first_binding}:");
        l.key.push_str(&fused.code);
        Ok(l)
    }

    /// The index of element `i` in the read `slot`.
    fn index(&self, slot: usize) -> String {
        let (access, off) = self.reads[slot];
        match access {
            Access::Contiguous => format!("word({off}u) + i"),
            Access::Single => format!("word({off}u)"),
            Access::Strided => format!("at{}(i, {off}u)", self.base),
        }
    }

    /// The index expression of the extra layout (empty without one).
    pub(crate) fn extra_index(&self) -> String {
        if self.extra {
            self.index(0)
        } else {
            String::new()
        }
    }

    /// The leaves' binding declarations and the strided index function.
    pub(crate) fn decls(&self) -> String {
        let mut decls = String::new();
        for (k, t) in self.fused.tensors.iter().enumerate() {
            let _ = writeln!(
                decls,
                "@group(0) @binding({b}) var<storage, read> in{b}: array<{}>;",
                wgsl_type(t.dtype()),
                b = self.first_binding + k,
            );
        }
        if let Some(cshape) = &self.strided_dims {
            let mut body = String::new();
            for (d, &size) in cshape.iter().enumerate().rev() {
                let size = size.max(1); // an empty view reads nothing
                let stride = format!("bitcast<i32>(word(o + {}u))", 1 + d);
                if d == 0 {
                    let _ = write!(body, "\n    idx += i32(rem) * {stride};");
                } else {
                    let _ = write!(
                        body,
                        "\n    idx += i32(rem % {size}u) * {stride};\n    rem = rem / {size}u;"
                    );
                }
            }
            let _ = write!(
                decls,
                r#"
fn at{}(i: u32, o: u32) -> u32 {{
    var rem = i;
    var idx = i32(word(o));{body}
    return u32(idx);
}}
"#,
                self.base
            );
        }
        decls
    }

    /// `let vK = ...; let sK = ...;` for the element index `i`.
    pub(crate) fn loads(&self) -> String {
        let mut loads = String::new();
        let lead = self.extra as usize;
        for k in 0..self.fused.tensors.len() {
            let at = self.index(lead + k);
            let b = self.first_binding + k; // the binding, which names the buffer
            match self.sums[k] {
                None => {
                    let _ = writeln!(loads, "    let v{k} = in{b}[{at}];");
                }
                Some((terms, word)) => {
                    // the terms in order, `word` apart
                    let _ = write!(
                        loads,
                        "    let j{k} = {at};\n    let t{k} = bitcast<i32>(word({word}u));\n    let v{k} = in{b}[j{k}]"
                    );
                    for term in 1..terms {
                        let _ = write!(loads, " + in{b}[u32(i32(j{k}) + {term} * t{k})]");
                    }
                    loads.push_str(";\n");
                }
            }
        }
        let first_scalar = self.base + self.words.len() - self.fused.scalars.len();
        for (k, p) in self.fused.scalars.iter().enumerate() {
            let _ = writeln!(
                loads,
                "    let s{k} = {}(word({}u));",
                p.load(),
                first_scalar + k
            );
        }
        loads
    }

    /// The expression over `vK`, `sK`.
    pub(crate) fn code(&self) -> &str {
        &self.fused.code
    }
}

/// Computes `fused` into the view `out_layout` (of `fused.shape`) of `out`.
pub(crate) fn run_fused(
    op: &'static str,
    ctx: &Context,
    fused: &Fused,
    out: &wgpu::Buffer,
    out_dtype: DType,
    out_layout: &Layout,
) -> Result<()> {
    let n = numel(&fused.shape);
    if n == 0 {
        return Ok(());
    }
    // word 0: n; the loader's words from 1; the output at binding 1, leaves from 2
    let l = Loader::new(op, fused, Some(out_layout), 1, 2)?;
    let mut words = vec![n as u32];
    words.extend_from_slice(&l.words);
    let out_ty = wgsl_type(out_dtype);
    let per = per_thread(n);
    let key = format!("map {out_ty} x{per} {}", l.key);
    let pipeline = ctx.pipeline(&key, || {
        // the thread's elements `WG` apart, each computed at an index clamped into the
        // output (so every load is unconditional and all are in flight together), then
        // those inside stored
        let (mut values, mut stores) = (String::new(), String::new());
        for e in 0..per {
            let _ = writeln!(
                values,
                "    let r{e} = value(min(first + {}u, last));",
                e * WG
            );
            let _ = writeln!(
                stores,
                "    {{ let i = first + {}u; if (i <= last) {{ out[{}] = r{e}; }} }}",
                e * WG,
                l.extra_index()
            );
        }
        format!(
            r#"{params}{math}
@group(0) @binding(1) var<storage, read_write> out: array<{out_ty}>;
{decls}
fn value(i: u32) -> {out_ty} {{
{loads}    return {code};
}}

@compute @workgroup_size({WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let first = (wid.x + wid.y * nwg.x) * {block}u + li;
    let last = word(0u) - 1u;
    if (first > last) {{ return; }}
{values}{stores}}}
"#,
            params = wgsl::PARAMS,
            math = wgsl::MATH,
            decls = l.decls(),
            loads = l.loads(),
            code = l.code(),
            block = per * WG,
        )
    });
    let mut buffers = vec![out];
    buffers.extend_from_slice(&l.buffers);
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &buffers,
        grid((n as u32).div_ceil(per * WG)),
    );
    Ok(())
}

/// Elements each thread of an elementwise kernel computes: 4 from 2^20 elements, so that
/// a thread has four loads of each operand in flight at once (a GPU streams at its full
/// bandwidth only with megabytes in flight: on an H100, about 3 TB/s times a load's
/// latency), else 1, which keeps more threads for smaller ones. `FERRAX_GPU_PER_THREAD=n`
/// (1, 2, 4 or 8) forces it, for tuning.
fn per_thread(n: usize) -> u32 {
    static FORCED: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    let forced = FORCED.get_or_init(|| {
        gpu::tuning("FERRAX_GPU_PER_THREAD", "1, 2, 4 or 8", |v| {
            v.parse().ok().filter(|p| [1, 2, 4, 8].contains(p))
        })
    });
    forced.unwrap_or(if n >= 1 << 20 { 4 } else { 1 })
}

/// Computes each of `items` (an expression, the buffer it goes into, contiguous, and its
/// dtype) with as few kernels as the parameters and bindings allow: one kernel computes
/// several expressions, thread `g` taking element `g - start` of the expression whose
/// range of threads `start..end` holds `g`. An evaluated pytree's pending leaves (a
/// training step's gradients, an optimizer's new parameters) cost a kernel or two, not
/// one each.
pub(crate) fn run_fused_together(
    op: &'static str,
    ctx: &Context,
    items: &[(&Fused, &wgpu::Buffer, DType)],
) -> Result<()> {
    const WORDS: usize = (crate::gpu::context::PARAM_SLOT / 4) as usize;
    let bindings = (ctx.limits.max_storage_buffers_per_shader_stage as usize).min(16);
    let layouts: Vec<Layout> = items
        .iter()
        .map(|(f, _, _)| Layout::contiguous(&f.shape))
        .collect();
    let mut group: Vec<(Loader<'_>, usize)> = Vec::new(); // each with its item
    let mut used = (0usize, 0usize); // words and bindings of the group
    let mut k = 0;
    while k < items.len() {
        let (fused, _, _) = items[k];
        if numel(&fused.shape) == 0 {
            k += 1;
            continue;
        }
        // the output at binding `used.1 + 1`, the leaves after it
        let l = Loader::new(op, fused, Some(&layouts[k]), used.0, used.1 + 2)?;
        let after = (used.0 + l.words.len(), used.1 + 1 + l.buffers.len());
        // the group's words end with one per expression: where its threads end
        if !group.is_empty() && (after.0 + group.len() + 1 > WORDS || after.1 > bindings) {
            dispatch_together(op, ctx, items, &std::mem::take(&mut group))?;
            used = (0, 0);
            continue; // the same item again, first of a new group
        }
        used = after;
        group.push((l, k));
        k += 1;
    }
    if !group.is_empty() {
        dispatch_together(op, ctx, items, &group)?;
    }
    Ok(())
}

/// One kernel computing the expressions of `group` (see [`run_fused_together`]).
fn dispatch_together(
    op: &'static str,
    ctx: &Context,
    items: &[(&Fused, &wgpu::Buffer, DType)],
    group: &[(Loader<'_>, usize)],
) -> Result<()> {
    if let [(_, k)] = group {
        let (fused, out, dtype) = items[*k];
        return run_fused(
            op,
            ctx,
            fused,
            out,
            dtype,
            &Layout::contiguous(&fused.shape),
        );
    }
    let mut words: Vec<u32> = group
        .iter()
        .flat_map(|(l, _)| l.words.iter().copied())
        .collect();
    let ends = words.len();
    let mut total = 0u64;
    for (_, k) in group {
        total += numel(&items[*k].0.shape) as u64;
        if total > u32::MAX as u64 / 2 {
            return Err(Error::Gpu {
                op,
                message: format!("{total} elements are more than a GPU kernel indexes"),
            });
        }
        words.push(total as u32);
    }
    let mut key = format!("maps @{ends}");
    let mut buffers: Vec<&wgpu::Buffer> = Vec::new();
    for (l, k) in group {
        let (_, out, dtype) = items[*k];
        let _ = write!(key, "|{} {}", wgsl_type(dtype), l.key);
        buffers.push(out);
        buffers.extend_from_slice(&l.buffers);
    }
    let pipeline = ctx.pipeline(&key, || {
        let (mut decls, mut body) = (String::new(), String::new());
        for (j, (l, k)) in group.iter().enumerate() {
            let out = l.first_binding - 1;
            let _ = writeln!(
                decls,
                "@group(0) @binding({out}) var<storage, read_write> out{out}: array<{}>;\n{}",
                wgsl_type(items[*k].2),
                l.decls()
            );
            let start = match j {
                0 => "0u".to_string(),
                _ => format!("word({}u)", ends + j - 1),
            };
            let _ = write!(
                body,
                "    if (g < word({}u)) {{\n    let i = g - {start};\n{}    out{out}[{}] = {};\n    return;\n    }}\n",
                ends + j,
                l.loads(),
                l.extra_index(),
                l.code()
            );
        }
        format!(
            r#"{params}{math}
{decls}
@compute @workgroup_size({WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let g = gid.x + gid.y * nwg.x * {WG}u;
{body}}}
"#,
            params = wgsl::PARAMS,
            math = wgsl::MATH,
        )
    });
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &buffers,
        grid((total as u32).div_ceil(WG)),
    );
    Ok(())
}

/// The expression whose element `i` is element `i` (row-major) of `t`: its pending
/// expression when it has one of its shape, otherwise a read of `t` through its layout.
pub(crate) fn source_of(t: &Tensor) -> Fused {
    match inlinable(t, t.shape()) {
        Some(f) => f,
        None => Fused::build("$0", &[Input::Tensor(t)], None, t.shape()),
    }
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

/// The WGSL of a unary float operation on `$0` (`$p` is `powf`'s exponent or `powi`'s as
/// a float).
pub(crate) fn unary_expr(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "-$0",
        UnaryOp::Abs => "abs($0)",
        UnaryOp::Exp => "exp_($0)",
        UnaryOp::Ln => "ln_($0)",
        UnaryOp::Log1p => "log1p_($0)",
        UnaryOp::Expm1 => "expm1_($0)",
        UnaryOp::Sin => "sin_($0)",
        UnaryOp::Cos => "cos_($0)",
        UnaryOp::Tan => "tan_($0)",
        UnaryOp::Tanh => "tanh_($0)",
        UnaryOp::Sqrt => "select(sqrt($0), nan(), $0 < 0.0)",
        UnaryOp::Recip => "1.0 / $0",
        UnaryOp::Sigmoid => "sigmoid_($0)",
        UnaryOp::Softplus => "softplus_($0)",
        UnaryOp::Relu => "relu_($0)",
        UnaryOp::Sign => "sign_($0)",
        UnaryOp::Powi(_) => "powi_($0, $p)",
        UnaryOp::Powf(_) => "pow_($0, $p)",
        UnaryOp::Asin => "asin_($0)",
        UnaryOp::Acos => "acos_($0)",
        UnaryOp::Atan => "atan_($0)",
        UnaryOp::Sinh => "sinh_($0)",
        UnaryOp::Cosh => "cosh_($0)",
        UnaryOp::Asinh => "asinh_($0)",
        UnaryOp::Acosh => "acosh_($0)",
        UnaryOp::Atanh => "atanh_($0)",
        UnaryOp::Exp2 => "exp2_($0)",
        UnaryOp::Log2 => "log2_($0)",
        UnaryOp::Log10 => "log10_($0)",
        UnaryOp::Cbrt => "cbrt_($0)",
        // exact in WGSL (Vulkan requires them correctly rounded)
        UnaryOp::Floor => "floor($0)",
        UnaryOp::Ceil => "ceil($0)",
        UnaryOp::Trunc => "trunc($0)",
        // WGSL's round takes halves to even
        UnaryOp::Round => "round_($0)",
        UnaryOp::Erf => "erf_($0)",
    }
}

/// The parameter a unary operation needs.
pub(crate) fn unary_param(op: UnaryOp) -> Option<Param> {
    match op {
        UnaryOp::Powi(n) => Some(Param::I32(n)),
        UnaryOp::Powf(p) => Some(Param::F32(p as f32)),
        _ => None,
    }
}

/// The WGSL of a binary float operation on `$0`, `$1`.
pub(crate) fn binary_expr(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "$0 + $1",
        BinaryOp::Sub => "$0 - $1",
        BinaryOp::Mul => "$0 * $1",
        BinaryOp::Div => "$0 / $1",
        BinaryOp::Pow => "pow_($0, $1)",
        BinaryOp::Maximum => "max_nan($0, $1)",
        BinaryOp::Minimum => "min_nan($0, $1)",
        BinaryOp::Atan2 => "atan2_($0, $1)",
    }
}

/// The WGSL of a comparison of `$0`, `$1` as a u32 mask. (`!=` is written `!(==)`:
/// some drivers compile `!=` as an ordered comparison, false for NaN.)
pub(crate) fn compare_expr(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "u32($0 == $1)",
        CmpOp::Ne => "u32(!($0 == $1))",
        CmpOp::Lt => "u32($0 < $1)",
        CmpOp::Le => "u32($0 <= $1)",
        CmpOp::Gt => "u32($0 > $1)",
        CmpOp::Ge => "u32($0 >= $1)",
    }
}

/// The WGSL converting `$0` of dtype `from` to `to` with the CPU's rules: floats
/// truncate toward zero to i32 (saturating, NaN to 0), anything is a bool by `!= 0`,
/// bools are 0 or 1.
pub(crate) fn cast_expr(from: DType, to: DType) -> &'static str {
    match (from, to) {
        (DType::F32, DType::I32) => {
            "select(i32(clamp($0, -2147483648.0, 2147483520.0)), select(2147483647, -2147483648, $0 < 0.0), abs($0) >= 2147483648.0) * i32(!is_nan($0))"
        }
        (DType::F32, DType::Bool) => "u32(!($0 == 0.0))",
        (DType::I32, DType::F32) => "f32($0)",
        (DType::I32, DType::Bool) => "u32($0 != 0)",
        (DType::Bool, DType::F32) => "f32($0)",
        (DType::Bool, DType::I32) => "i32($0)",
        _ => "$0",
    }
}

/// The tensor as a contiguous GPU tensor that owns its whole buffer (itself when it
/// already is one, otherwise a copy, pending like any elementwise result).
pub(crate) fn contiguous(op: &'static str, t: &Tensor) -> Result<Tensor> {
    let s = storage_of(t);
    if t.is_contiguous() && t.layout.offset == 0 && s.len == t.numel() {
        return Ok(t.clone());
    }
    lazy(
        op,
        s.ordinal,
        "$0",
        &[Input::Tensor(t)],
        None,
        s.dtype,
        t.shape(),
    )
}

/// The tensor as a row-major view, copied only if its elements are not in row-major
/// order (an offset into a larger buffer is kept).
pub(crate) fn row_major(op: &'static str, t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() {
        return Ok(t.clone());
    }
    let s = storage_of(t);
    lazy(
        op,
        s.ordinal,
        "$0",
        &[Input::Tensor(t)],
        None,
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
    crate::gpu::context::context(ordinal)?;
    let (param, template) = match dtype {
        DType::F32 => (Param::F32(value as f32), "$0"),
        DType::I32 => (Param::I32(value as i32), "$0"),
        _ => (Param::I32((value != 0.0) as i32), "u32($0)"),
    };
    lazy(
        op,
        ordinal,
        template,
        &[Input::Scalar(param)],
        None,
        dtype,
        shape,
    )
}

/// Copies `t` into the view `out_layout` (of `t`'s shape) of `out` (used by `concat`).
pub(crate) fn copy_into(
    op: &'static str,
    t: &Tensor,
    out: &GpuStorage,
    out_layout: &Layout,
) -> Result<()> {
    let fused = Fused::build("$0", &[Input::Tensor(t)], None, &out_layout.shape);
    run_fused(
        op,
        out.context(),
        &fused,
        out.buffer(op)?,
        out.dtype,
        out_layout,
    )
}

/// A unary float operation on a GPU tensor.
pub(crate) fn unary(op_name: &'static str, x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let s = storage_of(x);
    lazy(
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
    lazy(
        op_name,
        s.ordinal,
        binary_expr(op),
        &[Input::Tensor(a), Input::Tensor(b)],
        None,
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
    let scalar = Input::Scalar(Param::F32(s as f32));
    let inputs = if scalar_first {
        [scalar, Input::Tensor(x)]
    } else {
        [Input::Tensor(x), scalar]
    };
    lazy(
        op_name,
        ordinal,
        binary_expr(op),
        &inputs,
        None,
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
    lazy(
        op_name,
        s.ordinal,
        compare_expr(op),
        &[Input::Tensor(a), Input::Tensor(b)],
        None,
        DType::Bool,
        shape,
    )
}

/// `a` where `mask`, `b` elsewhere, broadcast to `shape` (GPU tensors, checked).
pub(crate) fn where_(mask: &Tensor, a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let s = storage_of(a);
    lazy(
        "where",
        s.ordinal,
        "select($2, $1, $0 != 0u)",
        &[Input::Tensor(mask), Input::Tensor(a), Input::Tensor(b)],
        None,
        s.dtype,
        shape,
    )
}

/// `t` converted to `dtype` (f32, i32 or bool) by the CPU's rules.
pub(crate) fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    let s = storage_of(t);
    lazy(
        "to_dtype",
        s.ordinal,
        cast_expr(t.dtype(), dtype),
        &[Input::Tensor(t)],
        None,
        dtype,
        t.shape(),
    )
}

#[cfg(test)]
mod tests {
    use super::rename;

    #[test]
    fn renaming_touches_only_whole_leaf_variables() {
        let t = vec!["v3".into(), "v0".into()];
        let s = vec!["s7".into()];
        assert_eq!(
            rename("select(v1, sign_(v0) * s0, v10x > 0.0)", &t, &s),
            "select(v0, sign_(v3) * s7, v10x > 0.0)"
        );
    }
}
