//! Dead-letter queue: capture filters, replay pacing and triggers, the at-least-once invariant
//! under concurrent capture and replay, and a round trip through a real axum `Router`.
//!
//! Time is paused tokio time throughout: nothing sleeps on the wall clock.
#![cfg(feature = "dlq")]

#[path = "../support/mod.rs"]
mod support;

mod capture;
mod fixtures;
mod replay;
mod round_trip;
mod streaming;
