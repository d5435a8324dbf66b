//! The run directory: `config.toml` (resolved), `model.json` and `model.bpk` (the best
//! checkpoint), `metrics.csv` (one row per epoch) and `summary.json`. Every file is written under
//! a temporary name and renamed, so a killed run never leaves a half-written file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::fit::EpochMetrics;

pub struct RunDir {
    pub path: PathBuf,
}

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
                Ok(()) => return Ok(Self { path }),
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
        for m in history {
            csv.push_str(&format!(
                "{},{:.3},{},{:.6},{:.6},{:.6},{:.6}\n",
                m.epoch, m.seconds, m.lr, m.loss, m.acc, m.val_loss, m.val_acc
            ));
        }
        self.write("metrics.csv", csv.as_bytes())
    }
}

/// Peak resident memory of this process in MiB, where the system reports it (Linux).
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
