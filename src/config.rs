//! Configuration: [`ThrottleConfig`], its builder, and the errors `build()` reports.
//!
//! Two starting points:
//!
//! - [`ThrottleConfig::baldur()`] / [`ThrottleConfig::baldur_builder()`] reproduce the Baldur
//!   Adaptive Throttle's documented ladder number for number: the latency of the single response
//!   that opens an adjustment tick triggers the SLA rules, the per-sample EMA gradient feeds the
//!   trend rules, increases are `+increase_step`, and the rate axis is a sliding window.
//! - [`ThrottleConfig::default()`] / [`ThrottleConfig::builder()`] are the crate's recommended
//!   configuration: the same ladder structure fed by statistics aggregated over each sample
//!   interval, so ordinary latency noise does not walk the limit towards its floor. See
//!   [`ThrottleConfig::default`] for the exact choices.
//!
//! Every constant is configurable on both builders and every value is checked by `build()`.

use std::fmt;
use std::time::Duration;

use crate::concurrency::ConcurrencyConfig;

/// Baldur's initial limit.
pub const DEFAULT_INITIAL_LIMIT: u32 = 100;
/// Baldur's floor.
pub const DEFAULT_MIN_LIMIT: u32 = 10;
/// Baldur's ceiling.
pub const DEFAULT_MAX_LIMIT: u32 = 500;
/// Rate-axis window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Minimum time between two adjustments of the limit.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
/// Latency at or above which the limit is cut by `decrease_ratio`.
pub const DEFAULT_SLA_WARNING: Duration = Duration::from_millis(200);
/// Latency at or above which the limit is cut by `critical_decrease_ratio`.
pub const DEFAULT_SLA_CRITICAL: Duration = Duration::from_millis(500);
/// Multiplier applied on an SLA warning or a rising trend.
pub const DEFAULT_DECREASE_RATIO: f64 = 0.9;
/// Multiplier applied on an SLA critical.
pub const DEFAULT_CRITICAL_DECREASE_RATIO: f64 = 0.7;
/// Additive increase on a falling trend (Baldur).
pub const DEFAULT_INCREASE_STEP: u32 = 1;
/// Trend above which the limit is cut (latency rising by more than 10 %).
pub const DEFAULT_GRADIENT_UP_THRESHOLD: f64 = 0.1;
/// Trend below which the limit grows (latency falling by more than 5 %).
pub const DEFAULT_GRADIENT_DOWN_THRESHOLD: f64 = -0.05;
/// EMA weight of a new latency sample.
pub const DEFAULT_SMOOTHING_FACTOR: f64 = 0.5;
/// Samples needed before the gradient is anything but zero.
pub const DEFAULT_MIN_SAMPLES: u32 = 3;
/// Recovery ramp stages, as fractions of the pre-incident base limit.
pub const DEFAULT_RECOVERY_STAGES: [f64; 3] = [0.8, 0.9, 1.0];
/// Time between two recovery ramp stages.
pub const DEFAULT_RECOVERY_STAGE_INTERVAL: Duration = Duration::from_secs(30);
/// Most distinct keys the rate axis tracks at once.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Sub-buckets of the sliding window (ThrottleKit's default).
pub const DEFAULT_WINDOW_BUCKETS: u32 = 10;
/// Capacity of the event broadcast channel; slow subscribers lag rather than block.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Window of the time-bucketed latency signal.
pub const DEFAULT_BUCKETED_SIGNAL_WINDOW: Duration = Duration::from_secs(10);
/// Percentile of the interval's samples that triggers the SLA rules in the recommended config.
pub const DEFAULT_SLA_PERCENTILE: f64 = 0.9;
/// Weight of each interval in the long latency baseline of the recommended config.
pub const DEFAULT_LONG_BASELINE_SMOOTHING: f64 = 0.1;
/// Fraction of the limit added on a falling trend in the recommended config.
pub const DEFAULT_PROPORTIONAL_INCREASE: f64 = 0.05;
/// Largest rise of the no-load baseline per interval in the recommended config (1 %: a lasting
/// shift is accepted within about a minute, queueing the throttle causes is not).
pub const DEFAULT_BASELINE_RISE: f64 = 0.01;
/// Recommended config: cut when the interval mean is more than this far above no-load (+200 %).
pub const DEFAULT_NOLOAD_UP_THRESHOLD: f64 = 2.0;
/// Recommended config: grow when the interval mean is less than this far above no-load (+100 %).
pub const DEFAULT_NOLOAD_DOWN_THRESHOLD: f64 = 1.0;
/// Recommended config: GCRA burst as a fraction of the limit.
pub const DEFAULT_GCRA_BURST_FRACTION: f64 = 0.5;
/// Most samples kept per sample interval for percentiles (a uniform reservoir beyond it).
pub const DEFAULT_INTERVAL_SAMPLE_CAPACITY: usize = 1024;

