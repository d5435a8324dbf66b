//! What networks call: Burn's layers (`Conv2d`, `BatchNorm`, `Dropout`, `MaxPool2d`) and
//! activations computed through [`Kernels`], on whatever backend the tensors live.

use burn::backend::Dispatch;
use burn::module::RunningState;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Dropout, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;

use crate::fallback::POOL2X2;
use crate::{Activation, Channels, Kernels, RunningNorm};

/// ReLU, through [`Kernels::rectify`].
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::rectify(x.into_dispatch()))
}

/// GELU (exact, with the error function), through [`Kernels::gelu_exact`].
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::gelu_exact(x.into_dispatch()))
}

/// ReLU6 (MobileNet's and EfficientNet-Lite's activation), through [`Kernels::relu6`].
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::relu6(x.into_dispatch()))
}

/// `activation` of `x`, through its kernel.
pub fn activate<const D: usize>(x: Tensor<D>, activation: Activation) -> Tensor<D> {
    match activation {
        Activation::Identity => x,
        Activation::Relu => relu(x),
        Activation::Relu6 => relu6(x),
        Activation::Gelu => gelu(x),
    }
}

/// `x`, laid out in `channels`' order, as a channels-first view (`[batch, channels, …]`).
pub fn channels_first<const D: usize>(x: Tensor<D>, channels: Channels) -> Tensor<D> {
    permuted(x, channels, Channels::to_first)
}

/// A channels-first `x` as a view in `channels`' order (what the `_last` layers take for
/// [`Channels::Last`]): the inverse of [`channels_first`].
pub fn in_order<const D: usize>(x: Tensor<D>, channels: Channels) -> Tensor<D> {
    permuted(x, channels, Channels::from_first)
}

fn permuted<const D: usize>(
    x: Tensor<D>,
    channels: Channels,
    axes: fn(Channels, usize) -> Vec<usize>,
) -> Tensor<D> {
    match channels {
        Channels::First => x,
        Channels::Last => {
            let axes = axes(channels, D);
            x.permute(std::array::from_fn::<usize, D, _>(|i| axes[i]))
        }
    }
}

/// `conv.forward(input)` through [`Kernels::convolution_biased`] (or [`Kernels::convolution`]
/// for a layer without bias).
pub fn conv2d(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let bias = conv.bias.as_ref().map(|bias| bias.val());
    convolved(conv, input, conv.weight.val(), bias)
}

/// `conv.forward(input)` with the layer held fixed: no gradient is computed for its weights or
/// its input, and no autodiff node is recorded. Detaching [`conv2d`]'s output instead leaves a
/// node holding the input that no backward pass reaches, and Burn 0.22's autodiff frees a graph
/// only in a backward pass (tracel-ai/burn#4970): a batch of inputs kept per training step.
pub fn conv2d_fixed(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let bias = conv.bias.as_ref().map(|bias| bias.val().detach());
    convolved(conv, input.detach(), conv.weight.val().detach(), bias)
}

/// `input` convolved with `weight` as `conv` says, plus `bias`.
fn convolved(
    conv: &Conv2d,
    input: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
) -> Tensor<4> {
    let options = options(conv, &input, Channels::First);
    let (input, weight) = (input.into_dispatch(), weight.into_dispatch());
    let output: Tensor<4> = Tensor::from_dispatch(match bias {
        Some(bias) => {
            <Dispatch as Kernels>::convolution_biased(input, weight, bias.into_dispatch(), options)
        }
        None => <Dispatch as Kernels>::convolution(input, weight, options, Channels::First),
    });
    crate::trace::record(conv.weight.id, &output.dims());
    output
}

/// [`conv2d`] on channels-last tensors: `[batch, h, w, channels]` → `[batch, oh, ow, out]`,
/// through [`Kernels::convolution`] with [`Channels::Last`], the bias (if any) added after.
pub fn conv2d_last(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let options = options(conv, &input, Channels::Last);
    let output: Tensor<4> = Tensor::from_dispatch(<Dispatch as Kernels>::convolution(
        input.into_dispatch(),
        conv.weight.val().into_dispatch(),
        options,
        Channels::Last,
    ));
    let output = match &conv.bias {
        Some(bias) => output + bias.val().reshape([1, 1, 1, -1]),
        None => output,
    };
    crate::trace::record_in(conv.weight.id, &output.dims(), Channels::Last);
    output
}

/// `activation(conv.forward(input))`: on an autodiff device [`conv2d`] then the activation's
/// own kernel, so that it trains; elsewhere (inference) through
/// [`Kernels::convolution_activated`], the bias and activation applied as the output is written.
pub fn conv2d_activated(conv: &Conv2d, input: Tensor<4>, activation: Activation) -> Tensor<4> {
    activated(conv, input, activation, Channels::First)
}

