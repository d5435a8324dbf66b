//! Patch whitening, airbench's first layer: fixed filters that project each small patch of an
//! image onto the leading principal directions of the training images' patches, each scaled to
//! unit variance and paired with its negation so that a ReLU after them loses nothing.

use burn::prelude::*;
use rayon::prelude::*;

/// Added to each variance before its square root, so that a direction of (nearly) no variance is
/// not blown up into noise; airbench's value for standardized images.
const EPSILON: f64 = 5e-4;

/// Filters `[2 * count, channels, kernel, kernel]` for `images` `[n, channels, height, width]`:
/// the `count` leading eigenvectors of the covariance of all `kernel` x `kernel` patches, divided
/// by the square root of their variance, then the same negated.
///
/// # Panics
/// If `count` exceeds the patch length `channels * kernel * kernel`, or the images are smaller
/// than a patch.
pub fn whitening_filters(images: Tensor<4>, kernel: usize, count: usize) -> Tensor<4> {
    let device = images.device();
    let [_, channels, height, width] = images.dims();
    let len = channels * kernel * kernel;
    assert!(
        count <= len,
        "{count} whitening filters of {len}-value patches"
    );
    assert!(
        height >= kernel && width >= kernel,
        "images smaller than a patch"
    );
    let values = crate::values(images);
    let covariance = patch_covariance(&values, [channels, height, width], kernel);
    let (eigenvalues, eigenvectors) = symmetric_eigen(covariance, len);
    let eigenvectors = &eigenvectors;
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| eigenvalues[b].total_cmp(&eigenvalues[a]));
    let scaled: Vec<f32> = order[..count]
        .iter()
        .flat_map(|&i| {
            let scale = 1.0 / (eigenvalues[i].max(0.0) + EPSILON).sqrt();
            (0..len).map(move |r| (eigenvectors[r * len + i] * scale) as f32)
        })
        .collect();
    let filters: Vec<f32> = scaled
        .iter()
        .copied()
        .chain(scaled.iter().map(|v| -v))
        .collect();
    Tensor::from_data(
        TensorData::new(filters, [2 * count, channels, kernel, kernel]),
        &device,
    )
}

/// The mean of `p pᵀ` over every patch `p` (laid out channel, row, column, as a convolution's
/// filter is) of the images in `values`, row-major `len x len`.
fn patch_covariance(values: &[f32], [channels, height, width]: [usize; 3], k: usize) -> Vec<f64> {
    let len = channels * k * k;
    let image_len = channels * height * width;
    let (rows, cols) = (height - k + 1, width - k + 1);
    let sum = values
        .par_chunks(image_len)
        .map(|image| {
            let mut sum = vec![0f64; len * len];
            let mut patch = vec![0f64; len];
            for y in 0..rows {
                for x in 0..cols {
                    for (j, value) in patch.iter_mut().enumerate() {
                        let (c, dy, dx) = (j / (k * k), j / k % k, j % k);
                        *value = f64::from(image[(c * height + y + dy) * width + x + dx]);
                    }
                    for (i, &a) in patch.iter().enumerate() {
                        for (s, &b) in sum[i * len..=i * len + i].iter_mut().zip(&patch) {
                            *s += a * b;
                        }
                    }
                }
            }
            sum
        })
        .reduce(
            || vec![0f64; len * len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let count = (values.len() / image_len * rows * cols).max(1) as f64;
    let mut covariance = vec![0f64; len * len];
    for i in 0..len {
        for j in 0..=i {
            let v = sum[i * len + j] / count;
            covariance[i * len + j] = v;
            covariance[j * len + i] = v;
        }
    }
    covariance
}

/// Eigenvalues and eigenvectors (the columns of a row-major `n x n` matrix) of the symmetric
/// matrix `a`, by cyclic Jacobi rotations: plenty fast and accurate at the sizes of a patch.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let scale: f64 = (0..n).map(|i| a[i * n + i] * a[i * n + i]).sum();
        if off <= 1e-24 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn jacobi_finds_the_eigenpairs_of_a_symmetric_matrix() {
        let n = 4;
        let a = vec![
            4.0, 1.0, 0.5, 0.0, //
            1.0, 3.0, 0.2, 0.1, //
            0.5, 0.2, 2.0, 0.3, //
            0.0, 0.1, 0.3, 1.0,
        ];
        let (values, vectors) = symmetric_eigen(a.clone(), n);
        for (k, &lambda) in values.iter().enumerate() {
            for i in 0..n {
                let av: f64 = (0..n).map(|j| a[i * n + j] * vectors[j * n + k]).sum();
                assert!(
                    (av - lambda * vectors[i * n + k]).abs() < 1e-10,
                    "A v = λ v"
                );
            }
            let norm: f64 = (0..n).map(|i| vectors[i * n + k].powi(2)).sum();
            assert!((norm - 1.0).abs() < 1e-10);
        }
        let trace: f64 = values.iter().sum();
        assert!((trace - 10.0).abs() < 1e-10);
    }

    #[test]
    fn the_filters_whiten_the_patches_they_came_from() {
        let device = Device::flex();
        // Correlated channels: the second is the first plus noise, the third its negation plus
        // noise.
        let shape = [6, 1, 9, 9];
        let uniform = || Tensor::<4>::random(shape, Distribution::Uniform(0.0, 1.0), &device);
        let first = uniform();
        let second = first.clone() + uniform() * 0.5;
        let third = first.clone().neg() + uniform() * 0.6;
        let images = Tensor::cat(vec![first, second, third], 1);
        let (kernel, count) = (2, 5);
        let filters = whitening_filters(images.clone(), kernel, count);
        assert_eq!(filters.dims(), [2 * count, 3, kernel, kernel]);
        let halves = filters.split(count, 0);
        let (plus, minus) = (halves[0].clone(), halves[1].clone());
        assert_eq!(plus.to_data(), minus.neg().into_data());
        // Each filter's responses over all patches have unit mean square and no correlation
        // with another's (up to the small epsilon).
        let responses = burn::tensor::module::conv2d(
            images,
            plus,
            None,
            burn::tensor::ops::ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        );
        let rows = responses.swap_dims(0, 1).reshape([count as i32, -1]);
        let patches = rows.dims()[1] as f32;
        let gram = rows.clone().matmul(rows.transpose()) / patches;
        let gram = crate::values(gram);
        for i in 0..count {
            for j in 0..count {
                let expected = if i == j { 1.0 } else { 0.0 };
                let tolerance = if i == j { 0.05 } else { 1e-3 };
                assert!(
                    (gram[i * count + j] - expected).abs() < tolerance,
                    "filters {i} and {j}: {}",
                    gram[i * count + j]
                );
            }
        }
    }
}