/// Which latency statistic triggers the SLA rules (the first two rungs of the ladder).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RateStrategy {
    /// Sub-bucketed sliding window (estimate error at most one sub-bucket; fixed memory per key).
    SlidingWindow {
        /// Sub-buckets per window.
        buckets: u32,
    },
    /// Exact sliding log (memory grows with the limit).
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
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
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
}

impl Default for ThrottleConfig {
    /// The recommended configuration, chosen by simulation (evidence, and the command that
    /// reproduces it, in `BENCHMARKS.md`).
    ///
    /// # Default
    ///
    /// **Two axes.** The concurrency axis is on ([`ConcurrencyConfig::default`]): an adaptive
    /// in-flight limit is the capacity guard, because it is self-clocking — when the service
    /// slows, fewer slots free up at once, so no backlog builds while a latency statistic
    /// catches up. The rate axis (per key, Baldur's numbers: limits 100 / 10 / 500 per 60 s
    /// window) is the per-client fairness guard. [`AdaptiveThrottle::acquire`](crate::AdaptiveThrottle::acquire)
    /// checks both; [`check`](crate::AdaptiveThrottle::check) is the rate axis alone.
    ///
    /// **The ladder** keeps Baldur's structure and numbers (500 ms interval, SLA 200 / 500 ms,
    /// cuts ×0.9 / ×0.7, ramp 80 / 90 / 100 % every 30 s) with inputs that do not drift:
    ///
    /// - SLA rules triggered by the 90th percentile of the interval's samples
    ///   ([`SlaTrigger::IntervalPercentile`]), not by one outlier;
    /// - trend = the interval's mean latency against a no-load baseline that drops at once and
    ///   rises by at most 1 % per interval ([`TrendEstimator::NoLoadBaseline`]); the limit is
    ///   cut above +200 % (`gradient_up_threshold` 2.0) and grows below +100 %
    ///   (`gradient_down_threshold` 1.0). These sit behind the concurrency axis's tolerance
    ///   (1.5 × no-load), so the fairness axis does not fight the capacity guard, and flat
    ///   latency keeps the limit growing: no walk to the floor under noise;
    /// - increases of 5 % of the limit (at least `increase_step`)
    ///   ([`IncreaseSizing::Proportional`]), so returning capacity is used within seconds;
    /// - samples of requests admitted before the latest change are ignored by the ladder
    ///   (`skip_stale_samples`): one decision per round trip, so a backlog admitted under the
    ///   old limit cannot cut the new one again and again;
    /// - smooth admission: GCRA with a burst of half the limit
    ///   ([`RateStrategy::Gcra`]), not a window that refills all at once.
    ///
    /// Measured (full scale, seed 42): with capacity halving for 30 s, 102–104 % of an
    /// oracle's goodput in every phase, settled p99 ≤ 1.5 × unloaded p99, converged within 2 s
    /// of each change, critical-tier success ≥ 99.9 %; under noise without overload, the limits
    /// stay ≥ 3 × what the load needs and < 1 % is rejected (during the first seconds of
    /// warm-up only). Known weakness: a slow dependency that triples latency without any
    /// loss of capacity costs about 16 % of goodput while it lasts, because the concurrency
    /// axis reads the slower responses as queueing until it re-measures its baseline.
    fn default() -> Self {
        Self {
            sla_trigger: SlaTrigger::IntervalPercentile(DEFAULT_SLA_PERCENTILE),
            trend: TrendEstimator::NoLoadBaseline {
                rise_per_interval: DEFAULT_BASELINE_RISE,
            },
            gradient_up_threshold: DEFAULT_NOLOAD_UP_THRESHOLD,
            gradient_down_threshold: DEFAULT_NOLOAD_DOWN_THRESHOLD,
            increase_sizing: IncreaseSizing::Proportional(DEFAULT_PROPORTIONAL_INCREASE),
            skip_stale_samples: true,
            rate_strategy: RateStrategy::Gcra {
                burst_fraction: DEFAULT_GCRA_BURST_FRACTION,
            },
            concurrency: Some(ConcurrencyConfig::default()),
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
            gradient_up_threshold: DEFAULT_GRADIENT_UP_THRESHOLD,
            gradient_down_threshold: DEFAULT_GRADIENT_DOWN_THRESHOLD,
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
            rate_strategy: RateStrategy::SlidingWindow {
                buckets: DEFAULT_WINDOW_BUCKETS,
            },
            skip_stale_samples: false,
            max_keys: DEFAULT_MAX_KEYS,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            concurrency: None,
        }
    }

