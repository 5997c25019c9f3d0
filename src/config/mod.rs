//! Configuration: [`ThrottleConfig`], its builder, and the errors `build()` reports.
//!
//! Two starting points:
//!
//! - [`ThrottleConfig::baldur()`] / [`ThrottleConfig::baldur_builder()`] reproduce the Baldur
//!   Adaptive Throttle's documented ladder number for number: the latency of the single response
//!   that opens an adjustment tick triggers the SLA rules, the per-sample EMA gradient feeds the
//!   trend rules, increases are `+increase_step`, and the rate axis is a sliding log of each
//!   key's admission timestamps (exact, like Baldur's window).
//! - [`ThrottleConfig::default()`] / [`ThrottleConfig::builder()`] are the crate's recommended
//!   configuration: the same ladder structure fed by statistics aggregated over each sample
//!   interval, so ordinary latency noise does not walk the limit towards its floor. See
//!   [`ThrottleConfig::default`] for the exact choices.
//!
//! Every constant is configurable on both builders and every value is checked by `build()`.

use std::time::Duration;

mod builder;
mod capacity;
mod concurrency;
mod cost;
mod defaults;
mod error;
#[cfg(feature = "serde")]
mod serde;
#[cfg(test)]
mod tests;
mod validate;

#[cfg(feature = "serde")]
pub(crate) use self::serde::duration_ms;
pub use builder::ThrottleConfigBuilder;
pub use capacity::*;
pub use concurrency::*;
pub use cost::*;
pub use defaults::*;
pub use error::ConfigError;

/// Which latency statistic triggers the SLA rules (the first two rungs of the ladder).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(::serde::Serialize, ::serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SlaTrigger {
    /// The latency of the response that opened the adjustment tick (Baldur): one slow outlier
    /// is enough to cut the limit.
    TriggeringSample,
    /// A quantile in `(0, 1]` of every sample recorded since the last adjustment, e.g. `0.9`.
    IntervalPercentile(f64),
}

/// Which estimate of the latency trend feeds the gradient rules (rungs three and four).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(::serde::Serialize, ::serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TrendEstimator {
    /// The latency signal's own gradient: the per-sample EMA step (Baldur) or, with
    /// [`SignalKind::TimeBucketed`], recent-half versus previous-half window averages.
    Signal,
    /// Relative change of this interval's mean latency against the previous interval's.
    IntervalMeans,
    /// Relative distance of this interval's mean latency from a slow EMA of interval means
    /// (`long_smoothing` is that EMA's weight per interval, in `(0, 1)`).
    LongShortBaseline {
        /// Weight of each new interval mean in the long baseline.
        long_smoothing: f64,
    },
    /// Relative distance of this interval's mean latency from a no-load baseline: the baseline
    /// drops at once to any lower interval mean and otherwise rises by at most `rise_per_interval`
    /// (a fraction, in `[0, 1)`) per interval, so queueing the throttle causes does not become
    /// the new normal within seconds, while a lasting shift (a slower dependency) is accepted
    /// within a minute. The trend is then "how much queueing", not "did it just change", so the
    /// thresholds are distances from no-load (e.g. cut above +100 %, grow below +50 %) and a
    /// flat latency near no-load keeps growing the limit: no drift towards the floor.
    NoLoadBaseline {
        /// Largest relative rise of the baseline per interval.
        rise_per_interval: f64,
    },
}

/// How much a falling trend adds to the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(::serde::Serialize, ::serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum IncreaseSizing {
    /// `limit + increase_step` (Baldur).
    Step,
    /// `limit + max(increase_step, ceil(limit × fraction))`, `fraction` in `(0, 1]`.
    Proportional(f64),
}

/// Which latency signal the throttle keeps (the smoothed RTT it reports and the
/// [`TrendEstimator::Signal`] gradient).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(::serde::Serialize, ::serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SignalKind {
    /// Exponential moving average with `smoothing_factor` (Baldur's `GradientCalculator`).
    Ema,
    /// One bucket per second in a fixed ring over `window` (Baldur's time-bucketed calculator):
    /// fixed memory whatever the traffic.
    TimeBucketed {
        /// Span of the ring, at least two seconds.
        #[cfg_attr(feature = "serde", serde(with = "duration_ms", rename = "window_ms"))]
        window: Duration,
    },
}

