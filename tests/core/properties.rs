//! Invariants that hold for any input.

use std::time::Duration;

use proptest::prelude::*;
use tower_adaptive_throttle::config::RateStrategy;
use tower_adaptive_throttle::{ThrottleConfig, Tier};

use crate::support::{manual, pinned, proptest_config};

fn preset(baldur: bool) -> tower_adaptive_throttle::ThrottleConfigBuilder {
    if baldur {
        ThrottleConfig::baldur_builder()
    } else {
        ThrottleConfig::builder()
    }
}

proptest! {
    #![proptest_config(proptest_config(128))]

    #[test]
    fn limit_always_within_bounds(
        baldur in any::<bool>(),
        min in 1u32..50,
        span in 0u32..500,
        ops in prop::collection::vec((0u64..3_000, 0u64..2_000), 1..400),
    ) {
        let max = min + span;
        let cfg = preset(baldur).min_limit(min).initial_limit(min + span / 2).max_limit(max).build().unwrap();
        let (t, clock) = manual(cfg);
        for (rtt, advance) in ops {
            t.record_response(Duration::from_millis(rtt));
            clock.advance(Duration::from_millis(advance));
            let limit = t.current_limit();
            prop_assert!((min..=max).contains(&limit), "limit {limit} outside [{min}, {max}]");
        }
    }

    #[test]
    fn retry_after_is_zero_exactly_when_allowed(
        strategy in 0usize..5,
        ops in prop::collection::vec((0u8..4, 0u64..400, any::<bool>()), 1..300),
    ) {
        let rate = [
            RateStrategy::SlidingWindow { buckets: 10 },
            RateStrategy::SlidingWindowLog,
            RateStrategy::FixedWindow,
            RateStrategy::Gcra { burst_fraction: 0.2 },
            RateStrategy::TokenBucket,
        ][strategy];
        let cfg = ThrottleConfig::builder()
            .min_limit(3).initial_limit(5).max_limit(8)
            .window(Duration::from_secs(1))
            .rate_strategy(rate)
            .build().unwrap();
        let (t, clock) = manual(cfg);
        for (key, advance, slow) in ops {
            let d = t.check(&key, Tier::Standard);
            prop_assert_eq!(d.retry_after.is_zero(), d.allowed, "{:?}", d);
            prop_assert_eq!(d.reason.is_none(), d.allowed);
            if !d.allowed {
                prop_assert_eq!(d.remaining, 0);
            }
            t.record_response(Duration::from_millis(if slow { 700 } else { 20 }));
            clock.advance(Duration::from_millis(advance));
        }
    }

    /// With the limit pinned, an exact log never admits more than the limit in any window.
    #[test]
    fn no_key_admitted_over_the_limit_per_window_exact(
        limit in 1u32..20,
        gaps in prop::collection::vec(0u64..150, 1..400),
    ) {
        let admitted = run_pinned(limit, RateStrategy::SlidingWindowLog, &gaps);
        for (i, t) in admitted.iter().enumerate() {
            let in_window = admitted[..=i].iter().filter(|s| **s + 1000 > *t).count();
            prop_assert!(in_window as u32 <= limit, "{in_window} admitted in the window ending at {t}");
        }
    }

    /// The sub-bucketed window errs by at most one bucket: over any span of `window − bucket`
    /// it never admits more than the limit.
    #[test]
    fn no_key_admitted_over_the_limit_per_window_sliding(
        limit in 1u32..20,
        gaps in prop::collection::vec(0u64..150, 1..400),
    ) {
        let admitted = run_pinned(limit, RateStrategy::SlidingWindow { buckets: 10 }, &gaps);
        for (i, t) in admitted.iter().enumerate() {
            let in_span = admitted[..=i].iter().filter(|s| **s + 900 > *t).count();
            prop_assert!(in_span as u32 <= limit, "{in_span} admitted in the 900 ms ending at {t}");
        }
    }
}

fn run_pinned(limit: u32, rate: RateStrategy, gaps: &[u64]) -> Vec<u64> {
    let cfg = pinned(limit)
        .window(Duration::from_secs(1))
        .rate_strategy(rate)
        .build()
        .unwrap();
    let (t, clock) = manual(cfg);
    let mut admitted = Vec::new();
    let mut now = 0;
    for gap in gaps {
        now += gap;
        clock.set(Duration::from_millis(now));
        if t.check("k", Tier::Standard).allowed {
            admitted.push(now);
        }
    }
    admitted
}
