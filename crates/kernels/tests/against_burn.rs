//! Our kernels against Burn's own operations: the same values, forward and backward.

use burn::module::{Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::{Distribution, Gradients, activation};
use kernels::{
    Activation, activate, batch_norm, batch_norm_activated, batch_norm_activated_last, conv2d,
    conv2d_activated, conv2d_activated_last, conv2d_last, conv2d_normalized, gelu, max_pool2d,
    max_pool2d_normalized, relu, relu6,
};

/// Random values around ReLU6's two bends, with the special values spread among them.
fn values(shape: [usize; 3], device: &Device) -> Tensor<3> {
    let random = Tensor::<3>::random(shape, Distribution::Uniform(-3.0, 9.0), device);
    let mut data = random.into_data().try_to_vec::<f32>().unwrap();
    let special = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        6.0,
        6.0001,
        -1e-30,
    ];
    for (i, v) in special.iter().enumerate() {
        let at = (i * 7919) % data.len();
        data[at] = *v;
    }
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// A tensor with storage of its own, which the kernel may overwrite.
fn copy(x: &Tensor<3>) -> Tensor<3> {
    Tensor::from_data(x.clone().into_data(), &x.device())
}

fn bits<const D: usize>(tensor: Tensor<D>) -> Vec<u32> {
    let values = tensor.into_data().try_to_vec::<f32>().unwrap();
    values.iter().map(|v| v.to_bits()).collect()
}

/// An elementwise activation of ours against Burn's: the same bits on random values with the
/// special ones among them, on tensors it may overwrite, on views it may not, and on a shared
/// input, which it leaves alone.
fn same_bits_as_burns(ours: fn(Tensor<3>) -> Tensor<3>, burns: fn(Tensor<3>) -> Tensor<3>) {
    let device = Device::flex();
    device.seed(3);
    // Odd sizes, one below a parallel chunk and several above it.
    for shape in [[1, 1, 9], [3, 17, 31], [2, 300, 333], [5, 64, 1031]] {
        let x = values(shape, &device);
        assert_eq!(bits(ours(copy(&x))), bits(burns(x.clone())), "{shape:?}");
        let transposed = copy(&x).swap_dims(0, 2);
        assert_eq!(
            bits(ours(transposed.clone())),
            bits(burns(transposed)),
            "{shape:?} transposed"
        );
        let before = bits(x.clone());
        let kept = x.clone();
        assert_eq!(bits(ours(x)), bits(burns(kept.clone())), "{shape:?} shared");
        assert_eq!(
            bits(kept),
            before,
            "{shape:?}: a shared input is left alone"
        );
    }
}

/// The input gradient of an activation of ours against Burn's, bit for bit.
fn same_gradient_bits_as_burns(
    ours: fn(Tensor<3>) -> Tensor<3>,
    burns: fn(Tensor<3>) -> Tensor<3>,
) {
    let device = Device::flex().autodiff();
    device.seed(4);
    let x = values([4, 33, 65], &device).require_grad();
    let weights = Tensor::<3>::random([4, 33, 65], Distribution::Normal(0.0, 1.0), &device);
    let ours = ours(x.clone()).mul(weights.clone()).sum().backward();
    let burns = burns(x.clone()).mul(weights).sum().backward();
    assert_eq!(bits(x.grad(&ours).unwrap()), bits(x.grad(&burns).unwrap()));
}

#[test]
fn relu6_is_burns_clamp_bit_for_bit() {
    same_bits_as_burns(relu6, |x| x.clamp(0.0, 6.0));
    same_gradient_bits_as_burns(relu6, |x| x.clamp(0.0, 6.0));
}

#[test]
fn gelu_is_burns_within_a_millionth() {
    let device = Device::flex().autodiff();
    device.seed(5);
    for shape in [[1, 1, 9], [3, 17, 31], [5, 64, 1031]] {
        let x =
            Tensor::<3>::random(shape, Distribution::Uniform(-8.0, 8.0), &device).require_grad();
        let weights = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let ours = gelu(x.clone());
        let burns = activation::gelu(x.clone());
        let forward = relative_difference(ours.clone().detach(), burns.clone().detach());
        assert!(forward < 1e-6, "{shape:?}: {forward}");
        let ours = ours.mul(weights.clone()).sum().backward();
        let burns = burns.mul(weights).sum().backward();
        let (ours, burns) = (x.grad(&ours).unwrap(), x.grad(&burns).unwrap());
        let backward = relative_difference(ours, burns);
        assert!(backward < 1e-6, "{shape:?}: {backward}");
    }
    let shared = values([2, 300, 333], &Device::flex());
    let before = bits(shared.clone());
    let _ = gelu(shared.clone());
    assert_eq!(bits(shared), before, "a shared input is left alone");
}

#[test]
fn relu_is_burns_bit_for_bit() {
    same_bits_as_burns(relu, activation::relu);
    same_gradient_bits_as_burns(relu, activation::relu);
}

/// The largest difference between two tensors, relative to the largest magnitude in `reference`.
fn relative_difference<const D: usize>(ours: Tensor<D>, reference: Tensor<D>) -> f32 {
    let scale: f32 = reference.clone().abs().max().into_scalar();
    let difference: f32 = (ours - reference).abs().max().into_scalar();
    difference / scale.max(f32::MIN_POSITIVE)
}

/// Fails unless `difference` (relative) is below 1e-5.
fn close(what: &str, difference: f32, case: &str) {
    assert!(difference < 1e-5, "{what} differs by {difference}: {case}");
}

/// Backward passes of one random weighting of `ours` and of `reference`, two computations of the
/// same function of `x`, after checking that their values and the gradients of `x` agree.
fn same_output_and_input_gradient(
    x: &Tensor<4>,
    ours: Tensor<4>,
    reference: Tensor<4>,
    case: &str,
) -> (Gradients, Gradients) {
    let weights = Tensor::random(ours.dims(), Distribution::Normal(0.0, 1.0), &x.device());
    let ours_grads = ours.clone().mul(weights.clone()).sum().backward();
    let reference_grads = reference.clone().mul(weights).sum().backward();
    close("output", relative_difference(ours, reference), case);
    close(
        "input gradient",
        relative_difference(
            x.grad(&ours_grads).unwrap(),
            x.grad(&reference_grads).unwrap(),
        ),
        case,
    );
    (ours_grads, reference_grads)
}

/// One convolution to compare: `[batch, channels in, channels out]`, input side, and the layer.
struct Case {
    sizes: [usize; 3],
    input: [usize; 2],
    config: Conv2dConfig,
}

fn case(sizes: [usize; 3], input: [usize; 2], kernel: [usize; 2]) -> Case {
    Case {
        sizes,
        input,
        config: Conv2dConfig::new([sizes[1], sizes[2]], kernel),
    }
}

/// `ours(conv, x)` against Burn's layer on random values: the output and the gradients of the
/// input, the weight and the bias.
fn matches_burns_layer(
    Case {
        sizes: [batch, channels_in, _],
        input: [h, w],
        config,
    }: Case,
    device: &Device,
    ours: impl Fn(&Conv2d, Tensor<4>) -> Tensor<4>,
) {
    let conv = config.init(device);
    let x = Tensor::<4>::random(
        [batch, channels_in, h, w],
        Distribution::Normal(0.0, 1.0),
        device,
    )
    .require_grad();
    let reference = conv.forward(x.clone());
    let ours = ours(&conv, x.clone());
    assert_eq!(ours.dims(), reference.dims(), "{config:?}");
    let case = format!("{config:?}");
    let (ours_grads, reference_grads) = same_output_and_input_gradient(&x, ours, reference, &case);
    let weight = conv.weight.val();
    let difference = relative_difference(
        weight.grad(&ours_grads).unwrap(),
        weight.grad(&reference_grads).unwrap(),
    );
    close("weight gradient", difference, &case);
    if let Some(bias) = &conv.bias {
        let bias = bias.val();
        let difference = relative_difference(
            bias.grad(&ours_grads).unwrap(),
            bias.grad(&reference_grads).unwrap(),
        );
        close("bias gradient", difference, &case);
    }
}

#[test]
fn convolution_matches_burns_values_and_gradients() {
    let device = Device::flex().autodiff();
    device.seed(5);
    let cases = [
        case([2, 3, 8], [9, 11], [3, 3]).with(|c| c.with_padding(PaddingConfig2d::Same)),
        case([3, 5, 4], [10, 7], [3, 3]).with(|c| {
            c.with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        }),
        // An even kernel: "same" pads one side more than the other.
        case([1, 4, 6], [8, 8], [2, 2]).with(|c| c.with_padding(PaddingConfig2d::Same)),
        case([2, 2, 3], [12, 9], [3, 2]).with(|c| {
            c.with_stride([1, 2])
                .with_dilation([2, 1])
                .with_padding(PaddingConfig2d::Explicit(2, 0, 1, 3))
                .with_bias(false)
        }),
        // Small planes: samples are grouped, more than one group.
        case([70, 6, 5], [4, 4], [3, 3])
            .with(|c| c.with_padding(PaddingConfig2d::Same).with_bias(false)),
        // Large planes: one sample per matrix product, spread over the threads.
        case([5, 16, 12], [32, 32], [3, 3]),
        // Stride 1 without unfolding (math::direct): output channels not a whole register
        // tile, taps not a whole tile of the weight gradient, more input channels than one pass
        // over the tiles takes with a 5x5 kernel, uneven padding, and padding past the kernel's
        // reach (output rows that read only padding).
        case([3, 5, 20], [9, 11], [3, 3]).with(|c| c.with_padding(PaddingConfig2d::Same)),
        case([2, 24, 16], [12, 14], [5, 5])
            .with(|c| c.with_padding(PaddingConfig2d::Same).with_bias(false)),
        case([2, 7, 17], [11, 12], [3, 4])
            .with(|c| c.with_padding(PaddingConfig2d::Explicit(2, 1, 0, 3))),
        case([2, 4, 16], [10, 10], [3, 3])
            .with(|c| c.with_padding(PaddingConfig2d::Explicit(1, 0, 4, 2))),
        // Small planes in narrow tiles (one vector of positions): 8x8 and 16x8.
        case([3, 16, 16], [8, 8], [3, 3])
            .with(|c| c.with_padding(PaddingConfig2d::Same).with_bias(false)),
        case([2, 16, 32], [16, 8], [3, 3]).with(|c| c.with_padding(PaddingConfig2d::Same)),
        // Pointwise (EfficientNet's expansions and projections): one sample per product on
        // large planes, samples grouped on small ones.
        case([3, 6, 5], [17, 16], [1, 1]),
        case([7, 6, 5], [5, 6], [1, 1]).with(|c| c.with_bias(false)),
        // Pointwise on 5x5 planes: ten samples a product, the last group short.
        case([23, 12, 20], [5, 5], [1, 1]),
        // Groups: Burn's convolution and gradients.
        case([2, 4, 6], [7, 7], [3, 3]).with(|c| c.with_groups(2)),
        // Depthwise, as in EfficientNet: Burn's convolution behind our node, our gradients.
        case([3, 8, 8], [9, 10], [3, 3])
            .with(|c| c.with_groups(8).with_padding(PaddingConfig2d::Same)),
        case([2, 6, 6], [12, 11], [5, 5]).with(|c| {
            c.with_groups(6)
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
        }),
        // Stride 2 on an even side: "same" pads only after.
        case([3, 4, 4], [16, 16], [3, 3]).with(|c| {
            c.with_groups(4)
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
        }),
        // Stride 2 over rows of more than sixteen outputs; an input column no output reads.
        case([2, 4, 4], [40, 37], [3, 3]).with(|c| {
            c.with_groups(4)
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
        }),
        case([1, 3, 3], [33, 33], [2, 2]).with(|c| c.with_groups(3).with_stride([2, 2])),
        // Rows longer than the sixteen running sums.
        case([2, 24, 24], [21, 37], [5, 5])
            .with(|c| c.with_groups(24).with_padding(PaddingConfig2d::Same)),
        // Planes narrower than sixteen outputs with many channels: the channels-last layout, its
        // channels not a whole number of groups, stride 2, dilation and uneven padding.
        case([3, 48, 48], [10, 10], [5, 5])
            .with(|c| c.with_groups(48).with_padding(PaddingConfig2d::Same)),
        case([2, 70, 70], [10, 9], [5, 5]).with(|c| {
            c.with_groups(70)
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
        }),
        case([2, 33, 33], [11, 19], [3, 2]).with(|c| {
            c.with_groups(33)
                .with_stride([2, 3])
                .with_dilation([2, 1])
                .with_padding(PaddingConfig2d::Explicit(2, 0, 1, 3))
        }),
        case([2, 5, 5], [6, 7], [3, 3]).with(|c| {
            c.with_groups(5)
                .with_dilation([1, 2])
                .with_padding(PaddingConfig2d::Explicit(0, 2, 1, 0))
                .with_bias(false)
        }),
    ];
    for case in cases {
        matches_burns_layer(case, &device, conv2d);
    }
}

#[test]
fn depthwise_convolution_is_burns_bit_for_bit() {
    let device = Device::flex();
    device.seed(11);
    let depthwise = |channels: usize, kernel: usize, stride: usize| {
        Conv2dConfig::new([channels, channels], [kernel, kernel])
            .with_groups(channels)
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Same)
    };
    let cases = [
        // EfficientNet-Lite0's shapes, batch 2: the large stride-2 planes at its start, planes
        // over Burn's 8,192-element switch of loop order, and the 7x7 ones at its end.
        ([2, 8], [112, 112], depthwise(8, 3, 2)),
        ([2, 6], [97, 95], depthwise(6, 3, 1)),
        ([2, 5], [28, 28], depthwise(5, 5, 2)),
        ([3, 40], [7, 7], depthwise(40, 5, 1)),
        ([2, 4], [13, 29], depthwise(4, 3, 1).with_bias(false)),
        // Odd sides, rows shorter than sixteen outputs, dilation, explicit uneven padding, and
        // an input column that no output reads.
        ([1, 3], [5, 3], depthwise(3, 3, 2)),
        // Planes narrower than sixteen outputs with many channels, which go channels-last.
        ([3, 100], [10, 10], depthwise(100, 5, 1)),
        ([2, 100], [10, 10], depthwise(100, 5, 2)),
        ([2, 130], [5, 5], depthwise(130, 3, 1)),
        (
            [2, 33],
            [11, 19],
            Conv2dConfig::new([33, 33], [3, 2])
                .with_groups(33)
                .with_stride([2, 3])
                .with_dilation([2, 1])
                .with_padding(PaddingConfig2d::Explicit(2, 0, 1, 3)),
        ),
        (
            [1, 2],
            [33, 33],
            Conv2dConfig::new([2, 2], [2, 2])
                .with_groups(2)
                .with_stride([2, 2]),
        ),
        (
            [2, 5],
            [11, 19],
            Conv2dConfig::new([5, 5], [3, 2])
                .with_groups(5)
                .with_stride([2, 3])
                .with_dilation([2, 1])
                .with_padding(PaddingConfig2d::Explicit(2, 0, 1, 3)),
        ),
    ];
    for ([batch, channels], [h, w], config) in cases {
        let conv = config.init(&device);
        let x = Tensor::<4>::random(
            [batch, channels, h, w],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let case = format!("{config:?} on {h}x{w}");
        assert_eq!(
            bits(conv2d(&conv, x.clone())),
            bits(conv.forward(x)),
            "{case}"
        );
    }
}

/// BatchNorm over `channels` with random scales (negative ones too), shifts and statistics.
fn trained_batch_norm(channels: usize, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(channels).init(device);
    let random =
        |low, high| Tensor::<1>::random([channels], Distribution::Uniform(low, high), device);
    bn.gamma = Param::from_tensor(random(-2.0, 2.0));
    bn.beta = Param::from_tensor(random(-1.0, 1.0));
    bn.running_mean = RunningState::new(random(-1.0, 1.0));
    bn.running_var = RunningState::new(random(0.0, 3.0));
    bn
}

#[test]
fn batch_norm_in_inference_is_burns_bit_for_bit() {
    let device = Device::flex();
    device.seed(13);
    for shape in [[3, 5, 7, 9], [1, 4, 40, 40], [8, 6, 1, 1]] {
        let bn = trained_batch_norm(shape[1], &device);
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), &device);
        assert_eq!(
            bits(batch_norm(&bn, x.clone())),
            bits(bn.forward(x)),
            "{shape:?}"
        );
    }
}

