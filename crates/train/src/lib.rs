//! Training convnets from a config file, the library behind the `train` binary.
//!
//! The project runs its own training loop rather than burn-train's `Learner`, because a run here
//! needs what `Learner` does not offer: an exact resume (a run killed at any moment and resumed
//! ends with the numbers of one never stopped: the shuffles, dropout and augmentation are seeded
//! per epoch, and the optimizer's state and the moving average are saved with the weights),
//! an exponential moving average of the weights that validation and checkpoints use, test-time
//! views in the final evaluation, runs of several stages with one epoch count and one best
//! checkpoint (the transfer recipe's head, then fine-tuning), and a time budget that chooses the
//! number of epochs from the speed of the very steps the loop takes. Our networks still work with
//! `Learner` (the `models` crate's `burn-train` feature).
//!
//! A reader finds, in the order a run goes through them:
//! - [`config`]: the TOML file, every key optional, unknown keys rejected; [`describe`] lists
//!   its network's layers;
//! - [`run`]: a whole run — data, split, run directory ([`run_dir`]), devices ([`placement`]) —
//!   handing over to the recipe the network calls for: [`images`] (a network trained from
//!   scratch) or [`transfer`] (a pretrained backbone, its [`features`] cached);
//! - [`stage`]: one stage of a run, fresh, within the time budget ([`planner`]) or resumed
//!   ([`resume`]);
//! - [`fit`]: the loop — epochs, validation, early stopping — taking [`step`]s with the
//!   [`optimizer`] at the rate the [`schedule`] gives, on [`examples`] of a [`network`], keeping
//!   a moving average ([`ema`]) or pulling the weights to one ([`lookahead`]);
//! - [`finish`]: the final evaluation ([`evaluate`]), `summary.json`, the pictures ([`report`])
//!   and `report.html` ([`html`]).
//!
//! Before a run, [`lr_find`] suggests a learning rate; after it, [`assess`] evaluates its model
//! again, on its test split or a labelled folder.
//!
//! Not here: network definitions (`models`), data loading (`data`), checkpoints, pretrained
//! weights and the device (`store`).

pub mod assess;
pub mod config;
pub mod describe;
pub mod ema;
pub mod evaluate;
pub mod examples;
pub mod features;
pub mod finish;
pub mod fit;
pub mod html;
pub mod images;
pub mod lookahead;
pub mod lr_find;
pub mod network;
pub mod optimizer;
pub mod placement;
pub mod planner;
pub mod report;
pub mod resume;
pub mod run;
pub mod run_dir;
pub mod schedule;
pub mod stage;
pub mod step;
pub mod transfer;
