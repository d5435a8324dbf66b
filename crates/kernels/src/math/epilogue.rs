//! What an inference convolution (or pooling) does to each output plane as it writes it: add the
//! channel's bias, normalize it as BatchNorm does with its running statistics, and apply the
//! activation, while the plane is still in cache, instead of a pass over the whole output for
//! each (Burn's broadcast addition, BatchNorm, the activation).

use super::gelu;

/// The activation a convolution's output goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// `max(x, 0)`, NaN staying NaN (Burn's `relu`).
    Relu,
    /// `min(max(x, 0), 6)`, NaN staying NaN (Burn's `clamp(0, 6)`).
    Relu6,
    /// GELU with the error function, as [`gelu::gelu`] computes it.
    Gelu,
}

impl Activation {
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Identity => x,
            Self::Relu => {
                if passes_relu(x) {
                    x
                } else {
                    0.0
                }
            }
            Self::Relu6 => x.clamp(0.0, 6.0),
            Self::Gelu => gelu::gelu(x),
        }
    }
}

/// Where ReLU passes its input and its gradient, as Burn's does: above zero, and NaN.
#[inline(always)]
pub fn passes_relu(x: f32) -> bool {
    x.is_nan() || x > 0.0
}

/// BatchNorm with given statistics, one value per channel each: `(x − mean) / std · gamma +
/// beta`, rounded step by step as Burn's `batch_norm` rounds it, `std` being
/// [`Normalization::deviations`] of the variance.
#[derive(Debug, Clone, Copy)]
pub struct Normalization<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub mean: &'a [f32],
    pub std: &'a [f32],
}

impl Normalization<'_> {
    /// `√(variance + ε)` per channel, as Burn computes it.
    pub fn deviations(variance: &[f32], epsilon: f64) -> Vec<f32> {
        variance
            .iter()
            .map(|&v| (v + epsilon as f32).sqrt())
            .collect()
    }

    /// `values` of channel `channel`, normalized in place.
    #[inline(always)]
    pub fn apply(&self, channel: usize, values: &mut [f32]) {
        let (m, s, g, b) = (
            self.mean[channel],
            self.std[channel],
            self.gamma[channel],
            self.beta[channel],
        );
        values.iter_mut().for_each(|v| *v = (*v - m) / s * g + b);
    }
}

/// The bias (one value per output channel), the normalization and the activation of a
/// convolution's output, in that order.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub normalization: Option<Normalization<'a>>,
    pub activation: Activation,
}

impl Epilogue<'_> {
    /// The output as the convolution computed it: what training runs, differentiated apart.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        normalization: None,
        activation: Activation::Identity,
    };

    /// Channel `channel`'s output plane, biased, normalized and activated in place.
    #[inline(always)]
    pub fn apply(&self, channel: usize, plane: &mut [f32]) {
        // No addition without a bias: adding zero would turn -0.0 into 0.0.
        if let Some(bias) = self.bias {
            let bias = bias[channel];
            plane.iter_mut().for_each(|v| *v += bias);
        }
        if let Some(normalization) = &self.normalization {
            normalization.apply(channel, plane);
        }
        match self.activation {
            Activation::Identity => {}
            // GELU's arithmetic is the epilogue's cost: on the vector instructions of the CPU.
            Activation::Gelu => gelu::forward(plane),
            activation => plane.iter_mut().for_each(|v| *v = activation.apply(*v)),
        }
    }
}
