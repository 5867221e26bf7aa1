//! `#[vmap]`: parse -> (grad's reverse mode, when `#[grad]` sits under it) -> vmap -> emit.
//!
//! Also the shared emission of a batched function from IR, which `#[jacobian]` and
//! `#[hessian]` use for their batched forward and reverse passes.

use crate::attr::{GradAttr, VmapAttr};
use crate::emit::Emitter;
use crate::ir::*;
use crate::transform::vjp::vjp_recomputing_calls;
use crate::transform::vmap::{VmapIn, vmap};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, Type};

/// Expands `#[vmap(attr)] item`.
pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: syn::ItemFn = syn::parse2(item)?;
    // a method: expanded as a function taking its receiver first (the receiver's in-axis
    // first), then made methods again
    if let Some(f) = crate::method::as_function(&item)? {
        if item.attrs.iter().any(|a| a.path().is_ident("vmap"))
            && let Some(FnArg::Receiver(r)) = item.sig.inputs.first()
        {
            return Err(syn::Error::new_spanned(
                r,
                "#[vmap] over #[vmap] does not support methods (one #[vmap] does): write a free function taking the value as a parameter",
            ));
        }
        let mut original = item.clone();
        take_attr(&mut original, "grad")?;
        let out = expand_function(attr, f)?;
        return crate::method::as_methods(out, &original);
    }
    expand_function(attr, item)
}

