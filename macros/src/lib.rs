//! ferrax-macros: the attributes that transform functions. Use them through the `ferrax`
//! crate (`use ferrax::prelude::*;`).
//!
//! # `#[grad]`
//!
//! Differentiates an ordinary Rust function by source transformation. Beside `f` (kept as
//! written) it emits:
//!
//! - `f_jvp(args.., tangents..) -> (value, tangent)`: forward mode, one tangent per active
//!   argument, in order;
//! - `f_vjp(args..) -> (value, impl FnOnce(cotangent) -> gradients)`: reverse mode;
//! - `f_grad(args..) -> gradients`: the gradient itself for one active argument, a tuple in
//!   parameter order for several;
//! - `f_value_and_grad(args..) -> (value, gradients)`.
//!
//! ```
//! use ferrax::prelude::*;
//!
//! #[grad]
//! fn f(x: f64, y: f64) -> f64 {
//!     x.sin() * y + y * y
//! }
//!
//! let (dx, dy) = f_grad(1.0, 2.0);
//! assert!((dx - 1.0f64.cos() * 2.0).abs() < 1e-12);
//! assert!((dy - (1.0f64.sin() + 4.0)).abs() < 1e-12);
//! let (v, t) = f_jvp(1.0, 2.0, 1.0, 0.0);
//! assert_eq!(v, f(1.0, 2.0));
//! assert!((t - dx).abs() < 1e-12);
//! ```
//!
//! `#[grad(wrt(x, ..))]` makes only the named arguments active; the others are constants.
//! Integer, bool and other non-float arguments are never active. Gradient types follow the
//! argument types: `f32`/`f64` -> same, `&[f64]` -> `Vec<f64>`, `[f64; N]` -> `[f64; N]`,
//! `&S` -> `S` for a struct with `#[derive(Differentiable)]`. The macro sees no field types,
//! so it reads the fields of a struct it differentiates by where they are used. In a function
//! that takes, returns and makes no tensor (it calls no `.item()`), they are floats and float
//! sequences, read as written: `p.k`, `p.w[i]`, `&p.w`, `for w in &p.w`, `self.k`,
//! `self.part(x)`; one that meets an integer (`0..p.n`, `x[p.i]`, `t % p.n`) is an integer, and
//! one cast with `as` (`p.n as f64`) must be one (a float field cast would drop its derivative:
//! a compile error). Elsewhere a field is a tensor (or a struct of them; a float field works too
//! where tensor code uses it), and a float or float sequence field is read through a typed
//! `let` (`let k: f64 = p.k;`, `let w: &[f64] = &p.w;`), as is the float result of a call
//! taking such a struct (`let e: f64 = self.part(x);`). A function reading a float field has
//! no batched counterparts for `#[vmap]` callers: one float field cannot hold per-example
//! gradients. A struct left out of `wrt`
//! is a plain value whose fields are read as what they are (`cfg.k`, `cfg.n`,
//! `cfg.w[i]`, `let w = &cfg.w;`): a configuration need not be `Differentiable`, and a
//! frozen model's tensors stay constants. It stays a constant for callers too: a caller that
//! differentiates with respect to such a struct gets no gradient through a callee that
//! leaves it out. A call passes every argument's tangent and takes every argument's
//! gradient, so constants of types the macro cannot see pass on as they are (`g(x, SCALE)`,
//! `g(x, N)`, `g(&cfg, x)`); under `#[vmap]`, `#[jacobian]` and `#[hessian]` of tensor
//! functions a float constant passed to a float parameter is read through a typed `let`
//! first (`let s: f64 = SCALE;`), as the callee's batched counterpart takes it batched.
//!
//! ```
//! use ferrax::prelude::*;
//!
//! #[grad(wrt(x))]
//! fn weighted(x: &[f64], w: f64) -> f64 {
//!     let mut s = 0.0;
//!     for i in 0..x.len() {
//!         s += w * x[i] * x[i];
//!     }
//!     s
//! }
//!
//! assert_eq!(weighted_grad(&[1.0, 2.0], 3.0), vec![6.0, 12.0]);
//! ```
//!
//! On a method of an inherent `impl` (`&self`), the receiver is a parameter like
//! any other, named `self` in `wrt`: left out, its fields are constants read as what they
//! are; kept in (the default), it is a parameter struct and its gradient has type `Self`.
//! The derivatives are methods too (`model.loss_grad(&x)`), and `self.g(..)`, `p.g(..)` on
//! a struct parameter or `layer.g(..)` on a part of one (`for layer in &self.layers`) calls
//! the method `g`, differentiated through the callee's `#[grad]`. A method that takes a
//! tensor and calls no other function with active arguments also has the batched
//! counterparts `#[vmap]`, `#[jacobian]` and `#[hessian]` callers call (per-example
//! gradients of a loss calling `p.cell(x, h)`); one that calls others gets them from
//! `#[vmap] #[grad]`, as a free function does (`model.forward(x)` calling
//! `layer.forward(h)`). Methods take `#[vmap]` (the receiver's in-axis first, `None` by
//! default), `#[grad] #[vmap]`, `#[jacobian]` and `#[hessian]` (`chain.energy_hessian(&x)`);
//! `&mut self` and `self` are refused, and so is `#[vmap]` over `#[vmap]`; a trait's `impl`
//! cannot take the extra methods.
//!
//! ```
//! use ferrax::prelude::*;
//!
//! struct Spring {
//!     k: f64,
//! }
//!
//! impl Spring {
//!     #[grad(wrt(x))]
//!     fn energy(&self, x: f64) -> f64 {
//!         0.5 * self.k * x * x
//!     }
//! }
//!
//! let s = Spring { k: 4.0 };
//! assert_eq!(s.energy_grad(0.5), 2.0);
//! ```
//!
//! The accepted language: `let` (also tuple and array patterns), `let mut`, assignment and `+= -= *= /=`,
//! blocks, arithmetic, `as` casts, the float methods (sin cos tan asin acos atan atan2 sinh
//! cosh tanh asinh acosh atanh exp exp2 exp_m1 ln log log2 log10 ln_1p sqrt cbrt powi powf
//! abs signum hypot max min mul_add recip clamp floor ceil round trunc), integer and bool
//! computation, `if`/`else`, `if let`, `match` (guards included), `for` over ranges (`.rev()`, `.step_by(k)`) and over
//! `x.iter()` (`.enumerate()`, `.zip(..)`), `.windows(k)`, `.chunks(k)` and
//! `.chunks_exact(k)` (a view per iteration), `.sum()`, `.product()`,
//! `.fold(init, |acc, v| ..)` and `.collect()` (into a Vec) of such an iterator or of its
//! `.map(|v| ..)` (the closures
//! become a loop's body, so they may not `return`), `while`, `loop`, `break`
//! (with a value), `continue`, `return`, slices, Vecs (`vec![v; n]`, `vec![a, b, ..]`,
//! `Vec::with_capacity` + `push`) and arrays with element reads and writes, `Vec`s of
//! tensors (built by `push`, `vec![a, b]` or `.map(..).collect()`, read by index,
//! iterated, joined by `Tensor::stack(&outs, axis)` / `Tensor::concat(&outs, axis)`; a
//! `&[Tensor]` parameter's gradient is a `Vec<Tensor>`), read-only views
//! of them (`&x[a..b]`, `&x[a..]`, `x[..=b].iter()`: indexed, iterated, passed to other
//! `#[grad]` functions; each panics where it is made if out of range), closures bound
//! by `let f = |v| ..;` and called by name or passed to `.map(..)`/`.fold(..)` (lowered at
//! each use, in the names of their definition; not `move`), calls to other `#[grad]`
//! functions, calls of any function on inactive values, `stop_gradient(x)`, `dbg!(v)`, and
//! the standard macros run for their effect (below). Anything else is a compile error at
//! its span saying what is supported.
//!
//! `print!`, `println!`, `eprint!`, `eprintln!`, `assert!`, `assert_eq!`, `assert_ne!` (and
//! their `debug_` forms), `panic!`, `unreachable!`, `todo!` and `unimplemented!` are kept
//! as written, with any Rust inside them, and see the values their names have at that
//! point. They run where the primal computation runs: once per run of the user's code in
//! `f`, `f_jvp`, `f_vjp`, `f_grad`, Hessians and Jacobians (never again when the reverse
//! sweep recomputes a branch or loop body). Under `#[vmap]` one that reads per-example
//! values, or sits under a per-example condition, runs once per example it holds for, as in
//! a loop of the unbatched function. A callee's effects run again where a caller's reverse
//! sweep recomputes the call (a call whose slice argument is the caller's own Vec, and
//! calls under `#[vmap] #[grad]`).
//!
//! ```
//! use ferrax::prelude::*;
//!
//! #[grad]
//! fn settle(x: f64, steps: usize) -> f64 {
//!     assert!(steps > 0, "no steps");
//!     let mut y = x;
//!     for i in 0..steps {
//!         y = y * 0.5 + 1.0;
//!         debug_assert!(y.is_finite(), "step {i}: y = {y}");
//!     }
//!     y * y
//! }
//! assert_eq!(settle_grad(2.0, 1), 0.5 * 2.0 * 2.0);
//! ```
//!
//! A call with active arguments must be to another `#[grad]` function: it is differentiated
//! through that function's `g_jvp` / `g_vjp` (otherwise rustc reports that `g_vjp` is
//! missing, at the call). The callee differentiates with respect to all its float
//! parameters (no `wrt`). The macro knows an argument's type from the caller's code only,
//! so a constant passed straight to such a call (`g(x, SCALE)`) counts as not a float
//! (rustc then reports a missing argument at the call): bind it with its type first
//! (`let scale: f64 = SCALE;`). An array with a float literal among its elements
//! (`[SPAN, 0.0]`) is known to be floats.
//!
//! # How it works
//!
//! `parse` lowers the function to the IR of `ir` (structured, A-normal form, mutable
//! variables read through versions, exits turned into flags); `analyse` finds the values
//! that depend on active inputs; `transform::jvp` and `transform::vjp` rewrite the IR using
//! the rules of the single table in `primitives` (JVP rules, transposes of the linear
//! primitives: reverse mode is linearize-then-transpose); `analyse::dce` keeps only what the
//! requested outputs need (which is also what decides which values the forward sweep
//! records); `transform::simplify` tidies the reverse sweep; `emit` writes Rust. Reverse
//! mode checkpoints control flow per `if` and per loop iteration and recomputes inside the
//! reverse sweep, so straight-line intermediates are never stored; see `transform::vjp`.

