//! A depthwise convolution (every channel convolved with its own kernel, as in EfficientNet and
//! MobileNet) and its gradients on contiguous f32 data, one channel plane at a time.
//!
//! Burn's CPU backend adds each kernel tap's product into the output row in memory (a load and a
//! store per multiply) and walks stride-2 rows one element at a time; it computes the weight
//! gradient group by group, each a convolution over the whole batch followed by a copy of the
//! whole gradient tensor, and the input gradient as a grouped transposed convolution. Here each
//! plane is first copied into a zero-padded scratch whose columns are split by their remainder
//! modulo the stride, so that every tap reads (or, for the input gradient, writes) contiguous
//! values whatever the stride. The forward pass sums sixteen outputs' taps in registers before one
//! store, in Burn's order and unfused, so its values are Burn's bit for bit. Every plane's loops
//! are compiled for the vector instructions the CPU has (AVX2 with FMA, AVX-512), chosen at run
//! time through `pulp`: built for the baseline x86-64 otherwise, they would use SSE2 only.
//! Planes narrower than those sixteen outputs go channels-last instead ([`channels`]), as do
//! values laid out channels-last ([`Channels::Last`]).

mod channels;

use rayon::prelude::*;

use super::Channels;
use super::convolution::Geometry;
use super::epilogue::Epilogue;
use super::output::written_in_pieces;

/// Outputs computed together in registers: two AVX2 vectors, one AVX-512 vector.
const LANES: usize = 16;

/// The output, `[batch, channels, oh, ow]`, from the input (`[batch, channels, h, w]`) and the
/// weight (`[channels, 1, kh, kw]`), each plane through `epilogue` as it is written; with `order`
/// [`Channels::Last`], `[batch, oh, ow, channels]` from `[batch, h, w, channels]`.
pub fn forward(
    x: &[f32],
    weight: &[f32],
    g: &Geometry,
    order: Channels,
    epilogue: &Epilogue,
) -> Vec<f32> {
    if order == Channels::Last || channels::suits(g) {
        return channels::forward(x, weight, g, order, epilogue);
    }
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    let len = g.batch * g.channels_out * oh * ow;
    if len == 0 {
        return Vec::new();
    }
    let scratch = Scratch::new(g);
    let arch = crate::math::arch();
    // Small planes (7x7 at the end of EfficientNet) go several to a task.
    let planes_per_task = (4096 / (oh * ow)).max(1);
    written_in_pieces(
        len,
        oh * ow * planes_per_task,
        Vec::new,
        |padded, task, out| {
            for (k, out) in out.chunks_mut(oh * ow).enumerate() {
                let plane = task * planes_per_task + k;
                let channel = plane % g.channels_in;
                let kernel = &weight[channel * kh * kw..][..kh * kw];
                let x = &x[plane * h * w..][..h * w];
                arch.dispatch(Plane {
                    scratch: &scratch,
                    x,
                    kernel,
                    padded,
                    out,
                    epilogue: (epilogue, channel),
                });
            }
        },
    )
}

/// One plane's convolution, compiled for each instruction set [`pulp`] chooses among; what it
/// calls is inlined into it for that.
struct Plane<'a> {
    scratch: &'a Scratch<'a>,
    x: &'a [f32],
    kernel: &'a [f32],
    padded: &'a mut Vec<f32>,
    out: &'a mut [f32],
    /// What the plane goes through, and its channel.
    epilogue: (&'a Epilogue<'a>, usize),
}

impl pulp::WithSimd for Plane<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        self.scratch.fill(self.x, self.padded);
        self.scratch.convolve(self.padded, self.kernel, self.out);
        let (epilogue, channel) = self.epilogue;
        epilogue.apply(channel, self.out);
    }
}