#[test]
fn activated_convolution_is_the_convolution_then_bias_and_activation() {
    let device = Device::flex();
    device.seed(12);
    let cases = [
        // Dense: samples grouped into one product, and one sample per product.
        case([5, 3, 8], [9, 11], [3, 3]).with(|c| c.with_padding(PaddingConfig2d::Same)),
        case([2, 16, 12], [32, 32], [3, 3]),
        // Pointwise: fewer samples than threads (each product split among them), and more.
        case([1, 24, 40], [14, 14], [1, 1]),
        case([9, 24, 40], [7, 7], [1, 1]).with(|c| c.with_bias(false)),
        // Depthwise: planes, and channels-last.
        case([2, 8, 8], [20, 20], [3, 3])
            .with(|c| c.with_groups(8).with_padding(PaddingConfig2d::Same)),
        case([3, 96, 96], [10, 10], [5, 5]).with(|c| {
            c.with_groups(96)
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
        }),
    ];
    for Case {
        sizes: [batch, channels_in, _],
        input: [h, w],
        config,
    } in cases
    {
        let conv = config.init(&device);
        // Wide enough that ReLU6 clips at both ends.
        let x = Tensor::<4>::random(
            [batch, channels_in, h, w],
            Distribution::Normal(0.0, 4.0),
            &device,
        );
        let pointwise = config.kernel_size == [1, 1];
        for activation in [
            Activation::Identity,
            Activation::Relu,
            Activation::Relu6,
            Activation::Gelu,
        ] {
            let fused = conv2d_activated(&conv, x.clone(), activation);
            let apart = activate(conv2d(&conv, x.clone()), activation);
            let case = format!("{config:?}, {activation:?}");
            if pointwise {
                // Apart, Burn's own pointwise convolution, with another split of the product.
                close("output", relative_difference(fused, apart), &case);
            } else {
                assert_eq!(bits(fused), bits(apart), "{case}");
            }
        }
    }
}

