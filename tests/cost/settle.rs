//! Reserve, then settle, over HTTP: the estimate is reserved before the inner service runs and
//! the true cost (a response header, a trailer, or what was reported into the request's
//! `CostReport`) is settled at the end of the body; a cancelled request is refunded.

use std::future::{poll_fn, Future};
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, HeaderName, Request, Response};
use http_body_util::BodyExt;
use tower::{service_fn, Layer, ServiceExt};
use tower_adaptive_throttle::http::{
    json_u64_field, BodyPrefix, BodyPrefixLayer, CostHeader, HeaderKey, PrefixedBody,
};
use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer, CostReport};

use super::{alice, budget_throttle, TokenStream};
use crate::support::body_text;

const USED: HeaderName = HeaderName::from_static("x-tokens-used");

fn throttle() -> AdaptiveThrottle {
    budget_throttle(1_000, Duration::from_secs(60)).0
}

/// The layer the tests share: keyed by `x-api-key`, reserving `x-max-tokens`.
fn layer(
    t: &AdaptiveThrottle,
) -> AdaptiveThrottleLayer<
    HeaderKey,
    tower_adaptive_throttle::http::FixedTier,
    tower_adaptive_throttle::http::ServerErrorsAsOverload,
    tower_adaptive_throttle::http::DefaultRejection,
    CostHeader,
> {
    AdaptiveThrottleLayer::from_throttle(t.clone())
        .key_extractor(HeaderKey::new(HeaderName::from_static("x-api-key")))
        .cost_estimator(CostHeader::new(HeaderName::from_static("x-max-tokens")))
}

fn ask(max_tokens: u64) -> Request<Body> {
    Request::post("/v1/completions")
        .header("x-api-key", "alice")
        .header("x-max-tokens", max_tokens.to_string())
        .body(Body::empty())
        .unwrap()
}

fn spent(t: &AdaptiveThrottle) -> u64 {
    t.cost_usage(&alice()).unwrap().spent
}

/// An inner service answering with `x-tokens-used: used`.
async fn used_header(used: u64) -> Result<Response<Body>, std::convert::Infallible> {
    let mut res = Response::new(Body::from("done"));
    res.headers_mut().insert(USED, used.into());
    Ok(res)
}

#[tokio::test]
async fn an_over_estimate_is_refunded_from_the_response_header() {
    let t = throttle();
    let svc = layer(&t)
        .settle_from_header(USED)
        .layer(service_fn(|_req: Request<Body>| used_header(30)));
    let res = svc.oneshot(ask(100)).await.unwrap();
    assert_eq!(spent(&t), 100, "reserved until the body ends");
    assert_eq!(body_text(res).await, "done");
    assert_eq!(spent(&t), 30);
    let stats = t.cost_stats().unwrap();
    assert_eq!((stats.reserved_total, stats.refunded_total), (100, 70));
}

#[tokio::test]
async fn an_under_estimate_is_charged_from_the_response_header() {
    let t = throttle();
    let svc = layer(&t)
        .settle_from_header(USED)
        .layer(service_fn(|_req: Request<Body>| used_header(250)));
    let res = svc.oneshot(ask(10)).await.unwrap();
    body_text(res).await;
    assert_eq!(spent(&t), 250);
    assert_eq!(t.cost_stats().unwrap().charged_total, 240);
}

#[tokio::test]
async fn the_true_cost_is_settled_from_trailers() {
    let t = throttle();
    let svc = layer(&t)
        .settle_from_header(USED)
        .settle_from_trailer(USED)
        .layer(service_fn(|_req: Request<Body>| async {
            let mut body = TokenStream::new(3, None);
            let mut trailers = HeaderMap::new();
            trailers.insert(USED, 7.into());
            body.trailers = Some(trailers);
            let mut res = Response::new(Body::new(body));
            // The header is an early guess; the trailer wins.
            res.headers_mut().insert(USED, 99.into());
            Ok::<_, std::convert::Infallible>(res)
        }));
    let res = svc.oneshot(ask(100)).await.unwrap();
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()[USED], "7");
    assert_eq!(spent(&t), 7);
}

