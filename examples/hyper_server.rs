//! cargo run --example hyper_server -- --demo
//!
//! A plain hyper 1 server through hyper-util (no axum): a `tower::service_fn` handler behind
//! `AdaptiveThrottleLayer`, with each connection's peer address inserted as a `SocketAddr`
//! request extension so the default per-IP key works. The handler takes 20 ms. With `--demo` it
//! sends itself 5 requests against a service-wide limit of 3 per second and prints, for each, the
//! status, the rate-limit fields and the body — 1 × `200` (the service-wide burst is a tenth of
//! the limit, at least one request), then 4 × `429` with `Retry-After: 1` — then `limit now 3`,
//! and exits; without it, it serves on 127.0.0.1:3000 until stopped.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::{Layer, ServiceExt};
use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig};

async fn handler(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(Response::new(Full::new(Bytes::from_static(
        b"hello from hyper\n",
    ))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|a| a == "--demo");
    let cfg = ThrottleConfig::builder()
        .initial_limit(3)
        .min_limit(1)
        .build()?;
    let layer = AdaptiveThrottleLayer::new(cfg);

    let addr = if demo {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let throttle = layer.throttle().clone();
    let server = async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            // One service per connection; all share the layer's throttle.
            let svc = layer.layer(tower::service_fn(handler)).map_request(
                move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(peer);
                    req
                },
            );
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
                if let Err(e) = conn.await {
                    eprintln!("connection from {peer}: {e}");
                }
            });
        }
    };
    if !demo {
        println!("listening on http://{addr}/ — try: curl -i http://{addr}/");
        server.await;
        return Ok(());
    }
    tokio::spawn(server);
    demo_client::run(addr, &["/"; 5]).await?;
    println!("limit now {}", throttle.current_limit());
    Ok(())
}

mod demo_client {
    include!("support/demo_client.rs");
}
