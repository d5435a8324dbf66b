//! Our dropout against Burn's: the share dropped, the scale, the gradient, and repeatability
//! under `Backend::seed`.

use std::sync::Mutex;

use burn::nn::DropoutConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use kernels::dropout;

/// Flex's generator is one for the process: a test that seeds it holds this while it draws.
static GENERATOR: Mutex<()> = Mutex::new(());

fn bits<const D: usize>(tensor: Tensor<D>) -> Vec<u32> {
    let values = tensor.into_data().try_to_vec::<f32>().unwrap();
    values.iter().map(|v| v.to_bits()).collect()
}

/// The elements of `output` that dropout kept (nonzero) and the share it dropped, after checking
/// that each kept one is its input times Burn's scale.
fn kept_and_dropped_share(input: &[f32], output: &[f32], keep: f64) -> (Vec<bool>, f64) {
    let scale = (1.0 / keep) as f32;
    let kept: Vec<bool> = output.iter().map(|&v| v != 0.0).collect();
    for ((&x, &y), &kept) in input.iter().zip(output).zip(&kept) {
        if kept {
            assert_eq!(y.to_bits(), (x * scale).to_bits());
        }
    }
    let dropped = kept.iter().filter(|&&k| !k).count();
    (kept, dropped as f64 / output.len() as f64)
}

#[test]
fn dropout_drops_its_share_independently_and_scales_as_burn_does() {
    let _generator = GENERATOR.lock().unwrap();
    let device = Device::flex().autodiff();
    device.seed(8);
    let shape = [64, 8, 32, 32];
    let n = shape.iter().product::<usize>() as f64;
    for prob in [0.1, 0.25, 0.5, 0.9] {
        let layer = DropoutConfig::new(prob).init();
        // No input element is zero, so a zero in the output was dropped.
        let x = Tensor::<4>::random(shape, Distribution::Uniform(1.0, 2.0), &device).require_grad();
        let output = dropout(&layer, x.clone());
        let input = x.clone().into_data().try_to_vec::<f32>().unwrap();
        let values = output.clone().into_data().try_to_vec::<f32>().unwrap();
        let (kept, share) = kept_and_dropped_share(&input, &values, 1.0 - prob);
        // Five standard deviations of a binomial share.
        let tolerance = 5.0 * (prob * (1.0 - prob) / n).sqrt();
        assert!((share - prob).abs() < tolerance, "{prob}: dropped {share}");
        let both = kept.windows(2).filter(|w| !w[0] && !w[1]).count() as f64 / (n - 1.0);
        assert!(
            (both - prob * prob).abs() < tolerance,
            "{prob}: neighbours dropped together {both}, not {}",
            prob * prob
        );
        // The gradient is the same mask: the weight times the scale where kept, zero elsewhere.
        let weights = Tensor::<4>::random(shape, Distribution::Uniform(1.0, 2.0), &device);
        let grads = output.mul(weights.clone()).sum().backward();
        let grad = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let weights = weights.into_data().try_to_vec::<f32>().unwrap();
        let (grad_kept, _) = kept_and_dropped_share(&weights, &grad, 1.0 - prob);
        assert_eq!(grad_kept, kept, "{prob}: the gradient's mask");
    }
}

#[test]
fn dropout_repeats_with_the_seed_only() {
    let _generator = GENERATOR.lock().unwrap();
    let device = Device::flex().autodiff();
    let layer = DropoutConfig::new(0.5).init();
    let ones = || Tensor::<2>::ones([300, 301], &device);
    let draw = |seed| {
        device.seed(seed);
        [bits(dropout(&layer, ones())), bits(dropout(&layer, ones()))]
    };
    let [first, second] = draw(9);
    assert_eq!(
        [first.clone(), second.clone()],
        draw(9),
        "the same seed, the same masks"
    );
    assert_ne!(first, second, "each call draws a new mask");
    assert_ne!(first, draw(10)[0], "another seed, another mask");
    // One thread or many: the same mask.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    assert_eq!(one_thread.install(|| draw(9)), [first, second]);
}

#[test]
fn dropout_passes_the_input_outside_training() {
    let layer = DropoutConfig::new(0.5).init();
    let x = Tensor::<2>::ones([20, 30], &Device::flex());
    assert_eq!(
        bits(dropout(&layer, x.clone())),
        bits(x.clone()),
        "no autodiff"
    );
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::ones([20, 30], &device);
    let frozen = layer.valid();
    assert_eq!(
        bits(dropout(&frozen, x.clone())),
        bits(x),
        "the layer's inference form"
    );
}
