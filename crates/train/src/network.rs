//! What the training loop needs from a network and from its examples, so one loop trains the
//! convnet on images, a new head on cached features, and a whole EfficientNet.

use burn::prelude::*;
use data::ImageSet;
use data::augment::Augment;
use data::normalize::Normalization;
use models::convnet::ConvNet;
use models::efficientnet::{ClassifierHead, EfficientNet};
use models::fastnet::FastNet;

/// A classifier the loop can train.
pub trait Network: Module + 'static {
    type Input: Clone + Send;
    /// Inputs → logits `[batch, classes]`.
    fn logits(&self, input: Self::Input) -> Tensor<2>;
    /// The inputs mirrored left-right, where the inputs are images.
    fn mirrored(_input: &Self::Input) -> Option<Self::Input> {
        None
    }
}

/// Images `[batch, channels, height, width]` mirrored left-right.
fn mirror(images: &Tensor<4>) -> Option<Tensor<4>> {
    Some(images.clone().flip([3]))
}

impl Network for ConvNet {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
    fn mirrored(images: &Tensor<4>) -> Option<Tensor<4>> {
        mirror(images)
    }
}

impl Network for FastNet {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
    fn mirrored(images: &Tensor<4>) -> Option<Tensor<4>> {
        mirror(images)
    }
}

impl Network for EfficientNet {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
    fn mirrored(images: &Tensor<4>) -> Option<Tensor<4>> {
        mirror(images)
    }
}

impl Network for ClassifierHead {
    type Input = Tensor<2>;
    fn logits(&self, features: Tensor<2>) -> Tensor<2> {
        self.forward(features)
    }
}

/// Labelled examples, addressed by index.
pub trait Examples<I>: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The inputs and labels at `indices`, on `device`.
    fn batch(&self, indices: &[usize], device: &Device) -> (I, Tensor<1, Int>);
    /// A training batch: [`Examples::batch`] with whatever augmentation the examples apply,
    /// drawn from `seed`.
    fn training_batch(
        &self,
        indices: &[usize],
        _seed: u64,
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
                self.norm,
                device,
            ),
            data::batch::labels(self.set, indices, device),
        )
    }
}
