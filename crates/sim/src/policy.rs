//! The admission policies compared side by side.

use std::time::Duration;

use tower_adaptive_throttle::config::RateStrategy;
use tower_adaptive_throttle::{ConcurrencyConfig, ThrottleConfig, ThrottleConfigBuilder};

use crate::model::Scenario;

/// Which key the rate axis counts a request against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keying {
    /// One key for the whole service: the rate limit is a capacity guard in admissions per
    /// window.
    Shared,
    /// One key per client: the rate limit is a per-client quota (fairness).
    PerClient,
}

/// How a policy admits.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum PolicyKind {
    /// Admits everything.
    Unlimited,
    /// Knows the true capacity: admits a request only when a worker is free for it at once.
    Oracle,
    /// An [`AdaptiveThrottle`](tower_adaptive_throttle::AdaptiveThrottle) driven like the HTTP layer drives it:
    /// `acquire` on arrival (concurrency, then rate), `record_response` and the permit's
    /// outcome on completion.
    Throttle {
        /// Its configuration.
        config: ThrottleConfig,
        /// Keys of the rate axis.
        keying: Keying,
    },
}

/// A named policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name in the table and plots.
    pub name: &'static str,
    /// How it admits.
    pub kind: PolicyKind,
    /// Whether its limit adapts (for the "adaptive beats static" comparison).
    pub adaptive: bool,
}

/// A rate axis that never binds (for concurrency-only policies).
fn rate_off(b: ThrottleConfigBuilder) -> ThrottleConfigBuilder {
    b.min_limit(1_000_000)
        .initial_limit(1_000_000)
        .max_limit(1_000_000)
        .window(Duration::from_secs(1))
}

/// A rate axis guarding capacity: one shared key, admissions per second, bounds scaled to the
/// healthy capacity `c` (start at half of it, floor 5 %, ceiling 2×).
fn shared_rate(b: ThrottleConfigBuilder, c: f64) -> ThrottleConfigBuilder {
    b.window(Duration::from_secs(1))
        .initial_limit((c * 0.5) as u32)
        .min_limit((c * 0.05).max(1.0) as u32)
        .max_limit((c * 2.0) as u32)
        .jitter_seed(1)
}

fn build(b: ThrottleConfigBuilder) -> ThrottleConfig {
    b.build().expect("simulator policies are valid")
}

impl Policy {
    /// No limit at all.
    pub fn unlimited() -> Self {
        Self {
            name: "no limit",
            kind: PolicyKind::Unlimited,
            adaptive: false,
        }
    }

    /// The oracle.
    pub fn oracle() -> Self {
        Self {
            name: "oracle",
            kind: PolicyKind::Oracle,
            adaptive: false,
        }
    }

    /// A fixed rate limit of `fraction ×` the healthy capacity, per second, on a shared key
    /// with smooth (GCRA) admission.
    pub fn static_rate(name: &'static str, scenario: &Scenario, fraction: f64) -> Self {
        let limit = ((scenario.healthy_capacity() * fraction) as u32).max(1);
        let cfg = build(
            ThrottleConfig::builder()
                .without_concurrency()
                .window(Duration::from_secs(1))
                .min_limit(limit)
                .initial_limit(limit)
                .max_limit(limit)
                .rate_strategy(RateStrategy::Gcra {
                    burst_fraction: 0.05,
                }),
        );
        Self {
            name,
            kind: PolicyKind::Throttle {
                config: cfg,
                keying: Keying::Shared,
            },
            adaptive: false,
        }
    }

    /// `ThrottleConfig::baldur()` as a capacity guard (shared key, 1 s sliding window, bounds
    /// scaled to the service); the ladder and its inputs are Baldur's, exactly.
    pub fn baldur(scenario: &Scenario) -> Self {
        let cfg = build(shared_rate(
            ThrottleConfig::baldur_builder(),
            scenario.healthy_capacity(),
        ));
        Self {
            name: "baldur",
            kind: PolicyKind::Throttle {
                config: cfg,
                keying: Keying::Shared,
            },
            adaptive: true,
        }
    }

    /// The recommended ladder (`ThrottleConfig::default()`'s rate-axis inputs) used alone as a
    /// capacity guard on a shared key: what a user gets who keeps the rate axis as the guard.
    pub fn recommended_ladder(scenario: &Scenario) -> Self {
        let cfg = build(shared_rate(
            ThrottleConfig::builder().without_concurrency(),
            scenario.healthy_capacity(),
        ));
        Self {
            name: "ladder only",
            kind: PolicyKind::Throttle {
                config: cfg,
                keying: Keying::Shared,
            },
            adaptive: true,
        }
    }

    /// The recommended deployment: `ThrottleConfig::default()` — the concurrency axis as the
    /// capacity guard (its defaults, untouched) and the rate axis as a per-client quota of
    /// twice each client's fair share of the healthy capacity per second, with the recommended
    /// ladder.
    pub fn recommended(scenario: &Scenario) -> Self {
        let fair = scenario.healthy_capacity() / f64::from(scenario.clients.max(1));
        let cfg = build(
            ThrottleConfig::builder()
                .window(Duration::from_secs(1))
                .initial_limit((2.0 * fair) as u32)
                .min_limit((0.5 * fair).max(1.0) as u32)
                .max_limit((4.0 * fair) as u32)
                .jitter_seed(1)
                .concurrency(
                    ConcurrencyConfig::default()
                        .to_builder()
                        .jitter_seed(1)
                        .build()
                        .expect("valid"),
                ),
        );
        Self {
            name: "recommended",
            kind: PolicyKind::Throttle {
                config: cfg,
                keying: Keying::PerClient,
            },
            adaptive: true,
        }
    }

    /// The concurrency axis alone with `cfg`.
    pub fn concurrency(name: &'static str, cfg: ConcurrencyConfig) -> Self {
        let cfg = build(rate_off(ThrottleConfig::builder()).concurrency(cfg));
        Self {
            name,
            kind: PolicyKind::Throttle {
                config: cfg,
                keying: Keying::Shared,
            },
            adaptive: true,
        }
    }

    /// Every policy of the report, in order: no limit, static (healthy), static (degraded),
    /// Baldur, the recommended ladder alone, the recommended deployment, Netflix Gradient2,
    /// AIMD, oracle.
    pub fn standard_set(scenario: &Scenario) -> Vec<Self> {
        vec![
            Self::unlimited(),
            Self::static_rate("static healthy", scenario, 0.95),
            Self::static_rate("static degraded", scenario, 0.475),
            Self::baldur(scenario),
            Self::recommended_ladder(scenario),
            Self::recommended(scenario),
            Self::concurrency(
                "gradient2",
                ConcurrencyConfig::netflix_gradient2()
                    .to_builder()
                    .jitter_seed(1)
                    .build()
                    .expect("valid"),
            ),
            Self::concurrency(
                "aimd",
                ConcurrencyConfig::aimd()
                    .to_builder()
                    .jitter_seed(1)
                    .build()
                    .expect("valid"),
            ),
            Self::oracle(),
        ]
    }
}
