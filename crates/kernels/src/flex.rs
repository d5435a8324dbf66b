//! [`Kernels`] on `Flex`: f32 tensors become slices for [`crate::math`] and the results tensors
//! again; anything else goes to Burn's own operations ([`crate::fallback`]).

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, IntTensorOps};
use burn::backend::{DType, Flex, IntDType, TensorData};
use burn::tensor::Distribution;
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;

use crate::fallback::*;
use crate::math::convolution::Geometry;
use crate::math::epilogue::{Activation, Epilogue, Normalization, passes_relu};
use crate::math::output::written_in_pieces;
use crate::math::{adam, batch_norm, convolution, depthwise, dropout, gelu, max_pool};
use crate::{AdamStep, CHUNK, Channels, Kernels, RunningNorm};

/// The sizes of an f32 convolution on `Flex`, its input in `order`.
fn flex_geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
    order: Channels,
) -> Option<Geometry> {
    let [batch, channels_in, h, w] = match (order, x.shape().dims::<4>()) {
        (Channels::First, dims) => dims,
        (Channels::Last, [batch, h, w, channels]) => [batch, channels, h, w],
    };
    let [channels_out, per_group, kh, kw] = weight.shape().dims();
    let ours = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && per_group * options.groups == channels_in;
    let output = |axis: usize, size: usize, kernel: usize| {
        let (before, after) = options.padding[axis];
        let span = options.dilation[axis] * (kernel - 1) + 1;
        (size + before + after)
            .checked_sub(span)
            .map(|room| room / options.stride[axis] + 1)
    };
    Some(Geometry {
        batch,
        channels_in,
        groups: options.groups,
        input: [h, w],
        channels_out,
        output: [output(0, h, kh)?, output(1, w, kw)?],
        kernel: [kh, kw],
        stride: options.stride,
        padding: options.padding_begin(),
        dilation: options.dilation,
    })
    .filter(|_| ours)
}

/// What our kernels compute: a dense convolution (pointwise or not) and a depthwise one on
/// channels-first values; on channels-last values, a pointwise convolution and a depthwise one.
/// Burn's operations do the rest.
#[derive(Clone, Copy)]
enum Kind {
    Dense,
    Depthwise(Channels),
    PointwiseLast,
}

impl Kind {
    fn of(g: &Geometry, order: Channels) -> Option<Self> {
        let dense = match order {
            Channels::First => g.is_dense().then_some(Self::Dense),
            Channels::Last => (g.is_dense() && g.is_pointwise() && g.output == g.input)
                .then_some(Self::PointwiseLast),
        };
        dense.or_else(|| g.is_depthwise().then_some(Self::Depthwise(order)))
    }

    /// Where the channels of the input, the output and their gradients lie.
    fn order(self) -> Channels {
        match self {
            Self::Dense => Channels::First,
            Self::Depthwise(order) => order,
            Self::PointwiseLast => Channels::Last,
        }
    }
}

/// The geometry and kind of an f32 convolution our kernels compute.
fn ours(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
    order: Channels,
) -> Option<(Geometry, Kind)> {
    let g = flex_geometry(x, weight, options, order)?;
    Some((g, Kind::of(&g, order)?))
}

/// The output of convolution `g` through `epilogue`.
fn forward(
    x: FlexTensor,
    weight: FlexTensor,
    (g, kind): (Geometry, Kind),
    epilogue: &Epilogue,
) -> FlexTensor {
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let (x, weight) = (f32s(&x), f32s(&weight));
    let output = match kind {
        Kind::Dense if g.is_pointwise() => convolution::pointwise(x, weight, &g, epilogue),
        Kind::Dense => convolution::forward(x, weight, &g, epilogue),
        Kind::Depthwise(order) => depthwise::forward(x, weight, &g, order, epilogue),
        Kind::PointwiseLast => convolution::pointwise_last(x, weight, &g, epilogue),
    };
    let [oh, ow] = g.output;
    let shape = match kind.order() {
        Channels::First => [g.batch, g.channels_out, oh, ow],
        Channels::Last => [g.batch, oh, ow, g.channels_out],
    };
    FlexTensor::from_data(TensorData::new(output, shape))
}

