//! BatchNorm on channels-last values ([`crate::math::Channels::Last`]), `[positions, channels]`:
//! each channel's sums run along the positions a vector of channels at a time, in blocks of
//! [`ROWS`] positions whose f32 sums are added into f64 totals in block order (the same bits on
//! any number of threads). Otherwise the planes' arithmetic: the activation applied as the output
//! is written, and differentiated from the normalized values recomputed from each channel's scale
//! and shift.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{Gradients, Normalized, affine};
use crate::math::epilogue::{Activation, Fixed, Normalization, fixed};
use crate::math::output::overwritten_in_pieces;

/// Positions per block: each channel's f32 sum then takes at most this many values before it is
/// added into the f64 total, fewer than the planes' lanes take ([`super::FLUSH`] over a vector).
const ROWS: usize = 256;

/// Each channel's mean and variance (biased, as BatchNorm normalizes with) over the positions of
/// `x`, in one pass over memory: each block's own mean, then its squared deviations from it while
/// the block is in cache, the blocks' moments then combined in f64 in block order (the same bits
/// on any number of threads).
fn moments(x: &[f32], channels: usize) -> (Vec<f64>, Vec<f64>) {
    let partials: Vec<BlockMoments> = x
        .par_chunks(ROWS * channels.max(1))
        .map(|block| crate::math::arch().dispatch(Moments { block, channels }))
        .collect();
    let count = (x.len() / channels.max(1)).max(1) as f64;
    let mean: Vec<f64> = (0..channels)
        .map(|c| partials.iter().map(|p| f64::from(p.sums[c])).sum::<f64>() / count)
        .collect();
    // Σ(x − m)² over a block is Σ(x − mᵦ)² + 2(mᵦ − m)·Σ(x − mᵦ) + n(mᵦ − m)², around the block's
    // own (f32) mean mᵦ.
    let variance = (0..channels)
        .map(|c| {
            let squares: f64 = partials
                .iter()
                .map(|p| {
                    let (n, own) = (p.positions as f64, f64::from(p.means[c]));
                    let shift = own - mean[c];
                    let around = f64::from(p.sums[c]) - n * own;
                    f64::from(p.squares[c]) + 2.0 * shift * around + n * shift * shift
                })
                .sum();
            squares / count
        })
        .collect();
    (mean, variance)
}

/// A block's per-channel sums, means and squared deviations from those means, in f32.
struct BlockMoments {
    positions: usize,
    sums: Vec<f32>,
    means: Vec<f32>,
    squares: Vec<f32>,
}

/// [`BlockMoments`] of a block of positions, compiled as [`BlockSums`] is.
struct Moments<'a> {
    block: &'a [f32],
    channels: usize,
}

impl pulp::WithSimd for Moments<'_> {
    type Output = BlockMoments;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> BlockMoments {
        let c = self.channels;
        let positions = self.block.len() / c;
        let mut sums = vec![0.0f32; c];
        for row in self.block.chunks_exact(c) {
            sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
        }
        let means: Vec<f32> = sums.iter().map(|s| s / positions as f32).collect();
        let mut squares = vec![0.0f32; c];
        for row in self.block.chunks_exact(c) {
            for ((s, &v), &m) in squares.iter_mut().zip(row).zip(&means) {
                let d = v - m;
                *s += d * d;
            }
        }
        BlockMoments {
            positions,
            sums,
            means,
            squares,
        }
    }
}

/// Where an activation after the normalization passes its gradient: the activation (ReLU or
/// ReLU6; none for the others, whose gradient is applied beforehand) at the normalized values
/// `scale·x + shift` recomputed per channel as [`forward_last`] computed them.
#[derive(Clone, Copy)]
struct Gate<'a> {
    activation: Activation,
    scale: &'a [f32],
    shift: &'a [f32],
}

impl<'a> Gate<'a> {
    fn new(activation: Activation, scale: &'a [f32], shift: &'a [f32]) -> Self {
        let activation = match activation {
            Activation::Relu | Activation::Relu6 => activation,
            Activation::Identity | Activation::Gelu => Activation::Identity,
        };
        Self {
            activation,
            scale,
            shift,
        }
    }
}

