//! The limit algorithms: pure values updated with one [`LimitSample`] at a time.
//!
//! Both keep the limit as a real number (`estimate`); the enforced limit is its floor.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::{AimdParams, Gradient2Params};

/// What the algorithm sees on one update: a single completed request, or a window of them
/// aggregated (mean RTT, largest in-flight, any drop).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LimitSample {
    /// Round-trip time (or the window's mean).
    pub(crate) rtt: Duration,
    /// Requests in flight when the request was admitted (or the window's largest such value).
    pub(crate) inflight: u32,
    /// Whether the request failed in a way that signals overload (or any in the window did).
    pub(crate) dropped: bool,
}

/// Netflix's `ExpAvgMeasurement`: a plain average over the first `warmup` samples, then an EMA
/// with factor `2 / (window + 1)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExpAvg {
    window: u32,
    warmup: u32,
    count: u32,
    sum: f64,
    value: f64,
}

impl ExpAvg {
    pub(crate) fn new(window: u32, warmup: u32) -> Self {
        Self {
            window,
            warmup,
            count: 0,
            sum: 0.0,
            value: 0.0,
        }
    }

    pub(crate) fn add(&mut self, sample: f64) -> f64 {
        if self.count < self.warmup {
            self.count += 1;
            self.sum += sample;
            self.value = self.sum / f64::from(self.count);
        } else {
            let factor = 2.0 / (f64::from(self.window) + 1.0);
            self.value = self.value * (1.0 - factor) + sample * factor;
        }
        self.value
    }

    pub(crate) fn value(&self) -> f64 {
        self.value
    }

    pub(crate) fn set(&mut self, value: f64) {
        self.value = value;
        self.count = self.count.max(self.warmup);
        self.sum = value * f64::from(self.count);
    }
}

/// Netflix Gradient2, with two documented additions: a dropped sample sets the gradient to its
/// floor 0.5 (ThrottleKit TK-026; Netflix ignores drops, issue #176), and the upper gradient
/// clamp is a parameter (Netflix 1.0).
///
/// Per update, with `short` the sample's RTT:
///
/// 1. `long = EMA(long, short)`; if `long / short > 2`, `long ← 0.95 × long` (drift guard).
/// 2. If `inflight < estimate / 2`, hold (the load, not the server, limits the work).
/// 3. `gradient = clamp(tolerance × long / short, 0.5, max_gradient)` (0.5 when dropped).
/// 4. `new = estimate × gradient + queue`; `estimate ← estimate × (1 − s) + new × s`.
/// 5. Clamp to `[min, max]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Gradient2 {
    params: Gradient2Params,
    estimate: f64,
    long: ExpAvg,
    last_gradient: f64,
    floor_updates: u32,
}

impl Gradient2 {
    /// A limit at `initial`.
    pub(super) fn new(params: Gradient2Params, initial: u32) -> Self {
        Self {
            params,
            estimate: f64::from(initial),
            long: ExpAvg::new(params.long_window, params.long_warmup),
            last_gradient: 1.0,
            floor_updates: 0,
        }
    }

    /// The limit as a real number.
    pub(super) fn estimate(&self) -> f64 {
        self.estimate
    }

    /// The long (baseline) RTT in milliseconds; 0 before the first sample.
    pub(super) fn long_rtt_ms(&self) -> f64 {
        self.long.value()
    }

    /// The gradient of the latest update that was not a hold.
    pub(super) fn last_gradient(&self) -> f64 {
        self.last_gradient
    }

    /// Replaces the long RTT (a minRTT probe's result).
    pub(super) fn rebaseline(&mut self, rtt: Duration) {
        self.long.set(ms(rtt));
    }

