//! End to end: a hyper 1 server on a real TCP socket (127.0.0.1:0) behind the layer, and a real
//! HTTP client (hyper-util's legacy client). Time is paused tokio time: the handler "works" by
//! sleeping on tokio's clock, which the runtime advances instantly when idle, so latencies are
//! exact and the test takes no wall-clock time.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tower::{Layer, ServiceExt};
use tower_adaptive_throttle::http::{RATELIMIT, RATELIMIT_POLICY};
use tower_adaptive_throttle::{AdaptiveThrottle, AdaptiveThrottleLayer};

use crate::support::{body_bytes, local_listener, quota};

/// Ports of the connections whose requests reached the handler.
type Seen = Arc<Mutex<Vec<u16>>>;

/// Serves `GET /?ms=N` (sleeps N ms of tokio time, then answers `ok`) behind a layer on `t`,
/// with each connection's peer address inserted as a `SocketAddr` extension.
async fn serve(t: &AdaptiveThrottle) -> (SocketAddr, Seen) {
    let (listener, addr) = local_listener().await;
    let layer = AdaptiveThrottleLayer::from_throttle(t.clone());
    let seen: Seen = Arc::default();
    let seen_by_server = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let seen = seen_by_server.clone();
            let handler = tower::service_fn(move |req: Request<Incoming>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(peer.port());
                    let ms: u64 = req
                        .uri()
                        .query()
                        .and_then(|q| q.strip_prefix("ms="))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            let svc = layer
                .layer(handler)
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(peer);
                    req
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    (addr, seen)
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    ms: u64,
) -> Response<Bytes> {
    let uri = format!("http://{addr}/?ms={ms}");
    let res = client.get(uri.parse().unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    Response::from_parts(parts, body_bytes(body).await)
}

#[tokio::test(start_paused = true)]
async fn burst_over_the_limit_gets_429s_with_standard_headers() {
    let t = quota(5);
    let (addr, seen) = serve(&t).await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let res = get(&c, addr, 1).await;
        statuses.push(res.status().as_u16());
        let h = res.headers();
        assert_eq!(h[RATELIMIT_POLICY], r#""adaptive";q=5;w=60"#);
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = h[RETRY_AFTER].to_str().unwrap().parse().unwrap();
            assert!(retry >= 1);
            assert_eq!(
                h[RATELIMIT],
                format!(r#""adaptive";r=0;t={retry}"#).as_str()
            );
            let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
            assert_eq!(body["limit"], 5);
            assert_eq!(body["retry_after_secs"], retry);
        } else {
            assert_eq!(&res.body()[..], b"ok");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert_eq!(
        seen.lock().unwrap().len(),
        5,
        "rejected requests never reach the handler"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_handler_lowers_the_limit_as_the_ladder_says() {
    let t = quota(100);
    let (addr, _) = serve(&t).await;
    let c = client();
    get(&c, addr, 600).await;
    assert_eq!(
        t.current_limit(),
        70,
        "one response ≥ sla_critical (500 ms): 100 → 70"
    );
    // The ladder runs at most once per sample_interval (500 ms).
    tokio::time::advance(Duration::from_millis(500)).await;
    let res = get(&c, addr, 250).await;
    assert_eq!(
        t.current_limit(),
        63,
        "one response ≥ sla_warning (200 ms): 70 → 63"
    );
    assert_eq!(
        res.headers()[RATELIMIT_POLICY],
        r#""adaptive";q=70;w=60"#,
        "the response was admitted against the limit in force at its call"
    );
    tokio::time::advance(Duration::from_millis(500)).await;
    let res = get(&c, addr, 1).await;
    assert_eq!(res.headers()[RATELIMIT_POLICY], r#""adaptive";q=63;w=60"#);
}

#[tokio::test(start_paused = true)]
async fn several_connections_share_one_limit() {
    let t = quota(6);
    let (addr, seen) = serve(&t).await;
    // Three clients: three pools, so three connections from three ports of one IP.
    let clients = [client(), client(), client()];
    let mut ok = 0;
    for c in &clients {
        for _ in 0..2 {
            ok += u32::from(get(c, addr, 1).await.status() == StatusCode::OK);
        }
    }
    assert_eq!(ok, 6);
    for c in &clients {
        assert_eq!(
            get(c, addr, 1).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let ports: HashSet<u16> = seen.lock().unwrap().iter().copied().collect();
    assert_eq!(
        ports.len(),
        3,
        "the admitted requests came over three connections"
    );
}
