//! Probes beyond the corpus: constructs a user would plausibly write. Scratch, not a target.
#[path = "../../common/mod.rs"]
mod common;
use common::*;
use ferrax::prelude::*;

// 2. Deferred initialisation.
#[grad]
fn deferred_init(x: f64) -> f64 {
    let y: f64;
    if x > 0.0 {
        y = x * x;
    } else {
        y = -x;
    }
    y + x
}

#[test]
fn deferred_initialisation() {
    assert_eq!(deferred_init_grad(2.0), 5.0);
    assert_eq!(deferred_init_grad(-2.0), 0.0);
}

// 3. vec![x; n] with an active fill value.
#[grad]
fn active_fill(x: f64) -> f64 {
    let v = vec![x; 3];
    v[0] * v[1] + v[2]
}

#[test]
fn vec_with_active_fill() {
    assert_eq!(active_fill_grad(2.0), 5.0);
}

// 4. Float-to-int casts of active values (piecewise constant index).
#[grad]
fn float_to_index(x: f64, v: &[f64]) -> f64 {
    let k = (x.abs() * 2.0) as usize % v.len();
    v[k] * x
}

#[test]
fn float_to_int_cast_index() {
    let (gx, gv) = float_to_index_grad(0.75, &[1.0, 2.0, 3.0]);
    assert_eq!(gx, 2.0);
    assert_eq!(gv, vec![0.0, 0.75, 0.0]);
}

// 6. Labeled break out of nested loops.
#[grad]
fn labeled_break(x: f64) -> f64 {
    let mut s = 0.0;
    'outer: for i in 0..5 {
        for j in 0..5 {
            s += x * (i * j) as f64;
            if i * j > 6 {
                break 'outer;
            }
        }
    }
    s
}

#[test]
fn labeled_break_from_nested_loops() {
    let g = labeled_break_grad(1.0);
    assert_eq!(g, labeled_break(1.0));
}

// 7. Constants from std.
#[grad]
fn std_consts(x: f64) -> f64 {
    std::f64::consts::PI * x + core::f64::consts::E * x * x
}

#[test]
fn std_float_constants() {
    assert_eq!(std_consts_grad(1.0), std::f64::consts::PI + 2.0 * std::f64::consts::E);
}

// 8. Mixed precision: f32 function computing in f64 internally.
#[grad]
fn mixed_precision(x: f32) -> f32 {
    let y = x as f64;
    (y * y).sin() as f32
}

#[test]
fn float_to_float_casts() {
    let g = mixed_precision_grad(0.5);
    let e = ((0.25f64).cos() * 1.0) as f32;
    assert!((g - e).abs() < 1e-6, "{g} vs {e}");
}

// 9. Recursion.
#[grad]
fn power_rec(x: f64, n: u32) -> f64 {
    if n == 0 { 1.0 } else { x * power_rec(x, n - 1) }
}

#[test]
fn recursion() {
    assert_eq!(power_rec_grad(2.0, 3), 12.0);
}
