//! What a network says about a set of examples: per-example outputs (the prediction, its
//! probability, the loss), averaged over the views test-time augmentation makes, their mean
//! loss and accuracy, and how they spread over the classes (precision, recall and F1 per class,
//! the confusion matrix, the pairs most often confused).

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

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub class: String,
    /// Of the examples predicted as this class, the share that are.
    pub precision: f64,
    /// Of the examples of this class, the share predicted as it.
    pub recall: f64,
    pub f1: f64,
    /// Examples of this class.
    pub support: usize,
}

/// A true class taken for another, and how often.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confused {
    pub actual: String,
    pub predicted: String,
    pub count: usize,
}

/// How the outputs spread over the classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ByClass {
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Every pair confused at least once, most often first.
    pub most_confused: Vec<Confused>,
}

impl ByClass {
    pub fn of(outputs: &[Output], classes: &[String]) -> Self {
        let n = classes.len();
        let mut confusion = vec![vec![0usize; n]; n];
        for o in outputs {
            confusion[o.label][o.predicted] += 1;
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class = classes
            .iter()
            .enumerate()
            .map(|(c, class)| {
                let hits = confusion[c][c];
                let support: usize = confusion[c].iter().sum();
                let predicted: usize = confusion.iter().map(|row| row[c]).sum();
                let (precision, recall) = (ratio(hits, predicted), ratio(hits, support));
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    class: class.clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let mut most_confused: Vec<Confused> = (0..n)
            .flat_map(|t| (0..n).map(move |p| (t, p)))
            .filter(|&(t, p)| t != p && confusion[t][p] > 0)
            .map(|(t, p)| Confused {
                actual: classes[t].clone(),
                predicted: classes[p].clone(),
                count: confusion[t][p],
            })
            .collect();
        most_confused.sort_by_key(|pair| std::cmp::Reverse(pair.count));
        ByClass {
            per_class,
            confusion,
            most_confused,
        }
    }

    /// The per-class table and the `pairs` most confused pairs, as printed.
    pub fn table(&self, pairs: usize) -> String {
        let width = self
            .per_class
            .iter()
            .map(|m| m.class.len())
            .max()
            .unwrap_or(0)
            .max(5);
        let mut text = format!("{:<width$}  precision  recall     f1  support\n", "class");
        for m in &self.per_class {
            text += &format!(
                "{:<width$}  {:>9.4}  {:>6.4}  {:>5.4}  {:>7}\n",
                m.class, m.precision, m.recall, m.f1, m.support
            );
        }
        if !self.most_confused.is_empty() {
            text += "most confused (actual -> predicted: count):\n";
            for pair in self.most_confused.iter().take(pairs) {
                text += &format!("  {} -> {}: {}\n", pair.actual, pair.predicted, pair.count);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(label: usize, predicted: usize) -> Output {
        Output {
            label,
            predicted,
            probability: 0.9,
            loss: 0.1,
        }
    }

    #[test]
    fn precision_recall_and_f1_per_class() {
        let classes: Vec<String> = ["cat", "dog", "owl"].map(String::from).into();
        // cat: 3 examples, 2 right, 1 taken for a dog; dog: 2, both right; owl: 1, taken for a
        // dog; nothing predicted as owl.
        let outputs = [(0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (2, 1)].map(|(t, p)| output(t, p));
        let by_class = ByClass::of(&outputs, &classes);
        let cat = &by_class.per_class[0];
        assert_eq!((cat.precision, cat.support), (1.0, 3));
        assert!((cat.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((cat.f1 - 0.8).abs() < 1e-12);
        let dog = &by_class.per_class[1];
        assert_eq!((dog.precision, dog.recall), (0.5, 1.0));
        let owl = &by_class.per_class[2];
        assert_eq!((owl.precision, owl.recall, owl.f1), (0.0, 0.0, 0.0));
        assert_eq!(by_class.confusion, [[2, 1, 0], [0, 2, 0], [0, 1, 0]]);
        assert_eq!(by_class.most_confused.len(), 2);
        assert_eq!(by_class.most_confused[0].count, 1);
        let table = by_class.table(5);
        assert!(table.contains("cat -> dog: 1"), "{table}");
        assert!(table.lines().nth(1).unwrap().starts_with("cat"), "{table}");
    }
}
