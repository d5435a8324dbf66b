//! The transfer recipe: freezing really freezes, the feature cache is reused exactly when it
//! should be, and a small run end to end.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn_store::ModuleSnapshot;
use models::ImageClassifier;
use models::efficientnet::{EfficientNet, EfficientNetConfig, FEATURES, Lite};
use models::transfer::{TransferHeadConfig, TransferTop};
use testkit::synthetic;
use testkit::{ScratchDir, scratch_dir, shared_file};
use train::evaluate;
use train::examples::Examples;
use train::features::{self, Extraction, FeatureSet, MapViews};
use train::network::{Network, TestTimeAugment};

/// Every tensor of `module` (parameters and BatchNorm statistics) by path.
fn tensors(module: &EfficientNet) -> BTreeMap<String, Vec<u8>> {
    module
        .collect(None, None, false)
        .into_iter()
        .map(|t| {
            let (path, _, _, _, bytes) = t.into_parts().unwrap();
            (path, bytes.to_vec())
        })
        .collect()
}

/// Burn's random numbers are global to the process, so tests that draw them or compare whole runs
/// take turns.
static RANDOM: Mutex<()> = Mutex::new(());

/// Two Adam steps on random images (BatchNorm's running statistics show one step late); returns
/// the network after them.
fn two_steps(mut model: EfficientNet, device: &Device) -> EfficientNet {
    let mut optimizer = AdamConfig::new().init();
    for _ in 0..2 {
        let images = Tensor::<4>::random(
            [4, 3, 32, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 1], [4]), device);
        let loss = CrossEntropyLossConfig::new()
            .init(device)
            .forward(model.forward(images), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(0.01, model, grads);
    }
    model
}

fn changed(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn a_frozen_backbone_stays_exactly_as_it_was() {
    let _turn = RANDOM.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    device.seed(1);
    let model = EfficientNet {
        backbone: EfficientNetConfig::new().init(&device).backbone.freeze(),
        head: TransferHeadConfig::new(3).init_head(&device),
    };
    let before = tensors(&model);
    assert!(
        before.keys().any(|k| k.ends_with("running_var")),
        "statistics are compared too"
    );
    let after = tensors(&two_steps(model, &device));
    let changed = changed(&before, &after);
    assert!(!changed.is_empty());
    assert!(
        changed.iter().all(|k| k.starts_with("head.")),
        "only the head may change: {changed:?}"
    );
}

#[test]
fn fine_tuning_unfreezes_only_the_last_blocks() {
    let _turn = RANDOM.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    device.seed(2);
    let model = EfficientNet {
        backbone: EfficientNetConfig::new()
            .init(&device)
            .backbone
            .freeze()
            .unfreeze_last_blocks(1),
        head: TransferHeadConfig::new(3).init_head(&device),
    };
    let before = tensors(&model);
    let changed = changed(&before, &tensors(&two_steps(model, &device)));
    assert!(
        changed.iter().any(|k| k.starts_with("backbone.blocks.15.")),
        "{changed:?}"
    );
    assert!(
        changed
            .iter()
            .any(|k| k.starts_with("backbone.head.bn.running_mean")),
        "{changed:?}"
    );
    let allowed = |k: &String| {
        k.starts_with("head.")
            || k.starts_with("backbone.blocks.15.")
            || k.starts_with("backbone.head.")
    };
    assert!(changed.iter().all(allowed), "{changed:?}");
}

#[test]
fn training_the_last_blocks_on_their_maps_changes_only_them_and_the_head() {
    let _turn = RANDOM.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    device.seed(5);
    let pretrained = EfficientNetConfig::new().init(&device);
    let frozen = pretrained.backbone.valid();
    let head = TransferHeadConfig::new(3).init_head(&device);
    let mut top = TransferTop::new(&pretrained.backbone, head, 2);
    let before = tensors(&top.clone().valid().on(frozen.clone()));
    let mut optimizer = AdamConfig::new().init();
    for _ in 0..2 {
        let images = Tensor::<4>::random(
            [4, 3, 32, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device.clone().inner(),
        );
        let maps = Tensor::from_inner(frozen.forward_until(images, frozen.blocks() - 2));
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 1], [4]), &device);
        let loss = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(top.forward(maps), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &top);
        top = optimizer.step(0.01, top, grads);
    }
    let changed = changed(&before, &tensors(&top.valid().on(frozen)));
    for expected in [
        "backbone.blocks.14.expand.conv.weight",
        "backbone.blocks.15.project.bn.running_var",
        "backbone.head.conv.weight",
        "head.fc.weight",
    ] {
        assert!(
            changed.iter().any(|k| k == expected),
            "{expected}: {changed:?}"
        );
    }
    let allowed = |k: &String| {
        k.starts_with("head.")
            || k.starts_with("backbone.blocks.14.")
            || k.starts_with("backbone.blocks.15.")
            || k.starts_with("backbone.head.")
    };
    assert!(changed.iter().all(allowed), "{changed:?}");
}

