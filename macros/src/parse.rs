//! syn's tree -> the IR (see `ir.rs`), or errors at the offending spans.
//!
//! Lowering puts every expression in A-normal form, reads mutable scalars through fresh
//! copies (versions), turns `&&`/`||` into branches, iterators over sequences into index
//! loops, and `break` / `continue` / `return` into exit flags with the rest of each block
//! guarded. Anything outside the accepted language is reported to the [`Ctxt`] with a
//! message saying what is supported, and lowering carries on so that every error is found.

use crate::attr::GradAttr;
use crate::ctxt::Ctxt;
use crate::ir::*;
use crate::primitives::Prim;
use proc_macro2::Span;
use quote::ToTokens;
use std::collections::{HashMap, HashSet};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{BinOp, Expr, Pat, Type, UnOp};

/// What a transformed function looks like from outside.
pub struct Signature {
    pub ret_ty: Type,
}

/// Lowers a function. Errors go to `cx`; the IR returned is only meaningful if there were none.
///
/// A `Vec::new()` read by index before its first push (`h = f(&outs[t - 1]); outs.push(h)`)
/// is taken for a Vec of floats until a tensor is pushed onto it; the function is then
/// lowered again with that Vec known to hold tensors from its start.
pub fn lower(cx: &Ctxt, item: &syn::ItemFn, attr: &GradAttr) -> (Func, Signature) {
    let mark = cx.mark();
    let (func, sig, retry) = lower_with(cx, item, attr, HashSet::new());
    if retry.is_empty() {
        return (func, sig);
    }
    cx.forget_since(mark);
    let (func, sig, _) = lower_with(cx, item, attr, retry);
    (func, sig)
}

/// [`lower`], with the keys (`Lowerer::vec_keys`) of the Vecs known to hold tensors; also
/// returns the keys of those found to hold tensors only after being read.
fn lower_with(
    cx: &Ctxt,
    item: &syn::ItemFn,
    attr: &GradAttr,
    tensor_vecs: HashSet<String>,
) -> (Func, Signature, HashSet<String>) {
    let mut l = Lowerer {
        cx,
        func: Func {
            vars: Vec::new(),
            params: Vec::new(),
            body: Block::default(),
            output: Atom::Float(0.0),
        },
        scopes: vec![HashMap::new()],
        blocks: vec![Vec::new()],
        loops: Vec::new(),
        exits: Vec::new(),
        ret_flag: Var(0),
        ret_val: Var(0),
        used_return: false,
        want_float: None,
        seq_ret: false,
        scalar_fields: false,
        tensor_seqs: HashSet::new(),
        tensor_vecs,
        read_before_push: HashSet::new(),
        vec_keys: HashMap::new(),
    };
    let sig = &item.sig;
    if let Some(a) = &sig.asyncness {
        cx.error(
            a,
            "#[grad] does not support `async fn`: write a synchronous function",
        );
    }
    if let Some(u) = &sig.unsafety {
        cx.error(u, "#[grad] does not support `unsafe fn`");
    }
    if let Some(v) = &sig.variadic {
        cx.error(v, "#[grad] does not support variadic functions");
    }
    let ret_ty = match &sig.output {
        syn::ReturnType::Type(_, ty) => (**ty).clone(),
        syn::ReturnType::Default => {
            cx.error(&sig.ident, "a #[grad] function must return `f32` or `f64`");
            syn::parse_quote!(f64)
        }
    };
    let ret_kind = match type_kind(&ret_ty) {
        Ok(Kind::Float(p)) => Kind::Float(p),
        Ok(Kind::Tensor) => Kind::Tensor,
        Ok(Kind::Seq(s, p)) if attr.seq_output => Kind::Seq(s, p),
        // A generic return type is reported once, as a generic parameter.
        _ if sig.generics.type_params().next().is_some() => Kind::Float(Prec::F64),
        _ => {
            cx.error(
                &ret_ty,
                "a #[grad] function must return a scalar `f32` or `f64`, or a `Tensor` (a function of a slice returning a `Vec` has `#[jacobian]`)",
            );
            Kind::Float(Prec::F64)
        }
    };
    l.lower_params(sig, attr);
    l.scalar_fields = ret_kind != Kind::Tensor
        && !l
            .func
            .params
            .iter()
            .any(|p| type_kind(&p.ty) == Ok(Kind::Tensor))
        && !calls_item(&item.block);
    l.ret_flag = l.func.new_var("returned", Kind::Bool, true);
    let tensor_ret = ret_kind == Kind::Tensor;
    let seq_ret = matches!(ret_kind, Kind::Seq(..));
    l.seq_ret = seq_ret;
    l.ret_val = l.func.new_var("ret", ret_kind.clone(), true);
    l.emit(Stmt::Let {
        var: l.ret_flag,
        rhs: Rhs::Atom(Atom::Bool(false)),
    });
    let ret_init = if tensor_ret {
        // a value to overwrite: `return` assigns the real one
        tensor_placeholder()
    } else if seq_ret {
        Rhs::NewSeq(NewSeq::Empty { capacity: None })
    } else {
        Rhs::Atom(Atom::Float(0.0))
    };
    l.emit(Stmt::Let {
        var: l.ret_val,
        rhs: ret_init,
    });
    // (`k * s` with `k` read out of a struct, in a function returning a float: a float)
    if let Kind::Float(p) = ret_kind {
        l.want_float = Some(p);
    }
    let tail = l.lower_stmts(&item.block.stmts);
    let output = if l.used_return {
        if let Some(t) = tail {
            l.emit(Stmt::If {
                cond: Atom::Var(l.ret_flag),
                then: Block::default(),
                els: Block {
                    stmts: vec![Stmt::Assign {
                        var: l.ret_val,
                        value: t,
                    }],
                },
            });
        }
        l.copy(l.ret_val)
    } else {
        match tail {
            Some(t) => t,
            None => {
                cx.error(
                    &item.block,
                    "a #[grad] function must end with the value it returns (or `return` it)",
                );
                Atom::Float(0.0)
            }
        }
    };
    l.func.output = output;
    l.func.body = Block {
        stmts: l.blocks.pop().unwrap_or_default(),
    };
    (l.func, Signature { ret_ty }, l.read_before_push)
}

/// Whether `name` is a method the macro knows itself: a float's or a tensor's (primitive
/// or query), or one on sequences.
fn known_method(name: &str) -> bool {
    Prim::from_method(name).is_some()
        || Prim::tensor_method_names()
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == name)
        || matches!(name, "clone" | "contiguous" | "len" | "to_vec" | "push")
}

/// Whether `block` calls `.item()`: the way back from tensors to the float a function
/// returns, where it takes none (`fn l2(p: &Mlp) -> f32 { (&p.w * &p.w).sum().item() }`).
fn calls_item(block: &syn::Block) -> bool {
    struct Find(bool);
    impl<'a> syn::visit::Visit<'a> for Find {
        fn visit_expr_method_call(&mut self, m: &'a syn::ExprMethodCall) {
            self.0 |= m.method == "item";
            syn::visit::visit_expr_method_call(self, m);
        }
    }
    let mut f = Find(false);
    syn::visit::Visit::visit_block(&mut f, block);
    f.0
}

/// Whether `.name(..)` with `nargs` arguments is a method of tensors and not of floats.
pub fn tensor_only(name: &str, nargs: usize) -> bool {
    let float =
        Prim::from_method(name).is_some_and(|p| crate::primitives::row(p).arity == nargs + 1);
    let query = matches!(
        name,
        "item"
            | "numel"
            | "ndim"
            | "shape"
            | "dims"
            | "dtype"
            | "device"
            | "strides"
            | "argmax_axis"
            | "argmin_axis"
            | "cumargmax"
            | "cumargmin"
            | "argsort"
            | "top_k_indices"
            | "one_hot"
            | "zeros_like"
            | "ones_like"
            | "full_like"
            | "scalar_like"
    );
    !float
        && (query
            || ACTIVATIONS.contains(&(name, nargs))
            || COMPOSITES.contains(&(name, nargs))
            || Prim::from_tensor_method(name, nargs).is_some())
}

/// Tensor methods lowered to other primitives (see `Parser::lower_composite`), with
/// their numbers of arguments.
pub const COMPOSITES: &[(&str, usize)] = &[
    ("cumprod", 1),
    ("cumprod_rev", 1),
    ("prod_axis", 2),
    ("prod", 0),
    ("trace", 0),
    ("outer", 1),
    ("lstsq", 1),
    ("cummax", 1),
    ("cummin", 1),
    ("logcumsumexp", 1),
    ("logcumsumexp_rev", 1),
    ("logsumexp", 0),
    ("segment_max", 2),
    ("segment_min", 2),
];

/// The activation functions lowered to elementwise primitives (see
/// `Parser::lower_activation`), with their numbers of arguments.
pub const ACTIVATIONS: &[(&str, usize)] = &[
    ("square", 0),
    ("log_sigmoid", 0),
    ("silu", 0),
    ("gelu", 0),
    ("gelu_tanh", 0),
    ("elu", 1),
    ("selu", 0),
    ("leaky_relu", 1),
    ("softsign", 0),
    ("mish", 0),
    ("relu6", 0),
    ("hard_sigmoid", 0),
    ("hard_silu", 0),
    ("hard_tanh", 0),
];

/// The kind of a declared type, or why it is not supported.
pub fn type_kind(ty: &Type) -> Result<Kind, String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return Ok(Kind::Opaque);
            };
            let name = last.ident.to_string();
            Ok(match name.as_str() {
                "f32" => Kind::Float(Prec::F32),
                "f64" => Kind::Float(Prec::F64),
                "bool" => Kind::Bool,
                "usize" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128" | "i8" | "i16"
                | "i32" | "i64" | "i128" => Kind::Int,
                "Vec" => match generic_float(last) {
                    Some(p) => Kind::Seq(Seq::Vec, p),
                    None if generic_tensor(last) => Kind::Struct,
                    None => Kind::Opaque,
                },
                "Tensor" => Kind::Tensor,
                _ => Kind::Opaque,
            })
        }
        Type::Reference(r) => {
            let inner = match &*r.elem {
                Type::Slice(s) => match type_kind(&s.elem)? {
                    Kind::Float(p) => Kind::Seq(Seq::Slice, p),
                    Kind::Tensor => Kind::Struct,
                    _ => Kind::Opaque,
                },
                other => match type_kind(other)? {
                    Kind::Seq(_, p) => Kind::Seq(Seq::Slice, p),
                    Kind::Opaque if is_user_struct(other) => Kind::Struct,
                    k => k,
                },
            };
            if r.mutability.is_some() && inner.is_differentiable() {
                return Err("#[grad] does not support `&mut` float parameters: take the value (or `&[f64]`) and return the result".into());
            }
            if let Kind::Float(_) = inner {
                return Err("#[grad] does not support references to a float (`&f64`): take the `f64` by value".into());
            }
            Ok(if r.mutability.is_some() {
                Kind::Opaque
            } else {
                inner
            })
        }
        Type::Array(a) => Ok(match type_kind(&a.elem)? {
            Kind::Float(p) => Kind::Seq(Seq::Array, p),
            Kind::Tensor => Kind::Struct,
            _ => Kind::Opaque,
        }),
        Type::Ptr(_) => {
            Err("#[grad] does not support raw pointers: use references, slices or values".into())
        }
        Type::Paren(p) => type_kind(&p.elem),
        Type::ImplTrait(_) => Err(
            "#[grad] does not support `impl Trait` parameters: name the type (`f64`, `&[f64]`, ..)"
                .into(),
        ),
        _ => Ok(Kind::Opaque),
    }
}

/// A tensor for a variable to hold until it is assigned (a branch's result, a `return`ed
/// value): Rust must see it initialised on every path.
fn tensor_placeholder() -> Rhs {
    Rhs::Call {
        func: syn::parse_quote!(::ferrax::__private::t::placeholder),
        args: vec![],
        mode: CallMode::Primal,
        span: Span::call_site(),
    }
}

/// `e` without the `&` (and parentheses) around it.
fn strip_ref(e: &Expr) -> &Expr {
    match e {
        Expr::Reference(r) => strip_ref(&r.expr),
        Expr::Paren(p) => strip_ref(&p.expr),
        e => e,
    }
}

/// A named type of the user's (`Mlp`, `model::Params`): not a std type, no generic
/// arguments, capitalised. Behind `&` it is taken to be a `#[derive(Differentiable)]` struct.
fn is_user_struct(ty: &Type) -> bool {
    let Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    let name = last.ident.to_string();
    const STD: &[&str] = &[
        "String", "Vec", "Option", "Result", "Box", "Rc", "Arc", "HashMap", "BTreeMap", "HashSet",
        "BTreeSet", "VecDeque", "Path", "PathBuf", "Key", "Device", "DType",
    ];
    p.qself.is_none()
        && matches!(last.arguments, syn::PathArguments::None)
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && !STD.contains(&name.as_str())
}

fn generic_float(seg: &syn::PathSegment) -> Option<Prec> {
    if let syn::PathArguments::AngleBracketed(a) = &seg.arguments
        && let Some(syn::GenericArgument::Type(t)) = a.args.first()
        && let Ok(Kind::Float(p)) = type_kind(t)
    {
        return Some(p);
    }
    None
}

/// Whether `ty` is a sequence of tensors: `Vec<Tensor>`, `[Tensor; N]`, or a reference to
/// one of them or to `[Tensor]`.
pub fn is_tensor_seq(ty: &Type) -> bool {
    let inner = match ty {
        Type::Reference(r) => &*r.elem,
        t => t,
    };
    matches!(inner, Type::Slice(_) | Type::Array(_) | Type::Path(_))
        && type_kind(ty) == Ok(Kind::Struct)
        && !is_user_struct(inner)
}

/// Whether a path segment's first generic argument is `Tensor` (`Vec<Tensor>`).
fn generic_tensor(seg: &syn::PathSegment) -> bool {
    matches!(&seg.arguments, syn::PathArguments::AngleBracketed(a)
        if matches!(a.args.first(), Some(syn::GenericArgument::Type(t)) if type_kind(t) == Ok(Kind::Tensor)))
}

/// What a name stands for: a variable, a path into a parameter struct
/// (`let layer = &p.layers[i];`, `for layer in &p.layers`), read where it is used, or a
/// closure (`let f = |v| ..;`), lowered where it is called, in the names of its definition.
#[derive(Clone)]
enum Bind {
    Var(Var),
    Place(Var, Vec<Proj>),
    Closure(Box<syn::ExprClosure>, Vec<HashMap<String, Bind>>),
}

/// A closure to lower in place: one written where it is used (`.map(|v| ..)`), or one
/// bound by `let` with the names in scope at its definition.
struct Lambda {
    closure: Box<syn::ExprClosure>,
    defined: Option<Vec<HashMap<String, Bind>>>,
}

/// What each loop iteration binds: the index, an element of a float sequence, or an
/// element of a sequence inside a parameter struct.
enum LoopBind {
    Index,
    Seq(Var),
    Place(Var, Vec<Proj>),
    /// `seq.windows(size)`, `.chunks(size)`, `.chunks_exact(size)`: a view per iteration.
    Parts(Var, Atom, Parts),
}

/// How a sequence is cut into views.
#[derive(Clone, Copy, PartialEq)]
enum Parts {
    Windows,
    Chunks,
    ChunksExact,
}

struct LoopCtx {
    label: Option<String>,
    brk: Var,
    cont: Var,
    value: Option<Var>,
}

struct Lowerer<'c> {
    cx: &'c Ctxt,
    func: Func,
    scopes: Vec<HashMap<String, Bind>>,
    blocks: Vec<Vec<Stmt>>,
    loops: Vec<LoopCtx>,
    /// Exit flags set by the statements lowered so far that are still in force.
    exits: Vec<Var>,
    ret_flag: Var,
    ret_val: Var,
    used_return: bool,
    /// The float type the statements lowered next end in (the function's result), for
    /// [`Lowerer::lower_stmts`] at that level only (see [`Lowerer::as_float`]).
    want_float: Option<Prec>,
    /// The function returns a `Vec`: only as its tail expression.
    seq_ret: bool,
    /// The function takes and returns no tensor, and makes none (it calls no `.item()`): the
    /// fields of its parameter structs are read as floats (`p.k`) and float sequences
    /// (`&p.w`), not as tensors.
    scalar_fields: bool,
    /// The sequences of tensors ([`Kind::Struct`] variables that are no parameter struct):
    /// `Vec`s of tensors made here and parameters of type `&[Tensor]` or `Vec<Tensor>`,
    /// iterated whole (`for h in &outs`) and joined (`Tensor::stack(&outs, 0)`).
    tensor_seqs: HashSet<Var>,
    /// The Vecs made empty here (`let mut outs = Vec::new();`) that hold tensors, by their
    /// keys in `vec_keys` (see [`lower`]).
    tensor_vecs: HashSet<String>,
    /// The keys of the Vecs found to hold tensors after being read as Vecs of floats.
    read_before_push: HashSet<String>,
    /// The key in `tensor_vecs` of each Vec made empty here: its name and how many Vecs of
    /// that name were bound before it (`outs#0`), the same in both lowerings.
    vec_keys: HashMap<Var, String>,
}

const SUPPORTED: &str = "supported: let, assignment and `+= -= *= /=`, arithmetic, float methods, `as` casts, if/else, if let, match (with guards), for over ranges and sequences (`.windows(k)` `.chunks(k)` too), `.sum()` `.product()` `.fold(..)` `.collect()` of such iterators (also after `.map(|v| ..)`), while, loop, break, continue, return, indexing, views `&x[a..b]`, `vec![..]`, Vec::with_capacity + push, printing and checking macros (`println!`, `assert!`, `dbg!`, ..), `let f = |v| ..` closures called by name, calls";

