//! What the headers tell each client is its own share of the service-wide limit, through an
//! axum router keyed by a header.

use std::time::Duration;

use axum::body::Body;
use axum::{routing::get, Router};
use http::{HeaderName, Request, StatusCode};
use tower::ServiceExt;
use tower_adaptive_throttle::http::{HeaderKey, RATELIMIT_POLICY};
use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer, ThrottleConfig};

fn app(throttle: &AdaptiveThrottle) -> Router {
    Router::new().route("/", get(|| async { "ok" })).layer(
        AdaptiveThrottleLayer::from_throttle(throttle.clone())
            .key_extractor(HeaderKey::new(HeaderName::from_static("x-client"))),
    )
}

async fn call(app: &Router, client: &str) -> http::Response<Body> {
    let req = Request::get("/")
        .header("x-client", client)
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap()
}

fn quota(res: &http::Response<Body>) -> String {
    res.headers()[RATELIMIT_POLICY].to_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn each_client_is_told_its_share_and_a_client_pacing_by_it_is_not_rejected() {
    let cfg = ThrottleConfig::builder()
        .window(Duration::from_secs(1))
        .min_limit(100)
        .initial_limit(100)
        .max_limit(100)
        .without_concurrency()
        .build()
        .unwrap();
    let t = AdaptiveThrottle::new(cfg);
    let app = app(&t);
    assert_eq!(quota(&call(&app, "a").await), r#""adaptive";q=100;w=1"#);
    for client in ["b", "c", "d"] {
        call(&app, client).await;
    }
    // Four clients active: each is told a quarter.
    let res = call(&app, "a").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(quota(&res), r#""adaptive";q=25;w=1"#);
    // Each client sends exactly its quota, evenly, for ten seconds: nobody is turned away.
    let mut rejected = 0;
    for _ in 0..250 {
        for client in ["a", "b", "c", "d"] {
            rejected +=
                u32::from(call(&app, client).await.status() == StatusCode::TOO_MANY_REQUESTS);
        }
        tokio::time::advance(Duration::from_millis(40)).await;
    }
    assert_eq!(rejected, 0);
}
