//! Clean-ups of transformed IR that matter for speed.
//!
//! [`first_writes`]: an adjoint starts at zero and is accumulated with `+=`; its first
//! accumulation becomes a plain assignment. Under IEEE rules `0.0 + x` is not `x` (for
//! `x = -0.0`), so LLVM may not drop the addition itself, and in a loop the leftover
//! additions form a loop-carried chain that blocks vectorisation.

use crate::ir::*;
use std::collections::HashSet;

/// Turns `a = 0; .. a += v` (nothing reading `a` between) into `a = 0; .. a = v`, in every block.
pub fn first_writes(block: &mut Block) {
    let mut zero: HashSet<Var> = HashSet::new();
    for s in block.stmts.iter_mut() {
        match s {
            Stmt::Let {
                var,
                rhs: Rhs::Atom(Atom::Float(z)),
            }
            | Stmt::Assign {
                var,
                value: Atom::Float(z),
            } if *z == 0.0 => {
                zero.insert(*var);
                continue;
            }
            Stmt::AddAssign { var, value } if zero.contains(var) => {
                let (var, value) = (*var, *value);
                if value != Atom::Var(var) {
                    *s = Stmt::Assign { var, value };
                    zero.remove(&var);
                    continue;
                }
            }
            _ => {}
        }
        // Anything this statement reads or writes is no longer known to be zero.
        let one = Block {
            stmts: vec![s.clone()],
        };
        for v in read_vars(&one).into_iter().chain(assigned_vars(&one)) {
            zero.remove(&v);
        }
        if let Stmt::Let { var, .. } = s {
            zero.remove(var);
        }
        match s {
            Stmt::If { then, els, .. } => {
                first_writes(then);
                first_writes(els);
            }
            Stmt::Match { arms, .. } => arms.iter_mut().for_each(|a| first_writes(&mut a.body)),
            Stmt::For { body, .. } | Stmt::Loop { body, .. } => first_writes(body),
            _ => {}
        }
    }
}

/// Adjoint accumulation into a sequence at `i + c` inside a loop over `i` (a stencil such as
/// `x[i]` and `x[i + 1]` read in the primal) is carried in registers from one iteration to the
/// next, so that each element is written once, when no later iteration touches it:
///
/// ```text
/// for i in (lo..hi).rev() { .. a[i + 1] += u; a[i] += v; }
/// // becomes
/// let mut r = 0; for i in (lo..hi).rev() { .. a[i + 1] += r + u; r = v; }  if lo < hi { a[lo] += r; }
/// ```
///
/// Without it the reverse sweep reads back, in iteration k, what iteration k + 1 just
/// stored, and is several times slower than the primal.
pub fn carry_adjoint_stores(func: &mut Func, block: &mut Block) {
    let mut out = Vec::with_capacity(block.stmts.len());
    for mut s in std::mem::take(&mut block.stmts) {
        match &mut s {
            Stmt::If { then, els, .. } => {
                carry_adjoint_stores(func, then);
                carry_adjoint_stores(func, els);
            }
            Stmt::Match { arms, .. } => arms
                .iter_mut()
                .for_each(|a| carry_adjoint_stores(func, &mut a.body)),
            Stmt::For { body, .. } | Stmt::Loop { body, .. } => carry_adjoint_stores(func, body),
            _ => {}
        }
        let mut after = Vec::new();
        if let Stmt::For {
            index,
            range,
            body,
            exit,
        } = &mut s
            && exit.is_empty()
            && range.is_simple()
        {
            let descending = range.adapters.len() % 2 == 1;
            let (pre, post) = carry_loop(func, *index, range, descending, body);
            out.extend(pre);
            after = post;
        }
        out.push(s);
        out.extend(after);
    }
    block.stmts = out;
}

/// Offset of `t` from the loop index when the body defines `t = i + c` / `i - c`.
fn offsets(index: Var, body: &Block) -> std::collections::HashMap<Var, i128> {
    let mut m = std::collections::HashMap::new();
    m.insert(index, 0);
    for s in &body.stmts {
        if let Stmt::Let {
            var,
            rhs: Rhs::Prim(p, args),
        } = s
        {
            let c = match (p, args.as_slice()) {
                (Prim::Add, [Atom::Var(v), Atom::Int(c)])
                | (Prim::Add, [Atom::Int(c), Atom::Var(v)])
                    if *v == index =>
                {
                    *c as i128
                }
                (Prim::Sub, [Atom::Var(v), Atom::Int(c)]) if *v == index => -(*c as i128),
                _ => continue,
            };
            m.insert(*var, c);
        }
    }
    m
}

fn index_plus(func: &mut Func, stmts: &mut Vec<Stmt>, base: Atom, c: i128) -> Atom {
    if c == 0 {
        return base;
    }
    let (p, k) = if c > 0 {
        (Prim::Add, c as u128)
    } else {
        (Prim::Sub, (-c) as u128)
    };
    let v = func.new_var("at", Kind::Int, false);
    stmts.push(Stmt::Let {
        var: v,
        rhs: Rhs::Prim(p, vec![base, Atom::Int(k)]),
    });
    Atom::Var(v)
}

