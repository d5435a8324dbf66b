//! The optimizer a config names, with its settings.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};

use crate::config::{OptimizerConfig, OptimizerName};

/// A fresh optimizer as `config` describes it.
pub fn optimizer(config: &OptimizerConfig) -> ModuleOptimizer {
    let decay = (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay));
    match config.name {
        OptimizerName::Adam => AdamConfig::new()
            .with_beta_1(config.beta_1)
            .with_beta_2(config.beta_2)
            .with_epsilon(config.epsilon)
            .with_weight_decay(decay)
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
