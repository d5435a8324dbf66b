//! Burn's own operations, composed into what each [`Kernels`](crate::Kernels) method computes:
//! the trait's default bodies, which every backend but `Flex` runs, and what `Flex` falls back to
//! for tensors our kernels do not take (another dtype, an unusual layout).

use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Scalar, get_or_init_device_settings};
use burn::tensor::Distribution;
use burn::tensor::ops::ConvOptions;

use crate::{Activation, AdamStep, Channels, RunningNorm};

/// `x` with its channels as axis 1, where Burn's operations look for them: a view of a
/// [`Channels::Last`] tensor (`[batch, …, channels]`) permuted.
fn channels_first<B: Backend>(x: FloatTensor<B>, channels: Channels) -> FloatTensor<B> {
    match channels {
        Channels::First => x,
        Channels::Last => {
            let axes = channels.to_first(x.shape().num_dims());
            B::float_permute(x, &axes)
        }
    }
}

/// The inverse of [`channels_first`]: a result with its channels as axis 1 back in `channels`'
/// order.
fn in_order<B: Backend>(x: FloatTensor<B>, channels: Channels) -> FloatTensor<B> {
    match channels {
        Channels::First => x,
        Channels::Last => {
            let axes = channels.from_first(x.shape().num_dims());
            B::float_permute(x, &axes)
        }
    }
}

/// Burn's `conv2d` without bias, in `channels`' order.
pub(crate) fn burns_convolution<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    options: ConvOptions<2>,
    channels: Channels,
) -> FloatTensor<B> {
    let output = B::conv2d(channels_first::<B>(x, channels), weight, None, options);
    in_order::<B>(output, channels)
}

/// Burn's gradient of [`burns_convolution`]'s input.
pub(crate) fn burns_convolution_input_grad<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
    channels: Channels,
) -> FloatTensor<B> {
    let grad = B::conv2d_x_backward(
        channels_first::<B>(x, channels),
        weight,
        channels_first::<B>(output_grad, channels),
        options,
    );
    in_order::<B>(grad, channels)
}

/// Burn's gradient of [`burns_convolution`]'s weight.
pub(crate) fn burns_convolution_weight_grad<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
    channels: Channels,
) -> FloatTensor<B> {
    B::conv2d_weight_backward(
        channels_first::<B>(x, channels),
        weight,
        channels_first::<B>(output_grad, channels),
        options,
    )
}

/// Burn's `conv2d` with its bias, then the activation through [`Kernels`](crate::Kernels), in
/// `channels`' order.
pub(crate) fn burns_convolution_activated<B: Backend + crate::Kernels>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    options: ConvOptions<2>,
    activation: Activation,
    channels: Channels,
) -> FloatTensor<B> {
    let x = channels_first::<B>(x, channels);
    let output = activated::<B>(B::conv2d(x, weight, Some(bias), options), activation);
    in_order::<B>(output, channels)
}

/// Burn's BatchNorm with given statistics, in `channels`' order.
pub(crate) fn burns_normalize_running<B: Backend>(
    x: FloatTensor<B>,
    norm: RunningNorm<B>,
    channels: Channels,
) -> FloatTensor<B> {
    let RunningNorm {
        gamma,
        beta,
        mean,
        variance,
        epsilon,
    } = norm;
    let x = channels_first::<B>(x, channels);
    in_order::<B>(
        B::batch_norm(x, gamma, beta, mean, variance, epsilon),
        channels,
    )
}

/// Burn's `conv2d`, then BatchNorm with given statistics and the activation, each through
/// [`Kernels`](crate::Kernels).
pub(crate) fn burns_convolution_normalized<B: Backend + crate::Kernels>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    options: ConvOptions<2>,
    norm: RunningNorm<B>,
    activation: Activation,
) -> FloatTensor<B> {
    let output = B::conv2d(x, weight, None, options);
    normalized_activated::<B>(output, norm, activation)
}

/// 2x2 max-pooling, then BatchNorm with given statistics and the activation, each through
/// [`Kernels`](crate::Kernels).
pub(crate) fn burns_max_pool2x2_normalized<B: Backend + crate::Kernels>(
    x: FloatTensor<B>,
    norm: RunningNorm<B>,
    activation: Activation,
) -> FloatTensor<B> {
    normalized_activated::<B>(B::max_pool2x2(x), norm, activation)
}

/// `activation(normalize_running(x))`.
fn normalized_activated<B: Backend + crate::Kernels>(
    x: FloatTensor<B>,
    norm: RunningNorm<B>,
    activation: Activation,
) -> FloatTensor<B> {
    activated::<B>(B::normalize_running(x, norm, Channels::First), activation)
}