#[test]
fn the_feature_cache_is_keyed_by_everything_the_features_depend_on() {
    let cache = scratch_dir("feature-cache");
    let set = synthetic::images(2, 3, 8, 1);
    let computed = Cell::new(0);
    let compute = || {
        computed.set(computed.get() + 1);
        FeatureSet {
            shape: [2, 1, 1],
            values: vec![0.5; 12],
            labels: set.labels.clone(),
        }
    };
    let at = |resolution, tail_blocks| Extraction {
        resolution,
        tail_blocks,
        mirrored: false,
    };
    let key = features::cache_key("weights-a", at(64, 0), &set);
    let (first, reused) = features::cached(&cache, &key, compute).unwrap();
    assert!(!reused);
    let (again, reused) = features::cached(&cache, &key, compute).unwrap();
    assert!(reused);
    assert_eq!((first, computed.get()), (again, 1));

    let mut other_pixels = set.clone();
    other_pixels.pixels[5] ^= 1;
    let keys = [
        features::cache_key("weights-b", at(64, 0), &set),
        features::cache_key("weights-a", at(96, 0), &set),
        features::cache_key("weights-a", at(64, 1), &set),
        features::cache_key(
            "weights-a",
            Extraction {
                mirrored: true,
                ..at(64, 0)
            },
            &set,
        ),
        features::cache_key("weights-a", at(64, 0), &other_pixels),
        features::cache_key("weights-a", at(64, 0), &set.select(&[0, 1, 2])),
    ];
    for other in &keys {
        assert_ne!(other, &key);
    }
    std::fs::write(features::cache_file(&cache, &key), b"damaged").unwrap();
    let (_, reused) = features::cached(&cache, &key, compute).unwrap();
    assert!(!reused, "a damaged file is recomputed");
    assert_eq!(computed.get(), 2);
}

#[test]
fn mirrored_extraction_sees_the_mirror_images() {
    let device = Device::flex();
    device.seed(7);
    let net = EfficientNetConfig::new().with_num_classes(3).init(&device);
    // At the images' own side, so that no resizing (whose rounding is not mirror-symmetric)
    // stands between the two.
    let set = synthetic::images(3, 2, 64, 5);
    let side = set.side;
    let mut mirror_images = set.clone();
    for (image, mirror) in set
        .pixels
        .chunks(side)
        .zip(mirror_images.pixels.chunks_mut(side))
    {
        mirror.copy_from_slice(image);
        mirror.reverse();
    }
    let extract = |set: &data::ImageSet, mirrored| {
        let at = Extraction {
            resolution: 64,
            tail_blocks: 1,
            mirrored,
        };
        features::extract(&net.backbone, set, at, 4, "test", &device)
    };
    let mirrored = extract(&set, true);
    assert_eq!(mirrored, extract(&mirror_images, false));
    let plain = extract(&set, false);
    assert_ne!(plain, mirrored);
}