#[test]
fn normalized_convolution_and_pooling_are_the_layers_one_after_another() {
    let device = Device::flex();
    device.seed(14);
    let cases = [
        // Dense on im2col (a 6x6 output of a 5x5 kernel) and without it (3x3, 16x16 planes).
        case([3, 5, 8], [10, 10], [5, 5]).with(|c| c.with_bias(false)),
        case([2, 16, 24], [16, 16], [3, 3])
            .with(|c| c.with_padding(PaddingConfig2d::Same).with_bias(false)),
        // Pointwise and depthwise, and a convolution with a bias (the layers one by one).
        case([2, 24, 40], [9, 9], [1, 1]).with(|c| c.with_bias(false)),
        case([2, 8, 8], [12, 12], [3, 3]).with(|c| {
            c.with_groups(8)
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
        }),
        case([2, 4, 6], [7, 7], [3, 3]),
    ];
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let activations = [
        Activation::Identity,
        Activation::Relu,
        Activation::Relu6,
        Activation::Gelu,
    ];
    for Case {
        sizes: [batch, channels_in, channels_out],
        input: [h, w],
        config,
    } in cases
    {
        let conv = config.init(&device);
        let bn = trained_batch_norm(channels_out, &device);
        let x = Tensor::<4>::random(
            [batch, channels_in, h, w],
            Distribution::Normal(0.0, 4.0),
            &device,
        );
        for activation in activations {
            let fused = conv2d_normalized(&conv, &bn, x.clone(), activation);
            let apart = activate(batch_norm(&bn, conv2d(&conv, x.clone())), activation);
            let case = format!("{config:?}, {activation:?}");
            if config.kernel_size == [1, 1] {
                // Apart, Burn's own pointwise convolution, with another split of the product.
                close("output", relative_difference(fused, apart), &case);
            } else {
                assert_eq!(bits(fused), bits(apart), "{case}");
            }
        }
    }
    // Odd sides leave a row and a column out.
    for shape in [[2, 3, 8, 8], [3, 5, 7, 9], [4, 16, 33, 31]] {
        let bn = trained_batch_norm(shape[1], &device);
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), &device);
        for activation in activations {
            let fused = max_pool2d_normalized(&pool, &bn, x.clone(), activation);
            let apart = activate(batch_norm(&bn, max_pool2d(&pool, x.clone())), activation);
            assert_eq!(bits(fused), bits(apart), "{shape:?}, {activation:?}");
        }
    }
}

