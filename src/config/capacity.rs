//! How the limit is steered ([`Adaptation`]) and what one key may use of it ([`KeyQuota`]).

use std::time::Duration;

use super::ConfigError;

/// Recommended rate-axis window: the limit is a service-wide rate per second.
pub const DEFAULT_CAPACITY_WINDOW: Duration = Duration::from_secs(1);
/// Recommended starting service-wide limit per window: open enough for a cold start (it grows by
/// half per adjustment while it binds at healthy latency, and is cut when work queues).
pub const DEFAULT_CAPACITY_INITIAL_LIMIT: u32 = 1000;
/// Recommended floor of the service-wide limit per window.
pub const DEFAULT_CAPACITY_MIN_LIMIT: u32 = 10;
/// Recommended ceiling of the service-wide limit per window (a safety bound, not a target).
pub const DEFAULT_CAPACITY_MAX_LIMIT: u32 = 1_000_000;
/// Recommended: latency may rise to this multiple of the no-load latency before the estimate
/// reads it as queueing (Netflix Gradient2's tolerance).
pub const DEFAULT_CAPACITY_TOLERANCE: f64 = 1.5;
/// Recommended: growth per adjustment while the limit binds and latency stays at its floor.
pub const DEFAULT_CAPACITY_PROBE_GAIN: f64 = 0.05;
/// Recommended: growth per adjustment before the first sign of queueing (startup).
pub const DEFAULT_CAPACITY_STARTUP_GAIN: f64 = 0.35;
/// Recommended: a limit that does not bind stays this far above the delivered rate.
pub const DEFAULT_CAPACITY_HEADROOM: f64 = 1.5;
/// Recommended: the deepest cut of one adjustment, as a fraction of the delivered rate.
pub const DEFAULT_CAPACITY_MIN_DRAIN: f64 = 0.7;
/// Recommended: how far back the delivered-rate maximum looks.
pub const DEFAULT_CAPACITY_DELIVERY_WINDOW: Duration = Duration::from_secs(2);
/// Recommended: while the concurrency axis sheds, the rate stays this far above what the
/// in-flight limit lets through, so the self-clocking axis binds first and a client pacing
/// itself by its quota is not turned away by the other axis.
pub const DEFAULT_CAPACITY_RATE_HEADROOM: f64 = 1.05;

/// How the adaptive limit is steered.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Adaptation {
    /// Baldur's ladder: SLA rules, then the latency trend (`sla_trigger`, `trend`,
    /// `increase_sizing`); the limit moves by ratios and steps.
    Ladder,
    /// One estimate of what the service can take now — the rate it delivers at a latency near
    /// its floor — which the limit follows (see [`CapacityEstimate`]). The SLA rules still cut.
    CapacityEstimate(CapacityEstimate),
}

/// The parameters of [`Adaptation::CapacityEstimate`].
///
/// At each adjustment (at most once per `sample_interval`) the estimate reads the rate of
/// completed requests since the last one (the delivered rate), the mean latency of the fresh
/// samples, and a no-load baseline (the lowest recent mean, rising by at most 1 % per
/// adjustment). With `ratio = mean ÷ baseline`:
///
/// - `ratio > tolerance` (queueing, `latency_rising`): the rate becomes
///   `delivered × max(tolerance ÷ ratio, min_drain)`, which drains the queue. If the next
///   adjustment shows that the cut lowered throughput but not latency, the latency was not
///   queueing (a slower dependency): the baseline moves to it and the rate is restored
///   (`capacity_estimate`).
/// - otherwise, when the limit bound (the service-wide limit rejected requests):
///   `max(rate × (1 + probe_gain), best delivered rate of the last delivery_window)`
///   (`headroom`; `startup_gain` instead until the first sign of queueing);
/// - otherwise (the limit does not bind) it stays at least `headroom × best delivered rate`
///   (`headroom`); above that it holds: it is what the service has shown it can take.
///
/// With the concurrency axis on and permits in use, the in-flight limit is the capacity guard
/// and its algorithm the estimate (it measures work in flight directly); the rate follows it:
/// while it sheds, `rate_headroom × best delivered rate` (what it lets through); otherwise at
/// least `headroom × best delivered rate` and at most `headroom ×` what the in-flight limit
/// allows at the current latency (`in-flight limit ÷ mean latency`, Little's law).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct CapacityEstimate {
    /// Latency up to `tolerance ×` the no-load latency is not queueing (≥ 1).
    pub tolerance: f64,
    /// Growth per adjustment while the limit binds at healthy latency, in `(0, 1]`.
    pub probe_gain: f64,
    /// Growth per adjustment until queueing is first seen, in `(0, 4]`.
    pub startup_gain: f64,
    /// A limit that does not bind stays at least this multiple of the delivered rate (≥ 1).
    pub headroom: f64,
    /// The deepest single cut, as a fraction of the delivered rate, in `(0, 1]`.
    pub min_drain: f64,
    /// How far back the best delivered rate is remembered (at least one sample interval).
    #[cfg_attr(
        feature = "serde",
        serde(with = "crate::config::duration_ms", rename = "delivery_window_ms")
    )]
    pub delivery_window: Duration,
    /// While the concurrency axis sheds: rate ÷ delivered rate, ≥ 1.
    pub rate_headroom: f64,
}