/// How a plane lies in the padded scratch: the rows the output reads, each as `stride` phases of
/// `phase_width` columns (phase `p`, column `j` holds padded column `stride·j + p`), wide enough
/// for whole groups of [`LANES`] outputs; and where each kernel tap reads, from an output row's
/// first padded row and its first column.
struct Scratch<'a> {
    g: &'a Geometry,
    rows: usize,
    /// The input columns the output reads (the padding after them aside).
    used_columns: usize,
    phase_width: usize,
    taps: Vec<usize>,
    /// The furthest tap, plus [`LANES`]: what a group of outputs reads past its first value.
    reach: usize,
}

/// Where a row's input columns go among the phases for stride 2: pairs of columns `(2i, 2i + 1)`
/// to `(first[first_start + i], second[second_start + i])`, and a last odd one to
/// `first[first_start + pairs]`; `first` is phase 0 when the padding before is even.
struct Stride2 {
    first_start: usize,
    second_start: usize,
    pairs: usize,
    odd: bool,
    swapped: bool,
}

impl<'a> Scratch<'a> {
    fn new(g: &'a Geometry) -> Self {
        let [oh, ow] = g.output;
        let [kh, kw] = g.kernel;
        let stride = g.stride[1];
        let rows = (oh - 1) * g.stride[0] + (kh - 1) * g.dilation[0] + 1;
        let columns = (ow - 1) * stride + (kw - 1) * g.dilation[1] + 1;
        let phase_width = ow.div_ceil(LANES) * LANES + (kw - 1) * g.dilation[1] / stride;
        let row_len = stride * phase_width;
        let taps = (0..kh)
            .flat_map(|ky| (0..kw).map(move |kx| (ky, kx)))
            .map(|(ky, kx)| {
                let column = kx * g.dilation[1];
                ky * g.dilation[0] * row_len + column % stride * phase_width + column / stride
            })
            .collect::<Vec<usize>>();
        let reach = taps.iter().max().expect("a kernel tap") + LANES;
        Self {
            g,
            rows,
            used_columns: g.input[1].min(columns.saturating_sub(g.padding[1])),
            phase_width,
            taps,
            reach,
        }
    }

    fn row_len(&self) -> usize {
        self.g.stride[1] * self.phase_width
    }

    /// The padded rows that hold input rows, with the input row each holds.
    fn input_rows(&self) -> impl Iterator<Item = (usize, usize)> {
        let top = self.g.padding[0];
        (top..self.rows.min(top + self.g.input[0])).map(move |r| (r, r - top))
    }

    fn stride2(&self) -> Stride2 {
        let left = self.g.padding[1];
        Stride2 {
            first_start: left / 2,
            second_start: left / 2 + left % 2,
            pairs: self.used_columns / 2,
            odd: self.used_columns % 2 == 1,
            swapped: left % 2 == 1,
        }
    }

    /// The plane `x`, zero-padded and split into phases, into `padded`.
    #[inline(always)]
    fn fill(&self, x: &[f32], padded: &mut Vec<f32>) {
        let w = self.g.input[1];
        let left = self.g.padding[1];
        let (stride, width, used) = (self.g.stride[1], self.phase_width, self.used_columns);
        let row_len = self.row_len();
        padded.clear();
        padded.resize(self.rows * row_len, 0.0);
        for (r, y) in self.input_rows() {
            let row = &mut padded[r * row_len..][..row_len];
            let source = &x[y * w..][..used];
            match stride {
                1 => row[left..left + used].copy_from_slice(source),
                2 => {
                    let at = self.stride2();
                    let (even, odd) = row.split_at_mut(width);
                    let (first, second) = if at.swapped { (odd, even) } else { (even, odd) };
                    let n = at.pairs;
                    for ((pair, a), b) in source
                        .chunks_exact(2)
                        .zip(&mut first[at.first_start..][..n])
                        .zip(&mut second[at.second_start..][..n])
                    {
                        *a = pair[0];
                        *b = pair[1];
                    }
                    if at.odd {
                        first[at.first_start + n] = source[2 * n];
                    }
                }
                _ => {
                    for (c, &value) in source.iter().enumerate() {
                        let column = left + c;
                        row[column % stride * width + column / stride] = value;
                    }
                }
            }
        }
    }

