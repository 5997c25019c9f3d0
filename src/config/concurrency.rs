//! [`ConcurrencyConfig`]: the optional concurrency section of a
//! [`ThrottleConfig`](crate::ThrottleConfig).

use std::time::Duration;

use super::ConfigError;
use crate::decision::Tier;

/// Recommended initial in-flight limit (ThrottleKit TK-026 starts at its floor; Netflix at 20).
pub const DEFAULT_CONCURRENCY_INITIAL_LIMIT: u32 = 20;
/// Recommended floor of the in-flight limit (ThrottleKit TK-026).
pub const DEFAULT_CONCURRENCY_MIN_LIMIT: u32 = 4;
/// Recommended ceiling of the in-flight limit.
pub const DEFAULT_CONCURRENCY_MAX_LIMIT: u32 = 1000;
/// Recommended shortest aggregation window.
pub const DEFAULT_CONCURRENCY_MIN_WINDOW: Duration = Duration::from_millis(100);
/// Recommended longest aggregation window.
pub const DEFAULT_CONCURRENCY_MAX_WINDOW: Duration = Duration::from_millis(500);
/// Samples a window needs before it updates the limit (Netflix `WindowedLimit`: 10).
pub const DEFAULT_CONCURRENCY_WINDOW_SAMPLES: u32 = 10;
/// Recommended: largest rise of Gradient2's no-load baseline per update (0.02 %).
pub const DEFAULT_LONG_RISE_CAP: f64 = 0.0002;
/// Recommended: consecutive updates with the gradient at its floor before Gradient2's baseline
/// is re-measured (about 2 s at the recommended window).
pub const DEFAULT_REBASELINE_AFTER_FLOOR_UPDATES: u32 = 8;
/// Share of the limit standard requests may fill.
pub const DEFAULT_STANDARD_SHARE: f64 = 0.8;
/// Share of the limit non-essential requests may fill.
pub const DEFAULT_NON_ESSENTIAL_SHARE: f64 = 0.6;

/// The algorithm that moves the in-flight limit.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ConcurrencyAlgorithm {
    /// Netflix Gradient2, with two documented additions: a dropped sample sets the gradient to
    /// its floor 0.5 (ThrottleKit TK-026; Netflix ignores drops, issue #176), and the upper
    /// gradient clamp is a parameter (Netflix 1.0).
    ///
    /// Per update, with `short` the sample's RTT:
    ///
    /// 1. `long = EMA(long, short)`; if `long / short > 2`, `long ← 0.95 × long` (drift guard).
    /// 2. If `inflight < estimate / 2`, hold (the load, not the server, limits the work).
    /// 3. `gradient = clamp(tolerance × long / short, 0.5, max_gradient)` (0.5 when dropped).
    /// 4. `new = estimate × gradient + queue`; `estimate ← estimate × (1 − s) + new × s`.
    /// 5. Clamp to `[min, max]`.
    Gradient2(Gradient2Params),
    /// Additive increase, multiplicative decrease:
    ///
    /// - on a drop, a sample slower than `timeout`, or (when set) slower than
    ///   `latency_tolerance × no-load RTT`: `L ← ⌊L × backoff_ratio⌋`;
    /// - else if `inflight × 2 ≥ L`: `L ← L + 1`;
    /// - clamp to `[min, max]`.
    ///
    /// The no-load RTT is the minimum of the last `noload_window` samples.
    Aimd(AimdParams),
}

/// How samples reach the algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SampleAggregation {
    /// Every completed request updates the limit (Netflix's `SimpleLimiter` without a window).
    PerSample,
    /// Netflix `WindowedLimit`: samples are pooled in a window of
    /// `clamp(2 × the window's fastest RTT, min_window, max_window)`; a window with at least
    /// `min_samples` updates the limit once with its mean RTT, its largest in-flight count and
    /// whether any request dropped; a thinner window is discarded.
    Windowed {
        /// Shortest window.
        #[cfg_attr(
            feature = "serde",
            serde(with = "crate::config::duration_ms", rename = "min_window_ms")
        )]
        min_window: Duration,
        /// Longest window.
        #[cfg_attr(
            feature = "serde",
            serde(with = "crate::config::duration_ms", rename = "max_window_ms")
        )]
        max_window: Duration,
        /// Samples a window needs to count.
        min_samples: u32,
    },
}