/// Which ThrottleKit strategy the rate axis admits with; the adaptive limit is its limit per
/// `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(::serde::Serialize, ::serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RateStrategy {
    /// Sub-bucketed sliding window (estimate error at most one sub-bucket; fixed memory per key).
    SlidingWindow {
        /// Sub-buckets per window.
        buckets: u32,
    },
    /// Exact sliding log (memory grows with the limit): Baldur's window, and the one
    /// [`ThrottleConfig::baldur`] uses.
    SlidingWindowLog,
    /// Epoch-aligned fixed window (up to twice the limit across one boundary).
    FixedWindow,
    /// GCRA: `limit` per `window` spaced evenly, with a burst of `ceil(limit × burst_fraction)`.
    Gcra {
        /// Burst as a fraction of the limit, in `(0, 1]`.
        burst_fraction: f64,
    },
    /// Token bucket holding `limit` tokens, refilled at `limit` per `window`.
    TokenBucket,
}

/// A validated throttle configuration. Make one with [`ThrottleConfig::builder`] (recommended),
/// [`ThrottleConfig::baldur_builder`], or take [`ThrottleConfig::default`] /
/// [`ThrottleConfig::baldur`] as they are.
///
/// With the `serde` feature it (de)serialises as a flat object whose durations are integer
/// milliseconds (`window_ms`, `sample_interval_ms`, …); missing fields take the recommended
/// defaults, and deserialisation runs the same checks as `build()`.
///
/// # Ranges
///
/// What `build()` and deserialisation accept; anything else is a [`ConfigError`] naming the
/// value. Every accepted value is safe: durations up to `Duration::MAX` and counts up to their
/// type's maximum saturate rather than overflow, and nothing allocates ahead of traffic beyond
/// the bounds below.
///
/// | setting | accepted |
/// |---|---|
/// | `min_limit`, `initial_limit`, `max_limit` | `1 ≤ min ≤ initial ≤ max ≤ u32::MAX` |
/// | `window` | at least 1 ms |
/// | `sample_interval`, `recovery_stage_interval` | more than zero |
/// | `sla_warning`, `sla_critical` | `sla_warning < sla_critical` |
/// | `recovery_jitter` | any |
/// | `decrease_ratio`, `critical_decrease_ratio` | `(0, 1)` |
/// | `smoothing_factor` | `(0, 1]` |
/// | `gradient_down_threshold`, `gradient_up_threshold` | finite, `down < up` |
/// | `increase_step` | at least 1 |
/// | `min_samples` | any |
/// | `recovery_stages` | not empty, each in `(0, 1]`, increasing |
/// | `SlaTrigger::IntervalPercentile` | `(0, 1]` |
/// | `TrendEstimator::LongShortBaseline::long_smoothing` | `(0, 1)` |
/// | `TrendEstimator::NoLoadBaseline::rise_per_interval` | `[0, 1)` |
/// | `IncreaseSizing::Proportional` | `(0, 1]` |
/// | `SignalKind::TimeBucketed::window` | at least 2 s |
/// | `RateStrategy::SlidingWindow::buckets` | `1 ≤ buckets ≤ min(window in ms, 100 000)` |
/// | `RateStrategy::Gcra::burst_fraction` | `(0, 1]` |
/// | `max_keys` | at least 1 (memory grows with the keys actually seen, up to it) |
/// | `event_capacity` | `1 ..= MAX_EVENT_CAPACITY` (65 536; allocated up front) |
/// | `KeyQuota::Fixed` | at least 1 |
/// | [`CapacityEstimate`] | in its docs; each value names its range in the error |
/// | [`CostConfig`] | `budget` in `1 ..= u32::MAX`, `window` at least 1 ms, `unit` 1–32 of `a-z 0-9 - _` |
/// | [`ConcurrencyConfig`] | in its docs; `min_rtt_probe.request_count` at most `MAX_PROBE_REQUEST_COUNT` (100 000) |
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(::serde::Serialize, ::serde::Deserialize),
    serde(remote = "Self", default, deny_unknown_fields)
)]
pub struct ThrottleConfig {
    pub(crate) initial_limit: u32,
    pub(crate) min_limit: u32,
    pub(crate) max_limit: u32,
    #[cfg_attr(feature = "serde", serde(with = "duration_ms", rename = "window_ms"))]
    pub(crate) window: Duration,
    #[cfg_attr(
        feature = "serde",
        serde(with = "duration_ms", rename = "sample_interval_ms")
    )]
    pub(crate) sample_interval: Duration,
    #[cfg_attr(
        feature = "serde",
        serde(with = "duration_ms", rename = "sla_warning_ms")
    )]
    pub(crate) sla_warning: Duration,
    #[cfg_attr(
        feature = "serde",
        serde(with = "duration_ms", rename = "sla_critical_ms")
    )]
    pub(crate) sla_critical: Duration,
    pub(crate) decrease_ratio: f64,
    pub(crate) critical_decrease_ratio: f64,
    pub(crate) increase_step: u32,
    pub(crate) gradient_up_threshold: f64,
    pub(crate) gradient_down_threshold: f64,
    pub(crate) smoothing_factor: f64,
    pub(crate) min_samples: u32,
    pub(crate) recovery_stages: Vec<f64>,
    #[cfg_attr(
        feature = "serde",
        serde(with = "duration_ms", rename = "recovery_stage_interval_ms")
    )]
    pub(crate) recovery_stage_interval: Duration,
    #[cfg_attr(
        feature = "serde",
        serde(with = "duration_ms", rename = "recovery_jitter_ms")
    )]
    pub(crate) recovery_jitter: Duration,
    pub(crate) jitter_seed: Option<u64>,
    pub(crate) sla_trigger: SlaTrigger,
    pub(crate) trend: TrendEstimator,
    pub(crate) increase_sizing: IncreaseSizing,
    pub(crate) signal: SignalKind,
    pub(crate) rate_strategy: RateStrategy,
    /// Ignore, for the ladder, samples of requests admitted before the latest change of the
    /// limit (they describe the old limit).
    pub(crate) skip_stale_samples: bool,
    pub(crate) max_keys: usize,
    pub(crate) event_capacity: usize,
    /// The concurrency axis (capacity guard); `None` turns it off.
    pub(crate) concurrency: Option<ConcurrencyConfig>,
    /// How the limit is steered.
    pub(crate) adaptation: Adaptation,
    /// What one key may use of the limit.
    pub(crate) key_quota: KeyQuota,
    /// The cost axis (a budget per key per window); `None` turns it off.
    pub(crate) cost: Option<CostConfig>,
}