    /// The inverse of [`Scratch::fill`]: the input plane's values from the padded scratch, the
    /// padding dropped; columns and rows the output does not read are zero.
    #[inline(always)]
    fn unfill(&self, padded: &[f32], x: &mut [f32]) {
        let w = self.g.input[1];
        let left = self.g.padding[1];
        let (stride, width, used) = (self.g.stride[1], self.phase_width, self.used_columns);
        let row_len = self.row_len();
        for (r, y) in self.input_rows() {
            let row = &padded[r * row_len..][..row_len];
            let target = &mut x[y * w..][..used];
            match stride {
                1 => target.copy_from_slice(&row[left..left + used]),
                2 => {
                    let at = self.stride2();
                    let (even, odd) = row.split_at(width);
                    let (first, second) = if at.swapped { (odd, even) } else { (even, odd) };
                    let n = at.pairs;
                    for ((pair, a), b) in target
                        .chunks_exact_mut(2)
                        .zip(&first[at.first_start..][..n])
                        .zip(&second[at.second_start..][..n])
                    {
                        pair[0] = *a;
                        pair[1] = *b;
                    }
                    if at.odd {
                        target[2 * n] = first[at.first_start + n];
                    }
                }
                _ => {
                    for (c, value) in target.iter_mut().enumerate() {
                        let column = left + c;
                        *value = row[column % stride * width + column / stride];
                    }
                }
            }
        }
    }

    /// The gradient of the padded scratch from the output's, into `padded`: each output
    /// gradient times each tap added where the tap read, kernel rows outermost, so that every
    /// value sums its terms in the order of the row of the kernel, then its column.
    #[inline(always)]
    fn spread(&self, output_grad: &[f32], kernel: &[f32], padded: &mut Vec<f32>) {
        let g = self.g;
        let ow = g.output[1];
        let [kh, kw] = g.kernel;
        let row_len = self.row_len();
        padded.clear();
        padded.resize(self.rows * row_len, 0.0);
        for ky in 0..kh {
            for (oy, from) in output_grad.chunks_exact(ow).enumerate() {
                let rows = &mut padded[oy * g.stride[0] * row_len..];
                for kx in 0..kw {
                    let tap = kernel[ky * kw + kx];
                    let to = &mut rows[self.taps[ky * kw + kx]..][..ow];
                    for (to, from) in to.iter_mut().zip(from) {
                        *to += tap * from;
                    }
                }
            }
        }
    }

    /// The output plane from the padded scratch: every tap of [`LANES`] outputs summed in
    /// registers, in Burn's order (row of the kernel, then column).
    #[inline(always)]
    fn convolve(&self, padded: &[f32], kernel: &[f32], out: &mut [f32]) {
        let g = self.g;
        let ow = g.output[1];
        let row_len = self.row_len();
        for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
            let rows = &padded[oy * g.stride[0] * row_len..];
            for (group, out) in out_row.chunks_mut(LANES).enumerate() {
                let from = &rows[group * LANES..][..self.reach];
                let mut sums = [0.0f32; LANES];
                for (&at, &tap) in self.taps.iter().zip(kernel) {
                    let values: &[f32; LANES] = from[at..at + LANES].try_into().expect("lanes");
                    for lane in 0..LANES {
                        sums[lane] += values[lane] * tap;
                    }
                }
                out.copy_from_slice(&sums[..out.len()]);
            }
        }
    }
}

