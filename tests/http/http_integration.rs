//! The layer with every axis and control wired in: the concurrency permit's life, concurrency
//! rejections, and the throttle's rules and bypasses through a real axum router.
#![cfg(feature = "axum")]

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower_adaptive_throttle::http::{GlobalKey, RATELIMIT, RATELIMIT_POLICY};
use tower_adaptive_throttle::rules::{Bypass, Rule};
use tower_adaptive_throttle::ConcurrencyConfig;
use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer, ThrottleConfig, Tier};

use crate::support::{
    body_bytes, get_with, manual, mock_service, pinned, quota, registry_with, request, respond,
};

/// A large rate quota and an in-flight limit of exactly `inflight`.
fn with_inflight_limit(inflight: u32) -> AdaptiveThrottle {
    let concurrency = ConcurrencyConfig::builder()
        .min_limit(inflight)
        .initial_limit(inflight)
        .max_limit(inflight)
        .build()
        .unwrap();
    let cfg = ThrottleConfig::builder()
        .min_limit(1000)
        .initial_limit(1000)
        .max_limit(1000)
        .concurrency(concurrency)
        .build()
        .unwrap();
    AdaptiveThrottle::new(cfg)
}

fn inflight(t: &AdaptiveThrottle) -> u32 {
    t.concurrency_stats().expect("concurrency axis on").inflight
}

#[tokio::test(start_paused = true)]
async fn permit_is_held_until_the_response_and_released_by_a_dropped_future() {
    let t = with_inflight_limit(2);
    // Critical: its share is the whole in-flight limit (standard gets 80 % of it).
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone())
        .key_extractor(GlobalKey)
        .tier(Tier::Critical);
    let (mut svc, mut handle) = mock_service(&layer);

    assert!(svc.poll_ready().is_ready());
    let completed = tokio::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    assert_eq!(inflight(&t), 1, "the slot is taken on admission");

    assert!(svc.poll_ready().is_ready());
    let cancelled = svc.call(Request::new(()));
    let _ = handle.next_request().await.unwrap();
    assert_eq!(inflight(&t), 2);

    tokio::time::advance(Duration::from_millis(30)).await;
    send.send_response(Response::new(Full::new(Bytes::from_static(b"ok"))));
    completed.await.unwrap().unwrap();
    assert_eq!(inflight(&t), 1, "released at the response headers");
    drop(cancelled);
    assert_eq!(inflight(&t), 0, "a dropped future releases its slot");
    let stats = t.concurrency_stats().unwrap();
    assert_eq!(stats.ignored, 1, "the cancelled request is not a sample");
    assert_eq!(stats.drops, 0);
}

#[tokio::test(start_paused = true)]
async fn full_in_flight_limit_answers_429_naming_concurrency() {
    let t = with_inflight_limit(1);
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let (mut svc, mut handle) = mock_service(&layer);
    assert!(svc.poll_ready().is_ready());
    let first = tokio::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();

    assert!(svc.poll_ready().is_ready());
    let res = svc.call(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        res.headers()[RATELIMIT_POLICY],
        "\"concurrency\";q=1;qu=\"concurrent-requests\""
    );
    assert!(res.headers()[RATELIMIT]
        .to_str()
        .unwrap()
        .starts_with("\"concurrency\";r=0;t="));
    assert!(res.headers().contains_key("retry-after"));
    let stats = t.stats();
    assert_eq!(
        stats.rejected_requests, 1,
        "counted in the throttle's stats"
    );
    assert!(t
        .counters()
        .rejections_by_reason
        .iter()
        .any(|(r, n)| r.as_str() == "concurrency_limit_exceeded" && *n == 1));

    send.send_response(Response::new(Full::new(Bytes::new())));
    first.await.unwrap().unwrap();
    assert_eq!(inflight(&t), 0);
}

#[tokio::test(start_paused = true)]
async fn an_inner_error_releases_the_slot_as_a_drop() {
    let t = with_inflight_limit(4);
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let (mut svc, mut handle) = mock_service(&layer);
    assert!(svc.poll_ready().is_ready());
    let fut = tokio::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_error("backend exploded");
    assert!(
        fut.await.unwrap().is_err(),
        "the inner error passes through"
    );
    assert_eq!(inflight(&t), 0);
    assert_eq!(t.concurrency_stats().unwrap().drops, 1);
}

