//! The images recipe: any network of the registry trained from scratch on the images themselves,
//! normalized per pixel with the training split's statistics, augmented as the config says.

use std::path::Path;

use burn::prelude::*;
use data::augment::Augment;
use data::normalize::Normalization;
use data::{Dataset, ImageSet};
use models::{Architecture, Classifier};
use store::checkpoint::Manifest;

use crate::config::TrainConfig;
use crate::examples::{Examples, Images};
use crate::finish::{self, Evaluated, Splits, Summary};
use crate::lr_find;
use crate::stage::{self, Progress, RunContext, Saving, Stage};

/// Train the config's network on `dataset`'s images and finish the run.
pub fn run(
    dataset: &Dataset,
    mut progress: Progress,
    context: &RunContext,
) -> anyhow::Result<Summary> {
    let config = context.config;
    let device = context.placement.main();
    let architecture = &config.model;
    let (train, valid) = crate::run::split(dataset, config)?;
    architecture
        .input()
        .check(architecture.name(), train.side)
        .map_err(anyhow::Error::msg)?;
    let norm = Normalization::per_pixel(&train);
    let classes = dataset.classes.len();
    let model = new_network(architecture, &train, &norm, classes, device);
    let manifest = Manifest {
        architecture: architecture.clone(),
        classes: dataset.classes.clone(),
        image_size: train.side,
        normalization: norm.clone(),
    };
    let side = train.side;
    context.write_manifest(
        &manifest,
        train.len(),
        valid.len(),
        &format!("{side}x{side}"),
    )?;
    let images = |set| Images {
        set,
        side,
        norm: &norm,
        augment: Augment::default(),
    };
    let train_examples = Images {
        augment: config.augment,
        ..images(&train)
    };
    let valid_examples = images(&valid);
    let inner = device.clone().inner();
    let load = |path: &Path| architecture.init(classes, side, None, &inner).load(path);
    let best = stage::train_stage(
        Stage {
            model,
            train: &train_examples,
            valid: &valid_examples,
            saving: Saving {
                save: &|model: &Classifier, path| model.clone().save(path),
                load: &load,
            },
            epochs: config.epochs,
            optimizer: config.optimizer.clone(),
        },
        &mut progress,
        context,
    )?;
    let test = dataset.test.as_ref().map(images);
    finish::finish(
        &best,
        Evaluated {
            valid: &valid_examples,
            test: test.as_ref().map(|t| t as &dyn Examples<Tensor<4>>),
        },
        &Splits {
            dataset,
            train: &train,
            valid: &valid,
        },
        &progress,
        context,
    )
}

/// The learning-rate finder on a new network of the config and its training split, on `devices`
/// (autodiff devices, the model's first).
pub fn lr_find(
    dataset: &Dataset,
    config: &TrainConfig,
    devices: &[Device],
    steps: usize,
) -> anyhow::Result<lr_find::Sweep> {
    let (train, _) = crate::run::split(dataset, config)?;
    let norm = Normalization::per_pixel(&train);
    let classes = dataset.classes.len();
    let model = new_network(&config.model, &train, &norm, classes, &devices[0]);
    let examples = Images {
        set: &train,
        side: train.side,
        norm: &norm,
        augment: config.augment,
    };
    Ok(lr_find::sweep(model, &examples, config, devices, steps))
}

/// A new network for `train`'s images, its data-dependent layers (if any) fitted to the first
/// training images, normalized with `norm`.
fn new_network(
    architecture: &Architecture,
    train: &ImageSet,
    norm: &Normalization,
    classes: usize,
    device: &Device,
) -> Classifier {
    let sample = match architecture.sample_size() {
        0 => None,
        size => {
            let first: Vec<usize> = (0..train.len().min(size)).collect();
            Some(data::batch::images(train, &first, train.side, norm, device))
        }
    };
    architecture.init(classes, train.side, sample, device)
}