/// Fractions of the in-flight limit each tier may fill: a request is admitted only while the
/// work in flight (all tiers together) is below `floor(limit × share)` of its tier, so as the
/// service saturates, non-essential work is refused first, then standard; critical work may use
/// the whole limit.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct TierShares {
    /// Critical (default 1.0).
    pub critical: f64,
    /// Standard (default 0.8).
    pub standard: f64,
    /// Non-essential (default 0.6).
    pub non_essential: f64,
}

impl Default for TierShares {
    fn default() -> Self {
        Self {
            critical: 1.0,
            standard: DEFAULT_STANDARD_SHARE,
            non_essential: DEFAULT_NON_ESSENTIAL_SHARE,
        }
    }
}

impl TierShares {
    /// Shares of `critical`, `standard` and `non_essential`; checked by `build()` (each in
    /// `(0, 1]`, non-increasing from critical to non-essential).
    pub const fn new(critical: f64, standard: f64, non_essential: f64) -> Self {
        Self {
            critical,
            standard,
            non_essential,
        }
    }

    /// Every tier may use the whole limit.
    pub const fn equal() -> Self {
        Self::new(1.0, 1.0, 1.0)
    }

    /// The share of `tier`.
    pub fn of(&self, tier: Tier) -> f64 {
        match tier {
            Tier::Critical => self.critical,
            Tier::Standard => self.standard,
            Tier::NonEssential => self.non_essential,
        }
    }
}

/// Envoy-style re-measurement of the no-load RTT: every `interval` (plus a seeded random delay
/// of up to `jitter × interval`, so a fleet does not probe in step) the limit is pinned to
/// `probe_limit` until `request_count` requests admitted during the probe have completed; the
/// `percentile` of their RTTs becomes the algorithm's baseline (Gradient2's long RTT, AIMD's
/// no-load RTT) and the previous limit is restored. Samples of requests admitted before the
/// probe are not used (Envoy PR #11579).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct MinRttProbe {
    /// Time between probes (Envoy: required; no default).
    #[cfg_attr(
        feature = "serde",
        serde(with = "crate::config::duration_ms", rename = "interval_ms")
    )]
    pub interval: Duration,
    /// Largest extra delay as a fraction of `interval`, in `[0, 1]` (Envoy 0.15).
    pub jitter: f64,
    /// Samples per probe (Envoy 50), 1 to [`MAX_PROBE_REQUEST_COUNT`](crate::config::MAX_PROBE_REQUEST_COUNT).
    pub request_count: u32,
    /// The limit while probing (Envoy `min_concurrency` 3).
    pub probe_limit: u32,
    /// Percentile of the probe's samples taken as the baseline, in `(0, 1]` (Envoy p50).
    pub percentile: f64,
}

impl MinRttProbe {
    /// Envoy's defaults (jitter 15 %, 50 requests, limit 3, p50) every `interval`.
    pub const fn every(interval: Duration) -> Self {
        Self {
            interval,
            jitter: 0.15,
            request_count: 50,
            probe_limit: 3,
            percentile: 0.5,
        }
    }
}

