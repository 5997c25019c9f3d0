//! Behaviour of `AdaptiveThrottle` through its public API, on a manual clock.

use std::time::Duration;

use tower_adaptive_throttle::config::{RateStrategy, SlaTrigger};
use tower_adaptive_throttle::{
    AdaptiveThrottle, ChangeReason, FreezeReason, ManualClock, Regime, RejectReason,
    ThrottleConfig, ThrottleEvent, Tier,
};

use crate::support::{baldur, manual, pinned};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A throttle whose limit is pinned at `limit` (min = initial = max) with an exact 1 s log.
fn pinned_log(limit: u32) -> (AdaptiveThrottle, ManualClock) {
    manual(
        pinned(limit)
            .window(Duration::from_secs(1))
            .rate_strategy(RateStrategy::SlidingWindowLog)
            .build()
            .unwrap(),
    )
}

#[test]
fn critical_response_cuts_100_to_70_then_warning_cuts_to_63() {
    let (t, clock) = baldur();
    t.record_response(ms(600));
    assert_eq!(t.current_limit(), 70);
    clock.advance(ms(500));
    t.record_response(ms(250));
    assert_eq!(t.current_limit(), 63);
}

#[test]
fn response_inside_the_interval_changes_nothing() {
    let (t, clock) = baldur();
    t.record_response(ms(600));
    clock.advance(ms(499));
    t.record_response(ms(900));
    assert_eq!(t.current_limit(), 70);
    clock.advance(ms(1));
    t.record_response(ms(900));
    assert_eq!(t.current_limit(), 49);
}

#[test]
fn falling_trend_adds_increase_step() {
    let (t, clock) = baldur();
    for _ in 0..3 {
        t.record_response(ms(150));
        clock.advance(ms(100));
    }
    clock.advance(ms(300));
    t.record_response(ms(50));
    assert_eq!(t.current_limit(), 101);
}

#[test]
fn limit_stays_within_bounds_under_sustained_pressure_and_relief() {
    let (t, clock) = baldur();
    for _ in 0..50 {
        t.record_response(ms(2000));
        clock.advance(ms(500));
    }
    assert_eq!(t.current_limit(), 10);
    assert_eq!(t.regime(), Regime::Throttling);
    let mut rtt = 190u64;
    for _ in 0..5000 {
        t.record_response(ms(rtt));
        rtt = if rtt <= 20 { 190 } else { rtt - 10 };
        clock.advance(ms(500));
        assert!((10..=500).contains(&t.current_limit()));
    }
}

#[test]
fn every_limit_change_is_published_with_its_trigger() {
    let (t, clock) = baldur();
    let mut rx = t.subscribe();
    t.record_response(ms(600));
    clock.advance(ms(500));
    t.record_response(ms(250));
    let mut changes = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let ThrottleEvent::LimitChanged(c) = e {
            changes.push(c);
        }
    }
    assert_eq!(changes.len(), 2);
    assert_eq!((changes[0].previous, changes[0].new), (100, 70));
    assert_eq!(changes[0].reason, ChangeReason::SlaCritical);
    assert_eq!(changes[0].rtt, Some(ms(600)));
    assert_eq!((changes[1].previous, changes[1].new), (70, 63));
    assert_eq!(changes[1].reason, ChangeReason::SlaWarning);
    assert_eq!(changes[1].at, ms(500));
    let last = t.stats().last_change.unwrap();
    assert_eq!(last, changes[1]);
}

#[test]
fn admission_counts_remaining_and_reports_retry_and_reset() {
    let (t, clock) = pinned_log(5);
    for expected_remaining in (0..5).rev() {
        let d = t.check("k", Tier::Standard);
        assert!(d.allowed);
        assert_eq!(d.remaining, expected_remaining);
        assert_eq!(d.retry_after, Duration::ZERO);
        assert_eq!(d.limit, 5);
        clock.advance(ms(100));
    }
    // t = 500 ms: the first admission (t = 0) leaves the window at 1000 ms.
    let d = t.check("k", Tier::Standard);
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert_eq!(d.reason, Some(RejectReason::RateLimitExceeded));
    assert_eq!(d.retry_after, ms(500));
    clock.advance(ms(500));
    assert!(t.check("k", Tier::Standard).allowed);
    // Other keys have their own window.
    assert_eq!(t.check("other", Tier::Standard).remaining, 4);
}

