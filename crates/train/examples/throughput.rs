//! Training and inference speed on random images with Adam (as `train` runs it), for
//! `scripts/bench-cpu.sh`: `cargo run --release -p train --example throughput -- MODEL [STEPS]
//! [TRAIN_BATCH] [INFER_BATCH] [WIDTHS]`. MODEL: `convnet` (the tutorial's), `keras_cnn` (the
//! Keras cifar10_cnn example's network, 1.25 M parameters), `fastnet` (as the fast recipe ships it:
//! whitened stem, widths 32,64,128,256, or WIDTHS), `airnet` (airbench94's network as the fast
//! recipe ships it; `airnet_relu` with ReLU instead of GELU) on 32x32 images, or `lite0`
//! (EfficientNet-Lite0, 10 classes) on 224x224, or `lite0_tail` (what the transfer recipe trains:
//! Lite0's last 8 blocks and a new head, on the 10x10x80 maps it caches at 160x160). Prints
//! images per second, the network's multiply-adds per image and the process's peak memory.
//! `throughput peak [SIZE]` prints the fp32 GFLOP/s of a SIZE³ matrix product (2048) instead: the
//! machine's practical peak, to which the rows are compared. `MATMUL_PRECISION=bfloat16` runs
//! the matrix products in bfloat16 where the CPU has AMX (`matmul_precision` in a config).

use std::time::Instant;

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::GradientsParams;
use burn::prelude::*;
use kernels::{conv2d_activated, dropout, max_pool2d, relu};
use models::Blueprint;
use models::airnet::{Activation, AirNetSpec};
use models::convnet::ConvNetConfig;
use models::efficientnet::{Backbone, EfficientNetConfig, Lite};
use models::fastnet::FastNetConfig;
use models::transfer::{TransferHeadConfig, TransferTop};
use models::{Classifier, ImageClassifier};
use train::config::OptimizerConfig;
use train::network::Network;
use train::optimizer::optimizer;

/// The network of Keras' cifar10_cnn example: conv 32 (same), conv 32, pool, dropout 0.25,
/// conv 64 (same), conv 64, pool, dropout 0.25, dense 512, dropout 0.5, dense 10.
#[derive(Module, Debug)]
struct KerasCnn {
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
    dropout: Dropout,
    dense: Linear,
    dropout_dense: Dropout,
    predictions: Linear,
}

impl KerasCnn {
    fn new(device: &Device) -> Self {
        let conv = |c_in, c_out, same: bool| {
            let padding = if same {
                PaddingConfig2d::Same
            } else {
                PaddingConfig2d::Valid
            };
            Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(padding)
                .init(device)
        };
        Self {
            convs: vec![
                conv(3, 32, true),
                conv(32, 32, false),
                conv(32, 64, true),
                conv(64, 64, false),
            ],
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            dropout: DropoutConfig::new(0.25).init(),
            dense: LinearConfig::new(6 * 6 * 64, 512).init(device),
            dropout_dense: DropoutConfig::new(0.5).init(),
            predictions: LinearConfig::new(512, 10).init(device),
        }
    }
}

impl Network for KerasCnn {
    type Input = Tensor<4>;
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        for pair in self.convs.chunks(2) {
            x = conv2d_activated(&pair[0], x, kernels::Activation::Relu);
            x = conv2d_activated(&pair[1], x, kernels::Activation::Relu);
            x = dropout(&self.dropout, max_pool2d(&self.pool, x));
        }
        let x = relu(self.dense.forward(x.flatten(1, 3)));
        self.predictions.forward(dropout(&self.dropout_dense, x))
    }
}

/// Lite0's last blocks that `lite0_tail` trains, and the resolution whose maps it trains on
/// (10x10x80 entering them), as `configs/cifar-transfer.toml` ships.
const TAIL_BLOCKS: usize = 8;
const TAIL_RESOLUTION: usize = 160;

