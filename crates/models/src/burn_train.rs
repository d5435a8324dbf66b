//! burn-train's [`TrainStep`] and [`InferenceStep`] for every network here, so a Burn user can
//! train any of them with Burn's own `Learner` and `SupervisedTraining` (the `burn_learner`
//! example does, on CIFAR-10): a step takes an [`ImageBatch`] and gives burn-train's
//! [`ClassificationOutput`], whose loss, accuracy and other metrics burn-train then reports.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

use crate::classifier::ImageClassifier;
use crate::convnet::ConvNet;
use crate::efficientnet::EfficientNet;
use crate::fastnet::FastNet;
use crate::registry::Classifier;

/// Normalized images `[batch, 3, side, side]` and their class indices `[batch]`.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    pub images: Tensor<4>,
    pub labels: Tensor<1, Int>,
}

/// The logits of `batch`, and their cross-entropy with its labels.
fn classify(network: &impl ImageClassifier, batch: ImageBatch) -> ClassificationOutput {
    let logits = network.forward(batch.images);
    let loss = CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits.clone(), batch.labels.clone());
    ClassificationOutput::new(loss, logits, batch.labels)
}

macro_rules! burn_train_steps {
    ($($network:ty),+ $(,)?) => {
        $(
            impl TrainStep for $network {
                type Input = ImageBatch;
                type Output = ClassificationOutput;

                fn step(&self, batch: ImageBatch) -> TrainOutput<ClassificationOutput> {
                    let output = classify(self, batch);
                    TrainOutput::new(self, output.loss.backward(), output)
                }
            }

            impl InferenceStep for $network {
                type Input = ImageBatch;
                type Output = ClassificationOutput;

                fn step(&self, batch: ImageBatch) -> ClassificationOutput {
                    classify(self, batch)
                }
            }
        )+
    };
}

burn_train_steps!(ConvNet, FastNet, EfficientNet, Classifier);
