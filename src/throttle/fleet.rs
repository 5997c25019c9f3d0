//! Fleet mode: the rate axis shared with every instance that uses the same store and name.
//!
//! - **Admission.** `Fleet::Strict` asks the store for every request (one atomic take of 1).
//!   `Fleet::Leased` takes a slice of the key's window budget (a lease) and spends it locally:
//!   a hit is a lock and a subtraction, no await. Credits die with the window that granted them
//!   (the [`LeaseSpender`](crate::strategy::LeaseSpender) is window-coupled and the expiry is
//!   the call's send time plus the time the store said was left), so the fleet never admits
//!   more than the limit per window. Misses on one key share one store call (a gate per key);
//!   a refill starts when the credits fall to half a lease, before they run out.
//! - **The shared limit** is synchronised by a task (`sync.rs`): cold start, compare-and-set
//!   after a local move, adoption of another instance's move, heartbeats (the fleet's size),
//!   the last safe limit, health checks.
//! - **Safe-open.** Every store call is bounded by the store timeout. Three failures in a row
//!   make the store `Degraded`: no call is made from the request path until a health check
//!   succeeds, and admission follows [`StoreFallback`] — by default each instance admits its
//!   share of each key's limit (limit ÷ the last known fleet size) on its own key table, with
//!   the last known-good limit held. A single failed call falls back the same way for that
//!   request.
//! - **The control plane** (`ops.rs`, `members.rs`): operator actions stored as one versioned
//!   document per throttle and applied by every instance; each instance's heartbeat carries
//!   a report for the fleet view.

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod leases;
mod members;
mod ops;
pub(super) mod sync;

pub use members::FleetMember;
pub use ops::FleetOps;

use leases::{KeyLease, LeaseTable, Local};

use super::AdaptiveThrottle;
use crate::clock::as_millis_u64;
use crate::concurrency::ConcurrencyPermit;
use crate::config::{KeyQuota, ThrottleConfig};
use crate::decision::{Axis, Decision, RejectReason, Tier};
use crate::events::ThrottleEvent;
use crate::store::{Fleet, Store, StoreError, StoreFallback, StoreHealth, Take};
use crate::strategy::RateDecision;

/// Consecutive failed store calls that make the store `Degraded`.
pub(crate) const FAILURE_THRESHOLD: u32 = 3;

/// A decision, or the store call it waits for.
pub(crate) enum FleetCheck {
    Ready(Decision),
    Wait(Pin<Box<dyn Future<Output = Decision> + Send>>),
}

/// The fleet settings a throttle was built with.
#[derive(Debug, Clone)]
pub(crate) struct FleetSettings {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) name: Arc<str>,
    pub(crate) instance: Arc<str>,
    pub(crate) mode: Fleet,
    pub(crate) fallback: StoreFallback,
    pub(crate) timeout: Duration,
    pub(crate) lease_fraction: f64,
    pub(crate) health_check_interval: Duration,
}

pub(crate) struct FleetState {
    pub(crate) settings: FleetSettings,
    hasher: foldhash::fast::FixedState,
    health: AtomicU8,
    failures: AtomicU32,
    /// Instances seen by the last heartbeat (at least 1).
    pub(crate) instances: AtomicU32,
    /// The shared limit as last read or written (0 before the cold start).
    pub(crate) shared_limit: AtomicU32,
    leases: LeaseTable,
    pub(crate) sync_started: AtomicBool,
    /// Wakes the sync task when the local controller moved the limit.
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) round_trips: AtomicU64,
    lease_hits: AtomicU64,
    lease_misses: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    fallback_decisions: AtomicU64,
    /// The fleet's operator state as this instance knows it.
    pub(crate) ops: parking_lot::Mutex<ops::OpsState>,
    /// One operator-state sync at a time (the task's, or `sync_fleet`'s).
    pub(crate) ops_gate: tokio::sync::Mutex<()>,
    /// The stored operator state may be newer than the one applied: read it at the next sync.
    pub(crate) ops_stale: AtomicBool,
}

