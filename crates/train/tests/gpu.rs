//! The GPU backend (`--features wgpu` or `cuda`) computes what the CPU backend computes: a few
//! training steps of the tutorial's convnet and of fastnet (BatchNorm) from the same weights on
//! the same batches, and EfficientNet-Lite0's forward pass on the same images. CI runs this on
//! Mesa's software Vulkan (lavapipe): `cargo test -p train --features wgpu --test gpu`.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use burn::module::{ModuleMapper, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::prelude::*;
use models::convnet::ConvNetConfig;
use models::efficientnet::EfficientNetConfig;
use models::fastnet::FastNetConfig;
use models::{Classifier, values};
use rng::Rng;
use train::config::{OptimizerConfig, OptimizerName};
use train::network::Network;

/// Results may differ by float rounding (other summation orders, fused kernels): at most this
/// fraction of the larger magnitude (or of 1, for small values).
const TOLERANCE: f64 = 1e-3;

fn assert_close(what: &str, cpu: &[f32], gpu: &[f32]) {
    assert_eq!(cpu.len(), gpu.len(), "{what}");
    let scale = cpu.iter().fold(1.0f64, |m, &x| m.max(f64::from(x).abs()));
    let worst = cpu
        .iter()
        .zip(gpu)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
        .fold(0.0, f64::max);
    let mean = cpu.iter().map(|&x| f64::from(x).abs()).sum::<f64>() / cpu.len().max(1) as f64;
    println!(
        "{what}: largest difference {worst:.2e} (scale {scale:.2}, mean magnitude {mean:.2e})"
    );
    assert!(
        worst <= TOLERANCE * scale,
        "{what}: the GPU differs from the CPU by {worst:e}, more than {TOLERANCE} x {scale}\ncpu {cpu:?}\ngpu {gpu:?}"
    );
}

/// `count` images `[count, 3, side, side]` of values in [-1, 1], and labels, from `seed`.
fn batch(count: usize, side: usize, seed: u64, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let mut rng = Rng::new(seed);
    let pixels: Vec<f32> = (0..count * 3 * side * side)
        .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let labels: Vec<i64> = (0..count).map(|_| (rng.next_u64() % 10) as i64).collect();
    (
        Tensor::from_data(TensorData::new(pixels, [count, 3, side, side]), device),
        Tensor::from_data(TensorData::new(labels, [count]), device),
    )
}

/// An independent copy of `model` (its own BatchNorm statistics) on `device`, ready to train.
fn copy_to<M: Module>(model: &M, device: &Device) -> M {
    model.valid().train().fork(device)
}

/// The loss of each of `steps` SGD steps on batches of 8 images, then the trained model's logits
/// on a batch in validation mode.
fn train_steps<M: Network<Input = Tensor<4>>>(
    model: &M,
    device: &Device,
    steps: u64,
) -> (Vec<f32>, Vec<f32>) {
    let device = device.clone().autodiff();
    let mut model = copy_to(model, &device);
    let mut optimizer = train::optimizer::optimizer(&OptimizerConfig {
        name: OptimizerName::Sgd,
        lr: 0.01,
        ..OptimizerConfig::default()
    });
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut losses = Vec::new();
    for step in 0..steps {
        let (images, labels) = batch(8, 32, step, &device);
        let loss = loss_fn.forward(model.logits(images), labels);
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(0.01, model, grads);
    }
    let (images, _) = batch(4, 32, 100, &device.clone().inner());
    (losses, values(model.valid().logits(images)))
}

fn cpu() -> Device {
    Device::flex()
}

fn gpu() -> Device {
    let device = store::device::device();
    println!(
        "{} on {}",
        store::device::backend_name(),
        store::device::describe(&device)
    );
    device
}

fn trains_alike<M: Network<Input = Tensor<4>>>(name: &str, make: impl Fn(&Device) -> M) {
    let cpu_device = cpu().autodiff();
    cpu_device.seed(5);
    let model = make(&cpu_device);
    let (cpu_losses, cpu_logits) = train_steps(&model, &cpu(), 4);
    let (gpu_losses, gpu_logits) = train_steps(&model, &gpu(), 4);
    assert_close(&format!("{name} training losses"), &cpu_losses, &gpu_losses);
    assert_close(
        &format!("{name} logits after training"),
        &cpu_logits,
        &gpu_logits,
    );
    assert!(
        cpu_losses.iter().all(|loss| loss.is_finite()),
        "{cpu_losses:?}"
    );
}

#[test]
fn the_convnet_trains_alike_on_gpu_and_cpu() {
    trains_alike("convnet", |device| {
        Classifier::Convnet(ConvNetConfig::new().init(device))
    });
}

#[test]
fn fastnet_with_batchnorm_trains_alike_on_gpu_and_cpu() {
    trains_alike("fastnet", |device| {
        Classifier::Fastnet(
            FastNetConfig::new()
                .with_widths([8, 16, 16, 32])
                .init(device),
        )
    });
}

/// Multiplies every convolution kernel by a factor. Burn's default initialization shrinks the
/// signal at each layer, so a freshly initialized Lite0's pooled features are about 1e-14 and
/// would match on any two backends; scaled kernels keep them of order one, as trained ones do.
struct ScaleKernels(f32);

impl ModuleMapper for ScaleKernels {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D == 4 {
            param.map(|kernel| kernel * self.0)
        } else {
            param
        }
    }
}

#[test]
fn efficientnet_lite0_computes_the_same_logits_on_gpu_and_cpu() {
    let device = cpu();
    device.seed(6);
    let model = EfficientNetConfig::new()
        .init(&device)
        .map(&mut ScaleKernels(2.2))
        .valid();
    let (images, _) = batch(2, 224, 7, &device);
    let cpu_features = model.backbone.forward(images.clone());
    let cpu_logits = values(model.head.forward(cpu_features.clone()));
    let gpu_device = gpu();
    let gpu_model = model.clone().to_device(&gpu_device);
    let gpu_features = gpu_model.backbone.forward(images.to_device(&gpu_device));
    let gpu_logits = values(gpu_model.head.forward(gpu_features.clone()));
    assert_close(
        "EfficientNet-Lite0 pooled features",
        &values(cpu_features),
        &values(gpu_features),
    );
    assert_close("EfficientNet-Lite0 logits", &cpu_logits, &gpu_logits);
}
