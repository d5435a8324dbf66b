//! airbench94's network (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv
//! 2404.00498): a fixed 2x2 patch-whitening convolution with a bias that trains only for the first
//! epochs, then three blocks of (conv 3x3, max-pool 2, BatchNorm, activation, conv 3x3, BatchNorm,
//! activation), a global max-pool and a bias-free dense layer whose logits are scaled down. Its
//! BatchNorm layers keep their scale at 1 unless told otherwise, and its convolutions may start
//! as the identity on their first input channels.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use kernels::conv2d_fixed;
use serde::{Deserialize, Serialize};

use crate::classifier::{ImageClassifier, InputSpec, Seen};
pub use crate::conv_block::Activation;
use crate::conv_block::{Block, ConvBn};
use crate::registry::Blueprint;
use crate::whitening::whitening_filters;

/// The names of the layers whose outputs [`AirNet::forward_maps`] can return, in network order.
pub const MAP_LAYERS: [&str; 4] = ["stem", "block1", "block2", "block3"];

/// `model.name = "airnet"`: airbench94's network and its choices, as `[model]` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AirNetSpec {
    /// Channels of the three blocks (the stem's are `2 · 3 · whiten_kernel²`).
    pub widths: [usize; 3],
    /// Side of the whitening stem's patches: 2 is airbench's (24 filters), 3 gives 54.
    pub whiten_kernel: usize,
    /// The stem's bias trains for this many epochs of a stage, then stays as it is.
    pub whiten_bias_epochs: usize,
    pub activation: Activation,
    /// How far each training batch moves BatchNorm's running statistics (PyTorch's convention:
    /// `running ← (1 − m)·running + m·batch`).
    pub batch_norm_momentum: f64,
    pub batch_norm_epsilon: f64,
    /// Train BatchNorm's scale; airbench keeps it at 1 and trains the shift alone.
    pub batch_norm_scale: bool,
    /// Each convolution starts as the identity on its first input channels (the others keep the
    /// default random start).
    pub dirac_init: bool,
    /// The logits are the dense layer's output times this (airbench's 1/9).
    pub logit_scale: f64,
}

impl Default for AirNetSpec {
    /// airbench94's settings.
    fn default() -> Self {
        Self {
            widths: [64, 256, 256],
            whiten_kernel: 2,
            whiten_bias_epochs: 3,
            activation: Activation::Gelu,
            batch_norm_momentum: 0.4,
            batch_norm_epsilon: 1e-12,
            batch_norm_scale: false,
            dirac_init: true,
            logit_scale: 1.0 / 9.0,
        }
    }
}

impl AirNetSpec {
    /// airbench's sample size: the patch statistics settle well before 5,000 images.
    const WHITENING_SAMPLE: usize = 5000;
}

impl Blueprint for AirNetSpec {
    type Network = AirNet;

