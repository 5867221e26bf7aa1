//! Parses the arguments of `#[grad]`: nothing, or `wrt(x, y, ..)`.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Token};

/// The arguments of `#[grad(...)]`.
#[derive(Default)]
pub struct GradAttr {
    /// The parameters to differentiate with respect to; `None`: every float parameter.
    pub wrt: Option<Vec<Ident>>,
}

impl Parse for GradAttr {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut attr = GradAttr::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            if key != "wrt" {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown argument `{key}` of #[grad]; supported: `wrt(x, y, ..)`"),
                ));
            }
            if attr.wrt.is_some() {
                return Err(syn::Error::new(key.span(), "`wrt` given twice"));
            }
            let content;
            syn::parenthesized!(content in input);
            let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            if names.is_empty() {
                return Err(syn::Error::new(
                    key.span(),
                    "`wrt()` names no parameter; write `wrt(x)` or leave `wrt` out to differentiate with respect to every float parameter",
                ));
            }
            attr.wrt = Some(names.into_iter().collect());
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(attr)
    }
}
