//! Generated entry points whose bodies may run inside rayon's pool (`ferrax::__private::entry`
//! says when and why): every generated function or method that takes something other than
//! numbers gets its body wrapped, once, after the attribute's expansion.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, Item, ReturnType, Type};

/// `out` (an attribute's expansion of the function or method `user`) with the bodies of
/// the generated functions wrapped (methods' too: the attribute on a method expands to
/// methods, its receiver one more parameter to move); `out` unchanged where it is not a
/// list of items, or where the user's body might run code of its own
/// ([`self_contained`]). The function as the user wrote it and functions returning an
/// `impl` type or a reference are left alone.
pub fn pooled(out: TokenStream, user: &syn::ItemFn) -> TokenStream {
    if !self_contained(&user.block) {
        return out;
    }
    let user = &user.sig.ident;
    let Ok(mut file) = syn::parse2::<syn::File>(out.clone()) else {
        return out;
    };
    for item in &mut file.items {
        if let Item::Fn(f) = item
            && f.sig.ident != *user
            && wrappable(&f.sig)
        {
            let ret = match &f.sig.output {
                ReturnType::Default => quote!(()),
                ReturnType::Type(_, t) => quote!(#t),
            };
            let block = &f.block;
            let types = f.sig.inputs.iter().map(|a| match a {
                FnArg::Typed(p) => &p.ty,
                FnArg::Receiver(r) => &r.ty,
            });
            let body: syn::Block = syn::parse_quote!({
                #[allow(unused_imports)]
                use ::ferrax::__private::entry::{InPlace as _, Pooled as _};
                static __FERRAX_SITE: ::ferrax::__private::entry::Site =
                    ::ferrax::__private::entry::Site::new();
                ::ferrax::__private::entry::Body::new(
                    move || -> #ret #block,
                    ::core::marker::PhantomData::<(#(#types,)* #ret,)>,
                )
                .run(&__FERRAX_SITE)
            });
            *f.block = body;
        }
    }
    quote!(#file)
}

/// Whether `body` calls nothing but ferrax's operations: no macro but `vec!`, no function
/// but `Tensor`'s, `Vec`'s, `Conv`'s and `stop_gradient`, no method but those `#[grad]`
/// knows, `Conv`'s and a few of the standard library's (a `Vec`'s, an iterator's,
/// `clone`). Code of the user's own (a `println!`, an `assert!` calling a function, another
/// `#[grad]` function, which may do the same, a method of a configuration struct) may read
/// thread-local state, and must see the caller's thread.
pub(crate) fn self_contained(body: &syn::Block) -> bool {
    struct Walk(bool);
    impl<'a> syn::visit::Visit<'a> for Walk {
        fn visit_expr_call(&mut self, c: &'a syn::ExprCall) {
            // `Tensor::stack`, `Vec::new`, `Conv::new`, `stop_gradient`
            let ours = matches!(&*c.func, syn::Expr::Path(p) if match p.path.segments.len() {
                1 => p.path.is_ident("stop_gradient"),
                2 => ["Tensor", "Vec", "Conv"]
                    .iter()
                    .any(|t| p.path.segments[0].ident == t),
                _ => false,
            });
            self.0 &= ours;
            syn::visit::visit_expr_call(self, c);
        }
        fn visit_expr_method_call(&mut self, c: &'a syn::ExprMethodCall) {
            self.0 &= known_method(&c.method.to_string(), c.args.len());
            syn::visit::visit_expr_method_call(self, c);
        }
    }
    let mut walk = Walk(true);
    syn::visit::Visit::visit_block(&mut walk, body);
    walk.0 && effect_free(body)
}

/// Whether `body` runs no macro but `vec!` (no `println!`, `assert!`, ..: no effect of its
/// own).
pub(crate) fn effect_free(body: &syn::Block) -> bool {
    struct Walk(bool);
    impl<'a> syn::visit::Visit<'a> for Walk {
        fn visit_macro(&mut self, m: &'a syn::Macro) {
            self.0 &= m.path.is_ident("vec");
            syn::visit::visit_macro(self, m);
        }
    }
    let mut walk = Walk(true);
    syn::visit::Visit::visit_block(&mut walk, body);
    walk.0
}

/// A method `#[grad]` knows on tensors or floats (with `nargs` arguments), of `Conv`, or of
/// `Vec`, slices and iterators.
fn known_method(name: &str, nargs: usize) -> bool {
    const STD: &[&str] = &[
        "clone",
        "contiguous",
        "iter",
        "iter_mut",
        "into_iter",
        "map",
        "zip",
        "enumerate",
        "rev",
        "skip",
        "take",
        "step_by",
        "sum",
        "product",
        "fold",
        "collect",
        "push",
        "pop",
        "len",
        "is_empty",
        "first",
        "last",
        "get",
        "copied",
        "cloned",
        "to_vec",
        "as_slice",
        "chunks",
        "windows",
        "min",
        "max",
        // a convolution's spec
        "stride",
        "strides",
        "padding",
        "paddings",
        "same",
        "dilation",
        "dilations",
        "groups",
    ];
    STD.contains(&name)
        || crate::primitives::Prim::from_method(name).is_some()
        || crate::parse::tensor_only(name, nargs)
}

/// A plain, safe, synchronous function taking a tensor or a struct (not only numbers),
/// returning a value that is neither an `impl` type nor borrowed.
fn wrappable(sig: &syn::Signature) -> bool {
    let plain = sig.constness.is_none()
        && sig.asyncness.is_none()
        && sig.unsafety.is_none()
        && sig.abi.is_none()
        && sig.variadic.is_none();
    let owned = match &sig.output {
        ReturnType::Default => true,
        ReturnType::Type(_, t) => owned(t),
    };
    let mut data = false;
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) if !owned_or_ref(&r.ty) => return false,
            FnArg::Receiver(_) => data = true,
            FnArg::Typed(p) if !owned_or_ref(&p.ty) => return false,
            FnArg::Typed(p) => data |= !numbers(&p.ty),
        }
    }
    plain && owned && data
}

