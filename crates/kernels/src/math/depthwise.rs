//! The gradients of a depthwise convolution (every channel convolved with its own kernel, as in
//! EfficientNet and MobileNet) on contiguous f32 data, one channel plane at a time. Burn computes
//! the weight gradient group by group, each group a convolution over the whole batch followed by
//! a copy of the whole gradient tensor, and the input gradient as a grouped transposed
//! convolution; here both are short loops over rows that the compiler vectorizes.

use std::ops::Range;

use rayon::prelude::*;

use super::convolution::Geometry;

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
