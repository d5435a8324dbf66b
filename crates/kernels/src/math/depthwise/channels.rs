//! The depthwise convolution and its gradients channels-last, so that every kernel tap multiplies
//! [`GROUP`] channels at once: on values laid out that way ([`Channels::Last`]), read and written
//! where they lie, or with each sample's planes turned channels-last first. For planes narrower
//! than [`LANES`] (EfficientNet's last stages: 14x14 and 7x7 at 224, 10x10 and 5x5 at 160) the
//! plane layout of [`super`] leaves most lanes of each row idle and spends its time on loop
//! overhead; channels are many there (hundreds), so a group of them fills every lane. The
//! channels past the last whole group go [`LANES`] at a time, then one at a time.
//!
//! Each output sums its taps in registers in Burn's order (row of the kernel, then column), a
//! multiply then an add, as the plane layout does: the forward values are Burn's bit for bit.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::LANES;
use crate::math::Channels;
use crate::math::convolution::{Geometry, TASKS, summed_per_channel};
use crate::math::epilogue::Epilogue;
use crate::math::output::{overwritten_in_pieces, written_in_pieces};
use crate::math::transpose::transpose;

/// Channels summed together, four vectors' worth: four independent chains of additions.
const GROUP: usize = 4 * LANES;

/// Which taps meet which positions along each axis.
struct Layout<'a> {
    g: &'a Geometry,
    /// How the input, the output and their gradients lie.
    order: Channels,
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
        Self { g, order, reads }
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

    /// One sample's values (`plane` positions of every channel) channels-last: `sample` itself
    /// in that order, else turned into `scratch`.
    fn channels_last<'s>(
        &self,
        sample: &'s [f32],
        plane: usize,
        scratch: &'s mut Vec<f32>,
    ) -> &'s [f32] {
        match self.order {
            Channels::Last => sample,
            Channels::First => {
                let channels = sample.len() / plane;
                scratch.resize(sample.len(), 0.0);
                transpose((sample, plane), (scratch, channels), [channels, plane]);
                scratch
            }
        }
    }

    /// The weight (`[channels, kh·kw]`) as `[kh·kw, channels]`.
    fn taps(&self, weight: &[f32]) -> Vec<f32> {
        let (taps, channels) = (self.g.kernel[0] * self.g.kernel[1], self.g.channels_in);
        let mut last = vec![0.0; taps * channels];
        transpose((weight, taps), (&mut last, channels), [channels, taps]);
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
    let channels = g.channels_in;
    let (from, from_sides) = from;
    let (from_plane, to_plane) = (from_sides[0] * from_sides[1], to[0] * to[1]);
    let taps = layout.taps(weight);
    let arch = crate::math::arch();
    let (sample_from, sample_to) = (channels * from_plane, channels * to_plane);
    // Each sample's reads: these with its source.
    let reads = Reads {
        channels,
        kernel_width: g.kernel[1],
        source: &[],
        source_width: from_sides[1],
        taps: &taps,
    };
    let len = g.batch * sample_to;
    match layout.order {
        // Read and written where they lie: no copies, and no zeroing of what `Gather` writes.
        Channels::Last => overwritten_in_pieces(len, sample_to, |i, output| {
            let source = &from[i * sample_from..][..sample_from];
            let output = arch.dispatch(Gather {
                reads: Reads { source, ..reads },
                pairs,
                target: output,
            });
            for position in output.chunks_exact_mut(channels) {
                epilogue.apply_across(position);
            }
            output
        }),
        Channels::First => written_in_pieces(
            len,
            sample_to,
            || (Vec::new(), Vec::new()),
            |(source, target), i, output| {
                let from = &from[i * sample_from..][..sample_from];
                let source = layout.channels_last(from, from_plane, source);
                target.resize(sample_to, MaybeUninit::uninit());
                let target = arch.dispatch(Gather {
                    reads: Reads { source, ..reads },
                    pairs,
                    target,
                });
                transpose((target, channels), (output, to_plane), [to_plane, channels]);
                for (c, plane) in output.chunks_exact_mut(to_plane).enumerate() {
                    epilogue.apply(c, plane);
                }
            },
        ),
    }
}

/// Work on channels `first..first + W` of every row of channels (position or tap).
trait Span {
    fn run<const W: usize>(&mut self, first: usize);
}

/// `span` over a row of `channels`: whole groups of [`GROUP`], then [`LANES`] at a time, then
/// the rest one at a time, each width a loop of known length the compiler keeps in registers.
#[inline(always)]
fn across(channels: usize, span: &mut impl Span) {
    let (groups, vectors) = (channels / GROUP * GROUP, groups_of(channels, GROUP, LANES));
    for first in (0..groups).step_by(GROUP) {
        span.run::<GROUP>(first);
    }
    for first in (groups..vectors).step_by(LANES) {
        span.run::<LANES>(first);
    }
    for first in vectors..channels {
        span.run::<1>(first);
    }
}

/// Each row's list with each column's, row by row: the positions (or taps) of a plane in order.
fn grid<'a, T>(
    rows: &'a [Vec<T>],
    columns: &'a [Vec<T>],
) -> impl Iterator<Item = (&'a [T], &'a [T])> {
    rows.iter().flat_map(move |row| {
        columns
            .iter()
            .map(move |column| (row.as_slice(), column.as_slice()))
    })
}

/// Where the whole `width`s of `channels` end past its whole `group`s.
fn groups_of(channels: usize, group: usize, width: usize) -> usize {
    let groups = channels / group * group;
    groups + (channels - groups) / width * width
}

