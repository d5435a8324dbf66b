//! Batches of images and labels as tensors.

use burn::prelude::*;
use rayon::prelude::*;

use crate::ImageSet;
use crate::augment::{Augment, Pass};
use crate::normalize::Normalization;
use rng::Rng;

/// The images at `indices` resized to `side` x `side` (bilinear, as `infer` resizes files, where
/// `side` is not the set's) and normalized: `[indices.len(), 3, side, side]`.
pub fn images(
    set: &ImageSet,
    indices: &[usize],
    side: usize,
    norm: &Normalization,
    device: &Device,
) -> Tensor<4> {
    normalized(set, indices, side, device, |_, image, out| {
        norm.apply(&crate::images::resize_planar(image, set.side, side), out)
    })
}

/// `[indices.len(), 3, side, side]` from `fill(place in batch, image, output)`, run in parallel.
fn normalized(
    set: &ImageSet,
    indices: &[usize],
    side: usize,
    device: &Device,
    fill: impl Fn(usize, &[u8], &mut [f32]) + Sync,
) -> Tensor<4> {
    let n = 3 * side * side;
    let mut values = vec![0f32; indices.len() * n];
    values
        .par_chunks_mut(n)
        .zip(indices)
        .enumerate()
        .for_each(|(k, (out, &i))| fill(k, set.image(i), out));
    Tensor::from_data(
        TensorData::new(values, [indices.len(), 3, side, side]),
        device,
    )
}

/// Which draws a training batch's augmentation takes: its generators are seeded from `seed`, and
/// `epoch` is the epoch it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Draw {
    pub seed: u64,
    pub epoch: usize,
}

/// The images at `indices`, each augmented as `draw` says with a generator of its own (from the
/// draw's seed and its place in the batch), resized to `side` x `side` (bilinear, where `side` is
/// not the set's), normalized, then cut out: `[indices.len(), 3, side, side]`.
pub fn augmented_images(
    set: &ImageSet,
    indices: &[usize],
    augment: &Augment,
    draw: Draw,
    side: usize,
    norm: &Normalization,
    device: &Device,
) -> Tensor<4> {
    normalized(set, indices, side, device, |k, image, out| {
        let mut rng = Rng::new(rng::derive(draw.seed, rng::Stream::Image, k as u64));
        let pass = Pass {
            image: indices[k],
            epoch: draw.epoch,
        };
        let augmented = augment.apply(image, set.side, pass, &mut rng);
        norm.apply(
            &crate::images::resize_planar(&augmented, set.side, side),
            out,
        );
        augment.erase(out, side, &mut rng);
    })
}

/// The labels at `indices`: `[indices.len()]`.
pub fn labels(set: &ImageSet, indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = indices.iter().map(|&i| i64::from(set.labels[i])).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each training image resized as it is or as its mirror image, never anything else.
    #[test]
    fn flipped_images_are_resized_after_the_flip() {
        let device = Device::flex();
        let side = 6;
        let mut set = ImageSet::new(side);
        let mut mirrors = ImageSet::new(side);
        for i in 0..8u8 {
            let image: Vec<u8> = (0..3 * side * side)
                .map(|p| (p as u8).wrapping_mul(37).wrapping_add(i * 11))
                .collect();
            let mirror: Vec<u8> = image
                .chunks(side)
                .flat_map(|row| row.iter().rev().copied())
                .collect();
            set.push(&image, 0);
            mirrors.push(&mirror, 0);
        }
        let indices: Vec<usize> = (0..set.len()).collect();
        let norm = Normalization::Affine {
            offset: 127.0,
            scale: 128.0,
        };
        let resized = |set| images(set, &indices, 10, &norm, &device).into_data();
        let (plain, mirrored) = (resized(&set), resized(&mirrors));
        let flip = Augment {
            flip: true,
            ..Augment::default()
        };
        let mut seen = [false; 2];
        for seed in 0..4 {
            let draw = Draw { seed, epoch: 0 };
            let out = augmented_images(&set, &indices, &flip, draw, 10, &norm, &device);
            let out = out.into_data();
            let values = out.as_slice::<f32>().unwrap();
            let image_len = 3 * 10 * 10;
            for (k, got) in values.chunks(image_len).enumerate() {
                let as_is = &plain.as_slice::<f32>().unwrap()[k * image_len..][..image_len];
                let as_mirror = &mirrored.as_slice::<f32>().unwrap()[k * image_len..][..image_len];
                assert!(got == as_is || got == as_mirror, "image {k}, seed {seed}");
                seen[usize::from(got == as_mirror)] = true;
            }
        }
        assert_eq!(seen, [true, true], "some images flipped, some not");
    }
}
