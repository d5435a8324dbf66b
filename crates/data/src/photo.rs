//! Photos for an ImageNet network: shorter side resized to 256 (bilinear), centre crop 224.

use image::imageops::FilterType;

/// Side the shorter edge is resized to before the centre crop.
pub const RESIZE: u32 = 256;

/// Bound on the resized image (about 1:1000 at the usual sizes), which keeps memory bounded.
const MAX_RESIZED_PIXELS: u64 = 1 << 26;

/// Decode `bytes` (any format and size, grayscale or with alpha) into planar RGB bytes of
/// `crop` x `crop`, resized so the shorter side is `crop * 256 / 224` and centre-cropped.
pub fn center_crop(bytes: &[u8], crop: u32) -> Result<Vec<u8>, String> {
    let image = crate::images::decode_image(bytes)?.to_rgb8();
    let (w, h) = image.dimensions();
    let short = (crop * RESIZE).div_ceil(224);
    let (rw, rh) = if w <= h {
        (
            short,
            ((h as u64 * short as u64) / w as u64).max(crop as u64) as u32,
        )
    } else {
        (
            ((w as u64 * short as u64) / h as u64).max(crop as u64) as u32,
            short,
        )
    };
    if u64::from(rw) * u64::from(rh) > MAX_RESIZED_PIXELS {
        return Err(format!(
            "{w}x{h} pixels: too narrow to resize and centre-crop; crop it nearer to a square first"
        ));
    }
    let resized = image::imageops::resize(&image, rw, rh, FilterType::Triangle);
    let (x, y) = ((rw - crop) / 2, (rh - crop) / 2);
    let cropped = image::imageops::crop_imm(&resized, x, y, crop, crop).to_image();
    Ok(crate::images::interleaved_to_planar(
        cropped.as_raw(),
        (crop * crop) as usize,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_png(image: image::DynamicImage) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn any_shape_and_colour_type_becomes_a_planar_crop() {
        let gray = image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(
            500,
            300,
            image::Luma([7]),
        ));
        let rgba = image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            40,
            90,
            image::Rgba([1, 2, 3, 0]),
        ));
        for image in [gray, rgba] {
            let planar = center_crop(&encode_png(image), 224).unwrap();
            assert_eq!(planar.len(), 3 * 224 * 224);
        }
    }

    #[test]
    fn not_an_image_is_an_error() {
        assert!(center_crop(b"hello", 224).is_err());
    }
}
