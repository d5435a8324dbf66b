//! Decoded images held in memory as bytes.

use std::borrow::Cow;

/// Largest width or height decoded, and most memory one decode may take: a file claiming
/// more is refused rather than exhausting memory.
const MAX_SIDE: u32 = 32_768;
const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Decode an image file's bytes (any format the `image` crate reads here), with bounded memory.
/// A JPEG cut short is an error, not an image with its missing part filled in.
pub fn decode_image(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    if bytes.starts_with(&[0xFF, 0xD8]) && !jpeg_is_complete(bytes) {
        return Err("the JPEG data ends before the image does (a truncated file)".into());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    reader.limits(limits);
    reader.decode().map_err(|e| e.to_string())
}

/// Whether an end-of-image marker follows the last start-of-scan marker. The JPEG decoder fills
/// in whatever a file cut short lacks, without a word; the markers cannot occur inside the
/// entropy-coded data (a 0xFF there is always followed by 0x00 or a restart marker), and an
/// embedded thumbnail's end-of-image comes before the main image's last scan.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|pair| pair == [0xFF, marker]);
    matches!((last(0xDA), last(0xD9)), (Some(scan), Some(end)) if end > scan)
}

/// Images of one size, channel planes first: image `i` is
/// `pixels[i * 3 * side * side..][..3 * side * side]`, red plane, green plane, blue plane, each
/// row-major (CIFAR-10's own layout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageSet {
    pub side: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u16>,
}

impl ImageSet {
    pub fn new(side: usize) -> Self {
        Self {
            side,
            pixels: Vec::new(),
            labels: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        3 * self.side * self.side
    }

    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[index * n..(index + 1) * n]
    }

    pub fn push(&mut self, image: &[u8], label: u16) {
        debug_assert_eq!(image.len(), self.image_len());
        self.pixels.extend_from_slice(image);
        self.labels.push(label);
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut set = ImageSet::new(self.side);
        set.pixels.reserve(indices.len() * self.image_len());
        for &i in indices {
            set.push(self.image(i), self.labels[i]);
        }
        set
    }
}

/// A labelled dataset: the training images, the test images if the source has them, the class
/// names in label order, and what was skipped on the way.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub classes: Vec<String>,
    pub train: ImageSet,
    pub test: Option<ImageSet>,
    /// Files that could not be decoded and were left out (only with `skip_broken`).
    pub skipped: Vec<std::path::PathBuf>,
}

/// `[r, g, b, r, g, b, …]` → `[r…, g…, b…]` for `pixels` pixels.
pub fn interleaved_to_planar(rgb: &[u8], pixels: usize) -> Vec<u8> {
    let mut planar = vec![0u8; 3 * pixels];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        planar[i] = px[0];
        planar[pixels + i] = px[1];
        planar[2 * pixels + i] = px[2];
    }
    planar
}

/// `[r…, g…, b…]` → `[r, g, b, r, g, b, …]` (the inverse of [`interleaved_to_planar`]).
pub fn planar_to_interleaved(planar: &[u8]) -> Vec<u8> {
    let plane = planar.len() / 3;
    (0..plane)
        .flat_map(|p| [planar[p], planar[plane + p], planar[2 * plane + p]])
        .collect()
}

/// Resize planar RGB bytes from `from` x `from` to `to` x `to` (bilinear); the bytes themselves
/// where the sides are equal.
pub fn resize_planar(planar: &[u8], from: usize, to: usize) -> Cow<'_, [u8]> {
    if from == to {
        return Cow::Borrowed(planar);
    }
    let rgb = planar_to_interleaved(planar);
    let image = image::RgbImage::from_raw(from as u32, from as u32, rgb).expect("sized buffer");
    let resized = image::imageops::resize(
        &image,
        to as u32,
        to as u32,
        image::imageops::FilterType::Triangle,
    );
    Cow::Owned(interleaved_to_planar(resized.as_raw(), to * to))
}
