//! Burn's EfficientNet-Lite0 against an independent numpy implementation
//! (`scripts/lite0_reference.py`), and the tutorial's koala. Both need the weights in
//! `../shared`, which only developer and CI machines have; elsewhere they say so and skip.

use std::path::PathBuf;

use burn::prelude::*;
use data::testing::shared_file;
use infer::predict::Predictor;

fn weights() -> Option<PathBuf> {
    shared_file("weights/efficientnet-lite0-57934424.pth")
}

/// The reference script's input, already normalized: sin(0.05 (h+1)(c+1)) cos(0.031 (w+3c)).
fn golden_input(device: &Device) -> Tensor<4> {
    let side = 224;
    let mut values = Vec::with_capacity(3 * side * side);
    for c in 0..3 {
        for h in 0..side {
            for w in 0..side {
                let (c, h, w) = (c as f64, h as f64, w as f64);
                values.push(
                    ((0.05 * (h + 1.0) * (c + 1.0)).sin() * (0.031 * (w + 3.0 * c)).cos()) as f32,
                );
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 3, side, side]), device)
}

#[test]
fn logits_match_the_numpy_reference() {
    let Some(weights) = weights() else { return };
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/lite0-logits.json")).unwrap();
    let expected: Vec<f64> = golden["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let device = Device::flex();
    let (predictor, _) = Predictor::imagenet(&weights, &device).unwrap();
    let logits = predictor.classifier.forward(golden_input(&device));
    let actual: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = actual
        .iter()
        .zip(&expected)
        .map(|(a, e)| (f64::from(*a) - e).abs())
        .fold(0f64, f64::max);
    assert!(
        worst / scale < 1e-4,
        "largest difference {worst} against logits up to {scale}"
    );
}

#[test]
fn the_koala_is_a_koala() {
    let (Some(weights), Some(koala)) = (weights(), shared_file("images/koala.jpg")) else {
        return;
    };
    let device = Device::flex();
    let (predictor, report) = Predictor::imagenet(&weights, &device).unwrap();
    assert_eq!((report.loaded, report.ignored), (247, 49));
    let predictions = predictor.predict(&[koala], 3, &device).unwrap();
    let top = &predictions[0].predictions;
    assert_eq!(top[0].label, "koala", "{top:?}");
    assert_eq!(top[0].index, 105);
    assert!(top[0].probability > 0.5, "{top:?}");
}
