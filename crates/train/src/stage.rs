//! A training stage of a run: a network, its examples and how it is saved, trained by the loop
//! ([`crate::fit`]) from scratch, within the time budget, or from where an interrupted run left
//! it; the run directory keeps the best weights, the metrics and the resume state as epochs end.
//! A run has one stage, or two (the transfer recipe's fine-tuning).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use burn::store::RecordError;
use store::checkpoint::{self, Manifest};

use crate::config::{OptimizerConfig, TrainConfig};
use crate::examples::Examples;
use crate::fit::{self, EpochEnd, EpochMetrics, FitOptions, Observer, Resumed, Split, Stop};
use crate::network::Network;
use crate::optimizer::optimizer;
use crate::placement::Placement;
use crate::planner::{self, Budget};
use crate::resume::{self, TrainingState};
use crate::run_dir::RunDir;
use crate::schedule::Schedule;
use crate::step::Stepper;

/// How a stage's network is saved as the run's classifier (`model.bpk`), and read back.
pub struct Saving<'a, M> {
    pub save: &'a dyn Fn(&M, &Path) -> Result<(), RecordError>,
    pub load: &'a dyn Fn(&Path) -> Result<M, RecordError>,
}

/// One training stage: a network, its examples, and how it is saved.
pub struct Stage<'a, M: Network> {
    pub model: M,
    pub train: &'a dyn Examples<M::Input>,
    pub valid: &'a dyn Examples<M::Input>,
    pub saving: Saving<'a, M>,
    pub epochs: usize,
    pub optimizer: OptimizerConfig,
}

/// What a run needs while its stages train.
pub struct RunContext<'a> {
    pub config: &'a TrainConfig,
    pub run: &'a RunDir,
    pub placement: &'a Placement,
    pub interrupted: &'a AtomicBool,
    /// The network's multiply-adds per image, one forward pass.
    pub macs: u64,
}

impl RunContext<'_> {
    /// Write the run's `model.json` and say what the network trains on (`input`: the images'
    /// size as the network sees them).
    pub fn write_manifest(
        &self,
        manifest: &Manifest,
        train: usize,
        valid: usize,
        input: &str,
    ) -> anyhow::Result<()> {
        self.run.write_json(checkpoint::MANIFEST, manifest)?;
        println!(
            "{train} training / {valid} validation images of {} classes, {input}",
            manifest.classes.len()
        );
        Ok(())
    }
}

/// The metrics of the stages so far, the best val_loss among them, and when the run started.
pub struct Progress {
    pub history: Vec<EpochMetrics>,
    pub best_epoch: Option<usize>,
    pub stop: Option<Stop>,
    /// The number of stages started.
    stages: usize,
    /// The state a resumed run continues from.
    resume: Option<TrainingState>,
    /// Seconds the run took in the processes before this one (interrupted, then resumed).
    seconds_before: f64,
    /// When this process started the run.
    started: Instant,
}

impl Progress {
    /// A run starting now.
    pub fn start() -> Self {
        Self {
            history: Vec::new(),
            best_epoch: None,
            stop: None,
            stages: 0,
            resume: None,
            seconds_before: 0.0,
            started: Instant::now(),
        }
    }

    /// A run continuing from `state`.
    pub fn resume(state: TrainingState) -> Self {
        Self {
            history: state.history.clone(),
            best_epoch: state.best_epoch,
            seconds_before: state.seconds,
            resume: Some(state),
            ..Self::start()
        }
    }

    /// Seconds the run has taken, in this process and those before it.
    pub fn seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }

    fn best_val_loss(&self) -> f64 {
        self.best_epoch
            .and_then(|e| self.history[e - 1].val_loss)
            .unwrap_or(f64::INFINITY)
    }
}

/// Saves the best weights, the metrics and the resume state into the run directory as the loop
/// reports them.
struct RunObserver<'a, M> {
    run: &'a RunDir,
    stage: usize,
    first_epoch: usize,
    earlier_best_epoch: Option<usize>,
    history: Vec<EpochMetrics>,
    save: &'a dyn Fn(&M, &Path) -> Result<(), RecordError>,
    /// The run's seconds before this process started it, and when it did.
    seconds_before: f64,
    started: Instant,
}

