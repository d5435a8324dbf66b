//! The examples a stage trains on, addressed by index: images (normalized on the way in, augmented
//! in training batches), or what the frozen part of a transfer classifier computed from them
//! (`features`).

use burn::prelude::*;
use data::ImageSet;
use data::augment::Augment;
use data::batch::Draw;
use data::normalize::Normalization;

/// Labelled examples, addressed by index.
pub trait Examples<I>: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The inputs and labels at `indices`, on `device`.
    fn batch(&self, indices: &[usize], device: &Device) -> (I, Tensor<1, Int>);
    /// A training batch of epoch `epoch`: [`Examples::batch`] with whatever augmentation the
    /// examples apply, drawn from `seed`.
    fn training_batch(
        &self,
        indices: &[usize],
        _seed: u64,
        _epoch: usize,
        device: &Device,
    ) -> (I, Tensor<1, Int>) {
        self.batch(indices, device)
    }
}

/// Images, normalized on the way into the network and augmented in training batches.
pub struct Images<'a> {
    pub set: &'a ImageSet,
    pub norm: &'a Normalization,
    pub augment: Augment,
}

impl Examples<Tensor<4>> for Images<'_> {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        (
            data::batch::images(self.set, indices, self.norm, device),
            data::batch::labels(self.set, indices, device),
        )
    }

    fn training_batch(
        &self,
        indices: &[usize],
        seed: u64,
        epoch: usize,
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        augmented(
            self.set,
            indices,
            &self.augment,
            Draw { seed, epoch },
            self.set.side,
            self.norm,
            device,
        )
        .unwrap_or_else(|| self.batch(indices, device))
    }
}

/// A training batch of `set` augmented as `augment` says at `side`, or `None` where it changes
/// nothing.
fn augmented(
    set: &ImageSet,
    indices: &[usize],
    augment: &Augment,
    draw: Draw,
    side: usize,
    norm: &Normalization,
    device: &Device,
) -> Option<(Tensor<4>, Tensor<1, Int>)> {
    (!augment.is_identity()).then(|| {
        (
            data::batch::augmented_images(set, indices, augment, draw, side, norm, device),
            data::batch::labels(set, indices, device),
        )
    })
}

/// Images resized to a network's input side and scaled as it was trained, augmented (before the
/// resize) in training batches.
pub struct ResizedImages<'a> {
    pub set: &'a ImageSet,
    pub side: usize,
    pub norm: &'a Normalization,
    pub augment: Augment,
}

impl Examples<Tensor<4>> for ResizedImages<'_> {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        (
            data::batch::resized_images(self.set, indices, self.side, self.norm, device),
            data::batch::labels(self.set, indices, device),
        )
    }

    fn training_batch(
        &self,
        indices: &[usize],
        seed: u64,
        epoch: usize,
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        augmented(
            self.set,
            indices,
            &self.augment,
            Draw { seed, epoch },
            self.side,
            self.norm,
            device,
        )
        .unwrap_or_else(|| self.batch(indices, device))
    }
}
