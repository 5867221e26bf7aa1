//! The matrix exponential (`expm`, SciPy's and JAX's `expm`) and its Fréchet derivative
//! (`expm_frechet`), for square matrices in the last two axes, batched over the others.
//!
//! Scaling and squaring with Padé approximants (Higham 2005, "The scaling and squaring
//! method for the matrix exponential revisited", as SciPy and JAX): the degree is the
//! lowest whose error bound holds at the largest 1-norm in the batch (3, 5, 7, 9 or 13 in
//! f64; 3, 5 or 7 in f32), or else the matrices are scaled by `2^-s` to the last degree's
//! bound and the approximant squared `s` times. The approximant is `(V - U)^-1 (V + U)`,
//! from products and one LU solve, so the same code runs on every device.
//!
//! The Fréchet derivative `L(A, E)`, the derivative of `expm` at `A` in direction `E`, is
//! computed beside the approximant from the derivatives of its powers, one factorization
//! for both and squared along (Al-Mohy and Higham 2009): about three times the cost of
//! `expm`, where the upper right block of `expm([[A, E], [0, A]])` (Mathias 1996), which
//! it equals, costs eight. The transforms
//! differentiate `expm` through it: `L(A, .)` is linear, its transpose is `L(Aᵀ, .)`, and
//! its own derivative in `A` is a block of the same construction one size up, so
//! derivatives of any order follow.

use crate::element::DType;
use crate::error::{Error, Result, unwrap};
use crate::tensor::Tensor;

/// Padé numerator coefficients `b_0..b_m` for the degrees used.
const PADE_3: [f64; 4] = [120.0, 60.0, 12.0, 1.0];
const PADE_5: [f64; 6] = [30240.0, 15120.0, 3360.0, 420.0, 30.0, 1.0];
const PADE_7: [f64; 8] = [
    17297280.0, 8648640.0, 1995840.0, 277200.0, 25200.0, 1512.0, 56.0, 1.0,
];
const PADE_9: [f64; 10] = [
    17643225600.0,
    8821612800.0,
    2075673600.0,
    302702400.0,
    30270240.0,
    2162160.0,
    110880.0,
    3960.0,
    90.0,
    1.0,
];
const PADE_13: [f64; 14] = [
    64764752532480000.0,
    32382376266240000.0,
    7771770303897600.0,
    1187353796428800.0,
    129060195264000.0,
    10559470521600.0,
    670442572800.0,
    33522128640.0,
    1323241920.0,
    40840800.0,
    960960.0,
    16380.0,
    182.0,
    1.0,
];

/// The largest 1-norm at which each degree's backward error is below the unit roundoff
/// (Higham 2005, table 2.3; for f32 as in JAX).
const THETA_F64: [(usize, f64); 5] = [
    (3, 1.495585217958292e-2),
    (5, 2.539_398_330_063_23e-1),
    (7, 9.504178996162932e-1),
    (9, 2.097847961257068e0),
    (13, 5.371920351148152e0),
];
/// The same bounds for the Fréchet derivative (Al-Mohy and Higham 2009, table 6.1, as
/// SciPy's `expm_frechet`), and for f32 those of `expm` lowered in the same proportion.
const ELL_F64: [(usize, f64); 5] = [
    (3, 1.08e-2),
    (5, 2.00e-1),
    (7, 7.83e-1),
    (9, 1.78e0),
    (13, 4.74e0),
];
const ELL_F32: [(usize, f64); 3] = [(3, 3.4e-1), (5, 1.5e0), (7, 3.4e0)];
const THETA_F32: [(usize, f64); 3] = [
    (3, 4.258730016922831e-1),
    (5, 1.880152677804762e0),
    (7, 3.925_724_783_138_66e0),
];