/// The concurrency axis: an adaptive limit on requests in flight, keyless (one limit for the
/// whole throttle). See the [module docs](super).
///
/// # Default
///
/// The recommended configuration, chosen with the simulator (`BENCHMARKS.md`): Gradient2's
/// formula with windowed updates, limits 20 / 4 / 1000, and tier shares 1.0 / 0.8 / 0.6. See
/// [`ConcurrencyConfig::recommended_params`] for the algorithm's constants.
/// [`ConcurrencyConfig::netflix_gradient2`] and [`ConcurrencyConfig::aimd`] are the textbook
/// algorithms with their published defaults.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ConcurrencyConfig {
    pub(crate) algorithm: ConcurrencyAlgorithm,
    pub(crate) initial_limit: u32,
    pub(crate) min_limit: u32,
    pub(crate) max_limit: u32,
    pub(crate) aggregation: SampleAggregation,
    pub(crate) tier_shares: TierShares,
    pub(crate) min_rtt_probe: Option<MinRttProbe>,
    pub(crate) jitter_seed: Option<u64>,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        Self {
            algorithm: ConcurrencyAlgorithm::Gradient2(Self::recommended_params()),
            initial_limit: DEFAULT_CONCURRENCY_INITIAL_LIMIT,
            min_limit: DEFAULT_CONCURRENCY_MIN_LIMIT,
            max_limit: DEFAULT_CONCURRENCY_MAX_LIMIT,
            aggregation: SampleAggregation::Windowed {
                min_window: DEFAULT_CONCURRENCY_MIN_WINDOW,
                max_window: DEFAULT_CONCURRENCY_MAX_WINDOW,
                min_samples: DEFAULT_CONCURRENCY_WINDOW_SAMPLES,
            },
            tier_shares: TierShares::default(),
            min_rtt_probe: None,
            jitter_seed: None,
        }
    }
}

impl ConcurrencyConfig {
    /// The recommended Gradient2 constants: Netflix's formula with the gradient allowed up to
    /// the tolerance (so returning capacity is found in a few windows, not minutes), a headroom
    /// of `max(4, √limit)`, tolerance 1.5, smoothing 0.2, and a long RTT over 600 windows.
    pub const fn recommended_params() -> Gradient2Params {
        Gradient2Params {
            long_window: 600,
            long_warmup: 10,
            rtt_tolerance: 1.5,
            queue_size: QueueSize::Sqrt { floor: 4 },
            smoothing: 0.2,
            max_gradient: 1.5,
            long_rise_cap: Some(DEFAULT_LONG_RISE_CAP),
            rebaseline_after_floor_updates: Some(DEFAULT_REBASELINE_AFTER_FLOOR_UPDATES),
        }
    }

    /// The recommended configuration, to adjust.
    pub fn builder() -> ConcurrencyConfigBuilder {
        ConcurrencyConfigBuilder {
            cfg: Self::default(),
        }
    }

    /// Netflix `Gradient2Limit` as published: limits 20 / 20 / 200, long window 600 samples,
    /// tolerance 1.5, queue 4, smoothing 0.2, updated on every sample.
    pub fn netflix_gradient2() -> Self {
        Self {
            algorithm: ConcurrencyAlgorithm::Gradient2(Gradient2Params::netflix()),
            initial_limit: 20,
            min_limit: 20,
            max_limit: 200,
            aggregation: SampleAggregation::PerSample,
            tier_shares: TierShares::default(),
            min_rtt_probe: None,
            jitter_seed: None,
        }
    }

    /// Netflix `AIMDLimit` (limits 20 / 20 / 200, backoff 0.9, timeout 5 s) with ThrottleKit's
    /// latency rule (see [`AimdParams::netflix`]), updated on every sample.
    pub fn aimd() -> Self {
        Self {
            algorithm: ConcurrencyAlgorithm::Aimd(AimdParams::netflix()),
            ..Self::netflix_gradient2()
        }
    }

