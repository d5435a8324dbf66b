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

/// Images at the network's input side (resized where it is not theirs) and scaled as it was
/// trained, augmented (before any resize) in training batches.
pub struct Images<'a> {
    pub set: &'a ImageSet,
    pub side: usize,
    pub norm: &'a Normalization,
    pub augment: Augment,
}

impl Examples<Tensor<4>> for Images<'_> {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        (
            data::batch::images(self.set, indices, self.side, self.norm, device),
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
        let draw = Draw { seed, epoch };
        (
            data::batch::augmented_images(
                self.set,
                indices,
                &self.augment,
                draw,
                self.side,
                self.norm,
                device,
            ),
            data::batch::labels(self.set, indices, device),
        )
    }
}