impl<M: Network> Observer<M> for RunObserver<'_, M> {
    fn improved(&mut self, model: &M) -> anyhow::Result<PathBuf> {
        let path = self.run.file(checkpoint::WEIGHTS);
        checkpoint::write_record(&path, "checkpoint", |partial| (self.save)(model, partial))?;
        Ok(path)
    }

    fn epoch_done(&mut self, metrics: &EpochMetrics, end: EpochEnd<'_, M>) -> anyhow::Result<()> {
        self.history.push(metrics.clone());
        self.run.write_metrics(&self.history)?;
        let state = TrainingState {
            stage: self.stage,
            stage_epochs: metrics.epoch + 1 - self.first_epoch,
            stage_stop: end.stop,
            best_epoch: end.best_epoch.or(self.earlier_best_epoch),
            history: self.history.clone(),
            seconds: self.seconds_before + self.started.elapsed().as_secs_f64(),
        };
        resume::save(&self.run.path, &state, end.model, end.optimizer, end.ema)
    }
}

/// The run's best checkpoint as this stage's network.
fn saved_best<M>(saving: &Saving<M>, run: &RunDir) -> anyhow::Result<M> {
    let path = run.file(checkpoint::WEIGHTS);
    (saving.load)(&path).with_context(|| {
        format!(
            "cannot load {} as this stage's network; delete the run's resume folder to restart it",
            path.display()
        )
    })
}

/// Where a stage starts: its weights, what a resumed stage had kept, its first epoch, and how
/// many epochs it trains.
struct Start<M> {
    model: M,
    resumed: Option<Resumed<M>>,
    first_epoch: usize,
    epochs: usize,
    optimizer: burn::optim::ModuleOptimizer,
}

/// Train one stage, continuing the epoch count and the best val_loss of `progress` (and, when
/// resuming, the saved state of this stage); returns the best weights (the given ones if no epoch
/// beat the earlier stages).
pub fn train_stage<M: Network>(
    stage: Stage<M>,
    progress: &mut Progress,
    context: &RunContext,
) -> anyhow::Result<M> {
    let RunContext {
        run, interrupted, ..
    } = *context;
    let index = progress.stages;
    progress.stages += 1;
    let saved = progress.resume.take_if(|state| state.stage >= index);
    let Stage {
        model,
        train,
        valid,
        saving,
        epochs,
        optimizer: optimizer_config,
    } = stage;
    let optimizer_config = optimizer_config.per_batch(context.config.batch_size);
    let plan = Plan {
        train,
        valid,
        epochs,
        optimizer: &optimizer_config,
    };
    let start = match saved {
        Some(state) if state.stage > index || state.stage_stop.is_some() => {
            println!(
                "resuming after epoch {}: training stage {} had ended",
                state.epoch(),
                index + 1
            );
            progress.stop = state.stage_stop.filter(|_| state.stage == index);
            if state.stage > index {
                progress.resume = Some(state);
            }
            return saved_best(&saving, run);
        }
        Some(state) => resume_stage(model, &plan, &saving, state, context)?,
        None => fresh_stage(model, &plan, index, progress, context)?,
    };
    let options = fit_options(&start, &plan, progress, context);
    let Start {
        model,
        resumed,
        first_epoch,
        mut optimizer,
        ..
    } = start;
    let mut observer = RunObserver {
        run,
        stage: index,
        first_epoch,
        earlier_best_epoch: progress.best_epoch,
        history: std::mem::take(&mut progress.history),
        save: saving.save,
        seconds_before: progress.seconds_before,
        started: progress.started,
    };
    let split = Split { train, valid };
    let outcome = fit::fit(
        model,
        resumed,
        &mut optimizer,
        split,
        &options,
        &mut observer,
        interrupted,
    )?;
    progress.history = observer.history;
    progress.best_epoch = outcome.best_epoch.or(progress.best_epoch);
    progress.stop = Some(outcome.stop);
    Ok(outcome.best)
}