impl Default for ThrottleConfig {
    /// The recommended configuration, chosen by simulation (evidence, and the command that
    /// reproduces it, in `BENCHMARKS.md`).
    ///
    /// # Default
    ///
    /// **One capacity estimate, two axes.** The limit follows an estimate of what the service
    /// can take now ([`Adaptation::CapacityEstimate`], see [`CapacityEstimate`] for its rules),
    /// learned from completions, their latency and the work outstanding, so `check` +
    /// `record_response` alone protect a service. The rate axis is one service-wide limit per
    /// 1 s window (start 1000, floor 10, ceiling 1 000 000: set bounds for your service), and
    /// each key's quota is its fair share of it among the keys active in the window
    /// ([`KeyQuota::FairShare`]); a service-wide cell caps the aggregate at the limit plus a
    /// tenth of it, lower tiers holding back a reserve for critical work. The concurrency axis is
    /// on ([`ConcurrencyConfig::default`]): with permits
    /// ([`AdaptiveThrottle::acquire`](crate::AdaptiveThrottle::acquire), what the HTTP layer
    /// does) the in-flight limit is the self-clocking guard and the rate follows it.
    ///
    /// The SLA rules keep Baldur's numbers (500 ms interval, SLA 200 / 500 ms on the
    /// interval's 90th percentile, cuts ×0.9 / ×0.7, ramp 80 / 90 / 100 % every 30 s), and
    /// admission is smooth: GCRA with a burst of half a key's quota ([`RateStrategy::Gcra`]).
    /// The ladder's inputs ([`TrendEstimator::NoLoadBaseline`], thresholds 2.0 / 1.0,
    /// [`IncreaseSizing::Proportional`], `skip_stale_samples`) stay configured for
    /// [`Adaptation::Ladder`].
    ///
    /// Measured (full scale, seed 42, `BENCHMARKS.md`): through `acquire`, ≥ 94 % of an oracle's
    /// goodput in every phase of every scenario (≥ 98 % but during a slower dependency), settled
    /// p99 ≤ 1.5 × the unloaded p99, converged within 2 s of each capacity change,
    /// critical-tier success ≥ 99.9 %; through `check` + `record_response` alone, ≥ 91 % of the
    /// oracle's goodput in every phase of every capacity scenario (a slower dependency costs
    /// nothing), with critical-tier
    /// success 94–97 % under overload (a queue builds before each adjustment sees a change). Known weakness: clients that pace
    /// themselves by their quota still see 8–11 % of their requests rejected through a
    /// capacity halving.
    fn default() -> Self {
        Self {
            sla_trigger: SlaTrigger::IntervalPercentile(DEFAULT_SLA_PERCENTILE),
            trend: TrendEstimator::NoLoadBaseline {
                rise_per_interval: DEFAULT_BASELINE_RISE,
            },
            gradient_up_threshold: DEFAULT_GRADIENT_UP_THRESHOLD,
            gradient_down_threshold: DEFAULT_GRADIENT_DOWN_THRESHOLD,
            increase_sizing: IncreaseSizing::Proportional(DEFAULT_PROPORTIONAL_INCREASE),
            skip_stale_samples: true,
            rate_strategy: RateStrategy::Gcra {
                burst_fraction: DEFAULT_GCRA_BURST_FRACTION,
            },
            concurrency: Some(ConcurrencyConfig::default()),
            adaptation: Adaptation::CapacityEstimate(CapacityEstimate::default()),
            key_quota: KeyQuota::FairShare,
            window: DEFAULT_CAPACITY_WINDOW,
            initial_limit: DEFAULT_CAPACITY_INITIAL_LIMIT,
            min_limit: DEFAULT_CAPACITY_MIN_LIMIT,
            max_limit: DEFAULT_CAPACITY_MAX_LIMIT,
            ..Self::baldur_values()
        }
    }
}

