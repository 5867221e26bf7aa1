// Windows and chunks of a float slice, Vec, array or view are loops of views; of a
// struct's sequence they are not supported (index it in a range loop instead).
use ferrax::prelude::*;

struct Cfg {
    w: Vec<f64>,
}

#[grad(wrt(x))]
fn f(x: &[f64], cfg: &Cfg) -> f64 {
    let mut s = 0.0;
    for w in x.windows(2) {
        s += w[1] - w[0];
    }
    for c in cfg.w.chunks(2) {
        s += c[0] * x[0];
    }
    s
}

fn main() {}
