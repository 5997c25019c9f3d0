//! The recommended configurations the goals are measured with, in one place.
//!
//! Every `recommended …` policy of the simulator is built here, so a change of the recommended
//! settings or of the bounds a user would pick for them is one edit:
//!
//! - [`builder`]: the recommended settings (`ThrottleConfig::default()`'s, with the concurrency
//!   section's defaults), 1 s window, fixed jitter seeds so runs are reproducible;
//! - [`SERVICE_WIDE`]: bounds of a service-wide limit, as multiples of the healthy capacity per
//!   window (the `recommended (check+record, …)` and `recommended (acquire, …)` policies, with a
//!   shared key or one key per client);
//! - [`PER_CLIENT_QUOTA`]: bounds of a per-client quota, as multiples of each client's fair share
//!   of the healthy capacity per window (the `recommended` policy, today's deployment).
//!
//! The reference policies (`baldur`, `ladder only`, the static limits) keep their own bounds
//! in `policy.rs`: they describe fixed deployments, not the one being tuned.

use std::time::Duration;

use tower_adaptive_throttle::{ConcurrencyConfig, ThrottleConfig, ThrottleConfigBuilder};

use crate::model::Scenario;

/// Bounds of the rate axis's adaptive limit, as multiples of a reference rate per window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateBounds {
    /// Initial limit.
    pub initial: f64,
    /// Floor.
    pub min: f64,
    /// Ceiling.
    pub max: f64,
}

/// A service-wide limit: multiples of the healthy capacity per window (start at it — a user
/// knows roughly what the service takes — floor 5 %, ceiling 2×).
pub const SERVICE_WIDE: RateBounds = RateBounds {
    initial: 1.0,
    min: 0.05,
    max: 2.0,
};

/// A per-client quota: multiples of each client's fair share of the healthy capacity per
/// window (start at 2×, floor 0.5×, ceiling 4×).
pub const PER_CLIENT_QUOTA: RateBounds = RateBounds {
    initial: 2.0,
    min: 0.5,
    max: 4.0,
};

/// The rate axis's window of every recommended policy.
pub const WINDOW: Duration = Duration::from_secs(1);

/// What the configured limit bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The whole service's admissions per window ([`SERVICE_WIDE`] × healthy capacity).
    ServiceWide,
    /// One client's admissions per window ([`PER_CLIENT_QUOTA`] × its fair share).
    PerClientQuota,
}

impl RateBounds {
    /// Sets the builder's window and bounds for a reference rate of `reference` requests per
    /// second.
    pub fn apply(self, b: ThrottleConfigBuilder, reference: f64) -> ThrottleConfigBuilder {
        let per_window = reference * WINDOW.as_secs_f64();
        b.window(WINDOW)
            .initial_limit((self.initial * per_window) as u32)
            .min_limit((self.min * per_window).max(1.0) as u32)
            .max_limit((self.max * per_window) as u32)
    }
}

/// The recommended settings: `ThrottleConfig::default()`'s, the concurrency section's defaults,
/// and fixed jitter seeds.
pub fn builder() -> ThrottleConfigBuilder {
    ThrottleConfig::builder().jitter_seed(1).concurrency(
        ConcurrencyConfig::default()
            .to_builder()
            .jitter_seed(1)
            .build()
            .expect("valid"),
    )
}

/// The recommended configuration for `scenario` with its limit bounded for `scope`.
pub fn config(scenario: &Scenario, scope: LimitScope) -> ThrottleConfig {
    let c = scenario.healthy_capacity();
    let b = match scope {
        LimitScope::ServiceWide => SERVICE_WIDE.apply(builder(), c),
        LimitScope::PerClientQuota => {
            PER_CLIENT_QUOTA.apply(builder(), c / f64::from(scenario.clients.max(1)))
        }
    };
    b.build()
        .expect("recommended simulator configurations are valid")
}
