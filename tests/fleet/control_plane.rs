//! The fleet control plane on a `MemoryStore` (paused time, deterministic): operator state set
//! on one instance reaches every instance, conflicting writes converge, the fleet view.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower_adaptive_throttle::audit::AuditSource;
use tower_adaptive_throttle::store::{
    FleetView, Grant, LimitBounds, LimitSource, MemberReport, MemoryStore, OpsRecord, OpsWrite,
    Store, StoreError, StoreFuture, Take,
};
use tower_adaptive_throttle::{
    AdaptiveThrottle, ErrorBudget, MonotonicClock, ThrottleConfig, ThrottleEvent,
};

fn node(store: impl Store, i: usize) -> AdaptiveThrottle {
    AdaptiveThrottle::builder(ThrottleConfig::default())
        .name("api")
        .instance_name(format!("node-{i}"))
        .store(store)
        .build()
}

/// Waits (paused time) until `done` holds, at most `bound`; returns the time it took.
async fn within(bound: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() > bound {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn kill(t: &AdaptiveThrottle) -> bool {
    t.governance().state().kill_switch
}

#[tokio::test(start_paused = true)]
async fn control_plane_kill_switch_reaches_every_instance_and_a_late_one_starts_frozen() {
    let store = MemoryStore::new();
    let nodes: Vec<_> = (0..3).map(|i| node(store.clone(), i)).collect();
    for n in &nodes {
        n.sync_fleet().await.unwrap();
    }
    nodes[0].as_actor("alice", |t| t.governance().set_kill_switch(true));
    assert!(kill(&nodes[0]), "applies at once where it was made");
    let took = within(Duration::from_secs(1), || nodes.iter().all(kill)).await;
    assert!(took.is_some(), "every instance frozen within 1 s");
    assert!(nodes
        .iter()
        .all(|n| n.regime() == tower_adaptive_throttle::Regime::Frozen));

    // The audit trails name the actor and the instance, on the writer and on every applier.
    let written = nodes[0].audit().recent(100);
    assert!(written.iter().any(|e| matches!(&e.event,
        ThrottleEvent::FleetOpsWritten { version: 1, actor, instance, action, .. }
            if actor == "alice" && instance == "node-0" && action == "kill_switch")));
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let trail = n.audit().recent(100);
        assert!(
            trail.iter().any(|e| matches!(&e.event,
            ThrottleEvent::FleetOpsApplied { version: 1, actor, instance, applied_by, .. }
                if actor == "alice" && instance == "node-0" && *applied_by == format!("node-{i}")))
        );
        assert!(trail
            .iter()
            .any(|e| matches!(e.event, ThrottleEvent::Frozen { .. })
                && e.source == AuditSource::Operator("alice".into())));
    }

    // Started afterwards: frozen before it serves.
    let late = node(store.clone(), 3);
    assert_eq!(late.sync_fleet().await.unwrap().version, 1);
    assert!(kill(&late));

    // Break glass on another instance releases all, the late one included.
    nodes[2].as_actor("bob", |t| t.governance().break_glass());
    let all = [&nodes[..], std::slice::from_ref(&late)].concat();
    let took = within(Duration::from_secs(1), || {
        all.iter()
            .all(|n| !kill(n) && n.governance().state().emergency_level == 0)
    })
    .await;
    assert!(
        took.is_some(),
        "break glass released every instance within 1 s"
    );
    assert!(all
        .iter()
        .all(|n| n.fleet_stats().unwrap().ops_version == 2));
}

#[tokio::test(start_paused = true)]
async fn control_plane_emergency_budget_shedding_enable_and_config_reach_the_fleet() {
    let store = MemoryStore::new();
    let (a, b) = (node(store.clone(), 0), node(store.clone(), 1));
    a.sync_fleet().await.unwrap();
    b.sync_fleet().await.unwrap();
    a.governance().set_emergency_level(2);
    a.governance().set_error_budget(ErrorBudget::Warning);
    b.governance().set_load_shedding(Some(40));
    a.disable();
    let cfg = ThrottleConfig::builder()
        .sla_warning(Duration::from_millis(321))
        .sla_critical(Duration::from_millis(900))
        .build()
        .unwrap();
    b.swap_config(cfg);
    let took = within(Duration::from_secs(1), || {
        [&a, &b].iter().all(|t| {
            let g = t.governance().state();
            g.emergency_level == 2
                && g.error_budget == ErrorBudget::Warning
                && g.load_shedding == Some(40)
                && t.is_disabled()
                && t.config().sla_warning() == Duration::from_millis(321)
        })
    })
    .await;
    assert!(took.is_some(), "every setting on both instances within 1 s");
    b.enable();
    assert!(within(Duration::from_secs(1), || !a.is_disabled())
        .await
        .is_some());
}

/// Two instances change the operator state before either has stored it. The version stored
/// first wins the setting both changed; the other's other changes are kept; both converge.
#[test]
fn control_plane_conflicting_writes_resolve_deterministically() {
    // Built outside a runtime: no sync task runs, so the interleaving is the test's.
    let store = MemoryStore::new();
    let (a, b) = (node(store.clone(), 0), node(store.clone(), 1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        a.sync_fleet().await.unwrap();
        b.sync_fleet().await.unwrap();
        a.as_actor("alice", |t| t.governance().set_emergency_level(2));
        b.as_actor("bob", |t| {
            t.governance().set_emergency_level(1);
            t.governance().set_kill_switch(true);
        });
        assert_eq!(a.sync_fleet().await.unwrap().version, 1);
        let ops = b.sync_fleet().await.unwrap();
        assert_eq!((ops.version, ops.pending), (2, false));
        assert_eq!(a.sync_fleet().await.unwrap().version, 2);
        for t in [&a, &b] {
            let g = t.governance().state();
            assert_eq!((g.emergency_level, g.kill_switch), (2, true));
        }
        let lost = b.audit().recent(100);
        assert!(lost.iter().any(|e| matches!(&e.event,
            ThrottleEvent::FleetOpsConflict { version: 1, settings, actor, instance, .. }
                if settings == "emergency" && actor == "alice" && instance == "node-0")));
    });
}

/// A store that can be taken away from one instance only.
#[derive(Debug, Clone)]
struct Flaky {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

impl Flaky {
    fn gate<'a, T: Send + 'a>(&self, f: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        if self.down.load(Ordering::Relaxed) {
            Box::pin(std::future::ready(Err(StoreError::Unavailable(
                "down".into(),
            ))))
        } else {
            f
        }
    }
}

impl Store for Flaky {
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a, Grant> {
        self.gate(self.inner.take(take))
    }
    fn load_limit<'a>(
        &'a self,
        name: &'a str,
        default: u32,
        bounds: LimitBounds,
    ) -> StoreFuture<'a, (u32, LimitSource)> {
        self.gate(self.inner.load_limit(name, default, bounds))
    }
    fn set_limit<'a>(
        &'a self,
        name: &'a str,
        limit: u32,
        bounds: LimitBounds,
        save_safe: bool,
    ) -> StoreFuture<'a, (Option<u32>, u32)> {
        self.gate(self.inner.set_limit(name, limit, bounds, save_safe))
    }
    fn compare_and_set_limit<'a>(
        &'a self,
        name: &'a str,
        expected: u32,
        limit: u32,
        bounds: LimitBounds,
    ) -> StoreFuture<'a, tower_adaptive_throttle::store::CompareAndSet> {
        self.gate(
            self.inner
                .compare_and_set_limit(name, expected, limit, bounds),
        )
    }
    fn heartbeat<'a>(
        &'a self,
        name: &'a str,
        instance: &'a str,
        ttl: Duration,
        report: &'a str,
    ) -> StoreFuture<'a, FleetView> {
        self.gate(self.inner.heartbeat(name, instance, ttl, report))
    }
    fn members<'a>(&'a self, name: &'a str, ttl: Duration) -> StoreFuture<'a, Vec<MemberReport>> {
        self.gate(self.inner.members(name, ttl))
    }
    fn load_ops<'a>(&'a self, name: &'a str) -> StoreFuture<'a, OpsRecord> {
        self.gate(self.inner.load_ops(name))
    }
    fn write_ops<'a>(
        &'a self,
        name: &'a str,
        expected: u64,
        document: &'a str,
    ) -> StoreFuture<'a, OpsWrite> {
        self.gate(self.inner.write_ops(name, expected, document))
    }
    fn watch_ops(&self, name: &str) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.watch_ops(name)
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.gate(self.inner.ping())
    }
    fn seed(&self) -> u64 {
        self.inner.seed()
    }
}

