//! Test support for the `#[grad]` corpora: finite differences, tolerant comparison,
//! and the three-way check every corpus function goes through.
//!
//! A function under test is seen through closures over a flat vector `p` of its
//! active inputs (scalars first-to-last, slices and arrays expanded in place), so one
//! checker serves every signature. For each point the checker asserts that
//!
//! 1. `f_grad` matches central finite differences of `f` (relative 1e-6),
//! 2. `f_jvp` along each unit tangent matches the matching gradient component, and its
//!    primal output equals `f`,
//! 3. `f_vjp`'s pullback, fed a cotangent `c`, returns `c` times the gradient, and
//!    `f_value_and_grad` returns `f` and the same gradient.
//!
//! Closed forms are checked separately with [`closed_form`].
#![allow(dead_code)] // each test crate uses a different part of this module

pub mod tensors;

/// Tolerance of the derivative-vs-finite-differences comparison (relative).
pub const FD_RTOL: f64 = 1e-6;
/// Tolerance between two exact derivatives (forward vs reverse mode, closed forms).
pub const AD_RTOL: f64 = 1e-9;

/// Flattens a gradient (or tangent) of any supported shape into a `Vec<f64>`, in
/// parameter order: `f64`/`f32` -> one entry, `Vec`/arrays -> their elements,
/// tuples -> their members' entries one after the other.
pub trait Flat {
    /// Appends this value's entries to `out`.
    fn flat_into(&self, out: &mut Vec<f64>);

    /// This value's entries as a vector.
    fn flat(&self) -> Vec<f64> {
        let mut out = Vec::new();
        self.flat_into(&mut out);
        out
    }
}

impl Flat for f64 {
    fn flat_into(&self, out: &mut Vec<f64>) {
        out.push(*self);
    }
}

impl Flat for f32 {
    fn flat_into(&self, out: &mut Vec<f64>) {
        out.push(f64::from(*self));
    }
}

impl<T: Flat> Flat for Vec<T> {
    fn flat_into(&self, out: &mut Vec<f64>) {
        self.iter().for_each(|t| t.flat_into(out));
    }
}

impl<T: Flat, const N: usize> Flat for [T; N] {
    fn flat_into(&self, out: &mut Vec<f64>) {
        self.iter().for_each(|t| t.flat_into(out));
    }
}

macro_rules! flat_tuple {
    ($($t:ident . $i:tt),+) => {
        impl<$($t: Flat),+> Flat for ($($t,)+) {
            fn flat_into(&self, out: &mut Vec<f64>) {
                $(self.$i.flat_into(out);)+
            }
        }
    };
}
flat_tuple!(A.0, B.1);
flat_tuple!(A.0, B.1, C.2);
flat_tuple!(A.0, B.1, C.2, D.3);
flat_tuple!(A.0, B.1, C.2, D.3, E.4);

/// Copies `p[at..at + N]` into an array (for functions taking `[f64; N]`).
pub fn arr<const N: usize>(p: &[f64], at: usize) -> [f64; N] {
    p[at..at + N]
        .try_into()
        .expect("point too short for the array argument")
}

/// `p[at..at + N]` converted to `f32`.
pub fn arr32<const N: usize>(p: &[f64], at: usize) -> [f32; N] {
    let mut out = [0.0f32; N];
    for (o, v) in out.iter_mut().zip(&p[at..at + N]) {
        *o = *v as f32;
    }
    out
}

/// Whether `a` and `b` agree: `|a - b| <= rtol * max(|a|, |b|) + atol`.
pub fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return false;
    }
    if a == b {
        return true; // also equal infinities
    }
    (a - b).abs() <= rtol * a.abs().max(b.abs()) + atol
}

/// Asserts that two vectors agree elementwise (relative `rtol`, absolute `rtol` near 0).
pub fn assert_all_close(got: &[f64], want: &[f64], rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            close(*a, *b, rtol, rtol),
            "{what}: element {i}: {a} vs {b} (all: {got:?} vs {want:?})"
        );
    }
}

/// Initial step of the finite differences at `x` (Ridders' method shrinks it).
pub fn fd_step(x: f64) -> f64 {
    2e-3 * x.abs().max(1.0)
}

