//! Pictures for people: grids of feature maps and filters ([`grid`]), heatmaps laid over photos
//! ([`heatmap`]), and the plots of a training run ([`plots`]), drawn on a small [`canvas`] with a
//! perceptual colormap ([`colormap`]), each handed back as PNG bytes.
//!
//! Not here: computing what is drawn (activations, gradients, metrics come from the callers), or
//! writing files (the callers write the bytes where they keep their outputs).

pub mod canvas;
pub mod charts;
pub mod colormap;
pub mod grid;
pub mod heatmap;
pub mod plots;

pub use canvas::Canvas;

/// A 2-D array of values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    pub height: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

impl Map {
    /// The values scaled to `[0, 1]` by their own minimum and maximum (all 0 if constant).
    pub fn normalized(&self) -> Vec<f32> {
        let (min, max) = self
            .values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let range = max - min;
        self.values
            .iter()
            .map(|&v| if range > 0.0 { (v - min) / range } else { 0.0 })
            .collect()
    }
}

/// An RGB picture as planar bytes, `[r…, g…, b…]`, `side` x `side` (the `data` crate's layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub side: usize,
    pub planar: Vec<u8>,
}

impl Picture {
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let plane = self.side * self.side;
        let p = y * self.side + x;
        [
            self.planar[p],
            self.planar[plane + p],
            self.planar[2 * plane + p],
        ]
    }
}
