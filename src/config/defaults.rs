//! The `DEFAULT_*` constants of the recommended configuration and the `BALDUR_*` constants
//! that only the Baldur preset uses.

use std::time::Duration;

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
/// Baldur: trend above which the limit is cut (the EMA of latency rising by more than 10 %).
pub const BALDUR_GRADIENT_UP_THRESHOLD: f64 = 0.1;
/// Baldur: trend below which the limit grows (the EMA of latency falling by more than 5 %).
pub const BALDUR_GRADIENT_DOWN_THRESHOLD: f64 = -0.05;
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
/// Sub-buckets of the sub-bucketed sliding window, `RateStrategy::SlidingWindow`
/// (ThrottleKit's default), for those who choose it: no preset does.
pub const DEFAULT_WINDOW_BUCKETS: u32 = 10;
/// Capacity of the event broadcast channel; slow subscribers lag rather than block.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Largest accepted `event_capacity`: the channel allocates every slot up front.
pub const MAX_EVENT_CAPACITY: usize = 1 << 16;
/// Largest accepted `min_rtt_probe.request_count`: a probe keeps one latency per request.
pub const MAX_PROBE_REQUEST_COUNT: u32 = 100_000;
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
/// Trend above which the limit is cut: the interval mean more than this far above no-load
/// (+200 %; the recommended trend is a distance from no-load, see
/// [`TrendEstimator::NoLoadBaseline`](crate::config::TrendEstimator::NoLoadBaseline)).
pub const DEFAULT_GRADIENT_UP_THRESHOLD: f64 = 2.0;
/// Trend below which the limit grows: the interval mean less than this far above no-load
/// (+100 %).
pub const DEFAULT_GRADIENT_DOWN_THRESHOLD: f64 = 1.0;
/// Recommended config: GCRA burst as a fraction of the limit.
pub const DEFAULT_GCRA_BURST_FRACTION: f64 = 0.5;
/// Most samples kept per sample interval for percentiles (a uniform reservoir beyond it).
pub const DEFAULT_INTERVAL_SAMPLE_CAPACITY: usize = 1024;
