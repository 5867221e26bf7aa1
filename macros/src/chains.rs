//! Which statements of a block run together as one elementwise chain (`fuse::run`): the
//! CPU computes a chain in one blocked pass, its intermediate values in L1, so every value
//! a chain keeps to itself is a pass over memory saved.
//!
//! Three things join statements into a chain ([`Emitter::chains`]):
//!
//! - a value read once, by the next link (a derivative's `ct * (1 - y * y)`);
//! - a small chain read by several links of the same block (`s = sigmoid(x)` read by the
//!   forward value and by two terms of the derivative): each reader computes it again
//!   from its leaves, which costs arithmetic where keeping it costs a pass over memory;
//! - accumulations into an adjoint, `g += d1; g += d2; ..`: the sum of the contributions
//!   and the contributions themselves are one chain, written once.

use crate::emit::{Emitter, Fused};
use crate::ir::*;
use crate::primitives::Prim;
use std::collections::{HashMap, HashSet};

/// The largest chain a multiply-read value may be for its readers to recompute it.
const SHARED_NODES: usize = 8;
/// The most readers a multiply-read value may have for them to recompute it.
const SHARED_READERS: usize = 4;

/// A chain of elementwise primitives computed in one call: its nodes in order, each
/// reading atoms or earlier nodes; the last is the chain's value.
#[derive(Clone)]
pub(crate) struct Chain {
    pub nodes: Vec<Node>,
}

#[derive(Clone)]
pub(crate) struct Node {
    pub prim: Prim,
    /// The index of its statement in the block.
    pub at: usize,
    /// `Powi`'s literal exponent.
    pub exponent: Option<i32>,
    pub args: Vec<Ref>,
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Ref {
    Atom(Atom),
    Node(usize),
}

/// How a chain's value is bound where it is emitted.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Bind {
    /// `let [mut] var = ..`
    Let,
    /// `var = ..` (an accumulation into a variable declared before the chain).
    Assign,
}

impl Chain {
    /// The variables the chain reads, each with the statement that reads it.
    fn leaf_vars(&self) -> impl Iterator<Item = (Var, usize)> + '_ {
        self.nodes.iter().flat_map(|n| {
            n.args.iter().filter_map(move |r| match r {
                Ref::Atom(Atom::Var(v)) => Some((*v, n.at)),
                _ => None,
            })
        })
    }

    /// The atoms the chain reads, each once, in order of first use.
    pub fn leaves(&self) -> Vec<Atom> {
        let mut leaves: Vec<Atom> = Vec::new();
        for r in self.nodes.iter().flat_map(|n| &n.args) {
            if let Ref::Atom(a) = r
                && !leaves.contains(a)
            {
                leaves.push(*a);
            }
        }
        leaves
    }

    /// Whether the chain is small and costs a few instructions per element (no
    /// transcendental function), so that its readers may each compute it again: in
    /// cache, as the small tensors of a Hessian's pass are, computing an `exp` or a `sin`
    /// again costs more than reading it back.
    fn cheap(&self) -> bool {
        self.nodes.len() <= SHARED_NODES && self.nodes.iter().all(|n| n.prim.arithmetic())
    }

    /// The chain with every node that repeats an earlier one (the same primitive of the
    /// same operands: a shared chain copied into several links) left out.
    pub fn deduped(&self) -> Chain {
        let mut nodes: Vec<Node> = Vec::new();
        let mut to: Vec<usize> = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let args: Vec<Ref> = n
                .args
                .iter()
                .map(|r| match r {
                    Ref::Node(k) => Ref::Node(to[*k]),
                    a => *a,
                })
                .collect();
            let same = nodes
                .iter()
                .position(|m| m.prim == n.prim && m.exponent == n.exponent && m.args == args);
            to.push(same.unwrap_or_else(|| {
                nodes.push(Node { args, ..n.clone() });
                nodes.len() - 1
            }));
        }
        // the value is the last node's, wherever it now is
        let last = *to.last().expect("a chain has nodes");
        if last != nodes.len() - 1 {
            let n = nodes[last].clone();
            nodes.push(n);
        }
        Chain { nodes }
    }

    /// The nodes of `child` added before this chain's, returning the reference to its value.
    fn absorb(&mut self, child: Chain) -> Ref {
        let at = self.nodes.len();
        for mut n in child.nodes {
            for r in &mut n.args {
                if let Ref::Node(k) = r {
                    *k += at;
                }
            }
            self.nodes.push(n);
        }
        Ref::Node(self.nodes.len() - 1)
    }
}

/// A chain whose value several links read, each computing it again.
struct Shared {
    at: usize,
    chain: Chain,
    /// The statements it was built from besides `at`, left out if every reader takes it.
    skips: Vec<usize>,
    /// How many readers took it.
    taken: usize,
}

