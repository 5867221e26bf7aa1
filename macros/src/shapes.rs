//! Static shape facts: which tensor values have the same shape whatever the inputs. An
//! elementwise primitive's result has the shape of its tensor operands where they share
//! one and the others have no axes; a full reduction has none; a value fitted to another
//! (`sum_to`, `broadcast_like`) has that one's. A transpose then leaves out a `sum_to`
//! that would sum nothing (the cotangent of `t * s`, `s` a 0-d tensor, fitted to `t`), so
//! that the elementwise work on both sides of it fuses into one pass.

use std::collections::HashMap;

use crate::ir::{Atom, Func, Kind, Rhs, Stmt, Var, walk};
use crate::primitives::Prim;

/// A value's shape, as far as the macro can tell.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    /// No axes: a float, an integer, a bool or a 0-d tensor (a full reduction).
    Scalar,
    /// The shape of this immutable variable.
    Of(Var),
    /// Not known: a mutable variable's value, whose shape an assignment may change, or a
    /// value that may not be a tensor at all (a float field read in tensor code has the
    /// tensor kind, and the helpers keep it a float). The same as nothing.
    Unknown,
}

impl Shape {
    /// Whether two values with these shapes have the same shape whatever the inputs.
    pub fn same(self, other: Shape) -> bool {
        match (self, other) {
            (Shape::Scalar, Shape::Scalar) => true,
            (Shape::Of(a), Shape::Of(b)) => a == b,
            _ => false,
        }
    }
}

/// The shapes of the variables a function's `let`s define.
#[derive(Default)]
pub struct Shapes {
    of: HashMap<Var, Shape>,
}

impl Shapes {
    /// The facts of `func`: its parameters declared tensors (`Tensor`, `&Tensor`) have
    /// their own shapes, and every `let` (nested blocks included) of a primitive or a copy
    /// the shape it derives from them.
    pub fn of(func: &Func) -> Shapes {
        let mut of = HashMap::new();
        for p in &func.params {
            if is_tensor_type(&p.ty) {
                of.insert(p.var, Shape::Of(p.var));
            }
        }
        walk(&func.body, &mut |s| {
            if let Stmt::Let { var, rhs } = s
                && !func.info(*var).mutable
            {
                let known = |a: Atom| lookup(func, &of, a);
                let shape = match rhs {
                    Rhs::Prim(p, args) => derive(*p, args, *var, known),
                    Rhs::Atom(a) => known(*a),
                    _ => Shape::Unknown,
                };
                of.insert(*var, shape);
            }
        });
        Shapes { of }
    }

    /// The shape of `a`, a value of `func`.
    pub fn get(&self, func: &Func, a: Atom) -> Shape {
        lookup(func, &self.of, a)
    }
}

/// Whether a parameter's declared type is `Tensor` (behind references).
fn is_tensor_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Reference(r) => is_tensor_type(&r.elem),
        syn::Type::Path(p) => {
            p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Tensor")
        }
        _ => false,
    }
}

/// The shape of `a` from the facts `of`: scalars have none; a tensor variable has its
/// fact, and any other value none known.
fn lookup(func: &Func, of: &HashMap<Var, Shape>, a: Atom) -> Shape {
    let Atom::Var(v) = a else {
        return Shape::Scalar;
    };
    let info = func.info(v);
    match info.kind {
        Kind::Float(_) | Kind::Int | Kind::Bool => Shape::Scalar,
        Kind::Tensor if !info.mutable => of.get(&v).copied().unwrap_or(Shape::Unknown),
        _ => Shape::Unknown,
    }
}

/// The shape of `var = p(args)`, given its arguments' (`shape`): none known where an
/// argument's is not.
pub fn derive(p: Prim, args: &[Atom], var: Var, shape: impl Fn(Atom) -> Shape) -> Shape {
    use Prim::*;
    let shapes: Vec<Shape> = args.iter().map(|a| shape(*a)).collect();
    if shapes.contains(&Shape::Unknown) {
        return Shape::Unknown;
    }
    match p {
        SumTo | BroadcastLike => shapes.get(1).copied().unwrap_or(Shape::Unknown),
        Sum | Mean | MaxAll | MinAll => Shape::Scalar,
        _ if p.fusable() => {
            // the broadcast of the operands: the one shape of those with axes
            let mut one = Shape::Scalar;
            for s in shapes {
                match s {
                    Shape::Scalar => {}
                    s if one == Shape::Scalar => one = s,
                    s if s.same(one) => {}
                    _ => return Shape::Of(var),
                }
            }
            one
        }
        _ => Shape::Of(var),
    }
}
