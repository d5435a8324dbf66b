//! Training on several devices at once, each taking a share of every batch: the same numbers as
//! one device taking whole batches, and a clear error when the devices asked for do not exist.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use burn::prelude::*;
use models::efficientnet::{ClassifierHead, FEATURES};
use models::transfer::TransferTop;
use rng::Rng;
use train::config::{OptimizerConfig, OptimizerName, ScheduleConfig};
use train::features::FeatureSet;
use train::fit::{self, EpochEnd, EpochMetrics, FitOptions, Observer, Split};
use train::schedule::Schedule;

struct Quiet;

impl Observer<TransferTop> for Quiet {
    fn improved(&mut self, _model: &TransferTop) -> anyhow::Result<PathBuf> {
        Ok(PathBuf::new())
    }
    fn epoch_done(&mut self, _: &EpochMetrics, _: EpochEnd<'_, TransferTop>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Features whose mean depends on the label, so that a linear head can learn them.
fn features(count: usize, seed: u64) -> FeatureSet {
    let mut rng = Rng::new(seed);
    let labels: Vec<u16> = (0..count).map(|i| (i % 10) as u16).collect();
    let values = labels
        .iter()
        .flat_map(|&label| {
            let noise: Vec<f32> = (0..FEATURES)
                .map(|_| (rng.next_u64() % 1000) as f32 / 500.0 - 1.0)
                .collect();
            noise.into_iter().enumerate().map(move |(j, x)| {
                x + if j % 10 == usize::from(label) {
                    1.0
                } else {
                    0.0
                }
            })
        })
        .collect();
    FeatureSet {
        shape: [FEATURES, 1, 1],
        values,
        labels,
    }
}

/// Two epochs of a linear head on `replicas.len() + 1` devices, from the same initial weights.
fn train_on(replicas: Vec<Device>) -> Vec<EpochMetrics> {
    let device = Device::flex().autodiff();
    device.seed(3);
    let head = TransferTop {
        tail: None,
        head: ClassifierHead::new(10, 0, 0.0, &device),
    };
    let (train_set, valid_set) = (features(200, 1), features(60, 2));
    let optimizer_config = OptimizerConfig {
        name: OptimizerName::Sgd,
        lr: 0.05,
        ..OptimizerConfig::default()
    };
    let batch_size = 48;
    let steps_per_epoch = train_set.labels.len().div_ceil(batch_size);
    let options = FitOptions {
        epochs: 2,
        batch_size,
        patience: 0,
        seed: 9,
        schedule: Schedule {
            config: ScheduleConfig::default(),
            base_lr: optimizer_config.lr,
            steps_per_epoch,
            total_steps: 2 * steps_per_epoch,
        },
        stage_first_epoch: 1,
        label_smoothing: None,
        first_epoch: 1,
        best_val_loss: f64::INFINITY,
        devices: std::iter::once(device).chain(replicas).collect(),
        ema_decay: None,
        shift_scale: None,
        lookahead: None,
    };
    let outcome = fit::fit(
        head,
        None,
        &mut train::optimizer::optimizer(&optimizer_config),
        Split {
            train: &train_set,
            valid: &valid_set,
        },
        &options,
        &mut Quiet,
        &AtomicBool::new(false),
    )
    .unwrap();
    outcome.history
}

#[test]
fn batches_shared_between_devices_train_like_whole_batches_on_one() {
    // Burn's CPU backend has one device, so the other shares run on copies of the model on that
    // same device, each in its own thread: the gradients still have to be gathered and added up.
    let one = train_on(Vec::new());
    // 48 examples a batch in three shares of 16, and the last batch of 8 in shares of 3, 3 and 2.
    let three = train_on(vec![Device::flex().autodiff(); 2]);
    assert_eq!(one.len(), 2);
    assert!(one[1].loss < one[0].loss, "the head learns: {one:?}");
    for (a, b) in one.iter().zip(&three) {
        for (x, y) in [
            (a.loss, b.loss),
            (a.acc, b.acc),
            (a.val_loss.unwrap(), b.val_loss.unwrap()),
            (a.val_acc.unwrap(), b.val_acc.unwrap()),
        ] {
            assert!((x - y).abs() < 1e-4, "one device {a:?}\nthree shares {b:?}");
        }
    }
}

#[test]
fn asking_for_more_devices_than_exist_is_a_clear_error() {
    let error = store::device::devices(1000).unwrap_err().to_string();
    assert!(error.contains("devices = 1000"), "{error}");
    assert!(error.contains(store::device::backend_name()), "{error}");
    assert!(!error.contains('\n'), "{error}");
    assert_eq!(store::device::devices(1).unwrap().len(), 1);
}

#[test]
fn train_refuses_devices_it_does_not_have_before_reading_any_data() {
    let dir = testkit::scratch_dir("train-devices-cli");
    let config = dir.join("tiny.toml");
    std::fs::write(&config, "[data]\ndir = \"does-not-exist\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_train"))
        .args(["--config", config.to_str().unwrap(), "--devices", "1000"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("devices = 1000"), "{stderr}");
    assert!(
        !dir.join("runs").exists(),
        "no run directory for a run that cannot start"
    );
}

#[test]
fn the_devices_flag_is_checked_like_the_key_before_anything_runs() {
    let dir = testkit::scratch_dir("train-devices-zero");
    let config = dir.join("tiny.toml");
    std::fs::write(&config, "[data]\ndir = \"does-not-exist\"\n").unwrap();
    for (flag, value, message) in [
        ("--devices", "0", "devices must be at least 1"),
        ("--time-budget", "0s", "must be more than 0"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_train"))
            .args(["--config", config.to_str().unwrap(), flag, value])
            .current_dir(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value}");
        assert!(stderr.contains(message), "{stderr}");
        assert!(
            !dir.join("runs").exists(),
            "{flag} {value}: no run directory"
        );
    }
}
