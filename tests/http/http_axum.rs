//! The layer in an axum `Router`, driven with `oneshot` and `MockConnectInfo` (no socket).
#![cfg(feature = "axum")]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::routing::get;
use axum::Router;
use http::header::RETRY_AFTER;
use http::{HeaderName, Request, Response, StatusCode};
use tower_adaptive_throttle::http::{
    ClientIp, ProxyHeader, TierHeader, TrustedProxies, RATELIMIT, RATELIMIT_POLICY,
    X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET,
};
use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer, Decision, Tier};

use crate::support::{body_json, body_text, get_with, quota, respond};

/// Echoes what the layer put into the extensions: `tier remaining allowed`.
async fn echo(tier: Tier, decision: Decision) -> String {
    format!("{tier} {} {}", decision.remaining, decision.allowed)
}

fn peer(ip: [u8; 4]) -> MockConnectInfo<SocketAddr> {
    MockConnectInfo(SocketAddr::from((ip, 40_000)))
}

async fn send(app: &Router, from: [u8; 4], req: Request<Body>) -> Response<Body> {
    respond(&app.clone().layer(peer(from)), req).await
}

#[tokio::test]
async fn each_peer_ip_has_its_own_window() {
    let t = quota(2);
    let app = Router::new()
        .route("/", get(echo))
        .layer(AdaptiveThrottleLayer::from_throttle(t.clone()));
    let a = [192, 0, 2, 1];
    let b = [192, 0, 2, 2];
    assert_eq!(
        send(&app, a, get_with("/", &[])).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, a, get_with("/", &[])).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, a, get_with("/", &[])).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let res = send(&app, b, get_with("/", &[])).await;
    assert_eq!(res.status(), StatusCode::OK, "another peer is another key");
    assert_eq!(body_text(res).await, "standard 1 true");
}

