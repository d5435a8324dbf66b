//! A trained classifier on disk: `model.json` (the [`Manifest`]: which network, its classes, its
//! input size and how its inputs are scaled) and `model.bpk` (the weights, Burn's burnpack
//! format).

use std::path::Path;

use burn::prelude::*;
use data::normalize::Normalization;
use models::{Architecture, Classifier};
use serde::{Deserialize, Serialize};

use crate::StoreError;

pub const MANIFEST: &str = "model.json";
pub const WEIGHTS: &str = "model.bpk";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub architecture: Architecture,
    pub classes: Vec<String>,
    /// Side of the square images the network takes.
    pub image_size: usize,
    pub normalization: Normalization,
}

/// Write a Burn record (the `what` of the error messages) to `path` through a temporary sibling
/// and a rename, so that a killed process never leaves half a record under the real name.
pub fn write_record(
    path: &Path,
    what: &'static str,
    write: impl FnOnce(&Path) -> Result<(), burn::store::RecordError>,
) -> Result<(), StoreError> {
    let partial = data::fetch::temporary_sibling(path);
    let failed = |detail: String| StoreError::Write {
        what,
        path: path.to_path_buf(),
        detail,
    };
    write(&partial).map_err(|e| failed(e.to_string()))?;
    std::fs::rename(&partial, path).map_err(|e| failed(e.to_string()))
}

/// `architecture` as `model.json` files written before the registry spelled it with a `name`
/// key (`"convnet"`, `{"fastnet": {...}}`): the name as the one key, or alone. Knows no network.
fn upgrade(mut manifest: serde_json::Value) -> serde_json::Value {
    let architecture = manifest["architecture"].take();
    manifest["architecture"] = match architecture {
        serde_json::Value::String(name) => serde_json::json!({ "name": name }),
        serde_json::Value::Object(map) if map.len() == 1 && !map.contains_key("name") => {
            let (name, settings) = map.into_iter().next().expect("one key");
            let mut settings = match settings {
                serde_json::Value::Object(settings) => settings,
                _ => serde_json::Map::new(),
            };
            settings.insert("name".into(), name.into());
            serde_json::Value::Object(settings)
        }
        other => other,
    };
    manifest
}

/// The manifest of the run in `dir`.
pub fn manifest(dir: &Path) -> Result<Manifest, StoreError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|cause| StoreError::NoManifest {
        path: path.clone(),
        cause,
    })?;
    serde_json::from_str(&text)
        .and_then(|json| serde_json::from_value(upgrade(json)))
        .map_err(|cause| StoreError::BadManifest { path, cause })
}

/// The classifier a `train` run saved in `dir`, and its manifest.
pub fn load(dir: &Path, device: &Device) -> Result<(Classifier, Manifest), StoreError> {
    let manifest = manifest(dir)?;
    let path = dir.join(WEIGHTS);
    let classifier = manifest
        .architecture
        .init(manifest.classes.len(), manifest.image_size, None, device)
        .load(&path)
        .map_err(|e| StoreError::BadWeights {
            path,
            detail: e.to_string(),
        })?;
    Ok((classifier, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_manifests_upgrade() {
        let old = [
            serde_json::json!("convnet"),
            serde_json::json!({ "fastnet": { "widths": [8, 8, 8, 8], "whiten": true } }),
            serde_json::json!({ "fastnet": { "widths": [8, 8, 8, 8] } }),
            serde_json::json!("efficientnet_lite0"),
            serde_json::json!({ "efficientnet_lite0": { "hidden_units": 16 } }),
        ];
        let names: Vec<_> = old
            .into_iter()
            .map(|architecture| {
                let json = upgrade(serde_json::json!({ "architecture": architecture }));
                let architecture: Architecture =
                    serde_json::from_value(json["architecture"].clone()).unwrap();
                architecture.name()
            })
            .collect();
        assert_eq!(
            names,
            [
                "convnet",
                "fastnet",
                "fastnet",
                "efficientnet_lite0",
                "efficientnet_lite0"
            ]
        );
    }
}
