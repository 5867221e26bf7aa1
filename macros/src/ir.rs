//! The intermediate representation every transform consumes and produces.
//!
//! Structured (if / match / for / loop stay as they are in Rust) and in A-normal form:
//! every primitive is applied to [`Atom`]s (variables or literals), so every intermediate
//! value has a name. A mutable variable is only ever read through a copy
//! (`let m_3 = m;`, a fresh immutable version) and written by [`Stmt::Assign`], so every
//! value a derivative rule looks at is immutable and stays valid for the reverse sweep.
//! `break` / `continue` / `return` are lowered to boolean exit flags with the rest of the
//! block guarded, so the transforms see single-entry single-exit regions.
//!
//! The same language carries the output of the transforms: `jvp` adds tangent variables,
//! `vjp` adds adjoint accumulation ([`Stmt::AddAssign`], [`Stmt::AddStore`]), stacks
//! ([`Stmt::Push`] / [`Rhs::Pop`]) and array undo logs ([`Stmt::LogWrite`], [`Stmt::Undo`]).
//! Tensor-valued primitives and `vmap` add rows to the primitive table and kinds here,
//! not new statement forms.

use crate::primitives::Prim;
use proc_macro2::{Span, TokenStream};
use std::collections::HashMap;

/// A variable: an index into [`Func::vars`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Var(pub u32);

/// Precision of a float value, where it is known.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Prec {
    F32,
    F64,
    /// Left to rustc's inference (a bare literal).
    Infer,
}

impl Prec {
    /// The more specific of two precisions.
    pub fn join(self, other: Prec) -> Prec {
        if self == Prec::Infer { other } else { self }
    }
}

/// How a sequence of floats is held.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Seq {
    /// `&[f64]` (also `&Vec<f64>`), read only.
    Slice,
    /// `Vec<f64>`.
    Vec,
    /// `[f64; N]`.
    Array,
}

/// What a value is, as far as differentiation cares.
#[derive(Clone, PartialEq, Debug)]
pub enum Kind {
    /// `f32` / `f64`.
    Float(Prec),
    /// Any integer type (never active).
    Int,
    /// `bool` (never active).
    Bool,
    /// A slice, Vec or array of floats.
    Seq(Seq, Prec),
    /// A `Tensor` (held by value: cloning one is cheap, its storage is shared). Also the
    /// kind of a field read out of a parameter struct (`p.w1`), whose type only rustc knows:
    /// tensor code is emitted through generic helpers, so the same code serves both.
    Tensor,
    /// A parameter struct with `#[derive(Differentiable)]` (`p: &Mlp`), read through its
    /// fields; its gradient is the same struct.
    Struct,
    /// Anything else: enums, tuples, closures of pullbacks, other types (never active).
    Opaque,
}

impl Kind {
    /// Whether values of this kind can carry a derivative.
    pub fn is_differentiable(&self) -> bool {
        matches!(
            self,
            Kind::Float(_) | Kind::Seq(..) | Kind::Tensor | Kind::Struct
        )
    }
    /// Whether values of this kind are only ever replaced whole (scalars, and tensors, which
    /// are immutable values): versioned on read, saved and restored by value.
    pub fn is_scalar(&self) -> bool {
        matches!(self, Kind::Float(_) | Kind::Int | Kind::Bool | Kind::Tensor)
    }
    /// Whether values of this kind are emitted as tensor code (generic helpers, borrowed
    /// operands, clones instead of copies).
    pub fn is_tensor(&self) -> bool {
        matches!(self, Kind::Tensor | Kind::Struct)
    }
}

/// What axis 0 of a batched value runs over in a per-example Jacobian's or Hessian's pass,
/// batched over a flat batch of examples times basis elements (see `crate::nested`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    /// The whole batch (the flat batch there).
    Flat,
    /// The examples only: each row stands for its basis elements' rows of the flat batch.
    Outer,
    /// The basis elements only (the same for every example): each row stands for that
    /// basis element's row in every example.
    Inner,
}