/// The pending value of an adjoint accumulated by fused `+=`.
struct Acc {
    /// The last accumulation, where the chain is emitted.
    at: usize,
    chain: Chain,
    /// Whether the chain starts from the adjoint's `let` (left out, emitted as `let`).
    declares: bool,
}

/// The walk of a block that plans its chains.
struct Planner<'e, 'f> {
    em: &'e Emitter<'f>,
    /// The variables each statement assigns (its own statements, at any depth).
    assigns: Vec<Vec<Var>>,
    /// Chains whose value nothing has read yet, by their variable.
    open: HashMap<Var, (usize, Chain)>,
    /// Chains renamed by `let [mut] u = d` (an adjoint started from one contribution): the
    /// statements left out where the chain is computed under its new name.
    renamed: HashMap<Var, Vec<usize>>,
    shared: HashMap<Var, Shared>,
    /// Open chains that are a copy of a shared one: emitted even as a single primitive
    /// (the shared one may not be).
    copies: HashSet<Var>,
    accs: HashMap<Var, Acc>,
    /// `let mut g = d` of adjoints accumulated later: its statement and `d`.
    starts: HashMap<Var, (usize, Var)>,
    out: HashMap<usize, Fused>,
}

impl Emitter<'_> {
    /// The elementwise chains of `b`, by statement ([`Fused::Chain`] at the statement that
    /// computes a chain, [`Fused::Skip`] at the others it includes; see the module's
    /// documentation). A tensor primitive that [`Prim::fusable`] allows joins the chains
    /// that define its operands where nothing else reads them (or where they are small
    /// and every reader can recompute them), none of their own operands assigned in
    /// between. `reserved` are the statements fused otherwise, left alone.
    pub(crate) fn chains(
        &self,
        b: &Block,
        reserved: &HashMap<usize, Fused>,
    ) -> HashMap<usize, Fused> {
        let one = |s: &Stmt| Block {
            stmts: vec![s.clone()],
        };
        let mut p = Planner {
            em: self,
            assigns: b.stmts.iter().map(|s| assigned_vars(&one(s))).collect(),
            open: HashMap::new(),
            renamed: HashMap::new(),
            shared: HashMap::new(),
            copies: HashSet::new(),
            accs: HashMap::new(),
            starts: HashMap::new(),
            out: HashMap::new(),
        };
        let shareable = self.shareable(b, reserved);
        for (i, s) in b.stmts.iter().enumerate() {
            if !reserved.contains_key(&i)
                && let Stmt::AddAssign {
                    var: g,
                    value: Atom::Var(d),
                } = s
                && self.acc_link(*g, *d)
                && p.accumulate(*g, *d, i)
            {
                continue;
            }
            // an adjoint's pending sum is computed before anything else touches it
            let touched = read_vars(&one(s)).into_iter().chain(p.assigns[i].clone());
            for v in touched {
                p.flush(v);
                p.starts.remove(&v);
            }
            if let Stmt::Let {
                var: u,
                rhs: Rhs::Atom(Atom::Var(d)),
            } = s
                && self.func.info(*u).kind == self.func.info(*d).kind
                && self.func.info(*u).batched == self.func.info(*d).batched
            {
                if p.assigns[i + 1..].iter().all(|w| !w.contains(u)) {
                    if p.rename(*u, *d, i, shareable.contains(u)) {
                        continue;
                    }
                } else if self.func.info(*u).mutable && self.acc_link(*u, *d) {
                    p.starts.insert(*u, (i, *d));
                    continue;
                }
            }
            let Stmt::Let {
                var,
                rhs: Rhs::Prim(prim, args),
            } = s
            else {
                continue;
            };
            let Some(exponent) = self.chain_link(*var, *prim, args) else {
                continue;
            };
            let operands = if *prim == Prim::Powi {
                &args[..1]
            } else {
                &args[..]
            };
            let mut chain = Chain { nodes: Vec::new() };
            let mut taken: Vec<(Var, Ref)> = Vec::new();
            let mut refs = Vec::new();
            for a in operands {
                let r = match a {
                    Atom::Var(u) => match taken.iter().find(|(t, _)| t == u) {
                        Some((_, r)) => *r,
                        None => match p.take(*u, i) {
                            Some(c) => {
                                let r = chain.absorb(c);
                                taken.push((*u, r));
                                r
                            }
                            None => Ref::Atom(*a),
                        },
                    },
                    _ => Ref::Atom(*a),
                };
                refs.push(r);
            }
            chain.nodes.push(Node {
                prim: *prim,
                at: i,
                exponent,
                args: refs,
            });
            if shareable.contains(var) && chain.cheap() {
                p.shared.insert(
                    *var,
                    Shared {
                        at: i,
                        chain,
                        skips: Vec::new(),
                        taken: 0,
                    },
                );
            } else {
                p.open.insert(*var, (i, chain));
            }
        }
        p.finish()
    }

    /// Whether `g += d` can be a link of a chain: `g` an unbatched tensor adjoint and `d`
    /// a value of the same kind. (Not in batched passes: a Hessian's pass summed into one
    /// 23-instruction chain over 200 x 200 f64 took 0.84 ms against 0.52 for its three
    /// chains added in place; why is not yet known.)
    fn acc_link(&self, g: Var, d: Var) -> bool {
        let (ig, id) = (self.func.info(g), self.func.info(d));
        g != d
            && !ig.batched
            && ig.kind != Kind::Struct
            && self.func.kind(Atom::Var(g)).is_tensor()
            && ig.kind == id.kind
            && (ig.batched, ig.level) == (id.batched, id.level)
            && self
                .chain_link(g, Prim::Add, &[Atom::Var(g), Atom::Var(d)])
                .is_some()
    }

    /// The variables of `b` that its chains may recompute wherever they are read (see
    /// [`Planner::take`]): defined by a `let` of `b`, never assigned, read two to
    /// [`SHARED_READERS`] times, every time by a statement of `b` itself that can take
    /// it into a chain (a link, a copy, a fused accumulation).
    fn shareable(&self, b: &Block, reserved: &HashMap<usize, Fused>) -> HashSet<Var> {
        // (not in batched passes, whose chains mix values of both levels: a 200 x 200
        // Hessian's pass took 0.64 ms against 0.52 with them; why is not yet known)
        if self.func.vars.iter().any(|v| v.batched) {
            return HashSet::new();
        }
        let mut readers: HashMap<Var, usize> = HashMap::new();
        let mut others: HashSet<Var> = HashSet::new();
        for (i, s) in b.stmts.iter().enumerate() {
            let one = Block {
                stmts: vec![s.clone()],
            };
            let mut reads = read_vars(&one);
            reads.sort();
            reads.dedup();
            let takes = !reserved.contains_key(&i)
                && match s {
                    Stmt::Let {
                        var,
                        rhs: Rhs::Prim(p, args),
                    } => self.chain_link(*var, *p, args).is_some(),
                    Stmt::Let {
                        rhs: Rhs::Atom(Atom::Var(_)),
                        ..
                    } => true,
                    Stmt::AddAssign {
                        var,
                        value: Atom::Var(d),
                    } => self.acc_link(*var, *d),
                    _ => false,
                };
            for v in reads {
                if takes {
                    *readers.entry(v).or_default() += 1;
                } else {
                    others.insert(v);
                }
            }
        }
        b.stmts
            .iter()
            .filter_map(|s| match s {
                Stmt::Let {
                    var,
                    rhs: Rhs::Prim(..) | Rhs::Atom(Atom::Var(_)),
                } => Some(*var),
                _ => None,
            })
            .filter(|v| {
                let n = readers.get(v).copied().unwrap_or(0);
                (2..=SHARED_READERS).contains(&n)
                    && !others.contains(v)
                    && self.reads.get(v) == Some(&n)
                    && b.stmts.iter().all(|s| {
                        !assigned_vars(&Block {
                            stmts: vec![s.clone()],
                        })
                        .contains(v)
                    })
            })
            .collect()
    }
}

