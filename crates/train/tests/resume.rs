//! `train --resume`: a run killed with SIGKILL in the middle continues to the numbers of a run
//! that was never stopped, and two processes never write one run directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use train::resume;
use train::run_dir::RunDir;

fn train() -> Command {
    Command::new(env!("CARGO_BIN_EXE_train"))
}

fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "train failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A config training the convnet for `epochs` on a generated CIFAR-10-like archive, with
/// `averaging` keys that keep an average of the weights (saved with the resume state and loaded
/// again). Three steps an epoch, so an average restarted on resume would not catch up before the
/// next metrics.
fn config(dir: &Path, epochs: usize, averaging: &str) -> PathBuf {
    let data = dir.join("cifar.tar.gz");
    std::fs::write(&data, testkit::synthetic::cifar_archive(24, 3)).unwrap();
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        format!(
            "seed = 11\nepochs = {epochs}\nbatch_size = 300\noutput_dir = {:?}\n\
             early_stopping_patience = 0\n{averaging}\n\
             [data]\ndir = {:?}\ncache_dir = {:?}\n",
            dir.join("runs"),
            data,
            dir.join("cache"),
        ),
    )
    .unwrap();
    path
}

/// `metrics.csv` without the seconds column, which is the only thing allowed to differ.
fn metrics(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields.remove(1);
            fields.join(",")
        })
        .collect()
}

/// A `train` process running `config` in the background, its output dropped.
fn spawn(config: &Path) -> Child {
    train()
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn a_killed_run_resumes_to_the_numbers_of_an_uninterrupted_one() {
    killed_and_resumed("train-resume-kill", "ema_decay = 0.9");
}

/// Lookahead moves the weights that train to its average: the average is part of the state.
#[test]
fn a_killed_run_with_lookahead_resumes_to_the_same_numbers() {
    killed_and_resumed("train-resume-lookahead", "lookahead_steps = 2");
}

/// A run with `averaging` killed in its third epoch and resumed ends as one never stopped.
fn killed_and_resumed(name: &str, averaging: &str) {
    let dir = testkit::scratch_dir(name);
    let epochs = 5;
    let config = config(&dir, epochs, averaging);
    ok(train().arg("--config").arg(&config).output().unwrap());
    let whole = dir.join("runs/tiny-1");

    let mut child = spawn(&config);
    let killed = dir.join("runs/tiny-2");
    let started = Instant::now();
    let state = loop {
        if let Some(state) = resume::load_state(&killed).unwrap()
            && state.epoch() >= 2
        {
            break state;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no second epoch"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_secs_f64(state.history[1].seconds / 2.0));
    child.kill().unwrap();
    child.wait().unwrap();
    let last = resume::load_state(&killed).unwrap().unwrap();
    assert!(
        last.epoch() < epochs && !killed.join("summary.json").exists(),
        "the run ended before it was killed; give it more epochs"
    );

    let resumed = ok(train().arg("--resume").arg(&killed).output().unwrap());
    assert!(
        resumed.contains(&format!("resuming after epoch {}", last.epoch())),
        "{resumed}"
    );
    assert_eq!(metrics(&killed), metrics(&whole));
    let seconds = summary(&killed)["seconds"].as_f64().unwrap();
    assert!(
        last.seconds > 0.0 && seconds > last.seconds,
        "the summary counts the killed process's {} s too: {seconds}",
        last.seconds
    );
    let (a, b) = (summary(&killed), summary(&whole));
    for key in [
        "loss",
        "accuracy",
        "best_epoch",
        "best_val_loss",
        "epochs_run",
        "stop",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert!(
        !killed.join(resume::DIR).exists(),
        "a finished run keeps no resume state"
    );

    let again = train().arg("--resume").arg(&killed).output().unwrap();
    assert!(!again.status.success());
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(message.contains("has finished"), "{message}");
}

#[test]
fn two_processes_cannot_write_one_run_directory() {
    let dir = testkit::scratch_dir("train-resume-lock");
    let held = RunDir::create(&dir, "run").unwrap();
    assert_eq!(held.path, dir.join("run-1"));
    held.write("config.toml", b"epochs = 1\n").unwrap();
    let output = train().arg("--resume").arg(&held.path).output().unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("is in use by another `train` process")
            && message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    drop(held);
    assert!(RunDir::open(&dir.join("run-1")).is_ok());
}

#[test]
fn a_run_killed_while_drawing_its_pictures_finishes_them_on_resume() {
    let dir = testkit::scratch_dir("train-resume-pictures");
    let config = config(&dir, 2, "ema_decay = 0.9");
    let mut child = spawn(&config);
    let run = dir.join("runs/tiny-1");
    let started = Instant::now();
    // The first picture is written after the final evaluation; kill the run right then.
    while !run.join("curves.png").exists() {
        assert!(started.elapsed() < Duration::from_secs(600), "no pictures");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    if !run.join("summary.json").exists() {
        ok(train().arg("--resume").arg(&run).output().unwrap());
    }
    for picture in ["curves.png", "confusion.png", "mistakes.png"] {
        assert!(run.join(picture).is_file(), "{picture}");
    }
    assert_eq!(summary(&run)["stop"], "completed");
    assert!(!run.join(resume::DIR).exists());
}

#[test]
fn ctrl_c_saves_the_run_and_exits_with_130() {
    let dir = testkit::scratch_dir("train-ctrl-c");
    let config = config(&dir, 50, "ema_decay = 0.9");
    let child = spawn(&config);
    let run = dir.join("runs/tiny-1");
    let started = Instant::now();
    while !run.join("metrics.csv").exists() {
        assert!(started.elapsed() < Duration::from_secs(600), "no epoch");
        std::thread::sleep(Duration::from_millis(5));
    }
    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert_eq!(summary(&run)["stop"], "interrupted");
}
