//! What the training loop needs from a network and from its examples, so one loop trains the
//! convnet on images, the transfer classifier's top on cached features, and a whole EfficientNet.

use burn::prelude::*;
use burn::tensor::ops::PadMode;
use data::ImageSet;
use data::augment::Augment;
use data::normalize::Normalization;
use models::convnet::ConvNet;
use models::efficientnet::EfficientNet;
use models::fastnet::FastNet;
use models::transfer::TransferTop;

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

impl Network for ConvNet {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
    fn views(images: Tensor<4>, augment: TestTimeAugment) -> Vec<(Tensor<4>, f32)> {
        image_views(images, augment)
    }
}

impl Network for FastNet {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
    fn views(images: Tensor<4>, augment: TestTimeAugment) -> Vec<(Tensor<4>, f32)> {
        image_views(images, augment)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(view: &Tensor<4>) -> Vec<f32> {
        view.to_data().try_to_vec::<f32>().unwrap()
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