impl ThrottleConfig {
    /// The recommended configuration, to adjust. See [`ThrottleConfig::default`].
    pub fn builder() -> ThrottleConfigBuilder {
        ThrottleConfigBuilder {
            cfg: Self::default(),
        }
    }

    /// Baldur's documented adaptive throttle, exactly.
    ///
    /// # Rate axis
    ///
    /// Like Baldur's, the window is a sliding log of each key's admission timestamps
    /// ([`RateStrategy::SlidingWindowLog`]): a request is admitted while fewer than `limit`
    /// admissions of its key lie in the trailing `window`; an admission leaves the window
    /// exactly `window` after it was made, so once a full window has passed the key's quota is
    /// whole again. `remaining` is what is left after the admission (0 when denied), and
    /// `reset_after` runs until the oldest admission in the window leaves it (its time plus
    /// `window`: Baldur's reset).
    ///
    /// **Memory.** The log grows with the limit: a key stores one 16-byte entry per distinct
    /// millisecond at which it was admitted within the window, so at most
    /// `min(max_limit, window in ms)` entries — 500 with Baldur's bounds and 60 s window, 8 KiB
    /// (a buffer of 512 entries); a key using a limit of 100 needs 1.6 KiB (a 2 KiB buffer).
    /// `max_keys` (100 000) bounds the keys, so the worst case, every tracked key admitted at
    /// the ceiling, is about 820 MB. Lower `max_keys` or `max_limit` to bound it for many busy
    /// keys, or choose the sub-bucketed window for fixed memory per key (44 bytes of buckets
    /// with [`DEFAULT_WINDOW_BUCKETS`]), at the cost of an estimate that can deny for up to one
    /// sub-bucket after a full window has passed:
    /// `.rate_strategy(RateStrategy::SlidingWindow { buckets: DEFAULT_WINDOW_BUCKETS })`.
    pub fn baldur() -> Self {
        Self::baldur_values()
    }

