//! Parses the arguments of `#[grad]`: nothing, or `wrt(x, y, ..)`.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Token};

/// The arguments of `#[grad(...)]`.
#[derive(Default, Clone)]
pub struct GradAttr {
    /// The parameters to differentiate with respect to; `None`: every float parameter.
    pub wrt: Option<Vec<Ident>>,
    /// Whether the function may return a sequence of floats (`#[jacobian]` of slice code,
    /// which takes a `Vec`, and `#[vmap]` alone; not an attribute argument).
    pub seq_output: bool,
}

impl GradAttr {
    /// What the counterparts other `#[grad]` functions call are differentiated with respect
    /// to: every parameter that can be, whatever `wrt` says (a caller knows which of its
    /// arguments are active), except the structs `wrt` leaves out, which stay plain values
    /// (a configuration need not be `Differentiable`).
    pub fn for_callers(&self, sig: &syn::Signature) -> GradAttr {
        let Some(wrt) = &self.wrt else {
            return self.clone();
        };
        let mut all = Vec::new();
        let mut left_out = false;
        for input in &sig.inputs {
            let syn::FnArg::Typed(pt) = input else {
                continue;
            };
            let syn::Pat::Ident(pi) = &*pt.pat else {
                continue;
            };
            match crate::parse::type_kind(&pt.ty) {
                Ok(crate::ir::Kind::Struct) if !wrt.contains(&pi.ident) => left_out = true,
                Ok(k) if k.is_differentiable() => all.push(pi.ident.clone()),
                _ => {}
            }
        }
        GradAttr {
            wrt: left_out.then_some(all),
            seq_output: self.seq_output,
        }
    }
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

/// The arguments of `#[vmap(...)]`: `in_axes = (0, None, ..)` (or one axis for every
/// argument, `in_axes = 0`) and `out_axes = 0`.
pub struct VmapAttr {
    /// Per parameter: the batch axis, or `None` (shared by every example). `None` here:
    /// every parameter batched along axis 0.
    pub in_axes: Option<Vec<Option<isize>>>,
    /// One axis for every parameter (`in_axes = 1`).
    pub in_axis_all: Option<isize>,
    pub out_axes: isize,
    /// Where errors about the attribute point.
    pub span: proc_macro2::Span,
}

fn parse_axis(input: ParseStream) -> syn::Result<Option<isize>> {
    if input.peek(Ident) {
        let id: Ident = input.parse()?;
        if id == "None" {
            return Ok(None);
        }
        return Err(syn::Error::new(
            id.span(),
            "an axis is an integer (`0`, `1`, `-1`) or `None` (the argument is shared by every example)",
        ));
    }
    let neg = input.peek(Token![-]);
    if neg {
        input.parse::<Token![-]>()?;
    }
    let lit: syn::LitInt = input.parse()?;
    let v: isize = lit.base10_parse()?;
    Ok(Some(if neg { -v } else { v }))
}

impl Parse for VmapAttr {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut attr = VmapAttr {
            in_axes: None,
            in_axis_all: None,
            out_axes: 0,
            span: input.span(),
        };
        let (mut seen_in, mut seen_out) = (false, false);
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "in_axes" if !seen_in => {
                    seen_in = true;
                    if input.peek(syn::token::Paren) {
                        let content;
                        syn::parenthesized!(content in input);
                        let mut axes = Vec::new();
                        while !content.is_empty() {
                            axes.push(parse_axis(&content)?);
                            if !content.is_empty() {
                                content.parse::<Token![,]>()?;
                            }
                        }
                        attr.in_axes = Some(axes);
                    } else {
                        match parse_axis(input)? {
                            Some(a) => attr.in_axis_all = Some(a),
                            None => {
                                return Err(syn::Error::new(
                                    key.span(),
                                    "`in_axes = None` batches nothing; name the batched arguments, e.g. `in_axes = (0, None)`",
                                ));
                            }
                        }
                    }
                }
                "out_axes" if !seen_out => {
                    seen_out = true;
                    match parse_axis(input)? {
                        Some(a) => attr.out_axes = a,
                        None => {
                            return Err(syn::Error::new(
                                key.span(),
                                "`out_axes` must be an integer axis: every output of a batched function has a batch axis",
                            ));
                        }
                    }
                }
                "in_axes" | "out_axes" => {
                    return Err(syn::Error::new(key.span(), format!("`{key}` given twice")));
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown argument `{key}` of #[vmap]; supported: `in_axes = (0, None, ..)` and `out_axes = 0`"
                        ),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(attr)
    }
}