/// Fleet mode's state, in a throttle's stats.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FleetStats {
    /// The limit's fleet-wide name.
    pub name: String,
    /// This instance's name in the fleet.
    pub instance: String,
    /// Strict or leased.
    pub mode: Fleet,
    /// Whether the store answers.
    pub health: StoreHealth,
    /// What admission does while it does not.
    pub fallback: StoreFallback,
    /// Live instances at the last heartbeat (this one included).
    pub instances: u32,
    /// The shared limit as last read or written (`None` before the cold start).
    pub shared_limit: Option<u32>,
    /// Store calls made (takes, limit updates, heartbeats, health checks).
    pub round_trips: u64,
    /// Requests served from local credits without a store call.
    pub lease_hits: u64,
    /// Requests that had to wait for a store call.
    pub lease_misses: u64,
    /// Store calls that failed or timed out.
    pub store_errors: u64,
    /// Decisions made by the fallback (store degraded or a call failed).
    pub fallback_decisions: u64,
    /// Keys with a lease on this instance.
    pub leased_keys: usize,
    /// The version of the fleet's operator state this instance applied last (0: none).
    pub ops_version: u64,
    /// True while an operator change made on this instance is not stored yet (the store is
    /// away, or the write is under way): it applies here only.
    pub ops_pending: bool,
}

impl FleetState {
    pub(crate) fn new(settings: FleetSettings, max_keys: usize) -> Self {
        Self {
            hasher: foldhash::fast::FixedState::with_seed(settings.store.seed()),
            settings,
            health: AtomicU8::new(0),
            failures: AtomicU32::new(0),
            instances: AtomicU32::new(1),
            shared_limit: AtomicU32::new(0),
            leases: LeaseTable::new(max_keys),
            sync_started: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            round_trips: AtomicU64::new(0),
            lease_hits: AtomicU64::new(0),
            lease_misses: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            fallback_decisions: AtomicU64::new(0),
            ops: parking_lot::Mutex::default(),
            ops_gate: tokio::sync::Mutex::new(()),
            ops_stale: AtomicBool::new(true),
        }
    }

    /// The key's digest, the same on every instance of the fleet.
    pub(crate) fn digest<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn health(&self) -> StoreHealth {
        match self.health.load(Ordering::Acquire) {
            0 => StoreHealth::Connected,
            _ => StoreHealth::Degraded,
        }
    }

    pub(crate) fn stats(&self) -> FleetStats {
        let s = &self.settings;
        let (ops_version, ops_pending) = {
            let ops = self.ops.lock();
            (ops.applied.version, ops.pending.is_some())
        };
        FleetStats {
            name: s.name.to_string(),
            instance: s.instance.to_string(),
            mode: s.mode,
            health: self.health(),
            fallback: s.fallback,
            instances: self.instances.load(Ordering::Relaxed).max(1),
            shared_limit: match self.shared_limit.load(Ordering::Relaxed) {
                0 => None,
                n => Some(n),
            },
            round_trips: self.round_trips.load(Ordering::Relaxed),
            lease_hits: self.lease_hits.load(Ordering::Relaxed),
            lease_misses: self.lease_misses.load(Ordering::Relaxed),
            store_errors: self.store_errors.load(Ordering::Relaxed),
            fallback_decisions: self.fallback_decisions.load(Ordering::Relaxed),
            leased_keys: self.leases.len(),
            ops_version,
            ops_pending,
        }
    }

    pub(crate) fn clear(&self) {
        self.leases.clear();
    }
}

impl AdaptiveThrottle {
    pub(super) fn fleet(&self) -> Option<&FleetState> {
        self.inner.fleet.as_deref()
    }