/// Facts about one variable.
#[derive(Clone, Debug)]
pub struct VarInfo {
    /// A readable stem for the emitted name.
    pub name: String,
    pub kind: Kind,
    pub mutable: bool,
    /// Batched by `vmap`: a tensor (or a parameter struct of tensors) whose axis 0 is the
    /// batch axis. Its primitives go to the batching rules (`::ferrax::__private::b`).
    pub batched: bool,
    /// The level a batched value is batched over in a per-example Jacobian's or Hessian's
    /// pass (see `crate::nested`); [`Level::Flat`] everywhere else.
    pub level: Level,
    /// Where the user named it (a binding or parameter), for errors about it.
    pub span: Option<proc_macro2::Span>,
    /// A view `&base[lo..hi]` ([`Rhs::SubSlice`]): emitted as that expression wherever
    /// it is read.
    pub view: Option<(Var, Atom, Atom)>,
}

/// An operand: a variable or a literal.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Atom {
    Var(Var),
    Float(f64),
    Int(u128),
    Bool(bool),
}

impl Atom {
    pub fn var(self) -> Option<Var> {
        match self {
            Atom::Var(v) => Some(v),
            _ => None,
        }
    }
}

/// How a new sequence is made.
#[derive(Clone, Debug)]
pub enum NewSeq {
    /// `vec![value; len]`.
    Filled { value: Atom, len: Atom },
    /// `Vec::with_capacity(len)` (or `Vec::new()` when `None`).
    Empty { capacity: Option<Atom> },
    /// `[a, b, c]`.
    ArrayOf(Vec<Atom>),
    /// `[value; LEN]`, `LEN` a constant expression kept as written.
    ArrayRepeat { value: Atom, len: TokenStream },
    /// Zeros shaped like an existing sequence.
    ZerosLike(Var),
    /// `seq.to_vec()`: an owned copy.
    CopyOf(Var),
    /// An empty Vec with room for as many elements as an existing sequence, which
    /// [`Adapter::Fill`] loops then fill and [`Stmt::FillRest`] completes with zeros: a
    /// gradient written once instead of zeroed and then overwritten (see
    /// `simplify::fill_gathered`).
    ToFill(Var),
}

/// The right-hand side of a `let`.
#[derive(Clone, Debug)]
pub enum Rhs {
    Atom(Atom),
    /// A primitive from the table.
    Prim(Prim, Vec<Atom>),
    /// `seq[index]`.
    Index(Var, Atom),
    /// `seq.len()`.
    Len(Var),
    /// `&seq[lo..hi]`: a read-only view of part of a sequence, read through its base
    /// wherever it is used (never a borrow held across statements).
    SubSlice(Var, Atom, Atom),
    /// Sum of a sequence's elements (transpose of broadcasting a scalar into a sequence).
    Sum(Var),
    /// A cast between non-float types or from an integer to a float (`i as f64`).
    Cast(Atom, syn::Type),
    NewSeq(NewSeq),
    /// A call of a function by path. `mode` says which generated counterpart is called.
    Call {
        func: syn::ExprPath,
        args: Vec<Arg>,
        mode: CallMode,
        span: Span,
    },
    /// A call of a closure held in a variable (a callee's pullback).
    CallVar {
        func: Var,
        args: Vec<Atom>,
    },
    /// A method call on an inactive value (`n.min(m)`, `i.pow(2)`, `spec.paddings(&pads)`),
    /// kept as written.
    Method {
        recv: Atom,
        method: syn::Ident,
        args: Vec<Arg>,
        span: Span,
    },
    /// A constant path (`std::f64::consts::PI`, `Mode::Fast`, `N`).
    Path(syn::ExprPath),
    /// A literal without a derivative, kept as written (a string: an einsum's spec).
    Lit(syn::Lit),
    /// A struct literal of values without a derivative (`Gate { scale: 2.0, power: n }`),
    /// a configuration to pass on.
    Struct {
        path: syn::Path,
        fields: Vec<(syn::Member, Atom)>,
    },
    Tuple(Vec<Atom>),
    /// `tuple.0`.
    Field(Var, usize),
    /// A value read out of a parameter struct: `p.layers[i].w` (a clone of it).
    Project(Var, Vec<Proj>),
    /// The tangent of a value read out of a parameter struct: as `Project` on the
    /// struct's tangent, but zero for a `#[differentiable(skip)]` field.
    ProjectTangent(Var, Vec<Proj>),
    /// The length of a sequence inside a parameter struct: `p.layers.len()`.
    ProjectLen(Var, Vec<Proj>),
    /// `stack.pop()` (the value pushed last).
    Pop(Var),
    /// A declaration without a value (`let x;`).
    Uninit,
}

