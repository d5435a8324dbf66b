//! A trained classifier on disk: `model.json` says which network, its classes and how its inputs
//! are scaled; `model.bpk` holds the weights (Burn's burnpack format).

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::prelude::*;
use data::normalize::Normalization;
use models::FeatureMap;
use models::convnet::{self, ConvNet, ConvNetConfig};
use models::efficientnet::{self, EfficientNet, EfficientNetConfig};
use models::fastnet::{self, FastNet, FastNetConfig};
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "model.json";
pub const WEIGHTS: &str = "model.bpk";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    Convnet,
    Fastnet {
        widths: [usize; 4],
        /// A fixed patch-whitening stem; manifests written before it existed have none.
        #[serde(default)]
        whiten: bool,
    },
    EfficientnetLite0 {
        hidden_units: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub architecture: Architecture,
    pub classes: Vec<String>,
    /// Side of the square images the network takes.
    pub image_size: usize,
    pub normalization: Normalization,
}

/// Any network this project trains, ready for inference.
#[derive(Debug, Clone)]
pub enum Classifier {
    ConvNet(ConvNet),
    FastNet(FastNet),
    EfficientNet(EfficientNet),
}

impl Classifier {
    /// A freshly initialized network of the manifest's architecture.
    pub fn init(manifest: &Manifest, device: &Device) -> Self {
        let classes = manifest.classes.len();
        match manifest.architecture {
            Architecture::Convnet => Classifier::ConvNet(
                ConvNetConfig::new()
                    .with_num_classes(classes)
                    .with_image_size(manifest.image_size)
                    .init(device),
            ),
            Architecture::Fastnet { widths, whiten } => Classifier::FastNet(
                FastNetConfig::new()
                    .with_num_classes(classes)
                    .with_widths(widths)
                    .with_whiten(whiten)
                    .init(device),
            ),
            Architecture::EfficientnetLite0 { hidden_units } => Classifier::EfficientNet(
                EfficientNetConfig::new()
                    .with_num_classes(classes)
                    .with_hidden_units(hidden_units)
                    .init(device),
            ),
        }
    }

    pub fn into_convnet(self) -> Option<ConvNet> {
        match self {
            Classifier::ConvNet(net) => Some(net),
            _ => None,
        }
    }

    pub fn into_fastnet(self) -> Option<FastNet> {
        match self {
            Classifier::FastNet(net) => Some(net),
            _ => None,
        }
    }

    pub fn into_efficientnet(self) -> Option<EfficientNet> {
        match self {
            Classifier::EfficientNet(net) => Some(net),
            _ => None,
        }
    }

