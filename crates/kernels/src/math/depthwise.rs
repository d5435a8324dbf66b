//! A depthwise convolution (every channel convolved with its own kernel, as in EfficientNet and
//! MobileNet) and its gradients on contiguous f32 data, one channel plane at a time.
//!
//! The forward pass: Burn's CPU backend adds each kernel tap's product into the output row in
//! memory, a load and a store per multiply, and walks stride-2 rows one element at a time. Here
//! the plane is first copied into a zero-padded scratch whose columns are split by their
//! remainder modulo the stride (so a strided tap reads contiguous values), and sixteen outputs at a
//! time gather every tap in registers before one store; taps are added in Burn's order, unfused,
//! so the values are Burn's bit for bit. The gradients: Burn computes the weight gradient group by
//! group, each group a convolution over the whole batch followed by a copy of the whole gradient
//! tensor, and the input gradient as a grouped transposed convolution; here both are short loops
//! over rows that the compiler vectorizes.

use std::ops::Range;

use rayon::prelude::*;

use super::convolution::Geometry;

/// Outputs computed together in registers: two AVX2 vectors, one AVX-512 vector.
const LANES: usize = 16;

/// The output, `[batch, channels, oh, ow]`, from the input (`[batch, channels, h, w]`) and the
/// weight (`[channels, 1, kh, kw]`); no bias.
pub fn forward(x: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    let mut output = vec![0.0; g.batch * g.channels_out * oh * ow];
    if output.is_empty() {
        return output;
    }
    let scratch = Scratch::new(g);
    // Small planes (7x7 at the end of EfficientNet) go several to a task.
    let planes_per_task = (4096 / (oh * ow)).max(1);
    output
        .par_chunks_mut(oh * ow * planes_per_task)
        .enumerate()
        .for_each_init(Vec::new, |padded, (task, out)| {
            for (k, out) in out.chunks_mut(oh * ow).enumerate() {
                let plane = task * planes_per_task + k;
                let kernel = &weight[(plane % g.channels_in) * kh * kw..][..kh * kw];
                let x = &x[plane * h * w..][..h * w];
                pulp::Arch::new().dispatch(Plane {
                    scratch: &scratch,
                    x,
                    kernel,
                    padded,
                    out,
                });
            }
        });
    output
}

/// One plane's convolution, compiled for each instruction set [`pulp`] chooses among at run time
/// (AVX2 with FMA, AVX-512): the compiler builds our loops for the baseline x86-64 (SSE2)
/// otherwise. What it calls is inlined into it for that.
struct Plane<'a> {
    scratch: &'a Scratch<'a>,
    x: &'a [f32],
    kernel: &'a [f32],
    padded: &'a mut Vec<f32>,
    out: &'a mut [f32],
}

impl pulp::WithSimd for Plane<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        self.scratch.fill(self.x, self.padded);
        self.scratch.convolve(self.padded, self.kernel, self.out);
    }
}

/// How a plane lies in the padded scratch: the rows the output reads, each as `stride` phases of
/// `phase_width` columns (phase `p`, column `j` holds padded column `stride·j + p`), wide enough
/// for whole groups of [`LANES`] outputs; and where each kernel tap reads, from an output row's
/// first padded row and its first column.
struct Scratch<'a> {
    g: &'a Geometry,
    rows: usize,
    phase_width: usize,
    taps: Vec<usize>,
}

impl<'a> Scratch<'a> {
    fn new(g: &'a Geometry) -> Self {
        let [oh, ow] = g.output;
        let [kh, kw] = g.kernel;
        let stride = g.stride[1];
        let rows = (oh - 1) * g.stride[0] + (kh - 1) * g.dilation[0] + 1;
        let phase_width = ow.div_ceil(LANES) * LANES + (kw - 1) * g.dilation[1] / stride;
        let row_len = stride * phase_width;
        let taps = (0..kh)
            .flat_map(|ky| (0..kw).map(move |kx| (ky, kx)))
            .map(|(ky, kx)| {
                let column = kx * g.dilation[1];
                ky * g.dilation[0] * row_len + column % stride * phase_width + column / stride
            })
            .collect();
        Self {
            g,
            rows,
            phase_width,
            taps,
        }
    }

