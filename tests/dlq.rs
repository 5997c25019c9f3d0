//! Dead-letter queue: capture filters, replay pacing and triggers, the at-least-once invariant
//! under concurrent capture and replay, and a round trip through a real axum `Router`.
//!
//! Time is paused tokio time throughout: nothing sleeps on the wall clock.
#![cfg(feature = "dlq")]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{HeaderName, AUTHORIZATION, CONTENT_LENGTH, COOKIE, PROXY_AUTHORIZATION};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_adaptive_throttle::dlq::{
    CaptureOptions, DeadLetterLayer, DeadLetterQueue, DlqEvent, ReplayConfig, Replayer, StopReason,
    ThrottleRejected, DEFAULT_REPLAY_HEADER,
};
use tower_adaptive_throttle::{
    AdaptiveThrottle, BreakerState, RejectReason, ThrottleConfig, ThrottleEvent, Tier,
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The throttle's 429: status plus the marker the HTTP layer inserts.
fn throttle_rejection() -> Response<Body> {
    let mut response = Response::new(Body::from("rejected"));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response.extensions_mut().insert(ThrottleRejected::new(
        RejectReason::RateLimitExceeded,
        Tier::Standard,
    ));
    response
}

/// What a stand-in inner service saw.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

/// A stand-in for "throttle + app": rejects with the marker while `overloaded`, records every
/// request it receives (body included).
#[derive(Clone, Default)]
struct StandIn {
    overloaded: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    fn overloaded() -> Self {
        let s = Self::default();
        s.overloaded.store(true, Ordering::SeqCst);
        s
    }

    fn service(
        &self,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send>
           + Clone
           + Send
           + 'static {
        let state = self.clone();
        service_fn(move |request: Request<Body>| {
            let state = state.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.expect("body").to_bytes();
                state.seen.lock().unwrap().push(Seen {
                    headers: parts.headers,
                    body,
                });
                if state.overloaded.load(Ordering::SeqCst) {
                    Ok(throttle_rejection())
                } else {
                    Ok(Response::new(Body::from("ok")))
                }
            }
        })
    }
}

fn put(path: &str, body: &'static str) -> Request<Body> {
    Request::put(path)
        .header(CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

async fn send<S>(svc: &S, request: Request<Body>) -> StatusCode
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
{
    svc.clone().oneshot(request).await.unwrap().status()
}

/// A body whose length is not known in advance (like a chunked upload).
struct Chunked(Option<Bytes>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }
}

// ---------------------------------------------------------------------------------------------
// Capture filters
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn sensitive_headers_are_stripped_unless_explicitly_allowed() {
    let request = || {
        Request::put("/items/1")
            .header(AUTHORIZATION, "Bearer s3cret")
            .header(COOKIE, "session=abc")
            .header(PROXY_AUTHORIZATION, "Basic eA==")
            .header("x-api-key", "k-123")
            .header("x-trace", "t-1")
            .header(CONTENT_LENGTH, 0)
            .body(Body::empty())
            .unwrap()
    };
    let options = CaptureOptions::new().sensitive_header(HeaderName::from_static("x-api-key"));

    let dlq = DeadLetterQueue::default();
    let stand_in = StandIn::overloaded();
    let svc = DeadLetterLayer::new(dlq.clone(), options.clone()).layer(stand_in.service());
    assert_eq!(send(&svc, request()).await, StatusCode::TOO_MANY_REQUESTS);
    let entry = &dlq.list()[0];
    let kept = entry.request.headers();
    for gone in [
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
    ] {
        assert!(!kept.contains_key(gone), "{gone} must not be stored");
    }
    assert_eq!(kept["x-trace"], "t-1");
    // The inner service still saw every header: capture filters the copy, not the request.
    assert_eq!(
        stand_in.seen.lock().unwrap()[0].headers[AUTHORIZATION],
        "Bearer s3cret"
    );

    let dlq = DeadLetterQueue::default();
    let svc = DeadLetterLayer::new(
        dlq.clone(),
        options
            .allow_header(AUTHORIZATION)
            .allow_header(HeaderName::from_static("x-api-key")),
    )
    .layer(StandIn::overloaded().service());
    send(&svc, request()).await;
    let kept = dlq.list()[0].request.headers().clone();
    assert_eq!(kept[AUTHORIZATION], "Bearer s3cret");
    assert_eq!(kept["x-api-key"], "k-123");
    assert!(
        !kept.contains_key(COOKIE),
        "only the allowed ones come back"
    );
}

#[tokio::test(start_paused = true)]
async fn body_within_the_limit_is_captured_and_handed_on_intact() {
    let dlq = DeadLetterQueue::default();
    let stand_in = StandIn::overloaded();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new().max_body_size(8))
        .layer(stand_in.service());
    send(&svc, put("/items/1", "12345678")).await;
    assert_eq!(dlq.list()[0].request.body().as_ref(), b"12345678");
    assert_eq!(stand_in.seen.lock().unwrap()[0].body.as_ref(), b"12345678");
    assert_eq!(dlq.list()[0].request.method(), Method::PUT);
    assert_eq!(dlq.list()[0].request.uri(), "/items/1");
}

