//! The meter's rule through the throttle and the layer: the crossing reservation counts in
//! full, later ones are refused, and the overshoot stays below the largest single reservation.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response};
use proptest::prelude::*;
use tower::service_fn;
use tower::Layer;
use tower_adaptive_throttle::http::CostHeader;
use tower_adaptive_throttle::{AdaptiveThrottleLayer, Axis, Decision, RejectReason, Tier};

use super::budget_throttle;
use crate::support::{self, body_json, respond};

proptest! {
    #![proptest_config(support::proptest_config(256))]

    /// Random reservations over several windows, some held open (unsettled) while others
    /// arrive: per window, the units admitted stay within `budget + largest − 1`, and once a
    /// window's budget is crossed every later reservation in it is refused.
    #[test]
    fn admitted_cost_per_window_stays_within_budget_plus_largest_debit_minus_one(
        budget in 1u64..400,
        ops in prop::collection::vec((1u64..150, 0u64..300, any::<bool>()), 1..80),
    ) {
        let window = 1_000;
        let (t, clock) = budget_throttle(budget, Duration::from_millis(window));
        // Per window: (admitted, largest, crossed).
        let mut windows: BTreeMap<u64, (u64, u64, bool)> = BTreeMap::new();
        let mut held = Vec::new();
        for (units, advance_ms, hold) in ops {
            clock.advance(Duration::from_millis(advance_ms));
            let w = clock.now().as_millis() as u64 / window;
            let entry = windows.entry(w).or_default();
            match t.acquire_with_cost("k", Tier::Standard, units) {
                Ok(admitted) => {
                    prop_assert!(!entry.2, "admitted {units} after the budget was crossed");
                    entry.0 += units;
                    entry.1 = entry.1.max(units);
                    entry.2 = entry.0 >= budget;
                    let (_permit, reservation) = admitted.into_parts();
                    if hold {
                        held.push(reservation); // settled later, at its estimate
                    } else {
                        let actual = reservation.reserved();
                        let _ = reservation.settle(actual);
                    }
                }
                Err(denied) => {
                    prop_assert!(entry.0 >= budget, "refused with {} of {budget} spent", entry.0);
                    prop_assert_eq!(denied.reason, Some(RejectReason::BudgetExhausted));
                    prop_assert_eq!(denied.axis, Some(Axis::Cost));
                    prop_assert!(!denied.retry_after.is_zero());
                    entry.2 = true;
                }
            }
        }
        for (w, (admitted, largest, _)) in windows {
            prop_assert!(
                admitted == 0 || admitted < budget + largest,
                "window {w}: admitted {admitted} > budget {budget} + largest {largest} - 1"
            );
        }
        for r in held {
            let actual = r.reserved();
            let _ = r.settle(actual);
        }
    }
}

/// TK-023's examples: five 1-token reservations of a budget of 5, the sixth refused until the
/// window ends; 80 then 50 of 100 both admitted (the crossing one in full), the next refused.
#[test]
fn crossing_reservation_counts_in_full_and_later_ones_are_refused() {
    let (t, clock) = budget_throttle(5, Duration::from_secs(60));
    for remaining in (0..5).rev() {
        let d = t.debit_cost("k", Tier::Standard, 1);
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (5, remaining));
    }
    let d = t.debit_cost("k", Tier::Standard, 1);
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Duration::from_secs(60));
    clock.advance(Duration::from_secs(60));
    assert!(t.debit_cost("k", Tier::Standard, 1).allowed, "a new window");

    let (t, _clock) = budget_throttle(100, Duration::from_secs(60));
    assert_eq!(t.debit_cost("k", Tier::Standard, 80).remaining, 20);
    let crossing = t.debit_cost("k", Tier::Standard, 50);
    assert!(crossing.allowed);
    assert_eq!(crossing.remaining, 0);
    assert_eq!(t.cost_usage("k").unwrap().spent, 130);
    assert!(!t.debit_cost("k", Tier::Standard, 1).allowed);
}

/// ThrottleKit's golden vectors for the token budget, replayed through the HTTP layer: each
/// op is a request whose `x-cost` header is the debit, at the op's time; admitted requests
/// see the decision in their extensions, rejected ones get it in the 429.
#[tokio::test]
async fn golden_token_budget_vectors_replay_through_the_layer() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/throttlekit-golden-vectors.json"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for suite in doc["suites"].as_array().unwrap() {
        if suite["primitive"] != "tokenBudget" {
            continue;
        }
        let budget = suite["options"]["budget"].as_u64().unwrap();
        let window = suite["options"]["windowMs"].as_u64().unwrap();
        let (t, clock) = budget_throttle(budget, Duration::from_millis(window));
        let layer = AdaptiveThrottleLayer::from_throttle(t)
            .cost_estimator(CostHeader::new(http::HeaderName::from_static("x-cost")))
            .on_reject(|d: &Decision| {
                let mut res = Response::new(serde_json::to_vec(d).unwrap());
                *res.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                res
            });
        let svc = layer.layer(service_fn(|req: Request<Body>| async move {
            let d = req.extensions().get::<Decision>().copied().unwrap();
            Ok::<_, std::convert::Infallible>(Response::new(Body::from(
                serde_json::to_vec(&d).unwrap(),
            )))
        }));
        for op in suite["ops"].as_array().unwrap() {
            let now = op["now"].as_u64().unwrap();
            clock.set(Duration::from_millis(now));
            let req = Request::get("/")
                .header("x-cost", op["tokens"].as_u64().unwrap().to_string())
                .body(Body::empty())
                .unwrap();
            let res = respond(&svc, req).await;
            let status = res.status();
            let d = body_json(res).await;
            let e = &op["expect"];
            let name = suite["name"].as_str().unwrap();
            let allowed = e["allowed"].as_bool().unwrap();
            assert_eq!(status.is_success(), allowed, "{name} at {now}");
            assert_eq!(d["allowed"], e["allowed"], "{name} at {now}");
            assert_eq!(d["limit"], e["limit"], "{name} at {now}");
            assert_eq!(d["remaining"], e["remaining"], "{name} at {now}");
            assert_eq!(d["axis"], "cost", "{name} at {now}");
            let ms = |v: &serde_json::Value| {
                v["secs"].as_u64().unwrap() * 1000 + v["nanos"].as_u64().unwrap() / 1_000_000
            };
            let reset_at = e["resetAt"].as_u64().unwrap();
            assert_eq!(ms(&d["reset_after"]), reset_at - now, "{name} at {now}");
            let retry = e["retryAfterMs"].as_u64().unwrap();
            assert_eq!(ms(&d["retry_after"]), retry, "{name} at {now}");
            if !allowed {
                assert_eq!(d["reason"], "budget_exhausted");
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} token-budget ops in the vectors"
    );
}
