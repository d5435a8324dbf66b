//! What every network here offers its users — training, inference and the tools that look inside
//! a network — as one trait, [`ImageClassifier`], and the inputs a network accepts
//! ([`InputSpec`]).

use burn::prelude::*;

/// One named intermediate output of a network, `[batch, channels, height, width]`.
#[derive(Debug, Clone)]
pub struct FeatureMap {
    pub layer: String,
    pub map: Tensor<4>,
}

/// What a network's convolutional part shows of each named map as it computes it.
pub type Seen<'a> = &'a mut dyn FnMut(&str, &Tensor<4>);

/// An image classifier: normalized square images in, class logits out, and the named maps in
/// between, because Burn has no forward hooks and the visualization tools need them. A network
/// is its convolutional part ([`ImageClassifier::features`]) and the rest
/// ([`ImageClassifier::classify_maps`]).
pub trait ImageClassifier: Module {
    /// The convolutional part: `[batch, 3, side, side]` normalized images → the last maps (the
    /// output of [`ImageClassifier::cam_layer`]), showing each named map to `seen` on the way.
    fn features(&self, images: Tensor<4>, seen: Seen) -> Tensor<4>;

    /// `[batch, 3, side, side]` normalized images → logits `[batch, classes]`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.classify_maps(self.features(images, &mut |_, _| {}))
    }

    /// The logits and the maps of the layers named in `layers` (see
    /// [`ImageClassifier::map_layers`]), in network order.
    fn forward_maps(&self, images: Tensor<4>, layers: &[&str]) -> (Tensor<2>, Vec<FeatureMap>) {
        let mut collector = MapCollector::new(layers);
        let maps = self.features(images, &mut |layer, map| collector.see(layer, map));
        (self.classify_maps(maps), collector.kept)
    }

    /// The names of the layers whose maps [`ImageClassifier::forward_maps`] can return, in
    /// network order.
    fn map_layers(&self) -> Vec<String>;

    /// The layer Grad-CAM reads: the last map, whose output [`ImageClassifier::classify_maps`]
    /// takes to the logits.
    fn cam_layer(&self) -> String {
        self.map_layers()
            .pop()
            .expect("a network has at least one map")
    }

    /// The rest of the network after [`ImageClassifier::cam_layer`]: its output → logits.
    fn classify_maps(&self, maps: Tensor<4>) -> Tensor<2>;

    /// Layers (by their path in the module tree), or single parameters of a layer (the path
    /// and the field, `blocks.0.bn.gamma`), that never train, such as a fixed whitening stem.
    fn fixed_layers(&self) -> Vec<String> {
        Vec::new()
    }

    /// The first convolution's filters, `[out, in, k, k]`.
    fn first_filters(&self) -> Tensor<4>;

    /// The network as it trains in epoch `epoch` (counted from 0 in its training stage), for
    /// networks where what trains changes with the epoch (airnet's stem bias).
    fn for_epoch(self, _epoch: usize) -> Self
    where
        Self: Sized,
    {
        self
    }

    /// The same function in a faster form for inference (BatchNorm folded into the convolutions
    /// where the network has them); not for training or saving.
    fn fold_batchnorm(self) -> Self
    where
        Self: Sized,
    {
        self
    }
}

/// The square inputs a network accepts: at least `min_side` pixels a side, a multiple of
/// `side_multiple`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpec {
    pub min_side: usize,
    pub side_multiple: usize,
}

impl InputSpec {
    /// Any side from 1.
    pub const ANY: Self = Self {
        min_side: 1,
        side_multiple: 1,
    };

    /// Whether `side` fits, or why not, naming the config key that sets it.
    pub fn check(&self, network: &str, side: usize) -> Result<(), String> {
        if side < self.min_side {
            return Err(format!(
                "{network} needs images of at least {0}x{0}; set data.image_size to {0} or more",
                self.min_side
            ));
        }
        if !side.is_multiple_of(self.side_multiple) {
            return Err(format!(
                "{network} needs an image side that is a multiple of {}; set data.image_size to one",
                self.side_multiple
            ));
        }
        Ok(())
    }
}

/// Keeps the maps of the layers asked for as a network's forward pass reports each of its maps.
struct MapCollector<'a> {
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

/// The logits' shape and the shapes of every named map of `net` for two zero images of `side`
/// pixels, in network order.
#[cfg(test)]
pub(crate) fn shapes_for_two<M: ImageClassifier>(
    net: &M,
    side: usize,
    device: &Device,
) -> ([usize; 2], Vec<[usize; 4]>) {
    let images = Tensor::<4>::zeros([2, 3, side, side], device);
    let layers = net.map_layers();
    let names: Vec<&str> = layers.iter().map(String::as_str).collect();
    let (logits, maps) = net.forward_maps(images, &names);
    (logits.dims(), maps.iter().map(|m| m.map.dims()).collect())
}