#[tokio::test(start_paused = true)]
async fn body_over_the_limit_or_of_unknown_length_is_not_captured_and_is_counted() {
    let dlq = DeadLetterQueue::default();
    let stand_in = StandIn::overloaded();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new().max_body_size(8))
        .layer(stand_in.service());

    assert_eq!(
        send(&svc, put("/items/1", "123456789")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let unknown = Request::put("/items/2")
        .body(Body::new(Chunked(Some(Bytes::from_static(b"abc")))))
        .unwrap();
    send(&svc, unknown).await;

    assert!(dlq.is_empty());
    let stats = dlq.stats();
    assert_eq!((stats.body_too_large, stats.body_unknown_length), (1, 1));
    assert_eq!(stats.captured, 0);
    // Not captured, but passed through untouched.
    {
        let seen = stand_in.seen.lock().unwrap();
        assert_eq!(seen[0].body.as_ref(), b"123456789");
        assert_eq!(seen[1].body.as_ref(), b"abc");
    }

    // Admitted requests are not counted: only rejections that could not be kept are.
    stand_in.overloaded.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&svc, put("/items/3", "123456789")).await,
        StatusCode::OK
    );
    assert_eq!(dlq.stats().body_too_large, 1);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_methods_are_skipped_unless_opted_in() {
    let post = || {
        Request::post("/orders")
            .header(CONTENT_LENGTH, 2)
            .body(Body::from("{}"))
            .unwrap()
    };
    let dlq = DeadLetterQueue::default();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new())
        .layer(StandIn::overloaded().service());
    send(&svc, post()).await;
    let patch = Request::patch("/orders/1").body(Body::empty()).unwrap();
    send(&svc, patch).await;
    assert!(dlq.is_empty());
    assert_eq!(dlq.stats().captured, 0);

    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new().method(Method::POST))
        .layer(StandIn::overloaded().service());
    send(&svc, post()).await;
    assert_eq!(dlq.list()[0].request.method(), Method::POST);
    assert_eq!(dlq.list()[0].request.body().as_ref(), b"{}");
}

#[tokio::test(start_paused = true)]
async fn replay_marked_requests_are_never_captured() {
    let dlq = DeadLetterQueue::default();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new())
        .layer(StandIn::overloaded().service());
    let replay = Request::get("/items/1")
        .header(DEFAULT_REPLAY_HEADER, "1")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&svc, replay).await, StatusCode::TOO_MANY_REQUESTS);
    assert!(dlq.is_empty());

    // A custom marker header is honoured too.
    let custom = HeaderName::from_static("x-replayed");
    let svc = DeadLetterLayer::new(
        dlq.clone(),
        CaptureOptions::new().replay_header(custom.clone()),
    )
    .layer(StandIn::overloaded().service());
    let replay = Request::get("/items/1")
        .header(custom, "yes")
        .body(Body::empty())
        .unwrap();
    send(&svc, replay).await;
    assert_eq!(dlq.stats().captured, 0);
}

