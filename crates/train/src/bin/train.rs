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
    /// Continue an interrupted run (its directory, e.g. runs/cifar-1) from its last completed
    /// epoch, with the config it was started with.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    resume: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
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
            let config = TrainConfig::load(path, &args.overrides)?;
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