/// `x` with storage of its own holding exactly its elements, in order: `x` itself when it has
/// that already, a copy otherwise, so that a kernel can overwrite it.
fn owned(x: FlexTensor) -> FlexTensor {
    if is_own(&x) {
        return x;
    }
    let shape = x.shape();
    FlexTensor::from_data(TensorData::new(f32s(&x.to_contiguous()).to_vec(), shape))
}

/// Whether `x` has storage of its own holding exactly its elements, in order.
fn is_own(x: &FlexTensor) -> bool {
    let layout = x.layout();
    x.is_unique() && layout.is_contiguous() && layout.start_offset() == 0
}

/// The elements of a contiguous f32 tensor.
fn f32s(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice().expect("a contiguous f32 tensor")
}

/// Flex's clamp walks the elements on one thread, and its autodiff gradient is two masked fills;
/// its ReLU and ReLU gradient walk them on one thread too. Ours run on every core, in place where
/// the tensor is not shared.
impl Kernels for Flex {
    fn relu6(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return burns_relu6::<Self>(x);
        }
        mapped(x, activated(Activation::Relu6))
    }

    fn relu6_backward(x: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 || output_grad.dtype() != DType::F32 {
            return burns_relu6_backward::<Self>(x, output_grad);
        }
        // Not `contains`: a NaN input passes its gradient, as through Burn's clamp.
        #[allow(clippy::manual_range_contains)]
        gradient_where(x, output_grad, |x| !(x < 0.0 || x > 6.0))
    }

    fn gelu_exact(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return <Self as ActivationOps<Self>>::gelu(x);
        }
        mapped(x, gelu::forward)
    }

    fn gelu_exact_backward(x: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 || output_grad.dtype() != DType::F32 {
            return <Self as ActivationOps<Self>>::gelu_backward(x, output_grad);
        }
        let x = x.to_contiguous();
        let mut grad = owned(output_grad);
        let n = grad.layout().num_elements();
        gelu::backward(f32s(&x), &mut grad.storage_mut::<f32>()[..n]);
        grad
    }

    fn rectify(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return <Self as ActivationOps<Self>>::relu(x);
        }
        mapped(x, activated(Activation::Relu))
    }

    fn rectify_backward(output: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        if output.dtype() != DType::F32 || output_grad.dtype() != DType::F32 {
            return <Self as ActivationOps<Self>>::relu_backward(output, output_grad);
        }
        gradient_where(output, output_grad, passes_relu)
    }

    fn convolution(
        x: FlexTensor,
        weight: FlexTensor,
        options: ConvOptions<2>,
        channels: Channels,
    ) -> FlexTensor {
        match ours(&x, &weight, &options, channels) {
            Some(convolution) => forward(x, weight, convolution, &Epilogue::NONE),
            None => burns_convolution::<Self>(x, weight, options, channels),
        }
    }

    fn convolution_activated(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
        activation: Activation,
        channels: Channels,
    ) -> FlexTensor {
        let convolution =
            ours(&x, &weight, &options, channels).filter(|_| bias.dtype() == DType::F32);
        let Some(convolution) = convolution else {
            return burns_convolution_activated::<Self>(
                x, weight, bias, options, activation, channels,
            );
        };
        let bias = bias.to_contiguous();
        let epilogue = Epilogue {
            bias: Some(f32s(&bias)),
            normalization: None,
            activation,
        };
        forward(x, weight, convolution, &epilogue)
    }

    fn convolution_normalized(
        x: FlexTensor,
        weight: FlexTensor,
        options: ConvOptions<2>,
        norm: RunningNorm<Self>,
        activation: Activation,
    ) -> FlexTensor {
        let Some((convolution, statistics)) = ours(&x, &weight, &options, Channels::First)
            .and_then(|(g, kind)| Some(((g, kind), per_channel(&norm, g.channels_out)?)))
        else {
            return burns_convolution_normalized::<Self>(x, weight, options, norm, activation);
        };
        normalizing(&statistics, norm.epsilon, activation, |epilogue| {
            forward(x, weight, convolution, epilogue)
        })
    }

    fn convolution_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
        channels: Channels,
    ) -> FlexTensor {
        let convolution =
            ours(&x, &weight, &options, channels).filter(|_| output_grad.dtype() == DType::F32);
        let Some((g, kind)) = convolution else {
            return burns_convolution_input_grad::<Self>(x, weight, output_grad, options, channels);
        };
        let (weight, output_grad) = (weight.to_contiguous(), output_grad.to_contiguous());
        let (weight, output_grad) = (f32s(&weight), f32s(&output_grad));
        let grad = match kind {
            Kind::Dense => convolution::input_grad(weight, output_grad, &g),
            Kind::Depthwise(order) => depthwise::input_grad(weight, output_grad, &g, order),
            Kind::PointwiseLast => convolution::pointwise_last_input_grad(weight, output_grad, &g),
        };
        FlexTensor::from_data(TensorData::new(grad, x.shape()))
    }

    fn convolution_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
        channels: Channels,
    ) -> FlexTensor {
        let convolution =
            ours(&x, &weight, &options, channels).filter(|_| output_grad.dtype() == DType::F32);
        let Some((g, kind)) = convolution else {
            return burns_convolution_weight_grad::<Self>(
                x,
                weight,
                output_grad,
                options,
                channels,
            );
        };
        let (x, output_grad) = (x.to_contiguous(), output_grad.to_contiguous());
        let (x, output_grad) = (f32s(&x), f32s(&output_grad));
        let grad = match kind {
            Kind::Dense => convolution::weight_grad(x, output_grad, &g),
            Kind::Depthwise(order) => depthwise::weight_grad(x, output_grad, &g, order),
            Kind::PointwiseLast => convolution::pointwise_last_weight_grad(x, output_grad, &g),
        };
        FlexTensor::from_data(TensorData::new(grad, weight.shape()))
    }

    fn max_pool2x2(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return burns_max_pool2x2::<Self>(x);
        }
        pooled(x, &Epilogue::NONE)
    }

    fn max_pool2x2_normalized(
        x: FlexTensor,
        norm: RunningNorm<Self>,
        activation: Activation,
    ) -> FlexTensor {
        let channels = x.shape().dims::<4>()[1];
        let Some(statistics) = per_channel(&norm, channels).filter(|_| x.dtype() == DType::F32)
        else {
            return burns_max_pool2x2_normalized::<Self>(x, norm, activation);
        };
        normalizing(&statistics, norm.epsilon, activation, |epilogue| {
            pooled(x, epilogue)
        })
    }

    fn max_pool2x2_backward(x: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 || output_grad.dtype() != DType::F32 {
            return burns_max_pool2x2_backward::<Self>(x, output_grad);
        }
        let shape = x.shape();
        let [_, _, h, w] = shape.dims();
        let (x, output_grad) = (x.to_contiguous(), output_grad.to_contiguous());
        let grad = max_pool::backward(f32s(&x), f32s(&output_grad), [h, w]);
        FlexTensor::from_data(TensorData::new(grad, shape))
    }

    fn normalize_batch(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        activation: Activation,
        channels: Channels,
    ) -> (FlexTensor, FlexTensor, FlexTensor, FlexTensor, FlexTensor) {
        let Some(layout) = normalized_layout(&[&x, &gamma, &beta], channels) else {
            return burns_batch_norm::<Self>(x, gamma, beta, epsilon, activation, channels);
        };
        let (x, gamma, beta) = (
            x.to_contiguous(),
            gamma.to_contiguous(),
            beta.to_contiguous(),
        );
        let (x_values, gamma, beta) = (f32s(&x), f32s(&gamma), f32s(&beta));
        let normalized = match layout {
            Normalized::Planes(planes) => {
                batch_norm::forward(x_values, gamma, beta, epsilon, activation, planes)
            }
            Normalized::Last(channels) => {
                batch_norm::forward_last(x_values, gamma, beta, epsilon, activation, channels)
            }
        };
        let per_channel =
            |values| FlexTensor::from_data(TensorData::new(values, [layout.channels()]));
        (
            FlexTensor::from_data(TensorData::new(normalized.output, x.shape())),
            per_channel(normalized.mean),
            per_channel(normalized.variance),
            per_channel(normalized.scale),
            per_channel(normalized.shift),
        )
    }

    fn normalize_batch_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        epsilon: f64,
        activation: Activation,
        output_grad: FlexTensor,
        channels: Channels,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let tensors = [&x, &gamma, &mean, &variance, &scale, &shift, &output_grad];
        let Some(layout) = normalized_layout(&tensors, channels) else {
            return burns_batch_norm_backward::<Self>(
                x,
                gamma,
                [mean, variance, scale, shift],
                epsilon,
                activation,
                output_grad,
                channels,
            );
        };
        let [x, gamma, mean, variance, scale, shift] =
            [x, gamma, mean, variance, scale, shift].map(|t| t.to_contiguous());
        let mut grad = owned(output_grad);
        let n = grad.layout().num_elements();
        let (x, gamma) = (f32s(&x), f32s(&gamma));
        let statistics = [&mean, &variance, &scale, &shift].map(f32s);
        let output_grad = &mut grad.storage_mut::<f32>()[..n];
        let (gamma_grad, beta_grad) = match layout {
            Normalized::Planes(planes) => batch_norm::backward(
                x,
                gamma,
                statistics,
                epsilon,
                activation,
                output_grad,
                planes,
            ),
            Normalized::Last(channels) => batch_norm::backward_last(
                x,
                gamma,
                statistics,
                epsilon,
                activation,
                output_grad,
                channels,
            ),
        };
        let per_channel =
            |values| FlexTensor::from_data(TensorData::new(values, [layout.channels()]));
        (grad, per_channel(gamma_grad), per_channel(beta_grad))
    }

    fn normalize_running(x: FlexTensor, norm: RunningNorm<Self>, channels: Channels) -> FlexTensor {
        let layout = normalized_layout(&[&x], channels);
        let Some((layout, statistics)) =
            layout.and_then(|layout| Some((layout, per_channel(&norm, layout.channels())?)))
        else {
            return burns_normalize_running::<Self>(x, norm, channels);
        };
        let mut x = owned(x);
        let n = x.layout().num_elements();
        let values = &mut x.storage_mut::<f32>()[..n];
        let statistics = [0, 1, 2, 3].map(|i| f32s(&statistics[i]));
        match layout {
            Normalized::Planes(planes) => {
                batch_norm::running(values, statistics, norm.epsilon, planes)
            }
            Normalized::Last(_) => batch_norm::running_last(values, statistics, norm.epsilon),
        }
        x
    }

    fn adam_step(
        param: FlexTensor,
        grad: FlexTensor,
        moment_1: FlexTensor,
        moment_2: FlexTensor,
        step: AdamStep,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let tensors = [&param, &grad, &moment_1, &moment_2];
        let shape = param.shape();
        if tensors
            .iter()
            .any(|t| t.dtype() != DType::F32 || t.shape() != shape)
        {
            return burns_adam_step::<Self>(param, grad, moment_1, moment_2, step);
        }
        let grad = grad.to_contiguous();
        let (mut param, mut moment_1, mut moment_2) =
            (owned(param), owned(moment_1), owned(moment_2));
        let n = param.layout().num_elements();
        adam::step(
            &mut param.storage_mut::<f32>()[..n],
            f32s(&grad),
            &mut moment_1.storage_mut::<f32>()[..n],
            &mut moment_2.storage_mut::<f32>()[..n],
            &step,
        );
        (param, moment_1, moment_2)
    }

    fn dropout_scales(like: FlexTensor, prob: f64) -> FlexTensor {
        if like.dtype() != DType::F32 {
            return burns_dropout_scales::<Self>(like, prob);
        }
        // One draw from Flex's generator seeds the mask, so that `Backend::seed` repeats it.
        let seed = Self::int_random(
            [1].into(),
            Distribution::Uniform(0.0, (1u64 << 53) as f64),
            &like.device(),
            IntDType::I64,
        );
        let seed = seed.as_slice::<i64>().expect("one seed")[0] as u64;
        let shape = like.shape();
        let scales = dropout::scales(shape.num_elements(), 1.0 - prob, seed);
        FlexTensor::from_data(TensorData::new(scales, shape))
    }
}

