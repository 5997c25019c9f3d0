//! End to end on real sockets and real time: an axum upstream on 127.0.0.1 that answers 429
//! with `Retry-After: 1` for its first 1.5 s, and hyper-util's client behind the coordinator's
//! layer with 50 concurrent callers. Delays are small and every wait is bounded, so each test
//! takes about two seconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_adaptive_throttle::outbound::{
    CoordinatorConfig, CoordinatorEvent, Deferred, RateLimitCoordinator,
};

use crate::support::local_listener;

const CALLERS: usize = 50;
const LIMITED_FOR: Duration = Duration::from_millis(1500);
/// The bound on every wait in these tests.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the upstream saw: each request's arrival and the status it got, and how often a
/// request arrived while another was being served during the rate-limited phase.
#[derive(Default)]
struct Upstream {
    log: Mutex<Vec<(Instant, u16)>>,
    in_flight: AtomicUsize,
    overlaps_while_limited: AtomicUsize,
}

struct Served {
    upstream: Arc<Upstream>,
    limited_until: Instant,
}

async fn handler(State(s): State<Arc<Served>>) -> (StatusCode, HeaderMap) {
    let arrived = Instant::now();
    let limited = arrived < s.limited_until;
    if s.upstream.in_flight.fetch_add(1, Ordering::SeqCst) > 0 && limited {
        s.upstream
            .overlaps_while_limited
            .fetch_add(1, Ordering::SeqCst);
    }
    // Some work, so that overlapping requests would be seen overlapping.
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.upstream.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut headers = HeaderMap::new();
    let status = if limited {
        headers.insert(http::header::RETRY_AFTER, "1".parse().unwrap());
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::OK
    };
    s.upstream
        .log
        .lock()
        .unwrap()
        .push((arrived, status.as_u16()));
    (status, headers)
}

/// Starts the upstream; returns its URI and what it saw.
async fn upstream() -> (String, Arc<Upstream>) {
    let (listener, addr) = local_listener().await;
    let upstream = Arc::new(Upstream::default());
    let served = Arc::new(Served {
        upstream: upstream.clone(),
        limited_until: Instant::now() + LIMITED_FOR,
    });
    let app = Router::new().route("/", get(handler)).with_state(served);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/"), upstream)
}

fn coordinator(max_wait: Duration) -> RateLimitCoordinator {
    RateLimitCoordinator::new(
        CoordinatorConfig::builder()
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(500))
            .max_wait(max_wait)
            .seed(13)
            .build()
            .unwrap(),
    )
}

/// How one caller ended, and how many 429s it met on the way.
type Outcome = (Result<u16, BoxError>, usize);

/// `CALLERS` concurrent callers through `coord`'s layer around a hyper-util client, after one
/// call that meets the first 429. Each caller is a naive retry loop: on a 429 it calls again at
/// once (the coordinator paces it), and it stops at a 200 or an error.
async fn stampede(coord: &RateLimitCoordinator, uri: &str) -> Vec<Outcome> {
    let client =
        Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(HttpConnector::new());
    let svc = ServiceBuilder::new().layer(coord.layer()).service(client);
    let request = || Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
    let first = svc.clone().oneshot(request()).await.expect("a response");
    assert_eq!(first.status(), 429, "the upstream's 429 reaches its caller");

    let mut set = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let svc = svc.clone();
        let uri = uri.to_owned();
        set.spawn(async move {
            let mut met_429 = 0;
            let retrying = async {
                loop {
                    let req = Request::get(&uri).body(Empty::<Bytes>::new()).unwrap();
                    match svc.clone().oneshot(req).await.map(|r| r.status().as_u16()) {
                        Ok(429) => met_429 += 1,
                        other => return other,
                    }
                }
            };
            let end = match tokio::time::timeout(PATIENCE, retrying).await {
                Ok(result) => result,
                Err(elapsed) => Err(elapsed.into()),
            };
            (end, met_429)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.expect("no caller panics"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_callers_wait_out_the_cooldowns_behind_one_canary() {
    let (uri, upstream) = upstream().await;
    let coord = coordinator(Duration::from_secs(5));
    let mut events = coord.subscribe();
    let results = stampede(&coord, &uri).await;

    for (end, _) in &results {
        assert_eq!(
            *end.as_ref().expect("every caller succeeds after recovery"),
            200
        );
    }
    let log = upstream.log.lock().unwrap().clone();
    assert_eq!(upstream.overlaps_while_limited.load(Ordering::SeqCst), 0);

    // The cooldowns in force, in order; no request reached the upstream inside one.
    let mut cooldown_ends = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let CoordinatorEvent::CooldownStarted { until, .. } = e {
            cooldown_ends.push(until);
        }
    }
    let limited: Vec<_> = log.iter().filter(|(_, s)| *s == 429).collect();
    assert_eq!(
        limited.len(),
        cooldown_ends.len(),
        "one request per cooldown: {log:?}"
    );
    for (i, end) in cooldown_ends.iter().enumerate() {
        let next = log.get(i + 1).expect("a request after each cooldown").0;
        assert!(
            next >= *end,
            "request {} arrived inside cooldown {i}",
            i + 1
        );
    }
    // The 429s after the first went to canaries, whose callers tried again.
    let met: usize = results.iter().map(|(_, n)| n).sum();
    assert_eq!(met, limited.len() - 1);
    assert_eq!(log.len(), limited.len() + CALLERS, "one success per caller");
    assert_eq!(coord.consecutive("127.0.0.1"), 0);
    assert_eq!(coord.stats().cooling_keys, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_cannot_wait_are_deferred_and_never_reach_the_upstream() {
    let (uri, upstream) = upstream().await;
    let coord = coordinator(Duration::from_millis(50));
    let results = stampede(&coord, &uri).await;

    for (end, met_429) in &results {
        assert_eq!(*met_429, 0);
        let e = end
            .as_ref()
            .expect_err("the 1 s cooldown outlasts a 50 ms bound");
        let deferred = e
            .downcast_ref::<Deferred>()
            .expect("a Deferred, nothing else");
        assert!(deferred.retry_in() <= Duration::from_secs(1));
    }
    assert_eq!(
        upstream.log.lock().unwrap().len(),
        1,
        "only the first call was sent"
    );
    assert_eq!(coord.stats().deferred, CALLERS as u64);
}
