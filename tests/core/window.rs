//! The Baldur preset's rate axis: an exact sliding log of admission timestamps (BAL-003,
//! BAL-011), pinned by tables on a manual clock.

use std::time::Duration;

use tower_adaptive_throttle::config::{RateStrategy, DEFAULT_WINDOW_BUCKETS};
use tower_adaptive_throttle::strategy::{SlidingWindowLog, SlidingWindowLogState, Strategy};
use tower_adaptive_throttle::{AdaptiveThrottle, ManualClock, RejectReason, ThrottleConfig, Tier};

use crate::support::{manual, pinned};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// (limit, window in ms): Baldur's own 100 per 60 s among them.
const ROWS: [(u32, u64); 6] = [
    (1, 1_000),
    (5, 1_000),
    (7, 250),
    (10, 60_000),
    (100, 60_000),
    (500, 2_000),
];

/// The Baldur preset with its limit pinned at `limit` and a window of `window_ms`; the rate
/// strategy is the preset's own.
fn baldur_window(limit: u32, window_ms: u64) -> (AdaptiveThrottle, ManualClock) {
    let cfg = pinned(limit).window(ms(window_ms)).build().unwrap();
    assert_eq!(cfg.rate_strategy(), RateStrategy::SlidingWindowLog);
    manual(cfg)
}

/// Admits `count` requests of an empty `key` now against `limit`, checking `remaining`
/// (limit − in-window count − 1) and `reset_after` (oldest admission in the window + window −
/// now) of each.
fn fill(
    t: &AdaptiveThrottle,
    key: &str,
    (limit, count): (u32, u32),
    reset_after: Duration,
    row: &str,
) {
    for i in 0..count {
        let d = t.check(key, Tier::Standard);
        assert!(d.allowed, "{row}: admission {i}");
        assert_eq!(d.limit, limit, "{row}");
        assert_eq!(d.remaining, limit - 1 - i, "{row}: admission {i}");
        assert_eq!(d.retry_after, Duration::ZERO, "{row}");
        assert_eq!(d.reset_after, reset_after, "{row}: admission {i}");
    }
}

/// The next request of `key` is denied: nothing remains, retry and reset both `wait`.
fn assert_denied(t: &AdaptiveThrottle, key: &str, wait: Duration, row: &str) {
    let d = t.check(key, Tier::Standard);
    assert!(!d.allowed, "{row}");
    assert_eq!(d.reason, Some(RejectReason::RateLimitExceeded), "{row}");
    assert_eq!(d.remaining, 0, "{row}");
    assert_eq!(d.retry_after, wait, "{row}");
    assert_eq!(d.reset_after, wait, "{row}");
}

/// Requests of `key` admitted now, out of `limit + 1` tried.
fn admitted_now(t: &AdaptiveThrottle, key: &str, limit: u32) -> u32 {
    (0..=limit)
        .filter(|_| t.check(key, Tier::Standard).allowed)
        .count() as u32
}

#[test]
fn baldur_window_is_whole_again_exactly_one_window_after_a_fill() {
    for (limit, window) in ROWS {
        for offset in [window - 1, window, window + 1] {
            let row = format!("limit {limit}, window {window} ms, at {offset} ms");
            let (t, clock) = baldur_window(limit, window);
            fill(&t, "k", (limit, limit), ms(window), &row);
            assert_denied(&t, "k", ms(window), &row);
            clock.advance(ms(offset));
            if offset < window {
                // 1 ms before the window has passed: still full, free in 1 ms.
                assert_denied(&t, "k", ms(window - offset), &row);
                assert_eq!(admitted_now(&t, "k", limit), 0, "{row}");
                continue;
            }
            let peek = t.peek("k");
            assert!(peek.allowed, "{row}");
            assert_eq!(peek.remaining, limit, "{row}: the whole quota, peeked");
            // Every admission of the fill has left: the quota is whole, and a fresh window
            // starts at the first new admission.
            fill(&t, "k", (limit, limit), ms(window), &row);
            assert_denied(&t, "k", ms(window), &row);
        }
    }
}

