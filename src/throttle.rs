//! [`AdaptiveThrottle`]: the handle that joins the rate axis, the latency signal and the
//! controller under one injected clock.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::admission::KeyTable;
use crate::clock::{as_millis_u64, Clock, MonotonicClock};
use crate::config::{RateStrategy, ThrottleConfig};
use crate::control::{Controller, RampProgress, Regime};
use crate::decision::{Axis, Decision, RejectReason, Tier};
use crate::events::{FreezeReason, LimitChange, ThrottleEvent};
use crate::signal::SampleStats;
use crate::strategy::{
    AnyStrategy, FixedWindow, Gcra, RateDecision, SlidingWindow, SlidingWindowLog, TokenBucket,
};

/// An adaptive throttle: per-key admission against one limit that follows the service's
/// latency.
///
/// Cheap to clone; clones share every piece of state. Call [`check`](Self::check) before the
/// work and [`record_response`](Self::record_response) after it (the HTTP layer does both).
///
/// ```
/// use std::time::Duration;
/// use tower_adaptive_throttle::{AdaptiveThrottle, ManualClock, ThrottleConfig, Tier};
///
/// let clock = ManualClock::new();
/// let t = AdaptiveThrottle::with_clock(ThrottleConfig::baldur(), clock.clone());
/// assert!(t.check("user_123", Tier::Standard).allowed);
/// t.record_response(Duration::from_millis(600)); // SLA critical: 100 → 70
/// assert_eq!(t.current_limit(), 70);
/// clock.advance(Duration::from_millis(500));
/// t.record_response(Duration::from_millis(250)); // SLA warning: 70 → 63
/// assert_eq!(t.current_limit(), 63);
/// ```
#[derive(Clone)]
pub struct AdaptiveThrottle {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    config: ArcSwap<ThrottleConfig>,
    /// Mirror of the controller's limit so `check` never takes the controller lock.
    limit: AtomicU32,
    /// Smoothed RTT in nanoseconds; `u64::MAX` before the first sample.
    rtt_nanos: AtomicU64,
    gradient_bits: AtomicU64,
    ramp_active: AtomicBool,
    disabled: AtomicBool,
    controller: Mutex<Controller>,
    keys: KeyTable,
    events: broadcast::Sender<ThrottleEvent>,
    total: AtomicU64,
    allowed: AtomicU64,
    rejected: AtomicU64,
    /// Rejections a shadow-mode layer let through.
    shadow_rejected: AtomicU64,
}

const NO_RTT: u64 = u64::MAX;

