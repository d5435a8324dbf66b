//! Every hand-written operation against Burn's own, on random shapes and values.

use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module::{avg_pool2d, conv2d, linear, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use by_hand::{Kernels, Maps, Padding, output_size};
use rng::Rng;

const TOLERANCE: f32 = 1e-4;

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.unit() * 2.0 - 1.0).collect()
}

fn maps(rng: &mut Rng) -> Maps {
    let (channels, height, width) = (1 + rng.below(3), 5 + rng.below(9), 5 + rng.below(9));
    Maps {
        channels,
        height,
        width,
        data: random(rng, channels * height * width),
    }
}

fn tensor(maps: &Maps) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(
            maps.data.clone(),
            [1, maps.channels, maps.height, maps.width],
        ),
        &Device::flex(),
    )
}

/// Burn's padding pair `(before, after)` for the same geometry.
fn pads(n: usize, k: usize, s: usize, padding: Padding) -> (usize, usize) {
    let (out, before) = output_size(n, k, s, padding);
    let total = match padding {
        Padding::Valid => 0,
        Padding::Same => ((out - 1) * s + k).saturating_sub(n),
    };
    (before, total - before)
}

fn assert_close(ours: &Maps, burn: Tensor<4>) {
    let [_, c, h, w] = burn.dims();
    assert_eq!(ours.shape(), [c, h, w]);
    let values: Vec<f32> = burn
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    for (a, b) in ours.data.iter().zip(&values) {
        assert!((a - b).abs() <= TOLERANCE * (1.0 + b.abs()), "{a} vs {b}");
    }
}

fn cases() -> impl Iterator<Item = (usize, usize, Padding)> {
    [1, 2].into_iter().flat_map(|s| {
        [
            (s, 2, Padding::Valid),
            (s, 3, Padding::Valid),
            (s, 3, Padding::Same),
            (s, 4, Padding::Same),
        ]
    })
}

#[test]
fn conv2d_matches() {
    let mut rng = Rng::new(1);
    for (stride, k, padding) in cases() {
        let input = maps(&mut rng);
        let out_channels = 1 + rng.below(3);
        let kernels = Kernels {
            out_channels,
            in_channels: input.channels,
            size: k,
            data: random(&mut rng, out_channels * input.channels * k * k),
        };
        let bias = random(&mut rng, out_channels);
        let mut ours = by_hand::conv2d(&input, &kernels, stride, padding);
        by_hand::add_bias(&mut ours, &bias);
        let device = Device::flex();
        let weight = Tensor::<4>::from_data(
            TensorData::new(kernels.data.clone(), [out_channels, input.channels, k, k]),
            &device,
        );
        let options = ConvOptions {
            stride: [stride, stride],
            padding: [
                pads(input.height, k, stride, padding),
                pads(input.width, k, stride, padding),
            ],
            dilation: [1, 1],
            groups: 1,
        };
        let burn = conv2d(
            tensor(&input),
            weight,
            Some(Tensor::from_data(
                TensorData::new(bias, [out_channels]),
                &device,
            )),
            options,
        );
        assert_close(&ours, burn);
    }
}

#[test]
fn pooling_matches() {
    let mut rng = Rng::new(2);
    for (stride, k, padding) in cases() {
        let input = maps(&mut rng);
        let padding_pairs = [
            pads(input.height, k, stride, padding),
            pads(input.width, k, stride, padding),
        ];
        let max = MaxPoolOptions {
            kernel_size: [k, k],
            stride: [stride, stride],
            padding: padding_pairs,
            dilation: [1, 1],
            ceil_mode: false,
        };
        assert_close(
            &by_hand::max_pool(&input, k, stride, padding),
            max_pool2d(tensor(&input), max),
        );
        let avg = AvgPoolOptions {
            kernel_size: [k, k],
            stride: [stride, stride],
            padding: padding_pairs,
            count_include_pad: false,
            ceil_mode: false,
        };
        assert_close(
            &by_hand::avg_pool(&input, k, stride, padding),
            avg_pool2d(tensor(&input), avg),
        );
    }
}

#[test]
fn relu_flatten_dense_softmax_match() {
    let mut rng = Rng::new(3);
    let device = Device::flex();
    for _ in 0..5 {
        let input = maps(&mut rng);
        let mut values = by_hand::flatten(&input);
        assert_eq!(
            values,
            tensor(&input)
                .flatten::<1>(0, 3)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap()
        );
        by_hand::relu(&mut values);
        let outputs = 1 + rng.below(10);
        let weights = random(&mut rng, values.len() * outputs);
        let bias = random(&mut rng, outputs);
        let ours = by_hand::softmax(&by_hand::dense(&values, &weights, &bias));
        let x =
            Tensor::<1>::from_data(TensorData::new(input.data.clone(), [values.len()]), &device);
        let x = activation::relu(x).unsqueeze::<2>();
        let w = Tensor::<2>::from_data(TensorData::new(weights, [values.len(), outputs]), &device);
        let b = Tensor::<1>::from_data(TensorData::new(bias, [outputs]), &device);
        let burn = activation::softmax(linear(x, w, Some(b)), 1);
        let burn: Vec<f32> = burn
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        for (a, b) in ours.iter().zip(&burn) {
            assert!((a - b).abs() <= TOLERANCE, "{a} vs {b}");
        }
    }
}