impl Default for CapacityEstimate {
    fn default() -> Self {
        Self {
            tolerance: DEFAULT_CAPACITY_TOLERANCE,
            probe_gain: DEFAULT_CAPACITY_PROBE_GAIN,
            startup_gain: DEFAULT_CAPACITY_STARTUP_GAIN,
            headroom: DEFAULT_CAPACITY_HEADROOM,
            min_drain: DEFAULT_CAPACITY_MIN_DRAIN,
            delivery_window: DEFAULT_CAPACITY_DELIVERY_WINDOW,
            rate_headroom: DEFAULT_CAPACITY_RATE_HEADROOM,
        }
    }
}

impl CapacityEstimate {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let c = self;
        let ranges: [(&'static str, f64, bool, &'static str); 6] = [
            ("tolerance", c.tolerance, c.tolerance >= 1.0, "[1, ∞)"),
            (
                "probe_gain",
                c.probe_gain,
                c.probe_gain > 0.0 && c.probe_gain <= 1.0,
                "(0, 1]",
            ),
            (
                "startup_gain",
                c.startup_gain,
                c.startup_gain > 0.0 && c.startup_gain <= 4.0,
                "(0, 4]",
            ),
            ("headroom", c.headroom, c.headroom >= 1.0, "[1, ∞)"),
            (
                "min_drain",
                c.min_drain,
                c.min_drain > 0.0 && c.min_drain <= 1.0,
                "(0, 1]",
            ),
            (
                "rate_headroom",
                c.rate_headroom,
                c.rate_headroom >= 1.0,
                "[1, ∞)",
            ),
        ];
        for (name, value, ok, range) in ranges {
            if !ok || !value.is_finite() {
                return Err(ConfigError::CapacityValueOutOfRange { name, value, range });
            }
        }
        if self.delivery_window.is_zero() {
            return Err(ConfigError::ZeroDuration {
                name: "delivery_window",
            });
        }
        Ok(())
    }
}

/// What one key may admit of the service-wide limit per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum KeyQuota {
    /// Each key against the whole limit (Baldur): N keys may be admitted N × the limit.
    WholeLimit,
    /// A fair share of the limit among the keys active in the window: `limit ÷ active keys`,
    /// so a lone key may use all of it and its share shrinks as others arrive. The aggregate
    /// never exceeds the limit plus its burst.
    FairShare,
    /// A fixed quota per key per window, capped by the service-wide limit; the aggregate never
    /// exceeds the limit plus its burst.
    Fixed(u32),
}

impl KeyQuota {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Fixed(0) => Err(ConfigError::ZeroCapacity { name: "key quota" }),
            _ => Ok(()),
        }
    }

    /// Whether the keys share one service-wide limit.
    pub(crate) fn is_shared(self) -> bool {
        !matches!(self, Self::WholeLimit)
    }
}