/// The store away from one instance: its operator actions apply locally and are reported as
/// not propagated, nothing panics; back, the fleet's state wins by version where both changed,
/// and what only it changed reaches the fleet.
#[tokio::test(start_paused = true)]
async fn control_plane_store_away_applies_locally_then_the_fleet_wins_by_version() {
    let store = MemoryStore::new();
    let down = Arc::new(AtomicBool::new(false));
    let a = node(
        Flaky {
            inner: store.clone(),
            down: down.clone(),
        },
        0,
    );
    let b = node(store.clone(), 1);
    a.sync_fleet().await.unwrap();
    b.sync_fleet().await.unwrap();
    down.store(true, Ordering::Relaxed);
    a.governance().set_kill_switch(true);
    a.governance().set_emergency_level(1);
    assert!(kill(&a), "applies locally while the store is away");
    assert!(a.sync_fleet().await.is_err());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = a.fleet_stats().unwrap();
    assert!(stats.ops_pending, "reported as not propagated");
    assert!(!kill(&b));
    b.governance().set_emergency_level(2);
    b.sync_fleet().await.unwrap();
    // Back: within a health-check interval (5 s) and a sync period.
    down.store(false, Ordering::Relaxed);
    let took = within(Duration::from_secs(7), || {
        [&a, &b].iter().all(|t| {
            let g = t.governance().state();
            g.kill_switch && g.emergency_level == 2 && !t.fleet_stats().unwrap().ops_pending
        })
    })
    .await;
    assert!(
        took.is_some(),
        "{:?} {:?}",
        a.governance().state(),
        a.fleet_stats()
    );
}

#[tokio::test(start_paused = true)]
async fn control_plane_fleet_view_lists_the_live_instances_and_drops_a_dead_one() {
    let store = MemoryStore::with_clock(MonotonicClock::new());
    let nodes: Vec<_> = (0..3).map(|i| node(store.clone(), i)).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let members = nodes[0].fleet_members().await.unwrap().unwrap();
    let names: Vec<_> = members.iter().map(|m| m.instance.as_str()).collect();
    assert_eq!(names, ["node-0", "node-1", "node-2"]);
    assert!(members[0].this_instance && !members[1].this_instance);
    assert_eq!(members[1].limit, Some(nodes[1].current_limit()));
    assert_eq!(members[1].regime.as_deref(), Some("normal"));
    assert_eq!(members[1].store_health.as_deref(), Some("connected"));
    assert!(members[1].last_seen_ms_ago <= 1000);
    let mut nodes = nodes;
    drop(nodes.pop());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let members = nodes[0].fleet_members().await.unwrap().unwrap();
    let names: Vec<_> = members.iter().map(|m| m.instance.as_str()).collect();
    assert_eq!(names, ["node-0", "node-1"]);
}