/// `count` random pooled-feature maps `[1280, 1, 1]`.
fn random_features(count: usize, seed: u64) -> FeatureSet {
    let mut rng = rng::Rng::new(seed);
    FeatureSet {
        shape: [FEATURES, 1, 1],
        values: (0..count * FEATURES)
            .map(|_| (rng.next_u64() % 1000) as f32 / 250.0 - 2.0)
            .collect(),
        labels: (0..count).map(|i| (i % 3) as u16).collect(),
    }
}

#[test]
fn the_final_views_average_the_images_and_their_mirror_images() {
    let device = Device::flex();
    device.seed(8);
    let top = TransferTop {
        tail: None,
        head: TransferHeadConfig::new(3).init_head(&device),
    };
    let (plain, mirrored) = (random_features(6, 1), random_features(6, 2));
    let indices = [0, 3, 5];
    let views = MapViews {
        plain: &plain,
        mirrored: Some(&mirrored),
    };
    let logits = |set: &FeatureSet| {
        let (maps, _) = set.batch(&indices, &device);
        burn::tensor::activation::softmax(top.logits(maps), 1)
    };
    let expected = ((logits(&plain) + logits(&mirrored)) / 2.0).log();
    let flip = TestTimeAugment {
        flip: true,
        translate: 0,
    };
    let outputs = evaluate::outputs(&top, &views, 2, &device, flip);
    let expected = expected.into_data().try_to_vec::<f32>().unwrap();
    for (row, output) in expected.chunks(3).zip(indices.map(|i| &outputs[i])) {
        let loss = -row[output.label];
        assert!((output.loss - loss).abs() < 1e-5, "{output:?} {row:?}");
    }
    let plain_only = evaluate::outputs(&top, &views, 2, &device, TestTimeAugment::default());
    let losses = |outputs: &[evaluate::Output]| outputs.iter().map(|o| o.loss).collect::<Vec<_>>();
    assert_ne!(
        losses(&plain_only),
        losses(&outputs),
        "without test-time flipping the mirror images are not used"
    );
}

/// The shared pretrained weights, a scratch directory named `name` and this test's turn at Burn's
/// random numbers; `None` (the test skips, saying why) without the weights.
fn pretrained_run(name: &str) -> Option<(PathBuf, ScratchDir, MutexGuard<'static, ()>)> {
    let weights = shared_file("weights/efficientnet-lite0-57934424.pth")?;
    let turn = RANDOM.lock().unwrap_or_else(|e| e.into_inner());
    Some((weights, scratch_dir(name), turn))
}