#[tokio::test(start_paused = true)]
async fn only_the_throttles_own_429_is_captured() {
    let dlq = DeadLetterQueue::default();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new()).layer(service_fn(
        |request: Request<Body>| async move {
            let status = match request.uri().path() {
                "/app-429" => StatusCode::TOO_MANY_REQUESTS, // the app's own, no marker
                _ => StatusCode::OK,
            };
            let mut response = Response::new(Body::empty());
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        },
    ));
    send(&svc, Request::get("/app-429").body(Body::empty()).unwrap()).await;
    send(&svc, Request::get("/fine").body(Body::empty()).unwrap()).await;
    assert_eq!(dlq.stats().captured, 0);
}

#[tokio::test(start_paused = true)]
async fn full_queue_drops_new_entries_counts_and_announces_them() {
    let dlq = DeadLetterQueue::builder().capacity(2).build().unwrap();
    let mut events = dlq.subscribe();
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new())
        .layer(StandIn::overloaded().service());
    for path in ["/a", "/b", "/c"] {
        send(&svc, Request::get(path).body(Body::empty()).unwrap()).await;
    }
    let paths: Vec<_> = dlq
        .list()
        .iter()
        .map(|e| e.request.uri().path().to_owned())
        .collect();
    assert_eq!(
        paths,
        ["/a", "/b"],
        "the new entry is dropped, not the oldest"
    );
    assert_eq!(dlq.stats().overflow, 1);
    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let DlqEvent::Overflow {
            dropped_total,
            tier,
            reason,
            ..
        } = &event
        {
            assert_eq!(*dropped_total, 1);
            assert_eq!(
                (*tier, *reason),
                (Tier::Standard, RejectReason::RateLimitExceeded)
            );
        }
        kinds.push(event.kind());
    }
    assert_eq!(kinds, ["rejection_stored", "rejection_stored", "overflow"]);
}

// ---------------------------------------------------------------------------------------------
// Replay: pacing, health, triggers
// ---------------------------------------------------------------------------------------------

/// Fills `dlq` with `n` captured GETs `/items/{i}`.
async fn capture_n(dlq: &DeadLetterQueue, n: usize) {
    let svc = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new())
        .layer(StandIn::overloaded().service());
    for i in 0..n {
        let request = Request::get(format!("/items/{i}"))
            .header(REQUEST_ID, i)
            .body(Body::empty())
            .unwrap();
        send(&svc, request).await;
    }
    assert_eq!(dlq.len(), n);
}

/// An app that answers 200 and records the virtual time of every delivery.
fn timed_app(
    log: Arc<Mutex<Vec<Instant>>>,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static {
    service_fn(move |_request: Request<Body>| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(Instant::now());
            Ok(Response::new(Body::empty()))
        }
    })
}

/// Offsets from the first delivery of each batch's first delivery.
fn batch_starts(log: &[Instant], batch: usize) -> Vec<Duration> {
    log.chunks(batch).map(|chunk| chunk[0] - log[0]).collect()
}

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
        let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
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
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
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
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
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
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
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
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
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
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
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
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
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

