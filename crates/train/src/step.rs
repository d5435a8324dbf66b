//! One training step: a batch cut into a share per device, each share's loss and gradients on its
//! own copy of the model, the gradients added up on the model's device, the optimizer's step and
//! the moving average's update. The loop takes these steps, and the time-budget planner times
//! these very steps.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rng::Stream;

use crate::ema::Ema;
use crate::examples::Examples;
use crate::network::Network;

/// One device's share of a training batch.
pub struct Shard<I> {
    size: usize,
    input: I,
    labels: Tensor<1, Int>,
}

/// What a step measured of its batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// The loss summed over the batch's examples.
    pub loss_sum: f64,
    pub correct: i64,
    pub examples: usize,
}

/// The loss of a batch was NaN or infinite: the step was not taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFinite(pub f64);

/// How steps are taken: the training loss, the devices sharing each batch (the model's first),
/// and the multiple of the learning rate that BatchNorm's shifts take.
pub struct Stepper<'a> {
    pub loss: CrossEntropyLossConfig,
    pub devices: &'a [Device],
    pub shift_scale: Option<f64>,
}

/// What a share's step computed, before the optimizer uses it.
struct ShareResult {
    tally: Tally,
    /// Gradients of the batch's mean loss, on the model's device.
    grads: GradientsParams,
}

impl<'a> Stepper<'a> {
    /// Steps with the cross-entropy loss, label-smoothed by `label_smoothing`, over `devices`,
    /// BatchNorm's shifts at `shift_scale` times the rate where it is set.
    pub fn new(
        label_smoothing: Option<f32>,
        shift_scale: Option<f64>,
        devices: &'a [Device],
    ) -> Self {
        let mut loss = CrossEntropyLossConfig::new();
        loss.smoothing = label_smoothing;
        Self {
            loss,
            devices,
            shift_scale,
        }
    }

    /// The training batch at `indices` of epoch `epoch`, drawn from `seed`, cut into one
    /// consecutive share per device, each made on its device (fewer shares than devices when the
    /// batch is that small).
    pub fn batch<I>(
        &self,
        train: &dyn Examples<I>,
        indices: &[usize],
        seed: u64,
        epoch: usize,
    ) -> Vec<Shard<I>> {
        indices
            .chunks(indices.len().div_ceil(self.devices.len()).max(1))
            .zip(self.devices)
            .enumerate()
            .map(|(index, (part, device))| {
                let seed = rng::derive(seed, Stream::Shard, index as u64);
                let (input, labels) = train.training_batch(part, seed, epoch, device);
                Shard {
                    size: part.len(),
                    input,
                    labels,
                }
            })
            .collect()
    }

    /// One step of `model` on `shards` at learning rate `lr`, then the moving average's update
    /// (`ema_step` counts the stage's steps from 0).
    pub fn step<M: Network>(
        &self,
        model: M,
        shards: Vec<Shard<M::Input>>,
        optimizer: &mut ModuleOptimizer,
        lr: f64,
        ema: Option<(&mut Ema<M>, usize)>,
    ) -> Result<(M, Tally), NonFinite> {
        let result = self.gradients(&model, shards);
        let batch_loss = result.tally.loss_sum / result.tally.examples as f64;
        if !batch_loss.is_finite() {
            return Err(NonFinite(batch_loss));
        }
        let grads = match self.shift_scale {
            Some(scale) => crate::optimizer::scale_shifts(&model, result.grads, scale),
            None => result.grads,
        };
        let model = optimizer.step(lr, model, grads);
        if let Some((ema, step)) = ema {
            ema.update(&model, step);
        }
        Ok((model, result.tally))
    }

    /// The loss and gradients of one share, its loss weighted by its share `weight` of the batch
    /// so that the shares' gradients add up to those of the whole batch.
    fn share_step<M: Network>(
        &self,
        model: &M,
        shard: Shard<M::Input>,
        weight: f64,
    ) -> ShareResult {
        let device = shard.labels.device();
        let logits = model.logits(shard.input);
        let loss = self
            .loss
            .init(&device)
            .forward(logits.clone(), shard.labels.clone());
        let loss_sum = loss.clone().into_scalar::<f64>() * shard.size as f64;
        let loss = if weight < 1.0 { loss * weight } else { loss };
        let mut grads = GradientsParams::from_grads(loss.backward(), model);
        let main = &self.devices[0];
        if device != *main {
            grads = grads.to_device(main, model);
        }
        ShareResult {
            tally: Tally {
                loss_sum,
                correct: count_correct(logits.detach(), shard.labels),
                examples: shard.size,
            },
            grads,
        }
    }

    /// The first share on `model`, each other one on a copy of it on its own device in a thread
    /// of its own (whose BatchNorm statistics are dropped, as PyTorch's DataParallel does), the
    /// gradients added up on the model's device.
    fn gradients<M: Network>(&self, model: &M, shards: Vec<Shard<M::Input>>) -> ShareResult {
        let total: usize = shards.iter().map(|shard| shard.size).sum();
        let weight = |shard: &Shard<M::Input>| shard.size as f64 / total as f64;
        let mut shards = shards.into_iter().zip(self.devices);
        let (first, _) = shards.next().expect("a batch has at least one shard");
        std::thread::scope(|scope| {
            let others: Vec<_> = shards
                .map(|(shard, device)| {
                    let replica = model.valid().train().fork(device);
                    let weight = weight(&shard);
                    scope.spawn(move || self.share_step(&replica, shard, weight))
                })
                .collect();
            let first_weight = weight(&first);
            let mut result = self.share_step(model, first, first_weight);
            if others.is_empty() {
                return result;
            }
            let mut grads = GradientsAccumulator::<M>::new();
            grads.accumulate(model, result.grads);
            for other in others {
                let other = other.join().expect("a training thread panicked");
                result.tally.loss_sum += other.tally.loss_sum;
                result.tally.correct += other.tally.correct;
                result.tally.examples += other.tally.examples;
                grads.accumulate(model, other.grads);
            }
            result.grads = grads.grads();
            result
        })
    }
}

fn count_correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> i64 {
    let predicted = logits.argmax(1).flatten::<1>(0, 1);
    predicted.equal(labels).int().sum().into_scalar::<i64>()
}
