//! The tutorial's walk through a convnet, by hand, on a photo:
//! `cargo run --release --example by-hand -- PHOTO`.

use anyhow::Context;
use by_hand::{Kernels, Maps, Padding};
use rng::Rng;

const SIDE: usize = 299;

fn random_kernels(rng: &mut Rng, out_channels: usize, in_channels: usize, size: usize) -> Kernels {
    let data = (0..out_channels * in_channels * size * size)
        .map(|_| rng.unit() * 2.0 - 1.0)
        .collect();
    Kernels {
        out_channels,
        in_channels,
        size,
        data,
    }
}

fn show(step: &str, maps: &Maps) {
    println!("{step:<42} {:?}", maps.shape());
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).context("usage: by-hand PHOTO")?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {path}"))?;
    let pixels = data::folder::decode(&bytes, SIDE)
        .map_err(|e| anyhow::anyhow!("{path} is not a readable image: {e}"))?;
    let image = Maps {
        channels: 3,
        height: SIDE,
        width: SIDE,
        data: pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
    };
    show("photo, resized and scaled to [0, 1]", &image);

    let mut rng = Rng::new(42);
    let kernels = random_kernels(&mut rng, 2, 3, 3);
    let first_field: Vec<f32> = (0..9).map(|j| image.get(0, j / 3, j % 3)).collect();
    let first_kernel: Vec<f32> = (0..9).map(|j| kernels.get(0, 0, j / 3, j % 3)).collect();
    println!(
        "first local field (red, top-left 3x3) · kernel 0: {:.6}",
        by_hand::local_field_activation(&first_field, &first_kernel)
    );

    let mut x = by_hand::conv2d(&image, &kernels, 1, Padding::Valid);
    show("conv2d 3x3, stride 1, valid", &x);
    let strided = by_hand::conv2d(&image, &kernels, 2, Padding::Valid);
    show("conv2d 3x3, stride 2, valid", &strided);
    show(
        "conv2d 3x3, stride 2, same",
        &by_hand::conv2d(&image, &kernels, 2, Padding::Same),
    );
    by_hand::add_bias(&mut x, &[0.1, -0.1]);
    by_hand::relu(&mut x.data);
    show("add_bias, relu", &x);
    let pooled = by_hand::max_pool(&x, 2, 2, Padding::Valid);
    show("max_pool 2x2, stride 2", &pooled);
    show(
        "avg_pool 2x2, stride 2",
        &by_hand::avg_pool(&x, 2, 2, Padding::Valid),
    );
    let flat = by_hand::flatten(&pooled);
    println!("{:<42} [{}]", "flatten", flat.len());
    let classes = 3;
    let weights: Vec<f32> = (0..flat.len() * classes)
        .map(|_| (rng.unit() * 2.0 - 1.0) * 0.01)
        .collect();
    let logits = by_hand::dense(&flat, &weights, &vec![0.0; classes]);
    println!("{:<42} [{}]", "dense", logits.len());
    let probabilities = by_hand::softmax(&logits);
    println!("{:<42} {probabilities:.4?}", "softmax");
    Ok(())
}
