//! The calling convention of the counterparts `#[grad]` callers call (see `grad::FULL`):
//! one tangent per argument, one gradient per argument.
//!
//! A caller cannot see its callee's parameter types, and cannot always see its own
//! arguments' (a constant: `g(x, SCALE)` with a float, `g(x, N)` with an integer). So it
//! passes a tangent for every argument (for a constant, a zero of its type where that is
//! differentiable, else `()`: `__private::slot`) and takes a gradient for every argument,
//! keeping those of the arguments it knows to be active. A callee's counterparts are
//! generated for its active parameters; where one is not (an integer, a bool, a struct left
//! out of `wrt`, another type), [`with_slots`] renames the counterpart and puts a wrapper
//! under its name that takes a tangent for that parameter (any value, ignored) and gives
//! `()` as its gradient.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, Pat, ReturnType, Type};

/// What a counterpart takes and gives.
#[derive(Clone, Copy)]
pub enum Shape {
    /// `(args.., [ct,] tangents.., [ct_tangent]) -> tangent`: the tangents of the active
    /// parameters start at input `first`.
    Tangents { first: usize },
    /// `(args.., ct, tangents.., ct_tangent) -> tangents of the gradients`.
    TangentsToGrads { first: usize },
    /// `(args.., [ct]) -> gradients`.
    Grads,
    /// `(args..) -> (value, pullback: cotangent -> gradients)`.
    Pullback,
}

