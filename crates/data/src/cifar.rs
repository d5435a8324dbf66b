//! CIFAR-10's binary version: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, each
//! 10,000 records of one label byte and 3,072 pixel bytes (red, green and blue 32x32 planes,
//! row-major), and `batches.meta.txt` with one class name per line.

use std::path::Path;

use crate::{DataError, Dataset, ImageSet};

pub const SIDE: usize = 32;
pub const RECORD: usize = 1 + 3 * SIDE * SIDE;
const RECORDS_PER_BATCH: usize = 10_000;
pub const TRAIN_BATCHES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_BATCH: &str = "test_batch.bin";
pub const META: &str = "batches.meta.txt";

/// Whether `dir` holds CIFAR-10's binary batches.
pub fn is_cifar_dir(dir: &Path) -> bool {
    dir.join(TRAIN_BATCHES[0]).is_file()
}

/// Parse one batch file's bytes, checking every label against `classes`.
pub fn parse_batch(bytes: &[u8], classes: usize, path: &Path) -> Result<ImageSet, DataError> {
    let corrupt = |problem: String| DataError::Corrupt {
        path: path.to_path_buf(),
        problem,
    };
    // The official files hold 10,000 records each; smaller whole batches are accepted so that
    // tests and subsets stay small.
    if bytes.is_empty()
        || !bytes.len().is_multiple_of(RECORD)
        || bytes.len() > RECORDS_PER_BATCH * RECORD
    {
        return Err(corrupt(format!(
            "{} bytes, but a CIFAR-10 batch file holds whole records of {RECORD} bytes ({} in the official files); the file is truncated or not a CIFAR-10 batch, download it again",
            bytes.len(),
            RECORDS_PER_BATCH * RECORD,
        )));
    }
    let mut set = ImageSet::new(SIDE);
    set.pixels.reserve(RECORDS_PER_BATCH * (RECORD - 1));
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        let label = record[0];
        if usize::from(label) >= classes {
            return Err(corrupt(format!(
                "record {i} has label {label}, but {META} names only {classes} classes; one of the two files is corrupt, download the archive again"
            )));
        }
        set.push(&record[1..], label.into());
    }
    Ok(set)
}

/// Class names from `batches.meta.txt`, one per non-empty line.
pub fn parse_meta(text: &str, path: &Path) -> Result<Vec<String>, DataError> {
    let classes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if classes.is_empty() || classes.len() > 256 {
        return Err(DataError::Corrupt {
            path: path.to_path_buf(),
            problem: format!("{} class names, expected 1 to 256", classes.len()),
        });
    }
    Ok(classes)
}

/// Load the five training batches and the test batch from `dir`.
pub fn load(dir: &Path) -> Result<Dataset, DataError> {
    let meta = dir.join(META);
    let text = std::fs::read_to_string(&meta).map_err(DataError::io(&meta))?;
    let classes = parse_meta(&text, &meta)?;
    let read = |name: &str| -> Result<ImageSet, DataError> {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(DataError::io(&path))?;
        parse_batch(&bytes, classes.len(), &path)
    };
    let mut train = ImageSet::new(SIDE);
    for name in TRAIN_BATCHES {
        let batch = read(name)?;
        train.pixels.extend(batch.pixels);
        train.labels.extend(batch.labels);
    }
    let test = read(TEST_BATCH)?;
    Ok(Dataset {
        classes,
        train,
        test: Some(test),
        skipped: Vec::new(),
    })
}
