//! A whole training run from a config: data, split, normalization, network, optimizer, the loop,
//! the final evaluation of the best weights, and the run directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use data::augment::Augment;
use data::normalize::Normalization;
use data::source::Source;
use data::{Dataset, ImageSet};
use models::convnet::{ConvNet, ConvNetConfig};
use models::fastnet::{FastNet, FastNetConfig};
use serde::Serialize;

use crate::checkpoint::{self, Architecture, Classifier, Manifest};
use crate::config::{ModelConfig, ModelName, OptimizerConfig, OptimizerName, TrainConfig};
use crate::device::Placement;
use crate::fit::{self, EpochEnd, EpochMetrics, Evaluation, FitOptions, Observer, Resumed, Stop};
use crate::network::{Examples, Images, Network};
use crate::resume::{self, TrainingState};
use crate::run::{self, RunDir};
use crate::schedule::Schedule;

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_dir: PathBuf,
    pub stop: Stop,
    pub epochs_run: usize,
    pub best_epoch: Option<usize>,
    /// Which split the final metrics come from: "test", or "validation" when there is none.
    pub evaluated_on: &'static str,
    pub loss: f64,
    pub accuracy: f64,
    pub best_val_loss: Option<f64>,
    pub best_val_acc: Option<f64>,
    pub train_images: usize,
    pub valid_images: usize,
    pub skipped_images: usize,
    pub seconds: f64,
    pub peak_memory_mib: Option<f64>,
}

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

/// Load the data the config names.
pub fn load_data(config: &TrainConfig) -> anyhow::Result<Dataset> {
    let source = Source {
        dir: config.data.dir.clone(),
        url: config.data.url.clone(),
        md5: config.data.md5.clone(),
        cache: config.data.cache(),
        image_size: config.data.image_size,
        skip_broken: config.data.skip_broken_images,
    };
    let dataset = data::source::load(&source)?;
    if !dataset.skipped.is_empty() {
        println!(
            "skipped {} images that could not be decoded",
            dataset.skipped.len()
        );
    }
    Ok(dataset)
}

/// Saves the best weights, the metrics and the resume state into the run directory as the loop
/// reports them.
struct RunObserver<'a, M> {
    run: &'a RunDir,
    stage: usize,
    first_epoch: usize,
    earlier_best_epoch: Option<usize>,
    history: Vec<EpochMetrics>,
    to_classifier: &'a dyn Fn(&M) -> Classifier,
}

impl<M: Network> Observer<M> for RunObserver<'_, M> {
    fn improved(&mut self, model: &M) -> anyhow::Result<PathBuf> {
        checkpoint::save_weights((self.to_classifier)(model), &self.run.path)
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
        };
        resume::save(&self.run.path, &state, end.model, end.optimizer, end.ema)
    }
}

/// One training stage: a network, its examples, and how it becomes a saved classifier and back.
pub struct Stage<'a, M: Network> {
    pub model: M,
    pub train: &'a dyn Examples<M::Input>,
    pub valid: &'a dyn Examples<M::Input>,
    pub to_classifier: &'a dyn Fn(&M) -> Classifier,
    /// This stage's network inside a saved classifier (`None`: another architecture).
    pub from_classifier: &'a dyn Fn(Classifier) -> Option<M>,
    pub epochs: usize,
    pub optimizer: OptimizerConfig,
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
            started: Instant::now(),
        }
    }

    /// A run continuing from `state`.
    pub fn resume(state: TrainingState) -> Self {
        Self {
            history: state.history.clone(),
            best_epoch: state.best_epoch,
            resume: Some(state),
            ..Self::start()
        }
    }

    fn best_val_loss(&self) -> f64 {
        self.best_epoch
            .map_or(f64::INFINITY, |e| self.history[e - 1].val_loss)
    }
}

