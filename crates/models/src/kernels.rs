//! Kernels of our own for operations Burn's CPU backend runs slowly, plugged in through Burn's
//! backend-extension mechanism. Other backends run Burn's own operations (the trait's default
//! bodies). Autodiff differentiates ReLU, ReLU6, the convolution, max-pooling and BatchNorm with
//! the gradients of the backend underneath.

mod autodiff;
mod batch_norm;
mod convolution;
mod depthwise;
mod dropout;
mod max_pool;

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, IntTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Backend, DType, Dispatch, Flex, IntDType, Scalar, TensorData, backend_extension,
    get_or_init_device_settings,
};
use burn::module::RunningState;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Dropout, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;

use convolution::Geometry;

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
    /// [`Kernels::convolution_weight_grad`].
    fn convolution(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv2d(x, weight, None, options)
    }

    /// The gradient of [`Kernels::convolution`] with respect to its input.
    fn convolution_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// The gradient of [`Kernels::convolution`] with respect to its weight.
    fn convolution_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv2d_weight_backward(x, weight, output_grad, options)
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

    /// BatchNorm with the batch's own statistics: Burn's `batch_norm_train` (the output, then
    /// each channel's mean and biased variance), differentiated with
    /// [`Kernels::normalize_batch_backward`].
    fn normalize_batch(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_batch_norm::<Self>(x, gamma, beta, epsilon)
    }

    /// The gradients of [`Kernels::normalize_batch`]'s input, gamma and beta, given the mean and
    /// variance it returned.
    fn normalize_batch_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_batch_norm_backward::<Self>(x, gamma, mean, variance, epsilon, output_grad)
    }

    /// Dropout's factors for a tensor shaped like `like`: 0 with probability `prob`, else
    /// `1 / (1 - prob)`, drawn from the backend's seeded generator.
    fn dropout_scales(like: FloatTensor<Self>, prob: f64) -> FloatTensor<Self> {
        burns_dropout_scales::<Self>(like, prob)
    }
}

/// Burn's dropout mask (its Bernoulli draw) times Burn's scale.
fn burns_dropout_scales<B: Backend>(like: FloatTensor<B>, prob: f64) -> FloatTensor<B> {
    let keep = 1.0 - prob;
    let mask = B::float_random(
        like.shape(),
        Distribution::Bernoulli(keep),
        &like.device(),
        like.dtype().into(),
    );
    B::float_mul_scalar(mask, Scalar::Float(1.0 / keep))
}

/// Burn's own BatchNorm with the batch's statistics: (output, mean, variance).
fn burns_batch_norm<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let result = B::batch_norm_train(x, gamma, beta, epsilon);
    (result.output, result.mean, result.variance)
}

/// Burn's own gradients of [`burns_batch_norm`]: (input, gamma, beta).
fn burns_batch_norm_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    output_grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let grads = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, output_grad);
    (grads.x_grad, grads.gamma_grad, grads.beta_grad)
}

/// Kernel, stride, padding and dilation of [`Kernels::max_pool2x2`].
const POOL2X2: [[usize; 2]; 4] = [[2, 2], [2, 2], [0, 0], [1, 1]];

/// Burn's own 2x2 max-pooling.
fn burns_max_pool2x2<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let [kernel, stride, padding, dilation] = POOL2X2;
    B::max_pool2d(x, kernel, stride, padding, dilation, false)
}

