//! Training-time augmentation of planar images: random translation (a crop of the image padded
//! by reflection), horizontal flips and cutout, drawn from a seeded generator so that a batch's
//! augmentation depends on the seed alone, never on which thread made it.

use serde::{Deserialize, Serialize};

use rng::Rng;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Mirror each image left-right with probability 1/2.
    pub flip: bool,
    /// With `flip`, mirror each image in every other epoch instead of at random (airbench's
    /// alternating flip): a fixed half of the images in odd epochs, the other half in even ones,
    /// so that no image is seen the same way round two epochs running.
    pub alternate_flip: bool,
    /// Shift each image by up to this many pixels in x and y, filling by reflection.
    pub translate: usize,
    /// Erase a square of this side at a random place in each normalized image (cutout: the
    /// square, clipped at the borders, becomes the mean image there); 0 erases nothing.
    pub cutout: usize,
}

/// Which image of the training set is augmented, in which epoch: what
/// [`Augment::alternate_flip`] mirrors by.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    pub image: usize,
    pub epoch: usize,
}

impl Augment {
    pub fn is_identity(&self) -> bool {
        !self.flip && self.translate == 0 && self.cutout == 0
    }

    /// Cutout on the normalized planar `side` x `side` image `values` (0 is the mean there): a
    /// square whose centre is anywhere in the image, as in DeVries and Taylor's cutout.
    pub fn erase(&self, values: &mut [f32], side: usize, rng: &mut Rng) {
        if self.cutout == 0 {
            return;
        }
        let span = |centre: usize| {
            let start = centre.saturating_sub(self.cutout / 2);
            start..(centre + self.cutout.div_ceil(2)).min(side)
        };
        let (rows, columns) = (span(rng.below(side)), span(rng.below(side)));
        for plane in values.chunks_exact_mut(side * side) {
            for row in plane.chunks_exact_mut(side).take(rows.end).skip(rows.start) {
                row[columns.clone()].fill(0.0);
            }
        }
    }

    /// One augmented copy of the planar `side` x `side` image `pixels`, seen as `pass` says.
    pub fn apply(&self, pixels: &[u8], side: usize, pass: Pass, rng: &mut Rng) -> Vec<u8> {
        let mut shift = || {
            let t = self.translate.min(side - 1) as isize;
            rng.below(2 * t as usize + 1) as isize - t
        };
        let (dx, dy) = (shift(), shift());
        let flip = self.flip
            && if self.alternate_flip {
                in_first_half(pass.image) != pass.epoch.is_multiple_of(2)
            } else {
                rng.below(2) == 1
            };
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

/// The half of the images that [`Augment::alternate_flip`] mirrors in odd epochs: a hash of the
/// image's number, so that the halves are mixed across the classes and the file order.
fn in_first_half(image: usize) -> bool {
    (image as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 63 == 1
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

    /// The first image in the first epoch.
    const FIRST: Pass = Pass { image: 0, epoch: 1 };

    /// A 1-channel-per-plane image whose pixel value encodes its x and y.
    fn ramp(side: usize) -> Vec<u8> {
        (0..3)
            .flat_map(|c| (0..side * side).map(move |p| (c * 64 + p) as u8))
            .collect()
    }

    #[test]
    fn no_augmentation_is_the_identity() {
        let image = ramp(5);
        assert_eq!(
            Augment::default().apply(&image, 5, FIRST, &mut Rng::new(1)),
            image
        );
    }

    #[test]
    fn flips_mirror_rows_and_shifts_reflect_at_the_edges() {
        let side = 4;
        let image = ramp(side);
        let flip = Augment {
            flip: true,
            ..Augment::default()
        };
        let mut seen_flipped = false;
        for seed in 0..20 {
            let out = flip.apply(&image, side, FIRST, &mut Rng::new(seed));
            let mirrored: Vec<u8> = image
                .chunks(side)
                .flat_map(|row| row.iter().rev().copied())
                .collect();
            assert!(out == image || out == mirrored);
            seen_flipped |= out == mirrored;
        }
        assert!(seen_flipped);
        let shift = Augment {
            translate: 2,
            ..Augment::default()
        };
        for seed in 0..50 {
            let out = shift.apply(&image, side, FIRST, &mut Rng::new(seed));
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

    #[test]
    fn alternating_flip_mirrors_half_the_images_each_epoch_and_each_image_every_other_epoch() {
        let side = 4;
        let image = ramp(side);
        let mirrored: Vec<u8> = image
            .chunks(side)
            .flat_map(|row| row.iter().rev().copied())
            .collect();
        let alternate = Augment {
            flip: true,
            alternate_flip: true,
            translate: 1,
            ..Augment::default()
        };
        let unshifted = |seed| {
            // Shifts are still random: the seeds whose draw leaves the image in place.
            let mut rng = Rng::new(seed);
            rng.below(3) == 1 && rng.below(3) == 1
        };
        let seeds: Vec<u64> = (0..200).filter(|&s| unshifted(s)).take(2).collect();
        let flipped = |index, epoch, seed| {
            let pass = Pass {
                image: index,
                epoch,
            };
            let out = alternate.apply(&image, side, pass, &mut Rng::new(seed));
            assert!(out == image || out == mirrored);
            out == mirrored
        };
        let images = 1000;
        for epoch in 1..=4 {
            let count = (0..images).filter(|&i| flipped(i, epoch, seeds[0])).count();
            assert!(
                (450..=550).contains(&count),
                "epoch {epoch}: {count} mirrored"
            );
            for index in 0..images {
                let now = flipped(index, epoch, seeds[0]);
                assert_eq!(
                    now,
                    flipped(index, epoch, seeds[1]),
                    "not drawn from the seed"
                );
                assert_ne!(
                    now,
                    flipped(index, epoch + 1, seeds[0]),
                    "the next epoch flips it"
                );
            }
        }
    }

    #[test]
    fn cutout_erases_one_clipped_square_in_every_plane() {
        let side = 8;
        let cutout = Augment {
            cutout: 4,
            ..Augment::default()
        };
        assert!(!cutout.is_identity());
        let mut sizes = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut values = vec![1.0f32; 3 * side * side];
            cutout.erase(&mut values, side, &mut Rng::new(seed));
            let planes: Vec<&[f32]> = values.chunks(side * side).collect();
            assert!(planes.iter().all(|plane| plane == &planes[0]));
            let erased: Vec<(usize, usize)> = (0..side * side)
                .filter(|&p| planes[0][p] == 0.0)
                .map(|p| (p / side, p % side))
                .collect();
            let (rows, columns): (Vec<_>, Vec<_>) = erased.iter().copied().unzip();
            let extent = |v: &[usize]| v.iter().max().unwrap() - v.iter().min().unwrap() + 1;
            let (height, width) = (extent(&rows), extent(&columns));
            assert_eq!(erased.len(), height * width, "a rectangle, seed {seed}");
            assert!((2..=4).contains(&height) && (2..=4).contains(&width));
            sizes.insert((height, width));
        }
        assert!(sizes.contains(&(4, 4)) && sizes.len() > 1, "{sizes:?}");
        let mut values = vec![1.0f32; 3 * side * side];
        Augment::default().erase(&mut values, side, &mut Rng::new(1));
        assert!(values.iter().all(|&v| v == 1.0));
    }
}
