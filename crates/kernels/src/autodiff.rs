//! The backward steps of [`Kernels::rectify`], [`Kernels::relu6`], [`Kernels::gelu_exact`],
//! [`Kernels::convolution`] (and [`Kernels::convolution_biased`]),
//! [`Kernels::max_pool2x2`] and [`Kernels::normalize_batch`], which call the gradients of the
//! backend underneath, where ours on `Flex` come in: a ReLU node that keeps its output, ReLU6 and
//! max-pooling nodes that keep their input (Burn differentiates its clamp as two masked fills,
//! and keeps the maxima's indices), convolution and BatchNorm nodes that keep what Burn's keep
//! (input and weight; input, gamma and the batch statistics, and the scale and shift from which
//! BatchNorm's activation, if any, gets the normalized values again instead of keeping them).
//! Dropout's factors are a constant to autodiff.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, AutodiffBackend, Backend, tensor::FloatTensor};
use burn::tensor::ops::ConvOptions;

use crate::{Activation, Channels, Kernels};

impl<B: Backend + Kernels, C: CheckpointStrategy> Kernels for Autodiff<B, C> {
    fn relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        keeping_input::<B, C>(x, B::relu6, B::relu6_backward)
    }

    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        keeping_input::<B, C>(x, B::gelu_exact, B::gelu_exact_backward)
    }

    fn rectify(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match Rectifier
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::rectify(x.into_primitive());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::rectify(x.into_primitive())),
        }
    }

    fn convolution(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
        channels: Channels,
    ) -> FloatTensor<Self> {
        convolution_node::<B, C, 2>(
            Convolution,
            [x, weight],
            (options, channels),
            |[x, weight], options| B::convolution(x, weight, options, channels),
        )
    }

    fn convolution_biased(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        convolution_node::<B, C, 3>(
            BiasedConvolution,
            [x, weight, bias],
            (options, Channels::First),
            |[x, weight, bias], options| B::convolution_biased(x, weight, bias, options),
        )
    }

    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        keeping_input::<B, C>(x, B::max_pool2x2, B::max_pool2x2_backward)
    }

    fn normalize_batch(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        activation: Activation,
        channels: Channels,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let prepared = BatchNormalization
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (output, mean, variance, scale, shift) = match prepared {
            OpsKind::Tracked(mut prep) => {
                let (x_id, gamma_id) = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let (output, mean, variance, scale, shift) = B::normalize_batch(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    activation,
                    channels,
                );
                let state = Statistics {
                    x: x_id,
                    gamma: gamma_id,
                    mean: mean.clone(),
                    variance: variance.clone(),
                    scale: scale.clone(),
                    shift: shift.clone(),
                    epsilon,
                    activation,
                    channels,
                };
                (prep.finish(state, output), mean, variance, scale, shift)
            }
            OpsKind::UnTracked(prep) => {
                let (output, mean, variance, scale, shift) = B::normalize_batch(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    activation,
                    channels,
                );
                (prep.finish(output), mean, variance, scale, shift)
            }
        };
        (
            output,
            Self::from_inner(mean),
            Self::from_inner(variance),
            Self::from_inner(scale),
            Self::from_inner(shift),
        )
    }

    fn dropout_scales(like: FloatTensor<Self>, prob: f64) -> FloatTensor<Self> {
        Self::from_inner(B::dropout_scales(Self::inner(like), prob))
    }
}

/// `forward` of the parents (the input, the weight, and the bias if any) as a convolution node
/// that keeps the input and the weight for its gradients.
fn convolution_node<B: Backend + Kernels, C: CheckpointStrategy, const N: usize>(
    node: impl Backward<B, N, State = Saved>,
    parents: [FloatTensor<Autodiff<B, C>>; N],
    (options, channels): (ConvOptions<2>, Channels),
    forward: impl FnOnce([FloatTensor<B>; N], ConvOptions<2>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes = parents.each_ref().map(|parent| parent.node());
    match node.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let state = Saved {
                x: prep.checkpoint(&parents[0]),
                weight: prep.checkpoint(&parents[1]),
                options: options.clone(),
                channels,
            };
            let output = forward(parents.map(|parent| parent.into_primitive()), options);
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(
            parents.map(|parent| parent.into_primitive()),
            options,
        )),
    }
}