/// `apply` run over every element of an f32 tensor, a chunk at a time on every core: in place
/// where the tensor is not shared; otherwise on each chunk copied into a new tensor just before,
/// while it is in cache (training keeps the input for the gradient), rather than on a copy of the
/// whole tensor made first.
fn mapped(x: FlexTensor, apply: impl Fn(&mut [f32]) + Send + Sync) -> FlexTensor {
    if is_own(&x) {
        let mut x = x;
        let n = x.layout().num_elements();
        x.storage_mut::<f32>()[..n]
            .par_chunks_mut(CHUNK)
            .for_each(apply);
        return x;
    }
    let x = x.to_contiguous();
    let values = f32s(&x);
    let output = written_in_pieces(
        values.len(),
        CHUNK,
        || (),
        |(), i, chunk| {
            chunk.copy_from_slice(&values[i * CHUNK..][..chunk.len()]);
            apply(chunk);
        },
    );
    FlexTensor::from_data(TensorData::new(output, x.shape()))
}

/// `activation` applied to every value of a chunk.
fn activated(activation: Activation) -> impl Fn(&mut [f32]) + Send + Sync {
    move |chunk| chunk.iter_mut().for_each(|v| *v = activation.apply(*v))
}

/// The output gradient where `passes(x)` (`x` the operation's input or output), zero elsewhere,
/// on every core.
fn gradient_where(
    x: FlexTensor,
    output_grad: FlexTensor,
    passes: impl Fn(f32) -> bool + Sync,
) -> FlexTensor {
    let x = x.to_contiguous();
    let mut grad = owned(output_grad);
    let n = grad.layout().num_elements();
    grad.storage_mut::<f32>()[..n]
        .par_chunks_mut(CHUNK)
        .zip(f32s(&x).par_chunks(CHUNK))
        .for_each(|(grad, x)| {
            for (g, &x) in grad.iter_mut().zip(x) {
                // A select, not a branch around a store: the loop then runs on vectors.
                *g = if passes(x) { *g } else { 0.0 };
            }
        });
    grad
}

