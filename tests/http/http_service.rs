//! Service semantics of `AdaptiveThrottleService` with `tower-test` and paused tokio time: the
//! throttle runs on `MonotonicClock`, which reads tokio's clock, so `tokio::time::advance` is the
//! only thing that moves latency.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::advance;
use tower_adaptive_throttle::http::{GlobalKey, ResponseBody, RATELIMIT, RATELIMIT_POLICY};
use tower_adaptive_throttle::{
    AdaptiveThrottle, AdaptiveThrottleLayer, AdaptiveThrottleService, Decision, RejectedBody,
    ThrottleRejected, Tier,
};
use tower_test::mock::{Handle, Mock, Spawn};

use crate::support::{body_bytes, body_json, mock_service, starting_at, MockReq, MockRes};

type Svc = AdaptiveThrottleService<Mock<MockReq, MockRes>, GlobalKey>;

/// Baldur's ladder with a small per-window limit: one response ≥ 500 ms cuts the limit by 0.7,
/// one ≥ 200 ms (or an overload) by 0.9.
fn throttle(limit: u32) -> AdaptiveThrottle {
    AdaptiveThrottle::new(starting_at(limit).max_limit(1000).build().unwrap())
}

fn layer(t: &AdaptiveThrottle) -> AdaptiveThrottleLayer<GlobalKey> {
    AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey)
}

fn ok(status: u16) -> MockRes {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"done")))
        .unwrap()
}

/// Calls `svc` once and answers with `status` after `latency` of tokio time.
async fn round_trip(
    svc: &mut Spawn<Svc>,
    handle: &mut Handle<MockReq, MockRes>,
    latency: Duration,
    status: u16,
) -> Response<ResponseBody<Full<Bytes>>> {
    assert!(svc.poll_ready().is_ready());
    let fut = tokio::spawn(svc.call(Request::new(())));
    let (_req, send) = handle
        .next_request()
        .await
        .expect("request reaches the inner service");
    advance(latency).await;
    send.send_response(ok(status));
    fut.await.unwrap().unwrap()
}

#[tokio::test(start_paused = true)]
async fn admitted_response_records_its_latency_from_call_to_headers() {
    let t = throttle(100);
    let (mut svc, mut handle) = mock_service(&layer(&t));
    let res = round_trip(&mut svc, &mut handle, Duration::from_millis(600), 200).await;
    // Admitted: the body went to the inner service, nothing comes back.
    assert!(res.extensions().get::<RejectedBody<()>>().is_none());
    assert_eq!(res.status(), StatusCode::OK);
    let stats = t.stats();
    assert_eq!(stats.samples.sample_count, 1);
    assert_eq!(stats.samples.max_rtt, Some(Duration::from_millis(600)));
    assert_eq!(
        t.current_limit(),
        70,
        "one response at or above 500 ms cuts 100 → 70"
    );
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_ordinary_samples() {
    let t = throttle(100);
    let (mut svc, mut handle) = mock_service(&layer(&t));
    let res = round_trip(&mut svc, &mut handle, Duration::from_millis(10), 404).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(t.stats().samples.max_rtt, Some(Duration::from_millis(10)));
    assert_eq!(t.current_limit(), 100, "a fast 404 is not overload");
}

#[tokio::test(start_paused = true)]
async fn server_error_is_recorded_as_overload() {
    let t = throttle(100);
    let (mut svc, mut handle) = mock_service(&layer(&t));
    let res = round_trip(&mut svc, &mut handle, Duration::from_millis(10), 503).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(t.stats().samples.sample_count, 1);
    assert_eq!(
        t.current_limit(),
        90,
        "an overload counts as at least sla_warning: ×0.9"
    );
}

#[tokio::test(start_paused = true)]
async fn inner_error_passes_through_and_is_recorded_as_overload() {
    let t = throttle(100);
    let (mut svc, mut handle) = mock_service(&layer(&t));
    assert!(svc.poll_ready().is_ready());
    let fut = tokio::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(5)).await;
    send.send_error("backend exploded");
    let err = fut.await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "backend exploded",
        "the inner error is untouched"
    );
    assert_eq!(t.stats().samples.sample_count, 1);
    assert_eq!(t.current_limit(), 90);
}