/// One step of a path into a parameter struct: `.field` or `[index]`.
#[derive(Clone, Debug)]
pub enum Proj {
    Field(syn::Member),
    Index(Atom),
}

/// The index atoms of a path.
pub fn proj_atoms(path: &[Proj]) -> Vec<Atom> {
    path.iter()
        .filter_map(|p| match p {
            Proj::Index(a) => Some(*a),
            Proj::Field(_) => None,
        })
        .collect()
}

/// An argument of a call: an atom, borrowed (`&v`) or not.
#[derive(Clone, Copy, Debug)]
pub struct Arg {
    pub atom: Atom,
    pub borrow: bool,
}

/// The first segment of a [`Rhs::Call`]'s path that makes it a method call on its first
/// argument (`METHOD::g(recv, args)` is emitted `(recv).g(args)`, counterparts included):
/// a method of a value whose type the macro does not know.
pub const METHOD: &str = "__ferrax_method";

/// Whether a call's path is a method call (see [`METHOD`]): the method's name then.
pub fn method_call(func: &syn::ExprPath) -> Option<&syn::Ident> {
    let s = &func.path.segments;
    (func.qself.is_none() && s.len() == 2 && s[0].ident == METHOD).then(|| &s[1].ident)
}

/// Which function a [`Rhs::Call`] calls.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum CallMode {
    /// `g(args)`.
    Primal,
    /// `g_jvp(args, tangents)`: returns `(value, tangent)`.
    Jvp,
    /// `g_vjp(args)`: returns `(value, pullback)`.
    Vjp,
    /// `(g_vjp(args).1)(cotangent)`: the gradients at once, borrowing the arguments only briefly.
    VjpApply(Atom),
    /// `g_jvp(args, tangents).1`: the tangent alone, beside a primal call for the value (what
    /// `vmap` batches over tangents only: the first `primals` arguments are the primal ones).
    JvpTangent { primals: usize },
    /// `g_ctjvp(args, ct, tangents, ct_tangent)`: the tangent of `(g_vjp(args).1)(ct)`, forward
    /// mode over the callee's reverse mode (a Hessian through a call). The first `primals`
    /// arguments are the primal ones, then the cotangent, then one tangent per differentiable
    /// argument and the cotangent's tangent.
    VjpApplyTangent { primals: usize },
}

/// One `match` arm: its pattern (bindings renamed to their variables) and body.
#[derive(Clone, Debug)]
pub struct Arm {
    pub pat: syn::Pat,
    pub binds: Vec<Var>,
    pub body: Block,
}

/// An iterator adapter on a range.
#[derive(Clone, Debug)]
pub enum Adapter {
    Rev,
    StepBy(Atom),
    /// Not a Rust adapter: the iterations are independent, each writes only element `index`
    /// of the sequences it stores into and reads none of them, and every variable it touches
    /// is a number or a sequence of numbers. The emitter may then split the range over
    /// threads (`__private::split_for`). Set only by the gather pass, on its main loop.
    Split,
    /// Not a Rust adapter: each iteration ends by storing one value at `index` into each of
    /// these sequences being filled ([`NewSeq::ToFill`]; with the sequence each is as long
    /// as), and writes nothing else outside itself. The emitter hands the loop to
    /// `__private::fill_for` (or `fill_seq`), which writes the values. Set only by
    /// `simplify::fill_gathered`, on IR about to be emitted.
    Fill(Vec<(Var, Var)>),
}

/// `lo..hi` or `lo..=hi`, with `.rev()` / `.step_by(s)` adapters in order.
#[derive(Clone, Debug)]
pub struct Range {
    pub lo: Atom,
    pub hi: Atom,
    pub inclusive: bool,
    pub adapters: Vec<Adapter>,
}

