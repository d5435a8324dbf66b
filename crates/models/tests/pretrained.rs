//! Every tensor of each EfficientNet-Lite checkpoint in `../shared` lands in the model of its
//! variant, and every model tensor comes from the file (skipped, saying so, without the files).

use burn::prelude::*;
use models::ImageClassifier;
use models::efficientnet::{EfficientNetConfig, Lite};
use testkit::shared_file;

#[test]
fn every_checkpoint_tensor_lands_in_the_model() {
    // (variant, tensors in the file, BatchNorm step counters among them)
    for (lite, entries, counters) in [
        (Lite::Lite0, 296, 49),
        (Lite::Lite1, 386, 64),
        (Lite::Lite2, 386, 64),
    ] {
        let Some(path) = shared_file(&format!("weights/{}", lite.weights().file_name)) else {
            return;
        };
        let device = Device::flex();
        let model = EfficientNetConfig::new().with_lite(lite).init(&device);
        let (model, report) = model.load_pytorch(lite, &path).expect("weights load");
        assert_eq!(report.ignored, counters, "{lite:?}");
        assert_eq!(report.loaded, entries - counters, "{lite:?}");
        let side = lite.resolution();
        let logits = model.forward(Tensor::<4>::zeros([1, 3, side, side], &device));
        assert_eq!(logits.dims(), [1, 1000]);
    }
}
