//! Reverse mode: IR -> a forward sweep and a reverse sweep, both IR.
//!
//! Straight-line code needs no tape: in A-normal form every value a partial derivative
//! reads is an immutable variable, still in scope when the reverse sweep runs.
//! Compound statements are reversed in the manner of Tapenade, with checkpointing:
//!
//! - the forward sweep runs an `if`/`match` as the primal does, after saving the mutable
//!   scalars it reads; the reverse sweep restores them, takes the same branch again (the
//!   condition is an immutable variable) and runs that branch's forward and reverse sweeps;
//! - a loop of tensor code keeps every value its body defines, in the branches of its
//!   `if`s too and the stacks of its inner loops, on a stack (tensors are shared, not
//!   copied) and the reverse sweep pops them (`Vjp::taped`): recomputing a step of tensor
//!   work would cost as much as the step;
//! - any other loop saves, at the start of each iteration, the loop-carried scalars the
//!   iteration reads and overwrites; the reverse sweep walks the iterations backwards,
//!   restores each one's start state and recomputes it before reversing it (per-iteration
//!   checkpointing: nothing inside an iteration is stored);
//! - a loop that is not a `for` over a plain range without exits (`while`, `loop`, `break`)
//!   records its trips (the index, or `true`) and marks each one, and the reverse of a trip
//!   runs under the mark it pops: always set here, and under `vmap` the mask of the
//!   examples still running, so that each example walks back its own trips;
//! - writes into Vecs and arrays log the overwritten element so the reverse sweep can
//!   restore it.
//!
//! Only varied values the output depends on other than through `stop_gradient` get
//! adjoints (`analyse::useful`). Everything is generated conservatively; dead-code
//! elimination (`analyse::dce`) then keeps only the saves whose restores are needed (for
//! `s += expr` in a loop: none).
//! Derivatives of primitives are linearize-then-transpose over the primitive table.

use crate::ir::*;
use crate::primitives::{Rules, row};
use crate::shapes::Shapes;
use std::collections::{HashMap, HashSet};

/// The VJP of a function.
pub struct VjpOut {
    pub func: Func,
    /// Runs the primal and records what the reverse sweep needs.
    pub fwd: Block,
    /// The cotangent of the output, seeding the reverse sweep.
    pub seed: Var,
    /// Accumulates the gradients.
    pub rev: Block,
    /// The gradient of each active parameter, in order.
    pub grads: Vec<Atom>,
}

/// Reverse mode of `func`, whose varied variables are `varied`.
pub fn vjp(func: &Func, varied: &HashSet<Var>) -> VjpOut {
    vjp_with(func, varied, false)
}

/// Reverse mode where every call of another `#[grad]` function is differentiated by
/// calling its vjp again in the reverse sweep (`CallMode::VjpApply`) instead of keeping its
/// pullback: what `vmap` can batch (a closure cannot be), through the callee's
/// `__ferrax_vmap0_ct_` counterpart.
pub fn vjp_recomputing_calls(func: &Func, varied: &HashSet<Var>) -> VjpOut {
    vjp_with(func, varied, true)
}

fn vjp_with(func: &Func, varied: &HashSet<Var>, recompute_calls: bool) -> VjpOut {
    // (only values the output depends on get adjoints: `crate::analyse::useful`)
    let useful = crate::analyse::useful(func);
    let varied: HashSet<Var> = varied.intersection(&useful).copied().collect();
    let mut t = Vjp {
        func: func.clone(),
        varied: &varied,
        adj: HashMap::new(),
        logs: HashMap::new(),
        recompute_calls,
        shapes: Shapes::of(func),
    };
    let (fwd, rev) = t.block(&func.body);
    let out_kind = func.kind(func.output);
    let seed = t.func.new_var("ct", out_kind, false);
    let mut rstmts = Vec::new();
    let mut grads = Vec::new();
    for p in &func.params {
        if p.active {
            let a = t.adj(p.var);
            rstmts.push(Stmt::Let {
                var: a,
                rhs: t.zero_for(p.var),
            });
            grads.push(Atom::Var(a));
        }
    }
    rstmts.extend(t.decl_adjoints(&func.body));
    if let Atom::Var(o) = func.output
        && varied.contains(&o)
    {
        let a = t.adj(o);
        rstmts.push(if matches!(func.kind(func.output), Kind::Seq(..)) {
            Stmt::AddSeq {
                target: a,
                value: seed,
                offset: None,
            }
        } else {
            Stmt::AddAssign {
                var: a,
                value: Atom::Var(seed),
            }
        });
    }
    rstmts.extend(rev);
    VjpOut {
        func: t.func,
        fwd: Block { stmts: fwd },
        seed,
        rev: Block { stmts: rstmts },
        grads,
    }
}

struct Vjp<'a> {
    func: Func,
    varied: &'a HashSet<Var>,
    adj: HashMap<Var, Var>,
    /// The undo log of each Vec/array variable that is declared mutable.
    logs: HashMap<Var, Var>,
    /// See [`vjp_recomputing_calls`].
    recompute_calls: bool,
    /// The primal's shape facts (see [`Rules::fit`]).
    shapes: Shapes,
}

type Sweeps = (Vec<Stmt>, Vec<Stmt>);

