//! Reductions along an axis (sum, max, min, argmax) and the softmax family, over the
//! `[outer, n, inner]` view of a row-major tensor: one lane per `(outer, inner)` pair.
//!
//! Long lanes get a workgroup each: its 256 threads stride over the lane and combine
//! their partial results through subgroup shuffles where the adapter has subgroup
//! operations, otherwise in a tree in workgroup memory (see [`combiners`]). Short lanes (up to 64 elements)
//! get a thread each. A reduction of all elements runs the lane kernel over chunks and
//! then over the partial results until one value is left.
//!
//! The kernel reads its input through an elementwise expression (`load(i)`, made by
//! [`Loader`]): a pending elementwise result is computed inside the reduction, and a
//! strided view is read through its strides, so neither is first written to a buffer.

use crate::cpu::kernels::{ReduceOp, SoftmaxOp};
use crate::element::DType;
use crate::error::Result;
use crate::gpu::elementwise::{Fused, Loader};
use crate::gpu::{self, GpuStorage, WG, elementwise, grid, storage_of, wgsl};
use crate::tensor::Tensor;

/// Lanes at most this long run one thread per lane.
const SHORT_LANE: usize = 64;

/// Elements each workgroup reduces in the first pass of a full reduction.
const CHUNK: usize = 4096;

/// What a lane kernel computes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LaneOp {
    /// One value per lane.
    Reduce(ReduceOp),
    /// The i32 index of the first maximum (a NaN counts as the maximum).
    Argmax,
    /// Softmax or log-softmax (one value per element), or logsumexp (one per lane).
    Softmax(SoftmaxOp),
}

/// Runs `op` along the middle axis of the `[outer, n, inner]` view of `x` (a float GPU
/// tensor); the result has `out_shape` (the caller's: the axis kept as 1, or unchanged
/// for softmax and log-softmax).
pub(crate) fn along_axis(
    x: &Tensor,
    op: LaneOp,
    dims: [usize; 3],
    out_shape: &[usize],
) -> Result<Tensor> {
    along_axis_with(x, op, dims, out_shape, None)
}

/// [`along_axis`], with or without subgroup operations as `subgroups` says (`None`:
/// where the adapter has them).
fn along_axis_with(
    x: &Tensor,
    op: LaneOp,
    [outer, n, inner]: [usize; 3],
    out_shape: &[usize],
    subgroups: Option<bool>,
) -> Result<Tensor> {
    const NAME: &str = "reduce";
    let s = storage_of(x);
    let fused = elementwise::source_of(x);
    let out_dtype = match op {
        LaneOp::Argmax => DType::I32,
        _ => DType::F32,
    };
    let mut out = GpuStorage::alloc(NAME, s.ordinal, crate::shape::numel(out_shape), out_dtype)?;
    if out_dtype == DType::I32 {
        out = out.within(0, n.saturating_sub(1) as i32);
    }
    let lanes = outer * inner;
    if out.len > 0 {
        run(&fused, &out, op, lanes, n, inner, lanes * n, subgroups)?;
    }
    Ok(gpu::tensor(out, out_shape))
}

/// Reduces every element of `x` (a float GPU tensor) to a 0-d tensor.
pub(crate) fn reduce_all(x: &Tensor, op: ReduceOp) -> Result<Tensor> {
    const NAME: &str = "reduce";
    let mut cur = x.clone();
    loop {
        let total = cur.numel();
        let s = storage_of(&cur);
        let fused = elementwise::source_of(&cur);
        if total <= CHUNK {
            let out = GpuStorage::alloc(NAME, s.ordinal, 1, DType::F32)?;
            run(&fused, &out, LaneOp::Reduce(op), 1, total, 1, total, None)?;
            return Ok(gpu::tensor(out, &[]));
        }
        let lanes = total.div_ceil(CHUNK);
        let out = GpuStorage::alloc(NAME, s.ordinal, lanes, DType::F32)?;
        run(
            &fused,
            &out,
            LaneOp::Reduce(op),
            lanes,
            CHUNK,
            1,
            total,
            None,
        )?;
        cur = gpu::tensor(out, &[lanes]);
    }
}

