//! The training loop: epochs of shuffled mini-batches, validation after each, the best weights by
//! val_loss kept and saved, early stopping, and a clean stop on Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use data::split::Rng;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::ema::Ema;
use crate::network::{Examples, Network, TestTimeAugment};
use crate::schedule::Schedule;

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub epochs: usize,
    pub batch_size: usize,
    /// Epochs without improvement before stopping; 0 never stops early.
    pub patience: usize,
    pub seed: u64,
    /// The learning rate of each step of the stage.
    pub schedule: Schedule,
    /// The first epoch of the stage (where the schedule's step 0 is).
    pub stage_first_epoch: usize,
    /// Label smoothing for the training loss (validation always uses the plain loss).
    pub label_smoothing: Option<f32>,
    /// Number of the first epoch (a later stage continues the count).
    pub first_epoch: usize,
    /// The val_loss to beat: the model given is the best so far unless an epoch does better.
    pub best_val_loss: f64,
    /// More devices (autodiff), each taking an equal share of every batch beside the model's own
    /// (data parallelism); empty trains on the model's device alone.
    pub replicas: Vec<Device>,
    /// Validate and keep an exponential moving average of the weights with this decay per step,
    /// instead of the weights themselves.
    pub ema_decay: Option<f64>,
}

/// Where a resumed stage stands: its best weights so far, the epoch they come from, and the
/// moving average of the weights when there is one.
pub struct Resumed<M> {
    pub best: M,
    pub best_epoch: Option<usize>,
    pub ema: Option<M>,
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub seconds: f64,
    pub lr: f64,
    pub loss: f64,
    pub acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    Completed,
    EarlyStopping,
    Interrupted,
}

pub struct Outcome<M> {
    /// The weights of the best epoch, in validation mode (the initial weights if no epoch ended).
    pub best: M,
    pub best_epoch: Option<usize>,
    pub history: Vec<EpochMetrics>,
    pub stop: Stop,
}

/// Loss and accuracy over a whole example set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub acc: f64,
}

/// Things the loop reports to whoever runs it.
pub trait Observer<M> {
    /// The best weights so far: save them; returns where they went.
    fn improved(&mut self, model: &M) -> anyhow::Result<PathBuf>;
    /// An epoch finished (after `improved`, if it improved).
    fn epoch_done(&mut self, metrics: &EpochMetrics, end: EpochEnd<'_, M>) -> anyhow::Result<()>;
}

/// The training state after an epoch, everything needed to continue from it.
pub struct EpochEnd<'a, M> {
    pub model: &'a M,
    pub optimizer: &'a ModuleOptimizer,
    /// The moving average of the weights, when the stage keeps one.
    pub ema: Option<&'a M>,
    /// The best epoch of this stage so far.
    pub best_epoch: Option<usize>,
    /// Set when this was the stage's last epoch.
    pub stop: Option<Stop>,
}

/// The seed of an epoch's shuffle and of its random layers (dropout), so that a run resumed at
/// any epoch draws the same numbers as one that never stopped.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9)).next_u64()
}

fn batches(order: &[usize], size: usize) -> impl Iterator<Item = &[usize]> {
    order.chunks(size)
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
    for indices in batches(&order, batch_size) {
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
        let values: Vec<f32> = log_probabilities
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 data");
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

fn count_correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> i64 {
    let predicted = logits.argmax(1).flatten::<1>(0, 1);
    predicted.equal(labels).int().sum().into_scalar::<i64>()
}

fn progress(steps: usize) -> ProgressBar {
    ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("{pos}/{len} {wide_bar} [{elapsed} < {eta}] {msg}")
            .expect("valid template"),
    )
}

/// The seed of the `index`-th device's share of a batch (the first keeps the batch's seed).
fn shard_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64).wrapping_mul(0xA076_1D64_78BD_642F)
}

/// One device's share of a training batch.
struct Shard<I> {
    size: usize,
    input: I,
    labels: Tensor<1, Int>,
}

/// The training batch at `indices` of epoch `epoch` cut into one consecutive share per device,
/// each made on its device (fewer shares than devices when the batch is that small).
fn shards<I>(
    train: &dyn Examples<I>,
    indices: &[usize],
    seed: u64,
    epoch: usize,
    devices: &[Device],
) -> Vec<Shard<I>> {
    indices
        .chunks(indices.len().div_ceil(devices.len()).max(1))
        .zip(devices)
        .enumerate()
        .map(|(index, (part, device))| {
            let seed = shard_seed(seed, index);
            let (input, labels) = train.training_batch(part, seed, epoch, device);
            Shard {
                size: part.len(),
                input,
                labels,
            }
        })
        .collect()
}

/// What a training step computed, before the optimizer uses it.
struct StepResult {
    /// The loss summed over the batch's examples.
    loss_sum: f64,
    correct: i64,
    /// Gradients of the batch's mean loss, on the model's device.
    grads: GradientsParams,
}