impl Range {
    /// Whether reversing this range is just toggling `.rev()` (no `step_by`).
    pub fn is_simple(&self) -> bool {
        self.adapters.iter().all(|a| matches!(a, Adapter::Rev))
    }
    /// Whether the emitter may split this loop over threads ([`Adapter::Split`]).
    pub fn is_split(&self) -> bool {
        self.adapters.iter().any(|a| matches!(a, Adapter::Split))
    }
    /// The sequences an [`Adapter::Fill`] loop fills, each with the sequence it is as long as.
    pub fn fills(&self) -> Option<Vec<(Var, Var)>> {
        self.adapters.iter().find_map(|a| match a {
            Adapter::Fill(f) => Some(f.clone()),
            _ => None,
        })
    }
    pub fn atoms(&self) -> Vec<Atom> {
        let mut v = vec![self.lo, self.hi];
        for a in &self.adapters {
            if let Adapter::StepBy(s) = a {
                v.push(*s);
            }
        }
        v
    }
}

/// A statement.
#[derive(Clone, Debug)]
pub enum Stmt {
    /// `let [mut] var = rhs;`
    Let {
        var: Var,
        rhs: Rhs,
    },
    /// `var = value;` (var mutable).
    Assign {
        var: Var,
        value: Atom,
    },
    /// `var += value;`
    AddAssign {
        var: Var,
        value: Atom,
    },
    /// `array[index] = value;`
    Store {
        array: Var,
        index: Atom,
        value: Atom,
    },
    /// `array[index] += value;`
    AddStore {
        array: Var,
        index: Atom,
        value: Atom,
    },
    /// `target.path += value` (adjoint accumulation into a field of a struct's adjoint).
    AddProject {
        target: Var,
        path: Vec<Proj>,
        value: Atom,
    },
    /// `target[offset + k] += value[k]` for every k of `value` (offset 0 when `None`).
    AddSeq {
        target: Var,
        value: Var,
        offset: Option<Atom>,
    },
    /// `array.push(value);` (user Vecs and the transforms' stacks).
    Push {
        array: Var,
        value: Atom,
    },
    If {
        cond: Atom,
        then: Block,
        els: Block,
    },
    Match {
        scrut: Atom,
        arms: Vec<Arm>,
    },
    /// `for index in range { body }`, leaving early once any `exit` flag is set after an iteration.
    For {
        index: Var,
        range: Range,
        body: Block,
        exit: Vec<Var>,
    },
    /// `loop { body }`, leaving once any `exit` flag is set after an iteration.
    Loop {
        body: Block,
        exit: Vec<Var>,
    },
    /// Before `array[index] = ..` (or a push when `index` is `None`): log what it overwrites.
    LogWrite {
        log: Var,
        array: Var,
        index: Option<Atom>,
    },
    /// Undo logged writes to `array`: one (`mark` is `None`) or back to `log.len() == mark`.
    Undo {
        log: Var,
        array: Var,
        mark: Option<Atom>,
    },
    /// A macro run for its effect (`println!`, `assert!`, `panic!`, ..): part of the primal
    /// computation, never differentiated.
    Effect(Effect),
    /// Completes a sequence being filled ([`NewSeq::ToFill`]) to the length of `like` with
    /// zeros where no [`Adapter::Fill`] loop wrote.
    FillRest {
        array: Var,
        like: Var,
    },
}

/// A macro the user wrote for its effect, kept as written. Its tokens read the user's
/// names; each is bound to the value it has there (`let x = x_3;`) before the macro runs.
#[derive(Clone, Debug)]
pub struct Effect {
    /// The macro call, as written (`println!("{x:.3}")`).
    pub tokens: TokenStream,
    /// The user's names the tokens may read, each with the value it has at the macro.
    pub binds: Vec<(syn::Ident, Atom)>,
    /// Set by `vmap` where the macro reads per-example values or runs under a per-example
    /// condition: it then runs once per example, as a loop of the unbatched function would.
    pub examples: Option<Examples>,
    /// The macro's name (`assert_eq`), for messages.
    pub name: String,
}

