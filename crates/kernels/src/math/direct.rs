//! A dense convolution at stride 1 (the 3x3 and 5x5 layers of the 32x32 networks), forward and
//! both gradients, computed without unfolding its input: each sample's planes are copied once
//! into zero-padded planes `[channels, oh + kh − 1, ow + kw − 1]`, where output position
//! `p = oy·width + ox` reads tap `(c, ky, kx)` at `p + c·plane + ky·width + kx`. So a run of
//! consecutive positions reads a run of consecutive values for every tap, and a register tile of
//! positions × output channels sums all taps straight from the padded planes, the way a matrix
//! product's micro-kernel sums over a packed panel: im2col wrote and the matrix library packed
//! nine (or 25) copies of the input per product. The positions past `ow` in each row (the
//! padding's columns) are computed and dropped as the planes are written out. On small planes,
//! where those columns are a large share (a quarter of an 8x8 output's padded rows), a tile
//! holds a few positions of one row instead, with the output channels in the vector lanes: each
//! position's input value is broadcast and multiplied with a vector of channels' weights, and
//! the tiles' channels-last sums are turned into planes as they are written out. Every tile
//! shape gives the same bits; which one a layer runs in is timed on its first calls.
//!
//! The input gradient of a stride-1 convolution is such a convolution itself: of the output
//! gradient, padded by `k − 1 − padding`, with the kernels turned by 180° and the channels
//! swapped. The weight gradient reads the same padded planes (see [`weight_grad`]).

use std::sync::LazyLock;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::convolution::{Geometry, summed_per_channel};
use super::epilogue::Epilogue;
use super::output::written_in_pieces;
use super::transpose::transpose;
use super::tuning::{TRIALS, Tuner};

/// Calls of a convolution (of one geometry and batch size, forward or input gradient) over
/// which its tile shapes are timed, before it runs the fastest: a loop that times its steps
/// starts the clock after as many.
pub const TUNING_CALLS: usize = TileShape::ALL.len() * TRIALS;

/// Whether [`forward`] computes `g` (see [`worth_it`]).
pub fn computes_forward(g: &Geometry) -> bool {
    worth_it(g, g.output, g.channels_out)
}

/// Whether [`input_grad`] computes `g` (see [`worth_it`]).
pub fn computes_input_grad(g: &Geometry) -> bool {
    worth_it(g, g.input, g.channels_in)
}

/// Whether a correlation that writes `channels` planes of `side` computes `g`, and is worth it:
/// [`stride_one_dense`], at least two thirds of the positions wide tiles or pixel tiles compute
/// needed, and half of the channels wide tiles compute. A wide tile's positions run over whole
/// padded rows and whole tiles (a 6x6 output of a 5x5 kernel computes 6 of every 10 columns, and
/// its 60 positions round up to two tiles), a pixel tile's over each row rounded up to whole
/// tiles, and a wide tile's channels over a whole block (3 channels fill 3 of 8); the input
/// gradient of a convolution without padding also multiplies the output gradient's padding (at
/// 10x10 from 14x14 by 5x5, 196 positions for 100 outputs' worth). Measured on AVX-512 against
/// im2col and gemm: twice as fast on 32x32 planes, as fast on 8x8 (two thirds needed), slower on
/// 7x7 in wide tiles (half needed) and narrow ones (three quarters) on a Zen 4, where gemm's
/// large products on airnet's 256 channels run near its peak; faster on 7x7 in pixel tiles
/// (seven eighths).
fn worth_it(g: &Geometry, side: [usize; 2], channels: usize) -> bool {
    let lanes = crate::math::arch().dispatch(Lanes);
    let [oh, ow] = g.output;
    let computed = [TileShape::Wide, TileShape::Pixels]
        .map(|shape| shape.computed(lanes, side, g.kernel[1]))
        .into_iter()
        .min()
        .unwrap_or(0);
    stride_one_dense(g)
        && 3 * oh * ow >= 2 * computed
        && 2 * channels >= TileShape::Wide.channels(lanes, channels)
}

/// Whether `g` is a convolution this module computes: dense, with channels, not pointwise (1x1
/// convolutions multiply the planes as they lie), stride 1, no dilation, padding within the
/// kernel, on a CPU with fused multiply-adds.
fn stride_one_dense(g: &Geometry) -> bool {
    has_fma()
        && g.is_dense()
        && g.channels_in > 0
        && g.channels_out > 0
        && !g.is_pointwise()
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && (0..2).all(|axis| g.padding[axis] < g.kernel[axis])
}

/// The f32 values the first-level data cache holds, as the CPU reports it.
fn first_level_cache_floats() -> usize {
    gemm_common::cache::CACHE_INFO[0].cache_bytes / size_of::<f32>()
}

/// Whether the CPU multiplies and adds in one instruction (every x86 CPU with AVX2 does; pulp
/// computes each fused multiply-add of older ones in software).
fn has_fma() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    {
        true
    }
}

/// The output, `[batch, channels_out, oh, ow]`, of `x` and the weight, each plane through
/// `epilogue` as it is written; for geometries of [`computes_forward`].
pub fn forward(x: &[f32], weight: &[f32], g: &Geometry, epilogue: &Epilogue) -> Vec<f32> {
    forward_on(crate::math::arch(), x, weight, g, epilogue)
}

