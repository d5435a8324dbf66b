//! What the training loop needs from a network, so one loop trains any network of the registry
//! on images, the transfer classifier's top on cached maps, and a whole EfficientNet; and the
//! views of an input that test-time augmentation averages over.

use burn::prelude::*;
use burn::tensor::ops::PadMode;
use models::efficientnet::EfficientNet;
use models::transfer::TransferTop;
use models::{Classifier, ImageClassifier};

/// A classifier the loop can train.
pub trait Network: Module + 'static {
    type Input: Clone + Send;
    /// Inputs → logits `[batch, classes]`.
    fn logits(&self, input: Self::Input) -> Tensor<2>;
    /// The views of `input` whose predictions test-time augmentation averages, with weights that
    /// sum to 1; where the inputs are not images, the input alone.
    fn views(input: Self::Input, _augment: TestTimeAugment) -> Vec<(Self::Input, f32)> {
        vec![(input, 1.0)]
    }
    /// The network as it trains in epoch `epoch` of its stage (from 0); see
    /// [`ImageClassifier::for_epoch`].
    fn for_epoch(self, _epoch: usize) -> Self
    where
        Self: Sized,
    {
        self
    }
}

/// Test-time augmentation: each image is classified from the average of the predicted
/// probabilities of several views of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestTimeAugment {
    /// Add each view's mirror image.
    pub flip: bool,
    /// Add the image shifted this many pixels down-right and up-left (reflected at the borders);
    /// 0 adds none.
    pub translate: usize,
}

impl TestTimeAugment {
    /// Forward passes per input.
    pub fn passes(self) -> usize {
        let shifts = if self.translate > 0 { 3 } else { 1 };
        shifts * if self.flip { 2 } else { 1 }
    }
}

/// The views of `images` `[batch, channels, height, width]` for `augment`. As in airbench, the
/// unshifted image (and its mirror) weighs as much as the two shifted ones together: each shifted
/// view has lost a border to the reflection.
fn image_views(images: Tensor<4>, augment: TestTimeAugment) -> Vec<(Tensor<4>, f32)> {
    let mut groups = vec![vec![images.clone()]];
    let t = augment.translate;
    if t > 0 {
        let [batch, channels, height, width] = images.dims();
        let padded = images.pad((t, t, t, t), PadMode::Reflect);
        groups.push(
            [0, 2 * t]
                .map(|at| {
                    padded
                        .clone()
                        .slice([0..batch, 0..channels, at..at + height, at..at + width])
                })
                .into(),
        );
    }
    if augment.flip {
        for group in &mut groups {
            let mirrored: Vec<_> = group.iter().map(|view| view.clone().flip([3])).collect();
            group.extend(mirrored);
        }
    }
    let group_weight = 1.0 / groups.len() as f32;
    groups
        .into_iter()
        .flat_map(|group| {
            let weight = group_weight / group.len() as f32;
            group.into_iter().map(move |view| (view, weight))
        })
        .collect()
}

impl Network for Classifier {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
    fn views(images: Tensor<4>, augment: TestTimeAugment) -> Vec<(Tensor<4>, f32)> {
        image_views(images, augment)
    }
    fn for_epoch(self, epoch: usize) -> Self {
        ImageClassifier::for_epoch(self, epoch)
    }
}

/// The second stage of the transfer recipe trains the whole EfficientNet on images.
impl Network for EfficientNet {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
    fn views(images: Tensor<4>, augment: TestTimeAugment) -> Vec<(Tensor<4>, f32)> {
        image_views(images, augment)
    }
}

/// What the transfer classifier's top sees of a batch of images: the cached maps of the images
/// and, where the final evaluation averages over mirror images, those of their mirror images.
#[derive(Clone, Debug)]
pub struct Maps {
    pub plain: Tensor<4>,
    pub mirrored: Option<Tensor<4>>,
}

impl Network for TransferTop {
    type Input = Maps;
    fn logits(&self, maps: Maps) -> Tensor<2> {
        self.forward(maps.plain)
    }
    fn views(maps: Maps, augment: TestTimeAugment) -> Vec<(Maps, f32)> {
        let Maps { plain, mirrored } = maps;
        let alone = |plain| Maps {
            plain,
            mirrored: None,
        };
        match mirrored.filter(|_| augment.flip) {
            Some(mirrored) => vec![(alone(plain), 0.5), (alone(mirrored), 0.5)],
            None => vec![(alone(plain), 1.0)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(view: &Tensor<4>) -> Vec<f32> {
        models::values(view.clone())
    }

    #[test]
    fn views_shift_with_reflection_mirror_and_weigh_to_one() {
        let device = Device::flex();
        let values: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let images = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, 1, 4, 4]), &device);
        for (flip, translate) in [(false, 0), (true, 0), (false, 1), (true, 1), (true, 3)] {
            let augment = TestTimeAugment { flip, translate };
            let views = image_views(images.clone(), augment);
            assert_eq!(views.len(), augment.passes(), "{augment:?}");
            let total: f32 = views.iter().map(|(_, weight)| weight).sum();
            assert!((total - 1.0).abs() < 1e-6, "{augment:?}: {total}");
            assert_eq!(rows(&views[0].0), values, "{augment:?}");
        }

        let views = image_views(
            images,
            TestTimeAugment {
                flip: true,
                translate: 1,
            },
        );
        let weights: Vec<f32> = views.iter().map(|(_, weight)| *weight).collect();
        assert_eq!(weights, [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]);
        let down_right = [
            5., 4., 5., 6., 1., 0., 1., 2., 5., 4., 5., 6., 9., 8., 9., 10.,
        ];
        let up_left = [
            5., 6., 7., 6., 9., 10., 11., 10., 13., 14., 15., 14., 9., 10., 11., 10.,
        ];
        let mirrored = [
            3., 2., 1., 0., 7., 6., 5., 4., 11., 10., 9., 8., 15., 14., 13., 12.,
        ];
        let mirrored_down_right = [
            6., 5., 4., 5., 2., 1., 0., 1., 6., 5., 4., 5., 10., 9., 8., 9.,
        ];
        assert_eq!(rows(&views[1].0), mirrored);
        assert_eq!(rows(&views[2].0), down_right);
        assert_eq!(rows(&views[3].0), up_left);
        assert_eq!(rows(&views[4].0), mirrored_down_right);
    }
}
