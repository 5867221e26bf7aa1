//! `#[grad]`: parse -> analyse -> jvp / vjp -> dead-code elimination -> emit.

use crate::analyse::{check_activity, dce, varied};
use crate::attr::GradAttr;
use crate::ctxt::Ctxt;
use crate::emit::Emitter;
use crate::ir::*;
use crate::parse::{lower, type_kind};
use crate::transform::{
    jvp::jvp,
    simplify::{
        carry_adjoint_stores, fill_gathered, fill_gathered_fn, first_writes, gather_adjoint_stores,
    },
    vjp::vjp,
};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use std::collections::HashSet;
use syn::Type;

/// The prefix of the counterparts `#[grad]` callers call: differentiated with respect to
/// every float parameter whatever the callee's `wrt`, so a caller can pass a tangent and take
/// a gradient for each argument it knows to be active.
pub const FULL: &str = "__ferrax_full_";

/// Expands `#[grad(attr)] item`.
pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: syn::ItemFn = syn::parse2(item)?;
    // a method: expanded as a function taking its receiver first, then made methods again
    if let Some(f) = crate::method::as_function(&item)? {
        let out = expand_function(crate::method::rename_self(attr), f)?;
        // (the method as written, without the `#[vmap]` expanded with it)
        let mut original = item;
        original.attrs.retain(|a| !a.path().is_ident("vmap"));
        return crate::method::as_methods(out, &original);
    }
    expand_function(attr, item)
}

fn expand_function(attr: TokenStream, item: syn::ItemFn) -> syn::Result<TokenStream> {
    // `#[grad] #[vmap]`: the gradient of the batched function's total
    if item.attrs.iter().any(|a| a.path().is_ident("vmap")) {
        return crate::vmap::expand_grad_over(attr, item);
    }
    let attr: GradAttr = syn::parse2(attr)?;
    let out = expand_with(attr.clone(), item.clone(), true)?;
    require_differentiable(out, &item, &attr)
}