    /// Baldur's documented adaptive throttle, to adjust.
    pub fn baldur_builder() -> ThrottleConfigBuilder {
        ThrottleConfigBuilder {
            cfg: Self::baldur_values(),
        }
    }

    /// A builder starting from this configuration.
    pub fn to_builder(&self) -> ThrottleConfigBuilder {
        ThrottleConfigBuilder { cfg: self.clone() }
    }

    fn baldur_values() -> Self {
        Self {
            initial_limit: DEFAULT_INITIAL_LIMIT,
            min_limit: DEFAULT_MIN_LIMIT,
            max_limit: DEFAULT_MAX_LIMIT,
            window: DEFAULT_WINDOW,
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            sla_warning: DEFAULT_SLA_WARNING,
            sla_critical: DEFAULT_SLA_CRITICAL,
            decrease_ratio: DEFAULT_DECREASE_RATIO,
            critical_decrease_ratio: DEFAULT_CRITICAL_DECREASE_RATIO,
            increase_step: DEFAULT_INCREASE_STEP,
            gradient_up_threshold: BALDUR_GRADIENT_UP_THRESHOLD,
            gradient_down_threshold: BALDUR_GRADIENT_DOWN_THRESHOLD,
            smoothing_factor: DEFAULT_SMOOTHING_FACTOR,
            min_samples: DEFAULT_MIN_SAMPLES,
            recovery_stages: DEFAULT_RECOVERY_STAGES.to_vec(),
            recovery_stage_interval: DEFAULT_RECOVERY_STAGE_INTERVAL,
            recovery_jitter: Duration::ZERO,
            jitter_seed: None,
            sla_trigger: SlaTrigger::TriggeringSample,
            trend: TrendEstimator::Signal,
            increase_sizing: IncreaseSizing::Step,
            signal: SignalKind::Ema,
            rate_strategy: RateStrategy::SlidingWindowLog,
            skip_stale_samples: false,
            max_keys: DEFAULT_MAX_KEYS,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            concurrency: None,
            adaptation: Adaptation::Ladder,
            key_quota: KeyQuota::WholeLimit,
            cost: None,
        }
    }

    /// Initial limit.
    pub fn initial_limit(&self) -> u32 {
        self.initial_limit
    }
    /// Floor of the limit.
    pub fn min_limit(&self) -> u32 {
        self.min_limit
    }
    /// Ceiling of the limit.
    pub fn max_limit(&self) -> u32 {
        self.max_limit
    }
    /// Rate-axis window.
    pub fn window(&self) -> Duration {
        self.window
    }
    /// Minimum time between adjustments.
    pub fn sample_interval(&self) -> Duration {
        self.sample_interval
    }
    /// SLA warning latency.
    pub fn sla_warning(&self) -> Duration {
        self.sla_warning
    }
    /// SLA critical latency.
    pub fn sla_critical(&self) -> Duration {
        self.sla_critical
    }
    /// Cut applied on an SLA warning or a rising trend.
    pub fn decrease_ratio(&self) -> f64 {
        self.decrease_ratio
    }
    /// Cut applied on an SLA critical.
    pub fn critical_decrease_ratio(&self) -> f64 {
        self.critical_decrease_ratio
    }
    /// Additive increase (also the minimum proportional increase).
    pub fn increase_step(&self) -> u32 {
        self.increase_step
    }
    /// Trend above which the limit is cut.
    pub fn gradient_up_threshold(&self) -> f64 {
        self.gradient_up_threshold
    }
    /// Trend below which the limit grows.
    pub fn gradient_down_threshold(&self) -> f64 {
        self.gradient_down_threshold
    }
    /// EMA weight of a new sample.
    pub fn smoothing_factor(&self) -> f64 {
        self.smoothing_factor
    }
    /// Samples needed before a gradient is reported.
    pub fn min_samples(&self) -> u32 {
        self.min_samples
    }
    /// Recovery ramp stages.
    pub fn recovery_stages(&self) -> &[f64] {
        &self.recovery_stages
    }
    /// Time between ramp stages.
    pub fn recovery_stage_interval(&self) -> Duration {
        self.recovery_stage_interval
    }
    /// Largest random delay before a ramp's first stage.
    pub fn recovery_jitter(&self) -> Duration {
        self.recovery_jitter
    }
    /// Seed of the ramp jitter, if fixed.
    pub fn jitter_seed(&self) -> Option<u64> {
        self.jitter_seed
    }
    /// Statistic triggering the SLA rules.
    pub fn sla_trigger(&self) -> SlaTrigger {
        self.sla_trigger
    }
    /// Trend estimator feeding the gradient rules.
    pub fn trend(&self) -> TrendEstimator {
        self.trend
    }
    /// Increase sizing.
    pub fn increase_sizing(&self) -> IncreaseSizing {
        self.increase_sizing
    }
    /// Latency signal kept.
    pub fn signal(&self) -> SignalKind {
        self.signal
    }
    /// Rate-axis strategy.
    pub fn rate_strategy(&self) -> RateStrategy {
        self.rate_strategy
    }
    /// Whether samples of requests admitted before the latest limit change are ignored by the
    /// ladder.
    pub fn skip_stale_samples(&self) -> bool {
        self.skip_stale_samples
    }
    /// Most keys tracked at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }
    /// Event channel capacity.
    pub fn event_capacity(&self) -> usize {
        self.event_capacity
    }

