//! The transfer classifier: the pretrained EfficientNet-Lite0 backbone under a new head for the
//! user's classes, and the part of it that trains while the rest stays frozen ([`TransferTop`]).

use burn::prelude::*;

use crate::efficientnet::{Backbone, BackboneTail, ClassifierHead, EfficientNet};

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

/// The trained part of a transfer classifier: the new head, and optionally the backbone's last
/// blocks. Its input is what the frozen part computes once per image: the map entering those
/// blocks, or without them the pooled features as `[batch, 1280, 1, 1]`.
#[derive(Module, Debug)]
pub struct TransferTop {
    pub tail: Option<BackboneTail>,
    pub head: ClassifierHead,
}

impl TransferTop {
    /// `head` on the last `tail_blocks` of `backbone`'s blocks (0: on its pooled features).
    pub fn new(backbone: &Backbone, head: ClassifierHead, tail_blocks: usize) -> Self {
        Self {
            tail: (tail_blocks > 0).then(|| backbone.tail(tail_blocks)),
            head,
        }
    }

    /// Maps entering the tail (or pooled features) → logits `[batch, classes]`.
    pub fn forward(&self, maps: Tensor<4>) -> Tensor<2> {
        let features = match &self.tail {
            Some(tail) => tail.forward(maps),
            None => {
                let [batch, channels, _, _] = maps.dims();
                maps.reshape([batch, channels])
            }
        };
        self.head.forward(features)
    }

    /// The whole classifier: `backbone` with this top on it.
    pub fn on(self, backbone: Backbone) -> EfficientNet {
        EfficientNet {
            backbone: match self.tail {
                Some(tail) => backbone.with_tail(tail),
                None => backbone,
            },
            head: self.head,
        }
    }
}