/// `norm`'s gamma, beta, mean and variance, contiguous, when they are f32 tensors of `channels`
/// values.
fn per_channel(norm: &RunningNorm<Flex>, channels: usize) -> Option<[FlexTensor; 4]> {
    let statistics = [&norm.gamma, &norm.beta, &norm.mean, &norm.variance];
    let ours = statistics
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.shape().num_elements() == channels);
    ours.then(|| statistics.map(|t| t.to_contiguous()))
}

/// `run` with an epilogue that normalizes by [`per_channel`]'s `statistics` and then applies
/// `activation`.
fn normalizing<R>(
    statistics: &[FlexTensor; 4],
    epsilon: f64,
    activation: Activation,
    run: impl FnOnce(&Epilogue) -> R,
) -> R {
    let std = Normalization::deviations(f32s(&statistics[3]), epsilon);
    run(&Epilogue {
        bias: None,
        normalization: Some(Normalization {
            gamma: f32s(&statistics[0]),
            beta: f32s(&statistics[1]),
            mean: f32s(&statistics[2]),
            std: &std,
        }),
        activation,
    })
}

/// `x` max-pooled over 2x2 windows, each pooled plane through `epilogue`.
fn pooled(x: FlexTensor, epilogue: &Epilogue) -> FlexTensor {
    let [batch, channels, h, w] = x.shape().dims();
    let x = x.to_contiguous();
    let output = max_pool::forward(f32s(&x), [h, w], channels, epilogue);
    FlexTensor::from_data(TensorData::new(output, [batch, channels, h / 2, w / 2]))
}

