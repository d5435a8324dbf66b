//! The transfer recipe: a pretrained EfficientNet-Lite's ImageNet backbone, frozen, computes
//! pooled features for every image once (cached on disk); a new head learns the classes on them.
//! Optionally the backbone's last blocks train with the head, on the cached maps that enter them;
//! an optional second stage unfreezes the last blocks and fine-tunes them on the images. Its
//! stages plug into the run as the images recipe's one does.

use std::path::Path;

use burn::prelude::*;
use data::augment::Augment;
use data::normalize::Normalization;
use data::{Dataset, ImageSet};
use models::efficientnet::{Backbone, EfficientNet, EfficientNetConfig, Lite};
use models::transfer::{TransferHeadConfig, TransferTop};
use store::checkpoint::Manifest;

use crate::config::{OptimizerConfig, TrainConfig};
use crate::examples::{Examples, Images};
use crate::features::{self, Extraction, FeatureSet, MapViews, RandomlyMirrored};
use crate::finish::{self, Evaluated, Splits, Summary};
use crate::fit::Stop;
use crate::lr_find;
use crate::network::Maps;
use crate::stage::{self, Progress, RunContext, Saving, Stage};

/// The frozen part of the backbone, and what its features are cached under.
struct FrozenPart<'a> {
    backbone: Backbone,
    weights_sha256: &'a str,
    config: &'a TrainConfig,
    device: Device,
}

impl FrozenPart<'_> {
    /// What it computes from `set` (mirrored first if asked), from the cache when allowed and
    /// present.
    fn features(&self, set: &ImageSet, what: &str, mirrored: bool) -> anyhow::Result<FeatureSet> {
        let config = self.config;
        let extraction = Extraction {
            resolution: config.transfer.resolution,
            tail_blocks: config.transfer.train_blocks,
            mirrored,
        };
        let extract = || {
            features::extract(
                &self.backbone,
                set,
                extraction,
                config.transfer.extract_batch_size,
                what,
                &self.device,
            )
        };
        if !config.transfer.cache_features {
            return Ok(extract());
        }
        let cache = config.data.cache();
        let key = features::cache_key(self.weights_sha256, extraction, set);
        let (features, reused) = features::cached(&cache, &key, extract)?;
        if reused {
            println!(
                "{what} features: reused {}",
                features::cache_file(&cache, &key).display()
            );
        }
        Ok(features)
    }

    /// What it computes from every split of the run.
    fn all(&self, splits: &Splits) -> anyhow::Result<Frozen> {
        Ok(Frozen {
            train: self.features(splits.train, "training", false)?,
            mirrored_train: self
                .config
                .augment
                .flip
                .then(|| self.features(splits.train, "mirrored training", true))
                .transpose()?,
            valid: self.views(splits.valid, "validation")?,
            test: match &splits.dataset.test {
                Some(test) => Some(self.views(test, "test")?),
                None => None,
            },
        })
    }

    /// The features of `set` and, for test-time flipping on them (when no second stage on the
    /// images follows), of its mirror images.
    fn views(
        &self,
        set: &ImageSet,
        what: &str,
    ) -> anyhow::Result<(FeatureSet, Option<FeatureSet>)> {
        let plain = self.features(set, what, false)?;
        let mirrored = (self.config.test_time_flip && !self.config.transfer.second_stage())
            .then(|| self.features(set, &format!("mirrored {what}"), true))
            .transpose()?;
        Ok((plain, mirrored))
    }
}

/// The features the frozen part computed from each split, and from its mirror images where the
/// final evaluation averages over them.
struct Frozen {
    train: FeatureSet,
    /// The mirror images' maps, for training on both at random.
    mirrored_train: Option<FeatureSet>,
    valid: (FeatureSet, Option<FeatureSet>),
    test: Option<(FeatureSet, Option<FeatureSet>)>,
}

/// A split's features as the loop's examples, with the mirrored ones for the final evaluation.
fn views((plain, mirrored): &(FeatureSet, Option<FeatureSet>)) -> MapViews<'_> {
    MapViews {
        plain,
        mirrored: mirrored.as_ref(),
    }
}

/// `lite`'s ImageNet weights, as the config names them or from the cache, loaded; and their
/// SHA-256, which keys the feature cache.
fn pretrained(
    lite: Lite,
    config: &TrainConfig,
    device: &Device,
) -> anyhow::Result<(EfficientNet, String)> {
    let (weights, sha256) = match &config.transfer.weights {
        Some(path) => (path.clone(), data::fetch::sha256_file(path)?),
        None => (
            store::pretrained::fetch(&config.data.cache(), lite)?,
            lite.weights().sha256.to_string(),
        ),
    };
    let (network, report) = store::pretrained::load(&weights, lite, device)?;
    println!(
        "loaded {} pretrained tensors from {}",
        report.loaded,
        weights.display()
    );
    Ok((network, sha256))
}

/// The learning-rate finder on the recipe's first stage: a new head (and the backbone's last
/// blocks) on the features of the training split, on `devices` (autodiff, the model's first).
pub fn lr_find(
    network: EfficientNetConfig,
    dataset: &Dataset,
    config: &TrainConfig,
    devices: &[Device],
    steps: usize,
) -> anyhow::Result<lr_find::Sweep> {
    let device = &devices[0];
    let (pretrained, weights_sha256) = pretrained(network.lite, config, device)?;
    let (train, _) = crate::run::split(dataset, config)?;
    let features = FrozenPart {
        backbone: pretrained.backbone.valid().fold_batchnorm(),
        weights_sha256: &weights_sha256,
        config,
        device: device.clone().inner(),
    }
    .features(&train, "training", false)?;
    let head = TransferHeadConfig::new(dataset.classes.len())
        .with_dropout(network.dropout)
        .with_hidden_units(network.hidden_units)
        .init_head(device);
    let top = TransferTop::new(&pretrained.backbone, head, config.transfer.train_blocks);
    Ok(lr_find::sweep(top, &features, config, devices, steps))
}

