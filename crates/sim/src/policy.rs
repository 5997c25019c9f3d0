//! The admission policies compared side by side.

use std::time::Duration;

use tower_adaptive_throttle::config::{Adaptation, KeyQuota, RateStrategy};
use tower_adaptive_throttle::{ConcurrencyConfig, ThrottleConfig, ThrottleConfigBuilder};

use crate::model::Scenario;
use crate::recommended::{self, LimitScope};

/// How a throttle policy drives the [`AdaptiveThrottle`](tower_adaptive_throttle::AdaptiveThrottle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// What the HTTP layer does: [`acquire`](tower_adaptive_throttle::AdaptiveThrottle::acquire)
    /// on arrival (concurrency axis, then rate axis), `record_response` and the permit's
    /// outcome on completion.
    Acquire,
    /// The documented two-step API:
    /// [`check`](tower_adaptive_throttle::AdaptiveThrottle::check) before the work and
    /// [`record_response`](tower_adaptive_throttle::AdaptiveThrottle::record_response) after it.
    /// No permits, so a configured concurrency axis is never consulted; a rejected request
    /// records nothing.
    TwoStep,
}

impl Path {
    /// Both paths, acquire first.
    pub const BOTH: [Path; 2] = [Path::Acquire, Path::TwoStep];

    /// The label used in policy names and tables: `acquire` or `check+record`.
    pub const fn label(self) -> &'static str {
        match self {
            Path::Acquire => "acquire",
            Path::TwoStep => "check+record",
        }
    }
}

/// Which key the rate axis counts a request against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keying {
    /// One key for the whole service: the rate limit is a capacity guard in admissions per
    /// window.
    Shared,
    /// One key per client: the rate limit is a per-client quota (fairness).
    PerClient,
}

impl Keying {
    /// Both keyings, shared first.
    pub const BOTH: [Keying; 2] = [Keying::Shared, Keying::PerClient];

    /// The label used in policy names and tables: `shared key` or `per client`.
    pub const fn label(self) -> &'static str {
        match self {
            Keying::Shared => "shared key",
            Keying::PerClient => "per client",
        }
    }

    /// Keys the rate axis sees in `scenario`.
    pub fn keys(self, scenario: &Scenario) -> u32 {
        match self {
            Keying::Shared => 1,
            Keying::PerClient => scenario.clients.max(1),
        }
    }
}

/// How a policy admits.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum PolicyKind {
    /// Admits everything.
    Unlimited,
    /// Knows the true capacity: admits a request only when a worker is free for it at once.
    Oracle,
    /// An [`AdaptiveThrottle`](tower_adaptive_throttle::AdaptiveThrottle) driven along `path`:
    /// like the HTTP layer drives it (`acquire` on arrival, `record_response` and the permit's
    /// outcome on completion), or through the two-step API (`check`, then `record_response`).
    Throttle {
        /// Its configuration.
        config: ThrottleConfig,
        /// Keys of the rate axis.
        keying: Keying,
        /// How it is driven.
        path: Path,
    },
}

/// A named policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name in the table and plots.
    pub name: String,
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

/// A throttle policy on the acquire path (today's driving).
fn throttle(name: &str, config: ThrottleConfig, keying: Keying, adaptive: bool) -> Policy {
    Policy {
        name: name.to_string(),
        kind: PolicyKind::Throttle {
            config,
            keying,
            path: Path::Acquire,
        },
        adaptive,
    }
}

impl Policy {
    /// No limit at all.
    pub fn unlimited() -> Self {
        Self {
            name: "no limit".to_string(),
            kind: PolicyKind::Unlimited,
            adaptive: false,
        }
    }

    /// The oracle.
    pub fn oracle() -> Self {
        Self {
            name: "oracle".to_string(),
            kind: PolicyKind::Oracle,
            adaptive: false,
        }
    }

    /// A fixed rate limit of `fraction ×` the healthy capacity, per second, on a shared key
    /// with smooth (GCRA) admission.
    pub fn static_rate(name: &str, scenario: &Scenario, fraction: f64) -> Self {
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
        throttle(name, cfg, Keying::Shared, false)
    }

    /// `ThrottleConfig::baldur()` as a capacity guard (shared key, 1 s sliding window, bounds
    /// scaled to the service); the ladder and its inputs are Baldur's, exactly.
    pub fn baldur(scenario: &Scenario) -> Self {
        let cfg = build(shared_rate(
            ThrottleConfig::baldur_builder(),
            scenario.healthy_capacity(),
        ));
        throttle("baldur", cfg, Keying::Shared, true)
    }

    /// The ladder with the recommended configuration's inputs (interval percentile, no-load
    /// trend, proportional increases) used alone as a capacity guard on a shared key: the rate
    /// axis as it was steered before the capacity estimate.
    pub fn recommended_ladder(scenario: &Scenario) -> Self {
        let cfg = build(shared_rate(
            ThrottleConfig::builder()
                .without_concurrency()
                .adaptation(Adaptation::Ladder)
                .key_quota(KeyQuota::WholeLimit),
            scenario.healthy_capacity(),
        ));
        throttle("ladder only", cfg, Keying::Shared, true)
    }

