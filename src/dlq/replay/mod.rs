//! Replay: [`Replayer`] sends captured requests through a tower service in paced batches while
//! the throttle is healthy.
//!
//! - `config`: [`ReplayConfig`], its builder and the pacing table ([`pace_multiplier`]);
//! - `health`: [`ReplayHealth`], when replay may run, and [`StopReason`];
//! - `replayer`: [`Replayer`] and the success classifier;
//! - `run`: one paced run and its [`ReplayReport`];
//! - `auto`: [`Replayer::spawn_auto_replay`] and its handle, [`AutoReplay`].

mod auto;
mod config;
mod health;
mod replayer;
mod run;

pub use auto::AutoReplay;
pub use config::{
    pace_multiplier, ReplayConfig, ReplayConfigBuilder, DEFAULT_BATCH_SIZE, DEFAULT_INTERVAL,
    DEFAULT_MIN_RECOVERY,
};
pub use health::{ReplayHealth, StopReason};
pub use replayer::{success_or_redirect, ReplayClassifier, Replayer};
pub use run::ReplayReport;