impl Effect {
    /// What running it reads.
    pub fn reads(&self) -> Vec<Atom> {
        let mut out: Vec<Atom> = self.binds.iter().map(|(_, a)| *a).collect();
        if let Some(ex) = &self.examples {
            out.push(Atom::Var(ex.batch));
            out.extend(ex.mask);
        }
        out
    }
}

/// How a batched [`Effect`] runs once per example.
#[derive(Clone, Debug)]
pub struct Examples {
    /// The batch size.
    pub batch: Var,
    /// Runs only for the examples where this batched mask is set (the per-example
    /// conditions it is under).
    pub mask: Option<Atom>,
    /// For each bind: the kind its value had before batching, where it is batched (read
    /// at each example as that kind).
    pub kinds: Vec<Option<Kind>>,
}

/// Whether a block holds an [`Effect`], at any depth.
pub fn has_effect(block: &Block) -> bool {
    let mut found = false;
    walk(block, &mut |s| found |= matches!(s, Stmt::Effect(_)));
    found
}

/// A sequence of statements.
#[derive(Clone, Debug, Default)]
pub struct Block {
    pub stmts: Vec<Stmt>,
}

/// A parameter of a transformed function.
#[derive(Clone, Debug)]
pub struct Param {
    pub var: Var,
    pub ident: syn::Ident,
    pub ty: syn::Type,
    /// Differentiated with respect to (a float kind named by `wrt`, or every float by default).
    pub active: bool,
}

/// A function in the IR.
#[derive(Clone, Debug)]
pub struct Func {
    pub vars: Vec<VarInfo>,
    pub params: Vec<Param>,
    pub body: Block,
    /// The value the function returns.
    pub output: Atom,
}

impl Func {
    /// A fresh variable.
    pub fn new_var(&mut self, name: &str, kind: Kind, mutable: bool) -> Var {
        self.vars.push(VarInfo {
            name: name.to_string(),
            kind,
            mutable,
            batched: false,
            level: Level::Flat,
            span: None,
            view: None,
        });
        Var(self.vars.len() as u32 - 1)
    }
    pub fn info(&self, v: Var) -> &VarInfo {
        &self.vars[v.0 as usize]
    }
    /// Whether an atom is a batched value (see [`VarInfo::batched`]).
    pub fn batched(&self, a: Atom) -> bool {
        matches!(a, Atom::Var(v) if self.info(v).batched)
    }
    /// The kind of an atom.
    pub fn kind(&self, a: Atom) -> Kind {
        match a {
            Atom::Var(v) => self.info(v).kind.clone(),
            Atom::Float(_) => Kind::Float(Prec::Infer),
            Atom::Int(_) => Kind::Int,
            Atom::Bool(_) => Kind::Bool,
        }
    }
}

/// Calls `f` on every statement of `block`, nested ones included, outermost first.
pub fn walk<'a>(block: &'a Block, f: &mut dyn FnMut(&'a Stmt)) {
    for s in &block.stmts {
        f(s);
        for b in children(s) {
            walk(b, f);
        }
    }
}

/// The blocks directly inside a statement.
pub fn children(s: &Stmt) -> Vec<&Block> {
    match s {
        Stmt::If { then, els, .. } => vec![then, els],
        Stmt::Match { arms, .. } => arms.iter().map(|a| &a.body).collect(),
        Stmt::For { body, .. } | Stmt::Loop { body, .. } => vec![body],
        _ => vec![],
    }
}

/// The blocks directly inside a statement, to rewrite.
pub fn children_mut(s: &mut Stmt) -> Vec<&mut Block> {
    match s {
        Stmt::If { then, els, .. } => vec![then, els],
        Stmt::Match { arms, .. } => arms.iter_mut().map(|a| &mut a.body).collect(),
        Stmt::For { body, .. } | Stmt::Loop { body, .. } => vec![body],
        _ => vec![],
    }
}

/// Whether a call is to a helper of the runtime module `module` of generated code
/// (`::ferrax::__private::t::*`: tensor helpers; `b`: batching rules).
pub fn runtime_helper(func: &syn::ExprPath, module: &str) -> bool {
    let segs = segments(func);
    segs.len() >= 3 && segs[segs.len() - 2] == module && segs[segs.len() - 3] == "__private"
}

