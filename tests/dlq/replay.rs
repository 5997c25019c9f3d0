//! Replay: pacing by the throttle's capacity, health checks before and during a run, retries,
//! and the triggers of automatic replay.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tower::service_fn;
use tower_adaptive_throttle::dlq::{DeadLetterQueue, DlqEvent, ReplayConfig, Replayer, StopReason};
use tower_adaptive_throttle::{AdaptiveThrottle, BreakerState, ThrottleConfig, ThrottleEvent};

use crate::fixtures::{batch_starts, capture_n, timed_app};

#[tokio::test(start_paused = true)]
async fn replay_intervals_follow_the_capacity_table() {
    // (setup of the throttle, min_recovery, expected current limit, gap between batches)
    type Setup = fn(&AdaptiveThrottle);
    let cases: [(Setup, f64, u32, u64); 4] = [
        (|_| {}, 0.5, 100, 100),                               // ratio 1.0  → ×1
        (|t| t.governance().on_upstream_429(1), 0.5, 80, 200), // ratio 0.8  → ×2
        (|t| t.governance().on_upstream_429(2), 0.5, 60, 400), // ratio 0.6  → ×4
        (|t| t.governance().set_load_shedding(Some(6)), 0.3, 45, 1000), // ratio 0.45 → ×10
    ];
    for (setup, min_recovery, limit, gap) in cases {
        let throttle = AdaptiveThrottle::new(limits_100_to_500());
        setup(&throttle);
        assert_eq!(throttle.current_limit(), limit);
        let dlq = DeadLetterQueue::default();
        capture_n(&dlq, 25).await;
        let log = Arc::new(Mutex::new(Vec::new()));
        let config = ReplayConfig::builder()
            .min_recovery(min_recovery)
            .build()
            .unwrap();
        let replayer =
            Replayer::new(dlq.clone(), throttle, timed_app(log.clone())).with_config(config);
        let report = replayer.replay_once().await;
        assert_eq!((report.replayed, report.batches), (25, 3), "limit {limit}");
        assert_eq!(report.stop, StopReason::Drained);
        let log = log.lock().unwrap();
        let gap = Duration::from_millis(gap);
        assert_eq!(
            batch_starts(&log, 10),
            [Duration::ZERO, gap, gap * 2],
            "limit {limit}"
        );
        // Within a batch no time passes (the app answers at once).
        assert!(log[..10].iter().all(|t| *t == log[0]));
        assert!(dlq.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn replay_does_not_start_while_unhealthy_and_announces_nothing() {
    let throttle = AdaptiveThrottle::new(limits_100_to_500());
    let dlq = DeadLetterQueue::default();
    capture_n(&dlq, 3).await;
    let mut events = dlq.subscribe();
    let log = Arc::new(Mutex::new(Vec::new()));
    let replayer = Replayer::new(dlq.clone(), throttle.clone(), timed_app(log.clone()));

    throttle.governance().on_breaker_state(BreakerState::Open);
    let report = replayer.replay_once().await;
    assert!(!report.started);
    assert_eq!(
        report.stop,
        StopReason::BreakerNotClosed(BreakerState::Open)
    );

    throttle
        .governance()
        .on_breaker_state(BreakerState::HalfOpen);
    assert_eq!(
        replayer.replay_once().await.stop,
        StopReason::BreakerNotClosed(BreakerState::HalfOpen)
    );

    throttle.governance().on_breaker_state(BreakerState::Closed);
    throttle.governance().set_emergency_level(1);
    assert_eq!(replayer.replay_once().await.stop, StopReason::Emergency(1));

    assert!(log.lock().unwrap().is_empty());
    assert_eq!(dlq.len(), 3);
    assert!(events.try_recv().is_err(), "no run, no events");
}

#[tokio::test(start_paused = true)]
async fn replay_stops_when_health_drops_mid_run_and_keeps_the_rest() {
    let throttle = AdaptiveThrottle::new(limits_100_to_500());
    let dlq = DeadLetterQueue::default();
    capture_n(&dlq, 25).await;
    let delivered = Arc::new(AtomicU64::new(0));
    let app = {
        let throttle = throttle.clone();
        let delivered = delivered.clone();
        service_fn(move |_request: Request<Body>| {
            let throttle = throttle.clone();
            let delivered = delivered.clone();
            async move {
                // The 15th delivery pushes the limit below half of initial.
                if delivered.fetch_add(1, Ordering::SeqCst) + 1 == 15 {
                    throttle.governance().set_load_shedding(Some(6)); // cap 45
                }
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        })
    };
    let mut events = dlq.subscribe();
    let report = Replayer::new(dlq.clone(), throttle.clone(), app)
        .replay_once()
        .await;
    assert_eq!(report.replayed, 15);
    assert_eq!(report.stop, StopReason::LimitBelowRecovery { percent: 45 });
    assert_eq!(report.remaining, 10);
    // The entries not sent are back, in order, with no attempt counted.
    let left = dlq.list();
    assert_eq!(left.len(), 10);
    assert!(left.iter().all(|e| e.attempts == 0));
    assert_eq!(left[0].request.uri().path(), "/items/15");
    assert_eq!(dlq.stats().in_flight, 0);

    let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(matches!(
        kinds[0],
        DlqEvent::ReplayStarted {
            pending: 25,
            recovery_percent: 100,
            ..
        }
    ));
    assert!(matches!(
        kinds[1],
        DlqEvent::ReplayCompleted {
            replayed: 15,
            failed: 0,
            remaining: 10,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn failed_replays_are_retried_then_permanently_failed() {
    let throttle = AdaptiveThrottle::new(limits_100_to_500());
    let dlq = DeadLetterQueue::builder().max_attempts(3).build().unwrap();
    capture_n(&dlq, 2).await;
    // /items/0 always fails; /items/1 fails once then succeeds.
    let calls = Arc::new(Mutex::new(BTreeMap::<String, u32>::new()));
    let app = {
        let calls = calls.clone();
        service_fn(move |request: Request<Body>| {
            let calls = calls.clone();
            async move {
                let path = request.uri().path().to_owned();
                let n = {
                    let mut calls = calls.lock().unwrap();
                    let n = calls.entry(path.clone()).or_default();
                    *n += 1;
                    *n
                };
                let ok = path == "/items/1" && n >= 2;
                let mut response = Response::new(Body::empty());
                if !ok {
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let report = Replayer::new(dlq.clone(), throttle, app)
        .replay_once()
        .await;
    assert_eq!(report.replayed, 1);
    assert_eq!(report.failed, 4); // /items/0 three times, /items/1 once
    assert_eq!(report.exhausted, 1);
    assert!(dlq.is_empty());
    let failed = dlq.failed();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].request.uri().path(), "/items/0");
    assert_eq!(failed[0].attempts, 3);
    assert_eq!(calls.lock().unwrap()["/items/0"], 3);
    assert_eq!(calls.lock().unwrap()["/items/1"], 2);
}

#[tokio::test(start_paused = true)]
async fn auto_replay_starts_when_the_breaker_closes() {
    let throttle = AdaptiveThrottle::new(limits_100_to_500());
    throttle.governance().on_breaker_state(BreakerState::Open);
    let dlq = DeadLetterQueue::default();
    capture_n(&dlq, 12).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let auto =
        Replayer::new(dlq.clone(), throttle.clone(), timed_app(log.clone())).spawn_auto_replay();

    // Unrelated events and time do not start it.
    throttle
        .governance()
        .set_error_budget(tower_adaptive_throttle::ErrorBudget::Warning);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(log.lock().unwrap().is_empty());

    throttle
        .governance()
        .on_breaker_state(BreakerState::HalfOpen);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(log.lock().unwrap().is_empty(), "half-open is still probing");

    let closed_at = Instant::now();
    throttle
        .governance()
        .set_error_budget(tower_adaptive_throttle::ErrorBudget::Healthy);
    throttle.governance().on_breaker_state(BreakerState::Closed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 12);
    assert_eq!(log[0], closed_at, "the run starts on the event, not later");
    assert!(dlq.is_empty());
    drop(auto);
}

#[tokio::test(start_paused = true)]
async fn auto_replay_starts_when_the_limit_recovers_to_half_of_initial() {
    let throttle = AdaptiveThrottle::new(limits_100_to_500());
    throttle.governance().set_load_shedding(Some(6)); // 45: below half of the initial 100
    let dlq = DeadLetterQueue::default();
    capture_n(&dlq, 5).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut limit_events = throttle.subscribe();
    let auto =
        Replayer::new(dlq.clone(), throttle.clone(), timed_app(log.clone())).spawn_auto_replay();

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(log.lock().unwrap().is_empty());

    throttle.governance().set_load_shedding(None); // the ramp lifts the limit through 50
    tokio::time::sleep(Duration::from_secs(1)).await;
    let crossed = std::iter::from_fn(|| limit_events.try_recv().ok())
        .any(|e| matches!(e, ThrottleEvent::LimitChanged(c) if c.previous < 50 && c.new >= 50));
    assert!(crossed, "the trigger under test happened");
    assert_eq!(log.lock().unwrap().len(), 5);
    assert!(dlq.is_empty());
    auto.stop();
}

#[tokio::test(start_paused = true)]
async fn auto_replay_with_a_poll_interval_drains_work_rejected_while_healthy() {
    let throttle = AdaptiveThrottle::new(limits_100_to_500());
    let dlq = DeadLetterQueue::default();
    let log = Arc::new(Mutex::new(Vec::new()));
    let config = ReplayConfig::builder()
        .poll_interval(Duration::from_secs(10))
        .build()
        .unwrap();
    let auto = Replayer::new(dlq.clone(), throttle.clone(), timed_app(log.clone()))
        .with_config(config)
        .spawn_auto_replay();
    capture_n(&dlq, 3).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(log.lock().unwrap().is_empty(), "no event, not yet polled");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(log.lock().unwrap().len(), 3);
    drop(auto);
}

/// The recommended configuration with the limits these tests are written against (100 to start,
/// floor 10, ceiling 500 per window).
fn limits_100_to_500() -> ThrottleConfig {
    ThrottleConfig::builder()
        .initial_limit(100)
        .min_limit(10)
        .max_limit(500)
        .build()
        .unwrap()
}
