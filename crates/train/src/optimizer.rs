//! The optimizer a config names, with its settings, and the larger steps of BatchNorm's shifts.

use burn::module::{ModuleVisitor, Param, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use kernels::optim::Adam;

use crate::config::{OptimizerConfig, OptimizerName};

/// A fresh optimizer as `config` describes it.
pub fn optimizer(config: &OptimizerConfig) -> ModuleOptimizer {
    let decay = (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay));
    match config.name {
        OptimizerName::Adam => Adam {
            beta_1: config.beta_1,
            beta_2: config.beta_2,
            epsilon: config.epsilon,
            penalty: decay.as_ref().map(|decay| decay.penalty),
        }
        .init(),
        OptimizerName::Adamw => AdamWConfig::new()
            .with_beta_1(config.beta_1)
            .with_beta_2(config.beta_2)
            .with_epsilon(config.epsilon)
            .with_weight_decay(config.weight_decay)
            .init(),
        OptimizerName::Sgd => SgdConfig::new()
            .with_momentum(Some(MomentumConfig {
                momentum: config.momentum,
                dampening: 0.0,
                nesterov: config.nesterov,
            }))
            .with_weight_decay(decay)
            .init(),
    }
}

/// `grads` with the gradients of `model`'s BatchNorm shifts times `scale`. With SGD and a weight
/// decay coupled as Burn's is, that is the same as their own learning rate `scale` times the
/// others' with the same decay per step (airbench's parameter groups).
pub fn scale_shifts<M: Module>(
    model: &M,
    mut grads: GradientsParams,
    scale: f64,
) -> GradientsParams {
    let mut shifts = Shifts::default();
    model.visit(&mut shifts);
    for id in shifts.ids {
        if let Some(grad) = grads.remove::<1>(id) {
            grads.register(id, grad * scale);
        }
    }
    grads
}

/// The parameters named `beta` of the `BatchNorm` modules a visitor passes.
#[derive(Default)]
struct Shifts {
    /// The type of each module entered, down to where the visitor is.
    path: Vec<bool>,
    ids: Vec<ParamId>,
}

impl ModuleVisitor for Shifts {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push(name == "beta" && container_type == "Struct:BatchNorm");
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.path.last() == Some(&true) {
            self.ids.push(param.id);
        }
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

    #[test]
    fn only_batch_norm_shifts_are_scaled() {
        let device = Device::flex().autodiff();
        let tiny = Tiny {
            linear: LinearConfig::new(3, 4).init(&device),
            bn: BatchNormConfig::new(4).init(&device),
        };
        let input = Tensor::<2>::random([8, 3], burn::tensor::Distribution::Default, &device);
        let gradients = || {
            let output = tiny
                .bn
                .forward(tiny.linear.forward(input.clone()).reshape([8, 4, 1]));
            GradientsParams::from_grads((output.clone() * output).sum().backward(), &tiny)
        };
        let grads = gradients();
        let scaled = scale_shifts(&tiny, gradients(), 64.0);
        let values = |grads: &GradientsParams, id| models::values(grads.get::<1>(id).unwrap());
        let (beta, gamma) = (tiny.bn.beta.id, tiny.bn.gamma.id);
        let times: Vec<f32> = values(&grads, beta).iter().map(|g| g * 64.0).collect();
        assert_eq!(values(&scaled, beta), times);
        assert_eq!(values(&scaled, gamma), values(&grads, gamma));
        let weight = |grads: &GradientsParams| {
            models::values(grads.get::<2>(tiny.linear.weight.id).unwrap())
        };
        assert_eq!(weight(&scaled), weight(&grads));
    }
}
