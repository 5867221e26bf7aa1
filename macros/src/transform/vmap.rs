//! Batching: IR -> IR where the chosen inputs carry a leading batch axis.
//!
//! JAX's `vmap` as a source transformation. A value is *batched* when it depends on a
//! batched input, through data or through control (a variable assigned under a condition
//! that differs per example). A batched value is a tensor whose axis 0 runs over the
//! examples: a per-example float becomes a 1-D tensor, a per-example tensor gains a leading
//! axis, a parameter struct (a per-example gradient) gains one in every field. Primitives
//! with a batched argument go to their batching rule, the helper of the same name in
//! `::ferrax::__private::b` (`src/batch_rules.rs`), which pushes the loop over examples
//! into the primitive: elementwise ops align the example ranks, reductions and views shift
//! their axes, matrix-vector products become matrix-matrix products.
//!
//! Control flow:
//! - `if` on a batched condition runs both branches and selects, per example, the values
//!   each branch assigned (both branches see every example; the unselected results are
//!   discarded, as in JAX's `select`).
//! - `loop` / `while` / `for` whose exit depends on the example iterate, each iteration
//!   guarded by the mask of examples still running, until every example is done.
//! - Loops over inactive ranges and branches on inactive conditions stay as they are.
//!
//! An unbatched value flowing into a batched variable is lifted (a stride-0 broadcast
//! view, no copy). The output of the transform is IR in the same language, so what it
//! produces is emitted like any other function (and `vmap` runs just as well over the
//! output of `jvp` and `vjp`: per-example gradients, Jacobians, Hessians).

use crate::ir::*;
use crate::primitives::Prim;
use proc_macro2::Span;
use std::collections::HashSet;
use syn::ext::IdentExt;

/// What `vmap` needs to know besides the function.
pub struct VmapIn<'a> {
    /// Variables that are batched from the start (parameters, or a seed of a sweep).
    pub batched: &'a [Var],
    /// An integer variable holding the batch size, defined before the body runs.
    pub bsz: Var,
    /// A batched tensor defined before the body runs, whose dtype lifted floats take.
    pub like: Var,
    /// Where errors without a span of their own point (the function's name).
    pub span: Span,
}

/// A construct `vmap` cannot batch, with the message for the user.
pub struct VmapError {
    pub span: Span,
    pub msg: String,
}

/// The batched version of `func`: its body computes every example at once. Batched
/// variables are marked (`VarInfo::batched`) and have a tensor or struct kind.
pub fn vmap(func: &Func, input: &VmapIn) -> Result<Func, VmapError> {
    let set = batched_vars(func, input.batched);
    let mut out = func.clone();
    // in order of creation, the variables the user named first: the one an error names
    let mut order: Vec<Var> = set.iter().copied().collect();
    order.sort_by_key(|v| (func.info(*v).span.is_none(), *v));
    for v in &order {
        let info = &mut out.vars[v.0 as usize];
        info.kind = match &info.kind {
            Kind::Float(_) | Kind::Tensor | Kind::Bool => Kind::Tensor,
            // a pullback stack holding batched values
            Kind::Struct => Kind::Struct,
            Kind::Opaque => Kind::Opaque,
            // a counter under a per-example condition (`while .. && i < 50 { i += 1 }`): a
            // batch of its values as floats (exact below 2^24 in f32)
            Kind::Int => Kind::Tensor,
            // a sequence of floats: a list of batched floats (`Vec<Tensor>`, each element a
            // `[B]` tensor), read and written element by element as the user's list is
            Kind::Seq(..) => Kind::Struct,
        };
        info.batched = true;
    }
    // the zero tangents forward mode made for lists of tensors the macro types as opaque
    // (a Jacobian's constant `ws: &[Tensor]`): lists too
    let mut list_slots = HashSet::new();
    walk(&func.body, &mut |s| {
        if let Stmt::Let {
            var,
            rhs: Rhs::NewSeq(NewSeq::ZerosLike(like)),
        } = s
            && func.info(*var).kind == Kind::Opaque
            && func
                .params
                .iter()
                .any(|p| p.var == *like && crate::vmap::seq_form(&p.ty).is_some())
        {
            list_slots.insert(*var);
        }
    });
    let mut v = Vmap {
        set,
        orig: func,
        func: out,
        input,
        err: None,
        masks: Vec::new(),
        list_slots,
    };
    let body = v.block(&func.body);
    if let Some(e) = v.err {
        return Err(e);
    }
    v.func.body = body;
    Ok(v.func)
}

/// The variables that differ per example: data dependence on `seeds`, plus every variable
/// assigned inside a branch or loop whose condition differs per example. A fixpoint, as
/// control dependence can make a condition batched that was not before.
fn batched_vars(func: &Func, seeds: &[Var]) -> HashSet<Var> {
    let mut set: HashSet<Var> = seeds.iter().copied().collect();
    // the transforms' tapes (unnamed by the user): every example pushes to them in every
    // iteration (see `select_if`), so only what they hold can make them differ per example
    let mut tapes = HashSet::new();
    walk(&func.body, &mut |s| {
        if let Stmt::Let {
            var,
            rhs: Rhs::NewSeq(NewSeq::Empty { .. }),
        } = s
            && func.info(*var).kind == Kind::Opaque
            && func.info(*var).span.is_none()
        {
            tapes.insert(*var);
        }
    });
    loop {
        let before = set.len();
        let mut add = Vec::new();
        data_deps(&func.body, &set, &mut add);
        control_deps(&func.body, &set, &tapes, false, &mut add);
        set.extend(add);
        if set.len() == before {
            return set;
        }
    }
}

fn is(set: &HashSet<Var>, a: &Atom) -> bool {
    matches!(a, Atom::Var(v) if set.contains(v))
}

fn data_deps(block: &Block, set: &HashSet<Var>, add: &mut Vec<Var>) {
    walk(block, &mut |s| match s {
        Stmt::Let { var, rhs } if rhs_batched(rhs, set) => add.push(*var),
        Stmt::Assign { var, value } | Stmt::AddAssign { var, value } if is(set, value) => {
            add.push(*var)
        }
        Stmt::Push { array, value } if is(set, value) => add.push(*array),
        Stmt::AddProject { target, value, .. } if is(set, value) => add.push(*target),
        Stmt::Store { array, value, .. } | Stmt::AddStore { array, value, .. }
            if is(set, value) =>
        {
            add.push(*array)
        }
        Stmt::AddSeq { target, value, .. } if set.contains(value) => add.push(*target),
        _ => {}
    });
}

