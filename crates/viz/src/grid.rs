//! Grids of what a network computes: one row per layer of its first channel maps, and the first
//! convolution's filters as colour patches.

use crate::Map;
use crate::canvas::{BLACK, Canvas, LINE};
use crate::colormap::viridis;

const MARGIN: u32 = 8;
const GAP: u32 = 4;

/// The first channel maps of one layer.
#[derive(Debug, Clone)]
pub struct LayerMaps {
    pub layer: String,
    /// `[channels, height, width]` of the whole layer output.
    pub shape: [usize; 3],
    pub maps: Vec<Map>,
}

/// A drawn grid and the row labels it carries, top to bottom.
pub struct Grid {
    pub canvas: Canvas,
    pub labels: Vec<String>,
}

/// Nearest-neighbour resample of `map` to `side` x `side`, coloured with viridis on the map's own
/// range.
fn cell_colors(map: &Map, side: usize) -> Vec<[u8; 3]> {
    let normalized = map.normalized();
    (0..side * side)
        .map(|i| {
            let (y, x) = (i / side * map.height / side, i % side * map.width / side);
            viridis(normalized[y * map.width + x])
        })
        .collect()
}

/// One row per layer: the label `name [c, h, w]`, then its maps, each `cell` pixels square.
pub fn activation_grid(layers: &[LayerMaps], cell: u32) -> Grid {
    let columns = layers.iter().map(|l| l.maps.len()).max().unwrap_or(0) as u32;
    let row = LINE + 2 + cell + GAP * 2;
    let labels: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                "{} [{}, {}, {}]",
                l.layer, l.shape[0], l.shape[1], l.shape[2]
            )
        })
        .collect();
    let text_width = labels.iter().map(|l| l.len() as u32 * 8).max().unwrap_or(0);
    let width = (2 * MARGIN + columns * (cell + GAP)).max(2 * MARGIN + text_width);
    let mut canvas = Canvas::new(width, 2 * MARGIN + row * layers.len() as u32);
    for (r, (layer, label)) in layers.iter().zip(&labels).enumerate() {
        let top = MARGIN + r as u32 * row;
        canvas.text(MARGIN, top, label, BLACK, 1);
        for (c, map) in layer.maps.iter().enumerate() {
            let colors = cell_colors(map, cell as usize);
            canvas.blit(
                MARGIN + c as u32 * (cell + GAP),
                top + LINE + 2,
                cell as usize,
                &colors,
                1,
            );
        }
    }
    Grid { canvas, labels }
}

/// Filters `[n][3 * k * k]` (RGB planes) as colour patches, each on its own range, `scale`
/// pixels per weight, `per_row` to a row.
pub fn filter_grid(
    filters: &[Vec<f32>],
    k: usize,
    scale: u32,
    per_row: usize,
    title: &str,
) -> Canvas {
    let per_row = per_row.max(1);
    let side = k as u32 * scale;
    let rows = filters.len().div_ceil(per_row) as u32;
    let width =
        (2 * MARGIN + per_row as u32 * (side + GAP)).max(2 * MARGIN + title.len() as u32 * 8);
    let mut canvas = Canvas::new(width, 2 * MARGIN + LINE + 2 + rows * (side + GAP));
    canvas.text(MARGIN, MARGIN, title, BLACK, 1);
    for (i, filter) in filters.iter().enumerate() {
        let (min, max) = filter
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let range = (max - min).max(f32::EPSILON);
        let plane = k * k;
        let colors: Vec<[u8; 3]> = (0..plane)
            .map(|p| {
                [0, 1, 2].map(|c| (255.0 * (filter[c * plane + p] - min) / range).round() as u8)
            })
            .collect();
        let (col, row) = ((i % per_row) as u32, (i / per_row) as u32);
        canvas.blit(
            MARGIN + col * (side + GAP),
            MARGIN + LINE + 2 + row * (side + GAP),
            k,
            &colors,
            scale,
        );
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, channels: usize, side: usize) -> LayerMaps {
        let map = Map {
            height: side,
            width: side,
            values: (0..side * side).map(|v| v as f32).collect(),
        };
        LayerMaps {
            layer: name.into(),
            shape: [channels, side, side],
            maps: vec![map; channels.min(8)],
        }
    }

    #[test]
    fn one_labelled_row_per_layer() {
        let grid = activation_grid(&[layer("conv2d_1", 32, 30), layer("maxpool_2", 4, 14)], 40);
        assert_eq!(
            grid.labels,
            ["conv2d_1 [32, 30, 30]", "maxpool_2 [4, 14, 14]"]
        );
        assert_eq!(grid.canvas.image.width(), 2 * MARGIN + 8 * (40 + GAP));
        assert_eq!(
            grid.canvas.image.height(),
            2 * MARGIN + 2 * (LINE + 2 + 40 + 2 * GAP)
        );
        // The first cell's top-left pixel is the map's minimum: viridis(0).
        let pixel = grid.canvas.image.get_pixel(MARGIN, MARGIN + LINE + 2).0;
        assert_eq!(pixel, viridis(0.0));
    }
}
