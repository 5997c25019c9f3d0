//! The outbound coordinator on a tonic `Channel`: gRPC's `RESOURCE_EXHAUSTED` and
//! `grpc-retry-pushback-ms` count as a 429 and its `Retry-After`.

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};
use tower_adaptive_throttle::outbound::{
    CoordinatorConfig, CoordinatorEvent, Deferred, GrpcService, RateLimitCoordinator,
};
use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer};

use crate::stub::{channel, check, serve};
use crate::support::pinned;

const HEALTH: &str = "grpc.health.v1.Health";

#[tokio::test]
async fn resource_exhausted_on_a_channel_cools_the_service_down_for_the_pushback() {
    // The server admits one call per 60 s window, and answers the next in gRPC.
    let t = AdaptiveThrottle::new(pinned(1).build().unwrap());
    let (_reporter, health) = tonic_health::server::health_reporter();
    let addr = serve(AdaptiveThrottleLayer::from_throttle(t.clone()), health).await;

    // A call may wait 10 ms for a cooldown; longer ones are deferred at once.
    let cfg = CoordinatorConfig::builder()
        .max_wait(Duration::from_millis(10))
        .build()
        .unwrap();
    let coord = RateLimitCoordinator::new(cfg);
    let coordinated = ServiceBuilder::new()
        .layer(coord.layer().key(GrpcService))
        .service(channel(addr).await);
    let mut client = HealthClient::new(coordinated);

    check(&mut client).await.expect("admitted");
    assert_eq!(coord.cooldown_remaining(HEALTH), None);
    let status = check(&mut client).await.expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted);
    let pushback: u64 = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let remaining = coord
        .cooldown_remaining(HEALTH)
        .expect("RESOURCE_EXHAUSTED armed the service's cooldown");
    // The pushback is a floor (never jittered); the ladder's first step is 5 s ± 30 %.
    let floor = Duration::from_millis(pushback).max(Duration::from_millis(3_500));
    assert!(
        remaining + Duration::from_secs(1) >= floor,
        "{remaining:?} for a pushback of {pushback} ms"
    );

    // The next call would wait past its bound: refused without reaching the server.
    let status = check(&mut client).await.expect_err("deferred");
    let deferred = std::error::Error::source(&status)
        .and_then(|e| e.downcast_ref::<Deferred>())
        .is_some();
    assert!(deferred || status.code() == Code::Unknown, "{status:?}");
    assert_eq!(coord.stats().deferred, 1);
    assert_eq!(t.stats().total_requests, 2, "the server saw two calls");
}

/// A stub upstream answering every call trailers-only with `grpc-status` and an optional
/// pushback, on paused time.
fn upstream(
    code: u32,
    pushback: Option<&'static str>,
) -> impl tower::Service<Request<()>, Response = Response<()>, Error = Infallible, Future = impl Send>
       + Clone {
    service_fn(move |_req: Request<()>| async move {
        let mut res = Response::new(());
        let h = res.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from(code));
        if let Some(p) = pushback {
            h.insert("grpc-retry-pushback-ms", HeaderValue::from_static(p));
        }
        Ok::<_, Infallible>(res)
    })
}

fn call() -> Request<()> {
    Request::post("/pkg.Svc/Do").body(()).unwrap()
}

async fn rate_limited_event(
    events: &mut tokio::sync::broadcast::Receiver<CoordinatorEvent>,
) -> Option<(u16, Option<Duration>)> {
    while let Ok(event) = events.try_recv() {
        if let CoordinatorEvent::RateLimited {
            status,
            retry_after,
            ..
        } = event
        {
            return Some((status, retry_after));
        }
    }
    None
}

#[tokio::test(start_paused = true)]
async fn what_cools_a_grpc_key_down() {
    let cfg = || CoordinatorConfig::builder().seed(7);
    // RESOURCE_EXHAUSTED with a pushback: the pushback is the retry delay.
    let coord = RateLimitCoordinator::new(cfg().build().unwrap());
    let mut events = coord.subscribe();
    let svc = coord
        .layer()
        .key(GrpcService)
        .layer(upstream(8, Some("30000")));
    svc.oneshot(call()).await.unwrap();
    assert_eq!(
        rate_limited_event(&mut events).await,
        Some((200, Some(Duration::from_secs(30))))
    );
    assert_eq!(
        coord.cooldown_remaining("pkg.Svc"),
        Some(Duration::from_secs(30))
    );

    // Without a pushback (or a negative one, A6's "do not retry"), the ladder alone.
    for pushback in [None, Some("-1")] {
        let coord = RateLimitCoordinator::new(cfg().build().unwrap());
        let mut events = coord.subscribe();
        let svc = coord.layer().key(GrpcService).layer(upstream(8, pushback));
        svc.oneshot(call()).await.unwrap();
        assert_eq!(rate_limited_event(&mut events).await, Some((200, None)));
        assert!(coord.cooldown_remaining("pkg.Svc").is_some());
    }

    // UNAVAILABLE with a pushback counts only when 503s do; other codes never.
    let coord = RateLimitCoordinator::new(cfg().build().unwrap());
    let svc = coord
        .layer()
        .key(GrpcService)
        .layer(upstream(14, Some("1000")));
    svc.oneshot(call()).await.unwrap();
    assert_eq!(coord.cooldown_remaining("pkg.Svc"), None);
    let coord = RateLimitCoordinator::new(cfg().cooldown_on_503(true).build().unwrap());
    let svc = coord
        .layer()
        .key(GrpcService)
        .layer(upstream(14, Some("1000")));
    svc.oneshot(call()).await.unwrap();
    assert!(coord.cooldown_remaining("pkg.Svc").is_some());
    for code in [0, 4, 13] {
        let coord = RateLimitCoordinator::new(cfg().cooldown_on_503(true).build().unwrap());
        let svc = coord
            .layer()
            .key(GrpcService)
            .layer(upstream(code, Some("1000")));
        svc.oneshot(call()).await.unwrap();
        assert_eq!(
            coord.cooldown_remaining("pkg.Svc"),
            None,
            "grpc-status {code}"
        );
    }
}
