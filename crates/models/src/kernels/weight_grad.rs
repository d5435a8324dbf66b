//! A convolution's weight gradient as one wide matrix product per group of samples:
//! `dW[co, (ci, ky, kx)] = Σ dY[s, co, oy, ox] · X[s, ci, oy·sy − py + ky·dy, ox·sx − px + kx·dx]`
//! over samples and output positions. Burn computes it as another convolution whose kernel is the
//! output gradient, which leaves the matrix product nine columns wide for a 3x3 kernel.

use rayon::prelude::*;

/// Output positions per matrix product: enough to amortise reading and writing the gradient,
/// few enough that the unfolded input of the widest layer stays within a few megabytes.
const COLUMNS: usize = 1024;

/// Parallel tasks, each summing its share of the batch: enough to keep a workstation's cores busy.
const TASKS: usize = 8;

/// The sizes of a two-dimensional convolution without groups, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub channels_in: usize,
    pub input: [usize; 2],
    pub channels_out: usize,
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Padding before the first row and column; what is past the end never enters the gradient.
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Geometry {
    fn output_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// One row of the weight gradient: an input channel's kernel window for every input channel.
    fn patch(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }
}

/// The gradient of the weight, `[channels_out, channels_in, kh, kw]` row-major, from the input
/// `x` (`[batch, channels_in, h, w]`) and the output gradient (`[batch, channels_out, oh, ow]`).
pub fn weight_grad(x: &[f32], output_grad: &[f32], geometry: &Geometry) -> Vec<f32> {
    let g = geometry;
    assert_eq!(x.len(), g.batch * g.channels_in * g.input[0] * g.input[1]);
    assert_eq!(
        output_grad.len(),
        g.batch * g.channels_out * g.output_plane()
    );
    let size = g.channels_out * g.patch();
    let per_group = (COLUMNS / g.output_plane().max(1)).clamp(1, g.batch.max(1));
    let groups: Vec<usize> = (0..g.batch).step_by(per_group).collect();
    // A fixed split and a fixed order of summation: the same sums, bit for bit, on any number of
    // threads, so that a seeded training run repeats exactly.
    let per_task = groups.len().div_ceil(TASKS).max(1);
    let partials: Vec<Vec<f32>> = groups
        .par_chunks(per_task)
        .map(|firsts| {
            let mut buffers = Buffers::new(size);
            for &first in firsts {
                let samples = per_group.min(g.batch - first);
                buffers.accumulate(x, output_grad, g, first..first + samples);
            }
            buffers.grad
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut grad = partials.next().unwrap_or_else(|| vec![0.0; size]);
    for partial in partials {
        grad.iter_mut().zip(&partial).for_each(|(a, b)| *a += b);
    }
    grad
}

/// One worker's share of the gradient, and the scratch space it reuses from group to group.
struct Buffers {
    grad: Vec<f32>,
    columns: Vec<f32>,
    output_grad: Vec<f32>,
}

impl Buffers {
    fn new(size: usize) -> Self {
        Self {
            grad: vec![0.0; size],
            columns: Vec::new(),
            output_grad: Vec::new(),
        }
    }

    /// Adds the samples' share: `grad += dY [co, n] × columnsᵀ [n, patch]`, n = samples × plane.
    fn accumulate(
        &mut self,
        x: &[f32],
        output_grad: &[f32],
        g: &Geometry,
        samples: std::ops::Range<usize>,
    ) {
        let plane = g.output_plane();
        let n = samples.len() * plane;
        self.columns.resize(g.patch() * n, 0.0);
        unfold(x, g, samples.clone(), n, &mut self.columns);
        self.output_grad.resize(g.channels_out * n, 0.0);
        for (j, sample) in samples.enumerate() {
            let planes = &output_grad[sample * g.channels_out * plane..][..g.channels_out * plane];
            for (c, from) in planes.chunks_exact(plane).enumerate() {
                self.output_grad[c * n + j * plane..][..plane].copy_from_slice(from);
            }
        }
        // SAFETY: the three matrices lie inside their buffers with these sizes and strides:
        // grad [co, patch] row-major, dY [co, n] row-major, and columns [patch, n] read
        // transposed as [n, patch].
        unsafe {
            gemm::gemm(
                g.channels_out,
                g.patch(),
                n,
                self.grad.as_mut_ptr(),
                1,
                g.patch() as isize,
                true,
                self.output_grad.as_ptr(),
                1,
                n as isize,
                self.columns.as_ptr(),
                n as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// im2col: row `(ci, ky, kx)` of `columns` holds, for each of the samples and each output
/// position, the input value under that kernel tap (zero in the padding).
fn unfold(x: &[f32], g: &Geometry, samples: std::ops::Range<usize>, n: usize, columns: &mut [f32]) {
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    for (row, tap) in columns.chunks_exact_mut(n).enumerate() {
        let (ci, ky, kx) = (row / (kh * kw), (row / kw) % kh, row % kw);
        let row_shift = (ky * g.dilation[0]) as isize - g.padding[0] as isize;
        let column_shift = (kx * g.dilation[1]) as isize - g.padding[1] as isize;
        for (j, sample) in samples.clone().enumerate() {
            let input = &x[(sample * g.channels_in + ci) * h * w..][..h * w];
            for oy in 0..oh {
                let out = &mut tap[(j * oh + oy) * ow..][..ow];
                let iy = (oy * g.stride[0]) as isize + row_shift;
                if iy < 0 || iy >= h as isize {
                    out.fill(0.0);
                    continue;
                }
                let line = &input[iy as usize * w..][..w];
                if g.stride[1] == 1 {
                    copy_shifted(line, column_shift, out);
                } else {
                    for (ox, v) in out.iter_mut().enumerate() {
                        let ix = (ox * g.stride[1]) as isize + column_shift;
                        *v = if (0..w as isize).contains(&ix) {
                            line[ix as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// `out[i] = line[i + shift]`, zero where that falls outside `line`.
fn copy_shifted(line: &[f32], shift: isize, out: &mut [f32]) {
    let start = (-shift).clamp(0, out.len() as isize) as usize;
    let end = (line.len() as isize - shift).clamp(start as isize, out.len() as isize) as usize;
    out[..start].fill(0.0);
    out[start..end].copy_from_slice(&line[(start as isize + shift) as usize..][..end - start]);
    out[end..].fill(0.0);
}
