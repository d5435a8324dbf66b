//! What the frozen part of the transfer classifier computes from each image — the pooled
//! features, or the map entering the blocks that train — once per image and cached on disk: that
//! part never changes, so after the first run an epoch only trains the top.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use data::ImageSet;
use data::normalize::Normalization;
use data::progress::{Progress, Unit};
use models::efficientnet::Backbone;
use rng::Rng;
use sha2::{Digest, Sha256};

use crate::examples::Examples;
use crate::network::Maps;

const MAGIC: &[u8; 8] = b"CKFEAT2\0";
/// The magic, then the number of images and the three sides of each map, as `u64`s.
const HEADER: usize = 8 + 4 * 8;

/// One `[channels, height, width]` map and label per image.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    pub shape: [usize; 3],
    pub values: Vec<f32>,
    pub labels: Vec<u16>,
}

impl Examples<Maps> for FeatureSet {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Maps, Tensor<1, Int>) {
        let views = MapViews {
            plain: self,
            mirrored: None,
        };
        views.batch(indices, device)
    }
}

/// The maps of a set of images and, for test-time flipping, of their mirror images.
pub struct MapViews<'a> {
    pub plain: &'a FeatureSet,
    pub mirrored: Option<&'a FeatureSet>,
}

impl Examples<Maps> for MapViews<'_> {
    fn len(&self) -> usize {
        self.plain.labels.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Maps, Tensor<1, Int>) {
        let (plain, labels) = self.plain.maps(indices, device);
        let maps = Maps {
            plain,
            mirrored: self.mirrored.map(|set| set.maps(indices, device).0),
        };
        (maps, labels)
    }
}

/// Training examples that are each image's maps or its mirror image's, drawn per example and
/// batch; outside training batches, the images' own.
pub struct RandomlyMirrored<'a> {
    pub plain: &'a FeatureSet,
    pub mirrored: &'a FeatureSet,
}

impl Examples<Maps> for RandomlyMirrored<'_> {
    fn len(&self) -> usize {
        self.plain.labels.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Maps, Tensor<1, Int>) {
        self.plain.batch(indices, device)
    }

    fn training_batch(
        &self,
        indices: &[usize],
        seed: u64,
        _epoch: usize,
        device: &Device,
    ) -> (Maps, Tensor<1, Int>) {
        let chosen: Vec<(&FeatureSet, usize)> = indices
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let mut rng = Rng::new(rng::derive(seed, rng::Stream::Image, k as u64));
                let set = if rng.below(2) == 1 {
                    self.mirrored
                } else {
                    self.plain
                };
                (set, i)
            })
            .collect();
        let (plain, labels) = self.plain.gather(&chosen, device);
        (
            Maps {
                plain,
                mirrored: None,
            },
            labels,
        )
    }
}

impl FeatureSet {
    /// Values per image.
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// The maps and labels at `indices`.
    fn maps(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let chosen: Vec<(&FeatureSet, usize)> = indices.iter().map(|&i| (self, i)).collect();
        self.gather(&chosen, device)
    }

    /// The maps and labels of the examples at `(set, index)`, from sets of this set's shape.
    fn gather(
        &self,
        chosen: &[(&FeatureSet, usize)],
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let dim = self.dim();
        let mut values = Vec::with_capacity(chosen.len() * dim);
        for &(set, i) in chosen {
            values.extend_from_slice(&set.values[i * dim..(i + 1) * dim]);
        }
        let labels: Vec<i64> = chosen
            .iter()
            .map(|&(set, i)| i64::from(set.labels[i]))
            .collect();
        let [channels, height, width] = self.shape;
        (
            Tensor::from_data(
                TensorData::new(values, [chosen.len(), channels, height, width]),
                device,
            ),
            Tensor::from_data(TensorData::new(labels, [chosen.len()]), device),
        )
    }
}

/// Where the frozen part of the backbone ends and what it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extraction {
    /// Side the images are resized to.
    pub resolution: usize,
    /// The last blocks that train, which the frozen part stops before; 0: the whole backbone is
    /// frozen and the features are pooled.
    pub tail_blocks: usize,
    /// The images are mirrored left to right first.
    pub mirrored: bool,
}

/// What the features of `set` depend on: the backbone's weights, where it is cut, the input side,
/// the mirroring, and every pixel and label. Another backbone, cut, resolution or dataset never
/// reuses them.
pub fn cache_key(weights_sha256: &str, extraction: Extraction, set: &ImageSet) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"efficientnet-lite0 features v2\0");
    hasher.update(weights_sha256.as_bytes());
    hasher.update((extraction.resolution as u64).to_le_bytes());
    hasher.update((extraction.tail_blocks as u64).to_le_bytes());
    hasher.update([u8::from(extraction.mirrored)]);
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

