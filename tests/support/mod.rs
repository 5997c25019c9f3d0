//! Helpers shared by the test binaries. Each area includes this file with
//! `#[path = "../support/mod.rs"] mod support;`; no area uses every helper.
#![allow(dead_code)]

use std::fmt::Debug;
use std::net::SocketAddr;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_adaptive_throttle::{
    AdaptiveThrottle, ManualClock, ThrottleConfig, ThrottleConfigBuilder, ThrottleRegistry,
};
use tower_test::mock::{self, Handle, Mock, Spawn};

// ---------------------------------------------------------------------------------------------
// Throttles and configurations
// ---------------------------------------------------------------------------------------------

/// A throttle on `cfg` driven by a fresh manual clock, returned with the clock that moves it.
pub(crate) fn manual(cfg: ThrottleConfig) -> (AdaptiveThrottle, ManualClock) {
    let clock = ManualClock::new();
    (AdaptiveThrottle::with_clock(cfg, clock.clone()), clock)
}

/// Baldur's preset on a manual clock.
pub(crate) fn baldur() -> (AdaptiveThrottle, ManualClock) {
    manual(ThrottleConfig::baldur())
}

/// Baldur's preset with the limit pinned at `limit` (min = initial = max), so no adjustment
/// moves it; the caller sets the window and the rate strategy.
pub(crate) fn pinned(limit: u32) -> ThrottleConfigBuilder {
    ThrottleConfig::baldur_builder()
        .min_limit(limit)
        .initial_limit(limit)
        .max_limit(limit)
}

/// Baldur's ladder starting at `limit` requests per key per 60 s window, with a floor of 1.
pub(crate) fn starting_at(limit: u32) -> ThrottleConfigBuilder {
    ThrottleConfig::baldur_builder()
        .initial_limit(limit)
        .min_limit(1)
}

/// A throttle on the system clock (which reads tokio's, paused or not) admitting `limit`
/// requests per key per 60 s window: [`starting_at`] built.
pub(crate) fn quota(limit: u32) -> AdaptiveThrottle {
    AdaptiveThrottle::new(starting_at(limit).build().unwrap())
}

/// A registry holding `throttle` under `name`.
pub(crate) fn registry_with(name: &str, throttle: &AdaptiveThrottle) -> ThrottleRegistry {
    let registry = ThrottleRegistry::new();
    registry.register(name, throttle.clone());
    registry
}

// ---------------------------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------------------------

/// A request with an empty body and the given headers.
pub(crate) fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

/// `GET uri` with the given headers and an empty body.
pub(crate) fn get_with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    request("GET", uri, headers)
}

/// `GET uri` with an empty body.
pub(crate) fn get(uri: &str) -> Request<Body> {
    get_with(uri, &[])
}

/// Calls a clone of `svc` once (ready, then call) and returns its response.
pub(crate) async fn respond<S, B>(svc: &S, request: Request<B>) -> S::Response
where
    S: Service<Request<B>> + Clone,
    S::Error: Debug,
{
    svc.clone().oneshot(request).await.unwrap()
}

/// The whole of a body.
pub(crate) async fn body_bytes<B>(body: B) -> Bytes
where
    B: http_body::Body,
    B::Error: Debug,
{
    body.collect().await.unwrap().to_bytes()
}

/// A response's body as UTF-8 text.
pub(crate) async fn body_text<B>(response: Response<B>) -> String
where
    B: http_body::Body,
    B::Error: Debug,
{
    String::from_utf8(body_bytes(response.into_body()).await.to_vec()).unwrap()
}

/// A response's body parsed as JSON.
pub(crate) async fn body_json<B>(response: Response<B>) -> serde_json::Value
where
    B: http_body::Body,
    B::Error: Debug,
{
    serde_json::from_slice(&body_bytes(response.into_body()).await).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A layer around a `tower-test` mock
// ---------------------------------------------------------------------------------------------

/// What the mock inner service receives.
pub(crate) type MockReq = Request<()>;
/// What the mock inner service answers.
pub(crate) type MockRes = Response<Full<Bytes>>;

/// `layer` around a fresh mock, with the handle that receives the mock's requests.
pub(crate) fn mock_service<L>(layer: &L) -> (Spawn<L::Service>, Handle<MockReq, MockRes>)
where
    L: Layer<Mock<MockReq, MockRes>>,
{
    let (mock, handle) = mock::pair::<MockReq, MockRes>();
    (Spawn::new(layer.layer(mock)), handle)
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// Proptest's settings with `cases` cases per property, and failures saved beside the test's
/// source file (`tests/<area>/<module>.proptest-regressions`), where every run replays them
/// first. Proptest's default would look for them in `tests/proptest-regressions/<module>.txt`
/// once the module sits next to a `main.rs`.
pub(crate) fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------------

/// A listener on a free loopback port, and its address.
pub(crate) async fn local_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}