/// `forward(x)` as a node that keeps `x` and differentiates with `gradient(x, output gradient)`.
fn keeping_input<B: Backend + Kernels, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    forward: fn(FloatTensor<B>) -> FloatTensor<B>,
    gradient: Gradient<B>,
) -> FloatTensor<Autodiff<B, C>> {
    match KeepsInput(gradient)
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = prep.checkpoint(&x);
            prep.finish(state, forward(x.into_primitive()))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
    }
}

/// The input gradient of a one-input operation from its input and its output gradient.
type Gradient<B> = fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>;

#[derive(Debug)]
struct KeepsInput<B: Backend>(Gradient<B>);

impl<B: Backend + Kernels> Backward<B, 1> for KeepsInput<B> {
    type State = NodeId;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(ops.state);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, (self.0)(x, output_grad));
        }
    }
}

/// ReLU's node keeps its output, as Burn's does: the input is then free to be overwritten.
#[derive(Debug)]
struct Rectifier;

impl<B: Backend + Kernels> Backward<B, 1> for Rectifier {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::rectify_backward(ops.state, output_grad));
        }
    }
}

#[derive(Debug)]
struct Convolution;

/// What the gradients need from the forward pass.
#[derive(Debug, Clone)]
struct Saved {
    x: NodeId,
    weight: NodeId,
    options: ConvOptions<2>,
    channels: Channels,
}

impl<B: Backend + Kernels> Backward<B, 2> for Convolution {
    type State = Saved;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        let gradients = [node_x.map(|n| n.id), node_weight.map(|n| n.id)];
        convolution_grads::<B>(gradients, ops.state, output_grad, grads, checkpointer);
    }
}

/// A convolution with its bias added: the convolution's gradients, and the bias's.
#[derive(Debug)]
struct BiasedConvolution;

impl<B: Backend + Kernels> Backward<B, 3> for BiasedConvolution {
    type State = Saved;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_bias {
            grads.register::<B>(node.id, B::channel_totals(output_grad.clone()));
        }
        let gradients = [node_x.map(|n| n.id), node_weight.map(|n| n.id)];
        convolution_grads::<B>(gradients, ops.state, output_grad, grads, checkpointer);
    }
}

/// The gradients of a convolution's input and weight, for the nodes that want them.
fn convolution_grads<B: Backend + Kernels>(
    [node_x, node_weight]: [Option<NodeId>; 2],
    saved: Saved,
    output_grad: FloatTensor<B>,
    grads: &mut Gradients,
    checkpointer: &mut Checkpointer,
) {
    let Saved {
        x,
        weight,
        options,
        channels,
    } = saved;
    let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
    let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight);
    if let Some(node) = node_x {
        let grad = B::convolution_input_grad(
            x.clone(),
            weight.clone(),
            output_grad.clone(),
            options.clone(),
            channels,
        );
        grads.register::<B>(node, grad);
    }
    if let Some(node) = node_weight {
        let grad = B::convolution_weight_grad(x, weight, output_grad, options, channels);
        grads.register::<B>(node, grad);
    }
}

#[derive(Debug)]
struct BatchNormalization;

/// What BatchNorm's gradients need from the forward pass.
#[derive(Debug, Clone)]
struct Statistics<B: Backend> {
    x: NodeId,
    gamma: NodeId,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
    epsilon: f64,
    activation: Activation,
    channels: Channels,
}

impl<B: Backend + Kernels> Backward<B, 3> for BatchNormalization {
    type State = Statistics<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        let Statistics {
            x,
            gamma,
            mean,
            variance,
            scale,
            shift,
            epsilon,
            activation,
            channels,
        } = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma);
        let (x_grad, gamma_grad, beta_grad) = B::normalize_batch_backward(
            x,
            gamma,
            mean,
            variance,
            scale,
            shift,
            epsilon,
            activation,
            output_grad,
            channels,
        );
        for (node, grad) in [
            (node_x, x_grad),
            (node_gamma, gamma_grad),
            (node_beta, beta_grad),
        ] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}
