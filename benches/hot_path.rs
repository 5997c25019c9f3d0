//! cargo bench --bench hot_path
#![allow(missing_docs)] // criterion's macros generate undocumented items
//!
//! Cost per request of `check` + `record_response` against governor's keyed `check_key`, and of
//! `acquire` + completion (what the HTTP layer runs: the concurrency axis, then the rate axis)
//! against the same and against a tokio `Semaphore` permit (what tower's `ConcurrencyLimit`
//! takes per request), on one key and on 10 000 keys, from one thread and from two. Every
//! limiter is configured so that every request is admitted (the common path). Results and
//! ratios: BENCHMARKS.md.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use governor::{Quota, RateLimiter};
use tower_adaptive_throttle::{AdaptiveThrottle, ConcurrencyConfig, ThrottleConfig, Tier};

const KEYS: u64 = 10_000;
const LIMIT: u32 = 1_000_000_000;

fn throttle() -> AdaptiveThrottle {
    let cfg = ThrottleConfig::builder()
        .min_limit(LIMIT)
        .initial_limit(LIMIT)
        .max_limit(LIMIT)
        // A billion per second: no run reaches it, so every request takes the admitted path
        // (with a million per 60 s the service-wide cell ran dry within milliseconds and the
        // rest measured denials).
        .window(Duration::from_secs(1))
        .build()
        .expect("valid config");
    AdaptiveThrottle::new(cfg)
}

/// The same throttle with the recommended concurrency axis (in-flight limit far above what two
/// threads hold), as the HTTP layer runs it.
fn throttle_with_concurrency() -> AdaptiveThrottle {
    let cfg = ThrottleConfig::builder()
        .min_limit(LIMIT)
        .initial_limit(LIMIT)
        .max_limit(LIMIT)
        // A billion per second: no run reaches it, so every request takes the admitted path
        // (with a million per 60 s the service-wide cell ran dry within milliseconds and the
        // rest measured denials).
        .window(Duration::from_secs(1))
        .concurrency(
            ConcurrencyConfig::builder()
                .initial_limit(10_000)
                .min_limit(10_000)
                .max_limit(10_000)
                .build()
                .expect("valid concurrency config"),
        )
        .build()
        .expect("valid config");
    AdaptiveThrottle::new(cfg)
}

type Governor = RateLimiter<
    u64,
    governor::state::keyed::DefaultKeyedStateStore<u64>,
    governor::clock::DefaultClock,
>;

fn governor() -> Governor {
    RateLimiter::keyed(Quota::per_second(NonZeroU32::MAX))
}

/// Runs `per_op` `iters` times split across `threads` threads; returns wall time.
fn run_threads(threads: u64, iters: u64, per_op: impl Fn(u64) + Sync) -> Duration {
    let per_thread = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let per_op = &per_op;
            s.spawn(move || {
                for i in 0..per_thread {
                    per_op(t * per_thread + i);
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let latency = Duration::from_millis(20);
    for threads in [1u64, 2] {
        for keys in [1u64, KEYS] {
            let mut group = c.benchmark_group(format!("hot_path/{threads}t/{keys}k"));
            group.throughput(Throughput::Elements(1));
            let t = Arc::new(throttle());
            group.bench_function("adaptive_check_and_record", |b| {
                b.iter_custom(|iters| {
                    run_threads(threads, iters, |i| {
                        let key = i % keys;
                        black_box(t.check(&key, Tier::Standard));
                        t.record_response(latency);
                    })
                })
            });
            group.bench_function("adaptive_check_only", |b| {
                b.iter_custom(|iters| {
                    run_threads(threads, iters, |i| {
                        black_box(t.check(&(i % keys), Tier::Standard));
                    })
                })
            });
            let a = Arc::new(throttle_with_concurrency());
            group.bench_function("adaptive_acquire_and_complete", |b| {
                b.iter_custom(|iters| {
                    run_threads(threads, iters, |i| {
                        let permit = a.acquire(&(i % keys), Tier::Standard);
                        black_box(permit.expect("admitted")).success();
                    })
                })
            });
            let sem = Arc::new(tokio::sync::Semaphore::new(10_000));
            group.bench_function("tokio_semaphore_permit", |b| {
                b.iter_custom(|iters| {
                    run_threads(threads, iters, |_| {
                        drop(black_box(sem.try_acquire().expect("a permit")));
                    })
                })
            });
            let g = Arc::new(governor());
            group.bench_function("governor_check_key", |b| {
                b.iter_custom(|iters| {
                    run_threads(threads, iters, |i| {
                        let _ = black_box(g.check_key(&(i % keys)));
                    })
                })
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
