//! The project's random numbers: SplitMix64 ([`Rng`]), its counter-based form ([`at`]) for draws
//! made in parallel, and the one rule by which every seed in a run is derived from the config's
//! `seed` ([`derive`]), so that "same seed, same numbers" holds on every platform and any number
//! of threads.
//!
//! Not here: what the numbers are used for (shuffles and splits in `data`, dropout's mask in
//! `kernels`, the per-epoch seeds in `train`).
//!
//! Our own rather than `rand`'s: the sequences are part of the results a seed promises
//! (splits, shuffles, masks), so they must never change with a dependency's version.

use serde::{Deserialize, Serialize};

/// SplitMix64's increment, the golden ratio in 64 bits.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: small, fast, and the same numbers on every platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        finalize(self.state)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The `index`-th number (from 0) of `Rng::new(seed)`, without drawing the ones before it: each
/// element of a large random tensor can be drawn on its own core.
pub fn at(seed: u64, index: u64) -> u64 {
    finalize(seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// The streams of random numbers a run draws, each with its own seeds derived from the run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// An epoch's shuffle and random layers, by epoch number.
    Epoch,
    /// A training batch's augmentation, by step (from 1).
    Batch,
    /// One device's share of a batch, by device (the first keeps the batch's seed).
    Shard,
    /// One image's augmentation within a batch, by position.
    Image,
}

impl Stream {
    /// Odd multipliers with well-mixed bits, a different one per stream so that streams with the
    /// same index do not share seeds.
    fn multiplier(self) -> u64 {
        match self {
            Stream::Epoch => 0x9E37_79B9,
            Stream::Batch => 0xD1B5_4A32_D192_ED03,
            Stream::Shard => 0xA076_1D64_78BD_642F,
            Stream::Image => 0x2545_F491_4F6C_DD1D,
        }
    }
}

/// The seed of the `index`-th member of `stream` under `seed`: `seed ^ (index · multiplier)`.
/// Index 0 keeps `seed` itself.
pub fn derive(seed: u64, stream: Stream, index: u64) -> u64 {
    seed ^ index.wrapping_mul(stream.multiplier())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_is_the_sequence_drawn_in_order() {
        let mut rng = Rng::new(42);
        for index in 0..100 {
            assert_eq!(at(42, index), rng.next_u64());
        }
    }

    #[test]
    fn splitmix64_reference_values() {
        // The first outputs of SplitMix64 seeded with 1234567 (Vigna's reference implementation).
        let mut rng = Rng::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
    }

    #[test]
    fn streams_differ_and_index_zero_keeps_the_seed() {
        assert_eq!(derive(7, Stream::Batch, 0), 7);
        let seeds: Vec<u64> = [Stream::Epoch, Stream::Batch, Stream::Shard, Stream::Image]
            .map(|stream| derive(7, stream, 3))
            .into();
        for (i, a) in seeds.iter().enumerate() {
            assert!(seeds[i + 1..].iter().all(|b| b != a), "{seeds:?}");
        }
    }
}