/// `activation(x)` through [`Kernels`](crate::Kernels).
fn activated<B: Backend + crate::Kernels>(
    x: FloatTensor<B>,
    activation: Activation,
) -> FloatTensor<B> {
    match activation {
        Activation::Identity => x,
        Activation::Relu => B::rectify(x),
        Activation::Relu6 => B::relu6(x),
        Activation::Gelu => B::gelu_exact(x),
    }
}

/// Burn's dropout mask (its Bernoulli draw) times Burn's scale.
pub(crate) fn burns_dropout_scales<B: Backend>(like: FloatTensor<B>, prob: f64) -> FloatTensor<B> {
    let keep = 1.0 - prob;
    let mask = B::float_random(
        like.shape(),
        Distribution::Bernoulli(keep),
        &like.device(),
        like.dtype().into(),
    );
    B::float_mul_scalar(mask, Scalar::Float(1.0 / keep))
}

/// Each channel's sum of `[batch, channels, …]`: the reduction Burn's autodiff makes for a bias
/// broadcast over the other axes (one sum over all of them), so the same bits.
pub(crate) fn burns_channel_totals<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let dims = x.shape().to_vec();
    let others: Vec<usize> = (0..dims.len()).filter(|&axis| axis != 1).collect();
    B::float_reshape(B::float_sum_dims(x, &others), [dims[1]].into())
}

/// Burn's `Adam` step, operation by operation: (parameter, first moment, second moment).
pub(crate) fn burns_adam_step<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    moment_1: FloatTensor<B>,
    moment_2: FloatTensor<B>,
    step: AdamStep,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let scalar = |value: f32| Scalar::Float(f64::from(value));
    let grad = match step.penalty {
        Some(penalty) => B::float_add(B::float_mul_scalar(param.clone(), scalar(penalty)), grad),
        None => grad,
    };
    let scaled_g = B::float_mul_scalar(grad.clone(), scalar(1.0 - step.beta_1));
    let squared = B::float_mul(grad.clone(), grad);
    let scaled_g2 = B::float_mul_scalar(squared, scalar(1.0 - step.beta_2));
    let (moment_1, moment_2) = if step.time == 1 {
        (scaled_g, scaled_g2)
    } else {
        (
            B::float_add(B::float_mul_scalar(moment_1, scalar(step.beta_1)), scaled_g),
            B::float_add(
                B::float_mul_scalar(moment_2, scalar(step.beta_2)),
                scaled_g2,
            ),
        )
    };
    let (factor, shift) = step.corrections();
    let root = B::float_add_scalar(B::float_sqrt(moment_2.clone()), scalar(shift));
    let update = B::float_div(B::float_mul_scalar(moment_1.clone(), scalar(factor)), root);
    let delta = B::float_mul_scalar(update, Scalar::Float(step.lr));
    (B::float_sub(param, delta), moment_1, moment_2)
}

/// Burn's own BatchNorm with the batch's statistics, then `activation` through
/// [`Kernels`](crate::Kernels): (output, mean, variance, scale, shift), `x → scale·x + shift` per
/// channel being what it normalized with; the channels in `channels`' order.
pub(crate) fn burns_batch_norm<B: Backend + crate::Kernels>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    activation: Activation,
    channels: Channels,
) -> NormalizedBatch<B> {
    let x = channels_first::<B>(x, channels);
    let result = B::batch_norm_train(x, gamma.clone(), beta.clone(), epsilon);
    let deviation = B::float_sqrt(B::float_add_scalar(
        result.variance.clone(),
        Scalar::Float(epsilon),
    ));
    let scale = B::float_div(gamma, deviation);
    let shift = B::float_sub(beta, B::float_mul(result.mean.clone(), scale.clone()));
    (
        in_order::<B>(activated::<B>(result.output, activation), channels),
        result.mean,
        result.variance,
        scale,
        shift,
    )
}

/// What [`Kernels::normalize_batch`](crate::Kernels::normalize_batch) returns: the output, the
/// batch's mean and variance per channel, and the scale and shift it normalized with.
pub(crate) type NormalizedBatch<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
);