/// Whether a right-hand side differs per example given batched `set`.
fn rhs_batched(rhs: &Rhs, set: &HashSet<Var>) -> bool {
    match rhs {
        // the same for every example: sizes and integer conversions
        Rhs::Prim(Prim::Numel | Prim::AxisLen | Prim::IntAsFloat, _) => false,
        // a tape's length: every example pushes in every iteration (see `select_if`); a
        // sequence of batched tensors holds as many for every example
        Rhs::Len(_) | Rhs::ProjectLen(..) => false,
        Rhs::Method { method, .. } if per_example_query(&method.to_string()) => false,
        r => rhs_uses(r).iter().any(|a| is(set, a)),
    }
}

/// Tensor queries whose answer is the same for every example (read off the example shape).
fn per_example_query(method: &str) -> bool {
    matches!(
        method,
        "shape"
            | "dims"
            | "numel"
            | "len"
            | "ndim"
            | "dtype"
            | "device"
            | "is_empty"
            | "scalar_like"
    )
}

fn control_deps(
    block: &Block,
    set: &HashSet<Var>,
    tapes: &HashSet<Var>,
    under: bool,
    add: &mut Vec<Var>,
) {
    for s in &block.stmts {
        if under {
            match s {
                Stmt::Assign { var, .. } | Stmt::AddAssign { var, .. } => add.push(*var),
                // (a trip mark pushed under per-example conditions: the running mask; a
                // tape takes nothing else from the condition)
                Stmt::Push { array, value }
                    if tapes.contains(array) && *value == Atom::Bool(true) =>
                {
                    add.push(*array)
                }
                Stmt::Push { array, .. } if tapes.contains(array) => {}
                Stmt::Push { array, .. }
                | Stmt::Store { array, .. }
                | Stmt::AddStore { array, .. }
                | Stmt::AddSeq { target: array, .. }
                | Stmt::AddProject { target: array, .. } => add.push(*array),
                _ => {}
            }
        }
        match s {
            Stmt::If { cond, then, els } => {
                let u = under || is(set, cond);
                control_deps(then, set, tapes, u, add);
                control_deps(els, set, tapes, u, add);
            }
            Stmt::Match { scrut, arms } => {
                let u = under || is(set, scrut);
                for a in arms {
                    control_deps(&a.body, set, tapes, u, add);
                }
            }
            Stmt::For { body, exit, .. } | Stmt::Loop { body, exit } => {
                let u = under || exit.iter().any(|e| set.contains(e));
                control_deps(body, set, tapes, u, add);
            }
            _ => {}
        }
    }
}

/// The variables `block` changes only by the (leaf) statements `by` accepts, what each
/// changes as `assigned_vars` says, and by no other.
fn written_only_by(block: &Block, by: fn(&Stmt) -> bool) -> HashSet<Var> {
    let (mut these, mut other) = (HashSet::new(), HashSet::new());
    walk(block, &mut |s| {
        if children(s).is_empty() {
            let changed = assigned_vars(&Block {
                stmts: vec![s.clone()],
            });
            if by(s) {
                these.extend(changed);
            } else {
                other.extend(changed);
            }
        }
    });
    these.difference(&other).copied().collect()
}

/// The variables `block` changes only by adding to their parts (`AddProject`: the adjoint
/// of a parameter struct or of a sequence of tensors).
fn projected_only(block: &Block) -> HashSet<Var> {
    written_only_by(block, |s| matches!(s, Stmt::AddProject { .. }))
}

/// The variables `block` changes only by writing their elements (`a[i] = x`, `a[i] += x`,
/// and undoing such writes), never by pushing to them or replacing them whole.
fn element_written_only(block: &Block) -> HashSet<Var> {
    written_only_by(block, |s| {
        matches!(
            s,
            Stmt::Store { .. }
                | Stmt::AddStore { .. }
                | Stmt::AddProject { .. }
                | Stmt::Undo { .. }
        )
    })
}

/// The variables `block` changes only by pushing to them (the transforms' tapes).
fn pushed_only(block: &Block) -> HashSet<Var> {
    written_only_by(block, |s| matches!(s, Stmt::Push { .. }))
}

/// The prefix of the counterpart of a `#[vmap]` function that callers in other batched
/// functions call: every float and tensor parameter batched along axis 0, result along 0.
pub const VMAP0: &str = "__ferrax_vmap0_";

/// The prefix of the batched "gradients for a cotangent" counterpart `#[vmap] #[grad]`
/// emits (every float and tensor parameter, and the cotangent, batched along axis 0; the
/// gradients of every float and tensor parameter, a tuple when several): what a batched
/// reverse sweep calls for a call of that function.
pub const VMAP0_CT: &str = "__ferrax_vmap0_ct_";

/// The prefix of the tangent counterpart `#[vmap] #[grad]` emits: the primal arguments
/// unbatched, then a tangent for every float and tensor parameter, batched along axis 0;
/// returns the tangent of the result. What `#[jacobian]`'s forward mode calls for a call.
pub const VMAP0_JVPT: &str = "__ferrax_vmap0_jvpt_";

/// The prefix of the forward-over-reverse counterpart `#[vmap] #[grad]` emits: the primal
/// arguments and a cotangent unbatched, then their tangents batched along axis 0; returns
/// the tangents of the gradients. What a batched Hessian calls for a call (see
/// `CallMode::VjpApplyTangent`).
pub const VMAP0_CTJVPT: &str = "__ferrax_vmap0_ctjvpt_";

/// The prefix of the counterpart of a `#[vmap]` function taking lists of tensors that a
/// caller calls with a list that differs per example: [`VMAP0`]'s with every list of tensors
/// batched too (each element along axis 0). Callers lift the other lists to the batch.
pub const VMAP0_LISTS: &str = "__ferrax_vmap0l_";

/// [`VMAP0_CT`]'s twin with lists of tensors batched (see [`VMAP0_LISTS`]).
pub const VMAP0_LISTS_CT: &str = "__ferrax_vmap0l_ct_";

/// [`VMAP0_JVPT`]'s twin with the tangents of lists of tensors batched.
pub const VMAP0_LISTS_JVPT: &str = "__ferrax_vmap0l_jvpt_";

/// [`VMAP0_CTJVPT`]'s twin with the tangents of lists of tensors batched.
pub const VMAP0_LISTS_CTJVPT: &str = "__ferrax_vmap0l_ctjvpt_";

struct Vmap<'a> {
    /// The variables batched from the start (lifts add their own, already marked).
    set: HashSet<Var>,
    /// The function before batching (the kinds its values had).
    orig: &'a Func,
    func: Func,
    input: &'a VmapIn<'a>,
    err: Option<VmapError>,
    /// The per-example conditions the statements being batched run under (a branch both
    /// of whose sides run for every example, a loop that every example runs until all are
    /// done), as batched masks: what a user's effect there is limited to.
    masks: Vec<Atom>,
    /// Zero tangents of lists of tensors of a type the macro cannot see (see [`vmap`]).
    list_slots: HashSet<Var>,
}

