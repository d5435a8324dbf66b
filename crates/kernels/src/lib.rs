//! Kernels of our own for operations Burn's CPU backend (`flex`) runs slowly, plugged in through
//! Burn's backend-extension mechanism, laid out as Burn's custom-kernel example is:
//!
//! - this file: the [`Kernels`] trait, one method per operation and its gradients, whose default
//!   bodies are Burn's own operations ([`fallback`]), which every other backend keeps;
//! - [`layers`]: what a network calls (`relu`, `conv2d`, `batch_norm`, ...), taking Burn's layers;
//! - [`flex`]: the implementation for `Flex`, from tensors to slices and back;
//! - [`autodiff`]: the backward steps, which call the gradients of the backend underneath;
//! - [`optim`]: what training loops call (Adam through [`Kernels::adam_step`]);
//! - [`math`]: the arithmetic on plain slices, free of Burn's types;
//! - [`trace`]: which layers a forward pass ran, for model summaries.
//!
//! Not here: networks (the `models` crate), or any other backend's kernels.

mod autodiff;
mod fallback;
mod flex;
pub mod layers;
pub mod math;
pub mod optim;
pub mod trace;

use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, ExtensionType, backend_extension};
use burn::tensor::ops::ConvOptions;

pub use layers::{
    activate, batch_norm, batch_norm_activated, batch_norm_activated_last, channels_first, conv2d,
    conv2d_activated, conv2d_activated_last, conv2d_fixed, conv2d_last, conv2d_normalized, dropout,
    gelu, in_order, max_pool2d, max_pool2d_normalized, relu, relu6,
};
pub use math::Channels;
pub use math::adam::AdamStep;
pub use math::bf16::{Precision, amx_available, matmul_precision, set_matmul_precision};
pub use math::epilogue::Activation;

use fallback::*;

/// BatchNorm with given statistics (the running ones, in inference): its scale and shift, the
/// mean and variance it normalizes with (one value per channel each), and its epsilon.
#[derive(ExtensionType)]
pub struct RunningNorm<B: Backend> {
    pub gamma: FloatTensor<B>,
    pub beta: FloatTensor<B>,
    pub mean: FloatTensor<B>,
    pub variance: FloatTensor<B>,
    pub epsilon: f64,
}

/// Elements per parallel task: large enough that scheduling costs nothing next to the work.
const CHUNK: usize = 1 << 16;

