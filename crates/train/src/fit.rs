//! The training loop: epochs of shuffled mini-batches, validation after each, the best weights by
//! val_loss kept and saved, early stopping, and a clean stop on Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use data::progress::{Progress, Unit};
use rng::{Rng, Stream};
use serde::{Deserialize, Serialize};

use crate::ema::Ema;
use crate::evaluate::{self, Evaluation};
use crate::examples::Examples;
use crate::lookahead::{Lookahead, Pull};
use crate::network::{Network, TestTimeAugment};
use crate::schedule::Schedule;
use crate::step::{NonFinite, Stepper, Tally};

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
    /// The devices (autodiff) sharing each batch equally, the model's first (data parallelism);
    /// one trains on the model's device alone.
    pub devices: Vec<Device>,
    /// Validate and keep an exponential moving average of the weights with this decay per step,
    /// instead of the weights themselves.
    pub ema_decay: Option<f64>,
    /// BatchNorm shifts' learning rate as a multiple of the others', when not 1.
    pub shift_scale: Option<f64>,
    /// Pull the weights to their running average every few steps (airbench's Lookahead).
    pub lookahead: Option<Pull>,
}

/// Where a resumed stage stands: its best weights so far, the epoch they come from, and the
/// average of the weights (the moving average's or Lookahead's) when there is one.
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
    /// None without a validation split (`valid_size = 0`).
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
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
    Rng::new(rng::derive(seed, Stream::Epoch, epoch as u64)).next_u64()
}

/// The examples a stage trains and validates on.
pub struct Split<'a, I> {
    pub train: &'a dyn Examples<I>,
    pub valid: &'a dyn Examples<I>,
}

/// The best weights so far and the averages, beside the weights that train.
struct Kept<M> {
    best: M,
    best_epoch: Option<usize>,
    best_loss: f64,
    ema: Option<Ema<M>>,
    lookahead: Option<Lookahead<M>>,
}

/// Train `model` (on the first of `options.devices`, an autodiff device) and return the best
/// weights by val_loss.
pub fn fit<M: Network>(
    mut model: M,
    resumed: Option<Resumed<M>>,
    optimizer: &mut ModuleOptimizer,
    split: Split<'_, M::Input>,
    options: &FitOptions,
    observer: &mut dyn Observer<M>,
    interrupted: &AtomicBool,
) -> anyhow::Result<Outcome<M>> {
    let (best, best_epoch, resumed_ema) = match resumed {
        Some(resumed) => (resumed.best, resumed.best_epoch, resumed.ema),
        None => (model.valid(), None, None),
    };
    let average = || resumed_ema.clone().unwrap_or_else(|| model.valid());
    let ema = options.ema_decay.map(|decay| Ema::new(average(), decay));
    let total_steps = options.schedule.total_steps;
    let lookahead = options
        .lookahead
        .map(|pull| Lookahead::new(average(), pull, total_steps));
    let mut kept = Kept {
        best,
        best_epoch,
        best_loss: options.best_val_loss,
        ema,
        lookahead,
    };
    let stepper = Stepper::new(
        options.label_smoothing,
        options.shift_scale,
        &options.devices,
    );
    let epoch = Epoch {
        stepper: &stepper,
        train: split.train,
        options,
        interrupted,
    };
    let mut history = Vec::new();
    let mut stop = Stop::Completed;
    let last_epoch = options.first_epoch + options.epochs - 1;
    for number in options.first_epoch..=last_epoch {
        println!("Epoch {number}/{last_epoch}");
        let started = Instant::now();
        let (lr, tally);
        (model, lr, tally) =
            epoch
                .train(model, number, &mut kept, optimizer)
                .map_err(|(step, loss)| {
                    let saved = kept.best_epoch.is_some() || options.best_val_loss.is_finite();
                    not_finite(loss, number, step, saved)
                })?;
        if interrupted.load(Ordering::SeqCst) {
            println!("interrupted");
            stop = Stop::Interrupted;
            break;
        }
        let snapshot = match &kept.ema {
            Some(ema) => ema.snapshot(),
            None => model.valid(),
        };
        let metrics = measure(&snapshot, &split, number, started, lr, tally, options);
        // What the loop knows of the epoch's end; `end_epoch` adds what `kept` knows.
        let end = EpochEnd {
            model: &model,
            optimizer,
            ema: None,
            best_epoch: None,
            stop: (number == last_epoch).then_some(Stop::Completed),
        };
        let ended = kept.end_epoch(snapshot, &metrics, end, options.patience, observer)?;
        history.push(metrics);
        if ended == Some(Stop::EarlyStopping) {
            println!(
                "Epoch {number}: early stopping (no improvement in {} epochs)",
                options.patience
            );
            stop = Stop::EarlyStopping;
            break;
        }
    }
    Ok(Outcome {
        best: kept.best,
        best_epoch: kept.best_epoch,
        history,
        stop,
    })
}