/// The names along a path (`["ferrax", "__private", "int_field"]`).
pub fn segments(func: &syn::ExprPath) -> Vec<String> {
    func.path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect()
}

/// Atoms a right-hand side reads (variables of sequences included).
pub fn rhs_uses(rhs: &Rhs) -> Vec<Atom> {
    match rhs {
        Rhs::Atom(a) => vec![*a],
        Rhs::Prim(_, args) | Rhs::Tuple(args) => args.clone(),
        Rhs::Index(v, i) => vec![Atom::Var(*v), *i],
        Rhs::SubSlice(v, lo, hi) => vec![Atom::Var(*v), *lo, *hi],
        Rhs::Len(v) | Rhs::Sum(v) | Rhs::Field(v, _) | Rhs::Pop(v) => vec![Atom::Var(*v)],
        Rhs::Cast(a, _) => vec![*a],
        Rhs::NewSeq(n) => match n {
            NewSeq::Filled { value, len } => vec![*value, *len],
            NewSeq::Empty { capacity } => capacity.iter().copied().collect(),
            NewSeq::ArrayOf(items) => items.clone(),
            NewSeq::ArrayRepeat { value, .. } => vec![*value],
            NewSeq::ZerosLike(v) | NewSeq::CopyOf(v) | NewSeq::ToFill(v) => vec![Atom::Var(*v)],
        },
        Rhs::Call { args, mode, .. } => {
            let mut v: Vec<Atom> = args.iter().map(|a| a.atom).collect();
            if let CallMode::VjpApply(ct) = mode {
                v.push(*ct);
            }
            v
        }
        Rhs::CallVar { func, args } => {
            let mut v = vec![Atom::Var(*func)];
            v.extend(args.iter().copied());
            v
        }
        Rhs::Method { recv, args, .. } => {
            let mut v = vec![*recv];
            v.extend(args.iter().map(|a| a.atom));
            v
        }
        Rhs::Struct { fields, .. } => fields.iter().map(|(_, a)| *a).collect(),
        Rhs::Project(v, path) | Rhs::ProjectTangent(v, path) | Rhs::ProjectLen(v, path) => {
            let mut out = vec![Atom::Var(*v)];
            out.extend(proj_atoms(path));
            out
        }
        Rhs::Path(_) | Rhs::Lit(_) | Rhs::Uninit => vec![],
    }
}

/// Variables assigned (not declared) anywhere inside `block`, arrays written included.
pub fn assigned_vars(block: &Block) -> Vec<Var> {
    let mut out = Vec::new();
    walk(block, &mut |s| match s {
        Stmt::Assign { var, .. } | Stmt::AddAssign { var, .. } => out.push(*var),
        Stmt::Store { array, .. }
        | Stmt::AddStore { array, .. }
        | Stmt::Push { array, .. }
        | Stmt::AddSeq { target: array, .. }
        | Stmt::AddProject { target: array, .. }
        | Stmt::Undo { array, .. }
        | Stmt::FillRest { array, .. } => out.push(*array),
        _ => {}
    });
    out.sort();
    out.dedup();
    out
}

/// Variables declared anywhere inside `block` (lets, loop indices, match bindings).
pub fn declared_vars(block: &Block) -> Vec<Var> {
    let mut out = Vec::new();
    walk(block, &mut |s| match s {
        Stmt::Let { var, .. } => out.push(*var),
        Stmt::For { index, .. } => out.push(*index),
        Stmt::Match { arms, .. } => {
            for a in arms {
                out.extend(a.binds.iter().copied());
            }
        }
        _ => {}
    });
    out.sort();
    out.dedup();
    out
}

