//! A trained classifier for PyTorch: its weights as SafeTensors, under the key names of the
//! equivalent PyTorch module (`scripts/convkit_torch.py`): dense weights transposed to
//! `[out, in]`, BatchNorm's `gamma`/`beta` as `weight`/`bias`, the registry's variant left out.

use std::path::Path;

use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use models::Classifier;

use crate::StoreError;

/// Write `classifier` to `path` as SafeTensors (through a temporary sibling and a rename);
/// returns the number of tensors written.
pub fn safetensors(classifier: &Classifier, path: &Path) -> Result<usize, StoreError> {
    let partial = data::fetch::temporary_sibling(path);
    let failed = |detail: String| StoreError::Write {
        what: "SafeTensors file",
        path: path.to_path_buf(),
        detail,
    };
    let mut store = SafetensorsStore::from_file(&partial)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .overwrite(true);
    let tensors = classifier.collect(None, None, false).len();
    if let Err(error) = classifier.save_into(&mut store) {
        let _ = std::fs::remove_file(&partial);
        return Err(failed(error.to_string()));
    }
    std::fs::rename(&partial, path).map_err(|e| failed(e.to_string()))?;
    Ok(tensors)
}
