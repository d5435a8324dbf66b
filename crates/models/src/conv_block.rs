//! What fastnet and airnet are built of: a convolution with its BatchNorm, and airbench's block of
//! two of them around a 2x2 max-pool (conv 3x3, max-pool, BatchNorm, activation, conv 3x3,
//! BatchNorm, activation), with the activation a choice.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use kernels::{activate, conv2d, conv2d_normalized, max_pool2d_normalized};
use serde::{Deserialize, Serialize};

/// The nonlinearity after each BatchNorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    /// `x·Φ(x)`, airbench's choice.
    Gelu,
}

impl Activation {
    pub fn apply(self, x: Tensor<4>) -> Tensor<4> {
        activate(x, self.kernel())
    }

    /// The kernels' name for it.
    fn kernel(self) -> kernels::Activation {
        match self {
            Activation::Relu => kernels::Activation::Relu,
            Activation::Gelu => kernels::Activation::Gelu,
        }
    }
}

#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBn {
    /// The convolution, the BatchNorm, the activation: in inference one pass over the output.
    pub fn forward(&self, x: Tensor<4>, activation: Activation) -> Tensor<4> {
        conv2d_normalized(&self.conv, &self.bn, x, activation.kernel())
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub first: ConvBn,
    pool: MaxPool2d,
    pub second: ConvBn,
}

impl Block {
    pub fn new(first: ConvBn, second: ConvBn) -> Self {
        Self {
            first,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            second,
        }
    }

    /// `[b, c, h, w]` → `[b, c', h/2, w/2]`.
    pub fn forward(&self, x: Tensor<4>, activation: Activation) -> Tensor<4> {
        let x = conv2d(&self.first.conv, x);
        let x = max_pool2d_normalized(&self.pool, &self.first.bn, x, activation.kernel());
        self.second.forward(x, activation)
    }
}