impl Vjp<'_> {
    fn is_varied(&self, a: Atom) -> bool {
        matches!(a, Atom::Var(v) if self.varied.contains(&v))
    }

    /// The adjoint variable of `v`.
    fn adj(&mut self, v: Var) -> Var {
        if let Some(a) = self.adj.get(&v) {
            return *a;
        }
        let info = self.func.info(v).clone();
        let kind = match info.kind {
            Kind::Seq(Seq::Slice, p) => Kind::Seq(Seq::Vec, p),
            k => k,
        };
        let a = self.func.new_var(&format!("{}_bar", info.name), kind, true);
        self.adj.insert(v, a);
        a
    }

    fn zero_for(&self, v: Var) -> Rhs {
        match self.func.info(v).kind {
            Kind::Seq(..) | Kind::Tensor | Kind::Struct => Rhs::NewSeq(NewSeq::ZerosLike(v)),
            _ => Rhs::Atom(Atom::Float(0.0)),
        }
    }

    /// Declarations of the adjoints of the varied variables a block declares directly.
    fn decl_adjoints(&mut self, b: &Block) -> Vec<Stmt> {
        let mut out = Vec::new();
        for s in &b.stmts {
            if let Stmt::Let { var, .. } = s
                && self.varied.contains(var)
            {
                let a = self.adj(*var);
                out.push(Stmt::Let {
                    var: a,
                    rhs: self.zero_for(*var),
                });
            }
        }
        out
    }

    /// Forward and reverse sweeps of a block (the reverse already in reverse order).
    fn block(&mut self, b: &Block) -> Sweeps {
        let mut fwd = Vec::new();
        let mut revs = Vec::new();
        for s in &b.stmts {
            let (f, r) = self.stmt(s);
            fwd.extend(f);
            revs.push(r);
        }
        let rev = revs.into_iter().rev().flatten().collect();
        (fwd, rev)
    }

    /// Forward sweep, adjoint declarations and reverse sweep of a block, one after the other:
    /// what the reverse sweep of a compound statement runs for the part it re-executes.
    /// The forward part runs the primal a second time: without the user's effects, which
    /// ran in the forward sweep (a `println!` in a loop prints once per iteration, not twice).
    fn joint(&mut self, b: &Block) -> Block {
        let (mut f, r) = self.block(b);
        drop_effects(&mut f);
        f.extend(self.decl_adjoints(b));
        f.extend(r);
        Block { stmts: f }
    }

    /// The primal of a block with writes into outer sequences logged (no other recording).
    fn primal_logged(&self, b: &Block) -> Block {
        let mut out = Vec::new();
        for s in &b.stmts {
            match s {
                Stmt::Store { array, index, .. } => {
                    if let Some(log) = self.logs.get(array) {
                        out.push(Stmt::LogWrite {
                            log: *log,
                            array: *array,
                            index: Some(*index),
                        });
                    }
                    out.push(s.clone());
                }
                Stmt::Push { array, .. } => {
                    if let Some(log) = self.logs.get(array) {
                        out.push(Stmt::LogWrite {
                            log: *log,
                            array: *array,
                            index: None,
                        });
                    }
                    out.push(s.clone());
                }
                Stmt::If { cond, then, els } => out.push(Stmt::If {
                    cond: *cond,
                    then: self.primal_logged(then),
                    els: self.primal_logged(els),
                }),
                Stmt::Match { scrut, arms } => out.push(Stmt::Match {
                    scrut: *scrut,
                    arms: arms
                        .iter()
                        .map(|a| Arm {
                            pat: a.pat.clone(),
                            binds: a.binds.clone(),
                            body: self.primal_logged(&a.body),
                        })
                        .collect(),
                }),
                Stmt::For {
                    index,
                    range,
                    body,
                    exit,
                } => out.push(Stmt::For {
                    index: *index,
                    range: range.clone(),
                    body: self.primal_logged(body),
                    exit: exit.clone(),
                }),
                Stmt::Loop { body, exit } => out.push(Stmt::Loop {
                    body: self.primal_logged(body),
                    exit: exit.clone(),
                }),
                other => out.push(other.clone()),
            }
        }
        Block { stmts: out }
    }

    /// Outer mutable scalars read in `b`, outer mutable scalars assigned in `b`, outer logged sequences written in `b`.
    fn footprint(&self, b: &Block) -> (Vec<Var>, Vec<Var>, Vec<Var>) {
        let declared: HashSet<Var> = declared_vars(b).into_iter().collect();
        // (a Vec of tensors replaced whole, `hs = next;`, is saved and restored by value too)
        let mut replaced = HashSet::new();
        walk(b, &mut |s| {
            if let Stmt::Assign { var, .. } = s
                && self.func.info(*var).kind == Kind::Struct
            {
                replaced.insert(*var);
            }
        });
        let outer_scalar = |v: &Var| {
            let i = self.func.info(*v);
            i.mutable && (i.kind.is_scalar() || replaced.contains(v)) && !declared.contains(v)
        };
        let reads: Vec<Var> = read_vars(b).into_iter().filter(outer_scalar).collect();
        let assigned = assigned_vars(b);
        let writes: Vec<Var> = assigned.iter().copied().filter(outer_scalar).collect();
        let seqs: Vec<Var> = assigned
            .iter()
            .copied()
            .filter(|v| self.logs.contains_key(v) && !declared.contains(v))
            .collect();
        (reads, writes, seqs)
    }

    fn new_stack(&mut self, name: &str, fwd: &mut Vec<Stmt>) -> Var {
        self.new_stack_for(name, fwd, None)
    }

    /// [`Self::new_stack`] with room for `capacity` values (a `for` loop's trip count: its
    /// tape grows without reallocating).
    fn new_stack_for(&mut self, name: &str, fwd: &mut Vec<Stmt>, capacity: Option<Atom>) -> Var {
        let s = self.func.new_var(name, Kind::Opaque, true);
        fwd.push(Stmt::Let {
            var: s,
            rhs: Rhs::NewSeq(NewSeq::Empty { capacity }),
        });
        s
    }

    /// The trip count of a `for` loop over `range` (no `step_by`), for its tapes' capacity.
    fn trip_count(&mut self, range: &Range, fwd: &mut Vec<Stmt>) -> Atom {
        let n = self.func.new_var("trips", Kind::Int, false);
        let arg = |atom| Arg {
            atom,
            borrow: false,
        };
        fwd.push(Stmt::Let {
            var: n,
            rhs: Rhs::Call {
                func: syn::parse_quote!(::ferrax::__private::trips),
                args: vec![
                    arg(range.lo),
                    arg(range.hi),
                    arg(Atom::Bool(range.inclusive)),
                ],
                mode: CallMode::Primal,
                span: proc_macro2::Span::call_site(),
            },
        });
        Atom::Var(n)
    }

    fn stmt(&mut self, s: &Stmt) -> Sweeps {
        match s {
            Stmt::If { .. } | Stmt::Match { .. } => self.branch(s),
            Stmt::For { .. } | Stmt::Loop { .. } => self.looped(s),
            Stmt::Let { var, rhs } => self.let_(*var, rhs, s),
            Stmt::Assign { var, value } if self.func.info(*var).kind == Kind::Struct => {
                self.replace_seq(s, *var, *value)
            }
            Stmt::Assign { var, value } => {
                let mut rev = Vec::new();
                if self.varied.contains(var) {
                    let a = self.adj(*var);
                    if self.is_varied(*value)
                        && let Atom::Var(u) = value
                    {
                        let au = self.adj(*u);
                        rev.push(Stmt::AddAssign {
                            var: au,
                            value: Atom::Var(a),
                        });
                    }
                    rev.push(Stmt::Assign {
                        var: a,
                        value: Atom::Float(0.0),
                    });
                }
                (vec![s.clone()], rev)
            }
            Stmt::Store {
                array,
                index,
                value,
            } if self.func.info(*array).kind == Kind::Struct => {
                self.store_tensor(s, *array, *index, *value)
            }
            Stmt::Store {
                array,
                index,
                value,
            } => {
                let mut fwd = Vec::new();
                let mut rev = Vec::new();
                if let Some(log) = self.logs.get(array).copied() {
                    fwd.push(Stmt::LogWrite {
                        log,
                        array: *array,
                        index: Some(*index),
                    });
                    rev.push(Stmt::Undo {
                        log,
                        array: *array,
                        mark: None,
                    });
                }
                fwd.push(s.clone());
                if self.varied.contains(array) {
                    let a = self.adj(*array);
                    let mut adj = Vec::new();
                    if let Atom::Var(u) = value
                        && self.varied.contains(u)
                    {
                        let e = self
                            .func
                            .new_var("g", self.func.info(*u).kind.clone(), false);
                        adj.push(Stmt::Let {
                            var: e,
                            rhs: Rhs::Index(a, *index),
                        });
                        let au = self.adj(*u);
                        adj.push(Stmt::AddAssign {
                            var: au,
                            value: Atom::Var(e),
                        });
                    }
                    adj.push(Stmt::Store {
                        array: a,
                        index: *index,
                        value: Atom::Float(0.0),
                    });
                    adj.extend(rev);
                    rev = adj;
                }
                (fwd, rev)
            }
            Stmt::Push { array, value } => {
                let mut fwd = Vec::new();
                let mut rev = Vec::new();
                if self.varied.contains(array) {
                    let a = self.adj(*array);
                    let kind = match self.func.info(*array).kind {
                        Kind::Seq(_, p) => Kind::Float(p),
                        // a Vec of tensors
                        Kind::Struct => Kind::Tensor,
                        _ => Kind::Opaque,
                    };
                    let e = self.func.new_var("g", kind, false);
                    rev.push(Stmt::Let {
                        var: e,
                        rhs: Rhs::Pop(a),
                    });
                    if let Atom::Var(u) = value
                        && self.varied.contains(u)
                    {
                        let au = self.adj(*u);
                        rev.push(Stmt::AddAssign {
                            var: au,
                            value: Atom::Var(e),
                        });
                    }
                }
                if let Some(log) = self.logs.get(array).copied() {
                    fwd.push(Stmt::LogWrite {
                        log,
                        array: *array,
                        index: None,
                    });
                    rev.push(Stmt::Undo {
                        log,
                        array: *array,
                        mark: None,
                    });
                }
                fwd.push(s.clone());
                (fwd, rev)
            }
            // Adjoint statements only appear in a transform's output; reversing them again is
            // not needed by any attribute yet.
            other => (vec![other.clone()], vec![]),
        }
    }

    /// `var = value` for Vecs of tensors (`hs = next;`): the forward sweep keeps the Vec it
    /// replaces (its tensors shared); the reverse sweep passes `var`'s cotangent to `value`,
    /// starts it again from zero, and puts the old Vec back.
    fn replace_seq(&mut self, s: &Stmt, var: Var, value: Atom) -> Sweeps {
        let info = self.func.info(var).clone();
        let old = self
            .func
            .new_var(&format!("{}_replaced", info.name), Kind::Struct, false);
        let fwd = vec![
            Stmt::Let {
                var: old,
                rhs: Rhs::Atom(Atom::Var(var)),
            },
            s.clone(),
        ];
        let mut rev = Vec::new();
        if self.varied.contains(&var) {
            let a = self.adj(var);
            if let Atom::Var(u) = value
                && self.varied.contains(&u)
            {
                let au = self.adj(u);
                rev.push(Stmt::AddAssign {
                    var: au,
                    value: Atom::Var(a),
                });
            }
            let zero = self.func.new_var("zero", Kind::Struct, false);
            rev.push(Stmt::Let {
                var: zero,
                rhs: Rhs::NewSeq(NewSeq::ZerosLike(old)),
            });
            rev.push(Stmt::Assign {
                var: a,
                value: Atom::Var(zero),
            });
        }
        rev.push(Stmt::Assign {
            var,
            value: Atom::Var(old),
        });
        (fwd, rev)
    }

    /// `array[index] = value` into a Vec of tensors: the forward sweep logs the element it
    /// overwrites; the reverse sweep takes the element's cotangent for `value`, restores the
    /// old element and starts its cotangent from zero (shaped like it).
    fn store_tensor(&mut self, s: &Stmt, array: Var, index: Atom, value: Atom) -> Sweeps {
        let mut fwd = Vec::new();
        let log = self.logs.get(&array).copied();
        if let Some(log) = log {
            fwd.push(Stmt::LogWrite {
                log,
                array,
                index: Some(index),
            });
        }
        fwd.push(s.clone());
        let mut rev = Vec::new();
        let at = vec![Proj::Index(index)];
        if self.varied.contains(&array)
            && let Atom::Var(u) = value
            && self.varied.contains(&u)
        {
            let a = self.adj(array);
            let e = self.func.new_var("g", Kind::Tensor, false);
            rev.push(Stmt::Let {
                var: e,
                rhs: Rhs::Project(a, at.clone()),
            });
            let au = self.adj(u);
            rev.push(Stmt::AddAssign {
                var: au,
                value: Atom::Var(e),
            });
        }
        if let Some(log) = log {
            rev.push(Stmt::Undo {
                log,
                array,
                mark: None,
            });
        }
        if self.varied.contains(&array) {
            let a = self.adj(array);
            let old = self.func.new_var("old", Kind::Tensor, false);
            let zero = self.func.new_var("zero", Kind::Tensor, false);
            rev.push(Stmt::Let {
                var: old,
                rhs: Rhs::Project(array, at),
            });
            rev.push(Stmt::Let {
                var: zero,
                rhs: Rhs::NewSeq(NewSeq::ZerosLike(old)),
            });
            rev.push(Stmt::Store {
                array: a,
                index,
                value: Atom::Var(zero),
            });
        }
        (fwd, rev)
    }

    fn let_(&mut self, var: Var, rhs: &Rhs, s: &Stmt) -> Sweeps {
        let mut fwd = vec![s.clone()];
        let info = self.func.info(var).clone();
        if info.mutable && !info.kind.is_scalar() && !matches!(rhs, Rhs::Uninit) {
            // A Vec/array that may be written: give it an undo log.
            let log = self
                .func
                .new_var(&format!("{}_log", info.name), Kind::Opaque, true);
            fwd.push(Stmt::Let {
                var: log,
                rhs: Rhs::NewSeq(NewSeq::Empty { capacity: None }),
            });
            self.logs.insert(var, log);
        }
        if !self.varied.contains(&var) {
            return (fwd, vec![]);
        }
        let a = self.adj(var);
        let mut rev = Vec::new();
        match rhs {
            Rhs::Atom(Atom::Var(u)) if self.varied.contains(u) => {
                let au = self.adj(*u);
                if info.kind.is_scalar() || info.kind == Kind::Struct {
                    rev.push(Stmt::AddAssign {
                        var: au,
                        value: Atom::Var(a),
                    });
                } else {
                    rev.push(Stmt::AddSeq {
                        target: au,
                        value: a,
                        offset: None,
                    });
                }
            }
            Rhs::Prim(p, args) => rev = self.transpose_prim(*p, args, var, a),
            Rhs::Project(root, path) => rev.push(Stmt::AddProject {
                target: self.adj(*root),
                path: path.clone(),
                value: Atom::Var(a),
            }),
            Rhs::Index(v, i) => rev.push(Stmt::AddStore {
                array: self.adj(*v),
                index: *i,
                value: Atom::Var(a),
            }),
            Rhs::SubSlice(u, lo, _) if self.varied.contains(u) => {
                let au = self.adj(*u);
                rev.push(Stmt::AddSeq {
                    target: au,
                    value: a,
                    offset: Some(*lo),
                });
            }
            Rhs::NewSeq(NewSeq::CopyOf(u)) if self.varied.contains(u) => {
                let au = self.adj(*u);
                rev.push(Stmt::AddSeq {
                    target: au,
                    value: a,
                    offset: None,
                });
            }
            Rhs::NewSeq(NewSeq::Filled {
                value: Atom::Var(u),
                ..
            })
            | Rhs::NewSeq(NewSeq::ArrayRepeat {
                value: Atom::Var(u),
                ..
            }) if self.varied.contains(u) => {
                let sum = self
                    .func
                    .new_var("g", self.func.info(*u).kind.clone(), false);
                rev.push(Stmt::Let {
                    var: sum,
                    rhs: Rhs::Sum(a),
                });
                let au = self.adj(*u);
                rev.push(Stmt::AddAssign {
                    var: au,
                    value: Atom::Var(sum),
                });
            }
            Rhs::NewSeq(NewSeq::ArrayOf(items)) => {
                for (k, item) in items.iter().enumerate() {
                    if let Atom::Var(u) = item
                        && self.varied.contains(u)
                    {
                        let e = self
                            .func
                            .new_var("g", self.func.info(*u).kind.clone(), false);
                        rev.push(Stmt::Let {
                            var: e,
                            rhs: Rhs::Index(a, Atom::Int(k as u128)),
                        });
                        let au = self.adj(*u);
                        rev.push(Stmt::AddAssign {
                            var: au,
                            value: Atom::Var(e),
                        });
                    }
                }
            }
            Rhs::Call {
                func,
                args,
                mode: CallMode::Primal,
                span,
            } if !args.is_empty() => {
                // y, pullback = g_vjp(args); reverse: grads = pullback(y_bar).
                // A pullback borrows the callee's slice and configuration arguments (`&[f64]`,
                // `&Cfg`; tensors it clones). When one is a local (a Vec, `&CFG`, `&cfg`
                // made here), the reverse sweep (which owns it) calls the callee's vjp again
                // instead of keeping a pullback that would borrow from it.
                // (a view borrows what its base borrows)
                let params: HashSet<Var> = self.func.params.iter().map(|p| p.var).collect();
                let borrowed_params: HashSet<Var> = self
                    .func
                    .params
                    .iter()
                    .filter(|p| matches!(p.ty, syn::Type::Reference(_)))
                    .map(|p| p.var)
                    .collect();
                let root = |mut v: Var| {
                    while let Some((base, ..)) = self.func.info(v).view {
                        v = base;
                    }
                    v
                };
                let borrows_local = args.iter().any(|x| match x.atom {
                    Atom::Var(v) => match self.func.info(v).kind {
                        Kind::Seq(..) => !params.contains(&root(v)),
                        Kind::Opaque => x.borrow && !borrowed_params.contains(&root(v)),
                        _ => false,
                    },
                    _ => false,
                });
                let g = self.func.new_var("grads", Kind::Opaque, false);
                if borrows_local || self.recompute_calls {
                    let mode = CallMode::VjpApply(Atom::Var(a));
                    rev.push(Stmt::Let {
                        var: g,
                        rhs: Rhs::Call {
                            func: func.clone(),
                            args: args.clone(),
                            mode,
                            span: *span,
                        },
                    });
                } else {
                    let r = self.func.new_var("r", Kind::Opaque, false);
                    let pb = self.func.new_var("pullback", Kind::Opaque, false);
                    let call = Stmt::Let {
                        var: r,
                        rhs: Rhs::Call {
                            func: func.clone(),
                            args: args.clone(),
                            mode: CallMode::Vjp,
                            span: *span,
                        },
                    };
                    fwd = vec![
                        call,
                        Stmt::Let {
                            var,
                            rhs: Rhs::Field(r, 0),
                        },
                        Stmt::Let {
                            var: pb,
                            rhs: Rhs::Field(r, 1),
                        },
                    ];
                    rev.push(Stmt::Let {
                        var: g,
                        rhs: Rhs::CallVar {
                            func: pb,
                            args: vec![Atom::Var(a)],
                        },
                    });
                }
                // one gradient per argument (`crate::slots`)
                let n = args.len();
                for (k, x) in args.iter().enumerate() {
                    let Atom::Var(u) = x.atom else { continue };
                    if !self.varied.contains(&u) || !self.func.info(u).kind.is_differentiable() {
                        continue;
                    }
                    let gk = if n == 1 {
                        g
                    } else {
                        let gk = self.func.new_var("g", Kind::Opaque, false);
                        rev.push(Stmt::Let {
                            var: gk,
                            rhs: Rhs::Field(g, k),
                        });
                        gk
                    };
                    let au = self.adj(u);
                    // (a struct's gradient is added as a tensor's is, field by field)
                    let kind = &self.func.info(u).kind;
                    if kind.is_scalar() || kind.is_tensor() {
                        rev.push(Stmt::AddAssign {
                            var: au,
                            value: Atom::Var(gk),
                        });
                    } else {
                        rev.push(Stmt::AddSeq {
                            target: au,
                            value: gk,
                            offset: None,
                        });
                    }
                }
            }
            _ => {}
        }
        (fwd, rev)
    }

    /// Linearize `var = p(args)` through its JVP rule and transpose the linear part.
    fn transpose_prim(&mut self, p: Prim, args: &[Atom], var: Var, ct: Var) -> Vec<Stmt> {
        let Some(rule) = row(p).jvp else {
            return vec![];
        };
        let mut rules = Rules::new(&mut self.func);
        rules.shapes = Some(&self.shapes);
        rules.primal.insert(ct, var);
        // one placeholder a variable, so that a rule sees `x * x` as a square
        let mut placeholders: Vec<(Var, Var)> = Vec::new();
        let tans: Vec<Option<Atom>> = args
            .iter()
            .map(|a| match a {
                Atom::Var(v) if let Some((t, _)) = placeholders.iter().find(|(_, p)| p == v) => {
                    Some(Atom::Var(*t))
                }
                Atom::Var(v) if self.varied.contains(v) => {
                    let kind = rules.func.info(*v).kind.clone();
                    let t = rules.func.new_var("lin", kind, false);
                    rules.linear.insert(t);
                    rules.primal.insert(t, *v);
                    placeholders.push((t, *v));
                    Some(Atom::Var(t))
                }
                _ => None,
            })
            .collect();
        let Some(Atom::Var(out)) = rule(&mut rules, args, Atom::Var(var), &tans) else {
            return vec![];
        };
        let linear = rules.linear.clone();
        let emitted = std::mem::take(&mut rules.stmts);
        rules.linearized = emitted.clone();
        let (lin_stmts, primal): (Vec<Stmt>, Vec<Stmt>) = emitted
            .into_iter()
            .partition(|s| matches!(s, Stmt::Let { var, .. } if linear.contains(var)));
        // Cotangents of linear variables, accumulated while walking the linear part backwards.
        let mut cts: HashMap<Var, Atom> = HashMap::new();
        cts.insert(out, Atom::Var(ct));
        for s in lin_stmts.iter().rev() {
            let Stmt::Let {
                var: l,
                rhs: Rhs::Prim(q, qargs),
            } = s
            else {
                continue;
            };
            let Some(c) = cts.get(l).copied() else {
                continue;
            };
            let Some(tr) = row(*q).transpose else {
                continue;
            };
            let lin: Vec<bool> = qargs
                .iter()
                .map(|a| matches!(a, Atom::Var(v) if linear.contains(v)))
                .collect();
            let contribs = tr(&mut rules, c, qargs, &lin);
            for (a, cv) in qargs.iter().zip(contribs) {
                let (Atom::Var(av), Some(cv)) = (a, cv) else {
                    continue;
                };
                let new = match cts.get(av).copied() {
                    Some(prev) => rules.prim(Prim::Add, &[prev, cv]),
                    None => cv,
                };
                cts.insert(*av, new);
            }
        }
        let transposed = std::mem::take(&mut rules.stmts);
        drop(rules);
        let mut rev = primal;
        rev.extend(transposed);
        for (t, v) in placeholders {
            if let Some(c) = cts.get(&t) {
                let av = self.adj(v);
                rev.push(Stmt::AddAssign { var: av, value: *c });
            }
        }
        rev
    }

    /// `if` / `match`: save the outer scalars read, run the primal; reverse: restore, re-run the
    /// branch taken with its own sweeps.
    fn branch(&mut self, s: &Stmt) -> Sweeps {
        let whole = Block {
            stmts: vec![s.clone()],
        };
        let (reads, _, seqs) = self.footprint(&whole);
        let mut fwd = Vec::new();
        let mut rev = Vec::new();
        for m in reads {
            let info = self.func.info(m).clone();
            let snap = self
                .func
                .new_var(&format!("{}_saved", info.name), info.kind, false);
            fwd.push(Stmt::Let {
                var: snap,
                rhs: Rhs::Atom(Atom::Var(m)),
            });
            rev.push(Stmt::Assign {
                var: m,
                value: Atom::Var(snap),
            });
        }
        for a in seqs {
            let log = self.logs[&a];
            let mark = self.func.new_var("mark", Kind::Int, false);
            fwd.push(Stmt::Let {
                var: mark,
                rhs: Rhs::Len(log),
            });
            rev.push(Stmt::Undo {
                log,
                array: a,
                mark: Some(Atom::Var(mark)),
            });
        }
        fwd.extend(self.primal_logged(&whole).stmts);
        match s {
            Stmt::If { cond, then, els } => {
                let then = self.joint(then);
                let els = self.joint(els);
                rev.push(Stmt::If {
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
                        body: self.joint(&a.body),
                    })
                    .collect();
                rev.push(Stmt::Match {
                    scrut: *scrut,
                    arms,
                });
            }
            _ => {}
        }
        (fwd, rev)
    }

    /// A loop whose body is tensor code (a loop over layers, an RNN's steps pushing its
    /// states, a solver's `while` iterations, a stacked network's loop over steps and
    /// layers): recomputing an iteration would cost as much as the iteration itself, so the
    /// forward sweep keeps every value the body defines on a stack (tensors are shared, not
    /// copied), in the branches of its `if`s too, and the reverse sweep pops them. Dead-code elimination then drops the
    /// stacks of values the reverse sweep does not read. A `for` over a plain range without
    /// exits walks its range backwards; any other loop (`while`, `loop`, a `for` with
    /// `break`) counts its trips, as [`Vjp::looped`] does.
    fn taped(&mut self, s: &Stmt) -> Option<Sweeps> {
        let (body, exit) = match s {
            Stmt::For { body, exit, .. } | Stmt::Loop { body, exit } => (body, exit),
            _ => return None,
        };
        let mut tensor_work = false;
        walk(body, &mut |st| {
            tensor_work |= matches!(st, Stmt::Let { var, rhs: Rhs::Prim(..) | Rhs::Call { .. } }
                if self.func.info(*var).kind.is_tensor());
        });
        if !self.tapeable(body, false) || !tensor_work {
            return None;
        }
        let mut fwd = Vec::new();
        let (body_fwd, rb) = self.taped_block(body, &mut fwd);
        match s {
            Stmt::For { index, range, .. } if exit.is_empty() && range.is_simple() => {
                fwd.push(rebodied(s, body_fwd));
                Some((fwd, self.reversed_range(*index, range, rb)))
            }
            _ => {
                let (mut b, rev) = self.counted_trips(s, &mut fwd, rb);
                b.extend(body_fwd);
                fwd.push(rebodied(s, b));
                Some((fwd, rev))
            }
        }
    }

    /// Whether [`Vjp::taped`] can keep the values of `b`: lets, assignments, pushes onto and
    /// writes into a Vec of tensors, inner loops (reversed their own way, their stacks made
    /// afresh each trip and kept on the outer loop's tapes), and `if`s and `match`es without
    /// loops in them (`nested`: inside one, only `if`s whose branches can be kept too).
    fn tapeable(&self, b: &Block, nested: bool) -> bool {
        b.stmts.iter().all(|st| match st {
            Stmt::For { .. } | Stmt::Loop { .. } => !nested,
            Stmt::Let { .. } | Stmt::Assign { .. } | Stmt::AddAssign { .. } => true,
            Stmt::Push { array, .. } | Stmt::Store { array, .. } => {
                self.func.info(*array).kind == Kind::Struct
            }
            Stmt::If { then, els, .. } if self.tapeable(then, true) && self.tapeable(els, true) => {
                true
            }
            Stmt::If { .. } | Stmt::Match { .. } if !nested => {
                let mut loops = false;
                walk(
                    &Block {
                        stmts: vec![st.clone()],
                    },
                    &mut |s| loops |= matches!(s, Stmt::For { .. } | Stmt::Loop { .. }),
                );
                !loops
            }
            _ => false,
        })
    }

    /// The forward sweep of a block that [`Vjp::tapeable`] accepts, each value it defines
    /// pushed onto a stack of its own (declared in `decls`), and its reverse sweep, which
    /// pops them first. An `if` whose branches can be kept too is kept branch by branch (the
    /// reverse takes the same branch and pops what it pushed); any other `if` or `match`
    /// saves and recomputes its branch ([`Vjp::branch`]).
    fn taped_block(&mut self, b: &Block, decls: &mut Vec<Stmt>) -> (Vec<Stmt>, Vec<Stmt>) {
        let mut f = Vec::new();
        let mut revs = Vec::new();
        for st in &b.stmts {
            match st {
                Stmt::If { cond, then, els }
                    if self.tapeable(then, true) && self.tapeable(els, true) =>
                {
                    let (ft, rt) = self.taped_block(then, decls);
                    let (fe, re) = self.taped_block(els, decls);
                    f.push(Stmt::If {
                        cond: *cond,
                        then: Block { stmts: ft },
                        els: Block { stmts: fe },
                    });
                    revs.push(vec![Stmt::If {
                        cond: *cond,
                        then: Block { stmts: rt },
                        els: Block { stmts: re },
                    }]);
                }
                _ => {
                    let (fs, rs) = self.stmt(st);
                    f.extend(fs);
                    revs.push(rs);
                }
            }
        }
        let r: Vec<Stmt> = revs.into_iter().rev().flatten().collect();
        let adjoints = self.decl_adjoints(b);
        let rev_all = Block {
            stmts: adjoints.iter().chain(&r).cloned().collect(),
        };
        let mut body_fwd = f.clone();
        let mut pops = Vec::new();
        for st in &f {
            let Stmt::Let { var, .. } = st else { continue };
            let info = self.func.info(*var).clone();
            let stack = self.new_stack(&format!("{}_tape", info.name), decls);
            // A tensor the reverse sweep only takes the shape of is kept as a shape (a
            // broadcast view of one zero), not as its data.
            let mut value = Atom::Var(*var);
            if info.kind == Kind::Tensor && shape_only(&rev_all, *var) {
                let proxy = self
                    .func
                    .new_var(&format!("{}_shape", info.name), Kind::Tensor, false);
                body_fwd.push(Stmt::Let {
                    var: proxy,
                    rhs: Rhs::NewSeq(NewSeq::ZerosLike(*var)),
                });
                value = Atom::Var(proxy);
            }
            body_fwd.push(Stmt::Push {
                array: stack,
                value,
            });
            pops.push(Stmt::Let {
                var: *var,
                rhs: Rhs::Pop(stack),
            });
        }
        pops.reverse();
        let mut rb = pops;
        rb.extend(adjoints);
        rb.extend(r);
        (body_fwd, rb)
    }

    /// The reverse of a `for` over a simple range without exits whose iterations' reverse is
    /// `rb`: the range walked backwards.
    fn reversed_range(&mut self, index: Var, range: &Range, rb: Vec<Stmt>) -> Vec<Stmt> {
        if range.adapters.is_empty() && !range.inclusive {
            // Reverse the first iteration on its own, after the others: there its inputs are
            // often inactive (`h = x` before a loop over layers), and dead-code elimination
            // then drops the cotangent nobody reads (a whole matmul per step).
            let next = self.func.new_var("lo1", Kind::Int, false);
            let rest_lo = self.func.new_var("lo1", Kind::Int, false);
            let any = self.func.new_var("nonempty", Kind::Bool, false);
            let mut rev = vec![
                Stmt::Let {
                    var: next,
                    rhs: Rhs::Prim(Prim::Add, vec![range.lo, Atom::Int(1)]),
                },
                Stmt::Let {
                    var: rest_lo,
                    rhs: Rhs::Method {
                        recv: Atom::Var(next),
                        method: syn::Ident::new("min", proc_macro2::Span::call_site()),
                        args: vec![Arg {
                            atom: range.hi,
                            borrow: false,
                        }],
                        span: proc_macro2::Span::call_site(),
                    },
                },
                Stmt::For {
                    index,
                    range: Range {
                        lo: Atom::Var(rest_lo),
                        hi: range.hi,
                        inclusive: false,
                        adapters: vec![Adapter::Rev],
                    },
                    body: Block { stmts: rb.clone() },
                    exit: vec![],
                },
                Stmt::Let {
                    var: any,
                    rhs: Rhs::Prim(Prim::Lt, vec![range.lo, range.hi]),
                },
            ];
            // (a copy with its own variables: each then has one definition, and the
            // chains of each copy see the reads of their own)
            let mut first = vec![Stmt::Let {
                var: index,
                rhs: Rhs::Atom(range.lo),
            }];
            first.extend(crate::ir::fresh_copy(&mut self.func, &rb));
            rev.push(Stmt::If {
                cond: Atom::Var(any),
                then: Block { stmts: first },
                els: Block::default(),
            });
            return rev;
        }
        vec![Stmt::For {
            index,
            range: reversed(range),
            body: Block { stmts: rb },
            exit: vec![],
        }]
    }

    /// `for` / `loop`: per-iteration checkpoints; reverse: iterations backwards, each restored,
    /// recomputed and reversed.
    fn looped(&mut self, s: &Stmt) -> Sweeps {
        let body = match s {
            Stmt::For { body, .. } | Stmt::Loop { body, .. } => body,
            _ => return (vec![s.clone()], vec![]),
        };
        if let Some(sweeps) = self.taped(s) {
            return sweeps;
        }
        let (reads, writes, seqs) = self.footprint(body);
        let carried: Vec<Var> = writes
            .iter()
            .copied()
            .filter(|w| reads.contains(w))
            .collect();
        let fixed: Vec<Var> = reads
            .iter()
            .copied()
            .filter(|r| !writes.contains(r))
            .collect();
        let mut fwd = Vec::new();
        let mut rev = Vec::new();
        // (a `for` loop's tapes hold one value an iteration: sized for them at once)
        let capacity = match s {
            Stmt::For { range, exit, .. }
                if exit.is_empty()
                    && range.is_simple()
                    && !(seqs.is_empty() && carried.is_empty()) =>
            {
                Some(self.trip_count(range, &mut fwd))
            }
            _ => None,
        };
        // Scalars the loop reads but never writes: saved once.
        for m in fixed {
            let info = self.func.info(m).clone();
            let snap = self
                .func
                .new_var(&format!("{}_saved", info.name), info.kind, false);
            fwd.push(Stmt::Let {
                var: snap,
                rhs: Rhs::Atom(Atom::Var(m)),
            });
            rev.push(Stmt::Assign {
                var: m,
                value: Atom::Var(snap),
            });
        }
        // Per-iteration saves, taken at the start of each iteration.
        let mut at_start = Vec::new();
        let mut restore = Vec::new();
        let mut seq_marks = Vec::new();
        for a in &seqs {
            let stack = self.new_stack_for("marks", &mut fwd, capacity);
            let log = self.logs[a];
            let len = self.func.new_var("mark", Kind::Int, false);
            at_start.push(Stmt::Let {
                var: len,
                rhs: Rhs::Len(log),
            });
            at_start.push(Stmt::Push {
                array: stack,
                value: Atom::Var(len),
            });
            let m = self.func.new_var("mark", Kind::Int, false);
            seq_marks.push(Stmt::Let {
                var: m,
                rhs: Rhs::Pop(stack),
            });
            seq_marks.push(Stmt::Undo {
                log,
                array: *a,
                mark: Some(Atom::Var(m)),
            });
        }
        for m in &carried {
            let info = self.func.info(*m).clone();
            let stack = self.new_stack_for(&format!("{}_stack", info.name), &mut fwd, capacity);
            at_start.push(Stmt::Push {
                array: stack,
                value: Atom::Var(*m),
            });
            let t = self.func.new_var(&info.name, info.kind, false);
            restore.push(Stmt::Let {
                var: t,
                rhs: Rhs::Pop(stack),
            });
            restore.push(Stmt::Assign {
                var: *m,
                value: Atom::Var(t),
            });
        }
        let primal = self.primal_logged(body);
        let joint = self.joint(body);
        match s {
            Stmt::For {
                index, range, exit, ..
            } if exit.is_empty() && range.is_simple() => {
                let mut b = at_start;
                b.extend(primal.stmts);
                fwd.push(rebodied(s, b));
                let mut rb = seq_marks;
                rb.extend(restore);
                rb.extend(joint.stmts);
                rev.push(Stmt::For {
                    index: *index,
                    range: reversed(range),
                    body: Block { stmts: rb },
                    exit: vec![],
                });
            }
            _ => {
                let (mut b, rev_trips) = self.counted_trips(s, &mut fwd, {
                    let mut undo = seq_marks;
                    undo.extend(restore);
                    undo.extend(joint.stmts);
                    undo
                });
                let mut pushes = at_start;
                pushes.append(&mut b);
                pushes.extend(primal.stmts);
                fwd.push(rebodied(s, pushes));
                rev.extend(rev_trips);
            }
        }
        (fwd, rev)
    }

    /// A loop that counts its trips (a `while`, a `loop`, a `for` with exits or over an
    /// adapted range): the stacks it needs, declared in `fwd`; what each trip pushes first
    /// (the index of a `for`, `true` for the others; and for a `for` a mark, which under
    /// `vmap` becomes the mask of the examples still running); and the reverse sweep, which
    /// walks the trips back, each restoring its index and running `undo` under its mark.
    fn counted_trips(
        &mut self,
        s: &Stmt,
        fwd: &mut Vec<Stmt>,
        undo: Vec<Stmt>,
    ) -> (Vec<Stmt>, Vec<Stmt>) {
        let trips = self.new_stack("trips", fwd);
        let (marker, idx) = match s {
            Stmt::For { index, .. } => (Atom::Var(*index), Some(*index)),
            _ => (Atom::Bool(true), None),
        };
        // (a `for` with exits also marks each trip, as a `while` does with `true`:
        // batched, the mark is the mask of the examples still running)
        let marks = idx.map(|_| self.new_stack("marks", fwd));
        let mut b = vec![Stmt::Push {
            array: trips,
            value: marker,
        }];
        if let Some(m) = marks {
            b.push(Stmt::Push {
                array: m,
                value: Atom::Bool(true),
            });
        }
        let n = self.func.new_var("n", Kind::Int, false);
        let mut rev = vec![Stmt::Let {
            var: n,
            rhs: Rhs::Len(trips),
        }];
        let k = self.func.new_var("k", Kind::Int, false);
        let popped = idx.unwrap_or_else(|| self.func.new_var("trip", Kind::Bool, false));
        let mut rb = vec![Stmt::Let {
            var: popped,
            rhs: Rhs::Pop(trips),
        }];
        // (always set here; batched, set only for the examples that made this trip:
        // the others' adjoints pass through it unchanged)
        let mark = match marks {
            Some(m) => {
                let mark = self.func.new_var("mark", Kind::Bool, false);
                rb.push(Stmt::Let {
                    var: mark,
                    rhs: Rhs::Pop(m),
                });
                mark
            }
            None => popped,
        };
        rb.push(Stmt::If {
            cond: Atom::Var(mark),
            then: Block { stmts: undo },
            els: Block::default(),
        });
        rev.push(Stmt::For {
            index: k,
            range: Range {
                lo: Atom::Int(0),
                hi: Atom::Var(n),
                inclusive: false,
                adapters: vec![],
            },
            body: Block { stmts: rb },
            exit: vec![],
        });
        (b, rev)
    }
}