/// The transfer recipe's trained part alone, on maps as its cache holds them.
#[derive(Module, Debug)]
struct Lite0Tail {
    top: TransferTop,
}

impl Network for Lite0Tail {
    type Input = Tensor<4>;
    fn logits(&self, maps: Tensor<4>) -> Tensor<2> {
        self.top.forward(maps)
    }
}

struct Sizes {
    steps: usize,
    train_batch: usize,
    infer_batch: usize,
    channels: usize,
    side: usize,
}

fn random_batch(batch: usize, sizes: &Sizes, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let side = sizes.side;
    let images = Tensor::<4>::random(
        [batch, sizes.channels, side, side],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        device,
    );
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new((0..batch as i64).map(|i| i % 10).collect(), [batch]),
        device,
    );
    (images, labels)
}

/// Untimed steps before each measurement: the first ones allocate what later ones reuse, and the
/// direct convolutions time their tile shapes before they keep the fastest.
const WARM_UP: usize = kernels::math::direct::TUNING_CALLS + 1;

/// Times `sizes.steps` training steps of `model`, then as many inference batches of
/// `inference_form(model)`: what `infer` and feature extraction run.
fn time<M: Network<Input = Tensor<4>>>(
    model: M,
    inference_form: fn(M) -> M,
    sizes: &Sizes,
    device: &Device,
) {
    let (images, labels) = random_batch(sizes.train_batch, sizes, device);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut optimizer = optimizer(&OptimizerConfig::default());
    let mut model = model;
    let mut train_step = |model: M| {
        let loss = loss_fn.forward(model.logits(images.clone()), labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optimizer.step(1e-3, model, grads)
    };
    for _ in 0..WARM_UP {
        model = train_step(model);
    }
    let started = Instant::now();
    for _ in 0..sizes.steps {
        model = train_step(model);
    }
    let train = (sizes.steps * sizes.train_batch) as f64 / started.elapsed().as_secs_f64();
    let valid = inference_form(model.valid());
    let inputs = random_batch(sizes.infer_batch, sizes, device).0.inner();
    for _ in 0..WARM_UP {
        let _ = valid.logits(inputs.clone()).into_data();
    }
    let started = Instant::now();
    for _ in 0..sizes.steps {
        let _ = valid.logits(inputs.clone()).into_data();
    }
    let infer = (sizes.steps * sizes.infer_batch) as f64 / started.elapsed().as_secs_f64();
    println!(
        "train {train:.1} images/s (batch {}), inference {infer:.1} images/s (batch {})",
        sizes.train_batch, sizes.infer_batch
    );
}

/// Multiply-adds per image of `network` at `side`.
fn macs(network: &impl ImageClassifier, side: usize, device: &Device) -> u64 {
    models::summary::summarize(network, side, |_| false, device).macs
}

/// The fp32 GFLOP/s of `size`³ matrix products: the best of five.
fn peak(size: usize, device: &Device) -> f64 {
    let a = Tensor::<2>::random([size, size], burn::tensor::Distribution::Default, device);
    let b = Tensor::<2>::random([size, size], burn::tensor::Distribution::Default, device);
    let _ = a.clone().matmul(b.clone()).into_data();
    (0..5)
        .map(|_| {
            let started = Instant::now();
            let _ = a.clone().matmul(b.clone()).into_data();
            2.0 * (size as f64).powi(3) / started.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn main() {
    store::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().map_or("fastnet", String::as_str);
    let number = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let (channels, side) = match model {
        "lite0" => (3, 224),
        "lite0_tail" => (80, 10),
        _ => (3, 32),
    };
    let sizes = Sizes {
        steps: number(1, 10),
        train_batch: number(2, 128),
        infer_batch: number(3, 256),
        channels,
        side,
    };
    let plain = store::device::device();
    if model == "peak" {
        let size = number(1, 2048);
        println!(
            "peak on {} ({})",
            store::device::backend_name(),
            kernels::math::instruction_set()
        );
        println!("matmul {size}x{size}: {:.1} GFLOP/s", peak(size, &plain));
        return;
    }
    let device = plain.clone().autodiff();
    if std::env::var("MATMUL_PRECISION").as_deref() == Ok("bfloat16") {
        kernels::set_matmul_precision(kernels::Precision::Bfloat16);
    }
    println!(
        "{model} on {} (our kernels on {}, matrix products in {:?})",
        store::device::backend_name(),
        kernels::math::instruction_set(),
        kernels::matmul_precision()
    );
    let fastnet = |widths: [usize; 4]| {
        let mut config = FastNetConfig::new().with_whiten(true).with_widths(widths);
        if let Some(widths) = args.get(4) {
            let w: Vec<usize> = widths
                .split(',')
                .map(|w| w.parse().expect("WIDTHS"))
                .collect();
            config.widths = w.try_into().expect("four widths");
        }
        Classifier::Fastnet(config.init(&device))
    };
    let ours = |classifier: Classifier| {
        let macs = macs(&classifier, side, &device);
        measure(macs, classifier, |m| m, &sizes, &device)
    };
    match model {
        "convnet" => ours(Classifier::Convnet(ConvNetConfig::new().init(&device))),
        "fastnet" => ours(fastnet([32, 64, 128, 256])),
        "airnet" => ours(Classifier::Airnet(
            AirNetSpec::default().init(10, 32, None, &device),
        )),
        "airnet_relu" => ours(Classifier::Airnet(
            AirNetSpec {
                activation: Activation::Relu,
                ..AirNetSpec::default()
            }
            .init(10, 32, None, &device),
        )),
        "lite0" => {
            let net = EfficientNetConfig::new().with_num_classes(10).init(&device);
            let macs = macs(&net, side, &device);
            measure(macs, net, ImageClassifier::fold_batchnorm, &sizes, &device)
        }
        "lite0_tail" => {
            let backbone = Backbone::new(Lite::Lite0, &device);
            let head = TransferHeadConfig::new(10).init_head(&device);
            let top = TransferTop::new(&backbone, head, TAIL_BLOCKS);
            // The tail's multiply-adds: what the transfer recipe trains, as its summary counts.
            let recipe = train::config::TrainConfig::parse(
                "",
                &[
                    "model.name=efficientnet_lite0".into(),
                    format!("transfer.resolution={TAIL_RESOLUTION}"),
                    format!("transfer.train_blocks={TAIL_BLOCKS}"),
                ],
            )
            .expect("a transfer recipe");
            let macs = train::describe::summarize(&recipe, 10, &device)
                .layers
                .iter()
                .filter(|layer| layer.trainable_params > 0)
                .map(|layer| layer.macs)
                .sum();
            measure(macs, Lite0Tail { top }, |m| m, &sizes, &device)
        }
        // Not an `ImageClassifier`, so counted by hand: conv 3x3 3→32 at 32², 32→32 at 30²,
        // 32→64 at 15², 64→64 at 13², dense 2304→512→10.
        "keras_cnn" => measure(
            27 * 32 * 32 * 32
                + 288 * 32 * 30 * 30
                + 288 * 64 * 15 * 15
                + 576 * 64 * 13 * 13
                + 2304 * 512
                + 5120,
            KerasCnn::new(&device),
            |m| m,
            &sizes,
            &device,
        ),
        other => {
            panic!(
                "unknown model {other}; convnet, keras_cnn, fastnet, airnet, airnet_relu, lite0 or peak"
            )
        }
    }
}

/// Print `macs` (multiply-adds per image), time `model` and print the process's peak memory.
fn measure<M: Network<Input = Tensor<4>>>(
    macs: u64,
    model: M,
    inference_form: fn(M) -> M,
    sizes: &Sizes,
    device: &Device,
) {
    println!("macs {macs}");
    time(model, inference_form, sizes, device);
    if let Some(mib) = train::run_dir::peak_memory_mib() {
        println!("peak memory {mib:.0} MiB");
    }
}
