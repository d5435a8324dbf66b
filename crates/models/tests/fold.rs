//! Folding BatchNorm into the convolutions changes how EfficientNet-Lite0 computes, not what.

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use models::ImageClassifier;
use models::efficientnet::EfficientNetConfig;

/// Random BatchNorm scales and shifts (every vector parameter), and convolution kernels scaled up
/// so that the signal stays of order one through the untrained network's 16 blocks.
struct Randomize;

impl ModuleMapper for Randomize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match D {
            1 => param
                .map(|v| Tensor::random(v.shape(), Distribution::Uniform(0.5, 1.5), &v.device())),
            4 => param.map(|kernel| kernel * 2.2),
            _ => param,
        }
    }
}

#[test]
fn folded_batchnorm_computes_the_same_features_and_logits() {
    let device = Device::flex().autodiff();
    device.seed(11);
    let model = EfficientNetConfig::new()
        .with_num_classes(10)
        .init(&device)
        .map(&mut Randomize);
    for _ in 0..3 {
        // Forward passes in training mode move the running statistics away from 0 and 1.
        let images = Tensor::<4>::random([4, 3, 64, 64], Distribution::Normal(0.3, 1.2), &device);
        model.forward(images);
    }
    let model = model.valid();
    let folded = model.clone().fold_batchnorm();
    assert!(folded.num_params() < model.num_params());

    let images = Tensor::<4>::random(
        [2, 3, 64, 64],
        Distribution::Normal(0.0, 1.0),
        &device.clone().inner(),
    );
    let expected = model
        .forward(images.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let got = folded
        .forward(images)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let scale = expected.iter().map(|v| v.abs()).sum::<f32>() / expected.len() as f32;
    let worst = expected
        .iter()
        .zip(&got)
        .map(|(e, g)| (e - g).abs())
        .fold(0.0, f32::max);
    println!("logits of mean magnitude {scale}: largest difference {worst}");
    assert!(scale > 1e-2, "the signal died out: {scale}");
    assert!(worst < 1e-4 * scale.max(1.0), "difference {worst}");
}
