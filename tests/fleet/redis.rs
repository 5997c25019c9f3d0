use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower_adaptive_throttle::store::{RedisStore, StoreHealth};
use tower_adaptive_throttle::{AdaptiveThrottle, Decision, Fleet, Tier};

use super::memory::pinned;
use super::redis_server::{RedisCluster, RedisServer};

/// The fleet window an admitted decision belongs to (its reset is the window's end).
fn window_of(d: &Decision, window_ms: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let end = now + d.reset_after.as_millis() as u64;
    ((end + window_ms / 2) / window_ms).saturating_sub(1)
}

async fn node(store: RedisStore, limit: u32, window_ms: u64, mode: Fleet) -> AdaptiveThrottle {
    AdaptiveThrottle::builder(pinned(limit, Duration::from_millis(window_ms)))
        .name("bound")
        .store(store)
        .fleet(mode)
        // Debug builds on a shared machine: no fallback may blur an exactness check.
        .store_timeout(Duration::from_secs(2))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_admits_exactly_the_limit_of_200_concurrent_checks() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let t = node(store, 50, 60_000, Fleet::Strict).await;
    let allowed = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (t, allowed) = (t.clone(), allowed.clone());
            tokio::spawn(async move {
                if t.check_async("hot", Tier::Standard).await.allowed {
                    allowed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 50);
    assert_eq!(t.fleet_stats().unwrap().fallback_decisions, 0);
}

/// Hammers one key from `nodes` (each with its own connection) for `windows` windows and
/// returns the admitted count per fleet window.
async fn hammer(nodes: Vec<AdaptiveThrottle>, window_ms: u64, windows: u64) -> BTreeMap<u64, u32> {
    let until = Instant::now() + Duration::from_millis(window_ms * windows);
    let tasks: Vec<_> = nodes
        .into_iter()
        .flat_map(|t| (0..2).map(move |_| t.clone()))
        .map(|t| {
            tokio::spawn(async move {
                let mut seen = BTreeMap::<u64, u32>::new();
                while Instant::now() < until {
                    let d = t.check_async("hot", Tier::Standard).await;
                    if d.allowed {
                        *seen.entry(window_of(&d, window_ms)).or_default() += 1;
                    } else {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                seen
            })
        })
        .collect();
    let mut total = BTreeMap::new();
    for task in tasks {
        for (w, n) in task.await.unwrap() {
            *total.entry(w).or_default() += n;
        }
    }
    total
}

pub(crate) fn assert_bound(per_window: &BTreeMap<u64, u32>, limit: u32) {
    assert!(per_window.len() >= 20, "{per_window:?}");
    for (w, n) in per_window {
        assert!(*n <= limit, "window {w}: {n} > {limit}: {per_window:?}");
    }
    // Whole windows in the middle (the first and last are cut by the run).
    let inner: Vec<_> = per_window
        .values()
        .skip(1)
        .take(per_window.len() - 2)
        .collect();
    let full = inner.iter().filter(|n| ***n >= limit * 8 / 10).count();
    assert!(
        full * 10 >= inner.len() * 9,
        "most windows admit ≥ 80 %: {per_window:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_three_instances_never_exceed_the_limit_per_window() {
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        nodes.push(node(store, 40, 200, Fleet::Leased).await);
    }
    let per_window = hammer(nodes.clone(), 200, 22).await;
    assert_bound(&per_window, 40);
    let s = nodes[0].fleet_stats().unwrap();
    assert!(
        s.lease_hits > s.round_trips / 2,
        "leases spare round trips: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_bound_holds_on_a_three_master_cluster() {
    let Some(cluster) = RedisCluster::spawn() else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let store = RedisStore::connect_cluster(cluster.urls()).await.unwrap();
        nodes.push(node(store, 40, 200, Fleet::Leased).await);
    }
    let per_window = hammer(nodes, 200, 22).await;
    assert_bound(&per_window, 40);
}

/// Redis killed under load: no call waits longer than the timeout plus 20 ms, nothing fails,
/// the limit holds; restarted, the fleet is back within 10 s. Frozen (SIGSTOP): timeouts,
/// never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_restarted_and_frozen_never_stalls_a_request() {
    let Some(mut redis) = RedisServer::spawn() else {
        return;
    };
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let timeout = Duration::from_millis(50);
    let t = AdaptiveThrottle::builder(pinned(1_000, Duration::from_secs(1)))
        .name("faults")
        .store(store)
        .store_timeout(timeout)
        .health_check_interval(Duration::from_millis(200))
        .build();
    let probe = |t: AdaptiveThrottle, for_ms: u64| async move {
        let until = Instant::now() + Duration::from_millis(for_ms);
        let mut slowest = Duration::ZERO;
        let mut i = 0u64;
        while Instant::now() < until {
            let start = Instant::now();
            let d = t.check_async(&(i % 50), Tier::Standard).await;
            slowest = slowest.max(start.elapsed());
            assert!(d.allowed || d.retry_after > Duration::ZERO);
            i += 1;
            tokio::task::yield_now().await;
        }
        slowest
    };
    probe(t.clone(), 300).await;
    assert_eq!(t.fleet_stats().unwrap().health, StoreHealth::Connected);

    redis.kill();
    let slowest = probe(t.clone(), 800).await;
    assert!(
        slowest <= timeout + Duration::from_millis(20),
        "waited {slowest:?}"
    );
    assert_eq!(t.fleet_stats().unwrap().health, StoreHealth::Degraded);
    assert_eq!(
        t.current_limit(),
        1_000,
        "the last known-good limit is held"
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.fleet_stats().unwrap().health != StoreHealth::Connected {
        assert!(Instant::now() < deadline, "no recovery within 10 s");
        probe(t.clone(), 50).await;
    }
    let before = t.fleet_stats().unwrap().lease_misses;
    probe(t.clone(), 300).await;
    assert!(
        t.fleet_stats().unwrap().lease_misses > before,
        "leasing again"
    );

    redis.signal("-STOP");
    let slowest = probe(t.clone(), 800).await;
    redis.signal("-CONT");
    assert!(
        slowest <= timeout + Duration::from_millis(20),
        "frozen: waited {slowest:?}"
    );
}

/// The limit scripts on a real Redis (Baldur's limit manager): cold start current → safe →
/// default, clamp-and-set with the last safe limit, compare-and-set; and a script flushed from
/// the server's cache (`NOSCRIPT`) is loaded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_scripts_cold_start_clamp_and_compare_and_set() {
    use tower_adaptive_throttle::store::{CompareAndSet, LimitBounds, LimitSource, Store, Take};
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let b = LimitBounds { min: 10, max: 500 };
    assert_eq!(
        store.load_limit("svc", 100, b).await.unwrap(),
        (100, LimitSource::Default)
    );
    assert_eq!(
        store.load_limit("svc", 7, b).await.unwrap(),
        (100, LimitSource::Current)
    );
    assert_eq!(
        store.set_limit("svc", 900, b, true).await.unwrap(),
        (Some(100), 500)
    );
    assert_eq!(
        store
            .compare_and_set_limit("svc", 100, 50, b)
            .await
            .unwrap(),
        CompareAndSet::Mismatch(500)
    );
    assert_eq!(
        store.compare_and_set_limit("svc", 500, 5, b).await.unwrap(),
        CompareAndSet::Set(10)
    );
    // Current lost (say, evicted): the last safe limit comes back.
    let status = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "DEL",
            "throttle:l:{svc}:limit",
        ])
        .output();
    assert!(status.is_ok_and(|o| o.status.success()));
    assert_eq!(
        store.load_limit("svc", 100, b).await.unwrap(),
        (500, LimitSource::Safe)
    );
    // Scripts flushed from the server: run by SHA, reloaded on NOSCRIPT.
    let flushed = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "SCRIPT", "FLUSH"])
        .output();
    assert!(flushed.is_ok_and(|o| o.status.success()));
    let g = store.take(Take::new("svc", 1, 60_000, 3, 2)).await.unwrap();
    assert_eq!((g.granted, g.used), (2, 2));
    let g = store.take(Take::new("svc", 1, 60_000, 3, 2)).await.unwrap();
    assert_eq!((g.granted, g.used), (1, 3));
    assert!(g.reset_in_ms >= 1 && g.reset_in_ms <= 60_000);
}

