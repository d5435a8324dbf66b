//! The depthwise convolution and its gradients channels-last, so that every kernel tap multiplies
//! [`GROUP`] channels at once: on values laid out that way ([`Channels::Last`]), or with each
//! sample's planes turned channels-last first. For planes narrower than [`LANES`] (EfficientNet's
//! last stages: 14x14 and 7x7 at 224, 10x10 and 5x5 at 160) the plane layout of [`super`] leaves
//! most lanes of each row idle and spends its time on loop overhead; channels are many there
//! (hundreds), so a group of them fills every lane.
//!
//! Each output sums its taps in registers in Burn's order (row of the kernel, then column), a
//! multiply then an add, as the plane layout does: the forward values are Burn's bit for bit.

use rayon::prelude::*;

use super::LANES;
use crate::math::Channels;
use crate::math::convolution::{Geometry, TASKS, summed_per_channel};
use crate::math::epilogue::Epilogue;
use crate::math::output::written_in_pieces;
use crate::math::transpose::transpose;

/// Channels summed together, four vectors' worth: four independent chains of additions.
const GROUP: usize = 4 * LANES;

/// Which taps meet which positions along each axis, and how wide a channels-last row is.
struct Layout<'a> {
    g: &'a Geometry,
    /// How the input, the output and their gradients lie.
    order: Channels,
    /// The channels rounded up to whole groups of [`GROUP`] (the extra ones zero).
    padded: usize,
    /// For each output row (column), the kernel rows (columns) inside the input with the input
    /// row (column) each reads, in kernel order.
    reads: [Vec<Vec<(usize, usize)>>; 2],
}

impl<'a> Layout<'a> {
    fn new(g: &'a Geometry, order: Channels) -> Self {
        let reads = std::array::from_fn(|axis| {
            (0..g.output[axis])
                .map(|o| {
                    (0..g.kernel[axis])
                        .filter_map(|tap| {
                            let at = (o * g.stride[axis] + tap * g.dilation[axis])
                                .checked_sub(g.padding[axis])?;
                            (at < g.input[axis]).then_some((tap, at))
                        })
                        .collect()
                })
                .collect()
        });
        Self {
            g,
            order,
            padded: g.channels_in.div_ceil(GROUP) * GROUP,
            reads,
        }
    }

    /// For each input row (column), the kernel rows (columns) that read it with the output row
    /// (column) each serves: [`Layout::reads`] turned around.
    fn written(&self, axis: usize) -> Vec<Vec<(usize, usize)>> {
        let mut written = vec![Vec::new(); self.g.input[axis]];
        for (o, reads) in self.reads[axis].iter().enumerate() {
            for &(tap, at) in reads {
                written[at].push((tap, o));
            }
        }
        written
    }

    /// For each kernel row (column), the output rows (columns) it serves with the input row
    /// (column) each reads.
    fn by_tap(&self, axis: usize) -> Vec<Vec<(usize, usize)>> {
        let mut by_tap = vec![Vec::new(); self.g.kernel[axis]];
        for (o, reads) in self.reads[axis].iter().enumerate() {
            for &(tap, at) in reads {
                by_tap[tap].push((o, at));
            }
        }
        by_tap
    }

    /// One sample's values (`plane` positions of every channel, in [`Layout::order`]) as
    /// `[plane, padded]` into `last`. A buffer already of that size held the same plane's
    /// channels before (one layout, one plane per buffer): its extra channels are still zero, so
    /// it is not zeroed again.
    fn to_channels_last(&self, sample: &[f32], plane: usize, last: &mut Vec<f32>) {
        if last.len() != plane * self.padded {
            last.clear();
            last.resize(plane * self.padded, 0.0);
        }
        let channels = sample.len() / plane;
        match self.order {
            Channels::First => transpose((sample, plane), (last, self.padded), [channels, plane]),
            Channels::Last => {
                for (to, from) in last
                    .chunks_exact_mut(self.padded)
                    .zip(sample.chunks_exact(channels))
                {
                    to[..channels].copy_from_slice(from);
                }
            }
        }
    }

    /// The inverse of [`Layout::to_channels_last`], the extra channels dropped.
    fn back_in_order(&self, last: &[f32], sample: &mut [f32]) {
        let channels = self.g.channels_in;
        let plane = sample.len() / channels;
        match self.order {
            Channels::First => transpose((last, self.padded), (sample, plane), [plane, channels]),
            Channels::Last => {
                for (to, from) in sample
                    .chunks_exact_mut(channels)
                    .zip(last.chunks_exact(self.padded))
                {
                    to.copy_from_slice(&from[..channels]);
                }
            }
        }
    }