/// How many epochs (at most the stage's) fit in what is left of `minutes` since the run started,
/// from the speed of a few training steps; the run's `config.toml` is rewritten with that number
/// so that `--resume` continues the same schedule.
fn affordable_epochs<M: Network>(
    stage: &Stage<M>,
    minutes: f64,
    config: &TrainConfig,
    progress: &Progress,
    run: &RunDir,
    device: &Device,
) -> anyhow::Result<usize> {
    let step = fit::seconds_per_step(
        &stage.model,
        optimizer(&stage.optimizer),
        stage.train,
        config.batch_size,
        device,
        config.ema(),
    );
    let steps = stage.train.len().div_ceil(config.batch_size) as f64;
    // A forward pass costs about a third of a training step.
    let validation =
        steps * step / 3.0 * stage.valid.len() as f64 / stage.train.len().max(1) as f64;
    let epoch = steps * step + validation;
    // The final evaluation (one pass per test-time view) and the pictures.
    let passes = config.test_time_augment().passes() as f64;
    let left =
        minutes * 60.0 - progress.started.elapsed().as_secs_f64() - validation * (passes + 1.0);
    // The estimate was off by up to 3.5% either way in 30-minute runs here (83 s an epoch
    // planned, 84-86 s run): planned with this much to spare, the run ends inside its budget.
    const SPARE: f64 = 1.04;
    let epochs = ((left / (epoch * SPARE)).floor().max(1.0) as usize).min(stage.epochs);
    println!(
        "time budget {minutes} min: about {epoch:.0} s per epoch, {:.0} s left: training {epochs} epochs",
        left.max(0.0)
    );
    let mut planned = config.clone();
    planned.epochs = epochs;
    run.write("config.toml", planned.to_toml().as_bytes())?;
    Ok(epochs)
}

/// The run's best checkpoint as this stage's network.
fn saved_best<M: Network>(
    from_classifier: &dyn Fn(Classifier) -> Option<M>,
    run: &RunDir,
    device: &Device,
) -> anyhow::Result<M> {
    let (classifier, _) = checkpoint::load(&run.path, &device.clone().inner())?;
    from_classifier(classifier).with_context(|| {
        format!(
            "{} does not hold this stage's network; delete the run's resume folder to restart it",
            run.file(checkpoint::WEIGHTS).display()
        )
    })
}

/// Train one stage, continuing the epoch count and the best val_loss of `progress` (and, when
/// resuming, the saved state of this stage); returns the best weights (the given ones if no epoch
/// beat the earlier stages).
pub fn train_stage<M: Network>(
    stage: Stage<M>,
    config: &TrainConfig,
    run: &RunDir,
    progress: &mut Progress,
    placement: &Placement,
    interrupted: &AtomicBool,
) -> anyhow::Result<M> {
    let device = &placement.main;
    let index = progress.stages;
    progress.stages += 1;
    let saved = progress.resume.take_if(|state| state.stage >= index);
    let mut optimizer = optimizer(&stage.optimizer);
    let (model, resumed, stage_first_epoch, epochs) = match saved {
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
            return saved_best(stage.from_classifier, run, device);
        }
        Some(state) => {
            println!(
                "resuming after epoch {} from {}",
                state.epoch(),
                run.path.join(resume::DIR).display()
            );
            let model;
            (model, optimizer) = resume::load_training(&run.path, &state, stage.model, optimizer)?;
            let stage_best = state
                .best_epoch
                .filter(|&epoch| epoch >= state.stage_first_epoch());
            let ema = config
                .ema()
                .map(|_| resume::load_ema(&run.path, &state, model.valid()))
                .transpose()?;
            let resumed = Resumed {
                best: match state.best_epoch {
                    Some(_) => saved_best(stage.from_classifier, run, device)?,
                    None => model.valid(),
                },
                best_epoch: stage_best,
                ema,
            };
            let remaining = stage.epochs.saturating_sub(state.stage_epochs);
            (model, Some(resumed), state.stage_first_epoch(), remaining)
        }
        None => {
            let epochs = match config.time_budget_minutes {
                Some(minutes) if index == 0 => {
                    affordable_epochs(&stage, minutes, config, progress, run, device)?
                }
                _ => stage.epochs,
            };
            (stage.model, None, progress.history.len() + 1, epochs)
        }
    };
    let steps_per_epoch = stage.train.len().div_ceil(config.batch_size);
    let stage_epochs = epochs + progress.history.len() + 1 - stage_first_epoch;
    let options = FitOptions {
        epochs,
        batch_size: config.batch_size,
        patience: config.early_stopping_patience,
        seed: config.seed,
        schedule: Schedule {
            config: config.schedule.clone(),
            base_lr: stage.optimizer.lr,
            steps_per_epoch,
            total_steps: stage_epochs * steps_per_epoch,
        },
        stage_first_epoch,
        label_smoothing: (config.label_smoothing > 0.0).then_some(config.label_smoothing),
        first_epoch: progress.history.len() + 1,
        best_val_loss: progress.best_val_loss(),
        replicas: placement.replicas.clone(),
        ema_decay: config.ema(),
    };
    let mut observer = RunObserver {
        run,
        stage: index,
        first_epoch: stage_first_epoch,
        earlier_best_epoch: progress.best_epoch,
        history: std::mem::take(&mut progress.history),
        to_classifier: stage.to_classifier,
    };
    let outcome = fit::fit(
        model,
        resumed,
        &mut optimizer,
        stage.train,
        stage.valid,
        device,
        &options,
        &mut observer,
        interrupted,
    )?;
    progress.history = observer.history;
    progress.best_epoch = outcome.best_epoch.or(progress.best_epoch);
    progress.stop = Some(outcome.stop);
    Ok(outcome.best)
}