/// [`forward`] on the vector instructions of `arch`.
fn forward_on(
    arch: pulp::Arch,
    x: &[f32],
    weight: &[f32],
    g: &Geometry,
    epilogue: &Epilogue,
) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let taps = kh * kw;
    let correlation = Correlation {
        channels: [g.channels_in, g.channels_out],
        source: g.input,
        output: g.output,
        kernel: g.kernel,
        offset: g.padding,
    };
    let weight_at = |out: usize, c: usize, ky: usize, kx: usize| {
        weight[(out * g.channels_in + c) * taps + ky * kw + kx]
    };
    correlation.run_fastest(arch, g.batch, x, weight_at, epilogue)
}

/// The gradient of the input, `[batch, channels_in, h, w]`, from the weight and the output
/// gradient; for geometries of [`computes_input_grad`].
pub fn input_grad(weight: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    input_grad_on(crate::math::arch(), weight, output_grad, g)
}

/// [`input_grad`] on the vector instructions of `arch`.
fn input_grad_on(arch: pulp::Arch, weight: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let taps = kh * kw;
    let correlation = Correlation {
        channels: [g.channels_out, g.channels_in],
        source: g.output,
        output: g.input,
        kernel: g.kernel,
        offset: [kh - 1 - g.padding[0], kw - 1 - g.padding[1]],
    };
    let weight_at = |out: usize, c: usize, ky: usize, kx: usize| {
        weight[(c * g.channels_in + out) * taps + (kh - 1 - ky) * kw + (kw - 1 - kx)]
    };
    correlation.run_fastest(arch, g.batch, output_grad, weight_at, &Epilogue::NONE)
}

/// Whether [`weight_grad`] computes `g`: [`stride_one_dense`], and at least half of the
/// output channels a tile computes needed. Every position it multiplies is an output's.
pub fn computes_weight_grad(g: &Geometry) -> bool {
    let columns = GRADIENT_VECTORS * crate::math::arch().dispatch(Lanes);
    stride_one_dense(g) && 2 * g.channels_out >= g.channels_out.div_ceil(columns) * columns
}

/// The gradient of the weight, `[channels_out, channels_in, kh, kw]`, from the input and the
/// output gradient; for geometries of [`computes_weight_grad`]. Per sample, the input padded as
/// [`forward`] pads it and the output gradient turned channels-last, `[position, channel]`; then
/// each register tile of taps × output channels sums, over the sample's output positions, a tap's
/// input value (one broadcast) times the channels' gradients (vectors): a matrix product's
/// micro-kernel whose panels are the padded planes and the turned gradient, with no unfolded
/// copy. The batch is split into a fixed number of parts summed in a fixed order, so a seeded
/// run repeats exactly on any number of threads.
pub fn weight_grad(x: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    weight_grad_on(crate::math::arch(), x, output_grad, g)
}

/// [`weight_grad`] on the vector instructions of `arch`.
fn weight_grad_on(arch: pulp::Arch, x: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    let lanes = arch.dispatch(Lanes);
    let columns = GRADIENT_VECTORS * lanes;
    let [kh, kw] = g.kernel;
    let taps = g.channels_in * kh * kw;
    let correlation = Correlation {
        channels: [g.channels_in, g.channels_out],
        source: g.input,
        output: g.output,
        kernel: g.kernel,
        offset: g.padding,
    };
    let positions = g.output[0] * g.output[1];
    if positions == 0 {
        return vec![0.0; g.channels_out * taps];
    }
    let layout = correlation.layout(TileShape::Wide, lanes);
    let offsets = correlation.offsets(&layout);
    let padded_out = g.channels_out.div_ceil(columns) * columns;
    let sample_in = g.channels_in * g.input[0] * g.input[1];
    let sample_out = g.channels_out * positions;
    let per_task = g.batch.div_ceil(super::convolution::TASKS).max(1);
    let samples: Vec<usize> = (0..g.batch).collect();
    let partials: Vec<Vec<f32>> = samples
        .par_chunks(per_task)
        .map(|samples| {
            let mut sum = vec![0.0; taps * padded_out];
            let mut padded = vec![0.0; layout.padded];
            let mut turned = vec![0.0; positions * padded_out];
            for &n in samples {
                correlation.pad(&x[n * sample_in..][..sample_in], &layout, &mut padded);
                transpose(
                    (&output_grad[n * sample_out..][..sample_out], positions),
                    (&mut turned, padded_out),
                    [g.channels_out, positions],
                );
                arch.dispatch(GradientTiles {
                    padded: &padded,
                    turned: &turned,
                    offsets: &offsets,
                    output: g.output,
                    width: layout.width,
                    sum: &mut sum,
                });
            }
            sum
        })
        .collect();
    summed_per_channel(partials, [taps, g.channels_out], padded_out)
}

/// Taps of the input in a register tile of [`weight_grad`], by vector width: with
/// [`GRADIENT_VECTORS`] vectors of output channels, 24 running sums where the CPU has 32 vector
/// registers (AVX-512), 12 where it has 16 (AVX2).
const fn tap_tile(lanes: usize) -> usize {
    if lanes >= 16 { 12 } else { 6 }
}