    /// The stem loses `whiten_kernel − 1` pixels; each block halves what is left, three times.
    fn input(&self) -> InputSpec {
        InputSpec {
            min_side: 8 + self.whiten_kernel.saturating_sub(1),
            side_multiple: 1,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.widths.contains(&0) {
            return Err("model.widths must all be at least 1".into());
        }
        if !(1..=5).contains(&self.whiten_kernel) {
            return Err(format!(
                "model.whiten_kernel must be between 1 and 5, got {}",
                self.whiten_kernel
            ));
        }
        if !(self.batch_norm_momentum.is_finite()
            && (0.0..=1.0).contains(&self.batch_norm_momentum))
        {
            return Err(format!(
                "model.batch_norm_momentum must be in [0, 1], got {}",
                self.batch_norm_momentum
            ));
        }
        if !(self.batch_norm_epsilon.is_finite() && self.batch_norm_epsilon > 0.0) {
            return Err(format!(
                "model.batch_norm_epsilon must be positive, got {}",
                self.batch_norm_epsilon
            ));
        }
        if !(self.logit_scale.is_finite() && self.logit_scale > 0.0) {
            return Err(format!(
                "model.logit_scale must be positive, got {}",
                self.logit_scale
            ));
        }
        Ok(())
    }

    fn sample_size(&self) -> usize {
        Self::WHITENING_SAMPLE
    }

    fn init(&self, classes: usize, _: usize, sample: Option<Tensor<4>>, device: &Device) -> AirNet {
        let net = AirNet::new(self, classes, device);
        match sample {
            Some(images) => net.with_whitened_stem(images),
            None => net,
        }
    }
}

/// The whitening stem: fixed filters, and a bias that trains for the first epochs.
#[derive(Module, Debug)]
struct Whitening {
    conv: Conv2d,
    bias: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct AirNet {
    stem: Whitening,
    blocks: Vec<Block>,
    fc: Linear,
    #[module(skip)]
    activation: Activation,
    logit_scale: f64,
    whiten_bias_epochs: usize,
    /// Whether BatchNorm's scale trains (for [`ImageClassifier::fixed_layers`]).
    batch_norm_scale: bool,
    /// Whether the stem's bias trains in the current epoch (see [`ImageClassifier::for_epoch`]).
    stem_bias_trains: bool,
}

impl AirNet {
    fn new(spec: &AirNetSpec, classes: usize, device: &Device) -> Self {
        let k = spec.whiten_kernel;
        let stem_width = 2 * 3 * k * k;
        let conv = |c_in: usize, c_out: usize| {
            let conv = Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device);
            if spec.dirac_init {
                with_identity(conv)
            } else {
                conv
            }
        };
        let bn = |channels: usize| {
            let bn = BatchNormConfig::new(channels)
                .with_momentum(spec.batch_norm_momentum)
                .with_epsilon(spec.batch_norm_epsilon)
                .init(device);
            if spec.batch_norm_scale {
                bn
            } else {
                BatchNorm {
                    gamma: bn.gamma.set_require_grad(false),
                    ..bn
                }
            }
        };
        let widths = [stem_width, spec.widths[0], spec.widths[1], spec.widths[2]];
        Self {
            stem: Whitening {
                conv: Conv2dConfig::new([3, stem_width], [k, k])
                    .with_bias(false)
                    .init(device),
                bias: Param::from_tensor(Tensor::zeros([stem_width], device)),
            },
            blocks: (0..3)
                .map(|i| {
                    Block::new(
                        ConvBn {
                            conv: conv(widths[i], widths[i + 1]),
                            bn: bn(widths[i + 1]),
                        },
                        ConvBn {
                            conv: conv(widths[i + 1], widths[i + 1]),
                            bn: bn(widths[i + 1]),
                        },
                    )
                })
                .collect(),
            fc: LinearConfig::new(spec.widths[2], classes)
                .with_bias(false)
                .init(device),
            activation: spec.activation,
            logit_scale: spec.logit_scale,
            whiten_bias_epochs: spec.whiten_bias_epochs,
            batch_norm_scale: spec.batch_norm_scale,
            stem_bias_trains: spec.whiten_bias_epochs > 0,
        }
    }

    /// The stem's filters set to whiten the patches of `images` (normalized training images):
    /// every principal direction of a patch, scaled to unit variance, and its negation.
    pub fn with_whitened_stem(mut self, images: Tensor<4>) -> Self {
        let weight = &self.stem.conv.weight;
        let [channels, inputs, k, _] = weight.dims();
        debug_assert_eq!(channels, 2 * inputs * k * k);
        let filters = whitening_filters(images, k, channels / 2).to_device(&weight.device());
        self.stem.conv.weight = Param::from_tensor(filters);
        self
    }
}

/// `conv` with its first `inputs` filters replaced by the identity on the matching input channel
/// (PyTorch's `dirac_` on `weight[:inputs]`), so that a block starts close to passing its input
/// through.
fn with_identity(mut conv: Conv2d) -> Conv2d {
    let weight = conv.weight.val();
    let device = weight.device();
    let [outputs, inputs, kh, kw] = weight.dims();
    let mut values = crate::values(weight);
    for o in 0..outputs.min(inputs) {
        let filter = &mut values[o * inputs * kh * kw..][..inputs * kh * kw];
        filter.fill(0.0);
        filter[(o * kh + kh / 2) * kw + kw / 2] = 1.0;
    }
    conv.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(values, [outputs, inputs, kh, kw]),
        &device,
    ));
    conv
}

impl ImageClassifier for AirNet {
    /// The stem and the three blocks: `[b, 3, side, side]` → `block3`'s `[b, widths[2], s, s]`,
    /// `s = ⌊(side − whiten_kernel + 1) / 8⌋`.
    fn features(&self, x: Tensor<4>, seen: Seen) -> Tensor<4> {
        // No gradient reaches the whitening filters (nor is computed for them).
        let x = conv2d_fixed(&self.stem.conv, x);
        let channels = self.stem.bias.dims()[0];
        let bias = self.stem.bias.val().reshape([1, channels, 1, 1]);
        let bias = if self.stem_bias_trains {
            bias
        } else {
            bias.detach()
        };
        let mut x = self.activation.apply(x + bias);
        seen(MAP_LAYERS[0], &x);
        for (block, name) in self.blocks.iter().zip(&MAP_LAYERS[1..]) {
            x = block.forward(x, self.activation);
            seen(name, &x);
        }
        x
    }

    fn map_layers(&self) -> Vec<String> {
        MAP_LAYERS.map(String::from).into()
    }

