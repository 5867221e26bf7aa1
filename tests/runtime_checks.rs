//! Bad runtime input to generated code: tangents of the wrong length are a clear error naming
//! the function and both lengths, not an index panic inside generated code (too short) or a
//! silently ignored tail (too long).

use ferrax::prelude::*;

#[grad]
fn rosen(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() - 1 {
        let a = 1.0 - x[i];
        let b = x[i + 1] - x[i] * x[i];
        s += a * a + 100.0 * b * b;
    }
    s
}

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> Option<String> {
    let e = std::panic::catch_unwind(f).err()?;
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
}

#[test]
fn a_tangent_of_the_wrong_length_is_a_clear_error() {
    let x = [0.5, 1.0, 2.0];
    let (v, _) = rosen_jvp(&x, &[1.0, 0.0, 0.0]);
    assert_eq!(v, rosen(&x));
    for dx in [&[1.0, 0.0][..], &[1.0, 0.0, 0.0, 0.0][..]] {
        let m = panic_message(|| {
            rosen_jvp(&x, dx);
        });
        let m = m.unwrap_or_else(|| panic!("rosen_jvp accepted a tangent of length {}", dx.len()));
        assert!(
            m.contains("rosen_jvp") && m.contains('3') && m.contains(&dx.len().to_string()),
            "unclear message for a tangent of length {} against x of length 3: {m:?}",
            dx.len()
        );
    }
}
