//! A dense two-dimensional convolution (no groups) on contiguous f32 data, forward and both
//! gradients, each as one wide matrix product per group of samples over the unfolded input
//! (im2col): row `(ci, ky, kx)` of the columns holds, for every sample of the group and every
//! output position, the input value under that kernel tap. Burn computes the weight gradient as
//! another convolution whose kernel is the output gradient, which leaves its matrix product nine
//! columns wide for a 3x3 kernel; its forward pass builds its columns 512 positions of one sample
//! at a time. Stride-1 convolutions go to [`super::direct`] where it computes them without
//! columns at less waste.

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use super::bf16;
use super::direct;
use super::epilogue::Epilogue;
use super::output::{overwritten_in_pieces, written_in_pieces};
use super::transpose::transpose;

/// Output positions per matrix product, when planes are small enough to group samples: few
/// enough that a group's columns stay in cache (fastnet trained 15% faster with 256 than with
/// 1024, 64 no faster again).
const COLUMNS: usize = 256;

/// Parallel tasks of a weight gradient, each summing its share of the batch: enough to keep a
/// workstation's cores busy.
pub(super) const TASKS: usize = 8;

/// The sizes of a two-dimensional convolution, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub channels_in: usize,
    /// Groups of input channels convolved separately (1: every output sees every input).
    pub groups: usize,
    pub input: [usize; 2],
    pub channels_out: usize,
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Padding before the first row and column; the padding after the last one only decides
    /// the output's size.
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Geometry {
    /// Every output channel sees every input channel: what [`forward`], [`input_grad`] and
    /// [`weight_grad`] compute.
    pub fn is_dense(&self) -> bool {
        self.groups == 1
    }

    /// Every channel convolved with a kernel of its own: what `depthwise` differentiates.
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.channels_in && self.channels_out == self.channels_in
    }

    /// A 1x1 kernel, stride 1, no padding: each output plane mixes the input planes as they lie.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    fn output_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn input_sample(&self) -> usize {
        self.channels_in * self.input[0] * self.input[1]
    }

    /// One row of the weight: an output channel's kernel window over every input channel.
    fn patch(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }

    fn samples_per_group(&self) -> usize {
        (COLUMNS / self.output_plane().max(1)).clamp(1, self.batch.max(1))
    }
}

/// The output, `[batch, channels_out, oh, ow]`, of `x` (`[batch, channels_in, h, w]`) and the
/// weight (`[channels_out, channels_in, kh, kw]`), each group's planes through `epilogue` as they
/// are written.
pub fn forward(x: &[f32], weight: &[f32], g: &Geometry, epilogue: &Epilogue) -> Vec<f32> {
    if direct::computes_forward(g) && !in_bfloat16() {
        return direct::forward(x, weight, g, epilogue);
    }
    let sample = g.channels_out * g.output_plane();
    let per_group = g.samples_per_group();
    let plane = g.output_plane();
    written_in_pieces(
        g.batch * sample,
        per_group * sample,
        Scratch::default,
        |scratch, i, output| {
            let samples = i * per_group..i * per_group + output.len() / sample;
            let n = samples.len() * plane;
            let single = samples.len() == 1;
            let columns = columns(x, g, samples, n, &mut scratch.columns);
            // One sample's `[co, n]` planes are its output as it lies.
            let planes: &mut [f32] = if single {
                output
            } else {
                scratch.planes.resize(g.channels_out * n, 0.0);
                &mut scratch.planes
            };
            multiply(
                [g.channels_out, n, g.patch()],
                (planes, Layout::Rows),
                false,
                (weight, Layout::Rows),
                (columns, Layout::Rows),
                Parallelism::None,
            );
            if single {
                for (c, to) in output.chunks_exact_mut(plane).enumerate() {
                    epilogue.apply(c, to);
                }
                return;
            }
            for (j, output) in output.chunks_exact_mut(sample).enumerate() {
                for (c, to) in output.chunks_exact_mut(plane).enumerate() {
                    to.copy_from_slice(&scratch.planes[c * n + j * plane..][..plane]);
                    epilogue.apply(c, to);
                }
            }
        },
    )
}