#[tokio::test]
async fn without_a_peer_address_every_request_shares_one_key() {
    let app = Router::new()
        .route("/", get(echo))
        .layer(AdaptiveThrottleLayer::from_throttle(quota(2)));
    for _ in 0..2 {
        let res = respond(&app, get_with("/", &[])).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = respond(&app, get_with("/", &[])).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

fn behind_proxies(t: &AdaptiveThrottle, header: ProxyHeader) -> Router {
    let proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
    Router::new().route("/", get(echo)).layer(
        AdaptiveThrottleLayer::from_throttle(t.clone())
            .key_extractor(ClientIp::new(proxies).header(header)),
    )
}

#[tokio::test]
async fn trusted_proxy_requests_are_keyed_by_the_forwarded_client() {
    let t = quota(2);
    let app = behind_proxies(&t, ProxyHeader::XForwardedFor);
    let proxy = [10, 0, 0, 1];
    // The client's own claim (6.6.6.6) is left of the address the proxy appended.
    let alice = [("x-forwarded-for", "6.6.6.6, 198.51.100.1")];
    let bob = [("x-forwarded-for", "198.51.100.2")];
    for _ in 0..2 {
        assert_eq!(
            send(&app, proxy, get_with("/", &alice)).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&app, proxy, get_with("/", &alice)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&app, proxy, get_with("/", &bob)).await.status(),
        StatusCode::OK,
        "another client behind the same proxy has its own window"
    );
}

#[tokio::test]
async fn trusted_proxy_forwarded_header_is_read_from_the_right() {
    let t = quota(1);
    let app = behind_proxies(&t, ProxyHeader::Forwarded);
    let proxy = [10, 0, 0, 1];
    let first = [(
        "forwarded",
        "for=6.6.6.6, for=\"198.51.100.7:5000\", for=10.0.0.9",
    )];
    let spoofed = [("forwarded", "for=7.7.7.7, for=198.51.100.7, for=10.0.0.9")];
    assert_eq!(
        send(&app, proxy, get_with("/", &first)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, proxy, get_with("/", &spoofed)).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "changing the leftmost, client-written hop does not change the key"
    );
}

#[tokio::test]
async fn untrusted_peers_cannot_choose_their_key_with_x_forwarded_for() {
    let t = quota(2);
    let app = behind_proxies(&t, ProxyHeader::XForwardedFor);
    let attacker = [203, 0, 113, 5];
    let mut statuses = Vec::new();
    for fake in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        let req = get_with("/", &[("x-forwarded-for", fake)]);
        statuses.push(send(&app, attacker, req).await.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test]
async fn tier_header_is_honoured_from_any_peer_unless_trusted_only() {
    let prio = HeaderName::from_static("x-priority");
    let open = Router::new()
        .route("/", get(echo))
        .layer(AdaptiveThrottleLayer::from_throttle(quota(10)).tier_header(prio.clone()));
    let critical = [("x-priority", "critical")];
    let res = send(&open, [203, 0, 113, 5], get_with("/", &critical)).await;
    assert_eq!(body_text(res).await, "critical 9 true");
    let res = send(
        &open,
        [203, 0, 113, 5],
        get_with("/", &[("x-priority", "vip")]),
    )
    .await;
    assert_eq!(
        body_text(res).await,
        "standard 8 true",
        "unknown values give the default"
    );

    let guarded = Router::new().route("/", get(echo)).layer(
        AdaptiveThrottleLayer::from_throttle(quota(10)).tier_extractor(
            TierHeader::new(prio)
                .default_tier(Tier::NonEssential)
                .trusted_only(TrustedProxies::parse(["10.0.0.0/8"]).unwrap()),
        ),
    );
    let res = send(&guarded, [10, 1, 2, 3], get_with("/", &critical)).await;
    assert_eq!(
        body_text(res).await,
        "critical 9 true",
        "a trusted proxy sets the tier"
    );
    let res = send(&guarded, [203, 0, 113, 5], get_with("/", &critical)).await;
    assert_eq!(
        body_text(res).await,
        "non_essential 9 true",
        "an untrusted client cannot promote itself"
    );
}

#[tokio::test]
async fn per_route_tiers_share_one_limit() {
    let t = quota(3);
    let app =
        Router::new()
            .route("/pay", get(echo))
            .route_layer(AdaptiveThrottleLayer::from_throttle(t.clone()).tier(Tier::Critical))
            .merge(Router::new().route("/feed", get(echo)).route_layer(
                AdaptiveThrottleLayer::from_throttle(t.clone()).tier(Tier::NonEssential),
            ));
    let me = [192, 0, 2, 7];
    assert_eq!(
        body_text(send(&app, me, get_with("/pay", &[])).await).await,
        "critical 2 true"
    );
    assert_eq!(
        body_text(send(&app, me, get_with("/feed", &[])).await).await,
        "non_essential 1 true"
    );
    assert_eq!(
        body_text(send(&app, me, get_with("/pay", &[])).await).await,
        "critical 0 true"
    );
    let res = send(&app, me, get_with("/feed", &[])).await;
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "one limit across the routes"
    );
    let body: serde_json::Value = body_json(res).await;
    assert_eq!(body["tier"], "non_essential");
    assert_eq!(t.stats().allowed_requests, 3);
}

#[tokio::test]
async fn admitted_and_rejected_responses_carry_the_rate_limit_fields() {
    let t = quota(2);
    let app = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(AdaptiveThrottleLayer::from_throttle(t.clone()).legacy_headers(true));
    let me = [192, 0, 2, 9];
    let res = send(&app, me, get_with("/", &[])).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h[RATELIMIT_POLICY], r#""adaptive";q=2;w=60"#);
    assert!(h[RATELIMIT]
        .to_str()
        .unwrap()
        .starts_with(r#""adaptive";r=1;t="#));
    assert_eq!(h[X_RATELIMIT_LIMIT], "2");
    assert_eq!(h[X_RATELIMIT_REMAINING], "1");
    assert!(!h.contains_key(RETRY_AFTER));
    assert_eq!(body_text(res).await, "hi");

    send(&app, me, get_with("/", &[])).await;
    let res = send(&app, me, get_with("/", &[])).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = res.headers().clone();
    assert_eq!(h[http::header::CONTENT_TYPE], "application/json");
    let retry: u64 = h[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        h[RATELIMIT],
        format!(r#""adaptive";r=0;t={retry}"#).as_str()
    );
    assert_eq!(h[RATELIMIT_POLICY], r#""adaptive";q=2;w=60"#);
    assert_eq!(h[X_RATELIMIT_REMAINING], "0");
    assert_eq!(h[X_RATELIMIT_RESET], retry.to_string().as_str());
    let body: serde_json::Value = body_json(res).await;
    assert_eq!(
        body,
        serde_json::json!({
            "limit": 2, "retry_after_secs": retry, "tier": "standard",
            "reason": "rate_limit_exceeded"
        })
    );
}

#[tokio::test]
async fn shadow_mode_serves_everything_and_exposes_the_would_be_decision() {
    let t = quota(1);
    let app = Router::new()
        .route("/", get(echo))
        .layer(AdaptiveThrottleLayer::from_throttle(t.clone()).shadow(true));
    let me = [192, 0, 2, 10];
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let res = send(&app, me, get_with("/", &[])).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            !res.headers().contains_key(RATELIMIT),
            "shadow mode is invisible"
        );
        bodies.push(body_text(res).await);
    }
    assert_eq!(
        bodies,
        ["standard 0 true", "standard 0 false", "standard 0 false"]
    );
    assert_eq!(t.stats().shadow_rejections, 2);
}

#[tokio::test]
async fn extractors_report_a_missing_layer() {
    let app = Router::new().route("/required", get(echo)).route(
        "/optional",
        get(|d: Option<Decision>, t: Option<Tier>| async move {
            format!("{} {}", d.is_some(), t.is_some())
        }),
    );
    let res = respond(&app, get_with("/required", &[])).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body_text(res).await.contains("AdaptiveThrottleLayer"));
    let res = respond(&app, get_with("/optional", &[])).await;
    assert_eq!(body_text(res).await, "false false");
}
