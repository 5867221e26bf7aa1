//! Forward mode: IR -> IR with a tangent beside every varied value.

use crate::ir::*;
use crate::primitives::{Rules, row};
use std::collections::{HashMap, HashSet};

/// The JVP of a function: its body computes both the value and the tangent.
pub struct JvpOut {
    pub func: Func,
    /// `(primal parameter, its tangent parameter)` for every active parameter, in order.
    pub tangent_params: Vec<(Var, Var)>,
    pub tangent: Atom,
    /// The span of a call whose derivative forward mode cannot take (a pullback applied,
    /// or a callee's reverse mode: forward over reverse through another function), if any.
    /// A tangent there would be missing, so callers must report it instead of emitting.
    pub unsupported_call: Option<proc_macro2::Span>,
    /// The tangent variable of every varied variable.
    pub tangents: HashMap<Var, Var>,
}

impl JvpOut {
    /// The transformed function with only what `outputs` need (dead code eliminated).
    pub fn pruned(&self, outputs: &[Atom]) -> Func {
        let mut f = self.func.clone();
        let outs: HashSet<Var> = outputs.iter().filter_map(|a| a.var()).collect();
        crate::analyse::dce(&mut f.body, &outs, &HashSet::new());
        f
    }

    /// Appends the tangent parameters to `f`'s (after the primal ones), each typed like its
    /// primal parameter in `primal` (borrowed the same way).
    pub fn push_tangent_params(&self, f: &mut Func, primal: &Func) {
        for (p, d) in &self.tangent_params {
            let Some(q) = primal.params.iter().find(|q| q.var == *p) else {
                continue;
            };
            let (ident, ty) = (crate::emit::var_ident(f, *d), q.ty.clone());
            f.params.push(Param {
                var: *d,
                ident,
                ty,
                active: false,
            });
        }
    }
}

/// Forward mode of `func`, whose varied variables are `varied`.
pub fn jvp(func: &Func, varied: &HashSet<Var>) -> JvpOut {
    jvp_with(func, varied, false)
}

/// Forward mode where a call of another `#[grad]` function becomes a primal call for the
/// value and a `CallMode::JvpTangent` call for the tangent: what `vmap` over tangents alone
/// batches (through the callee's `__ferrax_vmap0_jvpt_` counterpart) without making the
/// value differ per tangent.
pub fn jvp_splitting_calls(func: &Func, varied: &HashSet<Var>) -> JvpOut {
    jvp_with(func, varied, true)
}

fn jvp_with(func: &Func, varied: &HashSet<Var>, split_calls: bool) -> JvpOut {
    let mut t = Jvp {
        func: func.clone(),
        varied,
        tan: HashMap::new(),
        split_calls,
        unsupported_call: None,
    };
    let mut tangent_params = Vec::new();
    for p in &func.params {
        if p.active {
            let info = func.info(p.var).clone();
            let d = t
                .func
                .new_var(&format!("d{}", info.name), info.kind, info.mutable);
            t.tan.insert(p.var, d);
            tangent_params.push((p.var, d));
        }
    }
    let mut ordered: Vec<Var> = varied.iter().copied().collect();
    ordered.sort();
    for v in ordered {
        if !t.tan.contains_key(&v) {
            let info = func.info(v).clone();
            let d = t
                .func
                .new_var(&format!("{}_dot", info.name), info.kind, info.mutable);
            t.tan.insert(v, d);
            // the tangent of a view is the same view of the base's tangent
            if let Some((base, lo, hi)) = info.view {
                t.func.vars[d.0 as usize].view = Some((t.tan_var(base), lo, hi));
            }
        }
    }
    let mut body = t.block(&func.body);
    let tangent = match (t.tan_atom(func.output), func.output) {
        (Some(d), _) => d,
        // no active path to a tensor output: its tangent is a zero of its shape
        (None, Atom::Var(o)) if func.info(o).kind.is_tensor() => {
            let z = t.func.new_var("zero", Kind::Tensor, false);
            body.stmts.push(Stmt::Let {
                var: z,
                rhs: Rhs::NewSeq(NewSeq::ZerosLike(o)),
            });
            Atom::Var(z)
        }
        (None, _) => Atom::Float(0.0),
    };
    t.func.body = body;
    JvpOut {
        func: t.func,
        tangent_params,
        tangent,
        unsupported_call: t.unsupported_call,
        tangents: t.tan,
    }
}

struct Jvp<'a> {
    func: Func,
    varied: &'a HashSet<Var>,
    tan: HashMap<Var, Var>,
    /// See [`jvp_splitting_calls`].
    split_calls: bool,
    /// See [`JvpOut::unsupported_call`].
    unsupported_call: Option<proc_macro2::Span>,
}

