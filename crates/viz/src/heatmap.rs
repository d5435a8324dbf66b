//! Heatmaps (Grad-CAM, occlusion) laid over the picture they explain.

use crate::canvas::{BLACK, Canvas, LINE};
use crate::colormap::viridis;
use crate::{Map, Picture};

const MARGIN: u32 = 8;

/// `heat` resampled bilinearly to `side` x `side`, normalized to its own range.
pub fn upsample(heat: &Map, side: usize) -> Vec<f32> {
    let normalized = heat.normalized();
    let at = |y: usize, x: usize| {
        normalized[y.min(heat.height - 1) * heat.width + x.min(heat.width - 1)]
    };
    (0..side * side)
        .map(|i| {
            let fy = ((i / side) as f32 + 0.5) * heat.height as f32 / side as f32 - 0.5;
            let fx = ((i % side) as f32 + 0.5) * heat.width as f32 / side as f32 - 0.5;
            let (y0, x0) = (fy.floor().max(0.0) as usize, fx.floor().max(0.0) as usize);
            let (ty, tx) = (
                (fy - y0 as f32).clamp(0.0, 1.0),
                (fx - x0 as f32).clamp(0.0, 1.0),
            );
            let top = at(y0, x0) * (1.0 - tx) + at(y0, x0 + 1) * tx;
            let bottom = at(y0 + 1, x0) * (1.0 - tx) + at(y0 + 1, x0 + 1) * tx;
            top * (1.0 - ty) + bottom * ty
        })
        .collect()
}

/// The picture with `heat` blended over it (`alpha` of heat colour).
pub fn overlay(picture: &Picture, heat: &Map, alpha: f32) -> Vec<[u8; 3]> {
    let heat = upsample(heat, picture.side);
    (0..picture.side * picture.side)
        .map(|i| {
            let base = picture.pixel(i % picture.side, i / picture.side);
            let color = viridis(heat[i]);
            [0, 1, 2].map(|c| {
                (f32::from(base[c]) * (1.0 - alpha) + f32::from(color[c]) * alpha).round() as u8
            })
        })
        .collect()
}

/// Side by side: the picture, and each heatmap over it, with titles; `heading` above all.
pub fn panels(picture: &Picture, heatmaps: &[(&str, &Map)], heading: &str) -> Canvas {
    let side = picture.side as u32;
    let count = 1 + heatmaps.len() as u32;
    let width = (MARGIN + count * (side + MARGIN)).max(2 * MARGIN + heading.len() as u32 * 8);
    let mut canvas = Canvas::new(width, 2 * MARGIN + 2 * (LINE + 2) + side);
    canvas.text(MARGIN, MARGIN, heading, BLACK, 1);
    let top = MARGIN + LINE + 2;
    let original: Vec<[u8; 3]> = (0..picture.side * picture.side)
        .map(|i| picture.pixel(i % picture.side, i / picture.side))
        .collect();
    canvas.text(MARGIN, top, "original", BLACK, 1);
    canvas.blit(MARGIN, top + LINE + 2, picture.side, &original, 1);
    for (i, (title, heat)) in heatmaps.iter().enumerate() {
        let left = MARGIN + (i as u32 + 1) * (side + MARGIN);
        canvas.text(left, top, title, BLACK, 1);
        canvas.blit(
            left,
            top + LINE + 2,
            picture.side,
            &overlay(picture, heat, 0.5),
            1,
        );
    }
    canvas
}