    /// The recommended deployment: `ThrottleConfig::default()` — the concurrency axis as the
    /// capacity guard (its defaults, untouched), the rate axis a service-wide limit that
    /// follows the capacity estimate ([`recommended::SERVICE_WIDE`] bounds), each client's
    /// quota its fair share of it — driven like the HTTP layer drives it.
    pub fn recommended(scenario: &Scenario) -> Self {
        let cfg = recommended::config(scenario, LimitScope::ServiceWide);
        throttle("recommended", cfg, Keying::PerClient, true)
    }

    /// The name of [`Policy::recommended_on`]`(_, path, keying)`, e.g.
    /// `recommended (check+record, shared key)`.
    pub fn recommended_name(path: Path, keying: Keying) -> String {
        format!("recommended ({}, {})", path.label(), keying.label())
    }

    /// The recommended configuration with the bounds a user would pick for a service-wide
    /// limit on a 1 s window ([`recommended::SERVICE_WIDE`]: start at the healthy capacity,
    /// floor 5 %, ceiling 2×), driven along `path`, with one shared key (the rate
    /// axis as a capacity guard) or one key per client. Named by
    /// [`recommended_name`](Self::recommended_name).
    pub fn recommended_on(scenario: &Scenario, path: Path, keying: Keying) -> Self {
        let cfg = recommended::config(scenario, LimitScope::ServiceWide);
        Self {
            name: Self::recommended_name(path, keying),
            kind: PolicyKind::Throttle {
                config: cfg,
                keying,
                path,
            },
            adaptive: true,
        }
    }

    /// The concurrency axis alone with `cfg`.
    pub fn concurrency(name: &str, cfg: ConcurrencyConfig) -> Self {
        let cfg = build(rate_off(ThrottleConfig::builder()).concurrency(cfg));
        throttle(name, cfg, Keying::Shared, true)
    }

    /// The path of a throttle policy (`None` for no limit and the oracle).
    pub fn path(&self) -> Option<Path> {
        match &self.kind {
            PolicyKind::Throttle { path, .. } => Some(*path),
            _ => None,
        }
    }

    /// This policy driven along `path`, renamed: `acquire` and `check+record` swap in a name
    /// that says its path; another name gains ` (check+record)` or ` (acquire)`. No limit and
    /// the oracle are returned unchanged.
    pub fn on_path(mut self, path: Path) -> Self {
        let PolicyKind::Throttle { path: p, .. } = &mut self.kind else {
            return self;
        };
        if *p == path {
            return self;
        }
        let (from, to) = (p.label(), path.label());
        *p = path;
        self.name = if self.name.contains(&format!("({from}")) {
            self.name.replace(&format!("({from}"), &format!("({to}"))
        } else {
            format!("{} ({to})", self.name)
        };
        self
    }

    /// Every policy of the report, in order: no limit, static (healthy), static (degraded),
    /// Baldur, the recommended ladder alone, the recommended deployment, the recommended
    /// configuration on the two-step path with a shared key and with one key per client,
    /// Netflix Gradient2, AIMD, oracle. All but the two-step ones are driven like the HTTP
    /// layer drives the throttle.
    pub fn standard_set(scenario: &Scenario) -> Vec<Self> {
        vec![
            Self::unlimited(),
            Self::static_rate("static healthy", scenario, 0.95),
            Self::static_rate("static degraded", scenario, 0.475),
            Self::baldur(scenario),
            Self::recommended_ladder(scenario),
            Self::recommended(scenario),
            Self::recommended_on(scenario, Path::TwoStep, Keying::Shared),
            Self::recommended_on(scenario, Path::TwoStep, Keying::PerClient),
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

    /// The standard set with every throttle policy on each of `paths` (in that order, one
    /// after the other), without duplicates: the report of a path comparison.
    pub fn standard_set_on(scenario: &Scenario, paths: &[Path]) -> Vec<Self> {
        let mut out: Vec<Self> = Vec::new();
        for p in Self::standard_set(scenario) {
            let variants: Vec<Self> = if p.path().is_some() {
                paths.iter().map(|&path| p.clone().on_path(path)).collect()
            } else {
                vec![p]
            };
            for v in variants {
                if !out.iter().any(|o| o.name == v.name) {
                    out.push(v);
                }
            }
        }
        out
    }

    /// The recommended configuration on both paths, with a shared key and with one key per
    /// client ([`recommended_on`](Self::recommended_on)), and the oracle: the policies the goals
    /// are measured with.
    pub fn goal_set(scenario: &Scenario) -> Vec<Self> {
        let mut v: Vec<Self> = Path::BOTH
            .iter()
            .flat_map(|&path| {
                Keying::BOTH
                    .iter()
                    .map(move |&keying| Self::recommended_on(scenario, path, keying))
            })
            .collect();
        v.push(Self::oracle());
        v
    }
}
