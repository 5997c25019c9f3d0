//! The layer's gRPC paths in process, on paused tokio time (the throttle's clock reads it, so
//! `advance` is the only thing that moves latency): trailers decide the outcome, the latency is
//! the headers' unless timed to the end of the body, and rejections follow the request's
//! content type.

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::time::advance;
use tower::{service_fn, Layer, ServiceExt};
use tower_adaptive_throttle::http::{
    GlobalKey, GrpcMethodKey, GrpcMethodTier, GRPC_MESSAGE, GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS,
};
use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer, Decision, Tier};

use crate::stub::{Frames, SERVING};
use crate::support::{pinned, starting_at};

fn learning() -> AdaptiveThrottle {
    AdaptiveThrottle::new(starting_at(100).max_limit(1000).build().unwrap())
}

fn grpc_request(path: &str) -> Request<()> {
    Request::post(path)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap()
}

/// A handler that answers after 10 ms with `content_type` and a body of frames: messages, then
/// trailers with `status` (none for `None`).
fn handler(
    content_type: &'static str,
    messages: usize,
    status: Option<u32>,
) -> impl tower::Service<
    Request<()>,
    Response = Response<Frames>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    service_fn(move |_req: Request<()>| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let frames = vec![SERVING; messages];
        let mut res = Response::new(Frames::grpc(&frames, status));
        res.headers_mut()
            .insert("content-type", HeaderValue::from_static(content_type));
        Ok::<_, Infallible>(res)
    })
}

#[tokio::test(start_paused = true)]
async fn trailers_decide_and_the_latency_is_the_headers() {
    for (code, limit) in [
        (14, 90),
        (8, 90),
        (4, 90),
        (13, 90),
        (0, 100),
        (3, 100),
        (5, 100),
    ] {
        let t = learning();
        let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
        let res = layer
            .layer(handler("application/grpc", 2, Some(code)))
            .oneshot(grpc_request("/pkg.Svc/Do"))
            .await
            .unwrap();
        assert_eq!(t.stats().samples.sample_count, 0, "waits for the trailers");
        // The stream goes on for a while after its headers.
        advance(Duration::from_millis(600)).await;
        res.into_body().collect().await.unwrap();
        let stats = t.stats();
        assert_eq!(stats.samples.sample_count, 1, "grpc-status {code}");
        // An overload is recorded as at least `sla_warning` (200 ms); a success as it was.
        let expected = if limit == 100 { 10 } else { 200 };
        assert_eq!(
            stats.samples.max_rtt,
            Some(Duration::from_millis(expected)),
            "timed to the headers, not to the end (610 ms)"
        );
        assert_eq!(t.current_limit(), limit, "grpc-status {code}");
    }
}

#[tokio::test(start_paused = true)]
async fn timed_to_the_end_of_the_body_when_asked() {
    let t = learning();
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone())
        .key_extractor(GlobalKey)
        .measure_to_end_of_body(true);
    let res = layer
        .layer(handler("application/grpc+proto", 1, Some(0)))
        .oneshot(grpc_request("/pkg.Svc/Do"))
        .await
        .unwrap();
    advance(Duration::from_millis(600)).await;
    res.into_body().collect().await.unwrap();
    assert_eq!(t.stats().samples.max_rtt, Some(Duration::from_millis(610)));
}

#[tokio::test(start_paused = true)]
async fn a_grpc_body_ending_without_a_status_is_overload_and_a_dropped_one_nothing() {
    let t = learning();
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let res = layer
        .layer(handler("application/grpc", 1, None))
        .oneshot(grpc_request("/pkg.Svc/Do"))
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(t.current_limit(), 90, "the client sees INTERNAL");

    let t = learning();
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let res = layer
        .layer(handler("application/grpc", 1, Some(14)))
        .oneshot(grpc_request("/pkg.Svc/Do"))
        .await
        .unwrap();
    drop(res);
    assert_eq!(t.stats().samples.sample_count, 0, "cancelled: no sample");
    assert_eq!(t.current_limit(), 100);
}

#[tokio::test(start_paused = true)]
async fn grpc_web_and_plain_http_keep_the_http_rules() {
    for content_type in ["application/grpc-web", "application/json"] {
        let t = learning();
        let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
        let res = layer
            .layer(handler(content_type, 1, Some(14)))
            .oneshot(grpc_request("/pkg.Svc/Do"))
            .await
            .unwrap();
        assert_eq!(
            t.stats().samples.sample_count,
            1,
            "{content_type}: at the headers"
        );
        res.into_body().collect().await.unwrap();
        assert_eq!(t.current_limit(), 100, "{content_type}: a 200 is a success");
    }
}

