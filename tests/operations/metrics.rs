//! The exposition parses with a real Prometheus parser and moves as requests flow.
#![cfg(feature = "metrics")]

use std::time::Duration;

use tower_adaptive_throttle::{ErrorBudget, ThrottleConfig, ThrottleRegistry, Tier};

use crate::support::{manual, registry_with, starting_at};

fn parse(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid exposition")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => h.iter().map(|b| b.count).sum(),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

#[test]
fn exposition_parses_and_counters_move_with_traffic() {
    let (t, _clock) = manual(starting_at(2).build().unwrap());
    let registry = registry_with("api", &t);

    let before = parse(&tower_adaptive_throttle::metrics::render(&registry));
    assert_eq!(
        value(&before, "throttle_limit", &[("throttle", "api")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &before,
            "throttle_requests_total",
            &[
                ("throttle", "api"),
                ("tier", "standard"),
                ("result", "allowed")
            ]
        ),
        Some(0.0)
    );

    for _ in 0..5 {
        t.check("k", Tier::Standard);
    }
    t.record_response(Duration::from_millis(30));
    t.record_response(Duration::from_millis(700));
    t.governance().set_error_budget(ErrorBudget::Critical); // cap 50 % of 2: the limit is cut to 1
    t.check("k", Tier::NonEssential);

    let text = tower_adaptive_throttle::metrics::render(&registry);
    let after = parse(&text);
    let get = |name, labels: &[(&str, &str)]| value(&after, name, labels);
    let api = ("throttle", "api");
    assert_eq!(
        get(
            "throttle_requests_total",
            &[api, ("tier", "standard"), ("result", "allowed")]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(
            "throttle_requests_total",
            &[api, ("tier", "standard"), ("result", "rejected")]
        ),
        Some(3.0)
    );
    assert_eq!(
        get(
            "throttle_rejections_total",
            &[
                api,
                ("reason", "error_budget_critical_non_essential_blocked")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(
            "throttle_rejections_total",
            &[api, ("reason", "rate_limit_exceeded")]
        ),
        Some(3.0)
    );
    assert!(
        text.contains("throttle_rtt_seconds_count{throttle=\"api\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("throttle_rtt_seconds_bucket{le=\"0.05\",throttle=\"api\"} 1")
            || text.contains("throttle_rtt_seconds_bucket{throttle=\"api\",le=\"0.05\"} 1"),
        "{text}"
    );
    assert_eq!(
        get("throttle_regime", &[api, ("regime", "throttling")]),
        Some(1.0)
    );
    assert!(get(
        "throttle_limit_changes_total",
        &[api, ("direction", "down")]
    )
    .is_some());
}

#[test]
fn concurrency_axis_gauges_move_with_permits() {
    let registry = ThrottleRegistry::new();
    let baldur = registry.get_or_create("baldur", ThrottleConfig::baldur());
    let t = registry.get_or_create("svc", ThrottleConfig::default());
    let permit = t.acquire("k", Tier::Critical).expect("admitted");
    let scrape = parse(&tower_adaptive_throttle::metrics::render(&registry));
    assert_eq!(
        value(&scrape, "throttle_inflight", &[("throttle", "svc")]),
        Some(1.0)
    );
    let limit = value(
        &scrape,
        "throttle_concurrency_limit",
        &[("throttle", "svc")],
    )
    .unwrap();
    assert!(limit >= 1.0);
    assert_eq!(
        value(&scrape, "throttle_inflight", &[("throttle", "baldur")]),
        None,
        "Baldur's preset has no concurrency axis"
    );
    drop(permit);
    let scrape = parse(&tower_adaptive_throttle::metrics::render(&registry));
    assert_eq!(
        value(&scrape, "throttle_inflight", &[("throttle", "svc")]),
        Some(0.0)
    );
    drop(baldur);
}
