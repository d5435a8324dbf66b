//! An exponential moving average of a network's weights and BatchNorm statistics, updated after
//! every optimizer step: with `ema_decay` set, it is the network that validation measures and
//! checkpoints keep. Averaging the last ~1/(1 − decay) steps' weights smooths out the noise of
//! the last few steps, which is worth most when a short schedule ends at a still-high rate.

use std::collections::HashMap;

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

/// The averaged network, in validation mode (on the inner, non-autodiff device). Updates
/// overwrite its running statistics in place, which clones share: take copies with
/// [`Ema::snapshot`].
#[derive(Debug)]
pub struct Ema<M> {
    pub model: M,
    decay: f64,
}

impl<M: Module> Ema<M> {
    /// Starts the average at `model` (in validation mode).
    pub fn new(model: M, decay: f64) -> Self {
        Self { model, decay }
    }

    /// A copy of the average that later updates leave alone.
    pub fn snapshot(&self) -> M {
        self.model.valid()
    }

    /// Moves the average towards `training`, the network after optimizer step `step` (counted
    /// from 0 over the stage). Early steps weigh more, `(1 + step) / (10 + step)` capping the
    /// decay, so the average soon forgets the initial weights.
    pub fn update(&mut self, training: &M, step: usize) {
        let warm = (1.0 + step as f64) / (10.0 + step as f64);
        self.blend(training, self.decay.min(warm));
    }

    /// `average ← keep · average + (1 − keep) · training`, weights and running statistics.
    pub fn blend(&mut self, training: &M, keep: f64) {
        let mut current = Weights::default();
        // `valid` first: it brings the running statistics up to date.
        training.valid().visit(&mut current);
        let mut mix = Mix {
            current: current.0,
            keep,
        };
        self.model = self.model.clone().map(&mut mix);
    }

    /// `training` (on its autodiff device, keeping its parameters' ids, so the optimizer's state
    /// stays theirs) with the average's weights and running statistics.
    pub fn imposed_on(&self, training: M) -> M {
        let mut average = Weights::default();
        self.model.visit(&mut average);
        training.map(&mut Impose(average.0))
    }
}

/// Every float tensor replaced by the one of the same id, as an autodiff tensor that requires a
/// gradient where the one it replaces did.
struct Impose(HashMap<ParamId, Tensor<1>>);

impl ModuleMapper for Impose {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(value) = self.0.remove(&param.id) else {
            return param;
        };
        param.map(|old| {
            let tracked = old.is_require_grad();
            let value = value.reshape(old.shape()).to_device(&old.device().inner());
            Tensor::from_inner(value).set_require_grad(tracked)
        })
    }
}

/// Every float tensor of a network (parameters and running statistics) by id, detached and
/// flattened.
#[derive(Default)]
struct Weights(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for Weights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().inner();
        let count = value.shape().num_elements();
        self.0.insert(param.id, value.reshape([count]));
    }
}

/// `average ← keep · average + (1 − keep) · current`, tensor by tensor.
struct Mix {
    current: HashMap<ParamId, Tensor<1>>,
    keep: f64,
}

impl ModuleMapper for Mix {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(current) = self.current.remove(&param.id) else {
            return param;
        };
        let keep = self.keep;
        param.map(|average| {
            let current = current
                .reshape(average.shape())
                .to_device(&average.device());
            average * keep + current * (1.0 - keep)
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};

    use super::*;

    #[derive(Module, Debug)]
    struct Tiny {
        linear: Linear,
        bn: BatchNorm,
    }

    fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().convert::<f32>().try_to_vec().unwrap()
    }

    fn assert_mix(average: Vec<f32>, start: Vec<f32>, current: Vec<f32>, keep: f32) {
        assert_eq!(average.len(), start.len());
        for ((a, s), c) in average.iter().zip(&start).zip(&current) {
            let expected = keep * s + (1.0 - keep) * c;
            assert!((a - expected).abs() < 1e-6, "{a} != {expected}");
        }
    }

    #[test]
    fn the_average_mixes_weights_and_statistics_with_the_capped_decay() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let tiny = Tiny {
            linear: LinearConfig::new(3, 4).init(&device),
            bn: BatchNormConfig::new(4).init(&device),
        };
        let mut ema = Ema::new(tiny.valid(), 0.9);
        let start = |m: &Tiny| {
            (
                values(m.linear.weight.val()),
                values(m.bn.running_mean.value()),
            )
        };
        let (weight_0, mean_0) = start(&ema.model);
        // The same parameters with other values, and statistics moved by a training-mode pass.
        let mut trained = tiny.clone();
        trained.linear.weight = trained.linear.weight.map(|w| w + 1.0);
        let input = Tensor::<2>::random([8, 3], burn::tensor::Distribution::Default, &device);
        let _ = trained
            .bn
            .forward(trained.linear.forward(input).reshape([8, 4, 1]));
        let (weight_1, mean_1) = start(&trained.valid());
        assert_ne!(mean_0, mean_1, "the training pass moved the statistics");
        let kept = ema.snapshot();

        // Step 100: (1 + 100) / (10 + 100) > 0.9, so the decay itself applies.
        ema.update(&trained, 100);
        let (weight, mean) = start(&ema.model);
        assert_mix(weight.clone(), weight_0.clone(), weight_1.clone(), 0.9);
        assert_mix(mean.clone(), mean_0.clone(), mean_1.clone(), 0.9);

        // Step 0 keeps only 1/10 of the average.
        ema.update(&trained, 0);
        let (weight_2, mean_2) = start(&ema.model);
        assert_mix(weight_2, weight, weight_1, 0.1);
        assert_mix(mean_2, mean, mean_1, 0.1);
        assert_eq!(
            start(&kept),
            (weight_0, mean_0),
            "a snapshot stays as it was"
        );
    }
}
