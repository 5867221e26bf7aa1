//! IR -> Rust tokens. Runtime support is reached through `::ferrax::__private`.

use crate::chains::{Bind, Chain, Ref};
use crate::ir::*;
use crate::primitives::{Prim, Syntax, row};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use std::collections::{HashMap, HashSet};
use syn::ext::IdentExt;

/// The lints a generated function is exempt from: its code is the IR's, written out
/// mechanically (unused copies and declarations, code after a user's `panic!`, the
/// fall-through arm of a lowered match guard).
pub fn allow_generated() -> TokenStream {
    quote!(#[allow(dead_code, unused_mut, unused_variables, unused_assignments, unused_parens, unused_braces, non_snake_case, unreachable_code, unreachable_patterns, clippy::all)])
}

/// The identifier a variable is written as.
pub fn var_ident(func: &Func, v: Var) -> syn::Ident {
    if let Some(p) = func.params.iter().find(|p| p.var == v) {
        let mut id = p.ident.clone();
        id.set_span(Span::call_site());
        return id;
    }
    let name: String = func
        .info(v)
        .name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim_start_matches(|c: char| c.is_ascii_digit());
    let name = if name.is_empty() { "v" } else { name };
    format_ident!("{}_{}", name, v.0)
}

/// Writes IR of one function.
pub struct Emitter<'f> {
    pub func: &'f Func,
    /// Tensor and struct parameters have been cloned into owned locals of the same name
    /// (a `_vjp` whose pullback owns what it needs, as JAX's do).
    pub owned_params: bool,
    /// How many statements read each variable, in everything emitted (see
    /// [`read_counts`]): a value read once, by the next link of an elementwise chain, is
    /// computed within the chain's fused call.
    pub(crate) reads: HashMap<Var, usize>,
    /// Every float is an `L` of several examples, one per SIMD lane (see
    /// `ferrax::__private::lanes` and [`lanes_emittable`]).
    pub lanes: bool,
}

impl<'f> Emitter<'f> {
    /// An emitter of `func`, whose body is all it emits.
    pub fn new(func: &'f Func, owned_params: bool) -> Self {
        let reads = read_counts(&func.body, &[]);
        Emitter::with_reads(func, owned_params, reads)
    }

    /// An emitter of `func` that also emits blocks outside its body: `reads` counts the
    /// reads in all of them.
    pub fn with_reads(func: &'f Func, owned_params: bool, mut reads: HashMap<Var, usize>) -> Self {
        if let Atom::Var(v) = func.output {
            *reads.entry(v).or_default() += 1;
        }
        Emitter {
            func,
            owned_params,
            reads,
            lanes: false,
        }
    }

    /// This emitter writing every float as an `L` of several examples (see
    /// [`lanes_emittable`] for the code it takes).
    pub fn over_lanes(mut self) -> Self {
        self.lanes = true;
        self
    }
}

