use std::time::Duration;

use super::*;
use crate::config::{AimdParams, Gradient2Params, MinRttProbe, TierShares};
use crate::{ManualClock, ThrottleConfig};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn limiter(cfg: ConcurrencyConfig) -> (ConcurrencyLimiter, ManualClock) {
    let clock = ManualClock::new();
    (ConcurrencyLimiter::with_clock(cfg, clock.clone()), clock)
}

/// An in-flight limit pinned at `limit`, shared equally by the tiers.
pub(crate) fn fixed(limit: u32) -> ConcurrencyConfig {
    ConcurrencyConfig::builder()
        .min_limit(limit)
        .initial_limit(limit)
        .max_limit(limit)
        .tier_shares(TierShares::equal())
        .build()
        .unwrap()
}

#[test]
fn rejects_at_the_limit_naming_the_concurrency_axis() {
    let (l, clock) = limiter(fixed(2));
    let a = l.try_acquire(Tier::Standard).unwrap();
    let _b = l.try_acquire(Tier::Standard).unwrap();
    clock.advance(ms(40));
    a.success();
    let _c = l.try_acquire(Tier::Standard).unwrap();
    let d = l.try_acquire(Tier::Standard).unwrap_err();
    assert!(!d.allowed);
    assert_eq!(d.axis, Some(Axis::Concurrency));
    assert_eq!(d.reason, Some(RejectReason::ConcurrencyLimitExceeded));
    assert_eq!((d.limit, d.remaining), (2, 0));
    assert_eq!(d.retry_after, ms(40), "retry after the latest RTT");
    assert_eq!(l.stats().rejected, [0, 1, 0]);
}

#[test]
fn cancelled_permit_releases_its_slot_and_is_not_a_sample() {
    let (l, clock) = limiter(fixed(3));
    let permits: Vec<_> = (0..3)
        .map(|_| l.try_acquire(Tier::Critical).unwrap())
        .collect();
    assert_eq!(l.inflight(), 3);
    clock.advance(ms(500));
    drop(permits); // no outcome: cancelled
    assert_eq!(l.inflight(), 0);
    let s = l.stats();
    assert_eq!((s.samples, s.ignored, s.last_rtt), (0, 3, None));
}

#[test]
fn errors_release_their_slot_and_count_as_drops() {
    let cfg = ConcurrencyConfig::aimd()
        .to_builder()
        .min_limit(1)
        .initial_limit(10)
        .build()
        .unwrap();
    let (l, clock) = limiter(cfg);
    let p = l.try_acquire(Tier::Standard).unwrap();
    clock.advance(ms(5));
    p.overload();
    assert_eq!(l.inflight(), 0);
    let s = l.stats();
    assert_eq!((s.samples, s.drops), (1, 1));
    assert_eq!(l.limit(), 9, "AIMD backs off on a drop: ⌊10 × 0.9⌋");
}

#[test]
fn set_outcome_then_drop_records_a_success() {
    let (l, clock) = limiter(ConcurrencyConfig::netflix_gradient2());
    let mut p = l.try_acquire(Tier::Standard).unwrap();
    clock.advance(ms(25));
    p.set_outcome(Outcome::Success);
    drop(p);
    let s = l.stats();
    assert_eq!((s.samples, s.drops, s.inflight), (1, 0, 0));
    assert_eq!(s.last_rtt, Some(ms(25)));
}

#[test]
fn saturation_sheds_non_essential_first_and_critical_last() {
    let cfg = ConcurrencyConfig::builder()
        .min_limit(10)
        .initial_limit(10)
        .max_limit(10)
        .tier_shares(TierShares::new(1.0, 0.8, 0.5))
        .build()
        .unwrap();
    let (l, _clock) = limiter(cfg);
    assert_eq!(
        Tier::ALL.map(|t| l.tier_limit(t)),
        [10, 8, 5],
        "critical, standard, non-essential"
    );
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(l.try_acquire(Tier::Standard).unwrap());
    }
    assert!(l.try_acquire(Tier::NonEssential).is_err());
    for _ in 0..3 {
        held.push(l.try_acquire(Tier::Standard).unwrap());
    }
    assert!(l.try_acquire(Tier::Standard).is_err());
    held.push(l.try_acquire(Tier::Critical).unwrap());
    held.push(l.try_acquire(Tier::Critical).unwrap());
    assert!(l.try_acquire(Tier::Critical).is_err());
    drop(held);
    assert_eq!(l.inflight(), 0);
}

#[test]
fn windowed_updates_once_per_window_with_the_mean_rtt() {
    let cfg = ConcurrencyConfig::builder()
        .algorithm(ConcurrencyAlgorithm::Gradient2(Gradient2Params::netflix()))
        .initial_limit(20)
        .aggregation(SampleAggregation::Windowed {
            min_window: ms(100),
            max_window: ms(100),
            min_samples: 3,
        })
        .build()
        .unwrap();
    let (l, clock) = limiter(cfg);
    for _ in 0..5 {
        let held: Vec<_> = (0..10)
            .map(|_| l.try_acquire(Tier::Critical).unwrap())
            .collect();
        clock.advance(ms(30));
        held.into_iter().for_each(ConcurrencyPermit::success);
    }
    // The window opens with the first sample (30 ms); the first sample at 150 ms closes it:
    // one update with mean 30 ms, 20 → 20.8.
    let s = l.stats();
    assert_eq!((s.samples, s.updates), (50, 1));
    assert!((s.estimate - 20.8).abs() < 1e-9, "{}", s.estimate);
}

