//! Network definitions, each in its own file beside its settings: the tutorial's small convnet
//! ([`convnet`]), a BatchNorm convnet for fast CPU training ([`fastnet`]) and airbench94's
//! ([`airnet`]), both built of [`conv_block`]s, the EfficientNet-Lite
//! family split into a backbone and a head ([`efficientnet`]), and the transfer classifier's
//! trained part ([`transfer`]); airbench's patch-whitening filters for a fixed first layer
//! ([`whitening`]). Every network is an [`ImageClassifier`] ([`classifier`]), and one table
//! ([`registry`]) lists them by the names configs and saved models use. With the `burn-train`
//! feature the networks also plug into burn-train's `Learner` ([`burn_train`]).
//!
//! Not here: how networks are trained (the `train` crate), how images become tensors (the `data`
//! crate), where weights are stored and fetched (the `store` crate), or the CPU kernels the
//! layers run on (the `kernels` crate).

pub mod airnet;
#[cfg(feature = "burn-train")]
pub mod burn_train;
pub mod classifier;
pub mod conv_block;
pub mod convnet;
pub mod efficientnet;
pub mod fastnet;
pub mod registry;
pub mod summary;
pub mod transfer;
pub mod whitening;

pub use classifier::{FeatureMap, ImageClassifier, InputSpec};
pub use registry::{Architecture, Blueprint, Classifier};

use burn::prelude::*;

/// A tensor's values as `f32`, in row-major order (whatever the backend's float type).
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float data converts to f32")
}