/// How the loop trains a stage that starts at `start`, after the epochs of `progress`.
fn fit_options<M: Network>(
    start: &Start<M>,
    plan: &Plan<M::Input>,
    progress: &Progress,
    context: &RunContext,
) -> FitOptions {
    let config = context.config;
    let steps_per_epoch = plan.train.len().div_ceil(config.batch_size);
    let stage_epochs = start.epochs + progress.history.len() + 1 - start.first_epoch;
    FitOptions {
        epochs: start.epochs,
        batch_size: config.batch_size,
        patience: config.early_stopping_patience,
        seed: config.seed,
        schedule: Schedule {
            config: config.schedule.clone(),
            base_lr: plan.optimizer.lr,
            steps_per_epoch,
            total_steps: stage_epochs * steps_per_epoch,
        },
        stage_first_epoch: start.first_epoch,
        label_smoothing: config.smoothing(),
        first_epoch: progress.history.len() + 1,
        best_val_loss: progress.best_val_loss(),
        devices: context.placement.devices.clone(),
        ema_decay: config.ema(),
        shift_scale: plan.optimizer.shift_scale(),
        lookahead: config.lookahead(),
    }
}

/// A stage's examples, length and optimizer.
struct Plan<'a, I> {
    train: &'a dyn Examples<I>,
    valid: &'a dyn Examples<I>,
    epochs: usize,
    optimizer: &'a OptimizerConfig,
}

/// A stage continuing from the state an interrupted run saved after one of its epochs.
fn resume_stage<M: Network>(
    model: M,
    plan: &Plan<M::Input>,
    saving: &Saving<M>,
    state: TrainingState,
    context: &RunContext,
) -> anyhow::Result<Start<M>> {
    let run = context.run;
    println!(
        "resuming after epoch {} from {}",
        state.epoch(),
        run.path.join(resume::DIR).display()
    );
    let (model, optimizer) =
        resume::load_training(&run.path, &state, model, optimizer(plan.optimizer))?;
    let stage_best = state
        .best_epoch
        .filter(|&epoch| epoch >= state.stage_first_epoch());
    let ema = context
        .config
        .keeps_average()
        .then(|| resume::load_ema(&run.path, &state, model.valid()))
        .transpose()?;
    let resumed = Resumed {
        best: match state.best_epoch {
            Some(_) => saved_best(saving, run)?,
            None => model.valid(),
        },
        best_epoch: stage_best,
        ema,
    };
    Ok(Start {
        model,
        resumed: Some(resumed),
        first_epoch: state.stage_first_epoch(),
        epochs: plan.epochs.saturating_sub(state.stage_epochs),
        optimizer,
    })
}

/// A stage starting now: the first stage of a run with a time budget trains as many epochs as
/// fit, and the run's `config.toml` is rewritten with that number so that `--resume` continues
/// the same schedule.
fn fresh_stage<M: Network>(
    model: M,
    plan: &Plan<M::Input>,
    index: usize,
    progress: &Progress,
    context: &RunContext,
) -> anyhow::Result<Start<M>> {
    let config = context.config;
    let epochs = match config.time_budget_minutes {
        Some(minutes) if index == 0 => {
            let budget = Budget {
                minutes,
                elapsed: progress.seconds(),
                epochs: plan.epochs,
                batch_size: config.batch_size,
                final_passes: config.test_time_augment().passes(),
            };
            let stepper = Stepper::new(
                config.smoothing(),
                plan.optimizer.shift_scale(),
                &context.placement.devices,
            );
            let epochs = planner::affordable_epochs(
                &model,
                optimizer(plan.optimizer),
                plan.train,
                plan.valid.len(),
                &stepper,
                config.ema(),
                &budget,
            );
            let mut planned = config.clone();
            planned.epochs = epochs;
            context
                .run
                .write("config.toml", planned.to_toml().as_bytes())?;
            epochs
        }
        _ => plan.epochs,
    };
    Ok(Start {
        model,
        resumed: None,
        first_epoch: progress.history.len() + 1,
        epochs,
        optimizer: optimizer(plan.optimizer),
    })
}
