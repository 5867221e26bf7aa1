//! Clean-ups of transformed IR that matter for speed.
//!
//! [`first_writes`]: an adjoint starts at zero and is accumulated with `+=`; its first
//! accumulation becomes a plain assignment. Under IEEE rules `0.0 + x` is not `x` (for
//! `x = -0.0`), so LLVM may not drop the addition itself, and in a loop the leftover
//! additions form a loop-carried chain that blocks vectorisation.
//!
//! [`gather_adjoint_stores`]: a reverse loop of independent iterations that scatters into
//! `a[i + c]` becomes loops over the elements, each summing the contributions that reach it
//! and writing it once (vectorisable). [`carry_adjoint_stores`]: where that does not apply,
//! stencil accumulations are carried in registers so each element is still written once.
//!
//! [`fill_gathered`]: a gradient the gather loops write in full is never zeroed first.

use crate::ir::*;
use std::collections::HashSet;

/// Turns `a = 0; .. a += v` (nothing reading `a` between) into `a = 0; .. a = v`, in every
/// block. A tensor adjoint's zero is not even made: `let a = zeros; .. a += v` becomes
/// `.. let a = v`.
pub fn first_writes(func: &Func, block: &mut Block) {
    let mut zero: HashSet<Var> = HashSet::new();
    // Tensor adjoints declared zero in this block: where their `let` is.
    let mut tensor_zero: std::collections::HashMap<Var, usize> = Default::default();
    let mut dropped: HashSet<usize> = HashSet::new();
    for (k, s) in block.stmts.iter_mut().enumerate() {
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
            Stmt::Let {
                var,
                rhs: Rhs::NewSeq(NewSeq::ZerosLike(_)),
            } if func.info(*var).kind.is_tensor() => {
                zero.insert(*var);
                tensor_zero.insert(*var, k);
                continue;
            }
            Stmt::AddAssign { var, value } if zero.contains(var) => {
                let (var, value) = (*var, *value);
                if value != Atom::Var(var) {
                    zero.remove(&var);
                    if let Some(at) = tensor_zero.remove(&var) {
                        dropped.insert(at);
                        *s = Stmt::Let {
                            var,
                            rhs: Rhs::Atom(value),
                        };
                    } else {
                        *s = Stmt::Assign { var, value };
                    }
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
            tensor_zero.remove(&v);
        }
        if let Stmt::Let { var, .. } = s {
            zero.remove(var);
            tensor_zero.remove(var);
        }
        match s {
            Stmt::If { then, els, .. } => {
                first_writes(func, then);
                first_writes(func, els);
            }
            Stmt::Match { arms, .. } => arms
                .iter_mut()
                .for_each(|a| first_writes(func, &mut a.body)),
            Stmt::For { body, .. } | Stmt::Loop { body, .. } => first_writes(func, body),
            _ => {}
        }
    }
    if !dropped.is_empty() {
        let mut k = 0;
        block.stmts.retain(|_| {
            k += 1;
            !dropped.contains(&(k - 1))
        });
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

/// A reverse-sweep loop whose iterations are independent and whose only effects are
/// accumulations `a[i + c] += v` into outer sequences (c < 0 only where the range starts at
/// a constant of at least -c, see [`below_start_ok`]) is turned inside out: instead
/// of each iteration scattering into `a[i]`, `a[i + 1]`, .., each element `a[j]` gathers the
/// contributions of the iterations `j - c` that reach it, recomputing what they need:
///
/// ```text
/// for i in (lo..hi).rev() { .. a[i + 1] += u; a[i] += v; }
/// // becomes, for lo < hi (head and tail loops guard each contribution by lo <= j - c < hi)
/// for j in lo..lo + 1 { guarded }
/// for j in lo + 1..hi { let mut g = 0; { i = j; .. g += v } { i = j - 1; .. g += u } a[j] += g; }
/// for j in hi..hi + 1 { guarded }
/// ```
///
/// Each element is then written once by a loop with no dependence between iterations, which
/// LLVM vectorises; the scatter form must carry partial sums from one iteration to the next
/// (see [`carry_adjoint_stores`]), a chain that strict IEEE order keeps scalar. The loop may
/// run in any order because (checked here) an iteration reads nothing another one writes: its
/// body is straight-line code whose only writes outside it are those accumulations (into
/// sequences it does not read) and copies of an outer scalar's own value back into it. The
/// contributions to one element are summed in a different order than before (rounding only).
pub fn gather_adjoint_stores(func: &mut Func, block: &mut Block) {
    let mut out = Vec::with_capacity(block.stmts.len());
    // Sequences created zero in this block and untouched since: a gather loop stores into
    // them instead of adding (no read of the zero pages just allocated).
    let mut fresh: HashSet<Var> = HashSet::new();
    for mut s in std::mem::take(&mut block.stmts) {
        match &mut s {
            Stmt::If { then, els, .. } => {
                gather_adjoint_stores(func, then);
                gather_adjoint_stores(func, els);
            }
            Stmt::Match { arms, .. } => arms
                .iter_mut()
                .for_each(|a| gather_adjoint_stores(func, &mut a.body)),
            Stmt::For { body, .. } | Stmt::Loop { body, .. } => gather_adjoint_stores(func, body),
            _ => {}
        }
        if let Stmt::For {
            index,
            range,
            body,
            exit,
        } = &s
            && exit.is_empty()
            && range.is_simple()
            && !range.inclusive
            && invariant(func, range.lo)
            && invariant(func, range.hi)
            && let Some(stencil) = independent_stencil(func, *index, body)
            && below_start_ok(range.lo, &stencil)
        {
            out.extend(gather_loops(func, *index, range, &stencil, &fresh));
            fresh.retain(|v| !stencil.arrays.contains(v));
            continue;
        }
        if let Stmt::Let {
            var,
            rhs: Rhs::NewSeq(NewSeq::ZerosLike(_)),
        } = &s
        {
            fresh.insert(*var);
        } else {
            let one = Block {
                stmts: vec![s.clone()],
            };
            for v in read_vars(&one).into_iter().chain(assigned_vars(&one)) {
                fresh.remove(&v);
            }
        }
        out.push(s);
    }
    block.stmts = out;
}

/// A sequence created zero whose first use is a set of loops that each store every element
/// of their range once (what [`gather_adjoint_stores`] makes of a gradient) is created empty
/// instead, and filled: its `let` becomes [`NewSeq::ToFill`], those loops
/// [`Adapter::Fill`] loops, and a [`Stmt::FillRest`] after them zeroes what they did not
/// write. The zeros cost a full pass over memory: on the Rosenbrock gradient of a million
/// f64, 0.34 ms with them against 0.26 ms without. Any set of such loops is handled, in any
/// order and overlapping (`__private::fill_for` keeps the semantics of stores into zeros);
/// what must hold is that nothing reads the sequence, or writes it otherwise, before the
/// `FillRest`. Run on IR about to be emitted: no transform understands its result.
pub fn fill_gathered(func: &Func, block: &mut Block) {
    for s in &mut block.stmts {
        for b in children_mut(s) {
            fill_gathered(func, b);
        }
    }
    // (sequence, its `let`, the first statement touching it, the sequence it is as long as)
    let mut cands: Vec<(Var, usize, usize, Var)> = Vec::new();
    let plain = |v: Var| matches!(func.info(v).kind, Kind::Seq(Seq::Slice | Seq::Vec, _));
    for (p, s) in block.stmts.iter().enumerate() {
        let Stmt::Let {
            var,
            rhs: Rhs::NewSeq(NewSeq::ZerosLike(like)),
        } = s
        else {
            continue;
        };
        if !plain(*var) || !plain(*like) || func.info(*like).mutable {
            continue;
        }
        if let Some(q) = (p + 1..block.stmts.len()).find(|&q| touches(func, &block.stmts[q], *var))
        {
            cands.push((*var, p, q, *like));
        }
    }
    // A loop filling one candidate must fill only candidates first touched by the same
    // statement; drop those that break it until none does.
    while let Some(k) = cands.iter().position(|&(a, _, q, _)| {
        !only_fills(func, &block.stmts[q], a, &|w| {
            cands.iter().any(|&(b, _, r, _)| b == w && r == q)
        })
    }) {
        cands.remove(k);
    }
    if cands.is_empty() {
        return;
    }
    let like_of = |w: Var| cands.iter().find(|c| c.0 == w).map(|c| c.3);
    let mut rest: Vec<(usize, Stmt)> = Vec::new();
    for &(a, p, q, like) in &cands {
        block.stmts[p] = Stmt::Let {
            var: a,
            rhs: Rhs::NewSeq(NewSeq::ToFill(like)),
        };
        mark_fill_loops(func, &mut block.stmts[q], a, &like_of);
        rest.push((q, Stmt::FillRest { array: a, like }));
    }
    // each `FillRest` right after the statement that fills its sequence
    let mut out = Vec::with_capacity(block.stmts.len() + rest.len());
    for (k, s) in std::mem::take(&mut block.stmts).into_iter().enumerate() {
        out.push(s);
        out.extend(rest.iter().filter(|(q, _)| *q == k).map(|(_, f)| f.clone()));
    }
    block.stmts = out;
}

/// [`fill_gathered`] on a function's body.
pub fn fill_gathered_fn(func: &mut Func) {
    let mut body = std::mem::take(&mut func.body);
    fill_gathered(func, &mut body);
    func.body = body;
}

/// Whether `s` reads or writes `a` (through a view of it included).
fn touches(func: &Func, s: &Stmt, a: Var) -> bool {
    let one = Block {
        stmts: vec![s.clone()],
    };
    let root = |mut v: Var| {
        while let Some((base, ..)) = func.info(v).view {
            v = base;
        }
        v
    };
    read_vars(&one)
        .into_iter()
        .chain(assigned_vars(&one))
        .any(|v| root(v) == a)
}

/// Whether every statement of `s` that touches `a` is a fill loop ([`fill_loop`]) storing
/// into `a` and otherwise only into sequences `filled` accepts (through `if`s).
fn only_fills(func: &Func, s: &Stmt, a: Var, filled: &dyn Fn(Var) -> bool) -> bool {
    if !touches(func, s, a) {
        return true;
    }
    match s {
        Stmt::If { cond, then, els } => {
            *cond != Atom::Var(a)
                && then
                    .stmts
                    .iter()
                    .chain(&els.stmts)
                    .all(|s| only_fills(func, s, a, filled))
        }
        Stmt::For { .. } => {
            fill_loop(s).is_some_and(|ws| ws.contains(&a) && ws.iter().all(|w| filled(*w)))
        }
        _ => false,
    }
}

/// Marks the fill loops inside `s` (through `if`s) that store into `a` as [`Adapter::Fill`].
fn mark_fill_loops(func: &Func, s: &mut Stmt, a: Var, like_of: &dyn Fn(Var) -> Option<Var>) {
    if !touches(func, s, a) {
        return;
    }
    let ws = fill_loop(s);
    match s {
        Stmt::If { then, els, .. } => {
            for s in then.stmts.iter_mut().chain(els.stmts.iter_mut()) {
                mark_fill_loops(func, s, a, like_of);
            }
        }
        Stmt::For { range, .. } if range.fills().is_none() => {
            let fills: Option<Vec<(Var, Var)>> = ws
                .unwrap_or_default()
                .into_iter()
                .map(|w| like_of(w).map(|l| (w, l)))
                .collect();
            if let Some(fills) = fills {
                range.adapters.push(Adapter::Fill(fills));
            }
        }
        _ => {}
    }
}

/// The sequences a loop fills, where it is one that can: no early exit, an exclusive range
/// with no adapter but [`Adapter::Split`], and every variable it writes outside itself is a
/// sequence it never reads and stores into exactly once, at its top level, at the index.
fn fill_loop(s: &Stmt) -> Option<Vec<Var>> {
    let Stmt::For {
        index,
        range,
        body,
        exit,
    } = s
    else {
        return None;
    };
    if !exit.is_empty()
        || range.inclusive
        || !range.adapters.iter().all(|a| matches!(a, Adapter::Split))
    {
        return None;
    }
    let declared: HashSet<Var> = declared_vars(body).into_iter().collect();
    let reads: HashSet<Var> = read_vars(body).into_iter().collect();
    let outer: Vec<Var> = assigned_vars(body)
        .into_iter()
        .filter(|v| !declared.contains(v))
        .collect();
    let at_top = |w: Var| {
        body.stmts
            .iter()
            .filter(|s| {
                matches!(s, Stmt::Store { array, index: Atom::Var(j), .. } if *array == w && j == index)
            })
            .count()
    };
    let mut writes = 0;
    walk(body, &mut |s| {
        if let Stmt::Store { .. }
        | Stmt::AddStore { .. }
        | Stmt::Push { .. }
        | Stmt::AddSeq { .. }
        | Stmt::AddProject { .. }
        | Stmt::Undo { .. }
        | Stmt::FillRest { .. }
        | Stmt::Assign { .. }
        | Stmt::AddAssign { .. } = s
        {
            let one = Block {
                stmts: vec![s.clone()],
            };
            writes += assigned_vars(&one)
                .iter()
                .filter(|v| outer.contains(v))
                .count();
        }
    });
    let ok = !outer.is_empty()
        && writes == outer.len()
        && outer.iter().all(|w| at_top(*w) == 1 && !reads.contains(w));
    ok.then_some(outer)
}

/// Accumulations below the index (`a[i - c]`) gather from `j = lo - c` on: only where the
/// range starts at a constant of at least `c`, so that no index is computed below zero (a
/// range starting lower makes the primal's own `x[i - c]` fail, and the gradient must fail
/// the same way, which the scatter loop kept for it does).
fn below_start_ok(lo: Atom, st: &Stencil) -> bool {
    let cmin = st.used_offsets()[0];
    cmin >= 0 || matches!(lo, Atom::Int(l) if l as i128 + cmin >= 0)
}

/// An integer constant or a variable that is never reassigned.
fn invariant(func: &Func, a: Atom) -> bool {
    match a {
        Atom::Int(_) => true,
        Atom::Var(v) => !func.info(v).mutable,
        _ => false,
    }
}

/// A loop body found independent by [`independent_stencil`]: the statements of one iteration
/// with its no-op copies dropped, each accumulation tagged with its offset from the index.
struct Stencil {
    stmts: Vec<Stmt>,
    offsets: std::collections::HashMap<Var, i128>,
    /// The sequences accumulated into.
    arrays: Vec<Var>,
}

impl Stencil {
    /// The distinct offsets accumulated at, in increasing order.
    fn used_offsets(&self) -> Vec<i128> {
        let mut cs: Vec<i128> = self
            .stmts
            .iter()
            .filter_map(|s| match s {
                Stmt::AddStore {
                    index: Atom::Var(t),
                    ..
                } => self.offsets.get(t).copied(),
                _ => None,
            })
            .collect();
        cs.sort();
        cs.dedup();
        cs
    }
}

/// `Some` when the iterations of `body` (over `index`) are independent, as
/// [`gather_adjoint_stores`] requires, and it accumulates into at least one sequence.
fn independent_stencil(func: &Func, index: Var, body: &Block) -> Option<Stencil> {
    let offs = offsets(index, body);
    let declared: HashSet<Var> = declared_vars(body).into_iter().collect();
    let mut arrays: Vec<Var> = Vec::new();
    for s in &body.stmts {
        if let Stmt::AddStore { array, index, .. } = s {
            // at a known offset from the index, into a sequence from outside the loop
            index.var().and_then(|t| offs.get(&t))?;
            if declared.contains(array) {
                return None;
            }
            if !arrays.contains(array) {
                arrays.push(*array);
            }
        }
    }
    if arrays.is_empty() {
        return None;
    }
    // The variable whose value each copy holds, following chains of copies.
    let mut origin: std::collections::HashMap<Var, Var> = std::collections::HashMap::new();
    let resolve = |origin: &std::collections::HashMap<Var, Var>, a: Atom| {
        a.var().map(|v| origin.get(&v).copied().unwrap_or(v))
    };
    let mut stmts = Vec::with_capacity(body.stmts.len());
    for s in &body.stmts {
        match s {
            Stmt::Let { var, rhs } => {
                let pure = match rhs {
                    Rhs::Atom(_) | Rhs::Prim(..) | Rhs::Cast(..) => true,
                    Rhs::Index(v, _) | Rhs::Len(v) => !arrays.contains(v),
                    _ => false,
                };
                if !pure {
                    return None;
                }
                match rhs {
                    Rhs::Atom(a @ Atom::Var(_)) => {
                        let o = resolve(&origin, *a)?;
                        origin.insert(*var, o);
                    }
                    _ => {
                        origin.remove(var);
                    }
                }
            }
            Stmt::Assign { var, value } if declared.contains(var) => match resolve(&origin, *value)
            {
                Some(o) => {
                    origin.insert(*var, o);
                }
                None => {
                    origin.remove(var);
                }
            },
            Stmt::AddAssign { var, .. } if declared.contains(var) => {
                origin.remove(var);
            }
            // An outer scalar given back its own value: a no-op, dropped.
            Stmt::Assign { var, value } => {
                if resolve(&origin, *value) != Some(*var) || !func.info(*var).kind.is_scalar() {
                    return None;
                }
                continue;
            }
            Stmt::AddStore { .. } => {}
            _ => return None,
        }
        stmts.push(s.clone());
    }
    Some(Stencil {
        stmts,
        offsets: offs,
        arrays,
    })
}

/// The head, main and tail loops of [`gather_adjoint_stores`], inside `if lo < hi`.
fn gather_loops(
    func: &mut Func,
    index: Var,
    range: &Range,
    st: &Stencil,
    fresh: &HashSet<Var>,
) -> Vec<Stmt> {
    let cs = st.used_offsets();
    let (cmin, cmax) = (cs[0], cs[cs.len() - 1]);
    let (lo, hi) = (range.lo, range.hi);
    let mut inner = Vec::new();
    let start = index_plus(func, &mut inner, lo, cmin);
    let b1 = index_plus(func, &mut inner, lo, cmax);
    let end = index_plus(func, &mut inner, hi, cmax);
    // b2 = max(b1, hi + cmin): the main loop is empty when the range is shorter than the stencil.
    let hm = index_plus(func, &mut inner, hi, cmin);
    let b2 = func.new_var("upto", Kind::Int, true);
    inner.push(Stmt::Let {
        var: b2,
        rhs: Rhs::Atom(hm),
    });
    let short = func.new_var("short", Kind::Bool, false);
    inner.push(Stmt::Let {
        var: short,
        rhs: Rhs::Prim(Prim::Lt, vec![hm, b1]),
    });
    inner.push(Stmt::If {
        cond: Atom::Var(short),
        then: Block {
            stmts: vec![Stmt::Assign { var: b2, value: b1 }],
        },
        els: Block::default(),
    });
    let parts = [
        (start, b1, Part::Head),
        (b1, Atom::Var(b2), Part::Main),
        (Atom::Var(b2), end, Part::Tail),
    ];
    let split = splittable(func, st);
    for (from, to, part) in parts {
        let j = func.new_var("j", Kind::Int, false);
        let body = gather_body(func, index, j, range, st, part, fresh);
        inner.push(Stmt::For {
            index: j,
            range: Range {
                lo: from,
                hi: to,
                inclusive: false,
                adapters: if split && part == Part::Main {
                    vec![Adapter::Split]
                } else {
                    vec![]
                },
            },
            body,
            exit: vec![],
        });
    }
    let ran = func.new_var("ran", Kind::Bool, false);
    vec![
        Stmt::Let {
            var: ran,
            rhs: Rhs::Prim(Prim::Lt, vec![lo, hi]),
        },
        Stmt::If {
            cond: Atom::Var(ran),
            then: Block { stmts: inner },
            els: Block::default(),
        },
    ]
}

/// Whether the main gather loop may run on several threads ([`Adapter::Split`]): besides
/// being independent (checked by [`independent_stencil`]), every variable an iteration
/// touches is a number or a sequence of numbers, which threads can share.
fn splittable(func: &Func, st: &Stencil) -> bool {
    let body = Block {
        stmts: st.stmts.clone(),
    };
    read_vars(&body)
        .into_iter()
        .chain(declared_vars(&body))
        .all(|v| {
            matches!(
                func.info(v).kind,
                Kind::Float(_) | Kind::Int | Kind::Bool | Kind::Seq(..)
            )
        })
}

/// Which part of the elements a gather loop covers: the head and tail check that each
/// contributing iteration `j - c` lies in the range, the main loop needs no check.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Head,
    Main,
    Tail,
}

/// The body of a gather loop over element `j`.
fn gather_body(
    func: &mut Func,
    index: Var,
    j: Var,
    range: &Range,
    st: &Stencil,
    part: Part,
    fresh: &HashSet<Var>,
) -> Block {
    let cs = st.used_offsets();
    let (cmin, cmax) = (cs[0], cs[cs.len() - 1]);
    let mut stmts = Vec::new();
    let accs: Vec<Var> = st
        .arrays
        .iter()
        .map(|a| {
            let kind = match &func.info(*a).kind {
                Kind::Seq(_, p) => Kind::Float(*p),
                _ => Kind::Float(Prec::Infer),
            };
            let g = func.new_var("gathered", kind, true);
            stmts.push(Stmt::Let {
                var: g,
                rhs: Rhs::Atom(Atom::Float(0.0)),
            });
            g
        })
        .collect();
    for &c in &cs {
        // One iteration, i = j - c, keeping its contributions at offset c.
        let mut it = vec![Stmt::Let {
            var: index,
            rhs: match c {
                0 => Rhs::Atom(Atom::Var(j)),
                1.. => Rhs::Prim(Prim::Sub, vec![Atom::Var(j), Atom::Int(c as u128)]),
                _ => Rhs::Prim(Prim::Add, vec![Atom::Var(j), Atom::Int((-c) as u128)]),
            },
        }];
        for s in &st.stmts {
            match s {
                Stmt::AddStore {
                    array,
                    index: Atom::Var(t),
                    value,
                } => {
                    if st.offsets.get(t) == Some(&c)
                        && let Some(k) = st.arrays.iter().position(|a| a == array)
                    {
                        it.push(Stmt::AddAssign {
                            var: accs[k],
                            value: *value,
                        });
                    }
                }
                other => it.push(other.clone()),
            }
        }
        // Only what this offset's contributions need.
        let mut kept = Block { stmts: it };
        crate::analyse::dce(&mut kept, &accs.iter().copied().collect(), &HashSet::new());
        let it = kept.stmts;
        // Guards: lo + c <= j (head, unless c is the smallest offset) and j < hi + c (head,
        // and tail unless c is the largest offset).
        let mut block = it;
        if part != Part::Main && !(part == Part::Tail && c == cmax) {
            let mut pre = Vec::new();
            let bound = index_plus(func, &mut pre, range.hi, c);
            let ok = func.new_var("inside", Kind::Bool, false);
            pre.push(Stmt::Let {
                var: ok,
                rhs: Rhs::Prim(Prim::Lt, vec![Atom::Var(j), bound]),
            });
            pre.push(Stmt::If {
                cond: Atom::Var(ok),
                then: Block { stmts: block },
                els: Block::default(),
            });
            block = pre;
        }
        if part == Part::Head && c > cmin {
            let mut pre = Vec::new();
            let bound = index_plus(func, &mut pre, range.lo, c);
            let ok = func.new_var("inside", Kind::Bool, false);
            pre.push(Stmt::Let {
                var: ok,
                rhs: Rhs::Prim(Prim::Le, vec![bound, Atom::Var(j)]),
            });
            pre.push(Stmt::If {
                cond: Atom::Var(ok),
                then: Block { stmts: block },
                els: Block::default(),
            });
            block = pre;
        }
        stmts.extend(block);
    }
    // Each element is written by one iteration of one of the three loops.
    for (a, g) in st.arrays.iter().zip(accs) {
        let (array, index, value) = (*a, Atom::Var(j), Atom::Var(g));
        stmts.push(if fresh.contains(a) {
            Stmt::Store {
                array,
                index,
                value,
            }
        } else {
            Stmt::AddStore {
                array,
                index,
                value,
            }
        });
    }
    // The first contribution of the main loop sets the sum rather than adding to zero.
    let mut body = Block { stmts };
    first_writes(func, &mut body);
    body
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
