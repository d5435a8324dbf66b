//! The run directory: `config.toml` (resolved), `model.json` and `model.bpk` (the best
//! checkpoint), `metrics.csv` (one row per epoch) and `summary.json`. Every file is written under
//! a temporary name and renamed, so a killed run never leaves a half-written file. A process
//! writing a run directory holds a lock on its `train.lock`, so two cannot write one at once.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::fit::EpochMetrics;

pub struct RunDir {
    pub path: PathBuf,
    /// Held while this process writes the directory; the system releases it when the process ends
    /// in any way, so a killed run never leaves a stale lock.
    _lock: File,
}

const LOCK: &str = "train.lock";

impl RunDir {
    /// Create `<output_dir>/<name>-<n>` with the first `n` not taken.
    pub fn create(output_dir: &Path, name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(output_dir).with_context(|| {
            format!(
                "cannot create output directory {}; set output_dir to a writable place",
                output_dir.display()
            )
        })?;
        for n in 1.. {
            let path = output_dir.join(format!("{name}-{n}"));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    // A directory this process made but could not lock (a full disk, say) is
                    // no run: leave nothing behind.
                    return Self::open(&path).inspect_err(|_| {
                        let _ = std::fs::remove_dir_all(&path);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot create run directory {}; set output_dir to a writable place",
                            path.display()
                        )
                    });
                }
            }
        }
        unreachable!("some run number is free")
    }

    /// Take the lock of an existing run directory.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(path.is_dir(), "no run directory {}", path.display());
        let empty = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .next()
            .is_none();
        anyhow::ensure!(
            empty || path.join("config.toml").is_file(),
            "{} is not a run directory written by `train` (no config.toml)",
            path.display()
        );
        let lock_path = path.join(LOCK);
        let mut lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                anyhow::bail!(
                    "{} is in use by another `train` process{}; wait for it to end or stop it first",
                    path.display(),
                    holder
                        .trim()
                        .parse::<u32>()
                        .map(|pid| format!(" (pid {pid})"))
                        .unwrap_or_default()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        lock.set_len(0)
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .with_context(|| format!("cannot write {}", lock_path.display()))?;
        for dir in [path.to_path_buf(), path.join(crate::resume::DIR)] {
            remove_partial_files(&dir)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Write `bytes` to `name` in the run directory, atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let path = self.file(name);
        data::fetch::write_atomic(&path, bytes)?;
        Ok(path)
    }

    pub fn write_json(&self, name: &str, value: &impl Serialize) -> anyhow::Result<PathBuf> {
        self.write(name, serde_json::to_string_pretty(value)?.as_bytes())
    }

    /// Rewrite `metrics.csv` with every epoch so far.
    pub fn write_metrics(&self, history: &[EpochMetrics]) -> anyhow::Result<PathBuf> {
        let mut csv = String::from("epoch,seconds,lr,loss,acc,val_loss,val_acc\n");
        // Empty validation cells without a validation split, as pandas reads missing values.
        let cell = |value: Option<f64>| value.map_or_else(String::new, |v| format!("{v:.6}"));
        for m in history {
            csv.push_str(&format!(
                "{},{:.3},{},{:.6},{:.6},{},{}\n",
                m.epoch,
                m.seconds,
                m.lr,
                m.loss,
                m.acc,
                cell(m.val_loss),
                cell(m.val_acc)
            ));
        }
        self.write("metrics.csv", csv.as_bytes())
    }
}

/// Remove what a killed process was writing when it died (see [`data::fetch::temporary_sibling`]).
fn remove_partial_files(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if data::fetch::is_temporary(&path) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// Peak resident memory of this process in MiB, where the system reports it (Linux).
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
