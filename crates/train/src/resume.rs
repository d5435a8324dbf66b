//! What `train --resume` continues from, saved in `<run>/resume/` after every epoch: the model
//! as it was training, the optimizer's state, the average of the weights (with
//! `ema_decay` or `lookahead_steps`) and `state.json` (stage, epochs, early-stopping state,
//! metrics history). The weight files carry their epoch in their name and `state.json`, written
//! last, names the epoch to load, so a process killed at any moment leaves a complete state.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use crate::fit::{EpochMetrics, Stop};
use crate::network::Network;
use store::checkpoint::write_record;

pub const DIR: &str = "resume";
const STATE: &str = "state.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// The stage that wrote it: 0 for the first (or only) one, 1 for fine-tuning.
    pub stage: usize,
    /// Epochs of that stage completed.
    pub stage_epochs: usize,
    /// How that stage ended, once it has.
    pub stage_stop: Option<Stop>,
    /// The run's best epoch so far, over every stage.
    pub best_epoch: Option<usize>,
    pub history: Vec<EpochMetrics>,
    /// Seconds the run had taken when it was saved, so that a resumed run's total counts them;
    /// states saved before this field existed count none.
    #[serde(default)]
    pub seconds: f64,
}

impl TrainingState {
    /// The epoch the state was saved after.
    pub fn epoch(&self) -> usize {
        self.history.len()
    }

    /// The first epoch of the stage that wrote it.
    pub fn stage_first_epoch(&self) -> usize {
        self.epoch() + 1 - self.stage_epochs
    }
}

fn model_file(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("epoch-{epoch}-model.bpk"))
}

fn optimizer_file(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("epoch-{epoch}-optimizer.bpk"))
}

fn ema_file(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("epoch-{epoch}-ema.bpk"))
}

const FIX: &str = "delete the resume folder to restart the run from scratch";

/// Save the state after an epoch into `<run_dir>/resume/`, then remove older epochs' files.
pub fn save<M: Network>(
    run_dir: &Path,
    state: &TrainingState,
    model: &M,
    optimizer: &ModuleOptimizer,
    ema: Option<&M>,
) -> anyhow::Result<()> {
    let dir = run_dir.join(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let epoch = state.epoch();
    write_record(&model_file(&dir, epoch), "resume state", |path| {
        model.clone().save_file(path)
    })?;
    write_record(&optimizer_file(&dir, epoch), "resume state", |path| {
        optimizer.save(path)
    })?;
    if let Some(ema) = ema {
        write_record(&ema_file(&dir, epoch), "resume state", |path| {
            ema.clone().save_file(path)
        })?;
    }
    data::fetch::write_atomic(
        &dir.join(STATE),
        serde_json::to_string_pretty(state)?.as_bytes(),
    )?;
    let current = [
        model_file(&dir, epoch),
        optimizer_file(&dir, epoch),
        ema_file(&dir, epoch),
    ];
    for entry in std::fs::read_dir(&dir)?.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "bpk") && !current.contains(&path) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// The state saved in `run_dir`, if any epoch completed.
pub fn load_state(run_dir: &Path) -> anyhow::Result<Option<TrainingState>> {
    let path = run_dir.join(DIR).join(STATE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let state = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is corrupt; delete the resume folder to restart the run from scratch",
            path.display()
        )
    })?;
    Ok(Some(state))
}

/// The training model and optimizer saved with `state`, loaded into `model` and `optimizer`
/// (built as the stage builds them, so frozen parts stay frozen).
pub fn load_training<M: Network>(
    run_dir: &Path,
    state: &TrainingState,
    model: M,
    optimizer: ModuleOptimizer,
) -> anyhow::Result<(M, ModuleOptimizer)> {
    let dir = run_dir.join(DIR);
    let model = load_weights(model, &model_file(&dir, state.epoch()))?;
    let path = optimizer_file(&dir, state.epoch());
    let optimizer = optimizer
        .load(&path)
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e}; {FIX}", path.display()))?;
    Ok((model, optimizer))
}

/// The moving average of the weights saved with `state`, loaded into `model` (in validation
/// mode).
pub fn load_ema<M: Network>(run_dir: &Path, state: &TrainingState, model: M) -> anyhow::Result<M> {
    load_weights(model, &ema_file(&run_dir.join(DIR), state.epoch()))
}

/// `model` with the weights saved in `path`, or an error naming the file and the fix.
fn load_weights<M: Network>(model: M, path: &Path) -> anyhow::Result<M> {
    model
        .try_load_file(path)
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e}; {FIX}", path.display()))
}

/// Remove the resume state of a run that has ended.
pub fn clear(run_dir: &Path) -> anyhow::Result<()> {
    let dir = run_dir.join(DIR);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}
