use std::collections::BTreeMap;
use std::time::Duration;

use tower_adaptive_throttle::config::{KeyQuota, RateStrategy};
use tower_adaptive_throttle::store::{MemoryStore, StoreFallback, StoreHealth};
use tower_adaptive_throttle::{
    AdaptiveThrottle, Fleet, ManualClock, RejectReason, ThrottleConfig, ThrottleEvent, Tier,
};

pub(crate) fn pinned(limit: u32, window: Duration) -> ThrottleConfig {
    ThrottleConfig::builder()
        .initial_limit(limit)
        .min_limit(limit)
        .max_limit(limit)
        .window(window)
        .key_quota(KeyQuota::WholeLimit)
        // Whole windows, so the local fallback's share is countable without moving the clock.
        .rate_strategy(RateStrategy::FixedWindow)
        .build()
        .unwrap()
}

fn fleet(store: &MemoryStore, clock: &ManualClock, mode: Fleet, n: usize) -> Vec<AdaptiveThrottle> {
    (0..n)
        .map(|i| {
            AdaptiveThrottle::builder(pinned(20, Duration::from_secs(1)))
                .name("api")
                .instance_name(format!("node-{i}"))
                .clock(clock.clone())
                .store(store.clone())
                .fleet(mode)
                .build()
        })
        .collect()
}

/// Three instances hammer one key for 25 windows; every window admits at most the limit, and
/// (a limiter that admits nothing fails) at least 80 % of it.
#[tokio::test(start_paused = true)]
async fn leased_fleet_admits_at_most_the_limit_per_window_and_most_of_it() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let nodes = fleet(&store, &clock, Fleet::Leased, 3);
    let mut admitted: BTreeMap<u64, u32> = BTreeMap::new();
    for _step in 0..(25 * 100) {
        for node in &nodes {
            for _ in 0..2 {
                if node.check_async("k", Tier::Standard).await.allowed {
                    *admitted
                        .entry(clock.now().as_millis() as u64 / 1000)
                        .or_default() += 1;
                }
            }
        }
        // Let refills fetched ahead land.
        tokio::task::yield_now().await;
        clock.advance(Duration::from_millis(10));
    }
    assert_eq!(admitted.len(), 25, "{admitted:?}");
    for (window, n) in &admitted {
        assert!(*n <= 20, "window {window} admitted {n} > 20: {admitted:?}");
        assert!(*n >= 16, "window {window} admitted only {n}: {admitted:?}");
    }
    let stats = nodes[0].fleet_stats().unwrap();
    assert!(stats.lease_hits > 0 && stats.round_trips > 0, "{stats:?}");
}

/// Strict: one store take per request, exact across instances.
#[tokio::test(start_paused = true)]
async fn strict_fleet_is_exact_across_instances() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let nodes = fleet(&store, &clock, Fleet::Strict, 3);
    let mut allowed = 0;
    for i in 0..90 {
        if nodes[i % 3].check_async("k", Tier::Standard).await.allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 20);
    // The denial is cached until the window ends: no round trip per flooded request.
    let before = nodes[0].fleet_stats().unwrap().round_trips;
    for _ in 0..50 {
        assert!(!nodes[0].check_async("k", Tier::Standard).await.allowed);
    }
    assert_eq!(nodes[0].fleet_stats().unwrap().round_trips, before);
    clock.advance(Duration::from_secs(1));
    assert!(nodes[0].check_async("k", Tier::Standard).await.allowed);
}

/// A store outage: three failures degrade it (one event), each instance then admits its share
/// (limit ÷ fleet size) locally; a health check brings it back.
#[tokio::test(start_paused = true)]
async fn safe_open_admits_the_instance_share_then_recovers() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let nodes: Vec<_> = (0..2)
        .map(|i| {
            AdaptiveThrottle::builder(pinned(20, Duration::from_secs(1)))
                .name("api")
                .instance_name(format!("node-{i}"))
                .clock(clock.clone())
                .store(store.clone())
                .health_check_interval(Duration::from_millis(100))
                .build()
        })
        .collect();
    let node = &nodes[0];
    let mut events = node.subscribe();
    // Let both heartbeats land: the fleet has 2 instances.
    node.check_async("warm", Tier::Standard).await;
    nodes[1].check_async("warm", Tier::Standard).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(node.fleet_stats().unwrap().instances, 2);

    store.set_failing(true);
    clock.advance(Duration::from_secs(1));
    let mut allowed = 0;
    for _ in 0..40 {
        if node.check_async("k", Tier::Standard).await.allowed {
            allowed += 1;
        }
    }
    assert_eq!(node.fleet_stats().unwrap().health, StoreHealth::Degraded);
    assert_eq!(
        allowed, 10,
        "the instance's share of 20 between 2 instances"
    );
    let degraded = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| {
            matches!(
                e,
                ThrottleEvent::StoreHealthChanged {
                    health: StoreHealth::Degraded,
                    ..
                }
            )
        })
        .count();
    assert_eq!(degraded, 1);
    assert_eq!(
        node.current_limit(),
        20,
        "the last known-good limit is held"
    );

    store.set_failing(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(node.fleet_stats().unwrap().health, StoreHealth::Connected);
    let audit = node.audit().recent(100);
    assert!(
        audit.iter().any(|e| matches!(
            e.event,
            ThrottleEvent::StoreHealthChanged {
                health: StoreHealth::Connected,
                ..
            }
        )),
        "the recovery is audited"
    );
}