/// One client, a rate quota of one request per minute, rules attached by name in a registry.
fn ruled_app() -> (Router, AdaptiveThrottle) {
    let t = AdaptiveThrottle::new(pinned(1).build().unwrap());
    let registry = registry_with("api", &t);
    assert!(registry.add_rule("api", Rule::path("/api/**").methods(["POST", "PUT"])));
    assert!(registry.add_bypass("api", Bypass::path("/api/health")));
    let app = Router::new()
        .route(
            "/api/orders",
            post(|| async { "created" }).get(|| async { "listed" }),
        )
        .route("/api/health", post(|| async { "fine" }))
        .route("/web", post(|| async { "page" }))
        .layer(AdaptiveThrottleLayer::from_throttle(t.clone()))
        .layer(MockConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
    (app, t)
}

async fn status(app: &Router, method: &str, path: &str) -> StatusCode {
    respond(app, request(method, path, &[])).await.status()
}

#[tokio::test]
async fn rules_and_bypasses_decide_where_the_throttle_applies() {
    let (app, t) = ruled_app();
    assert_eq!(status(&app, "POST", "/api/orders").await, StatusCode::OK);
    assert_eq!(
        status(&app, "POST", "/api/orders").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a matching rule: throttled"
    );
    for _ in 0..3 {
        assert_eq!(
            status(&app, "GET", "/api/orders").await,
            StatusCode::OK,
            "method not in the rule"
        );
        assert_eq!(
            status(&app, "POST", "/api/health").await,
            StatusCode::OK,
            "bypassed"
        );
        assert_eq!(
            status(&app, "POST", "/web").await,
            StatusCode::OK,
            "path not in the rule"
        );
    }
    assert_eq!(
        t.stats().total_requests,
        2,
        "only matching requests were checked"
    );
    // Rules change at runtime without losing the window.
    t.set_rules(Default::default());
    assert_eq!(
        status(&app, "POST", "/web").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn critical_route_keeps_its_capacity_during_an_emergency() {
    let t = quota(10);
    let app = Router::new()
        .route(
            "/pay",
            get(|| async { "paid" })
                .route_layer(AdaptiveThrottleLayer::from_throttle(t.clone()).tier(Tier::Critical)),
        )
        .route(
            "/feed",
            get(|| async { "feed" }).route_layer(
                AdaptiveThrottleLayer::from_throttle(t.clone()).tier(Tier::NonEssential),
            ),
        )
        .layer(MockConnectInfo(SocketAddr::from(([10, 0, 0, 2], 4000))));
    t.governance().set_emergency_level(1);
    assert_eq!(
        status(&app, "GET", "/feed").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&app, "GET", "/pay").await, StatusCode::OK);
}

/// The real throttle layer and the dead-letter layer together: a rejected idempotent request
/// is parked, then replayed through the same router once the window allows, exactly once.
#[cfg(feature = "dlq")]
#[tokio::test(start_paused = true)]
async fn requests_rejected_by_the_layer_are_parked_and_replayed_once() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use tower_adaptive_throttle::dlq::{
        CaptureOptions, DeadLetterLayer, DeadLetterQueue, Replayer,
    };

    let t = AdaptiveThrottle::new(pinned(1).window(Duration::from_secs(1)).build().unwrap());
    let served = Arc::new(AtomicU32::new(0));
    let counter = served.clone();
    let dlq = DeadLetterQueue::default();
    let app = Router::new()
        .route(
            "/report",
            get(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    "report"
                }
            }),
        )
        .layer(AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey))
        .layer(DeadLetterLayer::new(dlq.clone(), CaptureOptions::new()));

    let get_report = || get_with("/report", &[("content-length", "0")]);
    assert_eq!(respond(&app, get_report()).await.status(), StatusCode::OK);
    let rejected = respond(&app, get_report()).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        dlq.len(),
        1,
        "the layer's 429 carries the marker, so it was parked"
    );
    assert_eq!(served.load(Ordering::SeqCst), 1);

    // A full window later (the sliding window frees its slot one sub-bucket past the window).
    tokio::time::advance(Duration::from_secs(2)).await;
    let report = Replayer::<_, Body>::new(dlq.clone(), t.clone(), app.clone())
        .replay_once()
        .await;
    assert_eq!((report.replayed, report.failed), (1, 0));
    assert_eq!(
        served.load(Ordering::SeqCst),
        2,
        "delivered once by the replay"
    );
    assert!(dlq.is_empty());
}

