//! The matrix products in bfloat16 (`kernels::set_matmul_precision`), in a test process of their
//! own: the precision is process-wide, and the other test files compare f32 results bit for bit.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use kernels::{Precision, amx_available, conv2d, conv2d_last, set_matmul_precision};

/// The largest difference between `ours` and `reference` over the largest magnitude of
/// `reference`.
fn relative_difference<const D: usize>(ours: Tensor<D>, reference: Tensor<D>) -> f32 {
    let scale: f32 = reference.clone().abs().max().into_scalar();
    let difference: f32 = (ours - reference).abs().max().into_scalar();
    difference / scale.max(f32::MIN_POSITIVE)
}

/// A convolution's output, input gradient and weight gradient of the loss `sum(output ·
/// weights)`, channels-first whichever layout it ran on.
fn convolved(
    conv: &Conv2d,
    x: &Tensor<4>,
    weights: &Tensor<4>,
    channels_last: bool,
) -> [Tensor<4>; 3] {
    let x = Tensor::from_data(x.clone().into_data(), &x.device()).require_grad();
    let output = if channels_last {
        conv2d_last(conv, x.clone().permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
    } else {
        conv2d(conv, x.clone())
    };
    let grads = (output.clone() * weights.clone()).sum().backward();
    [
        output.detach(),
        x.grad(&grads).unwrap(),
        conv.weight.val().grad(&grads).unwrap(),
    ]
}

/// Convolutions whose products run in bfloat16 against the same in f32: not the same bits (the
/// setting reaches them), within bfloat16's rounding (operands to 8 bits of mantissa, about
/// 0.4% a product, partly cancelling in the sums).
#[test]
fn bfloat16_products_stay_within_bfloat16s_rounding_of_float32s() {
    if !amx_available() {
        eprintln!("skipped: this CPU or system has no AMX tiles for bfloat16 products");
        assert_eq!(
            set_matmul_precision(Precision::Bfloat16),
            Precision::Float32
        );
        return;
    }
    let device = Device::flex().autodiff();
    device.seed(5);
    let cases = [
        // Channels-last 1x1 convolutions as in EfficientNet-Lite0's trained blocks at 160.
        (
            true,
            Conv2dConfig::new([80, 480], [1, 1]).with_bias(false),
            [16, 10, 10],
        ),
        (true, Conv2dConfig::new([672, 112], [1, 1]), [9, 5, 5]),
        // A 3x3 convolution as fastnet's (the direct kernels' in f32, unfolded in bfloat16).
        (
            false,
            Conv2dConfig::new([32, 64], [3, 3]).with_padding(PaddingConfig2d::Same),
            [4, 16, 16],
        ),
        // A 1x1 convolution on planes, and one that unfolds its input (strided).
        (false, Conv2dConfig::new([40, 96], [1, 1]), [4, 14, 14]),
        (
            false,
            Conv2dConfig::new([24, 40], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same),
            [4, 13, 13],
        ),
    ];
    for (channels_last, config, [batch, h, w]) in cases {
        let conv = config.init(&device);
        let x = Tensor::<4>::random(
            [batch, config.channels[0], h, w],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        // A loss whose gradient differs at every output value.
        let output = conv.forward(x.clone()).dims();
        let weights = Tensor::<4>::random(output, Distribution::Default, &device);
        set_matmul_precision(Precision::Float32);
        let reference = convolved(&conv, &x, &weights, channels_last);
        assert_eq!(
            set_matmul_precision(Precision::Bfloat16),
            Precision::Bfloat16
        );
        let ours = convolved(&conv, &x, &weights, channels_last);
        for (name, (ours, reference)) in ["output", "input gradient", "weight gradient"]
            .into_iter()
            .zip(ours.into_iter().zip(reference))
        {
            let difference = relative_difference(ours, reference);
            assert!(
                difference > 0.0 && difference < 1e-2,
                "{config:?} ({}): {name} {difference} from f32's",
                if channels_last {
                    "channels-last"
                } else {
                    "channels-first"
                }
            );
        }
    }
    set_matmul_precision(Precision::Float32);
}