/// Run the frozen part of `backbone` (in validation mode) over `set`.
pub fn extract(
    backbone: &Backbone,
    set: &ImageSet,
    extraction: Extraction,
    batch_size: usize,
    what: &str,
    device: &Device,
) -> FeatureSet {
    let norm = Normalization::EFFICIENTNET_LITE;
    let bar = Progress::new(
        format!("extracting {what} features"),
        set.len() as u64,
        Unit::Items("images"),
    );
    let started = std::time::Instant::now();
    let indices: Vec<usize> = (0..set.len()).collect();
    let Extraction {
        resolution,
        tail_blocks,
        mirrored,
    } = extraction;
    let mut shape = [models::efficientnet::FEATURES, 1, 1];
    let mut values = Vec::new();
    for chunk in indices.chunks(batch_size) {
        let mut images = data::batch::images(set, chunk, resolution, &norm, device);
        if mirrored {
            images = images.flip([3]);
        }
        let features = match tail_blocks {
            0 => backbone.forward(images).unsqueeze_dims(&[2, 3]),
            n => backbone.forward_until(images, backbone.blocks() - n),
        };
        let [_, channels, height, width] = features.dims();
        shape = [channels, height, width];
        if values.is_empty() {
            values.reserve_exact(set.len() * channels * height * width);
        }
        values.extend(models::values(features));
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{what} features: {} images at {resolution}x{resolution} in {seconds:.0}s ({:.0} images/s)",
        set.len(),
        set.len() as f64 / seconds.max(1e-9)
    );
    FeatureSet {
        shape,
        values,
        labels: set.labels.clone(),
    }
}

fn encode(features: &FeatureSet) -> Vec<u8> {
    let mut bytes =
        Vec::with_capacity(HEADER + features.values.len() * 4 + features.labels.len() * 2);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(features.labels.len() as u64).to_le_bytes());
    for side in features.shape {
        bytes.extend_from_slice(&(side as u64).to_le_bytes());
    }
    for v in &features.values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    for l in &features.labels {
        bytes.extend_from_slice(&l.to_le_bytes());
    }
    bytes
}

fn decode(bytes: &[u8]) -> Option<FeatureSet> {
    let header = bytes.get(..HEADER)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let mut numbers = header[8..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()) as usize);
    let n = numbers.next()?;
    let shape = [numbers.next()?, numbers.next()?, numbers.next()?];
    let floats = shape
        .iter()
        .try_fold(n, |product, &side| product.checked_mul(side))?;
    if bytes.len() != HEADER + floats.checked_mul(4)? + n.checked_mul(2)? {
        return None;
    }
    let (values, labels) = bytes[HEADER..].split_at(floats * 4);
    Some(FeatureSet {
        shape,
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
    if let Some(dir) = path.parent() {
        data::fetch::sweep_stale(dir);
    }
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
            shape: [3, 1, 1],
            values: vec![1.0, -2.5, 3.0, 0.0, 7.0, 8.0],
            labels: vec![4, 9],
        };
        let bytes = encode(&features);
        assert_eq!(decode(&bytes), Some(features));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(b"garbage"), None);
    }

    #[test]
    fn randomly_mirrored_examples_draw_either_map_per_example_and_batch() {
        let labels: Vec<u16> = (0..8).collect();
        let set = |sign: f32| FeatureSet {
            shape: [1, 1, 2],
            values: (0..16).map(|v| sign * (v as f32 + 1.0)).collect(),
            labels: labels.clone(),
        };
        let (plain, mirrored) = (set(1.0), set(-1.0));
        let both = RandomlyMirrored {
            plain: &plain,
            mirrored: &mirrored,
        };
        let device = Device::flex();
        let indices = [5, 0, 7, 2, 3, 6];
        let signs = |seed| {
            let (maps, labels) = both.training_batch(&indices, seed, 1, &device);
            assert!(maps.mirrored.is_none());
            let labels: Vec<i64> = labels
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap();
            assert_eq!(labels, [5, 0, 7, 2, 3, 6]);
            let values = models::values(maps.plain);
            indices
                .iter()
                .zip(values.chunks(2))
                .map(|(&i, pair)| {
                    let expected = [2 * i + 1, 2 * i + 2].map(|v| v as f32);
                    match pair {
                        p if p == expected => 1.0,
                        p if p == expected.map(|v| -v) => -1.0,
                        other => panic!("example {i}: {other:?}"),
                    }
                })
                .collect::<Vec<f32>>()
        };
        let drawn: Vec<Vec<f32>> = (0..6).map(signs).collect();
        assert_eq!(drawn[3], signs(3), "the batch's seed decides");
        let mirrored_count = drawn.concat().iter().filter(|&&s| s < 0.0).count();
        assert!((8..28).contains(&mirrored_count), "{drawn:?}");
        assert!(drawn.windows(2).any(|w| w[0] != w[1]), "{drawn:?}");
        let (maps, _) = both.batch(&indices, &device);
        assert!(models::values(maps.plain).iter().all(|&v| v > 0.0));
    }
}