    /// `[batch, 3, side, side]` normalized images → logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Classifier::ConvNet(net) => net.forward(images),
            Classifier::FastNet(net) => net.forward(images),
            Classifier::EfficientNet(net) => net.forward(images),
        }
    }

    /// Logits and the named intermediate maps.
    pub fn forward_maps(&self, images: Tensor<4>, layers: &[&str]) -> (Tensor<2>, Vec<FeatureMap>) {
        match self {
            Classifier::ConvNet(net) => net.forward_maps(images, layers),
            Classifier::FastNet(net) => net.forward_maps(images, layers),
            Classifier::EfficientNet(net) => net.forward_maps(images, layers),
        }
    }

    /// Names of the layers whose maps [`Classifier::forward_maps`] can return.
    pub fn map_layers(&self) -> Vec<String> {
        match self {
            Classifier::ConvNet(_) => convnet::MAP_LAYERS.iter().map(|s| s.to_string()).collect(),
            Classifier::FastNet(_) => fastnet::MAP_LAYERS.iter().map(|s| s.to_string()).collect(),
            Classifier::EfficientNet(_) => efficientnet::map_layers(),
        }
    }

    /// The last feature-map layer, and the rest of the network from its output to the logits.
    pub fn last_maps_layer(&self) -> &'static str {
        match self {
            Classifier::ConvNet(_) => "conv2d_4",
            Classifier::FastNet(_) => "block3",
            Classifier::EfficientNet(_) => "head",
        }
    }

    pub fn classify_maps(&self, maps: Tensor<4>) -> Tensor<2> {
        match self {
            Classifier::ConvNet(net) => net.classify_maps(maps),
            Classifier::FastNet(net) => net.classify_maps(maps),
            Classifier::EfficientNet(net) => net.classify_maps(maps),
        }
    }

    /// The faster inference form: EfficientNet's BatchNorms folded into its convolutions (see
    /// [`EfficientNet::fold_batchnorm`]); not for training or saving.
    pub fn fold_batchnorm(self) -> Self {
        match self {
            Classifier::EfficientNet(net) => Classifier::EfficientNet(net.fold_batchnorm()),
            other => other,
        }
    }

    /// Move the weights to `device` (an autodiff device for gradients), keeping inference mode.
    pub fn fork(self, device: &Device) -> Self {
        match self {
            Classifier::ConvNet(net) => Classifier::ConvNet(net.valid().fork(device)),
            Classifier::FastNet(net) => Classifier::FastNet(net.valid().fork(device)),
            Classifier::EfficientNet(net) => Classifier::EfficientNet(net.valid().fork(device)),
        }
    }

    /// The first convolution's filters.
    pub fn first_filters(&self) -> Tensor<4> {
        match self {
            Classifier::ConvNet(net) => net.first_filters(),
            Classifier::FastNet(net) => net.first_filters(),
            Classifier::EfficientNet(net) => net.backbone.first_filters(),
        }
    }

    fn save(self, path: &Path) -> Result<(), burn::store::RecordError> {
        match self {
            Classifier::ConvNet(net) => net.save_file(path),
            Classifier::FastNet(net) => net.save_file(path),
            Classifier::EfficientNet(net) => net.save_file(path),
        }
    }

    fn load(self, path: &Path) -> Result<Self, burn::store::RecordError> {
        Ok(match self {
            Classifier::ConvNet(net) => Classifier::ConvNet(net.try_load_file(path)?),
            Classifier::FastNet(net) => Classifier::FastNet(net.try_load_file(path)?),
            Classifier::EfficientNet(net) => Classifier::EfficientNet(net.try_load_file(path)?),
        })
    }
}

/// Save `weights` as `dir/model.bpk` through a temporary file and a rename.
pub fn save_weights(classifier: Classifier, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join(WEIGHTS);
    write_record(&path, "checkpoint", |partial| classifier.save(partial))?;
    Ok(path)
}

/// Write a Burn record (the `what` of the error messages) to `path` through a temporary sibling
/// and a rename, so that a killed process never leaves half a record under the real name.
pub(crate) fn write_record(
    path: &Path,
    what: &str,
    write: impl FnOnce(&Path) -> Result<(), burn::store::RecordError>,
) -> anyhow::Result<()> {
    let partial = data::fetch::temporary_sibling(path);
    write(&partial).with_context(|| format!("cannot write {what} {}", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("cannot write {what} {}", path.display()))
}

/// Load the classifier a `train` run saved in `dir`.
/// `model.json` files written before the transfer head could have a hidden layer name the
/// architecture with a bare string: read them as the one-layer head they were trained with.
fn upgrade(mut manifest: serde_json::Value) -> serde_json::Value {
    if manifest["architecture"] == "efficientnet_lite0" {
        manifest["architecture"] =
            serde_json::json!({ "efficientnet_lite0": { "hidden_units": 0 } });
    }
    manifest
}

pub fn load(dir: &Path, device: &Device) -> anyhow::Result<(Classifier, Manifest)> {
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "cannot read {}; --checkpoint takes a run directory written by `train`",
            manifest_path.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .and_then(|json| serde_json::from_value(upgrade(json)))
        .with_context(|| {
            format!(
                "{} is corrupt; train again or restore it",
                manifest_path.display()
            )
        })?;
    let weights = dir.join(WEIGHTS);
    let classifier = Classifier::init(&manifest, device)
        .load(&weights)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load checkpoint {}: {e}; train again or restore it",
                weights.display()
            )
        })?;
    Ok((classifier, manifest))
}