#[test]
fn denied_requests_consume_nothing_and_peek_consumes_nothing() {
    let (t, clock) = pinned_log(2);
    // peek reports what is left without taking any of it
    assert_eq!(t.peek("k").remaining, 2);
    assert_eq!(t.peek("k").remaining, 2);
    t.check("k", Tier::Standard);
    t.check("k", Tier::Standard);
    for _ in 0..100 {
        assert!(!t.check("k", Tier::Standard).allowed);
    }
    clock.advance(Duration::from_secs(1));
    assert!(
        t.check("k", Tier::Standard).allowed,
        "denials did not extend the window"
    );
    let s = t.stats();
    assert_eq!(
        (s.total_requests, s.allowed_requests, s.rejected_requests),
        (103, 3, 100)
    );
}

#[test]
fn disabled_throttle_admits_everything_and_still_learns() {
    let (t, _clock) = pinned_log(1);
    t.disable();
    assert!(t.is_disabled());
    for _ in 0..10 {
        assert!(t.check("k", Tier::Standard).allowed);
    }
    t.enable();
    assert!(t.check("k", Tier::Standard).allowed);
    assert!(!t.check("k", Tier::Standard).allowed);
}

#[test]
fn swap_config_returns_the_old_one_and_keeps_the_limit() {
    let (t, _clock) = baldur();
    t.record_response(ms(600));
    let new = ThrottleConfig::baldur_builder()
        .sla_warning(ms(300))
        .sla_critical(ms(900))
        .build()
        .unwrap();
    let old = t.swap_config(new.clone());
    assert_eq!(old, ThrottleConfig::baldur());
    assert_eq!(*t.config(), new);
    assert_eq!(t.current_limit(), 70, "derived state kept");
    assert_eq!(t.stats().samples.sample_count, 1);
}

#[test]
fn rollback_and_reset_all() {
    let (t, clock) = baldur();
    t.record_response(ms(600));
    t.check("a", Tier::Standard);
    t.governance().freeze(FreezeReason::Operator);
    assert_eq!(t.regime(), Regime::Frozen);
    assert_eq!(t.rollback_to_base_limit(), 100);
    assert_eq!(t.regime(), Regime::Normal);
    clock.advance(ms(500));
    t.record_response(ms(600));
    t.reset_all();
    let s = t.stats();
    assert_eq!(s.current_limit, 100);
    assert_eq!(
        (s.total_requests, s.active_keys, s.adjustments_down),
        (0, 0, 0)
    );
}

#[test]
fn recovery_ramp_runs_lazily_on_use() {
    let cfg = ThrottleConfig::baldur_builder()
        .initial_limit(150)
        .build()
        .unwrap();
    let (t, clock) = manual(cfg);
    t.governance().start_recovery(150);
    assert_eq!(t.current_limit(), 120);
    assert_eq!(t.regime(), Regime::Recovering);
    clock.advance(Duration::from_secs(30));
    assert_eq!(t.check("k", Tier::Standard).limit, 135, "advanced by check");
    clock.advance(Duration::from_secs(30));
    assert_eq!(t.current_limit(), 150);
    clock.advance(Duration::from_secs(30));
    assert_eq!(t.regime(), Regime::Normal);
    assert!(t.stats().ramp.is_none());
}

#[test]
fn recommended_default_does_not_cut_on_one_outlier() {
    let (t, clock) = manual(ThrottleConfig::default());
    assert!(matches!(
        t.config().sla_trigger(),
        SlaTrigger::IntervalPercentile(_)
    ));
    for _ in 0..50 {
        for _ in 0..19 {
            t.record_response(ms(40));
            clock.advance(ms(25));
        }
        t.record_response(ms(2_000));
        clock.advance(ms(25));
    }
    assert!(t.current_limit() >= 100, "limit {}", t.current_limit());
    assert_eq!(t.stats().sla_criticals, 0);
}

#[test]
fn overload_outcome_counts_as_at_least_an_sla_warning() {
    let (t, _clock) = baldur();
    t.record_overload(ms(5));
    assert_eq!(t.current_limit(), 90);
}

#[test]
fn a_swap_keeps_what_is_built_once_so_config_says_what_is_in_force() {
    let t = tower_adaptive_throttle::AdaptiveThrottle::new(ThrottleConfig::default());
    let running = t.config();
    let swapped = ThrottleConfig::builder()
        .max_keys(64)
        .event_capacity(8)
        .without_concurrency()
        .max_limit(5000)
        .build()
        .unwrap();
    t.swap_config(swapped);
    let now = t.config();
    assert_eq!(now.max_limit(), 5000, "what a swap can apply is applied");
    assert_eq!(now.max_keys(), running.max_keys());
    assert_eq!(now.event_capacity(), running.event_capacity());
    assert_eq!(now.concurrency(), running.concurrency());
}