#[tokio::test(start_paused = true)]
async fn fail_closed_rejects_with_its_own_reason_and_fail_open_admits() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    store.set_failing(true);
    let closed = AdaptiveThrottle::builder(pinned(5, Duration::from_secs(1)))
        .clock(clock.clone())
        .store(store.clone())
        .store_fallback(StoreFallback::FailClosed)
        .build();
    let d = closed.check_async("k", Tier::Standard).await;
    assert!(!d.allowed);
    assert_eq!(d.reason, Some(RejectReason::StoreUnavailable));
    let open = AdaptiveThrottle::builder(pinned(5, Duration::from_secs(1)))
        .clock(clock.clone())
        .store(store.clone())
        .store_fallback(StoreFallback::FailOpen)
        .build();
    for _ in 0..20 {
        assert!(open.check_async("k", Tier::Standard).await.allowed);
    }
}

/// The shared limit: a move on one instance is adopted by the others within a sample interval.
#[tokio::test(start_paused = true)]
async fn a_limit_moved_on_one_instance_reaches_the_others() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let cfg = || {
        ThrottleConfig::baldur_builder()
            .sample_interval(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let a = AdaptiveThrottle::builder(cfg())
        .name("api")
        .clock(clock.clone())
        .store(store.clone())
        .build();
    let b = AdaptiveThrottle::builder(cfg())
        .name("api")
        .clock(clock.clone())
        .store(store.clone())
        .build();
    a.check_async("k", Tier::Standard).await;
    b.check_async("k", Tier::Standard).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((a.current_limit(), b.current_limit()), (100, 100));
    // SLA critical on `a`: 100 → 70, written at once and adopted by `b`.
    a.record_response(Duration::from_millis(900));
    assert_eq!(a.current_limit(), 70);
    tokio::time::sleep(Duration::from_millis(260)).await;
    assert_eq!(
        b.current_limit(),
        70,
        "adopted within half a sample interval"
    );
    assert_eq!(b.fleet_stats().unwrap().shared_limit, Some(70));
}

/// Keys sharing one limit (fair shares, the recommended default): each instance admits at most
/// its share of the service-wide limit, so the fleet's aggregate stays near the limit however
/// many keys arrive.
#[tokio::test(start_paused = true)]
async fn fair_share_fleet_holds_the_aggregate_near_the_limit() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let cfg = || {
        ThrottleConfig::builder()
            .initial_limit(20)
            .min_limit(20)
            .max_limit(20)
            .window(Duration::from_secs(1))
            .build()
            .unwrap()
    };
    let nodes: Vec<_> = (0..2)
        .map(|i| {
            AdaptiveThrottle::builder(cfg())
                .name("shared")
                .instance_name(format!("n{i}"))
                .clock(clock.clone())
                .store(store.clone())
                .build()
        })
        .collect();
    for node in &nodes {
        node.check_async("warm", Tier::Standard).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(nodes[0].fleet_stats().unwrap().instances, 2);
    let mut per_window: BTreeMap<u64, u32> = BTreeMap::new();
    for _ in 0..(10 * 50) {
        // Each instance sees its own five keys: their quotas alone would admit 2 × 20.
        for (i, node) in nodes.iter().enumerate() {
            for key in 5 * i..5 * i + 5 {
                if node.check_async(&key, Tier::Standard).await.allowed {
                    *per_window
                        .entry(clock.now().as_millis() as u64 / 1000)
                        .or_default() += 1;
                }
            }
        }
        tokio::task::yield_now().await;
        clock.advance(Duration::from_millis(20));
    }
    for (w, n) in per_window.iter().skip(1) {
        // 2 instances × (10 + a burst of 1).
        assert!(*n <= 22, "window {w}: {n}: {per_window:?}");
        assert!(*n >= 16, "window {w}: {n}: {per_window:?}");
    }
}

/// Fair shares hold within the fleet's budget too: with two keys asking, a greedy key gets
/// at most half the limit per window, and the quiet one gets through in every window. (Fleet
/// budgets are whole windows, not paced: the greedy key takes its half early in each window,
/// so the quiet one may wait within it.)
#[tokio::test(start_paused = true)]
async fn fair_share_fleet_divides_the_limit_among_the_keys_that_ask() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let cfg = ThrottleConfig::builder()
        .initial_limit(20)
        .min_limit(20)
        .max_limit(20)
        .window(Duration::from_secs(1))
        .build()
        .unwrap();
    let t = AdaptiveThrottle::builder(cfg)
        .name("greedy")
        .clock(clock.clone())
        .store(store)
        .build();
    let mut greedy: BTreeMap<u64, u32> = BTreeMap::new();
    let mut quiet: BTreeMap<u64, u32> = BTreeMap::new();
    for step in 0..(5 * 50) {
        for _ in 0..4 {
            if t.check_async("greedy", Tier::Standard).await.allowed {
                *greedy
                    .entry(clock.now().as_millis() as u64 / 1000)
                    .or_default() += 1;
            }
        }
        if step % 10 == 0 && t.check_async("quiet", Tier::Standard).await.allowed {
            *quiet
                .entry(clock.now().as_millis() as u64 / 1000)
                .or_default() += 1;
        }
        tokio::task::yield_now().await;
        clock.advance(Duration::from_millis(20));
    }
    for (w, n) in greedy.iter().skip(1) {
        assert!(
            *n <= 10,
            "window {w}: the greedy key took {n} of 20: {greedy:?}"
        );
    }
    assert_eq!(
        quiet.len(),
        5,
        "the quiet key got through in every window: {quiet:?}"
    );
}