/// Vectors of output channels in a register tile of [`weight_grad`].
const GRADIENT_VECTORS: usize = 2;

/// The register tile of a correlation: vectors of consecutive positions × output channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TileShape {
    /// 3 vectors × 8 channels where the CPU has 32 vector registers (AVX-512: 24 running sums),
    /// 3 × 4 where it has 16 (AVX2: 12): 11 (or 7) loads for 24 (or 12) multiply-adds a tap.
    Wide,
    /// 1 vector × twice the channels: positions in whole vectors rather than threes, for the
    /// small planes where three vectors' rounding computes for nothing (an 8x8 output of a 3x3
    /// kernel has 80 padded positions: 96 in wide tiles of 48, 80 in narrow ones of 16).
    Narrow,
    /// Consecutive positions of one output row × two vectors of output channels in the vector
    /// lanes (8 positions where the CPU has 32 vector registers, 4 where it has 16; see
    /// [`pixel_tile`]): a tile broadcasts each position's input value and multiplies it with the
    /// channels' weights, so it computes a row's own positions and not the padding columns
    /// between rows (an 8x8 output of a 3x3 kernel: 64 positions, against 80 in narrow tiles),
    /// at 10 loads (or 6) for 16 (or 8) multiply-adds a tap.
    Pixels,
}

impl TileShape {
    const ALL: [Self; 3] = [Self::Wide, Self::Narrow, Self::Pixels];

    /// The shape for `channels` planes of `side` through a kernel `kw` wide that computes the
    /// fewest positions × channels (the narrow one only where it computes at least an eighth
    /// fewer than the wide one): the one tried first (see [`Correlation::run_fastest`]).
    fn for_planes(lanes: usize, side: [usize; 2], kw: usize, channels: usize) -> Self {
        let work = |shape: Self| shape.computed(lanes, side, kw) * shape.channels(lanes, channels);
        let shape = if 8 * work(Self::Narrow) <= 7 * work(Self::Wide) {
            Self::Narrow
        } else {
            Self::Wide
        };
        if work(Self::Pixels) < work(shape) {
            Self::Pixels
        } else {
            shape
        }
    }

    /// Output channels in a tile.
    fn block(self, lanes: usize) -> usize {
        let wide = if lanes >= 16 { 8 } else { 4 };
        match self {
            Self::Wide => wide,
            Self::Narrow => 2 * wide,
            Self::Pixels => PIXEL_VECTORS * lanes,
        }
    }

    /// Positions in a tile.
    fn positions(self, lanes: usize) -> usize {
        match self {
            Self::Wide => 3 * lanes,
            Self::Narrow => lanes,
            Self::Pixels => pixel_tile(lanes),
        }
    }

    /// Positions computed per plane of `side` through a kernel `kw` wide: whole padded rows
    /// rounded up to whole tiles, or for [`Self::Pixels`] each row rounded up to whole tiles.
    fn computed(self, lanes: usize, side: [usize; 2], kw: usize) -> usize {
        let tile = self.positions(lanes);
        match self {
            Self::Wide | Self::Narrow => (side[0] * (side[1] + kw - 1)).div_ceil(tile) * tile,
            Self::Pixels => side[0] * side[1].div_ceil(tile) * tile,
        }
    }

    /// `channels` rounded up to whole tiles.
    fn channels(self, lanes: usize, channels: usize) -> usize {
        let block = self.block(lanes);
        channels.div_ceil(block) * block
    }
}

/// Positions of an output row in a [`TileShape::Pixels`] tile, by vector width: with
/// [`PIXEL_VECTORS`] vectors of channels, 16 running sums where the CPU has 32 vector registers
/// (AVX-512), 8 where it has 16 (AVX2), enough to keep both multiply-add units busy.
const fn pixel_tile(lanes: usize) -> usize {
    if lanes >= 16 { 8 } else { 4 }
}

/// Vectors of output channels in a [`TileShape::Pixels`] tile.
const PIXEL_VECTORS: usize = 2;

/// The number of f32 lanes of the vector registers pulp picks.
struct Lanes;

impl WithSimd for Lanes {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> usize {
        S::F32_LANES
    }
}

/// The tile shape each correlation runs in, per batch size and vector width (see
/// [`Correlation::run_fastest`]).
static SHAPES: LazyLock<Tuner<(Correlation, usize, usize), TileShape>> =
    LazyLock::new(Tuner::default);

/// `output[o, y, x] = Σ_{c, ky, kx} weight(o, c, ky, kx) · source[c, y + ky − top, x + kx − left]`
/// (zero outside the source), per sample.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Correlation {
    /// Source and output channels.
    channels: [usize; 2],
    source: [usize; 2],
    output: [usize; 2],
    kernel: [usize; 2],
    /// Where the source's first row and column lie in the padded planes.
    offset: [usize; 2],
}