impl Case {
    fn with(self, change: impl FnOnce(Conv2dConfig) -> Conv2dConfig) -> Self {
        Self {
            config: change(self.config),
            ..self
        }
    }
}

#[test]
fn max_pool_matches_burns_values_and_gradients_bit_for_bit() {
    let device = Device::flex().autodiff();
    device.seed(6);
    let pool = MaxPool2dConfig::new([2, 2]).init();
    // Odd sides leave a row and a column out; small integers make ties, where the first of the
    // window must win, and a planted NaN must win over everything.
    for shape in [
        [2, 3, 8, 8],
        [3, 5, 7, 9],
        [1, 1, 2, 2],
        [4, 16, 33, 31],
        [2, 4, 6, 32],
    ] {
        let random = Tensor::<4>::random(shape, Distribution::Uniform(-2.0, 2.0), &device);
        let mut data = random.round().into_data().try_to_vec::<f32>().unwrap();
        let at = data.len() / 3;
        data[at] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(data, shape), &device).require_grad();
        let ours = max_pool2d(&pool, x.clone());
        let burns = pool.forward(x.clone());
        assert_eq!(bits(ours.clone()), bits(burns.clone()), "{shape:?}");
        let weights = Tensor::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
        let ours = ours.mul(weights.clone()).sum().backward();
        let burns = burns.mul(weights).sum().backward();
        assert_eq!(
            bits(x.grad(&ours).unwrap()),
            bits(x.grad(&burns).unwrap()),
            "{shape:?} gradient"
        );
    }
}

