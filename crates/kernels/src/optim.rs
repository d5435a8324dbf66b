//! What training loops call: Burn's `Adam` as an optimizer whose step is [`Kernels::adam_step`],
//! one pass over each parameter on `Flex` where Burn's makes thirteen. Its state is Burn's
//! `AdamState`, so an optimizer record saved with either loads into the other.

use burn::backend::Dispatch;
use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::prelude::*;

use crate::{AdamStep, Kernels};

/// Burn's `Adam` (`AdamConfig` without AMSGrad or gradient clipping), the weight decay an L2
/// penalty on the gradient as Burn's `WeightDecay` adds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub penalty: Option<f32>,
}

impl Adam {
    /// An optimizer stepping every parameter of a module with these settings.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

impl Optimizer for Adam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        let (time, moment_1, moment_2) = match state {
            Some(state) => {
                let momentum = state.momentum;
                (momentum.time + 1, momentum.moment_1, momentum.moment_2)
            }
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };
        let step = AdamStep {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            penalty: self.penalty,
            lr,
            time,
        };
        let (tensor, moment_1, moment_2) = <Dispatch as Kernels>::adam_step(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            moment_1.into_dispatch(),
            moment_2.into_dispatch(),
            step,
        );
        let momentum = AdaptiveMomentumState::new(
            time,
            Tensor::from_dispatch(moment_1),
            Tensor::from_dispatch(moment_2),
        );
        (
            Tensor::from_dispatch(tensor),
            Some(AdamState::new(momentum)),
        )
    }

    fn to_device<const D: usize>(mut state: AdamState<D>, device: &Device) -> AdamState<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}