/// Burn's own gradients of [`burns_batch_norm`] (input, gamma, beta), the normalized values
/// recomputed from `scale` and `shift` for `activation`'s gradient.
#[allow(clippy::too_many_arguments)]
pub(crate) fn burns_batch_norm_backward<B: Backend + crate::Kernels>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    [mean, variance, scale, shift]: [FloatTensor<B>; 4],
    epsilon: f64,
    activation: Activation,
    output_grad: FloatTensor<B>,
    channels: Channels,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let x = channels_first::<B>(x, channels);
    let output_grad = channels_first::<B>(output_grad, channels);
    let output_grad = if activation == Activation::Identity {
        output_grad
    } else {
        // Per channel along axis 1, broadcast over the others.
        let rank = x.shape().num_dims();
        let per_channel = |values: FloatTensor<B>| {
            let mut dims = vec![1; rank];
            dims[1] = values.shape().num_elements();
            B::float_reshape(values, dims.into())
        };
        let normalized = B::float_add(
            B::float_mul(x.clone(), per_channel(scale)),
            per_channel(shift),
        );
        activation_gradient::<B>(normalized, output_grad, activation)
    };
    let grads = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, output_grad);
    let x_grad = in_order::<B>(grads.x_grad, channels);
    (x_grad, grads.gamma_grad, grads.beta_grad)
}

/// The gradient of `activation`'s input `x` from its output gradient, through
/// [`Kernels`](crate::Kernels).
fn activation_gradient<B: Backend + crate::Kernels>(
    x: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    activation: Activation,
) -> FloatTensor<B> {
    match activation {
        Activation::Identity => output_grad,
        // ReLU passes its gradient where its output is above zero (or NaN): where its input is.
        Activation::Relu => B::rectify_backward(x, output_grad),
        Activation::Relu6 => B::relu6_backward(x, output_grad),
        Activation::Gelu => B::gelu_exact_backward(x, output_grad),
    }
}

/// Kernel, stride, padding and dilation of [`Kernels::max_pool2x2`].
pub(crate) const POOL2X2: [[usize; 2]; 4] = [[2, 2], [2, 2], [0, 0], [1, 1]];

/// Burn's own 2x2 max-pooling.
pub(crate) fn burns_max_pool2x2<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let [kernel, stride, padding, dilation] = POOL2X2;
    B::max_pool2d(x, kernel, stride, padding, dilation, false)
}

/// The input gradient of Burn's own 2x2 max-pooling.
pub(crate) fn burns_max_pool2x2_backward<B: Backend>(
    x: FloatTensor<B>,
    output_grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let [kernel, stride, padding, dilation] = POOL2X2;
    // The device's own index type, as Burn's autodiff picks it: WGSL has no 64-bit integers.
    let indices_dtype = get_or_init_device_settings::<B>(&x.device()).int_dtype;
    let indices = B::max_pool2d_with_indices(
        x.clone(),
        kernel,
        stride,
        padding,
        dilation,
        false,
        indices_dtype,
    )
    .indices;
    B::max_pool2d_with_indices_backward(
        x,
        kernel,
        stride,
        padding,
        dilation,
        false,
        output_grad,
        indices,
    )
    .x_grad
}

/// The gradient Burn's clamp passes through ReLU6: masked where `x < 0` and where `x > 6`.
pub(crate) fn burns_relu6_backward<B: Backend>(
    x: FloatTensor<B>,
    output_grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let dtype = get_or_init_device_settings::<B>(&x.device()).bool_dtype;
    let below = B::float_lower_elem(x.clone(), Scalar::Float(0.0), dtype);
    let above = B::float_greater_elem(x, Scalar::Float(6.0), dtype);
    let zero = Scalar::Float(0.0);
    B::float_mask_fill(B::float_mask_fill(output_grad, below, zero), above, zero)
}

/// ReLU6 out of Burn's own clamp.
pub(crate) fn burns_relu6<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_clamp(x, Scalar::Float(0.0), Scalar::Float(6.0))
}

