//! What a user does around a run, through the `train` binary: evaluating a run's model again, on
//! its own test split and on labelled folders.

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
    let run = dir.join("runs/tiny-1");
    let trained = summary(&run);

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
}
