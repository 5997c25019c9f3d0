//! A flood of distinct keys cannot grow memory without bound.

use std::time::Duration;

use tower_adaptive_throttle::{ThrottleConfig, Tier};

use crate::support::manual;

#[test]
fn a_million_distinct_keys_stay_within_max_keys() {
    let cfg = ThrottleConfig::builder()
        .max_keys(100_000)
        .window(Duration::from_secs(60))
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