impl Planner<'_, '_> {
    /// Whether the leaves of `c` (but `except`) still hold, at statement `i`, the values
    /// they held where `c` read them.
    fn kept(&self, c: &Chain, i: usize, except: Option<Var>) -> bool {
        c.leaf_vars().all(|(v, at)| {
            Some(v) == except || self.assigns[at + 1..i].iter().all(|w| !w.contains(&v))
        })
    }

    /// Whether statement `i` can take `u`'s chain into its own (see [`Planner::take`]).
    fn can_take(&self, u: Var, i: usize) -> bool {
        let info = self.em.func.info(u);
        let single = self.em.reads.get(&u) == Some(&1)
            && (!info.mutable || self.renamed.contains_key(&u))
            && self
                .open
                .get(&u)
                .is_some_and(|(_, c)| self.kept(c, i, None));
        single
            || self
                .shared
                .get(&u)
                .is_some_and(|s| self.kept(&s.chain, i, None))
    }

    /// The chain of `u` for statement `i` to compute within its own: an open one read
    /// only there (its statements left out), or a copy of a shared one.
    fn take(&mut self, u: Var, i: usize) -> Option<Chain> {
        if !self.can_take(u, i) {
            return None;
        }
        if let Some(s) = self.shared.get_mut(&u) {
            s.taken += 1;
            return Some(s.chain.clone());
        }
        let (j, c) = self.open.remove(&u)?;
        self.out.insert(j, Fused::Skip);
        for k in self.renamed.remove(&u).unwrap_or_default() {
            self.out.insert(k, Fused::Skip);
        }
        Some(c)
    }