/// [`conv2d_activated`] on channels-last tensors, as [`conv2d_last`].
pub fn conv2d_activated_last(conv: &Conv2d, input: Tensor<4>, activation: Activation) -> Tensor<4> {
    activated(conv, input, activation, Channels::Last)
}

/// [`conv2d_activated`] with the channels where `channels` says.
fn activated(
    conv: &Conv2d,
    input: Tensor<4>,
    activation: Activation,
    channels: Channels,
) -> Tensor<4> {
    if input.device().is_autodiff() {
        let output = match channels {
            Channels::First => conv2d(conv, input),
            Channels::Last => conv2d_last(conv, input),
        };
        return activate(output, activation);
    }
    let options = options(conv, &input, channels);
    let weight = conv.weight.val();
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([weight.dims()[0]], &weight.device()),
    };
    let output: Tensor<4> = Tensor::from_dispatch(<Dispatch as Kernels>::convolution_activated(
        input.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        options,
        activation,
        channels,
    ));
    crate::trace::record_in(conv.weight.id, &output.dims(), channels);
    output
}

/// `activation(bn.forward(conv.forward(input)))`: in inference (no autodiff) for a convolution
/// without bias through [`Kernels::convolution_normalized`], BatchNorm (its running statistics)
/// and the activation applied as the output is written, the same values in one pass instead of
/// three; otherwise [`conv2d`] and [`batch_norm_activated`], so that it trains.
pub fn conv2d_normalized(
    conv: &Conv2d,
    bn: &BatchNorm,
    input: Tensor<4>,
    activation: Activation,
) -> Tensor<4> {
    if input.device().is_autodiff() || conv.bias.is_some() {
        return batch_norm_activated(bn, conv2d(conv, input), activation);
    }
    let options = options(conv, &input, Channels::First);
    let norm = running_norm(bn, &input.device());
    let output: Tensor<4> = Tensor::from_dispatch(<Dispatch as Kernels>::convolution_normalized(
        input.into_dispatch(),
        conv.weight.val().into_dispatch(),
        options,
        norm,
        activation,
    ));
    crate::trace::record(conv.weight.id, &output.dims());
    crate::trace::record(bn.gamma.id, &output.dims());
    output
}

/// `activation(bn.forward(pool.forward(input)))`: in inference (no autodiff) for a 2x2 pooling
/// with stride 2 through [`Kernels::max_pool2x2_normalized`], BatchNorm (its running statistics)
/// and the activation applied as each pooled plane is written; otherwise [`max_pool2d`] and
/// [`batch_norm_activated`].
pub fn max_pool2d_normalized(
    pool: &MaxPool2d,
    bn: &BatchNorm,
    input: Tensor<4>,
    activation: Activation,
) -> Tensor<4> {
    if input.device().is_autodiff() || !pools_2x2(pool) {
        return batch_norm_activated(bn, max_pool2d(pool, input), activation);
    }
    let norm = running_norm(bn, &input.device());
    let output: Tensor<4> = Tensor::from_dispatch(<Dispatch as Kernels>::max_pool2x2_normalized(
        input.into_dispatch(),
        norm,
        activation,
    ));
    crate::trace::record(bn.gamma.id, &output.dims());
    output
}

/// `bn` in inference: its gamma, beta, running mean and running variance on `device`.
fn running_norm(bn: &BatchNorm, device: &Device) -> RunningNorm<Dispatch> {
    let running = |state: &RunningState<Tensor<1>>| state.value().to_device(device);
    RunningNorm {
        gamma: bn.gamma.val().into_dispatch(),
        beta: bn.beta.val().into_dispatch(),
        mean: running(&bn.running_mean).into_dispatch(),
        variance: running(&bn.running_var).into_dispatch(),
        epsilon: bn.epsilon,
    }
}

/// `conv`'s stride, padding for `input`'s sides (its channels where `channels` says), dilation
/// and groups.
fn options(conv: &Conv2d, input: &Tensor<4>, channels: Channels) -> ConvOptions<2> {
    let sides = match (channels, input.dims()) {
        (Channels::First, [_, _, height, width]) | (Channels::Last, [_, height, width, _]) => {
            [height, width]
        }
    };
    ConvOptions::new_with_padding(
        conv.stride,
        padding(conv, sides),
        conv.dilation,
        conv.groups,
    )
}