/// Each channel's `Σg` and `Σg·(x − mean)` over the positions of the output gradient `grads` and
/// the input `x`, `g` first through the activation's `gate`.
fn gradient_sums(
    grads: &[f32],
    x: &[f32],
    channels: usize,
    mean: &[f32],
    gate: Gate,
) -> Vec<[f64; 2]> {
    let block = ROWS * channels;
    let partials: Vec<[Vec<f32>; 2]> = grads
        .par_chunks(block)
        .zip(x.par_chunks(block))
        .map(|(grads, x)| {
            crate::math::arch().dispatch(BlockSums {
                grads,
                x,
                channels,
                mean,
                gate,
            })
        })
        .collect();
    let mut totals = vec![[0.0; 2]; channels];
    for [first, second] in partials {
        for (total, (a, b)) in totals.iter_mut().zip(first.iter().zip(&second)) {
            total[0] += f64::from(*a);
            total[1] += f64::from(*b);
        }
    }
    totals
}

/// One block's [`gradient_sums`], compiled for each instruction set [`pulp`] chooses among, each
/// activation's loop with its terms inlined.
struct BlockSums<'a> {
    grads: &'a [f32],
    x: &'a [f32],
    channels: usize,
    mean: &'a [f32],
    gate: Gate<'a>,
}

impl pulp::WithSimd for BlockSums<'_> {
    type Output = [Vec<f32>; 2];

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> [Vec<f32>; 2] {
        let c = self.channels;
        let mut sums = [vec![0.0; c], vec![0.0; c]];
        let [first, second] = &mut sums;
        let (gate, mean) = (self.gate, self.mean);
        let rows = self.grads.chunks_exact(c).zip(self.x.chunks_exact(c));
        let halves = [first.as_mut_slice(), second.as_mut_slice()];
        match gate.activation {
            Activation::Relu => gradient_products::<fixed::Relu>(gate, rows, mean, halves),
            Activation::Relu6 => gradient_products::<fixed::Relu6>(gate, rows, mean, halves),
            _ => gradient_products::<fixed::Identity>(gate, rows, mean, halves),
        }
        sums
    }
}

/// Each position's `g` (through `R`'s gradient) and `g·(x − mean)` added to the sums, from its
/// output gradients and its values.
#[inline(always)]
fn gradient_products<'a, R: Fixed>(
    gate: Gate,
    rows: impl Iterator<Item = (&'a [f32], &'a [f32])>,
    mean: &[f32],
    [first, second]: [&mut [f32]; 2],
) {
    for (grads, xs) in rows {
        let terms = grads
            .iter()
            .zip(xs)
            .zip(mean)
            .zip(gate.scale.iter().zip(gate.shift));
        for ((s0, s1), (((&g, &x), &m), (&scale, &shift))) in
            first.iter_mut().zip(second.iter_mut()).zip(terms)
        {
            let g = R::ACTIVATION.gradient(scale * x + shift, g);
            *s0 += g;
            *s1 += g * (x - m);
        }
    }
}

/// The normalized values through `activation` as each block is written (one pass for both), and
/// the statistics (see [`Normalized`]), of `x` as `[positions, channels]`.
pub fn forward_last(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    activation: Activation,
    channels: usize,
) -> Normalized {
    let (mean, variance) = moments(x, channels);
    let (scale, shift) = affine(gamma, beta, &mean, &variance, epsilon);
    let output = overwritten_in_pieces(x.len(), ROWS * channels.max(1), |i, out| {
        let x = &x[i * ROWS * channels..][..out.len()];
        crate::math::arch().dispatch(Affine {
            x,
            out,
            scale: &scale,
            shift: &shift,
            activation,
        })
    });
    Normalized::new(output, mean, variance, scale, shift)
}

/// A block of positions normalized and activated, compiled as [`BlockSums`] is: writes every
/// value of `out` (as long as `x`) and returns it.
struct Affine<'a, 'o> {
    x: &'a [f32],
    out: &'o mut [MaybeUninit<f32>],
    scale: &'a [f32],
    shift: &'a [f32],
    activation: Activation,
}

impl<'o> pulp::WithSimd for Affine<'_, 'o> {
    type Output = &'o mut [f32];

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> &'o mut [f32] {
        let c = self.scale.len();
        assert_eq!(self.out.len(), self.x.len(), "an output per input");
        assert_eq!(self.x.len() % c, 0, "whole positions");
        for (out, x) in self.out.chunks_exact_mut(c).zip(self.x.chunks_exact(c)) {
            let coefficients = self.scale.iter().zip(self.shift);
            for ((out, &x), (&scale, &shift)) in out.iter_mut().zip(x).zip(coefficients) {
                out.write(scale * x + shift);
            }
        }
        // SAFETY: the loop above wrote every value: `out` is as long as `x`, whole positions of
        // `c` (asserted).
        let out = unsafe { self.out.assume_init_mut() };
        self.activation.apply_all(out);
        out
    }
}