/// The output of a pointwise convolution ([`Geometry::is_pointwise`]): the weight
/// `[channels_out, channels_in]` times the input's planes `[channels_in, h·w]`, each sample's planes
/// through `epilogue`. With as many samples as threads, [`forward`]: samples grouped on small
/// planes, each multiplied as it lies on large ones; fewer (one photo) split each product among
/// the threads instead.
pub fn pointwise(x: &[f32], weight: &[f32], g: &Geometry, epilogue: &Epilogue) -> Vec<f32> {
    if g.batch >= rayon::current_num_threads() {
        return forward(x, weight, g, epilogue);
    }
    let plane = g.output_plane();
    let sample = g.channels_out * plane;
    let mut output = vec![0.0; g.batch * sample];
    for (output, x) in output
        .chunks_mut(sample)
        .zip(x.chunks_exact(g.channels_in * plane))
    {
        multiply(
            [g.channels_out, plane, g.channels_in],
            (output, Layout::Rows),
            false,
            (weight, Layout::Rows),
            (x, Layout::Rows),
            Parallelism::Rayon(0),
        );
        for (c, to) in output.chunks_exact_mut(plane).enumerate() {
            epilogue.apply(c, to);
        }
    }
    output
}

/// Rows of a channels-last pointwise product per task: tall enough that packing the weight once
/// per task costs little, short enough to split a batch of 5x5 maps among many threads.
const ROWS: usize = 512;

/// A pointwise convolution ([`Geometry::is_pointwise`]) on channels-last values
/// ([`super::Channels::Last`]): the input `[positions, channels_in]` (every position of every
/// sample) times the transposed weight → `[positions, channels_out]`, as one product split by
/// rows among the threads, with no copies: on planes of 100 or 25 positions the planes' layout
/// gathers samples into groups of columns and copies the products back. Each position's outputs
/// then go through `epilogue` while in cache.
pub fn pointwise_last(x: &[f32], weight: &[f32], g: &Geometry, epilogue: &Epilogue) -> Vec<f32> {
    let (c_in, c_out) = (g.channels_in, g.channels_out);
    overwritten_in_pieces(
        g.batch * g.output_plane() * c_out,
        ROWS * c_out,
        |i, output| {
            let rows = output.len() / c_out;
            let output = multiply_over(
                [rows, c_out, c_in],
                output,
                (&x[i * ROWS * c_in..][..rows * c_in], Layout::Rows),
                (weight, Layout::Transposed),
            );
            for position in output.chunks_exact_mut(c_out) {
                epilogue.apply_across(position);
            }
            output
        },
    )
}

/// The input gradient of [`pointwise_last`], `[positions, channels_in]`: the output gradient
/// times the weight.
pub fn pointwise_last_input_grad(weight: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    let (c_in, c_out) = (g.channels_in, g.channels_out);
    overwritten_in_pieces(g.batch * g.output_plane() * c_in, ROWS * c_in, |i, grad| {
        let rows = grad.len() / c_in;
        multiply_over(
            [rows, c_in, c_out],
            grad,
            (
                &output_grad[i * ROWS * c_out..][..rows * c_out],
                Layout::Rows,
            ),
            (weight, Layout::Rows),
        )
    })
}

