use std::sync::Arc;
use std::time::Duration;

use super::capacity::{CapacityEstimator, Observation};
use super::interval::IntervalSamples;
use super::ladder::{next_limit, LadderInput};
use crate::breaker::CircuitBreaker;
use crate::config::{SignalKind, SlaTrigger, ThrottleConfig, TrendEstimator};
use crate::counters::{RttHistogram, RttTally};
use crate::events::{ChangeReason, FreezeReason, LimitChange, ThrottleEvent};
use crate::governance::{BreakerState, GovernanceState};
use crate::signal::{
    from_millis_f64, millis_f64, EmaGradient, LatencySignal, SampleStats, SignalSnapshot,
    TimeBucketedGradient,
};
use crate::util::splitmix64;

mod deferral;
mod estimate;
mod inputs;
mod ramp;

pub(crate) use deferral::DeferralWindow;
use estimate::estimator_for;
pub(crate) use estimate::{Demand, STARVED_AFTER_INTERVALS};

use ramp::{ramp_cap, Ramp};

/// What the throttle is doing, derived from its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Regime {
    /// The limit follows latency and is at or above its base.
    Normal,
    /// The last change was a cut, or the limit is below its base (on a throttle, also: the
    /// concurrency axis shed work within the last second).
    Throttling,
    /// A recovery ramp is climbing back to the pre-incident base.
    Recovering,
    /// At least one freeze reason is set: samples are kept, changes are not applied.
    Frozen,
}

impl Regime {
    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Throttling => "throttling",
            Self::Recovering => "recovering",
            Self::Frozen => "frozen",
        }
    }

    /// A small integer for gauges: 0 normal, 1 throttling, 2 recovering, 3 frozen.
    pub const fn as_index(self) -> u8 {
        self as u8
    }
}

/// Where a recovery ramp stands.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RampProgress {
    /// The pre-incident base the ramp climbs to.
    pub base: u32,
    /// Stages applied so far (0 while a start jitter is pending).
    pub stages_applied: usize,
    /// Number of stages.
    pub stages: usize,
    /// Fraction of the base of the latest stage applied (0 before the first).
    pub fraction: f64,
    /// An increase the ladder wanted above the stage cap, applied when the ramp ends.
    pub pending: Option<u32>,
    /// Time since the ramp started.
    pub elapsed: Duration,
    /// Time until the next stage (or the end of the ramp).
    pub next_in: Duration,
}

/// Counters of the controller.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub(crate) struct ControllerStats {
    /// Adjustments that raised the limit.
    pub(crate) adjustments_up: u64,
    /// Adjustments that lowered the limit.
    pub(crate) adjustments_down: u64,
    /// Adjustment ticks that saw an SLA warning.
    pub(crate) sla_warnings: u64,
    /// Adjustment ticks that saw an SLA critical.
    pub(crate) sla_criticals: u64,
    /// Adjustment ticks run (including holds and frozen ticks).
    pub(crate) ticks: u64,
    /// The latest change of the limit.
    pub(crate) last_change: Option<LimitChange>,
}

#[derive(Debug, Clone)]
enum Signal {
    Ema(EmaGradient),
    Bucketed(TimeBucketedGradient),
}

impl Signal {
    fn for_config(cfg: &ThrottleConfig) -> Self {
        match cfg.signal {
            SignalKind::Ema => Self::Ema(EmaGradient::new(cfg.smoothing_factor, cfg.min_samples)),
            SignalKind::TimeBucketed { window } => {
                Self::Bucketed(TimeBucketedGradient::new(window, cfg.min_samples))
            }
        }
    }

    fn matches(&self, kind: SignalKind) -> bool {
        matches!(
            (self, kind),
            (Self::Ema(_), SignalKind::Ema) | (Self::Bucketed(_), SignalKind::TimeBucketed { .. })
        )
    }

    fn as_dyn(&self) -> &dyn LatencySignal {
        match self {
            Self::Ema(s) => s,
            Self::Bucketed(s) => s,
        }
    }

    fn as_dyn_mut(&mut self) -> &mut dyn LatencySignal {
        match self {
            Self::Ema(s) => s,
            Self::Bucketed(s) => s,
        }
    }
}

