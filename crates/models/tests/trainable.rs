//! Every parameter a network is meant to learn gets a gradient from one training step.

use burn::module::{ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use models::ImageClassifier;
use models::convnet::ConvNetConfig;
use models::fastnet::FastNetConfig;

/// The paths of the float parameters of a module that `grads` has nothing for (BatchNorm's
/// running statistics are not learned).
struct Untrained<'a> {
    grads: &'a GradientsParams,
    path: Vec<String>,
    missing: Vec<String>,
}

impl ModuleVisitor for Untrained<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let id: ParamId = param.id;
        let statistic = self
            .path
            .last()
            .is_some_and(|name| name.starts_with("running_"));
        if !statistic && self.grads.get::<D>(id).is_none() {
            self.missing.push(self.path.join("."));
        }
    }
}

fn untrained<M: Module>(model: &M, logits: Tensor<2>) -> Vec<String> {
    let grads = GradientsParams::from_grads(logits.powi_scalar(2).sum().backward(), model);
    let mut visitor = Untrained {
        grads: &grads,
        path: Vec::new(),
        missing: Vec::new(),
    };
    model.visit(&mut visitor);
    visitor.missing
}

fn images(device: &Device) -> Tensor<4> {
    Tensor::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn every_convnet_weight_and_bias_learns() {
    let device = Device::flex().autodiff();
    let model = ConvNetConfig::new().init(&device);
    let missing = untrained(&model, model.forward(images(&device)));
    assert!(missing.is_empty(), "no gradient for {missing:?}");
}

#[test]
fn every_fastnet_parameter_learns() {
    let device = Device::flex().autodiff();
    let model = FastNetConfig::new().init(&device);
    let missing = untrained(&model, model.forward(images(&device)));
    assert!(missing.is_empty(), "no gradient for {missing:?}");
}
