//! Many threads, one throttle: counts are exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower_adaptive_throttle::{AdaptiveThrottle, Tier};

use crate::support::{manual, pinned};

/// A throttle whose limit is pinned at `limit` over a 60 s window, on a clock nobody moves.
fn pinned_for_a_minute(limit: u32) -> AdaptiveThrottle {
    let (t, _clock) = manual(
        pinned(limit)
            .window(Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    t
}

#[test]
fn threads_hammering_one_key_admit_exactly_the_limit() {
    let t = pinned_for_a_minute(100);
    let allowed = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (t, allowed) = (t.clone(), allowed.clone());
            s.spawn(move || {
                for _ in 0..1_000 {
                    if t.check("shared", Tier::Standard).allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                    t.record_response(Duration::from_millis(10));
                }
            });
        }
    });
    assert_eq!(allowed.load(Ordering::Relaxed), 100);
    let s = t.stats();
    assert_eq!(s.total_requests, 8_000);
    assert_eq!(s.allowed_requests, 100);
    assert_eq!(s.rejected_requests, 7_900);
    assert_eq!(s.samples.sample_count, 8_000, "every sample recorded");
}

#[test]
fn threads_on_distinct_keys_each_get_exactly_the_limit() {
    let t = pinned_for_a_minute(50);
    let per_thread: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let t = t.clone();
                s.spawn(move || {
                    let key = format!("tenant-{i}");
                    (0..500)
                        .filter(|_| t.check(key.as_str(), Tier::Standard).allowed)
                        .count() as u64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(per_thread, vec![50; 8]);
    assert_eq!(t.stats().active_keys, 8);
}