/// Dispatches the lane kernel over the elements of `x` (an expression, so that a
/// pending elementwise result is computed inside the reduction instead of first into
/// a buffer): `lanes` lanes of `n` elements `inner` apart, the lane `o * inner + r`
/// starting at element `o * n * inner + r`; elements at or past `total` are not read.
///
/// `subgroups` overrides whether the kernel combines through subgroup operations (tests
/// run both kernels); `None` uses them where the adapter has them.
#[allow(clippy::too_many_arguments)]
fn run(
    x: &Fused,
    out: &GpuStorage,
    op: LaneOp,
    lanes: usize,
    n: usize,
    inner: usize,
    total: usize,
    subgroups: Option<bool>,
) -> Result<()> {
    const NAME: &str = "reduce";
    // words 0..8 the lanes, the loader's from 8; the output at binding 1, leaves from 2
    let loader = Loader::new(NAME, x, None, 8, 2)?;
    let mut words: Vec<u32> = vec![
        lanes as u32,
        n as u32,
        inner.max(1) as u32,
        total as u32,
        0,
        0,
        0,
        0,
    ];
    words.extend_from_slice(&loader.words);
    let short = n <= SHORT_LANE;
    let ctx = out.context();
    // a workgroup per lane combines its threads' results through subgroups where it can
    let sub = !short && subgroups.unwrap_or(ctx.subgroups);
    let pipeline = ctx.pipeline(&format!("lane {op:?} {short} {sub} {}", loader.key), || {
        source(op, short, sub, &loader)
    });
    let mut buffers = vec![out.buffer(NAME)?];
    buffers.extend_from_slice(&loader.buffers);
    let groups = if short {
        (lanes as u32).div_ceil(WG)
    } else {
        lanes as u32
    };
    ctx.dispatch(
        &pipeline,
        bytemuck::cast_slice(&words),
        &buffers,
        grid(groups),
    );
    Ok(())
}

