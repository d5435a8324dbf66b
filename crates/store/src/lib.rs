//! Models on disk, and the machine they run on: a trained classifier saved by `train`
//! ([`checkpoint`]: `model.json` and `model.bpk`), the EfficientNet-Lite ImageNet weights
//! ([`pretrained`]: fetched once, checked by SHA-256, cached), the backend chosen by cargo
//! features ([`device`]), the allocator setting that the CPU backend wants ([`allocator`]), and
//! a classifier exported for PyTorch ([`export`]).
//! `train` and `infer` both build on it; neither depends on the other.
//!
//! Not here: network definitions (`models`), training (`train`), or datasets (`data`).

pub mod allocator;
pub mod checkpoint;
pub mod device;
pub mod export;
pub mod pretrained;

use std::path::PathBuf;

/// Why a model, its weights or a device could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot read {path}: {cause}; give the directory of a run `train` wrote (e.g. runs/cifar-1)"
    )]
    NoManifest {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is corrupt ({cause}); train again or restore it")]
    BadManifest {
        path: PathBuf,
        cause: serde_json::Error,
    },
    #[error("cannot load checkpoint {path}: {detail}; train again or restore it")]
    BadWeights { path: PathBuf, detail: String },
    #[error("cannot write {what} {path}: {detail}")]
    Write {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("cannot remove {path}: {cause}")]
    Remove {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "weights file {path} does not exist; run `infer --fetch-weights` or pass --weights PATH"
    )]
    NoWeights { path: PathBuf },
    #[error("weights file {path} is a directory; pass the .pth file itself")]
    WeightsDirectory { path: PathBuf },
    #[error(
        "{file} from {url} has SHA-256 {actual}, expected {expected}; the download is corrupt or not the published file, run again or pass --weights PATH"
    )]
    CorruptDownload {
        file: &'static str,
        url: String,
        actual: String,
        expected: &'static str,
    },
    #[error(
        "{path} is corrupt (SHA-256 {actual}, expected {expected}); delete it and run again to fetch a fresh copy"
    )]
    CorruptCache {
        path: PathBuf,
        actual: String,
        expected: &'static str,
    },
    #[error(
        "devices = {asked}, but the {backend} backend has {found} device{} here; set devices to at most {} (or build with --features cuda or wgpu on a machine with more GPUs)",
        if *found == 1 { "" } else { "s" },
        (*found).max(1)
    )]
    Devices {
        asked: usize,
        backend: &'static str,
        found: usize,
    },
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Weights(#[from] models::efficientnet::WeightsError),
}