#[tokio::test(start_paused = true)]
async fn dropped_response_future_records_nothing() {
    let t = throttle(100);
    let (mut svc, mut handle) = mock_service(&layer(&t));
    assert!(svc.poll_ready().is_ready());
    let task = tokio::spawn(svc.call(Request::new(())));
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(900)).await;
    task.abort();
    assert!(
        task.await.unwrap_err().is_cancelled(),
        "the future was dropped unfinished"
    );
    send.send_response(ok(200));
    assert_eq!(t.stats().samples.sample_count, 0);
    assert_eq!(t.current_limit(), 100);
}

#[tokio::test(start_paused = true)]
async fn rejection_is_a_429_that_never_reaches_the_inner_service_nor_the_controller() {
    let t = throttle(2);
    let (mut svc, mut handle) = mock_service(&layer(&t));
    for _ in 0..2 {
        round_trip(&mut svc, &mut handle, Duration::from_millis(1), 200).await;
    }
    let samples = t.stats().samples.sample_count;
    assert!(svc.poll_ready().is_ready());
    let res = svc.call(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.extensions().get::<ThrottleRejected>().is_some());
    // The unread body comes back with the 429 (for a dead-letter capture outside), once.
    let returned = res.extensions().get::<RejectedBody<()>>().unwrap();
    assert_eq!(returned.take(), Some(()));
    assert_eq!(returned.take(), None);
    assert!(res.headers().contains_key(http::header::RETRY_AFTER));
    assert_eq!(res.headers()[RATELIMIT_POLICY], r#""adaptive";q=2;w=60"#);
    let json: serde_json::Value = body_json(res).await;
    assert_eq!(json["limit"], 2);
    assert_eq!(json["reason"], "rate_limit_exceeded");
    assert!(
        handle.poll_request().is_pending(),
        "the rejected request never reached the inner service"
    );
    assert_eq!(
        t.stats().samples.sample_count,
        samples,
        "our 429 records no sample"
    );
    assert_eq!(t.stats().rejected_requests, 1);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_never_pends_because_of_throttling() {
    let t = throttle(1);
    let (mut svc, mut handle) = mock_service(&layer(&t));
    round_trip(&mut svc, &mut handle, Duration::from_millis(1), 200).await;
    // It only forwards: an inner service that is not ready makes it pend...
    handle.allow(0);
    assert!(svc.poll_ready().is_pending());
    // ...and a ready inner service makes it ready, although the window is spent and the call
    // will be rejected.
    handle.allow(1);
    for _ in 0..3 {
        assert!(svc.poll_ready().is_ready());
        let res = svc.call(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test(start_paused = true)]
async fn each_admission_consumes_one_slot_whatever_its_outcome() {
    let t = throttle(10);
    let (mut svc, mut handle) = mock_service(&layer(&t));
    let mut remaining = Vec::new();
    for outcome in [Ok(200), Ok(500), Err("boom"), Ok(404)] {
        assert!(svc.poll_ready().is_ready());
        let fut = tokio::spawn(svc.call(Request::new(())));
        let (req, send) = handle.next_request().await.unwrap();
        let d = *req
            .extensions()
            .get::<Decision>()
            .expect("decision in extensions");
        assert_eq!(req.extensions().get::<Tier>(), Some(&Tier::Standard));
        remaining.push(d.remaining);
        match outcome {
            Ok(s) => send.send_response(ok(s)),
            Err(e) => send.send_error(e),
        }
        let _ = fut.await.unwrap();
    }
    assert_eq!(remaining, [9, 8, 7, 6]);
}

#[tokio::test(start_paused = true)]
async fn clones_of_the_layer_and_service_share_one_limit() {
    let t = throttle(3);
    let layer_a = layer(&t);
    let layer_b = layer_a.clone();
    let (mut a, mut ha) = mock_service(&layer_a);
    let (mut b, mut hb) = mock_service(&layer_b);
    let mut a2 = Spawn::new(a.get_ref().clone());
    round_trip(&mut a, &mut ha, Duration::from_millis(1), 200).await;
    round_trip(&mut b, &mut hb, Duration::from_millis(1), 200).await;
    assert!(a2.poll_ready().is_ready());
    let third = tokio::spawn(a2.call(Request::new(())));
    let (_r, send) = ha.next_request().await.unwrap();
    send.send_response(ok(200));
    assert_eq!(third.await.unwrap().unwrap().status(), StatusCode::OK);
    assert!(b.poll_ready().is_ready());
    let res = b.call(Request::new(())).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the fourth call anywhere is over"
    );
}

#[tokio::test(start_paused = true)]
async fn admitted_responses_carry_ratelimit_fields() {
    let t = throttle(5);
    let (mut svc, mut handle) = mock_service(&layer(&t));
    let res = round_trip(&mut svc, &mut handle, Duration::from_millis(1), 200).await;
    assert_eq!(res.headers()[RATELIMIT_POLICY], r#""adaptive";q=5;w=60"#);
    let ratelimit = res.headers()[RATELIMIT].to_str().unwrap();
    let t_secs: u64 = ratelimit
        .strip_prefix(r#""adaptive";r=4;t="#)
        .expect("remaining 4 after one of 5")
        .parse()
        .unwrap();
    assert!(
        (1..=66).contains(&t_secs),
        "t = {t_secs}: within a 60 s window (+ one bucket)"
    );
    assert!(!res.headers().contains_key(http::header::RETRY_AFTER));
}

#[tokio::test(start_paused = true)]
async fn end_of_body_timing_records_when_the_body_ends() {
    let t = throttle(100);
    let (mut svc, mut handle) = mock_service(&layer(&t).measure_to_end_of_body(true));
    let res = round_trip(&mut svc, &mut handle, Duration::from_millis(10), 200).await;
    assert_eq!(t.stats().samples.sample_count, 0, "headers are not the end");
    advance(Duration::from_millis(590)).await;
    let body = body_bytes(res.into_body()).await;
    assert_eq!(&body[..], b"done");
    assert_eq!(t.stats().samples.max_rtt, Some(Duration::from_millis(600)));
    assert_eq!(t.current_limit(), 70);
}

#[tokio::test(start_paused = true)]
async fn body_dropped_before_its_end_records_nothing() {
    let t = throttle(100);
    let (mut svc, mut handle) = mock_service(&layer(&t).measure_to_end_of_body(true));
    let res = round_trip(&mut svc, &mut handle, Duration::from_millis(10), 200).await;
    advance(Duration::from_millis(700)).await;
    drop(res);
    assert_eq!(t.stats().samples.sample_count, 0);
    assert_eq!(t.current_limit(), 100);
}

#[tokio::test(start_paused = true)]
async fn disabled_throttle_passes_requests_through_untouched() {
    let t = throttle(1);
    t.disable();
    let (mut svc, mut handle) = mock_service(&layer(&t));
    for _ in 0..3 {
        assert!(svc.poll_ready().is_ready());
        let fut = tokio::spawn(svc.call(Request::new(())));
        let (req, send) = handle.next_request().await.unwrap();
        assert!(req.extensions().get::<Decision>().is_none());
        send.send_response(ok(200));
        let res = fut.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().is_empty(), "no headers: {:?}", res.headers());
    }
    let stats = t.stats();
    assert_eq!((stats.total_requests, stats.rejected_requests), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn shadow_mode_lets_everything_through_and_counts_would_be_rejections() {
    let t = throttle(2);
    let (mut svc, mut handle) = mock_service(&layer(&t).shadow(true));
    let mut allowed = Vec::new();
    for _ in 0..4 {
        assert!(svc.poll_ready().is_ready());
        let fut = tokio::spawn(svc.call(Request::new(())));
        let (req, send) = handle.next_request().await.expect("never rejected");
        allowed.push(req.extensions().get::<Decision>().unwrap().allowed);
        send.send_response(ok(200));
        let res = fut.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(!res.headers().contains_key(RATELIMIT));
    }
    assert_eq!(allowed, [true, true, false, false]);
    assert_eq!(t.stats().shadow_rejections, 2);
}

#[tokio::test(start_paused = true)]
async fn custom_rejection_handler_keeps_the_standard_fields() {
    let t = throttle(1);
    let layer = layer(&t).on_reject(|d: &Decision| {
        Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header("x-limit", d.limit)
            .body("busy")
            .unwrap()
    });
    let (mut svc, mut handle) = mock_service(&layer);
    assert!(svc.poll_ready().is_ready());
    let fut = tokio::spawn(svc.call(Request::new(())));
    let (_r, send) = handle.next_request().await.unwrap();
    send.send_response(ok(200));
    fut.await.unwrap().unwrap();
    let res = svc.call(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["x-limit"], "1");
    assert!(res.headers().contains_key(http::header::RETRY_AFTER));
    assert!(res.headers().contains_key(RATELIMIT));
    let body = body_bytes(res.into_body()).await;
    assert_eq!(&body[..], b"busy");
}