    /// Runs one store call under the timeout, counting it and its failure towards the store's
    /// health.
    pub(crate) async fn store_call<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let fleet = self.fleet().expect("store calls are made in fleet mode");
        fleet.round_trips.fetch_add(1, Ordering::Relaxed);
        let timeout = fleet.settings.timeout;
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(timeout)),
        };
        match &result {
            Ok(_) => {
                fleet.failures.store(0, Ordering::Relaxed);
            }
            Err(e) => {
                fleet.store_errors.fetch_add(1, Ordering::Relaxed);
                let failures = fleet.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= FAILURE_THRESHOLD {
                    self.set_store_health(StoreHealth::Degraded, Some(e.to_string()));
                }
            }
        }
        result
    }

    /// Moves the store's health, emitting the transition (event, audit entry, log).
    pub(crate) fn set_store_health(&self, health: StoreHealth, error: Option<String>) {
        let Some(fleet) = self.fleet() else { return };
        let code = u8::from(health == StoreHealth::Degraded);
        if fleet.health.swap(code, Ordering::AcqRel) == code {
            return;
        }
        if health == StoreHealth::Connected {
            fleet.failures.store(0, Ordering::Relaxed);
            // Operator changes may have been stored meanwhile: read them before writing.
            fleet.ops_stale.store(true, Ordering::Release);
            // Credits leased before the outage are still coupled to their windows; a cached
            // denial may be stale.
            fleet.clear();
        }
        self.transition(|_, at, events| {
            events.push(ThrottleEvent::StoreHealthChanged {
                at,
                health,
                error: error.clone(),
            })
        });
    }

    /// The rate axis in fleet mode for `digest` at `tier`: ready when local state decides,
    /// otherwise the store call to await.
    pub(crate) fn fleet_check(&self, digest: u64, tier: Tier, now: Duration) -> FleetCheck {
        let fleet = self.fleet().expect("fleet_check runs in fleet mode");
        self.start_fleet_sync();
        let limit = match self.rate_prelude(tier, true, now) {
            Ok(limit) => limit,
            Err(decision) => return FleetCheck::Ready(decision),
        };
        if fleet.health() == StoreHealth::Degraded {
            return FleetCheck::Ready(self.fleet_fallback(digest, tier, now, limit));
        }
        let cfg = self.inner.config.load();
        let now_ms = as_millis_u64(now);
        let lease = fleet.leases.get(digest, now_ms);
        if cfg.key_quota == KeyQuota::FairShare {
            // Every key that asks counts towards the fair share, admitted or not.
            let window_ms = as_millis_u64(cfg.window).max(1);
            if lease.first_in_window(now_ms / window_ms) {
                self.inner.keys.note_active(now_ms, window_ms);
            }
        }
        let quota = self.fleet_quota(&cfg, limit, now);
        if fleet.settings.mode == Fleet::Leased {
            match lease.spend(now_ms, u64::from(quota)) {
                Local::Allowed {
                    remaining,
                    reset_in_ms,
                    credits,
                } => {
                    fleet.lease_hits.fetch_add(1, Ordering::Relaxed);
                    if credits <= lease_size(&fleet.settings, quota) / 2
                        && !lease.refilling.swap(true, Ordering::AcqRel)
                    {
                        self.refill_ahead(&lease, digest, quota);
                    }
                    let spent = Spent {
                        limit,
                        quota,
                        remaining,
                        reset_in_ms,
                    };
                    return FleetCheck::Ready(self.admit_spent(&lease, spent, tier, now));
                }
                Local::Denied { retry_in_ms } => {
                    return FleetCheck::Ready(self.fleet_decision(
                        false,
                        quota,
                        0,
                        retry_in_ms,
                        tier,
                        now,
                    ))
                }
                Local::Miss => {}
            }
        } else if let Local::Denied { retry_in_ms } = lease.spend(now_ms, u64::from(quota)) {
            // Strict mode caches the store's denial until the window ends: a flooded key costs
            // no round trips.
            return FleetCheck::Ready(self.fleet_decision(false, quota, 0, retry_in_ms, tier, now));
        }
        if let Err(retry_ms) = self.global_share(limit, tier, now, false) {
            // This instance's share of the service-wide limit is spent: no store call.
            return FleetCheck::Ready(self.fleet_decision(false, quota, 0, retry_ms, tier, now));
        }
        fleet.lease_misses.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let attempts = lease.attempts();
        FleetCheck::Wait(Box::pin(async move {
            this.lease_miss(lease, attempts, digest, tier, quota, limit)
                .await
        }))
    }

    /// One key's limit per window in the fleet: the tier's limit, or the key's quota of it.
    fn fleet_quota(&self, cfg: &ThrottleConfig, limit: u32, now: Duration) -> u32 {
        match cfg.key_quota {
            KeyQuota::WholeLimit => limit,
            KeyQuota::Fixed(q) => q.min(limit),
            _ => {
                let window_ms = as_millis_u64(cfg.window).max(1);
                let active = self.inner.keys.active(as_millis_u64(now), window_ms);
                u32::try_from(u64::from(limit).div_ceil(active)).unwrap_or(limit)
            }
        }
        .max(1)
    }

    /// A miss: waits for the key's gate (another miss may already be asking), then asks the
    /// store itself if nothing arrived meanwhile.
    async fn lease_miss(
        self,
        lease: Arc<KeyLease>,
        attempts_seen: u64,
        digest: u64,
        tier: Tier,
        quota: u32,
        limit: u32,
    ) -> Decision {
        let fleet = self.fleet().expect("fleet mode");
        let _gate = lease.gate.lock().await;
        let now = self.now();
        let now_ms = as_millis_u64(now);
        let local = lease.spend(now_ms, u64::from(quota));
        if let Some(decided) = self.decide_local(&lease, local, limit, quota, tier, now) {
            return decided;
        }
        // The call this miss waited for failed: fall back now rather than queue another call
        // behind a store that does not answer.
        if lease.state.lock().last_failed && lease.attempts() != attempts_seen {
            return self.fleet_fallback(digest, tier, now, limit);
        }
        if fleet.health() == StoreHealth::Degraded {
            return self.fleet_fallback(digest, tier, now, limit);
        }
        let want = match fleet.settings.mode {
            Fleet::Strict => 1,
            _ => lease_size(&fleet.settings, quota),
        };
        match self.take(&lease, digest, quota, want).await {
            Ok(()) => {
                let now = self.now();
                let local = lease.spend(as_millis_u64(now), u64::from(quota));
                self.decide_local(&lease, local, limit, quota, tier, now)
                    // Granted credits already expired (a call slower than the window).
                    .unwrap_or_else(|| self.fleet_decision(false, quota, 0, 1, tier, now))
            }
            Err(()) => self.fleet_fallback(digest, tier, self.now(), limit),
        }
    }

    /// The decision the key's lease makes on its own (credits, or a cached denial), or `None`
    /// when only the store can decide.
    fn decide_local(
        &self,
        lease: &KeyLease,
        local: Local,
        limit: u32,
        quota: u32,
        tier: Tier,
        now: Duration,
    ) -> Option<Decision> {
        match local {
            Local::Allowed {
                remaining,
                reset_in_ms,
                ..
            } => {
                let spent = Spent {
                    limit,
                    quota,
                    remaining,
                    reset_in_ms,
                };
                Some(self.admit_spent(lease, spent, tier, now))
            }
            Local::Denied { retry_in_ms } => {
                Some(self.fleet_decision(false, quota, 0, retry_in_ms, tier, now))
            }
            Local::Miss => None,
        }
    }

    /// An admission the key's lease allows. With shared quotas, this instance's share of the
    /// service-wide limit (the limit ÷ the fleet's size) must admit it too; when it does not,
    /// the credit goes back to the lease, so a key the share refuses spends nothing.
    fn admit_spent(&self, lease: &KeyLease, spent: Spent, tier: Tier, now: Duration) -> Decision {
        if let Err(retry_ms) = self.global_share(spent.limit, tier, now, true) {
            lease.give_back();
            return self.fleet_decision(false, spent.quota, 0, retry_ms, tier, now);
        }
        self.fleet_decision(
            true,
            spent.quota,
            spent.remaining,
            spent.reset_in_ms,
            tier,
            now,
        )
    }

    /// This instance's share of the service-wide limit, when keys share one: `take` consumes
    /// a unit, otherwise it only looks. `Err` carries the retry in ms.
    fn global_share(&self, limit: u32, tier: Tier, now: Duration, take: bool) -> Result<(), u64> {
        let cfg = self.inner.hot.load();
        if !cfg.key_quota.is_shared() {
            return Ok(());
        }
        let fleet = self.fleet().expect("fleet mode");
        let instances = fleet.instances.load(Ordering::Relaxed).max(1);
        let rate = super::inner::global_rate(&cfg, limit.div_ceil(instances).max(1));
        let now_us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
        let global = &self.inner.global;
        let admitted = if take {
            global.try_take(&rate, tier, now_us)
        } else {
            global.peek(&rate, tier, now_us).allowed
        };
        if admitted {
            Ok(())
        } else {
            Err(global
                .peek(&rate, tier, now_us)
                .retry_after_us
                .div_ceil(1000))
        }
    }

    /// One take from the store for `lease`, applied to it. Runs with the key's gate held.
    async fn take(&self, lease: &KeyLease, digest: u64, quota: u32, want: u64) -> Result<(), ()> {
        let fleet = self.fleet().expect("fleet mode");
        let s = &fleet.settings;
        let window_ms = as_millis_u64(self.window()).max(1);
        let sent_ms = as_millis_u64(self.now());
        lease.attempts.fetch_add(1, Ordering::AcqRel);
        let take = Take::new(&s.name, digest, window_ms, u64::from(quota), want);
        match self.store_call(s.store.take(take)).await {
            Ok(g) => {
                lease
                    .state
                    .lock()
                    .apply(g.granted, g.used, g.reset_in_ms, sent_ms);
                Ok(())
            }
            Err(_) => {
                lease.state.lock().last_failed = true;
                Err(())
            }
        }
    }

    /// Starts a refill in the background unless a call for the key is already in flight.
    fn refill_ahead(&self, lease: &Arc<KeyLease>, digest: u64, quota: u32) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            lease.refilling.store(false, Ordering::Release);
            return;
        };
        let (this, lease) = (self.clone(), lease.clone());
        handle.spawn(async move {
            // A miss already asking brings credits too.
            if let Ok(_gate) = lease.gate.try_lock() {
                let fleet = this.fleet().expect("fleet mode");
                if fleet.health() != StoreHealth::Degraded {
                    let want = lease_size(&fleet.settings, quota);
                    let _ = this.take(&lease, digest, quota, want).await;
                }
            }
            lease.refilling.store(false, Ordering::Release);
        });
    }

    /// The decision while the store is away (or a call failed), by the configured fallback.
    fn fleet_fallback(&self, digest: u64, tier: Tier, now: Duration, limit: u32) -> Decision {
        let fleet = self.fleet().expect("fleet mode");
        fleet.fallback_decisions.fetch_add(1, Ordering::Relaxed);
        match fleet.settings.fallback {
            StoreFallback::FailOpen => {
                self.inner.counters.decision(tier, true, None);
                Decision::unlimited(tier)
            }
            StoreFallback::FailClosed => {
                let reason = RejectReason::StoreUnavailable;
                self.inner.counters.decision(tier, false, Some(reason));
                let mut d = self.blocked(reason, tier);
                d.axis = Some(Axis::Rate);
                d.retry_after = fleet.settings.health_check_interval;
                d.reset_after = d.retry_after;
                d
            }
            _ => {
                let instances = fleet.instances.load(Ordering::Relaxed).max(1);
                let share = limit.div_ceil(instances).max(1);
                self.check_local(digest, tier, true, now, share)
            }
        }
    }

    fn fleet_decision(
        &self,
        allowed: bool,
        limit: u32,
        remaining: u64,
        reset_in_ms: u64,
        tier: Tier,
        now: Duration,
    ) -> Decision {
        let now_ms = as_millis_u64(now);
        let reset_in_ms = reset_in_ms.max(1);
        self.count_rate(tier, allowed, limit, now);
        if !allowed {
            self.inner.capacity_rejected.fetch_add(1, Ordering::Relaxed);
        }
        let rd = RateDecision {
            allowed,
            limit: u64::from(limit),
            remaining: if allowed { remaining } else { 0 },
            reset_at: now_ms + reset_in_ms,
            retry_after_ms: if allowed { 0 } else { reset_in_ms },
        };
        self.decision_from(rd, limit, tier, now_ms)
    }
}

