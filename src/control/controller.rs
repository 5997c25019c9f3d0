use std::sync::Arc;
use std::time::Duration;

use super::interval::IntervalSamples;
use super::ladder::{next_limit, LadderInput};
use crate::breaker::{BreakerConfig, BreakerStats, CircuitBreaker};
use crate::config::{SignalKind, SlaTrigger, ThrottleConfig, TrendEstimator};
use crate::counters::{RttHistogram, RttTally};
use crate::decision::{RejectReason, Tier};
use crate::events::{ChangeReason, FreezeReason, LimitChange, ThrottleEvent};
use crate::governance::{
    emergency_multiplier, emergency_tier_multiplier, upstream_429_multiplier, BreakerState,
    ErrorBudget, GovernanceSnapshot, GovernanceState, SHEDDING_COMPENSATION,
};
use crate::signal::{
    from_millis_f64, millis_f64, EmaGradient, LatencySignal, SampleStats, SignalSnapshot,
    TimeBucketedGradient,
};
use crate::util::splitmix64;

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
pub struct ControllerStats {
    /// Adjustments that raised the limit.
    pub adjustments_up: u64,
    /// Adjustments that lowered the limit.
    pub adjustments_down: u64,
    /// Adjustment ticks that saw an SLA warning.
    pub sla_warnings: u64,
    /// Adjustment ticks that saw an SLA critical.
    pub sla_criticals: u64,
    /// Adjustment ticks run (including holds and frozen ticks).
    pub ticks: u64,
    /// The latest change of the limit.
    pub last_change: Option<LimitChange>,
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

#[derive(Debug, Clone)]
struct Ramp {
    base: u32,
    started_at: Duration,
    stages_applied: usize,
    next_at: Duration,
    pending: Option<u32>,
}

/// The adaptive limit and everything that moves it. See the [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use tower_adaptive_throttle::{control::Controller, ThrottleConfig};
///
/// let mut c = Controller::new(ThrottleConfig::baldur());
/// let mut events = Vec::new();
/// c.record(Duration::from_millis(600), Duration::ZERO, &mut events);
/// assert_eq!(c.limit(), 70);
/// assert_eq!(events.len(), 2); // SLA critical, limit changed
/// ```
#[derive(Debug, Clone)]
pub struct Controller {
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
}

impl Controller {
    /// A controller at `initial_limit` with the gate open.
    pub fn new(cfg: ThrottleConfig) -> Self {
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
            cfg,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ThrottleConfig {
        &self.cfg
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The base the limit returns to (the initial limit, or the pre-incident limit recorded when
    /// a recovery ramp started).
    pub fn base_limit(&self) -> u32 {
        self.base_limit
    }

    /// Smoothed latency and gradient of the signal.
    pub fn snapshot(&self, now: Duration) -> SignalSnapshot {
        self.signal.as_dyn().snapshot(now)
    }

    /// Sample statistics of the signal.
    pub fn sample_stats(&self, now: Duration) -> SampleStats {
        self.signal.as_dyn().stats(now)
    }

    /// Counters.
    pub fn stats(&self) -> ControllerStats {
        self.stats
    }

    /// Latencies recorded (raw, before any overload floor), as a histogram.
    pub fn rtt_histogram(&self) -> RttHistogram {
        self.rtt_tally.histogram()
    }

    /// The regime, derived from the state.
    pub fn regime(&self) -> Regime {
        if self.freeze != 0 {
            Regime::Frozen
        } else if self.ramp.is_some() {
            Regime::Recovering
        } else if self.last_was_cut || self.limit < self.base_limit {
            Regime::Throttling
        } else {
            Regime::Normal
        }
    }

    /// Freeze reasons currently set.
    pub fn freeze_reasons(&self) -> Vec<FreezeReason> {
        FreezeReason::ALL
            .into_iter()
            .filter(|r| self.freeze & r.bit() != 0)
            .collect()
    }

    /// True when any freeze reason is set.
    pub fn is_frozen(&self) -> bool {
        self.freeze != 0
    }

    /// True while a recovery ramp is active.
    pub fn ramp_active(&self) -> bool {
        self.ramp.is_some()
    }

    /// True while something moves with time alone (a ramp, or an open breaker waiting to
    /// half-open), so callers know to [`advance`](Self::advance) before reading the limit.
    pub fn awaits_time(&self) -> bool {
        self.ramp.is_some()
            || self
                .breaker
                .as_ref()
                .is_some_and(|b| b.stats().state == BreakerState::Open)
    }

    /// Progress of the recovery ramp, if one is active.
    pub fn ramp_progress(&self, now: Duration) -> Option<RampProgress> {
        let ramp = self.ramp.as_ref()?;
        let stages = self.cfg.recovery_stages.len();
        Some(RampProgress {
            base: ramp.base,
            stages_applied: ramp.stages_applied,
            stages,
            fraction: ramp
                .stages_applied
                .checked_sub(1)
                .map_or(0.0, |i| self.cfg.recovery_stages[i.min(stages - 1)]),
            pending: ramp.pending,
            elapsed: now.saturating_sub(ramp.started_at),
            next_in: ramp.next_at.saturating_sub(now),
        })
    }

    /// Feeds one response time observed at `now`. The sample always reaches the signal; at most
    /// once per `sample_interval` (the gate starts open) the ladder runs and may change the
    /// limit, unless frozen.
    pub fn record(&mut self, rtt: Duration, now: Duration, events: &mut Vec<ThrottleEvent>) {
        self.rtt_tally.add(rtt);
        if let Some(breaker) = self.breaker.as_mut() {
            let state = breaker.on_response(rtt >= self.cfg.sla_critical, now);
            self.breaker_moved(state, now, events);
        }
        self.record_sample(rtt, now, events);
    }

    /// Feeds a request that failed in a way that signals overload (a 5xx or an inner error):
    /// a failure for the breaker, and a sample at least as slow as `sla_warning` for the ladder.
    pub fn record_overload(
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

    fn record_sample(&mut self, rtt: Duration, now: Duration, events: &mut Vec<ThrottleEvent>) {
        self.signal.as_dyn_mut().add(rtt, now);
        // With `skip_stale_samples`, a request admitted before the latest change describes the
        // old limit: it reaches the signal but not the ladder, which waits for fresh samples.
        let stale = self.cfg.skip_stale_samples
            && self
                .last_change_at
                .is_some_and(|changed| now.saturating_sub(rtt) < changed);
        if !stale {
            self.interval.push(millis_f64(rtt));
        }
        self.advance(now, events);
        let gate_open = self
            .last_adjust_at
            .is_none_or(|last| now.saturating_sub(last) >= self.cfg.sample_interval || now < last);
        let fresh_enough = !self.cfg.skip_stale_samples
            || self.interval.count() >= u64::from(self.cfg.min_samples.max(1));
        if gate_open && fresh_enough {
            self.last_adjust_at = Some(now);
            self.tick(rtt, now, events);
        }
    }

    fn tick(&mut self, triggering_rtt: Duration, now: Duration, events: &mut Vec<ThrottleEvent>) {
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
        let input = LadderInput {
            rtt: sla_rtt,
            gradient,
        };
        let adj = next_limit(self.limit, input, &self.cfg);
        let Some(reason) = adj.reason else {
            return;
        };
        let mut target = adj.limit;
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
        } else if reason == ChangeReason::GradientDecrease {
            self.last_was_cut = false;
        }
        self.set_limit(target, reason, Some(sla_rtt), gradient, now, events);
    }

    /// Sets the limit, emitting `LimitChanged` (and `LimitRecovered` when it leaves the floor).
    fn set_limit(
        &mut self,
        new: u32,
        reason: ChangeReason,
        rtt: Option<Duration>,
        gradient: f64,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let previous = self.limit;
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

    /// Moves a recovery ramp forward if its next stage is due. Cheap when no ramp is active.
    pub fn advance(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        if let Some(breaker) = self.breaker.as_mut() {
            let state = breaker.state(now);
            self.breaker_moved(state, now, events);
        }
        while let Some(ramp) = self.ramp.as_ref() {
            if now < ramp.next_at {
                return;
            }
            let stages = &self.cfg.recovery_stages;
            let (base, applied, next_at) = (ramp.base, ramp.stages_applied, ramp.next_at);
            if applied < stages.len() {
                let fraction = stages[applied];
                let mut target = self.cfg.clamp((f64::from(base) * fraction).floor() as u64);
                if let Some(cap) = self.gov.reduction_cap {
                    target = target.min(cap);
                }
                if let Some(r) = self.ramp.as_mut() {
                    r.stages_applied += 1;
                    r.next_at = next_at + self.cfg.recovery_stage_interval;
                    if r.pending.is_some_and(|p| p <= target) {
                        r.pending = None;
                    }
                }
                events.push(ThrottleEvent::RampStage {
                    at: now,
                    stage: applied,
                    fraction,
                    limit: target,
                });
                // Each stage re-asserts its own target: the schedule, not the gradient, sets
                // the pace of the recovery.
                self.last_was_cut = target < self.limit;
                self.set_limit(target, ChangeReason::RampStage, None, 0.0, now, events);
            } else {
                let pending = self.ramp.take().and_then(|r| r.pending);
                if let Some(p) = pending.filter(|p| *p > self.limit) {
                    let p = self.cfg.clamp(u64::from(p));
                    self.set_limit(p, ChangeReason::RampCompleted, None, 0.0, now, events);
                }
                self.last_was_cut = false;
                events.push(ThrottleEvent::RampCompleted {
                    at: now,
                    limit: self.limit,
                });
            }
        }
    }

    /// Starts a recovery ramp towards `base` (clamped to the bounds): the first stage lands now,
    /// or after a random delay up to `recovery_jitter`; later stages follow every
    /// `recovery_stage_interval`. A running ramp is replaced.
    pub fn start_recovery(&mut self, base: u32, now: Duration, events: &mut Vec<ThrottleEvent>) {
        let base = self.cfg.clamp(u64::from(base));
        let jitter_ns = u64::try_from(self.cfg.recovery_jitter.as_nanos()).unwrap_or(u64::MAX);
        let delay = if jitter_ns == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(splitmix64(&mut self.rng) % jitter_ns.saturating_add(1))
        };
        self.base_limit = base;
        self.ramp = Some(Ramp {
            base,
            started_at: now,
            stages_applied: 0,
            next_at: now + delay,
            pending: None,
        });
        events.push(ThrottleEvent::RampStarted { at: now, base });
        self.advance(now, events);
    }

    /// Jumps a running ramp to its end: the base (or a higher pending increase) applies now.
    pub fn complete_recovery(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        if let Some(ramp) = self.ramp.take() {
            let target = ramp.pending.unwrap_or(0).max(ramp.base);
            self.set_limit(
                self.cfg.clamp(u64::from(target)),
                ChangeReason::RampCompleted,
                None,
                0.0,
                now,
                events,
            );
            self.last_was_cut = false;
            events.push(ThrottleEvent::RampCompleted {
                at: now,
                limit: self.limit,
            });
        }
    }

    /// Sets a freeze reason. Returns false if it was already set.
    pub fn freeze(
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
    pub fn unfreeze(
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

    /// Sets the limit directly (an operator or an external input), clamped to the bounds.
    pub fn override_limit(
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
    pub fn swap_config(
        &mut self,
        cfg: Arc<ThrottleConfig>,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) -> Arc<ThrottleConfig> {
        let old = std::mem::replace(&mut self.cfg, cfg);
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
    pub fn rollback_to_base_limit(
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
    pub fn reset(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        let initial = self.cfg.initial_limit;
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

/// Governance: external inputs combined by min-winner with the adaptive limit. See
/// [`crate::governance`].
impl Controller {
    /// Governance inputs currently applied.
    pub fn governance(&self) -> GovernanceState {
        self.gov
    }

    /// The min-winner of the adaptive limit and every active reduction.
    pub fn conservative_limit(&self) -> u32 {
        self.gov
            .reduction_cap
            .map_or(self.limit, |cap| cap.min(self.limit))
    }

    /// The limit a request of `tier` is checked against, or why it is blocked outright.
    ///
    /// # Errors
    ///
    /// The reason the tier gets no capacity: full stop, error budget critical (non-essential),
    /// or an emergency level whose multiplier for the tier is zero.
    pub fn tier_limit(&self, tier: Tier) -> Result<u32, RejectReason> {
        if self.gov.full_stop {
            return Err(RejectReason::FullStop);
        }
        if self.gov.error_budget == ErrorBudget::Critical && tier == Tier::NonEssential {
            return Err(RejectReason::ErrorBudgetCriticalNonEssentialBlocked);
        }
        let limit = self.conservative_limit();
        // Critical traffic is held to the pre-reduction base, whatever reduced the limit.
        let limit = match (tier, self.gov.reduction_base) {
            (Tier::Critical, Some(base)) => base.max(limit),
            _ => limit,
        };
        if self.gov.emergency_level == 0 {
            return Ok(limit);
        }
        let m = emergency_tier_multiplier(self.gov.emergency_level, tier);
        if m <= 0.0 {
            return Err(RejectReason::EmergencyTierBlocked);
        }
        Ok(((f64::from(limit) * m).floor() as u32).max(self.cfg.min_limit))
    }

    /// Attaches (or with `None` removes) the built-in circuit breaker, fed by `record` and
    /// `record_overload`.
    pub fn set_breaker(
        &mut self,
        cfg: Option<BreakerConfig>,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        self.breaker = cfg.map(CircuitBreaker::new);
        if self.breaker.is_none() && self.gov.breaker != BreakerState::Closed {
            self.on_breaker_state(BreakerState::Closed, now, events);
        }
    }

    /// Counters of the built-in breaker, if attached.
    pub fn breaker_stats(&self) -> Option<BreakerStats> {
        self.breaker.as_ref().map(CircuitBreaker::stats)
    }

    fn breaker_moved(
        &mut self,
        state: BreakerState,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        if state != self.gov.breaker {
            self.on_breaker_state(state, now, events);
        }
    }

    /// A breaker (built-in or external) changed state: open → floor, half-open → half of the
    /// initial limit, closed → the reduction ends (and the ramp starts if nothing else holds).
    pub fn on_breaker_state(
        &mut self,
        state: BreakerState,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        if state == self.gov.breaker {
            return;
        }
        let from = std::mem::replace(&mut self.gov.breaker, state);
        events.push(ThrottleEvent::BreakerStateChanged {
            at: now,
            from,
            to: state,
        });
        self.check_full_stop(now, events);
        self.governance_changed(ChangeReason::CircuitBreaker, now, events);
    }

    /// Sets the emergency level (0–3; higher values mean 3). Level 3 also freezes the limit;
    /// level 0 ends the emergency and releases a full stop.
    pub fn set_emergency_level(
        &mut self,
        level: u8,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let level = level.min(3);
        if level == self.gov.emergency_level {
            return;
        }
        let from = std::mem::replace(&mut self.gov.emergency_level, level);
        events.push(ThrottleEvent::EmergencyLevelChanged {
            at: now,
            from,
            to: level,
        });
        if level >= 3 {
            self.freeze(FreezeReason::Emergency, now, events);
        } else {
            self.unfreeze(FreezeReason::Emergency, now, events);
        }
        if level == 0 && self.gov.full_stop {
            self.gov.full_stop = false;
        }
        self.check_full_stop(now, events);
        self.governance_changed(ChangeReason::Emergency, now, events);
    }

    /// Engages or releases the kill switch: it freezes the limit where it is; releasing it starts
    /// the recovery ramp from the frozen limit (unless a reduction is still active).
    pub fn set_kill_switch(&mut self, on: bool, now: Duration, events: &mut Vec<ThrottleEvent>) {
        if on == self.gov.kill_switch {
            return;
        }
        self.gov.kill_switch = on;
        if on {
            self.freeze(FreezeReason::KillSwitch, now, events);
        } else {
            self.unfreeze(FreezeReason::KillSwitch, now, events);
            if self.gov.reduction_cap.is_none() {
                let base = self.ramp.as_ref().map_or(self.limit, |r| r.base);
                self.start_recovery(base, now, events);
            }
        }
    }

    /// Sets the error budget state.
    pub fn set_error_budget(
        &mut self,
        budget: ErrorBudget,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        if budget == self.gov.error_budget {
            return;
        }
        let from = std::mem::replace(&mut self.gov.error_budget, budget);
        events.push(ThrottleEvent::ErrorBudgetChanged {
            at: now,
            from,
            to: budget,
        });
        self.check_full_stop(now, events);
        self.governance_changed(ChangeReason::ErrorBudget, now, events);
    }

    /// Turns load shedding on at `traffic_percent` (0–100) or off with `None`.
    pub fn set_load_shedding(
        &mut self,
        traffic_percent: Option<u8>,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let traffic_percent = traffic_percent.map(|p| p.min(100));
        if traffic_percent == self.gov.load_shedding {
            return;
        }
        self.gov.load_shedding = traffic_percent;
        events.push(ThrottleEvent::LoadSheddingChanged {
            at: now,
            traffic_percent,
        });
        self.governance_changed(ChangeReason::LoadShedding, now, events);
    }

    /// An upstream answered 429 for the `consecutive`-th time in a row (0 clears).
    pub fn on_upstream_429(
        &mut self,
        consecutive: u32,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        if consecutive == self.gov.upstream_429s {
            return;
        }
        self.gov.upstream_429s = consecutive;
        if consecutive > 0 {
            events.push(ThrottleEvent::Upstream429 {
                at: now,
                consecutive,
            });
        }
        self.governance_changed(ChangeReason::Upstream429, now, events);
    }

    /// The upstream's cooldown ended: the 429 reduction ends.
    pub fn on_upstream_cooldown_end(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        if self.gov.upstream_429s == 0 {
            return;
        }
        self.gov.upstream_429s = 0;
        events.push(ThrottleEvent::CooldownEnded { at: now });
        self.governance_changed(ChangeReason::Upstream429, now, events);
    }

    /// Break glass: releases a full stop, the emergency level and the kill switch, and lets the
    /// limit recover through the ramp (breaker, error-budget, shedding and 429 reductions still
    /// apply by min-winner).
    pub fn break_glass(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        events.push(ThrottleEvent::BreakGlass {
            at: now,
            full_stop_released: self.gov.full_stop,
        });
        self.gov.full_stop = false;
        self.gov.break_glass = true;
        if self.gov.kill_switch {
            self.gov.kill_switch = false;
            self.unfreeze(FreezeReason::KillSwitch, now, events);
        }
        if self.gov.emergency_level != 0 {
            let from = std::mem::replace(&mut self.gov.emergency_level, 0);
            events.push(ThrottleEvent::EmergencyLevelChanged {
                at: now,
                from,
                to: 0,
            });
            self.unfreeze(FreezeReason::Emergency, now, events);
        }
        let was_reduced = self.gov.reduction_base.is_some();
        self.governance_changed(ChangeReason::BreakGlass, now, events);
        if !was_reduced && self.ramp.is_none() {
            self.start_recovery(self.base_limit, now, events);
        }
    }

    /// Applies facts polled from a governance source, correcting any drift.
    pub fn apply_governance(
        &mut self,
        facts: GovernanceSnapshot,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        self.set_kill_switch(facts.kill_switch, now, events);
        self.set_emergency_level(facts.emergency_level, now, events);
        self.set_error_budget(facts.error_budget, now, events);
    }

    /// Full stop: emergency level 3 with the breaker open and the error budget critical.
    fn check_full_stop(&mut self, now: Duration, events: &mut Vec<ThrottleEvent>) {
        let all = self.gov.emergency_level >= 3
            && self.gov.breaker == BreakerState::Open
            && self.gov.error_budget == ErrorBudget::Critical;
        if all && !self.gov.full_stop {
            self.gov.full_stop = true;
            self.gov.break_glass = false;
            events.push(ThrottleEvent::FullStop { at: now });
        }
    }

    /// The min-winner of the active reductions of `base`, if any.
    fn reduction_cap(&self, base: u32) -> Option<u32> {
        let cfg = &self.cfg;
        let floor = cfg.min_limit;
        let of = |value: u32, m: f64| ((f64::from(value) * m).floor() as u32).max(floor);
        let g = &self.gov;
        [
            g.full_stop.then_some(0),
            match g.emergency_level {
                0 => None,
                1 | 2 => Some(of(base, emergency_multiplier(g.emergency_level))),
                _ => Some(floor),
            },
            (g.upstream_429s > 0).then(|| of(base, upstream_429_multiplier(g.upstream_429s))),
            match g.error_budget {
                ErrorBudget::Healthy => None,
                ErrorBudget::Warning => Some(of(base, 0.8)),
                ErrorBudget::Critical => Some(of(base, 0.5)),
            },
            g.load_shedding.map(|p| {
                let raw = (u64::from(cfg.max_limit) * u64::from(p) / 100) as f64;
                let compensated = (raw * SHEDDING_COMPENSATION)
                    .floor()
                    .min(f64::from(cfg.max_limit));
                (compensated as u32).max(floor)
            }),
            match g.breaker {
                BreakerState::Closed => None,
                BreakerState::Open => Some(floor),
                BreakerState::HalfOpen => Some(of(cfg.initial_limit, 0.5)),
            },
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Re-evaluates the reductions after an input changed: entering a reduction records the
    /// pre-incident base (and cancels a ramp); a lower cap cuts at once; a higher cap lifts a
    /// limit that was pinned to the old one; leaving the last reduction starts the ramp.
    fn governance_changed(
        &mut self,
        reason: ChangeReason,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let base = self
            .gov
            .reduction_base
            .unwrap_or_else(|| self.ramp.as_ref().map_or(self.limit, |r| r.base));
        let old_cap = self.gov.reduction_cap;
        let cap = self.reduction_cap(base);
        self.gov.reduction_cap = cap;
        match (self.gov.reduction_base, cap) {
            (None, Some(cap)) => {
                self.gov.reduction_base = Some(base);
                self.base_limit = base;
                self.ramp = None;
                self.apply_cap(cap, None, reason, now, events);
            }
            (Some(_), Some(cap)) => self.apply_cap(cap, old_cap, reason, now, events),
            (Some(base), None) => {
                self.gov.reduction_base = None;
                self.start_recovery(base, now, events);
            }
            (None, None) => {}
        }
    }

    fn apply_cap(
        &mut self,
        cap: u32,
        old_cap: Option<u32>,
        reason: ChangeReason,
        now: Duration,
        events: &mut Vec<ThrottleEvent>,
    ) {
        let pinned = old_cap.is_some_and(|old| self.limit >= old);
        if cap < self.limit || pinned {
            self.last_was_cut = cap < self.limit;
            // A cap is applied as is: full stop's 0 deliberately bypasses the floor.
            self.set_limit(cap, reason, None, 0.0, now, events);
        }
    }
}

/// The highest limit the ramp allows now: the latest landed stage, or (before the first stage
/// lands) the limit as it is.
fn ramp_cap(cfg: &ThrottleConfig, ramp: &Ramp, current: u32) -> u32 {
    match ramp.stages_applied.checked_sub(1) {
        None => current,
        Some(i) => {
            let fraction = cfg.recovery_stages[i.min(cfg.recovery_stages.len() - 1)];
            cfg.clamp((f64::from(ramp.base) * fraction).floor() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IncreaseSizing;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn limits_of(events: &[ThrottleEvent]) -> Vec<(u32, u32, ChangeReason)> {
        events
            .iter()
            .filter_map(|e| match e {
                ThrottleEvent::LimitChanged(c) => Some((c.previous, c.new, c.reason)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn baldur_sequence_critical_then_warning_then_gated() {
        let mut c = Controller::new(ThrottleConfig::baldur());
        let mut ev = Vec::new();
        c.record(ms(600), ms(0), &mut ev);
        assert_eq!(c.limit(), 70);
        c.record(ms(250), ms(500), &mut ev);
        assert_eq!(c.limit(), 63);
        c.record(ms(900), ms(999), &mut ev); // inside the interval: nothing
        assert_eq!(c.limit(), 63);
        assert_eq!(
            limits_of(&ev),
            vec![
                (100, 70, ChangeReason::SlaCritical),
                (70, 63, ChangeReason::SlaWarning)
            ]
        );
        assert_eq!(c.stats().sla_criticals, 1);
        assert_eq!(c.stats().sla_warnings, 1);
        assert_eq!(c.stats().adjustments_down, 2);
        assert_eq!(c.regime(), Regime::Throttling);
    }

    #[test]
    fn falling_trend_adds_the_step() {
        let mut c = Controller::new(ThrottleConfig::baldur());
        let mut ev = Vec::new();
        // Within one interval: seed the EMA high, then fall (no tick runs after the first).
        c.record(ms(150), ms(0), &mut ev); // tick: 1 sample, gradient 0 → hold
        c.record(ms(150), ms(100), &mut ev);
        c.record(ms(150), ms(200), &mut ev);
        c.record(ms(50), ms(500), &mut ev); // ema 150 → 100: gradient −1/3
        assert_eq!(c.limit(), 101);
        assert_eq!(c.stats().adjustments_up, 1);
    }

    #[test]
    fn rising_trend_cuts() {
        let mut c = Controller::new(ThrottleConfig::baldur());
        let mut ev = Vec::new();
        c.record(ms(50), ms(0), &mut ev);
        c.record(ms(50), ms(100), &mut ev);
        c.record(ms(50), ms(200), &mut ev);
        c.record(ms(100), ms(500), &mut ev); // 50 → 75: +0.5
        assert_eq!(c.limit(), 90);
        assert_eq!(limits_of(&ev)[0].2, ChangeReason::GradientIncrease);
    }

    #[test]
    fn limit_never_leaves_bounds() {
        let mut c = Controller::new(ThrottleConfig::baldur());
        let mut ev = Vec::new();
        for i in 0..100 {
            c.record(ms(900), ms(500 * i), &mut ev);
        }
        assert_eq!(c.limit(), 10);
        let mut t = 50_000;
        for i in 0..2000u64 {
            // strictly falling latency keeps the gradient negative
            c.record(ms(400 - (i % 3) * 100), ms(t), &mut ev);
            t += 500;
        }
        assert!(c.limit() <= 500 && c.limit() >= 10);
    }

    #[test]
    fn frozen_keeps_sampling_but_changes_nothing() {
        let mut c = Controller::new(ThrottleConfig::baldur());
        let mut ev = Vec::new();
        c.freeze(FreezeReason::KillSwitch, ms(0), &mut ev);
        c.freeze(FreezeReason::Operator, ms(0), &mut ev);
        c.record(ms(900), ms(0), &mut ev);
        assert_eq!(c.limit(), 100);
        assert_eq!(c.regime(), Regime::Frozen);
        assert_eq!(c.sample_stats(ms(0)).sample_count, 1);
        c.unfreeze(FreezeReason::KillSwitch, ms(1), &mut ev);
        assert!(c.is_frozen(), "one reason is still set");
        c.record(ms(900), ms(600), &mut ev);
        assert_eq!(c.limit(), 100);
        c.unfreeze(FreezeReason::Operator, ms(700), &mut ev);
        c.record(ms(900), ms(1200), &mut ev);
        assert_eq!(c.limit(), 70);
        assert!(ev.iter().any(|e| matches!(
            e,
            ThrottleEvent::Unfrozen {
                all_clear: true,
                ..
            }
        )));
    }

    #[test]
    fn ramp_climbs_in_stages_and_defers_increases() {
        let cfg = ThrottleConfig::baldur_builder()
            .initial_limit(150)
            .build()
            .unwrap();
        let mut c = Controller::new(cfg);
        let mut ev = Vec::new();
        c.override_limit(75, ChangeReason::Rollback, ms(0), &mut ev);
        c.start_recovery(150, ms(0), &mut ev);
        assert_eq!(c.limit(), 120);
        assert_eq!(c.regime(), Regime::Recovering);
        c.advance(ms(29_999), &mut ev);
        assert_eq!(c.limit(), 120);
        c.advance(ms(30_000), &mut ev);
        assert_eq!(c.limit(), 135);
        c.advance(ms(60_000), &mut ev);
        assert_eq!(c.limit(), 150);
        assert!(
            c.ramp_active(),
            "the ramp ends one interval after its last stage"
        );
        c.advance(ms(90_000), &mut ev);
        assert!(!c.ramp_active());
        assert_eq!(c.regime(), Regime::Normal);
    }

    #[test]
    fn ramp_caps_increases_and_applies_decreases_at_once() {
        let cfg = ThrottleConfig::baldur_builder()
            .initial_limit(100)
            .increase_sizing(IncreaseSizing::Proportional(0.5))
            .build()
            .unwrap();
        let mut c = Controller::new(cfg);
        let mut ev = Vec::new();
        c.start_recovery(100, ms(0), &mut ev);
        assert_eq!(c.limit(), 80);
        // seed a falling trend: increase of 40 wanted, capped at the stage (80)
        c.record(ms(150), ms(0), &mut ev);
        c.record(ms(150), ms(100), &mut ev);
        c.record(ms(150), ms(200), &mut ev);
        c.record(ms(50), ms(500), &mut ev);
        assert_eq!(c.limit(), 80);
        assert_eq!(c.ramp_progress(ms(500)).unwrap().pending, Some(120));
        // a critical cut applies at once and drops the pending increase
        c.record(ms(700), ms(1000), &mut ev);
        assert_eq!(c.limit(), 56);
        assert_eq!(c.ramp_progress(ms(1000)).unwrap().pending, None);
        // the next stage re-asserts its own target
        c.advance(ms(30_000), &mut ev);
        assert_eq!(c.limit(), 90);
    }

    #[test]
    fn pending_increase_applies_when_ramp_ends() {
        let cfg = ThrottleConfig::baldur_builder()
            .increase_sizing(IncreaseSizing::Proportional(0.5))
            .build()
            .unwrap();
        let mut c = Controller::new(cfg);
        let mut ev = Vec::new();
        c.start_recovery(100, ms(0), &mut ev);
        c.advance(ms(60_000), &mut ev); // 100 %
        assert_eq!(c.limit(), 100);
        c.record(ms(150), ms(60_000), &mut ev);
        c.record(ms(150), ms(60_100), &mut ev);
        c.record(ms(150), ms(60_200), &mut ev);
        c.record(ms(50), ms(60_500), &mut ev); // wants 150, capped at 100
        assert_eq!(c.limit(), 100);
        c.advance(ms(90_000), &mut ev);
        assert_eq!(c.limit(), 150);
        assert_eq!(
            limits_of(&ev).last().unwrap().2,
            ChangeReason::RampCompleted
        );
    }

    #[test]
    fn ramp_start_jitter_is_seeded_and_bounded() {
        let make = || {
            let cfg = ThrottleConfig::baldur_builder()
                .recovery_jitter(Duration::from_secs(10))
                .jitter_seed(42)
                .build()
                .unwrap();
            let mut c = Controller::new(cfg);
            c.override_limit(50, ChangeReason::Rollback, ms(0), &mut Vec::new());
            c.start_recovery(100, ms(0), &mut Vec::new());
            c.ramp_progress(ms(0)).unwrap().next_in
        };
        let delay = make();
        assert_eq!(delay, make(), "same seed, same delay");
        assert!(delay <= Duration::from_secs(10));
        let cfg = ThrottleConfig::baldur_builder()
            .recovery_jitter(Duration::from_secs(10))
            .jitter_seed(42)
            .build()
            .unwrap();
        let mut c = Controller::new(cfg);
        let mut ev = Vec::new();
        c.override_limit(50, ChangeReason::Rollback, ms(0), &mut ev);
        c.start_recovery(100, ms(0), &mut ev);
        if !delay.is_zero() {
            assert_eq!(c.limit(), 50, "first stage waits for the jitter");
        }
        c.advance(delay, &mut ev);
        assert_eq!(c.limit(), 80);
    }

    #[test]
    fn percentile_trigger_ignores_a_lone_outlier() {
        let cfg = ThrottleConfig::builder().build().unwrap();
        let mut c = Controller::new(cfg);
        let mut ev = Vec::new();
        c.record(ms(50), ms(0), &mut ev); // first tick
        for i in 1..20 {
            c.record(ms(50), ms(i * 20), &mut ev);
        }
        c.record(ms(900), ms(500), &mut ev); // the outlier opens the tick; p90 is 50 ms
        assert!(
            c.limit() >= 100,
            "not cut (flat latency may grow it): {}",
            c.limit()
        );
        assert_eq!(c.stats().sla_criticals, 0);
        let mut b = Controller::new(ThrottleConfig::baldur());
        b.record(ms(50), ms(0), &mut ev);
        b.record(ms(900), ms(500), &mut ev);
        assert_eq!(
            b.limit(),
            70,
            "Baldur's preset cuts on the triggering sample"
        );
    }

    #[test]
    fn swap_config_keeps_state_and_clamps() {
        let mut c = Controller::new(ThrottleConfig::baldur());
        let mut ev = Vec::new();
        c.record(ms(600), ms(0), &mut ev);
        assert_eq!(c.limit(), 70);
        let new = ThrottleConfig::baldur_builder()
            .min_limit(80)
            .initial_limit(100)
            .build()
            .unwrap();
        let old = c.swap_config(Arc::new(new), ms(1), &mut ev);
        assert_eq!(old.min_limit(), 10);
        assert_eq!(c.limit(), 80);
        assert_eq!(c.sample_stats(ms(1)).sample_count, 1, "samples kept");
    }

    #[test]
    fn rollback_and_reset() {
        let mut c = Controller::new(ThrottleConfig::baldur());
        let mut ev = Vec::new();
        c.record(ms(600), ms(0), &mut ev);
        c.freeze(FreezeReason::Operator, ms(0), &mut ev);
        assert_eq!(c.rollback_to_base_limit(ms(1), &mut ev), 100);
        assert!(!c.is_frozen());
        assert_eq!(c.limit(), 100);
        c.record(ms(600), ms(600), &mut ev);
        c.reset(ms(700), &mut ev);
        assert_eq!(c.limit(), 100);
        assert_eq!(c.stats().adjustments_down, 0);
        // gate open again after reset
        c.record(ms(600), ms(701), &mut ev);
        assert_eq!(c.limit(), 70);
    }

    #[test]
    fn limit_recovered_event_when_leaving_floor() {
        let cfg = ThrottleConfig::baldur_builder()
            .initial_limit(10)
            .build()
            .unwrap();
        let mut c = Controller::new(cfg);
        let mut ev = Vec::new();
        c.record(ms(150), ms(0), &mut ev);
        c.record(ms(150), ms(100), &mut ev);
        c.record(ms(150), ms(200), &mut ev);
        c.record(ms(50), ms(500), &mut ev);
        assert_eq!(c.limit(), 11);
        assert!(ev.iter().any(|e| matches!(
            e,
            ThrottleEvent::LimitRecovered {
                previous: 10,
                new: 11,
                ..
            }
        )));
    }

    #[test]
    fn time_bucketed_signal_drives_the_trend() {
        let cfg = ThrottleConfig::baldur_builder()
            .signal(SignalKind::TimeBucketed {
                window: Duration::from_secs(10),
            })
            .build()
            .unwrap();
        let mut c = Controller::new(cfg);
        let mut ev = Vec::new();
        for i in 0..10u64 {
            let rtt = if i < 5 { 100 } else { 150 };
            c.record(ms(rtt), Duration::from_secs(i), &mut ev);
        }
        // the last tick saw recent half 150 vs previous half 100: +0.5
        assert!(limits_of(&ev)
            .iter()
            .any(|(_, _, r)| *r == ChangeReason::GradientIncrease));
    }
}
