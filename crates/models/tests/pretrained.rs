use std::path::PathBuf;

use burn::prelude::*;
use models::efficientnet::EfficientNetConfig;

fn shared_weights() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/weights/efficientnet-lite0-57934424.pth");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is absent (only developer and CI machines have ../shared)",
            path.display()
        );
        None
    }
}

#[test]
fn every_checkpoint_tensor_lands_in_the_model() {
    let Some(path) = shared_weights() else { return };
    let device = Device::flex();
    let model = EfficientNetConfig::new().init(&device);
    let (model, report) = model.load_pytorch(&path).expect("weights load");
    println!("{report:?}");
    assert_eq!(report.ignored, 49);
    assert_eq!(report.loaded, 296 - 49);
    let logits = model.forward(Tensor::<4>::zeros([1, 3, 224, 224], &device));
    assert_eq!(logits.dims(), [1, 1000]);
}
