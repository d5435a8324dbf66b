use std::path::PathBuf;

use anyhow::Context;
use burn::prelude::Device;
use clap::Parser;
use data::progress::{Progress, Unit};
use infer::predict::{Prediction, Predictor};
use infer::visualize;
use models::ImageClassifier;
use models::efficientnet::Lite;
use store::pretrained;

/// Classify images with a pretrained EfficientNet-Lite (ImageNet classes) or a model `train`
/// saved.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Examples:
  infer koala.jpg                                    top-3 ImageNet classes (EfficientNet-Lite0)
  infer --model efficientnet_lite2 --top 5 a.jpg b.png
  infer --checkpoint runs/cifar-1 photos/ --csv > predictions.csv
                                                     a folder, with a model `train` saved
  infer koala.jpg --activations act.png --explain why.png

The weights are fetched once into $CONVKIT_CACHE (else $XDG_CACHE_HOME/convkit, else
~/.cache/convkit) and checked by SHA-256; offline, pass --weights PATH."
)]
struct Args {
    /// Image files (JPEG, PNG, BMP, WebP; any size) and folders, searched recursively for
    /// images; a file that cannot be read is reported and skipped (the exit status is then 1).
    images: Vec<PathBuf>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    top: u16,
    /// Images classified together; memory grows with it, not with the number of images.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Print one JSON array with an object per image instead of text.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV instead of text: the path, then the label and probability of each of the top
    /// classes.
    #[arg(long)]
    csv: bool,
    /// Use the model of a `train` run directory instead of the ImageNet network.
    #[arg(long, value_name = "RUN_DIR")]
    checkpoint: Option<PathBuf>,
    /// The ImageNet network: efficientnet_lite0 (224x224), efficientnet_lite1 (240) or
    /// efficientnet_lite2 (260).
    #[arg(long, default_value = "efficientnet_lite0", value_parser = lite, conflicts_with = "checkpoint")]
    model: Lite,
    /// Weights of the --model network to use instead of the cached copy.
    #[arg(long, value_name = "PATH", conflicts_with = "checkpoint")]
    weights: Option<PathBuf>,
    /// Fetch the --model network's weights into the cache and exit.
    #[arg(long)]
    fetch_weights: bool,
    /// Print the layers whose maps --activations can draw, with their shapes for the first image.
    #[arg(long)]
    list_layers: bool,
    /// Draw the first image's feature maps, one row per layer, to this PNG.
    #[arg(long, value_name = "PNG")]
    activations: Option<PathBuf>,
    /// Layers for --activations, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    layers: Vec<String>,
    /// Channel maps per layer for --activations.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    channels: u16,
    /// Draw the first convolution's filters to this PNG.
    #[arg(long, value_name = "PNG")]
    kernels: Option<PathBuf>,
    /// Draw Grad-CAM and occlusion sensitivity for the first image to this PNG.
    #[arg(long, value_name = "PNG")]
    explain: Option<PathBuf>,
    /// Class to explain (a label); default: the predicted class.
    #[arg(long, value_name = "NAME", requires = "explain")]
    class: Option<String>,
}

/// A member of the EfficientNet-Lite family by its name.
fn lite(name: &str) -> Result<Lite, String> {
    Lite::ALL
        .into_iter()
        .find(|lite| lite.name() == name)
        .ok_or_else(|| {
            let names: Vec<_> = Lite::ALL.iter().map(|lite| lite.name()).collect();
            format!("{name:?} is not one of {}", names.join(", "))
        })
}

fn main() -> std::process::ExitCode {
    store::allocator::keep_freed_memory();
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
        let path = pretrained::fetch(&cache, args.model)?;
        println!("weights ready at {}", path.display());
        return Ok(());
    }
    anyhow::ensure!(
        !args.images.is_empty(),
        "no images given; usage: infer IMAGE… (see --help)"
    );
    let device = store::device::device();
    eprintln!(
        "backend: {} on {}",
        store::device::backend_name(),
        store::device::describe(&device)
    );
    match &args.checkpoint {
        Some(run) => classify(&args, &Predictor::from_run(run, &device)?, &device),
        None => {
            let path = match &args.weights {
                Some(path) => path.clone(),
                None => pretrained::fetch(&cache, args.model)?,
            };
            let (predictor, report) = Predictor::imagenet(args.model, &path, &device)?;
            eprintln!(
                "loaded {} tensors from {} ({} BatchNorm counters not needed)",
                report.loaded,
                path.display(),
                report.ignored
            );
            classify(&args, &predictor, &device)
        }
    }
}

