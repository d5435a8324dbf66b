//! Folders of images, one sub-folder per class: `<dir>/train/<class>/*` and optionally
//! `<dir>/test/<class>/*`, in any format and size the `image` crate decodes (PNG, JPEG, BMP,
//! WebP), resized to a square of the network's input side.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use crate::progress::{Progress, Unit};
use crate::{DataError, Dataset, ImageSet};

const EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "webp"];

/// Whether `dir` holds a `train/` folder of class folders.
pub fn is_folder_dataset(dir: &Path) -> bool {
    dir.join("train").is_dir()
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(DataError::io(dir))?
        .map(|e| e.map(|e| e.path()).map_err(DataError::io(dir)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The layout a training dataset's folder has.
const TRAINING_LAYOUT: &str = "<dir>/train/<class>/<image files>";

/// Class names: the sub-folders of `split`, sorted; none is an error naming `layout`, the
/// layout expected.
fn class_names(split: &Path, layout: &str) -> Result<Vec<String>, DataError> {
    let classes: Vec<String> = sorted_entries(split)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from))
        .collect();
    if classes.is_empty() {
        return Err(DataError::Layout {
            path: split.to_path_buf(),
            problem: format!("no class folders; expected {layout}"),
        });
    }
    Ok(classes)
}

/// The class folders of `<dir>/test`, which must be `<dir>/train`'s.
fn check_test_classes(test: &Path, train: &Path, classes: &[String]) -> Result<(), DataError> {
    let test_classes = class_names(test, TRAINING_LAYOUT)?;
    if test_classes != classes {
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|c| !b.contains(c)).cloned().collect()
        };
        return Err(DataError::Layout {
            path: test.to_path_buf(),
            problem: format!(
                "its class folders differ from {}'s (only in test: [{}]; only in train: [{}]); give both splits the same class folders",
                train.display(),
                only(&test_classes, classes).join(", "),
                only(classes, &test_classes).join(", ")
            ),
        });
    }
    Ok(())
}

/// Read and decode one image file into planar RGB bytes of `side` x `side`.
fn read_image(path: &Path, side: usize) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode(&bytes, side)
}

/// Decode image bytes into planar RGB bytes of `side` x `side` (grayscale and alpha dropped to RGB).
pub fn decode(bytes: &[u8], side: usize) -> Result<Vec<u8>, String> {
    let rgb = crate::images::decode_image(bytes)?.to_rgb8();
    let rgb = if rgb.dimensions() == (side as u32, side as u32) {
        rgb
    } else {
        image::imageops::resize(&rgb, side as u32, side as u32, FilterType::Triangle)
    };
    Ok(crate::images::interleaved_to_planar(
        rgb.as_raw(),
        side * side,
    ))
}

fn load_split(
    split: &Path,
    classes: &[String],
    side: usize,
    skip_broken: bool,
    skipped: &mut Vec<PathBuf>,
) -> Result<ImageSet, DataError> {
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = split.join(class);
        if !class_dir.is_dir() {
            // An evaluation folder may hold only some of the model's classes.
            continue;
        }
        let images: Vec<PathBuf> = sorted_entries(&class_dir)?
            .into_iter()
            .filter(|p| is_image(p))
            .collect();
        if images.is_empty() {
            eprintln!(
                "warning: {} holds no images ({}): class {class} has none in this split",
                class_dir.display(),
                EXTENSIONS.join(", ")
            );
        }
        files.extend(images.into_iter().map(|file| (file, label as u16)));
    }
    let bar = Progress::new(
        format!("decoding {}", split.display()),
        files.len() as u64,
        Unit::Items("images"),
    );
    let decoded: Vec<_> = files
        .par_iter()
        .map(|(path, label)| {
            bar.inc(1);
            (path, *label, read_image(path, side))
        })
        .collect();
    bar.finish();
    let mut set = ImageSet::new(side);
    for (path, label, image) in decoded {
        match image {
            Ok(pixels) => set.push(&pixels, label),
            Err(problem) if skip_broken => {
                eprintln!("warning: skipping {}: {problem}", path.display());
                skipped.push(path.clone());
            }
            Err(problem) => {
                return Err(DataError::Image {
                    path: path.clone(),
                    problem,
                });
            }
        }
    }
    if set.is_empty() {
        return Err(DataError::Layout {
            path: split.to_path_buf(),
            problem: match skipped.len() {
                0 => format!("no images (looked for {})", EXTENSIONS.join(", ")),
                n => format!("no usable images ({n} could not be read or decoded)"),
            },
        });
    }
    Ok(set)
}

/// The images under `path`, a file (taken as it is) or a folder (searched recursively for the
/// image extensions), sorted.
pub fn image_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in sorted_entries(path)? {
        if entry.is_dir() {
            files.extend(image_files(&entry)?);
        } else if is_image(&entry) {
            files.push(entry);
        }
    }
    Ok(files)
}

/// A labelled folder `<dir>/<class>/<image>` whose classes are among a model's `classes` (some
/// may be missing), labelled with their index in `classes`; with the files skipped.
pub fn load_labelled(
    dir: &Path,
    classes: &[String],
    side: usize,
    skip_broken: bool,
) -> Result<(ImageSet, Vec<PathBuf>), DataError> {
    let unknown: Vec<String> = class_names(
        dir,
        "<dir>/<class>/<image files>, with the model's class names",
    )?
    .into_iter()
    .filter(|c| !classes.contains(c))
    .collect();
    if !unknown.is_empty() {
        return Err(DataError::Layout {
            path: dir.to_path_buf(),
            problem: format!(
                "class folders the model does not know: [{}]; its classes are [{}]",
                unknown.join(", "),
                classes.join(", ")
            ),
        });
    }
    let mut skipped = Vec::new();
    let set = load_split(dir, classes, side, skip_broken, &mut skipped)?;
    Ok((set, skipped))
}

/// Load `<dir>/train` and, if present, `<dir>/test`, resizing every image to `side`.
/// A file that cannot be read or decoded is an error, or with `skip_broken` a warning that names
/// it; a split left with no image is an error either way.
pub fn load(dir: &Path, side: usize, skip_broken: bool) -> Result<Dataset, DataError> {
    let train_dir = dir.join("train");
    let classes = class_names(&train_dir, TRAINING_LAYOUT)?;
    if classes.len() < 2 {
        return Err(DataError::Layout {
            path: train_dir,
            problem: format!(
                "one class folder ({}): a classifier needs at least two classes to tell apart",
                classes[0]
            ),
        });
    }
    let test_dir = dir.join("test");
    if test_dir.is_dir() {
        check_test_classes(&test_dir, &train_dir, &classes)?;
    }
    let mut skipped = Vec::new();
    let train = load_split(&train_dir, &classes, side, skip_broken, &mut skipped)?;
    let test = if test_dir.is_dir() {
        Some(load_split(
            &test_dir,
            &classes,
            side,
            skip_broken,
            &mut skipped,
        )?)
    } else {
        None
    };
    Ok(Dataset {
        classes,
        train,
        test,
        skipped,
    })
}