    /// A builder starting from this configuration.
    pub fn to_builder(&self) -> ConcurrencyConfigBuilder {
        ConcurrencyConfigBuilder { cfg: self.clone() }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ConcurrencyAlgorithm {
        self.algorithm
    }
    /// Initial in-flight limit.
    pub fn initial_limit(&self) -> u32 {
        self.initial_limit
    }
    /// Floor of the in-flight limit.
    pub fn min_limit(&self) -> u32 {
        self.min_limit
    }
    /// Ceiling of the in-flight limit.
    pub fn max_limit(&self) -> u32 {
        self.max_limit
    }
    /// How samples reach the algorithm.
    pub fn aggregation(&self) -> SampleAggregation {
        self.aggregation
    }
    /// Tier shares.
    pub fn tier_shares(&self) -> TierShares {
        self.tier_shares
    }
    /// The minRTT probe, if enabled.
    pub fn min_rtt_probe(&self) -> Option<MinRttProbe> {
        self.min_rtt_probe
    }
    /// Seed of the probe jitter, if fixed.
    pub fn jitter_seed(&self) -> Option<u64> {
        self.jitter_seed
    }

    /// Checks every rule [`ConcurrencyConfigBuilder::build`] enforces.
    ///
    /// # Errors
    ///
    /// The first broken rule, as a [`ConfigError`] carrying the offending values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use ConfigError as E;
        if !(self.min_limit >= 1
            && self.min_limit <= self.initial_limit
            && self.initial_limit <= self.max_limit)
        {
            return Err(E::ConcurrencyLimitsOutOfOrder {
                min: self.min_limit,
                initial: self.initial_limit,
                max: self.max_limit,
            });
        }
        let range = |name: &'static str, value: f64, ok: bool, range: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(E::ConcurrencyValueOutOfRange { name, value, range })
            }
        };
        match self.algorithm {
            ConcurrencyAlgorithm::Gradient2(p) => {
                range(
                    "rtt_tolerance",
                    p.rtt_tolerance,
                    p.rtt_tolerance >= 1.0 && p.rtt_tolerance.is_finite(),
                    "[1, ∞)",
                )?;
                range(
                    "smoothing",
                    p.smoothing,
                    p.smoothing > 0.0 && p.smoothing <= 1.0,
                    "(0, 1]",
                )?;
                range(
                    "max_gradient",
                    p.max_gradient,
                    (1.0..=2.0).contains(&p.max_gradient),
                    "[1, 2]",
                )?;
                if let Some(r) = p.long_rise_cap {
                    range("long_rise_cap", r, (0.0..1.0).contains(&r), "[0, 1)")?;
                }
                if p.long_window == 0 {
                    return Err(E::ZeroCapacity {
                        name: "long_window",
                    });
                }
                if let QueueSize::Fixed(0) = p.queue_size {
                    // A zero headroom is allowed only when the gradient can exceed 1.
                    if p.max_gradient <= 1.0 {
                        return Err(E::ZeroCapacity { name: "queue_size" });
                    }
                }
            }
            ConcurrencyAlgorithm::Aimd(p) => {
                if !(p.backoff_ratio >= 0.5 && p.backoff_ratio < 1.0) {
                    return Err(E::ConcurrencyValueOutOfRange {
                        name: "backoff_ratio",
                        value: p.backoff_ratio,
                        range: "[0.5, 1)",
                    });
                }
                if p.timeout.is_zero() {
                    return Err(E::ZeroDuration { name: "timeout" });
                }
                if let Some(tol) = p.latency_tolerance {
                    range(
                        "latency_tolerance",
                        tol,
                        tol >= 1.0 && tol.is_finite(),
                        "[1, ∞)",
                    )?;
                }
                if p.noload_window == 0 {
                    return Err(E::ZeroCapacity {
                        name: "noload_window",
                    });
                }
            }
        }
        if let SampleAggregation::Windowed {
            min_window,
            max_window,
            min_samples,
        } = self.aggregation
        {
            if min_window.is_zero() {
                return Err(E::ZeroDuration { name: "min_window" });
            }
            if max_window < min_window {
                return Err(E::ConcurrencyWindowsOutOfOrder {
                    min_window,
                    max_window,
                });
            }
            if min_samples == 0 {
                return Err(E::ZeroCapacity {
                    name: "min_samples",
                });
            }
        }
        let s = self.tier_shares;
        let each_ok = [s.critical, s.standard, s.non_essential]
            .iter()
            .all(|v| *v > 0.0 && *v <= 1.0);
        if !each_ok || s.standard > s.critical || s.non_essential > s.standard {
            return Err(E::InvalidTierShares {
                critical: s.critical,
                standard: s.standard,
                non_essential: s.non_essential,
            });
        }
        if let Some(p) = self.min_rtt_probe {
            if p.interval.is_zero() {
                return Err(E::ZeroDuration {
                    name: "probe interval",
                });
            }
            range(
                "probe jitter",
                p.jitter,
                (0.0..=1.0).contains(&p.jitter),
                "[0, 1]",
            )?;
            range(
                "probe percentile",
                p.percentile,
                p.percentile > 0.0 && p.percentile <= 1.0,
                "(0, 1]",
            )?;
            if p.request_count == 0 {
                return Err(E::ZeroCapacity {
                    name: "probe request_count",
                });
            }
            if p.request_count > super::MAX_PROBE_REQUEST_COUNT {
                return Err(E::TooLarge {
                    name: "probe request_count",
                    value: u64::from(p.request_count),
                    max: u64::from(super::MAX_PROBE_REQUEST_COUNT),
                });
            }
            if p.probe_limit == 0 {
                return Err(E::ZeroCapacity {
                    name: "probe_limit",
                });
            }
        }
        Ok(())
    }
}

