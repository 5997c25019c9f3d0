//! cargo run --release --example fleet_bench --features redis,axum -- --redis redis://127.0.0.1:6379/
//!
//! What fleet mode costs per check, in one run: an in-memory throttle (no store), a leased fleet
//! throttle on a hot key (lease hits, with a miss per lease), a strict one (a round trip per
//! check), and a bare Redis `PING` on the same connection as the baseline for round trips. One
//! task, sequential checks (latency), then 4 tasks (throughput). Prints a Markdown table for
//! BENCHMARKS.md, and the Redis round trips per admitted request.

use std::time::{Duration, Instant};

use tower_adaptive_throttle::config::KeyQuota;
use tower_adaptive_throttle::store::{RedisStore, Store};
use tower_adaptive_throttle::{AdaptiveThrottle, Fleet, ThrottleConfig, Tier};

const CHECKS: usize = 50_000;

fn cfg() -> ThrottleConfig {
    // A limit no run reaches: every check is admitted, so the cost measured is the check's.
    ThrottleConfig::builder()
        .initial_limit(10_000_000)
        .min_limit(10_000_000)
        .max_limit(10_000_000)
        .window(Duration::from_secs(60))
        .key_quota(KeyQuota::WholeLimit)
        .build()
        .expect("valid config")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn measure(label: &str, t: Option<&AdaptiveThrottle>, store: &RedisStore, n: usize) {
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let s = Instant::now();
        match t {
            Some(t) => {
                let d = t.check_async("hot", Tier::Standard).await;
                assert!(d.allowed, "check {i} denied");
            }
            None => store.ping().await.expect("PING"),
        }
        lat.push(s.elapsed());
    }
    let total = start.elapsed();
    lat.sort();
    let per_sec = n as f64 / total.as_secs_f64();
    let trips = t
        .and_then(|t| t.fleet_stats())
        .map(|f| format!("{:.4}", f.round_trips as f64 / n as f64))
        .unwrap_or_else(|| if t.is_some() { "0".into() } else { "1".into() });
    println!(
        "| {label} | {per_sec:.0} | {:.2} µs | {:.2} µs | {:.2} µs | {trips} |",
        percentile(&lat, 0.5).as_secs_f64() * 1e6,
        percentile(&lat, 0.99).as_secs_f64() * 1e6,
        percentile(&lat, 0.999).as_secs_f64() * 1e6,
    );
}

async fn throughput(label: &str, t: AdaptiveThrottle, tasks: usize, n: usize) {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move {
                for _ in 0..n {
                    t.check_async("hot", Tier::Standard).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    let per_sec = (tasks * n) as f64 / start.elapsed().as_secs_f64();
    println!("| {label}, {tasks} tasks | {per_sec:.0} checks/s |");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut url = "redis://127.0.0.1:6379/".to_owned();
    while let Some(a) = args.next() {
        if a == "--redis" {
            url = args.next().ok_or("--redis needs a URL")?;
        }
    }
    let store = RedisStore::connect(&url).await?;
    let memory = AdaptiveThrottle::new(cfg());
    let fleet_with = |mode: Fleet, name: &str, lease_fraction: f64| {
        AdaptiveThrottle::builder(cfg())
            .name(name)
            .store(store.clone())
            .fleet(mode)
            .lease_fraction(lease_fraction)
            .store_timeout(Duration::from_secs(1))
            .build()
    };
    let fleet = |mode: Fleet, name: &str| fleet_with(mode, name, 0.1);
    let leased = fleet(Fleet::Leased, "bench-leased");
    let strict = fleet(Fleet::Strict, "bench-strict");
    // Warm up every path (connections, scripts loaded, code paged in).
    measure("warm-up", Some(&memory), &store, 2_000).await;
    measure("warm-up", Some(&leased), &store, 2_000).await;
    measure("warm-up", Some(&strict), &store, 2_000).await;
    measure("warm-up", None, &store, 2_000).await;
    let leased = fleet(Fleet::Leased, "bench-leased-2");
    let strict = fleet(Fleet::Strict, "bench-strict-2");
    println!();
    println!("| path (1 task, {CHECKS} checks) | checks/s | p50 | p99 | p99.9 | Redis round trips per check |");
    println!("|---|---:|---:|---:|---:|---:|");
    measure("in memory (no store)", Some(&memory), &store, CHECKS).await;
    measure(
        "leased, hot key (lease of 1 000 000)",
        Some(&leased),
        &store,
        CHECKS,
    )
    .await;
    let small = fleet_with(Fleet::Leased, "bench-leased-small", 0.000_01);
    measure("leased, lease of 100", Some(&small), &store, CHECKS).await;
    let tiny = fleet_with(Fleet::Leased, "bench-leased-tiny", 0.000_001);
    measure("leased, lease of 10", Some(&tiny), &store, CHECKS).await;
    measure("strict", Some(&strict), &store, CHECKS / 5).await;
    measure("bare `PING` (baseline)", None, &store, CHECKS / 5).await;
    println!();
    println!("| path | throughput |");
    println!("|---|---:|");
    throughput("in memory", memory.clone(), 4, CHECKS / 4).await;
    throughput(
        "leased",
        fleet(Fleet::Leased, "bench-leased-3"),
        4,
        CHECKS / 4,
    )
    .await;
    throughput(
        "strict",
        fleet(Fleet::Strict, "bench-strict-3"),
        4,
        CHECKS / 20,
    )
    .await;
    Ok(())
}
