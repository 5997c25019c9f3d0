//! The admin router's history: one snapshot of every throttle per interval from the moment the
//! router is built, at most `HISTORY_CAPACITY` kept, throttles registered later included, the
//! timeline's marks, the event stream continuing it with no gap or duplicate, and the sampler
//! ending with the router. All on paused tokio time: the runtime jumps from one snapshot to the
//! next.
#![cfg(feature = "axum")]

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower_adaptive_throttle::admin::{self, AdminOptions, Timeline, HISTORY_CAPACITY};
use tower_adaptive_throttle::{AdaptiveThrottle, ThrottleConfig, Tier};

use crate::support::{body_json, get, get_with, registry_with, respond};

async fn history(app: &Router, name: &str) -> Value {
    let res = respond(app, get(&format!("/{name}/history"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    body_json(res).await
}

fn samples(history: &Value) -> &Vec<Value> {
    history["samples"].as_array().expect("samples")
}

fn seqs(history: &Value) -> Vec<u64> {
    samples(history)
        .iter()
        .map(|s| s["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn history_keeps_one_snapshot_per_interval_and_the_last_600() {
    assert_eq!(HISTORY_CAPACITY, 600);
    let t = AdaptiveThrottle::new(ThrottleConfig::default());
    let app = admin::router(registry_with("api", &t));

    // At once: the snapshot taken when the router was built.
    let h = history(&app, "api").await;
    assert_eq!(h["interval_ms"], 1000.0);
    assert_eq!(h["capacity"], 600);
    assert_eq!(seqs(&h), [1]);
    let first = &samples(&h)[0];
    assert_eq!(first["limit"], t.current_limit());
    assert!(first["inflight_limit"].as_u64().is_some(), "{first}");
    assert_eq!(first["inflight"], 0);
    assert!(
        first["admitted_per_s"].is_null(),
        "no rate before a second snapshot"
    );

    // Ten requests admitted in the first second: the second snapshot's rate.
    for _ in 0..10 {
        t.check("client", Tier::Standard);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let h = history(&app, "api").await;
    assert_eq!(seqs(&h), [1, 2]);
    assert_eq!(samples(&h)[1]["admitted_per_s"], 10.0);
    assert_eq!(samples(&h)[1]["rejected_per_s"], 0.0);
    let t0 = samples(&h)[0]["t"].as_f64().unwrap();
    let t1 = samples(&h)[1]["t"].as_f64().unwrap();
    assert!(
        (t1 - t0 - 1000.0).abs() < 1.0,
        "one second apart: {t0} {t1}"
    );

    // Eleven minutes later (with nobody reading): the last 600, consecutive, one second apart.
    tokio::time::sleep(Duration::from_secs(660)).await;
    let h = history(&app, "api").await;
    let seqs = seqs(&h);
    assert_eq!(seqs.len(), 600, "the ring is bounded");
    assert_eq!(h["last_seq"], *seqs.last().unwrap());
    assert_eq!(*seqs.last().unwrap(), 2 + 660);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gap");
    let times: Vec<f64> = samples(&h)
        .iter()
        .map(|s| s["t"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| (w[1] - w[0] - 1000.0).abs() < 1.0));

    let res = respond(&app, get("/missing/history")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn a_throttle_registered_later_gets_its_own_history() {
    let api = AdaptiveThrottle::new(ThrottleConfig::baldur());
    let registry = registry_with("api", &api);
    let app = AdminOptions::new(registry.clone())
        .history_interval(Duration::from_millis(100))
        .router();
    tokio::time::sleep(Duration::from_millis(550)).await;
    let late = AdaptiveThrottle::new(ThrottleConfig::baldur());
    registry.register("late", late.clone());
    tokio::time::sleep(Duration::from_millis(400)).await;

    let h = history(&app, "api").await;
    assert_eq!(h["interval_ms"], 100.0);
    assert_eq!(seqs(&h), (1..=10).collect::<Vec<_>>());
    assert!(
        samples(&h)[0]["inflight_limit"].is_null(),
        "Baldur's preset has no in-flight limit"
    );
    let h = history(&app, "late").await;
    assert_eq!(
        seqs(&h),
        [7, 8, 9, 10],
        "from the first snapshot after it was registered"
    );
}

#[tokio::test(start_paused = true)]
async fn marks_on_the_timeline_are_in_the_history_and_the_stream() {
    let t = AdaptiveThrottle::new(ThrottleConfig::baldur());
    let timeline = Timeline::new();
    timeline.mark("steady");
    let app = AdminOptions::new(registry_with("api", &t))
        .timeline(timeline.clone())
        .router();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    timeline.mark("capacity drop");

    let res = respond(&app, get("/events?since=3")).await;
    let mut body = res.into_body();
    // The round after the mark carries it.
    let round = next_sample(&mut body).await;
    assert_eq!(round["seq"], 4);
    assert_eq!(round["markers"][0]["label"], "capacity drop");

    let h = history(&app, "api").await;
    let markers = h["markers"].as_array().unwrap();
    let labels: Vec<&str> = markers
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["steady", "capacity drop"]);
    // Each mark at its own time: the second between the third and the fourth snapshot.
    let t_of = |seq: u64| {
        samples(&h).iter().find(|s| s["seq"] == seq).unwrap()["t"]
            .as_f64()
            .unwrap()
    };
    let drop_t = markers[1]["t"].as_f64().unwrap();
    assert!(
        (drop_t - (t_of(3) + 500.0)).abs() < 1.0,
        "{drop_t} {}",
        t_of(3)
    );
    assert!(markers[0]["t"].as_f64().unwrap() <= t_of(1));

    // Labels are cut to 120 characters.
    timeline.mark("x".repeat(500));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let h = history(&app, "api").await;
    assert_eq!(h["markers"][2]["label"].as_str().unwrap().len(), 120);
}

/// The next `sample` message of an event stream, parsed (other messages are skipped).
async fn next_sample(body: &mut Body) -> Value {
    next_sample_with_id(body).await.1
}

async fn next_sample_with_id(body: &mut Body) -> (u64, Value) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let frame = body.frame().await.unwrap().unwrap();
            let text = String::from_utf8_lossy(frame.data_ref().unwrap()).to_string();
            if !text.contains("event: sample") {
                continue;
            }
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {text}"))
                    .to_owned()
            };
            let round: Value = serde_json::from_str(&field("data: ")).unwrap();
            // The id names the server's run (its epoch) and the round.
            let id = field("id: ");
            let (epoch, seq) = id.split_once(':').expect("epoch:seq");
            assert_eq!(epoch, round["epoch"].to_string());
            return (seq.parse().unwrap(), round);
        }
    })
    .await
    .expect("a sample within five seconds")
}

#[tokio::test(start_paused = true)]
async fn the_stream_continues_the_history_with_no_gap_or_duplicate() {
    let t = AdaptiveThrottle::new(ThrottleConfig::default());
    let other = AdaptiveThrottle::new(ThrottleConfig::baldur());
    let registry = registry_with("api", &t);
    registry.register("other", other);
    let app = admin::router(registry);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let h = history(&app, "api").await;
    let last = h["last_seq"].as_u64().unwrap();
    assert_eq!(last, 6);

    // A page that read the history up to round 3 (say) continues from round 4: the kept rounds
    // first, then the live ones, each once, in order, numbered by their message id.
    let res = respond(&app, get("/events?since=3&throttle=api")).await;
    let mut body = res.into_body();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let (id, round) = next_sample_with_id(&mut body).await;
        assert_eq!(round["seq"], id);
        let throttles = round["throttles"].as_array().unwrap();
        assert_eq!(throttles.len(), 1, "filtered to one throttle: {round}");
        assert_eq!(throttles[0]["throttle"], "api");
        assert!(throttles[0]["limit"].as_u64().is_some());
        seen.push(id);
    }
    assert_eq!(seen, [4, 5, 6, 7, 8, 9]);

    // A reconnecting EventSource sends the last id it saw; it wins over an older `since`.
    let epoch = h["epoch"].as_u64().unwrap();
    let last_event = format!("{epoch}:8");
    let res = respond(
        &app,
        get_with("/events?since=1", &[("last-event-id", &last_event)]),
    )
    .await;
    let mut body = res.into_body();
    let (id, round) = next_sample_with_id(&mut body).await;
    assert_eq!(id, 9);
    assert_eq!(round["epoch"], epoch);
    assert_eq!(round["throttles"].as_array().unwrap().len(), 2);

    // A reader of an earlier run of the server (another epoch), or of rounds not taken yet,
    // gets every round kept.
    for query in [
        format!("/events?since=8&epoch={}", epoch - 1),
        "/events?since=1000".to_owned(),
    ] {
        let mut body = respond(&app, get(&query)).await.into_body();
        assert_eq!(next_sample_with_id(&mut body).await.0, 1, "{query}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_sampler_ends_when_the_router_is_dropped() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let t = AdaptiveThrottle::new(ThrottleConfig::baldur());
    let app = admin::router(registry_with("api", &t));
    assert_eq!(metrics.num_alive_tasks(), before + 1, "one sampler task");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        samples(&history(&app, "api").await).len(),
        3,
        "it samples unread"
    );
    drop(app);
    // It notices at its next snapshot.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(metrics.num_alive_tasks(), before, "the sampler ended");
}

#[test]
fn a_router_built_outside_a_runtime_samples_from_its_first_request() {
    let t = AdaptiveThrottle::new(ThrottleConfig::baldur());
    let app = admin::router(registry_with("api", &t));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(seqs(&history(&app, "api").await), [1]);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(seqs(&history(&app, "api").await), [1, 2, 3]);
    });
}

