//! The state behind an [`AdaptiveThrottle`] handle, and the two paths through it: admission
//! reads atomics that mirror the controller; everything that moves the limit goes through
//! [`AdaptiveThrottle::with_controller`], which updates those mirrors and publishes the events.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::hot::HotConfig;
use super::rules::RuleSet;
use super::AdaptiveThrottle;
use crate::admission::{GlobalCell, GlobalRate, KeyTable, Shared};
use crate::audit::AuditTrail;
use crate::clock::{as_millis_u64, Clock};
use crate::concurrency::ConcurrencyLimiter;
use crate::config::{KeyQuota, RateStrategy, ThrottleConfig, DEFAULT_GCRA_BURST_FRACTION};
use crate::control::{Controller, Demand, Regime};
use crate::counters::{tier_index, Counters};
use crate::decision::{Axis, Decision, RejectReason, Tier};
use crate::events::ThrottleEvent;
use crate::governance::GovernanceSource;
use crate::strategy::{
    AnyStrategy, FixedWindow, Gcra, RateDecision, SlidingWindow, SlidingWindowLog, TokenBucket,
};
use crate::util::{ceil_u64, floor_u64};

pub(super) struct Inner {
    pub(super) clock: std::sync::Arc<dyn Clock>,
    pub(super) config: ArcSwap<ThrottleConfig>,
    /// What admission reads of `config` per request, readable without a write (see `hot`).
    pub(super) hot: super::hot::HotCell,
    /// Mirror of the controller's limit so `check` never takes the controller lock.
    pub(super) limit: AtomicU32,
    /// Per-tier limit (low 32 bits) and block reason code (high bits), mirrored likewise.
    pub(super) tier_limits: [AtomicU64; 3],
    /// The governance source and when it is next due, in clock nanoseconds.
    pub(super) governance_source: Mutex<Option<Box<dyn GovernanceSource>>>,
    pub(super) governance_due_nanos: AtomicU64,
    /// Smoothed RTT in nanoseconds; `u64::MAX` before the first sample.
    pub(super) rtt_nanos: AtomicU64,
    pub(super) gradient_bits: AtomicU64,
    /// Something moves with time alone (ramp, open breaker): `advance` before reading.
    pub(super) awaits_time: AtomicBool,
    pub(super) disabled: AtomicBool,
    pub(super) controller: Mutex<Controller>,
    /// Responses waiting to be folded into the controller (see `deferred`).
    pub(super) deferred: super::deferred::DeferredSamples,
    pub(super) keys: KeyTable,
    /// The service-wide limit the keys share (unused with `KeyQuota::WholeLimit`).
    pub(super) global: GlobalCell,
    /// When a response was last recorded (clock nanoseconds), for the check that the service
    /// still answers.
    pub(super) recorded_at_nanos: AtomicU64,
    /// The config's sample interval in nanoseconds, mirrored for that check.
    pub(super) sample_interval_nanos: AtomicU64,
    /// Requests the service-wide limit rejected: what tells the capacity estimate that the
    /// limit binds (with `WholeLimit`, every rate-axis rejection).
    pub(super) capacity_rejected: AtomicU64,
    pub(super) rules: ArcSwap<RuleSet>,
    pub(super) audit: AuditTrail,
    pub(super) counters: Counters,
    pub(super) events: broadcast::Sender<ThrottleEvent>,
    /// Rejections a shadow-mode layer let through.
    pub(super) shadow_rejected: AtomicU64,
    pub(super) overload_warning: crate::log::OverloadWarning,
    /// When the concurrency axis last shed a request (clock nanoseconds; `u64::MAX` never).
    pub(super) shed_at_nanos: AtomicU64,
    /// The concurrency axis, when the config has a concurrency section (see `concurrency/`).
    pub(super) concurrency: Option<ConcurrencyLimiter>,
    /// Fleet mode: the store and what this instance holds of the fleet's budgets.
    pub(super) fleet: Option<Box<super::fleet::FleetState>>,
    /// The cost axis, when the config has a cost section (see `cost/`).
    pub(super) cost: Option<std::sync::Arc<crate::cost::CostMeter>>,
}

pub(super) const NO_RTT: u64 = u64::MAX;