mod analyse;
mod attr;
mod chains;
mod ctxt;
mod custom;
mod derive;
mod emit;
mod entry;
mod grad;
mod ir;
mod jacobian;
mod method;
mod nested;
mod parse;
mod primitives;
mod shapes;
mod slots;
mod transform;
mod vmap;

use proc_macro::TokenStream;

/// One attribute's expansion of `item`, by `expand`: on the item with the invisible groups
/// of `macro_rules!` fragments taken out ([`ungrouped`]), its generated functions then
/// run inside rayon's pool where that pays ([`entry::pooled`]).
fn attribute(
    item: TokenStream,
    expand: impl FnOnce(proc_macro2::TokenStream) -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    // (where the item does not parse, the expansion reports it)
    let Ok(user) = syn::parse::<syn::ItemFn>(item.clone()).map(ungrouped) else {
        return match expand(item.into()) {
            Ok(t) => t.into(),
            Err(e) => e.to_compile_error().into(),
        };
    };
    match expand(quote::quote!(#user)) {
        Ok(t) => entry::pooled(t, &user).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// `item` without the invisible groups a `macro_rules!` fragment leaves around what it
/// stands for (`$t:ty`, `$e:expr`): a type as the type itself, an expression as one in
/// parentheses (keeping its precedence), so that a function written by a macro reads as
/// written out.
fn ungrouped(mut item: syn::ItemFn) -> syn::ItemFn {
    struct Ungroup;
    impl syn::visit_mut::VisitMut for Ungroup {
        fn visit_type_mut(&mut self, t: &mut syn::Type) {
            while let syn::Type::Group(g) = t {
                *t = (*g.elem).clone();
            }
            syn::visit_mut::visit_type_mut(self, t);
        }
        fn visit_expr_mut(&mut self, e: &mut syn::Expr) {
            if let syn::Expr::Group(g) = e {
                *e = syn::Expr::Paren(syn::ExprParen {
                    attrs: g.attrs.clone(),
                    paren_token: syn::token::Paren(g.group_token.span),
                    expr: g.expr.clone(),
                });
            }
            syn::visit_mut::visit_expr_mut(self, e);
        }
    }
    syn::visit_mut::VisitMut::visit_item_fn_mut(&mut Ungroup, &mut item);
    item
}

/// Emits `f_jvp`, `f_vjp`, `f_grad` and `f_value_and_grad` beside `f`. See the crate docs.
#[proc_macro_attribute]
pub fn grad(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(item, |item| grad::expand(attr.into(), item))
}

/// Batches a function: emits `f_vmap`, the same function over a batch of examples, by
/// source transformation (JAX's `vmap`). `#[vmap(in_axes = (0, None, ..), out_axes = 0)]`:
/// per parameter, the axis its examples run along, or `None` for an argument shared by
/// every example (default: every parameter along axis 0). `f32` / `f64` parameters batched
/// arrive as 1-D tensors. Primitives take whole batches (a matrix-vector product becomes a
/// matrix-matrix product); `if` on a per-example condition selects per example; loops whose
/// exit differs per example run until every example is done (an integer counting them,
/// `i += 1`, is then a batch of floats: `+ - *`, comparisons and casts). A call with per-example
/// arguments to another `#[vmap]` function calls its batched counterpart. Two `#[vmap]`
/// attributes nest: `f_vmap_vmap` runs over both batch levels (e.g. all pairs of two sets).
///
/// Over `#[grad]` it also emits `f_grad_vmap` and `f_value_and_grad_vmap`: per-example
/// gradients, the batch axis first in every gradient (in each field of a parameter struct),
/// through loops of per-example trip counts too (each example's reverse sweep walks back its
/// own trips).
/// Under `#[grad]` (`#[grad] #[vmap] fn f`) it emits those and `f_vmap_grad` /
/// `f_vmap_value_and_grad`: the gradient of the sum over the batch, per example for batched
/// arguments and summed over the examples for shared ones.
///
/// Over `#[jacobian]` it also emits what `#[jacobian]` does and `f_jacfwd_vmap`,
/// `f_jacrev_vmap` and `f_jacobian_vmap`: per-example Jacobians shaped `[batch, output
/// axes.., input axes..]` (the batch axis at `out_axes`); over `#[hessian]`,
/// `f_hessian_vmap`: per-example Hessians `[batch, input axes.., input axes..]`. Every
/// example's basis runs in one flat batch of a single pass (JAX's `vmap(jacfwd(f))`,
/// `vmap(hessian(f))`); tensor and float parameters take in-axes, lists of tensors `None`.
///
/// Sequences of floats (`&[f64]`, `Vec<f64>`, `[f64; N]`) batched arrive as `[batch, n]`
/// tensors; a sequence result, or a sequence parameter's per-example gradient, leaves as
/// one. Scalar code (floats, sequences, integers and bools in, a float or a sequence out)
/// without effects runs once per example instead of batched operation by operation: the
/// function, its `_grad`, `_value_and_grad`, `_jacobian` or `_hessian` for each example,
/// on rayon's threads when the examples are long and the body calls nothing of yours. Any
/// control flow then works per example, and the functions it calls need no batched form.
/// Where no float of the body goes through a function of yours, the function (its
/// gradient, Jacobian or Hessian) also runs eight examples at once in SIMD lanes; a group
/// whose lanes disagree on a branch, a loop's end or an integer made of a float runs
/// again one example at a time, so every result is the unbatched function's, bit for bit.
///
/// ```
/// use ferrax::prelude::*;
///
/// #[vmap(in_axes = (0, None))]
/// fn predict(x: &Tensor, w: &Tensor) -> Tensor {
///     x.matmul(w).tanh()
/// }
///
/// let xs = Tensor::ones(&[5, 3], DType::F64); // five examples of shape [3]
/// let w = Tensor::ones(&[3, 2], DType::F64);
/// assert_eq!(predict_vmap(&xs, &w).shape(), &[5, 2]);
///
/// #[vmap]
/// #[grad]
/// fn loss(x: f64, y: f64) -> f64 {
///     if x > y { (x - y) * (x - y) } else { x * y }
/// }
/// let g = loss_grad_vmap(
///     &Tensor::from_vec(vec![1.0, 3.0], &[2]),
///     &Tensor::from_vec(vec![2.0, 1.0], &[2]),
/// );
/// assert_eq!(g.0.to_vec::<f64>(), vec![2.0, 4.0]); // d/dx per example
///
/// #[vmap(in_axes = (0, None))]
/// #[hessian(wrt(x))]
/// fn u(x: &Tensor, k: &Tensor) -> Tensor {
///     (x * x * k).sum() // Hessian: diag(2 k)
/// }
/// let k = Tensor::from_vec(vec![1.0, 3.0], &[2]);
/// let hs = u_hessian_vmap(&Tensor::ones(&[4, 2], DType::F64), &k); // 4 points in 2-D
/// assert_eq!(hs.shape(), &[4, 2, 2]);
/// assert_eq!(hs.to_vec::<f64>()[..4], [2.0, 0.0, 0.0, 6.0]);
///
/// #[vmap(in_axes = (None, 0, 0))]
/// #[grad(wrt(p))]
/// fn fit(p: &[f64], x: f64, y: f64) -> f64 {
///     let mut pred = 0.0;
///     for i in 0..p.len() {
///         pred = pred * x + p[i]; // Horner: p[0] x + p[1] here
///     }
///     (pred - y) * (pred - y)
/// }
/// let xs = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
/// let g = fit_grad_vmap(&[1.0, 0.0], &xs, &Tensor::zeros(&[3], DType::F64));
/// assert_eq!(g.shape(), &[3, 2]); // one gradient of `p` per example
/// assert_eq!(g.to_vec::<f64>(), vec![2.0, 2.0, 8.0, 4.0, 18.0, 6.0]);
/// ```
#[proc_macro_attribute]
pub fn vmap(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(item, |item| vmap::expand(attr.into(), item))
}

/// Emits the Jacobian of a `Tensor -> Tensor` function with respect to its (one active)
/// tensor parameter, shaped `[output axes.., input axes..]` (or of a slice function
/// returning a `Vec`, below):
///
/// - `f_jacfwd(args..)`: forward mode, one forward pass batched over the input's basis;
/// - `f_jacrev(args..)`: reverse mode, one reverse sweep batched over the output's basis;
/// - `f_jacobian(args..)`: whichever needs fewer passes for the actual sizes (a reverse pass
///   weighed by its measured cost relative to a forward pass).
///
/// `#[jacobian(wrt(x))]` names the parameter when there are several; the others are
/// constants. A function it calls with `x`-dependent arguments must be `#[vmap] #[grad]`
/// (whose batched counterparts the batched passes call); so must one `#[hessian]` goes
/// through (it also emits the forward-over-reverse counterpart a Hessian calls).
///
/// Scalar code over a slice returning a `Vec` (`fn f(x: &[f64], ..) -> Vec<f64>`, also
/// `f32`) gets the same three functions, returning the rows of the Jacobian
/// (`Vec<Vec<f64>>`, one row per output element): `f_jacfwd` runs one forward pass per
/// element of `x`, `f_jacrev` one forward and reverse sweep per output element. Such a
/// function ends with the Vec it returns (no `return`), and takes its other arguments by
/// shared reference or as numbers.
///
/// ```
/// use ferrax::prelude::*;
///
/// #[jacobian]
/// fn diffs(x: &[f64]) -> Vec<f64> {
///     let mut d = Vec::with_capacity(x.len());
///     for i in 1..x.len() {
///         d.push(x[i] * x[i] - x[i - 1]);
///     }
///     d
/// }
///
/// let j = diffs_jacobian(&[1.0, 2.0, 3.0]);
/// assert_eq!(j, vec![vec![-1.0, 4.0, 0.0], vec![0.0, -1.0, 6.0]]);
/// assert_eq!(diffs_jacfwd(&[1.0, 2.0, 3.0]), diffs_jacrev(&[1.0, 2.0, 3.0]));
/// ```
///
/// ```
/// use ferrax::prelude::*;
///
/// #[jacobian]
/// fn g(x: &Tensor) -> Tensor {
///     x.sin() * x.sum()
/// }
///
/// let x = Tensor::from_vec(vec![0.1, 0.2, 0.3], &[3]);
/// let (jf, jr) = (g_jacfwd(&x), g_jacrev(&x));
/// assert_eq!(jf.shape(), &[3, 3]);
/// for (a, b) in jf.to_vec::<f64>().iter().zip(jr.to_vec::<f64>()) {
///     assert!((a - b).abs() < 1e-12);
/// }
/// ```
#[proc_macro_attribute]
pub fn jacobian(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(item, |item| {
        jacobian::expand(jacobian::Which::Jacobian, attr.into(), item)
    })
}

/// Emits the Hessian of a function with a one-element `Tensor` result with respect to its
/// (one active) tensor parameter: `f_hessian(args..)` shaped `[input axes.., input axes..]`
/// (forward over reverse, batched over the input's basis), and `f_hvp(args.., v)`, the
/// Hessian-vector product in one forward-over-reverse pass.
///
/// Scalar code over a slice (`fn f(x: &[f64], ..) -> f64`) gets `f_hvp(args.., v: &[f64])
/// -> Vec<f64>` and `f_hessian(args..) -> Vec<Vec<f64>>` (its rows, one hvp along each unit
/// vector).
///
/// ```
/// use ferrax::prelude::*;
///
/// #[hessian]
/// fn energy(x: &[f64]) -> f64 {
///     let mut e = 0.0;
///     for i in 1..x.len() {
///         e += (x[i] - x[i - 1]).powi(2) * x[i];
///     }
///     e
/// }
///
/// let h = energy_hessian(&[1.0, 2.0]);
/// // e = (x1 - x0)^2 x1, d = x1 - x0: [[2 x1, -2 x1 - 2 d], [-2 x1 - 2 d, 2 x1 + 4 d]]
/// assert_eq!(h, vec![vec![4.0, -6.0], vec![-6.0, 8.0]]);
/// assert_eq!(energy_hvp(&[1.0, 2.0], &[1.0, 1.0]), vec![-2.0, 2.0]);
/// ```
///
/// ```
/// use ferrax::prelude::*;
///
/// #[hessian]
/// fn h(x: &Tensor) -> Tensor {
///     (x * x * x).sum()
/// }
///
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// assert_eq!(h_hessian(&x).to_vec::<f64>(), vec![6.0, 0.0, 0.0, 12.0]);
/// let v = Tensor::from_vec(vec![1.0, 1.0], &[2]);
/// assert_eq!(h_hvp(&x, &v).to_vec::<f64>(), vec![6.0, 12.0]);
/// ```
#[proc_macro_attribute]
pub fn hessian(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(item, |item| {
        jacobian::expand(jacobian::Which::Hessian, attr.into(), item)
    })
}

/// Gives a function its reverse-mode derivative: `#[custom_vjp(f_bwd)]` with
/// `f_bwd(args.., out: &Out, ct: Out) -> gradients` (a tuple when several parameters are
/// differentiable). Emits `f_vjp`, `f_grad`, `f_value_and_grad` and `f_jvp` (one reverse pass,
/// for a scalar output), which `#[grad]` callers use like any other callee's.
///
/// ```
/// use ferrax::prelude::*;
///
/// /// ln(1 + e^x), computed stably; its derivative sigmoid(x) written by hand.
/// #[custom_vjp(log1pexp_bwd)]
/// fn log1pexp(x: f64) -> f64 {
///     if x > 30.0 { x } else { x.exp().ln_1p() }
/// }
/// fn log1pexp_bwd(x: f64, _out: &f64, ct: f64) -> f64 {
///     ct / (1.0 + (-x).exp())
/// }
///
/// assert_eq!(log1pexp_grad(1000.0), 1.0);
/// ```
#[proc_macro_attribute]
pub fn custom_vjp(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(item, |item| {
        custom::expand(custom::Rule::Vjp, attr.into(), item)
    })
}

/// Gives a function its forward-mode derivative: `#[custom_jvp(f_fwd)]` with
/// `f_fwd(args.., tangents..) -> (value, tangent)`. Emits `f_jvp` (the rule itself) and, for
/// float parameters and result, `f_vjp`, `f_grad` and `f_value_and_grad` (one forward pass
/// per parameter). With tensor parameters, add `#[custom_vjp]` for reverse mode.
///
/// ```
/// use ferrax::prelude::*;
///
/// #[custom_jvp(safe_sqrt_fwd)]
/// fn safe_sqrt(x: f64) -> f64 {
///     x.sqrt()
/// }
/// /// The derivative 1 / (2 sqrt x), taken as 0 at x = 0 instead of infinity.
/// fn safe_sqrt_fwd(x: f64, dx: f64) -> (f64, f64) {
///     let y = x.sqrt();
///     (y, if y > 0.0 { dx / (2.0 * y) } else { 0.0 })
/// }
///
/// assert_eq!(safe_sqrt_grad(0.0), 0.0);
/// assert_eq!(safe_sqrt_grad(4.0), 0.25);
/// ```
#[proc_macro_attribute]
pub fn custom_jvp(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(item, |item| {
        custom::expand(custom::Rule::Jvp, attr.into(), item)
    })
}

/// Implements `Differentiable` for a struct: its leaves are those of its fields, in order;
/// fields marked `#[differentiable(skip)]` are constants (cloned, never added or scaled).
/// The struct must also be `Clone`.
///
/// ```
/// use ferrax::prelude::*;
///
/// #[derive(Clone, Differentiable)]
/// struct Layer {
///     w: Tensor,
///     b: Tensor,
///     #[differentiable(skip)]
///     name: String,
/// }
///
/// let l = Layer { w: Tensor::ones(&[2, 2], DType::F32), b: Tensor::ones(&[2], DType::F32), name: "l1".into() };
/// let g = l.add(&l.scale(2.0));
/// assert_eq!(g.b.to_vec::<f32>(), vec![3.0, 3.0]);
/// assert_eq!(g.name, "l1");
/// ```
#[proc_macro_derive(Differentiable, attributes(differentiable))]
pub fn derive_differentiable(item: TokenStream) -> TokenStream {
    match derive::expand(item.into()) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