/// Two BatchNorm layers (momentum 0.3) with the same scale and shift: one for each way compared.
fn twin_batch_norms(gamma: &Tensor<1>, beta: &Tensor<1>) -> (BatchNorm, BatchNorm) {
    let device = gamma.device();
    let layer = || {
        let mut bn = BatchNormConfig::new(gamma.dims()[0])
            .with_momentum(0.3)
            .init(&device);
        bn.gamma = Param::from_tensor(Tensor::from_data(gamma.to_data(), &device));
        bn.beta = Param::from_tensor(Tensor::from_data(beta.to_data(), &device));
        bn
    };
    (layer(), layer())
}

#[test]
fn batch_norm_matches_burns_values_gradients_and_running_statistics() {
    let device = Device::flex().autodiff();
    device.seed(7);
    // Planes shorter and longer than the sixteen running sums, one sample, a channel axis last
    // in memory (transposed), and a BatchNorm over `[batch, channels]`.
    let shapes: [&[usize]; 5] = [
        &[3, 5, 7, 9],
        &[1, 4, 40, 40],
        &[8, 6, 2, 3],
        &[6, 2],
        &[2, 3, 5],
    ];
    for shape in shapes {
        let channels = shape[1];
        let gamma = Tensor::<1>::random([channels], Distribution::Uniform(0.5, 2.0), &device);
        let beta = Tensor::<1>::random([channels], Distribution::Normal(0.0, 1.0), &device);
        let (bn, reference_bn) = twin_batch_norms(&gamma, &beta);
        let x: Tensor<4> = match *shape {
            [a, b, c, d] => Tensor::random([a, b, c, d], Distribution::Normal(3.0, 2.0), &device),
            [a, b] => Tensor::random([a, b, 1, 1], Distribution::Normal(3.0, 2.0), &device),
            [a, b, c] => Tensor::random([a, c, b, 1], Distribution::Normal(3.0, 2.0), &device)
                .swap_dims(1, 2),
            _ => unreachable!(),
        };
        let x = x.require_grad();
        let ours = batch_norm(&bn, x.clone());
        let reference = reference_bn.forward(x.clone());
        let case = format!("{shape:?}");
        let (ours_grads, reference_grads) =
            same_output_and_input_gradient(&x, ours, reference, &case);
        let within = |what: &str, difference: f32| close(what, difference, &case);
        for (what, ours, reference) in [
            ("gamma gradient", bn.gamma.val(), reference_bn.gamma.val()),
            ("beta gradient", bn.beta.val(), reference_bn.beta.val()),
        ] {
            within(
                what,
                relative_difference(
                    ours.grad(&ours_grads).unwrap(),
                    reference.grad(&reference_grads).unwrap(),
                ),
            );
        }
        within(
            "running mean",
            relative_difference(
                bn.running_mean.value_sync(),
                reference_bn.running_mean.value_sync(),
            ),
        );
        within(
            "running variance",
            relative_difference(
                bn.running_var.value_sync(),
                reference_bn.running_var.value_sync(),
            ),
        );
    }
}

