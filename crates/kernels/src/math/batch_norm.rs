//! BatchNorm with the batch's own statistics, forward and backward, and with given ones
//! ([`running`]), on contiguous
//! `[batch, channels, rest…]` values: each channel's sums are taken over its planes (one per
//! sample) where they lie, so neither way moves the channels first, as Burn's default does with a
//! transposed copy of the input (and, backward, of two gradients), and each way reads the data
//! twice and writes it once. An activation after the normalization is applied as the output is
//! written, and differentiated within those two passes from the normalized values recomputed
//! (GELU's derivative in one more).

mod channels_last;

pub use channels_last::{backward_last, forward_last, running_last};

use rayon::prelude::*;

use super::epilogue::{Activation, Fixed, Normalization, fixed};
use super::output::written_in_pieces;

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

/// How many of a channel's values the vector lanes take in before they are added into the f64
/// totals (checked after each plane): few enough a lane that f32 rounding stays near an f64 sum's
/// however large the batch.
const FLUSH: usize = 4096;

/// What a channel's sums are of, with the channel's mean `m`: `Σx`; `Σ(x − m)²`; or, for a
/// gradient `g` and the input `x`, `Σg` and `Σg·(x − m)`, `g` first through the gate.
#[derive(Clone, Copy)]
enum Summand {
    Values,
    SquaredDeviations(f32),
    GradientProducts(f32, Gate),
}

/// Where an activation after the normalization passes its gradient, from the normalized value
/// `scale·x + shift` recomputed as [`forward`] computed it: everywhere (none, or one that
/// scales the gradient instead, applied beforehand), or where ReLU or ReLU6 passes it (see
/// [`Activation::gradient`]), a select on vectors.
#[derive(Clone, Copy)]
enum Gate {
    Open,
    Relu([f32; 2]),
    Relu6([f32; 2]),
}

impl Gate {
    fn new(activation: Activation, affine: [f32; 2]) -> Self {
        match activation {
            Activation::Relu => Self::Relu(affine),
            Activation::Relu6 => Self::Relu6(affine),
            Activation::Identity | Activation::Gelu => Self::Open,
        }
    }

    /// The gradient `g` of the activation's output through it, where BatchNorm's input was `x`.
    #[inline(always)]
    fn pass<S: pulp::Simd>(self, simd: S, g: S::f32s, x: S::f32s) -> S::f32s {
        let normalized = |[scale, shift]: [f32; 2]| {
            simd.add_f32s(
                simd.mul_f32s(simd.splat_f32s(scale), x),
                simd.splat_f32s(shift),
            )
        };
        let zero = simd.splat_f32s(0.0);
        let blocked = match self {
            Self::Open => return g,
            // NaN compares false: it passes, as in `Activation::gradient`.
            Self::Relu(affine) => simd.less_than_or_equal_f32s(normalized(affine), zero),
            Self::Relu6(affine) => {
                let z = normalized(affine);
                simd.or_m32s(
                    simd.less_than_f32s(z, zero),
                    simd.greater_than_f32s(z, simd.splat_f32s(6.0)),
                )
            }
        };
        simd.select_f32s(blocked, zero, g)
    }
}

/// The sums `summand` names over the pairs of a channel's `(x, y)` planes (`y` the same
/// positions of a second tensor, or `x` again), in one vector register each, compiled for each
/// instruction set [`pulp`] chooses among. The lanes run on across planes, each plane's
/// remainder included (a partial load, masked), because the planes of the last blocks are small
/// (5x5, 10x10): reducing the lanes and adding the remainder in f64 plane by plane took longer
/// than the sums themselves.
fn channel_sums<'a>(
    planes: impl Iterator<Item = (&'a [f32], &'a [f32])>,
    summand: Summand,
) -> [f64; 2] {
    crate::math::arch().dispatch(ChannelSums { planes, summand })
}

struct ChannelSums<P> {
    planes: P,
    summand: Summand,
}

