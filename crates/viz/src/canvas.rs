//! A white RGB canvas with text (an 8x8 bitmap font), rectangles, lines and scaled images.

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};

pub const BLACK: [u8; 3] = [0, 0, 0];
pub const WHITE: [u8; 3] = [255, 255, 255];
/// Height of a line of text at scale 1.
pub const LINE: u32 = 10;

pub struct Canvas {
    pub image: RgbImage,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            image: RgbImage::from_pixel(width.max(1), height.max(1), Rgb(WHITE)),
        }
    }

    pub fn put(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < self.image.width() && (y as u32) < self.image.height() {
            self.image.put_pixel(x as u32, y as u32, Rgb(color));
        }
    }

    pub fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx.into(), yy.into(), color);
            }
        }
    }

    /// Text at `(x, y)` (top-left), each font pixel drawn `scale` x `scale`; returns its width.
    pub fn text(&mut self, x: u32, y: u32, text: &str, color: [u8; 3], scale: u32) -> u32 {
        for (i, ch) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            let left = x + i as u32 * 8 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        self.rect(
                            left + col * scale,
                            y + row as u32 * scale,
                            scale,
                            scale,
                            color,
                        );
                    }
                }
            }
        }
        text.chars().count() as u32 * 8 * scale
    }

    /// A straight line (Bresenham).
    pub fn line(&mut self, from: (i64, i64), to: (i64, i64), color: [u8; 3]) {
        let (mut x, mut y) = from;
        let (dx, dy) = ((to.0 - x).abs(), -(to.1 - y).abs());
        let (sx, sy) = (if x < to.0 { 1 } else { -1 }, if y < to.1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            self.put(x, y, color);
            if (x, y) == to {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draw `colors` (`w` x `h`, row-major) at `(x, y)`, each pixel enlarged to `scale` x `scale`.
    pub fn blit(&mut self, x: u32, y: u32, w: usize, colors: &[[u8; 3]], scale: u32) {
        for (i, &color) in colors.iter().enumerate() {
            let (px, py) = ((i % w) as u32, (i / w) as u32);
            self.rect(x + px * scale, y + py * scale, scale, scale, color);
        }
    }

    /// The picture as a PNG file's bytes; the caller writes them where it keeps its files.
    pub fn png(&self) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        self.image
            .write_to(&mut bytes, image::ImageFormat::Png)
            .expect("PNG encodes in memory");
        bytes.into_inner()
    }
}
