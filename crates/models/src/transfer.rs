//! The transfer classifier: the pretrained EfficientNet-Lite0 backbone, frozen, under a new head
//! for the user's classes.

use burn::prelude::*;

use crate::efficientnet::{ClassifierHead, EfficientNet};

#[derive(Config, Debug)]
pub struct TransferHeadConfig {
    pub num_classes: usize,
    /// Dropout on the pooled features before the new dense layer.
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Units of a hidden ReLU layer between the features and the dense layer; 0 means none.
    #[config(default = 0)]
    pub hidden_units: usize,
}

impl TransferHeadConfig {
    /// A new head for `[batch, 1280]` pooled backbone features.
    pub fn init_head(&self, device: &Device) -> ClassifierHead {
        ClassifierHead::new(self.num_classes, self.hidden_units, self.dropout, device)
    }
}

/// Put `head` on the backbone of `pretrained` and freeze the backbone: no gradients, and BatchNorm
/// in inference mode with its running statistics fixed.
pub fn with_frozen_backbone(pretrained: EfficientNet, head: ClassifierHead) -> EfficientNet {
    EfficientNet {
        backbone: pretrained.backbone.freeze(),
        head,
    }
}
