//! How image bytes become network inputs; stored with every checkpoint so the model always sees
//! inputs scaled the way it was trained.

use serde::{Deserialize, Serialize};

use crate::ImageSet;

/// Smallest standard deviation used, so a constant pixel does not divide by zero.
const MIN_STD: f32 = 1.0 / 255.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// `(x - mean[p]) / std[p]` per pixel position and channel, statistics from the training
    /// split (the tutorial's standardization, without its test-set leak).
    PerPixel { mean: Vec<f32>, std: Vec<f32> },
    /// `(x - offset) / scale` for every value; EfficientNet-Lite0 was trained with 127 and 128.
    Affine { offset: f32, scale: f32 },
}

impl Normalization {
    /// The scaling the EfficientNet-Lite weights were trained with.
    pub const EFFICIENTNET_LITE: Normalization = Normalization::Affine {
        offset: 127.0,
        scale: 128.0,
    };

    /// Per-pixel mean and standard deviation of `set`.
    pub fn per_pixel(set: &ImageSet) -> Self {
        let n = set.image_len();
        let count = set.len().max(1) as f64;
        let mut sum = vec![0f64; n];
        let mut sum_sq = vec![0f64; n];
        for i in 0..set.len() {
            for (p, &v) in set.image(i).iter().enumerate() {
                let v = f64::from(v);
                sum[p] += v;
                sum_sq[p] += v * v;
            }
        }
        let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
        let std = sum_sq
            .iter()
            .zip(&sum)
            .map(|(sq, s)| {
                let m = s / count;
                ((sq / count - m * m).max(0.0).sqrt() as f32).max(MIN_STD)
            })
            .collect();
        Normalization::PerPixel { mean, std }
    }

    /// Scale one image's bytes into `out`.
    pub fn apply(&self, pixels: &[u8], out: &mut [f32]) {
        match self {
            Normalization::PerPixel { mean, std } => {
                for (((o, &x), m), s) in out.iter_mut().zip(pixels).zip(mean).zip(std) {
                    *o = (f32::from(x) - m) / s;
                }
            }
            Normalization::Affine { offset, scale } => {
                for (o, &x) in out.iter_mut().zip(pixels) {
                    *o = (f32::from(x) - offset) / scale;
                }
            }
        }
    }

    /// The byte value that `value` came from at pixel `p` (for drawing inputs back).
    pub fn invert(&self, value: f32, p: usize) -> f32 {
        match self {
            Normalization::PerPixel { mean, std } => value * std[p] + mean[p],
            Normalization::Affine { offset, scale } => value * scale + offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_pixel_standardizes_the_set_it_came_from() {
        let mut set = ImageSet::new(2);
        set.push(&[0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110], 0);
        set.push(&[2, 14, 20, 30, 40, 50, 60, 70, 80, 90, 100, 120], 1);
        let norm = Normalization::per_pixel(&set);
        let mut a = [0f32; 12];
        let mut b = [0f32; 12];
        norm.apply(set.image(0), &mut a);
        norm.apply(set.image(1), &mut b);
        assert_eq!((a[0], b[0]), (-1.0, 1.0));
        assert_eq!((a[1], b[1]), (-1.0, 1.0));
        assert_eq!(a[2], 0.0, "a constant pixel maps to 0, not NaN");
        assert!((norm.invert(a[11], 11) - 110.0).abs() < 1e-4);
    }
}
