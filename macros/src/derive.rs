//! `#[derive(Differentiable)]`: a struct's leaves are its fields' leaves, in field order,
//! except the fields marked `#[differentiable(skip)]`, which are constants.
//!
//! The generated impl lists the leaves of every differentiable field (named or tuple
//! fields) through `::ferrax::differentiable::Differentiable`, at each field type's span,
//! so a field of an unsupported type is reported there; a generic struct gets a bound per
//! field type.
//! Enums, unions and unknown `differentiable` attributes are errors at their spans, all of
//! them reported together.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Index, Member};

/// Expands the derive, or returns every error found.
pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let fields = match &input.data {
        Data::Struct(s) => &s.fields,
        Data::Enum(e) => {
            return Err(syn::Error::new(
                e.enum_token.span,
                "#[derive(Differentiable)] supports structs only, not enums (a tangent must have one shape)",
            ));
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "#[derive(Differentiable)] supports structs only, not unions",
            ));
        }
    };
    let mut errors: Option<syn::Error> = None;
    let mut members = Vec::new();
    let mut skipped = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        match is_skipped(field) {
            Ok(true) => skipped.push(match &field.ident {
                Some(name) => name.to_string(),
                None => i.to_string(),
            }),
            Ok(false) => {
                let member = match &field.ident {
                    Some(name) => Member::Named(name.clone()),
                    None => Member::Unnamed(Index {
                        index: i as u32,
                        span: field.ty.span(),
                    }),
                };
                members.push((member, &field.ty));
            }
            Err(e) => match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            },
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }

    let path = quote!(::ferrax::differentiable);
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut predicates: Vec<TokenStream> = where_clause
        .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
        .unwrap_or_default();
    // Bounds for generic structs only: on a concrete field type, rustc reports a missing
    // impl at the field (through the calls below) rather than at the derive.
    if input.generics.type_params().next().is_some() {
        predicates.extend(
            members
                .iter()
                .map(|(_, ty)| quote_spanned!(ty.span()=> #ty: #path::Differentiable)),
        );
    }
    let leaves = members.iter().map(|(m, ty)| {
        quote_spanned!(ty.span()=> <#ty as #path::Differentiable>::leaves(&self.#m, out);)
    });
    let leaves_mut = members.iter().map(|(m, ty)| {
        quote_spanned!(ty.span()=> <#ty as #path::Differentiable>::leaves_mut(&mut self.#m, out);)
    });
    // `out` is unused for a struct without differentiable fields
    let out = if members.is_empty() {
        quote!(_out)
    } else {
        quote!(out)
    };
    let is_skipped = if skipped.is_empty() {
        quote!(let _ = name; false)
    } else {
        quote!(matches!(name, #(#skipped)|*))
    };
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #path::Differentiable for #name #ty_generics
        where
            #(#predicates,)*
        {
            fn leaves<'__ferrax>(
                &'__ferrax self,
                #out: &mut ::std::vec::Vec<#path::Leaf<'__ferrax>>,
            ) {
                #(#leaves)*
            }
            fn is_skipped_field(&self, name: &str) -> bool {
                #is_skipped
            }
            fn leaves_mut<'__ferrax>(
                &'__ferrax mut self,
                #out: &mut ::std::vec::Vec<#path::LeafMut<'__ferrax>>,
            ) {
                #(#leaves_mut)*
            }
        }
    })
}

/// Whether the field has `#[differentiable(skip)]`; an error for any other
/// `differentiable` attribute.
fn is_skipped(field: &syn::Field) -> syn::Result<bool> {
    let mut skip = false;
    let mut errors: Option<syn::Error> = None;
    for attr in field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("differentiable"))
    {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                let name = meta
                    .path
                    .get_ident()
                    .map_or_else(|| "this".to_string(), |i| format!("`{i}`"));
                Err(meta.error(format!(
                    "unknown argument {name} of #[differentiable]; supported: `skip` (the field is a constant)"
                )))
            }
        });
        if let Err(e) = result {
            match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            }
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(skip),
    }
}