/// The loss and gradients of one shard, its loss weighted by its share `weight` of the batch so
/// that the shards' gradients add up to those of the whole batch.
fn shard_step<M: Network>(
    model: &M,
    shard: Shard<M::Input>,
    weight: f64,
    loss_config: &CrossEntropyLossConfig,
    main: &Device,
) -> StepResult {
    let device = shard.labels.device();
    let logits = model.logits(shard.input);
    let loss = loss_config
        .init(&device)
        .forward(logits.clone(), shard.labels.clone());
    let loss_sum = loss.clone().into_scalar::<f64>() * shard.size as f64;
    let loss = if weight < 1.0 { loss * weight } else { loss };
    let mut grads = GradientsParams::from_grads(loss.backward(), model);
    if device != *main {
        grads = grads.to_device(main, model);
    }
    StepResult {
        loss_sum,
        correct: count_correct(logits.detach(), shard.labels),
        grads,
    }
}

/// A training step over a batch cut into shards: the first on `model`, each other one on a copy
/// of it on its own device in a thread of its own (whose BatchNorm statistics are dropped, as
/// PyTorch's DataParallel does), the gradients added up on the model's device.
fn step_gradients<M: Network>(
    model: &M,
    shards: Vec<Shard<M::Input>>,
    loss_config: &CrossEntropyLossConfig,
    devices: &[Device],
) -> StepResult {
    let total: usize = shards.iter().map(|shard| shard.size).sum();
    let weight = |shard: &Shard<M::Input>| shard.size as f64 / total as f64;
    let main = &devices[0];
    let mut shards = shards.into_iter().zip(devices);
    let (first, _) = shards.next().expect("a batch has at least one shard");
    std::thread::scope(|scope| {
        let others: Vec<_> = shards
            .map(|(shard, device)| {
                let replica = model.valid().train().fork(device);
                let weight = weight(&shard);
                scope.spawn(move || shard_step(&replica, shard, weight, loss_config, main))
            })
            .collect();
        let first_weight = weight(&first);
        let mut result = shard_step(model, first, first_weight, loss_config, main);
        if others.is_empty() {
            return result;
        }
        let mut grads = GradientsAccumulator::<M>::new();
        grads.accumulate(model, result.grads);
        for other in others {
            let other = other.join().expect("a training thread panicked");
            result.loss_sum += other.loss_sum;
            result.correct += other.correct;
            grads.accumulate(model, other.grads);
        }
        result.grads = grads.grads();
        result
    })
}

