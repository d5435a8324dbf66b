//! A depthwise convolution (one filter per channel, as in EfficientNet's blocks) on contiguous f32
//! data, forward only: each output row is a sum of input rows scaled by the filter's taps, which
//! vectorizes along the row at stride 1. Flex runs it as a general grouped convolution, one
//! small matrix product per channel.

use rayon::prelude::*;

use super::convolution::{Geometry, row_run, shifted, source};

/// The output, `[batch, channels, oh, ow]`, of `x` (`[batch, channels, h, w]`) and the weight
/// (`[channels, 1, kh, kw]`).
pub fn forward(x: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    let [h, w] = g.input;
    let [oh, ow] = g.output;
    let [kh, kw] = g.kernel;
    let mut output = vec![0.0; g.batch * g.channels_out * oh * ow];
    if output.is_empty() || h * w == 0 {
        return output;
    }
    let runs: Vec<_> = (0..kw).map(|kx| row_run(g, kx)).collect();
    output
        .par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .enumerate()
        .for_each(|(plane, (output, input))| {
            let filter = &weight[(plane % g.channels_in) * kh * kw..][..kh * kw];
            for (oy, row) in output.chunks_exact_mut(ow).enumerate() {
                for ky in 0..kh {
                    let Some(iy) = source(g, 0, oy, ky) else {
                        continue;
                    };
                    let line = &input[iy * w..][..w];
                    for (kx, run) in runs.iter().enumerate() {
                        let tap = filter[ky * kw + kx];
                        match run {
                            Some((shift, inside)) => {
                                let from = &line[shifted(inside, *shift)];
                                for (out, v) in row[inside.clone()].iter_mut().zip(from) {
                                    *out += tap * v;
                                }
                            }
                            None => {
                                for (ox, out) in row.iter_mut().enumerate() {
                                    if let Some(ix) = source(g, 1, ox, kx) {
                                        *out += tap * line[ix];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    output
}
