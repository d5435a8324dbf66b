//! What a user does around a run, through the `train` binary: the network's summary, the
//! learning-rate finder, and evaluating a run's model again, on its own test split and on
//! labelled folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::synthetic;

fn train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .args(args)
        .output()
        .expect("train runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn classes() -> Vec<String> {
    ["bird", "cat", "frog"].map(String::from).into()
}

/// A folder dataset of three classes with a test split, and a config training the convnet on it
/// with test-time flips; returns the config's path.
fn folder_config(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    synthetic::write_folder(&synthetic::images(3, 12, 32, 1), &classes(), &data, "train").unwrap();
    synthetic::write_folder(&synthetic::images(3, 5, 32, 2), &classes(), &data, "test").unwrap();
    let config = dir.join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            "epochs = 2\nbatch_size = 8\nvalid_size = 0.25\ntest_time_flip = true\noutput_dir = {:?}\n[data]\ndir = {:?}\n",
            dir.join("runs").display().to_string(),
            data.display().to_string()
        ),
    )
    .unwrap();
    config
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn evaluating_a_run_reproduces_its_test_accuracy_and_explains_it_by_class() {
    let dir = testkit::scratch_dir("train-evaluate");
    let config = folder_config(&dir);
    let output = train(&["--config", config.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("convnet: parameters: 3,576,867"),
        "{}",
        text(&output)
    );
    let run = dir.join("runs/tiny-1");
    let trained = summary(&run);
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert_eq!(report.matches("src=\"data:image/png;base64,").count(), 3);
    for part in [
        "Metrics per epoch",
        "Per class",
        "Most confused",
        "Config",
        "peak memory",
    ] {
        assert!(report.contains(part), "{part}");
    }

    let out = dir.join("evaluation");
    let output = train(&[
        "evaluate",
        run.to_str().unwrap(),
        "--tta",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["evaluated_on"], "test split");
    assert_eq!(metrics["images"], 15);
    assert_eq!(metrics["test_time_views"], 2);
    assert_eq!(metrics["accuracy"], trained["accuracy"], "{metrics}");
    assert_eq!(metrics["loss"], trained["loss"], "{metrics}");
    assert_eq!(metrics["per_class"].as_array().unwrap().len(), 3);
    let printed = text(&output);
    assert!(printed.contains("precision  recall"), "{printed}");
    for picture in ["confusion.png", "mistakes.png"] {
        let bytes = std::fs::read(out.join(picture)).unwrap();
        assert!(image::load_from_memory(&bytes).is_ok(), "{picture}");
    }

    // Without the views, the default output folder.
    let output = train(&["evaluate", run.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let plain: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("evaluation/metrics.json")).unwrap())
            .unwrap();
    assert_eq!(plain["test_time_views"], 1);

    // A labelled folder holding two of the three classes.
    let labelled = dir.join("labelled");
    synthetic::write_folder(&synthetic::images(3, 4, 48, 3), &classes(), &labelled, ".").unwrap();
    std::fs::remove_dir_all(labelled.join("frog")).unwrap();
    let output = train(&[
        "evaluate",
        run.to_str().unwrap(),
        "--data",
        labelled.to_str().unwrap(),
        "--out",
        dir.join("labelled-evaluation").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let metrics: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("labelled-evaluation/metrics.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(metrics["images"], 8);
    assert_eq!(metrics["per_class"][2]["support"], 0);

    // A class the model does not know: one line naming it.
    std::fs::create_dir_all(labelled.join("zebra")).unwrap();
    let output = train(&[
        "evaluate",
        run.to_str().unwrap(),
        "--data",
        labelled.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("zebra") && message.contains("bird, cat, frog"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");

    // A folder with no class folders: the layout expected.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let output = train(&[
        "evaluate",
        run.to_str().unwrap(),
        "--data",
        empty.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("<dir>/<class>/<image files>"), "{message}");
}

#[test]
fn the_summary_lists_the_layers_and_the_finder_suggests_a_rate_without_making_a_run() {
    let dir = testkit::scratch_dir("train-summary-lr-find");
    let config = folder_config(&dir);
    let config = config.to_str().unwrap();
    let output = train(&["--config", config, "--summary"]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    let line = |start: &str| {
        printed
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start}: {printed}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("conv2d_1 (Conv2d)"),
        "conv2d_1 (Conv2d) [32, 30, 30] 896 777,600"
    );
    assert_eq!(
        line("predictions (Linear)"),
        "predictions (Linear) [3] 3,075 3,072"
    );
    assert_eq!(
        line("parameters:"),
        "parameters: 3,576,867 (3,576,867 trainable, 0 not: frozen layers, BatchNorm statistics)"
    );
    assert!(line("multiply-adds").starts_with("multiply-adds per 32x32 image: 20,220,288"));

    // Rates per 1,024 examples at batch 8 and momentum 0.9: a step of 1e-7 is 1e-7 · 11,264 / 8.
    let per_1024 = 1e-7 * 1024.0 * (1.0 + 1.0 / (1.0 - 0.9)) / 8.0;
    for (name, extra, first_rate) in [
        ("tiny", &[][..], 1e-7),
        (
            "tiny",
            &[
                "--set",
                "model.name=\"fastnet\"",
                "--set",
                "optimizer.name=\"sgd\"",
            ][..],
            1e-7,
        ),
        (
            "tiny",
            &[
                "--set",
                "optimizer.name=\"sgd\"",
                "--set",
                "optimizer.per_1024_examples=true",
            ][..],
            per_1024,
        ),
    ] {
        let mut args = vec!["--config", config, "--lr-find", "--lr-find-steps", "40"];
        args.extend(extra);
        let output = train(&args);
        let printed = text(&output);
        assert!(output.status.success(), "{printed}");
        assert!(printed.contains("suggested lr: "), "{printed}");
        let csv = std::fs::read_to_string(dir.join(format!("runs/{name}-lr-find.csv"))).unwrap();
        let rates: Vec<f64> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(rates.len() > 20, "{csv}");
        assert!(rates.windows(2).all(|w| w[1] > w[0]), "{csv}");
        assert!(
            (rates[0] / first_rate - 1.0).abs() < 1e-9,
            "the rates in the config's units: {} vs {first_rate}",
            rates[0]
        );
        let png = std::fs::read(dir.join(format!("runs/{name}-lr-find.png"))).unwrap();
        assert!(image::load_from_memory(&png).is_ok());
    }
    // No run was made.
    let entries: Vec<_> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(entries.iter().all(|e| e.contains("lr-find")), "{entries:?}");
}

#[test]
fn an_exported_model_gives_pytorch_the_same_logits() {
    let Some(python) = testkit::torch::python() else {
        return;
    };
    let dir = testkit::scratch_dir("train-export");
    let config = folder_config(&dir);
    for (name, extra) in [
        ("convnet", &[][..]),
        (
            "fastnet",
            &[
                "--set",
                "model.name=\"fastnet\"",
                "--set",
                "model.widths=[8, 16, 16, 32]",
                "--set",
                "model.whiten=true",
            ][..],
        ),
        (
            "airnet",
            &[
                "--set",
                "model.name=\"airnet\"",
                "--set",
                "model.widths=[8, 16, 16]",
                "--set",
                "optimizer.name=\"sgd\"",
            ][..],
        ),
    ] {
        let mut args = vec!["--config", config.to_str().unwrap(), "--set", "epochs=1"];
        args.extend(extra);
        let output = train(&args);
        assert!(output.status.success(), "{}", text(&output));
        let run = std::fs::read_dir(dir.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::read_to_string(p.join("model.json")).is_ok_and(|m| m.contains(name)))
            .unwrap();
        let exported = dir.join(format!("{name}.safetensors"));
        let output = train(&[
            "export",
            run.to_str().unwrap(),
            "--safetensors",
            exported.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", text(&output));

        let device = burn::prelude::Device::flex();
        let (classifier, _) = store::checkpoint::load(&run, &device).unwrap();
        let values: Vec<f32> = (0..2 * 3 * 32 * 32)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let input = burn::prelude::Tensor::<4>::from_data(
            burn::prelude::TensorData::new(values.clone(), [2, 3, 32, 32]),
            &device,
        );
        use models::ImageClassifier;
        let burn_logits = models::values(classifier.forward(input));
        let torch_logits = testkit::torch::logits(&python, &run, &exported, &values, &dir);
        assert_eq!(torch_logits.len(), burn_logits.len(), "{name}");
        for (a, b) in burn_logits.iter().zip(&torch_logits) {
            assert!(
                (a - b).abs() < 1e-4,
                "{name}: burn {burn_logits:?} torch {torch_logits:?}"
            );
        }
    }
}
