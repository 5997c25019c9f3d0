//! The admin router: JSON shapes, authorisation, audited mutations, the event stream.
#![cfg(feature = "axum")]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower_adaptive_throttle::admin::{self, AdminOptions};
use tower_adaptive_throttle::audit::AuditSource;
use tower_adaptive_throttle::{AdaptiveThrottle, ThrottleConfig, ThrottleRegistry};

use crate::support::{body_bytes, body_text, get, get_with, pinned, registry_with, respond};

const TOKEN: &str = "test-token";

fn setup() -> (ThrottleRegistry, AdaptiveThrottle) {
    let t = AdaptiveThrottle::new(ThrottleConfig::baldur());
    (registry_with("api", &t), t)
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = respond(app, req).await;
    let status = res.status();
    let bytes = body_bytes(res.into_body()).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(uri: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(uri)
        .header("content-type", "application/json")
        .header("x-throttle-actor", "alice");
    if let Some(token) = token {
        b = b.header("authorization", format!("Bearer {token}"));
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn stats_json_shapes() {
    let (registry, t) = setup();
    t.record_response(Duration::from_millis(600));
    let app = admin::router(registry);
    let (status, list) = call(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["name"], "api");
    assert_eq!(list[0]["stats"]["current_limit"], 70);
    assert_eq!(list[0]["stats"]["regime"], "throttling");
    assert_eq!(list[0]["stats"]["smoothed_rtt"], 600.0, "durations in ms");
    let (status, one) = call(&app, get("/api")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["stats"]["last_change"]["reason"], "sla_critical");
    assert_eq!(one["stats"]["governance"]["breaker"], "closed");
    assert!(
        one["concurrency"].is_null(),
        "Baldur's preset has no concurrency axis"
    );
    assert!(one["counters"]["rtt"]["count"].as_u64() == Some(1));
    let (status, audit) = call(&app, get("/api/audit?limit=5")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"]["type"] == "limit_changed"));
    let (status, _) = call(&app, get("/missing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_and_console_are_served() {
    let (registry, _t) = setup();
    let app = admin::router(registry);
    let res = respond(&app, get("/metrics")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = body_text(res).await;
    assert!(
        text.contains("throttle_limit{throttle=\"api\"} 100"),
        "{text}"
    );
    let res = respond(&app, get("/console")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = body_text(res).await;
    assert!(html.contains("<svg id=\"chart\""));
    assert!(
        !html.contains("http://") || html.contains("http://www.w3.org/2000/svg"),
        "no external resources"
    );
}

#[tokio::test]
async fn mutations_need_a_configured_token() {
    let (registry, t) = setup();
    // No token configured: operator routes refuse everyone.
    let app = admin::router(registry.clone());
    let (status, body) = call(
        &app,
        post("/api/kill-switch", Some(TOKEN), r#"{"on":true}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("no bearer token"));
    assert!(!t.governance().state().kill_switch);
    // Token configured: wrong or missing tokens are refused, the right one accepted.
    let app = AdminOptions::new(registry).bearer_token(TOKEN).router();
    for bad in [None, Some("wrong"), Some("test-token-longer")] {
        let (status, _) = call(&app, post("/api/kill-switch", bad, r#"{"on":true}"#)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    let (status, _) = call(&app, get("/api/keys/user-1")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "per-key status is protected too"
    );
    let (status, body) = call(
        &app,
        post("/api/kill-switch", Some(TOKEN), r#"{"on":true}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["stats"]["regime"], "frozen");
    assert!(t.governance().state().kill_switch);
}

#[tokio::test]
async fn mutations_take_effect_and_are_audited_with_their_actor() {
    let (registry, t) = setup();
    let app = AdminOptions::new(registry).bearer_token(TOKEN).router();
    let (status, _) = call(&app, post("/api/emergency", Some(TOKEN), r#"{"level":2}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.current_limit(), 50);
    let (status, body) = call(&app, post("/api/emergency", Some(TOKEN), r#"{"level":7}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().contains("got 7"));
    let (status, _) = call(&app, post("/api/disable", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.is_disabled());
    let (status, _) = call(&app, post("/api/enable", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::OK);
    let cfg = r#"{"initial_limit": 80, "min_limit": 20, "max_limit": 400}"#;
    let req = Request::put("/api/config")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-throttle-actor", "bob")
        .body(Body::from(cfg))
        .unwrap();
    let (status, _) = call(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.config().max_limit(), 400);
    let bad = Request::put("/api/config")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(r#"{"min_limit": 0}"#))
        .unwrap();
    let (status, body) = call(&app, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"].as_str().unwrap().contains("min_limit"),
        "{body}"
    );
    let (status, _) = call(&app, post("/api/rollback", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.governance().state().emergency_level, 0);

    let entries = t.audit().recent(100);
    let source_of = |kind: &str| {
        entries
            .iter()
            .find(|e| e.event.kind() == kind)
            .map(|e| e.source.clone())
    };
    assert_eq!(
        source_of("emergency_level_changed"),
        Some(AuditSource::Operator("alice".into()))
    );
    assert_eq!(
        source_of("enabled_changed"),
        Some(AuditSource::Operator("alice".into()))
    );
    assert_eq!(
        source_of("config_swapped"),
        Some(AuditSource::Operator("bob".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn event_stream_delivers_a_limit_change_within_one_sample_interval() {
    let (registry, t) = setup();
    let app = admin::router(registry);
    let res = respond(&app, get("/events")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    // The first message is a tick snapshot.
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(
        first.contains("event: tick") && first.contains("\"limit\":100"),
        "{first}"
    );

    let started = tokio::time::Instant::now();
    t.record_response(Duration::from_millis(600));
    let deadline = t.config().sample_interval();
    let found = tokio::time::timeout(deadline, async {
        loop {
            let frame = body.frame().await.unwrap().unwrap();
            let text = String::from_utf8_lossy(frame.data_ref().unwrap()).to_string();
            if text.contains("event: throttle") && text.contains("limit_changed") {
                return text;
            }
        }
    })
    .await
    .expect("a limit change within one sample interval");
    assert!(
        found.contains("\"new\":70") && found.contains("\"throttle\":\"api\""),
        "{found}"
    );
    assert!(started.elapsed() <= deadline);
}

#[cfg(feature = "dlq")]
#[tokio::test(start_paused = true)]
async fn dead_letter_routes_list_replay_and_purge_behind_the_token_and_events_reach_the_audit() {
    use tower_adaptive_throttle::dlq::{
        CaptureOptions, DeadLetterLayer, DeadLetterQueue, Replayer,
    };
    use tower_adaptive_throttle::http::GlobalKey;
    use tower_adaptive_throttle::AdaptiveThrottleLayer;

    let t = AdaptiveThrottle::new(pinned(1).window(Duration::from_secs(1)).build().unwrap());
    let registry = registry_with("api", &t);
    let dlq = DeadLetterQueue::default();
    let app = Router::new()
        .route("/report", axum::routing::get(|| async { "report" }))
        .layer(AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey))
        .layer(DeadLetterLayer::new(dlq.clone(), CaptureOptions::new()));
    for _ in 0..3 {
        respond(&app, get_with("/report", &[("content-length", "0")])).await;
    }
    assert_eq!(dlq.len(), 2);

    let admin = AdminOptions::new(registry)
        .bearer_token(TOKEN)
        .replayer(Replayer::<_, Body>::new(
            dlq.clone(),
            t.clone(),
            app.clone(),
        ))
        .router();
    let get_dlq = |token: Option<&str>| match token {
        Some(token) => get_with("/dlq", &[("authorization", &format!("Bearer {token}"))]),
        None => get("/dlq"),
    };
    let (status, _) = call(&admin, get_dlq(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, listed) = call(&admin, get_dlq(Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["stats"]["pending"], 2);
    assert_eq!(listed["pending"][0]["uri"], "/report");
    assert_eq!(listed["pending"][0]["reason"], "rate_limit_exceeded");

    tokio::time::advance(Duration::from_secs(2)).await;
    let (status, report) = call(&admin, post("/dlq/replay", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(report["replayed"].as_u64().unwrap() >= 1, "{report}");
    let (status, purged) = call(&admin, post("/dlq/purge", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::OK);
    // One slot per second: the second replay is throttled again, retried, and (after its
    // attempts) permanently failed; nothing is lost.
    let s = dlq.stats();
    assert_eq!(s.captured, 2);
    assert_eq!(
        s.replayed + s.exhausted + purged["purged"].as_u64().unwrap(),
        2,
        "every parked request ends replayed, permanently failed or purged: {s:?}"
    );

    tokio::task::yield_now().await;
    let kinds: Vec<&str> = dlq
        .audit()
        .recent(100)
        .iter()
        .map(|e| e.event.kind())
        .collect();
    assert!(kinds.contains(&"rejection_stored"), "{kinds:?}");
    assert!(kinds.contains(&"replay_completed"), "{kinds:?}");
}

#[tokio::test]
async fn event_stream_lets_go_of_the_throttle_when_the_client_leaves() {
    let (registry, t) = setup();
    let app = admin::router(registry);
    let res = respond(&app, get("/events")).await;
    let mut body = res.into_body();
    let _tick = body.frame().await.unwrap().unwrap();
    assert_eq!(t.subscriber_count(), 1);
    drop(body);
    // No event ever comes on this quiet throttle; the forwarder still ends.
    for _ in 0..100 {
        if t.subscriber_count() == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(t.subscriber_count(), 0);
}

#[tokio::test]
async fn stats_include_the_concurrency_axis_when_configured() {
    let registry = ThrottleRegistry::new();
    let t = registry.get_or_create("svc", ThrottleConfig::default());
    let _permit = t
        .acquire("k", tower_adaptive_throttle::Tier::Critical)
        .unwrap();
    let (status, one) = call(&admin::router(registry), get("/svc")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["concurrency"]["inflight"], 1);
    assert!(one["concurrency"]["limit"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn the_credential_is_checked_before_the_body_is_read() {
    let (registry, t) = setup();
    let app = AdminOptions::new(registry).bearer_token(TOKEN).router();
    let huge = "x".repeat(3 * 1024 * 1024);
    let requests = [
        // Not JSON at all, with a content type the JSON extractor refuses (415 if judged).
        Request::post("/api/kill-switch")
            .header("content-type", "text/plain")
            .body(Body::from("on"))
            .unwrap(),
        // Malformed JSON (400 if judged) and the wrong shape (422, naming the schema).
        post("/api/emergency", None, "{"),
        post("/api/emergency", None, r#"{"level":"high"}"#),
        // Larger than the body limit (413 after buffering it, if judged).
        Request::put("/api/config").body(Body::from(huge)).unwrap(),
        post("/dlq/replay", Some("wrong"), "{"),
    ];
    for req in requests {
        let uri = req.uri().clone();
        let (status, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {body}");
        assert!(
            !body.to_string().contains("level"),
            "{uri}: nothing about the schema leaks: {body}"
        );
    }
    assert!(!t.governance().state().kill_switch);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let (registry, t) = setup();
    let app = AdminOptions::new(registry).bearer_token(TOKEN).router();
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let req = Request::post("/api/disable")
            .header("authorization", format!("{scheme} {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let (status, _) = call(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{scheme}");
        assert!(t.is_disabled());
        t.enable();
    }
    let req = Request::post("/api/disable")
        .header("authorization", format!("Basic {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, req).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_swap_refuses_the_settings_fixed_at_build_naming_them() {
    let (registry, t) = setup();
    let app = AdminOptions::new(registry).bearer_token(TOKEN).router();
    let put = |body: &str| {
        Request::put("/api/config")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let running_keys = t.config().max_keys();
    let (status, body) = call(&app, put(r#"{"max_keys": 64, "max_limit": 5000}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("max_keys ({running_keys} → 64)")),
        "{error}"
    );
    assert_eq!(t.config().max_keys(), running_keys, "nothing applied");
    assert_ne!(t.config().max_limit(), 5000, "nothing applied");
    let (status, body) = call(&app, put(r#"{"event_capacity": 8}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("event_capacity"));
    // Turning the concurrency axis on (the preset has it off) cannot be applied either.
    let (status, body) = call(&app, put(r#"{"concurrency": {}}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("concurrency (off → on)"));
    // The same value, or leaving them out, is fine.
    let same = format!(r#"{{"max_keys": {running_keys}, "max_limit": 5000}}"#);
    let (status, body) = call(&app, put(&same)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(t.config().max_limit(), 5000);
}

#[tokio::test]
async fn read_routes_are_open_by_default_and_can_be_put_behind_the_token() {
    let reads = [
        "/",
        "/api",
        "/api/audit",
        "/api/history",
        "/metrics",
        "/console",
    ];
    let (registry, _t) = setup();
    let open = AdminOptions::new(registry.clone())
        .bearer_token(TOKEN)
        .router();
    for uri in reads {
        assert_eq!(call(&open, get(uri)).await.0, StatusCode::OK, "{uri}");
    }
    let closed = AdminOptions::new(registry)
        .bearer_token(TOKEN)
        .reads_need_token(true)
        .router();
    for uri in reads.into_iter().chain(["/events"]) {
        assert_eq!(
            call(&closed, get(uri)).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    for uri in reads {
        let req = Request::get(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&closed, req).await.0, StatusCode::OK, "{uri}");
    }
}