// ---------------------------------------------------------------------------------------------
// The invariant: concurrent capture and replay lose nothing and never replay after success
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn every_captured_request_ends_exactly_once_as_replayed_pending_or_failed() {
    const TASKS: u64 = 6;
    const PER_TASK: u64 = 40;

    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
    let dlq = DeadLetterQueue::builder()
        .capacity(10_000)
        .failed_capacity(10_000)
        .max_attempts(3)
        .build()
        .unwrap();

    // "Throttle + app": originals are always rejected (so all are captured); replays reach a
    // flaky handler that takes a little virtual time and fails ids ≡ 0 (mod 7) always and
    // every third attempt otherwise. Every delivery of a replay is logged with its outcome.
    let deliveries = Arc::new(Mutex::new(BTreeMap::<u64, Vec<bool>>::new()));
    let attempt_counter = Arc::new(AtomicU64::new(0));
    let app = {
        let deliveries = deliveries.clone();
        let attempt_counter = attempt_counter.clone();
        service_fn(move |request: Request<Body>| {
            let deliveries = deliveries.clone();
            let attempt_counter = attempt_counter.clone();
            async move {
                let id: u64 = request.headers()[&REQUEST_ID]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                if !request.headers().contains_key(DEFAULT_REPLAY_HEADER) {
                    tokio::task::yield_now().await;
                    return Ok::<_, Infallible>(throttle_rejection());
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
                let n = attempt_counter.fetch_add(1, Ordering::SeqCst);
                let ok = id % 7 != 0 && n % 3 != 2;
                deliveries.lock().unwrap().entry(id).or_default().push(ok);
                let mut response = Response::new(Body::empty());
                if !ok {
                    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                }
                Ok(response)
            }
        })
    };
    let captured_app = DeadLetterLayer::new(dlq.clone(), CaptureOptions::new()).layer(app);

    let config = ReplayConfig::builder()
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let auto = Replayer::new(dlq.clone(), throttle.clone(), captured_app.clone())
        .with_config(config)
        .spawn_auto_replay();

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let svc = captured_app.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let id = task * PER_TASK + i;
                let request = Request::put(format!("/items/{id}"))
                    .header(REQUEST_ID, id)
                    .header(CONTENT_LENGTH, 2)
                    .body(Body::from("{}"))
                    .unwrap();
                let status = svc.clone().oneshot(request).await.unwrap().status();
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                tokio::time::sleep(Duration::from_millis(7 + task)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Let replay go on (long enough for some ids to exhaust their attempts, not long enough to
    // drain: about 75 deliveries per virtual second), then stop it mid-run: a cancelled run
    // must put its in-flight entries back.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    auto.stop();
    tokio::task::yield_now().await;

    let ids_captured: BTreeSet<u64> = (0..TASKS * PER_TASK).collect();
    let header_id = |e: &tower_adaptive_throttle::dlq::DeadLetter| -> u64 {
        e.request.headers()[&REQUEST_ID]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let pending: Vec<u64> = dlq.list().iter().map(header_id).collect();
    let failed: Vec<u64> = dlq.failed().iter().map(header_id).collect();
    let deliveries = deliveries.lock().unwrap();
    let succeeded: Vec<u64> = deliveries
        .iter()
        .filter(|(_, outcomes)| outcomes.contains(&true))
        .map(|(id, _)| *id)
        .collect();

    // Nothing replayed after success: a success is the last delivery of its id, and unique.
    for (id, outcomes) in deliveries.iter() {
        let successes = outcomes.iter().filter(|ok| **ok).count();
        assert!(
            successes <= 1,
            "id {id} delivered successfully {successes} times"
        );
        if successes == 1 {
            assert_eq!(
                outcomes.last(),
                Some(&true),
                "id {id} replayed after success"
            );
        }
        assert!(
            outcomes.len() <= 3,
            "id {id} attempted more than max_attempts"
        );
    }

    // Exactly one end state per captured id; nothing lost, nothing invented.
    let mut end_states = BTreeMap::<u64, Vec<&str>>::new();
    for id in &pending {
        end_states.entry(*id).or_default().push("pending");
    }
    for id in &failed {
        end_states.entry(*id).or_default().push("failed");
    }
    for id in &succeeded {
        end_states.entry(*id).or_default().push("replayed");
    }
    for id in &ids_captured {
        let states = end_states.get(id).cloned().unwrap_or_default();
        assert_eq!(states.len(), 1, "id {id} ended as {states:?}");
    }
    assert_eq!(end_states.len(), ids_captured.len());

    let stats = dlq.stats();
    assert_eq!(stats.captured, TASKS * PER_TASK);
    assert_eq!(stats.in_flight, 0, "the cancelled run put its entries back");
    assert_eq!(stats.replayed, succeeded.len() as u64);
    assert_eq!(stats.exhausted, failed.len() as u64);
    assert_eq!(stats.pending, pending.len());
    assert_eq!(
        stats.captured,
        stats.replayed + stats.exhausted + stats.pending as u64
    );
    // The run exercised every end state.
    assert!(!succeeded.is_empty() && !failed.is_empty() && !pending.is_empty());
    // Failed entries failed exactly max_attempts times; pending ones fewer.
    for id in &failed {
        assert_eq!(deliveries[id].len(), 3);
    }
    for id in &pending {
        assert!(deliveries.get(id).map_or(0, Vec::len) < 3);
    }
}

// ---------------------------------------------------------------------------------------------
// End to end through an axum Router
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn axum_route_rejected_while_overloaded_is_replayed_once_with_the_marker() {
    use axum::extract::{Path, Request as AxumRequest};
    use axum::middleware::{self, Next};
    use axum::response::IntoResponse;
    use axum::routing::put as put_route;
    use axum::Router;

    let handled = Arc::new(Mutex::new(Vec::<(String, bool, String)>::new()));
    let overloaded = Arc::new(AtomicBool::new(true));

    let handler = {
        let handled = handled.clone();
        move |Path(id): Path<String>, headers: HeaderMap, body: String| {
            let handled = handled.clone();
            async move {
                let replayed = headers.contains_key(DEFAULT_REPLAY_HEADER)
                    && headers.contains_key("x-internal-replay-auth")
                    && !headers.contains_key(AUTHORIZATION);
                handled.lock().unwrap().push((id, replayed, body));
                StatusCode::NO_CONTENT
            }
        }
    };
    // Stands in for the throttle's HTTP layer: 429 + `ThrottleRejected` while overloaded.
    let stand_in_throttle = {
        let overloaded = overloaded.clone();
        move |request: AxumRequest, next: Next| {
            let overloaded = overloaded.clone();
            async move {
                if overloaded.load(Ordering::SeqCst) {
                    let mut response = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
                    response.extensions_mut().insert(ThrottleRejected::new(
                        RejectReason::ConcurrencyLimitExceeded,
                        Tier::Critical,
                    ));
                    response
                } else {
                    next.run(request).await
                }
            }
        }
    };
    let dlq = DeadLetterQueue::default();
    let app: Router = Router::new()
        .route("/items/{id}", put_route(handler))
        .route("/health", axum::routing::get(|| async { "ok" }))
        .layer(middleware::from_fn(stand_in_throttle))
        .layer(DeadLetterLayer::new(dlq.clone(), CaptureOptions::new()));

    for id in ["a", "b", "c"] {
        let request = Request::put(format!("/items/{id}"))
            .header(AUTHORIZATION, "Bearer s3cret")
            .header(CONTENT_LENGTH, 7)
            .body(Body::from(format!("body-{id}:")))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(handled.lock().unwrap().is_empty());
    assert_eq!(dlq.len(), 3);
    let entry = &dlq.list()[0];
    assert_eq!(
        (entry.tier, entry.reason),
        (Tier::Critical, RejectReason::ConcurrencyLimitExceeded)
    );

    // Recovered: replay through the same router.
    overloaded.store(false, Ordering::SeqCst);
    let throttle = AdaptiveThrottle::new(ThrottleConfig::default());
    // A `Router` serves any body type: name the one replays are built with.
    // Captured requests keep no extensions: the hook puts back what the app needs.
    let replayer =
        Replayer::<_, Body>::new(dlq.clone(), throttle, app.clone()).with_request_hook(|request| {
            request.headers_mut().insert(
                "x-internal-replay-auth",
                http::HeaderValue::from_static("ok"),
            );
        });
    let report = replayer.replay_once().await;
    assert_eq!((report.replayed, report.failed), (3, 0));
    assert!(dlq.is_empty());
    let again = replayer.replay_once().await;
    assert!(!again.started);

    let handled = handled.lock().unwrap();
    assert_eq!(
        *handled,
        [
            ("a".to_owned(), true, "body-a:".to_owned()),
            ("b".to_owned(), true, "body-b:".to_owned()),
            ("c".to_owned(), true, "body-c:".to_owned()),
        ]
    );
    assert_eq!(dlq.stats().replayed, 3);
}
