//! The arithmetic of the kernels on plain `f32` slices, free of Burn's types: each module is one
//! operation's forward and backward passes, parallel over rayon's pool.

pub mod adam;
pub mod batch_norm;
pub mod convolution;
pub mod depthwise;
pub mod direct;
pub mod dropout;
pub mod epilogue;
pub mod gelu;
pub mod max_pool;
pub(crate) mod output;
pub mod transpose;
