//! Classifying image files, several at a time as one batch.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use data::ImageSet;
use data::normalize::Normalization;
use models::efficientnet::{IMAGE_SIZE, LoadReport};
use serde::Serialize;
use train::checkpoint::{self, Classifier};

/// How a photo becomes the network's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocess {
    /// ImageNet evaluation: shorter side to `side * 256 / 224`, centre crop `side`.
    CenterCrop(usize),
    /// The whole picture resized to `side` x `side`, as `train` resizes images from folders.
    Resize(usize),
}

/// A network with everything needed to use it on files.
pub struct Predictor {
    pub classifier: Classifier,
    pub labels: Vec<String>,
    pub preprocess: Preprocess,
    pub normalization: Normalization,
}

/// One class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub index: usize,
    pub label: String,
    pub probability: f32,
}

/// The top classes for one image (one element of `--json`'s array).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub image: PathBuf,
    pub predictions: Vec<Ranked>,
}

impl Predictor {
    /// EfficientNet-Lite0 with its ImageNet weights.
    pub fn imagenet(weights: &Path, device: &Device) -> anyhow::Result<(Self, LoadReport)> {
        let (net, report) = train::pretrained::load(weights, device)?;
        let predictor = Self {
            classifier: Classifier::EfficientNet(net.fold_batchnorm()),
            labels: crate::imagenet::labels(),
            preprocess: Preprocess::CenterCrop(IMAGE_SIZE),
            normalization: Normalization::EFFICIENTNET_LITE,
        };
        Ok((predictor, report))
    }

    /// The model a `train` run saved in `dir`, with that run's classes and normalization.
    pub fn from_run(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let (classifier, manifest) = checkpoint::load(dir, device)?;
        Ok(Self {
            classifier: classifier.fold_batchnorm(),
            labels: manifest.classes,
            preprocess: Preprocess::Resize(manifest.image_size),
            normalization: manifest.normalization,
        })
    }

    pub fn side(&self) -> usize {
        match self.preprocess {
            Preprocess::CenterCrop(side) | Preprocess::Resize(side) => side,
        }
    }

    /// Decode and preprocess the image file at `path` into planar RGB bytes.
    pub fn read_image(&self, path: &Path) -> anyhow::Result<Vec<u8>> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let decoded = match self.preprocess {
            Preprocess::CenterCrop(side) => data::photo::center_crop(&bytes, side as u32),
            Preprocess::Resize(side) => data::folder::decode(&bytes, side),
        };
        decoded.map_err(|e| anyhow::anyhow!("{} is not a readable image: {e}", path.display()))
    }

    /// Preprocessed images as one normalized batch `[n, 3, side, side]`.
    pub fn batch(&self, images: &[Vec<u8>], device: &Device) -> Tensor<4> {
        let mut set = ImageSet::new(self.side());
        for image in images {
            set.push(image, 0);
        }
        let indices: Vec<usize> = (0..set.len()).collect();
        data::batch::images(&set, &indices, &self.normalization, device)
    }

    /// The `top` most probable classes for each file, in one batch.
    pub fn predict(
        &self,
        paths: &[PathBuf],
        top: usize,
        device: &Device,
    ) -> anyhow::Result<Vec<Prediction>> {
        let images = paths
            .iter()
            .map(|p| self.read_image(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let probabilities = softmax(self.classifier.forward(self.batch(&images, device)), 1);
        let values: Vec<f32> = probabilities
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 data");
        let classes = self.labels.len();
        Ok(paths
            .iter()
            .zip(values.chunks(classes))
            .map(|(path, row)| Prediction {
                image: path.clone(),
                predictions: self.top(row, top),
            })
            .collect())
    }

    fn top(&self, probabilities: &[f32], k: usize) -> Vec<Ranked> {
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        order
            .into_iter()
            .take(k)
            .map(|index| Ranked {
                index,
                label: self.labels[index].clone(),
                probability: probabilities[index],
            })
            .collect()
    }
}
