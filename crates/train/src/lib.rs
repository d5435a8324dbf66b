//! The training recipes behind the `train` binary: the config file ([`config`]), the loop
//! ([`fit`]), what it trains ([`network`]), checkpoints and run directories ([`checkpoint`],
//! [`run`]), and whole runs ([`recipe`]). Also the compile-time choice of device ([`device`]),
//! which `infer` shares.
//!
//! Not here: network definitions (`models`) or data loading (`data`).

pub mod checkpoint;
pub mod config;
pub mod device;
pub mod fit;
pub mod network;
pub mod recipe;
pub mod run;