/// Print the predictions for the images, a batch at a time, and draw the pictures asked for of
/// the first one read.
fn classify(
    args: &Args,
    predictor: &Predictor<impl ImageClassifier>,
    device: &Device,
) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for path in &args.images {
        files.extend(
            data::folder::image_files(path)
                .with_context(|| format!("cannot list the images in {}", path.display()))?,
        );
    }
    anyhow::ensure!(
        !files.is_empty(),
        "no image files (png, jpg, jpeg, bmp, webp) in {}",
        args.images
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let batch_size = args.batch_size as usize;
    let progress = (files.len() > 4 * batch_size)
        .then(|| Progress::new("classifying", files.len() as u64, Unit::Items("images")));
    let mut output = Output::new(args)?;
    let mut first = None;
    let mut skipped = 0;
    for chunk in files.chunks(batch_size) {
        let (predictions, unreadable) = predictor.predict(chunk, args.top.into(), device)?;
        for file in &unreadable {
            eprintln!("skipped: {:#}", file.error);
        }
        skipped += unreadable.len();
        if first.is_none() {
            first = predictions
                .first()
                .map(|p| (p.image.clone(), p.predictions[0].index));
        }
        output.write(&predictions)?;
        if let Some(progress) = &progress {
            progress.inc(chunk.len() as u64);
        }
    }
    if let Some(progress) = &progress {
        progress.finish();
    }
    output.finish()?;
    let Some((image, predicted)) = first else {
        anyhow::bail!(
            "none of the {} image files could be read (each is named above)",
            files.len()
        );
    };
    draw(args, predictor, &image, predicted, device)?;
    anyhow::ensure!(
        skipped == 0,
        "{skipped} of {} image files could not be read and were skipped (each is named above); the others were classified",
        files.len()
    );
    Ok(())
}

/// Where the predictions go: text, a JSON array (written at the end) or CSV rows.
enum Output {
    Text,
    Json(Vec<Prediction>),
    Csv {
        writer: Box<csv::Writer<std::io::Stdout>>,
        top: usize,
        header: bool,
    },
}

impl Output {
    fn new(args: &Args) -> anyhow::Result<Self> {
        Ok(if args.json {
            Output::Json(Vec::new())
        } else if args.csv {
            Output::Csv {
                writer: Box::new(csv::Writer::from_writer(std::io::stdout())),
                top: args.top.into(),
                header: false,
            }
        } else {
            Output::Text
        })
    }

    fn write(&mut self, predictions: &[Prediction]) -> anyhow::Result<()> {
        match self {
            Output::Text => {
                for prediction in predictions {
                    println!("{}", prediction.image.display());
                    for ranked in &prediction.predictions {
                        println!("  {}: {:.2}%", ranked.label, 100.0 * ranked.probability);
                    }
                }
            }
            Output::Json(all) => all.extend_from_slice(predictions),
            Output::Csv {
                writer,
                top,
                header,
            } => {
                let Some(first) = predictions.first() else {
                    return Ok(());
                };
                if !*header {
                    let ranks = first.predictions.len().min(*top);
                    let mut names = vec!["path".to_string()];
                    for rank in 1..=ranks {
                        names.push(format!("label_{rank}"));
                        names.push(format!("probability_{rank}"));
                    }
                    writer.write_record(&names)?;
                    *header = true;
                }
                for prediction in predictions {
                    let mut record = vec![prediction.image.display().to_string()];
                    for ranked in &prediction.predictions {
                        record.push(ranked.label.clone());
                        record.push(ranked.probability.to_string());
                    }
                    writer.write_record(&record)?;
                }
                writer.flush()?;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        if let Output::Json(all) = self {
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Ok(())
    }
}

/// The pictures asked for, of `image` (predicted as class `predicted`).
fn draw(
    args: &Args,
    predictor: &Predictor<impl ImageClassifier>,
    image: &std::path::Path,
    predicted: usize,
    device: &Device,
) -> anyhow::Result<()> {
    let wanted = args.list_layers
        || args.activations.is_some()
        || args.kernels.is_some()
        || args.explain.is_some();
    if !wanted {
        return Ok(());
    }
    let image = predictor.read_image(image)?;
    if args.list_layers {
        for (layer, shape) in visualize::layer_shapes(predictor, &image, device) {
            eprintln!("{layer} {shape:?}");
        }
    }
    if let Some(path) = &args.activations {
        let grid = visualize::activations(
            predictor,
            &image,
            &args.layers,
            args.channels.into(),
            device,
        )?;
        save(&grid.canvas, path, "activations")?;
    }
    if let Some(path) = &args.kernels {
        save(&visualize::kernels(predictor), path, "filters")?;
    }
    if let Some(path) = &args.explain {
        let class = match &args.class {
            Some(name) => predictor
                .labels
                .iter()
                .position(|l| l == name)
                .with_context(|| {
                    format!("no class named {name}; the classes are the labels printed by infer")
                })?,
            None => predicted,
        };
        save(
            &visualize::explain(predictor, &image, class, device),
            path,
            "explanation",
        )?;
    }
    Ok(())
}

fn save(canvas: &viz::Canvas, path: &std::path::Path, what: &str) -> anyhow::Result<()> {
    data::fetch::write_atomic(path, &canvas.png())?;
    eprintln!("{what} saved to {}", path.display());
    Ok(())
}
