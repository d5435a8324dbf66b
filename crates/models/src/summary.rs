//! A network's layers as Keras' `model.summary()` lists them: each layer with parameters, its
//! output shape, parameter count and multiply-adds per image; then the totals.
//!
//! The layers and their parameters come from the module tree (Burn's `ModuleVisitor`); the output
//! shapes from one traced forward pass of a single image ([`kernels::trace`]), so that no network
//! has to describe itself.

use std::collections::HashMap;

use burn::module::{ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use serde::Serialize;

use crate::ImageClassifier;

/// One layer with parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    /// Its path in the module tree, e.g. `blocks.1.conv1`.
    pub name: String,
    /// Burn's module type, e.g. `Conv2d`.
    pub kind: String,
    /// `[channels, height, width]` or `[features]` for one image; empty if the forward pass did
    /// not show it.
    pub output: Vec<usize>,
    pub params: usize,
    /// Of `params`, those training changes: none in a frozen layer, and never BatchNorm's
    /// running statistics.
    pub trainable_params: usize,
    /// Multiply-adds per image.
    pub macs: u64,
}

/// Every layer with parameters, in the order the network declares them, and the totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub input: [usize; 3],
    pub layers: Vec<Layer>,
    pub params: usize,
    pub trainable_params: usize,
    /// Parameters training leaves as they are: frozen layers', BatchNorm's running statistics.
    pub non_trainable_params: usize,
    /// Multiply-adds per image of one forward pass.
    pub macs: u64,
}

/// The layers of `network` for `side` x `side` RGB images; training leaves the network's
/// [`ImageClassifier::fixed_layers`] as they are, and those `frozen(name)` names (a recipe's
/// choice).
pub fn summarize<M: ImageClassifier>(
    network: &M,
    side: usize,
    frozen: impl Fn(&str) -> bool,
    device: &Device,
) -> Summary {
    let fixed = network.fixed_layers();
    let frozen = |name: &str| frozen(name) || fixed.iter().any(|f| f == name);
    let mut visitor = Layers {
        fixed: &fixed,
        path: Vec::new(),
        layers: Vec::new(),
    };
    network.visit(&mut visitor);
    let image = Tensor::<4>::zeros([1, 3, side, side], device);
    let (_, traced) = kernels::trace::traced(|| network.forward(image));
    let shapes: HashMap<ParamId, Vec<usize>> = traced
        .into_iter()
        .map(|t| (t.param, t.output[1..].to_vec()))
        .collect();
    let layers: Vec<Layer> = visitor
        .layers
        .into_iter()
        .map(|found| {
            let (output, macs) = match (shapes.get(&found.first), found.weight.as_slice()) {
                // A convolution: each output element costs one weight per input it sees.
                (Some(output), [_, per_output @ ..]) if found.kind == "Conv2d" => {
                    let elements: usize = output.iter().product();
                    (
                        output.clone(),
                        (elements * per_output.iter().product::<usize>()) as u64,
                    )
                }
                (Some(output), _) => (output.clone(), 0),
                // A dense layer's weight is `[inputs, outputs]`.
                (None, [inputs, outputs]) if found.kind == "Linear" => {
                    (vec![*outputs], (inputs * outputs) as u64)
                }
                (None, _) => (Vec::new(), 0),
            };
            Layer {
                trainable_params: if frozen(&found.name) {
                    0
                } else {
                    found.learned
                },
                name: found.name,
                kind: found.kind,
                output,
                params: found.params,
                macs,
            }
        })
        .collect();
    let params = layers.iter().map(|l| l.params).sum();
    let trainable_params = layers.iter().map(|l| l.trainable_params).sum();
    Summary {
        input: [3, side, side],
        macs: layers.iter().map(|l| l.macs).sum(),
        layers,
        params,
        trainable_params,
        non_trainable_params: params - trainable_params,
    }
}

impl Summary {
    /// The table Keras prints, and the totals.
    pub fn table(&self) -> String {
        let name_width = self
            .layers
            .iter()
            .map(|l| l.name.len() + l.kind.len() + 3)
            .max()
            .unwrap_or(0)
            .max(12);
        let mut text = format!(
            "{:<name_width$}  {:<16}  {:>10}  {:>13}\n",
            "layer (type)", "output shape", "params", "MACs"
        );
        for layer in &self.layers {
            let shape = if layer.output.is_empty() {
                "-".to_string()
            } else {
                format!("{:?}", layer.output)
            };
            let mark = if layer.trainable_params == 0 && layer.params > 0 {
                " (frozen)"
            } else {
                ""
            };
            text += &format!(
                "{:<name_width$}  {shape:<16}  {:>10}  {:>13}{mark}\n",
                format!("{} ({})", layer.name, layer.kind),
                thousands(layer.params as u64),
                thousands(layer.macs),
            );
        }
        text += &self.totals();
        text
    }