/// Train a new head (and the backbone's last blocks) for `dataset`'s classes on the pretrained
/// `network`, then optionally fine-tune on the images, and finish the run.
pub fn run(
    network: EfficientNetConfig,
    dataset: &Dataset,
    mut progress: Progress,
    context: &RunContext,
) -> anyhow::Result<Summary> {
    let config = context.config;
    let device = context.placement.main();
    let (pretrained, weights_sha256) = pretrained(network.lite, config, device)?;
    let (train, valid) = crate::run::split(dataset, config)?;
    let splits = Splits {
        dataset,
        train: &train,
        valid: &valid,
    };
    let resolution = config.transfer.resolution;
    let classes = dataset.classes.len();
    let manifest = Manifest {
        architecture: config.model.clone(),
        classes: dataset.classes.clone(),
        image_size: resolution,
        normalization: Normalization::EFFICIENTNET_LITE,
    };
    let input = format!("resized to {resolution}x{resolution}");
    context.write_manifest(&manifest, train.len(), valid.len(), &input)?;
    let network = network.with_num_classes(classes);
    let frozen = pretrained.backbone.valid();
    let features = FrozenPart {
        backbone: frozen.clone().fold_batchnorm(),
        weights_sha256: &weights_sha256,
        config,
        device: device.clone().inner(),
    }
    .all(&splits)?;
    let (valid_views, test_views) = (views(&features.valid), features.test.as_ref().map(views));
    let head = TransferHeadConfig::new(classes)
        .with_dropout(network.dropout)
        .with_hidden_units(network.hidden_units)
        .init_head(device);
    let tail_blocks = config.transfer.train_blocks;
    if tail_blocks > 0 {
        println!("training the last {tail_blocks} blocks with the head, on the maps entering them");
    }
    let top = TransferTop::new(&pretrained.backbone, head, tail_blocks);
    let randomly_mirrored = features
        .mirrored_train
        .as_ref()
        .map(|mirrored| RandomlyMirrored {
            plain: &features.train,
            mirrored,
        });
    let train_examples: &dyn Examples<Maps> = match &randomly_mirrored {
        Some(both) => both,
        None => &features.train,
    };
    let inner = device.clone().inner();
    let saved = |path: &Path| network.init(&inner).try_load_file(path);
    let best_top = stage::train_stage(
        Stage {
            model: top,
            train: train_examples,
            valid: &features.valid.0,
            saving: Saving {
                save: &|top: &TransferTop, path| top.clone().on(frozen.clone()).save_file(path),
                load: &|path| {
                    let net = saved(path)?;
                    Ok(TransferTop::new(&net.backbone, net.head, tail_blocks))
                },
            },
            epochs: config.epochs,
            optimizer: config.optimizer.clone(),
        },
        &mut progress,
        context,
    )?;
    if !config.transfer.second_stage() || progress.stop == Some(Stop::Interrupted) {
        return finish::finish(
            &best_top,
            Evaluated {
                valid: &valid_views,
                test: test_views.as_ref().map(|t| t as &dyn Examples<Maps>),
            },
            &splits,
            &progress,
            context,
        );
    }
    let whole = best_top.train().on(pretrained.backbone);
    fine_tune(whole, &saved, &splits, progress, context)
}

/// The optional second stage: the last blocks unfrozen and fine-tuned with the head on the images
/// themselves, resized to the backbone's resolution.
fn fine_tune(
    net: EfficientNet,
    saved: &dyn Fn(&Path) -> Result<EfficientNet, burn::store::RecordError>,
    splits: &Splits,
    mut progress: Progress,
    context: &RunContext,
) -> anyhow::Result<Summary> {
    let config = context.config;
    let blocks = config.transfer.finetune_blocks;
    let resolution = config.transfer.resolution;
    println!(
        "fine-tuning the last {blocks} blocks at lr {}",
        config.transfer.finetune_lr
    );
    let model = EfficientNet {
        backbone: net.backbone.freeze().unfreeze_last_blocks(blocks),
        head: net.head,
    };
    let resized = |set, augment| Images {
        set,
        side: resolution,
        norm: &Normalization::EFFICIENTNET_LITE,
        augment,
    };
    let train_images = resized(splits.train, config.augment);
    let valid_images = resized(splits.valid, Augment::default());
    let best = stage::train_stage(
        Stage {
            model,
            train: &train_images,
            valid: &valid_images,
            saving: Saving {
                save: &|net: &EfficientNet, path| net.clone().save_file(path),
                load: saved,
            },
            epochs: config.transfer.finetune_epochs,
            optimizer: OptimizerConfig {
                lr: config.transfer.finetune_lr,
                ..config.optimizer.clone()
            },
        },
        &mut progress,
        context,
    )?;
    let test_images = splits
        .dataset
        .test
        .as_ref()
        .map(|set| resized(set, Augment::default()));
    finish::finish(
        &best,
        Evaluated {
            valid: &valid_images,
            test: test_images.as_ref().map(|t| t as &dyn Examples<Tensor<4>>),
        },
        splits,
        &progress,
        context,
    )
}