/// Units one lease asks for: a fraction of the key's limit, at least 1.
fn lease_size(settings: &FleetSettings, quota: u32) -> u64 {
    let size = (f64::from(quota) * settings.lease_fraction).ceil() as u64;
    size.clamp(1, u64::from(quota.max(1)))
}

/// Every configured axis for one request: ready, or waiting on the fleet's store.
pub(crate) enum Admission {
    Ready(Result<super::Admitted, Decision>),
    Wait(Pin<Box<dyn Future<Output = Result<super::Admitted, Decision>> + Send>>),
}

impl AdaptiveThrottle {
    /// [`acquire_with_cost`](Self::acquire_with_cost) for the HTTP layer: concurrency first
    /// (always local), then the rate axis — in fleet mode through the store when it must —
    /// then the cost axis (`cost`: the request's estimate, `None` when it has none).
    pub(crate) fn admit<K: Hash + ?Sized>(
        &self,
        key: &K,
        tier: Tier,
        now: Duration,
        cost: Option<u64>,
    ) -> Admission {
        let Some(fleet) = self.fleet() else {
            return Admission::Ready(self.acquire_cost_at(key, tier, now, cost));
        };
        let permit = match self.acquire_slot(tier, now) {
            Ok(permit) => permit,
            Err(denied) => return Admission::Ready(Err(denied)),
        };
        let ask = self.cost_ask(key, cost);
        if let Some(denied) = ask
            .as_ref()
            .and_then(|ask| self.cost_precheck(ask, tier, now, None))
        {
            // A spent budget costs no store round trip.
            drop(permit);
            return Admission::Ready(Err(denied));
        }
        let digest = fleet.digest(key);
        match (self.fleet_check(digest, tier, now), ask) {
            (FleetCheck::Ready(rate), None) => Admission::Ready(
                join_permit(permit, rate).and_then(|p| self.finish_cost(p, None, tier, now)),
            ),
            // A cost budget is the fleet's too: one debit in the store (TK-025).
            (FleetCheck::Ready(rate), Some(ask)) => match join_permit(permit, rate) {
                Err(denied) => Admission::Ready(Err(denied)),
                Ok(permit) => {
                    let this = self.clone();
                    Admission::Wait(Box::pin(async move {
                        this.fleet_cost(permit, ask, digest, tier).await
                    }))
                }
            },
            (FleetCheck::Wait(rate), ask) => {
                let this = self.clone();
                Admission::Wait(Box::pin(async move {
                    let permit = join_permit(permit, rate.await)?;
                    match ask {
                        None => this.finish_cost(permit, None, tier, this.now()),
                        Some(ask) => this.fleet_cost(permit, ask, digest, tier).await,
                    }
                }))
            }
        }
    }
}

/// The concurrency slot (if any) and the rate decision as one admission; a slot taken for a
/// request the rate axis denies is released without a sample.
pub(super) fn join_permit(
    permit: Option<ConcurrencyPermit>,
    rate: Decision,
) -> Result<ConcurrencyPermit, Decision> {
    match permit {
        None if rate.allowed => Ok(ConcurrencyPermit::unlimited(rate)),
        None => Err(rate),
        Some(mut permit) => {
            if rate.allowed {
                // Admitted: the per-window quota is what clients are told about (the
                // in-flight limit is not a quota per window).
                permit.decision = rate;
                Ok(permit)
            } else {
                permit.set_outcome(crate::Outcome::Ignore);
                Err(rate)
            }
        }
    }
}

/// What a lease served: the tier's limit, the key's quota, and the room and reset it reports.
struct Spent {
    limit: u32,
    quota: u32,
    remaining: u64,
    reset_in_ms: u64,
}
