//! 2x2 max-pooling with stride 2 on contiguous `[planes, h, w]` f32 data, forward and backward,
//! picking each window's maximum exactly as Burn does: the first of equal values, the last NaN.
//! The backward pass finds the maximum again from the input instead of keeping 8-byte indices.

use super::epilogue::Epilogue;
use super::output::written_in_pieces;

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

/// The pooled planes, `[planes, h/2, w/2]` (a last odd row or column is left out), each through
/// `epilogue` as it is written, plane `p` being of channel `p % channels`.
pub fn forward(
    x: &[f32],
    [height, width]: [usize; 2],
    channels: usize,
    epilogue: &Epilogue,
) -> Vec<f32> {
    let (oh, ow) = (height / 2, width / 2);
    let planes = x.len() / (height * width);
    if oh * ow == 0 {
        return Vec::new();
    }
    written_in_pieces(
        planes * oh * ow,
        oh * ow,
        || (),
        |(), p, out| {
            let plane = &x[p * height * width..][..height * width];
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
            epilogue.apply(p % channels, out);
        },
    )
}

/// A window's gradient: `g` at position `best` (in [`window_max`]'s order), zero elsewhere.
fn at_best(best: usize, g: f32) -> [f32; 4] {
    std::array::from_fn(|k| if k == best { g } else { 0.0 })
}

/// Windows handled together by the gradient: a fixed count the compiler can lay on vectors.
const BLOCK: usize = 8;

/// The input gradient: each window's output gradient at its maximum, zero elsewhere.
pub fn backward(x: &[f32], output_grad: &[f32], [height, width]: [usize; 2]) -> Vec<f32> {
    let (oh, ow) = (height / 2, width / 2);
    if oh * ow == 0 {
        return vec![0.0; x.len()];
    }
    written_in_pieces(
        x.len(),
        height * width,
        || (),
        |(), p, grad| {
            let plane = &x[p * height * width..][..height * width];
            let output_grad = &output_grad[p * oh * ow..][..oh * ow];
            let rows = grad
                .chunks_exact_mut(2 * width)
                .zip(plane.chunks_exact(2 * width))
                .zip(output_grad.chunks_exact(ow));
            for ((grad, rows), output_grad) in rows {
                let (top, bottom) = rows.split_at(width);
                let (grad_top, grad_bottom) = grad.split_at_mut(width);
                let windows = grad_top
                    .chunks_exact_mut(2 * BLOCK)
                    .zip(grad_bottom.chunks_exact_mut(2 * BLOCK))
                    .zip(
                        top.chunks_exact(2 * BLOCK)
                            .zip(bottom.chunks_exact(2 * BLOCK)),
                    )
                    .zip(output_grad.chunks_exact(BLOCK));
                let whole = output_grad.len() / BLOCK * BLOCK;
                for (((grad_top, grad_bottom), (top, bottom)), output_grad) in windows {
                    let block = |s: &[f32]| -> [f32; 2 * BLOCK] { s.try_into().unwrap() };
                    let (t, b) = (block(top), block(bottom));
                    let (mut gt, mut gb) = ([0.0; 2 * BLOCK], [0.0; 2 * BLOCK]);
                    for k in 0..BLOCK {
                        let best = window_max(&t[2 * k..2 * k + 2], &b[2 * k..2 * k + 2]).0;
                        let [g0, g1, g2, g3] = at_best(best, output_grad[k]);
                        [gt[2 * k], gt[2 * k + 1], gb[2 * k], gb[2 * k + 1]] = [g0, g1, g2, g3];
                    }
                    grad_top.copy_from_slice(&gt);
                    grad_bottom.copy_from_slice(&gb);
                }
                for (i, &g) in output_grad.iter().enumerate().skip(whole) {
                    let best = window_max(&top[2 * i..2 * i + 2], &bottom[2 * i..2 * i + 2]).0;
                    let [g0, g1, g2, g3] = at_best(best, g);
                    [grad_top[2 * i], grad_top[2 * i + 1]] = [g0, g1];
                    [grad_bottom[2 * i], grad_bottom[2 * i + 1]] = [g2, g3];
                }
            }
        },
    )
}
