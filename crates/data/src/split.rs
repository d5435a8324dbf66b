//! Seeded shuffles and the train/validation split.

/// SplitMix64: small, fast, and the same numbers on every platform, which the "same seed, same
/// numbers" promise needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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

/// Shuffle `0..n` with `seed` and hold out `valid_fraction` of it: `(train, valid)` indices.
pub fn train_valid(n: usize, valid_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut indices: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut indices);
    let valid = ((n as f64) * valid_fraction).round() as usize;
    let train = indices.split_off(valid.min(n));
    (train, indices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let (train, valid) = train_valid(50_000, 0.25, 42);
        assert_eq!((train.len(), valid.len()), (37_500, 12_500));
        let mut all: Vec<_> = train.iter().chain(&valid).copied().collect();
        all.sort();
        assert_eq!(all, (0..50_000).collect::<Vec<_>>());
        assert_eq!(train_valid(50_000, 0.25, 42).1, valid);
        assert_ne!(train_valid(50_000, 0.25, 43).1, valid);
    }
}