/// A streaming handler reports each token into the `CostReport` the layer put in the request;
/// the cost is settled when the stream ends.
fn streaming(
    tokens: usize,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future = impl Future + Send,
> + Clone {
    service_fn(move |req: Request<Body>| async move {
        let report = req.extensions().get::<CostReport>().cloned();
        assert!(
            report.is_some(),
            "the layer hands a report to metered requests"
        );
        Ok::<_, std::convert::Infallible>(Response::new(Body::new(TokenStream::new(
            tokens, report,
        ))))
    })
}

#[tokio::test]
async fn a_streamed_body_is_settled_at_its_end_from_what_it_reported() {
    let t = throttle();
    let svc = layer(&t).layer(streaming(12));
    let res = svc.oneshot(ask(100)).await.unwrap();
    assert_eq!(spent(&t), 100);
    let text = body_text(res).await;
    assert!(text.starts_with("t0 t1 "));
    assert_eq!(spent(&t), 12);
}

#[tokio::test]
async fn a_body_dropped_mid_stream_is_refunded_but_for_what_it_reported() {
    let t = throttle();
    let svc = layer(&t).layer(streaming(50));
    let mut body = svc.oneshot(ask(100)).await.unwrap().into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
    }
    assert_eq!(spent(&t), 100);
    drop(body);
    assert_eq!(
        spent(&t),
        3,
        "three tokens were produced; the rest is refunded"
    );
}

#[tokio::test]
async fn a_response_future_dropped_before_completion_refunds_the_reservation() {
    let t = throttle();
    let svc = layer(&t).layer(service_fn(|req: Request<Body>| async move {
        if req.headers().contains_key("x-report-first") {
            req.extensions().get::<CostReport>().unwrap().add(5);
        }
        std::future::pending::<Result<Response<Body>, std::convert::Infallible>>().await
    }));
    for (report_first, left) in [(false, 0), (true, 5)] {
        let mut req = ask(100);
        if report_first {
            req.headers_mut()
                .insert("x-report-first", "1".parse().unwrap());
        }
        let mut fut = Box::pin(svc.clone().oneshot(req));
        poll_fn(|cx| {
            assert!(fut.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!(spent(&t), 100, "reserved while the request runs");
        drop(fut);
        assert_eq!(spent(&t), left);
        t.reset_all();
    }
}

#[tokio::test]
async fn an_inner_error_refunds_the_reservation() {
    let t = throttle();
    let svc = layer(&t).layer(service_fn(|_req: Request<Body>| async {
        Err::<Response<Body>, _>(std::io::Error::other("upstream gone"))
    }));
    assert!(svc.oneshot(ask(100)).await.is_err());
    assert_eq!(spent(&t), 0);
}

/// `max_tokens` from the JSON body's first bytes: the prefix layer reads ahead, the estimator
/// reads the prefix, and the inner service still gets the whole body.
#[tokio::test]
async fn the_estimate_is_read_from_the_body_prefix_without_losing_the_body() {
    let t = throttle();
    let estimate = |req: &Request<PrefixedBody<Body>>| {
        let prefix = req.extensions().get::<BodyPrefix>()?;
        json_u64_field(&prefix.0, "max_tokens")
    };
    let svc = BodyPrefixLayer::new(64).layer(
        AdaptiveThrottleLayer::from_throttle(t.clone())
            .key_extractor(HeaderKey::new(HeaderName::from_static("x-api-key")))
            .cost_estimator(estimate)
            .layer(service_fn(|req: Request<PrefixedBody<Body>>| async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                Ok::<_, std::convert::Infallible>(Response::new(Body::from(body)))
            })),
    );
    let json = format!(
        r#"{{"model":"tiny","max_tokens":42,"prompt":"{}"}}"#,
        "x".repeat(500)
    );
    // Two frames: the prefix crosses a frame boundary.
    let (a, b) = json.split_at(20);
    let body = Body::new(TokenStream::from_chunks(vec![
        bytes::Bytes::from(a.to_owned()),
        bytes::Bytes::from(b.to_owned()),
    ]));
    let req = Request::post("/")
        .header("x-api-key", "alice")
        .body(body)
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(spent(&t), 42);
    assert_eq!(
        body_text(res).await,
        json,
        "the body reaches the service whole"
    );
    assert_eq!(spent(&t), 42, "nothing reported: the estimate stands");
}
