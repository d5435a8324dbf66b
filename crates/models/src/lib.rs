//! Network definitions: the tutorial's small convnet ([`convnet`]), a BatchNorm convnet for fast
//! CPU training ([`fastnet`]), the EfficientNet-Lite0 ImageNet network split into a backbone and a
//! head ([`efficientnet`]), the transfer classifier that puts a new head on that backbone
//! ([`transfer`]), airbench's patch-whitening filters for a fixed first layer ([`whitening`]), and
//! the CPU kernels of our own they run on ([`kernels`]).
//!
//! Not here: how networks are trained (the `train` crate), how images become tensors (the `data`
//! crate), or where weights come from (the binaries). Every network can hand back its intermediate
//! feature maps by layer name ([`FeatureMap`]), because Burn has no forward hooks and the
//! visualization tools need them.

pub mod convnet;
pub mod efficientnet;
pub mod fastnet;
pub mod kernels;
pub mod transfer;
pub mod whitening;

use burn::Tensor;

/// One named intermediate output of a network, `[batch, channels, height, width]`.
#[derive(Debug, Clone)]
pub struct FeatureMap {
    pub layer: String,
    pub map: Tensor<4>,
}

/// Keeps the maps of the layers asked for as a network's forward pass reports each of its maps.
pub(crate) struct MapCollector<'a> {
    wanted: &'a [&'a str],
    pub kept: Vec<FeatureMap>,
}

impl<'a> MapCollector<'a> {
    pub fn new(wanted: &'a [&'a str]) -> Self {
        Self {
            wanted,
            kept: Vec::new(),
        }
    }

    pub fn see(&mut self, layer: &str, map: &Tensor<4>) {
        if self.wanted.contains(&layer) {
            self.kept.push(FeatureMap {
                layer: layer.to_string(),
                map: map.clone(),
            });
        }
    }
}
