//! The pictures `infer` draws for one image: feature-map grids, the first filters, and Grad-CAM
//! beside occlusion sensitivity.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use viz::grid::{self, Grid, LayerMaps};
use viz::{Canvas, Map, Picture};

use models::ImageClassifier;

use crate::explain;
use crate::predict::Predictor;

/// Name and `[channels, height, width]` of every layer whose maps can be drawn, for one image.
pub fn layer_shapes(
    predictor: &Predictor<impl ImageClassifier>,
    image: &[u8],
    device: &Device,
) -> Vec<(String, [usize; 3])> {
    let names = predictor.classifier.map_layers();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (_, maps) = predictor
        .classifier
        .forward_maps(predictor.batch(&[image.to_vec()], device), &refs);
    maps.into_iter()
        .map(|m| {
            let [_, c, h, w] = m.map.dims();
            (m.layer, [c, h, w])
        })
        .collect()
}

/// One row per requested layer (all when `layers` is empty) with its first `channels` maps.
pub fn activations(
    predictor: &Predictor<impl ImageClassifier>,
    image: &[u8],
    layers: &[String],
    channels: usize,
    device: &Device,
) -> anyhow::Result<Grid> {
    let known = predictor.classifier.map_layers();
    let wanted: Vec<String> = if layers.is_empty() {
        known.clone()
    } else {
        layers.to_vec()
    };
    if let Some(unknown) = wanted.iter().find(|l| !known.contains(l)) {
        anyhow::bail!(
            "no layer named {unknown}; the layers are {} (see --list-layers)",
            known.join(", ")
        );
    }
    let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let (_, maps) = predictor
        .classifier
        .forward_maps(predictor.batch(&[image.to_vec()], device), &refs);
    let rows: Vec<LayerMaps> = wanted
        .iter()
        .map(|name| {
            let found = maps
                .iter()
                .find(|m| &m.layer == name)
                .expect("every known layer is reported");
            let [_, c, h, w] = found.map.dims();
            let shown = channels.min(c);
            let values = models::values(found.map.clone().slice([0..1, 0..shown]));
            let maps = values
                .chunks(h * w)
                .map(|v| Map {
                    height: h,
                    width: w,
                    values: v.to_vec(),
                })
                .collect();
            LayerMaps {
                layer: name.clone(),
                shape: [c, h, w],
                maps,
            }
        })
        .collect();
    Ok(grid::activation_grid(&rows, 64))
}

/// The first convolution's filters as colour patches.
pub fn kernels(predictor: &Predictor<impl ImageClassifier>) -> Canvas {
    let filters = predictor.classifier.first_filters();
    let [n, c, k, _] = filters.dims();
    let values = models::values(filters);
    let per_filter: Vec<Vec<f32>> = values.chunks(c * k * k).map(<[f32]>::to_vec).collect();
    grid::filter_grid(
        &per_filter,
        k,
        12,
        16,
        &format!("first convolution: {n} filters, {c}x{k}x{k}"),
    )
}

/// Grad-CAM and occlusion sensitivity of `class` for one image, beside the image.
pub fn explain(
    predictor: &Predictor<impl ImageClassifier>,
    image: &[u8],
    class: usize,
    device: &Device,
) -> Canvas {
    let side = predictor.side();
    let layer = predictor.classifier.cam_layer();
    let (_, maps) = predictor
        .classifier
        .forward_maps(predictor.batch(&[image.to_vec()], device), &[&layer]);
    let autodiff = device.clone().autodiff();
    let differentiable = predictor.classifier.clone().fork(&autodiff);
    let last_maps = Tensor::<4>::from_data(maps[0].map.clone().into_data(), &autodiff);
    let cam = explain::grad_cam(last_maps, |m| differentiable.classify_maps(m), class);
    let patch = (side / 8).max(2);
    let occlusion = explain::occlusion(image, side, patch, (patch / 2).max(1), |images| {
        images
            .chunks(64)
            .flat_map(|chunk| {
                let probabilities = softmax(
                    predictor.classifier.forward(predictor.batch(chunk, device)),
                    1,
                );
                models::values(probabilities.slice([0..chunk.len(), class..class + 1]))
            })
            .collect()
    });
    let picture = Picture {
        side,
        planar: image.to_vec(),
    };
    let enlarged = enlarge(&picture, 224);
    let heading = format!("class: {}", predictor.labels[class]);
    viz::heatmap::panels(
        &enlarged,
        &[("Grad-CAM", &cam), ("occlusion", &occlusion)],
        &heading,
    )
}

/// Small pictures (CIFAR's 32x32) enlarged by an integer factor so the panels are readable.
fn enlarge(picture: &Picture, at_least: usize) -> Picture {
    let factor = at_least.div_ceil(picture.side).max(1);
    if factor == 1 {
        return picture.clone();
    }
    let side = picture.side * factor;
    let plane = side * side;
    let mut planar = vec![0u8; 3 * plane];
    for y in 0..side {
        for x in 0..side {
            let p = picture.pixel(x / factor, y / factor);
            for c in 0..3 {
                planar[c * plane + y * side + x] = p[c];
            }
        }
    }
    Picture { side, planar }
}
