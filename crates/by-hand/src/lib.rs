//! The operations of a convolutional network written out by hand over plain arrays, the way the
//! tutorial explains them in numpy before it uses Keras: one local field's activation, a sliding
//! convolution with a stride and 'valid' or 'same' padding, bias, ReLU, max and average pooling,
//! flatten, dense and softmax. Each function is a few readable lines; the tests check every one
//! against Burn's own operation, so this is also an independent reference for the fast paths.
//!
//! Not for speed: nothing here is vectorized or parallel. The networks live in `models`.
//!
//! Two mistakes of the tutorial's numpy loops are not repeated here: its centring shift
//! overwrote the loop indices, and its stride-2 output of 149 for a 299-pixel input matches
//! neither padding consistently. With [`Padding::Valid`] the output side is
//! `(n - k) / s + 1` (149 for n = 299, k = 3, s = 2); with [`Padding::Same`] it is `ceil(n / s)`
//! (150), the extra padding pixel going to the bottom and right as in TensorFlow.

/// Feature maps, channels first: value `(c, y, x)` is `data[(c * height + y) * width + x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Maps {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Maps {
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            data: vec![0.0; channels * height * width],
        }
    }

    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    fn set(&mut self, c: usize, y: usize, x: usize, value: f32) {
        self.data[(c * self.height + y) * self.width + x] = value;
    }

    /// `[channels, height, width]`, as the tutorial prints shapes.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

/// Convolution kernels `[out, in, size, size]`, stored in that order.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernels {
    pub out_channels: usize,
    pub in_channels: usize,
    pub size: usize,
    pub data: Vec<f32>,
}