#[tokio::test]
async fn key_and_tier_extractors_swap_at_runtime_without_losing_state() {
    use tower_adaptive_throttle::http::{HeaderKey, Swappable, TierHeader};
    let t = AdaptiveThrottle::new(pinned(1).build().unwrap());
    let keys = Swappable::new(HeaderKey::new(http::HeaderName::from_static("x-tenant")));
    let tiers = Swappable::new(TierHeader::new(http::HeaderName::from_static("x-priority")));
    let app = Router::new().route("/", get(|| async { "ok" })).layer(
        AdaptiveThrottleLayer::from_throttle(t.clone())
            .key_extractor(keys.clone())
            .tier_extractor(tiers.clone()),
    );
    let send = |tenant: &'static str, user: &'static str| {
        let app = app.clone();
        async move {
            let req = get_with("/", &[("x-tenant", tenant), ("x-user", user)]);
            respond(&app, req).await.status()
        }
    };
    assert_eq!(send("acme", "u1").await, StatusCode::OK);
    assert_eq!(
        send("acme", "u2").await,
        StatusCode::TOO_MANY_REQUESTS,
        "keyed by tenant"
    );
    keys.swap(HeaderKey::new(http::HeaderName::from_static("x-user")));
    assert_eq!(
        send("acme", "u2").await,
        StatusCode::OK,
        "now keyed by user"
    );
    assert_eq!(send("acme", "u2").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(t.stats().total_requests, 4, "the same throttle throughout");
    tiers.swap(
        TierHeader::new(http::HeaderName::from_static("x-tier")).default_tier(Tier::NonEssential),
    );
    t.governance().set_emergency_level(1); // non-essential gets nothing at level 1
    assert_eq!(send("acme", "u3").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        t.counters()
            .rejections_by_reason
            .iter()
            .find(|(r, _)| r.as_str() == "emergency_tier_blocked")
            .map(|(_, n)| *n),
        Some(1),
        "the new tier mapping is in force"
    );
}

#[tokio::test(start_paused = true)]
async fn with_end_of_body_timing_the_permit_is_held_until_the_body_ends() {
    let t = with_inflight_limit(2);
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone())
        .key_extractor(GlobalKey)
        .tier(Tier::Critical)
        .measure_to_end_of_body(true);
    let (mut svc, mut handle) = mock_service(&layer);
    assert!(svc.poll_ready().is_ready());
    let fut = tokio::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(Full::new(Bytes::from_static(b"streamed"))));
    let res = fut.await.unwrap().unwrap();
    assert_eq!(
        inflight(&t),
        1,
        "headers are out, the body is not: the slot is held"
    );
    let body = body_bytes(res.into_body()).await;
    assert_eq!(&body[..], b"streamed");
    assert_eq!(inflight(&t), 0, "released when the body ended");
    assert_eq!(t.concurrency_stats().unwrap().samples, 1);
}

#[test]
fn shedding_on_the_concurrency_axis_shows_as_throttling() {
    use tower_adaptive_throttle::Regime;
    let cfg = with_inflight_limit(1).config();
    let (t, clock) = manual((*cfg).clone());
    let held = t.acquire("a", Tier::Critical).expect("first admitted");
    assert_eq!(t.regime(), Regime::Normal);
    assert!(t.acquire("b", Tier::Critical).is_err());
    assert_eq!(t.regime(), Regime::Throttling);
    assert_eq!(t.stats().regime, Regime::Throttling);
    clock.advance(Duration::from_secs(2));
    assert_eq!(t.regime(), Regime::Normal, "a second without shedding");
    drop(held);
}
