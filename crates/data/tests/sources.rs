//! Loading both layouts and downloading from a local HTTP server.

use std::path::{Path, PathBuf};

use data::source::{self, Source};
use testkit::synthetic;
use testkit::{ScratchDir, scratch_dir};

fn temp_dir(name: &str) -> ScratchDir {
    scratch_dir(&format!("data-{name}"))
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn serve(status: u16, body: Vec<u8>, claimed_length: usize) -> String {
    testkit::serve(status, body, claimed_length, 4, "cifar-10-binary.tar.gz")
}

fn source(cache: &Path, url: String, md5: String) -> Source {
    Source {
        dir: None,
        url,
        md5,
        cache: cache.to_path_buf(),
        image_size: 32,
        skip_broken: false,
    }
}

fn leftovers(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn downloads_checks_and_unpacks_the_archive_once() {
    let archive = synthetic::cifar_archive(3, 1);
    let cache = temp_dir("good");
    let src = source(
        &cache,
        serve(200, archive.clone(), archive.len()),
        md5_hex(&archive),
    );
    let dataset = source::load(&src).unwrap();
    assert_eq!(dataset.classes.len(), 10);
    assert_eq!(dataset.train.len(), 5 * 30);
    assert_eq!(dataset.test.as_ref().map(|t| t.len()), Some(30));
    // The second load uses the cache: a server that only errors is never asked.
    let again = Source {
        url: serve(500, Vec::new(), 0),
        ..src
    };
    assert_eq!(source::load(&again).unwrap().train, dataset.train);
}

#[test]
fn a_truncated_download_leaves_nothing_behind() {
    let archive = synthetic::cifar_archive(3, 1);
    let cache = temp_dir("truncated");
    let half = archive[..archive.len() / 2].to_vec();
    let err = source::load(&source(
        &cache,
        serve(200, half, archive.len()),
        md5_hex(&archive),
    ))
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("download of http://127.0.0.1"),
        "{message}"
    );
    assert!(message.contains("--set data.dir=PATH"), "{message}");
    assert_eq!(leftovers(&cache), Vec::<String>::new());
}

#[test]
fn a_bad_checksum_is_refused() {
    let archive = synthetic::cifar_archive(3, 1);
    let cache = temp_dir("checksum");
    let err = source::load(&source(
        &cache,
        serve(200, archive.clone(), archive.len()),
        "0".repeat(32),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert_eq!(leftovers(&cache), Vec::<String>::new());
}

#[test]
fn a_server_error_says_how_to_work_offline() {
    let cache = temp_dir("server-error");
    let err = source::load(&source(
        &cache,
        serve(503, b"busy".to_vec(), 4),
        "0".repeat(32),
    ))
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("data.dir"), "{message}");
}

#[test]
fn image_folders_load_with_and_without_a_test_split() {
    let dir = temp_dir("folders");
    let classes: Vec<String> = ["cat", "dog", "frog"].map(String::from).to_vec();
    let set = synthetic::images(3, 4, 20, 7);
    synthetic::write_folder(&set, &classes, &dir, "train").unwrap();
    let cache = temp_dir("folders-cache");
    let src = Source {
        dir: Some(dir.to_path_buf()),
        image_size: 20,
        ..source(&cache, String::new(), String::new())
    };
    let dataset = source::load(&src).unwrap();
    assert_eq!(dataset.classes, classes);
    assert_eq!(
        dataset.train, set,
        "PNG is lossless, so the pixels come back exactly"
    );
    assert!(dataset.test.is_none());

    synthetic::write_folder(&set.select(&[0, 5, 9]), &classes, &dir, "test").unwrap();
    let resized = Source {
        image_size: 8,
        ..src
    };
    let dataset = source::load(&resized).unwrap();
    assert_eq!(dataset.test.map(|t| (t.len(), t.side)), Some((3, 8)));
}

#[test]
fn a_corrupt_image_is_named_or_skipped() {
    let dir = temp_dir("corrupt");
    let classes: Vec<String> = ["a", "b"].map(String::from).to_vec();
    synthetic::write_folder(&synthetic::images(2, 3, 8, 1), &classes, &dir, "train").unwrap();
    let broken = dir.join("train/b/broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let cache = temp_dir("corrupt-cache");
    let src = Source {
        dir: Some(dir.to_path_buf()),
        image_size: 8,
        ..source(&cache, String::new(), String::new())
    };
    let err = source::load(&src).unwrap_err().to_string();
    assert!(
        err.contains("broken.jpg") && err.contains("skip_broken_images"),
        "{err}"
    );
    let dataset = source::load(&Source {
        skip_broken: true,
        ..src
    })
    .unwrap();
    assert_eq!(dataset.train.len(), 6);
    assert_eq!(dataset.skipped, vec![broken]);
}

#[test]
fn unreadable_files_are_skipped_until_nothing_is_left() {
    let dir = temp_dir("unreadable");
    let unreadable = dir.join("train/a/folder.png");
    std::fs::create_dir_all(&unreadable).unwrap();
    std::fs::create_dir_all(dir.join("train/b")).unwrap();
    std::fs::write(dir.join("train/b/empty.png"), b"").unwrap();
    let cache = temp_dir("unreadable-cache");
    let src = Source {
        dir: Some(dir.to_path_buf()),
        skip_broken: true,
        ..source(&cache, String::new(), String::new())
    };
    let err = source::load(&src).unwrap_err().to_string();
    assert!(
        err.contains("train") && err.contains("no usable images (2 could not be read or decoded)"),
        "{err}"
    );
    std::fs::write(
        dir.join("train/a/good.png"),
        std::fs::read(temp_png(&temp_dir("unreadable-png"))).unwrap(),
    )
    .unwrap();
    let dataset = source::load(&src).unwrap();
    assert_eq!(dataset.train.len(), 1);
    assert_eq!(dataset.skipped.len(), 2);
}

/// One small PNG written by the synthetic folder writer.
fn temp_png(dir: &Path) -> PathBuf {
    let classes = vec!["x".to_string()];
    synthetic::write_folder(&synthetic::images(1, 1, 4, 2), &classes, dir, "train").unwrap();
    dir.join("train/x/0000.png")
}

#[test]
fn a_local_archive_is_unpacked_into_the_cache() {
    let dir = temp_dir("archive");
    let path = dir.join("copy.tar.gz");
    std::fs::write(&path, synthetic::cifar_archive(2, 3)).unwrap();
    let cache = temp_dir("archive-cache");
    let src = Source {
        dir: Some(path),
        ..source(&cache, String::new(), String::new())
    };
    assert_eq!(source::load(&src).unwrap().train.len(), 100);
}

/// A small JPEG of a gradient, as a camera or a browser would save one.
fn jpeg(side: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Jpeg)
        .unwrap();
    bytes.into_inner()
}

#[test]
fn a_jpeg_cut_short_is_an_error_and_skipped_in_a_folder() {
    let whole = jpeg(64);
    assert!(data::images::decode_image(&whole).is_ok());
    for cut in [200, whole.len() / 2, whole.len() - 2] {
        let err = data::images::decode_image(&whole[..cut]).unwrap_err();
        assert!(err.contains("truncated"), "{cut} bytes: {err}");
    }
    let dir = temp_dir("truncated");
    let classes: Vec<String> = ["a", "b"].map(String::from).to_vec();
    synthetic::write_folder(&synthetic::images(2, 3, 8, 1), &classes, &dir, "train").unwrap();
    let cut = dir.join("train/a/cut.jpg");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let cache = temp_dir("truncated-cache");
    let dataset = source::load(&Source {
        dir: Some(dir.to_path_buf()),
        image_size: 8,
        skip_broken: true,
        ..source(&cache, String::new(), String::new())
    })
    .unwrap();
    assert_eq!(dataset.train.len(), 6);
    assert_eq!(dataset.skipped, vec![cut]);
}

/// An uncompressed `.tar.gz` of `train/<class>/0.jpg` for each class: its size depends only on
/// the names' lengths.
fn folder_archive(classes: &[&str]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::none(),
    ));
    let picture = jpeg(8);
    for class in classes {
        let mut header = tar::Header::new_gnu();
        header.set_size(picture.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("train/{class}/0.jpg"), &picture[..])
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[test]
fn an_archive_rebuilt_with_other_contents_is_unpacked_again() {
    let dir = temp_dir("rebuilt");
    let cache = temp_dir("rebuilt-cache");
    let path = dir.join("pictures.tar.gz");
    let src = Source {
        dir: Some(path.clone()),
        image_size: 8,
        ..source(&cache, String::new(), String::new())
    };
    let (first, second) = (
        folder_archive(&["cat", "dog"]),
        folder_archive(&["cat", "cow"]),
    );
    assert_eq!(first.len(), second.len(), "same name, same size");
    std::fs::write(&path, first).unwrap();
    assert_eq!(source::load(&src).unwrap().classes, ["cat", "dog"]);
    std::fs::write(&path, second).unwrap();
    assert_eq!(source::load(&src).unwrap().classes, ["cat", "cow"]);
}

#[test]
fn what_killed_processes_left_in_the_cache_is_swept() {
    let dir = temp_dir("stale");
    let path = dir.join("copy.tar.gz");
    std::fs::write(&path, synthetic::cifar_archive(1, 3)).unwrap();
    let cache = temp_dir("stale-cache");
    let unpacked = cache.join("unpacked");
    // Linux never gives a process an id above 2^22.
    let stale = unpacked.join(".copy.tar.gz-0123.partial-4194999");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("data_batch_1.bin"), b"half").unwrap();
    let live = unpacked.join(format!(".other.partial-{}", std::process::id()));
    std::fs::write(&live, b"being written").unwrap();
    let src = Source {
        dir: Some(path),
        ..source(&cache, String::new(), String::new())
    };
    assert_eq!(source::load(&src).unwrap().train.len(), 50);
    assert!(
        !stale.exists(),
        "a dead process's partial folder is removed"
    );
    assert!(live.exists(), "a running process's partial file stays");
}

#[test]
fn class_folders_that_cannot_train_are_named() {
    let cache = temp_dir("classes-cache");
    let load = |dir: &Path| {
        source::load(&Source {
            dir: Some(dir.to_path_buf()),
            image_size: 8,
            ..source(&cache, String::new(), String::new())
        })
    };
    let one = temp_dir("one-class");
    let only = vec!["cat".to_string()];
    synthetic::write_folder(&synthetic::images(1, 2, 8, 1), &only, &one, "train").unwrap();
    let err = load(&one).unwrap_err().to_string();
    assert!(err.contains("at least two classes"), "{err}");

    let differ = temp_dir("test-classes");
    let train = vec!["cat".to_string(), "dog".to_string()];
    let test = vec!["cat".to_string(), "cow".to_string()];
    synthetic::write_folder(&synthetic::images(2, 2, 8, 1), &train, &differ, "train").unwrap();
    synthetic::write_folder(&synthetic::images(2, 1, 8, 2), &test, &differ, "test").unwrap();
    let err = load(&differ).unwrap_err().to_string();
    assert!(
        err.contains(&differ.join("test").display().to_string())
            && err.contains("only in test: [cow]")
            && err.contains("only in train: [dog]"),
        "{err}"
    );
}
