//! Why a network said what it said: Grad-CAM (Selvaraju et al., 2017) weighs the last feature
//! maps by the gradient of the class score; occlusion sensitivity (Zeiler and Fergus, 2014) greys
//! out one patch at a time and measures how much the class probability drops.

use burn::prelude::*;
use models::values;
use viz::Map;

/// Grad-CAM of `class` for one image: `relu(Σ_c α_c A_c)` with `α_c` the spatial mean of
/// `∂score/∂A_c`. `maps` is `A`, `[1, C, H, W]`, on an autodiff device; `rest` computes the logits
/// from it.
pub fn grad_cam(maps: Tensor<4>, rest: impl Fn(Tensor<4>) -> Tensor<2>, class: usize) -> Map {
    let maps = maps.require_grad();
    let [_, channels, height, width] = maps.dims();
    let logits = rest(maps.clone());
    let score = logits.slice([0..1, class..class + 1]).sum();
    let grads = score.backward();
    let gradient = values(maps.grad(&grads).expect("the score depends on the maps"));
    let activations = values(maps.detach());
    let plane = height * width;
    let weights: Vec<f32> = (0..channels)
        .map(|c| gradient[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32)
        .collect();
    let values = (0..plane)
        .map(|p| {
            (0..channels)
                .map(|c| weights[c] * activations[c * plane + p])
                .sum::<f32>()
                .max(0.0)
        })
        .collect();
    Map {
        height,
        width,
        values,
    }
}

/// Occlusion sensitivity of one planar RGB image (`side` x `side`): for each position of a grey
/// `patch` moved by `stride`, the drop in probability that `probability` reports for the occluded
/// images (given as one batch).
pub fn occlusion(
    planar: &[u8],
    side: usize,
    patch: usize,
    stride: usize,
    probability: impl Fn(&[Vec<u8>]) -> Vec<f32>,
) -> Map {
    let positions = (side.saturating_sub(patch)) / stride + 1;
    let plane = side * side;
    let mut images = vec![planar.to_vec()];
    for py in 0..positions {
        for px in 0..positions {
            let mut image = planar.to_vec();
            for y in py * stride..(py * stride + patch).min(side) {
                for x in px * stride..(px * stride + patch).min(side) {
                    for c in 0..3 {
                        image[c * plane + y * side + x] = 127;
                    }
                }
            }
            images.push(image);
        }
    }
    let probabilities = probability(&images);
    let base = probabilities[0];
    Map {
        height: positions,
        width: positions,
        values: probabilities[1..].iter().map(|p| base - p).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argmax(map: &Map) -> (usize, usize) {
        let i = map
            .values
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        (i / map.width, i % map.width)
    }

    #[test]
    fn grad_cam_finds_the_region_the_score_reads() {
        // Channel 0 is bright top-left, channel 1 bottom-right; the class score reads channel 0
        // only, so Grad-CAM must light up the top-left.
        let device = Device::flex().autodiff();
        let mut values = vec![0.1f32; 2 * 8 * 8];
        for y in 0..3 {
            for x in 0..3 {
                values[y * 8 + x] = 1.0;
                values[64 + (7 - y) * 8 + (7 - x)] = 1.0;
            }
        }
        let maps = Tensor::<4>::from_data(TensorData::new(values, [1, 2, 8, 8]), &device);
        let rest = |m: Tensor<4>| {
            let channel0 = m.clone().slice([0..1, 0..1]).sum().reshape([1, 1]);
            let channel1 = m.slice([0..1, 1..2]).sum().reshape([1, 1]);
            Tensor::cat(vec![channel0, channel1 * 0.0], 1)
        };
        let cam = grad_cam(maps, rest, 0);
        let (y, x) = argmax(&cam);
        assert!(y < 3 && x < 3, "peak at {y},{x}");
        // α = (1, 0): the map is channel 0 itself.
        assert!(
            (cam.values[0] - 1.0).abs() < 1e-6 && (cam.values[63] - 0.1).abs() < 1e-6,
            "{cam:?}"
        );
    }

    #[test]
    fn occlusion_finds_the_region_the_model_reads() {
        // A "model" whose confidence is the brightness of the top-left quadrant.
        let side = 16;
        let planar = vec![255u8; 3 * side * side];
        let probability = |images: &[Vec<u8>]| -> Vec<f32> {
            images
                .iter()
                .map(|im| {
                    let sum: u32 = (0..8)
                        .flat_map(|y| (0..8).map(move |x| y * side + x))
                        .map(|p| u32::from(im[p]))
                        .sum();
                    sum as f32 / (64.0 * 255.0)
                })
                .collect()
        };
        let map = occlusion(&planar, side, 4, 4, probability);
        assert_eq!((map.height, map.width), (4, 4));
        let (y, x) = argmax(&map);
        assert!(y < 2 && x < 2, "peak at {y},{x}");
        assert_eq!(
            map.values[15], 0.0,
            "occluding the bottom-right changes nothing"
        );
    }
}