impl<'a, P: Iterator<Item = (&'a [f32], &'a [f32])>> pulp::WithSimd for ChannelSums<P> {
    type Output = [f64; 2];

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> [f64; 2] {
        let zero = simd.splat_f32s(0.0);
        let planes = self.planes;
        // One loop per summand (and gate), each compiled with its terms inlined (a closure
        // left out of line would run without the instruction set's features).
        match self.summand {
            Summand::Values => summed(simd, planes, |x, _, _| [x, zero]),
            Summand::SquaredDeviations(m) => summed(simd, planes, |x, _, valid| {
                let d = simd.mul_f32s(simd.sub_f32s(x, simd.splat_f32s(m)), valid);
                [simd.mul_f32s(d, d), zero]
            }),
            Summand::GradientProducts(m, gate) => {
                let m = simd.splat_f32s(m);
                let products = |g: S::f32s, x: S::f32s| [g, simd.mul_f32s(g, simd.sub_f32s(x, m))];
                match gate {
                    Gate::Open => summed(simd, planes, |g, x, _| products(g, x)),
                    Gate::Relu(affine) => summed(simd, planes, |g, x, _| {
                        products(Gate::Relu(affine).pass(simd, g, x), x)
                    }),
                    Gate::Relu6(affine) => summed(simd, planes, |g, x, _| {
                        products(Gate::Relu6(affine).pass(simd, g, x), x)
                    }),
                }
            }
        }
    }
}

/// The two sums of `terms(x, y, valid)` over the planes' vectors (`valid` one in the lanes that
/// hold values, zero past a plane's end), for [`ChannelSums`].
#[inline(always)]
fn summed<'a, S: pulp::Simd>(
    simd: S,
    planes: impl Iterator<Item = (&'a [f32], &'a [f32])>,
    terms: impl Fn(S::f32s, S::f32s, S::f32s) -> [S::f32s; 2],
) -> [f64; 2] {
    let (zero, one) = (simd.splat_f32s(0.0), simd.splat_f32s(1.0));
    // What a remainder's mask loads from: more ones than any vector register holds.
    let ones = [1.0; 64];
    let (mut lanes, mut totals, mut pending) = ([zero; 2], [0f64; 2], 0);
    let flush = |lanes: &mut [S::f32s; 2], totals: &mut [f64; 2]| {
        for (total, lane) in totals.iter_mut().zip(lanes) {
            *total += f64::from(simd.reduce_sum_f32s(*lane));
            *lane = zero;
        }
    };
    let add =
        |[l0, l1]: [S::f32s; 2], [a, b]: [S::f32s; 2]| [simd.add_f32s(l0, a), simd.add_f32s(l1, b)];
    for (xs, ys) in planes {
        let ((x_chunks, x_rest), (y_chunks, y_rest)) = (S::as_simd_f32s(xs), S::as_simd_f32s(ys));
        for (&x, &y) in x_chunks.iter().zip(y_chunks) {
            lanes = add(lanes, terms(x, y, one));
        }
        if !x_rest.is_empty() {
            let x = simd.partial_load_f32s(x_rest);
            let y = simd.partial_load_f32s(y_rest);
            let valid = simd.partial_load_f32s(&ones[..x_rest.len()]);
            lanes = add(lanes, terms(x, y, valid));
        }
        pending += xs.len();
        if pending >= FLUSH {
            flush(&mut lanes, &mut totals);
            pending = 0;
        }
    }
    flush(&mut lanes, &mut totals);
    totals
}

/// Each plane `(n, c)` of `values` replaced by `v → scale[c]·v + slope[c]·o + shift[c]` with
/// the same plane's values `o` of `other`, `v` first through `gate(c)`'s activation at `o`.
fn affine_planes(
    values: &mut [f32],
    other: &[f32],
    planes: Planes,
    coefficients: &[[f32; 3]],
    gate: impl Fn(usize) -> Gate + Sync,
) {
    let Planes { channels, size, .. } = planes;
    values
        .par_chunks_mut(size.max(1))
        .enumerate()
        .for_each(|(plane, out)| {
            let c = plane % channels;
            let other = &other[plane * size..][..size];
            match gate(c) {
                Gate::Open => {
                    affine_plane::<fixed::Identity>(out, other, coefficients[c], [0.0; 2])
                }
                Gate::Relu(affine) => {
                    affine_plane::<fixed::Relu>(out, other, coefficients[c], affine)
                }
                Gate::Relu6(affine) => {
                    affine_plane::<fixed::Relu6>(out, other, coefficients[c], affine)
                }
            }
        });
}

