//! A small BatchNorm convnet chosen for accuracy per CPU second on 32x32 images, after the
//! shape of Keller Jordan's airbench: a 3x3 stem, then three blocks of (conv 3x3, max-pool 2,
//! BatchNorm, ReLU, conv 3x3, BatchNorm, ReLU) halving the side each time, then a global max-pool
//! and one dense layer. Optionally the stem is airbench's fixed patch-whitening layer.

use burn::module::Param;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

use kernels::{batch_norm_activated, conv2d_fixed};
use serde::{Deserialize, Serialize};

use crate::classifier::{ImageClassifier, InputSpec, Seen};
use crate::conv_block::{Activation, Block, ConvBn};
use crate::registry::Blueprint;
use crate::whitening::whitening_filters;

/// The names of the layers whose outputs [`FastNet::forward_maps`] can return, in network order.
pub const MAP_LAYERS: [&str; 4] = ["stem", "block1", "block2", "block3"];

/// `model.name = "fastnet"`: its widths, and whether its stem whitens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FastNetSpec {
    /// Channels of the stem and of the three blocks.
    pub widths: [usize; 4],
    /// The stem's filters are fixed to whiten 3x3 patches of the training images (airbench's
    /// first layer) instead of being trained; manifests written before it existed have none.
    pub whiten: bool,
}

impl Default for FastNetSpec {
    fn default() -> Self {
        Self {
            widths: [32, 64, 128, 256],
            whiten: false,
        }
    }
}

impl FastNetSpec {
    /// airbench's sample size: the patch statistics settle well before 5,000 images.
    const WHITENING_SAMPLE: usize = 5000;
}

impl Blueprint for FastNetSpec {
    type Network = FastNet;