/// The images of a run: the dataset and its training/validation split.
pub struct Splits<'a> {
    pub dataset: &'a Dataset,
    pub train: &'a ImageSet,
    pub valid: &'a ImageSet,
}

/// Evaluate the best weights on the test split (or validation), draw the run's pictures and write
/// `summary.json`. `valid` and `test` are the network's view of `splits`' images.
#[allow(clippy::too_many_arguments)]
pub fn finish<M: Network>(
    best: &M,
    valid: &dyn Examples<M::Input>,
    test: Option<&dyn Examples<M::Input>>,
    splits: &Splits,
    progress: &Progress,
    config: &TrainConfig,
    run: &RunDir,
    device: &Device,
) -> anyhow::Result<Summary> {
    let eval_device = device.clone().inner();
    let (evaluated_on, examples, pictures) = match (test, &splits.dataset.test) {
        (Some(test), Some(pictures)) => ("test", test, pictures),
        _ => {
            println!("no test split: reporting the validation metrics of the best checkpoint");
            ("validation", valid, splits.valid)
        }
    };
    let outputs = fit::outputs(
        best,
        examples,
        config.batch_size,
        &eval_device,
        config.test_time_augment(),
    );
    let Evaluation { loss, acc } = Evaluation::of(&outputs);
    let best_metrics = progress.best_epoch.map(|e| &progress.history[e - 1]);
    let summary = Summary {
        run_dir: run.path.clone(),
        stop: progress.stop.unwrap_or(Stop::Completed),
        epochs_run: progress.history.len(),
        best_epoch: progress.best_epoch,
        evaluated_on,
        loss,
        accuracy: acc,
        best_val_loss: best_metrics.map(|m| m.val_loss),
        best_val_acc: best_metrics.map(|m| m.val_acc),
        train_images: splits.train.len(),
        valid_images: splits.valid.len(),
        skipped_images: splits.dataset.skipped.len(),
        seconds: progress.started.elapsed().as_secs_f64(),
        peak_memory_mib: run::peak_memory_mib(),
    };
    run.write_json("summary.json", &summary)?;
    if summary.stop != Stop::Interrupted {
        resume::clear(&run.path)?;
    }
    println!("{evaluated_on} loss: {loss:.4}");
    println!("{evaluated_on} accuracy: {acc:.4}");
    for path in crate::report::draw(
        run,
        &progress.history,
        &splits.dataset.classes,
        pictures,
        &outputs,
        evaluated_on,
    )? {
        println!("saved {}", path.display());
    }
    Ok(summary)
}