/// One central difference of `f` at `x` along coordinate `i` with step `h`.
fn central(f: &dyn Fn(&[f64]) -> f64, x: &[f64], i: usize, h: f64) -> f64 {
    let mut xp = x.to_vec();
    let mut xm = x.to_vec();
    xp[i] = x[i] + h;
    xm[i] = x[i] - h;
    // Divide by the step that was actually taken (x + h is rounded).
    (f(&xp) - f(&xm)) / (xp[i] - xm[i])
}

/// Partial derivative of `f` at `x` along coordinate `i`, by Ridders' method: central
/// differences at steps shrinking by 1.4 from [`fd_step`], extrapolated to step 0 in a
/// Neville table. Returns the estimate and its error estimate. A kink or jump inside the
/// stencil makes the extrapolations disagree, so the error estimate is then large.
pub fn fd_partial(f: &dyn Fn(&[f64]) -> f64, x: &[f64], i: usize) -> (f64, f64) {
    const CON: f64 = 1.4;
    const CON2: f64 = CON * CON;
    const NTAB: usize = 10;
    let mut h = fd_step(x[i]);
    let mut a = [[0.0f64; NTAB]; NTAB];
    a[0][0] = central(f, x, i, h);
    let (mut best, mut err) = (a[0][0], f64::INFINITY);
    for k in 1..NTAB {
        h /= CON;
        a[0][k] = central(f, x, i, h);
        let mut fac = CON2;
        for j in 1..=k {
            a[j][k] = (a[j - 1][k] * fac - a[j - 1][k - 1]) / (fac - 1.0);
            fac *= CON2;
            let e = (a[j][k] - a[j - 1][k])
                .abs()
                .max((a[j][k] - a[j - 1][k - 1]).abs());
            if e <= err {
                err = e;
                best = a[j][k];
            }
        }
        // Higher orders got worse: rounding has taken over.
        if (a[k][k] - a[k - 1][k - 1]).abs() >= 2.0 * err {
            break;
        }
    }
    (best, err)
}

/// The finite-difference gradient of `f` at `x` (estimates only).
pub fn fd_grad(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    (0..x.len()).map(|i| fd_partial(f, x, i).0).collect()
}

/// Whether an error estimate of [`fd_partial`] is too large for a 1e-6 comparison.
fn fd_err_too_large(estimate: f64, err: f64) -> bool {
    !(estimate.is_finite() && err <= 1e-8 * estimate.abs().max(1.0))
}