/// The input gradient, `[batch, channels, h, w]`, from the weight (`[channels, 1, kh, kw]`) and
/// the output gradient (`[batch, channels, oh, ow]`): spread into the padded scratch, where every
/// tap writes contiguous values whatever the stride, then the padding dropped. Channels-last in
/// `order` [`Channels::Last`], as [`forward`].
pub fn input_grad(weight: &[f32], output_grad: &[f32], g: &Geometry, order: Channels) -> Vec<f32> {
    if order == Channels::Last || channels::suits(g) {
        return channels::input_grad(weight, output_grad, g, order);
    }
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    let len = g.batch * g.channels_in * h * w;
    if len == 0 || oh * ow == 0 {
        return vec![0.0; len];
    }
    let scratch = Scratch::new(g);
    let arch = crate::math::arch();
    written_in_pieces(len, h * w, Vec::new, |padded, plane, grad| {
        let output_grad = &output_grad[plane * oh * ow..][..oh * ow];
        let kernel = &weight[(plane % g.channels_in) * kh * kw..][..kh * kw];
        arch.dispatch(PlaneGrad {
            scratch: &scratch,
            output_grad,
            kernel,
            padded,
            grad,
        });
    })
}

/// One plane's input gradient, compiled as [`Plane`] is.
struct PlaneGrad<'a> {
    scratch: &'a Scratch<'a>,
    output_grad: &'a [f32],
    kernel: &'a [f32],
    padded: &'a mut Vec<f32>,
    grad: &'a mut [f32],
}

impl pulp::WithSimd for PlaneGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        self.scratch
            .spread(self.output_grad, self.kernel, self.padded);
        self.scratch.unfill(self.padded, self.grad);
    }
}

/// The weight gradient, `[channels, 1, kh, kw]`, from the input (`[batch, channels, h, w]`) and
/// the output gradient (`[batch, channels, oh, ow]`): for each tap, the dot products of the
/// output gradient's rows with the padded scratch's values the tap read. Channels-last in
/// `order` [`Channels::Last`], as [`forward`].
pub fn weight_grad(x: &[f32], output_grad: &[f32], g: &Geometry, order: Channels) -> Vec<f32> {
    if order == Channels::Last || channels::suits(g) {
        return channels::weight_grad(x, output_grad, g, order);
    }
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    let mut grad = vec![0.0; g.channels_out * kh * kw];
    if grad.is_empty() || oh * ow == 0 {
        return grad;
    }
    let scratch = Scratch::new(g);
    let arch = crate::math::arch();
    grad.par_chunks_mut(kh * kw)
        .enumerate()
        .for_each_init(Vec::new, |padded, (channel, grad)| {
            arch.dispatch(ChannelWeightGrad {
                scratch: &scratch,
                x,
                output_grad,
                channel,
                padded,
                grad,
            });
        });
    grad
}

/// One channel's weight gradient over the batch, compiled as [`Plane`] is.
struct ChannelWeightGrad<'a> {
    scratch: &'a Scratch<'a>,
    x: &'a [f32],
    output_grad: &'a [f32],
    channel: usize,
    padded: &'a mut Vec<f32>,
    grad: &'a mut [f32],
}

impl pulp::WithSimd for ChannelWeightGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let g = self.scratch.g;
        let ([h, w], [oh, ow]) = (g.input, g.output);
        let row_len = self.scratch.row_len();
        for sample in 0..g.batch {
            let plane = sample * g.channels_in + self.channel;
            self.scratch
                .fill(&self.x[plane * h * w..][..h * w], self.padded);
            let output_grad = &self.output_grad[plane * oh * ow..][..oh * ow];
            for (oy, from) in output_grad.chunks_exact(ow).enumerate() {
                let rows = &self.padded[oy * g.stride[0] * row_len..];
                for (grad, &at) in self.grad.iter_mut().zip(&self.scratch.taps) {
                    *grad += dot(from, &rows[at..][..ow]);
                }
            }
        }
    }
}

/// `Σ a[i]·b[i]`, in sixteen running sums so that it vectorizes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(a, b)| a * b)
        .sum();
    let mut sums = [0.0f32; LANES];
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((sum, a), b) in sums.iter_mut().zip(a).zip(b) {
            *sum += a * b;
        }
    }
    sums.iter().sum::<f32>() + tail
}