/// BatchNorm with its activation in one training step gives the bits of BatchNorm and then the
/// activation as two (whose values and gradients the tests above hold against Burn's): output,
/// every gradient and the running statistics, across ReLU6's bends, with NaN and infinities in
/// the input.
#[test]
fn batch_norm_activated_is_batch_norm_then_the_activation_bit_for_bit() {
    let device = Device::flex().autodiff();
    device.seed(11);
    for activation in [
        Activation::Identity,
        Activation::Relu,
        Activation::Relu6,
        Activation::Gelu,
    ] {
        for shape in [[3, 5, 7, 9], [8, 6, 2, 3], [2, 4, 10, 10], [1, 3, 1, 1]] {
            let channels = shape[1];
            let gamma = Tensor::<1>::random([channels], Distribution::Uniform(1.0, 4.0), &device);
            let beta = Tensor::<1>::random([channels], Distribution::Normal(3.0, 1.0), &device);
            let (fused_bn, apart_bn) = twin_batch_norms(&gamma, &beta);
            let x = Tensor::<4>::random(shape, Distribution::Normal(1.0, 2.0), &device);
            let x = if activation == Activation::Relu6 && shape[0] > 1 {
                let mut data = x.into_data().try_to_vec::<f32>().unwrap();
                data[5] = f32::NAN;
                data[9] = f32::INFINITY;
                Tensor::from_data(TensorData::new(data, shape), &device)
            } else {
                x
            };
            let x = x.require_grad();
            let weights = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let fused = batch_norm_activated(&fused_bn, x.clone(), activation);
            let apart = activate(batch_norm(&apart_bn, x.clone()), activation);
            let case = format!("{activation:?} {shape:?}");
            assert_eq!(bits(fused.clone()), bits(apart.clone()), "output, {case}");
            let fused_grads = fused.mul(weights.clone()).sum().backward();
            let apart_grads = apart.mul(weights).sum().backward();
            let gradient = |tensor: Tensor<1>, grads: &Gradients| bits(tensor.grad(grads).unwrap());
            assert_eq!(
                bits(x.grad(&fused_grads).unwrap()),
                bits(x.grad(&apart_grads).unwrap()),
                "input gradient, {case}"
            );
            for (what, fused, apart) in [
                ("gamma", fused_bn.gamma.val(), apart_bn.gamma.val()),
                ("beta", fused_bn.beta.val(), apart_bn.beta.val()),
            ] {
                assert_eq!(
                    gradient(fused, &fused_grads),
                    gradient(apart, &apart_grads),
                    "{what} gradient, {case}"
                );
            }
            for (what, fused, apart) in [
                ("mean", &fused_bn.running_mean, &apart_bn.running_mean),
                ("variance", &fused_bn.running_var, &apart_bn.running_var),
            ] {
                assert_eq!(
                    bits(fused.value_sync()),
                    bits(apart.value_sync()),
                    "running {what}, {case}"
                );
            }
        }
    }
}