#[test]
fn min_rtt_probe_pins_the_limit_then_rebaselines_and_restores() {
    let cfg = ConcurrencyConfig::builder()
        .initial_limit(20)
        .min_rtt_probe(MinRttProbe {
            request_count: 4,
            ..MinRttProbe::every(Duration::from_secs(10))
        })
        .jitter_seed(7)
        .build()
        .unwrap();
    let (l, clock) = limiter(cfg);
    let first = l.try_acquire(Tier::Critical).unwrap();
    assert!(l.stats().probing, "the first probe starts at once");
    assert_eq!(l.limit(), 3);
    let mut held = vec![first];
    held.push(l.try_acquire(Tier::Critical).unwrap());
    held.push(l.try_acquire(Tier::Critical).unwrap());
    assert!(l.try_acquire(Tier::Critical).is_err());
    clock.advance(ms(12));
    held.into_iter().for_each(ConcurrencyPermit::success);
    let p = l.try_acquire(Tier::Critical).unwrap();
    clock.advance(ms(12));
    p.success();
    let s = l.stats();
    assert!(!s.probing);
    assert_eq!(s.probes, 1);
    assert_eq!(s.baseline_rtt, Some(ms(12)));
    assert_eq!(l.limit(), 20, "restored");
    assert_eq!(s.updates, 0, "probe samples do not move the limit");
}

#[test]
fn probe_jitter_is_seeded() {
    let next_probe = |seed: u64| {
        let cfg = ConcurrencyConfig::builder()
            .min_rtt_probe(MinRttProbe {
                request_count: 1,
                jitter: 0.5,
                ..MinRttProbe::every(Duration::from_secs(10))
            })
            .jitter_seed(seed)
            .build()
            .unwrap();
        let (l, clock) = limiter(cfg);
        l.try_acquire(Tier::Critical).unwrap().success();
        // Find when the second probe starts.
        let mut t = 0;
        loop {
            clock.advance(ms(100));
            t += 100;
            let p = l.try_acquire(Tier::Critical).unwrap();
            let probing = l.stats().probing;
            p.ignore();
            if probing {
                return t;
            }
        }
    };
    let a = next_probe(1);
    assert_eq!(a, next_probe(1));
    assert!((10_000..=15_100).contains(&a), "{a}");
}

#[test]
fn build_rejects_bad_concurrency_values_naming_them() {
    use crate::ConfigError as E;
    let e = ConcurrencyConfig::builder()
        .min_limit(0)
        .build()
        .unwrap_err();
    assert!(
        matches!(e, E::ConcurrencyLimitsOutOfOrder { min: 0, .. }),
        "{e}"
    );
    let e = ConcurrencyConfig::builder()
        .initial_limit(2000)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("initial_limit=2000"), "{e}");
    let e = ConcurrencyConfig::builder()
        .tier_shares(TierShares::new(1.0, 0.5, 0.8))
        .build()
        .unwrap_err();
    assert!(matches!(e, E::InvalidTierShares { .. }), "{e}");
    let g = |f: fn(&mut Gradient2Params)| {
        let mut p = ConcurrencyConfig::recommended_params();
        f(&mut p);
        ConcurrencyConfig::builder()
            .algorithm(ConcurrencyAlgorithm::Gradient2(p))
            .build()
            .unwrap_err()
    };
    let e = g(|p| p.rtt_tolerance = 0.9);
    assert!(
        e.to_string().contains("rtt_tolerance") && e.to_string().contains("0.9"),
        "{e}"
    );
    assert!(matches!(
        g(|p| p.smoothing = 0.0),
        E::ConcurrencyValueOutOfRange {
            name: "smoothing",
            ..
        }
    ));
    assert!(matches!(
        g(|p| p.max_gradient = 2.5),
        E::ConcurrencyValueOutOfRange {
            name: "max_gradient",
            ..
        }
    ));
    let e = ConcurrencyConfig::aimd()
        .to_builder()
        .algorithm(ConcurrencyAlgorithm::Aimd(AimdParams {
            backoff_ratio: 0.3,
            ..AimdParams::netflix()
        }))
        .build()
        .unwrap_err();
    assert!(matches!(
        e,
        E::ConcurrencyValueOutOfRange {
            name: "backoff_ratio",
            ..
        }
    ));
    let e = ConcurrencyConfig::builder()
        .aggregation(SampleAggregation::Windowed {
            min_window: ms(500),
            max_window: ms(100),
            min_samples: 10,
        })
        .build()
        .unwrap_err();
    assert!(matches!(e, E::ConcurrencyWindowsOutOfOrder { .. }));
    let e = ConcurrencyConfig::builder()
        .min_rtt_probe(MinRttProbe {
            percentile: 1.5,
            ..MinRttProbe::every(Duration::from_secs(1))
        })
        .build()
        .unwrap_err();
    assert!(matches!(
        e,
        E::ConcurrencyValueOutOfRange {
            name: "probe percentile",
            ..
        }
    ));
    // The throttle's build() checks the nested section too.
    let bad = ConcurrencyConfig {
        min_limit: 0,
        ..ConcurrencyConfig::default()
    };
    assert!(ThrottleConfig::builder().concurrency(bad).build().is_err());
}

