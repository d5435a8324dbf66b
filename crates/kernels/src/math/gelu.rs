//! GELU, `x·Φ(x)`, and its derivative `Φ(x) + x·φ(x)`, in straight-line arithmetic that the
//! compiler lays on vectors: Burn's CPU backend calls the error function of `libm` once per
//! element, which does not vectorize and made GELU a sixth of airnet's training step. Within
//! 1e-6 of the `libm` forms (tested).

use rayon::prelude::*;

use crate::CHUNK;

/// `1 / √(2π)`.
const INVERSE_SQRT_TAU: f32 = 0.398_942_3;

/// Abramowitz and Stegun 7.1.28: `erfc(a) ≈ (1 + a₁a + … + a₆a⁶)⁻¹⁶` for `a ≥ 0`, within 3e-7
/// of it; no exponential to compute, and no cancellation in either tail.
#[inline(always)]
fn erfc_nonnegative(a: f32) -> f32 {
    const A: [f32; 6] = [
        0.070_523_08,
        0.042_282_01,
        0.009_270_527,
        0.000_152_014_3,
        0.000_276_567_2,
        0.000_043_063_8,
    ];
    let p = 1.0 + a * (A[0] + a * (A[1] + a * (A[2] + a * (A[3] + a * (A[4] + a * A[5])))));
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    1.0 / (p8 * p8)
}

/// `Φ(x)`, the standard normal distribution function: `½·erfc(−x/√2)`.
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    let tail = 0.5 * erfc_nonnegative(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    if x >= 0.0 { 1.0 - tail } else { tail }
}

/// `eᵗ` for `t ≤ 0` (to within 2e-7 relative): `2ⁿ · eʳ`, `|r| ≤ ln 2 / 2`, `eʳ` by its
/// Taylor series to the sixth power; 0 below `e⁻⁸⁷`, near the smallest normal float.
#[inline(always)]
fn exp_nonpositive(t: f32) -> f32 {
    // Adding and subtracting 1.5·2²³ rounds to an integer with plain float arithmetic.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HIGH: f32 = 0.693_145_75;
    const LN2_LOW: f32 = 1.428_606_8e-6;
    let below = t < -87.0;
    let t = t.max(-87.0);
    let n = (t * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = t - n * LN2_HIGH - n * LN2_LOW;
    let e = 1.0
        + r * (1.0
            + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r / 720.0)))));
    let value = e * f32::from_bits(((n as i32 + 127) << 23) as u32);
    if below { 0.0 } else { value }
}

/// GELU of one value.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// GELU's derivative at `x`.
#[inline(always)]
pub fn gelu_derivative(x: f32) -> f32 {
    normal_cdf(x) + x * INVERSE_SQRT_TAU * exp_nonpositive(-0.5 * x * x)
}

/// `values ← gelu(values)`, on the calling thread.
pub fn forward(values: &mut [f32]) {
    crate::math::arch().dispatch(Forward { values });
}

/// `grad ← grad · gelu′(x)`, on every core.
pub fn backward(x: &[f32], grad: &mut [f32]) {
    let arch = crate::math::arch();
    grad.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(grad, x)| {
            arch.dispatch(Backward { x, grad });
        });
}

/// A chunk of [`forward`], compiled for each instruction set [`pulp`] chooses among at run time
/// (AVX2, AVX-512: eight or sixteen values at a time rather than SSE2's four); the same
/// operations in each, so the same values.
struct Forward<'a> {
    values: &'a mut [f32],
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for v in self.values {
            *v = gelu(*v);
        }
    }
}

/// A chunk of [`backward`], compiled as [`Forward`] is.
struct Backward<'a> {
    x: &'a [f32],
    grad: &'a mut [f32],
}

impl pulp::WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for (g, &x) in self.grad.iter_mut().zip(self.x) {
            *g *= gelu_derivative(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burn's (and PyTorch's) forms, with `libm`'s error function.
    fn reference(x: f32) -> (f32, f32) {
        let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = INVERSE_SQRT_TAU * (-0.5 * x * x).exp();
        (x * cdf, cdf + x * pdf)
    }

    #[test]
    fn gelu_and_its_derivative_agree_with_the_error_function_forms() {
        let mut worst = (0f32, 0f32);
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let (value, slope) = reference(x);
            worst.0 = worst.0.max((gelu(x) - value).abs() / x.abs().max(1.0));
            worst.1 = worst.1.max((gelu_derivative(x) - slope).abs());
        }
        assert!(worst.0 < 1e-6 && worst.1 < 1e-6, "{worst:?}");
        for x in [-1e30, -100.0, -30.0, 30.0, 100.0, 1e30] {
            let (value, slope) = reference(x);
            assert_eq!((gelu(x), gelu_derivative(x)), (value, slope), "{x}");
        }
        assert!(gelu(f32::NAN).is_nan() && gelu_derivative(f32::NAN).is_nan());
        assert_eq!(gelu(0.0), 0.0);
    }

    #[test]
    fn the_exponential_is_close_everywhere_it_is_used() {
        for i in 0..87_000 {
            let t = -(i as f32) * 1e-3;
            let (ours, libm) = (exp_nonpositive(t), t.exp());
            assert!((ours - libm).abs() <= 3e-7 * libm, "{t}: {ours} vs {libm}");
        }
        assert_eq!(exp_nonpositive(-88.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }
}