/// The input gradient of Burn's own 2x2 max-pooling.
fn burns_max_pool2x2_backward<B: Backend>(
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

/// The sizes of an f32 convolution on `Flex`.
fn flex_geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<Geometry> {
    let [batch, channels_in, h, w] = x.shape().dims();
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

/// Our kernel for one of a convolution's gradients: `dense` or `depthwise` by the geometry's
/// kind, none for other convolutions.
fn grad_kernel(
    geometry: Option<Geometry>,
    dense: GradKernel,
    depthwise: GradKernel,
) -> Option<(Geometry, GradKernel)> {
    let g = geometry?;
    if g.is_dense() {
        Some((g, dense))
    } else if g.is_depthwise() {
        Some((g, depthwise))
    } else {
        None
    }
}

/// A gradient of a convolution: (the weight or the input, the output gradient, the sizes).
type GradKernel = fn(&[f32], &[f32], &Geometry) -> Vec<f32>;

/// `x` with storage of its own holding exactly its elements, in order: `x` itself when it has
/// that already, a copy otherwise, so that a kernel can overwrite it.
fn owned(x: FlexTensor) -> FlexTensor {
    let layout = x.layout();
    if x.is_unique() && layout.is_contiguous() && layout.start_offset() == 0 {
        return x;
    }
    let shape = x.shape();
    FlexTensor::from_data(TensorData::new(f32s(&x.to_contiguous()).to_vec(), shape))
}

/// The gradient Burn's clamp passes through ReLU6: masked where `x < 0` and where `x > 6`.
fn burns_relu6_backward<B: Backend>(
    x: FloatTensor<B>,
    output_grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let dtype = get_or_init_device_settings::<B>(&x.device()).bool_dtype;
    let below = B::float_lower_elem(x.clone(), Scalar::Float(0.0), dtype);
    let above = B::float_greater_elem(x, Scalar::Float(6.0), dtype);
    let zero = Scalar::Float(0.0);
    B::float_mask_fill(B::float_mask_fill(output_grad, below, zero), above, zero)
}

/// The elements of a contiguous f32 tensor.
fn f32s(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice().expect("a contiguous f32 tensor")
}

/// ReLU6 out of Burn's own clamp.
fn burns_relu6<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_clamp(x, Scalar::Float(0.0), Scalar::Float(6.0))
}

/// Flex's clamp walks the elements on one thread, and its autodiff gradient is two masked fills;
/// its ReLU and ReLU gradient walk them on one thread too. Ours run on every core, in place where
/// the tensor is not shared.
impl Kernels for Flex {
    fn relu6(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return burns_relu6::<Self>(x);
        }
        map_in_place(x, |v| v.clamp(0.0, 6.0))
    }

    fn relu6_backward(x: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 || output_grad.dtype() != DType::F32 {
            return burns_relu6_backward::<Self>(x, output_grad);
        }
        // Not `contains`: a NaN input passes its gradient, as through Burn's clamp.
        #[allow(clippy::manual_range_contains)]
        gradient_where(x, output_grad, |x| !(x < 0.0 || x > 6.0))
    }

    fn rectify(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return <Self as ActivationOps<Self>>::relu(x);
        }
        map_in_place(x, |v| if passes_relu(v) { v } else { 0.0 })
    }

    fn rectify_backward(output: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        if output.dtype() != DType::F32 || output_grad.dtype() != DType::F32 {
            return <Self as ActivationOps<Self>>::relu_backward(output, output_grad);
        }
        gradient_where(output, output_grad, passes_relu)
    }

    fn convolution(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        // Flex multiplies a pointwise convolution's input as it lies, with no columns to build,
        // and runs grouped (depthwise) ones with its SIMD kernels.
        let Some(geometry) =
            flex_geometry(&x, &weight, &options).filter(|g| g.is_dense() && !g.is_pointwise())
        else {
            return <Self as ModuleOps<Self>>::conv2d(x, weight, None, options);
        };
        let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
        let output = convolution::forward(f32s(&x), f32s(&weight), &geometry);
        let [oh, ow] = geometry.output;
        let shape = [geometry.batch, geometry.channels_out, oh, ow];
        FlexTensor::from_data(TensorData::new(output, shape))
    }

    fn convolution_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let geometry =
            flex_geometry(&x, &weight, &options).filter(|_| output_grad.dtype() == DType::F32);
        let Some((geometry, kernel)) =
            grad_kernel(geometry, convolution::input_grad, depthwise::input_grad)
        else {
            return <Self as ModuleOps<Self>>::conv2d_x_backward(x, weight, output_grad, options);
        };
        let (weight, output_grad) = (weight.to_contiguous(), output_grad.to_contiguous());
        let grad = kernel(f32s(&weight), f32s(&output_grad), &geometry);
        FlexTensor::from_data(TensorData::new(grad, x.shape()))
    }

    fn convolution_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let geometry =
            flex_geometry(&x, &weight, &options).filter(|_| output_grad.dtype() == DType::F32);
        let Some((geometry, kernel)) =
            grad_kernel(geometry, convolution::weight_grad, depthwise::weight_grad)
        else {
            return <Self as ModuleOps<Self>>::conv2d_weight_backward(
                x,
                weight,
                output_grad,
                options,
            );
        };
        let (x, output_grad) = (x.to_contiguous(), output_grad.to_contiguous());
        let grad = kernel(f32s(&x), f32s(&output_grad), &geometry);
        FlexTensor::from_data(TensorData::new(grad, weight.shape()))
    }

    fn max_pool2x2(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return burns_max_pool2x2::<Self>(x);
        }
        let [batch, channels, h, w] = x.shape().dims();
        let x = x.to_contiguous();
        let output = max_pool::forward(f32s(&x), [h, w]);
        FlexTensor::from_data(TensorData::new(output, [batch, channels, h / 2, w / 2]))
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
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let Some(planes) = planes(&[&x, &gamma, &beta]) else {
            return burns_batch_norm::<Self>(x, gamma, beta, epsilon);
        };
        let (x, gamma, beta) = (
            x.to_contiguous(),
            gamma.to_contiguous(),
            beta.to_contiguous(),
        );
        let (output, mean, variance) =
            batch_norm::forward(f32s(&x), f32s(&gamma), f32s(&beta), epsilon, planes);
        let per_channel =
            |values| FlexTensor::from_data(TensorData::new(values, [planes.channels]));
        (
            FlexTensor::from_data(TensorData::new(output, x.shape())),
            per_channel(mean),
            per_channel(variance),
        )
    }

    fn normalize_batch_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        output_grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let Some(planes) = planes(&[&x, &gamma, &mean, &variance, &output_grad]) else {
            return burns_batch_norm_backward::<Self>(
                x,
                gamma,
                mean,
                variance,
                epsilon,
                output_grad,
            );
        };
        let [x, gamma, mean, variance] = [x, gamma, mean, variance].map(|t| t.to_contiguous());
        let mut grad = owned(output_grad);
        let n = grad.layout().num_elements();
        let (gamma_grad, beta_grad) = batch_norm::backward(
            f32s(&x),
            f32s(&gamma),
            f32s(&mean),
            f32s(&variance),
            epsilon,
            &mut grad.storage_mut::<f32>()[..n],
            planes,
        );
        let per_channel =
            |values| FlexTensor::from_data(TensorData::new(values, [planes.channels]));
        (grad, per_channel(gamma_grad), per_channel(beta_grad))
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