    /// `let [mut] u = d` at `i` (`u` never assigned after): `d`'s chain goes on as `u`'s.
    fn rename(&mut self, u: Var, d: Var, i: usize, shareable: bool) -> bool {
        if !self.can_take(d, i) {
            return false;
        }
        let from_shared = self.shared.contains_key(&d);
        let skips = if from_shared {
            Vec::new()
        } else {
            let (j, _) = self.open[&d];
            let mut skips = self.renamed.remove(&d).unwrap_or_default();
            skips.push(j);
            skips
        };
        let Some(chain) = (if from_shared {
            self.take(d, i)
        } else {
            self.open.remove(&d).map(|(_, c)| c)
        }) else {
            return false;
        };
        if from_shared {
            self.copies.insert(u);
        }
        if shareable && chain.cheap() {
            self.shared.insert(
                u,
                Shared {
                    at: i,
                    chain,
                    skips,
                    taken: 0,
                },
            );
        } else {
            self.renamed.insert(u, skips);
            self.open.insert(u, (i, chain));
        }
        true
    }

    /// `g += d` at `i`, fused with `g`'s pending sum or `d`'s chain where there is one;
    /// false where neither is (an in-place addition is as good).
    fn accumulate(&mut self, g: Var, d: Var, i: usize) -> bool {
        let pending = self
            .accs
            .get(&g)
            .is_some_and(|a| self.kept(&a.chain, i, Some(g)));
        let start = self
            .starts
            .get(&g)
            .is_some_and(|&(_, s)| self.can_take(s, i));
        if !pending && !start && !self.can_take(d, i) {
            return false;
        }
        if !pending {
            self.flush(g);
        }
        let mut chain = Chain { nodes: Vec::new() };
        let (rg, declares) = if pending {
            let a = self.accs.remove(&g).expect("pending");
            self.out.insert(a.at, Fused::Skip);
            (chain.absorb(a.chain), a.declares)
        } else if start {
            let (j, s) = self.starts.remove(&g).expect("start");
            let c = self.take(s, i).expect("takeable");
            self.out.insert(j, Fused::Skip);
            (chain.absorb(c), true)
        } else {
            (Ref::Atom(Atom::Var(g)), false)
        };
        self.starts.remove(&g);
        let rd = match self.take(d, i) {
            Some(c) => chain.absorb(c),
            None => Ref::Atom(Atom::Var(d)),
        };
        chain.nodes.push(Node {
            prim: Prim::Add,
            at: i,
            exponent: None,
            args: vec![rg, rd],
        });
        self.accs.insert(
            g,
            Acc {
                at: i,
                chain,
                declares,
            },
        );
        true
    }

    /// Emits `g`'s pending sum, if any, at its last accumulation.
    fn flush(&mut self, g: Var) {
        if let Some(a) = self.accs.remove(&g) {
            let bind = if a.declares { Bind::Let } else { Bind::Assign };
            self.out.insert(a.at, Fused::Chain(g, a.chain, bind));
        }
    }

    /// The plan: pending sums emitted, shared chains left out where every reader took them,
    /// and the chains still open emitted at their last statement (a single primitive too
    /// where it mixes per-example values into a per-example Jacobian's flat batch, which
    /// only a chain reads without repeating them, or where it copies a shared chain).
    fn finish(mut self) -> HashMap<usize, Fused> {
        for g in self.accs.keys().copied().collect::<Vec<_>>() {
            self.flush(g);
        }
        for (var, s) in std::mem::take(&mut self.shared) {
            if self.em.reads.get(&var) == Some(&s.taken) {
                for k in s.skips.into_iter().chain([s.at]) {
                    self.out.insert(k, Fused::Skip);
                }
            } else {
                self.emit_open(var, s.at, s.chain, s.skips);
            }
        }
        for (var, (i, chain)) in std::mem::take(&mut self.open) {
            let skips = self.renamed.remove(&var).unwrap_or_default();
            self.emit_open(var, i, chain, skips);
        }
        self.out
    }

    fn emit_open(&mut self, var: Var, i: usize, chain: Chain, skips: Vec<usize>) {
        if chain.nodes.len() > 1
            || self.copies.contains(&var)
            || self.em.level_leaves(var, &chain.leaves()).is_some()
        {
            self.out.insert(i, Fused::Chain(var, chain, Bind::Let));
            for k in skips {
                self.out.insert(k, Fused::Skip);
            }
        }
    }
}