/// Consuming builder for [`ConcurrencyConfig`]; nothing is checked until
/// [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct ConcurrencyConfigBuilder {
    cfg: ConcurrencyConfig,
}

impl ConcurrencyConfigBuilder {
    crate::util::setters! {
        /// The algorithm and its constants.
        algorithm: ConcurrencyAlgorithm;
        /// Initial in-flight limit (default 20); must lie in `[min_limit, max_limit]`.
        initial_limit: u32;
        /// Floor of the in-flight limit (default 4); at least 1.
        min_limit: u32;
        /// Ceiling of the in-flight limit (default 1000).
        max_limit: u32;
        /// How samples reach the algorithm (default: windows of 100–500 ms with at least 10).
        aggregation: SampleAggregation;
        /// Tier shares (default 1.0 / 0.8 / 0.6).
        tier_shares: TierShares;
    }

    /// Enables Envoy-style minRTT re-probing (default off).
    pub fn min_rtt_probe(mut self, value: MinRttProbe) -> Self {
        self.cfg.min_rtt_probe = Some(value);
        self
    }
    /// Fixes the seed of the probe jitter (default: random per limiter).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.cfg.jitter_seed = Some(seed);
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule and its values: limits not
    /// `1 ≤ min ≤ initial ≤ max`; a Gradient2 tolerance below 1, smoothing outside `(0, 1]`,
    /// maximum gradient outside `[1, 2]`, zero long window; an AIMD backoff outside
    /// `[0.5, 1)`, zero timeout, tolerance below 1, zero no-load window; a zero or inverted
    /// aggregation window or zero `min_samples`; tier shares outside `(0, 1]` or increasing
    /// from critical to non-essential; a probe with zero interval, count or limit, or jitter
    /// or percentile out of range.
    pub fn build(self) -> Result<ConcurrencyConfig, ConfigError> {
        self.cfg.validate()?;
        Ok(self.cfg)
    }
}

/// How much headroom Gradient2 adds on each update.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum QueueSize {
    /// A constant (Netflix's default is 4).
    Fixed(u32),
    /// `max(floor, ⌊√limit⌋)` (Netflix Gradient v1 and Envoy size the headroom this way).
    Sqrt {
        /// The smallest headroom.
        floor: u32,
    },
}

impl QueueSize {
    pub(crate) fn of(self, estimate: f64) -> f64 {
        match self {
            Self::Fixed(n) => f64::from(n),
            Self::Sqrt { floor } => f64::from(floor).max(estimate.max(0.0).sqrt().floor()),
        }
    }
}