/// The adaptive limit and everything that moves it. See the [module docs](super).
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    cfg: Arc<ThrottleConfig>,
    limit: u32,
    base_limit: u32,
    last_adjust_at: Option<Duration>,
    signal: Signal,
    interval: IntervalSamples,
    previous_interval_mean: Option<f64>,
    long_baseline: Option<f64>,
    /// When the limit last changed (for `skip_stale_samples`).
    last_change_at: Option<Duration>,
    freeze: u8,
    ramp: Option<Ramp>,
    last_was_cut: bool,
    stats: ControllerStats,
    rng: u64,
    gov: GovernanceState,
    breaker: Option<CircuitBreaker>,
    rtt_tally: RttTally,
    /// The capacity estimate, with `Adaptation::CapacityEstimate`.
    capacity: Option<CapacityEstimator>,
    /// What the throttle admitted and rejected, as of the latest record.
    demand: Demand,
    /// The capacity estimate's figures for the change being made (delivered per second,
    /// no-load latency), taken by `set_limit`.
    figures: Option<(f64, Duration)>,
}

impl Controller {
    /// A controller at `initial_limit` with the gate open.
    #[cfg(test)]
    pub(crate) fn new(cfg: ThrottleConfig) -> Self {
        Self::with_config(Arc::new(cfg))
    }

    pub(crate) fn with_config(cfg: Arc<ThrottleConfig>) -> Self {
        let mut rng = cfg.jitter_seed.unwrap_or_else(crate::util::random_seed);
        let sample_seed = splitmix64(&mut rng);
        Self {
            limit: cfg.initial_limit,
            base_limit: cfg.initial_limit,
            last_adjust_at: None,
            signal: Signal::for_config(&cfg),
            interval: IntervalSamples::new(
                crate::config::DEFAULT_INTERVAL_SAMPLE_CAPACITY,
                sample_seed,
            ),
            previous_interval_mean: None,
            long_baseline: None,
            last_change_at: None,
            freeze: 0,
            ramp: None,
            last_was_cut: false,
            stats: ControllerStats::default(),
            rng,
            gov: GovernanceState::default(),
            breaker: None,
            rtt_tally: RttTally::default(),
            capacity: estimator_for(&cfg),
            demand: Demand::default(),
            figures: None,
            cfg,
        }
    }

    /// The current limit.
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// The base the limit returns to (the initial limit, or the pre-incident limit recorded when
    /// a recovery ramp started).
    pub(crate) fn base_limit(&self) -> u32 {
        self.base_limit
    }

    /// Smoothed latency and gradient of the signal.
    pub(crate) fn snapshot(&self, now: Duration) -> SignalSnapshot {
        self.signal.as_dyn().snapshot(now)
    }

    /// Sample statistics of the signal.
    pub(crate) fn sample_stats(&self, now: Duration) -> SampleStats {
        self.signal.as_dyn().stats(now)
    }

    /// Counters.
    pub(crate) fn stats(&self) -> ControllerStats {
        self.stats
    }

    /// Latencies recorded (raw, before any overload floor), as a histogram.
    pub(crate) fn rtt_histogram(&self) -> RttHistogram {
        self.rtt_tally.histogram()
    }

    /// The regime, derived from the state.
    pub(crate) fn regime(&self) -> Regime {
        // With the capacity estimate the limit is a measurement, not a level to return to: the
        // throttle throttles when it sheds work (its limit rejected requests, or it cut on
        // queueing), whatever the limit is against its start.
        let shedding = match &self.capacity {
            Some(c) => c.latest().is_some_and(|e| e.shedding),
            None => self.last_was_cut || self.limit < self.base_limit,
        };
        if self.freeze != 0 {
            Regime::Frozen
        } else if self.ramp.is_some() {
            Regime::Recovering
        } else if shedding {
            Regime::Throttling
        } else {
            Regime::Normal
        }
    }

    /// Freeze reasons currently set.
    pub(crate) fn freeze_reasons(&self) -> Vec<FreezeReason> {
        FreezeReason::ALL
            .into_iter()
            .filter(|r| self.freeze & r.bit() != 0)
            .collect()
    }

    /// True when any freeze reason is set.
    #[cfg(test)]
    pub(crate) fn is_frozen(&self) -> bool {
        self.freeze != 0
    }

