//! Everything between files on disk and tensors for the networks: CIFAR-10's binary batches and
//! folders of images ([`source`]), the cached download of archives and weights ([`fetch`]),
//! seeded splits ([`split`]), progress reports ([`progress`]), normalization ([`normalize`]), photo preprocessing ([`photo`]) and
//! turning images into batches ([`batch`]).
//!
//! Not here: networks (the `models` crate) or the training recipe (the `train` crate).

pub mod augment;
pub mod batch;
pub mod cifar;
pub mod error;
pub mod fetch;
pub mod folder;
pub mod images;
pub mod normalize;
pub mod photo;
pub mod progress;
pub mod source;
pub mod split;

pub use error::DataError;
pub use images::{Dataset, ImageSet};