impl Lowerer<'_> {
    // ---------- helpers ----------

    fn emit(&mut self, s: Stmt) {
        if let Some(b) = self.blocks.last_mut() {
            b.push(s);
        }
    }

    fn push_block(&mut self) {
        self.blocks.push(Vec::new());
    }

    fn pop_block(&mut self) -> Block {
        Block {
            stmts: self.blocks.pop().unwrap_or_default(),
        }
    }

    fn let_(&mut self, name: &str, kind: Kind, rhs: Rhs) -> Atom {
        let var = self.func.new_var(name, kind, false);
        self.emit(Stmt::Let { var, rhs });
        Atom::Var(var)
    }

    /// A fresh immutable version of a mutable variable.
    fn copy(&mut self, m: Var) -> Atom {
        let info = self.func.info(m).clone();
        let a = self.let_(&info.name, info.kind, Rhs::Atom(Atom::Var(m)));
        if let Atom::Var(c) = a {
            self.func.vars[c.0 as usize].span = info.span;
        }
        a
    }

    fn bind(&mut self, name: String, var: Var) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name, Bind::Var(var));
        }
    }

    /// [`Self::bind`] of a name the user wrote, remembering where (for errors).
    fn bind_ident(&mut self, ident: &syn::Ident, var: Var) {
        self.func.vars[var.0 as usize].span = Some(ident.span());
        self.bind(ident.to_string(), var);
    }

    fn bind_place(&mut self, name: String, root: Var, path: Vec<Proj>) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name, Bind::Place(root, path));
        }
    }

    fn lookup_bind(&self, name: &str) -> Option<Bind> {
        self.scopes.iter().rev().find_map(|s| s.get(name).cloned())
    }

    fn lookup(&self, name: &str) -> Option<Var> {
        match self.lookup_bind(name)? {
            Bind::Var(v) => Some(v),
            Bind::Place(..) | Bind::Closure(..) => None,
        }
    }

    /// A path into a parameter struct (`p.w`, `p.layers[i]`, a name bound to one), or `None`
    /// (with nothing lowered) when `e` is not one.
    fn place_of(&mut self, e: &Expr) -> Option<(Var, Vec<Proj>)> {
        match e {
            Expr::Paren(p) => self.place_of(&p.expr),
            Expr::Reference(r) if r.mutability.is_none() => self.place_of(&r.expr),
            Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                match self.lookup_bind(&p.path.segments[0].ident.to_string())? {
                    Bind::Place(root, path) => Some((root, path)),
                    Bind::Var(v) if self.struct_root(v) => Some((v, vec![])),
                    Bind::Var(_) | Bind::Closure(..) => None,
                }
            }
            Expr::Field(f) => {
                let (root, mut path) = self.place_of(&f.base)?;
                path.push(Proj::Field(f.member.clone()));
                Some((root, path))
            }
            Expr::Index(ix) => {
                let (root, mut path) = self.place_of(&ix.expr)?;
                let i = self.int_value(&ix.index);
                path.push(Proj::Index(i));
                Some((root, path))
            }
            _ => None,
        }
    }

    /// A `Vec` made empty here (`Vec::new()`, `Vec::with_capacity(n)`) that a tensor is
    /// pushed onto holds tensors: from now on it is a [`Kind::Struct`], read by index
    /// (`outs[t]`, `for h in &outs`) and joined (`Tensor::stack(&outs, 0)`). Where it was
    /// already read as a Vec of floats, the function is lowered again knowing it (see
    /// [`lower`]).
    fn hold_tensors(&mut self, array: Var, at: &Expr) {
        let read_before = self.blocks.iter().flatten().any(|s| {
            let b = Block {
                stmts: vec![s.clone()],
            };
            let len = matches!(s, Stmt::Let { rhs: Rhs::Len(v), .. } if *v == array);
            !len && !matches!(s, Stmt::Push { .. }) && read_vars(&b).contains(&array)
        });
        if read_before {
            let key = self.vec_keys.get(&array).cloned();
            if let Some(key) = key.filter(|k| !self.tensor_vecs.contains(k)) {
                self.read_before_push.insert(key);
            } else {
                // (not bound by `let` as made, or lowered again knowing it and still read as
                // floats)
                self.cx.error(
                    at,
                    "this Vec is read before a tensor is pushed onto it, as a Vec of floats: declare its type (`let mut outs: Vec<Tensor> = Vec::new();`)",
                );
            }
        }
        self.func.vars[array.0 as usize].kind = Kind::Struct;
        self.tensor_seqs.insert(array);
    }

    /// `var`, bound to `value`, is a sequence of tensors if `value` is one.
    fn same_seq(&mut self, var: Var, value: Atom) {
        if matches!(value, Atom::Var(v) if self.tensor_seqs.contains(&v)) {
            self.tensor_seqs.insert(var);
        }
    }

    /// Whether `v` is read through fields: a parameter struct, differentiated or left out
    /// of `wrt`.
    fn struct_root(&self, v: Var) -> bool {
        match self.func.info(v).kind {
            Kind::Struct => true,
            // a struct left out of `wrt`, or one made here (`let c = Cfg { .. };`): a plain
            // value
            Kind::Opaque => {
                self.func
                    .params
                    .iter()
                    .any(|p| p.var == v && type_kind(&p.ty) == Ok(Kind::Struct))
                    || self.blocks.iter().flatten().any(
                        |s| matches!(s, Stmt::Let { var, rhs: Rhs::Struct { .. } } if *var == v),
                    )
            }
            _ => false,
        }
    }

    /// Whether `e` is a path into a parameter struct (checked without lowering anything).
    fn is_place(&self, e: &Expr) -> bool {
        match e {
            Expr::Paren(p) => self.is_place(&p.expr),
            Expr::Reference(r) => self.is_place(&r.expr),
            Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                match self.lookup_bind(&p.path.segments[0].ident.to_string()) {
                    Some(Bind::Place(..)) => true,
                    Some(Bind::Var(v)) => self.struct_root(v),
                    Some(Bind::Closure(..)) | None => false,
                }
            }
            Expr::Field(f) => self.is_place(&f.base),
            Expr::Index(ix) if !matches!(&*ix.index, Expr::Range(_)) => self.is_place(&ix.expr),
            _ => false,
        }
    }

    /// The value at a path into a parameter struct that is differentiated: a float in a
    /// function that takes and returns no tensor, else a tensor, as far as the macro knows
    /// (a typed `let` says otherwise: `let k: f64 = p.k;`, `let w: &Tensor = &p.w;`). In one
    /// that is not (left out of `wrt`: a
    /// configuration, a frozen model) it is a value of its own type, which only rustc knows
    /// (`cfg.k`, `cfg.n`, `cfg.w[i]`, `net.w1`), taken as it is.
    fn read_place(&mut self, root: Var, path: Vec<Proj>) -> Atom {
        let active = self.func.params.iter().any(|p| p.var == root && p.active);
        let kind = match (active, self.scalar_fields) {
            // an element of a sequence of tensors
            _ if self.tensor_seqs.contains(&root) => Kind::Tensor,
            (false, _) => Kind::Opaque,
            (true, true) => Kind::Float(Prec::Infer),
            (true, false) => Kind::Tensor,
        };
        self.read_place_as(root, path, kind)
    }

    /// The value at a path into a struct, taken as `kind`.
    fn read_place_as(&mut self, root: Var, path: Vec<Proj>, kind: Kind) -> Atom {
        let name = match path.last() {
            Some(Proj::Field(syn::Member::Named(n))) => n.to_string(),
            _ => "field".to_string(),
        };
        self.let_(&name, kind, Rhs::Project(root, path))
    }

    fn kind(&self, a: Atom) -> Kind {
        self.func.kind(a)
    }

    /// `e` where an integer is wanted (a range's bound, an index).
    fn int_value(&mut self, e: &Expr) -> Atom {
        let a = self.value(e);
        self.as_int(a)
    }

    /// `a`, an integer if it is a value of a type the macro cannot see (a constant, a field
    /// of a configuration) or a field read as a float or tensor that nothing has used yet
    /// (see [`Lowerer::retag_fresh_field`]): where an integer is wanted (`0..p.n`, `x[p.i]`,
    /// `t % p.n`, `x.powi(cfg.n)`, `q.shape()[1] / p.heads`), the value is one (Rust does not
    /// convert between them).
    fn as_int(&mut self, a: Atom) -> Atom {
        let Atom::Var(v) = a else { return a };
        if self.func.info(v).kind == Kind::Opaque {
            self.func.vars[v.0 as usize].kind = Kind::Int;
            return a;
        }
        self.retag_fresh_field(v, Kind::Int);
        a
    }

    /// Gives `kind` to `v` if it is a field just read out of a parameter struct, as a float
    /// (where fields are: `scalar_fields`) or a tensor (elsewhere), that nothing has used
    /// yet: the macro cannot see a field's type, and where the field's use says what it is
    /// (an integer meets an integer, an enum is matched on), it is that. Returns whether it
    /// did.
    fn retag_fresh_field(&mut self, v: Var, kind: Kind) -> bool {
        let field = match self.func.info(v).kind {
            Kind::Float(Prec::Infer) => self.scalar_fields,
            Kind::Tensor => true,
            _ => false,
        };
        if !field {
            return false;
        }
        let block = self.blocks.last().map(Vec::as_slice).unwrap_or_default();
        let read = block.iter().position(|s| {
            matches!(s, Stmt::Let { var, rhs: Rhs::Project(root, _) }
                if *var == v && !self.tensor_seqs.contains(root))
        });
        let a = Atom::Var(v);
        let fresh = read.is_some_and(|at| {
            block[at + 1..].iter().all(|s| match s {
                Stmt::Let { rhs, .. } => !rhs_uses(rhs).contains(&a),
                Stmt::Assign { value, .. } => *value != a,
                _ => false,
            })
        });
        if fresh {
            self.func.vars[v.0 as usize].kind = kind;
        }
        fresh
    }

    /// Makes `a` a float where Rust says it is one (a typed `let k: f64 = ..`, an
    /// assignment to a float variable), returning whether it now is: a value the macro took
    /// for a tensor because it is read out of a parameter struct (`p.k`; a field may be
    /// either), or computed elementwise from such values and floats (`s + p.k`, `2.0 * p.k`),
    /// is a float, and so is everything it was computed from (Rust converts nothing
    /// implicitly: a tensor in it would make it a tensor, which rustc reports).
    fn as_float(&mut self, a: Atom, prec: Prec) -> bool {
        let Atom::Var(v) = a else { return true };
        match &self.func.info(v).kind {
            Kind::Float(_) => return true,
            Kind::Tensor => {}
            _ => return false,
        }
        let def = self.blocks.iter().flatten().find_map(|s| match s {
            Stmt::Let { var, rhs } if *var == v => Some(rhs.clone()),
            _ => None,
        });
        let float = match def {
            Some(Rhs::Project(..)) => true,
            Some(Rhs::Atom(b)) => self.as_float(b, prec),
            Some(Rhs::Prim(p, args)) if p.is_elementwise() => args
                .iter()
                .all(|b| self.func.kind(*b) == Kind::Bool || self.as_float(*b, prec)),
            _ => false,
        };
        if float {
            self.func.vars[v.0 as usize].kind = Kind::Float(prec);
        }
        float
    }

    fn prim(&mut self, p: Prim, mut args: Vec<Atom>) -> Atom {
        for (k, a) in args.iter_mut().enumerate() {
            if p.is_int_arg(k) {
                *a = self.as_int(*a);
            }
        }
        let kinds: Vec<Kind> = args.iter().map(|a| self.kind(*a)).collect();
        self.let_("t", p.out_kind(&kinds), Rhs::Prim(p, args))
    }

    fn unsupported(&mut self, tokens: impl ToTokens, what: &str) -> Option<Atom> {
        self.cx.error(
            tokens,
            format!("{what} is not supported in a #[grad] function ({SUPPORTED})"),
        );
        Some(Atom::Float(0.0))
    }

    fn zero_of(kind: &Kind) -> Rhs {
        match kind {
            Kind::Float(_) => Rhs::Atom(Atom::Float(0.0)),
            Kind::Int => Rhs::Atom(Atom::Int(0)),
            Kind::Bool => Rhs::Atom(Atom::Bool(false)),
            Kind::Tensor => tensor_placeholder(),
            _ => Rhs::Uninit,
        }
    }

    /// A mutable variable declared in the current block with a neutral initial value.
    fn result_var(&mut self, name: &str, kind: Kind) -> Var {
        let rhs = Self::zero_of(&kind);
        let var = self.func.new_var(name, kind, true);
        self.emit(Stmt::Let { var, rhs });
        var
    }

    // ---------- signature ----------

    fn lower_params(&mut self, sig: &syn::Signature, attr: &GradAttr) {
        for g in &sig.generics.params {
            if let syn::GenericParam::Type(t) = g {
                self.cx.error(t, "#[grad] does not support generic type parameters: write the function for `f32` or `f64`");
            }
        }
        let mut seen = Vec::new();
        for input in &sig.inputs {
            let pt = match input {
                syn::FnArg::Receiver(r) => {
                    self.cx.error(r, "this attribute does not support methods (`self`; #[grad] does): write a free function taking the value as a parameter");
                    continue;
                }
                syn::FnArg::Typed(pt) => pt,
            };
            let (ident, mutable) = match &*pt.pat {
                Pat::Ident(pi) if pi.subpat.is_none() && pi.by_ref.is_none() => {
                    (pi.ident.clone(), pi.mutability.is_some())
                }
                other => {
                    self.cx.error(
                        other,
                        "#[grad] parameters must be plain names (`x: f64`), not patterns",
                    );
                    continue;
                }
            };
            let kind = match type_kind(&pt.ty) {
                Ok(k) => k,
                Err(msg) => {
                    self.cx.error(&pt.ty, msg);
                    Kind::Opaque
                }
            };
            let wanted = attr.wrt.as_ref().is_none_or(|w| w.contains(&ident));
            // a struct left out of `wrt` is a plain value (a configuration, a frozen model):
            // its fields are read as what they are, and it need not be `Differentiable`
            let kind = if kind == Kind::Struct && !wanted {
                Kind::Opaque
            } else {
                kind
            };
            let active = wanted && kind.is_differentiable();
            if let Some(w) = &attr.wrt
                && let Some(n) = w.iter().find(|n| **n == ident)
                && !kind.is_differentiable()
            {
                self.cx.error(n, format!("`{ident}` cannot be differentiated: `wrt` names f32/f64, &[f64], Vec<f64> or [f64; N] parameters"));
            }
            let var = self.func.new_var(&ident.to_string(), kind, mutable);
            self.bind_ident(&ident, var);
            if is_tensor_seq(&pt.ty) {
                self.tensor_seqs.insert(var);
            }
            seen.push(ident.clone());
            self.func.params.push(Param {
                var,
                ident,
                ty: (*pt.ty).clone(),
                active,
            });
        }
        if !self.func.params.iter().any(|p| p.active) && attr.wrt.is_none() && !self.cx.has_errors()
        {
            self.cx.error(
                &sig.ident,
                "#[grad] needs a parameter to differentiate with respect to: an `f32`/`f64`, `&[f64]`, `Vec<f64>` or `[f64; N]`",
            );
        }
        if let Some(w) = &attr.wrt {
            for n in w {
                if !seen.contains(n) {
                    self.cx.error(
                        n,
                        format!("`wrt` names `{n}`, which is not a parameter of this function"),
                    );
                }
            }
        }
    }

    // ---------- statements ----------

    /// Lowers statements into the current block; returns the value of a trailing expression.
    /// After a statement that may leave (`break`, `continue`, `return`), the rest is guarded.
    fn lower_stmts(&mut self, stmts: &[syn::Stmt]) -> Option<Atom> {
        let want = self.want_float.take();
        for (i, st) in stmts.iter().enumerate() {
            let before = self.exits.len();
            let last = i + 1 == stmts.len();
            let value = self.lower_stmt(st, last);
            if last {
                if let (Some(p), Some(v)) = (want, value) {
                    self.as_float(v, p);
                }
                return value;
            }
            if self.exits.len() > before {
                let mut flags: Vec<Var> = self.exits[before..].to_vec();
                flags.sort();
                flags.dedup();
                let go_on = self.none_set(&flags);
                self.push_block();
                self.want_float = want;
                let tail = self.lower_stmts(&stmts[i + 1..]);
                let mut then = self.pop_block();
                let result = tail.map(|t| {
                    let r = self.result_var("v", self.kind(t));
                    then.stmts.push(Stmt::Assign { var: r, value: t });
                    r
                });
                self.emit(Stmt::If {
                    cond: go_on,
                    then,
                    els: Block::default(),
                });
                return result.map(|r| self.copy(r));
            }
        }
        None
    }

    /// `!(f1 || f2 || ..)` over exit flags.
    fn none_set(&mut self, flags: &[Var]) -> Atom {
        let mut any = self.copy(flags[0]);
        for f in &flags[1..] {
            let c = self.copy(*f);
            any = self.prim(Prim::BitOr, vec![any, c]);
        }
        self.prim(Prim::Not, vec![any])
    }

    fn lower_stmt(&mut self, st: &syn::Stmt, last: bool) -> Option<Atom> {
        match st {
            syn::Stmt::Local(local) => {
                self.lower_local(local);
                None
            }
            syn::Stmt::Item(item) => {
                self.cx.error(item, "items (fn, struct, use, ..) inside a #[grad] function are not supported: define them outside");
                None
            }
            syn::Stmt::Expr(e, semi) => {
                let v = self.lower_expr(e);
                if semi.is_none() && last { v } else { None }
            }
            syn::Stmt::Macro(m) => {
                let v = self.lower_macro(&m.mac);
                if m.semi_token.is_none() && last {
                    v
                } else {
                    None
                }
            }
        }
    }

    fn lower_local(&mut self, local: &syn::Local) {
        if let Some(init) = &local.init
            && let Some((_, d)) = &init.diverge
        {
            self.cx.error(
                d,
                "`let .. else` is not supported in a #[grad] function; use match",
            );
        }
        let (pat, ty) = match &local.pat {
            Pat::Type(pt) => (&*pt.pat, Some(&*pt.ty)),
            p => (p, None),
        };
        let annotated = ty.and_then(|t| type_kind(t).ok());
        let Some(init) = &local.init else {
            // `let x;` / `let mut x: f64;`: assigned later.
            if let Pat::Ident(pi) = pat {
                let kind = annotated.unwrap_or(Kind::Opaque);
                let var = self.func.new_var(&pi.ident.to_string(), kind, true);
                self.emit(Stmt::Let {
                    var,
                    rhs: Rhs::Uninit,
                });
                self.bind_ident(&pi.ident, var);
            } else {
                self.cx
                    .error(pat, "a `let` without a value must bind a single name");
            }
            return;
        };
        match (pat, &*init.expr) {
            (Pat::Tuple(pt), Expr::Tuple(et)) if pt.elems.len() == et.elems.len() => {
                let atoms: Vec<Option<Atom>> =
                    et.elems.iter().map(|e| self.lower_expr(e)).collect();
                for (p, a) in pt.elems.iter().zip(atoms) {
                    let a = a.unwrap_or(Atom::Float(0.0));
                    self.bind_pat(p, a, None);
                }
            }
            (Pat::Tuple(pt), Expr::MethodCall(m))
                if m.args.is_empty()
                    && m.turbofish.is_none()
                    && ((m.method == "eigh" || m.method == "qr" || m.method == "slogdet")
                        && pt.elems.len() == 2
                        || m.method == "svd" && pt.elems.len() == 3) =>
            {
                // `let (w, v) = a.eigh();`, `let (q, r) = a.qr();`: one decomposition, read
                // twice
                let recv = self.value(&m.receiver);
                let name = m.method.to_string();
                if self.kind(recv) != Kind::Tensor {
                    self.cx.error(
                        &m.method,
                        format!("`.{name}()` is differentiated on a tensor (`let (x, y) = a.{name}();` with `a: &Tensor`)"),
                    );
                    return;
                }
                if name == "slogdet" {
                    // `let (sign, log) = a.slogdet();`: one LU factorization, the sign (no
                    // derivative) and log |det a| from it
                    let factors = self.prim(Prim::LuFactor, vec![recv]);
                    let sign = self.prim(Prim::LuSign, vec![factors]);
                    let log = self.prim(Prim::LuLogAbsDet, vec![factors, recv]);
                    self.bind_pat(&pt.elems[0], sign, None);
                    self.bind_pat(&pt.elems[1], log, None);
                    return;
                }
                let (factor, whole, parts): (Prim, Prim, &[Prim]) = match name.as_str() {
                    "eigh" => (
                        Prim::EighFactor,
                        Prim::Eigh,
                        &[Prim::EighValues, Prim::EighVectors],
                    ),
                    "qr" => (Prim::QrFactor, Prim::Qr, &[Prim::QrQ, Prim::QrR]),
                    _ => (
                        Prim::SvdFactor,
                        Prim::Svd,
                        &[Prim::SvdU, Prim::SvdS, Prim::SvdVt],
                    ),
                };
                let factors = self.prim(factor, vec![recv]);
                let packed = self.prim(whole, vec![factors, recv]);
                for (pat, part) in pt.elems.iter().zip(parts) {
                    let a = self.prim(*part, vec![packed]);
                    self.bind_pat(pat, a, None);
                }
            }
            (Pat::Tuple(pt), e) => {
                let Some(a) = self.lower_expr(e) else { return };
                let Atom::Var(t) = a else {
                    self.cx.error(e, "expected a tuple");
                    return;
                };
                for (k, p) in pt.elems.iter().enumerate() {
                    let kind = Kind::Opaque;
                    let f = self.let_("f", kind, Rhs::Field(t, k));
                    self.bind_pat(p, f, None);
                }
            }
            (Pat::Ident(pi), e)
                if pi.mutability.is_none()
                    && pi.subpat.is_none()
                    && matches!(
                        strip_ref(e),
                        Expr::Field(_) | Expr::Index(_) | Expr::Path(_)
                    )
                    && self.is_place(e) =>
            {
                let Some((root, path)) = self.place_of(e) else {
                    return;
                };
                match annotated {
                    // `let k: f64 = p.k;`, `let w: &[f64] = &p.w;`, `let w: &Tensor = &p.w`:
                    // a float, float sequence or tensor out of a struct (whose fields the
                    // macro otherwise takes for what `read_place` says), read here as the type
                    // it is given
                    Some(kind @ (Kind::Float(_) | Kind::Seq(..) | Kind::Tensor))
                        if !path.is_empty() =>
                    {
                        let a = self.read_place_as(root, path, kind);
                        self.bind_pat(pat, a, None);
                    }
                    // `let layer = &p.layers[i];`: a name for the path, read where it is used
                    _ => self.bind_place(pi.ident.to_string(), root, path),
                }
            }
            (Pat::Ident(pi), Expr::Closure(c)) if pi.subpat.is_none() => {
                // `let f = |v| ..;`: lowered where it is called
                if c.capture.is_some() {
                    self.unsupported(
                        c,
                        "a `move` closure (drop `move`: the closure is lowered where it is called)",
                    );
                    return;
                }
                if let Err((at, what)) = inlinable_closure(c, c.inputs.len()) {
                    self.unsupported(at, what);
                    return;
                }
                let defined = self.scopes.clone();
                if let Some(s) = self.scopes.last_mut() {
                    s.insert(
                        pi.ident.to_string(),
                        Bind::Closure(Box::new(c.clone()), defined),
                    );
                }
            }
            (p, e) => {
                let a = self.lower_expr(e).unwrap_or(Atom::Float(0.0));
                self.bind_pat(p, a, annotated);
            }
        }
    }

    /// Binds a simple pattern (`x`, `mut x`, `_`) to a value.
    fn bind_pat(&mut self, pat: &Pat, value: Atom, annotated: Option<Kind>) {
        match pat {
            Pat::Ident(pi) if pi.subpat.is_none() && pi.by_ref.is_none() => {
                let name = pi.ident.to_string();
                let mut kind = self.kind(value);
                // a call taking a struct gives a tensor as far as the macro knows; a typed
                // `let` of its result says otherwise (`let e: f64 = self.part(x);`)
                let call_result = matches!(
                    (value, self.blocks.last().and_then(|b| b.last())),
                    (Atom::Var(v), Some(Stmt::Let { var, rhs: Rhs::Call { .. } })) if v == *var
                );
                if let Some(k) = annotated {
                    kind = match (k, kind) {
                        (Kind::Float(p), Kind::Float(q)) => Kind::Float(p.join(q)),
                        (Kind::Float(p), Kind::Tensor) if call_result => Kind::Float(p),
                        // `let k: f64 = 2.0 * p.k;`
                        (Kind::Float(p), Kind::Tensor) if self.as_float(value, p) => Kind::Float(p),
                        (Kind::Seq(s, p), Kind::Seq(_, q)) => Kind::Seq(s, p.join(q)),
                        // `let mut outs: Vec<Tensor> = Vec::new();`
                        (Kind::Struct, Kind::Seq(Seq::Vec, _)) => {
                            if let Atom::Var(v) = value {
                                self.tensor_seqs.insert(v);
                            }
                            Kind::Struct
                        }
                        (k, Kind::Opaque) => k,
                        (_, k) => k,
                    };
                }
                let just_made = match (value, self.blocks.last().and_then(|b| b.last())) {
                    (Atom::Var(v), Some(Stmt::Let { var, .. })) => {
                        v == *var && !self.func.info(v).mutable
                    }
                    _ => false,
                };
                // (a Vec known to hold tensors, see `lower`)
                let empty_vec = matches!(value, Atom::Var(v) if self.blocks.iter().flatten().any(
                    |s| matches!(s, Stmt::Let { var, rhs: Rhs::NewSeq(NewSeq::Empty { .. }) } if *var == v)));
                if let (true, Kind::Seq(Seq::Vec, _), Atom::Var(v)) = (empty_vec, &kind, value) {
                    let n = self
                        .vec_keys
                        .values()
                        .filter(|k| k.starts_with(&format!("{name}#")))
                        .count();
                    let key = format!("{name}#{n}");
                    if self.tensor_vecs.contains(&key) {
                        kind = Kind::Struct;
                        self.tensor_seqs.insert(v);
                    }
                    self.vec_keys.insert(v, key);
                }
                if let (true, true, Atom::Var(v)) = (
                    pi.mutability.is_some(),
                    just_made && !kind.is_scalar(),
                    value,
                ) {
                    // `let mut v = vec![..]`: the new sequence itself becomes the variable (no move).
                    let info = &mut self.func.vars[v.0 as usize];
                    info.name = name.clone();
                    info.kind = kind;
                    info.mutable = true;
                    self.bind_ident(&pi.ident, v);
                } else if pi.mutability.is_some() {
                    // A Vec moved into a new binding is copied instead, so that the old one can
                    // still size its adjoint.
                    let rhs = match (value, &kind) {
                        (Atom::Var(v), Kind::Seq(Seq::Vec, _)) => Rhs::NewSeq(NewSeq::CopyOf(v)),
                        _ => Rhs::Atom(value),
                    };
                    let var = self.func.new_var(&name, kind, true);
                    self.emit(Stmt::Let { var, rhs });
                    self.bind_ident(&pi.ident, var);
                    self.same_seq(var, value);
                } else {
                    match value {
                        Atom::Var(v) if !self.func.info(v).mutable => {
                            let info = &mut self.func.vars[v.0 as usize];
                            if info.name == "t" {
                                info.name = name.clone();
                            }
                            info.kind = kind;
                            self.bind_ident(&pi.ident, v);
                        }
                        _ => {
                            let v = self.let_(&name, kind, Rhs::Atom(value));
                            if let Atom::Var(v) = v {
                                self.bind_ident(&pi.ident, v);
                                self.same_seq(v, value);
                            }
                        }
                    }
                }
            }
            Pat::Wild(_) => {}
            Pat::Type(pt) => {
                let k = type_kind(&pt.ty).ok();
                self.bind_pat(&pt.pat, value, k);
            }
            // `let [a, b] = p;`, `let [x, _, ..] = p;`: elements of an array from the front
            // (rustc checks the pattern against the array's length in the function as written)
            Pat::Slice(ps) => {
                let (Atom::Var(seq), Kind::Seq(_, prec)) = (value, self.kind(value)) else {
                    self.cx.error(
                        ps,
                        "an array pattern destructures an array or slice of floats only",
                    );
                    return;
                };
                for (k, p) in ps.elems.iter().enumerate() {
                    match p {
                        Pat::Rest(_) if k + 1 == ps.elems.len() => break,
                        Pat::Rest(r) => {
                            self.cx
                                .error(r, "`..` is supported at the end of an array pattern only");
                            return;
                        }
                        Pat::Wild(_) => {}
                        p => {
                            let e = self.let_(
                                "e",
                                Kind::Float(prec),
                                Rhs::Index(seq, Atom::Int(k as u128)),
                            );
                            self.bind_pat(p, e, None);
                        }
                    }
                }
            }
            other => {
                self.cx.error(
                    other,
                    "patterns in `let` may be a name, `mut name`, `_`, or a tuple or an array of those",
                );
            }
        }
    }

    // ---------- expressions ----------

    /// Lowers an expression whose value is needed.
    fn value(&mut self, e: &Expr) -> Atom {
        match self.lower_expr(e) {
            Some(a) => a,
            None => {
                self.cx.error(e, "this expression has no value here");
                Atom::Float(0.0)
            }
        }
    }

    /// Lowers an expression; `None` when it has no value (`()` or it always leaves).
    fn lower_expr(&mut self, e: &Expr) -> Option<Atom> {
        match e {
            Expr::Lit(l) => self.lower_lit(&l.lit),
            Expr::Path(p) => Some(self.lower_path(p)),
            Expr::Paren(p) => self.lower_expr(&p.expr),
            Expr::Group(g) => self.lower_expr(&g.expr),
            Expr::Reference(r) => {
                if r.mutability.is_some() {
                    return self.unsupported(r, "`&mut`");
                }
                self.lower_expr(&r.expr)
            }
            Expr::Unary(u) => {
                let a = self.value(&u.expr);
                match u.op {
                    UnOp::Neg(_) => Some(self.prim(Prim::Neg, vec![a])),
                    UnOp::Not(_) => Some(self.prim(Prim::Not, vec![a])),
                    UnOp::Deref(_) => Some(a),
                    _ => self.unsupported(u, "this unary operator"),
                }
            }
            Expr::Binary(b) => self.lower_binary(b),
            Expr::Assign(a) => {
                self.lower_assign(&a.left, None, &a.right);
                None
            }
            Expr::Cast(c) => self.lower_cast(c),
            Expr::MethodCall(m) => self.lower_method(m),
            Expr::Call(c) => self.lower_call(c),
            Expr::Macro(m) => self.lower_macro(&m.mac),
            Expr::Array(a) => {
                let items: Vec<Atom> = a.elems.iter().map(|e| self.value(e)).collect();
                // (an array of tensors: a sequence of tensors, as `vec![..]` makes)
                if items.first().is_some_and(|i| self.kind(*i) == Kind::Tensor) {
                    return Some(self.tensor_seq_of(items));
                }
                // the elements share a type: any float among them (`[SPAN, 0.0]`, a
                // constant of a type the macro cannot see, then a float) gives it
                let float = items.iter().find_map(|a| match self.kind(*a) {
                    Kind::Float(p) => Some(p),
                    _ => None,
                });
                let kind = match float {
                    Some(p) => Kind::Seq(Seq::Array, p),
                    None => Kind::Opaque,
                };
                Some(self.let_("a", kind, Rhs::NewSeq(NewSeq::ArrayOf(items))))
            }
            Expr::Repeat(r) => {
                let value = self.value(&r.expr);
                let kind = match self.kind(value) {
                    Kind::Float(p) => Kind::Seq(Seq::Array, p),
                    _ => Kind::Opaque,
                };
                let len = r.len.to_token_stream();
                Some(self.let_("a", kind, Rhs::NewSeq(NewSeq::ArrayRepeat { value, len })))
            }
            Expr::Index(ix) if matches!(&*ix.index, Expr::Range(_)) => self.lower_subslice(ix),
            Expr::Index(ix) if self.is_place(&ix.expr) => {
                let (root, path) = self.place_of(e)?;
                Some(self.read_place(root, path))
            }
            Expr::Index(ix) => {
                let Expr::Path(p) = &*ix.expr else {
                    // `q.shape()[1]`: indexing a value that carries no derivative, kept as
                    // written
                    let base = self.value(&ix.expr);
                    if let Atom::Var(v) = base
                        && !self.kind(base).is_differentiable()
                    {
                        let i = self.int_value(&ix.index);
                        // (an axis's length is a `usize`)
                        let kind = match &*ix.expr {
                            Expr::MethodCall(m)
                                if m.args.is_empty()
                                    && matches!(m.method.to_string().as_str(), "shape" | "dims") =>
                            {
                                Kind::Int
                            }
                            _ => Kind::Opaque,
                        };
                        return Some(self.let_("e", kind, Rhs::Index(v, i)));
                    }
                    return self.unsupported(
                        &ix.expr,
                        "indexing anything but a named slice, Vec or array (or a value with no derivative, such as `t.shape()[0]`)",
                    );
                };
                let Some(arr) = self.path_var(p) else {
                    return self
                        .unsupported(p, "indexing anything but a named slice, Vec or array");
                };
                let i = self.int_value(&ix.index);
                let kind = match &self.func.info(arr).kind {
                    Kind::Seq(_, p) => Kind::Float(*p),
                    _ => Kind::Opaque,
                };
                Some(self.let_("e", kind, Rhs::Index(arr, i)))
            }
            Expr::If(i) => self.lower_if(i),
            Expr::Match(m) => self.lower_match(m),
            Expr::Block(b) => {
                if let Some(l) = &b.label {
                    return self.unsupported(l, "a labelled block");
                }
                self.lower_block(&b.block)
            }
            Expr::ForLoop(f) => {
                self.lower_for(f);
                None
            }
            Expr::While(w) => {
                self.lower_while(w);
                None
            }
            Expr::Loop(l) => self.lower_loop(l),
            Expr::Break(b) => {
                self.lower_break(b);
                None
            }
            Expr::Continue(c) => {
                self.lower_continue(c);
                None
            }
            Expr::Return(r) => {
                self.lower_return(r);
                None
            }
            Expr::Tuple(t) if t.elems.is_empty() => None,
            Expr::Tuple(t) => {
                let items: Vec<Atom> = t.elems.iter().map(|e| self.value(e)).collect();
                let tup = self.let_("tup", Kind::Opaque, Rhs::Tuple(items));
                // (where it holds a value with a derivative, `check_activity` reports it here)
                if let Atom::Var(v) = tup {
                    self.func.vars[v.0 as usize].span = Some(t.span());
                }
                Some(tup)
            }
            Expr::Closure(c) => {
                self.cx.error(c, "closures are supported in a #[grad] function as `let f = |v| ..;` called by name, and as the argument of `.map(..)` or `.fold(..)` before a reduction; for anything else write a separate #[grad] fn and call it");
                Some(Atom::Float(0.0))
            }
            Expr::Unsafe(u) => self.unsupported(u.unsafe_token, "an `unsafe` block"),
            Expr::Async(a) => self.unsupported(a, "`async`"),
            Expr::Await(a) => self.unsupported(a, "`.await`"),
            Expr::Try(t) => self.unsupported(t, "the `?` operator"),
            Expr::Field(f) => match self.place_of(e) {
                Some((root, path)) => Some(self.read_place(root, path)),
                None => self.unsupported(
                    f,
                    "field access on anything but a parameter struct (`p: &Params` with `#[derive(Differentiable)]`, read as `p.w` or `p.layers[i].w`)",
                ),
            },
            Expr::Struct(s) => self.lower_struct(s),
            Expr::Range(r) => self.unsupported(r, "a range outside `for`"),
            Expr::Let(l) => self.unsupported(l, "`let` in a condition (`if let`, `while let`)"),
            Expr::RawAddr(r) => {
                self.cx
                    .error(r, "raw pointers are not supported in a #[grad] function");
                Some(Atom::Float(0.0))
            }
            other => self.unsupported(other, "this expression"),
        }
    }

    fn lower_lit(&mut self, lit: &syn::Lit) -> Option<Atom> {
        match lit {
            syn::Lit::Float(f) => match f.base10_parse::<f64>() {
                Ok(v) => {
                    let prec = match f.suffix() {
                        "f32" => Prec::F32,
                        "f64" => Prec::F64,
                        _ => return Some(Atom::Float(v)),
                    };
                    Some(self.let_("c", Kind::Float(prec), Rhs::Atom(Atom::Float(v))))
                }
                Err(e) => {
                    self.cx.syn_error(e);
                    Some(Atom::Float(0.0))
                }
            },
            syn::Lit::Int(i) => match i.base10_parse::<u128>() {
                Ok(v) => match i.suffix() {
                    "f32" | "f64" => {
                        let prec = if i.suffix() == "f32" {
                            Prec::F32
                        } else {
                            Prec::F64
                        };
                        Some(self.let_("c", Kind::Float(prec), Rhs::Atom(Atom::Float(v as f64))))
                    }
                    _ => Some(Atom::Int(v)),
                },
                Err(e) => {
                    self.cx.syn_error(e);
                    Some(Atom::Int(0))
                }
            },
            syn::Lit::Bool(b) => Some(Atom::Bool(b.value)),
            syn::Lit::Str(_) | syn::Lit::Char(_) => {
                Some(self.let_("s", Kind::Opaque, Rhs::Lit(lit.clone())))
            }
            other => self.unsupported(other, "this literal"),
        }
    }

    fn path_var(&self, p: &syn::ExprPath) -> Option<Var> {
        if p.qself.is_none() && p.path.segments.len() == 1 {
            self.lookup(&p.path.segments[0].ident.to_string())
        } else {
            None
        }
    }

    fn lower_path(&mut self, p: &syn::ExprPath) -> Atom {
        if p.qself.is_none()
            && p.path.segments.len() == 1
            && let Some(Bind::Place(root, path)) =
                self.lookup_bind(&p.path.segments[0].ident.to_string())
        {
            return self.read_place(root, path);
        }
        if let Some(v) = self.path_var(p) {
            let info = self.func.info(v);
            return if info.mutable && info.kind.is_scalar() {
                self.copy(v)
            } else {
                Atom::Var(v)
            };
        }
        let text = p.to_token_stream().to_string();
        let kind = if text.contains("f64") {
            Kind::Float(Prec::F64)
        } else if text.contains("f32") {
            Kind::Float(Prec::F32)
        } else {
            Kind::Opaque
        };
        self.let_("k", kind, Rhs::Path(p.clone()))
    }

    fn lower_binary(&mut self, b: &syn::ExprBinary) -> Option<Atom> {
        let p = match b.op {
            BinOp::And(_) | BinOp::Or(_) => return Some(self.lower_short_circuit(b)),
            BinOp::AddAssign(_) => Some(Prim::Add),
            BinOp::SubAssign(_) => Some(Prim::Sub),
            BinOp::MulAssign(_) => Some(Prim::Mul),
            BinOp::DivAssign(_) => Some(Prim::Div),
            BinOp::RemAssign(_) => Some(Prim::Rem),
            BinOp::BitAndAssign(_) => Some(Prim::BitAnd),
            BinOp::BitOrAssign(_) => Some(Prim::BitOr),
            BinOp::BitXorAssign(_) => Some(Prim::BitXor),
            BinOp::ShlAssign(_) => Some(Prim::Shl),
            BinOp::ShrAssign(_) => Some(Prim::Shr),
            _ => None,
        };
        if let Some(p) = p {
            self.lower_assign(&b.left, Some(p), &b.right);
            return None;
        }
        let p = match b.op {
            BinOp::Add(_) => Prim::Add,
            BinOp::Sub(_) => Prim::Sub,
            BinOp::Mul(_) => Prim::Mul,
            BinOp::Div(_) => Prim::Div,
            BinOp::Rem(_) => Prim::Rem,
            BinOp::BitAnd(_) => Prim::BitAnd,
            BinOp::BitOr(_) => Prim::BitOr,
            BinOp::BitXor(_) => Prim::BitXor,
            BinOp::Shl(_) => Prim::Shl,
            BinOp::Shr(_) => Prim::Shr,
            BinOp::Lt(_) => Prim::Lt,
            BinOp::Le(_) => Prim::Le,
            BinOp::Gt(_) => Prim::Gt,
            BinOp::Ge(_) => Prim::Ge,
            BinOp::Eq(_) => Prim::Eq,
            BinOp::Ne(_) => Prim::Ne,
            _ => return self.unsupported(b, "this operator"),
        };
        let mut l = self.value(&b.left);
        let mut r = self.value(&b.right);
        // (`t % p.n`, `p.n > 2`: a field read as a float that meets an integer is one)
        if self.kind(l) == Kind::Int {
            r = self.as_int(r);
        }
        if self.kind(r) == Kind::Int {
            l = self.as_int(l);
        }
        // (`p.act == Act::Relu`: a field compared with a constant path is what the path is)
        if matches!(p, Prim::Eq | Prim::Ne) {
            let path = |this: &Self, a: Atom| {
                matches!(a, Atom::Var(v) if this.blocks.iter().flatten().any(
                    |s| matches!(s, Stmt::Let { var, rhs: Rhs::Path(_) } if *var == v)))
            };
            for (a, other) in [(l, r), (r, l)] {
                if let Atom::Var(v) = a
                    && path(self, other)
                    && self.kind(other) == Kind::Opaque
                {
                    self.retag_fresh_field(v, Kind::Opaque);
                }
            }
        }
        Some(self.prim(p, vec![l, r]))
    }

    /// `a && b` / `a || b`, keeping the short circuit.
    fn lower_short_circuit(&mut self, b: &syn::ExprBinary) -> Atom {
        let is_and = matches!(b.op, BinOp::And(_));
        let l = self.value(&b.left);
        let r = self.result_var("c", Kind::Bool);
        self.push_block();
        let rv = self.value(&b.right);
        self.emit(Stmt::Assign { var: r, value: rv });
        let eval = self.pop_block();
        let fixed = Block {
            stmts: vec![Stmt::Assign {
                var: r,
                value: Atom::Bool(!is_and),
            }],
        };
        let (then, els) = if is_and { (eval, fixed) } else { (fixed, eval) };
        self.emit(Stmt::If { cond: l, then, els });
        self.copy(r)
    }

    /// `place = rhs` (`op` = None) or `place op= rhs`.
    fn lower_assign(&mut self, place: &Expr, op: Option<Prim>, rhs: &Expr) {
        let value = self.value(rhs);
        match place {
            Expr::Path(p) => {
                let Some(var) = self.path_var(p) else {
                    self.cx.error(
                        p,
                        "assignment to something that is not a local variable is not supported",
                    );
                    return;
                };
                let new = match op {
                    None => value,
                    Some(op) => {
                        let old = self.copy(var);
                        self.prim(op, vec![old, value])
                    }
                };
                // (`s = s + p.k` with `s` a float: the field is one)
                if let Kind::Float(prec) = self.kind(Atom::Var(var)) {
                    self.as_float(new, prec);
                }
                let vk = self.kind(new);
                // `y = [a, b];`, `y = z;` for arrays: element by element, from the new value
                // (evaluated whole first, as Rust does)
                if let (Kind::Seq(Seq::Array, prec), Atom::Var(from), Kind::Seq(..)) =
                    (self.kind(Atom::Var(var)), new, &vk)
                {
                    self.copy_array(var, from, prec, rhs);
                    return;
                }
                let info = &mut self.func.vars[var.0 as usize];
                if info.kind == Kind::Opaque && vk.is_differentiable() {
                    info.kind = vk;
                }
                // (a Vec of tensors replaced by another: `hs = next;`)
                let seqs = [Atom::Var(var), new]
                    .iter()
                    .all(|a| matches!(a, Atom::Var(v) if self.tensor_seqs.contains(v)));
                let info = &self.func.vars[var.0 as usize];
                if info.kind.is_differentiable() && !info.kind.is_scalar() && !seqs {
                    self.cx.error(
                        p,
                        "reassigning a whole Vec is not supported; assign its elements (a whole array can be reassigned)",
                    );
                }
                self.emit(Stmt::Assign { var, value: new });
            }
            Expr::Index(ix) => {
                let arr = match &*ix.expr {
                    Expr::Path(p) => self.path_var(p),
                    _ => None,
                };
                let Some(array) = arr else {
                    self.cx.error(
                        &ix.expr,
                        "element assignment is supported on named Vec and array variables",
                    );
                    return;
                };
                let of_tensors = self.func.info(array).kind == Kind::Struct;
                if of_tensors && !self.tensor_seqs.contains(&array) {
                    self.cx.error(
                        place,
                        "assigning a field or element of a parameter struct is not supported; compute a new value",
                    );
                    return;
                }
                if of_tensors && self.kind(value) != Kind::Tensor {
                    self.cx.error(
                        rhs,
                        "an element of a Vec of tensors can only be assigned a tensor (`hs[l] = h;`)",
                    );
                    return;
                }
                let index = self.int_value(&ix.index);
                let new = match op {
                    None => value,
                    Some(op) => {
                        let old = match &self.func.info(array).kind {
                            Kind::Seq(_, p) => {
                                let kind = Kind::Float(*p);
                                self.let_("e", kind, Rhs::Index(array, index))
                            }
                            Kind::Struct => self.read_place(array, vec![Proj::Index(index)]),
                            _ => self.let_("e", Kind::Opaque, Rhs::Index(array, index)),
                        };
                        self.prim(op, vec![old, value])
                    }
                };
                self.emit(Stmt::Store {
                    array,
                    index,
                    value: new,
                });
            }
            Expr::Paren(p) => self.lower_assign(&p.expr, op, rhs),
            Expr::Unary(u) if matches!(u.op, UnOp::Deref(_)) => {
                self.cx.error(
                    u,
                    "assignment through a reference is not supported in a #[grad] function",
                );
            }
            other => {
                self.cx.error(
                    other,
                    "assignment is supported to local variables and to elements `v[i]`",
                );
            }
        }
    }

    /// `to = from` for arrays: a store per element (`from` written as an array literal of
    /// `n` elements), or a loop over them.
    fn copy_array(&mut self, to: Var, from: Var, prec: Prec, rhs: &Expr) {
        if let Expr::Array(items) = strip_ref(rhs) {
            for k in 0..items.elems.len() {
                let index = Atom::Int(k as u128);
                let value = self.let_("e", Kind::Float(prec), Rhs::Index(from, index));
                self.emit(Stmt::Store {
                    array: to,
                    index,
                    value,
                });
            }
            return;
        }
        let n = self.let_("n", Kind::Int, Rhs::Len(to));
        let index = self.func.new_var("k", Kind::Int, false);
        self.blocks.push(Vec::new());
        let value = self.let_("e", Kind::Float(prec), Rhs::Index(from, Atom::Var(index)));
        self.emit(Stmt::Store {
            array: to,
            index: Atom::Var(index),
            value,
        });
        let body = Block {
            stmts: self.blocks.pop().unwrap_or_default(),
        };
        self.emit(Stmt::For {
            index,
            range: Range {
                lo: Atom::Int(0),
                hi: n,
                inclusive: false,
                adapters: vec![],
            },
            body,
            exit: vec![],
        });
    }

    fn lower_cast(&mut self, c: &syn::ExprCast) -> Option<Atom> {
        let a = match self.place_of(&c.expr) {
            // `p.n as f64` where fields are read as floats (`scalar_fields`): an integer
            // (or bool) field, checked to be one where it is read (a float field cast would
            // lose its derivative: it is read with a typed `let` instead)
            Some((root, path))
                if self.scalar_fields
                    && !path.is_empty()
                    && self.func.params.iter().any(|p| p.var == root && p.active) =>
            {
                let n = self.read_place_as(root, path, Kind::Int);
                let func: syn::ExprPath =
                    syn::parse_quote_spanned!(c.expr.span()=> ::ferrax::__private::int_field);
                let span = c.expr.span();
                self.let_(
                    "n",
                    Kind::Int,
                    Rhs::Call {
                        func,
                        args: vec![Arg {
                            atom: n,
                            borrow: false,
                        }],
                        mode: CallMode::Primal,
                        span,
                    },
                )
            }
            _ => self.value(&c.expr),
        };
        let target = match type_kind(&c.ty) {
            Ok(k) => k,
            Err(msg) => {
                self.cx.error(&c.ty, msg);
                return Some(Atom::Float(0.0));
            }
        };
        let from = self.kind(a);
        Some(match (&from, &target) {
            (Kind::Float(_), Kind::Float(Prec::F32)) => self.prim(Prim::ToF32, vec![a]),
            (Kind::Float(_), Kind::Float(_)) => self.prim(Prim::ToF64, vec![a]),
            _ => self.let_("t", target, Rhs::Cast(a, (*c.ty).clone())),
        })
    }

    fn lower_method(&mut self, m: &syn::ExprMethodCall) -> Option<Atom> {
        let name = m.method.to_string();
        // `x.iter().sum()`, `.product()`, `.fold(..)`, also after `.map(..)` (`.copied()` /
        // `.cloned()` between, `sum::<f64>()` too): the loop that computes it
        let reduces = match name.as_str() {
            "sum" | "product" => m.args.is_empty(),
            "fold" => m.args.len() == 2,
            _ => false,
        };
        if reduces && is_iter_call(&m.receiver) {
            return self.lower_reduce(m);
        }
        if name == "collect" && m.args.is_empty() && is_iter_call(&m.receiver) {
            return self.lower_collect(m);
        }
        if let Some(a) = self.lower_seq_end(m) {
            return Some(a);
        }
        if let Some(t) = &m.turbofish {
            // `.item::<f32>()`: `.item()` read as that float
            let prec = match (name.as_str(), t.args.len(), t.args.first()) {
                ("item", 1, Some(syn::GenericArgument::Type(ty))) => match type_kind(ty) {
                    Ok(Kind::Float(p)) => Some(p),
                    _ => None,
                },
                _ => None,
            };
            let Some(prec) = prec else {
                return self.unsupported(
                    t,
                    "a turbofish other than `.item::<f32>()` / `.item::<f64>()`",
                );
            };
            let mut plain = m.clone();
            plain.turbofish = None;
            let a = self.lower_method(&plain)?;
            if let Atom::Var(v) = a {
                self.func.vars[v.0 as usize].kind = Kind::Float(prec);
            }
            return Some(a);
        }
        if matches!(
            name.as_str(),
            "iter"
                | "iter_mut"
                | "into_iter"
                | "enumerate"
                | "zip"
                | "map"
                | "fold"
                | "rev"
                | "step_by"
                | "filter"
                | "filter_map"
                | "flat_map"
                | "take"
                | "skip"
                | "take_while"
                | "skip_while"
                | "chain"
                | "scan"
                | "windows"
                | "chunks"
                | "count"
                | "any"
                | "all"
                | "find"
                | "position"
                | "max_by"
                | "min_by"
        ) {
            return self.unsupported(
                &m.method,
                &format!(
                    "`.{name}()` outside a `for` loop header or a `.sum()`, `.product()`, `.fold(..)` or `.collect()`"
                ),
            );
        }
        // `v.push(x)` on a Vec variable.
        if name == "push"
            && let Expr::Path(p) = &*m.receiver
            && let Some(array) = self.path_var(p)
            && m.args.len() == 1
        {
            let value = self.value(&m.args[0]);
            if self.kind(value) == Kind::Tensor
                && matches!(self.func.kind(Atom::Var(array)), Kind::Seq(Seq::Vec, _))
            {
                self.hold_tensors(array, &m.receiver);
            }
            self.emit(Stmt::Push { array, value });
            return None;
        }
        if name == "len" && m.args.is_empty() && self.is_place(&m.receiver) {
            let (root, path) = self.place_of(&m.receiver)?;
            return Some(self.let_("n", Kind::Int, Rhs::ProjectLen(root, path)));
        }
        if name == "is_empty" && m.args.is_empty() && self.is_place(&m.receiver) {
            let (root, path) = self.place_of(&m.receiver)?;
            let n = self.let_("n", Kind::Int, Rhs::ProjectLen(root, path));
            return Some(self.prim(Prim::Eq, vec![n, Atom::Int(0)]));
        }
        // `self.g(args)` in a method, `p.g(args)` on a struct parameter, `layer.g(args)` on a
        // part of one (`for layer in &self.layers`), not a tensor's method: a call of the
        // method `g` on it, whose type only rustc knows (through its `#[grad]` counterparts
        // where an argument is active)
        if self.is_place(&m.receiver) && !known_method(&name) {
            let (method, recv, args) = (&m.method, &m.receiver, m.args.iter());
            let path = syn::Ident::new(crate::ir::METHOD, method.span());
            let call = quote::quote_spanned!(method.span()=> #path::#method(&#recv, #(#args),*));
            return match syn::parse2::<syn::ExprCall>(call) {
                Ok(call) => self.lower_call(&call),
                Err(_) => self.unsupported(m, "this method call"),
            };
        }
        let recv = self.value(&m.receiver);
        let rk = self.kind(recv);
        if name == "to_vec"
            && m.args.is_empty()
            && let (Atom::Var(v), Kind::Seq(_, p)) = (recv, &rk)
        {
            return Some(self.let_("v", Kind::Seq(Seq::Vec, *p), Rhs::NewSeq(NewSeq::CopyOf(v))));
        }
        if name == "len"
            && m.args.is_empty()
            && let (Atom::Var(v), Kind::Seq(..)) = (recv, &rk)
        {
            return Some(self.let_("n", Kind::Int, Rhs::Len(v)));
        }
        if rk == Kind::Tensor {
            return self.lower_tensor_method(m, recv);
        }
        let struct_params = self
            .func
            .params
            .iter()
            .any(|p| p.active && self.struct_root(p.var));
        if let (Kind::Float(_), Atom::Var(_), true) =
            (&rk, recv, self.scalar_fields && struct_params)
            && tensor_only(&name, m.args.len())
        {
            // `p.w.relu()` where fields are read as floats (`scalar_fields`)
            self.cx.error(
                &m.method,
                format!(
                    "`.{name}()` is a tensor method, but this value is a float: in a function that takes, returns and makes no tensor (it calls no `.item()`), the fields of a parameter struct are read as floats; read a tensor field with its type first (`let w: &Tensor = &p.w;`)"
                ),
            );
            return Some(recv);
        }
        if let (Kind::Float(_), Some(p)) = (&rk, Prim::from_method(&name)) {
            let args: Vec<Atom> = m.args.iter().map(|a| self.value(a)).collect();
            let arity = crate::primitives::row(p).arity;
            if args.len() + 1 != arity {
                self.cx.error(
                    &m.method,
                    format!("`.{name}` takes {} argument(s)", arity - 1),
                );
                return Some(Atom::Float(0.0));
            }
            let mut all = vec![recv];
            all.extend(args);
            return Some(self.prim(p, all));
        }
        let kind = if rk == Kind::Int {
            Kind::Int
        } else {
            Kind::Opaque
        };
        let args = self.method_args(m);
        Some(self.let_(
            "m",
            kind,
            Rhs::Method {
                recv,
                method: m.method.clone(),
                args,
                span: m.method.span(),
            },
        ))
    }

    /// The arguments of a method kept as written, borrowed where written so (`&pads`).
    fn method_args(&mut self, m: &syn::ExprMethodCall) -> Vec<Arg> {
        m.args
            .iter()
            .map(|a| match a {
                Expr::Reference(r) if r.mutability.is_none() => Arg {
                    atom: self.value(&r.expr),
                    borrow: true,
                },
                e => Arg {
                    atom: self.value(e),
                    borrow: false,
                },
            })
            .collect()
    }

    /// `outs.last().unwrap()` / `outs.first().expect(..)` of a sequence of tensors: the
    /// element at its end (a panic naming the method where the sequence is empty).
    fn lower_seq_end(&mut self, m: &syn::ExprMethodCall) -> Option<Atom> {
        let Expr::MethodCall(end) = &*m.receiver else {
            return None;
        };
        let which = end.method.to_string();
        let unwraps = (m.method == "unwrap" && m.args.is_empty())
            || (m.method == "expect" && m.args.len() == 1);
        if !unwraps
            || !matches!(which.as_str(), "first" | "last")
            || !end.args.is_empty()
            || !self.is_place(&end.receiver)
        {
            return None;
        }
        let (root, mut path) = self.place_of(&end.receiver)?;
        if !path.is_empty() || !self.tensor_seqs.contains(&root) {
            return None;
        }
        let n = self.let_("n", Kind::Int, Rhs::ProjectLen(root, vec![]));
        let id = syn::Ident::new("__ferrax_len", Span::mixed_site().located_at(end.span()));
        let msg = format!("`.{which}()` of an empty Vec of tensors");
        self.emit(Stmt::Effect(Effect {
            tokens: quote::quote_spanned!(m.span()=> ::core::assert!(#id != 0, #msg)),
            binds: vec![(id, n)],
            examples: None,
            name: "assert".into(),
        }));
        let index = if which == "first" {
            Atom::Int(0)
        } else {
            self.prim(Prim::Sub, vec![n, Atom::Int(1)])
        };
        path.push(Proj::Index(index));
        Some(self.read_place(root, path))
    }

    /// A method on a tensor: a primitive, or one of the inactive queries.
    /// `x.var()`, `x.std()`, `x.norm()` and their `_axis(axis, keepdim)` forms, as the
    /// runtime computes them: `var` the mean of the squared deviations from the mean (kept
    /// along the axis), `std` its square root, `norm` the square root of the sum of
    /// squares. `None` for other methods.
    fn lower_statistic(&mut self, name: &str, recv: Atom, args: &[Atom]) -> Option<Atom> {
        let axis = match (name, args.len()) {
            ("var" | "std" | "norm", 0) => None,
            ("var_axis" | "std_axis" | "norm_axis", 2) => Some((args[0], args[1])),
            _ => return None,
        };
        let squares = |p: &mut Self, x: Atom| p.prim(Prim::Mul, vec![x, x]);
        let out = if name.starts_with("norm") {
            let sq = squares(self, recv);
            let total = match axis {
                None => self.prim(Prim::Sum, vec![sq]),
                Some((a, keep)) => self.prim(Prim::SumAxis, vec![sq, a, keep]),
            };
            return Some(self.prim(Prim::Sqrt, vec![total]));
        } else {
            let mean = match axis {
                None => self.prim(Prim::Mean, vec![recv]),
                Some((a, _)) => self.prim(Prim::MeanAxis, vec![recv, a, Atom::Bool(true)]),
            };
            let d = self.prim(Prim::Sub, vec![recv, mean]);
            let sq = squares(self, d);
            match axis {
                None => self.prim(Prim::Mean, vec![sq]),
                Some((a, keep)) => self.prim(Prim::MeanAxis, vec![sq, a, keep]),
            }
        };
        Some(if name.starts_with("std") {
            self.prim(Prim::Sqrt, vec![out])
        } else {
            out
        })
    }

    /// The activation functions that are no primitive of their own (see
    /// [`ACTIVATIONS`]), lowered to elementwise primitives in the order in which the
    /// runtime's methods (`runtime/src/ops/activation.rs`) compute them, so that values
    /// agree bit for bit. `None` for other methods.
    fn lower_activation(&mut self, name: &str, x: Atom, args: &[Atom]) -> Option<Atom> {
        use Prim::*;
        if !ACTIVATIONS.contains(&(name, args.len())) {
            return None;
        }
        let f = Atom::Float;
        // `select(x > 0, x, alpha * expm1(select(x > 0, 0, x)))`: the inner select keeps
        // `expm1` of a large `x` (and an infinite coefficient) out of the gradient
        let elu = |p: &mut Self, alpha: Atom| {
            let pos = p.prim(Gt, vec![x, f(0.0)]);
            let safe = p.prim(Select, vec![pos, f(0.0), x]);
            let e = p.prim(ExpM1, vec![safe]);
            let neg = p.prim(Mul, vec![alpha, e]);
            p.prim(Select, vec![pos, x, neg])
        };
        // `min(max(x + 3, 0), 6) / 6`, clamping as `clamp` does (no gradient at the corners)
        let hard_sigmoid = |p: &mut Self| {
            let s = p.prim(Add, vec![x, f(3.0)]);
            let c = p.prim(Clamp, vec![s, f(0.0), f(6.0)]);
            p.prim(Div, vec![c, f(6.0)])
        };
        Some(match name {
            "square" => self.prim(Mul, vec![x, x]),
            "log_sigmoid" => {
                let n = self.prim(Neg, vec![x]);
                let sp = self.prim(Softplus, vec![n]);
                self.prim(Neg, vec![sp])
            }
            "silu" => {
                let s = self.prim(Sigmoid, vec![x]);
                self.prim(Mul, vec![x, s])
            }
            "gelu" => {
                let a = self.prim(Mul, vec![x, f(std::f64::consts::FRAC_1_SQRT_2)]);
                let e = self.prim(Erf, vec![a]);
                let s = self.prim(Add, vec![f(1.0), e]);
                let h = self.prim(Mul, vec![f(0.5), s]);
                self.prim(Mul, vec![x, h])
            }
            "gelu_tanh" => {
                let cube = self.prim(Powi, vec![x, Atom::Int(3)]);
                let c = self.prim(Mul, vec![f(0.044715), cube]);
                let inner = self.prim(Add, vec![x, c]);
                let a = self.prim(Mul, vec![f(0.797_884_560_802_865_4), inner]);
                let t = self.prim(Tanh, vec![a]);
                let s = self.prim(Add, vec![f(1.0), t]);
                let h = self.prim(Mul, vec![f(0.5), s]);
                self.prim(Mul, vec![x, h])
            }
            "elu" => elu(self, args[0]),
            "selu" => {
                let e = elu(self, f(1.673_263_242_354_377_3));
                self.prim(Mul, vec![f(1.050_700_987_355_480_5), e])
            }
            "leaky_relu" => {
                let keep = self.prim(Ge, vec![x, f(0.0)]);
                let neg = self.prim(Mul, vec![args[0], x]);
                self.prim(Select, vec![keep, x, neg])
            }
            "softsign" => {
                let a = self.prim(Abs, vec![x]);
                let d = self.prim(Add, vec![f(1.0), a]);
                self.prim(Div, vec![x, d])
            }
            "mish" => {
                let sp = self.prim(Softplus, vec![x]);
                let t = self.prim(Tanh, vec![sp]);
                self.prim(Mul, vec![x, t])
            }
            "relu6" => self.prim(Clamp, vec![x, f(0.0), f(6.0)]),
            "hard_sigmoid" => hard_sigmoid(self),
            "hard_silu" => {
                let h = hard_sigmoid(self);
                self.prim(Mul, vec![x, h])
            }
            // `select(x > 1, 1, select(x < -1, -1, x))`: the gradient is 1 at ±1, as JAX's
            _ => {
                let below = self.prim(Lt, vec![x, f(-1.0)]);
                let low = self.prim(Select, vec![below, f(-1.0), x]);
                let above = self.prim(Gt, vec![x, f(1.0)]);
                self.prim(Select, vec![above, f(1.0), low])
            }
        })
    }

    /// Products, traces, outer products and least squares, lowered to other primitives in the order in
    /// which the runtime's methods compute them (`runtime/src/ops/recurrence.rs`,
    /// `linalg.rs`). A running product is the linear recurrence with the factors as decay
    /// and the first factor as input, so its derivative needs no division. `None` for
    /// other methods.
    fn lower_composite(
        &mut self,
        m: &syn::ExprMethodCall,
        name: &str,
        x: Atom,
        args: &[Atom],
    ) -> Option<Atom> {
        use Prim::*;
        if !COMPOSITES.contains(&(name, args.len())) {
            return None;
        }
        let minus_one = |p: &mut Self| p.prim(Neg, vec![Atom::Int(1)]);
        // ones shaped like `x`, carrying no derivative
        let ones_like = |p: &mut Self, x: Atom| {
            let fixed = p.prim(StopGradient, vec![x]);
            p.let_(
                "ones",
                Kind::Tensor,
                Rhs::Method {
                    recv: fixed,
                    method: syn::Ident::new("ones_like", m.method.span()),
                    args: vec![],
                    span: m.method.span(),
                },
            )
        };
        // `where(shift(ones, ±1) == 0, x, 0)` then the recurrence with `x` as decay
        let running = |p: &mut Self, x: Atom, axis: Atom, rev: bool| {
            let ones = ones_like(p, x);
            let step = if rev { minus_one(p) } else { Atom::Int(1) };
            let later = p.prim(Shift, vec![ones, step, axis]);
            let first = p.prim(Eq, vec![later, Atom::Float(0.0)]);
            let input = p.prim(Select, vec![first, x, Atom::Float(0.0)]);
            p.prim(if rev { LinRecRev } else { LinRec }, vec![input, x, axis])
        };
        // the gather at the running extremum's index (which carries no derivative)
        let extremum = |p: &mut Self, x: Atom, axis: Atom, method: &str, rev: bool| {
            let fixed = p.prim(StopGradient, vec![x]);
            let arg = |atom| Arg {
                atom,
                borrow: false,
            };
            let idx = p.let_(
                "idx",
                Kind::Tensor,
                Rhs::Method {
                    recv: fixed,
                    method: syn::Ident::new(method, m.method.span()),
                    args: vec![arg(axis), arg(Atom::Bool(rev))],
                    span: m.method.span(),
                },
            );
            p.prim(TakeAlong, vec![x, axis, idx])
        };
        // `m + ln(s)`: `m` the running maximum (constant), `s` the recurrence of
        // `e^(x - m)` with decays `e^(m[t -+ 1] - m[t])`
        let log_sum_exp = |p: &mut Self, x: Atom, axis: Atom, rev: bool| {
            let fixed = p.prim(StopGradient, vec![x]);
            let top = extremum(p, fixed, axis, "cumargmax", rev);
            // centred on the running maximum where it is finite, else on 0 (a lane of -inf
            // so far sums to 0, whose log is -inf, as JAX's; +inf stays +inf)
            // (`|m| < inf`, not `m - m == 0`, which a GPU compiler may fold to true)
            let size = p.prim(Abs, vec![top]);
            let finite = p.prim(Lt, vec![size, Atom::Float(f64::INFINITY)]);
            let m = p.prim(Select, vec![finite, top, Atom::Float(0.0)]);
            let step = if rev { minus_one(p) } else { Atom::Int(1) };
            let before = p.prim(Shift, vec![m, step, axis]);
            let gap = p.prim(Sub, vec![before, m]);
            let decay = p.prim(Exp, vec![gap]);
            let centred = p.prim(Sub, vec![x, m]);
            let input = p.prim(Exp, vec![centred]);
            let s = p.prim(
                if rev { LinRecRev } else { LinRec },
                vec![input, decay, axis],
            );
            // a sum of nothing (every value so far -inf) is -inf, its cotangent 0, not 0/0
            let empty = p.prim(Eq, vec![s, Atom::Float(0.0)]);
            let safe = p.prim(Select, vec![empty, Atom::Float(1.0), s]);
            let ln = p.prim(Ln, vec![safe]);
            let sum = p.prim(Add, vec![m, ln]);
            p.prim(Select, vec![empty, Atom::Float(f64::NEG_INFINITY), sum])
        };
        // the first of the running products from the end, summed over its one element
        // to drop (or keep) the axis
        let along = |p: &mut Self, x: Atom, axis: Atom, keep: Atom| {
            let r = running(p, x, axis, true);
            let first = p.prim(Slice, vec![r, axis, Atom::Int(0), Atom::Int(1)]);
            p.prim(SumAxis, vec![first, axis, keep])
        };
        Some(match name {
            "cummax" => extremum(self, x, args[0], "cumargmax", false),
            "cummin" => extremum(self, x, args[0], "cumargmin", false),
            "logcumsumexp" => log_sum_exp(self, x, args[0], false),
            "logcumsumexp_rev" => log_sum_exp(self, x, args[0], true),
            "cumprod" => running(self, x, args[0], false),
            "cumprod_rev" => running(self, x, args[0], true),
            "prod_axis" => along(self, x, args[0], args[1]),
            "prod" => {
                let flat = self.prim(Flatten, vec![x]);
                along(self, flat, Atom::Int(0), Atom::Bool(false))
            }
            // over the flattened tensor, as the runtime's `logsumexp`
            "logsumexp" => {
                let flat = self.prim(Flatten, vec![x]);
                self.prim(LogSumExpAxis, vec![flat, Atom::Int(0), Atom::Bool(false)])
            }
            // the gather at each segment's extremum (its position carries no derivative),
            // -inf (+inf) where no id names a segment (the position past the last row), as
            // the runtime's
            "segment_max" | "segment_min" => {
                let largest = name == "segment_max";
                let fixed = self.prim(StopGradient, vec![x]);
                let at = self.prim(
                    SegmentArg,
                    vec![fixed, args[0], args[1], Atom::Bool(largest)],
                );
                let empty = if largest {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                };
                self.prim(TakeAlongOr, vec![x, Atom::Int(0), at, Atom::Float(empty)])
            }
            // `pinv(a) b`, as the runtime's `lstsq`
            "lstsq" => {
                let p = self.prim(Pinv, vec![x]);
                self.prim(Matmul, vec![p, args[0]])
            }
            "trace" => {
                let d = self.prim(Diagonal, vec![x]);
                let last = minus_one(self);
                self.prim(SumAxis, vec![d, last, Atom::Bool(false)])
            }
            // `outer`
            _ => {
                let last = minus_one(self);
                let column = self.prim(Unsqueeze, vec![x, last]);
                let two = self.prim(Neg, vec![Atom::Int(2)]);
                let row = self.prim(Unsqueeze, vec![args[0], two]);
                self.prim(Mul, vec![column, row])
            }
        })
    }

    fn lower_tensor_method(&mut self, m: &syn::ExprMethodCall, recv: Atom) -> Option<Atom> {
        let name = m.method.to_string();
        if (name == "clone" || name == "contiguous") && m.args.is_empty() {
            return Some(recv);
        }
        let inactive = match name.as_str() {
            "item" => Some(Kind::Float(Prec::Infer)),
            "numel" | "len" | "ndim" => Some(Kind::Int),
            "argmax_axis" | "argmin_axis" | "cumargmax" | "cumargmin" | "argsort"
            | "top_k_indices" | "one_hot" | "zeros_like" | "ones_like" | "full_like"
            | "scalar_like" => Some(Kind::Tensor),
            "shape" | "dims" | "to_vec" | "dtype" | "device" | "is_empty" | "strides" => {
                Some(Kind::Opaque)
            }
            _ => None,
        };
        let args: Vec<Atom> = m.args.iter().map(|a| self.value(a)).collect();
        if let Some(kind) = inactive {
            // no derivative flows through these (JAX cannot differentiate them either)
            let recv = self.prim(Prim::StopGradient, vec![recv]);
            let args = args
                .into_iter()
                .map(|atom| Arg {
                    atom,
                    borrow: false,
                })
                .collect();
            return Some(self.let_(
                "m",
                kind,
                Rhs::Method {
                    recv,
                    method: m.method.clone(),
                    args,
                    span: m.method.span(),
                },
            ));
        }
        // pooling: the windows' patches (padding read as -inf for a max), reduced
        if (name == "max_pool" || name == "avg_pool") && args.len() == 2 {
            let (fill, reduce) = if name == "max_pool" {
                (f64::NEG_INFINITY, Prim::MaxAxis)
            } else {
                (0.0, Prim::MeanAxis)
            };
            let patches = self.prim(
                Prim::Unfold,
                vec![recv, args[0], args[1], Atom::Float(fill)],
            );
            let last = self.prim(Prim::Neg, vec![Atom::Int(1)]);
            return Some(self.prim(reduce, vec![patches, last, Atom::Bool(false)]));
        }
        if let Some(out) = self.lower_statistic(&name, recv, &args) {
            return Some(out);
        }
        if let Some(out) = self.lower_activation(&name, recv, &args) {
            return Some(out);
        }
        if let Some(out) = self.lower_composite(m, &name, recv, &args) {
            return Some(out);
        }
        // `x.sort(axis)` / `x.top_k(k)`: a gather at the sorting indices (which carry no
        // derivative, as in JAX)
        if (name == "sort" || name == "top_k") && args.len() == 1 {
            let (method, axis) = if name == "sort" {
                ("argsort", args[0])
            } else {
                ("top_k_indices", self.prim(Prim::Neg, vec![Atom::Int(1)]))
            };
            let fixed = self.prim(Prim::StopGradient, vec![recv]);
            let indices = self.let_(
                "idx",
                Kind::Tensor,
                Rhs::Method {
                    recv: fixed,
                    method: syn::Ident::new(method, m.method.span()),
                    args: vec![Arg {
                        atom: args[0],
                        borrow: false,
                    }],
                    span: m.method.span(),
                },
            );
            return Some(self.prim(Prim::TakeAlong, vec![recv, axis, indices]));
        }
        match Prim::from_tensor_method(&name, args.len()) {
            Some(Prim::CumSum) => {
                let reverse = Atom::Bool(name == "cumsum_rev");
                Some(self.prim(Prim::CumSum, vec![recv, args[0], reverse]))
            }
            // `x.unfold(&window, &spec)`: padding read as zeros
            Some(Prim::Unfold) => {
                Some(self.prim(Prim::Unfold, vec![recv, args[0], args[1], Atom::Float(0.0)]))
            }
            // `a.solve(&b)`: factored once, for the solve and for its derivatives
            Some(Prim::LuSolve) => {
                let factors = self.prim(Prim::LuFactor, vec![recv]);
                Some(self.prim(
                    Prim::LuSolve,
                    vec![factors, recv, args[0], Atom::Bool(false)],
                ))
            }
            // `a.logabsdet()`: from the factors
            Some(Prim::LuLogAbsDet) => {
                let factors = self.prim(Prim::LuFactor, vec![recv]);
                Some(self.prim(Prim::LuLogAbsDet, vec![factors, recv]))
            }
            // `a.eigvalsh()`: the values of the packed decomposition
            Some(Prim::Eigvalsh) => {
                let packed = self.prim(Prim::EighFactor, vec![recv]);
                Some(self.prim(Prim::Eigvalsh, vec![packed, recv]))
            }
            Some(Prim::Qr) => {
                self.cx.error(
                    &m.method,
                    "`.qr()` returns `q` and `r`: destructure them where it is called, `let (q, r) = a.qr();`",
                );
                Some(recv)
            }
            Some(Prim::Svd) => {
                self.cx.error(
                    &m.method,
                    "`.svd()` returns `u`, `s` and `vt`: destructure them where it is called, `let (u, s, vt) = a.svd();` (or write `a.svdvals()` for the singular values alone)",
                );
                Some(recv)
            }
            // `a.svdvals()`: the values of the packed decomposition
            Some(Prim::Svdvals) => {
                let packed = self.prim(Prim::SvdFactor, vec![recv]);
                Some(self.prim(Prim::Svdvals, vec![packed, recv]))
            }
            // `a.det()`: sign · exp(log |det a|), from one factorization
            Some(Prim::LuSign) => {
                let factors = self.prim(Prim::LuFactor, vec![recv]);
                let sign = self.prim(Prim::LuSign, vec![factors]);
                let log = self.prim(Prim::LuLogAbsDet, vec![factors, recv]);
                let size = self.prim(Prim::Exp, vec![log]);
                Some(self.prim(Prim::Mul, vec![sign, size]))
            }
            // `a.inv()`: a solve with the identity
            Some(Prim::EyeLike) => {
                let factors = self.prim(Prim::LuFactor, vec![recv]);
                let eye = self.prim(Prim::EyeLike, vec![recv]);
                Some(self.prim(Prim::LuSolve, vec![factors, recv, eye, Atom::Bool(false)]))
            }
            Some(p) => {
                let mut all = vec![recv];
                all.extend(args);
                Some(self.prim(p, all))
            }
            None if name == "slogdet" && args.is_empty() => {
                self.cx.error(
                    &m.method,
                    "`.slogdet()` returns the sign and log |det a|: destructure them where it is called, `let (sign, log) = a.slogdet();` (or write `a.logabsdet()` or `a.det()`)",
                );
                Some(recv)
            }
            None if name == "eigh" && args.is_empty() => {
                self.cx.error(
                    &m.method,
                    "`.eigh()` returns the eigenvalues and the eigenvectors: destructure them where it is called, `let (w, v) = a.eigh();` (or write `a.eigvalsh()` for the eigenvalues alone)",
                );
                Some(recv)
            }
            None if name == "eigh_packed" || name == "qr_packed" || name == "svd_packed" => {
                self.cx.error(
                    &m.method,
                    format!("`.{name}()` is not differentiated: write `let (w, v) = a.eigh();`, `let (q, r) = a.qr();` or `let (u, s, vt) = a.svd();`, which the transforms decompose once for every factor and their derivatives"),
                );
                Some(recv)
            }
            None if name == "lu_factor" || name == "lu_solve" => {
                self.cx.error(
                    &m.method,
                    format!(
                        "`.{name}()` is not differentiated: packed LU factors carry no derivative. Write `a.solve(&b)`, which the transforms factor once and reuse for its derivatives"
                    ),
                );
                Some(recv)
            }
            None => {
                self.cx.error(
                    &m.method,
                    format!(
                        "`.{name}()` with {} argument(s) is not a tensor method #[grad] can differentiate. Supported: {}; wrap inactive values in `stop_gradient(..)`",
                        args.len(),
                        Prim::tensor_method_names()
                    ),
                );
                Some(recv)
            }
        }
    }

    fn lower_call(&mut self, c: &syn::ExprCall) -> Option<Atom> {
        let Expr::Path(p) = &*c.func else {
            return self.unsupported(&c.func, "calling anything but a function by name");
        };
        let segs = crate::ir::segments(p);
        let last = segs.last().cloned().unwrap_or_default();
        if segs.len() == 1
            && p.qself.is_none()
            && let Some(Bind::Closure(f, defined)) = self.lookup_bind(&last)
        {
            return self.call_closure(c, f, defined);
        }
        if last == "stop_gradient" && c.args.len() == 1 {
            let a = self.value(&c.args[0]);
            return Some(self.prim(Prim::StopGradient, vec![a]));
        }
        if segs.len() == 2
            && segs[0] == "Tensor"
            && (last == "concat" || last == "stack")
            && c.args.len() == 2
        {
            let Expr::Array(parts) = strip_ref(&c.args[0]) else {
                // a Vec of tensors built here (`outs.push(h)`)
                let mark = self.cx.mark();
                let seq = self.value(strip_ref(&c.args[0]));
                if self.cx.mark() > mark {
                    return Some(seq);
                }
                if self.kind(seq) != Kind::Struct {
                    return self.unsupported(
                        &c.args[0],
                        "joining anything but an array of tensors (`Tensor::concat(&[&a, &b], axis)`) or a `Vec` of tensors built by `push`",
                    );
                }
                let axis = self.value(&c.args[1]);
                let p = if last == "concat" {
                    Prim::ConcatSeq
                } else {
                    Prim::StackSeq
                };
                return Some(self.prim(p, vec![axis, seq]));
            };
            let axis = self.value(&c.args[1]);
            let mut args = vec![axis];
            args.extend(parts.elems.iter().map(|e| self.value(e)));
            let p = if last == "concat" {
                Prim::Concat
            } else {
                Prim::Stack
            };
            return Some(self.prim(p, args));
        }
        if segs.len() == 2 && segs[0] == "Tensor" && last == "einsum" && c.args.len() == 2 {
            let Expr::Array(parts) = strip_ref(&c.args[1]) else {
                return self.unsupported(
                    &c.args[1],
                    "einsum's operands as anything but an array of tensors (`Tensor::einsum(\"ij,jk->ik\", &[&a, &b])`)",
                );
            };
            // a literal spec is checked here, so a malformed one is an error at its span
            if let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(spec),
                ..
            }) = &c.args[0]
                && let Err(e) = ferrax_einsum_spec::Spec::parse(&spec.value(), parts.elems.len())
            {
                self.cx
                    .error(spec, format!("einsum spec {:?}: {e}", spec.value()));
            }
            let mut args = vec![self.value(&c.args[0])];
            args.extend(parts.elems.iter().map(|e| self.value(e)));
            return Some(self.prim(Prim::Einsum, args));
        }
        if segs.len() == 2 && segs[0] == "Tensor" && last == "where_" && c.args.len() == 3 {
            let args: Vec<Atom> = c.args.iter().map(|a| self.value(a)).collect();
            return Some(self.prim(Prim::Select, args));
        }
        if segs.len() == 2 && segs[0] == "Vec" && (last == "new" || last == "with_capacity") {
            let capacity = c.args.first().map(|a| self.value(a));
            return Some(self.let_(
                "v",
                Kind::Seq(Seq::Vec, Prec::Infer),
                Rhs::NewSeq(NewSeq::Empty { capacity }),
            ));
        }
        if segs.len() == 2
            && (segs[0] == "f64" || segs[0] == "f32")
            && let Some(prim) = Prim::from_method(&last)
        {
            let args: Vec<Atom> = c.args.iter().map(|a| self.value(a)).collect();
            if args.len() == crate::primitives::row(prim).arity {
                return Some(self.prim(prim, args));
            }
        }
        let mut args = Vec::new();
        for a in &c.args {
            let (inner, borrow) = match a {
                Expr::Reference(r) if r.mutability.is_none() => (&*r.expr, true),
                Expr::Reference(r) => {
                    self.cx.error(
                        r,
                        "passing `&mut` to a function is not supported in a #[grad] function",
                    );
                    (&*r.expr, true)
                }
                e => (e, false),
            };
            // A part of a struct passed on (`g(&p.a1, x)`, `g(cfg.k)`): a differentiable
            // value to the callee, which takes a tangent for it, even out of a struct this
            // function does not differentiate (bind it with `let` first to pass a plain
            // value: `let n = cfg.n;`).
            let atom = match self.is_place(inner).then(|| self.place_of(inner)).flatten() {
                Some((root, path)) if !path.is_empty() => {
                    let kind = match (self.scalar_fields, borrow) {
                        (false, _) => Kind::Tensor,
                        (true, true) => Kind::Seq(Seq::Slice, Prec::Infer),
                        (true, false) => Kind::Float(Prec::Infer),
                    };
                    self.read_place_as(root, path, kind)
                }
                _ => self.value(inner),
            };
            args.push(Arg { atom, borrow });
        }
        let floaty = args.iter().any(|a| self.kind(a.atom).is_differentiable());
        // (a struct passed whole gives a tensor, as far as the macro knows, unless the
        // function takes and returns no tensor: `self.part(x)` in a model of floats)
        let tensory = args.iter().any(|a| match self.kind(a.atom) {
            Kind::Tensor => true,
            Kind::Struct => !self.scalar_fields,
            _ => false,
        });
        let kind = if tensory || segs.first().is_some_and(|s| s == "Tensor") {
            Kind::Tensor
        } else if floaty {
            Kind::Float(Prec::Infer)
        } else {
            Kind::Opaque
        };
        Some(self.let_(
            "r",
            kind,
            Rhs::Call {
                func: p.clone(),
                args,
                mode: CallMode::Primal,
                span: p.span(),
            },
        ))
    }

    fn lower_macro(&mut self, mac: &syn::Macro) -> Option<Atom> {
        let name = macro_name(mac);
        match name.as_deref() {
            Some("vec") => self.lower_vec(mac),
            Some("dbg") => self.lower_dbg(mac),
            Some(n) if EFFECTS.contains(&n) => {
                self.lower_effect(mac, n);
                None
            }
            _ => {
                let name = mac.path.to_token_stream().to_string().replace(' ', "");
                self.cx.error(
                    mac,
                    format!("`{name}!` is not supported in a #[grad] function (the macros that are: {MACROS})"),
                );
                Some(Atom::Float(0.0))
            }
        }
    }

    /// A sequence of tensors holding `items` (`vec![a, b]`, `[a, b]`): a Vec, pushed one by
    /// one.
    fn tensor_seq_of(&mut self, items: Vec<Atom>) -> Atom {
        let n = Atom::Int(items.len() as u128);
        let v = self.func.new_var("v", Kind::Struct, true);
        self.emit(Stmt::Let {
            var: v,
            rhs: Rhs::NewSeq(NewSeq::Empty { capacity: Some(n) }),
        });
        self.tensor_seqs.insert(v);
        for value in items {
            self.emit(Stmt::Push { array: v, value });
        }
        Atom::Var(v)
    }

    /// `vec![v; n]`, or `vec![a, b, ..]` (an array, copied into a Vec).
    fn lower_vec(&mut self, mac: &syn::Macro) -> Option<Atom> {
        let repeat: syn::Result<(Expr, Expr)> =
            mac.parse_body_with(|input: syn::parse::ParseStream| {
                let v: Expr = input.parse()?;
                input.parse::<syn::Token![;]>()?;
                let n: Expr = input.parse()?;
                Ok((v, n))
            });
        if let Ok((v, n)) = repeat {
            let value = self.value(&v);
            let len = self.value(&n);
            let kind = match self.kind(value) {
                Kind::Float(p) => Kind::Seq(Seq::Vec, p),
                _ => Kind::Opaque,
            };
            return Some(self.let_("v", kind, Rhs::NewSeq(NewSeq::Filled { value, len })));
        }
        let list = mac.parse_body_with(Punctuated::<Expr, syn::Token![,]>::parse_terminated);
        let Ok(list) = list else {
            return self.unsupported(
                mac,
                "this form of `vec!` (write `vec![v; n]` or `vec![a, b, ..]`)",
            );
        };
        if list.is_empty() {
            return self.unsupported(
                mac,
                "an empty `vec![]` (write `Vec::new()` or `Vec::with_capacity(n)`)",
            );
        }
        let items: Vec<Atom> = list.iter().map(|e| self.value(e)).collect();
        if self.kind(items[0]) == Kind::Tensor {
            return Some(self.tensor_seq_of(items));
        }
        let Kind::Float(p) = self.kind(items[0]) else {
            return self.unsupported(mac, "`vec![a, b, ..]` of anything but floats");
        };
        let array = self.let_(
            "a",
            Kind::Seq(Seq::Array, p),
            Rhs::NewSeq(NewSeq::ArrayOf(items)),
        );
        let Atom::Var(array) = array else {
            unreachable!("let_ makes a variable")
        };
        Some(self.let_(
            "v",
            Kind::Seq(Seq::Vec, p),
            Rhs::NewSeq(NewSeq::CopyOf(array)),
        ))
    }

    /// A struct literal (`Gate { scale: 2.0, power: n }`): a value without a derivative,
    /// its fields evaluated in order (a field with a derivative is reported by
    /// `check_activity`).
    fn lower_struct(&mut self, s: &syn::ExprStruct) -> Option<Atom> {
        if let Some(rest) = &s.rest {
            return self.unsupported(rest, "a struct literal with `..base` (name every field)");
        }
        if s.qself.is_some() {
            return self.unsupported(s, "a struct literal with a qualified path");
        }
        let fields = s
            .fields
            .iter()
            .map(|f| (f.member.clone(), self.value(&f.expr)))
            .collect();
        let v = self.let_(
            "s",
            Kind::Opaque,
            Rhs::Struct {
                path: s.path.clone(),
                fields,
            },
        );
        if let Atom::Var(var) = v {
            self.func.vars[var.0 as usize].span = Some(s.span());
        }
        Some(v)
    }

    /// `dbg!(e)`: the value of `e`, printed the way `std::dbg!` prints it (to stderr, with
    /// the file, line and expression) where the primal computation runs.
    fn lower_dbg(&mut self, mac: &syn::Macro) -> Option<Atom> {
        let span = mac.span();
        let list = mac.parse_body_with(Punctuated::<Expr, syn::Token![,]>::parse_terminated);
        let (tokens, binds, value) = match list {
            Ok(list) if list.is_empty() => (
                quote::quote_spanned!(span=> ::std::eprintln!("[{}:{}:{}]", ::std::file!(), ::std::line!(), ::std::column!())),
                vec![],
                None,
            ),
            Ok(list) if list.len() == 1 => {
                let e = &list[0];
                let v = self.value(e);
                let id = syn::Ident::new("__ferrax_dbg", Span::mixed_site().located_at(span));
                (
                    quote::quote_spanned!(span=> ::std::eprintln!("[{}:{}:{}] {} = {:#?}", ::std::file!(), ::std::line!(), ::std::column!(), ::std::stringify!(#e), #id)),
                    vec![(id, v)],
                    Some(v),
                )
            }
            _ => {
                // (no placeholder value: `let (a, b) = dbg!(a, b)` gets this error alone)
                self.cx.error(
                    mac,
                    "`dbg!` of several values is not supported in a #[grad] function: write one `dbg!(v)` per value",
                );
                return None;
            }
        };
        self.emit(Stmt::Effect(Effect {
            tokens,
            binds,
            examples: None,
            name: "dbg".into(),
        }));
        value
    }

    /// A printing or checking macro, kept as written, with each of the user's names its
    /// tokens read (format strings' `{x}` included) bound to its value at this point.
    fn lower_effect(&mut self, mac: &syn::Macro, name: &str) {
        let mut names = Vec::new();
        names_read(mac.tokens.clone(), &mut names);
        let mut binds: Vec<(syn::Ident, Atom)> = Vec::new();
        for ident in names {
            let key = ident.to_string();
            if binds.iter().any(|(n, _)| *n == key) {
                continue;
            }
            match self.lookup_bind(&key) {
                None => continue,
                Some(Bind::Closure(..)) => {
                    self.cx.error(
                        &ident,
                        format!("`{key}` is a closure, which a #[grad] function lowers where it is called: it cannot be read inside `{name}!`; call it outside the macro and print its value"),
                    );
                    continue;
                }
                Some(Bind::Var(_) | Bind::Place(..)) => {}
            }
            let path = syn::ExprPath {
                attrs: vec![],
                qself: None,
                path: ident.clone().into(),
            };
            let value = self.lower_path(&path);
            binds.push((ident, value));
        }
        self.emit(Stmt::Effect(Effect {
            tokens: mac.to_token_stream(),
            binds,
            examples: None,
            name: name.into(),
        }));
    }

    fn lower_block(&mut self, b: &syn::Block) -> Option<Atom> {
        self.scopes.push(HashMap::new());
        let v = self.lower_stmts(&b.stmts);
        self.scopes.pop();
        v
    }

    /// Lowers a block into a block of its own, returning it with its value.
    fn sub_block(&mut self, b: &syn::Block) -> (Block, Option<Atom>) {
        self.push_block();
        let v = self.lower_block(b);
        (self.pop_block(), v)
    }

    /// `x[a..b]` (also `a..`, `..b`, `..`, `a..=b`) of a float sequence, or of such a
    /// view: a view ([`Rhs::SubSlice`]) that reads its base wherever it is used.
    fn lower_subslice(&mut self, ix: &syn::ExprIndex) -> Option<Atom> {
        let Expr::Range(r) = &*ix.index else {
            return self.unsupported(ix, "this index");
        };
        let base = self.value(&ix.expr);
        if matches!(base, Atom::Var(b) if self.tensor_seqs.contains(&b)) {
            return self.unsupported(
                ix,
                "a sub-slice of a Vec of tensors (index its elements, `outs[i]`, or stack it whole and slice the tensor: `Tensor::stack(&outs, 0).slice(0, a, b)`)",
            );
        }
        let (Atom::Var(b), Kind::Seq(..)) = (base, self.kind(base)) else {
            return self.unsupported(
                &ix.expr,
                "slicing anything but a float slice, Vec or array (or a slice of one)",
            );
        };
        let lo = match &r.start {
            Some(e) => self.value(e),
            None => Atom::Int(0),
        };
        let hi = match (&r.end, &r.limits) {
            (None, _) => self.let_("n", Kind::Int, Rhs::Len(b)),
            (Some(e), syn::RangeLimits::HalfOpen(_)) => self.value(e),
            (Some(e), syn::RangeLimits::Closed(_)) => {
                let e = self.value(e);
                self.prim(Prim::Add, vec![e, Atom::Int(1)])
            }
        };
        Some(self.view(b, lo, hi))
    }

    /// A view `&seq[lo..hi]` of a float sequence.
    fn view(&mut self, seq: Var, lo: Atom, hi: Atom) -> Atom {
        let info = self.func.info(seq);
        let (name, kind) = match info.kind {
            Kind::Seq(_, p) => (format!("{}_part", info.name), Kind::Seq(Seq::Slice, p)),
            _ => unreachable!("views are of float sequences"),
        };
        let view = self.let_(&name, kind, Rhs::SubSlice(seq, lo, hi));
        if let Atom::Var(v) = view {
            self.func.vars[v.0 as usize].view = Some((seq, lo, hi));
        }
        view
    }

    fn lower_if(&mut self, i: &syn::ExprIf) -> Option<Atom> {
        if let Expr::Let(l) = &*i.cond {
            // `if let P = e { a } else { b }` is `match e { P => { a } _ => b }`
            let (pat, scrut, then) = (&l.pat, &l.expr, &i.then_branch);
            let els: Expr = match &i.else_branch {
                Some((_, e)) => (**e).clone(),
                None => syn::parse_quote!({}),
            };
            let tokens = quote::quote!(match #scrut { #pat => #then, _ => #els });
            return match syn::parse2::<syn::ExprMatch>(tokens) {
                Ok(m) => self.lower_match(&m),
                Err(_) => self.unsupported(l, "this `if let`"),
            };
        }
        let cond = self.value(&i.cond);
        let (mut then, tv) = self.sub_block(&i.then_branch);
        let (mut els, ev) = match &i.else_branch {
            None => (Block::default(), None),
            Some((_, e)) => {
                self.push_block();
                let v = match &**e {
                    Expr::Block(b) => self.lower_block(&b.block),
                    other => self.lower_expr(other),
                };
                (self.pop_block(), v)
            }
        };
        let values: Vec<Atom> = tv.into_iter().chain(ev).collect();
        let result = match self.join_kinds(&values) {
            Some(kind) => {
                let r = self.result_var("v", kind);
                if let Some(t) = tv {
                    then.stmts.push(Stmt::Assign { var: r, value: t });
                }
                if let Some(e) = ev {
                    els.stmts.push(Stmt::Assign { var: r, value: e });
                }
                Some(r)
            }
            None => None,
        };
        self.emit(Stmt::If { cond, then, els });
        result.map(|r| self.copy(r))
    }

    fn lower_match(&mut self, m: &syn::ExprMatch) -> Option<Atom> {
        let scrut = self.value(&m.expr);
        // (`match p.act { .. }`: a field matched on is an enum or an integer)
        if let Atom::Var(v) = scrut {
            self.retag_fresh_field(v, Kind::Opaque);
        }
        let sk = self.kind(scrut);
        if sk.is_differentiable() {
            self.cx.error(&m.expr, "`match` on a float is not supported: match on integers, bools or enums, or use if/else");
        }
        // the value, assigned in each arm; declared before the match once its kind is known
        let r = self.func.new_var("v", Kind::Opaque, true);
        let mut values = Vec::new();
        let arms = self.lower_arms(scrut, &sk, &m.arms, r, &mut values);
        let kind = self.join_kinds(&values);
        if let Some(kind) = &kind {
            self.func.vars[r.0 as usize].kind = kind.clone();
            self.emit(Stmt::Let {
                var: r,
                rhs: Self::zero_of(kind),
            });
        }
        self.emit(Stmt::Match { scrut, arms });
        kind.map(|_| self.copy(r))
    }

    /// The kind of a value that is one of `values` (an `if`'s or a `match`'s arms): see
    /// [`join_kind_list`].
    fn join_kinds(&self, values: &[Atom]) -> Option<Kind> {
        join_kind_list(values.iter().map(|a| self.kind(*a)).collect())
    }

    /// Lowers match arms, each assigning its value to `r` (the values found go to
    /// `values`). An arm with a guard runs its body where the guard holds, and otherwise a
    /// match of the arms after it, as Rust falls through to them; those arms are lowered
    /// a second time there, their errors reported once.
    fn lower_arms(
        &mut self,
        scrut: Atom,
        sk: &Kind,
        arms: &[syn::Arm],
        r: Var,
        values: &mut Vec<Atom>,
    ) -> Vec<Arm> {
        let mut out = Vec::new();
        for (k, arm) in arms.iter().enumerate() {
            self.scopes.push(HashMap::new());
            let mut pat = arm.pat.clone();
            let mut binds = Vec::new();
            self.rename_bindings(&mut pat, &mut binds, sk);
            self.push_block();
            let Some((_, guard)) = &arm.guard else {
                let v = self.lower_expr(&arm.body);
                self.assign_arm_value(r, v, values);
                let body = self.pop_block();
                self.scopes.pop();
                out.push(Arm { pat, binds, body });
                continue;
            };
            let cond = self.value(guard);
            self.push_block();
            let v = self.lower_expr(&arm.body);
            self.assign_arm_value(r, v, values);
            let then = self.pop_block();
            // the arms after this one, without this arm's bindings in scope
            let own = self.scopes.pop();
            self.push_block();
            let mark = self.cx.mark();
            let mut rest = self.lower_arms(scrut, sk, &arms[k + 1..], r, values);
            self.cx.forget_since(mark);
            rest.push(Arm {
                pat: syn::parse_quote!(_),
                binds: vec![],
                body: Block {
                    stmts: vec![Stmt::Effect(Effect {
                        tokens: quote::quote!(::core::unreachable!(
                            "a match fell through every arm after a guard"
                        )),
                        binds: vec![],
                        examples: None,
                        name: "unreachable".into(),
                    })],
                },
            });
            self.emit(Stmt::Match { scrut, arms: rest });
            let els = self.pop_block();
            self.scopes.extend(own);
            self.emit(Stmt::If { cond, then, els });
            let body = self.pop_block();
            self.scopes.pop();
            out.push(Arm { pat, binds, body });
        }
        out
    }

    /// Assigns an arm's value, if it has one, to the match's variable.
    fn assign_arm_value(&mut self, r: Var, v: Option<Atom>, values: &mut Vec<Atom>) {
        if let Some(v) = v {
            values.push(v);
            self.emit(Stmt::Assign { var: r, value: v });
        }
    }

    /// Gives every name a pattern binds a variable of its own, renaming it in the pattern.
    fn rename_bindings(&mut self, pat: &mut Pat, binds: &mut Vec<Var>, scrut: &Kind) {
        match pat {
            Pat::Ident(pi) => {
                let name = pi.ident.to_string();
                let looks_like_binding = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_lowercase() || c == '_');
                if looks_like_binding && pi.subpat.is_none() {
                    let kind = if *scrut == Kind::Int || *scrut == Kind::Bool {
                        scrut.clone()
                    } else {
                        Kind::Opaque
                    };
                    let var = self.func.new_var(&name, kind, false);
                    self.bind(name, var);
                    binds.push(var);
                    pi.ident = crate::emit::var_ident(&self.func, var);
                    pi.mutability = None;
                } else if let Some((_, sub)) = &mut pi.subpat {
                    self.rename_bindings(sub, binds, scrut);
                }
            }
            Pat::Or(o) => {
                for c in o.cases.iter_mut() {
                    self.rename_bindings(c, binds, scrut);
                }
            }
            Pat::Tuple(t) => {
                for c in t.elems.iter_mut() {
                    self.rename_bindings(c, binds, &Kind::Opaque);
                }
            }
            Pat::TupleStruct(t) => {
                for c in t.elems.iter_mut() {
                    self.rename_bindings(c, binds, &Kind::Opaque);
                }
            }
            Pat::Struct(s) => {
                for f in s.fields.iter_mut() {
                    if f.colon_token.is_none() {
                        // `Foo { x }` is shorthand for `Foo { x: x }`.
                        f.colon_token = Some(Default::default());
                    }
                    self.rename_bindings(&mut f.pat, binds, &Kind::Opaque);
                }
            }
            Pat::Paren(p) => self.rename_bindings(&mut p.pat, binds, scrut),
            Pat::Reference(r) => self.rename_bindings(&mut r.pat, binds, scrut),
            _ => {}
        }
    }

    // ---------- loops ----------

    fn open_loop(&mut self, label: Option<&syn::Label>) -> (Var, Var, usize) {
        let brk = self.func.new_var("brk", Kind::Bool, true);
        let cont = self.func.new_var("cont", Kind::Bool, true);
        self.loops.push(LoopCtx {
            label: label.map(|l| l.name.ident.to_string()),
            brk,
            cont,
            value: None,
        });
        (brk, cont, self.exits.len())
    }

    /// Finishes a loop: declares its flags, computes its exits, emits `make(body, exits)`.
    fn close_loop(
        &mut self,
        body: Block,
        before: usize,
        always_exit: bool,
        make: impl FnOnce(Block, Vec<Var>) -> Stmt,
    ) -> Option<Var> {
        let ctx = self.loops.pop()?;
        let mut exits: Vec<Var> = self.exits[before..]
            .iter()
            .copied()
            .filter(|f| *f != ctx.cont)
            .collect();
        if always_exit {
            exits.push(ctx.brk);
        }
        exits.sort();
        exits.dedup();
        let mut kept = self.exits[..before].to_vec();
        kept.extend(
            self.exits[before..]
                .iter()
                .copied()
                .filter(|f| *f != ctx.brk && *f != ctx.cont),
        );
        self.exits = kept;
        self.emit(Stmt::Let {
            var: ctx.brk,
            rhs: Rhs::Atom(Atom::Bool(false)),
        });
        self.emit(Stmt::Let {
            var: ctx.cont,
            rhs: Rhs::Atom(Atom::Bool(false)),
        });
        if let Some(v) = ctx.value {
            let rhs = Self::zero_of(&self.func.info(v).kind);
            self.emit(Stmt::Let { var: v, rhs });
        }
        let mut body = body;
        body.stmts.insert(
            0,
            Stmt::Assign {
                var: ctx.cont,
                value: Atom::Bool(false),
            },
        );
        self.emit(make(body, exits));
        ctx.value
    }

    fn lower_loop(&mut self, l: &syn::ExprLoop) -> Option<Atom> {
        let (_, _, before) = self.open_loop(l.label.as_ref());
        let (body, _) = self.sub_block(&l.body);
        let value = self.close_loop(body, before, false, |body, exit| Stmt::Loop { body, exit });
        value.map(|v| self.copy(v))
    }

    fn lower_while(&mut self, w: &syn::ExprWhile) {
        if let Expr::Let(l) = &*w.cond {
            self.unsupported(l, "`while let`");
            return;
        }
        let (brk, _, before) = self.open_loop(w.label.as_ref());
        self.push_block();
        let c = self.value(&w.cond);
        let (then, _) = self.sub_block(&w.body);
        self.emit(Stmt::If {
            cond: c,
            then,
            els: Block {
                stmts: vec![Stmt::Assign {
                    var: brk,
                    value: Atom::Bool(true),
                }],
            },
        });
        let body = self.pop_block();
        self.close_loop(body, before, true, |body, exit| Stmt::Loop { body, exit });
    }

    /// `<iterable>.sum()`, `.product()` and `.fold(init, |acc, v| ..)`, also of
    /// `<iterable>.map(|pat| ..)`, for whatever a `for` iterates over (`x.iter()` with
    /// `.enumerate()`/`.zip(..)`, ranges): the loop `let mut acc = init; for pat in
    /// iterable { acc = acc + v; }` (or `* v`, or the fold's body), which every transform
    /// already handles. The closures' bodies become the loop's body.
    fn lower_reduce(&mut self, m: &syn::ExprMethodCall) -> Option<Atom> {
        let name = m.method.to_string();
        // the fold's initial value and closure
        let fold = if name == "fold" {
            let f = self.lambda(
                &m.args[1],
                2,
                "`.fold(..)` with anything but a closure `|acc, v| ..` or a function by path (`f64::max`)",
            )?;
            Some((&m.args[0], f))
        } else {
            None
        };
        let (iterable, map) = self.split_map(&m.receiver)?;
        // the accumulator: the fold's initial value, or 0 or 1 of the kind of the values
        // (known once they are lowered)
        let (init, kind) = match fold {
            Some((init, _)) => {
                let a = self.value(init);
                (a, self.kind(a))
            }
            None => (
                Atom::Float(if name == "sum" { 0.0 } else { 1.0 }),
                Kind::Float(Prec::F64),
            ),
        };
        if !matches!(kind, Kind::Float(_) | Kind::Tensor) {
            return self.unsupported(
                &m.args[0],
                "`.fold(..)` from a value other than a float or a tensor",
            );
        }
        let (range, binds) = self.lower_iter(iterable)?;
        let seq = match (&binds[..], &map, &fold) {
            ([LoopBind::Seq(seq)], None, None) => Some(*seq),
            (_, None, None) => {
                return self.unsupported(
                    m,
                    &format!("`.{name}()` of this iterator (reduce a float sequence's `.iter()`, or `.map(..)` it to floats first)"),
                );
            }
            _ => None,
        };
        let acc = self.func.new_var("acc", kind, true);
        self.emit(Stmt::Let {
            var: acc,
            rhs: Rhs::Atom(init),
        });
        // (a sum or product of tensors starts from the first: `started` says it has)
        let started = self.func.new_var("started", Kind::Bool, true);
        self.emit(Stmt::Let {
            var: started,
            rhs: Rhs::Atom(Atom::Bool(false)),
        });
        let (index, before) = self.open_for(None);
        // the element: a sequence's or the map's value; a fold without a map binds it
        // itself, by its own pattern
        let element = self.element(seq, map.as_ref(), index, &binds);
        let new = match &fold {
            None => {
                let value = element.expect("a sum or product has its element");
                // the accumulator takes the values' kind (f32 or f64) before it is read
                let kind = self.kind(value);
                let op = if name == "sum" { Prim::Add } else { Prim::Mul };
                if kind == Kind::Tensor {
                    return Some(
                        self.reduce_tensors(acc, started, value, op, index, range, before, m),
                    );
                }
                if !matches!(kind, Kind::Float(_)) {
                    let at: &dyn quote::ToTokens = match &map {
                        Some(c) => &c.closure.body,
                        None => m,
                    };
                    return self.refuse_in_for(
                        at,
                        &format!("`.{name}()` of values other than floats and tensors"),
                    );
                }
                self.func.vars[acc.0 as usize].kind = kind;
                let old = self.copy(acc);
                self.prim(op, vec![old, value])
            }
            Some((_, f)) => {
                let old = self.copy(acc);
                self.lambda_value(f, |this, pats| {
                    this.bind_value_pat(pats[0], old);
                    match element {
                        Some(value) => this.bind_value_pat(pats[1], value),
                        None => this.bind_loop_pat(pats[1], index, &binds),
                    }
                })
            }
        };
        let kind = self.kind(new);
        if let Some((_, f)) = &fold
            && !matches!(kind, Kind::Float(_) | Kind::Tensor)
        {
            return self.refuse_in_for(
                &f.closure.body,
                "`.fold()` of values other than floats and tensors",
            );
        }
        self.func.vars[acc.0 as usize].kind = kind;
        self.emit(Stmt::Assign {
            var: acc,
            value: new,
        });
        self.close_for(index, range, before);
        Some(self.copy(acc))
    }

    /// The rest of a `.sum()` or `.product()` of tensors (`layers.iter().map(|l|
    /// l.w.powi(2).sum()).sum()`), from the first value `value` in the loop: the accumulator
    /// is the first value, then `acc op value`; after the loop, as `impl Sum for Tensor`, a
    /// panic if there was none (a sum of no tensors has no shape, dtype or device).
    #[allow(clippy::too_many_arguments)]
    fn reduce_tensors(
        &mut self,
        acc: Var,
        started: Var,
        value: Atom,
        op: Prim,
        index: Var,
        range: Range,
        before: usize,
        m: &syn::ExprMethodCall,
    ) -> Atom {
        self.func.vars[acc.0 as usize].kind = Kind::Tensor;
        let go_on = self.copy(started);
        self.push_block();
        let old = self.copy(acc);
        let new = self.prim(op, vec![old, value]);
        self.emit(Stmt::Assign {
            var: acc,
            value: new,
        });
        let then = self.pop_block();
        let els = Block {
            stmts: vec![
                Stmt::Assign { var: acc, value },
                Stmt::Assign {
                    var: started,
                    value: Atom::Bool(true),
                },
            ],
        };
        self.emit(Stmt::If {
            cond: go_on,
            then,
            els,
        });
        self.close_for(index, range, before);
        // (the accumulator before the first value: a tensor to overwrite)
        for st in self.blocks.iter_mut().flatten() {
            if let Stmt::Let { var, rhs } = st
                && *var == acc
            {
                *rhs = tensor_placeholder();
            }
        }
        let id = syn::Ident::new("__ferrax_started", Span::mixed_site().located_at(m.span()));
        let msg = format!(
            "`.{}()` of no tensors: it has no shape, dtype or device; fold from a zero instead (`.fold(x.scalar_like(0.0), |a, b| a + b)`)",
            m.method
        );
        let started = self.copy(started);
        self.emit(Stmt::Effect(Effect {
            tokens: quote::quote_spanned!(m.span()=> ::core::assert!(#id, #msg)),
            binds: vec![(id, started)],
            examples: None,
            name: "assert".into(),
        }));
        self.copy(acc)
    }

    /// `<iterable>.map(f)` as the iterable and the closure, or `e` and no closure; `None`
    /// (reported) for a `.map` of something else than a closure the loop can take.
    fn split_map<'e>(&mut self, e: &'e Expr) -> Option<(&'e Expr, Option<Lambda>)> {
        match e {
            Expr::MethodCall(mm) if mm.method == "map" && mm.args.len() == 1 => {
                let f = self.lambda(
                    &mm.args[0],
                    1,
                    "`.map(..)` of anything but a closure `|v| ..` or a function by path (`f64::exp`, `sq`)",
                )?;
                Some((&*mm.receiver, Some(f)))
            }
            e => Some((e, None)),
        }
    }

    /// `e` as a closure of `n` parameters to lower in place: a closure written there, or
    /// the name of one bound by `let`; `None`, reported with `what`, for anything else.
    fn lambda(&mut self, e: &Expr, n: usize, what: &str) -> Option<Lambda> {
        let (closure, defined) = match e {
            Expr::Closure(c) => (Box::new(c.clone()), None),
            Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                match self.lookup_bind(&p.path.segments[0].ident.to_string()) {
                    Some(Bind::Closure(c, defined)) => (c, Some(defined)),
                    Some(_) => {
                        self.unsupported(e, what);
                        return None;
                    }
                    // a function by name (`.map(sq)`): `|v| sq(v)`
                    None => (Box::new(path_closure(p, n)), None),
                }
            }
            // `f64::max`, `f32::exp`, `module::f`: as a closure calling it
            Expr::Path(p) if p.qself.is_none() => (Box::new(path_closure(p, n)), None),
            _ => {
                self.unsupported(e, what);
                return None;
            }
        };
        if let Err((at, why)) = inlinable_closure(&closure, n) {
            self.unsupported(at, why);
            return None;
        }
        Some(Lambda { closure, defined })
    }

    /// [`Lowerer::apply_lambda`] for a closure whose value is needed (a map's, a fold's).
    fn lambda_value(&mut self, f: &Lambda, bind: impl FnOnce(&mut Self, &[&Pat])) -> Atom {
        match self.apply_lambda(f, bind) {
            Some(v) => v,
            None => {
                self.cx
                    .error(&f.closure.body, "this closure has no value here");
                Atom::Float(0.0)
            }
        }
    }

    /// The value of `f`'s body (`None` for `()`), lowered in the names of its definition
    /// (or here, for a closure written here) after `bind` binds its parameters' patterns.
    fn apply_lambda(&mut self, f: &Lambda, bind: impl FnOnce(&mut Self, &[&Pat])) -> Option<Atom> {
        let here = f
            .defined
            .clone()
            .map(|d| std::mem::replace(&mut self.scopes, d));
        self.scopes.push(HashMap::new());
        let pats: Vec<&Pat> = f.closure.inputs.iter().map(untyped).collect();
        bind(self, &pats);
        let value = self.lower_expr(&f.closure.body);
        self.scopes.pop();
        if let Some(here) = here {
            self.scopes = here;
        }
        value
    }

    /// `<iterable>.collect()` (into a Vec), also of `<iterable>.map(|pat| ..)`: the loop
    /// `let mut v = Vec::new(); for pat in iterable { v.push(value); }`.
    fn lower_collect(&mut self, m: &syn::ExprMethodCall) -> Option<Atom> {
        let (iterable, map) = self.split_map(&m.receiver)?;
        let (range, binds) = self.lower_iter(iterable)?;
        let seq = match (&binds[..], &map) {
            ([LoopBind::Seq(seq)], None) => Some(*seq),
            (_, None) => {
                return self.unsupported(
                    m,
                    "`.collect()` of this iterator (collect a float sequence's `.iter()`, or `.map(..)` it to floats first)",
                );
            }
            _ => None,
        };
        let out = self
            .func
            .new_var("v", Kind::Seq(Seq::Vec, Prec::Infer), true);
        self.emit(Stmt::Let {
            var: out,
            rhs: Rhs::NewSeq(NewSeq::Empty { capacity: None }),
        });
        let (index, before) = self.open_for(None);
        let value = self
            .element(seq, map.as_ref(), index, &binds)
            .expect("a sequence or a map: the others were refused");
        let kind = match self.kind(value) {
            Kind::Float(prec) => Kind::Seq(Seq::Vec, prec),
            // a Vec of tensors
            Kind::Tensor => {
                self.tensor_seqs.insert(out);
                Kind::Struct
            }
            _ => {
                let at: &dyn quote::ToTokens = match &map {
                    Some(c) => &c.closure.body,
                    None => m,
                };
                return self
                    .refuse_in_for(at, "`.collect()` of values other than floats and tensors");
            }
        };
        self.func.vars[out.0 as usize].kind = kind;
        self.emit(Stmt::Push { array: out, value });
        self.close_for(index, range, before);
        if self.tensor_seqs.contains(&out) {
            let v = self.let_("v", Kind::Struct, Rhs::Atom(Atom::Var(out)));
            self.same_seq(v.var()?, Atom::Var(out));
            return Some(v);
        }
        // the Vec handed on is a copy, so that the one built can still size its adjoint
        // (as a Vec moved into a new binding is copied)
        let kind = self.func.info(out).kind.clone();
        Some(self.let_("v", kind, Rhs::NewSeq(NewSeq::CopyOf(out))))
    }

    /// Inside an iterator's loop at `index`: the element of `seq` (a plain sequence), or
    /// the value of the `.map(..)` closure with its pattern bound to what the loop yields;
    /// `None` with neither.
    fn element(
        &mut self,
        seq: Option<Var>,
        map: Option<&Lambda>,
        index: Var,
        binds: &[LoopBind],
    ) -> Option<Atom> {
        match (seq, map) {
            (Some(seq), _) => {
                let Kind::Seq(_, prec) = self.func.info(seq).kind else {
                    unreachable!("lower_iter binds sequences of floats")
                };
                Some(self.let_("e", Kind::Float(prec), Rhs::Index(seq, Atom::Var(index))))
            }
            (None, Some(f)) => {
                Some(self.lambda_value(f, |this, pats| this.bind_loop_pat(pats[0], index, binds)))
            }
            (None, None) => None,
        }
    }

    /// A call of a closure bound by `let`: its arguments lowered here, its body lowered in
    /// the names of its definition (`defined`) with its parameters bound to them.
    fn call_closure(
        &mut self,
        c: &syn::ExprCall,
        f: Box<syn::ExprClosure>,
        defined: Vec<HashMap<String, Bind>>,
    ) -> Option<Atom> {
        if c.args.len() != f.inputs.len() {
            return self.unsupported(
                c,
                "a call of a closure with another number of arguments than its parameters",
            );
        }
        let args: Vec<Atom> = c.args.iter().map(|a| self.value(a)).collect();
        let f = Lambda {
            closure: f,
            defined: Some(defined),
        };
        self.apply_lambda(&f, |this, pats| {
            for (p, a) in pats.iter().zip(args) {
                this.bind_value_pat(p, a);
            }
        })
    }

    /// Binds a closure parameter's pattern (a name or `_`) to `value`.
    fn bind_value_pat(&mut self, pat: &Pat, value: Atom) {
        match pat {
            Pat::Wild(_) => {}
            Pat::Ident(pi) if pi.subpat.is_none() => {
                let kind = self.kind(value);
                let Atom::Var(v) = self.let_(&pi.ident.to_string(), kind, Rhs::Atom(value)) else {
                    unreachable!("let_ makes a variable")
                };
                self.bind_ident(&pi.ident, v);
            }
            other => {
                self.cx
                    .error(other, "this closure parameter must be a name or `_`");
            }
        }
    }

    fn lower_for(&mut self, f: &syn::ExprForLoop) {
        let Some((range, binds)) = self.lower_iter(&f.expr) else {
            return;
        };
        let (index, before) = self.open_for(f.label.as_ref());
        self.bind_loop_pat(&f.pat, index, &binds);
        let v = self.lower_block(&f.body);
        let _ = v;
        self.close_for(index, range, before);
    }

    /// Opens a `for` loop: its flags, its index, a scope and a block for its body.
    fn open_for(&mut self, label: Option<&syn::Label>) -> (Var, usize) {
        let (_, _, before) = self.open_loop(label);
        let index = self.func.new_var("i", Kind::Int, false);
        self.scopes.push(HashMap::new());
        self.push_block();
        (index, before)
    }

    /// Abandons what [`Lowerer::open_for`] opened, refusing `what` at `at`.
    fn refuse_in_for(&mut self, at: &dyn quote::ToTokens, what: &str) -> Option<Atom> {
        self.pop_block();
        self.scopes.pop();
        self.loops.pop();
        self.unsupported(at, what)
    }

    /// Closes what [`Lowerer::open_for`] opened, emitting the loop over `range`.
    fn close_for(&mut self, index: Var, range: Range, before: usize) {
        let body = self.pop_block();
        self.scopes.pop();
        self.close_loop(body, before, false, |body, exit| Stmt::For {
            index,
            range,
            body,
            exit,
        });
    }

    /// The range a `for` iterates over, and what each element binds:
    /// the index itself (`None`) or elements of sequences (`Some(seq)`), in tuple order.
    fn lower_iter(&mut self, e: &Expr) -> Option<(Range, Vec<LoopBind>)> {
        // Peel adapters off the end of the chain.
        let mut adapters = Vec::new();
        let mut cur = e;
        loop {
            match cur {
                Expr::Paren(p) => cur = &p.expr,
                Expr::MethodCall(m) if m.method == "rev" && m.args.is_empty() => {
                    adapters.push(Adapter::Rev);
                    cur = &m.receiver;
                }
                Expr::MethodCall(m) if m.method == "step_by" && m.args.len() == 1 => {
                    let s = self.value(&m.args[0]);
                    adapters.push(Adapter::StepBy(s));
                    cur = &m.receiver;
                }
                _ => break,
            }
        }
        adapters.reverse();
        if let Expr::Range(r) = cur {
            let (Some(lo), Some(hi)) = (&r.start, &r.end) else {
                self.unsupported(r, "an open range in `for` (write `a..b`)");
                return None;
            };
            let lo = self.int_value(lo);
            let hi = self.int_value(hi);
            let inclusive = matches!(r.limits, syn::RangeLimits::Closed(_));
            return Some((
                Range {
                    lo,
                    hi,
                    inclusive,
                    adapters,
                },
                vec![LoopBind::Index],
            ));
        }
        // `.skip(k)` / `.take(k)` after the sequences (and `.enumerate()`, whose count stays
        // the element's index): bounds of the walk, applied from the innermost
        let mut bounds = Vec::new();
        while let Expr::MethodCall(m) = cur
            && m.args.len() == 1
            && (m.method == "skip" || m.method == "take")
        {
            bounds.push((m.method == "skip", &m.args[0]));
            cur = &m.receiver;
        }
        // Sequences: x.iter(), x.iter().enumerate(), x.iter().zip(y.iter()), &x, x, and
        // sequences inside structs (`&p.layers`, `cfg.w.iter()`)
        let (seqs, enumerate) = self.seq_chain(cur)?;
        if enumerate
            && !adapters.is_empty()
            && adapters.iter().any(|a| matches!(a, Adapter::StepBy(_)))
        {
            self.unsupported(e, "`step_by` after `enumerate`");
            return None;
        }
        let mut len = self.seq_len(&seqs[0]);
        for s in &seqs[1..] {
            let l2 = self.seq_len(s);
            len = self.int_method(len, "min", l2);
        }
        let mut lo = Atom::Int(0);
        for (skip, k) in bounds.into_iter().rev() {
            let k = self.int_value(k);
            let moved = self.prim(Prim::Add, vec![lo, k]);
            let moved = self.int_method(moved, "min", len);
            if skip {
                lo = moved;
            } else {
                len = moved;
            }
        }
        let mut binds: Vec<LoopBind> = Vec::new();
        if enumerate {
            binds.push(LoopBind::Index);
        }
        binds.extend(seqs);
        Some((
            Range {
                lo,
                hi: len,
                inclusive: false,
                adapters,
            },
            binds,
        ))
    }

    /// The length of a sequence a loop walks.
    fn seq_len(&mut self, b: &LoopBind) -> Atom {
        let rhs = match b {
            LoopBind::Seq(v) => Rhs::Len(*v),
            LoopBind::Place(root, path) => Rhs::ProjectLen(*root, path.clone()),
            LoopBind::Parts(seq, size, parts) => {
                let n = self.let_("n", Kind::Int, Rhs::Len(*seq));
                return match parts {
                    // len + 1 - size windows, none when the sequence is shorter
                    Parts::Windows => {
                        let n1 = self.prim(Prim::Add, vec![n, Atom::Int(1)]);
                        self.int_method(n1, "saturating_sub", *size)
                    }
                    Parts::Chunks => self.int_method(n, "div_ceil", *size),
                    Parts::ChunksExact => self.prim(Prim::Div, vec![n, *size]),
                };
            }
            LoopBind::Index => unreachable!("an index is no sequence"),
        };
        self.let_("n", Kind::Int, rhs)
    }

    /// `recv.method(arg)` on integers (`min`, `div_ceil`), kept as written.
    fn int_method(&mut self, recv: Atom, method: &str, arg: Atom) -> Atom {
        let rhs = Rhs::Method {
            recv,
            method: syn::Ident::new(method, Span::call_site()),
            args: vec![Arg {
                atom: arg,
                borrow: false,
            }],
            span: Span::call_site(),
        };
        self.let_("n", Kind::Int, rhs)
    }

    /// `x.windows(k)`, `x.chunks(k)`, `x.chunks_exact(k)` of a float sequence (or a view):
    /// checked as Rust checks `k`, then one view per iteration.
    fn parts(&mut self, m: &syn::ExprMethodCall, parts: Parts) -> Option<LoopBind> {
        let (seqs, enumerate) = self.seq_chain(&m.receiver)?;
        let [LoopBind::Seq(seq)] = seqs.as_slice() else {
            self.unsupported(
                m,
                "windows or chunks of anything but a float slice, Vec, array or view",
            );
            return None;
        };
        if enumerate {
            self.unsupported(m, "windows or chunks of an enumerated iterator");
            return None;
        }
        let size = self.value(&m.args[0]);
        let what = if parts == Parts::Windows {
            "window"
        } else {
            "chunk"
        };
        let id = syn::Ident::new("__ferrax_size", Span::mixed_site().located_at(m.span()));
        let msg = format!("{what} size must be non-zero");
        self.emit(Stmt::Effect(Effect {
            tokens: quote::quote_spanned!(m.span()=> ::core::assert!(#id != 0, #msg)),
            binds: vec![(id, size)],
            examples: None,
            name: "assert".into(),
        }));
        Some(LoopBind::Parts(*seq, size, parts))
    }

    /// `x.iter()` (also `.copied()`), `&x`, `x`, `.enumerate()`, `.zip(..)`, and a sequence
    /// inside a struct (`&p.layers`, `cfg.w.iter()`): the sequences and whether enumerated.
    fn seq_chain(&mut self, e: &Expr) -> Option<(Vec<LoopBind>, bool)> {
        match e {
            Expr::Paren(p) => self.seq_chain(&p.expr),
            Expr::Reference(r) if r.mutability.is_none() => self.seq_chain(&r.expr),
            Expr::Index(ix) if matches!(&*ix.index, Expr::Range(_)) => {
                match self.lower_subslice(ix)? {
                    Atom::Var(v) if matches!(self.func.info(v).kind, Kind::Seq(..)) => {
                        Some((vec![LoopBind::Seq(v)], false))
                    }
                    _ => None,
                }
            }
            e if self.is_place(e) => {
                match self.place_of(e)? {
                    (root, path) if !path.is_empty() || self.tensor_seqs.contains(&root) => {
                        Some((vec![LoopBind::Place(root, path)], false))
                    }
                    _ => {
                        self.unsupported(e, "iterating over a whole struct (iterate one of its sequences: `&p.layers`)");
                        None
                    }
                }
            }
            Expr::Path(p) => match self.path_var(p) {
                Some(v) if matches!(self.func.info(v).kind, Kind::Seq(..)) => {
                    Some((vec![LoopBind::Seq(v)], false))
                }
                _ => {
                    self.unsupported(p, "iterating over this (iterate a range, a float slice/Vec/array, or `.iter()` of one)");
                    None
                }
            },
            Expr::MethodCall(m)
                if (m.method == "iter"
                    || m.method == "copied"
                    || m.method == "cloned"
                    || m.method == "into_iter")
                    && m.args.is_empty() =>
            {
                self.seq_chain(&m.receiver)
            }
            Expr::MethodCall(m)
                if m.args.len() == 1
                    && (m.method == "windows"
                        || m.method == "chunks"
                        || m.method == "chunks_exact") =>
            {
                let parts = match m.method.to_string().as_str() {
                    "windows" => Parts::Windows,
                    "chunks" => Parts::Chunks,
                    _ => Parts::ChunksExact,
                };
                Some((vec![self.parts(m, parts)?], false))
            }
            Expr::MethodCall(m) if m.method == "enumerate" && m.args.is_empty() => {
                let (s, en) = self.seq_chain(&m.receiver)?;
                if en {
                    self.unsupported(m, "`enumerate` twice");
                    return None;
                }
                Some((s, true))
            }
            Expr::MethodCall(m) if m.method == "rev" && m.args.is_empty() => {
                self.unsupported(
                    &m.method,
                    "`.rev()` before `.enumerate()` or `.zip(..)` (the count would run against the index; put `.rev()` last: `x.iter().enumerate().rev()` walks the same elements backwards with their indices)",
                );
                None
            }
            Expr::MethodCall(m) if m.method == "zip" && m.args.len() == 1 => {
                let (mut s, en) = self.seq_chain(&m.receiver)?;
                let (s2, en2) = self.seq_chain(&m.args[0])?;
                if en || en2 {
                    self.unsupported(m, "`zip` of an enumerated iterator (enumerate after zip)");
                    return None;
                }
                s.extend(s2);
                Some((s, false))
            }
            other => {
                self.unsupported(other, "this iterator (for loops take `a..b` with `.rev()`/`.step_by(k)`, or `x.iter()` with `.enumerate()`/`.zip(..)`, then `.skip(k)`/`.take(k)`)");
                None
            }
        }
    }

    /// Binds the loop pattern: the index, or elements read at the index.
    fn bind_loop_pat(&mut self, pat: &Pat, index: Var, binds: &[LoopBind]) {
        let pats: Vec<&Pat> = match pat {
            Pat::Tuple(t) if binds.len() > 1 => t.elems.iter().collect(),
            p => vec![p],
        };
        let nested;
        let pats = if binds.len() > 1 && pats.len() == 2 && binds.len() == 3 {
            // (i, (a, b)) from x.iter().zip(y).enumerate() is not produced; enumerate then zip gives (i, (a, b)) too.
            match pats[1] {
                Pat::Tuple(t) => {
                    nested = [pats[0]]
                        .into_iter()
                        .chain(t.elems.iter())
                        .collect::<Vec<_>>();
                    nested
                }
                _ => pats,
            }
        } else {
            pats
        };
        if pats.len() != binds.len() {
            self.cx
                .error(pat, "this pattern does not match what the loop yields");
            return;
        }
        for (p, b) in pats.into_iter().zip(binds) {
            let p = match p {
                Pat::Reference(r) => &*r.pat,
                p => p,
            };
            match b {
                LoopBind::Index => match p {
                    Pat::Ident(pi) => {
                        let info = &mut self.func.vars[index.0 as usize];
                        info.name = pi.ident.to_string();
                        self.bind_ident(&pi.ident, index);
                    }
                    Pat::Wild(_) => {}
                    other => {
                        self.cx.error(other, "a loop index must be a name or `_`");
                    }
                },
                LoopBind::Place(root, path) => match untyped_ref(p) {
                    Pat::Ident(pi) if pi.subpat.is_none() => {
                        let mut path = path.clone();
                        path.push(Proj::Index(Atom::Var(index)));
                        self.bind_place(pi.ident.to_string(), *root, path);
                    }
                    Pat::Wild(_) => {}
                    other => {
                        self.cx.error(other, "an element of a parameter struct's sequence binds a name (`for layer in &p.layers`)");
                    }
                },
                LoopBind::Seq(seq) => {
                    let kind = match &self.func.info(*seq).kind {
                        Kind::Seq(_, p) => Kind::Float(*p),
                        _ => Kind::Opaque,
                    };
                    let e = self.let_("e", kind, Rhs::Index(*seq, Atom::Var(index)));
                    self.bind_pat(p, e, None);
                }
                LoopBind::Parts(seq, size, parts) => {
                    let i = Atom::Var(index);
                    let lo = match parts {
                        Parts::Windows => i,
                        Parts::Chunks | Parts::ChunksExact => self.prim(Prim::Mul, vec![i, *size]),
                    };
                    let mut hi = self.prim(Prim::Add, vec![lo, *size]);
                    if *parts == Parts::Chunks {
                        // the last chunk may be shorter
                        let n = self.let_("n", Kind::Int, Rhs::Len(*seq));
                        hi = self.int_method(hi, "min", n);
                    }
                    let view = self.view(*seq, lo, hi);
                    match untyped_ref(p) {
                        Pat::Ident(pi) if pi.subpat.is_none() && pi.by_ref.is_none() => {
                            self.bind_pat(p, view, None)
                        }
                        Pat::Wild(_) => {}
                        other => {
                            self.cx.error(
                                other,
                                "a window or chunk binds a name (`for w in x.windows(2)`), read as `w[0]`",
                            );
                        }
                    }
                }
            }
        }
    }

    fn find_loop(&mut self, label: Option<&syn::Lifetime>, at: impl ToTokens) -> Option<usize> {
        let found = match label {
            None => self.loops.len().checked_sub(1),
            Some(l) => {
                let name = l.ident.to_string();
                self.loops
                    .iter()
                    .rposition(|c| c.label.as_deref() == Some(name.as_str()))
            }
        };
        if found.is_none() {
            self.cx.error(at, "`break`/`continue` outside of a loop");
        }
        found
    }

    fn lower_break(&mut self, b: &syn::ExprBreak) {
        let value = b.expr.as_ref().map(|e| self.value(e));
        let Some(k) = self.find_loop(b.label.as_ref(), b) else {
            return;
        };
        if let Some(v) = value {
            let var = match self.loops[k].value {
                // every `break` with a value decides the loop value's kind, not the first
                Some(var) => {
                    let kinds = vec![self.func.info(var).kind.clone(), self.kind(v)];
                    if let Some(kind) = join_kind_list(kinds) {
                        self.func.vars[var.0 as usize].kind = kind;
                    }
                    var
                }
                None => {
                    let var = self.func.new_var("lv", self.kind(v), true);
                    self.loops[k].value = Some(var);
                    var
                }
            };
            self.emit(Stmt::Assign { var, value: v });
        }
        let brk = self.loops[k].brk;
        self.emit(Stmt::Assign {
            var: brk,
            value: Atom::Bool(true),
        });
        self.exits.push(brk);
    }

    fn lower_continue(&mut self, c: &syn::ExprContinue) {
        let Some(k) = self.find_loop(c.label.as_ref(), c) else {
            return;
        };
        let cont = self.loops[k].cont;
        self.emit(Stmt::Assign {
            var: cont,
            value: Atom::Bool(true),
        });
        self.exits.push(cont);
    }

    fn lower_return(&mut self, r: &syn::ExprReturn) {
        if self.seq_ret {
            self.cx.error(
                r,
                "`return` is not supported in a function returning a sequence of floats: end the function with the sequence it returns",
            );
            return;
        }
        let Some(e) = &r.expr else {
            self.cx.error(r, "`return` needs the value of the function");
            return;
        };
        let v = self.value(e);
        if let Kind::Float(p) = self.kind(Atom::Var(self.ret_val)) {
            self.as_float(v, p);
        }
        self.emit(Stmt::Assign {
            var: self.ret_val,
            value: v,
        });
        self.emit(Stmt::Assign {
            var: self.ret_flag,
            value: Atom::Bool(true),
        });
        self.exits.push(self.ret_flag);
        self.used_return = true;
    }
}

/// Whether `e` is a call of an iterator method (`.iter()`, `.map(..)`, `.zip(..)`, ...):
/// an iterator whose `.sum()`, `.product()`, `.fold(..)` ([`Lowerer::lower_reduce`]) or
/// `.collect()` ([`Lowerer::lower_collect`]) is lowered as a loop, not a tensor's.
fn is_iter_call(e: &Expr) -> bool {
    match e {
        Expr::MethodCall(m) => match m.method.to_string().as_str() {
            "iter" | "into_iter" | "copied" | "cloned" | "enumerate" | "rev" => m.args.is_empty(),
            "map" | "zip" | "step_by" => m.args.len() == 1,
            _ => false,
        },
        _ => false,
    }
}

/// The first `return`, `break`, `continue` or `?` in `e`, if any.
fn control_flow(e: &Expr) -> Option<&Expr> {
    struct Find<'a>(Option<&'a Expr>);
    impl<'a> syn::visit::Visit<'a> for Find<'a> {
        fn visit_expr(&mut self, e: &'a Expr) {
            if self.0.is_some() {
                return;
            }
            match e {
                Expr::Return(_) | Expr::Break(_) | Expr::Continue(_) | Expr::Try(_) => {
                    self.0 = Some(e)
                }
                _ => syn::visit::visit_expr(self, e),
            }
        }
    }
    let mut f = Find(None);
    syn::visit::Visit::visit_expr(&mut f, e);
    f.0
}

/// Whether `c` can be lowered in place as a closure of `n` parameters: its body is lowered
/// where it is used (a loop's body, a call), where `return` and the like would leave the
/// function. The error's place and text.
fn inlinable_closure(
    c: &syn::ExprClosure,
    n: usize,
) -> Result<(), (&dyn quote::ToTokens, &'static str)> {
    if c.inputs.len() != n || c.asyncness.is_some() {
        return Err((
            c,
            "a closure of another number of parameters than its method passes",
        ));
    }
    match control_flow(&c.body) {
        Some(flow) => Err((
            flow,
            "`return`, `break`, `continue` or `?` inside a closure (its body is lowered where it is used)",
        )),
        None => Ok(()),
    }
}

/// A closure parameter's pattern without its type (`v: &f64` is `v`).
fn untyped(p: &Pat) -> &Pat {
    match p {
        Pat::Type(t) => &t.pat,
        p => p,
    }
}

/// The standard macros kept for their effect: printing, checks and panics.
const EFFECTS: &[&str] = &[
    "print",
    "println",
    "eprint",
    "eprintln",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "panic",
    "unreachable",
    "todo",
    "unimplemented",
];
/// The macros a #[grad] function may use, for messages.
const MACROS: &str = "`vec![v; n]`, `vec![a, b, ..]`, `dbg!(v)`, `print!` `println!` `eprint!` `eprintln!`, `assert!` `assert_eq!` `assert_ne!` and their `debug_` forms, `panic!` `unreachable!` `todo!` `unimplemented!`";

/// The name of a macro from the standard library (`println`, `std::println`), or `None`
/// for any other path.
fn macro_name(mac: &syn::Macro) -> Option<String> {
    let segs = &mac.path.segments;
    let last = segs.last()?.ident.to_string();
    let std_path = segs.len() == 1
        || (segs.len() == 2
            && ["std", "core", "alloc"].contains(&segs[0].ident.to_string().as_str()));
    std_path.then_some(last)
}

/// Every identifier in `tokens` that may name a local: all of them but method and field
/// names (after a single `.`) and path segments (after `::`), plus the names a format
/// string reads (`{x}`, `{:w$}`).
fn names_read(tokens: proc_macro2::TokenStream, out: &mut Vec<syn::Ident>) {
    use proc_macro2::TokenTree;
    let punct =
        |t: Option<&TokenTree>, c: char| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c);
    let tts: Vec<TokenTree> = tokens.into_iter().collect();
    for (k, tt) in tts.iter().enumerate() {
        let before = |n: usize| k.checked_sub(n).map(|j| &tts[j]);
        match tt {
            TokenTree::Ident(i) => {
                let member = punct(before(1), '.') && !punct(before(2), '.');
                let segment = punct(before(1), ':') && punct(before(2), ':');
                if !member && !segment {
                    out.push(i.clone());
                }
            }
            TokenTree::Group(g) => names_read(g.stream(), out),
            TokenTree::Literal(l) => {
                if let syn::Lit::Str(s) = syn::Lit::new(l.clone()) {
                    // (a name rustc would refuse is left for rustc to report)
                    for name in format_names(&s.value()) {
                        if let Ok(mut id) = syn::parse_str::<syn::Ident>(&name) {
                            id.set_span(l.span());
                            out.push(id);
                        }
                    }
                }
            }
            TokenTree::Punct(_) => {}
        }
    }
}

/// The names a format string reads: `{x}`, `{x:?}`, and widths and precisions `{:w$.p$}`.
fn format_names(s: &str) -> Vec<String> {
    let is_ident = |t: &str| {
        let mut c = t.chars();
        matches!(c.next(), Some(f) if f.is_alphabetic() || f == '_')
            && c.all(|c| c.is_alphanumeric() || c == '_')
            && t != "_"
    };
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let doubled = chars.get(i + 1) == Some(&c);
        if c != '{' || doubled {
            i += if (c == '{' || c == '}') && doubled {
                2
            } else {
                1
            };
            continue;
        }
        let Some(len) = chars[i + 1..].iter().position(|&c| c == '}') else {
            break;
        };
        let inner: String = chars[i + 1..i + 1 + len].iter().collect();
        let (arg, spec) = inner.split_once(':').unwrap_or((&inner, ""));
        if is_ident(arg.trim()) {
            out.push(arg.trim().to_string());
        }
        // `name$` in the spec: a width or precision read from a variable
        for part in spec.split('$').rev().skip(1) {
            let start = part
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            if is_ident(&part[start..]) {
                out.push(part[start..].to_string());
            }
        }
        i += len + 2;
    }
    out
}

/// A pattern without a leading `&` (`&w` binds an element of `.iter()` as `w` does).
fn untyped_ref(p: &Pat) -> &Pat {
    match p {
        Pat::Reference(r) => untyped_ref(&r.pat),
        p => p,
    }
}

/// A function named by its path as a closure of `n` arguments: a float method
/// (`f64::max`) as a method call on the first (`|a, b| a.max(b)`), anything else as a call
/// (`|a| sq(a)`).
fn path_closure(p: &syn::ExprPath, n: usize) -> syn::ExprClosure {
    let args: Vec<syn::Ident> = (0..n)
        .map(|k| quote::format_ident!("__ferrax_arg{k}", span = p.span()))
        .collect();
    let segs = &p.path.segments;
    let float_method = segs.len() == 2 && (segs[0].ident == "f64" || segs[0].ident == "f32");
    let body: Expr = match args.split_first() {
        Some((first, rest)) if float_method => {
            let method = &segs[1].ident;
            syn::parse_quote_spanned!(p.span()=> #first.#method(#(#rest),*))
        }
        _ => syn::parse_quote_spanned!(p.span()=> #p(#(#args),*)),
    };
    syn::parse_quote_spanned!(p.span()=> |#(#args),*| #body)
}

/// The kind of a value that is one of several (an `if`'s or a `match`'s arms, a loop's
/// `break` values): a tensor if one is, else a float if one is (a derivative flows through
/// any of them), else the first's.
fn join_kind_list(kinds: Vec<Kind>) -> Option<Kind> {
    if kinds.contains(&Kind::Tensor) {
        return Some(Kind::Tensor);
    }
    let float = kinds
        .iter()
        .filter_map(|k| match k {
            Kind::Float(p) => Some(*p),
            _ => None,
        })
        .reduce(Prec::join);
    match float {
        Some(p) => Some(Kind::Float(p)),
        None => kinds.into_iter().next(),
    }
}