/// One plane of [`affine_planes`], its gate's activation `R` at `a·o + b`.
fn affine_plane<R: Fixed>(
    out: &mut [f32],
    other: &[f32],
    [scale, slope, shift]: [f32; 3],
    [a, b]: [f32; 2],
) {
    for (v, &o) in out.iter_mut().zip(other) {
        *v = scale * R::ACTIVATION.gradient(a * o + b, *v) + slope * o + shift;
    }
}

/// What [`forward`] computed: the normalized values through the activation, each channel's mean
/// and biased variance, and each channel's scale and shift it normalized with (`x → scale·x +
/// shift`), from which [`backward`] recomputes the normalized values bit for bit.
pub struct Normalized {
    pub output: Vec<f32>,
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

/// The normalized values through `activation` as each plane is written (one pass for both), and
/// the statistics (see [`Normalized`]).
pub fn forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    activation: Activation,
    planes: Planes,
) -> Normalized {
    let (mean, variance): (Vec<f64>, Vec<f64>) = (0..planes.channels)
        .into_par_iter()
        .map(|c| {
            let of_channel = || planes.of_channel(x, c).map(|p| (p, p));
            let [sum, _] = channel_sums(of_channel(), Summand::Values);
            let mean = sum / planes.count();
            let m = mean as f32;
            let [squares, _] = channel_sums(of_channel(), Summand::SquaredDeviations(m));
            (mean, squares / planes.count())
        })
        .unzip();
    let (scale, shift) = affine(gamma, beta, &mean, &variance, epsilon);
    let size = planes.size;
    let output = written_in_pieces(
        x.len(),
        size.max(1),
        || (),
        |(), plane, out| {
            let c = plane % planes.channels;
            let (scale, shift) = (scale[c], shift[c]);
            for (out, &v) in out.iter_mut().zip(&x[plane * size..]) {
                *out = scale * v + shift;
            }
            activation.apply_all(out);
        },
    );
    Normalized::new(output, mean, variance, scale, shift)
}

impl Normalized {
    fn new(
        output: Vec<f32>,
        mean: Vec<f64>,
        variance: Vec<f64>,
        scale: Vec<f32>,
        shift: Vec<f32>,
    ) -> Self {
        let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
        Self {
            output,
            mean: narrow(mean),
            variance: narrow(variance),
            scale,
            shift,
        }
    }
}

/// Each channel's scale and shift (`x → scale·x + shift` normalizes), from its batch mean and
/// variance.
fn affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f64],
    variance: &[f64],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>) {
    gamma
        .iter()
        .zip(beta)
        .zip(mean.iter().zip(variance))
        .map(|((&gamma, &beta), (&mean, &variance))| {
            let scale = f64::from(gamma) / (variance + epsilon).sqrt();
            let shift = f64::from(beta) - mean * scale;
            (scale as f32, shift as f32)
        })
        .unzip()
}

/// BatchNorm with given statistics (the running ones, in inference), in place: each value as
/// Burn's `batch_norm` computes it (see [`Normalization`]), in one pass instead of Burn's four
/// over the whole tensor.
pub fn running(
    values: &mut [f32],
    [gamma, beta, mean, variance]: [&[f32]; 4],
    epsilon: f64,
    planes: Planes,
) {
    let std = Normalization::deviations(variance, epsilon);
    let normalization = Normalization {
        gamma,
        beta,
        mean,
        std: &std,
    };
    let Planes { channels, size, .. } = planes;
    values
        .par_chunks_mut(size.max(1))
        .enumerate()
        .for_each(|(plane, out)| normalization.apply(plane % channels, out));
}