#[test]
fn many_threads_leave_nothing_in_flight() {
    let (l, _clock) = limiter(fixed(8));
    std::thread::scope(|s| {
        for i in 0..8 {
            let l = l.clone();
            s.spawn(move || {
                for j in 0..1000 {
                    if let Ok(mut p) = l.try_acquire(Tier::Critical) {
                        assert!(l.inflight() <= 8);
                        match (i + j) % 3 {
                            0 => p.set_outcome(Outcome::Success),
                            1 => p.set_outcome(Outcome::Overload),
                            _ => {}
                        }
                    }
                }
            });
        }
    });
    assert_eq!(l.inflight(), 0);
}

#[test]
fn a_probe_interval_near_the_largest_duration_with_full_jitter_does_not_panic() {
    // interval_ms near u64::MAX with jitter 1.0: the jitter in nanoseconds saturates at
    // u64::MAX, and `% (jitter + 1)` used to wrap to a division by zero on every release.
    let cfg = ConcurrencyConfig::builder()
        .min_rtt_probe(MinRttProbe {
            request_count: 1,
            jitter: 1.0,
            ..MinRttProbe::every(Duration::from_millis(u64::MAX - 1))
        })
        .build()
        .unwrap();
    let (l, clock) = limiter(cfg);
    for _ in 0..3 {
        l.try_acquire(Tier::Critical).unwrap().success();
        clock.advance(ms(10));
    }
    assert_eq!(
        l.stats().probes,
        1,
        "the first probe ran, the next is far away"
    );
}

#[test]
fn a_probe_count_beyond_the_bound_is_refused_and_a_large_one_reserves_nothing_up_front() {
    use crate::ConfigError as E;
    let too_many = ConcurrencyConfig::builder()
        .min_rtt_probe(MinRttProbe {
            request_count: u32::MAX,
            ..MinRttProbe::every(Duration::from_secs(10))
        })
        .build()
        .unwrap_err();
    assert!(
        matches!(too_many, E::TooLarge { name: "probe request_count", value, max }
            if value == u64::from(u32::MAX) && max == u64::from(crate::config::MAX_PROBE_REQUEST_COUNT)),
        "{too_many:?}"
    );
    assert!(too_many.to_string().contains("4294967295"), "{too_many}");
    let cfg = ConcurrencyConfig::builder()
        .min_rtt_probe(MinRttProbe {
            request_count: crate::config::MAX_PROBE_REQUEST_COUNT,
            ..MinRttProbe::every(Duration::from_secs(10))
        })
        .build()
        .unwrap();
    let (l, _clock) = limiter(cfg);
    l.try_acquire(Tier::Critical).unwrap().success();
    assert!(l.stats().probing);
}

/// Releases within a window's shortest span wait in stripes; anything that reads the state
/// (stats, a denial's retry hint) sees them, and every window closes with the same figures as
/// when each release is folded in at once (here: a limiter read after every release).
#[test]
fn releases_that_wait_in_stripes_are_seen_by_every_read_and_by_the_window() {
    let cfg = ConcurrencyConfig::builder()
        .initial_limit(20)
        .aggregation(SampleAggregation::Windowed {
            min_window: ms(1_000),
            max_window: ms(2_000),
            min_samples: 1,
        })
        .build()
        .unwrap();
    let run = |read_each: bool| {
        let (l, clock) = limiter(cfg.clone());
        let mut waited = 0;
        // Five windows, latency rising from one to the next.
        for window in 0..5u64 {
            for i in 0..60u64 {
                let p = l.try_acquire(Tier::Critical).unwrap();
                clock.advance(ms(4 + window * 30 + i % 7));
                if i % 10 == 9 {
                    p.ignore();
                } else {
                    p.success();
                }
                waited = waited.max(l.shared.deferred.waiting());
                if read_each {
                    let _ = l.stats();
                }
            }
            clock.advance(ms(2_000));
        }
        let last = l.try_acquire(Tier::Critical).unwrap();
        clock.advance(ms(1));
        last.success();
        (l.stats(), waited)
    };
    let (deferred, waited) = run(false);
    let (each, _) = run(true);
    assert!(waited > 0, "releases inside a window waited");
    assert_eq!(deferred, each);
    assert_eq!((deferred.samples, deferred.ignored), (271, 30));
    assert!(
        deferred.updates >= 4,
        "windows closed: {}",
        deferred.updates
    );
}
