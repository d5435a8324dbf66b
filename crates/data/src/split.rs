//! The seeded train/validation split.

use rng::Rng;

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
