//! The tutorial's convnet trained by burn-train's own `Learner` and `SupervisedTraining` instead of
//! this project's loop, on the same data and split as `configs/cifar.toml`: how a Burn user takes
//! any network of the `models` crate into their own training code.
//!
//! ```sh
//! cargo run --release -p models --features burn-train --example burn_learner -- \
//!     ../shared/data/cifar10-train-jpeg.tar.gz 2
//! ```
//!
//! Arguments: the data (`data.dir` of a config: a CIFAR-10 folder, an image-folder tree or a
//! `.tar.gz` of either) and the number of epochs (default 2). burn-train writes its logs and
//! checkpoints under `runs/burn-learner`.

use std::sync::Arc;

use anyhow::Context;
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::prelude::*;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use data::ImageSet;
use data::normalize::Normalization;
use data::source::Source;
use kernels::optim::Adam;
use models::burn_train::ImageBatch;
use models::convnet::ConvNetConfig;

/// Batches of images by their index in `set`, normalized as the project's loop normalizes them.
#[derive(Clone)]
struct Images {
    set: Arc<ImageSet>,
    norm: Arc<Normalization>,
}

impl Batcher<usize, ImageBatch> for Images {
    fn batch(&self, indices: Vec<usize>, device: &Device) -> ImageBatch {
        ImageBatch {
            images: data::batch::images(&self.set, &indices, self.set.side, &self.norm, device),
            labels: data::batch::labels(&self.set, &indices, device),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .context("usage: burn_learner DATA [EPOCHS]; DATA as data.dir in a config")?;
    let epochs: usize = args.get(1).map_or(Ok(2), |e| e.parse())?;
    let dataset = data::source::load(&Source {
        dir: Some(dir.into()),
        url: data::source::CIFAR10_URL.into(),
        md5: data::source::CIFAR10_MD5.into(),
        cache: data::fetch::cache_dir(),
        image_size: 32,
        skip_broken: true,
    })?;
    // The tutorial recipe's split and normalization (configs/cifar.toml: seed 42, 25%).
    let (train, valid) = data::split::train_valid(dataset.train.len(), 0.25, 42);
    let norm = Arc::new(Normalization::per_pixel(&dataset.train.select(&train)));
    let set = Arc::new(dataset.train);
    let device = Device::flex().autodiff();
    device.seed(42);
    let loader = |indices: Vec<usize>, device: Device| {
        DataLoaderBuilder::new(Images {
            set: set.clone(),
            norm: norm.clone(),
        })
        .batch_size(128)
        .shuffle(42)
        .set_device(device)
        .build(InMemDataset::new(indices))
    };
    let network = ConvNetConfig::new()
        .with_num_classes(dataset.classes.len())
        .init(&device);
    // Burn's Adam with one pass over each parameter on every core: the same values.
    let adam = Adam {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-7,
        penalty: None,
    };
    let learner = Learner::new(network, adam.init(), 1e-3);
    let result = SupervisedTraining::new(
        "runs/burn-learner",
        loader(train, device.clone()),
        loader(valid, device.clone().inner()),
    )
    .metrics((AccuracyMetric::new(), LossMetric::new()))
    .num_epochs(epochs)
    .summary()
    .launch(learner);
    println!(
        "trained {} parameters for {epochs} epochs with burn-train's Learner",
        result.model.num_params()
    );
    Ok(())
}
