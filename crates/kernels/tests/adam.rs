//! Our Adam against Burn's: the same parameters bit for bit after every step, with and without
//! the L2 penalty, and optimizer records that load from one into the other.

use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use kernels::optim::Adam;

const BETA_1: f32 = 0.85;
const BETA_2: f32 = 0.995;
const EPSILON: f32 = 1e-7;

fn ours(penalty: Option<f32>) -> ModuleOptimizer {
    Adam {
        beta_1: BETA_1,
        beta_2: BETA_2,
        epsilon: EPSILON,
        penalty,
    }
    .init()
}

fn burns(penalty: Option<f32>) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(BETA_1)
        .with_beta_2(BETA_2)
        .with_epsilon(EPSILON)
        .with_weight_decay(penalty.map(WeightDecayConfig::new))
        .init()
}

fn bits<const D: usize>(tensor: Tensor<D>) -> Vec<u32> {
    let values = tensor.into_data().try_to_vec::<f32>().unwrap();
    values.iter().map(|v| v.to_bits()).collect()
}

/// The weight and bias, as bits.
fn parameters(model: &Linear) -> (Vec<u32>, Vec<u32>) {
    let bias = model.bias.as_ref().unwrap().val();
    (bits(model.weight.val()), bits(bias))
}

/// A layer with more weights than one parallel task takes, and a bias with fewer.
fn layer(device: &Device) -> Linear {
    LinearConfig::new(300, 257).init(device)
}

/// `model` after one step of `optimizer` on the gradients of a loss at the `step`th input; the
/// learning rate changes every step, as a schedule changes it.
fn stepped(model: Linear, optimizer: &mut ModuleOptimizer, step: usize) -> Linear {
    let device = model.weight.val().device();
    // From a formula, not the generator: tests run at once on threads that share it.
    let values: Vec<f32> = (0..16 * 300)
        .map(|i| ((i * 7919 + step * 104_729) % 2003) as f32 / 1001.0 - 1.0)
        .collect();
    let input = Tensor::<2>::from_data(TensorData::new(values, [16, 300]), &device);
    let output = model.forward(input);
    // Squared outputs, with some zeroed: gradients of both signs, some of them exactly zero.
    let loss = (output.clone() * output.clamp_min(0.0)).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    optimizer.step(1e-3 * (1.0 + step as f64 / 3.0), model, grads)
}

#[test]
fn adam_steps_are_burns_bit_for_bit() {
    let device = Device::flex().autodiff();
    for penalty in [None, Some(0.01)] {
        let start = layer(&device);
        let (mut ours_model, mut burns_model) = (start.clone(), start.clone());
        let (mut our_adam, mut burns_adam) = (ours(penalty), burns(penalty));
        for step in 0..5 {
            ours_model = stepped(ours_model, &mut our_adam, step);
            burns_model = stepped(burns_model, &mut burns_adam, step);
            assert!(
                parameters(&ours_model) == parameters(&burns_model),
                "step {step}, penalty {penalty:?}"
            );
        }
        assert!(parameters(&ours_model) != parameters(&start));
    }
}

#[test]
fn optimizer_records_load_across_burns_adam_and_ours() {
    let device = Device::flex().autodiff();
    let penalty = Some(0.02);
    let optimizers: [fn(Option<f32>) -> ModuleOptimizer; 2] = [burns, ours];
    for (first, then) in [
        (optimizers[0], optimizers[1]),
        (optimizers[1], optimizers[0]),
    ] {
        let mut model = layer(&device);
        let mut optimizer = first(penalty);
        for step in 0..2 {
            model = stepped(model, &mut optimizer, step);
        }
        let mut resumed = then(penalty).load_record(optimizer.to_record());
        let continued = stepped(model.clone(), &mut optimizer, 2);
        let switched = stepped(model, &mut resumed, 2);
        assert!(parameters(&continued) == parameters(&switched));
    }
}
