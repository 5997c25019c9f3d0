//! The throttle itself through its public API, on a manual clock: the control ladder,
//! governance inputs, invariants for any input, memory bounds, the audit trail and exact counts
//! under concurrency.

#[path = "../support/mod.rs"]
mod support;

mod accepted_configs;
mod audit;
mod concurrency;
mod governance;
mod memory;
mod properties;
mod shares;
mod throttle;
mod window;