/// The error of a loss that became NaN or infinite at `step` (from 0) of epoch `number`, saying
/// whether a checkpoint was `saved` before.
fn not_finite(
    NonFinite(loss): NonFinite,
    number: usize,
    step: usize,
    saved: bool,
) -> anyhow::Error {
    let checkpoint = if saved {
        "the best checkpoint so far is kept"
    } else {
        "no epoch had ended, so there is no checkpoint yet"
    };
    anyhow::anyhow!(
        "loss became {loss} at epoch {number}, step {}; lower optimizer.lr ({checkpoint})",
        step + 1
    )
}

/// Epoch `number`'s metrics: its training `tally` and the validation of `snapshot`, the weights
/// it ended with (or their moving average); printed as Keras prints them.
fn measure<M: Network>(
    snapshot: &M,
    split: &Split<'_, M::Input>,
    number: usize,
    started: Instant,
    lr: f64,
    tally: Tally,
    options: &FitOptions,
) -> EpochMetrics {
    let val = (!split.valid.is_empty()).then(|| {
        Evaluation::of(&evaluate::outputs(
            snapshot,
            split.valid,
            options.batch_size,
            &options.devices[0].clone().inner(),
            TestTimeAugment::default(),
        ))
    });
    let seen = tally.examples.max(1) as f64;
    let metrics = EpochMetrics {
        epoch: number,
        seconds: started.elapsed().as_secs_f64(),
        lr,
        loss: tally.loss_sum / seen,
        acc: tally.correct as f64 / seen,
        val_loss: val.map(|v| v.loss),
        val_acc: val.map(|v| v.acc),
    };
    let steps = split.train.len().div_ceil(options.batch_size);
    let validation = val.map_or_else(String::new, |v| {
        format!(" - val_loss: {:.4} - val_acc: {:.4}", v.loss, v.acc)
    });
    println!(
        "{steps}/{steps} - {:.0}s - loss: {:.4} - acc: {:.4}{validation}",
        metrics.seconds, metrics.loss, metrics.acc
    );
    metrics
}

/// What every epoch of a stage shares.
struct Epoch<'a, M: Network> {
    stepper: &'a Stepper<'a>,
    train: &'a dyn Examples<M::Input>,
    options: &'a FitOptions,
    interrupted: &'a AtomicBool,
}