impl Jvp<'_> {
    fn is_varied(&self, a: Atom) -> bool {
        matches!(a, Atom::Var(v) if self.varied.contains(&v))
    }

    fn tan_atom(&self, a: Atom) -> Option<Atom> {
        match a {
            Atom::Var(v) if self.varied.contains(&v) => self.tan.get(&v).map(|d| Atom::Var(*d)),
            _ => None,
        }
    }

    fn tan_var(&self, v: Var) -> Var {
        self.tan.get(&v).copied().unwrap_or(v)
    }

    fn block(&mut self, b: &Block) -> Block {
        let mut out = Vec::new();
        for s in &b.stmts {
            self.stmt(s, &mut out);
        }
        Block { stmts: out }
    }

    fn zero_for(&self, v: Var) -> Rhs {
        match self.func.info(v).kind {
            Kind::Seq(..) | Kind::Tensor | Kind::Struct => Rhs::NewSeq(NewSeq::ZerosLike(v)),
            _ => Rhs::Atom(Atom::Float(0.0)),
        }
    }

    /// The tangent of `a` where it has none: a zero like `like` (a tensor zero is a value).
    fn tan_or_zero(&mut self, a: Atom, like: Var, out: &mut Vec<Stmt>) -> Atom {
        if let Some(t) = self.tan_atom(a) {
            return t;
        }
        let kind = self.func.info(like).kind.clone();
        if kind.is_tensor() {
            let z = self.func.new_var("zero", kind, false);
            out.push(Stmt::Let {
                var: z,
                rhs: Rhs::NewSeq(NewSeq::ZerosLike(like)),
            });
            Atom::Var(z)
        } else {
            Atom::Float(0.0)
        }
    }

    /// Appends to `all` a tangent for every argument in `args` (a zero of its kind where it
    /// has none), as a callee's counterparts take them: one per argument (`crate::slots`),
    /// where that of an argument of a type only rustc knows (a constant, `g(x, N)`) is a zero
    /// of its type if it is differentiable, else `()`.
    fn push_tangents(&mut self, args: &[Arg], all: &mut Vec<Arg>, out: &mut Vec<Stmt>) {
        for a in args {
            let kind = self.func.kind(a.atom);
            if !kind.is_differentiable() {
                let z = self.func.new_var("slot", Kind::Opaque, false);
                let (rhs, by_ref) = match a.atom {
                    Atom::Var(v) => (
                        Rhs::NewSeq(NewSeq::ZerosLike(v)),
                        self.func
                            .params
                            .iter()
                            .any(|p| p.var == v && matches!(p.ty, syn::Type::Reference(_))),
                    ),
                    _ => (Rhs::Tuple(vec![]), false),
                };
                out.push(Stmt::Let { var: z, rhs });
                all.push(Arg {
                    atom: Atom::Var(z),
                    borrow: a.borrow || by_ref,
                });
                continue;
            }
            match self.tan_atom(a.atom) {
                Some(t) => all.push(Arg {
                    atom: t,
                    borrow: a.borrow,
                }),
                None => match (a.atom, &kind) {
                    (Atom::Var(v), Kind::Tensor | Kind::Struct) => {
                        let z = self.tan_or_zero(a.atom, v, out);
                        // the zero is a local: borrowed where the argument
                        // is a reference parameter passed on as written
                        let by_ref = self
                            .func
                            .params
                            .iter()
                            .any(|p| p.var == v && matches!(p.ty, syn::Type::Reference(_)));
                        all.push(Arg {
                            atom: z,
                            borrow: a.borrow || by_ref,
                        });
                    }
                    (Atom::Var(v), Kind::Seq(s, _)) => {
                        let z = self.func.new_var("zero", kind.clone(), false);
                        out.push(Stmt::Let {
                            var: z,
                            rhs: Rhs::NewSeq(NewSeq::ZerosLike(v)),
                        });
                        all.push(Arg {
                            atom: Atom::Var(z),
                            borrow: a.borrow || *s != Seq::Array,
                        });
                    }
                    _ => all.push(Arg {
                        atom: Atom::Float(0.0),
                        borrow: false,
                    }),
                },
            }
        }
    }

    fn stmt(&mut self, s: &Stmt, out: &mut Vec<Stmt>) {
        match s {
            Stmt::Let { var, rhs } if self.varied.contains(var) => {
                let d = self.tan_var(*var);
                match rhs {
                    // a callee's gradients for a cotangent (a reverse sweep that recomputes
                    // calls): their tangent along the arguments' and the cotangent's, from
                    // the callee's forward-over-reverse counterpart `__ferrax_full_g_ctjvp`
                    Rhs::Call {
                        func,
                        args,
                        mode: CallMode::VjpApply(ct),
                        span,
                    } => {
                        out.push(s.clone());
                        let ct_arg = Arg {
                            atom: *ct,
                            borrow: self.func.kind(*ct).is_tensor(),
                        };
                        let mut all = args.clone();
                        all.push(ct_arg);
                        self.push_tangents(args, &mut all, out);
                        self.push_tangents(&[ct_arg], &mut all, out);
                        out.push(Stmt::Let {
                            var: d,
                            rhs: Rhs::Call {
                                func: func.clone(),
                                args: all,
                                mode: CallMode::VjpApplyTangent {
                                    primals: args.len(),
                                },
                                span: *span,
                            },
                        });
                        return;
                    }
                    Rhs::Call {
                        func,
                        args,
                        mode: CallMode::Primal,
                        span,
                    } if !args.is_empty() => {
                        let mut all = args.clone();
                        self.push_tangents(args, &mut all, out);
                        if self.split_calls {
                            out.push(s.clone());
                            out.push(Stmt::Let {
                                var: d,
                                rhs: Rhs::Call {
                                    func: func.clone(),
                                    args: all,
                                    mode: CallMode::JvpTangent {
                                        primals: args.len(),
                                    },
                                    span: *span,
                                },
                            });
                            return;
                        }
                        let r = self.func.new_var("r", Kind::Opaque, false);
                        out.push(Stmt::Let {
                            var: r,
                            rhs: Rhs::Call {
                                func: func.clone(),
                                args: all,
                                mode: CallMode::Jvp,
                                span: *span,
                            },
                        });
                        out.push(Stmt::Let {
                            var: *var,
                            rhs: Rhs::Field(r, 0),
                        });
                        out.push(Stmt::Let {
                            var: d,
                            rhs: Rhs::Field(r, 1),
                        });
                        return;
                    }
                    _ => out.push(s.clone()),
                }
                let trhs = match rhs {
                    Rhs::Atom(a) => match self.tan_atom(*a) {
                        Some(t) => Rhs::Atom(t),
                        None => self.zero_for(*var),
                    },
                    Rhs::Prim(p, args) => {
                        let tans: Vec<Option<Atom>> =
                            args.iter().map(|a| self.tan_atom(*a)).collect();
                        let mut rules = Rules::new(&mut self.func);
                        let t = row(*p)
                            .jvp
                            .and_then(|rule| rule(&mut rules, args, Atom::Var(*var), &tans));
                        out.append(&mut rules.stmts);
                        match t {
                            Some(t) => Rhs::Atom(t),
                            None => self.zero_for(*var),
                        }
                    }
                    Rhs::Project(root, path) | Rhs::ProjectTangent(root, path) => {
                        Rhs::ProjectTangent(self.tan_var(*root), path.clone())
                    }
                    Rhs::Index(v, i) => Rhs::Index(self.tan_var(*v), *i),
                    Rhs::SubSlice(v, lo, hi) => Rhs::SubSlice(self.tan_var(*v), *lo, *hi),
                    Rhs::Sum(v) => Rhs::Sum(self.tan_var(*v)),
                    Rhs::Field(v, k) => Rhs::Field(self.tan_var(*v), *k),
                    // (a stack with no tangents, of shapes: a zero, not a second pop)
                    Rhs::Pop(v) if self.tan.contains_key(v) => Rhs::Pop(self.tan_var(*v)),
                    Rhs::Pop(_) => self.zero_for(*var),
                    Rhs::Tuple(items) => Rhs::Tuple(
                        items
                            .iter()
                            .map(|a| self.tan_atom(*a).unwrap_or(Atom::Float(0.0)))
                            .collect(),
                    ),
                    Rhs::NewSeq(n) => Rhs::NewSeq(match n {
                        NewSeq::Filled { value, len } => NewSeq::Filled {
                            value: self.tan_atom(*value).unwrap_or(Atom::Float(0.0)),
                            len: *len,
                        },
                        NewSeq::Empty { capacity } => NewSeq::Empty {
                            capacity: *capacity,
                        },
                        NewSeq::ArrayOf(items) => NewSeq::ArrayOf(
                            items
                                .iter()
                                .map(|a| self.tan_atom(*a).unwrap_or(Atom::Float(0.0)))
                                .collect(),
                        ),
                        NewSeq::ArrayRepeat { value, len } => NewSeq::ArrayRepeat {
                            value: self.tan_atom(*value).unwrap_or(Atom::Float(0.0)),
                            len: len.clone(),
                        },
                        NewSeq::ZerosLike(v) => NewSeq::ZerosLike(*v),
                        NewSeq::ToFill(v) => NewSeq::ToFill(*v),
                        NewSeq::CopyOf(v) => NewSeq::CopyOf(self.tan_var(*v)),
                    }),
                    Rhs::Uninit => Rhs::Uninit,
                    _ => {
                        // a call this transform cannot see into, reading varied values (a
                        // pullback applied later comes from such a call, reported already)
                        if let Rhs::Call { span, .. } = rhs
                            && rhs_uses(rhs).iter().any(|a| self.is_varied(*a))
                            && self.unsupported_call.is_none()
                        {
                            self.unsupported_call = Some(*span);
                        }
                        self.zero_for(*var)
                    }
                };
                out.push(Stmt::Let { var: d, rhs: trhs });
            }
            Stmt::Assign { var, value } => {
                out.push(s.clone());
                if self.varied.contains(var) {
                    let t = self.tan_or_zero(*value, *var, out);
                    out.push(Stmt::Assign {
                        var: self.tan_var(*var),
                        value: t,
                    });
                }
            }
            Stmt::AddAssign { var, value } => {
                out.push(s.clone());
                if let (true, Some(t)) = (self.varied.contains(var), self.tan_atom(*value)) {
                    out.push(Stmt::AddAssign {
                        var: self.tan_var(*var),
                        value: t,
                    });
                }
            }
            Stmt::Store {
                array,
                index,
                value,
            } => {
                out.push(s.clone());
                if self.varied.contains(array) {
                    let t = match self.tan_atom(*value) {
                        Some(t) => t,
                        // (in a Vec of tensors, a zero shaped like the value)
                        None if self.func.info(*array).kind == Kind::Struct
                            && let Some(v) = value.var() =>
                        {
                            let z = self.func.new_var("zero", Kind::Tensor, false);
                            out.push(Stmt::Let {
                                var: z,
                                rhs: Rhs::NewSeq(NewSeq::ZerosLike(v)),
                            });
                            Atom::Var(z)
                        }
                        None => Atom::Float(0.0),
                    };
                    out.push(Stmt::Store {
                        array: self.tan_var(*array),
                        index: *index,
                        value: t,
                    });
                }
            }
            Stmt::AddStore {
                array,
                index,
                value,
            } => {
                out.push(s.clone());
                if let (true, Some(t)) = (self.varied.contains(array), self.tan_atom(*value)) {
                    out.push(Stmt::AddStore {
                        array: self.tan_var(*array),
                        index: *index,
                        value: t,
                    });
                }
            }
            Stmt::AddSeq {
                target,
                value,
                offset,
            } => {
                out.push(s.clone());
                if self.varied.contains(target) && self.is_varied(Atom::Var(*value)) {
                    out.push(Stmt::AddSeq {
                        target: self.tan_var(*target),
                        value: self.tan_var(*value),
                        offset: *offset,
                    });
                }
            }
            // (the adjoint of a list of tensors or of a parameter struct, added to part by
            // part in a reverse sweep: forward over reverse adds the parts' tangents)
            Stmt::AddProject {
                target,
                path,
                value,
            } => {
                out.push(s.clone());
                if let (true, Some(t)) = (self.varied.contains(target), self.tan_atom(*value)) {
                    out.push(Stmt::AddProject {
                        target: self.tan_var(*target),
                        path: path.clone(),
                        value: t,
                    });
                }
            }
            Stmt::Push { array, value } => {
                out.push(s.clone());
                if self.varied.contains(array) {
                    let t = self.tan_atom(*value).unwrap_or(Atom::Float(0.0));
                    out.push(Stmt::Push {
                        array: self.tan_var(*array),
                        value: t,
                    });
                }
            }
            Stmt::If { cond, then, els } => {
                let then = self.block(then);
                let els = self.block(els);
                out.push(Stmt::If {
                    cond: *cond,
                    then,
                    els,
                });
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
                let body = self.block(body);
                out.push(Stmt::For {
                    index: *index,
                    range: range.clone(),
                    body,
                    exit: exit.clone(),
                });
            }
            Stmt::Loop { body, exit } => {
                let body = self.block(body);
                out.push(Stmt::Loop {
                    body,
                    exit: exit.clone(),
                });
            }
            // Undo logs of varied sequences get tangent logs, so that restoring a primal
            // element restores its tangent too (jvp of a vjp's output).
            Stmt::LogWrite { log, array, index } => {
                out.push(s.clone());
                if self.varied.contains(array) && self.varied.contains(log) {
                    out.push(Stmt::LogWrite {
                        log: self.tan_var(*log),
                        array: self.tan_var(*array),
                        index: *index,
                    });
                }
            }
            Stmt::Undo { log, array, mark } => {
                out.push(s.clone());
                if self.varied.contains(array) && self.varied.contains(log) {
                    out.push(Stmt::Undo {
                        log: self.tan_var(*log),
                        array: self.tan_var(*array),
                        mark: *mark,
                    });
                }
            }
            // Inactive lets: the primal as it is.
            other => out.push(other.clone()),
        }
    }
}
