//! The config's network described layer by layer (`train --summary`), and the totals a run
//! prints as it starts: what trains and what the recipe keeps frozen, and the multiply-adds.

use burn::prelude::*;
use models::summary::{self, Summary};

use crate::config::TrainConfig;

/// The layers of the network `config` trains for `classes` classes, at the side its recipe feeds
/// it. For the transfer recipe, frozen means frozen in its first stage: the backbone but its
/// last `transfer.train_blocks` blocks (and its last convolution, which trains with them).
pub fn summarize(config: &TrainConfig, classes: usize, device: &Device) -> Summary {
    let architecture = &config.model;
    match architecture.pretrained() {
        Some(network) => {
            let side = config.transfer.resolution;
            let blocks = network.lite.blocks();
            let training = config.transfer.train_blocks;
            let frozen = |name: &str| {
                let Some(part) = name.strip_prefix("backbone.") else {
                    return false;
                };
                let tail = match part.strip_prefix("blocks.") {
                    Some(rest) => rest
                        .split('.')
                        .next()
                        .and_then(|i| i.parse::<usize>().ok())
                        .is_some_and(|i| i + training >= blocks),
                    None => part.starts_with("head."),
                };
                !(training > 0 && tail)
            };
            let net = architecture.init(classes, side, None, device);
            summary::summarize(&net, side, frozen, device)
        }
        None => {
            let side = config.data.image_size;
            let net = architecture.init(classes, side, None, device);
            summary::summarize(&net, side, |_| false, device)
        }
    }
}
