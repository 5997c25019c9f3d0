//! JSON views for the admin routes: durations as milliseconds.

use serde_json::{json, Value};

use crate::throttle::AdaptiveThrottle;

/// One throttle's state as the admin JSON shows it.
pub(super) fn throttle(name: &str, t: &AdaptiveThrottle) -> Value {
    let stats = serde_json::to_value(t.stats()).unwrap_or(Value::Null);
    let counters = serde_json::to_value(t.counters()).unwrap_or(Value::Null);
    to_ms(json!({
        "name": name,
        "stats": stats,
        "counters": counters,
        "concurrency": t.concurrency_stats().map(|c| json!({
            "limit": c.limit,
            "inflight": c.inflight,
            "tier_limits": c.tier_limits,
            "admitted": c.admitted,
            "rejected": c.rejected,
            "samples": c.samples,
            "drops": c.drops,
        })),
        "audit_dropped": t.audit().dropped(),
    }))
}

/// Replaces every serialised `Duration` (`{"secs": s, "nanos": n}`) with milliseconds.
pub(super) fn to_ms(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            if map.len() == 2 {
                if let (Some(secs), Some(nanos)) = (
                    map.get("secs").and_then(Value::as_u64),
                    map.get("nanos").and_then(Value::as_u64),
                ) {
                    return json!(secs as f64 * 1000.0 + nanos as f64 / 1e6);
                }
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, to_ms(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(to_ms).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_milliseconds() {
        let v = serde_json::to_value(std::time::Duration::from_micros(1500)).unwrap();
        assert_eq!(to_ms(json!({"a": [v]})), json!({"a": [1.5]}));
    }
}
