//! A plain reference implementation: n-d arrays of f64 in row-major order, with
//! broadcasting and reductions written as explicit index loops. Obviously correct, slow,
//! and independent of the runtime's strides and kernels.

/// A row-major array of f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Arr {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Every multi-index of `shape`, in row-major order.
pub fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &d in shape {
        let mut next = Vec::new();
        for prefix in &out {
            for i in 0..d {
                let mut p = prefix.clone();
                p.push(i);
                next.push(p);
            }
        }
        out = next;
    }
    out
}

/// NumPy's broadcast of two shapes, or `None`.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; n - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (a, b) = (pad(a), pad(b));
    a.iter()
        .zip(&b)
        .map(|(&x, &y)| {
            if x == y || y == 1 {
                Some(x)
            } else if x == 1 {
                Some(y)
            } else {
                None
            }
        })
        .collect()
}

impl Arr {
    pub fn new(shape: &[usize], data: Vec<f64>) -> Arr {
        assert_eq!(shape.iter().product::<usize>(), data.len());
        Arr {
            shape: shape.to_vec(),
            data,
        }
    }

    pub fn from_fn(shape: &[usize], f: impl Fn(&[usize]) -> f64) -> Arr {
        Arr {
            shape: shape.to_vec(),
            data: indices(shape).iter().map(|i| f(i)).collect(),
        }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The element at a multi-index of this array's shape.
    pub fn get(&self, idx: &[usize]) -> f64 {
        assert_eq!(idx.len(), self.shape.len());
        let mut flat = 0;
        for (&i, &d) in idx.iter().zip(&self.shape) {
            assert!(i < d);
            flat = flat * d + i;
        }
        self.data[flat]
    }

    /// The element seen at `idx` of a (larger) broadcast shape.
    pub fn get_broadcast(&self, idx: &[usize]) -> f64 {
        let lead = idx.len() - self.shape.len();
        let own: Vec<usize> = self
            .shape
            .iter()
            .enumerate()
            .map(|(d, &s)| if s == 1 { 0 } else { idx[lead + d] })
            .collect();
        self.get(&own)
    }

    pub fn broadcast_to(&self, shape: &[usize]) -> Arr {
        Arr::from_fn(shape, |i| self.get_broadcast(i))
    }

    pub fn map(&self, f: impl Fn(f64) -> f64) -> Arr {
        Arr {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&x| f(x)).collect(),
        }
    }

    pub fn zip(&self, other: &Arr, f: impl Fn(f64, f64) -> f64) -> Arr {
        let shape = broadcast(&self.shape, &other.shape).expect("broadcastable");
        Arr::from_fn(&shape, |i| f(self.get_broadcast(i), other.get_broadcast(i)))
    }

    /// Axis `d` of the result is axis `perm[d]` of `self`.
    pub fn permute(&self, perm: &[usize]) -> Arr {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        Arr::from_fn(&shape, |i| {
            let mut src = vec![0; i.len()];
            for (d, &p) in perm.iter().enumerate() {
                src[p] = i[d];
            }
            self.get(&src)
        })
    }

    /// Applies `f` to each 1-d lane along `axis`, which `f` maps to `out_len` values.
    pub fn lanes(&self, axis: usize, out_len: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Arr {
        let mut shape = self.shape.clone();
        shape[axis] = out_len;
        Arr::from_fn(&shape, |i| {
            let lane: Vec<f64> = (0..self.shape[axis])
                .map(|k| {
                    let mut j = i.to_vec();
                    j[axis] = k;
                    self.get(&j)
                })
                .collect();
            f(&lane)[i[axis]]
        })
    }

    /// Reduces `axis` with `f` over each lane; removes the axis unless `keepdim`.
    pub fn reduce(&self, axis: usize, keepdim: bool, f: impl Fn(&[f64]) -> f64) -> Arr {
        let mut r = self.lanes(axis, 1, |l| vec![f(l)]);
        if !keepdim {
            r.shape.remove(axis);
        }
        r
    }
}

pub fn nan_max(v: &[f64]) -> f64 {
    let mut m = f64::NEG_INFINITY;
    for &x in v {
        if x.is_nan() || m.is_nan() {
            m = f64::NAN;
        } else if x > m {
            m = x;
        }
    }
    m
}

pub fn nan_min(v: &[f64]) -> f64 {
    -nan_max(&v.iter().map(|x| -x).collect::<Vec<_>>())
}

/// Index of the first maximum, a NaN counting as the maximum.
pub fn argmax(v: &[f64]) -> f64 {
    if let Some(i) = v.iter().position(|x| x.is_nan()) {
        return i as f64;
    }
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as f64
}

/// The shift used by stable softmax: the max if finite, else 0.
fn shift(v: &[f64]) -> f64 {
    let m = nan_max(v);
    if m.is_finite() { m } else { 0.0 }
}

pub fn logsumexp(v: &[f64]) -> f64 {
    let s = shift(v);
    s + v.iter().map(|x| (x - s).exp()).sum::<f64>().ln()
}

pub fn softmax(v: &[f64]) -> Vec<f64> {
    let s = shift(v);
    let total: f64 = v.iter().map(|x| (x - s).exp()).sum();
    v.iter().map(|x| (x - s).exp() / total).collect()
}

pub fn log_softmax(v: &[f64]) -> Vec<f64> {
    let s = shift(v);
    let l = v.iter().map(|x| (x - s).exp()).sum::<f64>().ln();
    v.iter().map(|x| x - s - l).collect()
}

/// NumPy matmul on arrays of rank >= 1.
pub fn matmul(a: &Arr, b: &Arr) -> Arr {
    let a2 = if a.shape.len() == 1 {
        Arr::new(&[1, a.shape[0]], a.data.clone())
    } else {
        a.clone()
    };
    let b2 = if b.shape.len() == 1 {
        Arr::new(&[b.shape[0], 1], b.data.clone())
    } else {
        b.clone()
    };
    let (ra, rb) = (a2.shape.len(), b2.shape.len());
    let (m, k, n) = (a2.shape[ra - 2], a2.shape[ra - 1], b2.shape[rb - 1]);
    assert_eq!(k, b2.shape[rb - 2]);
    let batch = broadcast(&a2.shape[..ra - 2], &b2.shape[..rb - 2]).expect("batch broadcast");
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let a_full = a2.broadcast_to(&[batch.as_slice(), &[m, k]].concat());
    let b_full = b2.broadcast_to(&[batch.as_slice(), &[k, n]].concat());
    let mut out = Arr::from_fn(&shape, |i| {
        let nb = batch.len();
        let mut acc = 0.0;
        for p in 0..k {
            let ai: Vec<usize> = [&i[..nb], &[i[nb], p]].concat();
            let bi: Vec<usize> = [&i[..nb], &[p, i[nb + 1]]].concat();
            acc += a_full.get(&ai) * b_full.get(&bi);
        }
        acc
    });
    if b.shape.len() == 1 {
        out.shape.pop();
    }
    if a.shape.len() == 1 {
        let at = out.shape.len() - if b.shape.len() == 1 { 1 } else { 2 };
        out.shape.remove(at);
    }
    out
}