/// Hold out the validation split and compute the normalization from what remains.
pub fn split(dataset: &Dataset, config: &TrainConfig) -> (ImageSet, ImageSet) {
    let (train_idx, valid_idx) =
        data::split::train_valid(dataset.train.len(), config.valid_size, config.seed);
    (
        dataset.train.select(&train_idx),
        dataset.train.select(&valid_idx),
    )
}

/// Run the config's recipe, writing into a new run directory `<output_dir>/<name>-<n>`.
pub fn run(config: &TrainConfig, name: &str, interrupted: &AtomicBool) -> anyhow::Result<Summary> {
    let progress = Progress::start();
    let devices = crate::device::devices(config.devices)?;
    let dataset = load_data(config)?;
    let run = RunDir::create(&config.output_dir, name)?;
    run.write("config.toml", config.to_toml().as_bytes())?;
    train_in(config, &dataset, &run, &devices, progress, interrupted)
}

/// Continue the run in `run_dir` from its last completed epoch, with the config it was started
/// with; it ends as it would have without the interruption.
pub fn resume(run_dir: &Path, interrupted: &AtomicBool) -> anyhow::Result<Summary> {
    let run = RunDir::open(run_dir)?;
    let config = TrainConfig::load(&run.file("config.toml"), &[])?;
    let summary = run.file("summary.json");
    if let Ok(text) = std::fs::read_to_string(&summary) {
        let ended: Option<Stop> = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| serde_json::from_value(v["stop"].clone()).ok());
        anyhow::ensure!(
            ended == Some(Stop::Interrupted),
            "{} has finished ({}); start a new run to train more",
            run.path.display(),
            summary.display()
        );
    }
    let progress = match resume::load_state(&run.path)? {
        Some(state) => Progress::resume(state),
        None => {
            println!(
                "no epoch of {} completed: starting it again",
                run.path.display()
            );
            Progress::start()
        }
    };
    let devices = crate::device::devices(config.devices)?;
    let dataset = load_data(&config)?;
    train_in(&config, &dataset, &run, &devices, progress, interrupted)
}

fn train_in(
    config: &TrainConfig,
    dataset: &Dataset,
    run: &RunDir,
    devices: &[Device],
    progress: Progress,
    interrupted: &AtomicBool,
) -> anyhow::Result<Summary> {
    let names: Vec<String> = devices.iter().map(crate::device::describe).collect();
    println!("device: {}", names.join(", "));
    let placement = Placement::new(devices);
    placement.main.seed(config.seed);
    match config.model.name {
        ModelName::Convnet => run_convnet(config, dataset, run, &placement, progress, interrupted),
        ModelName::Fastnet => run_fastnet(config, dataset, run, &placement, progress, interrupted),
        ModelName::EfficientnetLite0 => {
            crate::transfer::run(config, dataset, run, &placement, progress, interrupted)
        }
    }
}

/// A network trained on the images themselves, and how it is saved.
struct ImageNetwork<M> {
    model: M,
    architecture: Architecture,
    to_classifier: fn(&M) -> Classifier,
    from_classifier: fn(Classifier) -> Option<M>,
}

