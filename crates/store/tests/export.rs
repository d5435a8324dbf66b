//! Exports for PyTorch: each EfficientNet-Lite's SafeTensors, loaded into its PyTorch twin
//! (`scripts/convkit_torch.py`), gives Burn's logits (skipped without torch). The networks
//! trained from scratch are checked the same way after real runs in `crates/train/tests`.

use burn::prelude::*;
use data::normalize::Normalization;
use models::{Architecture, ImageClassifier};
use store::checkpoint::Manifest;

#[test]
fn every_lite_exports_to_pytorch_with_the_same_logits() {
    let Some(python) = testkit::torch::python() else {
        return;
    };
    let dir = testkit::scratch_dir("store-export");
    let device = Device::flex();
    let side = 64;
    for (name, hidden_units) in [("efficientnet_lite0", 24), ("efficientnet_lite2", 0)] {
        let architecture: Architecture = serde_json::from_value(serde_json::json!({
            "name": name,
            "hidden_units": hidden_units,
        }))
        .unwrap();
        let classifier = architecture.init(5, side, None, &device);
        let run = dir.join(name);
        std::fs::create_dir_all(&run).unwrap();
        let manifest = Manifest {
            architecture,
            classes: (0..5).map(|c| format!("class{c}")).collect(),
            image_size: side,
            normalization: Normalization::EFFICIENTNET_LITE,
        };
        std::fs::write(
            run.join(store::checkpoint::MANIFEST),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let exported = run.join("model.safetensors");
        let tensors = store::export::safetensors(&classifier, &exported).unwrap();
        assert!(tensors > 100, "{name}: {tensors} tensors");

        let values: Vec<f32> = (0..2 * 3 * side * side)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let input =
            Tensor::<4>::from_data(TensorData::new(values.clone(), [2, 3, side, side]), &device);
        let burn_logits = models::values(classifier.forward(input));
        let torch_logits = testkit::torch::logits(&python, &run, &exported, &values, &run);
        assert_eq!(burn_logits.len(), torch_logits.len(), "{name}");
        let scale = burn_logits.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (a, b) in burn_logits.iter().zip(&torch_logits) {
            assert!(
                (a - b).abs() < 1e-4 * scale,
                "{name}: burn {burn_logits:?} torch {torch_logits:?}"
            );
        }
    }
}

#[test]
fn an_unwritable_destination_is_one_line_naming_it() {
    let dir = testkit::scratch_dir("store-export-unwritable");
    let device = Device::flex();
    let architecture: Architecture =
        serde_json::from_value(serde_json::json!({"name": "convnet"})).unwrap();
    let classifier = architecture.init(3, 32, None, &device);
    let path = dir.join("missing-folder/model.safetensors");
    let error = store::export::safetensors(&classifier, &path)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("missing-folder/model.safetensors"),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
    assert!(!dir.join("missing-folder").exists());
}
