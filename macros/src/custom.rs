//! `#[custom_vjp(bwd)]` and `#[custom_jvp(jvp)]`: a function whose derivative the user
//! gives. They emit the same family of functions `#[grad]` does (`f_jvp`, `f_vjp`, `f_grad`,
//! `f_value_and_grad`), so `#[grad]` callers use the rule like any other callee.
//!
//! - `#[custom_vjp(f_bwd)]`: `f_bwd(args.., out: &Out, ct: Out) -> grads` (one gradient per
//!   differentiable parameter, a tuple when there are several). Reverse mode calls it; the
//!   pullback owns clones of the tensor arguments. Forward mode is one reverse pass, dotted
//!   with the tangents: exact for a scalar output (f32, f64, a one-element tensor); for a
//!   larger output `f_jvp` panics saying so (give `#[custom_jvp]` too).
//! - `#[custom_jvp(f_fwd)]`: `f_fwd(args.., tangents..) -> (out, tangent)`. Forward mode calls
//!   it. Reverse mode is one forward pass per parameter with a unit tangent, so it needs
//!   float (`f32`/`f64`) parameters and a float result; otherwise add `#[custom_vjp]`.
//!
//! Both may be put on one function: each then emits only its own mode.

use crate::ir::Kind;
use crate::parse::type_kind;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Type, spanned::Spanned};

/// Which rule the attribute gives.
#[derive(Clone, Copy, PartialEq)]
pub enum Rule {
    Vjp,
    Jvp,
}

struct Param {
    ident: syn::Ident,
    ty: Type,
    kind: Kind,
}