    /// Each block halves the side: three times.
    fn input(&self) -> InputSpec {
        InputSpec {
            min_side: 8,
            side_multiple: 8,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.widths.contains(&0) {
            return Err("model.widths must all be at least 1".into());
        }
        let stem = self.widths[0];
        if self.whiten && (stem % 2 == 1 || stem > 54) {
            return Err(format!(
                "model.whiten needs an even model.widths[0] of at most 54 (two filters per principal direction of a 3x3x3 patch), got {stem}"
            ));
        }
        Ok(())
    }

    fn sample_size(&self) -> usize {
        if self.whiten {
            Self::WHITENING_SAMPLE
        } else {
            0
        }
    }

    fn init(
        &self,
        classes: usize,
        _: usize,
        sample: Option<Tensor<4>>,
        device: &Device,
    ) -> FastNet {
        let net = FastNetConfig::new()
            .with_num_classes(classes)
            .with_widths(self.widths)
            .with_whiten(self.whiten)
            .init(device);
        match sample.filter(|_| self.whiten) {
            Some(images) => net.with_whitened_stem(images),
            None => net,
        }
    }
}

#[derive(Config, Debug)]
pub struct FastNetConfig {
    #[config(default = 10)]
    pub num_classes: usize,
    /// Channels of the stem and of the three blocks.
    #[config(default = "[32, 64, 128, 256]")]
    pub widths: [usize; 4],
    /// Whether the stem's filters are fixed (set by [`FastNet::with_whitened_stem`]) rather than
    /// trained.
    #[config(default = false)]
    pub whiten: bool,
}

fn conv_bn(c_in: usize, c_out: usize, device: &Device) -> ConvBn {
    ConvBn {
        conv: Conv2dConfig::new([c_in, c_out], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .with_bias(false)
            .init(device),
        bn: BatchNormConfig::new(c_out).init(device),
    }
}

#[derive(Module, Debug)]
pub struct FastNet {
    stem: ConvBn,
    blocks: Vec<Block>,
    fc: Linear,
    fixed_stem: bool,
}

impl FastNetConfig {
    pub fn init(&self, device: &Device) -> FastNet {
        let w = self.widths;
        FastNet {
            stem: conv_bn(3, w[0], device),
            blocks: (0..3)
                .map(|i| {
                    Block::new(
                        conv_bn(w[i], w[i + 1], device),
                        conv_bn(w[i + 1], w[i + 1], device),
                    )
                })
                .collect(),
            fc: LinearConfig::new(w[3], self.num_classes).init(device),
            fixed_stem: self.whiten,
        }
    }
}

impl FastNet {
    /// The stem's filters set to whiten the 3x3 patches of `images` (normalized training images),
    /// as airbench's first layer: the patches' `widths[0] / 2` leading principal directions, each
    /// scaled to unit variance, and their negations. They stay fixed when the config says
    /// `whiten`.
    ///
    /// # Panics
    /// If `widths[0]` is odd or above 54 (twice the 27 values of a patch).
    pub fn with_whitened_stem(mut self, images: Tensor<4>) -> Self {
        let weight = &self.stem.conv.weight;
        let [channels, ..] = weight.dims();
        assert!(
            channels % 2 == 0 && channels <= 54,
            "a whitening stem needs an even width of at most 54, not {channels}"
        );
        let filters = whitening_filters(images, 3, channels / 2).to_device(&weight.device());
        self.stem.conv.weight = Param::from_tensor(filters);
        self
    }
}

impl ImageClassifier for FastNet {
    /// The stem and the three blocks: `[b, 3, side, side]` → `block3`'s `[b, widths[3], side/8,
    /// side/8]`.
    fn features(&self, x: Tensor<4>, seen: Seen) -> Tensor<4> {
        // A fixed stem's filters get no gradient, whatever a loaded record says about them.
        let mut x = if self.fixed_stem && x.device().is_autodiff() {
            batch_norm_activated(
                &self.stem.bn,
                conv2d_fixed(&self.stem.conv, x),
                kernels::Activation::Relu,
            )
        } else {
            self.stem.forward(x, Activation::Relu)
        };
        seen(MAP_LAYERS[0], &x);
        for (block, name) in self.blocks.iter().zip(&MAP_LAYERS[1..]) {
            x = block.forward(x, Activation::Relu);
            seen(name, &x);
        }
        x
    }

    fn map_layers(&self) -> Vec<String> {
        MAP_LAYERS.map(String::from).into()
    }

    /// `block3`'s output → logits: the maximum of each channel, then the dense layer.
    fn classify_maps(&self, maps: Tensor<4>) -> Tensor<2> {
        let pooled: Tensor<2> = maps.flatten::<3>(2, 3).max_dim(2).flatten(1, 2);
        self.fc.forward(pooled)
    }

    /// The stem's filters, `[widths[0], 3, 3, 3]`.
    fn first_filters(&self) -> Tensor<4> {
        self.stem.conv.weight.val()
    }

    fn fixed_layers(&self) -> Vec<String> {
        if self.fixed_stem {
            vec!["stem.conv".into()]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_block_halves_the_side() {
        let device = Device::flex();
        let net = FastNetConfig::new()
            .with_widths([8, 16, 24, 32])
            .init(&device);
        let (logits, shapes) = crate::classifier::shapes_for_two(&net, 32, &device);
        assert_eq!(logits, [2, 10]);
        assert_eq!(
            shapes,
            [
                [2, 8, 32, 32],
                [2, 16, 16, 16],
                [2, 24, 8, 8],
                [2, 32, 4, 4]
            ]
        );
    }

    #[test]
    fn a_whitened_stem_stays_fixed() {
        let device = Device::flex().autodiff();
        let images =
            Tensor::<4>::random([4, 3, 8, 8], burn::tensor::Distribution::Default, &device);
        let net = FastNetConfig::new()
            .with_widths([8, 8, 8, 8])
            .with_whiten(true)
            .init(&device)
            .with_whitened_stem(images.clone());
        let filters = net.first_filters();
        assert_eq!(filters.dims(), [8, 3, 3, 3]);
        let grads = net.forward(images).sum().backward();
        assert!(
            filters.grad(&grads).is_none(),
            "no gradient for the fixed stem"
        );
        let fc = net.fc.weight.val();
        assert!(fc.grad(&grads).is_some(), "the rest still learns");
    }
}
