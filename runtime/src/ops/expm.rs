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
//! the upper right block of `expm([[A, E], [0, A]])` (Mathias 1996). The transforms
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
        const OP: &str = "expm";
        let n = square_float(OP, self)?;
        if self.numel() == 0 {
            return Ok(self.zeros_like());
        }
        // the largest 1-norm (column sums) in the batch
        let largest = self.try_abs()?.try_sum_axis(-2, false)?.try_max()?;
        let norm = if self.dtype() == DType::F32 {
            largest.item::<f32>() as f64
        } else {
            largest.item::<f64>()
        };
        if !norm.is_finite() {
            return Err(Error::InvalidArgument {
                op: OP,
                message: format!(
                    "a matrix of shape {:?} has a 1-norm of {norm}: its exponential is not finite",
                    self.shape()
                ),
            });
        }
        let thetas: &[(usize, f64)] = if self.dtype() == DType::F32 {
            &THETA_F32
        } else {
            &THETA_F64
        };
        let eye = Tensor::eye(n, self.dtype()).try_to_device(&self.device())?;
        if let Some(&(m, _)) = thetas.iter().find(|&&(_, theta)| norm <= theta) {
            return pade(self, &eye, m);
        }
        let (m, theta) = thetas[thetas.len() - 1];
        let s = (norm / theta).log2().ceil().max(0.0) as i32;
        let scaled = self.try_binary_scalar(
            OP,
            crate::cpu::kernels::BinaryOp::Mul,
            0.5f64.powi(s),
            false,
        )?;
        let mut r = pade(&scaled, &eye, m)?;
        for _ in 0..s {
            r = r.try_matmul(&r)?;
        }
        Ok(r)
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
        let n = square_float(OP, self)?;
        Tensor::expect_same_float(OP, self, e)?;
        if e.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().to_vec(),
                rhs: e.shape().to_vec(),
                reason: "differ: the direction has the matrices' shape".into(),
            });
        }
        let top = Tensor::try_concat(&[self, e], -1)?;
        let bottom = Tensor::try_concat(&[&self.zeros_like(), self], -1)?;
        let block = Tensor::try_concat(&[&top, &bottom], -2)?;
        block
            .try_expm()?
            .try_slice(-2, 0, n)?
            .try_slice(-1, n, 2 * n)
    }
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

/// The degree-`m` Padé approximant of `e^A`, `(V - U)^-1 (V + U)` with `U` the odd part
/// and `V` the even part of the numerator.
fn pade(a: &Tensor, eye: &Tensor, m: usize) -> Result<Tensor> {
    let b: &[f64] = match m {
        3 => &PADE_3,
        5 => &PADE_5,
        7 => &PADE_7,
        9 => &PADE_9,
        _ => &PADE_13,
    };
    let scale = |t: &Tensor, c: f64| t * c;
    let a2 = a.try_matmul(a)?;
    let (u_inner, v) = if m < 13 {
        // powers A^2, A^4, .. up to A^(m-1)
        let mut powers = vec![eye.clone(), a2.clone()];
        while 2 * powers.len() <= m {
            let next = powers[powers.len() - 1].try_matmul(&a2)?;
            powers.push(next);
        }
        let mut u = scale(eye, b[1]);
        let mut v = scale(eye, b[0]);
        for (k, p) in powers.iter().enumerate().skip(1) {
            u = &u + &scale(p, b[2 * k + 1]);
            v = &v + &scale(p, b[2 * k]);
        }
        (u, v)
    } else {
        let a4 = a2.try_matmul(&a2)?;
        let a6 = a4.try_matmul(&a2)?;
        let high_u = &(&scale(&a6, b[13]) + &scale(&a4, b[11])) + &scale(&a2, b[9]);
        let u = &(&(&a6.try_matmul(&high_u)? + &scale(&a6, b[7])) + &scale(&a4, b[5]))
            + &(&scale(&a2, b[3]) + &scale(eye, b[1]));
        let high_v = &(&scale(&a6, b[12]) + &scale(&a4, b[10])) + &scale(&a2, b[8]);
        let v = &(&(&a6.try_matmul(&high_v)? + &scale(&a6, b[6])) + &scale(&a4, b[4]))
            + &(&scale(&a2, b[2]) + &scale(eye, b[0]));
        (u, v)
    };
    let u = a.try_matmul(&u_inner)?;
    (&v - &u).try_solve(&(&v + &u))
}