/// Whether finite differences at `x` cannot be trusted to 1e-6: a kink or jump of `f`
/// (a branch, `max`, a `break` on an active condition) lies within the stencil, or `f`
/// is too rough there. Such points are skipped by the generated corpus, and rejected as
/// test points by the hand-written one.
pub fn fd_is_unreliable(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> bool {
    (0..x.len()).any(|i| {
        let (d, err) = fd_partial(f, x, i);
        fd_err_too_large(d, err)
    })
}

/// Absolute tolerance floor for comparisons against finite differences: rounding in a
/// difference of two values of size |f| is about eps * |f| / h.
fn fd_atol(fx: f64) -> f64 {
    1e-9 * fx.abs().max(1.0)
}

fn unit(n: usize, i: usize) -> Vec<f64> {
    let mut e = vec![0.0; n];
    e[i] = 1.0;
    e
}

fn fmt_point(x: &[f64]) -> String {
    let parts: Vec<String> = x.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", parts.join(", "))
}

fn expect_len(name: &str, what: &str, x: &[f64], got: &[f64]) {
    assert_eq!(
        got.len(),
        x.len(),
        "{name} at {}: {what} has {} entries, expected one per active input ({}): {got:?}",
        fmt_point(x),
        got.len(),
        x.len()
    );
}

/// Checks a `#[grad]` function three ways at every point (see the module docs).
///
/// - `f(p)`: the original function;
/// - `grad(p)`: `f_grad`;
/// - `jvp(p, d)`: `f_jvp` with tangent `d` (same layout as `p`), returning (value, tangent);
/// - `vjp(p, c)`: `f_vjp`, its pullback applied to cotangent `c`, returning (value, gradient);
/// - `vg(p)`: `f_value_and_grad`.
pub fn check<G1, G2, G3>(
    name: &str,
    points: &[&[f64]],
    f: impl Fn(&[f64]) -> f64,
    grad: impl Fn(&[f64]) -> G1,
    jvp: impl Fn(&[f64], &[f64]) -> (f64, f64),
    vjp: impl Fn(&[f64], f64) -> (f64, G2),
    vg: impl Fn(&[f64]) -> (f64, G3),
) where
    G1: Flat,
    G2: Flat,
    G3: Flat,
{
    assert!(!points.is_empty(), "{name}: no points to check at");
    for x in points {
        check_at(
            name,
            x,
            &f,
            &|p| grad(p).flat(),
            &jvp,
            &|p, c| {
                let (v, g) = vjp(p, c);
                (v, g.flat())
            },
            &|p| {
                let (v, g) = vg(p);
                (v, g.flat())
            },
        );
    }
}

/// [`check`] at one point, on flattened closures.
#[allow(clippy::type_complexity)]
pub fn check_at(
    name: &str,
    x: &[f64],
    f: &dyn Fn(&[f64]) -> f64,
    grad: &dyn Fn(&[f64]) -> Vec<f64>,
    jvp: &dyn Fn(&[f64], &[f64]) -> (f64, f64),
    vjp: &dyn Fn(&[f64], f64) -> (f64, Vec<f64>),
    vg: &dyn Fn(&[f64]) -> (f64, Vec<f64>),
) {
    let at = fmt_point(x);
    let fx = f(x);
    assert!(
        fx.is_finite(),
        "{name} at {at}: f = {fx:?} is not finite; bad test point"
    );
    let g = grad(x);
    expect_len(name, "f_grad", x, &g);
    let gscale = g.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1.0);
    let ad_atol = 1e-12 * gscale;

    // 1. f_grad against finite differences.
    for (i, &gi) in g.iter().enumerate() {
        let (fd, err) = fd_partial(f, x, i);
        assert!(
            !fd_err_too_large(fd, err),
            "{name} at {at}: finite differences along p[{i}] are unreliable (estimate {fd:?}, \
             error estimate {err:.1e}): a kink is near; choose another test point"
        );
        assert!(
            close(gi, fd, FD_RTOL, fd_atol(fx)),
            "{name} at {at}: d/dp[{i}]: f_grad = {gi:?}, finite differences = {fd:?} (rel err {:.2e})",
            rel_err(gi, fd)
        );
    }

    // 2. f_jvp along each unit tangent against the gradient component.
    for (i, &gi) in g.iter().enumerate() {
        let (v, t) = jvp(x, &unit(x.len(), i));
        assert!(
            close(v, fx, 1e-12, 0.0),
            "{name} at {at}: f_jvp value = {v:?}, f = {fx:?}"
        );
        assert!(
            close(t, gi, AD_RTOL, ad_atol),
            "{name} at {at}: f_jvp along e{i} = {t:?}, f_grad[{i}] = {gi:?} (rel err {:.2e})",
            rel_err(t, gi)
        );
    }
    // A general direction exercises tangent linearity: <g, d>.
    let d: Vec<f64> = (0..x.len()).map(|i| 0.5 - 0.3 * i as f64).collect();
    let (_, t) = jvp(x, &d);
    let gd: f64 = g.iter().zip(&d).map(|(a, b)| a * b).sum();
    let gd_scale: f64 = g.iter().zip(&d).map(|(a, b)| (a * b).abs()).sum::<f64>();
    assert!(
        close(t, gd, AD_RTOL, 1e-12 * gd_scale.max(1.0)),
        "{name} at {at}: f_jvp along {d:?} = {t:?}, <f_grad, d> = {gd:?}"
    );

    // 3. f_vjp pullback and f_value_and_grad against f_grad.
    let c = -1.75;
    let (v, gc) = vjp(x, c);
    expect_len(name, "f_vjp pullback", x, &gc);
    assert!(
        close(v, fx, 1e-12, 0.0),
        "{name} at {at}: f_vjp value = {v:?}, f = {fx:?}"
    );
    for i in 0..x.len() {
        assert!(
            close(gc[i], c * g[i], AD_RTOL, ad_atol * c.abs()),
            "{name} at {at}: f_vjp pullback({c})[{i}] = {:?}, {c} * f_grad[{i}] = {:?}",
            gc[i],
            c * g[i]
        );
    }
    let (v, g2) = vg(x);
    expect_len(name, "f_value_and_grad", x, &g2);
    assert!(
        close(v, fx, 1e-12, 0.0),
        "{name} at {at}: f_value_and_grad value = {v:?}, f = {fx:?}"
    );
    for i in 0..x.len() {
        assert!(
            close(g2[i], g[i], AD_RTOL, ad_atol),
            "{name} at {at}: f_value_and_grad gradient[{i}] = {:?}, f_grad[{i}] = {:?}",
            g2[i],
            g[i]
        );
    }
}

