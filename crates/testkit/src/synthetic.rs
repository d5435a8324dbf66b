//! Small generated datasets in the layouts the loaders read, for tests and quick trials: each
//! class is a distinct colour and stripe pattern under noise, so a network can learn it in a few
//! steps.

use std::io::Write;
use std::path::Path;

use data::{ImageSet, cifar};
use rng::Rng;

/// `per_class` images of each of `classes` classes, `side` x `side`, in label order.
pub fn images(classes: usize, per_class: usize, side: usize, seed: u64) -> ImageSet {
    let mut rng = Rng::new(seed);
    let mut set = ImageSet::new(side);
    let plane = side * side;
    for label in 0..classes {
        for _ in 0..per_class {
            let mut image = vec![0u8; 3 * plane];
            for (p, value) in image.iter_mut().enumerate() {
                let (channel, y) = (p / plane, (p % plane) / side);
                let stripe = (y * (label + 1) / side).is_multiple_of(2);
                let base =
                    if channel == label % 3 { 170 } else { 60 } + if stripe { 40 } else { 0 };
                *value = (base + rng.below(40)) as u8;
            }
            set.push(&image, label as u16);
        }
    }
    set
}

/// `set` as one CIFAR-10 batch file's bytes (what [`data::cifar::parse_batch`] reads): a label
/// byte, then the planar pixels, per image.
pub fn cifar_batch(set: &ImageSet) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(set.len() * cifar::RECORD);
    for i in 0..set.len() {
        bytes.push(set.labels[i] as u8);
        bytes.extend_from_slice(set.image(i));
    }
    bytes
}

/// A `.tar.gz` laid out like `cifar-10-binary.tar.gz`, with `per_class` images of each class in
/// every batch file.
pub fn cifar_archive(per_class: usize, seed: u64) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("cifar-10-batches-bin/{name}"), bytes)
            .expect("in-memory tar");
    };
    let names: Vec<String> = (0..10).map(|c| format!("class{c}")).collect();
    add(cifar::META, (names.join("\n") + "\n").as_bytes());
    for (i, name) in cifar::TRAIN_BATCHES
        .iter()
        .chain([&cifar::TEST_BATCH])
        .enumerate()
    {
        add(
            name,
            &cifar_batch(&images(10, per_class, cifar::SIDE, seed + i as u64)),
        );
    }
    tar.into_inner()
        .expect("in-memory tar")
        .finish()
        .expect("in-memory gzip")
}

/// Write `set` as `<dir>/<split>/<class>/NNNN.png`.
pub fn write_folder(
    set: &ImageSet,
    classes: &[String],
    dir: &Path,
    split: &str,
) -> std::io::Result<()> {
    for i in 0..set.len() {
        let class_dir = dir.join(split).join(&classes[set.labels[i] as usize]);
        std::fs::create_dir_all(&class_dir)?;
        let rgb = data::images::planar_to_interleaved(set.image(i));
        let path = class_dir.join(format!("{i:04}.png"));
        let image =
            image::RgbImage::from_raw(set.side as u32, set.side as u32, rgb).expect("sized buffer");
        let mut file = std::fs::File::create(&path)?;
        let mut bytes = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut bytes, image::ImageFormat::Png)
            .expect("in-memory png");
        file.write_all(bytes.get_ref())?;
    }
    Ok(())
}
