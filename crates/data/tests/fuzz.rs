//! The parsers that read users' files, fed mutated inputs: an error is fine, a panic, a hang or
//! an unbounded allocation is not. `CONVKIT_FUZZ_ITERATIONS=100000 cargo test --release -p data
//! --test fuzz` runs a longer pass.

use std::io::Cursor;
use std::path::Path;

use data::{cifar, folder, photo};
use testkit::fuzz;
use testkit::synthetic;

fn encoded(format: image::ImageFormat, side: u32, gray: bool) -> Vec<u8> {
    let set = synthetic::images(1, 1, side as usize, 9);
    let rgb = data::images::planar_to_interleaved(set.image(0));
    let image = image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(side, side, rgb).unwrap());
    let image = if gray {
        image::DynamicImage::ImageLuma8(image.to_luma8())
    } else {
        image
    };
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

/// A BMP header announcing `width` x `height` 24-bit pixels, followed by a few of them.
fn bmp_claiming(width: i32, height: i32) -> Vec<u8> {
    let mut bytes = b"BM".to_vec();
    bytes.extend(1000u32.to_le_bytes());
    bytes.extend([0; 4]);
    bytes.extend(54u32.to_le_bytes());
    bytes.extend(40u32.to_le_bytes());
    bytes.extend(width.to_le_bytes());
    bytes.extend(height.to_le_bytes());
    bytes.extend(1u16.to_le_bytes());
    bytes.extend(24u16.to_le_bytes());
    bytes.extend([0; 24]);
    bytes.extend([7; 64]);
    bytes
}

fn image_seeds() -> Vec<Vec<u8>> {
    use image::ImageFormat::{Bmp, Jpeg, Png, WebP};
    vec![
        encoded(Png, 12, false),
        encoded(Png, 9, true),
        encoded(Jpeg, 16, false),
        encoded(Jpeg, 8, true),
        encoded(Bmp, 6, false),
        encoded(WebP, 10, false),
        bmp_claiming(4, 4),
    ]
}

#[test]
fn files_claiming_huge_images_are_refused_without_allocating_them() {
    for (width, height) in [(60_000, 60_000), (30_000, 30_000), (1, 30_000)] {
        let bytes = bmp_claiming(width, height);
        assert!(folder::decode(&bytes, 32).is_err(), "{width}x{height}");
        assert!(photo::center_crop(&bytes, 224).is_err(), "{width}x{height}");
    }
}

#[test]
fn image_decoding_survives_mutated_files() {
    fuzz("image-decoding", &image_seeds(), |bytes| {
        if let Ok(pixels) = folder::decode(bytes, 8) {
            assert_eq!(pixels.len(), 3 * 8 * 8);
        }
        if let Ok(pixels) = photo::center_crop(bytes, 16) {
            assert_eq!(pixels.len(), 3 * 16 * 16);
        }
    });
}

#[test]
fn the_cifar_parsers_survive_mutated_files() {
    let batch = synthetic::cifar_batch(&synthetic::images(10, 1, cifar::SIDE, 4));
    let meta = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n".to_vec();
    let path = Path::new("fuzzed.bin");
    fuzz("cifar-batch", &[batch, meta], |bytes| {
        if let Ok(set) = cifar::parse_batch(bytes, 10, path) {
            assert_eq!(set.len() * cifar::RECORD, bytes.len());
            assert!(set.labels.iter().all(|&l| l < 10));
        }
        if let Ok(text) = std::str::from_utf8(bytes)
            && let Ok(classes) = cifar::parse_meta(text, path)
        {
            assert!((1..=256).contains(&classes.len()));
        }
    });
}

#[test]
#[should_panic(expected = "fuzz grows: input")]
fn the_harness_reports_an_input_that_panics() {
    fuzz("grows", &[vec![1, 2, 3]], |bytes| assert!(bytes.len() <= 3));
}
