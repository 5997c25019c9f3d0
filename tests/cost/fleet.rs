//! Cost budgets shared by a fleet (TK-025): one debit per metered request in the store, the
//! crossing debit counted in full, settlements adjusting the store's copy.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderName, Request, Response};
use http_body_util::BodyExt;
use tower::{service_fn, Layer, ServiceExt};
use tower_adaptive_throttle::config::CostConfig;
use tower_adaptive_throttle::http::{CostHeader, HeaderKey};
use tower_adaptive_throttle::store::MemoryStore;
use tower_adaptive_throttle::{
    AdaptiveThrottle, AdaptiveThrottleLayer, Axis, ManualClock, RejectReason,
};

use super::rate_unbound;

fn node(store: &MemoryStore, clock: &ManualClock, name: &str) -> AdaptiveThrottle {
    AdaptiveThrottle::builder(
        rate_unbound()
            .cost(CostConfig::new(100).window(Duration::from_secs(60)))
            .build()
            .unwrap(),
    )
    .name("llm")
    .instance_name(name)
    .clock(clock.clone())
    .store(store.clone())
    .build()
}

/// Sends one request asking `max_tokens` whose response reports `used` tokens; returns the
/// status and, for a 429, the reason.
async fn send(t: &AdaptiveThrottle, max_tokens: u64, used: u64) -> (u16, Option<String>) {
    let svc = AdaptiveThrottleLayer::from_throttle(t.clone())
        .key_extractor(HeaderKey::new(HeaderName::from_static("x-api-key")))
        .cost_estimator(CostHeader::new(HeaderName::from_static("x-max-tokens")))
        .settle_from_header(HeaderName::from_static("x-tokens-used"))
        .layer(service_fn(move |_req: Request<Body>| async move {
            let mut res = Response::new(Body::from("ok"));
            res.headers_mut().insert("x-tokens-used", used.into());
            Ok::<_, std::convert::Infallible>(res)
        }));
    let req = Request::post("/v1/completions")
        .header("x-api-key", "alice")
        .header("x-max-tokens", max_tokens.to_string())
        .body(Body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let reason = (status == 429).then(|| String::from_utf8_lossy(&body).into_owned());
    (status, reason)
}

#[tokio::test(start_paused = true)]
async fn a_fleet_shares_one_cost_budget_and_settlements_reach_the_store() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let a = node(&store, &clock, "a");
    let b = node(&store, &clock, "b");
    // `a` reserves 60 and uses 20: 40 go back to the fleet's budget.
    assert_eq!(send(&a, 60, 20).await.0, 200);
    tokio::task::yield_now().await;
    assert_eq!(send(&b, 70, 70).await.0, 200);
    tokio::task::yield_now().await;
    // 90 used: 5 more fit only because `a`'s refund reached the store (else 130).
    assert_eq!(send(&a, 5, 5).await.0, 200);
    tokio::task::yield_now().await;
    // 95 used: 30 more cross the budget and count in full (ThrottleKit's rule: the overshoot
    // is at most the largest debit − 1)…
    assert_eq!(send(&b, 30, 30).await.0, 200);
    tokio::task::yield_now().await;
    // …and every later debit, on either instance, is refused naming the cost axis.
    for t in [&a, &b] {
        let (status, body) = send(t, 1, 1).await;
        assert_eq!(status, 429);
        assert!(body
            .unwrap()
            .contains(RejectReason::BudgetExhausted.as_str()));
    }
    // A new window renews the fleet's budget.
    clock.advance(Duration::from_secs(60));
    assert_eq!(send(&b, 50, 50).await.0, 200);
    let d = b
        .check_async("unrelated", tower_adaptive_throttle::Tier::Standard)
        .await;
    assert!(d.allowed && d.axis == Some(Axis::Rate));
}
