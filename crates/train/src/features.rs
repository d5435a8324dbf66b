//! Pooled backbone features, computed once per image and cached on disk: the backbone of the
//! transfer recipe never changes, so after the first run an epoch only trains the head.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use data::ImageSet;
use data::normalize::Normalization;
use indicatif::{ProgressBar, ProgressStyle};
use models::efficientnet::Backbone;
use sha2::{Digest, Sha256};

use crate::network::Examples;

const MAGIC: &[u8; 8] = b"CKFEAT1\0";

/// One feature vector and label per image.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    pub dim: usize,
    pub values: Vec<f32>,
    pub labels: Vec<u16>,
}

impl Examples<Tensor<2>> for FeatureSet {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let mut values = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            values.extend_from_slice(&self.values[i * self.dim..(i + 1) * self.dim]);
        }
        let labels: Vec<i64> = indices.iter().map(|&i| i64::from(self.labels[i])).collect();
        (
            Tensor::from_data(TensorData::new(values, [indices.len(), self.dim]), device),
            Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
        )
    }
}

/// What the features of `set` depend on: the backbone's weights, the input side, and every pixel
/// and label. Another backbone, resolution or dataset never reuses them.
pub fn cache_key(weights_sha256: &str, resolution: usize, set: &ImageSet) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"efficientnet-lite0 pooled features v1\0");
    hasher.update(weights_sha256.as_bytes());
    hasher.update((resolution as u64).to_le_bytes());
    hasher.update((set.side as u64).to_le_bytes());
    hasher.update(&set.pixels);
    for label in &set.labels {
        hasher.update(label.to_le_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run `backbone` (in validation mode) over `set`, resized to `resolution`.
pub fn extract(
    backbone: &Backbone,
    set: &ImageSet,
    resolution: usize,
    batch_size: usize,
    what: &str,
    device: &Device,
) -> FeatureSet {
    let norm = Normalization::EFFICIENTNET_LITE;
    let bar = ProgressBar::new(set.len() as u64).with_style(
        ProgressStyle::with_template(
            "extracting {msg} features {wide_bar} {pos}/{len} [{elapsed} < {eta}, {per_sec}]",
        )
        .expect("valid template"),
    );
    bar.set_message(what.to_string());
    let started = std::time::Instant::now();
    let indices: Vec<usize> = (0..set.len()).collect();
    let mut values = Vec::with_capacity(set.len() * models::efficientnet::FEATURES);
    for chunk in indices.chunks(batch_size) {
        let images = data::batch::resized_images(set, chunk, resolution, &norm, device);
        let features = backbone.forward(images);
        values.extend(
            features
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 data"),
        );
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{what} features: {} images at {resolution}x{resolution} in {seconds:.0}s ({:.0} images/s)",
        set.len(),
        set.len() as f64 / seconds.max(1e-9)
    );
    FeatureSet {
        dim: models::efficientnet::FEATURES,
        values,
        labels: set.labels.clone(),
    }
}

fn encode(features: &FeatureSet) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(24 + features.values.len() * 4 + features.labels.len() * 2);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(features.labels.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(features.dim as u64).to_le_bytes());
    for v in &features.values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    for l in &features.labels {
        bytes.extend_from_slice(&l.to_le_bytes());
    }
    bytes
}

fn decode(bytes: &[u8]) -> Option<FeatureSet> {
    let header = bytes.get(..24)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let n = u64::from_le_bytes(header[8..16].try_into().ok()?) as usize;
    let dim = u64::from_le_bytes(header[16..24].try_into().ok()?) as usize;
    let floats = n.checked_mul(dim)?;
    if bytes.len() != 24 + floats.checked_mul(4)? + n.checked_mul(2)? {
        return None;
    }
    let (values, labels) = bytes[24..].split_at(floats * 4);
    Some(FeatureSet {
        dim,
        values: values
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        labels: labels
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    })
}

/// Where the features for `key` live.
pub fn cache_file(cache: &Path, key: &str) -> PathBuf {
    cache.join("features").join(format!("{key}.bin"))
}

/// The cached features for `key`, or `compute`'s result written to the cache (atomically).
/// Returns whether the cache was used. A damaged cache file is recomputed and replaced.
pub fn cached(
    cache: &Path,
    key: &str,
    compute: impl FnOnce() -> FeatureSet,
) -> anyhow::Result<(FeatureSet, bool)> {
    let path = cache_file(cache, key);
    if let Ok(bytes) = std::fs::read(&path) {
        match decode(&bytes) {
            Some(features) => return Ok((features, true)),
            None => eprintln!(
                "warning: {} is damaged; extracting the features again",
                path.display()
            ),
        }
    }
    let features = compute();
    data::fetch::write_atomic(&path, &encode(&features))?;
    Ok((features, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_survive_the_cache_format_and_damage_is_detected() {
        let features = FeatureSet {
            dim: 3,
            values: vec![1.0, -2.5, 3.0, 0.0, 7.0, 8.0],
            labels: vec![4, 9],
        };
        let bytes = encode(&features);
        assert_eq!(decode(&bytes), Some(features));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(b"garbage"), None);
    }
}
