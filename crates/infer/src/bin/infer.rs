use std::path::PathBuf;

use clap::Parser;
use infer::predict::Predictor;
use train::pretrained;

/// Classify images with the pretrained EfficientNet-Lite0 (ImageNet classes) or a model `train`
/// saved.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Image files (JPEG, PNG, BMP, WebP; any size); all are classified as one batch.
    images: Vec<PathBuf>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Print one JSON array with an object per image instead of text.
    #[arg(long)]
    json: bool,
    /// Use the model of a `train` run directory instead of the ImageNet network.
    #[arg(long, value_name = "RUN_DIR")]
    checkpoint: Option<PathBuf>,
    /// EfficientNet-Lite0 weights to use instead of the cached copy.
    #[arg(long, value_name = "PATH", conflicts_with = "checkpoint")]
    weights: Option<PathBuf>,
    /// Fetch the EfficientNet-Lite0 weights into the cache and exit.
    #[arg(long)]
    fetch_weights: bool,
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
    let cache = data::fetch::cache_dir();
    if args.fetch_weights {
        let path = pretrained::fetch(&cache)?;
        println!("weights ready at {}", path.display());
        return Ok(());
    }
    anyhow::ensure!(
        !args.images.is_empty(),
        "no images given; usage: infer IMAGE… (see --help)"
    );
    let device = train::device::device();
    eprintln!("backend: {}", train::device::backend_name());
    let predictor = match (&args.checkpoint, &args.weights) {
        (Some(run), _) => Predictor::from_run(run, &device)?,
        (None, weights) => {
            let path = match weights {
                Some(path) => path.clone(),
                None => {
                    let path = pretrained::fetch(&cache)?;
                    pretrained::verify(&path)?;
                    path
                }
            };
            let (predictor, report) = Predictor::imagenet(&path, &device)?;
            eprintln!(
                "loaded {} tensors from {} ({} BatchNorm counters not needed)",
                report.loaded,
                path.display(),
                report.ignored
            );
            predictor
        }
    };
    let predictions = predictor.predict(&args.images, args.top, &device)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&predictions)?);
        return Ok(());
    }
    for prediction in &predictions {
        println!("{}", prediction.image.display());
        for ranked in &prediction.predictions {
            println!("  {}: {:.2}%", ranked.label, 100.0 * ranked.probability);
        }
    }
    Ok(())
}