impl Tensor {
    /// The matrix exponential `e^A = sum_k A^k / k!` of the square matrices in the last
    /// two axes (`scipy.linalg.expm`, `jax.scipy.linalg.expm`), by scaling and squaring
    /// with Padé approximants. Panics for non-square or non-float input, or where a
    /// matrix's norm is not finite; see [`Tensor::try_expm`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // a rotation generator: e^(t J) is the rotation by t
    /// let j = Tensor::from_vec(vec![0.0f64, -1.0, 1.0, 0.0], &[2, 2]);
    /// let r = (&j * std::f64::consts::FRAC_PI_2).expm().to_vec::<f64>();
    /// assert!((r[0]).abs() < 1e-15 && (r[1] + 1.0).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn expm(&self) -> Tensor {
        unwrap(self.try_expm())
    }

    /// [`Tensor::expm`], returning an error instead of panicking.
    pub fn try_expm(&self) -> Result<Tensor> {
        Ok(scaled_pade("expm", self, None, &THETA_F64, &THETA_F32)?.0)
    }

    /// The Fréchet derivative of [`Tensor::expm`] at `self` in direction `e`,
    /// `L(A, E) = lim (expm(A + h E) - expm(A)) / h`: the upper right block of
    /// `expm([[A, E], [0, A]])`. `e` has `self`'s shape. Panics for non-square, mismatched
    /// or non-float input; see [`Tensor::try_expm_frechet`].
    ///
    /// ```
    /// # use ferrax_runtime::prelude::*;
    /// // for commuting A and E, L(A, E) = E e^A
    /// let a = Tensor::from_vec(vec![0.5f64, 0.0, 0.0, -1.0], &[2, 2]);
    /// let e = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 2.0], &[2, 2]);
    /// let l = a.expm_frechet(&e).to_vec::<f64>();
    /// assert!((l[0] - 0.5f64.exp()).abs() < 1e-14 && (l[3] - 2.0 * (-1.0f64).exp()).abs() < 1e-14);
    /// ```
    #[track_caller]
    pub fn expm_frechet(&self, e: &Tensor) -> Tensor {
        unwrap(self.try_expm_frechet(e))
    }

    /// [`Tensor::expm_frechet`], returning an error instead of panicking.
    pub fn try_expm_frechet(&self, e: &Tensor) -> Result<Tensor> {
        const OP: &str = "expm_frechet";
        Tensor::expect_same_float(OP, self, e)?;
        if e.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().to_vec(),
                rhs: e.shape().to_vec(),
                reason: "differ: the direction has the matrices' shape".into(),
            });
        }
        let (_, l) = scaled_pade(OP, self, Some(e), &ELL_F64, &ELL_F32)?;
        Ok(l.expect("a derivative where a direction is given"))
    }
}

/// `e^A` (and, given a direction `E`, its Fréchet derivative `L(A, E)`): the lowest Padé
/// degree whose bound in `thetas` holds at the largest 1-norm of the batch, or the last
/// degree after scaling by `2^-s`, then `s` squarings (`L <- R L + L R`, `R <- R R`).
fn scaled_pade(
    op: &'static str,
    a: &Tensor,
    e: Option<&Tensor>,
    f64_thetas: &[(usize, f64)],
    f32_thetas: &[(usize, f64)],
) -> Result<(Tensor, Option<Tensor>)> {
    let n = square_float(op, a)?;
    if a.numel() == 0 {
        return Ok((a.zeros_like(), e.map(Tensor::zeros_like)));
    }
    // the largest 1-norm (column sums) in the batch
    let largest = a.try_abs()?.try_sum_axis(-2, false)?.try_max()?;
    let norm = if a.dtype() == DType::F32 {
        largest.item::<f32>() as f64
    } else {
        largest.item::<f64>()
    };
    if !norm.is_finite() {
        return Err(Error::InvalidArgument {
            op,
            message: format!(
                "a matrix of shape {:?} has a 1-norm of {norm}: its exponential is not finite",
                a.shape()
            ),
        });
    }
    let thetas = if a.dtype() == DType::F32 {
        f32_thetas
    } else {
        f64_thetas
    };
    let eye = Tensor::eye(n, a.dtype()).try_to_device(&a.device())?;
    if let Some(&(m, _)) = thetas.iter().find(|&&(_, theta)| norm <= theta) {
        return pade(a, e, &eye, m);
    }
    let (m, theta) = thetas[thetas.len() - 1];
    let s = (norm / theta).log2().ceil().max(0.0) as i32;
    let scale = 0.5f64.powi(s);
    let e = e.map(|e| e * scale);
    let (mut r, mut l) = pade(&(a * scale), e.as_ref(), &eye, m)?;
    for _ in 0..s {
        if let Some(d) = l {
            l = Some(&r.try_matmul(&d)? + &d.try_matmul(&r)?);
        }
        r = r.try_matmul(&r)?;
    }
    Ok((r, l))
}

/// The side of the square float matrices in the last two axes of `a`.
fn square_float(op: &'static str, a: &Tensor) -> Result<usize> {
    a.expect_float(op)?;
    let (rows, cols) = a.matrix_dims(op)?;
    if rows != cols {
        return Err(Error::InvalidArgument {
            op,
            message: format!("needs square matrices, got shape {:?}", a.shape()),
        });
    }
    Ok(rows)
}

