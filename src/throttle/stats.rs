//! [`ThrottleStats`]: a consistent snapshot of one throttle, and the counters behind it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::AdaptiveThrottle;
use crate::breaker::BreakerStats;
use crate::concurrency::ConcurrencyStats;
use crate::config::KeyQuota;
use crate::control::{RampProgress, Regime};
use crate::counters::CounterSnapshot;
use crate::events::{FreezeReason, LimitChange};
use crate::governance::GovernanceState;
use crate::signal::SampleStats;

impl AdaptiveThrottle {
    /// A consistent snapshot of the throttle's state and counters.
    pub fn stats(&self) -> ThrottleStats {
        let now = self.inner.clock.now();
        let cfg = self.config();
        let (allowed, rejected) = (
            self.inner.counters.allowed_total(),
            self.inner.counters.rejected_total(),
        );
        let (limit, base, regime, frozen, ctl, samples, ramp, gov) =
            self.with_controller(now, |c, events| {
                c.advance(now, events);
                (
                    c.conservative_limit(),
                    c.base_limit(),
                    c.regime(),
                    c.freeze_reasons(),
                    c.stats(),
                    c.sample_stats(now),
                    c.ramp_progress(now),
                    (c.governance(), c.breaker_stats(), c.capacity()),
                )
            });
        let (governance, breaker, capacity) = gov;
        let window_ms = crate::clock::as_millis_u64(cfg.window).max(1);
        let keys_in_window = self
            .inner
            .keys
            .active(crate::clock::as_millis_u64(now), window_ms);
        let key_quota = match cfg.key_quota {
            KeyQuota::WholeLimit => limit,
            KeyQuota::Fixed(q) => q.min(limit),
            _ => u32::try_from(u64::from(limit).div_ceil(keys_in_window)).unwrap_or(limit),
        }
        .max(1);
        ThrottleStats {
            current_limit: limit,
            initial_limit: cfg.initial_limit,
            min_limit: cfg.min_limit,
            max_limit: cfg.max_limit,
            base_limit: base,
            regime: self.regime_at(regime, now),
            frozen_reasons: frozen,
            disabled: self.is_disabled(),
            total_requests: allowed + rejected,
            allowed_requests: allowed,
            rejected_requests: rejected,
            shadow_rejections: self.inner.shadow_rejected.load(Ordering::Relaxed),
            active_keys: self.inner.keys.len(),
            keys_in_window,
            key_quota,
            capacity: capacity.map(|(e, baseline)| CapacityStats {
                estimate_per_sec: e.rate,
                delivered_per_sec: e.delivered,
                mean_rtt: Duration::from_secs_f64(e.mean_ms.max(0.0) / 1000.0),
                baseline_rtt: baseline,
            }),
            evicted_keys: self.inner.keys.evicted(),
            max_keys: self.inner.keys.capacity(),
            adjustments_up: ctl.adjustments_up,
            adjustments_down: ctl.adjustments_down,
            sla_warnings: ctl.sla_warnings,
            sla_criticals: ctl.sla_criticals,
            last_change: ctl.last_change,
            smoothed_rtt: samples.smoothed_rtt,
            gradient: samples.gradient,
            samples,
            ramp,
            governance,
            breaker,
            fleet: self.fleet_stats(),
            cost: self.cost_stats(),
        }
    }

    /// Per-request counters: requests by tier and result, rejections by reason, the latency
    /// histogram, limit changes by direction and trigger.
    pub fn counters(&self) -> CounterSnapshot {
        let rtt = self.transition(|c, _, _| c.rtt_histogram());
        self.inner.counters.snapshot(rtt)
    }

    /// A snapshot of the concurrency axis, if configured.
    pub fn concurrency_stats(&self) -> Option<ConcurrencyStats> {
        self.inner.concurrency.as_ref().map(|l| l.stats())
    }
}

/// A snapshot of a throttle's state and counters.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ThrottleStats {
    /// The limit now.
    pub current_limit: u32,
    /// `initial_limit` of the config.
    pub initial_limit: u32,
    /// Floor.
    pub min_limit: u32,
    /// Ceiling.
    pub max_limit: u32,
    /// The base a ramp or rollback returns to.
    pub base_limit: u32,
    /// Regime.
    pub regime: Regime,
    /// Freeze reasons set.
    pub frozen_reasons: Vec<FreezeReason>,
    /// Whether the throttle is disabled (pass-through).
    pub disabled: bool,
    /// Checks that consumed (allowed or rejected).
    pub total_requests: u64,
    /// Checks allowed.
    pub allowed_requests: u64,
    /// Checks rejected.
    pub rejected_requests: u64,
    /// Rejections a layer in shadow mode let through (see
    /// [`AdaptiveThrottleLayer::shadow`](crate::AdaptiveThrottleLayer::shadow)).
    pub shadow_rejections: u64,
    /// Keys tracked now.
    pub active_keys: usize,
    /// Distinct keys seen in this rate window or the previous one: what a fair share divides
    /// the limit by.
    pub keys_in_window: u64,
    /// What one key may admit per window now: the limit itself (each key against the whole
    /// limit), a fixed quota capped by it, or its fair share (`current_limit ÷ keys_in_window`).
    pub key_quota: u32,
    /// The capacity estimate's latest figures, when the limit follows one.
    pub capacity: Option<CapacityStats>,
    /// Keys evicted to stay within `max_keys`.
    pub evicted_keys: u64,
    /// Most keys tracked at once.
    pub max_keys: usize,
    /// Adjustments that raised the limit.
    pub adjustments_up: u64,
    /// Adjustments that lowered the limit.
    pub adjustments_down: u64,
    /// Adjustment ticks that saw an SLA warning.
    pub sla_warnings: u64,
    /// Adjustment ticks that saw an SLA critical.
    pub sla_criticals: u64,
    /// The latest limit change.
    pub last_change: Option<LimitChange>,
    /// Smoothed latency.
    pub smoothed_rtt: Option<Duration>,
    /// Latency trend.
    pub gradient: f64,
    /// Sample statistics.
    pub samples: SampleStats,
    /// Recovery ramp progress, if active.
    pub ramp: Option<RampProgress>,
    /// Governance inputs applied.
    pub governance: GovernanceState,
    /// The built-in breaker's counters, if attached.
    pub breaker: Option<BreakerStats>,
    /// Fleet mode's state, when the throttle has a store.
    pub fleet: Option<super::FleetStats>,
    /// The cost axis: totals and the keys that spent most, when the config has a cost section.
    pub cost: Option<crate::cost::CostStats>,
}

/// The figures behind the capacity estimate, as of its latest adjustment.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CapacityStats {
    /// What the service can take now, in requests per second (before the SLA rules, bounds and
    /// governance caps make it the limit).
    pub estimate_per_sec: f64,
    /// Completions per second the latest adjustment measured.
    pub delivered_per_sec: f64,
    /// The mean latency it saw.
    pub mean_rtt: Duration,
    /// The no-load latency it compares against.
    pub baseline_rtt: Option<Duration>,
}