/// The weight gradient of [`pointwise_last`], `[channels_out, channels_in]`: the transposed
/// output gradient times the input, summed over [`TASKS`] fixed shares of the positions in a
/// fixed order (the same bits on any number of threads).
pub fn pointwise_last_weight_grad(x: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    let (c_in, c_out) = (g.channels_in, g.channels_out);
    let positions = g.batch * g.output_plane();
    let per_task = positions.div_ceil(TASKS).max(1);
    let partials: Vec<Vec<f32>> = (0..positions.div_ceil(per_task))
        .into_par_iter()
        .map(|task| {
            let first = task * per_task;
            let rows = per_task.min(positions - first);
            let mut sum = vec![0.0; c_out * c_in];
            multiply(
                [c_out, c_in, rows],
                (&mut sum, Layout::Rows),
                false,
                (
                    &output_grad[first * c_out..][..rows * c_out],
                    Layout::Transposed,
                ),
                (&x[first * c_in..][..rows * c_in], Layout::Rows),
                Parallelism::None,
            );
            sum
        })
        .collect();
    added_in_order(partials, c_out * c_in)
}

/// The gradient of the input, `[batch, channels_in, h, w]`, from the weight and the output
/// gradient (`[batch, channels_out, oh, ow]`).
pub fn input_grad(weight: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    if direct::computes_input_grad(g) && !in_bfloat16() {
        return direct::input_grad(weight, output_grad, g);
    }
    let sample = g.input_sample();
    let per_group = g.samples_per_group();
    written_in_pieces(
        g.batch * sample,
        per_group * sample,
        Scratch::default,
        |scratch, i, grad| {
            let samples = i * per_group..i * per_group + grad.len() / sample;
            let n = samples.len() * g.output_plane();
            let planes = gather(
                output_grad,
                [g.channels_out, g.output_plane()],
                samples,
                n,
                &mut scratch.planes,
            );
            scratch.columns.resize(g.patch() * n, 0.0);
            multiply(
                [g.patch(), n, g.channels_out],
                (&mut scratch.columns, Layout::Rows),
                false,
                (weight, Layout::Transposed),
                (planes, Layout::Rows),
                Parallelism::None,
            );
            fold(&scratch.columns, g, n, grad);
        },
    )
}

/// The gradient of the weight, `[channels_out, channels_in, kh, kw]`, from the input and the
/// output gradient.
pub fn weight_grad(x: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    if direct::computes_weight_grad(g) && !in_bfloat16() {
        return direct::weight_grad(x, output_grad, g);
    }
    let size = g.channels_out * g.patch();
    let per_group = g.samples_per_group();
    let groups: Vec<usize> = (0..g.batch).step_by(per_group).collect();
    // A fixed split and a fixed order of summation: the same sums, bit for bit, on any number of
    // threads, so that a seeded training run repeats exactly.
    let per_task = groups.len().div_ceil(TASKS).max(1);
    let partials: Vec<Vec<f32>> = groups
        .par_chunks(per_task)
        .map(|firsts| {
            let mut sum = vec![0.0; size];
            let mut scratch = Scratch::default();
            for &first in firsts {
                let samples = first..first + per_group.min(g.batch - first);
                let n = samples.len() * g.output_plane();
                let columns = columns(x, g, samples.clone(), n, &mut scratch.columns);
                let planes = gather(
                    output_grad,
                    [g.channels_out, g.output_plane()],
                    samples,
                    n,
                    &mut scratch.planes,
                );
                // Summed column-major, the product reads the columns as they lie and packs only
                // the (smaller) output planes: gemm packs a row-major left operand.
                multiply(
                    [g.channels_out, g.patch(), n],
                    (&mut sum, Layout::Transposed),
                    true,
                    (planes, Layout::Rows),
                    (columns, Layout::Transposed),
                    Parallelism::None,
                );
            }
            sum
        })
        .collect();
    summed_per_channel(partials, [g.patch(), g.channels_out], g.channels_out)
}

/// A weight gradient from the partial sums of the parallel tasks, each `[taps, row]` with the
/// channels first in each row of `row` values: the partials added in task order (the same bits on
/// any number of threads), then turned to `[channels, taps]`.
pub(super) fn summed_per_channel(
    partials: Vec<Vec<f32>>,
    [taps, channels]: [usize; 2],
    row: usize,
) -> Vec<f32> {
    let sum = added_in_order(partials, taps * row);
    let mut grad = vec![0.0; channels * taps];
    transpose((&sum, row), (&mut grad, taps), [taps, channels]);
    grad
}

