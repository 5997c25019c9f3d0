//! The fleet's sync task: one per throttle in fleet mode, started on the first fleet check.
//!
//! Every `period` (half a sample interval, between 50 ms and 1 s), or at once when the local
//! controller moved the limit:
//!
//! 0. the fleet's operator state (`ops.rs`): read when it may be newer than the one applied —
//!    first of all on the first round, then after an announcement, a heartbeat that saw a
//!    newer version, or a reconnection — and applied; then the operator changes made here
//!    are stored;
//! 1. cold start (once): the shared limit from the store — current, else the last safe one,
//!    else this instance's — adopted locally;
//! 2. a local move since the last sync is written with compare-and-set against the value this
//!    instance last saw; on a mismatch another instance moved first, and its value is adopted;
//! 3. a heartbeat, with this instance's report for the fleet view: the fleet's size, the
//!    shared limit (adopted if another instance moved it) and the operator-state version;
//! 4. at most once a minute, in the normal regime, the limit is saved as the last safe one.
//!
//! While the store is degraded the task only pings it, every health-check interval, and marks
//! it connected again on the first answer. The task holds a weak reference: it ends with the
//! throttle.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::super::inner::Inner;
use super::super::AdaptiveThrottle;
use crate::control::Regime;
use crate::events::ChangeReason;
use crate::store::{CompareAndSet, LimitBounds, StoreHealth};

/// How often the last safe limit is saved (Baldur: 60 s).
const SAFE_SAVE_INTERVAL: Duration = Duration::from_secs(60);

impl AdaptiveThrottle {
    /// Starts the sync task once, when a tokio runtime is at hand (a check on the request path
    /// always has one).
    pub(crate) fn start_fleet_sync(&self) {
        let Some(fleet) = self.fleet() else { return };
        if fleet.sync_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if fleet.sync_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        if let Some(announced) = fleet.settings.store.watch_ops(&fleet.settings.name) {
            handle.spawn(forward_announcements(weak.clone(), announced));
        }
        handle.spawn(run(weak));
    }

    fn bounds(&self) -> LimitBounds {
        let cfg = self.inner.config.load();
        LimitBounds {
            min: cfg.min_limit,
            max: cfg.max_limit,
        }
    }

    /// The controller's own limit (before governance reductions, which stay per instance).
    fn adaptive_limit(&self) -> u32 {
        self.inner.controller.lock().limit()
    }

    /// Sets the local limit to the fleet's.
    fn adopt(&self, limit: u32) {
        let fleet = self.fleet().expect("fleet mode");
        fleet.shared_limit.store(limit, Ordering::Relaxed);
        if self.adaptive_limit() != limit {
            self.transition(|c, now, events| {
                c.override_limit(limit, ChangeReason::Fleet, now, events)
            });
        }
    }

    /// One sync round; false when the store failed.
    async fn sync_once(&self, loaded: &mut bool, last_safe_save: &mut Option<Duration>) -> bool {
        let fleet = self.fleet().expect("fleet mode");
        let s = fleet.settings.clone();
        let bounds = self.bounds();
        if self.sync_ops().await.is_err() {
            return false;
        }
        if !*loaded {
            let default = self.adaptive_limit();
            match self
                .store_call(s.store.load_limit(&s.name, default, bounds))
                .await
            {
                Ok((limit, _source)) => {
                    self.adopt(limit);
                    *loaded = true;
                }
                Err(_) => return false,
            }
        }
        let seen = fleet.shared_limit.load(Ordering::Relaxed);
        let local = self.adaptive_limit();
        if local != seen {
            match self
                .store_call(s.store.compare_and_set_limit(&s.name, seen, local, bounds))
                .await
            {
                Ok(CompareAndSet::Set(v)) => {
                    fleet.shared_limit.store(v, Ordering::Relaxed);
                    if v != local {
                        self.adopt(v);
                    }
                }
                Ok(CompareAndSet::Mismatch(actual)) => self.adopt(actual),
                Err(_) => return false,
            }
        }
        let ttl = heartbeat_ttl(self.sync_period());
        let report = self.member_report();
        match self
            .store_call(s.store.heartbeat(&s.name, &s.instance, ttl, &report))
            .await
        {
            Ok(view) => {
                fleet.instances.store(view.instances, Ordering::Relaxed);
                let applied = fleet.ops.lock().applied.version;
                if view.ops_version != applied {
                    // An announcement was lost (or is on its way): read it next round, now.
                    fleet.ops_stale.store(true, Ordering::Release);
                    fleet.wake.notify_one();
                }
                if let Some(limit) = view.limit {
                    if limit != fleet.shared_limit.load(Ordering::Relaxed)
                        && self.adaptive_limit() == fleet.shared_limit.load(Ordering::Relaxed)
                    {
                        self.adopt(limit);
                    }
                }
            }
            Err(_) => return false,
        }
        let now = self.now();
        let due = last_safe_save.is_none_or(|at| now.saturating_sub(at) >= SAFE_SAVE_INTERVAL);
        if due && self.regime() == Regime::Normal {
            let limit = fleet.shared_limit.load(Ordering::Relaxed);
            if limit > 0
                && self
                    .store_call(s.store.set_limit(&s.name, limit, bounds, true))
                    .await
                    .is_ok()
            {
                *last_safe_save = Some(now);
            }
        }
        true
    }

    /// Half a sample interval, between 50 ms and 1 s: a move on one instance is in force on
    /// every other within one sample interval.
    pub(crate) fn sync_period(&self) -> Duration {
        (self.inner.config.load().sample_interval / 2)
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// An instance that missed three heartbeats (and at least 3 s) has left the fleet.
pub(crate) fn heartbeat_ttl(period: Duration) -> Duration {
    (period * 3).max(Duration::from_secs(3))
}

/// Wakes the sync task on every announcement of a new operator state; ends with the throttle
/// (checked every second while nothing is announced) or the store's channel.
async fn forward_announcements(
    weak: Weak<Inner>,
    mut announced: tokio::sync::watch::Receiver<u64>,
) {
    loop {
        match tokio::time::timeout(Duration::from_secs(1), announced.changed()).await {
            Ok(Ok(())) => {
                let Some(inner) = weak.upgrade() else { return };
                if let Some(fleet) = inner.fleet.as_deref() {
                    fleet.ops_stale.store(true, Ordering::Release);
                    fleet.wake.notify_one();
                }
            }
            Ok(Err(_)) => return,
            Err(_) if weak.strong_count() == 0 => return,
            Err(_) => {}
        }
    }
}

async fn run(weak: Weak<Inner>) {
    let mut loaded = false;
    let mut last_safe_save = None;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let throttle = AdaptiveThrottle { inner };
        let fleet = throttle.fleet().expect("fleet mode");
        let period = throttle.sync_period();
        let wait = if fleet.health() == StoreHealth::Degraded {
            let s = fleet.settings.clone();
            match throttle.store_call(s.store.ping()).await {
                Ok(()) => {
                    throttle.set_store_health(StoreHealth::Connected, None);
                    continue;
                }
                Err(_) => s.health_check_interval,
            }
        } else {
            throttle.sync_once(&mut loaded, &mut last_safe_save).await;
            period
        };
        // Wait for the period, or a local move; without holding the throttle.
        let notified = Arc::clone(&throttle.inner);
        drop(throttle);
        let fleet = notified.fleet.as_deref().expect("fleet mode");
        let _ = tokio::time::timeout(wait, fleet.wake.notified()).await;
    }
}
