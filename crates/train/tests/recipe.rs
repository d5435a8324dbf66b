//! Whole runs on small generated data.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use models::ImageClassifier;
use testkit::synthetic;
use train::config::TrainConfig;
use train::run as recipe;

/// Burn's random numbers are global to the process, so runs take turns: a run's numbers then
/// depend on its seed alone.
static RANDOM: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    RANDOM.lock().unwrap_or_else(|e| e.into_inner())
}

fn temp_dir(name: &str) -> testkit::ScratchDir {
    testkit::scratch_dir(&format!("train-{name}"))
}

/// A CIFAR-10-like archive of 10 classes, `per_class` images each per batch file.
fn cifar_copy(dir: &Path, per_class: usize) -> PathBuf {
    let path = dir.join("cifar.tar.gz");
    std::fs::write(&path, synthetic::cifar_archive(per_class, 5)).unwrap();
    path
}

fn make_config(dir: &Path, data: &Path, extra: &[&str]) -> TrainConfig {
    let mut overrides = vec![
        format!("data.dir={}", data.display()),
        format!("data.cache_dir={}", dir.join("cache").display()),
        format!("output_dir={}", dir.join("runs").display()),
        "batch_size=25".to_string(),
        "epochs=3".to_string(),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    TrainConfig::parse("", &overrides).unwrap()
}

#[test]
fn the_convnet_learns_and_the_run_directory_is_complete() {
    let _turn = turn();
    let dir = temp_dir("learns");
    let config = make_config(&dir, &cifar_copy(&dir, 4), &[]);
    let summary = recipe::run(&config, "tiny", &AtomicBool::new(false)).unwrap();
    let metrics = std::fs::read_to_string(summary.run_dir.join("metrics.csv")).unwrap();
    let losses: Vec<f64> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 3, "{metrics}");
    assert!(
        losses[2] < losses[0],
        "training loss should fall: {losses:?}"
    );
    assert_eq!(summary.evaluated_on, "test");
    assert!(summary.accuracy > 0.2, "10 easy classes: {summary:?}");
    for file in [
        "config.toml",
        "model.json",
        "model.bpk",
        "metrics.csv",
        "summary.json",
    ] {
        assert!(summary.run_dir.join(file).is_file(), "{file} missing");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&summary.run_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let resolved = std::fs::read_to_string(summary.run_dir.join("config.toml")).unwrap();
    assert_eq!(TrainConfig::parse(&resolved, &[]).unwrap(), config);
}

#[test]
fn same_seed_same_numbers() {
    let _turn = turn();
    let dir = temp_dir("seeded");
    let data = cifar_copy(&dir, 2);
    let config = make_config(&dir, &data, &["epochs=2"]);
    let read = |run: &Path| std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let strip_seconds = |csv: String| -> Vec<String> {
        csv.lines()
            .map(|l| {
                l.split(',')
                    .enumerate()
                    .filter(|(i, _)| *i != 1)
                    .map(|(_, v)| v)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    };
    let first = recipe::run(&config, "a", &AtomicBool::new(false)).unwrap();
    let second = recipe::run(&config, "a", &AtomicBool::new(false)).unwrap();
    assert_ne!(
        first.run_dir, second.run_dir,
        "each run gets its own directory"
    );
    assert_eq!(
        strip_seconds(read(&first.run_dir)),
        strip_seconds(read(&second.run_dir))
    );
    assert_eq!(first.loss, second.loss);
    let other = recipe::run(
        &make_config(&dir, &data, &["epochs=2", "seed=7"]),
        "a",
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_ne!(
        strip_seconds(read(&first.run_dir)),
        strip_seconds(read(&other.run_dir))
    );
}

#[test]
fn label_smoothing_changes_training() {
    let _turn = turn();
    let dir = temp_dir("smoothing");
    let data = cifar_copy(&dir, 2);
    let epoch_loss = |extra: &[&str]| {
        let summary = recipe::run(
            &make_config(&dir, &data, extra),
            "s",
            &AtomicBool::new(false),
        )
        .unwrap();
        let csv = std::fs::read_to_string(summary.run_dir.join("metrics.csv")).unwrap();
        let row: Vec<f64> = csv
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .skip(3)
            .map(|v| v.parse().unwrap())
            .collect();
        (row[0], row[2])
    };
    let (plain_loss, plain_val) = epoch_loss(&["epochs=1"]);
    let (smoothed_loss, smoothed_val) = epoch_loss(&["epochs=1", "label_smoothing=0.2"]);
    assert_ne!(smoothed_loss, plain_loss);
    assert_ne!(
        smoothed_val, plain_val,
        "the weights differ after a smoothed epoch"
    );
}

#[test]
fn image_folders_without_test_split_report_validation() {
    let _turn = turn();
    let dir = temp_dir("folders");
    let classes: Vec<String> = ["circle", "square"].map(String::from).to_vec();
    synthetic::write_folder(
        &synthetic::images(2, 20, 24, 3),
        &classes,
        &dir.join("pics"),
        "train",
    )
    .unwrap();
    let config = make_config(
        &dir,
        &dir.join("pics"),
        &["data.image_size=24", "epochs=1", "valid_size=0.5"],
    );
    let summary = recipe::run(&config, "pics", &AtomicBool::new(false)).unwrap();
    assert_eq!(summary.evaluated_on, "validation");
    assert_eq!((summary.train_images, summary.valid_images), (20, 20));
    let manifest = std::fs::read_to_string(summary.run_dir.join("model.json")).unwrap();
    assert!(
        manifest.contains("\"circle\"") && manifest.contains("per_pixel"),
        "{manifest}"
    );
}

#[test]
fn an_interrupted_run_still_evaluates_and_saves_a_summary() {
    let _turn = turn();
    let dir = temp_dir("interrupted");
    let config = make_config(&dir, &cifar_copy(&dir, 2), &[]);
    let summary = recipe::run(&config, "stop", &AtomicBool::new(true)).unwrap();
    assert_eq!(summary.epochs_run, 0);
    assert!(summary.run_dir.join("summary.json").is_file());
}

#[test]
fn an_unwritable_output_directory_is_named() {
    let _turn = turn();
    let dir = temp_dir("unwritable");
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let mut config = make_config(&dir, &cifar_copy(&dir, 1), &[]);
    config.output_dir = blocker.join("runs");
    let err = format!(
        "{:#}",
        recipe::run(&config, "x", &AtomicBool::new(false))
            .err()
            .unwrap()
    );
    assert!(
        err.contains(&blocker.display().to_string()) && err.contains("output_dir"),
        "{err}"
    );
}

#[test]
fn a_validation_fraction_that_empties_a_split_is_refused_with_the_counts() {
    let _turn = turn();
    let dir = temp_dir("valid-size");
    let data = cifar_copy(&dir, 1);
    // 50 training images: 0.001 holds out none, 0.999 keeps none for training.
    for (valid_size, counts) in [
        ("0.001", "leaves 50 for training and 0 for validation"),
        ("0.999", "leaves 0 for training and 50 for validation"),
    ] {
        let config = make_config(&dir, &data, &[&format!("valid_size={valid_size}")]);
        let err = format!(
            "{:#}",
            recipe::run(&config, "x", &AtomicBool::new(false))
                .err()
                .unwrap()
        );
        assert!(err.contains(counts), "{err}");
        assert!(!dir.join("runs").exists(), "no run directory");
    }
}

/// The fast recipe's pieces together on a small fastnet: augmentation, a schedule, flip and
/// translate test-time augmentation, Nesterov SGD.
fn fast_config(dir: &Path, data: &Path, extra: &[&str]) -> TrainConfig {
    let mut overrides = vec![
        "model.name=\"fastnet\"",
        "model.widths=[8, 16, 16, 32]",
        "augment.flip=true",
        "augment.translate=2",
        "schedule.name=\"linear\"",
        "schedule.warmup_epochs=0.5",
        "schedule.final_lr_fraction=0.1",
        "test_time_flip=true",
        "test_time_translate=1",
        "optimizer.name=\"sgd\"",
        "optimizer.lr=0.05",
        "optimizer.nesterov=true",
        "label_smoothing=0.1",
    ];
    overrides.extend(extra);
    make_config(dir, data, &overrides)
}

fn column(run: &Path, index: usize) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(index).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn the_fast_recipe_learns_repeats_itself_and_follows_its_schedule() {
    let _turn = turn();
    let dir = temp_dir("fast");
    let data = cifar_copy(&dir, 4);
    let config = fast_config(&dir, &data, &["epochs=3"]);
    let first = recipe::run(&config, "fast", &AtomicBool::new(false)).unwrap();
    let losses = column(&first.run_dir, 3);
    assert!(
        losses[2] < losses[0],
        "training loss should fall: {losses:?}"
    );
    assert!(first.accuracy > 0.2, "{first:?}");
    let lrs = column(&first.run_dir, 2);
    assert!(
        (lrs[2] - 0.005).abs() < 1e-9,
        "the last step ends the decay: {lrs:?}"
    );
    assert!(lrs[0] > lrs[1] && lrs[1] > lrs[2], "{lrs:?}");
    let second = recipe::run(&config, "fast", &AtomicBool::new(false)).unwrap();
    assert_eq!(
        column(&first.run_dir, 5),
        column(&second.run_dir, 5),
        "augmentation is drawn from the seed"
    );
    let plain = recipe::run(
        &make_config(
            &dir,
            &data,
            &[
                "epochs=3",
                "model.name=\"fastnet\"",
                "model.widths=[8, 16, 16, 32]",
            ],
        ),
        "plain",
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_ne!(column(&first.run_dir, 3), column(&plain.run_dir, 3));
    let (classifier, manifest) =
        store::checkpoint::load(&first.run_dir, &burn::prelude::Device::flex()).unwrap();
    assert!(matches!(classifier, models::Classifier::Fastnet(_)));
    assert_eq!(manifest.image_size, 32);
    let best_line = column(&first.run_dir, 5)[first.best_epoch.unwrap() - 1];
    let best_val_loss = first.best_val_loss.unwrap();
    assert!(
        (best_val_loss - best_line).abs() < 1e-5,
        "the summary reports the best epoch's line: {best_val_loss} vs {best_line}"
    );
    assert!(
        (best_val_loss - first.loss).abs() > 1e-4,
        "test-time views are for the final evaluation, not the epoch lines: {first:?}"
    );
}

#[test]
fn a_whitened_fastnet_keeps_its_stem_through_training_and_saving() {
    let _turn = turn();
    let dir = temp_dir("whiten");
    let data = cifar_copy(&dir, 2);
    let config = fast_config(&dir, &data, &["epochs=2", "model.whiten=true"]);
    let summary = recipe::run(&config, "whiten", &AtomicBool::new(false)).unwrap();
    assert!(summary.loss.is_finite());
    let (classifier, _) =
        store::checkpoint::load(&summary.run_dir, &burn::prelude::Device::flex()).unwrap();
    let halves = classifier.first_filters().split(4, 0);
    assert_eq!(
        halves[0].clone().into_data(),
        halves[1].clone().neg().into_data(),
        "the saved stem is the whitening pairs, untrained"
    );
}

#[test]
fn a_time_budget_chooses_the_epochs_and_records_them() {
    let _turn = turn();
    let dir = temp_dir("budget");
    let data = cifar_copy(&dir, 4);
    let tiny = fast_config(&dir, &data, &["epochs=50", "time_budget_minutes=0.001"]);
    let summary = recipe::run(&tiny, "budget", &AtomicBool::new(false)).unwrap();
    assert_eq!(
        summary.epochs_run, 1,
        "a budget too small for an epoch still trains one"
    );
    let written = TrainConfig::load(&summary.run_dir.join("config.toml"), &[]).unwrap();
    assert_eq!(written.epochs, 1, "--resume must see the planned epochs");
    let roomy = fast_config(&dir, &data, &["epochs=2", "time_budget_minutes=600"]);
    let summary = recipe::run(&roomy, "budget", &AtomicBool::new(false)).unwrap();
    assert_eq!(summary.epochs_run, 2, "never more than `epochs`");
}

#[test]
fn a_moving_average_changes_what_is_validated_not_what_is_trained() {
    let _turn = turn();
    let dir = temp_dir("ema");
    let data = cifar_copy(&dir, 2);
    let run = |extra: &[&str]| {
        recipe::run(
            &make_config(&dir, &data, extra),
            "e",
            &AtomicBool::new(false),
        )
        .unwrap()
        .run_dir
    };
    let plain = run(&["epochs=2"]);
    let averaged = run(&["epochs=2", "ema_decay=0.9"]);
    let (loss, val_loss) = (3, 5);
    assert_eq!(
        column(&plain, loss),
        column(&averaged, loss),
        "the training steps are the same"
    );
    assert_ne!(
        column(&plain, val_loss),
        column(&averaged, val_loss),
        "validation measures the average"
    );
}

/// The shipped airbench recipe (airbench94's method) on a small airnet, on every training image:
/// no validation, the test split reported, the arithmetic counted.
#[test]
fn the_airbench_recipe_trains_on_every_image_and_counts_its_arithmetic() {
    let _turn = turn();
    let dir = temp_dir("airbench");
    let data = cifar_copy(&dir, 4);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/cifar-airbench.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    let overrides = [
        format!("data.dir={}", data.display()),
        format!("data.cache_dir={}", dir.join("cache").display()),
        format!("output_dir={}", dir.join("runs").display()),
        "model.widths=[8, 16, 16]".into(),
        "model.whiten_bias_epochs=1".into(),
        "batch_size=50".into(),
        "epochs=3".into(),
        "valid_size=0".into(),
    ];
    let config = TrainConfig::parse(&text, &overrides).unwrap();
    let summary = recipe::run(&config, "air", &AtomicBool::new(false)).unwrap();
    assert_eq!(summary.evaluated_on, "test");
    assert_eq!((summary.train_images, summary.valid_images), (200, 0));
    assert_eq!((summary.epochs_run, summary.best_epoch), (3, Some(3)));
    assert_eq!(summary.best_val_loss, None);
    assert!(summary.accuracy > 0.2, "10 easy classes: {summary:?}");
    let metrics = std::fs::read_to_string(summary.run_dir.join("metrics.csv")).unwrap();
    assert!(
        metrics.lines().skip(1).all(|line| line.ends_with(",,")),
        "no validation cells: {metrics}"
    );
    let losses = column(&summary.run_dir, 3);
    assert!(
        losses[2] < losses[0],
        "training loss should fall: {losses:?}"
    );
    let network = train::describe::summarize(&config, 10, &burn::prelude::Device::flex());
    assert_eq!(summary.macs_per_image, network.macs);
    let pflop = 6.0 * network.macs as f64 * 200.0 * 3.0 / 1e15;
    assert!((summary.training_pflop.unwrap() - pflop).abs() < 1e-12 * pflop.max(1.0));
    let (classifier, _) =
        store::checkpoint::load(&summary.run_dir, &burn::prelude::Device::flex()).unwrap();
    assert!(matches!(classifier, models::Classifier::Airnet(_)));

    let folder = temp_dir("airbench-folder");
    let classes: Vec<String> = ["circle", "square"].map(String::from).to_vec();
    synthetic::write_folder(
        &synthetic::images(2, 10, 16, 3),
        &classes,
        &folder.join("pics"),
        "train",
    )
    .unwrap();
    let mut no_test = overrides.to_vec();
    no_test[0] = format!("data.dir={}", folder.join("pics").display());
    no_test.push("data.image_size=16".into());
    let config = TrainConfig::parse(&text, &no_test).unwrap();
    let err = recipe::run(&config, "air", &AtomicBool::new(false))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("has no test split") && err.contains("set valid_size above 0"),
        "{err}"
    );
    assert!(!folder.join("runs").exists(), "no run directory");
}
