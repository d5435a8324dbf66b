//! The arithmetic of the kernels on plain `f32` slices, free of Burn's types: each module is one
//! operation's forward and backward passes, parallel over rayon's pool.

pub mod adam;
pub mod batch_norm;
pub mod bf16;
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

/// Where a tensor's channels lie: `[batch, channels, h, w]`, Burn's layout (each channel's plane
/// contiguous), or `[batch, h, w, channels]` (each position's channels contiguous). Channels-last
/// suits small planes with many channels (EfficientNet's last blocks): a 1x1 convolution is then
/// one matrix product over every position of the batch, and the depthwise kernels and
/// BatchNorm's sums run along the channels without transposing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    First,
    Last,
}

impl Channels {
    /// The axes `permute` takes to turn a tensor of `rank` axes laid out in this order
    /// channels-first (`[batch, channels, …]`, where Burn's operations look for them).
    pub fn to_first(self, rank: usize) -> Vec<usize> {
        match self {
            Self::First => (0..rank).collect(),
            Self::Last => [0, rank - 1].into_iter().chain(1..rank - 1).collect(),
        }
    }

    /// The axes `permute` takes to turn a channels-first tensor of `rank` axes into this order:
    /// the inverse of [`Channels::to_first`].
    pub fn from_first(self, rank: usize) -> Vec<usize> {
        match self {
            Self::First => (0..rank).collect(),
            Self::Last => [0].into_iter().chain(2..rank).chain([1]).collect(),
        }
    }
}

/// The vector instructions the kernels run on: the widest the CPU has, or at most AVX2 in a build
/// with `RUSTFLAGS="--cfg convkit_avx2"`, which also leaves gemm's AVX-512 kernels out (see
/// `crates/data/Cargo.toml`): how `scripts/bench-cpu.sh` measures a CPU without AVX-512 on one
/// that has it (`ISA=avx2`).
pub fn arch() -> pulp::Arch {
    #[cfg(all(convkit_avx2, any(target_arch = "x86", target_arch = "x86_64")))]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return pulp::Arch::V3(simd);
    }
    pulp::Arch::new()
}

/// The name of the instruction set [`arch`] picks: `avx512`, `avx2`, or `scalar` (also on CPUs
/// other than x86's, whose vectors these kernels leave to the compiler).
pub fn instruction_set() -> &'static str {
    match arch() {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        pulp::Arch::V4(_) => "avx512",
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        pulp::Arch::V3(_) => "avx2",
        _ => "scalar",
    }
}

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

#[cfg(test)]
mod channel_tests {
    use super::Channels;

    #[test]
    fn channels_last_axes_turn_first_and_back() {
        assert_eq!(Channels::Last.to_first(4), [0, 3, 1, 2]);
        assert_eq!(Channels::Last.from_first(4), [0, 2, 3, 1]);
        for rank in 2..6 {
            for channels in [Channels::First, Channels::Last] {
                let (there, back) = (channels.to_first(rank), channels.from_first(rank));
                let composed: Vec<usize> = back.iter().map(|&axis| there[axis]).collect();
                assert_eq!(
                    composed,
                    (0..rank).collect::<Vec<_>>(),
                    "{channels:?}, rank {rank}"
                );
            }
        }
    }
}

#[cfg(all(test, any(target_arch = "x86", target_arch = "x86_64")))]
mod tests {
    /// The widest instruction set the CPU has, at most AVX2 in a `convkit_avx2` build.
    #[test]
    fn kernels_run_on_the_widest_instruction_set_the_build_allows() {
        let expected = if pulp::x86::V4::try_new().is_some() && !cfg!(convkit_avx2) {
            "avx512"
        } else if pulp::x86::V3::try_new().is_some() {
            "avx2"
        } else {
            "scalar"
        };
        assert_eq!(super::instruction_set(), expected);
    }
}
