//! Burn's EfficientNet-Lite0, Lite1 and Lite2 against an independent numpy implementation
//! (`scripts/lite_reference.py`), and the tutorial's koala. They need the weights in `../shared`,
//! which only developer and CI machines have; elsewhere they say so and skip.

use std::path::PathBuf;

use burn::prelude::*;
use infer::predict::Predictor;
use models::ImageClassifier;
use models::efficientnet::Lite;
use testkit::shared_file;

fn weights(lite: Lite) -> Option<PathBuf> {
    shared_file(&format!("weights/{}", lite.weights().file_name))
}

/// The reference script's input, already normalized: sin(0.05 (h+1)(c+1)) cos(0.031 (w+3c)).
fn golden_input(side: usize, device: &Device) -> Tensor<4> {
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

/// `lite`'s logits on the golden input within 1e-4 (of the largest) of the reference's.
fn logits_match(lite: Lite, golden: &str) {
    let Some(weights) = weights(lite) else { return };
    let golden: serde_json::Value = serde_json::from_str(golden).unwrap();
    let expected: Vec<f64> = golden["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let device = Device::flex();
    let (predictor, _) = Predictor::imagenet(lite, &weights, &device).unwrap();
    let logits = predictor
        .classifier
        .forward(golden_input(lite.resolution(), &device));
    let actual = models::values(logits);
    let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = actual
        .iter()
        .zip(&expected)
        .map(|(a, e)| (f64::from(*a) - e).abs())
        .fold(0f64, f64::max);
    assert!(
        worst / scale < 1e-4,
        "{lite:?}: largest difference {worst} against logits up to {scale}"
    );
}

#[test]
fn lite0_logits_match_the_numpy_reference() {
    logits_match(Lite::Lite0, include_str!("golden/lite0-logits.json"));
}

#[test]
fn lite1_logits_match_the_numpy_reference() {
    logits_match(Lite::Lite1, include_str!("golden/lite1-logits.json"));
}

#[test]
fn lite2_logits_match_the_numpy_reference() {
    logits_match(Lite::Lite2, include_str!("golden/lite2-logits.json"));
}

#[test]
fn the_koala_is_a_koala() {
    let (Some(weights), Some(koala)) = (weights(Lite::Lite0), shared_file("images/koala.jpg"))
    else {
        return;
    };
    let device = Device::flex();
    let (predictor, report) = Predictor::imagenet(Lite::Lite0, &weights, &device).unwrap();
    assert_eq!((report.loaded, report.ignored), (247, 49));
    let (predictions, unreadable) = predictor.predict(&[koala], 3, &device).unwrap();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    let top = &predictions[0].predictions;
    assert_eq!(top[0].label, "koala", "{top:?}");
    assert_eq!(top[0].index, 105);
    assert!(top[0].probability > 0.5, "{top:?}");
}