/// The parallel tasks' partial sums (each `len` values) added in task order: the same bits on any
/// number of threads.
fn added_in_order(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut partials = partials.into_iter();
    let mut sum = partials.next().unwrap_or_else(|| vec![0.0; len]);
    for partial in partials {
        sum.iter_mut().zip(&partial).for_each(|(a, b)| *a += b);
    }
    sum
}

/// Whether the products run in bfloat16 ([`bf16::set_matmul_precision`]): then every
/// convolution goes through them, the direct kernels' f32 arithmetic being slower than the tiles.
/// (Never where AMX cannot run: the setting falls back to f32 there.)
fn in_bfloat16() -> bool {
    bf16::matmul_precision() == bf16::Precision::Bfloat16
}

/// How a matrix operand lies in its buffer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Layout {
    /// Row-major.
    Rows,
    /// Its transpose row-major (the matrix column-major).
    Transposed,
}

/// `dst [m, n] = lhs [m, k] × rhs [k, n]`, or `+=` when `accumulate`, on the calling thread
/// unless `parallelism` says otherwise; each buffer exactly its matrix.
fn multiply(
    [m, n, k]: [usize; 3],
    (dst, dst_layout): (&mut [f32], Layout),
    accumulate: bool,
    lhs: (&[f32], Layout),
    rhs: (&[f32], Layout),
    parallelism: Parallelism,
) {
    assert!(dst.len() == m * n);
    // SAFETY: `dst` holds its matrix whole, initialized.
    unsafe {
        product(
            [m, n, k],
            (dst.as_mut_ptr(), dst_layout),
            accumulate,
            lhs,
            rhs,
            parallelism,
        )
    }
}

/// `dst [m, n] = lhs [m, k] × rhs [k, n]` into a buffer not yet written, row-major, on the
/// calling thread: the buffer then holds the product. Zeroing it first would be a pass over it for
/// nothing: gemm writes every value of a destination it does not accumulate into without reading
/// it (gemm-common 0.19 sets `alpha` to zero without `read_dst`; its kernels then store without
/// loading, and an empty product writes zeros).
fn multiply_over<'a>(
    [m, n, k]: [usize; 3],
    dst: &'a mut [MaybeUninit<f32>],
    lhs: (&[f32], Layout),
    rhs: (&[f32], Layout),
) -> &'a mut [f32] {
    assert!(dst.len() == m * n);
    let dst_ptr = dst.as_mut_ptr().cast::<f32>();
    // SAFETY: `dst` holds its matrix whole; gemm writes every value without reading it (above),
    // so that they are initialized afterwards, and `MaybeUninit<f32>` has `f32`'s layout.
    unsafe {
        product(
            [m, n, k],
            (dst_ptr, Layout::Rows),
            false,
            lhs,
            rhs,
            Parallelism::None,
        );
        &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32])
    }
}