#[tokio::test]
async fn a_trailing_slash_works_as_without_when_nested_as_the_readme_shows() {
    let t = AdaptiveThrottle::new(ThrottleConfig::baldur());
    let app = Router::new()
        .route("/", axum::routing::get(|| async { "hello" }))
        .nest_service("/admin/throttle", admin::router(registry_with("api", &t)));
    let without = respond(&app, get("/admin/throttle")).await;
    assert_eq!(without.status(), StatusCode::OK);
    let without = body_json(without).await;
    let with = respond(&app, get("/admin/throttle/")).await;
    assert_eq!(with.status(), StatusCode::OK);
    let with = body_json(with).await;
    assert_eq!(with[0]["name"], "api");
    assert_eq!(with, without);
    for path in [
        "/admin/throttle/api",
        "/admin/throttle/api/history",
        "/admin/throttle/console",
        "/admin/throttle/metrics",
    ] {
        let res = respond(&app, get(path)).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    // The app's own routes are untouched.
    assert_eq!(respond(&app, get("/")).await.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn the_console_page_embeds_the_history() {
    let t = AdaptiveThrottle::new(ThrottleConfig::baldur());
    let timeline = Timeline::new();
    let app = AdminOptions::new(registry_with("api", &t))
        .timeline(timeline.clone())
        .router();
    timeline.mark("</script><script>alert(1)</script>");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let res = respond(&app, get("/console")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(!html.contains("/*HISTORY*/") && !html.contains("/*INITIAL_STATE*/"));
    let start = html
        .find(r#"<script id="history" type="application/json">"#)
        .unwrap();
    let json = &html[start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
    let history: Value = serde_json::from_str(json).expect("the embedded history parses");
    assert_eq!(history["last_seq"], 4);
    assert_eq!(history["throttles"]["api"].as_array().unwrap().len(), 4);
    assert_eq!(
        history["markers"][0]["label"], "</script><script>alert(1)</script>",
        "a label cannot end the script element early"
    );
}
