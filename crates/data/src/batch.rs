//! Batches of images and labels as tensors.

use burn::prelude::*;
use rayon::prelude::*;

use crate::ImageSet;
use crate::augment::{Augment, Pass};
use crate::normalize::Normalization;
use rng::Rng;

/// The images at `indices`, normalized: `[indices.len(), 3, side, side]`.
pub fn images(
    set: &ImageSet,
    indices: &[usize],
    norm: &Normalization,
    device: &Device,
) -> Tensor<4> {
    normalized(set, indices, device, |_, image, out| norm.apply(image, out))
}

/// `[indices.len(), 3, side, side]` from `fill(place in batch, image, output)`, run in parallel.
fn normalized(
    set: &ImageSet,
    indices: &[usize],
    device: &Device,
    fill: impl Fn(usize, &[u8], &mut [f32]) + Sync,
) -> Tensor<4> {
    let n = set.image_len();
    let mut values = vec![0f32; indices.len() * n];
    values
        .par_chunks_mut(n)
        .zip(indices)
        .enumerate()
        .for_each(|(k, (out, &i))| fill(k, set.image(i), out));
    Tensor::from_data(
        TensorData::new(values, [indices.len(), 3, set.side, set.side]),
        device,
    )
}

/// The images at `indices`, each augmented for `epoch` with a generator seeded from `seed` and
/// its place in the batch, normalized, then cut out: `[indices.len(), 3, side, side]`.
pub fn augmented_images(
    set: &ImageSet,
    indices: &[usize],
    augment: &Augment,
    seed: u64,
    epoch: usize,
    norm: &Normalization,
    device: &Device,
) -> Tensor<4> {
    normalized(set, indices, device, |k, image, out| {
        let mut rng = Rng::new(rng::derive(seed, rng::Stream::Image, k as u64));
        let pass = Pass {
            image: indices[k],
            epoch,
        };
        norm.apply(&augment.apply(image, set.side, pass, &mut rng), out);
        augment.erase(out, set.side, &mut rng);
    })
}

/// The images at `indices` resized to `side` x `side` (bilinear, as `infer` resizes files) and
/// normalized: `[indices.len(), 3, side, side]`.
pub fn resized_images(
    set: &ImageSet,
    indices: &[usize],
    side: usize,
    norm: &Normalization,
    device: &Device,
) -> Tensor<4> {
    let n = 3 * side * side;
    let mut values = vec![0f32; indices.len() * n];
    values.par_chunks_mut(n).zip(indices).for_each(|(out, &i)| {
        norm.apply(
            &crate::images::resize_planar(set.image(i), set.side, side),
            out,
        )
    });
    Tensor::from_data(
        TensorData::new(values, [indices.len(), 3, side, side]),
        device,
    )
}

/// The labels at `indices`: `[indices.len()]`.
pub fn labels(set: &ImageSet, indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = indices.iter().map(|&i| i64::from(set.labels[i])).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}