#[tokio::test(start_paused = true)]
async fn rejections_follow_the_request_content_type() {
    let t = AdaptiveThrottle::new(pinned(1).build().unwrap());
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let svc = layer.layer(handler("application/grpc", 1, Some(0)));
    svc.clone().oneshot(grpc_request("/a.S/M")).await.unwrap();

    let grpc = svc.clone().oneshot(grpc_request("/a.S/M")).await.unwrap();
    assert_eq!(grpc.status(), StatusCode::OK, "trailers-only");
    let h = grpc.headers();
    assert_eq!(h["content-type"], "application/grpc");
    assert_eq!(h[GRPC_STATUS], "8");
    assert!(h[GRPC_MESSAGE]
        .to_str()
        .unwrap()
        .contains("rate_limit_exceeded"));
    assert!(h.contains_key(GRPC_RETRY_PUSHBACK_MS));
    assert!(
        grpc.body().is_end_stream(),
        "no body: the headers are the trailers"
    );

    let plain = Request::post("/a.S/M").body(()).unwrap();
    let http = svc.clone().oneshot(plain).await.unwrap();
    assert_eq!(http.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(http.headers()["content-type"], "application/json");

    // A rejection of your own answers every request alike, gRPC ones included.
    let custom = AdaptiveThrottleLayer::from_throttle(t.clone())
        .key_extractor(GlobalKey)
        .on_reject(|_: &Decision| Response::builder().status(503).body("busy").unwrap());
    let res = custom
        .layer(handler("application/grpc", 1, Some(0)))
        .oneshot(grpc_request("/a.S/M"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_axis_answers_unavailable() {
    use tower_adaptive_throttle::{ConcurrencyConfig, ThrottleConfig};
    let concurrency = ConcurrencyConfig::builder()
        .min_limit(1)
        .initial_limit(1)
        .max_limit(1)
        .build()
        .unwrap();
    let cfg = ThrottleConfig::builder()
        .min_limit(1000)
        .initial_limit(1000)
        .max_limit(1000)
        .concurrency(concurrency)
        .build()
        .unwrap();
    let t = AdaptiveThrottle::new(cfg);
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let svc = layer.layer(handler("application/grpc", 1, Some(0)));
    // The first call's response holds its slot until its trailers.
    let first = svc.clone().oneshot(grpc_request("/a.S/M")).await.unwrap();
    let second = svc.clone().oneshot(grpc_request("/a.S/M")).await.unwrap();
    assert_eq!(second.headers()[GRPC_STATUS], "14", "capacity: UNAVAILABLE");
    drop(first);
}

#[tokio::test(start_paused = true)]
async fn methods_key_and_tier_calls() {
    // One call per method per window, and the health method is critical.
    let t = AdaptiveThrottle::new(pinned(1).build().unwrap());
    let tiers = GrpcMethodTier::new().service("grpc.health.v1.Health", Tier::Critical);
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone())
        .key_extractor(GrpcMethodKey)
        .tier_extractor(tiers);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_by_handler = seen.clone();
    let svc = layer.layer(service_fn(move |req: Request<()>| {
        let tier = *req.extensions().get::<Tier>().unwrap();
        seen_by_handler.lock().unwrap().push(tier);
        async { Ok::<_, Infallible>(Response::new(String::new())) }
    }));
    let code = |res: &Response<_>| res.headers().get(GRPC_STATUS).cloned();
    let a = svc.clone().oneshot(grpc_request("/a.S/M")).await.unwrap();
    let b = svc.clone().oneshot(grpc_request("/a.S/N")).await.unwrap();
    let h = svc
        .clone()
        .oneshot(grpc_request("/grpc.health.v1.Health/Check"))
        .await
        .unwrap();
    let again = svc.clone().oneshot(grpc_request("/a.S/M")).await.unwrap();
    assert_eq!(
        (code(&a), code(&b), code(&h)),
        (None, None, None),
        "own quotas"
    );
    assert_eq!(code(&again).unwrap(), "8");
    assert_eq!(
        *seen.lock().unwrap(),
        [Tier::Standard, Tier::Standard, Tier::Critical]
    );
}