/// Checks `f_grad` against a closed-form gradient at every point (relative 1e-9).
pub fn closed_form<G: Flat, E: Flat>(
    name: &str,
    points: &[&[f64]],
    grad: impl Fn(&[f64]) -> G,
    expected: impl Fn(&[f64]) -> E,
) {
    for x in points {
        let (g, e) = (grad(x).flat(), expected(x).flat());
        assert_eq!(
            g.len(),
            e.len(),
            "{name} at {}: gradient length",
            fmt_point(x)
        );
        for i in 0..g.len() {
            assert!(
                close(g[i], e[i], AD_RTOL, 1e-14),
                "{name} at {}: d/dp[{i}]: f_grad = {:?}, closed form = {:?} (rel err {:.2e})",
                fmt_point(x),
                g[i],
                e[i],
                rel_err(g[i], e[i])
            );
        }
    }
}

/// Asserts one derivative value exactly as a convention prescribes (kinks, ties).
pub fn exact(name: &str, what: &str, got: f64, expected: f64) {
    assert!(
        got == expected || (got - expected).abs() <= 1e-15,
        "{name}: {what}: got {got:?}, expected {expected:?}"
    );
}

/// Relative error of `a` against `b`.
pub fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

/// Tolerance of an `f32` derivative against its `f64` twin's (relative).
pub const F32_RTOL: f64 = 2e-5;

/// Checks an `f32` `#[grad]` function at every point against `reference`, the gradient
/// of the same function written in `f64` (itself checked with [`check`]): `f_grad`,
/// `f_jvp` on unit tangents, `f_vjp` and `f_value_and_grad` must all agree with it to
/// f32 precision, and their values with `f`.
#[allow(clippy::too_many_arguments)] // `check`'s five entry points, `f` and the reference
pub fn check_f32<G1, G2, G3>(
    name: &str,
    points: &[&[f64]],
    f: impl Fn(&[f64]) -> f32,
    grad: impl Fn(&[f64]) -> G1,
    jvp: impl Fn(&[f64], &[f64]) -> (f32, f32),
    vjp: impl Fn(&[f64], f32) -> (f32, G2),
    vg: impl Fn(&[f64]) -> (f32, G3),
    reference: impl Fn(&[f64]) -> Vec<f64>,
) where
    G1: Flat,
    G2: Flat,
    G3: Flat,
{
    for x in points {
        let at = fmt_point(x);
        let fx = f(x);
        let r = reference(x);
        let atol = 1e-6 * r.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let agree = |what: &str, i: usize, got: f64, want: f64| {
            assert!(
                close(got, want, F32_RTOL, atol),
                "{name} at {at}: {what}[{i}] = {got:?}, f64 reference = {want:?} (rel err {:.2e})",
                rel_err(got, want)
            );
        };
        let g = grad(x).flat();
        expect_len(name, "f_grad", x, &g);
        for i in 0..x.len() {
            agree("f_grad", i, g[i], r[i]);
            let (v, t) = jvp(x, &unit(x.len(), i));
            assert!(
                close(f64::from(v), f64::from(fx), 1e-6, 0.0),
                "{name} at {at}: f_jvp value {v:?} vs f {fx:?}"
            );
            agree("f_jvp along e_i", i, f64::from(t), r[i]);
        }
        let (v, gc) = vjp(x, 2.0);
        assert!(
            close(f64::from(v), f64::from(fx), 1e-6, 0.0),
            "{name} at {at}: f_vjp value {v:?} vs f {fx:?}"
        );
        let gc = gc.flat();
        expect_len(name, "f_vjp pullback", x, &gc);
        for i in 0..x.len() {
            agree("f_vjp pullback(2) / 2", i, gc[i] / 2.0, r[i]);
        }
        let (v, g2) = vg(x);
        assert!(
            close(f64::from(v), f64::from(fx), 1e-6, 0.0),
            "{name} at {at}: f_value_and_grad value {v:?} vs f {fx:?}"
        );
        let g2 = g2.flat();
        expect_len(name, "f_value_and_grad", x, &g2);
        for i in 0..x.len() {
            agree("f_value_and_grad gradient", i, g2[i], r[i]);
        }
    }
}
