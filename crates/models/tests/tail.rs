//! The backbone cut into a frozen part and a tail ([`Backbone::forward_until`],
//! [`Backbone::tail`]) computes what the whole backbone computes, and a tail put back
//! ([`Backbone::with_tail`]) replaces exactly the last blocks.

use burn::prelude::*;
use burn::tensor::Distribution;
use models::efficientnet::{EfficientNet, EfficientNetConfig};
use models::values;

fn network(seed: u64, device: &Device) -> EfficientNet {
    device.seed(seed);
    EfficientNetConfig::new().with_num_classes(5).init(device)
}

#[test]
fn the_backbone_cut_before_any_block_computes_the_same_features() {
    let device = Device::flex();
    let backbone = network(21, &device).backbone;
    let images = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let whole = values(backbone.forward(images.clone()));
    let blocks = backbone.blocks();
    for tail_blocks in [0, 1, 4, blocks] {
        let map = backbone.forward_until(images.clone(), blocks - tail_blocks);
        let cut = values(backbone.tail(tail_blocks).forward(map));
        assert_eq!(cut, whole, "tail of {tail_blocks} blocks");
    }
}

#[test]
fn a_tail_put_back_replaces_the_last_blocks_only() {
    let device = Device::flex();
    let (a, b) = (network(22, &device).backbone, network(23, &device).backbone);
    let images = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let joined = a.clone().with_tail(b.tail(2));
    let cut = a.blocks() - 2;
    let expected = values(b.tail(2).forward(a.forward_until(images.clone(), cut)));
    assert_eq!(values(joined.forward(images.clone())), expected);
    assert_ne!(values(a.forward(images)), expected, "the tail matters");
    assert_eq!(
        values(joined.forward_until(Tensor::ones([1, 3, 32, 32], &device), cut)),
        values(a.forward_until(Tensor::ones([1, 3, 32, 32], &device), cut)),
        "the blocks before the tail are the original's"
    );
}