/// Expands `#[custom_vjp(rule)]` / `#[custom_jvp(rule)]` on `item`.
pub fn expand(which: Rule, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = syn::parse::Parser::parse2(
        syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
        attr,
    );
    let usage = match which {
        Rule::Vjp => "expected the backward function: `#[custom_vjp(f_bwd)]`",
        Rule::Jvp => "expected the forward-mode function: `#[custom_jvp(f_fwd)]`",
    };
    let args: Vec<syn::Path> = args
        .map_err(|e| syn::Error::new(e.span(), usage))?
        .into_iter()
        .collect();
    let (rule, other_given) = match args.as_slice() {
        [r] => (r.clone(), false),
        // written by the other attribute when both are on one function
        [r, flag] if flag.is_ident("other_given") => (r.clone(), true),
        _ => return Err(syn::Error::new(proc_macro2::Span::call_site(), usage)),
    };
    let mut item: syn::ItemFn = syn::parse2(item)?;
    let other = match which {
        Rule::Vjp => "custom_jvp",
        Rule::Jvp => "custom_vjp",
    };
    // With both attributes each emits its own mode only: the first to expand tells the other.
    let mut both = other_given;
    for a in item.attrs.iter_mut() {
        if a.path().is_ident(other)
            && let syn::Meta::List(l) = &mut a.meta
        {
            let tokens = &l.tokens;
            l.tokens = quote!(#tokens, other_given);
            both = true;
        }
    }
    if let Some(g) = item.attrs.iter().find(|a| a.path().is_ident("grad")) {
        return Err(syn::Error::new(
            g.span(),
            "`#[grad]` and a custom rule on one function: the rule already gives its derivatives; remove `#[grad]`",
        ));
    }
    let sig = &item.sig;
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a function with a custom derivative rule cannot be generic",
        ));
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        let syn::FnArg::Typed(pt) = input else {
            return Err(syn::Error::new(
                input.span(),
                "a custom derivative rule needs a free function, not a method",
            ));
        };
        let syn::Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new(
                pt.pat.span(),
                "parameters must be plain names (`x: f64`)",
            ));
        };
        let kind = type_kind(&pt.ty).map_err(|m| syn::Error::new_spanned(&pt.ty, m))?;
        if matches!(kind, Kind::Seq(..)) {
            return Err(syn::Error::new_spanned(
                &pt.ty,
                "custom derivative rules take f32, f64, Tensor, &Tensor or &Params (a #[derive(Differentiable)] struct) parameters; a slice or Vec is not supported: pass a Tensor",
            ));
        }
        params.push(Param {
            ident: pi.ident.clone(),
            ty: (*pt.ty).clone(),
            kind,
        });
    }
    let ret: Type = match &sig.output {
        syn::ReturnType::Type(_, t) => (**t).clone(),
        syn::ReturnType::Default => {
            return Err(syn::Error::new(
                sig.ident.span(),
                "a function with a custom derivative must return f32, f64 or a Tensor",
            ));
        }
    };
    let ret_kind = type_kind(&ret).unwrap_or(Kind::Opaque);
    if !matches!(ret_kind, Kind::Float(_) | Kind::Tensor) {
        return Err(syn::Error::new_spanned(
            &ret,
            "a function with a custom derivative must return f32, f64 or a Tensor",
        ));
    }
    let active: Vec<&Param> = params
        .iter()
        .filter(|p| p.kind.is_differentiable())
        .collect();
    if active.is_empty() {
        return Err(syn::Error::new(
            sig.ident.span(),
            "a custom derivative rule needs a parameter to differentiate: f32, f64, a Tensor or a parameter struct",
        ));
    }
    let grad_ty = |p: &Param| -> Type {
        match &p.ty {
            Type::Reference(r) => (*r.elem).clone(),
            t => t.clone(),
        }
    };
    let grad_tys: Vec<Type> = active.iter().map(|p| grad_ty(p)).collect();
    let grads_ty = if grad_tys.len() == 1 {
        quote!(#(#grad_tys)*)
    } else {
        quote!((#(#grad_tys),*))
    };
    let name = &sig.ident;
    let vis = &item.vis;
    let idents: Vec<&syn::Ident> = params.iter().map(|p| &p.ident).collect();
    let typed: Vec<TokenStream> = params
        .iter()
        .map(|p| {
            let (i, t) = (&p.ident, &p.ty);
            quote!(#i: #t)
        })
        .collect();
    // `dx` for `x`, unless a parameter has that name (`fn f(x: f64, dx: f64)`)
    let tangent_of = |p: &Param| {
        let d = format_ident!("d{}", p.ident);
        match params.iter().any(|q| q.ident == d) {
            true => format_ident!("__ferrax_d{}", p.ident),
            false => d,
        }
    };
    let tangents: Vec<syn::Ident> = active.iter().map(|p| tangent_of(p)).collect();
    let tangent_params: Vec<TokenStream> = active
        .iter()
        .zip(&tangents)
        .map(|(p, d)| {
            let t = &p.ty;
            quote!(#d: #t)
        })
        .collect();
    let one = if ret_kind == Kind::Tensor {
        quote!(::ferrax::__private::t::ones_like(&__ferrax_out))
    } else {
        quote!(1.0)
    };
    let allow = quote!(#[allow(dead_code, clippy::all)]);
    let (jvp_name, vjp_name, grad_name, vag_name) = (
        format_ident!("{name}_jvp"),
        format_ident!("{name}_vjp"),
        format_ident!("{name}_grad"),
        format_ident!("{name}_value_and_grad"),
    );

    let emitted = [&jvp_name, &vjp_name, &grad_name, &vag_name];
    if let Some(clash) = emitted.iter().find(|n| rule.is_ident(**n)) {
        return Err(syn::Error::new_spanned(
            &rule,
            format!(
                "the rule cannot be called `{clash}`: that name is emitted for `{name}`; call it `{name}_fwd`, `{name}_bwd` or the like"
            ),
        ));
    }
    let mut out = TokenStream::new();
    if which == Rule::Vjp {
        // Reverse mode from the user's backward function; the pullback owns its inputs.
        let owned: Vec<TokenStream> = params
            .iter()
            .filter(|p| matches!(p.ty, Type::Reference(_)))
            .map(|p| {
                let i = &p.ident;
                quote!(let #i = ::std::clone::Clone::clone(#i);)
            })
            .collect();
        let owned_args: Vec<TokenStream> = params
            .iter()
            .map(|p| {
                let i = &p.ident;
                if matches!(p.ty, Type::Reference(_)) {
                    quote!(&#i)
                } else {
                    quote!(#i)
                }
            })
            .collect();
        let doc_vjp = format!(
            "Reverse mode of [`{name}`], from its custom rule [`{}`].",
            quote!(#rule)
        );
        out.extend(quote! {
            #[doc = #doc_vjp]
            #allow
            #vis fn #vjp_name(#(#typed),*) -> (#ret, impl FnOnce(#ret) -> #grads_ty + use<>) {
                let __ferrax_out = #name(#(#idents),*);
                #(#owned)*
                (::std::clone::Clone::clone(&__ferrax_out), move |__ferrax_ct: #ret| -> #grads_ty { #rule(#(#owned_args,)* &__ferrax_out, __ferrax_ct) })
            }
            #[doc = "Gradient of the function of the same stem, from its custom rule."]
            #allow
            #vis fn #grad_name(#(#typed),*) -> #grads_ty {
                let __ferrax_out = #name(#(#idents),*);
                let __ferrax_ct = #one;
                #rule(#(#idents,)* &__ferrax_out, __ferrax_ct)
            }
            #[doc = "Value and gradient of the function of the same stem, from its custom rule."]
            #allow
            #vis fn #vag_name(#(#typed),*) -> (#ret, #grads_ty) {
                let __ferrax_out = #name(#(#idents),*);
                let __ferrax_ct = #one;
                let __ferrax_g = #rule(#(#idents,)* &__ferrax_out, __ferrax_ct);
                (__ferrax_out, __ferrax_g)
            }
        });
        if !both {
            // Forward mode from one reverse pass: <grad, tangent>, exact for a scalar output.
            let g_items: Vec<TokenStream> = if active.len() == 1 {
                vec![quote!(&__ferrax_g)]
            } else {
                (0..active.len())
                    .map(|k| {
                        let k = syn::Index::from(k);
                        quote!(&__ferrax_g.#k)
                    })
                    .collect()
            };
            let t_items: Vec<TokenStream> = active
                .iter()
                .zip(&tangents)
                .map(|(p, d)| {
                    if matches!(p.ty, Type::Reference(_)) {
                        quote!(#d)
                    } else {
                        quote!(&#d)
                    }
                })
                .collect();
            let msg = format!(
                "{jvp_name}: `{name}` has a custom VJP only, and forward mode through it is one reverse pass, exact for a one-element output; this output has {{}} elements. Give `{name}` a #[custom_jvp] rule too"
            );
            out.extend(quote! {
                #[doc = "Forward mode of the function of the same stem: one reverse pass of its custom VJP, dotted with the tangents (a one-element output only)."]
                #allow
                #vis fn #jvp_name(#(#typed,)* #(#tangent_params),*) -> (#ret, #ret) {
                    let __ferrax_out = #name(#(#idents),*);
                    let __ferrax_n = ::ferrax::__private::t::numel_of(&__ferrax_out);
                    ::core::assert!(__ferrax_n == 1, #msg, __ferrax_n);
                    let __ferrax_ct = #one;
                    let __ferrax_g = #rule(#(#idents,)* &__ferrax_out, __ferrax_ct);
                    let __ferrax_dot = 0.0 #(+ ::ferrax::__private::t::inner(#g_items, #t_items))*;
                    let __ferrax_tangent = ::ferrax::__private::t::tangent_like(&__ferrax_out, __ferrax_dot);
                    (__ferrax_out, __ferrax_tangent)
                }
            });
        }
    } else {
        // custom_jvp: forward mode is the rule itself; reverse mode from it unless a
        // custom_vjp gives it.
        let doc_jvp = format!(
            "Forward mode of [`{name}`], its custom rule [`{}`].",
            quote!(#rule)
        );
        out.extend(quote! {
            #[doc = #doc_jvp]
            #allow
            #vis fn #jvp_name(#(#typed,)* #(#tangent_params),*) -> (#ret, #ret) {
                #rule(#(#idents,)* #(#tangents),*)
            }
        });
        if !both {
            // Reverse mode: one forward pass per (float) parameter with a unit tangent.
            if let Some(p) = params
                .iter()
                .find(|p| p.kind.is_differentiable() && !matches!(p.kind, Kind::Float(_)))
            {
                return Err(syn::Error::new_spanned(
                    &p.ty,
                    "with #[custom_jvp] alone, reverse mode runs one forward pass per parameter, so parameters must be f32 or f64: give a #[custom_vjp] rule too for tensor parameters",
                ));
            }
            if ret_kind != Kind::Float(crate::ir::Prec::F32)
                && ret_kind != Kind::Float(crate::ir::Prec::F64)
            {
                return Err(syn::Error::new_spanned(
                    &ret,
                    "with #[custom_jvp] alone, reverse mode needs an f32 or f64 result: give a #[custom_vjp] rule too",
                ));
            }
            let passes: Vec<TokenStream> = (0..active.len())
                .map(|k| {
                    let ts =
                        (0..active.len()).map(|j| if j == k { quote!(1.0) } else { quote!(0.0) });
                    quote!(__ferrax_ct * #rule(#(#idents,)* #(#ts),*).1)
                })
                .collect();
            let grads = if passes.len() == 1 {
                quote!(#(#passes)*)
            } else {
                quote!((#(#passes),*))
            };
            out.extend(quote! {
                #[doc = "Reverse mode of the function of the same stem: one pass of its custom JVP per parameter."]
                #allow
                #vis fn #vjp_name(#(#typed),*) -> (#ret, impl FnOnce(#ret) -> #grads_ty + use<>) {
                    let __ferrax_out = #name(#(#idents),*);
                    (__ferrax_out, move |__ferrax_ct: #ret| -> #grads_ty { #grads })
                }
                #[doc = "Gradient of the function of the same stem, from its custom JVP."]
                #allow
                #vis fn #grad_name(#(#typed),*) -> #grads_ty {
                    let __ferrax_ct = 1.0;
                    #grads
                }
                #[doc = "Value and gradient of the function of the same stem, from its custom JVP."]
                #allow
                #vis fn #vag_name(#(#typed),*) -> (#ret, #grads_ty) {
                    let __ferrax_ct = 1.0;
                    (#name(#(#idents),*), #grads)
                }
            });
        }
    }
    // What `#[grad]` callers call (see `grad::FULL`): every parameter is active here.
    let full_jvp = format_ident!("{}{name}_jvp", crate::grad::FULL);
    let full_vjp = format_ident!("{}{name}_vjp", crate::grad::FULL);
    let vjp_wrapper = quote! {
        #[doc(hidden)]
        #allow
        #vis fn #full_vjp(#(#typed),*) -> (#ret, impl FnOnce(#ret) -> #grads_ty + use<>) {
            #vjp_name(#(#idents),*)
        }
    };
    let jvp_wrapper = quote! {
        #[doc(hidden)]
        #allow
        #vis fn #full_jvp(#(#typed,)* #(#tangent_params),*) -> (#ret, #ret) {
            #jvp_name(#(#idents,)* #(#tangents),*)
        }
    };
    let slots: Vec<bool> = params.iter().map(|p| p.kind.is_differentiable()).collect();
    let vjp_wrapper = crate::slots::wrap(vjp_wrapper, &slots, crate::slots::Shape::Pullback);
    let jvp_wrapper = crate::slots::wrap(
        jvp_wrapper,
        &slots,
        crate::slots::Shape::Tangents {
            first: params.len(),
        },
    );
    // With both attributes each wraps its own mode; alone, this one gives both.
    let own = match which {
        Rule::Vjp if both => vjp_wrapper,
        Rule::Jvp if both => jvp_wrapper,
        _ => quote!(#vjp_wrapper #jvp_wrapper),
    };
    // The other attribute, if any, stays on the item and expands next.
    Ok(quote!(#item #out #own))
}
