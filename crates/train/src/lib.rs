//! The training recipes behind the `train` binary: the config file ([`config`]), the loop
//! ([`fit`]) and its moving average of the weights ([`ema`]), what it trains ([`network`]), the transfer recipe and its feature cache
//! ([`transfer`], [`features`]), checkpoints and run directories ([`checkpoint`],
//! [`run`]), the pretrained EfficientNet-Lite0 weights ([`pretrained`]), and whole runs
//! ([`recipe`]). Also the compile-time choice of device ([`device`]) and the allocator setting
//! for the CPU backend ([`allocator`]), which `infer` shares.
//!
//! Not here: network definitions (`models`) or data loading (`data`).

pub mod allocator;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod ema;
pub mod features;
pub mod fit;
pub mod network;
pub mod pretrained;
pub mod recipe;
pub mod report;
pub mod resume;
pub mod run;
pub mod schedule;
pub mod transfer;