/// Each generated function of `out` (all but `item`) requires its active struct parameters'
/// types to be `Differentiable`, in a `where` clause spanned at the parameter's type. A
/// struct that is not then gives one error there, with the trait's note (rustc checks the
/// clauses before the bodies, and merges the identical errors); the bodies, checked
/// assuming the clause, add none of their own (without it: a dozen, `Clone` first).
fn require_differentiable(
    out: TokenStream,
    item: &syn::ItemFn,
    attr: &GradAttr,
) -> syn::Result<TokenStream> {
    let bounds: Vec<syn::WherePredicate> = item
        .sig
        .inputs
        .iter()
        .filter_map(|input| {
            let syn::FnArg::Typed(pt) = input else {
                return None;
            };
            let syn::Pat::Ident(pi) = &*pt.pat else {
                return None;
            };
            let wanted = attr.wrt.as_ref().is_none_or(|w| w.contains(&pi.ident));
            if !wanted || type_kind(&pt.ty) != Ok(Kind::Struct) {
                return None;
            }
            let Type::Reference(r) = &*pt.ty else {
                return None;
            };
            if crate::parse::is_tensor_seq(&pt.ty) {
                return None;
            }
            let ty = &r.elem;
            // (a lifetime elided with `'_` cannot be named in a `where` clause)
            if quote!(#ty).to_string().contains("'_") {
                return None;
            }
            let span = syn::spanned::Spanned::span(&pt.ty);
            syn::parse2(quote::quote_spanned!(span=> #ty: ::ferrax::Differentiable)).ok()
        })
        .collect();
    if bounds.is_empty() {
        return Ok(out);
    }
    let file: syn::File = syn::parse2(out)?;
    let items = file.items.into_iter().map(|i| match i {
        syn::Item::Fn(mut f) if f.sig.ident != item.sig.ident => {
            f.sig
                .generics
                .make_where_clause()
                .predicates
                .extend(bounds.iter().cloned());
            quote!(#f)
        }
        other => quote!(#other),
    });
    Ok(quote!(#(#items)*))
}

/// The expansion; `callers` also emits the counterparts callers use (see [`FULL`]).
pub fn expand_with(attr: GradAttr, item: syn::ItemFn, callers: bool) -> syn::Result<TokenStream> {
    let (func, sig, varied) = match lower_checked(&item, &attr) {
        Ok(l) => l,
        Err(errors) => return Ok(errors),
    };

    let name = &item.sig.ident;
    let vis = &item.vis;
    let generics = &item.sig.generics;
    let where_clause = &generics.where_clause;
    let ret = &sig.ret_ty;
    let active: Vec<&Param> = func.params.iter().filter(|p| p.active).collect();
    let grad_tys: Vec<Type> = active.iter().map(|p| grad_type(&p.ty)).collect();
    let grads_ty =
        crate::emit::tuple_or_one(&grad_tys.iter().map(|t| quote!(#t)).collect::<Vec<_>>());
    let wrt_names: Vec<String> = active.iter().map(|p| format!("`{}`", p.ident)).collect();
    let wrt = wrt_names.join(", ");
    let allow = crate::emit::allow_generated();

    // ---- forward mode ----
    let j = jvp(&func, &varied);
    let mut jf = j.pruned(&[func.output, j.tangent]);
    // Tangent parameters are parameters too (of the primal's type: borrowed the same way).
    j.push_tangent_params(&mut jf, &func);
    let em = Emitter::new(&jf, false);
    let params = param_list(&em, &func);
    let tparams: Vec<TokenStream> = j
        .tangent_params
        .iter()
        .map(|(p, d)| {
            let ty = &func
                .params
                .iter()
                .find(|q| q.var == *p)
                .map(|q| q.ty.clone());
            let id = em.var(*d);
            let m = if jf.info(*d).mutable {
                quote!(mut)
            } else {
                quote!()
            };
            quote!(#m #id: #ty)
        })
        .collect();
    let body = em.block(&jf.body);
    let (value, tangent) = (em.atom(func.output), em.atom(j.tangent));
    let jvp_name = format_ident!("{}_jvp", name);
    // A tangent of a slice or Vec must be as long as its primal: check before anything runs.
    let length_checks: Vec<TokenStream> = j
        .tangent_params
        .iter()
        .filter_map(|(p, d)| {
            let q = func.params.iter().find(|q| q.var == *p)?;
            if !matches!(
                type_kind(&q.ty),
                Ok(Kind::Seq(Seq::Slice, _)) | Ok(Kind::Seq(Seq::Vec, _))
            ) {
                return None;
            }
            let (pid, did) = (em.var(*p), em.var(*d));
            let msg = format!(
                "{jvp_name}: the tangent of `{}` has length {{}} but `{}` has length {{}}",
                q.ident, q.ident
            );
            Some(quote!(::core::assert!(#did.len() == #pid.len(), #msg, #did.len(), #pid.len());))
        })
        .collect();
    let jvp_doc = format!(
        "Forward mode of [`{name}`]: its value and its directional derivative along the tangents of {wrt} (one tangent per active argument, after the arguments)."
    );

    let arg_idents: Vec<syn::Ident> = func.params.iter().map(|p| em.var(p.var)).collect();
    let tangent_idents: Vec<syn::Ident> =
        j.tangent_params.iter().map(|(_, d)| em.var(*d)).collect();
    let full_jvp_name = format_ident!("{FULL}{}_jvp", name);
    let full_jvp = quote! {
        #[doc(hidden)]
        #allow
        #vis fn #full_jvp_name #generics (#(#params,)* #(#tparams),*) -> (#ret, #ret) #where_clause {
            #jvp_name(#(#arg_idents,)* #(#tangent_idents),*)
        }
    };

    // ---- reverse mode ----
    let v = vjp(&func, &varied);
    let grads_of = |em: &Emitter| grads_of(em, &v.grads);
    let grad_vars: HashSet<Var> = v.grads.iter().filter_map(|a| a.var()).collect();
    let value_var: HashSet<Var> = func.output.var().into_iter().collect();

    // f_vjp: forward sweep, then the reverse sweep in a closure. Where every borrowed
    // parameter is a tensor or a parameter struct (cheap to clone), the pullback owns
    // clones of them and borrows nothing; slices stay borrowed (zero-copy).
    let owning = func
        .params
        .iter()
        .any(|p| matches!(p.ty, Type::Reference(_)))
        && func
            .params
            .iter()
            .all(|p| !matches!(p.ty, Type::Reference(_)) || func.info(p.var).kind.is_tensor())
        && generics.lifetimes().next().is_none();
    let vjp_tokens = {
        let mut vf = v.func.clone();
        let mut all = v.fwd.stmts.clone();
        all.push(Stmt::Let {
            var: v.seed,
            rhs: Rhs::Uninit,
        });
        all.extend(v.rev.stmts.iter().cloned());
        let mut blk = Block { stmts: all };
        first_writes(&vf, &mut blk);
        let mut outs = grad_vars.clone();
        outs.extend(value_var.iter().copied());
        dce(&mut blk, &outs, &[v.seed].into_iter().collect());
        gather_adjoint_stores(&mut vf, &mut blk);
        carry_adjoint_stores(&mut vf, &mut blk);
        fill_gathered(&vf, &mut blk);
        let split = blk
            .stmts
            .iter()
            .position(|s| matches!(s, Stmt::Let { var, .. } if *var == v.seed))
            .unwrap_or(blk.stmts.len());
        // (values of the forward block read in the reverse one count as read there)
        let reads = crate::emit::read_counts(&blk, &[]);
        let rev: Vec<Stmt> = blk.stmts.split_off(split).into_iter().skip(1).collect();
        vf.body = blk;
        let em = Emitter::with_reads(&vf, owning, reads);
        let fwd = em.block(&vf.body);
        let rev = em.block(&Block { stmts: rev });
        let seed = em.var(v.seed);
        let grads = grads_of(&em);
        let value = em.value(func.output);
        let (params, vgenerics, bound) = if owning {
            (param_list(&em, &func), generics.clone(), quote!(+ use<>))
        } else {
            match name_elided_lifetimes(&func, generics) {
                Some((tys, g)) => (param_list_typed(&em, &func, &tys), g, quote!(+ 'ferrax)),
                None => (param_list(&em, &func), generics.clone(), quote!()),
            }
        };
        // An owning pullback starts from owned clones of the tensor and struct parameters.
        let owned_clones: Vec<TokenStream> = if owning {
            func.params
                .iter()
                .filter(|p| matches!(p.ty, Type::Reference(_)))
                .map(|p| {
                    let id = em.var(p.var);
                    // (`&[Tensor]` to a `Vec<Tensor>`)
                    if crate::parse::is_tensor_seq(&p.ty) {
                        quote!(let #id = ::std::borrow::ToOwned::to_owned(#id);)
                    } else {
                        quote!(let #id = ::std::clone::Clone::clone(#id);)
                    }
                })
                .collect()
        } else {
            vec![]
        };
        let vjp_name = format_ident!("{}_vjp", name);
        let borrowed: Vec<String> = func
            .params
            .iter()
            .filter(|p| matches!(p.ty, Type::Reference(_)))
            .filter(|p| !owning || !func.info(p.var).kind.is_tensor())
            .map(|p| format!("`{}`", p.ident))
            .collect();
        let borrows = if borrowed.is_empty() {
            String::new()
        } else {
            format!(
                " The pullback borrows {} (nothing is copied), so the arguments must outlive it.",
                borrowed.join(", ")
            )
        };
        let doc = format!(
            "Reverse mode of [`{name}`]: its value and the pullback, which maps a cotangent of the value to the gradients with respect to {wrt}.{borrows}"
        );
        let full_vjp_name = format_ident!("{FULL}{}_vjp", name);
        let full = quote! {
            #[doc(hidden)]
            #allow
            #vis fn #full_vjp_name #vgenerics (#(#params),*) -> (#ret, impl FnOnce(#ret) -> #grads_ty #bound) #where_clause {
                #vjp_name(#(#arg_idents),*)
            }
        };
        let own = quote! {
            #[doc = #doc]
            #allow
            #vis fn #vjp_name #vgenerics (#(#params),*) -> (#ret, impl FnOnce(#ret) -> #grads_ty #bound) #where_clause {
                #(#owned_clones)*
                #fwd
                (#value, move |#seed: #ret| -> #grads_ty { #rev #grads })
            }
        };
        (own, full)
    };
    let (vjp_tokens, full_vjp) = vjp_tokens;
    // What callers call: these functions themselves where every float parameter is active;
    // otherwise a second expansion with every float parameter active, under hidden names.
    let for_callers = if !callers {
        quote!()
    } else if attr.wrt.is_none() {
        let ctjvp = crate::vmap::call_counterparts(&item, &sig, &attr, false);
        quote!(#full_jvp #full_vjp #ctjvp)
    } else {
        let mut all = item.clone();
        all.sig.ident = format_ident!("{FULL}{}", name);
        all.attrs.retain(|a| !a.path().is_ident("doc"));
        all.attrs.push(syn::parse_quote!(#[doc(hidden)]));
        all.attrs.push(syn::parse_quote!(#[allow(dead_code)]));
        let full_attr = attr.for_callers(&item.sig);
        let ctjvp = crate::vmap::call_counterparts(&item, &sig, &attr, false);
        let full = expand_with(full_attr, all, false)?;
        quote!(#full #ctjvp)
    };
    let for_callers = crate::slots::for_callers(for_callers, &item, &attr);

    // f_grad and f_value_and_grad: both sweeps in one body, seeded with 1.
    let whole = |with_value: bool| {
        let mut vf = gradient_ir(&func, &v, with_value);
        fill_gathered_fn(&mut vf);
        let em = Emitter::new(&vf, false);
        (
            em.block(&vf.body),
            grads_of(&em),
            em.atom(func.output),
            param_list(&em, &func),
        )
    };
    let (gbody, ggrads, _, gparams) = whole(false);
    let (vbody, vgrads, vvalue, vparams) = whole(true);
    let grad_name = format_ident!("{}_grad", name);
    let vag_name = format_ident!("{}_value_and_grad", name);
    let grad_doc = format!(
        "Gradient of [`{name}`] with respect to {wrt} (a tuple in parameter order when there are several)."
    );
    let vag_doc = format!(
        "Value of [`{name}`] and its gradient with respect to {wrt}, from one forward and one reverse sweep."
    );

    Ok(quote! {
        #item

        #for_callers

        #[doc = #jvp_doc]
        #allow
        #vis fn #jvp_name #generics (#(#params,)* #(#tparams),*) -> (#ret, #ret) #where_clause {
            #(#length_checks)*
            #body
            (#value, #tangent)
        }

        #vjp_tokens

        #[doc = #grad_doc]
        #allow
        #vis fn #grad_name #generics (#(#gparams),*) -> #grads_ty #where_clause {
            #gbody
            #ggrads
        }

        #[doc = #vag_doc]
        #allow
        #vis fn #vag_name #generics (#(#vparams),*) -> (#ret, #grads_ty) #where_clause {
            #vbody
            (#vvalue, #vgrads)
        }
    })
}

/// The IR of `item`, its signature and its varied variables; or, where the function is
/// outside the accepted language, `item` itself followed by every error (so that only the
/// real errors show). Every attribute that transforms a function starts here.
pub fn lower_checked(
    item: &syn::ItemFn,
    attr: &GradAttr,
) -> Result<(Func, crate::parse::Signature, HashSet<Var>), TokenStream> {
    let cx = Ctxt::new();
    let (func, sig) = lower(&cx, item, attr);
    // Activity runs even after errors, so that its own errors come in the same compile.
    let varied = varied(&func);
    check_activity(&cx, &func, &varied);
    match cx.check() {
        Ok(()) => Ok((func, sig, varied)),
        Err(e) => {
            let errors = e.to_compile_error();
            Err(quote!(#item #errors))
        }
    }
}

/// Both sweeps of reverse mode in one body, seeded with a cotangent taken as one more
/// parameter, `__ferrax_ct: ct_ty`: the gradients of `ct . f(args)` (outputs `v.grads`).
/// What Jacobians in reverse mode and batched callers of `#[vmap] #[grad]` functions run.
pub fn cotangent_ir(v: &crate::transform::vjp::VjpOut, ct_ty: Type) -> Func {
    let mut g = v.func.clone();
    let mut stmts = v.fwd.stmts.clone();
    stmts.extend(v.rev.stmts.iter().cloned());
    let mut blk = Block { stmts };
    first_writes(&g, &mut blk);
    let outs: HashSet<Var> = v.grads.iter().filter_map(|a| a.var()).collect();
    dce(&mut blk, &outs, &HashSet::new());
    gather_adjoint_stores(&mut g, &mut blk);
    carry_adjoint_stores(&mut g, &mut blk);
    g.body = blk;
    g.params.push(Param {
        var: v.seed,
        ident: format_ident!("__ferrax_ct"),
        ty: ct_ty,
        active: false,
    });
    g
}

/// Both sweeps of reverse mode in one body, seeded with 1 (a one-element tensor output:
/// ones shaped like it): the IR of `f_grad` (`with_value`: of `f_value_and_grad`). Its
/// outputs are `v.grads` and `func.output`.
pub fn gradient_ir(func: &Func, v: &crate::transform::vjp::VjpOut, with_value: bool) -> Func {
    let mut vf = v.func.clone();
    let mut all = v.fwd.stmts.clone();
    let seed = if func.kind(func.output).is_tensor() {
        // a gradient needs a one-element result (as in JAX); the seed is a constant (so
        // that forward mode over this body, a Hessian, sees no tangent in it)
        let out = vf.new_var("out", Kind::Tensor, false);
        all.push(Stmt::Let {
            var: out,
            rhs: Rhs::Prim(crate::primitives::Prim::StopGradient, vec![func.output]),
        });
        Rhs::Call {
            func: syn::parse_quote!(::ferrax::__private::t::grad_seed),
            args: vec![Arg {
                atom: Atom::Var(out),
                borrow: true,
            }],
            mode: CallMode::Primal,
            span: proc_macro2::Span::call_site(),
        }
    } else {
        Rhs::Atom(Atom::Float(1.0))
    };
    all.push(Stmt::Let {
        var: v.seed,
        rhs: seed,
    });
    all.extend(v.rev.stmts.iter().cloned());
    let mut blk = Block { stmts: all };
    first_writes(&vf, &mut blk);
    let mut outs: HashSet<Var> = v.grads.iter().filter_map(|a| a.var()).collect();
    if with_value {
        outs.extend(func.output.var());
    }
    dce(&mut blk, &outs, &HashSet::new());
    gather_adjoint_stores(&mut vf, &mut blk);
    carry_adjoint_stores(&mut vf, &mut blk);
    vf.body = blk;
    vf
}

/// What `f_grad` returns, as `em` writes it: the gradient, or a tuple of them in parameter
/// order.
pub fn grads_of(em: &Emitter, grads: &[Atom]) -> TokenStream {
    crate::emit::tuple_or_one(&grads.iter().map(|a| em.atom(*a)).collect::<Vec<_>>())
}

pub fn param_list(em: &Emitter, func: &Func) -> Vec<TokenStream> {
    let tys: Vec<Type> = func.params.iter().map(|p| p.ty.clone()).collect();
    param_list_typed(em, func, &tys)
}

pub fn param_list_typed(em: &Emitter, func: &Func, tys: &[Type]) -> Vec<TokenStream> {
    func.params
        .iter()
        .zip(tys)
        .map(|(p, ty)| {
            let id = em.var(p.var);
            let m = if func.info(p.var).mutable {
                quote!(mut)
            } else {
                quote!()
            };
            quote!(#m #id: #ty)
        })
        .collect()
}

/// Names every elided lifetime of the parameters `'ferrax` (added to the generics), so that
/// the pullback's `impl FnOnce .. + 'ferrax` says what it borrows in every edition. `None`
/// when nothing is borrowed or lifetimes are already named (then edition 2024's capture
/// rules apply).
fn name_elided_lifetimes(
    func: &Func,
    generics: &syn::Generics,
) -> Option<(Vec<Type>, syn::Generics)> {
    use syn::visit_mut::VisitMut;
    struct Namer {
        named: bool,
        elided: bool,
    }
    impl VisitMut for Namer {
        fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
            match &r.lifetime {
                Some(l) if l.ident != "_" => self.named = true,
                _ => {
                    self.elided = true;
                    r.lifetime = Some(syn::Lifetime::new(
                        "'ferrax",
                        proc_macro2::Span::call_site(),
                    ));
                }
            }
            syn::visit_mut::visit_type_reference_mut(self, r);
        }
        fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
            if l.ident == "_" {
                self.elided = true;
                *l = syn::Lifetime::new("'ferrax", proc_macro2::Span::call_site());
            } else if l.ident != "ferrax" && l.ident != "static" {
                self.named = true;
            }
        }
    }
    if generics.lifetimes().next().is_some() {
        return None;
    }
    let mut namer = Namer {
        named: false,
        elided: false,
    };
    let mut tys: Vec<Type> = func.params.iter().map(|p| p.ty.clone()).collect();
    for t in tys.iter_mut() {
        namer.visit_type_mut(t);
    }
    if namer.named || !namer.elided {
        return None;
    }
    let mut g = generics.clone();
    g.params.insert(0, syn::parse_quote!('ferrax));
    Some((tys, g))
}

/// The type of the gradient with respect to a parameter of type `ty`.
pub fn grad_type(ty: &Type) -> Type {
    match type_kind(ty) {
        Ok(Kind::Tensor) | Ok(Kind::Struct) => match ty {
            // `&[Tensor]`: a gradient per tensor
            Type::Reference(r) if matches!(&*r.elem, Type::Slice(_)) => {
                syn::parse_quote!(::std::vec::Vec<::ferrax::Tensor>)
            }
            Type::Reference(r) => (*r.elem).clone(),
            t => t.clone(),
        },
        Ok(Kind::Seq(Seq::Slice, _)) | Ok(Kind::Seq(Seq::Vec, _)) => {
            let elem = match ty {
                Type::Reference(r) => match &*r.elem {
                    Type::Slice(s) => Some((*s.elem).clone()),
                    Type::Array(a) => Some((*a.elem).clone()),
                    Type::Path(p) => vec_elem(p),
                    _ => None,
                },
                Type::Path(p) => vec_elem(p),
                _ => None,
            };
            let elem = elem.unwrap_or_else(|| syn::parse_quote!(f64));
            syn::parse_quote!(::std::vec::Vec<#elem>)
        }
        _ => ty.clone(),
    }
}

fn vec_elem(p: &syn::TypePath) -> Option<Type> {
    let last = p.path.segments.last()?;
    if let syn::PathArguments::AngleBracketed(a) = &last.arguments
        && let Some(syn::GenericArgument::Type(t)) = a.args.first()
    {
        return Some(t.clone());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::expand;
    use quote::quote;

    /// Prints the expansion of `FERRAX_EXPAND_FILE` (a file holding one function) when set,
    /// under `#[grad]` or the attribute `FERRAX_EXPAND_WHICH` names (vmap, jacobian, hessian).
    #[test]
    fn print_expansion_of_file() {
        let Ok(path) = std::env::var("FERRAX_EXPAND_FILE") else {
            return;
        };
        let src = std::fs::read_to_string(path).expect("readable file");
        let item: proc_macro2::TokenStream = src.parse().expect("tokens");
        let attr: proc_macro2::TokenStream = std::env::var("FERRAX_EXPAND_ATTR")
            .unwrap_or_default()
            .parse()
            .expect("attr tokens");
        use crate::jacobian::Which;
        let out = match std::env::var("FERRAX_EXPAND_WHICH").as_deref() {
            Ok("vmap") => crate::vmap::expand(attr, item),
            Ok("jacobian") => crate::jacobian::expand(Which::Jacobian, attr, item),
            Ok("hessian") => crate::jacobian::expand(Which::Hessian, attr, item),
            Ok("custom_vjp") => crate::custom::expand(crate::custom::Rule::Vjp, attr, item),
            _ => expand(attr, item),
        };
        println!(
            "{}",
            out.map(|t| t.to_string()).unwrap_or_else(|e| e.to_string())
        );
    }

    #[test]
    fn a_peeled_reverse_iteration_fuses_as_the_loop_does() {
        // the reverse sweep of a loop runs its first iteration apart from the others: a copy
        // with its own variables, so that tanh's cotangent `ct * (1 - y * y)` is one chain
        // in both (with the copy's variables shared, each was read twice and no chain formed)
        let out = expand(
            quote!(wrt(w)),
            quote!(
                fn f(x: &Tensor, w: &Tensor) -> Tensor {
                    let mut h = x.clone();
                    for _ in 0..3 {
                        h = h.matmul(w).tanh();
                    }
                    h.sum()
                }
            ),
        )
        .expect("expands")
        .to_string();
        assert!(!out.contains("t :: sub (1f64"), "{out}");
        assert!(out.matches("k :: Sub").count() >= 2, "{out}");
    }

    #[test]
    fn single_use_adjoint_copies_move_their_buffer() {
        // `y`'s adjoint starts from one contribution and adds the other: the start is
        // not a copy of the contribution (it moves it, or, as here, the two contributions
        // are summed in one chain that declares the adjoint)
        let out = expand(
            quote!(),
            quote!(
                fn f(x: &Tensor) -> Tensor {
                    let y = x.exp() * 2.0;
                    (y.sin() + y.cos()).sum()
                }
            ),
        )
        .expect("expands")
        .to_string();
        let grad = &out[out.find("fn f_grad").expect("f_grad")..];
        let start = &grad[grad.find("let mut y_bar_").expect("y's adjoint")..];
        // (up to the next adjoint's statement)
        let start = &start[..start.find("let mut x_bar_").expect("x's adjoint")];
        assert!(!start.contains("clone"), "{start}");
        assert!(start.contains("Op :: Add"), "{start}");
        assert!(!grad.contains("acc (& mut y_bar_"), "{grad}");
    }

    #[test]
    fn straight_line_expands() {
        let out = expand(
            quote!(),
            quote!(
                fn f(x: f64) -> f64 {
                    x.sin() * x
                }
            ),
        )
        .expect("expands");
        let s = out.to_string();
        for name in ["f_jvp", "f_vjp", "f_grad", "f_value_and_grad"] {
            assert!(s.contains(name), "missing {name} in {s}");
        }
    }

    #[test]
    fn elementwise_chains_of_a_derivative_are_fused() {
        // tanh's cotangent, ct * (1 - y * y): one call, not three helpers
        let out = expand(
            quote!(),
            quote!(
                fn f(x: &Tensor) -> Tensor {
                    x.tanh().sum()
                }
            ),
        )
        .expect("expands")
        .to_string();
        assert!(out.contains("fuse :: run"), "no fused chain in {out}");
        assert!(!out.contains("t :: sub"), "an unfused link in {out}");
    }

    /// The generated `f_grad` in an expansion's text.
    fn f_grad_of(out: &str) -> &str {
        let grad = &out[out.find("fn f_grad").expect("f_grad")..];
        &grad[..grad.find("# [doc").unwrap_or(grad.len())]
    }

    #[test]
    fn batched_products_summed_whole_are_one_call() {
        // jacrev's cotangents times tanh(W x), summed per example to the 0-d `sum(x^2)`:
        // `b::mul_sum_to` (a matrix-vector product), the products never stored
        let out = crate::jacobian::expand(
            crate::jacobian::Which::Jacobian,
            quote!(wrt(x)),
            quote!(
                fn f(x: &Tensor, w: &Tensor) -> Tensor {
                    w.matmul(x).tanh() * (x * x).sum()
                }
            ),
        )
        .expect("expands")
        .to_string();
        let rev = &out[out.find("fn __ferrax_f_jacrev_batched").expect("jacrev")..];
        let rev = &rev[..rev.find("# [doc").unwrap_or(rev.len())];
        assert!(rev.contains("b :: mul_sum_to"), "{rev}");
        assert!(!rev.contains("b :: sum_to"), "{rev}");
    }

    #[test]
    fn a_product_of_a_value_with_itself_transposes_as_a_square() {
        // `x * x` in reverse mode: one contribution `2 ct x`, not `ct x` twice added
        let out = expand(
            quote!(),
            quote!(
                fn f(x: &Tensor) -> Tensor {
                    (x * x).sum()
                }
            ),
        )
        .expect("expands")
        .to_string();
        let grad = f_grad_of(&out);
        assert!(!grad.contains("acc (& mut x_bar"), "{grad}");
        assert!(grad.contains("2f64"), "{grad}");
    }

    #[test]
    fn sums_over_no_axes_are_left_out_and_their_sides_fuse() {
        // `t * s` with `s` a full sum: the cotangent `ct * s` has `t`'s shape, so it is
        // not fitted to it, and it fuses with tanh's `(1 - y * y)` into one pass
        let grad_of = |item: proc_macro2::TokenStream| {
            let out = expand(quote!(wrt(x)), item).expect("expands").to_string();
            f_grad_of(&out).to_string()
        };
        let grad = grad_of(quote!(
            fn f(x: &Tensor, w: &Tensor) -> Tensor {
                (w.matmul(x).tanh() * (x * x).sum()).sum()
            }
        ));
        assert_eq!(grad.matches("sum_to").count(), 1, "{grad}");
        // (and the square's `2 ct x`, one chain and one contribution: see below; the
        // cotangent's broadcast read in place by the two chains that use it)
        assert_eq!(grad.matches("fuse :: run").count(), 3, "{grad}");
        assert!(!grad.contains("t :: broadcast_like"), "{grad}");
        assert!(!grad.contains("acc (& mut x_bar"), "{grad}");
        // operands of unknown shapes (two parameters that may broadcast) keep their sums
        let grad = grad_of(quote!(
            fn f(x: &Tensor, w: &Tensor) -> Tensor {
                (x * w).sum()
            }
        ));
        assert!(grad.contains("sum_to"), "{grad}");
        // a struct's field may be a float in tensor code: what derives from it is still
        // fitted to it (the fit makes the float), twice here
        let grad = grad_of(quote!(
            fn f(x: &P, t: &Tensor) -> Tensor {
                (x.k.exp() * 2.0 + t).sum()
            }
        ));
        assert_eq!(grad.matches("sum_to").count(), 2, "{grad}");
    }

    fn errors_of(attr: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
        match expand(attr, item) {
            Ok(t) => t.to_string(),
            Err(e) => e.to_compile_error().to_string(),
        }
    }

    #[test]
    fn unsupported_constructs_are_errors_not_panics() {
        let cases: Vec<(proc_macro2::TokenStream, proc_macro2::TokenStream, &str)> = vec![
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> f64 {
                        apply(|y: f64| y * 2.0, x)
                    }
                ),
                "closures are supported in a #[grad] function as `let f",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> f64 {
                        unsafe { x }
                    }
                ),
                "an `unsafe` block is not supported",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> f64 {
                        x.frobnicate()
                    }
                ),
                "cannot be differentiated",
            ),
            (
                quote!(),
                quote!(
                    async fn f(x: f64) -> f64 {
                        x
                    }
                ),
                "async fn",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: &mut f64) -> f64 {
                        *x
                    }
                ),
                "`&mut` float parameters",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: *const f64) -> f64 {
                        0.0
                    }
                ),
                "raw pointers",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> usize {
                        0
                    }
                ),
                "must return a scalar",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) {}
                ),
                "must return",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64, v: Option<f64>) -> f64 {
                        let Some(y) = v else { return x };
                        y * x
                    }
                ),
                "`let .. else`",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> f64 {
                        let s = format!("{}", x);
                        x
                    }
                ),
                "`format!` is not supported",
            ),
            (
                quote!(),
                quote!(
                    fn f(p: P) -> f64 {
                        p.x
                    }
                ),
                "field access",
            ),
            (
                quote!(wrt(z)),
                quote!(
                    fn f(x: f64) -> f64 {
                        x
                    }
                ),
                "not a parameter",
            ),
            (
                quote!(wrt(n)),
                quote!(
                    fn f(x: f64, n: usize) -> f64 {
                        x
                    }
                ),
                "cannot be differentiated",
            ),
            (
                quote!(bogus),
                quote!(
                    fn f(x: f64) -> f64 {
                        x
                    }
                ),
                "unknown argument",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> f64 {
                        match x {
                            _ => x,
                        }
                    }
                ),
                "`match` on a float",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> f64 {
                        x?
                    }
                ),
                "the `?` operator",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> f64 {
                        let v: Vec<f64> = vec![];
                        x
                    }
                ),
                "an empty `vec![]`",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> f64 {
                        break;
                        x
                    }
                ),
                "outside of a loop",
            ),
            (
                quote!(),
                quote!(
                    fn f<T: Copy>(x: T) -> f64 {
                        0.0
                    }
                ),
                "generic type parameters",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: impl Into<f64>) -> f64 {
                        0.0
                    }
                ),
                "`impl Trait` parameters",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: &f64) -> f64 {
                        *x
                    }
                ),
                "take the `f64` by value",
            ),
            (
                quote!(),
                quote!(
                    fn f(n: usize) -> f64 {
                        n as f64
                    }
                ),
                "needs a parameter to differentiate",
            ),
            (
                quote!(),
                quote!(
                    fn f(x: f64) -> f64 {
                        let mut y = x;
                        let r = &mut y;
                        y
                    }
                ),
                "`&mut`",
            ),
            (
                quote!(),
                quote!(
                    fn f(a: [f64; 3]) -> f64 {
                        let [x, .., z] = a;
                        x * z
                    }
                ),
                "`..` is supported at the end",
            ),
        ];
        for (attr, item, want) in cases {
            let out = errors_of(attr, item.clone());
            assert!(out.contains("compile_error"), "no error for {item}: {out}");
            assert!(out.contains(want), "for {item}: wanted `{want}` in {out}");
        }
    }

    #[test]
    fn several_errors_are_reported_together() {
        let out = errors_of(
            quote!(),
            quote!(
                fn f(x: f64) -> f64 {
                    let a = apply(|y: f64| y, x);
                    let b = x.frob();
                    unsafe { x }
                }
            ),
        );
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
        assert!(
            out.contains("closures") && out.contains("frob") && out.contains("unsafe"),
            "{out}"
        );
    }

    /// Times the expansion of every `#[grad]` function in the files of `FERRAX_TIME_DIR`.
    #[test]
    fn time_expansion_of_dir() {
        let Ok(dir) = std::env::var("FERRAX_TIME_DIR") else {
            return;
        };
        let mut items = Vec::new();
        for entry in std::fs::read_dir(dir).expect("dir").flatten() {
            let Ok(src) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let Ok(file) = syn::parse_file(&src) else {
                continue;
            };
            for item in file.items {
                if let syn::Item::Fn(mut f) = item
                    && let Some(pos) = f.attrs.iter().position(|a| a.path().is_ident("grad"))
                {
                    let a = f.attrs.remove(pos);
                    let args = match a.meta {
                        syn::Meta::List(l) => l.tokens,
                        _ => quote!(),
                    };
                    items.push((args, quote!(#f)));
                }
            }
        }
        let t = std::time::Instant::now();
        let mut bytes = 0;
        for (a, f) in &items {
            let out = expand(a.clone(), f.clone())
                .map(|t| t.to_string())
                .unwrap_or_else(|e| e.to_string());
            if out.contains("compile_error") {
                println!("error expanding {f}: {out}");
            }
            bytes += out.len();
        }
        println!(
            "expanded {} functions in {:?} ({} bytes of output)",
            items.len(),
            t.elapsed(),
            bytes
        );
    }

    /// The transforms compose: forward mode runs over reverse mode's output (the shape of a
    /// Hessian-vector product), for straight-line code, loops with carried state and
    /// sequence writes.
    #[test]
    fn jvp_runs_over_vjp_output() {
        use crate::analyse::{dce, varied};
        use crate::ir::{Atom, Block, Rhs, Stmt};
        use crate::transform::{jvp::jvp, vjp::vjp};
        let fns = [
            quote!(
                fn f(x: f64, y: f64) -> f64 {
                    x.sin() * y.exp()
                }
            ),
            quote!(
                fn f(x: &[f64]) -> f64 {
                    let mut s = 1.0;
                    for i in 0..x.len() {
                        s = s * x[i] + x[i].cos();
                    }
                    s
                }
            ),
            quote!(
                fn f(x: &[f64]) -> f64 {
                    let mut v = vec![0.0; x.len()];
                    for i in 0..x.len() {
                        v[i] = x[i] * x[i];
                    }
                    let mut s = 0.0;
                    while s < 3.0 {
                        s += v[0] + 0.5;
                    }
                    s * v[0]
                }
            ),
        ];
        for item in fns {
            let cx = crate::ctxt::Ctxt::new();
            let item: syn::ItemFn = syn::parse2(item).expect("fn");
            let (func, _) = crate::parse::lower(&cx, &item, &Default::default());
            assert!(cx.check().is_ok());
            let v = vjp(&func, &varied(&func));
            let mut g = v.func.clone();
            let mut stmts = v.fwd.stmts.clone();
            stmts.push(Stmt::Let {
                var: v.seed,
                rhs: Rhs::Atom(Atom::Float(1.0)),
            });
            stmts.extend(v.rev.stmts.iter().cloned());
            g.body = Block { stmts };
            g.output = v.grads[0];
            let outs = g.output.var().into_iter().collect();
            dce(&mut g.body, &outs, &Default::default());
            let h = jvp(&g, &varied(&g));
            assert!(
                h.tangent.var().is_some(),
                "no tangent for {}",
                quote!(#item)
            );
            let em = crate::emit::Emitter::new(&h.func, false);
            assert!(!em.block(&h.func.body).is_empty());
        }
    }
}