    /// Applies one update and returns the new estimate, clamped to `[min, max]`.
    pub(super) fn update(&mut self, sample: LimitSample, min: u32, max: u32) -> f64 {
        let p = self.params;
        let queue = p.queue_size.of(self.estimate);
        let short = ms(sample.rtt).max(1e-6);
        let long = match p.long_rise_cap {
            None => self.long.add(short),
            Some(rise) => {
                let previous = self.long.value();
                let value = if previous > 0.0 {
                    short.min(previous * (1.0 + rise))
                } else {
                    short
                };
                self.long.set(value);
                value
            }
        };
        if long / short > 2.0 {
            let decayed = self.long.value() * 0.95;
            self.long.set(decayed);
        }
        if f64::from(sample.inflight) < self.estimate / 2.0 {
            return self.estimate;
        }
        let gradient = if sample.dropped {
            0.5
        } else {
            (p.rtt_tolerance * long / short).clamp(0.5, p.max_gradient)
        };
        self.last_gradient = gradient;
        if gradient <= 0.5 && !sample.dropped {
            self.floor_updates += 1;
        } else {
            self.floor_updates = 0;
        }
        if p.rebaseline_after_floor_updates
            .is_some_and(|n| self.floor_updates >= n.max(1))
        {
            self.long.set(short);
            self.floor_updates = 0;
        }
        let new = self.estimate * gradient + queue;
        let smoothed = self.estimate * (1.0 - p.smoothing) + new * p.smoothing;
        self.estimate = smoothed.clamp(f64::from(min), f64::from(max));
        self.estimate
    }

    pub(crate) fn set_estimate(&mut self, value: f64) {
        self.estimate = value;
    }
}

/// Additive increase, multiplicative decrease:
///
/// - on a drop, a sample slower than `timeout`, or (when set) slower than
///   `latency_tolerance × no-load RTT`: `L ← ⌊L × backoff_ratio⌋`;
/// - else if `inflight × 2 ≥ L`: `L ← L + 1`;
/// - clamp to `[min, max]`.
///
/// The no-load RTT is the minimum of the last `noload_window` samples (a monotonic deque).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Aimd {
    params: AimdParams,
    estimate: f64,
    /// (sequence, rtt ms), increasing rtt from front to back.
    minima: VecDeque<(u64, f64)>,
    seq: u64,
}

impl Aimd {
    /// A limit at `initial`.
    pub(super) fn new(params: AimdParams, initial: u32) -> Self {
        Self {
            params,
            estimate: f64::from(initial),
            minima: VecDeque::new(),
            seq: 0,
        }
    }

    /// The limit as a real number.
    pub(super) fn estimate(&self) -> f64 {
        self.estimate
    }

    /// The no-load RTT estimate in milliseconds, if any sample was seen.
    pub(super) fn noload_rtt_ms(&self) -> Option<f64> {
        self.minima.front().map(|(_, v)| *v)
    }

    /// Replaces the no-load RTT (a minRTT probe's result).
    pub(super) fn rebaseline(&mut self, rtt: Duration) {
        self.minima.clear();
        self.minima.push_back((self.seq, ms(rtt)));
    }

    /// Applies one update and returns the new estimate, clamped to `[min, max]`.
    pub(super) fn update(&mut self, sample: LimitSample, min: u32, max: u32) -> f64 {
        let p = self.params;
        let rtt = ms(sample.rtt);
        self.seq += 1;
        while self.minima.back().is_some_and(|(_, v)| *v >= rtt) {
            self.minima.pop_back();
        }
        self.minima.push_back((self.seq, rtt));
        let horizon = self.seq.saturating_sub(u64::from(p.noload_window.max(1)));
        while self.minima.front().is_some_and(|(s, _)| *s <= horizon) {
            self.minima.pop_front();
        }
        let noload = self.noload_rtt_ms().unwrap_or(rtt);
        let slow =
            sample.rtt > p.timeout || p.latency_tolerance.is_some_and(|tol| rtt > noload * tol);
        if sample.dropped || slow {
            self.estimate = (self.estimate * p.backoff_ratio).floor();
        } else if f64::from(sample.inflight) * 2.0 >= self.estimate {
            self.estimate += 1.0;
        }
        self.estimate = self.estimate.clamp(f64::from(min), f64::from(max));
        self.estimate
    }

