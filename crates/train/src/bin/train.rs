use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Parser;
use train::config::TrainConfig;

/// Train a convnet from a config file.
#[derive(Parser)]
#[command(version, about)]
struct Args {
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
    /// Continue an interrupted run (its directory, e.g. runs/cifar-1) from its last completed
    /// epoch, with the config it was started with.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    resume: Option<PathBuf>,
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
        _ => Err(format!("{text:?} is not a duration like 30m, 1h or 90s")),
    }
}

fn main() -> std::process::ExitCode {
    train::allocator::keep_freed_memory();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (Ctrl-C again to quit at once)");
    })
    .context("cannot install the Ctrl-C handler")?;
    println!("backend: {}", train::device::backend_name());
    let summary = match (&args.resume, &args.config) {
        (Some(run_dir), _) => train::recipe::resume(run_dir, &interrupted)?,
        (None, Some(path)) => {
            let mut config = TrainConfig::load(path, &args.overrides)?;
            if args.time_budget.is_some() {
                config.time_budget_minutes = args.time_budget;
            }
            if let Some(devices) = args.devices {
                config.devices = devices;
            }
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            train::recipe::run(&config, &name, &interrupted)?
        }
        (None, None) => unreachable!("clap requires --config without --resume"),
    };
    println!(
        "{} epochs in {:.0}s; run saved to {}",
        summary.epochs_run,
        summary.seconds,
        summary.run_dir.display()
    );
    Ok(())
}