pub(super) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The largest burst of the service-wide limit, as a fraction of the limit per window.
const SHARED_BURST_FRACTION: f64 = 0.1;

impl Inner {
    pub(super) fn new(cfg: ThrottleConfig, clock: std::sync::Arc<dyn Clock>) -> Self {
        let cfg = std::sync::Arc::new(cfg);
        let (events, _) = broadcast::channel(cfg.event_capacity);
        let controller = Controller::with_config(cfg.clone());
        let concurrency = cfg
            .concurrency()
            .cloned()
            .map(|c| ConcurrencyLimiter::with_shared_clock(c, clock.clone()));
        let cost = cfg.cost().map(|c| {
            std::sync::Arc::new(crate::cost::CostMeter::new(c, cfg.max_keys, clock.clone()))
        });
        Self {
            clock,
            concurrency,
            cost,
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
            global: GlobalCell::default(),
            capacity_rejected: AtomicU64::new(0),
            recorded_at_nanos: AtomicU64::new(0),
            sample_interval_nanos: AtomicU64::new(duration_nanos(cfg.sample_interval)),
            controller: Mutex::new(controller),
            deferred: super::deferred::DeferredSamples::new(),
            rules: ArcSwap::from_pointee(RuleSet::new()),
            audit: AuditTrail::default(),
            counters: Counters::default(),
            hot: super::hot::HotCell::new(&cfg),
            config: ArcSwap::new(cfg),
            events,
            shadow_rejected: AtomicU64::new(0),
            overload_warning: Default::default(),
            shed_at_nanos: AtomicU64::new(u64::MAX),
            fleet: None,
        }
    }