    pub(crate) fn set_estimate(&mut self, value: f64) {
        self.estimate = value;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueSize;

    fn sample(rtt_ms: u64, inflight: u32, dropped: bool) -> LimitSample {
        LimitSample {
            rtt: Duration::from_millis(rtt_ms),
            inflight,
            dropped,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn exp_avg_is_a_plain_average_during_warmup_then_an_ema() {
        let mut a = ExpAvg::new(3, 2); // factor 2/4 = 0.5 after two samples
        assert_eq!(a.add(10.0), 10.0);
        assert_eq!(a.add(20.0), 15.0);
        assert_eq!(a.add(35.0), 25.0); // 15 × 0.5 + 35 × 0.5
    }

    #[test]
    fn gradient2_holds_at_the_same_rtt_and_adds_smoothed_queue() {
        // estimate 20, long = short = 100 ms: gradient = min(1.5, 1.0) = 1
        // new = 20 × 1 + 4 = 24; smoothed = 20 × 0.8 + 24 × 0.2 = 20.8
        let mut g = Gradient2::new(Gradient2Params::netflix(), 20);
        let got = g.update(sample(100, 20, false), 1, 200);
        assert!(close(got, 20.8), "{got}");
        assert!(close(g.last_gradient(), 1.0));
    }

    #[test]
    fn gradient2_shrinks_when_short_rtt_exceeds_tolerated_long_rtt() {
        // Warm-up of one sample at 100 ms, then a sample at 300 ms:
        // long = (100 + 300) / 2 = 200; gradient = 1.5 × 200 / 300 = 1.0 → still 1.0.
        let params = Gradient2Params {
            long_warmup: 1,
            long_window: 3, // factor 0.5
            ..Gradient2Params::netflix()
        };
        let mut g = Gradient2::new(params, 100);
        g.update(sample(100, 100, false), 1, 1000); // long 100, est 100×0.8 + 104×0.2 = 100.8
        assert!(close(g.estimate(), 100.8));
        // long = 100 × 0.5 + 400 × 0.5 = 250; gradient = 1.5 × 250 / 400 = 0.9375
        // new = 100.8 × 0.9375 + 4 = 98.5; est = 100.8 × 0.8 + 98.5 × 0.2 = 100.34
        let got = g.update(sample(400, 100, false), 1, 1000);
        let expect = 100.8 * 0.8 + (100.8 * 0.9375 + 4.0) * 0.2;
        assert!(close(got, expect), "{got} vs {expect}");
        assert!(close(g.last_gradient(), 0.9375));
    }

    #[test]
    fn gradient2_gradient_floor_is_one_half() {
        let params = Gradient2Params {
            long_warmup: 1,
            ..Gradient2Params::netflix()
        };
        let mut g = Gradient2::new(params, 100);
        g.update(sample(10, 100, false), 1, 1000); // long 10
        let before = g.estimate();
        // long ≈ 10.03, short 1000: 1.5 × 10 / 1000 → clamped to 0.5
        let got = g.update(sample(1000, 100, false), 1, 1000);
        assert!(close(got, before * 0.8 + (before * 0.5 + 4.0) * 0.2));
        assert!(close(g.last_gradient(), 0.5));
    }

    #[test]
    fn gradient2_holds_when_under_utilised() {
        let mut g = Gradient2::new(Gradient2Params::netflix(), 100);
        assert_eq!(g.update(sample(500, 49, false), 1, 1000), 100.0);
        assert!(g.long_rtt_ms() > 0.0, "the long RTT still learns");
    }

    #[test]
    fn gradient2_drift_guard_decays_the_long_rtt() {
        let params = Gradient2Params {
            long_warmup: 1,
            long_window: 3,
            ..Gradient2Params::netflix()
        };
        let mut g = Gradient2::new(params, 100);
        g.update(sample(1000, 100, false), 1, 1000); // long 1000
                                                     // long = 500 + 50 = 550; 550 / 100 > 2 → long = 522.5
        g.update(sample(100, 100, false), 1, 1000);
        assert!(close(g.long_rtt_ms(), 550.0 * 0.95), "{}", g.long_rtt_ms());
    }

    #[test]
    fn gradient2_drop_uses_the_floor_gradient() {
        let mut g = Gradient2::new(Gradient2Params::netflix(), 100);
        let got = g.update(sample(10, 100, true), 1, 1000);
        assert!(close(got, 100.0 * 0.8 + (50.0 + 4.0) * 0.2)); // 90.8
    }

    #[test]
    fn gradient2_max_gradient_allows_multiplicative_growth() {
        let params = Gradient2Params {
            max_gradient: 1.5,
            ..Gradient2Params::netflix()
        };
        let mut g = Gradient2::new(params, 100);
        // long = short: gradient = 1.5; new = 150 + 4; est = 80 + 30.8 = 110.8
        assert!(close(g.update(sample(50, 100, false), 1, 1000), 110.8));
    }

    #[test]
    fn gradient2_rise_capped_baseline_drops_at_once_and_rises_slowly() {
        let params = Gradient2Params {
            long_rise_cap: Some(0.01),
            ..Gradient2Params::netflix()
        };
        let mut g = Gradient2::new(params, 100);
        g.update(sample(100, 100, false), 1, 1000);
        assert!(close(g.long_rtt_ms(), 100.0));
        g.update(sample(300, 100, false), 1, 1000);
        assert!(close(g.long_rtt_ms(), 101.0), "rises by at most 1 %");
        g.update(sample(50, 100, false), 1, 1000);
        assert!(close(g.long_rtt_ms(), 50.0), "drops at once");
    }

    #[test]
    fn gradient2_rebaselines_after_consecutive_floor_updates() {
        let params = Gradient2Params {
            long_rise_cap: Some(0.0),
            rebaseline_after_floor_updates: Some(3),
            ..Gradient2Params::netflix()
        };
        let mut g = Gradient2::new(params, 100);
        g.update(sample(40, 100, false), 1, 1000); // baseline 40
        g.update(sample(400, 100, false), 1, 1000); // gradient 0.5: one
        g.update(sample(400, 100, false), 1, 1000); // two
        assert!(close(g.long_rtt_ms(), 40.0));
        g.update(sample(400, 100, false), 1, 1000); // three: the baseline follows
        assert!(close(g.long_rtt_ms(), 400.0));
        let before = g.estimate();
        // now 1.5 × 400 / 400 = 1.5 → clamped to max_gradient 1.0 → growth by the queue
        assert!(g.update(sample(400, 100, false), 1, 1000) > before);
    }

    #[test]
    fn gradient2_sqrt_queue_and_clamps() {
        let params = Gradient2Params {
            queue_size: QueueSize::Sqrt { floor: 4 },
            smoothing: 1.0,
            ..Gradient2Params::netflix()
        };
        let mut g = Gradient2::new(params, 100);
        assert!(close(g.update(sample(50, 100, false), 1, 1000), 110.0)); // 100 + √100
        assert!(close(g.update(sample(50, 110, false), 1, 112), 112.0)); // clamped
    }

    #[test]
    fn aimd_adds_one_when_utilised_and_backs_off_on_drop() {
        let mut a = Aimd::new(AimdParams::netflix(), 20);
        assert_eq!(a.update(sample(10, 10, false), 1, 200), 21.0);
        assert_eq!(
            a.update(sample(10, 5, false), 1, 200),
            21.0,
            "under-utilised: hold"
        );
        assert_eq!(a.update(sample(10, 21, true), 1, 200), 18.0); // ⌊21 × 0.9⌋
        assert_eq!(a.update(sample(6_000, 21, false), 1, 200), 16.0); // timeout: ⌊18 × 0.9⌋
    }

    #[test]
    fn aimd_backs_off_on_latency_above_tolerated_noload() {
        let mut a = Aimd::new(AimdParams::netflix(), 50);
        a.update(sample(10, 50, false), 1, 200); // noload 10 → 51
        assert_eq!(
            a.update(sample(20, 50, false), 1, 200),
            52.0,
            "2× is tolerated"
        );
        assert_eq!(a.update(sample(21, 50, false), 1, 200), 46.0); // ⌊52 × 0.9⌋
        let netflix_only = AimdParams {
            latency_tolerance: None,
            ..AimdParams::netflix()
        };
        let mut b = Aimd::new(netflix_only, 50);
        b.update(sample(10, 50, false), 1, 200);
        assert_eq!(b.update(sample(900, 50, false), 1, 200), 52.0);
    }

    #[test]
    fn aimd_noload_is_a_rolling_minimum() {
        let params = AimdParams {
            noload_window: 3,
            ..AimdParams::netflix()
        };
        let mut a = Aimd::new(params, 50);
        for rtt in [10, 30, 30, 30] {
            a.update(sample(rtt, 50, false), 1, 200);
        }
        assert_eq!(
            a.noload_rtt_ms(),
            Some(30.0),
            "10 ms fell out of the window"
        );
        // 50 → 51 → 45 → 40 (30 ms > 2 × 10 ms twice) → 41; now 59 ms ≤ 2 × 30 ms: grow.
        assert_eq!(a.estimate(), 41.0);
        assert_eq!(a.update(sample(59, 50, false), 1, 200), 42.0);
    }

    #[test]
    fn aimd_respects_the_floor() {
        let mut a = Aimd::new(AimdParams::netflix(), 5);
        assert_eq!(a.update(sample(10, 5, true), 4, 200), 4.0);
    }
}