impl Correlation {
    /// [`Self::run`] in the tile shape that runs it fastest for `batch` on this machine, timed
    /// over the first calls (see [`super::tuning`]): the shape that computes the fewest
    /// positions × channels first (see [`TileShape::for_planes`]), then the others. Which is
    /// fastest depends on the CPU: on an Intel Xeon (AVX-512) wide tiles ran 32x32 planes 5-25%
    /// faster than pixel tiles, which compute 7% fewer positions there, and narrow tiles, whose
    /// 16 broadcasts a tap load more than their multiply-adds can hide, were the slowest of the
    /// three on every plane of the 32x32 networks; on a Zen 4 pixel tiles had been the faster.
    fn run_fastest(
        &self,
        arch: pulp::Arch,
        batch: usize,
        source: &[f32],
        weight: impl Fn(usize, usize, usize, usize) -> f32,
        epilogue: &Epilogue,
    ) -> Vec<f32> {
        let lanes = arch.dispatch(Lanes);
        let shapes = || {
            let least = TileShape::for_planes(lanes, self.output, self.kernel[1], self.channels[1]);
            let others = TileShape::ALL.into_iter().filter(|&shape| shape != least);
            std::iter::once(least).chain(others).collect()
        };
        SHAPES.run((self.clone(), batch, lanes), shapes, |shape| {
            self.run(arch, shape, batch, source, &weight, epilogue)
        })
    }

    /// The correlation of each sample in `source` with `weight(out, c, ky, kx)`, in tiles of
    /// `shape`, each output plane through `epilogue`. Every shape sums each output's taps in the
    /// same order: the same bits.
    fn run(
        &self,
        arch: pulp::Arch,
        shape: TileShape,
        batch: usize,
        source: &[f32],
        weight: impl Fn(usize, usize, usize, usize) -> f32,
        epilogue: &Epilogue,
    ) -> Vec<f32> {
        let lanes = arch.dispatch(Lanes);
        let [channels_in, channels_out] = self.channels;
        let [kh, kw] = self.kernel;
        let block = shape.block(lanes);
        // The weight as the tiles read it: per block of output channels, per tap, the block's
        // weights side by side (zero past the last channel).
        let blocks = channels_out.div_ceil(block);
        let taps = channels_in * kh * kw;
        let mut packed = vec![0.0; blocks * taps * block];
        for (b, panel) in packed.chunks_exact_mut(taps * block).enumerate() {
            for (tap, row) in panel.chunks_exact_mut(block).enumerate() {
                let (c, ky, kx) = (tap / (kh * kw), (tap / kw) % kh, tap % kw);
                for (j, w) in row.iter_mut().enumerate() {
                    let out = b * block + j;
                    if out < channels_out {
                        *w = weight(out, c, ky, kx);
                    }
                }
            }
        }
        let layout = self.layout(shape, lanes);
        let offsets = self.offsets(&layout);
        let chunk = self.chunk(&layout, shape, lanes);
        let [oh, ow] = self.output;
        let sample_in = channels_in * self.source[0] * self.source[1];
        let sample_out = channels_out * oh * ow;
        written_in_pieces(
            batch * sample_out,
            sample_out,
            || {
                (
                    vec![0.0; layout.padded],
                    vec![0.0; blocks * block * layout.computed],
                )
            },
            |(padded, sums), i, output| {
                let source = &source[i * sample_in..][..sample_in];
                self.pad(source, &layout, padded);
                arch.dispatch(Tiles {
                    shape,
                    padded,
                    packed: &packed,
                    offsets: &offsets,
                    computed: layout.computed,
                    output: self.output,
                    width: layout.width,
                    chunk,
                    sums,
                });
                match shape {
                    TileShape::Wide | TileShape::Narrow => {
                        for (c, plane) in output.chunks_exact_mut(oh * ow).enumerate() {
                            let sums = &sums[c * layout.computed..];
                            for (y, row) in plane.chunks_exact_mut(ow).enumerate() {
                                row.copy_from_slice(&sums[y * layout.width..][..ow]);
                            }
                        }
                    }
                    TileShape::Pixels => {
                        self.channels_first(sums, layout.computed, block, output);
                    }
                }
                for (c, plane) in output.chunks_exact_mut(oh * ow).enumerate() {
                    epilogue.apply(c, plane);
                }
            },
        )
    }

    /// Where each tap `(c, ky, kx)` reads, from a position, in the padded planes.
    fn offsets(&self, layout: &Layout) -> Vec<usize> {
        let [kh, kw] = self.kernel;
        (0..self.channels[0] * kh * kw)
            .map(|tap| {
                let (c, ky, kx) = (tap / (kh * kw), (tap / kw) % kh, tap % kw);
                c * layout.plane + ky * layout.width + kx
            })
            .collect()
    }

    /// The padded planes of a sample, for tiles of `shape`.
    fn layout(&self, shape: TileShape, lanes: usize) -> Layout {
        let [oh, ow] = self.output;
        let [kh, kw] = self.kernel;
        let (height, width) = (oh + kh - 1, ow + kw - 1);
        let plane = height * width;
        let computed = shape.computed(lanes, self.output, kw);
        // How far on from where a tap of the last channel reads for the first position the last
        // tile reads.
        let tiles_reach = match shape {
            TileShape::Wide | TileShape::Narrow => computed,
            TileShape::Pixels => oh.saturating_sub(1) * width + computed / oh.max(1),
        };
        let reach =
            self.channels[0].saturating_sub(1) * plane + (kh - 1) * width + (kw - 1) + tiles_reach;
        Layout {
            width,
            plane,
            computed,
            padded: reach.max(self.channels[0] * plane),
        }
    }