use crate::primitives::Prim;

/// The loop `s` with `stmts` for its body.
fn rebodied(s: &Stmt, stmts: Vec<Stmt>) -> Stmt {
    let mut s = s.clone();
    if let Stmt::For { body, .. } | Stmt::Loop { body, .. } = &mut s {
        *body = Block { stmts };
    }
    s
}

/// A simple range walked the other way (`.rev()` toggled).
fn reversed(range: &Range) -> Range {
    let mut r = range.clone();
    match r.adapters.last() {
        Some(Adapter::Rev) => {
            r.adapters.pop();
        }
        _ => r.adapters.push(Adapter::Rev),
    }
    r
}

/// Whether every read of `v` in `block` only takes its shape: the `like` of a cotangent
/// fitting, a reduction's transpose or a zero.
fn shape_only(block: &Block, v: Var) -> bool {
    let mut ok = true;
    walk(block, &mut |s| {
        let uses: Vec<(usize, Atom)> = match s {
            Stmt::Let { rhs, .. } => match rhs {
                Rhs::Prim(p, args) => {
                    let like = match p {
                        Prim::SumTo | Prim::BroadcastLike | Prim::ReshapeLike | Prim::Fold => {
                            Some(1)
                        }
                        Prim::UnsumAxis => Some(1),
                        Prim::MatmulTl | Prim::MatmulTr | Prim::ConvTl | Prim::ConvTr => Some(2),
                        Prim::Numel | Prim::AxisLen => Some(0),
                        _ => None,
                    };
                    args.iter()
                        .enumerate()
                        .filter(|(k, _)| Some(*k) != like)
                        .map(|(k, a)| (k, *a))
                        .collect()
                }
                Rhs::NewSeq(NewSeq::ZerosLike(_)) => vec![],
                rhs => rhs_uses(rhs).into_iter().enumerate().collect(),
            },
            other => {
                let one = Block {
                    stmts: vec![other.clone()],
                };
                if children(other).is_empty() {
                    read_vars(&one)
                        .into_iter()
                        .map(|x| (0, Atom::Var(x)))
                        .collect()
                } else {
                    vec![]
                }
            }
        };
        if uses.iter().any(|(_, a)| *a == Atom::Var(v)) {
            ok = false;
        }
    });
    ok
}

/// Removes the user's effects (`Stmt::Effect`) from statements and the blocks inside them.
fn drop_effects(stmts: &mut Vec<Stmt>) {
    stmts.retain(|s| !matches!(s, Stmt::Effect(_)));
    for s in stmts {
        for c in children_mut(s) {
            drop_effects(&mut c.stmts);
        }
    }
}