    /// True while something moves with time alone (a ramp, or an open breaker waiting to
    /// half-open), so callers know to [`advance`](Self::advance) before reading the limit.
    pub(crate) fn awaits_time(&self) -> bool {
        self.ramp.is_some()
            || self
                .breaker
                .as_ref()
                .is_some_and(|b| b.stats().state == BreakerState::Open)
    }

    /// Feeds one response time observed at `now`. The sample always reaches the signal; at most
    /// once per `sample_interval` (the gate starts open) the ladder runs and may change the
    /// limit, unless frozen.
    pub(crate) fn record(&mut self, rtt: Duration, now: Duration, events: &mut Vec<ThrottleEvent>) {
        self.rtt_tally.add(rtt);
        if let Some(breaker) = self.breaker.as_mut() {
            let state = breaker.on_response(rtt >= self.cfg.sla_critical, now);
            self.breaker_moved(state, now, events);
        }
        self.record_sample(rtt, now, events);
    }

    /// Feeds a request that failed in a way that signals overload (a 5xx or an inner error):
    /// a failure for the breaker, and a sample at least as slow as `sla_warning` for the ladder.
    pub(crate) fn record_overload(
        &mut self,
        rtt: Duration,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        self.rtt_tally.add(rtt);
        if let Some(breaker) = self.breaker.as_mut() {
            let state = breaker.on_failure(now);
            self.breaker_moved(state, now, events);
        }
        self.record_sample(rtt.max(self.cfg.sla_warning), now, events);
    }

    pub(super) fn record_sample(
        &mut self,
        rtt: Duration,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        self.signal.as_dyn_mut().add(rtt, now);
        if let Some(c) = self.capacity.as_mut() {
            c.completed();
        }
        // With `skip_stale_samples`, a request admitted before the latest change describes the
        // old limit: it reaches the signal but not the ladder, which waits for fresh samples.
        // The capacity estimate reads every sample at once (its cuts are relative to what is
        // delivered, so a backlog from the old limit cannot compound them).
        let skip_stale = self.cfg.skip_stale_samples && self.capacity.is_none();
        let stale = skip_stale
            && self
                .last_change_at
                .is_some_and(|changed| now.saturating_sub(rtt) < changed);
        if !stale {
            self.interval.push(millis_f64(rtt));
        }
        self.advance(now, events);
        let gate_open = self.adjustment_due(now);
        let fresh_enough =
            !skip_stale || self.interval.count() >= u64::from(self.cfg.min_samples.max(1));
        if gate_open && fresh_enough {
            self.last_adjust_at = Some(now);
            self.tick(rtt, now, events);
        }
    }