#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    NdArray: cfg(feature = "ndarray")
)]
pub trait Kernels: Backend {
    /// `min(max(x, 0), 6)`, NaN staying NaN: Burn's `clamp(0, 6)`, differentiated with
    /// [`Kernels::relu6_backward`].
    fn relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        burns_relu6::<Self>(x)
    }

    /// The gradient of [`Kernels::relu6`]'s input: the output gradient where `0 ≤ x ≤ 6` (or x
    /// is NaN), zero elsewhere, as Burn's clamp passes it.
    fn relu6_backward(x: FloatTensor<Self>, output_grad: FloatTensor<Self>) -> FloatTensor<Self> {
        burns_relu6_backward::<Self>(x, output_grad)
    }

    /// GELU, `x·Φ(x)` with the error function (not tanh's approximation): Burn's `gelu`, or
    /// within 1e-6 of it, differentiated with [`Kernels::gelu_exact_backward`].
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu(x)
    }

    /// The gradient of [`Kernels::gelu_exact`]'s input from that input: Burn's, or within 1e-6
    /// of it.
    fn gelu_exact_backward(
        x: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu_backward(x, output_grad)
    }

    /// ReLU, `max(x, 0)` with NaN staying NaN: Burn's `relu`, differentiated with
    /// [`Kernels::rectify_backward`].
    fn rectify(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::relu(x)
    }

    /// The gradient of [`Kernels::rectify`]'s input from its output: the output gradient where
    /// the output is above zero (or NaN), zero elsewhere, as Burn's ReLU passes it.
    fn rectify_backward(
        output: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::relu_backward(output, output_grad)
    }

    /// Burn's `conv2d` without bias, differentiated with [`Kernels::convolution_input_grad`] and
    /// [`Kernels::convolution_weight_grad`]; on `[batch, h, w, channels]` tensors (in and out)
    /// for [`Channels::Last`], the weight as Burn's (`[out, in / groups, kh, kw]`).
    fn convolution(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
        channels: Channels,
    ) -> FloatTensor<Self> {
        burns_convolution::<Self>(x, weight, options, channels)
    }

    /// Inference only: `activation(conv2d(x, weight) + bias)` (`bias` one value per output
    /// channel, zeros for a layer without one), which `Flex` computes as it writes each output
    /// plane (Burn: the convolution, a broadcast addition, the activation). Not differentiated
    /// through our kernels: training calls [`Kernels::convolution`]. Channels-last tensors for
    /// [`Channels::Last`], as there.
    fn convolution_activated(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
        activation: Activation,
        channels: Channels,
    ) -> FloatTensor<Self> {
        burns_convolution_activated::<Self>(x, weight, bias, options, activation, channels)
    }

    /// `conv2d(x, weight) + bias` (one value per output channel), differentiated with
    /// [`Kernels::convolution_input_grad`], [`Kernels::convolution_weight_grad`] and, for the
    /// bias, [`Kernels::channel_totals`] of the output gradient: without autodiff
    /// [`Kernels::convolution_activated`] with no activation, which `Flex` computes adding the
    /// bias to each output plane as it writes it (Burn: a broadcast addition over the whole
    /// output, the same values).
    fn convolution_biased(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::convolution_activated(
            x,
            weight,
            bias,
            options,
            Activation::Identity,
            Channels::First,
        )
    }

    /// Each channel's sum over the samples and their planes, `[channels]` from `[batch,
    /// channels, …]`: the gradient of a bias added per channel, as Burn's autodiff reduces it.
    fn channel_totals(x: FloatTensor<Self>) -> FloatTensor<Self> {
        burns_channel_totals::<Self>(x)
    }

    /// Inference only: `activation(normalize_running(conv2d(x, weight)))` (see
    /// [`Kernels::normalize_running`]), which `Flex` computes as it writes each output plane
    /// (Burn: a pass over the output for BatchNorm and one for the activation). Not
    /// differentiated through our kernels.
    fn convolution_normalized(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
        #[extension_type] norm: RunningNorm<Self>,
        activation: Activation,
    ) -> FloatTensor<Self> {
        burns_convolution_normalized::<Self>(x, weight, options, norm, activation)
    }

    /// The gradient of [`Kernels::convolution`] with respect to its input.
    fn convolution_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        channels: Channels,
    ) -> FloatTensor<Self> {
        burns_convolution_input_grad::<Self>(x, weight, output_grad, options, channels)
    }

    /// The gradient of [`Kernels::convolution`] with respect to its weight.
    fn convolution_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        channels: Channels,
    ) -> FloatTensor<Self> {
        burns_convolution_weight_grad::<Self>(x, weight, output_grad, options, channels)
    }

    /// Max-pooling over 2x2 windows with stride 2: Burn's `max_pool2d` with those settings,
    /// differentiated with [`Kernels::max_pool2x2_backward`].
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        burns_max_pool2x2::<Self>(x)
    }

    /// The gradient of [`Kernels::max_pool2x2`]'s input: the output gradient at each window's
    /// maximum, zero elsewhere.
    fn max_pool2x2_backward(
        x: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        burns_max_pool2x2_backward::<Self>(x, output_grad)
    }

    /// Inference only: `activation(normalize_running(max_pool2x2(x)))`, which `Flex` computes
    /// as it writes each pooled plane. Not differentiated through our kernels.
    fn max_pool2x2_normalized(
        x: FloatTensor<Self>,
        #[extension_type] norm: RunningNorm<Self>,
        activation: Activation,
    ) -> FloatTensor<Self> {
        burns_max_pool2x2_normalized::<Self>(x, norm, activation)
    }

    /// BatchNorm with the batch's own statistics through `activation`: Burn's
    /// `batch_norm_train` (the output, then each channel's mean and biased variance) and the
    /// activation, which `Flex` applies as it writes each plane (Burn: a second pass, and the
    /// normalized values kept for the activation's gradient); then each channel's scale and
    /// shift, `x → scale·x + shift` being the normalization, from which the backward step
    /// recomputes the normalized values. The channels are axis 1, or the last axis for
    /// [`Channels::Last`]. Differentiated with [`Kernels::normalize_batch_backward`].
    // The macro reads the five outputs from the signature: no alias can name them.
    #[allow(clippy::type_complexity)]
    fn normalize_batch(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        activation: Activation,
        channels: Channels,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        burns_batch_norm::<Self>(x, gamma, beta, epsilon, activation, channels)
    }

    /// The gradients of [`Kernels::normalize_batch`]'s input, gamma and beta, given the mean,
    /// variance, scale and shift it returned.
    #[allow(clippy::too_many_arguments)]
    fn normalize_batch_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        epsilon: f64,
        activation: Activation,
        output_grad: FloatTensor<Self>,
        channels: Channels,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_batch_norm_backward::<Self>(
            x,
            gamma,
            [mean, variance, scale, shift],
            epsilon,
            activation,
            output_grad,
            channels,
        )
    }

    /// BatchNorm with given statistics (the running ones, in inference): Burn's `batch_norm`,
    /// `(x − mean) / √(variance + ε) · gamma + beta` per channel, which `Flex` computes in one
    /// pass with the same roundings. Not differentiated through our kernels: training calls
    /// [`Kernels::normalize_batch`], or Burn's layer where the statistics are fixed. The channels
    /// are axis 1, or the last axis for [`Channels::Last`].
    fn normalize_running(
        x: FloatTensor<Self>,
        #[extension_type] norm: RunningNorm<Self>,
        channels: Channels,
    ) -> FloatTensor<Self> {
        burns_normalize_running::<Self>(x, norm, channels)
    }

    /// One step of Burn's `Adam` on a parameter: the parameter, the first moment and the second
    /// moment after it. At the first step (`step.time == 1`) the moments' values are not read.
    fn adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_adam_step::<Self>(param, grad, moment_1, moment_2, step)
    }

    /// Dropout's factors for a tensor shaped like `like`: 0 with probability `prob`, else
    /// `1 / (1 - prob)`, drawn from the backend's seeded generator.
    fn dropout_scales(like: FloatTensor<Self>, prob: f64) -> FloatTensor<Self> {
        burns_dropout_scales::<Self>(like, prob)
    }
}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Kernels for burn::backend::Cube {}

#[cfg(feature = "ndarray")]
impl Kernels for burn::backend::NdArray {}