/// gemm's product for [`multiply`] and [`multiply_over`]: `dst = lhs × rhs`, or `+=` when
/// `accumulate`.
///
/// # Safety
/// `dst` points to `m · n` writable values, apart from the operands, initialized if `accumulate`.
unsafe fn product(
    [m, n, k]: [usize; 3],
    (dst, dst_layout): (*mut f32, Layout),
    accumulate: bool,
    (lhs, lhs_layout): (&[f32], Layout),
    (rhs, rhs_layout): (&[f32], Layout),
    parallelism: Parallelism,
) {
    assert!(lhs.len() == m * k && rhs.len() == k * n);
    // (column stride, row stride) of a `rows x columns` matrix.
    let strides = |layout, rows: usize, columns: usize| match layout {
        Layout::Rows => (1, columns as isize),
        Layout::Transposed => (rows as isize, 1),
    };
    let (dst_cs, dst_rs) = strides(dst_layout, m, n);
    let (lhs_cs, lhs_rs) = strides(lhs_layout, m, k);
    let (rhs_cs, rhs_rs) = strides(rhs_layout, k, n);
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if matches!(parallelism, Parallelism::None) && in_bfloat16() {
        // SAFETY: the caller's promises; the precision is bfloat16 only where AMX is available.
        return unsafe {
            bf16::product(
                [m, n, k],
                (dst, dst_layout),
                accumulate,
                (lhs, lhs_layout),
                (rhs, rhs_layout),
            )
        };
    }
    let keep = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: the operands' lengths asserted above and the caller's promise for `dst` hold each
    // matrix whole with these strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            keep,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Buffers a worker reuses from one group of samples to the next.
#[derive(Default)]
struct Scratch {
    /// The unfolded input, `[patch, n]`.
    columns: Vec<f32>,
    /// Output-side planes of the group side by side, `[channels_out, n]`.
    planes: Vec<f32>,
}

/// The samples' planes, `[samples, channels, plane]` in `data`, side by side per channel:
/// `[channels, n]`; a single sample's lie that way already.
fn gather<'a>(
    data: &'a [f32],
    [channels, plane]: [usize; 2],
    samples: std::ops::Range<usize>,
    n: usize,
    planes: &'a mut Vec<f32>,
) -> &'a [f32] {
    let size = channels * plane;
    if samples.len() == 1 {
        return &data[samples.start * size..][..size];
    }
    planes.resize(channels * n, 0.0);
    for (j, sample) in samples.enumerate() {
        let from = &data[sample * size..][..size];
        for (c, from) in from.chunks_exact(plane).enumerate() {
            planes[c * n + j * plane..][..plane].copy_from_slice(from);
        }
    }
    planes
}

/// The samples' columns, `[patch, n]`: a pointwise convolution's input planes side by side (its
/// unfolding is that), the unfolded input otherwise.
fn columns<'a>(
    x: &'a [f32],
    g: &Geometry,
    samples: std::ops::Range<usize>,
    n: usize,
    buffer: &'a mut Vec<f32>,
) -> &'a [f32] {
    if g.is_pointwise() {
        return gather(x, [g.channels_in, g.output_plane()], samples, n, buffer);
    }
    buffer.resize(g.patch() * n, 0.0);
    unfold(x, g, samples, n, buffer);
    buffer
}

/// The input position under kernel tap `tap` for output position `out` along one axis, if it is
/// inside the input (not in the padding).
fn source(g: &Geometry, axis: usize, out: usize, tap: usize) -> Option<usize> {
    let at = (out * g.stride[axis] + tap * g.dilation[axis]).checked_sub(g.padding[axis])?;
    (at < g.input[axis]).then_some(at)
}

/// With stride 1 along the width, an output row reads one run of an input row:
/// `input[ox + shift]` for the output columns `inside`, padding elsewhere.
fn row_run(g: &Geometry, kx: usize) -> Option<(isize, std::ops::Range<usize>)> {
    if g.stride[1] != 1 {
        return None;
    }
    let shift = (kx * g.dilation[1]) as isize - g.padding[1] as isize;
    let ow = g.output[1] as isize;
    let start = (-shift).clamp(0, ow);
    let end = (g.input[1] as isize - shift).clamp(start, ow);
    Some((shift, start as usize..end as usize))
}

/// The input columns of a run.
fn shifted(inside: &std::ops::Range<usize>, shift: isize) -> std::ops::Range<usize> {
    let start = (inside.start as isize + shift) as usize;
    start..start + inside.len()
}