    pub(super) fn tick(
        &mut self,
        triggering_rtt: Duration,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        self.stats.ticks += 1;
        let min_samples = u64::from(self.cfg.min_samples);
        let enough = self.interval.count() >= min_samples;
        let mean = self.interval.mean();
        let sla_rtt = match self.cfg.sla_trigger {
            SlaTrigger::TriggeringSample => triggering_rtt,
            SlaTrigger::IntervalPercentile(q) => self
                .interval
                .quantile(q)
                .map_or(triggering_rtt, from_millis_f64),
        };
        let gradient = match self.cfg.trend {
            TrendEstimator::Signal => self.signal.as_dyn().snapshot(now).gradient,
            TrendEstimator::IntervalMeans => {
                let g = match (mean, self.previous_interval_mean) {
                    (Some(m), Some(p)) if enough && p > 0.0 => (m - p) / p,
                    _ => 0.0,
                };
                if enough {
                    self.previous_interval_mean = mean;
                }
                g
            }
            TrendEstimator::NoLoadBaseline { rise_per_interval } => {
                let g = match (mean, self.long_baseline) {
                    (Some(m), Some(b)) if enough && b > 0.0 => (m - b) / b,
                    _ => 0.0,
                };
                if let (true, Some(m)) = (enough, mean) {
                    self.long_baseline = Some(match self.long_baseline {
                        None => m,
                        Some(b) => m.min(b * (1.0 + rise_per_interval)),
                    });
                }
                g
            }
            TrendEstimator::LongShortBaseline { long_smoothing } => {
                let g = match (mean, self.long_baseline) {
                    (Some(m), Some(l)) if enough && l > 0.0 => (m - l) / l,
                    _ => 0.0,
                };
                if let (true, Some(m)) = (enough, mean) {
                    self.long_baseline = Some(match self.long_baseline {
                        None => m,
                        Some(l) => l * (1.0 - long_smoothing) + m * long_smoothing,
                    });
                }
                g
            }
        };
        let capacity = self.capacity.as_mut().map(|c| {
            c.observe(Observation {
                now,
                mean_ms: mean.filter(|_| enough),
                admitted: self.demand.admitted,
                rejected: self.demand.rejected,
                inflight: self.demand.inflight,
                rate: f64::from(self.limit) / self.cfg.window.as_secs_f64().max(1e-9),
            })
        });
        self.interval.clear();

        if sla_rtt >= self.cfg.sla_critical {
            self.stats.sla_criticals += 1;
            events.push(ThrottleEvent::SlaCritical {
                at: now,
                rtt: sla_rtt,
                threshold: self.cfg.sla_critical,
            });
        } else if sla_rtt >= self.cfg.sla_warning {
            self.stats.sla_warnings += 1;
            events.push(ThrottleEvent::SlaWarning {
                at: now,
                rtt: sla_rtt,
                threshold: self.cfg.sla_warning,
            });
        }
        if self.freeze != 0 {
            return;
        }
        let (target, reason, gradient) = match capacity {
            None => {
                let input = LadderInput {
                    rtt: sla_rtt,
                    gradient,
                };
                let adj = next_limit(self.limit, input, &self.cfg);
                let Some(reason) = adj.reason else {
                    return;
                };
                (adj.limit, reason, gradient)
            }
            Some(None) => return,
            Some(Some(estimate)) => {
                let Some((target, reason)) = self.capacity_target(estimate, sla_rtt) else {
                    return;
                };
                // The trend the estimate saw: how far latency sits above its floor.
                let gradient = estimate.mean_ms / estimate.baseline_ms.max(1e-9) - 1.0;
                self.figures = Some((
                    estimate.delivered,
                    Duration::from_secs_f64(estimate.baseline_ms.max(0.0) / 1000.0),
                ));
                (target, reason, gradient)
            }
        };
        let mut target = target;
        if let (true, Some(cap)) = (target > self.limit, self.gov.reduction_cap) {
            // Min-winner: while an external reduction is active the ladder may cut below its
            // cap but never raise the limit above it.
            target = target.min(cap.max(self.limit));
        }
        if target > self.limit {
            if let Some(ramp) = self.ramp.as_mut() {
                let cap = ramp_cap(&self.cfg, ramp, self.limit).max(self.limit);
                if target > cap {
                    ramp.pending = Some(ramp.pending.map_or(target, |p| p.max(target)));
                    target = cap;
                }
            }
        } else if target < self.limit {
            if let Some(ramp) = self.ramp.as_mut() {
                ramp.pending = None;
            }
        }
        if target < self.limit {
            self.stats.adjustments_down += 1;
            self.last_was_cut = true;
        } else if target > self.limit {
            self.stats.adjustments_up += 1;
            self.last_was_cut = false;
        } else if reason == ChangeReason::Headroom {
            self.last_was_cut = false;
        }
        self.set_limit(target, reason, Some(sla_rtt), gradient, now, events);
    }

    /// Sets the limit, emitting `LimitChanged` (and `LimitRecovered` when it leaves the floor).
    pub(super) fn set_limit(
        &mut self,
        new: u32,
        reason: ChangeReason,
        rtt: Option<Duration>,
        gradient: f64,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let previous = self.limit;
        let figures = self.figures.take();
        if new == previous {
            return;
        }
        self.limit = new;
        self.last_change_at = Some(now);
        let change = LimitChange {
            at: now,
            previous,
            new,
            reason,
            rtt,
            gradient,
            delivered_per_sec: figures.map(|(d, _)| d),
            baseline_rtt: figures.map(|(_, b)| b),
        };
        self.stats.last_change = Some(change);
        events.push(ThrottleEvent::LimitChanged(change));
        if previous <= self.cfg.min_limit && new > previous {
            events.push(ThrottleEvent::LimitRecovered {
                at: now,
                previous,
                new,
                rtt,
            });
        }
    }

