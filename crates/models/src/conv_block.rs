//! What fastnet and airnet are built of: a convolution with its BatchNorm, and airbench's block of
//! two of them around a 2x2 max-pool (conv 3x3, max-pool, BatchNorm, activation, conv 3x3,
//! BatchNorm, activation), with the activation a choice.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use kernels::{batch_norm, conv2d, gelu, max_pool2d, relu};
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
        match self {
            Activation::Relu => relu(x),
            Activation::Gelu => gelu(x),
        }
    }
}

#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBn {
    /// The convolution, then the BatchNorm.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm(&self.bn, conv2d(&self.conv, x))
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
        let x = max_pool2d(&self.pool, conv2d(&self.first.conv, x));
        let x = activation.apply(batch_norm(&self.first.bn, x));
        activation.apply(self.second.forward(x))
    }
}
