//! Network definitions and nothing else: the tutorial's small convnet ([`convnet`]), a fast
//! BatchNorm convnet for CPU training ([`fastnet`]), the
//! EfficientNet-Lite0 ImageNet network split into a backbone and a head ([`efficientnet`]), and the
//! transfer classifier that puts a new head on that backbone ([`transfer`]).
//!
//! Not here: how networks are trained (the `train` crate), how images become tensors (the `data`
//! crate), or where weights come from (the binaries). Every network can hand back its intermediate
//! feature maps by layer name ([`FeatureMap`]), because Burn has no forward hooks and the
//! visualization tools need them.

pub mod convnet;
pub mod efficientnet;
pub mod fastnet;
pub mod transfer;

use burn::Tensor;

/// One named intermediate output of a network, `[batch, channels, height, width]`.
#[derive(Debug, Clone)]
pub struct FeatureMap {
    pub layer: String,
    pub map: Tensor<4>,
}
