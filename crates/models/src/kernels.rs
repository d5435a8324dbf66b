//! Kernels of our own for operations Burn's CPU backend runs slowly, plugged in through Burn's
//! backend-extension mechanism. Other backends, and autodiff, run Burn's own operations (the
//! traits' default bodies), so gradients are Burn's.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, Scalar, backend_extension};
use burn::prelude::*;
use rayon::prelude::*;

/// Elements per parallel task: large enough that scheduling costs nothing next to the work.
const CHUNK: usize = 1 << 16;

#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    NdArray: cfg(feature = "ndarray")
)]
pub trait Kernels: Backend {
    /// `min(max(x, 0), 6)`, NaN staying NaN: Burn's `clamp(0, 6)`.
    fn relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        burns_relu6::<Self>(x)
    }
}

/// ReLU6 out of Burn's own clamp.
fn burns_relu6<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_clamp(x, Scalar::Float(0.0), Scalar::Float(6.0))
}

/// Flex's clamp walks the elements on one thread; this one is in place on every core.
impl Kernels for Flex {
    fn relu6(mut x: FlexTensor) -> FlexTensor {
        let layout = x.layout();
        let in_place = x.dtype() == DType::F32
            && x.is_unique()
            && layout.is_contiguous()
            && layout.start_offset() == 0;
        if !in_place {
            return burns_relu6::<Self>(x);
        }
        let n = layout.num_elements();
        x.storage_mut::<f32>()[..n]
            .par_chunks_mut(CHUNK)
            .for_each(|chunk| {
                for v in chunk {
                    *v = v.clamp(0.0, 6.0);
                }
            });
        x
    }
}

impl<B: Backend + Kernels, C: CheckpointStrategy> Kernels for Autodiff<B, C> {}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Kernels for burn::backend::Cube {}

#[cfg(feature = "ndarray")]
impl Kernels for burn::backend::NdArray {}

/// ReLU6 (MobileNet's and EfficientNet-Lite's activation), through [`Kernels::relu6`].
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::relu6(x.into_dispatch()))
}
