//! `#[jacobian]` and `#[hessian]`: the transforms composed.
//!
//! - `f_jacfwd` = vmap of jvp over the basis of the input (one batched forward pass);
//! - `f_jacrev` = vmap of vjp over the basis of the output (one forward sweep, one batched
//!   reverse sweep);
//! - `f_jacobian` picks the mode with fewer passes, weighing a reverse pass by its measured
//!   cost relative to a forward pass (`b::REVERSE_COST`);
//! - `f_hvp` = jvp of the gradient (forward over reverse), `f_hessian` = vmap of it over the
//!   basis of the input.
//!
//! Results are shaped `[outputs.., inputs..]` (a Hessian: `[inputs.., inputs..]`). Under
//! `#[vmap]` (`expand_per_example`), the same passes run once over every example's basis,
//! flattened into one batch: `f_jacfwd_vmap`, `f_jacrev_vmap`, `f_jacobian_vmap`,
//! `f_hessian_vmap`, shaped `[batch, ..]`.
//!
//! Scalar code over a slice returning a `Vec` has no batching: its Jacobian loops over
//! passes instead (`slice_jacobian`), one jvp per input element or one vjp per output
//! element, and returns the rows; under `#[vmap]` it runs once per example
//! (`slices_per_example`).

use crate::analyse::varied;
use crate::attr::GradAttr;
use crate::emit::Emitter;
use crate::ir::*;
use crate::transform::{jvp::jvp, vjp::vjp};
use crate::vmap::{BatchedFn, batched_fn};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use std::collections::HashSet;

/// Which attribute is expanded.
#[derive(Clone, Copy, PartialEq)]
pub enum Which {
    Jacobian,
    Hessian,
}

/// Expands `#[jacobian(attr)] item` or `#[hessian(attr)] item`.
pub fn expand(which: Which, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: syn::ItemFn = syn::parse2(item)?;
    // a method: expanded as a function taking its receiver first, then made methods again
    if let Some(f) = crate::method::as_function(&item)? {
        // (the method as written keeps the attributes under this one: `#[grad]` expands it next)
        let out = expand_function(which, crate::method::rename_self(attr), f, None)?;
        return crate::method::as_methods(out, &item);
    }
    expand_function(which, attr, item, None)
}

/// What `#[vmap]` over `#[jacobian(attr)]` / `#[hessian(attr)]` adds to `#[vmap]`'s expansion
/// of `item` (which carries the function), given the batch axes of `item`'s parameters
/// (`#[vmap]`'s `in_axes`) and of the result: everything the attribute emits alone,
/// and per-example Jacobians (`f_jacfwd_vmap`, `f_jacrev_vmap`, `f_jacobian_vmap`) or
/// Hessians (`f_hessian_vmap`): the examples and each one's basis flattened into one batch
/// of a single pass, as `#[vmap]` over `#[vmap]` flattens its two levels.
pub fn expand_per_example(
    which: Which,
    attr: TokenStream,
    item: syn::ItemFn,
    axes: Vec<Option<isize>>,
    out_axes: isize,
) -> syn::Result<TokenStream> {
    expand_function(which, attr, item, Some((axes, out_axes)))
}

