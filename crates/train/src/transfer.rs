//! The transfer recipe: EfficientNet-Lite0's ImageNet backbone, frozen, computes pooled features
//! for every image once (cached on disk); a new head learns the classes on them. Optionally the
//! backbone's last blocks train with the head, on the cached maps that enter them; an optional
//! second stage unfreezes the last blocks and fine-tunes them on the images.

use std::sync::atomic::AtomicBool;

use anyhow::Context;
use burn::prelude::*;
use data::normalize::Normalization;
use data::{Dataset, ImageSet};
use models::efficientnet::{Backbone, EfficientNet};
use models::transfer::{TransferHeadConfig, TransferTop};

use crate::checkpoint::{self, Architecture, Classifier, Manifest};
use crate::config::{OptimizerConfig, TrainConfig};
use crate::device::Placement;
use crate::features::{self, Extraction, FeatureSet, MapViews};
use crate::network::{Examples, Maps};
use crate::recipe::{self, Progress, Splits, Stage, Summary};
use crate::run::RunDir;

/// Images resized to the backbone's resolution and scaled as it was trained.
pub struct ResizedImages<'a> {
    pub set: &'a ImageSet,
    pub side: usize,
}

impl Examples<Tensor<4>> for ResizedImages<'_> {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        (
            data::batch::resized_images(
                self.set,
                indices,
                self.side,
                &Normalization::EFFICIENTNET_LITE,
                device,
            ),
            data::batch::labels(self.set, indices, device),
        )
    }
}

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

pub fn run(
    config: &TrainConfig,
    dataset: &Dataset,
    run: &RunDir,
    placement: &Placement,
    mut progress: Progress,
    interrupted: &AtomicBool,
) -> anyhow::Result<Summary> {
    let device = &placement.main;
    let cache = config.data.cache();
    let (weights, weights_sha256) = match &config.transfer.weights {
        Some(path) => (path.clone(), data::fetch::sha256_file(path)?),
        None => (
            crate::pretrained::fetch(&cache)?,
            crate::pretrained::SHA256.to_string(),
        ),
    };
    let (pretrained, report) = crate::pretrained::load(&weights, device)?;
    println!(
        "loaded {} pretrained tensors from {}",
        report.loaded,
        weights.display()
    );
    let (train, valid) = recipe::split(dataset, config);
    let splits = Splits {
        dataset,
        train: &train,
        valid: &valid,
    };
    let resolution = config.transfer.resolution;
    let manifest = Manifest {
        architecture: Architecture::EfficientnetLite0 {
            hidden_units: config.transfer.hidden_units,
        },
        classes: dataset.classes.clone(),
        image_size: resolution,
        normalization: Normalization::EFFICIENTNET_LITE,
    };
    run.write_json(checkpoint::MANIFEST, &manifest)
        .context("cannot write the model manifest")?;
    println!(
        "{} training / {} validation images of {} classes, resized to {resolution}x{resolution}",
        train.len(),
        valid.len(),
        manifest.classes.len()
    );

    let frozen = pretrained.backbone.valid();
    let frozen_part = FrozenPart {
        backbone: frozen.clone().fold_batchnorm(),
        weights_sha256: &weights_sha256,
        config,
        device: device.clone().inner(),
    };
    let train_features = frozen_part.features(&train, "training", false)?;
    let (valid_features, valid_mirrored) = frozen_part.views(&valid, "validation")?;
    let test_features = match &dataset.test {
        Some(test) => Some(frozen_part.views(test, "test")?),
        None => None,
    };
    let valid_views = MapViews {
        plain: &valid_features,
        mirrored: valid_mirrored.as_ref(),
    };
    let test_views = test_features.as_ref().map(|(plain, mirrored)| MapViews {
        plain,
        mirrored: mirrored.as_ref(),
    });

    let head = TransferHeadConfig::new(manifest.classes.len())
        .with_dropout(config.transfer.dropout)
        .with_hidden_units(config.transfer.hidden_units)
        .init_head(device);
    let tail_blocks = config.transfer.train_blocks;
    if tail_blocks > 0 {
        println!("training the last {tail_blocks} blocks with the head, on the maps entering them");
    }
    let top = TransferTop::new(&pretrained.backbone, head, tail_blocks);
    let whole = |top: &TransferTop| Classifier::EfficientNet(top.clone().on(frozen.clone()));
    let best_top = recipe::train_stage(
        Stage {
            model: top,
            train: &train_features,
            valid: &valid_features,
            to_classifier: &whole,
            from_classifier: &|c: Classifier| {
                c.into_efficientnet()
                    .map(|net| TransferTop::new(&net.backbone, net.head, tail_blocks))
            },
            epochs: config.epochs,
            optimizer: config.optimizer.clone(),
        },
        config,
        run,
        &mut progress,
        placement,
        interrupted,
    )?;

    let stopped_by_user = progress.stop == Some(crate::fit::Stop::Interrupted);
    let blocks = config.transfer.finetune_blocks;
    if !config.transfer.second_stage() || stopped_by_user {
        return recipe::finish(
            &best_top,
            &valid_views,
            test_views.as_ref().map(|t| t as &dyn Examples<Maps>),
            &splits,
            &progress,
            config,
            run,
            device,
        );
    }

    println!(
        "fine-tuning the last {blocks} blocks at lr {}",
        config.transfer.finetune_lr
    );
    let net = best_top.train().on(pretrained.backbone);
    let model = EfficientNet {
        backbone: net.backbone.freeze().unfreeze_last_blocks(blocks),
        head: net.head,
    };
    let (train_images, valid_images) = (
        ResizedImages {
            set: &train,
            side: resolution,
        },
        ResizedImages {
            set: &valid,
            side: resolution,
        },
    );
    let best = recipe::train_stage(
        Stage {
            model,
            train: &train_images,
            valid: &valid_images,
            to_classifier: &|m: &EfficientNet| Classifier::EfficientNet(m.clone()),
            from_classifier: &Classifier::into_efficientnet,
            epochs: config.transfer.finetune_epochs,
            optimizer: OptimizerConfig {
                lr: config.transfer.finetune_lr,
                ..config.optimizer.clone()
            },
        },
        config,
        run,
        &mut progress,
        placement,
        interrupted,
    )?;
    let test_images = dataset.test.as_ref().map(|set| ResizedImages {
        set,
        side: resolution,
    });
    recipe::finish(
        &best,
        &valid_images,
        test_images.as_ref().map(|t| t as &dyn Examples<Tensor<4>>),
        &splits,
        &progress,
        config,
        run,
        device,
    )
}
