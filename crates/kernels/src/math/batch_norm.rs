//! BatchNorm with the batch's own statistics, forward and backward, and with given ones
//! ([`running`]), on contiguous
//! `[batch, channels, rest…]` values: each channel's sums are taken over its planes (one per
//! sample) where they lie, so neither way moves the channels first, as Burn's default does with a
//! transposed copy of the input (and, backward, of two gradients), and each way reads the data
//! twice and writes it once.

use rayon::prelude::*;

/// How the values are laid out: `batch` samples of `channels` planes of `size` values.
#[derive(Debug, Clone, Copy)]
pub struct Planes {
    pub batch: usize,
    pub channels: usize,
    pub size: usize,
}

impl Planes {
    fn of_channel<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let Planes { channels, size, .. } = *self;
        (0..self.batch).map(move |n| &values[(n * channels + c) * size..][..size])
    }

    fn count(&self) -> f64 {
        (self.batch * self.size).max(1) as f64
    }
}

/// `Σ f(x)` over `values`, in sixteen running sums so that the loop vectorizes, then in f64.
fn sum(values: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0f32; 16];
    let chunks = values.chunks_exact(16);
    let rest: f64 = chunks.remainder().iter().map(|&v| f64::from(f(v))).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + rest
}

/// `Σ f(x, y)` over pairs of `xs` and `ys`, as [`sum`].
fn sum_pairs(xs: &[f32], ys: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut lanes = [0f32; 16];
    let (x_chunks, y_chunks) = (xs.chunks_exact(16), ys.chunks_exact(16));
    let rest: f64 = (x_chunks.remainder().iter())
        .zip(y_chunks.remainder())
        .map(|(&x, &y)| f64::from(f(x, y)))
        .sum();
    for (x, y) in x_chunks.zip(y_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += f(x, y);
        }
    }
    lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + rest
}

/// Each plane `(n, c)` of `values` replaced by `x → scale[c]·x + shift[c]`, or
/// `x → scale[c]·x + slope[c]·other + shift[c]` with the same plane of `other`.
fn affine(values: &mut [f32], other: Option<&[f32]>, planes: Planes, coefficients: &[[f32; 3]]) {
    let Planes { channels, size, .. } = planes;
    values
        .par_chunks_mut(size.max(1))
        .enumerate()
        .for_each(|(plane, out)| {
            let [scale, slope, shift] = coefficients[plane % channels];
            match other {
                Some(other) => {
                    let other = &other[plane * size..][..size];
                    for (v, &o) in out.iter_mut().zip(other) {
                        *v = scale * *v + slope * o + shift;
                    }
                }
                None => out.iter_mut().for_each(|v| *v = scale * *v + shift),
            }
        });
}

/// The normalized values, and each channel's mean and biased variance.
pub fn forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    planes: Planes,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, variance): (Vec<f64>, Vec<f64>) = (0..planes.channels)
        .into_par_iter()
        .map(|c| {
            let mean = planes.of_channel(x, c).map(|p| sum(p, |v| v)).sum::<f64>() / planes.count();
            let m = mean as f32;
            let squares: f64 = planes
                .of_channel(x, c)
                .map(|p| sum(p, |v| (v - m) * (v - m)))
                .sum();
            (mean, squares / planes.count())
        })
        .unzip();
    let coefficients: Vec<[f32; 3]> = (0..planes.channels)
        .map(|c| {
            let scale = f64::from(gamma[c]) / (variance[c] + epsilon).sqrt();
            let shift = f64::from(beta[c]) - mean[c] * scale;
            [scale as f32, 0.0, shift as f32]
        })
        .collect();
    let mut output = x.to_vec();
    affine(&mut output, None, planes, &coefficients);
    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (output, narrow(mean), narrow(variance))
}

/// BatchNorm with given statistics (the running ones, in inference), in place: each value as
/// Burn's `batch_norm` computes it, `(x − mean) / √(variance + ε) · gamma + beta` rounded step by
/// step as there, in one pass instead of Burn's four over the whole tensor.
pub fn running(
    values: &mut [f32],
    [gamma, beta, mean, variance]: [&[f32]; 4],
    epsilon: f64,
    planes: Planes,
) {
    let Planes { channels, size, .. } = planes;
    let std: Vec<f32> = variance
        .iter()
        .map(|&v| (v + epsilon as f32).sqrt())
        .collect();
    values
        .par_chunks_mut(size.max(1))
        .enumerate()
        .for_each(|(plane, out)| {
            let c = plane % channels;
            let (m, s, g, b) = (mean[c], std[c], gamma[c], beta[c]);
            out.iter_mut().for_each(|v| *v = (*v - m) / s * g + b);
        });
}

/// The gradients of [`forward`]'s input (written over `output_grad`), gamma and beta.
pub fn backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
    output_grad: &mut [f32],
    planes: Planes,
) -> (Vec<f32>, Vec<f32>) {
    let grad: &[f32] = output_grad;
    // Per channel: Σ g and Σ g·(x − mean).
    let sums: Vec<(f64, f64)> = (0..planes.channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            planes
                .of_channel(grad, c)
                .zip(planes.of_channel(x, c))
                .fold((0.0, 0.0), |(g, gx), (gp, xp)| {
                    (
                        g + sum(gp, |v| v),
                        gx + sum_pairs(gp, xp, |g, x| g * (x - m)),
                    )
                })
        })
        .collect();
    let count = planes.count();
    let mut gamma_grad = Vec::with_capacity(planes.channels);
    let mut beta_grad = Vec::with_capacity(planes.channels);
    // x_grad = γ/σ · (g − mean(g) − x̂ · mean(g·x̂)), with x̂ = (x − mean)/σ, as
    // a·g + b·x + d per channel.
    let coefficients: Vec<[f32; 3]> = sums
        .iter()
        .enumerate()
        .map(|(c, &(g, gx))| {
            let inv_std = 1.0 / (f64::from(variance[c]) + epsilon).sqrt();
            gamma_grad.push((gx * inv_std) as f32);
            beta_grad.push(g as f32);
            let a = f64::from(gamma[c]) * inv_std;
            let b = -a * inv_std * inv_std * gx / count;
            let d = -a * g / count - b * f64::from(mean[c]);
            [a as f32, b as f32, d as f32]
        })
        .collect();
    affine(output_grad, Some(x), planes, &coefficients);
    (gamma_grad, beta_grad)
}
