use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Parser, Subcommand};
use train::config::TrainConfig;
use train::fit::Stop;

/// Train a convnet from a config file; evaluate or export what a run saved.
#[derive(Parser)]
#[command(
    version,
    about,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  train --config configs/cifar.toml                          the tutorial's convnet on CIFAR-10
  train --config configs/cifar-fast.toml --time-budget 10m   the most accuracy in 10 minutes
  train --config configs/cifar.toml --set data.dir=pictures  your own class folders
  train --config configs/cifar.toml --summary                layers, shapes, parameters, MACs
  train --config configs/cifar.toml --lr-find                which learning rate to train at
  train --resume runs/cifar-1                                continue an interrupted run
  train evaluate runs/cifar-1 --data labelled/               class by class, on your images
  train export runs/cifar-1 --safetensors cifar.safetensors  the model for PyTorch

Downloads (CIFAR-10, pretrained weights) and unpacked archives are cached in $CONVKIT_CACHE,
else $XDG_CACHE_HOME/convkit, else ~/.cache/convkit."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The TOML config (see configs/cifar.toml for every key).
    #[arg(long, required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Override a config key, e.g. --set epochs=5 --set optimizer.lr=0.0005 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", conflicts_with = "resume")]
    overrides: Vec<String>,
    /// Fit the run into this much wall time, e.g. 30m, 1h, 90s (sets time_budget_minutes).
    #[arg(long, value_name = "DURATION", value_parser = minutes, conflicts_with = "resume")]
    time_budget: Option<f64>,
    /// Train on this many devices together, each taking a share of every batch (sets devices).
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    devices: Option<usize>,
    /// Sweep the learning rate on a new copy of the network (no run is made): writes
    /// <output_dir>/<name>-lr-find.png and .csv and prints a suggested rate.
    #[arg(long, conflicts_with_all = ["resume", "summary"])]
    lr_find: bool,
    /// Steps of the --lr-find sweep.
    #[arg(long, value_name = "N", default_value_t = train::lr_find::STEPS as u32, requires = "lr_find", value_parser = clap::value_parser!(u32).range(2..))]
    lr_find_steps: u32,
    /// Print the network's layers (output shapes, parameters, multiply-adds) and exit.
    #[arg(long, conflicts_with = "resume")]
    summary: bool,
    /// Continue an interrupted run (its directory, e.g. runs/cifar-1) from its last completed
    /// epoch, with the config it was started with.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    resume: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate a run's model: loss, accuracy, precision/recall/F1 per class, the pairs most
    /// confused; writes confusion.png, mistakes.png and metrics.json.
    Evaluate {
        /// The run directory (e.g. runs/cifar-1).
        run_dir: PathBuf,
        /// A labelled folder <class>/<image> to evaluate on (class names from the run; some may
        /// be missing); default: the run's test split, else its validation split.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Average each image's prediction over the test-time views (flips, shifts) of the run's
        /// config.
        #[arg(long)]
        tta: bool,
        /// Where the pictures and metrics.json go (default: RUN_DIR/evaluation).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Write a run's model as SafeTensors with the key names of its PyTorch twin in
    /// scripts/convkit_torch.py.
    Export {
        /// The run directory (e.g. runs/cifar-1).
        run_dir: PathBuf,
        /// The SafeTensors file to write.
        #[arg(long, value_name = "FILE")]
        safetensors: PathBuf,
    },
}

/// `30m`, `1h`, `90s` or a plain number of minutes, in minutes.
fn minutes(text: &str) -> Result<f64, String> {
    let (number, per_minute) = match text.trim().char_indices().last() {
        Some((i, 'h')) => (&text[..i], 60.0),
        Some((i, 'm')) => (&text[..i], 1.0),
        Some((i, 's')) => (&text[..i], 1.0 / 60.0),
        _ => (text, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n * per_minute),
        Ok(_) => Err(format!("{text:?}: the time budget must be more than 0")),
        Err(_) => Err(format!("{text:?} is not a duration like 30m, 1h or 90s")),
    }
}

fn subcommand(command: &Command) -> anyhow::Result<Stop> {
    match command {
        Command::Evaluate {
            run_dir,
            data,
            tta,
            out,
        } => {
            let target = match data {
                Some(dir) => train::assess::Target::Folder(dir),
                None => train::assess::Target::OwnSplit,
            };
            let out = out.clone().unwrap_or_else(|| run_dir.join("evaluation"));
            train::assess::assess(run_dir, target, *tta, &out)?;
        }
        Command::Export {
            run_dir,
            safetensors,
        } => {
            let device = store::device::device();
            let (classifier, _) = store::checkpoint::load(run_dir, &device)?;
            let tensors = store::export::safetensors(&classifier, safetensors)?;
            println!(
                "wrote {tensors} tensors to {}; in PyTorch: python scripts/convkit_torch.py {} {}",
                safetensors.display(),
                run_dir.display(),
                safetensors.display()
            );
        }
    }
    Ok(Stop::Completed)
}

/// The exit status of a run stopped by Ctrl-C (after it saved everything), as shells report an
/// interrupted command.
const INTERRUPTED: u8 = 130;

fn main() -> std::process::ExitCode {
    store::allocator::keep_freed_memory();
    match run() {
        Ok(Stop::Interrupted) => std::process::ExitCode::from(INTERRUPTED),
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<Stop> {
    let args = Args::parse();
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(INTERRUPTED.into());
        }
        eprintln!("\nstopping after this step (Ctrl-C again to quit at once)");
    })
    .context("cannot install the Ctrl-C handler")?;
    println!("backend: {}", store::device::backend_name());
    if let Some(command) = &args.command {
        return subcommand(command);
    }
    let summary = match (&args.resume, &args.config) {
        (Some(run_dir), _) => train::run::resume(run_dir, &interrupted)?,
        (None, Some(path)) => {
            // The flags are overrides like --set, so the config's checks see them.
            let mut overrides = args.overrides.clone();
            if let Some(minutes) = args.time_budget {
                overrides.push(format!("time_budget_minutes={minutes}"));
            }
            if let Some(devices) = args.devices {
                overrides.push(format!("devices={devices}"));
            }
            let config = TrainConfig::load(path, &overrides)?;
            if args.summary {
                print!("{}", train::run::summary(&config)?.table());
                return Ok(Stop::Completed);
            }
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            if args.lr_find {
                for path in train::run::lr_find(&config, &name, args.lr_find_steps as usize)? {
                    println!("saved {}", path.display());
                }
                return Ok(Stop::Completed);
            }
            train::run::run(&config, &name, &interrupted)?
        }
        (None, None) => unreachable!("clap requires --config without --resume"),
    };
    let arithmetic = summary
        .training_pflop
        .map_or_else(String::new, |pflop| format!(" ({pflop:.3} PFLOP)"));
    println!(
        "{} epochs in {:.0}s{arithmetic}; run saved to {}",
        summary.epochs_run,
        summary.seconds,
        summary.run_dir.display()
    );
    Ok(summary.stop)
}