/// Netflix `Gradient2Limit`'s parameters (see [`Gradient2Params::netflix`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Gradient2Params {
    /// Length of the long-RTT EMA in updates (factor `2 / (long_window + 1)`); Netflix 600.
    pub long_window: u32,
    /// Updates averaged plainly before the EMA starts; Netflix 10.
    pub long_warmup: u32,
    /// How much slower than the long RTT the short RTT may be before the limit shrinks
    /// (`≥ 1`); Netflix 1.5.
    pub rtt_tolerance: f64,
    /// Headroom added on each update; Netflix `Fixed(4)`.
    pub queue_size: QueueSize,
    /// Weight of the new limit against the old one, in `(0, 1]`; Netflix 0.2 (both directions).
    pub smoothing: f64,
    /// Upper clamp of the gradient, in `[1, 2]`; Netflix 1.0 (growth only from the headroom),
    /// Envoy 2.0 (multiplicative growth while the short RTT is below the tolerated one).
    pub max_gradient: f64,
    /// `None` (Netflix): the long RTT is the EMA above. `Some(r)`: it is a no-load estimate
    /// instead — it drops at once to a faster sample and rises by at most the fraction `r` per
    /// update, so the queue the limit itself tolerates (and a start under load) cannot become
    /// the baseline, while a lasting shift is accepted gradually.
    pub long_rise_cap: Option<f64>,
    /// `Some(n)`: after `n` consecutive updates with the gradient at its floor (the short RTT
    /// at least `2 × tolerance` × the long RTT while the limit shrinks), the long RTT is reset
    /// to the short RTT. A queue the limit causes drains as the limit falls, so it cannot keep
    /// the gradient at the floor; a slower dependency can (Envoy re-measures its minRTT when the
    /// limit stays at its minimum, PR #10647). `None` (Netflix): never.
    pub rebaseline_after_floor_updates: Option<u32>,
}

impl Default for Gradient2Params {
    fn default() -> Self {
        Self::netflix()
    }
}

impl Gradient2Params {
    /// Netflix's defaults: long window 600 (warm-up 10), tolerance 1.5, queue 4, smoothing 0.2,
    /// gradient clamped to `[0.5, 1.0]`.
    pub const fn netflix() -> Self {
        Self {
            long_window: 600,
            long_warmup: 10,
            rtt_tolerance: 1.5,
            queue_size: QueueSize::Fixed(4),
            smoothing: 0.2,
            max_gradient: 1.0,
            long_rise_cap: None,
            rebaseline_after_floor_updates: None,
        }
    }
}

/// AIMD parameters (see [`AimdParams::netflix`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct AimdParams {
    /// Multiplier on a drop or a slow sample, in `[0.5, 1)`; Netflix 0.9.
    pub backoff_ratio: f64,
    /// A sample slower than this is treated as a drop; Netflix 5 s.
    #[cfg_attr(
        feature = "serde",
        serde(with = "crate::config::duration_ms", rename = "timeout_ms")
    )]
    pub timeout: Duration,
    /// A sample slower than `tolerance × no-load RTT` is treated as a drop (ThrottleKit TK-026,
    /// 2.0); `None` uses only `timeout` (Netflix).
    pub latency_tolerance: Option<f64>,
    /// Samples in the rolling minimum that estimates the no-load RTT (TK-026: 100).
    pub noload_window: u32,
}

impl Default for AimdParams {
    fn default() -> Self {
        Self::netflix()
    }
}

impl AimdParams {
    /// Netflix's defaults (backoff 0.9, timeout 5 s) with ThrottleKit's latency rule (a sample
    /// slower than 2 × the minimum of the last 100 samples backs off): without it a service
    /// that slows down but never errors would never see the limit fall.
    pub const fn netflix() -> Self {
        Self {
            backoff_ratio: 0.9,
            timeout: Duration::from_secs(5),
            latency_tolerance: Some(2.0),
            noload_window: 100,
        }
    }
}