/// The gradients of [`forward_last`]'s input (written over `output_grad`), gamma and beta, from
/// the gradient of its output after `activation`, given the `mean`, `variance`, `scale` and `shift`
/// it returned.
pub fn backward_last(
    x: &[f32],
    gamma: &[f32],
    [mean, variance, scale, shift]: [&[f32]; 4],
    epsilon: f64,
    activation: Activation,
    output_grad: &mut [f32],
    channels: usize,
) -> (Vec<f32>, Vec<f32>) {
    let block = ROWS * channels.max(1);
    if activation == Activation::Gelu {
        // GELU's derivative is arithmetic rather than a select: applied in a pass of its own.
        output_grad
            .par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .for_each(|(grads, xs)| {
                for (grads, xs) in grads
                    .chunks_exact_mut(channels)
                    .zip(xs.chunks_exact(channels))
                {
                    let terms = xs.iter().zip(scale.iter().zip(shift));
                    for (g, (&x, (&scale, &shift))) in grads.iter_mut().zip(terms) {
                        *g = Activation::Gelu.gradient(scale * x + shift, *g);
                    }
                }
            });
    }
    let gate = Gate::new(activation, scale, shift);
    let sums = gradient_sums(output_grad, x, channels, mean, gate);
    let count = (x.len() / channels.max(1)).max(1) as f64;
    let gradients = Gradients::new(&sums, gamma, [mean, variance], epsilon, count);
    let [a, b, d]: [Vec<f32>; 3] =
        std::array::from_fn(|k| gradients.coefficients.iter().map(|c| c[k]).collect());
    output_grad
        .par_chunks_mut(block)
        .zip(x.par_chunks(block))
        .for_each(|(grads, xs)| {
            crate::math::arch().dispatch(InputGrad {
                grads,
                xs,
                coefficients: [&a, &b, &d],
                gate,
            });
        });
    (gradients.gamma, gradients.beta)
}

/// A block's input gradient, `a·gate(g) + b·x + d` per channel, compiled as [`BlockSums`] is.
struct InputGrad<'a> {
    grads: &'a mut [f32],
    xs: &'a [f32],
    coefficients: [&'a [f32]; 3],
    gate: Gate<'a>,
}

impl pulp::WithSimd for InputGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self {
            grads,
            xs,
            coefficients,
            gate,
        } = self;
        let c = gate.scale.len();
        let rows = grads.chunks_exact_mut(c).zip(xs.chunks_exact(c));
        match gate.activation {
            Activation::Relu => input_grads::<fixed::Relu>(gate, rows, coefficients),
            Activation::Relu6 => input_grads::<fixed::Relu6>(gate, rows, coefficients),
            _ => input_grads::<fixed::Identity>(gate, rows, coefficients),
        }
    }
}

/// Each position's input gradient, written over its output gradient.
#[inline(always)]
fn input_grads<'a, R: Fixed>(
    gate: Gate,
    rows: impl Iterator<Item = (&'a mut [f32], &'a [f32])>,
    [a, b, d]: [&[f32]; 3],
) {
    for (grads, xs) in rows {
        let affine = gate.scale.iter().zip(gate.shift);
        let coefficients = a.iter().zip(b).zip(d);
        for ((g, &x), ((&scale, &shift), ((&a, &b), &d))) in
            grads.iter_mut().zip(xs).zip(affine.zip(coefficients))
        {
            *g = a * R::ACTIVATION.gradient(scale * x + shift, *g) + b * x + d;
        }
    }
}

/// BatchNorm with given statistics (the running ones, in inference) on channels-last values, in
/// place: each value as [`super::running`] computes it.
pub fn running_last(values: &mut [f32], [gamma, beta, mean, variance]: [&[f32]; 4], epsilon: f64) {
    let std = Normalization::deviations(variance, epsilon);
    let normalization = Normalization {
        gamma,
        beta,
        mean,
        std: &std,
    };
    let channels = gamma.len().max(1);
    values.par_chunks_mut(ROWS * channels).for_each(|block| {
        for position in block.chunks_exact_mut(channels) {
            normalization.apply_across(position);
        }
    });
}
