//! What the training loop needs from a network and from its examples, so one loop trains the
//! convnet on images, a new head on cached features, and a whole EfficientNet.

use burn::prelude::*;
use data::ImageSet;
use data::normalize::Normalization;
use models::convnet::ConvNet;
use models::efficientnet::{ClassifierHead, EfficientNet};

/// A classifier the loop can train.
pub trait Network: Module + 'static {
    type Input: Clone;
    /// Inputs → logits `[batch, classes]`.
    fn logits(&self, input: Self::Input) -> Tensor<2>;
}

impl Network for ConvNet {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl Network for EfficientNet {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
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
}

/// Images, normalized on the way into the network.
pub struct Images<'a> {
    pub set: &'a ImageSet,
    pub norm: &'a Normalization,
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
}
