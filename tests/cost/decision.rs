//! One decision across concurrency → rate → cost: ThrottleKit's algebra, the axis that binds,
//! nothing held after a denial, and a 429 whose fields describe the cost axis.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderName, Request, Response, StatusCode};
use proptest::prelude::*;
use tower::{service_fn, Layer, ServiceExt};
use tower_adaptive_throttle::config::{CostConfig, RateStrategy, TierShares};
use tower_adaptive_throttle::http::{CostHeader, HeaderKey, ThrottleRejected};
use tower_adaptive_throttle::{
    AdaptiveThrottle, AdaptiveThrottleLayer, Admitted, Axis, ConcurrencyConfig, Decision,
    ManualClock, RejectReason, Tier,
};

use crate::support::{self, body_json, body_text};

fn decision() -> impl Strategy<Value = Decision> {
    (
        any::<bool>(),
        any::<u32>(),
        any::<u32>(),
        0u64..1_000_000,
        0u64..1_000_000,
    )
        .prop_map(|(allowed, limit, remaining, retry, reset)| {
            let mut d = Decision::unlimited(Tier::Standard);
            d.allowed = allowed;
            d.limit = limit;
            d.remaining = if allowed { remaining.min(limit) } else { 0 };
            d.retry_after = if allowed {
                Duration::ZERO
            } else {
                Duration::from_millis(retry.max(1))
            };
            d.reset_after = Duration::from_millis(reset);
            d.axis = Some(if allowed { Axis::Rate } else { Axis::Cost });
            d.reason = (!allowed).then_some(RejectReason::BudgetExhausted);
            d
        })
}

/// The five integers (and `allowed`) the algebra defines.
fn numbers(d: &Decision) -> (bool, u32, u32, Duration, Duration) {
    (
        d.allowed,
        d.limit,
        d.remaining,
        d.retry_after,
        d.reset_after,
    )
}

proptest! {
    #![proptest_config(support::proptest_config(256))]

    /// allowed = and; limit and remaining = min; retry and reset = max: commutative,
    /// associative, idempotent, with the unlimited decision as identity.
    #[test]
    fn combine_is_and_min_max(a in decision(), b in decision(), c in decision()) {
        let ab = a.combine(b);
        prop_assert_eq!(ab.allowed, a.allowed && b.allowed);
        prop_assert_eq!(ab.limit, a.limit.min(b.limit));
        prop_assert_eq!(ab.remaining, a.remaining.min(b.remaining));
        prop_assert_eq!(ab.retry_after, a.retry_after.max(b.retry_after));
        prop_assert_eq!(ab.reset_after, a.reset_after.max(b.reset_after));
        prop_assert_eq!(numbers(&ab), numbers(&b.combine(a)));
        prop_assert_eq!(numbers(&ab.combine(c)), numbers(&a.combine(b.combine(c))));
        prop_assert_eq!(numbers(&a.combine(a)), numbers(&a));
        prop_assert_eq!(numbers(&Decision::unlimited(Tier::Standard).combine(a)), numbers(&a));
        // The first denying side names the axis and the reason.
        if !a.allowed {
            prop_assert_eq!((ab.axis, ab.reason), (a.axis, a.reason));
        } else if !b.allowed {
            prop_assert_eq!((ab.axis, ab.reason), (b.axis, b.reason));
        }
    }
}

/// Three axes: 2 in flight, 3 requests per key per minute, a budget of 100 tokens per minute.
fn three_axes() -> (AdaptiveThrottle, ManualClock) {
    support::manual(
        support::pinned(3)
            .window(Duration::from_secs(60))
            .rate_strategy(RateStrategy::FixedWindow)
            .concurrency(
                ConcurrencyConfig::builder()
                    .min_limit(2)
                    .initial_limit(2)
                    .max_limit(2)
                    .tier_shares(TierShares::equal())
                    .build()
                    .unwrap(),
            )
            .cost(CostConfig::new(100))
            .build()
            .unwrap(),
    )
}

/// Completes an admitted request at its estimate (dropping the reservation would refund it).
fn done(a: Admitted) {
    let (permit, reservation) = a.into_parts();
    let units = reservation.reserved();
    let _ = reservation.settle(units);
    drop(permit);
}

