//! Training-time augmentation of planar images: random translation (a crop of the image padded
//! by reflection) and horizontal flips, drawn from a seeded generator so that a batch's
//! augmentation depends on the seed alone, never on which thread made it.

use serde::{Deserialize, Serialize};

use crate::split::Rng;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Mirror each image left-right with probability 1/2.
    pub flip: bool,
    /// Shift each image by up to this many pixels in x and y, filling by reflection.
    pub translate: usize,
}

impl Augment {
    pub fn is_identity(&self) -> bool {
        !self.flip && self.translate == 0
    }

    /// One augmented copy of the planar `side` x `side` image `pixels`.
    pub fn apply(&self, pixels: &[u8], side: usize, rng: &mut Rng) -> Vec<u8> {
        let mut shift = || {
            let t = self.translate.min(side - 1) as isize;
            rng.below(2 * t as usize + 1) as isize - t
        };
        let (dx, dy) = (shift(), shift());
        let flip = self.flip && rng.below(2) == 1;
        let mut out = vec![0u8; pixels.len()];
        for (plane, out_plane) in pixels
            .chunks_exact(side * side)
            .zip(out.chunks_exact_mut(side * side))
        {
            for y in 0..side {
                let sy = reflect(y as isize + dy, side);
                let row = &plane[sy * side..][..side];
                for (x, o) in out_plane[y * side..][..side].iter_mut().enumerate() {
                    let x = if flip { side - 1 - x } else { x };
                    *o = row[reflect(x as isize + dx, side)];
                }
            }
        }
        out
    }
}

/// `i` reflected into `0..n` (`-1` → `1`, `n` → `n - 2`), for shifts smaller than `n`.
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let r = if i < 0 {
        -i
    } else if i >= n {
        2 * (n - 1) - i
    } else {
        i
    };
    r.clamp(0, n - 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1-channel-per-plane image whose pixel value encodes its x and y.
    fn ramp(side: usize) -> Vec<u8> {
        (0..3)
            .flat_map(|c| (0..side * side).map(move |p| (c * 64 + p) as u8))
            .collect()
    }

    #[test]
    fn no_augmentation_is_the_identity() {
        let image = ramp(5);
        assert_eq!(Augment::default().apply(&image, 5, &mut Rng::new(1)), image);
    }

    #[test]
    fn flips_mirror_rows_and_shifts_reflect_at_the_edges() {
        let side = 4;
        let image = ramp(side);
        let flip = Augment {
            flip: true,
            translate: 0,
        };
        let mut seen_flipped = false;
        for seed in 0..20 {
            let out = flip.apply(&image, side, &mut Rng::new(seed));
            let mirrored: Vec<u8> = image
                .chunks(side)
                .flat_map(|row| row.iter().rev().copied())
                .collect();
            assert!(out == image || out == mirrored);
            seen_flipped |= out == mirrored;
        }
        assert!(seen_flipped);
        let shift = Augment {
            flip: false,
            translate: 2,
        };
        for seed in 0..50 {
            let out = shift.apply(&image, side, &mut Rng::new(seed));
            // Every output row is a row of the input read with reflection, so the pixel values
            // stay within the plane they came from.
            for (c, plane) in out.chunks(side * side).enumerate() {
                assert!(
                    plane
                        .iter()
                        .all(|&v| (c * 64..c * 64 + 16).contains(&(v as usize)))
                );
            }
        }
        assert_eq!(reflect(-2, 4), 2);
        assert_eq!(reflect(5, 4), 1);
        assert_eq!(reflect(3, 4), 3);
    }
}