/// The gradients of [`forward`]'s input (written over `output_grad`), gamma and beta, from the
/// gradient of its output after `activation`, given the `mean`, `variance`, `scale` and `shift`
/// it returned.
pub fn backward(
    x: &[f32],
    gamma: &[f32],
    [mean, variance, scale, shift]: [&[f32]; 4],
    epsilon: f64,
    activation: Activation,
    output_grad: &mut [f32],
    planes: Planes,
) -> (Vec<f32>, Vec<f32>) {
    let Planes { channels, size, .. } = planes;
    let affine = |c: usize| [scale[c], shift[c]];
    if activation == Activation::Gelu {
        // GELU's derivative is arithmetic rather than a select: applied in a pass of its own.
        output_grad
            .par_chunks_mut(size.max(1))
            .zip(x.par_chunks(size.max(1)))
            .enumerate()
            .for_each(|(plane, (grad, x))| {
                through_gelu(affine(plane % channels), x, grad);
            });
    }
    let gate = |c: usize| Gate::new(activation, affine(c));
    let grad: &[f32] = output_grad;
    // Per channel: Σ g and Σ g·(x − mean).
    let sums: Vec<[f64; 2]> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let pairs = planes.of_channel(grad, c).zip(planes.of_channel(x, c));
            channel_sums(pairs, Summand::GradientProducts(mean[c], gate(c)))
        })
        .collect();
    let gradients = Gradients::new(&sums, gamma, [mean, variance], epsilon, planes.count());
    affine_planes(output_grad, x, planes, &gradients.coefficients, gate);
    (gradients.gamma, gradients.beta)
}

/// Gamma's and beta's gradients, and the input gradient's coefficients per channel.
struct Gradients {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    /// `[a, b, d]`: the input gradient is `a·g + b·x + d` (`g` the output gradient through the
    /// activation's gate).
    coefficients: Vec<[f32; 3]>,
}

impl Gradients {
    /// From each channel's `[Σg, Σg·(x − mean)]` over its `count` values.
    fn new(
        sums: &[[f64; 2]],
        gamma: &[f32],
        [mean, variance]: [&[f32]; 2],
        epsilon: f64,
        count: f64,
    ) -> Self {
        let mut gradients = Self {
            gamma: Vec::with_capacity(sums.len()),
            beta: Vec::with_capacity(sums.len()),
            coefficients: Vec::with_capacity(sums.len()),
        };
        // x_grad = γ/σ · (g − mean(g) − x̂ · mean(g·x̂)), with x̂ = (x − mean)/σ, as
        // a·g + b·x + d per channel.
        for (c, &[g, gx]) in sums.iter().enumerate() {
            let inv_std = 1.0 / (f64::from(variance[c]) + epsilon).sqrt();
            gradients.gamma.push((gx * inv_std) as f32);
            gradients.beta.push(g as f32);
            let a = f64::from(gamma[c]) * inv_std;
            let b = -a * inv_std * inv_std * gx / count;
            let d = -a * g / count - b * f64::from(mean[c]);
            gradients.coefficients.push([a as f32, b as f32, d as f32]);
        }
        gradients
    }
}

/// `grad ← gelu′(scale·x + shift)·grad`, the normalized values recomputed as [`forward`]
/// computed them, compiled for each instruction set [`pulp`] chooses among.
fn through_gelu([scale, shift]: [f32; 2], x: &[f32], grad: &mut [f32]) {
    struct ThroughGelu<'a> {
        affine: [f32; 2],
        x: &'a [f32],
        grad: &'a mut [f32],
    }
    impl pulp::WithSimd for ThroughGelu<'_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let [scale, shift] = self.affine;
            for (g, &x) in self.grad.iter_mut().zip(self.x) {
                *g = Activation::Gelu.gradient(scale * x + shift, *g);
            }
        }
    }
    crate::math::arch().dispatch(ThroughGelu {
        affine: [scale, shift],
        x,
        grad,
    });
}