/// The WGSL of a lane kernel. The body is written once over `combine`/`init` and either
/// runs per thread over a whole lane (`short`) or per workgroup, whose threads' results
/// combine in a tree in workgroup memory, or with `sub` through subgroup shuffles.
fn source(op: LaneOp, short: bool, sub: bool, x: &Loader<'_>) -> String {
    let out_ty = match op {
        LaneOp::Argmax => "i32",
        _ => "f32",
    };
    let mut s = String::new();
    s.push_str(wgsl::PARAMS);
    s.push_str(wgsl::MATH);
    s.push_str(&format!(
        "@group(0) @binding(1) var<storage, read_write> out: array<{out_ty}>;\n\
\
         var<workgroup> sv: array<f32, 256>;\n\
         var<workgroup> si: array<u32, 256>;\n"
    ));
    // a (value, index) pair combines; `better` says whether (v, j) replaces (bv, bj)
    s.push_str(
        r#"
fn better(v: f32, j: u32, bv: f32, bj: u32) -> bool {
    if (is_nan(bv)) { return is_nan(v) && j < bj; }
    if (is_nan(v)) { return true; }
    return v > bv || (v == bv && j < bj);
}
"#,
    );
    let (init, comb) = match op {
        LaneOp::Reduce(ReduceOp::Sum) => ("0.0", "a + b"),
        LaneOp::Reduce(ReduceOp::Max) | LaneOp::Argmax | LaneOp::Softmax(_) => {
            ("-inf()", "max_nan(a, b)")
        }
        LaneOp::Reduce(ReduceOp::Min) => ("inf()", "min_nan(a, b)"),
    };
    s.push_str(&format!(
        "fn comb(a: f32, b: f32) -> f32 {{ return {comb}; }}\nfn init() -> f32 {{ return {init}; }}\n"
    ));
    if short {
        s.push_str(
            r#"
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lane = gid.x + gid.y * nwg.x * 256u;
    let n = word(1u); let inner = word(2u); let total = word(3u);
    if (lane >= word(0u)) { return; }
    let base = (lane / inner) * n * inner + lane % inner;
    var acc = init();
    var best = 0xffffffffu;
    for (var j = 0u; j < n; j++) {
        let idx = base + j * inner;
        if (idx >= total) { break; }
        let v = load(idx);
        ARGMAX_STEP
    }
    FINISH
}
"#,
        );
    } else {
        s.push_str(
            r#"
TREE
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) nwg: vec3<u32>SUBGROUP_ARGS) {
    SUBGROUP_INIT
    let lane = wid.x + wid.y * nwg.x;
    let n = word(1u); let inner = word(2u); let total = word(3u);
    if (lane >= word(0u)) { return; }
    let base = (lane / inner) * n * inner + lane % inner;
    var acc = init();
    var best = 0xffffffffu;
    var j = l;
FOUR    for (; j < n; j += 256u) {
        let idx = base + j * inner;
        if (idx >= total) { break; }
        let v = load(idx);
        ARGMAX_STEP
    }
MERGE    FINISH
}
"#,
        );
    }
    let step = match op {
        LaneOp::Argmax => "if (better(v, j, acc, best)) { acc = v; best = j; }",
        _ => "acc = comb(acc, v);",
    };
    // a reduction's threads (and softmax's, finding the maximum) take four elements a
    // step while all four are in the lane, into four accumulators: four loads in flight
    // at once rather than one
    let (four, merge) = match op {
        LaneOp::Reduce(_) | LaneOp::Softmax(_) => (
            r#"    var a1 = init(); var a2 = init(); var a3 = init();
    loop {
        let idx = base + j * inner;
        if (j + 768u >= n || idx + 768u * inner >= total) { break; }
        let v0 = load(idx);
        let v1 = load(idx + 256u * inner);
        let v2 = load(idx + 512u * inner);
        let v3 = load(idx + 768u * inner);
        acc = comb(acc, v0); a1 = comb(a1, v1); a2 = comb(a2, v2); a3 = comb(a3, v3);
        j += 1024u;
    }
"#,
            "    acc = comb(comb(acc, a1), comb(a2, a3));\n",
        ),
        _ => ("", ""),
    };
    let finish = match (op, short) {
        (LaneOp::Reduce(_), true) => "out[lane] = acc;".to_string(),
        (LaneOp::Reduce(_), false) => {
            "let r = tree(l, acc);\n    if (l == 0u) { out[lane] = r; }".to_string()
        }
        (LaneOp::Argmax, true) => "out[lane] = i32(best);".to_string(),
        (LaneOp::Argmax, false) => {
            "let r = tree_arg(l, acc, best);\n    if (l == 0u) { out[lane] = i32(r); }".to_string()
        }
        (LaneOp::Softmax(sop), short) => {
            // the shift: the maximum, or 0 where it is not finite (as on the CPU)
            let (m, sum_init, sum_loop, sum_done) = if short {
                (
                    "let m = acc;",
                    "var sum = 0.0;",
                    "for (var j = 0u; j < n; j++) {",
                    "",
                )
            } else {
                (
                    "let m = tree(l, acc);",
                    "var sum = 0.0;",
                    "for (var j = l; j < n; j += 256u) {",
                    "sum = tree_sum(l, sum);",
                )
            };
            let write = match sop {
                SoftmaxOp::LogSumExp => {
                    if short {
                        "out[lane] = shift + ln_(sum);".to_string()
                    } else {
                        "if (l == 0u) { out[lane] = shift + ln_(sum); }".to_string()
                    }
                }
                SoftmaxOp::Softmax => format!(
                    "let inv = 1.0 / sum;\n    {sum_loop}\n        let idx = base + j * inner;\n        out[idx] = exp_(load(idx) - shift) * inv;\n    }}"
                ),
                SoftmaxOp::LogSoftmax => format!(
                    "let lse = shift + ln_(sum);\n    {sum_loop}\n        let idx = base + j * inner;\n        out[idx] = load(idx) - lse;\n    }}"
                ),
            };
            format!(
                "{m}\n    let shift = select(0.0, m, is_finite(m));\n    {sum_init}\n    {sum_loop}\n        sum += exp_(load(base + j * inner) - shift);\n    }}\n    {sum_done}\n    {write}"
            )
        }
    };
    let (args, init_sub) = if sub {
        (
            ", @builtin(subgroup_invocation_id) sgi: u32, @builtin(subgroup_size) sgs: u32, \
             @builtin(subgroup_id) sgid: u32, @builtin(num_subgroups) nsg: u32",
            "SGI = sgi; SGS = sgs; SGID = sgid; NSG = nsg;",
        )
    } else {
        ("", "")
    };
    let tree = if short {
        String::new()
    } else {
        combiners(sub, init)
    };
    let mut s = s
        .replace("FOUR", four)
        .replace("MERGE", merge)
        .replace("ARGMAX_STEP", step)
        .replace("FINISH", &finish)
        .replace("SUBGROUP_ARGS", args)
        .replace("SUBGROUP_INIT", init_sub)
        .replace("TREE", &tree);
    s.push_str(&x.decls());
    s.push_str(&format!(
        "fn load(i: u32) -> f32 {{\n{}    return {};\n}}\n",
        x.loads(),
        x.code()
    ));
    s
}