    pub(super) fn smoothed_rtt(&self) -> Option<Duration> {
        match self.rtt_nanos.load(Ordering::Relaxed) {
            NO_RTT => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    pub(super) fn gradient(&self) -> f64 {
        f64::from_bits(self.gradient_bits.load(Ordering::Relaxed))
    }

    /// The mirrored limit of `tier`, or why the tier is blocked outright.
    pub(super) fn tier_limit(&self, tier: Tier) -> Result<u32, RejectReason> {
        decode_tier_limit(self.tier_limits[tier_index(tier)].load(Ordering::Acquire))
    }
}

impl AdaptiveThrottle {
    /// The rate-axis check of one key digest; `consume` counts an admission against its window.
    pub(super) fn check_digest(
        &self,
        digest: u64,
        tier: Tier,
        consume: bool,
        now: Option<Duration>,
    ) -> Decision {
        let now = now.unwrap_or_else(|| self.inner.clock.now());
        match self.rate_prelude(tier, consume, now) {
            Ok(limit) => self.check_local(digest, tier, consume, now, limit),
            Err(decision) => decision,
        }
    }

    /// What every rate-axis check does first: a disabled throttle admits, governance inputs
    /// are polled, time-driven transitions applied, a blocked tier denied. Returns the tier's
    /// limit, or the decision already made.
    pub(super) fn rate_prelude(
        &self,
        tier: Tier,
        consume: bool,
        now: Duration,
    ) -> Result<u32, Decision> {
        let inner = &*self.inner;
        if inner.disabled.load(Ordering::Relaxed) {
            if consume {
                inner.counters.decision(tier, true, None);
            }
            return Err(Decision::unlimited(tier));
        }
        self.poll_governance(now);
        self.advance_if_due(|| now);
        match inner.tier_limit(tier) {
            Ok(limit) => {
                if consume {
                    self.check_starved(now);
                }
                Ok(limit)
            }
            Err(reason) => {
                if consume {
                    inner.counters.decision(tier, false, Some(reason));
                }
                Err(self.blocked(reason, tier))
            }
        }
    }

    /// The rate axis on this instance's own state, against `limit` (the tier's limit, or a
    /// fleet instance's share of it while its store is away).
    pub(super) fn check_local(
        &self,
        digest: u64,
        tier: Tier,
        consume: bool,
        now: Duration,
        limit: u32,
    ) -> Decision {
        let inner = &*self.inner;
        let cfg = inner.hot.load();
        let now_ms = as_millis_u64(now);
        let (rd, limit) = if cfg.key_quota.is_shared() {
            self.check_shared(digest, tier, consume, &cfg, limit, now)
        } else {
            let strategy = strategy_for(&cfg, limit);
            let rd = if consume {
                inner.keys.check(digest, &strategy, now_ms, 1)
            } else {
                inner.keys.peek(digest, &strategy, now_ms)
            };
            if consume && !rd.allowed {
                inner.capacity_rejected.fetch_add(1, Ordering::Relaxed);
            }
            (rd, limit)
        };
        if consume {
            self.count_rate(tier, rd.allowed, limit, now);
        }
        self.decision_from(rd, limit, tier, now_ms)
    }

    /// Counts one rate-axis decision in the counters (and the overload warning).
    pub(super) fn count_rate(&self, tier: Tier, allowed: bool, limit: u32, now: Duration) {
        let inner = &*self.inner;
        inner.counters.decision(
            tier,
            allowed,
            (!allowed).then_some(RejectReason::RateLimitExceeded),
        );
        if !allowed {
            inner
                .overload_warning
                .rejected(now, || (inner.counters.rejected_total(), limit));
        }
    }

    /// The rate axis when keys share one service-wide limit: the key's quota (its fair share
    /// of `limit` among the active keys, or a fixed quota capped by `limit`), then the
    /// service-wide cell. Returns the decision and the key's quota.
    fn check_shared(
        &self,
        digest: u64,
        tier: Tier,
        consume: bool,
        cfg: &HotConfig,
        limit: u32,
        now: Duration,
    ) -> (RateDecision, u32) {
        let inner = &*self.inner;
        let now_ms = as_millis_u64(now);
        let now_us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
        let window_ms = as_millis_u64(cfg.window).max(1);
        let limit = limit.max(1);
        let quota = match cfg.key_quota {
            KeyQuota::Fixed(q) => q.min(limit),
            _ => {
                let active = inner.keys.active(now_ms, window_ms);
                u32::try_from(u64::from(limit).div_ceil(active)).unwrap_or(limit)
            }
        }
        .max(1);
        let rate = global_rate(cfg, limit);
        let global = inner.global.peek(&rate, tier, now_us);
        let global_denial = |view: crate::admission::GlobalView| RateDecision {
            allowed: false,
            limit: u64::from(quota),
            remaining: 0,
            reset_at: now_ms + view.retry_after_us.div_ceil(1000).max(1),
            retry_after_ms: view.retry_after_us.div_ceil(1000).max(1),
        };
        if !global.allowed {
            if consume {
                inner.capacity_rejected.fetch_add(1, Ordering::Relaxed);
                // Still an active key: it asked.
                inner.keys.active(now_ms, window_ms);
            }
            return (global_denial(global), quota);
        }
        let strategy = key_strategy(cfg, quota, tier);
        // The room reported is any tier's: a client pacing by it is never refused for the
        // reserve kept for its higher tiers.
        let lowest_tier =
            (tier != Tier::NonEssential).then(|| key_strategy(cfg, quota, Tier::NonEssential));
        let mut rd = if consume {
            let gate = || {
                if inner.global.try_take(&rate, tier, now_us) {
                    Ok(())
                } else {
                    inner.capacity_rejected.fetch_add(1, Ordering::Relaxed);
                    Err(global_denial(inner.global.peek(&rate, tier, now_us)))
                }
            };
            inner.keys.check_shared(
                digest,
                &strategy,
                now_ms,
                Shared {
                    window_ms,
                    own_quota: quota < limit,
                    lowest_tier,
                    gate,
                },
            )
        } else {
            inner
                .keys
                .peek_shared(digest, &strategy, lowest_tier.as_ref(), now_ms)
        };
        if rd.allowed {
            // Like the key's own room, the service-wide room reported is any tier's.
            let left = inner
                .global
                .peek(&rate, Tier::NonEssential, now_us)
                .remaining;
            rd.remaining = rd.remaining.min(left);
        }
        rd.limit = u64::from(quota);
        (rd, quota)
    }

    /// Tells the controller what admission has seen, when its capacity estimate needs it.
    pub(super) fn hand_demand(&self, c: &mut Controller, now: Duration) {
        if c.wants_demand(now) {
            c.set_demand(self.demand());
        }
    }

    fn demand(&self) -> Demand {
        let inner = &*self.inner;
        Demand {
            admitted: inner.counters.allowed_total(),
            rejected: inner.capacity_rejected.load(Ordering::Relaxed),
            inflight: inner
                .concurrency
                .as_ref()
                .map(|l| (l.limit(), l.admitted_total(), l.rejected_total())),
        }
    }

    /// With the capacity estimate, nothing but `record_response` moves the limit: if no response
    /// has been recorded for several sample intervals while requests are admitted, the service
    /// may have stopped answering. One atomic load per admission; the controller is asked only
    /// when a record is overdue.
    fn check_starved(&self, now: Duration) {
        let inner = &*self.inner;
        let now_nanos = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let last = inner.recorded_at_nanos.load(Ordering::Relaxed);
        if last == 0 {
            return;
        }
        // The sample interval is mirrored in an atomic: no config load on this path.
        let interval = inner.sample_interval_nanos.load(Ordering::Relaxed);
        let due = interval.saturating_mul(u64::from(crate::control::STARVED_AFTER_INTERVALS));
        if now_nanos.saturating_sub(last) < due {
            return;
        }
        // One caller looks; the next look is due an interval later.
        let next = last.saturating_add(interval);
        if inner
            .recorded_at_nanos
            .compare_exchange(last, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let overdue = Duration::from_nanos(now_nanos.saturating_sub(last));
        self.with_controller(now, |c, events| {
            c.set_demand(self.demand());
            c.starved(now, overdue, events)
        });
    }

    /// Moves what moves with time alone (ramp stages, an open breaker's timer) up to `now`,
    /// reading the clock only when something does.
    pub(super) fn advance_if_due(&self, now: impl FnOnce() -> Duration) {
        if self.inner.awaits_time.load(Ordering::Acquire) {
            let now = now();
            self.with_controller(now, |c, events| c.advance(now, events));
        }
    }

    /// A denial by a governance input: nothing is consumed; retry after a sample interval (at
    /// least a second), when the input may have changed.
    pub(super) fn blocked(&self, reason: RejectReason, tier: Tier) -> Decision {
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
        d.rtt = self.inner.smoothed_rtt();
        d.gradient = self.inner.gradient();
        d
    }

    pub(super) fn decision_from(
        &self,
        rd: RateDecision,
        limit: u32,
        tier: Tier,
        now_ms: u64,
    ) -> Decision {
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
            rtt: self.inner.smoothed_rtt(),
            gradient: self.inner.gradient(),
            axis: Some(Axis::Rate),
        }
    }

    /// Counts a request denied by an axis other than the rate axis (the concurrency axis), so
    /// stats and metrics see every rejection.
    pub(super) fn note_rejection(&self, tier: Tier, reason: RejectReason) {
        let inner = &*self.inner;
        inner.counters.decision(tier, false, Some(reason));
        let now = inner.clock.now();
        inner.shed_at_nanos.store(
            u64::try_from(now.as_nanos()).unwrap_or(u64::MAX - 1),
            Ordering::Relaxed,
        );
        inner.overload_warning.rejected(now, || {
            let limit = inner.concurrency.as_ref().map_or(0, |l| l.tier_limit(tier));
            (inner.counters.rejected_total(), limit)
        });
    }

    /// The controller's regime, except that a throttle whose concurrency axis shed work within
    /// the last sample interval is `Throttling` rather than `Normal`.
    pub(super) fn regime_at(&self, controller: Regime, now: Duration) -> Regime {
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

    /// Runs `f` on the controller (after folding in the responses waiting in the stripes), then
    /// mirrors its state into the atomics the hot path reads and publishes the events it
    /// produced (after the lock is released). Every read of the controller goes through here.
    pub(super) fn with_controller<R>(
        &self,
        now: Duration,
        f: impl FnOnce(&mut Controller, &mut Vec<ThrottleEvent>) -> R,
    ) -> R {
        let inner = &*self.inner;
        let mut events = Vec::new();
        let result = {
            let mut c = inner.controller.lock();
            inner.deferred.fold_into(&mut c, &mut events);
            let result = f(&mut c, &mut events);
            inner.deferred.mirror(&c);
            let snap = c.snapshot(now);
            // Limits move only through transitions, and every transition emits an event: with
            // none (the common record), the mirrored limits are still current.
            if !events.is_empty() {
                inner.limit.store(c.conservative_limit(), Ordering::Release);
                for tier in Tier::ALL {
                    inner.tier_limits[tier_index(tier)]
                        .store(encode_tier_limit(c.tier_limit(tier)), Ordering::Release);
                }
            }
            inner.awaits_time.store(c.awaits_time(), Ordering::Release);
            inner.rtt_nanos.store(
                snap.smoothed_rtt.map_or(NO_RTT, |d| {
                    u64::try_from(d.as_nanos()).unwrap_or(NO_RTT - 1)
                }),
                Ordering::Relaxed,
            );
            inner
                .gradient_bits
                .store(snap.gradient.to_bits(), Ordering::Relaxed);
            result
        };
        inner.counters.events(&events);
        if let Some(fleet) = inner.fleet.as_deref() {
            // A move of the local controller is written to the fleet at once.
            let moved_here = events.iter().any(|e| {
                matches!(e, ThrottleEvent::LimitChanged(c) if c.reason != crate::ChangeReason::Fleet)
            });
            if moved_here {
                fleet.wake.notify_one();
            }
        }
        for event in events {
            crate::log::event(&event);
            inner.audit.record_event(&event);
            // No receiver is not an error: events are optional to observe.
            let _ = inner.events.send(event);
        }
        result
    }

    /// [`with_controller`](Self::with_controller) at the clock's time now, for a controller
    /// method that takes the time and the event buffer (every governance input and operator
    /// action has that shape).
    pub(super) fn transition<R>(
        &self,
        f: impl FnOnce(&mut Controller, Duration, &mut Vec<ThrottleEvent>) -> R,
    ) -> R {
        let now = self.inner.clock.now();
        self.with_controller(now, |c, events| f(c, now, events))
    }
}

/// The service-wide cell's parameters for `limit` per window: the configured GCRA burst (half
/// the limit for other strategies), lower tiers held to their share of it.
pub(super) fn global_rate(cfg: &HotConfig, limit: u32) -> GlobalRate {
    // The service sees the sum of every key's bursts: a tenth of a window at most, so a burst
    // the service admits at once queues for no longer than that.
    let fraction = match cfg.rate_strategy {
        RateStrategy::Gcra { burst_fraction } => burst_fraction,
        _ => DEFAULT_GCRA_BURST_FRACTION,
    }
    .min(SHARED_BURST_FRACTION);
    let burst = ceil_u64(f64::from(limit) * fraction);
    let window_us = u64::try_from(cfg.window.as_micros()).unwrap_or(u64::MAX);
    GlobalRate::new(limit, window_us, burst, cfg.shares)
}

/// A key's strategy for a request of `tier` when keys share one limit. Within a key, tiers hold
/// the same reserve as in the service-wide cell: with GCRA, standard and non-essential work may
/// fill only their share of the key's burst, so its critical work still finds room when the key
/// is at its quota; with a windowed strategy they may fill only their share of the quota.
fn key_strategy(cfg: &HotConfig, quota: u32, tier: Tier) -> AnyStrategy {
    let share = cfg.shares[tier_slot(tier)];
    match cfg.rate_strategy {
        RateStrategy::Gcra { burst_fraction } if tier != Tier::Critical => {
            let limit = u64::from(quota.max(1));
            let window_ms = as_millis_u64(cfg.window).max(1);
            let burst = floor_u64(limit as f64 * burst_fraction * share).clamp(1, limit);
            Gcra::new(limit, window_ms, burst)
                .map(AnyStrategy::from)
                .unwrap_or_else(|_| strategy_for(cfg, quota))
        }
        _ if tier != Tier::Critical => strategy_for(
            cfg,
            u32::try_from(floor_u64(f64::from(quota) * share))
                .unwrap_or(u32::MAX)
                .max(1),
        ),
        _ => strategy_for(cfg, quota),
    }
}

fn tier_slot(tier: Tier) -> usize {
    match tier {
        Tier::Critical => 0,
        Tier::Standard => 1,
        Tier::NonEssential => 2,
    }
}

/// The rate-axis strategy of `cfg` with the adaptive `limit` as its limit.
fn strategy_for(cfg: &HotConfig, limit: u32) -> AnyStrategy {
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
            let burst = ceil_u64(limit as f64 * burst_fraction).clamp(1, limit);
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