/// Train `model` (on an autodiff `device`) and return the best weights by val_loss.
#[allow(clippy::too_many_arguments)]
pub fn fit<M: Network>(
    mut model: M,
    resumed: Option<Resumed<M>>,
    optimizer: &mut ModuleOptimizer,
    train: &dyn Examples<M::Input>,
    valid: &dyn Examples<M::Input>,
    device: &Device,
    options: &FitOptions,
    observer: &mut dyn Observer<M>,
    interrupted: &AtomicBool,
) -> anyhow::Result<Outcome<M>> {
    let eval_device = device.clone().inner();
    let mut loss_config = CrossEntropyLossConfig::new();
    loss_config.smoothing = options.label_smoothing;
    let devices: Vec<Device> = std::iter::once(device.clone())
        .chain(options.replicas.iter().cloned())
        .collect();
    let steps_per_epoch = train.len().div_ceil(options.batch_size);
    let (mut best, mut best_epoch, resumed_ema) = match resumed {
        Some(resumed) => (resumed.best, resumed.best_epoch, resumed.ema),
        None => (model.valid(), None, None),
    };
    let mut ema = options
        .ema_decay
        .map(|decay| Ema::new(resumed_ema.unwrap_or_else(|| model.valid()), decay));
    let mut best_loss = options.best_val_loss;
    let mut history = Vec::new();
    let mut stop = Stop::Completed;
    let last_epoch = options.first_epoch + options.epochs - 1;
    for epoch in options.first_epoch..=last_epoch {
        println!("Epoch {epoch}/{last_epoch}");
        let started = Instant::now();
        let seed = epoch_seed(options.seed, epoch);
        for (index, device) in devices.iter().enumerate() {
            device.seed(shard_seed(seed, index));
        }
        let mut order: Vec<usize> = (0..train.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        let bar = progress(steps_per_epoch);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0i64, 0usize);
        let first_step = (epoch - options.stage_first_epoch) * steps_per_epoch;
        let mut lr = options.schedule.lr(first_step);
        model = std::thread::scope(|scope| -> anyhow::Result<M> {
            let mut model = model;
            // The next batches are read and augmented on another thread while this one trains.
            let (sender, batches_ready) = std::sync::mpsc::sync_channel(2);
            let (order, devices) = (&order, &devices);
            scope.spawn(move || {
                for (step, indices) in batches(order, options.batch_size).enumerate() {
                    let batch_seed = seed ^ (step as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                    if sender
                        .send(shards(train, indices, batch_seed, epoch, devices))
                        .is_err()
                    {
                        break;
                    }
                }
            });
            for (step, shards) in batches_ready.into_iter().enumerate() {
                if interrupted.load(Ordering::SeqCst) {
                    break;
                }
                let size: usize = shards.iter().map(|shard| shard.size).sum();
                let result = step_gradients(&model, shards, &loss_config, devices);
                let batch_loss = result.loss_sum / size as f64;
                if !batch_loss.is_finite() {
                    bar.finish_and_clear();
                    anyhow::bail!(
                        "loss became {batch_loss} at epoch {epoch}, step {}; lower optimizer.lr (the best checkpoint so far is kept)",
                        step + 1
                    );
                }
                lr = options.schedule.lr(first_step + step);
                model = optimizer.step(lr, model, result.grads);
                if let Some(ema) = ema.as_mut() {
                    ema.update(&model, first_step + step);
                }
                loss_sum += result.loss_sum;
                correct += result.correct;
                seen += size;
                bar.inc(1);
                bar.set_message(format!(
                    "loss: {:.4} - acc: {:.4}",
                    loss_sum / seen as f64,
                    correct as f64 / seen as f64
                ));
            }
            Ok(model)
        })?;
        bar.finish_and_clear();
        if interrupted.load(Ordering::SeqCst) {
            println!("interrupted");
            stop = Stop::Interrupted;
            break;
        }
        let snapshot = match &ema {
            Some(ema) => ema.snapshot(),
            None => model.valid(),
        };
        let val = Evaluation::of(&outputs(
            &snapshot,
            valid,
            options.batch_size,
            &eval_device,
            TestTimeAugment::default(),
        ));
        let metrics = EpochMetrics {
            epoch,
            seconds: started.elapsed().as_secs_f64(),
            lr,
            loss: loss_sum / seen.max(1) as f64,
            acc: correct as f64 / seen.max(1) as f64,
            val_loss: val.loss,
            val_acc: val.acc,
        };
        println!(
            "{steps_per_epoch}/{steps_per_epoch} - {:.0}s - loss: {:.4} - acc: {:.4} - val_loss: {:.4} - val_acc: {:.4}",
            metrics.seconds, metrics.loss, metrics.acc, metrics.val_loss, metrics.val_acc
        );
        if metrics.val_loss < best_loss {
            let path = observer.improved(&snapshot)?;
            println!(
                "val_loss improved from {best_loss:.5} to {:.5}, saving model to {}",
                metrics.val_loss,
                path.display()
            );
            best_loss = metrics.val_loss;
            best_epoch = Some(epoch);
            best = snapshot;
        } else {
            println!("val_loss did not improve from {best_loss:.5}");
        }
        let early_stop =
            options.patience > 0 && best_epoch.is_some_and(|b| epoch - b >= options.patience);
        let ended = if early_stop {
            Some(Stop::EarlyStopping)
        } else {
            (epoch == last_epoch).then_some(Stop::Completed)
        };
        observer.epoch_done(
            &metrics,
            EpochEnd {
                model: &model,
                optimizer,
                ema: ema.as_ref().map(|ema| &ema.model),
                best_epoch,
                stop: ended,
            },
        )?;
        history.push(metrics);
        if early_stop {
            println!(
                "Epoch {epoch}: early stopping (no improvement in {} epochs)",
                options.patience
            );
            stop = Stop::EarlyStopping;
            break;
        }
    }
    Ok(Outcome {
        best,
        best_epoch,
        history,
        stop,
    })
}

/// Seconds one training step of `model` takes on batches of `batch_size` from `train`, timed
/// over a few steps after some to warm up, on copies that are then thrown away.
pub fn seconds_per_step<M: Network>(
    model: &M,
    mut optimizer: ModuleOptimizer,
    train: &dyn Examples<M::Input>,
    batch_size: usize,
    device: &Device,
    ema_decay: Option<f64>,
) -> f64 {
    // The first steps are slower (the allocator's pool fills, pages fault in): timed after one
    // warm-up step, fastnet's epochs ran 10% faster than planned (after three, 7%). Training
    // reads its batches on another thread, so they are made before the clock starts (timed with
    // the steps, the plan was 3% long).
    const WARM_UP: usize = 3;
    const TIMED: usize = 5;
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let order: Vec<usize> = (0..train.len()).collect();
    let batches: Vec<_> = order
        .chunks(batch_size)
        .cycle()
        .take(WARM_UP + TIMED)
        .enumerate()
        .map(|(step, indices)| train.training_batch(indices, step as u64, 1, device))
        .collect();
    let mut model = model.clone();
    let mut ema = ema_decay.map(|decay| Ema::new(model.valid(), decay));
    let mut started = Instant::now();
    let mut timed = 0;
    for (step, (input, labels)) in batches.into_iter().enumerate() {
        if step == WARM_UP {
            started = Instant::now();
        }
        let loss = loss_fn.forward(model.logits(input), labels);
        let _ = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-6, model, grads);
        if let Some(ema) = ema.as_mut() {
            ema.update(&model, step);
        }
        timed = (step + 1).saturating_sub(WARM_UP);
    }
    started.elapsed().as_secs_f64() / timed.max(1) as f64
}
