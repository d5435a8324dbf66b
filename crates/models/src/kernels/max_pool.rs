//! 2x2 max-pooling with stride 2 on contiguous `[planes, h, w]` f32 data, forward and backward,
//! picking each window's maximum exactly as Burn does: the first of equal values, the last NaN.
//! The backward pass finds the maximum again from the input instead of keeping 8-byte indices.

use rayon::prelude::*;

/// Which of a window's four values, in the order top-left, top-right, bottom-left,
/// bottom-right, is its maximum.
fn window_max(top: &[f32], bottom: &[f32]) -> (usize, f32) {
    let (mut best, mut max) = (0, top[0]);
    for (at, v) in [(1, top[1]), (2, bottom[0]), (3, bottom[1])] {
        // Selects rather than branches: which value wins is as random as the data.
        let wins = v > max || v.is_nan();
        best = if wins { at } else { best };
        max = if wins { v } else { max };
    }
    (best, max)
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
            for (out, rows) in out.chunks_exact_mut(ow).zip(plane.chunks_exact(2 * width)) {
                let (top, bottom) = rows.split_at(width);
                for ((out, top), bottom) in out
                    .iter_mut()
                    .zip(top.chunks_exact(2))
                    .zip(bottom.chunks_exact(2))
                {
                    *out = window_max(top, bottom).1;
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
            let rows = grad
                .chunks_exact_mut(2 * width)
                .zip(plane.chunks_exact(2 * width))
                .zip(output_grad.chunks_exact(ow));
            for ((grad, rows), output_grad) in rows {
                let (top, bottom) = rows.split_at(width);
                let (grad_top, grad_bottom) = grad.split_at_mut(width);
                // Indexed over slices of exactly the windows' length, with no bounds left to
                // check, so that the loop runs on vectors.
                let (top, bottom) = (&top[..2 * ow], &bottom[..2 * ow]);
                let (grad_top, grad_bottom) = (&mut grad_top[..2 * ow], &mut grad_bottom[..2 * ow]);
                for (i, &g) in output_grad.iter().enumerate() {
                    let best = window_max(&top[2 * i..2 * i + 2], &bottom[2 * i..2 * i + 2]).0;
                    let at = |k| if best == k { g } else { 0.0 };
                    grad_top[2 * i] = at(0);
                    grad_top[2 * i + 1] = at(1);
                    grad_bottom[2 * i] = at(2);
                    grad_bottom[2 * i + 1] = at(3);
                }
            }
        });
    grad
}