fn expand_function(
    which: Which,
    attr: TokenStream,
    item: syn::ItemFn,
    per_example: Option<(Vec<Option<isize>>, isize)>,
) -> syn::Result<TokenStream> {
    let gattr: GradAttr = syn::parse2(attr.clone())?;
    let label = match which {
        Which::Jacobian => "#[jacobian]",
        Which::Hessian => "#[hessian]",
    };
    // (scalar code over slices: a `Vec` returned, or a slice differentiated)
    let scalar_code = |ty: &syn::Type| matches!(crate::parse::type_kind(ty), Ok(Kind::Seq(..)));
    let returns_seq = matches!(&item.sig.output, syn::ReturnType::Type(_, ret) if scalar_code(ret));
    // (a slice differentiated: the Hessian of scalar code)
    let slice_wrt = |func: &Func| {
        func.params
            .iter()
            .any(|p| p.active && matches!(func.info(p.var).kind, Kind::Seq(..)))
    };
    let scalar_error = || {
        syn::Error::new_spanned(
            &item.sig,
            format!(
                "#[vmap] over {label} takes tensor functions, or scalar code over slices that calls nothing of yours and has no effect (`println!`, `assert!`: run once per example there); this one is neither: loop over the examples for their Jacobians"
            ),
        )
    };
    if let Some((axes, out_axes)) = &per_example
        && returns_seq
    {
        return slices_per_example(which, attr, &item, axes, *out_axes).ok_or_else(scalar_error)?;
    }
    if which == Which::Jacobian
        && let syn::ReturnType::Type(_, ret) = &item.sig.output
        && matches!(crate::parse::type_kind(ret), Ok(Kind::Seq(Seq::Vec, _)))
    {
        return slice_jacobian(gattr, item);
    }
    let (func, sig, varied_set) = match crate::grad::lower_checked(&item, &gattr) {
        Ok(l) => l,
        Err(errors) => return Ok(errors),
    };
    if let Some((axes, out_axes)) = &per_example
        && slice_wrt(&func)
    {
        return slices_per_example(which, attr, &item, axes, *out_axes).ok_or_else(scalar_error)?;
    }
    let active: Vec<&Param> = func.params.iter().filter(|p| p.active).collect();
    if which == Which::Hessian
        && let [p] = active.as_slice()
        && let Kind::Seq(Seq::Slice, prec) = func.info(p.var).kind
        && matches!(func.kind(func.output), Kind::Float(_))
    {
        return slice_hessian(&item, &func, &varied_set, p, prec);
    }
    let x = match active.as_slice() {
        [p] if func.info(p.var).kind == Kind::Tensor => (*p).clone(),
        _ => {
            return Err(syn::Error::new_spanned(
                &item.sig.inputs,
                format!(
                    "{label} differentiates with respect to one `&Tensor` parameter, or one slice `&[f64]` (`&[f32]`) of a function returning {}; name it with `{}(wrt(x))` when there are several float or tensor parameters",
                    if which == Which::Jacobian {
                        "a `Vec`"
                    } else {
                        "a float"
                    },
                    &label[2..label.len() - 1]
                ),
            ));
        }
    };
    if func.kind(func.output) != Kind::Tensor {
        return Err(syn::Error::new_spanned(
            &sig.ret_ty,
            format!("{label} needs a function returning a `Tensor`"),
        ));
    }
    let Parts {
        name,
        vis,
        allow,
        args,
        params,
    } = Parts::of(&item, &func);
    let xi = &x.ident;
    let tensor: syn::Type = syn::parse_quote!(&::ferrax::Tensor);
    let per_example = match per_example {
        Some((axes, out_axes)) => Some(PerExample::new(axes, out_axes, &item, &func, &x)?),
        None => None,
    };
    // (under `#[vmap]`, whose expansion carries the function)
    let mut out = match per_example {
        Some(_) => quote!(),
        None => quote!(#item),
    };

    match which {
        Which::Jacobian => {
            // forward: the tangent of the output, batched over the tangents of x
            let j = crate::transform::jvp::jvp_splitting_calls(&func, &varied_set);
            let mut jf = j.pruned(&[j.tangent]);
            let d = j.tangent_params[0].1;
            jf.params.push(Param {
                var: d,
                ident: format_ident!("__ferrax_dx"),
                ty: tensor.clone(),
                active: false,
            });
            let fwd_name = format_ident!("__ferrax_{}_jacfwd_batched", name);
            out.extend(batched_fn(
                &BatchedFn {
                    name: fwd_name.clone(),
                    doc: String::new(),
                    item: &item,
                    axes: &axes_last(jf.params.len()),
                    outputs: vec![(j.tangent, tensor.clone())],
                    out_axes: 0,
                },
                &jf,
            )?);
            // reverse: the gradient of x, batched over cotangents of the output
            let v = crate::transform::vjp::vjp_recomputing_calls(&func, &varied_set);
            let rf = crate::grad::cotangent_ir(&v, tensor.clone());
            let rev_name = format_ident!("__ferrax_{}_jacrev_batched", name);
            out.extend(batched_fn(
                &BatchedFn {
                    name: rev_name.clone(),
                    doc: String::new(),
                    item: &item,
                    axes: &axes_last(rf.params.len()),
                    outputs: vec![(v.grads[0], tensor.clone())],
                    out_axes: 0,
                },
                &rf,
            )?);
            let [(jf_name, jf_doc), (jr_name, jr_doc), (j_name, j_doc)] = jacobian_items(
                name,
                &xi.to_string(),
                &format!("one forward pass batched over the basis of `{xi}`"),
                "one forward sweep and one reverse sweep batched over the basis of the output",
                &format!("Shaped `[output axes.., {xi} axes..]`."),
            );
            // Where every argument is a tensor, the output size for the last argument shapes
            // is remembered, so that choosing forward mode costs no extra call of `f`.
            let all_tensors = func
                .params
                .iter()
                .all(|p| func.info(p.var).kind == Kind::Tensor);
            let shapes = quote!(&[#(#args.shape()),*]);
            let (memo, remember) = if all_tensors {
                (
                    quote! {
                        ::std::thread_local! {
                            static __FERRAX_OUT: ::ferrax::__private::b::OutSizes =
                                const { ::ferrax::__private::b::OutSizes::new() };
                        }
                        if let Some(__ferrax_n) = __FERRAX_OUT.with(|m| m.get(#shapes))
                            && ::ferrax::__private::b::prefer_forward(#xi.numel(), __ferrax_n)
                        {
                            let __ferrax_basis = ::ferrax::__private::b::basis(#xi);
                            let __ferrax_t = #fwd_name(#(#args,)* &__ferrax_basis);
                            return ::ferrax::__private::b::jacobian_from_front(&__ferrax_t, #xi.shape());
                        }
                    },
                    quote!(__FERRAX_OUT.with(|m| m.set(#shapes, __ferrax_y.numel()));),
                )
            } else {
                (quote!(), quote!())
            };
            out.extend(quote! {
                #[doc = #jf_doc]
                #allow
                #vis fn #jf_name(#(#params),*) -> ::ferrax::Tensor {
                    let __ferrax_basis = ::ferrax::__private::b::basis(#xi);
                    let __ferrax_t = #fwd_name(#(#args,)* &__ferrax_basis);
                    ::ferrax::__private::b::jacobian_from_front(&__ferrax_t, #xi.shape())
                }

                #[doc = #jr_doc]
                #allow
                #vis fn #jr_name(#(#params),*) -> ::ferrax::Tensor {
                    let __ferrax_y = #name(#(#args),*);
                    let __ferrax_basis = ::ferrax::__private::b::basis(&__ferrax_y);
                    let __ferrax_g = #rev_name(#(#args,)* &__ferrax_basis);
                    ::ferrax::__private::b::jacobian_from_rows(&__ferrax_g, __ferrax_y.shape())
                }

                #[doc = #j_doc]
                #allow
                #vis fn #j_name(#(#params),*) -> ::ferrax::Tensor {
                    #memo
                    let __ferrax_y = #name(#(#args),*);
                    #remember
                    if ::ferrax::__private::b::prefer_forward(#xi.numel(), __ferrax_y.numel()) {
                        let __ferrax_basis = ::ferrax::__private::b::basis(#xi);
                        let __ferrax_t = #fwd_name(#(#args,)* &__ferrax_basis);
                        ::ferrax::__private::b::jacobian_from_front(&__ferrax_t, #xi.shape())
                    } else {
                        let __ferrax_basis = ::ferrax::__private::b::basis(&__ferrax_y);
                        let __ferrax_g = #rev_name(#(#args,)* &__ferrax_basis);
                        ::ferrax::__private::b::jacobian_from_rows(&__ferrax_g, __ferrax_y.shape())
                    }
                }
            });
            if let Some(pe) = &per_example {
                out.extend(pe.jacobians(&jf, j.tangent, &rf, v.grads[0])?);
            }
        }
        Which::Hessian => {
            let Hvp {
                func: hf,
                tangent,
                v: d,
            } = hvp_ir(&func, &varied_set, &x, tensor.clone(), true)?;
            let hvp_name = format_ident!("{}_hvp", name);
            let em = Emitter::new(&hf, false);
            let hparams = crate::grad::param_list(&em, &hf);
            let body = em.block(&hf.body);
            let t = em.value(tangent);
            let dv = em.var(d);
            let hvp_doc = format!(
                "Hessian-vector product of [`{name}`] with respect to `{xi}`: the directional derivative of the gradient along `v` (shaped like `{xi}`), by forward mode over reverse mode in one pass."
            );
            let msg =
                format!("{hvp_name}: the direction has shape {{:?}} but `{xi}` has shape {{:?}}");
            let xid = em.var(x.var);
            out.extend(quote! {
                #[doc = #hvp_doc]
                #allow
                #vis fn #hvp_name(#(#hparams),*) -> ::ferrax::Tensor {
                    ::core::assert!(#dv.shape() == #xid.shape(), #msg, #dv.shape(), #xid.shape());
                    #body
                    #t
                }
            });
            let batched_name = format_ident!("__ferrax_{}_hessian_batched", name);
            out.extend(batched_fn(
                &BatchedFn {
                    name: batched_name.clone(),
                    doc: String::new(),
                    item: &item,
                    axes: &axes_last(hf.params.len()),
                    outputs: vec![(tangent, tensor.clone())],
                    out_axes: 0,
                },
                &hf,
            )?);
            let h_name = format_ident!("{}_hessian", name);
            let h_doc = format!(
                "Hessian of [`{name}`] with respect to `{xi}`, shaped `[{xi} axes.., {xi} axes..]`: forward mode over reverse mode, batched over the basis of `{xi}` (one batched pass)."
            );
            out.extend(quote! {
                #[doc = #h_doc]
                #allow
                #vis fn #h_name(#(#params),*) -> ::ferrax::Tensor {
                    let __ferrax_basis = ::ferrax::__private::b::basis(#xi);
                    let __ferrax_t = #batched_name(#(#args,)* &__ferrax_basis);
                    ::ferrax::__private::b::jacobian_from_front(&__ferrax_t, #xi.shape())
                }
            });
            if let Some(pe) = &per_example {
                out.extend(pe.hessians(&hf, tangent)?);
            }
        }
    }
    Ok(out)
}

/// Per-example Jacobians and Hessians (`#[vmap]` over `#[jacobian]` / `#[hessian]`): a pass
/// batched over a basis (the function's parameters, then the basis) run once over a flat
/// batch of every example times every element of its basis, the examples' arguments
/// repeated along it (`b::nested_in`, as `#[vmap]` over `#[vmap]` flattens).
struct PerExample<'a> {
    item: &'a syn::ItemFn,
    func: &'a Func,
    /// The parameter differentiated with respect to.
    x: &'a Param,
    /// Per parameter of `func`: its batch axis, or `None`.
    axes: Vec<Option<isize>>,
    out_axes: isize,
}

impl<'a> PerExample<'a> {
    fn new(
        axes: Vec<Option<isize>>,
        out_axes: isize,
        item: &'a syn::ItemFn,
        func: &'a Func,
        x: &'a Param,
    ) -> syn::Result<Self> {
        for (p, a) in func.params.iter().zip(&axes) {
            if a.is_some() && crate::vmap::seq_form(&p.ty).is_some() {
                return Err(syn::Error::new_spanned(
                    &p.ty,
                    "#[vmap] over #[jacobian] or #[hessian] batches tensor and float parameters; give this list `None` in `in_axes`",
                ));
            }
        }
        Ok(PerExample {
            item,
            func,
            x,
            axes,
            out_axes,
        })
    }

    /// `g` (the function's parameters, then a basis) batched over every example's basis:
    /// with two levels where it can be (the parameters with an in-axis over the examples,
    /// the basis over examples times basis elements: `crate::nested`, the second value
    /// `true`), else over the flat batch alone (every parameter with an in-axis and the
    /// basis along axis 0 of it).
    fn flat_pass(
        &self,
        name: &syn::Ident,
        g: &Func,
        output: Atom,
    ) -> syn::Result<(TokenStream, bool)> {
        let mut axes: Vec<Option<isize>> = self.axes.iter().map(|a| a.map(|_| 0)).collect();
        axes.push(Some(0));
        assert_eq!(
            axes.len(),
            g.params.len(),
            "a pass takes the parameters and a basis"
        );
        let b = BatchedFn {
            name: name.clone(),
            doc: String::new(),
            item: self.item,
            axes: &axes,
            outputs: vec![(output, syn::parse_quote!(&::ferrax::Tensor))],
            out_axes: 0,
        };
        if let Some(pass) = crate::nested::per_example_pass(&b, g)? {
            return Ok((pass, true));
        }
        Ok((batched_fn(&b, g)?, false))
    }

    /// Whether parameter `p` is a tensor taken by value.
    fn by_value_tensor(&self, p: &Param) -> bool {
        self.func.info(p.var).kind == Kind::Tensor && !matches!(p.ty, syn::Type::Reference(_))
    }

    /// The per-example functions' parameters, as `f_vmap` takes them (a batched float as a
    /// tensor), and their names as arguments.
    fn params(&self) -> (Vec<TokenStream>, Vec<TokenStream>) {
        self.func
            .params
            .iter()
            .zip(&self.axes)
            .map(|(p, a)| {
                let (id, ty) = (&p.ident, &p.ty);
                let ty = match (a, &self.func.info(p.var).kind) {
                    (Some(_), Kind::Float(_)) => quote!(&::ferrax::Tensor),
                    _ => quote!(#ty),
                };
                (quote!(#id: #ty), quote!(#id))
            })
            .unzip()
    }

    /// A block running the flat pass `pass` along `__ferrax_basis` (the basis of one
    /// example, bound before it): the batched arguments and the basis flattened into one
    /// batch (with `two_levels`, the examples' arguments unrepeated and the basis as it
    /// is), the pass's result bound to `__ferrax_r` and the outer batch size to
    /// `__ferrax_b1`; `tail` then shapes the result.
    fn run(&self, pass: &syn::Ident, two_levels: bool, tail: TokenStream) -> TokenStream {
        let mut nested = Vec::new();
        let mut flatten = Vec::new();
        let mut call = Vec::new();
        for (p, a) in self.func.params.iter().zip(&self.axes) {
            let id = &p.ident;
            let Some(axis) = a else {
                call.push(quote!(#id));
                continue;
            };
            let arg = if self.by_value_tensor(p) {
                quote!(&#id)
            } else {
                quote!(#id)
            };
            let label = id.to_string();
            let k = nested.len();
            nested.push(quote!(::ferrax::__private::b::Nested {
                name: #label,
                x: ::ferrax::__private::b::BArg::from(#arg),
                outer: ::core::option::Option::Some(#axis),
                inner: ::core::option::Option::None,
            }));
            let flat = format_ident!("__ferrax_flat_{}", id);
            flatten.push(if two_levels {
                quote!(let #flat = ::ferrax::__private::b::nested_outer(&__ferrax_args[#k]);)
            } else {
                quote!(let #flat = ::ferrax::__private::b::nested_in(&__ferrax_args[#k], __ferrax_b1, __ferrax_b2);)
            });
            call.push(if self.by_value_tensor(p) {
                quote!(#flat)
            } else {
                quote!(&#flat)
            });
        }
        let k = nested.len();
        let name = pass.to_string();
        // (two levels: one example's basis, shared by every example)
        let flat_basis = if two_levels {
            call.push(quote!(&__ferrax_basis));
            quote!()
        } else {
            call.push(quote!(&__ferrax_flat_basis));
            quote!(let __ferrax_flat_basis = ::ferrax::__private::b::nested_in(&__ferrax_args[#k], __ferrax_b1, __ferrax_b2);)
        };
        quote! {{
            let __ferrax_args = [
                #(#nested,)*
                ::ferrax::__private::b::Nested {
                    name: "basis",
                    x: ::ferrax::__private::b::BArg::from(&__ferrax_basis),
                    outer: ::core::option::Option::None,
                    inner: ::core::option::Option::Some(0),
                },
            ];
            let (__ferrax_b1, __ferrax_b2) = ::ferrax::__private::b::nested_sizes(#name, &__ferrax_args);
            #(#flatten)*
            #flat_basis
            let __ferrax_r = #pass(#(#call),*);
            #tail
        }}
    }

    /// One example of `x` (its shape: what its basis is built like).
    fn x_example(&self) -> TokenStream {
        let xi = &self.x.ident;
        let x = if self.by_value_tensor(self.x) {
            quote!(&#xi)
        } else {
            quote!(#xi)
        };
        let k = self
            .func
            .params
            .iter()
            .position(|p| p.var == self.x.var)
            .expect("x is a parameter");
        let axis = crate::vmap::opt_axis(self.axes[k]);
        quote!(let __ferrax_xe = ::ferrax::__private::b::example_of(#x, #axis);)
    }

    /// `f_jacfwd_vmap`, `f_jacrev_vmap` and `f_jacobian_vmap`, from forward mode `jf`
    /// (tangent output `t`) and reverse mode `rf` (gradient output `g`).
    fn jacobians(&self, jf: &Func, t: Atom, rf: &Func, g: Atom) -> syn::Result<TokenStream> {
        let name = &self.item.sig.ident;
        let (fwd, rev) = (
            format_ident!("__ferrax_{}_jacfwd_per_example", name),
            format_ident!("__ferrax_{}_jacrev_per_example", name),
        );
        let (mut out, fwd_levels) = self.flat_pass(&fwd, jf, t)?;
        let (rev_pass, rev_levels) = self.flat_pass(&rev, rf, g)?;
        out.extend(rev_pass);
        let oa = self.out_axes;
        let x_example = self.x_example();
        let fwd_body = self.run(
            &fwd,
            fwd_levels,
            quote!(::ferrax::__private::b::per_example_from_front(&__ferrax_r, __ferrax_b1, __ferrax_xe.shape(), #oa)),
        );
        // (the output's basis: one example of the batched value)
        let rev_body = self.run(
            &rev,
            rev_levels,
            quote!(::ferrax::__private::b::per_example_from_rows(&__ferrax_r, __ferrax_b1, __ferrax_ye.shape(), #oa)),
        );
        let vmapped = format_ident!("{}_vmap", name);
        let (params, args) = self.params();
        let value = quote! {
            let __ferrax_y = ::ferrax::__private::b::move_to_front(&#vmapped(#(#args),*), #oa);
            let __ferrax_ye = ::ferrax::__private::b::example_of(&__ferrax_y, ::core::option::Option::Some(0));
        };
        let xi = &self.x.ident;
        let [(jf_name, jf_doc), (jr_name, jr_doc), (j_name, j_doc)] = jacobian_items(
            name,
            &xi.to_string(),
            &format!("one forward pass batched over every example's basis of `{xi}`"),
            "one forward sweep over the examples and one reverse sweep batched over every example's basis of the output",
            &format!(
                "Per example (the arguments with an in-axis carry one example per index of that axis): shaped `[batch, output axes.., {xi} axes..]`, the batch axis at {oa}."
            ),
        );
        let suffixed = |id: &syn::Ident| format_ident!("{}_vmap", id);
        let (jf_name, jr_name, j_name) =
            (suffixed(&jf_name), suffixed(&jr_name), suffixed(&j_name));
        let (vis, allow) = (&self.item.vis, crate::emit::allow_generated());
        out.extend(quote! {
            #[doc = #jf_doc]
            #allow
            #vis fn #jf_name(#(#params),*) -> ::ferrax::Tensor {
                #x_example
                let __ferrax_basis = ::ferrax::__private::b::basis(&__ferrax_xe);
                #fwd_body
            }

            #[doc = #jr_doc]
            #allow
            #vis fn #jr_name(#(#params),*) -> ::ferrax::Tensor {
                #value
                let __ferrax_basis = ::ferrax::__private::b::basis(&__ferrax_ye);
                #rev_body
            }

            #[doc = #j_doc]
            #allow
            #vis fn #j_name(#(#params),*) -> ::ferrax::Tensor {
                #value
                #x_example
                if ::ferrax::__private::b::prefer_forward(__ferrax_xe.numel(), __ferrax_ye.numel()) {
                    let __ferrax_basis = ::ferrax::__private::b::basis(&__ferrax_xe);
                    #fwd_body
                } else {
                    let __ferrax_basis = ::ferrax::__private::b::basis(&__ferrax_ye);
                    #rev_body
                }
            }
        });
        Ok(out)
    }

    /// `f_hessian_vmap`, from forward over reverse `hf` (output `t`: the gradient's tangent).
    fn hessians(&self, hf: &Func, t: Atom) -> syn::Result<TokenStream> {
        let name = &self.item.sig.ident;
        let pass = format_ident!("__ferrax_{}_hessian_per_example", name);
        let (mut out, levels) = self.flat_pass(&pass, hf, t)?;
        let oa = self.out_axes;
        let x_example = self.x_example();
        let body = self.run(
            &pass,
            levels,
            quote!(::ferrax::__private::b::per_example_from_front(&__ferrax_r, __ferrax_b1, __ferrax_xe.shape(), #oa)),
        );
        let xi = &self.x.ident;
        let h_name = format_ident!("{}_hessian_vmap", name);
        let doc = format!(
            "Per-example Hessians of [`{name}`] with respect to `{xi}` (the arguments with an in-axis carry one example per index of that axis), shaped `[batch, {xi} axes.., {xi} axes..]` with the batch axis at {oa}: forward mode over reverse mode, one pass batched over every example's basis of `{xi}`."
        );
        let (params, _) = self.params();
        let (vis, allow) = (&self.item.vis, crate::emit::allow_generated());
        out.extend(quote! {
            #[doc = #doc]
            #allow
            #vis fn #h_name(#(#params),*) -> ::ferrax::Tensor {
                #x_example
                let __ferrax_basis = ::ferrax::__private::b::basis(&__ferrax_xe);
                #body
            }
        });
        Ok(out)
    }
}

/// The Jacobians and Hessians of scalar code call the function once per pass with the same
/// arguments: references or copies only.
fn passed_to_every_pass(func: &Func, label: &str) -> syn::Result<()> {
    for p in &func.params {
        if !matches!(&p.ty, syn::Type::Reference(r) if r.mutability.is_none())
            && !matches!(
                func.info(p.var).kind,
                Kind::Float(_) | Kind::Int | Kind::Bool
            )
        {
            return Err(syn::Error::new_spanned(
                &p.ty,
                format!(
                    "{label} calls the function once per pass: take this argument by shared reference (`&T`), or make it a number or a bool"
                ),
            ));
        }
    }
    Ok(())
}

/// The IR of a Hessian-vector product: forward mode over the gradient with respect to `x`.
struct Hvp {
    /// Its parameters: the function's, then the direction `__ferrax_v`.
    func: Func,
    /// The tangent of the gradient along the direction: the product.
    tangent: Atom,
    /// The direction's variable.
    v: Var,
}

/// Forward mode over reverse mode of `func` with respect to `x`, along a direction
/// `__ferrax_v: v_ty`. The gradient recomputes calls (forward mode then goes through their
/// `_ctjvp` counterparts); `batched`: calls' tangents are split from their values, as a
/// Hessian batched over the basis needs (`__ferrax_vmap0_jvpt_`). A call forward mode cannot
/// see into would leave its second-order terms out: a compile error at the call instead.
fn hvp_ir(
    func: &Func,
    varied_set: &HashSet<Var>,
    x: &Param,
    v_ty: syn::Type,
    batched: bool,
) -> syn::Result<Hvp> {
    let v = crate::transform::vjp::vjp_recomputing_calls(func, varied_set);
    let mut g = crate::grad::gradient_ir(func, &v, false);
    g.output = v.grads[0];
    let gv = varied(&g);
    let j = if batched {
        crate::transform::jvp::jvp_splitting_calls(&g, &gv)
    } else {
        jvp(&g, &gv)
    };
    if let Some(span) = j.unsupported_call {
        return Err(syn::Error::new(
            span,
            "#[hessian] cannot take forward mode through this call (a derivative of another function with no forward-over-reverse counterpart); mark the callee `#[grad]`, or write its body inline",
        ));
    }
    let Some(&(_, d)) = j.tangent_params.iter().find(|(p, _)| *p == x.var) else {
        return Err(syn::Error::new_spanned(
            &x.ty,
            "no tangent for this parameter",
        ));
    };
    let mut hf = j.pruned(&[j.tangent]);
    hf.params.push(Param {
        var: d,
        ident: format_ident!("__ferrax_v"),
        ty: v_ty,
        active: false,
    });
    Ok(Hvp {
        func: hf,
        tangent: j.tangent,
        v: d,
    })
}

/// The names and rustdoc of `f_jacfwd`, `f_jacrev` and `f_jacobian`: `fwd` and `rev` say
/// how each mode runs, `shape` what the result is.
fn jacobian_items(
    name: &syn::Ident,
    xi: &str,
    fwd: &str,
    rev: &str,
    shape: &str,
) -> [(syn::Ident, String); 3] {
    [
        (
            format_ident!("{}_jacfwd", name),
            format!(
                "Jacobian of [`{name}`] with respect to `{xi}` in forward mode: {fwd}. {shape}"
            ),
        ),
        (
            format_ident!("{}_jacrev", name),
            format!(
                "Jacobian of [`{name}`] with respect to `{xi}` in reverse mode: {rev}. {shape}"
            ),
        ),
        (
            format_ident!("{}_jacobian", name),
            format!(
                "Jacobian of [`{name}`] with respect to `{xi}`, in forward mode when `{xi}` has fewer elements than the output (weighed by the cost of a reverse pass), else in reverse mode. {shape}"
            ),
        ),
    ]
}

/// What the emitted functions share with the user's: name, visibility, parameters (as
/// declared, and as arguments passed on), and the lints generated code allows.
struct Parts<'a> {
    name: &'a syn::Ident,
    vis: &'a syn::Visibility,
    allow: TokenStream,
    args: Vec<syn::Ident>,
    params: Vec<TokenStream>,
}

impl<'a> Parts<'a> {
    fn of(item: &'a syn::ItemFn, func: &Func) -> Self {
        Parts {
            name: &item.sig.ident,
            vis: &item.vis,
            allow: crate::emit::allow_generated(),
            args: func.params.iter().map(|p| p.ident.clone()).collect(),
            params: func
                .params
                .iter()
                .map(|p| {
                    let (id, ty) = (&p.ident, &p.ty);
                    quote!(#id: #ty)
                })
                .collect(),
        }
    }
}

/// Only the last parameter batched (along axis 0).
fn axes_last(n: usize) -> Vec<Option<isize>> {
    let mut a = vec![None; n];
    if let Some(l) = a.last_mut() {
        *l = Some(0);
    }
    a
}

/// `#[vmap]` over `#[jacobian]` / `#[hessian]` of scalar code over slices: what the
/// attribute emits alone (less the function, which `#[vmap]`'s expansion carries), and
/// `f_jacfwd_vmap`, `f_jacrev_vmap`, `f_jacobian_vmap` or `f_hessian_vmap`, each running
/// the unbatched one once per example (`ferrax::per_example`), shaped `[batch, rows,
/// columns]`. `None` where the function is not such code (see `vmap::per_example_code`).
fn slices_per_example(
    which: Which,
    attr: TokenStream,
    item: &syn::ItemFn,
    axes: &[Option<isize>],
    out_axes: isize,
) -> Option<syn::Result<TokenStream>> {
    let lowering = GradAttr {
        seq_output: true,
        ..GradAttr::default()
    };
    let (func, _, _) = crate::grad::lower_checked(item, &lowering).ok()?;
    if !crate::vmap::per_example_code(&func, item) {
        return None;
    }
    let alone = match expand_function(which, attr.clone(), item.clone(), None) {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    let file: syn::File = match syn::parse2(alone) {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    let items = file
        .items
        .into_iter()
        .filter(|i| !matches!(i, syn::Item::Fn(f) if f.sig.ident == item.sig.ident));
    let mut out = quote!(#(#items)*);
    let name = &item.sig.ident;
    let callees: Vec<syn::Ident> = match which {
        Which::Jacobian => ["jacfwd", "jacrev", "jacobian"]
            .iter()
            .map(|s| format_ident!("{}_{}", name, s))
            .collect(),
        Which::Hessian => vec![format_ident!("{}_hessian", name)],
    };
    let mut lanes = slice_lanes(which, attr, item).map(Vec::into_iter);
    for callee in &callees {
        let b = BatchedFn {
            name: format_ident!("{}_vmap", callee),
            doc: format!(
                "[`{callee}`] of every example (the arguments with an in-axis carry one example per index of that axis): shaped `[batch, rows, columns]`, the batch axis at {out_axes}."
            ),
            item,
            axes,
            outputs: Vec::new(),
            out_axes,
        };
        out.extend(crate::vmap::per_example_fn(
            &b,
            &func,
            callee,
            &[(quote!(), None)],
            lanes.as_mut().and_then(Iterator::next),
        ));
    }
    Some(Ok(out))
}

/// `#[jacobian]` of scalar code over a slice returning a `Vec` (`fn f(x: &[f64], ..) ->
/// Vec<f64>`): `f_jacfwd` runs one forward pass per element of `x` (jvp along each unit
/// vector), `f_jacrev` one reverse pass per element of the output (the value and gradient
/// of the output's dot product with each unit vector), `f_jacobian` the cheaper of the two.
/// The result is the rows of the Jacobian: one `Vec` per output element, as long as `x`.
fn slice_jacobian(mut gattr: GradAttr, item: syn::ItemFn) -> syn::Result<TokenStream> {
    if let syn::ReturnType::Type(_, ret) = &item.sig.output
        && matches!(**ret, syn::Type::Array(_))
    {
        return Err(syn::Error::new_spanned(
            ret,
            "#[jacobian] of scalar code returns a `Vec` of floats, not an array: return `Vec<f64>`",
        ));
    }
    gattr.seq_output = true;
    let (func, _sig, varied_set) = match crate::grad::lower_checked(&item, &gattr) {
        Ok(l) => l,
        Err(errors) => return Ok(errors),
    };
    let active: Vec<&Param> = func.params.iter().filter(|p| p.active).collect();
    let slice = match active.as_slice() {
        [p] => match (&p.ty, &func.info(p.var).kind) {
            (syn::Type::Reference(r), Kind::Seq(Seq::Slice, prec)) if r.mutability.is_none() => {
                Some(((*p).clone(), *prec))
            }
            _ => None,
        },
        _ => None,
    };
    let Some((x, prec)) = slice else {
        return Err(syn::Error::new_spanned(
            &item.sig.inputs,
            "#[jacobian] of a function returning a `Vec` differentiates with respect to one slice parameter `&[f64]` or `&[f32]`; name it with `jacobian(wrt(x))` when there are several float parameters",
        ));
    };
    passed_to_every_pass(&func, "#[jacobian]")?;
    let real = crate::emit::prec_ty(prec);
    let Parts {
        name,
        vis,
        allow,
        args,
        params,
    } = Parts::of(&item, &func);
    let hidden = quote!(#[doc(hidden)] #allow);
    let xi = &x.ident;
    let mut out = quote!(#item);

    let passes = SlicePasses::of(&func, &varied_set, &real);
    // forward: value and tangent along `dx`
    let em = Emitter::new(&passes.fwd, false);
    let fparams = crate::grad::param_list(&em, &passes.fwd);
    let body = em.block(&passes.fwd.body);
    let value_and_tangent = passes.fwd_out(&em);
    let fwd_name = format_ident!("__ferrax_{}_jvp_seq", name);
    out.extend(quote! {
        #hidden
        fn #fwd_name(#(#fparams),*) -> (::std::vec::Vec<#real>, ::std::vec::Vec<#real>) {
            #body
            #value_and_tangent
        }
    });

    // reverse: the gradient of `ct . f(x)`
    let em = Emitter::new(&passes.rev, false);
    let rparams = crate::grad::param_list(&em, &passes.rev);
    let body = em.block(&passes.rev.body);
    let grad = em.atom(passes.grad);
    let rev_name = format_ident!("__ferrax_{}_vjp_seq", name);
    out.extend(quote! {
        #hidden
        fn #rev_name(#(#rparams),*) -> ::std::vec::Vec<#real> {
            #body
            #grad
        }
    });

    let [(jf_name, jf_doc), (jr_name, jr_doc), (j_name, j_doc)] = jacobian_items(
        name,
        &xi.to_string(),
        &format!("one forward pass per element of `{xi}`"),
        "one forward and one reverse sweep per element of the output",
        &format!(
            "The rows of the Jacobian: one `Vec` per element of the output, each as long as `{xi}`."
        ),
    );
    out.extend(quote! {
        #[doc = #jf_doc]
        #allow
        #vis fn #jf_name(#(#params),*) -> ::std::vec::Vec<::std::vec::Vec<#real>> {
            let __ferrax_cols = ::ferrax::__private::unit_passes(#xi.len(), |__ferrax_e: &[#real]| {
                #fwd_name(#(#args,)* __ferrax_e).1
            });
            let __ferrax_m = match __ferrax_cols.first() {
                Some(c) => c.len(),
                None => #name(#(#args),*).len(),
            };
            ::ferrax::__private::rows_of_columns(&__ferrax_cols, __ferrax_m)
        }

        #[doc = #jr_doc]
        #allow
        #vis fn #jr_name(#(#params),*) -> ::std::vec::Vec<::std::vec::Vec<#real>> {
            let __ferrax_m = #name(#(#args),*).len();
            ::ferrax::__private::unit_passes(__ferrax_m, |__ferrax_e: &[#real]| {
                #rev_name(#(#args,)* __ferrax_e)
            })
        }

        #[doc = #j_doc]
        #allow
        #vis fn #j_name(#(#params),*) -> ::std::vec::Vec<::std::vec::Vec<#real>> {
            let __ferrax_m = #name(#(#args),*).len();
            if ::ferrax::__private::b::prefer_forward(#xi.len(), __ferrax_m) {
                #jf_name(#(#args),*)
            } else {
                #jr_name(#(#args),*)
            }
        }
    });
    Ok(out)
}

/// The passes a Jacobian of scalar code over a slice runs, as IR.
struct SlicePasses {
    /// Forward: the value and its tangent along the slice's (the last parameter).
    fwd: Func,
    value: Atom,
    tangent: Atom,
    /// Reverse: the gradient of `ct . f(..)` (`ct: &[real]` the last parameter).
    rev: Func,
    grad: Atom,
}

impl SlicePasses {
    /// The passes of `func`, differentiated with respect to its one active slice.
    fn of(func: &Func, varied_set: &HashSet<Var>, real: &TokenStream) -> Self {
        let j = jvp(func, varied_set);
        let mut fwd = j.pruned(&[func.output, j.tangent]);
        // x's tangent, the only one (x is the one active parameter)
        j.push_tangent_params(&mut fwd, func);
        let v = vjp(func, varied_set);
        let mut rev = crate::grad::cotangent_ir(&v, syn::parse_quote!(&[#real]));
        crate::transform::simplify::fill_gathered_fn(&mut rev);
        SlicePasses {
            fwd,
            value: func.output,
            tangent: j.tangent,
            rev,
            grad: v.grads[0],
        }
    }

    /// What the forward pass returns, as `em` (of `fwd`) writes it: `(value, tangent)`.
    fn fwd_out(&self, em: &Emitter) -> TokenStream {
        let value = em.atom(self.value);
        let tangent = seq_or_zeros(em, self.tangent, quote!(#value.len()));
        quote!((#value, #tangent))
    }
}

/// The sequence `a`, or where it is a constant (a derivative of something that does not
/// depend on the input) `len` zeros, as `em` writes them.
fn seq_or_zeros(em: &Emitter, a: Atom, len: TokenStream) -> TokenStream {
    match a {
        Atom::Var(_) => em.value(a),
        _ => {
            let zero = em.atom(Atom::Float(0.0));
            quote!(::std::vec![#zero; #len])
        }
    }
}

/// The per-example Jacobians (`[jacfwd, jacrev, jacobian]`) or Hessian (`[hessian]`) of
/// scalar code over a slice as closures over lanes (see `ferrax::__private::lanes`), each
/// taking the function's parameters over lanes; `None` where a pass is not code lanes can
/// run.
fn slice_lanes(which: Which, attr: TokenStream, item: &syn::ItemFn) -> Option<Vec<TokenStream>> {
    let mut gattr: GradAttr = syn::parse2(attr).ok()?;
    gattr.seq_output = true;
    let (func, _, varied_set) = crate::grad::lower_checked(item, &gattr).ok()?;
    let x = match func.params.iter().filter(|p| p.active).collect::<Vec<_>>()[..] {
        [p] => p.clone(),
        _ => return None,
    };
    let Kind::Seq(_, prec) = func.info(x.var).kind else {
        return None;
    };
    let real = crate::emit::prec_ty(prec);
    use crate::vmap::lanes_closure as lanes;
    let args: Vec<&syn::Ident> = func.params.iter().map(|p| &p.ident).collect();
    let params = crate::vmap::lanes_params(&func);
    let (xi, l) = (&x.ident, quote!(::ferrax::__private::lanes::L<#real>));
    let unit = quote!(::ferrax::__private::unit_passes);
    if which == Which::Hessian {
        let Hvp {
            func: mut hf,
            tangent,
            ..
        } = hvp_ir(&func, &varied_set, &x, x.ty.clone(), false).ok()?;
        crate::transform::simplify::fill_gathered_fn(&mut hf);
        let hvp = lanes(&hf, |em| seq_or_zeros(em, tangent, quote!(#xi.len())))?;
        return Some(vec![quote! {
            |#(#params),*| {
                let __ferrax_hvp = #hvp;
                #unit(#xi.len(), |__ferrax_e: &[#l]| __ferrax_hvp(#(#args,)* __ferrax_e))
            }
        }]);
    }
    let passes = SlicePasses::of(&func, &varied_set, &real);
    let fwd = lanes(&passes.fwd, |em| passes.fwd_out(em))?;
    let rev = lanes(&passes.rev, |em| em.atom(passes.grad))?;
    let primal = lanes(&func, |em| em.atom(func.output))?;
    let jacfwd = quote! {
        |#(#params),*| {
            let (__ferrax_fwd, __ferrax_primal) = (#fwd, #primal);
            let __ferrax_cols = #unit(#xi.len(), |__ferrax_e: &[#l]| {
                __ferrax_fwd(#(#args,)* __ferrax_e).1
            });
            let __ferrax_m = match __ferrax_cols.first() {
                Some(c) => c.len(),
                None => __ferrax_primal(#(#args),*).len(),
            };
            ::ferrax::__private::rows_of_columns(&__ferrax_cols, __ferrax_m)
        }
    };
    let jacrev = quote! {
        |#(#params),*| {
            let (__ferrax_rev, __ferrax_primal) = (#rev, #primal);
            let __ferrax_m = __ferrax_primal(#(#args),*).len();
            #unit(__ferrax_m, |__ferrax_e: &[#l]| __ferrax_rev(#(#args,)* __ferrax_e))
        }
    };
    let jacobian = quote! {
        |#(#params),*| {
            let (__ferrax_jacfwd, __ferrax_jacrev) = (#jacfwd, #jacrev);
            let __ferrax_m = (#primal)(#(#args),*).len();
            if ::ferrax::__private::b::prefer_forward(#xi.len(), __ferrax_m) {
                __ferrax_jacfwd(#(#args),*)
            } else {
                __ferrax_jacrev(#(#args),*)
            }
        }
    };
    Some(vec![jacfwd, jacrev, jacobian])
}

/// `#[hessian]` of scalar code over a slice (`fn f(x: &[f64], ..) -> f64`): `f_hvp(args.., v)`
/// is forward mode over the gradient's reverse sweep in one pass; `f_hessian` runs it along
/// each unit vector and returns the rows (one `Vec` per element of `x`; the Hessian is
/// symmetric, so they are its columns too).
fn slice_hessian(
    item: &syn::ItemFn,
    func: &Func,
    varied_set: &HashSet<Var>,
    x: &Param,
    prec: Prec,
) -> syn::Result<TokenStream> {
    passed_to_every_pass(func, "#[hessian]")?;
    let real = crate::emit::prec_ty(prec);
    let Parts {
        name,
        vis,
        allow,
        args,
        params,
    } = Parts::of(item, func);
    let Hvp {
        func: mut hf,
        tangent,
        v: d,
    } = hvp_ir(func, varied_set, x, x.ty.clone(), false)?;
    crate::transform::simplify::fill_gathered_fn(&mut hf);
    let em = Emitter::new(&hf, false);
    let hparams = crate::grad::param_list(&em, &hf);
    let body = em.block(&hf.body);
    let (xid, dv) = (em.var(x.var), em.var(d));
    // (a gradient that does not depend on x: a zero Hessian)
    let t = seq_or_zeros(&em, tangent, quote!(#xid.len()));
    let xi = &x.ident;
    let (hvp_name, h_name) = (
        format_ident!("{}_hvp", name),
        format_ident!("{}_hessian", name),
    );
    let hvp_doc = format!(
        "Hessian-vector product of [`{name}`] with respect to `{xi}`: the directional derivative of the gradient along `v` (as long as `{xi}`), by forward mode over reverse mode in one pass."
    );
    let h_doc = format!(
        "Hessian of [`{name}`] with respect to `{xi}`: its rows, one `Vec` per element of `{xi}`, each from one Hessian-vector product along a unit vector."
    );
    let msg = format!("{hvp_name}: the direction has length {{}} but `{xi}` has length {{}}");
    Ok(quote! {
        #item

        #[doc = #hvp_doc]
        #allow
        #vis fn #hvp_name(#(#hparams),*) -> ::std::vec::Vec<#real> {
            ::core::assert!(#dv.len() == #xid.len(), #msg, #dv.len(), #xid.len());
            #body
            #t
        }

        #[doc = #h_doc]
        #allow
        #vis fn #h_name(#(#params),*) -> ::std::vec::Vec<::std::vec::Vec<#real>> {
            ::ferrax::__private::unit_passes(#xi.len(), |__ferrax_e: &[#real]| {
                #hvp_name(#(#args,)* __ferrax_e)
            })
        }
    })
}
