//! The outbound rate-limit coordinator: the cooldown ladder and its jitter, the `Retry-After`
//! floor and ceiling, serve-or-defer, the canary, the feedback (events, stats, pressure, the
//! inbound throttle link), `Retry-After` parsing as a property, and a real client against a
//! real upstream on 127.0.0.1.
//!
//! Everything but the end-to-end tests runs on paused tokio time against an in-process stub
//! upstream: nothing sleeps on the wall clock.

#[path = "../support/mod.rs"]
mod support;

mod canary;
mod cooldown;
mod e2e;
mod feedback;
mod retry_after;
mod serve_or_defer;
mod shared;
mod stub;