#[cfg(test)]
mod tests {
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Flex, TensorData};

    use super::*;
    use crate::Kernels;

    /// Burn's operations composed, as other backends run Adam's step, give the bits of `Flex`'s
    /// single pass (itself tested against Burn's `Adam`): at the first step and later ones, with
    /// and without the penalty.
    #[test]
    fn adam_step_as_burns_operations_is_flexs_single_pass() {
        let values = |seed: usize, scale: f32| -> FlexTensor {
            let values: Vec<f32> = (0..1000)
                .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0)
                .map(|v| if seed == 4 { v * v } else { v * scale })
                .collect();
            FlexTensor::from_data(TensorData::new(values, [10, 100]))
        };
        let bits = |tensor: FlexTensor| -> Vec<u32> {
            let tensor = tensor.to_contiguous();
            let values: &[f32] = tensor.as_slice().expect("f32 values");
            values.iter().map(|v| v.to_bits()).collect()
        };
        for penalty in [None, Some(0.01)] {
            for time in [1, 2, 7] {
                let step = AdamStep {
                    beta_1: 0.9,
                    beta_2: 0.999,
                    epsilon: 1e-7,
                    penalty,
                    lr: 1e-3,
                    time,
                };
                let inputs = || {
                    (
                        values(1, 1.0),
                        values(2, 0.1),
                        values(3, 0.01),
                        values(4, 1.0),
                    )
                };
                let (param, grad, moment_1, moment_2) = inputs();
                let ours = <Flex as Kernels>::adam_step(param, grad, moment_1, moment_2, step);
                let (param, grad, moment_1, moment_2) = inputs();
                let burns = burns_adam_step::<Flex>(param, grad, moment_1, moment_2, step);
                let case = format!("time {time}, penalty {penalty:?}");
                assert!(bits(ours.0) == bits(burns.0), "parameter, {case}");
                assert!(bits(ours.1) == bits(burns.1), "first moment, {case}");
                assert!(bits(ours.2) == bits(burns.2), "second moment, {case}");
            }
        }
    }

    /// Burn's BatchNorm and the activation composed, as other backends run them, against
    /// `Flex`'s single pass, forward and backward, for each activation and either order of the
    /// channels: the same values to rounding (Burn's BatchNorm sums in another order), the
    /// activations' bends included.
    #[test]
    fn batch_norm_with_an_activation_as_burns_operations_is_flexs() {
        let [batch, channels, size] = [6, 5, 49];
        let values = |seed: usize, order: Channels, spread: f32| -> FlexTensor {
            let values: Vec<f32> = (0..batch * channels * size)
                .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0)
                .map(|v| v * spread)
                .collect();
            let shape = match order {
                Channels::First => [batch, channels, 7, 7],
                Channels::Last => [batch, 7, 7, channels],
            };
            FlexTensor::from_data(TensorData::new(values, shape))
        };
        let per_channel =
            |values: &[f32]| FlexTensor::from_data(TensorData::new(values.to_vec(), [channels]));
        let floats = |tensor: FlexTensor| -> Vec<f32> {
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .expect("f32 values")
                .to_vec()
        };
        let close = |what: &str, ours: FlexTensor, burns: FlexTensor| {
            let (ours, burns) = (floats(ours), floats(burns));
            let scale = burns.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = ours
                .iter()
                .zip(&burns)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-5 * scale,
                "{what}: {worst} against values up to {scale}"
            );
        };
        // Normalized values from about -3 to 9: across ReLU6's bends and GELU's curve.
        let (gamma, beta) = (
            per_channel(&[3.0, 2.5, 1.0, 4.0, 0.5]),
            per_channel(&[3.0, 2.0, 0.0, 3.5, -1.0]),
        );
        let activations = [
            Activation::Identity,
            Activation::Relu,
            Activation::Relu6,
            Activation::Gelu,
        ];
        for (activation, order) in activations
            .into_iter()
            .flat_map(|a| [(a, Channels::First), (a, Channels::Last)])
        {
            let x = values(1, order, 2.0);
            let output_grad = values(2, order, 1.0);
            let (output, mean, variance, scale, shift) = <Flex as Kernels>::normalize_batch(
                x.clone(),
                gamma.clone(),
                beta.clone(),
                1e-5,
                activation,
                order,
            );
            let burns = burns_batch_norm::<Flex>(
                x.clone(),
                gamma.clone(),
                beta.clone(),
                1e-5,
                activation,
                order,
            );
            let case = |what: &str| format!("{what}, {activation:?}, channels {order:?}");
            close(&case("output"), output, burns.0);
            close(&case("mean"), mean.clone(), burns.1);
            close(&case("variance"), variance.clone(), burns.2);
            close(&case("scale"), scale.clone(), burns.3);
            close(&case("shift"), shift.clone(), burns.4);
            let ours = <Flex as Kernels>::normalize_batch_backward(
                x.clone(),
                gamma.clone(),
                mean.clone(),
                variance.clone(),
                scale.clone(),
                shift.clone(),
                1e-5,
                activation,
                output_grad.clone(),
                order,
            );
            let burns = burns_batch_norm_backward::<Flex>(
                x,
                gamma.clone(),
                [mean, variance, scale, shift],
                1e-5,
                activation,
                output_grad,
                order,
            );
            close(&case("input gradient"), ours.0, burns.0);
            close(&case("gamma gradient"), ours.1, burns.1);
            close(&case("beta gradient"), ours.2, burns.2);
        }
    }
}
