//! A per-example Jacobian's or Hessian's pass with two batch levels: the values that do
//! not depend on the basis (the primal values, a Hessian's reverse sweep's adjoints) once
//! per example, those that depend on the basis alone (its first tangents, `e_i W`) once per
//! basis element, the others once per example and basis element.
//!
//! `#[vmap]` over `#[jacobian]` / `#[hessian]` runs every example's basis in one pass over
//! a flat batch of examples times basis elements (example-major). Batched over the flat
//! batch alone, a value that depends only on the example (`tanh(x w + b)`) would be
//! computed once per basis element, and one that depends only on the basis (`v w` for a
//! basis element `v`) once per example, as JAX's `vmap(jacfwd(f))` does not: there the
//! basis batches only what it reaches, and the examples' batch only what they reach. Here
//! the pass is batched as usual, then each batched value gets a [`Level`]: *outer* where it
//! does not depend on the basis (its primitives run over the examples only, the outer
//! parameters passed unrepeated), *inner* where it depends on the basis but on no example
//! (they run over the one example's basis, passed unrepeated), flat otherwise. Where a
//! value of one level meets the flat batch, an elementwise chain reads it as it is
//! (`fuse::run_nested` broadcasts each example's row over its basis elements, and each
//! basis element's row over the examples), an argument read for its shape takes a stride-0
//! stand-in (`b::stand_in`), and anything else a copy repeated along the flat batch
//! (`b::repeat_outer`, `b::repeat_inner`).
//!
//! The levels flow through loops and branches whose ranges, conditions and exit flags
//! every example shares (a loop over layers, its reverse sweep's stacks included: a stack
//! has the level of what is pushed onto it). A pass with anything else (a `match`, a
//! macro run for its effect, writes into lists) keeps the flat batch, where the caller
//! repeats the outer arguments and the basis ([`per_example_pass`] returns `None`).

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::Type;

use crate::emit::Emitter;
use crate::ir::*;
use crate::transform::vmap::{VmapIn, cse, vmap};
use crate::vmap::BatchedFn;

