//! The examples a stage trains on, addressed by index: images (normalized on the way in, augmented
//! in training batches), or what the frozen part of a transfer classifier computed from them
//! (`features`).

use burn::prelude::*;
use data::ImageSet;
use data::augment::Augment;
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
        if self.augment.is_identity() {
            return self.batch(indices, device);
        }
        (
            data::batch::augmented_images(
                self.set,
                indices,
                &self.augment,
                seed,
                epoch,
                self.norm,
                device,
            ),
            data::batch::labels(self.set, indices, device),
        )
    }
}

/// Images resized to a network's input side and scaled as it was trained.
pub struct ResizedImages<'a> {
    pub set: &'a ImageSet,
    pub side: usize,
    pub norm: &'a Normalization,
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
}