/// The WGSL that combines the values of a workgroup's 256 threads into one that every
/// thread gets: `tree` (by `comb`), `tree_sum` (by `+`) and `tree_arg` (value-index pairs
/// by `better`, returning the index). Without `sub`: a tree in workgroup memory, eight
/// rounds each ending at a barrier. With `sub`: each subgroup combines its values by
/// butterfly shuffles (every lane ends with the subgroup's result), its first lane
/// writes that to workgroup memory, and the subgroups repeat this over those partial
/// results until one is left: two rounds with NVIDIA's subgroups of 32, three with
/// lavapipe's of 8, each with two barriers. Subgroups may be of any power-of-two size and
/// need not be made of consecutive threads; control flow is uniform at every call.
fn combiners(sub: bool, init: &str) -> String {
    let scalar = |name: &str, comb: &str, init: &str| {
        if sub {
            format!(
                r#"
fn sg_{name}(v: f32) -> f32 {{
    var a = v;
    for (var o = SGS >> 1u; o > 0u; o = o >> 1u) {{ let b = subgroupShuffleXor(a, o); a = {comb}; }}
    return a;
}}
fn {name}(l: u32, v: f32) -> f32 {{
    let x = sg_{name}(v);
    if (SGI == 0u) {{ sv[SGID] = x; }}
    workgroupBarrier();
    var count = NSG;
    while (count > 1u) {{
        let groups = (count + SGS - 1u) / SGS;
        let src = SGID * SGS + SGI;
        var y = {init};
        if (src < count) {{ y = sv[src]; }}
        y = sg_{name}(y);
        workgroupBarrier();
        if (SGI == 0u && SGID < groups) {{ sv[SGID] = y; }}
        workgroupBarrier();
        count = groups;
    }}
    let r = sv[0];
    workgroupBarrier();
    return r;
}}
"#
            )
        } else {
            format!(
                r#"
fn {name}(l: u32, v: f32) -> f32 {{
    sv[l] = v;
    workgroupBarrier();
    for (var h = 128u; h > 0u; h = h >> 1u) {{
        if (l < h) {{ let a = sv[l]; let b = sv[l + h]; sv[l] = {comb}; }}
        workgroupBarrier();
    }}
    let r = sv[0];
    workgroupBarrier();
    return r;
}}
"#
            )
        }
    };
    let arg = if sub {
        r#"
fn sg_arg(v: f32, j: u32) -> vec2<u32> {
    var a = v;
    var i = j;
    for (var o = SGS >> 1u; o > 0u; o = o >> 1u) {
        let b = subgroupShuffleXor(a, o);
        let k = subgroupShuffleXor(i, o);
        if (better(b, k, a, i)) { a = b; i = k; }
    }
    return vec2<u32>(bitcast<u32>(a), i);
}
fn tree_arg(l: u32, v: f32, j: u32) -> u32 {
    let x = sg_arg(v, j);
    if (SGI == 0u) { sv[SGID] = bitcast<f32>(x.x); si[SGID] = x.y; }
    workgroupBarrier();
    var count = NSG;
    while (count > 1u) {
        let groups = (count + SGS - 1u) / SGS;
        let src = SGID * SGS + SGI;
        var y = -inf();
        var k = 0xffffffffu;
        if (src < count) { y = sv[src]; k = si[src]; }
        let r = sg_arg(y, k);
        workgroupBarrier();
        if (SGI == 0u && SGID < groups) { sv[SGID] = bitcast<f32>(r.x); si[SGID] = r.y; }
        workgroupBarrier();
        count = groups;
    }
    let r = si[0];
    workgroupBarrier();
    return r;
}
"#
    } else {
        r#"
fn tree_arg(l: u32, v: f32, j: u32) -> u32 {
    sv[l] = v;
    si[l] = j;
    workgroupBarrier();
    for (var h = 128u; h > 0u; h = h >> 1u) {
        if (l < h && better(sv[l + h], si[l + h], sv[l], si[l])) { sv[l] = sv[l + h]; si[l] = si[l + h]; }
        workgroupBarrier();
    }
    let r = si[0];
    workgroupBarrier();
    return r;
}
"#
    };
    let privates = if sub {
        "var<private> SGI: u32;\nvar<private> SGS: u32;\nvar<private> SGID: u32;\nvar<private> NSG: u32;\n"
    } else {
        ""
    };
    format!(
        "{privates}{}{}{arg}",
        scalar("tree", "comb(a, b)", init),
        scalar("tree_sum", "a + b", "0.0")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Device;

    /// Both ways of combining a workgroup's results, the tree in workgroup memory and the
    /// subgroup shuffles (where the adapter has them: lavapipe's subgroups of 8 take
    /// three rounds), against the CPU, for every lane kernel, on lanes shorter and longer
    /// than a workgroup, with NaNs and ties for argmax.
    #[test]
    fn tree_and_subgroup_combining_match_the_cpu() {
        let dev = match Device::gpu() {
            Ok(d) => d,
            Err(e) if std::env::var("FERRAX_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
                panic!("FERRAX_REQUIRE_GPU=1 but there is no GPU: {e}")
            }
            Err(e) => return eprintln!("skipping a GPU test: {e}"),
        };
        let ways: &[bool] = if crate::gpu::context::existing(0).subgroups {
            &[false, true]
        } else {
            &[false]
        };
        for &(outer, n, inner) in &[(3, 65, 1), (2, 300, 3), (1, 1000, 1), (2, 5000, 2)] {
            let shape = [outer, n, inner];
            let len = outer * n * inner;
            // values in [-4, 4) in steps of 1/8, so that maxima tie; a NaN in lane 0
            let mut v: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 64) as f32 / 8.0 - 4.0)
                .collect();
            v[len / 3] = f32::NAN;
            let cpu = Tensor::from_vec(v, &shape);
            let x = cpu.to_device(&dev);
            for &sub in ways {
                let cases: [(LaneOp, Tensor, Vec<usize>); 7] = [
                    (
                        LaneOp::Reduce(ReduceOp::Sum),
                        cpu.sum_axis(1, true),
                        vec![outer, 1, inner],
                    ),
                    (
                        LaneOp::Reduce(ReduceOp::Max),
                        cpu.max_axis(1, true),
                        vec![outer, 1, inner],
                    ),
                    (
                        LaneOp::Reduce(ReduceOp::Min),
                        cpu.min_axis(1, true),
                        vec![outer, 1, inner],
                    ),
                    (
                        LaneOp::Argmax,
                        cpu.argmax_axis(1, true),
                        vec![outer, 1, inner],
                    ),
                    (
                        LaneOp::Softmax(SoftmaxOp::LogSumExp),
                        cpu.logsumexp_axis(1, true),
                        vec![outer, 1, inner],
                    ),
                    (
                        LaneOp::Softmax(SoftmaxOp::Softmax),
                        cpu.softmax(1),
                        shape.to_vec(),
                    ),
                    (
                        LaneOp::Softmax(SoftmaxOp::LogSoftmax),
                        cpu.log_softmax(1),
                        shape.to_vec(),
                    ),
                ];
                for (op, want, out_shape) in cases {
                    let got = along_axis_with(&x, op, shape, &out_shape, Some(sub)).unwrap();
                    let what = format!("{op:?} over {shape:?}, subgroups {sub}");
                    if let LaneOp::Argmax = op {
                        assert_eq!(got.to_vec::<i32>(), want.to_vec::<i32>(), "{what}");
                        continue;
                    }
                    for (i, (g, w)) in got
                        .to_vec::<f32>()
                        .iter()
                        .zip(want.to_vec::<f32>())
                        .enumerate()
                    {
                        assert!(
                            (g.is_nan() && w.is_nan())
                                || (g - w).abs() <= 1e-5 * (1.0 + w.abs()) * n as f32,
                            "{what}: element {i}: got {g}, want {w}"
                        );
                    }
                }
            }
        }
    }
}
