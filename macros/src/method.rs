//! `#[grad]` on methods.
//!
//! `fn f(&self, x: ..)` is expanded as the function `fn f(__ferrax_self: &Self, x: ..)`,
//! with every `self` of its body and attribute renamed; the receiver is then an ordinary
//! parameter (a struct: active unless left out of `wrt`, its fields read as places), and
//! `self.g(..)` a call of the method `g` (see `ir::METHOD`). Each generated function that takes it first becomes a
//! method again (`self: &Self`, then `let __ferrax_self = self;`), so a user calls
//! `model.loss_grad(&x)`, and a caller's derivative calls `Self::__ferrax_full_g_jvp(..)`.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use std::collections::HashSet;
use syn::visit_mut::VisitMut;
use syn::{FnArg, Ident, ItemFn};

/// The name the receiver goes by inside the expansion.
pub const SELF: &str = "__ferrax_self";

/// `item` as a function taking its receiver as [`SELF`], or `None` when it has none.
/// A receiver other than `&self` is refused.
pub fn as_function(item: &ItemFn) -> syn::Result<Option<ItemFn>> {
    let Some(FnArg::Receiver(r)) = item.sig.inputs.first() else {
        return Ok(None);
    };
    if r.reference.is_none() || r.mutability.is_some() {
        return Err(syn::Error::new_spanned(
            r,
            "#[grad] methods take `&self` (a derivative cannot write through `&mut self`, and a struct parameter is borrowed): take `&self`, or write a free function",
        ));
    }
    let ty = &r.ty;
    let id = Ident::new(SELF, r.self_token.span);
    let mut f = item.clone();
    f.sig.inputs[0] = syn::parse2(quote!(#id: #ty))?;
    // (the attributes under this one too: `#[grad(wrt(self))]` under `#[vmap]`)
    for a in &mut f.attrs {
        if let syn::Meta::List(l) = &mut a.meta {
            l.tokens = rename_self(l.tokens.clone());
        }
    }
    f.block = syn::parse2(rename_self(item.block.to_token_stream()))?;
    Ok(Some(f))
}

/// `tokens` with every `self` that is not the start of a path (`self::m`) renamed [`SELF`].
pub fn rename_self(tokens: TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    for (k, t) in trees.iter().enumerate() {
        out.push(match t {
            TokenTree::Ident(i) if i == "self" && !starts_path(&trees[k + 1..]) => {
                TokenTree::Ident(Ident::new(SELF, i.span()))
            }
            TokenTree::Group(g) => {
                let mut n = proc_macro2::Group::new(g.delimiter(), rename_self(g.stream()));
                n.set_span(g.span());
                TokenTree::Group(n)
            }
            other => other.clone(),
        });
    }
    out.into_iter().collect()
}

fn starts_path(rest: &[TokenTree]) -> bool {
    matches!(
        rest,
        [TokenTree::Punct(a), TokenTree::Punct(b), ..] if a.as_char() == ':' && b.as_char() == ':'
    )
}

/// The expansion of the function form of `original` made methods again: `original` itself
/// as written, and every other function whose first parameter is [`SELF`] with that
/// parameter as its receiver. Other items (errors) pass through.
pub fn as_methods(out: TokenStream, original: &ItemFn) -> syn::Result<TokenStream> {
    let file: syn::File = syn::parse2(out)?;
    // the generated functions call each other by name: in an `impl`, through `Self::`
    let siblings: HashSet<Ident> = file
        .items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Fn(f) => Some(f.sig.ident.clone()),
            _ => None,
        })
        .collect();
    let mut items = Vec::new();
    for item in file.items {
        let syn::Item::Fn(mut f) = item else {
            items.push(item.into_token_stream());
            continue;
        };
        if f.sig.ident == original.sig.ident {
            items.push(original.to_token_stream());
            continue;
        }
        ThroughSelf(&siblings).visit_block_mut(&mut f.block);
        if let Some(FnArg::Typed(pt)) = f.sig.inputs.first()
            && let syn::Pat::Ident(pi) = &*pt.pat
            && pi.ident == SELF
        {
            let (ty, m) = (&pt.ty, pi.mutability);
            let recv = Ident::new("self", Span::call_site());
            let id = Ident::new(SELF, Span::call_site());
            f.sig.inputs[0] = syn::parse2(quote!(#recv: #ty))?;
            f.block
                .stmts
                .insert(0, syn::parse2(quote!(let #m #id = #recv;))?);
        }
        for a in &mut f.attrs {
            if let syn::Meta::NameValue(nv) = &mut a.meta
                && nv.path.is_ident("doc")
                && let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) = &mut nv.value
            {
                let text = s.value().replace(&format!("`{SELF}`"), "`self`");
                *s = syn::LitStr::new(&text, s.span());
            }
        }
        items.push(f.into_token_stream());
    }
    Ok(quote!(#(#items)*))
}

/// Rewrites calls `g(..)` of the functions named in it as `Self::g(..)`.
struct ThroughSelf<'a>(&'a HashSet<Ident>);

impl VisitMut for ThroughSelf<'_> {
    fn visit_expr_call_mut(&mut self, call: &mut syn::ExprCall) {
        if let syn::Expr::Path(p) = &mut *call.func
            && p.qself.is_none()
            && let Some(id) = p.path.get_ident()
            && self.0.contains(id)
        {
            let id = id.clone();
            p.path = syn::parse_quote!(Self::#id);
        }
        syn::visit_mut::visit_expr_call_mut(self, call);
    }
}

/// Whether `item` (in function form) was a method.
pub fn is_method(item: &ItemFn) -> bool {
    matches!(
        item.sig.inputs.first(),
        Some(FnArg::Typed(pt)) if matches!(&*pt.pat, syn::Pat::Ident(pi) if pi.ident == SELF)
    )
}