    /// Checks every rule `build()` enforces.
    ///
    /// # Errors
    ///
    /// The first broken rule, as a [`ConfigError`] carrying the offending values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use ConfigError as E;
        if self.min_limit == 0 {
            return Err(E::ZeroMinLimit);
        }
        if !(self.min_limit <= self.initial_limit && self.initial_limit <= self.max_limit) {
            return Err(E::LimitsOutOfOrder {
                min: self.min_limit,
                initial: self.initial_limit,
                max: self.max_limit,
            });
        }
        if self.sla_critical <= self.sla_warning {
            return Err(E::SlaOutOfOrder {
                warning: self.sla_warning,
                critical: self.sla_critical,
            });
        }
        for (name, value) in [
            ("decrease_ratio", self.decrease_ratio),
            ("critical_decrease_ratio", self.critical_decrease_ratio),
        ] {
            if !(value > 0.0 && value < 1.0) {
                return Err(E::RatioOutOfRange { name, value });
            }
        }
        if self.window.as_millis() == 0 {
            return Err(E::ZeroDuration { name: "window" });
        }
        if self.sample_interval.is_zero() {
            return Err(E::ZeroDuration {
                name: "sample_interval",
            });
        }
        if self.recovery_stage_interval.is_zero() {
            return Err(E::ZeroDuration {
                name: "recovery_stage_interval",
            });
        }
        if !(self.smoothing_factor > 0.0 && self.smoothing_factor <= 1.0) {
            return Err(E::SmoothingOutOfRange {
                value: self.smoothing_factor,
            });
        }
        let ordered = self.gradient_down_threshold < self.gradient_up_threshold;
        if !ordered
            || !self.gradient_down_threshold.is_finite()
            || !self.gradient_up_threshold.is_finite()
        {
            return Err(E::GradientThresholdsOutOfOrder {
                down: self.gradient_down_threshold,
                up: self.gradient_up_threshold,
            });
        }
        if self.increase_step == 0 {
            return Err(E::ZeroIncreaseStep);
        }
        if self.recovery_stages.is_empty() {
            return Err(E::EmptyRecoveryStages);
        }
        let stages_ok = self.recovery_stages.iter().all(|s| *s > 0.0 && *s <= 1.0)
            && self.recovery_stages.windows(2).all(|w| w[0] < w[1]);
        if !stages_ok {
            return Err(E::InvalidRecoveryStages {
                stages: self.recovery_stages.clone(),
            });
        }
        if let SlaTrigger::IntervalPercentile(q) = self.sla_trigger {
            if !(q > 0.0 && q <= 1.0) {
                return Err(E::FractionOutOfRange {
                    name: "sla_trigger percentile",
                    value: q,
                });
            }
        }
        if let TrendEstimator::LongShortBaseline { long_smoothing } = self.trend {
            if !(long_smoothing > 0.0 && long_smoothing < 1.0) {
                return Err(E::FractionOutOfRange {
                    name: "long_smoothing",
                    value: long_smoothing,
                });
            }
        }
        if let TrendEstimator::NoLoadBaseline { rise_per_interval } = self.trend {
            if !(0.0..1.0).contains(&rise_per_interval) {
                return Err(E::FractionOutOfRange {
                    name: "rise_per_interval",
                    value: rise_per_interval,
                });
            }
        }
        if let IncreaseSizing::Proportional(f) = self.increase_sizing {
            if !(f > 0.0 && f <= 1.0) {
                return Err(E::FractionOutOfRange {
                    name: "proportional increase",
                    value: f,
                });
            }
        }
        if let SignalKind::TimeBucketed { window } = self.signal {
            if window < Duration::from_secs(2) {
                return Err(E::SignalWindowTooShort { window });
            }
        }
        match self.rate_strategy {
            RateStrategy::SlidingWindow { buckets } => {
                let window_ms = self.window.as_millis();
                if buckets == 0 || u128::from(buckets) > window_ms || buckets > 100_000 {
                    return Err(E::InvalidWindowBuckets {
                        buckets,
                        window: self.window,
                    });
                }
            }
            RateStrategy::Gcra { burst_fraction } => {
                if !(burst_fraction > 0.0 && burst_fraction <= 1.0) {
                    return Err(E::FractionOutOfRange {
                        name: "burst_fraction",
                        value: burst_fraction,
                    });
                }
            }
            RateStrategy::SlidingWindowLog
            | RateStrategy::FixedWindow
            | RateStrategy::TokenBucket => {}
        }
        if self.max_keys == 0 {
            return Err(E::ZeroCapacity { name: "max_keys" });
        }
        if self.event_capacity == 0 {
            return Err(E::ZeroCapacity {
                name: "event_capacity",
            });
        }
        if let Some(c) = &self.concurrency {
            c.validate()?;
        }
        Ok(())
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
    /// The concurrency axis, if on.
    pub fn concurrency(&self) -> Option<&ConcurrencyConfig> {
        self.concurrency.as_ref()
    }