    /// The weight (`[channels, kh·kw]`) as `[kh·kw, padded]`.
    fn taps(&self, weight: &[f32]) -> Vec<f32> {
        let taps = self.g.kernel[0] * self.g.kernel[1];
        let mut last = vec![0.0; taps * self.padded];
        let channels = weight.len() / taps;
        transpose((weight, taps), (&mut last, self.padded), [channels, taps]);
        last
    }
}

/// Whether the channels-last layout suits `g`: its output rows are narrower than [`LANES`] (the
/// plane layout then leaves lanes idle) and its channels fill more of their groups than those rows
/// fill the lanes. Wider planes stay with the plane layout, whose copies cost less than the
/// transposes here.
pub fn suits(g: &Geometry) -> bool {
    let filled = |n: usize, group: usize| n as f64 / (n.div_ceil(group) * group) as f64;
    let ow = g.output[1];
    ow > 0 && ow < LANES && filled(g.channels_in, GROUP) > filled(ow, LANES)
}

/// Per sample: the `from` plane's values of every channel → the `to` plane's, each target the sum
/// over the taps that `pairs` lists of the tap's weight times the source it names, each target
/// channel then through `epilogue`; run on every core.
fn per_sample(
    layout: &Layout,
    from: (&[f32], [usize; 2]),
    weight: &[f32],
    to: [usize; 2],
    pairs: [&[Vec<(usize, usize)>]; 2],
    epilogue: &Epilogue,
) -> Vec<f32> {
    let g = layout.g;
    let (from, from_sides) = from;
    let (from_plane, to_plane) = (from_sides[0] * from_sides[1], to[0] * to[1]);
    let taps = layout.taps(weight);
    let arch = crate::math::arch();
    let sample_from = g.channels_in * from_plane;
    written_in_pieces(
        g.batch * g.channels_in * to_plane,
        g.channels_in * to_plane,
        || (Vec::new(), Vec::new()),
        |(source, target), i, output| {
            let from = &from[i * sample_from..][..sample_from];
            layout.to_channels_last(from, from_plane, source);
            // Every value is written by `Gather`: sized once, not zeroed per sample.
            target.resize(to_plane * layout.padded, 0.0);
            arch.dispatch(Gather {
                padded: layout.padded,
                kernel_width: g.kernel[1],
                source,
                source_width: from_sides[1],
                taps: &taps,
                pairs,
                target,
            });
            layout.back_in_order(target, output);
            match layout.order {
                Channels::First => {
                    for (c, plane) in output.chunks_exact_mut(to_plane).enumerate() {
                        epilogue.apply(c, plane);
                    }
                }
                Channels::Last => {
                    for position in output.chunks_exact_mut(g.channels_in) {
                        epilogue.apply_across(position);
                    }
                }
            }
        },
    )
}

/// One sample's targets, channels-last: for each, [`GROUP`] channels at a time, the sum over its
/// (kernel row, source row) and (kernel column, source column) pairs of the tap times the source.
struct Gather<'a> {
    padded: usize,
    kernel_width: usize,
    source: &'a [f32],
    source_width: usize,
    taps: &'a [f32],
    pairs: [&'a [Vec<(usize, usize)>]; 2],
    target: &'a mut [f32],
}

impl pulp::WithSimd for Gather<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let [rows, columns] = self.pairs;
        let p = self.padded;
        let mut targets = self.target.chunks_exact_mut(p);
        for row in rows {
            for column in columns {
                let target = targets.next().expect("a target per row and column");
                for (group, target) in target.chunks_exact_mut(GROUP).enumerate() {
                    let mut sums = [0.0f32; GROUP];
                    for &(ky, y) in row {
                        for &(kx, x) in column {
                            let at = (y * self.source_width + x) * p + group * GROUP;
                            let tap = (ky * self.kernel_width + kx) * p + group * GROUP;
                            let values: &[f32; GROUP] =
                                self.source[at..at + GROUP].try_into().expect("lanes");
                            let weights: &[f32; GROUP] =
                                self.taps[tap..tap + GROUP].try_into().expect("lanes");
                            for lane in 0..GROUP {
                                sums[lane] += values[lane] * weights[lane];
                            }
                        }
                    }
                    target.copy_from_slice(&sums);
                }
            }
        }
    }
}