/// How BatchNorm's input lies: planes, or channels-last values with this many channels.
#[derive(Clone, Copy)]
enum Normalized {
    Planes(batch_norm::Planes),
    Last(usize),
}

impl Normalized {
    fn channels(self) -> usize {
        match self {
            Self::Planes(planes) => planes.channels,
            Self::Last(channels) => channels,
        }
    }
}

/// The layout of a BatchNorm input (the first tensor) in `order` when every tensor is f32.
fn normalized_layout(tensors: &[&FlexTensor], order: Channels) -> Option<Normalized> {
    match order {
        Channels::First => planes(tensors).map(Normalized::Planes),
        Channels::Last => {
            let dims = tensors[0].shape().to_vec();
            let ours = tensors.iter().all(|t| t.dtype() == DType::F32) && dims.len() >= 2;
            ours.then(|| Normalized::Last(dims[dims.len() - 1]))
        }
    }
}

/// The layout of a BatchNorm input (the first tensor) when every tensor is f32.
fn planes(tensors: &[&FlexTensor]) -> Option<batch_norm::Planes> {
    let dims = tensors[0].shape().to_vec();
    let ours = tensors.iter().all(|t| t.dtype() == DType::F32) && dims.len() >= 2;
    ours.then(|| batch_norm::Planes {
        batch: dims[0],
        channels: dims[1],
        size: dims[2..].iter().product(),
    })
}
