//! BatchNorm on channels-last values ([`crate::math::Channels::Last`]), `[positions, channels]`:
//! each channel's sums run along the positions a vector of channels at a time, in blocks of
//! [`ROWS`] positions whose f32 sums are added into f64 totals in block order (the same bits on
//! any number of threads). Otherwise the planes' arithmetic: the activation applied as the output
//! is written, and differentiated from the normalized values recomputed from each channel's scale
//! and shift.

use rayon::prelude::*;

use super::{Gradients, Normalized, affine};
use crate::math::epilogue::{Activation, Fixed, Normalization, fixed};
use crate::math::output::written_in_pieces;

/// Positions per block: each channel's f32 sum then takes at most this many values before it is
/// added into the f64 total, fewer than the planes' lanes take ([`super::FLUSH`] over a vector).
const ROWS: usize = 256;

/// What a channel's sums are of, given per channel: `Σx`; `Σ(x − mean)²`; or, for a gradient `g`
/// and the input `x`, `Σg` and `Σg·(x − mean)`, `g` first through the activation's gate.
#[derive(Clone, Copy)]
enum Summand<'a> {
    Values,
    SquaredDeviations(&'a [f32]),
    GradientProducts(&'a [f32], Gate<'a>),
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

/// Each channel's two sums `summand` names over the positions of `values` (and the same positions
/// of `other`, the input where `values` is a gradient).
fn sums(values: &[f32], other: &[f32], channels: usize, summand: Summand) -> Vec<[f64; 2]> {
    let block = ROWS * channels;
    let partials: Vec<[Vec<f32>; 2]> = values
        .par_chunks(block)
        .zip(other.par_chunks(block))
        .map(|(values, other)| {
            crate::math::arch().dispatch(BlockSums {
                values,
                other,
                channels,
                summand,
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

/// One block's sums, compiled for each instruction set [`pulp`] chooses among, each summand's
/// loop with its terms inlined.
struct BlockSums<'a> {
    values: &'a [f32],
    other: &'a [f32],
    channels: usize,
    summand: Summand<'a>,
}

impl pulp::WithSimd for BlockSums<'_> {
    type Output = [Vec<f32>; 2];

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> [Vec<f32>; 2] {
        let c = self.channels;
        let mut sums = [vec![0.0; c], vec![0.0; c]];
        let [first, second] = &mut sums;
        match self.summand {
            Summand::Values => {
                for row in self.values.chunks_exact(c) {
                    first.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
                }
            }
            Summand::SquaredDeviations(mean) => {
                for row in self.values.chunks_exact(c) {
                    for ((s, &v), &m) in first.iter_mut().zip(row).zip(mean) {
                        let d = v - m;
                        *s += d * d;
                    }
                }
            }
            Summand::GradientProducts(mean, gate) => {
                let rows = self.values.chunks_exact(c).zip(self.other.chunks_exact(c));
                let sums = [first.as_mut_slice(), second.as_mut_slice()];
                match gate.activation {
                    Activation::Relu => gradient_products::<fixed::Relu>(gate, rows, mean, sums),
                    Activation::Relu6 => gradient_products::<fixed::Relu6>(gate, rows, mean, sums),
                    _ => gradient_products::<fixed::Identity>(gate, rows, mean, sums),
                }
            }
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
    let count = (x.len() / channels.max(1)).max(1) as f64;
    let mean: Vec<f64> = sums(x, x, channels, Summand::Values)
        .iter()
        .map(|[sum, _]| sum / count)
        .collect();
    let narrow: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let variance: Vec<f64> = sums(x, x, channels, Summand::SquaredDeviations(&narrow))
        .iter()
        .map(|[squares, _]| squares / count)
        .collect();
    let (scale, shift) = affine(gamma, beta, &mean, &variance, epsilon);
    let output = written_in_pieces(
        x.len(),
        ROWS * channels.max(1),
        || (),
        |(), i, out| {
            let x = &x[i * ROWS * channels..][..out.len()];
            crate::math::arch().dispatch(Affine {
                x,
                out,
                scale: &scale,
                shift: &shift,
                activation,
            });
        },
    );
    Normalized::new(output, mean, variance, scale, shift)
}

/// A block of positions normalized and activated, compiled as [`BlockSums`] is.
struct Affine<'a> {
    x: &'a [f32],
    out: &'a mut [f32],
    scale: &'a [f32],
    shift: &'a [f32],
    activation: Activation,
}

impl pulp::WithSimd for Affine<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let c = self.scale.len();
        for (out, x) in self.out.chunks_exact_mut(c).zip(self.x.chunks_exact(c)) {
            let coefficients = self.scale.iter().zip(self.shift);
            for ((out, &x), (&scale, &shift)) in out.iter_mut().zip(x).zip(coefficients) {
                *out = scale * x + shift;
            }
        }
        self.activation.apply_all(self.out);
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
    let sums = sums(
        output_grad,
        x,
        channels,
        Summand::GradientProducts(mean, gate),
    );
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