    pub(crate) fn clamp(&self, limit: u64) -> u32 {
        let clamped = limit.clamp(u64::from(self.min_limit), u64::from(self.max_limit));
        u32::try_from(clamped).unwrap_or(self.max_limit)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for ThrottleConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ThrottleConfig::serialize(self, serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for ThrottleConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let cfg = ThrottleConfig::deserialize(deserializer)?;
        cfg.validate().map_err(serde::de::Error::custom)?;
        Ok(cfg)
    }
}

/// Integer milliseconds for durations in serialised configs.
#[cfg(feature = "serde")]
pub(crate) mod duration_ms {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let ms = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}

/// Consuming builder for [`ThrottleConfig`]; nothing is checked until [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct ThrottleConfigBuilder {
    cfg: ThrottleConfig,
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
        /// Trend above which the limit is cut (default 0.1).
        gradient_up_threshold: f64;
        /// Trend below which the limit grows (default −0.05).
        gradient_down_threshold: f64;
        /// EMA weight of a new sample (default 0.5), in `(0, 1]`.
        smoothing_factor: f64;
        /// Samples before any gradient is reported (default 3).
        min_samples: u32;
        /// Time between recovery ramp stages (default 30 s).
        recovery_stage_interval: Duration;
        /// Largest random delay before a ramp's first stage, to spread a fleet (default 0).
        recovery_jitter: Duration;
        /// Which statistic triggers the SLA rules.
        sla_trigger: SlaTrigger;
        /// Which trend estimator feeds the gradient rules.
        trend: TrendEstimator;
        /// How increases are sized.
        increase_sizing: IncreaseSizing;
        /// Which latency signal is kept.
        signal: SignalKind;
        /// Which strategy the rate axis admits with.
        rate_strategy: RateStrategy;
        /// Whether the ladder ignores samples of requests admitted before the latest change of
        /// the limit (their start is `now − rtt`), and waits for `min_samples` fresh ones
        /// before it decides again: one decision per round trip, as TCP cuts once per window.
        skip_stale_samples: bool;
        /// Most keys tracked at once (default 100 000); idle keys are evicted first.
        max_keys: usize;
        /// Capacity of the event channel (default 1024).
        event_capacity: usize;
    }

    /// Recovery ramp stages as fractions of the pre-incident base (default 0.8, 0.9, 1.0):
    /// non-empty, strictly increasing, each in `(0, 1]`.
    pub fn recovery_stages(mut self, stages: &[f64]) -> Self {
        self.cfg.recovery_stages = stages.to_vec();
        self
    }

    /// Turns the concurrency axis on with `cfg` (see [`crate::concurrency`]).
    pub fn concurrency(mut self, cfg: ConcurrencyConfig) -> Self {
        self.cfg.concurrency = Some(cfg);
        self
    }

    /// Turns the concurrency axis off (the rate axis alone guards the service).
    pub fn without_concurrency(mut self) -> Self {
        self.cfg.concurrency = None;
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
    /// stages; a fraction of the pluggable inputs out of range; zero `max_keys`.
    pub fn build(self) -> Result<ThrottleConfig, ConfigError> {
        self.cfg.validate()?;
        Ok(self.cfg)
    }
}