impl Kernels {
    pub fn get(&self, o: usize, i: usize, ky: usize, kx: usize) -> f32 {
        self.data[((o * self.in_channels + i) * self.size + ky) * self.size + kx]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// No padding: windows stay inside the input.
    Valid,
    /// Zero padding so the output side is `ceil(n / stride)`; the odd pixel goes bottom/right.
    Same,
}

/// Output side and padding before the first pixel, for an input side `n`, window `k`, stride `s`.
///
/// valid: `out = (n - k) / s + 1`, no padding;
/// same: `out = ceil(n / s)`, `total = max((out - 1) s + k - n, 0)`, `before = total / 2`.
pub fn output_size(n: usize, k: usize, s: usize, padding: Padding) -> (usize, usize) {
    match padding {
        Padding::Valid => ((n - k) / s + 1, 0),
        Padding::Same => {
            let out = n.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(n);
            (out, total / 2)
        }
    }
}

/// One local field's activation: `a = Σ field[i] · kernel[i]`, the element-wise product of a
/// patch of the input with a kernel, summed.
pub fn local_field_activation(field: &[f32], kernel: &[f32]) -> f32 {
    field.iter().zip(kernel).map(|(f, k)| f * k).sum()
}

/// The window `(channel, y0.., x0..)` of `input`, with zeros where it falls in the padding.
fn field(input: &Maps, channel: usize, y0: isize, x0: isize, size: usize) -> Vec<f32> {
    let mut patch = Vec::with_capacity(size * size);
    for dy in 0..size as isize {
        for dx in 0..size as isize {
            let (y, x) = (y0 + dy, x0 + dx);
            let inside =
                y >= 0 && x >= 0 && (y as usize) < input.height && (x as usize) < input.width;
            patch.push(if inside {
                input.get(channel, y as usize, x as usize)
            } else {
                0.0
            });
        }
    }
    patch
}

/// Sliding convolution: `out[o, y, x] = Σ_i a(field_i(y s - p, x s - p), kernel[o, i])`.
pub fn conv2d(input: &Maps, kernels: &Kernels, stride: usize, padding: Padding) -> Maps {
    let k = kernels.size;
    let (out_h, pad_y) = output_size(input.height, k, stride, padding);
    let (out_w, pad_x) = output_size(input.width, k, stride, padding);
    let mut out = Maps::zeros(kernels.out_channels, out_h, out_w);
    for o in 0..kernels.out_channels {
        for y in 0..out_h {
            for x in 0..out_w {
                let (y0, x0) = (
                    (y * stride) as isize - pad_y as isize,
                    (x * stride) as isize - pad_x as isize,
                );
                let activation: f32 = (0..input.channels)
                    .map(|i| {
                        let kernel: Vec<f32> = (0..k * k)
                            .map(|j| kernels.get(o, i, j / k, j % k))
                            .collect();
                        local_field_activation(&field(input, i, y0, x0, k), &kernel)
                    })
                    .sum();
                out.set(o, y, x, activation);
            }
        }
    }
    out
}

/// `x[c, y, x] += bias[c]`.
pub fn add_bias(maps: &mut Maps, bias: &[f32]) {
    let plane = maps.height * maps.width;
    for (c, b) in bias.iter().enumerate() {
        for v in &mut maps.data[c * plane..(c + 1) * plane] {
            *v += b;
        }
    }
}

/// `max(0, x)` everywhere.
pub fn relu(values: &mut [f32]) {
    for v in values {
        *v = v.max(0.0);
    }
}

/// Pool windows of `size` with `stride`, reducing each window's values inside the input
/// (padding never contributes, as in TensorFlow).
fn pool(
    input: &Maps,
    size: usize,
    stride: usize,
    padding: Padding,
    reduce: impl Fn(&[f32]) -> f32,
) -> Maps {
    let (out_h, pad_y) = output_size(input.height, size, stride, padding);
    let (out_w, pad_x) = output_size(input.width, size, stride, padding);
    let mut out = Maps::zeros(input.channels, out_h, out_w);
    for c in 0..input.channels {
        for y in 0..out_h {
            for x in 0..out_w {
                let ys = (y * stride).saturating_sub(pad_y)
                    ..(y * stride + size - pad_y).min(input.height);
                let xs = (x * stride).saturating_sub(pad_x)
                    ..(x * stride + size - pad_x).min(input.width);
                let window: Vec<f32> = ys
                    .flat_map(|yy| xs.clone().map(move |xx| (yy, xx)))
                    .map(|(yy, xx)| input.get(c, yy, xx))
                    .collect();
                out.set(c, y, x, reduce(&window));
            }
        }
    }
    out
}

/// `out[c, y, x] = max` over the window.
pub fn max_pool(input: &Maps, size: usize, stride: usize, padding: Padding) -> Maps {
    pool(input, size, stride, padding, |w| {
        w.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    })
}

/// `out[c, y, x] = mean` over the window's pixels inside the input.
pub fn avg_pool(input: &Maps, size: usize, stride: usize, padding: Padding) -> Maps {
    pool(input, size, stride, padding, |w| {
        w.iter().sum::<f32>() / w.len() as f32
    })
}

/// The maps as one vector, channel by channel, row by row.
pub fn flatten(maps: &Maps) -> Vec<f32> {
    maps.data.clone()
}

/// `out[j] = Σ_i x[i] · w[i, j] + b[j]`, with `weights` stored `[inputs, outputs]`.
pub fn dense(x: &[f32], weights: &[f32], bias: &[f32]) -> Vec<f32> {
    let outputs = bias.len();
    (0..outputs)
        .map(|j| {
            x.iter()
                .enumerate()
                .map(|(i, xi)| xi * weights[i * outputs + j])
                .sum::<f32>()
                + bias[j]
        })
        .collect()
}

/// `softmax(x)[i] = exp(x[i] - max x) / Σ_j exp(x[j] - max x)` (shifting by the maximum changes
/// nothing mathematically and keeps `exp` from overflowing).
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_the_formulas() {
        assert_eq!(output_size(299, 3, 2, Padding::Valid), (149, 0));
        assert_eq!(output_size(299, 3, 2, Padding::Same), (150, 1));
        assert_eq!(
            output_size(224, 3, 2, Padding::Same),
            (112, 0),
            "the odd pixel goes bottom/right"
        );
        assert_eq!(output_size(32, 5, 1, Padding::Same), (32, 2));
    }

    #[test]
    fn local_field_is_a_dot_product() {
        assert_eq!(
            local_field_activation(&[1.0, 2.0, 3.0], &[0.5, -1.0, 2.0]),
            4.5
        );
    }
}