/// The output (`[batch, channels, oh, ow]`, or `[batch, oh, ow, channels]` for
/// [`Channels::Last`]) from the input in the same order and the weight: see [`super::forward`].
pub fn forward(
    x: &[f32],
    weight: &[f32],
    g: &Geometry,
    order: Channels,
    epilogue: &Epilogue,
) -> Vec<f32> {
    let layout = Layout::new(g, order);
    let [rows, columns] = &layout.reads;
    per_sample(
        &layout,
        (x, g.input),
        weight,
        g.output,
        [rows, columns],
        epilogue,
    )
}

/// The input gradient from the weight and the output gradient, in `order`: see
/// [`super::input_grad`].
pub fn input_grad(weight: &[f32], output_grad: &[f32], g: &Geometry, order: Channels) -> Vec<f32> {
    let layout = Layout::new(g, order);
    let (rows, columns) = (layout.written(0), layout.written(1));
    per_sample(
        &layout,
        (output_grad, g.output),
        weight,
        g.input,
        [&rows, &columns],
        &Epilogue::NONE,
    )
}

/// The weight gradient from the input and the output gradient, in `order`: see
/// [`super::weight_grad`].
pub fn weight_grad(x: &[f32], output_grad: &[f32], g: &Geometry, order: Channels) -> Vec<f32> {
    let layout = Layout::new(g, order);
    let by_tap = [layout.by_tap(0), layout.by_tap(1)];
    let ([h, w], [oh, ow]) = (g.input, g.output);
    let taps = g.kernel[0] * g.kernel[1];
    let size = taps * layout.padded;
    let samples: Vec<usize> = (0..g.batch).collect();
    let arch = crate::math::arch();
    let partials: Vec<Vec<f32>> = samples
        .par_chunks(g.batch.div_ceil(TASKS).max(1))
        .map(|samples| {
            let (mut sum, mut x_last, mut grad_last) = (vec![0.0; size], Vec::new(), Vec::new());
            for &sample in samples {
                let (x, output_grad) = (
                    sample_of(x, sample, g.channels_in * h * w),
                    sample_of(output_grad, sample, g.channels_in * oh * ow),
                );
                layout.to_channels_last(x, h * w, &mut x_last);
                layout.to_channels_last(output_grad, oh * ow, &mut grad_last);
                arch.dispatch(Correlate {
                    padded: layout.padded,
                    by_tap: [&by_tap[0], &by_tap[1]],
                    widths: [w, ow],
                    x: &x_last,
                    output_grad: &grad_last,
                    sum: &mut sum,
                });
            }
            sum
        })
        .collect();
    summed_per_channel(partials, [taps, g.channels_in], layout.padded)
}

/// Sample `sample`'s `len` values.
fn sample_of(values: &[f32], sample: usize, len: usize) -> &[f32] {
    &values[sample * len..][..len]
}

/// One sample's share of the weight gradient, channels-last, added to `sum` (`[kh·kw, padded]`):
/// for each tap, the products of the output gradients with the inputs the tap read.
struct Correlate<'a> {
    padded: usize,
    /// Per kernel row (column): the (output, input) rows (columns) it joins.
    by_tap: [&'a [Vec<(usize, usize)>]; 2],
    /// The input's and the output's widths.
    widths: [usize; 2],
    x: &'a [f32],
    output_grad: &'a [f32],
    sum: &'a mut [f32],
}

impl pulp::WithSimd for Correlate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let [rows, columns] = self.by_tap;
        let [w, ow] = self.widths;
        let p = self.padded;
        let mut sums = self.sum.chunks_exact_mut(p);
        for row in rows {
            for column in columns {
                let tap = sums.next().expect("a sum per tap");
                for (group, tap) in tap.chunks_exact_mut(GROUP).enumerate() {
                    let mut products = [0.0f32; GROUP];
                    for &(oy, y) in row {
                        for &(ox, x) in column {
                            let at = (y * w + x) * p + group * GROUP;
                            let o = (oy * ow + ox) * p + group * GROUP;
                            let values: &[f32; GROUP] =
                                self.x[at..at + GROUP].try_into().expect("lanes");
                            let grads: &[f32; GROUP] =
                                self.output_grad[o..o + GROUP].try_into().expect("lanes");
                            for lane in 0..GROUP {
                                products[lane] += values[lane] * grads[lane];
                            }
                        }
                    }
                    for (sum, product) in tap.iter_mut().zip(products) {
                        *sum += product;
                    }
                }
            }
        }
    }
}