/// `bn.forward(input)`: training (on an autodiff device with the layer training) through
/// [`Kernels::normalize_batch`], normalized with the batch's statistics, which move the running
/// ones by the layer's momentum, as Burn's layer does; in inference (no autodiff) through
/// [`Kernels::normalize_running`] with the running statistics; else Burn's layer.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, input: Tensor<D>) -> Tensor<D> {
    batch_norm_activated(bn, input, Activation::Identity)
}

/// `activate(batch_norm(bn, input), activation)`, the same values; in training through
/// [`Kernels::normalize_batch`] with the activation, which `Flex` applies as it writes the
/// normalized values and differentiates without keeping them.
pub fn batch_norm_activated<const D: usize>(
    bn: &BatchNorm,
    input: Tensor<D>,
    activation: Activation,
) -> Tensor<D> {
    normalized(bn, input, activation, Channels::First)
}

/// [`batch_norm_activated`] on channels-last tensors (`[batch, …, channels]`).
pub fn batch_norm_activated_last<const D: usize>(
    bn: &BatchNorm,
    input: Tensor<D>,
    activation: Activation,
) -> Tensor<D> {
    normalized(bn, input, activation, Channels::Last)
}

/// [`batch_norm_activated`] with the channels where `channels` says.
fn normalized<const D: usize>(
    bn: &BatchNorm,
    input: Tensor<D>,
    activation: Activation,
    channels: Channels,
) -> Tensor<D> {
    crate::trace::record_in(bn.gamma.id, &input.dims(), channels);
    if !input.device().is_autodiff() {
        let norm = running_norm(bn, &input.device());
        let output = Tensor::from_dispatch(<Dispatch as Kernels>::normalize_running(
            input.into_dispatch(),
            norm,
            channels,
        ));
        return activate(output, activation);
    }
    if !bn.training.is_enabled() {
        // Burn's layer wants the channels as axis 1, and gives them back there.
        let output = bn.forward(channels_first(input, channels));
        return activate(in_order(output, channels), activation);
    }
    let (output, mean, variance, _, _) = <Dispatch as Kernels>::normalize_batch(
        input.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
        activation,
        channels,
    );
    let output: Tensor<D> = Tensor::from_dispatch(output);
    let device = output.device();
    let follow = |running: &RunningState<Tensor<1>>, batch| {
        let batch: Tensor<1> = Tensor::from_dispatch(batch);
        let old = running.value_sync().to_device(&device);
        running.update(
            old.mul_scalar(1.0 - bn.momentum)
                .add(batch.detach().mul_scalar(bn.momentum))
                .detach(),
        );
    };
    follow(&bn.running_mean, mean);
    follow(&bn.running_var, variance);
    output
}

/// `layer.forward(input)` with its mask from [`Kernels::dropout_scales`]: on an autodiff device
/// with the layer training, each element zeroed with the layer's probability and the others
/// scaled up to keep the mean.
pub fn dropout<const D: usize>(layer: &Dropout, input: Tensor<D>) -> Tensor<D> {
    if !(input.device().is_autodiff() && layer.training.is_enabled()) || layer.prob == 0.0 {
        return input;
    }
    let scales = <Dispatch as Kernels>::dropout_scales(input.clone().into_dispatch(), layer.prob);
    input * Tensor::from_dispatch(scales)
}

/// `(before, after)` padding of each spatial side, by Burn's rule for `Conv2d` (whose own helper is
/// private): "same" pads `(⌈n/stride⌉ − 1)·stride + kernel − n` in all, the odd one after.
fn padding(conv: &Conv2d, input: [usize; 2]) -> [(usize, usize); 2] {
    match conv.padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => std::array::from_fn(|i| {
            let (n, stride) = (input[i], conv.stride[i]);
            let total = match n.div_ceil(stride) {
                0 => 0,
                out => ((out - 1) * stride + conv.kernel_size[i]).saturating_sub(n),
            };
            (total / 2, total - total / 2)
        }),
    }
}

/// `pool.forward(input)`, through [`Kernels::max_pool2x2`] when the layer pools 2x2 windows with
/// stride 2 and no padding.
pub fn max_pool2d(pool: &MaxPool2d, input: Tensor<4>) -> Tensor<4> {
    if pools_2x2(pool) {
        Tensor::from_dispatch(<Dispatch as Kernels>::max_pool2x2(input.into_dispatch()))
    } else {
        pool.forward(input)
    }
}

/// Whether `pool` pools 2x2 windows with stride 2 and no padding, as [`Kernels::max_pool2x2`].
fn pools_2x2(pool: &MaxPool2d) -> bool {
    let [kernel, stride, _, dilation] = POOL2X2;
    let unpadded = matches!(
        pool.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    pool.kernel_size == kernel
        && pool.stride == stride
        && pool.dilation == dilation
        && unpadded
        && !pool.ceil_mode
}