    /// Sets a freeze reason. Returns false if it was already set.
    pub(crate) fn freeze(
        &mut self,
        reason: FreezeReason,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) -> bool {
        if self.freeze & reason.bit() != 0 {
            return false;
        }
        self.freeze |= reason.bit();
        events.push(ThrottleEvent::Frozen { at: now, reason });
        true
    }

    /// Clears a freeze reason. Returns false if it was not set.
    pub(crate) fn unfreeze(
        &mut self,
        reason: FreezeReason,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) -> bool {
        if self.freeze & reason.bit() == 0 {
            return false;
        }
        self.freeze &= !reason.bit();
        events.push(ThrottleEvent::Unfrozen {
            at: now,
            reason,
            all_clear: self.freeze == 0,
        });
        true
    }

    /// Sets the limit directly (an operator or an external input such as the fleet's shared
    /// limit), clamped to the bounds.
    pub(crate) fn override_limit(
        &mut self,
        limit: u32,
        reason: ChangeReason,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let new = self.cfg.clamp(u64::from(limit));
        self.last_was_cut = new < self.limit;
        self.set_limit(new, reason, None, 0.0, now, events);
    }

    /// Replaces the configuration and returns the old one. The limit, samples, freezes and ramp
    /// are kept; the limit is clamped into the new bounds.
    pub(crate) fn swap_config(
        &mut self,
        cfg: Arc<ThrottleConfig>,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) -> Arc<ThrottleConfig> {
        let old = std::mem::replace(&mut self.cfg, cfg);
        if old.adaptation != self.cfg.adaptation {
            self.capacity = estimator_for(&self.cfg);
        }
        match &mut self.signal {
            Signal::Ema(s) if self.cfg.signal == SignalKind::Ema => {
                s.reconfigure(self.cfg.smoothing_factor, self.cfg.min_samples);
            }
            signal if signal.matches(self.cfg.signal) && old.signal == self.cfg.signal => {}
            signal => *signal = Signal::for_config(&self.cfg),
        }
        self.base_limit = self.cfg.clamp(u64::from(self.base_limit));
        let clamped = self.cfg.clamp(u64::from(self.limit));
        self.set_limit(clamped, ChangeReason::ConfigSwap, None, 0.0, now, events);
        old
    }

    /// Clears freezes and the ramp and returns the limit to its base; returns that limit.
    pub(crate) fn rollback_to_base_limit(
        &mut self,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) -> u32 {
        for reason in FreezeReason::ALL {
            self.unfreeze(reason, now, events);
        }
        self.ramp = None;
        self.last_was_cut = false;
        if let Some(base) = self.gov.reduction_base {
            self.base_limit = base;
        }
        self.gov = GovernanceState {
            breaker: self.gov.breaker,
            ..GovernanceState::default()
        };
        let base = self.cfg.clamp(u64::from(self.base_limit));
        self.set_limit(base, ChangeReason::Rollback, None, 0.0, now, events);
        base
    }

    /// Back to the state of a new controller (limit at `initial_limit`, samples and counters
    /// cleared, no freeze, no ramp, gate open).
    pub(crate) fn reset(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        let initial = self.cfg.initial_limit;
        if let Some(c) = self.capacity.as_mut() {
            c.reset();
        }
        for reason in FreezeReason::ALL {
            self.unfreeze(reason, now, events);
        }
        self.set_limit(initial, ChangeReason::Reset, None, 0.0, now, events);
        self.base_limit = initial;
        self.last_adjust_at = None;
        self.signal.as_dyn_mut().reset();
        self.interval.clear();
        self.previous_interval_mean = None;
        self.long_baseline = None;
        self.last_change_at = None;
        self.ramp = None;
        self.last_was_cut = false;
        self.stats = ControllerStats::default();
        self.rtt_tally = RttTally::default();
        self.gov = GovernanceState::default();
        if let Some(breaker) = self.breaker.as_mut() {
            *breaker = CircuitBreaker::new(breaker.config());
        }
    }
}

#[cfg(test)]
mod tests;
