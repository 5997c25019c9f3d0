//! [`ThrottleConfigBuilder`]: consuming setters, checked once in `build()`. Both builders share
//! these setters; where the recommended configuration and the Baldur preset start from different
//! values, a setter's docs give both.

use std::time::Duration;

use super::{
    Adaptation, ConcurrencyConfig, ConfigError, IncreaseSizing, KeyQuota, RateStrategy, SignalKind,
    SlaTrigger, ThrottleConfig, TrendEstimator,
};

/// Consuming builder for [`ThrottleConfig`]; nothing is checked until [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct ThrottleConfigBuilder {
    pub(super) cfg: ThrottleConfig,
}

impl ThrottleConfigBuilder {
    crate::util::setters! {
        /// Starting limit (default 100). Must lie in `[min_limit, max_limit]`.
        initial_limit: u32;
        /// Floor of the limit (default 10). Must be at least 1.
        min_limit: u32;
        /// Ceiling of the limit (default 500).
        max_limit: u32;
        /// Rate-axis window (default 60 s); the limit counts admissions per key per window.
        window: Duration;
        /// Minimum time between two adjustments (default 500 ms).
        sample_interval: Duration;
        /// SLA warning latency (default 200 ms).
        sla_warning: Duration;
        /// SLA critical latency (default 500 ms); must exceed `sla_warning`.
        sla_critical: Duration;
        /// Multiplier on an SLA warning or rising trend (default 0.9), in `(0, 1)`.
        decrease_ratio: f64;
        /// Multiplier on an SLA critical (default 0.7), in `(0, 1)`.
        critical_decrease_ratio: f64;
        /// Additive increase (default 1), also the least proportional increase.
        increase_step: u32;
        /// Trend above which the limit is cut (recommended 2.0, a distance from no-load; Baldur
        /// 0.1, the EMA's relative step).
        gradient_up_threshold: f64;
        /// Trend below which the limit grows (recommended 1.0; Baldur −0.05).
        gradient_down_threshold: f64;
        /// EMA weight of a new sample (default 0.5), in `(0, 1]`.
        smoothing_factor: f64;
        /// Samples before any gradient is reported (default 3).
        min_samples: u32;
        /// Time between recovery ramp stages (default 30 s).
        recovery_stage_interval: Duration;
        /// Largest random delay before a ramp's first stage, to spread a fleet (default 0).
        recovery_jitter: Duration;
        /// Which statistic triggers the SLA rules (recommended: the interval's 90th percentile;
        /// Baldur: the triggering sample).
        sla_trigger: SlaTrigger;
        /// Which trend estimator feeds the gradient rules (recommended: the no-load baseline;
        /// Baldur: the signal's own gradient).
        trend: TrendEstimator;
        /// How increases are sized (recommended: 5 % of the limit; Baldur: `increase_step`).
        increase_sizing: IncreaseSizing;
        /// Which latency signal is kept (default: the EMA).
        signal: SignalKind;
        /// Which strategy the rate axis admits with (recommended: GCRA with a burst of half the
        /// limit; Baldur: the exact sliding log of admission timestamps).
        rate_strategy: RateStrategy;
        /// Whether the ladder ignores samples of requests admitted before the latest change of
        /// the limit (their start is `now − rtt`), and waits for `min_samples` fresh ones
        /// before it decides again: one decision per round trip, as TCP cuts once per window.
        skip_stale_samples: bool;
        /// Most keys tracked at once (default 100 000); idle keys are evicted first.
        max_keys: usize;
        /// Capacity of the event channel (default 1024; 1 to [`MAX_EVENT_CAPACITY`](crate::config::MAX_EVENT_CAPACITY)).
        event_capacity: usize;
        /// How the limit is steered (recommended: the capacity estimate; Baldur: the ladder).
        adaptation: Adaptation;
        /// What one key may use of the limit (recommended: a fair share of the service-wide
        /// limit; Baldur: the whole limit per key).
        key_quota: KeyQuota;
    }

    /// Recovery ramp stages as fractions of the pre-incident base (default 0.8, 0.9, 1.0):
    /// non-empty, strictly increasing, each in `(0, 1]`.
    pub fn recovery_stages(mut self, stages: &[f64]) -> Self {
        self.cfg.recovery_stages = stages.to_vec();
        self
    }

    /// Turns the concurrency axis on with `cfg` (see [`ConcurrencyConfig`]).
    pub fn concurrency(mut self, cfg: ConcurrencyConfig) -> Self {
        self.cfg.concurrency = Some(cfg);
        self
    }

    /// Turns the concurrency axis off (the rate axis alone guards the service).
    pub fn without_concurrency(mut self) -> Self {
        self.cfg.concurrency = None;
        self
    }

    /// Turns the cost axis on with `cfg`: a budget of units per key per window, reserved before
    /// each request and settled after it (see [`CostConfig`](super::CostConfig)).
    pub fn cost(mut self, cfg: super::CostConfig) -> Self {
        self.cfg.cost = Some(cfg);
        self
    }

    /// Turns the cost axis off (the default).
    pub fn without_cost(mut self) -> Self {
        self.cfg.cost = None;
        self
    }

    /// Fixes the seed of the ramp jitter so runs are reproducible (default: random per throttle).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.cfg.jitter_seed = Some(seed);
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule and its values: `min_limit == 0`;
    /// not `min ≤ initial ≤ max`; `sla_critical ≤ sla_warning`; a ratio outside `(0, 1)`; a zero
    /// window, sample interval or stage interval; smoothing outside `(0, 1]`;
    /// `gradient_down_threshold ≥ gradient_up_threshold`; empty or non-increasing recovery
    /// stages; a fraction of the pluggable inputs out of range; zero `max_keys`; an
    /// `event_capacity` of 0 or above [`MAX_EVENT_CAPACITY`](crate::config::MAX_EVENT_CAPACITY).
    /// Every range is listed in [`ThrottleConfig`]'s docs.
    pub fn build(self) -> Result<ThrottleConfig, ConfigError> {
        self.cfg.validate()?;
        Ok(self.cfg)
    }
}