/// Whether `t` names no `impl` type, reference or lifetime.
fn owned(t: &Type) -> bool {
    let (imp, borrowed) = mentions(t);
    !imp && !borrowed
}

/// Whether `t` names no `impl` type (a parameter's type the body can spell).
fn owned_or_ref(t: &Type) -> bool {
    !mentions(t).0
}

/// Whether `t` mentions an `impl` type, and whether a reference or a lifetime.
fn mentions(t: &Type) -> (bool, bool) {
    struct Walk(bool, bool);
    impl<'a> syn::visit::Visit<'a> for Walk {
        fn visit_type_impl_trait(&mut self, i: &'a syn::TypeImplTrait) {
            self.0 = true;
            syn::visit::visit_type_impl_trait(self, i);
        }
        fn visit_type_reference(&mut self, r: &'a syn::TypeReference) {
            self.1 = true;
            syn::visit::visit_type_reference(self, r);
        }
        fn visit_lifetime(&mut self, l: &'a syn::Lifetime) {
            self.1 = true;
            syn::visit::visit_lifetime(self, l);
        }
    }
    let mut w = Walk(false, false);
    syn::visit::Visit::visit_type(&mut w, t);
    (w.0, w.1)
}

/// Whether `t` is a number or a sequence of floats (`#[grad]`'s kinds of numbers).
fn numbers(t: &Type) -> bool {
    use crate::ir::Kind;
    crate::parse::type_kind(t)
        .is_ok_and(|k| matches!(k, Kind::Float(_) | Kind::Int | Kind::Bool | Kind::Seq(..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(src: TokenStream) -> Vec<bool> {
        wrapped_for(
            src,
            syn::parse_quote!(
                fn f(x: &Tensor) -> Tensor {
                    x.exp()
                }
            ),
        )
    }

    fn wrapped_for(src: TokenStream, user: syn::ItemFn) -> Vec<bool> {
        let out = pooled(src, &user);
        let file: syn::File = syn::parse2(out).expect("items");
        file.items
            .iter()
            .filter_map(|i| match i {
                Item::Fn(f) => Some(quote!(#f).to_string().contains("__FERRAX_SITE")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn generated_functions_of_tensors_are_wrapped_and_the_others_left_alone() {
        let got = wrapped(quote! {
            fn f(x: &Tensor) -> Tensor { x.exp() }
            fn f_grad(x: &Tensor) -> Tensor { x.exp() }
            fn f_vjp(x: &Tensor) -> (Tensor, impl FnOnce(Tensor) -> Tensor) { todo!() }
            fn g_grad(x: f64, v: &[f64], w: Vec<f32>) -> f64 { x }
            fn h_grad(p: &Params, x: f64) -> Params { p.clone() }
            fn k_grad<'a>(x: &'a Tensor) -> &'a Tensor { x }
            fn m_grad(x: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> Tensor { f(x) }
            fn n_grad(self: &Model, x: &Tensor) -> Tensor { x.exp() }
            fn o_grad(self: &Model, x: f64) -> f64 { x }
            // (a type whose name holds "impl" is not an `impl` type)
            fn s_grad(x: &Tensor, s: Simplex) -> Simplex { s }
        });
        assert_eq!(
            got,
            [
                false, true, false, false, true, false, false, true, true, true
            ]
        );
    }

    #[test]
    fn bodies_that_may_run_code_of_their_own_stay_on_the_callers_thread() {
        let generated = quote! {
            fn f(x: &Tensor) -> Tensor { todo!() }
            fn f_grad(x: &Tensor) -> Tensor { todo!() }
        };
        let pooled = |user: syn::ItemFn| wrapped_for(generated.clone(), user)[1];
        assert!(pooled(syn::parse_quote!(
            fn f(x: &Tensor) -> Tensor {
                let v = vec![x.exp(), x.sin()];
                Tensor::stack(&v, 0).sum()
            }
        )));
        assert!(!pooled(syn::parse_quote!(
            fn f(x: &Tensor) -> Tensor {
                assert!(x.numel() > 0);
                x.exp()
            }
        )));
        assert!(!pooled(syn::parse_quote!(
            fn f(x: &Tensor) -> Tensor {
                g(x).exp()
            }
        )));
        assert!(!pooled(syn::parse_quote!(
            fn f(x: &Tensor, c: &Config) -> Tensor {
                x.pad(&c.pads()).exp()
            }
        )));
        assert!(pooled(syn::parse_quote!(
            fn f(xs: &[Tensor]) -> Tensor {
                xs.iter()
                    .map(|x| x.tanh().sum())
                    .fold(xs[0].sum(), |a, b| a + b)
            }
        )));
        assert!(!pooled(syn::parse_quote!(
            fn f(x: &Tensor) -> Tensor {
                let y = x.exp();
                println!("{y:?}");
                y
            }
        )));
    }
}
