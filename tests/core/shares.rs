//! Keys share one service-wide limit: fair shares among the active keys, fixed quotas capped by
//! the limit, tiers that keep their reserve, an aggregate that never exceeds the limit plus its
//! burst, and limit changes named for what happened.

use std::time::Duration;

use tower_adaptive_throttle::config::KeyQuota;
use tower_adaptive_throttle::{ChangeReason, ThrottleConfig, ThrottleEvent, Tier};

use crate::support::manual;

/// The recommended configuration with its service-wide limit pinned at `limit` per second.
fn pinned_service(limit: u32) -> tower_adaptive_throttle::ThrottleConfigBuilder {
    ThrottleConfig::builder()
        .window(Duration::from_secs(1))
        .min_limit(limit)
        .initial_limit(limit)
        .max_limit(limit)
}

#[test]
fn any_number_of_keys_together_never_exceed_the_limit_plus_its_burst() {
    for keys in [1u64, 7, 50, 1000] {
        let (t, clock) = manual(pinned_service(100).build().unwrap());
        let mut admitted = 0u64;
        // Ten seconds, every key asking every 10 ms.
        for _ in 0..1000 {
            for k in 0..keys {
                admitted += u64::from(t.check(&k, Tier::Critical).allowed);
            }
            clock.advance(Duration::from_millis(10));
        }
        // 100 per second for 10 s, plus the service-wide burst (a tenth of the limit).
        assert!(
            admitted <= 1000 + 10 + 1,
            "{keys} keys: {admitted} admitted"
        );
        assert!(
            admitted >= 990,
            "{keys} keys: the limit is used, {admitted} admitted"
        );
    }
}

#[test]
fn a_lone_key_may_use_the_whole_limit_and_its_quota_shrinks_as_others_arrive() {
    let (t, clock) = manual(pinned_service(100).build().unwrap());
    let alone = t.check("a", Tier::Standard);
    assert!(alone.allowed);
    assert_eq!(alone.limit, 100, "alone, its quota is the whole limit");
    for k in ["b", "c", "d"] {
        assert!(t.check(k, Tier::Standard).allowed);
    }
    clock.advance(Duration::from_millis(10));
    let shared = t.check("a", Tier::Standard);
    assert_eq!(shared.limit, 25, "four active keys: a quarter each");
    assert_eq!(t.stats().keys_in_window, 4);
    assert_eq!(t.stats().key_quota, 25);
    // Two windows later only "a" still asks: the others no longer count.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(1));
        t.check("a", Tier::Standard);
    }
    assert_eq!(t.check("a", Tier::Standard).limit, 100);
}

#[test]
fn a_greedy_key_gets_its_share_while_others_are_active() {
    let (t, clock) = manual(pinned_service(100).build().unwrap());
    let (mut greedy, mut modest) = (0u64, 0u64);
    // Ten seconds: the greedy key asks every millisecond, four others every 20 ms (50/s each,
    // twice their share).
    for ms in 0..10_000u64 {
        greedy += u64::from(t.check("greedy", Tier::Standard).allowed);
        if ms % 20 == 0 {
            for k in ["b", "c", "d", "e"] {
                modest += u64::from(t.check(k, Tier::Standard).allowed);
            }
        }
        clock.advance(Duration::from_millis(1));
    }
    // Five active keys: 20 per second each, 200 over the run (plus a burst).
    assert!(greedy <= 200 + 20, "greedy {greedy}");
    assert!(modest >= 4 * 180, "the others get their shares: {modest}");
}

#[test]
fn a_fixed_quota_is_capped_by_the_service_wide_limit() {
    let (t, _clock) = manual(
        pinned_service(100)
            .key_quota(KeyQuota::Fixed(30))
            .build()
            .unwrap(),
    );
    assert_eq!(t.check("a", Tier::Standard).limit, 30);
    let (t, _clock) = manual(
        pinned_service(100)
            .key_quota(KeyQuota::Fixed(500))
            .build()
            .unwrap(),
    );
    assert_eq!(t.check("a", Tier::Standard).limit, 100);
}

#[test]
fn critical_work_finds_room_when_lower_tiers_have_filled_the_limit() {
    let (t, _clock) = manual(pinned_service(1000).build().unwrap());
    // Standard work fills what it may of the service-wide burst…
    let standard = (0..1000)
        .filter(|i| t.check(&(i % 10), Tier::Standard).allowed)
        .count();
    assert!(
        t.check(&0, Tier::Standard).allowed.then_some(()).is_none(),
        "standard work is turned away once it filled its share ({standard} admitted)"
    );
    // …and critical work is still admitted.
    assert!(t.check(&0, Tier::Critical).allowed);
}

