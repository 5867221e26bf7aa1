//! Analyses over the IR.
//!
//! - [`varied`]: activity, forward half. A value is varied when it depends on an active
//!   input through differentiable primitives. Only varied values get tangents/adjoints.
//! - [`check_activity`]: reports operations that cannot carry a derivative but receive one.
//! - [`dce`]: strong liveness and dead-code elimination. Run on a transform's output it is
//!   the backward half of activity (no adjoint code for values no output depends on) and
//!   the to-be-recorded analysis: the reverse sweep restores a value from a stack only if
//!   something after the restore reads it, and a stack is filled in the forward sweep only
//!   if some restore from it survives. Everything else the forward sweep would have saved is
//!   dropped, and loops that only compute values nobody needs disappear.

use crate::ctxt::Ctxt;
use crate::ir::*;
use std::cell::RefCell;
use std::collections::HashSet;

/// Variables that depend on an active parameter.
pub fn varied(func: &Func) -> HashSet<Var> {
    let mut set: HashSet<Var> = func
        .params
        .iter()
        .filter(|p| p.active)
        .map(|p| p.var)
        .collect();
    loop {
        let before = set.len();
        let mut add = Vec::new();
        walk(&func.body, &mut |s| {
            let is = |a: &Atom| matches!(a, Atom::Var(v) if set.contains(v));
            let diff = |v: &Var| func.info(*v).kind.is_differentiable();
            match s {
                // (a call of a callee's derivative gives a tuple, varied with its arguments,
                // and so are the fields read out of it: transforms over transformed code must
                // see that they carry derivatives)
                Stmt::Let { var, rhs }
                    if (diff(var)
                        || matches!(rhs, Rhs::Call { mode, .. } if *mode != CallMode::Primal)
                        || matches!(rhs, Rhs::Field(..)))
                        && rhs_varied(rhs, &set) =>
                {
                    add.push(*var)
                }
                Stmt::Assign { var, value } | Stmt::AddAssign { var, value }
                    if diff(var) && is(value) =>
                {
                    add.push(*var)
                }
                Stmt::Store { array, value, .. }
                | Stmt::AddStore { array, value, .. }
                | Stmt::Push { array, value }
                    if is(value) =>
                {
                    add.push(*array)
                }
                Stmt::AddSeq { target, value, .. } if set.contains(value) => add.push(*target),
                Stmt::AddProject { target, value, .. } if is(value) => add.push(*target),
                // An undo log of a varied sequence holds varied values.
                Stmt::LogWrite { log, array, .. } if set.contains(array) => add.push(*log),
                _ => {}
            }
        });
        set.extend(add);
        if set.len() == before {
            return set;
        }
    }
}

/// Activity, backward half, before any transform: the variables the output depends on
/// through values that can carry a derivative (every data dependence but through a
/// primitive the table gives no derivative, such as `stop_gradient`, or a shape donor: the
/// mirror of [`varied`]). Reverse mode gives adjoints only to varied values in this set: any
/// other's cotangent is zero (a residual computed for a stopping test,
/// `stop_gradient(&(&next - &h).abs().max())`, which would otherwise be transposed at every
/// step of a reverse sweep, its zero cotangent and all).
pub fn useful(func: &Func) -> HashSet<Var> {
    let mut set: HashSet<Var> = func.output.var().into_iter().collect();
    loop {
        let before = set.len();
        let mut add = Vec::new();
        walk(&func.body, &mut |s| match s {
            // (through a primitive, only what the table gives a derivative: not the argument
            // of `stop_gradient`, nor a shape donor)
            Stmt::Let {
                var,
                rhs: Rhs::Prim(p, args),
            } if set.contains(var) && p.is_differentiable() => add.extend(
                args.iter()
                    .enumerate()
                    .filter(|(k, _)| !p.is_shape_arg(*k))
                    .filter_map(|(_, a)| a.var()),
            ),
            Stmt::Let {
                rhs: Rhs::Prim(..), ..
            } => {}
            Stmt::Let { var, rhs } if set.contains(var) => {
                add.extend(rhs_uses(rhs).iter().filter_map(|a| a.var()))
            }
            Stmt::Assign { var, value } | Stmt::AddAssign { var, value } if set.contains(var) => {
                add.extend(value.var())
            }
            Stmt::Store { array, value, .. }
            | Stmt::AddStore { array, value, .. }
            | Stmt::Push { array, value }
                if set.contains(array) =>
            {
                add.extend(value.var())
            }
            Stmt::AddSeq { target, value, .. } if set.contains(target) => add.push(*value),
            Stmt::AddProject { target, value, .. } if set.contains(target) => {
                add.extend(value.var())
            }
            Stmt::Match { scrut, arms }
                if arms.iter().any(|a| a.binds.iter().any(|b| set.contains(b))) =>
            {
                add.extend(scrut.var())
            }
            _ => {}
        });
        set.extend(add);
        if set.len() == before {
            return set;
        }
    }
}