impl<M: Network> Epoch<'_, M> {
    /// Epoch `number`'s steps over the shuffled training examples (until Ctrl-C); returns the
    /// weights, the last step's learning rate and what the steps measured, or the step (from 0)
    /// whose loss was not finite.
    fn train(
        &self,
        model: M,
        number: usize,
        kept: &mut Kept<M>,
        optimizer: &mut ModuleOptimizer,
    ) -> Result<(M, f64, Tally), (usize, NonFinite)> {
        let options = self.options;
        let model = model.for_epoch(number - options.stage_first_epoch);
        let seed = epoch_seed(options.seed, number);
        for (index, device) in options.devices.iter().enumerate() {
            device.seed(rng::derive(seed, Stream::Shard, index as u64));
        }
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        let steps_per_epoch = self.train.len().div_ceil(options.batch_size);
        let bar = Progress::new(
            format!("epoch {number}"),
            steps_per_epoch as u64,
            Unit::Items("steps"),
        );
        let mut total = Tally::default();
        let first_step = (number - options.stage_first_epoch) * steps_per_epoch;
        let mut lr = options.schedule.lr(first_step);
        let result = std::thread::scope(|scope| {
            let mut model = model;
            // The next batches are read and augmented on another thread while this one trains.
            let (sender, batches_ready) = std::sync::mpsc::sync_channel(2);
            let order = &order;
            scope.spawn(move || {
                for (step, indices) in order.chunks(options.batch_size).enumerate() {
                    let batch_seed = rng::derive(seed, Stream::Batch, step as u64 + 1);
                    let batch = self.stepper.batch(self.train, indices, batch_seed, number);
                    if sender.send(batch).is_err() {
                        break;
                    }
                }
            });
            for (step, shards) in batches_ready.into_iter().enumerate() {
                if self.interrupted.load(Ordering::SeqCst) {
                    break;
                }
                lr = options.schedule.lr(first_step + step);
                let ema = kept.ema.as_mut().map(|ema| (ema, first_step + step));
                let tally;
                (model, tally) = self
                    .stepper
                    .step(model, shards, optimizer, lr, ema)
                    .map_err(|loss| (step, loss))?;
                if let Some(lookahead) = &mut kept.lookahead {
                    model = lookahead.after_step(model, first_step + step);
                }
                total.loss_sum += tally.loss_sum;
                total.correct += tally.correct;
                total.examples += tally.examples;
                bar.inc(1);
                bar.set_message(format!(
                    "loss: {:.4} - acc: {:.4}",
                    total.loss_sum / total.examples as f64,
                    total.correct as f64 / total.examples as f64
                ));
            }
            Ok(model)
        });
        bar.finish();
        result.map(|model| (model, lr, total))
    }
}

impl<M: Network> Kept<M> {
    /// Keep `snapshot` (the weights validation measured) if it beat the best val_loss (or, with
    /// no validation split, as the last), report the epoch to `observer`, and say whether the stage ends here (`end.stop` says whether it
    /// was its last epoch).
    fn end_epoch(
        &mut self,
        snapshot: M,
        metrics: &EpochMetrics,
        end: EpochEnd<'_, M>,
        patience: usize,
        observer: &mut dyn Observer<M>,
    ) -> anyhow::Result<Option<Stop>> {
        let epoch = metrics.epoch;
        let Some(val_loss) = metrics.val_loss else {
            let path = observer.improved(&snapshot)?;
            println!(
                "no validation split: saving this epoch's model to {}",
                path.display()
            );
            self.best_epoch = Some(epoch);
            self.best = snapshot;
            let stop = end.stop;
            return self.report(metrics, end, stop, observer);
        };
        if val_loss < self.best_loss {
            let path = observer.improved(&snapshot)?;
            println!(
                "val_loss improved from {:.5} to {:.5}, saving model to {}",
                self.best_loss,
                val_loss,
                path.display()
            );
            self.best_loss = val_loss;
            self.best_epoch = Some(epoch);
            self.best = snapshot;
        } else {
            println!("val_loss did not improve from {:.5}", self.best_loss);
        }
        let early_stop =
            patience > 0 && self.best_epoch.is_some_and(|best| epoch - best >= patience);
        let stop = if early_stop {
            Some(Stop::EarlyStopping)
        } else {
            end.stop
        };
        self.report(metrics, end, stop, observer)
    }

    /// Tell `observer` the epoch ended (the stage with it where `stop` says so), with what is
    /// kept.
    fn report(
        &self,
        metrics: &EpochMetrics,
        end: EpochEnd<'_, M>,
        stop: Option<Stop>,
        observer: &mut dyn Observer<M>,
    ) -> anyhow::Result<Option<Stop>> {
        observer.epoch_done(
            metrics,
            EpochEnd {
                ema: self
                    .ema
                    .as_ref()
                    .or(self.lookahead.as_ref().map(|l| &l.average))
                    .map(|ema| &ema.model),
                best_epoch: self.best_epoch,
                stop,
                ..end
            },
        )?;
        Ok(stop)
    }
}
