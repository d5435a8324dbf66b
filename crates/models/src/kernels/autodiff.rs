//! The backward steps of [`Kernels::relu6`], [`Kernels::convolution`] and
//! [`Kernels::max_pool2x2`], which call the gradients of the backend underneath, where ours on
//! `Flex` come in: ReLU6 and max-pooling nodes that keep their input (Burn differentiates its
//! clamp as two masked fills, and keeps the maxima's indices), a convolution node that keeps what
//! Burn's keeps (input and weight).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, tensor::FloatTensor};
use burn::tensor::ops::ConvOptions;

use super::Kernels;

impl<B: Backend + Kernels, C: CheckpointStrategy> Kernels for Autodiff<B, C> {
    fn relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        keeping_input::<B, C>(x, B::relu6, B::relu6_backward)
    }

    fn convolution(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match Convolution
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = Saved {
                    x: prep.checkpoint(&x),
                    weight: prep.checkpoint(&weight),
                    options: options.clone(),
                };
                let output = B::convolution(x.into_primitive(), weight.into_primitive(), options);
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::convolution(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }

    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        keeping_input::<B, C>(x, B::max_pool2x2, B::max_pool2x2_backward)
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

#[derive(Debug)]
struct Convolution;

/// What the gradients need from the forward pass.
#[derive(Debug, Clone)]
struct Saved {
    x: NodeId,
    weight: NodeId,
    options: ConvOptions<2>,
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
        let Saved { x, weight, options } = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight);
        if let Some(node) = node_x {
            let grad = B::convolution_input_grad(
                x.clone(),
                weight.clone(),
                output_grad.clone(),
                options.clone(),
            );
            grads.register::<B>(node.id, grad);
        }
        if let Some(node) = node_weight {
            let grad = B::convolution_weight_grad(x, weight, output_grad, options);
            grads.register::<B>(node.id, grad);
        }
    }
}