/// The counterparts callers call among `items` (generated for `item`, differentiated with
/// respect to the parameters `attr.for_callers` makes active), each with one slot per
/// parameter ([`with_slots`]).
pub fn for_callers(
    items: TokenStream,
    item: &syn::ItemFn,
    attr: &crate::attr::GradAttr,
) -> TokenStream {
    let Ok((func, ..)) = crate::grad::lower_checked(item, &attr.for_callers(&item.sig)) else {
        return items;
    };
    let active: Vec<bool> = func.params.iter().map(|p| p.active).collect();
    if active.iter().all(|a| *a) {
        return items;
    }
    let Ok(file) = syn::parse2::<syn::File>(items.clone()) else {
        return items;
    };
    let (f, n) = (&item.sig.ident, active.len());
    let full = crate::grad::FULL;
    let vm = |prefix: &str| format!("{prefix}{f}");
    let shape_of = |name: &str| -> Option<Shape> {
        use crate::transform::vmap::{VMAP0_CT, VMAP0_CTJVPT, VMAP0_JVPT};
        Some(match name {
            _ if name == format!("{full}{f}_jvp") || name == vm(VMAP0_JVPT) => {
                Shape::Tangents { first: n }
            }
            _ if name == format!("{full}{f}_vjp") => Shape::Pullback,
            _ if name == format!("{full}{f}_ctjvp") || name == vm(VMAP0_CTJVPT) => {
                Shape::TangentsToGrads { first: n + 1 }
            }
            _ if name == vm(VMAP0_CT) => Shape::Grads,
            _ => return None,
        })
    };
    let mut out = TokenStream::new();
    for it in file.items {
        match &it {
            syn::Item::Fn(g) if let Some(shape) = shape_of(&g.sig.ident.to_string()) => {
                out.extend(with_slots(g, &active, shape));
            }
            _ => out.extend(quote!(#it)),
        }
    }
    out
}

/// `inner`, one generated free function, with one slot per parameter ([`with_slots`]) where
/// `active` leaves one out.
pub fn wrap(inner: TokenStream, active: &[bool], shape: Shape) -> TokenStream {
    match syn::parse2::<syn::ItemFn>(inner.clone()) {
        Ok(f) if !active.iter().all(|a| *a) => with_slots(&f, active, shape),
        _ => inner,
    }
}

/// `inner`, one generated function, as callers call it: renamed (`{name}_active`) behind a
/// wrapper under its name that takes and gives one slot per parameter, active or not (see
/// the module's documentation).
fn with_slots(inner: &syn::ItemFn, active: &[bool], shape: Shape) -> TokenStream {
    let mut f = inner.clone();
    let inner = quote!(#inner);
    let name = f.sig.ident.clone();
    let inner_name = format_ident!("{name}_active");
    f.sig.ident = inner_name.clone();
    let mut w = f.sig.clone();
    w.ident = name;
    // the wrapper's parameters, named as they are (a method's receiver stays the first,
    // `__ferrax_self`) with no `mut`; and what it passes on
    let mut inputs: Vec<FnArg> = f.sig.inputs.iter().cloned().collect();
    let mut passed = Vec::new();
    for (k, input) in inputs.iter_mut().enumerate() {
        if let FnArg::Typed(pt) = input {
            let ident = match &*pt.pat {
                Pat::Ident(pi) => pi.ident.clone(),
                _ => format_ident!("__ferrax_arg{k}"),
            };
            *pt.pat = syn::parse_quote!(#ident);
            passed.push(ident);
        }
    }
    let n_active = active.iter().filter(|a| **a).count();
    if let Shape::Tangents { first } | Shape::TangentsToGrads { first } = shape {
        if first + n_active > inputs.len() {
            return inner;
        }
        let mut tangents = inputs.drain(first..first + n_active);
        let slots: Vec<FnArg> = active
            .iter()
            .enumerate()
            .map(|(k, a)| match a {
                true => tangents.next().expect("one tangent per active parameter"),
                false => {
                    let id = format_ident!("__ferrax_slot{k}");
                    syn::parse_quote!(#id: impl ::core::marker::Sized)
                }
            })
            .collect();
        drop(tangents);
        inputs.splice(first..first, slots);
    }
    w.inputs = inputs.into_iter().collect();
    let call = quote!(#inner_name(#(#passed),*));
    // the gradients of every parameter, from those of the active ones in `g`
    let all_grads = |g: TokenStream| -> TokenStream {
        let mut k = 0;
        let items = active.iter().map(|a| match a {
            true if n_active == 1 => g.clone(),
            true => {
                let i = syn::Index::from(k);
                k += 1;
                quote!(#g.#i)
            }
            false => quote!(()),
        });
        quote!((#(#items),*))
    };
    let all_types = |g: &Type| -> Option<Type> {
        let tys: Vec<Type> = match (n_active, g) {
            (1, t) => vec![t.clone()],
            (_, Type::Tuple(t)) if t.elems.len() == n_active => t.elems.iter().cloned().collect(),
            _ => return None,
        };
        let mut it = tys.into_iter();
        let items: Vec<Type> = active
            .iter()
            .map(|a| match a {
                true => it.next().expect("one gradient per active parameter"),
                false => syn::parse_quote!(()),
            })
            .collect();
        Some(syn::parse_quote!((#(#items),*)))
    };
    let ReturnType::Type(arrow, ret) = &f.sig.output else {
        return inner;
    };
    let body = match shape {
        Shape::Tangents { .. } => call,
        Shape::Grads | Shape::TangentsToGrads { .. } => {
            let Some(all) = all_types(ret) else {
                return inner;
            };
            w.output = ReturnType::Type(*arrow, Box::new(all));
            let grads = all_grads(quote!(g));
            quote!(let g = #call; #grads)
        }
        Shape::Pullback => {
            // `(R, impl FnOnce(C) -> G + bounds)`
            let Type::Tuple(t) = &**ret else {
                return inner;
            };
            let Some(Type::ImplTrait(pb)) = t.elems.iter().nth(1) else {
                return inner;
            };
            let mut pb = pb.clone();
            let mut ct_ty = None;
            for b in pb.bounds.iter_mut() {
                if let syn::TypeParamBound::Trait(tb) = b
                    && let Some(seg) = tb.path.segments.last_mut()
                    && seg.ident == "FnOnce"
                    && let syn::PathArguments::Parenthesized(args) = &mut seg.arguments
                    && let ReturnType::Type(_, g) = &mut args.output
                {
                    let Some(all) = all_types(g) else {
                        return inner;
                    };
                    **g = all;
                    ct_ty = args.inputs.first().cloned();
                }
            }
            let Some(ct_ty) = ct_ty else {
                return inner;
            };
            let value_ty = &t.elems[0];
            w.output = ReturnType::Type(*arrow, Box::new(syn::parse_quote!((#value_ty, #pb))));
            let grads = all_grads(quote!(g));
            quote! {
                let (value, pullback) = #call;
                (value, move |ct: #ct_ty| {
                    let g = pullback(ct);
                    #grads
                })
            }
        }
    };
    let attrs = &f.attrs;
    let vis = &f.vis;
    quote! {
        #f
        #(#attrs)*
        #vis #w {
            #body
        }
    }
}
