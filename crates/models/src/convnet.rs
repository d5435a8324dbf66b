//! The tutorial's convnet for 32x32 colour images, layer for layer and with the tutorial's names.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;

use kernels::{Activation, conv2d_activated, max_pool2d, relu};
use serde::{Deserialize, Serialize};

use crate::classifier::{ImageClassifier, InputSpec, Seen};
use crate::registry::Blueprint;

/// The names of the layers whose outputs [`ConvNet::forward_maps`] can return, in network order.
pub const MAP_LAYERS: [&str; 5] = ["conv2d_1", "conv2d_2", "maxpool_2", "conv2d_3", "conv2d_4"];

/// `model.name = "convnet"`: the tutorial's network has no settings of its own; its input side
/// comes from the data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvNetSpec {}

impl Blueprint for ConvNetSpec {
    type Network = ConvNet;

    fn input(&self) -> InputSpec {
        InputSpec {
            min_side: ConvNetConfig::MIN_IMAGE_SIZE,
            side_multiple: 1,
        }
    }

    fn init(&self, classes: usize, side: usize, _: Option<Tensor<4>>, device: &Device) -> ConvNet {
        ConvNetConfig::new()
            .with_num_classes(classes)
            .with_image_size(side)
            .init(device)
    }
}

#[derive(Config, Debug)]
pub struct ConvNetConfig {
    #[config(default = 10)]
    pub num_classes: usize,
    #[config(default = 3)]
    pub channels: usize,
    /// Side of the square input image; 32 for CIFAR-10.
    #[config(default = 32)]
    pub image_size: usize,
}

/// conv 3x3/32, conv 3x3/32, max-pool 2, conv 5x5/64, conv 5x5/64, dense 1024, dense 1024, dense
/// classes; ReLU after every layer but the last, no padding anywhere.
#[derive(Module, Debug)]
pub struct ConvNet {
    conv2d_1: Conv2d,
    conv2d_2: Conv2d,
    maxpool_2: MaxPool2d,
    conv2d_3: Conv2d,
    conv2d_4: Conv2d,
    fc1: Linear,
    fc2: Linear,
    predictions: Linear,
}

impl ConvNetConfig {
    /// The smallest input side the layers fit: 22 leaves a 1x1 final map.
    pub const MIN_IMAGE_SIZE: usize = 22;

    /// The side of the last feature map: 32 → 30 → 28 → 14 → 10 → 6.
    fn final_side(&self) -> usize {
        assert!(
            self.image_size >= Self::MIN_IMAGE_SIZE,
            "the convnet needs images of at least {0}x{0}",
            Self::MIN_IMAGE_SIZE
        );
        (self.image_size - 4) / 2 - 8
    }

    pub fn init(&self, device: &Device) -> ConvNet {
        // Keras' default (Glorot uniform kernels, zero biases), so the tutorial's recipe behaves
        // the same here.
        let glorot = Initializer::XavierUniform { gain: 1.0 };
        let conv = |c_in, c_out, k| {
            Conv2dConfig::new([c_in, c_out], [k, k])
                .with_initializer(glorot.clone())
                .init(device)
        };
        let dense = |d_in, d_out| {
            LinearConfig::new(d_in, d_out)
                .with_initializer(glorot.clone())
                .init(device)
        };
        let side = self.final_side();
        ConvNet {
            conv2d_1: conv(self.channels, 32, 3),
            conv2d_2: conv(32, 32, 3),
            maxpool_2: MaxPool2dConfig::new([2, 2]).init(),
            conv2d_3: conv(32, 64, 5),
            conv2d_4: conv(64, 64, 5),
            fc1: dense(64 * side * side, 1024),
            fc2: dense(1024, 1024),
            predictions: dense(1024, self.num_classes),
        }
        .zero_biases()
    }
}

/// A trainable parameter of `bias`'s shape holding zeros (`Param::map` would keep the new tensor's
/// own setting, which is not to learn).
fn zeros(bias: Param<Tensor<1>>) -> Param<Tensor<1>> {
    Param::from_tensor(bias.val().zeros_like())
}

impl ConvNet {
    fn zero_biases(mut self) -> Self {
        for conv in [
            &mut self.conv2d_1,
            &mut self.conv2d_2,
            &mut self.conv2d_3,
            &mut self.conv2d_4,
        ] {
            conv.bias = conv.bias.take().map(zeros);
        }
        for dense in [&mut self.fc1, &mut self.fc2, &mut self.predictions] {
            dense.bias = dense.bias.take().map(zeros);
        }
        self
    }
}

impl ImageClassifier for ConvNet {
    /// The convolutional part: `[b, 3, 32, 32]` → `conv2d_4`'s `[b, 64, 6, 6]`.
    fn features(&self, x: Tensor<4>, seen: Seen) -> Tensor<4> {
        let x = conv2d_activated(&self.conv2d_1, x, Activation::Relu); // [b, 32, 30, 30]
        seen("conv2d_1", &x);
        let x = conv2d_activated(&self.conv2d_2, x, Activation::Relu); // [b, 32, 28, 28]
        seen("conv2d_2", &x);
        let x = max_pool2d(&self.maxpool_2, x); // [b, 32, 14, 14]
        seen("maxpool_2", &x);
        let x = conv2d_activated(&self.conv2d_3, x, Activation::Relu); // [b, 64, 10, 10]
        seen("conv2d_3", &x);
        let x = conv2d_activated(&self.conv2d_4, x, Activation::Relu); // [b, 64, 6, 6]
        seen("conv2d_4", &x);
        x
    }

    fn map_layers(&self) -> Vec<String> {
        MAP_LAYERS.map(String::from).into()
    }

    /// The dense part: `conv2d_4`'s output `[b, 64, 6, 6]` → logits (where Grad-CAM starts).
    fn classify_maps(&self, maps: Tensor<4>) -> Tensor<2> {
        let x: Tensor<2> = maps.flatten(1, 3); // [b, 2304]
        let x = relu(self.fc1.forward(x)); // [b, 1024]
        let x = relu(self.fc2.forward(x)); // [b, 1024]
        self.predictions.forward(x) // [b, classes]
    }

    /// The first convolution's filters, `[32, channels, 3, 3]`.
    fn first_filters(&self) -> Tensor<4> {
        self.conv2d_1.weight.val()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_tutorial() {
        let device = Device::flex();
        let net = ConvNetConfig::new().init(&device);
        let (logits, shapes) = crate::classifier::shapes_for_two(&net, 32, &device);
        assert_eq!(logits, [2, 10]);
        assert_eq!(
            shapes,
            [
                [2, 32, 30, 30],
                [2, 32, 28, 28],
                [2, 32, 14, 14],
                [2, 64, 10, 10],
                [2, 64, 6, 6]
            ]
        );
        assert_eq!(net.num_params(), 3_584_042);
    }
}
