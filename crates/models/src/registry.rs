//! Every network this project builds, in one table: the name a config's `model.name` and a saved
//! model's `model.json` use, and the settings type ([`Blueprint`]) that builds it. From the table
//! come [`Architecture`] (a network's name and settings, as configs and manifests spell them) and
//! [`Classifier`] (any network, built). Adding a network is its own file, with a [`Blueprint`]
//! and an [`ImageClassifier`], plus one line here.

use std::path::Path;

use burn::prelude::*;
use burn::store::RecordError;
use serde::{Deserialize, Serialize};

use crate::airnet::AirNetSpec;
use crate::classifier::{ImageClassifier, InputSpec, Seen};
use crate::convnet::ConvNetSpec;
use crate::efficientnet::{EfficientNetConfig, Lite0, Lite1, Lite2, LiteSpec};
use crate::fastnet::FastNetSpec;

/// A network's settings, and how they build it.
pub trait Blueprint {
    type Network: ImageClassifier;

    /// The images the network accepts.
    fn input(&self) -> InputSpec;

    /// Whether the settings make a network, or why not (naming the `model.` keys).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// How many normalized training images [`Blueprint::init`] wants to fit its data-dependent
    /// layers to (0 for none).
    fn sample_size(&self) -> usize {
        0
    }

    /// A new network for `classes` classes and `side` x `side` images, with layers fitted to
    /// `sample` (the first [`Blueprint::sample_size`] training images, normalized) where it has
    /// them.
    fn init(
        &self,
        classes: usize,
        side: usize,
        sample: Option<Tensor<4>>,
        device: &Device,
    ) -> Self::Network;

    /// For networks made of a pretrained backbone (the transfer recipe's): that network's
    /// settings, with ImageNet's 1,000 classes.
    fn pretrained(&self) -> Option<EfficientNetConfig> {
        None
    }
}

macro_rules! registry {
    ($($name:literal => $variant:ident($spec:ty),)+) => {
        /// A network's name and settings: in a config, `[model]` with `name` and the settings'
        /// keys; in `model.json`, the same as JSON.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "name")]
        pub enum Architecture {
            $(#[serde(rename = $name)] $variant($spec),)+
        }

        /// Any network of the registry, built. Its weights are saved as the network's own (the
        /// same file as the network alone), so a checkpoint does not depend on this enum.
        #[derive(Module, Debug)]
        pub enum Classifier {
            $($variant(<$spec as Blueprint>::Network),)+
        }

        impl Architecture {
            /// The names `model.name` takes, in the registry's order.
            pub const NAMES: &[&str] = &[$($name,)+];

            /// The name `model.name` gives it.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)+
                }
            }

            /// See [`Blueprint::input`].
            pub fn input(&self) -> InputSpec {
                match self {
                    $(Self::$variant(spec) => spec.input(),)+
                }
            }

            /// See [`Blueprint::check`].
            pub fn check(&self) -> Result<(), String> {
                match self {
                    $(Self::$variant(spec) => spec.check(),)+
                }
            }

            /// See [`Blueprint::sample_size`].
            pub fn sample_size(&self) -> usize {
                match self {
                    $(Self::$variant(spec) => spec.sample_size(),)+
                }
            }

            /// See [`Blueprint::init`].
            pub fn init(
                &self,
                classes: usize,
                side: usize,
                sample: Option<Tensor<4>>,
                device: &Device,
            ) -> Classifier {
                match self {
                    $(Self::$variant(spec) => {
                        Classifier::$variant(spec.init(classes, side, sample, device))
                    })+
                }
            }

            /// See [`Blueprint::pretrained`].
            pub fn pretrained(&self) -> Option<EfficientNetConfig> {
                match self {
                    $(Self::$variant(spec) => spec.pretrained(),)+
                }
            }
        }

        impl Classifier {
            /// Save the weights in Burn's burnpack format at `path`, as the network alone would.
            pub fn save(self, path: &Path) -> Result<(), RecordError> {
                match self {
                    $(Self::$variant(net) => net.save_file(path),)+
                }
            }

            /// These weights replaced by those [`Classifier::save`] wrote at `path`.
            pub fn load(self, path: &Path) -> Result<Self, RecordError> {
                Ok(match self {
                    $(Self::$variant(net) => Self::$variant(net.try_load_file(path)?),)+
                })
            }
        }

        impl ImageClassifier for Classifier {
            fn features(&self, images: Tensor<4>, seen: Seen) -> Tensor<4> {
                match self {
                    $(Self::$variant(net) => net.features(images, seen),)+
                }
            }

            fn map_layers(&self) -> Vec<String> {
                match self {
                    $(Self::$variant(net) => net.map_layers(),)+
                }
            }

            fn cam_layer(&self) -> String {
                match self {
                    $(Self::$variant(net) => net.cam_layer(),)+
                }
            }

            fn classify_maps(&self, maps: Tensor<4>) -> Tensor<2> {
                match self {
                    $(Self::$variant(net) => net.classify_maps(maps),)+
                }
            }

            fn first_filters(&self) -> Tensor<4> {
                match self {
                    $(Self::$variant(net) => net.first_filters(),)+
                }
            }

            fn fixed_layers(&self) -> Vec<String> {
                match self {
                    $(Self::$variant(net) => net.fixed_layers(),)+
                }
            }

            fn for_epoch(self, epoch: usize) -> Self {
                match self {
                    $(Self::$variant(net) => Self::$variant(net.for_epoch(epoch)),)+
                }
            }

            fn fold_batchnorm(self) -> Self {
                match self {
                    $(Self::$variant(net) => Self::$variant(net.fold_batchnorm()),)+
                }
            }
        }
    };
}

registry! {
    "convnet" => Convnet(ConvNetSpec),
    "fastnet" => Fastnet(FastNetSpec),
    "airnet" => Airnet(AirNetSpec),
    "efficientnet_lite0" => EfficientnetLite0(LiteSpec<Lite0>),
    "efficientnet_lite1" => EfficientnetLite1(LiteSpec<Lite1>),
    "efficientnet_lite2" => EfficientnetLite2(LiteSpec<Lite2>),
}

impl Default for Architecture {
    /// The tutorial's convnet.
    fn default() -> Self {
        Architecture::Convnet(ConvNetSpec::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in Architecture::NAMES {
            let json = serde_json::json!({ "name": name });
            let architecture: Architecture = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(architecture.name(), *name);
            let again = serde_json::to_value(&architecture).unwrap();
            assert_eq!(
                serde_json::from_value::<Architecture>(again).unwrap(),
                architecture
            );
        }
    }
}