#[test]
fn the_first_denying_axis_binds_and_nothing_is_held_after_a_denial() {
    let (t, _clock) = three_axes();
    let inflight = |t: &AdaptiveThrottle| t.concurrency_stats().unwrap().inflight;

    // Admitted: the axis with the least room left binds (cost: 10 tokens left of 100; rate: 2
    // requests of 3, compared as the algebra does, by number).
    let a = t.acquire_with_cost("k", Tier::Standard, 90).unwrap();
    assert_eq!(a.decision().axis, Some(Axis::Rate));
    assert_eq!(a.decision().remaining, 2);
    let b = t.acquire_with_cost("j", Tier::Standard, 99).unwrap();
    assert_eq!(
        b.decision().axis,
        Some(Axis::Cost),
        "1 token left < 2 requests left"
    );
    assert_eq!(b.decision().remaining, 1);

    // Concurrency first: two in flight.
    let d = t.acquire_with_cost("other", Tier::Standard, 1).unwrap_err();
    assert_eq!(d.axis, Some(Axis::Concurrency));
    assert_eq!(d.reason, Some(RejectReason::ConcurrencyLimitExceeded));
    done(a);
    done(b);
    assert_eq!(inflight(&t), 0);

    // "k" crossed: 90 + 20 → the cost axis refuses; its slot is released, its rate slot kept.
    let crossing = t.acquire_with_cost("k", Tier::Standard, 20).unwrap();
    done(crossing);
    let rate_left = t.peek("k").remaining;
    let d = t.acquire_with_cost("k", Tier::Standard, 1).unwrap_err();
    assert_eq!(d.axis, Some(Axis::Cost));
    assert_eq!(d.reason, Some(RejectReason::BudgetExhausted));
    assert_eq!(d.retry_after, Duration::from_secs(60));
    assert_eq!(
        inflight(&t),
        0,
        "the slot taken before the cost axis denied is released"
    );
    assert_eq!(
        t.peek("k").remaining,
        rate_left,
        "the rate axis spent nothing"
    );
    assert_eq!(
        t.cost_usage("k").unwrap().spent,
        110,
        "a denial reserves nothing"
    );

    // "j" spends its last token; its next request finds the budget spent and the rate axis
    // open: the cost axis names the denial.
    let last = t.acquire_with_cost("j", Tier::Standard, 1).unwrap();
    done(last);
    let d = t.acquire_with_cost("j", Tier::Standard, 1).unwrap_err();
    assert_eq!(
        (d.axis, d.reason),
        (Some(Axis::Cost), Some(RejectReason::BudgetExhausted))
    );

    // "r" exhausts both its 3 requests and its 100 tokens: the rate axis, first in the order,
    // is the one named.
    for units in [1, 1, 98] {
        done(t.acquire_with_cost("r", Tier::Standard, units).unwrap());
    }
    let d = t.acquire_with_cost("r", Tier::Standard, 1).unwrap_err();
    assert_eq!(d.axis, Some(Axis::Rate));
    assert_eq!(d.reason, Some(RejectReason::RateLimitExceeded));
    assert_eq!(inflight(&t), 0);
    let counters = t.counters();
    let budget = counters
        .rejections_by_reason
        .iter()
        .find(|(r, _)| *r == RejectReason::BudgetExhausted)
        .map(|(_, n)| *n);
    assert_eq!(budget, Some(2));
}

/// The 429 of a spent budget describes the cost axis: its budget, its unit and its window.
#[tokio::test]
async fn a_spent_budget_gets_a_429_whose_fields_describe_the_cost_axis() {
    let (t, _clock) = support::manual(
        crate::rate_unbound()
            .cost(
                CostConfig::new(100)
                    .window(Duration::from_secs(60))
                    .unit("tokens"),
            )
            .build()
            .unwrap(),
    );
    let svc = AdaptiveThrottleLayer::from_throttle(t.clone())
        .key_extractor(HeaderKey::new(HeaderName::from_static("x-api-key")))
        .cost_estimator(CostHeader::new(HeaderName::from_static("x-max-tokens")))
        .layer(service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::from("ok")))
        }));
    let ask = |tokens: u64| {
        Request::get("/")
            .header("x-api-key", "alice")
            .header("x-max-tokens", tokens.to_string())
            .body(Body::empty())
            .unwrap()
    };
    let ok = svc.clone().oneshot(ask(60)).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // The cost axis binds the admitted response too: 40 tokens left.
    assert_eq!(ok.headers()["ratelimit"], r#""cost";r=40;t=60"#);
    assert_eq!(
        ok.headers()["ratelimit-policy"],
        r#""cost";q=100;qu="tokens";w=60"#
    );
    // A body dropped unread is a cancelled request (refunded): read them to the end.
    body_text(ok).await;
    let second = svc.clone().oneshot(ask(60)).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    body_text(second).await;
    let res = svc.clone().oneshot(ask(1)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "60");
    assert_eq!(res.headers()["ratelimit"], r#""cost";r=0;t=60"#);
    assert_eq!(
        res.headers()["ratelimit-policy"],
        r#""cost";q=100;qu="tokens";w=60"#
    );
    assert_eq!(
        res.extensions().get::<ThrottleRejected>().unwrap().reason,
        RejectReason::BudgetExhausted
    );
    let body = body_json(res).await;
    assert_eq!(body["reason"], "budget_exhausted");
    assert_eq!(body["limit"], 100);
    // Another key has its own budget; a request with no estimate is not metered.
    let mut other = ask(1);
    other
        .headers_mut()
        .insert("x-api-key", "bob".parse().unwrap());
    assert_eq!(
        svc.clone().oneshot(other).await.unwrap().status(),
        StatusCode::OK
    );
    let mut unmetered = ask(1);
    unmetered.headers_mut().remove("x-max-tokens");
    let res = svc.clone().oneshot(unmetered).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"adaptive\""));
}