    /// The settings fixed when a throttle is built — the key table's size, the event channel,
    /// the concurrency axis — that differ between `self` and `other`: each setting's name, and
    /// both values.
    // Read by the admin router's config swap only.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn fixed_at_build_differences(
        &self,
        other: &ThrottleConfig,
    ) -> Vec<(&'static str, String)> {
        let mut differ = Vec::new();
        if self.max_keys != other.max_keys {
            differ.push((
                "max_keys",
                format!("{} → {}", self.max_keys, other.max_keys),
            ));
        }
        if self.event_capacity != other.event_capacity {
            let values = format!("{} → {}", self.event_capacity, other.event_capacity);
            differ.push(("event_capacity", values));
        }
        if self.concurrency != other.concurrency {
            let state = |c: &Option<ConcurrencyConfig>| if c.is_some() { "on" } else { "off" };
            let values = match (&self.concurrency, &other.concurrency) {
                (Some(_), Some(_)) => "settings changed".to_owned(),
                (a, b) => format!("{} → {}", state(a), state(b)),
            };
            differ.push(("concurrency", values));
        }
        if self.cost != other.cost {
            let state = |c: &Option<CostConfig>| if c.is_some() { "on" } else { "off" };
            let values = match (&self.cost, &other.cost) {
                (Some(_), Some(_)) => "settings changed".to_owned(),
                (a, b) => format!("{} → {}", state(a), state(b)),
            };
            differ.push(("cost", values));
        }
        differ
    }

    /// `self` with the settings fixed at build time taken from `running`.
    pub(crate) fn with_fixed_from(mut self, running: &ThrottleConfig) -> ThrottleConfig {
        self.max_keys = running.max_keys;
        self.event_capacity = running.event_capacity;
        self.concurrency = running.concurrency.clone();
        self.cost = running.cost.clone();
        self
    }
    /// The cost axis, if on.
    pub fn cost(&self) -> Option<&CostConfig> {
        self.cost.as_ref()
    }
    /// The concurrency axis, if on.
    pub fn concurrency(&self) -> Option<&ConcurrencyConfig> {
        self.concurrency.as_ref()
    }
    /// How the limit is steered.
    pub fn adaptation(&self) -> Adaptation {
        self.adaptation
    }
    /// What one key may use of the limit.
    pub fn key_quota(&self) -> KeyQuota {
        self.key_quota
    }

    pub(crate) fn clamp(&self, limit: u64) -> u32 {
        let clamped = limit.clamp(u64::from(self.min_limit), u64::from(self.max_limit));
        u32::try_from(clamped).unwrap_or(self.max_limit)
    }
}