/// Variables read anywhere inside `block`.
pub fn read_vars(block: &Block) -> Vec<Var> {
    let mut out = Vec::new();
    let mut add = |a: &Atom| {
        if let Atom::Var(v) = a {
            out.push(*v)
        }
    };
    walk(block, &mut |s| match s {
        Stmt::Let { rhs, .. } => rhs_uses(rhs).iter().for_each(&mut add),
        Stmt::Assign { value, .. } => add(value),
        Stmt::AddAssign { var, value } => {
            add(&Atom::Var(*var));
            add(value)
        }
        Stmt::Store { index, value, .. } => {
            add(index);
            add(value)
        }
        Stmt::AddStore {
            array,
            index,
            value,
        } => {
            add(&Atom::Var(*array));
            add(index);
            add(value)
        }
        Stmt::AddSeq {
            target,
            value,
            offset,
        } => {
            add(&Atom::Var(*target));
            add(&Atom::Var(*value));
            if let Some(o) = offset {
                add(o)
            }
        }
        Stmt::AddProject {
            target,
            path,
            value,
        } => {
            add(&Atom::Var(*target));
            proj_atoms(path).iter().for_each(&mut add);
            add(value)
        }
        Stmt::Push { value, .. } => add(value),
        Stmt::If { cond, .. } => add(cond),
        Stmt::Match { scrut, .. } => add(scrut),
        Stmt::For { range, exit, .. } => {
            range.atoms().iter().for_each(&mut add);
            exit.iter().for_each(|v| add(&Atom::Var(*v)));
        }
        Stmt::Loop { exit, .. } => exit.iter().for_each(|v| add(&Atom::Var(*v))),
        Stmt::LogWrite { log, array, index } => {
            add(&Atom::Var(*log));
            add(&Atom::Var(*array));
            if let Some(i) = index {
                add(i)
            }
        }
        Stmt::Undo { log, array, mark } => {
            add(&Atom::Var(*log));
            add(&Atom::Var(*array));
            if let Some(m) = mark {
                add(m)
            }
        }
        Stmt::Effect(e) => e.reads().iter().for_each(&mut add),
        Stmt::FillRest { like, .. } => add(&Atom::Var(*like)),
    });
    out.sort();
    out.dedup();
    out
}

/// A copy of `stmts` whose every binding (`let`s and loop indices, nested blocks included;
/// not `match` bindings, which name their variable in the pattern) is a fresh variable,
/// read as such: for a block emitted twice (a loop's first iteration peeled), so that each
/// variable has one definition and its reads are counted per copy.
pub fn fresh_copy(func: &mut Func, stmts: &[Stmt]) -> Vec<Stmt> {
    let mut block = Block {
        stmts: stmts.to_vec(),
    };
    let mut bound = Vec::new();
    walk(&block, &mut |s| {
        if let Stmt::Let { var, .. } | Stmt::For { index: var, .. } = s {
            bound.push(*var);
        }
    });
    bound.sort();
    bound.dedup();
    let map: HashMap<Var, Var> = bound
        .into_iter()
        .map(|old| {
            func.vars.push(func.info(old).clone());
            (old, Var(func.vars.len() as u32 - 1))
        })
        .collect();
    let to = |v: Var| map.get(&v).copied().unwrap_or(v);
    for new in map.values() {
        if let Some((base, lo, hi)) = &mut func.vars[new.0 as usize].view {
            *base = to(*base);
            for a in [lo, hi] {
                rename_atom(a, &to);
            }
        }
    }
    rename_block(&mut block, &to);
    block.stmts
}

fn rename_atom(a: &mut Atom, to: &dyn Fn(Var) -> Var) {
    if let Atom::Var(v) = a {
        *v = to(*v);
    }
}

fn rename_block(b: &mut Block, to: &dyn Fn(Var) -> Var) {
    for s in &mut b.stmts {
        rename_stmt(s, to);
    }
}