/// Two coordinators on two connections (two processes' worth) share one cooldown through a
/// real Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_cooldowns_are_shared_through_redis() {
    use tower_adaptive_throttle::outbound::{CoordinatorConfig, RateLimitCoordinator};
    use tower_adaptive_throttle::store::Store;
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let a_store = RedisStore::connect(&redis.url()).await.unwrap();
    let b_store = RedisStore::connect(&redis.url()).await.unwrap();
    // The script round trip on its own: extend, read back, only extends, clear.
    a_store
        .extend_cooldown("clients", "api.test", Duration::from_secs(5), 2)
        .await
        .unwrap();
    a_store
        .extend_cooldown("clients", "api.test", Duration::from_secs(1), 1)
        .await
        .unwrap();
    let read = b_store.cooldowns("clients").await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!((read[0].key.as_str(), read[0].consecutive), ("api.test", 2));
    assert!(read[0].remaining > Duration::from_millis(4_500), "{read:?}");
    b_store.clear_cooldown("clients", "api.test").await.unwrap();
    assert!(a_store.cooldowns("clients").await.unwrap().is_empty());

    // Through the coordinators: `a` learns of a 429 (a response through its layer is what
    // does it in production; `extend_cooldown` is the same write), `b` adopts it.
    let cfg = || CoordinatorConfig::builder().jitter(0.0).build().unwrap();
    let b = RateLimitCoordinator::with_store(cfg(), b_store, "clients");
    a_store
        .extend_cooldown("clients", "api.example", Duration::from_secs(3), 1)
        .await
        .unwrap();
    let svc = tower::service_fn(|_req: http::Request<String>| async {
        Ok::<_, std::io::Error>(http::Response::new(String::new()))
    });
    let mut client = tower::Layer::layer(&b.layer(), svc);
    let deadline = Instant::now() + Duration::from_secs(5);
    // A call starts the reader; then the cooldown appears within a read interval.
    let req = http::Request::get("http://api.other/")
        .body(String::new())
        .unwrap();
    tower::ServiceExt::ready(&mut client).await.unwrap();
    let _ = tower::Service::call(&mut client, req).await;
    while b.cooldown_remaining("api.example").is_none() {
        assert!(
            Instant::now() < deadline,
            "the shared cooldown never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.cooldown_remaining("api.example").unwrap() <= Duration::from_secs(3));
}

/// The cost debit on a real Redis (TK-025): the crossing debit counts in full, later ones are
/// refused; an adjustment moves the window's use, never below 0, and only in its window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_debits_cross_in_full_and_adjust_in_their_window() {
    use tower_adaptive_throttle::store::{Store, Take};
    let Some(redis) = RedisServer::spawn() else {
        return;
    };
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let debit = |want| Take::new("llm:cost", 9, 60_000, 100, want);
    let g = store.debit(debit(60)).await.unwrap();
    assert_eq!((g.granted, g.used), (60, 60));
    store.adjust("llm:cost", 9, g.window, -40).await.unwrap();
    let g = store.debit(debit(90)).await.unwrap();
    assert_eq!((g.granted, g.used), (90, 110), "20 used: 90 cross in full");
    assert_eq!(store.debit(debit(1)).await.unwrap().granted, 0);
    store.adjust("llm:cost", 9, g.window, -500).await.unwrap();
    assert_eq!(
        store.debit(debit(5)).await.unwrap().used,
        5,
        "never below 0"
    );
    // An adjustment for another window changes nothing.
    store
        .adjust("llm:cost", 9, g.window + 1, 1_000)
        .await
        .unwrap();
    assert_eq!(store.debit(debit(5)).await.unwrap().used, 10);
}