/// The transfer recipe at 32x32 on a generated CIFAR-10-like archive (`seed` picks the images).
fn small_transfer(
    dir: &std::path::Path,
    weights: &std::path::Path,
    seed: u64,
    extra: &[&str],
) -> train::config::TrainConfig {
    let archive = dir.join("cifar.tar.gz");
    std::fs::write(&archive, synthetic::cifar_archive(2, seed)).unwrap();
    let mut overrides = vec![
        format!("data.dir={}", archive.display()),
        format!("data.cache_dir={}", dir.join("cache").display()),
        format!("output_dir={}", dir.join("runs").display()),
        format!("transfer.weights={}", weights.display()),
        "model.name=\"efficientnet_lite0\"".into(),
        "transfer.resolution=32".into(),
        "batch_size=20".into(),
        "optimizer.lr=0.01".into(),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    train::config::TrainConfig::parse("", &overrides).unwrap()
}

#[test]
fn a_small_transfer_run_learns_and_reuses_its_features() {
    let Some((weights, dir, _turn)) = pretrained_run("transfer-run") else {
        return;
    };
    let config = small_transfer(&dir, &weights, 4, &["epochs=4", "model.hidden_units=16"]);
    let first = train::run::run(&config, "transfer", &AtomicBool::new(false)).unwrap();
    assert!(first.accuracy > 0.3, "{first:?}");
    let cached: Vec<_> = std::fs::read_dir(dir.join("cache/features"))
        .unwrap()
        .collect();
    assert_eq!(cached.len(), 3, "training, validation and test features");
    let second = train::run::run(&config, "transfer", &AtomicBool::new(false)).unwrap();
    assert_eq!(
        second.loss, first.loss,
        "the cached features give the same run"
    );
    let (classifier, manifest) = store::checkpoint::load(&second.run_dir, &Device::flex()).unwrap();
    assert!(matches!(
        classifier,
        models::Classifier::EfficientnetLite0(_)
    ));
    assert_eq!(manifest.image_size, 32);
    assert_eq!(
        serde_json::to_value(&manifest.architecture).unwrap(),
        serde_json::json!({ "name": "efficientnet_lite0", "hidden_units": 16, "dropout": 0.2 }),
        "the head's shape is recorded, so the checkpoint loads"
    );
}

#[test]
fn a_run_that_trains_the_last_block_saves_it_inside_the_whole_classifier() {
    let Some((weights, dir, _turn)) = pretrained_run("transfer-tail") else {
        return;
    };
    let config = small_transfer(
        &dir,
        &weights,
        4,
        &[
            "epochs=3",
            "transfer.train_blocks=1",
            "test_time_flip=true",
            "augment.flip=true",
        ],
    );
    let summary = train::run::run(&config, "tail", &AtomicBool::new(false)).unwrap();
    assert!(summary.accuracy > 0.3, "{summary:?}");
    let cached = std::fs::read_dir(dir.join("cache/features"))
        .unwrap()
        .count();
    assert_eq!(
        cached, 6,
        "training, validation and test maps, and the mirror images' of each"
    );
    let device = Device::flex();
    let (classifier, _) = store::checkpoint::load(&summary.run_dir, &device).unwrap();
    let models::Classifier::EfficientnetLite0(saved) = classifier else {
        panic!("the whole classifier is saved");
    };
    let (pretrained, _) = EfficientNetConfig::new()
        .init(&device)
        .load_pytorch(Lite::Lite0, &weights)
        .unwrap();
    let changed: Vec<String> = changed(&tensors(&pretrained), &tensors(&saved))
        .into_iter()
        .filter(|k| k.starts_with("backbone."))
        .collect();
    assert!(
        changed.iter().any(|k| k.starts_with("backbone.blocks.15.")),
        "{changed:?}"
    );
    assert!(
        changed
            .iter()
            .all(|k| k.starts_with("backbone.blocks.15.") || k.starts_with("backbone.head.")),
        "{changed:?}"
    );
}

#[test]
fn the_saved_classifier_on_raw_images_gives_the_accuracy_the_run_reported() {
    let Some((weights, dir, _turn)) = pretrained_run("transfer-assess") else {
        return;
    };
    // 48: the images are resized on the way in, as at 224 in the shipped config.
    let config = small_transfer(
        &dir,
        &weights,
        5,
        &[
            "epochs=2",
            "transfer.resolution=48",
            "transfer.train_blocks=1",
            "test_time_flip=true",
        ],
    );
    let summary = train::run::run(&config, "assessed", &AtomicBool::new(false)).unwrap();
    assert_eq!(summary.evaluated_on, "test");
    // The run evaluated cached maps; `train evaluate` runs the whole saved classifier on the
    // images, mirror images included.
    let assessment = train::assess::assess(
        &summary.run_dir,
        train::assess::Target::OwnSplit,
        true,
        &dir.join("evaluation"),
    )
    .unwrap();
    assert_eq!(assessment.test_time_views, 2);
    assert!(
        (assessment.accuracy - summary.accuracy).abs() < 1e-3,
        "{assessment:?} against {summary:?}"
    );
    assert!(
        (assessment.loss - summary.loss).abs() < 1e-4 * summary.loss.max(1.0),
        "{} against {}",
        assessment.loss,
        summary.loss
    );
}

/// Interrupt a run once its resume state reaches `epoch`, then resume it to the end.
fn interrupted_then_resumed(
    config: &train::config::TrainConfig,
    epoch: usize,
) -> train::finish::Summary {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watch = {
        let stop = stop.clone();
        let run_dir = config.output_dir.join(format!("stopped-at-{epoch}-1"));
        std::thread::spawn(move || {
            while train::resume::load_state(&run_dir)
                .ok()
                .flatten()
                .is_none_or(|state| state.epoch() < epoch)
            {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let name = format!("stopped-at-{epoch}");
    let stopped = train::run::run(config, &name, &stop).unwrap();
    watch.join().unwrap();
    assert_eq!(stopped.stop, train::fit::Stop::Interrupted);
    assert!(stopped.epochs_run >= epoch, "{stopped:?}");
    train::run::resume(&stopped.run_dir, &AtomicBool::new(false)).unwrap()
}

#[test]
fn a_two_stage_run_resumes_in_either_stage_to_the_same_end() {
    let Some((weights, dir, _turn)) = pretrained_run("transfer-resume") else {
        return;
    };
    let config = small_transfer(
        &dir,
        &weights,
        6,
        &[
            "epochs=3",
            "transfer.finetune_blocks=1",
            "transfer.finetune_epochs=2",
            "early_stopping_patience=0",
            "augment.flip=true",
        ],
    );
    let whole = train::run::run(&config, "whole", &AtomicBool::new(false)).unwrap();
    assert_eq!(whole.epochs_run, 5);
    // A run from before the head could have a hidden layer names its architecture with a bare
    // string; it still loads.
    let manifest = whole.run_dir.join(store::checkpoint::MANIFEST);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    json["architecture"] = "efficientnet_lite0".into();
    let legacy = scratch_dir("transfer-legacy");
    std::fs::write(legacy.join(store::checkpoint::MANIFEST), json.to_string()).unwrap();
    std::fs::copy(
        whole.run_dir.join(store::checkpoint::WEIGHTS),
        legacy.join(store::checkpoint::WEIGHTS),
    )
    .unwrap();
    store::checkpoint::load(&legacy, &Device::flex()).unwrap();
    for epoch in [1, 3, 4] {
        let resumed = interrupted_then_resumed(&config, epoch);
        assert_eq!(
            (
                resumed.epochs_run,
                resumed.best_epoch,
                resumed.loss,
                resumed.accuracy
            ),
            (
                whole.epochs_run,
                whole.best_epoch,
                whole.loss,
                whole.accuracy
            ),
            "stopped after epoch {epoch}"
        );
    }
}

#[test]
fn the_lr_finder_sweeps_the_first_stage_and_the_summary_marks_the_frozen_backbone() {
    let Some((weights, dir, _turn)) = pretrained_run("transfer-lr-find") else {
        return;
    };
    let config = small_transfer(&dir, &weights, 6, &["transfer.train_blocks=1"]);
    let written = train::run::lr_find(&config, "transfer", 12).unwrap();
    let csv = std::fs::read_to_string(&written[0]).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12, "{csv}");
    assert!(!dir.join("runs/transfer-1").exists(), "no run is made");

    let summary = train::describe::summarize(&config, 10, &Device::flex());
    let trainable: Vec<&str> = summary
        .layers
        .iter()
        .filter(|l| l.trainable_params > 0)
        .map(|l| l.name.as_str())
        .collect();
    assert!(
        trainable
            .iter()
            .all(|n| n.starts_with("backbone.blocks.15.")
                || n.starts_with("backbone.head.")
                || n.starts_with("head.")),
        "{trainable:?}"
    );
    assert!(trainable.contains(&"backbone.blocks.15.depthwise.conv"));
    assert!(trainable.contains(&"head.fc"));
    assert!(
        summary.non_trainable_params > 2 * summary.trainable_params,
        "{summary:?}"
    );
    assert_eq!(summary.input, [3, 32, 32]);
}
