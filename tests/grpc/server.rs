//! Through a real tonic server and a real tonic client on 127.0.0.1 (real time, every wait
//! bounded): the layer added with tonic's one line, `Server::builder().layer(..)`, answers in
//! gRPC and learns from gRPC failures.

use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tower_adaptive_throttle::http::{GlobalKey, GRPC_RETRY_PUSHBACK_MS};
use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer};

use crate::stub::{bounded, channel, check, serve, Answer, Failing};
use crate::support::{pinned, starting_at};

/// Baldur's ladder from 100: one overload cuts the limit to 90 at once (an overload counts as
/// at least `sla_warning`), while a fast success leaves it at 100.
fn learning() -> AdaptiveThrottle {
    AdaptiveThrottle::new(starting_at(100).max_limit(1000).build().unwrap())
}

#[tokio::test]
async fn over_the_limit_the_client_gets_resource_exhausted_with_the_pushback() {
    // One call per 60 s window; the default key (tonic inserts no `SocketAddr`, so every call
    // shares the fallback key).
    let t = AdaptiveThrottle::new(pinned(1).build().unwrap());
    let (_reporter, health) = tonic_health::server::health_reporter();
    let addr = serve(AdaptiveThrottleLayer::from_throttle(t.clone()), health).await;
    let mut client = HealthClient::new(channel(addr).await);

    check(&mut client)
        .await
        .expect("the first call is admitted");
    let status = check(&mut client)
        .await
        .expect_err("the second is over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("rate_limit_exceeded"),
        "{status:?}"
    );
    let pushback: u64 = status
        .metadata()
        .get(GRPC_RETRY_PUSHBACK_MS.as_str())
        .expect("grpc-retry-pushback-ms in the status's metadata")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60_000).contains(&pushback),
        "the wait for the next window: {pushback} ms"
    );
    // The rate-limit fields ride along as metadata too.
    assert!(status.metadata().get("retry-after").is_some());
    let stats = t.stats();
    assert_eq!((stats.allowed_requests, stats.rejected_requests), (1, 1));
}

#[tokio::test]
async fn a_trailers_only_unavailable_lowers_the_limit_as_overload() {
    let t = learning();
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let addr = serve(layer, Failing(Answer::TrailersOnly(14))).await;
    let mut client = HealthClient::new(channel(addr).await);

    let status = check(&mut client).await.expect_err("the handler fails");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(t.stats().samples.sample_count, 1);
    assert_eq!(t.current_limit(), 90, "UNAVAILABLE is overload: ×0.9");
}

#[tokio::test]
async fn a_streamed_answer_is_classified_by_its_trailers() {
    // A message, then `grpc-status: 14` in the trailers: HTTP 200 all along.
    let t = learning();
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let addr = serve(layer, Failing(Answer::Streamed(14))).await;
    let mut client = HealthClient::new(channel(addr).await);
    let status = check(&mut client).await.expect_err("the trailers fail it");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(t.stats().samples.sample_count, 1);
    assert_eq!(t.current_limit(), 90, "read from the trailers: overload");

    // The same shape ending in `grpc-status: 0` is a success.
    let t = learning();
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let addr = serve(layer, Failing(Answer::Streamed(0))).await;
    let mut client = HealthClient::new(channel(addr).await);
    check(&mut client).await.expect("OK in the trailers");
    assert_eq!(t.stats().samples.sample_count, 1);
    assert_eq!(t.current_limit(), 100);
}

#[tokio::test]
async fn tonic_health_answers_are_ordinary_samples() {
    let t = learning();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone()).key_extractor(GlobalKey);
    let addr = serve(layer, health).await;
    let mut client = HealthClient::new(channel(addr).await);

    // A real tonic answer: headers, one message, then `grpc-status: 0` in the trailers.
    check(&mut client).await.expect("serving");
    // NOT_FOUND (an unknown service) is the caller's mistake, not overload.
    let status = bounded(client.check(tonic_health::pb::HealthCheckRequest {
        service: "no.such.Service".into(),
    }))
    .await
    .expect_err("unknown service");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(t.stats().samples.sample_count, 2);
    assert_eq!(t.current_limit(), 100);
}
