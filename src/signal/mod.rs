//! Latency signal: raw response times in, smoothed latency and a trend (gradient) out.
//!
//! Pure values with no I/O and no clock of their own: the caller passes `now`. Two estimators:
//!
//! - [`EmaGradient`]: an exponential moving average; the gradient is the relative step between
//!   two consecutive averages (Baldur's `GradientCalculator`, with `min_samples` honoured).
//! - [`TimeBucketedGradient`]: one bucket per second in a fixed ring; the gradient compares the
//!   recent half of the window with the previous half. Memory is fixed whatever the traffic.

mod bucketed;
mod ema;

pub(crate) use bucketed::TimeBucketedGradient;
pub(crate) use ema::EmaGradient;

use std::time::Duration;

/// Smoothed latency and gradient, read together.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub(crate) struct SignalSnapshot {
    /// Smoothed latency; `None` before the first sample.
    pub(crate) smoothed_rtt: Option<Duration>,
    /// Relative latency trend: positive means slowing down. Zero until enough samples exist.
    pub(crate) gradient: f64,
}

/// Sample statistics of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SampleStats {
    /// Samples ever added (since the last reset).
    pub sample_count: u64,
    /// Samples added within the signal's recent window (10 s for the EMA, the ring for buckets).
    pub recent_sample_count: u64,
    /// Smoothed latency.
    pub smoothed_rtt: Option<Duration>,
    /// Current gradient.
    pub gradient: f64,
    /// Smallest recent sample.
    pub min_rtt: Option<Duration>,
    /// Largest recent sample.
    pub max_rtt: Option<Duration>,
}

/// A latency estimator the throttle can be fed with.
pub(crate) trait LatencySignal: Send + std::fmt::Debug {
    /// Adds one response time observed at `now`.
    fn add(&mut self, rtt: Duration, now: Duration);
    /// Smoothed latency and gradient at `now`, in one read.
    fn snapshot(&self, now: Duration) -> SignalSnapshot;
    /// Sample statistics at `now`.
    fn stats(&self, now: Duration) -> SampleStats;
    /// Forgets every sample.
    fn reset(&mut self);
}

pub(crate) fn millis_f64(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn from_millis_f64(ms: f64) -> Duration {
    if ms.is_finite() && ms > 0.0 {
        Duration::from_secs_f64(ms / 1000.0)
    } else {
        Duration::ZERO
    }
}