/// `b.name(outer parameters.., basis)`: `func` (its parameters with an axis batched over
/// the examples, axis 0, and the last one, `basis`, over one example's basis elements,
/// shared by every example) with the values that do not depend on the basis computed once
/// per example and those that depend on nothing else once per basis element. Returns its
/// single output over the flat batch of examples times basis elements, or `None` where the
/// pass has statements the levels do not flow through (see the module's documentation).
pub fn per_example_pass(b: &BatchedFn, func: &Func) -> syn::Result<Option<TokenStream>> {
    let basis = func.params.last().expect("a pass takes a basis").var;
    let mut f = func.clone();
    let bsz = f.new_var("batch", Kind::Int, false);
    let b1 = f.new_var("examples", Kind::Int, false);
    let inner_n = f.new_var("inner", Kind::Int, false);
    let like = f.new_var("flat_like", Kind::Tensor, false);
    let mut seeds = b.batched_params(&f);
    let outer_params: Vec<Var> = seeds.iter().copied().filter(|v| *v != basis).collect();
    let Some(&like_outer) = outer_params.first() else {
        return Ok(None);
    };
    if outer_params
        .iter()
        .any(|v| !matches!(f.info(*v).kind, Kind::Tensor | Kind::Float(_)))
    {
        return Ok(None);
    }
    for (p, a) in f.params.iter_mut().zip(b.axes) {
        if a.is_some() && matches!(func.info(p.var).kind, Kind::Float(_)) {
            p.ty = syn::parse_quote!(&::ferrax::Tensor);
        }
    }
    seeds.push(like);
    let mut vf = vmap(
        &f,
        &VmapIn {
            batched: &seeds,
            bsz,
            like,
            span: b.item.sig.ident.span(),
        },
    )
    .map_err(|e| syn::Error::new(e.span, e.msg))?;
    cse(&mut vf);
    // each statement's target and reads (loops and branches on shared values walked
    // through; anything else keeps the flat batch)
    let mut flow = Vec::new();
    if edges(&vf, &vf.body, &mut flow).is_none() {
        return Ok(None);
    }
    // the values that depend on the basis, and those that depend on the examples (or on
    // a batched value made from nothing batched, a lifted constant: batched over the
    // examples)
    let on_basis = dependent(&flow, &[basis]);
    let mut example_seeds = outer_params.clone();
    example_seeds.push(like);
    example_seeds.extend(flow.iter().filter_map(|(t, reads)| {
        let info = vf.info(*t);
        let made = info.batched
            && matches!(info.kind, Kind::Tensor | Kind::Float(_))
            && reads.iter().all(|v| !vf.info(*v).batched);
        made.then_some(*t)
    }));
    let on_examples = dependent(&flow, &example_seeds);
    let level = |v: &Var| match (on_basis.contains(v), on_examples.contains(v)) {
        (true, true) => Level::Flat,
        (true, false) => Level::Inner,
        (false, _) => Level::Outer,
    };
    // (the batched values, and the unbatched ones made from them: a shape, a loop's exit
    // flag; only a batched one is marked for the emitter)
    let leveled: Vec<Var> = (0..vf.vars.len() as u32)
        .map(Var)
        .filter(|v| {
            let info = vf.info(*v);
            *v != like && (info.batched || on_basis.contains(v) || on_examples.contains(v))
        })
        .collect();
    for v in &leveled {
        if vf.info(*v).batched {
            vf.vars[v.0 as usize].level = level(v);
        }
    }
    let at =
        |l: Level| -> HashSet<Var> { leveled.iter().copied().filter(|v| level(v) == l).collect() };
    // the values an elementwise chain computes, reading the other levels as they are
    let mut chained = HashSet::new();
    {
        let em = Emitter::new(&vf, false);
        walk(&vf.body, &mut |s| {
            if let Stmt::Let {
                var,
                rhs: Rhs::Prim(p, args),
            } = s
                && level(var) == Level::Flat
                && vf.info(*var).batched
                && em.chain_link(*var, *p, args).is_some()
            {
                chained.insert(*var);
            }
        });
    }
    let body = std::mem::take(&mut vf.body);
    let mut rw = Rewrite {
        func: &mut vf,
        flat: at(Level::Flat),
        outer: at(Level::Outer),
        inner: at(Level::Inner),
        chained,
        sizes: [bsz, b1, inner_n],
        likes: [like, like_outer],
    };
    let Some(body) = rw.block(body) else {
        return Ok(None);
    };
    let (outer, inner) = (rw.outer, rw.inner);
    vf.body = body;

    let [(output, ty)] = &b.outputs[..] else {
        return Ok(None);
    };
    let em = Emitter::with_reads(&vf, false, crate::emit::read_counts(&vf.body, &[]));
    let name = &b.name;
    let name_str = name.to_string();
    let params = crate::grad::param_list(&em, &vf);
    let outer_sizes = vf
        .params
        .iter()
        .filter(|p| outer_params.contains(&p.var))
        .map(|p| {
            let id = em.var(p.var);
            let label = p.ident.to_string();
            match p.ty {
                Type::Reference(_) => quote!((#label, #id)),
                _ => quote!((#label, &#id)),
            }
        });
    let [bsz_id, b1_id, inner_id, like_id, basis_id] =
        [bsz, b1, inner_n, like, basis].map(|v| em.var(v));
    let body = em.block(&vf.body);
    let v = em.value(*output);
    let ret = match output {
        Atom::Var(o) if outer.contains(o) => {
            quote!(::ferrax::__private::b::repeat_outer(::ferrax::__private::b::B(&#v), #inner_id))
        }
        Atom::Var(o) if inner.contains(o) => {
            quote!(::ferrax::__private::b::repeat_inner(::ferrax::__private::b::B(&#v), #b1_id))
        }
        _ if vf.batched(*output) => v,
        _ => match crate::parse::type_kind(ty) {
            Ok(Kind::Float(_)) => quote!(::ferrax::__private::b::lift_like(#v, &#like_id)),
            _ => quote!(::ferrax::__private::b::lift(&#v, #bsz_id)),
        },
    };
    let (vis, allow) = (&b.item.vis, crate::emit::allow_generated());
    Ok(Some(quote! {
        #[doc(hidden)]
        #allow
        #vis fn #name(#(#params),*) -> ::ferrax::Tensor {
            let #b1_id: usize = ::ferrax::__private::b::batch_size(#name_str, &[#(#outer_sizes),*]);
            let #inner_id: usize = #basis_id.shape()[0];
            let #bsz_id: usize = #b1_id * #inner_id;
            let #like_id: ::ferrax::Tensor = ::ferrax::__private::b::stand_in(::ferrax::__private::b::B(#basis_id), #b1_id);
            #body
            #ret
        }
    }))
}

/// The statements of a pass rewritten for its levels: each value of one level computed
/// over that level's batch, each read of a value of one level by a value of the flat batch
/// (but in an elementwise chain) a repeat along the other level.
struct Rewrite<'a> {
    func: &'a mut Func,
    flat: HashSet<Var>,
    outer: HashSet<Var>,
    inner: HashSet<Var>,
    /// The values of the flat batch computed in elementwise chains.
    chained: HashSet<Var>,
    /// The flat batch's size, the examples', the basis elements'.
    sizes: [Var; 3],
    /// What a batched lift is shaped like: a value of the flat batch, of the examples
    /// (the first outer parameter). No value of the basis elements reads it: it counts as
    /// the examples'.
    likes: [Var; 2],
}

impl Rewrite<'_> {
    fn block(&mut self, block: Block) -> Option<Block> {
        let mut stmts = Vec::new();
        for s in block.stmts {
            match s {
                Stmt::For {
                    index,
                    range,
                    body,
                    exit,
                } => stmts.push(Stmt::For {
                    index,
                    range,
                    body: self.block(body)?,
                    exit,
                }),
                Stmt::If { cond, then, els } => stmts.push(Stmt::If {
                    cond,
                    then: self.block(then)?,
                    els: self.block(els)?,
                }),
                Stmt::Loop { body, exit } => stmts.push(Stmt::Loop {
                    body: self.block(body)?,
                    exit,
                }),
                s => self.leaf(s, &mut stmts)?,
            }
        }
        Some(Block { stmts })
    }

    /// A statement with a target (see [`edges`]), onto `out` after the repeats it reads.
    fn leaf(&mut self, mut s: Stmt, out: &mut Vec<Stmt>) -> Option<()> {
        let target = target(&s)?;
        let [bsz, b1, inner_n] = self.sizes;
        let [like, like_outer] = self.likes;
        // (a level's own values: the batch is that level's)
        if self.outer.contains(&target) {
            if !(substitute(&mut s, bsz, Atom::Var(b1))
                && substitute(&mut s, like, Atom::Var(like_outer)))
            {
                return None;
            }
        } else if self.inner.contains(&target) {
            if !substitute(&mut s, bsz, Atom::Var(inner_n)) {
                return None;
            }
        } else if self.flat.contains(&target) && !self.chained.contains(&target) {
            let levels: Vec<Var> = reads(&s)
                .into_iter()
                .filter(|v| self.outer.contains(v) || self.inner.contains(v))
                .collect();
            for o in levels {
                // (a stack of another level: not a case generated code has; a number
                // that is not batched is every example's)
                let info = self.func.info(o);
                if !matches!(info.kind, Kind::Tensor | Kind::Float(_)) {
                    return None;
                }
                if !info.batched {
                    continue;
                }
                // (read only for its shape: the `like` of a cotangent)
                let shape_only = match &s {
                    Stmt::Let {
                        rhs: Rhs::Prim(p, args),
                        ..
                    } => args
                        .iter()
                        .enumerate()
                        .all(|(k, a)| *a != Atom::Var(o) || p.shape_only_args().contains(&k)),
                    Stmt::Let {
                        rhs: Rhs::NewSeq(NewSeq::ZerosLike(_)),
                        ..
                    } => info.kind == Kind::Tensor,
                    _ => false,
                };
                // (the other level's size)
                let (repeat, other) = if self.outer.contains(&o) {
                    ("repeat_outer", inner_n)
                } else {
                    ("repeat_inner", b1)
                };
                let name = format!("{}_flat", self.func.info(o).name);
                let r = self.func.new_var(&name, Kind::Tensor, false);
                self.func.vars[r.0 as usize].batched = true;
                out.push(Stmt::Let {
                    var: r,
                    rhs: Rhs::Call {
                        func: b_path(if shape_only { "stand_in" } else { repeat }),
                        args: vec![
                            Arg {
                                atom: Atom::Var(o),
                                borrow: true,
                            },
                            Arg {
                                atom: Atom::Var(other),
                                borrow: false,
                            },
                        ],
                        mode: CallMode::Primal,
                        span: Span::call_site(),
                    },
                });
                if !substitute(&mut s, o, Atom::Var(r)) {
                    return None;
                }
            }
        }
        out.push(s);
        Some(())
    }
}

/// Each statement of `block` with a target (`let`s, assignments, pushes onto a stack) as
/// the target and what it reads, into `out`, through loops and branches whose ranges,
/// conditions and exit flags are shared by every example; `None` where `block` has any
/// other statement, or a loop or branch on a batched value.
fn edges(func: &Func, block: &Block, out: &mut Vec<(Var, Vec<Var>)>) -> Option<()> {
    let shared = |atoms: &[Atom]| {
        atoms
            .iter()
            .all(|a| !matches!(a, Atom::Var(v) if func.info(*v).batched))
    };
    for s in &block.stmts {
        match s {
            Stmt::For {
                range, body, exit, ..
            } => {
                let exits: Vec<Atom> = exit.iter().map(|v| Atom::Var(*v)).collect();
                if !shared(&range.atoms()) || !shared(&exits) {
                    return None;
                }
                edges(func, body, out)?;
            }
            Stmt::If { cond, then, els } => {
                if !shared(&[*cond]) {
                    return None;
                }
                edges(func, then, out)?;
                edges(func, els, out)?;
            }
            Stmt::Loop { body, exit } => {
                let exits: Vec<Atom> = exit.iter().map(|v| Atom::Var(*v)).collect();
                if !shared(&exits) {
                    return None;
                }
                edges(func, body, out)?;
            }
            s => out.push((target(s)?, reads(s))),
        }
    }
    Some(())
}

/// The variables that depend on `seeds` through the statements' `flow` (target, reads),
/// loops' carried values included.
fn dependent(flow: &[(Var, Vec<Var>)], seeds: &[Var]) -> HashSet<Var> {
    let mut set: HashSet<Var> = seeds.iter().copied().collect();
    loop {
        let mut grew = false;
        for (t, reads) in flow {
            if reads.iter().any(|v| set.contains(v)) {
                grew |= set.insert(*t);
            }
        }
        if !grew {
            return set;
        }
    }
}

/// The variable a `let`, an assignment or a push writes.
fn target(s: &Stmt) -> Option<Var> {
    match s {
        Stmt::Let { var, .. } | Stmt::Assign { var, .. } | Stmt::AddAssign { var, .. } => {
            Some(*var)
        }
        Stmt::Push { array, .. } => Some(*array),
        _ => None,
    }
}

/// The variables a statement reads.
fn reads(s: &Stmt) -> Vec<Var> {
    read_vars(&Block {
        stmts: vec![s.clone()],
    })
}

/// `s` reading `to` where it read `from`: `false` where `s` reads `from` in a way this
/// cannot rewrite.
fn substitute(s: &mut Stmt, from: Var, to: Atom) -> bool {
    let swap = |a: &mut Atom| {
        if *a == Atom::Var(from) {
            *a = to;
        }
    };
    match s {
        Stmt::Let { rhs, .. } => match rhs {
            Rhs::Atom(a) => swap(a),
            Rhs::Prim(_, args) | Rhs::Tuple(args) => args.iter_mut().for_each(swap),
            Rhs::NewSeq(NewSeq::ZerosLike(v)) if *v == from => match to {
                Atom::Var(t) => *v = t,
                _ => return false,
            },
            Rhs::Call {
                args,
                mode: CallMode::Primal,
                ..
            } => args.iter_mut().for_each(|a| swap(&mut a.atom)),
            other => return !rhs_uses(other).contains(&Atom::Var(from)),
        },
        Stmt::Assign { value, .. } | Stmt::Push { value, .. } => swap(value),
        Stmt::AddAssign { var, value } => {
            if *var == from {
                return false;
            }
            swap(value)
        }
        _ => return false,
    }
    true
}

/// `::ferrax::__private::b::name`.
fn b_path(name: &str) -> syn::ExprPath {
    let id = format_ident!("{}", name);
    syn::parse_quote!(::ferrax::__private::b::#id)
}

#[cfg(test)]
mod tests {
    use quote::quote;

    /// The expansion of `#[vmap(in_axes = ..)]` over `#[hessian(wrt(x))]` on `item`.
    fn per_example_hessian(item: proc_macro2::TokenStream) -> String {
        crate::vmap::expand(quote!(in_axes = (0, None)), item)
            .expect("expands")
            .to_string()
    }

    #[test]
    fn a_straight_line_pass_computes_per_example_values_once_per_example() {
        let out = per_example_hessian(quote!(
            #[hessian(wrt(x))]
            fn u(x: &Tensor, w: &Tensor) -> Tensor {
                x.matmul(w).tanh().sum()
            }
        ));
        // the example's `x` passed unrepeated, its values read by the chains as they are,
        // and `x` as the shape of its cotangent by a stand-in
        assert!(out.contains("nested_outer"), "{out}");
        assert!(!out.contains("nested_in (& __ferrax_args [0"), "{out}");
        assert!(out.contains("fuse :: run_nested"), "{out}");
        assert!(out.contains("b :: stand_in"), "{out}");
    }

    #[test]
    fn a_pass_with_a_loop_has_two_levels() {
        let out = per_example_hessian(quote!(
            #[hessian(wrt(x))]
            fn u(x: &Tensor, w: &Tensor) -> Tensor {
                let mut h = x.clone();
                for _ in 0..3 {
                    h = h.matmul(w).tanh();
                }
                h.sum()
            }
        ));
        assert!(out.contains("nested_outer"), "{out}");
        assert!(out.contains("fuse :: run_nested"), "{out}");
    }

    #[test]
    fn a_pass_with_a_match_keeps_the_flat_batch() {
        let out = crate::vmap::expand(
            quote!(in_axes = (0, None, None)),
            quote!(
                #[hessian(wrt(x))]
                fn u(x: &Tensor, w: &Tensor, k: usize) -> Tensor {
                    let h = match k {
                        0 => x.matmul(w).tanh(),
                        _ => x.matmul(w).sin(),
                    };
                    h.sum()
                }
            ),
        )
        .expect("expands")
        .to_string();
        assert!(out.contains("nested_in (& __ferrax_args [0"), "{out}");
        assert!(!out.contains("run_nested"), "{out}");
    }
}
