//! 2x2 max-pooling with stride 2 on contiguous `[planes, h, w]` f32 data, forward and backward,
//! picking each window's maximum exactly as Burn does: the first of equal values, the last NaN.
//! The backward pass finds the maximum again from the input instead of keeping 8-byte indices.

use rayon::prelude::*;

/// Offset within a plane of the maximum of the window whose top-left corner is `(2·oy, 2·ox)`.
fn window_max(plane: &[f32], width: usize, oy: usize, ox: usize) -> usize {
    let top = 2 * oy * width + 2 * ox;
    let (mut best, mut max) = (top, plane[top]);
    for at in [top + 1, top + width, top + width + 1] {
        let v = plane[at];
        // Selects rather than branches: which value wins is as random as the data.
        let wins = v > max || v.is_nan();
        best = if wins { at } else { best };
        max = if wins { v } else { max };
    }
    best
}

/// The pooled planes, `[planes, h/2, w/2]` (a last odd row or column is left out).
pub fn forward(x: &[f32], [height, width]: [usize; 2]) -> Vec<f32> {
    let (oh, ow) = (height / 2, width / 2);
    let planes = x.len() / (height * width);
    let mut output = vec![0.0; planes * oh * ow];
    if oh * ow == 0 {
        return output;
    }
    output
        .par_chunks_mut(oh * ow)
        .zip(x.par_chunks(height * width))
        .for_each(|(out, plane)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    out[oy * ow + ox] = plane[window_max(plane, width, oy, ox)];
                }
            }
        });
    output
}

/// The input gradient: each window's output gradient at its maximum, zero elsewhere.
pub fn backward(x: &[f32], output_grad: &[f32], [height, width]: [usize; 2]) -> Vec<f32> {
    let (oh, ow) = (height / 2, width / 2);
    let mut grad = vec![0.0; x.len()];
    if oh * ow == 0 {
        return grad;
    }
    grad.par_chunks_mut(height * width)
        .zip(x.par_chunks(height * width))
        .zip(output_grad.par_chunks(oh * ow))
        .for_each(|((grad, plane), output_grad)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    grad[window_max(plane, width, oy, ox)] = output_grad[oy * ow + ox];
                }
            }
        });
    grad
}