    /// Taps per pass over the tiles (see [`Tiles`]): as many channels' taps as fill half the
    /// first-level cache with what a tile reads of a channel's planes and that channel's
    /// weights for a block of output channels; for [`TileShape::Pixels`], whose tiles
    /// of a block run over the whole plane, with the block's weights alone.
    fn chunk(&self, layout: &Layout, shape: TileShape, lanes: usize) -> usize {
        let [kh, kw] = self.kernel;
        let weights = kh * kw * shape.block(lanes);
        let per_channel = match shape {
            TileShape::Wide | TileShape::Narrow => {
                shape.positions(lanes) + (kh - 1) * layout.width + kw - 1 + weights
            }
            TileShape::Pixels => weights,
        };
        (first_level_cache_floats() / 2 / per_channel).max(1) * kh * kw
    }

    /// Sums of [`TileShape::Pixels`] tiles, `[block, oh, row, block's channels]` with `computed`
    /// = `oh · row` positions per block, as the output's planes `[channels, oh, ow]`.
    fn channels_first(&self, sums: &[f32], computed: usize, block: usize, output: &mut [f32]) {
        let [oh, ow] = self.output;
        let row = computed / oh.max(1);
        let channels = self.channels[1];
        for (b, sums) in sums.chunks_exact(computed * block).enumerate() {
            let first = b * block;
            let columns = block.min(channels - first);
            let planes = &mut output[first * oh * ow..];
            if row == ow {
                transpose((sums, block), (planes, oh * ow), [oh * ow, columns]);
            } else {
                for y in 0..oh {
                    transpose(
                        (&sums[y * row * block..], block),
                        (&mut planes[y * ow..], oh * ow),
                        [ow, columns],
                    );
                }
            }
        }
    }

    /// One sample's source planes into `padded`, which holds zeros or an earlier sample's planes
    /// of the same layout: the zeros around the planes are never written, so they stay (rows or
    /// columns of the source past the padded planes are left out: no output reads them).
    fn pad(&self, source: &[f32], layout: &Layout, padded: &mut [f32]) {
        let [h, w] = self.source;
        let [top, left] = self.offset;
        let height = layout.plane / layout.width;
        let rows = h.min(height - top);
        let columns = w.min(layout.width - left);
        // Unpadded rows as wide as the source's (a convolution without padding, as convnet's):
        // the planes' rows lie as the source's do, copied a plane (or the sample) at once rather
        // than a short row at a time.
        let whole_rows = left == 0 && layout.width == w;
        if whole_rows && top == 0 && rows == h && layout.plane == h * w {
            padded[..source.len()].copy_from_slice(source);
            return;
        }
        for (c, from) in source.chunks_exact(h * w).enumerate() {
            let to = &mut padded[c * layout.plane..][..layout.plane];
            if whole_rows {
                to[top * w..][..rows * w].copy_from_slice(&from[..rows * w]);
                continue;
            }
            for y in 0..rows {
                to[(top + y) * layout.width + left..][..columns]
                    .copy_from_slice(&from[y * w..][..columns]);
            }
        }
    }
}

/// Where a sample's values lie in its scratch buffers.
struct Layout {
    /// The padded planes' width: `ow + kw − 1`.
    width: usize,
    /// One padded plane.
    plane: usize,
    /// Positions computed per output channel: `oh` rows of `width`, rounded up to whole tiles.
    computed: usize,
    /// The padded planes and what the last tile reads past them.
    padded: usize,
}

/// Every tile of a sample: `sums[o, p] = Σ_tap packed(o, tap) · padded[offsets[tap] + p]`, for
/// [`TileShape::Pixels`] `[block, oh, row, o]` instead of `[o, p]`.
struct Tiles<'a> {
    shape: TileShape,
    padded: &'a [f32],
    packed: &'a [f32],
    offsets: &'a [usize],
    /// Positions computed per output channel.
    computed: usize,
    output: [usize; 2],
    /// The padded planes' width.
    width: usize,
    /// Taps per pass over the tiles: a few input channels' worth, so that the values a tile
    /// reads stay in the first-level cache from one block of output channels to the next.
    chunk: usize,
    sums: &'a mut [f32],
}

impl WithSimd for Tiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        match (self.shape, self.shape.block(S::F32_LANES)) {
            (TileShape::Wide, 8) => self.run::<S, 3, 8>(simd),
            (TileShape::Wide, _) => self.run::<S, 3, 4>(simd),
            (TileShape::Narrow, 16) => self.run::<S, 1, 16>(simd),
            (TileShape::Narrow, _) => self.run::<S, 1, 8>(simd),
            (TileShape::Pixels, _) if pixel_tile(S::F32_LANES) == 8 => {
                self.run_pixels::<S, 8, PIXEL_VECTORS>(simd)
            }
            (TileShape::Pixels, _) => self.run_pixels::<S, 4, PIXEL_VECTORS>(simd),
        }
    }
}

