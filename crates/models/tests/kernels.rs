//! Our kernels against Burn's own operations: the same values, forward and backward.

use burn::prelude::*;
use burn::tensor::Distribution;
use models::kernels::relu6;

/// Random values around ReLU6's two bends, with the special values spread among them.
fn values(shape: [usize; 3], device: &Device) -> Tensor<3> {
    let random = Tensor::<3>::random(shape, Distribution::Uniform(-3.0, 9.0), device);
    let mut data = random.into_data().try_to_vec::<f32>().unwrap();
    let special = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        6.0,
        6.0001,
        -1e-30,
    ];
    for (i, v) in special.iter().enumerate() {
        let at = (i * 7919) % data.len();
        data[at] = *v;
    }
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// A tensor with storage of its own, which the kernel may overwrite.
fn copy(x: &Tensor<3>) -> Tensor<3> {
    Tensor::from_data(x.clone().into_data(), &x.device())
}

fn bits(tensor: Tensor<3>) -> Vec<u32> {
    let values = tensor.into_data().try_to_vec::<f32>().unwrap();
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn relu6_is_burns_clamp_bit_for_bit() {
    let device = Device::flex();
    device.seed(3);
    // Odd sizes, one below a parallel chunk and several above it.
    for shape in [[1, 1, 9], [3, 17, 31], [2, 300, 333], [5, 64, 1031]] {
        let x = values(shape, &device);
        assert_eq!(
            bits(relu6(copy(&x))),
            bits(x.clone().clamp(0.0, 6.0)),
            "{shape:?}"
        );
        // Views that cannot be written in place: transposed, and still shared.
        let transposed = copy(&x).swap_dims(0, 2);
        assert_eq!(
            bits(relu6(transposed.clone())),
            bits(transposed.clamp(0.0, 6.0)),
            "{shape:?} transposed"
        );
        let before = bits(x.clone());
        let kept = x.clone();
        let _ = relu6(x);
        assert_eq!(
            bits(kept),
            before,
            "{shape:?}: a shared input is left alone"
        );
    }
}

#[test]
fn relu6_has_burns_gradient() {
    let device = Device::flex().autodiff();
    device.seed(4);
    let x = values([4, 33, 65], &device).require_grad();
    let weights = Tensor::<3>::random([4, 33, 65], Distribution::Normal(0.0, 1.0), &device);
    let ours = relu6(x.clone()).mul(weights.clone()).sum().backward();
    let burns = x.clone().clamp(0.0, 6.0).mul(weights).sum().backward();
    assert_eq!(bits(x.grad(&ours).unwrap()), bits(x.grad(&burns).unwrap()));
}
