//! 2x2 max-pooling with stride 2 on contiguous `[planes, h, w]` f32 data, forward and backward,
//! picking each window's maximum exactly as Burn does: the first of equal values, the last NaN.
//! The backward pass finds the maximum again from the input instead of keeping 8-byte indices.

use super::epilogue::Epilogue;
use super::output::written_in_pieces;

/// A window's maximum, and whether each of its later values (top-right, bottom-left,
/// bottom-right) took the lead from those before: a later value wins if greater, or NaN. In
/// straight-line code, which the compiler lays on vectors: which value wins is as random as the
/// data, and branching on it mispredicted about every other window.
#[inline(always)]
fn window_max(top: &[f32], bottom: &[f32]) -> (f32, [bool; 3]) {
    let right = top[1] > top[0] || top[1].is_nan();
    let first = if right { top[1] } else { top[0] };
    let below = bottom[0] > first || bottom[0].is_nan();
    let second = if below { bottom[0] } else { first };
    let last = bottom[1] > second || bottom[1].is_nan();
    (if last { bottom[1] } else { second }, [right, below, last])
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
    let arch = crate::math::arch();
    written_in_pieces(
        planes * oh * ow,
        oh * ow,
        || (),
        |(), p, out| {
            arch.dispatch(PlaneMaxima {
                plane: &x[p * height * width..][..height * width],
                out: &mut *out,
                width,
            });
            epilogue.apply(p % channels, out);
        },
    )
}

/// One plane's window maxima, compiled for the CPU's vectors.
struct PlaneMaxima<'a> {
    plane: &'a [f32],
    out: &'a mut [f32],
    width: usize,
}

impl pulp::WithSimd for PlaneMaxima<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let width = self.width;
        let rows = self
            .out
            .chunks_exact_mut(width / 2)
            .zip(self.plane.chunks_exact(2 * width));
        for (out, rows) in rows {
            let (top, bottom) = rows.split_at(width);
            let windows = out
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2));
            for ((out, top), bottom) in windows {
                *out = window_max(top, bottom).0;
            }
        }
    }
}

/// The input gradient: each window's output gradient at its maximum, zero elsewhere.
pub fn backward(x: &[f32], output_grad: &[f32], [height, width]: [usize; 2]) -> Vec<f32> {
    let (oh, ow) = (height / 2, width / 2);
    if oh * ow == 0 {
        return vec![0.0; x.len()];
    }
    let arch = crate::math::arch();
    written_in_pieces(
        x.len(),
        height * width,
        || (),
        |(), p, grad| {
            arch.dispatch(PlaneGradient {
                plane: &x[p * height * width..][..height * width],
                output_grad: &output_grad[p * oh * ow..][..oh * ow],
                grad,
                width,
            })
        },
    )
}

/// One plane's input gradient, compiled for the CPU's vectors.
struct PlaneGradient<'a> {
    plane: &'a [f32],
    output_grad: &'a [f32],
    /// The plane's gradient, zero where written.
    grad: &'a mut [f32],
    width: usize,
}

impl pulp::WithSimd for PlaneGradient<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let width = self.width;
        let rows = self
            .grad
            .chunks_exact_mut(2 * width)
            .zip(self.plane.chunks_exact(2 * width))
            .zip(self.output_grad.chunks_exact(width / 2));
        for ((grad, rows), output_grad) in rows {
            let (top, bottom) = rows.split_at(width);
            let (grad_top, grad_bottom) = grad.split_at_mut(width);
            let windows = grad_top
                .chunks_exact_mut(2)
                .zip(grad_bottom.chunks_exact_mut(2))
                .zip(top.chunks_exact(2).zip(bottom.chunks_exact(2)))
                .zip(output_grad);
            for (((grad_top, grad_bottom), (top, bottom)), &g) in windows {
                let (_, [right, below, last]) = window_max(top, bottom);
                let at = |wins: bool| if wins { g } else { 0.0 };
                grad_top[0] = at(!right && !below && !last);
                grad_top[1] = at(right && !below && !last);
                grad_bottom[0] = at(below && !last);
                grad_bottom[1] = at(last);
            }
        }
    }
}
