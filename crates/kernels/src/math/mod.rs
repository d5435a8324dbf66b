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
pub(crate) mod tuning;

/// The scalar instruction set and every vector one this CPU has: what a kernel's tests run it on,
/// beyond the one `pulp` picks.
#[cfg(test)]
fn every_arch() -> Vec<pulp::Arch> {
    #[allow(unused_mut)]
    let mut arches = vec![pulp::Arch::Scalar];
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        arches.extend(pulp::x86::V3::try_new().map(pulp::Arch::V3));
        arches.extend(pulp::x86::V4::try_new().map(pulp::Arch::V4));
    }
    arches
}
