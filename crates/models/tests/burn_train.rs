//! With the `burn-train` feature, the networks train under burn-train's own `Learner` and
//! `SupervisedTraining` (the `burn_learner` example on real data): here the convnet learns four
//! classes of generated pictures in a few epochs.
#![cfg(feature = "burn-train")]

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::train::metric::LossMetric;
use burn::train::{InferenceStep, Learner, SupervisedTraining};
use models::burn_train::ImageBatch;
use models::convnet::ConvNetConfig;

const SIDE: usize = 24;

/// A picture of class `label`: a bright square in the quadrant the class names, on noise.
fn picture(label: usize, seed: usize) -> (Vec<f32>, usize) {
    let mut values = Vec::with_capacity(3 * SIDE * SIDE);
    for p in 0..3 * SIDE * SIDE {
        let (y, x) = ((p % (SIDE * SIDE)) / SIDE, p % SIDE);
        let quadrant = 2 * (y / (SIDE / 2)) + x / (SIDE / 2);
        let noise = ((p * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5;
        values.push(if quadrant == label { 1.5 } else { 0.0 } + noise);
    }
    (values, label)
}

#[derive(Clone)]
struct Pictures;

impl Batcher<(Vec<f32>, usize), ImageBatch> for Pictures {
    fn batch(&self, items: Vec<(Vec<f32>, usize)>, device: &Device) -> ImageBatch {
        let n = items.len();
        let labels: Vec<i64> = items.iter().map(|(_, label)| *label as i64).collect();
        let values: Vec<f32> = items.into_iter().flat_map(|(values, _)| values).collect();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(values, [n, 3, SIDE, SIDE]), device),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

#[test]
fn the_convnet_learns_under_burns_learner() {
    let dir = testkit::scratch_dir("burn-learner");
    let device = Device::flex().autodiff();
    device.seed(5);
    let items = |count: usize, offset: usize| -> Vec<_> {
        (0..count).map(|i| picture(i % 4, i + offset)).collect()
    };
    let loader = |items, device: Device| {
        DataLoaderBuilder::new(Pictures)
            .batch_size(16)
            .shuffle(5)
            .set_device(device)
            .build(InMemDataset::new(items))
    };
    let network = ConvNetConfig::new()
        .with_num_classes(4)
        .with_image_size(SIDE)
        .init(&device);
    let learner = Learner::new(network, AdamConfig::new().init(), 5e-4);
    let result = SupervisedTraining::new(
        &*dir,
        loader(items(96, 0), device.clone()),
        loader(items(32, 1000), device.clone().inner()),
    )
    .metrics((LossMetric::new(),))
    .num_epochs(3)
    .launch(learner);
    let check = Pictures.batch(items(32, 2000), &device.inner());
    let labels = models::values(check.labels.clone().float());
    let output = InferenceStep::step(&result.model, check);
    let predicted = models::values(output.output.argmax(1).flatten::<1>(0, 1).float());
    let right = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    assert!(right >= 28, "{right} of 32 right after three epochs");
}