    /// `block3`'s output → logits: the maximum of each channel, the dense layer, the scale.
    fn classify_maps(&self, maps: Tensor<4>) -> Tensor<2> {
        let pooled: Tensor<2> = maps.flatten::<3>(2, 3).max_dim(2).flatten(1, 2);
        self.fc.forward(pooled) * self.logit_scale
    }

    /// The whitening filters, `[2 · 3 · k², 3, k, k]`.
    fn first_filters(&self) -> Tensor<4> {
        self.stem.conv.weight.val()
    }

    /// The whitening filters, and BatchNorm's scales where they stay 1.
    fn fixed_layers(&self) -> Vec<String> {
        let mut fixed = vec!["stem.conv".to_string()];
        if !self.batch_norm_scale {
            for i in 0..self.blocks.len() {
                for part in ["first", "second"] {
                    fixed.push(format!("blocks.{i}.{part}.bn.gamma"));
                }
            }
        }
        fixed
    }

    fn for_epoch(self, epoch: usize) -> Self {
        Self {
            stem_bias_trains: epoch < self.whiten_bias_epochs,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    fn tiny() -> AirNetSpec {
        AirNetSpec {
            widths: [8, 16, 16],
            ..AirNetSpec::default()
        }
    }

    #[test]
    fn the_stem_loses_a_pixel_and_each_block_halves_the_side() {
        let device = Device::flex();
        let spec = tiny();
        assert_eq!(spec.input().min_side, 9);
        let net = spec.init(10, 32, None, &device);
        let (logits, shapes) = crate::classifier::shapes_for_two(&net, 32, &device);
        assert_eq!(logits, [2, 10]);
        assert_eq!(
            shapes,
            [
                [2, 24, 31, 31],
                [2, 8, 15, 15],
                [2, 16, 7, 7],
                [2, 16, 3, 3]
            ]
        );
    }

    #[test]
    fn convolutions_start_as_the_identity_on_their_first_channels() {
        let device = Device::flex();
        let conv = with_identity(Conv2dConfig::new([2, 3], [3, 3]).init(&device));
        let weight = crate::values(conv.weight.val());
        let filter = |o: usize| &weight[o * 18..][..18];
        let mut first = [0.0; 18];
        first[4] = 1.0;
        assert_eq!(filter(0), first);
        let mut second = [0.0; 18];
        second[9 + 4] = 1.0;
        assert_eq!(filter(1), second);
        assert!(
            filter(2).iter().any(|&v| v != 0.0),
            "the third stays random"
        );
    }

    #[test]
    fn what_trains_when() {
        let device = Device::flex().autodiff();
        let images = Tensor::<4>::random([4, 3, 12, 12], Distribution::Default, &device);
        let net = tiny().init(10, 12, Some(images.clone()), &device);
        let gradients = |net: &AirNet| {
            let grads = net.forward(images.clone()).sum().backward();
            let bn = &net.blocks[0].first.bn;
            [
                net.stem.conv.weight.val().grad(&grads).is_some(),
                net.stem.bias.val().grad(&grads).is_some(),
                bn.gamma.val().grad(&grads).is_some(),
                bn.beta.val().grad(&grads).is_some(),
                net.fc.weight.val().grad(&grads).is_some(),
            ]
        };
        let first = net.for_epoch(0);
        assert_eq!(gradients(&first), [false, true, false, true, true]);
        let later = first.for_epoch(3);
        assert_eq!(gradients(&later), [false, false, false, true, true]);
        let path = std::env::temp_dir().join(format!("airnet-{}.bpk", std::process::id()));
        crate::Classifier::Airnet(later).save(&path).unwrap();
        let fresh = crate::Classifier::Airnet(tiny().init(10, 12, None, &device));
        let crate::Classifier::Airnet(loaded) = fresh.load(&path).unwrap() else {
            unreachable!("an airnet loads as one")
        };
        assert_eq!(
            gradients(&loaded.for_epoch(3)),
            [false, false, false, true, true],
            "a saved network trains as it did"
        );
        std::fs::remove_file(&path).unwrap();
        let scaled = AirNetSpec {
            batch_norm_scale: true,
            ..tiny()
        };
        let net = scaled.init(10, 12, None, &device);
        assert!(gradients(&net)[2], "a trained scale gets a gradient");
    }

    #[test]
    fn the_whitened_stem_has_every_direction_and_its_negation() {
        let device = Device::flex();
        let images = Tensor::<4>::random([6, 3, 10, 10], Distribution::Default, &device);
        let net = tiny().init(10, 10, Some(images), &device);
        let filters = net.first_filters();
        assert_eq!(filters.dims(), [24, 3, 2, 2]);
        let halves = filters.split(12, 0);
        assert_eq!(halves[0].to_data(), halves[1].clone().neg().into_data());
    }
}