/// One sample's targets, channels-last: each the sum over its (kernel row, source row) and
/// (kernel column, source column) pairs of the tap times the source. Writes every target, one row
/// of channels per row and column of `pairs`, and returns them.
///
/// Channel span after channel span, each over every target: a span's sources and taps (26 KB and
/// 6 KB for 64 channels of 10x10 maps and a 5x5 kernel) then stay in the core's first-level
/// cache, where target after target over all the channels would read them from the second.
struct Gather<'r, 't> {
    reads: Reads<'r>,
    pairs: [&'r [Vec<(usize, usize)>]; 2],
    target: &'t mut [MaybeUninit<f32>],
}

/// What [`Gather`] reads: the sources and the taps, each `channels` to a row.
#[derive(Clone, Copy)]
struct Reads<'a> {
    channels: usize,
    kernel_width: usize,
    source: &'a [f32],
    source_width: usize,
    taps: &'a [f32],
}

impl<'t> pulp::WithSimd for Gather<'_, 't> {
    type Output = &'t mut [f32];

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(mut self, _: S) -> &'t mut [f32] {
        let [rows, columns] = self.pairs;
        let c = self.reads.channels;
        assert_eq!(
            self.target.len(),
            rows.len() * columns.len() * c,
            "a target per row and column"
        );
        across(c, &mut self);
        // SAFETY: every target was written: one row of `c` per row and column (asserted), each of
        // whose channels `across` visits once.
        unsafe { self.target.assume_init_mut() }
    }
}

impl Span for Gather<'_, '_> {
    #[inline(always)]
    fn run<const W: usize>(&mut self, first: usize) {
        let (g, [rows, columns]) = (self.reads, self.pairs);
        let c = g.channels;
        for (target, (row, column)) in self.target.chunks_exact_mut(c).zip(grid(rows, columns)) {
            let mut sums = [0.0f32; W];
            for &(ky, y) in row {
                for &(kx, x) in column {
                    let at = (y * g.source_width + x) * c + first;
                    let tap = (ky * g.kernel_width + kx) * c + first;
                    let values: &[f32; W] = g.source[at..at + W].try_into().expect("lanes");
                    let weights: &[f32; W] = g.taps[tap..tap + W].try_into().expect("lanes");
                    for lane in 0..W {
                        sums[lane] += values[lane] * weights[lane];
                    }
                }
            }
            target[first..first + W].write_copy_of_slice(&sums);
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
    let (taps, channels) = (g.kernel[0] * g.kernel[1], g.channels_in);
    let samples: Vec<usize> = (0..g.batch).collect();
    let arch = crate::math::arch();
    let partials: Vec<Vec<f32>> = samples
        .par_chunks(g.batch.div_ceil(TASKS).max(1))
        .map(|samples| {
            let (mut sum, mut x_last, mut grad_last) =
                (vec![0.0; taps * channels], Vec::new(), Vec::new());
            for &sample in samples {
                let (x, output_grad) = (
                    sample_of(x, sample, channels * h * w),
                    sample_of(output_grad, sample, channels * oh * ow),
                );
                arch.dispatch(Correlate {
                    by_tap: [&by_tap[0], &by_tap[1]],
                    widths: [w, ow],
                    channels,
                    x: layout.channels_last(x, h * w, &mut x_last),
                    output_grad: layout.channels_last(output_grad, oh * ow, &mut grad_last),
                    sum: &mut sum,
                });
            }
            sum
        })
        .collect();
    summed_per_channel(partials, [taps, channels], channels)
}

/// Sample `sample`'s `len` values.
fn sample_of(values: &[f32], sample: usize, len: usize) -> &[f32] {
    &values[sample * len..][..len]
}

/// One sample's share of the weight gradient, channels-last, added to `sum` (`[kh·kw,
/// channels]`): for each tap, the products of the output gradients with the inputs the tap read.
/// Channel span after channel span, as [`Gather`] goes.
struct Correlate<'a> {
    /// Per kernel row (column): the (output, input) rows (columns) it joins.
    by_tap: [&'a [Vec<(usize, usize)>]; 2],
    /// The input's and the output's widths.
    widths: [usize; 2],
    channels: usize,
    x: &'a [f32],
    output_grad: &'a [f32],
    sum: &'a mut [f32],
}

impl pulp::WithSimd for Correlate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(mut self, _: S) {
        let [rows, columns] = self.by_tap;
        assert_eq!(
            self.sum.len(),
            rows.len() * columns.len() * self.channels,
            "a sum per tap"
        );
        across(self.channels, &mut self);
    }
}

impl Span for Correlate<'_> {
    #[inline(always)]
    fn run<const W: usize>(&mut self, first: usize) {
        let ([rows, columns], [w, ow], c) = (self.by_tap, self.widths, self.channels);
        for (sum, (row, column)) in self.sum.chunks_exact_mut(c).zip(grid(rows, columns)) {
            let mut products = [0.0f32; W];
            for &(oy, y) in row {
                for &(ox, x) in column {
                    let at = (y * w + x) * c + first;
                    let o = (oy * ow + ox) * c + first;
                    let values: &[f32; W] = self.x[at..at + W].try_into().expect("lanes");
                    let grads: &[f32; W] = self.output_grad[o..o + W].try_into().expect("lanes");
                    for lane in 0..W {
                        products[lane] += values[lane] * grads[lane];
                    }
                }
            }
            for (sum, product) in sum[first..first + W].iter_mut().zip(products) {
                *sum += product;
            }
        }
    }
}