/// Every variable `s` binds, writes or reads (blocks inside it included) renamed by `to`.
fn rename_stmt(s: &mut Stmt, to: &dyn Fn(Var) -> Var) {
    let v = |x: &mut Var| *x = to(*x);
    let a = |x: &mut Atom| rename_atom(x, to);
    match s {
        Stmt::Let { var, rhs } => {
            v(var);
            rename_rhs(rhs, to);
        }
        Stmt::Assign { var, value } | Stmt::AddAssign { var, value } => {
            v(var);
            a(value);
        }
        Stmt::Store {
            array,
            index,
            value,
        }
        | Stmt::AddStore {
            array,
            index,
            value,
        } => {
            v(array);
            a(index);
            a(value);
        }
        Stmt::AddProject {
            target,
            path,
            value,
        } => {
            v(target);
            rename_path(path, to);
            a(value);
        }
        Stmt::AddSeq {
            target,
            value,
            offset,
        } => {
            v(target);
            v(value);
            offset.iter_mut().for_each(a);
        }
        Stmt::Push { array, value } => {
            v(array);
            a(value);
        }
        Stmt::If { cond, then, els } => {
            a(cond);
            rename_block(then, to);
            rename_block(els, to);
        }
        Stmt::Match { scrut, arms } => {
            a(scrut);
            for arm in arms {
                rename_block(&mut arm.body, to);
            }
        }
        Stmt::For {
            index,
            range,
            body,
            exit,
        } => {
            v(index);
            a(&mut range.lo);
            a(&mut range.hi);
            for ad in &mut range.adapters {
                match ad {
                    Adapter::StepBy(s) => a(s),
                    Adapter::Fill(pairs) => {
                        for (x, y) in pairs {
                            v(x);
                            v(y);
                        }
                    }
                    Adapter::Rev | Adapter::Split => {}
                }
            }
            exit.iter_mut().for_each(v);
            rename_block(body, to);
        }
        Stmt::Loop { body, exit } => {
            exit.iter_mut().for_each(v);
            rename_block(body, to);
        }
        Stmt::LogWrite { log, array, index } => {
            v(log);
            v(array);
            index.iter_mut().for_each(a);
        }
        Stmt::Undo { log, array, mark } => {
            v(log);
            v(array);
            mark.iter_mut().for_each(a);
        }
        Stmt::Effect(e) => {
            e.binds.iter_mut().for_each(|(_, x)| a(x));
            if let Some(ex) = &mut e.examples {
                v(&mut ex.batch);
                ex.mask.iter_mut().for_each(a);
            }
        }
        Stmt::FillRest { array, like } => {
            v(array);
            v(like);
        }
    }
}

fn rename_path(path: &mut [Proj], to: &dyn Fn(Var) -> Var) {
    for p in path {
        if let Proj::Index(x) = p {
            rename_atom(x, to);
        }
    }
}

fn rename_rhs(rhs: &mut Rhs, to: &dyn Fn(Var) -> Var) {
    let v = |x: &mut Var| *x = to(*x);
    let a = |x: &mut Atom| rename_atom(x, to);
    match rhs {
        Rhs::Atom(x) | Rhs::Cast(x, _) => a(x),
        Rhs::Prim(_, args) | Rhs::Tuple(args) => args.iter_mut().for_each(a),
        Rhs::Index(s, i) => {
            v(s);
            a(i);
        }
        Rhs::SubSlice(s, lo, hi) => {
            v(s);
            a(lo);
            a(hi);
        }
        Rhs::Len(s) | Rhs::Sum(s) | Rhs::Field(s, _) | Rhs::Pop(s) => v(s),
        Rhs::NewSeq(n) => match n {
            NewSeq::Filled { value, len } => {
                a(value);
                a(len);
            }
            NewSeq::Empty { capacity } => capacity.iter_mut().for_each(a),
            NewSeq::ArrayOf(items) => items.iter_mut().for_each(a),
            NewSeq::ArrayRepeat { value, .. } => a(value),
            NewSeq::ZerosLike(s) | NewSeq::CopyOf(s) | NewSeq::ToFill(s) => v(s),
        },
        Rhs::Call { args, mode, .. } => {
            args.iter_mut().for_each(|x| a(&mut x.atom));
            if let CallMode::VjpApply(ct) = mode {
                a(ct);
            }
        }
        Rhs::CallVar { func, args } => {
            v(func);
            args.iter_mut().for_each(a);
        }
        Rhs::Method { recv, args, .. } => {
            a(recv);
            args.iter_mut().for_each(|x| a(&mut x.atom));
        }
        Rhs::Struct { fields, .. } => fields.iter_mut().for_each(|(_, x)| a(x)),
        Rhs::Project(s, path) | Rhs::ProjectTangent(s, path) | Rhs::ProjectLen(s, path) => {
            v(s);
            rename_path(path, to);
        }
        Rhs::Path(_) | Rhs::Lit(_) | Rhs::Uninit => {}
    }
}
