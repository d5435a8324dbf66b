use burn::prelude::*;
use data::testing::shared_file;
use models::efficientnet::EfficientNetConfig;

#[test]
fn every_checkpoint_tensor_lands_in_the_model() {
    let Some(path) = shared_file("weights/efficientnet-lite0-57934424.pth") else {
        return;
    };
    let device = Device::flex();
    let model = EfficientNetConfig::new().init(&device);
    let (model, report) = model.load_pytorch(&path).expect("weights load");
    println!("{report:?}");
    assert_eq!(report.ignored, 49);
    assert_eq!(report.loaded, 296 - 49);
    let logits = model.forward(Tensor::<4>::zeros([1, 3, 224, 224], &device));
    assert_eq!(logits.dims(), [1, 1000]);
}