impl Emitter<'_> {
    pub fn var(&self, v: Var) -> syn::Ident {
        var_ident(self.func, v)
    }

    pub fn atom(&self, a: Atom) -> TokenStream {
        match a {
            Atom::Var(v) if self.func.info(v).view.is_some() => self.view(v),
            Atom::Var(v) => {
                let id = self.var(v);
                quote!(#id)
            }
            Atom::Float(x) if self.lanes => lanes_splat(x, Prec::Infer),
            Atom::Float(x) => float_literal(x, Literal::f64_unsuffixed),
            Atom::Int(i) => {
                let lit = Literal::u128_unsuffixed(i);
                quote!(#lit)
            }
            Atom::Bool(b) => quote!(#b),
        }
    }

    /// A view ([`Rhs::SubSlice`]) as the place it reads: `(x[lo..hi])`.
    fn view(&self, v: Var) -> TokenStream {
        let Some((base, lo, hi)) = self.func.info(v).view else {
            return self.atom(Atom::Var(v));
        };
        let (base, lo, hi) = (self.atom(Atom::Var(base)), self.atom(lo), self.atom(hi));
        quote!((#base[#lo..#hi]))
    }

    /// Whether `v` is a parameter taken by reference (`x: &Tensor`, `p: &Mlp`).
    fn is_ref_param(&self, v: Var) -> bool {
        !(self.owned_params && self.is_tensor(Atom::Var(v))) && self.declared_ref(v)
    }

    /// Whether `v` is a parameter declared as a reference (whatever the emitted form).
    fn declared_ref(&self, v: Var) -> bool {
        self.func
            .params
            .iter()
            .any(|p| p.var == v && matches!(p.ty, syn::Type::Reference(_)))
    }

    fn is_tensor(&self, a: Atom) -> bool {
        self.func.kind(a).is_tensor()
    }

    /// `v` borrowed (for code around the emitted body).
    pub fn borrowed_tokens(&self, v: Var) -> TokenStream {
        self.borrowed(v)
    }

    /// `v` borrowed: `&v`, or `v` itself where it already is a reference.
    fn borrowed(&self, v: Var) -> TokenStream {
        if self.func.info(v).view.is_some() {
            let place = self.view(v);
            return quote!(&#place);
        }
        let id = self.var(v);
        if self.is_ref_param(v) {
            quote!(#id)
        } else {
            quote!(&#id)
        }
    }

    /// An atom read as a value: tensors (and anything not Copy) are cloned, which is cheap.
    pub fn value(&self, a: Atom) -> TokenStream {
        match a {
            Atom::Var(v) if self.is_tensor(a) => {
                let id = self.var(v);
                quote!(#id.clone())
            }
            a => self.atom(a),
        }
    }

    /// An argument of a tensor helper: tensors and other non-Copy values borrowed, float
    /// literals as `f64` (a tensor takes a scalar in its own dtype).
    fn operand(&self, a: Atom) -> TokenStream {
        match a {
            Atom::Var(v) => match self.func.info(v).kind {
                Kind::Float(_) | Kind::Int | Kind::Bool => self.atom(a),
                _ => self.borrowed(v),
            },
            Atom::Float(x) => float_literal(x, Literal::f64_suffixed),
            a => self.atom(a),
        }
    }

    /// `root.field[i].field` as a place expression.
    fn place(&self, root: Var, path: &[Proj]) -> TokenStream {
        // (a view of a list of batched floats, `&x[lo..hi]`, read through its base)
        let id = if self.func.info(root).view.is_some() {
            self.view(root)
        } else {
            let id = self.var(root);
            quote!(#id)
        };
        let steps = path.iter().map(|p| match p {
            Proj::Field(m) => quote!(.#m),
            Proj::Index(i) => {
                let i = self.atom(*i);
                quote!([#i])
            }
        });
        quote!(#id #(#steps)*)
    }

    /// A borrow of the struct a field path leads out of (the root itself when `path` is empty).
    fn parent(&self, root: Var, path: &[Proj]) -> TokenStream {
        if path.is_empty() {
            self.borrowed(root)
        } else {
            let place = self.place(root, path);
            quote!(&#place)
        }
    }

    pub fn block(&self, b: &Block) -> TokenStream {
        self.block_collecting(b, &[])
    }

    /// A block whose accumulations into `collected` go to their loop's product sum (see
    /// [`hoisted_products`]).
    fn block_collecting(&self, b: &Block, collected: &[Var]) -> TokenStream {
        let mut fused = fused_accumulations(self.func, b);
        for (i, f) in self.chains(b, &fused) {
            fused.entry(i).or_insert(f);
        }
        self.product_sums(b, &mut fused);
        let local: HashSet<Var> = b
            .stmts
            .iter()
            .filter_map(|s| match s {
                Stmt::Let { var, .. } => Some(*var),
                _ => None,
            })
            .collect();
        let stmts = b
            .stmts
            .iter()
            .enumerate()
            .map(|(i, s)| match fused.get(&i) {
                Some(Fused::Skip) => quote!(),
                Some(Fused::Chain(var, chain, bind)) => self.chain(*var, chain, *bind),
                Some(Fused::ProductSum(var, [x, y, like])) => {
                    let id = self.var(*var);
                    let m = if self.func.info(*var).mutable {
                        quote!(mut)
                    } else {
                        quote!()
                    };
                    let (x, y) = (self.b_arith_operand(*x), self.b_arith_operand(*y));
                    let like = self.b_operand(*like);
                    quote!(let #m #id = ::ferrax::__private::b::mul_sum_to(#x, #y, #like);)
                }
                Some(Fused::AccProduct(p, target, args)) => {
                    let (m, a) = self.product_args(args);
                    let id = self.var(*target);
                    let side = product_side(*p);
                    if collected.contains(target) {
                        let (sum, add) = (product_sum_ident(*target), format_ident!("add_{side}"));
                        quote!(#sum.#add(&mut #id, #(#a),*);)
                    } else {
                        let acc = format_ident!("acc_matmul_{side}");
                        quote!(::ferrax::__private::#m::#acc(&mut #id, #(#a),*);)
                    }
                }
                None => match s {
                    Stmt::Let {
                        var,
                        rhs: Rhs::Atom(Atom::Var(d)),
                    } if self.moved(*d, &local) => {
                        let (id, from) = (self.var(*var), self.var(*d));
                        let m = if self.func.info(*var).mutable {
                            quote!(mut)
                        } else {
                            quote!()
                        };
                        quote!(let #m #id = #from;)
                    }
                    Stmt::Assign {
                        var,
                        value: Atom::Var(d),
                    } if self.moved(*d, &local) => {
                        let (id, from) = (self.var(*var), self.var(*d));
                        quote!(#id = #from;)
                    }
                    s => self.stmt(s, collected),
                },
            });
        quote!(#(#stmts)*)
    }

    /// Whether a copy of tensor `d` into another variable can move it rather than clone
    /// it: `d` is defined in the block (`local`) and this is its only read, so that the
    /// copy holds the buffer alone (an adjoint's later `+=` then adds in place).
    fn moved(&self, d: Var, local: &HashSet<Var>) -> bool {
        local.contains(&d) && self.is_tensor(Atom::Var(d)) && self.reads.get(&d).copied() == Some(1)
    }

    /// The helper module (`t` or `b`) and operands of a product added to an adjoint
    /// (see [`fused_accumulations`]).
    fn product_args(&self, args: &[Atom]) -> (syn::Ident, Vec<TokenStream>) {
        if args.iter().any(|a| self.func.batched(*a)) {
            let a = args.iter().map(|a| self.b_operand(*a)).collect();
            (format_ident!("b"), a)
        } else {
            (
                format_ident!("t"),
                args.iter().map(|a| self.operand(*a)).collect(),
            )
        }
    }

    /// A loop (`head` is `for i in r` or `loop`) whose body's accumulations of products into
    /// adjoints outside it are summed after it, in one product each (see [`hoisted_products`]).
    fn loop_stmt(&self, head: TokenStream, body: &Block, exit: &[Var]) -> TokenStream {
        let hoisted = hoisted_products(self.func, body);
        let targets: Vec<Var> = hoisted.iter().map(|(v, _)| *v).collect();
        let b = self.block_collecting(body, &targets);
        let x = self.exit_check(exit);
        if hoisted.is_empty() {
            return quote!(#head { #b #x });
        }
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        for (target, args) in &hoisted {
            let (m, a) = self.product_args(args);
            let (sum, id, like) = (product_sum_ident(*target), self.var(*target), &a[2]);
            pre.push(quote!(let mut #sum = ::ferrax::__private::#m::ProductSum::default();));
            post.push(quote!(#sum.flush(&mut #id, #like);));
        }
        quote!({ #(#pre)* #head { #b #x } #(#post)* })
    }

    fn exit_check(&self, exit: &[Var]) -> TokenStream {
        if exit.is_empty() {
            return quote!();
        }
        let flags = exit.iter().map(|v| self.var(*v));
        quote!(if #(#flags)||* { break; })
    }

    /// A loop marked [`Adapter::Split`]: the sequences it stores into are handed to
    /// `__private::split_for` as `__private::Chunk`s under their own names (nested pairs
    /// when there are several), and each thread runs the plain loop over its share of the
    /// range.
    fn split_for(&self, index: Var, range: &Range, body: &Block) -> TokenStream {
        let mut arrays: Vec<Var> = Vec::new();
        for s in &body.stmts {
            if let Stmt::Store { array, .. } | Stmt::AddStore { array, .. } = s
                && !arrays.contains(array)
            {
                arrays.push(*array);
            }
        }
        let (lo, hi) = (self.atom(range.lo), self.atom(range.hi));
        let i = self.var(index);
        let b = self.block(body);
        let mut names = arrays.iter().rev().map(|a| self.var(*a));
        let Some(last) = names.next() else {
            return quote!(for #i in (#lo..#hi) { #b });
        };
        let (mut pat, mut parts) = (
            quote!(mut #last),
            quote!(::ferrax::__private::Chunk::of(&mut #last[..])),
        );
        for n in names {
            pat = quote!((mut #n, #pat));
            parts = quote!((::ferrax::__private::Chunk::of(&mut #n[..]), #parts));
        }
        quote! {
            ::ferrax::__private::split_for(#lo, #hi, #parts, &|#pat, __ferrax_from: usize, __ferrax_to: usize| {
                for #i in __ferrax_from..__ferrax_to { #b }
            });
        }
    }

    /// A loop marked [`Adapter::Fill`]: its trailing stores into the sequences being filled
    /// become the value its body returns, and `__private::fill_for` (split over threads
    /// where the loop is [`Adapter::Split`]) or `fill_seq` runs it, writing each value
    /// straight into the sequence's spare capacity. The sequences go as nested pairs of
    /// `__private::Filling`s, the values the same way.
    fn fill_for(&self, index: Var, range: &Range, body: &Block) -> TokenStream {
        let arrays = range.fills().unwrap_or_default();
        let mut values: Vec<Option<Atom>> = vec![None; arrays.len()];
        let mut rest = Vec::new();
        for s in &body.stmts {
            if let Stmt::Store {
                array,
                index: Atom::Var(j),
                value,
            } = s
                && *j == index
                && let Some(k) = arrays.iter().position(|(a, _)| a == array)
                && values[k].is_none()
            {
                values[k] = Some(*value);
                continue;
            }
            rest.push(s.clone());
        }
        let (lo, hi) = (self.atom(range.lo), self.atom(range.hi));
        let i = self.var(index);
        let Some(values) = values.into_iter().collect::<Option<Vec<Atom>>>() else {
            // `fill_gathered` marks only loops that store each sequence once; a loop that
            // does not is emitted as written, and its store into the empty Vec panics
            let b = self.block(body);
            return quote!(for #i in (#lo..#hi) { #b });
        };
        let mut targets = arrays.iter().rev().map(|(a, like)| {
            let (a, like) = (self.var(*a), self.atom(Atom::Var(*like)));
            quote!(::ferrax::__private::Filling::of(&mut #a, #like.len()))
        });
        let mut vals = values.iter().rev().map(|v| self.value(*v));
        let (Some(mut target), Some(mut value)) = (targets.next(), vals.next()) else {
            let b = self.block(body);
            return quote!(for #i in (#lo..#hi) { #b });
        };
        for (t, v) in targets.zip(vals) {
            target = quote!((#t, #target));
            value = quote!((#v, #value));
        }
        let b = self.block(&Block { stmts: rest });
        let run = if range.is_split() {
            quote!(fill_for)
        } else {
            quote!(fill_seq)
        };
        quote! {
            ::ferrax::__private::#run(#lo, #hi, #target, |#i: usize| { #b #value });
        }
    }

    fn range(&self, r: &Range) -> TokenStream {
        let lo = self.atom(r.lo);
        let hi = self.atom(r.hi);
        let mut t = if r.inclusive {
            quote!((#lo..=#hi))
        } else {
            quote!((#lo..#hi))
        };
        for a in &r.adapters {
            t = match a {
                Adapter::Rev => quote!(#t.rev()),
                Adapter::StepBy(s) => {
                    let s = self.atom(*s);
                    quote!(#t.step_by(#s))
                }
                Adapter::Split | Adapter::Fill(_) => t,
            };
        }
        t
    }

    /// One statement; accumulations into `collected`, at any depth but inside a loop of
    /// their own, go to the product sums of the loop being emitted (see [`hoisted_products`]).
    fn stmt(&self, s: &Stmt, collected: &[Var]) -> TokenStream {
        match s {
            Stmt::Let { var, rhs } => {
                let id = self.var(*var);
                let info = self.func.info(*var);
                let m = if info.mutable { quote!(mut) } else { quote!() };
                if let Rhs::Uninit = rhs {
                    return quote!(let #m #id;);
                }
                if let Rhs::SubSlice(..) = rhs {
                    // read where it is used; checked here, where `&x[lo..hi]` would panic
                    let r = self.rhs(rhs, Prec::Infer, false);
                    return quote!(let _ = #r;);
                }
                let ty = match (&info.kind, rhs) {
                    (Kind::Float(p), _) if self.lanes => {
                        let f = lane_ty(*p);
                        quote!(: ::ferrax::__private::lanes::L<#f>)
                    }
                    (Kind::Float(Prec::F32), _) => quote!(: f32),
                    (Kind::Float(Prec::F64), _) => quote!(: f64),
                    // a Vec of tensors, which may be read before its first push
                    (Kind::Struct, Rhs::NewSeq(NewSeq::Empty { .. })) => {
                        quote!(: ::std::vec::Vec<::ferrax::Tensor>)
                    }
                    // a Vec of floats that may not be written before it is read (a batched
                    // function's unused result slot, a list's unbatched start)
                    (
                        Kind::Seq(_, p @ (Prec::F32 | Prec::F64)),
                        Rhs::NewSeq(NewSeq::Empty { .. } | NewSeq::Filled { .. }),
                    ) => {
                        let f = prec_ty(*p);
                        if self.lanes {
                            quote!(: ::std::vec::Vec<::ferrax::__private::lanes::L<#f>>)
                        } else {
                            quote!(: ::std::vec::Vec<#f>)
                        }
                    }
                    _ => quote!(),
                };
                let prec = match info.kind {
                    Kind::Float(p) => p,
                    _ => Prec::Infer,
                };
                let mut r = self.rhs(rhs, prec, !info.kind.is_scalar() || info.kind.is_tensor());
                if self.lanes
                    && matches!(info.kind, Kind::Float(_))
                    && matches!(rhs, Rhs::Cast(..) | Rhs::Lit(_))
                {
                    // (a float made of no float: the same in every lane)
                    r = quote!(::ferrax::__private::lanes::L::splat(#r));
                } else if self.lanes && matches!(rhs, Rhs::Path(_)) {
                    // (a constant, of a type only rustc knows where the path does not say:
                    // floats over lanes, the rest as they are)
                    let l = quote!(::ferrax::__private::lanes);
                    r = quote!({
                        use #l::{Keep as _, Lift as _};
                        (&#l::Const(#r)).lift()
                    });
                }
                quote!(let #m #id #ty = #r;)
            }
            Stmt::Assign { var, value } => {
                let id = self.var(*var);
                if self.is_tensor(Atom::Var(*var)) && matches!(value, Atom::Float(_)) {
                    // an adjoint reset: zero of the same structure
                    return quote!(#id = ::ferrax::__private::t::zero_like(&#id););
                }
                let a = self.value(*value);
                quote!(#id = #a;)
            }
            Stmt::AddAssign { var, value } => {
                let id = self.var(*var);
                if self.func.info(*var).kind == Kind::Struct {
                    // a struct's gradient from a call, `()` where the callee leaves it out of
                    // its `wrt` (see `crate::slots`)
                    let a = self.operand(*value);
                    return quote!({
                        use ::ferrax::__private::t::{AccSame as _, AccUnit as _};
                        let add = (&&::ferrax::__private::t::acc_probe(&#id, #a)).adder();
                        add(&mut #id, #a);
                    });
                }
                if self.is_tensor(Atom::Var(*var)) {
                    let a = self.operand(*value);
                    return quote!(::ferrax::__private::t::acc(&mut #id, #a););
                }
                let a = self.atom(*value);
                quote!(#id += #a;)
            }
            Stmt::AddProject {
                target,
                path,
                value,
            } => {
                let place = self.place(*target, path);
                // (a float or a sequence read through a typed `let` adds by reference too)
                let a = if self.is_tensor(*value) {
                    self.operand(*value)
                } else {
                    let v = self.atom(*value);
                    quote!(&#v)
                };
                let acc = if self.func.batched(*value) {
                    // per-example gradients, which a float field cannot hold
                    let name = path
                        .iter()
                        .filter_map(|p| match p {
                            Proj::Field(m) => Some(member_name(m)),
                            Proj::Index(_) => None,
                        })
                        .collect::<Vec<_>>()
                        .join(".");
                    quote!(::ferrax::__private::b::acc_field(&mut #place, #a, #name);)
                } else {
                    quote!(::ferrax::__private::t::acc(&mut #place, #a);)
                };
                match path.split_last() {
                    // a `#[differentiable(skip)]` field takes no cotangent
                    Some((Proj::Field(m), parent)) => {
                        let parent = self.parent(*target, parent);
                        let name = member_name(m);
                        quote!(if !::ferrax::__private::t::skipped(#parent, #name) { #acc })
                    }
                    _ => acc,
                }
            }
            Stmt::Store {
                array,
                index,
                value,
            } => {
                let (id, i) = (self.var(*array), self.atom(*index));
                // (an element of a Vec of tensors: a clone of the tensor, shared)
                let a = if self.func.info(*array).kind == Kind::Struct {
                    self.value(*value)
                } else {
                    self.atom(*value)
                };
                quote!(#id[#i] = #a;)
            }
            Stmt::AddStore {
                array,
                index,
                value,
            } => {
                let (id, i, a) = (self.var(*array), self.atom(*index), self.atom(*value));
                quote!(#id[#i] += #a;)
            }
            Stmt::AddSeq {
                target,
                value,
                offset,
            } => {
                let (t, v) = (self.var(*target), self.atom(Atom::Var(*value)));
                match offset {
                    None => quote!(::ferrax::__private::add_assign_seq(&mut #t, &#v);),
                    Some(o) => {
                        let o = self.atom(*o);
                        quote!(::ferrax::__private::add_assign_seq_at(&mut #t, #o, &#v);)
                    }
                }
            }
            Stmt::Push { array, value } => {
                let (id, a) = (self.var(*array), self.value(*value));
                quote!(#id.push(#a);)
            }
            Stmt::If { cond, then, els } => {
                let c = self.atom(*cond);
                let t = self.block_collecting(then, collected);
                if els.stmts.is_empty() {
                    quote!(if #c { #t })
                } else {
                    let e = self.block_collecting(els, collected);
                    quote!(if #c { #t } else { #e })
                }
            }
            Stmt::Match { scrut, arms } => {
                let s = self.atom(*scrut);
                let arms = arms.iter().map(|a| {
                    let p = &a.pat;
                    let b = self.block_collecting(&a.body, collected);
                    quote!(#p => { #b })
                });
                quote!(match #s { #(#arms)* })
            }
            Stmt::For {
                index,
                range,
                body,
                exit,
            } if exit.is_empty() && range.fills().is_some() => self.fill_for(*index, range, body),
            Stmt::For {
                index,
                range,
                body,
                exit,
            } if range.is_split() => self.split_for(*index, range, body),
            Stmt::FillRest { array, like } => {
                let (a, like) = (self.var(*array), self.atom(Atom::Var(*like)));
                quote!(::ferrax::__private::fill_rest(&mut #a, #like.len());)
            }
            Stmt::For {
                index,
                range,
                body,
                exit,
            } => {
                let i = self.var(*index);
                let r = self.range(range);
                self.loop_stmt(quote!(for #i in #r), body, exit)
            }
            Stmt::Loop { body, exit } => self.loop_stmt(quote!(loop), body, exit),
            Stmt::LogWrite { log, array, index } => {
                let (l, a, at) = (self.var(*log), self.var(*array), self.log_helpers(*array));
                match index {
                    Some(i) => {
                        let i = self.atom(*i);
                        quote!(#at::log_write(&mut #l, &#a, #i);)
                    }
                    None => quote!(#at::log_push(&mut #l, &#a);),
                }
            }
            Stmt::Undo { log, array, mark } => {
                let (l, a, at) = (self.var(*log), self.var(*array), self.log_helpers(*array));
                match mark {
                    Some(m) => {
                        let m = self.atom(*m);
                        quote!(#at::undo_to(&mut #l, &mut #a, #m);)
                    }
                    None => quote!(#at::undo_one(&mut #l, &mut #a);),
                }
            }
            Stmt::Effect(e) => self.effect(e),
        }
    }

    /// A macro run for its effect, in a block of its own that first binds each user name
    /// its tokens read: numbers by value, everything else borrowed. Batched by `vmap`, it
    /// runs in a loop over the examples (those its mask holds for), each per-example value
    /// bound at that example as the kind it had before batching.
    fn effect(&self, e: &Effect) -> TokenStream {
        let tokens = &e.tokens;
        let b = quote!(::ferrax::__private::b);
        let i = format_ident!("__ferrax_example");
        let kinds = e.examples.as_ref().map(|ex| ex.kinds.as_slice());
        let mut before = Vec::new();
        let mut binds = Vec::new();
        for (k, (name, a)) in e.binds.iter().enumerate() {
            let kind = kinds.and_then(|ks| ks[k].as_ref());
            let bind = match (kind, a) {
                (None, Atom::Var(v)) if !self.func.kind(*a).is_scalar() || self.is_tensor(*a) => {
                    self.borrowed(*v)
                }
                (None, a) => self.atom(*a),
                (Some(kind), Atom::Var(v)) => {
                    let t = self.borrowed(*v);
                    let all = format_ident!("__ferrax_{}", name.unraw());
                    match kind {
                        Kind::Float(p) => {
                            before.push(quote!(let #all = #b::examples_f64(#t);));
                            if *p == Prec::F32 {
                                quote!(#all[#i] as f32)
                            } else {
                                quote!(#all[#i])
                            }
                        }
                        Kind::Bool => {
                            before.push(quote!(let #all = #b::examples_bool(#t);));
                            quote!(#all[#i])
                        }
                        _ => quote!(&#b::example(#t, #i)),
                    }
                }
                (Some(_), a) => self.atom(*a),
            };
            binds.push(quote_spanned!(name.span()=> let #name = #bind;));
        }
        let Some(ex) = &e.examples else {
            return quote!({ #(#binds)* #tokens; });
        };
        let n = self.var(ex.batch);
        let run = match ex.mask {
            Some(Atom::Var(m)) => {
                let m = self.borrowed(m);
                before.push(quote!(let __ferrax_mask = #b::examples_bool(#m);));
                quote!(if __ferrax_mask[#i] { #(#binds)* #tokens; })
            }
            _ => quote!({ #(#binds)* #tokens; }),
        };
        quote!({ #(#before)* for #i in 0..#n { #run } })
    }

    /// A right-hand side; `prec` is the precision of the variable it defines, if known.
    fn rhs(&self, rhs: &Rhs, prec: Prec, tensor_pop: bool) -> TokenStream {
        match rhs {
            Rhs::Atom(a) => self.value(*a),
            Rhs::Prim(p, args) if args.iter().any(|a| self.func.batched(*a)) => {
                self.batched_prim(*p, args)
            }
            Rhs::Prim(p, args) if args.iter().any(|a| self.is_tensor(*a)) => {
                let name = format_ident!("{}", p.tensor_fn());
                // the parts of a concat, stack or einsum go in one slice
                if let Some(fixed) = p.parts_from() {
                    let head = args[..fixed].iter().map(|a| self.operand(*a));
                    let rest = args[fixed..].iter().map(|a| self.operand(*a));
                    return quote!(::ferrax::__private::t::#name(#(#head,)* &[#(#rest),*]));
                }
                let args = args.iter().map(|a| self.operand(*a));
                let args: Vec<TokenStream> = match (p, row(*p).out) {
                    // a cotangent summed into a float: the helper for its precision
                    (Prim::SumTo, _) if !self.is_tensor(args_like(rhs)) => {
                        let prec = match self.func.kind(args_like(rhs)) {
                            Kind::Float(Prec::F32) => quote!(f32),
                            _ => quote!(f64),
                        };
                        let ct = self.operand(prim_args(rhs)[0]);
                        return quote!(::ferrax::__private::t::sum_to_scalar::<#prec>(#ct));
                    }
                    _ => args.collect(),
                };
                quote!(::ferrax::__private::t::#name(#(#args),*))
            }
            Rhs::Prim(p, args) => self.prim(*p, args, prec),
            Rhs::Project(root, path) => {
                let place = self.place(*root, path);
                quote!(#place.clone())
            }
            Rhs::ProjectTangent(root, path) => {
                let place = self.place(*root, path);
                match path.split_last() {
                    Some((Proj::Field(m), parent)) => {
                        let parent = self.parent(*root, parent);
                        let name = member_name(m);
                        quote!(::ferrax::__private::t::tangent_field(#parent, #name, &#place))
                    }
                    _ => quote!(#place.clone()),
                }
            }
            Rhs::ProjectLen(root, path) => {
                let place = self.place(*root, path);
                quote!(#place.len())
            }
            Rhs::Index(v, i) => {
                let (id, i) = (self.atom(Atom::Var(*v)), self.atom(*i));
                quote!(#id[#i])
            }
            Rhs::Len(v) => {
                let id = self.atom(Atom::Var(*v));
                quote!(#id.len())
            }
            Rhs::SubSlice(v, lo, hi) => {
                let (base, lo, hi) = (self.atom(Atom::Var(*v)), self.atom(*lo), self.atom(*hi));
                quote!(&#base[#lo..#hi])
            }
            Rhs::Sum(v) => {
                let id = self.atom(Atom::Var(*v));
                quote!(::ferrax::__private::sum(&#id))
            }
            Rhs::Cast(a, ty) => {
                let lanes_float = self.lanes && matches!(self.func.kind(*a), Kind::Float(_));
                let a = self.atom(*a);
                if lanes_float {
                    // (an integer of the lanes' float: theirs where they agree)
                    quote!(#a.to(|__ferrax_v| __ferrax_v as #ty))
                } else {
                    quote!((#a as #ty))
                }
            }
            Rhs::NewSeq(n) => match n {
                NewSeq::Filled { value, len } => {
                    let (v, n) = (self.atom(*value), self.atom(*len));
                    quote!(::std::vec![#v; #n])
                }
                NewSeq::Empty { capacity: Some(c) } => {
                    let c = self.atom(*c);
                    quote!(::std::vec::Vec::with_capacity(#c))
                }
                NewSeq::Empty { capacity: None } => quote!(::std::vec::Vec::new()),
                NewSeq::ArrayOf(items) => {
                    let items = items.iter().map(|a| self.atom(*a));
                    quote!([#(#items),*])
                }
                NewSeq::ArrayRepeat { value, len } => {
                    let v = self.atom(*value);
                    quote!([#v; #len])
                }
                NewSeq::CopyOf(v) => {
                    let id = self.atom(Atom::Var(*v));
                    quote!(#id.to_vec())
                }
                NewSeq::ZerosLike(v) if self.is_tensor(Atom::Var(*v)) => {
                    let x = self.borrowed(*v);
                    quote!(::ferrax::__private::t::zero_like(#x))
                }
                NewSeq::ToFill(v) => {
                    let id = self.atom(Atom::Var(*v));
                    quote!(::ferrax::__private::filling(&#id))
                }
                NewSeq::ZerosLike(v) => {
                    let id = self.atom(Atom::Var(*v));
                    match self.func.info(*v).kind {
                        Kind::Seq(Seq::Array, _) => quote!(::ferrax::__private::zeros_array(&#id)),
                        Kind::Seq(..) => quote!(::ferrax::__private::zeros(&#id)),
                        // the tangent slot of an argument of a type only rustc knows: a zero
                        // of it where it is differentiable, else `()` (see `slot`)
                        _ => quote!({
                            use ::ferrax::__private::slot::{Unit as _, Zero as _, ZeroRef as _};
                            (&&&::ferrax::__private::slot::Probe(&#id)).slot()
                        }),
                    }
                }
            },
            Rhs::Call {
                func,
                args,
                mode,
                span,
            } => {
                let mut path = func.clone();
                if let Some(last) = path.path.segments.last_mut() {
                    let (prefix, suffix) = match mode {
                        CallMode::Primal => ("", ""),
                        CallMode::Jvp | CallMode::JvpTangent { .. } => (crate::grad::FULL, "_jvp"),
                        CallMode::Vjp | CallMode::VjpApply(_) => (crate::grad::FULL, "_vjp"),
                        CallMode::VjpApplyTangent { .. } => (crate::grad::FULL, "_ctjvp"),
                    };
                    last.ident =
                        syn::Ident::new(&format!("{prefix}{}{suffix}", last.ident.unraw()), *span);
                }
                let args = args.iter().map(|a| {
                    let t = self.atom(a.atom);
                    match a.atom {
                        // a batching rule's argument
                        Atom::Var(_) if self.func.batched(a.atom) && runtime_helper(func, "b") => {
                            self.b_operand(a.atom)
                        }
                        // a view is a place: passed as the slice it is
                        Atom::Var(v) if a.borrow || self.func.info(v).view.is_some() => {
                            self.borrowed(v)
                        }
                        _ if a.borrow => quote!(&#t),
                        // a tensor parameter passed on as written (`f(x)` with `x: &Tensor`)
                        Atom::Var(v) if self.is_tensor(a.atom) && self.declared_ref(v) => {
                            self.borrowed(v)
                        }
                        // a local tensor passed by value: a clone (later code still reads it)
                        Atom::Var(_) if self.is_tensor(a.atom) => self.value(a.atom),
                        // the field an `int_field` check is about, where the user wrote it
                        Atom::Var(v) if int_field_check(func) => {
                            let mut id = self.var(v);
                            id.set_span(*span);
                            quote!(#id)
                        }
                        _ => t,
                    }
                });
                // a method call on the first argument (see `ir::METHOD`)
                let call = match method_call(&path) {
                    Some(name) => {
                        let mut args = args;
                        let recv = args.next().unwrap_or_default();
                        quote_spanned!(*span=> (#recv).#name(#(#args),*))
                    }
                    None => quote_spanned!(*span=> #path(#(#args),*)),
                };
                match mode {
                    CallMode::VjpApply(ct) => {
                        // a tensor cotangent is a clone (a Hessian reads it again)
                        let ct = self.value(*ct);
                        quote_spanned!(*span=> (#call.1)(#ct))
                    }
                    CallMode::JvpTangent { .. } => quote_spanned!(*span=> #call.1),
                    _ => call,
                }
            }
            Rhs::CallVar { func, args } => {
                let f = self.var(*func);
                let args = args.iter().map(|a| self.atom(*a));
                quote!(#f(#(#args),*))
            }
            Rhs::Method {
                recv, method, args, ..
            } => {
                let r = self.atom(*recv);
                let args = args.iter().map(|a| match a.atom {
                    Atom::Var(v) if a.borrow => self.borrowed(v),
                    t if a.borrow => {
                        let t = self.atom(t);
                        quote!(&#t)
                    }
                    t => self.atom(t),
                });
                quote!(#r.#method(#(#args),*))
            }
            Rhs::Path(p) => quote!(#p),
            Rhs::Lit(l) => quote!(#l),
            Rhs::Struct { path, fields } => {
                let fields = fields.iter().map(|(m, a)| {
                    let v = self.value(*a);
                    quote!(#m: #v)
                });
                quote!(#path { #(#fields),* })
            }
            Rhs::Tuple(items) => {
                let items = items.iter().map(|a| self.atom(*a));
                quote!((#(#items,)*))
            }
            Rhs::Field(v, k) => {
                let id = self.var(*v);
                let k = syn::Index::from(*k);
                quote!(#id.#k)
            }
            Rhs::Pop(v) => {
                let id = self.var(*v);
                if tensor_pop {
                    quote!(#id.pop().expect("ferrax: a reverse sweep popped more than its forward sweep pushed"))
                } else {
                    quote!(#id.pop().unwrap_or_default())
                }
            }
            Rhs::Uninit => quote!(),
        }
    }

    /// Where the undo-log helpers of `array` are: `t::` for a `Vec` of tensors.
    fn log_helpers(&self, array: Var) -> TokenStream {
        if self.func.info(array).kind == Kind::Struct {
            quote!(::ferrax::__private::t)
        } else {
            quote!(::ferrax::__private)
        }
    }

    /// A batched value as an argument of a batching rule (`b::B(&x)`, a `Vec` of batched
    /// tensors `b::BSeq(&outs)`); others as for `t::`.
    fn b_operand(&self, a: Atom) -> TokenStream {
        match a {
            Atom::Var(v) if self.func.batched(a) && self.func.info(v).kind == Kind::Struct => {
                let x = self.borrowed(v);
                quote!(::ferrax::__private::b::BSeq(#x))
            }
            Atom::Var(v) if self.func.batched(a) => {
                let x = self.borrowed(v);
                quote!(::ferrax::__private::b::B(#x))
            }
            a => self.operand(a),
        }
    }

    /// [`Self::b_operand`] of an arithmetic or comparison primitive, where an integer meets
    /// a per-example one (a counter, a batch of floats): as a float.
    fn b_arith_operand(&self, a: Atom) -> TokenStream {
        match a {
            Atom::Int(i) => {
                let lit = Literal::f64_suffixed(i as f64);
                quote!(#lit)
            }
            Atom::Var(v) if !self.func.batched(a) && self.func.info(v).kind == Kind::Int => {
                let x = self.atom(a);
                quote!((#x as f64))
            }
            a => self.b_operand(a),
        }
    }

    /// A primitive with a batched argument: its batching rule, `b::<name>`, which takes the
    /// same arguments as the tensor helper `t::<name>` with batched ones marked.
    fn batched_prim(&self, p: Prim, args: &[Atom]) -> TokenStream {
        let name = format_ident!("{}", p.tensor_fn());
        let (fixed, parts) = match p.parts_from() {
            Some(fixed) => (fixed, true),
            None => (args.len(), false),
        };
        use Prim::*;
        let arith = matches!(
            p,
            Add | Sub | Mul | Neg | Lt | Le | Gt | Ge | Eq | Ne | Max | Min
        );
        let head = args[..fixed].iter().map(|a| {
            if arith {
                self.b_arith_operand(*a)
            } else {
                self.b_operand(*a)
            }
        });
        if parts {
            let rest = args[fixed..].iter().map(|a| {
                let o = self.b_operand(*a);
                quote!(::ferrax::__private::b::BArg::from(#o))
            });
            return quote!(::ferrax::__private::b::#name(#(#head,)* &[#(#rest),*]));
        }
        // a cotangent summed into an unbatched float: per example, a 1-D tensor
        if p == Prim::SumTo && !self.is_tensor(args[1]) && !self.func.batched(args[1]) {
            let ct = self.b_operand(args[0]);
            return quote!(::ferrax::__private::b::sum_to_scalar(#ct));
        }
        quote!(::ferrax::__private::b::#name(#(#head),*))
    }

    fn prim(&self, p: Prim, args: &[Atom], prec: Prec) -> TokenStream {
        let a: Vec<TokenStream> = args.iter().map(|x| self.atom(*x)).collect();
        let mut first = a.first().cloned().unwrap_or_default();
        // A method needs a receiver of known type: give a literal receiver its suffix.
        if let (Syntax::Method(_), Some(Atom::Float(v)), true) =
            (row(p).syntax, args.first(), self.lanes)
        {
            first = lanes_splat(*v, prec);
        } else if let (Syntax::Method(_), Some(Atom::Float(v))) = (row(p).syntax, args.first()) {
            let lit = match prec {
                Prec::F32 => Literal::f32_suffixed(v.abs() as f32),
                _ => Literal::f64_suffixed(v.abs()),
            };
            first = if v.is_sign_negative() {
                quote!((-#lit))
            } else {
                quote!(#lit)
            };
        }
        match row(p).syntax {
            Syntax::Binary(op) => {
                let b = a.get(1).cloned().unwrap_or_default();
                let op: TokenStream = match op {
                    "+" => quote!(+),
                    "-" => quote!(-),
                    "*" => quote!(*),
                    "/" => quote!(/),
                    "%" => quote!(%),
                    "&" => quote!(&),
                    "|" => quote!(|),
                    "^" => quote!(^),
                    "<<" => quote!(<<),
                    ">>" => quote!(>>),
                    "<" => quote!(<),
                    "<=" => quote!(<=),
                    ">" => quote!(>),
                    ">=" => quote!(>=),
                    "==" => quote!(==),
                    _ => quote!(!=),
                };
                quote!(#first #op #b)
            }
            Syntax::Unary("!") => quote!(!#first),
            Syntax::Unary(_) => quote!(-#first),
            Syntax::Method(name) => {
                let m = format_ident!("{}", name);
                let rest = &a[1..];
                quote!(#first.#m(#(#rest),*))
            }
            Syntax::Cast("f32") if self.lanes => quote!(#first.cast::<f32>()),
            Syntax::Cast(_) if self.lanes => quote!(#first.cast::<f64>()),
            Syntax::Cast("f32") => quote!((#first as f32)),
            Syntax::Cast(_) => quote!((#first as f64)),
            Syntax::Choose => {
                let (b, c) = (
                    a.get(1).cloned().unwrap_or_default(),
                    a.get(2).cloned().unwrap_or_default(),
                );
                quote!(if #first { #b } else { #c })
            }
            Syntax::Call("") => first,
            Syntax::Call(_) => quote!(::ferrax::__private::int_as_float(#(#a),*)),
        }
    }
}

impl Emitter<'_> {
    /// The batched `let e = sum_to(d, like)` of `b` whose `d` is a product `x * y` defined
    /// earlier in `b`, read only there and fused with nothing else, its operands not
    /// written between: computed together by `b::mul_sum_to`, which sums each example's
    /// products without keeping them where it can (a reverse-mode Jacobian's cotangents
    /// times a value, summed to a 0-d tensor).
    fn product_sums(&self, b: &Block, fused: &mut HashMap<usize, Fused>) {
        for (i, s) in b.stmts.iter().enumerate() {
            let Stmt::Let {
                var: e,
                rhs: Rhs::Prim(Prim::SumTo, args),
            } = s
            else {
                continue;
            };
            let [Atom::Var(d), like] = args[..] else {
                continue;
            };
            if !self.func.batched(Atom::Var(d))
                || !self.is_tensor(like)
                || self.reads.get(&d) != Some(&1)
                || fused.contains_key(&i)
            {
                continue;
            }
            if let Some((l, _, [x, y])) = defined_before(b, i, d, &[Prim::Mul])
                && !fused.contains_key(&l)
            {
                fused.insert(l, Fused::Skip);
                fused.insert(i, Fused::ProductSum(*e, [*x, *y, like]));
            }
        }
    }

    /// The positions among `leaves` of the values batched over the examples and of those
    /// batched over the basis elements of a per-example Jacobian's pass (see
    /// `crate::nested`), in a chain whose value `var` is batched over the flat batch: what
    /// `fuse::run_nested` repeats along the other level. `None` where there are none.
    pub(crate) fn level_leaves(&self, var: Var, leaves: &[Atom]) -> Option<[Vec<usize>; 2]> {
        if self.func.info(var).level != Level::Flat {
            return None;
        }
        let at = |level: Level| -> Vec<usize> {
            (0..leaves.len())
                .filter(|&k| matches!(leaves[k], Atom::Var(v) if self.func.info(v).batched && self.func.info(v).level == level))
                .collect()
        };
        let levels = [at(Level::Outer), at(Level::Inner)];
        (levels != [vec![], vec![]]).then_some(levels)
    }

    /// Whether `let var = p(args)` can be a link of a chain, with `Powi`'s exponent: a
    /// fusable primitive emitted as a tensor helper (`t::` or `b::`), whose operands are
    /// tensors, floats or float literals (a select's mask a tensor).
    pub(crate) fn chain_link(&self, var: Var, p: Prim, args: &[Atom]) -> Option<Option<i32>> {
        let info = self.func.info(var);
        let tensor_code = args
            .iter()
            .any(|a| self.func.batched(*a) || self.is_tensor(*a));
        if !p.fusable() || !tensor_code || !(info.kind == Kind::Tensor || info.batched) {
            return None;
        }
        let operand = |a: &Atom| match a {
            Atom::Float(_) => true,
            Atom::Var(v) => {
                let i = self.func.info(*v);
                i.view.is_none() && matches!(i.kind, Kind::Float(_) | Kind::Tensor)
            }
            _ => false,
        };
        match (p, args) {
            (Prim::Powi, [x, Atom::Int(n)]) if operand(x) => Some(Some(i32::try_from(*n).ok()?)),
            (Prim::Powi, _) => None,
            (Prim::Select, [Atom::Var(m), ..]) if self.func.info(*m).kind != Kind::Tensor => None,
            // (in unbatched passes only: a batched broadcast aligns its operands by the
            // batching rules, and a batched pass's chains are kept as they were; see
            // `Emitter::shareable`)
            (Prim::BroadcastLike, [x, like]) => (operand(x)
                && operand(like)
                && self.is_tensor(*like)
                && !self.func.vars.iter().any(|v| v.batched))
            .then_some(None),
            _ => args.iter().all(operand).then_some(None),
        }
    }

    /// `let var = fuse::run(&[args..], &[instructions..]);` for a chain (`fuse::run_nested`
    /// where it reads values batched over one level of a per-example pass); `var = ..`
    /// for [`Bind::Assign`].
    fn chain(&self, var: Var, chain: &Chain, bind: Bind) -> TokenStream {
        let chain = chain.deduped();
        let leaves = chain.leaves();
        let register = |r: &Ref| -> u16 {
            let k = match r {
                Ref::Atom(a) => leaves.iter().position(|l| l == a).unwrap_or(0),
                Ref::Node(k) => leaves.len() + k,
            };
            k as u16
        };
        let code = chain.nodes.iter().map(|n| {
            let name = format_ident!("{}", format!("{:?}", n.prim));
            let op = match n.exponent {
                Some(e) => quote!(#name(#e)),
                None => quote!(#name),
            };
            let mut regs = [0u16; 3];
            for (slot, r) in regs.iter_mut().zip(&n.args) {
                *slot = register(r);
            }
            let [a, b, c] = regs.map(Literal::u16_unsuffixed);
            quote!(Instr(Op::#op, [#a, #b, #c]))
        });
        let batched = leaves.iter().any(|a| self.func.batched(*a));
        let args = leaves.iter().map(|a| {
            let o = if batched {
                self.b_arith_operand(*a)
            } else {
                self.operand(*a)
            };
            quote!(BArg::from(#o))
        });
        let id = self.var(var);
        let m = if self.func.info(var).mutable {
            quote!(mut)
        } else {
            quote!()
        };
        let kernel = kernel(&chain, &leaves);
        let run = match self.level_leaves(var, &leaves) {
            None => quote!(::ferrax::__private::fuse::run(&[#(#args),*], &[#(#code),*], __Kernel)),
            Some([outer, inner]) => {
                quote!(::ferrax::__private::fuse::run_nested(&[#(#args),*], &[#(#outer),*], &[#(#inner),*], &[#(#code),*], __Kernel))
            }
        };
        let value = quote!({
            use ::ferrax::__private::{b::BArg, fuse::{Instr, Op}};
            #kernel
            #run
        });
        match bind {
            Bind::Let => quote!(let #m #id = #value;),
            Bind::Assign => quote!(#id = #value;),
        }
    }
}

/// The chain compiled to Rust: `struct __Kernel` implementing `fuse::Kernel<L>` over its
/// `L` leaves, each node a call of its primitive's vector body (`fuse::k::Tanh(v, x)`).
fn kernel(chain: &Chain, leaves: &[Atom]) -> TokenStream {
    let n = Literal::usize_unsuffixed(leaves.len());
    let xs: Vec<Ident> = (0..leaves.len()).map(|i| format_ident!("x{}", i)).collect();
    let reg = |r: &Ref| -> Ident {
        match r {
            Ref::Atom(a) => xs[leaves.iter().position(|l| l == a).unwrap_or(0)].clone(),
            Ref::Node(k) => format_ident!("r{}", k),
        }
    };
    let body = chain.nodes.iter().enumerate().map(|(k, node)| {
        let id = format_ident!("r{}", k);
        let value = match (node.prim, node.exponent) {
            // (read at the result's shape: the runtime broadcasts the leaf)
            (Prim::BroadcastLike, _) => {
                let a = reg(&node.args[0]);
                quote!(#a)
            }
            (Prim::Powi, Some(e)) => {
                let a = reg(&node.args[0]);
                quote!(k::Powi(v, #a, #e))
            }
            (p, _) => {
                let f = format_ident!("{}", format!("{p:?}"));
                let args = node.args.iter().map(reg);
                quote!(k::#f(v, #(#args),*))
            }
        };
        quote!(let #id = #value;)
    });
    let last = format_ident!("r{}", chain.nodes.len() - 1);
    quote! {
        #[derive(Clone, Copy)]
        struct __Kernel;
        impl ::ferrax::__private::fuse::Kernel<#n> for __Kernel {
            #[inline(always)]
            fn apply<V: ::ferrax::__private::fuse::Lanes>(
                self,
                v: V,
                [#(#xs),*]: [V::Vec; #n],
            ) -> V::Vec {
                use ::ferrax::__private::fuse::k;
                #(#body)*
                #last
            }
        }
    }
}

/// How a statement of a block is emitted when fused with another.
pub(crate) enum Fused {
    /// Emitted where its value is used instead.
    Skip,
    /// `let var = ` (or `var = `) an elementwise chain (see [`Emitter::chains`]).
    Chain(Var, Chain, Bind),
    /// `let var = sum_to(x * y, like)` of batched values, the product not kept
    /// (`b::mul_sum_to`; see [`Emitter::product_sums`]).
    ProductSum(Var, [Atom; 3]),
    /// `target += p(args)`, `p` being `MatmulTr` or `MatmulTl`: the gradient of a matmul's
    /// right or left operand added to an adjoint, which `t::acc_matmul_tr` /
    /// `t::acc_matmul_tl` add in place where they can.
    AccProduct(Prim, Var, Vec<Atom>),
}

/// The `let d = p(args)` of `b` before statement `i`, `p` one of `prims`: its index, `p`
/// and `args`, where none of `args` is written between it and `i` (so that `d` can be
/// computed at `i` instead).
fn defined_before<'b>(
    b: &'b Block,
    i: usize,
    d: Var,
    prims: &[Prim],
) -> Option<(usize, Prim, &'b [Atom])> {
    let (l, p, args) = b.stmts[..i].iter().enumerate().find_map(|(l, s)| match s {
        Stmt::Let {
            var,
            rhs: Rhs::Prim(p, args),
        } if *var == d && prims.contains(p) => Some((l, *p, &args[..])),
        _ => None,
    })?;
    let written = assigned_vars(&Block {
        stmts: b.stmts[l + 1..i].to_vec(),
    });
    args.iter()
        .all(|a| a.var().is_none_or(|v| !written.contains(&v)))
        .then_some((l, p, args))
}

/// The statements of `b` to emit fused, by index: a `let d = matmul_tr(..)` (or
/// `matmul_tl(..)`) read only by a
/// later `target += d` of the same block (a tensor adjoint), with none of its arguments
/// written between, is computed at the accumulation, into the adjoint.
fn fused_accumulations(func: &Func, b: &Block) -> HashMap<usize, Fused> {
    let mut out = HashMap::new();
    for (i, s) in b.stmts.iter().enumerate() {
        let Stmt::AddAssign {
            var: target,
            value: Atom::Var(d),
        } = s
        else {
            continue;
        };
        if func.info(*target).kind != Kind::Tensor {
            continue;
        }
        let Some((l, p, args)) = defined_before(b, i, *d, &[Prim::MatmulTr, Prim::MatmulTl]) else {
            continue;
        };
        if readers(b, *d) == 1 {
            out.insert(l, Fused::Skip);
            out.insert(i, Fused::AccProduct(p, *target, args.to_vec()));
        }
    }
    out
}

/// The accumulations `target += matmul_tr(a, ct, like)` (or `matmul_tl`) of a loop's body (fused, see
/// [`fused_accumulations`]) that can wait until the loop ends: `target` is declared outside
/// the loop and read or written nowhere else in it, and `like` is the same at every step.
/// Each step's operands are kept (`t::ProductSum`, `b::ProductSum`) and summed after the
/// loop in one product: a reverse sweep's gradient of a weight shared by all steps.
fn hoisted_products(func: &Func, body: &Block) -> Vec<(Var, Vec<Atom>)> {
    let (declared, assigned) = (declared_vars(body), assigned_vars(body));
    let mut found = Vec::new();
    loop_accumulations(func, body, &mut found);
    found
        .into_iter()
        .filter(|(target, args)| {
            let like_fixed = args[2]
                .var()
                .is_none_or(|v| !declared.contains(&v) && !assigned.contains(&v));
            like_fixed
                && !declared.contains(target)
                && readers(body, *target) == 1
                && writers(body, *target) == 1
        })
        .collect()
}

/// The fused accumulations of `b` and of the branches of its `if`s and `match`es, at any
/// depth, in order (those of an inner loop are that loop's).
fn loop_accumulations(func: &Func, b: &Block, out: &mut Vec<(Var, Vec<Atom>)>) {
    let fused = fused_accumulations(func, b);
    for (i, s) in b.stmts.iter().enumerate() {
        if let Some(Fused::AccProduct(_, target, args)) = fused.get(&i) {
            out.push((*target, args.clone()));
        }
        if matches!(s, Stmt::If { .. } | Stmt::Match { .. }) {
            for c in children(s) {
                loop_accumulations(func, c, out);
            }
        }
    }
}

/// `tr` or `tl`: the suffix of the helpers adding a `MatmulTr` or `MatmulTl` product.
fn product_side(p: Prim) -> &'static str {
    if p == Prim::MatmulTl { "tl" } else { "tr" }
}

/// The product sum of accumulations into `target` (see [`hoisted_products`]).
fn product_sum_ident(target: Var) -> syn::Ident {
    format_ident!("__ferrax_products_{}", target.0)
}

/// How many statements of `b`, at any depth, assign `v` (a compound statement's own
/// statements only).
fn writers(b: &Block, v: Var) -> usize {
    let mut n = 0;
    walk(b, &mut |s| {
        if children(s).is_empty() {
            let own = assigned_vars(&Block {
                stmts: vec![s.clone()],
            });
            n += usize::from(own.contains(&v));
        }
    });
    n
}

/// How many statements of `b`, at any depth, read `v` (a compound statement for its own
/// condition, scrutinee or range only).
fn readers(b: &Block, v: Var) -> usize {
    let mut n = 0;
    walk(b, &mut |s| n += usize::from(own_reads(s).contains(&v)));
    n
}

/// The variables a statement reads itself (a compound statement: its condition,
/// scrutinee or range only).
fn own_reads(s: &Stmt) -> Vec<Var> {
    match s {
        Stmt::If { cond, .. } => cond.var().into_iter().collect(),
        Stmt::Match { scrut, .. } => scrut.var().into_iter().collect(),
        Stmt::For { range, exit, .. } => range
            .atoms()
            .iter()
            .filter_map(|a| a.var())
            .chain(exit.iter().copied())
            .collect(),
        Stmt::Loop { exit, .. } => exit.clone(),
        s => read_vars(&Block {
            stmts: vec![s.clone()],
        }),
    }
}

/// [`readers`] of every variable of `b`, plus one for each of `also` (read outside it).
pub fn read_counts(b: &Block, also: &[Atom]) -> HashMap<Var, usize> {
    let mut n: HashMap<Var, usize> = HashMap::new();
    walk(b, &mut |s| {
        let mut own = own_reads(s);
        own.sort();
        own.dedup();
        for v in own {
            *n.entry(v).or_default() += 1;
        }
    });
    for v in also.iter().filter_map(|a| a.var()) {
        *n.entry(v).or_default() += 1;
    }
    n
}

/// The arguments of a primitive right-hand side.
fn prim_args(rhs: &Rhs) -> &[Atom] {
    match rhs {
        Rhs::Prim(_, args) => args,
        _ => &[],
    }
}

/// The `like` argument of `SumTo(ct, like)`.
fn args_like(rhs: &Rhs) -> Atom {
    prim_args(rhs).get(1).copied().unwrap_or(Atom::Float(0.0))
}

/// A field's name as `Differentiable::is_skipped_field` takes it.
fn member_name(m: &syn::Member) -> String {
    match m {
        syn::Member::Named(n) => n.to_string(),
        syn::Member::Unnamed(i) => i.index.to_string(),
    }
}

/// Whether `func` is `::ferrax::__private::int_field` (see `Lowerer::lower_cast`).
fn int_field_check(func: &syn::ExprPath) -> bool {
    segments(func).ends_with(&["__private".to_string(), "int_field".to_string()])
}

/// A float constant as Rust: a literal made by `lit` (negated in parentheses), or the
/// constant naming a NaN or an infinity.
fn float_literal(x: f64, lit: fn(f64) -> Literal) -> TokenStream {
    if x.is_nan() {
        quote!(f64::NAN)
    } else if x.is_infinite() {
        if x > 0.0 {
            quote!(f64::INFINITY)
        } else {
            quote!(f64::NEG_INFINITY)
        }
    } else if x.is_sign_negative() {
        let l = lit(-x);
        quote!((-#l))
    } else {
        let l = lit(x);
        quote!(#l)
    }
}

/// The Rust float type of a precision (`f64` unless `F32`).
pub(crate) fn prec_ty(p: Prec) -> TokenStream {
    if p == Prec::F32 {
        quote!(f32)
    } else {
        quote!(f64)
    }
}

/// The float type of a lane of a precision: `_` (rustc infers it) where not known.
fn lane_ty(p: Prec) -> TokenStream {
    match p {
        Prec::Infer => quote!(_),
        p => prec_ty(p),
    }
}

/// A float constant of precision `p` in every lane (a NaN or an infinity, written as an
/// `f64` constant, converted).
fn lanes_splat(x: f64, p: Prec) -> TokenStream {
    let (f, c) = (lane_ty(p), float_literal(x, Literal::f64_unsuffixed));
    let splat = if x.is_finite() {
        quote!(splat)
    } else {
        quote!(splat_f64)
    };
    quote!(::ferrax::__private::lanes::L::<#f>::#splat(#c))
}

/// `items` as one value: the item itself where there is one, else a tuple of them.
pub(crate) fn tuple_or_one(items: &[TokenStream]) -> TokenStream {
    match items {
        [one] => one.clone(),
        _ => quote!((#(#items),*)),
    }
}

/// Whether `func` can be emitted over lanes ([`Emitter::over_lanes`]): scalar code whose
/// every float is one the `L` of `ferrax::__private::lanes` can stand for. Floats,
/// integers, bools and sequences of floats; primitives, element reads and writes, casts,
/// loops and branches (on bools, which the lanes must agree on); no call of the user's
/// functions (they take floats, not lanes, and return what only rustc knows), no method
/// on a float outside the primitive table, no `match` on a float, no effect (but the
/// lowering's checks of integers).
pub fn lanes_emittable(func: &Func) -> bool {
    let float = |a: &Atom| matches!(func.kind(*a), Kind::Float(_) | Kind::Seq(..));
    let kinds = func
        .vars
        .iter()
        .all(|v| !matches!(v.kind, Kind::Tensor | Kind::Struct));
    // (an integer or bool made of no float: a loop's trip count, `n.min(m)`; not what a
    // helper of the user's returns, of a type only rustc knows: a tuple may hold floats)
    let int_of_ints = |v: &Var, args: Vec<&Atom>| {
        matches!(func.info(*v).kind, Kind::Int | Kind::Bool) && !args.into_iter().any(float)
    };
    let rhs_ok = |v: &Var, r: &Rhs| match r {
        Rhs::Call {
            args,
            mode: CallMode::Primal,
            ..
        } => int_of_ints(v, args.iter().map(|a| &a.atom).collect()),
        Rhs::Prim(p, _) => !matches!(row(*p).syntax, Syntax::Method(_)) || p.is_float_method(),
        Rhs::Method { recv, args, .. } => int_of_ints(
            v,
            std::iter::once(recv)
                .chain(args.iter().map(|a| &a.atom))
                .collect(),
        ),
        Rhs::NewSeq(NewSeq::ZerosLike(v)) => matches!(func.info(*v).kind, Kind::Seq(..)),
        Rhs::Call { .. }
        | Rhs::CallVar { .. }
        | Rhs::Struct { .. }
        | Rhs::Project(..)
        | Rhs::ProjectTangent(..)
        | Rhs::ProjectLen(..) => false,
        _ => true,
    };
    let mut ok = kinds;
    walk(&func.body, &mut |s| {
        ok &= match s {
            Stmt::Let { var, rhs } => rhs_ok(var, rhs),
            Stmt::Match { scrut, .. } => !float(scrut),
            // (a check the lowering adds, `.windows(k)`'s `k != 0`: of integers, the
            // same in every lane, so checked once for the group)
            Stmt::Effect(e) => e.name == "assert" && !e.binds.iter().any(|(_, a)| float(a)),
            Stmt::AddProject { .. } => false,
            _ => true,
        }
    });
    ok
}