/// im2col of the samples into `columns` (`[patch, n]`, zero in the padding).
fn unfold(x: &[f32], g: &Geometry, samples: std::ops::Range<usize>, n: usize, columns: &mut [f32]) {
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    for (row, tap) in columns.chunks_exact_mut(n).enumerate() {
        let (ci, ky, kx) = (row / (kh * kw), (row / kw) % kh, row % kw);
        let contiguous = row_run(g, kx);
        for (j, sample) in samples.clone().enumerate() {
            let input = &x[(sample * g.channels_in + ci) * h * w..][..h * w];
            for oy in 0..oh {
                let out = &mut tap[(j * oh + oy) * ow..][..ow];
                let Some(iy) = source(g, 0, oy, ky) else {
                    out.fill(0.0);
                    continue;
                };
                let line = &input[iy * w..][..w];
                match contiguous {
                    Some((shift, ref inside)) => {
                        out[..inside.start].fill(0.0);
                        out[inside.clone()].copy_from_slice(&line[shifted(inside, shift)]);
                        out[inside.end..].fill(0.0);
                    }
                    None => {
                        for (ox, v) in out.iter_mut().enumerate() {
                            *v = source(g, 1, ox, kx).map_or(0.0, |ix| line[ix]);
                        }
                    }
                }
            }
        }
    }
}

/// col2im, the transpose of [`unfold`]: adds each column entry into the input position it was
/// read from, for the samples of `grad` (`[samples, channels_in, h, w]`, zero).
fn fold(columns: &[f32], g: &Geometry, n: usize, grad: &mut [f32]) {
    if g.stride == [1, 1] {
        crate::math::arch().dispatch(FoldByRows {
            columns,
            g,
            n,
            grad,
        });
    } else {
        fold_by_taps(columns, g, n, grad);
    }
}

