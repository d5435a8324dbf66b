//! A whole training run from a config: the data and its split, the run directory, the devices,
//! then the recipe the network calls for — the images recipe ([`crate::images`]) for a network
//! trained from scratch, the transfer recipe ([`crate::transfer`]) for one with a pretrained
//! backbone — which trains its stages and finishes the run.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use data::source::Source;
use data::{Dataset, ImageSet};

use crate::config::{MatmulPrecision, TrainConfig};
use crate::finish::Summary;
use crate::fit::Stop;
use crate::placement::Placement;
use crate::resume;
use crate::run_dir::RunDir;
use crate::stage::{Progress, RunContext};

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

/// Hold out the seeded validation split: `(train, valid)`.
pub fn split(dataset: &Dataset, config: &TrainConfig) -> anyhow::Result<(ImageSet, ImageSet)> {
    let (train, valid) = split_indices(dataset.train.len(), config)?;
    Ok((dataset.train.select(&train), dataset.train.select(&valid)))
}

/// The indices of the training and validation images among `n`; an error, naming the counts,
/// when `valid_size` leaves either split empty (the validation split is meant to be empty when
/// `valid_size` is 0).
fn split_indices(n: usize, config: &TrainConfig) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    let (train, valid) = data::split::train_valid(n, config.valid_size, config.seed);
    anyhow::ensure!(
        !train.is_empty() && (!valid.is_empty() || config.valid_size == 0.0),
        "valid_size = {} of {n} training images leaves {} for training and {} for validation; each split needs images: set valid_size between {:.4} and {:.4}",
        config.valid_size,
        train.len(),
        valid.len(),
        0.5 / n as f64,
        (n as f64 - 0.5) / n as f64
    );
    Ok((train, valid))
}

/// The config's network described layer by layer, for the classes of its data.
pub fn summary(config: &TrainConfig) -> anyhow::Result<models::summary::Summary> {
    let dataset = load_data(config)?;
    let device = store::device::device();
    Ok(crate::describe::summarize(
        config,
        dataset.classes.len(),
        &device,
    ))
}

/// The learning-rate finder for the config's recipe over `steps` steps, its files written into
/// `output_dir` under `name`.
pub fn lr_find(
    config: &TrainConfig,
    name: &str,
    steps: usize,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let devices = store::device::devices(config.devices)?;
    let dataset = load_data(config)?;
    let placement = Placement::new(&devices);
    placement.main().seed(config.seed);
    let sweep = match config.model.pretrained() {
        Some(network) => {
            crate::transfer::lr_find(network, &dataset, config, &placement.devices, steps)?
        }
        None => crate::images::lr_find(&dataset, config, &placement.devices, steps)?,
    };
    crate::lr_find::report(&sweep, &config.output_dir, name)
}

/// Run the config's recipe, writing into a new run directory `<output_dir>/<name>-<n>`.
pub fn run(config: &TrainConfig, name: &str, interrupted: &AtomicBool) -> anyhow::Result<Summary> {
    let progress = Progress::start();
    let devices = store::device::devices(config.devices)?;
    let dataset = load_data(config)?;
    split_indices(dataset.train.len(), config)?;
    anyhow::ensure!(
        config.valid_size > 0.0 || dataset.test.is_some(),
        "valid_size = 0 trains on every training image and reports the test split, but the data{} has no test split; set valid_size above 0 (0.1 holds out a tenth)",
        config
            .data
            .dir
            .as_ref()
            .map_or_else(String::new, |dir| format!(" at {}", dir.display()))
    );
    let run = RunDir::create(&config.output_dir, name)?;
    if let Err(error) = run.write("config.toml", config.to_toml().as_bytes()) {
        // Nothing of the run exists yet (a full disk, say): leave no directory that cannot
        // be resumed.
        let _ = std::fs::remove_dir_all(&run.path);
        return Err(error);
    }
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
    let devices = store::device::devices(config.devices)?;
    let dataset = load_data(&config)?;
    train_in(&config, &dataset, &run, &devices, progress, interrupted)
}

fn train_in(
    config: &TrainConfig,
    dataset: &Dataset,
    run: &RunDir,
    devices: &[burn::prelude::Device],
    progress: Progress,
    interrupted: &AtomicBool,
) -> anyhow::Result<Summary> {
    let names: Vec<String> = devices.iter().map(store::device::describe).collect();
    println!("device: {}", names.join(", "));
    let precision = kernels::set_matmul_precision(config.matmul_precision.into());
    if config.matmul_precision == MatmulPrecision::Bfloat16 {
        match precision {
            kernels::Precision::Bfloat16 => println!("matrix products: bfloat16 on AMX tiles"),
            kernels::Precision::Float32 => println!(
                "matrix products: float32 (matmul_precision = \"bfloat16\" needs AMX tiles, which this CPU or system lacks)"
            ),
        }
    }
    let network = crate::describe::summarize(config, dataset.classes.len(), &devices[0]);
    print!("{}: {}", config.model.name(), network.totals());
    let placement = Placement::new(devices);
    placement.main().seed(config.seed);
    let context = RunContext {
        config,
        run,
        placement: &placement,
        interrupted,
        macs: network.macs,
    };
    match config.model.pretrained() {
        Some(network) => crate::transfer::run(network, dataset, progress, &context),
        None => crate::images::run(dataset, progress, &context),
    }
}
