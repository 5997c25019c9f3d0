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
use crate::audit::AuditTrail;
use crate::breaker::{BreakerConfig, BreakerStats};
use crate::clock::{as_millis_u64, Clock, MonotonicClock};
use crate::config::{RateStrategy, ThrottleConfig};
use crate::control::{Controller, RampProgress, Regime};
use crate::counters::{tier_index, CounterSnapshot, Counters};
use crate::decision::{Axis, Decision, RejectReason, Tier};
use crate::events::{FreezeReason, LimitChange, ThrottleEvent};
use crate::governance::{
    BreakerState, ErrorBudget, GovernanceSnapshot, GovernanceSource, GovernanceState,
};
use crate::registry::{RequestInfo, RuleSet};
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
    /// Per-tier limit (low 32 bits) and block reason code (high bits), mirrored likewise.
    tier_limits: [AtomicU64; 3],
    /// The governance source and when it is next due, in clock nanoseconds.
    governance_source: Mutex<Option<Box<dyn GovernanceSource>>>,
    governance_due_nanos: AtomicU64,
    /// Smoothed RTT in nanoseconds; `u64::MAX` before the first sample.
    rtt_nanos: AtomicU64,
    gradient_bits: AtomicU64,
    /// Something moves with time alone (ramp, open breaker): `advance` before reading.
    awaits_time: AtomicBool,
    disabled: AtomicBool,
    controller: Mutex<Controller>,
    keys: KeyTable,
    rules: ArcSwap<RuleSet>,
    audit: AuditTrail,
    counters: Counters,
    events: broadcast::Sender<ThrottleEvent>,
    /// Rejections a shadow-mode layer let through.
    shadow_rejected: AtomicU64,
    overload_warning: crate::log::OverloadWarning,
    /// When the concurrency axis last shed a request (clock nanoseconds; `u64::MAX` never).
    shed_at_nanos: AtomicU64,
    /// The concurrency axis, when the config has a concurrency section (see `concurrency/`).
    concurrency: Option<crate::concurrency::ConcurrencyLimiter>,
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
        let clock: Arc<dyn Clock> = Arc::new(clock);
        let concurrency = cfg
            .concurrency()
            .cloned()
            .map(|c| crate::concurrency::ConcurrencyLimiter::with_shared_clock(c, clock.clone()));
        Self {
            inner: Arc::new(Inner {
                clock,
                concurrency,
                limit: AtomicU32::new(controller.limit()),
                tier_limits: Tier::ALL
                    .map(|t| AtomicU64::new(encode_tier_limit(controller.tier_limit(t)))),
                governance_source: Mutex::new(None),
                governance_due_nanos: AtomicU64::new(u64::MAX),
                rtt_nanos: AtomicU64::new(NO_RTT),
                gradient_bits: AtomicU64::new(0f64.to_bits()),
                awaits_time: AtomicBool::new(false),
                disabled: AtomicBool::new(false),
                keys: KeyTable::new(cfg.max_keys),
                controller: Mutex::new(controller),
                rules: ArcSwap::from_pointee(RuleSet::new()),
                audit: AuditTrail::default(),
                counters: Counters::default(),
                config: ArcSwap::new(cfg),
                events,
                shadow_rejected: AtomicU64::new(0),
                overload_warning: Default::default(),
                shed_at_nanos: AtomicU64::new(u64::MAX),
            }),
        }
    }

    /// The concurrency axis, if the config has a concurrency section. It is built once, with
    /// the throttle; `swap_config` does not replace it.
    pub fn concurrency_limiter(&self) -> Option<&crate::concurrency::ConcurrencyLimiter> {
        self.inner.concurrency.as_ref()
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
        self.check_digest(self.inner.keys.digest(key), tier, true, None)
    }

    /// `check` at a time the caller has just read from this throttle's clock (the HTTP layer
    /// reads the clock once per request and reuses it).
    pub(crate) fn check_at<K: Hash + ?Sized>(
        &self,
        key: &K,
        tier: Tier,
        now: Duration,
    ) -> Decision {
        self.check_digest(self.inner.keys.digest(key), tier, true, Some(now))
    }

    /// The decision `check` would return for `key` (as a standard-tier request), consuming
    /// nothing.
    pub fn peek<K: Hash + ?Sized>(&self, key: &K) -> Decision {
        self.check_digest(self.inner.keys.digest(key), Tier::Standard, false, None)
    }

    fn check_digest(
        &self,
        digest: u64,
        tier: Tier,
        consume: bool,
        now: Option<Duration>,
    ) -> Decision {
        let inner = &*self.inner;
        if inner.disabled.load(Ordering::Relaxed) {
            if consume {
                inner.counters.decision(tier, true, None);
            }
            return Decision::unlimited(tier);
        }
        let now = now.unwrap_or_else(|| inner.clock.now());
        self.poll_governance(now);
        if inner.awaits_time.load(Ordering::Acquire) {
            self.with_controller(now, |c, events| c.advance(now, events));
        }
        let limit =
            match decode_tier_limit(inner.tier_limits[tier_index(tier)].load(Ordering::Acquire)) {
                Ok(limit) => limit,
                Err(reason) => {
                    if consume {
                        inner.counters.decision(tier, false, Some(reason));
                    }
                    return self.blocked(reason, tier);
                }
            };
        let cfg = inner.config.load();
        let strategy = strategy_for(&cfg, limit);
        let now_ms = as_millis_u64(now);
        let rd = if consume {
            inner.keys.check(digest, &strategy, now_ms, 1)
        } else {
            inner.keys.peek(digest, &strategy, now_ms)
        };
        if consume {
            inner.counters.decision(
                tier,
                rd.allowed,
                (!rd.allowed).then_some(RejectReason::RateLimitExceeded),
            );
            if !rd.allowed {
                inner
                    .overload_warning
                    .rejected(now, || (inner.counters.rejected_total(), limit));
            }
        }
        self.decision_from(rd, limit, tier, now_ms)
    }

    /// A denial by a governance input: nothing is consumed; retry after a sample interval (at
    /// least a second), when the input may have changed.
    fn blocked(&self, reason: RejectReason, tier: Tier) -> Decision {
        let retry = self
            .inner
            .config
            .load()
            .sample_interval
            .max(Duration::from_secs(1));
        let mut d = Decision::unlimited(tier);
        d.allowed = false;
        d.limit = 0;
        d.remaining = 0;
        d.retry_after = retry;
        d.reset_after = retry;
        d.reason = Some(reason);
        d.axis = Some(Axis::Policy);
        d.rtt = self.smoothed_rtt();
        d.gradient = f64::from_bits(self.inner.gradient_bits.load(Ordering::Relaxed));
        d
    }

    fn smoothed_rtt(&self) -> Option<Duration> {
        match self.inner.rtt_nanos.load(Ordering::Relaxed) {
            NO_RTT => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    fn decision_from(&self, rd: RateDecision, limit: u32, tier: Tier, now_ms: u64) -> Decision {
        let rtt = self.smoothed_rtt();
        Decision {
            allowed: rd.allowed,
            limit,
            // A denied request of cost 1 has nothing left, whatever rounding a strategy reports.
            remaining: if rd.allowed {
                u32::try_from(rd.remaining).unwrap_or(u32::MAX)
            } else {
                0
            },
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
        self.record_response_at(rtt, self.inner.clock.now());
    }

    /// `record_response` at a time just read from this throttle's clock.
    pub(crate) fn record_response_at(&self, rtt: Duration, now: Duration) {
        self.with_controller(now, |c, events| c.record(rtt, now, events));
    }

    /// Feeds a request that failed in a way that signals overload (a 5xx or an inner error): it
    /// counts as a sample at least as slow as `sla_warning`, so a burst of failures lowers the
    /// limit like a burst of slow responses.
    pub fn record_overload(&self, rtt: Duration) {
        self.record_overload_at(rtt, self.inner.clock.now());
    }

    /// `record_overload` at a time just read from this throttle's clock.
    pub(crate) fn record_overload_at(&self, rtt: Duration, now: Duration) {
        self.with_controller(now, |c, events| c.record_overload(rtt, now, events));
    }

    /// The current limit (per key per window on the rate axis).
    pub fn current_limit(&self) -> u32 {
        if self.inner.awaits_time.load(Ordering::Acquire) {
            let now = self.inner.clock.now();
            self.with_controller(now, |c, events| c.advance(now, events));
        }
        self.inner.limit.load(Ordering::Acquire)
    }

    /// The limit a request of `tier` is checked against now: the conservative limit, except
    /// that critical traffic keeps the pre-reduction base during an external reduction, and
    /// emergency tier multipliers apply. Zero when the tier is blocked outright.
    pub fn effective_limit(&self, tier: Tier) -> u32 {
        if self.inner.awaits_time.load(Ordering::Acquire) {
            let now = self.inner.clock.now();
            self.with_controller(now, |c, events| c.advance(now, events));
        }
        decode_tier_limit(self.inner.tier_limits[tier_index(tier)].load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// What the throttle is doing.
    pub fn regime(&self) -> Regime {
        let now = self.inner.clock.now();
        let regime = self.with_controller(now, |c, events| {
            c.advance(now, events);
            c.regime()
        });
        self.regime_at(regime, now)
    }

    /// A receiver of every [`ThrottleEvent`] from now on. A receiver that falls more than
    /// `event_capacity` events behind loses the oldest (it sees `RecvError::Lagged`); the
    /// throttle never blocks on it.
    pub fn subscribe(&self) -> broadcast::Receiver<ThrottleEvent> {
        self.inner.events.subscribe()
    }

    /// How many receivers are subscribed to the event channel right now.
    pub fn subscriber_count(&self) -> usize {
        self.inner.events.receiver_count()
    }

    /// Sets a freeze reason: samples keep flowing, the limit stops moving.
    pub fn freeze(&self, reason: FreezeReason) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.freeze(reason, now, events));
    }

    /// Clears a freeze reason; the limit moves again once no reason remains.
    pub fn unfreeze(&self, reason: FreezeReason) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.unfreeze(reason, now, events));
    }

    /// Starts a recovery ramp towards `base` (80 % → 90 % → 100 % by default).
    pub fn start_recovery(&self, base: u32) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.start_recovery(base, now, events));
    }

    /// Ends a running ramp at once.
    pub fn complete_recovery(&self) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.complete_recovery(now, events));
    }

    /// Replaces the configuration atomically and returns the previous one. The limit (clamped to
    /// the new bounds), samples, key windows, freezes and ramp are kept.
    pub fn swap_config(&self, cfg: ThrottleConfig) -> ThrottleConfig {
        let now = self.inner.clock.now();
        let cfg = Arc::new(cfg);
        let old = self.with_controller(now, |c, events| {
            self.inner.config.store(cfg.clone());
            events.push(ThrottleEvent::ConfigSwapped { at: now });
            c.swap_config(cfg, now, events)
        });
        Arc::unwrap_or_clone(old)
    }

    /// Clears freezes and any ramp and puts the limit back to its base; returns that limit.
    pub fn rollback_to_base_limit(&self) -> u32 {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.rollback_to_base_limit(now, events))
    }

    /// Forgets every key's window, the samples, counters, freezes and ramp; the limit returns to
    /// `initial_limit`.
    pub fn reset_all(&self) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| {
            events.push(ThrottleEvent::Reset { at: now });
            c.reset(now, events)
        });
        self.inner.keys.clear();
        self.inner.shadow_rejected.store(0, Ordering::Relaxed);
        self.inner.counters.reset();
    }

    /// Forgets one key's window. Returns whether it was tracked.
    pub fn reset<K: Hash + ?Sized>(&self, key: &K) -> bool {
        self.inner.keys.remove(self.inner.keys.digest(key))
    }

    /// Counts a request denied by an axis other than the rate axis (the concurrency axis), so
    /// stats and metrics see every rejection.
    pub(crate) fn note_rejection(&self, tier: Tier, reason: RejectReason) {
        let inner = &*self.inner;
        inner.counters.decision(tier, false, Some(reason));
        let now = inner.clock.now();
        inner.shed_at_nanos.store(
            u64::try_from(now.as_nanos()).unwrap_or(u64::MAX - 1),
            Ordering::Relaxed,
        );
        inner.overload_warning.rejected(now, || {
            let limit = self.concurrency_limiter().map_or(0, |l| l.tier_limit(tier));
            (inner.counters.rejected_total(), limit)
        });
    }

    /// The controller's regime, except that a throttle whose concurrency axis shed work within
    /// the last sample interval is `Throttling` rather than `Normal`.
    fn regime_at(&self, controller: Regime, now: Duration) -> Regime {
        let shed_at = self.inner.shed_at_nanos.load(Ordering::Relaxed);
        let window = u64::try_from(self.inner.config.load().sample_interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1_000_000_000);
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        if controller == Regime::Normal
            && shed_at != u64::MAX
            && now.saturating_sub(shed_at) < window
        {
            Regime::Throttling
        } else {
            controller
        }
    }

    /// Publishes an event that happened outside the controller (a dead-letter queue's), to
    /// subscribers and the audit trail.
    #[cfg_attr(not(feature = "dlq"), allow(dead_code))]
    pub(crate) fn publish(&self, event: ThrottleEvent) {
        crate::log::event(&event);
        self.inner.audit.record_event(&event);
        let _ = self.inner.events.send(event);
    }

    /// Counts a request that was denied but let through because the caller only observes
    /// (shadow mode).
    pub fn note_shadow_rejection(&self) {
        self.inner.shadow_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Per-request counters: requests by tier and result, rejections by reason, the latency
    /// histogram, limit changes by direction and trigger.
    pub fn counters(&self) -> CounterSnapshot {
        let rtt = self.inner.controller.lock().rtt_histogram();
        self.inner.counters.snapshot(rtt)
    }

    /// The audit trail of every transition of this throttle.
    pub fn audit(&self) -> &AuditTrail {
        &self.inner.audit
    }

    /// Runs `f` with `actor` recorded as the source of every audit entry it causes (for
    /// operator actions, e.g. `t.as_actor("alice", |t| t.set_kill_switch(true))`).
    pub fn as_actor<R>(&self, actor: &str, f: impl FnOnce(&Self) -> R) -> R {
        crate::audit::with_actor(actor, || f(self))
    }

    /// Whether this throttle applies to a request, by its rules and bypasses (see
    /// [`RuleSet`]). With no rules it applies everywhere.
    pub fn applies_to(&self, req: &RequestInfo<'_>) -> bool {
        let rules = self.inner.rules.load();
        rules.is_empty() || rules.applies(req)
    }

    /// The rules and bypasses in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.inner.rules.load_full()
    }

    /// Replaces the rules and bypasses atomically.
    pub fn set_rules(&self, rules: RuleSet) {
        self.inner.rules.store(Arc::new(rules));
    }

    /// Updates the rules atomically from the current set (concurrent updates do not lose each
    /// other's changes).
    pub fn update_rules(&self, update: impl Fn(RuleSet) -> RuleSet) {
        self.inner
            .rules
            .rcu(|current| Arc::new(update(RuleSet::clone(current))));
    }

    /// Lets every request through without counting it against the limit (Traffik's `disable`);
    /// samples are still recorded. Distinct from a freeze, which keeps limiting.
    pub fn disable(&self) {
        self.set_enabled(false);
    }

    fn set_enabled(&self, enabled: bool) {
        let was_disabled = self.inner.disabled.swap(!enabled, Ordering::Relaxed);
        if was_disabled == enabled {
            let at = self.inner.clock.now();
            self.with_controller(at, |_, events| {
                events.push(ThrottleEvent::EnabledChanged { at, enabled })
            });
        }
    }

    /// Undoes [`disable`](Self::disable).
    pub fn enable(&self) {
        self.set_enabled(true);
    }

    /// Whether the throttle is disabled.
    pub fn is_disabled(&self) -> bool {
        self.inner.disabled.load(Ordering::Relaxed)
    }

    /// Engages (`true`) or releases the kill switch. Engaged, it freezes the limit where it is;
    /// released, the limit recovers through the ramp.
    pub fn set_kill_switch(&self, on: bool) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.set_kill_switch(on, now, events));
    }

    /// Sets the emergency level, 0 (none) to 3: caps of 80 % / 50 % of the pre-incident base /
    /// the floor (and frozen), with per-tier multipliers. Back to 0 starts the recovery ramp.
    pub fn set_emergency_level(&self, level: u8) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.set_emergency_level(level, now, events));
    }

    /// Releases a full stop, the emergency level and the kill switch; the limit recovers through
    /// the ramp.
    pub fn break_glass(&self) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.break_glass(now, events));
    }

    /// Sets the error budget state: warning caps at 80 % of the base, critical at 50 % and
    /// rejects non-essential requests.
    pub fn set_error_budget(&self, budget: ErrorBudget) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.set_error_budget(budget, now, events));
    }

    /// Load shedding at `traffic_percent` of capacity (cap `max_limit × p % × 1.5`), or off.
    pub fn set_load_shedding(&self, traffic_percent: Option<u8>) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| {
            c.set_load_shedding(traffic_percent, now, events)
        });
    }

    /// A circuit breaker guarding this service changed state (for an external breaker; the
    /// built-in one, see [`set_breaker`](Self::set_breaker), reports itself).
    pub fn on_breaker_state(&self, state: BreakerState) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.on_breaker_state(state, now, events));
    }

    /// An upstream this service calls answered 429 for the `consecutive`-th time in a row: cap
    /// at 80 % / 60 % / 50 % of the pre-incident base; critical traffic keeps the base.
    pub fn on_upstream_429(&self, consecutive: u32) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.on_upstream_429(consecutive, now, events));
    }

    /// The upstream's cooldown ended: the 429 reduction ends and the ramp starts.
    pub fn on_upstream_cooldown_end(&self) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.on_upstream_cooldown_end(now, events));
    }

    /// The min-winner of the adaptive limit and every active reduction.
    pub fn conservative_limit(&self) -> u32 {
        self.current_limit()
    }

    /// Governance inputs currently applied.
    pub fn governance(&self) -> GovernanceState {
        self.inner.controller.lock().governance()
    }

    /// Attaches the built-in circuit breaker (fed by `record_response` and `record_overload`;
    /// three consecutive critical latencies count as a failure), or removes it with `None`.
    pub fn set_breaker(&self, cfg: Option<BreakerConfig>) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.set_breaker(cfg, now, events));
    }

    /// Counters of the built-in breaker, if attached.
    pub fn breaker_stats(&self) -> Option<BreakerStats> {
        self.inner.controller.lock().breaker_stats()
    }

    /// Polls `source` lazily from `check`, at most once per its TTL (the first poll happens on
    /// the next check), applying any difference from the throttle's state.
    pub fn set_governance_source(&self, source: impl GovernanceSource) {
        *self.inner.governance_source.lock() = Some(Box::new(source));
        self.inner.governance_due_nanos.store(0, Ordering::Release);
    }

    /// Applies governance facts now (what a poll of a source does).
    pub fn apply_governance(&self, facts: GovernanceSnapshot) {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| c.apply_governance(facts, now, events));
    }

    fn poll_governance(&self, now: Duration) {
        let inner = &*self.inner;
        let now_nanos = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX - 1);
        let due = inner.governance_due_nanos.load(Ordering::Acquire);
        if now_nanos < due {
            return;
        }
        // One caller polls; the others go on with the state they have.
        let Some(source) = inner.governance_source.try_lock() else {
            return;
        };
        let Some(source) = source.as_ref() else {
            return;
        };
        let ttl = u64::try_from(source.ttl().as_nanos()).unwrap_or(u64::MAX);
        inner
            .governance_due_nanos
            .store(now_nanos.saturating_add(ttl.max(1)), Ordering::Release);
        let facts = source.poll();
        self.with_controller(now, |c, events| c.apply_governance(facts, now, events));
    }

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
                    (c.governance(), c.breaker_stats()),
                )
            });
        let (governance, breaker) = gov;
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
        }
    }

    /// Runs `f` on the controller, then mirrors its state into the atomics the hot path reads
    /// and publishes the events it produced (after the lock is released).
    fn with_controller<R>(
        &self,
        now: Duration,
        f: impl FnOnce(&mut Controller, &mut Vec<ThrottleEvent>) -> R,
    ) -> R {
        let mut events = Vec::new();
        let result = {
            let mut c = self.inner.controller.lock();
            let result = f(&mut c, &mut events);
            let snap = c.snapshot(now);
            // Limits move only through transitions, and every transition emits an event: with
            // none (the common record), the mirrored limits are still current.
            if !events.is_empty() {
                self.inner
                    .limit
                    .store(c.conservative_limit(), Ordering::Release);
                for tier in Tier::ALL {
                    self.inner.tier_limits[tier_index(tier)]
                        .store(encode_tier_limit(c.tier_limit(tier)), Ordering::Release);
                }
            }
            self.inner
                .awaits_time
                .store(c.awaits_time(), Ordering::Release);
            self.inner.rtt_nanos.store(
                snap.smoothed_rtt.map_or(NO_RTT, |d| {
                    u64::try_from(d.as_nanos()).unwrap_or(NO_RTT - 1)
                }),
                Ordering::Relaxed,
            );
            self.inner
                .gradient_bits
                .store(snap.gradient.to_bits(), Ordering::Relaxed);
            result
        };
        self.inner.counters.events(&events);
        for event in events {
            crate::log::event(&event);
            self.inner.audit.record_event(&event);
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
        RateStrategy::SlidingWindowLog => {
            SlidingWindowLog::new(limit, window_ms).map(AnyStrategy::from)
        }
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
    /// Governance inputs applied.
    pub governance: GovernanceState,
    /// The built-in breaker's counters, if attached.
    pub breaker: Option<BreakerStats>,
}

const BLOCKED_REASONS: [RejectReason; 3] = [
    RejectReason::FullStop,
    RejectReason::ErrorBudgetCriticalNonEssentialBlocked,
    RejectReason::EmergencyTierBlocked,
];

fn encode_tier_limit(v: Result<u32, RejectReason>) -> u64 {
    match v {
        Ok(limit) => u64::from(limit),
        Err(reason) => {
            let code = BLOCKED_REASONS
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(0) as u64
                + 1;
            code << 32
        }
    }
}

fn decode_tier_limit(v: u64) -> Result<u32, RejectReason> {
    match (v >> 32) as usize {
        0 => Ok(v as u32),
        code => Err(BLOCKED_REASONS[(code - 1).min(BLOCKED_REASONS.len() - 1)]),
    }
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