/// A broken configuration rule, with the values that broke it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `min_limit` is 0: the throttle could shut a service off entirely.
    ZeroMinLimit,
    /// The limits are not ordered `min ≤ initial ≤ max`.
    LimitsOutOfOrder {
        /// `min_limit`.
        min: u32,
        /// `initial_limit`.
        initial: u32,
        /// `max_limit`.
        max: u32,
    },
    /// `sla_critical` is not above `sla_warning`.
    SlaOutOfOrder {
        /// `sla_warning`.
        warning: Duration,
        /// `sla_critical`.
        critical: Duration,
    },
    /// A cut ratio is outside `(0, 1)`.
    RatioOutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// A duration that must be positive is zero.
    ZeroDuration {
        /// The setting.
        name: &'static str,
    },
    /// `smoothing_factor` is outside `(0, 1]`.
    SmoothingOutOfRange {
        /// Its value.
        value: f64,
    },
    /// `gradient_down_threshold` is not below `gradient_up_threshold`.
    GradientThresholdsOutOfOrder {
        /// `gradient_down_threshold`.
        down: f64,
        /// `gradient_up_threshold`.
        up: f64,
    },
    /// `increase_step` is 0: the limit could never grow.
    ZeroIncreaseStep,
    /// No recovery stages.
    EmptyRecoveryStages,
    /// Recovery stages not strictly increasing within `(0, 1]`.
    InvalidRecoveryStages {
        /// The stages given.
        stages: Vec<f64>,
    },
    /// A fraction is outside its range.
    FractionOutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// The time-bucketed signal needs a window of at least two one-second buckets.
    SignalWindowTooShort {
        /// The window given.
        window: Duration,
    },
    /// Sliding-window sub-buckets must be between 1 and the window in milliseconds (≤ 100 000).
    InvalidWindowBuckets {
        /// The buckets given.
        buckets: u32,
        /// The window.
        window: Duration,
    },
    /// A capacity that must be positive is zero.
    ZeroCapacity {
        /// The setting.
        name: &'static str,
    },
    /// The concurrency limits are not ordered `1 ≤ min ≤ initial ≤ max`.
    ConcurrencyLimitsOutOfOrder {
        /// Concurrency `min_limit`.
        min: u32,
        /// Concurrency `initial_limit`.
        initial: u32,
        /// Concurrency `max_limit`.
        max: u32,
    },
    /// A concurrency-algorithm value is outside its range.
    ConcurrencyValueOutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range.
        range: &'static str,
    },
    /// The concurrency aggregation window's bounds are inverted.
    ConcurrencyWindowsOutOfOrder {
        /// `min_window`.
        min_window: Duration,
        /// `max_window`.
        max_window: Duration,
    },
    /// Tier shares must each be in `(0, 1]` and not increase from critical to non-essential.
    InvalidTierShares {
        /// Critical share.
        critical: f64,
        /// Standard share.
        standard: f64,
        /// Non-essential share.
        non_essential: f64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroMinLimit => write!(f, "min_limit must be at least 1, got 0"),
            Self::LimitsOutOfOrder { min, initial, max } => write!(
                f,
                "limits must satisfy min_limit <= initial_limit <= max_limit, got min_limit={min}, initial_limit={initial}, max_limit={max}"
            ),
            Self::SlaOutOfOrder { warning, critical } => write!(
                f,
                "sla_critical must exceed sla_warning, got sla_warning={warning:?}, sla_critical={critical:?}"
            ),
            Self::RatioOutOfRange { name, value } => {
                write!(f, "{name} must be in (0, 1), got {value}")
            }
            Self::ZeroDuration { name } => write!(f, "{name} must be at least 1 ms, got 0"),
            Self::SmoothingOutOfRange { value } => {
                write!(f, "smoothing_factor must be in (0, 1], got {value}")
            }
            Self::GradientThresholdsOutOfOrder { down, up } => write!(
                f,
                "gradient_down_threshold must be below gradient_up_threshold, got gradient_down_threshold={down}, gradient_up_threshold={up}"
            ),
            Self::ZeroIncreaseStep => write!(f, "increase_step must be at least 1, got 0"),
            Self::EmptyRecoveryStages => write!(f, "recovery_stages must not be empty"),
            Self::InvalidRecoveryStages { stages } => write!(
                f,
                "recovery_stages must be strictly increasing and each in (0, 1], got {stages:?}"
            ),
            Self::FractionOutOfRange { name, value } => {
                write!(f, "{name} must be in its range (0, 1], got {value}")
            }
            Self::SignalWindowTooShort { window } => write!(
                f,
                "the time-bucketed signal window must be at least 2 s, got {window:?}"
            ),
            Self::InvalidWindowBuckets { buckets, window } => write!(
                f,
                "sliding-window buckets must be between 1 and min(window in ms, 100000), got buckets={buckets} for window={window:?}"
            ),
            Self::ZeroCapacity { name } => write!(f, "{name} must be at least 1, got 0"),
            Self::ConcurrencyLimitsOutOfOrder { min, initial, max } => write!(
                f,
                "concurrency limits must satisfy 1 <= min_limit <= initial_limit <= max_limit, got min_limit={min}, initial_limit={initial}, max_limit={max}"
            ),
            Self::ConcurrencyValueOutOfRange { name, value, range } => {
                write!(f, "concurrency {name} must be in {range}, got {value}")
            }
            Self::ConcurrencyWindowsOutOfOrder {
                min_window,
                max_window,
            } => write!(
                f,
                "concurrency max_window must be at least min_window, got min_window={min_window:?}, max_window={max_window:?}"
            ),
            Self::InvalidTierShares {
                critical,
                standard,
                non_essential,
            } => write!(
                f,
                "tier shares must be in (0, 1] with critical >= standard >= non_essential, got critical={critical}, standard={standard}, non_essential={non_essential}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baldur_preset_has_documented_numbers() {
        let c = ThrottleConfig::baldur();
        assert_eq!(
            (c.initial_limit(), c.min_limit(), c.max_limit()),
            (100, 10, 500)
        );
        assert_eq!(c.window(), Duration::from_secs(60));
        assert_eq!(c.sample_interval(), Duration::from_millis(500));
        assert_eq!(c.sla_warning(), Duration::from_millis(200));
        assert_eq!(c.sla_critical(), Duration::from_millis(500));
        assert_eq!(c.decrease_ratio(), 0.9);
        assert_eq!(c.critical_decrease_ratio(), 0.7);
        assert_eq!(c.increase_step(), 1);
        assert_eq!(c.gradient_up_threshold(), 0.1);
        assert_eq!(c.gradient_down_threshold(), -0.05);
        assert_eq!(c.smoothing_factor(), 0.5);
        assert_eq!(c.min_samples(), 3);
        assert_eq!(c.recovery_stages(), &[0.8, 0.9, 1.0]);
        assert_eq!(c.recovery_stage_interval(), Duration::from_secs(30));
        assert_eq!(c.sla_trigger(), SlaTrigger::TriggeringSample);
        assert_eq!(c.trend(), TrendEstimator::Signal);
        assert_eq!(c.increase_sizing(), IncreaseSizing::Step);
        assert_eq!(ThrottleConfig::baldur_builder().build().unwrap(), c);
        c.validate().unwrap();
        ThrottleConfig::default().validate().unwrap();
    }

    #[test]
    fn build_rejects_zero_min_limit() {
        let e = ThrottleConfig::builder().min_limit(0).build().unwrap_err();
        assert_eq!(e, ConfigError::ZeroMinLimit);
    }

    #[test]
    fn build_rejects_unordered_limits_naming_them() {
        let e = ThrottleConfig::builder()
            .min_limit(50)
            .initial_limit(20)
            .max_limit(100)
            .build()
            .unwrap_err();
        assert_eq!(
            e,
            ConfigError::LimitsOutOfOrder {
                min: 50,
                initial: 20,
                max: 100
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("min_limit=50") && msg.contains("initial_limit=20"),
            "{msg}"
        );
        assert!(ThrottleConfig::builder()
            .initial_limit(600)
            .build()
            .is_err());
    }

    #[test]
    fn build_rejects_sla_critical_not_above_warning() {
        let e = ThrottleConfig::builder()
            .sla_warning(Duration::from_millis(300))
            .sla_critical(Duration::from_millis(300))
            .build()
            .unwrap_err();
        assert!(matches!(e, ConfigError::SlaOutOfOrder { .. }));
        assert!(e.to_string().contains("300ms"), "{e}");
    }

    #[test]
    fn build_rejects_ratios_outside_open_unit_interval() {
        for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            let e = ThrottleConfig::builder()
                .decrease_ratio(bad)
                .build()
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    ConfigError::RatioOutOfRange {
                        name: "decrease_ratio",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
            let e = ThrottleConfig::builder()
                .critical_decrease_ratio(bad)
                .build()
                .unwrap_err();
            assert!(matches!(
                e,
                ConfigError::RatioOutOfRange {
                    name: "critical_decrease_ratio",
                    ..
                }
            ));
        }
    }

    #[test]
    fn build_rejects_zero_durations() {
        let e = ThrottleConfig::builder()
            .window(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e, ConfigError::ZeroDuration { name: "window" });
        let e = ThrottleConfig::builder()
            .sample_interval(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(
            e,
            ConfigError::ZeroDuration {
                name: "sample_interval"
            }
        );
    }

    #[test]
    fn build_rejects_smoothing_outside_half_open_interval() {
        assert!(ThrottleConfig::builder()
            .smoothing_factor(1.0)
            .build()
            .is_ok());
        for bad in [0.0, 1.01, f64::NAN] {
            let e = ThrottleConfig::builder()
                .smoothing_factor(bad)
                .build()
                .unwrap_err();
            assert!(matches!(e, ConfigError::SmoothingOutOfRange { .. }));
        }
    }

    #[test]
    fn build_rejects_unordered_gradient_thresholds() {
        let e = ThrottleConfig::builder()
            .gradient_down_threshold(0.2)
            .gradient_up_threshold(0.1)
            .build()
            .unwrap_err();
        assert_eq!(
            e,
            ConfigError::GradientThresholdsOutOfOrder { down: 0.2, up: 0.1 }
        );
    }

    #[test]
    fn build_rejects_bad_recovery_stages() {
        assert_eq!(
            ThrottleConfig::builder()
                .recovery_stages(&[])
                .build()
                .unwrap_err(),
            ConfigError::EmptyRecoveryStages
        );
        for bad in [&[0.9, 0.8][..], &[0.5, 0.5], &[0.5, 1.2], &[0.0, 1.0]] {
            let e = ThrottleConfig::builder()
                .recovery_stages(bad)
                .build()
                .unwrap_err();
            assert!(
                matches!(e, ConfigError::InvalidRecoveryStages { .. }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn build_rejects_out_of_range_pluggable_inputs() {
        assert!(ThrottleConfig::builder()
            .sla_trigger(SlaTrigger::IntervalPercentile(1.5))
            .build()
            .is_err());
        assert!(ThrottleConfig::builder()
            .trend(TrendEstimator::LongShortBaseline {
                long_smoothing: 1.0
            })
            .build()
            .is_err());
        assert!(ThrottleConfig::builder()
            .increase_sizing(IncreaseSizing::Proportional(0.0))
            .build()
            .is_err());
        assert!(ThrottleConfig::builder()
            .signal(SignalKind::TimeBucketed {
                window: Duration::from_secs(1)
            })
            .build()
            .is_err());
        assert!(ThrottleConfig::builder()
            .rate_strategy(RateStrategy::SlidingWindow { buckets: 0 })
            .build()
            .is_err());
        assert!(ThrottleConfig::builder()
            .rate_strategy(RateStrategy::Gcra {
                burst_fraction: 0.0
            })
            .build()
            .is_err());
        assert!(ThrottleConfig::builder().max_keys(0).build().is_err());
        assert!(ThrottleConfig::builder().increase_step(0).build().is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trips_and_validates() {
        let cfg = ThrottleConfig::builder().initial_limit(42).build().unwrap();
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("\"window_ms\":60000"), "{json}");
        let back: ThrottleConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
        let partial: ThrottleConfig = serde_json::from_str(r#"{"initial_limit": 50}"#).unwrap();
        assert_eq!(partial.initial_limit(), 50);
        let err = serde_json::from_str::<ThrottleConfig>(r#"{"min_limit": 0}"#).unwrap_err();
        assert!(err.to_string().contains("min_limit"), "{err}");
        assert!(serde_json::from_str::<ThrottleConfig>(r#"{"bogus": 1}"#).is_err());
    }
}
