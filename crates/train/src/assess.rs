//! `train evaluate`: a saved run's model on its own test split (or validation split, where the
//! data has no test split) or on a labelled folder — loss, accuracy, metrics per class, the pairs
//! most confused, `confusion.png`, `mistakes.png` and `metrics.json`.

use std::path::{Path, PathBuf};

use data::augment::Augment;
use serde::Serialize;
use store::checkpoint;

use crate::config::TrainConfig;
use crate::evaluate::{self, ByClass, Evaluation};
use crate::examples::Images;
use crate::network::TestTimeAugment;

/// How many confused pairs are printed (`metrics.json` has them all).
const PAIRS: usize = 10;

/// What to evaluate a run's model on.
pub enum Target<'a> {
    /// The run's own test split, or its validation split where the data has none.
    OwnSplit,
    /// A folder `<class>/<image>` whose classes are among the run's.
    Folder(&'a Path),
}

/// `metrics.json`.
#[derive(Debug, Serialize)]
pub struct Assessment {
    pub run_dir: PathBuf,
    /// The split or folder evaluated.
    pub evaluated_on: String,
    pub images: usize,
    pub skipped_images: usize,
    pub test_time_views: usize,
    pub loss: f64,
    pub accuracy: f64,
    #[serde(flatten)]
    pub by_class: ByClass,
}

/// Evaluate the model saved in `run_dir` on `target`, averaging over the config's test-time views
/// when `views` is set; print the results and write them into `out`.
pub fn assess(
    run_dir: &Path,
    target: Target,
    views: bool,
    out: &Path,
) -> anyhow::Result<Assessment> {
    let config = TrainConfig::load(&run_dir.join("config.toml"), &[])?;
    // The products as the run computed them, so that its reported accuracy repeats.
    kernels::set_matmul_precision(config.matmul_precision.into());
    let device = store::device::device();
    let (model, manifest) = checkpoint::load(run_dir, &device)?;
    let (set, evaluated_on, skipped) = match target {
        Target::OwnSplit => {
            let dataset = crate::run::load_data(&config)?;
            let skipped = dataset.skipped.len();
            match dataset.test {
                Some(test) => (test, "test split".to_string(), skipped),
                None => {
                    let (_, valid) = crate::run::split(&dataset, &config)?;
                    (valid, "validation split".to_string(), skipped)
                }
            }
        }
        Target::Folder(dir) => {
            let (set, skipped) =
                data::folder::load_labelled(dir, &manifest.classes, config.data.image_size, true)?;
            (set, dir.display().to_string(), skipped.len())
        }
    };
    let augment = if views {
        config.test_time_augment()
    } else {
        TestTimeAugment::default()
    };
    let examples = Images {
        set: &set,
        side: manifest.image_size,
        norm: &manifest.normalization,
        augment: Augment::default(),
    };
    let outputs = evaluate::outputs(&model, &examples, config.batch_size, &device, augment);
    let Evaluation { loss, acc } = Evaluation::of(&outputs);
    let by_class = ByClass::of(&outputs, &manifest.classes);
    println!("{evaluated_on}: {} images", outputs.len());
    println!("loss: {loss:.4}");
    println!("accuracy: {acc:.4}");
    print!("{}", by_class.table(PAIRS));
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    for (name, canvas) in crate::report::evaluation_pictures(
        &manifest.classes,
        &by_class.confusion,
        &set,
        &outputs,
        &evaluated_on,
    ) {
        let path = out.join(name);
        data::fetch::write_atomic(&path, &canvas.png())?;
        println!("saved {}", path.display());
    }
    let assessment = Assessment {
        run_dir: run_dir.to_path_buf(),
        evaluated_on,
        images: outputs.len(),
        skipped_images: skipped,
        test_time_views: augment.passes(),
        loss,
        accuracy: acc,
        by_class,
    };
    let path = out.join("metrics.json");
    data::fetch::write_atomic(&path, serde_json::to_string_pretty(&assessment)?.as_bytes())?;
    println!("saved {}", path.display());
    Ok(assessment)
}