#[test]
fn batch_norm_outside_training_is_burns_inference() {
    let device = Device::flex();
    let bn = BatchNormConfig::new(3).init(&device);
    let x = Tensor::<4>::random([2, 3, 4, 4], Distribution::Normal(1.0, 1.0), &device);
    assert_eq!(bits(batch_norm(&bn, x.clone())), bits(bn.forward(x)));
    assert_eq!(
        bits(bn.running_mean.value_sync()),
        bits(Tensor::<1>::zeros([3], &device))
    );
}

/// `x` (`[batch, channels, h, w]`) channels-last, and back.
fn channels_last(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 2, 3, 1])
}

fn channels_first(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 3, 1, 2])
}

/// The convolutions on channels-last tensors (our pointwise and depthwise kernels, Burn's for the
/// rest) against Burn's layer on the same values channels-first: outputs and every gradient.
#[test]
fn channels_last_convolutions_match_burns_values_and_gradients() {
    let device = Device::flex().autodiff();
    device.seed(17);
    let cases = [
        // Pointwise as in EfficientNet-Lite0's last blocks at 160, and with positions over
        // several blocks of rows, the last one short.
        case([3, 80, 480], [10, 10], [1, 1]).with(|c| c.with_bias(false)),
        case([41, 24, 20], [5, 5], [1, 1]),
        case([2, 7, 3], [1, 1], [1, 1]),
        // Depthwise: channels not a whole number of groups, stride 2 with "same" padding on
        // even and odd sides, dilation and uneven padding, a plane wider than sixteen outputs.
        case([3, 48, 48], [10, 10], [5, 5])
            .with(|c| c.with_groups(48).with_padding(PaddingConfig2d::Same)),
        case([2, 70, 70], [10, 9], [5, 5]).with(|c| {
            c.with_groups(70)
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
        }),
        case([2, 130, 130], [5, 5], [3, 3])
            .with(|c| c.with_groups(130).with_padding(PaddingConfig2d::Same)),
        case([2, 33, 33], [11, 19], [3, 2]).with(|c| {
            c.with_groups(33)
                .with_stride([2, 3])
                .with_dilation([2, 1])
                .with_padding(PaddingConfig2d::Explicit(2, 0, 1, 3))
        }),
        case([2, 4, 4], [40, 37], [3, 3]).with(|c| {
            c.with_groups(4)
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
        }),
        // Burn's operations behind our node: a dense 3x3, a grouped one, a strided 1x1.
        case([2, 3, 8], [9, 11], [3, 3]).with(|c| c.with_padding(PaddingConfig2d::Same)),
        case([2, 4, 6], [7, 7], [3, 3]).with(|c| c.with_groups(2)),
        case([2, 6, 5], [8, 8], [1, 1]).with(|c| c.with_stride([2, 2])),
    ];
    for case in cases {
        matches_burns_layer(case, &device, |conv, x| {
            channels_first(conv2d_last(conv, channels_last(x)))
        });
    }
}

