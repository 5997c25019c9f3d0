//! A flood of distinct keys cannot grow memory without bound.

use std::time::Duration;

use tower_adaptive_throttle::config::KeyQuota;
use tower_adaptive_throttle::{ThrottleConfig, Tier};

use crate::support::manual;

#[test]
fn a_million_distinct_keys_stay_within_max_keys() {
    // Each key against the whole limit, so every one of them is admitted and stored.
    let cfg = ThrottleConfig::builder()
        .max_keys(100_000)
        .window(Duration::from_secs(60))
        .key_quota(KeyQuota::WholeLimit)
        .build()
        .unwrap();
    let (t, clock) = manual(cfg);
    let mut peak = 0;
    for i in 0..1_000_000u64 {
        assert!(t.check(&i, Tier::Standard).allowed);
        if i % 10_000 == 0 {
            peak = peak.max(t.stats().active_keys);
            clock.advance(Duration::from_millis(1));
        }
    }
    let s = t.stats();
    peak = peak.max(s.active_keys);
    assert!(peak <= 100_000, "peak {peak} keys");
    assert!(
        s.active_keys >= 80_000,
        "the table is used, not emptied: {}",
        s.active_keys
    );
    assert_eq!(s.evicted_keys as usize + s.active_keys, 1_000_000);
}

#[test]
fn a_million_distinct_keys_sharing_one_limit_stay_within_max_keys() {
    // Fair shares: most of the flood is denied by the service-wide limit, but every key that
    // asks is remembered (it counts as active), so the table is what must stay bounded.
    let cfg = ThrottleConfig::builder()
        .max_keys(50_000)
        .window(Duration::from_secs(1))
        .build()
        .unwrap();
    let (t, clock) = manual(cfg);
    let mut peak = 0;
    let mut admitted = 0u64;
    for i in 0..1_000_000u64 {
        admitted += u64::from(t.check(&i, Tier::Standard).allowed);
        if i % 10_000 == 0 {
            peak = peak.max(t.stats().active_keys);
            clock.advance(Duration::from_millis(10));
        }
    }
    peak = peak.max(t.stats().active_keys);
    assert!(peak <= 50_000, "peak {peak} keys");
    // 100 keys' worth of limit per second over 1 s of clock, plus the burst: the aggregate is
    // bounded by the service-wide limit, whatever the number of keys.
    let limit = u64::from(t.current_limit());
    assert!(
        admitted <= 2 * limit + limit / 2 + 1,
        "{admitted} admitted, limit {limit}"
    );
}

#[test]
fn the_largest_accepted_event_capacity_builds_a_working_throttle() {
    use tower_adaptive_throttle::config::MAX_EVENT_CAPACITY;
    let cfg = ThrottleConfig::builder()
        .event_capacity(MAX_EVENT_CAPACITY)
        .build()
        .unwrap();
    let (t, _clock) = manual(cfg);
    let mut events = t.subscribe();
    assert!(t.check("k", Tier::Standard).allowed);
    t.governance().set_kill_switch(true);
    assert!(events.try_recv().is_ok(), "events flow");
    assert!(ThrottleConfig::builder()
        .event_capacity(MAX_EVENT_CAPACITY + 1)
        .build()
        .is_err());
}
