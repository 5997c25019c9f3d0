//! No budget leaks: a thousand concurrent requests, cancelled at random points (before the
//! response, mid-stream, or not at all), leave exactly what they spent on the budget.

use std::future::{poll_fn, Future};
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderName, Request, Response};
use http_body_util::BodyExt;
use tower::{service_fn, Layer, ServiceExt};
use tower_adaptive_throttle::http::{CostHeader, HeaderKey};
use tower_adaptive_throttle::{AdaptiveThrottleLayer, CostReport};

use super::{alice, budget_throttle, TokenStream};

/// How a request ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Complete,
    /// The body is dropped after this many frames.
    DropBodyAfter(usize),
    /// The response future is dropped while the handler waits.
    DropFuture,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_with_random_cancellation_leak_nothing() {
    let (t, _clock) = budget_throttle(4_000_000_000, Duration::from_secs(60));
    let svc = AdaptiveThrottleLayer::from_throttle(t.clone())
        .key_extractor(HeaderKey::new(HeaderName::from_static("x-api-key")))
        .cost_estimator(CostHeader::new(HeaderName::from_static("x-max-tokens")))
        .layer(service_fn(|req: Request<Body>| async move {
            let report = req.extensions().get::<CostReport>().cloned().unwrap();
            let tokens: usize = req.headers()["x-tokens"].to_str().unwrap().parse().unwrap();
            tokio::task::yield_now().await;
            if req.headers().contains_key("x-hang") {
                std::future::pending::<()>().await;
            }
            Ok::<_, std::convert::Infallible>(Response::new(Body::new(TokenStream::new(
                tokens,
                Some(report),
            ))))
        }));

    // A fixed-seed generator: the same thousand requests every run.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let estimate = 1 + next(200);
        let tokens = next(300) as usize;
        let end = match next(3) {
            0 => End::Complete,
            1 => End::DropBodyAfter(next(tokens as u64 + 1) as usize),
            _ => End::DropFuture,
        };
        let mut req = Request::post("/")
            .header("x-api-key", "alice")
            .header("x-max-tokens", estimate.to_string())
            .header("x-tokens", tokens.to_string())
            .body(Body::empty())
            .unwrap();
        if matches!(end, End::DropFuture) {
            req.headers_mut().insert("x-hang", "1".parse().unwrap());
        }
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            match end {
                End::Complete => {
                    let res = svc.oneshot(req).await.unwrap();
                    res.into_body().collect().await.unwrap();
                    tokens as u64
                }
                End::DropBodyAfter(frames) => {
                    let mut body = svc.oneshot(req).await.unwrap().into_body();
                    for _ in 0..frames {
                        body.frame().await.unwrap().unwrap();
                    }
                    drop(body);
                    frames as u64
                }
                End::DropFuture => {
                    let mut fut = Box::pin(svc.oneshot(req));
                    // Until the handler waits for good (it yields once on the way).
                    for _ in 0..3 {
                        poll_fn(|cx| {
                            assert!(fut.as_mut().poll(cx).is_pending());
                            Poll::Ready(())
                        })
                        .await;
                        tokio::task::yield_now().await;
                    }
                    drop(fut);
                    0
                }
            }
        }));
    }
    let mut settled = 0;
    for task in tasks {
        settled += task.await.unwrap();
    }
    let usage = t.cost_usage(&alice()).unwrap();
    assert_eq!(
        usage.spent, settled,
        "the budget shows exactly what was spent"
    );
    let s = t.cost_stats().unwrap();
    assert_eq!(
        s.reserved_total + s.charged_total - s.refunded_total,
        settled
    );
    assert_eq!(s.spent_in_window, settled);
}
