//! Training and inference speed of the project's networks on random 32x32 images with Adam:
//! `cargo run --release -p train --example throughput -- [convnet|fastnet] [STEPS] [BATCH]
//! [WIDTHS]` (WIDTHS for fastnet, e.g. 32,64,128,256). Prints images per second.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use models::convnet::ConvNetConfig;
use models::fastnet::FastNetConfig;
use train::network::Network;

fn time<M: Network<Input = Tensor<4>>>(model: M, steps: usize, batch: usize, device: &Device) {
    let images = Tensor::<4>::random(
        [batch, 3, 32, 32],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        device,
    );
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new((0..batch as i64).map(|i| i % 10).collect(), [batch]),
        device,
    );
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut optimizer = AdamConfig::new().init();
    let mut model = model;
    let mut train_step = |model: M| {
        let loss = loss_fn.forward(model.logits(images.clone()), labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optimizer.step(1e-3, model, grads)
    };
    model = train_step(model);
    let started = Instant::now();
    for _ in 0..steps {
        model = train_step(model);
    }
    let train = (steps * batch) as f64 / started.elapsed().as_secs_f64();
    let valid = model.valid();
    let inputs = images.inner();
    let _ = valid.logits(inputs.clone()).into_data();
    let started = Instant::now();
    for _ in 0..steps {
        let _ = valid.logits(inputs.clone()).into_data();
    }
    let infer = (steps * batch) as f64 / started.elapsed().as_secs_f64();
    println!("train {train:.0} images/s, inference {infer:.0} images/s (batch {batch})");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().map_or("fastnet", String::as_str);
    let steps = args.get(1).map_or(10, |s| s.parse().expect("STEPS"));
    let batch = args.get(2).map_or(128, |s| s.parse().expect("BATCH"));
    let device = train::device::device().autodiff();
    println!("{model} on {}", train::device::backend_name());
    match model {
        "convnet" => time(ConvNetConfig::new().init(&device), steps, batch, &device),
        "fastnet" => {
            let mut config = FastNetConfig::new();
            if let Some(widths) = args.get(3) {
                let w: Vec<usize> = widths
                    .split(',')
                    .map(|w| w.parse().expect("WIDTHS"))
                    .collect();
                config.widths = w.try_into().expect("four widths");
            }
            time(config.init(&device), steps, batch, &device)
        }
        other => panic!("unknown model {other}; convnet or fastnet"),
    }
}