impl Tiles<'_> {
    #[inline(always)]
    fn run<S: Simd, const VECTORS: usize, const BLOCK: usize>(self, simd: S) {
        let lanes = S::F32_LANES;
        assert_eq!(
            (VECTORS * lanes, BLOCK),
            (self.shape.positions(lanes), self.shape.block(lanes))
        );
        let tile = VECTORS * lanes;
        let taps = self.offsets.len();
        let reach = self.offsets.iter().max().map_or(0, |m| m + self.computed);
        assert!(reach <= self.padded.len() && self.packed.len().is_multiple_of(taps * BLOCK));
        assert!(self.sums.len() >= self.packed.len() / taps * self.computed);
        let padded = self.padded.as_ptr();
        for first in (0..taps).step_by(self.chunk) {
            let chunk = first..(first + self.chunk).min(taps);
            let offsets = &self.offsets[chunk.clone()];
            for p in (0..self.computed).step_by(tile) {
                for (b, panel) in self.packed.chunks_exact(taps * BLOCK).enumerate() {
                    let weights = &panel[chunk.start * BLOCK..chunk.end * BLOCK];
                    let at = |j: usize| (b * BLOCK + j) * self.computed + p;
                    // The sums so far, when an earlier chunk of taps left them.
                    let mut sums: [[S::f32s; VECTORS]; BLOCK] = std::array::from_fn(|j| {
                        if first == 0 {
                            [simd.splat_f32s(0.0); VECTORS]
                        } else {
                            let (vectors, _) = S::as_simd_f32s(&self.sums[at(j)..][..tile]);
                            std::array::from_fn(|v| vectors[v])
                        }
                    });
                    for (&offset, weights) in offsets.iter().zip(weights.chunks_exact(BLOCK)) {
                        // SAFETY: `offset + p + tile <= reach <= padded.len()` (asserted above),
                        // and `S::f32s` is `lanes` f32s, read unaligned.
                        let values: [S::f32s; VECTORS] = std::array::from_fn(|v| unsafe {
                            padded
                                .add(offset + p + v * lanes)
                                .cast::<S::f32s>()
                                .read_unaligned()
                        });
                        for (sum, &w) in sums.iter_mut().zip(weights) {
                            let w = simd.splat_f32s(w);
                            for (s, &x) in sum.iter_mut().zip(&values) {
                                *s = simd.mul_add_f32s(x, w, *s);
                            }
                        }
                    }
                    for (j, sum) in sums.iter().enumerate() {
                        let (vectors, _) = S::as_mut_simd_f32s(&mut self.sums[at(j)..][..tile]);
                        for (to, s) in vectors.iter_mut().zip(sum) {
                            *to = *s;
                        }
                    }
                }
            }
        }
    }

    /// [`TileShape::Pixels`] tiles of `PIXELS` positions × `VECTORS` vectors of channels.
    #[inline(always)]
    fn run_pixels<S: Simd, const PIXELS: usize, const VECTORS: usize>(self, simd: S) {
        let lanes = S::F32_LANES;
        let block = VECTORS * lanes;
        assert_eq!(
            (PIXELS, block),
            (self.shape.positions(lanes), self.shape.block(lanes))
        );
        let [oh, _] = self.output;
        let taps = self.offsets.len();
        let row = self.computed / oh.max(1);
        assert!(row.is_multiple_of(PIXELS) && self.packed.len().is_multiple_of(taps * block));
        let reach = self
            .offsets
            .iter()
            .max()
            .map_or(0, |m| m + oh.saturating_sub(1) * self.width + row);
        assert!(reach <= self.padded.len());
        assert!(self.sums.len() >= self.packed.len() / taps * self.computed);
        let padded = self.padded.as_ptr();
        for first in (0..taps).step_by(self.chunk) {
            let chunk = first..(first + self.chunk).min(taps);
            let offsets = &self.offsets[chunk.clone()];
            for (b, panel) in self.packed.chunks_exact(taps * block).enumerate() {
                let weights = &panel[chunk.start * block..chunk.end * block];
                for y in 0..oh {
                    for x in (0..row).step_by(PIXELS) {
                        let at = (b * self.computed + y * row + x) * block;
                        let tile = &mut self.sums[at..][..PIXELS * block];
                        // The sums so far, when an earlier chunk of taps left them.
                        let mut sums: [[S::f32s; VECTORS]; PIXELS] = std::array::from_fn(|i| {
                            if first == 0 {
                                [simd.splat_f32s(0.0); VECTORS]
                            } else {
                                let (vectors, _) = S::as_simd_f32s(&tile[i * block..][..block]);
                                std::array::from_fn(|v| vectors[v])
                            }
                        });
                        let start = y * self.width + x;
                        for (&offset, weights) in offsets.iter().zip(weights.chunks_exact(block)) {
                            let (weights, _) = S::as_simd_f32s(weights);
                            for (i, sum) in sums.iter_mut().enumerate() {
                                // SAFETY: `offset + start + i < reach <= padded.len()`
                                // (asserted above): `start + i < (oh − 1)·width + row`.
                                let value =
                                    simd.splat_f32s(unsafe { *padded.add(offset + start + i) });
                                for (s, &w) in sum.iter_mut().zip(weights) {
                                    *s = simd.mul_add_f32s(value, w, *s);
                                }
                            }
                        }
                        for (i, sum) in sums.iter().enumerate() {
                            let (vectors, _) = S::as_mut_simd_f32s(&mut tile[i * block..][..block]);
                            for (to, s) in vectors.iter_mut().zip(sum) {
                                *to = *s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A sample's share of [`weight_grad`]: `sum[tap, o] += Σ_p padded[offsets[tap] + p] · turned[p, o]`
/// over the output positions `p`.
struct GradientTiles<'a> {
    padded: &'a [f32],
    /// The output gradient, `[position, channel]`, its rows padded to whole tiles with zeros.
    turned: &'a [f32],
    offsets: &'a [usize],
    output: [usize; 2],
    /// The padded planes' width.
    width: usize,
    /// `[tap, channel]`, rows as long as `turned`'s.
    sum: &'a mut [f32],
}

impl WithSimd for GradientTiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        if tap_tile(S::F32_LANES) == 12 {
            self.run::<S, 12>(simd);
        } else {
            self.run::<S, 6>(simd);
        }
    }
}

impl GradientTiles<'_> {
    #[inline(always)]
    fn run<S: Simd, const TAPS: usize>(self, simd: S) {
        let lanes = S::F32_LANES;
        let columns = GRADIENT_VECTORS * lanes;
        let [oh, ow] = self.output;
        let row = self.sum.len() / self.offsets.len();
        assert!(row.is_multiple_of(columns) && self.turned.len() == oh * ow * row);
        let reach = (oh - 1) * self.width + ow;
        assert!(self.offsets.iter().all(|&o| o + reach <= self.padded.len()));
        for first in (0..row).step_by(columns) {
            for (tile, offsets) in self.offsets.chunks(TAPS).enumerate() {
                // A whole tile of taps, the last one's repeated into a short last tile: loops
                // of a constant length keep the sums in registers.
                let taps: [usize; TAPS] =
                    std::array::from_fn(|i| offsets[i.min(offsets.len() - 1)]);
                let mut sums = [[simd.splat_f32s(0.0); GRADIENT_VECTORS]; TAPS];
                for oy in 0..oh {
                    for ox in 0..ow {
                        let p = oy * self.width + ox;
                        let (gradients, _) = S::as_simd_f32s(
                            &self.turned[(oy * ow + ox) * row + first..][..columns],
                        );
                        for (sum, &offset) in sums.iter_mut().zip(&taps) {
                            // SAFETY: `offset + p < offset + reach <= padded.len()` (asserted).
                            let x =
                                simd.splat_f32s(unsafe { *self.padded.get_unchecked(offset + p) });
                            for (s, &g) in sum.iter_mut().zip(gradients) {
                                *s = simd.mul_add_f32s(x, g, *s);
                            }
                        }
                    }
                }
                for (i, sum) in sums.iter().enumerate().take(offsets.len()) {
                    let tap = tile * TAPS + i;
                    let (to, _) =
                        S::as_mut_simd_f32s(&mut self.sum[tap * row + first..][..columns]);
                    for (to, s) in to.iter_mut().zip(sum) {
                        *to = simd.add_f32s(*to, *s);
                    }
                }
            }
        }
    }
}

#[cfg(all(test, any(target_arch = "x86", target_arch = "x86_64")))]
mod tests {
    use crate::math::every_arch;

    use super::*;

    /// The convolution's output and both gradients by their definition, in f64.
    fn by_definition(
        x: &[f32],
        weight: &[f32],
        output_grad: &[f32],
        g: &Geometry,
    ) -> [Vec<f64>; 3] {
        let ([h, w], [oh, ow], [kh, kw]) = (g.input, g.output, g.kernel);
        let (ci, co) = (g.channels_in, g.channels_out);
        let mut output = vec![0.0; g.batch * co * oh * ow];
        let mut input_grad = vec![0.0; x.len()];
        let mut weight_grad = vec![0.0; weight.len()];
        for n in 0..g.batch {
            for o in 0..co {
                for (y, x_out) in (0..oh).flat_map(|y| (0..ow).map(move |x| (y, x))) {
                    let out = ((n * co + o) * oh + y) * ow + x_out;
                    for (c, ky, kx) in (0..ci).flat_map(|c| {
                        (0..kh).flat_map(move |ky| (0..kw).map(move |kx| (c, ky, kx)))
                    }) {
                        let (Some(iy), Some(ix)) = (
                            (y + ky).checked_sub(g.padding[0]).filter(|&iy| iy < h),
                            (x_out + kx).checked_sub(g.padding[1]).filter(|&ix| ix < w),
                        ) else {
                            continue;
                        };
                        let at = ((n * ci + c) * h + iy) * w + ix;
                        let tap = ((o * ci + c) * kh + ky) * kw + kx;
                        output[out] += f64::from(weight[tap]) * f64::from(x[at]);
                        input_grad[at] += f64::from(weight[tap]) * f64::from(output_grad[out]);
                        weight_grad[tap] += f64::from(output_grad[out]) * f64::from(x[at]);
                    }
                }
            }
        }
        [output, input_grad, weight_grad]
    }

    fn assert_close(ours: &[f32], reference: &[f64], what: &str) {
        let scale = reference
            .iter()
            .fold(0f64, |m, v| m.max(v.abs()))
            .max(1e-30);
        let worst = ours
            .iter()
            .zip(reference)
            .map(|(&a, &b)| (f64::from(a) - b).abs() / scale)
            .fold(0f64, f64::max);
        assert_eq!(ours.len(), reference.len(), "{what}");
        assert!(worst < 1e-5, "{what} differs by {worst}");
    }

    /// Every instruction set this CPU has, AVX2's tiles (4 channels of 24 positions or 8 of 8,
    /// 4 positions of 16 channels, 6 taps) and the scalar ones included, which an AVX-512 machine
    /// never picks on its own; wide tiles, narrow ones (8x8 planes of a vector's channels) and
    /// pixel tiles (8x8 planes of 30 channels, and 8x6 planes of 32, rows shorter than a tile,
    /// forward and input gradient).
    #[test]
    fn every_instruction_set_computes_the_definition() {
        for lanes in [8, 16] {
            let shape = |side, kw, channels| TileShape::for_planes(lanes, side, kw, channels);
            assert_eq!(shape([8, 8], 3, lanes), TileShape::Narrow);
            assert_eq!(shape([9, 11], 3, 20), TileShape::Wide);
            assert_eq!(shape([8, 8], 3, 30), TileShape::Pixels);
            assert_eq!(shape([8, 6], 5, 32), TileShape::Pixels);
        }
        let arches = every_arch();
        let geometry = |batch,
                        [ci, co]: [usize; 2],
                        input: [usize; 2],
                        kernel: [usize; 2],
                        padding: [usize; 2]| {
            let output = [0, 1].map(|a| input[a] + 2 * padding[a] + 1 - kernel[a]);
            Geometry {
                batch,
                channels_in: ci,
                groups: 1,
                input,
                channels_out: co,
                output,
                kernel,
                stride: [1, 1],
                padding,
                dilation: [1, 1],
            }
        };
        for g in [
            geometry(3, [5, 20], [9, 11], [3, 3], [1, 1]),
            geometry(2, [7, 9], [8, 13], [5, 3], [2, 0]),
            geometry(1, [30, 6], [6, 6], [5, 5], [4, 4]),
            geometry(2, [9, 16], [8, 8], [3, 3], [1, 1]),
            geometry(2, [9, 8], [8, 8], [3, 3], [1, 1]),
            geometry(2, [3, 30], [8, 8], [3, 3], [1, 1]),
            geometry(2, [32, 32], [8, 6], [5, 5], [2, 2]),
        ] {
            let values = |len: usize, seed: usize| -> Vec<f32> {
                (0..len)
                    .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0)
                    .collect()
            };
            let x = values(g.batch * g.channels_in * g.input[0] * g.input[1], 1);
            let weight = values(
                g.channels_out * g.channels_in * g.kernel[0] * g.kernel[1],
                2,
            );
            let output_grad = values(g.batch * g.channels_out * g.output[0] * g.output[1], 3);
            let [output, input_grad, weight_grad] = by_definition(&x, &weight, &output_grad, &g);
            for &arch in &arches {
                let case = format!("{arch:?}, {g:?}");
                let forward = forward_on(arch, &x, &weight, &g, &Epilogue::NONE);
                assert_close(&forward, &output, &format!("output, {case}"));
                let ours = input_grad_on(arch, &weight, &output_grad, &g);
                assert_close(&ours, &input_grad, &format!("input gradient, {case}"));
                let ours = weight_grad_on(arch, &x, &output_grad, &g);
                assert_close(&ours, &weight_grad, &format!("weight gradient, {case}"));
            }
        }
    }

    /// Wide, narrow and pixel tiles give the same bits, on every instruction set: which one a
    /// layer runs in leaves a seeded training run as it was.
    #[test]
    fn every_tile_shape_sums_in_the_same_order() {
        let correlation = Correlation {
            channels: [21, 40],
            source: [8, 7],
            output: [8, 7],
            kernel: [3, 3],
            offset: [1, 1],
        };
        let source: Vec<f32> = (0..2 * 21 * 8 * 7)
            .map(|i| ((i * 7919) % 2003) as f32 / 1001.0 - 1.0)
            .collect();
        let weight = |out: usize, c: usize, ky: usize, kx: usize| {
            (((out * 21 + c) * 9 + ky * 3 + kx) * 104_729 % 1999) as f32 / 999.0 - 1.0
        };
        for arch in every_arch() {
            let [wide, narrow, pixels] = [TileShape::Wide, TileShape::Narrow, TileShape::Pixels]
                .map(|shape| correlation.run(arch, shape, 2, &source, weight, &Epilogue::NONE));
            assert!(wide.iter().any(|&v| v != 0.0), "{arch:?}");
            assert_eq!(wide, narrow, "{arch:?}");
            assert_eq!(wide, pixels, "{arch:?}");
        }
    }
}
