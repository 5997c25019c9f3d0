//! [`AdaptiveThrottle`]: the handle that joins the rate axis, the concurrency axis, the latency
//! signal and the controller under one injected clock.
//!
//! - `mod.rs`: the handle and its everyday surface (admission, recording, limits);
//! - `inner.rs`: the shared state, the admission path and the one door to the controller;
//! - `governance.rs`: the governance view, [`Governance`];
//! - `stats.rs`: the snapshot, [`ThrottleStats`];
//! - [`rules`]: where a throttle applies (request rules and bypasses).

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

mod builder;
mod cost;
mod deferred;
mod fleet;
mod governance;
mod hot;
mod inner;
pub mod rules;
mod stats;

pub use builder::ThrottleBuilder;
pub use cost::Admitted;
pub(crate) use fleet::Admission;
pub use fleet::{FleetMember, FleetOps, FleetStats};
pub use governance::Governance;
pub use stats::{CapacityStats, ThrottleStats};

use crate::audit::AuditTrail;
use crate::clock::{Clock, MonotonicClock};
use crate::concurrency::ConcurrencyPermit;
use crate::config::ThrottleConfig;
use crate::control::Regime;
use crate::decision::{Decision, RejectReason, Tier};
use crate::events::ThrottleEvent;
use inner::Inner;
use rules::{RequestInfo, RuleSet};

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
        Self {
            inner: Arc::new(Inner::new(cfg, Arc::new(clock))),
        }
    }

    /// A builder for a throttle with a name, a clock, or a fleet store (see
    /// [`ThrottleBuilder`]).
    pub fn builder(cfg: ThrottleConfig) -> ThrottleBuilder {
        ThrottleBuilder::new(cfg)
    }

    /// Checks one request like [`check`](Self::check); in fleet mode it awaits the store when
    /// it must — a strict check, or a lease miss — and nothing else. Without a store, or on a
    /// lease hit, it is ready at once.
    pub async fn check_async<K: Hash + ?Sized>(&self, key: &K, tier: Tier) -> Decision {
        match self.fleet() {
            None => self.check(key, tier),
            Some(fleet) => {
                let digest = fleet.digest(key);
                match self.fleet_check(digest, tier, self.now()) {
                    fleet::FleetCheck::Ready(d) => d,
                    fleet::FleetCheck::Wait(f) => f.await,
                }
            }
        }
    }

    /// Fleet mode's state (store health, fleet size, shared limit, round trips), or `None`
    /// without a store.
    pub fn fleet_stats(&self) -> Option<FleetStats> {
        self.fleet().map(fleet::FleetState::stats)
    }

    /// Time on the throttle's clock.
    pub(crate) fn now(&self) -> Duration {
        self.inner.clock.now()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<ThrottleConfig> {
        self.inner.config.load_full()
    }

    /// The rate-axis window in force, read without cloning the configuration (the HTTP layer
    /// reads it per response for `RateLimit-Policy`).
    pub(crate) fn window(&self) -> Duration {
        self.inner.config.load().window
    }

    /// Checks one request of `key` at `tier` on the rate axis and, when allowed, counts it
    /// against the key's window. Denied requests consume nothing. This is the two-step API
    /// (`check` before the work, [`record_response`](Self::record_response) after it); the
    /// concurrency axis needs [`acquire`](Self::acquire).
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

    /// Admits one request of `key` at `tier` on every configured axis, in ThrottleKit's order:
    /// concurrency first, then the rate axis ([`check`](Self::check)). The first axis that
    /// denies decides, and nothing is consumed: a slot taken on the concurrency axis is
    /// released without a sample when the rate axis denies.
    ///
    /// On admission, hold the returned permit until the response is complete (to the response
    /// headers, or to the end of the body), set its [`Outcome`](crate::Outcome), and drop it; the rate axis
    /// still learns from [`record_response`](Self::record_response).
    ///
    /// Without a concurrency section (e.g. [`ThrottleConfig::baldur()`](crate::ThrottleConfig::baldur))
    /// this is `check` returning a permit that holds no slot.
    ///
    /// # Errors
    ///
    /// The denying [`Decision`]; its `axis` names the axis (`Concurrency` or `Rate`).
    pub fn acquire<K: Hash + ?Sized>(
        &self,
        key: &K,
        tier: Tier,
    ) -> Result<ConcurrencyPermit, Decision> {
        self.acquire_at(key, tier, self.now())
    }

    /// `acquire` at a time just read from this throttle's clock.
    pub(crate) fn acquire_at<K: Hash + ?Sized>(
        &self,
        key: &K,
        tier: Tier,
        now: std::time::Duration,
    ) -> Result<ConcurrencyPermit, Decision> {
        let permit = self.acquire_slot(tier, now)?;
        fleet::join_permit(permit, self.check_at(key, tier, now))
    }

    /// The concurrency axis's slot for one request of `tier` at `now` (`None` without the
    /// axis, or while disabled), or its denial.
    fn acquire_slot(
        &self,
        tier: Tier,
        now: Duration,
    ) -> Result<Option<ConcurrencyPermit>, Decision> {
        match self.inner.concurrency.as_ref() {
            Some(limiter) if !self.is_disabled() => match limiter.try_acquire_at(tier, now) {
                Ok(permit) => Ok(Some(permit)),
                Err(denied) => {
                    self.note_rejection(tier, RejectReason::ConcurrencyLimitExceeded);
                    Err(denied)
                }
            },
            _ => Ok(None),
        }
    }

    /// Feeds the latency of one completed request. Every sample reaches the signal; at most once
    /// per `sample_interval` the ladder runs and may move the limit.
    pub fn record_response(&self, rtt: Duration) {
        self.record_response_at(rtt, self.now());
    }

    /// `record_response` at a time just read from this throttle's clock.
    pub(crate) fn record_response_at(&self, rtt: Duration, now: Duration) {
        self.note_recorded(now);
        match self.inner.deferred.offer(rtt, now) {
            crate::util::stripes::Deferral::Waiting => {}
            // `with_controller` folds the stripes in first.
            crate::util::stripes::Deferral::Full => self.with_controller(now, |_, _| ()),
            crate::util::stripes::Deferral::Now => self.with_controller(now, |c, events| {
                self.hand_demand(c, now);
                c.record(rtt, now, events)
            }),
        }
    }

    /// Feeds a request that failed in a way that signals overload (a 5xx or an inner error): it
    /// counts as a sample at least as slow as `sla_warning`, so a burst of failures lowers the
    /// limit like a burst of slow responses.
    pub fn record_overload(&self, rtt: Duration) {
        self.record_overload_at(rtt, self.now());
    }

    /// `record_overload` at a time just read from this throttle's clock.
    pub(crate) fn record_overload_at(&self, rtt: Duration, now: Duration) {
        self.note_recorded(now);
        self.with_controller(now, |c, events| {
            self.hand_demand(c, now);
            c.record_overload(rtt, now, events)
        });
    }

    /// Marks that a response was recorded now (see `check_starved`), at most once a millisecond:
    /// a load is cheaper than a store on a line every recording thread shares.
    fn note_recorded(&self, now: Duration) {
        let nanos = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX).max(1);
        let at = &self.inner.recorded_at_nanos;
        if nanos.saturating_sub(at.load(Ordering::Relaxed)) >= 1_000_000 {
            at.store(nanos, Ordering::Relaxed);
        }
    }

    /// The current limit per window on the rate axis: service-wide (each key's quota is its
    /// share of it), or per key with `KeyQuota::WholeLimit`. It already is the min-winner of the
    /// adaptive limit and every active governance reduction.
    pub fn current_limit(&self) -> u32 {
        self.advance_if_due(|| self.now());
        self.inner.limit.load(Ordering::Acquire)
    }

    /// The min-winner of the adaptive limit and every active reduction (Baldur's name): the same
    /// value as [`current_limit`](Self::current_limit), which already is that minimum.
    pub fn conservative_limit(&self) -> u32 {
        self.current_limit()
    }

    /// The limit a request of `tier` is checked against now: the conservative limit, except
    /// that critical traffic keeps the pre-reduction base during an external reduction, and
    /// emergency tier multipliers apply. Zero when the tier is blocked outright.
    pub fn effective_limit(&self, tier: Tier) -> u32 {
        self.advance_if_due(|| self.now());
        self.inner.tier_limit(tier).unwrap_or(0)
    }

    /// What the throttle is doing.
    pub fn regime(&self) -> Regime {
        let now = self.now();
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

    /// Replaces the configuration atomically and returns the previous one. The limit (clamped to
    /// the new bounds), samples, key windows, freezes and ramp are kept. What is built once, with
    /// the throttle — `max_keys`, `event_capacity` and the concurrency axis — stays as it is:
    /// the swapped-in configuration keeps the running values of those, so
    /// [`config`](Self::config) says what is in force. (The admin route refuses a body that
    /// sets one of them to another value, naming it.)
    ///
    /// In fleet mode the new configuration reaches every instance of the fleet (with the
    /// feature `serde`, which `redis` enables; without it the swap stays on this instance).
    pub fn swap_config(&self, cfg: ThrottleConfig) -> ThrottleConfig {
        #[cfg(feature = "serde")]
        let encoded = self.fleet().and_then(|_| serde_json::to_string(&cfg).ok());
        let old = self.swap_config_local(cfg);
        #[cfg(feature = "serde")]
        if let Some(encoded) = encoded {
            self.note_ops("config", |d| d.config = Some(encoded));
        }
        old
    }

    /// `swap_config` on this instance only.
    pub(crate) fn swap_config_local(&self, cfg: ThrottleConfig) -> ThrottleConfig {
        let cfg = Arc::new(cfg.with_fixed_from(&self.inner.config.load()));
        let old = self.transition(|c, now, events| {
            self.inner.config.store(cfg.clone());
            self.inner.hot.store(&cfg);
            self.inner.sample_interval_nanos.store(
                inner::duration_nanos(cfg.sample_interval),
                Ordering::Relaxed,
            );
            events.push(ThrottleEvent::ConfigSwapped { at: now });
            c.swap_config(cfg, now, events)
        });
        Arc::unwrap_or_clone(old)
    }

    /// Clears freezes and any ramp and puts the limit back to its base; returns that limit.
    pub fn rollback_to_base_limit(&self) -> u32 {
        self.transition(|c, now, events| c.rollback_to_base_limit(now, events))
    }

    /// Forgets every key's window, the samples, counters, freezes and ramp; the limit returns to
    /// `initial_limit`.
    pub fn reset_all(&self) {
        self.transition(|c, now, events| {
            events.push(ThrottleEvent::Reset { at: now });
            c.reset(now, events)
        });
        self.inner.keys.clear();
        self.inner.global.reset();
        if let Some(fleet) = self.fleet() {
            fleet.clear();
        }
        if let Some(meter) = self.cost_meter() {
            meter.clear();
        }
        self.inner.shadow_rejected.store(0, Ordering::Relaxed);
        self.inner.counters.reset();
    }

    /// Forgets one key's window. Returns whether it was tracked.
    pub fn reset<K: Hash + ?Sized>(&self, key: &K) -> bool {
        self.inner.keys.remove(self.inner.keys.digest(key))
    }

    /// Counts a request that was denied but let through because the caller only observes
    /// (shadow mode).
    pub(crate) fn note_shadow_rejection(&self) {
        self.inner.shadow_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The audit trail of every transition of this throttle.
    pub fn audit(&self) -> &AuditTrail {
        &self.inner.audit
    }

    /// Runs `f` with `actor` recorded as the source of every audit entry it causes (for
    /// operator actions, e.g. `t.as_actor("alice", |t| t.governance().set_kill_switch(true))`).
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
    /// samples are still recorded. Distinct from the kill switch, which freezes the limit and
    /// keeps limiting. In fleet mode, every instance of the fleet.
    pub fn disable(&self) {
        self.set_enabled_local(false);
        self.note_ops("disable", |d| d.enabled = false);
    }

    /// Undoes [`disable`](Self::disable).
    pub fn enable(&self) {
        self.set_enabled_local(true);
        self.note_ops("enable", |d| d.enabled = true);
    }

    /// Whether the throttle is disabled.
    pub fn is_disabled(&self) -> bool {
        self.inner.disabled.load(Ordering::Relaxed)
    }

    pub(crate) fn set_enabled_local(&self, enabled: bool) {
        let was_disabled = self.inner.disabled.swap(!enabled, Ordering::Relaxed);
        if was_disabled == enabled {
            self.transition(|_, at, events| {
                events.push(ThrottleEvent::EnabledChanged { at, enabled })
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::tests::fixed;
    use crate::{Axis, ManualClock};

    #[test]
    fn throttle_acquire_checks_concurrency_then_rate() {
        let cfg = ThrottleConfig::builder()
            .min_limit(1)
            .initial_limit(2)
            .window(Duration::from_secs(60))
            .rate_strategy(crate::config::RateStrategy::SlidingWindowLog)
            // Per-key limits: this test is about the order of the axes, not about shares.
            .key_quota(crate::config::KeyQuota::WholeLimit)
            .concurrency(fixed(3))
            .build()
            .unwrap();
        let clock = ManualClock::new();
        let t = AdaptiveThrottle::with_clock(cfg, clock.clone());
        let a = t.acquire("k", Tier::Standard).unwrap();
        assert!(a.holds_slot() && a.decision().allowed);
        let b = t.acquire("k", Tier::Standard).unwrap();
        // The rate axis (2 per window) denies the third: its slot is released, not sampled.
        let d = t.acquire("k", Tier::Standard).unwrap_err();
        assert_eq!(d.axis, Some(Axis::Rate));
        assert_eq!(t.concurrency_stats().unwrap().inflight, 2);
        // Another key passes the rate axis; the concurrency axis (3) is now full.
        let c = t.acquire("other", Tier::Standard).unwrap();
        let d = t.acquire("third", Tier::Standard).unwrap_err();
        assert_eq!(d.axis, Some(Axis::Concurrency));
        assert_eq!(d.reason, Some(RejectReason::ConcurrencyLimitExceeded));
        drop((a, b, c));
        let s = t.concurrency_stats().unwrap();
        assert_eq!((s.inflight, s.samples, s.ignored), (0, 0, 4));
    }

    #[test]
    fn throttle_without_concurrency_section_hands_out_empty_permits() {
        let clock = ManualClock::new();
        let t = AdaptiveThrottle::with_clock(ThrottleConfig::baldur(), clock);
        let p = t.acquire("k", Tier::Standard).unwrap();
        assert!(!p.holds_slot());
        assert_eq!(p.decision().axis, Some(Axis::Rate));
        assert!(t.concurrency_stats().is_none());
    }

    #[test]
    fn handle_is_send_sync_clone_static() {
        fn is<T: Send + Sync + Clone + 'static>() {}
        is::<AdaptiveThrottle>();
    }
}