fn rhs_varied(rhs: &Rhs, set: &HashSet<Var>) -> bool {
    let is = |a: &Atom| matches!(a, Atom::Var(v) if set.contains(v));
    match rhs {
        Rhs::Atom(a) => is(a),
        Rhs::Prim(p, args) => {
            p.is_differentiable()
                && args
                    .iter()
                    .enumerate()
                    .any(|(k, a)| !p.is_shape_arg(k) && is(a))
        }
        Rhs::Index(v, _)
        | Rhs::Sum(v)
        | Rhs::Field(v, _)
        | Rhs::Pop(v)
        | Rhs::Project(v, _)
        | Rhs::ProjectTangent(v, _)
        | Rhs::SubSlice(v, ..)
        | Rhs::NewSeq(NewSeq::CopyOf(v)) => set.contains(v),
        Rhs::NewSeq(NewSeq::Filled { value, .. })
        | Rhs::NewSeq(NewSeq::ArrayRepeat { value, .. }) => is(value),
        Rhs::NewSeq(NewSeq::ArrayOf(items)) | Rhs::Tuple(items) => items.iter().any(is),
        Rhs::Call { args, .. } => args.iter().any(|a| is(&a.atom)),
        _ => false,
    }
}

/// Reports method calls that are not differentiable primitives but receive varied values.
pub fn check_activity(cx: &Ctxt, func: &Func, varied: &HashSet<Var>) {
    let is = |a: &Atom| matches!(a, Atom::Var(v) if varied.contains(v));
    walk(&func.body, &mut |s| {
        // a tuple as a value (an `if`'s or a `match`'s, or bound whole): its parts would
        // lose their derivatives
        if let Stmt::Let {
            var,
            rhs: Rhs::Tuple(items),
        } = s
            && items.iter().any(is)
            && func.output != Atom::Var(*var)
        {
            cx.error_at(
                func.info(*var).span.unwrap_or_else(proc_macro2::Span::call_site),
                "a tuple holding values with a derivative is supported only where it is destructured as it is made (`let (a, b) = (x, y);`): not as an `if`'s or a `match`'s value, nor bound whole; compute each value on its own (`let a = if c { x } else { y };`)",
            );
        }
        // a struct literal: a configuration, whose fields carry no derivative
        if let Stmt::Let {
            var,
            rhs: Rhs::Struct { fields, .. },
        } = s
            && fields.iter().any(|(_, a)| is(a))
        {
            cx.error_at(
                func.info(*var).span.unwrap_or_else(proc_macro2::Span::call_site),
                "a struct literal holding values with a derivative is not supported (its fields would lose their derivatives): pass the values on as arguments, or build the struct outside and take it as a parameter",
            );
        }
        if let Stmt::Let {
            rhs:
                Rhs::Method {
                    recv,
                    method,
                    args,
                    span,
                },
            ..
        } = s
            && (is(recv) || args.iter().any(|a| is(&a.atom)))
        {
            cx.error_at(
                    *span,
                    format!(
                        "`.{method}()` cannot be differentiated: it is not a supported float method or its receiver is not a float. Supported: {}; wrap inactive values in `stop_gradient(..)`",
                        crate::primitives::Prim::method_names()
                    ),
                );
        }
    });
}

type Set = HashSet<Var>;