/// Rewrites one loop body; returns what goes before and after the loop.
fn carry_loop(
    func: &mut Func,
    index: Var,
    range: &Range,
    descending: bool,
    body: &mut Block,
) -> (Vec<Stmt>, Vec<Stmt>) {
    let offs = offsets(index, body);
    // Sequences only ever accumulated into at `i + c`, at the top level of the body.
    let mut candidates: Vec<Var> = Vec::new();
    for s in &body.stmts {
        if let Stmt::AddStore {
            array,
            index: Atom::Var(t),
            ..
        } = s
            && offs.contains_key(t)
            && !candidates.contains(array)
        {
            candidates.push(*array);
        }
    }
    let declared = declared_vars(body);
    let mut pre = Vec::new();
    let mut post = Vec::new();
    for a in candidates {
        if declared.contains(&a) {
            continue;
        }
        let only_stores = body.stmts.iter().all(|s| match s {
            Stmt::AddStore {
                array,
                index: Atom::Var(t),
                ..
            } if *array == a => offs.contains_key(t),
            other => {
                let one = Block {
                    stmts: vec![other.clone()],
                };
                !read_vars(&one).contains(&a) && !assigned_vars(&one).contains(&a)
            }
        });
        if !only_stores {
            continue;
        }
        let kind = match &func.info(a).kind {
            Kind::Seq(_, p) => Kind::Float(*p),
            _ => Kind::Float(Prec::Infer),
        };
        // Replace each store by a snapshot of its value; sum them per offset.
        let mut per_offset: std::collections::BTreeMap<i128, Vec<Atom>> =
            std::collections::BTreeMap::new();
        let mut stmts = Vec::with_capacity(body.stmts.len());
        for s in std::mem::take(&mut body.stmts) {
            match s {
                Stmt::AddStore {
                    array,
                    index: Atom::Var(t),
                    value,
                } if array == a => {
                    let snap = func.new_var("contrib", kind.clone(), false);
                    stmts.push(Stmt::Let {
                        var: snap,
                        rhs: Rhs::Atom(value),
                    });
                    per_offset
                        .entry(offs[&t])
                        .or_default()
                        .push(Atom::Var(snap));
                }
                other => stmts.push(other),
            }
        }
        let (Some(cmin), Some(cmax)) = (
            per_offset.keys().next().copied(),
            per_offset.keys().last().copied(),
        ) else {
            body.stmts = stmts;
            continue;
        };
        let sum_of = |func: &mut Func, stmts: &mut Vec<Stmt>, c: i128| -> Option<Atom> {
            let vals = per_offset.get(&c)?;
            let mut acc = vals[0];
            for v in &vals[1..] {
                let t = func.new_var("contrib", kind.clone(), false);
                stmts.push(Stmt::Let {
                    var: t,
                    rhs: Rhs::Prim(Prim::Add, vec![acc, *v]),
                });
                acc = Atom::Var(t);
            }
            Some(acc)
        };
        let m = (cmax - cmin) as usize;
        let regs: Vec<Var> = (0..m)
            .map(|_| func.new_var("carry", kind.clone(), true))
            .collect();
        for r in &regs {
            pre.push(Stmt::Let {
                var: *r,
                rhs: Rhs::Atom(Atom::Float(0.0)),
            });
        }
        // The element finished by this iteration, and the order of the pending ones.
        let (done, step): (i128, i128) = if descending { (cmax, -1) } else { (cmin, 1) };
        let i = Atom::Var(index);
        let at = index_plus(func, &mut stmts, i, done);
        let mut flush = sum_of(func, &mut stmts, done);
        if let Some(r1) = regs.first() {
            flush = Some(match flush {
                Some(v) => {
                    let t = func.new_var("contrib", kind.clone(), false);
                    stmts.push(Stmt::Let {
                        var: t,
                        rhs: Rhs::Prim(Prim::Add, vec![Atom::Var(*r1), v]),
                    });
                    Atom::Var(t)
                }
                None => Atom::Var(*r1),
            });
        }
        if let Some(f) = flush {
            stmts.push(Stmt::AddStore {
                array: a,
                index: at,
                value: f,
            });
        }
        // r_d <- r_{d+1} + v(done + step*d), in increasing d.
        for d in 1..=m {
            let v = sum_of(func, &mut stmts, done + step * d as i128);
            let next = regs.get(d).copied();
            let new = match (next, v) {
                (Some(n), Some(v)) => {
                    let t = func.new_var("contrib", kind.clone(), false);
                    stmts.push(Stmt::Let {
                        var: t,
                        rhs: Rhs::Prim(Prim::Add, vec![Atom::Var(n), v]),
                    });
                    Atom::Var(t)
                }
                (Some(n), None) => Atom::Var(n),
                (None, Some(v)) => v,
                (None, None) => Atom::Float(0.0),
            };
            stmts.push(Stmt::Assign {
                var: regs[d - 1],
                value: new,
            });
        }
        body.stmts = stmts;
        if m == 0 {
            continue;
        }
        // After the loop: the pending elements of the last iteration, if there was one.
        let ran = func.new_var("ran", Kind::Bool, false);
        let cmp = if range.inclusive { Prim::Le } else { Prim::Lt };
        post.push(Stmt::Let {
            var: ran,
            rhs: Rhs::Prim(cmp, vec![range.lo, range.hi]),
        });
        let mut then = Vec::new();
        let last = if descending {
            range.lo
        } else if range.inclusive {
            range.hi
        } else {
            index_plus(func, &mut then, range.hi, -1)
        };
        for (d, r) in regs.iter().enumerate() {
            let at = index_plus(func, &mut then, last, done + step * (d as i128 + 1));
            then.push(Stmt::AddStore {
                array: a,
                index: at,
                value: Atom::Var(*r),
            });
        }
        post.push(Stmt::If {
            cond: Atom::Var(ran),
            then: Block { stmts: then },
            els: Block::default(),
        });
    }
    (pre, post)
}

use crate::primitives::Prim;