/// Where ReLU passes its input and its gradient, as Burn's does: above zero, and NaN.
fn passes_relu(x: f32) -> bool {
    x.is_nan() || x > 0.0
}

/// `f` of every element of an f32 tensor, on every core.
fn map_in_place(x: FlexTensor, f: impl Fn(f32) -> f32 + Sync) -> FlexTensor {
    let mut x = owned(x);
    let n = x.layout().num_elements();
    x.storage_mut::<f32>()[..n]
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| {
            for v in chunk {
                *v = f(*v);
            }
        });
    x
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

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Kernels for burn::backend::Cube {}

#[cfg(feature = "ndarray")]
impl Kernels for burn::backend::NdArray {}

/// ReLU, through [`Kernels::rectify`].
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::rectify(x.into_dispatch()))
}

/// ReLU6 (MobileNet's and EfficientNet-Lite's activation), through [`Kernels::relu6`].
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::relu6(x.into_dispatch()))
}

/// `conv.forward(input)` through [`Kernels::convolution`], the bias added afterwards as Burn's
/// own differentiable addition.
pub fn conv2d(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let weight = conv.weight.val();
    let [_, _, height, width] = input.dims();
    let options = ConvOptions::new_with_padding(
        conv.stride,
        padding(conv, [height, width]),
        conv.dilation,
        conv.groups,
    );
    let output: Tensor<4> = Tensor::from_dispatch(<Dispatch as Kernels>::convolution(
        input.into_dispatch(),
        weight.into_dispatch(),
        options,
    ));
    match &conv.bias {
        Some(bias) => {
            let channels = bias.dims()[0];
            output + bias.val().reshape([1, channels, 1, 1])
        }
        None => output,
    }
}

/// `bn.forward(input)`, training through [`Kernels::normalize_batch`]: on an autodiff device with
/// the layer training, normalized with the batch's statistics, which move the running ones by the
/// layer's momentum, as Burn's layer does.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, input: Tensor<D>) -> Tensor<D> {
    if !(input.device().is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(input);
    }
    let (output, mean, variance) = <Dispatch as Kernels>::normalize_batch(
        input.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
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
    let [kernel, stride, _, dilation] = POOL2X2;
    let unpadded = matches!(
        pool.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    if pool.kernel_size == kernel
        && pool.stride == stride
        && pool.dilation == dilation
        && unpadded
        && !pool.ceil_mode
    {
        Tensor::from_dispatch(<Dispatch as Kernels>::max_pool2x2(input.into_dispatch()))
    } else {
        pool.forward(input)
    }
}