    /// The plane `x`, zero-padded and split into phases, into `padded`.
    #[inline(always)]
    fn fill(&self, x: &[f32], padded: &mut Vec<f32>) {
        let [h, w] = self.g.input;
        let [top, left] = self.g.padding;
        let (stride, width) = (self.g.stride[1], self.phase_width);
        padded.clear();
        padded.resize(self.rows * stride * width, 0.0);
        for (r, row) in padded.chunks_exact_mut(stride * width).enumerate() {
            let Some(y) = r.checked_sub(top).filter(|&y| y < h) else {
                continue;
            };
            let source = &x[y * w..][..w];
            match stride {
                1 => row[left..left + w].copy_from_slice(source),
                // Padded column `left + c` is column `(left + c) / 2` of phase `(left + c) % 2`.
                2 => {
                    let (even, odd) = row.split_at_mut(width);
                    let pairs = source.chunks_exact(2);
                    let last = pairs.remainder().first();
                    let (first, second, start) = if left % 2 == 0 {
                        (even, odd, left / 2)
                    } else {
                        (odd, even, left / 2)
                    };
                    let second_start = start + left % 2;
                    let n = pairs.len();
                    for ((pair, a), b) in pairs
                        .zip(&mut first[start..start + n])
                        .zip(&mut second[second_start..second_start + n])
                    {
                        *a = pair[0];
                        *b = pair[1];
                    }
                    if let Some(&value) = last {
                        first[start + n] = value;
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

    /// The output plane from the padded scratch: every tap of [`LANES`] outputs summed in
    /// registers, in Burn's order (row of the kernel, then column).
    #[inline(always)]
    fn convolve(&self, padded: &[f32], kernel: &[f32], out: &mut [f32]) {
        let g = self.g;
        let ow = g.output[1];
        let row_len = g.stride[1] * self.phase_width;
        let last_tap = *self.taps.iter().max().expect("a kernel tap");
        for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
            let rows = &padded[oy * g.stride[0] * row_len..];
            for (group, out) in out_row.chunks_mut(LANES).enumerate() {
                let from = &rows[group * LANES..][..last_tap + LANES];
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
/// the output gradient (`[batch, channels, oh, ow]`).
pub fn input_grad(weight: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let ow = g.output[1];
    let mut grad = vec![0.0; g.batch * g.channels_in * h * w];
    if grad.is_empty() || ow == 0 {
        return grad;
    }
    grad.par_chunks_mut(h * w)
        .zip(output_grad.par_chunks(g.output[0] * ow))
        .enumerate()
        .for_each(|(plane, (grad, output_grad))| {
            let kernel = &weight[(plane % g.channels_in) * kh * kw..][..kh * kw];
            for ky in 0..kh {
                let (rows, first_row) = inside(g, 0, ky);
                for (oy, iy) in rows.zip((first_row..).step_by(g.stride[0])) {
                    let from = &output_grad[oy * ow..][..ow];
                    let to = &mut grad[iy * w..][..w];
                    for kx in 0..kw {
                        let tap = kernel[ky * kw + kx];
                        let (columns, first) = inside(g, 1, kx);
                        let to = to[first..].iter_mut().step_by(g.stride[1]);
                        for (to, from) in to.zip(&from[columns]) {
                            *to += tap * from;
                        }
                    }
                }
            }
        });
    grad
}

/// The weight gradient, `[channels, 1, kh, kw]`, from the input (`[batch, channels, h, w]`) and
/// the output gradient (`[batch, channels, oh, ow]`).
pub fn weight_grad(x: &[f32], output_grad: &[f32], g: &Geometry) -> Vec<f32> {
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    let mut grad = vec![0.0; g.channels_out * kh * kw];
    if grad.is_empty() || oh * ow == 0 {
        return grad;
    }
    grad.par_chunks_mut(kh * kw)
        .enumerate()
        .for_each(|(channel, grad)| {
            for sample in 0..g.batch {
                let plane = sample * g.channels_in + channel;
                let x = &x[plane * h * w..][..h * w];
                let output_grad = &output_grad[plane * oh * ow..][..oh * ow];
                for ky in 0..kh {
                    let (rows, first_row) = inside(g, 0, ky);
                    for (oy, iy) in rows.zip((first_row..).step_by(g.stride[0])) {
                        let from = &output_grad[oy * ow..][..ow];
                        let row = &x[iy * w..][..w];
                        for kx in 0..kw {
                            let (columns, first) = inside(g, 1, kx);
                            grad[ky * kw + kx] +=
                                strided_dot(&from[columns.clone()], &row[first..], g.stride[1]);
                        }
                    }
                }
            }
        });
    grad
}

/// The output positions along `axis` whose kernel tap `tap` reads inside the input (not the
/// padding), and the input position the first of them reads.
fn inside(g: &Geometry, axis: usize, tap: usize) -> (Range<usize>, usize) {
    let stride = g.stride[axis] as isize;
    let offset = (tap * g.dilation[axis]) as isize - g.padding[axis] as isize;
    let first = if offset < 0 {
        (-offset + stride - 1) / stride
    } else {
        0
    };
    let last = g.input[axis] as isize - 1 - offset;
    let end = if last < 0 { 0 } else { last / stride + 1 };
    let end = end.min(g.output[axis] as isize);
    if first >= end {
        return (0..0, 0);
    }
    (
        first as usize..end as usize,
        (first * stride + offset) as usize,
    )
}

/// `Σ a[i]·b[i·stride]`, in sixteen running sums when `stride` is 1 so that it vectorizes.
fn strided_dot(a: &[f32], b: &[f32], stride: usize) -> f32 {
    if stride != 1 {
        return a
            .iter()
            .zip(b.iter().step_by(stride))
            .map(|(a, b)| a * b)
            .sum();
    }
    const LANES: usize = 16;
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
