//! What a network says about a set of examples: per-example outputs (the prediction, its
//! probability, the loss), averaged over the views test-time augmentation makes, and their mean
//! loss and accuracy.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use serde::Serialize;

use crate::examples::Examples;
use crate::network::{Network, TestTimeAugment};

/// Loss and accuracy over a whole example set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub acc: f64,
}

impl Evaluation {
    /// Mean loss and accuracy over per-example outputs.
    pub fn of(outputs: &[Output]) -> Self {
        let n = outputs.len().max(1) as f64;
        Evaluation {
            loss: outputs.iter().map(|o| f64::from(o.loss)).sum::<f64>() / n,
            acc: outputs.iter().filter(|o| o.label == o.predicted).count() as f64 / n,
        }
    }
}

/// What the network said about one example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Output {
    pub label: usize,
    pub predicted: usize,
    /// Probability of the predicted class.
    pub probability: f32,
    /// Cross-entropy of the true class.
    pub loss: f32,
}

/// Per-example outputs of `model` (in validation mode) on `examples`, in order, from the
/// probabilities averaged over the views `augment` makes of each input.
pub fn outputs<M: Network>(
    model: &M,
    examples: &dyn Examples<M::Input>,
    batch_size: usize,
    device: &Device,
    augment: TestTimeAugment,
) -> Vec<Output> {
    let order: Vec<usize> = (0..examples.len()).collect();
    let mut all = Vec::with_capacity(order.len());
    for indices in order.chunks(batch_size) {
        let (input, labels) = examples.batch(indices, device);
        let log_probabilities = match M::views(input, augment).as_slice() {
            [(only, _)] => log_softmax(model.logits(only.clone()), 1),
            views => views
                .iter()
                .map(|(view, weight)| softmax(model.logits(view.clone()), 1) * *weight)
                .reduce(|sum, probabilities| sum + probabilities)
                .expect("at least one view")
                .log(),
        };
        let classes = log_probabilities.dims()[1];
        let values = models::values(log_probabilities);
        let labels: Vec<i64> = labels
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("i64 data");
        for (row, &label) in values.chunks(classes).zip(&labels) {
            let (predicted, best) = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .expect("classes");
            all.push(Output {
                label: label as usize,
                predicted,
                probability: best.exp(),
                loss: -row[label as usize],
            });
        }
    }
    all
}