    /// The totals, in three lines.
    pub fn totals(&self) -> String {
        format!(
            "parameters: {} ({} trainable, {} not: frozen layers, BatchNorm statistics)\nmultiply-adds per {}x{} image: {} ({:.3} GMAC)\n",
            thousands(self.params as u64),
            thousands(self.trainable_params as u64),
            thousands(self.non_trainable_params as u64),
            self.input[1],
            self.input[2],
            thousands(self.macs),
            self.macs as f64 / 1e9
        )
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A module holding parameters directly, as the visitor found it.
struct Found {
    name: String,
    kind: String,
    /// Its first parameter, which the trace names it by.
    first: ParamId,
    /// The shape of its `weight`, where it has one.
    weight: Vec<usize>,
    params: usize,
    /// Of `params`, those a gradient reaches (not BatchNorm's running statistics).
    learned: usize,
}

/// Collects the modules holding parameters, by their path.
struct Layers<'a> {
    /// Parameters that never train, as `<layer path>.<field>`.
    fixed: &'a [String],
    /// `(field or variant name, the type of the module it belongs to)` down to where we are.
    path: Vec<(String, String)>,
    layers: Vec<Found>,
}

impl ModuleVisitor for Layers<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(((field, owner), parents)) = self.path.split_last() else {
            return;
        };
        // The registry's enum variant names the network, not a layer.
        let name = parents
            .iter()
            .filter(|(_, container)| !container.starts_with("Enum:"))
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let kind = owner
            .split_once(':')
            .map_or(owner.as_str(), |(_, kind)| kind)
            .to_string();
        let shape = param.shape().dims::<D>().to_vec();
        let elements: usize = shape.iter().product();
        let fixed = self.fixed.iter().any(|f| {
            f.strip_suffix(field.as_str())
                .and_then(|layer| layer.strip_suffix('.'))
                == Some(name.as_str())
        });
        let learned = if field.starts_with("running_") || fixed {
            0
        } else {
            elements
        };
        match self.layers.last_mut() {
            Some(layer) if layer.name == name && layer.kind == kind => {
                layer.params += elements;
                layer.learned += learned;
                if field == "weight" {
                    layer.weight = shape;
                }
            }
            _ => self.layers.push(Found {
                name,
                kind,
                first: param.id,
                weight: if field == "weight" { shape } else { Vec::new() },
                params: elements,
                learned,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convnet::ConvNetConfig;

    #[test]
    fn the_tutorial_convnet_has_its_keras_summary() {
        let device = Device::flex();
        let net = ConvNetConfig::new().init(&device);
        let summary = summarize(&net, 32, |_| false, &device);
        let names: Vec<&str> = summary.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv2d_1",
                "conv2d_2",
                "conv2d_3",
                "conv2d_4",
                "fc1",
                "fc2",
                "predictions"
            ]
        );
        // As Keras counts the tutorial's network.
        let params: Vec<usize> = summary.layers.iter().map(|l| l.params).collect();
        assert_eq!(params, [896, 9248, 51264, 102464, 2360320, 1049600, 10250]);
        assert_eq!(summary.params, 3_584_042);
        assert_eq!(summary.layers[0].output, [32, 30, 30]);
        assert_eq!(summary.layers[0].macs, 30 * 30 * 32 * 27);
        assert_eq!(summary.layers[3].output, [64, 6, 6]);
        assert_eq!(summary.layers[4].output, [1024]);
        assert_eq!(summary.layers[4].macs, 2304 * 1024);
        assert_eq!(summary.trainable_params, summary.params);
        let frozen = summarize(&net, 32, |name| name.starts_with("conv"), &device);
        assert_eq!(frozen.non_trainable_params, 896 + 9248 + 51264 + 102464);
        assert!(frozen.table().contains("conv2d_1 (Conv2d)"));
        assert_eq!(thousands(3_584_042), "3,584,042");

        // A whitened fastnet: its stem never trains, nor do BatchNorm's running statistics.
        let fastnet = crate::fastnet::FastNetConfig::new()
            .with_whiten(true)
            .init(&device);
        let summary = summarize(&fastnet, 32, |_| false, &device);
        let channels = 32 + 64 + 64 + 128 + 128 + 256 + 256;
        assert_eq!(summary.non_trainable_params, 27 * 32 + 2 * channels);
        assert_eq!(summary.layers[1].name, "stem.bn");
        assert_eq!(summary.layers[1].trainable_params, 64);
        assert_eq!(summary.macs, 85_821_952);
        assert_eq!(thousands(999), "999");

        // airbench's network: its whitening filters and BatchNorm's scales never train; the
        // stem's bias does.
        let airnet =
            crate::Blueprint::init(&crate::airnet::AirNetSpec::default(), 10, 32, None, &device);
        let summary = summarize(&airnet, 32, |_| false, &device);
        let channels = 2 * (64 + 256 + 256);
        assert_eq!(summary.non_trainable_params, 24 * 12 + 3 * channels);
        let stem: Vec<_> = summary.layers[..2]
            .iter()
            .map(|l| (l.name.as_str(), l.trainable_params, l.output.clone()))
            .collect();
        assert_eq!(
            stem,
            [("stem.conv", 0, vec![24, 31, 31]), ("stem", 24, vec![])]
        );
        assert_eq!(summary.macs, 118_147_360);
    }
}