#[test]
fn baldur_window_slides_each_admission_back_one_window_after_it() {
    // Half the quota (rounded down) at 0, the rest at window / 2: each half comes back exactly
    // one window after it was used, not at a window boundary.
    for (limit, window) in ROWS {
        let row = format!("limit {limit}, window {window} ms");
        let (t, clock) = baldur_window(limit, window);
        let first = limit / 2;
        let half = window / 2;
        fill(&t, "k", (limit, first), ms(window), &row);
        clock.advance(ms(half));
        for i in first..limit {
            let d = t.check("k", Tier::Standard);
            assert!(d.allowed, "{row}: admission {i}");
            assert_eq!(d.remaining, limit - 1 - i, "{row}: admission {i}");
            // The oldest admission is the first half's (at 0) if there was one.
            let oldest = if first > 0 { 0 } else { half };
            assert_eq!(d.reset_after, ms(oldest + window - half), "{row}");
        }
        if first > 0 {
            assert_denied(&t, "k", ms(window - half), &row);
            clock.advance(ms(window - half - 1));
            assert_eq!(admitted_now(&t, "k", limit), 0, "{row}: 1 ms early");
            clock.advance(ms(1));
            // t = window: the first half is back, the second is still in the window until
            // window + half.
            for i in 0..first {
                let d = t.check("k", Tier::Standard);
                assert!(d.allowed, "{row}: returned admission {i}");
                assert_eq!(d.remaining, first - 1 - i, "{row}");
                assert_eq!(d.reset_after, ms(half), "{row}");
            }
            assert_denied(&t, "k", ms(half), &row);
        } else {
            clock.advance(ms(window - half));
        }
        // t = window + half: the second half is back.
        clock.advance(ms(half));
        assert_eq!(admitted_now(&t, "k", limit), limit - first, "{row}");
    }
}

#[test]
fn baldur_window_keys_are_independent() {
    let (t, clock) = baldur_window(3, 1_000);
    fill(&t, "a", (3, 3), ms(1_000), "a");
    clock.advance(ms(400));
    fill(&t, "b", (3, 3), ms(1_000), "b");
    clock.advance(ms(600));
    // a's admissions (at 0) have left; b's (at 400) stay until 1 400.
    assert_eq!(admitted_now(&t, "a", 3), 3);
    assert_denied(&t, "b", ms(400), "b");
}

#[test]
fn sub_bucketed_window_stays_available_and_estimates() {
    // The sub-bucketed window, chosen explicitly: it still weighs the oldest sub-bucket
    // 1 ms after a full window, and frees it once that sub-bucket has passed.
    let (limit, window) = (10u32, 1_000u64);
    let (t, clock) = manual(
        pinned(limit)
            .window(ms(window))
            .rate_strategy(RateStrategy::SlidingWindow {
                buckets: DEFAULT_WINDOW_BUCKETS,
            })
            .build()
            .unwrap(),
    );
    assert_eq!(admitted_now(&t, "k", limit), limit);
    clock.advance(ms(window + 1));
    assert_eq!(
        admitted_now(&t, "k", limit),
        0,
        "one window + 1 ms: estimate"
    );
    clock.advance(ms(window / u64::from(DEFAULT_WINDOW_BUCKETS) - 1));
    assert_eq!(admitted_now(&t, "k", limit), limit, "one sub-bucket later");
}

#[test]
fn baldur_log_memory_is_bounded_by_the_limit() {
    // The preset's bounds and window: a key holds at most one entry per distinct admission
    // millisecond, and never more than max_limit of them (what the preset's docs quote).
    let cfg = ThrottleConfig::baldur();
    let window_ms = cfg.window().as_millis() as u64;
    let log = SlidingWindowLog::new(u64::from(cfg.max_limit()), window_ms).unwrap();
    let mut state = SlidingWindowLogState::default();
    for now in 0..2 * u64::from(cfg.max_limit()) {
        log.check(&mut state, now, 1);
    }
    assert_eq!(state.len(), 500);
    // Admissions in the same millisecond share an entry.
    let mut state = SlidingWindowLogState::default();
    for _ in 0..cfg.max_limit() {
        log.check(&mut state, 7, 1);
    }
    assert_eq!(state.len(), 1);
}