impl Vmap<'_> {
    fn fail(&mut self, span: Span, msg: impl Into<String>) {
        if self.err.is_none() {
            self.err = Some(VmapError {
                span,
                msg: msg.into(),
            });
        }
    }

    /// The kind an atom had before batching (a lifted temporary: its own).
    fn orig_kind(&self, a: Atom) -> Kind {
        match a {
            Atom::Var(v) if (v.0 as usize) < self.orig.vars.len() => self.orig.kind(a),
            a => self.func.kind(a),
        }
    }

    fn is_batched(&self, a: Atom) -> bool {
        self.func.batched(a)
    }

    /// Whether `v` is a sequence of floats that differs per example (held as a list of
    /// batched floats).
    fn is_seq(&self, v: &Var) -> bool {
        self.func.info(*v).batched
            && (v.0 as usize) < self.orig.vars.len()
            && matches!(self.orig.info(*v).kind, Kind::Seq(..))
    }

    /// Whether `a` is a parameter taken by reference (`x: &Tensor`, `xs: &[Tensor]`).
    fn is_ref_param(&self, a: Atom) -> bool {
        matches!(a, Atom::Var(v) if self.func.params.iter().any(|p| {
            p.var == v && matches!(p.ty, syn::Type::Reference(_))
        }))
    }

    /// Whether `a` is a list of tensors: a parameter of a list's type, a zero tangent of one,
    /// or a value of the kind lists and parameter structs share (the body builds lists,
    /// never structs).
    fn is_list(&self, a: Atom) -> bool {
        let Atom::Var(v) = a else { return false };
        if let Some(p) = self.func.params.iter().find(|p| p.var == v) {
            // (a list the macro types as opaque too: a Jacobian's constant)
            return crate::vmap::seq_form(&p.ty).is_some();
        }
        self.list_slots.contains(&v) || self.orig_kind(a) == Kind::Struct
    }

    /// An unbatched list of tensors as a batched one (`b::lift_list`: each element a
    /// stride-0 view over the batch).
    fn lift_list(&mut self, out: &mut Vec<Stmt>, a: Atom) -> Atom {
        let name = match a {
            Atom::Var(v) => self.func.info(v).name.clone(),
            _ => "list".into(),
        };
        let v = self
            .func
            .new_var(&format!("{name}_lifted"), Kind::Struct, false);
        self.func.vars[v.0 as usize].batched = true;
        let rhs = Self::call(
            "lift_list",
            vec![
                Arg {
                    atom: a,
                    borrow: true,
                },
                Arg {
                    atom: Atom::Var(self.input.bsz),
                    borrow: false,
                },
            ],
        );
        out.push(Stmt::Let { var: v, rhs });
        Atom::Var(v)
    }

    fn b_path(name: &str) -> syn::ExprPath {
        let id = syn::Ident::new(name, Span::call_site());
        syn::parse_quote!(::ferrax::__private::b::#id)
    }

    fn call(name: &str, args: Vec<Arg>) -> Rhs {
        Rhs::Call {
            func: Self::b_path(name),
            args,
            mode: CallMode::Primal,
            span: Span::call_site(),
        }
    }

    /// An unbatched argument of a type only rustc knows, for another function's batched
    /// counterpart: a float or a tensor lifted to the batch, anything else as it is (the
    /// choice is rustc's, by the value's type: see `b::OpaqueArg`).
    fn opaque_arg(&mut self, out: &mut Vec<Stmt>, a: Arg) -> Arg {
        let method = |name: &str| -> syn::ExprPath {
            let (m, id) = (
                syn::Ident::new(crate::ir::METHOD, Span::call_site()),
                syn::Ident::new(name, Span::call_site()),
            );
            syn::parse_quote!(#m::#id)
        };
        let arg = |atom, borrow| Arg { atom, borrow };
        let probe = self.func.new_var("arg_probe", Kind::Opaque, false);
        let like = Atom::Var(self.input.like);
        out.push(Stmt::Let {
            var: probe,
            rhs: Self::call("opaque_arg", vec![a, arg(like, true)]),
        });
        let mut prev = probe;
        for name in ["lift_opaque", "pass"] {
            let v = self.func.new_var("arg", Kind::Opaque, false);
            out.push(Stmt::Let {
                var: v,
                rhs: Rhs::Call {
                    func: method(name),
                    args: vec![arg(Atom::Var(prev), false)],
                    mode: CallMode::Primal,
                    span: Span::call_site(),
                },
            });
            prev = v;
        }
        arg(Atom::Var(prev), false)
    }

    /// A float lifted to a batched float, an element of a list of them.
    fn lift_element(&mut self, out: &mut Vec<Stmt>, a: Atom) -> Atom {
        let element = self.func.new_var("element", Kind::Tensor, false);
        self.func.vars[element.0 as usize].batched = true;
        self.lift(out, a, element)
    }

    /// `a` lifted to a batched value of the kind of `target` (a stride-0 broadcast view).
    fn lift(&mut self, out: &mut Vec<Stmt>, a: Atom, target: Var) -> Atom {
        self.lift_with(out, a, target, "lift")
    }

    /// [`Self::lift`], lifting a tensor with the helper `tensor_helper` (`lift_arg` for a
    /// call's argument: a field typed as a tensor here may be a parameter struct, which the
    /// callee's counterpart takes unbatched).
    fn lift_with(
        &mut self,
        out: &mut Vec<Stmt>,
        a: Atom,
        target: Var,
        tensor_helper: &str,
    ) -> Atom {
        if self.is_batched(a) {
            return a;
        }
        let kind = self.func.info(target).kind.clone();
        let bsz = Arg {
            atom: Atom::Var(self.input.bsz),
            borrow: false,
        };
        let like = Arg {
            atom: Atom::Var(self.input.like),
            borrow: true,
        };
        let rhs = match (a, self.func.kind(a)) {
            (Atom::Bool(b), _) => Self::call(
                "lift_like",
                vec![
                    Arg {
                        atom: Atom::Float(if b { 1.0 } else { 0.0 }),
                        borrow: false,
                    },
                    like,
                ],
            ),
            (Atom::Int(i), _) => Self::call(
                "lift_like",
                vec![
                    Arg {
                        atom: Atom::Float(i as f64),
                        borrow: false,
                    },
                    like,
                ],
            ),
            (_, Kind::Int) => Self::call(
                "lift_int",
                vec![
                    Arg {
                        atom: a,
                        borrow: false,
                    },
                    like,
                ],
            ),
            (_, Kind::Bool) => Self::call(
                "lift_bool",
                vec![
                    Arg {
                        atom: a,
                        borrow: false,
                    },
                    like,
                ],
            ),
            (_, Kind::Float(_)) => Self::call(
                "lift_like",
                vec![
                    Arg {
                        atom: a,
                        borrow: false,
                    },
                    like,
                ],
            ),
            // a sequence of floats: a list of batched floats, each a broadcast
            (_, Kind::Seq(..)) => Self::call(
                "lift_seq",
                vec![
                    Arg {
                        atom: a,
                        borrow: true,
                    },
                    like,
                ],
            ),
            (_, Kind::Struct) => Self::call(
                "lift_struct",
                vec![
                    Arg {
                        atom: a,
                        borrow: true,
                    },
                    bsz,
                ],
            ),
            (_, Kind::Tensor) => {
                // a reference parameter is passed as it is: `&T` with `T` owned, as
                // `lift_arg`'s type test needs
                let by_ref = self.is_ref_param(a);
                Self::call(
                    tensor_helper,
                    vec![
                        Arg {
                            atom: a,
                            borrow: !by_ref,
                        },
                        bsz,
                    ],
                )
            }
            (_, k) => {
                self.fail(
                    self.input.span,
                    format!(
                        "#[vmap]: a value of kind {k:?} would have to differ per example; supported: floats, tensors, bools and parameter structs"
                    ),
                );
                return a;
            }
        };
        let name = self.func.info(target).name.clone();
        let v = self.func.new_var(&format!("{name}_lifted"), kind, false);
        self.func.vars[v.0 as usize].batched = true;
        out.push(Stmt::Let { var: v, rhs });
        Atom::Var(v)
    }

    fn block(&mut self, b: &Block) -> Block {
        let mut out = Vec::new();
        for s in &b.stmts {
            self.stmt(s, &mut out);
        }
        Block { stmts: out }
    }

    fn stmt(&mut self, s: &Stmt, out: &mut Vec<Stmt>) {
        let batched = |v: &Var| self.func.info(*v).batched;
        match s {
            Stmt::Let { var, rhs } => {
                if !batched(var) {
                    out.push(Stmt::Let {
                        var: *var,
                        rhs: self.example_query(rhs),
                    });
                    return;
                }
                if matches!(rhs, Rhs::Uninit) {
                    // a value for every example, so that a per-example branch can select
                    let z = self.lift(out, Atom::Float(0.0), *var);
                    out.push(Stmt::Let {
                        var: *var,
                        rhs: Rhs::Atom(z),
                    });
                    return;
                }
                if matches!(rhs, Rhs::NewSeq(NewSeq::Empty { .. }))
                    && (self.func.info(*var).kind == Kind::Opaque || self.is_seq(var))
                {
                    // a reverse sweep's stack of batched values starts empty as any other,
                    // as does a Vec of floats that examples push to (a `Vec<Tensor>`)
                    out.push(s.clone());
                    return;
                }
                if !rhs_batched(rhs, &self.set) {
                    // an unbatched start (`let mut s = 0.0`, an adjoint's zero): lift it
                    let info = self.func.info(*var).clone();
                    let kind = match (&info.kind, rhs) {
                        (_, Rhs::Project(..) | Rhs::ProjectTangent(..)) => Kind::Tensor,
                        // a sequence of floats, lifted to a list of batched floats
                        _ if self.is_seq(var) => self.orig.info(*var).kind.clone(),
                        _ => unbatched_kind(&self.func, rhs).unwrap_or(info.kind.clone()),
                    };
                    let tmp = self.func.new_var(&info.name, kind, false);
                    out.push(Stmt::Let {
                        var: tmp,
                        rhs: rhs.clone(),
                    });
                    let l = self.lift(out, Atom::Var(tmp), *var);
                    out.push(Stmt::Let {
                        var: *var,
                        rhs: Rhs::Atom(l),
                    });
                    return;
                }
                if let Rhs::NewSeq(NewSeq::ArrayOf(items)) = rhs {
                    // `[a, b, c]` of floats some of which differ per example: a Vec of
                    // batched floats, as every list of them is (`[t; 3]` of tensors would
                    // be another type)
                    self.func.vars[var.0 as usize].mutable = true;
                    out.push(Stmt::Let {
                        var: *var,
                        rhs: Rhs::NewSeq(NewSeq::Empty {
                            capacity: Some(Atom::Int(items.len() as u128)),
                        }),
                    });
                    for a in items {
                        let value = self.lift_element(out, *a);
                        out.push(Stmt::Push { array: *var, value });
                    }
                    return;
                }
                let rhs = self.batched_rhs(rhs, out);
                out.push(Stmt::Let { var: *var, rhs });
            }
            Stmt::Assign { var, value } | Stmt::AddAssign { var, value } if batched(var) => {
                let value = self.lift(out, *value, *var);
                out.push(match s {
                    Stmt::Assign { var, .. } => Stmt::Assign { var: *var, value },
                    _ => Stmt::AddAssign { var: *var, value },
                });
            }
            Stmt::Push { array, value } if batched(array) => {
                // a trip mark pushed under per-example conditions: set only for the examples
                // still running (a reverse sweep masks its iteration by it)
                let mut value = *value;
                if value == Atom::Bool(true) && !self.masks.is_empty() {
                    value = self.mask(out);
                }
                let value = &value;
                // (onto a stack of batched values: an unbatched one lifted as what it is)
                let value = match self.func.info(*array).kind {
                    _ if self.is_seq(array) => self.lift_element(out, *value),
                    Kind::Opaque if !self.is_batched(*value) => {
                        let tmp = self.func.new_var("pushed", Kind::Tensor, false);
                        self.func.vars[tmp.0 as usize].batched = true;
                        self.lift(out, *value, tmp)
                    }
                    _ => self.lift(out, *value, *array),
                };
                out.push(Stmt::Push {
                    array: *array,
                    value,
                });
            }
            Stmt::AddProject {
                target,
                path,
                value,
            } if batched(target) => {
                let mut value = self.lift(out, *value, *target);
                // under per-example conditions, only the examples that hold them add
                if !self.masks.is_empty() && self.func.info(*target).kind == Kind::Struct {
                    let mask = self.mask(out);
                    value =
                        self.batched_prim(out, Prim::Select, vec![mask, value, Atom::Float(0.0)]);
                }
                out.push(Stmt::AddProject {
                    target: *target,
                    path: path.clone(),
                    value,
                });
            }
            // a Vec of batched tensors is pushed to and written by every example at once (at
            // the same index): its undo log walks it back as it does unbatched
            Stmt::LogWrite { array, .. } | Stmt::Undo { array, .. }
                if batched(array) && self.func.info(*array).kind == Kind::Struct =>
            {
                out.push(s.clone())
            }
            Stmt::Store {
                array,
                index,
                value,
            } if batched(array)
                && self.func.info(*array).kind == Kind::Struct
                && !self.is_batched(*index) =>
            {
                let mut value = if self.is_seq(array) {
                    self.lift_element(out, *value)
                } else {
                    self.lift(out, *value, *array)
                };
                if self.is_seq(array) && !self.masks.is_empty() {
                    // under per-example conditions, only the examples that hold them write
                    let old = self.func.new_var("old", Kind::Tensor, false);
                    self.func.vars[old.0 as usize].batched = true;
                    out.push(Stmt::Let {
                        var: old,
                        rhs: Rhs::Project(*array, vec![Proj::Index(*index)]),
                    });
                    let mask = self.mask(out);
                    value = self.batched_prim(out, Prim::Select, vec![mask, value, Atom::Var(old)]);
                }
                out.push(Stmt::Store {
                    array: *array,
                    index: *index,
                    value,
                });
            }
            // `seq[i] += v` into a list of batched floats: an accumulation into its element
            // (the `AddProject` rule, which masks it under per-example conditions)
            Stmt::AddStore {
                array,
                index,
                value,
            } if self.is_seq(array) && !self.is_batched(*index) => {
                let add = Stmt::AddProject {
                    target: *array,
                    path: vec![Proj::Index(*index)],
                    value: *value,
                };
                self.stmt(&add, out);
            }
            Stmt::AddSeq {
                target,
                value,
                offset,
            } if self.is_seq(target)
                && offset.is_none_or(|o| !self.is_batched(o))
                && self.masks.is_empty() =>
            {
                // (a variable lifts to a variable)
                if let Atom::Var(value) = self.lift(out, Atom::Var(*value), *target) {
                    out.push(Stmt::AddSeq {
                        target: *target,
                        value,
                        offset: *offset,
                    });
                }
            }
            Stmt::Store { array, .. }
            | Stmt::AddStore { array, .. }
            | Stmt::AddSeq { target: array, .. }
            | Stmt::LogWrite { array, .. }
            | Stmt::Undo { array, .. }
                if batched(array) =>
            {
                let name = self.func.info(*array).name.clone();
                self.fail(
                    self.input.span,
                    format!(
                        "#[vmap]: element writes into `{name}`, which differs per example, are not supported; build per-example data as a `Tensor`"
                    ),
                );
            }
            Stmt::If { cond, then, els } if self.is_batched(*cond) => {
                self.select_if(*cond, then, els, out);
            }
            Stmt::If { cond, then, els } => {
                let (then, els) = (self.block(then), self.block(els));
                out.push(Stmt::If {
                    cond: *cond,
                    then,
                    els,
                });
            }
            Stmt::Match { scrut, arms } if self.is_batched(*scrut) => {
                let span = arms
                    .first()
                    .map(|a| syn::spanned::Spanned::span(&a.pat))
                    .unwrap_or(self.input.span);
                self.fail(
                    span,
                    "#[vmap]: `match` on a value that differs per example is not supported; use `if` / `else` (run per example as a select)",
                );
            }
            Stmt::Match { scrut, arms } => {
                let arms = arms
                    .iter()
                    .map(|a| Arm {
                        pat: a.pat.clone(),
                        binds: a.binds.clone(),
                        body: self.block(&a.body),
                    })
                    .collect();
                out.push(Stmt::Match {
                    scrut: *scrut,
                    arms,
                });
            }
            Stmt::For {
                index,
                range,
                body,
                exit,
            } => {
                if let Some(v) = [range.lo, range.hi]
                    .iter()
                    .filter(|a| self.is_batched(**a))
                    .find_map(|a| a.var())
                {
                    let span = self.orig.info(v).span.unwrap_or(self.input.span);
                    self.fail(
                        span,
                        "#[vmap]: a `for` loop's bound differs per example; loop `while` a per-example condition holds instead (`while i < n { ..; i += 1 }`)",
                    );
                }
                let (body, exit) = self.loop_body(body, exit);
                let mut range = range.clone();
                // a scalar gradient's loop split over threads, now over batches: in order
                if read_vars(&body)
                    .into_iter()
                    .chain(assigned_vars(&body))
                    .any(|v| self.func.info(v).batched)
                {
                    range.adapters.retain(|a| !matches!(a, Adapter::Split));
                }
                out.push(Stmt::For {
                    index: *index,
                    range,
                    body,
                    exit,
                });
            }
            Stmt::Loop { body, exit } => {
                let (body, exit) = self.loop_body(body, exit);
                out.push(Stmt::Loop { body, exit });
            }
            Stmt::Effect(e) => self.effect(e, out),
            s => out.push(s.clone()),
        }
    }

    /// A right-hand side reading batched values, rewritten for the batching rules.
    fn batched_rhs(&mut self, rhs: &Rhs, out: &mut Vec<Stmt>) -> Rhs {
        match rhs {
            // a per-example integer (a counter) is a batch of floats: integer division,
            // remainders and bit operations would not be what Rust computes
            Rhs::Prim(
                p @ (Prim::Div
                | Prim::Rem
                | Prim::BitAnd
                | Prim::BitOr
                | Prim::BitXor
                | Prim::Shl
                | Prim::Shr),
                args,
            ) if args
                .iter()
                .any(|a| self.is_batched(*a) && self.orig_kind(*a) == Kind::Int) =>
            {
                let span = args
                    .iter()
                    .filter_map(|a| a.var())
                    .find_map(|v| self.orig.info(v).span)
                    .unwrap_or(self.input.span);
                self.fail(
                    span,
                    format!("#[vmap]: an integer that differs per example (a counter) is a batch of floats, which `{p:?}` cannot take as Rust does; supported on it: + - *, comparisons and `as` casts"),
                );
                rhs.clone()
            }
            // `i as f64`, `i as usize` of a per-example counter: the batch itself
            Rhs::Cast(a, _) if self.orig_kind(*a) == Kind::Int => Rhs::Atom(*a),
            // an element of a list of batched floats
            Rhs::Index(seq, i) if self.is_seq(seq) && !self.is_batched(*i) => {
                Rhs::Project(*seq, vec![Proj::Index(*i)])
            }
            Rhs::Index(_, i) if self.is_batched(*i) => {
                let span = i
                    .var()
                    .and_then(|v| self.orig.info(v).span)
                    .unwrap_or(self.input.span);
                self.fail(
                    span,
                    "#[vmap]: an index that differs per example is not supported; index with a value shared by every example (a loop counter), or gather from a `Tensor` with `index_select`",
                );
                rhs.clone()
            }
            Rhs::Sum(seq) if self.is_seq(seq) => Self::call(
                "sum_seq",
                vec![
                    Arg {
                        atom: Atom::Var(*seq),
                        borrow: true,
                    },
                    Arg {
                        atom: Atom::Var(self.input.like),
                        borrow: true,
                    },
                ],
            ),
            // a view of part of a list of batched floats, read through its base
            Rhs::SubSlice(seq, lo, hi)
                if self.is_seq(seq) && !self.is_batched(*lo) && !self.is_batched(*hi) =>
            {
                rhs.clone()
            }
            // a new sequence of floats some of which differ per example: of batched floats
            // (each unbatched one lifted)
            Rhs::NewSeq(NewSeq::Filled { value, len }) if !self.is_batched(*len) => {
                let value = self.lift_element(out, *value);
                Rhs::NewSeq(NewSeq::Filled { value, len: *len })
            }
            Rhs::NewSeq(NewSeq::ArrayRepeat { value, len }) => {
                // (`[t; N]` would need `Tensor: Copy`: a Vec of N clones, read the same way)
                let n = self.func.new_var("len", Kind::Int, false);
                let len_rhs = match syn::parse2::<syn::Expr>(len.clone()) {
                    Ok(syn::Expr::Lit(l)) => Some(Rhs::Lit(l.lit)),
                    Ok(syn::Expr::Path(p)) => Some(Rhs::Path(p)),
                    _ => None,
                };
                let Some(len_rhs) = len_rhs else {
                    self.fail(
                        self.input.span,
                        format!("#[vmap]: an array `[x; {len}]` of values that differ per example takes a literal or a constant's name as its length"),
                    );
                    return rhs.clone();
                };
                out.push(Stmt::Let {
                    var: n,
                    rhs: len_rhs,
                });
                let value = self.lift_element(out, *value);
                Rhs::NewSeq(NewSeq::Filled {
                    value,
                    len: Atom::Var(n),
                })
            }
            Rhs::NewSeq(NewSeq::CopyOf(seq)) if self.is_seq(seq) => rhs.clone(),
            // primitives go to `b::` when the emitter sees a batched argument
            Rhs::Prim(..)
            | Rhs::Atom(_)
            | Rhs::Project(..)
            | Rhs::ProjectTangent(..)
            | Rhs::Pop(_)
            | Rhs::Tuple(_)
            | Rhs::Field(..) => rhs.clone(),
            // a zero like a batched tensor or list (an adjoint's start) is a batched zero
            Rhs::NewSeq(NewSeq::ZerosLike(v)) if self.func.info(*v).kind.is_tensor() => rhs.clone(),
            // the runtime's tensor helpers have batched twins of the same name
            Rhs::Call {
                func,
                args,
                mode: CallMode::Primal,
                span,
            } if runtime_helper(func, "t") => {
                let name = func
                    .path
                    .segments
                    .last()
                    .map(|s| s.ident.to_string())
                    .unwrap_or_default();
                let args = args
                    .iter()
                    .map(|a| Arg {
                        atom: a.atom,
                        borrow: a.borrow && !self.is_batched(a.atom),
                    })
                    .collect::<Vec<_>>();
                let mut c = Self::call(&name, args);
                if let Rhs::Call { span: s, .. } = &mut c {
                    *s = *span;
                }
                c
            }
            Rhs::Method {
                recv,
                method,
                args,
                span,
            } if self.is_batched(*recv) => {
                let name = method.to_string();
                match name.as_str() {
                    "zeros_like" | "ones_like" | "full_like" | "one_hot" | "clone" => rhs.clone(),
                    "argmax_axis" | "argmin_axis" | "cumargmax" | "cumargmin" | "argsort"
                    | "top_k_indices" | "item" => {
                        let mut all = vec![Arg {
                            atom: *recv,
                            borrow: false,
                        }];
                        all.extend(args.iter().cloned());
                        let mut c = Self::call(&format!("method_{name}"), all);
                        if let Rhs::Call { span: s, .. } = &mut c {
                            *s = *span;
                        }
                        c
                    }
                    _ => {
                        self.fail(
                            *span,
                            format!(
                                "#[vmap]: `.{name}()` on a value that differs per example is not supported; supported: the tensor primitives, shape queries and zeros_like ones_like full_like one_hot argmax_axis argmin_axis cumargmax cumargmin argsort top_k_indices item"
                            ),
                        );
                        rhs.clone()
                    }
                }
            }
            // another `#[vmap]` function: its counterpart batched along axis 0 in every
            // float and tensor parameter, with the unbatched ones lifted
            // and the gradients of a `#[vmap] #[grad]` callee for a cotangent (a reverse
            // sweep that recomputes calls: `vjp_recomputing_calls`), batched the same way
            Rhs::Call {
                func,
                args,
                mode:
                    mode @ (CallMode::Primal
                    | CallMode::VjpApply(_)
                    | CallMode::JvpTangent { .. }
                    | CallMode::VjpApplyTangent { .. }),
                span,
            } => {
                // (and a callee's tangent, batched over the tangents only: its counterpart
                // takes the primal arguments unbatched)
                // (a list of tensors that differs per example: the counterpart batching lists
                // too, the other lists lifted to the batch)
                let (prefixes, ct, primals) = match mode {
                    CallMode::VjpApply(ct) => ((VMAP0_CT, VMAP0_LISTS_CT), Some(*ct), 0),
                    CallMode::JvpTangent { primals } => {
                        ((VMAP0_JVPT, VMAP0_LISTS_JVPT), None, *primals)
                    }
                    // the primal arguments and the cotangent unbatched
                    CallMode::VjpApplyTangent { primals } => {
                        ((VMAP0_CTJVPT, VMAP0_LISTS_CTJVPT), None, *primals + 1)
                    }
                    _ => ((VMAP0, VMAP0_LISTS), None, 0),
                };
                let lists = args
                    .iter()
                    .skip(primals)
                    .any(|a| self.is_batched(a.atom) && self.orig_kind(a.atom) == Kind::Struct);
                let prefix = if lists { prefixes.1 } else { prefixes.0 };
                let mut path = func.clone();
                if let Some(last) = path.path.segments.last_mut() {
                    last.ident = syn::Ident::new(
                        &format!("{prefix}{}", last.ident.unraw()),
                        last.ident.span(),
                    );
                }
                let all: Vec<Arg> = args
                    .iter()
                    .cloned()
                    .chain(ct.map(|atom| Arg {
                        atom,
                        borrow: false,
                    }))
                    .collect();
                let mut new_args = Vec::new();
                for (k, a) in all.iter().enumerate() {
                    if k < primals {
                        if self.is_batched(a.atom) {
                            self.fail(
                                *span,
                                "a primal argument of this call differs per tangent, which the callee's forward mode batched over tangents cannot take",
                            );
                        }
                        new_args.push(*a);
                        continue;
                    }
                    let kind = self.orig_kind(a.atom);
                    if lists && self.is_list(a.atom) {
                        // a list of tensors, batched element by element (`&[Tensor]`,
                        // `&Vec<Tensor>` and `Vec<Tensor>` alike: a lifted one is a `Vec`)
                        let atom = if self.is_batched(a.atom) {
                            a.atom
                        } else {
                            self.lift_list(out, a.atom)
                        };
                        let borrow = a.borrow || (atom != a.atom && self.is_ref_param(a.atom));
                        new_args.push(Arg { atom, borrow });
                        continue;
                    }
                    if kind == Kind::Opaque && !self.is_batched(a.atom) {
                        // a constant of a type only rustc knows (`SCALE`, `STEPS`, `CFG`)
                        new_args.push(self.opaque_arg(out, *a));
                        continue;
                    }
                    let batchable = matches!(kind, Kind::Float(_) | Kind::Tensor);
                    if !batchable && self.is_batched(a.atom) {
                        self.fail(
                            *span,
                            "#[vmap]: this argument differs per example but is neither a float, a tensor nor a list of tensors, which the callee's batched counterpart takes unbatched",
                        );
                    }
                    let atom = if batchable && !self.is_batched(a.atom) {
                        let tmp = self.func.new_var("arg", Kind::Tensor, false);
                        self.func.vars[tmp.0 as usize].batched = true;
                        self.lift_with(out, a.atom, tmp, "lift_arg")
                    } else {
                        a.atom
                    };
                    // floats and tensors are tensors here, passed by reference (a lifted
                    // argument or a cotangent is an owned one; `&&Tensor` coerces)
                    let borrow = a.borrow || batchable;
                    new_args.push(Arg { atom, borrow });
                }
                Rhs::Call {
                    func: path,
                    args: new_args,
                    mode: CallMode::Primal,
                    span: *span,
                }
            }
            Rhs::Call { span, func, .. } => {
                let name = quote::ToTokens::to_token_stream(func).to_string();
                self.fail(
                    *span,
                    format!(
                        "`{name}` is called through a derivative with batched arguments in a form that cannot be batched (its pullback kept whole, or forward mode with the value); supported: calls of other `#[vmap] #[grad]` functions from `#[vmap] #[grad]`, `#[jacobian]` and `#[hessian]`. Write the callee's body inline"
                    ),
                );
                rhs.clone()
            }
            Rhs::CallVar { .. } => {
                self.fail(
                    self.input.span,
                    "#[vmap]: a pullback of a call cannot be batched yet; write the callee's body inline",
                );
                rhs.clone()
            }
            _ => {
                self.fail(
                    self.input.span,
                    "#[vmap]: this expression cannot differ per example (sequences, casts and paths are per-batch constants)",
                );
                rhs.clone()
            }
        }
    }

    /// A shape query on a batched tensor answers for one example (`b::method_shape`..).
    fn example_query(&self, rhs: &Rhs) -> Rhs {
        match rhs {
            Rhs::Method {
                recv,
                method,
                args,
                span,
            } if self.is_batched(*recv)
                && args.is_empty()
                && matches!(
                    method.to_string().as_str(),
                    "shape" | "dims" | "numel" | "len" | "ndim" | "is_empty"
                ) =>
            {
                let mut c = Self::call(
                    &format!("method_{method}"),
                    vec![Arg {
                        atom: *recv,
                        borrow: false,
                    }],
                );
                if let Rhs::Call { span: s, .. } = &mut c {
                    *s = *span;
                }
                c
            }
            r => r.clone(),
        }
    }

    /// `if c { then } else { els }` with `c` differing per example: both branches run on
    /// every example; each variable they assign takes, per example, its branch's value.
    fn select_if(&mut self, cond: Atom, then: &Block, els: &Block, out: &mut Vec<Stmt>) {
        let inner: HashSet<Var> = declared_vars(then)
            .into_iter()
            .chain(declared_vars(els))
            .collect();
        let mut assigned: Vec<Var> = assigned_vars(then)
            .into_iter()
            .chain(assigned_vars(els))
            .filter(|v| !inner.contains(v))
            .collect();
        assigned.sort();
        assigned.dedup();
        // a reverse sweep's tapes (stacks the transforms push to) take a value from every
        // example, running or not: their pops then match, and a reverse sweep masks what it
        // does with them by the trip marks it pops (the masks pushed here)
        let both = Block {
            stmts: then.stmts.iter().chain(&els.stmts).cloned().collect(),
        };
        let pushed_only = pushed_only(&both);
        // the adjoint of a sequence of tensors that the branches only add to (a reverse
        // sweep's `ws_bar[l] += g`): each example adds its own branch's part, the values
        // masked by the branch's condition (see the `AddProject` rule)
        let projected = projected_only(&both);
        // a sequence of floats whose elements the branches write (`v[i] = x`): each example
        // writes its own (see the `Store` rule, which masks the write by the conditions)
        let elements = element_written_only(&both);
        assigned.retain(|v| {
            let info = self.func.info(*v);
            let tape = info.kind == Kind::Opaque && info.span.is_none() && pushed_only.contains(v);
            let added_to = info.kind == Kind::Struct && projected.contains(v);
            let stored = self.is_seq(v) && elements.contains(v);
            !tape && !added_to && !stored
        });
        for v in &assigned {
            let info = self.func.info(*v);
            if self.is_seq(v) {
                let msg = format!(
                    "#[vmap]: `{}` is pushed to or replaced whole under a condition that differs per example, which would give the examples sequences of different lengths; under such a condition write its elements (`{}[i] = ..`)",
                    info.name, info.name
                );
                self.fail(info.span.unwrap_or(self.input.span), msg);
                return;
            }
            if !matches!(info.kind, Kind::Tensor) {
                let msg = format!(
                    "#[vmap]: `{}` is assigned under a condition that differs per example; only float, tensor and bool variables can be (it would be selected per example)",
                    info.name
                );
                self.fail(info.span.unwrap_or(self.input.span), msg);
                return;
            }
        }
        let mut saved = Vec::new();
        for v in &assigned {
            let info = self.func.info(*v).clone();
            let s = self
                .func
                .new_var(&format!("{}_before", info.name), info.kind.clone(), false);
            self.func.vars[s.0 as usize].batched = true;
            out.push(Stmt::Let {
                var: s,
                rhs: Rhs::Atom(Atom::Var(*v)),
            });
            saved.push(s);
        }
        self.masks.push(cond);
        let t = self.block(then);
        self.masks.pop();
        out.extend(t.stmts);
        let mut taken = Vec::new();
        for (v, s) in assigned.iter().zip(&saved) {
            let info = self.func.info(*v).clone();
            let t = self
                .func
                .new_var(&format!("{}_then", info.name), info.kind.clone(), false);
            self.func.vars[t.0 as usize].batched = true;
            out.push(Stmt::Let {
                var: t,
                rhs: Rhs::Atom(Atom::Var(*v)),
            });
            out.push(Stmt::Assign {
                var: *v,
                value: Atom::Var(*s),
            });
            taken.push(t);
        }
        // the else side's mask, only where an effect, an accumulation or an element write
        // there reads it
        let not = (has_effect(els)
            || !projected_only(els).is_empty()
            || element_written_only(els).iter().any(|v| self.is_seq(v)))
        .then(|| self.batched_prim(out, Prim::Not, vec![cond]));
        if let Some(not) = not {
            self.masks.push(not);
        }
        let e = self.block(els);
        if not.is_some() {
            self.masks.pop();
        }
        out.extend(e.stmts);
        for (v, t) in assigned.iter().zip(&taken) {
            let info = self.func.info(*v).clone();
            let sel = self
                .func
                .new_var(&format!("{}_sel", info.name), info.kind.clone(), false);
            self.func.vars[sel.0 as usize].batched = true;
            out.push(Stmt::Let {
                var: sel,
                rhs: Rhs::Prim(Prim::Select, vec![cond, Atom::Var(*t), Atom::Var(*v)]),
            });
            out.push(Stmt::Assign {
                var: *v,
                value: Atom::Var(sel),
            });
        }
    }

    /// A user's effect (`println!`, `assert!`, ..). One that reads only values shared by
    /// every example, outside per-example conditions, runs once. Otherwise it runs once per
    /// example, as it would in a loop of the unbatched function: for the examples its
    /// conditions hold for, with each per-example value read at that example.
    fn effect(&mut self, e: &Effect, out: &mut Vec<Stmt>) {
        let kinds: Vec<Option<Kind>> = e
            .binds
            .iter()
            .map(|(_, a)| self.is_batched(*a).then(|| self.orig_kind(*a)))
            .collect();
        if self.masks.is_empty() && kinds.iter().all(Option::is_none) {
            out.push(Stmt::Effect(e.clone()));
            return;
        }
        for ((x, _), k) in e.binds.iter().zip(&kinds) {
            if let Some(k) = k
                && !matches!(k, Kind::Float(_) | Kind::Bool | Kind::Tensor)
            {
                self.fail(
                    x.span(),
                    format!(
                        "#[vmap]: `{}!` reads `{x}`, which differs per example and is not a float, bool or tensor; bind what it prints or checks with `let` first (`let w = &{x}.w;`)",
                        e.name
                    ),
                );
                return;
            }
        }
        let mut mask: Option<Atom> = None;
        for m in self.masks.clone() {
            mask = Some(match mask {
                Some(outer) => self.batched_prim(out, Prim::BitAnd, vec![outer, m]),
                None => m,
            });
        }
        let mut e = e.clone();
        e.examples = Some(Examples {
            batch: self.input.bsz,
            mask,
            kinds,
        });
        out.push(Stmt::Effect(e));
    }

    /// The body of a loop. Where an exit flag differs per example, each iteration runs
    /// under the mask of examples still running, and the loop ends once all have exited.
    fn loop_body(&mut self, body: &Block, exit: &[Var]) -> (Block, Vec<Var>) {
        if !exit.iter().any(|e| self.func.info(*e).batched) {
            return (self.block(body), exit.to_vec());
        }
        let mut out = Vec::new();
        // any exit flag set, per example
        let mut any = Atom::Var(exit[0]);
        for e in &exit[1..] {
            any = self.batched_prim(&mut out, Prim::BitOr, vec![any, Atom::Var(*e)]);
        }
        let live = self.batched_prim(&mut out, Prim::Not, vec![any]);
        self.select_if(live, body, &Block::default(), &mut out);
        let mut any = Atom::Var(exit[0]);
        for e in &exit[1..] {
            any = self.batched_prim(&mut out, Prim::BitOr, vec![any, Atom::Var(*e)]);
        }
        let done = self.func.new_var("all_done", Kind::Bool, false);
        out.push(Stmt::Let {
            var: done,
            rhs: Self::call(
                "all",
                vec![Arg {
                    atom: any,
                    borrow: true,
                }],
            ),
        });
        (Block { stmts: out }, vec![done])
    }

    /// The mask of the examples every per-example condition in force holds for (there
    /// must be one).
    fn mask(&mut self, out: &mut Vec<Stmt>) -> Atom {
        let mut mask = self.masks[0];
        for m in self.masks.clone().into_iter().skip(1) {
            mask = self.batched_prim(out, Prim::BitAnd, vec![mask, m]);
        }
        mask
    }

    fn batched_prim(&mut self, out: &mut Vec<Stmt>, p: Prim, args: Vec<Atom>) -> Atom {
        let v = self.func.new_var("mask", Kind::Tensor, false);
        self.func.vars[v.0 as usize].batched = true;
        out.push(Stmt::Let {
            var: v,
            rhs: Rhs::Prim(p, args),
        });
        Atom::Var(v)
    }
}

/// The kind of an unbatched right-hand side (before it is lifted), where it is not the
/// kind of the variable it defines.
fn unbatched_kind(func: &Func, rhs: &Rhs) -> Option<Kind> {
    match rhs {
        Rhs::Atom(a) => Some(func.kind(*a)),
        Rhs::Prim(p, args) => {
            let kinds: Vec<Kind> = args.iter().map(|a| func.kind(*a)).collect();
            Some(p.out_kind(&kinds))
        }
        Rhs::NewSeq(NewSeq::ZerosLike(v)) => Some(func.info(*v).kind.clone()),
        _ => None,
    }
}

/// Common subexpressions: a primitive applied again to the same arguments in the same or
/// an enclosing block reads the first result instead (a batched product computed twice is
/// a whole batch of work: `x * x` differentiated gives `ct * x` twice). Primitives are
/// pure and read only immutable variables, so the first result is still valid.
pub fn cse(func: &mut Func) {
    let mut body = std::mem::take(&mut func.body);
    cse_in(func, &mut body, &mut Vec::new());
    func.body = body;
}

type Key = (Prim, Vec<(u8, u128)>);

fn key(p: Prim, args: &[Atom]) -> Key {
    let a = args
        .iter()
        .map(|a| match a {
            Atom::Var(v) => (0, v.0 as u128),
            Atom::Float(x) => (1, x.to_bits() as u128),
            Atom::Int(i) => (2, *i),
            Atom::Bool(b) => (3, *b as u128),
        })
        .collect();
    (p, a)
}

fn cse_in(func: &Func, block: &mut Block, seen: &mut Vec<(Key, Var)>) {
    // a variable written after its `let` may no longer hold the first result
    let fixed = |a: &Atom| a.var().is_none_or(|v| !func.info(v).mutable);
    let outer = seen.len();
    for s in &mut block.stmts {
        match s {
            Stmt::Let {
                var,
                rhs: rhs @ Rhs::Prim(..),
            } => {
                let Rhs::Prim(p, args) = &*rhs else { continue };
                if func.info(*var).mutable || !args.iter().all(fixed) {
                    continue;
                }
                let k = key(*p, args);
                match seen.iter().find(|(q, _)| *q == k) {
                    Some((_, first)) => *rhs = Rhs::Atom(Atom::Var(*first)),
                    None => seen.push((k, *var)),
                }
            }
            s => {
                for b in children_mut(s) {
                    cse_in(func, b, seen);
                }
            }
        }
    }
    seen.truncate(outer);
}