#[test]
fn baldur_keeps_each_key_against_the_whole_limit() {
    let cfg = ThrottleConfig::baldur_builder()
        .min_limit(5)
        .initial_limit(5)
        .max_limit(5)
        .build()
        .unwrap();
    let (t, _clock) = manual(cfg);
    for key in ["a", "b", "c"] {
        let admitted = (0..10)
            .filter(|_| t.check(key, Tier::Standard).allowed)
            .count();
        assert_eq!(admitted, 5, "key {key}");
    }
}

#[test]
fn limit_changes_are_named_for_what_happened_and_an_increase_is_never_a_decrease() {
    let (t, clock) = manual(
        ThrottleConfig::builder()
            .window(Duration::from_secs(1))
            .min_limit(10)
            .initial_limit(100)
            .max_limit(10_000)
            .without_concurrency()
            .build()
            .unwrap(),
    );
    let mut events = t.subscribe();
    // A service at 40 ms that queues above 200 requests per second: offer 400/s for 20 s.
    let mut inflight: Vec<(Duration, Duration)> = Vec::new();
    let mut now = Duration::ZERO;
    for _ in 0..20_000 {
        now += Duration::from_millis(1);
        clock.set(now);
        // 400 per second offered.
        if now.as_micros() % 2500 < 1000 && t.check("k", Tier::Standard).allowed {
            // Eight served at once at 40 ms: anything beyond waits its turn.
            let queued = inflight.len() as u64;
            let latency = Duration::from_millis(40 + queued.saturating_sub(8) * 5);
            inflight.push((now + latency, latency));
        }
        inflight.retain(|(done, latency)| {
            if *done <= now {
                t.record_response(*latency);
                false
            } else {
                true
            }
        });
    }
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let ThrottleEvent::LimitChanged(change) = event {
            seen.push(change.reason);
            match change.reason {
                ChangeReason::LatencyRising
                | ChangeReason::SlaWarning
                | ChangeReason::SlaCritical => {
                    assert!(change.new < change.previous, "a cut: {change:?}")
                }
                ChangeReason::Headroom => assert!(change.new > change.previous, "{change:?}"),
                _ => {}
            }
            assert!(
                change.delivered_per_sec.is_some(),
                "with its figures: {change:?}"
            );
        }
    }
    assert!(seen.contains(&ChangeReason::Headroom), "{seen:?}");
    assert!(seen.contains(&ChangeReason::LatencyRising), "{seen:?}");
}

#[test]
fn a_service_that_stops_answering_has_its_limit_halved_until_it_answers_again() {
    let (t, clock) = manual(
        ThrottleConfig::builder()
            .window(Duration::from_secs(1))
            .min_limit(10)
            .initial_limit(1000)
            .max_limit(10_000)
            .without_concurrency()
            .build()
            .unwrap(),
    );
    // A healthy second: everything admitted completes in 20 ms.
    for _ in 0..100 {
        assert!(t.check("k", Tier::Standard).allowed);
        t.record_response(Duration::from_millis(20));
        clock.advance(Duration::from_millis(10));
    }
    let healthy = t.current_limit();
    // Then nothing completes: requests are admitted and never recorded.
    for _ in 0..400 {
        t.check("k", Tier::Standard);
        clock.advance(Duration::from_millis(10));
    }
    let starved = t.current_limit();
    assert!(
        starved * 8 <= healthy,
        "four seconds without an answer: {healthy} → {starved}"
    );
    assert_eq!(
        t.stats().last_change.map(|c| c.reason),
        Some(ChangeReason::LatencyRising)
    );
    // It answers again: the limit climbs back to what the load needs.
    for _ in 0..1000 {
        if t.check("k", Tier::Standard).allowed {
            t.record_response(Duration::from_millis(20));
        }
        clock.advance(Duration::from_millis(10));
    }
    assert!(t.current_limit() >= 90, "back to {}", t.current_limit());
}

#[test]
fn the_room_a_key_is_told_is_room_for_any_of_its_requests() {
    let (t, clock) = manual(pinned_service(100).build().unwrap());
    for k in ["b", "c", "d"] {
        assert!(t.check(k, Tier::Standard).allowed);
    }
    // "a" sends critical work as fast as it is allowed; whenever it is told room remains, a
    // request of its lowest tier is admitted too (the reserve kept for its critical work is not
    // reported as room).
    let mut told_room = 0;
    // One of each every 60 ms: more than its quota of 25 per second, so it reaches the edge.
    for _ in 0..200 {
        for k in ["b", "c", "d"] {
            t.check(k, Tier::Standard);
        }
        let critical = t.check("a", Tier::Critical);
        if critical.allowed && critical.remaining > 0 {
            told_room += 1;
            let lowest = t.check("a", Tier::NonEssential);
            assert!(
                lowest.allowed,
                "told {} remaining, then refused: {lowest:?}",
                critical.remaining
            );
        }
        clock.advance(Duration::from_millis(60));
    }
    assert!(told_room > 10, "room was reported {told_room} times");
}
