//! Operating the cost axis: its configuration (validation, serde), per-key usage and the top
//! spenders in stats, and its Prometheus series.

use std::time::Duration;

use tower_adaptive_throttle::config::CostConfig;
use tower_adaptive_throttle::{ConfigError, ThrottleConfig, ThrottleRegistry, Tier};

use super::budget_throttle;

#[test]
fn the_cost_section_is_validated_by_build_naming_the_value() {
    let err = ThrottleConfig::builder()
        .cost(CostConfig::new(0))
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "cost.budget must be at least 1, got 0");
    let err = ThrottleConfig::builder()
        .cost(CostConfig::new(5_000_000_000))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cost.budget must be at most 4294967295, got 5000000000"
    );
    let err = ThrottleConfig::builder()
        .cost(CostConfig::new(10).window(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::ZeroDuration {
            name: "cost.window"
        }
    );
    let err = ThrottleConfig::builder()
        .cost(CostConfig::new(10).unit("Tokens!"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("\"Tokens!\""), "{err}");
    assert!(
        ThrottleConfig::default().cost().is_none(),
        "off unless configured"
    );
}

#[test]
fn the_cost_section_round_trips_through_serde_and_is_checked_on_the_way_in() {
    let cfg = ThrottleConfig::builder()
        .cost(
            CostConfig::new(10_000)
                .window(Duration::from_secs(60))
                .unit("tokens"),
        )
        .build()
        .unwrap();
    let json = serde_json::to_value(&cfg).unwrap();
    assert_eq!(
        json["cost"],
        serde_json::json!({"budget": 10_000, "window_ms": 60_000, "unit": "tokens"})
    );
    let back: ThrottleConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, cfg);
    let partial: ThrottleConfig = serde_json::from_str(r#"{"cost": {"budget": 500}}"#).unwrap();
    let c = partial.cost().unwrap();
    assert_eq!(
        (c.budget(), c.window_length(), c.unit_name()),
        (500, Duration::from_secs(60), "tokens")
    );
    let err = serde_json::from_str::<ThrottleConfig>(r#"{"cost": {"budget": 0}}"#).unwrap_err();
    assert!(err.to_string().contains("cost.budget"), "{err}");
    assert!(
        serde_json::from_str::<ThrottleConfig>(r#"{"cost": {"budget": 5, "nope": 1}}"#).is_err()
    );
}

#[test]
fn stats_show_usage_per_key_and_the_top_spenders() {
    let (t, clock) = budget_throttle(1_000, Duration::from_secs(60));
    for (key, units) in [("a", 10), ("b", 700), ("c", 300), ("b", 400)] {
        let r = t.reserve_cost(key, Tier::Standard, units).unwrap();
        let _ = r.settle(units);
    }
    clock.advance(Duration::from_secs(15));
    let b = t.cost_usage("b").unwrap();
    assert_eq!((b.budget, b.spent, b.remaining), (1_000, 1_100, 0));
    assert_eq!(b.reset_after, Duration::from_secs(45));
    assert_eq!(t.cost_usage("nobody").unwrap().remaining, 1_000);
    let stats = t.stats().cost.unwrap();
    assert_eq!((stats.active_keys, stats.spent_in_window), (3, 1_410));
    let top: Vec<u64> = stats.top_keys.iter().map(|k| k.spent).collect();
    assert_eq!(top, vec![1_100, 300, 10]);
    assert_eq!(stats.unit, "tokens");
    let json = serde_json::to_value(t.stats()).unwrap();
    assert_eq!(json["cost"]["budget"], 1_000);
    // A new window: nothing spent, nothing listed.
    clock.advance(Duration::from_secs(60));
    assert_eq!(t.stats().cost.unwrap().active_keys, 0);
    assert!(budget_throttle(1, Duration::from_secs(1))
        .0
        .stats()
        .cost
        .is_some());
    assert!(
        tower_adaptive_throttle::AdaptiveThrottle::new(ThrottleConfig::default())
            .stats()
            .cost
            .is_none()
    );
}

#[test]
fn prometheus_exposes_cost_admitted_refunded_and_charged() {
    let (t, _clock) = budget_throttle(1_000, Duration::from_secs(60));
    let r = t.reserve_cost("k", Tier::Standard, 100).unwrap();
    let _ = r.settle(40);
    let r = t.reserve_cost("k", Tier::Standard, 10).unwrap();
    let _ = r.settle(15);
    let registry = ThrottleRegistry::new();
    registry.register("llm", t);
    let text = tower_adaptive_throttle::metrics::render(&registry);
    let lines = text.lines().map(str::to_owned).collect::<Vec<_>>();
    let scraped = prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).unwrap();
    let value = |name: &str| {
        scraped
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert_eq!(value("throttle_cost_admitted_total"), 110.0);
    assert_eq!(value("throttle_cost_refunded_total"), 60.0);
    assert_eq!(value("throttle_cost_charged_total"), 5.0);
    assert_eq!(value("throttle_cost_spent"), 55.0);
    assert_eq!(value("throttle_cost_budget"), 1_000.0);
}

#[test]
fn the_cost_section_is_fixed_when_the_throttle_is_built() {
    let (t, _clock) = budget_throttle(100, Duration::from_secs(60));
    let without = ThrottleConfig::baldur();
    let old = t.swap_config(without);
    assert_eq!(old.cost().unwrap().budget(), 100);
    assert_eq!(
        t.config().cost().unwrap().budget(),
        100,
        "kept from the running config"
    );
}
