//! A small circuit breaker fed by the throttle's classified outcomes, whose state drives the
//! limit (open → floor, half-open → half of the initial limit, closed → restore and ramp).
//!
//! Pure: every method takes `now`. Transitions:
//!
//! - closed → open after `failure_threshold` consecutive failures (an overload outcome, or
//!   `consecutive_critical` responses in a row at or above `sla_critical`);
//! - open → half-open once `open_duration` has passed (lazily, on the next use);
//! - half-open → closed after `half_open_trials` consecutive successes; any failure re-opens.

use std::time::Duration;

use crate::governance::BreakerState;

/// Consecutive failures that open the breaker.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// How long the breaker stays open before trying again.
pub const DEFAULT_OPEN_DURATION: Duration = Duration::from_secs(30);
/// Consecutive successes in half-open that close it.
pub const DEFAULT_HALF_OPEN_TRIALS: u32 = 3;
/// Consecutive critical latencies that count as one failure (Baldur's bridge).
pub const DEFAULT_CONSECUTIVE_CRITICAL: u32 = 3;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// Time spent open before half-open.
    pub open_duration: Duration,
    /// Consecutive half-open successes that close it (at least 1).
    pub half_open_trials: u32,
    /// Responses at or above `sla_critical` in a row that count as one failure (at least 1).
    pub consecutive_critical: u32,
}

impl Default for BreakerConfig {
    /// # Default
    ///
    /// 5 failures, 30 s open, 3 trials, 3 consecutive critical latencies.
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            open_duration: DEFAULT_OPEN_DURATION,
            half_open_trials: DEFAULT_HALF_OPEN_TRIALS,
            consecutive_critical: DEFAULT_CONSECUTIVE_CRITICAL,
        }
    }
}

/// Breaker counters, for stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BreakerStats {
    /// State now.
    pub state: BreakerState,
    /// Consecutive failures counted towards opening.
    pub consecutive_failures: u32,
    /// Consecutive critical latencies counted towards one failure.
    pub consecutive_critical: u32,
    /// Failures seen in total.
    pub failures: u64,
    /// Successes seen in total.
    pub successes: u64,
    /// Times the breaker opened.
    pub opened: u64,
    /// When it last opened.
    pub opened_at: Option<Duration>,
}

/// The breaker. See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct CircuitBreaker {
    cfg: BreakerConfig,
    stats: BreakerStats,
    half_open_successes: u32,
}

impl CircuitBreaker {
    /// A closed breaker. Zero thresholds are raised to 1.
    pub(crate) fn new(cfg: BreakerConfig) -> Self {
        let cfg = BreakerConfig {
            failure_threshold: cfg.failure_threshold.max(1),
            half_open_trials: cfg.half_open_trials.max(1),
            consecutive_critical: cfg.consecutive_critical.max(1),
            ..cfg
        };
        Self {
            cfg,
            stats: BreakerStats::default(),
            half_open_successes: 0,
        }
    }

    /// State at `now` (an open breaker whose time is up becomes half-open).
    pub(crate) fn state(&mut self, now: Duration) -> BreakerState {
        if self.stats.state == BreakerState::Open {
            let opened = self.stats.opened_at.unwrap_or(now);
            if now.saturating_sub(opened) >= self.cfg.open_duration {
                self.stats.state = BreakerState::HalfOpen;
                self.half_open_successes = 0;
            }
        }
        self.stats.state
    }

    /// Settings in force.
    pub(crate) fn config(&self) -> BreakerConfig {
        self.cfg
    }

    /// Counters.
    pub(crate) fn stats(&self) -> BreakerStats {
        self.stats
    }

    /// A response that completed: `critical` when its latency was at or above `sla_critical`.
    pub(crate) fn on_response(&mut self, critical: bool, now: Duration) -> BreakerState {
        if critical {
            self.stats.consecutive_critical += 1;
            if self.stats.consecutive_critical >= self.cfg.consecutive_critical {
                self.stats.consecutive_critical = 0;
                return self.on_failure(now);
            }
            return self.state(now);
        }
        self.stats.consecutive_critical = 0;
        self.stats.successes += 1;
        match self.state(now) {
            BreakerState::Closed => self.stats.consecutive_failures = 0,
            BreakerState::HalfOpen => {
                self.half_open_successes += 1;
                if self.half_open_successes >= self.cfg.half_open_trials {
                    self.stats.state = BreakerState::Closed;
                    self.stats.consecutive_failures = 0;
                }
            }
            BreakerState::Open => {}
        }
        self.stats.state
    }

    /// A failure (an overload outcome).
    pub(crate) fn on_failure(&mut self, now: Duration) -> BreakerState {
        self.stats.failures += 1;
        match self.state(now) {
            BreakerState::Closed => {
                self.stats.consecutive_failures += 1;
                if self.stats.consecutive_failures >= self.cfg.failure_threshold {
                    self.open(now);
                }
            }
            BreakerState::HalfOpen => self.open(now),
            BreakerState::Open => {}
        }
        self.stats.state
    }

    fn open(&mut self, now: Duration) {
        self.stats.state = BreakerState::Open;
        self.stats.opened_at = Some(now);
        self.stats.opened += 1;
        self.half_open_successes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    #[test]
    fn opens_after_threshold_and_half_opens_after_duration() {
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        for _ in 0..4 {
            assert_eq!(b.on_failure(s(0)), BreakerState::Closed);
        }
        assert_eq!(b.on_failure(s(0)), BreakerState::Open);
        assert_eq!(b.state(s(29)), BreakerState::Open);
        assert_eq!(b.state(s(30)), BreakerState::HalfOpen);
        assert_eq!(b.on_response(false, s(30)), BreakerState::HalfOpen);
        assert_eq!(b.on_response(false, s(30)), BreakerState::HalfOpen);
        assert_eq!(b.on_response(false, s(31)), BreakerState::Closed);
        assert_eq!(b.stats().opened, 1);
    }

    #[test]
    fn failure_in_half_open_reopens() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            ..BreakerConfig::default()
        });
        b.on_failure(s(0));
        assert_eq!(b.state(s(30)), BreakerState::HalfOpen);
        assert_eq!(b.on_failure(s(30)), BreakerState::Open);
        assert_eq!(b.stats().opened_at, Some(s(30)));
    }

    #[test]
    fn three_consecutive_critical_latencies_count_as_one_failure() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 2,
            ..BreakerConfig::default()
        });
        b.on_response(true, s(0));
        b.on_response(true, s(0));
        b.on_response(false, s(0)); // the run is broken
        b.on_response(true, s(0));
        b.on_response(true, s(0));
        assert_eq!(b.stats().failures, 0);
        b.on_response(true, s(0));
        assert_eq!(b.stats().failures, 1);
        for _ in 0..3 {
            b.on_response(true, s(0));
        }
        assert_eq!(b.state(s(0)), BreakerState::Open);
    }

    #[test]
    fn success_resets_consecutive_failures_when_closed() {
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        for _ in 0..4 {
            b.on_failure(s(0));
        }
        b.on_response(false, s(0));
        for _ in 0..4 {
            b.on_failure(s(0));
        }
        assert_eq!(b.state(s(0)), BreakerState::Closed);
    }
}
