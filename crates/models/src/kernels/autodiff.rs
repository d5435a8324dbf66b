//! The backward steps of [`Kernels::relu6`], [`Kernels::convolution`] and
//! [`Kernels::max_pool2x2`], which call the gradients of the backend underneath, where ours on
//! `Flex` come in: a ReLU6 node that keeps its input (Burn's clamp is two masked fills, each
//! differentiated by another), a convolution node that keeps what Burn's keeps (input and weight),
//! a max-pooling node that keeps the input instead of the maxima's indices.

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
        match Relu6.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::relu6(x.into_primitive()))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::relu6(x.into_primitive())),
        }
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
        match MaxPool2x2
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::max_pool2x2(x.into_primitive()))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2x2(x.into_primitive())),
        }
    }
}

#[derive(Debug)]
struct Relu6;

impl<B: Backend + Kernels> Backward<B, 1> for Relu6 {
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
            grads.register::<B>(node.id, B::relu6_backward(x, output_grad));
        }
    }
}

#[derive(Debug)]
struct MaxPool2x2;

impl<B: Backend + Kernels> Backward<B, 1> for MaxPool2x2 {
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
            grads.register::<B>(node.id, B::max_pool2x2_backward(x, output_grad));
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
