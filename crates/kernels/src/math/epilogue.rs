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

/// An activation known when compiling ([`fixed`]): loops generic over it carry no branch on the
/// activation, so they vectorize however the compiler inlines them. (Loops in a closure called
/// with each activation as a constant vectorized only while the compiler chose to inline the
/// closure: an unrelated change once left BatchNorm's channels-last backward loops scalar.)
pub(crate) trait Fixed {
    const ACTIVATION: Activation;
}

/// The activations BatchNorm's gradients run loops for, as types ([`Fixed`]).
pub(crate) mod fixed {
    use super::{Activation, Fixed};

    pub(crate) struct Identity;
    pub(crate) struct Relu;
    pub(crate) struct Relu6;

    impl Fixed for Identity {
        const ACTIVATION: Activation = Activation::Identity;
    }

    impl Fixed for Relu {
        const ACTIVATION: Activation = Activation::Relu;
    }

    impl Fixed for Relu6 {
        const ACTIVATION: Activation = Activation::Relu6;
    }
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

    /// `values` through the activation, in place, on the calling thread.
    #[inline(always)]
    pub fn apply_all(self, values: &mut [f32]) {
        match self {
            Self::Identity => {}
            // GELU's arithmetic is the cost: on the vector instructions of the CPU.
            Self::Gelu => gelu::forward(values),
            activation => values.iter_mut().for_each(|v| *v = activation.apply(*v)),
        }
    }

    /// The gradient of the activation's input at `x` from its output gradient `grad`, as Burn
    /// passes it: ReLU where [`passes_relu`], ReLU6 where `0 ≤ x ≤ 6` (or x is NaN), as
    /// Burn's clamp does; GELU times its derivative.
    #[inline(always)]
    pub fn gradient(self, x: f32, grad: f32) -> f32 {
        // Selects, not branches around stores: the loops that call this run on vectors.
        match self {
            Self::Identity => grad,
            Self::Relu => {
                if passes_relu(x) {
                    grad
                } else {
                    0.0
                }
            }
            // Not `contains`: NaN passes.
            #[allow(clippy::manual_range_contains)]
            Self::Relu6 => {
                if x < 0.0 || x > 6.0 {
                    0.0
                } else {
                    grad
                }
            }
            Self::Gelu => grad * gelu::gelu_derivative(x),
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

    /// One position's channels (`[channels]`, channels-last values), normalized in place as
    /// [`Normalization::apply`] normalizes each channel's values.
    #[inline(always)]
    pub fn apply_across(&self, channels: &mut [f32]) {
        let statistics = self
            .mean
            .iter()
            .zip(self.std)
            .zip(self.gamma.iter().zip(self.beta));
        for (v, ((m, s), (g, b))) in channels.iter_mut().zip(statistics) {
            *v = (*v - m) / s * g + b;
        }
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
        self.activation.apply_all(plane);
    }

    /// One position's channels (`[channels]`, channels-last values), biased, normalized and
    /// activated in place, as [`Epilogue::apply`] does each channel's plane.
    #[inline(always)]
    pub fn apply_across(&self, channels: &mut [f32]) {
        if let Some(bias) = self.bias {
            channels.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
        if let Some(normalization) = &self.normalization {
            normalization.apply_across(channels);
        }
        self.activation.apply_all(channels);
    }
}