/// [`fold`] a tap at a time: each row of the columns added into the input plane it came from.
fn fold_by_taps(columns: &[f32], g: &Geometry, n: usize, grad: &mut [f32]) {
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    let sample = g.input_sample();
    for (row, tap) in columns.chunks_exact(n).enumerate() {
        let (ci, ky, kx) = (row / (kh * kw), (row / kw) % kh, row % kw);
        let contiguous = row_run(g, kx);
        for (j, grad) in grad.chunks_exact_mut(sample).enumerate() {
            let input = &mut grad[ci * h * w..][..h * w];
            for oy in 0..oh {
                let Some(iy) = source(g, 0, oy, ky) else {
                    continue;
                };
                let from = &tap[(j * oh + oy) * ow..][..ow];
                let line = &mut input[iy * w..][..w];
                match contiguous {
                    Some((shift, ref inside)) => {
                        let to = &mut line[shifted(inside, shift)];
                        to.iter_mut()
                            .zip(&from[inside.clone()])
                            .for_each(|(a, b)| *a += b);
                    }
                    None => {
                        for (ox, v) in from.iter().enumerate() {
                            if let Some(ix) = source(g, 1, ox, kx) {
                                line[ix] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// [`fold`] at stride 1, an input row at a time: the row is summed in vector registers over the
/// taps that read it, each tap's run one masked load and one addition per vector (the lanes
/// outside the run load zero), in the same order as [`fold_by_taps`] adds (the same bits), and
/// written once. A tap at a time, each output row added a short run (10 values on the convnet's
/// 14x14 planes) value by value: a twentieth of its training step.
struct FoldByRows<'a> {
    columns: &'a [f32],
    g: &'a Geometry,
    n: usize,
    grad: &'a mut [f32],
}

/// The most vectors of an input row [`FoldByRows`] keeps in registers; wider rows go to
/// [`fold_by_taps`].
const ROW_VECTORS: usize = 4;

impl pulp::WithSimd for FoldByRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let g = self.g;
        let [h, w] = g.input;
        let [kh, kw] = g.kernel;
        let [oh, ow] = g.output;
        let lanes = S::F32_LANES;
        if w > ROW_VECTORS * lanes {
            return fold_by_taps(self.columns, g, self.n, self.grad);
        }
        // Per kx, the row's vectors a tap's run reaches: (vector, its lanes the run covers, where
        // its lane 0 would read in the run).
        let pieces: Vec<Vec<_>> = (0..kw)
            .map(|kx| {
                let (shift, inside) = row_run(g, kx).expect("stride 1 reads a run of each row");
                let covered = shifted(&inside, shift);
                (0..w.div_ceil(lanes))
                    .filter_map(|v| {
                        let first = v * lanes;
                        let start = covered.start.clamp(first, first + lanes);
                        let end = covered.end.clamp(start, first + lanes);
                        let mask =
                            simd.mask_between_m32s((start - first) as u32, (end - first) as u32);
                        (start < end).then_some((v, mask, first as isize - shift))
                    })
                    .collect()
            })
            .collect();
        let zero = simd.splat_f32s(0.0);
        for (j, grad) in self.grad.chunks_exact_mut(g.input_sample()).enumerate() {
            for (ci, plane) in grad.chunks_exact_mut(h * w).enumerate() {
                for (iy, to) in plane.chunks_exact_mut(w).enumerate() {
                    let mut row = [zero; ROW_VECTORS];
                    for ky in 0..kh {
                        let Some(oy) = (iy + g.padding[0])
                            .checked_sub(ky * g.dilation[0])
                            .filter(|&oy| oy < oh)
                        else {
                            continue;
                        };
                        for (kx, pieces) in pieces.iter().enumerate() {
                            let tap = (ci * kh + ky) * kw + kx;
                            let run = &self.columns[tap * self.n + (j * oh + oy) * ow..][..ow];
                            for &(v, mask, lane_0) in pieces {
                                let lane_0 = run.as_ptr().wrapping_offset(lane_0);
                                // SAFETY: the lanes in the mask read `run[x − shift]` for the
                                // row's columns `x` that `row_run` keeps inside the run.
                                let values = unsafe { simd.mask_load_ptr_f32s(mask, lane_0) };
                                row[v] = simd.add_f32s(row[v], values);
                            }
                        }
                    }
                    let (whole, rest) = S::as_mut_simd_f32s(to);
                    for (to, sum) in whole.iter_mut().zip(&row) {
                        *to = *sum;
                    }
                    if !rest.is_empty() {
                        simd.partial_store_f32s(rest, row[whole.len()]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On every instruction set this CPU has (rows of one vector and of several, and rows too wide
    /// for the registers on AVX-512 and AVX2), with padding and dilation.
    #[test]
    fn folding_by_rows_gives_the_bits_of_folding_by_taps() {
        let geometry =
            |input: [usize; 2], kernel: [usize; 2], padding: [usize; 2], dilation: [usize; 2]| {
                let output = [0, 1].map(|axis| {
                    input[axis] + 2 * padding[axis] - dilation[axis] * (kernel[axis] - 1)
                });
                Geometry {
                    batch: 3,
                    channels_in: 2,
                    groups: 1,
                    input,
                    channels_out: 4,
                    output,
                    kernel,
                    stride: [1, 1],
                    padding,
                    dilation,
                }
            };
        let arches = crate::math::every_arch();
        for g in [
            geometry([14, 14], [5, 5], [0, 0], [1, 1]),
            geometry([7, 9], [3, 3], [1, 1], [1, 1]),
            geometry([8, 11], [3, 2], [2, 1], [2, 1]),
            geometry([5, 6], [1, 3], [0, 2], [1, 2]),
            geometry([4, 37], [3, 3], [1, 1], [1, 1]),
            geometry([3, 70], [3, 5], [1, 2], [1, 1]),
        ] {
            let n = g.batch * g.output_plane();
            let columns: Vec<f32> = (0..g.patch() * n)
                .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 97.0)
                .collect();
            let mut by_taps = vec![0.0; g.batch * g.input_sample()];
            fold_by_taps(&columns, &g, n, &mut by_taps);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for arch in &arches {
                let mut by_rows = vec![0.0; by_taps.len()];
                arch.dispatch(FoldByRows {
                    columns: &columns,
                    g: &g,
                    n,
                    grad: &mut by_rows,
                });
                assert!(bits(&by_rows) == bits(&by_taps), "{g:?} on {arch:?}");
            }
        }
    }
}