/// In inference, a convolution with its bias and activation and a BatchNorm with its running
/// statistics give channels-last the values they give channels-first: the depthwise kernels and
/// the normalization bit for bit (the same sums in the same order), the pointwise products to
/// rounding (another split of each product).
#[test]
fn channels_last_inference_is_the_channels_first_layers() {
    let device = Device::flex();
    device.seed(18);
    let cases = [
        case([3, 40, 96], [10, 10], [1, 1]),
        case([2, 96, 96], [10, 10], [5, 5]).with(|c| {
            c.with_groups(96)
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
        }),
        case([2, 20, 20], [7, 7], [3, 3])
            .with(|c| c.with_groups(20).with_padding(PaddingConfig2d::Same)),
    ];
    for Case {
        sizes: [batch, channels_in, channels_out],
        input: [h, w],
        config,
    } in cases
    {
        let conv = config.init(&device);
        let bn = trained_batch_norm(channels_out, &device);
        let x = Tensor::<4>::random(
            [batch, channels_in, h, w],
            Distribution::Normal(0.0, 4.0),
            &device,
        );
        for activation in [Activation::Identity, Activation::Relu6, Activation::Gelu] {
            let case = format!("{config:?}, {activation:?}");
            let first = conv2d_activated(&conv, x.clone(), activation);
            let last = channels_first(conv2d_activated_last(
                &conv,
                channels_last(x.clone()),
                activation,
            ));
            if config.kernel_size == [1, 1] {
                close("output", relative_difference(last, first.clone()), &case);
            } else {
                assert_eq!(bits(last), bits(first.clone()), "{case}");
            }
            let normalized = batch_norm_activated(&bn, first.clone(), activation);
            let normalized_last = channels_first(batch_norm_activated_last(
                &bn,
                channels_last(first),
                activation,
            ));
            assert_eq!(bits(normalized_last), bits(normalized), "BatchNorm, {case}");
        }
    }
}

/// BatchNorm with the batch's statistics on channels-last tensors against Burn's layer on the
/// same values channels-first, then the activation: output, every gradient and the running
/// statistics, with positions over several of the kernel's blocks.
#[test]
fn channels_last_batch_norm_matches_burns_training() {
    let device = Device::flex().autodiff();
    device.seed(19);
    for activation in [Activation::Identity, Activation::Relu6] {
        for shape in [[4, 70, 5, 5], [6, 20, 10, 10], [2, 300, 3, 7]] {
            let channels = shape[1];
            let gamma = Tensor::<1>::random([channels], Distribution::Uniform(0.5, 2.0), &device);
            let beta = Tensor::<1>::random([channels], Distribution::Normal(1.0, 1.0), &device);
            let (bn, reference_bn) = twin_batch_norms(&gamma, &beta);
            let x =
                Tensor::<4>::random(shape, Distribution::Normal(3.0, 2.0), &device).require_grad();
            let ours = channels_first(batch_norm_activated_last(
                &bn,
                channels_last(x.clone()),
                activation,
            ));
            let reference = activate(reference_bn.forward(x.clone()), activation);
            let case = format!("{activation:?} {shape:?}");
            let (ours_grads, reference_grads) =
                same_output_and_input_gradient(&x, ours, reference, &case);
            for (what, ours, reference) in [
                ("gamma gradient", bn.gamma.val(), reference_bn.gamma.val()),
                ("beta gradient", bn.beta.val(), reference_bn.beta.val()),
            ] {
                let difference = relative_difference(
                    ours.grad(&ours_grads).unwrap(),
                    reference.grad(&reference_grads).unwrap(),
                );
                close(what, difference, &case);
            }
            for (what, ours, reference) in [
                ("running mean", &bn.running_mean, &reference_bn.running_mean),
                (
                    "running variance",
                    &bn.running_var,
                    &reference_bn.running_var,
                ),
            ] {
                let difference = relative_difference(ours.value_sync(), reference.value_sync());
                close(what, difference, &case);
            }
        }
    }
}