/// Train the network `network` builds for the training split and its normalization.
fn run_images<M: Network<Input = Tensor<4>>>(
    config: &TrainConfig,
    dataset: &Dataset,
    network: impl FnOnce(&ImageSet, &Normalization) -> anyhow::Result<ImageNetwork<M>>,
    run: &RunDir,
    placement: &Placement,
    mut progress: Progress,
    interrupted: &AtomicBool,
) -> anyhow::Result<Summary> {
    let device = &placement.main;
    let (train, valid) = split(dataset, config);
    let norm = Normalization::per_pixel(&train);
    let network = network(&train, &norm)?;
    let manifest = Manifest {
        architecture: network.architecture,
        classes: dataset.classes.clone(),
        image_size: train.side,
        normalization: norm.clone(),
    };
    run.write_json(checkpoint::MANIFEST, &manifest)
        .context("cannot write the model manifest")?;
    println!(
        "{} training / {} validation images of {} classes, {}x{}",
        train.len(),
        valid.len(),
        manifest.classes.len(),
        train.side,
        train.side
    );
    let images = |set| Images {
        set,
        norm: &norm,
        augment: Augment::default(),
    };
    let train_examples = Images {
        augment: config.augment,
        ..images(&train)
    };
    let valid_examples = images(&valid);
    let best = train_stage(
        Stage {
            model: network.model,
            train: &train_examples,
            valid: &valid_examples,
            to_classifier: &network.to_classifier,
            from_classifier: &network.from_classifier,
            epochs: config.epochs,
            optimizer: config.optimizer.clone(),
        },
        config,
        run,
        &mut progress,
        placement,
        interrupted,
    )?;
    let test = dataset.test.as_ref().map(images);
    finish(
        &best,
        &valid_examples,
        test.as_ref().map(|t| t as &dyn Examples<Tensor<4>>),
        &Splits {
            dataset,
            train: &train,
            valid: &valid,
        },
        &progress,
        config,
        run,
        device,
    )
}

fn run_convnet(
    config: &TrainConfig,
    dataset: &Dataset,
    run: &RunDir,
    placement: &Placement,
    progress: Progress,
    interrupted: &AtomicBool,
) -> anyhow::Result<Summary> {
    let device = &placement.main;
    let network = |train: &ImageSet, _: &Normalization| {
        anyhow::ensure!(
            train.side >= ConvNetConfig::MIN_IMAGE_SIZE,
            "the convnet needs images of at least {0}x{0}; set data.image_size to {0} or more",
            ConvNetConfig::MIN_IMAGE_SIZE
        );
        Ok(ImageNetwork {
            model: ConvNetConfig::new()
                .with_num_classes(dataset.classes.len())
                .with_image_size(train.side)
                .init(device),
            architecture: Architecture::Convnet,
            to_classifier: |m: &ConvNet| Classifier::ConvNet(m.clone()),
            from_classifier: Classifier::into_convnet,
        })
    };
    run_images(
        config,
        dataset,
        network,
        run,
        placement,
        progress,
        interrupted,
    )
}

fn run_fastnet(
    config: &TrainConfig,
    dataset: &Dataset,
    run: &RunDir,
    placement: &Placement,
    progress: Progress,
    interrupted: &AtomicBool,
) -> anyhow::Result<Summary> {
    let device = &placement.main;
    let ModelConfig { widths, whiten, .. } = config.model;
    let network = |train: &ImageSet, norm: &Normalization| {
        anyhow::ensure!(
            train.side.is_multiple_of(8),
            "fastnet halves the image side three times; set data.image_size to a multiple of 8"
        );
        let mut model = FastNetConfig::new()
            .with_num_classes(dataset.classes.len())
            .with_widths(widths)
            .with_whiten(whiten)
            .init(device);
        if whiten {
            // airbench's sample size: the patch statistics settle well before 5,000 images.
            let sample: Vec<usize> = (0..train.len().min(5000)).collect();
            model = model.with_whitened_stem(data::batch::images(train, &sample, norm, device));
        }
        Ok(ImageNetwork {
            model,
            architecture: Architecture::Fastnet { widths, whiten },
            to_classifier: |m: &FastNet| Classifier::FastNet(m.clone()),
            from_classifier: Classifier::into_fastnet,
        })
    };
    run_images(
        config,
        dataset,
        network,
        run,
        placement,
        progress,
        interrupted,
    )
}
