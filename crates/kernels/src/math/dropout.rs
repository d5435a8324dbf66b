//! Dropout's mask from a counter-based generator: each element's draw is a hash of one seed and
//! the element's index, so every core makes its share of the mask at once, and the mask is the
//! same on any number of threads. Burn draws the mask element by element on one thread, from a
//! generator behind a lock.

use rayon::prelude::*;

use crate::CHUNK;

/// The factor each of `len` elements is multiplied by: `1 / keep` for an element kept (with
/// probability `keep`), 0 for one dropped.
pub fn scales(len: usize, keep: f64, seed: u64) -> Vec<f32> {
    // A draw is the hash's top 32 bits, kept below `keep · 2³²`.
    let threshold = (keep * 4_294_967_296.0).round() as u64;
    // As Burn scales: a kept element is multiplied by this f32.
    let scale = (1.0 / keep) as f32;
    let mut scales = vec![0.0; len];
    scales
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, scales)| {
            let first = (chunk * CHUNK) as u64;
            for (index, v) in (first..).zip(scales.iter_mut()) {
                *v = if rng::at(seed, index) >> 32 < threshold {
                    scale
                } else {
                    0.0
                };
            }
        });
    scales
}
