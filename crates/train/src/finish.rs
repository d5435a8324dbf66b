//! The end of a run: the best weights evaluated on the test split (or validation, with the
//! config's test-time views), `summary.json`, and the run's pictures.

use std::path::PathBuf;

use data::{Dataset, ImageSet};
use serde::Serialize;

use crate::evaluate::{self, ByClass, Evaluation};
use crate::examples::Examples;
use crate::fit::Stop;
use crate::network::Network;
use crate::resume;
use crate::run_dir;
use crate::stage::{Progress, RunContext};

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
    /// The network's multiply-adds per image, one forward pass.
    pub macs_per_image: u64,
    /// The arithmetic the epochs spent, counted as 6 FLOP per multiply-add per training image
    /// (forward, and backward twice that), so runs compare apart from the machine; none for the
    /// transfer recipe, whose frozen part runs once per image, not per epoch.
    pub training_pflop: Option<f64>,
}

/// The images of a run: the dataset and its training/validation split.
pub struct Splits<'a> {
    pub dataset: &'a Dataset,
    pub train: &'a ImageSet,
    pub valid: &'a ImageSet,
}

/// The network's view of the validation and (where the dataset has one) test images.
pub struct Evaluated<'a, I> {
    pub valid: &'a dyn Examples<I>,
    pub test: Option<&'a dyn Examples<I>>,
}

/// Evaluate the best weights on the test split (or validation), write `summary.json` and draw
/// the run's pictures.
pub fn finish<M: Network>(
    best: &M,
    sets: Evaluated<'_, M::Input>,
    splits: &Splits,
    progress: &Progress,
    context: &RunContext,
) -> anyhow::Result<Summary> {
    let RunContext { config, run, .. } = *context;
    let eval_device = context.placement.main().clone().inner();
    let (evaluated_on, examples, pictures) = match (sets.test, &splits.dataset.test) {
        (Some(test), Some(pictures)) => ("test", test, pictures),
        _ => {
            println!("no test split: reporting the validation metrics of the best checkpoint");
            ("validation", sets.valid, splits.valid)
        }
    };
    let outputs = evaluate::outputs(
        best,
        examples,
        config.batch_size,
        &eval_device,
        config.test_time_augment(),
    );
    let Evaluation { loss, acc } = Evaluation::of(&outputs);
    let best_metrics = progress.best_epoch.map(|e| &progress.history[e - 1]);
    let summary = Summary {
        // Absolute, so that it names the run wherever `train` (or `--resume`) ran from.
        run_dir: std::path::absolute(&run.path).unwrap_or_else(|_| run.path.clone()),
        stop: progress.stop.unwrap_or(Stop::Completed),
        epochs_run: progress.history.len(),
        best_epoch: progress.best_epoch,
        evaluated_on,
        loss,
        accuracy: acc,
        best_val_loss: best_metrics.and_then(|m| m.val_loss),
        best_val_acc: best_metrics.and_then(|m| m.val_acc),
        train_images: splits.train.len(),
        valid_images: splits.valid.len(),
        skipped_images: splits.dataset.skipped.len(),
        seconds: progress.seconds(),
        peak_memory_mib: run_dir::peak_memory_mib(),
        macs_per_image: context.macs,
        training_pflop: config.model.pretrained().is_none().then(|| {
            6.0 * context.macs as f64 * (splits.train.len() * progress.history.len()) as f64 / 1e15
        }),
    };
    println!("{evaluated_on} loss: {loss:.4}");
    println!("{evaluated_on} accuracy: {acc:.4}");
    // The pictures and the report before `summary.json`, which marks the run finished: a run
    // killed while drawing them has no summary yet, so `--resume` finishes it again.
    let by_class = ByClass::of(&outputs, &splits.dataset.classes);
    let drawn = crate::report::draw(
        run,
        &progress.history,
        &splits.dataset.classes,
        &by_class.confusion,
        pictures,
        &outputs,
        &format!("{evaluated_on} split"),
    )?;
    let captions = ["Learning curves", "Confusion matrix", "Worst mistakes"];
    let pictures: Vec<(&str, Vec<u8>)> = captions
        .into_iter()
        .zip(drawn.iter().map(|(_, png)| png.clone()))
        .collect();
    for (path, _) in &drawn {
        println!("saved {}", path.display());
    }
    let title = format!(
        "{} — {}",
        run.path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        config.model.name()
    );
    let page = crate::html::render(&crate::html::Page {
        title: &title,
        config: &config.to_toml(),
        summary: &summary,
        history: &progress.history,
        by_class: &by_class,
        pictures: &pictures,
    });
    println!(
        "saved {}",
        run.write("report.html", page.as_bytes())?.display()
    );
    run.write_json("summary.json", &summary)?;
    if summary.stop != Stop::Interrupted {
        resume::clear(&run.path)?;
    }
    Ok(summary)
}