/// The degree-`m` Padé approximant of `e^A`, `R = (V - U)^-1 (V + U)` with `U` the odd
/// part and `V` the even part of the numerator; given `E`, also its derivative in
/// direction `E`, `(V - U)^-1 (L_U + L_V + (L_U - L_V) R)` (Al-Mohy and Higham 2009,
/// algorithm 6.4), from the derivatives `M_2k` of the even powers, one factorization
/// for both.
fn pade(
    a: &Tensor,
    e: Option<&Tensor>,
    eye: &Tensor,
    m: usize,
) -> Result<(Tensor, Option<Tensor>)> {
    let b: &[f64] = match m {
        3 => &PADE_3,
        5 => &PADE_5,
        7 => &PADE_7,
        9 => &PADE_9,
        _ => &PADE_13,
    };
    let sum = |terms: &[(&Tensor, f64)]| -> Tensor {
        let mut acc = terms[0].0 * terms[0].1;
        for (t, c) in &terms[1..] {
            acc = &acc + &(*t * *c);
        }
        acc
    };
    // even powers A^2k and, with a direction, their derivatives M_2k
    let a2 = a.try_matmul(a)?;
    let mut powers = vec![eye.clone(), a2.clone()];
    let mut derivs: Vec<Tensor> = Vec::new();
    if let Some(e) = e {
        derivs.push(e.zeros_like());
        derivs.push(&a.try_matmul(e)? + &e.try_matmul(a)?);
    }
    let top = if m < 13 { m / 2 } else { 3 };
    while powers.len() <= top {
        let k = powers.len() - 1;
        powers.push(powers[k].try_matmul(&a2)?);
        if e.is_some() {
            let d = &powers[k].try_matmul(&derivs[1])? + &derivs[k].try_matmul(&a2)?;
            derivs.push(d);
        }
    }
    let (u, v, lu_lv) = if m < 13 {
        let odd: Vec<(&Tensor, f64)> = powers
            .iter()
            .enumerate()
            .map(|(k, p)| (p, b[2 * k + 1]))
            .collect();
        let even: Vec<(&Tensor, f64)> = powers
            .iter()
            .enumerate()
            .map(|(k, p)| (p, b[2 * k]))
            .collect();
        let inner = sum(&odd);
        let u = a.try_matmul(&inner)?;
        let v = sum(&even);
        let lu_lv = match e {
            Some(e) => {
                let dodd: Vec<(&Tensor, f64)> = derivs
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(k, d)| (d, b[2 * k + 1]))
                    .collect();
                let deven: Vec<(&Tensor, f64)> = derivs
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(k, d)| (d, b[2 * k]))
                    .collect();
                let lu = &a.try_matmul(&sum(&dodd))? + &e.try_matmul(&inner)?;
                Some((lu, sum(&deven)))
            }
            None => None,
        };
        (u, v, lu_lv)
    } else {
        let (a4, a6) = (&powers[2], &powers[3]);
        let w1 = sum(&[(a6, b[13]), (a4, b[11]), (&a2, b[9])]);
        let w2 = sum(&[(a6, b[7]), (a4, b[5]), (&a2, b[3]), (eye, b[1])]);
        let z1 = sum(&[(a6, b[12]), (a4, b[10]), (&a2, b[8])]);
        let z2 = sum(&[(a6, b[6]), (a4, b[4]), (&a2, b[2]), (eye, b[0])]);
        let w = &a6.try_matmul(&w1)? + &w2;
        let u = a.try_matmul(&w)?;
        let v = &a6.try_matmul(&z1)? + &z2;
        let lu_lv = match e {
            Some(e) => {
                let (m2, m4, m6) = (&derivs[1], &derivs[2], &derivs[3]);
                let lw1 = sum(&[(m6, b[13]), (m4, b[11]), (m2, b[9])]);
                let lw2 = sum(&[(m6, b[7]), (m4, b[5]), (m2, b[3])]);
                let lz1 = sum(&[(m6, b[12]), (m4, b[10]), (m2, b[8])]);
                let lz2 = sum(&[(m6, b[6]), (m4, b[4]), (m2, b[2])]);
                let lw = &(&a6.try_matmul(&lw1)? + &m6.try_matmul(&w1)?) + &lw2;
                let lu = &a.try_matmul(&lw)? + &e.try_matmul(&w)?;
                let lv = &(&a6.try_matmul(&lz1)? + &m6.try_matmul(&z1)?) + &lz2;
                Some((lu, lv))
            }
            None => None,
        };
        (u, v, lu_lv)
    };
    let factors = (&v - &u).try_lu_factor()?;
    let r = factors.try_lu_solve(&(&v + &u), false)?;
    let l = match lu_lv {
        Some((lu, lv)) => {
            let rhs = &(&lu + &lv) + &(&lu - &lv).try_matmul(&r)?;
            Some(factors.try_lu_solve(&rhs, false)?)
        }
        None => None,
    };
    Ok((r, l))
}