fn expand_function(attr: TokenStream, mut item: syn::ItemFn) -> syn::Result<TokenStream> {
    let vattr: VmapAttr = syn::parse2(attr.clone())?;
    if let Some(inner) = take_attr(&mut item, "vmap")? {
        return expand_nested(vattr, inner, item);
    }
    // `#[jacobian]` / `#[hessian]` under this attribute: per-example Jacobians and Hessians,
    // beside everything each attribute emits alone
    if let Some(a) = item
        .attrs
        .iter()
        .find(|a| a.path().is_ident("jacobian") || a.path().is_ident("hessian"))
    {
        let which = if a.path().is_ident("jacobian") {
            crate::jacobian::Which::Jacobian
        } else {
            crate::jacobian::Which::Hessian
        };
        let unsupported = if crate::method::is_method(&item) {
            Some(
                "#[vmap] over #[jacobian] or #[hessian] takes free functions, not methods: write a function taking the value as a parameter",
            )
        } else if item.attrs.iter().any(|a| a.path().is_ident("grad")) {
            Some(
                "#[vmap] over #[jacobian] or #[hessian] cannot also take #[grad]: put #[vmap] #[grad] on a copy of the function",
            )
        } else {
            None
        };
        if let Some(msg) = unsupported {
            return Err(syn::Error::new_spanned(a, msg));
        }
        let label = if which == crate::jacobian::Which::Jacobian {
            "jacobian"
        } else {
            "hessian"
        };
        let jattr = take_attr(&mut item, label)?.unwrap_or_default();
        let mut out = expand_function(attr, item.clone())?;
        // (the batch axes as the function alone has them; where it is outside the language,
        // the expansion above reports it)
        let lowering = GradAttr {
            seq_output: true,
            ..GradAttr::default()
        };
        let Ok((func, _, _)) = crate::grad::lower_checked(&item, &lowering) else {
            return Ok(out);
        };
        let axes = in_axes(&vattr, &func, &item)?;
        out.extend(crate::jacobian::expand_per_example(
            which,
            jattr,
            item,
            axes,
            vattr.out_axes,
        )?);
        return Ok(out);
    }
    // `#[grad]` under this attribute: its transforms come first (per-example gradients)
    let grad_attr = take_attr(&mut item, "grad")?;
    let gattr = match &grad_attr {
        Some(t) => syn::parse2::<GradAttr>(t.clone())?,
        // (batched alone, a function may return a sequence of floats)
        None => GradAttr {
            seq_output: true,
            ..GradAttr::default()
        },
    };
    let (func, sig, varied_set) = match crate::grad::lower_checked(&item, &gattr) {
        Ok(l) => l,
        Err(errors) => return Ok(errors),
    };
    let axes = in_axes(&vattr, &func, &item)?;
    let name = &item.sig.ident;
    let mut out = match &grad_attr {
        Some(g) => crate::grad::expand(g.clone(), quote!(#item))?,
        None => quote!(#item),
    };
    let flat = format_ident!("{}{}", crate::transform::vmap::VMAP0, name);
    if crate::method::is_method(&item) {
        // (`#[grad]` gives a method the batched primal this attribute emits below)
        let file: syn::File = syn::parse2(out)?;
        let items = file
            .items
            .into_iter()
            .filter(|i| !matches!(i, syn::Item::Fn(f) if f.sig.ident == flat));
        out = quote!(#(#items)*);
    }
    let ret_ty = &sig.ret_ty;
    // scalar code runs once per example (its `_grad` too), tensor code batched
    let looped = per_example_code(&func, &item);
    let vmapped = BatchedFn {
        name: format_ident!("{}_vmap", name),
        doc: format!(
            "[`{name}`] over a batch: the arguments with an in-axis carry one example per index of that axis; the result has the batch axis at {}.",
            vattr.out_axes
        ),
        item: &item,
        axes: &axes,
        outputs: vec![(func.output, ret_ty.clone())],
        out_axes: vattr.out_axes,
    };
    // (scalar code over lanes, where it can be: see `ferrax::__private::lanes`)
    let primal_lanes = || lanes_closure(&func, |em| em.atom(func.output));
    out.extend(if looped {
        per_example_fn(&vmapped, &func, name, &[(quote!(), None)], primal_lanes())
    } else {
        batched_fn(&vmapped, &func)?
    });
    // what other batched functions call: every float and tensor parameter along axis 0
    // (where that cannot be batched, such as indices shared by every example, nothing: a
    // call then names the missing function)
    // and, where it takes lists of tensors, its twin batching those too (what a caller with
    // a list that differs per example calls)
    for (prefix, lists) in [
        (crate::transform::vmap::VMAP0, false),
        (crate::transform::vmap::VMAP0_LISTS, true),
    ] {
        let Some(axes) = axes_at_0(&func, &func.params, lists) else {
            continue;
        };
        let counterpart = BatchedFn {
            name: format_ident!("{}{}", prefix, name),
            doc: String::new(),
            item: &item,
            axes: &axes,
            outputs: vec![(func.output, ret_ty.clone())],
            out_axes: 0,
        };
        out.extend(if looped {
            per_example_fn(
                &counterpart,
                &func,
                name,
                &[(quote!(), None)],
                primal_lanes(),
            )
        } else {
            batched_fn(&counterpart, &func).unwrap_or_default()
        });
    }
    if grad_attr.is_some() {
        // calls of other `#[vmap] #[grad]` functions: their batched gradients for a
        // cotangent (`__ferrax_vmap0_ct_g`), recomputing their forward pass (not for
        // scalar code that calls the user's functions, which need no batched form: its
        // batched callers are scalar code too, run once per example)
        let v = vjp_recomputing_calls(&func, &varied_set);
        if !looped || crate::entry::self_contained(&item.block) {
            out.extend(crate::slots::for_callers(
                call_counterparts(&item, &sig, &gattr.for_callers(&item.sig), true),
                &item,
                &gattr,
            ));
        }
        let active: Vec<&Param> = func.params.iter().filter(|p| p.active).collect();
        let grads: Vec<(Atom, Type)> = v
            .grads
            .iter()
            .zip(&active)
            .map(|(g, p)| (*g, crate::grad::grad_type(&p.ty)))
            .collect();
        let wrt: Vec<String> = active.iter().map(|p| format!("`{}`", p.ident)).collect();
        let wrt = wrt.join(", ");
        // (where one example at a time: what `_grad` and `_value_and_grad` return, a tuple
        // of gradients where there are several, each of its parameter)
        let fields: Vec<(TokenStream, Option<Var>)> = active
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let k = syn::Index::from(k);
                let field = if grads.len() == 1 {
                    quote!()
                } else {
                    quote!(.#k)
                };
                (field, Some(p.var))
            })
            .collect();
        // (both batch axes first)
        let per_example = |suffix: &str, doc: String, outputs| BatchedFn {
            name: format_ident!("{}_{}_vmap", name, suffix),
            doc,
            item: &item,
            axes: &axes,
            outputs,
            out_axes: 0,
        };
        let grad_fn = per_example(
            "grad",
            format!(
                "Per-example gradients of [`{name}`] with respect to {wrt}: each gradient carries the batch axis first (in every field of a struct)."
            ),
            grads.clone(),
        );
        // the gradient over lanes: the IR `f_grad` is written from (see `grad::expand_with`)
        let plain = looped.then(|| crate::transform::vjp::vjp(&func, &varied_set));
        let grad_lanes = |with_value: bool| {
            let v = plain.as_ref()?;
            let mut ir = crate::grad::gradient_ir(&func, v, with_value);
            crate::transform::simplify::fill_gathered_fn(&mut ir);
            lanes_closure(&ir, |em| {
                let g = crate::grad::grads_of(em, &v.grads);
                if with_value {
                    let value = em.atom(func.output);
                    quote!((#value, #g))
                } else {
                    g
                }
            })
        };
        out.extend(if looped {
            per_example_fn(
                &grad_fn,
                &func,
                &format_ident!("{}_grad", name),
                &fields,
                grad_lanes(false),
            )
        } else {
            batched_fn(&grad_fn, &crate::grad::gradient_ir(&func, &v, false))?
        });
        let mut outputs = vec![(func.output, ret_ty.clone())];
        outputs.extend(grads);
        let value_and_grad_fn = per_example(
            "value_and_grad",
            format!(
                "Per-example values of [`{name}`] and per-example gradients with respect to {wrt}, batch axis first."
            ),
            outputs,
        );
        out.extend(if looped {
            let mut both = vec![(quote!(.0), None)];
            both.extend(fields.iter().map(|(f, p)| (quote!(.1 #f), *p)));
            per_example_fn(
                &value_and_grad_fn,
                &func,
                &format_ident!("{}_value_and_grad", name),
                &both,
                grad_lanes(true),
            )
        } else {
            batched_fn(
                &value_and_grad_fn,
                &crate::grad::gradient_ir(&func, &v, true),
            )?
        });
    }
    Ok(out)
}

/// The batch axes of a counterpart that other batched functions call: axis 0 for every
/// float and tensor of `params` (of `func`), and for every list of tensors where `lists`
/// (`None` where `lists` asks for a twin of a function that takes no list).
fn axes_at_0(func: &Func, params: &[Param], lists: bool) -> Option<Vec<Option<isize>>> {
    let is_list = |p: &Param| func.info(p.var).kind == Kind::Struct && seq_form(&p.ty).is_some();
    if lists && !params.iter().any(is_list) {
        return None;
    }
    Some(
        params
            .iter()
            .map(|p| {
                let batched = matches!(func.info(p.var).kind, Kind::Float(_) | Kind::Tensor)
                    || (lists && is_list(p));
                batched.then_some(0)
            })
            .collect(),
    )
}

/// What calls of `f` from other batched functions use, all differentiated with respect to
/// every float, tensor and parameter-struct parameter (the caller knows which arguments are
/// active, `f`'s own `wrt` does not matter; struct parameters come in unbatched, as in
/// `__ferrax_vmap0_f`):
///
/// - `__ferrax_vmap0_ct_f(args.., ct)`: the gradients of `ct . f(args)` (a tuple when
///   several; per example), floats, tensors and `ct` batched along axis 0 (see
///   [`VMAP0_CT`](crate::transform::vmap::VMAP0_CT));
/// - `__ferrax_vmap0_jvpt_f(args.., tangents..)`: the tangent of `f(args)` along a batch of
///   tangents, the primal arguments unbatched
///   ([`VMAP0_JVPT`](crate::transform::vmap::VMAP0_JVPT));
/// - `__ferrax_full_f_ctjvp(args.., ct, tangents.., ct_tangent)` and its batched twin
///   `__ferrax_vmap0_ctjvpt_f` (tangents batched, the rest not): forward mode over the
///   gradients for a cotangent, what a Hessian through a call of `f` calls
///   ([`VMAP0_CTJVPT`](crate::transform::vmap::VMAP0_CTJVPT)).
///
/// `#[grad]` (`from_vmap` false) emits them where `f` calls no function with active
/// arguments (every `#[grad]` function would otherwise need them from each callee, which a
/// `#[custom_vjp]` function cannot have): `__ferrax_full_f_ctjvp` (for sequence parameters
/// too), and the batched ones where `f` takes a tensor, so that Jacobians and Hessians of
/// tensor functions go through calls of it. `#[vmap] #[grad]` (`from_vmap` true) emits
/// whichever `#[grad]` did not.
///
/// Where `f` takes lists of tensors, each batched counterpart has a twin taking every list
/// (and every list's tangent) batched too (`__ferrax_vmap0l_ct_f`, `__ferrax_vmap0l_jvpt_f`,
/// `__ferrax_vmap0l_ctjvpt_f`; [`VMAP0_LISTS`](crate::transform::vmap::VMAP0_LISTS)): what
/// a caller calls with a list that differs per example.
///
/// A struct's tangent is taken unbatched: inside a Jacobian or Hessian a struct is a
/// constant, whose tangent is a zero passed as it is (`b::lift_arg`). Where one of them
/// cannot be built (a sequence parameter, a body that does not batch), it is left out, and a
/// caller gets rustc's error for the missing function, at the call.
pub fn call_counterparts(
    item: &syn::ItemFn,
    sig: &crate::parse::Signature,
    attr: &GradAttr,
    from_vmap: bool,
) -> TokenStream {
    let Ok((func, _, varied_set)) = crate::grad::lower_checked(item, &attr.for_callers(&item.sig))
    else {
        return quote!();
    };
    let mut calls = false;
    walk(&func.body, &mut |s| {
        if let Stmt::Let {
            rhs: rhs @ Rhs::Call { .. },
            ..
        } = s
        {
            calls |= rhs_uses(rhs)
                .iter()
                .any(|a| matches!(a, Atom::Var(v) if varied_set.contains(v)));
        }
    });
    let active: Vec<&Param> = func.params.iter().filter(|p| p.active).collect();
    let kind_of = |p: &&Param| func.info(p.var).kind.clone();
    if active.is_empty()
        || !active.iter().all(|p| {
            matches!(
                kind_of(p),
                Kind::Float(_) | Kind::Tensor | Kind::Struct | Kind::Seq(..)
            )
        })
    {
        return quote!();
    }
    // (sequences are not batched)
    let batchable = !active.iter().any(|p| matches!(kind_of(p), Kind::Seq(..)));
    let tensors = func
        .params
        .iter()
        .any(|p| func.info(p.var).kind == Kind::Tensor);
    // what `#[grad]` emits; `#[vmap] #[grad]` the rest
    let by_grad = (!calls, !calls && tensors);
    let (unbatched, batched) = if from_vmap {
        (!by_grad.0, !by_grad.1)
    } else {
        by_grad
    };
    // (nor are functions reading a float out of an active struct: its per-example gradients
    // cannot fit the float field)
    let mut float_fields = false;
    walk(&func.body, &mut |s| {
        if let Stmt::Let {
            var,
            rhs: Rhs::Project(root, _),
        } = s
        {
            float_fields |= !func.info(*var).kind.is_tensor()
                && func.params.iter().any(|p| p.var == *root && p.active);
        }
    });
    let batched = batched && batchable && !float_fields;
    if !unbatched && !batched {
        return quote!();
    }
    let mut out = quote!();
    // a method, which cannot take `#[vmap]`, has the batched primal `#[vmap]` gives a
    // function here: every float and tensor parameter along axis 0, the receiver unbatched
    if batched && !from_vmap && crate::method::is_method(item) {
        let axes0 = axes_at_0(&func, &func.params, false).unwrap_or_default();
        out.extend(
            batched_fn(
                &BatchedFn {
                    name: format_ident!("{}{}", crate::transform::vmap::VMAP0, item.sig.ident),
                    doc: String::new(),
                    item,
                    axes: &axes0,
                    outputs: vec![(func.output, sig.ret_ty.clone())],
                    out_axes: 0,
                },
                &func,
            )
            .unwrap_or_default(),
        );
    }
    let grad_tys: Vec<Type> = active
        .iter()
        .map(|p| crate::grad::grad_type(&p.ty))
        .collect();
    let ct_ty: Type = if func.kind(func.output) == Kind::Tensor {
        syn::parse_quote!(&::ferrax::Tensor)
    } else {
        sig.ret_ty.clone()
    };
    let batch = |f: &Func, name: &str, axes: &[Option<isize>], outputs: Vec<(Atom, Type)>| {
        // where the body cannot be batched, nothing
        if !batched {
            return quote!();
        }
        batched_fn(
            &BatchedFn {
                name: format_ident!("{}{}", name, item.sig.ident),
                doc: String::new(),
                item,
                axes,
                outputs,
                out_axes: 0,
            },
            f,
        )
        .unwrap_or_default()
    };

    // gradients for a batched cotangent
    let v = vjp_recomputing_calls(&func, &varied_set);
    let g = crate::grad::cotangent_ir(&v, ct_ty);
    let grads: Vec<(Atom, Type)> = v.grads.iter().copied().zip(grad_tys.clone()).collect();
    for (prefix, lists) in [
        (crate::transform::vmap::VMAP0_CT, false),
        (crate::transform::vmap::VMAP0_LISTS_CT, true),
    ] {
        if let Some(axes) = axes_at_0(&g, &g.params, lists) {
            out.extend(batch(&g, prefix, &axes, grads.clone()));
        }
    }

    // the tangent, batched over tangents only
    let j = crate::transform::jvp::jvp_splitting_calls(&func, &varied_set);
    if batched && j.tangent.var().is_some() {
        let mut jf = j.pruned(&[j.tangent]);
        let axes = [false, true].map(|lists| tangent_axes(&jf, &j, &func, lists));
        j.push_tangent_params(&mut jf, &func);
        let outputs = vec![(j.tangent, sig.ret_ty.clone())];
        for (prefix, axes) in [
            crate::transform::vmap::VMAP0_JVPT,
            crate::transform::vmap::VMAP0_LISTS_JVPT,
        ]
        .into_iter()
        .zip(axes)
        {
            if let Some(axes) = axes {
                out.extend(batch(&jf, prefix, &axes, outputs.clone()));
            }
        }
    }

    // forward mode over the gradients for a cotangent (the cotangent differentiated too)
    let mut g = g;
    if let Some(ct) = g.params.last_mut() {
        ct.active = true;
    }
    g.output = v.grads[0];
    let gv = crate::analyse::varied(&g);
    let j = crate::transform::jvp::jvp(&g, &gv);
    let tangents: Option<Vec<(Atom, Type)>> = v
        .grads
        .iter()
        .zip(&grad_tys)
        .map(|(grad, ty)| Some((Atom::Var(*j.tangents.get(&grad.var()?)?), ty.clone())))
        .collect();
    let (None, Some(outputs)) = (j.unsupported_call, tangents) else {
        return out;
    };
    let outs: Vec<Atom> = outputs.iter().map(|(a, _)| *a).collect();
    let mut jf = j.pruned(&outs);
    let axes = [false, true].map(|lists| tangent_axes(&jf, &j, &g, lists));
    j.push_tangent_params(&mut jf, &g);
    let em = Emitter::new(&jf, false);
    let params = crate::grad::param_list(&em, &jf);
    let body = em.block(&jf.body);
    let rets: Vec<TokenStream> = outputs.iter().map(|(a, _)| em.value(*a)).collect();
    let (ret_ty, ret) = if rets.len() == 1 {
        (quote!(#(#grad_tys)*), quote!(#(#rets)*))
    } else {
        (quote!((#(#grad_tys),*)), quote!((#(#rets),*)))
    };
    let name = format_ident!("{}{}_ctjvp", crate::grad::FULL, item.sig.ident);
    let vis = &item.vis;
    if unbatched {
        let allow = crate::emit::allow_generated();
        out.extend(quote! {
            #[doc(hidden)]
            #allow
            #vis fn #name(#(#params),*) -> #ret_ty {
                #body
                #ret
            }
        });
    }
    for (prefix, axes) in [
        crate::transform::vmap::VMAP0_CTJVPT,
        crate::transform::vmap::VMAP0_LISTS_CTJVPT,
    ]
    .into_iter()
    .zip(axes)
    {
        if let Some(axes) = axes {
            out.extend(batch(&jf, prefix, &axes, outputs.clone()));
        }
    }
    out
}

/// The batch axes of a forward-mode counterpart: its own parameters unbatched, then the
/// tangents appended after them batched along axis 0, except a parameter struct's (see
/// [`call_counterparts`]).
fn tangent_axes(
    jf: &Func,
    j: &crate::transform::jvp::JvpOut,
    primal: &Func,
    lists: bool,
) -> Option<Vec<Option<isize>>> {
    let is_list = |v: &Var| {
        primal.info(*v).kind == Kind::Struct
            && primal
                .params
                .iter()
                .any(|p| p.var == *v && seq_form(&p.ty).is_some())
    };
    if lists && !j.tangent_params.iter().any(|(p, _)| is_list(p)) {
        return None;
    }
    let mut axes = vec![None; jf.params.len()];
    axes.extend(j.tangent_params.iter().map(|(p, _)| {
        (primal.info(*p).kind != Kind::Struct || (lists && is_list(p))).then_some(0)
    }));
    Some(axes)
}

/// `#[vmap(outer)] #[vmap(inner)] fn f`: everything the inner attribute emits, and
/// `f_vmap_vmap`, the function over two batch levels. Examples are independent, so the two
/// levels are flattened into one batch of `outer * inner` examples for the function batched
/// along axis 0 (`__ferrax_vmap0_f`), and the result unflattened.
fn expand_nested(
    outer: VmapAttr,
    inner: TokenStream,
    item: syn::ItemFn,
) -> syn::Result<TokenStream> {
    let inner_attr: VmapAttr = syn::parse2(inner.clone())?;
    let mut out = expand(inner, quote!(#item))?;
    let mut plain = item.clone();
    take_attr(&mut plain, "grad")?;
    let Ok((func, _, _)) = crate::grad::lower_checked(&plain, &GradAttr::default()) else {
        // the inner expansion reports the errors
        return Ok(out);
    };
    let (oa, ia) = (
        in_axes(&outer, &func, &item)?,
        in_axes(&inner_attr, &func, &item)?,
    );
    let name = &item.sig.ident;
    let nested_name = format_ident!("{}_vmap_vmap", name);
    let flat = format_ident!("{}{}", crate::transform::vmap::VMAP0, name);
    let mut params = Vec::new();
    let mut nested = Vec::new();
    let mut call = Vec::new();
    let mut prologue = Vec::new();
    for (k, p) in func.params.iter().enumerate() {
        let id = &p.ident;
        let kind = func.info(p.var).kind.clone();
        let batchable = matches!(kind, Kind::Float(_) | Kind::Tensor);
        let (o, i) = (oa[k], ia[k]);
        let ty = &p.ty;
        if !batchable {
            params.push(quote!(#id: #ty));
            call.push(quote!(#id));
            continue;
        }
        let by_val_tensor = kind == Kind::Tensor && !matches!(p.ty, Type::Reference(_));
        let ty = if matches!(kind, Kind::Float(_)) && (o.is_some() || i.is_some()) {
            quote!(&::ferrax::Tensor)
        } else {
            quote!(#ty)
        };
        params.push(quote!(#id: #ty));
        let arg = if by_val_tensor {
            quote!(&#id)
        } else {
            quote!(#id)
        };
        let (o, i) = (opt_axis(o), opt_axis(i));
        let label = id.to_string();
        let n = nested.len();
        nested.push(quote!(::ferrax::__private::b::Nested { name: #label, x: ::ferrax::__private::b::BArg::from(#arg), outer: #o, inner: #i }));
        let flat_id = format_ident!("__ferrax_flat_{}", id);
        prologue.push(quote!(let #flat_id = ::ferrax::__private::b::nested_in(&__ferrax_args[#n], __ferrax_b1, __ferrax_b2);));
        call.push(if by_val_tensor {
            quote!(#flat_id)
        } else {
            quote!(&#flat_id)
        });
    }
    let (oo, io) = (outer.out_axes, inner_attr.out_axes);
    let name_str = nested_name.to_string();
    let doc = format!(
        "[`{name}`] over two batch levels (`#[vmap]` of `#[vmap]`): the outer level's batch axis at {oo} of the result, the inner one's at {io} within each outer example."
    );
    let vis = &item.vis;
    out.extend(quote! {
        #[doc = #doc]
        #[allow(clippy::all)]
        #vis fn #nested_name(#(#params),*) -> ::ferrax::Tensor {
            let __ferrax_args = [#(#nested),*];
            let (__ferrax_b1, __ferrax_b2) = ::ferrax::__private::b::nested_sizes(#name_str, &__ferrax_args);
            #(#prologue)*
            let __ferrax_y = #flat(#(#call),*);
            ::ferrax::__private::b::nested_out(&__ferrax_y, __ferrax_b1, __ferrax_b2, #oo, #io)
        }
    });
    Ok(out)
}

pub(crate) fn opt_axis(a: Option<isize>) -> TokenStream {
    match a {
        Some(a) => quote!(::core::option::Option::Some(#a)),
        None => quote!(::core::option::Option::None),
    }
}

/// `#[grad(attr)] #[vmap(..)] fn f`: what `#[vmap] #[grad]` emits, and `f_vmap_grad` /
/// `f_vmap_value_and_grad`, the gradient of the sum over the batch of `f_vmap`: per example
/// for a batched argument (examples are independent), summed over the examples for a shared
/// one.
pub fn expand_grad_over(gattr: TokenStream, mut item: syn::ItemFn) -> syn::Result<TokenStream> {
    let ga: GradAttr = syn::parse2(gattr.clone())?;
    let vtokens = take_attr(&mut item, "vmap")?.unwrap_or_default();
    let vattr: VmapAttr = syn::parse2(vtokens.clone())?;
    let mut stacked = item.clone();
    stacked.attrs.insert(0, syn::parse_quote!(#[grad(#gattr)]));
    let mut out = expand(vtokens, quote!(#stacked))?;
    // where the function is outside the language, the expansion above reports it
    let Ok((func, _, _)) = crate::grad::lower_checked(&item, &ga) else {
        return Ok(out);
    };
    let axes = in_axes(&vattr, &func, &item)?;
    let name = &item.sig.ident;
    let per_example = format_ident!("{}_value_and_grad_vmap", name);
    let mut params = Vec::new();
    let mut args = Vec::new();
    for (p, a) in func.params.iter().zip(&axes) {
        let (id, ty) = (&p.ident, &p.ty);
        let ty = match (a, &func.info(p.var).kind) {
            (Some(_), Kind::Float(_)) => quote!(&::ferrax::Tensor),
            _ => quote!(#ty),
        };
        params.push(quote!(#id: #ty));
        args.push(quote!(#id));
    }
    let mut grads = Vec::new();
    let mut tys = Vec::new();
    let active: Vec<(usize, &Param)> = func
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.active)
        .collect();
    for (k, (i, p)) in active.iter().enumerate() {
        // the per-example function returns (value, gradient, gradient, ..)
        let k = syn::Index::from(k + 1);
        let g = quote!(__ferrax_all.#k);
        let gty = crate::grad::grad_type(&p.ty);
        let (e, t) = match (axes[*i], &func.info(p.var).kind) {
            (Some(_), Kind::Float(_)) => (g, quote!(::ferrax::Tensor)),
            (Some(_), _) => (g, quote!(#gty)),
            (None, Kind::Float(_)) => (
                quote!(::ferrax::__private::t::sum_to_scalar::<#gty>(&#g)),
                quote!(#gty),
            ),
            (None, _) => (quote!(::ferrax::__private::b::sum_batch(&#g)), quote!(#gty)),
        };
        grads.push(e);
        tys.push(t);
    }
    let (gty, gval) = if grads.len() == 1 {
        (quote!(#(#tys)*), quote!(#(#grads)*))
    } else {
        (quote!((#(#tys),*)), quote!((#(#grads),*)))
    };
    let (g_name, vg_name) = (
        format_ident!("{}_vmap_grad", name),
        format_ident!("{}_vmap_value_and_grad", name),
    );
    let g_doc = format!(
        "Gradient of the sum over the batch of [`{name}_vmap`]: for a batched argument the per-example gradients (batch axis first), for a shared one their sum."
    );
    let vg_doc = format!("[`{name}_vmap`] and [`{g_name}`] from one batched pass.");

    let vis = &item.vis;
    out.extend(quote! {
        #[doc = #vg_doc]
        #[allow(clippy::all)]
        #vis fn #vg_name(#(#params),*) -> (::ferrax::Tensor, #gty) {
            let __ferrax_all = #per_example(#(#args),*);
            (__ferrax_all.0, #gval)
        }

        #[doc = #g_doc]
        #[allow(clippy::all)]
        #vis fn #g_name(#(#params),*) -> #gty {
            #vg_name(#(#args),*).1
        }
    });
    Ok(out)
}

/// Removes the attribute `name` from `item`, returning its arguments.
fn take_attr(item: &mut syn::ItemFn, name: &str) -> syn::Result<Option<TokenStream>> {
    let Some(pos) = item.attrs.iter().position(|a| a.path().is_ident(name)) else {
        return Ok(None);
    };
    let a = item.attrs.remove(pos);
    Ok(Some(match a.meta {
        syn::Meta::List(l) => l.tokens,
        syn::Meta::Path(_) => quote!(),
        syn::Meta::NameValue(nv) => {
            return Err(syn::Error::new_spanned(
                nv,
                format!("write `#[{name}]` or `#[{name}(..)]`"),
            ));
        }
    }))
}

/// The batch axis of each parameter (`None`: shared), checked against the parameters.
fn in_axes(attr: &VmapAttr, func: &Func, item: &syn::ItemFn) -> syn::Result<Vec<Option<isize>>> {
    let n = func.params.len();
    let method = crate::method::is_method(item);
    let axes = match (&attr.in_axes, attr.in_axis_all) {
        (Some(a), _) => {
            if a.len() != n {
                let receiver = if method {
                    " (the receiver `self` first)"
                } else {
                    ""
                };
                return Err(syn::Error::new(
                    attr.span,
                    format!(
                        "`in_axes` names {} ax{} but `{}` has {} parameters{receiver}: give one axis (or `None`) per parameter",
                        a.len(),
                        if a.len() == 1 { "is" } else { "es" },
                        item.sig.ident,
                        n
                    ),
                ));
            }
            a.clone()
        }
        // (a method's receiver, a struct, is shared by the batch)
        (None, k) => (0..n)
            .map(|i| (!(method && i == 0)).then_some(k.unwrap_or(0)))
            .collect(),
    };
    if axes.iter().all(Option::is_none) {
        return Err(syn::Error::new(
            attr.span,
            "`in_axes` batches no parameter: give at least one an axis",
        ));
    }
    for (p, a) in func.params.iter().zip(&axes) {
        if a.is_none() {
            continue;
        }
        let kind = &func.info(p.var).kind;
        let ok = match kind {
            Kind::Tensor => true,
            Kind::Float(_) => *a == Some(0) || *a == Some(-1),
            // a sequence of floats: a 2-D tensor `[n, B]` or `[B, n]`
            Kind::Seq(..) => true,
            Kind::Struct => seq_form(&p.ty).is_some(),
            _ => false,
        };
        if !ok {
            return Err(syn::Error::new_spanned(
                &p.ty,
                format!(
                    "#[vmap] batches `Tensor` parameters (along any axis), lists of tensors (`&[Tensor]`, `&Vec<Tensor>`, `Vec<Tensor>`: each element along the axis), `f32` / `f64` parameters (a 1-D tensor of them, axis 0) and sequences of them (`&[f64]`, `Vec<f64>`, `[f64; N]`: a 2-D tensor `[batch, n]`, batch axis where the entry says); `{}` is none of these: give it `None` in `in_axes`",
                    if p.ident == crate::method::SELF {
                        "self".to_string()
                    } else {
                        p.ident.to_string()
                    }
                ),
            ));
        }
    }
    Ok(axes)
}

/// How a list-of-tensors parameter is written (what its elements, moved to put their batch
/// axis first, are bound as): `&[Tensor]`, `&Vec<Tensor>` or `Vec<Tensor>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqForm {
    Slice,
    VecRef,
    Vec,
}

/// The form of `ty` if it is a list of tensors `#[vmap]` can batch (a fixed-size array is
/// not: its length is part of its type).
pub(crate) fn seq_form(ty: &Type) -> Option<SeqForm> {
    let is_vec =
        |t: &Type| crate::parse::type_kind(t) == Ok(Kind::Struct) && matches!(t, Type::Path(_));
    match ty {
        Type::Reference(r) if r.mutability.is_none() => match &*r.elem {
            Type::Slice(sl) if crate::parse::type_kind(&sl.elem) == Ok(Kind::Tensor) => {
                Some(SeqForm::Slice)
            }
            t if is_vec(t) => Some(SeqForm::VecRef),
            _ => None,
        },
        t if is_vec(t) => Some(SeqForm::Vec),
        _ => None,
    }
}

/// Whether `#[vmap]` runs `func` once per example (see `ferrax::per_example`) rather than
/// batching its operations: scalar code, a free function of floats, sequences of floats,
/// integers and bools returning a float or a sequence of floats, with no effect of its own
/// (`println!`, `assert!`: batched, one that reads only values shared by the batch runs
/// once, not once per example; see `tests/effects.rs`). Each of its operations batched
/// would be a pass over `[B]` floats; one example at a time, it stays in registers, and
/// the functions it calls need no batched form.
pub(crate) fn per_example_code(func: &Func, item: &syn::ItemFn) -> bool {
    !crate::method::is_method(item)
        && item.sig.generics.params.is_empty()
        && crate::entry::effect_free(&item.block)
        && func.params.iter().all(|p| {
            matches!(
                func.info(p.var).kind,
                Kind::Float(_) | Kind::Seq(..) | Kind::Int | Kind::Bool
            )
        })
        && matches!(func.kind(func.output), Kind::Float(_) | Kind::Seq(..))
}

/// `b` emitted as a loop over the examples: `callee` (the user's function, its `_grad` or
/// its `_value_and_grad`) called on each example's arguments (`ferrax::per_example`), on
/// rayon's threads where the examples are long and the body calls nothing of the user's
/// (which may read the caller's thread-local state); each output of `b` is a field (`.1 .0`)
/// of the callee's result, stacked over examples, with the parameter it is the gradient of
/// (an empty batch's gradient of a sequence is as long as the sequence).
pub(crate) fn per_example_fn(
    b: &BatchedFn,
    func: &Func,
    callee: &syn::Ident,
    fields: &[(TokenStream, Option<Var>)],
    lanes: Option<TokenStream>,
) -> TokenStream {
    let name = &b.name;
    let name_str = name.to_string();
    let parallel = crate::entry::self_contained(&b.item.block);
    let (mut params, mut front, mut sizes, mut reads, mut args) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // over lanes: the arguments of `lanes`, the shared values spread over lanes once
    let l = quote!(::ferrax::__private::lanes);
    let (mut lane_args, mut shared) = (Vec::new(), Vec::new());
    // each sequence parameter's length
    let mut lens = std::collections::HashMap::new();
    for (p, a) in func.params.iter().zip(b.axes) {
        let (id, ty) = (&p.ident, &p.ty);
        let kind = func.info(p.var).kind.clone();
        let Some(axis) = a else {
            if let Kind::Seq(..) = kind {
                lens.insert(p.var, quote!(#id.len()));
            }
            params.push(quote!(#id: #ty));
            // (shared by every example: copied, or an owned Vec cloned)
            args.push(match ty {
                Type::Path(_) if matches!(kind, Kind::Seq(..)) => {
                    quote!(::std::clone::Clone::clone(&#id))
                }
                _ => quote!(#id),
            });
            let spread = format_ident!("__ferrax_lanes_{}", id);
            lane_args.push(match kind {
                Kind::Float(_) => {
                    shared.push(quote!(let #spread = #l::L::splat(#id);));
                    quote!(#spread)
                }
                Kind::Seq(..) => {
                    let splat = match array_len(ty) {
                        Some(_) => quote!(#l::splat_array),
                        None => quote!(#l::splat_seq),
                    };
                    // (passed as the parameter takes it: by reference, an array by copy,
                    // an owned Vec cloned)
                    let (src, arg) = match ty {
                        Type::Reference(_) => (quote!(#id), quote!(&#spread)),
                        Type::Array(_) => (quote!(&#id), quote!(#spread)),
                        _ => (quote!(&#id), quote!(::std::clone::Clone::clone(&#spread))),
                    };
                    shared.push(quote!(let #spread = #splat(#src);));
                    arg
                }
                _ => quote!(#id),
            });
            continue;
        };
        params.push(quote!(#id: &::ferrax::Tensor));
        if *axis != 0 {
            front.push(quote!(let #id = &::ferrax::__private::b::move_to_front(#id, #axis);));
        }
        let label = id.to_string();
        sizes.push(quote!((#label, #id)));
        let ex = format_ident!("__ferrax_arg_{}", id);
        let float = match kind {
            Kind::Float(Prec::F32) | Kind::Seq(_, Prec::F32) => quote!(f32),
            _ => quote!(f64),
        };
        let k = quote!(__ferrax_example);
        if let Kind::Seq(..) = kind {
            let len = match array_len(ty) {
                Some(n) => quote!(::std::option::Option::Some(#n)),
                None => quote!(::std::option::Option::None),
            };
            reads.push(quote!(
                let #ex = ::ferrax::__private::ex::rows::<#float>(#name_str, #label, #id, #len);
            ));
            lens.insert(p.var, quote!(#ex.len()));
            args.push(match ty {
                Type::Array(_) => quote!(#ex.array(#k)),
                Type::Reference(r) => match &*r.elem {
                    Type::Array(_) => quote!(&#ex.array(#k)),
                    Type::Slice(_) => quote!(#ex.row(#k)),
                    _ => quote!(&#ex.row(#k).to_vec()),
                },
                _ => quote!(#ex.row(#k).to_vec()),
            });
            lane_args.push(match ty {
                Type::Array(_) => quote!(#l::array(&#ex, #k)),
                Type::Reference(r) => match &*r.elem {
                    Type::Array(_) => quote!(&#l::array(&#ex, #k)),
                    _ => quote!(&#l::rows(&#ex, #k)),
                },
                _ => quote!(#l::rows(&#ex, #k)),
            });
        } else {
            reads.push(quote!(
                let #ex = ::ferrax::__private::ex::floats::<#float>(#name_str, #label, #id);
            ));
            args.push(quote!(#ex[#k]));
            lane_args.push(quote!(#l::floats(&#ex, #k)));
        }
    }
    // one column per output, each written as its example finishes
    let cols: Vec<syn::Index> = (0..fields.len()).map(syn::Index::from).collect();
    let unread = fields
        .iter()
        .map(|(_, p)| match p.and_then(|p| lens.get(&p)) {
            Some(n) => quote!(::std::option::Option::Some(::std::vec![#n])),
            None => quote!(::std::option::Option::None),
        });
    let col_tys: Vec<TokenStream> = fields
        .iter()
        .map(|_| quote!(::ferrax::__private::ex::Column<_>))
        .collect();
    let puts = fields.iter().zip(&cols).map(|((f, _), c)| {
        quote!(::ferrax::__private::ex::put(&__ferrax_o #f, &mut __ferrax_c.#c, #name_str);)
    });
    let merges = cols
        .iter()
        .map(|c| quote!(__ferrax_a.#c.append(__ferrax_b.#c, #name_str);));
    let lane_puts = fields.iter().zip(&cols).map(|((f, _), c)| {
        quote!(::ferrax::__private::ex::put_lane(&__ferrax_o #f, __ferrax_i, &mut __ferrax_c.#c, #name_str);)
    });
    let outs = cols.iter().zip(unread).map(|(c, unread)| {
        let t = quote!(__ferrax_cols.#c.finish(__ferrax_batch, #unread));
        match b.out_axes {
            0 => t,
            axis => quote!(::ferrax::__private::b::move_from_front(&#t, #axis)),
        }
    });
    let (ret_ty, ret) = if fields.len() == 1 {
        (quote!(::ferrax::Tensor), quote!(#(#outs)*))
    } else {
        let tys = fields.iter().map(|_| quote!(::ferrax::Tensor));
        (quote!((#(#tys),*)), quote!((#(#outs),*)))
    };
    let (vis, doc, allow) = (&b.item.vis, b.doc_attr(), crate::emit::allow_generated());
    let (run, lanes_fn, lanes, put_lanes) = match lanes {
        Some(f) => (
            quote!(each_lanes),
            quote!(#(#shared)* let __ferrax_lanes = #f;),
            quote!(|__ferrax_example: usize| #l::run(|| __ferrax_lanes(#(#lane_args),*)),),
            quote! {
                |__ferrax_o, __ferrax_c: &mut (#(#col_tys,)*)| {
                    for __ferrax_i in 0..#l::W { #(#lane_puts)* }
                },
            },
        ),
        None => (quote!(each), quote!(), quote!(), quote!()),
    };
    quote! {
        #doc
        #allow
        #vis fn #name(#(#params),*) -> #ret_ty {
            #(#front)*
            let __ferrax_sizes: ::std::vec::Vec<(&str, &::ferrax::Tensor)> = ::std::vec![#(#sizes),*];
            let __ferrax_batch = ::ferrax::__private::b::batch_size(#name_str, &__ferrax_sizes);
            #(#reads)*
            #lanes_fn
            let __ferrax_cols: (#(#col_tys,)*) = ::ferrax::__private::ex::#run(
                __ferrax_batch,
                #parallel,
                |__ferrax_example: usize| #callee(#(#args),*),
                #lanes
                |__ferrax_o, __ferrax_c: &mut (#(#col_tys,)*)| { #(#puts)* },
                #put_lanes
                |__ferrax_a, __ferrax_b| { #(#merges)* },
            );
            #ret
        }
    }
}

/// `ir` (a function, or its gradient, whose results `out` writes) as a closure over lanes
/// (see `ferrax::__private::lanes`): its parameters and every float of its body `L`s of
/// several examples. `None` where `ir` is not code lanes can run
/// (`emit::lanes_emittable`).
pub(crate) fn lanes_closure(
    ir: &Func,
    out: impl Fn(&Emitter) -> TokenStream,
) -> Option<TokenStream> {
    if !crate::emit::lanes_emittable(ir) {
        return None;
    }
    let em = Emitter::new(ir, false).over_lanes();
    let params = lanes_params(ir);
    let (body, out) = (em.block(&ir.body), out(&em));
    Some(quote!(|#(#params),*| { #body #out }))
}

/// The parameters of `ir` over lanes (`x: &[L<f64>]`).
pub(crate) fn lanes_params(ir: &Func) -> Vec<TokenStream> {
    let tys: Vec<Type> = ir.params.iter().map(|p| over_lanes(&p.ty)).collect();
    crate::grad::param_list_typed(&Emitter::new(ir, false), ir, &tys)
}

/// `ty` with its floats `L`s of several examples (`&[f64]` as `&[L<f64>]`).
fn over_lanes(ty: &Type) -> Type {
    use syn::visit_mut::VisitMut;
    struct Spread;
    impl VisitMut for Spread {
        fn visit_type_mut(&mut self, t: &mut Type) {
            if let Type::Path(p) = t
                && (p.path.is_ident("f64") || p.path.is_ident("f32"))
            {
                *t = syn::parse_quote!(::ferrax::__private::lanes::L<#p>);
                return;
            }
            syn::visit_mut::visit_type_mut(self, t);
        }
    }
    let mut ty = ty.clone();
    Spread.visit_type_mut(&mut ty);
    ty
}

/// The length of an array type `[f64; N]` (behind a reference too), as written.
fn array_len(ty: &Type) -> Option<&syn::Expr> {
    match ty {
        Type::Array(a) => Some(&a.len),
        Type::Reference(r) => array_len(&r.elem),
        _ => None,
    }
}

/// A batched function to emit.
pub struct BatchedFn<'a> {
    pub name: syn::Ident,
    pub doc: String,
    /// The user's function (visibility, parameter names and types).
    pub item: &'a syn::ItemFn,
    /// Per parameter of the IR: its batch axis, or `None`.
    pub axes: &'a [Option<isize>],
    /// What it returns (a tuple when several), with the unbatched type of each.
    pub outputs: Vec<(Atom, Type)>,
    pub out_axes: isize,
}

impl BatchedFn<'_> {
    /// Its rustdoc attribute: hidden where it has no doc (a counterpart for callers).
    fn doc_attr(&self) -> TokenStream {
        let doc = &self.doc;
        if doc.is_empty() {
            quote!(#[doc(hidden)])
        } else {
            quote!(#[doc = #doc])
        }
    }

    /// The parameters of `func` with a batch axis.
    pub fn batched_params(&self, func: &Func) -> Vec<Var> {
        func.params
            .iter()
            .zip(self.axes)
            .filter(|(_, a)| a.is_some())
            .map(|(p, _)| p.var)
            .collect()
    }
}

/// Emits `f` batched over the parameters with an axis: `vmap` of `func`'s IR, a prologue
/// that moves each batch axis to the front and checks the batch sizes agree, and outputs
/// with their batch axis (lifted where an output does not depend on the batch).
pub fn batched_fn(b: &BatchedFn, func: &Func) -> syn::Result<TokenStream> {
    if b.axes.iter().all(Option::is_none) {
        // (a counterpart of a function that batches only lists of tensors, which its callers
        // pass unbatched: nothing to batch)
        return Ok(quote!());
    }
    let mut f = func.clone();
    let bsz = f.new_var("batch", Kind::Int, false);
    let batched = b.batched_params(&f);
    // a batched float parameter arrives as a 1-D tensor, a sequence of floats as a 2-D one
    // (the body reads the latter as the list of batched floats the prologue makes of it, an
    // owned `Vec<Tensor>`)
    let mut tys = Vec::new();
    let mut body_tys = Vec::new();
    for (p, a) in f.params.clone().iter().zip(b.axes) {
        let (ty, body_ty): (Type, Type) = match (a, &f.info(p.var).kind) {
            (Some(_), Kind::Float(_)) => {
                let t: Type = syn::parse_quote!(&::ferrax::Tensor);
                (t.clone(), t)
            }
            (Some(_), Kind::Seq(..)) => (
                syn::parse_quote!(&::ferrax::Tensor),
                syn::parse_quote!(::std::vec::Vec<::ferrax::Tensor>),
            ),
            _ => (p.ty.clone(), p.ty.clone()),
        };
        tys.push(ty);
        body_tys.push(body_ty);
    }
    for (p, ty) in f.params.iter_mut().zip(&body_tys) {
        p.ty = ty.clone();
    }
    // the batched value others are lifted like: a tensor or float parameter, or, where only
    // lists of tensors or floats are batched, the first batched tensor the batch size is
    // read from (a variable of its own)
    let listed = |v: &Var| matches!(f.info(*v).kind, Kind::Struct | Kind::Seq(..));
    let (like, like_of_lists) = match batched.iter().find(|v| !listed(v)) {
        Some(v) => (*v, None),
        None => {
            let l = f.new_var("batch_like", Kind::Tensor, false);
            (l, Some(l))
        }
    };
    let mut batched = batched;
    if let Some(l) = like_of_lists {
        batched.push(l);
    }
    let vf = vmap(
        &f,
        &VmapIn {
            batched: &batched,
            bsz,
            like,
            span: b.item.sig.ident.span(),
        },
    )
    .map_err(|e| syn::Error::new(e.span, e.msg))?;
    let mut vf = vf;
    crate::transform::vmap::cse(&mut vf);
    // (every output is read: a chain of elementwise primitives ending in one is not fused
    // away where there are several)
    let outs: Vec<Atom> = b
        .outputs
        .iter()
        .map(|(a, _)| *a)
        .filter(|a| *a != vf.output)
        .collect();
    let em = Emitter::with_reads(&vf, false, crate::emit::read_counts(&vf.body, &outs));
    let name = &b.name;
    let name_str = name.to_string();
    let params = crate::grad::param_list_typed(&em, &vf, &tys);
    let mut prologue = Vec::new();
    let mut sizes = Vec::new();
    let mut seq_sizes = Vec::new();
    // the sequences of floats, taken apart into lists of batched floats once the batch
    // size is checked
    let mut columns = Vec::new();
    for (k, ((p, a), user)) in vf.params.iter().zip(b.axes).zip(&func.params).enumerate() {
        let Some(axis) = a else { continue };
        let id = em.var(p.var);
        let by_ref = matches!(tys[k], Type::Reference(_));
        if let Kind::Seq(_, prec) = func.info(user.var).kind {
            if *axis != 0 {
                let front = format_ident!("{}_front", id);
                prologue
                    .push(quote!(let #front = ::ferrax::__private::b::move_to_front(#id, #axis);));
                prologue.push(quote!(let #id = &#front;));
            }
            let label = p.ident.to_string();
            sizes.push(quote!((#label, #id)));
            let float = if prec == Prec::F32 {
                quote!(f32)
            } else {
                quote!(f64)
            };
            let len = match array_len(&user.ty) {
                Some(n) => quote!(::std::option::Option::Some(#n)),
                None => quote!(::std::option::Option::None),
            };
            let m = if vf.info(p.var).mutable {
                quote!(mut)
            } else {
                quote!()
            };
            columns.push(quote!(
                let #m #id: ::std::vec::Vec<::ferrax::Tensor> =
                    ::ferrax::__private::b::seq_columns::<#float>(#name_str, #label, #id, #len);
            ));
            continue;
        }
        if let Some(form) = seq_form(&p.ty) {
            // a list of tensors: each element's batch axis moved first
            if *axis != 0 {
                let front = format_ident!("{}_front", id);
                prologue.push(quote!(
                    let #front: ::std::vec::Vec<::ferrax::Tensor> = #id
                        .iter()
                        .map(|x| ::ferrax::__private::b::move_to_front(x, #axis))
                        .collect();
                ));
                prologue.push(match form {
                    SeqForm::Slice => quote!(let #id = &#front[..];),
                    SeqForm::VecRef => quote!(let #id = &#front;),
                    SeqForm::Vec => quote!(let #id = #front;),
                });
            }
            let label = p.ident.to_string();
            seq_sizes.push(quote!(__ferrax_sizes.extend(#id.iter().map(|x| (#label, x)));));
            continue;
        }
        if *axis != 0 {
            let front = format_ident!("{}_front", id);
            let r = if by_ref { quote!(#id) } else { quote!(&#id) };
            prologue.push(quote!(let #front = ::ferrax::__private::b::move_to_front(#r, #axis);));
            prologue.push(if by_ref {
                quote!(let #id = &#front;)
            } else {
                quote!(let #id = #front;)
            });
        }
        let r = if by_ref { quote!(#id) } else { quote!(&#id) };
        let label = p.ident.to_string();
        sizes.push(quote!((#label, #r)));
    }
    let bsz_id = em.var(bsz);
    prologue.push(quote! {
        let mut __ferrax_sizes: ::std::vec::Vec<(&str, &::ferrax::Tensor)> = ::std::vec![#(#sizes),*];
        #(#seq_sizes)*
        let #bsz_id: usize = ::ferrax::__private::b::batch_size(#name_str, &__ferrax_sizes);
    });
    // (where only lists are batched, the values lifted to the batch take the dtype and
    // device of the first batched element, which the batch size was read from)
    if let Some(l) = like_of_lists {
        let lid = em.var(l);
        prologue.push(quote!(let #lid = __ferrax_sizes[0].1.clone();));
    }
    prologue.extend(columns);
    let body = em.block(&vf.body);
    let like_id = em.borrowed_tokens(like);
    let mut rets = Vec::new();
    let mut ret_tys = Vec::new();
    for (a, ty) in &b.outputs {
        let kind = vf.kind(*a);
        let v = em.value(*a);
        let seq_out = matches!(crate::parse::type_kind(ty), Ok(Kind::Seq(..)));
        let lifted = if seq_out {
            // a sequence of floats (a result, a sequence parameter's gradient): `[B, n]`
            if vf.batched(*a) {
                quote!(::ferrax::__private::b::stack_floats(&#v, #like_id))
            } else {
                quote!(::ferrax::__private::b::seq_lifted(&#v, #like_id))
            }
        } else if vf.batched(*a) {
            v
        } else {
            match kind {
                Kind::Float(_) => quote!(::ferrax::__private::b::lift_like(#v, #like_id)),
                Kind::Struct => quote!(::ferrax::__private::b::lift_struct(&#v, #bsz_id)),
                _ => quote!(::ferrax::__private::b::lift(&#v, #bsz_id)),
            }
        };
        let (rt, moved) = match crate::parse::type_kind(ty) {
            Ok(Kind::Float(_) | Kind::Tensor | Kind::Seq(..)) => {
                let axis = b.out_axes;
                let m = if axis == 0 {
                    lifted
                } else {
                    quote!(::ferrax::__private::b::move_from_front(&#lifted, #axis))
                };
                (quote!(::ferrax::Tensor), m)
            }
            _ => (quote!(#ty), lifted),
        };
        ret_tys.push(rt);
        rets.push(moved);
    }
    let (ret_ty, ret) = if rets.len() == 1 {
        (quote!(#(#ret_tys)*), quote!(#(#rets)*))
    } else {
        (quote!((#(#ret_tys),*)), quote!((#(#rets),*)))
    };
    let (vis, doc, allow) = (&b.item.vis, b.doc_attr(), crate::emit::allow_generated());
    Ok(quote! {
        #doc
        #allow
        #vis fn #name (#(#params),*) -> #ret_ty {
            #(#prologue)*
            #body
            #ret
        }
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;

    /// Whether the `#[vmap]` of `item` runs its examples over lanes.
    fn over_lanes(attr: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> bool {
        let out = super::expand(attr, item).unwrap().to_string();
        out.contains("each_lanes")
    }

    #[test]
    fn scalar_code_runs_over_lanes_where_its_floats_can_be_lanes() {
        // a simulation's gradient; sequences in and out; integers shared by the batch
        assert!(over_lanes(
            quote!(in_axes = (None, 0, None)),
            quote!(
                #[grad(wrt(p))]
                fn f(p: &[f64], x0: f64, n: usize) -> f64 {
                    let mut x = x0;
                    for i in 0..n {
                        x = x * p[0] + (i as f64).sin() * p[1];
                    }
                    x * x
                }
            )
        ));
        assert!(over_lanes(
            quote!(),
            quote!(
                fn g(x: [f32; 3]) -> Vec<f32> {
                    let mut v = x.to_vec();
                    v[1] = v[0].max(v[2]) as f32;
                    v
                }
            )
        ));
        // not: a float through a helper of the user's (which takes floats, not lanes), a
        // float method outside the primitive table
        assert!(!over_lanes(
            quote!(),
            quote!(
                fn h(x: f64) -> f64 {
                    helper(x) * x
                }
            )
        ));
        // (a helper of integers, whose result is of a type only rustc knows: a tuple that
        // may hold floats, or an integer)
        for body in [quote!(pair(n).0 * x), quote!(x * steps(n) as f64)] {
            assert!(!over_lanes(
                quote!(in_axes = (0, None)),
                quote!(
                    fn t(x: f64, n: usize) -> f64 {
                        #body
                    }
                )
            ));
        }
        // (an integer method of integers)
        assert!(over_lanes(
            quote!(in_axes = (0, None)),
            quote!(
                fn s(x: f64, n: usize) -> f64 {
                    x * n.min(3) as f64
                }
            )
        ));
        assert!(!over_lanes(
            quote!(),
            quote!(
                fn m(x: f64) -> f64 {
                    if x.is_nan() { 0.0 } else { x }
                }
            )
        ));
    }
}