impl fmt::Debug for AdaptiveThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("limit", &self.current_limit())
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl AdaptiveThrottle {
    /// A throttle on the real clock (tokio's, so paused time in tests is honoured).
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self::with_clock(cfg, MonotonicClock::new())
    }

    /// A throttle on the given clock, for example a [`ManualClock`](crate::ManualClock).
    pub fn with_clock(cfg: ThrottleConfig, clock: impl Clock) -> Self {
        let cfg = Arc::new(cfg);
        let (events, _) = broadcast::channel(cfg.event_capacity);
        let controller = Controller::with_config(cfg.clone());
        Self {
            inner: Arc::new(Inner {
                clock: Arc::new(clock),
                limit: AtomicU32::new(controller.limit()),
                rtt_nanos: AtomicU64::new(NO_RTT),
                gradient_bits: AtomicU64::new(0f64.to_bits()),
                ramp_active: AtomicBool::new(false),
                disabled: AtomicBool::new(false),
                keys: KeyTable::new(cfg.max_keys),
                controller: Mutex::new(controller),
                config: ArcSwap::new(cfg),
                events,
                total: AtomicU64::new(0),
                allowed: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                shadow_rejected: AtomicU64::new(0),
            }),
        }
    }

    /// Time on the throttle's clock.
    pub fn now(&self) -> Duration {
        self.inner.clock.now()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<ThrottleConfig> {
        self.inner.config.load_full()
    }

    /// The rate-axis window in force, read without cloning the configuration (the HTTP layer
    /// reads it per response for `RateLimit-Policy`).
    pub fn window(&self) -> Duration {
        self.inner.config.load().window
    }

    /// Checks one request of `key` at `tier` and, when allowed, counts it against the key's
    /// window. Denied requests consume nothing.
    pub fn check<K: Hash + ?Sized>(&self, key: &K, tier: Tier) -> Decision {
        self.check_digest(self.inner.keys.digest(key), tier, true)
    }

    /// The decision `check` would return for `key` (as a standard-tier request), consuming
    /// nothing.
    pub fn peek<K: Hash + ?Sized>(&self, key: &K) -> Decision {
        self.check_digest(self.inner.keys.digest(key), Tier::Standard, false)
    }

    fn check_digest(&self, digest: u64, tier: Tier, consume: bool) -> Decision {
        let inner = &*self.inner;
        if inner.disabled.load(Ordering::Relaxed) {
            if consume {
                inner.total.fetch_add(1, Ordering::Relaxed);
                inner.allowed.fetch_add(1, Ordering::Relaxed);
            }
            return Decision::unlimited(tier);
        }
        let now = inner.clock.now();
        if inner.ramp_active.load(Ordering::Acquire) {
            self.with_controller(|c, events| c.advance(now, events));
        }
        let limit = self.effective_limit(tier);
        let cfg = inner.config.load();
        let strategy = strategy_for(&cfg, limit);
        let now_ms = as_millis_u64(now);
        let rd = if consume {
            inner.keys.check(digest, &strategy, now_ms, 1)
        } else {
            inner.keys.peek(digest, &strategy, now_ms)
        };
        if consume {
            inner.total.fetch_add(1, Ordering::Relaxed);
            let counter = if rd.allowed {
                &inner.allowed
            } else {
                &inner.rejected
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.decision_from(rd, limit, tier, now_ms)
    }

    fn decision_from(&self, rd: RateDecision, limit: u32, tier: Tier, now_ms: u64) -> Decision {
        let rtt = match self.inner.rtt_nanos.load(Ordering::Relaxed) {
            NO_RTT => None,
            n => Some(Duration::from_nanos(n)),
        };
        Decision {
            allowed: rd.allowed,
            limit,
            remaining: u32::try_from(rd.remaining).unwrap_or(u32::MAX),
            retry_after: if rd.allowed {
                Duration::ZERO
            } else {
                Duration::from_millis(rd.retry_after_ms.max(1))
            },
            reset_after: Duration::from_millis(rd.reset_at.saturating_sub(now_ms)),
            reason: (!rd.allowed).then_some(RejectReason::RateLimitExceeded),
            tier,
            rtt,
            gradient: f64::from_bits(self.inner.gradient_bits.load(Ordering::Relaxed)),
            axis: Some(Axis::Rate),
        }
    }

    /// Feeds the latency of one completed request. Every sample reaches the signal; at most once
    /// per `sample_interval` the ladder runs and may move the limit.
    pub fn record_response(&self, rtt: Duration) {
        let now = self.inner.clock.now();
        self.with_controller(|c, events| c.record(rtt, now, events));
    }

    /// Feeds a request that failed in a way that signals overload (a 5xx or an inner error): it
    /// counts as a sample at least as slow as `sla_warning`, so a burst of failures lowers the
    /// limit like a burst of slow responses.
    pub fn record_overload(&self, rtt: Duration) {
        let floor = self.inner.config.load().sla_warning;
        self.record_response(rtt.max(floor));
    }

    /// The current limit (per key per window on the rate axis).
    pub fn current_limit(&self) -> u32 {
        if self.inner.ramp_active.load(Ordering::Acquire) {
            let now = self.inner.clock.now();
            self.with_controller(|c, events| c.advance(now, events));
        }
        self.inner.limit.load(Ordering::Acquire)
    }

    /// The limit a request of `tier` is checked against.
    pub fn effective_limit(&self, _tier: Tier) -> u32 {
        self.inner.limit.load(Ordering::Acquire)
    }

    /// What the throttle is doing.
    pub fn regime(&self) -> Regime {
        let now = self.inner.clock.now();
        self.with_controller(|c, events| {
            c.advance(now, events);
            c.regime()
        })
    }

    /// A receiver of every [`ThrottleEvent`] from now on. A receiver that falls more than
    /// `event_capacity` events behind loses the oldest (it sees `RecvError::Lagged`); the
    /// throttle never blocks on it.
    pub fn subscribe(&self) -> broadcast::Receiver<ThrottleEvent> {
        self.inner.events.subscribe()
    }

    /// Sets a freeze reason: samples keep flowing, the limit stops moving.
    pub fn freeze(&self, reason: FreezeReason) {
        let now = self.inner.clock.now();
        self.with_controller(|c, events| c.freeze(reason, now, events));
    }

    /// Clears a freeze reason; the limit moves again once no reason remains.
    pub fn unfreeze(&self, reason: FreezeReason) {
        let now = self.inner.clock.now();
        self.with_controller(|c, events| c.unfreeze(reason, now, events));
    }

    /// Starts a recovery ramp towards `base` (80 % → 90 % → 100 % by default).
    pub fn start_recovery(&self, base: u32) {
        let now = self.inner.clock.now();
        self.with_controller(|c, events| c.start_recovery(base, now, events));
    }

    /// Ends a running ramp at once.
    pub fn complete_recovery(&self) {
        let now = self.inner.clock.now();
        self.with_controller(|c, events| c.complete_recovery(now, events));
    }

    /// Replaces the configuration atomically and returns the previous one. The limit (clamped to
    /// the new bounds), samples, key windows, freezes and ramp are kept.
    pub fn swap_config(&self, cfg: ThrottleConfig) -> ThrottleConfig {
        let now = self.inner.clock.now();
        let cfg = Arc::new(cfg);
        let old = self.with_controller(|c, events| {
            self.inner.config.store(cfg.clone());
            c.swap_config(cfg, now, events)
        });
        Arc::unwrap_or_clone(old)
    }

    /// Clears freezes and any ramp and puts the limit back to its base; returns that limit.
    pub fn rollback_to_base_limit(&self) -> u32 {
        let now = self.inner.clock.now();
        self.with_controller(|c, events| c.rollback_to_base_limit(now, events))
    }

    /// Forgets every key's window, the samples, counters, freezes and ramp; the limit returns to
    /// `initial_limit`.
    pub fn reset_all(&self) {
        let now = self.inner.clock.now();
        self.with_controller(|c, events| c.reset(now, events));
        self.inner.keys.clear();
        for counter in [
            &self.inner.total,
            &self.inner.allowed,
            &self.inner.rejected,
            &self.inner.shadow_rejected,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Forgets one key's window. Returns whether it was tracked.
    pub fn reset<K: Hash + ?Sized>(&self, key: &K) -> bool {
        self.inner.keys.remove(self.inner.keys.digest(key))
    }

    /// Counts a request that was denied but let through because the caller only observes
    /// (shadow mode).
    pub fn note_shadow_rejection(&self) {
        self.inner.shadow_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Lets every request through without counting it against the limit (Traffik's `disable`);
    /// samples are still recorded. Distinct from a freeze, which keeps limiting.
    pub fn disable(&self) {
        self.inner.disabled.store(true, Ordering::Relaxed);
    }

    /// Undoes [`disable`](Self::disable).
    pub fn enable(&self) {
        self.inner.disabled.store(false, Ordering::Relaxed);
    }

    /// Whether the throttle is disabled.
    pub fn is_disabled(&self) -> bool {
        self.inner.disabled.load(Ordering::Relaxed)
    }

    /// A consistent snapshot of the throttle's state and counters.
    pub fn stats(&self) -> ThrottleStats {
        let now = self.inner.clock.now();
        let cfg = self.config();
        let (limit, base, regime, frozen, ctl, samples, ramp) = self.with_controller(|c, events| {
            c.advance(now, events);
            (
                c.limit(),
                c.base_limit(),
                c.regime(),
                c.freeze_reasons(),
                c.stats(),
                c.sample_stats(now),
                c.ramp_progress(now),
            )
        });
        ThrottleStats {
            current_limit: limit,
            initial_limit: cfg.initial_limit,
            min_limit: cfg.min_limit,
            max_limit: cfg.max_limit,
            base_limit: base,
            regime,
            frozen_reasons: frozen,
            disabled: self.is_disabled(),
            total_requests: self.inner.total.load(Ordering::Relaxed),
            allowed_requests: self.inner.allowed.load(Ordering::Relaxed),
            rejected_requests: self.inner.rejected.load(Ordering::Relaxed),
            shadow_rejections: self.inner.shadow_rejected.load(Ordering::Relaxed),
            active_keys: self.inner.keys.len(),
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
        }
    }

    /// Runs `f` on the controller, then mirrors its state into the atomics the hot path reads
    /// and publishes the events it produced (after the lock is released).
    fn with_controller<R>(&self, f: impl FnOnce(&mut Controller, &mut Vec<ThrottleEvent>) -> R) -> R {
        let mut events = Vec::new();
        let result = {
            let mut c = self.inner.controller.lock();
            let result = f(&mut c, &mut events);
            let now = self.inner.clock.now();
            let snap = c.snapshot(now);
            self.inner.limit.store(c.limit(), Ordering::Release);
            self.inner.ramp_active.store(c.ramp_active(), Ordering::Release);
            self.inner.rtt_nanos.store(
                snap.smoothed_rtt
                    .map_or(NO_RTT, |d| u64::try_from(d.as_nanos()).unwrap_or(NO_RTT - 1)),
                Ordering::Relaxed,
            );
            self.inner
                .gradient_bits
                .store(snap.gradient.to_bits(), Ordering::Relaxed);
            result
        };
        for event in events {
            crate::log::event(&event);
            // No receiver is not an error: events are optional to observe.
            let _ = self.inner.events.send(event);
        }
        result
    }
}

/// The rate-axis strategy of `cfg` with the adaptive `limit` as its limit.
fn strategy_for(cfg: &ThrottleConfig, limit: u32) -> AnyStrategy {
    let limit = u64::from(limit.max(1));
    let window_ms = as_millis_u64(cfg.window).max(1);
    let built = match cfg.rate_strategy {
        RateStrategy::SlidingWindow { buckets } => {
            SlidingWindow::new(limit, window_ms, buckets).map(AnyStrategy::from)
        }
        RateStrategy::SlidingWindowLog => SlidingWindowLog::new(limit, window_ms).map(AnyStrategy::from),
        RateStrategy::FixedWindow => FixedWindow::new(limit, window_ms).map(AnyStrategy::from),
        RateStrategy::Gcra { burst_fraction } => {
            let burst = ((limit as f64 * burst_fraction).ceil() as u64).clamp(1, limit);
            Gcra::new(limit, window_ms, burst).map(AnyStrategy::from)
        }
        RateStrategy::TokenBucket => {
            let per_sec = limit as f64 * 1000.0 / window_ms as f64;
            TokenBucket::new(limit, per_sec).map(AnyStrategy::from)
        }
    };
    // The config was validated, so construction cannot fail; should a strategy ever add a rule,
    // fall back to the exact log, which accepts any limit and window of at least 1.
    built.unwrap_or_else(|_| {
        AnyStrategy::from(
            SlidingWindowLog::new(limit, window_ms).expect("limit and window are at least 1"),
        )
    })
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
    /// Rejections let through by a shadow-mode caller (see
    /// [`note_shadow_rejection`](AdaptiveThrottle::note_shadow_rejection)).
    pub shadow_rejections: u64,
    /// Keys tracked now.
    pub active_keys: usize,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_send_sync_clone_static() {
        fn is<T: Send + Sync + Clone + 'static>() {}
        is::<AdaptiveThrottle>();
    }
}
