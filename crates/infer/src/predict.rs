//! Classifying image files, a batch at a time; files that cannot be read are set aside.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use data::ImageSet;
use data::normalize::Normalization;
use models::efficientnet::{EfficientNet, Lite, LoadReport};
use models::{Classifier, ImageClassifier};
use serde::Serialize;
use store::checkpoint;

/// How a photo becomes the network's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocess {
    /// ImageNet evaluation: shorter side to `side * 256 / 224`, centre crop `side`.
    CenterCrop(usize),
    /// The whole picture resized to `side` x `side`, as `train` resizes images from folders.
    Resize(usize),
}

/// A network with everything needed to use it on files.
pub struct Predictor<M> {
    pub classifier: M,
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

/// A file that could not be classified, and why.
#[derive(Debug)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: anyhow::Error,
}

impl Predictor<EfficientNet> {
    /// `lite` with its ImageNet weights from the file `weights`.
    pub fn imagenet(
        lite: Lite,
        weights: &Path,
        device: &Device,
    ) -> anyhow::Result<(Self, LoadReport)> {
        let (net, report) = store::pretrained::load(weights, lite, device)?;
        let predictor = Self {
            classifier: net.fold_batchnorm(),
            labels: crate::imagenet::labels(),
            preprocess: Preprocess::CenterCrop(lite.resolution()),
            normalization: Normalization::EFFICIENTNET_LITE,
        };
        Ok((predictor, report))
    }
}

impl Predictor<Classifier> {
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
}

impl<M: ImageClassifier> Predictor<M> {
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
        data::batch::images(&set, &indices, set.side, &self.normalization, device)
    }

    /// The `top` most probable classes for each of `paths` that can be read, as one batch; and
    /// the files that could not be, with why.
    pub fn predict(
        &self,
        paths: &[PathBuf],
        top: usize,
        device: &Device,
    ) -> anyhow::Result<(Vec<Prediction>, Vec<Unreadable>)> {
        let mut readable = Vec::with_capacity(paths.len());
        let mut images = Vec::with_capacity(paths.len());
        let mut unreadable = Vec::new();
        for path in paths {
            match self.read_image(path) {
                Ok(image) => {
                    readable.push(path);
                    images.push(image);
                }
                Err(error) => unreadable.push(Unreadable {
                    path: path.clone(),
                    error,
                }),
            }
        }
        if images.is_empty() {
            return Ok((Vec::new(), unreadable));
        }
        let probabilities = softmax(self.classifier.forward(self.batch(&images, device)), 1);
        let values = models::values(probabilities);
        anyhow::ensure!(
            values.iter().all(|p| p.is_finite()),
            "the network's output is not a number: its weights hold NaN or infinite values; fetch the weights again, or train again"
        );
        let classes = self.labels.len();
        let predictions = readable
            .into_iter()
            .zip(values.chunks(classes))
            .map(|(path, row)| Prediction {
                image: path.clone(),
                predictions: self.top(row, top),
            })
            .collect();
        Ok((predictions, unreadable))
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