/// Removes every statement of `block` whose effect no output reads.
/// `outputs`: variables read after the block; `keep`: variables whose `let` always stays.
pub fn dce(block: &mut Block, outputs: &Set, keep: &Set) {
    let mut forced = Set::new();
    loop {
        let d = Dce {
            forced: forced.clone(),
            keep,
            found: RefCell::new(Set::new()),
            assigned: RefCell::new(Set::new()),
        };
        d.analyse(block, outputs.clone());
        let found = d.found.into_inner();
        if found.is_subset(&forced) {
            break;
        }
        forced.extend(found);
    }
    let d = Dce {
        forced,
        keep,
        found: RefCell::new(Set::new()),
        assigned: RefCell::new(Set::new()),
    };
    d.sweep(block, outputs.clone());
}

struct Dce<'k> {
    /// Stacks and logs whose every pop / undo must stay (some of them is needed).
    forced: Set,
    keep: &'k Set,
    found: RefCell<Set>,
    /// Mutable variables with a surviving assignment: their declaration must stay.
    assigned: RefCell<Set>,
}

fn add(live: &mut Set, a: &Atom) {
    if let Atom::Var(v) = a {
        live.insert(*v);
    }
}

impl Dce<'_> {
    /// A simple statement: whether it is needed, updating `live` (after -> before) if so.
    fn simple(&self, s: &Stmt, live: &mut Set) -> bool {
        let needed = match s {
            Stmt::Let { var, rhs } => {
                let forced_pop = matches!(rhs, Rhs::Pop(st) if self.forced.contains(st));
                live.contains(var)
                    || forced_pop
                    || self.keep.contains(var)
                    || self.assigned.borrow().contains(var)
            }
            Stmt::Assign { var, .. } | Stmt::AddAssign { var, .. } => live.contains(var),
            Stmt::Store { array, .. } | Stmt::AddStore { array, .. } | Stmt::Push { array, .. } => {
                live.contains(array)
            }
            Stmt::AddSeq { target, .. } | Stmt::AddProject { target, .. } => live.contains(target),
            Stmt::LogWrite { log, .. } => live.contains(log),
            Stmt::Undo { log, array, .. } => live.contains(array) || self.forced.contains(log),
            // run for its effect: always needed
            Stmt::Effect(_) => true,
            _ => false,
        };
        if !needed {
            return false;
        }
        match s {
            Stmt::Let { var, rhs } => {
                live.remove(var);
                if let Rhs::Pop(st) = rhs {
                    self.found.borrow_mut().insert(*st);
                }
                rhs_uses(rhs).iter().for_each(|a| add(live, a));
            }
            Stmt::Assign { var, value } => {
                self.assigned.borrow_mut().insert(*var);
                live.remove(var);
                add(live, value);
            }
            Stmt::AddAssign { var, value } => {
                self.assigned.borrow_mut().insert(*var);
                add(live, value);
            }
            Stmt::Push { value, .. } => add(live, value),
            Stmt::Store { index, value, .. } | Stmt::AddStore { index, value, .. } => {
                add(live, index);
                add(live, value);
            }
            Stmt::AddSeq { value, offset, .. } => {
                live.insert(*value);
                if let Some(o) = offset {
                    add(live, o);
                }
            }
            Stmt::AddProject { path, value, .. } => {
                proj_atoms(path).iter().for_each(|a| add(live, a));
                add(live, value);
            }
            Stmt::LogWrite { array, index, .. } => {
                live.insert(*array);
                if let Some(i) = index {
                    add(live, i);
                }
            }
            Stmt::Undo { log, array, mark } => {
                self.found.borrow_mut().insert(*log);
                live.insert(*log);
                live.insert(*array);
                if let Some(m) = mark {
                    add(live, m);
                }
            }
            Stmt::Effect(e) => e.reads().iter().for_each(|a| add(live, a)),
            _ => {}
        }
        true
    }

    /// Live-in of a block given its live-out, and whether anything in it is needed.
    fn analyse(&self, b: &Block, mut live: Set) -> (Set, bool) {
        let mut any = false;
        for s in b.stmts.iter().rev() {
            any |= self.stmt(s, &mut live, None);
        }
        (live, any)
    }

    /// Like [`Dce::analyse`], removing what is not needed.
    fn sweep(&self, b: &mut Block, mut live: Set) -> (Set, bool) {
        let mut any = false;
        let mut kept = Vec::with_capacity(b.stmts.len());
        for mut s in std::mem::take(&mut b.stmts).into_iter().rev() {
            if self.stmt(&s.clone(), &mut live, Some(&mut s)) {
                any = true;
                kept.push(s);
            }
        }
        kept.reverse();
        b.stmts = kept;
        (live, any)
    }

    fn block(&self, b: &Block, live: Set, out: Option<&mut Block>) -> (Set, bool) {
        match out {
            Some(m) => self.sweep(m, live),
            None => self.analyse(b, live),
        }
    }

    /// One statement; with `out`, its nested blocks are swept too.
    fn stmt(&self, s: &Stmt, live: &mut Set, out: Option<&mut Stmt>) -> bool {
        match (s, out) {
            (Stmt::If { cond, then, els }, out) => {
                let (mt, me) = match out {
                    Some(Stmt::If { then, els, .. }) => (Some(then), Some(els)),
                    _ => (None, None),
                };
                let (lt, at) = self.block(then, live.clone(), mt);
                let (le, ae) = self.block(els, live.clone(), me);
                if !(at || ae) {
                    return false;
                }
                live.extend(lt);
                live.extend(le);
                add(live, cond);
                true
            }
            (Stmt::Match { scrut, arms }, out) => {
                let mut outs: Vec<Option<&mut Block>> = match out {
                    Some(Stmt::Match { arms, .. }) => {
                        arms.iter_mut().map(|a| Some(&mut a.body)).collect()
                    }
                    _ => arms.iter().map(|_| None).collect(),
                };
                let mut any = false;
                let mut acc = Set::new();
                for (arm, o) in arms.iter().zip(outs.iter_mut()) {
                    let (l, a) = self.block(&arm.body, live.clone(), o.take());
                    any |= a;
                    acc.extend(l);
                }
                if !any {
                    return false;
                }
                live.extend(acc);
                add(live, scrut);
                true
            }
            (
                Stmt::For {
                    index,
                    range,
                    body,
                    exit,
                },
                out,
            ) => {
                let mb = match out {
                    Some(Stmt::For { body, .. }) => Some(body),
                    _ => None,
                };
                if !self.looped(body, exit, live, mb) {
                    return false;
                }
                live.remove(index);
                range.atoms().iter().for_each(|a| add(live, a));
                true
            }
            (Stmt::Loop { body, exit }, out) => {
                let mb = match out {
                    Some(Stmt::Loop { body, .. }) => Some(body),
                    _ => None,
                };
                self.looped(body, exit, live, mb)
            }
            (s, _) => self.simple(s, live),
        }
    }

    /// A loop body: iterate liveness to a fixpoint, then sweep with it.
    fn looped(&self, body: &Block, exit: &[Var], live: &mut Set, out: Option<&mut Block>) -> bool {
        let mut head: Set = live.clone();
        head.extend(exit.iter().copied());
        let mut any;
        loop {
            let (inb, a) = self.analyse(body, head.clone());
            any = a;
            let mut next = head.clone();
            next.extend(inb);
            if next == head {
                break;
            }
            head = next;
        }
        if !any {
            return false;
        }
        if let Some(m) = out {
            self.sweep(m, head.clone());
        }
        live.extend(head);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A residual computed for a stopping test reaches the output only through
    /// `stop_gradient`: varied, but not useful, so reverse mode gives it no adjoint.
    #[test]
    fn a_stopping_residual_is_varied_but_not_useful() {
        let item: syn::ItemFn = syn::parse_quote! {
            fn solve(x: &Tensor, w: &Tensor) -> Tensor {
                let mut h = x.zeros_like();
                let mut step = 1.0;
                while step > 1e-6 {
                    let next = (h.matmul(w) + x).tanh();
                    let r = (&next - &h).abs().max();
                    step = stop_gradient(&r).item::<f64>();
                    h = next;
                }
                h.sum()
            }
        };
        let cx = Ctxt::new();
        let (func, _) = crate::parse::lower(&cx, &item, &Default::default());
        assert!(cx.check().is_ok());
        let (varied, useful) = (varied(&func), useful(&func));
        let named = |name: &str| {
            (0..func.vars.len())
                .map(|i| Var(i as u32))
                .filter(|v| func.info(*v).name == name)
                .collect::<Vec<_>>()
        };
        let (next, r) = (named("next"), named("r"));
        assert!(!next.is_empty() && !r.is_empty());
        assert!(
            next.iter()
                .all(|v| varied.contains(v) && useful.contains(v))
        );
        assert!(r.iter().all(|v| varied.contains(v) && !useful.contains(v)));
    }
}
